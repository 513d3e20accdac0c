//! The cluster kit: Apache Kafka (KRaft) clusters and MirrorMaker 2 as child processes, for the tests, the
//! demo and the benchmarks.
//!
//! `scripts/install-deps.sh` puts Kafka's jars and launchers (`kafka-server-start`, `kafka-topics`, ...) into
//! `$FRANZGATE_TOOLS/kafka`. A [`KafkaCluster`] is N combined broker+controller nodes with chosen node ids on
//! free loopback ports, its data in a temporary folder. Every process runs under a small watchdog shell that
//! ends it (and removes its data) when the owning process is gone, so a cluster shared through a `static` by a
//! test binary, or one left behind by a failed test, never outlives the test run. Dropping a [`KafkaCluster`]
//! or a [`MirrorMaker`] stops its processes at once.
//!
//! This file is self-contained (it is also included by `examples/` and `benches/` with `#[path]`): it uses only
//! std, rdkafka and tempfile.
#![allow(dead_code, unused_imports)] // each includer (tests, the demo, benches) uses a part

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};

// Submodules by explicit path: this file is also included with #[path] by examples/ and benches/.
#[path = "kafka_mirror.rs"]
mod mirror;
#[path = "kafka_process.rs"]
mod process;
#[path = "kafka_tools.rs"]
mod tools;

pub use mirror::MirrorMaker;
use process::{Watched, tail};
pub use tools::{read_topic, read_topic_blocking, run_tool};

/// Where scripts/install-deps.sh puts Kafka, the Python clients and other tools.
pub fn tools_dir() -> PathBuf {
    std::env::var_os("FRANZGATE_TOOLS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/franzgate-tools"))
}

/// A Kafka launcher (`kafka-topics`, `kafka-console-consumer`, ...) from the tools cache.
pub fn kafka_bin(tool: &str) -> PathBuf {
    let path = tools_dir().join("kafka/bin").join(tool);
    assert!(path.exists(), "{} is missing: run scripts/install-deps.sh", path.display());
    path
}

/// A free loopback port (the kernel's choice; released before it is used, which is fine on a test machine).
///
/// Ports come from 10000-20999, below Linux's ephemeral range (32768-60999): a port the kernel hands out for
/// `bind(0)` is also the source port of the next outgoing connection, and on a busy machine another process took
/// one before the broker bound it. The gateways' ports (`free_ports` in mod.rs) use 21000-32767, so the two never
/// meet; a port is never handed out twice by one process.
pub fn free_port() -> u16 {
    use std::hash::{BuildHasher, Hasher};
    static GIVEN: Mutex<Vec<u16>> = Mutex::new(Vec::new());
    let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
    for _ in 0..1000 {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_usize(given.len());
        let port = 10_000 + (h.finish() % 11_000) as u16;
        if !given.contains(&port) && TcpListener::bind(("127.0.0.1", port)).is_ok() {
            given.push(port);
            return port;
        }
    }
    panic!("no free loopback port in 10000-20999")
}

/// SASL users of a cluster's client listener (PLAIN and SCRAM-SHA-256/512 all accept them).
#[derive(Clone, Debug, Default)]
pub struct SaslUsers(pub Vec<(String, String)>);

/// What kind of cluster to start.
#[derive(Clone, Debug)]
pub struct ClusterSpec {
    /// Names the cluster in logs and in its data folder.
    pub name: String,
    /// Node ids; each node is a combined broker and controller.
    pub node_ids: Vec<i32>,
    /// With users, the client listener is SASL_PLAINTEXT (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512); the brokers
    /// talk to each other on a separate plaintext listener.
    pub sasl: Option<SaslUsers>,
    /// Extra broker properties (`key=value`), after the kit's defaults.
    pub properties: Vec<(String, String)>,
    /// Node id -> the client port it advertises instead of its own (a TLS front or another proxy before it).
    pub advertised_ports: BTreeMap<i32, u16>,
    /// JVM heap and flags; tests default to a small heap and quick start-up, benchmarks want a bigger heap
    /// and the full JIT.
    pub heap_opts: String,
    /// Node id -> a fixed client port instead of a free one (the demo uses the seed's 19092-19094).
    pub client_ports: BTreeMap<i32, u16>,
    /// With TLS, the client listener is SSL (SASL_SSL with users): Kafka's own PEM key store and trust store.
    pub tls: Option<ClusterTls>,
}

