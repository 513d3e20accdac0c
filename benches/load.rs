//! End-to-end load comparison: produce and consume throughput direct to Apache Kafka and through franzgate, on
//! a 1-broker and a 3-broker cluster in ONE run. The clusters come from the cluster kit (tests/common/kafka.rs)
//! with a benchmark JVM (1 GiB heap, the full JIT); the gateway is the release `franzgate` binary in its own
//! process (routing and metadata rewrite, the default chain with one cluster), so its CPU time and memory are
//! read from /proc.
//!
//! Every configuration runs LOAD_REPEATS times, direct and gateway interleaved (the order alternates each
//! round), and each round gives one gateway/direct ratio; the table shows the median rates and the ratios'
//! mean ± stdev and min–max: on a 2-core machine the broker, the gateway and the load generator share the cores
//! and one run alone says little.
//!
//! The load generator is librdkafka (the `rdkafka` crate, one producer or one consumer in this process) by
//! default: on this machine it consumed 1 KiB records about 3x faster than Kafka's own
//! `kafka-consumer-perf-test` and produced them as fast as `kafka-producer-perf-test` (the Java tools were
//! ~25% ahead on 100 B records), and it starts no JVM per run on the cores the broker needs (README,
//! "Performance").
//! `LOAD_TOOL=java` uses the Kafka perf tools from the kit's tools dir instead (full JIT, 512 MiB heap).
//!
//! Run: `cargo bench --bench load` (needs Kafka: `scripts/install-deps.sh`). It prints progress on stderr and a
//! ready-to-paste markdown report on stdout. Knobs (environment):
//! - `LOAD_SCALE` (default 1.0): multiplies the record counts (1 KiB: 1,000,000 records, 100 B: 3,000,000);
//!   `LOAD_SCALE=0.1` is a quick look (a few minutes);
//! - `LOAD_REPEATS` (default 3): rounds per configuration;
//! - `LOAD_BROKERS` (default `1,3`): the cluster sizes, each a fresh cluster;
//! - `LOAD_SIZES` (default `1024,100`): record sizes in bytes;
//! - `LOAD_ACKS` (default `all`): producer acks;
//! - `LOAD_PARTITIONS` (default 12): partitions per topic (replication factor: min(brokers, 3));
//! - `LOAD_TOOL` (`rdkafka` or `java`, default `rdkafka`);
//! - `LOAD_PARTS` (default `throughput,latency,resources`): `latency` is produce latency (1 KiB, one producer,
//!   linger.ms=0) at `LOAD_LATENCY_RATE` records/s (default 2000) for 10 s x LOAD_SCALE (at least 3 s) per
//!   round; `resources` adds idle RSS and 10,000 idle connections;
//! - `LOAD_GATEWAY_ENV="K=V K2=V2"`: variables for the gateway process only (allocator experiments).
//!
//! A benchmark: it prints; nothing is asserted about time. Under `cargo test` (no `--bench` argument) it only
//! prints how to run it.

#[path = "../tests/common/kafka.rs"]
mod kafka;

#[path = "load/clients.rs"]
mod clients;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use clients::{Rate, consume, create_topic, delete_topic, produce};
use kafka::{ClusterSpec, KafkaCluster};

/// Knobs, from the environment.
struct Knobs {
    scale: f64,
    repeats: usize,
    brokers: Vec<i32>,
    sizes: Vec<usize>,
    acks: String,
    partitions: i32,
    tool: Tool,
    parts: String,
    latency_rate: f64,
}

#[derive(Clone, Copy, PartialEq)]
enum Tool {
    Java,
    Rdkafka,
}

