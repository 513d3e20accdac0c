//! The fleet: every gateway instance serves the cluster one switch decision names, and comes back on it after a
//! restart.
//!
//! The decision is a record in a compacted control topic (`_franzgate_control` by default) kept on *every*
//! cluster, so it can be read while any one of them is down. A switch call to any instance applies the switch
//! there at once, then writes the decision, with an epoch one above the highest it knew, to every cluster it
//! reaches. Every instance reads the topic on every cluster every `poll_interval_ms` and applies the decision
//! that ranks highest ([`records::SwitchRecord::rank`]: epoch, then time, then deciding instance) among all it can
//! read. A starting instance does the same before it serves its first client. Instances also announce
//! themselves (id, admin address, cluster served, epoch applied) to the same topic, which the admin API lists.

mod automatic;
mod checks;
mod planned;
pub mod records;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub use automatic::AutomaticFailover;
use bytes::Bytes;
pub use checks::{Check, CheckReport};
use franzgate_api::selector::{ClusterSelector, SwitchError, SwitchOutcome};
use franzgate_api::topology::BackendCluster;
pub use planned::{Planned, PlannedRefusal};
use records::{ControlRecord, FenceRecord, HistoryRecord, InstanceRecord, SwitchRecord};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::backend::BackendSecurityMap;
use crate::backend::client::{TopicClient, record};
use crate::net::Stream;

/// Switch attempts kept in memory for the history endpoint (all of them stay in the topic).
const HISTORY_KEPT: usize = 1000;

/// The control topic's settings: compacted, so it holds the latest decision and announcements only.
const TOPIC_CONFIGS: &[(&str, &str)] = &[("cleanup.policy", "compact")];

/// How an instance takes part in the fleet.
#[derive(Debug, Clone)]
pub struct FleetSettings {
    /// This instance's id.
    pub id: String,
    /// Where its admin API listens (announced).
    pub admin: String,
    /// The control topic.
    pub topic: String,
    /// How often every cluster's control topic is read.
    pub poll_interval: Duration,
    /// How often this instance announces itself.
    pub announce_interval: Duration,
    /// Per connection attempt and per request to a cluster.
    pub timeout: Duration,
    /// The largest response accepted.
    pub max_frame: usize,
}

/// This instance's part in the fleet.
pub struct Fleet {
    settings: FleetSettings,
    selector: Arc<ClusterSelector>,
    backends: BackendSecurityMap,
    /// The decision applied last (`None`: none read yet; the gateway serves its main cluster).
    applied: Mutex<Option<SwitchRecord>>,
    /// The newest announcement of each instance, from any cluster.
    instances: Mutex<BTreeMap<String, InstanceRecord>>,
    /// Switch attempts read or made, by (time, instance); the newest [`HISTORY_KEPT`] in memory.
    history: Mutex<BTreeMap<(u64, String), HistoryRecord>>,
    /// What this instance's probes found (automatic failover).
    health: Mutex<automatic::Health>,
    /// The latest fence record read or written.
    fence: Mutex<Option<FenceRecord>>,
    /// Announce at the next turn of the follow loop (the decision or the fence changed).
    announce_soon: std::sync::atomic::AtomicBool,
    /// Per cluster: the connection to the control topic's leader and the next offset to read.
    readers: tokio::sync::Mutex<HashMap<String, (Option<Stream>, i64)>>,
    /// Whether each cluster's topic was readable last time, so a change is logged once.
    reachable: Mutex<HashMap<String, bool>>,
    /// One switch call at a time on this instance.
    switching: tokio::sync::Mutex<()>,
}

/// What a switch call did.
#[derive(Debug)]
pub struct FleetSwitch {
    /// The switch on this instance.
    pub outcome: SwitchOutcome,
    /// The decision's epoch (`None` when nothing changed and nothing was written).
    pub fleet_epoch: Option<u64>,
    /// The clusters the decision was written to.
    pub persisted: Vec<String>,
    /// The clusters it could not be written to, and why.
    pub failed: Vec<(String, String)>,
    /// When this instance already serves the target because it followed another instance's decision (of the
    /// last [`FOLLOWED_RECENTLY`]): that decision. A script that calls every instance, as Conduktor's
    /// documentation asks, gets "Cluster switched" from each.
    pub followed: Option<SwitchRecord>,
}

