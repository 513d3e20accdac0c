//! Transactions: the per-partition / per-transaction results of transactional APIs.
//!
//! (InitProducerId, AddOffsetsToTxn, EndTxn and ListTransactions answer at the top level and
//! are handled with the top-level family in `mod.rs`.)

use kafka_protocol::messages::{
    AddPartitionsToTxnRequest, AddPartitionsToTxnResponse, DescribeTransactionsRequest, DescribeTransactionsResponse,
    TxnOffsetCommitRequest, TxnOffsetCommitResponse, WriteTxnMarkersRequest, WriteTxnMarkersResponse,
    add_partitions_to_txn_request, add_partitions_to_txn_response, describe_transactions_response,
    txn_offset_commit_response, write_txn_markers_response,
};

/// v0-3 (what producers send) have no top-level error: every topic/partition gets it. v4+
/// (broker-to-coordinator batches) have a top-level error, set along with each transaction's
/// partitions. The encoder rejects the layout of the other version range, so only one is set.
pub(super) fn add_partitions_to_txn(
    req: &AddPartitionsToTxnRequest,
    version: i16,
    error_code: i16,
) -> AddPartitionsToTxnResponse {
    use add_partitions_to_txn_response::AddPartitionsToTxnResult;
    if version >= 4 {
        build!(AddPartitionsToTxnResponse {
            error_code,
            results_by_transaction: req
                .transactions
                .iter()
                .map(|transaction| {
                    build!(AddPartitionsToTxnResult {
                        transactional_id: transaction.transactional_id.clone(),
                        topic_results: txn_topic_results(&transaction.topics, error_code),
                    })
                })
                .collect(),
        })
    } else {
        build!(AddPartitionsToTxnResponse {
            results_by_topic_v3_and_below: txn_topic_results(&req.v3_and_below_topics, error_code),
        })
    }
}

fn txn_topic_results(
    topics: &[add_partitions_to_txn_request::AddPartitionsToTxnTopic],
    error_code: i16,
) -> Vec<add_partitions_to_txn_response::AddPartitionsToTxnTopicResult> {
    use add_partitions_to_txn_response::{AddPartitionsToTxnPartitionResult, AddPartitionsToTxnTopicResult};
    topics
        .iter()
        .map(|topic| {
            build!(AddPartitionsToTxnTopicResult {
                name: topic.name.clone(),
                results_by_partition: topic
                    .partitions
                    .iter()
                    .map(|&partition_index| {
                        build!(AddPartitionsToTxnPartitionResult { partition_index, partition_error_code: error_code })
                    })
                    .collect(),
            })
        })
        .collect()
}

pub(super) fn txn_offset_commit(req: &TxnOffsetCommitRequest, error_code: i16) -> TxnOffsetCommitResponse {
    use txn_offset_commit_response::{TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic};
    let topics = req
        .topics
        .iter()
        .map(|topic| {
            build!(TxnOffsetCommitResponseTopic {
                name: topic.name.clone(),
                partitions: topic
                    .partitions
                    .iter()
                    .map(|partition| {
                        build!(TxnOffsetCommitResponsePartition {
                            partition_index: partition.partition_index,
                            error_code,
                        })
                    })
                    .collect(),
            })
        })
        .collect();
    build!(TxnOffsetCommitResponse { topics })
}

/// One result per marker (keyed by producer id), each partition carrying the error.
pub(super) fn write_txn_markers(req: &WriteTxnMarkersRequest, error_code: i16) -> WriteTxnMarkersResponse {
    use write_txn_markers_response::{
        WritableTxnMarkerPartitionResult, WritableTxnMarkerResult, WritableTxnMarkerTopicResult,
    };
    let markers = req
        .markers
        .iter()
        .map(|marker| {
            build!(WritableTxnMarkerResult {
                producer_id: marker.producer_id,
                topics: marker
                    .topics
                    .iter()
                    .map(|topic| {
                        build!(WritableTxnMarkerTopicResult {
                            name: topic.name.clone(),
                            partitions: topic
                                .partition_indexes
                                .iter()
                                .map(|&partition_index| {
                                    build!(WritableTxnMarkerPartitionResult { partition_index, error_code })
                                })
                                .collect(),
                        })
                    })
                    .collect(),
            })
        })
        .collect();
    build!(WriteTxnMarkersResponse { markers })
}

pub(super) fn describe_transactions(
    req: &DescribeTransactionsRequest,
    error_code: i16,
) -> DescribeTransactionsResponse {
    use describe_transactions_response::TransactionState;
    let transaction_states = req
        .transactional_ids
        .iter()
        .map(|transactional_id| build!(TransactionState { error_code, transactional_id: transactional_id.clone() }))
        .collect();
    build!(DescribeTransactionsResponse { transaction_states })
}
