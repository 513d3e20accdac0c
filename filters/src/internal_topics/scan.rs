//! Finding internal topics in a request, with the topic-prefix filter's walk over every request kind.

use std::cell::RefCell;
use std::collections::HashSet;

use franzgate_api::kafka_protocol::messages::{GroupId, RequestKind, TransactionalId};
use franzgate_api::kafka_protocol::protocol::StrBytes;
use uuid::Uuid;

use super::KnownIds;
use crate::topic_prefix::{NameVisitor, Refusal, TopicIds, prefix_request};

/// Collects the internal topics a request names; changes nothing.
struct InternalNames<'a> {
    /// Backend names of the internal topics.
    topics: &'a HashSet<String>,
    /// Their ids, as learnt.
    ids: &'a KnownIds,
    /// What the request names, each once.
    found: RefCell<Vec<String>>,
}

/// The internal topics `body` names (by name, or by an id learnt for one), each once, in request order.
///
/// The walk takes the request mutably (it is the one that prefixes tenant names), so it runs over a copy: the
/// request itself is not marked for re-encoding and is forwarded as the bytes the client sent. The copy shares record
/// bytes with the original, so it costs one allocation per topic and partition, not per byte.
pub(super) fn internal_names(
    body: &RequestKind,
    version: i16,
    topics: &HashSet<String>,
    ids: &KnownIds,
) -> Vec<String> {
    let mut copy = body.clone();
    let visitor = InternalNames { topics, ids, found: RefCell::default() };
    // The visitor refuses nothing, so the walk visits every name.
    let _ = prefix_request(&mut copy, version, &visitor, &TopicIds::default());
    visitor.found.into_inner()
}

// === impl InternalNames ===

impl InternalNames<'_> {
    fn note(&self, name: String) {
        let mut found = self.found.borrow_mut();
        if !found.contains(&name) {
            found.push(name);
        }
    }
}

impl NameVisitor for InternalNames<'_> {
    fn topic_str(&self, name: &mut StrBytes) -> Result<(), Refusal> {
        if self.topics.contains(name.as_str()) {
            self.note(name.to_string());
        }
        Ok(())
    }

    fn group(&self, _id: &mut GroupId) -> Result<(), Refusal> {
        Ok(())
    }

    fn transaction(&self, _id: &mut TransactionalId) -> Result<(), Refusal> {
        Ok(())
    }

    fn add(&self, _name: &mut StrBytes) {}

    fn topic_id(&self, id: &Uuid, _ids: &TopicIds) -> bool {
        if self.ids.contains(id) {
            self.note(format!("topic id {id}"));
        }
        true
    }

    fn cluster_wide(&self) -> Result<(), Refusal> {
        Ok(())
    }
}
