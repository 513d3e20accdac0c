//! Cluster switching with real brokers and real clients: two Apache Kafka clusters (`main` with nodes 1, 2, 3,
//! `failover` with nodes 4, 5, 6, each its own cluster id) shared by the tests of this binary, and MirrorMaker 2
//! copying main -> failover as in production. The seed's demo sequence, continuous load across four switches,
//! a consumer carrying on across a switch, the member fence, admin API refusals and the health endpoints.
//!
//! Tests isolate themselves with unique topic and group names; each starts its own gateway, so each has its
//! own switch state. Topics named `unmirrored-*` are left out of MirrorMaker (for the test that needs two
//! unrelated clusters).

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use common::{
    ADMIN, KafkaCluster, MirrorMaker, TestGateway, VIEWER, client_config, create_topic, raw_metadata, read_all,
    read_all_with, shared_pair, unique,
};
use rdkafka::Message;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, StreamConsumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};

/// MirrorMaker 2 intervals short enough for tests, and the `unmirrored-` topics and groups left out (the
/// defaults of `topics.exclude` and `groups.exclude`, plus that prefix; `\\` is a backslash in a properties file).
/// Source offsets are flushed every second: MirrorMaker copies at least once, and a task restarted when another
/// test's new topic reconfigures it copies again everything since its last flush (52 records copied twice made
/// the load test see duplicates the gateway did not write).
const MM2_EXTRA: &str = "refresh.topics.interval.seconds=2\nrefresh.groups.interval.seconds=2\noffset.flush.interval.ms=1000\n\
    sync.group.offsets.interval.seconds=2\nemit.checkpoints.interval.seconds=2\n\
    topics.exclude=mm2.*\\\\.internal, .*\\\\.replica, __.*, unmirrored-.*\n\
    groups.exclude=console-consumer-.*, connect-.*, __.*, unmirrored-.*\n";

/// MirrorMaker 2 of this test binary, once started (its watchdog ends it with the binary).
static MM2: OnceLock<MirrorMaker> = OnceLock::new();

/// The shared pair with MirrorMaker 2 copying main -> failover, started once for this test binary.
async fn mirrored_pair() -> (&'static KafkaCluster, &'static KafkaCluster) {
    let (main, failover) = shared_pair().await;
    MM2.get_or_init(|| {
        MirrorMaker::start(&MirrorMaker::seed_properties(&main.bootstrap(), &failover.bootstrap(), MM2_EXTRA))
    });
    (main, failover)
}

/// The end of MirrorMaker's log, for failure messages.
fn mm2_log() -> String {
    MM2.get().map(MirrorMaker::log_tail).unwrap_or_default()
}

async fn produce(producer: &FutureProducer, topic: &str, value: &str) {
    producer
        .send(FutureRecord::to(topic).key(value).payload(value), Duration::from_secs(60))
        .await
        .map_err(|(e, _)| e)
        .unwrap_or_else(|e| panic!("`{value}` not acknowledged: {e}"));
}

