//! Topic prefix: each virtual cluster (tenant) sees only its own topics, consumer groups and transactional
//! ids, stored on the backend under its prefix.
//!
//! For a session whose principal belongs to virtual cluster V (a service-account token's `vcluster` claim),
//! every topic name, group id and transactional id in a request gets V's prefix, and loses it in the response.
//! Listings (Metadata for all topics, ListGroups, ListTransactions, DescribeTopicPartitions) keep only V's
//! names, so a tenant never sees another's; a tenant naming another tenant's backend topic in full gets it
//! prefixed once more, i.e. a topic of its own that does not exist. A topic name longer than Kafka's 249
//! characters once prefixed is refused with INVALID_TOPIC_EXCEPTION. Apis that are cluster-wide (ACLs,
//! quotas, replica placement, SCRAM users, broker-to-broker) are refused with CLUSTER_AUTHORIZATION_FAILED.
//! Fetch v13+ names topics by id only; ids come from the filtered metadata, so they keep working untouched.
//!
//! Principals without a virtual cluster pass through unprefixed (the `passthrough` virtual cluster), unless
//! GATEWAY_FEATURE_FLAGS_MANDATORY_VCLUSTER is set, in which case their connections are closed. Every request
//! of a tenant session checks that the account was not revoked since login (a snapshot read): a revoked
//! account's connections are closed, and its tokens no longer log in (see the SASL filter).
//!
//! The runtime places this filter right after SASL termination when the gateway authenticates clients.

mod names;
mod requests;
mod responses;
#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::task::{Context, Poll};

use franzgate_api::filter::parse_config;
use franzgate_api::kafka_protocol::messages::ApiKey;
use franzgate_api::rewrite::{Rewrite, RewriteResponse};
use franzgate_api::vcluster::VirtualClusters;
use franzgate_api::{
    BoxLayer, ConfigError, FilterContext, FilterError, FilterFactory, KafkaRequest, KafkaResponse, Session,
};
use futures::future::{BoxFuture, FutureExt, ready};
use serde::Deserialize;
use tower::{Layer, Service};
use tracing::{debug, warn};

pub use names::{NameVisitor, Prefix, Refusal, TopicIds};
pub use requests::{Access, prefix_request, tenant_may_use};

/// The YAML type name.
pub const TYPE_NAME: &str = "topic-prefix";

/// Kafka error codes this filter answers with.
const INVALID_TOPIC_EXCEPTION: i16 = 17;
const CLUSTER_AUTHORIZATION_FAILED: i16 = 31;
const UNKNOWN_TOPIC_ID: i16 = 100;

/// No settings: prefixes come from the virtual clusters (admin API, state topic).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TopicPrefixConfig {}

/// Builds [`TopicPrefixLayer`] from YAML.
#[derive(Debug)]
pub struct TopicPrefixFactory;

/// Confines tenant sessions to their virtual cluster's names.
#[derive(Debug, Clone)]
pub struct TopicPrefixLayer {
    /// The virtual clusters and their accounts.
    vclusters: Arc<VirtualClusters>,
    /// Topic ids learnt from tenants' metadata, shared by every session.
    ids: Arc<TopicIds>,
}

/// The service of [`TopicPrefixLayer`].
#[derive(Debug)]
pub struct TopicPrefix<S> {
    /// The wrapped service.
    inner: S,
    /// The virtual clusters and their accounts.
    vclusters: Arc<VirtualClusters>,
    /// Topic ids learnt from tenants' metadata.
    ids: Arc<TopicIds>,
}

/// The response rewrite of one tenant request.
#[derive(Debug)]
pub struct StripPrefix {
    /// The tenant's prefix.
    prefix: Prefix,
    /// Where topic ids seen in the response are recorded.
    ids: Arc<TopicIds>,
}

/// Who a request is from, as far as names go.
enum Tenant {
    /// No virtual cluster: names pass as they are.
    Passthrough,
    /// A virtual cluster with this prefix.
    Prefixed(Prefix),
}

// === impl TopicPrefixFactory ===

impl FilterFactory for TopicPrefixFactory {
    fn type_name(&self) -> &'static str {
        TYPE_NAME
    }

    fn create(&self, config: serde_yaml::Value, ctx: &FilterContext) -> Result<BoxLayer, ConfigError> {
        let _: TopicPrefixConfig = parse_config(config)?;
        Ok(BoxLayer::new(TopicPrefixLayer::new(ctx.vclusters.clone())))
    }
}

// === impl TopicPrefixLayer ===

