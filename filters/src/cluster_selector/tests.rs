//! Unit tests of the cluster selector against a `service_fn` backend.

use std::net::SocketAddr;

use franzgate_api::kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use franzgate_api::kafka_protocol::messages::{
    GroupId, HeartbeatRequest, HeartbeatResponse, JoinGroupRequest, JoinGroupResponse, OffsetCommitRequest,
    ProduceRequest, RequestHeader, TopicName,
};
use franzgate_api::selector::ProducerStats;
use franzgate_api::topology::{BackendCluster, ClusterRole};
use franzgate_api::{Body, Session};
use tower::{ServiceExt, service_fn};

use super::*;

/// A selector over `main` (active) and `failover`, a session bound to `main`, and the failover cluster.
fn main_and_failover() -> (Arc<ClusterSelector>, Arc<Session>, Arc<BackendCluster>) {
    let main = Arc::new(BackendCluster::new("main", vec![]));
    let failover = Arc::new(BackendCluster::new("failover", vec![]).with_role(ClusterRole::Failover));
    let selector = Arc::new(ClusterSelector::new(vec![main.clone(), failover.clone()]).expect("clusters"));
    let on_main = Arc::new(Session::new(1, SocketAddr::from(([127, 0, 0, 1], 1)), 6969, main, selector.epoch()));
    (selector, on_main, failover)
}

/// The error code of the first partition of an OffsetCommit response.
fn commit_error(response: &mut KafkaResponse) -> i16 {
    let Ok(ResponseKind::OffsetCommit(body)) = response.body() else { panic!("an OffsetCommit response") };
    body.topics[0].partitions[0].error_code
}

fn produce(session: Arc<Session>) -> KafkaRequest {
    let header = RequestHeader::default().with_request_api_key(0).with_request_api_version(9).with_correlation_id(3);
    let body = ProduceRequest::default().with_acks(-1).with_topic_data(vec![
        TopicProduceData::default()
            .with_name(TopicName("t".into()))
            .with_partition_data(vec![PartitionProduceData::default().with_index(4)]),
    ]);
    KafkaRequest::from_parts(header, bytes::Bytes::new(), Body::decoded(RequestKind::Produce(body)), session, true)
}

/// A backend that answers everything at once with an empty response, and counts what reached it.
fn counting_backend() -> (
    Arc<std::sync::atomic::AtomicUsize>,
    impl Service<KafkaRequest, Response = KafkaResponse, Error = FilterError, Future: Send> + Clone + Send + 'static,
) {
    let forwarded = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = forwarded.clone();
    let inner = service_fn(move |r: KafkaRequest| {
        counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        async move { Ok::<_, FilterError>(KafkaResponse::no_response(r.api_key_raw(), r.api_version(), 3)) }
    });
    (forwarded, inner)
}

#[tokio::test]
async fn a_request_of_a_session_bound_before_the_switch_gets_a_retriable_error_and_is_not_forwarded() {
    let (selector, session, _) = main_and_failover();
    let (forwarded, inner) = counting_backend();
    let layer = ClusterSelectorLayer::new(selector.clone());

    layer.layer(inner.clone()).oneshot(produce(session.clone())).await.expect("forwarded before the switch");
    assert_eq!(forwarded.load(std::sync::atomic::Ordering::SeqCst), 1);

    selector.switch("main", "failover").expect("switch");
    let mut response = layer.layer(inner).oneshot(produce(session)).await.expect("answered by the gateway");
    assert_eq!(forwarded.load(std::sync::atomic::Ordering::SeqCst), 1, "nothing reaches the old cluster");
    assert!(response.closes_connection(), "the client reconnects to reach the new cluster");
    let Ok(ResponseKind::Produce(body)) = response.body() else { panic!("a Produce response") };
    let partition = &body.responses[0].partition_responses[0];
    assert_eq!((partition.index, partition.error_code), (4, ResponseError::NotLeaderOrFollower.code()));
}

