//! Switch latency and stranded records, unplanned and planned, under a steady produce load. Two Apache Kafka
//! clusters (main: nodes 1, 2, 3; failover: nodes 4, 5, 6), MirrorMaker 2 copying main -> failover, a gateway in
//! front, and a librdkafka producer (acks=all, its defaults otherwise) writing 300 records/s through it, each
//! with a unique key, from start to end. A benchmark, not a test: it prints, it asserts nothing about time.
//!
//! The cases: switches main -> failover alternating `?to=failover` (unplanned, the default mode) and
//! `?to=failover&mode=planned&timeout=60s`, [`PER_MODE`] of each. Only main -> failover switches are counted:
//! MirrorMaker copies main -> failover only, so a planned switch back could never see main catch up. Each is
//! followed, [`SPACING`] later, by an unplanned switch back to main, not counted (nothing is measured on it), and
//! [`SPACING`] of steady load on main before the next. Switches closer than librdkafka's
//! `reconnect.backoff.max.ms` (10 s) would measure the client's growing reconnect backoff instead.
//!
//! For each counted switch:
//! - **first ack**: from the switch call to the first acknowledged produce on the failover. A record
//!   acknowledged after the call and absent from main when main is read [`SPACING`] later was acknowledged by
//!   the failover (a record the client retried after main wrote it is on both and is not counted: it can only
//!   make this later, never earlier). It can come before the answer: an instance switches itself before it
//!   writes the decision to every cluster's control topic;
//! - **call answered**: how long the switch call took (pre-switch checks and the decision's writes included);
//! - **fenced** and **replication wait** (planned only): `fleet.planned.fencedMs` and `replicationWaitMs` from
//!   the answer;
//! - **stranded**: records on main absent from the failover right after the switch answered. The failover is
//!   read first: its end offsets are taken at once (the delay is printed per switch) and it is read up to them,
//!   so MirrorMaker copying on during the read does not hide anything; then main is read to its end, which
//!   includes produces main acknowledged after the answer. MirrorMaker copies the stranded records later:
//!   stranded until then, lost if main were really gone.
//!
//! The table gives per mode the median (the mean of the two middle values for an even count), min and max.
//!
//! Run: `cargo bench --bench switch` (needs Kafka and MirrorMaker: `scripts/install-deps.sh`). Loopback only; it
//! takes about 4 minutes once built (JVM starts included) and gives up after 14.

#[path = "../tests/common/mod.rs"]
mod common;

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::client_matrix::mirrored_pair;
use common::{ADMIN, KafkaCluster, TestGateway, client_config, create_topic};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Message, Offset, TopicPartitionList};
use serde_json::Value;

const TOPIC: &str = "bench";
const PARTITIONS: i32 = 3;
/// Counted switches per mode.
const PER_MODE: usize = 4;
/// The load: this many records every [`TICK`] (300 records/s).
const PER_TICK: u64 = 3;
const TICK: Duration = Duration::from_millis(10);
/// Steady load between two switches.
const SPACING: Duration = Duration::from_secs(11);
/// The whole bench gives up after this long (clusters and MirrorMaker end with the process).
const GIVE_UP: Duration = Duration::from_secs(14 * 60);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Unplanned,
    Planned,
}

impl Mode {
    const ALL: [Mode; 2] = [Mode::Unplanned, Mode::Planned];

    fn name(self) -> &'static str {
        match self {
            Mode::Unplanned => "unplanned",
            Mode::Planned => "planned",
        }
    }

    fn path(self) -> &'static str {
        match self {
            Mode::Unplanned => "/admin/pclusters/v1/pcluster/main/switch?to=failover",
            Mode::Planned => "/admin/pclusters/v1/pcluster/main/switch?to=failover&mode=planned&timeout=60s",
        }
    }
}

fn key(seq: u64) -> String {
    format!("r{seq:010}")
}

fn seq_of(key: &[u8]) -> Option<u64> {
    std::str::from_utf8(key.strip_prefix(b"r")?).ok()?.parse().ok()
}

/// What the load did: every acknowledged record (its sequence number, when its ack arrived), and counts.
#[derive(Default)]
struct LoadLog {
    acks: Mutex<Vec<(u64, Instant)>>,
    sent: AtomicU64,
    failed: AtomicU64,
    stop: AtomicBool,
}

