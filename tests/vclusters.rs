//! Virtual clusters end to end, against Apache Kafka and rdkafka clients: service-account tokens from the admin
//! API, tenants confined to their prefixed topics and groups (Kafka's real group coordinator behind the
//! prefix), the state kept in a Kafka topic and shared by gateway instances, and every kind of bad input
//! refused.
//!
//! The tests share the binary's Kafka cluster. Each test's gateways keep their state in a topic of their own
//! (`virtual_clusters.state_topic`) and name their tenants uniquely, so no test sees another's virtual
//! clusters, topics or groups.

mod common;

use std::time::{Duration, Instant};

use common::{TestGateway, client_config, produce, read_all, shared_cluster, unique};
use franzgate::admin::client::call_with_body;
use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer, StreamConsumer};
use rdkafka::{Message, Offset, TopicPartitionList};
use serde_json::Value;

const SECRET: &str = "the-user-pool-secret";
const ADMIN: (&str, &str) = ("admin", "admin-secret");
const READER: (&str, &str) = ("reader", "reader-secret");

/// A SASL_PLAINTEXT gateway whose tenants log in with tokens; its state topic `state_topic` is re-read every
/// 300 ms.
async fn gateway(bootstrap: &str, state_topic: &str) -> TestGateway {
    let keys = format!(
        "  security_protocol: SASL_PLAINTEXT\n  authentication:\n    token_secret: {SECRET}\n  \
         admin_users: [{{username: {}, password: {}, admin: true}}, {{username: {}, password: {}}}]\n  \
         virtual_clusters: {{refresh_interval_ms: 300, state_topic: {state_topic}}}\n",
        ADMIN.0, ADMIN.1, READER.0, READER.1
    );
    let yaml = common::secure::gateway_yaml(&keys, &format!("  main:\n    bootstrap.servers: {bootstrap}\n"), "");
    TestGateway::from_yaml(&yaml).await
}

async fn admin(gateway: &TestGateway, method: &str, path: &str, body: &str) -> (u16, Value) {
    call_with_body(&gateway.admin(), method, path, Some(ADMIN), body.to_string()).await.expect("admin API")
}

