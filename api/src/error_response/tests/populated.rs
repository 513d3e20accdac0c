//! One item per request for every per-item API: the error reaches the wire at every version.

use super::*;

/// One item of each kind the request can name, for every API whose response has per-item
/// results (the top-level-only family returns `None`).
fn populated_request(key: ApiKey) -> Option<RequestKind> {
    use ApiKey as K;
    use RequestKind as R;
    let s = StrBytes::from_static_str;
    Some(match key {
        K::Produce => {
            use produce_request::{PartitionProduceData, TopicProduceData};
            R::Produce(build!(ProduceRequest {
                topic_data: vec![build!(TopicProduceData {
                    name: topic("t"),
                    topic_id: uuid!(1),
                    partition_data: vec![build!(PartitionProduceData { index: 3 })],
                })],
            }))
        }
        K::Fetch => R::Fetch(
            fetch_request(false).with_topics(
                fetch_request(false)
                    .topics
                    .into_iter()
                    .zip(fetch_request(true).topics)
                    .map(|(named, by_id)| named.with_topic_id(by_id.topic_id))
                    .collect(),
            ),
        ),
        K::ListOffsets => {
            use list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
            R::ListOffsets(build!(ListOffsetsRequest {
                topics: vec![build!(ListOffsetsTopic {
                    name: topic("t"),
                    partitions: vec![build!(ListOffsetsPartition { partition_index: 1 })],
                })],
            }))
        }
        K::Metadata => R::Metadata(build!(MetadataRequest {
            topics: Some(vec![build!(metadata_request::MetadataRequestTopic { name: Some(topic("t")) })]),
        })),
        K::OffsetCommit => {
            use offset_commit_request::{OffsetCommitRequestPartition, OffsetCommitRequestTopic};
            R::OffsetCommit(build!(OffsetCommitRequest {
                topics: vec![build!(OffsetCommitRequestTopic {
                    name: topic("t"),
                    partitions: vec![build!(OffsetCommitRequestPartition { partition_index: 2 })],
                })],
            }))
        }
        K::OffsetFetch => {
            use offset_fetch_request::{OffsetFetchRequestGroup, OffsetFetchRequestTopic, OffsetFetchRequestTopics};
            R::OffsetFetch(build!(OffsetFetchRequest {
                group_id: group("g"),
                topics: Some(vec![build!(OffsetFetchRequestTopic { name: topic("t"), partition_indexes: vec![0] })]),
                groups: vec![build!(OffsetFetchRequestGroup {
                    group_id: group("g"),
                    topics: Some(vec![build!(OffsetFetchRequestTopics {
                        name: topic("t"),
                        partition_indexes: vec![0],
                    })]),
                })],
            }))
        }
        K::FindCoordinator => {
            R::FindCoordinator(build!(FindCoordinatorRequest { key: s("g"), coordinator_keys: vec![s("g")] }))
        }
        K::LeaveGroup => R::LeaveGroup(build!(LeaveGroupRequest {
            group_id: group("g"),
            members: vec![build!(leave_group_request::MemberIdentity { member_id: s("m") })],
        })),
        K::DescribeGroups => R::DescribeGroups(build!(DescribeGroupsRequest { groups: vec![group("g")] })),
        K::CreateTopics => R::CreateTopics(build!(CreateTopicsRequest {
            topics: vec![build!(create_topics_request::CreatableTopic { name: topic("t") })],
        })),
        K::DeleteTopics => R::DeleteTopics(build!(DeleteTopicsRequest {
            topic_names: vec![topic("t")],
            topics: vec![build!(delete_topics_request::DeleteTopicState { name: Some(topic("t")) })],
        })),
        K::DeleteRecords => {
            use delete_records_request::{DeleteRecordsPartition, DeleteRecordsTopic};
            R::DeleteRecords(build!(DeleteRecordsRequest {
                topics: vec![build!(DeleteRecordsTopic {
                    name: topic("t"),
                    partitions: vec![build!(DeleteRecordsPartition { partition_index: 0 })],
                })],
            }))
        }
        K::OffsetForLeaderEpoch => {
            use offset_for_leader_epoch_request::{OffsetForLeaderPartition, OffsetForLeaderTopic};
            R::OffsetForLeaderEpoch(build!(OffsetForLeaderEpochRequest {
                topics: vec![build!(OffsetForLeaderTopic {
                    topic: topic("t"),
                    partitions: vec![build!(OffsetForLeaderPartition { partition: 0 })],
                })],
            }))
        }
        K::AddPartitionsToTxn => {
            use add_partitions_to_txn_request::{AddPartitionsToTxnTopic, AddPartitionsToTxnTransaction};
            let topics = vec![build!(AddPartitionsToTxnTopic { name: topic("t"), partitions: vec![0] })];
            R::AddPartitionsToTxn(build!(AddPartitionsToTxnRequest {
                v3_and_below_topics: topics.clone(),
                transactions: vec![build!(AddPartitionsToTxnTransaction { transactional_id: s("tx").into(), topics })],
            }))
        }
        K::WriteTxnMarkers => {
            use write_txn_markers_request::{WritableTxnMarker, WritableTxnMarkerTopic};
            R::WriteTxnMarkers(build!(WriteTxnMarkersRequest {
                markers: vec![build!(WritableTxnMarker {
                    producer_id: 5.into(),
                    topics: vec![build!(WritableTxnMarkerTopic { name: topic("t"), partition_indexes: vec![0] })],
                })],
            }))
        }
        K::TxnOffsetCommit => {
            use txn_offset_commit_request::{TxnOffsetCommitRequestPartition, TxnOffsetCommitRequestTopic};
            R::TxnOffsetCommit(build!(TxnOffsetCommitRequest {
                topics: vec![build!(TxnOffsetCommitRequestTopic {
                    name: topic("t"),
                    partitions: vec![build!(TxnOffsetCommitRequestPartition { partition_index: 0 })],
                })],
            }))
        }
        K::CreateAcls => R::CreateAcls(build!(CreateAclsRequest { creations: vec![Default::default()] })),
        K::DeleteAcls => R::DeleteAcls(build!(DeleteAclsRequest { filters: vec![Default::default()] })),
        K::DescribeConfigs => R::DescribeConfigs(build!(DescribeConfigsRequest {
            resources: vec![build!(describe_configs_request::DescribeConfigsResource {
                resource_type: 2,
                resource_name: s("t"),
            })],
        })),
        K::AlterConfigs => R::AlterConfigs(build!(AlterConfigsRequest {
            resources: vec![build!(alter_configs_request::AlterConfigsResource {
                resource_type: 2,
                resource_name: s("t"),
            })],
        })),
        K::IncrementalAlterConfigs => R::IncrementalAlterConfigs(build!(IncrementalAlterConfigsRequest {
            resources: vec![build!(incremental_alter_configs_request::AlterConfigsResource {
                resource_type: 2,
                resource_name: s("t"),
            })],
        })),
        K::AlterReplicaLogDirs => {
            use alter_replica_log_dirs_request::{AlterReplicaLogDir, AlterReplicaLogDirTopic};
            R::AlterReplicaLogDirs(build!(AlterReplicaLogDirsRequest {
                dirs: vec![build!(AlterReplicaLogDir {
                    path: s("/d"),
                    topics: vec![build!(AlterReplicaLogDirTopic { name: topic("t"), partitions: vec![0] })],
                })],
            }))
        }
        K::DescribeLogDirs => R::DescribeLogDirs(build!(DescribeLogDirsRequest {
            topics: Some(vec![build!(describe_log_dirs_request::DescribableLogDirTopic {
                topic: topic("t"),
                partitions: vec![0],
            })]),
        })),
        K::CreatePartitions => R::CreatePartitions(build!(CreatePartitionsRequest {
            topics: vec![build!(create_partitions_request::CreatePartitionsTopic { name: topic("t") })],
        })),
        K::DeleteGroups => R::DeleteGroups(build!(DeleteGroupsRequest { groups_names: vec![group("g")] })),
        K::ElectLeaders => R::ElectLeaders(build!(ElectLeadersRequest {
            topic_partitions: Some(vec![build!(elect_leaders_request::TopicPartitions {
                topic: topic("t"),
                partitions: vec![0],
            })]),
        })),
        K::AlterPartitionReassignments => {
            use alter_partition_reassignments_request::{ReassignablePartition, ReassignableTopic};
            R::AlterPartitionReassignments(build!(AlterPartitionReassignmentsRequest {
                topics: vec![build!(ReassignableTopic {
                    name: topic("t"),
                    partitions: vec![build!(ReassignablePartition { partition_index: 0 })],
                })],
            }))
        }
        K::OffsetDelete => {
            use offset_delete_request::{OffsetDeleteRequestPartition, OffsetDeleteRequestTopic};
            R::OffsetDelete(build!(OffsetDeleteRequest {
                topics: vec![build!(OffsetDeleteRequestTopic {
                    name: topic("t"),
                    partitions: vec![build!(OffsetDeleteRequestPartition { partition_index: 0 })],
                })],
            }))
        }
        K::AlterClientQuotas => {
            use alter_client_quotas_request::{EntityData, EntryData};
            R::AlterClientQuotas(build!(AlterClientQuotasRequest {
                entries: vec![build!(EntryData {
                    entity: vec![build!(EntityData { entity_type: s("user"), entity_name: Some(s("u")) })],
                })],
            }))
        }
        K::DescribeUserScramCredentials => {
            R::DescribeUserScramCredentials(build!(DescribeUserScramCredentialsRequest {
                users: Some(vec![build!(describe_user_scram_credentials_request::UserName { name: s("u") })]),
            }))
        }
        K::AlterUserScramCredentials => {
            use alter_user_scram_credentials_request::{ScramCredentialDeletion, ScramCredentialUpsertion};
            R::AlterUserScramCredentials(build!(AlterUserScramCredentialsRequest {
                deletions: vec![build!(ScramCredentialDeletion { name: s("u") })],
                upsertions: vec![
                    build!(ScramCredentialUpsertion { name: s("u") }),
                    build!(ScramCredentialUpsertion { name: s("v") }),
                ],
            }))
        }
        K::Vote => R::Vote(build!(VoteRequest {
            topics: vec![build!(vote_request::TopicData {
                topic_name: topic("__cluster_metadata"),
                partitions: vec![Default::default()],
            })],
        })),
        K::BeginQuorumEpoch => R::BeginQuorumEpoch(build!(BeginQuorumEpochRequest {
            topics: vec![build!(begin_quorum_epoch_request::TopicData {
                topic_name: topic("__cluster_metadata"),
                partitions: vec![Default::default()],
            })],
        })),
        K::EndQuorumEpoch => R::EndQuorumEpoch(build!(EndQuorumEpochRequest {
            topics: vec![build!(end_quorum_epoch_request::TopicData {
                topic_name: topic("__cluster_metadata"),
                partitions: vec![Default::default()],
            })],
        })),
        K::DescribeQuorum => R::DescribeQuorum(build!(DescribeQuorumRequest {
            topics: vec![build!(describe_quorum_request::TopicData {
                topic_name: topic("__cluster_metadata"),
                partitions: vec![Default::default()],
            })],
        })),
        K::FetchSnapshot => R::FetchSnapshot(build!(FetchSnapshotRequest {
            topics: vec![build!(fetch_snapshot_request::TopicSnapshot {
                name: topic("__cluster_metadata"),
                partitions: vec![Default::default()],
            })],
        })),
        K::AlterPartition => R::AlterPartition(build!(AlterPartitionRequest {
            topics: vec![build!(alter_partition_request::TopicData {
                topic_id: uuid!(2),
                partitions: vec![Default::default()],
            })],
        })),
        K::UpdateFeatures => R::UpdateFeatures(build!(UpdateFeaturesRequest {
            feature_updates: vec![build!(update_features_request::FeatureUpdateKey { feature: s("metadata.version") })],
        })),
        K::DescribeProducers => R::DescribeProducers(build!(DescribeProducersRequest {
            topics: vec![build!(describe_producers_request::TopicRequest {
                name: topic("t"),
                partition_indexes: vec![0],
            })],
        })),
        K::DescribeTransactions => {
            R::DescribeTransactions(build!(DescribeTransactionsRequest { transactional_ids: vec![s("tx").into()] }))
        }
        K::ConsumerGroupDescribe => {
            R::ConsumerGroupDescribe(build!(ConsumerGroupDescribeRequest { group_ids: vec![group("g")] }))
        }
        K::AssignReplicasToDirs => {
            use assign_replicas_to_dirs_request::{DirectoryData, TopicData};
            R::AssignReplicasToDirs(build!(AssignReplicasToDirsRequest {
                directories: vec![build!(DirectoryData {
                    id: uuid!(3),
                    topics: vec![build!(TopicData { topic_id: uuid!(4), partitions: vec![Default::default()] })],
                })],
            }))
        }
        K::DescribeTopicPartitions => R::DescribeTopicPartitions(build!(DescribeTopicPartitionsRequest {
            topics: vec![build!(describe_topic_partitions_request::TopicRequest { name: topic("t") })],
        })),
        K::ShareGroupDescribe => {
            R::ShareGroupDescribe(build!(ShareGroupDescribeRequest { group_ids: vec![group("g")] }))
        }
        K::ShareFetch => {
            use share_fetch_request::{FetchPartition, FetchTopic};
            R::ShareFetch(build!(ShareFetchRequest {
                topics: vec![build!(FetchTopic {
                    topic_id: uuid!(5),
                    partitions: vec![build!(FetchPartition {
                        partition_index: 1,
                        acknowledgement_batches: vec![Default::default()],
                    })],
                })],
            }))
        }
        K::ShareAcknowledge => {
            use share_acknowledge_request::AcknowledgeTopic;
            R::ShareAcknowledge(build!(ShareAcknowledgeRequest {
                topics: vec![build!(AcknowledgeTopic { topic_id: uuid!(6), partitions: vec![Default::default()] })],
            }))
        }
        K::InitializeShareGroupState => R::InitializeShareGroupState(build!(InitializeShareGroupStateRequest {
            topics: vec![build!(initialize_share_group_state_request::InitializeStateData {
                topic_id: uuid!(7),
                partitions: vec![Default::default()],
            })],
        })),
        K::ReadShareGroupState => R::ReadShareGroupState(build!(ReadShareGroupStateRequest {
            topics: vec![build!(read_share_group_state_request::ReadStateData {
                topic_id: uuid!(7),
                partitions: vec![Default::default()],
            })],
        })),
        K::WriteShareGroupState => R::WriteShareGroupState(build!(WriteShareGroupStateRequest {
            topics: vec![build!(write_share_group_state_request::WriteStateData {
                topic_id: uuid!(7),
                partitions: vec![Default::default()],
            })],
        })),
        K::DeleteShareGroupState => R::DeleteShareGroupState(build!(DeleteShareGroupStateRequest {
            topics: vec![build!(delete_share_group_state_request::DeleteStateData {
                topic_id: uuid!(7),
                partitions: vec![Default::default()],
            })],
        })),
        K::ReadShareGroupStateSummary => R::ReadShareGroupStateSummary(build!(ReadShareGroupStateSummaryRequest {
            topics: vec![build!(read_share_group_state_summary_request::ReadStateSummaryData {
                topic_id: uuid!(7),
                partitions: vec![Default::default()],
            })],
        })),
        K::DescribeShareGroupOffsets => {
            use describe_share_group_offsets_request::{
                DescribeShareGroupOffsetsRequestGroup, DescribeShareGroupOffsetsRequestTopic,
            };
            R::DescribeShareGroupOffsets(build!(DescribeShareGroupOffsetsRequest {
                groups: vec![build!(DescribeShareGroupOffsetsRequestGroup {
                    group_id: group("g"),
                    topics: Some(vec![build!(DescribeShareGroupOffsetsRequestTopic {
                        topic_name: topic("t"),
                        partitions: vec![0],
                    })]),
                })],
            }))
        }
        K::AlterShareGroupOffsets => {
            use alter_share_group_offsets_request::{
                AlterShareGroupOffsetsRequestPartition, AlterShareGroupOffsetsRequestTopic,
            };
            R::AlterShareGroupOffsets(build!(AlterShareGroupOffsetsRequest {
                topics: vec![build!(AlterShareGroupOffsetsRequestTopic {
                    topic_name: topic("t"),
                    partitions: vec![build!(AlterShareGroupOffsetsRequestPartition { partition_index: 0 })],
                })],
            }))
        }
        K::DeleteShareGroupOffsets => R::DeleteShareGroupOffsets(build!(DeleteShareGroupOffsetsRequest {
            topics: vec![build!(delete_share_group_offsets_request::DeleteShareGroupOffsetsRequestTopic {
                topic_name: topic("t"),
            })],
        })),
        _ => return None,
    })
}

/// With one item of each kind in the request, the error reaches the wire at *every* version,
/// and the answer still encodes and decodes, for every API whose response has per-item results.
#[test]
fn populated_requests_carry_the_error_at_every_version() {
    let mut apis = 0;
    for key in ApiKey::iter() {
        let Some(request) = populated_request(key) else {
            continue;
        };
        apis += 1;
        let range = key.valid_versions();
        for version in range.min..=range.max {
            let response = error_response(&request, version, CODE);
            let decoded = round_trip(key, &response, version);
            assert_eq!(std::mem::discriminant(&decoded), std::mem::discriminant(&response), "{key:?} v{version}");
            let without_error = encoded(key, &error_response(&request, version, 0), version);
            assert_ne!(
                encoded(key, &response, version),
                without_error,
                "{key:?} v{version}: error not on the wire: {response:?}"
            );
        }
    }
    assert_eq!(apis, 54);
}