fn request(session: &Arc<Session>, key: i16, version: i16, body: RequestKind) -> KafkaRequest {
    let header =
        RequestHeader::default().with_request_api_key(key).with_request_api_version(version).with_correlation_id(7);
    KafkaRequest::from_parts(header, bytes::Bytes::new(), Body::decoded(body), session.clone(), true)
}

fn commit(session: &Arc<Session>, member: &str, generation: i32) -> KafkaRequest {
    use franzgate_api::kafka_protocol::messages::offset_commit_request::{
        OffsetCommitRequestPartition, OffsetCommitRequestTopic,
    };
    let body = OffsetCommitRequest::default()
        .with_group_id(GroupId("readers".into()))
        .with_member_id(member.to_owned().into())
        .with_generation_id_or_member_epoch(generation)
        .with_topics(vec![
            OffsetCommitRequestTopic::default()
                .with_name(TopicName("t".into()))
                .with_partitions(vec![OffsetCommitRequestPartition::default().with_committed_offset(1947)]),
        ]);
    request(session, ApiKey::OffsetCommit as i16, 9, RequestKind::OffsetCommit(body))
}

#[tokio::test]
async fn a_group_member_confirmed_by_the_old_cluster_cannot_commit_to_the_new_one() {
    let (selector, on_main, failover) = main_and_failover();
    let peer = on_main.peer;
    let forwarded = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = forwarded.clone();
    // The backend: JoinGroup hands out member `m-1`; everything else is answered without error.
    let inner = service_fn(move |r: KafkaRequest| {
        counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        async move {
            match r.api_key() {
                Some(ApiKey::JoinGroup) => KafkaResponse::from_message(
                    r.api_key_raw(),
                    r.api_version(),
                    r.correlation_id(),
                    ResponseKind::JoinGroup(JoinGroupResponse::default().with_member_id("m-1".into())),
                ),
                _ => Ok(KafkaResponse::no_response(r.api_key_raw(), r.api_version(), r.correlation_id())),
            }
        }
    });
    let layer = ClusterSelectorLayer::new(selector.clone());
    let join = JoinGroupRequest::default().with_group_id(GroupId("readers".into()));
    let join = request(&on_main, ApiKey::JoinGroup as i16, 5, RequestKind::JoinGroup(join));
    layer.layer(inner.clone()).oneshot(join).await.expect("joined on main");
    layer.layer(inner.clone()).oneshot(commit(&on_main, "m-1", 0)).await.expect("its commit on main passes");
    assert_eq!(forwarded.load(std::sync::atomic::Ordering::SeqCst), 2);

    selector.switch("main", "failover").expect("switch");
    let on_failover = Arc::new(Session::new(2, peer, 6969, failover, selector.epoch()));
    let mut refused =
        layer.layer(inner.clone()).oneshot(commit(&on_failover, "m-1", 0)).await.expect("answered by the gateway");
    assert_eq!(forwarded.load(std::sync::atomic::Ordering::SeqCst), 2, "main's positions never reach failover");
    assert!(!refused.closes_connection(), "the client rejoins on the same connection");
    assert_eq!(selector.fenced_commits(), 1, "counted for /metrics");
    assert_eq!(commit_error(&mut refused), ResponseError::UnknownMemberId.code());

    // The revoke of the lost assignment commits with the member id cleared: refused too, until a member
    // joins on failover.
    let mut refused =
        layer.layer(inner.clone()).oneshot(commit(&on_failover, "", -1)).await.expect("answered by the gateway");
    assert_eq!(commit_error(&mut refused), ResponseError::UnknownMemberId.code());
    assert_eq!(forwarded.load(std::sync::atomic::Ordering::SeqCst), 2);
    let join = JoinGroupRequest::default().with_group_id(GroupId("readers".into()));
    let join = request(&on_failover, ApiKey::JoinGroup as i16, 5, RequestKind::JoinGroup(join));
    layer.layer(inner.clone()).oneshot(join).await.expect("joined on failover");

    // Then a standalone-style commit and one by a member never seen pass.
    for (member, generation) in [("", -1), ("m-9", 0)] {
        layer.layer(inner.clone()).oneshot(commit(&on_failover, member, generation)).await.expect("forwarded");
    }
    assert_eq!(forwarded.load(std::sync::atomic::Ordering::SeqCst), 5);
}

