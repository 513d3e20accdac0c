//! Unit tests of the topic-id translation against a `service_fn` backend that gives `orders` one id on `main`
//! and another on `failover`.

use std::net::SocketAddr;
use std::sync::Mutex as StdMutex;

use franzgate_api::Body;
use franzgate_api::kafka_protocol::messages::consumer_group_heartbeat_response::{Assignment, TopicPartitions};
use franzgate_api::kafka_protocol::messages::fetch_request::FetchTopic;
use franzgate_api::kafka_protocol::messages::fetch_response::FetchableTopicResponse;
use franzgate_api::kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use franzgate_api::kafka_protocol::messages::metadata_response::MetadataResponseTopic;
use franzgate_api::kafka_protocol::messages::{
    ApiKey, ConsumerGroupHeartbeatRequest, ConsumerGroupHeartbeatResponse, FetchRequest, FetchResponse,
    MetadataRequest, MetadataResponse, RequestHeader, RequestKind, ResponseKind, TopicName,
};
use franzgate_api::topology::{BackendCluster, ClusterRole};
use tower::{ServiceExt, service_fn};

use super::*;

const MAIN_ID: Uuid = Uuid::from_u128(0x1111);
const FAILOVER_ID: Uuid = Uuid::from_u128(0x2222);

fn session(cluster: &str) -> Arc<Session> {
    let mut backend = BackendCluster::new(cluster, vec![]);
    if cluster != "main" {
        backend = backend.with_role(ClusterRole::Failover);
    }
    Arc::new(Session::new(1, SocketAddr::from(([127, 0, 0, 1], 1)), 6969, Arc::new(backend), 0))
}

fn request(session: &Arc<Session>, key: ApiKey, version: i16, body: RequestKind) -> KafkaRequest {
    let header = RequestHeader::default()
        .with_request_api_key(key as i16)
        .with_request_api_version(version)
        .with_correlation_id(7);
    KafkaRequest::from_parts(header, bytes::Bytes::new(), Body::decoded(body), session.clone(), true)
}

fn metadata(session: &Arc<Session>) -> KafkaRequest {
    let topic = MetadataRequestTopic::default().with_name(Some(TopicName("orders".into())));
    request(
        session,
        ApiKey::Metadata,
        12,
        RequestKind::Metadata(MetadataRequest::default().with_topics(Some(vec![topic]))),
    )
}

fn fetch(session: &Arc<Session>, id: Uuid) -> KafkaRequest {
    let body = FetchRequest::default().with_topics(vec![FetchTopic::default().with_topic_id(id)]);
    request(session, ApiKey::Fetch, 13, RequestKind::Fetch(body))
}

/// What the backend received: (cluster, api, the topic ids in the request).
type Received = Arc<StdMutex<Vec<(String, ApiKey, Vec<Uuid>)>>>;

/// A backend where `orders` is [`MAIN_ID`] on main and [`FAILOVER_ID`] elsewhere. Metadata answers by name or by
/// id; Fetch echoes the ids it was sent; ConsumerGroupHeartbeat assigns `orders` by the cluster's own id.
fn backend(
    received: Received,
) -> impl Service<KafkaRequest, Response = KafkaResponse, Error = FilterError, Future: Send> + Clone + Send + 'static {
    service_fn(move |mut r: KafkaRequest| {
        let received = received.clone();
        async move {
            let cluster = r.session.cluster.name.clone();
            let own = if cluster == "main" { MAIN_ID } else { FAILOVER_ID };
            let body = r.body()?;
            let ids = walk::request_ids(body);
            let key = r.api_key().expect("a known api");
            received.lock().expect("lock").push((cluster, key, ids.clone()));
            let answer = match key {
                ApiKey::Metadata => {
                    let RequestKind::Metadata(asked) = r.body()? else { unreachable!() };
                    let asked = asked.topics.iter().flatten();
                    let known = asked.filter(|t| t.name.is_some() || t.topic_id == own).count();
                    let topics = (0..known).map(|_| {
                        MetadataResponseTopic::default().with_name(Some(TopicName("orders".into()))).with_topic_id(own)
                    });
                    ResponseKind::Metadata(MetadataResponse::default().with_topics(topics.collect()))
                }
                ApiKey::Fetch => {
                    let topics = ids.iter().map(|id| FetchableTopicResponse::default().with_topic_id(*id));
                    ResponseKind::Fetch(FetchResponse::default().with_responses(topics.collect()))
                }
                ApiKey::ConsumerGroupHeartbeat => {
                    let assigned = TopicPartitions::default().with_topic_id(own).with_partitions(vec![0, 1]);
                    let assignment = Assignment::default().with_topic_partitions(vec![assigned]);
                    ResponseKind::ConsumerGroupHeartbeat(
                        ConsumerGroupHeartbeatResponse::default().with_assignment(Some(assignment)),
                    )
                }
                other => panic!("the backend was not asked for {other:?}"),
            };
            KafkaResponse::from_message(r.api_key_raw(), r.api_version(), r.correlation_id(), answer)
        }
    })
}

fn metadata_ids(response: &mut KafkaResponse) -> Vec<Uuid> {
    let Ok(ResponseKind::Metadata(body)) = response.body() else { panic!("a Metadata response") };
    body.topics.iter().map(|t| t.topic_id).collect()
}

fn fetch_ids(response: &mut KafkaResponse) -> Vec<Uuid> {
    let Ok(ResponseKind::Fetch(body)) = response.body() else { panic!("a Fetch response") };
    body.responses.iter().map(|t| t.topic_id).collect()
}

