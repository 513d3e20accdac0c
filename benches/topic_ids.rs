//! What the `topic-ids` filter costs per Fetch round trip: request in, response out, its inner service answering
//! at once (the request encoded as the upstream would send it, the response handed back as the broker's bytes,
//! not decoded, then written as the session's writer does with `KafkaResponse::encode_frame`).
//!
//! - `direct`: the inner service alone, no filter: the baseline (parse, upstream encode, frame written).
//! - `origin_cluster`: the filter in front, the session on `main`, whose ids are the ones clients see: the
//!   filter decodes nothing and forwards both ways as it came.
//! - `other_cluster`: the session on `failover`, whose own id for the topic differs: the Fetch is decoded, its
//!   id mapped to failover's and re-encoded upstream; the response is decoded, its id mapped back to the one
//!   clients see and re-encoded when written (the records copied into the new frame).
//!
//! Each for a Fetch v13 of one topic whose response carries one partition of 1 KiB and of 64 KiB of records.
//! Run with `cargo bench --bench topic_ids`.

use std::hint::black_box;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use criterion::{BenchmarkGroup, Criterion, Throughput, criterion_group, criterion_main, measurement::WallTime};
use franzgate::codec::parse_request;
use franzgate_api::topology::{BackendCluster, ClusterRole};
use franzgate_api::{FilterError, KafkaRequest, KafkaResponse, Session};
use franzgate_filters::topic_ids::TopicIdsLayer;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::{ApiKey, BrokerId, FetchRequest, FetchResponse, RequestHeader};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use kafka_protocol::records::{Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType};
use tokio::runtime::Runtime;
use tower::{Layer, Service, ServiceExt};

/// Main's id for `orders` (the one clients see) and failover's own id for its copy.
const MAIN_ID: &str = "6b1f0c3e-8a1d-4c55-9e0b-2f0d7a3c1e01";
const FAILOVER_ID: &str = "d24e7a90-55c1-4f0e-b7a3-90c4e1f2aa02";
const VERSION: i16 = 13;
const CORRELATION_ID: i32 = 7;

/// A Fetch v13 for partition 0 of the topic clients know as `topic_id`, as the client sends it (no length prefix).
fn fetch_request(topic_id: &str) -> Bytes {
    let header = RequestHeader::default()
        .with_request_api_key(ApiKey::Fetch as i16)
        .with_request_api_version(VERSION)
        .with_correlation_id(CORRELATION_ID)
        .with_client_id(Some(StrBytes::from_static_str("bench-client")));
    let partition = FetchPartition::default().with_partition(0).with_fetch_offset(0).with_partition_max_bytes(1 << 20);
    let topic = FetchTopic::default().with_topic_id(topic_id.parse().expect("uuid")).with_partitions(vec![partition]);
    let body = FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(500)
        .with_min_bytes(1)
        .with_max_bytes(50 << 20)
        .with_session_epoch(-1)
        .with_topics(vec![topic]);
    let mut out = BytesMut::new();
    header.encode(&mut out, ApiKey::Fetch.request_header_version(VERSION)).expect("header encodes");
    body.encode(&mut out, VERSION).expect("body encodes");
    out.freeze()
}

/// One record batch of 16 records holding about `len` bytes of values.
fn records(len: usize) -> Bytes {
    let value: Bytes = (0..len / 16).map(|i| (i % 251) as u8).collect::<Vec<_>>().into();
    let records: Vec<Record> = (0..16)
        .map(|i| Record {
            transactional: false,
            control: false,
            partition_leader_epoch: 0,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: i,
            sequence: -1,
            timestamp: 1_700_000_000_000,
            key: Some(Bytes::from(format!("key-{i}"))),
            value: Some(value.clone()),
            headers: Default::default(),
            delete_horizon: false,
        })
        .collect();
    let mut batch = BytesMut::new();
    let options = RecordEncodeOptions { version: 2, compression: Compression::None };
    RecordBatchEncoder::encode(&mut batch, &records, &options).expect("records encode");
    batch.freeze()
}

/// The body of the broker's Fetch v13 response naming the topic by `topic_id`, as it comes off the wire.
fn fetch_response(topic_id: &str, records: Bytes) -> Bytes {
    let partition = PartitionData::default()
        .with_partition_index(0)
        .with_high_watermark(16)
        .with_last_stable_offset(16)
        .with_log_start_offset(0)
        .with_records(Some(records));
    let topic = FetchableTopicResponse::default()
        .with_topic_id(topic_id.parse().expect("uuid"))
        .with_partitions(vec![partition]);
    let mut out = BytesMut::new();
    FetchResponse::default().with_responses(vec![topic]).encode(&mut out, VERSION).expect("response encodes");
    out.freeze()
}

