//! Shared harness for the integration tests: Apache Kafka clusters (the cluster kit in `kafka.rs`), an
//! in-process gateway, port allocation and raw-frame helpers. Tests of one binary share a cluster where unique
//! topic and group names isolate them, and run in parallel.
#![allow(dead_code, unused_imports)]

pub mod client_matrix;
pub mod kafka;
pub mod secure;

pub use kafka::{ClusterSpec, KafkaCluster, MirrorMaker, free_port, shared_cluster, shared_pair, tools_dir};

use std::net::TcpListener as StdListener;
use std::time::{Duration, Instant};

use franzgate::{FilterRegistry, Gateway, GatewayConfig, RunningGateway};
use rdkafka::ClientConfig;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// `count` consecutive free loopback ports (the gateway needs one port per broker, in a row).
pub fn free_ports(count: u16) -> u16 {
    for _ in 0..200 {
        // 21000-32767: below the kernel's ephemeral range (outgoing connections take those) and above the
        // cluster kit's brokers (kafka::free_port).
        let base = 21_000 + (rand_u16() % (11_760 - count));
        let held: Vec<_> = (0..count).map_while(|i| StdListener::bind(("127.0.0.1", base + i)).ok()).collect();
        if held.len() == usize::from(count) {
            return base;
        }
    }
    panic!("no {count} consecutive free ports found");
}

/// A random number from the std hasher's per-call random keys, mixed with the clock and a counter.
fn rand_u16() -> u16 {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    static CALLS: AtomicU64 = AtomicU64::new(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    h.write_u128(now ^ u128::from(std::process::id()));
    h.write_u64(CALLS.fetch_add(1, Ordering::Relaxed));
    (h.finish() & 0xffff) as u16
}

/// A single-node Apache Kafka cluster of the test's own (node id 1), for a test that kills its broker or
/// needs one no other test touches; most tests share [`shared_cluster`] instead.
pub async fn own_kafka(name: &str) -> KafkaCluster {
    KafkaCluster::start_async(ClusterSpec::new(name, &[1])).await
}

/// A name no other test of this run uses (topics and groups on a shared cluster).
pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{:04x}{:04x}", rand_u16(), rand_u16())
}