/// Why a switch call changed nothing.
#[derive(Debug, thiserror::Error)]
pub enum FleetSwitchError {
    /// Unknown cluster or target.
    #[error(transparent)]
    Refused(#[from] SwitchError),
    /// Another switch call on this instance has not finished.
    #[error("another switch is in progress on this instance; try again when it has finished")]
    InProgress,
}

/// How recent another instance's decision must be for a switch call to the same target to be answered as the
/// switch it is part of.
pub const FOLLOWED_RECENTLY: Duration = Duration::from_secs(300);

/// An instance as the fleet sees it.
#[derive(Debug, Clone)]
pub struct InstanceView {
    /// Its last announcement.
    pub record: InstanceRecord,
    /// Announced within three announcement intervals.
    pub alive: bool,
    /// It applied the decision this instance ranks highest.
    pub converged: bool,
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Fleet {
    /// An instance of the fleet over `selector`'s clusters.
    pub fn new(settings: FleetSettings, selector: Arc<ClusterSelector>, backends: BackendSecurityMap) -> Self {
        Self {
            settings,
            selector,
            backends,
            applied: Mutex::default(),
            instances: Mutex::default(),
            fence: Mutex::default(),
            health: Mutex::default(),
            history: Mutex::default(),
            announce_soon: std::sync::atomic::AtomicBool::new(false),
            readers: tokio::sync::Mutex::default(),
            reachable: Mutex::default(),
            switching: tokio::sync::Mutex::default(),
        }
    }

    /// This instance's id.
    pub fn id(&self) -> &str {
        &self.settings.id
    }

    /// The control topic.
    pub fn topic(&self) -> &str {
        &self.settings.topic
    }

    /// The decision applied last.
    pub fn applied(&self) -> Option<SwitchRecord> {
        lock(&self.applied).clone()
    }

    /// Every instance announced on any cluster this instance reads (itself included), by id.
    pub fn instances(&self) -> Vec<InstanceView> {
        let fleet_epoch = self.applied().map_or(0, |a| a.epoch);
        let horizon = now_ms().saturating_sub(3 * self.settings.announce_interval.as_millis() as u64);
        lock(&self.instances)
            .values()
            .map(|record| InstanceView {
                alive: record.seen_ms >= horizon,
                converged: record.epoch == fleet_epoch,
                record: record.clone(),
            })
            .collect()
    }

    /// Reads every cluster's control topic (creating it where missing) within `budget` and applies the decision
    /// that ranks highest: the start-up step, before any client is served.
    pub async fn load(&self, budget: Duration) {
        if tokio::time::timeout(budget, self.sync()).await.is_err() {
            warn!(topic = %self.settings.topic, "the control topic could not be read from every cluster within {budget:?}");
        }
        match self.applied() {
            Some(decision) => info!(topic = %self.settings.topic, active = %decision.active, epoch = decision.epoch,
                by = %decision.by, "the fleet's switch decision applied at start-up"),
            None => {
                info!(topic = %self.settings.topic, "no switch decision in the control topic: serving the main cluster")
            }
        }
    }

    /// Follows the control topic on every cluster and announces this instance, until `shutdown`.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        let mut announced: Option<tokio::time::Instant> = None;
        loop {
            let soon = self.announce_soon.swap(false, std::sync::atomic::Ordering::Relaxed);
            if soon || announced.is_none_or(|at| at.elapsed() >= self.settings.announce_interval) {
                self.announce().await;
                announced = Some(tokio::time::Instant::now());
            }
            tokio::select! {
                _ = tokio::time::sleep(self.settings.poll_interval) => {}
                _ = shutdown.cancelled() => return,
            }
            self.sync().await;
        }
    }

    /// A switch call: applies it here, then writes the decision to every cluster this instance reaches.
    pub async fn switch(&self, cluster: &str, target: &str, user: &str) -> Result<FleetSwitch, FleetSwitchError> {
        let Ok(_one_at_a_time) = self.switching.try_lock() else { return Err(FleetSwitchError::InProgress) };
        self.switch_locked(cluster, target, user).await.map_err(FleetSwitchError::Refused)
    }

    /// [`Self::switch`] with the switching lock held.
    async fn switch_locked(&self, cluster: &str, target: &str, user: &str) -> Result<FleetSwitch, SwitchError> {
        let from = self.selector.active().cluster.name.clone();
        let outcome = self.selector.switch(cluster, target)?;
        let decision = {
            let mut applied = lock(&self.applied);
            let unchanged = matches!(outcome, SwitchOutcome::AlreadyActive { .. });
            if unchanged && applied.as_ref().is_none_or(|a| a.active == target) {
                let recent = now_ms().saturating_sub(FOLLOWED_RECENTLY.as_millis() as u64);
                let followed = applied.clone().filter(|a| a.by != self.settings.id && a.at_ms >= recent);
                let fleet_epoch = applied.as_ref().map(|a| a.epoch);
                return Ok(FleetSwitch { outcome, fleet_epoch, persisted: Vec::new(), failed: Vec::new(), followed });
            }
            let epoch = applied.as_ref().map_or(0, |a| a.epoch) + 1;
            let (active, by) = (target.to_string(), self.settings.id.clone());
            let decision = SwitchRecord { active, from, epoch, at_ms: now_ms(), by, user: user.into() };
            *applied = Some(decision.clone());
            decision
        };
        self.refresh_fence();
        let (persisted, failed) = self.write_everywhere(&ControlRecord::Switch(decision.clone())).await;
        if persisted.is_empty() {
            warn!(
                epoch = decision.epoch,
                ?failed,
                "the switch decision reached no cluster: other instances will not \
                follow, and this one comes back on the previous decision after a restart"
            );
        }
        self.note_own_announcement();
        Ok(FleetSwitch { outcome, fleet_epoch: Some(decision.epoch), persisted, failed, followed: None })
    }

