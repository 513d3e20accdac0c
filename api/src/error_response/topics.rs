//! Metadata and topic administration: every requested topic (or partition) gets the error.
//!
//! Clients match results to what they asked for by topic name / id; a topic missing from the
//! answer is reported as "unknown" or waited on, not as the real error.

use kafka_protocol::messages::{
    AlterPartitionReassignmentsRequest, AlterPartitionReassignmentsResponse, AlterReplicaLogDirsRequest,
    AlterReplicaLogDirsResponse, CreatePartitionsRequest, CreatePartitionsResponse, CreateTopicsRequest,
    CreateTopicsResponse, DeleteTopicsRequest, DeleteTopicsResponse, DescribeLogDirsResponse,
    DescribeTopicPartitionsRequest, DescribeTopicPartitionsResponse, ElectLeadersRequest, ElectLeadersResponse,
    MetadataRequest, MetadataResponse, alter_partition_reassignments_response, alter_replica_log_dirs_response,
    create_partitions_response, create_topics_response, delete_topics_response, describe_log_dirs_response,
    describe_topic_partitions_response, elect_leaders_response, metadata_response,
};

/// Each requested topic comes back with the error and no partitions (a topic asked for by id
/// gets an empty name, as from the Java broker). A request for all topics (`topics: None`)
/// gets an empty topic list plus the top-level error, which only v13+ can carry; the top-level
/// error is not set when topics are named, because librdkafka then fails the whole answer
/// instead of reporting each topic's error.
pub(super) fn metadata(req: &MetadataRequest, error_code: i16) -> MetadataResponse {
    use metadata_response::MetadataResponseTopic;
    match &req.topics {
        Some(topics) => build!(MetadataResponse {
            topics: topics
                .iter()
                .map(|topic| {
                    build!(MetadataResponseTopic {
                        error_code,
                        name: Some(topic.name.clone().unwrap_or_default()),
                        topic_id: topic.topic_id,
                        is_internal: false,
                    })
                })
                .collect(),
        }),
        None => build!(MetadataResponse { error_code }),
    }
}

/// `num_partitions` / `replication_factor` stay -1 (their defaults), as in the broker's answer.
pub(super) fn create_topics(req: &CreateTopicsRequest, error_code: i16) -> CreateTopicsResponse {
    use create_topics_response::CreatableTopicResult;
    let topics = req
        .topics
        .iter()
        .map(|topic| build!(CreatableTopicResult { name: topic.name.clone(), error_code, error_message: None }))
        .collect();
    build!(CreateTopicsResponse { topics })
}

/// v1-5 name topics in `topic_names`; v6+ send `topics`, each by name or by id. A request
/// decoded at one version fills only one of the two lists, so both are echoed in order.
pub(super) fn delete_topics(req: &DeleteTopicsRequest, version: i16, error_code: i16) -> DeleteTopicsResponse {
    use delete_topics_response::DeletableTopicResult;
    let by_name = req
        .topic_names
        .iter()
        .map(|name| build!(DeletableTopicResult { name: Some(name.clone()), error_code, error_message: None }));
    let by_state = req.topics.iter().map(|topic| {
        build!(DeletableTopicResult {
            // The name is only nullable from v6; below that send "" rather than null.
            name: if version >= 6 { topic.name.clone() } else { Some(topic.name.clone().unwrap_or_default()) },
            topic_id: topic.topic_id,
            error_code,
            error_message: None,
        })
    });
    build!(DeleteTopicsResponse { responses: by_name.chain(by_state).collect() })
}

pub(super) fn create_partitions(req: &CreatePartitionsRequest, error_code: i16) -> CreatePartitionsResponse {
    use create_partitions_response::CreatePartitionsTopicResult;
    let results = req
        .topics
        .iter()
        .map(|topic| build!(CreatePartitionsTopicResult { name: topic.name.clone(), error_code, error_message: None }))
        .collect();
    build!(CreatePartitionsResponse { results })
}

