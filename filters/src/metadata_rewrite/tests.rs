//! Unit tests of the rewrite against a `service_fn` backend: what the client receives.

use std::net::SocketAddr;
use std::sync::Arc;

use franzgate_api::kafka_protocol::messages::find_coordinator_response::Coordinator;
use franzgate_api::kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use franzgate_api::kafka_protocol::messages::produce_response::{
    NodeEndpoint, PartitionProduceResponse, TopicProduceResponse,
};
use franzgate_api::kafka_protocol::messages::{
    ApiKey, BrokerId, FindCoordinatorResponse, MetadataResponse, ProduceResponse, RequestHeader, RequestKind,
    ResponseKind,
};
use franzgate_api::kafka_protocol::protocol::StrBytes;
use franzgate_api::topology::{AdvertisedAddress, BackendCluster, BrokerAddress};
use franzgate_api::{Body, FilterError, KafkaRequest, KafkaResponse, Session};
use tower::{Layer, ServiceExt, service_fn};

use super::MetadataRewriteLayer;

fn session() -> Arc<Session> {
    let cluster = BackendCluster::new("main", vec![BrokerAddress { host: "kafka".into(), port: 9092 }]);
    Arc::new(
        Session::new(1, SocketAddr::from(([127, 0, 0, 1], 5000)), 6969, Arc::new(cluster), 0)
            .with_virtual_node(Some(0)),
    )
}

fn request(session: &Arc<Session>, key: ApiKey, version: i16) -> KafkaRequest {
    let header = RequestHeader::default()
        .with_request_api_key(key as i16)
        .with_request_api_version(version)
        .with_correlation_id(42);
    let body = Body::<RequestKind>::raw(bytes::Bytes::new());
    KafkaRequest::from_parts(header, bytes::Bytes::new(), body, session.clone(), true)
}

async fn through_filter(
    key: ApiKey,
    version: i16,
    backend: ResponseKind,
    cluster_id: Option<&str>,
) -> (ResponseKind, Arc<Session>) {
    let session = session();
    let advertised = Arc::new(AdvertisedAddress::ports("gateway", 6969, 8));
    let layer = MetadataRewriteLayer::new(advertised, cluster_id.map(str::to_string));
    let backend = std::sync::Mutex::new(Some(backend));
    let inner = service_fn(move |req: KafkaRequest| {
        let message = backend.lock().ok().and_then(|mut b| b.take());
        async move {
            let message = message.ok_or_else(|| FilterError::Internal("called twice".into()))?;
            KafkaResponse::from_message(req.api_key_raw(), req.api_version(), req.correlation_id(), message)
        }
    });
    let mut response = layer.layer(inner).oneshot(request(&session, key, version)).await.expect("response");
    (response.body().expect("decodes").clone(), session)
}

fn broker(id: i32, port: i32) -> MetadataResponseBroker {
    MetadataResponseBroker::default()
        .with_node_id(BrokerId(id))
        .with_host(StrBytes::from_static_str("kafka"))
        .with_port(port)
}

#[tokio::test]
async fn metadata_shows_gateway_addresses_virtual_ids_and_the_gateway_cluster_id() {
    let partition = MetadataResponsePartition::default()
        .with_leader_id(BrokerId(12))
        .with_replica_nodes(vec![BrokerId(12), BrokerId(10), BrokerId(11)])
        .with_isr_nodes(vec![BrokerId(10)])
        .with_offline_replicas(vec![BrokerId(99)]);
    let backend = MetadataResponse::default()
        .with_brokers(vec![broker(12, 9094), broker(10, 9092), broker(11, 9093)])
        .with_controller_id(BrokerId(11))
        .with_cluster_id(Some(StrBytes::from_static_str("backend-id")))
        .with_topics(vec![MetadataResponseTopic::default().with_partitions(vec![partition])]);
    let (response, session) =
        through_filter(ApiKey::Metadata, 12, ResponseKind::Metadata(backend), Some("gateway-id")).await;
    let ResponseKind::Metadata(m) = response else { panic!("not metadata") };
    let brokers: Vec<_> = m.brokers.iter().map(|b| (b.node_id.0, b.host.to_string(), b.port)).collect();
    assert_eq!(brokers, vec![(2, "gateway".into(), 6971), (0, "gateway".into(), 6969), (1, "gateway".into(), 6970)]);
    assert_eq!(m.controller_id, BrokerId(1));
    let p = &m.topics[0].partitions[0];
    assert_eq!(p.leader_id, BrokerId(2));
    assert_eq!(p.replica_nodes, vec![BrokerId(2), BrokerId(0), BrokerId(1)]);
    assert_eq!(p.isr_nodes, vec![BrokerId(0)]);
    assert_eq!(p.offline_replicas, vec![BrokerId(3)], "an undescribed broker still gets a stable virtual id");
    assert_eq!(m.cluster_id.as_deref(), Some("gateway-id"));
    // The session's node map now routes virtual 2 to backend broker 12.
    let table = session.cluster.nodes.snapshot();
    assert_eq!(
        table.backend(2).and_then(|n| n.address.clone()),
        Some(BrokerAddress { host: "kafka".into(), port: 9094 })
    );
}

