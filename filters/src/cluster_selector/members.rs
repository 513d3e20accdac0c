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
//! So the gateway remembers which cluster last handed out or confirmed each member id (JoinGroup, SyncGroup,
//! Heartbeat, ConsumerGroupHeartbeat answered without error while that cluster was active), and on which
//! cluster and when each group last had a member confirmed. It answers an OffsetCommit or TxnOffsetCommit with
//! UNKNOWN_MEMBER_ID, forwarding nothing, when the commit:
//! - names a member id another cluster confirmed last (a KIP-848 client keeps its member id across clusters:
//!   it commits again once its first heartbeat here is answered);
//! - names no member id but a generation (Kafka refuses that too: no such member);
//! - names neither (a standalone-style commit) for a group whose members were confirmed on another cluster
//!   less than [`RECENT`] ago, before any member joined on this one. After that window such commits pass:
//!   offset resets by admin tools (`kafka-consumer-groups --reset-offsets`) are a normal failover step.
//!
//! The client rejoins on the active cluster and resumes from that cluster's committed offsets. Members and
//! groups the gateway never saw (another gateway instance served them, or they were forgotten) pass as before.
//! Keys are stored as 128-bit hashes (keyed per process), so a long group id costs no more than a short one,
//! and each map keeps at most [`MAX_ENTRIES`] entries, recently confirmed ones first.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Entries kept at most per map (members, groups): two generations of half as many, the older dropped whole
/// when the newer fills, so an entry confirmed again (every heartbeat) stays.
pub const MAX_ENTRIES: usize = 100_000;

/// How long after a group's members were last confirmed on another cluster a commit naming no member is
/// still taken for theirs (the revoke of a lost assignment follows the switch within seconds).
pub const RECENT: Duration = Duration::from_secs(60);

/// Which cluster last confirmed each consumer-group member, and each group.
#[derive(Debug)]
pub struct MemberRegistry {
    seen: Mutex<Seen>,
    /// Two independent per-process hash keys: together a 128-bit key.
    hashers: (std::collections::hash_map::RandomState, std::collections::hash_map::RandomState),
}

#[derive(Debug)]
struct Seen {
    /// Cluster names, interned: entries hold an index.
    clusters: Vec<String>,
    /// (group, member) → the cluster that confirmed it last.
    members: Generations<u16>,
    /// group → the cluster that confirmed one of its members last, and when.
    groups: Generations<(u16, Instant)>,
}

/// A map bounded by keeping two generations: lookups see both, inserts go to the newer, and the older is
/// dropped when the newer holds `half` entries.
#[derive(Debug)]
struct Generations<V> {
    newer: HashMap<u128, V>,
    older: HashMap<u128, V>,
    half: usize,
}

impl<V: Copy> Generations<V> {
    fn new(capacity: usize) -> Self {
        Self { newer: HashMap::new(), older: HashMap::new(), half: (capacity / 2).max(1) }
    }

    fn get(&self, key: u128) -> Option<V> {
        self.newer.get(&key).or_else(|| self.older.get(&key)).copied()
    }

    fn insert(&mut self, key: u128, value: V) {
        if !self.newer.contains_key(&key) && self.newer.len() >= self.half {
            self.older = std::mem::take(&mut self.newer);
        }
        self.older.remove(&key);
        self.newer.insert(key, value);
    }

    fn len(&self) -> usize {
        self.newer.len() + self.older.len()
    }
}

/// Why a commit must not reach the cluster it was sent to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The member was confirmed last by this other cluster.
    MemberOfAnotherCluster(String),
    /// A generation without a member id: no member can have it.
    GenerationWithoutMember,
    /// A commit without member or generation, while the group's members were confirmed on this other cluster
    /// moments ago and none yet on the active one.
    GroupJustSeenOnAnotherCluster(String),
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::MemberOfAnotherCluster(c) => write!(f, "a member cluster `{c}` confirmed last"),
            Self::GenerationWithoutMember => f.write_str("a generation without a member id"),
            Self::GroupJustSeenOnAnotherCluster(c) => {
                write!(f, "no member id, and the group's members were confirmed on cluster `{c}` moments ago")
            }
        }
    }
}

impl Default for MemberRegistry {
    fn default() -> Self {
        Self::with_capacity(MAX_ENTRIES)
    }
}

impl MemberRegistry {
    /// Keeps at most `capacity` members and `capacity` groups.
    pub fn with_capacity(capacity: usize) -> Self {
        let seen =
            Seen { clusters: Vec::new(), members: Generations::new(capacity), groups: Generations::new(capacity) };
        Self { seen: Mutex::new(seen), hashers: Default::default() }
    }

    fn key(&self, parts: &[&str]) -> u128 {
        (u128::from(self.hashers.0.hash_one(parts)) << 64) | u128::from(self.hashers.1.hash_one(parts))
    }

