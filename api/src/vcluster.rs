//! Virtual clusters: tenants sharing a physical cluster, each seeing only its own topics, groups and
//! transactional ids, stored on the backend under the tenant's prefix.
//!
//! The registry here is the gateway's in-memory view. The runtime fills it from a compacted Kafka topic
//! (`_franzgate_state` by default) and appends to that topic before changing anything, so every gateway
//! instance — and, through replication, the failover cluster — shares one view. It is read on every login (the
//! SASL filter checks a token's virtual cluster and account) and on every request of a tenant session (the
//! topic-prefix filter checks the account was not revoked meanwhile), so reads are a lock-free snapshot load.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use serde::{Deserialize, Serialize};

/// Kafka's longest legal topic name.
pub const MAX_TOPIC_NAME_LEN: usize = 249;

/// The virtual cluster of principals that name none: no prefix, the physical cluster as it is.
pub const PASSTHROUGH: &str = "passthrough";

/// One tenant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VirtualCluster {
    /// Its name, as tokens carry it.
    pub name: String,
    /// What its topic names, group ids and transactional ids start with on the backend.
    pub prefix: String,
    /// Its service accounts by user name.
    #[serde(default)]
    pub accounts: BTreeMap<String, ServiceAccount>,
}

/// A service account of a virtual cluster; its tokens work while it is not revoked and they carry its current
/// generation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceAccount {
    /// The SASL user name.
    pub username: String,
    /// Bumped by every revocation: tokens issued before carry an older generation and stay dead even if the
    /// account is given new tokens later.
    pub generation: u32,
    /// True from a revocation until the next token is issued.
    pub revoked: bool,
}

/// One change, as stored (JSON) in the state topic under [`StateRecord::key`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum StateRecord {
    /// A virtual cluster exists with this prefix.
    #[serde(rename_all = "camelCase")]
    VirtualCluster {
        /// Its name.
        name: String,
        /// Its backend prefix.
        prefix: String,
    },
    /// A service account's current state.
    #[serde(rename_all = "camelCase")]
    ServiceAccount {
        /// The virtual cluster it belongs to.
        vcluster: String,
        /// The SASL user name.
        username: String,
        /// See [`ServiceAccount::generation`].
        generation: u32,
        /// See [`ServiceAccount::revoked`].
        revoked: bool,
    },
}

/// Why a token or a name is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VClusterError {
    /// The token names a virtual cluster this gateway does not know.
    #[error("unknown virtual cluster `{0}`")]
    UnknownVCluster(String),
    /// The account was revoked, or the token predates a revocation.
    #[error("service account `{username}` of virtual cluster `{vcluster}` was revoked")]
    Revoked {
        /// The virtual cluster.
        vcluster: String,
        /// The account.
        username: String,
    },
    /// A name the gateway cannot store in a record key or as a prefix.
    #[error("{what} `{name}` is invalid: {reason}")]
    InvalidName {
        /// What kind of name.
        what: &'static str,
        /// The name.
        name: String,
        /// Why.
        reason: String,
    },
    /// Two tenants' prefixes where one starts with the other: their topics could not be told apart.
    #[error("prefix `{prefix}` overlaps prefix `{other_prefix}` of virtual cluster `{other}`")]
    PrefixOverlap {
        /// The prefix asked for.
        prefix: String,
        /// The tenant already holding an overlapping prefix.
        other: String,
        /// Its prefix.
        other_prefix: String,
    },
    /// The virtual cluster exists with another prefix; prefixes never change under existing data.
    #[error("virtual cluster `{name}` already exists with prefix `{prefix}`")]
    PrefixChange {
        /// The virtual cluster.
        name: String,
        /// Its prefix.
        prefix: String,
    },
    /// A principal with no virtual cluster while GATEWAY_FEATURE_FLAGS_MANDATORY_VCLUSTER is set.
    #[error("`{0}` belongs to no virtual cluster, and GATEWAY_FEATURE_FLAGS_MANDATORY_VCLUSTER requires one")]
    Mandatory(String),
    /// Revoking an account that does not exist.
    #[error("virtual cluster `{vcluster}` has no service account `{username}`")]
    UnknownAccount {
        /// The virtual cluster.
        vcluster: String,
        /// The account.
        username: String,
    },
}

/// Every virtual cluster by name; a snapshot swapped whole on each change.
type Snapshot = BTreeMap<String, Arc<VirtualCluster>>;

/// The registry of virtual clusters, shared by the SASL filter, the topic-prefix filter and the admin API.
#[derive(Debug, Default)]
pub struct VirtualClusters {
    /// The current view, read lock-free.
    current: ArcSwap<Snapshot>,
    /// Serialises writers (state-topic loader and admin API) so that no update is lost.
    write: Mutex<()>,
    /// GATEWAY_FEATURE_FLAGS_MANDATORY_VCLUSTER: a principal with no virtual cluster is refused instead of
    /// passing through unprefixed.
    mandatory: bool,
}

