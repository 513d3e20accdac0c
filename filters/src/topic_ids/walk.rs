//! Where topic ids travel: which api versions carry them, and a walk over every id in a message.
//!
//! A message missing here would reach the broker (or the client) with the other cluster's id: the api list
//! follows the Kafka protocol's `topicId` fields of the client-facing apis (KIP-516, KIP-848, KIP-932).

use franzgate_api::kafka_protocol::messages::{ApiKey, RequestKind, ResponseKind};
use uuid::Uuid;

/// Whether `key` at `version` names topics by id in its request or its response.
pub fn carries_ids(key: ApiKey, version: i16) -> bool {
    use ApiKey::*;
    match key {
        Metadata => version >= 10,
        Produce | Fetch => version >= 13,
        OffsetCommit | OffsetFetch => version >= 10,
        CreateTopics => version >= 7,
        DeleteTopics => version >= 6,
        ConsumerGroupHeartbeat
        | ConsumerGroupDescribe
        | DescribeTopicPartitions
        | ShareFetch
        | ShareAcknowledge
        | ShareGroupHeartbeat
        | ShareGroupDescribe => true,
        _ => false,
    }
}

/// The walk over a request's topic ids, written once for shared and for mutable borrows.
macro_rules! walk_request {
    ($body:expr, $visit:ident, $iter:ident $(, $m:ident)?) => {
        match $body {
            RequestKind::Metadata(m) => m.topics.$iter().flatten().for_each(|t| $visit(&$($m)? t.topic_id)),
            RequestKind::Produce(p) => p.topic_data.$iter().for_each(|t| $visit(&$($m)? t.topic_id)),
            RequestKind::Fetch(f) => {
                f.topics.$iter().for_each(|t| $visit(&$($m)? t.topic_id));
                f.forgotten_topics_data.$iter().for_each(|t| $visit(&$($m)? t.topic_id));
            }
            RequestKind::OffsetCommit(c) => c.topics.$iter().for_each(|t| $visit(&$($m)? t.topic_id)),
            RequestKind::OffsetFetch(f) => {
                let topics = f.groups.$iter().flat_map(|g| g.topics.$iter().flatten());
                topics.for_each(|t| $visit(&$($m)? t.topic_id));
            }
            RequestKind::ConsumerGroupHeartbeat(h) => {
                h.topic_partitions.$iter().flatten().for_each(|t| $visit(&$($m)? t.topic_id))
            }
            RequestKind::DeleteTopics(d) => d.topics.$iter().for_each(|t| $visit(&$($m)? t.topic_id)),
            RequestKind::ShareFetch(f) => {
                f.topics.$iter().for_each(|t| $visit(&$($m)? t.topic_id));
                f.forgotten_topics_data.$iter().for_each(|t| $visit(&$($m)? t.topic_id));
            }
            RequestKind::ShareAcknowledge(a) => a.topics.$iter().for_each(|t| $visit(&$($m)? t.topic_id)),
            _ => {}
        }
    };
}

/// The walk over a response's topic ids, written once for shared and for mutable borrows.
macro_rules! walk_response {
    ($body:expr, $visit:ident, $iter:ident $(, $m:ident)?) => {
        match $body {
            ResponseKind::Metadata(m) => m.topics.$iter().for_each(|t| $visit(&$($m)? t.topic_id)),
            ResponseKind::Produce(p) => p.responses.$iter().for_each(|t| $visit(&$($m)? t.topic_id)),
            ResponseKind::Fetch(f) => f.responses.$iter().for_each(|t| $visit(&$($m)? t.topic_id)),
            ResponseKind::OffsetCommit(c) => c.topics.$iter().for_each(|t| $visit(&$($m)? t.topic_id)),
            ResponseKind::OffsetFetch(f) => {
                f.groups.$iter().flat_map(|g| g.topics.$iter()).for_each(|t| $visit(&$($m)? t.topic_id))
            }
            ResponseKind::ConsumerGroupHeartbeat(h) => {
                let topics = h.assignment.$iter().flat_map(|a| a.topic_partitions.$iter());
                topics.for_each(|t| $visit(&$($m)? t.topic_id));
            }
            ResponseKind::ConsumerGroupDescribe(d) => {
                for member in d.groups.$iter().flat_map(|g| g.members.$iter()) {
                    member.assignment.topic_partitions.$iter().for_each(|t| $visit(&$($m)? t.topic_id));
                    member.target_assignment.topic_partitions.$iter().for_each(|t| $visit(&$($m)? t.topic_id));
                }
            }
            ResponseKind::CreateTopics(c) => c.topics.$iter().for_each(|t| $visit(&$($m)? t.topic_id)),
            ResponseKind::DeleteTopics(d) => d.responses.$iter().for_each(|t| $visit(&$($m)? t.topic_id)),
            ResponseKind::DescribeTopicPartitions(d) => d.topics.$iter().for_each(|t| $visit(&$($m)? t.topic_id)),
            ResponseKind::ShareFetch(f) => f.responses.$iter().for_each(|t| $visit(&$($m)? t.topic_id)),
            ResponseKind::ShareAcknowledge(a) => a.responses.$iter().for_each(|t| $visit(&$($m)? t.topic_id)),
            ResponseKind::ShareGroupHeartbeat(h) => {
                let topics = h.assignment.$iter().flat_map(|a| a.topic_partitions.$iter());
                topics.for_each(|t| $visit(&$($m)? t.topic_id));
            }
            ResponseKind::ShareGroupDescribe(d) => {
                let members = d.groups.$iter().flat_map(|g| g.members.$iter());
                members.flat_map(|m| m.assignment.topic_partitions.$iter()).for_each(|t| $visit(&$($m)? t.topic_id));
            }
            _ => {}
        }
    };
}

