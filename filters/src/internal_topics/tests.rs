//! The internal-topics filter against a `service_fn` backend that records what reached it.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use franzgate_api::auth::SessionAuth;
use franzgate_api::kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use franzgate_api::kafka_protocol::messages::fetch_request::FetchTopic;
use franzgate_api::kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use franzgate_api::kafka_protocol::messages::metadata_response::MetadataResponseTopic;
use franzgate_api::kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use franzgate_api::kafka_protocol::messages::{
    ApiKey, DescribeConfigsRequest, FetchRequest, MetadataRequest, MetadataResponse, ProduceRequest, RequestHeader,
    RequestKind, ResponseKind, TopicName,
};
use franzgate_api::kafka_protocol::protocol::StrBytes;
use franzgate_api::topology::BackendCluster;
use franzgate_api::vcluster::{StateRecord, VirtualClusters};
use franzgate_api::{Body, FilterError, KafkaRequest, KafkaResponse, Principal, PrincipalSource, Session};
use tower::{Layer, Service, ServiceExt};
use uuid::Uuid;

use super::{InternalTopicsConfig, InternalTopicsLayer, TOPIC_AUTHORIZATION_FAILED};
use crate::topic_prefix::TopicPrefixLayer;

const STATE: &str = "_franzgate_state";

/// What reached the backend: the request, and whether it was to be re-encoded.
type Seen = Arc<Mutex<Vec<(Option<RequestKind>, bool)>>>;

fn session(vcluster: Option<&str>) -> Arc<Session> {
    let peer = SocketAddr::from(([127, 0, 0, 1], 1));
    let auth = SessionAuth::new(None);
    let source = match vcluster {
        Some(_) => PrincipalSource::ServiceAccountToken,
        None => PrincipalSource::SaslPlain,
    };
    auth.set_sasl_principal(Principal {
        name: "sa".into(),
        vcluster: vcluster.map(String::from),
        generation: 0,
        source,
    });
    Arc::new(Session::new(1, peer, 9092, Arc::new(BackendCluster::new("main", vec![])), 0).with_auth(auth))
}

fn request(key: ApiKey, version: i16, body: RequestKind) -> KafkaRequest {
    request_of(&session(None), key, version, Body::decoded(body))
}

fn request_of(session: &Arc<Session>, key: ApiKey, version: i16, body: Body<RequestKind>) -> KafkaRequest {
    let header = RequestHeader::default()
        .with_request_api_key(key as i16)
        .with_request_api_version(version)
        .with_correlation_id(7);
    KafkaRequest::from_parts(header, Bytes::new(), body, session.clone(), true)
}

/// A backend that records requests and answers `answer`.
fn backend(
    answer: ResponseKind,
) -> (impl Service<KafkaRequest, Response = KafkaResponse, Error = FilterError, Future: Send + 'static> + Clone, Seen) {
    let seen = Seen::default();
    let record = seen.clone();
    let inner = tower::service_fn(move |mut request: KafkaRequest| {
        let dirty = request.body.is_dirty();
        let body = request.body().ok().cloned();
        let encoded = request.body.write_to(request.api_version(), &mut bytes::BytesMut::new());
        record.lock().expect("lock").push((body, dirty));
        let answer = answer.clone();
        async move {
            if dirty {
                encoded.map_err(FilterError::encode)?;
            }
            KafkaResponse::from_message(request.api_key_raw(), request.api_version(), 7, answer)
        }
    });
    (inner, seen)
}

fn layer() -> InternalTopicsLayer {
    InternalTopicsLayer::new(InternalTopicsConfig { topics: vec![STATE.into(), "usage".into()] })
}

async fn call<S>(service: &mut S, request: KafkaRequest) -> Result<KafkaResponse, FilterError>
where
    S: Service<KafkaRequest, Response = KafkaResponse, Error = FilterError>,
{
    service.ready().await?.call(request).await
}

fn topic(name: &str) -> TopicName {
    TopicName(StrBytes::from_string(name.to_string()))
}

