//! The gateway with an independent client implementation: kafka-python (pure Python, no librdkafka).

mod common;

use common::{Tansu, TestGateway, tools_dir};
use franzgate::FilterRegistry;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_python_produces_consumes_and_sees_only_the_gateway() {
    let broker = Tansu::start().await;
    // Clients see the gateway's cluster id, not tansu's (`tansu_cluster`).
    let gateway = TestGateway::start_full(
        &broker.bootstrap(),
        "  cluster_id: franzgate-py\n",
        "",
        FilterRegistry::with_builtins(),
    )
    .await;
    let python = tools_dir().join("venv/bin/python");
    assert!(python.exists(), "{} missing: run scripts/install-deps.sh", python.display());
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/clients/kafka_python_check.py");
    let output = tokio::process::Command::new(python)
        .args([script, &gateway.bootstrap(), &gateway.port_start.to_string(), "franzgate-py"])
        .output()
        .await
        .expect("run kafka-python");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "kafka-python check failed\nstdout: {stdout}\nstderr: {stderr}");
    assert!(stdout.starts_with("OK kafka-python produced and consumed 500 records"), "{stdout}");
}
