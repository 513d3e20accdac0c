//! The shared table of virtual topic ids: one per topic name, and each cluster's own id for it.

use std::collections::{HashMap, HashSet};
use std::sync::{PoisonError, RwLock};

use uuid::Uuid;

/// Which id a client sees for each topic name, and which id each cluster gave it. Shared by every session.
#[derive(Debug, Default)]
pub struct TopicIdTable {
    inner: RwLock<Table>,
}

#[derive(Debug, Default)]
struct Table {
    /// Per topic name: the id clients see and each cluster's own.
    topics: HashMap<String, Topic>,
    /// Virtual id -> topic name.
    names: HashMap<Uuid, String>,
    /// (cluster, that cluster's id) -> virtual id, for every id learned.
    virtual_of: HashMap<(String, Uuid), Uuid>,
    /// Clusters that gave some topic an id other than its virtual one: their sessions' ids are translated.
    translating: HashSet<String>,
    /// How many of the known topic names each cluster's id is known for.
    known: HashMap<String, usize>,
}

#[derive(Debug)]
struct Topic {
    /// The id clients see: the id of the cluster that first showed the name to the gateway.
    virtual_id: Uuid,
    /// That cluster: when it re-creates the topic (a new id there), clients see the new id too.
    origin: String,
    /// Each cluster's own id for the name.
    real: HashMap<String, Uuid>,
}

/// What a cluster calls the topic a client names by a virtual id.
#[derive(Debug, PartialEq, Eq)]
pub enum RealId {
    /// The cluster's own id.
    Known(Uuid),
    /// The topic's name is known, its id on this cluster not yet: a Metadata request by name finds it.
    Unresolved(String),
    /// Not a virtual id this gateway handed out: forwarded as it is (the broker answers UNKNOWN_TOPIC_ID if
    /// it is no id of its own either).
    Unknown,
}

impl TopicIdTable {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, Table> {
        self.inner.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Table> {
        self.inner.write().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether the ids of sessions on `cluster` must be looked at: some topic's id there is not the one clients
    /// see, or is not known yet (a client may name that topic by the id another cluster gave it). False for the
    /// cluster the gateway met first as long as every topic known was seen there too: its sessions pay nothing.
    pub fn needs_translation(&self, cluster: &str) -> bool {
        let table = self.read();
        table.translating.contains(cluster) || table.known.get(cluster).copied().unwrap_or(0) < table.topics.len()
    }

    /// Records that `cluster` calls topic `name` by `real`; returns the id clients see for it. A nil id (a topic
    /// that does not exist) is returned as it is and not recorded.
    pub fn learn(&self, cluster: &str, name: &str, real: Uuid) -> Uuid {
        if real.is_nil() {
            return real;
        }
        if let Some(topic) = self.read().topics.get(name)
            && topic.real.get(cluster) == Some(&real)
        {
            return topic.virtual_id;
        }
        self.write().learn(cluster, name, real)
    }

    /// The id `cluster` gives the topic clients know as `virtual_id`.
    pub fn real_id(&self, cluster: &str, virtual_id: Uuid) -> RealId {
        let table = self.read();
        let Some(name) = table.names.get(&virtual_id) else { return RealId::Unknown };
        match table.topics.get(name).and_then(|topic| topic.real.get(cluster)) {
            Some(real) => RealId::Known(*real),
            None => RealId::Unresolved(name.clone()),
        }
    }

    /// The id clients see for the topic `cluster` calls `real`, if that id was learned.
    pub fn virtual_id(&self, cluster: &str, real: Uuid) -> Option<Uuid> {
        self.read().virtual_of.get(&(cluster.to_owned(), real)).copied()
    }
}

impl Table {
    fn learn(&mut self, cluster: &str, name: &str, real: Uuid) -> Uuid {
        let Some(topic) = self.topics.get_mut(name) else {
            let real_ids = HashMap::from([(cluster.to_owned(), real)]);
            self.topics.insert(name.to_owned(), Topic { virtual_id: real, origin: cluster.to_owned(), real: real_ids });
            self.names.insert(real, name.to_owned());
            self.virtual_of.insert((cluster.to_owned(), real), real);
            *self.known.entry(cluster.to_owned()).or_default() += 1;
            return real;
        };
        if topic.origin == cluster {
            // Re-created where it was first seen: clients see the new id (as they would without a gateway),
            // and every other cluster's id is mapped to it again when next seen.
            let old = std::mem::replace(&mut topic.virtual_id, real);
            self.names.remove(&old);
            self.virtual_of.retain(|_, v| *v != old);
            for other in topic.real.drain().map(|(other, _)| other) {
                self.known.entry(other).and_modify(|n| *n = n.saturating_sub(1));
            }
        } else if let Some(old) = topic.real.get(cluster) {
            self.virtual_of.remove(&(cluster.to_owned(), *old));
        }
        if topic.real.insert(cluster.to_owned(), real).is_none() {
            *self.known.entry(cluster.to_owned()).or_default() += 1;
        }
        let virtual_id = topic.virtual_id;
        self.names.insert(virtual_id, name.to_owned());
        self.virtual_of.insert((cluster.to_owned(), real), virtual_id);
        if real != virtual_id {
            self.translating.insert(cluster.to_owned());
        }
        virtual_id
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u128) -> Uuid {
        Uuid::from_u128(n)
    }

