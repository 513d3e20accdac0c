//! Whole-request error responses, shaped the way a Kafka broker shapes them.
//!
//! When franzgate refuses a request outright (an ACL denies it, a policy forbids it, the
//! upstream is unavailable, ...) it must still answer with a response the client can parse
//! *and* act on. A bare top-level error code is not enough: many Kafka responses have no
//! top-level error field at all (Produce, CreateTopics, DescribeConfigs, ...), and clients
//! such as librdkafka and the Java client look for errors on each topic, partition, group or
//! resource they asked about. A response that omits those items reads as "nothing happened"
//! or as a protocol violation, and the client hangs or retries forever.
//!
//! [`error_response`] therefore mirrors the request's items and stamps the error on each one,
//! following the `getErrorResponse` implementations of the Apache Kafka broker, and sets the
//! top-level `error_code` wherever the message version has one.
//!
//! Layout: this file holds the dispatch and the "top-level error only" family; the item-echoing
//! builders live in one file per family of APIs.

use kafka_protocol::messages::{
    AddOffsetsToTxnResponse, AddRaftVoterResponse, AllocateProducerIdsResponse, ApiKey, ApiVersionsResponse,
    BrokerHeartbeatResponse, BrokerRegistrationResponse, ConsumerGroupHeartbeatResponse,
    ControllerRegistrationResponse, CreateDelegationTokenResponse, DescribeAclsResponse, DescribeClientQuotasResponse,
    DescribeClusterResponse, DescribeDelegationTokenResponse, EndTxnResponse, EnvelopeResponse,
    ExpireDelegationTokenResponse, GetTelemetrySubscriptionsResponse, HeartbeatResponse, InitProducerIdResponse,
    ListConfigResourcesResponse, ListGroupsResponse, ListPartitionReassignmentsResponse, ListTransactionsResponse,
    PushTelemetryResponse, RemoveRaftVoterResponse, RenewDelegationTokenResponse, RequestKind, ResponseKind,
    SaslAuthenticateResponse, SaslHandshakeResponse, ShareGroupHeartbeatResponse, SyncGroupResponse,
    UnregisterBrokerResponse, UpdateRaftVoterResponse,
};

/// Builds a kafka-protocol message struct from its `Default`, overriding the listed fields.
///
/// Every generated struct is `#[non_exhaustive]`, so struct-literal syntax is unavailable
/// outside kafka-protocol; this gives the same shape: `build!(Type { field: value, shorthand })`.
/// Fields not listed keep kafka-protocol's defaults, i.e. the schema defaults (-1 for many
/// ids, offsets and epochs; note nullable strings such as `error_message` default to `""`).
macro_rules! build {
    ($ty:ty { $($field:ident $(: $value:expr)?),* $(,)? }) => {{
        let mut built = <$ty>::default();
        $( built.$field = build!(@value $field $($value)?); )*
        built
    }};
    (@value $field:ident $value:expr) => { $value };
    (@value $field:ident) => { $field };
}

mod admin;
mod data;
mod groups;
mod internal;
#[cfg(test)]
mod tests;
mod topics;
mod txn;

