//! Port-per-broker routing: the gateway port a client connected to names the virtual broker it talks to.
//!
//! Port `port_start + n` stands for virtual node `n` of the session's cluster. While the gateway does not yet
//! know that node (or the cluster has fewer brokers), the request goes to any bootstrap broker: every port
//! answers bootstrap traffic.

use std::sync::Arc;
use std::task::{Context, Poll};

use franzgate_api::filter::parse_config;
use franzgate_api::topology::AdvertisedAddress;
use franzgate_api::{
    BoxLayer, ConfigError, FilterContext, FilterError, FilterFactory, KafkaRequest, KafkaResponse, Route, Session,
};
use serde::Deserialize;
use tower::{Layer, Service};

/// The YAML type name.
pub const TYPE_NAME: &str = "port-routing";

/// No settings: the port range comes from the gateway's `port_start` and `port_count`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PortRoutingConfig {}

/// Builds [`PortRoutingLayer`] from YAML.
#[derive(Debug)]
pub struct PortRoutingFactory;

/// Routes each request to the broker its gateway port stands for.
#[derive(Debug, Clone)]
pub struct PortRoutingLayer {
    /// The gateway's advertised host and port range.
    advertised: Arc<AdvertisedAddress>,
}

/// The service of [`PortRoutingLayer`].
#[derive(Debug, Clone)]
pub struct PortRouting<S> {
    /// The wrapped service.
    inner: S,
    /// The gateway's advertised host and port range.
    advertised: Arc<AdvertisedAddress>,
}

// === impl PortRoutingFactory ===

impl FilterFactory for PortRoutingFactory {
    fn type_name(&self) -> &'static str {
        TYPE_NAME
    }

    fn create(&self, config: serde_yaml::Value, ctx: &FilterContext) -> Result<BoxLayer, ConfigError> {
        let _: PortRoutingConfig = parse_config(config)?;
        Ok(BoxLayer::new(PortRoutingLayer::new(ctx.advertised.clone())))
    }
}

// === impl PortRoutingLayer ===

impl PortRoutingLayer {
    /// Routes by port within `advertised`'s range.
    pub fn new(advertised: Arc<AdvertisedAddress>) -> Self {
        Self { advertised }
    }
}

impl<S> Layer<S> for PortRoutingLayer {
    type Service = PortRouting<S>;

    fn layer(&self, inner: S) -> Self::Service {
        PortRouting { inner, advertised: self.advertised.clone() }
    }
}

// === impl PortRouting ===

/// The route for a request arriving on `session`.
pub fn route_for(session: &Session, advertised: &AdvertisedAddress) -> Route {
    let Some(virtual_id) = advertised.virtual_id_of(session.listener_port) else {
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
        request.route = route_for(&request.session, &self.advertised);
        self.inner.call(request)
    }
}