impl Knobs {
    fn from_env() -> Self {
        let var = |k: &str, d: &str| std::env::var(k).unwrap_or_else(|_| d.to_string());
        let list = |k: &str, d: &str| -> Vec<String> {
            var(k, d).split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect()
        };
        Self {
            scale: var("LOAD_SCALE", "1").parse().expect("LOAD_SCALE: a number"),
            repeats: var("LOAD_REPEATS", "3").parse().expect("LOAD_REPEATS: a count"),
            brokers: list("LOAD_BROKERS", "1,3").iter().map(|s| s.parse().expect("LOAD_BROKERS: counts")).collect(),
            sizes: list("LOAD_SIZES", "1024,100").iter().map(|s| s.parse().expect("LOAD_SIZES: bytes")).collect(),
            acks: var("LOAD_ACKS", "all"),
            partitions: var("LOAD_PARTITIONS", "12").parse().expect("LOAD_PARTITIONS: a count"),
            tool: match var("LOAD_TOOL", "rdkafka").as_str() {
                "java" => Tool::Java,
                "rdkafka" => Tool::Rdkafka,
                other => panic!("LOAD_TOOL: java or rdkafka, not {other}"),
            },
            parts: var("LOAD_PARTS", "throughput,latency,resources"),
            latency_rate: var("LOAD_LATENCY_RATE", "2000").parse().expect("LOAD_LATENCY_RATE: records/s"),
        }
    }

    fn part(&self, name: &str) -> bool {
        self.parts.split(',').any(|p| p.trim() == name)
    }

    /// Records per run for one record size.
    fn records(&self, size: usize) -> usize {
        let base = if size <= 256 { 3_000_000.0 } else { 1_000_000.0 * 1024.0 / size as f64 };
        ((base * self.scale) as usize).max(1000)
    }
}

/// A child process that the kernel kills when this process's main thread ends (a benchmark killed with ^C
/// leaves no gateway or load generator behind). Spawn only from the main thread.
fn die_with_parent(cmd: &mut Command) -> &mut Command {
    // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        })
    }
}

/// The gateway, the release binary in its own process.
struct Gateway {
    child: std::process::Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Gateway {
    /// A gateway before `bootstrap`; `gateway_keys` are extra lines of its `gateway:` section.
    fn start(bin: &Path, bootstrap: &str, gateway_keys: &str) -> Self {
        let port = free_ports(4);
        let dir = tempfile::Builder::new().prefix("franzgate-load-").tempdir().expect("tmp dir");
        let config = dir.path().join("gateway.yaml");
        let yaml = format!(
            "gateway:\n  advertised_host: 127.0.0.1\n  bind_host: 127.0.0.1\n  port_start: {port}\n  port_count: 4\n  \
             http_port: 0\n  admin_users: [{{username: a, password: b, admin: true}}]\n{gateway_keys}\
             clusters:\n  main:\n    bootstrap.servers: {bootstrap}\n"
        );
        std::fs::write(&config, yaml).expect("config");
        let extra_env: Vec<(String, String)> = std::env::var("LOAD_GATEWAY_ENV")
            .unwrap_or_default()
            .split_whitespace()
            .filter_map(|kv| kv.split_once('=').map(|(k, v)| (k.to_string(), v.to_string())))
            .collect();
        let child = die_with_parent(
            Command::new(bin)
                .envs(extra_env)
                .args(["--config", &config.display().to_string(), "--log", "warn"])
                .stdout(Stdio::null())
                .stderr(Stdio::inherit()),
        )
        .spawn()
        .expect("start franzgate");
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "the gateway did not open port {port} in 30 s");
            std::thread::sleep(Duration::from_millis(50));
        }
        Self { child, port, _dir: dir }
    }

    fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// User + system CPU seconds so far.
    fn cpu_seconds(&self) -> f64 {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).unwrap_or_default();
        // Fields after the parenthesised command name; utime and stime are the 14th and 15th fields overall.
        let after = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("");
        let fields: Vec<&str> = after.split_whitespace().collect();
        let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok()).unwrap_or(0.0);
        (ticks(11) + ticks(12)) / 100.0 // USER_HZ is 100 on Linux
    }

    /// (VmRSS, VmHWM) in KiB.
    fn rss_kib(&self) -> (u64, u64) {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap_or_default();
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

/// `count` consecutive free loopback ports (the gateway opens one per broker, in a row).
fn free_ports(count: u16) -> u16 {
    for _ in 0..200 {
        let base = kafka::free_port().clamp(20_000, 60_000);
        let held: Vec<_> = (0..count).map_while(|i| TcpListener::bind(("127.0.0.1", base + i)).ok()).collect();
        if held.len() == usize::from(count) {
            return base;
        }
    }
    panic!("no {count} consecutive free ports found");
}

/// Rates of one configuration over the rounds, direct and through the gateway (same index = same round).
#[derive(Default)]
struct Samples {
    direct: Vec<Rate>,
    gateway: Vec<Rate>,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

fn mean_stdev(v: &[f64]) -> (f64, f64) {
    let n = v.len() as f64;
    let mean = v.iter().sum::<f64>() / n;
    let var = if v.len() > 1 { v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0) } else { 0.0 };
    (mean, var.sqrt())
}

/// The gateway's resource use over one cluster's rounds.
struct Resources {
    brokers: i32,
    cpu_seconds: f64,
    bytes: f64,
    peak_rss_kib: u64,
}

/// RSS of a fresh gateway idle, then holding 10,000 idle client connections.
fn idle_connections(bin: &Path, bootstrap: &str) -> (u64, u64, usize) {
    // Every connection comes from 127.0.0.1: lift the per-address limit (1,000 by default).
    let gateway = Gateway::start(bin, bootstrap, "  max_connections: 20000\n  max_connections_per_ip: 0\n");
    std::thread::sleep(Duration::from_millis(500));
    let (idle, _) = gateway.rss_kib();
    let mut held = Vec::new();
    for _ in 0..10_000 {
        match TcpStream::connect(("127.0.0.1", gateway.port)) {
            Ok(s) => held.push(s),
            Err(_) => break,
        }
    }
    // Until the gateway has accepted them all (its open descriptors), then a moment for their sessions to start.
    let deadline = Instant::now() + Duration::from_secs(30);
    let fds = || std::fs::read_dir(format!("/proc/{}/fd", gateway.child.id())).map(|d| d.count()).unwrap_or(0);
    while fds() < held.len() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_secs(1));
    let (loaded, _) = gateway.rss_kib();
    eprintln!("gateway holds {} descriptors for {} client connections", fds(), held.len());
    (idle, loaded, held.len())
}