/// A token for `user` of `vcluster`, from the admin API.
async fn token(gateway: &TestGateway, vcluster: &str, user: &str) -> String {
    let path = format!("/admin/vclusters/v1/vcluster/{vcluster}/username/{user}");
    let (status, body) = admin(gateway, "POST", &path, r#"{"lifeTimeSeconds": 3600}"#).await;
    assert_eq!(status, 200, "{body}");
    body["token"].as_str().expect("token in the answer").to_string()
}

fn tenant(gateway: &TestGateway, user: &str, token: &str) -> ClientConfig {
    common::tenant_config(&gateway.bootstrap(), user, token)
}

fn topics(config: &ClientConfig) -> Vec<String> {
    let client: BaseConsumer = config.create().expect("client");
    let metadata = client.fetch_metadata(None, Duration::from_secs(10)).expect("metadata");
    metadata.topics().iter().map(|t| t.name().to_string()).collect()
}

/// The offset group `group` committed for partition 0 of `topic`, asked by a client configured by `config`.
fn committed_offset(mut config: ClientConfig, group: &str, topic: &str) -> Option<Offset> {
    let consumer: BaseConsumer = config.set("group.id", group).create().expect("consumer");
    let mut wanted = TopicPartitionList::new();
    wanted.add_partition(topic, 0);
    let offsets = consumer.committed_offsets(wanted, Duration::from_secs(10)).expect("committed offsets");
    offsets.find_partition(topic, 0).map(|p| p.offset())
}

/// Logs in and asks for metadata; an error means the login (or the session) was refused. A refused login
/// only shows as a timeout, so the wait is short where refusal is expected and generous where it is not (the
/// whole suite runs in parallel on two cores).
fn can_connect(config: &ClientConfig) -> bool {
    connects_within(config, Duration::from_secs(15))
}

fn refused(config: &ClientConfig) -> bool {
    !connects_within(config, Duration::from_secs(4))
}

fn connects_within(config: &ClientConfig, wait: Duration) -> bool {
    let client: BaseConsumer = config.create().expect("client");
    client.fetch_metadata(None, wait).is_ok()
}

/// Tries to log in until the login is refused or `wait` has passed; true if it was refused.
fn refused_within(config: &ClientConfig, wait: Duration) -> bool {
    let deadline = Instant::now() + wait;
    loop {
        if refused(config) {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenants_see_only_their_prefixed_topics_and_groups() {
    let broker = shared_cluster().await;
    let gateway = gateway(&broker.bootstrap(), &unique("_franzgate_state")).await;
    let (a, b) = (unique("teamA"), unique("teamB"));

    // The seed's steps: a token for sa of teamA, `users` created and written through the gateway.
    let team_a = tenant(&gateway, "sa", &token(&gateway, &a, "sa").await);
    common::create_topic_with(team_a.clone(), "users", 1).await;
    produce(&team_a, "users", &["tom", "laura"]).await;
    assert!(topics(&team_a).contains(&"users".to_string()));
    assert!(!topics(&team_a).iter().any(|t| t.starts_with(&a)), "the tenant never sees its prefix");

    // The backend holds it as teamAusers.
    let direct = client_config(&broker.bootstrap());
    assert!(topics(&direct).contains(&format!("{a}users")));
    assert_eq!(read_all(&broker.bootstrap(), &format!("{a}users")), ["tom", "laura"]);

    // teamB sees no `users`, and naming teamA's backend topic in full gets it a topic of its own.
    let team_b = tenant(&gateway, "sb", &token(&gateway, &b, "sb").await);
    let seen_by_b = topics(&team_b);
    assert!(!seen_by_b.iter().any(|t| t.contains("users")), "teamB sees {seen_by_b:?}");
    common::create_topic_with(team_b.clone(), &format!("{a}users"), 1).await;
    produce(&team_b, &format!("{a}users"), &["from-b"]).await;
    assert_eq!(read_all(&broker.bootstrap(), &format!("{a}users")), ["tom", "laura"], "teamA's data is untouched");
    assert_eq!(read_all(&broker.bootstrap(), &format!("{b}{a}users")), ["from-b"]);
    assert!(!topics(&team_a).iter().any(|t| t.contains(&b)), "teamA does not see teamB's topics");

    // Consumer groups per tenant, with Kafka's group coordinator behind the prefix: join, consume, commit,
    // fetch the committed offsets.
    let consumer: StreamConsumer = team_a
        .clone()
        .set("group.id", "readers")
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    consumer.subscribe(&["users"]).expect("subscribe");
    let mut read = Vec::new();
    while read.len() < 2 {
        let message = tokio::time::timeout(Duration::from_secs(30), consumer.recv())
            .await
            .expect("records within 30 s")
            .expect("a record");
        assert_eq!(message.topic(), "users");
        read.push(String::from_utf8_lossy(message.payload().unwrap_or_default()).into_owned());
    }
    assert_eq!(read, ["tom", "laura"]);
    consumer.commit_consumer_state(rdkafka::consumer::CommitMode::Sync).expect("commit");
    let committed = consumer.committed(Duration::from_secs(10)).expect("committed offsets");
    assert_eq!(committed.find_partition("users", 0).map(|p| p.offset()), Some(Offset::Offset(2)));

    // On the backend the group is teamAreaders, holding the same offset for teamAusers.
    let direct = client_config(&broker.bootstrap());
    assert_eq!(committed_offset(direct, &format!("{a}readers"), &format!("{a}users")), Some(Offset::Offset(2)));

    // teamB's group of the same name is its own: nothing committed.
    assert_eq!(committed_offset(team_b.clone(), "readers", "users"), Some(Offset::Invalid));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_survives_a_restart_is_shared_by_instances_and_revocation_reaches_both() {
    let broker = shared_cluster().await;
    let state = unique("_franzgate_state");
    let shop = unique("shop");
    let first = gateway(&broker.bootstrap(), &state).await;
    let body = format!(r#"{{"prefix": "{shop}."}}"#);
    let (status, _) = admin(&first, "POST", &format!("/admin/vclusters/v1/vcluster/{shop}"), &body).await;
    assert_eq!(status, 201);
    let token = token(&first, &shop, "sa").await;
    common::create_topic_with(tenant(&first, "sa", &token), "orders", 1).await;
    assert!(topics(&client_config(&broker.bootstrap())).contains(&format!("{shop}.orders")));

    // A second instance (or the same after a restart) loads the state from the topic at start-up.
    let second = gateway(&broker.bootstrap(), &state).await;
    let (status, listed) = admin(&second, "GET", "/admin/vclusters/v1", "").await;
    assert_eq!(status, 200);
    let found = listed["vclusters"].as_array().and_then(|l| l.iter().find(|v| v["name"] == shop.as_str())).cloned();
    assert_eq!(found.as_ref().map(|s| s["prefix"].clone()), Some(Value::from(format!("{shop}."))), "{listed}");
    assert_eq!(found.as_ref().map(|s| s["serviceAccounts"][0]["username"].clone()), Some(Value::from("sa")));
    assert!(topics(&tenant(&second, "sa", &token)).contains(&"orders".to_string()), "the token works on both");
    drop(first);
    let restarted = gateway(&broker.bootstrap(), &state).await;
    assert!(can_connect(&tenant(&restarted, "sa", &token)), "the state survived the first instance");

    // Revoked on one instance, the account's tokens stop working on every instance, and its open sessions
    // are closed at their next request.
    let open: BaseConsumer = tenant(&restarted, "sa", &token).create().expect("client");
    open.fetch_metadata(None, Duration::from_secs(5)).expect("logged in before the revocation");
    let (status, body) =
        admin(&second, "DELETE", &format!("/admin/vclusters/v1/vcluster/{shop}/username/sa"), "").await;
    assert_eq!(status, 200, "{body}");
    assert!(refused_within(&tenant(&second, "sa", &token), Duration::from_secs(10)), "refused where revoked");
    assert!(
        refused_within(&tenant(&restarted, "sa", &token), Duration::from_secs(10)),
        "refused on the other instance after its refresh"
    );
    assert!(open.fetch_metadata(None, Duration::from_secs(3)).is_err(), "the open session was closed");

    // A new token revives the account; the old one stays dead.
    let renewed = self::token(&second, &shop, "sa").await;
    assert!(can_connect(&tenant(&second, "sa", &renewed)));
    assert!(refused(&tenant(&second, "sa", &token)));

    // The state is a compacted topic on the backend, holding one JSON record per change.
    let records = read_all(&broker.bootstrap(), &state);
    let registered = format!(r#""type":"virtualCluster","name":"{shop}","prefix":"{shop}.""#);
    assert!(records.iter().any(|r| r.contains(&registered)), "{records:?}");
    assert!(records.iter().any(|r| r.contains(r#""revoked":true"#)), "{records:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_tokens_long_names_and_admin_misuse_are_refused_and_change_nothing() {
    use franzgate_auth::jwt::{TokenClaims, issue};
    let broker = shared_cluster().await;
    let gateway = gateway(&broker.bootstrap(), &unique("_franzgate_state")).await;
    let a = unique("teamA");
    let good = token(&gateway, &a, "sa").await;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs();

    // A token (validly signed) for a virtual cluster the gateway does not know, and an expired one.
    let claims = TokenClaims { username: "sa".into(), vcluster: Some("ghost".into()), exp: now + 600, generation: 0 };
    let ghost = issue(SECRET.as_bytes(), &claims).expect("token");
    assert!(refused(&tenant(&gateway, "sa", &ghost)), "unknown virtual cluster");
    let expired = TokenClaims { vcluster: Some(a.clone()), exp: now - 5, ..claims };
    assert!(refused(&tenant(&gateway, "sa", &issue(SECRET.as_bytes(), &expired).expect("token"))));
    assert!(can_connect(&tenant(&gateway, "sa", &good)));

    // A topic name that exceeds 249 characters once prefixed is refused with INVALID_TOPIC_EXCEPTION; one that
    // still fits is created.
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    let admin_client: AdminClient<_> = tenant(&gateway, "sa", &good).create().expect("admin client");
    let too_long = "x".repeat(249 - a.len() + 1);
    let fits = "y".repeat(249 - a.len());
    let results = admin_client
        .create_topics(
            &[
                NewTopic::new(&too_long, 1, TopicReplication::Fixed(1)),
                NewTopic::new(&fits, 1, TopicReplication::Fixed(1)),
            ],
            &AdminOptions::new(),
        )
        .await
        .expect("answered");
    assert!(
        results.iter().all(|r| matches!(r, Err((_, rdkafka::types::RDKafkaErrorCode::InvalidTopic)))),
        "the whole request is refused: {results:?}"
    );
    let results = admin_client
        .create_topics(&[NewTopic::new(&fits, 1, TopicReplication::Fixed(1))], &AdminOptions::new())
        .await
        .expect("answered");
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    assert!(topics(&client_config(&broker.bootstrap())).contains(&format!("{a}{fits}")));

    // Admin API misuse: 4xx with a JSON message, and the state unchanged.
    let (_, before) = admin(&gateway, "GET", "/admin/vclusters/v1", "").await;
    let token_path = "/admin/vclusters/v1/vcluster/teamC/username/sc";
    let overlapping = format!("/admin/vclusters/v1/vcluster/{a}B");
    let reprefixed = format!("/admin/vclusters/v1/vcluster/{a}");
    let no_account = format!("/admin/vclusters/v1/vcluster/{a}/username/nobody");
    for (method, path, body, status) in [
        ("POST", token_path, "", 400),
        ("POST", token_path, "{not json", 400),
        ("POST", token_path, r#"{"lifeTimeSeconds": 0}"#, 400),
        ("POST", token_path, r#"{"lifeTimeSeconds": 60, "extra": 1}"#, 400),
        ("POST", "/admin/vclusters/v1/vcluster/team%2FC/username/sc", r#"{"lifeTimeSeconds": 60}"#, 400),
        ("POST", overlapping.as_str(), "", 409),
        ("POST", reprefixed.as_str(), r#"{"prefix": "other."}"#, 409),
        ("POST", "/admin/vclusters/v1/vcluster/passthrough", "", 400),
        ("DELETE", no_account.as_str(), "", 404),
        ("DELETE", "/admin/vclusters/v1/vcluster/ghost/username/sa", "", 404),
        ("GET", "/admin/vclusters/v1/vcluster/ghost", "", 404),
        ("PUT", "/admin/vclusters/v1", "", 405),
    ] {
        let (got, body) = admin(&gateway, method, path, body).await;
        assert_eq!(got, status, "{method} {path}: {body}");
        assert!(body["message"].is_string(), "{method} {path}: a JSON message, got {body}");
    }
    let big = format!(r#"{{"lifeTimeSeconds": 60, "pad": "{}"}}"#, "x".repeat(128 * 1024));
    assert_eq!(admin(&gateway, "POST", token_path, &big).await.0, 413, "bigger than admin_max_body_bytes");
    let (status, _) = call_with_body(&gateway.admin(), "POST", token_path, Some(READER), r#"{"lifeTimeSeconds": 60}"#)
        .await
        .expect("admin API");
    assert_eq!(status, 403, "a non-admin user may not issue tokens");
    let (status, _) = call_with_body(&gateway.admin(), "GET", "/admin/vclusters/v1", None, "").await.expect("admin");
    assert_eq!(status, 401);
    let (_, after) = admin(&gateway, "GET", "/admin/vclusters/v1", "").await;
    assert_eq!(before, after, "refused calls changed nothing");
    let metrics = franzgate::admin::client::call_text(&gateway.admin(), "/metrics", ADMIN).await.expect("metrics");
    assert!(metrics.contains("franzgate_admin_requests_refused_total 1"), "the 413 is counted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_mandatory_vclusters_a_principal_without_one_is_refused() {
    let broker = shared_cluster().await;
    let users = format!(
        "    users: [{}]\n",
        common::secure::user_entry("alice", &common::secure::hashed_credentials("alice-secret"))
    );
    // The users list goes under `authentication:`, which the helper opens last before these keys.
    let keys = format!(
        "  security_protocol: SASL_PLAINTEXT\n  authentication:\n    token_secret: {SECRET}\n{users}  \
         admin_users: [{{username: {}, password: {}, admin: true}}]\n  \
         virtual_clusters: {{mandatory: true, refresh_interval_ms: 300, state_topic: {}}}\n",
        ADMIN.0,
        ADMIN.1,
        unique("_franzgate_state")
    );
    let yaml =
        common::secure::gateway_yaml(&keys, &format!("  main:\n    bootstrap.servers: {}\n", broker.bootstrap()), "");
    let gateway = TestGateway::from_yaml(&yaml).await;
    let mut alice = client_config(&gateway.bootstrap());
    alice
        .set("security.protocol", "SASL_PLAINTEXT")
        .set("sasl.mechanisms", "PLAIN")
        .set("sasl.username", "alice")
        .set("sasl.password", "alice-secret");
    assert!(refused(&alice), "alice belongs to no virtual cluster");
    let sa = tenant(&gateway, "sa", &token(&gateway, &unique("teamA"), "sa").await);
    assert!(can_connect(&sa), "a tenant still gets in");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_switch_tenants_keep_their_prefix_and_new_state_goes_to_the_failover_cluster() {
    // Main is the shared cluster; the failover side is a cluster of this test's own.
    let (main, failover) = tokio::join!(shared_cluster(), common::own_kafka("failover"));
    let state = unique("_franzgate_state");
    let (a, b) = (unique("teamA"), unique("teamB"));
    let keys = format!(
        "  security_protocol: SASL_PLAINTEXT\n  authentication:\n    token_secret: {SECRET}\n  \
         virtual_clusters: {{refresh_interval_ms: 300, state_topic: {state}}}\n"
    );
    let gateway = TestGateway::start_pair(&main.bootstrap(), &failover.bootstrap(), &keys).await;
    let issue = |vcluster: String, user: &'static str| {
        let admin = gateway.admin();
        async move {
            let path = format!("/admin/vclusters/v1/vcluster/{vcluster}/username/{user}");
            let (status, body) =
                call_with_body(&admin, "POST", &path, Some(common::ADMIN), r#"{"lifeTimeSeconds": 600}"#)
                    .await
                    .expect("admin");
            assert_eq!(status, 200, "{body}");
            body["token"].as_str().expect("token").to_string()
        }
    };
    let team_a = tenant(&gateway, "sa", &issue(a.clone(), "sa").await);
    common::create_topic_with(team_a.clone(), "users", 1).await;
    // Replication would have made the topic on the failover side too.
    common::create_topic(&failover.bootstrap(), &format!("{a}users"), 1).await;
    produce(&team_a, "users", &["before"]).await;

    gateway.switch_to("failover").await;
    produce(&team_a, "users", &["after"]).await;
    assert_eq!(read_all(&main.bootstrap(), &format!("{a}users")), ["before"]);
    assert_eq!(read_all(&failover.bootstrap(), &format!("{a}users")), ["after"], "the same prefix on failover");

    // The state store follows the active cluster: a token issued now is recorded on the failover side.
    let team_b = tenant(&gateway, "sb", &issue(b.clone(), "sb").await);
    assert!(can_connect(&team_b));
    let records = read_all(&failover.bootstrap(), &state);
    let recorded = format!(r#""vcluster":"{b}","username":"sb""#);
    assert!(records.iter().any(|r| r.contains(&recorded)), "{records:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_python_works_as_a_tenant_through_the_prefix() {
    let broker = shared_cluster().await;
    let gateway = gateway(&broker.bootstrap(), &unique("_franzgate_state")).await;
    // The script checks that no topic or group it sees starts with `teamPy`: the tenant's prefix.
    let team = unique("teamPy");
    let token = token(&gateway, &team, "py").await;
    let python = common::tools_dir().join("venv/bin/python");
    assert!(python.exists(), "{} missing: run scripts/install-deps.sh", python.display());
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/clients/kafka_python_tenant.py");
    let output = tokio::process::Command::new(python)
        .args([script, &gateway.bootstrap(), "py", &token])
        .output()
        .await
        .expect("run kafka-python");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "kafka-python tenant check failed\nstdout: {stdout}\nstderr: {stderr}");
    assert!(stdout.starts_with("OK kafka-python tenant py"), "{stdout}");
    // On the backend: the prefixed topic holds the records, and the prefixed group their committed offset.
    assert_eq!(read_all(&broker.bootstrap(), &format!("{team}users")).len(), 10);
    let direct = client_config(&broker.bootstrap());
    assert_eq!(
        committed_offset(direct, &format!("{team}py-readers"), &format!("{team}users")),
        Some(Offset::Offset(10))
    );
}
