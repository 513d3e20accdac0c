//! The cluster selector: requests of a session bound to a cluster that is no longer active never reach it.
//!
//! The switch itself is driven by the admin API through the shared [`ClusterSelector`]; the runtime stops
//! reading from sessions of the old epoch and closes them once their in-flight requests are answered. A
//! request read just before the switch but arriving here after it is answered by the gateway with a retriable
//! Kafka error (NOT_COORDINATOR for coordinator APIs, NOT_LEADER_OR_FOLLOWER otherwise) and the connection is
//! closed: the client retries on a new connection, which is bound to the new cluster. Nothing is forwarded to
//! the old cluster after the switch, so no acknowledged write can be lost there unseen.

use std::sync::Arc;
use std::task::{Context, Poll};

use franzgate_api::filter::parse_config;
use franzgate_api::kafka_protocol::ResponseError;
use franzgate_api::kafka_protocol::messages::ApiKey;
use franzgate_api::selector::ClusterSelector;
use franzgate_api::{BoxLayer, ConfigError, FilterContext, FilterError, FilterFactory, KafkaRequest, KafkaResponse};
use futures::future::{Either, Ready, ready};
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

/// Refuses requests of sessions bound under an older epoch.
#[derive(Debug, Clone)]
pub struct ClusterSelectorLayer {
    /// The switchable state: the active cluster and its epoch.
    selector: Arc<ClusterSelector>,
}

/// The service of [`ClusterSelectorLayer`].
#[derive(Debug, Clone)]
pub struct ClusterSelectorService<S> {
    /// The wrapped service.
    inner: S,
    /// The switchable state: the active cluster and its epoch.
    selector: Arc<ClusterSelector>,
}

impl FilterFactory for ClusterSelectorFactory {
    fn type_name(&self) -> &'static str {
        TYPE_NAME
    }

    fn create(&self, config: serde_yaml::Value, ctx: &FilterContext) -> Result<BoxLayer, ConfigError> {
        let _: ClusterSelectorConfig = parse_config(config)?;
        Ok(BoxLayer::new(ClusterSelectorLayer { selector: ctx.selector.clone() }))
    }
}

impl ClusterSelectorLayer {
    /// Checks requests against `selector`'s epoch.
    pub fn new(selector: Arc<ClusterSelector>) -> Self {
        Self { selector }
    }
}

impl<S> Layer<S> for ClusterSelectorLayer {
    type Service = ClusterSelectorService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ClusterSelectorService { inner, selector: self.selector.clone() }
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
    S: Service<KafkaRequest, Response = KafkaResponse, Error = FilterError>,
{
    type Response = KafkaResponse;
    type Error = FilterError;
    type Future = Either<Ready<Result<KafkaResponse, FilterError>>, S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), FilterError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: KafkaRequest) -> Self::Future {
        if request.session.epoch == self.selector.epoch() {
            return Either::Right(self.inner.call(request));
        }
        let code = retriable_error(request.api_key());
        Either::Left(ready(request.error_response(code).map(KafkaResponse::close_after)))
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use franzgate_api::kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
    use franzgate_api::kafka_protocol::messages::{
        ProduceRequest, RequestHeader, RequestKind, ResponseKind, TopicName,
    };
    use franzgate_api::topology::{BackendCluster, ClusterRole};
    use franzgate_api::{Body, Session};
    use tower::{ServiceExt, service_fn};

    use super::*;

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
        let main = Arc::new(BackendCluster::new("main", vec![]));
        let failover = Arc::new(BackendCluster::new("failover", vec![]).with_role(ClusterRole::Failover));
        let selector = Arc::new(ClusterSelector::new(vec![main.clone(), failover]).expect("clusters"));
        let session = Arc::new(Session::new(1, SocketAddr::from(([127, 0, 0, 1], 1)), 6969, main, selector.epoch()));
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
}
