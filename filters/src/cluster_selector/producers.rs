//! Idempotent producers across a switch: which producer id a batch is written under on each cluster.
//!
//! A producer id, its epoch and the sequence numbers of its batches are state of the cluster that handed out
//! the id (InitProducerId). After a switch the client keeps them: the Java client never asks for a new id on
//! its own (it bumps the epoch locally, KIP-360), librdkafka neither. On the new cluster that id is either
//! unknown, or, worse, the id of another producer there (ids are handed out from 0 on every cluster, and
//! MirrorMaker's own producers write into the mirrored partitions), which ends in OUT_OF_ORDER_SEQUENCE_NUMBER,
//! fatal errors, or batches taken for duplicates and silently dropped. Back on the first cluster, the id's
//! sequence numbers have moved on while the cluster still remembers the old ones: out of order again.
//!
//! So once a producer writes to a cluster other than the one its id came from, the gateway writes its batches
//! there under a **stand-in**: an id of the gateway's own, obtained from that cluster with InitProducerId, one
//! per producer, cluster and client epoch. A fresh id has no state on the cluster, so its first batch is taken
//! at whatever sequence the client has reached (Apache Kafka accepts any first sequence from a producer it has
//! no state for), and from then on the cluster deduplicates the client's retries as it would the client's own
//! id. Every later move to another cluster (back to the first one too) gets a new stand-in there; a client epoch
//! bump (the Java client's answer to a sequence error) gets a new one as well.
//!
//! Producers that never crossed a switch are forwarded untouched. The gateway learns where each id came from by
//! watching InitProducerId answers; when a cluster hands a client an id that a live producer of another cluster
//! already uses through the gateway, the client gets a **renamed** id instead (from a range no broker hands
//! out), written back to the real one on that cluster. Transactional producers are not placed here (see the
//! README: their state belongs to a transaction coordinator).
//!
//! The registry lives in memory: after a gateway restart, producers initialised before it are forwarded as
//! they are (the behaviour without this module).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

use super::lock;
use std::time::{Duration, Instant};

use super::record_batches::BatchProducer;

/// How long a producer id the gateway has not seen stays known: Kafka's own `producer.id.expiration.ms`
/// default (a day) times seven, so a producer idle over a weekend is still recognised.
pub(super) const IDLE_EXPIRY: Duration = Duration::from_secs(7 * 24 * 3600);
/// At most this many producers are remembered; beyond it the longest idle tenth is forgotten.
pub(super) const MAX_PRODUCERS: usize = 200_000;
/// Renamed ids start here: brokers hand out ids from 0 in blocks of 1,000, never near 2^62.
const RENAMED_ID_BASE: i64 = 1 << 62;

/// Producer ids by the id the client uses, with where each came from.
#[derive(Debug)]
pub struct ProducerRegistry {
    producers: Mutex<HashMap<i64, Producer>>,
    /// The next renamed id.
    next_renamed: AtomicI64,
    /// The cluster every producer id so far came from, until a second one appears (then `mixed`).
    sole_origin: Mutex<Option<Arc<str>>>,
    /// Producer ids came from more than one cluster, or some were renamed: every Produce is looked at.
    mixed: AtomicBool,
}

/// One producer id as the client uses it.
#[derive(Debug)]
struct Producer {
    /// The cluster that handed the id out.
    origin: Arc<str>,
    /// The id on that cluster (differs from the client's only for a renamed id).
    native_id: i64,
    /// When the gateway last saw it.
    last_seen: Instant,
    /// The stand-in in use, once the producer has written to a cluster other than its origin.
    stand_in: Option<Arc<StandIn>>,
}

/// The gateway's own producer id on `cluster`, standing in for a client's producer at `client_epoch`.
#[derive(Debug)]
pub struct StandIn {
    /// The cluster it belongs to.
    pub cluster: Arc<str>,
    /// The client's epoch it stands in for.
    pub client_epoch: i16,
    /// Id and epoch, once obtained; concurrent first batches (one per broker connection) wait for one answer.
    pub target: tokio::sync::OnceCell<(i64, i16)>,
}

/// How a batch of one producer is written to the session's cluster.
#[derive(Debug)]
pub enum Placement {
    /// As the client wrote it.
    AsIs,
    /// Under this id and epoch (a renamed id on its own cluster).
    As(i64, i16),
    /// Under the stand-in's id and epoch, obtained once.
    StandIn(Arc<StandIn>),
}