    /// Reads what every cluster's control topic gained since the last read, and applies it.
    async fn sync(&self) {
        let clusters = self.selector.clusters().to_vec();
        let reads = clusters.iter().map(|cluster| self.read(cluster));
        let results = futures::future::join_all(reads).await;
        for (cluster, result) in clusters.iter().zip(results) {
            let ok = result.is_ok();
            match result {
                Ok(read) => read.into_iter().for_each(|record| self.apply(record, &cluster.name)),
                Err(reason) => {
                    if lock(&self.reachable).get(&cluster.name) != Some(&false) {
                        warn!(cluster = %cluster.name, topic = %self.settings.topic, %reason,
                            "cannot read the control topic; following the other clusters'");
                    }
                }
            }
            if lock(&self.reachable).insert(cluster.name.clone(), ok) == Some(false) && ok {
                info!(cluster = %cluster.name, topic = %self.settings.topic, "the control topic is readable again");
            }
        }
    }

    /// The records `cluster`'s control topic gained since the last read (all of it the first time).
    async fn read(&self, cluster: &Arc<BackendCluster>) -> Result<Vec<ControlRecord>, String> {
        let client = self.client(cluster);
        let mut readers = self.readers.lock().await;
        let (stream, next) = readers.entry(cluster.name.clone()).or_insert((None, 0));
        let leader = match stream.take() {
            Some(leader) => leader,
            None => match client.leader().await? {
                Some(leader) => leader,
                None => {
                    client.create(TOPIC_CONFIGS).await?;
                    info!(cluster = %cluster.name, topic = %self.settings.topic, "created the control topic");
                    client.leader_once_created().await?
                }
            },
        };
        let mut leader = leader;
        let (records, after) = client.read_from(&mut leader, *next).await?;
        *stream = Some(leader);
        *next = after;
        Ok(records
            .into_iter()
            .filter_map(|r| match ControlRecord::decode(r.key.as_deref()?, r.value.as_deref()?) {
                Ok(record) => record,
                Err(reason) => {
                    warn!(cluster = %cluster.name, offset = r.offset, %reason, "undecodable control record; skipped");
                    None
                }
            })
            .collect())
    }

    /// Applies a record read from `cluster`.
    fn apply(&self, record: ControlRecord, cluster: &str) {
        match record {
            ControlRecord::Instance(announced) => {
                let mut instances = lock(&self.instances);
                let newer = instances.get(&announced.id).is_none_or(|known| announced.seen_ms > known.seen_ms);
                if newer {
                    instances.insert(announced.id.clone(), announced);
                }
            }
            ControlRecord::Switch(decision) => self.adopt(decision, cluster),
            ControlRecord::History(attempt) => self.remember(attempt),
            ControlRecord::Fence(fence) => {
                let mut current = lock(&self.fence);
                if fence.supersedes(current.as_ref()) {
                    *current = Some(fence);
                    drop(current);
                    self.refresh_fence();
                }
            }
        }
    }

    /// Serves the cluster `decision` names if it ranks above the decision applied so far.
    fn adopt(&self, decision: SwitchRecord, read_from: &str) {
        let mut applied = lock(&self.applied);
        if !decision.supersedes(applied.as_ref()) {
            return;
        }
        let Some(primary) = self.selector.primary().map(|p| p.name.clone()) else { return };
        match self.selector.switch(&primary, &decision.active) {
            Ok(SwitchOutcome::Switched { from, to, epoch }) => {
                warn!(%from, %to, local_epoch = epoch, fleet_epoch = decision.epoch, by = %decision.by,
                    user = %decision.user, read_from, "the fleet switched: following its decision");
            }
            Ok(SwitchOutcome::AlreadyActive { .. }) => {
                debug!(fleet_epoch = decision.epoch, by = %decision.by, "the fleet's decision names the cluster served");
            }
            Err(error) => {
                warn!(%error, fleet_epoch = decision.epoch, by = %decision.by, read_from,
                    "the fleet's switch decision names a cluster this instance does not know: not applied");
                return;
            }
        }
        *applied = Some(decision);
        drop(applied);
        self.refresh_fence();
        self.note_own_announcement();
    }

