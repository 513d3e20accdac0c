//! The client matrix for franz-go (Go; the kgo driver in tests/clients/franz-go, built by scripts/install-deps.sh
//! at the release its go.mod pins): produce with acks=all and an idempotent producer, consume in a consumer group
//! with commits (classic, and KIP-848 `group.protocol=consumer` through kgo's ServerSideBalancer), transactions,
//! as a passthrough principal and as a virtual-cluster tenant with SASL PLAIN, and a switch to the failover
//! cluster mid-stream, all through the gateway against Apache Kafka.
//!
//! Each test writes its cells (client, version, capability, pass) to target/client-matrix/franz-go.jsonl. The
//! switch test uses the binary's mirrored pair (`main`, `failover`); the others the single-node shared cluster,
//! which starts in seconds on a busy machine.

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::client_matrix::{self as client_matrix, Cell, Driver, Outcome, args, keys, mirrored_pair};
use common::{KafkaCluster, TestGateway, create_topic, read_all, shared_cluster, unique};
use franzgate::admin::client::call_with_body;
use rdkafka::consumer::{BaseConsumer, Consumer};

const FAMILY: &str = "franz-go";
const PARTITIONS: i32 = 3;

fn driver() -> Driver {
    client_matrix::franz_go_driver()
}

fn installed_version() -> String {
    client_matrix::franz_go_version()
}

/// A cell of this family's row in the matrix.
fn cell(capability: &'static str) -> Cell {
    Cell::new(FAMILY, installed_version(), capability)
}

fn assert_clean(what: &str, outcome: &Outcome) {
    client_matrix::assert_clean(FAMILY, Some(&installed_version()), what, outcome)
}

fn committed_total(cluster: &KafkaCluster, group: &str, topic: &str) -> i64 {
    client_matrix::committed_total(cluster, group, topic, PARTITIONS)
}

/// Produces `count` records with keys `key-*` (acks=all, idempotent) through `bootstrap` with `extra` arguments.
async fn produce_idempotently(bootstrap: &str, topic: &str, count: &str, extra: &[(&str, &str)]) -> Outcome {
    let mut pairs = vec![("bootstrap", bootstrap), ("topic", topic), ("count", count), ("acks", "all")];
    pairs.push(("idempotent", "true"));
    pairs.extend_from_slice(extra);
    driver().run("produce", &args(&pairs), Duration::from_secs(90)).await
}

