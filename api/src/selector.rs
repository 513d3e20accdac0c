//! The switchable state: which backend cluster new sessions are bound to.
//!
//! The active cluster lives in an `ArcSwap` (read lock-free on every accept and request) and each switch bumps
//! an epoch published on a `tokio::sync::watch` channel. A session remembers the epoch it was bound under;
//! when the epoch moves on, the session stops taking requests, lets in-flight responses finish and closes, so
//! its client reconnects and lands on the new cluster.

use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use arc_swap::ArcSwap;
use tokio::sync::watch;

use crate::topology::{BackendCluster, ClusterRole};

/// The cluster sessions are bound to now, and how it got there.
#[derive(Debug, Clone)]
pub struct ActiveCluster {
    /// The cluster new sessions use.
    pub cluster: Arc<BackendCluster>,
    /// Bumped by every switch; sessions bound under an older epoch drain and close.
    pub epoch: u64,
    /// When this cluster became active (start-up or the last switch).
    pub since: SystemTime,
    /// How many switches happened since start-up.
    pub switch_count: u64,
}

/// What a switch request did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SwitchOutcome {
    /// Traffic moved from `from` to `to`; sessions on `from` are draining.
    Switched {
        /// The cluster that was active.
        from: String,
        /// The cluster now active.
        to: String,
        /// The new epoch.
        epoch: u64,
    },
    /// The target was already active; nothing changed.
    AlreadyActive {
        /// The active cluster.
        name: String,
    },
}

/// Why a switch request was refused (nothing changed).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SwitchError {
    /// The cluster named in the path is not a primary cluster of this gateway.
    #[error("unknown cluster `{0}`")]
    UnknownCluster(String),
    /// The target is neither the primary cluster nor one of its failovers.
    #[error("unknown target `{target}` for cluster `{cluster}`; expected one of: {expected}")]
    UnknownTarget {
        /// The cluster being switched.
        cluster: String,
        /// The requested target.
        target: String,
        /// The valid targets.
        expected: String,
    },
}

/// Holds the active cluster and the epoch; shared by the accept loop, the cluster-selector filter and the
/// admin API.
#[derive(Debug)]
pub struct ClusterSelector {
    /// Every configured cluster.
    clusters: Vec<Arc<BackendCluster>>,
    /// The cluster new sessions use.
    active: ArcSwap<ActiveCluster>,
    /// The epoch, for sessions to watch.
    epoch: watch::Sender<u64>,
    /// Serialises switches so two concurrent calls cannot interleave their read-modify-write.
    switching: Mutex<()>,
    /// Offset commits the cluster-selector filter refused because they carried another cluster's positions.
    fenced_commits: std::sync::atomic::AtomicU64,
    /// Produce requests refused by a planned switch's fence.
    fenced_produces: std::sync::atomic::AtomicU64,
    /// What the cluster-selector filter did for idempotent producers that crossed a switch.
    pub producers: ProducerStats,
    /// The cluster whose Produce requests are refused with a retriable error while a planned switch waits for
    /// replication to catch up (`None`: no fence).
    produce_fence: ArcSwap<Option<String>>,
    /// Topics clients asked Metadata for: what a planned switch waits for, and a switch checks on the target.
    used_topics: RecentNames,
    /// Consumer groups clients joined or committed to: what a switch checks on the target.
    used_groups: RecentNames,
}

/// Names remembered as used at most; past it, the oldest half is forgotten.
const RECENT_NAMES_CAP: usize = 100_000;

/// Names with when they were last used.
#[derive(Debug, Default)]
struct RecentNames(Mutex<std::collections::HashMap<String, std::time::Instant>>);

impl RecentNames {
    fn note<'a>(&self, names: impl Iterator<Item = &'a str>) {
        let now = std::time::Instant::now();
        let mut used = self.0.lock().unwrap_or_else(|p| p.into_inner());
        for name in names {
            match used.get_mut(name) {
                Some(seen) => *seen = now,
                None => {
                    used.insert(name.to_string(), now);
                }
            }
        }
        if used.len() > RECENT_NAMES_CAP {
            let mut ages: Vec<std::time::Instant> = used.values().copied().collect();
            ages.sort_unstable();
            let cutoff = ages[ages.len() / 2];
            used.retain(|_, seen| *seen > cutoff);
        }
    }

    fn within(&self, window: std::time::Duration) -> Vec<String> {
        let used = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let mut names: Vec<String> =
            used.iter().filter(|(_, seen)| seen.elapsed() <= window).map(|(name, _)| name.clone()).collect();
        names.sort_unstable();
        names
    }
}

