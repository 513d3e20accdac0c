//! The cluster selector: requests of a session bound to a cluster that is no longer active never reach it.
//!
//! The switch itself is driven by the admin API through the shared [`ClusterSelector`]; the runtime stops
//! reading from sessions of the old epoch and closes them once their in-flight requests are answered. A
//! request read just before the switch but arriving here after it is answered by the gateway with a retriable
//! Kafka error (NOT_COORDINATOR for coordinator APIs, NOT_LEADER_OR_FOLLOWER otherwise) and the connection is
//! closed: the client retries on a new connection, which is bound to the new cluster. Nothing is forwarded to
//! the old cluster after the switch, so no acknowledged write can be lost there unseen.
//!
//! It also keeps consumer-group members of one cluster from committing offsets to another ([`members`]), and
//! writes the batches of idempotent producers that crossed a switch under a producer id valid on the cluster
//! they now reach ([`producers`]).

pub mod members;
mod produce;
pub mod producers;
pub mod record_batches;

use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};

use franzgate_api::filter::parse_config;
use franzgate_api::kafka_protocol::ResponseError;
use franzgate_api::kafka_protocol::messages::{ApiKey, RequestKind, ResponseKind};
use franzgate_api::selector::ClusterSelector;
use franzgate_api::{BoxLayer, ConfigError, FilterContext, FilterError, FilterFactory, KafkaRequest, KafkaResponse};
use futures::future::{BoxFuture, Either, Ready, ready};
use members::MemberRegistry;
use producers::ProducerRegistry;
use serde::Deserialize;
use tower::{Layer, Service};

/// The YAML type name.
pub const TYPE_NAME: &str = "cluster-selector";

/// No settings: clusters and roles come from the `clusters:` config (or the seed's cluster-config file).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterSelectorConfig {}

/// Builds [`ClusterSelectorLayer`] from YAML.
#[derive(Debug)]
pub struct ClusterSelectorFactory;

/// Refuses requests of sessions bound under an older epoch, and offset commits by group members of another
/// cluster.
#[derive(Debug, Clone)]
pub struct ClusterSelectorLayer {
    /// The switchable state: the active cluster and its epoch.
    selector: Arc<ClusterSelector>,
    /// Which clusters confirmed each consumer-group member; shared by every session.
    members: Arc<MemberRegistry>,
    /// Where each idempotent producer's id came from, and its stand-ins; shared by every session.
    producers: Arc<ProducerRegistry>,
}

/// The service of [`ClusterSelectorLayer`].
#[derive(Debug, Clone)]
pub struct ClusterSelectorService<S> {
    /// The wrapped service, shared with the futures that send a request of the gateway's own before the
    /// client's (a stand-in producer id). The services inside (metadata rewrite, routing, the backend
    /// connection) are always ready, so a call from such a future needs no readiness wait.
    inner: Arc<Mutex<S>>,
    /// The switchable state: the active cluster and its epoch.
    selector: Arc<ClusterSelector>,
    /// Which clusters confirmed each consumer-group member.
    members: Arc<MemberRegistry>,
    /// Where each idempotent producer's id came from, and its stand-ins.
    producers: Arc<ProducerRegistry>,
}

/// Locks the shared inner service (a poisoned lock still holds a usable service).
fn lock<S>(inner: &Mutex<S>) -> MutexGuard<'_, S> {
    inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl FilterFactory for ClusterSelectorFactory {
    fn type_name(&self) -> &'static str {
        TYPE_NAME
    }

    fn create(&self, config: serde_yaml::Value, ctx: &FilterContext) -> Result<BoxLayer, ConfigError> {
        let _: ClusterSelectorConfig = parse_config(config)?;
        Ok(BoxLayer::new(ClusterSelectorLayer::new(ctx.selector.clone())))
    }
}

impl ClusterSelectorLayer {
    /// Checks requests against `selector`'s epoch.
    pub fn new(selector: Arc<ClusterSelector>) -> Self {
        Self { selector, members: Arc::default(), producers: Arc::default() }
    }
}

impl<S> Layer<S> for ClusterSelectorLayer {
    type Service = ClusterSelectorService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ClusterSelectorService {
            inner: Arc::new(Mutex::new(inner)),
            selector: self.selector.clone(),
            members: self.members.clone(),
            producers: self.producers.clone(),
        }
    }
}

