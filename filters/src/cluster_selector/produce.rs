//! The Produce and InitProducerId side of [`super::producers`]: finding the batches to place, obtaining
//! stand-in ids with an InitProducerId of the gateway's own, and rewriting the batches.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use franzgate_api::kafka_protocol::ResponseError;
use franzgate_api::kafka_protocol::messages::{
    ApiKey, InitProducerIdRequest, ProducerId, RequestKind, ResponseKind, TransactionalId,
};
use franzgate_api::kafka_protocol::protocol::StrBytes;
use franzgate_api::selector::{ClusterSelector, ProducerStats};
use franzgate_api::{FilterError, KafkaRequest, KafkaResponse, Session};
use tower::Service;

use super::producers::{Placement, ProducerRegistry};
use super::record_batches::{self, BatchProducer};

/// The producer id and epoch of an InitProducerId that names none.
pub const NO_PRODUCER: (i64, i16) = (-1, -1);
/// InitProducerId v4 (Kafka 2.8+; flexible): what the gateway asks a stand-in id with.
const INIT_PRODUCER_ID_VERSION: i16 = 4;
/// A stand-in that takes longer than this fails the Produce with a retriable error (the client retries).
const STAND_IN_TIMEOUT: Duration = Duration::from_secs(15);
/// A stand-in's InitProducerId is asked again while the broker fetches its next block of producer ids
/// (COORDINATOR_LOAD_IN_PROGRESS for a moment): that spares the client a failed Produce. After the last attempt
/// the Produce gets a retriable error.
const STAND_IN_RETRY: Retry = Retry { attempts: 5, backoff: Duration::from_millis(50), when: coordinator_busy };

/// How an InitProducerId of the gateway's own is asked again while the broker answers a passing error.
pub struct Retry {
    /// Attempts in all.
    pub attempts: u32,
    /// The pause between two.
    pub backoff: Duration,
    /// Whether an error code is one to ask again on.
    pub when: fn(i16) -> bool,
}

/// The producers of `request`'s batches that are not written as they are, with how they are placed. A body
/// that does not decode has none: it is forwarded as it came.
pub fn placements(
    request: &mut KafkaRequest,
    registry: &ProducerRegistry,
    cluster: &str,
) -> Vec<(BatchProducer, Placement)> {
    let Ok(RequestKind::Produce(produce)) = request.body() else { return Vec::new() };
    let mut seen: Vec<BatchProducer> = Vec::new();
    for records in produce.topic_data.iter().flat_map(|t| &t.partition_data).filter_map(|p| p.records.as_ref()) {
        for producer in record_batches::producers(records) {
            if !seen.contains(&producer) {
                seen.push(producer);
            }
        }
    }
    let now = Instant::now();
    seen.into_iter()
        .filter_map(|producer| match registry.placement(producer, cluster, now) {
            Placement::AsIs => None,
            placement => Some((producer, placement)),
        })
        .collect()
}

/// Resolves every placement to the id and epoch its batches are written under, obtaining stand-ins through
/// `inner` on the session's cluster, then rewrites the batches and forwards the request. A stand-in that cannot
/// be obtained answers the Produce with NOT_LEADER_OR_FOLLOWER: the client retries (and the retry tries again).
pub async fn place_and_forward<S>(
    mut request: KafkaRequest,
    placements: Vec<(BatchProducer, Placement)>,
    inner: Arc<Mutex<S>>,
    selector: Arc<ClusterSelector>,
) -> Result<KafkaResponse, FilterError>
where
    S: Service<KafkaRequest, Response = KafkaResponse, Error = FilterError>,
    S::Future: Send + 'static,
{
    let stats = &selector.producers;
    let mut rewrites = Vec::with_capacity(placements.len());
    for (producer, placement) in placements {
        let target = match placement {
            Placement::AsIs => continue,
            Placement::As(id, epoch) => (id, epoch),
            Placement::StandIn(stand_in) => {
                let obtain = || obtain_stand_in(inner.clone(), request.session.clone(), stats);
                match stand_in.target.get_or_try_init(obtain).await {
                    Ok(target) => *target,
                    Err(error) => {
                        ProducerStats::add(&stats.stand_in_failures, 1);
                        tracing::warn!(session = request.session.id, %error, "the Produce gets a retriable error");
                        return request.error_response(ResponseError::NotLeaderOrFollower.code());
                    }
                }
            }
        };
        rewrites.push((producer, target));
    }
    let rewritten = rewrite(&mut request, &rewrites)?;
    ProducerStats::add(&stats.rewritten_batches, rewritten);
    let response = super::lock(&inner).call(request);
    response.await
}

