//! The no-filter pass-through path: request → response round trips over loopback TCP, straight to a minimal
//! in-process fake broker ("direct") and through an in-process franzgate gateway with only the core filters in
//! front of the same fake broker ("gateway"). The difference is the gateway's own cost.
//!
//! The fake broker answers from pre-encoded responses (only the correlation id is copied from the request), so
//! it costs as little as possible and both paths pay for it equally:
//! - ApiVersions: a v0 response with error 0 and no api keys (the gateway's api-versions filter decodes it);
//! - Produce v9: a ProduceResponse v9 for one topic/partition, response header v1;
//! - Metadata (the gateway's start-up probe): one broker, node 1, at the fake broker's own address, so the
//!   gateway routes its port to it.
//!
//! Each client connection is opened once, outside the measured loop. The gateway and the fake broker run on a
//! 2-worker tokio runtime; criterion's `to_async` drives the client on the same runtime, its measured loop
//! spawned as a task on the workers (see `compare`).
//!
//! Run with `cargo bench --bench passthrough`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use franzgate::codec::FrameDecoder;
use franzgate::{FilterRegistry, Gateway, GatewayConfig, RunningGateway};
use futures::{FutureExt, StreamExt};
use kafka_protocol::messages::metadata_response::MetadataResponseBroker;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, BrokerId, MetadataResponse, ProduceRequest, ProduceResponse,
    RequestHeader, TopicName,
};
use kafka_protocol::protocol::{Encodable, StrBytes};
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Runtime;
use tokio::sync::Mutex;
use tokio_util::codec::FramedRead;

const MAX_FRAME: usize = 100 * 1024 * 1024;
const PIPELINE_DEPTH: usize = 64;
const FAKE_NODE_ID: i32 = 1;

fn topic() -> TopicName {
    TopicName(StrBytes::from_static_str("bench-topic"))
}

// === the fake broker ===

/// What the fake broker answers, pre-encoded where the benchmarks need it.
struct Responses {
    port: u16,
    api_versions_v0: Bytes,
    produce_v9: Bytes,
    metadata_answered: AtomicUsize,
}

impl Responses {
    fn new(port: u16) -> Self {
        let mut api_versions_v0 = BytesMut::new();
        ApiVersionsResponse::default().encode(&mut api_versions_v0, 0).expect("ApiVersions response encodes");
        assert_eq!(api_versions_v0.len(), 2 + 4, "error code + empty api key array");
        let mut produce_v9 = BytesMut::new();
        produce_response().encode(&mut produce_v9, 9).expect("Produce response encodes");
        Self {
            port,
            api_versions_v0: api_versions_v0.freeze(),
            produce_v9: produce_v9.freeze(),
            metadata_answered: AtomicUsize::new(0),
        }
    }

    /// Appends the response frame to `request` to `out`; false for a request the fake broker cannot answer.
    fn answer(&self, request: &[u8], out: &mut BytesMut) -> bool {
        let Some(fixed) = request.get(..8) else { return false };
        let raw_key = i16::from_be_bytes([fixed[0], fixed[1]]);
        let version = i16::from_be_bytes([fixed[2], fixed[3]]);
        let correlation_id = &fixed[4..8];
        let Ok(key) = ApiKey::try_from(raw_key) else { return false };
        let header_version = key.response_header_version(version);
        let encoded;
        let body: &[u8] = match key {
            ApiKey::ApiVersions => &self.api_versions_v0,
            ApiKey::Produce if version == 9 => &self.produce_v9,
            ApiKey::Produce => {
                let mut buf = BytesMut::new();
                produce_response().encode(&mut buf, version).expect("Produce response encodes");
                encoded = buf;
                &encoded
            }
            ApiKey::Metadata => {
                let broker = MetadataResponseBroker::default()
                    .with_node_id(BrokerId(FAKE_NODE_ID))
                    .with_host(StrBytes::from_static_str("127.0.0.1"))
                    .with_port(i32::from(self.port));
                let response = MetadataResponse::default()
                    .with_brokers(vec![broker])
                    .with_cluster_id(Some(StrBytes::from_static_str("fake-cluster")))
                    .with_controller_id(BrokerId(FAKE_NODE_ID));
                let mut buf = BytesMut::new();
                response.encode(&mut buf, version).expect("Metadata response encodes");
                self.metadata_answered.fetch_add(1, Ordering::SeqCst);
                encoded = buf;
                &encoded
            }
            _ => return false,
        };
        let header_len = if header_version >= 1 { 5 } else { 4 };
        out.put_i32((header_len + body.len()) as i32);
        out.put_slice(correlation_id);
        if header_version >= 1 {
            out.put_u8(0); // empty tagged fields
        }
        out.put_slice(body);
        true
    }
}

