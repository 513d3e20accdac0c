//! Chargeback: bytes, batches and requests produced and consumed, per {physical cluster, virtual cluster,
//! principal, client id, topic}. Filled by the `chargeback` filter, read by the runtime's `/metrics` and
//! `/admin/chargeback/v1`. Counting survives switches: the physical cluster is a label, not a reset.
//!
//! Label cardinality is bounded: past `max_topics` distinct topics (or `max_client_ids` client ids), further
//! values are counted under `other`, and a counter says how many distinct values were folded.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::Mutex;

/// The label written instead of a value beyond the cardinality limit.
pub const OTHER: &str = "other";

/// Who used what, where.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UsageKey {
    /// The backend cluster the bytes went to or came from.
    pub cluster: String,
    /// The principal's virtual cluster (`passthrough` without one).
    pub vcluster: String,
    /// The authenticated principal (`ANONYMOUS` without authentication).
    pub principal: String,
    /// The client id the client sent.
    pub client_id: String,
    /// The topic.
    pub topic: String,
}

/// Counters of one key.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// Record-batch bytes in Produce requests.
    pub produced_bytes: u64,
    /// Record batches produced.
    pub produced_batches: u64,
    /// Records produced.
    pub produced_records: u64,
    /// Produce requests that carried this topic.
    pub produce_requests: u64,
    /// Record-batch bytes in Fetch responses.
    pub consumed_bytes: u64,
    /// Record batches consumed.
    pub consumed_batches: u64,
    /// Records consumed.
    pub consumed_records: u64,
    /// Fetch responses that carried this topic.
    pub fetch_responses: u64,
}

/// What one record-batch blob holds, read from the batch headers only.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BatchStats {
    /// Bytes.
    pub bytes: u64,
    /// Batches.
    pub batches: u64,
    /// Records.
    pub records: u64,
}

/// Limits of the ledger.
#[derive(Debug, Clone, Copy)]
pub struct UsageLimits {
    /// Distinct topics before folding into `other`.
    pub max_topics: usize,
    /// Distinct client ids before folding into `other`.
    pub max_client_ids: usize,
    /// Length of one time window, seconds.
    pub window_seconds: u64,
    /// How many past windows are kept.
    pub windows_kept: usize,
}

impl Default for UsageLimits {
    fn default() -> Self {
        Self { max_topics: 1000, max_client_ids: 1000, window_seconds: 60, windows_kept: 60 }
    }
}

/// Totals since start and per time window.
#[derive(Debug, Default)]
pub struct UsageLedger {
    /// The counters.
    state: Mutex<LedgerState>,
    /// The limits.
    limits: UsageLimits,
}

#[derive(Debug, Default)]
struct LedgerState {
    totals: BTreeMap<UsageKey, Usage>,
    /// (window start, unix seconds; counters of that window), oldest first.
    windows: VecDeque<(u64, BTreeMap<UsageKey, Usage>)>,
    topics: HashSet<String>,
    client_ids: HashSet<String>,
    folded_topics: HashSet<String>,
    folded_client_ids: HashSet<String>,
    /// Topic ids (Fetch v13+, Produce v13) to names, per cluster, learned from Metadata responses.
    topic_names: HashMap<(String, [u8; 16]), String>,
    /// Counts since the last flush to Kafka.
    pending: BTreeMap<UsageKey, Usage>,
}

/// A copy of the ledger for rendering.
#[derive(Debug, Clone, Default)]
pub struct UsageSnapshot {
    /// Totals since start.
    pub totals: BTreeMap<UsageKey, Usage>,
    /// Per window: start (unix seconds) and counters.
    pub windows: Vec<(u64, BTreeMap<UsageKey, Usage>)>,
    /// Window length, seconds.
    pub window_seconds: u64,
    /// Distinct topics folded into `other`.
    pub folded_topics: u64,
    /// Distinct client ids folded into `other`.
    pub folded_client_ids: u64,
}

// === impl Usage ===

impl Usage {
    /// Adds `other`'s counts to these.
    pub fn add(&mut self, other: &Usage) {
        self.produced_bytes += other.produced_bytes;
        self.produced_batches += other.produced_batches;
        self.produced_records += other.produced_records;
        self.produce_requests += other.produce_requests;
        self.consumed_bytes += other.consumed_bytes;
        self.consumed_batches += other.consumed_batches;
        self.consumed_records += other.consumed_records;
        self.fetch_responses += other.fetch_responses;
    }
}

