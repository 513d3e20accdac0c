//! The last record of every partition of a cluster: what a planned switch compares between the clusters to
//! know that replication copied everything (MirrorMaker copies key, value and timestamp as they are, and per
//! partition in order, so the failover's copy is complete when its last record is the source's last record).

use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, HashMap};
use std::hash::{Hash, Hasher};

use franzgate_api::topology::BrokerAddress;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::{
    ApiKey, BrokerId, FetchRequest, FetchResponse, ListOffsetsRequest, ListOffsetsResponse, MetadataRequest,
    MetadataResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::RecordBatchDecoder;

use super::client::TopicClient;

const METADATA_VERSION: i16 = 4;
const LIST_OFFSETS_VERSION: i16 = 1;
/// Fetch v4: `isolation_level` (read_committed) and the aborted transactions.
const FETCH_VERSION: i16 = 4;
/// Offsets read back from a partition's end to find its last record (transaction markers take offsets too).
const WINDOW: i64 = 50;

/// A partition: topic and index.
pub type Partition = (String, i32);

/// The last record of a partition, as a digest of its key, value and timestamp; `None`: the partition holds no
/// record in its last [`WINDOW`] offsets (empty, or markers only).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tail {
    /// The partition's end offset (for the report).
    pub end: i64,
    /// The last record's digest.
    pub last: Option<u64>,
}

impl Tail {
    /// Whether `copy` (the same partition on the replication target, if there) holds everything this one does:
    /// nothing to copy, or the copy ends with the same last record.
    pub fn copied_by(&self, copy: Option<&Tail>) -> bool {
        self.last.is_none() || copy.is_some_and(|c| c.last == self.last)
    }
}

fn digest(timestamp: i64, key: Option<&[u8]>, value: Option<&[u8]>) -> u64 {
    let mut hasher = DefaultHasher::new();
    (timestamp, key, value).hash(&mut hasher);
    hasher.finish()
}

impl TopicClient {
    /// The tail of every partition of `topics` (all the cluster's topics when `None`) that exists here.
    pub async fn partition_tails(&self, topics: Option<&[String]>) -> Result<BTreeMap<Partition, Tail>, String> {
        let mut stream = self.bootstrap().await?;
        let wanted = topics.map(|names| {
            names
                .iter()
                .map(|n| {
                    kafka_protocol::messages::metadata_request::MetadataRequestTopic::default()
                        .with_name(Some(TopicName(StrBytes::from_string(n.clone()))))
                })
                .collect()
        });
        let request = MetadataRequest::default().with_topics(wanted).with_allow_auto_topic_creation(false);
        let metadata: MetadataResponse = self.call(&mut stream, ApiKey::Metadata, METADATA_VERSION, &request).await?;
        let mut by_leader: HashMap<i32, Vec<Partition>> = HashMap::new();
        for topic in metadata.topics.iter().filter(|t| t.error_code == 0) {
            let Some(name) = topic.name.as_ref() else { continue };
            for partition in &topic.partitions {
                by_leader.entry(partition.leader_id.0).or_default().push((name.to_string(), partition.partition_index));
            }
        }
        let mut tails = BTreeMap::new();
        for (leader, partitions) in by_leader {
            let broker = metadata.brokers.iter().find(|b| b.node_id.0 == leader);
            let address = broker
                .and_then(|b| u16::try_from(b.port).ok().map(|port| BrokerAddress { host: b.host.to_string(), port }))
                .ok_or_else(|| format!("no address for broker {leader} of `{}`", self.cluster.name))?;
            let mut stream = self.connect(&address).await?;
            let ends = self.end_offsets(&mut stream, &partitions).await?;
            tails.extend(self.last_records(&mut stream, &ends).await?);
        }
        Ok(tails)
    }

