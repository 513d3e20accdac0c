//! A new virtual cluster may not capture what already exists on the backend (issue 16, item 4): a token request
//! for a virtual cluster `can` once made the passthrough topic `canary` tenant `can`'s topic `ary`. Creating a
//! virtual cluster whose prefix existing topics, consumer groups or transactional ids start with is refused
//! with 409 and changes nothing, unless the admin adopts them with `"adoptExisting": true`. Also: the names `.`
//! and `..`, and a query parameter given twice, are refused.
//!
//! The tests share the binary's Kafka cluster; each names its tenants, topics and groups uniquely and keeps its
//! gateway's state in a topic of its own.

mod common;

use std::time::Duration;

use common::{TestGateway, client_config, read_all, shared_cluster, unique};
use franzgate::admin::client::call_with_body;
use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};
use serde_json::Value;

const SECRET: &str = "the-user-pool-secret";
const ADMIN: (&str, &str) = ("admin", "admin-secret");
const TOKEN_BODY: &str = r#"{"lifeTimeSeconds": 3600}"#;

/// A SASL_PLAINTEXT gateway whose tenants log in with tokens, its state in topic `state_topic`.
async fn gateway(bootstrap: &str, state_topic: &str) -> TestGateway {
    let keys = format!(
        "  security_protocol: SASL_PLAINTEXT\n  authentication:\n    token_secret: {SECRET}\n  \
         admin_users: [{{username: {}, password: {}, admin: true}}]\n  \
         virtual_clusters: {{refresh_interval_ms: 300, state_topic: {state_topic}}}\n",
        ADMIN.0, ADMIN.1
    );
    let yaml = common::secure::gateway_yaml(&keys, &format!("  main:\n    bootstrap.servers: {bootstrap}\n"), "");
    TestGateway::from_yaml(&yaml).await
}

async fn admin(gateway: &TestGateway, method: &str, path: &str, body: &str) -> (u16, Value) {
    call_with_body(&gateway.admin(), method, path, Some(ADMIN), body.to_string()).await.expect("admin API")
}

fn token_path(vcluster: &str, user: &str) -> String {
    format!("/admin/vclusters/v1/vcluster/{vcluster}/username/{user}")
}

/// The names of the virtual clusters the gateway lists.
async fn listed(gateway: &TestGateway) -> Vec<String> {
    let (status, body) = admin(gateway, "GET", "/admin/vclusters/v1", "").await;
    assert_eq!(status, 200, "{body}");
    let clusters = body["vclusters"].as_array().cloned().unwrap_or_default();
    clusters.iter().filter_map(|c| c["name"].as_str().map(str::to_string)).collect()
}

/// The state topic's records, read directly from the backend.
fn state_records(bootstrap: &str, state_topic: &str) -> Vec<String> {
    read_all(bootstrap, state_topic)
}

