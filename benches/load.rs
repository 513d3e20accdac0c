//! End-to-end load comparison, in ONE run against the same broker: (a) direct to the broker, (b) through
//! franzgate with routing and metadata rewrite only (one cluster), (c) through franzgate with the full default
//! chain (a failover configured, so the cluster selector runs too). The gateway is the release `franzgate`
//! binary in its own process, so its CPU time and memory are read from /proc.
//!
//! Measures, with librdkafka clients (the `rdkafka` crate):
//! - produce and consume throughput (MB/s, records/s) for 100 B and 1 KiB records, acks=1 and acks=all,
//!   1 and 16 client connections, against tansu; and against librdkafka's mock cluster, a broker fast enough
//!   that the gateway's own cost shows;
//! - produce latency (p50, p99, p99.9) at half of the direct path's saturation rate;
//! - the gateway's CPU seconds per GB moved, idle RSS, peak RSS, and RSS holding 10,000 idle connections.
//!
//! Run: `cargo bench --bench load` (needs tansu: `scripts/install-deps.sh`). `LOAD_SCALE=0.2` shrinks volumes.
//! A benchmark: it prints; nothing is asserted about time.

#[path = "../tests/common/mod.rs"]
mod common;

use std::fmt::Write as _;
use std::path::Path;
use std::process::Stdio;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::{Tansu, free_ports, wait_for_port};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::DeliveryResult;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer, ProducerContext, ThreadedProducer};
use rdkafka::{ClientContext, Message, Offset, TopicPartitionList};

const PARTITIONS: i32 = 16;

/// One way to reach the broker.
struct Target {
    name: &'static str,
    bootstrap: String,
    /// The gateway process, for (b) and (c).
    gateway: Option<Gateway>,
}

struct Gateway {
    child: std::process::Child,
}