    async fn end_offsets(
        &self,
        stream: &mut crate::net::Stream,
        partitions: &[Partition],
    ) -> Result<BTreeMap<Partition, i64>, String> {
        let mut topics: BTreeMap<&str, Vec<ListOffsetsPartition>> = BTreeMap::new();
        for (topic, index) in partitions {
            let partition = ListOffsetsPartition::default().with_partition_index(*index).with_timestamp(-1);
            topics.entry(topic).or_default().push(partition);
        }
        let topics = topics
            .into_iter()
            .map(|(name, partitions)| {
                ListOffsetsTopic::default()
                    .with_name(TopicName(StrBytes::from_string(name.to_string())))
                    .with_partitions(partitions)
            })
            .collect();
        let request = ListOffsetsRequest::default().with_replica_id(BrokerId(-1)).with_topics(topics);
        let response: ListOffsetsResponse =
            self.call(stream, ApiKey::ListOffsets, LIST_OFFSETS_VERSION, &request).await?;
        let mut ends = BTreeMap::new();
        for topic in &response.topics {
            for partition in &topic.partitions {
                if partition.error_code != 0 {
                    return Err(format!(
                        "end offset of {}[{}] on `{}`: error code {}",
                        topic.name.0, partition.partition_index, self.cluster.name, partition.error_code
                    ));
                }
                ends.insert((topic.name.to_string(), partition.partition_index), partition.offset);
            }
        }
        Ok(ends)
    }

    /// The last committed data record of each partition, read from [`WINDOW`] offsets before its end.
    async fn last_records(
        &self,
        stream: &mut crate::net::Stream,
        ends: &BTreeMap<Partition, i64>,
    ) -> Result<BTreeMap<Partition, Tail>, String> {
        let mut tails: BTreeMap<Partition, Tail> =
            ends.iter().map(|(p, end)| (p.clone(), Tail { end: *end, last: None })).collect();
        let mut topics: BTreeMap<&str, Vec<FetchPartition>> = BTreeMap::new();
        for ((topic, index), end) in ends.iter().filter(|(_, end)| **end > 0) {
            let partition = FetchPartition::default()
                .with_partition(*index)
                .with_fetch_offset((end - WINDOW).max(0))
                .with_partition_max_bytes(1024 * 1024);
            topics.entry(topic).or_default().push(partition);
        }
        if topics.is_empty() {
            return Ok(tails);
        }
        let topics = topics
            .into_iter()
            .map(|(name, partitions)| {
                FetchTopic::default()
                    .with_topic(TopicName(StrBytes::from_string(name.to_string())))
                    .with_partitions(partitions)
            })
            .collect();
        let request = FetchRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_max_wait_ms(0)
            .with_min_bytes(0)
            .with_max_bytes(16 * 1024 * 1024)
            .with_isolation_level(1)
            .with_topics(topics);
        let response: FetchResponse = self.call(stream, ApiKey::Fetch, FETCH_VERSION, &request).await?;
        for topic in &response.responses {
            for partition in &topic.partitions {
                let key = (topic.topic.to_string(), partition.partition_index);
                if partition.error_code != 0 {
                    return Err(format!(
                        "fetching {}[{}] on `{}`: error code {}",
                        key.0, key.1, self.cluster.name, partition.error_code
                    ));
                }
                let aborted: Vec<(i64, i64)> = partition
                    .aborted_transactions
                    .iter()
                    .flatten()
                    .map(|a| (a.producer_id.0, a.first_offset))
                    .collect();
                let Some(mut bytes) = partition.records.clone() else { continue };
                let mut last = None;
                while !bytes.is_empty() {
                    // A batch cut short at the response's end comes whole next time: what was read is enough.
                    let Ok(set) = RecordBatchDecoder::decode(&mut bytes) else { break };
                    for record in set.records {
                        let in_aborted = record.transactional
                            && aborted.iter().any(|(pid, first)| *pid == record.producer_id && record.offset >= *first);
                        if !record.control && !in_aborted {
                            last = Some(digest(record.timestamp, record.key.as_deref(), record.value.as_deref()));
                        }
                    }
                }
                if let Some(tail) = tails.get_mut(&key) {
                    tail.last = last;
                }
            }
        }
        Ok(tails)
    }
}