impl Default for ProducerRegistry {
    fn default() -> Self {
        Self {
            producers: Mutex::default(),
            next_renamed: AtomicI64::new(RENAMED_ID_BASE),
            sole_origin: Mutex::default(),
            mixed: AtomicBool::new(false),
        }
    }
}

impl ProducerRegistry {
    /// Whether a Produce on `cluster` may hold a batch to place: false while every known id came from
    /// `cluster` itself, none was renamed and no producer crossed to another cluster (all producers before the
    /// first switch), so those requests are not even decoded.
    pub fn may_place(&self, cluster: &str) -> bool {
        if self.mixed.load(Ordering::Relaxed) {
            return true;
        }
        lock(&self.sole_origin).as_deref().is_some_and(|origin| origin != cluster)
    }

    /// Records the id `cluster` handed a client (an InitProducerId answer without transactional id) and returns
    /// the id the client must be given: the same, unless a live producer of another cluster already uses it
    /// through the gateway, in which case a renamed id.
    pub fn allocated(&self, cluster: &str, id: i64, now: Instant) -> i64 {
        let origin: Arc<str> = Arc::from(cluster);
        self.note_origin(cluster);
        let mut producers = lock(&self.producers);
        if producers.len() >= MAX_PRODUCERS {
            forget_longest_idle(&mut producers, now, |p| p.last_seen);
        }
        let taken = producers.get(&id).is_some_and(|p| *p.origin != *cluster && !idle(p, now));
        let given = if taken {
            self.mixed.store(true, Ordering::Relaxed);
            self.next_renamed.fetch_add(1, Ordering::Relaxed)
        } else {
            id
        };
        // Also a re-initialised producer on its own cluster: its state there is fresh, no stand-in needed.
        producers.insert(given, Producer { origin, native_id: id, last_seen: now, stand_in: None });
        given
    }

    /// How batches of `producer` are written to `cluster`.
    pub fn placement(&self, producer: BatchProducer, cluster: &str, now: Instant) -> Placement {
        if producer.id < 0 || producer.transactional {
            return Placement::AsIs;
        }
        let mut producers = lock(&self.producers);
        let Some(known) = producers.get_mut(&producer.id) else { return Placement::AsIs };
        known.last_seen = now;
        if known.stand_in.is_none() && *known.origin == *cluster {
            return match known.native_id == producer.id {
                true => Placement::AsIs,
                false => Placement::As(known.native_id, producer.epoch),
            };
        }
        match &known.stand_in {
            Some(stand_in) if *stand_in.cluster == *cluster && stand_in.client_epoch == producer.epoch => {
                Placement::StandIn(stand_in.clone())
            }
            _ => {
                let stand_in = Arc::new(StandIn {
                    cluster: Arc::from(cluster),
                    client_epoch: producer.epoch,
                    target: tokio::sync::OnceCell::new(),
                });
                known.stand_in = Some(stand_in.clone());
                // A producer that crossed is looked at on every cluster from now on, the one its id came from
                // included (its state there went stale while it wrote elsewhere).
                self.mixed.store(true, Ordering::Relaxed);
                Placement::StandIn(stand_in)
            }
        }
    }

    /// Notes that `cluster` handed out a producer id (to an idempotent or a transactional producer): once two
    /// clusters have, every Produce is looked at.
    pub fn note_origin(&self, cluster: &str) {
        if self.mixed.load(Ordering::Relaxed) {
            return;
        }
        let mut sole = lock(&self.sole_origin);
        match sole.as_deref() {
            None => *sole = Some(Arc::from(cluster)),
            Some(sole) if sole != cluster => self.mixed.store(true, Ordering::Relaxed),
            Some(_) => {}
        }
    }

