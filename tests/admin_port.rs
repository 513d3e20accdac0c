//! The admin port cannot starve the gateway (issue 16, item 2): a flood of idle admin connections leaves Kafka
//! clients and `/health` served, silent admin connections are closed, and a slow request is answered 503.

mod common;

use std::time::{Duration, Instant};

use common::secure::gateway_yaml;
use common::{ADMIN, TestGateway, closed_by_peer, shared_cluster};
use franzgate::admin::client;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The idle connections of the flood: more than the gateway's 1,024 open files.
const FLOOD: usize = 1_100;

/// The franzgate binary, started with 1,024 open files (soft and hard: it cannot raise them).
struct Binary {
    /// The process (killed on drop).
    _child: tokio::process::Child,
    /// Its first broker port.
    kafka_port: u16,
    /// Its admin API, `host:port`.
    admin: String,
}

/// Starts the binary in front of the shared cluster with `env` added, and waits until `/health` answers.
async fn start_binary(env: &[(&str, &str)]) -> Binary {
    let kafka = shared_cluster().await;
    let (kafka_port, http_port) = (common::free_ports(1), common::free_ports(1));
    let mut command = tokio::process::Command::new("bash");
    command
        .arg("-c")
        .arg(format!("ulimit -n 1024 && exec {}", env!("CARGO_BIN_EXE_franzgate")))
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("KAFKA_BOOTSTRAP_SERVERS", kafka.bootstrap())
        .env("GATEWAY_BIND_HOST", "127.0.0.1")
        .env("GATEWAY_ADVERTISED_HOST", "127.0.0.1")
        .env("GATEWAY_PORT_START", kafka_port.to_string())
        .env("GATEWAY_PORT_COUNT", "1")
        .env("GATEWAY_HTTP_PORT", http_port.to_string())
        .env("GATEWAY_ADMIN_API_USERS", format!("[{{username: {}, password: {}, admin: true}}]", ADMIN.0, ADMIN.1))
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true);
    for (name, value) in env {
        command.env(name, value);
    }
    let mut child = command.spawn().expect("start franzgate");
    // Drain the log, so the gateway never blocks writing it.
    let stdout = child.stdout.take().expect("stdout");
    tokio::spawn(async move {
        use tokio::io::AsyncBufReadExt;
        let mut lines = tokio::io::BufReader::new(stdout).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            if std::env::var_os("FRANZGATE_TEST_LOG").is_some() {
                eprintln!("{line}");
            }
        }
    });
    let admin = format!("127.0.0.1:{http_port}");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !matches!(client::call(&admin, "GET", "/health", None).await, Ok((200, _))) {
        assert!(Instant::now() < deadline, "the binary's /health never answered");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Binary { _child: child, kafka_port, admin }
}

/// Opens `count` TCP connections to `addr` that never send anything.
async fn idle_connections(addr: &str, count: usize) -> Vec<TcpStream> {
    let mut held = Vec::with_capacity(count);
    for _ in 0..count {
        held.push(TcpStream::connect(addr).await.expect("connect to the admin port"));
    }
    held
}

/// A counter or gauge of `/metrics` (with its labels, as written), or -1.
async fn metric(admin: &str, series: &str) -> f64 {
    let text = client::call_text(admin, "/metrics", ADMIN).await.expect("metrics");
    let prefix = format!("{series} ");
    text.lines().find_map(|l| l.strip_prefix(&prefix)).and_then(|v| v.parse().ok()).unwrap_or(-1.0)
}