/// Consumes `count` distinct keys in `group` with `protocol`, committing, through `bootstrap`.
async fn consume(bootstrap: &str, topic: &str, group: &str, protocol: &str, extra: &[(&str, &str)]) -> Outcome {
    let mut pairs = vec![("bootstrap", bootstrap), ("topic", topic), ("group", group), ("count", "300")];
    pairs.extend_from_slice(&[("protocol", protocol), ("timeout_ms", "60000")]);
    pairs.extend_from_slice(extra);
    driver().run("consume", &args(&pairs), Duration::from_secs(90)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn franz_go_produces_idempotently_and_consumes_in_a_classic_group_as_a_passthrough_principal() {
    common::init_test_logging();
    let main = shared_cluster().await;
    let gateway = TestGateway::start(&main.bootstrap(), "").await;
    let (topic, group) = (unique("fg-orders"), unique("fg-group"));
    let bootstrap = gateway.bootstrap();
    create_topic(&bootstrap, &topic, PARTITIONS).await;

    let (produce_cell, idempotent_cell) = (cell("produce"), cell("idempotent"));
    let produced = produce_idempotently(&bootstrap, &topic, "300", &[]).await;
    assert_clean("idempotent produce", &produced);
    assert_eq!(produced.count("produced"), 300);
    assert_eq!(produced.result["idempotent"], true, "kgo asked for a producer id: {}", produced.result);
    let on_backend = read_all(&main.bootstrap(), &topic);
    assert_eq!(on_backend.len(), 300, "no record written twice");
    assert_eq!(on_backend.into_iter().collect::<BTreeSet<_>>(), keys("key", 300), "every record on the backend");
    drop((produce_cell, idempotent_cell));

    let _group_cell = cell("consume-group");
    let consumed = consume(&bootstrap, &topic, &group, "classic", &[]).await;
    assert_clean("classic group consume", &consumed);
    assert_eq!(consumed.result["group_protocol"], "classic", "{}", consumed.result);
    assert_eq!(consumed.keys(), keys("key", 300), "every key once consumed");
    assert_eq!(committed_total(main, &group, &topic), 300, "the group's commits reached the backend");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn franz_go_consumes_with_the_kip848_consumer_group_protocol_through_the_gateway() {
    common::init_test_logging();
    let _kip848 = cell("kip848");
    let main = shared_cluster().await;
    let gateway = TestGateway::start(&main.bootstrap(), "").await;
    let (topic, group) = (unique("fg-848"), unique("fg-848-group"));
    let bootstrap = gateway.bootstrap();
    create_topic(&bootstrap, &topic, PARTITIONS).await;
    assert_clean("produce", &produce_idempotently(&bootstrap, &topic, "300", &[]).await);

    let consumed = consume(&bootstrap, &topic, &group, "consumer", &[]).await;
    assert_clean("KIP-848 group consume", &consumed);
    // The driver watched kgo's requests: ConsumerGroupHeartbeat only, no JoinGroup (no silent fallback).
    assert_eq!(consumed.result["group_protocol"], "consumer", "{}", consumed.result);
    assert_eq!(consumed.keys(), keys("key", 300), "every key once consumed");
    assert_eq!(committed_total(main, &group, &topic), 300, "the group's commits reached the backend");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn franz_go_produces_in_committed_transactions_as_a_passthrough_principal() {
    common::init_test_logging();
    let _cell = cell("transactions");
    let main = shared_cluster().await;
    let gateway = TestGateway::start(&main.bootstrap(), "").await;
    let (topic, transactional_id) = (unique("fg-txn"), unique("fg-txn-id"));
    let bootstrap = gateway.bootstrap();
    create_topic(&bootstrap, &topic, PARTITIONS).await;
    let produced = produce_idempotently(&bootstrap, &topic, "250", &[("transactional_id", &transactional_id)]).await;
    assert_clean("transactional produce", &produced);
    assert_eq!(produced.count("produced"), 250);
    assert_eq!(produced.count("aborts"), 0, "{}", produced.result);
    // Read on the backend by a read_committed reader (librdkafka's default): all three transactions committed,
    // each record once.
    let on_backend = read_all(&main.bootstrap(), &topic);
    assert_eq!(on_backend.len(), 250, "each record once");
    assert_eq!(on_backend.into_iter().collect::<BTreeSet<_>>(), keys("key", 250));
}

/// The vclusters test's gateway: SASL_PLAINTEXT, tenants log in with tokens from the admin API.
const SECRET: &str = "franz-go-token-secret";
const ADMIN: (&str, &str) = ("admin", "admin-secret");

async fn tenant_gateway(bootstrap: &str) -> TestGateway {
    let keys = format!(
        "  security_protocol: SASL_PLAINTEXT\n  authentication:\n    token_secret: {SECRET}\n  \
         admin_users: [{{username: {}, password: {}, admin: true}}]\n  \
         virtual_clusters: {{refresh_interval_ms: 300, state_topic: {}}}\n",
        ADMIN.0,
        ADMIN.1,
        unique("_franzgate_state")
    );
    let yaml = common::secure::gateway_yaml(&keys, &format!("  main:\n    bootstrap.servers: {bootstrap}\n"), "");
    TestGateway::from_yaml(&yaml).await
}

/// A service-account token for `user` of `vcluster`, from the admin API.
async fn token(gateway: &TestGateway, vcluster: &str, user: &str) -> String {
    let path = format!("/admin/vclusters/v1/vcluster/{vcluster}/username/{user}");
    let (status, body) =
        call_with_body(&gateway.admin(), "POST", &path, Some(ADMIN), r#"{"lifeTimeSeconds": 3600}"#.to_string())
            .await
            .expect("admin API");
    assert_eq!(status, 200, "{body}");
    body["token"].as_str().expect("token in the answer").to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn franz_go_produces_and_consumes_as_a_sasl_tenant_of_a_virtual_cluster() {
    let _tenant_cell = cell("tenant");
    let main = shared_cluster().await;
    let gateway = tenant_gateway(&main.bootstrap()).await;
    let team = unique("teamFg");
    let token = token(&gateway, &team, "fg").await;
    let bootstrap = gateway.bootstrap();
    let sasl = [("user", "fg"), ("password", token.as_str()), ("mechanism", "PLAIN")];
    common::create_topic_with(common::tenant_config(&bootstrap, "fg", &token), "orders", PARTITIONS).await;

    let produced = produce_idempotently(&bootstrap, "orders", "300", &sasl).await;
    assert_clean("tenant produce", &produced);
    assert_eq!(produced.count("produced"), 300);
    let consumed = consume(&bootstrap, "orders", "readers", "classic", &sasl).await;
    assert_clean("tenant consume", &consumed);
    assert_eq!(consumed.keys(), keys("key", 300), "every key once consumed");

    // On the backend: the tenant's names carry its prefix.
    let (topic, group) = (format!("{team}orders"), format!("{team}readers"));
    let on_backend = read_all(&main.bootstrap(), &topic);
    assert_eq!(on_backend.into_iter().collect::<BTreeSet<_>>(), keys("key", 300), "in the prefixed topic");
    assert_eq!(committed_total(main, &group, &topic), 300, "the prefixed group's commits");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn franz_go_authenticates_with_scram_sha_256_and_512_as_a_gateway_user() {
    use common::secure::{gateway_yaml, hashed_credentials, user_entry};
    let main = shared_cluster().await;
    let gateway_keys = format!(
        "  security_protocol: SASL_PLAINTEXT\n  authentication:\n    users: [{}]\n",
        user_entry("fguser", &hashed_credentials("fg-secret"))
    );
    let gateway = TestGateway::from_yaml(&gateway_yaml(
        &gateway_keys,
        &format!("  main:\n    bootstrap.servers: {}\n", main.bootstrap()),
        "",
    ))
    .await;
    let bootstrap = gateway.bootstrap();
    for mechanism in ["SCRAM-SHA-256", "SCRAM-SHA-512"] {
        let (topic, group) = (unique("fg-scram"), unique("fg-scram-group"));
        let sasl = [("user", "fguser"), ("password", "fg-secret"), ("mechanism", mechanism)];
        // Topics are created through the gateway as this user (auto-creation is not relied upon).
        let admin = common::client_config(&bootstrap)
            .set("security.protocol", "SASL_PLAINTEXT")
            .set("sasl.mechanisms", mechanism)
            .set("sasl.username", "fguser")
            .set("sasl.password", "fg-secret")
            .clone();
        common::create_topic_with(admin, &topic, PARTITIONS).await;
        assert_clean(mechanism, &produce_idempotently(&bootstrap, &topic, "300", &sasl).await);
        let consumed = consume(&bootstrap, &topic, &group, "classic", &sasl).await;
        assert_clean(mechanism, &consumed);
        assert_eq!(consumed.keys(), keys("key", 300), "{mechanism}: every key consumed");
    }
}

/// Waits until `topic` exists with `partitions` partitions on `cluster` (MirrorMaker creates it there).
async fn await_topic_on(cluster: &'static KafkaCluster, topic: &str, partitions: usize) {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let t = topic.to_string();
        let found = tokio::task::spawn_blocking(move || {
            let client: BaseConsumer = cluster.client_config().create().expect("metadata client");
            let Ok(md) = client.fetch_metadata(Some(&t), Duration::from_secs(5)) else { return 0 };
            md.topics().first().filter(|t| t.error().is_none()).map_or(0, |t| t.partitions().len())
        })
        .await
        .expect("metadata thread");
        if found == partitions {
            return;
        }
        assert!(Instant::now() < deadline, "MirrorMaker did not create {topic} on {} in 90 s", cluster.name());
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Each Kafka cluster gives a topic its own id (MirrorMaker's copy has another); franz-go takes a known name
/// with a new id for a deleted and re-created topic and fails its records with UNKNOWN_TOPIC_ID. The gateway's
/// `topic-ids` filter shows the failover's copy under main's id, so the producer and the consumer carry on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn franz_go_producer_and_group_consumer_carry_on_across_a_switch_to_the_failover() {
    common::init_test_logging();
    let _switch_cell = cell("switch");
    let (main, failover) = mirrored_pair().await;
    let gateway = TestGateway::start_pair(&main.bootstrap(), &failover.bootstrap(), "").await;
    let (topic, group) = (unique("fg-switch"), unique("fg-switch-group"));
    let bootstrap = gateway.bootstrap();
    create_topic(&bootstrap, &topic, PARTITIONS).await;
    // MirrorMaker would create it on the failover too (and copies into it); made here so the test need not
    // wait for MirrorMaker's topic refresh.
    create_topic(&failover.bootstrap(), &topic, PARTITIONS).await;
    await_topic_on(failover, &topic, PARTITIONS as usize).await;

    let mut consumer = driver().start(
        "consume",
        &args(&[
            ("bootstrap", &bootstrap),
            ("topic", &topic),
            ("group", &group),
            ("count", "1000"),
            ("timeout_ms", "100000"),
        ]),
    );
    // Not idempotent: an idempotent producer across a switch is issue 17.
    let mut producer = driver().start(
        "produce",
        &args(&[
            ("bootstrap", &bootstrap),
            ("topic", &topic),
            ("count", "1000"),
            ("rate", "100"),
            ("acks", "all"),
            ("idempotent", "false"),
        ]),
    );
    producer.await_progress("acked", 300, Duration::from_secs(60)).await;
    consumer.await_progress("consumed", 100, Duration::from_secs(60)).await;
    gateway.switch_to("failover").await;

    let produced = producer.finish(Duration::from_secs(120)).await;
    assert_clean("producer across the switch", &produced);
    assert_eq!(produced.count("produced"), 1000, "every record acknowledged");
    let on_main: BTreeSet<String> = read_all(&main.bootstrap(), &topic).into_iter().collect();
    let on_failover: BTreeSet<String> = read_all(&failover.bootstrap(), &topic).into_iter().collect();
    let stored: BTreeSet<String> = on_main.union(&on_failover).cloned().collect();
    let lost: Vec<_> = keys("key", 1000).difference(&stored).cloned().collect();
    assert!(lost.is_empty(), "acknowledged but on neither cluster: {lost:?}");
    let after_switch: BTreeSet<String> = on_failover.difference(&on_main).cloned().collect();
    assert!(!after_switch.is_empty() && !on_main.contains("key-999"), "the later records went to the failover");

    let consumed = consumer.finish(Duration::from_secs(120)).await;
    // The member main's group knew is unknown to the failover's: its commit is fenced by the gateway and its
    // heartbeat refused by the broker, both UNKNOWN_MEMBER_ID (or GROUP_ID_NOT_FOUND from Kafka for a commit
    // naming a member of a group the failover does not have yet), and franz-go rejoins. The partitions it keeps
    // across that rejoin keep main's positions; where the failover's copy does not reach that far yet (offsets
    // are per cluster, MirrorMaker copies behind), franz-go's position check (OffsetForLeaderEpoch, KIP-320)
    // reports "lost records" and resets to the start: records are read again, none is missed. Nothing else may
    // fail.
    let errors = consumed.errors();
    assert!(
        errors.iter().all(|e| {
            e.contains("UNKNOWN_MEMBER_ID") || e.starts_with("commit: GROUP_ID_NOT_FOUND") || e.contains("lost records")
        }),
        "errors besides the member unknown on the failover and a reset position: {errors:?}\nstderr:\n{}",
        consumed.stderr
    );
    let seen = consumed.keys();
    let report = format!("errors: {errors:?}\nstderr:\n{}", consumed.stderr);
    let resumed: Vec<_> = after_switch.intersection(&seen).collect();
    assert!(!resumed.is_empty(), "the consumer did not resume on the failover\n{report}");
    // Not asserted: that it read every later key. Offsets are per cluster: a partition franz-go keeps across its
    // rejoin (cooperative-sticky) keeps main's position, and where MirrorMaker had not copied main's records yet
    // when the switch came, the failover stored later records below that position, which the consumer skips
    // (seen in 2 of 7 runs). After a planned switchover that waits for MirrorMaker the offsets usually match;
    // until then this is the unplanned switch's known gap for consumers that keep their positions.
    let missed: Vec<_> = after_switch.difference(&seen).collect();
    eprintln!(
        "franz-go switch: {} keys written after the switch, the consumer missed {}; its errors: {errors:?}",
        after_switch.len(),
        missed.len()
    );
}
