//! Internal topics: the topics the gateway keeps for itself on the backend (the virtual-cluster state topic,
//! the chargeback flush topic) are out of every client's reach, whoever the principal is — passthrough user,
//! tenant or admin user.
//!
//! A request naming one of them (Produce, Fetch, ListOffsets, CreateTopics, DeleteTopics, DeleteRecords,
//! CreatePartitions, Describe/Alter/IncrementalAlterConfigs, OffsetForLeaderEpoch, DescribeProducers,
//! DescribeTopicPartitions, offset and transaction apis, ...) is answered by the gateway with
//! TOPIC_AUTHORIZATION_FAILED (29) on every topic of the request, as a broker refusing the whole request would,
//! and never forwarded. Only Metadata is split: the internal names are taken out of the request, the rest is
//! forwarded, and the answer lists each internal name with error 29; a listing of all topics (Metadata, or
//! DescribeTopicPartitions with no topic named) omits them.
//! Mixing an internal topic with others in any other request is not something a client does by accident, so
//! refusing the whole request costs nothing and keeps every response exactly as a broker shapes it.
//!
//! Names are found by the same walk over every request kind that prefixes tenant names
//! ([`crate::topic_prefix::prefix_request`]), so the two filters cannot disagree about where topics are. The
//! runtime places this filter right inside the topic-prefix filter: tenants' names arrive prefixed, so a tenant
//! reaches an internal topic only through an empty prefix, and is refused like everyone else.
//!
//! Requests that name topics by id (Fetch v13+, Produce v13, DeleteTopics v6+) are refused when the id is an
//! internal topic's: the runtime looks the ids up with its own client ([`FilterContext::internal_topic_ids`]),
//! and the filter also learns any it sees in a Metadata response.
//!
//! Api keys and versions this gateway cannot decode, and apis that name no topics, pass through untouched.
//! Every refusal is an audit line (`franzgate::audit`), at most [`AUDIT_LINES_PER_SECOND`] a second.

mod audit;
mod metadata;
mod scan;
#[cfg(test)]
mod tests;

use std::collections::HashSet;
use std::sync::Arc;
use std::task::{Context, Poll};

use franzgate_api::filter::{InternalTopicIds, parse_config};
use franzgate_api::kafka_protocol::messages::{ApiKey, RequestKind};
use franzgate_api::rewrite::RewriteResponse;
use franzgate_api::{
    BoxLayer, ConfigError, FilterContext, FilterError, FilterFactory, KafkaRequest, KafkaResponse, Session,
};
use futures::future::{BoxFuture, FutureExt, ready};
use serde::{Deserialize, Serialize};
use tower::{Layer, Service};
use uuid::Uuid;

use crate::topic_prefix::{Access, tenant_may_use};
pub use audit::AUDIT_LINES_PER_SECOND;
use audit::AuditLimiter;
use metadata::{HideInternal, HideListed, split_metadata};

/// The YAML type name.
pub const TYPE_NAME: &str = "internal-topics";

/// TOPIC_AUTHORIZATION_FAILED: what a broker answers for a topic the principal may not touch.
pub const TOPIC_AUTHORIZATION_FAILED: i16 = 29;

/// `internal-topics` settings (the runtime fills them from the state topic and the chargeback flush topic).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct InternalTopicsConfig {
    /// Backend topic names no client may touch through the gateway.
    pub topics: Vec<String>,
}

/// Builds [`InternalTopicsLayer`] from YAML.
#[derive(Debug)]
pub struct InternalTopicsFactory;

/// Keeps clients away from the gateway's own topics.
#[derive(Debug, Clone)]
pub struct InternalTopicsLayer {
    /// What every session shares.
    shared: Arc<Shared>,
}

/// The service of [`InternalTopicsLayer`].
#[derive(Debug)]
pub struct InternalTopics<S> {
    /// The wrapped service.
    inner: S,
    /// What every session shares.
    shared: Arc<Shared>,
}

/// The internal topics, their ids as learnt, and the audit line budget.
#[derive(Debug)]
struct Shared {
    /// Backend names of the internal topics.
    topics: HashSet<String>,
    /// The internal topics' ids.
    ids: KnownIds,
    /// Bounds the audit lines.
    audit: AuditLimiter,
}

/// Topic ids of internal topics: told by the runtime (its own client reads them), or learnt from responses.
#[derive(Debug, Default)]
pub(crate) struct KnownIds(Arc<InternalTopicIds>);

// === impl KnownIds ===

impl KnownIds {
    /// Records an internal topic's id.
    pub(crate) fn learn(&self, id: Uuid) {
        self.0.learn(id.as_u128());
    }

    /// Whether `id` is an internal topic's.
    pub(crate) fn contains(&self, id: &Uuid) -> bool {
        self.0.contains(id.as_u128())
    }
}

// === impl InternalTopicsFactory ===

impl FilterFactory for InternalTopicsFactory {
    fn type_name(&self) -> &'static str {
        TYPE_NAME
    }

    fn create(&self, config: serde_yaml::Value, ctx: &FilterContext) -> Result<BoxLayer, ConfigError> {
        let config: InternalTopicsConfig = parse_config(config)?;
        if config.topics.iter().any(|t| t.trim().is_empty()) {
            return Err(ConfigError::new("internal-topics: `topics` holds an empty name"));
        }
        Ok(BoxLayer::new(InternalTopicsLayer::with_ids(config, ctx.internal_topic_ids.clone())))
    }
}

// === impl InternalTopicsLayer ===