pub async fn wait_for_port(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(("127.0.0.1", port)).await.is_err() {
        assert!(Instant::now() < deadline, "nothing listening on {port} after 30s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Gateway logs on stderr when `FRANZGATE_TEST_LOG` is set (e.g. `FRANZGATE_TEST_LOG=franzgate=debug`).
pub fn init_test_logging() {
    if let Ok(filter) = std::env::var("FRANZGATE_TEST_LOG") {
        let _ = tracing_subscriber::fmt().with_env_filter(tracing_subscriber::EnvFilter::new(filter)).try_init();
    }
}

/// A gateway running in this process.
pub struct TestGateway {
    pub running: RunningGateway,
    pub port_start: u16,
}

impl TestGateway {
    /// Starts a gateway in front of `bootstrap` with the given extra YAML (e.g. a `filters:` list).
    pub async fn start(bootstrap: &str, extra_yaml: &str) -> Self {
        Self::start_with_registry(bootstrap, extra_yaml, FilterRegistry::with_builtins()).await
    }

    pub async fn start_with_registry(bootstrap: &str, extra_yaml: &str, registry: FilterRegistry) -> Self {
        Self::start_full(bootstrap, "", extra_yaml, registry).await
    }

    /// `gateway_keys` are extra lines of the `gateway:` section, each indented by two spaces.
    pub async fn start_full(bootstrap: &str, gateway_keys: &str, extra_yaml: &str, registry: FilterRegistry) -> Self {
        let port_start = free_ports(4);
        let yaml = format!(
            "gateway:\n  advertised_host: 127.0.0.1\n  bind_host: 127.0.0.1\n  port_start: {port_start}\n  port_count: 4\n  \
             connect_timeout_ms: 2000\n  http_port: 0\n{gateway_keys}clusters:\n  main:\n    bootstrap.servers: {bootstrap}\n{extra_yaml}"
        );
        let config = GatewayConfig::from_yaml(&yaml, "test.yaml").expect("valid config");
        let gateway = Gateway::new(&config, &registry, "test.yaml").expect("gateway builds");
        let running = gateway.start().await.expect("gateway starts");
        Self { running, port_start }
    }

    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port_start)
    }

    pub fn admin(&self) -> String {
        self.running.admin_addr().to_string()
    }

    /// Starts a gateway from a whole YAML document; `{PORT}` in it is replaced by a free port range start.
    pub async fn from_yaml(yaml: &str) -> Self {
        Self::from_yaml_with(yaml, FilterRegistry::with_builtins()).await
    }

    /// [`Self::from_yaml`] with a registry holding extra filter types.
    pub async fn from_yaml_with(yaml: &str, registry: FilterRegistry) -> Self {
        init_test_logging();
        let port_start = free_ports(4);
        let yaml = own_control_topic(&yaml.replace("{PORT}", &port_start.to_string()));
        let config = GatewayConfig::from_yaml(&yaml, "test.yaml").expect("valid config");
        let gateway = Gateway::new(&config, &registry, "test.yaml").expect("gateway builds");
        let running = gateway.start().await.expect("gateway starts");
        Self { running, port_start }
    }
}

/// `yaml` with a control topic of its own when it configures a failover and no `fleet:`: the gateways of
/// concurrent tests share the binary's clusters, and one test's switch must not move another test's gateway.
/// A test of the fleet itself names its topic.
pub fn own_control_topic(yaml: &str) -> String {
    if !yaml.contains("roles: failover") || yaml.contains("fleet:") {
        return yaml.to_string();
    }
    let fleet = format!("gateway:\n  fleet: {{control_topic: {}}}\n", unique("_franzgate_control"));
    match yaml.find("gateway:\n") {
        Some(at) => format!("{}{fleet}{}", &yaml[..at], &yaml[at + "gateway:\n".len()..]),
        None => format!("{fleet}{yaml}"),
    }
}

impl Drop for TestGateway {
    fn drop(&mut self) {
        self.running.shutdown();
    }
}

/// rdkafka client config against `bootstrap` with settings that keep tests fast and deterministic.
pub fn client_config(bootstrap: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", bootstrap)
        .set("socket.timeout.ms", "10000")
        .set("message.timeout.ms", "30000")
        .set("topic.metadata.refresh.interval.ms", "2000");
    c
}

/// Creates a topic through `bootstrap` with the rdkafka admin client.
pub async fn create_topic(bootstrap: &str, topic: &str, partitions: i32) {
    create_topic_with(client_config(bootstrap), topic, partitions).await
}

/// Creates a topic with the rdkafka admin client configured by `config`.
pub async fn create_topic_with(config: ClientConfig, topic: &str, partitions: i32) {
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    let admin: AdminClient<_> = config.create().expect("admin client");
    let results = admin
        .create_topics(&[NewTopic::new(topic, partitions, TopicReplication::Fixed(1))], &AdminOptions::new())
        .await
        .expect("create_topics");
    for r in results {
        if let Err((name, code)) = r {
            assert_eq!(code, rdkafka::types::RDKafkaErrorCode::TopicAlreadyExists, "creating {name}");
        }
    }
}

// === raw frames ===

/// An ApiVersions v0 request frame (length-prefixed) with `correlation_id`.
pub fn api_versions_v0(correlation_id: i32) -> Vec<u8> {
    let mut payload = Vec::new();
    payload.extend_from_slice(&18i16.to_be_bytes());
    payload.extend_from_slice(&0i16.to_be_bytes());
    payload.extend_from_slice(&correlation_id.to_be_bytes());
    payload.extend_from_slice(&4i16.to_be_bytes());
    payload.extend_from_slice(b"test");
    let mut frame = (payload.len() as i32).to_be_bytes().to_vec();
    frame.extend_from_slice(&payload);
    frame
}

/// Reads one response frame; `None` if the connection closed first.
pub async fn read_frame(stream: &mut TcpStream) -> Option<Vec<u8>> {
    let len = tokio::time::timeout(Duration::from_secs(10), stream.read_i32()).await.ok()?.ok()?;
    let mut body = vec![0; usize::try_from(len).ok()?];
    stream.read_exact(&mut body).await.ok()?;
    Some(body)
}

/// True once the peer has closed `stream` (reads EOF or a reset) within 10 s.
pub async fn closed_by_peer(stream: &mut TcpStream) -> bool {
    let mut buf = [0u8; 1024];
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match tokio::time::timeout_at(deadline.into(), stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
            Err(_) => return false,
        }
    }
}