/// The steady producer through the gateway.
struct Load {
    log: Arc<LoadLog>,
    task: tokio::task::JoinHandle<FutureProducer>,
}

impl Load {
    fn start(bootstrap: &str) -> Self {
        let producer: FutureProducer = rdkafka::ClientConfig::new()
            .set("bootstrap.servers", bootstrap)
            .set("acks", "all")
            .create()
            .expect("producer");
        let log = Arc::new(LoadLog::default());
        let task = tokio::spawn(pace(producer, log.clone()));
        Self { log, task }
    }

    /// From `started` to the first ack before `until` of a record `on_main` does not hold.
    fn first_ack_not_in(&self, started: Instant, until: Instant, on_main: &HashSet<u64>) -> Option<Duration> {
        let acks = self.log.acks.lock().expect("ack log");
        acks.iter()
            .filter(|(seq, at)| *at >= started && *at < until && !on_main.contains(seq))
            .map(|(_, at)| *at - started)
            .min()
    }

    /// Stops writing, waits for the last acks; returns (sent, acknowledged, failed).
    async fn stop(self) -> (u64, usize, u64) {
        self.log.stop.store(true, Ordering::Relaxed);
        let producer = self.task.await.expect("load task");
        tokio::task::spawn_blocking(move || rdkafka::producer::Producer::flush(&producer, Duration::from_secs(60)))
            .await
            .expect("flush thread")
            .expect("the load's last records acknowledged");
        tokio::time::sleep(Duration::from_millis(200)).await;
        let log = &self.log;
        let acked = log.acks.lock().expect("ack log").len();
        (log.sent.load(Ordering::Relaxed), acked, log.failed.load(Ordering::Relaxed))
    }
}

/// Writes [`PER_TICK`] records every [`TICK`] until told to stop; every delivery is awaited on a task of its own.
async fn pace(producer: FutureProducer, log: Arc<LoadLog>) -> FutureProducer {
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut seq = 0u64;
    while !log.stop.load(Ordering::Relaxed) {
        tick.tick().await;
        for _ in 0..PER_TICK {
            let key = key(seq);
            match producer.send_result(FutureRecord::to(TOPIC).key(&key).payload(&key)) {
                Ok(delivery) => {
                    let log = log.clone();
                    tokio::spawn(async move {
                        match delivery.await {
                            Ok(Ok(_)) => log.acks.lock().expect("ack log").push((seq, Instant::now())),
                            _ => _ = log.failed.fetch_add(1, Ordering::Relaxed),
                        }
                    });
                }
                Err(_) => _ = log.failed.fetch_add(1, Ordering::Relaxed),
            }
            log.sent.fetch_add(1, Ordering::Relaxed);
            seq += 1;
        }
    }
    producer
}

/// Reads a cluster's copy of the topic directly (not through the gateway), with a consumer made in advance.
#[derive(Clone)]
struct Reader {
    consumer: Arc<BaseConsumer>,
}

impl Reader {
    fn new(cluster: &KafkaCluster) -> Self {
        let consumer: BaseConsumer = client_config(&cluster.bootstrap())
            .set("group.id", "switch-bench-reader")
            .set("enable.auto.commit", "false")
            .create()
            .expect("reader");
        Self { consumer: Arc::new(consumer) }
    }

    /// The record keys up to the end offsets as they are now, and when those were taken.
    async fn keys_now(&self) -> (HashSet<u64>, Instant) {
        let consumer = self.consumer.clone();
        tokio::task::spawn_blocking(move || {
            let ends: Vec<i64> = (0..PARTITIONS)
                .map(|p| consumer.fetch_watermarks(TOPIC, p, Duration::from_secs(10)).expect("end offset").1)
                .collect();
            let taken = Instant::now();
            (read_keys(&consumer, &ends), taken)
        })
        .await
        .expect("reader thread")
    }
}