#[tokio::test]
async fn an_answer_from_the_old_cluster_arriving_after_the_switch_confirms_nobody() {
    let (selector, on_main, failover) = main_and_failover();
    let peer = on_main.peer;
    // The backend answers heartbeats (without error) only when the test lets it.
    let release = Arc::new(tokio::sync::Notify::new());
    let held = release.clone();
    let inner = service_fn(move |r: KafkaRequest| {
        let held = held.clone();
        async move {
            if r.api_key() == Some(ApiKey::Heartbeat) {
                held.notified().await;
                let ok = ResponseKind::Heartbeat(HeartbeatResponse::default());
                return KafkaResponse::from_message(r.api_key_raw(), r.api_version(), r.correlation_id(), ok);
            }
            Ok::<_, FilterError>(KafkaResponse::no_response(r.api_key_raw(), r.api_version(), r.correlation_id()))
        }
    });
    let layer = ClusterSelectorLayer::new(selector.clone());
    let heartbeat = HeartbeatRequest::default().with_group_id(GroupId("readers".into())).with_member_id("m-1".into());
    let heartbeat = request(&on_main, ApiKey::Heartbeat as i16, 4, RequestKind::Heartbeat(heartbeat));
    // Forwarded while main is active (the epoch is checked as the request is taken)...
    let mut service = layer.layer(inner.clone());
    let answered = service.call(heartbeat);
    // ... and answered after the switch.
    selector.switch("main", "failover").expect("switch");
    release.notify_one();
    answered.await.expect("the heartbeat is answered");

    // Main's late answer did not make `m-1` (or its group) a member of main: the failover takes its commits.
    let on_failover = Arc::new(Session::new(2, peer, 6969, failover, selector.epoch()));
    for (member, generation) in [("m-1", 0), ("", -1)] {
        let mut response =
            layer.layer(inner.clone()).oneshot(commit(&on_failover, member, generation)).await.expect("answered");
        assert!(!matches!(response.body(), Ok(ResponseKind::OffsetCommit(_))), "forwarded, not refused");
    }
    assert_eq!(selector.fenced_commits(), 0);
}

/// A Produce of one batch by producer `id` at `epoch`, sequence 935, on `session`.
fn idempotent_produce(session: &Arc<Session>, id: i64, epoch: i16) -> KafkaRequest {
    use franzgate_api::kafka_protocol::records::{Compression, Record, RecordBatchEncoder, RecordEncodeOptions};
    let record = Record {
        transactional: false,
        control: false,
        partition_leader_epoch: 0,
        producer_id: id,
        producer_epoch: epoch,
        timestamp_type: franzgate_api::kafka_protocol::records::TimestampType::Creation,
        offset: 0,
        sequence: 935,
        timestamp: 0,
        key: Some(bytes::Bytes::from_static(b"key-935")),
        value: None,
        headers: Default::default(),
        delete_horizon: false,
    };
    let mut records = bytes::BytesMut::new();
    let options = RecordEncodeOptions { version: 2, compression: Compression::None };
    RecordBatchEncoder::encode(&mut records, [&record], &options).expect("encode");
    let body = ProduceRequest::default().with_acks(-1).with_topic_data(vec![
        TopicProduceData::default().with_name(TopicName("t".into())).with_partition_data(vec![
            PartitionProduceData::default().with_index(0).with_records(Some(records.freeze())),
        ]),
    ]);
    request(session, ApiKey::Produce as i16, 9, RequestKind::Produce(body))
}

