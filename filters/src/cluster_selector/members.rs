//! Consumer-group members of one cluster cannot commit offsets to another.
//!
//! Group membership is not replicated between clusters: MirrorMaker copies committed offsets (translated),
//! never members. After a switch a consumer still holds the member id its old coordinator gave it, and its
//! fetch positions are offsets of the old cluster. Before its next heartbeat tells it the membership is gone,
//! librdkafka auto-commits those positions, and commits them once more as it revokes the lost assignment.
//! Kafka refuses such commits (UNKNOWN_MEMBER_ID), but not every Kafka-compatible broker does (tansu 0.6
//! accepts them). An accepted one overwrites the group's offsets on the new cluster with the old cluster's
//! positions: the consumer then skips records, or waits for offsets the new cluster has not reached yet.
//!
//! So the gateway remembers on which clusters it saw each member id handed out or confirmed (JoinGroup,
//! SyncGroup, Heartbeat, ConsumerGroupHeartbeat answered without error), and answers an OffsetCommit or
//! TxnOffsetCommit by a member seen only on other clusters with UNKNOWN_MEMBER_ID, forwarding nothing. The
//! client rejoins on the active cluster and resumes from that cluster's committed offsets. A member the gateway
//! never saw (another gateway instance served its join, or the record was evicted) passes as before: the fence
//! never refuses a member of the cluster it commits to.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

/// Members remembered at most; the oldest first seen is forgotten first (it then passes unchecked).
pub const MAX_MEMBERS: usize = 100_000;

/// Which clusters confirmed each (group, member).
#[derive(Debug)]
pub struct MemberRegistry {
    seen: Mutex<Seen>,
    capacity: usize,
}

#[derive(Debug, Default)]
struct Seen {
    clusters: HashMap<(String, String), Vec<String>>,
    /// Keys in the order first seen, for eviction.
    order: VecDeque<(String, String)>,
}

impl Default for MemberRegistry {
    fn default() -> Self {
        Self::with_capacity(MAX_MEMBERS)
    }
}

impl MemberRegistry {
    /// Remembers at most `capacity` members.
    pub fn with_capacity(capacity: usize) -> Self {
        Self { seen: Mutex::new(Seen::default()), capacity: capacity.max(1) }
    }

    /// `cluster` handed out or confirmed `member` of `group`.
    pub fn confirmed(&self, group: &str, member: &str, cluster: &str) {
        if member.is_empty() {
            return;
        }
        let mut seen = self.seen.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let key = (group.to_owned(), member.to_owned());
        if let Some(clusters) = seen.clusters.get_mut(&key) {
            if !clusters.iter().any(|c| c == cluster) {
                clusters.push(cluster.to_owned());
            }
            return;
        }
        if seen.order.len() >= self.capacity
            && let Some(oldest) = seen.order.pop_front()
        {
            seen.clusters.remove(&oldest);
        }
        seen.order.push_back(key.clone());
        seen.clusters.insert(key, vec![cluster.to_owned()]);
    }

    /// The cluster that confirmed `member` of `group`, when only other clusters than `cluster` did: a commit
    /// from it must not reach `cluster`.
    pub fn member_of_another_cluster(&self, group: &str, member: &str, cluster: &str) -> Option<String> {
        if member.is_empty() {
            return None;
        }
        let seen = self.seen.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let clusters = seen.clusters.get(&(group.to_owned(), member.to_owned()))?;
        if clusters.iter().any(|c| c == cluster) { None } else { clusters.first().cloned() }
    }

    /// Members remembered.
    pub fn len(&self) -> usize {
        self.seen.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).order.len()
    }

    /// Whether no member is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_member_is_fenced_only_on_clusters_that_never_confirmed_it() {
        let members = MemberRegistry::default();
        members.confirmed("readers", "m-1", "main");
        assert_eq!(members.member_of_another_cluster("readers", "m-1", "failover").as_deref(), Some("main"));
        assert_eq!(members.member_of_another_cluster("readers", "m-1", "main"), None, "its own cluster");
        assert_eq!(members.member_of_another_cluster("writers", "m-1", "failover"), None, "another group");
        assert_eq!(members.member_of_another_cluster("readers", "m-2", "failover"), None, "never seen: passes");
        assert_eq!(members.member_of_another_cluster("readers", "", "failover"), None, "simple commits pass");
        // A member id the client keeps across clusters (KIP-848) is fine once the new cluster confirms it.
        members.confirmed("readers", "m-1", "failover");
        assert_eq!(members.member_of_another_cluster("readers", "m-1", "failover"), None);
        assert_eq!(members.len(), 1);
    }

    #[test]
    fn the_oldest_member_is_forgotten_first_when_full() {
        let members = MemberRegistry::with_capacity(2);
        for member in ["a", "b", "c"] {
            members.confirmed("g", member, "main");
        }
        assert_eq!(members.len(), 2);
        assert_eq!(members.member_of_another_cluster("g", "a", "failover"), None, "forgotten: passes");
        assert!(members.member_of_another_cluster("g", "c", "failover").is_some());
    }
}
