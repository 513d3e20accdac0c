//! The client matrix for kafkajs (Node.js; tests/clients/kafkajs, installed by scripts/install-deps.sh at the
//! release its package-lock.json pins): produce with acks=all and an idempotent producer, consume in a consumer
//! group with commits, as a passthrough principal and as a virtual-cluster tenant with SASL PLAIN, and a switch
//! to the failover cluster mid-stream, all through the gateway against Apache Kafka.
//!
//! kafkajs implements only the classic group protocol (no KIP-848 `group.protocol=consumer`), so there is no
//! test for it; its cell is written as not supported. Each test writes its cells (client, version, capability,
//! pass) to target/client-matrix/kafkajs.jsonl.
//!
//! All tests use the binary's shared pair (`main`, `failover`); the passthrough and tenant tests only `main`.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::client_matrix::{self as client_matrix, Cell, Driver, Outcome, args, keys, mirrored_pair};
use common::{KafkaCluster, TestGateway, create_topic, read_all, shared_pair, unique};
use franzgate::admin::client::call_with_body;
use rdkafka::consumer::{BaseConsumer, Consumer};

const FAMILY: &str = "kafkajs";
const PARTITIONS: i32 = 3;

fn driver() -> Driver {
    client_matrix::kafkajs_driver()
}

fn installed_version() -> String {
    client_matrix::kafkajs_version()
}

/// A cell of this family's row in the matrix.
fn cell(capability: &'static str) -> Cell {
    Cell::new(FAMILY, installed_version(), capability)
}

fn assert_clean(what: &str, outcome: &Outcome) {
    client_matrix::assert_clean(FAMILY, None, what, outcome)
}