// === impl BatchStats ===

impl BatchStats {
    /// The stats of several `records` fields (the partitions of one topic) together.
    pub fn of_all<'a>(blobs: impl IntoIterator<Item = &'a [u8]>) -> Self {
        blobs.into_iter().map(Self::of).fold(Self::default(), |total, part| Self {
            bytes: total.bytes + part.bytes,
            batches: total.batches + part.batches,
            records: total.records + part.records,
        })
    }

    /// Reads the record batches of a `records` field: each batch's length from its header, and (magic 2)
    /// its record count, without decoding the records.
    pub fn of(records: &[u8]) -> Self {
        let mut stats = Self::default();
        let mut rest = records;
        // baseOffset (8) + batchLength (4), then the batch: a truncated trailing batch (Fetch may cut one off
        // at the size limit) is counted as bytes only.
        while rest.len() >= 12 {
            let length = i32::from_be_bytes([rest[8], rest[9], rest[10], rest[11]]);
            let Ok(length) = usize::try_from(length) else { break };
            let total = 12 + length;
            if total > rest.len() {
                break;
            }
            stats.batches += 1;
            // magic at 16; in v2 batches the record count is the last header field, at 57.
            if rest.get(16) == Some(&2) && rest.len() >= 61 {
                let count = i32::from_be_bytes([rest[57], rest[58], rest[59], rest[60]]);
                stats.records += u64::try_from(count).unwrap_or(0);
            } else {
                stats.records += 1;
            }
            rest = &rest[total..];
        }
        stats.bytes = u64::try_from(records.len()).unwrap_or(u64::MAX);
        stats
    }
}

// === impl UsageLedger ===

impl UsageLedger {
    /// An empty ledger with `limits`.
    pub fn new(limits: UsageLimits) -> Self {
        Self { state: Mutex::default(), limits }
    }

    /// Adds produced batches for `key` at unix time `now`.
    pub fn record_produce(&self, key: UsageKey, stats: BatchStats, now: u64) {
        self.add(key, now, |u| {
            u.produced_bytes += stats.bytes;
            u.produced_batches += stats.batches;
            u.produced_records += stats.records;
            u.produce_requests += 1;
        });
    }

    /// Adds consumed batches for `key` at unix time `now`.
    pub fn record_fetch(&self, key: UsageKey, stats: BatchStats, now: u64) {
        self.add(key, now, |u| {
            u.consumed_bytes += stats.bytes;
            u.consumed_batches += stats.batches;
            u.consumed_records += stats.records;
            u.fetch_responses += 1;
        });
    }

    /// Records a topic id's name on a cluster (from a Metadata response).
    pub fn learn_topic(&self, cluster: &str, id: [u8; 16], name: &str) {
        let mut state = self.lock();
        state.topic_names.entry((cluster.to_string(), id)).or_insert_with(|| name.to_string());
    }

    /// A topic id's name on a cluster, if a Metadata response has named it.
    pub fn topic_name(&self, cluster: &str, id: [u8; 16]) -> Option<String> {
        self.lock().topic_names.get(&(cluster.to_string(), id)).cloned()
    }

