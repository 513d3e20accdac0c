//! Inter-broker and controller RPCs: KRaft quorum, partition state, share-group state.
//!
//! A gateway should rarely see these, but the function is total. Where the response has a
//! top-level error it is set; the requested partitions are echoed with the error as well,
//! which is all the share-group state APIs (no top-level error field) can carry.

use kafka_protocol::messages::{
    AlterPartitionRequest, AlterPartitionResponse, AssignReplicasToDirsRequest, AssignReplicasToDirsResponse,
    BeginQuorumEpochRequest, BeginQuorumEpochResponse, DeleteShareGroupStateRequest, DeleteShareGroupStateResponse,
    DescribeQuorumRequest, DescribeQuorumResponse, EndQuorumEpochRequest, EndQuorumEpochResponse, FetchSnapshotRequest,
    FetchSnapshotResponse, InitializeShareGroupStateRequest, InitializeShareGroupStateResponse,
    ReadShareGroupStateRequest, ReadShareGroupStateResponse, ReadShareGroupStateSummaryRequest,
    ReadShareGroupStateSummaryResponse, VoteRequest, VoteResponse, WriteShareGroupStateRequest,
    WriteShareGroupStateResponse, alter_partition_response, assign_replicas_to_dirs_response,
    begin_quorum_epoch_response, delete_share_group_state_response, describe_quorum_response,
    end_quorum_epoch_response, fetch_snapshot_response, initialize_share_group_state_response,
    read_share_group_state_response, read_share_group_state_summary_response, vote_response,
    write_share_group_state_response,
};

// ---- KRaft quorum: top-level error, and each partition with no known leader (-1). ----

pub(super) fn vote(req: &VoteRequest, error_code: i16) -> VoteResponse {
    use vote_response::{PartitionData, TopicData};
    let topics = req
        .topics
        .iter()
        .map(|topic| {
            build!(TopicData {
                topic_name: topic.topic_name.clone(),
                partitions: topic
                    .partitions
                    .iter()
                    .map(|partition| {
                        build!(PartitionData {
                            partition_index: partition.partition_index,
                            error_code,
                            leader_id: (-1).into(),
                            leader_epoch: -1,
                        })
                    })
                    .collect(),
            })
        })
        .collect();
    build!(VoteResponse { error_code, topics })
}

pub(super) fn begin_quorum_epoch(req: &BeginQuorumEpochRequest, error_code: i16) -> BeginQuorumEpochResponse {
    use begin_quorum_epoch_response::{PartitionData, TopicData};
    let topics = req
        .topics
        .iter()
        .map(|topic| {
            build!(TopicData {
                topic_name: topic.topic_name.clone(),
                partitions: topic
                    .partitions
                    .iter()
                    .map(|partition| {
                        build!(PartitionData {
                            partition_index: partition.partition_index,
                            error_code,
                            leader_id: (-1).into(),
                            leader_epoch: -1,
                        })
                    })
                    .collect(),
            })
        })
        .collect();
    build!(BeginQuorumEpochResponse { error_code, topics })
}

pub(super) fn end_quorum_epoch(req: &EndQuorumEpochRequest, error_code: i16) -> EndQuorumEpochResponse {
    use end_quorum_epoch_response::{PartitionData, TopicData};
    let topics = req
        .topics
        .iter()
        .map(|topic| {
            build!(TopicData {
                topic_name: topic.topic_name.clone(),
                partitions: topic
                    .partitions
                    .iter()
                    .map(|partition| {
                        build!(PartitionData {
                            partition_index: partition.partition_index,
                            error_code,
                            leader_id: (-1).into(),
                            leader_epoch: -1,
                        })
                    })
                    .collect(),
            })
        })
        .collect();
    build!(EndQuorumEpochResponse { error_code, topics })
}

pub(super) fn describe_quorum(req: &DescribeQuorumRequest, error_code: i16) -> DescribeQuorumResponse {
    use describe_quorum_response::{PartitionData, TopicData};
    let topics = req
        .topics
        .iter()
        .map(|topic| {
            build!(TopicData {
                topic_name: topic.topic_name.clone(),
                partitions: topic
                    .partitions
                    .iter()
                    .map(|partition| {
                        build!(PartitionData {
                            partition_index: partition.partition_index,
                            error_code,
                            error_message: None,
                            leader_id: (-1).into(),
                            leader_epoch: -1,
                            high_watermark: -1,
                        })
                    })
                    .collect(),
            })
        })
        .collect();
    build!(DescribeQuorumResponse { error_code, error_message: None, topics })
}