/// PEM files for a cluster's SSL client listener: the CA that clients trust, the brokers' certificate (chain)
/// and its unencrypted PKCS#8 key. The kit copies them into each node's folder at start.
#[derive(Clone, Debug)]
pub struct ClusterTls {
    pub ca_pem: PathBuf,
    pub cert_pem: PathBuf,
    pub key_pem: PathBuf,
}

impl ClusterSpec {
    /// A PLAINTEXT cluster of `node_ids`.
    pub fn new(name: &str, node_ids: &[i32]) -> Self {
        Self {
            name: name.to_string(),
            node_ids: node_ids.to_vec(),
            sasl: None,
            properties: Vec::new(),
            advertised_ports: BTreeMap::new(),
            heap_opts: "-Xms192m -Xmx384m".to_string(),
            client_ports: BTreeMap::new(),
            tls: None,
        }
    }

    /// With fixed client ports, one per node id in order (the caller checked they are free).
    pub fn with_ports(mut self, ports: &[u16]) -> Self {
        self.client_ports = self.node_ids.iter().copied().zip(ports.iter().copied()).collect();
        self
    }

    /// With SASL users on the client listener.
    pub fn with_sasl(mut self, users: &[(&str, &str)]) -> Self {
        self.sasl = Some(SaslUsers(users.iter().map(|(u, p)| (u.to_string(), p.to_string())).collect()));
        self
    }

    /// With an extra broker property.
    pub fn with_property(mut self, key: &str, value: &str) -> Self {
        self.properties.push((key.to_string(), value.to_string()));
        self
    }

    /// Node `id` advertises `port` to clients instead of its own client port (something fronts it there).
    pub fn advertising(mut self, id: i32, port: u16) -> Self {
        self.advertised_ports.insert(id, port);
        self
    }

    /// With an SSL client listener (SASL_SSL with [`Self::with_sasl`]) serving `cert_pem` (chain) and `key_pem`
    /// (PKCS#8, unencrypted), for clients that trust `ca_pem`.
    pub fn with_tls(mut self, ca_pem: &Path, cert_pem: &Path, key_pem: &Path) -> Self {
        self.tls = Some(ClusterTls {
            ca_pem: ca_pem.to_path_buf(),
            cert_pem: cert_pem.to_path_buf(),
            key_pem: key_pem.to_path_buf(),
        });
        self
    }

    /// With these JVM options instead of the test defaults (e.g. for benchmarks).
    pub fn with_jvm(mut self, heap_opts: &str) -> Self {
        self.heap_opts = heap_opts.to_string();
        self
    }
}

/// One node's ports and process.
struct Node {
    id: i32,
    client_port: u16,
    controller_port: u16,
    internal_port: u16,
    dir: PathBuf,
    process: Option<Watched>,
}

/// A running KRaft cluster; stopped, and its data removed, when dropped.
pub struct KafkaCluster {
    spec: ClusterSpec,
    cluster_id: String,
    nodes: Mutex<BTreeMap<i32, Node>>,
    data: Option<tempfile::TempDir>,
}

impl KafkaCluster {
    /// Starts `spec` and waits until every broker is registered and serves metadata. Blocking: in async
    /// code, call [`Self::start_async`].
    pub fn start(spec: ClusterSpec) -> Self {
        // Another process may still take a port between its choice and the broker's bind (a port is only
        // probed, not held); such a start is tried again on new ports (fixed client ports stay as given).
        let attempts = 3;
        for attempt in 1..=attempts {
            let started = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| Self::start_once(spec.clone())));
            match started {
                Ok(cluster) => return cluster,
                Err(panic) if attempt < attempts && panic_text(&panic).contains("Address already in use") => {
                    eprintln!(
                        "{}: a port was taken before the broker bound it; starting again on new ports",
                        spec.name
                    );
                }
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
        unreachable!("the last attempt returns or panics")
    }

