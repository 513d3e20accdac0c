//! The custom filter of examples/custom_filter.rs, registered by name, declared in YAML, driven end to end by
//! librdkafka against a real Apache Kafka broker (the binary's shared cluster).

mod common;
#[allow(dead_code)]
#[path = "../examples/custom_filter.rs"]
mod custom_filter;

use std::time::Duration;

use common::{KafkaCluster, TestGateway, client_config, create_topic, shared_cluster, unique};
use franzgate::FilterRegistry;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::types::RDKafkaErrorCode;

async fn gateway_with_policy(broker: &KafkaCluster, error: &str) -> TestGateway {
    let mut registry = FilterRegistry::with_builtins();
    registry.register(custom_filter::TopicPolicyFactory).expect("register");
    let yaml = format!(
        "filters:\n  - type: topic-policy\n    config:\n      deny_produce: '^restricted\\.'\n      error: {error}\n"
    );
    TestGateway::start_with_registry(&broker.bootstrap(), &yaml, registry).await
}

async fn send(producer: &FutureProducer, topic: &str, value: &str) -> Result<(i32, i64), KafkaError> {
    producer
        .send(FutureRecord::<(), _>::to(topic).payload(value), Duration::from_secs(10))
        .await
        .map(|d| (d.partition, d.offset))
        .map_err(|(e, _)| e)
}

fn high_watermark(bootstrap: &str, topic: &str) -> i64 {
    let client: BaseConsumer = client_config(bootstrap).create().expect("client");
    client.fetch_watermarks(topic, 0, Duration::from_secs(10)).expect("watermarks").1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn produce_to_a_denied_topic_gets_policy_violation_and_others_pass() {
    let broker = shared_cluster().await;
    let gateway = gateway_with_policy(broker, "POLICY_VIOLATION").await;
    let bootstrap = gateway.bootstrap();
    let (denied_topic, public) = (unique("restricted.payments"), unique("public"));
    create_topic(&bootstrap, &denied_topic, 1).await;
    create_topic(&bootstrap, &public, 1).await;

    let producer: FutureProducer =
        client_config(&bootstrap).set("acks", "all").set("linger.ms", "20").create().expect("producer");
    // Sent together so librdkafka puts both topics in one Produce request: the filter must split it.
    let (denied, allowed) = tokio::join!(send(&producer, &denied_topic, "secret"), send(&producer, &public, "hello"));
    match denied {
        Err(KafkaError::MessageProduction(code)) => {
            assert_eq!(code, RDKafkaErrorCode::PolicyViolation)
        }
        other => panic!("expected POLICY_VIOLATION, got {other:?}"),
    }
    assert!(allowed.is_ok(), "the allowed topic in the same batch is acknowledged: {allowed:?}");

    // Nothing reached the broker for the denied topic; the allowed record did.
    assert_eq!(high_watermark(&broker.bootstrap(), &denied_topic), 0);
    assert_eq!(high_watermark(&broker.bootstrap(), &public), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_error_code_is_configurable() {
    let broker = shared_cluster().await;
    let gateway = gateway_with_policy(broker, "TOPIC_AUTHORIZATION_FAILED").await;
    let audit = unique("restricted.audit");
    create_topic(&gateway.bootstrap(), &audit, 1).await;
    let producer: FutureProducer = client_config(&gateway.bootstrap()).create().expect("producer");
    match send(&producer, &audit, "x").await {
        Err(KafkaError::MessageProduction(code)) => {
            assert_eq!(code, RDKafkaErrorCode::TopicAuthorizationFailed)
        }
        other => panic!("expected TOPIC_AUTHORIZATION_FAILED, got {other:?}"),
    }
}

#[test]
fn a_bad_pattern_is_refused_naming_the_filter_and_key() {
    let mut registry = FilterRegistry::with_builtins();
    registry.register(custom_filter::TopicPolicyFactory).expect("register");
    let yaml = "clusters: {main: {bootstrap.servers: 'k:1'}}\nfilters:\n  - type: topic-policy\n    config: {deny_produce: '(unclosed'}\n";
    let config = franzgate::GatewayConfig::from_yaml(yaml, "policy.yaml").expect("parses");
    let error =
        franzgate::Gateway::new(&config, &registry, "policy.yaml").err().map(|e| e.to_string()).unwrap_or_default();
    assert!(error.starts_with("policy.yaml: filters[0] (type `topic-policy`).config: deny_produce"), "{error}");
}
