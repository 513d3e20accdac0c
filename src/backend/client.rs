//! The gateway's own small Kafka client, for the topics it keeps on a backend cluster (the virtual-cluster state
//! topic, the chargeback flush topic): find partition 0's leader, create a topic, produce records, read them
//! back; and list every topic, group and transactional id a cluster holds (the admin API's check that a new
//! tenant's prefix captures nothing). Each call connects with the cluster's own security settings and credentials, like the upstream does.

use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use franzgate_api::topology::{BackendCluster, BrokerAddress};
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, BrokerId, CreateTopicsRequest, CreateTopicsResponse, FetchRequest,
    FetchResponse, ListGroupsRequest, ListGroupsResponse, ListOffsetsRequest, ListOffsetsResponse,
    ListTransactionsRequest, ListTransactionsResponse, MetadataRequest, MetadataResponse, ProduceRequest,
    ProduceResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

use super::{BackendSecurity, round_trip};
use crate::net::Stream;

const METADATA_VERSION: i16 = 4;
/// The first Metadata version whose response carries topic ids.
const TOPIC_ID_METADATA_VERSION: i16 = 10;
const CREATE_TOPICS_VERSION: i16 = 4;
const PRODUCE_VERSION: i16 = 3;
const LIST_OFFSETS_VERSION: i16 = 1;
const FETCH_VERSION: i16 = 4;
/// Kafka error codes the client tells apart.
const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
const TOPIC_ALREADY_EXISTS: i16 = 36;

/// Partition 0 of one topic on one cluster.
pub struct TopicClient {
    /// The cluster.
    pub cluster: Arc<BackendCluster>,
    /// How to connect to it.
    pub security: Arc<BackendSecurity>,
    /// The topic.
    pub topic: String,
    /// Per connection attempt, and per request.
    pub timeout: Duration,
    /// Largest response accepted.
    pub max_frame: usize,
}

/// A record as read back: its offset, key and value (`None` value: a tombstone).
#[derive(Debug, Clone)]
pub struct ReadRecord {
    /// Its offset.
    pub offset: i64,
    /// Its key.
    pub key: Option<Bytes>,
    /// Its value; `None` deletes the key in a compacted topic.
    pub value: Option<Bytes>,
    /// Its headers, in record order (the state topic's records carry their signature in one).
    pub headers: Vec<(String, Option<Bytes>)>,
}

/// A plain (non-transactional) record for [`TopicClient::produce`], stamped with the current time; `index` is
/// its position in the batch (the broker assigns the real offsets).
pub fn record(index: usize, key: Bytes, value: Bytes) -> Record {
    let timestamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0);
    Record {
        transactional: false,
        control: false,
        delete_horizon: false,
        partition_leader_epoch: -1,
        producer_id: -1,
        producer_epoch: -1,
        timestamp_type: TimestampType::Creation,
        offset: i64::try_from(index).unwrap_or(0),
        sequence: -1,
        timestamp,
        key: Some(key),
        value: Some(value),
        headers: Default::default(),
    }
}

// === impl TopicClient ===

impl TopicClient {
    /// A connection to partition 0's leader, or `None` if the topic does not exist.
    pub async fn leader(&self) -> Result<Option<Stream>, String> {
        let mut stream = self.bootstrap().await?;
        let topic = MetadataRequestTopic::default().with_name(Some(self.topic_name()));
        let request = MetadataRequest::default().with_topics(Some(vec![topic])).with_allow_auto_topic_creation(false);
        let response: MetadataResponse = self.call(&mut stream, ApiKey::Metadata, METADATA_VERSION, &request).await?;
        let topic = response.topics.first().ok_or("no topic in the metadata response")?;
        match topic.error_code {
            0 => {}
            UNKNOWN_TOPIC_OR_PARTITION => return Ok(None),
            code => return Err(format!("metadata of `{}`: error code {code}", self.topic)),
        }
        let leader = topic.partitions.iter().find(|p| p.partition_index == 0).map(|p| p.leader_id);
        let leader = leader.ok_or_else(|| format!("topic `{}` has no partition 0", self.topic))?;
        if leader.0 < 0 {
            return Err(format!("partition 0 of `{}` has no leader", self.topic));
        }
        let address = response
            .brokers
            .iter()
            .find(|b| b.node_id == leader)
            .and_then(|b| u16::try_from(b.port).ok().map(|port| BrokerAddress { host: b.host.to_string(), port }));
        match address {
            // Its address unknown: use this connection and let the broker say.
            None => Ok(Some(stream)),
            Some(address) => self.connect(&address).await.map(Some),
        }
    }

