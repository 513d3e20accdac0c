//! The backend clusters, the address clients are told to use, and the virtual <-> backend node map.
//!
//! Clients never see backend broker ids: each backend broker gets a *virtual node id*, assigned per cluster in
//! ascending backend-id order as brokers are first seen (0, 1, 2, ...). Two clusters with different broker ids
//! therefore present the same virtual ids, which is what lets a switch go unnoticed. The gateway port of a
//! virtual node is `port_start + virtual id`.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::{Arc, Mutex};

use arc_swap::{ArcSwap, ArcSwapOption};
use tokio::sync::watch;

/// A host and port.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BrokerAddress {
    /// Host name or IP literal.
    pub host: String,
    /// TCP port.
    pub port: u16,
}

impl fmt::Display for BrokerAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

impl BrokerAddress {
    /// Parses `host:port` (or `[v6]:port`), as written in `bootstrap.servers`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let (host, port) = text.rsplit_once(':').ok_or_else(|| format!("`{text}` is not host:port"))?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() {
            return Err(format!("`{text}` has no host"));
        }
        let port = port.parse::<u16>().map_err(|_| format!("`{text}` has no valid port"))?;
        Ok(Self { host: host.to_string(), port })
    }
}

pub use crate::advertised::{AdvertisedAddress, BrokerNaming, SniNames, SniTarget};

/// A backend cluster's role, from the `gateway.roles` property.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ClusterRole {
    /// The primary cluster clients use unless switched.
    #[default]
    Main,
    /// A cluster traffic can be switched to (`gateway.roles: failover`).
    Failover,
}

/// One backend Kafka cluster.
#[derive(Debug)]
pub struct BackendCluster {
    /// The cluster's name in the config (`main`, `failover`, ...).
    pub name: String,
    /// Primary or failover.
    pub role: ClusterRole,
    /// Where a session goes before it knows which broker it stands for.
    pub bootstrap_servers: Vec<BrokerAddress>,
    /// The virtual <-> backend node map of this cluster.
    pub nodes: NodeMap,
    /// The api versions the cluster's brokers last advertised to the gateway's own connections: what the
    /// gateway may promise a client before it is allowed to reach the backend (pre-authentication).
    pub api_versions: ArcSwapOption<Vec<ApiVersionRange>>,
}

/// One api key's supported version range, as a broker advertises it in ApiVersions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApiVersionRange {
    /// The api key.
    pub api_key: i16,
    /// The oldest version supported.
    pub min: i16,
    /// The newest version supported.
    pub max: i16,
}

impl BackendCluster {
    /// A cluster with an empty node map.
    pub fn new(name: impl Into<String>, bootstrap_servers: Vec<BrokerAddress>) -> Self {
        Self {
            name: name.into(),
            role: ClusterRole::Main,
            bootstrap_servers,
            nodes: NodeMap::default(),
            api_versions: ArcSwapOption::empty(),
        }
    }

    /// Sets the role.
    pub fn with_role(mut self, role: ClusterRole) -> Self {
        self.role = role;
        self
    }
}

/// A backend broker as last seen in metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendNode {
    /// The broker's id in its cluster.
    pub backend_id: i32,
    /// Where it listens; `None` when it was named (as a replica, say) but never described.
    pub address: Option<BrokerAddress>,
}

/// An immutable snapshot of one cluster's node map.
#[derive(Debug, Default, Clone)]
pub struct NodeTable {
    /// Virtual id to backend broker.
    by_virtual: BTreeMap<i32, BackendNode>,
    /// Backend id to virtual id.
    by_backend: HashMap<i32, i32>,
}

impl NodeTable {
    /// The backend broker standing behind a virtual id.
    pub fn backend(&self, virtual_id: i32) -> Option<&BackendNode> {
        self.by_virtual.get(&virtual_id)
    }

    /// The virtual id of a backend broker.
    pub fn virtual_id(&self, backend_id: i32) -> Option<i32> {
        self.by_backend.get(&backend_id).copied()
    }

    /// Number of virtual ids assigned.
    pub fn len(&self) -> usize {
        self.by_virtual.len()
    }

    /// True before any broker was seen.
    pub fn is_empty(&self) -> bool {
        self.by_virtual.is_empty()
    }
}

/// The virtual <-> backend node map of one cluster. Reads are lock-free snapshots (every request reads it);
/// writes are rare (a broker first seen or moved) and copy the table.
#[derive(Debug)]
pub struct NodeMap {
    /// The current snapshot, swapped whole on every change.
    table: ArcSwap<NodeTable>,
    /// Serialises writers so concurrent updates do not lose each other's brokers.
    write: Mutex<()>,
    /// The number of virtual ids assigned so far; the listener manager opens ports as it grows.
    assigned: watch::Sender<usize>,
}

