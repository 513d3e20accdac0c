//! Backend faults: a slow broker, brokers answering with errors, a broker going down and coming back,
//! leadership moving, a connection reset in the middle of a response, and a broker process killed and
//! restarted. In every case the client gets retriable errors (or a closed connection it reconnects from) and
//! recovers, no session hangs, and the gateway keeps serving.
//!
//! librdkafka's mock cluster injects the faults it knows; the reset mid-response comes from a forwarding
//! front that cuts one connection with a TCP RST (it never answers anything itself) before a real Apache Kafka
//! broker; the kill is a real Kafka broker killed with SIGKILL and started again on its ports and data.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::{
    ClusterSpec, KafkaCluster, TestGateway, api_versions_v0, assert_gateway_serves, client_config, read_frame,
};
use rdkafka::ClientConfig;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Produces `values` to partition `partition` of `topic` with acks=all; panics on a failed delivery.
async fn produce_all(config: &ClientConfig, topic: &str, partition: i32, values: &[String]) {
    let producer: FutureProducer = config.clone().set("acks", "all").create().expect("producer");
    for value in values {
        producer
            .send(FutureRecord::<(), _>::to(topic).partition(partition).payload(value), Duration::from_secs(60))
            .await
            .map_err(|(e, _)| e)
            .expect("delivered despite the fault");
    }
}

fn values(prefix: &str, count: usize) -> Vec<String> {
    (0..count).map(|i| format!("{prefix}-{i}")).collect()
}

