//! A real Apache Kafka broker (the binary's shared 1-node cluster) behind the gateway, driven by librdkafka (the `rdkafka` crate): topics, 10,000 records
//! with acks=all, consumption by assignment and by consumer group, and metadata that shows only the gateway.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::{TestGateway, client_config, create_topic, shared_cluster, unique};
use rdkafka::consumer::{BaseConsumer, Consumer, StreamConsumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Message, Offset, TopicPartitionList};

const RECORDS: usize = 10_000;
const PARTITIONS: i32 = 2;

async fn produce_all(bootstrap: &str, topic: &str) {
    let producer: FutureProducer =
        client_config(bootstrap).set("acks", "all").set("linger.ms", "5").create().expect("producer");
    let sends: Vec<_> = (0..RECORDS)
        .map(|i| {
            let value = i.to_string();
            let key = (i % 7).to_string();
            let producer = producer.clone();
            let topic = topic.to_string();
            async move {
                producer
                    .send(FutureRecord::to(&topic).key(&key).payload(&value), Duration::from_secs(30))
                    .await
                    .map_err(|(e, _)| e)
            }
        })
        .collect();
    for result in futures::future::join_all(sends).await {
        result.expect("acknowledged with acks=all");
    }
}

/// Collects `RECORDS` values per partition in the order they were consumed.
async fn consume_all(consumer: &StreamConsumer) -> HashMap<i32, Vec<usize>> {
    let mut seen: HashMap<i32, Vec<usize>> = HashMap::new();
    let mut total = 0;
    while total < RECORDS {
        let message = tokio::time::timeout(Duration::from_secs(30), consumer.recv())
            .await
            .expect("records keep arriving")
            .expect("consume without error");
        let value = std::str::from_utf8(message.payload().unwrap_or_default()).expect("utf8");
        seen.entry(message.partition()).or_default().push(value.parse().expect("number"));
        total += 1;
    }
    seen
}

fn assert_complete_and_ordered(seen: &HashMap<i32, Vec<usize>>) {
    let mut all: Vec<usize> = seen.values().flatten().copied().collect();
    all.sort_unstable();
    assert_eq!(all, (0..RECORDS).collect::<Vec<_>>(), "every record exactly once");
    for (partition, values) in seen {
        assert!(values.windows(2).all(|w| w[0] < w[1]), "partition {partition} out of order");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_records_round_trip_in_order_through_the_gateway() {
    let kafka = shared_cluster().await;
    let gateway = TestGateway::start(&kafka.bootstrap(), "").await;
    let bootstrap = gateway.bootstrap();
    let orders = unique("orders");
    create_topic(&bootstrap, &orders, PARTITIONS).await;
    produce_all(&bootstrap, &orders).await;

    // By assignment.
    let consumer: StreamConsumer = client_config(&bootstrap)
        .set("group.id", unique("unused-assign"))
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let mut assignment = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        assignment.add_partition_offset(&orders, p, Offset::Beginning).expect("offset");
    }
    consumer.assign(&assignment).expect("assign");
    assert_complete_and_ordered(&consume_all(&consumer).await);

    // By consumer group (JoinGroup/SyncGroup/OffsetCommit through the gateway's coordinator rewrite).
    let grouped: StreamConsumer = client_config(&bootstrap)
        .set("group.id", unique("orders-readers"))
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", "10000")
        .create()
        .expect("group consumer");
    grouped.subscribe(&[orders.as_str()]).expect("subscribe");
    assert_complete_and_ordered(&consume_all(&grouped).await);
    grouped.commit_consumer_state(rdkafka::consumer::CommitMode::Sync).expect("commit through the gateway");
    let committed = grouped.committed(Duration::from_secs(10)).expect("committed offsets");
    let total: i64 = committed.elements().iter().map(|e| e.offset().to_raw().unwrap_or(0)).sum();
    assert_eq!(total, RECORDS as i64, "group offsets committed for every record");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_lists_topics_and_shows_only_gateway_addresses() {
    let kafka = shared_cluster().await;
    let gateway = TestGateway::start(&kafka.bootstrap(), "").await;
    let bootstrap = gateway.bootstrap();
    let (listed_a, listed_b) = (unique("listed-a"), unique("listed-b"));
    create_topic(&bootstrap, &listed_a, 1).await;
    create_topic(&bootstrap, &listed_b, 3).await;

    // Kafka answers CreateTopics once the controller has the topics; the broker's metadata lists them a
    // moment later (and a fresh partition has no leader for that moment), so wait for both to be complete.
    let client: BaseConsumer = client_config(&bootstrap).create().expect("client");
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    let metadata = loop {
        let metadata = client.fetch_metadata(None, Duration::from_secs(10)).expect("metadata");
        let complete = |name: &str| {
            metadata.topics().iter().any(|t| t.name() == name && t.partitions().iter().all(|p| p.leader() >= 0))
        };
        if (complete(&listed_a) && complete(&listed_b)) || std::time::Instant::now() > deadline {
            break metadata;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let topics: Vec<_> = metadata.topics().iter().map(|t| t.name().to_string()).collect();
    assert!(topics.contains(&listed_a) && topics.contains(&listed_b), "{topics:?}");
    let listed_b = metadata.topics().iter().find(|t| t.name() == listed_b).expect("listed-b");
    assert_eq!(listed_b.partitions().len(), 3);

    assert!(!metadata.brokers().is_empty());
    for b in metadata.brokers() {
        assert_eq!(b.host(), "127.0.0.1");
        assert_eq!(b.port(), i32::from(gateway.port_start), "advertised the gateway's port, not Kafka's");
        assert_eq!(b.id(), 0, "Kafka's node id 1 is presented as virtual node 0");
    }
    for p in listed_b.partitions() {
        assert_eq!(p.leader(), 0, "partition leaders use virtual ids");
    }
    assert_ne!(kafka.port(1), gateway.port_start);
}
