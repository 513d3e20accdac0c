//! Security end to end with rdkafka clients: clients authenticate to the gateway (SASL PLAIN, SCRAM, mTLS,
//! service-account tokens, over TLS or not), and the gateway authenticates to each backend with that
//! backend's own credentials (SCRAM to a tansu started with `--authentication`, users made with
//! `tansu user create`; TLS to a broker that requires it). Certificates are made by the tests (rcgen).

mod common;

use std::time::Duration;

use common::secure::{
    Pki, gateway_recording, gateway_yaml, hashed_credentials, scram_jaas, tansu_with_scram_users, tls_front, user_entry,
};
use common::{Tansu, TestGateway, client_config, create_topic_with, free_ports, read_all_with};
use kafka_protocol::messages::ApiKey;
use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord};

/// Produces `values` to partition 0 of `topic` and waits for every acknowledgement.
async fn produce(config: &ClientConfig, topic: &str, values: &[String]) {
    let producer: FutureProducer = config.clone().set("acks", "all").create().expect("producer");
    for value in values {
        producer
            .send(FutureRecord::<(), _>::to(topic).partition(0).payload(value), Duration::from_secs(20))
            .await
            .map_err(|(e, _)| e)
            .expect("acknowledged");
    }
}

fn values(prefix: &str, count: usize) -> Vec<String> {
    (0..count).map(|i| format!("{prefix}-{i}")).collect()
}

/// A client of the gateway authenticating with SASL.
fn sasl_client(bootstrap: &str, protocol: &str, mechanism: &str, user: &str, password: &str) -> ClientConfig {
    let mut c = client_config(bootstrap);
    c.set("security.protocol", protocol)
        .set("sasl.mechanisms", mechanism)
        .set("sasl.username", user)
        .set("sasl.password", password);
    c
}

/// A client going straight to an authenticating tansu with SCRAM-SHA-512 (or 256).
fn direct_scram(bootstrap: &str, user: &str, password: &str, sha512: bool) -> ClientConfig {
    let mechanism = if sha512 { "SCRAM-SHA-512" } else { "SCRAM-SHA-256" };
    sasl_client(bootstrap, "SASL_PLAINTEXT", mechanism, user, password)
}