impl TopicPrefixLayer {
    /// A layer reading tenants from `vclusters`.
    pub fn new(vclusters: Arc<VirtualClusters>) -> Self {
        Self { vclusters, ids: Arc::default() }
    }
}

impl<S> Layer<S> for TopicPrefixLayer {
    type Service = TopicPrefix<S>;

    fn layer(&self, inner: S) -> Self::Service {
        TopicPrefix { inner, vclusters: self.vclusters.clone(), ids: self.ids.clone() }
    }
}

// === impl TopicPrefix ===

impl<S> TopicPrefix<S> {
    /// The session's tenant, or why the session may not continue.
    fn tenant(&self, session: &Session) -> Result<Tenant, String> {
        let auth = &session.auth;
        let principal = auth.sasl_principal().or(auth.tls_principal());
        match principal.and_then(|p| p.vcluster.as_deref().map(|vc| (p, vc))) {
            Some((principal, vcluster)) => self
                .vclusters
                .check_token(vcluster, &principal.name, principal.generation)
                .map(|cluster| Tenant::Prefixed(Prefix::new(&cluster.prefix)))
                .map_err(|e| e.to_string()),
            None => {
                let name = principal.map_or(franzgate_api::auth::ANONYMOUS, |p| p.name.as_str());
                self.vclusters.admit_passthrough(name).map(|()| Tenant::Passthrough).map_err(|e| e.to_string())
            }
        }
    }
}

impl<S> Service<KafkaRequest> for TopicPrefix<S>
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
        let key = request.api_key();
        let tenant = match self.tenant(&request.session) {
            Ok(tenant) => tenant,
            // Before authentication there is no principal yet; ApiVersions is all a client may send then.
            Err(_) if key == Some(ApiKey::ApiVersions) => Tenant::Passthrough,
            Err(reason) => {
                warn!(%reason, "closing the session: its principal may no longer use the gateway");
                return ready(Err(FilterError::Refused(reason))).boxed();
            }
        };
        let Tenant::Prefixed(prefix) = tenant else {
            return self.inner.call(request).boxed();
        };
        match tenant_may_use(key, request.api_version()) {
            Access::Untouched => self.inner.call(request).boxed(),
            Access::Refused => ready(refuse(&mut request, Refusal::NotAllowed, &prefix)).boxed(),
            access @ (Access::Rewritten | Access::Checked) => {
                let version = request.api_version();
                let ids = &self.ids;
                let rewritten = request.body_mut().map(|body| prefix_request(body, version, &prefix, ids));
                let strip = matches!(access, Access::Rewritten)
                    .then(|| StripPrefix { prefix: prefix.clone(), ids: ids.clone() });
                match rewritten {
                    Ok(Ok(())) => RewriteResponse::new(self.inner.call(request), strip).boxed(),
                    Ok(Err(refusal)) => ready(refuse(&mut request, refusal, &prefix)).boxed(),
                    Err(e) => ready(Err(e)).boxed(),
                }
            }
        }
    }
}

/// Answers a tenant's request with the error a broker would give, without forwarding it.
fn refuse(request: &mut KafkaRequest, refusal: Refusal, prefix: &Prefix) -> Result<KafkaResponse, FilterError> {
    let code = match &refusal {
        Refusal::TopicTooLong { name, prefixed_len } => {
            debug!(topic = %name, prefixed_len, "refusing a topic name too long once prefixed");
            INVALID_TOPIC_EXCEPTION
        }
        Refusal::NotAllowed => {
            debug!(api = request.api_key_raw(), "refusing a cluster-wide api to a tenant");
            CLUSTER_AUTHORIZATION_FAILED
        }
        Refusal::UnknownTopicId => {
            debug!(api = request.api_key_raw(), "refusing a topic id that is not the tenant's (or not known yet)");
            UNKNOWN_TOPIC_ID
        }
    };
    match request.api_key() {
        // Built from the request, partly prefixed already: the tenant sees its own names in the refusal.
        Some(_) => {
            let mut response = request.error_response(code)?;
            if response.has_body() {
                responses::strip_response(response.body_mut()?, prefix, &TopicIds::default());
            }
            Ok(response)
        }
        // A body this gateway cannot decode cannot carry an error: close instead.
        None => Err(FilterError::Refused(format!("api key {} is not available to tenants", request.api_key_raw()))),
    }
}

impl Rewrite for StripPrefix {
    fn rewrite(self, response: &mut KafkaResponse) -> Result<(), FilterError> {
        responses::strip_response(response.body_mut()?, &self.prefix, &self.ids);
        Ok(())
    }
}
