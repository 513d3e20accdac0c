//! Metadata rewrite: clients only ever see gateway addresses, virtual node ids and the gateway's cluster id.
//!
//! Every response that names brokers is rewritten: Metadata, FindCoordinator (v0-3 single coordinator and v4+
//! coordinators array), DescribeCluster, DescribeTopicPartitions, and the `node_endpoints` / `current_leader`
//! of Produce v10+ and Fetch v16+ (present only when leadership moved, so those responses are re-encoded only
//! then). Brokers seen here are recorded in the session cluster's node map, which opens their gateway ports.

mod apis;
mod nodes;
#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::task::{Context, Poll};

use franzgate_api::filter::parse_config;
use franzgate_api::kafka_protocol::messages::ApiKey;
use franzgate_api::topology::AdvertisedAddress;
use franzgate_api::{
    BoxLayer, ConfigError, FilterContext, FilterError, FilterFactory, KafkaRequest, KafkaResponse, Session,
};
use serde::Deserialize;
use tower::{Layer, Service};

pub use nodes::NodeRewriter;

use franzgate_api::rewrite::{Rewrite, RewriteResponse};

/// The YAML type name.
pub const TYPE_NAME: &str = "metadata-rewrite";

/// No settings: addresses come from the gateway's `advertised_host` and port range, the cluster id from
/// `gateway.cluster_id`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetadataRewriteConfig {}

/// Builds [`MetadataRewriteLayer`] from YAML.
#[derive(Debug)]
pub struct MetadataRewriteFactory;

/// Rewrites broker addresses, node ids and cluster id in responses.
#[derive(Debug, Clone)]
pub struct MetadataRewriteLayer {
    /// The gateway's advertised host and port range.
    advertised: Arc<AdvertisedAddress>,
    cluster_id: Option<Arc<str>>,
}

/// The service of [`MetadataRewriteLayer`].
#[derive(Debug, Clone)]
pub struct MetadataRewrite<S> {
    /// The wrapped service.
    inner: S,
    /// The settings shared by every session.
    layer: MetadataRewriteLayer,
}

/// The rewrite of one response, carrying what it needs from the request.
#[derive(Debug)]
pub struct RewriteNodes {
    /// The session the response goes back on (its cluster's node map).
    session: Arc<Session>,
    /// The settings shared by every session.
    layer: MetadataRewriteLayer,
}

// === impl MetadataRewriteFactory ===

impl FilterFactory for MetadataRewriteFactory {
    fn type_name(&self) -> &'static str {
        TYPE_NAME
    }

    fn create(&self, config: serde_yaml::Value, ctx: &FilterContext) -> Result<BoxLayer, ConfigError> {
        let _: MetadataRewriteConfig = parse_config(config)?;
        Ok(BoxLayer::new(MetadataRewriteLayer::new(ctx.advertised.clone(), ctx.gateway_cluster_id.clone())))
    }
}

// === impl MetadataRewriteLayer ===

impl MetadataRewriteLayer {
    /// Advertises `advertised`; replaces the cluster id with `cluster_id` when given.
    pub fn new(advertised: Arc<AdvertisedAddress>, cluster_id: Option<String>) -> Self {
        Self { advertised, cluster_id: cluster_id.map(Arc::from) }
    }
}

impl<S> Layer<S> for MetadataRewriteLayer {
    type Service = MetadataRewrite<S>;

    fn layer(&self, inner: S) -> Self::Service {
        MetadataRewrite { inner, layer: self.clone() }
    }
}

// === impl MetadataRewrite ===

/// Whether a response to this api key and version can name brokers.
fn names_brokers(key: Option<ApiKey>, version: i16) -> bool {
    match key {
        Some(
            ApiKey::Metadata | ApiKey::FindCoordinator | ApiKey::DescribeCluster | ApiKey::DescribeTopicPartitions,
        ) => true,
        Some(ApiKey::Produce) => version >= 10,
        // Fetch v11+ can name a preferred read replica; v16+ adds node endpoints.
        Some(ApiKey::Fetch) => version >= 11,
        _ => false,
    }
}

impl<S> Service<KafkaRequest> for MetadataRewrite<S>
where
    S: Service<KafkaRequest, Response = KafkaResponse, Error = FilterError>,
{
    type Response = KafkaResponse;
    type Error = FilterError;
    type Future = RewriteResponse<S::Future, RewriteNodes>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), FilterError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: KafkaRequest) -> Self::Future {
        let rewrite = names_brokers(request.api_key(), request.api_version())
            .then(|| RewriteNodes { session: request.session.clone(), layer: self.layer.clone() });
        RewriteResponse::new(self.inner.call(request), rewrite)
    }
}

impl Rewrite for RewriteNodes {
    fn rewrite(self, response: &mut KafkaResponse) -> Result<(), FilterError> {
        let nodes = NodeRewriter::new(&self.session.cluster.nodes, &self.layer.advertised);
        apis::rewrite_response(response, &nodes, self.layer.cluster_id.as_deref())
    }
}
