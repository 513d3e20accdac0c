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
pub mod transactions;

use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use franzgate_api::filter::parse_config;
use franzgate_api::kafka_protocol::ResponseError;
use franzgate_api::kafka_protocol::messages::{ApiKey, RequestKind, ResponseKind};
use franzgate_api::selector::ClusterSelector;
use franzgate_api::selector::ProducerStats;
use franzgate_api::{BoxLayer, ConfigError, FilterContext, FilterError, FilterFactory, KafkaRequest, KafkaResponse};
use futures::future::{BoxFuture, Either, Ready, ready};
use members::MemberRegistry;
use producers::ProducerRegistry;
use serde::Deserialize;
use tower::{Layer, Service};
use transactions::TransactionRegistry;

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
    /// Which cluster each transactional id's producer id came from; shared by every session.
    transactions: Arc<TransactionRegistry>,
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
    /// Which cluster each transactional id's producer id came from.
    transactions: Arc<TransactionRegistry>,
}

use crate::lock;

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
        Self { selector, members: Arc::default(), producers: Arc::default(), transactions: Arc::default() }
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
            transactions: self.transactions.clone(),
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
        if request.api_key() == Some(ApiKey::Produce) && self.selector.produce_fenced(&request.session.cluster.name) {
            // A planned switch waits for replication: the client retries, and its retry reaches the new cluster
            // (or this one, once the fence is lifted without a switch).
            self.selector.count_fenced_produce();
            let code = ResponseError::NotLeaderOrFollower.code();
            return Either::Left(ready(request.error_response(code)));
        }
        match request.api_key() {
            Some(ApiKey::OffsetCommit | ApiKey::TxnOffsetCommit) => {
                if let Some(refused) = self.refuse_crossed_transaction(&mut request) {
                    return refused;
                }
                let cluster = request.session.cluster.clone();
                let now = std::time::Instant::now();
                let committer = committer(&mut request);
                if let Some((group, _, _)) = &committer {
                    self.selector.note_used_group(group);
                }
                if let Some((group, member, generation)) = committer
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
                    self.selector.note_used_group(&membership.group);
                    return self.learn_membership(request, membership);
                }
            }
            Some(ApiKey::Produce) if self.producers.may_place(&request.session.cluster.name) => {
                if let Some(refused) = self.refuse_crossed_transaction(&mut request) {
                    return refused;
                }
                let cluster = request.session.cluster.clone();
                let placements = produce::placements(&mut request, &self.producers, &cluster.name);
                if !placements.is_empty() {
                    let (inner, selector) = (self.inner.clone(), self.selector.clone());
                    let placed = produce::place_and_forward(request, placements, inner, selector);
                    return Either::Right(Either::Right(Box::pin(placed)));
                }
            }
            Some(ApiKey::InitProducerId) if matches!(produce::transactional_id(&mut request), Ok(None)) => {
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
            Some(ApiKey::InitProducerId | ApiKey::EndTxn | ApiKey::AddPartitionsToTxn | ApiKey::AddOffsetsToTxn) => {
                return self.transactional(request);
            }
            Some(ApiKey::Metadata) => {
                // The topics clients use: what a planned switch waits for replication of.
                let selector = self.selector.clone();
                let response = lock(&self.inner).call(request);
                return Either::Right(Either::Right(Box::pin(async move {
                    let mut response = response.await?;
                    if let Ok(ResponseKind::Metadata(metadata)) = response.body() {
                        let known = metadata.topics.iter().filter(|t| t.error_code == 0);
                        selector.note_used_topics(known.filter_map(|t| t.name.as_ref().map(|n| n.0.as_str())));
                    }
                    Ok(response)
                })));
            }
            _ => {}
        }
        let response = lock(&self.inner).call(request);
        Either::Right(Either::Left(response))
    }
}

impl<S> ClusterSelectorService<S>
where
    S: Service<KafkaRequest, Response = KafkaResponse, Error = FilterError> + Send + 'static,
    S::Future: Send + 'static,
{
    /// Forwards a membership request and learns from its answer which member the session's cluster confirmed.
    fn learn_membership(
        &self,
        request: KafkaRequest,
        membership: Membership,
    ) -> <Self as Service<KafkaRequest>>::Future {
        let (members, selector) = (self.members.clone(), self.selector.clone());
        let (cluster, epoch) = (request.session.cluster.clone(), request.session.epoch);
        let response = lock(&self.inner).call(request);
        Either::Right(Either::Right(Box::pin(async move {
            let mut response = response.await?;
            // An answer that arrives after a switch speaks for a cluster no longer active: it must not make the
            // group look as if its members were still there.
            if selector.epoch() == epoch
                && let Some(member) = confirmed_member(&membership, &mut response)
            {
                members.confirmed(&membership.group, &member, &cluster.name, std::time::Instant::now());
            }
            Ok(response)
        })))
    }

    /// The refusal of a request that would add to a transaction whose producer id is another cluster's
    /// ([`transactions`]), if it is one.
    fn refuse_crossed_transaction(
        &self,
        request: &mut KafkaRequest,
    ) -> Option<<Self as Service<KafkaRequest>>::Future> {
        let cluster = request.session.cluster.clone();
        match transactions::action(request, &self.transactions, &cluster.name) {
            transactions::Action::Refuse(code) => Some(Either::Left(ready(self.refused(request, code)))),
            _ => None,
        }
    }

    fn refused(&self, request: &mut KafkaRequest, code: i16) -> Result<KafkaResponse, FilterError> {
        ProducerStats::add(&self.selector.producers.refused_transactional, 1);
        tracing::info!(session = request.session.id, api = ?request.api_key(), code,
            "refused a request of a transaction whose producer id is another cluster's: the client aborts it");
        request.error_response(code)
    }

    /// InitProducerId, EndTxn, AddPartitionsToTxn and AddOffsetsToTxn of a transactional producer.
    fn transactional(&mut self, mut request: KafkaRequest) -> <Self as Service<KafkaRequest>>::Future {
        let cluster = request.session.cluster.clone();
        let (registry, producers) = (self.transactions.clone(), self.producers.clone());
        let learn = match transactions::action(&mut request, &self.transactions, &cluster.name) {
            transactions::Action::Forward { learn } => learn,
            transactions::Action::Refuse(code) => return Either::Left(ready(self.refused(&mut request, code))),
            transactions::Action::ForwardFresh(id) => {
                let fresh = transactions::forward_fresh(request, id, self.inner.clone(), registry, producers);
                return Either::Right(Either::Right(Box::pin(fresh)));
            }
            transactions::Action::AbortHere(id) => {
                ProducerStats::add(&self.selector.producers.aborted_here, 1);
                let aborted = transactions::abort_here(request, id, self.inner.clone(), registry, producers);
                return Either::Right(Either::Right(Box::pin(aborted)));
            }
        };
        let response = lock(&self.inner).call(request);
        let Some(id) = learn else { return Either::Right(Either::Left(response)) };
        Either::Right(Either::Right(Box::pin(async move {
            let mut response = response.await?;
            transactions::learn(&mut response, &id, &cluster.name, &registry);
            producers.note_origin(&cluster.name);
            Ok(response)
        })))
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
mod tests;