impl Default for NodeMap {
    fn default() -> Self {
        Self {
            table: ArcSwap::from_pointee(NodeTable::default()),
            write: Mutex::new(()),
            assigned: watch::Sender::new(0),
        }
    }
}

impl NodeMap {
    /// The current snapshot, owned (for holding across awaits or returning).
    pub fn snapshot(&self) -> Arc<NodeTable> {
        self.table.load_full()
    }

    /// The current snapshot, borrowed: no reference-count traffic, for per-request reads.
    pub fn current(&self) -> arc_swap::Guard<Arc<NodeTable>> {
        self.table.load()
    }

    /// Watches the number of virtual ids assigned.
    pub fn watch_assigned(&self) -> watch::Receiver<usize> {
        self.assigned.subscribe()
    }

    /// Records brokers seen in metadata (backend id and, when described, address). New ids get the next
    /// virtual ids in ascending backend-id order; known ids keep theirs and take a new address if they moved.
    /// Returns the snapshot after the update.
    pub fn observe<I>(&self, brokers: I) -> Arc<NodeTable>
    where
        I: IntoIterator<Item = (i32, Option<BrokerAddress>)>,
    {
        let mut seen: Vec<(i32, Option<BrokerAddress>)> = brokers.into_iter().filter(|(id, _)| *id >= 0).collect();
        let current = self.table.load();
        let unchanged = seen.iter().all(|(id, addr)| match current.virtual_id(*id).and_then(|v| current.backend(v)) {
            Some(node) => addr.is_none() || node.address == *addr,
            None => false,
        });
        if unchanged {
            return self.table.load_full();
        }
        // Poisoning only means another writer panicked mid-update; the table itself is always consistent.
        let _guard = self.write.lock().unwrap_or_else(|p| p.into_inner());
        let mut table = NodeTable::clone(&self.table.load());
        seen.sort_by_key(|(id, _)| *id);
        for (backend_id, address) in seen {
            match table.by_backend.get(&backend_id) {
                Some(virtual_id) => {
                    if let (Some(node), Some(address)) = (table.by_virtual.get_mut(virtual_id), address) {
                        node.address = Some(address);
                    }
                }
                None => {
                    let virtual_id = table.by_virtual.keys().next_back().map_or(0, |last| last + 1);
                    table.by_virtual.insert(virtual_id, BackendNode { backend_id, address });
                    table.by_backend.insert(backend_id, virtual_id);
                }
            }
        }
        let count = table.len();
        let table = Arc::new(table);
        self.table.store(table.clone());
        self.assigned.send_replace(count);
        table
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(port: u16) -> Option<BrokerAddress> {
        Some(BrokerAddress { host: "b".into(), port })
    }

    #[test]
    fn virtual_ids_follow_backend_id_order_and_stay_stable() {
        let map = NodeMap::default();
        map.observe([(7, addr(7)), (3, addr(3)), (5, addr(5))]);
        let t = map.snapshot();
        assert_eq!((t.virtual_id(3), t.virtual_id(5), t.virtual_id(7)), (Some(0), Some(1), Some(2)));
        // A broker with a lower id appearing later takes the next id, never renumbering the others.
        map.observe([(1, addr(1)), (3, addr(3))]);
        let t = map.snapshot();
        assert_eq!((t.virtual_id(1), t.virtual_id(3)), (Some(3), Some(0)));
        assert_eq!(*map.watch_assigned().borrow(), 4);
    }

    #[test]
    fn a_moved_broker_keeps_its_virtual_id() {
        let map = NodeMap::default();
        map.observe([(1, addr(9000))]);
        map.observe([(1, addr(9001))]);
        let t = map.snapshot();
        assert_eq!(t.virtual_id(1), Some(0));
        assert_eq!(t.backend(0).and_then(|n| n.address.clone()), addr(9001));
    }

    #[test]
    fn broker_addresses_parse_and_refuse_garbage() {
        assert_eq!(BrokerAddress::parse(" h:1 ").map(|a| a.to_string()), Ok("h:1".into()));
        assert_eq!(BrokerAddress::parse("[::1]:9092").map(|a| a.host), Ok("::1".into()));
        assert!(BrokerAddress::parse("nohost").is_err());
        assert!(BrokerAddress::parse(":9092").is_err());
        assert!(BrokerAddress::parse("h:99999").is_err());
    }
}