    /// The topic's id (as `u128`), or `None` if the topic does not exist (or the broker predates topic ids).
    pub async fn topic_id(&self) -> Result<Option<u128>, String> {
        let mut stream = self.bootstrap().await?;
        let topic = MetadataRequestTopic::default().with_name(Some(self.topic_name()));
        let request = MetadataRequest::default().with_topics(Some(vec![topic])).with_allow_auto_topic_creation(false);
        let response: MetadataResponse =
            self.call(&mut stream, ApiKey::Metadata, TOPIC_ID_METADATA_VERSION, &request).await?;
        let topic = response.topics.first().filter(|t| t.error_code == 0);
        Ok(topic.map(|t| t.topic_id.as_u128()).filter(|id| *id != 0))
    }

    /// The leader of a topic just created. Kafka answers CreateTopics before its brokers' metadata lists the
    /// topic and elects its leader, so the first look may find nothing: look again until `self.timeout` passes.
    pub async fn leader_once_created(&self) -> Result<Stream, String> {
        let deadline = tokio::time::Instant::now() + self.timeout.max(Duration::from_secs(5));
        loop {
            let outcome = self.leader().await;
            match outcome {
                Ok(Some(leader)) => return Ok(leader),
                _ if tokio::time::Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(100)).await,
                Ok(None) => return Err(format!("topic `{}` missing after creation", self.topic)),
                Err(e) => return Err(e),
            }
        }
    }

    /// Creates the topic with one partition and the given configs (replication: the cluster's default).
    /// A topic that already exists is fine.
    pub async fn create(&self, configs: &[(&str, &str)]) -> Result<(), String> {
        let mut stream = self.bootstrap().await?;
        let configs = configs
            .iter()
            .map(|(name, value)| {
                CreatableTopicConfig::default()
                    .with_name(StrBytes::from_string((*name).to_string()))
                    .with_value(Some(StrBytes::from_string((*value).to_string())))
            })
            .collect();
        let topic = CreatableTopic::default()
            .with_name(self.topic_name())
            .with_num_partitions(1)
            .with_replication_factor(-1)
            .with_configs(configs);
        let request = CreateTopicsRequest::default().with_topics(vec![topic]).with_timeout_ms(30_000);
        let response: CreateTopicsResponse =
            self.call(&mut stream, ApiKey::CreateTopics, CREATE_TOPICS_VERSION, &request).await?;
        match response.topics.first().map(|t| (t.error_code, t.error_message.clone())) {
            Some((0 | TOPIC_ALREADY_EXISTS, _)) => Ok(()),
            Some((code, message)) => Err(format!(
                "creating `{}`: error code {code}{}",
                self.topic,
                message.map(|m| format!(" ({m})")).unwrap_or_default()
            )),
            None => Err(format!("creating `{}`: empty response", self.topic)),
        }
    }

    /// Produces `records` to partition 0 on `stream` (the leader), acknowledged by all in-sync replicas.
    pub async fn produce(&self, stream: &mut Stream, records: &[Record]) -> Result<(), String> {
        let mut batch = BytesMut::new();
        let options = RecordEncodeOptions { version: 2, compression: Compression::None };
        RecordBatchEncoder::encode(&mut batch, records.iter(), &options).map_err(|e| e.to_string())?;
        let partition = PartitionProduceData::default().with_index(0).with_records(Some(batch.freeze()));
        let topic = TopicProduceData::default().with_name(self.topic_name()).with_partition_data(vec![partition]);
        let request = ProduceRequest::default().with_acks(-1).with_timeout_ms(30_000).with_topic_data(vec![topic]);
        let response: ProduceResponse = self.call(stream, ApiKey::Produce, PRODUCE_VERSION, &request).await?;
        let error = response.responses.iter().flat_map(|t| &t.partition_responses).map(|p| p.error_code);
        match error.into_iter().find(|c| *c != 0) {
            Some(code) => Err(format!("broker refused the records for `{}` with error code {code}", self.topic)),
            None => Ok(()),
        }
    }

    /// Every record from `offset` to the end of partition 0 as it is now, and the offset to read from next.
    pub async fn read_from(&self, stream: &mut Stream, mut offset: i64) -> Result<(Vec<ReadRecord>, i64), String> {
        let end = self.end_offset(stream).await?;
        let mut records = Vec::new();
        while offset < end {
            let partition = FetchPartition::default()
                .with_partition(0)
                .with_fetch_offset(offset)
                .with_partition_max_bytes(4 * 1024 * 1024);
            let topic = FetchTopic::default().with_topic(self.topic_name()).with_partitions(vec![partition]);
            let request = FetchRequest::default()
                .with_replica_id(BrokerId(-1))
                .with_max_wait_ms(0)
                .with_min_bytes(0)
                .with_max_bytes(8 * 1024 * 1024)
                .with_isolation_level(1)
                .with_topics(vec![topic]);
            let response: FetchResponse = self.call(stream, ApiKey::Fetch, FETCH_VERSION, &request).await?;
            let partition = response.responses.first().and_then(|t| t.partitions.first()).ok_or("empty fetch")?;
            if partition.error_code != 0 {
                return Err(format!("fetching `{}`: error code {}", self.topic, partition.error_code));
            }
            let before = offset;
            // Records of aborted transactions (e.g. from an exactly-once replicator) are returned too, with the
            // aborting producers listed: skip them.
            let aborted: Vec<(i64, i64)> =
                partition.aborted_transactions.iter().flatten().map(|a| (a.producer_id.0, a.first_offset)).collect();
            if let Some(mut bytes) = partition.records.clone() {
                while !bytes.is_empty() {
                    let set = match RecordBatchDecoder::decode(&mut bytes) {
                        Ok(set) => set,
                        // The broker may cut the last batch of a response short; it comes whole next time.
                        Err(_) if offset > before => break,
                        Err(e) => return Err(format!("undecodable batch at offset {offset}: {e}")),
                    };
                    for record in set.records {
                        let in_aborted = record.transactional
                            && aborted.iter().any(|(pid, first)| *pid == record.producer_id && record.offset >= *first);
                        if record.offset >= offset && !record.control && !in_aborted {
                            let headers = record.headers.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
                            let (offset, key, value) = (record.offset, record.key, record.value);
                            records.push(ReadRecord { offset, key, value, headers });
                        }
                        offset = offset.max(record.offset + 1);
                    }
                }
            }
            if offset == before {
                // Nothing readable yet (throttled, or not yet stable): stop here and resume from `offset` next
                // time rather than skipping what was not read.
                return Ok((records, offset));
            }
        }
        Ok((records, offset.max(end)))
    }

    async fn end_offset(&self, stream: &mut Stream) -> Result<i64, String> {
        let partition = ListOffsetsPartition::default().with_partition_index(0).with_timestamp(-1);
        let topic = ListOffsetsTopic::default().with_name(self.topic_name()).with_partitions(vec![partition]);
        let request = ListOffsetsRequest::default().with_replica_id(BrokerId(-1)).with_topics(vec![topic]);
        let response: ListOffsetsResponse =
            self.call(stream, ApiKey::ListOffsets, LIST_OFFSETS_VERSION, &request).await?;
        let partition = response.topics.first().and_then(|t| t.partitions.first()).ok_or("empty list offsets")?;
        if partition.error_code != 0 {
            return Err(format!("end offset of `{}`: error code {}", self.topic, partition.error_code));
        }
        Ok(partition.offset)
    }

    pub(crate) async fn bootstrap(&self) -> Result<Stream, String> {
        let mut last = String::from("no bootstrap servers");
        for address in &self.cluster.bootstrap_servers {
            match self.connect(address).await {
                Ok(stream) => return Ok(stream),
                Err(e) => last = format!("{address}: {e}"),
            }
        }
        Err(format!("no bootstrap broker of `{}` reachable ({last})", self.cluster.name))
    }

    pub(crate) async fn connect(&self, address: &BrokerAddress) -> Result<Stream, String> {
        self.security.connect(address, &self.cluster, self.timeout, self.max_frame).await
    }

    /// One request, bounded by the timeout (a broker that accepts and never answers must not hang the caller).
    pub(crate) async fn call<Req, Resp>(
        &self,
        stream: &mut Stream,
        key: ApiKey,
        version: i16,
        request: &Req,
    ) -> Result<Resp, String>
    where
        Req: kafka_protocol::protocol::Encodable,
        Resp: kafka_protocol::protocol::Decodable,
    {
        let call = round_trip(stream, key, version, 1, request, self.max_frame);
        tokio::time::timeout(self.timeout.max(Duration::from_secs(5)), call)
            .await
            .map_err(|_| format!("{key:?} to `{}` timed out", self.cluster.name))?
    }

    fn topic_name(&self) -> TopicName {
        TopicName(StrBytes::from_string(self.topic.clone()))
    }
}

