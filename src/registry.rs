//! The filter registry: type names to factories, and the chain built from the YAML list.

use std::collections::BTreeMap;
use std::sync::Arc;

use franzgate_api::{BoxKafkaService, BoxLayer, FilterContext, FilterFactory};
use tower::Layer;

use crate::config::{ConfigFileError, FilterSpec};
use crate::metrics::GatewayMetrics;

/// Times one filter (and everything inside it) per request.
struct TimedFilter {
    /// The filter's service.
    inner: BoxKafkaService,
    /// The filter's position in the chain.
    index: usize,
    /// Where the time goes.
    metrics: Arc<GatewayMetrics>,
}

impl tower::Service<franzgate_api::KafkaRequest> for TimedFilter {
    type Response = franzgate_api::KafkaResponse;
    type Error = franzgate_api::FilterError;
    type Future = futures::future::BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: franzgate_api::KafkaRequest) -> Self::Future {
        use futures::FutureExt;
        let (started, index, metrics) = (std::time::Instant::now(), self.index, self.metrics.clone());
        self.inner.call(request).inspect(move |_| metrics.filter_done(index, started.elapsed())).boxed()
    }
}

/// Filters every chain needs: if the YAML does not place them, they are added innermost in this order, so
/// user filters see what clients see (gateway addresses, virtual node ids, versions the gateway can decode).
/// The cluster selector and the topic-id translation are added only when a failover cluster is configured.
pub const CORE_FILTERS: &[&str] = &[
    franzgate_filters::cluster_selector::TYPE_NAME,
    franzgate_filters::topic_ids::TYPE_NAME,
    franzgate_filters::metadata_rewrite::TYPE_NAME,
    franzgate_filters::api_versions::TYPE_NAME,
    franzgate_filters::port_routing::TYPE_NAME,
];

/// Filter factories by type name.
#[derive(Clone)]
pub struct FilterRegistry {
    /// Factories by YAML type name.
    factories: BTreeMap<&'static str, Arc<dyn FilterFactory>>,
}

impl std::fmt::Debug for FilterRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.factories.keys()).finish()
    }
}

/// The built chain: layers outermost first, with the type names they were built from.
#[derive(Clone)]
pub struct FilterChain {
    /// Type name and layer, outermost first.
    layers: Vec<(String, BoxLayer)>,
}

// === impl FilterRegistry ===

impl FilterRegistry {
    /// A registry holding franzgate's built-in filters.
    pub fn with_builtins() -> Self {
        let mut registry = Self { factories: BTreeMap::new() };
        for factory in franzgate_filters::builtin_factories() {
            registry.factories.insert(factory.type_name(), factory);
        }
        registry
    }

    /// Adds a filter type; a program embedding franzgate registers its own filters this way.
    pub fn register(&mut self, factory: impl FilterFactory) -> Result<(), String> {
        let name = factory.type_name();
        if self.factories.contains_key(name) {
            return Err(format!("a filter type named `{name}` is already registered"));
        }
        self.factories.insert(name, Arc::new(factory));
        Ok(())
    }

    /// The registered type names.
    pub fn type_names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.factories.keys().copied()
    }

    /// Builds the chain from the YAML list; `source` names the file in errors.
    pub fn build_chain(
        &self,
        specs: &[FilterSpec],
        ctx: &FilterContext,
        source: &str,
    ) -> Result<FilterChain, ConfigFileError> {
        let mut specs = specs.to_vec();
        // With a single cluster there is nothing to switch, so no epoch to check on every request.
        let switchable = ctx.selector.clusters().len() > 1;
        for core in CORE_FILTERS {
            let only_with_failover =
                [franzgate_filters::cluster_selector::TYPE_NAME, franzgate_filters::topic_ids::TYPE_NAME];
            if only_with_failover.contains(core) && !switchable {
                continue;
            }
            if !specs.iter().any(|s| s.kind == *core) {
                specs.push(FilterSpec { kind: (*core).to_string(), config: serde_yaml::Value::Null });
            }
        }
        let mut layers = Vec::with_capacity(specs.len());
        for (index, spec) in specs.iter().enumerate() {
            let factory = self.factories.get(spec.kind.as_str()).ok_or_else(|| {
                let known: Vec<_> = self.type_names().collect();
                ConfigFileError::new(
                    source,
                    format!("filters[{index}].type: unknown filter type `{}` (known: {})", spec.kind, known.join(", ")),
                )
            })?;
            let layer = factory.create(spec.config.clone(), ctx).map_err(|e| {
                ConfigFileError::new(source, format!("filters[{index}] (type `{}`).config: {e}", spec.kind))
            })?;
            layers.push((spec.kind.clone(), layer));
        }
        Ok(FilterChain { layers })
    }
}

// === impl FilterChain ===

impl FilterChain {
    /// Wraps `inner` (the upstream service) in every filter, the first listed outermost.
    pub fn apply(&self, inner: BoxKafkaService) -> BoxKafkaService {
        self.layers.iter().rev().fold(inner, |service, (_, layer)| layer.layer(service))
    }

    /// [`Self::apply`], timing every filter into `metrics` (filter index = position, outermost 0). Each
    /// filter's time runs from its `call` to its response, so it includes the filters inside it.
    pub fn apply_timed(&self, inner: BoxKafkaService, metrics: &Arc<GatewayMetrics>) -> BoxKafkaService {
        self.layers.iter().enumerate().rev().fold(inner, |service, (index, (_, layer))| {
            BoxKafkaService::new(TimedFilter { inner: layer.layer(service), index, metrics: metrics.clone() })
        })
    }

    /// The filter type names, outermost first.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.layers.iter().map(|(name, _)| name.as_str())
    }
}