/// The producers of the batches a backend received in a Produce.
fn received_producers(request: &mut KafkaRequest) -> Vec<(i64, i16)> {
    let Ok(RequestKind::Produce(produce)) = request.body() else { panic!("a Produce") };
    let records = produce.topic_data[0].partition_data[0].records.clone().expect("records");
    let mut buf = records.clone();
    franzgate_api::kafka_protocol::records::RecordBatchDecoder::decode_all(&mut buf).expect("the CRC holds");
    record_batches::producers(&records).map(|p| (p.id, p.epoch)).collect()
}

#[tokio::test]
async fn an_idempotent_producer_that_crossed_a_switch_writes_under_one_stand_in_id_of_the_new_cluster() {
    use franzgate_api::kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};
    let (selector, on_main, failover) = main_and_failover();
    // The backend: InitProducerId hands out 7 on main and 5000 on failover; Produce batches are recorded.
    let seen = Arc::new(Mutex::new(Vec::<(String, i64, i16)>::new()));
    let inits = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let (log, counter) = (seen.clone(), inits.clone());
    let inner = service_fn(move |mut r: KafkaRequest| {
        let (log, counter) = (log.clone(), counter.clone());
        async move {
            let cluster = r.session.cluster.name.clone();
            match r.api_key() {
                Some(ApiKey::InitProducerId) => {
                    counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    let id = if cluster == "main" { 7 } else { 5000 };
                    let answer = InitProducerIdResponse::default().with_producer_id(ProducerId(id));
                    let answer = ResponseKind::InitProducerId(answer);
                    KafkaResponse::from_message(r.api_key_raw(), r.api_version(), r.correlation_id(), answer)
                }
                _ => {
                    for (id, epoch) in received_producers(&mut r) {
                        lock(&log).push((cluster.clone(), id, epoch));
                    }
                    Ok(KafkaResponse::no_response(r.api_key_raw(), r.api_version(), r.correlation_id()))
                }
            }
        }
    });
    let layer = ClusterSelectorLayer::new(selector.clone());
    // An idempotent producer's InitProducerId: no transactional id (kafka-protocol's default is an empty one).
    let init = InitProducerIdRequest::default().with_transactional_id(None);
    let init = request(&on_main, ApiKey::InitProducerId as i16, 4, RequestKind::InitProducerId(init));
    let mut answer = layer.layer(inner.clone()).oneshot(init).await.expect("answered");
    let Ok(ResponseKind::InitProducerId(given)) = answer.body() else { panic!("an InitProducerId answer") };
    assert_eq!(given.producer_id.0, 7, "an id nobody else holds reaches the client unchanged");
    layer.layer(inner.clone()).oneshot(idempotent_produce(&on_main, 7, 0)).await.expect("produced on main");

    selector.switch("main", "failover").expect("switch");
    let on_failover = Arc::new(Session::new(2, on_main.peer, 6970, failover, selector.epoch()));
    for _ in 0..2 {
        layer.layer(inner.clone()).oneshot(idempotent_produce(&on_failover, 7, 0)).await.expect("produced");
    }
    assert_eq!(inits.load(std::sync::atomic::Ordering::SeqCst), 2, "one stand-in for both Produce requests");
    let expected = [("main", 7, 0), ("failover", 5000, 0), ("failover", 5000, 0)];
    let expected: Vec<_> = expected.iter().map(|(c, id, e)| (c.to_string(), *id, *e)).collect();
    assert_eq!(*lock(&seen), expected, "main got the client's id; failover the stand-in");
    assert_eq!(ProducerStats::get(&selector.producers.stand_ins), 1);
    assert_eq!(ProducerStats::get(&selector.producers.rewritten_batches), 2);
}

