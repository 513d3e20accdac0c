//! Data-plane APIs: every requested topic/partition gets its own error entry.
//!
//! Producers and consumers act per partition (retry, refresh metadata, raise to the app), and
//! Produce / ListOffsets / OffsetForLeaderEpoch / DeleteRecords have no top-level error field.
//! Offsets, timestamps and epochs are the protocol's "unknown" value, -1.

use bytes::Bytes;
use kafka_protocol::messages::{
    DeleteRecordsRequest, DeleteRecordsResponse, DescribeProducersRequest, DescribeProducersResponse, FetchRequest,
    FetchResponse, ListOffsetsRequest, ListOffsetsResponse, OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse,
    ProduceRequest, ProduceResponse, ShareAcknowledgeRequest, ShareAcknowledgeResponse, ShareFetchRequest,
    ShareFetchResponse, delete_records_response, describe_producers_response, fetch_response, list_offsets_response,
    offset_for_leader_epoch_response, produce_response, share_acknowledge_response, share_fetch_response,
};

/// Topics are echoed by name and by id; the encoder writes whichever the version uses (v13+
/// identifies topics by id).
pub(super) fn produce(req: &ProduceRequest, error_code: i16) -> ProduceResponse {
    use produce_response::{PartitionProduceResponse, TopicProduceResponse};
    let responses = req
        .topic_data
        .iter()
        .map(|topic| {
            build!(TopicProduceResponse {
                name: topic.name.clone(),
                topic_id: topic.topic_id,
                partition_responses: topic
                    .partition_data
                    .iter()
                    .map(|partition| {
                        build!(PartitionProduceResponse {
                            index: partition.index,
                            error_code,
                            base_offset: -1,
                            log_append_time_ms: -1,
                            log_start_offset: -1,
                            error_message: None,
                        })
                    })
                    .collect(),
            })
        })
        .collect();
    build!(ProduceResponse { responses })
}

/// The top-level error (v7+) tells the client its fetch session is unusable; the
/// per-partition errors are the only error signal below v7. Topics are echoed by name and by
/// id (v13+ uses ids). The session id is echoed like the Java broker does.
pub(super) fn fetch(req: &FetchRequest, version: i16, error_code: i16) -> FetchResponse {
    use fetch_response::{FetchableTopicResponse, PartitionData};
    let responses = req
        .topics
        .iter()
        .map(|topic| {
            build!(FetchableTopicResponse {
                topic: topic.topic.clone(),
                topic_id: topic.topic_id,
                partitions: topic
                    .partitions
                    .iter()
                    .map(|partition| {
                        build!(PartitionData {
                            partition_index: partition.partition,
                            error_code,
                            high_watermark: -1,
                            last_stable_offset: -1,
                            log_start_offset: -1,
                            // An empty record set rather than null: some clients reject a
                            // negative MessageSetSize.
                            records: Some(Bytes::new()),
                        })
                    })
                    .collect(),
            })
        })
        .collect();
    build!(FetchResponse {
        error_code,
        // session_id only exists from v7; the encoder rejects a non-zero value below that.
        session_id: if version >= 7 { req.session_id } else { 0 },
        responses,
    })
}

pub(super) fn list_offsets(req: &ListOffsetsRequest, error_code: i16) -> ListOffsetsResponse {
    use list_offsets_response::{ListOffsetsPartitionResponse, ListOffsetsTopicResponse};
    let topics = req
        .topics
        .iter()
        .map(|topic| {
            build!(ListOffsetsTopicResponse {
                name: topic.name.clone(),
                partitions: topic
                    .partitions
                    .iter()
                    .map(|partition| {
                        build!(ListOffsetsPartitionResponse {
                            partition_index: partition.partition_index,
                            error_code,
                            timestamp: -1,
                            offset: -1,
                            leader_epoch: -1,
                        })
                    })
                    .collect(),
            })
        })
        .collect();
    build!(ListOffsetsResponse { topics })
}