fn produce_to(names: &[&str]) -> RequestKind {
    let partition = || vec![PartitionProduceData::default().with_index(0)];
    let topics = names
        .iter()
        .map(|n| TopicProduceData::default().with_name(topic(n)).with_partition_data(partition()))
        .collect();
    RequestKind::Produce(ProduceRequest::default().with_acks(-1).with_topic_data(topics))
}

fn metadata_names(response: &mut KafkaResponse) -> Vec<(Option<String>, i16)> {
    let ResponseKind::Metadata(answer) = response.body().expect("body") else { panic!("not metadata") };
    answer.topics.iter().map(|t| (t.name.as_ref().map(|n| n.0.to_string()), t.error_code)).collect()
}

#[tokio::test]
async fn a_produce_to_the_state_topic_is_refused_on_every_topic_and_never_forwarded() {
    let (inner, seen) = backend(ResponseKind::Produce(Default::default()));
    let mut service = layer().layer(inner);
    let mut response =
        call(&mut service, request(ApiKey::Produce, 9, produce_to(&["orders", STATE]))).await.expect("answered");
    assert!(seen.lock().expect("lock").is_empty(), "nothing reached the backend");
    let ResponseKind::Produce(answer) = response.body().expect("body") else { panic!("not a produce") };
    let codes: Vec<_> = answer.responses.iter().map(|t| (t.name.0.to_string(), t.partition_responses.len())).collect();
    assert_eq!(codes, [("orders".to_string(), 1), (STATE.to_string(), 1)], "every topic of the request is answered");
    assert!(answer.responses.iter().all(|t| t.partition_responses.iter().all(|p| p.error_code == 29)));
}

#[tokio::test]
async fn other_topics_pass_as_the_client_sent_them() {
    let (inner, seen) = backend(ResponseKind::Produce(Default::default()));
    let mut service = layer().layer(inner);
    let mut wire = bytes::BytesMut::new();
    Body::decoded(produce_to(&["orders", "_franzgate_state2"])).write_to(9, &mut wire).expect("encodes");
    let raw = Body::raw(wire.freeze());
    call(&mut service, request_of(&session(None), ApiKey::Produce, 9, raw)).await.expect("ok");
    let seen = seen.lock().expect("lock");
    assert_eq!(seen.len(), 1);
    assert!(!seen[0].1, "an untouched request is forwarded as its original bytes");
}

#[tokio::test]
async fn a_version_the_gateway_cannot_decode_passes_untouched() {
    let (inner, seen) = backend(ResponseKind::Produce(Default::default()));
    let mut service = layer().layer(inner);
    let garbage = Body::raw(Bytes::from_static(b"\xff\xff not a produce request"));
    let _ = call(&mut service, request_of(&session(None), ApiKey::Produce, 99, garbage)).await;
    assert_eq!(seen.lock().expect("lock").len(), 1, "forwarded, not refused");
}

#[tokio::test]
async fn a_listing_of_all_topics_omits_internal_ones_and_their_ids_are_then_refused() {
    let state_id = Uuid::from_u128(0x5747e);
    let listed = vec![
        MetadataResponseTopic::default().with_name(Some(topic("orders"))),
        MetadataResponseTopic::default().with_name(Some(topic(STATE))).with_topic_id(state_id),
    ];
    let (inner, seen) = backend(ResponseKind::Metadata(MetadataResponse::default().with_topics(listed)));
    let layer = layer();
    let mut service = layer.layer(inner.clone());
    let all = RequestKind::Metadata(MetadataRequest::default().with_topics(None));
    let mut response = call(&mut service, request(ApiKey::Metadata, 12, all)).await.expect("ok");
    assert_eq!(metadata_names(&mut response), [(Some("orders".to_string()), 0)]);
    // Fetch v13 names topics by id: the state topic's id, learnt from that listing, is refused.
    let by_id = FetchRequest::default().with_topics(vec![FetchTopic::default().with_topic_id(state_id)]);
    let mut other_session = layer.layer(inner);
    let mut response =
        call(&mut other_session, request(ApiKey::Fetch, 13, RequestKind::Fetch(by_id))).await.expect("ok");
    let ResponseKind::Fetch(answer) = response.body().expect("body") else { panic!("not a fetch") };
    assert!(answer.responses.iter().flat_map(|t| &t.partitions).all(|p| p.error_code == 29));
    assert_eq!(seen.lock().expect("lock").len(), 1, "only the listing reached the backend");
}

