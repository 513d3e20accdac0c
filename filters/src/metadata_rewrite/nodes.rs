//! Translation of backend broker ids and addresses into what clients see.

use franzgate_api::kafka_protocol::messages::BrokerId;
use franzgate_api::kafka_protocol::protocol::StrBytes;
use franzgate_api::topology::{AdvertisedAddress, BrokerAddress, BrokerNaming, NodeMap};
use tracing::warn;

/// Maps backend brokers of one cluster to virtual ids and gateway addresses.
#[derive(Debug)]
pub struct NodeRewriter<'a> {
    /// The cluster's node map.
    nodes: &'a NodeMap,
    /// The gateway's advertised host and port range.
    advertised: &'a AdvertisedAddress,
    /// The advertised host under port routing, built once (host routing names each broker differently).
    host: StrBytes,
}

impl<'a> NodeRewriter<'a> {
    /// A rewriter for `nodes`, advertising `advertised`.
    pub fn new(nodes: &'a NodeMap, advertised: &'a AdvertisedAddress) -> Self {
        Self { nodes, advertised, host: StrBytes::from_string(advertised.host.clone()) }
    }

    /// Records brokers described in a response (id, host, port) before their ids are translated.
    pub fn observe<'b>(&self, brokers: impl IntoIterator<Item = (i32, &'b str, i32)>) {
        self.nodes.observe(brokers.into_iter().map(|(id, host, port)| {
            let address = u16::try_from(port).ok().map(|port| BrokerAddress { host: host.to_string(), port });
            (id, address)
        }));
    }

    /// The virtual id of a backend id; -1 and other negative "no broker" markers pass unchanged. A backend id
    /// never described (a replica on a broker that is down, say) still gets a stable virtual id.
    pub fn id(&self, backend: BrokerId) -> BrokerId {
        if backend.0 < 0 {
            return backend;
        }
        if let Some(virtual_id) = self.nodes.current().virtual_id(backend.0) {
            return BrokerId(virtual_id);
        }
        let table = self.nodes.observe([(backend.0, None)]);
        BrokerId(table.virtual_id(backend.0).unwrap_or(-1))
    }

    /// Translates a list of ids in place.
    pub fn ids(&self, ids: &mut [BrokerId]) {
        for id in ids {
            *id = self.id(*id);
        }
    }

    /// The gateway address of a backend broker: (virtual id, host, port), or `None` when its virtual id falls
    /// outside the configured port range (then no gateway port can reach it and it must not be advertised).
    pub fn address(&self, backend: BrokerId) -> Option<(BrokerId, StrBytes, i32)> {
        let virtual_id = self.id(backend);
        let endpoint = match &self.advertised.naming {
            BrokerNaming::Port => self.advertised.port_of(virtual_id.0).map(|port| (self.host.clone(), port)),
            BrokerNaming::Host(_) => {
                self.advertised.endpoint_of(virtual_id.0).map(|(host, port)| (StrBytes::from_string(host), port))
            }
        };
        match endpoint {
            Some((host, port)) => Some((virtual_id, host, i32::from(port))),
            None => {
                warn!(
                    backend_id = backend.0,
                    virtual_id = virtual_id.0,
                    port_count = self.advertised.port_count,
                    "broker beyond the gateway's port range is hidden from clients; raise port_count"
                );
                None
            }
        }
    }
}
