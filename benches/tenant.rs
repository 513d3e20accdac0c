//! What a virtual cluster costs per request: the `topic-prefix` filter on a passthrough principal (no virtual
//! cluster: one snapshot read) against a tenant (its names prefixed in the request and stripped in the response,
//! so both bodies are decoded and re-encoded, records included).
//!
//! - `produce/*`: a Produce v9 request of 1 KiB and 64 KiB of records, answered with a small ProduceResponse; the
//!   request is encoded as the upstream would send it.
//! - `fetch_response/*`: a Fetch v12 response with 64 KiB of records for a Fetch v12 request (names in both).
//!
//! The inner service answers at once, so what is timed is the filter's own work. Run with
//! `cargo bench --bench tenant`.

use std::hint::black_box;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use franzgate::codec::parse_request;
use franzgate_api::auth::SessionAuth;
use franzgate_api::topology::BackendCluster;
use franzgate_api::vcluster::{StateRecord, VirtualClusters};
use franzgate_api::{FilterError, KafkaRequest, KafkaResponse, Principal, PrincipalSource, Session};
use franzgate_filters::topic_prefix::TopicPrefixLayer;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::produce_response::TopicProduceResponse;
use kafka_protocol::messages::{
    ApiKey, FetchRequest, FetchResponse, ProduceRequest, ProduceResponse, RequestHeader, ResponseKind, TopicName,
};
use kafka_protocol::protocol::{Encodable, StrBytes};
use tower::{Layer, Service, ServiceExt};

fn session(vcluster: Option<&str>) -> Arc<Session> {
    let auth = SessionAuth::new(None);
    auth.set_sasl_principal(Principal {
        name: "sa".into(),
        vcluster: vcluster.map(String::from),
        generation: 0,
        source: PrincipalSource::ServiceAccountToken,
    });
    let cluster = Arc::new(BackendCluster::new("main", vec![]));
    Arc::new(Session::new(1, SocketAddr::from(([127, 0, 0, 1], 5000)), 6969, cluster, 0).with_auth(auth))
}

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

fn records(len: usize) -> Bytes {
    (0..len).map(|i| (i % 251) as u8).collect::<Vec<_>>().into()
}

fn topic(name: &str) -> TopicName {
    TopicName(StrBytes::from_string(name.to_string()))
}

fn produce(len: usize) -> Bytes {
    let partition = PartitionProduceData::default().with_index(0).with_records(Some(records(len)));
    let data = TopicProduceData::default().with_name(topic("orders")).with_partition_data(vec![partition]);
    payload(ApiKey::Produce, 9, &ProduceRequest::default().with_acks(-1).with_topic_data(vec![data]))
}

fn fetch() -> Bytes {
    let partition = FetchPartition::default().with_partition(0).with_partition_max_bytes(1 << 20);
    let wanted = FetchTopic::default().with_topic(topic("orders")).with_partitions(vec![partition]);
    payload(ApiKey::Fetch, 12, &FetchRequest::default().with_max_bytes(1 << 20).with_topics(vec![wanted]))
}

/// The wire form of `response` (what a broker sends), for a Fetch v12 or Produce v9 answer.
fn wire(response: ResponseKind, version: i16) -> Bytes {
    let mut out = BytesMut::new();
    response.encode(&mut out, version).expect("response encodes");
    out.freeze()
}

/// Runs one request through the filter over an inner service that encodes the request as the upstream would
/// and answers `answer` (raw bytes, decoded only if the filter asks).
async fn one(
    layer: &TopicPrefixLayer,
    session: &Arc<Session>,
    request: Bytes,
    answer: Bytes,
) -> Result<usize, FilterError> {
    let inner = tower::service_fn(move |request: KafkaRequest| {
        let answer = answer.clone();
        async move {
            let mut out = BytesMut::new();
            request.body.write_to(request.api_version(), &mut out).map_err(FilterError::encode)?;
            black_box(out.len());
            let (key, version) = (request.api_key_raw(), request.api_version());
            Ok::<_, FilterError>(KafkaResponse::from_wire(key, version, 7, Bytes::from_static(&[0]), answer))
        }
    });
    let request = parse_request(request, session).map_err(|e| FilterError::Decode(e.to_string()))?;
    let mut service = layer.layer(inner);
    let response = service.ready().await?.call(request).await?;
    let mut out = BytesMut::new();
    response.encode_frame(&mut out)?;
    Ok(out.len())
}

fn tenant(c: &mut Criterion) {
    let registry = VirtualClusters::new(false);
    registry.apply(&StateRecord::VirtualCluster { name: "teamA".into(), prefix: "teamA.".into() });
    let layer = TopicPrefixLayer::new(Arc::new(registry));
    let (passthrough, tenant) = (session(None), session(Some("teamA")));
    let runtime = tokio::runtime::Builder::new_current_thread().build().expect("runtime");

    let produced = wire(
        ResponseKind::Produce(
            ProduceResponse::default()
                .with_responses(vec![TopicProduceResponse::default().with_name(topic("teamA.orders"))]),
        ),
        9,
    );
    for len in [1024, 64 * 1024] {
        let mut group = c.benchmark_group(format!("produce/{}KiB", len / 1024));
        group.throughput(Throughput::Bytes(len as u64));
        let request = produce(len);
        for (name, session) in [("passthrough", &passthrough), ("tenant", &tenant)] {
            group.bench_function(name, |b| {
                b.iter(|| runtime.block_on(one(&layer, session, request.clone(), produced.clone())).expect("served"))
            });
        }
        group.finish();
    }

    let partition = PartitionData::default()
        .with_partition_index(0)
        .with_high_watermark(100)
        .with_records(Some(records(64 * 1024)));
    let fetched = wire(
        ResponseKind::Fetch(FetchResponse::default().with_responses(vec![
            FetchableTopicResponse::default().with_topic(topic("teamA.orders")).with_partitions(vec![partition]),
        ])),
        12,
    );
    let mut group = c.benchmark_group("fetch_response/64KiB");
    group.throughput(Throughput::Bytes(64 * 1024));
    let request = fetch();
    for (name, session) in [("passthrough", &passthrough), ("tenant", &tenant)] {
        group.bench_function(name, |b| {
            b.iter(|| runtime.block_on(one(&layer, session, request.clone(), fetched.clone())).expect("served"))
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30).measurement_time(std::time::Duration::from_secs(3));
    targets = tenant
}
criterion_main!(benches);
