//! # franzgate-filters — the built-in filters
//!
//! Each filter is a config struct, a factory registered under a type name, and a tower `Layer`. They depend on
//! `franzgate-api` only, never on the runtime, so they are written exactly as a user's own filter would be.
//!
//! ## Layout
//! - [`cluster_selector`]: requests of sessions bound before a switch never reach the old cluster.
//! - [`topic_ids`]: one topic id per name whichever cluster a client reaches (added with a failover).
//! - [`port_routing`]: picks the backend broker from the gateway port the client connected to.
//! - [`metadata_rewrite`]: clients only ever see gateway addresses and virtual node ids.
//! - [`api_versions`]: advertises only versions the gateway can decode.
//! - [`chargeback`]: bytes, batches and records produced and consumed per cluster, principal, client, topic.
//! - [`sasl`]: clients authenticate to the gateway (PLAIN, service-account tokens, SCRAM); nothing reaches the
//!   backend before they have.
//! - [`topic_prefix`]: virtual clusters — each tenant sees only its own topics, groups and transactional ids.
//! - [`internal_topics`]: the gateway's own topics (state, chargeback flush) are out of every client's reach.
#![forbid(unsafe_code)]
#![deny(rust_2018_idioms)]
#![warn(missing_docs)]

use std::sync::Arc;

use franzgate_api::FilterFactory;

pub mod api_versions;
pub mod chargeback;
pub mod cluster_selector;
pub mod internal_topics;
pub mod metadata_rewrite;
pub mod port_routing;
pub mod sasl;
pub mod topic_ids;
pub mod topic_prefix;

/// Locks a filter's inner service shared with the futures that send requests of the gateway's own (a poisoned
/// lock still holds a usable service).
pub(crate) fn lock<S>(inner: &std::sync::Mutex<S>) -> std::sync::MutexGuard<'_, S> {
    inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Seconds since the Unix epoch (0 if the clock is before it): token expiry and usage windows.
pub(crate) fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// Every built-in filter factory, for the runtime's registry.
pub fn builtin_factories() -> Vec<Arc<dyn FilterFactory>> {
    vec![
        Arc::new(cluster_selector::ClusterSelectorFactory),
        Arc::new(port_routing::PortRoutingFactory),
        Arc::new(metadata_rewrite::MetadataRewriteFactory),
        Arc::new(api_versions::ApiVersionsFactory),
        Arc::new(sasl::SaslFactory),
        Arc::new(chargeback::ChargebackFactory),
        Arc::new(topic_prefix::TopicPrefixFactory),
        Arc::new(internal_topics::InternalTopicsFactory),
        Arc::new(topic_ids::TopicIdsFactory),
    ]
}
