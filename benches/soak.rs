//! Soak: SOAK_MINUTES (default 30) of mixed produce and consume through the release `franzgate` binary, with a
//! cluster switch every SOAK_SWITCH_SECONDS (default 60), against two Apache Kafka clusters (main: nodes 1, 2, 3;
//! failover: nodes 4, 5, 6) with MirrorMaker 2 copying main -> failover (the seed's mm2.properties). Reports the
//! gateway's RSS over time, CPU per process, client errors, and acknowledged records lost (must be 0: every
//! record the producer saw acknowledged is found, afterwards, in the main or the failover cluster) or written
//! more than once (counting MirrorMaker's copies apart: a record produced to main is on main once and on the
//! failover once, one produced to the failover is there once).
//!
//! Run: `cargo bench --bench soak` (needs Kafka: `scripts/install-deps.sh`); `SOAK_MINUTES=2` for a short one.
//! The report is printed and written to `target/soak-report.txt`. A benchmark: nothing is asserted about
//! time; the process exits non-zero if an acknowledged record was lost. `SOAK_DEBUG=cgrp,fetch` (librdkafka
//! debug contexts) writes the consumer's log to `target/soak-consumer.log` and the gateway's to
//! `target/soak-gateway.log`, to trace a consumer that stops.

#[path = "../tests/common/mod.rs"]
mod common;

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::path::Path;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{ClusterSpec, KafkaCluster, MirrorMaker, free_ports, wait_for_port};
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance};
use rdkafka::message::DeliveryResult;
use rdkafka::producer::{BaseRecord, Producer, ProducerContext, ThreadedProducer};
use rdkafka::{ClientContext, Message};

const TOPIC: &str = "soak";
const PARTITIONS: i32 = 4;
/// Records produced per second.
const RATE: u64 = 400;

/// Counts what the producer learns of each record.
#[derive(Default)]
struct Deliveries {
    acked: Mutex<HashSet<u64>>,
    failed: AtomicU64,
}

struct Counting(Arc<Deliveries>);

impl ClientContext for Counting {}

impl ProducerContext for Counting {
    type DeliveryOpaque = Box<u64>;

