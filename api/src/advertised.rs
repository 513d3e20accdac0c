//! The addresses clients are told to use for the gateway's virtual brokers.
//!
//! Two namings, as in Conduktor Gateway:
//! - **port routing**: one host, virtual broker n at `port_start + n`;
//! - **host routing (SNI)**: one TLS port; virtual broker n at the host name
//!   `<prefix><cluster id><n><separator><advertised host>` (e.g. `brokermain0-gateway.example.com`), the
//!   bootstrap at the advertised host itself. The gateway learns which broker a connection wants from the TLS
//!   server name (SNI) the client sends.

/// Where the gateway tells clients to connect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdvertisedAddress {
    /// The host clients use to reach the gateway (the bootstrap host under host routing).
    pub host: String,
    /// The first gateway port: virtual node 0 under port routing, the single port under host routing.
    pub port_start: u16,
    /// How many broker ports the gateway may open (port routing); how many virtual brokers it names (host).
    pub port_count: u16,
    /// How virtual brokers are told apart.
    pub naming: BrokerNaming,
}

/// How clients address one virtual broker.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum BrokerNaming {
    /// A port per broker on the advertised host.
    #[default]
    Port,
    /// A host name per broker on one TLS port.
    Host(SniNames),
}

/// The host-name pattern of host routing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SniNames {
    /// Starts every broker name (`broker`).
    pub prefix: String,
    /// Follows the prefix; stable across switches (the primary cluster's name by default).
    pub cluster_id: String,
    /// Between the node id and the advertised host (`-`).
    pub separator: String,
    /// The port advertised in metadata (the load balancer's, when one fronts the gateway).
    pub port: u16,
}

/// What a TLS server name asks for under host routing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SniTarget {
    /// The bootstrap host.
    Bootstrap,
    /// One virtual broker.
    Broker(i32),
    /// A name the gateway does not serve.
    Unknown,
}

// === impl AdvertisedAddress ===

impl AdvertisedAddress {
    /// Port routing on `host`, virtual node n at `port_start + n`.
    pub fn ports(host: impl Into<String>, port_start: u16, port_count: u16) -> Self {
        Self { host: host.into(), port_start, port_count, naming: BrokerNaming::Port }
    }

    /// The gateway port of a virtual node under port routing, if within the configured range.
    pub fn port_of(&self, virtual_id: i32) -> Option<u16> {
        let offset = u16::try_from(virtual_id).ok().filter(|o| *o < self.port_count)?;
        self.port_start.checked_add(offset)
    }

    /// The virtual node a gateway port stands for under port routing (none under host routing: there the
    /// one port serves every broker).
    pub fn virtual_id_of(&self, port: u16) -> Option<i32> {
        if self.naming != BrokerNaming::Port {
            return None;
        }
        let offset = port.checked_sub(self.port_start)?;
        (offset < self.port_count).then_some(i32::from(offset))
    }

    /// The host and port clients are told for a virtual node, or `None` when it is beyond the configured range.
    pub fn endpoint_of(&self, virtual_id: i32) -> Option<(String, u16)> {
        match &self.naming {
            BrokerNaming::Port => self.port_of(virtual_id).map(|port| (self.host.clone(), port)),
            BrokerNaming::Host(names) => {
                let in_range = u16::try_from(virtual_id).is_ok_and(|id| id < self.port_count);
                in_range.then(|| (names.broker_host(virtual_id, &self.host), names.port))
            }
        }
    }

    /// The bootstrap endpoint clients are given (the advertised host, at the first or the SNI port).
    pub fn bootstrap_endpoint(&self) -> (String, u16) {
        match &self.naming {
            BrokerNaming::Port => (self.host.clone(), self.port_start),
            BrokerNaming::Host(names) => (self.host.clone(), names.port),
        }
    }

    /// What a TLS server name asks for (always `Unknown` under port routing).
    pub fn sni_target(&self, server_name: &str) -> SniTarget {
        let BrokerNaming::Host(names) = &self.naming else {
            return SniTarget::Unknown;
        };
        let name = server_name.trim_end_matches('.').to_ascii_lowercase();
        if name == self.host.to_ascii_lowercase() {
            return SniTarget::Bootstrap;
        }
        let suffix = format!("{}{}", names.separator, self.host).to_ascii_lowercase();
        let head = format!("{}{}", names.prefix, names.cluster_id).to_ascii_lowercase();
        let digits = name.strip_suffix(&suffix).and_then(|rest| rest.strip_prefix(&head));
        match digits {
            Some(d) if !d.is_empty() && d.len() <= 5 && d.bytes().all(|b| b.is_ascii_digit()) => {
                match d.parse::<u16>() {
                    Ok(id) if id < self.port_count => SniTarget::Broker(i32::from(id)),
                    _ => SniTarget::Unknown,
                }
            }
            _ => SniTarget::Unknown,
        }
    }
}

// === impl SniNames ===

impl SniNames {
    /// The host name of a virtual broker.
    pub fn broker_host(&self, virtual_id: i32, advertised_host: &str) -> String {
        format!("{}{}{virtual_id}{}{advertised_host}", self.prefix, self.cluster_id, self.separator)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advertised_ports_map_both_ways_within_the_range() {
        let adv = AdvertisedAddress::ports("gw", 6969, 3);
        assert_eq!(adv.port_of(2), Some(6971));
        assert_eq!(adv.port_of(3), None);
        assert_eq!(adv.port_of(-1), None);
        assert_eq!(adv.virtual_id_of(6970), Some(1));
        assert_eq!(adv.virtual_id_of(6968), None);
        assert_eq!(adv.virtual_id_of(6972), None);
        assert_eq!(adv.endpoint_of(1), Some(("gw".to_string(), 6970)));
    }

    fn sni() -> AdvertisedAddress {
        let names = SniNames { prefix: "broker".into(), cluster_id: "main".into(), separator: "-".into(), port: 443 };
        AdvertisedAddress { naming: BrokerNaming::Host(names), ..AdvertisedAddress::ports("gw.example", 9092, 8) }
    }

    #[test]
    fn host_routing_names_each_broker_and_reads_the_names_back() {
        let adv = sni();
        assert_eq!(adv.endpoint_of(2), Some(("brokermain2-gw.example".to_string(), 443)));
        assert_eq!(adv.bootstrap_endpoint(), ("gw.example".to_string(), 443));
        assert_eq!(adv.sni_target("brokermain2-gw.example"), SniTarget::Broker(2));
        assert_eq!(adv.sni_target("BrokerMain7-GW.example."), SniTarget::Broker(7));
        assert_eq!(adv.sni_target("gw.example"), SniTarget::Bootstrap);
        assert_eq!(adv.virtual_id_of(9092), None, "the one port stands for no broker in particular");
    }

    #[test]
    fn unknown_server_names_are_recognised_as_such() {
        let adv = sni();
        for name in [
            "brokermain8-gw.example",
            "brokermain-gw.example",
            "brokermainx-gw.example",
            "brokerother1-gw.example",
            "brokermain1-evil.example",
            "brokermain99999999999-gw.example",
            "elsewhere",
        ] {
            assert_eq!(adv.sni_target(name), SniTarget::Unknown, "{name}");
        }
        assert_eq!(AdvertisedAddress::ports("gw", 1, 1).sni_target("gw"), SniTarget::Unknown);
    }
}
