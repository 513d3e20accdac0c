//! The load generators of `benches/load.rs`: librdkafka in this process, or Kafka's perf tools as child
//! processes; topic administration; produce latency at a fixed rate.

use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::DeliveryResult;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer, ProducerContext, ThreadedProducer};
use rdkafka::{ClientContext, Message, Offset, TopicPartitionList};

use super::{Knobs, Tool, die_with_parent, kafka};

pub fn client(bootstrap: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", bootstrap).set("message.timeout.ms", "120000").set("socket.timeout.ms", "30000");
    c
}

pub fn create_topic(rt: &tokio::runtime::Runtime, bootstrap: &str, topic: &str, partitions: i32, rf: i32) {
    let admin: AdminClient<_> = client(bootstrap).create().expect("admin");
    let topics = [NewTopic::new(topic, partitions, TopicReplication::Fixed(rf))];
    for r in rt.block_on(admin.create_topics(&topics, &AdminOptions::new())).expect("create") {
        r.unwrap_or_else(|(t, e)| panic!("create {t}: {e}"));
    }
}

pub fn delete_topic(rt: &tokio::runtime::Runtime, bootstrap: &str, topic: &str) {
    let admin: AdminClient<_> = client(bootstrap).create().expect("admin");
    if let Ok(results) = rt.block_on(admin.delete_topics(&[topic], &AdminOptions::new())) {
        for r in results {
            if let Err((t, e)) = r {
                eprintln!("delete {t}: {e}");
            }
        }
    }
}

/// A rate: (MB/s, records/s); MB = 10^6 bytes.
pub type Rate = (f64, f64);

fn rate(records: f64, size: usize, seconds: f64) -> Rate {
    (records * size as f64 / seconds / 1e6, records / seconds)
}

