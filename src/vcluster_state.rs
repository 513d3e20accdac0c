//! Virtual clusters and service accounts kept in a compacted Kafka topic (`_franzgate_state` by default) on the
//! active cluster.
//!
//! The topic is the source of truth: every gateway instance reads it at start-up and re-reads it every
//! `refresh_interval_ms`, and an admin change is appended to it before it takes effect anywhere, so instances
//! share one view. Replicated with the data (MirrorMaker 2 with an identity replication policy), it gives the
//! failover cluster every tenant: after a switch the store reads the new active cluster's copy from the start.
//! Records are JSON [`StateRecord`]s keyed by [`StateRecord::key`]; the latest per key wins, and a tombstone
//! forgets its key.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use franzgate_api::selector::ClusterSelector;
use franzgate_api::vcluster::{StateRecord, VClusterError, VirtualClusters};
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::backend::BackendSecurityMap;
use crate::backend::client::{ReadRecord, TopicClient, record};

/// The state topic of the active cluster, and the registry it fills.
pub struct StateStore {
    /// The in-memory view filters read.
    pub registry: Arc<VirtualClusters>,
    /// Which cluster is active (the topic is read from and written to that one).
    pub selector: Arc<ClusterSelector>,
    /// How to reach each cluster.
    pub backends: BackendSecurityMap,
    /// The topic.
    pub topic: String,
    /// Per connection and per request.
    pub timeout: Duration,
    /// Largest response accepted.
    pub max_frame: usize,
    /// Time between re-reads.
    pub refresh_interval: Duration,
    /// (cluster, next offset) read so far; held across a read or a write so they do not interleave.
    position: Mutex<Option<(String, i64)>>,
}

/// Why an admin change was not made.
#[derive(Debug, thiserror::Error)]
pub enum ChangeError {
    /// The change itself is invalid (unknown name, overlapping prefix, ...).
    #[error(transparent)]
    Invalid(#[from] VClusterError),
    /// The state topic could not be read or written: nothing changed.
    #[error("the state topic is unavailable, nothing changed: {0}")]
    Unavailable(String),
    /// Another gateway instance changed the same thing at the same moment, and its change stands.
    #[error("a concurrent change by another gateway instance stands; read the state and retry")]
    Conflict,
}

/// Compaction keeps the latest record per key, forever: the state is never lost to retention.
const TOPIC_CONFIGS: &[(&str, &str)] = &[("cleanup.policy", "compact")];

// === impl StateStore ===

impl StateStore {
    /// A store for `topic`, filling `registry`.
    pub fn new(
        registry: Arc<VirtualClusters>,
        selector: Arc<ClusterSelector>,
        backends: BackendSecurityMap,
        topic: String,
        timeout: Duration,
        max_frame: usize,
        refresh_interval: Duration,
    ) -> Self {
        Self { registry, selector, backends, topic, timeout, max_frame, refresh_interval, position: Mutex::new(None) }
    }

    /// Re-reads the topic every interval until `shutdown`.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(self.refresh_interval) => {}
                _ = shutdown.cancelled() => return,
            }
            if let Err(reason) = self.refresh().await {
                warn!(topic = %self.topic, %reason, "cannot read the virtual-cluster state topic; keeping the last state");
            }
        }
    }

    /// Reads what was appended since the last read (everything, after a switch or at start-up), creating the
    /// topic if it is missing. Returns the number of records applied.
    pub async fn refresh(&self) -> Result<usize, String> {
        let mut position = self.position.lock().await;
        self.refresh_locked(&mut position).await
    }

    /// Makes one change: `plan` decides it against the current state (re-read first, so other instances'
    /// changes count), the record is appended to the topic, and only then applied here. `plan` returning
    /// `None` means nothing needs to change.
    pub async fn change(
        &self,
        plan: impl FnOnce(&VirtualClusters) -> Result<Option<StateRecord>, VClusterError>,
    ) -> Result<Option<StateRecord>, ChangeError> {
        let mut position = self.position.lock().await;
        self.refresh_locked(&mut position).await.map_err(ChangeError::Unavailable)?;
        let Some(record) = plan(&self.registry)? else {
            return Ok(None);
        };
        self.append(&record).await.map_err(ChangeError::Unavailable)?;
        if !self.registry.apply(&record) {
            return Err(ChangeError::Conflict);
        }
        info!(topic = %self.topic, key = %record.key(), "virtual-cluster state changed");
        Ok(Some(record))
    }

    async fn refresh_locked(&self, position: &mut Option<(String, i64)>) -> Result<usize, String> {
        let client = self.client();
        let from = match position.as_ref() {
            Some((cluster, offset)) if *cluster == client.cluster.name => *offset,
            // Another cluster became active: read its copy from the start (it may hold what this one did not).
            _ => 0,
        };
        let mut leader = match client.leader().await? {
            Some(leader) => leader,
            None => {
                client.create(TOPIC_CONFIGS).await?;
                info!(topic = %self.topic, cluster = %client.cluster.name, "created the virtual-cluster state topic");
                *position = Some((client.cluster.name.clone(), 0));
                return Ok(0);
            }
        };
        let (records, next) = client.read_from(&mut leader, from).await?;
        let applied = records.len();
        for record in records {
            self.apply_read(&record);
        }
        if applied > 0 {
            debug!(topic = %self.topic, cluster = %client.cluster.name, applied, next, "virtual-cluster state read");
        }
        *position = Some((client.cluster.name.clone(), next));
        Ok(applied)
    }

    fn apply_read(&self, record: &ReadRecord) {
        let key = record.key.as_deref().map(String::from_utf8_lossy).unwrap_or_default();
        match &record.value {
            None => self.registry.remove_key(&key),
            Some(value) => match serde_json::from_slice::<StateRecord>(value) {
                Ok(state) if state.key() == key => {
                    if !self.registry.apply(&state) {
                        debug!(offset = record.offset, %key, "state record older than, or conflicting with, the state: ignored");
                    }
                }
                Ok(_) => warn!(offset = record.offset, %key, "state record's key does not match its value; skipped"),
                Err(e) => warn!(offset = record.offset, %key, reason = %e, "undecodable state record; skipped"),
            },
        }
    }

    async fn append(&self, state: &StateRecord) -> Result<(), String> {
        let client = self.client();
        let mut leader = match client.leader().await? {
            Some(leader) => leader,
            None => {
                client.create(TOPIC_CONFIGS).await?;
                client.leader().await?.ok_or_else(|| format!("topic `{}` missing after creation", self.topic))?
            }
        };
        let value = serde_json::to_vec(state).map_err(|e| e.to_string())?;
        let record = record(0, Bytes::from(state.key()), Bytes::from(value));
        client.produce(&mut leader, &[record]).await
    }

    fn client(&self) -> TopicClient {
        let active = self.selector.active();
        TopicClient {
            security: self.backends.get(&active.cluster.name),
            cluster: active.cluster.clone(),
            topic: self.topic.clone(),
            timeout: self.timeout,
            max_frame: self.max_frame,
        }
    }
}
