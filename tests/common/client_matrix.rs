//! The client matrix: one small driver program per client family (Java, librdkafka/confluent-kafka, kafka-python,
//! franz-go, kafkajs), each run the same way by the test binaries `tests/client_<family>.rs`.
//!
//! # The driver contract
//! A driver is a program run as `<program> <command> key=value ...`. It prints JSON lines on stdout; the last
//! one is its result. It exits 0 when the command did what it was asked, non-zero otherwise (with the reason on
//! stderr). Commands:
//! - `produce bootstrap=B topic=T count=N [idempotent=true] [acks=all] [rate=R] [key_prefix=K]` and the SASL keys
//!   below: produces records with keys `K-0` .. `K-(N-1)` (value = key), at most `R` per second when `rate` is
//!   given, and prints `{"acked": n}` after every 100 acknowledgements (Java and confluent-kafka also
//!   `{"sent": n}` after every 100 records handed to the client). Result:
//!   `{"client": "...", "version": "...", "produced": n, "errors": ["...", ...]}` — `errors` lists every error
//!   that reached the application (delivery reports, exceptions), empty when none did.
//! - `consume bootstrap=B topic=T group=G count=N [protocol=classic|consumer] [timeout_ms=M]` and the SASL keys:
//!   consumes in consumer group `G` (committing offsets) until it has seen `N` distinct keys or `timeout_ms`
//!   (default 60000) passed. Prints `{"consumed": n}` every 100 records. Result:
//!   `{"client", "version", "consumed": n, "keys": [...distinct keys...], "errors": [...]}`.
//! - SASL keys (both commands): `user=U password=P mechanism=PLAIN|SCRAM-SHA-256` — SASL_PLAINTEXT.
//!
//! Unknown keys are an error, so a typo in a test fails loudly.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};

/// How to start one client family's driver.
#[derive(Debug, Clone)]
pub struct Driver {
    /// The family's name in the matrix (`java`, `franz-go`, ...).
    pub name: &'static str,
    /// The program (an interpreter, `java`, or a built binary).
    pub program: PathBuf,
    /// Arguments before the command (a script path, `-cp ... Main`).
    pub prefix: Vec<String>,
}

/// A driver's final JSON result, with its stderr for failure messages.
#[derive(Debug)]
pub struct Outcome {
    /// The last JSON line on stdout.
    pub result: Value,
    /// Every JSON line before it (progress).
    pub progress: Vec<Value>,
    /// The process's exit status was success.
    pub success: bool,
    /// What it wrote on stderr.
    pub stderr: String,
}

impl Outcome {
    /// The errors that reached the application, as the driver reported them.
    pub fn errors(&self) -> Vec<String> {
        self.result["errors"]
            .as_array()
            .map(|a| a.iter().map(|e| e.as_str().map_or_else(|| e.to_string(), str::to_string)).collect())
            .unwrap_or_default()
    }

    /// A number in the result.
    pub fn count(&self, key: &str) -> u64 {
        self.result[key].as_u64().unwrap_or(0)
    }

    /// The distinct keys a consume saw.
    pub fn keys(&self) -> std::collections::BTreeSet<String> {
        self.result["keys"]
            .as_array()
            .map(|a| a.iter().filter_map(|k| k.as_str().map(str::to_string)).collect())
            .unwrap_or_default()
    }
}

/// A driver started in the background; its progress lines can be awaited.
pub struct Running {
    child: tokio::process::Child,
    lines: tokio::sync::mpsc::UnboundedReceiver<Value>,
    seen: Vec<Value>,
    stderr: tokio::task::JoinHandle<String>,
}

impl Driver {
    /// Starts `command` with `args` (`key=value` strings) in the background.
    pub fn start(&self, command: &str, args: &[String]) -> Running {
        let mut child = tokio::process::Command::new(&self.program)
            .args(&self.prefix)
            .arg(command)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("start the {} driver ({}): {e}", self.name, self.program.display()));
        let stdout = child.stdout.take().expect("stdout");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, lines) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut reader = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = reader.next_line().await {
                if let Ok(value) = serde_json::from_str::<Value>(&line) {
                    let _ = tx.send(value);
                }
            }
        });
        let stderr = tokio::spawn(async move {
            let mut text = String::new();
            let mut reader = BufReader::new(stderr).lines();
            while let Ok(Some(line)) = reader.next_line().await {
                text.push_str(&line);
                text.push('\n');
            }
            text
        });
        Running { child, lines, seen: Vec::new(), stderr }
    }

    /// Runs `command` to its end (at most `timeout`).
    pub async fn run(&self, command: &str, args: &[String], timeout: Duration) -> Outcome {
        self.start(command, args).finish(timeout).await
    }
}

impl Running {
    /// Waits until a progress line has `key` at `at_least` or more (e.g. `acked` >= 300). Every line stays
    /// seen, so it can be called again with a higher mark.
    pub async fn await_progress(&mut self, key: &str, at_least: u64, timeout: Duration) {
        if !self.await_progress_or_exit(key, at_least, timeout).await {
            panic!("the driver ended before {key} reached {at_least}; it printed {:?}", self.seen);
        }
    }

