//! Chargeback end to end: two principals produce and consume known volumes through the gateway, with a
//! switch in the middle; `/metrics` (read with a real Prometheus parser) and `/admin/chargeback/v1` report
//! exactly those bytes per principal and topic on each physical cluster.

mod common;

use std::time::Duration;

use common::secure::{gateway_yaml, hashed_credentials, user_entry};
use common::{ADMIN, TestGateway, client_config, create_topic, own_kafka, shared_cluster, unique};
use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};

const VALUE_LEN: usize = 100;

/// The size of a record batch holding one record with no key, no headers and a 100-byte value, from the
/// Kafka record format (v2): a 61-byte batch header, then the record — attributes (1), timestamp delta (1),
/// offset delta (1), key length -1 (1), value length 100 as a zigzag varint (2), the value (100), header count
/// (1) — prefixed by its own length, 107 as a zigzag varint (2).
const BATCH: u64 = 61 + 2 + (1 + 1 + 1 + 1 + 2 + VALUE_LEN as u64 + 1);

fn client(bootstrap: &str, user: &str) -> ClientConfig {
    let mut c = client_config(bootstrap);
    c.set("security.protocol", "SASL_PLAINTEXT")
        .set("sasl.mechanisms", "PLAIN")
        .set("sasl.username", user)
        .set("sasl.password", format!("{user}-secret"))
        .set("client.id", format!("{user}-app"));
    c
}

/// Sends `count` one-record batches to `topic`, each acknowledged before the next.
async fn produce(bootstrap: &str, topic: &str, user: &str, count: usize) {
    let producer: FutureProducer = client(bootstrap, user)
        .set("acks", "all")
        .set("linger.ms", "0")
        .set("batch.num.messages", "1")
        .set("compression.type", "none")
        .set("enable.idempotence", "false")
        .create()
        .expect("producer");
    let value = vec![b'x'; VALUE_LEN];
    for _ in 0..count {
        producer
            .send(FutureRecord::<(), _>::to(topic).partition(0).payload(&value), Duration::from_secs(20))
            .await
            .map_err(|(e, _)| e)
            .expect("acknowledged");
    }
}

/// Reads the whole partition once, from the beginning.
fn consume(bootstrap: &str, topic: &str, user: &str, expected: usize) {
    let consumer: BaseConsumer = client(bootstrap, user)
        .set("group.id", unique(&format!("{user}-readers")))
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let mut assignment = TopicPartitionList::new();
    assignment.add_partition_offset(topic, 0, Offset::Beginning).expect("offset");
    consumer.assign(&assignment).expect("assign");
    let mut read = 0;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while read < expected && std::time::Instant::now() < deadline {
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(_)) => read += 1,
            Some(Err(e)) => panic!("{user} consuming: {e}"),
            None => {}
        }
    }
    assert_eq!(read, expected, "{user} read the partition");
}

/// One usage row of the JSON report.
fn row<'a>(report: &'a serde_json::Value, cluster: &str, principal: &str, topic: &str) -> &'a serde_json::Value {
    report["totals"]
        .as_array()
        .and_then(|rows| {
            rows.iter().find(|r| r["cluster"] == cluster && r["principal"] == principal && r["topic"] == topic)
        })
        .unwrap_or_else(|| panic!("no row for {principal} on {cluster}: {report}"))
}