/// A transactional Produce (v12) of `transactional_id` on `session`.
fn transactional_produce(session: &Arc<Session>, transactional_id: &str) -> KafkaRequest {
    use franzgate_api::kafka_protocol::messages::TransactionalId;
    let body = ProduceRequest::default()
        .with_acks(-1)
        .with_transactional_id(Some(TransactionalId(transactional_id.to_string().into())))
        .with_topic_data(vec![
            TopicProduceData::default()
                .with_name(TopicName("t".into()))
                .with_partition_data(vec![PartitionProduceData::default().with_index(0)]),
        ]);
    request(session, ApiKey::Produce as i16, 12, RequestKind::Produce(body))
}

fn end_txn(session: &Arc<Session>, transactional_id: &str, committed: bool) -> KafkaRequest {
    use franzgate_api::kafka_protocol::messages::{EndTxnRequest, TransactionalId};
    let body = EndTxnRequest::default()
        .with_transactional_id(TransactionalId(transactional_id.to_string().into()))
        .with_producer_id(ProducerId(7))
        .with_committed(committed);
    request(session, ApiKey::EndTxn as i16, 5, RequestKind::EndTxn(body))
}

use franzgate_api::kafka_protocol::messages::ProducerId;

#[tokio::test]
async fn a_transaction_open_at_the_switch_is_aborted_and_the_producer_gets_an_id_of_the_new_cluster() {
    use franzgate_api::kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, TransactionalId};
    let (selector, on_main, failover) = main_and_failover();
    // The backend: InitProducerId for "tx" hands out 7 on main; on failover 5000 (epoch 3), after answering the
    // first one CONCURRENT_TRANSACTIONS (the coordinator aborting what the id had open). Every request is logged.
    let log = Arc::new(Mutex::new(Vec::<String>::new()));
    let busy_once = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let (seen, busy) = (log.clone(), busy_once.clone());
    let inner = service_fn(move |mut r: KafkaRequest| {
        let (seen, busy) = (seen.clone(), busy.clone());
        async move {
            let cluster = r.session.cluster.name.clone();
            let key = r.api_key();
            let described = match r.body() {
                Ok(RequestKind::InitProducerId(init)) => format!("{cluster} InitProducerId {}", init.producer_id.0),
                _ => format!("{cluster} {key:?}"),
            };
            lock(&seen).push(described);
            if r.api_key() != Some(ApiKey::InitProducerId) {
                return Ok(KafkaResponse::no_response(r.api_key_raw(), r.api_version(), r.correlation_id()));
            }
            let answer = match cluster.as_str() {
                "main" => InitProducerIdResponse::default().with_producer_id(ProducerId(7)),
                _ if busy.swap(false, std::sync::atomic::Ordering::SeqCst) => {
                    InitProducerIdResponse::default().with_error_code(ResponseError::ConcurrentTransactions.code())
                }
                _ => InitProducerIdResponse::default().with_producer_id(ProducerId(5000)).with_producer_epoch(3),
            };
            KafkaResponse::from_message(
                r.api_key_raw(),
                r.api_version(),
                r.correlation_id(),
                ResponseKind::InitProducerId(answer),
            )
        }
    });
    let layer = ClusterSelectorLayer::new(selector.clone());
    let init = InitProducerIdRequest::default().with_transactional_id(Some(TransactionalId("tx".into())));
    let init = request(&on_main, ApiKey::InitProducerId as i16, 5, RequestKind::InitProducerId(init));
    layer.layer(inner.clone()).oneshot(init).await.expect("initialised on main");
    layer.layer(inner.clone()).oneshot(transactional_produce(&on_main, "tx")).await.expect("produced on main");

    selector.switch("main", "failover").expect("switch");
    let on_failover = Arc::new(Session::new(2, on_main.peer, 6970, failover, selector.epoch()));
    // The rest of the open transaction is refused with an abortable error, and so is its commit.
    let mut refused =
        layer.layer(inner.clone()).oneshot(transactional_produce(&on_failover, "tx")).await.expect("answered");
    let Ok(ResponseKind::Produce(body)) = refused.body() else { panic!("a Produce answer") };
    assert_eq!(body.responses[0].partition_responses[0].error_code, ResponseError::InvalidProducerEpoch.code());
    let mut refused = layer.layer(inner.clone()).oneshot(end_txn(&on_failover, "tx", true)).await.expect("answered");
    let Ok(ResponseKind::EndTxn(body)) = refused.body() else { panic!("an EndTxn answer") };
    assert_eq!(body.error_code, ResponseError::UnknownProducerId.code());
    assert_eq!(*lock(&log), ["main InitProducerId -1", "main Some(Produce)"], "nothing of it reached the failover");

    // Its abort is answered by the gateway, with a producer id of the failover's coordinator for "tx".
    let mut aborted = layer.layer(inner.clone()).oneshot(end_txn(&on_failover, "tx", false)).await.expect("answered");
    let Ok(ResponseKind::EndTxn(body)) = aborted.body() else { panic!("an EndTxn answer") };
    assert_eq!((body.error_code, body.producer_id.0, body.producer_epoch), (0, 5000, 3));
    // From then on its requests pass.
    layer.layer(inner.clone()).oneshot(transactional_produce(&on_failover, "tx")).await.expect("forwarded");
    let log = lock(&log).clone();
    assert_eq!(log[2..], ["failover InitProducerId -1", "failover InitProducerId -1", "failover Some(Produce)"]);
    assert_eq!(ProducerStats::get(&selector.producers.refused_transactional), 2);
    assert_eq!(ProducerStats::get(&selector.producers.aborted_here), 1);
}