#[tokio::test]
async fn metadata_naming_internal_and_other_topics_asks_the_backend_only_for_the_others() {
    let listed = vec![MetadataResponseTopic::default().with_name(Some(topic("orders")))];
    let (inner, seen) = backend(ResponseKind::Metadata(MetadataResponse::default().with_topics(listed)));
    let mut service = layer().layer(inner);
    let named = ["orders", STATE].map(|n| MetadataRequestTopic::default().with_name(Some(topic(n)))).to_vec();
    let body = RequestKind::Metadata(MetadataRequest::default().with_topics(Some(named)));
    let mut response = call(&mut service, request(ApiKey::Metadata, 12, body)).await.expect("ok");
    let (Some(RequestKind::Metadata(sent)), _) = &seen.lock().expect("lock")[0] else { panic!("not metadata") };
    let sent: Vec<_> = sent.topics.iter().flatten().filter_map(|t| t.name.as_ref()).map(|n| n.0.as_str()).collect();
    assert_eq!(sent, ["orders"]);
    assert_eq!(
        metadata_names(&mut response),
        [(Some("orders".to_string()), 0), (Some(STATE.to_string()), TOPIC_AUTHORIZATION_FAILED)]
    );
}

#[tokio::test]
async fn metadata_naming_only_internal_topics_is_answered_by_the_gateway() {
    let (inner, seen) = backend(ResponseKind::Metadata(MetadataResponse::default()));
    let mut service = layer().layer(inner);
    let named = vec![MetadataRequestTopic::default().with_name(Some(topic(STATE)))];
    let body = RequestKind::Metadata(MetadataRequest::default().with_topics(Some(named)));
    let mut response = call(&mut service, request(ApiKey::Metadata, 0, body)).await.expect("ok");
    assert!(seen.lock().expect("lock").is_empty(), "a v0 request left with no topic would ask for all of them");
    assert_eq!(metadata_names(&mut response), [(Some(STATE.to_string()), TOPIC_AUTHORIZATION_FAILED)]);
}

#[tokio::test]
async fn a_config_request_with_a_broker_resource_first_is_still_searched_to_the_end() {
    let (inner, seen) = backend(ResponseKind::DescribeConfigs(Default::default()));
    let mut service = layer().layer(inner);
    let broker = DescribeConfigsResource::default().with_resource_type(4).with_resource_name("1".into());
    let state = DescribeConfigsResource::default().with_resource_type(2).with_resource_name(STATE.into());
    let body = RequestKind::DescribeConfigs(DescribeConfigsRequest::default().with_resources(vec![broker, state]));
    let mut response = call(&mut service, request(ApiKey::DescribeConfigs, 4, body)).await.expect("ok");
    assert!(seen.lock().expect("lock").is_empty());
    let ResponseKind::DescribeConfigs(answer) = response.body().expect("body") else { panic!("not configs") };
    assert!(answer.results.iter().all(|r| r.error_code == TOPIC_AUTHORIZATION_FAILED));
}