impl Gateway {
    fn start(bin: &Path, clusters: &str) -> (Self, String) {
        let port = free_ports(2);
        let dir = std::env::temp_dir().join(format!("franzgate-load-{port}"));
        std::fs::create_dir_all(&dir).expect("tmp dir");
        let config = dir.join("gateway.yaml");
        let yaml = format!(
            "gateway:\n  advertised_host: 127.0.0.1\n  bind_host: 127.0.0.1\n  port_start: {port}\n  port_count: 2\n  \
             http_port: 0\n  admin_users: [{{username: a, password: b, admin: true}}]\nclusters:\n{clusters}"
        );
        std::fs::write(&config, yaml).expect("config");
        // LOAD_GATEWAY_ENV="K=V K2=V2" passes variables to the gateway process only (allocator experiments).
        let extra_env: Vec<(String, String)> = std::env::var("LOAD_GATEWAY_ENV")
            .unwrap_or_default()
            .split_whitespace()
            .filter_map(|kv| kv.split_once('=').map(|(k, v)| (k.to_string(), v.to_string())))
            .collect();
        let child = std::process::Command::new(bin)
            .envs(extra_env)
            .args(["--config", &config.display().to_string(), "--log", "warn"])
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start franzgate");
        (Self { child }, format!("127.0.0.1:{port}"))
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// User + system CPU seconds so far.
    fn cpu_seconds(&self) -> f64 {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid())).unwrap_or_default();
        // Fields after the parenthesised command name; utime and stime are the 14th and 15th fields overall.
        let after = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("");
        let fields: Vec<&str> = after.split_whitespace().collect();
        let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok()).unwrap_or(0.0);
        (ticks(11) + ticks(12)) / 100.0 // USER_HZ is 100 on Linux
    }

    /// (VmRSS, VmHWM) in KiB.
    fn rss_kib(&self) -> (u64, u64) {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap_or_default();
        let field = |name: &str| {
            status
                .lines()
                .find(|l| l.starts_with(name))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        };
        (field("VmRSS:"), field("VmHWM:"))
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn client(bootstrap: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", bootstrap).set("message.timeout.ms", "60000").set("socket.timeout.ms", "30000");
    c
}

async fn create_topic(bootstrap: &str, topic: &str) {
    let admin: AdminClient<_> = client(bootstrap).create().expect("admin");
    let topics = [NewTopic::new(topic, PARTITIONS, TopicReplication::Fixed(1))];
    for r in admin.create_topics(&topics, &AdminOptions::new()).await.expect("create") {
        r.unwrap_or_else(|(t, e)| panic!("create {t}: {e}"));
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
static EPOCH: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();

fn stamp() -> usize {
    EPOCH.get_or_init(Instant::now).elapsed().as_nanos() as usize + 1
}

struct Ctx(std::sync::Arc<Deliveries>);
impl ClientContext for Ctx {}
impl ProducerContext for Ctx {
    type DeliveryOpaque = usize;
    fn delivery(&self, result: &DeliveryResult<'_>, sent: usize) {
        match result {
            Ok(_) => {
                self.0.ok.fetch_add(1, Ordering::Relaxed);
                if sent > 0 {
                    let now = EPOCH.get_or_init(Instant::now).elapsed().as_nanos() as usize + 1;
                    if let Ok(mut l) = self.0.latencies.lock() {
                        l.push(Duration::from_nanos((now - sent) as u64));
                    }
                }
            }
            Err(_) => {
                self.0.failed.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// Produces `records` of `size` bytes over `connections` producer instances; returns the seconds taken.
fn produce(bootstrap: &str, topic: &str, size: usize, acks: &str, connections: usize, records: usize) -> f64 {
    let payload = vec![b'x'; size];
    let started = Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..connections {
            let payload = &payload;
            scope.spawn(move || {
                let deliveries = std::sync::Arc::new(Deliveries::default());
                let producer: BaseProducer<Ctx> =
                    client(bootstrap).set("acks", acks).create_with_context(Ctx(deliveries.clone())).expect("producer");
                let mine = records / connections;
                let mut sent = 0;
                while sent < mine {
                    match producer.send(BaseRecord::<(), [u8], usize>::with_opaque_to(topic, 0).payload(payload)) {
                        Ok(()) => sent += 1,
                        Err((_, _)) => {
                            producer.poll(Duration::from_millis(1));
                        }
                    }
                }
                producer.flush(Duration::from_secs(120)).expect("flush");
                assert_eq!(deliveries.failed.load(Ordering::Relaxed), 0, "deliveries failed");
                assert_eq!(deliveries.ok.load(Ordering::Relaxed), mine, "every record acknowledged");
            });
        }
    });
    started.elapsed().as_secs_f64()
}

/// Consumes `records` from `topic` with `connections` consumers splitting its partitions; returns the seconds
/// taken, or how many records arrived before a 60 s deadline.
fn consume(bootstrap: &str, topic: &str, connections: usize, records: usize) -> Result<f64, usize> {
    let started = Instant::now();
    let total = AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for c in 0..connections {
            let total = &total;
            scope.spawn(move || {
                // librdkafka's default fetch sizes (fetch.max.bytes 50 MiB, 1 MiB per partition).
                let consumer: BaseConsumer = client(bootstrap).set("group.id", "load").create().expect("consumer");
                let mut assignment = TopicPartitionList::new();
                for p in (0..PARTITIONS).filter(|p| *p as usize % connections == c) {
                    assignment.add_partition_offset(topic, p, Offset::Beginning).expect("offset");
                }
                consumer.assign(&assignment).expect("assign");
                let deadline = Instant::now() + Duration::from_secs(60);
                while total.load(Ordering::Relaxed) < records && Instant::now() < deadline {
                    if let Some(Ok(m)) = consumer.poll(Duration::from_millis(50)) {
                        debug_assert!(m.payload().is_some());
                        total.fetch_add(1, Ordering::Relaxed);
                    }
                }
            });
        }
    });
    let consumed = total.load(Ordering::Relaxed);
    if consumed < records {
        eprintln!("consume from {bootstrap} topic {topic}: only {consumed} of {records} records within 60 s");
        return Err(consumed);
    }
    Ok(started.elapsed().as_secs_f64())
}

/// A producer in the latency configuration (linger.ms=0). A `ThreadedProducer` serves delivery reports
/// continuously on its own thread, so a report's time is the acknowledgement's.
fn latency_producer(bootstrap: &str, acks: &str) -> (ThreadedProducer<Ctx>, std::sync::Arc<Deliveries>) {
    let deliveries = std::sync::Arc::new(Deliveries::default());
    let producer = client(bootstrap)
        .set("acks", acks)
        .set("linger.ms", "0")
        .create_with_context(Ctx(deliveries.clone()))
        .expect("producer");
    (producer, deliveries)
}

/// The records/s one producer sustains in the latency configuration.
fn saturation(bootstrap: &str, topic: &str, acks: &str, size: usize) -> f64 {
    let (producer, deliveries) = latency_producer(bootstrap, acks);
    let payload = vec![b's'; size];
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(3) {
        if producer.send(BaseRecord::<(), [u8], usize>::with_opaque_to(topic, 0).payload(&payload)).is_err() {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    // Acknowledged, not merely queued: librdkafka's queue absorbs a burst, so the time runs through the flush.
    producer.flush(Duration::from_secs(60)).expect("flush");
    deliveries.ok.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64()
}

/// Produces at `rate` records/s for `seconds`; returns the sorted delivery latencies.
fn latency(bootstrap: &str, topic: &str, acks: &str, size: usize, rate: f64, seconds: f64) -> Vec<Duration> {
    let (producer, deliveries) = latency_producer(bootstrap, acks);
    let payload = vec![b'y'; size];
    let started = Instant::now();
    let total = (rate * seconds) as usize;
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
    let mut l = deliveries.latencies.lock().map(|l| l.clone()).unwrap_or_default();
    l.sort();
    l
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

/// RSS of a fresh gateway idle, then holding 10,000 idle client connections.
async fn idle_connections(bin: &Path, tansu: &str) -> (u64, u64, usize) {
    let (gateway, bootstrap) = Gateway::start(bin, &format!("  main:\n    bootstrap.servers: {tansu}\n"));
    let port: u16 = bootstrap.rsplit(':').next().and_then(|p| p.parse().ok()).expect("port");
    wait_for_port(port).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (idle, _) = gateway.rss_kib();
    let mut held = Vec::new();
    for _ in 0..10_000 {
        match tokio::net::TcpStream::connect(("127.0.0.1", port)).await {
            Ok(s) => held.push(s),
            Err(_) => break,
        }
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (loaded, _) = gateway.rss_kib();
    (idle, loaded, held.len())
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if !args.iter().any(|a| a == "--bench") || args.iter().any(|a| !a.starts_with('-') && !"load".contains(a.as_str()))
    {
        println!("load bench: run with `cargo bench --bench load`");
        return;
    }
    let scale: f64 = std::env::var("LOAD_SCALE").ok().and_then(|s| s.parse().ok()).unwrap_or(1.0);
    // LOAD_PARTS=throughput,latency,resources,mock (default: all) runs a subset.
    let parts = std::env::var("LOAD_PARTS").unwrap_or_else(|_| "throughput,latency,resources,mock".into());
    let part = |name: &str| parts.split(',').any(|p| p.trim() == name);
    let bin = Path::new(env!("CARGO_BIN_EXE_franzgate"));
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let mut report = String::new();
    runtime.block_on(async {
        let broker = Tansu::start().await;
        let spare = Tansu::start().await; // the failover of target (c); never switched to
        let (gw_b, boot_b) = Gateway::start(bin, &format!("  main:\n    bootstrap.servers: {}\n", broker.bootstrap()));
        let (gw_c, boot_c) = Gateway::start(
            bin,
            &format!(
                "  main:\n    bootstrap.servers: {}\n  failover:\n    bootstrap.servers: {}\n    gateway.roles: failover\n",
                broker.bootstrap(),
                spare.bootstrap()
            ),
        );
        for b in [&boot_b, &boot_c] {
            wait_for_port(b.rsplit(':').next().and_then(|p| p.parse().ok()).expect("port")).await;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        let idle_b = gw_b.rss_kib().0;
        eprintln!("gateway pids: routing+rewrite {} full chain {}", gw_b.pid(), gw_c.pid());
        let mut targets = [
            Target { name: "direct", bootstrap: broker.bootstrap(), gateway: None },
            Target { name: "gw routing+rewrite", bootstrap: boot_b, gateway: Some(gw_b) },
            Target { name: "gw full chain", bootstrap: boot_c, gateway: Some(gw_c) },
        ];
        let cpu_start: Vec<f64> = targets.iter().map(|t| t.gateway.as_ref().map_or(0.0, Gateway::cpu_seconds)).collect();
        let mut moved = [0f64; 3];
        let mut scenario = 0;

        if part("throughput") {
        writeln!(report, "\n## Throughput against tansu (MB/s, records/s; ratio = gateway / direct)\n").ok();
        writeln!(report, "| scenario | direct | gw routing+rewrite | ratio | gw full chain | ratio |").ok();
        writeln!(report, "|---|---|---|---|---|---|").ok();
        for size in [100usize, 1024] {
            for acks in ["1", "all"] {
                for conns in [1usize, 16] {
                    let records = ((if size == 100 { 200_000.0 } else { 60_000.0 }) * scale) as usize / conns * conns;
                    let mb = (records * size) as f64 / 1e6;
                    let mut produce_rates = Vec::new();
                    let mut consume_rates = Vec::new();
                    for (i, t) in targets.iter_mut().enumerate() {
                        scenario += 1;
                        let topic = format!("load-{scenario}");
                        create_topic(&t.bootstrap, &topic).await;
                        let secs = produce(&t.bootstrap, &topic, size, acks, conns, records);
                        produce_rates.push((mb / secs, records as f64 / secs));
                        // A stalled consume shows as 0 MB/s in the table, and its warning names the target.
                        let secs = consume(&t.bootstrap, &topic, conns, records).unwrap_or(f64::INFINITY);
                        consume_rates.push((mb / secs, records as f64 / secs));
                        moved[i] += 2.0 * mb;
                    }
                    for (what, rates) in [("produce", &produce_rates), ("consume", &consume_rates)] {
                        let cell = |r: (f64, f64)| format!("{:.1} MB/s, {:.0} rec/s", r.0, r.1);
                        writeln!(
                            report,
                            "| {what} {size} B acks={acks} conns={conns} | {} | {} | {:.2}x | {} | {:.2}x |",
                            cell(rates[0]),
                            cell(rates[1]),
                            rates[1].0 / rates[0].0,
                            cell(rates[2]),
                            rates[2].0 / rates[0].0
                        )
                        .ok();
                    }
                    eprintln!("done: {size} B acks={acks} conns={conns}");
                }
            }
        }
        }
        // CPU per GB counts the throughput section only: the latency runs move traffic not counted in `moved`.
        let cpu_used: Vec<f64> = targets
            .iter()
            .zip(&cpu_start)
            .map(|(t, start)| t.gateway.as_ref().map_or(0.0, |g| g.cpu_seconds() - start))
            .collect();

        if part("latency") {
        writeln!(report, "\n## Produce latency, 1 KiB, 1 connection, linger.ms=0, at half the direct path's saturation, ms\n").ok();
        writeln!(report, "| acks | target | rate rec/s | p50 | p99 | p99.9 | added p50 | added p99 |").ok();
        writeln!(report, "|---|---|---|---|---|---|---|---|").ok();
        for acks in ["1", "all"] {
            scenario += 1;
            let topic = format!("load-{scenario}");
            create_topic(&targets[0].bootstrap, &topic).await;
            // LOAD_LATENCY_RATE=<records/s> measures at a fixed rate instead of half the burst saturation.
            let rate = match std::env::var("LOAD_LATENCY_RATE").ok().and_then(|r| r.parse::<f64>().ok()) {
                Some(rate) => rate,
                None => saturation(&targets[0].bootstrap, &topic, acks, 1024) / 2.0,
            };
            let mut direct = (0.0, 0.0);
            for t in &targets {
                scenario += 1;
                let topic = format!("load-{scenario}");
                create_topic(&t.bootstrap, &topic).await;
                let l = latency(&t.bootstrap, &topic, acks, 1024, rate, 5.0 * scale.max(0.4));
                let (p50, p99, p999) = (percentile(&l, 0.5), percentile(&l, 0.99), percentile(&l, 0.999));
                if t.gateway.is_none() {
                    direct = (p50, p99);
                }
                writeln!(
                    report,
                    "| {acks} | {} | {rate:.0} | {p50:.2} | {p99:.2} | {p999:.2} | {:+.2} | {:+.2} |",
                    t.name,
                    p50 - direct.0,
                    p99 - direct.1
                )
                .ok();
            }
        }

        }

        if part("resources") {
        writeln!(report, "\n## Gateway resources\n").ok();
        writeln!(report, "| target | CPU s | GB moved | CPU s per GB | peak RSS |").ok();
        writeln!(report, "|---|---|---|---|---|").ok();
        for (i, t) in targets.iter().enumerate() {
            if let Some(g) = &t.gateway {
                let cpu = cpu_used[i];
                let gb = moved[i] / 1000.0;
                writeln!(report, "| {} | {cpu:.2} | {gb:.2} | {:.2} | {} MiB |", t.name, cpu / gb, g.rss_kib().1 / 1024)
                    .ok();
            }
        }
        writeln!(report, "\nidle RSS (gateway started, before any client): {} KiB", idle_b).ok();
        let (idle, loaded, held) = idle_connections(bin, &broker.bootstrap()).await;
        writeln!(
            report,
            "RSS with {held} idle client connections: {} KiB ({:.1} KiB per connection over an idle {} KiB)",
            loaded,
            (loaded.saturating_sub(idle)) as f64 / held.max(1) as f64,
            idle
        )
        .ok();
        }
        drop(targets);
        if !part("mock") {
            return;
        }

        // The mock cluster answers from memory in-process: a broker that hides less of the gateway's cost.
        let mock = rdkafka::mocking::MockCluster::new(1).expect("mock cluster");
        let (gw_m, boot_m) = Gateway::start(bin, &format!("  main:\n    bootstrap.servers: {}\n", mock.bootstrap_servers()));
        wait_for_port(boot_m.rsplit(':').next().and_then(|p| p.parse().ok()).expect("port")).await;
        writeln!(report, "\n## Against librdkafka's mock cluster (produce, 1 KiB, acks=1, 1 connection)\n").ok();
        writeln!(report, "| what | direct | gw routing+rewrite | ratio |").ok();
        writeln!(report, "|---|---|---|---|").ok();
        let records = (60_000.0 * scale) as usize;
        let mb = (records * 1024) as f64 / 1e6;
        // Produce only: consuming from librdkafka 2.12's mock cluster crawls even directly (under 1 MB/s).
        let mut rows = Vec::new();
        for (i, b) in [mock.bootstrap_servers(), boot_m.clone()].iter().enumerate() {
            let topic = format!("mock-{i}");
            mock.create_topic(&topic, PARTITIONS, 1).expect("mock topic");
            rows.push(mb / produce(b, &topic, 1024, "1", 1, records));
        }
        writeln!(report, "| produce MB/s | {:.1} | {:.1} | {:.2}x |", rows[0], rows[1], rows[1] / rows[0]).ok();
        drop(gw_m);
    });
    println!("{report}");
}
