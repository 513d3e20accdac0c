//! The client matrix for confluent-kafka (Python, librdkafka inside) at the release scripts/install-deps.sh
//! installs, through the gateway against Apache Kafka: idempotent produce, group consume with the classic and
//! the KIP-848 (`group.protocol=consumer`) protocols, a virtual-cluster tenant with SASL, a switch mid-stream,
//! committed transactions.
//! The driver is tests/clients/python/driver.py with `client=confluent-kafka`; cells go to
//! target/client-matrix/confluent-kafka.jsonl.

mod common;
#[path = "clients/python/matrix.rs"]
#[allow(dead_code)] // each binary uses its part of the shared scenarios
mod python_matrix;

use python_matrix::{
    driver, produce_and_consume_as_a_tenant, produce_idempotent_and_consume_in_groups,
    produce_in_committed_transactions, switch_mid_stream,
};

const CLIENT: &str = "confluent-kafka";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn confluent_kafka_produces_idempotently_and_consumes_in_classic_and_kip848_groups() {
    common::init_test_logging();
    produce_idempotent_and_consume_in_groups(&driver(CLIENT), &["classic", "consumer"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn confluent_kafka_produces_and_consumes_as_a_virtual_cluster_tenant() {
    common::init_test_logging();
    produce_and_consume_as_a_tenant(&driver(CLIENT)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn confluent_kafka_producer_and_group_carry_on_across_a_switch() {
    common::init_test_logging();
    switch_mid_stream(&driver(CLIENT)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn confluent_kafka_produces_in_committed_transactions() {
    common::init_test_logging();
    produce_in_committed_transactions(&driver(CLIENT)).await;
}
