//! Consumer groups, share groups and their committed offsets.
//!
//! Batched group APIs answer per group (and per topic/partition for offsets); clients look
//! up each group / partition they asked about in the answer.

use kafka_protocol::messages::{
    AlterShareGroupOffsetsRequest, AlterShareGroupOffsetsResponse, ConsumerGroupDescribeRequest,
    ConsumerGroupDescribeResponse, DeleteGroupsRequest, DeleteGroupsResponse, DeleteShareGroupOffsetsRequest,
    DeleteShareGroupOffsetsResponse, DescribeGroupsRequest, DescribeGroupsResponse, DescribeShareGroupOffsetsRequest,
    DescribeShareGroupOffsetsResponse, FindCoordinatorRequest, FindCoordinatorResponse, JoinGroupResponse,
    LeaveGroupRequest, LeaveGroupResponse, OffsetCommitRequest, OffsetCommitResponse, OffsetDeleteRequest,
    OffsetDeleteResponse, OffsetFetchRequest, OffsetFetchResponse, ShareGroupDescribeRequest,
    ShareGroupDescribeResponse, alter_share_group_offsets_response, consumer_group_describe_response,
    delete_groups_response, delete_share_group_offsets_response, describe_groups_response,
    describe_share_group_offsets_response, find_coordinator_response, leave_group_response, offset_commit_response,
    offset_delete_response, offset_fetch_response, share_group_describe_response,
};
use kafka_protocol::protocol::StrBytes;

/// v0-3 look up one key and answer at the top level; v4+ batch keys and answer with one
/// coordinator entry per requested key. Either way the node is "no node" (-1, "", -1).
pub(super) fn find_coordinator(req: &FindCoordinatorRequest, version: i16, error_code: i16) -> FindCoordinatorResponse {
    use find_coordinator_response::Coordinator;
    if version >= 4 {
        // The encoder rejects the top-level node fields on v4+, so they stay at their defaults.
        build!(FindCoordinatorResponse {
            coordinators: req
                .coordinator_keys
                .iter()
                .map(|key| {
                    build!(Coordinator {
                        key: key.clone(),
                        node_id: (-1).into(),
                        host: StrBytes::default(),
                        port: -1,
                        error_code,
                        error_message: None,
                    })
                })
                .collect(),
        })
    } else {
        build!(FindCoordinatorResponse {
            error_code,
            error_message: None,
            node_id: (-1).into(),
            host: StrBytes::default(),
            port: -1,
        })
    }
}

/// Generation -1 and empty leader / member ids, as the broker sends. `protocol_name` is only
/// nullable from v7 (the broker sends null there, "" before).
pub(super) fn join_group(version: i16, error_code: i16) -> JoinGroupResponse {
    build!(JoinGroupResponse {
        error_code,
        generation_id: -1,
        protocol_name: if version >= 7 { None } else { Some(StrBytes::default()) },
    })
}

/// Top-level error; v3+ batch members, and each departing member gets the error too.
pub(super) fn leave_group(req: &LeaveGroupRequest, version: i16, error_code: i16) -> LeaveGroupResponse {
    use leave_group_response::MemberResponse;
    let members = if version >= 3 {
        req.members
            .iter()
            .map(|member| {
                build!(MemberResponse {
                    member_id: member.member_id.clone(),
                    group_instance_id: member.group_instance_id.clone(),
                    error_code,
                })
            })
            .collect()
    } else {
        Vec::new()
    };
    build!(LeaveGroupResponse { error_code, members })
}

/// Each group is described as "errored": empty state / protocol, no members.
pub(super) fn describe_groups(req: &DescribeGroupsRequest, error_code: i16) -> DescribeGroupsResponse {
    use describe_groups_response::DescribedGroup;
    let groups = req
        .groups
        .iter()
        .map(|group_id| build!(DescribedGroup { error_code, error_message: None, group_id: group_id.clone() }))
        .collect();
    build!(DescribeGroupsResponse { groups })
}

