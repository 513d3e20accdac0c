//! Adding and removing a tenant's prefix on the three kinds of tenant names: topics, group ids, transactional
//! ids.

use franzgate_api::kafka_protocol::messages::{GroupId, TopicName, TransactionalId};
use franzgate_api::kafka_protocol::protocol::StrBytes;
use franzgate_api::vcluster::MAX_TOPIC_NAME_LEN;
use std::collections::HashMap;
use std::sync::RwLock;
use uuid::Uuid;

/// Why a tenant's request is refused rather than forwarded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// A topic name that exceeds Kafka's limit once prefixed (INVALID_TOPIC_EXCEPTION).
    TopicTooLong {
        /// The name the tenant sent.
        name: String,
        /// Its length with the prefix.
        prefixed_len: usize,
    },
    /// An api (or a resource type within one) tenants may not use (CLUSTER_AUTHORIZATION_FAILED).
    NotAllowed,
    /// A topic id that is not one of the tenant's topics, or not known yet (UNKNOWN_TOPIC_ID: the client
    /// refreshes its metadata, which teaches the gateway its ids, and retries).
    UnknownTopicId,
}

/// Backend topic names by topic id, learnt from the metadata tenants receive: requests that name topics by id
/// (Fetch v13+, Produce v13, DeleteTopics v6+) may only name the tenant's own.
#[derive(Debug, Default)]
pub struct TopicIds(RwLock<HashMap<Uuid, String>>);

impl TopicIds {
    /// Records that `id` is backend topic `name`.
    pub fn learn(&self, id: Uuid, name: &str) {
        if id.is_nil() {
            return;
        }
        let known = self.0.read().map(|ids| ids.get(&id).is_some_and(|n| n == name)).unwrap_or(false);
        if !known && let Ok(mut ids) = self.0.write() {
            ids.insert(id, name.to_string());
        }
    }

    /// Whether `id` is a known topic of the tenant with prefix `p`.
    pub fn owned(&self, id: &Uuid, p: &Prefix) -> bool {
        self.0.read().map(|ids| ids.get(id).is_some_and(|name| p.owns(name))).unwrap_or(false)
    }
}

/// What the request enumeration in `requests` does with each name it finds: [`Prefix`] prefixes tenant names;
/// the internal-topics filter only looks for the gateway's own topics. Methods take `&self` so a visitor that
/// collects what it saw uses interior mutability.
pub trait NameVisitor {
    /// A topic name held as a plain string (config resources).
    fn topic_str(&self, name: &mut StrBytes) -> Result<(), Refusal>;
    /// A topic name.
    fn topic(&self, name: &mut TopicName) -> Result<(), Refusal> {
        self.topic_str(&mut name.0)
    }
    /// A consumer group id.
    fn group(&self, id: &mut GroupId) -> Result<(), Refusal>;
    /// A transactional id.
    fn transaction(&self, id: &mut TransactionalId) -> Result<(), Refusal>;
    /// Any other name (coordinator keys, group config resources).
    fn add(&self, name: &mut StrBytes);
    /// A topic named by id only: whether the request may name it.
    fn topic_id(&self, id: &Uuid, ids: &TopicIds) -> bool;
    /// A cluster-wide part of a request (a broker config change, a server-side regex, ...).
    fn cluster_wide(&self) -> Result<(), Refusal>;
}

/// One tenant's prefix.
#[derive(Debug, Clone)]
pub struct Prefix {
    /// What every backend name of the tenant starts with.
    prefix: String,
}

// === impl Prefix ===

impl Prefix {
    /// The prefix `prefix`.
    pub fn new(prefix: &str) -> Self {
        Self { prefix: prefix.to_string() }
    }

    /// The prefix itself.
    pub fn as_str(&self) -> &str {
        &self.prefix
    }

    /// Prefixes any name.
    pub fn add(&self, name: &mut StrBytes) {
        *name = StrBytes::from_string(format!("{}{}", self.prefix, name.as_str()));
    }

    /// Prefixes a topic name held as a plain string (config resources), refusing one that would become too
    /// long for Kafka.
    pub fn topic_str(&self, name: &mut StrBytes) -> Result<(), Refusal> {
        let prefixed_len = self.prefix.len() + name.len();
        if prefixed_len > MAX_TOPIC_NAME_LEN {
            return Err(Refusal::TopicTooLong { name: name.to_string(), prefixed_len });
        }
        self.add(name);
        Ok(())
    }

    /// Prefixes a topic name.
    pub fn topic(&self, name: &mut TopicName) -> Result<(), Refusal> {
        self.topic_str(&mut name.0)
    }

    /// Prefixes a consumer group id.
    pub fn group(&self, id: &mut GroupId) -> Result<(), Refusal> {
        self.add(&mut id.0);
        Ok(())
    }

    /// Prefixes a transactional id.
    pub fn transaction(&self, id: &mut TransactionalId) -> Result<(), Refusal> {
        self.add(&mut id.0);
        Ok(())
    }

    /// Removes the prefix; false (and the name untouched) if the name does not carry it, i.e. it is not the
    /// tenant's.
    pub fn strip(&self, name: &mut StrBytes) -> bool {
        match name.as_str().strip_prefix(self.prefix.as_str()) {
            Some(rest) => {
                *name = StrBytes::from_string(rest.to_string());
                true
            }
            None => false,
        }
    }

    /// Whether a backend name is the tenant's.
    pub fn owns(&self, name: &str) -> bool {
        name.starts_with(self.prefix.as_str())
    }
}

impl NameVisitor for Prefix {
    fn topic_str(&self, name: &mut StrBytes) -> Result<(), Refusal> {
        Prefix::topic_str(self, name)
    }

    fn group(&self, id: &mut GroupId) -> Result<(), Refusal> {
        Prefix::group(self, id)
    }

    fn transaction(&self, id: &mut TransactionalId) -> Result<(), Refusal> {
        Prefix::transaction(self, id)
    }

    fn add(&self, name: &mut StrBytes) {
        Prefix::add(self, name)
    }

    fn topic_id(&self, id: &Uuid, ids: &TopicIds) -> bool {
        ids.owned(id, self)
    }

    fn cluster_wide(&self) -> Result<(), Refusal> {
        Err(Refusal::NotAllowed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_get_the_prefix_and_lose_it() {
        let p = Prefix::new("teamA.");
        let mut topic = TopicName(StrBytes::from_static_str("users"));
        p.topic(&mut topic).expect("fits");
        assert_eq!(topic.0.as_str(), "teamA.users");
        assert!(p.strip(&mut topic.0));
        assert_eq!(topic.0.as_str(), "users");
        let mut other = StrBytes::from_static_str("teamBusers");
        assert!(!p.strip(&mut other));
        assert_eq!(other.as_str(), "teamBusers");
    }

    #[test]
    fn a_topic_too_long_once_prefixed_is_refused() {
        let p = Prefix::new("teamA");
        let mut fits = TopicName(StrBytes::from_string("x".repeat(MAX_TOPIC_NAME_LEN - 5)));
        assert!(p.topic(&mut fits).is_ok());
        let mut too_long = TopicName(StrBytes::from_string("x".repeat(MAX_TOPIC_NAME_LEN - 4)));
        assert_eq!(
            p.topic(&mut too_long),
            Err(Refusal::TopicTooLong { name: "x".repeat(MAX_TOPIC_NAME_LEN - 4), prefixed_len: 250 })
        );
    }
}
