//! The cluster kit itself, against Apache Kafka: a 3-node KRaft cluster with chosen node ids serves metadata,
//! survives a killed broker and takes it back, and MirrorMaker 2 copies a topic to a second cluster.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::kafka::{ClusterSpec, KafkaCluster, MirrorMaker, read_topic, run_tool};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord};

fn broker_ids(cluster: &KafkaCluster) -> Vec<i32> {
    let consumer: BaseConsumer = cluster.client_config().create().expect("client");
    let md = consumer.fetch_metadata(None, Duration::from_secs(10)).expect("metadata");
    let mut ids: Vec<i32> = md.brokers().iter().map(|b| b.id()).collect();
    ids.sort_unstable();
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_three_node_cluster_loses_and_regains_a_broker_and_mirror_maker_copies_to_a_second() {
    let (main, failover) = tokio::join!(
        KafkaCluster::start_async(ClusterSpec::new("kit-main", &[7, 8, 9])),
        KafkaCluster::start_async(ClusterSpec::new("kit-failover", &[21]))
    );
    let main = Arc::new(main);
    assert_eq!(broker_ids(&main), [7, 8, 9]);
    assert_eq!(broker_ids(&failover), [21]);

    let bootstrap = main.bootstrap();
    let args = [
        "--bootstrap-server",
        &bootstrap,
        "--create",
        "--topic",
        "kit",
        "--partitions",
        "3",
        "--replication-factor",
        "3",
    ];
    run_tool("kafka-topics", &args);
    let producer: FutureProducer = main.client_config().set("acks", "all").create().expect("producer");
    for i in 0..10 {
        let payload = format!("r{i}");
        producer
            .send(FutureRecord::<(), _>::to("kit").payload(&payload), Duration::from_secs(30))
            .await
            .expect("delivered");
    }
    let mm2 = MirrorMaker::start(&MirrorMaker::seed_properties(
        &main.bootstrap(),
        &failover.bootstrap(),
        "refresh.topics.interval.seconds=2\n",
    ));

    let m = main.clone();
    tokio::task::spawn_blocking(move || m.kill(8)).await.expect("kill");
    let consumer: BaseConsumer = main.client_config().create().expect("client");
    let deadline = Instant::now() + Duration::from_secs(60);
    while consumer
        .fetch_metadata(None, Duration::from_secs(5))
        .expect("metadata with a broker down")
        .brokers()
        .iter()
        .any(|b| b.id() == 8)
    {
        assert!(Instant::now() < deadline, "broker 8 still listed after its kill");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let m = main.clone();
    tokio::task::spawn_blocking(move || m.restart(8)).await.expect("restart");
    assert_eq!(broker_ids(&main), [7, 8, 9]);

    let mut copied = read_topic(&failover, "kit", 10, Duration::from_secs(120)).await;
    copied.sort();
    let mut want: Vec<String> = (0..10).map(|i| format!("r{i}")).collect();
    want.sort();
    assert_eq!(copied, want, "MirrorMaker 2 copied every record once:\n{}", mm2.log_tail());
}