    /// [`Self::await_progress`] that returns `false` instead of failing when the driver ended first (its result
    /// then says why: [`Self::finish`]).
    pub async fn await_progress_or_exit(&mut self, key: &str, at_least: u64, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if self.latest_seen(key) >= at_least {
                return true;
            }
            match tokio::time::timeout_at(deadline, self.lines.recv()).await {
                Ok(Some(value)) => self.seen.push(value),
                Ok(None) => return false,
                Err(_) => {
                    panic!("{key} did not reach {at_least} within {timeout:?}; the driver printed {:?}", self.seen)
                }
            }
        }
    }

    /// The highest `key` the driver has reported so far (0 before any), counting lines printed by now.
    pub fn latest(&mut self, key: &str) -> u64 {
        while let Ok(value) = self.lines.try_recv() {
            self.seen.push(value);
        }
        self.latest_seen(key)
    }

    fn latest_seen(&self, key: &str) -> u64 {
        self.seen.iter().filter_map(|v| v[key].as_u64()).max().unwrap_or(0)
    }

    /// Waits for the driver to exit (at most `timeout`) and collects its result.
    pub async fn finish(mut self, timeout: Duration) -> Outcome {
        let status = tokio::time::timeout(timeout, self.child.wait()).await;
        let success = matches!(status, Ok(Ok(s)) if s.success());
        if status.is_err() {
            let _ = self.child.kill().await;
        }
        while let Ok(value) = self.lines.try_recv() {
            self.seen.push(value);
        }
        // The reader task may still hold the last line: give it until the pipe closes.
        while let Ok(Some(value)) = tokio::time::timeout(Duration::from_secs(5), self.lines.recv()).await {
            self.seen.push(value);
        }
        let stderr = self.stderr.await.unwrap_or_default();
        let result = self.seen.pop().unwrap_or(Value::Null);
        if status.is_err() {
            panic!("the driver did not finish within {timeout:?}; stderr:\n{stderr}");
        }
        Outcome { result, progress: self.seen, success, stderr }
    }
}

/// `key=value` arguments from pairs.
pub fn args(pairs: &[(&str, &str)]) -> Vec<String> {
    pairs.iter().map(|(k, v)| format!("{k}={v}")).collect()
}

/// MirrorMaker 2 intervals short enough for tests (topics, groups and offsets copied every 2 s), and its source
/// consumer reading committed records only: a transaction open on main at a switch is aborted there, and must
/// not reach the failover as plain records (MirrorMaker's default, read_uncommitted, would copy them).
const MM2_EXTRA: &str = "refresh.topics.interval.seconds=2\nrefresh.groups.interval.seconds=2\noffset.flush.interval.ms=1000\n\
    sync.group.offsets.interval.seconds=2\nemit.checkpoints.interval.seconds=2\nmain.consumer.isolation.level=read_committed\n";

/// The binary's shared pair (`main` nodes 1-3, `failover` nodes 4-6) with MirrorMaker 2 copying main to failover
/// (the seed's `mm2.properties`), started once per test binary.
pub async fn mirrored_pair() -> (&'static super::KafkaCluster, &'static super::KafkaCluster) {
    static MM2: std::sync::OnceLock<super::MirrorMaker> = std::sync::OnceLock::new();
    let (main, failover) = super::shared_pair().await;
    MM2.get_or_init(|| {
        super::MirrorMaker::start(&super::MirrorMaker::seed_properties(
            &main.bootstrap(),
            &failover.bootstrap(),
            MM2_EXTRA,
        ))
    });
    (main, failover)
}

/// One cell of the matrix, appended to `target/client-matrix/<family>.jsonl` when dropped (so a failing test
/// records its cell too): passed unless the test is panicking, or the client has no such feature.
pub struct Cell {
    family: &'static str,
    version: String,
    capability: &'static str,
    supported: bool,
}

impl Cell {
    /// A capability of `family` at `version` being tested now.
    pub fn new(family: &'static str, version: String, capability: &'static str) -> Self {
        Self { family, version, capability, supported: true }
    }

    /// A capability the client does not have (recorded as such, not as a failure of the gateway).
    pub fn unsupported(family: &'static str, version: String, capability: &'static str) -> Self {
        Self { family, version, capability, supported: false }
    }
}

impl Drop for Cell {
    fn drop(&mut self) {
        use std::io::Write;
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/client-matrix");
        let line = serde_json::json!({
            "client": self.family,
            "version": self.version,
            "capability": self.capability,
            "pass": self.supported && !std::thread::panicking(),
            "supported": self.supported,
        });
        let written = std::fs::create_dir_all(&dir).and_then(|()| {
            let path = dir.join(format!("{}.jsonl", self.family));
            let mut file = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
            writeln!(file, "{line}")
        });
        if let Err(e) = written {
            eprintln!("could not record the matrix cell {line}: {e}");
        }
    }
}

