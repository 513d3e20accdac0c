//! Kafka's command-line tools and a plain topic reader, for the cluster kit's users.

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};

use super::{KafkaCluster, kafka_bin};

/// Runs a Kafka command-line tool to completion and returns its standard output; panics with its output when
/// it fails.
pub fn run_tool(tool: &str, args: &[&str]) -> String {
    let out = Command::new(kafka_bin(tool)).args(args).stdin(Stdio::null()).output().expect("running a Kafka tool");
    assert!(
        out.status.success(),
        "{tool} {args:?} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Reads `topic` on `cluster` from the beginning of every partition until `expected` records arrived or
/// `timeout` passed (then returns what it has); waits for the topic to exist. Payloads as strings, in
/// partition order then offset order.
pub async fn read_topic(cluster: &KafkaCluster, topic: &str, expected: usize, timeout: Duration) -> Vec<String> {
    let config = cluster.client_config();
    let topic = topic.to_string();
    tokio::task::spawn_blocking(move || read_topic_blocking(config, &topic, expected, timeout))
        .await
        .expect("reader thread")
}

/// [`read_topic`] with any client settings (e.g. through a gateway), blocking.
pub fn read_topic_blocking(mut config: ClientConfig, topic: &str, expected: usize, timeout: Duration) -> Vec<String> {
    use rdkafka::{Message, Offset, TopicPartitionList};
    let deadline = Instant::now() + timeout;
    let consumer: BaseConsumer =
        config.set("group.id", "franzgate-kit-reader").set("enable.auto.commit", "false").create().expect("reader");
    let partitions = loop {
        let md = consumer.fetch_metadata(Some(topic), Duration::from_secs(5));
        let count =
            md.ok().and_then(|md| md.topics().first().filter(|t| t.error().is_none()).map(|t| t.partitions().len()));
        match count {
            Some(n) if n > 0 => break n,
            _ if Instant::now() > deadline => return Vec::new(),
            _ => std::thread::sleep(Duration::from_millis(250)),
        }
    };
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p as i32, Offset::Beginning).expect("partition");
    }
    consumer.assign(&tpl).expect("assign");
    let mut by_partition: BTreeMap<i32, Vec<String>> = BTreeMap::new();
    while by_partition.values().map(Vec::len).sum::<usize>() < expected && Instant::now() < deadline {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(200)) {
            let text = m.payload().map(|p| String::from_utf8_lossy(p).into_owned()).unwrap_or_default();
            by_partition.entry(m.partition()).or_default().push(text);
        }
    }
    by_partition.into_values().flatten().collect()
}