fn produce_response() -> ProduceResponse {
    let partition = PartitionProduceResponse::default().with_index(0).with_base_offset(1_000).with_log_start_offset(0);
    let topic = TopicProduceResponse::default().with_name(topic()).with_partition_responses(vec![partition]);
    ProduceResponse::default().with_responses(vec![topic])
}

/// Starts the fake broker on a free loopback port.
async fn start_fake_broker() -> Arc<Responses> {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind fake broker");
    let port = listener.local_addr().expect("fake broker address").port();
    let responses = Arc::new(Responses::new(port));
    let shared = responses.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(serve_connection(stream, shared.clone()));
        }
    });
    responses
}

/// Answers every frame in order; the answers to frames already buffered are written together.
async fn serve_connection(stream: TcpStream, responses: Arc<Responses>) {
    let _ = stream.set_nodelay(true);
    let (read, mut write) = stream.into_split();
    let mut frames = FramedRead::with_capacity(read, FrameDecoder::new(MAX_FRAME), 256 * 1024);
    let mut out = BytesMut::with_capacity(64 * 1024);
    while let Some(Ok(frame)) = frames.next().await {
        if !responses.answer(&frame, &mut out) {
            return;
        }
        while let Some(Some(Ok(frame))) = frames.next().now_or_never() {
            if !responses.answer(&frame, &mut out) {
                return;
            }
        }
        if write.write_all(&out).await.is_err() {
            return;
        }
        out.clear();
    }
}

// === the gateway ===

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    listener.local_addr().expect("address").port()
}

/// A gateway with the default chain (core filters only) plus `filters` (YAML) in front of the fake broker, once
/// its start-up probe has been answered (so its port routes to the fake broker's node).
async fn start_gateway(broker: &Responses, filters: &str) -> (RunningGateway, SocketAddr) {
    let port_start = free_port();
    let probes_before = broker.metadata_answered.load(Ordering::SeqCst);
    let yaml = format!(
        "gateway:\n  advertised_host: 127.0.0.1\n  bind_host: 127.0.0.1\n  port_start: {port_start}\n  port_count: 1\n  \
         http_port: 0\nclusters:\n  main:\n    bootstrap.servers: 127.0.0.1:{}\n{filters}",
        broker.port
    );
    let config = GatewayConfig::from_yaml(&yaml, "bench.yaml").expect("valid config");
    let gateway = Gateway::new(&config, &FilterRegistry::with_builtins(), "bench.yaml").expect("gateway builds");
    let running = gateway.start().await.expect("gateway starts");
    let deadline = Instant::now() + Duration::from_secs(10);
    while broker.metadata_answered.load(Ordering::SeqCst) == probes_before {
        assert!(Instant::now() < deadline, "the gateway did not probe the fake broker");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Let the gateway record the probed broker before the first client arrives.
    tokio::time::sleep(Duration::from_millis(200)).await;
    (running, SocketAddr::from(([127, 0, 0, 1], port_start)))
}

// === the client ===

fn request_frame<M: Encodable>(key: ApiKey, version: i16, correlation_id: i32, body: &M) -> Bytes {
    let header = RequestHeader::default()
        .with_request_api_key(key as i16)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(StrBytes::from_static_str("bench-client")));
    let mut out = BytesMut::new();
    out.put_i32(0);
    header.encode(&mut out, key.request_header_version(version)).expect("header encodes");
    body.encode(&mut out, version).expect("body encodes");
    let len = (out.len() - 4) as i32;
    out[..4].copy_from_slice(&len.to_be_bytes());
    out.freeze()
}

fn api_versions_v0(correlation_id: i32) -> Bytes {
    request_frame(ApiKey::ApiVersions, 0, correlation_id, &ApiVersionsRequest::default())
}

/// Produce v9 (acks=1) of one topic/partition carrying `records_len` arbitrary bytes.
fn produce_v9(correlation_id: i32, records_len: usize) -> Bytes {
    let records: Bytes = (0..records_len).map(|i| (i % 251) as u8).collect::<Vec<_>>().into();
    let partition = PartitionProduceData::default().with_index(0).with_records(Some(records));
    let topic = TopicProduceData::default().with_name(topic()).with_partition_data(vec![partition]);
    let body = ProduceRequest::default().with_acks(1).with_timeout_ms(30_000).with_topic_data(vec![topic]);
    request_frame(ApiKey::Produce, 9, correlation_id, &body)
}

/// What one measured iteration does.
enum Work {
    /// Write one request, read its response.
    RoundTrip { request: Bytes, correlation_id: i32 },
    /// Write `count` requests back to back (correlation ids 0..count) while reading their responses.
    Pipeline { requests: Bytes, count: usize },
}

/// One persistent client connection.
struct Client {
    reader: BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
    frame: Vec<u8>,
}

