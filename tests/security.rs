//! Security end to end with rdkafka clients: clients authenticate to the gateway (SASL PLAIN, SCRAM, mTLS,
//! service-account tokens, over TLS or not), and the gateway authenticates to each backend with that
//! backend's own credentials: SASL PLAIN, SCRAM-SHA-256 and SCRAM-SHA-512 to an Apache Kafka listener that
//! requires them (so a wrong password is refused by Kafka itself), and TLS to a Kafka listener that serves SSL
//! from PEM files. Certificates are made by the tests (rcgen).
//!
//! The binary shares one SASL cluster (a backend user per test) and one SSL cluster; topics are unique per
//! test. Only the switch test starts a cluster of its own, for a failover side with different users.

mod common;

use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use common::secure::{
    Pki, gateway_recording, gateway_yaml, hashed_credentials, kafka_tls_spec, kafka_with_sasl_users, user_entry,
};
use common::{ClusterSpec, KafkaCluster, TestGateway, client_config, create_topic_with, read_all_with, unique};
use kafka_protocol::messages::ApiKey;
use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord};

/// Backend users of the shared SASL cluster, one per test that uses it.
const GATEWAY_MAIN: (&str, &str) = ("gateway-main", "backend-secret");
const GW_MTLS: (&str, &str) = ("gw-mtls", "gw-secret");
const GW_MAIN: (&str, &str) = ("gw-main", "main-secret");
const GW_MECH: (&str, &str) = ("gw-mech", "mech-secret");

const MECHANISMS: [&str; 3] = ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"];

/// The binary's Kafka cluster whose client listener requires SASL (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512).
async fn sasl_backend() -> &'static KafkaCluster {
    static CELL: OnceLock<KafkaCluster> = OnceLock::new();
    gateway_logs();
    common::kafka::shared(&CELL, || {
        ClusterSpec::new("sasl", &[1]).with_sasl(&[GATEWAY_MAIN, GW_MTLS, GW_MAIN, GW_MECH])
    })
    .await
}

/// The binary's Kafka cluster whose client listener is SSL only; clients trust its `ca_file()`.
async fn tls_backend() -> &'static KafkaCluster {
    static CELL: OnceLock<KafkaCluster> = OnceLock::new();
    gateway_logs();
    // The PKI lives until the cluster has copied its files.
    tokio::task::spawn_blocking(|| CELL.get_or_init(|| KafkaCluster::start(kafka_tls_spec(&Pki::new(), "tls"))))
        .await
        .expect("cluster start thread")
}

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

/// A client authenticating with SASL.
fn sasl_client(bootstrap: &str, protocol: &str, mechanism: &str, user: &str, password: &str) -> ClientConfig {
    let mut c = client_config(bootstrap);
    c.set("security.protocol", protocol)
        .set("sasl.mechanisms", mechanism)
        .set("sasl.username", user)
        .set("sasl.password", password);
    c
}

/// A client going straight to the SASL cluster as `user`.
fn direct(backend: &KafkaCluster, mechanism: &str, (user, password): (&str, &str)) -> ClientConfig {
    sasl_client(&backend.bootstrap(), "SASL_PLAINTEXT", mechanism, user, password)
}