    #[test]
    fn the_first_cluster_to_show_a_name_gives_its_id_and_another_cluster_is_mapped_to_it() {
        let table = TopicIdTable::default();
        assert_eq!(table.learn("main", "orders", id(1)), id(1));
        assert!(!table.needs_translation("main"));
        assert!(table.needs_translation("failover"), "a client may name `orders` by main's id there");
        assert_eq!(table.learn("failover", "orders", id(2)), id(1), "the failover's copy keeps main's id");
        assert!(table.needs_translation("failover"));
        assert!(!table.needs_translation("main"));
        assert_eq!(table.real_id("failover", id(1)), RealId::Known(id(2)));
        assert_eq!(table.real_id("main", id(1)), RealId::Known(id(1)));
        assert_eq!(table.virtual_id("failover", id(2)), Some(id(1)));
        assert_eq!(table.real_id("failover", id(9)), RealId::Unknown);
    }

    #[test]
    fn a_name_known_from_one_cluster_is_unresolved_on_another_until_learned_there() {
        let table = TopicIdTable::default();
        table.learn("main", "orders", id(1));
        assert_eq!(table.real_id("failover", id(1)), RealId::Unresolved("orders".into()));
        assert_eq!(table.virtual_id("failover", id(2)), None);
    }

    #[test]
    fn a_topic_recreated_where_it_was_first_seen_gets_the_new_id_and_the_old_one_is_forgotten() {
        let table = TopicIdTable::default();
        table.learn("main", "orders", id(1));
        table.learn("failover", "orders", id(2));
        assert_eq!(table.learn("main", "orders", id(3)), id(3));
        assert!(!table.needs_translation("main"));
        assert_eq!(table.real_id("failover", id(1)), RealId::Unknown, "the old id names no topic any more");
        assert_eq!(table.real_id("failover", id(3)), RealId::Unresolved("orders".into()));
        assert_eq!(table.virtual_id("failover", id(2)), None);
        assert_eq!(table.learn("failover", "orders", id(2)), id(3));
    }

    #[test]
    fn a_topic_recreated_on_another_cluster_keeps_the_id_clients_see() {
        let table = TopicIdTable::default();
        table.learn("main", "orders", id(1));
        table.learn("failover", "orders", id(2));
        assert_eq!(table.learn("failover", "orders", id(4)), id(1));
        assert_eq!(table.real_id("failover", id(1)), RealId::Known(id(4)));
        assert_eq!(table.virtual_id("failover", id(2)), None);
    }

    #[test]
    fn a_nil_id_is_not_learned() {
        let table = TopicIdTable::default();
        assert_eq!(table.learn("main", "missing", Uuid::nil()), Uuid::nil());
        assert_eq!(table.learn("failover", "missing", id(2)), id(2), "the first real id becomes the virtual one");
        assert!(!table.needs_translation("failover"));
        assert!(table.needs_translation("main"), "main's id for `missing` is not known");
    }
}
