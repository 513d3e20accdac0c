//! Port-per-broker routing over a 3-broker cluster (librdkafka's mock cluster), one partition led by each
//! broker: the client must reach each leader through that broker's own gateway port.

mod common;

use std::time::Duration;

use common::{TestGateway, client_config};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{FutureProducer, FutureRecord};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_uses_each_brokers_gateway_port_and_produces_to_every_partition() {
    let mock = MockCluster::new(3).expect("mock cluster");
    mock.create_topic("spread", 3, 1).expect("topic");
    for partition in 0..3 {
        // Mock broker ids are 1..=3: partition p is led by broker p + 1.
        mock.partition_leader("spread", partition, Some(partition + 1)).expect("leader");
    }
    let mut gateway = TestGateway::start(&mock.bootstrap_servers(), "").await;
    let start = gateway.port_start;
    let ports = tokio::time::timeout(Duration::from_secs(10), gateway.running.wait_for_ports(3))
        .await
        .expect("the start-up probe discovers all three brokers and opens their ports");
    assert_eq!(ports.into_iter().collect::<Vec<_>>(), vec![start, start + 1, start + 2]);

    let bootstrap = gateway.bootstrap();
    let client: BaseConsumer = client_config(&bootstrap).create().expect("client");
    let metadata = client.fetch_metadata(Some("spread"), Duration::from_secs(10)).expect("metadata");
    let mut brokers: Vec<_> = metadata.brokers().iter().map(|b| (b.id(), b.host().to_string(), b.port())).collect();
    brokers.sort();
    let expected: Vec<_> = (0..3).map(|v| (v, "127.0.0.1".to_string(), i32::from(start) + v)).collect();
    assert_eq!(brokers, expected, "three virtual brokers, each on its own gateway port");
    let leaders: Vec<_> = metadata.topics()[0].partitions().iter().map(|p| (p.id(), p.leader())).collect();
    assert_eq!(leaders, vec![(0, 0), (1, 1), (2, 2)], "backend brokers 1,2,3 are virtual nodes 0,1,2");

    let producer: FutureProducer = client_config(&bootstrap).set("acks", "all").create().expect("producer");
    for i in 0..30 {
        let partition = i % 3;
        let delivery = producer
            .send(FutureRecord::<(), _>::to("spread").partition(partition).payload("x"), Duration::from_secs(10))
            .await
            .map_err(|(e, _)| e)
            .expect("a wrongly routed produce would get NOT_LEADER_OR_FOLLOWER and never be acknowledged");
        assert_eq!(delivery.partition, partition);
    }

    // The records are on the real leaders, read directly from the mock cluster.
    let direct: BaseConsumer = client_config(&mock.bootstrap_servers()).create().expect("direct client");
    for partition in 0..3 {
        let (_, high) = direct.fetch_watermarks("spread", partition, Duration::from_secs(10)).expect("watermarks");
        assert_eq!(high, 10, "partition {partition}");
    }
    let accepted = gateway.running.accepted_per_port();
    for port in [start, start + 1, start + 2] {
        assert!(accepted.get(&port).copied().unwrap_or(0) > 0, "no client connection on {port}: {accepted:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_first_seen_in_metadata_later_gets_its_port_opened() {
    // The start-up probe finds nothing (no broker yet), so only the first port is open.
    let dead = common::free_ports(1);
    let mut gateway = TestGateway::start(&format!("127.0.0.1:{dead}"), "").await;
    let start = gateway.port_start;
    assert_eq!(gateway.running.ports().into_iter().collect::<Vec<_>>(), vec![start]);

    // A client's Metadata response then reveals a 3-broker cluster: its brokers' ports open.
    let mock = MockCluster::new(3).expect("mock cluster");
    let cluster = gateway.running.selector().clusters()[0].clone();
    let brokers: Vec<_> = mock
        .bootstrap_servers()
        .split(',')
        .enumerate()
        .map(|(i, a)| (i as i32 + 1, franzgate_api::topology::BrokerAddress::parse(a).ok()))
        .collect();
    cluster.nodes.observe(brokers);
    let ports =
        tokio::time::timeout(Duration::from_secs(10), gateway.running.wait_for_ports(3)).await.expect("ports open");
    assert_eq!(ports.into_iter().collect::<Vec<_>>(), vec![start, start + 1, start + 2]);
    for port in [start + 1, start + 2] {
        tokio::net::TcpStream::connect(("127.0.0.1", port)).await.expect("the new port accepts connections");
    }
}