/// Every non-nil topic id of a request.
pub fn request_ids(body: &RequestKind) -> Vec<Uuid> {
    let mut ids = Vec::new();
    let mut visit = |id: &Uuid| {
        if !id.is_nil() {
            ids.push(*id)
        }
    };
    walk_request!(body, visit, iter);
    ids
}

/// Replaces every non-nil topic id of a request by `map`'s answer for it.
pub fn map_request_ids(body: &mut RequestKind, map: &dyn Fn(Uuid) -> Uuid) {
    let visit = |id: &mut Uuid| {
        if !id.is_nil() {
            *id = map(*id)
        }
    };
    walk_request!(body, visit, iter_mut, mut);
}

/// Every non-nil topic id of a response.
pub fn response_ids(body: &ResponseKind) -> Vec<Uuid> {
    let mut ids = Vec::new();
    let mut visit = |id: &Uuid| {
        if !id.is_nil() {
            ids.push(*id)
        }
    };
    walk_response!(body, visit, iter);
    ids
}

/// Replaces every non-nil topic id of a response by `map`'s answer for it.
pub fn map_response_ids(body: &mut ResponseKind, map: &dyn Fn(Uuid) -> Uuid) {
    let visit = |id: &mut Uuid| {
        if !id.is_nil() {
            *id = map(*id)
        }
    };
    walk_response!(body, visit, iter_mut, mut);
}

/// Whether `key`'s response states topic names with their ids, which the gateway learns ids from.
pub fn names_ids(key: ApiKey) -> bool {
    matches!(
        key,
        ApiKey::Metadata
            | ApiKey::CreateTopics
            | ApiKey::DescribeTopicPartitions
            | ApiKey::ConsumerGroupDescribe
            | ApiKey::ShareGroupDescribe
    )
}

/// The (name, id) pairs a response states: what the gateway learns each cluster's ids from.
pub fn named_ids(body: &ResponseKind) -> Vec<(&str, Uuid)> {
    fn named(name: Option<&str>, id: Uuid) -> Option<(&str, Uuid)> {
        name.filter(|n| !n.is_empty() && !id.is_nil()).map(|n| (n, id))
    }
    match body {
        ResponseKind::Metadata(m) => {
            m.topics.iter().filter_map(|t| named(t.name.as_ref().map(|n| n.0.as_str()), t.topic_id)).collect()
        }
        ResponseKind::CreateTopics(c) => c.topics.iter().filter_map(|t| named(Some(&t.name.0), t.topic_id)).collect(),
        ResponseKind::DescribeTopicPartitions(d) => {
            d.topics.iter().filter_map(|t| named(t.name.as_ref().map(|n| n.0.as_str()), t.topic_id)).collect()
        }
        ResponseKind::ConsumerGroupDescribe(d) => {
            let members = d.groups.iter().flat_map(|g| g.members.iter());
            let topics =
                members.flat_map(|m| m.assignment.topic_partitions.iter().chain(&m.target_assignment.topic_partitions));
            topics.filter_map(|t| named(Some(&t.topic_name.0), t.topic_id)).collect()
        }
        ResponseKind::ShareGroupDescribe(d) => {
            let members = d.groups.iter().flat_map(|g| g.members.iter());
            let topics = members.flat_map(|m| m.assignment.topic_partitions.iter());
            topics.filter_map(|t| named(Some(&t.topic_name.0), t.topic_id)).collect()
        }
        _ => Vec::new(),
    }
}