/// A cluster entry of the gateway YAML for an authenticating tansu.
fn scram_cluster(name: &str, bootstrap: &str, mechanism: &str, user: &str, password: &str, extra: &str) -> String {
    format!(
        "  {name}:\n    bootstrap.servers: {bootstrap}\n    security.protocol: SASL_PLAINTEXT\n    sasl.mechanism: {mechanism}\n    \
         sasl.jaas.config: '{}'\n{extra}",
        scram_jaas(user, password)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sasl_ssl_plain_clients_reach_a_scram_backend_with_the_gateways_own_credentials() {
    let (backend, _data) = tansu_with_scram_users(&[("gateway-main", "backend-secret", true)]).await;
    let pki = Pki::new();
    let server = pki.server("gateway", &["127.0.0.1", "localhost"]);
    let keys = format!(
        "  security_protocol: SASL_SSL\n  tls: {{cert_file: '{}', key_file: '{}'}}\n  authentication:\n    users: [{}]\n",
        server.cert.display(),
        server.key.display(),
        user_entry("alice", &hashed_credentials("alice-secret"))
    );
    let cluster = scram_cluster("main", &backend.bootstrap(), "SCRAM-SHA-512", "gateway-main", "backend-secret", "");
    let (gateway, seen) =
        gateway_recording(&gateway_yaml(&keys, &cluster, "filters: [{type: record-sessions}]\n")).await;

    let mut alice = sasl_client(&gateway.bootstrap(), "SASL_SSL", "PLAIN", "alice", "alice-secret");
    alice.set("ssl.ca.location", pki.ca_file.to_string_lossy().as_ref());
    create_topic_with(alice.clone(), "secured", 1).await;
    let sent = values("tls-plain", 50);
    produce(&alice, "secured", &sent).await;
    assert_eq!(read_all_with(alice.clone(), "secured"), sent, "read back through the gateway");
    // The records really are on the backend, read with the backend's own credentials.
    let direct = direct_scram(&backend.bootstrap(), "gateway-main", "backend-secret", true);
    assert_eq!(read_all_with(direct, "secured"), sent);

    let produces = seen.with_key(ApiKey::Produce);
    assert!(!produces.is_empty() && produces.iter().all(|r| r.principal == "alice"), "{produces:?}");
    let (successes, failures) = gateway.running.auth_counts();
    assert!(successes >= 2 && failures == 0, "{successes} successes, {failures} failures");

    // A wrong password never gets a session.
    let intruder = sasl_client(&gateway.bootstrap(), "SASL_SSL", "PLAIN", "alice", "guess")
        .set("ssl.ca.location", pki.ca_file.to_string_lossy().as_ref())
        .clone();
    let consumer: BaseConsumer = intruder.create().expect("client");
    assert!(consumer.fetch_metadata(None, Duration::from_secs(3)).is_err(), "wrong password refused");
    assert!(gateway.running.auth_counts().1 >= 1, "the failure is counted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_backend_password_fails_the_backend_connection_not_silently() {
    // Proof that the backend really checks the gateway's SCRAM credentials (tansu's PLAIN would not).
    let (backend, _data) = tansu_with_scram_users(&[("gateway-main", "backend-secret", true)]).await;
    let keys = format!(
        "  security_protocol: SASL_PLAINTEXT\n  authentication:\n    users: [{}]\n",
        user_entry("alice", &hashed_credentials("alice-pw-1"))
    );
    let cluster = scram_cluster("main", &backend.bootstrap(), "SCRAM-SHA-512", "gateway-main", "not-the-password", "");
    let gateway = TestGateway::from_yaml(&gateway_yaml(&keys, &cluster, "")).await;
    let client: BaseConsumer =
        sasl_client(&gateway.bootstrap(), "SASL_PLAINTEXT", "PLAIN", "alice", "alice-pw-1").create().expect("client");
    assert!(client.fetch_metadata(None, Duration::from_secs(3)).is_err(), "no metadata without a backend session");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sasl_plaintext_scram_sha_512_clients_reach_a_backend_that_requires_tls() {
    let pki = Pki::new();
    // tansu listens on `plain`; clients (the gateway) must come through the TLS front on `tls`, which is
    // also what tansu advertises.
    let (plain, tls) = (free_ports(1), free_ports(1));
    let broker = Tansu::spawn(plain, tls, "tls_cluster", &[]).await;
    let _front = tls_front(&pki, tls, broker.port).await;
    let keys = format!(
        "  security_protocol: SASL_PLAINTEXT\n  authentication:\n    mechanisms: [SCRAM-SHA-512]\n    users: [{}]\n",
        user_entry("bob", &hashed_credentials("bob-secret"))
    );
    let cluster = format!(
        "  main:\n    bootstrap.servers: 127.0.0.1:{tls}\n    security.protocol: SSL\n    ssl.ca.location: '{}'\n",
        pki.ca_file.display()
    );
    let (gateway, seen) =
        gateway_recording(&gateway_yaml(&keys, &cluster, "filters: [{type: record-sessions}]\n")).await;

    let bob = sasl_client(&gateway.bootstrap(), "SASL_PLAINTEXT", "SCRAM-SHA-512", "bob", "bob-secret");
    create_topic_with(bob.clone(), "over-tls", 1).await;
    let sent = values("scram", 40);
    produce(&bob, "over-tls", &sent).await;
    assert_eq!(read_all_with(bob.clone(), "over-tls"), sent);
    assert!(seen.with_key(ApiKey::Produce).iter().all(|r| r.principal == "bob"));
    // Plain TCP to the TLS port gets nothing: the backend does require TLS.
    let direct: BaseConsumer = client_config(&format!("127.0.0.1:{tls}")).create().expect("client");
    assert!(direct.fetch_metadata(None, Duration::from_secs(2)).is_err());
    // SCRAM-SHA-256 is not offered by this gateway.
    let other: BaseConsumer =
        sasl_client(&gateway.bootstrap(), "SASL_PLAINTEXT", "SCRAM-SHA-256", "bob", "bob-secret").create().expect("c");
    assert!(other.fetch_metadata(None, Duration::from_secs(3)).is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ssl_client_certificates_become_principals_by_the_mapping_rules() {
    // The backend needs SCRAM-SHA-256 from the gateway: the client's certificate never reaches it.
    let (broker, _data) = tansu_with_scram_users(&[("gw-mtls", "gw-secret", false)]).await;
    let pki = Pki::new();
    let server = pki.server("gateway", &["127.0.0.1"]);
    let keys = format!(
        "  security_protocol: SSL\n  tls:\n    cert_file: '{}'\n    key_file: '{}'\n    client_auth: required\n    \
         ca_file: '{}'\n    principal_mapping_rules: 'RULE:^CN=(.*?),OU=(.*?),O=.*$/$1@$2/L,DEFAULT'\n",
        server.cert.display(),
        server.key.display(),
        pki.ca_file.display()
    );
    let cluster = scram_cluster("main", &broker.bootstrap(), "SCRAM-SHA-256", "gw-mtls", "gw-secret", "");
    let (gateway, seen) =
        gateway_recording(&gateway_yaml(&keys, &cluster, "filters: [{type: record-sessions}]\n")).await;

    let carol = pki.client("carol", "Carol", "Payments");
    let mut config = client_config(&gateway.bootstrap());
    config
        .set("security.protocol", "SSL")
        .set("ssl.ca.location", pki.ca_file.to_string_lossy().as_ref())
        .set("ssl.certificate.location", carol.cert.to_string_lossy().as_ref())
        .set("ssl.key.location", carol.key.to_string_lossy().as_ref());
    create_topic_with(config.clone(), "mtls", 1).await;
    let sent = values("mtls", 20);
    produce(&config, "mtls", &sent).await;
    assert_eq!(read_all_with(config.clone(), "mtls"), sent);
    let produces = seen.with_key(ApiKey::Produce);
    assert!(!produces.is_empty() && produces.iter().all(|r| r.principal == "carol@payments"), "{produces:?}");

    // Without a client certificate the TLS handshake fails.
    let mut anonymous = client_config(&gateway.bootstrap());
    anonymous.set("security.protocol", "SSL").set("ssl.ca.location", pki.ca_file.to_string_lossy().as_ref());
    let client: BaseConsumer = anonymous.create().expect("client");
    assert!(client.fetch_metadata(None, Duration::from_secs(3)).is_err(), "client_auth: required");
    // A certificate from another CA is refused too.
    let stranger_ca = Pki::new();
    let mallory = stranger_ca.client("mallory", "Mallory", "Payments");
    let mut forged = anonymous.clone();
    forged
        .set("ssl.certificate.location", mallory.cert.to_string_lossy().as_ref())
        .set("ssl.key.location", mallory.key.to_string_lossy().as_ref());
    let client: BaseConsumer = forged.create().expect("client");
    assert!(client.fetch_metadata(None, Duration::from_secs(3)).is_err(), "untrusted client certificate");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_account_token_authenticates_as_its_user_and_virtual_cluster() {
    use franzgate_auth::jwt::{TokenClaims, issue};
    // Behind the gateway, a broker that requires TLS.
    let pki = Pki::new();
    let (plain, tls) = (free_ports(1), free_ports(1));
    let broker = Tansu::spawn(plain, tls, "tls_cluster", &[]).await;
    let _front = tls_front(&pki, tls, broker.port).await;
    let secret = "a-pool-secret-of-some-length";
    let keys = format!("  security_protocol: SASL_PLAINTEXT\n  authentication: {{token_secret: '{secret}'}}\n");
    let cluster = format!(
        "  main:\n    bootstrap.servers: 127.0.0.1:{tls}\n    security.protocol: SSL\n    ssl.ca.location: '{}'\n",
        pki.ca_file.display()
    );
    let (gateway, seen) =
        gateway_recording(&gateway_yaml(&keys, &cluster, "filters: [{type: record-sessions}]\n")).await;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs();
    // The token comes from the admin API, which registers virtual cluster teamA (kept in the state topic on the
    // TLS backend, written with the gateway's own connection settings).
    let (status, body) = franzgate::admin::client::call_with_body(
        &gateway.admin(),
        "POST",
        "/admin/vclusters/v1/vcluster/teamA/username/sa",
        Some(("admin", "conduktor")),
        r#"{"lifeTimeSeconds": 3600}"#,
    )
    .await
    .expect("admin API");
    assert_eq!(status, 200, "{body}");
    let token = body["token"].as_str().expect("token").to_string();
    let claims = TokenClaims { username: "sa".into(), vcluster: Some("teamA".into()), exp: now + 3600, generation: 0 };

    let sa = sasl_client(&gateway.bootstrap(), "SASL_PLAINTEXT", "PLAIN", "sa", &token);
    create_topic_with(sa.clone(), "tokens", 1).await;
    let sent = values("token", 10);
    produce(&sa, "tokens", &sent).await;
    assert_eq!(read_all_with(sa, "tokens"), sent);
    let produces = seen.with_key(ApiKey::Produce);
    assert!(!produces.is_empty());
    assert!(produces.iter().all(|r| r.principal == "sa" && r.vcluster.as_deref() == Some("teamA")), "{produces:?}");

    let expired = issue(secret.as_bytes(), &TokenClaims { exp: now - 60, ..claims.clone() }).expect("token");
    let client: BaseConsumer =
        sasl_client(&gateway.bootstrap(), "SASL_PLAINTEXT", "PLAIN", "sa", &expired).create().expect("client");
    assert!(client.fetch_metadata(None, Duration::from_secs(3)).is_err(), "an expired token is refused");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_switch_uses_the_target_clusters_credentials_while_the_client_keeps_its_own() {
    let (main, _main_data) = tansu_with_scram_users(&[("gw-main", "main-secret", true)]).await;
    let (failover, _failover_data) = tansu_with_scram_users(&[("gw-failover", "failover-secret", false)]).await;
    // The topic exists on both sides, as replication would have made it.
    create_topic_with(direct_scram(&main.bootstrap(), "gw-main", "main-secret", true), "dr", 1).await;
    create_topic_with(direct_scram(&failover.bootstrap(), "gw-failover", "failover-secret", false), "dr", 1).await;

    let keys = format!(
        "  security_protocol: SASL_PLAINTEXT\n  authentication:\n    users: [{}]\n  admin_users: [{{username: {}, password: {}, admin: true}}]\n  \
         switch_drain_timeout_ms: 5000\n",
        user_entry("app", &hashed_credentials("app-secret")),
        common::ADMIN.0,
        common::ADMIN.1
    );
    let clusters = format!(
        "{}{}",
        scram_cluster("main", &main.bootstrap(), "SCRAM-SHA-512", "gw-main", "main-secret", ""),
        scram_cluster(
            "failover",
            &failover.bootstrap(),
            "SCRAM-SHA-256",
            "gw-failover",
            "failover-secret",
            "    gateway.roles: failover\n"
        )
    );
    let gateway = TestGateway::from_yaml(&gateway_yaml(&keys, &clusters, "")).await;

    // One producer, one set of client credentials, for the whole test.
    let app = sasl_client(&gateway.bootstrap(), "SASL_PLAINTEXT", "PLAIN", "app", "app-secret");
    let producer: FutureProducer = app.clone().set("acks", "all").create().expect("producer");
    let send = |value: String| {
        let producer = producer.clone();
        async move {
            // A send in flight across the switch may be refused once (retriable) and is retried.
            for _ in 0..10 {
                let record = FutureRecord::<(), _>::to("dr").partition(0).payload(&value);
                if producer.send(record, Duration::from_secs(10)).await.is_ok() {
                    return;
                }
            }
            panic!("{value} never acknowledged");
        }
    };
    for i in 0..5 {
        send(format!("before-{i}")).await;
    }
    gateway.switch_to("failover").await;
    for i in 0..5 {
        send(format!("after-{i}")).await;
    }
    let on_main = read_all_with(direct_scram(&main.bootstrap(), "gw-main", "main-secret", true), "dr");
    let on_failover = read_all_with(direct_scram(&failover.bootstrap(), "gw-failover", "failover-secret", false), "dr");
    assert_eq!(on_main, values("before", 5), "before the switch: main, with main's credentials");
    assert_eq!(on_failover, values("after", 5), "after the switch: failover, with failover's credentials");
}
