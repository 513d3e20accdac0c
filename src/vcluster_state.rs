//! Virtual clusters and service accounts kept in a compacted Kafka topic (`_franzgate_state` by default) on the
//! active cluster.
//!
//! The topic is the source of truth: every gateway instance reads it at start-up and re-reads it every
//! `refresh_interval_ms`, and an admin change is appended to it before it takes effect anywhere, so instances
//! share one view. Replicated with the data (MirrorMaker 2 with an identity replication policy), it gives the
//! failover cluster every tenant: after a switch the store reads the new active cluster's copy from the start.
//! Records are JSON [`StateRecord`]s keyed by [`StateRecord::key`]; the latest per key wins, and a tombstone
//! forgets its key.
//!
//! The topic also keeps the service-account token secret when the gateway generates one (no
//! `GATEWAY_USER_POOL_SECRET_KEY`): see [`StateStore::establish_token_secret`].

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use franzgate_api::selector::ClusterSelector;
use franzgate_api::vcluster::{SecretString, StateRecord, TOKEN_SECRET_KEY, VClusterError, VirtualClusters};
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
    /// The first token secret in the active cluster's topic, read since the topic was last read from its start.
    first_secret: std::sync::Mutex<Option<String>>,
}

/// The token secret the gateway instances share, and where it came from.
#[derive(Debug)]
pub struct EstablishedSecret {
    /// The secret.
    pub secret: String,
    /// True when this instance wrote it; false when another instance had written it first.
    pub written_here: bool,
    /// State records read from the topic meanwhile (virtual clusters and accounts included).
    pub records: usize,
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

/// Waits `pause` (doubling it, up to a second) before another try, or gives `reason` back once `deadline` is near.
async fn retry_or_give_up(
    topic: &str,
    reason: String,
    pause: &mut Duration,
    deadline: tokio::time::Instant,
) -> Result<(), String> {
    if tokio::time::Instant::now() + *pause >= deadline {
        return Err(reason);
    }
    debug!(%topic, %reason, "state topic not ready; trying again");
    tokio::time::sleep(*pause).await;
    *pause = (*pause * 2).min(Duration::from_secs(1));
    Ok(())
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
        Self {
            registry,
            selector,
            backends,
            topic,
            timeout,
            max_frame,
            refresh_interval,
            position: Mutex::new(None),
            first_secret: std::sync::Mutex::new(None),
        }
    }

    /// The token secret every gateway instance using this topic signs and verifies service-account tokens
    /// with: the first one in the topic if there is one, else `candidate`, written there. When two instances
    /// write at once, the first record in the topic wins and the other instance adopts it; that instance then
    /// writes the winner again, so that compaction, which keeps the latest record per key, keeps the winner.
    /// Reads the whole topic (the virtual-cluster state with it).
    pub async fn establish_token_secret(&self, candidate: &str) -> Result<EstablishedSecret, String> {
        let mut position = self.position.lock().await;
        let mut records = self.refresh_locked(&mut position).await?;
        if let Some(secret) = self.first_secret() {
            // Ours when an earlier attempt wrote it but could not read it back.
            let written_here = secret == candidate;
            return Ok(EstablishedSecret { secret, written_here, records });
        }
        self.append(&token_secret_record(candidate)).await?;
        records += self.refresh_locked(&mut position).await?;
        let secret = self.first_secret().ok_or("the token secret just written is not in the topic")?;
        let written_here = secret == candidate;
        if !written_here {
            info!(topic = %self.topic, "another gateway instance wrote its token secret first: using that one");
            self.append(&token_secret_record(&secret)).await?;
        }
        Ok(EstablishedSecret { secret, written_here, records })
    }

