//! Broker routing: the virtual broker a connection addresses picks the backend broker its requests go to.
//!
//! The runtime records that virtual broker on the session when it accepts the connection: from the gateway
//! port under port routing (port `port_start + n` stands for virtual node `n`), from the TLS server name under
//! host routing (SNI). While the gateway does not yet know that node (or the cluster has fewer brokers), and
//! for bootstrap connections, the request goes to any bootstrap broker. (The YAML name stays `port-routing`,
//! the name configurations already use.)

use std::task::{Context, Poll};

use franzgate_api::filter::parse_config;
use franzgate_api::{
    BoxLayer, ConfigError, FilterContext, FilterError, FilterFactory, KafkaRequest, KafkaResponse, Route, Session,
};
use serde::Deserialize;
use tower::{Layer, Service};

/// The YAML type name.
pub const TYPE_NAME: &str = "port-routing";

/// No settings: the virtual broker comes from the session.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PortRoutingConfig {}

/// Builds [`PortRoutingLayer`] from YAML.
#[derive(Debug)]
pub struct PortRoutingFactory;

/// Routes each request to the broker its connection addresses.
#[derive(Debug, Clone, Default)]
pub struct PortRoutingLayer;

/// The service of [`PortRoutingLayer`].
#[derive(Debug, Clone)]
pub struct PortRouting<S> {
    /// The wrapped service.
    inner: S,
}

// === impl PortRoutingFactory ===

impl FilterFactory for PortRoutingFactory {
    fn type_name(&self) -> &'static str {
        TYPE_NAME
    }

    fn create(&self, config: serde_yaml::Value, _ctx: &FilterContext) -> Result<BoxLayer, ConfigError> {
        let _: PortRoutingConfig = parse_config(config)?;
        Ok(BoxLayer::new(PortRoutingLayer))
    }
}

// === impl PortRoutingLayer ===

impl PortRoutingLayer {
    /// The routing layer.
    pub fn new() -> Self {
        Self
    }
}

impl<S> Layer<S> for PortRoutingLayer {
    type Service = PortRouting<S>;

    fn layer(&self, inner: S) -> Self::Service {
        PortRouting { inner }
    }
}

// === impl PortRouting ===

/// The route for a request arriving on `session`.
pub fn route_for(session: &Session) -> Route {
    let Some(virtual_id) = session.virtual_node else {
        return Route::Bootstrap;
    };
    let table = session.cluster.nodes.current();
    match table.backend(virtual_id) {
        Some(node) => match &node.address {
            Some(address) => Route::Broker { node_id: node.backend_id, address: address.clone() },
            None => Route::Bootstrap,
        },
        None => Route::Bootstrap,
    }
}

impl<S> Service<KafkaRequest> for PortRouting<S>
where
    S: Service<KafkaRequest, Response = KafkaResponse, Error = FilterError>,
{
    type Response = KafkaResponse;
    type Error = FilterError;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), FilterError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: KafkaRequest) -> Self::Future {
        request.route = route_for(&request.session);
        self.inner.call(request)
    }
}