#[tokio::test]
async fn a_tenant_whose_prefix_completes_the_internal_name_is_refused_too() {
    let registry = VirtualClusters::new(false);
    registry.apply(&StateRecord::VirtualCluster { name: "sly".into(), prefix: "_franzgate".into() });
    let (record, _) = registry.plan_issue("sly", "sa").expect("issue");
    registry.apply(&record);
    let (inner, seen) = backend(ResponseKind::Produce(Default::default()));
    // As the runtime stacks them: topic prefix outside, internal topics right inside it.
    let mut service = TopicPrefixLayer::new(Arc::new(registry)).layer(layer().layer(inner));
    let tenant = session(Some("sly"));
    let body = Body::decoded(produce_to(&["_state"]));
    let mut response = call(&mut service, request_of(&tenant, ApiKey::Produce, 9, body)).await.expect("answered");
    assert!(seen.lock().expect("lock").is_empty());
    let ResponseKind::Produce(answer) = response.body().expect("body") else { panic!("not a produce") };
    assert_eq!(answer.responses[0].name.0.as_str(), "_state", "the tenant sees its own name in the refusal");
    let codes: Vec<_> = answer.responses[0].partition_responses.iter().map(|p| p.error_code).collect();
    assert_eq!(codes, [TOPIC_AUTHORIZATION_FAILED]);
}

#[tokio::test]
async fn an_acks_0_produce_to_the_state_topic_closes_the_connection() {
    let (inner, seen) = backend(ResponseKind::Produce(Default::default()));
    let mut service = layer().layer(inner);
    let body = RequestKind::Produce(
        ProduceRequest::default()
            .with_acks(0)
            .with_topic_data(vec![TopicProduceData::default().with_name(topic(STATE))]),
    );
    let header = RequestHeader::default().with_request_api_key(0).with_request_api_version(9).with_correlation_id(7);
    let request = KafkaRequest::from_parts(header, Bytes::new(), Body::decoded(body), session(None), false);
    let response = call(&mut service, request).await.expect("answered");
    assert!(response.closes_connection());
    assert!(seen.lock().expect("lock").is_empty());
}

#[tokio::test]
async fn describe_topic_partitions_lists_all_topics_but_the_internal_ones_even_from_a_cursor_there() {
    use franzgate_api::kafka_protocol::messages::describe_topic_partitions_request::{Cursor, TopicRequest};
    use franzgate_api::kafka_protocol::messages::describe_topic_partitions_response::DescribeTopicPartitionsResponseTopic;
    use franzgate_api::kafka_protocol::messages::{DescribeTopicPartitionsRequest, DescribeTopicPartitionsResponse};
    let listed = [STATE, "orders"].map(|n| DescribeTopicPartitionsResponseTopic::default().with_name(Some(topic(n))));
    let answer = DescribeTopicPartitionsResponse::default().with_topics(listed.to_vec());
    let (inner, seen) = backend(ResponseKind::DescribeTopicPartitions(answer));
    let mut service = layer().layer(inner);
    // All topics, from a page that starts at the state topic.
    let cursor = Cursor::default().with_topic_name(topic(STATE));
    let all = DescribeTopicPartitionsRequest::default().with_cursor(Some(cursor));
    let body = RequestKind::DescribeTopicPartitions(all);
    let mut response = call(&mut service, request(ApiKey::DescribeTopicPartitions, 0, body)).await.expect("ok");
    let ResponseKind::DescribeTopicPartitions(answer) = response.body().expect("body") else { panic!("not dtp") };
    let names: Vec<_> = answer.topics.iter().filter_map(|t| t.name.as_ref()).map(|n| n.0.as_str()).collect();
    assert_eq!(names, ["orders"]);
    // Naming it is refused.
    let named =
        DescribeTopicPartitionsRequest::default().with_topics(vec![TopicRequest::default().with_name(topic(STATE))]);
    let body = RequestKind::DescribeTopicPartitions(named);
    let mut response = call(&mut service, request(ApiKey::DescribeTopicPartitions, 0, body)).await.expect("ok");
    let ResponseKind::DescribeTopicPartitions(answer) = response.body().expect("body") else { panic!("not dtp") };
    assert!(answer.topics.iter().all(|t| t.error_code == TOPIC_AUTHORIZATION_FAILED) && !answer.topics.is_empty());
    assert_eq!(seen.lock().expect("lock").len(), 1, "only the listing reached the backend");
}
