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
//!
//! Every record the gateway writes (but the token secret's) is signed ([`signature`]), and the reader applies
//! only records it can verify: one written to the topic by anyone else — a client with backend credentials, a
//! tool — is dropped, logged and counted (`franzgate_state_records_rejected_total`). The token secret's record
//! is not signed: the key would be derived from the very secret it carries, which anyone writing the record
//! chooses, so a signature there would prove nothing. It is guarded by "the first one in the topic wins"
//! instead, and a running instance never changes its secret.

mod signature;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use franzgate_api::filter::InternalTopicIds;
use franzgate_api::kafka_protocol::protocol::StrBytes;
use franzgate_api::selector::ClusterSelector;
use franzgate_api::vcluster::{SecretString, StateRecord, TOKEN_SECRET_KEY, VClusterError, VirtualClusters};
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::backend::BackendSecurityMap;
use crate::backend::client::{ReadRecord, TopicClient, record};
use crate::metrics::GatewayMetrics;
pub use signature::{RecordSigner, SIGNATURE_HEADER, Verdict};

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
    /// Signs what this instance writes and verifies what it reads: from the configured token secret, or else
    /// from the first token secret read from the topic (a generated one); `None` until then.
    signer: std::sync::RwLock<Option<RecordSigner>>,
    /// Apply records without a signature (`virtual_clusters.accept_unsigned_records`, for a topic written by a
    /// franzgate from before signing), and write their current state back signed.
    accept_unsigned: bool,
    /// Where rejected records are counted.
    metrics: Arc<GatewayMetrics>,
    /// The topic's id on every cluster it was read from, for the `internal-topics` filter (a client may name a
    /// topic by id only).
    topic_ids: Arc<InternalTopicIds>,
    /// The cluster whose copy's id is in `topic_ids` last.
    id_learnt_on: std::sync::Mutex<Option<String>>,
}

