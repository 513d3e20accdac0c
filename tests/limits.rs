//! Limits on client connections: per source address, in total, and idle connections; each refusal closes
//! only the refused connection, counts on `/metrics`, and frees its place when the connection goes.

mod common;

use std::time::Duration;

use common::secure::gateway_yaml;
use common::{ADMIN, TestGateway, api_versions_v0, closed_by_peer, read_frame, shared_cluster, unique};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

/// A gateway with `keys` in front of the binary's shared Kafka cluster.
async fn gateway(keys: &str) -> TestGateway {
    let broker = shared_cluster().await;
    let keys = format!("{keys}  admin_users: [{{username: {}, password: {}, admin: true}}]\n", ADMIN.0, ADMIN.1);
    let cluster = format!("  main:\n    bootstrap.servers: {}\n", broker.bootstrap());
    TestGateway::from_yaml(&gateway_yaml(&keys, &cluster, "")).await
}

/// A connection that has been served once (so it is registered and counted).
async fn served(port: u16) -> TcpStream {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).await.expect("connect");
    stream.write_all(&api_versions_v0(3)).await.expect("write");
    assert!(read_frame(&mut stream).await.is_some(), "served");
    stream
}

async fn metrics(gateway: &TestGateway) -> String {
    franzgate::admin::client::call_text(&gateway.admin(), "/metrics", ADMIN).await.expect("metrics")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_the_per_address_limit_are_closed_and_places_come_back() {
    let gateway = gateway("  max_connections_per_ip: 2\n").await;
    let port = gateway.port_start;
    let first = served(port).await;
    let _second = served(port).await;
    let mut third = TcpStream::connect(("127.0.0.1", port)).await.expect("connect");
    assert!(closed_by_peer(&mut third).await, "a third connection from 127.0.0.1 is closed at once");
    drop(first);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let mut again = TcpStream::connect(("127.0.0.1", port)).await.expect("connect");
        again.write_all(&api_versions_v0(4)).await.expect("write");
        if read_frame(&mut again).await.is_some() {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the closed connection's place never came back");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // At least the third connection; a retry racing the freed place may have been refused too.
    let text = metrics(&gateway).await;
    let refused = text
        .lines()
        .find_map(|l| l.strip_prefix("franzgate_connections_refused_total{limit=\"max_connections_per_ip\"} "))
        .and_then(|v| v.parse::<u64>().ok());
    assert!(refused.is_some_and(|n| n >= 1), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_the_global_limit_are_closed() {
    let gateway = gateway("  max_connections: 1\n  max_connections_per_ip: 0\n").await;
    let port = gateway.port_start;
    let _only = served(port).await;
    let mut second = TcpStream::connect(("127.0.0.1", port)).await.expect("connect");
    assert!(closed_by_peer(&mut second).await, "over max_connections");
    let text = metrics(&gateway).await;
    assert!(text.contains("franzgate_connections_refused_total{limit=\"max_connections\"} 1"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_are_closed_after_the_idle_timeout() {
    let gateway = gateway("  idle_timeout_ms: 300\n").await;
    let mut idle = served(gateway.port_start).await;
    assert!(closed_by_peer(&mut idle).await, "closed after 300 ms without requests");
    let text = metrics(&gateway).await;
    assert!(text.contains("franzgate_sessions_closed_idle_total 1"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frame_size_and_in_flight_limits_are_counted_when_reached() {
    let gateway = gateway("  max_frame_bytes: 1024\n  max_in_flight_per_session: 1\n").await;
    let port = gateway.port_start;
    // Five pipelined requests with room for one in flight: every one is still answered, in order.
    let mut stream = TcpStream::connect(("127.0.0.1", port)).await.expect("connect");
    let pipelined: Vec<u8> = (0..5).flat_map(api_versions_v0).collect();
    stream.write_all(&pipelined).await.expect("write");
    for id in 0..5i32 {
        let frame = read_frame(&mut stream).await.expect("answered");
        assert_eq!(&frame[..4], &id.to_be_bytes());
    }
    // A frame announcing more than max_frame_bytes closes its connection.
    let mut big = TcpStream::connect(("127.0.0.1", port)).await.expect("connect");
    big.write_all(&2048i32.to_be_bytes()).await.expect("write");
    assert!(closed_by_peer(&mut big).await);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let text = metrics(&gateway).await;
    let value = |limit: &str| -> f64 {
        let prefix = format!("franzgate_limit_reached_total{{limit=\"{limit}\"}} ");
        text.lines().find_map(|l| l.strip_prefix(&prefix)).and_then(|v| v.parse().ok()).unwrap_or(-1.0)
    };
    assert_eq!(value("max_frame_bytes"), 1.0, "{text}");
    assert!(value("max_in_flight_per_session") >= 1.0, "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn before_authentication_frames_are_limited_to_512_kib_and_after_it_to_max_frame_bytes() {
    use rdkafka::producer::{FutureProducer, FutureRecord};
    let keys = format!(
        "  security_protocol: SASL_PLAINTEXT\n  authentication:\n    users: [{}]\n",
        common::secure::user_entry("alice", &common::secure::hashed_credentials("alice-secret"))
    );
    let gateway = gateway(&keys).await;
    let port = gateway.port_start;
    // An unauthenticated client announcing a 600 KiB frame is closed before the gateway buffers it.
    let mut early = TcpStream::connect(("127.0.0.1", port)).await.expect("connect");
    early.write_all(&(600 * 1024i32).to_be_bytes()).await.expect("write");
    assert!(closed_by_peer(&mut early).await);
    // Authenticated, a 700 KiB record goes through.
    let mut config = common::client_config(&gateway.bootstrap());
    config
        .set("security.protocol", "SASL_PLAINTEXT")
        .set("sasl.mechanisms", "PLAIN")
        .set("sasl.username", "alice")
        .set("sasl.password", "alice-secret");
    let large = unique("large");
    common::create_topic_with(config.clone(), &large, 1).await;
    let producer: FutureProducer = config.set("acks", "all").create().expect("producer");
    let value = "v".repeat(700 * 1024);
    producer
        .send(FutureRecord::<(), _>::to(&large).payload(&value), Duration::from_secs(20))
        .await
        .map_err(|(e, _)| e)
        .expect("a large record after authentication");
    let text = metrics(&gateway).await;
    assert!(text.contains("franzgate_limit_reached_total{limit=\"max_frame_bytes\"} 1"), "{text}");
}

/// The soft and hard "Max open files" of process `pid`, from /proc.
fn open_file_limits(pid: u32) -> Option<(String, String)> {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    let mut values = line.trim_start_matches("Max open files").split_whitespace();
    Some((values.next()?.to_string(), values.next()?.to_string()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_raises_its_open_file_limit_and_warns_when_max_connections_needs_more() {
    let kafka = shared_cluster().await;
    let (port, http) = (common::free_ports(1), common::free_ports(1));
    // Started with the common soft default of 1,024 open files; far more connections allowed than any hard limit.
    let mut child = tokio::process::Command::new("bash")
        .arg("-c")
        .arg(format!("ulimit -Sn 1024 && exec {}", env!("CARGO_BIN_EXE_franzgate")))
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("KAFKA_BOOTSTRAP_SERVERS", kafka.bootstrap())
        .env("GATEWAY_BIND_HOST", "127.0.0.1")
        .env("GATEWAY_ADVERTISED_HOST", "127.0.0.1")
        .env("GATEWAY_PORT_START", port.to_string())
        .env("GATEWAY_PORT_COUNT", "1")
        .env("GATEWAY_HTTP_PORT", http.to_string())
        .env("GATEWAY_MAX_CONNECTIONS", "2000000000")
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start franzgate");
    let pid = child.id().expect("pid");
    let needle = "open-file limit is below what gateway.max_connections needs";
    let logged = common::await_log_line(child.stdout.take().expect("stdout"), needle, Duration::from_secs(30)).await;
    let seen = logged.as_ref().err().map(|lines| lines.join("\n")).unwrap_or_default();
    let (soft, hard) = open_file_limits(pid).expect("the gateway's limits in /proc");
    assert_eq!(soft, hard, "the soft open-file limit was raised to the hard one; the gateway said:\n{seen}");
    if hard != "unlimited" {
        assert!(logged.is_ok(), "two billion connections need more than {hard} files; the gateway said:\n{seen}");
    }
}