// === impl VirtualClusters ===

impl VirtualClusters {
    /// An empty registry; `mandatory` refuses principals without a virtual cluster.
    pub fn new(mandatory: bool) -> Self {
        Self { current: ArcSwap::default(), write: Mutex::new(()), mandatory }
    }

    /// Whether principals without a virtual cluster are refused.
    pub fn mandatory(&self) -> bool {
        self.mandatory
    }

    /// Whether principal `name`, which names no virtual cluster, may pass through unprefixed.
    pub fn admit_passthrough(&self, name: &str) -> Result<(), VClusterError> {
        match self.mandatory {
            true => Err(VClusterError::Mandatory(name.to_string())),
            false => Ok(()),
        }
    }

    /// One virtual cluster.
    pub fn get(&self, name: &str) -> Option<Arc<VirtualCluster>> {
        self.current.load().get(name).cloned()
    }

    /// Every virtual cluster, by name.
    pub fn list(&self) -> Vec<Arc<VirtualCluster>> {
        self.current.load().values().cloned().collect()
    }

    /// Whether a token for `username` of `vcluster` at `generation` may log in (and stay logged in). Returns
    /// the virtual cluster, whose prefix the session then uses.
    pub fn check_token(
        &self,
        vcluster: &str,
        username: &str,
        generation: u32,
    ) -> Result<Arc<VirtualCluster>, VClusterError> {
        let snapshot = self.current.load();
        let cluster = snapshot.get(vcluster).ok_or_else(|| VClusterError::UnknownVCluster(vcluster.to_string()))?;
        // An account never registered (a token minted elsewhere with the shared secret) is at generation 0 and
        // not revoked.
        let (current, revoked) = cluster.accounts.get(username).map_or((0, false), |a| (a.generation, a.revoked));
        if revoked || current != generation {
            return Err(VClusterError::Revoked { vcluster: vcluster.to_string(), username: username.to_string() });
        }
        Ok(cluster.clone())
    }

    /// The record creating `name` with its own name as prefix, unless it already exists (whatever its prefix).
    pub fn plan_ensure(&self, name: &str) -> Result<Option<StateRecord>, VClusterError> {
        match self.get(name) {
            Some(_) => Ok(None),
            None => self.plan_create(name, None),
        }
    }

    /// The record creating `name` with `prefix` (its own name when `None`), after checking it can be created:
    /// `None` when it already exists with that prefix.
    pub fn plan_create(&self, name: &str, prefix: Option<&str>) -> Result<Option<StateRecord>, VClusterError> {
        validate_name("virtual cluster name", name)?;
        let prefix = prefix.unwrap_or(name);
        validate_name("prefix", prefix)?;
        if prefix.starts_with('_') {
            // Internal topics (`__consumer_offsets`, the gateway's own `_franzgate_state`) start with `_`: a
            // tenant whose prefix did could reach them.
            let reason = "must not start with '_' (internal topics do)".into();
            return Err(VClusterError::InvalidName { what: "prefix", name: prefix.to_string(), reason });
        }
        let snapshot = self.current.load();
        if let Some(existing) = snapshot.get(name) {
            if existing.prefix == prefix {
                return Ok(None);
            }
            return Err(VClusterError::PrefixChange { name: name.to_string(), prefix: existing.prefix.clone() });
        }
        if let Some(other) = snapshot.values().find(|o| o.prefix.starts_with(prefix) || prefix.starts_with(&o.prefix)) {
            return Err(VClusterError::PrefixOverlap {
                prefix: prefix.to_string(),
                other: other.name.clone(),
                other_prefix: other.prefix.clone(),
            });
        }
        Ok(Some(StateRecord::VirtualCluster { name: name.to_string(), prefix: prefix.to_string() }))
    }

    /// The record that (re)activates `username` of `vcluster` for a new token, and the generation the token
    /// must carry. The virtual cluster must exist (see [`Self::plan_create`]).
    pub fn plan_issue(&self, vcluster: &str, username: &str) -> Result<(StateRecord, u32), VClusterError> {
        validate_name("user name", username)?;
        let cluster = self.get(vcluster).ok_or_else(|| VClusterError::UnknownVCluster(vcluster.to_string()))?;
        let generation = cluster.accounts.get(username).map_or(0, |a| a.generation);
        let record = StateRecord::ServiceAccount {
            vcluster: vcluster.to_string(),
            username: username.to_string(),
            generation,
            revoked: false,
        };
        Ok((record, generation))
    }