/// The retriable error that makes a client look for the partition leader or coordinator again.
pub fn retriable_error(key: Option<ApiKey>) -> i16 {
    match key {
        Some(
            ApiKey::FindCoordinator
            | ApiKey::JoinGroup
            | ApiKey::SyncGroup
            | ApiKey::Heartbeat
            | ApiKey::LeaveGroup
            | ApiKey::OffsetCommit
            | ApiKey::OffsetFetch
            | ApiKey::DescribeGroups
            | ApiKey::DeleteGroups
            | ApiKey::OffsetDelete
            | ApiKey::ConsumerGroupHeartbeat
            | ApiKey::InitProducerId
            | ApiKey::AddPartitionsToTxn
            | ApiKey::AddOffsetsToTxn
            | ApiKey::EndTxn
            | ApiKey::TxnOffsetCommit,
        ) => ResponseError::NotCoordinator.code(),
        _ => ResponseError::NotLeaderOrFollower.code(),
    }
}

impl<S> Service<KafkaRequest> for ClusterSelectorService<S>
where
    S: Service<KafkaRequest, Response = KafkaResponse, Error = FilterError> + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = KafkaResponse;
    type Error = FilterError;
    type Future = Either<
        Ready<Result<KafkaResponse, FilterError>>,
        Either<S::Future, BoxFuture<'static, Result<KafkaResponse, FilterError>>>,
    >;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), FilterError>> {
        lock(&self.inner).poll_ready(cx)
    }

    fn call(&mut self, mut request: KafkaRequest) -> Self::Future {
        if request.session.epoch != self.selector.epoch() {
            let code = retriable_error(request.api_key());
            return Either::Left(ready(request.error_response(code).map(KafkaResponse::close_after)));
        }
        match request.api_key() {
            Some(ApiKey::OffsetCommit | ApiKey::TxnOffsetCommit) => {
                let cluster = request.session.cluster.clone();
                let now = std::time::Instant::now();
                if let Some((group, member, generation)) = committer(&mut request)
                    && let Some(reason) = self.members.refuse_commit(&group, &member, generation, &cluster.name, now)
                {
                    tracing::info!(group, member, generation, cluster = %cluster.name, %reason,
                        "refused an offset commit of positions from another cluster (UNKNOWN_MEMBER_ID): the consumer rejoins here");
                    self.selector.count_fenced_commit();
                    let code = ResponseError::UnknownMemberId.code();
                    return Either::Left(ready(request.error_response(code)));
                }
            }
            Some(ApiKey::JoinGroup | ApiKey::SyncGroup | ApiKey::Heartbeat | ApiKey::ConsumerGroupHeartbeat) => {
                if let Some(membership) = membership_of(&mut request) {
                    let (members, selector) = (self.members.clone(), self.selector.clone());
                    let (cluster, epoch) = (request.session.cluster.clone(), request.session.epoch);
                    let response = lock(&self.inner).call(request);
                    return Either::Right(Either::Right(Box::pin(async move {
                        let mut response = response.await?;
                        // An answer that arrives after a switch speaks for a cluster no longer active: it must
                        // not make the group look as if its members were still there.
                        if selector.epoch() == epoch
                            && let Some(member) = confirmed_member(&membership, &mut response)
                        {
                            members.confirmed(&membership.group, &member, &cluster.name, std::time::Instant::now());
                        }
                        Ok(response)
                    })));
                }
            }
            Some(ApiKey::Produce) if self.producers.may_place(&request.session.cluster.name) => {
                let cluster = request.session.cluster.clone();
                let placements = produce::placements(&mut request, &self.producers, &cluster.name);
                if !placements.is_empty() {
                    let (inner, selector) = (self.inner.clone(), self.selector.clone());
                    let placed = produce::place_and_forward(request, placements, inner, selector);
                    return Either::Right(Either::Right(Box::pin(placed)));
                }
            }
            Some(ApiKey::InitProducerId) => {
                if let Ok(None) = produce::transactional_id(&mut request) {
                    // Recorded even when answered after a switch: the id is the answering cluster's all the same.
                    let (producers, selector) = (self.producers.clone(), self.selector.clone());
                    let cluster = request.session.cluster.clone();
                    let response = lock(&self.inner).call(request);
                    return Either::Right(Either::Right(Box::pin(async move {
                        let mut response = response.await?;
                        produce::note_allocation(&mut response, &cluster.name, &producers, &selector.producers);
                        Ok(response)
                    })));
                }
            }
            _ => {}
        }
        let response = lock(&self.inner).call(request);
        Either::Right(Either::Left(response))
    }
}

