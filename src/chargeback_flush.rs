//! Flushes chargeback usage to a Kafka topic for billing pipelines: every interval, the counts accumulated since
//! the last flush are produced to the topic on the active cluster, one JSON record per
//! {cluster, vcluster, principal, client id, topic}, with the gateway's own credentials for that cluster. A
//! failed flush keeps its counts for the next one.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::{Bytes, BytesMut};
use franzgate_api::selector::ClusterSelector;
use franzgate_api::topology::{BackendCluster, BrokerAddress};
use franzgate_api::usage::{Usage, UsageKey, UsageLedger};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{ApiKey, MetadataRequest, MetadataResponse, ProduceRequest, ProduceResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType};
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use crate::backend::{BackendSecurityMap, round_trip};
use crate::net::Stream;

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

const PRODUCE_VERSION: i16 = 3;
const METADATA_VERSION: i16 = 4;

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
        let cluster = &active.cluster;
        let security = self.backends.get(&cluster.name);
        let connect = |address: BrokerAddress| {
            let security = security.clone();
            async move { security.connect(&address, cluster, self.timeout, self.max_frame).await }
        };
        let mut bootstrap = None;
        for address in &cluster.bootstrap_servers {
            if let Ok(stream) = connect(address.clone()).await {
                bootstrap = Some(stream);
                break;
            }
        }
        let mut stream = bootstrap.ok_or_else(|| format!("no bootstrap broker of `{}` reachable", cluster.name))?;
        let leader = self.leader(&mut stream, cluster).await?;
        let mut stream = match leader {
            Some(address) => connect(address).await?,
            None => stream,
        };
        let records = self.records(pending, since, now);
        let mut batch = BytesMut::new();
        let options = RecordEncodeOptions { version: 2, compression: Compression::None };
        RecordBatchEncoder::encode(&mut batch, records.iter(), &options).map_err(|e| e.to_string())?;
        let partition = PartitionProduceData::default().with_index(0).with_records(Some(batch.freeze()));
        let topic = TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_string(self.topic.clone())))
            .with_partition_data(vec![partition]);
        let request = ProduceRequest::default().with_acks(-1).with_timeout_ms(30_000).with_topic_data(vec![topic]);
        let response: ProduceResponse =
            round_trip(&mut stream, ApiKey::Produce, PRODUCE_VERSION, 2, &request, self.max_frame).await?;
        let error =
            response.responses.iter().flat_map(|t| &t.partition_responses).map(|p| p.error_code).find(|c| *c != 0);
        match error {
            Some(code) => Err(format!("broker refused the records with error code {code}")),
            None => Ok(records.len()),
        }
    }

    /// The address of partition 0's leader, or `None` if it is the broker already connected.
    async fn leader(&self, stream: &mut Stream, cluster: &BackendCluster) -> Result<Option<BrokerAddress>, String> {
        let topic =
            MetadataRequestTopic::default().with_name(Some(TopicName(StrBytes::from_string(self.topic.clone()))));
        let request = MetadataRequest::default().with_topics(Some(vec![topic])).with_allow_auto_topic_creation(false);
        let response: MetadataResponse =
            round_trip(stream, ApiKey::Metadata, METADATA_VERSION, 1, &request, self.max_frame).await?;
        let topic = response.topics.first().ok_or("no topic in the metadata response")?;
        if topic.error_code != 0 {
            return Err(format!(
                "topic `{}` on cluster `{}`: error code {} (create the topic first)",
                self.topic, cluster.name, topic.error_code
            ));
        }
        let leader =
            topic.partitions.iter().find(|p| p.partition_index == 0).map(|p| p.leader_id).ok_or("no partition 0")?;
        Ok(response
            .brokers
            .iter()
            .find(|b| b.node_id == leader)
            .and_then(|b| u16::try_from(b.port).ok().map(|port| BrokerAddress { host: b.host.to_string(), port })))
    }

    fn records(&self, pending: &BTreeMap<UsageKey, Usage>, since: u64, now: u64) -> Vec<Record> {
        let timestamp = i64::try_from(now.saturating_mul(1000)).unwrap_or(i64::MAX);
        pending
            .iter()
            .enumerate()
            .map(|(offset, (key, u))| {
                let mut value = crate::admin::chargeback::row(key, u);
                value["fromEpochSeconds"] = since.into();
                value["toEpochSeconds"] = now.into();
                Record {
                    transactional: false,
                    control: false,
                    delete_horizon: false,
                    partition_leader_epoch: -1,
                    producer_id: -1,
                    producer_epoch: -1,
                    timestamp_type: TimestampType::Creation,
                    offset: i64::try_from(offset).unwrap_or(0),
                    sequence: -1,
                    timestamp,
                    key: Some(Bytes::from(format!("{}/{}/{}", key.cluster, key.principal, key.topic))),
                    value: Some(Bytes::from(value.to_string())),
                    headers: Default::default(),
                }
            })
            .collect()
    }
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}
