//! Transactional producers across a switch.
//!
//! A transactional id's producer id and epoch belong to the transaction coordinator of the cluster that handed
//! them out. On another cluster the coordinator answers INVALID_PRODUCER_ID_MAPPING, which the Java client (4.x)
//! treats as fatal, or PRODUCER_FENCED when that cluster knows the transactional id from an earlier stay. And a
//! transaction open at the switch has records on the old cluster: it must not be committed on the new one.
//!
//! So for a transactional id whose producer id came from another cluster (it *crossed*), the gateway:
//! - refuses what would add to or commit the transaction with an error the clients treat as abortable:
//!   INVALID_PRODUCER_EPOCH for Produce v11+ (the Java client: abortable; Kafka Streams: task migrated, which it
//!   recovers from, where it dies on TRANSACTION_ABORTABLE), UNKNOWN_PRODUCER_ID for older Produce (librdkafka;
//!   abortable with an epoch bump) and for AddPartitionsToTxn, AddOffsetsToTxn and EndTxn(commit);
//!   UNKNOWN_MEMBER_ID for TxnOffsetCommit (CommitFailedException). Nothing of it reaches the new cluster;
//! - answers the client's EndTxn(abort) itself: nothing of the transaction is on the new cluster, and its records
//!   on the old one are aborted there by its coordinator (after `transaction.timeout.ms`, or at once when the
//!   producer initialises there again). To an EndTxn v5 (transactions v2, KIP-890) it hands the producer id and
//!   epoch the gateway obtained on the new cluster with InitProducerId for the transactional id (the client adopts
//!   them, as after any v5 EndTxn);
//! - forwards the client's own InitProducerId (its epoch bump after an abortable error, KIP-360) without its old
//!   producer id and epoch, which the new cluster would take for another producer's and fence: the coordinator
//!   bumps the epoch of its own state of the id, which fences only earlier incarnations of this same producer.
//!   Should that answer (or the id of an EndTxn v5 answer) be the very id and epoch the client held (both
//!   clusters hand out ids from 0), the gateway bumps it once more: a client given back what it had keeps its
//!   sequence numbers (librdkafka), which the new epoch on this cluster refuses as out of order.
//!
//! From the answer on, the producer id is the new cluster's own and requests pass untouched. The gateway learns
//! each transactional id's cluster from the InitProducerId and EndTxn v5 answers it forwards; a transactional id
//! it has never seen (initialised before a gateway restart) is forwarded as it is.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use franzgate_api::kafka_protocol::ResponseError;
use franzgate_api::kafka_protocol::messages::{ApiKey, EndTxnResponse, ProducerId, RequestKind, ResponseKind};
use franzgate_api::{FilterError, KafkaRequest, KafkaResponse, Session};
use tower::Service;

use super::lock;
use super::produce::{InitFailed, NO_PRODUCER, Retry, init_producer_id};
use super::producers::{MAX_PRODUCERS, ProducerRegistry, forget_longest_idle};

/// The gateway's InitProducerId for a transactional id is asked again while the coordinator is busy aborting what
/// the id had open (CONCURRENT_TRANSACTIONS) or loading.
const TRANSACTIONAL_RETRY: Retry = Retry { attempts: 50, backoff: Duration::from_millis(100), when: coordinator_busy };

fn coordinator_busy(code: i16) -> bool {
    code == ResponseError::ConcurrentTransactions.code() || code == ResponseError::CoordinatorLoadInProgress.code()
}

/// Which cluster each transactional id's producer id came from.
#[derive(Debug, Default)]
pub struct TransactionRegistry {
    owners: Mutex<HashMap<String, Owner>>,
}

#[derive(Debug)]
struct Owner {
    /// The cluster whose coordinator handed out the producer id the client holds.
    cluster: Arc<str>,
    last_seen: Instant,
}

impl TransactionRegistry {
    /// Records that `cluster` handed `transactional_id` the producer id its client now holds.
    pub fn owned_by(&self, transactional_id: &str, cluster: &str, now: Instant) {
        let mut owners = lock(&self.owners);
        if owners.len() >= MAX_PRODUCERS && !owners.contains_key(transactional_id) {
            forget_longest_idle(&mut owners, now, |o| o.last_seen);
        }
        owners.insert(transactional_id.to_string(), Owner { cluster: Arc::from(cluster), last_seen: now });
    }

    /// Whether `transactional_id`'s producer id came from a cluster other than `cluster`.
    pub fn crossed(&self, transactional_id: &str, cluster: &str, now: Instant) -> bool {
        let mut owners = lock(&self.owners);
        let Some(owner) = owners.get_mut(transactional_id) else { return false };
        owner.last_seen = now;
        *owner.cluster != *cluster
    }
}

