//! The planned switch (`?mode=planned`): fence producers on the active cluster, fleet-wide; wait until
//! replication copied every partition of the topics clients used (asked Metadata for in the last 15 minutes) to
//! its end; then switch, which lifts the fence. If replication
//! does not catch up within the timeout, the fence is lifted and nothing switches.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use tracing::{info, warn};

use super::records::{ControlRecord, FenceRecord};
use super::{Fleet, FleetSwitch, FleetSwitchError, lock, now_ms};
use crate::backend::tails::{Partition, Tail};

/// Topics clients asked Metadata for within this long are the ones a planned switch waits for (a producer
/// refreshes its metadata every 5 minutes by default).
const USED_WITHIN: Duration = Duration::from_secs(15 * 60);
/// The pause between two looks at the clusters' partition tails.
const LOOK_AGAIN: Duration = Duration::from_millis(200);

/// What a planned switch did before switching.
#[derive(Debug)]
pub struct Planned {
    /// The switch itself.
    pub switch: FleetSwitch,
    /// How long Produce to the old cluster was fenced.
    pub fenced: Duration,
    /// How long replication took to catch up once every instance applied the fence.
    pub waited: Duration,
    /// Mirrored partitions compared.
    pub partitions: usize,
    /// Topics of the old cluster not on the new one (not mirrored: their records stay behind).
    pub not_mirrored: Vec<String>,
    /// Live instances that did not confirm the fence in time (their producers may have written on).
    pub unconfirmed: Vec<String>,
}

/// Why a planned switch did not switch.
#[derive(Debug)]
pub enum PlannedRefusal {
    /// As an unplanned switch would refuse (unknown cluster or target, another switch in progress).
    Switch(FleetSwitchError),
    /// Replication did not reach the end of every mirrored partition in time: the fence was lifted.
    Behind {
        /// The timeout.
        timeout: Duration,
        /// Per partition behind: the old cluster's end offset and the new cluster's.
        behind: Vec<(Partition, i64, i64)>,
    },
    /// The clusters could not be read.
    Unreadable(String),
}

/// Whether a topic is a mirrored data topic (not Kafka's, MirrorMaker's, Connect's or the gateway's own).
pub(super) fn mirrored_kind(topic: &str) -> bool {
    !(topic.starts_with("__")
        || topic.starts_with("_franzgate")
        || topic.starts_with("mm2-")
        || topic.starts_with("connect-")
        || topic.ends_with(".internal")
        || topic == "heartbeats"
        || topic.ends_with(".heartbeats"))
}

impl Fleet {
    /// A planned switch of `cluster`'s traffic to `target`, waiting at most `timeout` for replication.
    pub async fn planned_switch(
        &self,
        cluster: &str,
        target: &str,
        user: &str,
        timeout: Duration,
    ) -> Result<Planned, PlannedRefusal> {
        let Ok(_one_at_a_time) = self.switching.try_lock() else {
            return Err(PlannedRefusal::Switch(FleetSwitchError::InProgress));
        };
        let to = self.selector.target(cluster, target).map_err(|e| PlannedRefusal::Switch(e.into()))?;
        let from = self.selector.active().cluster.clone();
        if from.name == to.name {
            let switch =
                self.switch_locked(cluster, target, user).await.map_err(|e| PlannedRefusal::Switch(e.into()))?;
            let (fenced, waited) = (Duration::ZERO, Duration::ZERO);
            return Ok(Planned {
                switch,
                fenced,
                waited,
                partitions: 0,
                not_mirrored: Vec::new(),
                unconfirmed: Vec::new(),
            });
        }
        let started = Instant::now();
        self.set_fence(&from.name, true).await;
        let unconfirmed = self.await_fence_confirmed(&from.name, timeout).await;
        // Requests forwarded just before the fence may still be written: one poll interval for them.
        tokio::time::sleep(self.settings.poll_interval).await;
        let fenced_at = Instant::now();
        let caught_up = self.await_replication(&from, &to, started + timeout, timeout).await;
        let (partitions, not_mirrored) = match caught_up {
            Ok(found) => found,
            Err(refusal) => {
                self.set_fence(&from.name, false).await;
                warn!(from = %from.name, to = %to.name, ?refusal, "planned switch gave up: the fence is lifted, nothing switched");
                return Err(refusal);
            }
        };
        let waited = fenced_at.elapsed();
        let switch = match self.switch_locked(cluster, target, user).await {
            Ok(switch) => switch,
            Err(e) => {
                self.set_fence(&from.name, false).await;
                return Err(PlannedRefusal::Switch(e.into()));
            }
        };
        let fenced = started.elapsed();
        info!(from = %from.name, to = %to.name, ?fenced, ?waited, partitions, "planned switch: replication caught up, switched");
        Ok(Planned { switch, fenced, waited, partitions, not_mirrored, unconfirmed })
    }