fn committed_total(cluster: &KafkaCluster, group: &str, topic: &str) -> i64 {
    client_matrix::committed_total(cluster, group, topic, PARTITIONS)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafkajs_produces_idempotently_and_consumes_in_a_group_as_a_passthrough_principal() {
    common::init_test_logging();
    let _kip848 = Cell::unsupported(FAMILY, installed_version(), "kip848");
    let (main, _) = shared_pair().await;
    let gateway = TestGateway::start(&main.bootstrap(), "").await;
    let (topic, group) = (unique("kjs-orders"), unique("kjs-group"));
    create_topic(&gateway.bootstrap(), &topic, PARTITIONS).await;
    let bootstrap = gateway.bootstrap();
    let (produce_cell, idempotent_cell) = (cell("produce"), cell("idempotent"));
    let produced = driver()
        .run(
            "produce",
            &args(&[
                ("bootstrap", &bootstrap),
                ("topic", &topic),
                ("count", "300"),
                ("acks", "all"),
                ("idempotent", "true"),
            ]),
            Duration::from_secs(60),
        )
        .await;
    assert_clean("idempotent produce", &produced);
    assert_eq!(produced.count("produced"), 300);
    let on_backend = read_all(&main.bootstrap(), &topic);
    assert_eq!(on_backend.len(), 300, "no record written twice");
    assert_eq!(on_backend.into_iter().collect::<BTreeSet<_>>(), keys("key", 300), "every record on the backend");
    drop((produce_cell, idempotent_cell));

    let _group_cell = cell("consume-group");
    let consumed = driver()
        .run(
            "consume",
            &args(&[("bootstrap", &bootstrap), ("topic", &topic), ("group", &group), ("count", "300")]),
            Duration::from_secs(90),
        )
        .await;
    assert_clean("group consume", &consumed);
    assert_eq!(consumed.keys(), keys("key", 300));
    assert_eq!(committed_total(main, &group, &topic), 300, "the group committed every offset on the backend");
}

const TOKEN_SECRET: &str = "kafkajs-matrix-token-secret";
const TENANT_ADMIN: (&str, &str) = ("admin", "admin-secret");

/// A SASL_PLAINTEXT gateway before `bootstrap` whose tenants log in with service-account tokens, its virtual
/// clusters kept in a state topic of its own.
async fn tenant_gateway(bootstrap: &str) -> TestGateway {
    let keys = format!(
        "  security_protocol: SASL_PLAINTEXT\n  authentication:\n    token_secret: {TOKEN_SECRET}\n  \
         admin_users: [{{username: {}, password: {}, admin: true}}]\n  \
         virtual_clusters: {{refresh_interval_ms: 300, state_topic: {}}}\n",
        TENANT_ADMIN.0,
        TENANT_ADMIN.1,
        unique("_franzgate_state_kjs")
    );
    let yaml = common::secure::gateway_yaml(&keys, &format!("  main:\n    bootstrap.servers: {bootstrap}\n"), "");
    TestGateway::from_yaml(&yaml).await
}

/// A token for `user` of virtual cluster `vcluster`, from the gateway's admin API.
async fn tenant_token(gateway: &TestGateway, vcluster: &str, user: &str) -> String {
    let path = format!("/admin/vclusters/v1/vcluster/{vcluster}/username/{user}");
    let body = r#"{"lifeTimeSeconds": 3600}"#.to_string();
    let (status, answer) =
        call_with_body(&gateway.admin(), "POST", &path, Some(TENANT_ADMIN), body).await.expect("admin API answers");
    assert_eq!(status, 200, "{answer}");
    answer["token"].as_str().expect("token in the answer").to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafkajs_produces_and_consumes_as_a_virtual_cluster_tenant_over_sasl_plain() {
    common::init_test_logging();
    let (main, _) = shared_pair().await;
    let gateway = tenant_gateway(&main.bootstrap()).await;
    let (vcluster, topic, group) = (unique("kjsteam"), unique("kjs-users"), unique("kjs-readers"));
    let token = tenant_token(&gateway, &vcluster, "sa").await;
    let bootstrap = gateway.bootstrap();
    common::create_topic_with(common::tenant_config(&bootstrap, "sa", &token), &topic, PARTITIONS).await;
    let _cell = cell("tenant");
    let sasl = [("user", "sa"), ("password", token.as_str()), ("mechanism", "PLAIN")];
    let mut produce_args = args(&[("bootstrap", &bootstrap), ("topic", &topic), ("count", "300"), ("acks", "all")]);
    produce_args.extend(args(&[("idempotent", "true")]).into_iter().chain(args(&sasl)));
    let produced = driver().run("produce", &produce_args, Duration::from_secs(60)).await;
    assert_clean("tenant produce", &produced);
    assert_eq!(produced.count("produced"), 300);

    let mut consume_args = args(&[("bootstrap", &bootstrap), ("topic", &topic), ("group", &group), ("count", "300")]);
    consume_args.extend(args(&sasl));
    let consumed = driver().run("consume", &consume_args, Duration::from_secs(90)).await;
    assert_clean("tenant consume", &consumed);
    assert_eq!(consumed.keys(), keys("key", 300));

    // On the backend the topic and the group carry the virtual cluster's prefix.
    let backend_topic = format!("{vcluster}{topic}");
    let on_backend = read_all(&main.bootstrap(), &backend_topic);
    assert_eq!(on_backend.len(), 300, "{backend_topic} holds each record once");
    assert_eq!(on_backend.into_iter().collect::<BTreeSet<_>>(), keys("key", 300));
    assert_eq!(
        committed_total(main, &format!("{vcluster}{group}"), &backend_topic),
        300,
        "the prefixed group committed"
    );
}

/// The number of partitions of `topic` on `cluster`, read directly (0 while it does not exist).
fn partitions_on(cluster: &KafkaCluster, topic: &str) -> usize {
    let consumer: BaseConsumer = cluster.client_config().create().expect("metadata client");
    let Ok(md) = consumer.fetch_metadata(Some(topic), Duration::from_secs(5)) else { return 0 };
    md.topics().first().filter(|t| t.error().is_none()).map_or(0, |t| t.partitions().len())
}

/// Waits until MirrorMaker 2 has created `topic` on `failover` (a producer switched there before would
/// auto-create a topic of its own shape).
async fn wait_for_mirrored_topic(failover: &'static KafkaCluster, topic: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    loop {
        let t = topic.to_string();
        let found = tokio::task::spawn_blocking(move || partitions_on(failover, &t)).await.expect("check thread");
        if found == PARTITIONS as usize {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "MirrorMaker did not create {topic} on the failover in 120 s");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Every record value of `topic` on `cluster`, read directly (on a blocking thread).
async fn values_on(cluster: &'static KafkaCluster, topic: &str) -> Vec<String> {
    let t = topic.to_string();
    tokio::task::spawn_blocking(move || read_all(&cluster.bootstrap(), &t)).await.expect("reader thread")
}

/// Seen once in four runs: the consumer stalled on the failover. Its member id from `main` is unknown there
/// (UNKNOWN_MEMBER_ID on OffsetCommit, as for any client), and kafkajs then re-joined from several places at once
/// (three JoinGroups and two SyncGroups of the one process within milliseconds), so its own extra members kept
/// the group rebalancing past the timeout. Not weakened: it is kafkajs's to fix (see the kafkajs report).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafkajs_producer_and_consumer_group_carry_on_across_a_switch_to_the_failover_cluster() {
    common::init_test_logging();
    const RECORDS: u64 = 1000;
    let (main, failover) = mirrored_pair().await;
    let gateway = TestGateway::start_pair(&main.bootstrap(), &failover.bootstrap(), "").await;
    let (topic, group) = (unique("kjs-switch"), unique("kjs-switch-app"));
    let bootstrap = gateway.bootstrap();
    create_topic(&bootstrap, &topic, PARTITIONS).await;
    wait_for_mirrored_topic(failover, &topic).await;
    let _cell = cell("switch");
    let started = std::time::Instant::now();

    let count = RECORDS.to_string();
    let consume_args = args(&[
        ("bootstrap", &bootstrap),
        ("topic", &topic),
        ("group", &group),
        ("count", &count),
        ("timeout_ms", "100000"),
    ]);
    let mut consumer = driver().start("consume", &consume_args);
    // Idempotent producers across a switch are issue 17 (the failover cluster does not know the producer id).
    let produce_args = args(&[
        ("bootstrap", &bootstrap),
        ("topic", &topic),
        ("count", &count),
        ("acks", "all"),
        ("idempotent", "false"),
        ("rate", "100"),
        ("key_prefix", "sw"),
    ]);
    let mut producer = driver().start("produce", &produce_args);
    producer.await_progress("acked", 300, Duration::from_secs(60)).await;
    consumer.await_progress("consumed", 100, Duration::from_secs(60)).await;
    gateway.switch_to("failover").await;

    let produced = producer.finish(Duration::from_secs(90)).await;
    assert_clean("producer across the switch", &produced);
    assert_eq!(produced.count("produced"), RECORDS);
    // Every acknowledged record is on main (MirrorMaker copies it to the failover) or on the failover.
    let (on_main, on_failover) = (values_on(main, &topic).await, values_on(failover, &topic).await);
    let stored: BTreeSet<String> = on_main.iter().chain(&on_failover).cloned().collect();
    let expected = keys("sw", RECORDS);
    let missing: Vec<_> = expected.difference(&stored).collect();
    assert!(missing.is_empty(), "acknowledged but on neither cluster: {missing:?}");
    let last = format!("sw-{}", RECORDS - 1);
    assert!(on_failover.contains(&last) && !on_main.contains(&last), "records after the switch went to the failover");

    let consumed = consumer.finish(Duration::from_secs(120)).await;
    assert_clean("consumer group across the switch", &consumed);
    let seen = consumed.keys();
    let unseen: Vec<_> = expected.difference(&seen).collect();
    assert!(unseen.is_empty(), "the group did not resume on the failover: never saw {unseen:?}");
    eprintln!(
        "kafkajs across the switch: {} records on main, {} on the failover; the consumer read {} records for {} keys, \
         recovered from {:?}; {:?} from the first record to the last check",
        on_main.len(),
        on_failover.len(),
        consumed.count("records"),
        seen.len(),
        consumed.result["recovered"],
        started.elapsed()
    );
}
