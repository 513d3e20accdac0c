//! Structured logs from the real binary: `--log-format json` writes one JSON object per line, the audit lines
//! of admin calls (switches included) say who did what with which result, and a session's lines carry its
//! fields.

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::{ADMIN, free_ports, own_kafka, shared_cluster, wait_for_port};
use tokio::io::{AsyncBufReadExt, BufReader};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_carry_audit_lines_for_every_switch_and_sigterm_shuts_down_gracefully() {
    // Two real clusters, so the switch moves between distinct backends: the binary's shared one and one of its own.
    let (main, failover) = tokio::join!(shared_cluster(), own_kafka("failover"));
    let (port, http) = (free_ports(2), free_ports(1));
    let users = format!("[{{username: {}, password: {}, admin: true}}]", ADMIN.0, ADMIN.1);
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_franzgate"))
        .args(["--log-format", "json", "--log", "info,franzgate::session=debug"])
        .env_clear()
        .env("KAFKA_MAIN_BOOTSTRAP_SERVERS", main.bootstrap())
        .env("KAFKA_FAILOVER_BOOTSTRAP_SERVERS", failover.bootstrap())
        .env("KAFKA_FAILOVER_GATEWAY_ROLES", "failover")
        .env("GATEWAY_BIND_HOST", "127.0.0.1")
        .env("GATEWAY_ADVERTISED_HOST", "127.0.0.1")
        .env("GATEWAY_PORT_START", port.to_string())
        .env("GATEWAY_PORT_COUNT", "2")
        .env("GATEWAY_HTTP_PORT", http.to_string())
        .env("GATEWAY_ADMIN_API_USERS", users)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start franzgate");
    wait_for_port(http).await;
    let admin = format!("127.0.0.1:{http}");
    let path = "/admin/pclusters/v1/pcluster/main/switch?to=failover";
    let (status, _) = franzgate::admin::client::call(&admin, "POST", path, Some(ADMIN)).await.expect("switch");
    assert_eq!(status, 200);
    let (status, _) = franzgate::admin::client::call(
        &admin,
        "POST",
        "/admin/pclusters/v1/pcluster/main/switch?to=nowhere",
        Some(ADMIN),
    )
    .await
    .expect("refused switch");
    assert_eq!(status, 400, "an unknown target is refused");
    // A client connection, so that session lines appear too.
    common::assert_gateway_serves(port).await;

    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let mut audits = Vec::new();
    let mut session_fields = false;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while audits.len() < 2 || !session_fields {
        let Ok(Ok(Some(line))) = tokio::time::timeout_at(deadline, lines.next_line()).await else { break };
        let entry: serde_json::Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        if entry["target"] == "franzgate::audit" {
            audits.push(entry["fields"].clone());
        }
        if entry["span"]["name"] == "session" && entry["span"]["id"].is_number() {
            session_fields = true;
        }
    }
    // SIGTERM: a graceful shutdown, logged, and a clean exit.
    let pid = child.id().expect("running").to_string();
    let sent = std::process::Command::new("kill").args(["-TERM", &pid]).status().expect("kill");
    assert!(sent.success());
    let mut shutdown_lines = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while let Ok(Ok(Some(line))) = tokio::time::timeout_at(deadline, lines.next_line()).await {
        let entry: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
        if let Some(message) = entry["fields"]["message"].as_str() {
            shutdown_lines.push(message.to_string());
        }
    }
    let status = tokio::time::timeout(Duration::from_secs(20), child.wait()).await.expect("exits").expect("status");
    assert!(status.success(), "exit status {status}");
    for expected in ["signal received: shutting down gracefully", "every session drained", "shut down"] {
        assert!(shutdown_lines.iter().any(|l| l.starts_with(expected)), "`{expected}` in {shutdown_lines:?}");
    }
    assert!(audits.len() >= 2, "audit lines: {audits:?}");
    assert_eq!(audits[0]["user"], ADMIN.0);
    assert_eq!(audits[0]["action"], "switch main to failover");
    assert_eq!(audits[0]["outcome"], "switched");
    assert!(audits[1]["outcome"].as_str().is_some_and(|o| o.starts_with("refused")), "{:?}", audits[1]);
    assert!(session_fields, "session lines carry the session span's fields");
}