    /// The record revoking `username` of `vcluster`: every token issued so far stops working.
    pub fn plan_revoke(&self, vcluster: &str, username: &str) -> Result<StateRecord, VClusterError> {
        let cluster = self.get(vcluster).ok_or_else(|| VClusterError::UnknownVCluster(vcluster.to_string()))?;
        let account = cluster.accounts.get(username).ok_or_else(|| VClusterError::UnknownAccount {
            vcluster: vcluster.to_string(),
            username: username.to_string(),
        })?;
        Ok(StateRecord::ServiceAccount {
            vcluster: vcluster.to_string(),
            username: username.to_string(),
            generation: account.generation.saturating_add(1),
            revoked: true,
        })
    }

    /// Applies one stored change, in topic order. Changes never go backwards, whatever order concurrent gateway
    /// instances (or a replica read after a switch) deliver them in: a virtual cluster keeps the first prefix it
    /// was given, a prefix overlapping another tenant's is ignored, and an account record older than the
    /// account's generation is ignored, so a late "issued" record cannot undo a revocation. An account of an
    /// unknown virtual cluster is ignored too (its cluster's record is always written first). Returns false
    /// for an ignored record.
    pub fn apply(&self, record: &StateRecord) -> bool {
        let _writer = self.write.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut next: Snapshot = (**self.current.load()).clone();
        match record {
            StateRecord::VirtualCluster { name, prefix } => {
                let existing = next.get(name);
                if existing.is_some_and(|c| c.prefix != *prefix) {
                    return false;
                }
                let overlaps = next.values().any(|o| {
                    o.name != *name && (o.prefix.starts_with(prefix.as_str()) || prefix.starts_with(o.prefix.as_str()))
                });
                if overlaps {
                    return false;
                }
                let accounts = existing.map(|c| c.accounts.clone()).unwrap_or_default();
                let cluster = VirtualCluster { name: name.clone(), prefix: prefix.clone(), accounts };
                next.insert(name.clone(), Arc::new(cluster));
            }
            StateRecord::ServiceAccount { vcluster, username, generation, revoked } => {
                let Some(cluster) = next.get(vcluster) else {
                    return false;
                };
                let current = cluster.accounts.get(username).map(|a| a.generation);
                if current.is_some_and(|g| g > *generation) {
                    return false;
                }
                let mut cluster = (**cluster).clone();
                let account = ServiceAccount { username: username.clone(), generation: *generation, revoked: *revoked };
                cluster.accounts.insert(username.clone(), account);
                next.insert(vcluster.clone(), Arc::new(cluster));
            }
        }
        self.current.store(Arc::new(next));
        true
    }

    /// Forgets the virtual cluster or account a deleted (tombstoned) key named.
    pub fn remove_key(&self, key: &str) {
        let _writer = self.write.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut next: Snapshot = (**self.current.load()).clone();
        match parse_key(key) {
            Some((vcluster, None)) => {
                next.remove(vcluster);
            }
            Some((vcluster, Some(username))) => {
                if let Some(cluster) = next.get(vcluster) {
                    let mut cluster = (**cluster).clone();
                    cluster.accounts.remove(username);
                    next.insert(vcluster.to_string(), Arc::new(cluster));
                }
            }
            None => return,
        }
        self.current.store(Arc::new(next));
    }
}

// === impl StateRecord ===

impl StateRecord {
    /// The compaction key: the latest record per key is the state.
    pub fn key(&self) -> String {
        match self {
            Self::VirtualCluster { name, .. } => format!("vcluster/{name}"),
            Self::ServiceAccount { vcluster, username, .. } => format!("account/{vcluster}/{username}"),
        }
    }
}

/// (virtual cluster, account) named by a record key.
fn parse_key(key: &str) -> Option<(&str, Option<&str>)> {
    if let Some(name) = key.strip_prefix("vcluster/") {
        return Some((name, None));
    }
    let (vcluster, username) = key.strip_prefix("account/")?.split_once('/')?;
    Some((vcluster, Some(username)))
}