/// Writes every batch of each `(from, to)` producer as `to`; returns how many batches were rewritten.
fn rewrite(request: &mut KafkaRequest, rewrites: &[(BatchProducer, (i64, i16))]) -> Result<u64, FilterError> {
    let RequestKind::Produce(produce) = request.body_mut()? else { return Ok(0) };
    let mut count = 0;
    for partition in produce.topic_data.iter_mut().flat_map(|t| t.partition_data.iter_mut()) {
        for (from, to) in rewrites {
            let Some(records) = partition.records.as_ref() else { continue };
            if let Some(rewritten) = record_batches::rewrite_producer(records, *from, *to) {
                count += record_batches::producers(&rewritten).filter(|p| (p.id, p.epoch) == *to).count() as u64;
                partition.records = Some(rewritten);
            }
        }
    }
    Ok(count)
}

/// Whether an InitProducerId error goes away by itself shortly (the coordinator is loading or moving).
fn coordinator_busy(code: i16) -> bool {
    code == ResponseError::CoordinatorLoadInProgress.code() || code == ResponseError::CoordinatorNotAvailable.code()
}

/// Asks the session's cluster for a producer id of the gateway's own (InitProducerId without transactional id,
/// as an idempotent producer does).
async fn obtain_stand_in<S>(
    inner: Arc<Mutex<S>>,
    session: Arc<Session>,
    stats: &ProducerStats,
) -> Result<(i64, i16), String>
where
    S: Service<KafkaRequest, Response = KafkaResponse, Error = FilterError>,
{
    let cluster = session.cluster.name.clone();
    let what = format!("InitProducerId for a stand-in producer id on {cluster}");
    let (id, epoch) =
        init_producer_id(&inner, session, None, NO_PRODUCER, &STAND_IN_RETRY).await.map_err(|e| e.describe(&what))?;
    ProducerStats::add(&stats.stand_ins, 1);
    tracing::info!(
        cluster,
        producer_id = id,
        epoch,
        "obtained a stand-in producer id for a producer that crossed a switch"
    );
    Ok((id, epoch))
}

/// Why an InitProducerId of the gateway's own failed.
#[derive(Debug)]
pub enum InitFailed {
    /// The broker answered this error code.
    Refused(i16),
    /// No usable answer: the reason.
    Failed(String),
}

impl InitFailed {
    /// A log line's text for `what` failing this way.
    pub fn describe(&self, what: &str) -> String {
        match self {
            Self::Refused(code) => format!("{what}: error {:?} ({code})", ResponseError::try_from_code(*code)),
            Self::Failed(reason) => format!("{what}: {reason}"),
        }
    }
}

/// Sends InitProducerId (v4) for `transactional_id` (or none, an idempotent producer's) on the session's backend
/// connection, naming `current` (id and epoch; -1, -1 for none): with none, a fresh id, or for a transactional
/// id the next epoch of the cluster's own (which fences and aborts what that transactional id had open there);
/// with the cluster's current id and epoch of the transactional id, the next epoch of it (KIP-360). Asked again
/// as `retry` says.
pub async fn init_producer_id<S>(
    inner: &Mutex<S>,
    session: Arc<Session>,
    transactional_id: Option<&str>,
    current: (i64, i16),
    retry: &Retry,
) -> Result<(i64, i16), InitFailed>
where
    S: Service<KafkaRequest, Response = KafkaResponse, Error = FilterError>,
{
    let mut attempt = 1;
    loop {
        match init_once(inner, session.clone(), transactional_id, current).await {
            Err(InitFailed::Refused(code)) if attempt < retry.attempts && (retry.when)(code) => {
                attempt += 1;
                tokio::time::sleep(retry.backoff).await;
            }
            result => return result,
        }
    }
}