/// The group, member id and generation (or member epoch; -1 for none) a commit names. A body that does not
/// decode passes: the broker answers it.
fn committer(request: &mut KafkaRequest) -> Option<(String, String, i32)> {
    match request.body().ok()? {
        RequestKind::OffsetCommit(commit) => {
            Some((commit.group_id.0.to_string(), commit.member_id.to_string(), commit.generation_id_or_member_epoch))
        }
        RequestKind::TxnOffsetCommit(commit) => {
            Some((commit.group_id.0.to_string(), commit.member_id.to_string(), commit.generation_id))
        }
        _ => None,
    }
}

/// A membership request, to learn from its answer which member the cluster confirmed.
struct Membership {
    api: ApiKey,
    group: String,
    /// The member id the request names (empty for a first JoinGroup).
    member: String,
}

fn membership_of(request: &mut KafkaRequest) -> Option<Membership> {
    let (api, group, member) = match request.body().ok()? {
        RequestKind::JoinGroup(join) => (ApiKey::JoinGroup, &join.group_id, &join.member_id),
        RequestKind::SyncGroup(sync) => (ApiKey::SyncGroup, &sync.group_id, &sync.member_id),
        RequestKind::Heartbeat(heartbeat) => (ApiKey::Heartbeat, &heartbeat.group_id, &heartbeat.member_id),
        RequestKind::ConsumerGroupHeartbeat(heartbeat) => {
            (ApiKey::ConsumerGroupHeartbeat, &heartbeat.group_id, &heartbeat.member_id)
        }
        _ => return None,
    };
    Some(Membership { api, group: group.0.to_string(), member: member.to_string() })
}