fn topics(config: &ClientConfig) -> Vec<String> {
    let client: BaseConsumer = config.create().expect("client");
    let metadata = client.fetch_metadata(None, Duration::from_secs(10)).expect("metadata");
    metadata.topics().iter().map(|t| t.name().to_string()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_request_whose_prefix_covers_a_passthrough_topic_is_refused_until_adopted() {
    let broker = shared_cluster().await;
    let state = unique("_franzgate_state");
    let gateway = gateway(&broker.bootstrap(), &state).await;
    // The issue's case: `canary` exists on the backend, unprefixed; then a token for virtual cluster `can`.
    let can = unique("can");
    let canary = format!("{can}ary");
    common::create_topic(&broker.bootstrap(), &canary, 1).await;
    let records_before = state_records(&broker.bootstrap(), &state);

    let (status, body) = admin(&gateway, "POST", &token_path(&can, "sa"), TOKEN_BODY).await;
    assert_eq!(status, 409, "{body}");
    let message = body["message"].as_str().unwrap_or_default();
    assert!(message.contains(&format!("topic `{canary}`")), "the conflict is named: {message}");
    assert!(message.contains("adoptExisting"), "the way out is named: {message}");
    assert!(body.get("token").is_none(), "{body}");

    // Nothing changed: not listed, no record in the state topic, and an explicit create is refused the same way.
    assert!(!listed(&gateway).await.contains(&can));
    let records_after = state_records(&broker.bootstrap(), &state);
    assert_eq!(records_before, records_after, "a refused call writes no state record");
    let (status, body) = admin(&gateway, "POST", &format!("/admin/vclusters/v1/vcluster/{can}"), "").await;
    assert_eq!(status, 409, "{body}");

    // Adopted on purpose: the token is issued and the tenant sees `canary` as its own `ary`.
    let adopting = r#"{"lifeTimeSeconds": 3600, "adoptExisting": true}"#;
    let (status, body) = admin(&gateway, "POST", &token_path(&can, "sa"), adopting).await;
    assert_eq!(status, 200, "{body}");
    let token = body["token"].as_str().expect("token").to_string();
    assert!(listed(&gateway).await.contains(&can));
    let records = state_records(&broker.bootstrap(), &state);
    assert!(records.iter().any(|r| r.contains(&format!(r#""name":"{can}","prefix":"{can}""#))), "{records:?}");
    let tenant = common::tenant_config(&gateway.bootstrap(), "sa", &token);
    assert!(topics(&tenant).contains(&"ary".to_string()), "the adopted topic is the tenant's");

    // An existing virtual cluster is not checked again: another account's token needs no adoption.
    let (status, body) = admin(&gateway, "POST", &token_path(&can, "sb"), TOKEN_BODY).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_group_or_transactional_id_under_the_prefix_also_refuses_creation() {
    let broker = shared_cluster().await;
    let state = unique("_franzgate_state");
    let gateway = gateway(&broker.bootstrap(), &state).await;
    let grp = unique("grp");
    // A group `{grp}readers` with a committed offset on an unrelated topic: no topic starts with the prefix.
    let plain = unique("plain");
    common::create_topic(&broker.bootstrap(), &plain, 1).await;
    let consumer: BaseConsumer =
        client_config(&broker.bootstrap()).set("group.id", format!("{grp}readers")).create().expect("consumer");
    let mut offsets = TopicPartitionList::new();
    offsets.add_partition_offset(&plain, 0, Offset::Offset(0)).expect("offset");
    consumer.commit(&offsets, CommitMode::Sync).expect("commit");
    let records_before = state_records(&broker.bootstrap(), &state);

    // Explicitly, with the name as prefix, and under another name with it as an explicit prefix.
    let path = format!("/admin/vclusters/v1/vcluster/{grp}");
    let (status, body) = admin(&gateway, "POST", &path, "").await;
    assert_eq!(status, 409, "{body}");
    let message = body["message"].as_str().unwrap_or_default();
    assert!(message.contains(&format!("consumer group `{grp}readers`")), "{message}");
    let other = unique("other");
    let explicit = format!(r#"{{"prefix": "{grp}"}}"#);
    let (status, body) = admin(&gateway, "POST", &format!("/admin/vclusters/v1/vcluster/{other}"), &explicit).await;
    assert_eq!(status, 409, "{body}");
    // A transactional id under a prefix of its own (a committed transaction keeps it listed).
    let txn = unique("txn");
    let producer: FutureProducer = client_config(&broker.bootstrap())
        .set("transactional.id", format!("{txn}-writer"))
        .create()
        .expect("transactional producer");
    producer.init_transactions(Duration::from_secs(30)).expect("init transactions");
    producer.begin_transaction().expect("begin");
    producer
        .send(FutureRecord::<str, str>::to(&plain).payload("in a transaction"), Duration::from_secs(10))
        .await
        .expect("sent");
    producer.commit_transaction(Duration::from_secs(30)).expect("commit transaction");
    let (status, body) = admin(&gateway, "POST", &token_path(&txn, "sa"), TOKEN_BODY).await;
    assert_eq!(status, 409, "{body}");
    let message = body["message"].as_str().unwrap_or_default();
    assert!(message.contains(&format!("transactional id `{txn}-writer`")), "{message}");

    let names = listed(&gateway).await;
    assert!(![&grp, &other, &txn].iter().any(|n| names.contains(n)), "{names:?}");
    assert_eq!(records_before, state_records(&broker.bootstrap(), &state), "refused calls write no record");

    // Adopted: created, with the prefix asked for.
    let adopting = r#"{"adoptExisting": true}"#;
    let (status, body) = admin(&gateway, "POST", &path, adopting).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["prefix"], Value::from(grp.clone()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dot_names_and_a_query_parameter_given_twice_are_refused() {
    let broker = shared_cluster().await;
    let state = unique("_franzgate_state");
    let gateway = gateway(&broker.bootstrap(), &state).await;
    let team = unique("team");
    let create = |name: &str| format!("/admin/vclusters/v1/vcluster/{name}");
    for (path, body) in [
        (token_path("..", "sa"), TOKEN_BODY),
        (token_path(".", "sa"), TOKEN_BODY),
        (token_path(&team, ".."), TOKEN_BODY),
        (token_path(&team, "."), TOKEN_BODY),
        (create(".."), ""),
        (create("."), r#"{"prefix": "x"}"#),
        (create(&team), r#"{"prefix": ".."}"#),
    ] {
        let (status, answer) = admin(&gateway, "POST", &path, body).await;
        assert_eq!(status, 400, "{path} {body}: {answer}");
        assert!(answer["message"].as_str().is_some_and(|m| m.contains("are not names")), "{path}: {answer}");
    }
    assert!(listed(&gateway).await.is_empty(), "nothing created");

    // `?to=main&to=failover`: which one was meant is unknown, so neither.
    let (_, before) = admin(&gateway, "GET", "/admin/pclusters/v1", "").await;
    let twice = "/admin/pclusters/v1/pcluster/main/switch?to=main&to=failover";
    let (status, body) = admin(&gateway, "POST", twice, "").await;
    assert_eq!(status, 400, "{body}");
    assert!(body["message"].as_str().is_some_and(|m| m.contains("more than once")), "{body}");
    let (_, after) = admin(&gateway, "GET", "/admin/pclusters/v1", "").await;
    assert_eq!(before["switchCount"], after["switchCount"], "no switch");
    assert_eq!(before["epoch"], after["epoch"]);
    // Given once, the same parameter still works (the answer is the switch's own: already active).
    let (status, body) = admin(&gateway, "POST", "/admin/pclusters/v1/pcluster/main/switch?to=main", "").await;
    assert_eq!(status, 200, "{body}");
    assert!(body["message"].as_str().is_some_and(|m| m.contains("already active")), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_the_backend_cannot_be_asked_what_exists_creation_is_refused_with_503() {
    // A broker of this test's own, killed after the gateway has started.
    let broker = common::own_kafka("prefix-503").await;
    let gateway = gateway(&broker.bootstrap(), &unique("_franzgate_state")).await;
    broker.kill(1);

    let team = unique("team");
    let (status, body) = admin(&gateway, "POST", &token_path(&team, "sa"), TOKEN_BODY).await;
    assert_eq!(status, 503, "{body}");
    let message = body["message"].as_str().unwrap_or_default();
    assert!(message.contains("cannot list") && message.contains("nothing changed"), "{message}");
    let (status, body) = admin(&gateway, "POST", &format!("/admin/vclusters/v1/vcluster/{team}"), "").await;
    assert_eq!(status, 503, "{body}");
    assert!(!listed(&gateway).await.contains(&team), "nothing created");
}
