//! Responses: every tenant name loses its prefix, and listings show the tenant only its own names.

use franzgate_api::kafka_protocol::messages::{
    AddPartitionsToTxnResponse, ConsumerGroupDescribeResponse, CreateTopicsResponse, DescribeConfigsResponse,
    DescribeTopicPartitionsResponse, DescribeTransactionsResponse, MetadataResponse, OffsetFetchResponse, ResponseKind,
};
use franzgate_api::kafka_protocol::protocol::StrBytes;

use super::names::{Prefix, TopicIds};

/// Config resource types whose names are tenant names (see `requests`).
const RESOURCE_TOPIC: i8 = 2;
const RESOURCE_GROUP: i8 = 32;

/// Strips the prefix from every tenant name in `body`, dropping listed names that are not the tenant's.
/// Topic ids seen on the way are recorded in `ids`, for requests that name topics by id.
pub fn strip_response(body: &mut ResponseKind, p: &Prefix, ids: &TopicIds) {
    let strip = |name: &mut StrBytes| {
        p.strip(name);
    };
    match body {
        ResponseKind::Produce(r) => r.responses.iter_mut().for_each(|t| strip(&mut t.name.0)),
        ResponseKind::Fetch(r) => r.responses.iter_mut().for_each(|t| strip(&mut t.topic.0)),
        ResponseKind::ListOffsets(r) => r.topics.iter_mut().for_each(|t| strip(&mut t.name.0)),
        ResponseKind::Metadata(r) => metadata(r, p, ids),
        ResponseKind::OffsetCommit(r) => r.topics.iter_mut().for_each(|t| strip(&mut t.name.0)),
        ResponseKind::OffsetFetch(r) => offset_fetch(r, p),
        ResponseKind::FindCoordinator(r) => r.coordinators.iter_mut().for_each(|c| strip(&mut c.key)),
        ResponseKind::DescribeGroups(r) => r.groups.iter_mut().for_each(|g| strip(&mut g.group_id.0)),
        ResponseKind::ListGroups(r) => r.groups.retain_mut(|g| p.strip(&mut g.group_id.0)),
        ResponseKind::DeleteGroups(r) => r.results.iter_mut().for_each(|g| strip(&mut g.group_id.0)),
        ResponseKind::ConsumerGroupDescribe(r) => consumer_group_describe(r, p),
        ResponseKind::OffsetDelete(r) => r.topics.iter_mut().for_each(|t| strip(&mut t.name.0)),
        ResponseKind::CreateTopics(r) => create_topics(r, p, ids),
        ResponseKind::DeleteTopics(r) => {
            r.responses.iter_mut().filter_map(|t| t.name.as_mut()).for_each(|t| strip(&mut t.0))
        }
        ResponseKind::CreatePartitions(r) => r.results.iter_mut().for_each(|t| strip(&mut t.name.0)),
        ResponseKind::DescribeConfigs(r) => describe_configs(r, p),
        ResponseKind::AlterConfigs(r) => {
            r.responses.iter_mut().for_each(|c| config_resource(c.resource_type, &mut c.resource_name, p))
        }
        ResponseKind::IncrementalAlterConfigs(r) => {
            r.responses.iter_mut().for_each(|c| config_resource(c.resource_type, &mut c.resource_name, p))
        }
        ResponseKind::DeleteRecords(r) => r.topics.iter_mut().for_each(|t| strip(&mut t.name.0)),
        ResponseKind::OffsetForLeaderEpoch(r) => r.topics.iter_mut().for_each(|t| strip(&mut t.topic.0)),
        ResponseKind::DescribeProducers(r) => r.topics.iter_mut().for_each(|t| strip(&mut t.name.0)),
        ResponseKind::DescribeTopicPartitions(r) => describe_topic_partitions(r, p, ids),
        ResponseKind::TxnOffsetCommit(r) => r.topics.iter_mut().for_each(|t| strip(&mut t.name.0)),
        ResponseKind::AddPartitionsToTxn(r) => add_partitions_to_txn(r, p),
        ResponseKind::DescribeTransactions(r) => describe_transactions(r, p),
        ResponseKind::ListTransactions(r) => r.transaction_states.retain_mut(|t| p.strip(&mut t.transactional_id.0)),
        _ => {}
    }
}