/// Counters of the cluster-selector filter's producer-identity work, exported on `/metrics`.
#[derive(Debug, Default)]
pub struct ProducerStats {
    /// Stand-in producer ids the gateway obtained (InitProducerId) for producers that crossed a switch.
    pub stand_ins: std::sync::atomic::AtomicU64,
    /// Stand-in ids that could not be obtained (the Produce got a retriable error).
    pub stand_in_failures: std::sync::atomic::AtomicU64,
    /// Record batches written under another producer id than the client's.
    pub rewritten_batches: std::sync::atomic::AtomicU64,
    /// Producer ids handed to clients in place of one another cluster's live producer already holds.
    pub renamed_ids: std::sync::atomic::AtomicU64,
    /// Requests of transactions whose producer id is another cluster's, refused with an abortable error.
    pub refused_transactional: std::sync::atomic::AtomicU64,
    /// EndTxn(abort) of such transactions answered by the gateway.
    pub aborted_here: std::sync::atomic::AtomicU64,
}

impl ProducerStats {
    /// Adds `n` to `counter`.
    pub fn add(counter: &std::sync::atomic::AtomicU64, n: u64) {
        counter.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
    }

    /// The value of `counter`.
    pub fn get(counter: &std::sync::atomic::AtomicU64) -> u64 {
        counter.load(std::sync::atomic::Ordering::Relaxed)
    }
}

// === impl ClusterSelector ===

impl ClusterSelector {
    /// A selector over `clusters`, the primary (first `Main`-role cluster, else the first) active.
    pub fn new(clusters: Vec<Arc<BackendCluster>>) -> Option<Self> {
        let primary = clusters.iter().find(|c| c.role == ClusterRole::Main).or(clusters.first())?.clone();
        let active = ActiveCluster { cluster: primary, epoch: 0, since: SystemTime::now(), switch_count: 0 };
        Some(Self {
            clusters,
            active: ArcSwap::from_pointee(active),
            epoch: watch::Sender::new(0),
            switching: Mutex::new(()),
            fenced_commits: std::sync::atomic::AtomicU64::new(0),
            fenced_produces: std::sync::atomic::AtomicU64::new(0),
            producers: ProducerStats::default(),
            produce_fence: ArcSwap::from_pointee(None),
            used_topics: RecentNames::default(),
            used_groups: RecentNames::default(),
        })
    }