impl InternalTopicsLayer {
    /// A layer protecting `config.topics`, learning their ids from Metadata responses only.
    pub fn new(config: InternalTopicsConfig) -> Self {
        Self::with_ids(config, Arc::default())
    }

    /// A layer protecting `config.topics` that also reads (and adds to) `ids`: the internal topics' ids the
    /// runtime looks up with its own client.
    pub fn with_ids(config: InternalTopicsConfig, ids: Arc<InternalTopicIds>) -> Self {
        let topics = config.topics.into_iter().collect();
        let shared = Shared { topics, ids: KnownIds(ids), audit: AuditLimiter::default() };
        Self { shared: Arc::new(shared) }
    }
}

impl<S> Layer<S> for InternalTopicsLayer {
    type Service = InternalTopics<S>;

    fn layer(&self, inner: S) -> Self::Service {
        InternalTopics { inner, shared: self.shared.clone() }
    }
}

// === impl InternalTopics ===

impl<S> InternalTopics<S> {
    /// Wraps `inner`, protecting `config.topics`.
    pub fn new(inner: S, config: InternalTopicsConfig) -> Self {
        InternalTopicsLayer::new(config).layer(inner)
    }

    /// A layer protecting `config.topics`.
    pub fn layer(config: InternalTopicsConfig) -> InternalTopicsLayer {
        InternalTopicsLayer::new(config)
    }
}

impl<S> Service<KafkaRequest> for InternalTopics<S>
where
    S: Service<KafkaRequest, Response = KafkaResponse, Error = FilterError>,
    S::Future: Send + 'static,
{
    type Response = KafkaResponse;
    type Error = FilterError;
    type Future = BoxFuture<'static, Result<KafkaResponse, FilterError>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), FilterError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: KafkaRequest) -> Self::Future {
        let (key, version) = (request.api_key(), request.api_version());
        // Only apis that can name a topic are decoded; every other frame passes as it came.
        if !matches!(tenant_may_use(key, version), Access::Rewritten | Access::Checked) {
            return self.inner.call(request).boxed();
        }
        // A version this gateway cannot decode passes untouched (the api-versions filter keeps clients on
        // versions it decodes).
        let found = match request.body() {
            Ok(body) => scan::internal_names(body, version, &self.shared.topics, &self.shared.ids),
            Err(_) => return self.inner.call(request).boxed(),
        };
        if key == Some(ApiKey::Metadata) {
            return self.metadata(request, found);
        }
        if key == Some(ApiKey::DescribeTopicPartitions) {
            return self.describe_topic_partitions(request);
        }
        if found.is_empty() {
            return self.inner.call(request).boxed();
        }
        self.refuse(request, &found)
    }
}

impl<S> InternalTopics<S>
where
    S: Service<KafkaRequest, Response = KafkaResponse, Error = FilterError>,
    S::Future: Send + 'static,
{
    /// Metadata: the internal names are answered here with error 29, the rest is asked of the backend, and a
    /// listing of all topics loses the internal ones.
    fn metadata(
        &mut self,
        mut request: KafkaRequest,
        found: Vec<String>,
    ) -> BoxFuture<'static, Result<KafkaResponse, FilterError>> {
        let asked_ids = metadata::asked_ids(&mut request);
        if found.is_empty() {
            let hide = HideInternal::new(self.shared.clone(), Vec::new(), asked_ids);
            return RewriteResponse::new(self.inner.call(request), Some(hide)).boxed();
        }
        self.audit(&request, &found);
        match split_metadata(&mut request, &self.shared.topics) {
            // Nothing else asked for: the whole answer is the refusal.
            Ok(false) => ready(request.error_response(TOPIC_AUTHORIZATION_FAILED)).boxed(),
            Ok(true) => {
                let hide = HideInternal::new(self.shared.clone(), found, asked_ids);
                RewriteResponse::new(self.inner.call(request), Some(hide)).boxed()
            }
            Err(e) => ready(Err(e)).boxed(),
        }
    }

    /// DescribeTopicPartitions: refused when its topic list names an internal topic; otherwise forwarded, and a
    /// listing of all topics loses the internal ones.
    fn describe_topic_partitions(
        &mut self,
        mut request: KafkaRequest,
    ) -> BoxFuture<'static, Result<KafkaResponse, FilterError>> {
        let named = match request.body() {
            Ok(RequestKind::DescribeTopicPartitions(r)) => metadata::described_internal(r, &self.shared.topics),
            _ => Vec::new(),
        };
        if !named.is_empty() {
            return self.refuse(request, &named);
        }
        let hide = HideListed::new(self.shared.clone());
        RewriteResponse::new(self.inner.call(request), Some(hide)).boxed()
    }

    /// Answers the whole request with error 29 on every item, without forwarding it.
    fn refuse(
        &mut self,
        mut request: KafkaRequest,
        found: &[String],
    ) -> BoxFuture<'static, Result<KafkaResponse, FilterError>> {
        self.audit(&request, found);
        ready(request.error_response(TOPIC_AUTHORIZATION_FAILED)).boxed()
    }

    fn audit(&self, request: &KafkaRequest, found: &[String]) {
        let principal = principal_name(&request.session);
        self.shared.audit.refused(principal, request.api_key_raw(), request.api_version(), found);
    }
}

/// Who the session is, for the audit line.
fn principal_name(session: &Session) -> &str {
    let auth = &session.auth;
    auth.sasl_principal().or(auth.tls_principal()).map_or(franzgate_api::auth::ANONYMOUS, |p| p.name.as_str())
}
