//! Cluster switching with real brokers and real clients: the seed's demo sequence, continuous load across
//! several switches, a failover with different broker ids and cluster id, and admin API refusals.

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::{ADMIN, Tansu, TestGateway, VIEWER, client_config, create_topic, raw_metadata, read_all};
use rdkafka::Message;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{FutureProducer, FutureRecord};

async fn produce(producer: &FutureProducer, topic: &str, value: &str) {
    producer
        .send(FutureRecord::to(topic).key(value).payload(value), Duration::from_secs(60))
        .await
        .map_err(|(e, _)| e)
        .unwrap_or_else(|e| panic!("`{value}` not acknowledged: {e}"));
}

/// Copies every record of `topic` from one cluster to another: a stand-in for MirrorMaker 2.
async fn replicate(from: &str, to: &str, topic: &str) {
    let producer: FutureProducer = client_config(to).set("acks", "all").create().expect("replicator");
    for value in read_all(from, topic) {
        produce(&producer, topic, &value).await;
    }
}

/// Copies a group's committed offsets of `topic` between clusters: MirrorMaker 2's offset sync, stand-in.
fn sync_group_offsets(from: &str, to: &str, group: &str, topic: &str) {
    use rdkafka::consumer::BaseConsumer;
    let source: BaseConsumer = client_config(from).set("group.id", group).create().expect("source");
    let mut partitions = rdkafka::TopicPartitionList::new();
    partitions.add_partition(topic, 0);
    let committed = source.committed_offsets(partitions, Duration::from_secs(10)).expect("committed on the primary");
    let target: BaseConsumer = client_config(to).set("group.id", group).create().expect("target");
    target.commit(&committed, rdkafka::consumer::CommitMode::Sync).expect("committed on the failover");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seed_demo_sequence_with_one_producer_living_across_the_switch() {
    let main = Tansu::start().await;
    let failover = Tansu::start().await;
    let gateway = TestGateway::start_pair(&main.bootstrap(), &failover.bootstrap(), "").await;
    let bootstrap = gateway.bootstrap();

    create_topic(&bootstrap, "users", 1).await;
    let producer: FutureProducer = client_config(&bootstrap).set("acks", "all").create().expect("producer");
    produce(&producer, "users", "tom").await;
    produce(&producer, "users", "laura").await;
    assert_eq!(read_all(&main.bootstrap(), "users"), ["tom", "laura"], "written to the primary");

    create_topic(&failover.bootstrap(), "users", 1).await;
    replicate(&main.bootstrap(), &failover.bootstrap(), "users").await;

    let (status, body) =
        gateway.admin_call("POST", "/admin/pclusters/v1/pcluster/main/switch?to=failover", Some(ADMIN)).await;
    assert_eq!((status, body["message"].as_str()), (200, Some("Cluster switched")), "{body}");

    // The same producer instance, never reconfigured, carries on against the secondary.
    produce(&producer, "users", "alice").await;
    assert_eq!(read_all(&main.bootstrap(), "users"), ["tom", "laura"], "alice is not on the primary");
    assert_eq!(read_all(&failover.bootstrap(), "users"), ["tom", "laura", "alice"]);
    assert_eq!(read_all(&bootstrap, "users"), ["tom", "laura", "alice"], "through the gateway: all three");

    gateway.switch_to("main").await;
    assert_eq!(read_all(&bootstrap, "users"), ["tom", "laura"], "switched back: the primary's view");
    let (_, clusters) = gateway.admin_call("GET", "/admin/pclusters/v1", Some(VIEWER)).await;
    assert_eq!((clusters["activeCluster"].as_str(), clusters["switchCount"].as_u64()), (Some("main"), Some(2)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn continuous_load_across_four_switches_loses_nothing_and_duplicates_nothing() {
    const RECORDS: usize = 6_000;
    let main = Tansu::start().await;
    let failover = Tansu::start().await;
    create_topic(&main.bootstrap(), "load", 1).await;
    create_topic(&failover.bootstrap(), "load", 1).await;
    let gateway = Arc::new(TestGateway::start_pair(&main.bootstrap(), &failover.bootstrap(), "").await);

    let producer: FutureProducer = client_config(&gateway.bootstrap())
        .set("acks", "all")
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
        let (producer, acked) = (producer.clone(), acked.clone());
        sends.push(tokio::spawn(async move {
            let value = i.to_string();
            let result =
                producer.send(FutureRecord::to("load").key(&value).payload(&value), Duration::from_secs(120)).await;
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

    let mut copies: HashMap<String, usize> = HashMap::new();
    let (on_main, on_failover) = (read_all(&main.bootstrap(), "load"), read_all(&failover.bootstrap(), "load"));
    assert!(!on_main.is_empty() && !on_failover.is_empty(), "traffic reached both clusters");
    for value in on_main.iter().chain(&on_failover) {
        *copies.entry(value.clone()).or_default() += 1;
    }
    let missing: Vec<_> = (0..RECORDS).map(|i| i.to_string()).filter(|v| !copies.contains_key(v)).collect();
    let duplicated: Vec<_> = copies.iter().filter(|(_, n)| **n > 1).map(|(v, _)| v.clone()).collect();
    assert!(
        missing.is_empty(),
        "{} acknowledged records in neither cluster: {:?}",
        missing.len(),
        &missing[..missing.len().min(10)]
    );
    assert!(
        duplicated.is_empty(),
        "{} records in more than one copy: {:?}",
        duplicated.len(),
        &duplicated[..duplicated.len().min(10)]
    );
    assert_eq!(copies.len(), RECORDS);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failover_with_other_broker_ids_and_cluster_id_keeps_the_same_producer_and_consumer_working() {
    let main = Tansu::start().await; // one broker, node id 111
    let failover = MockCluster::new(3).expect("mock cluster"); // brokers 1, 2, 3, its own cluster id
    create_topic(&main.bootstrap(), "orders", 1).await;
    failover.create_topic("orders", 1, 1).expect("topic on failover");
    failover.partition_leader("orders", 0, Some(3)).expect("leader");
    let gateway = TestGateway::start_pair(&main.bootstrap(), &failover.bootstrap_servers(), "").await;
    let port = gateway.port_start;

    let before = raw_metadata(port).await;
    let producer: FutureProducer = client_config(&gateway.bootstrap()).set("acks", "all").create().expect("producer");
    let consumer: StreamConsumer = client_config(&gateway.bootstrap())
        .set("group.id", "orders-app")
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", "10000")
        .create()
        .expect("consumer");
    consumer.subscribe(&["orders"]).expect("subscribe");
    let mut received = Vec::new();
    for i in 0..5 {
        produce(&producer, "orders", &format!("before-{i}")).await;
    }
    while received.len() < 5 {
        received.push(next_value(&consumer).await);
    }

    consumer.commit_consumer_state(rdkafka::consumer::CommitMode::Sync).expect("commit through the gateway");
    // As MirrorMaker 2 would have, the failover holds the primary's records at the same offsets and the
    // group's committed offsets (sync.group.offsets), so the consumer resumes where it was.
    replicate(&main.bootstrap(), &failover.bootstrap_servers(), "orders").await;
    sync_group_offsets(&main.bootstrap(), &failover.bootstrap_servers(), "orders-app", "orders");
    gateway.switch_to("failover").await;
    let after = raw_metadata(port).await;
    for i in 0..5 {
        produce(&producer, "orders", &format!("after-{i}")).await;
    }
    while received.iter().filter(|v| v.starts_with("after-")).count() < 5 {
        received.push(next_value(&consumer).await);
    }
    // Nothing is lost; records may be read again: the two clusters' leader epochs are unrelated, so
    // librdkafka's position validation (KIP-320) after the switch can rewind to auto.offset.reset even with
    // the group offsets synced. A known limit of switching between independent clusters (see README).
    for i in 0..5 {
        assert!(received.contains(&format!("before-{i}")) && received.contains(&format!("after-{i}")), "{received:?}");
    }
    let on_failover = read_all(&failover.bootstrap_servers(), "orders");
    assert_eq!(on_failover.iter().filter(|v| v.starts_with("after-")).count(), 5, "after-* went to the failover");
    assert!(read_all(&main.bootstrap(), "orders").iter().all(|v| v.starts_with("before-")), "and not to the primary");

    // Clients saw one cluster id and the same node ids on both sides, though the backends differ in both.
    assert_eq!(before.cluster_id, after.cluster_id);
    assert_eq!(before.cluster_id.as_deref(), Some(franzgate::gateway::DEFAULT_CLUSTER_ID));
    let ids = |m: &kafka_protocol::messages::MetadataResponse| -> Vec<i32> {
        m.brokers.iter().map(|b| b.node_id.0).collect()
    };
    assert_eq!(ids(&before), vec![0], "tansu's node 111 is virtual node 0");
    let mut after_ids = ids(&after);
    after_ids.sort();
    assert_eq!(after_ids, vec![0, 1, 2], "mock brokers 1,2,3 are virtual nodes 0,1,2");
    let leader = after
        .topics
        .iter()
        .find(|t| t.name.as_ref().map(|n| n.as_str()) == Some("orders"))
        .map(|t| t.partitions[0].leader_id.0);
    assert_eq!(leader, Some(2), "partition led by mock broker 3 = virtual node 2");
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

/// Without MirrorMaker the clusters' offsets are unrelated. A consumer that read 30 records on the primary and
/// commits right after the switch — before a heartbeat tells it its membership is gone, as librdkafka's
/// auto-commit does — and again as it revokes the lost assignment, must not write the primary's positions into
/// the failover's group (tansu would accept both): it rejoins there and reads the failover's own records from
/// the failover's committed offsets (none yet: from the earliest).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_member_of_the_primary_cannot_commit_its_positions_to_the_failover() {
    use rdkafka::consumer::{BaseConsumer, CommitMode};
    let main = Tansu::start().await;
    let failover = Tansu::start().await;
    create_topic(&main.bootstrap(), "events", 1).await;
    create_topic(&failover.bootstrap(), "events", 1).await;
    let gateway = TestGateway::start_pair(&main.bootstrap(), &failover.bootstrap(), "").await;
    let producer: FutureProducer = client_config(&gateway.bootstrap()).set("acks", "all").create().expect("producer");
    for i in 0..30 {
        produce(&producer, "events", &format!("main-{i}")).await;
    }
    let consumer: StreamConsumer = client_config(&gateway.bootstrap())
        .set("group.id", "events-app")
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
    consumer.subscribe(&["events"]).expect("subscribe");
    for i in 0..30 {
        assert_eq!(next_value(&consumer).await, format!("main-{i}"));
    }
    let failover_producer: FutureProducer = client_config(&failover.bootstrap()).create().expect("producer");
    for i in 0..3 {
        produce(&failover_producer, "events", &format!("failover-{i}")).await;
    }

    gateway.switch_to("failover").await;
    // Commits position 30 with the primary's member id; refused (or failed over), never stored on failover.
    let _ = consumer.commit_consumer_state(CommitMode::Sync);
    let committed_on_failover = || {
        let reader: BaseConsumer =
            client_config(&failover.bootstrap()).set("group.id", "events-app").create().expect("reader");
        let mut partition = rdkafka::TopicPartitionList::new();
        partition.add_partition("events", 0);
        let committed = reader.committed_offsets(partition, Duration::from_secs(10)).expect("committed offsets");
        committed.find_partition("events", 0).map(|p| p.offset())
    };
    let primary_position = Some(rdkafka::Offset::Offset(30));
    assert_ne!(committed_on_failover(), primary_position, "the primary's position reached the failover's group");
    // On learning its membership is gone, librdkafka revokes the lost assignment and commits once more, with
    // its member id cleared: refused as well, so the rejoined member starts from the failover's own offsets.
    for i in 0..3 {
        assert_eq!(next_value(&consumer).await, format!("failover-{i}"), "the failover's records, from its offsets");
    }
    consumer.commit_consumer_state(CommitMode::Sync).expect("a member of the failover commits there");
    assert_eq!(committed_on_failover(), Some(rdkafka::Offset::Offset(3)), "the failover's own position");
    // The gateway refused at least one commit (the one above, or the revoke's if a heartbeat came first).
    let metrics = franzgate::admin::client::call_text(&gateway.admin(), "/metrics", ADMIN).await.expect("metrics");
    let fenced = metrics
        .lines()
        .find_map(|l| l.strip_prefix("franzgate_offset_commits_fenced_total "))
        .and_then(|v| v.parse::<u64>().ok());
    assert!(fenced.is_some_and(|n| n >= 1), "commits refused: {fenced:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_api_refusals_change_nothing() {
    let main = Tansu::start().await;
    let failover = Tansu::start().await;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_endpoints_report_liveness_and_readiness() {
    let mut main = Tansu::start().await;
    let failover = Tansu::start().await;
    let gateway = TestGateway::start_pair(&main.bootstrap(), &failover.bootstrap(), "").await;
    for path in ["/health", "/health/live", "/health/ready"] {
        let (status, body) = gateway.admin_call("GET", path, None).await;
        assert_eq!((status, body["status"].as_str()), (200, Some("UP")), "{path}: {body}");
    }
    main.kill().await;
    let (status, body) = gateway.admin_call("GET", "/health/ready", None).await;
    assert_eq!((status, body["activeClusterReachable"].as_bool()), (503, Some(false)), "{body}");
    let (status, _) = gateway.admin_call("GET", "/health/live", None).await;
    assert_eq!(status, 200, "alive though not ready");
    gateway.switch_to("failover").await;
    let (status, _) = gateway.admin_call("GET", "/health/ready", None).await;
    assert_eq!(status, 200, "ready again once the reachable cluster is active");
}