    fn start_once(spec: ClusterSpec) -> Self {
        let data = tempfile::Builder::new()
            .prefix(&format!("franzgate-kafka-{}-", spec.name))
            .tempdir()
            .expect("a temporary folder for the cluster");
        let nodes: BTreeMap<i32, Node> = spec
            .node_ids
            .iter()
            .map(|&id| {
                let dir = data.path().join(format!("node-{id}"));
                let node = Node {
                    id,
                    client_port: spec.client_ports.get(&id).copied().unwrap_or_else(free_port),
                    controller_port: free_port(),
                    internal_port: free_port(),
                    dir,
                    process: None,
                };
                (id, node)
            })
            .collect();
        let cluster_id = random_cluster_id();
        let cluster = Self { spec, cluster_id, nodes: Mutex::new(nodes), data: Some(data) };
        cluster.format_all();
        let ids: Vec<i32> = cluster.spec.node_ids.clone();
        for id in &ids {
            cluster.launch(*id);
        }
        cluster.wait_ready(&ids, Duration::from_secs(120));
        cluster
    }

    /// [`Self::start`] on a blocking thread.
    pub async fn start_async(spec: ClusterSpec) -> Self {
        tokio::task::spawn_blocking(move || Self::start(spec)).await.expect("cluster start thread")
    }

    /// `host:port,...` of every node's client listener.
    pub fn bootstrap(&self) -> String {
        let nodes = self.nodes.lock().expect("nodes");
        nodes.values().map(|n| format!("127.0.0.1:{}", n.client_port)).collect::<Vec<_>>().join(",")
    }

    /// The client port of node `id`.
    pub fn port(&self, id: i32) -> u16 {
        self.nodes.lock().expect("nodes").get(&id).map(|n| n.client_port).expect("a node of this cluster")
    }

    /// The node ids.
    pub fn node_ids(&self) -> Vec<i32> {
        self.spec.node_ids.clone()
    }

    /// The cluster id the nodes were formatted with.
    pub fn cluster_id(&self) -> &str {
        &self.cluster_id
    }

    /// The name given in the spec.
    pub fn name(&self) -> &str {
        &self.spec.name
    }

    /// The CA certificate (PEM) that clients of a TLS cluster trust: a copy in the cluster's own folder, which
    /// lives as long as the cluster.
    pub fn ca_file(&self) -> Option<PathBuf> {
        self.spec.tls.as_ref()?;
        let nodes = self.nodes.lock().expect("nodes");
        nodes.values().next().map(|n| n.dir.join("ca.pem"))
    }