/// Builds the response a Kafka broker would send when it refuses `request` (decoded at
/// `version`) as a whole with `error_code` (a Kafka protocol error code, e.g.
/// `kafka_protocol::ResponseError::TopicAuthorizationFailed.code()`).
///
/// * Responses with per-item results echo every topic / partition / group / resource of the
///   request, each carrying `error_code`, with the "unknown" sentinels (-1 offsets, ...) in
///   the data fields; where the message version also has a top-level `error_code`, it is set
///   too (except Metadata with named topics, where it would mask the per-topic errors).
/// * Every other response is its `Default` with the top-level `error_code` set (and a null
///   `error_message`, so clients fall back to their own text for the code).
///
/// For a request decoded at `version`, the result encodes at `version`, for every version
/// kafka-protocol supports. The function is total: it never panics, whatever its input.
///
/// Notes for callers:
/// * A Produce request with `acks == 0` gets no response from a real broker; this still
///   builds one, and it is up to the caller not to send it.
/// * `throttle_time_ms` is 0; ApiVersions has an empty `api_keys` list and SaslHandshake an
///   empty `mechanisms` list; fill them in if the error calls for it. (A broker answers an
///   ApiVersions request of a version it does not support at v0; picking the encoding
///   version is the caller's job.)
/// * If the request names no items (e.g. a Produce with no topics, or a Metadata request for
///   all topics below v13) and the message version has no top-level error field, there is
///   nowhere on the wire for the error; the response is then simply empty, as a broker's is.
pub fn error_response(request: &RequestKind, version: i16, error_code: i16) -> ResponseKind {
    use RequestKind as Req;
    use ResponseKind as Resp;
    let code = error_code;

    match request {
        // ---- Data plane: one result per requested topic/partition (data.rs) ----
        Req::Produce(r) => Resp::Produce(data::produce(r, code)),
        Req::Fetch(r) => Resp::Fetch(data::fetch(r, version, code)),
        Req::ListOffsets(r) => Resp::ListOffsets(data::list_offsets(r, code)),
        Req::OffsetForLeaderEpoch(r) => Resp::OffsetForLeaderEpoch(data::offset_for_leader_epoch(r, code)),
        Req::DeleteRecords(r) => Resp::DeleteRecords(data::delete_records(r, code)),
        Req::DescribeProducers(r) => Resp::DescribeProducers(data::describe_producers(r, code)),
        Req::ShareFetch(r) => Resp::ShareFetch(data::share_fetch(r, code)),
        Req::ShareAcknowledge(r) => Resp::ShareAcknowledge(data::share_acknowledge(r, code)),

        // ---- Metadata and topic administration (topics.rs) ----
        Req::Metadata(r) => Resp::Metadata(topics::metadata(r, code)),
        Req::CreateTopics(r) => Resp::CreateTopics(topics::create_topics(r, code)),
        Req::DeleteTopics(r) => Resp::DeleteTopics(topics::delete_topics(r, version, code)),
        Req::CreatePartitions(r) => Resp::CreatePartitions(topics::create_partitions(r, code)),
        Req::DescribeTopicPartitions(r) => Resp::DescribeTopicPartitions(topics::describe_topic_partitions(r, code)),
        Req::ElectLeaders(r) => Resp::ElectLeaders(topics::elect_leaders(r, version, code)),
        Req::AlterPartitionReassignments(r) => {
            Resp::AlterPartitionReassignments(topics::alter_partition_reassignments(r, code))
        }
        Req::DescribeLogDirs(_) => Resp::DescribeLogDirs(topics::describe_log_dirs(version, code)),
        Req::AlterReplicaLogDirs(r) => Resp::AlterReplicaLogDirs(topics::alter_replica_log_dirs(r, code)),

        // ---- Consumer / share groups and their offsets (groups.rs) ----
        Req::FindCoordinator(r) => Resp::FindCoordinator(groups::find_coordinator(r, version, code)),
        Req::JoinGroup(_) => Resp::JoinGroup(groups::join_group(version, code)),
        Req::LeaveGroup(r) => Resp::LeaveGroup(groups::leave_group(r, version, code)),
        Req::DescribeGroups(r) => Resp::DescribeGroups(groups::describe_groups(r, code)),
        Req::DeleteGroups(r) => Resp::DeleteGroups(groups::delete_groups(r, code)),
        Req::OffsetCommit(r) => Resp::OffsetCommit(groups::offset_commit(r, code)),
        Req::OffsetFetch(r) => Resp::OffsetFetch(groups::offset_fetch(r, version, code)),
        Req::OffsetDelete(r) => Resp::OffsetDelete(groups::offset_delete(r, code)),
        Req::ConsumerGroupDescribe(r) => Resp::ConsumerGroupDescribe(groups::consumer_group_describe(r, code)),
        Req::ShareGroupDescribe(r) => Resp::ShareGroupDescribe(groups::share_group_describe(r, code)),
        Req::DescribeShareGroupOffsets(r) => {
            Resp::DescribeShareGroupOffsets(groups::describe_share_group_offsets(r, code))
        }
        Req::AlterShareGroupOffsets(r) => Resp::AlterShareGroupOffsets(groups::alter_share_group_offsets(r, code)),
        Req::DeleteShareGroupOffsets(r) => Resp::DeleteShareGroupOffsets(groups::delete_share_group_offsets(r, code)),

        // ---- Transactions (txn.rs) ----
        Req::AddPartitionsToTxn(r) => Resp::AddPartitionsToTxn(txn::add_partitions_to_txn(r, version, code)),
        Req::TxnOffsetCommit(r) => Resp::TxnOffsetCommit(txn::txn_offset_commit(r, code)),
        Req::WriteTxnMarkers(r) => Resp::WriteTxnMarkers(txn::write_txn_markers(r, code)),
        Req::DescribeTransactions(r) => Resp::DescribeTransactions(txn::describe_transactions(r, code)),

        // ---- Configs, ACLs, quotas, SCRAM, features (admin.rs) ----
        Req::DescribeConfigs(r) => Resp::DescribeConfigs(admin::describe_configs(r, code)),
        Req::AlterConfigs(r) => Resp::AlterConfigs(admin::alter_configs(r, code)),
        Req::IncrementalAlterConfigs(r) => Resp::IncrementalAlterConfigs(admin::incremental_alter_configs(r, code)),
        Req::CreateAcls(r) => Resp::CreateAcls(admin::create_acls(r, code)),
        Req::DeleteAcls(r) => Resp::DeleteAcls(admin::delete_acls(r, code)),
        Req::AlterClientQuotas(r) => Resp::AlterClientQuotas(admin::alter_client_quotas(r, code)),
        Req::DescribeUserScramCredentials(r) => {
            Resp::DescribeUserScramCredentials(admin::describe_user_scram_credentials(r, code))
        }
        Req::AlterUserScramCredentials(r) => {
            Resp::AlterUserScramCredentials(admin::alter_user_scram_credentials(r, code))
        }
        Req::UpdateFeatures(r) => Resp::UpdateFeatures(admin::update_features(r, version, code)),

        // ---- KRaft, controller and share-state internals (internal.rs) ----
        Req::Vote(r) => Resp::Vote(internal::vote(r, code)),
        Req::BeginQuorumEpoch(r) => Resp::BeginQuorumEpoch(internal::begin_quorum_epoch(r, code)),
        Req::EndQuorumEpoch(r) => Resp::EndQuorumEpoch(internal::end_quorum_epoch(r, code)),
        Req::DescribeQuorum(r) => Resp::DescribeQuorum(internal::describe_quorum(r, code)),
        Req::FetchSnapshot(r) => Resp::FetchSnapshot(internal::fetch_snapshot(r, code)),
        Req::AlterPartition(r) => Resp::AlterPartition(internal::alter_partition(r, code)),
        Req::AssignReplicasToDirs(r) => Resp::AssignReplicasToDirs(internal::assign_replicas_to_dirs(r, code)),
        Req::InitializeShareGroupState(r) => {
            Resp::InitializeShareGroupState(internal::initialize_share_group_state(r, code))
        }
        Req::ReadShareGroupState(r) => Resp::ReadShareGroupState(internal::read_share_group_state(r, code)),
        Req::WriteShareGroupState(r) => Resp::WriteShareGroupState(internal::write_share_group_state(r, code)),
        Req::DeleteShareGroupState(r) => Resp::DeleteShareGroupState(internal::delete_share_group_state(r, code)),
        Req::ReadShareGroupStateSummary(r) => {
            Resp::ReadShareGroupStateSummary(internal::read_share_group_state_summary(r, code))
        }

        // ---- Top-level error only ----
        // These responses describe one thing (a group member, a producer id, a SASL exchange,
        // a token, the cluster, ...) rather than a list of requested items, so the broker
        // answers with the top-level error and defaults everywhere else. A null
        // `error_message` (the default would be "") lets clients use their text for the code.
        Req::Heartbeat(_) => Resp::Heartbeat(build!(HeartbeatResponse { error_code })),
        Req::SyncGroup(_) => Resp::SyncGroup(build!(SyncGroupResponse { error_code })),
        Req::ListGroups(_) => Resp::ListGroups(build!(ListGroupsResponse { error_code })),
        Req::ConsumerGroupHeartbeat(_) => {
            Resp::ConsumerGroupHeartbeat(build!(ConsumerGroupHeartbeatResponse { error_code, error_message: None }))
        }
        Req::ShareGroupHeartbeat(_) => {
            Resp::ShareGroupHeartbeat(build!(ShareGroupHeartbeatResponse { error_code, error_message: None }))
        }
        Req::ApiVersions(_) => Resp::ApiVersions(build!(ApiVersionsResponse { error_code })),
        Req::SaslHandshake(_) => Resp::SaslHandshake(build!(SaslHandshakeResponse { error_code })),
        Req::SaslAuthenticate(_) => {
            Resp::SaslAuthenticate(build!(SaslAuthenticateResponse { error_code, error_message: None }))
        }
        // The broker's "no producer id" answer: producer id and epoch both -1.
        Req::InitProducerId(_) => Resp::InitProducerId(build!(InitProducerIdResponse {
            error_code,
            producer_id: (-1).into(),
            producer_epoch: -1,
        })),
        Req::AddOffsetsToTxn(_) => Resp::AddOffsetsToTxn(build!(AddOffsetsToTxnResponse { error_code })),
        Req::EndTxn(_) => Resp::EndTxn(build!(EndTxnResponse { error_code })),
        Req::ListTransactions(_) => Resp::ListTransactions(build!(ListTransactionsResponse { error_code })),
        // The items of these responses are ACLs / quota entries / reassignments / configs
        // *found*, not items the request named, so there is nothing to echo.
        Req::DescribeAcls(_) => Resp::DescribeAcls(build!(DescribeAclsResponse { error_code, error_message: None })),
        Req::DescribeClientQuotas(_) => Resp::DescribeClientQuotas(build!(DescribeClientQuotasResponse {
            error_code,
            error_message: None,
            entries: None,
        })),
        Req::ListPartitionReassignments(_) => {
            Resp::ListPartitionReassignments(build!(ListPartitionReassignmentsResponse {
                error_code,
                error_message: None,
            }))
        }
        Req::ListConfigResources(_) => Resp::ListConfigResources(build!(ListConfigResourcesResponse { error_code })),
        // The Java admin client rejects a DescribeCluster answer whose endpoint type differs
        // from the one it asked for, so echo it (the field exists from v1).
        Req::DescribeCluster(r) => Resp::DescribeCluster(build!(DescribeClusterResponse {
            error_code,
            error_message: None,
            endpoint_type: if version >= 1 { r.endpoint_type } else { 1 },
        })),
        Req::CreateDelegationToken(_) => {
            Resp::CreateDelegationToken(build!(CreateDelegationTokenResponse { error_code }))
        }
        Req::RenewDelegationToken(_) => Resp::RenewDelegationToken(build!(RenewDelegationTokenResponse { error_code })),
        Req::ExpireDelegationToken(_) => {
            Resp::ExpireDelegationToken(build!(ExpireDelegationTokenResponse { error_code }))
        }
        Req::DescribeDelegationToken(_) => {
            Resp::DescribeDelegationToken(build!(DescribeDelegationTokenResponse { error_code }))
        }
        Req::GetTelemetrySubscriptions(_) => {
            Resp::GetTelemetrySubscriptions(build!(GetTelemetrySubscriptionsResponse { error_code }))
        }
        Req::PushTelemetry(_) => Resp::PushTelemetry(build!(PushTelemetryResponse { error_code })),
        // Broker <-> controller RPCs.
        Req::Envelope(_) => Resp::Envelope(build!(EnvelopeResponse { error_code })),
        Req::BrokerRegistration(_) => Resp::BrokerRegistration(build!(BrokerRegistrationResponse { error_code })),
        Req::BrokerHeartbeat(_) => Resp::BrokerHeartbeat(build!(BrokerHeartbeatResponse { error_code })),
        Req::UnregisterBroker(_) => {
            Resp::UnregisterBroker(build!(UnregisterBrokerResponse { error_code, error_message: None }))
        }
        Req::AllocateProducerIds(_) => Resp::AllocateProducerIds(build!(AllocateProducerIdsResponse { error_code })),
        Req::ControllerRegistration(_) => {
            Resp::ControllerRegistration(build!(ControllerRegistrationResponse { error_code, error_message: None }))
        }
        Req::AddRaftVoter(_) => Resp::AddRaftVoter(build!(AddRaftVoterResponse { error_code, error_message: None })),
        Req::RemoveRaftVoter(_) => {
            Resp::RemoveRaftVoter(build!(RemoveRaftVoterResponse { error_code, error_message: None }))
        }
        Req::UpdateRaftVoter(_) => Resp::UpdateRaftVoter(build!(UpdateRaftVoterResponse { error_code })),

        // `RequestKind` is `#[non_exhaustive]`, so Rust insists on this arm even though every
        // variant of kafka-protocol 0.18 is listed above. It is unreachable: the `ApiKey`
        // tripwire below stops the build as soon as kafka-protocol grows an API, and the
        // `every_api_key_every_version_round_trips` test checks each key gets its own answer.
        // There is no right answer for an API this code does not know; being total, it still
        // answers rather than panicking, with an ApiVersions error.
        _ => Resp::ApiVersions(build!(ApiVersionsResponse { error_code })),
    }
}

