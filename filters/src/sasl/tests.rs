//! The SASL filter against a `service_fn` inner service that counts what reaches it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use franzgate_api::kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, MetadataRequest, MetadataResponse, RequestHeader, RequestKind, ResponseKind,
    SaslAuthenticateRequest, SaslHandshakeRequest,
};
use franzgate_api::kafka_protocol::protocol::StrBytes;
use franzgate_api::topology::{ApiVersionRange, BackendCluster};
use franzgate_api::vcluster::StateRecord;
use franzgate_api::{AuthStats, Body, FilterError, KafkaRequest, KafkaResponse, PrincipalSource, Session};
use franzgate_auth::jwt::{TokenClaims, issue};
use franzgate_auth::plain::encode_plain;
use franzgate_auth::scram::{ScramClient, ScramCredential, ScramMechanism};
use tower::{BoxError, Layer, Service, ServiceExt};

use super::{PasswordHasher, SaslConfig, SaslLayer, UserConfig, UserDirectory};

const SECRET: &str = "pool-secret";

fn layer() -> (SaslLayer, Arc<AuthStats>) {
    layer_with_iterations(4096)
}

/// alice's credentials hashed with `iterations`.
fn layer_with_iterations(iterations: u32) -> (SaslLayer, Arc<AuthStats>) {
    let credentials = [ScramMechanism::Sha256, ScramMechanism::Sha512]
        .map(|m| ScramCredential::from_password(m, "alice-secret", b"some salt", iterations).to_string())
        .to_vec();
    let config = SaslConfig {
        users: vec![UserConfig { username: "alice".into(), credentials }],
        token_secret: Some(SECRET.into()),
        ..SaslConfig::default()
    };
    let stats = Arc::new(AuthStats::default());
    // Tokens are good only for known virtual clusters: teamA is one, with account `sa` revoked once (so its
    // tokens carry generation 1).
    let vclusters = franzgate_api::vcluster::VirtualClusters::new(false);
    vclusters.apply(&StateRecord::VirtualCluster { name: "teamA".into(), prefix: "teamA".into() });
    vclusters.apply(&StateRecord::ServiceAccount {
        vcluster: "teamA".into(),
        username: "sa".into(),
        generation: 1,
        revoked: false,
    });
    let directory = UserDirectory::from_config(&config).expect("valid").with_vclusters(Arc::new(vclusters));
    (SaslLayer::new(Arc::new(directory), stats.clone()), stats)
}

type Forwarded = Arc<AtomicUsize>;

fn service(
    layer: &SaslLayer,
) -> (impl Service<KafkaRequest, Response = KafkaResponse, Error = FilterError>, Forwarded) {
    let forwarded = Forwarded::default();
    let counter = forwarded.clone();
    let inner = tower::service_fn(move |request: KafkaRequest| {
        counter.fetch_add(1, Ordering::SeqCst);
        let body = ResponseKind::Metadata(MetadataResponse::default());
        std::future::ready(KafkaResponse::from_message(request.api_key_raw(), request.api_version(), 1, body))
    });
    (layer.layer(inner), forwarded)
}

fn session() -> Arc<Session> {
    let peer = SocketAddr::from(([127, 0, 0, 1], 1));
    Arc::new(Session::new(1, peer, 9092, Arc::new(BackendCluster::new("main", vec![])), 0))
}

fn request(session: &Arc<Session>, key: ApiKey, version: i16, body: RequestKind) -> KafkaRequest {
    let header = RequestHeader::default()
        .with_request_api_key(key as i16)
        .with_request_api_version(version)
        .with_correlation_id(7);
    KafkaRequest::from_parts(header, Bytes::new(), Body::decoded(body), session.clone(), true)
}

fn handshake(session: &Arc<Session>, version: i16, mechanism: &'static str) -> KafkaRequest {
    let body = SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str(mechanism));
    request(session, ApiKey::SaslHandshake, version, RequestKind::SaslHandshake(body))
}

fn authenticate(session: &Arc<Session>, token: Vec<u8>) -> KafkaRequest {
    let body = SaslAuthenticateRequest::default().with_auth_bytes(Bytes::from(token));
    request(session, ApiKey::SaslAuthenticate, 2, RequestKind::SaslAuthenticate(body))
}

fn metadata(session: &Arc<Session>) -> KafkaRequest {
    request(session, ApiKey::Metadata, 12, RequestKind::Metadata(MetadataRequest::default()))
}