/// While the flood is held open: GET /health answers 200, a raw Metadata request through the gateway is answered,
/// and an rdkafka client gets the cluster's metadata through it.
async fn assert_served_during_flood(binary: &Binary) {
    let health = tokio::time::timeout(Duration::from_secs(10), client::call(&binary.admin, "GET", "/health", None))
        .await
        .expect("/health answered within 10 s");
    assert_eq!(health.map(|(status, _)| status), Ok(200), "/health during the flood");
    let raw = tokio::time::timeout(Duration::from_secs(10), common::raw_metadata(binary.kafka_port))
        .await
        .expect("Metadata answered within 10 s");
    assert!(!raw.brokers.is_empty(), "the gateway's Metadata names its brokers: {raw:?}");
    let bootstrap = format!("127.0.0.1:{}", binary.kafka_port);
    let brokers = tokio::task::spawn_blocking(move || {
        use rdkafka::consumer::{BaseConsumer, Consumer};
        let consumer: BaseConsumer = common::client_config(&bootstrap).create().expect("consumer");
        consumer.fetch_metadata(None, Duration::from_secs(20)).map(|m| m.brokers().len())
    })
    .await
    .expect("join");
    assert!(
        brokers.as_ref().is_ok_and(|n| *n > 0),
        "an rdkafka client reads metadata through the gateway: {brokers:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_idle_admin_connections_leaves_kafka_clients_and_health_served() {
    let binary = start_binary(&[]).await;
    let flood = idle_connections(&binary.admin, FLOOD).await;
    assert_served_during_flood(&binary).await;
    // The flood is still open on this side; the gateway kept at most admin_max_connections (128) of it.
    assert_eq!(flood.len(), FLOOD);
    let evicted = metric(&binary.admin, "franzgate_admin_connections_evicted_total").await;
    assert!(evicted >= (FLOOD - 128) as f64, "idle connections were evicted to make room: {evicted}");
    let open = metric(&binary.admin, "franzgate_admin_connections_open").await;
    assert!((1.0..=128.0).contains(&open), "open admin connections within admin_max_connections: {open}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_an_admin_connection_limit_the_descriptor_reserve_still_leaves_room_for_kafka() {
    // No admin_max_connections: only the reserve of 64 descriptors (of 1,024) keeps the flood from taking them all.
    let binary = start_binary(&[("GATEWAY_ADMIN_MAX_CONNECTIONS", "0")]).await;
    let flood = idle_connections(&binary.admin, FLOOD).await;
    assert_served_during_flood(&binary).await;
    assert_eq!(flood.len(), FLOOD);
    let open = metric(&binary.admin, "franzgate_admin_connections_open").await;
    assert!(open < (1024 - 64) as f64, "the admin API left the reserve free: {open} admin connections open");
    let evicted = metric(&binary.admin, "franzgate_admin_connections_evicted_total").await;
    assert!(evicted > 0.0, "past the reserve, new admin connections replaced idle ones: {evicted}");
}

// === timeouts, in process ===

/// A gateway with `keys` in front of the shared cluster.
async fn gateway(keys: &str) -> TestGateway {
    let broker = shared_cluster().await;
    let keys = format!("{keys}  admin_users: [{{username: {}, password: {}, admin: true}}]\n", ADMIN.0, ADMIN.1);
    let cluster = format!("  main:\n    bootstrap.servers: {}\n", broker.bootstrap());
    TestGateway::from_yaml(&gateway_yaml(&keys, &cluster, "")).await
}

/// Reads one HTTP response head and body (up to `content-length`) from a kept-alive connection.
async fn read_response(stream: &mut TcpStream) -> String {
    let mut received = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buf))
            .await
            .expect("a response within 10 s")
            .expect("read");
        assert!(n > 0, "closed before a whole response: {}", String::from_utf8_lossy(&received));
        received.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&received).to_string();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length = head
                .lines()
                .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().to_string()))
                .and_then(|v| v.parse::<usize>().ok())
                .unwrap_or(0);
            if body.len() >= length {
                return text;
            }
        }
    }
}