async fn metric(gateway: &TestGateway, name: &str) -> f64 {
    let text = franzgate::admin::client::call_text(&gateway.admin(), "/metrics", ("admin", "conduktor"))
        .await
        .expect("metrics");
    text.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|v| v.trim().parse().ok()))
        .unwrap_or_else(|| panic!("{name} in /metrics"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_broker_closes_the_session_after_the_request_timeout_instead_of_hanging_it() {
    let mock = MockCluster::new(1).expect("mock cluster");
    let gateway = TestGateway::start_full(
        &mock.bootstrap_servers(),
        "  request_timeout_ms: 1000\n",
        "",
        franzgate::FilterRegistry::with_builtins(),
    )
    .await;
    mock.broker_round_trip_time(1, Duration::from_secs(4)).expect("rtt");
    let mut client = TcpStream::connect(("127.0.0.1", gateway.port_start)).await.expect("connect");
    client.write_all(&api_versions_v0(5)).await.expect("send");
    let answer = tokio::time::timeout(Duration::from_secs(20), read_frame(&mut client)).await;
    assert!(matches!(answer, Ok(None)), "the session was closed, not left hanging: {answer:?}");
    assert_eq!(metric(&gateway, "franzgate_backend_request_timeouts_total").await, 1.0);

    // The broker recovers; so does service, on new connections.
    mock.broker_round_trip_time(1, Duration::ZERO).expect("rtt");
    assert_gateway_serves(gateway.port_start).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retriable_errors_from_the_broker_reach_the_client_which_retries_and_delivers() {
    let mock = MockCluster::new(1).expect("mock cluster");
    mock.create_topic("flaky", 1, 1).expect("topic");
    let gateway = TestGateway::start(&mock.bootstrap_servers(), "").await;
    let errors = [RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION; 3];
    mock.request_errors(RDKafkaApiKey::Produce, &errors);
    let sent = values("flaky", 5);
    produce_all(&client_config(&gateway.bootstrap()), "flaky", 0, &sent).await;
    assert_eq!(common::read_all(&gateway.bootstrap(), "flaky"), sent);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_down_then_up_and_leadership_moving_lose_nothing() {
    let mock = MockCluster::new(3).expect("mock cluster");
    mock.create_topic("moving", 1, 3).expect("topic");
    mock.partition_leader("moving", 0, Some(1)).expect("leader");
    let gateway = TestGateway::start(&mock.bootstrap_servers(), "").await;
    let config = client_config(&gateway.bootstrap());
    let first = values("before", 5);
    produce_all(&config, "moving", 0, &first).await;

    // Leadership moves to broker 2: the client learns it through the gateway's metadata and follows.
    mock.partition_leader("moving", 0, Some(2)).expect("leader");
    let second = values("moved", 5);
    produce_all(&config, "moving", 0, &second).await;

    // Broker 2 goes down with the producer mid-stream, and comes back; deliveries wait and succeed.
    let producer: FutureProducer = config.clone().set("acks", "all").create().expect("producer");
    mock.broker_down(2).expect("down");
    let third = values("outage", 5);
    let sends: Vec<_> = third
        .iter()
        .map(|v| producer.send(FutureRecord::<(), _>::to("moving").partition(0).payload(v), Duration::from_secs(60)))
        .collect();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_gateway_serves(gateway.port_start).await;
    mock.broker_up(2).expect("up");
    for send in sends {
        send.await.map_err(|(e, _)| e).expect("delivered after the broker came back");
    }
    let all: Vec<String> = first.into_iter().chain(second).chain(third).collect();
    assert_eq!(common::read_all(&gateway.bootstrap(), "moving"), all);
}

/// Reads `count` records of partition 0 of `topic` from the start. Unlike `common::read_all`, transient errors
/// (a connection lost, "all brokers down") are what this test provokes, so they are tolerated: the consumer
/// reconnects and carries on.
fn read_through_faults(bootstrap: &str, topic: &str, count: usize) -> Vec<String> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::{Message, Offset, TopicPartitionList};
    let consumer: BaseConsumer = client_config(bootstrap).set("group.id", "faults").create().expect("consumer");
    let mut assignment = TopicPartitionList::new();
    assignment.add_partition_offset(topic, 0, Offset::Beginning).expect("offset");
    consumer.assign(&assignment).expect("assign");
    let mut values = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while values.len() < count && std::time::Instant::now() < deadline {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(200)) {
            values.push(String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned());
        }
    }
    values
}

/// Forwards connections on `port` to `target`; the first response larger than 64 KiB is cut halfway with a TCP
/// reset.
async fn cutting_front(port: u16, target: u16) -> Arc<AtomicUsize> {
    let listener = TcpListener::bind(("127.0.0.1", port)).await.expect("bind");
    let cuts = Arc::new(AtomicUsize::new(0));
    let counter = cuts.clone();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let Ok(server) = TcpStream::connect(("127.0.0.1", target)).await else { continue };
            // Linger 0: closing the socket sends a reset, not a FIN.
            let _ = client.set_zero_linger();
            let counter = counter.clone();
            tokio::spawn(async move {
                let (mut client_read, mut client_write) = client.into_split();
                let (mut server_read, mut server_write) = server.into_split();
                let upstream = tokio::spawn(async move { tokio::io::copy(&mut client_read, &mut server_write).await });
                let mut buffer = vec![0u8; 256 * 1024];
                // One whole response at a time: its length, then its body.
                while let Ok(len) = server_read.read_i32().await {
                    let len = usize::try_from(len).unwrap_or(0);
                    if len > buffer.len() {
                        buffer.resize(len, 0);
                    }
                    if server_read.read_exact(&mut buffer[..len]).await.is_err() {
                        break;
                    }
                    if len > 64 * 1024 && counter.fetch_add(1, Ordering::SeqCst) == 0 {
                        let _ = client_write.write_all(&(len as i32).to_be_bytes()).await;
                        let _ = client_write.write_all(&buffer[..len / 2]).await;
                        break;
                    }
                    if client_write.write_all(&(len as i32).to_be_bytes()).await.is_err()
                        || client_write.write_all(&buffer[..len]).await.is_err()
                    {
                        break;
                    }
                }
                upstream.abort();
            });
        }
    });
    cuts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_reset_in_the_middle_of_a_response_is_recovered_from() {
    // The broker advertises the front, so every connection to it, the gateway's included, crosses the front.
    let front = common::free_port();
    let broker = KafkaCluster::start_async(ClusterSpec::new("cut", &[1]).advertising(1, front)).await;
    let cuts = cutting_front(front, broker.port(1)).await;
    let direct = format!("127.0.0.1:{front}");
    common::create_topic(&direct, "big", 1).await;
    // Large records, so a Fetch response is large enough to be cut.
    let sent: Vec<String> = (0..20).map(|i| format!("{i:04}-{}", "x".repeat(20_000))).collect();
    produce_all(&client_config(&direct), "big", 0, &sent).await;

    let gateway = TestGateway::start(&direct, "").await;
    let read = read_through_faults(&gateway.bootstrap(), "big", sent.len());
    assert_eq!(cuts.load(Ordering::SeqCst).min(1), 1, "a response was cut mid-way");
    assert_eq!(read.len(), sent.len(), "every record read despite the reset");
    assert_eq!(read, sent);
    assert_gateway_serves(gateway.port_start).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_killed_and_restarted_is_reconnected_to_and_the_gateway_never_exits() {
    let broker = Arc::new(common::own_kafka("killed").await);
    let gateway = TestGateway::start(&broker.bootstrap(), "").await;
    let config = client_config(&gateway.bootstrap());
    common::create_topic(&gateway.bootstrap(), "survivor", 1).await;
    let first = values("first", 5);
    produce_all(&config, "survivor", 0, &first).await;

    let killed = broker.clone();
    tokio::task::spawn_blocking(move || killed.kill(1)).await.expect("kill");
    // While the broker is gone the gateway answers what it can itself, closes sessions that need the backend,
    // and keeps accepting.
    let mut stream = TcpStream::connect(("127.0.0.1", gateway.port_start)).await.expect("gateway still accepts");
    stream.write_all(&api_versions_v0(9)).await.expect("send");
    let answer = tokio::time::timeout(Duration::from_secs(20), read_frame(&mut stream)).await;
    assert!(matches!(answer, Ok(None)), "no backend: the session closes rather than hangs");

    // The broker comes back on the same ports and data (log recovery after the crash), and the same client
    // configuration works through the gateway; the records acknowledged before the crash are still there.
    let restarted = broker.clone();
    tokio::task::spawn_blocking(move || restarted.restart(1)).await.expect("restart");
    let after = values("after", 5);
    produce_all(&config, "survivor", 0, &after).await;
    let all: Vec<String> = first.into_iter().chain(after).collect();
    assert_eq!(common::read_all(&gateway.bootstrap(), "survivor"), all);
}
