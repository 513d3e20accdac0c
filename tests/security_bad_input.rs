//! Bad input to the SASL and TLS front: each case gets a clear error, nothing panics, the connection closes,
//! and nothing reaches the backend before authentication succeeds. The backend here is a bare listener that
//! only counts connections (it never answers): any connection beyond the start-up probe's would be a leak.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::{Buf, BufMut, Bytes, BytesMut};
use common::secure::{gateway_yaml, hashed_credentials, user_entry};
use common::{TestGateway, closed_by_peer, read_frame, shared_cluster};
use franzgate_auth::jwt::{TokenClaims, issue};
use franzgate_auth::plain::encode_plain;
use franzgate_auth::scram::{ScramClient, ScramMechanism};
use kafka_protocol::messages::{
    ApiKey, MetadataRequest, MetadataResponse, RequestHeader, SaslAuthenticateRequest, SaslAuthenticateResponse,
    SaslHandshakeRequest, SaslHandshakeResponse,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};

const SECRET: &str = "pool-secret";

/// A listener standing where the backend would be, counting the connections it gets.
async fn counting_backend() -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("addr").to_string();
    let count = Arc::new(AtomicUsize::new(0));
    let counted = count.clone();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            counted.fetch_add(1, Ordering::SeqCst);
            held.push(stream);
        }
    });
    (address, count)
}

async fn sasl_gateway(backend: &str) -> TestGateway {
    let keys = format!(
        "  security_protocol: SASL_PLAINTEXT\n  authentication:\n    users: [{}]\n    token_secret: {SECRET}\n  \
         virtual_clusters: {{enabled: false}}\n",
        user_entry("alice", &hashed_credentials("alice-secret"))
    );
    TestGateway::from_yaml(&gateway_yaml(&keys, &format!("  main:\n    bootstrap.servers: {backend}\n"), "")).await
}

fn frame<Req: Encodable>(key: ApiKey, version: i16, correlation_id: i32, request: &Req) -> Vec<u8> {
    let header = RequestHeader::default()
        .with_request_api_key(key as i16)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(StrBytes::from_static_str("bad-input")));
    let mut out = BytesMut::new();
    out.put_i32(0);
    header.encode(&mut out, key.request_header_version(version)).expect("header");
    request.encode(&mut out, version).expect("body");
    let len = (out.len() - 4) as i32;
    out[..4].copy_from_slice(&len.to_be_bytes());
    out.to_vec()
}

async fn call<Req: Encodable, Resp: Decodable>(
    stream: &mut TcpStream,
    key: ApiKey,
    version: i16,
    request: &Req,
) -> Option<Resp> {
    stream.write_all(&frame(key, version, 9, request)).await.ok()?;
    let mut body = Bytes::from(read_frame(stream).await?);
    assert_eq!(body.get_i32(), 9, "correlation id");
    if key.response_header_version(version) >= 1 {
        body.advance(1);
    }
    Some(Resp::decode(&mut body, version).expect("decodes"))
}

async fn handshake(stream: &mut TcpStream, version: i16, mechanism: &'static str) -> SaslHandshakeResponse {
    let request = SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str(mechanism));
    call(stream, ApiKey::SaslHandshake, version, &request).await.expect("handshake answered")
}

async fn authenticate(stream: &mut TcpStream, token: Vec<u8>) -> SaslAuthenticateResponse {
    let request = SaslAuthenticateRequest::default().with_auth_bytes(Bytes::from(token));
    call(stream, ApiKey::SaslAuthenticate, 2, &request).await.expect("authenticate answered")
}

/// Logs in with PLAIN and returns the SaslAuthenticate answer; the caller checks what follows.
async fn plain_login(port: u16, user: &str, password: &str) -> (TcpStream, SaslAuthenticateResponse) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).await.expect("connect");
    assert_eq!(handshake(&mut stream, 1, "PLAIN").await.error_code, 0);
    let response = authenticate(&mut stream, encode_plain(user, password)).await;
    (stream, response)
}

async fn assert_refused(port: u16, user: &str, password: &str, reason: &str) {
    let (mut stream, response) = plain_login(port, user, password).await;
    assert_eq!(response.error_code, 58, "SASL_AUTHENTICATION_FAILED for {user}");
    let message = response.error_message.as_deref().unwrap_or_default().to_string();
    assert!(message.contains(reason), "`{message}` should say `{reason}`");
    assert!(!message.contains(password) || password.is_empty(), "the message never echoes the password");
    assert!(closed_by_peer(&mut stream).await, "a failed authentication closes the connection");
}

fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_credentials_and_out_of_order_messages_never_reach_the_backend() {
    let (backend, connections) = counting_backend().await;
    let gateway = sasl_gateway(&backend).await;
    let port = gateway.port_start;
    // The start-up probe is the gateway's own connection; wait for it so the count is stable.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while connections.load(Ordering::SeqCst) < 1 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(connections.load(Ordering::SeqCst), 1, "the probe");

    assert_refused(port, "alice", "wrong", "Invalid username or password").await;
    assert_refused(port, "nobody", "alice-secret", "Invalid username or password").await;

    let claims = TokenClaims { username: "sa".into(), vcluster: Some("teamA".into()), exp: now() + 600, generation: 0 };
    let expired = issue(SECRET.as_bytes(), &TokenClaims { exp: now() - 1, ..claims.clone() }).expect("token");
    assert_refused(port, "sa", &expired, "expired").await;
    let forged = issue(b"not the pool secret", &claims).expect("token");
    assert_refused(port, "sa", &forged, "signature").await;
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
    let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).expect("json"));
    assert_refused(port, "sa", &format!("{header}.{payload}."), "none").await;

    // SCRAM with a tampered nonce, then with a tampered proof.
    for tamper in ["nonce", "proof"] {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).await.expect("connect");
        assert_eq!(handshake(&mut stream, 1, "SCRAM-SHA-256").await.error_code, 0);
        let mut client = ScramClient::new(ScramMechanism::Sha256, "alice", "alice-secret").expect("client");
        let first = authenticate(&mut stream, client.client_first()).await;
        assert_eq!(first.error_code, 0);
        let last = String::from_utf8(client.server_first(&first.auth_bytes).expect("valid")).expect("utf-8");
        let bad = match tamper {
            "nonce" => last.replacen(",r=", ",r=x", 1),
            _ => {
                let (head, proof) = last.rsplit_once(",p=").expect("proof");
                let flipped =
                    if proof.starts_with('A') { proof.replacen('A', "B", 1) } else { format!("A{}", &proof[1..]) };
                format!("{head},p={flipped}")
            }
        };
        let response = authenticate(&mut stream, bad.into_bytes()).await;
        assert_eq!(response.error_code, 58, "SCRAM with a bad {tamper}");
        assert!(closed_by_peer(&mut stream).await);
    }

    // Messages out of order: authenticate before the handshake, a second handshake, a request before login.
    let mut stream = TcpStream::connect(("127.0.0.1", port)).await.expect("connect");
    assert_eq!(authenticate(&mut stream, encode_plain("alice", "alice-secret")).await.error_code, 34);
    assert!(closed_by_peer(&mut stream).await);
    let mut stream = TcpStream::connect(("127.0.0.1", port)).await.expect("connect");
    assert_eq!(handshake(&mut stream, 1, "PLAIN").await.error_code, 0);
    assert_eq!(handshake(&mut stream, 1, "PLAIN").await.error_code, 34, "ILLEGAL_SASL_STATE");
    assert!(closed_by_peer(&mut stream).await);
    let mut stream = TcpStream::connect(("127.0.0.1", port)).await.expect("connect");
    let request = MetadataRequest::default().with_topics(None);
    let response: MetadataResponse = call(&mut stream, ApiKey::Metadata, 4, &request).await.expect("answered");
    assert!(response.brokers.is_empty(), "nothing from the backend");
    assert!(closed_by_peer(&mut stream).await);
    // An unsupported mechanism, and a failed v0 (raw token) exchange.
    let mut stream = TcpStream::connect(("127.0.0.1", port)).await.expect("connect");
    assert_eq!(handshake(&mut stream, 1, "GSSAPI").await.error_code, 33, "UNSUPPORTED_SASL_MECHANISM");
    let mut stream = TcpStream::connect(("127.0.0.1", port)).await.expect("connect");
    assert_eq!(handshake(&mut stream, 0, "PLAIN").await.error_code, 0);
    let token = encode_plain("alice", "wrong");
    let mut raw = (token.len() as i32).to_be_bytes().to_vec();
    raw.extend_from_slice(&token);
    stream.write_all(&raw).await.expect("write");
    assert!(closed_by_peer(&mut stream).await, "v0 signals failure by closing");

    assert_eq!(connections.load(Ordering::SeqCst), 1, "no client traffic reached the backend");
    assert_eq!(gateway.running.auth_counts(), (0, 8), "every failed authentication is counted");

    // Positive control: once authenticated, a request does open a backend connection.
    let (mut stream, response) = plain_login(port, "alice", "alice-secret").await;
    assert_eq!(response.error_code, 0);
    stream.write_all(&frame(ApiKey::Metadata, 4, 10, &request)).await.expect("write");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while connections.load(Ordering::SeqCst) < 2 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(connections.load(Ordering::SeqCst), 2, "the authenticated request went to the backend");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handshake_v0_raw_tokens_authenticate_and_then_requests_flow() {
    let broker = shared_cluster().await;
    let gateway = sasl_gateway(&broker.bootstrap()).await;
    let mut stream = TcpStream::connect(("127.0.0.1", gateway.port_start)).await.expect("connect");
    assert_eq!(handshake(&mut stream, 0, "PLAIN").await.error_code, 0);
    let token = encode_plain("alice", "alice-secret");
    let mut raw = (token.len() as i32).to_be_bytes().to_vec();
    raw.extend_from_slice(&token);
    stream.write_all(&raw).await.expect("write");
    let reply = read_frame(&mut stream).await.expect("a bare (empty) token back");
    assert!(reply.is_empty(), "PLAIN's server answer is empty: {reply:?}");
    let request = MetadataRequest::default().with_topics(None);
    let response: MetadataResponse = call(&mut stream, ApiKey::Metadata, 4, &request).await.expect("answered");
    assert_eq!(response.brokers.len(), 1, "the Kafka cluster's one broker, through the gateway");
    assert_eq!(response.cluster_id.as_deref(), Some(broker.cluster_id()), "the answer came from that cluster");
    assert_eq!(gateway.running.auth_counts(), (1, 0));
}