/// The inner service: writes the request as the upstream connection would, answers with `response`'s bytes.
fn backend(
    response: Bytes,
) -> impl Service<KafkaRequest, Response = KafkaResponse, Error = FilterError, Future: Send> + Clone + Send + 'static {
    tower::service_fn(move |request: KafkaRequest| {
        let response = response.clone();
        async move {
            let (key, version) = (request.api_key_raw(), request.api_version());
            let mut out = BytesMut::new();
            request.body.write_to(version, &mut out).map_err(FilterError::encode)?;
            black_box(out.len());
            // Header v1 (Fetch v12+): an empty tagged-field list after the correlation id.
            Ok(KafkaResponse::from_wire(key, version, request.correlation_id(), Bytes::from_static(&[0]), response))
        }
    })
}

/// One round trip through `service`: the request parsed as the session reads it, the response's frame as the
/// session's writer encodes it.
async fn round_trip<S>(service: &mut S, session: &Arc<Session>, request: Bytes) -> Result<BytesMut, FilterError>
where
    S: Service<KafkaRequest, Response = KafkaResponse, Error = FilterError>,
{
    let request = parse_request(request, session).map_err(|e| FilterError::Decode(e.to_string()))?;
    let response = service.ready().await?.call(request).await?;
    let mut out = BytesMut::with_capacity(response.raw_body().and_then(|b| b.raw_bytes()).map_or(0, |b| b.len()) + 16);
    response.encode_frame(&mut out)?;
    Ok(out)
}

/// Benchmarks `service` as `name`, first checking that the client gets main's id back.
fn case<S>(
    group: &mut BenchmarkGroup<'_, WallTime>,
    runtime: &Runtime,
    name: &str,
    mut service: S,
    session: &Arc<Session>,
    request: &Bytes,
) where
    S: Service<KafkaRequest, Response = KafkaResponse, Error = FilterError>,
{
    let mut frame = runtime.block_on(round_trip(&mut service, session, request.clone())).expect("served");
    // Length, correlation id, the empty tagged-field list of header v1: the rest is the body.
    let response = FetchResponse::decode(&mut frame.split_off(9).freeze(), VERSION).expect("response decodes");
    assert_eq!(response.responses[0].topic_id.to_string(), MAIN_ID, "{name}: the client sees main's id");
    group.bench_function(name, |b| {
        b.iter(|| black_box(runtime.block_on(round_trip(&mut service, session, request.clone())).expect("served")))
    });
}

fn session(cluster: BackendCluster) -> Arc<Session> {
    Arc::new(Session::new(1, SocketAddr::from(([127, 0, 0, 1], 5000)), 6969, Arc::new(cluster), 0))
}

fn topic_ids(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_time().build().expect("runtime");
    let on_main = session(BackendCluster::new("main", vec![]));
    let on_failover = session(BackendCluster::new("failover", vec![]).with_role(ClusterRole::Failover));

    // Main showed `orders` first: its id is the one clients see; failover's copy has its own.
    let layer = TopicIdsLayer::default();
    let main_id = MAIN_ID.parse().expect("uuid");
    assert_eq!(layer.table().learn("main", "orders", main_id), main_id);
    assert_eq!(layer.table().learn("failover", "orders", FAILOVER_ID.parse().expect("uuid")), main_id);
    assert!(!layer.table().needs_translation("main") && layer.table().needs_translation("failover"));

    let request = fetch_request(MAIN_ID);
    for len in [1024, 64 * 1024] {
        let batch = records(len);
        let (from_main, from_failover) = (fetch_response(MAIN_ID, batch.clone()), fetch_response(FAILOVER_ID, batch));
        let mut group = c.benchmark_group(format!("fetch/{}KiB", len / 1024));
        group.throughput(Throughput::Bytes(len as u64));
        case(&mut group, &runtime, "direct", backend(from_main.clone()), &on_main, &request);
        case(&mut group, &runtime, "origin_cluster", layer.layer(backend(from_main)), &on_main, &request);
        case(&mut group, &runtime, "other_cluster", layer.layer(backend(from_failover)), &on_failover, &request);
        group.finish();
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30).measurement_time(std::time::Duration::from_secs(3));
    targets = topic_ids
}
criterion_main!(benches);