    /// Records a switch attempt here at once, and in the control topic of every cluster reached in the
    /// background (an unreachable cluster must not delay the switch's answer).
    pub fn record_attempt(self: &Arc<Self>, attempt: HistoryRecord) {
        self.remember(attempt.clone());
        let fleet = self.clone();
        tokio::spawn(async move {
            let (_, failed) = fleet.write_everywhere(&ControlRecord::History(attempt)).await;
            for (cluster, reason) in failed {
                warn!(%cluster, %reason, "could not record the switch attempt in the cluster's control topic");
            }
        });
    }

    /// Every switch attempt known, newest first.
    pub fn history(&self) -> Vec<HistoryRecord> {
        lock(&self.history).values().rev().cloned().collect()
    }

    fn remember(&self, attempt: HistoryRecord) {
        let mut history = lock(&self.history);
        history.insert((attempt.at_ms, attempt.by.clone()), attempt);
        while history.len() > HISTORY_KEPT {
            history.pop_first();
        }
    }

    /// Fences Produce to the cluster the latest fence names, while it belongs to the decision applied.
    fn refresh_fence(&self) {
        let epoch = self.applied().map_or(0, |a| a.epoch);
        let fence = lock(&self.fence).clone();
        let fenced = fence.filter(|f| f.active && f.epoch == epoch).map(|f| f.cluster);
        if self.selector.produce_fence() != fenced {
            match &fenced {
                Some(cluster) => warn!(%cluster, "planned switch: Produce to the cluster is fenced"),
                None => info!("planned switch: the produce fence is lifted"),
            }
            self.selector.set_produce_fence(fenced);
            self.announce_soon.store(true, std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// This instance's announcement, as it stands now.
    fn own_announcement(&self) -> InstanceRecord {
        InstanceRecord {
            id: self.settings.id.clone(),
            admin: self.settings.admin.clone(),
            active: self.selector.active().cluster.name.clone(),
            epoch: self.applied().map_or(0, |a| a.epoch),
            seen_ms: now_ms(),
            fenced: self.selector.produce_fence(),
            primary_down_since_ms: lock(&self.health).primary_down_since_ms,
        }
    }

    /// Lists this instance's current state at once (the next announcement tells the others).
    fn note_own_announcement(&self) {
        let own = self.own_announcement();
        lock(&self.instances).insert(own.id.clone(), own);
    }

    async fn announce(&self) {
        let own = self.own_announcement();
        lock(&self.instances).insert(own.id.clone(), own.clone());
        let (_, failed) = self.write_everywhere(&ControlRecord::Instance(own)).await;
        for (cluster, reason) in failed {
            debug!(%cluster, %reason, "could not announce this instance on the cluster");
        }
    }

    /// Writes `control` to every cluster at once; returns the clusters written and the failures.
    async fn write_everywhere(&self, control: &ControlRecord) -> (Vec<String>, Vec<(String, String)>) {
        let (key, value) = control.encode();
        let (key, value) = (Bytes::from(key), Bytes::from(value));
        let clusters = self.selector.clusters().to_vec();
        let writes = clusters.iter().map(|cluster| {
            let client = self.client(cluster);
            let (key, value) = (key.clone(), value.clone());
            async move {
                let write = async {
                    let mut leader = match client.leader().await? {
                        Some(leader) => leader,
                        None => {
                            client.create(TOPIC_CONFIGS).await?;
                            client.leader_once_created().await?
                        }
                    };
                    client.produce(&mut leader, &[record(0, key, value)]).await
                };
                let bound = client.timeout.max(Duration::from_secs(1)) * 2;
                tokio::time::timeout(bound, write).await.unwrap_or_else(|_| Err(format!("no answer within {bound:?}")))
            }
        });
        let results = futures::future::join_all(writes).await;
        let (mut written, mut failed) = (Vec::new(), Vec::new());
        for (cluster, result) in clusters.iter().zip(results) {
            match result {
                Ok(()) => written.push(cluster.name.clone()),
                Err(reason) => failed.push((cluster.name.clone(), reason)),
            }
        }
        (written, failed)
    }

    fn client(&self, cluster: &Arc<BackendCluster>) -> TopicClient {
        TopicClient {
            cluster: cluster.clone(),
            security: self.backends.get(&cluster.name),
            topic: self.settings.topic.clone(),
            timeout: self.settings.timeout,
            max_frame: self.settings.max_frame,
        }
    }
}