fn metadata(r: &mut MetadataResponse, p: &Prefix, ids: &TopicIds) {
    for topic in &r.topics {
        if let Some(name) = &topic.name {
            ids.learn(topic.topic_id, name.0.as_str());
        }
    }
    // Asked for all topics (or by id), the backend lists everyone's: keep the tenant's only.
    r.topics.retain_mut(|t| t.name.as_mut().is_some_and(|name| p.strip(&mut name.0)));
}

fn offset_fetch(r: &mut OffsetFetchResponse, p: &Prefix) {
    r.topics.iter_mut().for_each(|t| {
        p.strip(&mut t.name.0);
    });
    for group in &mut r.groups {
        p.strip(&mut group.group_id.0);
        group.topics.iter_mut().for_each(|t| {
            p.strip(&mut t.name.0);
        });
    }
}

fn consumer_group_describe(r: &mut ConsumerGroupDescribeResponse, p: &Prefix) {
    for group in &mut r.groups {
        p.strip(&mut group.group_id.0);
        for member in &mut group.members {
            member.subscribed_topic_names.iter_mut().for_each(|t| {
                p.strip(&mut t.0);
            });
            let assigned = member.assignment.topic_partitions.iter_mut();
            assigned.chain(member.target_assignment.topic_partitions.iter_mut()).for_each(|t| {
                p.strip(&mut t.topic_name.0);
            });
        }
    }
}

fn create_topics(r: &mut CreateTopicsResponse, p: &Prefix, ids: &TopicIds) {
    for topic in &mut r.topics {
        ids.learn(topic.topic_id, topic.name.0.as_str());
        let backend = topic.name.0.to_string();
        if p.strip(&mut topic.name.0) {
            // "Topic 'teamAusers' already exists." names the backend topic: say it as the tenant does.
            if let Some(message) = &mut topic.error_message {
                let text = message.as_str().replace(&backend, topic.name.0.as_str());
                *message = StrBytes::from_string(text);
            }
        }
    }
}

fn config_resource(resource_type: i8, name: &mut StrBytes, p: &Prefix) {
    if matches!(resource_type, RESOURCE_TOPIC | RESOURCE_GROUP) {
        p.strip(name);
    }
}

fn describe_configs(r: &mut DescribeConfigsResponse, p: &Prefix) {
    r.results.iter_mut().for_each(|c| config_resource(c.resource_type, &mut c.resource_name, p));
}

fn describe_topic_partitions(r: &mut DescribeTopicPartitionsResponse, p: &Prefix, ids: &TopicIds) {
    for topic in &r.topics {
        if let Some(name) = &topic.name {
            ids.learn(topic.topic_id, name.0.as_str());
        }
    }
    r.topics.retain_mut(|t| t.name.as_mut().is_some_and(|name| p.strip(&mut name.0)));
    if let Some(cursor) = &mut r.next_cursor {
        // The next page starts at another tenant's topic: the tenant's listing is complete.
        if !p.strip(&mut cursor.topic_name.0) {
            r.next_cursor = None;
        }
    }
}

fn add_partitions_to_txn(r: &mut AddPartitionsToTxnResponse, p: &Prefix) {
    r.results_by_topic_v3_and_below.iter_mut().for_each(|t| {
        p.strip(&mut t.name.0);
    });
    for txn in &mut r.results_by_transaction {
        p.strip(&mut txn.transactional_id.0);
        txn.topic_results.iter_mut().for_each(|t| {
            p.strip(&mut t.name.0);
        });
    }
}

fn describe_transactions(r: &mut DescribeTransactionsResponse, p: &Prefix) {
    for state in &mut r.transaction_states {
        p.strip(&mut state.transactional_id.0);
        state.topics.iter_mut().for_each(|t| {
            p.strip(&mut t.topic.0);
        });
    }
}