    /// How many producer ids are remembered.
    pub fn len(&self) -> usize {
        lock(&self.producers).len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn idle(producer: &Producer, now: Instant) -> bool {
    now.saturating_duration_since(producer.last_seen) > IDLE_EXPIRY
}

/// Drops entries unseen for [`IDLE_EXPIRY`] and, if that is not enough to go below [`MAX_PRODUCERS`], the
/// longest idle tenth.
pub(super) fn forget_longest_idle<K, V>(map: &mut HashMap<K, V>, now: Instant, seen: impl Fn(&V) -> Instant)
where
    K: Eq + std::hash::Hash,
{
    map.retain(|_, v| now.saturating_duration_since(seen(v)) <= IDLE_EXPIRY);
    if map.len() < MAX_PRODUCERS {
        return;
    }
    let mut times: Vec<Instant> = map.values().map(&seen).collect();
    let tenth = times.len() / 10;
    let (_, cutoff, _) = times.select_nth_unstable(tenth);
    let cutoff = *cutoff;
    map.retain(|_, v| seen(v) > cutoff);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn idempotent(id: i64, epoch: i16) -> BatchProducer {
        BatchProducer { id, epoch, transactional: false }
    }

    fn stand_in(placement: Placement) -> Arc<StandIn> {
        match placement {
            Placement::StandIn(stand_in) => stand_in,
            other => panic!("expected a stand-in, got {other:?}"),
        }
    }

    #[test]
    fn a_producer_on_the_cluster_its_id_came_from_is_left_alone_until_it_crosses() {
        let registry = ProducerRegistry::default();
        let now = Instant::now();
        assert!(!registry.may_place("main"), "nothing known: nothing to look at");
        assert_eq!(registry.allocated("main", 7, now), 7);
        assert!(!registry.may_place("main"), "every id came from main");
        assert!(matches!(registry.placement(idempotent(7, 0), "main", now), Placement::AsIs));
        assert!(matches!(registry.placement(idempotent(8, 0), "failover", now), Placement::AsIs), "unknown id");

        assert!(registry.may_place("failover"));
        let first = stand_in(registry.placement(idempotent(7, 0), "failover", now));
        let again = stand_in(registry.placement(idempotent(7, 0), "failover", now));
        assert!(Arc::ptr_eq(&first, &again), "one stand-in per producer, cluster and epoch");

        // Back on main: main's state of id 7 is stale (its sequences moved on), so a stand-in there too; main's
        // Produce requests must be looked at again although every id came from main.
        assert!(registry.may_place("main"), "a producer crossed: main's requests are looked at too");
        let back = stand_in(registry.placement(idempotent(7, 0), "main", now));
        assert_eq!(&*back.cluster, "main");
        // A client epoch bump (the Java client's answer to a sequence error) starts another one.
        let bumped = stand_in(registry.placement(idempotent(7, 1), "main", now));
        assert!(!Arc::ptr_eq(&back, &bumped));
        assert_eq!(bumped.client_epoch, 1);
    }

    #[test]
    fn transactional_and_non_idempotent_batches_are_never_placed() {
        let registry = ProducerRegistry::default();
        let now = Instant::now();
        registry.allocated("main", 3, now);
        let transactional = BatchProducer { id: 3, epoch: 0, transactional: true };
        assert!(matches!(registry.placement(transactional, "failover", now), Placement::AsIs));
        assert!(matches!(registry.placement(idempotent(-1, -1), "failover", now), Placement::AsIs));
    }

    #[test]
    fn an_id_a_live_producer_of_another_cluster_holds_is_renamed_and_written_back_on_its_own_cluster() {
        let registry = ProducerRegistry::default();
        let now = Instant::now();
        assert_eq!(registry.allocated("main", 0, now), 0);
        let renamed = registry.allocated("failover", 0, now);
        assert!(renamed >= RENAMED_ID_BASE, "failover's id 0 must not be confused with main's");
        assert!(registry.may_place("main") && registry.may_place("failover"));
        assert!(matches!(registry.placement(idempotent(renamed, 0), "failover", now), Placement::As(0, 0)));
        // Main's producer 0, crossing to failover, gets a stand-in: not failover's producer 0.
        assert!(matches!(registry.placement(idempotent(0, 0), "failover", now), Placement::StandIn(_)));

        // An id main handed out a week and more ago to a producer not seen since is free again.
        let later = now + IDLE_EXPIRY + Duration::from_secs(1);
        assert_eq!(registry.allocated("failover", 0, later), 0);
    }

    #[test]
    fn the_registry_forgets_the_longest_idle_producers_when_full() {
        let mut producers = HashMap::new();
        let start = Instant::now();
        for id in 0..MAX_PRODUCERS as i64 {
            let last_seen = start + Duration::from_millis(id as u64);
            producers.insert(id, Producer { origin: Arc::from("main"), native_id: id, last_seen, stand_in: None });
        }
        forget_longest_idle(&mut producers, start + Duration::from_secs(3600), |p| p.last_seen);
        assert!(producers.len() < MAX_PRODUCERS * 91 / 100);
        assert!(!producers.contains_key(&0) && producers.contains_key(&(MAX_PRODUCERS as i64 - 1)));
    }
}