fn uptime_load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if !args.iter().any(|a| a == "--bench") || args.iter().any(|a| !a.starts_with('-') && !"load".contains(a.as_str()))
    {
        println!("load bench: run with `cargo bench --bench load`");
        return;
    }
    let knobs = Knobs::from_env();
    let bin = Path::new(env!("CARGO_BIN_EXE_franzgate"));
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let started = Instant::now();
    let load_before = uptime_load();
    // (brokers, "produce"/"consume", size) -> samples
    let mut results: BTreeMap<(i32, &str, usize), Samples> = BTreeMap::new();
    // The table's row order: as measured (cluster, size, produce before consume).
    let mut rows: Vec<(i32, &str, usize)> = Vec::new();
    let mut resources = Vec::new();
    let mut idle = None;
    // brokers -> (direct, gateway) per round: (p50, p99, p99.9) in ms.
    type Quantiles = (f64, f64, f64);
    let mut latencies: BTreeMap<i32, (Vec<Quantiles>, Vec<Quantiles>)> = BTreeMap::new();

    for &brokers in &knobs.brokers {
        let ids: Vec<i32> = (1..=brokers).collect();
        let t = Instant::now();
        let cluster = KafkaCluster::start(ClusterSpec::new(&format!("load{brokers}"), &ids).with_jvm("-Xms1g -Xmx1g"));
        eprintln!("{brokers}-broker cluster up in {:.1} s", t.elapsed().as_secs_f64());
        let gateway = Gateway::start(bin, &cluster.bootstrap(), "");
        let direct = cluster.bootstrap();
        let through = gateway.bootstrap();
        let rf = brokers.min(3);
        let (mut cpu, mut bytes) = (0.0, 0.0);
        if knobs.part("throughput") {
            // A warm-up round (not counted): the broker's JIT and page cache, the gateway's buffers.
            let warm = format!("load-warmup-{brokers}");
            create_topic(&rt, &direct, &warm, knobs.partitions, rf);
            clients::prime_topic(&direct, &warm, knobs.partitions);
            let n = knobs.records(1024) / 4;
            produce(&knobs, &direct, &warm, 1024, n);
            consume(&knobs, &through, &warm, 1024, n, knobs.partitions);
            delete_topic(&rt, &direct, &warm);
            for round in 0..knobs.repeats {
                for &size in &knobs.sizes {
                    let records = knobs.records(size);
                    let order: [bool; 2] = if round % 2 == 0 { [false, true] } else { [true, false] };
                    for via_gateway in order {
                        let (name, bootstrap) = if via_gateway { ("gw", &through) } else { ("direct", &direct) };
                        let topic = format!("load-{brokers}b-{size}-{name}-{round}");
                        create_topic(&rt, &direct, &topic, knobs.partitions, rf);
                        clients::prime_topic(&direct, &topic, knobs.partitions);
                        let cpu_before = gateway.cpu_seconds();
                        let p = produce(&knobs, bootstrap, &topic, size, records);
                        let c = consume(&knobs, bootstrap, &topic, size, records, knobs.partitions);
                        if via_gateway {
                            cpu += gateway.cpu_seconds() - cpu_before;
                            bytes += 2.0 * (records * size) as f64;
                        }
                        delete_topic(&rt, &direct, &topic);
                        for (op, r) in [("produce", p), ("consume", c)] {
                            if !rows.contains(&(brokers, op, size)) {
                                rows.push((brokers, op, size));
                            }
                            let s = results.entry((brokers, op, size)).or_default();
                            if via_gateway { s.gateway.push(r) } else { s.direct.push(r) }
                        }
                        eprintln!(
                            "{brokers} broker(s) round {} {size} B {name}: produce {:.1} MB/s, consume {:.1} MB/s ({:.0} s so far)",
                            round + 1,
                            p.0,
                            c.0,
                            started.elapsed().as_secs_f64()
                        );
                    }
                }
            }
        }
        if knobs.part("latency") {
            let seconds = (10.0 * knobs.scale).max(3.0);
            for round in 0..knobs.repeats {
                let order: [bool; 2] = if round % 2 == 0 { [false, true] } else { [true, false] };
                for via_gateway in order {
                    let (name, bootstrap) = if via_gateway { ("gw", &through) } else { ("direct", &direct) };
                    let topic = format!("latency-{brokers}b-{name}-{round}");
                    create_topic(&rt, &direct, &topic, knobs.partitions, rf);
                    clients::prime_topic(&direct, &topic, knobs.partitions);
                    let l = clients::latency(bootstrap, &topic, &knobs.acks, 1024, knobs.latency_rate, seconds);
                    delete_topic(&rt, &direct, &topic);
                    let q =
                        (clients::percentile(&l, 0.5), clients::percentile(&l, 0.99), clients::percentile(&l, 0.999));
                    let entry = latencies.entry(brokers).or_default();
                    if via_gateway {
                        entry.1.push(q)
                    } else {
                        entry.0.push(q)
                    }
                    eprintln!(
                        "{brokers} broker(s) latency round {} {name}: p50 {:.2} ms, p99 {:.2} ms",
                        round + 1,
                        q.0,
                        q.1
                    );
                }
            }
        }
        resources.push(Resources { brokers, cpu_seconds: cpu, bytes, peak_rss_kib: gateway.rss_kib().1 });
        if knobs.part("resources") && idle.is_none() {
            idle = Some(idle_connections(bin, &direct));
        }
        drop(gateway);
        drop(cluster);
    }

    let load_after = uptime_load();
    let mut report = String::new();
    let tool = match knobs.tool {
        Tool::Java => "kafka-producer-perf-test / kafka-consumer-perf-test",
        Tool::Rdkafka => "librdkafka (rdkafka crate)",
    };
    let commit = Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    // The gateway binary is built from the working tree: say so when its sources differ from the commit.
    let dirty = Command::new("git")
        .args(["status", "--porcelain", "--", "src", "api", "filters", "auth", "Cargo.toml", "Cargo.lock"])
        .output()
        .map(|o| !o.stdout.is_empty())
        .unwrap_or(false);
    let commit = format!("`{commit}`{}", if dirty { " plus uncommitted changes to the gateway's sources" } else { "" });
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_default();
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    writeln!(
        report,
        "\nGateway at commit {commit}; {cores} cores ({cpu}); load generator: {tool}; acks={}, {} partitions, replication \
         factor min(brokers, 3); {} rounds, LOAD_SCALE={}; {:.0} s; load average before {load_before}, after \
         {load_after}.\n",
        knobs.acks,
        knobs.partitions,
        knobs.repeats,
        knobs.scale,
        started.elapsed().as_secs_f64()
    )
    .ok();
    let busiest = [&load_before, &load_after]
        .iter()
        .filter_map(|l| l.split_whitespace().next().and_then(|v| v.parse::<f64>().ok()))
        .fold(0.0, f64::max);
    if busiest > cores as f64 {
        writeln!(
            report,
            "**Measured while the machine was shared** (1-minute load average up to {busiest:.1} on {cores} cores): \
             noisy numbers.\n"
        )
        .ok();
    }
    if knobs.part("throughput") {
        writeln!(
            report,
            "| brokers | scenario | direct (median) | franzgate (median) | ratio mean ± stdev | ratio min–max |"
        )
        .ok();
        writeln!(report, "|---|---|---|---|---|---|").ok();
        for (brokers, op, size) in &rows {
            let s = &results[&(*brokers, *op, *size)];
            let ratios: Vec<f64> = s.direct.iter().zip(&s.gateway).map(|(d, g)| g.0 / d.0).collect();
            let (mean, stdev) = mean_stdev(&ratios);
            let min = ratios.iter().copied().fold(f64::INFINITY, f64::min);
            let max = ratios.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let cell = |v: &[Rate]| {
                format!(
                    "{:.1} MB/s, {:.0}k rec/s",
                    median(v.iter().map(|r| r.0).collect()),
                    median(v.iter().map(|r| r.1).collect()) / 1000.0
                )
            };
            let what = if *op == "produce" {
                format!("produce {size} B acks={}", knobs.acks)
            } else {
                format!("consume {size} B")
            };
            writeln!(
                report,
                "| {brokers} | {what} | {} | {} | {mean:.2} ± {stdev:.2} | {min:.2}–{max:.2} |",
                cell(&s.direct),
                cell(&s.gateway)
            )
            .ok();
        }
        writeln!(report, "\n| brokers | gateway CPU s | GB through the gateway | CPU s per GB | peak RSS |").ok();
        writeln!(report, "|---|---|---|---|---|").ok();
        for r in &resources {
            let gb = r.bytes / 1e9;
            writeln!(
                report,
                "| {} | {:.1} | {gb:.2} | {:.2} | {} MiB |",
                r.brokers,
                r.cpu_seconds,
                r.cpu_seconds / gb,
                r.peak_rss_kib / 1024
            )
            .ok();
        }
    }
    if !latencies.is_empty() {
        writeln!(
            report,
            "\nProduce latency, 1 KiB, one producer, linger.ms=0, acks={}, {:.0} records/s (ms, medians over the \
             rounds; added = gateway − direct per round: median, min–max):\n",
            knobs.acks, knobs.latency_rate
        )
        .ok();
        writeln!(
            report,
            "| brokers | direct p50 / p99 / p99.9 | franzgate p50 / p99 / p99.9 | added p50 | added p99 |"
        )
        .ok();
        writeln!(report, "|---|---|---|---|---|").ok();
        for (brokers, (d, g)) in &latencies {
            let med = |v: &[Quantiles], f: fn(&Quantiles) -> f64| median(v.iter().map(f).collect());
            let cell =
                |v: &[Quantiles]| format!("{:.2} / {:.2} / {:.2}", med(v, |q| q.0), med(v, |q| q.1), med(v, |q| q.2));
            let added = |f: fn(&Quantiles) -> f64| {
                let diffs: Vec<f64> = d.iter().zip(g).map(|(d, g)| f(g) - f(d)).collect();
                let min = diffs.iter().copied().fold(f64::INFINITY, f64::min);
                let max = diffs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                format!("{:+.2} ({:+.2} to {:+.2})", median(diffs), min, max)
            };
            writeln!(report, "| {brokers} | {} | {} | {} | {} |", cell(d), cell(g), added(|q| q.0), added(|q| q.1))
                .ok();
        }
    }
    if let Some((idle, loaded, held)) = idle {
        writeln!(
            report,
            "\nIdle RSS {idle} KiB; with {held} idle client connections {loaded} KiB ({:.1} KiB per connection).",
            loaded.saturating_sub(idle) as f64 / held.max(1) as f64
        )
        .ok();
    }
    println!("{report}");
}
