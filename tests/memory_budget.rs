//! Memory bounded in bytes under hostile load (issue 16): clients that pipeline Fetch requests and never read the
//! answers, and an acks=0 Produce flood against a paused broker. The gateway runs as its own process so that its
//! resident memory can be read from /proc; the budgets are set small (16 MiB per session, 32 MiB in all) so the
//! bounds are far below what the same load took without them (GiBs).

mod common;

use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use common::kafka::KafkaCluster;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{ApiKey, FetchRequest, ProduceRequest, RequestHeader, TopicName};
use kafka_protocol::protocol::{Encodable, StrBytes};
use kafka_protocol::records::{Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType};
use rdkafka::producer::{FutureProducer, FutureRecord};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

const MIB: u64 = 1024 * 1024;
const SESSION_BUDGET: u64 = 16 * MIB;
const GATEWAY_BUDGET: u64 = 32 * MIB;
/// What the gateway may hold above its idle size under either load: the gateway budget, a frame of overshoot
/// per session, allocator slack (buffers grow in powers of two) and the read buffers of the connections.
const ALLOWED_GROWTH: u64 = 160 * MIB;

/// The franzgate binary in front of `kafka`, with small budgets; killed when dropped.
struct GatewayProcess {
    child: tokio::process::Child,
    port: u16,
    admin: String,
}

impl GatewayProcess {
    async fn start(kafka: &KafkaCluster) -> Self {
        let (port, http) = (common::free_ports(2), common::free_ports(1));
        let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_franzgate"))
            .env_clear()
            .env("KAFKA_BOOTSTRAP_SERVERS", kafka.bootstrap())
            .env("GATEWAY_BIND_HOST", "127.0.0.1")
            .env("GATEWAY_ADVERTISED_HOST", "127.0.0.1")
            .env("GATEWAY_PORT_START", port.to_string())
            .env("GATEWAY_PORT_COUNT", "2")
            .env("GATEWAY_HTTP_PORT", http.to_string())
            .env("GATEWAY_SESSION_BUFFER_BYTES", SESSION_BUDGET.to_string())
            .env("GATEWAY_MEMORY_BUDGET_BYTES", GATEWAY_BUDGET.to_string())
            .env("RUST_LOG", "warn")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("start franzgate");
        common::wait_for_port(port).await;
        common::assert_gateway_serves(port).await;
        Self { child, port, admin: format!("127.0.0.1:{http}") }
    }

    fn rss(&self) -> u64 {
        let pid = self.child.id().expect("running");
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
        let kib = status.lines().find_map(|l| l.strip_prefix("VmRSS:")).expect("VmRSS");
        kib.trim().trim_end_matches("kB").trim().parse::<u64>().expect("a number") * 1024
    }

    async fn metric(&self, line_start: &str) -> u64 {
        let text = franzgate::admin::client::call_text(&self.admin, "/metrics", ("admin", "conduktor"))
            .await
            .expect("metrics");
        text.lines()
            .find_map(|l| l.strip_prefix(line_start))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .map_or(0, |v| v as u64)
    }