async fn call<S>(service: &mut S, request: KafkaRequest) -> KafkaResponse
where
    S: Service<KafkaRequest, Response = KafkaResponse, Error = FilterError>,
{
    service.ready().await.map_err(BoxError::from).expect("ready").call(request).await.expect("response")
}

/// (error code, auth bytes) of a SaslAuthenticate response.
fn auth_result(response: &mut KafkaResponse) -> (i16, Bytes) {
    match response.body() {
        Ok(ResponseKind::SaslAuthenticate(body)) => (body.error_code, body.auth_bytes.clone()),
        other => panic!("expected SaslAuthenticate, got {other:?}"),
    }
}

fn error_code(response: &mut KafkaResponse) -> i16 {
    match response.body() {
        Ok(ResponseKind::Metadata(body)) => body.topics.first().map(|t| t.error_code).unwrap_or(-1),
        Ok(ResponseKind::SaslAuthenticate(body)) => body.error_code,
        Ok(ResponseKind::SaslHandshake(body)) => body.error_code,
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test]
async fn plain_login_lets_requests_through_and_records_the_principal() {
    let (layer, stats) = layer();
    let (mut svc, forwarded) = service(&layer);
    let s = session();
    let mut response = call(&mut svc, handshake(&s, 1, "PLAIN")).await;
    match response.body() {
        Ok(ResponseKind::SaslHandshake(body)) => {
            assert_eq!(body.error_code, 0);
            let offered: Vec<&str> = body.mechanisms.iter().map(|m| m.as_str()).collect();
            assert_eq!(offered, ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]);
        }
        other => panic!("{other:?}"),
    }
    let mut response = call(&mut svc, authenticate(&s, encode_plain("alice", "alice-secret"))).await;
    assert_eq!(auth_result(&mut response).0, 0);
    assert!(!response.closes_connection());
    let principal = s.auth.principal();
    assert_eq!((principal.name.as_str(), principal.source), ("alice", PrincipalSource::SaslPlain));
    assert_eq!(forwarded.load(Ordering::SeqCst), 0, "nothing reached the backend during the exchange");
    call(&mut svc, metadata(&s)).await;
    assert_eq!(forwarded.load(Ordering::SeqCst), 1, "authenticated requests flow");
    assert_eq!(stats.counts(), (1, 0));
}