fn basic_auth() -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", ADMIN.0, ADMIN.1))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_connection_that_sends_nothing_is_closed_after_the_header_read_timeout() {
    let gateway = gateway("  admin_header_read_timeout_ms: 300\n").await;
    let opened = Instant::now();
    let mut silent = TcpStream::connect(gateway.admin()).await.expect("connect");
    assert!(closed_by_peer(&mut silent).await, "closed by the gateway");
    assert!(opened.elapsed() >= Duration::from_millis(300), "not before the header-read timeout");
    let closed = metric(&gateway.admin(), "franzgate_admin_timeouts_total{timeout=\"header_read\"}").await;
    assert!(closed >= 1.0, "counted: {closed}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kept_alive_admin_connection_is_closed_after_the_idle_timeout_not_the_header_read_one() {
    let gateway = gateway("  admin_header_read_timeout_ms: 200\n  admin_idle_timeout_ms: 1000\n").await;
    let mut kept = TcpStream::connect(gateway.admin()).await.expect("connect");
    // The gateway's idle clock starts after this (once it has answered), so this is a safe lower bound.
    let asked = Instant::now();
    kept.write_all(b"GET /health HTTP/1.1\r\nhost: gateway\r\n\r\n").await.expect("write");
    let response = read_response(&mut kept).await;
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(closed_by_peer(&mut kept).await, "closed by the gateway");
    assert!(asked.elapsed() >= Duration::from_millis(1000), "kept for the idle timeout between requests");
    let idle = metric(&gateway.admin(), "franzgate_admin_timeouts_total{timeout=\"idle\"}").await;
    assert!(idle >= 1.0, "counted: {idle}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_whose_body_never_completes_gets_503_after_the_request_timeout() {
    let gateway = gateway("  admin_request_timeout_ms: 300\n").await;
    let mut slow = TcpStream::connect(gateway.admin()).await.expect("connect");
    let head = format!(
        "POST /admin/vclusters/v1/vcluster/slow HTTP/1.1\r\nhost: gateway\r\nauthorization: Basic {}\r\n\
         content-type: application/json\r\ncontent-length: 100\r\n\r\n{{\"prefix\":",
        basic_auth()
    );
    slow.write_all(head.as_bytes()).await.expect("write");
    let response = read_response(&mut slow).await;
    assert!(response.starts_with("HTTP/1.1 503"), "{response}");
    assert!(response.contains("admin_request_timeout_ms"), "the message names the key: {response}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_the_limit_a_new_connection_evicts_the_oldest_idle_one_never_a_busy_one() {
    let gateway = gateway("  admin_max_connections: 3\n").await;
    let admin = gateway.admin();
    // The oldest connection is busy: its request's body is still on its way. `100 Continue` comes once the
    // handler reads the body, i.e. once the request is being handled.
    let mut busy = TcpStream::connect(&admin).await.expect("connect");
    let head = format!(
        "POST /admin/vclusters/v1/vcluster/{} HTTP/1.1\r\nhost: gateway\r\nauthorization: Basic {}\r\n\
         content-type: application/json\r\ncontent-length: 4\r\nexpect: 100-continue\r\n\r\n",
        common::unique("busy"),
        basic_auth()
    );
    busy.write_all(head.as_bytes()).await.expect("write");
    let interim = read_response(&mut busy).await;
    assert!(interim.starts_with("HTTP/1.1 100"), "{interim}");
    busy.write_all(b"{").await.expect("write part of the body");
    let mut idle = idle_connections(&admin, 2).await;
    // Every place is taken (1 busy + 2 idle), yet /health is answered: the oldest idle connection made room.
    let (status, _) = client::call(&admin, "GET", "/health", None).await.expect("/health at the limit");
    assert_eq!(status, 200);
    assert!(closed_by_peer(&mut idle[0]).await, "the oldest idle connection was evicted");
    // The busy one was not: its request completes and is answered (whatever the answer).
    busy.write_all(b"  }").await.expect("write the rest of the body");
    let response = read_response(&mut busy).await;
    assert!(response.starts_with("HTTP/1.1 "), "{response}");
    assert!(metric(&admin, "franzgate_admin_connections_evicted_total").await >= 1.0);
}
