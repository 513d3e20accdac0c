//! Flushes chargeback usage to a Kafka topic for billing pipelines: every interval, the counts accumulated since
//! the last flush are produced to the topic on the active cluster, one JSON record per
//! {cluster, vcluster, principal, client id, topic}, with the gateway's own credentials for that cluster. A
//! failed flush keeps its counts for the next one.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use franzgate_api::selector::ClusterSelector;
use franzgate_api::usage::{Usage, UsageKey, UsageLedger};
use kafka_protocol::records::Record;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use crate::backend::BackendSecurityMap;
use crate::backend::client::{TopicClient, record};
use crate::unix_now;

/// Where and how often to flush.
pub struct Flush {
    /// The topic.
    pub topic: String,
    /// Time between flushes.
    pub interval: Duration,
    /// The counts.
    pub usage: Arc<UsageLedger>,
    /// Which cluster is active.
    pub selector: Arc<ClusterSelector>,
    /// How to reach each cluster.
    pub backends: BackendSecurityMap,
    /// Connection timeout.
    pub timeout: Duration,
    /// Largest response accepted.
    pub max_frame: usize,
}

// === impl Flush ===

impl Flush {
    /// Flushes every interval until `shutdown`, then once more.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut since = unix_now();
        loop {
            let stopping = tokio::select! {
                _ = tokio::time::sleep(self.interval) => false,
                _ = shutdown.cancelled() => true,
            };
            let pending = self.usage.take_pending();
            if !pending.is_empty() {
                let now = unix_now();
                match self.send(&pending, since, now).await {
                    Ok(rows) => {
                        debug!(topic = %self.topic, rows, "chargeback usage flushed");
                        since = now;
                    }
                    Err(reason) => {
                        warn!(topic = %self.topic, %reason, "chargeback flush failed; its counts go with the next one");
                        self.usage.restore_pending(pending);
                    }
                }
            }
            if stopping {
                return;
            }
        }
    }

    async fn send(&self, pending: &BTreeMap<UsageKey, Usage>, since: u64, now: u64) -> Result<usize, String> {
        let active = self.selector.active();
        let client = TopicClient {
            cluster: active.cluster.clone(),
            security: self.backends.get(&active.cluster.name),
            topic: self.topic.clone(),
            timeout: self.timeout,
            max_frame: self.max_frame,
        };
        let mut leader = client.leader().await?.ok_or_else(|| {
            format!(
                "topic `{}` does not exist on cluster `{}` (create the topic first)",
                self.topic, active.cluster.name
            )
        })?;
        let records = self.records(pending, since, now);
        client.produce(&mut leader, &records).await?;
        Ok(records.len())
    }

    fn records(&self, pending: &BTreeMap<UsageKey, Usage>, since: u64, now: u64) -> Vec<Record> {
        pending
            .iter()
            .enumerate()
            .map(|(index, (key, u))| {
                let mut value = crate::admin::chargeback::row(key, u);
                value["fromEpochSeconds"] = since.into();
                value["toEpochSeconds"] = now.into();
                let key = Bytes::from(format!("{}/{}/{}", key.cluster, key.principal, key.topic));
                record(index, key, Bytes::from(value.to_string()))
            })
            .collect()
    }
}