    /// `cluster` handed out or confirmed `member` of `group` at `now`.
    pub fn confirmed(&self, group: &str, member: &str, cluster: &str, now: Instant) {
        if member.is_empty() {
            return;
        }
        let (member_key, group_key) = (self.key(&[group, member]), self.key(&[group]));
        let mut seen = self.seen.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let index = match seen.clusters.iter().position(|c| c == cluster) {
            Some(index) => index,
            None => {
                seen.clusters.push(cluster.to_owned());
                seen.clusters.len() - 1
            }
        };
        let index = u16::try_from(index).unwrap_or(u16::MAX);
        seen.members.insert(member_key, index);
        seen.groups.insert(group_key, (index, now));
    }

    /// Why a commit to `group` by `member` at `generation` (-1: none) must not reach `cluster` at `now`, if it
    /// must not.
    pub fn refuse_commit(
        &self,
        group: &str,
        member: &str,
        generation: i32,
        cluster: &str,
        now: Instant,
    ) -> Option<Refusal> {
        if member.is_empty() && generation >= 0 {
            return Some(Refusal::GenerationWithoutMember);
        }
        let key = if member.is_empty() { self.key(&[group]) } else { self.key(&[group, member]) };
        let seen = self.seen.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let name = |index: u16| seen.clusters.get(usize::from(index)).cloned().unwrap_or_default();
        if member.is_empty() {
            let (index, at) = seen.groups.get(key)?;
            let other = name(index);
            return (other != cluster && now.saturating_duration_since(at) < RECENT)
                .then_some(Refusal::GroupJustSeenOnAnotherCluster(other));
        }
        let other = name(seen.members.get(key)?);
        (other != cluster).then_some(Refusal::MemberOfAnotherCluster(other))
    }

    /// Members remembered (an upper bound while an entry sits in both generations; never above capacity).
    pub fn len(&self) -> usize {
        self.seen.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).members.len()
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
    fn a_member_is_fenced_on_every_cluster_but_the_one_that_confirmed_it_last() {
        let (members, now) = (MemberRegistry::default(), Instant::now());
        members.confirmed("readers", "m-1", "main", now);
        let from_main = Some(Refusal::MemberOfAnotherCluster("main".into()));
        assert_eq!(members.refuse_commit("readers", "m-1", 3, "failover", now), from_main);
        assert_eq!(members.refuse_commit("readers", "m-1", 3, "main", now), None, "its own cluster");
        assert_eq!(members.refuse_commit("writers", "m-1", 3, "failover", now), None, "another group");
        assert_eq!(members.refuse_commit("readers", "m-2", 3, "failover", now), None, "never seen: passes");
        // A member id the client keeps across clusters (KIP-848): fine once the failover confirms it, and
        // fenced again on main after switching back, until main confirms it again.
        members.confirmed("readers", "m-1", "failover", now);
        assert_eq!(members.refuse_commit("readers", "m-1", 3, "failover", now), None);
        let from_failover = Some(Refusal::MemberOfAnotherCluster("failover".into()));
        assert_eq!(members.refuse_commit("readers", "m-1", 3, "main", now), from_failover, "positions of failover");
        members.confirmed("readers", "m-1", "main", now);
        assert_eq!(members.refuse_commit("readers", "m-1", 3, "main", now), None);
    }

    #[test]
    fn a_commit_without_member_waits_briefly_for_the_group_to_have_one_on_the_active_cluster() {
        let (members, now) = (MemberRegistry::default(), Instant::now());
        assert_eq!(members.refuse_commit("readers", "", -1, "failover", now), None, "a group never seen: standalone");
        assert_eq!(members.refuse_commit("readers", "", 0, "main", now), Some(Refusal::GenerationWithoutMember));
        members.confirmed("readers", "m-1", "main", now);
        assert_eq!(members.refuse_commit("readers", "", -1, "main", now), None, "the group's members are here");
        let revoke = Some(Refusal::GroupJustSeenOnAnotherCluster("main".into()));
        assert_eq!(members.refuse_commit("readers", "", -1, "failover", now), revoke, "a revoke after the switch");
        // An admin tool resetting offsets on the failover a while after the switch passes.
        assert_eq!(members.refuse_commit("readers", "", -1, "failover", now + RECENT), None);
        members.confirmed("readers", "m-2", "failover", now);
        assert_eq!(members.refuse_commit("readers", "", -1, "failover", now), None, "a member joined the failover");
    }

    #[test]
    fn entries_confirmed_again_stay_and_the_rest_is_forgotten_when_full() {
        let (members, now) = (MemberRegistry::with_capacity(4), Instant::now());
        members.confirmed("g", "active", "main", now);
        for i in 0..10 {
            members.confirmed("g", &format!("gone-{i}"), "main", now);
            members.confirmed("g", "active", "main", now); // its heartbeat
        }
        assert!(members.len() <= 4, "{}", members.len());
        assert!(members.refuse_commit("g", "active", 1, "failover", now).is_some(), "kept by its heartbeats");
        assert_eq!(members.refuse_commit("g", "gone-0", 1, "failover", now), None, "forgotten: passes");
        // A group id of 32 KiB costs one 128-bit key.
        let long = "g".repeat(32 * 1024);
        members.confirmed(&long, "m", "main", now);
        assert!(members.refuse_commit(&long, "m", 1, "failover", now).is_some());
    }
}
