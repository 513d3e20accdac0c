//! The topic-prefix filter against a `service_fn` inner service that records what reached it and answers with
//! a canned backend response.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use franzgate_api::auth::SessionAuth;
use franzgate_api::kafka_protocol::messages::create_topics_request::CreatableTopic;
use franzgate_api::kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use franzgate_api::kafka_protocol::messages::metadata_response::MetadataResponseTopic;
use franzgate_api::kafka_protocol::messages::produce_request::TopicProduceData;
use franzgate_api::kafka_protocol::messages::produce_response::TopicProduceResponse;
use franzgate_api::kafka_protocol::messages::{
    ApiKey, CreateAclsRequest, CreateTopicsRequest, CreateTopicsResponse, GroupId, JoinGroupRequest, JoinGroupResponse,
    MetadataRequest, MetadataResponse, ProduceRequest, ProduceResponse, RequestHeader, RequestKind, ResponseKind,
    TopicName,
};
use franzgate_api::kafka_protocol::protocol::StrBytes;
use franzgate_api::topology::BackendCluster;
use franzgate_api::vcluster::{StateRecord, VirtualClusters};
use franzgate_api::{Body, FilterError, KafkaRequest, KafkaResponse, Principal, PrincipalSource, Session};
use tower::{Layer, Service, ServiceExt};

use super::TopicPrefixLayer;

/// What reached the backend.
type Seen = Arc<Mutex<Vec<RequestKind>>>;

fn registry(mandatory: bool) -> Arc<VirtualClusters> {
    let registry = VirtualClusters::new(mandatory);
    registry.apply(&StateRecord::VirtualCluster { name: "teamA".into(), prefix: "teamA.".into() });
    let (record, _) = registry.plan_issue("teamA", "sa").expect("issue");
    registry.apply(&record);
    Arc::new(registry)
}

fn session(vcluster: Option<&str>) -> Arc<Session> {
    let peer = SocketAddr::from(([127, 0, 0, 1], 1));
    let auth = SessionAuth::new(None);
    auth.set_sasl_principal(Principal {
        name: "sa".into(),
        vcluster: vcluster.map(String::from),
        generation: 0,
        source: PrincipalSource::ServiceAccountToken,
    });
    Arc::new(Session::new(1, peer, 9092, Arc::new(BackendCluster::new("main", vec![])), 0).with_auth(auth))
}

fn request(session: &Arc<Session>, key: ApiKey, version: i16, body: RequestKind) -> KafkaRequest {
    let header = RequestHeader::default()
        .with_request_api_key(key as i16)
        .with_request_api_version(version)
        .with_correlation_id(7);
    KafkaRequest::from_parts(header, Bytes::new(), Body::decoded(body), session.clone(), true)
}