#[test]
fn security_misconfiguration_is_refused_at_start_up_naming_the_key() {
    use franzgate::GatewayConfig;
    let load = |yaml: &str| GatewayConfig::from_yaml(yaml, "gw.yaml").err().map(|e| e.to_string()).unwrap_or_default();
    let e = load("gateway: {security_protocol: SSL}\nclusters: {main: {bootstrap.servers: 'a:1'}}");
    assert!(e.starts_with("gw.yaml: gateway.tls: required"), "{e}");
    let e = load("gateway: {routing: host}\nclusters: {main: {bootstrap.servers: 'a:1'}}");
    assert!(e.contains("gateway.routing"), "{e}");
    // Without virtual clusters there is no state topic to keep a generated token secret in, so SASL needs users
    // or a token secret.
    let e = load(
        "gateway: {security_protocol: SASL_PLAINTEXT, virtual_clusters: {enabled: false}}\nclusters: {main: {bootstrap.servers: 'a:1'}}",
    );
    assert!(e.starts_with("gw.yaml: gateway.authentication: required"), "{e}");
    let e = load(
        "gateway: {security_protocol: SASL_PLAINTEXT, authentication: {users: [{username: a, credentials: [x]}]}}\nclusters: {main: {bootstrap.servers: 'a:1'}}",
    );
    assert!(e.starts_with("gw.yaml: gateway.authentication.users[0].credentials[0]"), "{e}");
    let jaas = "main: {bootstrap.servers: 'a:1', security.protocol: SASL_SSL, sasl.mechanism: PLAIN, sasl.jaas.config: 'PlainLoginModule required username=\"k'}";
    let config = GatewayConfig::from_yaml(&format!("clusters: {{{jaas}}}"), "gw.yaml").expect("parses");
    let e = config.backend_clusters("gw.yaml").err().map(|e| e.to_string()).unwrap_or_default();
    assert!(e.contains("clusters.main.sasl.jaas.config: unterminated"), "{e}");
    // A TLS file that does not exist is named when the gateway is built.
    let yaml = "gateway: {security_protocol: SSL, tls: {cert_file: /nonexistent.pem, key_file: /nonexistent-key.pem}}\nclusters: {main: {bootstrap.servers: 'a:1'}}";
    let config = GatewayConfig::from_yaml(yaml, "gw.yaml").expect("parses");
    let e = franzgate::Gateway::new(&config, &franzgate::FilterRegistry::with_builtins(), "gw.yaml")
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(e.contains("gateway.tls.cert_file") && e.contains("/nonexistent.pem"), "{e}");
}