#[tokio::test]
async fn brokers_beyond_the_port_range_are_not_advertised() {
    let brokers = (0..10).map(|i| broker(100 + i, 9000 + i)).collect();
    let backend = MetadataResponse::default().with_brokers(brokers);
    let (response, _) = through_filter(ApiKey::Metadata, 9, ResponseKind::Metadata(backend), None).await;
    let ResponseKind::Metadata(m) = response else { panic!("not metadata") };
    assert_eq!(m.brokers.len(), 8, "port_count is 8");
    assert!(m.brokers.iter().all(|b| (6969..6977).contains(&b.port)));
}

#[tokio::test]
async fn find_coordinator_is_rewritten_in_both_shapes() {
    let v3 = FindCoordinatorResponse::default()
        .with_node_id(BrokerId(7))
        .with_host(StrBytes::from_static_str("kafka"))
        .with_port(9099);
    let (response, _) = through_filter(ApiKey::FindCoordinator, 3, ResponseKind::FindCoordinator(v3), None).await;
    let ResponseKind::FindCoordinator(r) = response else { panic!() };
    assert_eq!((r.node_id.0, r.host.as_str(), r.port), (0, "gateway", 6969));

    let coordinator = |key: &'static str, id: i32| {
        Coordinator::default()
            .with_key(StrBytes::from_static_str(key))
            .with_node_id(BrokerId(id))
            .with_host(StrBytes::from_static_str("kafka"))
            .with_port(9000 + id)
    };
    // The top-level fields as a real v4+ answer decodes (node id 0): left alone, so the answer encodes at v4+.
    let v4 = FindCoordinatorResponse::default().with_coordinators(vec![
        coordinator("g1", 5),
        coordinator("g2", 3),
        coordinator("g3", -1),
    ]);
    let (response, _) = through_filter(ApiKey::FindCoordinator, 4, ResponseKind::FindCoordinator(v4), None).await;
    let ResponseKind::FindCoordinator(r) = response else { panic!() };
    let got: Vec<_> = r.coordinators.iter().map(|c| (c.node_id.0, c.port)).collect();
    assert_eq!(got, vec![(0, 6969), (1, 6970), (-1, 9000 - 1)], "an errored coordinator (-1) is left alone");
    assert_eq!((r.node_id.0, r.host.as_str(), r.port), (0, "", 0), "v0-3 fields untouched");
    let mut buf = bytes::BytesMut::new();
    franzgate_api::kafka_protocol::protocol::Encodable::encode(&r, &mut buf, 6).expect("encodes at v6");
}

#[tokio::test]
async fn produce_leader_hints_are_rewritten() {
    let partition = PartitionProduceResponse::default().with_current_leader(Default::default()).with_error_code(6);
    let mut partition = partition;
    partition.current_leader.leader_id = BrokerId(21);
    let backend = ProduceResponse::default()
        .with_responses(vec![TopicProduceResponse::default().with_partition_responses(vec![partition])])
        .with_node_endpoints(vec![
            NodeEndpoint::default()
                .with_node_id(BrokerId(21))
                .with_host(StrBytes::from_static_str("kafka"))
                .with_port(9021),
        ]);
    let (response, _) = through_filter(ApiKey::Produce, 11, ResponseKind::Produce(backend), None).await;
    let ResponseKind::Produce(r) = response else { panic!() };
    assert_eq!(
        (r.node_endpoints[0].node_id.0, r.node_endpoints[0].host.as_str(), r.node_endpoints[0].port),
        (0, "gateway", 6969)
    );
    assert_eq!(r.responses[0].partition_responses[0].current_leader.leader_id, BrokerId(0));
}

// === captured answers (issue 18: kafka-python 3.x through the gateway) ===

/// Apache Kafka 4.x's FindCoordinator answer for group `g` (coordinator node 1 at 127.0.0.1:19092), captured at
/// v4 (kafka-python 3.x pinned to broker 3.0) and v6 (the same bytes): one entry in `coordinators`, the v0-3
/// top-level fields absent.
const FIND_COORDINATOR_V4_V6: &str = "00000000020267000000010a3132372e302e302e3100004a940000010000";

