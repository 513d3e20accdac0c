//! Requests: every topic name, group id and transactional id a tenant sends gets its prefix.
//!
//! One function per api that carries such names. An api a tenant may not use at all (ACLs, quotas, replica
//! placement, broker-to-broker apis, anything this gateway does not know) is refused by [`tenant_may_use`]
//! before any body is decoded. The walk is generic over [`NameVisitor`]: the internal-topics filter walks the
//! same names to find the gateway's own topics, so a name this walk misses is missed by neither or both.

use franzgate_api::kafka_protocol::messages::{
    AddPartitionsToTxnRequest, AlterConfigsRequest, ApiKey, ConsumerGroupHeartbeatRequest, CreatePartitionsRequest,
    CreateTopicsRequest, DeleteRecordsRequest, DeleteTopicsRequest, DescribeConfigsRequest, DescribeProducersRequest,
    DescribeTopicPartitionsRequest, FetchRequest, FindCoordinatorRequest, IncrementalAlterConfigsRequest,
    ListOffsetsRequest, MetadataRequest, OffsetCommitRequest, OffsetDeleteRequest, OffsetFetchRequest,
    OffsetForLeaderEpochRequest, ProduceRequest, RequestKind, TxnOffsetCommitRequest,
};

use super::names::{NameVisitor, Refusal, TopicIds};

/// Config resource types (Kafka's `ConfigResource.Type`) whose names are tenant names.
const RESOURCE_TOPIC: i8 = 2;
const RESOURCE_GROUP: i8 = 32;
/// `FindCoordinator` key types.
const KEY_GROUP: i8 = 0;
const KEY_TRANSACTION: i8 = 1;

/// Whether a tenant may send this api at all, and whether its request carries names to prefix.
pub enum Access {
    /// Forwarded as it is: no tenant names in it.
    Untouched,
    /// Its names are prefixed (and its response's names stripped).
    Rewritten,
    /// It names topics by id only: each id is checked to be the tenant's; the response is left as it is.
    Checked,
    /// Refused: cluster-wide or broker-internal.
    Refused,
}

/// What a tenant may do with `key` at `version`.
pub fn tenant_may_use(key: Option<ApiKey>, version: i16) -> Access {
    use ApiKey::*;
    let Some(key) = key else { return Access::Refused };
    match key {
        // No tenant names in these.
        ApiVersions
        | SaslHandshake
        | SaslAuthenticate
        | DescribeCluster
        | GetTelemetrySubscriptions
        | PushTelemetry => Access::Untouched,
        // Group and transactional ids are tenant names too.
        JoinGroup
        | SyncGroup
        | Heartbeat
        | LeaveGroup
        | InitProducerId
        | AddOffsetsToTxn
        | EndTxn
        | DescribeTransactions
        | ListTransactions
        | ListGroups
        | DescribeGroups
        | DeleteGroups
        | ConsumerGroupDescribe => Access::Rewritten,
        // v13+ name topics by id only: the ids must be the tenant's; the response (records) is not touched.
        Fetch if version >= 13 => Access::Checked,
        Produce
        | Fetch
        | ListOffsets
        | Metadata
        | OffsetCommit
        | OffsetFetch
        | FindCoordinator
        | ConsumerGroupHeartbeat
        | OffsetDelete
        | CreateTopics
        | DeleteTopics
        | CreatePartitions
        | DescribeConfigs
        | AlterConfigs
        | IncrementalAlterConfigs
        | DeleteRecords
        | OffsetForLeaderEpoch
        | DescribeProducers
        | TxnOffsetCommit
        | AddPartitionsToTxn
        | DescribeTopicPartitions => Access::Rewritten,
        _ => Access::Refused,
    }
}