/// `sasl.jaas.config` for `mechanism`.
fn jaas(mechanism: &str, user: &str, password: &str) -> String {
    let module = if mechanism == "PLAIN" {
        "org.apache.kafka.common.security.plain.PlainLoginModule"
    } else {
        "org.apache.kafka.common.security.scram.ScramLoginModule"
    };
    format!(r#"{module} required username="{user}" password="{password}";"#)
}

/// A cluster entry of the gateway YAML for a SASL_PLAINTEXT Kafka listener.
fn sasl_cluster(name: &str, bootstrap: &str, mechanism: &str, (user, password): (&str, &str), extra: &str) -> String {
    format!(
        "  {name}:\n    bootstrap.servers: {bootstrap}\n    security.protocol: SASL_PLAINTEXT\n    sasl.mechanism: {mechanism}\n    \
         sasl.jaas.config: '{}'\n{extra}",
        jaas(mechanism, user, password)
    )
}

/// A cluster entry of the gateway YAML for the SSL cluster.
fn tls_cluster(backend: &KafkaCluster) -> String {
    let ca = backend.ca_file().expect("a TLS cluster");
    format!(
        "  main:\n    bootstrap.servers: {}\n    security.protocol: SSL\n    ssl.ca.location: '{}'\n",
        backend.bootstrap(),
        ca.display()
    )
}

/// The gateways' warnings in this binary, captured so a test can read what a backend answered. Installed by
/// the cluster helpers, before any test starts a gateway; with `FRANZGATE_TEST_LOG` set, also on stderr.
fn gateway_logs() -> String {
    #[derive(Clone)]
    struct Capture(Arc<Mutex<Vec<u8>>>, bool);
    impl std::io::Write for Capture {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            if self.1 {
                std::io::stderr().write_all(buf)?;
            }
            self.0.lock().expect("log buffer").extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    let logs = LOGS.get_or_init(|| {
        let logs = Arc::new(Mutex::new(Vec::new()));
        let env = std::env::var("FRANZGATE_TEST_LOG").ok();
        let capture = Capture(logs.clone(), env.is_some());
        let filter = tracing_subscriber::EnvFilter::new(env.as_deref().unwrap_or("franzgate=warn"));
        let installed = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_ansi(false)
            .with_writer(move || capture.clone())
            .try_init();
        assert!(installed.is_ok(), "the log capture is the binary's first subscriber");
        logs
    });
    String::from_utf8_lossy(&logs.lock().expect("log buffer")).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sasl_ssl_plain_clients_reach_a_scram_backend_with_the_gateways_own_credentials() {
    let backend = sasl_backend().await;
    let pki = Pki::new();
    let server = pki.server("gateway", &["127.0.0.1", "localhost"]);
    let keys = format!(
        "  security_protocol: SASL_SSL\n  tls: {{cert_file: '{}', key_file: '{}'}}\n  authentication:\n    users: [{}]\n",
        server.cert.display(),
        server.key.display(),
        user_entry("alice", &hashed_credentials("alice-secret"))
    );
    let cluster = sasl_cluster("main", &backend.bootstrap(), "SCRAM-SHA-512", GATEWAY_MAIN, "");
    let (gateway, seen) =
        gateway_recording(&gateway_yaml(&keys, &cluster, "filters: [{type: record-sessions}]\n")).await;

    let topic = unique("secured");
    let mut alice = sasl_client(&gateway.bootstrap(), "SASL_SSL", "PLAIN", "alice", "alice-secret");
    alice.set("ssl.ca.location", pki.ca_file.to_string_lossy().as_ref());
    create_topic_with(alice.clone(), &topic, 1).await;
    let sent = values("tls-plain", 50);
    produce(&alice, &topic, &sent).await;
    assert_eq!(read_all_with(alice.clone(), &topic), sent, "read back through the gateway");
    // The records really are on the backend, read with the backend's own credentials.
    assert_eq!(read_all_with(direct(backend, "SCRAM-SHA-512", GATEWAY_MAIN), &topic), sent);

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
async fn the_gateway_logs_in_to_kafka_with_plain_scram_sha_256_and_scram_sha_512() {
    let backend = sasl_backend().await;
    for mechanism in MECHANISMS {
        let cluster = sasl_cluster("main", &backend.bootstrap(), mechanism, GW_MECH, "");
        let gateway = TestGateway::from_yaml(&gateway_yaml("", &cluster, "")).await;
        let topic = unique(&format!("mech-{}", mechanism.to_lowercase()));
        let client = client_config(&gateway.bootstrap());
        create_topic_with(client.clone(), &topic, 1).await;
        let sent = values(mechanism, 5);
        produce(&client, &topic, &sent).await;
        assert_eq!(read_all_with(client, &topic), sent, "through a gateway logged in with {mechanism}");
        assert_eq!(read_all_with(direct(backend, mechanism, GW_MECH), &topic), sent, "on Kafka, via {mechanism}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_backend_password_fails_the_backend_connection_not_silently() {
    // Kafka checks the password for every mechanism, PLAIN included: the gateway gets no backend session, its
    // client gets no metadata, and the gateway's log shows Kafka's SaslAuthenticate answer, error 58
    // (SASL_AUTHENTICATION_FAILED). The same settings with the right password work (the test above).
    let backend = sasl_backend().await;
    let keys = format!(
        "  security_protocol: SASL_PLAINTEXT\n  authentication:\n    users: [{}]\n",
        user_entry("alice", &hashed_credentials("alice-pw-1"))
    );
    for mechanism in MECHANISMS {
        let wrong = (GATEWAY_MAIN.0, "not-the-password");
        let cluster = sasl_cluster("main", &backend.bootstrap(), mechanism, wrong, "");
        let gateway = TestGateway::from_yaml(&gateway_yaml(&keys, &cluster, "")).await;
        let client: BaseConsumer = sasl_client(&gateway.bootstrap(), "SASL_PLAINTEXT", "PLAIN", "alice", "alice-pw-1")
            .create()
            .expect("client");
        assert!(client.fetch_metadata(None, Duration::from_secs(3)).is_err(), "{mechanism}: no backend session");
        let refusal = format!("refused the gateway's {mechanism} credentials for `{}`: error code 58", wrong.0);
        let deadline = Instant::now() + Duration::from_secs(10);
        while !gateway_logs().contains(&refusal) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let logs = gateway_logs();
        let line = logs.lines().find(|l| l.contains(&refusal));
        assert!(line.is_some_and(|l| l.contains("Authentication failed")), "{mechanism}: Kafka's refusal in\n{logs}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sasl_plaintext_scram_sha_512_clients_reach_a_backend_that_requires_tls() {
    // Kafka's client listener is SSL only (PEM key store), so the gateway must speak TLS to it.
    let backend = tls_backend().await;
    let keys = format!(
        "  security_protocol: SASL_PLAINTEXT\n  authentication:\n    mechanisms: [SCRAM-SHA-512]\n    users: [{}]\n",
        user_entry("bob", &hashed_credentials("bob-secret"))
    );
    let (gateway, seen) =
        gateway_recording(&gateway_yaml(&keys, &tls_cluster(backend), "filters: [{type: record-sessions}]\n")).await;

    let topic = unique("over-tls");
    let bob = sasl_client(&gateway.bootstrap(), "SASL_PLAINTEXT", "SCRAM-SHA-512", "bob", "bob-secret");
    create_topic_with(bob.clone(), &topic, 1).await;
    let sent = values("scram", 40);
    produce(&bob, &topic, &sent).await;
    assert_eq!(read_all_with(bob.clone(), &topic), sent);
    assert_eq!(read_all_with(backend.client_config(), &topic), sent, "on Kafka, read over TLS");
    assert!(seen.with_key(ApiKey::Produce).iter().all(|r| r.principal == "bob"));
    // Plain TCP to Kafka's port gets nothing: the backend does require TLS.
    let plain: BaseConsumer = client_config(&backend.bootstrap()).create().expect("client");
    assert!(plain.fetch_metadata(None, Duration::from_secs(2)).is_err());
    // SCRAM-SHA-256 is not offered by this gateway.
    let other: BaseConsumer =
        sasl_client(&gateway.bootstrap(), "SASL_PLAINTEXT", "SCRAM-SHA-256", "bob", "bob-secret").create().expect("c");
    assert!(other.fetch_metadata(None, Duration::from_secs(3)).is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ssl_client_certificates_become_principals_by_the_mapping_rules() {
    // The backend needs SCRAM-SHA-256 from the gateway: the client's certificate never reaches it.
    let backend = sasl_backend().await;
    let pki = Pki::new();
    let server = pki.server("gateway", &["127.0.0.1"]);
    let keys = format!(
        "  security_protocol: SSL\n  tls:\n    cert_file: '{}'\n    key_file: '{}'\n    client_auth: required\n    \
         ca_file: '{}'\n    principal_mapping_rules: 'RULE:^CN=(.*?),OU=(.*?),O=.*$/$1@$2/L,DEFAULT'\n",
        server.cert.display(),
        server.key.display(),
        pki.ca_file.display()
    );
    let cluster = sasl_cluster("main", &backend.bootstrap(), "SCRAM-SHA-256", GW_MTLS, "");
    let (gateway, seen) =
        gateway_recording(&gateway_yaml(&keys, &cluster, "filters: [{type: record-sessions}]\n")).await;

    let topic = unique("mtls");
    let carol = pki.client("carol", "Carol", "Payments");
    let mut config = client_config(&gateway.bootstrap());
    config
        .set("security.protocol", "SSL")
        .set("ssl.ca.location", pki.ca_file.to_string_lossy().as_ref())
        .set("ssl.certificate.location", carol.cert.to_string_lossy().as_ref())
        .set("ssl.key.location", carol.key.to_string_lossy().as_ref());
    create_topic_with(config.clone(), &topic, 1).await;
    let sent = values("mtls", 20);
    produce(&config, &topic, &sent).await;
    assert_eq!(read_all_with(config.clone(), &topic), sent);
    assert_eq!(read_all_with(direct(backend, "SCRAM-SHA-256", GW_MTLS), &topic), sent, "on Kafka");
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
    // Behind the gateway, a Kafka listener that requires TLS.
    let backend = tls_backend().await;
    let secret = "a-pool-secret-of-some-length";
    // A state topic of this test's own: other gateways of the binary use the same cluster.
    let keys = format!(
        "  security_protocol: SASL_PLAINTEXT\n  authentication: {{token_secret: '{secret}'}}\n  \
         virtual_clusters: {{state_topic: {}}}\n",
        unique("_franzgate_state")
    );
    let (gateway, seen) =
        gateway_recording(&gateway_yaml(&keys, &tls_cluster(backend), "filters: [{type: record-sessions}]\n")).await;
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

    let topic = unique("tokens");
    let sa = sasl_client(&gateway.bootstrap(), "SASL_PLAINTEXT", "PLAIN", "sa", &token);
    create_topic_with(sa.clone(), &topic, 1).await;
    let sent = values("token", 10);
    produce(&sa, &topic, &sent).await;
    assert_eq!(read_all_with(sa, &topic), sent);
    assert_eq!(read_all_with(backend.client_config(), &format!("teamA{topic}")), sent, "prefixed on Kafka");
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
    // The failover side is a cluster of this test's own: it knows only gw-failover, main only gw-main.
    let failover_user = ("gw-failover", "failover-secret");
    let failover_users = [failover_user];
    let (main, failover) = tokio::join!(sasl_backend(), kafka_with_sasl_users(&failover_users));
    let topic = unique("dr");
    // The topic exists on both sides, as replication would have made it.
    create_topic_with(direct(main, "SCRAM-SHA-512", GW_MAIN), &topic, 1).await;
    create_topic_with(direct(&failover, "SCRAM-SHA-256", failover_user), &topic, 1).await;

    let keys = format!(
        "  security_protocol: SASL_PLAINTEXT\n  authentication:\n    users: [{}]\n  admin_users: [{{username: {}, password: {}, admin: true}}]\n  \
         switch_drain_timeout_ms: 5000\n",
        user_entry("app", &hashed_credentials("app-secret")),
        common::ADMIN.0,
        common::ADMIN.1
    );
    let clusters = format!(
        "{}{}",
        sasl_cluster("main", &main.bootstrap(), "SCRAM-SHA-512", GW_MAIN, ""),
        sasl_cluster(
            "failover",
            &failover.bootstrap(),
            "SCRAM-SHA-256",
            failover_user,
            "    gateway.roles: failover\n"
        )
    );
    let gateway = TestGateway::from_yaml(&gateway_yaml(&keys, &clusters, "")).await;

    // One producer, one set of client credentials, for the whole test.
    let app = sasl_client(&gateway.bootstrap(), "SASL_PLAINTEXT", "PLAIN", "app", "app-secret");
    let producer: FutureProducer = app.clone().set("acks", "all").create().expect("producer");
    let send = |value: String| {
        let producer = producer.clone();
        let topic = topic.clone();
        async move {
            // A send in flight across the switch may be refused once (retriable) and is retried.
            for _ in 0..10 {
                let record = FutureRecord::<(), _>::to(&topic).partition(0).payload(&value);
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
    let on_main = read_all_with(direct(main, "SCRAM-SHA-512", GW_MAIN), &topic);
    let on_failover = read_all_with(direct(&failover, "SCRAM-SHA-256", failover_user), &topic);
    assert_eq!(on_main, values("before", 5), "before the switch: main, with main's credentials");
    assert_eq!(on_failover, values("after", 5), "after the switch: failover, with failover's credentials");
}