#[tokio::test]
async fn a_crossed_transactional_producer_bumping_its_epoch_is_initialised_without_its_old_producer_id() {
    use franzgate_api::kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, TransactionalId};
    let (selector, on_main, failover) = main_and_failover();
    let asked = Arc::new(Mutex::new(Vec::<(String, i64, i16)>::new()));
    let seen = asked.clone();
    let inner = service_fn(move |mut r: KafkaRequest| {
        let seen = seen.clone();
        async move {
            let cluster = r.session.cluster.name.clone();
            if let Ok(RequestKind::InitProducerId(init)) = r.body() {
                lock(&seen).push((cluster.clone(), init.producer_id.0, init.producer_epoch));
            }
            let id = if cluster == "main" { 7 } else { 5000 };
            let answer = InitProducerIdResponse::default().with_producer_id(ProducerId(id));
            let answer = ResponseKind::InitProducerId(answer);
            KafkaResponse::from_message(r.api_key_raw(), r.api_version(), r.correlation_id(), answer)
        }
    });
    let layer = ClusterSelectorLayer::new(selector.clone());
    let init = |session: &Arc<Session>, id: i64, epoch: i16| {
        let body = InitProducerIdRequest::default()
            .with_transactional_id(Some(TransactionalId("tx".into())))
            .with_producer_id(ProducerId(id))
            .with_producer_epoch(epoch);
        request(session, ApiKey::InitProducerId as i16, 5, RequestKind::InitProducerId(body))
    };
    layer.layer(inner.clone()).oneshot(init(&on_main, -1, -1)).await.expect("initialised on main");
    selector.switch("main", "failover").expect("switch");
    let on_failover = Arc::new(Session::new(2, on_main.peer, 6970, failover, selector.epoch()));
    // The client's KIP-360 bump names main's producer id, which the failover would take for another's.
    layer.layer(inner.clone()).oneshot(init(&on_failover, 7, 4)).await.expect("initialised on failover");
    // Its next bump, now with the failover's id, passes as it is.
    layer.layer(inner.clone()).oneshot(init(&on_failover, 5000, 0)).await.expect("bumped on failover");
    let expected = [("main", -1, -1), ("failover", -1, -1), ("failover", 5000, 0)];
    let expected: Vec<_> = expected.iter().map(|(c, id, e)| (c.to_string(), *id, *e)).collect();
    assert_eq!(*lock(&asked), expected);
}