/// Prefixes every tenant name in `body`.
///
/// Fields a version does not carry are left at their defaults: a prefixed default would be a field "set that is
/// not available" at that version, and the request could not be encoded.
pub fn prefix_request(
    body: &mut RequestKind,
    version: i16,
    p: &impl NameVisitor,
    ids: &TopicIds,
) -> Result<(), Refusal> {
    match body {
        RequestKind::Produce(r) => produce(r, version, p, ids),
        RequestKind::Fetch(r) => fetch(r, version, p, ids),
        RequestKind::ListOffsets(r) => list_offsets(r, p),
        RequestKind::Metadata(r) => metadata(r, p),
        RequestKind::OffsetCommit(r) => offset_commit(r, p),
        RequestKind::OffsetFetch(r) => offset_fetch(r, version, p),
        RequestKind::FindCoordinator(r) => find_coordinator(r, version, p),
        RequestKind::JoinGroup(r) => p.group(&mut r.group_id),
        RequestKind::SyncGroup(r) => p.group(&mut r.group_id),
        RequestKind::Heartbeat(r) => p.group(&mut r.group_id),
        RequestKind::LeaveGroup(r) => p.group(&mut r.group_id),
        RequestKind::ConsumerGroupHeartbeat(r) => consumer_group_heartbeat(r, p),
        RequestKind::ConsumerGroupDescribe(r) => r.group_ids.iter_mut().try_for_each(|g| p.group(g)),
        RequestKind::DescribeGroups(r) => r.groups.iter_mut().try_for_each(|g| p.group(g)),
        RequestKind::DeleteGroups(r) => r.groups_names.iter_mut().try_for_each(|g| p.group(g)),
        // Listings are filtered on the way back.
        RequestKind::ListGroups(_) | RequestKind::ListTransactions(_) => Ok(()),
        RequestKind::OffsetDelete(r) => offset_delete(r, p),
        RequestKind::CreateTopics(r) => create_topics(r, p),
        RequestKind::DeleteTopics(r) => delete_topics(r, p, ids),
        RequestKind::CreatePartitions(r) => create_partitions(r, p),
        RequestKind::DescribeConfigs(r) => describe_configs(r, p),
        RequestKind::AlterConfigs(r) => alter_configs(r, p),
        RequestKind::IncrementalAlterConfigs(r) => incremental_alter_configs(r, p),
        RequestKind::DeleteRecords(r) => delete_records(r, p),
        RequestKind::OffsetForLeaderEpoch(r) => offset_for_leader_epoch(r, p),
        RequestKind::DescribeProducers(r) => describe_producers(r, p),
        RequestKind::DescribeTopicPartitions(r) => describe_topic_partitions(r, p),
        RequestKind::TxnOffsetCommit(r) => txn_offset_commit(r, p),
        RequestKind::AddPartitionsToTxn(r) => add_partitions_to_txn(r, version, p),
        RequestKind::AddOffsetsToTxn(r) => {
            p.transaction(&mut r.transactional_id)?;
            p.group(&mut r.group_id)
        }
        RequestKind::InitProducerId(r) => r.transactional_id.iter_mut().try_for_each(|t| p.transaction(t)),
        RequestKind::EndTxn(r) => p.transaction(&mut r.transactional_id),
        RequestKind::DescribeTransactions(r) => r.transactional_ids.iter_mut().try_for_each(|t| p.transaction(t)),
        _ => Ok(()),
    }
}

fn produce(r: &mut ProduceRequest, version: i16, p: &impl NameVisitor, ids: &TopicIds) -> Result<(), Refusal> {
    r.transactional_id.iter_mut().try_for_each(|t| p.transaction(t))?;
    // v13+ name topics by id only: each must be one of the tenant's.
    if version >= 13 {
        return own_ids(r.topic_data.iter().map(|t| &t.topic_id), p, ids);
    }
    r.topic_data.iter_mut().try_for_each(|t| p.topic(&mut t.name))
}

/// Refuses ids that are not the tenant's known topics.
fn own_ids<'a>(
    mut ids_named: impl Iterator<Item = &'a uuid::Uuid>,
    p: &impl NameVisitor,
    ids: &TopicIds,
) -> Result<(), Refusal> {
    match ids_named.all(|id| p.topic_id(id, ids)) {
        true => Ok(()),
        false => Err(Refusal::UnknownTopicId),
    }
}