    /// Sets (or lifts) the fence on `cluster` for the decision applied now, here and on every cluster.
    async fn set_fence(&self, cluster: &str, active: bool) {
        let epoch = self.applied().map_or(0, |a| a.epoch);
        let by = self.settings.id.clone();
        let fence = FenceRecord { cluster: cluster.to_string(), epoch, active, by, at_ms: now_ms() };
        *lock(&self.fence) = Some(fence.clone());
        self.refresh_fence();
        let (_, failed) = self.write_everywhere(&ControlRecord::Fence(fence)).await;
        for (cluster, reason) in failed {
            warn!(%cluster, %reason, active, "could not write the fence to the cluster's control topic");
        }
    }

    /// Waits until every other live instance announces the fence on `cluster` (at most three announcement
    /// intervals, and `timeout`); returns the ones that did not.
    async fn await_fence_confirmed(&self, cluster: &str, timeout: Duration) -> Vec<String> {
        let deadline = Instant::now() + timeout.min(3 * self.settings.announce_interval);
        loop {
            let unconfirmed: Vec<String> = self
                .instances()
                .into_iter()
                .filter(|i| i.alive && i.record.id != self.settings.id)
                .filter(|i| i.record.fenced.as_deref() != Some(cluster))
                .map(|i| i.record.id)
                .collect();
            if unconfirmed.is_empty() || Instant::now() >= deadline {
                if !unconfirmed.is_empty() {
                    warn!(?unconfirmed, "planned switch: instances did not confirm the fence in time; going on");
                }
                return unconfirmed;
            }
            tokio::time::sleep(self.settings.poll_interval.min(Duration::from_millis(100))).await;
        }
    }

    /// Waits until the last record of every mirrored partition of `from` is the last record of its copy on `to`
    /// (and `from`'s tails did not move meanwhile), until `deadline`. Returns the partitions compared and the
    /// topics not mirrored.
    async fn await_replication(
        &self,
        from: &std::sync::Arc<franzgate_api::topology::BackendCluster>,
        to: &std::sync::Arc<franzgate_api::topology::BackendCluster>,
        deadline: Instant,
        timeout: Duration,
    ) -> Result<(usize, Vec<String>), PlannedRefusal> {
        let (source, target) = (self.client(from), self.client(to));
        loop {
            let used: Vec<String> =
                self.selector.used_topics(USED_WITHIN).into_iter().filter(|t| mirrored_kind(t)).collect();
            if used.is_empty() {
                return Ok((0, Vec::new()));
            }
            let before = source.partition_tails(Some(&used)).await.map_err(PlannedRefusal::Unreadable)?;
            let before: BTreeMap<Partition, Tail> = before.into_iter().filter(|((t, _), _)| mirrored_kind(t)).collect();
            let mut topics: Vec<String> = before.keys().map(|(t, _)| t.clone()).collect();
            topics.dedup();
            let copies = target.partition_tails(Some(&topics)).await.map_err(PlannedRefusal::Unreadable)?;
            let not_mirrored: Vec<String> =
                topics.iter().filter(|t| !copies.keys().any(|(c, _)| c == *t)).cloned().collect();
            let after = source.partition_tails(Some(&topics)).await.map_err(PlannedRefusal::Unreadable)?;
            let behind: Vec<(Partition, i64, i64)> = before
                .iter()
                .filter(|((topic, _), _)| !not_mirrored.contains(topic))
                .filter_map(|(partition, tail)| {
                    let copy = copies.get(partition);
                    let caught_up = tail.copied_by(copy);
                    let moved = after.get(partition) != Some(tail);
                    (!caught_up || moved).then(|| (partition.clone(), tail.end, copy.map_or(-1, |c| c.end)))
                })
                .collect();
            if behind.is_empty() {
                return Ok((before.len(), not_mirrored));
            }
            if Instant::now() + LOOK_AGAIN >= deadline {
                return Err(PlannedRefusal::Behind { timeout, behind });
            }
            tokio::time::sleep(LOOK_AGAIN).await;
        }
    }
}