/// Every record key of partition p below `ends[p]`.
fn read_keys(consumer: &BaseConsumer, ends: &[i64]) -> HashSet<u64> {
    let mut assignment = TopicPartitionList::new();
    for (p, _) in ends.iter().enumerate().filter(|(_, end)| **end > 0) {
        assignment.add_partition_offset(TOPIC, p as i32, Offset::Beginning).expect("offset");
    }
    let mut open: Vec<bool> = ends.iter().map(|end| *end > 0).collect();
    let mut keys = HashSet::new();
    if assignment.count() == 0 {
        return keys;
    }
    consumer.assign(&assignment).expect("assign");
    let deadline = Instant::now() + Duration::from_secs(60);
    while open.contains(&true) {
        assert!(Instant::now() < deadline, "could not read {TOPIC} up to {ends:?} in 60 s");
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => {
                let p = m.partition() as usize;
                if m.offset() < ends[p] {
                    keys.extend(m.key().and_then(seq_of));
                }
                open[p] &= m.offset() + 1 < ends[p];
            }
            Some(Err(e)) => panic!("reading {TOPIC}: {e}"),
            None => {}
        }
    }
    consumer.unassign().expect("unassign");
    keys
}

/// One counted switch.
struct Sample {
    mode: Mode,
    answered: Duration,
    first_ack: Duration,
    fenced_ms: Option<f64>,
    wait_ms: Option<f64>,
    stranded: usize,
}

/// The bench's parts.
struct Bench {
    gateway: TestGateway,
    load: Load,
    main: Reader,
    failover: Reader,
}

/// Switches main -> failover in `mode` under the load, measures, and leaves [`SPACING`] of load on the failover.
/// `None` when the switch was refused (printed).
async fn counted_switch(bench: &Bench, n: usize, mode: Mode) -> Option<Sample> {
    let started = Instant::now();
    let (status, answer) = bench.gateway.admin_call("POST", mode.path(), Some(ADMIN)).await;
    let answered = started.elapsed();
    if status != 200 || answer["message"] != "Cluster switched" {
        println!("  {n:>2} {:<9} refused, not counted ({status}): {answer}", mode.name());
        return None;
    }
    let (on_failover, failover_taken) = bench.failover.keys_now().await;
    let (on_main, _) = bench.main.keys_now().await;
    let stranded = on_main.difference(&on_failover).count();
    tokio::time::sleep(SPACING).await;
    let until = Instant::now();
    let (main_later, _) = bench.main.keys_now().await;
    let first_ack = bench
        .load
        .first_ack_not_in(started, until, &main_later)
        .unwrap_or_else(|| panic!("switch {n} ({}): no record acknowledged by the failover", mode.name()));
    let planned = &answer["fleet"]["planned"];
    let sample = Sample {
        mode,
        answered,
        first_ack,
        fenced_ms: planned["fencedMs"].as_f64(),
        wait_ms: planned["replicationWaitMs"].as_f64(),
        stranded,
    };
    print_sample(n, &sample, on_main.len(), failover_taken.saturating_duration_since(started + answered), planned);
    Some(sample)
}

fn print_sample(n: usize, s: &Sample, on_main: usize, snapshot_after: Duration, planned: &Value) {
    let planned = match (s.fenced_ms, s.wait_ms) {
        (Some(fenced), Some(wait)) => format!(
            ", fenced {fenced} ms (replication wait {wait} ms, {} partitions compared, unconfirmed by {}, not mirrored {})",
            planned["partitionsCompared"], planned["fenceUnconfirmedBy"], planned["notMirrored"]
        ),
        _ => String::new(),
    };
    println!(
        "  {n:>2} {:<9} first ack on the failover {:.1} ms, answered in {:.1} ms{planned}; stranded {} of {on_main} \
         records on main (failover end offsets taken {:.1} ms after the answer)",
        s.mode.name(),
        ms(s.first_ack),
        ms(s.answered),
        s.stranded,
        ms(snapshot_after),
    );
}