impl Client {
    async fn connect(address: SocketAddr) -> Self {
        let stream = TcpStream::connect(address).await.expect("connect");
        stream.set_nodelay(true).expect("nodelay");
        let (read, writer) = stream.into_split();
        Self { reader: BufReader::with_capacity(256 * 1024, read), writer, frame: Vec::with_capacity(64 * 1024) }
    }

    async fn run(&mut self, work: &Work) {
        let Self { reader, writer, frame } = self;
        match work {
            Work::RoundTrip { request, correlation_id } => {
                writer.write_all(request).await.expect("write request");
                assert_eq!(read_frame(reader, frame).await, *correlation_id, "response to the request");
            }
            Work::Pipeline { requests, count } => {
                let write = writer.write_all(requests);
                let read = async {
                    for expected in 0..*count {
                        assert_eq!(read_frame(reader, frame).await, expected as i32, "responses in request order");
                    }
                };
                let (written, ()) = tokio::join!(write, read);
                written.expect("write requests");
            }
        }
    }
}

/// Reads one response frame into `frame`; returns its correlation id.
async fn read_frame(reader: &mut BufReader<OwnedReadHalf>, frame: &mut Vec<u8>) -> i32 {
    let len = reader.read_i32().await.expect("response length");
    frame.resize(usize::try_from(len).expect("non-negative length"), 0);
    reader.read_exact(frame).await.expect("response frame");
    i32::from_be_bytes([frame[0], frame[1], frame[2], frame[3]])
}

// === the benchmarks ===

/// One criterion group: the same work sent directly to the fake broker and through the gateway.
fn compare(
    c: &mut Criterion,
    rt: &Runtime,
    targets: &[(&str, SocketAddr)],
    name: &str,
    throughput: Option<Throughput>,
    work: Work,
) {
    let mut group = c.benchmark_group(name);
    if let Some(throughput) = throughput {
        group.throughput(throughput);
    }
    let work = Arc::new(work);
    for &(label, address) in targets {
        // Connected once; the first exchange (outside the measurement) checks the path works.
        let client = rt.block_on(async {
            let mut client = Client::connect(address).await;
            client.run(&work).await;
            Arc::new(Mutex::new(client))
        });
        group.bench_function(label, |b| {
            b.to_async(rt).iter_custom(|iters| {
                let (client, work) = (client.clone(), work.clone());
                // The measured loop runs as a task on the runtime's workers, like the gateway and the fake
                // broker: driven from criterion's own thread (`block_on`), every response would have to wake a
                // thread outside the runtime, which on a 2-vCPU VM costs 60-150 µs and drowns what is measured.
                tokio::spawn(async move {
                    let mut client = client.lock().await;
                    let start = Instant::now();
                    for _ in 0..iters {
                        client.run(&work).await;
                    }
                    start.elapsed()
                })
                .map(|joined| joined.expect("client task"))
            })
        });
    }
    group.finish();
}

fn passthrough(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("tokio runtime");
    let broker = rt.block_on(start_fake_broker());
    let (gateway, gateway_address) = rt.block_on(start_gateway(&broker, ""));
    // The same gateway with the chargeback filter: its cost is the difference between the two.
    let (charging, charging_address) = rt.block_on(start_gateway(&broker, "filters: [{type: chargeback}]\n"));
    let targets = [
        ("direct", SocketAddr::from(([127, 0, 0, 1], broker.port))),
        ("gateway", gateway_address),
        ("gateway_chargeback", charging_address),
    ];

    let correlation_id = 7;
    let api_versions = Work::RoundTrip { request: api_versions_v0(correlation_id), correlation_id };
    compare(c, &rt, &targets, "roundtrip_api_versions_v0", None, api_versions);

    let produce_1k = Work::RoundTrip { request: produce_v9(correlation_id, 1024), correlation_id };
    compare(c, &rt, &targets, "roundtrip_produce_v9_1KiB", None, produce_1k);

    let produce_64k = Work::RoundTrip { request: produce_v9(correlation_id, 64 * 1024), correlation_id };
    compare(c, &rt, &targets, "roundtrip_produce_v9_64KiB", Some(Throughput::Bytes(64 * 1024)), produce_64k);

    let mut requests = BytesMut::new();
    for id in 0..PIPELINE_DEPTH {
        requests.extend_from_slice(&produce_v9(id as i32, 1024));
    }
    let pipeline = Work::Pipeline { requests: requests.freeze(), count: PIPELINE_DEPTH };
    let name = format!("pipelined_produce_v9_1KiB_x{PIPELINE_DEPTH}");
    compare(c, &rt, &targets, &name, Some(Throughput::Elements(PIPELINE_DEPTH as u64)), pipeline);

    gateway.shutdown();
    charging.shutdown();
    rt.shutdown_timeout(Duration::from_secs(2));
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3));
    targets = passthrough
}
criterion_main!(benches);