    fn delivery(&self, result: &DeliveryResult<'_>, id: Box<u64>) {
        match result {
            Ok(_) => {
                if let Ok(mut acked) = self.0.acked.lock() {
                    acked.insert(*id);
                }
            }
            Err(_) => {
                self.0.failed.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// With `SOAK_DEBUG` set (librdkafka debug contexts, e.g. `cgrp,fetch,topic`), the consumer's log lines and
/// rebalances go to `target/soak-consumer.log` with the seconds since the start, so a stall can be traced.
struct ConsumerLog {
    started: Instant,
    file: Option<Mutex<std::fs::File>>,
}

impl ConsumerLog {
    fn write(&self, line: &str) {
        if let Some(file) = &self.file
            && let Ok(mut file) = file.lock()
        {
            use std::io::Write as _;
            let _ = writeln!(file, "{:9.3} {line}", self.started.elapsed().as_secs_f64());
        }
    }
}

impl ClientContext for ConsumerLog {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        self.write(&format!("{level:?} {fac} {log_message}"));
    }

    fn error(&self, error: rdkafka::error::KafkaError, reason: &str) {
        self.write(&format!("ERROR {error}: {reason}"));
    }
}

impl ConsumerContext for ConsumerLog {
    fn post_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        self.write(&format!("REBALANCE {rebalance:?}"));
    }
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// The record number in a `soak-N` value.
fn parse_id(value: &str) -> Option<u64> {
    value.strip_prefix("soak-")?.parse().ok()
}

/// CPU seconds (user + system) a process has used, from /proc (0 when unreadable).
fn cpu_seconds(pid: Option<u32>) -> f64 {
    let Some(stat) = pid.and_then(|pid| std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()) else {
        return 0.0;
    };
    // Fields after the command name (which may hold spaces) start after the last ')'; utime and stime are the
    // 14th and 15th fields of the line, the 12th and 13th after it.
    let fields: Vec<&str> =
        stat.rsplit_once(')').map(|(_, rest)| rest.split_whitespace().collect()).unwrap_or_default();
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

/// Whether `cluster` has the topic with all its partitions, asked directly (a consumer's metadata request does
/// not create it).
fn has_topic(cluster: &KafkaCluster) -> bool {
    let consumer: BaseConsumer = cluster.client_config().create().expect("metadata client");
    let md = consumer.fetch_metadata(Some(TOPIC), Duration::from_secs(5));
    md.is_ok_and(|md| {
        md.topics().first().is_some_and(|t| t.error().is_none() && t.partitions().len() == PARTITIONS as usize)
    })
}

/// How many times each record number occurs in `topic` on `cluster` (read directly, on a blocking thread).
async fn copies_on(cluster: &KafkaCluster) -> HashMap<u64, usize> {
    let bootstrap = cluster.bootstrap();
    let values = tokio::task::spawn_blocking(move || common::read_all(&bootstrap, TOPIC)).await.expect("read");
    let mut copies = HashMap::new();
    for id in values.iter().filter_map(|v| parse_id(v)) {
        *copies.entry(id).or_default() += 1;
    }
    copies
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    // `cargo bench` passes `--bench`; `cargo test --all-targets` does not, and then this only checks it builds.
    // A name filter for another bench skips this one.
    let args: Vec<String> = std::env::args().skip(1).collect();
    if !args.iter().any(|a| a == "--bench") || args.iter().any(|a| !a.starts_with('-') && !"soak".contains(a.as_str()))
    {
        println!("soak bench: run with `cargo bench --bench soak`");
        return;
    }
    let minutes = env_u64("SOAK_MINUTES", 30);
    let switch_every = Duration::from_secs(env_u64("SOAK_SWITCH_SECONDS", 60));
    let target_dir = std::env::var("CARGO_TARGET_DIR")
        .map_or_else(|_| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"), std::path::PathBuf::from);
    let bin = target_dir.join("release/franzgate");
    let debug = std::env::var("SOAK_DEBUG").ok().filter(|d| !d.is_empty());
    assert!(bin.exists(), "{} missing: cargo build --release --bin franzgate", bin.display());
    let (main, failover) = tokio::join!(
        KafkaCluster::start_async(ClusterSpec::new("soak-main", &[1, 2, 3])),
        KafkaCluster::start_async(ClusterSpec::new("soak-failover", &[4, 5, 6]))
    );
    // The seed's mm2.properties, group offsets synced every 10 s instead of every minute.
    let mirror_maker = MirrorMaker::start(&MirrorMaker::seed_properties(
        &main.bootstrap(),
        &failover.bootstrap(),
        "sync.group.offsets.interval.seconds=10\nemit.checkpoints.interval.seconds=10\n",
    ));
    common::create_topic(&main.bootstrap(), TOPIC, PARTITIONS).await;
    // MirrorMaker creates the topic on the failover; the producer needs it there before the first switch.
    let mirrored_by = Instant::now() + Duration::from_secs(180);
    while !has_topic(&failover) {
        assert!(
            Instant::now() < mirrored_by,
            "MirrorMaker did not create {TOPIC} on the failover:\n{}",
            mirror_maker.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // The soak's clock starts once the clusters and MirrorMaker are up.
    let started = Instant::now();

    // One gateway port per broker (three per cluster) and a spare: a broker without a port cannot be advertised,
    // and the partitions it leads would be unreachable.
    let (port, http) = (free_ports(4), free_ports(1));
    // The gateway logs to standard output; with SOAK_DEBUG both streams go to target/soak-gateway.log.
    let gateway_log = debug.as_ref().and_then(|_| std::fs::File::create(target_dir.join("soak-gateway.log")).ok());
    let mut gateway = std::process::Command::new(&bin)
        .env("KAFKA_MAIN_BOOTSTRAP_SERVERS", main.bootstrap())
        .env("KAFKA_FAILOVER_BOOTSTRAP_SERVERS", failover.bootstrap())
        .env("KAFKA_FAILOVER_GATEWAY_ROLES", "failover")
        .env("GATEWAY_BIND_HOST", "127.0.0.1")
        .env("GATEWAY_ADVERTISED_HOST", "127.0.0.1")
        .env("GATEWAY_PORT_START", port.to_string())
        .env("GATEWAY_PORT_COUNT", "4")
        .env("GATEWAY_HTTP_PORT", http.to_string())
        .env("GATEWAY_ADMIN_API_USERS", "[{username: soak, password: soak, admin: true}]")
        .env("GATEWAY_SWITCH_DRAIN_TIMEOUT_MS", "5000")
        .stdout(gateway_log.as_ref().and_then(|f| f.try_clone().ok()).map_or_else(Stdio::null, Stdio::from))
        .stderr(gateway_log.map_or_else(Stdio::null, Stdio::from))
        .spawn()
        .expect("start franzgate");
    wait_for_port(http).await;
    wait_for_port(port).await;
    let pid = gateway.id();
    let bootstrap = format!("127.0.0.1:{port}");
    let admin = format!("127.0.0.1:{http}");

    let deliveries = Arc::new(Deliveries::default());
    let stop = Arc::new(AtomicBool::new(false));
    let produced = Arc::new(AtomicU64::new(0));
    let producer_thread = {
        let (deliveries, stop, produced, bootstrap) =
            (deliveries.clone(), stop.clone(), produced.clone(), bootstrap.clone());
        std::thread::spawn(move || {
            let producer: ThreadedProducer<Counting> = common::client_config(&bootstrap)
                .set("acks", "all")
                .set("message.timeout.ms", "120000")
                .create_with_context(Counting(deliveries))
                .expect("producer");
            let started = Instant::now();
            let mut id = 0u64;
            while !stop.load(Ordering::Relaxed) {
                // Paced at RATE records per second.
                let due = started.elapsed().as_millis() as u64 * RATE / 1000;
                while id < due {
                    let value = format!("soak-{id}");
                    let record = BaseRecord::with_opaque_to(TOPIC, Box::new(id)).payload(&value).key(&value);
                    match producer.send(record) {
                        Ok(()) => id += 1,
                        Err(_) => std::thread::sleep(Duration::from_millis(10)),
                    }
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            produced.store(id, Ordering::Relaxed);
            let _ = producer.flush(Duration::from_secs(120));
        })
    };
    let consumed = Arc::new(AtomicU64::new(0));
    // The records seen by the consumer at least once.
    let consumed_ids = Arc::new(Mutex::new(HashSet::<u64>::new()));
    let consumer_errors = Arc::new(AtomicU64::new(0));
    let stop_consumer = Arc::new(AtomicBool::new(false));
    let consumer_thread = {
        let (stop, consumed, consumed_ids, errors, bootstrap) =
            (stop_consumer.clone(), consumed.clone(), consumed_ids.clone(), consumer_errors.clone(), bootstrap.clone());
        let log = ConsumerLog {
            started,
            file: debug
                .as_ref()
                .and_then(|_| std::fs::File::create(target_dir.join("soak-consumer.log")).ok())
                .map(Mutex::new),
        };
        let debug = debug.clone();
        std::thread::spawn(move || {
            let mut config = common::client_config(&bootstrap);
            config.set("group.id", "soak-readers").set("auto.offset.reset", "earliest");
            if let Some(contexts) = &debug {
                config.set("debug", contexts).set_log_level(RDKafkaLogLevel::Debug);
            }
            let consumer: BaseConsumer<ConsumerLog> = config.create_with_context(log).expect("consumer");
            consumer.subscribe(&[TOPIC]).expect("subscribe");
            while !stop.load(Ordering::Relaxed) {
                match consumer.poll(Duration::from_millis(200)) {
                    Some(Ok(m)) if m.payload().is_some() => {
                        consumed.fetch_add(1, Ordering::Relaxed);
                        let id = m.payload().and_then(|p| std::str::from_utf8(p).ok()).and_then(parse_id);
                        if let (Some(id), Ok(mut ids)) = (id, consumed_ids.lock()) {
                            ids.insert(id);
                        }
                    }
                    Some(Err(_)) => {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                    _ => {}
                }
            }
        })
    };

    let mut report = String::new();
    let _ = writeln!(
        report,
        "| minute | gateway RSS (MiB) | produced | acknowledged | consumed (distinct) | consumer error events | switches | CPU s in the last minute: gateway / main (3 nodes) / failover (3 nodes) / MirrorMaker |"
    );
    let _ = writeln!(report, "|---|---|---|---|---|---|---|---|");
    let nodes = |cluster: &KafkaCluster| cluster.node_ids().into_iter().map(|id| cluster.pid(id)).collect::<Vec<_>>();
    let pids = [vec![Some(pid)], nodes(&main), nodes(&failover), vec![mirror_maker.pid()]];
    let cpu_of = |pids: &[Vec<Option<u32>>; 4]| pids.each_ref().map(|g| g.iter().map(|p| cpu_seconds(*p)).sum::<f64>());
    let mut cpu_before = cpu_of(&pids);
    let distinct = || consumed_ids.lock().map(|ids| ids.len()).unwrap_or(0);
    let end = started + Duration::from_secs(minutes * 60);
    let (mut next_switch, mut next_sample, mut switches, mut active_failover) =
        (started + switch_every, started, 0u32, false);
    let mut peak_rss = 0;
    while Instant::now() < end {
        let now = Instant::now();
        if now >= next_switch {
            let target = if active_failover { "main" } else { "failover" };
            let path = format!("/admin/pclusters/v1/pcluster/main/switch?to={target}");
            match franzgate::admin::client::call(&admin, "POST", &path, Some(("soak", "soak"))).await {
                Ok((200, _)) => {
                    switches += 1;
                    active_failover = !active_failover;
                }
                other => eprintln!("switch to {target} failed: {other:?}"),
            }
            next_switch += switch_every;
        }
        if now >= next_sample {
            let cpu_now = cpu_of(&pids);
            let rss = rss_kib(pid);
            peak_rss = peak_rss.max(rss);
            let acked = deliveries.acked.lock().map(|a| a.len()).unwrap_or(0);
            let line = format!(
                "| {} | {:.1} | {} | {} | {} ({}) | {} | {} | {:.1} / {:.1} / {:.1} / {:.1} |",
                started.elapsed().as_secs() / 60,
                rss as f64 / 1024.0,
                started.elapsed().as_millis() as u64 * RATE / 1000,
                acked,
                consumed.load(Ordering::Relaxed),
                distinct(),
                consumer_errors.load(Ordering::Relaxed),
                switches,
                cpu_now[0] - cpu_before[0],
                cpu_now[1] - cpu_before[1],
                cpu_now[2] - cpu_before[2],
                cpu_now[3] - cpu_before[3],
            );
            cpu_before = cpu_now;
            println!("{line}");
            let _ = writeln!(report, "{line}");
            next_sample += Duration::from_secs(60);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    stop.store(true, Ordering::Relaxed);
    let _ = tokio::task::spawn_blocking(move || producer_thread.join()).await;
    // Let the consumer catch up with the active cluster: until nothing new arrived for 10 s (60 s at most).
    let (catch_up_end, mut last, mut quiet_since) =
        (Instant::now() + Duration::from_secs(60), distinct(), Instant::now());
    while Instant::now() < catch_up_end && quiet_since.elapsed() < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_millis(500)).await;
        if distinct() != last {
            (last, quiet_since) = (distinct(), Instant::now());
        }
    }
    stop_consumer.store(true, Ordering::Relaxed);
    let _ = tokio::task::spawn_blocking(move || consumer_thread.join()).await;

    // Every acknowledged record must be in one of the clusters, once MirrorMaker's copies are told apart. First
    // let MirrorMaker catch up (two minutes at most): every copy of a record on main is on the failover too.
    let on_main = copies_on(&main).await;
    let mirror_deadline = Instant::now() + Duration::from_secs(120);
    let (mut on_failover, mut behind);
    loop {
        on_failover = copies_on(&failover).await;
        behind = on_main.iter().filter(|(id, n)| on_failover.get(id).copied().unwrap_or(0) < **n).count();
        if behind == 0 || Instant::now() > mirror_deadline {
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let acked = deliveries.acked.lock().map(|a| a.clone()).unwrap_or_default();
    let copies = |id: &u64| (on_main.get(id).copied().unwrap_or(0), on_failover.get(id).copied().unwrap_or(0));
    let lost = acked.iter().filter(|id| copies(id) == (0, 0)).count();
    // MirrorMaker copied each of main's copies once (when it caught up): main + (failover - main) must be 1.
    let more_than_once = acked.iter().filter(|id| copies(id).1.max(copies(id).0) > 1).count();
    let via_main = acked.iter().filter(|id| copies(id).0 == 1).count();
    let via_failover = acked.iter().filter(|id| copies(id).0 == 0 && copies(id).1 > 0).count();
    // Records of the cluster left inactive at the end, produced after the consumer's last fetch there, are
    // never consumed (the consumer only reads the active cluster); everything else should be.
    let never_consumed = consumed_ids.lock().map(|ids| acked.difference(&ids).count()).unwrap_or(0);
    let _ = writeln!(
        report,
        "\n{minutes} min, {switches} switches: produced {}, acknowledged {}, delivery failures {}, consumed {} ({} distinct; \
         acknowledged never consumed {never_consumed}), consumer error events {}, acknowledged records lost {lost}, \
         written more than once {more_than_once} (produced to main {via_main}, to the failover {via_failover}; MirrorMaker \
         behind by {behind} records at the end); gateway RSS peak {:.1} MiB, at the end {:.1} MiB",
        produced.load(Ordering::Relaxed),
        acked.len(),
        deliveries.failed.load(Ordering::Relaxed),
        consumed.load(Ordering::Relaxed),
        distinct(),
        consumer_errors.load(Ordering::Relaxed),
        peak_rss as f64 / 1024.0,
        rss_kib(pid) as f64 / 1024.0,
    );
    let _ = gateway.kill();
    let _ = gateway.wait();
    println!("{report}");
    let out = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/soak-report.txt");
    let _ = std::fs::write(&out, &report);
    if lost > 0 {
        eprintln!("{lost} acknowledged records lost");
        std::process::exit(1);
    }
}