    /// The client listener's security protocol: PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL.
    pub fn security_protocol(&self) -> &'static str {
        match (self.spec.sasl.is_some(), self.spec.tls.is_some()) {
            (false, false) => "PLAINTEXT",
            (false, true) => "SSL",
            (true, false) => "SASL_PLAINTEXT",
            (true, true) => "SASL_SSL",
        }
    }

    /// rdkafka settings that reach this cluster directly (with its SASL credentials, if any: the first user;
    /// with its CA, if TLS).
    pub fn client_config(&self) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", self.bootstrap()).set("socket.timeout.ms", "10000");
        c.set("security.protocol", self.security_protocol());
        if let Some(ca) = self.ca_file() {
            c.set("ssl.ca.location", ca.to_string_lossy().as_ref());
        }
        if let Some(SaslUsers(users)) = &self.spec.sasl {
            if let Some((user, password)) = users.first() {
                c.set("sasl.mechanism", "SCRAM-SHA-256").set("sasl.username", user).set("sasl.password", password);
            }
        }
        c
    }

    /// Creates `topic` with one single-replica partition per node, partition p on the p-th node id (so each
    /// node leads one), and waits until the metadata shows those leaders.
    pub async fn create_topic_led_by_each_node(&self, topic: &str) {
        use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
        let nodes = self.node_ids();
        let admin: AdminClient<_> = self.client_config().create().expect("admin client");
        let assignment: Vec<&[i32]> = nodes.iter().map(std::slice::from_ref).collect();
        let new_topic = NewTopic::new(topic, nodes.len() as i32, TopicReplication::Variable(&assignment));
        for r in admin.create_topics(&[new_topic], &AdminOptions::new()).await.expect("create_topics") {
            r.expect("topic created");
        }
        // Kafka answers CreateTopics before its metadata lists the new partitions' leaders.
        let direct: BaseConsumer = self.client_config().create().expect("direct client");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let leaders: Vec<i32> = direct
                .fetch_metadata(Some(topic), Duration::from_secs(5))
                .ok()
                .and_then(|md| md.topics().first().map(|t| t.partitions().iter().map(|p| p.leader()).collect()))
                .unwrap_or_default();
            if leaders == nodes {
                return;
            }
            assert!(Instant::now() < deadline, "leaders of {topic} never settled: {leaders:?}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Kills node `id` with SIGKILL (a crash: no controlled shutdown) and waits until its port is closed.
    pub fn kill(&self, id: i32) {
        let (process, port) = {
            let mut nodes = self.nodes.lock().expect("nodes");
            let node = nodes.get_mut(&id).expect("a node of this cluster");
            (node.process.take(), node.client_port)
        };
        if let Some(mut process) = process {
            process.kill_hard();
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", port)).is_ok() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Starts node `id` again on the same ports and data, and waits until the cluster lists it.
    pub fn restart(&self, id: i32) {
        self.launch(id);
        self.wait_ready(&[id], Duration::from_secs(120));
    }

    /// Stops every node now (also done on drop).
    pub fn stop(&self) {
        let mut nodes = self.nodes.lock().expect("nodes");
        for node in nodes.values_mut() {
            if let Some(mut p) = node.process.take() {
                p.kill_hard();
            }
        }
    }

    /// The process id of node `id`'s JVM while it runs (for resource measurements, e.g. the soak's CPU).
    pub fn pid(&self, id: i32) -> Option<u32> {
        let nodes = self.nodes.lock().expect("nodes");
        nodes.get(&id).and_then(|n| n.process.as_ref()).and_then(Watched::child_pid).and_then(|p| u32::try_from(p).ok())
    }

    /// The last lines of node `id`'s log, for failure messages.
    pub fn log_tail(&self, id: i32) -> String {
        let dir = self.nodes.lock().expect("nodes").get(&id).map(|n| n.dir.clone());
        dir.map(|d| tail(&d.join("kafka.log"), 40)).unwrap_or_default()
    }

    /// Node `node`'s server.properties; `voters` is every node's `id@host:controller_port`.
    fn properties(&self, node: &Node, voters: &[String]) -> String {
        let n = self.spec.node_ids.len();
        let rf = n.min(3);
        let mut p = String::new();
        let client_protocol = self.security_protocol();
        let _ = writeln!(p, "process.roles=broker,controller");
        let _ = writeln!(p, "node.id={}", node.id);
        let _ = writeln!(p, "controller.quorum.voters={}", voters.join(","));
        let _ = writeln!(
            p,
            "listeners=CLIENT://127.0.0.1:{},INTERNAL://127.0.0.1:{},CONTROLLER://127.0.0.1:{}",
            node.client_port, node.internal_port, node.controller_port
        );
        // A fronted node (see `ClusterSpec::advertising`) tells clients the front's port.
        let advertised = self.spec.advertised_ports.get(&node.id).copied().unwrap_or(node.client_port);
        let _ = writeln!(
            p,
            "advertised.listeners=CLIENT://127.0.0.1:{},INTERNAL://127.0.0.1:{}",
            advertised, node.internal_port
        );
        let _ = writeln!(
            p,
            "listener.security.protocol.map=CLIENT:{client_protocol},INTERNAL:PLAINTEXT,CONTROLLER:PLAINTEXT"
        );
        let _ = writeln!(p, "controller.listener.names=CONTROLLER");
        let _ = writeln!(p, "inter.broker.listener.name=INTERNAL");
        let _ = writeln!(p, "log.dirs={}", node.dir.join("data").display());
        // Replicated like production where the cluster has the nodes; tolerant of one node down.
        for key in ["offsets.topic.replication.factor", "transaction.state.log.replication.factor"] {
            let _ = writeln!(p, "{key}={rf}");
        }
        let _ = writeln!(p, "share.coordinator.state.topic.replication.factor={rf}");
        let _ = writeln!(p, "default.replication.factor={rf}");
        for key in ["transaction.state.log.min.isr", "share.coordinator.state.topic.min.isr", "min.insync.replicas"] {
            let _ = writeln!(p, "{key}=1");
        }
        // Start-up speed on a 2-core machine: fewer internal partitions, no rebalance delay.
        let _ = writeln!(p, "offsets.topic.num.partitions=5");
        let _ = writeln!(p, "transaction.state.log.num.partitions=5");
        let _ = writeln!(p, "group.initial.rebalance.delay.ms=0");
        let _ = writeln!(p, "num.network.threads=2");
        let _ = writeln!(p, "num.io.threads=4");
        let _ = writeln!(p, "log.cleaner.dedupe.buffer.size=8388608");
        if let Some(SaslUsers(users)) = &self.spec.sasl {
            let _ = writeln!(p, "sasl.enabled.mechanisms=PLAIN,SCRAM-SHA-256,SCRAM-SHA-512");
            let plain_users: String =
                users.iter().map(|(u, pw)| format!(" user_{u}=\"{}\"", pw.replace('"', "\\\""))).collect();
            let _ = writeln!(
                p,
                "listener.name.client.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required{plain_users};"
            );
            for mech in ["scram-sha-256", "scram-sha-512"] {
                let _ = writeln!(
                    p,
                    "listener.name.client.{mech}.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;"
                );
            }
        }
        if self.spec.tls.is_some() {
            // Kafka's PEM key store: keystore.pem (written at format time) holds the PKCS#8 key and the chain.
            let _ = writeln!(p, "listener.name.client.ssl.keystore.type=PEM");
            let _ =
                writeln!(p, "listener.name.client.ssl.keystore.location={}", node.dir.join("keystore.pem").display());
            let _ = writeln!(p, "listener.name.client.ssl.truststore.type=PEM");
            let _ = writeln!(p, "listener.name.client.ssl.truststore.location={}", node.dir.join("ca.pem").display());
        }
        for (k, v) in &self.spec.properties {
            let _ = writeln!(p, "{k}={v}");
        }
        p
    }

    /// Writes every node's properties and formats its storage (one JVM per node, in parallel).
    fn format_all(&self) {
        let mut formats = Vec::new();
        let written: Vec<(i32, PathBuf, String)> = {
            let nodes = self.nodes.lock().expect("nodes");
            let voters: Vec<String> =
                nodes.values().map(|v| format!("{}@127.0.0.1:{}", v.id, v.controller_port)).collect();
            nodes.values().map(|n| (n.id, n.dir.clone(), self.properties(n, &voters))).collect()
        };
        for (id, dir, props) in written {
            std::fs::create_dir_all(&dir).expect("node folder");
            if let Some(tls) = &self.spec.tls {
                let read = |path: &Path| {
                    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
                };
                let keystore = format!("{}\n{}", read(&tls.key_pem).trim_end(), read(&tls.cert_pem));
                std::fs::write(dir.join("keystore.pem"), keystore).expect("keystore.pem");
                std::fs::write(dir.join("ca.pem"), read(&tls.ca_pem)).expect("ca.pem");
            }
            std::fs::write(dir.join("server.properties"), props).expect("server.properties");
            let mut cmd = Command::new(kafka_bin("kafka-storage"));
            cmd.arg("format").arg("-t").arg(&self.cluster_id).arg("-c").arg(dir.join("server.properties"));
            if let Some(SaslUsers(users)) = &self.spec.sasl {
                for (u, pw) in users {
                    for mech in ["SCRAM-SHA-256", "SCRAM-SHA-512"] {
                        cmd.arg("--add-scram").arg(format!("{mech}=[name={u},password={pw}]"));
                    }
                }
            }
            let log = std::fs::File::create(dir.join("format.log")).expect("format log");
            let err = log.try_clone().expect("format log");
            formats.push((id, dir, cmd.stdout(log).stderr(err).spawn().expect("kafka-storage format")));
        }
        for (id, dir, mut child) in formats {
            let status = child.wait().expect("kafka-storage format");
            assert!(
                status.success(),
                "formatting node {id} of {} failed:\n{}",
                self.spec.name,
                tail(&dir.join("format.log"), 30)
            );
        }
    }

    fn launch(&self, id: i32) {
        let mut nodes = self.nodes.lock().expect("nodes");
        let node = nodes.get_mut(&id).expect("a node of this cluster");
        let mut cmd = Command::new(kafka_bin("kafka-server-start"));
        cmd.arg(node.dir.join("server.properties"))
            .env("KAFKA_HEAP_OPTS", &self.spec.heap_opts)
            // The launcher's default flags favour start-up; a benchmark's heap_opts may override them.
            .env("KAFKA_OPTS", "-XX:TieredStopAtLevel=4");
        node.process = Some(Watched::spawn(cmd, &node.dir.join("kafka.log"), &format!("{} node {id}", self.spec.name)));
    }

    /// Waits until every node in `ids` accepts connections and the cluster's metadata lists them all.
    fn wait_ready(&self, ids: &[i32], timeout: Duration) {
        let deadline = Instant::now() + timeout;
        for &id in ids {
            let port = self.port(id);
            while TcpStream::connect(("127.0.0.1", port)).is_err() {
                self.check_alive(id);
                assert!(
                    Instant::now() < deadline,
                    "{} node {id} did not open its port:\n{}",
                    self.spec.name,
                    self.log_tail(id)
                );
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        let consumer: BaseConsumer = self.client_config().create().expect("metadata client");
        let want: Vec<i32> = self.spec.node_ids.clone();
        loop {
            if let Ok(md) = consumer.fetch_metadata(None, Duration::from_secs(5)) {
                let mut have: Vec<i32> = md.brokers().iter().map(|b| b.id()).collect();
                have.sort_unstable();
                if have == want {
                    return;
                }
            }
            for &id in ids {
                self.check_alive(id);
            }
            assert!(
                Instant::now() < deadline,
                "{} never listed all of {want:?}:\n{}",
                self.spec.name,
                self.log_tail(ids[0])
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn check_alive(&self, id: i32) {
        let exited = {
            let mut nodes = self.nodes.lock().expect("nodes");
            nodes.get_mut(&id).and_then(|n| n.process.as_mut()).map(|p| p.exited()).unwrap_or(false)
        };
        assert!(!exited, "{} node {id} exited:\n{}", self.spec.name, self.log_tail(id));
    }
}

impl Drop for KafkaCluster {
    fn drop(&mut self) {
        self.stop();
        drop(self.data.take());
    }
}

/// A cluster started once per test binary and shared by its tests (isolated by unique topic and group names):
/// a JVM start costs seconds, and CI must stay fast. Its processes end with the test binary.
pub async fn shared_cluster() -> &'static KafkaCluster {
    static SHARED: OnceLock<KafkaCluster> = OnceLock::new();
    shared(&SHARED, || ClusterSpec::new("shared", &[1])).await
}

/// Two clusters shared by a test binary, `main` (nodes 1, 2, 3) and `failover` (nodes 4, 5, 6): different broker
/// ids on purpose, franzgate's virtual node ids make them irrelevant to clients.
pub async fn shared_pair() -> (&'static KafkaCluster, &'static KafkaCluster) {
    static MAIN: OnceLock<KafkaCluster> = OnceLock::new();
    static FAILOVER: OnceLock<KafkaCluster> = OnceLock::new();
    let main = shared(&MAIN, || ClusterSpec::new("main", &[1, 2, 3]));
    let failover = shared(&FAILOVER, || ClusterSpec::new("failover", &[4, 5, 6]));
    tokio::join!(main, failover)
}

/// Fills `cell` once (other callers wait) on a blocking thread.
pub async fn shared(cell: &'static OnceLock<KafkaCluster>, spec: fn() -> ClusterSpec) -> &'static KafkaCluster {
    tokio::task::spawn_blocking(move || cell.get_or_init(|| KafkaCluster::start(spec())))
        .await
        .expect("cluster start thread")
}

/// The message of a caught panic.
fn panic_text(panic: &Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default()
}

/// A KRaft cluster id: 16 random bytes, base64url without padding (what `kafka-storage random-uuid` prints).
fn random_cluster_id() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut bytes = Vec::with_capacity(16);
    for i in 0..2u64 {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(i ^ u64::from(std::process::id()));
        bytes.extend_from_slice(&h.finish().to_be_bytes());
    }
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    let mut acc = 0u32;
    let mut bits = 0;
    for b in bytes {
        acc = (acc << 8) | u32::from(b);
        bits += 8;
        while bits >= 6 {
            bits -= 6;
            out.push(char::from(ALPHABET[((acc >> bits) & 63) as usize]));
        }
    }
    if bits > 0 {
        out.push(char::from(ALPHABET[((acc << (6 - bits)) & 63) as usize]));
    }
    // An id starting with '-' reads as an option to kafka-storage (Kafka's own Uuid.randomUuid avoids them too).
    if out.starts_with('-') {
        out.replace_range(..1, "A");
    }
    out
}