#[tokio::test]
async fn requests_before_authentication_are_refused_and_close_the_connection() {
    let (layer, _) = layer();
    let (mut svc, forwarded) = service(&layer);
    let s = session();
    let mut response = call(&mut svc, metadata(&s)).await;
    assert!(response.closes_connection());
    let topics_error = match response.body() {
        Ok(ResponseKind::Metadata(body)) => body.topics.iter().all(|t| t.error_code == 34),
        other => panic!("{other:?}"),
    };
    assert!(topics_error, "ILLEGAL_SASL_STATE");
    // SaslAuthenticate without a handshake is out of order too.
    let (mut svc, _) = service(&layer);
    let mut response = call(&mut svc, authenticate(&session(), encode_plain("alice", "alice-secret"))).await;
    assert_eq!(error_code(&mut response), 34);
    assert!(response.closes_connection());
    assert_eq!(forwarded.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_failed_login_is_answered_only_after_the_failure_delay() {
    let (layer, stats) = layer();
    let s = session();
    // The default delay (Kafka's 100 ms): the answer never comes sooner.
    let (mut svc, _) = service(&layer);
    call(&mut svc, handshake(&s, 1, "PLAIN")).await;
    let started = std::time::Instant::now();
    let mut response = call(&mut svc, authenticate(&s, encode_plain("alice", "wrong"))).await;
    assert!(started.elapsed() >= std::time::Duration::from_millis(100), "answered after {:?}", started.elapsed());
    assert_eq!(auth_result(&mut response).0, 58);
    assert!(response.closes_connection());
    // An hour's delay: the refusal is still pending when a good login on another session has long been answered.
    let slow = layer.clone().with_failure_delay(std::time::Duration::from_secs(3600));
    let (mut refused, _) = service(&slow);
    let (mut admitted, _) = service(&slow);
    let (bad, good) = (session(), session());
    call(&mut refused, handshake(&bad, 1, "PLAIN")).await;
    call(&mut admitted, handshake(&good, 1, "PLAIN")).await;
    let pending = refused.ready().await.expect("ready").call(authenticate(&bad, encode_plain("alice", "nope")));
    let mut ok = call(&mut admitted, authenticate(&good, encode_plain("alice", "alice-secret"))).await;
    assert_eq!(auth_result(&mut ok).0, 0, "a good login is not delayed");
    assert!(tokio::time::timeout(std::time::Duration::from_millis(50), pending).await.is_err(), "refusal delayed");
    // The refused password's check runs in a task of its own, answered or not: its failure is counted as soon
    // as the hash is done, long before the answer.
    while stats.counts() != (1, 2) {
        assert!(started.elapsed() < std::time::Duration::from_secs(60), "counted {:?}", stats.counts());
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
}

/// A failed PLAIN login of `user` on a fresh session; returns the error code.
async fn failed_plain_login<S>(svc: &mut S, user: &str, password: &str) -> i16
where
    S: Service<KafkaRequest, Response = KafkaResponse, Error = FilterError>,
{
    let s = session();
    call(svc, handshake(&s, 1, "PLAIN")).await;
    let mut response = call(svc, authenticate(&s, encode_plain(user, password))).await;
    auth_result(&mut response).0
}

/// (salt length in base64, iterations) of the SCRAM-SHA-512 server-first `user` gets.
async fn scram_server_first(layer: &SaslLayer, user: &str) -> (Option<usize>, Option<String>) {
    let (mut svc, _) = service(layer);
    let s = session();
    call(&mut svc, handshake(&s, 1, "SCRAM-SHA-512")).await;
    let mut client = ScramClient::new(ScramMechanism::Sha512, user, "guess").expect("client");
    let mut response = call(&mut svc, authenticate(&s, client.client_first())).await;
    let (code, first) = auth_result(&mut response);
    assert_eq!(code, 0, "{user}: an unknown user is not refused at client-first");
    let first = String::from_utf8(first.to_vec()).expect("utf-8");
    let salt = first.split(',').find_map(|p| p.strip_prefix("s=")).map(str::len);
    (salt, first.split(',').find_map(|p| p.strip_prefix("i=")).map(str::to_string))
}

#[tokio::test]
async fn an_unknown_user_costs_the_same_password_hashing_as_a_known_one() {
    // 5000 iterations, not the 4096 default: the stand-in must copy the real credentials, not Kafka's minimum.
    let (layer, stats) = layer_with_iterations(5000);
    let hasher = Arc::new(PasswordHasher::new(1, 8));
    let layer = layer.with_hasher(hasher.clone()).with_failure_delay(std::time::Duration::ZERO);
    let mut spent = Vec::new();
    for user in ["alice", "mallory", "alice", "eve"] {
        let (mut svc, _) = service(&layer);
        let before = hasher.iterations();
        assert_eq!(failed_plain_login(&mut svc, user, "guess").await, 58, "{user}");
        spent.push(hasher.iterations() - before);
    }
    assert_eq!(spent, [5000; 4], "PBKDF2 iterations per failed login: known, unknown, known, unknown");
    assert_eq!(stats.counts(), (0, 4));
    // SCRAM: an unknown user's server-first shows the same salt length and iteration count as alice's.
    let known = scram_server_first(&layer, "alice").await;
    assert_eq!(known.1.as_deref(), Some("5000"));
    assert_eq!(scram_server_first(&layer, "mallory").await, known);
}

#[tokio::test]
async fn a_request_pipelined_behind_a_password_check_waits_for_its_verdict() {
    let (layer, _) = layer();
    let (mut svc, forwarded) = service(&layer);
    let s = session();
    call(&mut svc, handshake(&s, 1, "PLAIN")).await;
    let answer = svc.ready().await.expect("ready").call(authenticate(&s, encode_plain("alice", "alice-secret")));
    // The check runs on a blocking thread; the service takes no request until its verdict is in.
    svc.ready().await.expect("ready after the verdict");
    assert_eq!(s.auth.principal().name, "alice", "authenticated before the next request is taken");
    svc.call(metadata(&s)).await.expect("forwarded");
    assert_eq!(forwarded.load(Ordering::SeqCst), 1);
    let mut answer = answer.await.expect("answer");
    assert_eq!(auth_result(&mut answer).0, 0);
}

#[tokio::test]
async fn past_the_failure_limit_an_address_is_refused_without_hashing_even_with_the_right_password() {
    let (layer, stats) = layer();
    let hasher = Arc::new(PasswordHasher::new(1, 8));
    let layer = layer.with_hasher(hasher.clone()).with_failure_delay(std::time::Duration::ZERO).with_failure_limit(2);
    for _ in 0..2 {
        let (mut svc, _) = service(&layer);
        assert_eq!(failed_plain_login(&mut svc, "alice", "guess").await, 58);
    }
    assert_eq!(hasher.iterations(), 2 * 4096);
    let (mut svc, forwarded) = service(&layer);
    assert_eq!(failed_plain_login(&mut svc, "alice", "alice-secret").await, 58, "limited: refused unchecked");
    assert_eq!(hasher.iterations(), 2 * 4096, "no hashing for a limited address");
    assert_eq!((stats.counts(), stats.limited()), ((0, 3), 1));
    assert_eq!(forwarded.load(Ordering::SeqCst), 0);
    // Without the limit the same password is good.
    let (layer, _) = super::tests::layer();
    let (mut svc, _) = service(&layer);
    let s = session();
    call(&mut svc, handshake(&s, 1, "PLAIN")).await;
    let mut response = call(&mut svc, authenticate(&s, encode_plain("alice", "alice-secret"))).await;
    assert_eq!(auth_result(&mut response).0, 0);
}

#[tokio::test]
async fn wrong_passwords_and_unknown_users_fail_and_close() {
    for (user, password) in [("alice", "wrong"), ("mallory", "alice-secret"), ("alice", "")] {
        let (layer, stats) = layer();
        let (mut svc, forwarded) = service(&layer);
        let s = session();
        call(&mut svc, handshake(&s, 1, "PLAIN")).await;
        let mut response = call(&mut svc, authenticate(&s, encode_plain(user, password))).await;
        assert_eq!(auth_result(&mut response).0, 58, "{user}/{password}: SASL_AUTHENTICATION_FAILED");
        assert!(response.closes_connection());
        assert!(s.auth.sasl_principal().is_none());
        assert_eq!(stats.counts(), (0, 1));
        assert_eq!(forwarded.load(Ordering::SeqCst), 0);
    }
}

#[tokio::test]
async fn scram_sha_512_exchange_authenticates_and_a_bad_proof_does_not() {
    for password in ["alice-secret", "not-it"] {
        let (layer, stats) = layer();
        let (mut svc, _) = service(&layer);
        let s = session();
        call(&mut svc, handshake(&s, 1, "SCRAM-SHA-512")).await;
        let mut client = ScramClient::new(ScramMechanism::Sha512, "alice", password).expect("client");
        let mut response = call(&mut svc, authenticate(&s, client.client_first())).await;
        let (code, server_first) = auth_result(&mut response);
        assert_eq!(code, 0);
        let client_final = client.server_first(&server_first).expect("server-first is valid");
        let mut response = call(&mut svc, authenticate(&s, client_final)).await;
        let (code, server_final) = auth_result(&mut response);
        if password == "alice-secret" {
            assert_eq!(code, 0);
            client.server_final(&server_final).expect("the gateway proves it knows the key");
            assert_eq!(s.auth.principal().source, PrincipalSource::ScramSha512);
            assert_eq!(stats.counts(), (1, 0));
        } else {
            assert_eq!(code, 58);
            assert!(response.closes_connection());
            assert_eq!(stats.counts(), (0, 1));
        }
    }
}

#[tokio::test]
async fn a_service_account_token_is_a_plain_password_and_carries_its_virtual_cluster() {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs();
    let claims = |exp| TokenClaims { username: "sa".into(), vcluster: Some("teamA".into()), exp, generation: 1 };
    let good = issue(SECRET.as_bytes(), &claims(now + 600)).expect("token");
    let expired = issue(SECRET.as_bytes(), &claims(now - 10)).expect("token");
    let forged = issue(b"another secret", &claims(now + 600)).expect("token");
    let revoked = issue(SECRET.as_bytes(), &TokenClaims { generation: 0, ..claims(now + 600) }).expect("token");
    let unknown_vcluster =
        issue(SECRET.as_bytes(), &TokenClaims { vcluster: Some("teamZ".into()), ..claims(now + 600) }).expect("token");
    for (user, token, ok) in [
        ("sa", &good, true),
        ("sa", &expired, false),
        ("sa", &forged, false),
        ("sb", &good, false),
        ("sa", &revoked, false),
        ("sa", &unknown_vcluster, false),
    ] {
        let (layer, _) = layer();
        let (mut svc, _) = service(&layer);
        let s = session();
        call(&mut svc, handshake(&s, 1, "PLAIN")).await;
        let mut response = call(&mut svc, authenticate(&s, encode_plain(user, token))).await;
        assert_eq!(auth_result(&mut response).0 == 0, ok, "{user} with {token}");
        if ok {
            let principal = s.auth.principal();
            assert_eq!(principal.vcluster.as_deref(), Some("teamA"));
            assert_eq!(principal.source, PrincipalSource::ServiceAccountToken);
        }
    }
}

#[tokio::test]
async fn handshake_v0_switches_the_session_to_raw_tokens_until_the_exchange_ends() {
    let (layer, _) = layer();
    let (mut svc, _) = service(&layer);
    let s = session();
    call(&mut svc, handshake(&s, 0, "PLAIN")).await;
    assert!(s.auth.expects_raw_token(), "the next frame is a bare token");
    let token = KafkaRequest::raw_sasl_token(Bytes::from(encode_plain("alice", "alice-secret")), s.clone());
    let response = call(&mut svc, token).await;
    assert!(response.is_raw_token(), "answered as a bare token too");
    assert!(!s.auth.expects_raw_token(), "Kafka requests again after the exchange");
    assert_eq!(s.auth.principal().name, "alice");
}

#[tokio::test]
async fn unsupported_mechanisms_are_refused_with_the_list_offered() {
    let (layer, _) = layer();
    let (mut svc, _) = service(&layer);
    let mut response = call(&mut svc, handshake(&session(), 1, "GSSAPI")).await;
    assert_eq!(error_code(&mut response), 33);
    assert!(response.closes_connection());
}

#[tokio::test]
async fn pre_authentication_api_versions_come_from_the_backend_ranges_plus_sasl() {
    let (layer, _) = layer();
    let (mut svc, forwarded) = service(&layer);
    let s = session();
    s.cluster.api_versions.store(Some(Arc::new(vec![
        ApiVersionRange { api_key: ApiKey::Metadata as i16, min: 0, max: 9 },
        ApiVersionRange { api_key: ApiKey::Produce as i16, min: 0, max: 99 },
    ])));
    let body = RequestKind::ApiVersions(ApiVersionsRequest::default());
    let mut response = call(&mut svc, request(&s, ApiKey::ApiVersions, 3, body)).await;
    let ranges: Vec<(i16, i16, i16)> = match response.body() {
        Ok(ResponseKind::ApiVersions(body)) => {
            body.api_keys.iter().map(|v| (v.api_key, v.min_version, v.max_version)).collect()
        }
        other => panic!("{other:?}"),
    };
    let produce_max = ApiKey::Produce.valid_versions().max;
    assert!(ranges.contains(&(ApiKey::Metadata as i16, 0, 9)), "{ranges:?}");
    assert!(ranges.contains(&(ApiKey::Produce as i16, 3, produce_max)), "narrowed to the gateway's range");
    assert!(ranges.iter().any(|r| r.0 == ApiKey::SaslHandshake as i16), "the gateway serves SASL itself");
    assert!(!ranges.iter().any(|r| r.0 == ApiKey::Fetch as i16), "the backend did not offer Fetch");
    assert_eq!(forwarded.load(Ordering::SeqCst), 0);
}

#[test]
fn bad_authentication_config_names_the_key() {
    let bad = |yaml: &str| {
        let config: SaslConfig = serde_yaml::from_str(yaml).expect("parses");
        UserDirectory::from_config(&config).expect_err(yaml)
    };
    assert!(bad("{mechanisms: [GSSAPI], token_secret: x}").starts_with("mechanisms[0]"));
    assert!(bad("{users: [{username: a, credentials: ['plaintext']}]}").starts_with("users[0].credentials[0]"));
    assert!(bad("{}").starts_with("users: none listed"));
    assert!(bad("{mechanisms: [SCRAM-SHA-256], token_secret: x}").starts_with("token_secret"));
    let limit: SaslConfig = serde_yaml::from_str("{max_failures_per_ip_per_minute: 30}").expect("parses");
    assert_eq!(limit.max_failures_per_ip_per_minute, 30);
    assert_eq!(SaslConfig::default().max_failures_per_ip_per_minute, 0, "off by default");
}