/// Compile-time tripwire for new APIs.
///
/// `RequestKind` is `#[non_exhaustive]`, so the `match` in [`error_response`] needs a `_` arm
/// and cannot itself fail to compile when kafka-protocol adds a request type. `ApiKey` is an
/// exhaustive enum generated from the same list of message specs, so this wildcard-free match
/// breaks the build instead. When it does: add an arm for the new request to
/// `error_response`, then list the key here.
const _: () = {
    const fn covered(key: ApiKey) {
        use ApiKey as K;
        match key {
            K::Produce
            | K::Fetch
            | K::ListOffsets
            | K::Metadata
            | K::OffsetCommit
            | K::OffsetFetch
            | K::FindCoordinator
            | K::JoinGroup
            | K::Heartbeat
            | K::LeaveGroup
            | K::SyncGroup
            | K::DescribeGroups
            | K::ListGroups
            | K::SaslHandshake
            | K::ApiVersions
            | K::CreateTopics
            | K::DeleteTopics
            | K::DeleteRecords
            | K::InitProducerId
            | K::OffsetForLeaderEpoch
            | K::AddPartitionsToTxn
            | K::AddOffsetsToTxn
            | K::EndTxn
            | K::WriteTxnMarkers
            | K::TxnOffsetCommit
            | K::DescribeAcls
            | K::CreateAcls
            | K::DeleteAcls
            | K::DescribeConfigs
            | K::AlterConfigs
            | K::AlterReplicaLogDirs
            | K::DescribeLogDirs
            | K::SaslAuthenticate
            | K::CreatePartitions
            | K::CreateDelegationToken
            | K::RenewDelegationToken
            | K::ExpireDelegationToken
            | K::DescribeDelegationToken
            | K::DeleteGroups
            | K::ElectLeaders
            | K::IncrementalAlterConfigs
            | K::AlterPartitionReassignments
            | K::ListPartitionReassignments
            | K::OffsetDelete
            | K::DescribeClientQuotas
            | K::AlterClientQuotas
            | K::DescribeUserScramCredentials
            | K::AlterUserScramCredentials
            | K::Vote
            | K::BeginQuorumEpoch
            | K::EndQuorumEpoch
            | K::DescribeQuorum
            | K::AlterPartition
            | K::UpdateFeatures
            | K::Envelope
            | K::FetchSnapshot
            | K::DescribeCluster
            | K::DescribeProducers
            | K::BrokerRegistration
            | K::BrokerHeartbeat
            | K::UnregisterBroker
            | K::DescribeTransactions
            | K::ListTransactions
            | K::AllocateProducerIds
            | K::ConsumerGroupHeartbeat
            | K::ConsumerGroupDescribe
            | K::ControllerRegistration
            | K::GetTelemetrySubscriptions
            | K::PushTelemetry
            | K::AssignReplicasToDirs
            | K::ListConfigResources
            | K::DescribeTopicPartitions
            | K::ShareGroupHeartbeat
            | K::ShareGroupDescribe
            | K::ShareFetch
            | K::ShareAcknowledge
            | K::AddRaftVoter
            | K::RemoveRaftVoter
            | K::UpdateRaftVoter
            | K::InitializeShareGroupState
            | K::ReadShareGroupState
            | K::WriteShareGroupState
            | K::DeleteShareGroupState
            | K::ReadShareGroupStateSummary
            | K::DescribeShareGroupOffsets
            | K::AlterShareGroupOffsets
            | K::DeleteShareGroupOffsets => {}
        }
    }
    covered(ApiKey::Produce)
};