    /// Counts an offset commit refused for carrying another cluster's positions.
    pub fn count_fenced_commit(&self) {
        self.fenced_commits.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// Offset commits refused for carrying another cluster's positions, since start.
    pub fn fenced_commits(&self) -> u64 {
        self.fenced_commits.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The active cluster and its epoch.
    pub fn active(&self) -> Arc<ActiveCluster> {
        self.active.load_full()
    }

    /// The current epoch (cheap: read on every request by the cluster-selector filter).
    pub fn epoch(&self) -> u64 {
        self.active.load().epoch
    }

    /// Refuses Produce requests to `cluster` (with a retriable error, nothing forwarded) until lifted with `None`:
    /// a planned switch's fence, so nothing is written that replication has not copied when the switch comes.
    pub fn set_produce_fence(&self, cluster: Option<String>) {
        self.produce_fence.store(Arc::new(cluster));
    }

    /// Whether Produce requests to `cluster` are fenced.
    pub fn produce_fenced(&self, cluster: &str) -> bool {
        self.produce_fence.load().as_deref() == Some(cluster)
    }

    /// The fenced cluster, if any.
    pub fn produce_fence(&self) -> Option<String> {
        (**self.produce_fence.load()).clone()
    }

    /// Notes that clients use these topics (names as the backend knows them).
    pub fn note_used_topics<'a>(&self, names: impl Iterator<Item = &'a str>) {
        self.used_topics.note(names);
    }

    /// The topics clients asked Metadata for within `window`, sorted.
    pub fn used_topics(&self, window: std::time::Duration) -> Vec<String> {
        self.used_topics.within(window)
    }

    /// Notes that clients use this consumer group (its name as the backend knows it).
    pub fn note_used_group(&self, group: &str) {
        self.used_groups.note(std::iter::once(group));
    }

    /// The consumer groups clients joined or committed to within `window`, sorted.
    pub fn used_groups(&self, window: std::time::Duration) -> Vec<String> {
        self.used_groups.within(window)
    }

    /// Counts a Produce refused by the fence.
    pub fn count_fenced_produce(&self) {
        self.fenced_produces.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// Produce requests refused by the fence so far.
    pub fn fenced_produces(&self) -> u64 {
        self.fenced_produces.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Watches the epoch; sessions wait on it to learn of a switch.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.epoch.subscribe()
    }

    /// Every configured cluster, primary first as configured.
    pub fn clusters(&self) -> &[Arc<BackendCluster>] {
        &self.clusters
    }

    /// The primary cluster: the one a switch is addressed to.
    pub fn primary(&self) -> Option<&Arc<BackendCluster>> {
        self.clusters.iter().find(|c| c.role == ClusterRole::Main).or(self.clusters.first())
    }

    /// The cluster a switch of primary cluster `cluster` to `target` would move traffic to.
    pub fn target(&self, cluster: &str, target: &str) -> Result<Arc<BackendCluster>, SwitchError> {
        let primary =
            self.primary().filter(|p| p.name == cluster).ok_or_else(|| SwitchError::UnknownCluster(cluster.into()))?;
        let candidates: Vec<&Arc<BackendCluster>> =
            self.clusters.iter().filter(|c| Arc::ptr_eq(c, primary) || c.role == ClusterRole::Failover).collect();
        let to = candidates.iter().find(|c| c.name == target).ok_or_else(|| SwitchError::UnknownTarget {
            cluster: cluster.into(),
            target: target.into(),
            expected: candidates.iter().map(|c| c.name.as_str()).collect::<Vec<_>>().join(", "),
        })?;
        Ok((*to).clone())
    }

    /// Moves traffic of primary cluster `cluster` to `target` (itself, to switch back, or a failover).
    pub fn switch(&self, cluster: &str, target: &str) -> Result<SwitchOutcome, SwitchError> {
        let to = self.target(cluster, target)?;
        let to = &to;
        // A poisoned lock only means a panic elsewhere mid-switch; the ArcSwap itself is always consistent.
        let _guard = self.switching.lock().unwrap_or_else(|p| p.into_inner());
        let current = self.active.load_full();
        if Arc::ptr_eq(&current.cluster, to) {
            return Ok(SwitchOutcome::AlreadyActive { name: to.name.clone() });
        }
        let next = ActiveCluster {
            cluster: (*to).clone(),
            epoch: current.epoch + 1,
            since: SystemTime::now(),
            switch_count: current.switch_count + 1,
        };
        let epoch = next.epoch;
        self.active.store(Arc::new(next));
        self.epoch.send_replace(epoch);
        Ok(SwitchOutcome::Switched { from: current.cluster.name.clone(), to: to.name.clone(), epoch })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn selector() -> ClusterSelector {
        let main = Arc::new(BackendCluster::new("main", vec![]));
        let failover = Arc::new(BackendCluster::new("failover", vec![]).with_role(ClusterRole::Failover));
        ClusterSelector::new(vec![main, failover]).expect("clusters")
    }

    #[test]
    fn switching_moves_the_active_cluster_and_bumps_the_epoch() {
        let s = selector();
        let mut rx = s.subscribe();
        assert_eq!(s.active().cluster.name, "main");
        let outcome = s.switch("main", "failover");
        assert_eq!(outcome, Ok(SwitchOutcome::Switched { from: "main".into(), to: "failover".into(), epoch: 1 }));
        assert!(rx.has_changed().unwrap_or(false));
        assert_eq!((s.active().cluster.name.as_str(), s.epoch(), s.active().switch_count), ("failover", 1, 1));
        assert_eq!(s.switch("main", "main").map(|_| s.epoch()), Ok(2), "to=main switches back");
        assert_eq!(*rx.borrow_and_update(), 2);
    }

    #[test]
    fn refused_switches_change_nothing() {
        let s = selector();
        assert_eq!(s.switch("main", "main"), Ok(SwitchOutcome::AlreadyActive { name: "main".into() }));
        assert!(matches!(s.switch("nope", "failover"), Err(SwitchError::UnknownCluster(_))));
        assert!(matches!(s.switch("failover", "main"), Err(SwitchError::UnknownCluster(_))), "only the primary");
        assert!(matches!(s.switch("main", "elsewhere"), Err(SwitchError::UnknownTarget { .. })));
        assert_eq!((s.active().cluster.name.as_str(), s.epoch(), s.active().switch_count), ("main", 0, 0));
    }
}
