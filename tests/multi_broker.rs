//! Port-per-broker routing over a real 3-node Apache Kafka cluster (node ids 11, 12, 13), one partition led by
//! each node: the client must reach each leader through that broker's own gateway port, for produce and fetch.

mod common;

use std::sync::OnceLock;
use std::time::Duration;

use common::{ClusterSpec, KafkaCluster, TestGateway, client_config, unique};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord};

/// Node ids far from the virtual ids 0, 1, 2 the gateway presents, so a leaked backend id would show.
const NODES: [i32; 3] = [11, 12, 13];

/// The binary's 3-node cluster.
async fn three_nodes() -> &'static KafkaCluster {
    static CLUSTER: OnceLock<KafkaCluster> = OnceLock::new();
    common::kafka::shared(&CLUSTER, || ClusterSpec::new("three", &NODES)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_uses_each_brokers_gateway_port_and_produces_to_every_partition() {
    let kafka = three_nodes().await;
    let topic = unique("spread");
    kafka.create_topic_led_by_each_node(&topic).await;
    let mut gateway = TestGateway::start(&kafka.bootstrap(), "").await;
    let start = gateway.port_start;
    let ports = tokio::time::timeout(Duration::from_secs(10), gateway.running.wait_for_ports(3))
        .await
        .expect("the start-up probe discovers all three brokers and opens their ports");
    assert_eq!(ports.into_iter().collect::<Vec<_>>(), vec![start, start + 1, start + 2]);

    let bootstrap = gateway.bootstrap();
    let client: BaseConsumer = client_config(&bootstrap).create().expect("client");
    let metadata = client.fetch_metadata(Some(&topic), Duration::from_secs(10)).expect("metadata");
    let mut brokers: Vec<_> = metadata.brokers().iter().map(|b| (b.id(), b.host().to_string(), b.port())).collect();
    brokers.sort();
    let expected: Vec<_> = (0..3).map(|v| (v, "127.0.0.1".to_string(), i32::from(start) + v)).collect();
    assert_eq!(brokers, expected, "three virtual brokers, each on its own gateway port");
    let leaders: Vec<_> = metadata.topics()[0].partitions().iter().map(|p| (p.id(), p.leader())).collect();
    assert_eq!(leaders, vec![(0, 0), (1, 1), (2, 2)], "backend nodes 11,12,13 are virtual nodes 0,1,2");

    let producer: FutureProducer = client_config(&bootstrap).set("acks", "all").create().expect("producer");
    for i in 0..30 {
        let partition = i % 3;
        let value = format!("{partition}-{}", i / 3);
        let delivery = producer
            .send(FutureRecord::<(), _>::to(&topic).partition(partition).payload(&value), Duration::from_secs(10))
            .await
            .map_err(|(e, _)| e)
            .expect("a wrongly routed produce would get NOT_LEADER_OR_FOLLOWER and never be acknowledged");
        assert_eq!(delivery.partition, partition);
    }

    // The records are on the real leaders, read directly from the cluster.
    let direct: BaseConsumer = kafka.client_config().create().expect("direct client");
    for partition in 0..3 {
        let (_, high) = direct.fetch_watermarks(&topic, partition, Duration::from_secs(10)).expect("watermarks");
        assert_eq!(high, 10, "partition {partition} on node {}", NODES[partition as usize]);
    }
    // Fetches reach each leader through its port too: every partition reads back in order through the gateway.
    let config = client_config(&bootstrap);
    let read = {
        let topic = topic.clone();
        tokio::task::spawn_blocking(move || {
            common::kafka::read_topic_blocking(config, &topic, 30, Duration::from_secs(30))
        })
        .await
        .expect("reader")
    };
    let expected: Vec<String> = (0..3).flat_map(|p| (0..10).map(move |i| format!("{p}-{i}"))).collect();
    assert_eq!(read, expected, "each partition read from its leader through the gateway");
    let accepted = gateway.running.accepted_per_port();
    for port in [start, start + 1, start + 2] {
        assert!(accepted.get(&port).copied().unwrap_or(0) > 0, "no client connection on {port}: {accepted:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_first_seen_in_metadata_later_gets_its_port_opened() {
    // The start-up probe finds nothing (no broker at the bootstrap address), so only the first port is open.
    let dead = common::free_ports(1);
    let mut gateway = TestGateway::start(&format!("127.0.0.1:{dead}"), "").await;
    let start = gateway.port_start;
    assert_eq!(gateway.running.ports().into_iter().collect::<Vec<_>>(), vec![start]);

    // Metadata then reveals the 3-node cluster (as a client's Metadata response would): its brokers' ports open.
    let kafka = three_nodes().await;
    let cluster = gateway.running.selector().clusters()[0].clone();
    let brokers: Vec<_> = NODES
        .iter()
        .map(|&id| {
            let address = format!("127.0.0.1:{}", kafka.port(id));
            (id, franzgate_api::topology::BrokerAddress::parse(&address).ok())
        })
        .collect();
    cluster.nodes.observe(brokers);
    let ports =
        tokio::time::timeout(Duration::from_secs(10), gateway.running.wait_for_ports(3)).await.expect("ports open");
    assert_eq!(ports.into_iter().collect::<Vec<_>>(), vec![start, start + 1, start + 2]);
    for port in [start + 1, start + 2] {
        tokio::net::TcpStream::connect(("127.0.0.1", port)).await.expect("the new port accepts connections");
        common::assert_gateway_serves(port).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fewer_gateway_ports_than_brokers_is_reported_loudly() {
    let kafka = three_nodes().await;
    let (port, http) = (common::free_ports(2), common::free_ports(1));
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_franzgate"))
        .env_clear()
        .env("KAFKA_BOOTSTRAP_SERVERS", kafka.bootstrap())
        .env("GATEWAY_BIND_HOST", "127.0.0.1")
        .env("GATEWAY_ADVERTISED_HOST", "127.0.0.1")
        .env("GATEWAY_PORT_START", port.to_string())
        .env("GATEWAY_PORT_COUNT", "2")
        .env("GATEWAY_HTTP_PORT", http.to_string())
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start franzgate");
    let stdout = child.stdout.take().expect("stdout");
    let needle = "more brokers than gateway.port_count";
    match common::await_log_line(stdout, needle, Duration::from_secs(60)).await {
        Ok(line) => assert!(line.contains("brokers=3") && line.contains("port_count=2"), "{line}"),
        Err(seen) => panic!("no warning about the third broker; the gateway said:\n{}", seen.join("\n")),
    }
}