/// Fails with the driver's result and stderr unless it exited 0 with no errors reaching the application, named
/// `family` and (when given) ran release `version`.
pub fn assert_clean(family: &str, version: Option<&str>, what: &str, outcome: &Outcome) {
    assert!(
        outcome.success && outcome.errors().is_empty(),
        "{what}: result {}\nstderr:\n{}",
        outcome.result,
        outcome.stderr
    );
    assert_eq!(outcome.result["client"], family, "{what}: the result names the client");
    if let Some(version) = version {
        assert_eq!(outcome.result["version"].as_str(), Some(version), "{what}: the pinned release ran");
    }
}

/// `prefix-0` .. `prefix-(n-1)`: the keys a driver's `produce` writes.
pub fn keys(prefix: &str, n: u64) -> std::collections::BTreeSet<String> {
    (0..n).map(|i| format!("{prefix}-{i}")).collect()
}

/// The sum over `topic`'s `partitions` of the offsets `group` committed on `cluster` (read directly). Retries for
/// up to 30 s while the group coordinator loads.
pub fn committed_total(cluster: &super::KafkaCluster, group: &str, topic: &str, partitions: i32) -> i64 {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::{Offset, TopicPartitionList};
    let reader: BaseConsumer = cluster.client_config().set("group.id", group).create().expect("reader");
    let mut wanted = TopicPartitionList::new();
    for p in 0..partitions {
        wanted.add_partition(topic, p);
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        match reader.committed_offsets(wanted.clone(), Duration::from_secs(10)) {
            Ok(committed) => {
                return committed
                    .elements()
                    .iter()
                    .map(|e| if let Offset::Offset(n) = e.offset() { n } else { 0 })
                    .sum();
            }
            Err(e) if std::time::Instant::now() < deadline => eprintln!("committed offsets of {group}, retrying: {e}"),
            Err(e) => panic!("committed offsets of {group}: {e}"),
        }
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// Where scripts/install-deps.sh puts kafka-clients' jars (`libs/`) and the compiled Java driver (`classes/`).
fn java_dir() -> PathBuf {
    super::tools_dir().join("clients/java")
}

/// The Java driver (tests/clients/java/Driver.java): `java` with light JVM flags (fast start-up) on the driver's
/// classes and kafka-clients' jars.
pub fn java_driver() -> Driver {
    java_program("java", &java_dir(), "Driver")
}

/// `java` with light JVM flags (fast start-up) running `main_class` from `dir/classes` with the jars of
/// `dir/libs` (a driver scripts/install-deps.sh compiled there).
pub fn java_program(name: &'static str, dir: &std::path::Path, main_class: &str) -> Driver {
    let class = dir.join(format!("classes/{main_class}.class"));
    assert!(class.exists(), "{} missing: run scripts/install-deps.sh", class.display());
    let classpath = format!("{}:{}/*", dir.join("classes").display(), dir.join("libs").display());
    let prefix = [
        "-XX:+UseSerialGC",
        "-XX:TieredStopAtLevel=1",
        "-Xmx256m",
        "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn",
        "-cp",
        &classpath,
        main_class,
    ];
    Driver { name, program: PathBuf::from("java"), prefix: prefix.iter().map(|s| s.to_string()).collect() }
}

/// The kafka-clients release installed in the tools cache (the jar's name).
pub fn java_version() -> String {
    let Ok(entries) = std::fs::read_dir(java_dir().join("libs")) else { return String::new() };
    entries
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .find_map(|name| Some(name.strip_prefix("kafka-clients-")?.strip_suffix(".jar")?.to_string()))
        .unwrap_or_default()
}

/// The kafkajs driver (tests/clients/kafkajs/driver.js) on the kafkajs release in the tools cache.
pub fn kafkajs_driver() -> Driver {
    let installed = super::tools_dir().join("clients/kafkajs/node_modules/kafkajs/package.json");
    assert!(installed.exists(), "{} missing: run scripts/install-deps.sh", installed.display());
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/clients/kafkajs/driver.js");
    Driver { name: "kafkajs", program: PathBuf::from("node"), prefix: vec![script.display().to_string()] }
}

/// The kafkajs release installed in the tools cache.
pub fn kafkajs_version() -> String {
    let manifest = super::tools_dir().join("clients/kafkajs/node_modules/kafkajs/package.json");
    let text = std::fs::read_to_string(&manifest).unwrap_or_default();
    serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .and_then(|v| v["version"].as_str().map(str::to_string))
        .unwrap_or_default()
}

/// The franz-go driver scripts/install-deps.sh built into the tools cache.
pub fn franz_go_driver() -> Driver {
    let program = super::tools_dir().join("clients/franz-go/driver");
    assert!(program.exists(), "{} missing: run scripts/install-deps.sh", program.display());
    Driver { name: "franz-go", program, prefix: Vec::new() }
}

/// The franz-go release the driver was built with (its go.mod's pin).
pub fn franz_go_version() -> String {
    let go_mod = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/clients/franz-go/go.mod");
    std::fs::read_to_string(go_mod)
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("require github.com/twmb/franz-go v").map(|v| v.trim().to_string()))
        .unwrap_or_default()
}
