//! Every API key at every version: the answer is wire-valid and of the right type.

use super::*;

/// The default (empty) request for `key`. This match has no wildcard, so a kafka-protocol
/// release that adds an API fails to compile here too.
fn default_request(key: ApiKey) -> RequestKind {
    use ApiKey as K;
    use RequestKind as R;
    match key {
        K::Produce => R::Produce(Default::default()),
        K::Fetch => R::Fetch(Default::default()),
        K::ListOffsets => R::ListOffsets(Default::default()),
        K::Metadata => R::Metadata(Default::default()),
        K::OffsetCommit => R::OffsetCommit(Default::default()),
        K::OffsetFetch => R::OffsetFetch(Default::default()),
        K::FindCoordinator => R::FindCoordinator(Default::default()),
        K::JoinGroup => R::JoinGroup(Default::default()),
        K::Heartbeat => R::Heartbeat(Default::default()),
        K::LeaveGroup => R::LeaveGroup(Default::default()),
        K::SyncGroup => R::SyncGroup(Default::default()),
        K::DescribeGroups => R::DescribeGroups(Default::default()),
        K::ListGroups => R::ListGroups(Default::default()),
        K::SaslHandshake => R::SaslHandshake(Default::default()),
        K::ApiVersions => R::ApiVersions(Default::default()),
        K::CreateTopics => R::CreateTopics(Default::default()),
        K::DeleteTopics => R::DeleteTopics(Default::default()),
        K::DeleteRecords => R::DeleteRecords(Default::default()),
        K::InitProducerId => R::InitProducerId(Default::default()),
        K::OffsetForLeaderEpoch => R::OffsetForLeaderEpoch(Default::default()),
        K::AddPartitionsToTxn => R::AddPartitionsToTxn(Default::default()),
        K::AddOffsetsToTxn => R::AddOffsetsToTxn(Default::default()),
        K::EndTxn => R::EndTxn(Default::default()),
        K::WriteTxnMarkers => R::WriteTxnMarkers(Default::default()),
        K::TxnOffsetCommit => R::TxnOffsetCommit(Default::default()),
        K::DescribeAcls => R::DescribeAcls(Default::default()),
        K::CreateAcls => R::CreateAcls(Default::default()),
        K::DeleteAcls => R::DeleteAcls(Default::default()),
        K::DescribeConfigs => R::DescribeConfigs(Default::default()),
        K::AlterConfigs => R::AlterConfigs(Default::default()),
        K::AlterReplicaLogDirs => R::AlterReplicaLogDirs(Default::default()),
        K::DescribeLogDirs => R::DescribeLogDirs(Default::default()),
        K::SaslAuthenticate => R::SaslAuthenticate(Default::default()),
        K::CreatePartitions => R::CreatePartitions(Default::default()),
        K::CreateDelegationToken => R::CreateDelegationToken(Default::default()),
        K::RenewDelegationToken => R::RenewDelegationToken(Default::default()),
        K::ExpireDelegationToken => R::ExpireDelegationToken(Default::default()),
        K::DescribeDelegationToken => R::DescribeDelegationToken(Default::default()),
        K::DeleteGroups => R::DeleteGroups(Default::default()),
        K::ElectLeaders => R::ElectLeaders(Default::default()),
        K::IncrementalAlterConfigs => R::IncrementalAlterConfigs(Default::default()),
        K::AlterPartitionReassignments => R::AlterPartitionReassignments(Default::default()),
        K::ListPartitionReassignments => R::ListPartitionReassignments(Default::default()),
        K::OffsetDelete => R::OffsetDelete(Default::default()),
        K::DescribeClientQuotas => R::DescribeClientQuotas(Default::default()),
        K::AlterClientQuotas => R::AlterClientQuotas(Default::default()),
        K::DescribeUserScramCredentials => R::DescribeUserScramCredentials(Default::default()),
        K::AlterUserScramCredentials => R::AlterUserScramCredentials(Default::default()),
        K::Vote => R::Vote(Default::default()),
        K::BeginQuorumEpoch => R::BeginQuorumEpoch(Default::default()),
        K::EndQuorumEpoch => R::EndQuorumEpoch(Default::default()),
        K::DescribeQuorum => R::DescribeQuorum(Default::default()),
        K::AlterPartition => R::AlterPartition(Default::default()),
        K::UpdateFeatures => R::UpdateFeatures(Default::default()),
        K::Envelope => R::Envelope(Default::default()),
        K::FetchSnapshot => R::FetchSnapshot(Default::default()),
        K::DescribeCluster => R::DescribeCluster(Default::default()),
        K::DescribeProducers => R::DescribeProducers(Default::default()),
        K::BrokerRegistration => R::BrokerRegistration(Default::default()),
        K::BrokerHeartbeat => R::BrokerHeartbeat(Default::default()),
        K::UnregisterBroker => R::UnregisterBroker(Default::default()),
        K::DescribeTransactions => R::DescribeTransactions(Default::default()),
        K::ListTransactions => R::ListTransactions(Default::default()),
        K::AllocateProducerIds => R::AllocateProducerIds(Default::default()),
        K::ConsumerGroupHeartbeat => R::ConsumerGroupHeartbeat(Default::default()),
        K::ConsumerGroupDescribe => R::ConsumerGroupDescribe(Default::default()),
        K::ControllerRegistration => R::ControllerRegistration(Default::default()),
        K::GetTelemetrySubscriptions => R::GetTelemetrySubscriptions(Default::default()),
        K::PushTelemetry => R::PushTelemetry(Default::default()),
        K::AssignReplicasToDirs => R::AssignReplicasToDirs(Default::default()),
        K::ListConfigResources => R::ListConfigResources(Default::default()),
        K::DescribeTopicPartitions => R::DescribeTopicPartitions(Default::default()),
        K::ShareGroupHeartbeat => R::ShareGroupHeartbeat(Default::default()),
        K::ShareGroupDescribe => R::ShareGroupDescribe(Default::default()),
        K::ShareFetch => R::ShareFetch(Default::default()),
        K::ShareAcknowledge => R::ShareAcknowledge(Default::default()),
        K::AddRaftVoter => R::AddRaftVoter(Default::default()),
        K::RemoveRaftVoter => R::RemoveRaftVoter(Default::default()),
        K::UpdateRaftVoter => R::UpdateRaftVoter(Default::default()),
        K::InitializeShareGroupState => R::InitializeShareGroupState(Default::default()),
        K::ReadShareGroupState => R::ReadShareGroupState(Default::default()),
        K::WriteShareGroupState => R::WriteShareGroupState(Default::default()),
        K::DeleteShareGroupState => R::DeleteShareGroupState(Default::default()),
        K::ReadShareGroupStateSummary => R::ReadShareGroupStateSummary(Default::default()),
        K::DescribeShareGroupOffsets => R::DescribeShareGroupOffsets(Default::default()),
        K::AlterShareGroupOffsets => R::AlterShareGroupOffsets(Default::default()),
        K::DeleteShareGroupOffsets => R::DeleteShareGroupOffsets(Default::default()),
    }
}