fn fetch(r: &mut FetchRequest, version: i16, p: &impl NameVisitor, ids: &TopicIds) -> Result<(), Refusal> {
    if version >= 13 {
        let named = r.topics.iter().map(|t| &t.topic_id);
        return own_ids(named.chain(r.forgotten_topics_data.iter().map(|t| &t.topic_id)), p, ids);
    }
    r.topics.iter_mut().try_for_each(|t| p.topic(&mut t.topic))?;
    r.forgotten_topics_data.iter_mut().try_for_each(|t| p.topic(&mut t.topic))
}

fn list_offsets(r: &mut ListOffsetsRequest, p: &impl NameVisitor) -> Result<(), Refusal> {
    r.topics.iter_mut().try_for_each(|t| p.topic(&mut t.name))
}

fn metadata(r: &mut MetadataRequest, p: &impl NameVisitor) -> Result<(), Refusal> {
    // `None` (all topics) stays all topics: the response is filtered to the tenant's.
    let topics = r.topics.iter_mut().flatten();
    topics.filter_map(|t| t.name.as_mut()).try_for_each(|name| p.topic(name))
}

fn offset_commit(r: &mut OffsetCommitRequest, p: &impl NameVisitor) -> Result<(), Refusal> {
    p.group(&mut r.group_id)?;
    r.topics.iter_mut().try_for_each(|t| p.topic(&mut t.name))
}

fn offset_fetch(r: &mut OffsetFetchRequest, version: i16, p: &impl NameVisitor) -> Result<(), Refusal> {
    // v0-7 ask for one group in the top-level fields; v8+ for many in `groups`.
    if version < 8 {
        p.group(&mut r.group_id)?;
        r.topics.iter_mut().flatten().try_for_each(|t| p.topic(&mut t.name))?;
    }
    for group in &mut r.groups {
        p.group(&mut group.group_id)?;
        group.topics.iter_mut().flatten().try_for_each(|t| p.topic(&mut t.name))?;
    }
    Ok(())
}

fn find_coordinator(r: &mut FindCoordinatorRequest, version: i16, p: &impl NameVisitor) -> Result<(), Refusal> {
    match r.key_type {
        // v0-3 carry one key; v4+ many in `coordinator_keys`.
        KEY_GROUP | KEY_TRANSACTION if version < 4 => {
            p.add(&mut r.key);
            Ok(())
        }
        KEY_GROUP | KEY_TRANSACTION => {
            r.coordinator_keys.iter_mut().for_each(|k| p.add(k));
            Ok(())
        }
        // Share-group and other coordinator types are not tenant-scoped yet.
        _ => p.cluster_wide(),
    }
}

fn consumer_group_heartbeat(r: &mut ConsumerGroupHeartbeatRequest, p: &impl NameVisitor) -> Result<(), Refusal> {
    p.group(&mut r.group_id)?;
    r.subscribed_topic_names.iter_mut().flatten().try_for_each(|t| p.topic(t))?;
    // A server-side regex is matched against every backend name; confining an arbitrary pattern behind the
    // prefix is not safe (`x)|(.*` escapes a wrapping group), so tenants subscribe by name (or with a
    // client-side pattern, matched against their own filtered metadata).
    match r.subscribed_topic_regex {
        Some(_) => p.cluster_wide(),
        None => Ok(()),
    }
}

fn offset_delete(r: &mut OffsetDeleteRequest, p: &impl NameVisitor) -> Result<(), Refusal> {
    p.group(&mut r.group_id)?;
    r.topics.iter_mut().try_for_each(|t| p.topic(&mut t.name))
}

fn create_topics(r: &mut CreateTopicsRequest, p: &impl NameVisitor) -> Result<(), Refusal> {
    r.topics.iter_mut().try_for_each(|t| p.topic(&mut t.name))
}