/// What one read of the topic did with the records that are not the token secret's.
#[derive(Debug, Default)]
struct ReadTally {
    /// Records dropped: unsigned (unless accepted), badly signed, or read before any key was known.
    rejected: u64,
    /// Keys of unsigned records applied (with `accept_unsigned`), to be written back signed.
    unsigned_accepted: BTreeSet<String>,
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
            signer: std::sync::RwLock::new(None),
            accept_unsigned: false,
            metrics: Arc::new(GatewayMetrics::default()),
            topic_ids: Arc::default(),
            id_learnt_on: std::sync::Mutex::new(None),
        }
    }

    /// Records the topic's id on each cluster in `ids` (the `internal-topics` filter's).
    pub fn with_topic_ids(mut self, ids: Arc<InternalTopicIds>) -> Self {
        self.topic_ids = ids;
        self
    }

    /// Looks the topic's id up once per cluster; a failure is tried again at the next read.
    async fn learn_topic_id(&self, client: &TopicClient) {
        let cluster = &client.cluster.name;
        let known = self.id_learnt_on.lock().map(|c| c.as_ref() == Some(cluster)).unwrap_or(false);
        if known {
            return;
        }
        match client.topic_id().await {
            Ok(Some(id)) => {
                self.topic_ids.learn(id);
                if let Ok(mut learnt) = self.id_learnt_on.lock() {
                    *learnt = Some(cluster.clone());
                }
            }
            Ok(None) => debug!(topic = %self.topic, %cluster, "the state topic has no id yet"),
            Err(reason) => debug!(topic = %self.topic, %cluster, %reason, "cannot look the state topic's id up yet"),
        }
    }

    /// Signs and verifies with a key derived from `secret`, the configured token secret; without one, the key
    /// is derived from the generated secret once it is read from the topic.
    pub fn with_signing_secret(self, secret: Option<&[u8]>) -> Self {
        *self.signer.write().unwrap_or_else(|poisoned| poisoned.into_inner()) =
            secret.map(RecordSigner::from_token_secret);
        self
    }

    /// Applies unsigned records (and writes their current state back signed) instead of rejecting them.
    pub fn accepting_unsigned(mut self, accept: bool) -> Self {
        self.accept_unsigned = accept;
        self
    }

    /// Counts rejected records in `metrics`.
    pub fn with_metrics(mut self, metrics: Arc<GatewayMetrics>) -> Self {
        self.metrics = metrics;
        self
    }

    fn signer(&self) -> Option<RecordSigner> {
        self.signer.read().unwrap_or_else(|poisoned| poisoned.into_inner()).clone()
    }

    /// Without a configured secret, the signing key is the first token secret's in the topic, fixed for as long
    /// as this instance runs (as its token secret is).
    fn adopt_topic_secret(&self) {
        let mut signer = self.signer.write().unwrap_or_else(|poisoned| poisoned.into_inner());
        if signer.is_none() {
            *signer = self.first_secret().map(|secret| RecordSigner::from_token_secret(secret.as_bytes()));
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
        self.learn_topic_id(&client).await;
        let (records, next) = client.read_from(&mut leader, from).await?;
        let applied = records.len();
        let tally = self.apply_all(&records);
        if applied > 0 {
            debug!(topic = %self.topic, cluster = %client.cluster.name, applied, next, "virtual-cluster state read");
        }
        *position = Some((client.cluster.name.clone(), next));
        self.report(tally).await;
        Ok(applied)
    }

    /// Applies what was read: the token secret's records first, since without a configured secret the signing
    /// key is derived from the first of them, then every other record whose signature verifies.
    fn apply_all(&self, records: &[ReadRecord]) -> ReadTally {
        let is_secret = |r: &&ReadRecord| r.key.as_deref() == Some(TOKEN_SECRET_KEY.as_bytes());
        records.iter().filter(is_secret).for_each(|r| self.apply_token_secret(r));
        self.adopt_topic_secret();
        let mut tally = ReadTally::default();
        for record in records.iter().filter(|r| !is_secret(r)) {
            self.apply_state(record, &mut tally);
        }
        tally
    }

    /// Counts and reports what [`Self::apply_all`] rejected, and writes accepted unsigned records back signed.
    async fn report(&self, tally: ReadTally) {
        if tally.rejected > 0 {
            self.metrics.state_records_rejected.fetch_add(tally.rejected, Ordering::Relaxed);
            if !self.accept_unsigned {
                warn!(
                    topic = %self.topic,
                    rejected = tally.rejected,
                    "state records without a valid signature were ignored; if the topic was written by a franzgate \
                     from before signed records, start once with virtual_clusters.accept_unsigned_records: true \
                     (GATEWAY_STATE_ACCEPT_UNSIGNED_RECORDS=true) to sign them, then set it back"
                );
            }
        }
        if tally.unsigned_accepted.is_empty() {
            return;
        }
        let count = tally.unsigned_accepted.len();
        warn!(
            topic = %self.topic,
            keys = count,
            "unsigned state records applied (virtual_clusters.accept_unsigned_records is true); writing their \
             current state back signed; set accept_unsigned_records back to false once every instance has read it"
        );
        for record in self.current_records(&tally.unsigned_accepted) {
            if let Err(reason) = self.append(&record).await {
                warn!(topic = %self.topic, key = %record.key(), %reason, "cannot write a state record back signed");
            }
        }
    }

    /// The current state of each of `keys` still known, as the records that set it.
    fn current_records(&self, keys: &BTreeSet<String>) -> Vec<StateRecord> {
        let mut records = Vec::new();
        for cluster in self.registry.list() {
            records.push(StateRecord::VirtualCluster { name: cluster.name.clone(), prefix: cluster.prefix.clone() });
            records.extend(cluster.accounts.values().map(|a| StateRecord::ServiceAccount {
                vcluster: cluster.name.clone(),
                username: a.username.clone(),
                generation: a.generation,
                revoked: a.revoked,
            }));
        }
        records.retain(|r| keys.contains(&r.key()));
        records
    }

    /// A token secret's record: the first in the topic stands; a tombstone forgets it.
    fn apply_token_secret(&self, record: &ReadRecord) {
        let mut first = self.first_secret.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let Some(value) = &record.value else {
            // A deleted secret: the next one written counts as the first (instances running keep theirs).
            *first = None;
            return;
        };
        match serde_json::from_slice::<StateRecord>(value) {
            Ok(StateRecord::TokenSecret { secret }) => match first.as_ref() {
                None => *first = Some(secret.0),
                Some(kept) if *kept != secret.0 => {
                    debug!(offset = record.offset, "a later token secret record: the first one stands")
                }
                Some(_) => {}
            },
            Ok(_) => warn!(
                offset = record.offset,
                key = TOKEN_SECRET_KEY,
                "state record's key does not match its value; skipped"
            ),
            Err(e) => {
                warn!(offset = record.offset, key = TOKEN_SECRET_KEY, reason = %e, "undecodable state record; skipped")
            }
        }
    }

    /// A virtual-cluster or account record (or tombstone), applied only if its signature verifies.
    fn apply_state(&self, record: &ReadRecord, tally: &mut ReadTally) {
        let key = record.key.as_deref().map(String::from_utf8_lossy).unwrap_or_default();
        let signer = self.signer();
        let verdict = signer.as_ref().map_or(Verdict::Invalid, |signer| {
            signer.verify(record.key.as_deref(), record.value.as_deref(), signature_of(record))
        });
        match verdict {
            Verdict::Valid => {}
            Verdict::Unsigned if self.accept_unsigned => {
                tally.unsigned_accepted.insert(key.to_string());
            }
            Verdict::Unsigned | Verdict::Invalid => {
                tally.rejected += 1;
                let reason = match (&signer, verdict) {
                    (None, _) => "no token secret known yet to verify it with",
                    (_, Verdict::Unsigned) => "no signature",
                    _ => "signature does not match",
                };
                crate::warn_limited!(
                    offset = record.offset,
                    %key,
                    reason,
                    "state record not written by this gateway fleet; ignored"
                );
                return;
            }
        }
        match &record.value {
            None => self.registry.remove_key(&key),
            Some(value) => match serde_json::from_slice::<StateRecord>(value) {
                Ok(StateRecord::TokenSecret { .. }) => {
                    warn!(offset = record.offset, %key, "a token secret under another key; skipped")
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
        let (key, value) =
            (Bytes::from(state.key()), Bytes::from(serde_json::to_vec(state).map_err(|e| e.to_string())?));
        let mut record = record(0, key.clone(), value.clone());
        // The token secret's record is not signed (see the module docs); every other one is.
        if !matches!(state, StateRecord::TokenSecret { .. }) {
            let signer = self.signer().ok_or("no token secret known yet to sign the state record with")?;
            let signature = signer.sign(Some(&key), Some(&value));
            record.headers.insert(StrBytes::from_static_str(SIGNATURE_HEADER), Some(signature));
        }
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

/// The record's signature header, if it has one.
fn signature_of(record: &ReadRecord) -> Option<&[u8]> {
    record.headers.iter().find(|(name, _)| name == SIGNATURE_HEADER).and_then(|(_, value)| value.as_deref())
}

fn token_secret_record(secret: &str) -> StateRecord {
    StateRecord::TokenSecret { secret: SecretString(secret.to_string()) }
}

#[cfg(test)]
mod tests;