/// A fresh connection to the gateway answers ApiVersions: proof that the gateway still serves.
pub async fn assert_gateway_serves(port: u16) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).await.expect("connect to gateway");
    stream.write_all(&api_versions_v0(77)).await.expect("write");
    let frame = read_frame(&mut stream).await.expect("ApiVersions response");
    assert_eq!(&frame[..4], &77i32.to_be_bytes(), "response carries our correlation id");
    assert_eq!(&frame[4..6], &0i16.to_be_bytes(), "ApiVersions error_code is NONE");
}

// === two clusters ===

/// Admin users of test gateways: an admin and a read-only viewer.
pub const ADMIN: (&str, &str) = ("admin", "s3cret");
pub const VIEWER: (&str, &str) = ("viewer", "look");

impl TestGateway {
    /// A gateway with cluster `main` and cluster `failover` (`gateway.roles: failover`).
    pub async fn start_pair(main: &str, failover: &str, gateway_keys: &str) -> Self {
        let keys = format!(
            "  admin_users: [{{username: {}, password: {}, admin: true}}, {{username: {}, password: {}}}]\n  \
             switch_drain_timeout_ms: 5000\n{gateway_keys}",
            ADMIN.0, ADMIN.1, VIEWER.0, VIEWER.1
        );
        // The YAML block continues the `clusters:` map begun by start_full with `main`.
        let failover = format!("  failover:\n    bootstrap.servers: {failover}\n    gateway.roles: failover\n");
        Self::start_full_clusters(main, &keys, &failover).await
    }

    async fn start_full_clusters(main: &str, gateway_keys: &str, more_clusters: &str) -> Self {
        let port_start = free_ports(4);
        let yaml = format!(
            "gateway:\n  advertised_host: 127.0.0.1\n  bind_host: 127.0.0.1\n  port_start: {port_start}\n  port_count: 4\n  \
             connect_timeout_ms: 2000\n  http_port: 0\n{gateway_keys}clusters:\n  main:\n    bootstrap.servers: {main}\n{more_clusters}"
        );
        let yaml = own_control_topic(&yaml);
        let config = GatewayConfig::from_yaml(&yaml, "test.yaml").expect("valid config");
        let gateway = Gateway::new(&config, &FilterRegistry::with_builtins(), "test.yaml").expect("gateway builds");
        let running = gateway.start().await.expect("gateway starts");
        Self { running, port_start }
    }

    /// Calls the admin API as `user`.
    pub async fn admin_call(&self, method: &str, path: &str, user: Option<(&str, &str)>) -> (u16, serde_json::Value) {
        franzgate::admin::client::call(&self.admin(), method, path, user).await.expect("admin API answers")
    }

    /// Switches `main` to `target` as the admin and checks the answer.
    pub async fn switch_to(&self, target: &str) {
        let (status, body) = self
            .admin_call("POST", &format!("/admin/pclusters/v1/pcluster/main/switch?to={target}"), Some(ADMIN))
            .await;
        assert_eq!(status, 200, "{body}");
    }
}

/// Every record value in `topic` (all partitions), read directly from a cluster, in offset order per partition.
pub fn read_all(bootstrap: &str, topic: &str) -> Vec<String> {
    read_all_with(client_config(bootstrap), topic)
}

/// Every record value in `topic`, read by a client configured by `config` (security settings included).
pub fn read_all_with(mut config: ClientConfig, topic: &str) -> Vec<String> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::{Message, Offset, TopicPartitionList};
    let bootstrap = config.get("bootstrap.servers").unwrap_or_default().to_string();
    let consumer: BaseConsumer =
        config.set("group.id", "reader").set("enable.partition.eof", "true").create().expect("consumer");
    let metadata = consumer.fetch_metadata(Some(topic), Duration::from_secs(10)).expect("metadata");
    let partitions = metadata.topics().first().map(|t| t.partitions().len()).unwrap_or(0);
    let mut assignment = TopicPartitionList::new();
    for p in 0..partitions as i32 {
        assignment.add_partition_offset(topic, p, Offset::Beginning).expect("offset");
    }
    consumer.assign(&assignment).expect("assign");
    let mut values = Vec::new();
    let mut at_end = 0;
    let deadline = Instant::now() + Duration::from_secs(30);
    while at_end < partitions && Instant::now() < deadline {
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => values.push(String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned()),
            Some(Err(rdkafka::error::KafkaError::PartitionEOF(_))) => at_end += 1,
            Some(Err(e)) => panic!("reading {topic} from {bootstrap}: {e}"),
            None => {}
        }
    }
    assert_eq!(at_end, partitions, "reached the end of every partition of {topic}");
    values
}