/// Apache Kafka 4.x's Fetch v12 answer (kafka-python 3.x fetches at v12 at most) for topic `cap`, partition 0,
/// holding two record batches (`k-0`, `k-1`); no leader hints, no node endpoints.
const FETCH_V12: &str = "0000000000000000000002046361700200000000000000000000000000020000000000000002000000000000000000\
ffffffff950100000000000000000000003e000000000256ada96a000000000000000001a23d5c0a55000001a23d5c0a550000000000000000\
0000000000000000000118000000066b2d30066b2d300000000000000000010000003e0000000002bae1c1d7000000000000000001a23d5c0a78\
000001a23d5c0a7800000000000000000000000000010000000118000000066b2d31066b2d3100000000";

fn unhex(hex: &str) -> bytes::Bytes {
    let digits: Vec<u8> = hex.bytes().filter(u8::is_ascii_hexdigit).collect();
    let byte = |pair: &[u8]| u8::from_str_radix(std::str::from_utf8(pair).expect("ascii"), 16).expect("hex digits");
    digits.chunks(2).map(byte).collect()
}

/// `body` as a broker's answer at `key`/`version` (flexible header: one empty tagged-fields byte) through the
/// filter; the frame the client receives (correlation id onwards), or the error that would end the session.
async fn captured_through_filter(key: ApiKey, version: i16, body: bytes::Bytes) -> Result<Vec<u8>, FilterError> {
    let session = session();
    let advertised = Arc::new(AdvertisedAddress::ports("gateway", 6969, 8));
    let layer = MetadataRewriteLayer::new(advertised, None);
    let inner = service_fn(move |req: KafkaRequest| {
        let body = body.clone();
        async move {
            let tags = bytes::Bytes::from_static(&[0]);
            Ok::<_, FilterError>(KafkaResponse::from_wire(req.api_key_raw(), req.api_version(), 42, tags, body))
        }
    });
    let response = layer.layer(inner).oneshot(request(&session, key, version)).await?;
    let mut frame = bytes::BytesMut::new();
    response.encode_frame(&mut frame)?;
    Ok(frame[4..].to_vec())
}

#[tokio::test]
async fn captured_find_coordinator_v4_and_v6_answers_reach_the_client_rewritten() {
    use franzgate_api::kafka_protocol::protocol::Decodable;
    // Every kafka-python 3.x group consumer was disconnected here once: the v0-3 top-level node id (0 when
    // absent) was given a virtual id, which does not encode at v4+ ("cannot encode ... FindCoordinatorResponse").
    for version in [4, 6] {
        let frame = captured_through_filter(ApiKey::FindCoordinator, version, unhex(FIND_COORDINATOR_V4_V6))
            .await
            .unwrap_or_else(|e| panic!("v{version} ends the session: {e}"));
        let mut body = bytes::Bytes::from(frame).split_off(5); // correlation id, header tagged fields
        let answer = FindCoordinatorResponse::decode(&mut body, version).expect("the client can decode it");
        let got: Vec<_> =
            answer.coordinators.iter().map(|c| (c.key.as_str(), c.node_id.0, c.host.as_str(), c.port)).collect();
        assert_eq!(got, vec![("g", 0, "gateway", 6969)], "v{version}: the gateway's address, virtual node 0");
    }
}

#[tokio::test]
async fn captured_fetch_v12_answers_reach_the_client_unchanged_even_with_a_tag_v12_does_not_define() {
    let captured = unhex(FETCH_V12);
    let frame = captured_through_filter(ApiKey::Fetch, 12, captured.clone()).await.expect("forwarded");
    assert_eq!(&frame[5..], &captured[..], "no leader hints: the broker's bytes, unchanged");
    // tansu answered kafka-python's Fetch v12 with top-level tagged field 0 (NodeEndpoints, defined from v16):
    // the codec refuses it ("Tag 0 is not valid for version 12") and the gateway closed the session on every
    // fetch. Here: the captured answer with that field (an empty endpoint list) in place of the empty tag buffer.
    let mut tansu = captured[..captured.len() - 1].to_vec();
    tansu.extend_from_slice(&[1, 0, 1, 1]); // one tagged field: tag 0, 1 byte, compact array of 0 entries
    let frame = captured_through_filter(ApiKey::Fetch, 12, tansu.clone().into())
        .await
        .unwrap_or_else(|e| panic!("an answer the filter cannot decode ends the session: {e}"));
    assert_eq!(&frame[5..], &tansu[..], "forwarded as the broker sent it");
}