/// What already exists on a cluster, by name.
#[derive(Debug, Default, Clone)]
pub struct ExistingNames {
    /// Every topic, internal ones included.
    pub topics: Vec<String>,
    /// Every consumer group, from every broker (each lists the groups it coordinates).
    pub groups: Vec<String>,
    /// Every transactional id the transaction coordinators know, from every broker that supports
    /// ListTransactions (Kafka 3.0 and later; older brokers are skipped).
    pub transactional_ids: Vec<String>,
}

/// ListGroups and ListTransactions versions the gateway sends (the highest the broker also supports).
const LIST_GROUPS_VERSIONS: std::ops::RangeInclusive<i16> = 0..=4;
const LIST_TRANSACTIONS_VERSIONS: std::ops::RangeInclusive<i16> = 0..=1;
/// COORDINATOR_LOAD_IN_PROGRESS and COORDINATOR_NOT_AVAILABLE: a broker just started, asked again shortly.
const COORDINATOR_NOT_READY: [i16; 2] = [14, 15];

// === impl TopicClient: cluster-wide listings ===

impl TopicClient {
    /// Every topic, consumer group and transactional id on the cluster; the client's own topic plays no part.
    /// What the gateway's backend credentials may not describe is not listed (Kafka filters by ACL).
    pub async fn existing_names(&self) -> Result<ExistingNames, String> {
        let mut stream = self.bootstrap().await?;
        let request = MetadataRequest::default().with_topics(None).with_allow_auto_topic_creation(false);
        let response: MetadataResponse = self.call(&mut stream, ApiKey::Metadata, METADATA_VERSION, &request).await?;
        let mut names = ExistingNames {
            topics: response.topics.iter().filter_map(|t| t.name.as_ref().map(|n| n.to_string())).collect(),
            ..ExistingNames::default()
        };
        for broker in &response.brokers {
            let port = u16::try_from(broker.port)
                .map_err(|_| format!("broker {} has port {}", broker.node_id.0, broker.port))?;
            let address = BrokerAddress { host: broker.host.to_string(), port };
            let mut stream = self.connect(&address).await.map_err(|e| format!("broker {address}: {e}"))?;
            self.list_coordinated(&mut stream, &address, &mut names).await?;
        }
        Ok(names)
    }