/// Names are used in record keys, topic names and URLs: Kafka's topic characters only, and short enough to
/// leave room for a topic name after a prefix.
pub fn validate_name(what: &'static str, name: &str) -> Result<(), VClusterError> {
    let invalid = |reason: &str| VClusterError::InvalidName { what, name: name.to_string(), reason: reason.into() };
    if name.is_empty() {
        return Err(invalid("must not be empty"));
    }
    if name.len() > 200 {
        return Err(invalid("longer than 200 characters"));
    }
    if !name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-')) {
        return Err(invalid("only ASCII letters, digits, '.', '_' and '-' are allowed"));
    }
    if name == PASSTHROUGH {
        return Err(invalid("reserved for principals without a virtual cluster"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registry_with(name: &str, prefix: &str) -> VirtualClusters {
        let registry = VirtualClusters::new(false);
        registry.apply(&StateRecord::VirtualCluster { name: name.into(), prefix: prefix.into() });
        registry
    }

    #[test]
    fn tokens_need_a_known_vcluster_and_the_current_generation() {
        let registry = registry_with("teamA", "teamA");
        assert_eq!(registry.check_token("teamA", "sa", 0).map(|c| c.prefix.clone()), Ok("teamA".to_string()));
        assert!(matches!(registry.check_token("teamZ", "sa", 0), Err(VClusterError::UnknownVCluster(_))));

        let revoke = registry.plan_revoke("teamA", "sa");
        assert!(matches!(revoke, Err(VClusterError::UnknownAccount { .. })), "never issued: {revoke:?}");
        let (record, generation) = registry.plan_issue("teamA", "sa").expect("issue");
        registry.apply(&record);
        assert_eq!(generation, 0);
        registry.apply(&registry.plan_revoke("teamA", "sa").expect("revoke"));
        assert!(matches!(registry.check_token("teamA", "sa", 0), Err(VClusterError::Revoked { .. })));
        // A new token revives the account at the new generation; the old token stays dead.
        let (record, generation) = registry.plan_issue("teamA", "sa").expect("issue");
        registry.apply(&record);
        assert_eq!(generation, 1);
        assert!(registry.check_token("teamA", "sa", 1).is_ok());
        assert!(registry.check_token("teamA", "sa", 0).is_err());
    }

    #[test]
    fn late_or_conflicting_records_never_undo_a_change() {
        let registry = registry_with("teamA", "teamA");
        let issued = StateRecord::ServiceAccount {
            vcluster: "teamA".into(),
            username: "sa".into(),
            generation: 0,
            revoked: false,
        };
        assert!(registry.apply(&issued));
        assert!(registry.apply(&registry.plan_revoke("teamA", "sa").expect("revoke")));
        assert!(!registry.apply(&issued), "an issue record older than the revocation is ignored");
        assert!(registry.check_token("teamA", "sa", 0).is_err());
        let moved = StateRecord::VirtualCluster { name: "teamA".into(), prefix: "other.".into() };
        assert!(!registry.apply(&moved), "a prefix never changes");
        let overlapping = StateRecord::VirtualCluster { name: "teamAB".into(), prefix: "teamAB".into() };
        assert!(!registry.apply(&overlapping), "a prefix overlapping another tenant's is ignored");
        let orphan = StateRecord::ServiceAccount {
            vcluster: "ghost".into(),
            username: "x".into(),
            generation: 0,
            revoked: false,
        };
        assert!(!registry.apply(&orphan));
        assert_eq!(registry.get("teamA").map(|c| c.prefix.clone()).as_deref(), Some("teamA"));
    }

    #[test]
    fn prefixes_must_not_overlap_or_change() {
        let registry = registry_with("teamA", "teamA");
        assert_eq!(registry.plan_create("teamA", None), Ok(None));
        assert!(matches!(registry.plan_create("teamA", Some("a.")), Err(VClusterError::PrefixChange { .. })));
        assert!(matches!(registry.plan_create("teamAB", None), Err(VClusterError::PrefixOverlap { .. })));
        assert!(matches!(registry.plan_create("team", None), Err(VClusterError::PrefixOverlap { .. })));
        assert!(matches!(registry.plan_create("teamB", None), Ok(Some(_))));
        assert!(matches!(registry.plan_create("team/B", None), Err(VClusterError::InvalidName { .. })));
        assert!(matches!(registry.plan_create(PASSTHROUGH, None), Err(VClusterError::InvalidName { .. })));
        assert!(matches!(registry.plan_create("internal", Some("_fr")), Err(VClusterError::InvalidName { .. })));
    }

    #[test]
    fn records_round_trip_through_json_and_tombstones_remove() {
        let record = StateRecord::ServiceAccount {
            vcluster: "teamA".into(),
            username: "sa".into(),
            generation: 2,
            revoked: true,
        };
        let json = serde_json::to_string(&record).expect("json");
        assert_eq!(
            json,
            r#"{"type":"serviceAccount","vcluster":"teamA","username":"sa","generation":2,"revoked":true}"#
        );
        assert_eq!(serde_json::from_str::<StateRecord>(&json).ok(), Some(record.clone()));
        let registry = registry_with("teamA", "teamA.");
        registry.apply(&record);
        registry.remove_key(&record.key());
        assert!(registry.get("teamA").is_some_and(|c| c.accounts.is_empty()));
        registry.remove_key("vcluster/teamA");
        assert!(registry.get("teamA").is_none());
    }
}