/// A Metadata v12 request sent through `port`, decoded: what any client would be told.
pub async fn raw_metadata(port: u16) -> kafka_protocol::messages::MetadataResponse {
    use bytes::{Buf, BufMut, BytesMut};
    use kafka_protocol::messages::{ApiKey, MetadataRequest, MetadataResponse, RequestHeader};
    use kafka_protocol::protocol::{Decodable, Encodable};
    let version = 12;
    let header = RequestHeader::default()
        .with_request_api_key(ApiKey::Metadata as i16)
        .with_request_api_version(version)
        .with_correlation_id(5)
        .with_client_id(Some("raw".into()));
    let mut frame = BytesMut::new();
    frame.put_i32(0);
    header.encode(&mut frame, ApiKey::Metadata.request_header_version(version)).expect("header");
    MetadataRequest::default().with_topics(None).encode(&mut frame, version).expect("body");
    let len = (frame.len() - 4) as i32;
    frame[..4].copy_from_slice(&len.to_be_bytes());
    let mut stream = TcpStream::connect(("127.0.0.1", port)).await.expect("connect");
    stream.write_all(&frame).await.expect("write");
    let response = read_frame(&mut stream).await.expect("metadata response");
    let mut body = bytes::Bytes::from(response);
    body.advance(4); // correlation id
    body.advance(1); // empty tagged fields of response header v1
    MetadataResponse::decode(&mut body, version).expect("decodes")
}

// === tenants ===

/// A tenant's client settings through the gateway at `bootstrap`: SASL PLAIN, a service-account token as password.
pub fn tenant_config(bootstrap: &str, user: &str, token: &str) -> ClientConfig {
    let mut c = client_config(bootstrap);
    c.set("security.protocol", "SASL_PLAINTEXT")
        .set("sasl.mechanisms", "PLAIN")
        .set("sasl.username", user)
        .set("sasl.password", token);
    c
}

/// Produces `values` to `topic` with acks=all, each acknowledged before the next.
pub async fn produce(config: &ClientConfig, topic: &str, values: &[&str]) {
    use rdkafka::producer::{FutureProducer, FutureRecord};
    let producer: FutureProducer = config.clone().set("acks", "all").create().expect("producer");
    for value in values {
        producer
            .send(FutureRecord::<(), _>::to(topic).payload(*value), Duration::from_secs(30))
            .await
            .map_err(|(e, _)| e)
            .expect("acknowledged");
    }
}

// === the binary's log ===

/// Reads a gateway binary's stdout until a line contains `needle` and returns that line; ANSI colours (the text
/// format colours fields) are removed first. `Err` with every line read when the output ends or `timeout` passes.
pub async fn await_log_line(
    stdout: tokio::process::ChildStdout,
    needle: &str,
    timeout: Duration,
) -> Result<String, Vec<String>> {
    use tokio::io::{AsyncBufReadExt, BufReader};
    let mut lines = BufReader::new(stdout).lines();
    let deadline = tokio::time::Instant::now() + timeout;
    let mut seen = Vec::new();
    while let Ok(Ok(Some(line))) = tokio::time::timeout_at(deadline, lines.next_line()).await {
        let line = strip_ansi(&line);
        if line.contains(needle) {
            return Ok(line);
        }
        seen.push(line);
    }
    Err(seen)
}

/// `text` without ANSI colour escapes (`ESC [ ... m`).
pub fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            chars.by_ref().take_while(|c| *c != 'm').for_each(drop);
        } else {
            out.push(c);
        }
    }
    out
}
