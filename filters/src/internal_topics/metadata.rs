//! Metadata, the one api split rather than refused whole: clients ask for many topics at once, and a listing of
//! all topics must simply not show the internal ones. DescribeTopicPartitions lists all topics too (an empty
//! topic list, paged by a cursor): its listings lose the internal ones the same way.

use std::collections::HashSet;
use std::sync::Arc;

use franzgate_api::kafka_protocol::messages::metadata_response::MetadataResponseTopic;
use franzgate_api::kafka_protocol::messages::{DescribeTopicPartitionsRequest, RequestKind, ResponseKind, TopicName};
use franzgate_api::kafka_protocol::protocol::StrBytes;
use franzgate_api::rewrite::Rewrite;
use franzgate_api::{FilterError, KafkaRequest, KafkaResponse};
use uuid::Uuid;

use super::{Shared, TOPIC_AUTHORIZATION_FAILED};

/// The Metadata response rewrite: internal topics are dropped from listings, answered with error 29 where the
/// client asked for them, and their ids learnt.
#[derive(Debug)]
pub(super) struct HideInternal {
    /// The internal topics and their ids.
    shared: Arc<Shared>,
    /// Internal names taken out of the request, answered with error 29.
    refused: Vec<String>,
    /// Topic ids the request asked for without a name (v10+): an internal one among them gets error 29.
    asked_ids: Vec<Uuid>,
}

/// The ids a Metadata request asks for by id only.
pub(super) fn asked_ids(request: &mut KafkaRequest) -> Vec<Uuid> {
    match request.body() {
        Ok(RequestKind::Metadata(r)) => {
            let topics = r.topics.iter().flatten();
            topics.filter(|t| t.name.is_none() && !t.topic_id.is_nil()).map(|t| t.topic_id).collect()
        }
        _ => Vec::new(),
    }
}

/// Takes the internal names out of a Metadata request; false when nothing else was asked for (the request is
/// then left as it was, to be refused whole).
pub(super) fn split_metadata(request: &mut KafkaRequest, internal: &HashSet<String>) -> Result<bool, FilterError> {
    let is_internal = |name: &Option<TopicName>| name.as_ref().is_some_and(|n| internal.contains(n.0.as_str()));
    let others = match request.body()? {
        RequestKind::Metadata(r) => r.topics.iter().flatten().filter(|t| !is_internal(&t.name)).count(),
        _ => 0,
    };
    // An empty list would ask for no topics at v1+, and for all of them at v0.
    if others == 0 {
        return Ok(false);
    }
    if let RequestKind::Metadata(r) = request.body_mut()? {
        r.topics.iter_mut().for_each(|topics| topics.retain(|t| !is_internal(&t.name)));
    }
    Ok(true)
}

// === impl HideInternal ===

impl HideInternal {
    pub(super) fn new(shared: Arc<Shared>, refused: Vec<String>, asked_ids: Vec<Uuid>) -> Self {
        Self { shared, refused, asked_ids }
    }

    fn is_internal(&self, topic: &MetadataResponseTopic) -> bool {
        topic.name.as_ref().is_some_and(|n| self.shared.topics.contains(n.0.as_str()))
    }
}

/// A topic entry refusing `name` (or the id asked for), as a broker's authorizer answers.
fn refusal(name: Option<TopicName>, topic_id: Uuid) -> MetadataResponseTopic {
    MetadataResponseTopic::default()
        .with_error_code(TOPIC_AUTHORIZATION_FAILED)
        .with_name(name)
        .with_topic_id(topic_id)
        .with_is_internal(false)
        .with_partitions(Vec::new())
}

impl Rewrite for HideInternal {
    fn rewrite(self, response: &mut KafkaResponse) -> Result<(), FilterError> {
        let listed = match response.body()? {
            ResponseKind::Metadata(r) => r.topics.iter().any(|t| self.is_internal(t)),
            _ => return Ok(()),
        };
        // Untouched unless there is something to hide or to add: the backend's bytes go out as they came.
        if !listed && self.refused.is_empty() {
            return Ok(());
        }
        let ResponseKind::Metadata(r) = response.body_mut()? else { return Ok(()) };
        let mut refused_ids = Vec::new();
        r.topics.retain(|t| {
            if !self.is_internal(t) {
                return true;
            }
            self.shared.ids.learn(t.topic_id);
            if self.asked_ids.contains(&t.topic_id) {
                refused_ids.push(t.topic_id);
            }
            false
        });
        // Asked by id: refused without the name, which the client did not know.
        r.topics.extend(refused_ids.into_iter().map(|id| refusal(None, id)));
        let names = self.refused.into_iter().map(|n| Some(TopicName(StrBytes::from_string(n))));
        r.topics.extend(names.map(|name| refusal(name, Uuid::nil())));
        Ok(())
    }
}

/// The DescribeTopicPartitions response rewrite: internal topics are dropped from the listing, their ids learnt.
#[derive(Debug)]
pub(super) struct HideListed {
    /// The internal topics and their ids.
    shared: Arc<Shared>,
}

/// The internal topics a DescribeTopicPartitions request names in its topic list. Its cursor is only where a
/// page starts, not a topic asked for: a page starting at an internal topic is answered without it.
pub(super) fn described_internal(r: &DescribeTopicPartitionsRequest, internal: &HashSet<String>) -> Vec<String> {
    let names = r.topics.iter().map(|t| t.name.0.as_str());
    names.filter(|name| internal.contains(*name)).map(String::from).collect()
}

// === impl HideListed ===

impl HideListed {
    pub(super) fn new(shared: Arc<Shared>) -> Self {
        Self { shared }
    }
}

impl Rewrite for HideListed {
    fn rewrite(self, response: &mut KafkaResponse) -> Result<(), FilterError> {
        let internal =
            |name: &Option<TopicName>| name.as_ref().is_some_and(|n| self.shared.topics.contains(n.0.as_str()));
        let listed = match response.body()? {
            ResponseKind::DescribeTopicPartitions(r) => r.topics.iter().any(|t| internal(&t.name)),
            _ => false,
        };
        if !listed {
            return Ok(());
        }
        if let ResponseKind::DescribeTopicPartitions(r) = response.body_mut()? {
            r.topics.retain(|t| {
                let hide = internal(&t.name);
                if hide {
                    self.shared.ids.learn(t.topic_id);
                }
                !hide
            });
        }
        Ok(())
    }
}
