//! Consumer-group members of one cluster cannot commit offsets to another.
//!
//! Group membership is not replicated between clusters: MirrorMaker copies committed offsets (translated),
//! never members. After a switch a consumer still holds the member id its old coordinator gave it, and its
//! fetch positions are offsets of the old cluster. Before its next heartbeat tells it the membership is gone,
//! librdkafka auto-commits those positions with its old member id; and once it learns, it commits them again
//! as it revokes the lost assignment — by then with its member id cleared, which Kafka accepts for a group
//! with no members (the state of every group on a cluster just switched to). An accepted commit overwrites
//! the group's offsets on the new cluster (MirrorMaker's translated ones, or the group's own from an earlier
//! stint there) with positions that mean nothing there: the consumer then skips records, or waits for offsets
//! the cluster has not reached yet.
//!
//! So the gateway remembers which cluster handed out or confirmed each member id (JoinGroup, SyncGroup,
//! Heartbeat, ConsumerGroupHeartbeat answered without error), and on which cluster each group last had a
//! member confirmed. It answers an OffsetCommit or TxnOffsetCommit with UNKNOWN_MEMBER_ID, forwarding nothing,
//! when the commit:
//! - names a member id that only other clusters confirmed;
//! - names no member id but a generation (Kafka refuses that too: no such member);
//! - names neither (a standalone-style commit) for a group whose members were last confirmed on another
//!   cluster, before any member has joined on this one.
//!
//! The client rejoins on the active cluster and resumes from that cluster's committed offsets. Members and
//! groups the gateway never saw (another gateway instance served them, or they were forgotten) pass as before:
//! a member of the cluster a commit goes to is never refused.

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
    /// Per group, the cluster that confirmed one of its members last.
    last_confirmed: HashMap<String, String>,
    /// Groups in the order first seen, for eviction.
    group_order: VecDeque<String>,
}

/// Why a commit must not reach the cluster it was sent to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The member was confirmed only by this other cluster.
    MemberOfAnotherCluster(String),
    /// A generation without a member id: no member can have it.
    GenerationWithoutMember,
    /// A commit without member or generation, while the group's members were last confirmed on this other
    /// cluster and none yet on the active one.
    GroupLastSeenOnAnotherCluster(String),
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::MemberOfAnotherCluster(c) => write!(f, "a member only cluster `{c}` confirmed"),
            Self::GenerationWithoutMember => f.write_str("a generation without a member id"),
            Self::GroupLastSeenOnAnotherCluster(c) => {
                write!(f, "no member id, and the group's members were last confirmed on cluster `{c}`")
            }
        }
    }
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
        match seen.last_confirmed.get_mut(group) {
            Some(last) if last == cluster => {}
            Some(last) => cluster.clone_into(last),
            None => {
                if seen.group_order.len() >= self.capacity
                    && let Some(oldest) = seen.group_order.pop_front()
                {
                    seen.last_confirmed.remove(&oldest);
                }
                seen.group_order.push_back(group.to_owned());
                seen.last_confirmed.insert(group.to_owned(), cluster.to_owned());
            }
        }
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

    /// Why a commit to `group` by `member` at `generation` (-1: none) must not reach `cluster`, if it must not.
    pub fn refuse_commit(&self, group: &str, member: &str, generation: i32, cluster: &str) -> Option<Refusal> {
        let seen = self.seen.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if member.is_empty() {
            if generation >= 0 {
                return Some(Refusal::GenerationWithoutMember);
            }
            return match seen.last_confirmed.get(group) {
                Some(last) if last != cluster => Some(Refusal::GroupLastSeenOnAnotherCluster(last.clone())),
                _ => None,
            };
        }
        let clusters = seen.clusters.get(&(group.to_owned(), member.to_owned()))?;
        if clusters.iter().any(|c| c == cluster) {
            None
        } else {
            clusters.first().cloned().map(Refusal::MemberOfAnotherCluster)
        }
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
        let other = Some(Refusal::MemberOfAnotherCluster("main".into()));
        assert_eq!(members.refuse_commit("readers", "m-1", 3, "failover"), other);
        assert_eq!(members.refuse_commit("readers", "m-1", 3, "main"), None, "its own cluster");
        assert_eq!(members.refuse_commit("writers", "m-1", 3, "failover"), None, "another group");
        assert_eq!(members.refuse_commit("readers", "m-2", 3, "failover"), None, "never seen: passes");
        // A member id the client keeps across clusters (KIP-848) is fine once the new cluster confirms it.
        members.confirmed("readers", "m-1", "failover");
        assert_eq!(members.refuse_commit("readers", "m-1", 3, "failover"), None);
        assert_eq!(members.len(), 1);
    }

    #[test]
    fn a_commit_without_member_waits_for_the_group_to_have_one_on_the_active_cluster() {
        let members = MemberRegistry::default();
        assert_eq!(members.refuse_commit("readers", "", -1, "failover"), None, "a group never seen: standalone");
        assert_eq!(members.refuse_commit("readers", "", 0, "main"), Some(Refusal::GenerationWithoutMember));
        members.confirmed("readers", "m-1", "main");
        assert_eq!(members.refuse_commit("readers", "", -1, "main"), None, "the group's members are here");
        let elsewhere = Some(Refusal::GroupLastSeenOnAnotherCluster("main".into()));
        assert_eq!(members.refuse_commit("readers", "", -1, "failover"), elsewhere, "a revoke after the switch");
        members.confirmed("readers", "m-2", "failover");
        assert_eq!(members.refuse_commit("readers", "", -1, "failover"), None, "a member joined the failover");
    }

    #[test]
    fn the_oldest_member_is_forgotten_first_when_full() {
        let members = MemberRegistry::with_capacity(2);
        for member in ["a", "b", "c"] {
            members.confirmed("g", member, "main");
        }
        assert_eq!(members.len(), 2);
        assert_eq!(members.refuse_commit("g", "a", 1, "failover"), None, "forgotten: passes");
        assert!(members.refuse_commit("g", "c", 1, "failover").is_some());
    }
}