/// Polls `check` (on a blocking thread) every 500 ms until it holds; panics with `what` after `timeout`.
async fn wait_until<F>(what: &str, timeout: Duration, check: F)
where
    F: Fn() -> bool + Send + Sync + 'static,
{
    let check = Arc::new(check);
    let deadline = Instant::now() + timeout;
    loop {
        let c = check.clone();
        if tokio::task::spawn_blocking(move || c()).await.expect("check thread") {
            return;
        }
        assert!(Instant::now() < deadline, "{what} not within {timeout:?}; MirrorMaker's log:\n{}", mm2_log());
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// The number of partitions of `topic` on `cluster`, read directly (0 while it does not exist; the metadata
/// request of a librdkafka consumer never creates it).
fn partitions_on(cluster: &KafkaCluster, topic: &str) -> usize {
    let consumer: BaseConsumer = cluster.client_config().create().expect("metadata client");
    let Ok(md) = consumer.fetch_metadata(Some(topic), Duration::from_secs(5)) else { return 0 };
    md.topics().first().filter(|t| t.error().is_none()).map_or(0, |t| t.partitions().len())
}

/// Waits until MirrorMaker 2 has created `topic` on the failover with `partitions` partitions. A producer
/// switched there needs the topic before it writes, or it would auto-create one of its own shape.
async fn wait_for_mirrored_topic(failover: &'static KafkaCluster, topic: &str, partitions: usize) {
    let t = topic.to_string();
    wait_until(&format!("MirrorMaker creating {topic} on the failover"), Duration::from_secs(120), move || {
        partitions_on(failover, &t) == partitions
    })
    .await;
}

/// The committed offset of `group` for partition 0 of `topic` on `cluster`, read directly. Retries for up to
/// 30 s while the group coordinator moves or loads (NOT_COORDINATOR right after a cluster starts).
fn committed_on(cluster: &KafkaCluster, group: &str, topic: &str) -> Offset {
    let reader: BaseConsumer = cluster.client_config().set("group.id", group).create().expect("reader");
    let mut partition = TopicPartitionList::new();
    partition.add_partition(topic, 0);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match reader.committed_offsets(partition.clone(), Duration::from_secs(10)) {
            Ok(committed) => return committed.find_partition(topic, 0).map_or(Offset::Invalid, |p| p.offset()),
            Err(e) if Instant::now() < deadline => eprintln!("committed offsets of {group}, retrying: {e}"),
            Err(e) => panic!("committed offsets of {group} on {}: {e}", cluster.name()),
        }
        std::thread::sleep(Duration::from_millis(300));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seed_demo_sequence_with_one_producer_living_across_the_switch() {
    let (main, failover) = mirrored_pair().await;
    let gateway = TestGateway::start_pair(&main.bootstrap(), &failover.bootstrap(), "").await;
    let bootstrap = gateway.bootstrap();
    let users = unique("users");

    create_topic(&bootstrap, &users, 1).await;
    let producer: FutureProducer = client_config(&bootstrap).set("acks", "all").create().expect("producer");
    produce(&producer, &users, "tom").await;
    produce(&producer, &users, "laura").await;
    assert_eq!(read_all(&main.bootstrap(), &users), ["tom", "laura"], "written to the primary");
    // MirrorMaker 2 creates the topic on the failover and copies both records.
    let copied = common::kafka::read_topic(failover, &users, 2, Duration::from_secs(120)).await;
    assert_eq!(copied, ["tom", "laura"], "MirrorMaker copied the primary's records:\n{}", mm2_log());

    let (status, body) =
        gateway.admin_call("POST", "/admin/pclusters/v1/pcluster/main/switch?to=failover", Some(ADMIN)).await;
    assert_eq!((status, body["message"].as_str()), (200, Some("Cluster switched")), "{body}");

    // The same producer instance, never reconfigured, carries on against the secondary.
    produce(&producer, &users, "alice").await;
    assert_eq!(read_all(&main.bootstrap(), &users), ["tom", "laura"], "alice is not on the primary");
    assert_eq!(read_all(&failover.bootstrap(), &users), ["tom", "laura", "alice"]);
    assert_eq!(read_all(&bootstrap, &users), ["tom", "laura", "alice"], "through the gateway: all three");

    gateway.switch_to("main").await;
    assert_eq!(read_all(&bootstrap, &users), ["tom", "laura"], "switched back: the primary's view");
    let (_, clusters) = gateway.admin_call("GET", "/admin/pclusters/v1", Some(VIEWER)).await;
    assert_eq!((clusters["activeCluster"].as_str(), clusters["switchCount"].as_u64()), (Some("main"), Some(2)));
}

/// Every acknowledged record is in exactly one cluster once MirrorMaker's copies are told apart: MirrorMaker
/// copies main -> failover only, so a record produced to main is on main once and on the failover once (the
/// copy), and a record produced to the failover (switched there) is on the failover once and never on main.
/// A record written to both clusters (a retry that crossed a switch after its first attempt was stored),
/// written twice to one, or missing, fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn continuous_load_across_four_switches_loses_nothing_and_duplicates_nothing() {
    const RECORDS: usize = 6_000;
    const PARTITIONS: usize = 3;
    let (main, failover) = mirrored_pair().await;
    let topic = unique("load");
    let gateway = Arc::new(TestGateway::start_pair(&main.bootstrap(), &failover.bootstrap(), "").await);
    create_topic(&gateway.bootstrap(), &topic, PARTITIONS as i32).await;
    wait_for_mirrored_topic(failover, &topic, PARTITIONS).await;

    let producer: FutureProducer = client_config(&gateway.bootstrap())
        .set("acks", "all")
        .set("retries", "1000000")
        .set("retry.backoff.ms", "100")
        .set("linger.ms", "2")
        .set("message.timeout.ms", "120000")
        .create()
        .expect("producer");
    let acked = Arc::new(AtomicUsize::new(0));
    let switcher = {
        let (gateway, acked) = (gateway.clone(), acked.clone());
        tokio::spawn(async move {
            for (threshold, target) in [(1_000, "failover"), (2_500, "main"), (4_000, "failover"), (5_000, "main")] {
                while acked.load(Ordering::SeqCst) < threshold {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                gateway.switch_to(target).await;
            }
        })
    };
    let mut sends = Vec::with_capacity(RECORDS);
    for i in 0..RECORDS {
        let (producer, acked, topic) = (producer.clone(), acked.clone(), topic.clone());
        sends.push(tokio::spawn(async move {
            let value = i.to_string();
            let result =
                producer.send(FutureRecord::to(&topic).key(&value).payload(&value), Duration::from_secs(120)).await;
            acked.fetch_add(1, Ordering::SeqCst);
            result.map(|_| ()).map_err(|(e, _)| format!("record {i}: {e}"))
        }));
        if i % 50 == 0 {
            // A steady stream rather than one burst, so switches land mid-traffic.
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    for send in sends {
        send.await.expect("task").expect("every delivery succeeds");
    }
    switcher.await.expect("switches done");
    let (_, clusters) = gateway.admin_call("GET", "/admin/pclusters/v1", Some(VIEWER)).await;
    assert_eq!(clusters["switchCount"].as_u64(), Some(4), "{clusters}");

    // MirrorMaker caught up: every record on main (each copy of it) is on the failover too.
    let count = |values: Vec<String>| {
        let mut copies: HashMap<String, usize> = HashMap::new();
        for v in values {
            *copies.entry(v).or_default() += 1;
        }
        copies
    };
    let on_main = count(read_all(&main.bootstrap(), &topic));
    let failover_reader = || {
        // read_committed: should MirrorMaker ever run exactly-once, an aborted copy is not a copy.
        let mut config = failover.client_config();
        config.set("isolation.level", "read_committed");
        config
    };
    let (t, m) = (topic.clone(), on_main.clone());
    wait_until("MirrorMaker copying every record of main to the failover", Duration::from_secs(180), move || {
        let on_failover = count(read_all_with(failover_reader(), &t));
        m.iter().all(|(v, n)| on_failover.get(v).copied().unwrap_or(0) >= *n)
    })
    .await;
    let on_failover = count(read_all_with(failover_reader(), &topic));

    let (mut via_main, mut via_failover, mut wrong) = (0, 0, Vec::new());
    for value in (0..RECORDS).map(|i| i.to_string()) {
        let main_copies = on_main.get(&value).copied().unwrap_or(0);
        let failover_copies = on_failover.get(&value).copied().unwrap_or(0);
        // MirrorMaker copied each of main's copies once (checked above).
        let mirrored = main_copies;
        match main_copies + (failover_copies - mirrored) {
            1 if main_copies == 1 => via_main += 1,
            1 => via_failover += 1,
            _ => wrong.push(format!("{value}: {main_copies} on main, {failover_copies} on failover")),
        }
    }
    assert!(
        wrong.is_empty(),
        "{} records not in exactly one cluster: {:?}",
        wrong.len(),
        &wrong[..wrong.len().min(10)]
    );
    assert!(
        via_main > 0 && via_failover > 0,
        "traffic reached both clusters: {via_main} main, {via_failover} failover"
    );
    assert_eq!(via_main + via_failover, RECORDS);
    eprintln!("{via_main} records produced to main (and copied by MirrorMaker), {via_failover} to the failover");
    let stray = on_main.keys().chain(on_failover.keys()).filter(|v| v.parse::<usize>().map_or(true, |i| i >= RECORDS));
    assert_eq!(stray.count(), 0, "only the producer's records are in the topic");
}

/// The next record value. A switch closes every connection of the old cluster at once, which librdkafka
/// reports as a transient "all brokers down" event before reconnecting by itself; only other errors fail.
async fn next_value(consumer: &StreamConsumer) -> String {
    use rdkafka::error::KafkaError;
    use rdkafka::types::RDKafkaErrorCode::{AllBrokersDown, BrokerTransportFailure};
    loop {
        let next =
            tokio::time::timeout(Duration::from_secs(30), consumer.recv()).await.expect("the consumer keeps receiving");
        match next {
            Ok(message) => return String::from_utf8_lossy(message.payload().unwrap_or_default()).into_owned(),
            Err(KafkaError::MessageConsumption(AllBrokersDown | BrokerTransportFailure)) => continue,
            Err(e) => panic!("consume error: {e}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failover_with_other_broker_ids_and_cluster_id_keeps_the_same_producer_and_consumer_working() {
    let (main, failover) = mirrored_pair().await;
    assert_ne!(main.cluster_id(), failover.cluster_id(), "two independent clusters");
    let (orders, group) = (unique("orders"), unique("orders-app"));
    let gateway = TestGateway::start_pair(&main.bootstrap(), &failover.bootstrap(), "").await;
    let port = gateway.port_start;
    create_topic(&gateway.bootstrap(), &orders, 1).await;
    wait_for_mirrored_topic(failover, &orders, 1).await;

    let before = raw_metadata(port).await;
    let producer: FutureProducer = client_config(&gateway.bootstrap()).set("acks", "all").create().expect("producer");
    let consumer: StreamConsumer = client_config(&gateway.bootstrap())
        .set("group.id", &group)
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", "10000")
        .create()
        .expect("consumer");
    consumer.subscribe(&[&orders]).expect("subscribe");
    let mut received = Vec::new();
    for i in 0..5 {
        produce(&producer, &orders, &format!("before-{i}")).await;
    }
    while received.len() < 5 {
        received.push(next_value(&consumer).await);
    }
    consumer.commit_consumer_state(CommitMode::Sync).expect("commit through the gateway");
    assert_eq!(committed_on(main, &group, &orders), Offset::Offset(5), "committed on the primary");

    // MirrorMaker 2 copies the records and translates the group's committed offset to the failover (the group
    // has no members there), so the consumer resumes from MirrorMaker's offset rather than from the start.
    let copied = common::kafka::read_topic(failover, &orders, 5, Duration::from_secs(120)).await;
    assert_eq!(copied.len(), 5, "MirrorMaker copied the primary's records:\n{}", mm2_log());
    let (g, t) = (group.clone(), orders.clone());
    wait_until(
        "MirrorMaker syncing the group's offset to the failover",
        Duration::from_secs(120),
        move || matches!(committed_on(failover, &g, &t), Offset::Offset(n) if n > 0),
    )
    .await;

    gateway.switch_to("failover").await;
    let after = raw_metadata(port).await;
    for i in 0..5 {
        produce(&producer, &orders, &format!("after-{i}")).await;
    }
    while received.iter().filter(|v| v.starts_with("after-")).count() < 5 {
        received.push(next_value(&consumer).await);
    }
    // Nothing is lost; records may be read again: MirrorMaker's translated offset may lie behind the primary's
    // (it translates from its last offset sync), and the two clusters' leader epochs are unrelated, so
    // librdkafka's position validation (KIP-320) after the switch can rewind to auto.offset.reset. A known limit
    // of switching between independent clusters (see README).
    for i in 0..5 {
        assert!(received.contains(&format!("before-{i}")) && received.contains(&format!("after-{i}")), "{received:?}");
    }
    let on_failover = read_all(&failover.bootstrap(), &orders);
    assert_eq!(on_failover.iter().filter(|v| v.starts_with("after-")).count(), 5, "after-* went to the failover");
    assert!(read_all(&main.bootstrap(), &orders).iter().all(|v| v.starts_with("before-")), "and not to the primary");

    // Clients saw one cluster id and the same node ids and ports on both sides, though the backends differ in
    // both (main: nodes 1, 2, 3; failover: nodes 4, 5, 6; each its own cluster id).
    assert_eq!(before.cluster_id, after.cluster_id);
    assert_eq!(before.cluster_id.as_deref(), Some(franzgate::gateway::DEFAULT_CLUSTER_ID));
    let brokers = |m: &kafka_protocol::messages::MetadataResponse| -> Vec<(i32, i32)> {
        let mut b: Vec<_> = m.brokers.iter().map(|b| (b.node_id.0, b.port)).collect();
        b.sort();
        b
    };
    let gateway_ports: Vec<(i32, i32)> = (0..3).map(|v| (v, i32::from(port) + v)).collect();
    assert_eq!(brokers(&before), gateway_ports, "main's nodes 1,2,3 are virtual nodes 0,1,2 on the gateway's ports");
    assert_eq!(brokers(&after), gateway_ports, "failover's nodes 4,5,6 are virtual nodes 0,1,2 on the same ports");
    let leader_via_gateway = |m: &kafka_protocol::messages::MetadataResponse| {
        m.topics
            .iter()
            .find(|t| t.name.as_ref().map(|n| n.as_str()) == Some(orders.as_str()))
            .map(|t| t.partitions[0].leader_id.0)
    };
    let leader_on = |cluster: &KafkaCluster| {
        let consumer: BaseConsumer = cluster.client_config().create().expect("metadata client");
        let md = consumer.fetch_metadata(Some(&orders), Duration::from_secs(10)).expect("metadata");
        md.topics()[0].partitions()[0].leader()
    };
    // Virtual ids follow the backend ids' order: main's node n is n - 1, the failover's n - 4.
    assert_eq!(leader_via_gateway(&before), Some(leader_on(main) - 1), "main's leader, translated");
    assert_eq!(leader_via_gateway(&after), Some(leader_on(failover) - 4), "the failover's leader, translated");
}

/// Two clusters with unrelated offsets (the topic is left out of MirrorMaker). A consumer that read 30 records
/// on the primary and commits right after the switch — before a heartbeat tells it its membership is gone, as
/// librdkafka's auto-commit does — and again as it revokes the lost assignment, must not write the primary's
/// positions into the failover's group: it rejoins there and reads the failover's own records from the
/// failover's committed offsets (none yet: from the earliest). Kafka itself refuses the first commit (unknown
/// member) but would store the second (no member id, an empty group: a standalone commit), so the gateway's
/// fence is what keeps the primary's position out. Whether librdkafka's revoke commit comes before it learns
/// its membership is gone depends on timing against real Kafka, so the test also sends such a standalone commit
/// itself right after the switch: refused, and counted in the gateway's metric.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_member_of_the_primary_cannot_commit_its_positions_to_the_failover() {
    let (main, failover) = shared_pair().await;
    let (events, group) = (unique("unmirrored-events"), unique("unmirrored-events-app"));
    create_topic(&main.bootstrap(), &events, 1).await;
    create_topic(&failover.bootstrap(), &events, 1).await;
    let gateway = TestGateway::start_pair(&main.bootstrap(), &failover.bootstrap(), "").await;
    let producer: FutureProducer = client_config(&gateway.bootstrap()).set("acks", "all").create().expect("producer");
    for i in 0..30 {
        produce(&producer, &events, &format!("main-{i}")).await;
    }
    let consumer: StreamConsumer = client_config(&gateway.bootstrap())
        .set("group.id", &group)
        .set("auto.offset.reset", "earliest")
        // Auto-commit on (the revoke of a lost assignment commits then), its timer out of the way: the test
        // commits by hand right after the switch.
        .set("auto.commit.interval.ms", "600000")
        // Most likely no heartbeat between the switch and the commit below (if one comes first, the commit
        // refused is the revoke's instead).
        .set("heartbeat.interval.ms", "15000")
        .set("session.timeout.ms", "45000")
        .create()
        .expect("consumer");
    consumer.subscribe(&[&events]).expect("subscribe");
    for i in 0..30 {
        assert_eq!(next_value(&consumer).await, format!("main-{i}"));
    }
    let failover_producer: FutureProducer = client_config(&failover.bootstrap()).create().expect("producer");
    for i in 0..3 {
        produce(&failover_producer, &events, &format!("failover-{i}")).await;
    }

    gateway.switch_to("failover").await;
    // A standalone commit of the primary's position (no member id, generation -1), as librdkafka sends when it
    // revokes a lost assignment: Kafka would store it in the failover's empty group; the gateway refuses it.
    let standalone: BaseConsumer =
        client_config(&gateway.bootstrap()).set("group.id", &group).create().expect("client");
    let mut position = TopicPartitionList::new();
    position.add_partition_offset(&events, 0, Offset::Offset(30)).expect("offset");
    let refused = tokio::task::block_in_place(|| standalone.commit(&position, CommitMode::Sync));
    assert!(refused.is_err(), "a memberless commit of the primary's position was accepted");
    // Commits position 30 with the primary's member id; refused (by the gateway, or by Kafka: an unknown
    // member), never stored on the failover.
    let _ = consumer.commit_consumer_state(CommitMode::Sync);
    assert_ne!(
        committed_on(failover, &group, &events),
        Offset::Offset(30),
        "the primary's position reached the failover"
    );
    // On learning its membership is gone, librdkafka revokes the lost assignment and commits once more, with
    // its member id cleared: refused as well, so the rejoined member starts from the failover's own offsets.
    for i in 0..3 {
        assert_eq!(next_value(&consumer).await, format!("failover-{i}"), "the failover's records, from its offsets");
    }
    consumer.commit_consumer_state(CommitMode::Sync).expect("a member of the failover commits there");
    assert_eq!(committed_on(failover, &group, &events), Offset::Offset(3), "the failover's own position");
    assert_eq!(committed_on(main, &group, &events), Offset::Invalid, "nothing committed on the primary");
    // The gateway refused at least the standalone commit.
    let metrics = franzgate::admin::client::call_text(&gateway.admin(), "/metrics", ADMIN).await.expect("metrics");
    let fenced = metrics
        .lines()
        .find_map(|l| l.strip_prefix("franzgate_offset_commits_fenced_total "))
        .and_then(|v| v.parse::<u64>().ok());
    assert!(fenced.is_some_and(|n| n >= 1), "commits refused: {fenced:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_api_refusals_change_nothing() {
    let (main, failover) = shared_pair().await;
    let gateway = TestGateway::start_pair(&main.bootstrap(), &failover.bootstrap(), "").await;
    let switch = "/admin/pclusters/v1/pcluster/main/switch?to=failover";

    let cases = [
        ("POST", switch, None, 401, "authentication required"),
        ("POST", switch, Some(("admin", "wrong")), 401, "wrong user name or password"),
        ("POST", switch, Some(("nobody", "x")), 401, "wrong user name or password"),
        ("POST", switch, Some(VIEWER), 403, "not an admin"),
        (
            "POST",
            "/admin/pclusters/v1/pcluster/primary/switch?to=failover",
            Some(ADMIN),
            404,
            "unknown cluster `primary`",
        ),
        (
            "POST",
            "/admin/pclusters/v1/pcluster/failover/switch?to=main",
            Some(ADMIN),
            404,
            "unknown cluster `failover`",
        ),
        ("POST", "/admin/pclusters/v1/pcluster/main/switch?to=dr-site", Some(ADMIN), 400, "unknown target `dr-site`"),
        ("POST", "/admin/pclusters/v1/pcluster/main/switch", Some(ADMIN), 400, "`to` is required"),
        ("GET", switch, Some(ADMIN), 405, "not allowed"),
        ("GET", "/admin/pclusters/v1", None, 401, "authentication required"),
        ("GET", "/admin/nothing", Some(ADMIN), 404, "no such endpoint"),
    ];
    for (method, path, user, status, message) in cases {
        let (got, body) = gateway.admin_call(method, path, user).await;
        assert_eq!(got, status, "{method} {path} as {user:?}: {body}");
        assert!(body["message"].as_str().is_some_and(|m| m.contains(message)), "{method} {path}: {body}");
    }
    let (status, body) =
        gateway.admin_call("POST", "/admin/pclusters/v1/pcluster/main/switch?to=main", Some(ADMIN)).await;
    assert_eq!(status, 200);
    assert!(body["message"].as_str().is_some_and(|m| m.contains("nothing changed")), "{body}");

    let (status, clusters) = gateway.admin_call("GET", "/admin/pclusters/v1", Some(VIEWER)).await;
    assert_eq!(status, 200);
    assert_eq!(
        (clusters["activeCluster"].as_str(), clusters["switchCount"].as_u64()),
        (Some("main"), Some(0)),
        "{clusters}"
    );
    let roles: Vec<_> =
        clusters["clusters"].as_array().into_iter().flatten().map(|c| (c["name"].clone(), c["role"].clone())).collect();
    assert_eq!(roles, vec![("main".into(), "main".into()), ("failover".into(), "failover".into())]);
    assert_eq!(gateway.running.selector().epoch(), 0, "no refused call moved the epoch");
}

/// The primary is a 1-node cluster of this test's own, since it is killed; the failover is the shared one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_endpoints_report_liveness_and_readiness() {
    let (main, (_, failover)) = tokio::join!(common::own_kafka("health-main"), shared_pair());
    let gateway = TestGateway::start_pair(&main.bootstrap(), &failover.bootstrap(), "").await;
    for path in ["/health", "/health/live", "/health/ready"] {
        let (status, body) = gateway.admin_call("GET", path, None).await;
        assert_eq!((status, body["status"].as_str()), (200, Some("UP")), "{path}: {body}");
    }
    tokio::task::block_in_place(|| main.kill(1));
    let (status, body) = gateway.admin_call("GET", "/health/ready", None).await;
    assert_eq!((status, body["activeClusterReachable"].as_bool()), (503, Some(false)), "{body}");
    let (status, _) = gateway.admin_call("GET", "/health/live", None).await;
    assert_eq!(status, 200, "alive though not ready");
    gateway.switch_to("failover").await;
    let (status, _) = gateway.admin_call("GET", "/health/ready", None).await;
    assert_eq!(status, 200, "ready again once the reachable cluster is active");
}