/// The filter over a backend that records requests and answers `answer`.
fn service(
    registry: &Arc<VirtualClusters>,
    answer: ResponseKind,
) -> (impl Service<KafkaRequest, Response = KafkaResponse, Error = FilterError>, Seen) {
    let seen = Seen::default();
    let record = seen.clone();
    let inner = tower::service_fn(move |mut request: KafkaRequest| {
        let body = request.body().cloned();
        // Encoded as the upstream would: a field set that the version does not carry fails here.
        let encoded = request.body.write_to(request.api_version(), &mut bytes::BytesMut::new());
        let answer = answer.clone();
        let record = record.clone();
        async move {
            encoded.map_err(FilterError::encode)?;
            record.lock().expect("lock").push(body?);
            KafkaResponse::from_message(request.api_key_raw(), request.api_version(), 7, answer)
        }
    });
    (TopicPrefixLayer::new(registry.clone()).layer(inner), seen)
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

#[tokio::test]
async fn produce_is_prefixed_and_its_response_stripped() {
    let registry = registry(false);
    let answer = ProduceResponse::default()
        .with_responses(vec![TopicProduceResponse::default().with_name(topic("teamA.users"))]);
    let (mut service, seen) = service(&registry, ResponseKind::Produce(answer));
    let body = ProduceRequest::default()
        .with_acks(-1)
        .with_topic_data(vec![TopicProduceData::default().with_name(topic("users"))]);
    let s = session(Some("teamA"));
    let mut response =
        call(&mut service, request(&s, ApiKey::Produce, 9, RequestKind::Produce(body))).await.expect("ok");
    let RequestKind::Produce(sent) = &seen.lock().expect("lock")[0] else { panic!("not a produce") };
    assert_eq!(sent.topic_data[0].name.0.as_str(), "teamA.users");
    let ResponseKind::Produce(answer) = response.body().expect("body") else { panic!("not a produce") };
    assert_eq!(answer.responses[0].name.0.as_str(), "users");
}

#[tokio::test]
async fn metadata_for_all_topics_shows_only_the_tenants() {
    let registry = registry(false);
    let listed = ["teamA.users", "teamB.users", "teamA.orders", "plain"]
        .map(|name| MetadataResponseTopic::default().with_name(Some(topic(name))))
        .to_vec();
    let (mut service, _) = service(&registry, ResponseKind::Metadata(MetadataResponse::default().with_topics(listed)));
    let s = session(Some("teamA"));
    let mut response =
        call(&mut service, request(&s, ApiKey::Metadata, 12, RequestKind::Metadata(MetadataRequest::default())))
            .await
            .expect("ok");
    let ResponseKind::Metadata(answer) = response.body().expect("body") else { panic!("not metadata") };
    let names: Vec<_> = answer.topics.iter().filter_map(|t| t.name.as_ref()).map(|n| n.0.as_str()).collect();
    assert_eq!(names, ["users", "orders"]);
}

#[tokio::test]
async fn another_tenants_full_name_is_prefixed_again_never_passed_through() {
    let registry = registry(false);
    let (mut service, seen) = service(&registry, ResponseKind::Metadata(MetadataResponse::default()));
    let wanted = MetadataRequestTopic::default().with_name(Some(topic("teamB.users")));
    let body = MetadataRequest::default().with_topics(Some(vec![wanted]));
    let s = session(Some("teamA"));
    call(&mut service, request(&s, ApiKey::Metadata, 12, RequestKind::Metadata(body))).await.expect("ok");
    let RequestKind::Metadata(sent) = &seen.lock().expect("lock")[0] else { panic!("not metadata") };
    let name = sent.topics.as_ref().and_then(|t| t[0].name.as_ref()).map(|n| n.0.to_string());
    assert_eq!(name.as_deref(), Some("teamA.teamB.users"));
}

#[tokio::test]
async fn group_ids_are_prefixed() {
    let registry = registry(false);
    let (mut service, seen) = service(&registry, ResponseKind::JoinGroup(JoinGroupResponse::default()));
    let body = JoinGroupRequest::default().with_group_id(GroupId(StrBytes::from_static_str("readers")));
    let s = session(Some("teamA"));
    call(&mut service, request(&s, ApiKey::JoinGroup, 7, RequestKind::JoinGroup(body))).await.expect("ok");
    let RequestKind::JoinGroup(sent) = &seen.lock().expect("lock")[0] else { panic!("not a join") };
    assert_eq!(sent.group_id.0.as_str(), "teamA.readers");
}

#[tokio::test]
async fn a_topic_too_long_once_prefixed_gets_invalid_topic_and_reaches_nothing() {
    let registry = registry(false);
    let (mut service, seen) = service(&registry, ResponseKind::CreateTopics(CreateTopicsResponse::default()));
    let long = CreatableTopic::default().with_name(topic(&"x".repeat(245)));
    let body = CreateTopicsRequest::default().with_topics(vec![long]);
    let s = session(Some("teamA"));
    let mut response =
        call(&mut service, request(&s, ApiKey::CreateTopics, 5, RequestKind::CreateTopics(body))).await.expect("ok");
    let ResponseKind::CreateTopics(answer) = response.body().expect("body") else { panic!("not create topics") };
    assert_eq!(answer.topics[0].error_code, 17, "INVALID_TOPIC_EXCEPTION");
    assert!(seen.lock().expect("lock").is_empty());
}

#[tokio::test]
async fn cluster_wide_apis_are_refused_to_tenants() {
    let registry = registry(false);
    let (mut service, seen) = service(&registry, ResponseKind::Metadata(MetadataResponse::default()));
    let s = session(Some("teamA"));
    let body = RequestKind::CreateAcls(CreateAclsRequest::default());
    let response = call(&mut service, request(&s, ApiKey::CreateAcls, 2, body)).await.expect("answered");
    assert!(response.has_body());
    assert!(seen.lock().expect("lock").is_empty());
}

#[tokio::test]
async fn a_revoked_account_closes_its_session_and_an_unknown_vcluster_too() {
    let registry = registry(false);
    let (mut service, seen) = service(&registry, ResponseKind::Metadata(MetadataResponse::default()));
    let s = session(Some("teamA"));
    let metadata = || RequestKind::Metadata(MetadataRequest::default());
    call(&mut service, request(&s, ApiKey::Metadata, 12, metadata())).await.expect("allowed before revocation");
    registry.apply(&registry.plan_revoke("teamA", "sa").expect("revoke"));
    let refused = call(&mut service, request(&s, ApiKey::Metadata, 12, metadata())).await;
    assert!(matches!(refused, Err(FilterError::Refused(ref m)) if m.contains("revoked")), "{refused:?}");
    let stranger = session(Some("teamZ"));
    let refused = call(&mut service, request(&stranger, ApiKey::Metadata, 12, metadata())).await;
    assert!(matches!(refused, Err(FilterError::Refused(ref m)) if m.contains("unknown virtual cluster")));
    assert_eq!(seen.lock().expect("lock").len(), 1);
}

#[tokio::test]
async fn passthrough_principals_are_untouched_unless_vclusters_are_mandatory() {
    let registry = registry(false);
    let (mut service, seen) = service(&registry, ResponseKind::Metadata(MetadataResponse::default()));
    let wanted = MetadataRequestTopic::default().with_name(Some(topic("users")));
    let body = || RequestKind::Metadata(MetadataRequest::default().with_topics(Some(vec![wanted.clone()])));
    let s = session(None);
    call(&mut service, request(&s, ApiKey::Metadata, 12, body())).await.expect("ok");
    let sent = seen.lock().expect("lock")[0].clone();
    let RequestKind::Metadata(sent) = sent else { panic!("not metadata") };
    assert_eq!(sent.topics.as_ref().and_then(|t| t[0].name.as_ref()).map(|n| n.0.as_str()), Some("users"));

    let mandatory = self::registry(true);
    let (mut service, _) = self::service(&mandatory, ResponseKind::Metadata(MetadataResponse::default()));
    let refused = call(&mut service, request(&s, ApiKey::Metadata, 12, body())).await;
    assert!(matches!(refused, Err(FilterError::Refused(ref m)) if m.contains("MANDATORY_VCLUSTER")), "{refused:?}");
}

#[tokio::test]
async fn fields_a_version_does_not_carry_stay_unset() {
    use franzgate_api::kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestGroup;
    use franzgate_api::kafka_protocol::messages::{
        FindCoordinatorRequest, FindCoordinatorResponse, OffsetFetchRequest, OffsetFetchResponse,
    };
    let registry = registry(false);
    let s = session(Some("teamA"));
    // OffsetFetch v8+ name groups in `groups` only; the v0-7 `group_id` must stay empty to encode.
    let (mut service, seen) = service(&registry, ResponseKind::OffsetFetch(OffsetFetchResponse::default()));
    let group = OffsetFetchRequestGroup::default().with_group_id(GroupId(StrBytes::from_static_str("readers")));
    let body = OffsetFetchRequest::default().with_groups(vec![group]);
    call(&mut service, request(&s, ApiKey::OffsetFetch, 9, RequestKind::OffsetFetch(body))).await.expect("encodes");
    let sent = seen.lock().expect("lock")[0].clone();
    let RequestKind::OffsetFetch(sent) = sent else { panic!("not offset fetch") };
    assert_eq!(sent.groups[0].group_id.0.as_str(), "teamA.readers");
    // FindCoordinator v4+ name keys in `coordinator_keys` only.
    let (mut service, seen) =
        self::service(&registry, ResponseKind::FindCoordinator(FindCoordinatorResponse::default()));
    let body = FindCoordinatorRequest::default().with_coordinator_keys(vec![StrBytes::from_static_str("readers")]);
    call(&mut service, request(&s, ApiKey::FindCoordinator, 4, RequestKind::FindCoordinator(body)))
        .await
        .expect("encodes");
    let RequestKind::FindCoordinator(sent) = &seen.lock().expect("lock")[0] else { panic!("not find coordinator") };
    assert_eq!(sent.coordinator_keys[0].as_str(), "teamA.readers");
}

#[tokio::test]
async fn topic_ids_must_be_the_tenants_own() {
    use franzgate_api::kafka_protocol::messages::fetch_request::FetchTopic;
    use franzgate_api::kafka_protocol::messages::{FetchRequest, FetchResponse};
    let registry = registry(false);
    let s = session(Some("teamA"));
    let (mine, theirs) = (uuid::Uuid::from_u128(1), uuid::Uuid::from_u128(2));
    // The tenant's metadata (all topics) teaches the filter both ids, and which names they stand for.
    let listed = vec![
        MetadataResponseTopic::default().with_name(Some(topic("teamA.users"))).with_topic_id(mine),
        MetadataResponseTopic::default().with_name(Some(topic("teamB.users"))).with_topic_id(theirs),
    ];
    let layer = TopicPrefixLayer::new(registry.clone());
    let answer = ResponseKind::Metadata(MetadataResponse::default().with_topics(listed));
    let inner = tower::service_fn(move |request: KafkaRequest| {
        let answer = match request.api_key() {
            Some(ApiKey::Metadata) => answer.clone(),
            _ => ResponseKind::Fetch(FetchResponse::default()),
        };
        std::future::ready(KafkaResponse::from_message(request.api_key_raw(), request.api_version(), 7, answer))
    });
    let mut service = layer.layer(inner);
    call(&mut service, request(&s, ApiKey::Metadata, 12, RequestKind::Metadata(MetadataRequest::default())))
        .await
        .expect("metadata");
    let fetch = |id| {
        let body = FetchRequest::default().with_topics(vec![FetchTopic::default().with_topic_id(id)]);
        request(&s, ApiKey::Fetch, 13, RequestKind::Fetch(body))
    };
    let mut own = call(&mut service, fetch(mine)).await.expect("answered");
    let ResponseKind::Fetch(own) = own.body().expect("body") else { panic!("not a fetch") };
    assert_eq!(own.error_code, 0, "its own topic id is fetched");
    let mut other = call(&mut service, fetch(theirs)).await.expect("answered");
    let ResponseKind::Fetch(other) = other.body().expect("body") else { panic!("not a fetch") };
    assert_eq!(other.error_code, 100, "another tenant's id gets UNKNOWN_TOPIC_ID");
    let mut unknown = call(&mut service, fetch(uuid::Uuid::from_u128(3))).await.expect("answered");
    let ResponseKind::Fetch(unknown) = unknown.body().expect("body") else { panic!("not a fetch") };
    assert_eq!(unknown.error_code, 100);
}

#[tokio::test]
async fn a_server_side_regex_subscription_is_refused_to_tenants() {
    use franzgate_api::kafka_protocol::messages::{ConsumerGroupHeartbeatRequest, ConsumerGroupHeartbeatResponse};
    let registry = registry(false);
    let (mut service, seen) =
        service(&registry, ResponseKind::ConsumerGroupHeartbeat(ConsumerGroupHeartbeatResponse::default()));
    let body = ConsumerGroupHeartbeatRequest::default()
        .with_group_id(GroupId(StrBytes::from_static_str("g")))
        .with_subscribed_topic_regex(Some(StrBytes::from_static_str("x)|(.*")));
    let s = session(Some("teamA"));
    let mut response =
        call(&mut service, request(&s, ApiKey::ConsumerGroupHeartbeat, 1, RequestKind::ConsumerGroupHeartbeat(body)))
            .await
            .expect("answered");
    let ResponseKind::ConsumerGroupHeartbeat(answer) = response.body().expect("body") else { panic!("not cgh") };
    assert_eq!(answer.error_code, 31, "CLUSTER_AUTHORIZATION_FAILED");
    assert!(seen.lock().expect("lock").is_empty(), "nothing reached the backend");
}