fn delete_topics(r: &mut DeleteTopicsRequest, p: &impl NameVisitor, ids: &TopicIds) -> Result<(), Refusal> {
    r.topic_names.iter_mut().try_for_each(|t| p.topic(t))?;
    own_ids(r.topics.iter().filter(|t| t.name.is_none()).map(|t| &t.topic_id), p, ids)?;
    r.topics.iter_mut().filter_map(|t| t.name.as_mut()).try_for_each(|t| p.topic(t))
}

fn create_partitions(r: &mut CreatePartitionsRequest, p: &impl NameVisitor) -> Result<(), Refusal> {
    r.topics.iter_mut().try_for_each(|t| p.topic(&mut t.name))
}

/// Topic and group resources get the prefix; broker resources may be read but never changed by a tenant.
fn config_resource(
    resource_type: i8,
    name: &mut franzgate_api::kafka_protocol::protocol::StrBytes,
    p: &impl NameVisitor,
    read_only: bool,
) -> Result<(), Refusal> {
    match resource_type {
        RESOURCE_TOPIC => p.topic_str(name),
        RESOURCE_GROUP => {
            p.add(name);
            Ok(())
        }
        _ if read_only => Ok(()),
        _ => p.cluster_wide(),
    }
}

fn describe_configs(r: &mut DescribeConfigsRequest, p: &impl NameVisitor) -> Result<(), Refusal> {
    r.resources.iter_mut().try_for_each(|c| config_resource(c.resource_type, &mut c.resource_name, p, true))
}

fn alter_configs(r: &mut AlterConfigsRequest, p: &impl NameVisitor) -> Result<(), Refusal> {
    r.resources.iter_mut().try_for_each(|c| config_resource(c.resource_type, &mut c.resource_name, p, false))
}

fn incremental_alter_configs(r: &mut IncrementalAlterConfigsRequest, p: &impl NameVisitor) -> Result<(), Refusal> {
    r.resources.iter_mut().try_for_each(|c| config_resource(c.resource_type, &mut c.resource_name, p, false))
}

fn delete_records(r: &mut DeleteRecordsRequest, p: &impl NameVisitor) -> Result<(), Refusal> {
    r.topics.iter_mut().try_for_each(|t| p.topic(&mut t.name))
}

fn offset_for_leader_epoch(r: &mut OffsetForLeaderEpochRequest, p: &impl NameVisitor) -> Result<(), Refusal> {
    r.topics.iter_mut().try_for_each(|t| p.topic(&mut t.topic))
}

fn describe_producers(r: &mut DescribeProducersRequest, p: &impl NameVisitor) -> Result<(), Refusal> {
    r.topics.iter_mut().try_for_each(|t| p.topic(&mut t.name))
}

fn describe_topic_partitions(r: &mut DescribeTopicPartitionsRequest, p: &impl NameVisitor) -> Result<(), Refusal> {
    r.topics.iter_mut().try_for_each(|t| p.topic(&mut t.name))?;
    r.cursor.iter_mut().try_for_each(|c| p.topic(&mut c.topic_name))
}

fn txn_offset_commit(r: &mut TxnOffsetCommitRequest, p: &impl NameVisitor) -> Result<(), Refusal> {
    p.transaction(&mut r.transactional_id)?;
    p.group(&mut r.group_id)?;
    r.topics.iter_mut().try_for_each(|t| p.topic(&mut t.name))
}

fn add_partitions_to_txn(r: &mut AddPartitionsToTxnRequest, version: i16, p: &impl NameVisitor) -> Result<(), Refusal> {
    // v0-3 carry one transaction in the top-level fields; v4+ many in `transactions`.
    if version < 4 {
        p.transaction(&mut r.v3_and_below_transactional_id)?;
        r.v3_and_below_topics.iter_mut().try_for_each(|t| p.topic(&mut t.name))?;
    }
    for txn in &mut r.transactions {
        p.transaction(&mut txn.transactional_id)?;
        txn.topics.iter_mut().try_for_each(|t| p.topic(&mut t.name))?;
    }
    Ok(())
}