/// What the gateway does with one transactional request.
#[derive(Debug, PartialEq, Eq)]
pub enum Action {
    /// Forward it.
    Forward {
        /// The transactional id whose owner its answer tells (InitProducerId, EndTxn).
        learn: Option<String>,
    },
    /// Answer it with this error; nothing is forwarded.
    Refuse(i16),
    /// An InitProducerId of a crossed id: forward it without the old producer id and epoch, then learn.
    ForwardFresh(String),
    /// An EndTxn(abort) of a crossed id: answered by the gateway.
    AbortHere(String),
}

/// The transactional id a request names and, for EndTxn, whether it commits. `None` when the request has none
/// (an idempotent producer's, AddPartitionsToTxn v4+ between brokers) or does not decode.
fn named(request: &mut KafkaRequest) -> Option<(String, bool)> {
    let version = request.api_version();
    let name = |id: &franzgate_api::kafka_protocol::messages::TransactionalId| id.0.to_string();
    match request.body().ok()? {
        RequestKind::Produce(produce) => Some((name(produce.transactional_id.as_ref()?), false)),
        RequestKind::InitProducerId(init) => Some((name(init.transactional_id.as_ref()?), false)),
        RequestKind::AddPartitionsToTxn(add) if version <= 3 => Some((name(&add.v3_and_below_transactional_id), false)),
        RequestKind::AddOffsetsToTxn(add) => Some((name(&add.transactional_id), false)),
        RequestKind::TxnOffsetCommit(commit) => Some((name(&commit.transactional_id), false)),
        RequestKind::EndTxn(end) => Some((name(&end.transactional_id), end.committed)),
        _ => None,
    }
}

/// What to do with `request`, a transactional request on `cluster`.
pub fn action(request: &mut KafkaRequest, registry: &TransactionRegistry, cluster: &str) -> Action {
    let Some((id, commits)) = named(request) else { return Action::Forward { learn: None } };
    if id.is_empty() {
        return Action::Forward { learn: None };
    }
    let learns = matches!(request.api_key(), Some(ApiKey::InitProducerId | ApiKey::EndTxn));
    if !registry.crossed(&id, cluster, Instant::now()) {
        return Action::Forward { learn: learns.then_some(id) };
    }
    let unknown_producer = ResponseError::UnknownProducerId.code();
    match request.api_key() {
        Some(ApiKey::InitProducerId) => Action::ForwardFresh(id),
        Some(ApiKey::EndTxn) if !commits => Action::AbortHere(id),
        Some(ApiKey::Produce) if request.api_version() >= 11 => {
            Action::Refuse(ResponseError::InvalidProducerEpoch.code())
        }
        Some(ApiKey::TxnOffsetCommit) => Action::Refuse(ResponseError::UnknownMemberId.code()),
        _ => Action::Refuse(unknown_producer),
    }
}

/// Makes an InitProducerId request one without the client's producer id and epoch (a plain initialisation);
/// returns them.
fn without_producer(request: &mut KafkaRequest) -> Result<(i64, i16), FilterError> {
    let mut client = NO_PRODUCER;
    if let RequestKind::InitProducerId(init) = request.body_mut()? {
        client = (init.producer_id.0, init.producer_epoch);
        init.producer_id = ProducerId(-1);
        init.producer_epoch = -1;
    }
    Ok(client)
}

/// Forwards a crossed transactional id's InitProducerId without the client's producer id and epoch, and learns
/// from the answer that the session's cluster owns the id. An answer naming the very id and epoch the client
/// held (both clusters hand out ids from 0, and epochs coincide) is bumped once more on the cluster: a client
/// that gets back what it had keeps its sequence numbers (librdkafka), which this cluster's new epoch of the id
/// would refuse as out of order.
pub async fn forward_fresh<S>(
    mut request: KafkaRequest,
    transactional_id: String,
    inner: Arc<Mutex<S>>,
    registry: Arc<TransactionRegistry>,
    producers: Arc<ProducerRegistry>,
) -> Result<KafkaResponse, FilterError>
where
    S: Service<KafkaRequest, Response = KafkaResponse, Error = FilterError>,
{
    let client = without_producer(&mut request)?;
    let (session, cluster) = (request.session.clone(), request.session.cluster.name.clone());
    tracing::info!(transactional_id, %cluster,
        "initialising a transactional id that crossed a switch without its old producer id");
    let call = lock(&inner).call(request);
    let mut response = call.await?;
    let obtained = match response.body() {
        Ok(ResponseKind::InitProducerId(answer)) if answer.error_code == 0 => {
            (answer.producer_id.0, answer.producer_epoch)
        }
        _ => return Ok(response),
    };
    if obtained == client {
        match unlike_client(&inner, session, &transactional_id, obtained, client).await {
            Ok((id, epoch)) => {
                if let Ok(ResponseKind::InitProducerId(answer)) = response.body_mut() {
                    answer.producer_id = ProducerId(id);
                    answer.producer_epoch = epoch;
                }
            }
            Err(failed) => {
                let reason = failed.describe("InitProducerId bumping an epoch the client already held");
                tracing::warn!(transactional_id, %reason, "answering its InitProducerId with NOT_COORDINATOR");
                if let Ok(ResponseKind::InitProducerId(answer)) = response.body_mut() {
                    answer.error_code = ResponseError::NotCoordinator.code();
                    answer.producer_id = ProducerId(-1);
                    answer.producer_epoch = -1;
                }
                return Ok(response);
            }
        }
    }
    learn(&mut response, &transactional_id, &cluster, &registry);
    producers.note_origin(&cluster);
    Ok(response)
}

