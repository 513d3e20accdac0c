//! The client matrix for Apache Kafka's Java client, `kafka-clients` (tests/clients/java/Driver.java, fetched at
//! the release tests/clients/java/pom.xml pins and compiled by scripts/install-deps.sh): produce with acks=all
//! and an idempotent producer, consume in a consumer group with commits over the classic protocol and over
//! KIP-848 (`group.protocol=consumer`), as a passthrough principal and as a virtual-cluster tenant with SASL
//! PLAIN, a switch to the failover cluster mid-stream, and a transactional producer (passthrough, no switch), all
//! through the gateway against Apache Kafka.
//!
//! Each test writes its cells (client, version, capability, pass) to target/client-matrix/java.jsonl. All tests
//! use the binary's shared pair (`main`, `failover`); the passthrough and tenant tests only `main`.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::client_matrix::{self as client_matrix, Cell, Driver, Outcome, args, keys, mirrored_pair};
use common::{KafkaCluster, TestGateway, create_topic, read_all, shared_pair, unique};
use franzgate::admin::client::call_with_body;

const FAMILY: &str = "java";
const PARTITIONS: i32 = 3;

/// `java` on the driver's classes and kafka-clients' jars.
fn driver() -> Driver {
    client_matrix::java_driver()
}

/// The kafka-clients release installed in the tools cache.
fn installed_version() -> String {
    client_matrix::java_version()
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

/// `franzgate_requests_total` for `api` on the gateway's admin port (the default admin user of a gateway
/// configured without `admin_users`).
async fn requests_answered(gateway: &TestGateway, api: &str) -> u64 {
    let text = franzgate::admin::client::call_text(&gateway.admin(), "/metrics", ("admin", "conduktor"))
        .await
        .expect("metrics");
    let name = format!("franzgate_requests_total{{api=\"{api}\"}} ");
    text.lines().find_map(|l| l.strip_prefix(name.as_str())?.trim().parse().ok()).unwrap_or(0)
}

fn consume_args(bootstrap: &str, topic: &str, group: &str, count: &str, protocol: &str) -> Vec<String> {
    args(&[("bootstrap", bootstrap), ("topic", topic), ("group", group), ("count", count), ("protocol", protocol)])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn java_produces_idempotently_and_consumes_in_a_group_classic_and_kip848_as_a_passthrough_principal() {
    common::init_test_logging();
    let (main, _) = shared_pair().await;
    let gateway = TestGateway::start(&main.bootstrap(), "").await;
    let topic = unique("java-orders");
    let (classic_group, kip848_group) = (unique("java-classic"), unique("java-kip848"));
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
            Duration::from_secs(90),
        )
        .await;
    assert_clean("idempotent produce", &produced);
    assert_eq!(produced.count("produced"), 300);
    let on_backend = read_all(&main.bootstrap(), &topic);
    assert_eq!(on_backend.len(), 300, "no record written twice");
    assert_eq!(on_backend.into_iter().collect::<BTreeSet<_>>(), keys("key", 300), "every record on the backend");
    drop((produce_cell, idempotent_cell));

    // The classic protocol and KIP-848's consumer protocol, each in a fresh group of its own, side by side.
    let (group_cell, kip848_cell) = (cell("consume-group"), cell("kip848"));
    let java = driver();
    let classic_args = consume_args(&bootstrap, &topic, &classic_group, "300", "classic");
    let kip848_args = consume_args(&bootstrap, &topic, &kip848_group, "300", "consumer");
    let (classic, kip848) = tokio::join!(
        java.run("consume", &classic_args, Duration::from_secs(100)),
        java.run("consume", &kip848_args, Duration::from_secs(100)),
    );
    assert_clean("classic group consume", &classic);
    assert_eq!(classic.keys(), keys("key", 300));
    assert_eq!(committed_total(main, &classic_group, &topic), 300, "the classic group committed every offset");
    drop(group_cell);
    assert_clean("KIP-848 group consume", &kip848);
    assert_eq!(kip848.keys(), keys("key", 300));
    assert_eq!(committed_total(main, &kip848_group, &topic), 300, "the KIP-848 group committed every offset");
    // Only the KIP-848 consumer sends ConsumerGroupHeartbeat: proof it ran the new protocol through the gateway.
    let heartbeats = requests_answered(&gateway, "ConsumerGroupHeartbeat").await;
    assert!(heartbeats >= 1, "ConsumerGroupHeartbeat requests answered: {heartbeats}");
    drop(kip848_cell);
}

const TOKEN_SECRET: &str = "java-matrix-token-secret";
const ADMIN: (&str, &str) = ("admin", "admin-secret");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn java_produces_and_consumes_as_a_virtual_cluster_tenant_with_sasl_plain() {
    common::init_test_logging();
    let _cell = cell("tenant");
    let (main, _) = shared_pair().await;
    let keys_yaml = format!(
        "  security_protocol: SASL_PLAINTEXT\n  authentication:\n    token_secret: {TOKEN_SECRET}\n  \
         admin_users: [{{username: {}, password: {}, admin: true}}]\n  \
         virtual_clusters: {{refresh_interval_ms: 300, state_topic: {}}}\n",
        ADMIN.0,
        ADMIN.1,
        unique("_franzgate_state")
    );
    let clusters = format!("  main:\n    bootstrap.servers: {}\n", main.bootstrap());
    let gateway = TestGateway::from_yaml(&common::secure::gateway_yaml(&keys_yaml, &clusters, "")).await;
    let team = unique("teamJava");
    let path = format!("/admin/vclusters/v1/vcluster/{team}/username/sj");
    let (status, body) =
        call_with_body(&gateway.admin(), "POST", &path, Some(ADMIN), r#"{"lifeTimeSeconds": 600}"#.to_string())
            .await
            .expect("admin API");
    assert_eq!(status, 200, "{body}");
    let token = body["token"].as_str().expect("token in the answer").to_string();

    let bootstrap = gateway.bootstrap();
    common::create_topic_with(common::tenant_config(&bootstrap, "sj", &token), "orders", PARTITIONS).await;
    let sasl = [("user", "sj"), ("password", token.as_str()), ("mechanism", "PLAIN")];
    let mut produce_args = args(&[
        ("bootstrap", &bootstrap),
        ("topic", "orders"),
        ("count", "200"),
        ("acks", "all"),
        ("idempotent", "true"),
    ]);
    produce_args.extend(args(&sasl));
    let produced = driver().run("produce", &produce_args, Duration::from_secs(90)).await;
    assert_clean("tenant produce", &produced);
    assert_eq!(produced.count("produced"), 200);

    let mut consume = consume_args(&bootstrap, "orders", "readers", "200", "classic");
    consume.extend(args(&sasl));
    let consumed = driver().run("consume", &consume, Duration::from_secs(90)).await;
    assert_clean("tenant consume", &consumed);
    assert_eq!(consumed.keys(), keys("key", 200));

    // On the backend the topic and the group carry the tenant's prefix.
    let backend_topic = format!("{team}orders");
    let on_backend = read_all(&main.bootstrap(), &backend_topic);
    assert_eq!(on_backend.into_iter().collect::<BTreeSet<_>>(), keys("key", 200), "{backend_topic} holds them");
    assert_eq!(committed_total(main, &format!("{team}readers"), &backend_topic), 200, "the prefixed group committed");
}

/// `produce` arguments of the switch test: acks=all, not idempotent (an idempotent producer across a switch is
/// issue 17: the failover does not know its producer id).
fn plain_produce_args(bootstrap: &str, topic: &str, prefix: &str, count: &str) -> Vec<String> {
    args(&[
        ("bootstrap", bootstrap),
        ("topic", topic),
        ("key_prefix", prefix),
        ("count", count),
        ("acks", "all"),
        ("idempotent", "false"),
    ])
}

/// The `key-*` records on main and those only on the failover, read directly; fails unless each of `key-0` ..
/// `key-999` is on one of them (on main if written before the switch, though MirrorMaker may not have copied it
/// yet; on the failover if written after) and both got some.
fn placed_across_the_switch(main: &KafkaCluster, failover: &KafkaCluster, topic: &str) -> [BTreeSet<String>; 2] {
    let read = |cluster: &KafkaCluster| -> BTreeSet<String> {
        read_all(&cluster.bootstrap(), topic).into_iter().filter(|k| k.starts_with("key-")).collect()
    };
    let (on_main, on_failover) = (read(main), read(failover));
    let everywhere: BTreeSet<String> = on_main.union(&on_failover).cloned().collect();
    let missing: Vec<_> = keys("key", 1000).difference(&everywhere).cloned().collect();
    assert!(missing.is_empty(), "acknowledged but on neither cluster: {missing:?}");
    assert!(on_main.len() < 1000, "the switch came after the last record: all {} are on main", on_main.len());
    let after_switch: BTreeSet<String> = on_failover.difference(&on_main).cloned().collect();
    assert!(!after_switch.is_empty(), "nothing was written to the failover after the switch");
    [on_main, after_switch]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn java_producer_and_group_consumer_carry_on_across_a_switch_to_the_failover() {
    common::init_test_logging();
    let _cell = cell("switch");
    let (main, failover) = mirrored_pair().await;
    let gateway = TestGateway::start_pair(&main.bootstrap(), &failover.bootstrap(), "").await;
    let bootstrap = gateway.bootstrap();
    let (topic, group) = (unique("java-switch"), unique("java-switch-app"));
    create_topic(&bootstrap, &topic, PARTITIONS).await;
    // The producer switched to the failover needs the topic there. MirrorMaker 2 would create it, but how soon
    // depends on how far its start-up has come on a busy machine: the test makes it, as replication would.
    create_topic(&failover.bootstrap(), &topic, PARTITIONS).await;

    // The group's consumer is reading main (members there, offsets committed) before the producer starts: a
    // consumer's start-up on a loaded machine can take longer than the whole produce.
    let java = driver();
    let warm_up = plain_produce_args(&bootstrap, &topic, "warm", "100");
    assert_clean("warm-up produce", &java.run("produce", &warm_up, Duration::from_secs(90)).await);
    let consume = args(&[
        ("bootstrap", &bootstrap),
        ("topic", &topic),
        ("group", &group),
        ("count", "1100"),
        ("timeout_ms", "90000"),
    ]);
    let mut consumer = java.start("consume", &consume);
    consumer.await_progress("consumed", 100, Duration::from_secs(90)).await;
    // 1,000 records at 50 a second: switched at 300, 14 s before the last.
    let mut paced = plain_produce_args(&bootstrap, &topic, "key", "1000");
    paced.extend(args(&[("rate", "50")]));
    let mut producer = java.start("produce", &paced);
    producer.await_progress("acked", 300, Duration::from_secs(60)).await;
    gateway.switch_to("failover").await;

    let produced = producer.finish(Duration::from_secs(100)).await;
    assert_clean("producer across the switch", &produced);
    assert_eq!(produced.count("produced"), 1000);
    let [on_main, after_switch] = placed_across_the_switch(main, failover, &topic);

    // The consumer, started on main, resumes on the failover and reads what was written there. Main's records
    // it had not read before the switch reach it once MirrorMaker has copied them, which the test does not
    // wait for. Its commits right after the switch may fail (its generation belongs to main's group, and the
    // gateway fences such commits): the one error the application may see.
    let consumed = consumer.finish(Duration::from_secs(120)).await;
    let seen = consumed.keys();
    let unseen: Vec<_> = after_switch.difference(&seen).collect();
    let report = format!("result {}\nstderr:\n{}", consumed.result, consumed.stderr);
    assert!(
        unseen.is_empty(),
        "the consumer missed {} keys written to the failover: {unseen:?}\n{report}",
        unseen.len()
    );
    assert!(keys("warm", 100).is_subset(&seen), "the consumer read main's records before the switch\n{report}");
    let errors = consumed.errors();
    assert!(
        errors.iter().all(|e| e.starts_with("CommitFailedException")),
        "errors besides a failed commit: {errors:?}"
    );
    eprintln!(
        "java switch: {} records on main, {} only on the failover; the consumer saw {} of 1,100 keys; errors: {errors:?}",
        on_main.len(),
        after_switch.len(),
        seen.len(),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn java_produces_in_committed_transactions_as_a_passthrough_principal() {
    common::init_test_logging();
    let _cell = cell("transactions");
    let (main, _) = shared_pair().await;
    let gateway = TestGateway::start(&main.bootstrap(), "").await;
    let bootstrap = gateway.bootstrap();
    let (topic, group, transactional_id) = (unique("java-txn"), unique("java-txn-app"), unique("java-txn-id"));
    create_topic(&bootstrap, &topic, PARTITIONS).await;
    let produce = args(&[
        ("bootstrap", &bootstrap),
        ("topic", &topic),
        ("count", "250"),
        ("acks", "all"),
        ("transactional_id", &transactional_id),
    ]);
    let produced = driver().run("produce", &produce, Duration::from_secs(90)).await;
    assert_clean("transactional produce", &produced);
    assert_eq!(produced.count("produced"), 250);
    // Read on the backend by a read_committed reader (librdkafka's default): all three transactions committed,
    // each record once.
    let on_backend = read_all(&main.bootstrap(), &topic);
    assert_eq!(on_backend.len(), 250, "each record once");
    assert_eq!(on_backend.into_iter().collect::<BTreeSet<_>>(), keys("key", 250));
    let consumed = driver()
        .run("consume", &consume_args(&bootstrap, &topic, &group, "250", "classic"), Duration::from_secs(90))
        .await;
    assert_clean("read_committed consume", &consumed);
    assert_eq!(consumed.keys(), keys("key", 250));
}