pub(super) fn delete_groups(req: &DeleteGroupsRequest, error_code: i16) -> DeleteGroupsResponse {
    use delete_groups_response::DeletableGroupResult;
    let results = req
        .groups_names
        .iter()
        .map(|group_id| build!(DeletableGroupResult { group_id: group_id.clone(), error_code }))
        .collect();
    build!(DeleteGroupsResponse { results })
}

/// No top-level error field: every committed partition gets the error. Topics are echoed by
/// name and id (v10 answers by id).
pub(super) fn offset_commit(req: &OffsetCommitRequest, error_code: i16) -> OffsetCommitResponse {
    use offset_commit_response::{OffsetCommitResponsePartition, OffsetCommitResponseTopic};
    let topics = req
        .topics
        .iter()
        .map(|topic| {
            build!(OffsetCommitResponseTopic {
                name: topic.name.clone(),
                topic_id: topic.topic_id,
                partitions: topic
                    .partitions
                    .iter()
                    .map(|partition| {
                        build!(OffsetCommitResponsePartition { partition_index: partition.partition_index, error_code })
                    })
                    .collect(),
            })
        })
        .collect();
    build!(OffsetCommitResponse { topics })
}

/// v1-7 ask for one group: each requested partition gets the error (offset -1) plus the
/// top-level error (v2+). v8+ batch groups: each group gets the error, and its requested
/// partitions too. `topics: None` (all committed offsets) has no partitions to echo.
pub(super) fn offset_fetch(req: &OffsetFetchRequest, version: i16, error_code: i16) -> OffsetFetchResponse {
    use offset_fetch_response::{
        OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
        OffsetFetchResponseTopic, OffsetFetchResponseTopics,
    };
    // The v1-7 and v8+ layouts are distinct fields, and the encoder rejects the wrong one.
    if version >= 8 {
        let groups = req
            .groups
            .iter()
            .map(|group| {
                build!(OffsetFetchResponseGroup {
                    group_id: group.group_id.clone(),
                    error_code,
                    topics: group
                        .topics
                        .iter()
                        .flatten()
                        .map(|topic| {
                            build!(OffsetFetchResponseTopics {
                                name: topic.name.clone(),
                                topic_id: topic.topic_id,
                                partitions: topic
                                    .partition_indexes
                                    .iter()
                                    .map(|&partition_index| {
                                        build!(OffsetFetchResponsePartitions {
                                            partition_index,
                                            committed_offset: -1,
                                            committed_leader_epoch: -1,
                                            error_code,
                                        })
                                    })
                                    .collect(),
                            })
                        })
                        .collect(),
                })
            })
            .collect();
        build!(OffsetFetchResponse { groups })
    } else {
        let topics = req
            .topics
            .iter()
            .flatten()
            .map(|topic| {
                build!(OffsetFetchResponseTopic {
                    name: topic.name.clone(),
                    partitions: topic
                        .partition_indexes
                        .iter()
                        .map(|&partition_index| {
                            build!(OffsetFetchResponsePartition {
                                partition_index,
                                committed_offset: -1,
                                committed_leader_epoch: -1,
                                error_code,
                            })
                        })
                        .collect(),
                })
            })
            .collect();
        // `error_code` is written from v2; v1 clients rely on the partition errors alone.
        build!(OffsetFetchResponse { topics, error_code })
    }
}

/// Top-level error plus every requested partition.
pub(super) fn offset_delete(req: &OffsetDeleteRequest, error_code: i16) -> OffsetDeleteResponse {
    use offset_delete_response::{OffsetDeleteResponsePartition, OffsetDeleteResponseTopic};
    let topics = req
        .topics
        .iter()
        .map(|topic| {
            build!(OffsetDeleteResponseTopic {
                name: topic.name.clone(),
                partitions: topic
                    .partitions
                    .iter()
                    .map(|partition| {
                        build!(OffsetDeleteResponsePartition { partition_index: partition.partition_index, error_code })
                    })
                    .collect(),
            })
        })
        .collect();
    build!(OffsetDeleteResponse { error_code, topics })
}