#[tokio::test]
async fn the_failover_shows_mains_id_and_gets_its_own_in_requests() {
    let received = Received::default();
    let layer = TopicIdsLayer::default();
    let (main, failover) = (session("main"), session("failover"));

    let mut on_main = layer.layer(backend(received.clone())).oneshot(metadata(&main)).await.expect("metadata");
    assert_eq!(metadata_ids(&mut on_main), vec![MAIN_ID]);
    let mut on_failover = layer.layer(backend(received.clone())).oneshot(metadata(&failover)).await.expect("metadata");
    assert_eq!(metadata_ids(&mut on_failover), vec![MAIN_ID], "the failover's copy shows the id clients know");

    let mut fetched = layer.layer(backend(received.clone())).oneshot(fetch(&failover, MAIN_ID)).await.expect("fetch");
    assert_eq!(fetch_ids(&mut fetched), vec![MAIN_ID], "the answer names the topic as the client does");
    let last = received.lock().expect("lock").last().cloned().expect("a request");
    assert_eq!(last, ("failover".into(), ApiKey::Fetch, vec![FAILOVER_ID]), "the failover got its own id");

    let mut fetched = layer.layer(backend(received.clone())).oneshot(fetch(&main, MAIN_ID)).await.expect("fetch");
    assert_eq!(fetch_ids(&mut fetched), vec![MAIN_ID]);
    let last = received.lock().expect("lock").last().cloned().expect("a request");
    assert_eq!(last, ("main".into(), ApiKey::Fetch, vec![MAIN_ID]), "main's ids are the ones clients see");
}

#[tokio::test]
async fn an_id_the_failover_has_not_shown_yet_is_looked_up_by_name_before_the_request_is_forwarded() {
    let received = Received::default();
    let layer = TopicIdsLayer::default();
    let (main, failover) = (session("main"), session("failover"));
    layer.layer(backend(received.clone())).oneshot(metadata(&main)).await.expect("metadata on main");
    received.lock().expect("lock").clear();

    // The first request after a switch: a fetch by the id the client learned on main.
    let mut fetched = layer.layer(backend(received.clone())).oneshot(fetch(&failover, MAIN_ID)).await.expect("fetch");
    assert_eq!(fetch_ids(&mut fetched), vec![MAIN_ID]);
    let received = received.lock().expect("lock").clone();
    assert_eq!(
        received,
        vec![("failover".into(), ApiKey::Metadata, vec![]), ("failover".into(), ApiKey::Fetch, vec![FAILOVER_ID])],
        "a Metadata request of the gateway's own by name, then the fetch with the failover's id"
    );
}

#[tokio::test]
async fn an_assignment_by_an_id_not_learned_yet_is_looked_up_by_id_and_shown_as_the_clients_id() {
    let received = Received::default();
    let layer = TopicIdsLayer::default();
    let (main, failover) = (session("main"), session("failover"));
    layer.layer(backend(received.clone())).oneshot(metadata(&main)).await.expect("metadata on main");
    received.lock().expect("lock").clear();

    let heartbeat = request(
        &failover,
        ApiKey::ConsumerGroupHeartbeat,
        0,
        RequestKind::ConsumerGroupHeartbeat(ConsumerGroupHeartbeatRequest::default()),
    );
    let mut response = layer.layer(backend(received.clone())).oneshot(heartbeat).await.expect("heartbeat");
    let Ok(ResponseKind::ConsumerGroupHeartbeat(body)) = response.body() else { panic!("a heartbeat response") };
    let assigned: Vec<Uuid> = body.assignment.iter().flat_map(|a| &a.topic_partitions).map(|t| t.topic_id).collect();
    assert_eq!(assigned, vec![MAIN_ID], "the assignment names the topic by the id the client knows");
    let received = received.lock().expect("lock").clone();
    assert_eq!(received[1], ("failover".into(), ApiKey::Metadata, vec![FAILOVER_ID]), "looked up by id");
}

#[tokio::test]
async fn a_body_that_does_not_decode_is_forwarded_as_it_came_on_a_translating_cluster() {
    let forwarded = Arc::new(StdMutex::new(None));
    let seen = forwarded.clone();
    let inner = service_fn(move |r: KafkaRequest| {
        let seen = seen.clone();
        async move {
            *seen.lock().expect("lock") = Some(r.header().request_api_version);
            Ok::<_, FilterError>(KafkaResponse::from_wire(
                r.api_key_raw(),
                r.api_version(),
                r.correlation_id(),
                bytes::Bytes::new(),
                bytes::Bytes::from_static(b"\xff\xff not a fetch response"),
            ))
        }
    });
    let layer = TopicIdsLayer::default();
    layer.table().learn("main", "orders", MAIN_ID);
    let failover = session("failover");
    assert!(layer.table().needs_translation("failover"));
    let header = RequestHeader::default().with_request_api_key(ApiKey::Fetch as i16).with_request_api_version(13);
    let garbage = bytes::Bytes::from_static(b"\x00\x01 not a fetch request");
    let request = KafkaRequest::from_parts(header, bytes::Bytes::new(), Body::raw(garbage), failover, true);
    let response = layer.layer(inner).oneshot(request).await.expect("forwarded, not failed");
    assert_eq!(*forwarded.lock().expect("lock"), Some(13), "the request reached the broker");
    let body = response.raw_body().and_then(|b| b.raw_bytes().cloned()).expect("the response's own bytes");
    assert_eq!(&body[..], b"\xff\xff not a fetch response", "the client gets the bytes the broker sent");
}