    /// A copy of every counter.
    pub fn snapshot(&self) -> UsageSnapshot {
        let state = self.lock();
        UsageSnapshot {
            totals: state.totals.clone(),
            windows: state.windows.iter().cloned().collect(),
            window_seconds: self.limits.window_seconds,
            folded_topics: state.folded_topics.len() as u64,
            folded_client_ids: state.folded_client_ids.len() as u64,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, LedgerState> {
        // A panic elsewhere while holding the lock leaves counters that are still consistent enough to report.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn add(&self, mut key: UsageKey, now: u64, apply: impl Fn(&mut Usage)) {
        let mut guard = self.lock();
        let state = &mut *guard;
        key.topic = fold(&mut state.topics, &mut state.folded_topics, key.topic, self.limits.max_topics);
        key.client_id =
            fold(&mut state.client_ids, &mut state.folded_client_ids, key.client_id, self.limits.max_client_ids);
        let window = now - now % self.limits.window_seconds.max(1);
        if state.windows.back().is_none_or(|(start, _)| *start != window) {
            state.windows.push_back((window, BTreeMap::new()));
            while state.windows.len() > self.limits.windows_kept.max(1) {
                state.windows.pop_front();
            }
        }
        if let Some((_, counters)) = state.windows.back_mut() {
            apply(counters.entry(key.clone()).or_default());
        }
        apply(state.pending.entry(key.clone()).or_default());
        apply(state.totals.entry(key).or_default());
    }

    /// Takes the counts accumulated since the last call (for flushing to a Kafka topic).
    pub fn take_pending(&self) -> BTreeMap<UsageKey, Usage> {
        std::mem::take(&mut self.lock().pending)
    }

    /// Puts back counts whose flush failed, so the next flush carries them.
    pub fn restore_pending(&self, counts: BTreeMap<UsageKey, Usage>) {
        let mut state = self.lock();
        for (key, usage) in counts {
            state.pending.entry(key).or_default().add(&usage);
        }
    }
}

/// The value itself while under the limit (or already seen), else `other`.
fn fold(seen: &mut HashSet<String>, folded: &mut HashSet<String>, value: String, limit: usize) -> String {
    if seen.contains(&value) {
        return value;
    }
    if seen.len() < limit {
        seen.insert(value.clone());
        return value;
    }
    folded.insert(value);
    OTHER.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A v2 batch of `records` records whose whole size is `size` bytes (filler after the header).
    fn batch(records: i32, size: usize) -> Vec<u8> {
        let mut b = vec![0u8; size];
        b[8..12].copy_from_slice(&((size - 12) as i32).to_be_bytes());
        b[16] = 2;
        b[57..61].copy_from_slice(&records.to_be_bytes());
        b
    }

    #[test]
    fn batch_headers_give_bytes_batches_and_records() {
        let blob = [batch(3, 100), batch(1, 70)].concat();
        assert_eq!(BatchStats::of(&blob), BatchStats { bytes: 170, batches: 2, records: 4 });
        let cut = &blob[..150];
        assert_eq!(BatchStats::of(cut), BatchStats { bytes: 150, batches: 1, records: 3 }, "partial batch");
        assert_eq!(BatchStats::of(&[]), BatchStats::default());
        let both = BatchStats::of_all([&blob[..100], &blob[100..]]);
        assert_eq!(both, BatchStats { bytes: 170, batches: 2, records: 4 }, "summed over partitions");
    }

    fn key(topic: &str, client: &str) -> UsageKey {
        UsageKey {
            cluster: "main".into(),
            vcluster: "passthrough".into(),
            principal: "alice".into(),
            client_id: client.into(),
            topic: topic.into(),
        }
    }

    #[test]
    fn totals_windows_and_folding() {
        let limits = UsageLimits { max_topics: 2, max_client_ids: 1, window_seconds: 60, windows_kept: 2 };
        let ledger = UsageLedger::new(limits);
        let stats = BatchStats { bytes: 10, batches: 1, records: 2 };
        ledger.record_produce(key("a", "c1"), stats, 120);
        ledger.record_produce(key("a", "c1"), stats, 130);
        ledger.record_fetch(key("b", "c1"), stats, 190);
        ledger.record_produce(key("c", "c2"), stats, 250);
        ledger.record_produce(key("d", "c1"), stats, 310);
        let s = ledger.snapshot();
        assert_eq!(s.totals[&key("a", "c1")].produced_bytes, 20);
        assert_eq!(s.totals[&key("b", "c1")].consumed_records, 2);
        assert_eq!(s.totals[&key(OTHER, OTHER)].produced_bytes, 10, "topic c and client c2 folded");
        assert_eq!(s.totals[&key(OTHER, "c1")].produced_bytes, 10, "topic d folded");
        assert_eq!((s.folded_topics, s.folded_client_ids), (2, 1));
        let starts: Vec<u64> = s.windows.iter().map(|(start, _)| *start).collect();
        assert_eq!(starts, vec![240, 300], "two windows kept");
        let pending = ledger.take_pending();
        assert_eq!(pending[&key("a", "c1")].produced_bytes, 20);
        assert!(ledger.take_pending().is_empty(), "taken once");
        ledger.restore_pending(pending);
        ledger.record_produce(key("a", "c1"), stats, 320);
        assert_eq!(ledger.take_pending()[&key("a", "c1")].produced_bytes, 30, "a failed flush is carried over");
    }
}