/// Learns from an InitProducerId or EndTxn answer that `cluster` now owns `transactional_id`'s producer id.
pub fn learn(response: &mut KafkaResponse, transactional_id: &str, cluster: &str, registry: &TransactionRegistry) {
    let owned = match response.body() {
        Ok(ResponseKind::InitProducerId(answer)) => answer.error_code == 0,
        // Only v5 answers carry a producer id (transactions v2); before, the id the client holds stays whose it was.
        Ok(ResponseKind::EndTxn(answer)) => answer.error_code == 0 && answer.producer_id.0 >= 0,
        _ => false,
    };
    if owned {
        registry.owned_by(transactional_id, cluster, Instant::now());
    }
}

/// Answers a crossed transactional id's EndTxn(abort): nothing of the transaction is on this cluster. To v5 the
/// answer carries a producer id and epoch of this cluster's coordinator for the id, obtained here.
pub async fn abort_here<S>(
    mut request: KafkaRequest,
    transactional_id: String,
    inner: Arc<Mutex<S>>,
    registry: Arc<TransactionRegistry>,
    producers: Arc<ProducerRegistry>,
) -> Result<KafkaResponse, FilterError>
where
    S: Service<KafkaRequest, Response = KafkaResponse, Error = FilterError>,
{
    let (key, version, correlation) = (request.api_key_raw(), request.api_version(), request.correlation_id());
    let cluster = request.session.cluster.name.clone();
    let mut answer = EndTxnResponse::default().with_producer_id(ProducerId(-1)).with_producer_epoch(-1);
    let client = match request.body() {
        Ok(RequestKind::EndTxn(end)) => (end.producer_id.0, end.producer_epoch),
        _ => NO_PRODUCER,
    };
    if version >= 5 {
        let session = request.session.clone();
        let fresh =
            init_producer_id(&inner, session.clone(), Some(&transactional_id), NO_PRODUCER, &TRANSACTIONAL_RETRY);
        let obtained = match fresh.await {
            Ok(obtained) => unlike_client(&inner, session, &transactional_id, obtained, client).await,
            Err(failed) => Err(failed),
        };
        match obtained {
            Ok((id, epoch)) => {
                answer = answer.with_producer_id(ProducerId(id)).with_producer_epoch(epoch);
                registry.owned_by(&transactional_id, &cluster, Instant::now());
                producers.note_origin(&cluster);
            }
            Err(failed) => {
                let reason = failed.describe("InitProducerId for a transactional id that crossed a switch");
                tracing::warn!(session = request.session.id, transactional_id, %reason,
                    "answering its EndTxn(abort) with NOT_COORDINATOR: the client retries");
                return request.error_response(ResponseError::NotCoordinator.code());
            }
        }
    }
    tracing::info!(
        transactional_id,
        cluster,
        "aborted a transaction open at a switch (its records stay on the \
        cluster it was open on, where its coordinator aborts it)"
    );
    KafkaResponse::from_message(key, version, correlation, ResponseKind::EndTxn(answer))
}

/// `obtained` (a producer id and epoch of the session's cluster for `transactional_id`), unless it is the very id
/// and epoch the client holds (both clusters hand out ids from 0): then the cluster's next epoch of it. A client
/// given back what it had keeps its sequence numbers (librdkafka), which the new epoch refuses as out of order.
async fn unlike_client<S>(
    inner: &Mutex<S>,
    session: Arc<Session>,
    transactional_id: &str,
    obtained: (i64, i16),
    client: (i64, i16),
) -> Result<(i64, i16), InitFailed>
where
    S: Service<KafkaRequest, Response = KafkaResponse, Error = FilterError>,
{
    if obtained != client {
        return Ok(obtained);
    }
    init_producer_id(inner, session, Some(transactional_id), obtained, &TRANSACTIONAL_RETRY).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_is_crossed_only_on_a_cluster_other_than_the_one_that_handed_out_its_producer_id() {
        let registry = TransactionRegistry::default();
        let now = Instant::now();
        assert!(!registry.crossed("tx", "failover", now), "unknown ids pass as they are");
        registry.owned_by("tx", "main", now);
        assert!(!registry.crossed("tx", "main", now));
        assert!(registry.crossed("tx", "failover", now));
        registry.owned_by("tx", "failover", now);
        assert!(registry.crossed("tx", "main", now) && !registry.crossed("tx", "failover", now));
    }
}