/// The member id the cluster handed out or confirmed in `response`, if it did.
fn confirmed_member(membership: &Membership, response: &mut KafkaResponse) -> Option<String> {
    const NONE: i16 = 0;
    let member_id_required = ResponseError::MemberIdRequired.code();
    match (membership.api, response.body().ok()?) {
        // A first JoinGroup is answered MEMBER_ID_REQUIRED with the id the member must join with.
        (ApiKey::JoinGroup, ResponseKind::JoinGroup(join))
            if join.error_code == NONE || join.error_code == member_id_required =>
        {
            Some(join.member_id.to_string())
        }
        (ApiKey::SyncGroup, ResponseKind::SyncGroup(sync)) if sync.error_code == NONE => {
            Some(membership.member.clone())
        }
        (ApiKey::Heartbeat, ResponseKind::Heartbeat(heartbeat)) if heartbeat.error_code == NONE => {
            Some(membership.member.clone())
        }
        (ApiKey::ConsumerGroupHeartbeat, ResponseKind::ConsumerGroupHeartbeat(heartbeat))
            if heartbeat.error_code == NONE =>
        {
            Some(heartbeat.member_id.as_ref().map_or_else(|| membership.member.clone(), |m| m.to_string()))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use franzgate_api::kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
    use franzgate_api::kafka_protocol::messages::{
        GroupId, HeartbeatRequest, HeartbeatResponse, JoinGroupRequest, JoinGroupResponse, OffsetCommitRequest,
        ProduceRequest, RequestHeader, TopicName,
    };
    use franzgate_api::selector::ProducerStats;
    use franzgate_api::topology::{BackendCluster, ClusterRole};
    use franzgate_api::{Body, Session};
    use tower::{ServiceExt, service_fn};

    use super::*;

    /// A selector over `main` (active) and `failover`, a session bound to `main`, and the failover cluster.
    fn main_and_failover() -> (Arc<ClusterSelector>, Arc<Session>, Arc<BackendCluster>) {
        let main = Arc::new(BackendCluster::new("main", vec![]));
        let failover = Arc::new(BackendCluster::new("failover", vec![]).with_role(ClusterRole::Failover));
        let selector = Arc::new(ClusterSelector::new(vec![main.clone(), failover.clone()]).expect("clusters"));
        let on_main = Arc::new(Session::new(1, SocketAddr::from(([127, 0, 0, 1], 1)), 6969, main, selector.epoch()));
        (selector, on_main, failover)
    }

    /// The error code of the first partition of an OffsetCommit response.
    fn commit_error(response: &mut KafkaResponse) -> i16 {
        let Ok(ResponseKind::OffsetCommit(body)) = response.body() else { panic!("an OffsetCommit response") };
        body.topics[0].partitions[0].error_code
    }

    fn produce(session: Arc<Session>) -> KafkaRequest {
        let header =
            RequestHeader::default().with_request_api_key(0).with_request_api_version(9).with_correlation_id(3);
        let body = ProduceRequest::default().with_acks(-1).with_topic_data(vec![
            TopicProduceData::default()
                .with_name(TopicName("t".into()))
                .with_partition_data(vec![PartitionProduceData::default().with_index(4)]),
        ]);
        KafkaRequest::from_parts(header, bytes::Bytes::new(), Body::decoded(RequestKind::Produce(body)), session, true)
    }

    #[tokio::test]
    async fn a_request_of_a_session_bound_before_the_switch_gets_a_retriable_error_and_is_not_forwarded() {
        let (selector, session, _) = main_and_failover();
        let forwarded = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = forwarded.clone();
        let inner = service_fn(move |r: KafkaRequest| {
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            async move { Ok::<_, FilterError>(KafkaResponse::no_response(r.api_key_raw(), r.api_version(), 3)) }
        });
        let layer = ClusterSelectorLayer::new(selector.clone());

        layer.layer(inner.clone()).oneshot(produce(session.clone())).await.expect("forwarded before the switch");
        assert_eq!(forwarded.load(std::sync::atomic::Ordering::SeqCst), 1);

        selector.switch("main", "failover").expect("switch");
        let mut response = layer.layer(inner).oneshot(produce(session)).await.expect("answered by the gateway");
        assert_eq!(forwarded.load(std::sync::atomic::Ordering::SeqCst), 1, "nothing reaches the old cluster");
        assert!(response.closes_connection(), "the client reconnects to reach the new cluster");
        let Ok(ResponseKind::Produce(body)) = response.body() else { panic!("a Produce response") };
        let partition = &body.responses[0].partition_responses[0];
        assert_eq!((partition.index, partition.error_code), (4, ResponseError::NotLeaderOrFollower.code()));
    }

    fn request(session: &Arc<Session>, key: i16, version: i16, body: RequestKind) -> KafkaRequest {
        let header =
            RequestHeader::default().with_request_api_key(key).with_request_api_version(version).with_correlation_id(7);
        KafkaRequest::from_parts(header, bytes::Bytes::new(), Body::decoded(body), session.clone(), true)
    }

    fn commit(session: &Arc<Session>, member: &str, generation: i32) -> KafkaRequest {
        use franzgate_api::kafka_protocol::messages::offset_commit_request::{
            OffsetCommitRequestPartition, OffsetCommitRequestTopic,
        };
        let body = OffsetCommitRequest::default()
            .with_group_id(GroupId("readers".into()))
            .with_member_id(member.to_owned().into())
            .with_generation_id_or_member_epoch(generation)
            .with_topics(vec![
                OffsetCommitRequestTopic::default()
                    .with_name(TopicName("t".into()))
                    .with_partitions(vec![OffsetCommitRequestPartition::default().with_committed_offset(1947)]),
            ]);
        request(session, ApiKey::OffsetCommit as i16, 9, RequestKind::OffsetCommit(body))
    }

    #[tokio::test]
    async fn a_group_member_confirmed_by_the_old_cluster_cannot_commit_to_the_new_one() {
        let (selector, on_main, failover) = main_and_failover();
        let peer = on_main.peer;
        let forwarded = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = forwarded.clone();
        // The backend: JoinGroup hands out member `m-1`; everything else is answered without error.
        let inner = service_fn(move |r: KafkaRequest| {
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            async move {
                match r.api_key() {
                    Some(ApiKey::JoinGroup) => KafkaResponse::from_message(
                        r.api_key_raw(),
                        r.api_version(),
                        r.correlation_id(),
                        ResponseKind::JoinGroup(JoinGroupResponse::default().with_member_id("m-1".into())),
                    ),
                    _ => Ok(KafkaResponse::no_response(r.api_key_raw(), r.api_version(), r.correlation_id())),
                }
            }
        });
        let layer = ClusterSelectorLayer::new(selector.clone());
        let join = JoinGroupRequest::default().with_group_id(GroupId("readers".into()));
        let join = request(&on_main, ApiKey::JoinGroup as i16, 5, RequestKind::JoinGroup(join));
        layer.layer(inner.clone()).oneshot(join).await.expect("joined on main");
        layer.layer(inner.clone()).oneshot(commit(&on_main, "m-1", 0)).await.expect("its commit on main passes");
        assert_eq!(forwarded.load(std::sync::atomic::Ordering::SeqCst), 2);

        selector.switch("main", "failover").expect("switch");
        let on_failover = Arc::new(Session::new(2, peer, 6969, failover, selector.epoch()));
        let mut refused =
            layer.layer(inner.clone()).oneshot(commit(&on_failover, "m-1", 0)).await.expect("answered by the gateway");
        assert_eq!(forwarded.load(std::sync::atomic::Ordering::SeqCst), 2, "main's positions never reach failover");
        assert!(!refused.closes_connection(), "the client rejoins on the same connection");
        assert_eq!(selector.fenced_commits(), 1, "counted for /metrics");
        assert_eq!(commit_error(&mut refused), ResponseError::UnknownMemberId.code());

        // The revoke of the lost assignment commits with the member id cleared: refused too, until a member
        // joins on failover.
        let mut refused =
            layer.layer(inner.clone()).oneshot(commit(&on_failover, "", -1)).await.expect("answered by the gateway");
        assert_eq!(commit_error(&mut refused), ResponseError::UnknownMemberId.code());
        assert_eq!(forwarded.load(std::sync::atomic::Ordering::SeqCst), 2);
        let join = JoinGroupRequest::default().with_group_id(GroupId("readers".into()));
        let join = request(&on_failover, ApiKey::JoinGroup as i16, 5, RequestKind::JoinGroup(join));
        layer.layer(inner.clone()).oneshot(join).await.expect("joined on failover");

        // Then a standalone-style commit and one by a member never seen pass.
        for (member, generation) in [("", -1), ("m-9", 0)] {
            layer.layer(inner.clone()).oneshot(commit(&on_failover, member, generation)).await.expect("forwarded");
        }
        assert_eq!(forwarded.load(std::sync::atomic::Ordering::SeqCst), 5);
    }

    #[tokio::test]
    async fn an_answer_from_the_old_cluster_arriving_after_the_switch_confirms_nobody() {
        let (selector, on_main, failover) = main_and_failover();
        let peer = on_main.peer;
        // The backend answers heartbeats (without error) only when the test lets it.
        let release = Arc::new(tokio::sync::Notify::new());
        let held = release.clone();
        let inner = service_fn(move |r: KafkaRequest| {
            let held = held.clone();
            async move {
                if r.api_key() == Some(ApiKey::Heartbeat) {
                    held.notified().await;
                    let ok = ResponseKind::Heartbeat(HeartbeatResponse::default());
                    return KafkaResponse::from_message(r.api_key_raw(), r.api_version(), r.correlation_id(), ok);
                }
                Ok::<_, FilterError>(KafkaResponse::no_response(r.api_key_raw(), r.api_version(), r.correlation_id()))
            }
        });
        let layer = ClusterSelectorLayer::new(selector.clone());
        let heartbeat =
            HeartbeatRequest::default().with_group_id(GroupId("readers".into())).with_member_id("m-1".into());
        let heartbeat = request(&on_main, ApiKey::Heartbeat as i16, 4, RequestKind::Heartbeat(heartbeat));
        // Forwarded while main is active (the epoch is checked as the request is taken)...
        let mut service = layer.layer(inner.clone());
        let answered = service.call(heartbeat);
        // ... and answered after the switch.
        selector.switch("main", "failover").expect("switch");
        release.notify_one();
        answered.await.expect("the heartbeat is answered");

        // Main's late answer did not make `m-1` (or its group) a member of main: the failover takes its commits.
        let on_failover = Arc::new(Session::new(2, peer, 6969, failover, selector.epoch()));
        for (member, generation) in [("m-1", 0), ("", -1)] {
            let mut response =
                layer.layer(inner.clone()).oneshot(commit(&on_failover, member, generation)).await.expect("answered");
            assert!(!matches!(response.body(), Ok(ResponseKind::OffsetCommit(_))), "forwarded, not refused");
        }
        assert_eq!(selector.fenced_commits(), 0);
    }

    /// A Produce of one batch by producer `id` at `epoch`, sequence 935, on `session`.
    fn idempotent_produce(session: &Arc<Session>, id: i64, epoch: i16) -> KafkaRequest {
        use franzgate_api::kafka_protocol::records::{Compression, Record, RecordBatchEncoder, RecordEncodeOptions};
        let record = Record {
            transactional: false,
            control: false,
            partition_leader_epoch: 0,
            producer_id: id,
            producer_epoch: epoch,
            timestamp_type: franzgate_api::kafka_protocol::records::TimestampType::Creation,
            offset: 0,
            sequence: 935,
            timestamp: 0,
            key: Some(bytes::Bytes::from_static(b"key-935")),
            value: None,
            headers: Default::default(),
            delete_horizon: false,
        };
        let mut records = bytes::BytesMut::new();
        let options = RecordEncodeOptions { version: 2, compression: Compression::None };
        RecordBatchEncoder::encode(&mut records, [&record], &options).expect("encode");
        let body = ProduceRequest::default().with_acks(-1).with_topic_data(vec![
            TopicProduceData::default().with_name(TopicName("t".into())).with_partition_data(vec![
                PartitionProduceData::default().with_index(0).with_records(Some(records.freeze())),
            ]),
        ]);
        request(session, ApiKey::Produce as i16, 9, RequestKind::Produce(body))
    }

    /// The producers of the batches a backend received in a Produce.
    fn received_producers(request: &mut KafkaRequest) -> Vec<(i64, i16)> {
        let Ok(RequestKind::Produce(produce)) = request.body() else { panic!("a Produce") };
        let records = produce.topic_data[0].partition_data[0].records.clone().expect("records");
        let mut buf = records.clone();
        franzgate_api::kafka_protocol::records::RecordBatchDecoder::decode_all(&mut buf).expect("the CRC holds");
        record_batches::producers(&records).map(|p| (p.id, p.epoch)).collect()
    }

    #[tokio::test]
    async fn an_idempotent_producer_that_crossed_a_switch_writes_under_one_stand_in_id_of_the_new_cluster() {
        use franzgate_api::kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};
        let (selector, on_main, failover) = main_and_failover();
        // The backend: InitProducerId hands out 7 on main and 5000 on failover; Produce batches are recorded.
        let seen = Arc::new(Mutex::new(Vec::<(String, i64, i16)>::new()));
        let inits = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (log, counter) = (seen.clone(), inits.clone());
        let inner = service_fn(move |mut r: KafkaRequest| {
            let (log, counter) = (log.clone(), counter.clone());
            async move {
                let cluster = r.session.cluster.name.clone();
                match r.api_key() {
                    Some(ApiKey::InitProducerId) => {
                        counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        let id = if cluster == "main" { 7 } else { 5000 };
                        let answer = InitProducerIdResponse::default().with_producer_id(ProducerId(id));
                        let answer = ResponseKind::InitProducerId(answer);
                        KafkaResponse::from_message(r.api_key_raw(), r.api_version(), r.correlation_id(), answer)
                    }
                    _ => {
                        for (id, epoch) in received_producers(&mut r) {
                            lock(&log).push((cluster.clone(), id, epoch));
                        }
                        Ok(KafkaResponse::no_response(r.api_key_raw(), r.api_version(), r.correlation_id()))
                    }
                }
            }
        });
        let layer = ClusterSelectorLayer::new(selector.clone());
        // An idempotent producer's InitProducerId: no transactional id (kafka-protocol's default is an empty one).
        let init = InitProducerIdRequest::default().with_transactional_id(None);
        let init = request(&on_main, ApiKey::InitProducerId as i16, 4, RequestKind::InitProducerId(init));
        let mut answer = layer.layer(inner.clone()).oneshot(init).await.expect("answered");
        let Ok(ResponseKind::InitProducerId(given)) = answer.body() else { panic!("an InitProducerId answer") };
        assert_eq!(given.producer_id.0, 7, "an id nobody else holds reaches the client unchanged");
        layer.layer(inner.clone()).oneshot(idempotent_produce(&on_main, 7, 0)).await.expect("produced on main");

        selector.switch("main", "failover").expect("switch");
        let on_failover = Arc::new(Session::new(2, on_main.peer, 6970, failover, selector.epoch()));
        for _ in 0..2 {
            layer.layer(inner.clone()).oneshot(idempotent_produce(&on_failover, 7, 0)).await.expect("produced");
        }
        assert_eq!(inits.load(std::sync::atomic::Ordering::SeqCst), 2, "one stand-in for both Produce requests");
        let expected = [("main", 7, 0), ("failover", 5000, 0), ("failover", 5000, 0)];
        let expected: Vec<_> = expected.iter().map(|(c, id, e)| (c.to_string(), *id, *e)).collect();
        assert_eq!(*lock(&seen), expected, "main got the client's id; failover the stand-in");
        assert_eq!(ProducerStats::get(&selector.producers.stand_ins), 1);
        assert_eq!(ProducerStats::get(&selector.producers.rewritten_batches), 2);
    }
}