    /// [`Self::establish_token_secret`], retried until `wait` has passed (the cluster may still be starting).
    pub async fn establish_token_secret_within(
        &self,
        candidate: &str,
        wait: Duration,
    ) -> Result<EstablishedSecret, String> {
        let deadline = tokio::time::Instant::now() + wait;
        let mut pause = Duration::from_millis(200);
        loop {
            match self.establish_token_secret(candidate).await {
                Ok(established) => return Ok(established),
                Err(reason) if tokio::time::Instant::now() + pause < deadline => {
                    warn!(topic = %self.topic, %reason, "cannot read or write the token secret in the state topic yet; retrying");
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(5));
                }
                Err(reason) => return Err(reason),
            }
        }
    }

    fn first_secret(&self) -> Option<String> {
        self.first_secret.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clone()
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
        // Kafka answers the first requests to a topic just created, or whose leader just moved, with retriable
        // errors (NOT_LEADER_OR_FOLLOWER, LEADER_NOT_AVAILABLE, ...): an admin change tries again for a while
        // before it reports the topic unavailable. Appending a record twice is harmless: the state is its latest.
        let deadline = tokio::time::Instant::now() + self.timeout.max(Duration::from_secs(10));
        let mut pause = Duration::from_millis(100);
        while let Err(reason) = self.refresh_locked(&mut position).await {
            retry_or_give_up(&self.topic, reason, &mut pause, deadline).await.map_err(ChangeError::Unavailable)?;
        }
        let Some(record) = plan(&self.registry)? else {
            return Ok(None);
        };
        while let Err(reason) = self.append(&record).await {
            retry_or_give_up(&self.topic, reason, &mut pause, deadline).await.map_err(ChangeError::Unavailable)?;
        }
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
        if from == 0 {
            *self.first_secret.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = None;
        }
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
            // A deleted secret: the next one written counts as the first (instances running keep theirs).
            None if key == TOKEN_SECRET_KEY => {
                *self.first_secret.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = None;
            }
            None => self.registry.remove_key(&key),
            Some(value) => match serde_json::from_slice::<StateRecord>(value) {
                Ok(StateRecord::TokenSecret { secret }) if key == TOKEN_SECRET_KEY => {
                    let mut first = self.first_secret.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
                    match first.as_ref() {
                        None => *first = Some(secret.0),
                        Some(kept) if *kept != secret.0 => {
                            debug!(offset = record.offset, "a later token secret record: the first one stands")
                        }
                        Some(_) => {}
                    }
                }
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
                client.leader_once_created().await?
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

fn token_secret_record(secret: &str) -> StateRecord {
    StateRecord::TokenSecret { secret: SecretString(secret.to_string()) }
}

#[cfg(test)]
mod tests {
    use franzgate_api::topology::BackendCluster;

    use super::*;

    fn store() -> StateStore {
        let cluster = Arc::new(BackendCluster::new("main", Vec::new()));
        let selector = Arc::new(ClusterSelector::new(vec![cluster]).expect("one cluster"));
        let registry = Arc::new(VirtualClusters::new(false));
        let (timeout, refresh) = (Duration::from_secs(1), Duration::from_secs(1));
        StateStore::new(registry, selector, BackendSecurityMap::default(), "_state".into(), timeout, 1 << 20, refresh)
    }

    fn read(offset: i64, record: Option<&StateRecord>, key: &str) -> ReadRecord {
        let value = record.map(|r| Bytes::from(serde_json::to_vec(r).expect("json")));
        ReadRecord { offset, key: Some(Bytes::from(key.to_string())), value }
    }

    #[test]
    fn the_first_token_secret_in_the_topic_stands_until_its_key_is_deleted() {
        let store = store();
        let vcluster = StateRecord::VirtualCluster { name: "teamA".into(), prefix: "teamA".into() };
        store.apply_read(&read(0, Some(&vcluster), "vcluster/teamA"));
        assert_eq!(store.first_secret(), None);
        for (offset, secret) in [(1, "first"), (2, "second"), (3, "first")] {
            store.apply_read(&read(offset, Some(&token_secret_record(secret)), TOKEN_SECRET_KEY));
        }
        assert_eq!(store.first_secret().as_deref(), Some("first"), "a racing instance's later record loses");
        assert!(store.registry.get("teamA").is_some(), "virtual-cluster records still apply");
        // A secret record under another key is not the secret.
        store.apply_read(&read(4, Some(&token_secret_record("forged")), "vcluster/x"));
        assert_eq!(store.first_secret().as_deref(), Some("first"));
        // Deleted: the next secret written is the one.
        store.apply_read(&read(5, None, TOKEN_SECRET_KEY));
        assert_eq!(store.first_secret(), None);
        store.apply_read(&read(6, Some(&token_secret_record("rotated")), TOKEN_SECRET_KEY));
        assert_eq!(store.first_secret().as_deref(), Some("rotated"));
        assert!(store.registry.get("teamA").is_some(), "deleting the secret deletes no virtual cluster");
    }
}