pub(super) fn describe_topic_partitions(
    req: &DescribeTopicPartitionsRequest,
    error_code: i16,
) -> DescribeTopicPartitionsResponse {
    use describe_topic_partitions_response::DescribeTopicPartitionsResponseTopic;
    let topics = req
        .topics
        .iter()
        .map(|topic| {
            build!(DescribeTopicPartitionsResponseTopic {
                error_code,
                name: Some(topic.name.clone()),
                is_internal: false,
            })
        })
        .collect();
    build!(DescribeTopicPartitionsResponse { topics })
}

/// Top-level error (v1+) and every requested partition. `topic_partitions: None` (elect for
/// all partitions) has nothing to echo.
pub(super) fn elect_leaders(req: &ElectLeadersRequest, version: i16, error_code: i16) -> ElectLeadersResponse {
    use elect_leaders_response::{PartitionResult, ReplicaElectionResult};
    let replica_election_results = req
        .topic_partitions
        .iter()
        .flatten()
        .map(|topic| {
            build!(ReplicaElectionResult {
                topic: topic.topic.clone(),
                partition_result: topic
                    .partitions
                    .iter()
                    .map(|&partition_id| { build!(PartitionResult { partition_id, error_code, error_message: None }) })
                    .collect(),
            })
        })
        .collect();
    build!(ElectLeadersResponse {
        // v0 has no top-level error field, and the encoder rejects a non-zero value there.
        error_code: if version >= 1 { error_code } else { 0 },
        replica_election_results,
    })
}

pub(super) fn alter_partition_reassignments(
    req: &AlterPartitionReassignmentsRequest,
    error_code: i16,
) -> AlterPartitionReassignmentsResponse {
    use alter_partition_reassignments_response::{ReassignablePartitionResponse, ReassignableTopicResponse};
    let responses = req
        .topics
        .iter()
        .map(|topic| {
            build!(ReassignableTopicResponse {
                name: topic.name.clone(),
                partitions: topic
                    .partitions
                    .iter()
                    .map(|partition| {
                        build!(ReassignablePartitionResponse {
                            partition_index: partition.partition_index,
                            error_code,
                            error_message: None,
                        })
                    })
                    .collect(),
            })
        })
        .collect();
    build!(AlterPartitionReassignmentsResponse { error_code, error_message: None, responses })
}

/// Results are keyed by log directory, which the request does not name. v3+ has a top-level
/// error. Below v3 the broker's answer (no results) would hide the error entirely, so a single
/// result for an unnamed ("") log directory carries it; the Java admin client then reports
/// that directory as failed with the error.
pub(super) fn describe_log_dirs(version: i16, error_code: i16) -> DescribeLogDirsResponse {
    use describe_log_dirs_response::DescribeLogDirsResult;
    if version >= 3 {
        build!(DescribeLogDirsResponse { error_code })
    } else {
        build!(DescribeLogDirsResponse { results: vec![build!(DescribeLogDirsResult { error_code })] })
    }
}

/// One result per (log dir, topic) of the request, each partition carrying the error.
pub(super) fn alter_replica_log_dirs(req: &AlterReplicaLogDirsRequest, error_code: i16) -> AlterReplicaLogDirsResponse {
    use alter_replica_log_dirs_response::{AlterReplicaLogDirPartitionResult, AlterReplicaLogDirTopicResult};
    let results = req
        .dirs
        .iter()
        .flat_map(|dir| &dir.topics)
        .map(|topic| {
            build!(AlterReplicaLogDirTopicResult {
                topic_name: topic.name.clone(),
                partitions: topic
                    .partitions
                    .iter()
                    .map(|&partition_index| {
                        build!(AlterReplicaLogDirPartitionResult { partition_index, error_code })
                    })
                    .collect(),
            })
        })
        .collect();
    build!(AlterReplicaLogDirsResponse { results })
}
