//! The client matrix for kafka-python 3.x (pure Python) at the release scripts/install-deps.sh installs, through
//! the gateway against Apache Kafka: idempotent produce, classic group consume (kafka-python has no KIP-848
//! consumer: the matrix records it as unsupported), a virtual-cluster tenant with SASL, a switch mid-stream; and
//! issue 18's two kafka-python 3.x failures (FindCoordinator v4, Fetch v12) as regression tests, plain and as a
//! tenant. The driver is tests/clients/python/driver.py with `client=kafka-python`; cells go to
//! target/client-matrix/kafka-python.jsonl. tests/kafka_python.rs has the older script-based checks.

mod common;
#[path = "clients/python/matrix.rs"]
#[allow(dead_code)] // each binary uses its part of the shared scenarios
mod python_matrix;

use python_matrix::{
    Target, driver, kafka_python_consumes_at_find_coordinator_v4_and_fetch_v12, kip848_is_reported_unsupported,
    produce_and_consume_as_a_tenant, produce_idempotent_and_consume_in_groups, switch_mid_stream,
};

const CLIENT: &str = "kafka-python";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_python_produces_idempotently_and_consumes_in_a_classic_group() {
    common::init_test_logging();
    produce_idempotent_and_consume_in_groups(&driver(CLIENT), &["classic"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_python_has_no_kip848_consumer_and_the_matrix_says_so() {
    kip848_is_reported_unsupported(&driver(CLIENT)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_python_produces_and_consumes_as_a_virtual_cluster_tenant() {
    common::init_test_logging();
    produce_and_consume_as_a_tenant(&driver(CLIENT)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_python_producer_and_group_carry_on_across_a_switch() {
    common::init_test_logging();
    switch_mid_stream(&driver(CLIENT)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_python_at_find_coordinator_v4_and_fetch_v12_consumes_in_a_group_and_by_assignment() {
    common::init_test_logging();
    kafka_python_consumes_at_find_coordinator_v4_and_fetch_v12(&driver(CLIENT), &Target::passthrough().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_python_tenant_at_find_coordinator_v4_and_fetch_v12_consumes_in_a_group_and_by_assignment() {
    common::init_test_logging();
    kafka_python_consumes_at_find_coordinator_v4_and_fetch_v12(&driver(CLIENT), &Target::tenant().await).await;
}