    /// Waits until `line_start`'s value reaches `at_least`.
    async fn await_metric(&self, line_start: &str, at_least: u64, within: Duration) -> u64 {
        let deadline = Instant::now() + within;
        loop {
            let value = self.metric(line_start).await;
            if value >= at_least {
                return value;
            }
            assert!(Instant::now() < deadline, "{line_start} stayed at {value}, below {at_least}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// A request frame: length, header (its version for `api` at `version`), body.
fn frame(api: ApiKey, version: i16, correlation_id: i32, body: &impl Encodable) -> Bytes {
    let header = RequestHeader::default()
        .with_request_api_key(api as i16)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(StrBytes::from_static_str("memory-test")));
    let mut out = BytesMut::new();
    out.put_i32(0);
    header.encode(&mut out, api.request_header_version(version)).expect("header");
    body.encode(&mut out, version).expect("body");
    let len = (out.len() - 4) as i32;
    out[..4].copy_from_slice(&len.to_be_bytes());
    out.freeze()
}

/// Fetch v11 (topic names) of partition 0 from offset 0, answered with up to 2 MiB at once.
fn fetch(topic: &str, correlation_id: i32) -> Bytes {
    let partition = FetchPartition::default()
        .with_partition(0)
        .with_fetch_offset(0)
        .with_current_leader_epoch(-1)
        .with_last_fetched_epoch(-1)
        .with_log_start_offset(-1)
        .with_partition_max_bytes(2 * MIB as i32);
    let topic = FetchTopic::default()
        .with_topic(TopicName(StrBytes::from_string(topic.to_string())))
        .with_partitions(vec![partition]);
    let request = FetchRequest::default()
        .with_replica_id(kafka_protocol::messages::BrokerId(-1))
        .with_max_wait_ms(0)
        .with_min_bytes(1)
        .with_max_bytes(2 * MIB as i32)
        .with_session_epoch(-1)
        .with_topics(vec![topic]);
    frame(ApiKey::Fetch, 11, correlation_id, &request)
}

/// Produce v7 with acks=0 of one record of `value_bytes` to partition 0.
fn produce_acks_zero(topic: &str, value_bytes: usize, correlation_id: i32) -> Bytes {
    let record = Record {
        transactional: false,
        control: false,
        delete_horizon: false,
        partition_leader_epoch: 0,
        producer_id: -1,
        producer_epoch: -1,
        timestamp_type: TimestampType::Creation,
        offset: 0,
        sequence: -1,
        timestamp: 0,
        key: None,
        value: Some(Bytes::from(vec![b'x'; value_bytes])),
        headers: Default::default(),
    };
    let mut batch = BytesMut::new();
    let options = RecordEncodeOptions { version: 2, compression: Compression::None };
    RecordBatchEncoder::encode(&mut batch, [record].iter(), &options).expect("batch");
    let partition = PartitionProduceData::default().with_index(0).with_records(Some(batch.freeze()));
    let data = TopicProduceData::default()
        .with_name(TopicName(StrBytes::from_string(topic.to_string())))
        .with_partition_data(vec![partition]);
    let request = ProduceRequest::default().with_acks(0).with_timeout_ms(30_000).with_topic_data(vec![data]);
    frame(ApiKey::Produce, 7, correlation_id, &request)
}

/// Fills `topic` (one partition) with `count` records of 100 KiB, straight to the broker.
async fn fill(kafka: &KafkaCluster, topic: &str, count: usize) {
    common::create_topic(&kafka.bootstrap(), topic, 1).await;
    let producer: FutureProducer = common::client_config(&kafka.bootstrap()).create().expect("producer");
    let value = vec![b'v'; 100 * 1024];
    for i in 0..count {
        let key = i.to_string();
        producer
            .send(FutureRecord::to(topic).key(&key).payload(&value), Duration::from_secs(30))
            .await
            .expect("produced");
    }
}

/// Samples the gateway's resident size for `window`; the largest seen.
async fn peak_rss_over(gateway: &GatewayProcess, window: Duration) -> u64 {
    let end = Instant::now() + window;
    let mut peak = gateway.rss();
    while Instant::now() < end {
        tokio::time::sleep(Duration::from_millis(250)).await;
        peak = peak.max(gateway.rss());
    }
    peak
}

/// Waits until the gateway's resident size is back within `slack` of `idle`.
async fn await_rss_near(gateway: &GatewayProcess, idle: u64, slack: u64, within: Duration) {
    let deadline = Instant::now() + within;
    while gateway.rss() > idle + slack {
        assert!(
            Instant::now() < deadline,
            "resident memory stayed at {} MiB after the load ended (idle {} MiB)",
            gateway.rss() / MIB,
            idle / MIB
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_fetches_never_read_hold_no_more_than_the_budgets_and_others_keep_working() {
    let kafka = common::own_kafka("memory-fetch").await;
    let topic = common::unique("fetched");
    fill(&kafka, &topic, 60).await;
    let gateway = GatewayProcess::start(&kafka).await;
    let idle = gateway.rss();

    // Four clients each send 1,000 Fetch requests, every one answered with ~2 MiB, and never read.
    let mut hogs = Vec::new();
    for _ in 0..4 {
        let mut stream = TcpStream::connect(("127.0.0.1", gateway.port)).await.expect("connect");
        let pipeline: Vec<u8> = (0..1000).flat_map(|i| fetch(&topic, i).to_vec()).collect();
        stream.write_all(&pipeline).await.expect("pipeline written");
        hogs.push(stream);
    }
    // The four together outgrow the gateway's budget (whether each also fills its own first depends on how
    // their answers interleave).
    let gateway_waits = "franzgate_memory_budget_waits_total{budget=\"memory_budget_bytes\"}";
    gateway.await_metric(gateway_waits, 1, Duration::from_secs(120)).await;
    let peak = peak_rss_over(&gateway, Duration::from_secs(3)).await;
    assert!(
        peak <= idle + ALLOWED_GROWTH,
        "4 x 1,000 unread 2 MiB fetches took the gateway from {} MiB to {} MiB",
        idle / MIB,
        peak / MIB
    );
    eprintln!("unread fetches: gateway RSS idle {} MiB, peak {} MiB", idle / MIB, peak / MIB);
    let buffered = gateway.metric("franzgate_buffered_bytes_peak").await;
    assert!(buffered <= GATEWAY_BUDGET + 4 * 3 * MIB, "buffered at most {} MiB", buffered / MIB);

    // While the four hold the whole gateway budget, another client's fetch is still answered.
    let mut other = TcpStream::connect(("127.0.0.1", gateway.port)).await.expect("connect");
    other.write_all(&fetch(&topic, 7)).await.expect("write");
    let answer = common::read_frame(&mut other).await.expect("another session's fetch is answered");
    assert!(answer.len() > 1024 * 1024, "a full fetch answer ({} bytes)", answer.len());

    drop(hogs);
    drop(other);
    // The sessions close, and every buffered byte is given back...
    let deadline = Instant::now() + Duration::from_secs(60);
    while gateway.metric("franzgate_buffered_bytes{direction=\"response\"}").await > 0 {
        assert!(Instant::now() < deadline, "buffered responses were never given back");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // ...and to the system: resident memory returns near its idle size.
    await_rss_near(&gateway, idle, 48 * MIB, Duration::from_secs(90)).await;
    eprintln!("after the load: gateway RSS {} MiB", gateway.rss() / MIB);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_acks_zero_flood_against_a_paused_broker_is_held_to_the_budgets_and_clients_recover() {
    let kafka = common::own_kafka("memory-paused").await;
    let (flooded, acked) = (common::unique("flooded"), common::unique("acked"));
    common::create_topic(&kafka.bootstrap(), &flooded, 1).await;
    common::create_topic(&kafka.bootstrap(), &acked, 1).await;
    let gateway = GatewayProcess::start(&kafka).await;
    let bootstrap = format!("127.0.0.1:{}", gateway.port);
    // A client that waits out the pause (the kit's default message timeout is the pause's length); idempotent,
    // so its retries after the pause do not write the record twice.
    let producer: FutureProducer = common::client_config(&bootstrap)
        .set("message.timeout.ms", "180000")
        .set("enable.idempotence", "true")
        .create()
        .expect("producer");
    producer
        .send(FutureRecord::<str, str>::to(&acked).payload("before"), Duration::from_secs(30))
        .await
        .expect("before");
    let mut flooders = Vec::new();
    for _ in 0..4 {
        let mut stream = TcpStream::connect(("127.0.0.1", gateway.port)).await.expect("connect");
        stream.write_all(&produce_acks_zero(&flooded, 1024, 0)).await.expect("first produce");
        flooders.push(stream);
    }
    let idle = gateway.rss();

    let pid = kafka.pid(1).expect("broker pid");
    signal(pid, "STOP");
    let during = {
        let producer = producer.clone();
        let acked = acked.clone();
        tokio::spawn(async move {
            producer.send(FutureRecord::<str, str>::to(&acked).payload("during"), Duration::from_secs(180)).await
        })
    };
    // 30 s of 512 KiB acks=0 records as fast as the gateway takes them, on four connections.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let floods: Vec<_> = flooders
        .into_iter()
        .map(|mut stream| {
            let topic = flooded.clone();
            tokio::spawn(async move {
                let record = produce_acks_zero(&topic, 512 * 1024, 1);
                let mut sent = 0u64;
                while tokio::time::timeout_at(deadline, stream.write_all(&record)).await.is_ok_and(|r| r.is_ok()) {
                    sent += record.len() as u64;
                }
                (stream, sent)
            })
        })
        .collect();
    let peak = peak_rss_over(&gateway, Duration::from_secs(29)).await;
    let mut streams = Vec::new();
    let mut sent = 0;
    for flood in floods {
        let (stream, bytes) = flood.await.expect("flood task");
        sent += bytes;
        streams.push(stream);
    }
    signal(pid, "CONT");
    eprintln!(
        "acks=0 flood: {} MiB sent in 30 s, gateway RSS idle {} MiB, peak {} MiB",
        sent / MIB,
        idle / MIB,
        peak / MIB
    );
    assert!(sent >= GATEWAY_BUDGET, "the flood reached the gateway ({} MiB sent)", sent / MIB);
    assert!(
        peak <= idle + ALLOWED_GROWTH,
        "{} MiB of acks=0 records against a paused broker took the gateway from {} MiB to {} MiB",
        sent / MIB,
        idle / MIB,
        peak / MIB
    );

    // The broker resumes: the record sent while it was paused is delivered, and both records read back.
    during.await.expect("task").expect("the record sent during the pause is delivered after it");
    drop(streams);
    let values = common::read_all(&bootstrap, &acked);
    assert_eq!(values, vec!["before".to_string(), "during".to_string()]);
}

/// Sends SIGSTOP or SIGCONT to `pid`.
fn signal(pid: u32, name: &str) {
    let status = std::process::Command::new("kill").arg(format!("-{name}")).arg(pid.to_string()).status();
    assert!(status.is_ok_and(|s| s.success()), "kill -{name} {pid}");
}