/// A sample of a parsed Prometheus scrape.
fn sample(scrape: &prometheus_parse::Scrape, metric: &str, cluster: &str, principal: &str, topic: &str) -> f64 {
    let found = scrape.samples.iter().find(|s| {
        s.metric == metric
            && s.labels.get("cluster") == Some(cluster)
            && s.labels.get("principal") == Some(principal)
            && s.labels.get("topic") == Some(topic)
            && s.labels.get("client_id") == Some(&format!("{principal}-app"))
    });
    match found.map(|s| &s.value) {
        Some(prometheus_parse::Value::Counter(v)) => *v,
        other => panic!("{metric} for {principal} on {cluster}: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_is_counted_per_principal_and_topic_on_each_cluster_across_a_switch() {
    // The failover is a cluster of this test's own; main is the binary's shared one.
    let (main, failover) = tokio::join!(shared_cluster(), own_kafka("failover"));
    let topic = unique("billing");
    create_topic(&main.bootstrap(), &topic, 1).await;
    create_topic(&failover.bootstrap(), &topic, 1).await;
    let keys = format!(
        "  security_protocol: SASL_PLAINTEXT\n  authentication:\n    users: [{}, {}]\n  \
         admin_users: [{{username: {}, password: {}, admin: true}}]\n  switch_drain_timeout_ms: 5000\n  \
         filter_latency_metrics: true\n  error_code_metrics: true\n",
        user_entry("alice", &hashed_credentials("alice-secret")),
        user_entry("bob", &hashed_credentials("bob-secret")),
        ADMIN.0,
        ADMIN.1
    );
    let clusters = format!(
        "  main:\n    bootstrap.servers: {}\n  failover:\n    bootstrap.servers: {}\n    gateway.roles: failover\n",
        main.bootstrap(),
        failover.bootstrap()
    );
    let gateway = TestGateway::from_yaml(&gateway_yaml(&keys, &clusters, "filters: [{type: chargeback}]\n")).await;
    let bootstrap = gateway.bootstrap();

    produce(&bootstrap, &topic, "alice", 6).await;
    produce(&bootstrap, &topic, "bob", 4).await;
    consume(&bootstrap, &topic, "alice", 10);
    gateway.switch_to("failover").await;
    produce(&bootstrap, &topic, "alice", 3).await;
    produce(&bootstrap, &topic, "bob", 5).await;
    consume(&bootstrap, &topic, "bob", 8);

    let (status, report) = gateway.admin_call("GET", "/admin/chargeback/v1", Some(ADMIN)).await;
    assert_eq!(status, 200, "{report}");
    let expected = [
        // (cluster, principal, produced batches, consumed batches)
        ("main", "alice", 6, 10),
        ("main", "bob", 4, 0),
        ("failover", "alice", 3, 0),
        ("failover", "bob", 5, 8),
    ];
    for (cluster, principal, produced, consumed) in expected {
        let r = row(&report, cluster, principal, &topic);
        assert_eq!(r["producedBytes"], produced * BATCH, "{principal} produced on {cluster}: {r}");
        assert_eq!(r["producedRecords"], produced, "{r}");
        assert_eq!(r["producedBatches"], produced, "{r}");
        assert_eq!(r["consumedBytes"], consumed * BATCH, "{principal} consumed on {cluster}: {r}");
        assert_eq!(r["consumedRecords"], consumed, "{r}");
        assert_eq!(r["clientId"], format!("{principal}-app"));
        assert_eq!(r["vcluster"], "passthrough");
    }
    let windows = report["windows"].as_array().map(Vec::len).unwrap_or(0);
    assert!(windows >= 1, "per-window counts are reported too: {report}");

    let (status, _) = franzgate::admin::client::call(&gateway.admin(), "GET", "/metrics", None).await.expect("call");
    assert_eq!(status, 401, "metrics need credentials like the rest of the admin API");
    let text = franzgate::admin::client::call_text(&gateway.admin(), "/metrics", ADMIN).await.expect("metrics");
    let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).expect("valid exposition");
    for (cluster, principal, produced, consumed) in expected {
        let produced_bytes = sample(&scrape, "franzgate_chargeback_produced_bytes_total", cluster, principal, &topic);
        assert_eq!(produced_bytes, (produced * BATCH) as f64, "{principal} on {cluster}");
        let consumed_bytes = sample(&scrape, "franzgate_chargeback_consumed_bytes_total", cluster, principal, &topic);
        assert_eq!(consumed_bytes, (consumed * BATCH) as f64, "{principal} on {cluster}");
    }
    let switches = scrape.samples.iter().find(|s| s.metric == "franzgate_cluster_switches_total");
    assert!(matches!(switches.map(|s| &s.value), Some(prometheus_parse::Value::Counter(v)) if *v == 1.0));
    let active = scrape
        .samples
        .iter()
        .find(|s| s.metric == "franzgate_active_cluster" && s.labels.get("cluster") == Some("failover"));
    assert!(matches!(active.map(|s| &s.value), Some(prometheus_parse::Value::Gauge(v)) if *v == 1.0));
    let logins = scrape
        .samples
        .iter()
        .find(|s| s.metric == "franzgate_authentications_total" && s.labels.get("result") == Some("success"));
    assert!(matches!(logins.map(|s| &s.value), Some(prometheus_parse::Value::Counter(v)) if *v >= 6.0));
    let produces = scrape
        .samples
        .iter()
        .find(|s| s.metric == "franzgate_requests_total" && s.labels.get("api") == Some("Produce"));
    assert!(matches!(produces.map(|s| &s.value), Some(prometheus_parse::Value::Counter(v)) if *v >= 18.0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_is_flushed_to_a_kafka_topic_for_billing_pipelines() {
    let broker = shared_cluster().await;
    let (topic, flush_topic) = (unique("billing"), unique("_franzgate_chargeback"));
    create_topic(&broker.bootstrap(), &topic, 1).await;
    create_topic(&broker.bootstrap(), &flush_topic, 1).await;
    let keys = format!("  chargeback: {{flush_topic: {flush_topic}, flush_interval_seconds: 1}}\n");
    let cluster = format!("  main:\n    bootstrap.servers: {}\n", broker.bootstrap());
    let gateway = TestGateway::from_yaml(&gateway_yaml(&keys, &cluster, "filters: [{type: chargeback}]\n")).await;

    let producer: FutureProducer = client_config(&gateway.bootstrap())
        .set("client.id", "billing-app")
        .set("linger.ms", "0")
        .set("batch.num.messages", "1")
        .create()
        .expect("producer");
    let value = vec![b'x'; VALUE_LEN];
    for _ in 0..3 {
        let record = FutureRecord::<(), _>::to(&topic).partition(0).payload(&value);
        producer.send(record, Duration::from_secs(20)).await.map_err(|(e, _)| e).expect("acknowledged");
    }

    // Rows arrive within a few flush intervals; their producedBytes add up to what was produced.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let produced = loop {
        let rows: Vec<serde_json::Value> = common::read_all(&broker.bootstrap(), &flush_topic)
            .iter()
            .map(|v| serde_json::from_str(v).expect("each record is a JSON row"))
            .collect();
        let produced: u64 = rows
            .iter()
            .filter(|r| r["topic"] == topic.as_str() && r["principal"] == "ANONYMOUS" && r["clientId"] == "billing-app")
            .filter_map(|r| r["producedBytes"].as_u64())
            .sum();
        if produced >= 3 * BATCH || std::time::Instant::now() > deadline {
            break produced;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert_eq!(produced, 3 * BATCH, "the flushed rows carry the produced bytes exactly once");
}