    /// The groups and transactional ids one broker coordinates, added to `names`.
    async fn list_coordinated(
        &self,
        stream: &mut Stream,
        address: &BrokerAddress,
        names: &mut ExistingNames,
    ) -> Result<(), String> {
        let versions: ApiVersionsResponse =
            self.call(stream, ApiKey::ApiVersions, 0, &ApiVersionsRequest::default()).await?;
        let usable = |key: ApiKey, ours: std::ops::RangeInclusive<i16>| {
            let theirs = versions.api_keys.iter().find(|v| v.api_key == key as i16)?;
            let highest = theirs.max_version.min(*ours.end());
            (highest >= theirs.min_version.max(*ours.start())).then_some(highest)
        };
        let version = usable(ApiKey::ListGroups, LIST_GROUPS_VERSIONS)
            .ok_or_else(|| format!("broker {address} supports no ListGroups version the gateway speaks"))?;
        let deadline = tokio::time::Instant::now() + self.timeout.max(Duration::from_secs(5));
        loop {
            let response: ListGroupsResponse =
                self.call(stream, ApiKey::ListGroups, version, &ListGroupsRequest::default()).await?;
            match response.error_code {
                0 => {
                    names.groups.extend(response.groups.iter().map(|g| g.group_id.to_string()));
                    break;
                }
                code if COORDINATOR_NOT_READY.contains(&code) && tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                code => return Err(format!("ListGroups on broker {address}: error code {code}")),
            }
        }
        let Some(version) = usable(ApiKey::ListTransactions, LIST_TRANSACTIONS_VERSIONS) else {
            tracing::debug!(%address, "broker has no ListTransactions (before Kafka 3.0): transactional ids not listed");
            return Ok(());
        };
        loop {
            let response: ListTransactionsResponse =
                self.call(stream, ApiKey::ListTransactions, version, &ListTransactionsRequest::default()).await?;
            match response.error_code {
                0 => {
                    let ids = response.transaction_states.iter().map(|t| t.transactional_id.to_string());
                    names.transactional_ids.extend(ids);
                    return Ok(());
                }
                code if COORDINATOR_NOT_READY.contains(&code) && tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                code => return Err(format!("ListTransactions on broker {address}: error code {code}")),
            }
        }
    }
}