/// Where an empty (default) request leaves the error nowhere to go on the wire: the response
/// only has per-item errors, or has no top-level error field at this version.
fn error_has_no_place_for_empty_request(key: ApiKey, version: i16) -> bool {
    use ApiKey as K;
    match key {
        K::Fetch => version < 7,
        // The default request names an (empty) list of topics, not "all topics".
        K::Metadata => true,
        K::OffsetFetch => !(2..8).contains(&version),
        K::FindCoordinator => version >= 4,
        K::AddPartitionsToTxn => version < 4,
        K::ElectLeaders => version < 1,
        K::Produce
        | K::ListOffsets
        | K::OffsetCommit
        | K::DescribeGroups
        | K::CreateTopics
        | K::DeleteTopics
        | K::DeleteRecords
        | K::OffsetForLeaderEpoch
        | K::WriteTxnMarkers
        | K::TxnOffsetCommit
        | K::CreateAcls
        | K::DeleteAcls
        | K::DescribeConfigs
        | K::AlterConfigs
        | K::AlterReplicaLogDirs
        | K::CreatePartitions
        | K::DeleteGroups
        | K::IncrementalAlterConfigs
        | K::AlterClientQuotas
        | K::AlterUserScramCredentials
        | K::DescribeProducers
        | K::DescribeTransactions
        | K::ConsumerGroupDescribe
        | K::DescribeTopicPartitions
        | K::ShareGroupDescribe
        | K::InitializeShareGroupState
        | K::ReadShareGroupState
        | K::WriteShareGroupState
        | K::DeleteShareGroupState
        | K::ReadShareGroupStateSummary
        | K::DescribeShareGroupOffsets => true,
        _ => false,
    }
}

/// The proof of "any request type": for every API key and every version kafka-protocol
/// supports, the error response encodes and decodes at that version, is the response type of
/// that API, and (unless the message has nowhere to put it) carries the error on the wire.
#[test]
fn every_api_key_every_version_round_trips() {
    let mut keys = 0;
    for key in ApiKey::iter() {
        keys += 1;
        let request = default_request(key);
        let range = key.valid_versions();
        assert!(!range.is_empty(), "{key:?}");
        for version in range.min..=range.max {
            let response = error_response(&request, version, CODE);
            let decoded = round_trip(key, &response, version);
            // `decode` picks the variant from `key`; a mismatch means the wrong response type.
            assert_eq!(
                std::mem::discriminant(&decoded),
                std::mem::discriminant(&response),
                "{key:?} v{version}: answered with {response:?}"
            );

            let with_error = encoded(key, &response, version);
            let without_error = encoded(key, &error_response(&request, version, 0), version);
            let visible = with_error != without_error;
            assert_eq!(
                visible,
                !error_has_no_place_for_empty_request(key, version),
                "{key:?} v{version}: error visible on the wire = {visible}"
            );
        }
    }
    // kafka-protocol 0.18 defines 87 APIs (codes 0..=92, with gaps); `iter()` visits them all.
    assert_eq!(keys, 87);
}

/// Totality: out-of-range versions and odd codes never panic (encoding may then fail, which
/// is the caller's concern, as for any response at an unsupported version).
#[test]
fn never_panics_on_odd_versions_or_codes() {
    for key in ApiKey::iter() {
        let request = default_request(key);
        for version in [i16::MIN, -1, 0, 1, 7, 8, 100, i16::MAX] {
            for code in [i16::MIN, -1, 0, CODE, i16::MAX] {
                let _ = error_response(&request, version, code);
            }
        }
    }
}