/// One InitProducerId of [`init_producer_id`].
async fn init_once<S>(
    inner: &Mutex<S>,
    session: Arc<Session>,
    transactional_id: Option<&str>,
    current: (i64, i16),
) -> Result<(i64, i16), InitFailed>
where
    S: Service<KafkaRequest, Response = KafkaResponse, Error = FilterError>,
{
    // No transactional id at all for an idempotent producer (kafka-protocol's default is an empty one, which a
    // broker refuses); an idempotent producer's transaction timeout is Integer.MAX_VALUE, as the Java client's.
    let body = match transactional_id {
        None => InitProducerIdRequest::default().with_transactional_id(None).with_transaction_timeout_ms(i32::MAX),
        Some(id) => InitProducerIdRequest::default()
            .with_transactional_id(Some(TransactionalId(StrBytes::from_string(id.to_string()))))
            .with_transaction_timeout_ms(60_000),
    };
    let body = body.with_producer_id(ProducerId(current.0)).with_producer_epoch(current.1);
    let request = KafkaRequest::out_of_band(
        ApiKey::InitProducerId,
        INIT_PRODUCER_ID_VERSION,
        RequestKind::InitProducerId(body),
        session,
    );
    let call = super::lock(inner).call(request);
    let mut response = match tokio::time::timeout(STAND_IN_TIMEOUT, call).await {
        Ok(Ok(response)) => response,
        Ok(Err(error)) => return Err(InitFailed::Failed(error.to_string())),
        Err(_) => return Err(InitFailed::Failed("no answer in 15 s".into())),
    };
    match response.body() {
        Ok(ResponseKind::InitProducerId(answer)) if answer.error_code == 0 => {
            Ok((answer.producer_id.0, answer.producer_epoch))
        }
        Ok(ResponseKind::InitProducerId(answer)) => Err(InitFailed::Refused(answer.error_code)),
        Ok(_) => Err(InitFailed::Failed("another answer".into())),
        Err(error) => Err(InitFailed::Failed(error.to_string())),
    }
}

/// The transactional id of an InitProducerId request (`None` for an idempotent producer); `Err` when the
/// request is not one that decodes.
pub fn transactional_id(request: &mut KafkaRequest) -> Result<Option<String>, ()> {
    match request.body() {
        Ok(RequestKind::InitProducerId(init)) => Ok(init.transactional_id.as_ref().map(|t| t.0.to_string())),
        _ => Err(()),
    }
}

/// Records the id an InitProducerId answer of `cluster` hands an idempotent producer, renaming it in the answer
/// when another cluster's live producer already holds it.
pub fn note_allocation(
    response: &mut KafkaResponse,
    cluster: &str,
    registry: &ProducerRegistry,
    stats: &ProducerStats,
) {
    let id = match response.body() {
        Ok(ResponseKind::InitProducerId(answer)) if answer.error_code == 0 && answer.producer_id.0 >= 0 => {
            answer.producer_id.0
        }
        _ => return,
    };
    let given = registry.allocated(cluster, id, Instant::now());
    if given == id {
        return;
    }
    if let Ok(ResponseKind::InitProducerId(answer)) = response.body_mut() {
        answer.producer_id = ProducerId(given);
        ProducerStats::add(&stats.renamed_ids, 1);
        tracing::info!(
            cluster,
            producer_id = id,
            renamed = given,
            "renamed a producer id that a producer of another cluster holds through the gateway"
        );
    }
}