pub(super) fn offset_for_leader_epoch(
    req: &OffsetForLeaderEpochRequest,
    error_code: i16,
) -> OffsetForLeaderEpochResponse {
    use offset_for_leader_epoch_response::{EpochEndOffset, OffsetForLeaderTopicResult};
    let topics = req
        .topics
        .iter()
        .map(|topic| {
            build!(OffsetForLeaderTopicResult {
                topic: topic.topic.clone(),
                partitions: topic
                    .partitions
                    .iter()
                    .map(|partition| {
                        build!(EpochEndOffset {
                            error_code,
                            partition: partition.partition,
                            leader_epoch: -1,
                            end_offset: -1,
                        })
                    })
                    .collect(),
            })
        })
        .collect();
    build!(OffsetForLeaderEpochResponse { topics })
}

pub(super) fn delete_records(req: &DeleteRecordsRequest, error_code: i16) -> DeleteRecordsResponse {
    use delete_records_response::{DeleteRecordsPartitionResult, DeleteRecordsTopicResult};
    let topics = req
        .topics
        .iter()
        .map(|topic| {
            build!(DeleteRecordsTopicResult {
                name: topic.name.clone(),
                partitions: topic
                    .partitions
                    .iter()
                    .map(|partition| {
                        build!(DeleteRecordsPartitionResult {
                            partition_index: partition.partition_index,
                            low_watermark: -1,
                            error_code,
                        })
                    })
                    .collect(),
            })
        })
        .collect();
    build!(DeleteRecordsResponse { topics })
}

pub(super) fn describe_producers(req: &DescribeProducersRequest, error_code: i16) -> DescribeProducersResponse {
    use describe_producers_response::{PartitionResponse, TopicResponse};
    let topics = req
        .topics
        .iter()
        .map(|topic| {
            build!(TopicResponse {
                name: topic.name.clone(),
                partitions: topic
                    .partition_indexes
                    .iter()
                    .map(|&partition_index| {
                        build!(PartitionResponse { partition_index, error_code, error_message: None })
                    })
                    .collect(),
            })
        })
        .collect();
    build!(DescribeProducersResponse { topics })
}

/// Top-level error plus every requested partition. A partition that carried
/// acknowledgements also reports them as failed, so the consumer does not treat them as done.
pub(super) fn share_fetch(req: &ShareFetchRequest, error_code: i16) -> ShareFetchResponse {
    use share_fetch_response::{PartitionData, ShareFetchableTopicResponse};
    let responses = req
        .topics
        .iter()
        .map(|topic| {
            build!(ShareFetchableTopicResponse {
                topic_id: topic.topic_id,
                partitions: topic
                    .partitions
                    .iter()
                    .map(|partition| {
                        let acknowledged = !partition.acknowledgement_batches.is_empty();
                        build!(PartitionData {
                            partition_index: partition.partition_index,
                            error_code,
                            error_message: None,
                            acknowledge_error_code: if acknowledged { error_code } else { 0 },
                            acknowledge_error_message: None,
                            records: Some(Bytes::new()),
                        })
                    })
                    .collect(),
            })
        })
        .collect();
    build!(ShareFetchResponse { error_code, error_message: None, responses })
}

pub(super) fn share_acknowledge(req: &ShareAcknowledgeRequest, error_code: i16) -> ShareAcknowledgeResponse {
    use share_acknowledge_response::{PartitionData, ShareAcknowledgeTopicResponse};
    let responses = req
        .topics
        .iter()
        .map(|topic| {
            build!(ShareAcknowledgeTopicResponse {
                topic_id: topic.topic_id,
                partitions: topic
                    .partitions
                    .iter()
                    .map(|partition| {
                        build!(PartitionData {
                            partition_index: partition.partition_index,
                            error_code,
                            error_message: None,
                        })
                    })
                    .collect(),
            })
        })
        .collect();
    build!(ShareAcknowledgeResponse { error_code, error_message: None, responses })
}