#[tokio::test]
async fn a_crossed_transactional_producer_never_gets_back_the_id_and_epoch_it_held() {
    use franzgate_api::kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, TransactionalId};
    let (selector, on_main, failover) = main_and_failover();
    // Both clusters hand "tx" producer id 0 at epoch 0, and bump the epoch of an init naming their current one.
    let asked = Arc::new(Mutex::new(Vec::<(String, i64, i16)>::new()));
    let seen = asked.clone();
    let inner = service_fn(move |mut r: KafkaRequest| {
        let seen = seen.clone();
        async move {
            let cluster = r.session.cluster.name.clone();
            let Ok(RequestKind::InitProducerId(init)) = r.body() else { panic!("only InitProducerId") };
            let (id, epoch) = (init.producer_id.0, init.producer_epoch);
            lock(&seen).push((cluster, id, epoch));
            let answer = InitProducerIdResponse::default()
                .with_producer_id(ProducerId(0))
                .with_producer_epoch(if id == 0 { epoch + 1 } else { 0 });
            let answer = ResponseKind::InitProducerId(answer);
            KafkaResponse::from_message(r.api_key_raw(), r.api_version(), r.correlation_id(), answer)
        }
    });
    let layer = ClusterSelectorLayer::new(selector.clone());
    let init = |session: &Arc<Session>, id: i64, epoch: i16| {
        let body = InitProducerIdRequest::default()
            .with_transactional_id(Some(TransactionalId("tx".into())))
            .with_producer_id(ProducerId(id))
            .with_producer_epoch(epoch);
        request(session, ApiKey::InitProducerId as i16, 4, RequestKind::InitProducerId(body))
    };
    layer.layer(inner.clone()).oneshot(init(&on_main, -1, -1)).await.expect("initialised on main");
    selector.switch("main", "failover").expect("switch");
    let on_failover = Arc::new(Session::new(2, on_main.peer, 6970, failover, selector.epoch()));
    // The client bumps main's (0, 0) on the failover, whose fresh answer is (0, 0) too: what the client holds,
    // and librdkafka would keep its sequence numbers. The gateway bumps once more.
    let mut answer = layer.layer(inner.clone()).oneshot(init(&on_failover, 0, 0)).await.expect("answered");
    let Ok(ResponseKind::InitProducerId(body)) = answer.body() else { panic!("an InitProducerId answer") };
    assert_eq!((body.error_code, body.producer_id.0, body.producer_epoch), (0, 0, 1));
    let expected = [("main", -1, -1), ("failover", -1, -1), ("failover", 0, 0)];
    let expected: Vec<_> = expected.iter().map(|(c, id, e)| (c.to_string(), *id, *e)).collect();
    assert_eq!(*lock(&asked), expected);
}

#[tokio::test]
async fn a_fenced_cluster_refuses_produce_with_a_retriable_error_until_the_fence_is_lifted() {
    let (selector, session, _) = main_and_failover();
    let (forwarded, inner) = counting_backend();
    let layer = ClusterSelectorLayer::new(selector.clone());

    selector.set_produce_fence(Some("main".into()));
    let mut refused = layer.layer(inner.clone()).oneshot(produce(session.clone())).await.expect("answered");
    assert_eq!(forwarded.load(std::sync::atomic::Ordering::SeqCst), 0, "nothing reaches the fenced cluster");
    assert!(!refused.closes_connection(), "the client retries on the same connection");
    let Ok(ResponseKind::Produce(body)) = refused.body() else { panic!("a Produce response") };
    assert_eq!(body.responses[0].partition_responses[0].error_code, ResponseError::NotLeaderOrFollower.code());
    assert_eq!(selector.fenced_produces(), 1);

    selector.set_produce_fence(None);
    layer.layer(inner).oneshot(produce(session)).await.expect("forwarded once lifted");
    assert_eq!(forwarded.load(std::sync::atomic::Ordering::SeqCst), 1);
}