pub(super) fn fetch_snapshot(req: &FetchSnapshotRequest, error_code: i16) -> FetchSnapshotResponse {
    use fetch_snapshot_response::{PartitionSnapshot, TopicSnapshot};
    let topics = req
        .topics
        .iter()
        .map(|topic| {
            build!(TopicSnapshot {
                name: topic.name.clone(),
                partitions: topic
                    .partitions
                    .iter()
                    .map(|partition| { build!(PartitionSnapshot { index: partition.partition, error_code }) })
                    .collect(),
            })
        })
        .collect();
    build!(FetchSnapshotResponse { error_code, topics })
}

// ---- Partition / replica state reported to the controller (topics by id). ----

pub(super) fn alter_partition(req: &AlterPartitionRequest, error_code: i16) -> AlterPartitionResponse {
    use alter_partition_response::{PartitionData, TopicData};
    let topics = req
        .topics
        .iter()
        .map(|topic| {
            build!(TopicData {
                topic_id: topic.topic_id,
                partitions: topic
                    .partitions
                    .iter()
                    .map(|partition| {
                        build!(PartitionData {
                            partition_index: partition.partition_index,
                            error_code,
                            leader_id: (-1).into(),
                            leader_epoch: -1,
                        })
                    })
                    .collect(),
            })
        })
        .collect();
    build!(AlterPartitionResponse { error_code, topics })
}

pub(super) fn assign_replicas_to_dirs(
    req: &AssignReplicasToDirsRequest,
    error_code: i16,
) -> AssignReplicasToDirsResponse {
    use assign_replicas_to_dirs_response::{DirectoryData, PartitionData, TopicData};
    let directories = req
        .directories
        .iter()
        .map(|directory| {
            build!(DirectoryData {
                id: directory.id,
                topics: directory
                    .topics
                    .iter()
                    .map(|topic| {
                        build!(TopicData {
                            topic_id: topic.topic_id,
                            partitions: topic
                                .partitions
                                .iter()
                                .map(|partition| {
                                    build!(PartitionData { partition_index: partition.partition_index, error_code })
                                })
                                .collect(),
                        })
                    })
                    .collect(),
            })
        })
        .collect();
    build!(AssignReplicasToDirsResponse { error_code, directories })
}

// ---- Share-group state (broker -> share coordinator): no top-level error field. ----
// All five have the same shape: results per topic id, each requested partition with the error.

/// Expands to the body of a share-group-state builder: `$resp::$result` per topic id, holding
/// `$resp::PartitionResult` per requested partition.
macro_rules! share_state_results {
    ($req:expr, $error_code:expr, $module:ident :: $result:ident, $response:ident) => {{
        use $module::{PartitionResult, $result};
        let results = $req
            .topics
            .iter()
            .map(|topic| {
                build!($result {
                    topic_id: topic.topic_id,
                    partitions: topic
                        .partitions
                        .iter()
                        .map(|partition| {
                            build!(PartitionResult {
                                partition: partition.partition,
                                error_code: $error_code,
                                error_message: None,
                            })
                        })
                        .collect(),
                })
            })
            .collect();
        build!($response { results })
    }};
}

pub(super) fn initialize_share_group_state(
    req: &InitializeShareGroupStateRequest,
    error_code: i16,
) -> InitializeShareGroupStateResponse {
    share_state_results!(
        req,
        error_code,
        initialize_share_group_state_response::InitializeStateResult,
        InitializeShareGroupStateResponse
    )
}

pub(super) fn read_share_group_state(req: &ReadShareGroupStateRequest, error_code: i16) -> ReadShareGroupStateResponse {
    share_state_results!(req, error_code, read_share_group_state_response::ReadStateResult, ReadShareGroupStateResponse)
}

pub(super) fn write_share_group_state(
    req: &WriteShareGroupStateRequest,
    error_code: i16,
) -> WriteShareGroupStateResponse {
    share_state_results!(
        req,
        error_code,
        write_share_group_state_response::WriteStateResult,
        WriteShareGroupStateResponse
    )
}

pub(super) fn delete_share_group_state(
    req: &DeleteShareGroupStateRequest,
    error_code: i16,
) -> DeleteShareGroupStateResponse {
    share_state_results!(
        req,
        error_code,
        delete_share_group_state_response::DeleteStateResult,
        DeleteShareGroupStateResponse
    )
}

pub(super) fn read_share_group_state_summary(
    req: &ReadShareGroupStateSummaryRequest,
    error_code: i16,
) -> ReadShareGroupStateSummaryResponse {
    share_state_results!(
        req,
        error_code,
        read_share_group_state_summary_response::ReadStateSummaryResult,
        ReadShareGroupStateSummaryResponse
    )
}