pub(super) fn consumer_group_describe(
    req: &ConsumerGroupDescribeRequest,
    error_code: i16,
) -> ConsumerGroupDescribeResponse {
    use consumer_group_describe_response::DescribedGroup;
    let groups = req
        .group_ids
        .iter()
        .map(|group_id| build!(DescribedGroup { error_code, error_message: None, group_id: group_id.clone() }))
        .collect();
    build!(ConsumerGroupDescribeResponse { groups })
}

pub(super) fn share_group_describe(req: &ShareGroupDescribeRequest, error_code: i16) -> ShareGroupDescribeResponse {
    use share_group_describe_response::DescribedGroup;
    let groups = req
        .group_ids
        .iter()
        .map(|group_id| build!(DescribedGroup { error_code, error_message: None, group_id: group_id.clone() }))
        .collect();
    build!(ShareGroupDescribeResponse { groups })
}

/// Each group gets the error, and so does each partition it asked about (offset -1).
pub(super) fn describe_share_group_offsets(
    req: &DescribeShareGroupOffsetsRequest,
    error_code: i16,
) -> DescribeShareGroupOffsetsResponse {
    use describe_share_group_offsets_response::{
        DescribeShareGroupOffsetsResponseGroup, DescribeShareGroupOffsetsResponsePartition,
        DescribeShareGroupOffsetsResponseTopic,
    };
    let groups = req
        .groups
        .iter()
        .map(|group| {
            build!(DescribeShareGroupOffsetsResponseGroup {
                group_id: group.group_id.clone(),
                error_code,
                error_message: None,
                topics: group
                    .topics
                    .iter()
                    .flatten()
                    .map(|topic| {
                        build!(DescribeShareGroupOffsetsResponseTopic {
                            topic_name: topic.topic_name.clone(),
                            partitions: topic
                                .partitions
                                .iter()
                                .map(|&partition_index| {
                                    build!(DescribeShareGroupOffsetsResponsePartition {
                                        partition_index,
                                        start_offset: -1,
                                        leader_epoch: -1,
                                        error_code,
                                        error_message: None,
                                    })
                                })
                                .collect(),
                        })
                    })
                    .collect(),
            })
        })
        .collect();
    build!(DescribeShareGroupOffsetsResponse { groups })
}

/// Top-level error plus every requested partition.
pub(super) fn alter_share_group_offsets(
    req: &AlterShareGroupOffsetsRequest,
    error_code: i16,
) -> AlterShareGroupOffsetsResponse {
    use alter_share_group_offsets_response::{
        AlterShareGroupOffsetsResponsePartition, AlterShareGroupOffsetsResponseTopic,
    };
    let responses = req
        .topics
        .iter()
        .map(|topic| {
            build!(AlterShareGroupOffsetsResponseTopic {
                topic_name: topic.topic_name.clone(),
                partitions: topic
                    .partitions
                    .iter()
                    .map(|partition| {
                        build!(AlterShareGroupOffsetsResponsePartition {
                            partition_index: partition.partition_index,
                            error_code,
                            error_message: None,
                        })
                    })
                    .collect(),
            })
        })
        .collect();
    build!(AlterShareGroupOffsetsResponse { error_code, error_message: None, responses })
}

/// Top-level error plus every requested topic.
pub(super) fn delete_share_group_offsets(
    req: &DeleteShareGroupOffsetsRequest,
    error_code: i16,
) -> DeleteShareGroupOffsetsResponse {
    use delete_share_group_offsets_response::DeleteShareGroupOffsetsResponseTopic;
    let responses = req
        .topics
        .iter()
        .map(|topic| {
            build!(DeleteShareGroupOffsetsResponseTopic {
                topic_name: topic.topic_name.clone(),
                error_code,
                error_message: None,
            })
        })
        .collect();
    build!(DeleteShareGroupOffsetsResponse { error_code, error_message: None, responses })
}
