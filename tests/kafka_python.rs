//! The gateway with an independent client implementation: kafka-python (pure Python, no librdkafka), in the
//! clear and with SASL (SCRAM and PLAIN) terminated by the gateway, before the binary's shared Apache Kafka
//! cluster. The client is kafka-python 3.x (scripts/install-deps.sh).

mod common;

use common::{TestGateway, shared_cluster, tools_dir, unique};
use franzgate::FilterRegistry;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_python_produces_consumes_and_sees_only_the_gateway() {
    common::init_test_logging();
    let broker = shared_cluster().await;
    // Clients see the gateway's cluster id, not Kafka's (random per cluster: `broker.cluster_id()`).
    assert_ne!(broker.cluster_id(), "franzgate-py");
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
        .args([
            script,
            &gateway.bootstrap(),
            &gateway.port_start.to_string(),
            "franzgate-py",
            &unique("py-orders"),
            &unique("py-group"),
        ])
        .output()
        .await
        .expect("run kafka-python");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "kafka-python check failed\nstdout: {stdout}\nstderr: {stderr}");
    assert!(stdout.starts_with("OK kafka-python produced and consumed 500 records"), "{stdout}");
}

async fn run_python(script: &str, args: &[&str]) -> std::process::Output {
    let python = tools_dir().join("venv/bin/python");
    assert!(python.exists(), "{} missing: run scripts/install-deps.sh", python.display());
    tokio::process::Command::new(python).arg(script).args(args).output().await.expect("run kafka-python")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_python_authenticates_with_scram_and_plain_and_a_wrong_password_is_refused() {
    use common::secure::{gateway_yaml, hashed_credentials, user_entry};
    let broker = shared_cluster().await;
    let keys = format!(
        "  security_protocol: SASL_PLAINTEXT\n  authentication:\n    users: [{}]\n",
        user_entry("pyuser", &hashed_credentials("py-secret"))
    );
    let cluster = format!("  main:\n    bootstrap.servers: {}\n", broker.bootstrap());
    let gateway = TestGateway::from_yaml(&gateway_yaml(&keys, &cluster, "")).await;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/clients/kafka_python_sasl.py");
    let bootstrap = gateway.bootstrap();
    for mechanism in ["SCRAM-SHA-256", "SCRAM-SHA-512", "PLAIN"] {
        let topic = unique("py-sasl");
        let output = run_python(script, &[&bootstrap, mechanism, "pyuser", "py-secret", &topic]).await;
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "{mechanism}\nstdout: {stdout}\nstderr: {stderr}");
        assert!(stdout.starts_with(&format!("OK kafka-python {mechanism} as pyuser")), "{stdout}");
    }
    let output = run_python(script, &[&bootstrap, "SCRAM-SHA-512", "pyuser", "wrong", &unique("py-sasl")]).await;
    let (stdout, stderr) = (String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert_eq!(output.status.code(), Some(3), "refused as a failed login\nstdout: {stdout}\nstderr: {stderr}");
    assert!(stdout.starts_with("REFUSED SaslAuthenticationFailedError"), "{stdout}");
    let (successes, failures) = gateway.running.auth_counts();
    assert!(successes >= 6 && failures >= 1, "{successes} successes, {failures} failures");
}