/// Runs a Kafka perf tool with the full JIT (the launchers default to C1 for quick start-up); its stdout.
fn java_tool(tool: &str, args: &[String]) -> String {
    let out = die_with_parent(
        Command::new(kafka::kafka_bin(tool))
            .args(args)
            .env("KAFKA_OPTS", "-XX:TieredStopAtLevel=4")
            .env("KAFKA_HEAP_OPTS", "-Xms512m -Xmx512m")
            .stdin(Stdio::null()),
    )
    .output()
    .expect("running a Kafka perf tool");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{tool} {args:?} failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// The number before `unit` in `line` ("123.4 records/sec" -> 123.4).
fn number_before(line: &str, unit: &str) -> Option<f64> {
    let before = &line[..line.find(unit)?];
    before.split_whitespace().last()?.trim_start_matches('(').parse().ok()
}

/// Produces `records` of `size` bytes; its rate.
pub fn produce(knobs: &Knobs, bootstrap: &str, topic: &str, size: usize, records: usize) -> Rate {
    match knobs.tool {
        Tool::Java => {
            let args: Vec<String> = [
                "--bootstrap-server",
                bootstrap,
                "--topic",
                topic,
                "--num-records",
                &records.to_string(),
                "--record-size",
                &size.to_string(),
                "--throughput",
                "-1",
                "--command-property",
                &format!("acks={}", knobs.acks),
            ]
            .iter()
            .map(|s| s.to_string())
            .collect();
            let out = java_tool("kafka-producer-perf-test", &args);
            // The summary: "N records sent, R records/sec (M MB/sec), ... avg latency, ...".
            let summary = out
                .lines()
                .rev()
                .find(|l| l.contains("records sent") && l.contains("avg latency"))
                .unwrap_or_else(|| panic!("no summary in the producer's output:\n{out}"));
            let sent = number_before(summary, "records sent").unwrap_or(0.0);
            assert_eq!(sent as usize, records, "every record sent and acknowledged: {summary}");
            let per_second = number_before(summary, "records/sec").expect("records/sec");
            (per_second * size as f64 / 1e6, per_second)
        }
        Tool::Rdkafka => {
            let seconds = rdkafka_produce(bootstrap, topic, size, &knobs.acks, records);
            rate(records as f64, size, seconds)
        }
    }
}

/// Consumes `records` of `size` bytes from the beginning of `topic`; its rate.
pub fn consume(knobs: &Knobs, bootstrap: &str, topic: &str, size: usize, records: usize, partitions: i32) -> Rate {
    match knobs.tool {
        Tool::Java => {
            let args: Vec<String> = [
                "--bootstrap-server",
                bootstrap,
                "--topic",
                topic,
                "--num-records",
                &records.to_string(),
                "--group",
                &format!("{topic}-reader"),
                "--timeout",
                "60000",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect();
            let out = java_tool("kafka-consumer-perf-test", &args);
            // A header line and a values line, comma-separated; fetch.* excludes the group join.
            let mut lines = out.lines().filter(|l| l.contains(','));
            let header: Vec<&str> = lines.next().unwrap_or("").split(',').map(str::trim).collect();
            let values: Vec<&str> = lines.next().unwrap_or("").split(',').map(str::trim).collect();
            let field = |name: &str| -> f64 {
                header
                    .iter()
                    .position(|h| *h == name)
                    .and_then(|i| values.get(i))
                    .and_then(|v| v.parse().ok())
                    .unwrap_or_else(|| panic!("no {name} in the consumer's output:\n{out}"))
            };
            let consumed = field("data.consumed.in.nMsg");
            assert!(consumed as usize >= records, "only {consumed} of {records} records consumed:\n{out}");
            let per_second = field("fetch.nMsg.sec");
            (per_second * size as f64 / 1e6, per_second)
        }
        Tool::Rdkafka => {
            let seconds = rdkafka_consume(bootstrap, topic, partitions, records)
                .unwrap_or_else(|got| panic!("only {got} of {records} records from {topic} within 60 s"));
            rate(records as f64, size, seconds)
        }
    }
}

/// Counts deliveries and failures, and records latency when the opaque carries a send time.
#[derive(Default)]
struct Deliveries {
    ok: AtomicUsize,
    failed: AtomicUsize,
    latencies: Mutex<Vec<Duration>>,
}

/// Send times travel as the delivery opaque: nanoseconds since this instant, plus one (0 = not timed).
static EPOCH: OnceLock<Instant> = OnceLock::new();

fn stamp() -> usize {
    EPOCH.get_or_init(Instant::now).elapsed().as_nanos() as usize + 1
}

struct Ctx(Arc<Deliveries>);
impl ClientContext for Ctx {}
impl ProducerContext for Ctx {
    type DeliveryOpaque = usize;
    fn delivery(&self, result: &DeliveryResult<'_>, sent: usize) {
        if result.is_err() {
            self.0.failed.fetch_add(1, Ordering::Relaxed);
            return;
        }
        self.0.ok.fetch_add(1, Ordering::Relaxed);
        if sent > 0 {
            let elapsed = Duration::from_nanos((stamp() - sent) as u64);
            if let Ok(mut l) = self.0.latencies.lock() {
                l.push(elapsed);
            }
        }
    }
}

/// librdkafka (its default batching, linger.ms=5): produces `records` of `size` bytes; the seconds taken.
fn rdkafka_produce(bootstrap: &str, topic: &str, size: usize, acks: &str, records: usize) -> f64 {
    let payload = vec![b'x'; size];
    let deliveries = Arc::new(Deliveries::default());
    let producer: BaseProducer<Ctx> =
        client(bootstrap).set("acks", acks).create_with_context(Ctx(deliveries.clone())).expect("producer");
    let started = Instant::now();
    let mut sent = 0;
    while sent < records {
        match producer.send(BaseRecord::<(), [u8], usize>::with_opaque_to(topic, 0).payload(&payload)) {
            Ok(()) => sent += 1,
            Err(_) => {
                producer.poll(Duration::from_millis(1));
            }
        }
    }
    producer.flush(Duration::from_secs(120)).expect("flush");
    let seconds = started.elapsed().as_secs_f64();
    assert_eq!(deliveries.failed.load(Ordering::Relaxed), 0, "deliveries failed");
    assert_eq!(deliveries.ok.load(Ordering::Relaxed), records, "every record acknowledged");
    seconds
}

/// librdkafka: reads `records` from every partition of `topic` (assigned, no group); the seconds taken, or how
/// many records arrived before a 60 s deadline.
fn rdkafka_consume(bootstrap: &str, topic: &str, partitions: i32, records: usize) -> Result<f64, usize> {
    let consumer: BaseConsumer = client(bootstrap).set("group.id", "load").create().expect("consumer");
    let mut assignment = TopicPartitionList::new();
    for p in 0..partitions {
        assignment.add_partition_offset(topic, p, Offset::Beginning).expect("offset");
    }
    let started = Instant::now();
    consumer.assign(&assignment).expect("assign");
    let deadline = started + Duration::from_secs(60);
    let mut got = 0;
    while got < records && Instant::now() < deadline {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(50)) {
            debug_assert!(m.payload().is_some());
            got += 1;
        }
    }
    if got < records { Err(got) } else { Ok(started.elapsed().as_secs_f64()) }
}

/// Produces `size`-byte records at `rate` records/s for `seconds` with one producer in the latency
/// configuration (linger.ms=0; a `ThreadedProducer` serves delivery reports on its own thread, so a report's
/// time is the acknowledgement's); the sorted delivery latencies.
pub fn latency(bootstrap: &str, topic: &str, acks: &str, size: usize, rate: f64, seconds: f64) -> Vec<Duration> {
    let deliveries = Arc::new(Deliveries::default());
    let producer: ThreadedProducer<Ctx> = client(bootstrap)
        .set("acks", acks)
        .set("linger.ms", "0")
        .create_with_context(Ctx(deliveries.clone()))
        .expect("producer");
    let payload = vec![b'y'; size];
    let total = (rate * seconds) as usize;
    let started = Instant::now();
    // Paced in 1 ms slices, sleeping between them: a spinning pacer would take a whole core from the broker
    // and the gateway on a 2-core machine and measure its own interference.
    let mut sent = 0usize;
    while sent < total {
        let due = ((started.elapsed().as_secs_f64() * rate) as usize).min(total);
        while sent < due {
            let record = BaseRecord::<(), [u8], usize>::with_opaque_to(topic, stamp()).payload(&payload);
            match producer.send(record) {
                Ok(()) => sent += 1,
                Err(_) => std::thread::sleep(Duration::from_millis(1)),
            }
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    producer.flush(Duration::from_secs(60)).expect("flush");
    assert_eq!(deliveries.failed.load(Ordering::Relaxed), 0, "deliveries failed");
    let mut l = deliveries.latencies.lock().map(|l| l.clone()).unwrap_or_default();
    l.sort();
    l
}

/// The `p` quantile (0..1) of sorted latencies, in ms.
pub fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize].as_secs_f64() * 1000.0
}

/// Writes one 1-byte record to every partition of a topic just created and waits for the acknowledgements
/// (acks=all): on a 3-broker cluster the leaders learn of a new topic a moment after CreateTopics returns, and
/// records sent before that wait for a metadata refresh (seconds of stall measured as throughput or latency).
pub fn prime_topic(bootstrap: &str, topic: &str, partitions: i32) {
    let deliveries = Arc::new(Deliveries::default());
    let producer: BaseProducer<Ctx> =
        client(bootstrap).set("acks", "all").create_with_context(Ctx(deliveries.clone())).expect("producer");
    for p in 0..partitions {
        let record = BaseRecord::<(), [u8], usize>::with_opaque_to(topic, 0).partition(p).payload(b"p");
        producer.send(record).map_err(|(e, _)| e).expect("queue a priming record");
    }
    producer.flush(Duration::from_secs(60)).expect("flush the priming records");
    assert_eq!(deliveries.ok.load(Ordering::Relaxed), partitions as usize, "every partition's leader acknowledged");
}