/// The uncounted switch back to main, then [`SPACING`] of load on main.
async fn back_to_main(bench: &Bench) {
    let path = "/admin/pclusters/v1/pcluster/main/switch?to=main";
    let (status, answer) = bench.gateway.admin_call("POST", path, Some(ADMIN)).await;
    assert_eq!(status, 200, "switch back to main: {answer}");
    tokio::time::sleep(SPACING).await;
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Median (the mean of the two middle values for an even count), min, max.
fn stats(mut values: Vec<f64>) -> Option<(f64, f64, f64)> {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    let median = match n {
        0 => return None,
        _ if n % 2 == 1 => values[n / 2],
        _ => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    };
    Some((median, values[0], values[n - 1]))
}

/// A row of the table: one number per counted switch, if the mode has it.
type Metric = fn(&Sample) -> Option<f64>;

fn report(samples: &[Sample], refused: &[usize; 2]) {
    let rows: [(&str, Metric); 5] = [
        ("call -> first ack on the failover (ms)", |s| Some(ms(s.first_ack))),
        ("switch call answered (ms)", |s| Some(ms(s.answered))),
        ("fenced (ms)", |s| s.fenced_ms),
        ("replication wait (ms)", |s| s.wait_ms),
        ("records stranded on main", |s| Some(s.stranded as f64)),
    ];
    let columns: Vec<String> = Mode::ALL
        .iter()
        .zip(refused)
        .map(|(mode, refused)| {
            let counted = samples.iter().filter(|s| s.mode == *mode).count();
            format!("{}, {counted} counted, {refused} refused", mode.name())
        })
        .collect();
    println!("  {:<40} {:<34} {}", "median / min / max", columns[0], columns[1]);
    for (name, metric) in rows {
        let cells: Vec<String> = Mode::ALL
            .iter()
            .map(|mode| {
                let values = samples.iter().filter(|s| s.mode == *mode).filter_map(metric).collect();
                stats(values).map_or("-".into(), |(median, min, max)| format!("{median:.1} / {min:.1} / {max:.1}"))
            })
            .collect();
        println!("  {name:<40} {:<34} {}", cells[0], cells[1]);
    }
}

/// Topic on both clusters, the load started, MirrorMaker copying it, then [`SPACING`] of steady load.
async fn set_up() -> Bench {
    let (main, failover) = mirrored_pair().await;
    let gateway = TestGateway::start_pair(&main.bootstrap(), &failover.bootstrap(), "").await;
    create_topic(&gateway.bootstrap(), TOPIC, PARTITIONS).await;
    create_topic(&failover.bootstrap(), TOPIC, PARTITIONS).await;
    let (main_reader, failover_reader) = (Reader::new(main), Reader::new(failover));
    let load = Load::start(&gateway.bootstrap());
    // MirrorMaker copies a new topic once its topic refresh found it and its tasks were reconfigured.
    let deadline = Instant::now() + Duration::from_secs(180);
    while failover_reader.keys_now().await.0.is_empty() {
        assert!(Instant::now() < deadline, "MirrorMaker did not copy {TOPIC} to the failover in 180 s");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    tokio::time::sleep(SPACING).await;
    Bench { gateway, load, main: main_reader, failover: failover_reader }
}

async fn run() {
    let bench = set_up().await;
    println!(
        "switch main -> failover under a steady load ({} records/s through the gateway, librdkafka acks=all, its \
         defaults otherwise), Kafka 3+3 nodes, MirrorMaker 2 running, {PER_MODE} switches per mode, each followed \
         by an uncounted unplanned switch back to main; switches {} s apart",
        PER_TICK * 1000 / TICK.as_millis() as u64,
        SPACING.as_secs()
    );
    let (mut samples, mut refused) = (Vec::new(), [0; 2]);
    for n in 1..=2 * PER_MODE {
        let mode = Mode::ALL[(n - 1) % 2];
        match counted_switch(&bench, n, mode).await {
            Some(sample) => {
                samples.push(sample);
                back_to_main(&bench).await;
            }
            None => {
                refused[(n - 1) % 2] += 1;
                tokio::time::sleep(SPACING).await;
            }
        }
    }
    // The gateway stays up until the load's last records are acknowledged.
    let Bench { gateway: _gateway, load, .. } = bench;
    let (sent, acked, failed) = load.stop().await;
    report(&samples, &refused);
    println!("  load: {sent} records sent, {acked} acknowledged, {failed} not acknowledged");
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --all-targets` does not, and then this only checks it builds.
    // A name filter for another bench skips this one.
    let args: Vec<String> = std::env::args().skip(1).collect();
    if !args.iter().any(|a| a == "--bench")
        || args.iter().any(|a| !a.starts_with('-') && !"switch".contains(a.as_str()))
    {
        println!("switch bench: run with `cargo bench --bench switch`");
        return;
    }
    std::thread::spawn(|| {
        std::thread::sleep(GIVE_UP);
        eprintln!("switch bench: still running after {} s, giving up", GIVE_UP.as_secs());
        std::process::exit(2);
    });
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    runtime.block_on(run());
}
