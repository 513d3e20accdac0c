//! Automatic failover (`gateway.failover.automatic`, off by default): every instance probes the primary and the
//! failover cluster (connect, authenticate, answer Metadata) and announces since when it finds the primary
//! down. When the primary has been down for `unreachable_for_ms` on at least `quorum` live instances (this one
//! among them) and the failover cluster answers, this instance switches the fleet (unplanned). Several instances
//! deciding at once decide the same target: the fleet's ranking settles it. Switching back happens only with
//! `fail_back: true`, once the primary has answered as long. Every decision is logged with its evidence and
//! recorded in the switch history (user `automatic`).

use std::sync::Arc;
use std::time::Duration;

use franzgate_api::topology::{BackendCluster, ClusterRole};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::records::HistoryRecord;
use super::{Fleet, lock, now_ms};

/// The automatic failover's settings.
#[derive(Debug, Clone)]
pub struct AutomaticFailover {
    /// How long the primary must be unreachable.
    pub unreachable_for: Duration,
    /// Instances that must see it so.
    pub quorum: usize,
    /// Switch back once the primary answers again as long.
    pub fail_back: bool,
    /// How often the clusters are probed.
    pub probe_interval: Duration,
}

/// What this instance's probes found.
#[derive(Debug, Default, Clone, Copy)]
pub struct Health {
    /// Since when the primary has not answered (ms since the Unix epoch).
    pub primary_down_since_ms: Option<u64>,
    /// Since when the primary has answered again.
    pub primary_up_since_ms: Option<u64>,
    /// The failover cluster answered the last probe.
    pub failover_up: bool,
}

impl Fleet {
    /// Probes the clusters and acts on what the fleet sees, until `shutdown`.
    pub async fn watch_primary(self: Arc<Self>, automatic: AutomaticFailover, shutdown: CancellationToken) {
        let (Some(primary), Some(failover)) = (self.selector.primary().cloned(), self.failover_cluster()) else {
            return;
        };
        loop {
            tokio::select! {
                _ = tokio::time::sleep(automatic.probe_interval) => {}
                _ = shutdown.cancelled() => return,
            }
            let (primary_up, failover_up) = tokio::join!(self.probe(&primary), self.probe(&failover));
            if self.observe(primary_up.is_ok(), failover_up.is_ok())
                && let Err(reason) = &primary_up
            {
                warn!(cluster = %primary.name, %reason, "automatic failover: the primary cluster does not answer");
            }
            self.consider(&automatic, &primary, &failover).await;
        }
    }

    fn failover_cluster(&self) -> Option<Arc<BackendCluster>> {
        self.selector.clusters().iter().find(|c| c.role == ClusterRole::Failover).cloned()
    }

    async fn probe(&self, cluster: &Arc<BackendCluster>) -> Result<usize, String> {
        let security = self.backends.get(&cluster.name);
        crate::probe::probe_cluster(cluster, &security, self.settings.timeout, self.settings.max_frame).await
    }

    /// Notes what the probes found; true when the primary just stopped answering.
    fn observe(&self, primary_up: bool, failover_up: bool) -> bool {
        let mut health = lock(&self.health);
        let now = now_ms();
        let (changed, newly_down) = if primary_up {
            health.primary_up_since_ms.get_or_insert(now);
            (health.primary_down_since_ms.take().is_some(), false)
        } else {
            health.primary_up_since_ms = None;
            let newly_down = health.primary_down_since_ms.is_none();
            health.primary_down_since_ms.get_or_insert(now);
            (newly_down, newly_down)
        };
        health.failover_up = failover_up;
        if changed {
            self.announce_soon.store(true, std::sync::atomic::Ordering::Relaxed);
        }
        newly_down
    }

    /// Switches the fleet when the evidence says so.
    async fn consider(&self, automatic: &AutomaticFailover, primary: &BackendCluster, failover: &BackendCluster) {
        let health = *lock(&self.health);
        let active = self.selector.active().cluster.name.clone();
        let long_enough = |since: Option<u64>| {
            since.is_some_and(|s| now_ms().saturating_sub(s) >= automatic.unreachable_for.as_millis() as u64)
        };
        if active == primary.name && long_enough(health.primary_down_since_ms) && health.failover_up {
            let voters: Vec<String> = self
                .instances()
                .into_iter()
                .filter(|i| i.alive && i.record.id != self.settings.id && long_enough(i.record.primary_down_since_ms))
                .map(|i| i.record.id)
                .chain(std::iter::once(self.settings.id.clone()))
                .collect();
            if voters.len() < automatic.quorum {
                return;
            }
            let evidence = format!(
                "primary `{}` unreachable for {:?}+ on {} of the quorum {} ({voters:?}); failover `{}` answers",
                primary.name,
                automatic.unreachable_for,
                voters.len(),
                automatic.quorum,
                failover.name
            );
            self.decide(&primary.name, &failover.name, &evidence).await;
        } else if automatic.fail_back && active == failover.name && long_enough(health.primary_up_since_ms) {
            let evidence =
                format!("primary `{}` answers again for {:?}+ (fail_back)", primary.name, automatic.unreachable_for);
            self.decide(&primary.name, &primary.name, &evidence).await;
        }
    }

    async fn decide(&self, primary: &str, target: &str, evidence: &str) {
        let started = std::time::Instant::now();
        let from = self.selector.active().cluster.name.clone();
        let outcome = self.switch(primary, target, "automatic").await;
        let (status, message) = match &outcome {
            Ok(_) => (200, "Cluster switched".to_string()),
            Err(e) => (409, e.to_string()),
        };
        match &outcome {
            Ok(switched) => warn!(%from, to = target, evidence, persisted = ?switched.persisted,
                "automatic failover: the fleet switched"),
            Err(error) => info!(%error, evidence, "automatic failover: not switched now"),
        }
        let attempt = HistoryRecord {
            at_ms: now_ms(),
            by: self.settings.id.clone(),
            user: "automatic".into(),
            from,
            to: target.to_string(),
            mode: "automatic".into(),
            dry_run: false,
            forced: false,
            status,
            outcome: format!("{message}: {evidence}"),
            duration_ms: started.elapsed().as_millis() as u64,
            fenced_ms: None,
            replication_wait_ms: None,
            failed_checks: Vec::new(),
        };
        self.remember(attempt.clone());
        let (_, failed) = self.write_everywhere(&super::records::ControlRecord::History(attempt)).await;
        for (cluster, reason) in failed {
            warn!(%cluster, %reason, "could not record the automatic switch in the cluster's control topic");
        }
    }
}
