//! What the cluster selector's producer placement (issue 17) costs per Produce request: the `cluster-selector`
//! filter alone, its inner service answering at once (the request encoded as the upstream would send it).
//!
//! - `before_switch`: every producer id the gateway knows came from the cluster the session writes to, so the
//!   Produce is not even decoded.
//! - `not_crossed`: after a switch (ids known from both clusters) a producer writing to the cluster its id came
//!   from: the Produce is decoded (not re-encoded) to read its batches' producer id, then forwarded as it came.
//! - `crossed`: a producer that crossed the switch: its batches are rewritten to the stand-in id (CRC-32C over
//!   the batch) and the request re-encoded.
//!
//! Each for a Produce v9 of one batch of 1 KiB and of 64 KiB of records. Run with
//! `cargo bench --bench producer_switch`.

use std::hint::black_box;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use franzgate::codec::parse_request;
use franzgate_api::selector::ClusterSelector;
use franzgate_api::topology::{BackendCluster, ClusterRole};
use franzgate_api::{FilterError, KafkaRequest, KafkaResponse, Session};
use franzgate_filters::cluster_selector::ClusterSelectorLayer;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiKey, InitProducerIdRequest, InitProducerIdResponse, ProduceRequest, ProducerId, RequestHeader, ResponseKind,
    TopicName,
};
use kafka_protocol::protocol::{Encodable, StrBytes};
use kafka_protocol::records::{Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType};
use tower::{Layer, Service, ServiceExt};

/// Ids the fake backend hands out: main's producer, failover's own producer, the stand-in on failover.
const MAIN_PRODUCER: i64 = 7;
const FAILOVER_PRODUCER: i64 = 9;
const STAND_IN: i64 = 5000;

fn payload<M: Encodable>(key: ApiKey, version: i16, body: &M) -> Bytes {
    let header = RequestHeader::default()
        .with_request_api_key(key as i16)
        .with_request_api_version(version)
        .with_correlation_id(7)
        .with_client_id(Some(StrBytes::from_static_str("bench-client")));
    let mut out = BytesMut::new();
    header.encode(&mut out, key.request_header_version(version)).expect("header encodes");
    body.encode(&mut out, version).expect("body encodes");
    out.freeze()
}

/// A Produce v9 of one batch by `producer` holding about `len` bytes of records (16 records).
fn produce(producer: i64, len: usize) -> Bytes {
    let value: Bytes = (0..len / 16).map(|i| (i % 251) as u8).collect::<Vec<_>>().into();
    let records: Vec<Record> = (0..16)
        .map(|i| Record {
            transactional: false,
            control: false,
            partition_leader_epoch: 0,
            producer_id: producer,
            producer_epoch: 0,
            timestamp_type: TimestampType::Creation,
            offset: i,
            sequence: 935 + i as i32,
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
    let partition = PartitionProduceData::default().with_index(0).with_records(Some(batch.freeze()));
    let data = TopicProduceData::default()
        .with_name(TopicName(StrBytes::from_static_str("orders")))
        .with_partition_data(vec![partition]);
    payload(ApiKey::Produce, 9, &ProduceRequest::default().with_acks(-1).with_topic_data(vec![data]))
}

/// The fake backend: InitProducerId hands out [`MAIN_PRODUCER`] on main, [`FAILOVER_PRODUCER`] to a client on
/// failover and [`STAND_IN`] to the gateway; Produce is encoded as the upstream would send it and answered.
fn backend() -> impl Service<KafkaRequest, Response = KafkaResponse, Error = FilterError, Future: Send> + Send + 'static
{
    tower::service_fn(|request: KafkaRequest| async move {
        let (key, version) = (request.api_key_raw(), request.api_version());
        if request.api_key() == Some(ApiKey::InitProducerId) {
            let id = match (request.session.cluster.name.as_str(), request.client_id()) {
                ("main", _) => MAIN_PRODUCER,
                (_, Some("franzgate")) => STAND_IN,
                _ => FAILOVER_PRODUCER,
            };
            let answer = InitProducerIdResponse::default().with_producer_id(ProducerId(id));
            return KafkaResponse::from_message(key, version, 7, ResponseKind::InitProducerId(answer));
        }
        let mut out = BytesMut::new();
        request.body.write_to(version, &mut out).map_err(FilterError::encode)?;
        black_box(out.len());
        Ok(KafkaResponse::no_response(key, version, 7))
    })
}

fn session(cluster: &Arc<BackendCluster>, epoch: u64) -> Arc<Session> {
    Arc::new(Session::new(1, SocketAddr::from(([127, 0, 0, 1], 5000)), 6969, cluster.clone(), epoch))
}

async fn one(layer: &ClusterSelectorLayer, session: &Arc<Session>, request: Bytes) -> Result<(), FilterError> {
    let request = parse_request(request, session).map_err(|e| FilterError::Decode(e.to_string()))?;
    layer.layer(backend()).ready().await?.call(request).await.map(|_| ())
}

/// An idempotent producer's InitProducerId through `layer` on `session`.
async fn init_producer(layer: &ClusterSelectorLayer, session: &Arc<Session>) {
    let body = InitProducerIdRequest::default().with_transactional_id(None);
    let request = payload(ApiKey::InitProducerId, 4, &body);
    one(layer, session, request).await.expect("InitProducerId");
}

fn producer_switch(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_time().build().expect("runtime");
    let main = Arc::new(BackendCluster::new("main", vec![]));
    let failover = Arc::new(BackendCluster::new("failover", vec![]).with_role(ClusterRole::Failover));

    // Before any switch: main's producer, on main.
    let quiet = Arc::new(ClusterSelector::new(vec![main.clone(), failover.clone()]).expect("clusters"));
    let quiet_layer = ClusterSelectorLayer::new(quiet.clone());
    let on_main = session(&main, quiet.epoch());
    runtime.block_on(init_producer(&quiet_layer, &on_main));

    // After a switch: main's producer crossed to failover; failover's own producer stays there.
    let switched = Arc::new(ClusterSelector::new(vec![main.clone(), failover.clone()]).expect("clusters"));
    let layer = ClusterSelectorLayer::new(switched.clone());
    runtime.block_on(init_producer(&layer, &session(&main, switched.epoch())));
    switched.switch("main", "failover").expect("switch");
    let on_failover = session(&failover, switched.epoch());
    runtime.block_on(init_producer(&layer, &on_failover));

    for len in [1024, 64 * 1024] {
        let mut group = c.benchmark_group(format!("produce/{}KiB", len / 1024));
        group.throughput(Throughput::Bytes(len as u64));
        let cases = [
            ("before_switch", &quiet_layer, &on_main, produce(MAIN_PRODUCER, len)),
            ("not_crossed", &layer, &on_failover, produce(FAILOVER_PRODUCER, len)),
            ("crossed", &layer, &on_failover, produce(MAIN_PRODUCER, len)),
        ];
        for (name, layer, session, request) in cases {
            group.bench_function(name, |b| {
                b.iter(|| runtime.block_on(one(layer, session, request.clone())).expect("served"))
            });
        }
        group.finish();
    }
    let stand_ins = franzgate_api::selector::ProducerStats::get(&switched.producers.stand_ins);
    assert_eq!(stand_ins, 1, "the crossed producer got one stand-in");
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30).measurement_time(std::time::Duration::from_secs(3));
    targets = producer_switch
}
criterion_main!(benches);
