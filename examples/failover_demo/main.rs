//! Conduktor's "Cluster Switching / Failover" demo (conduktor-gateway-demos, `cluster-switching/`), step for
//! step, on Apache Kafka and MirrorMaker 2 with the `franzgate` binary in place of Conduktor Gateway: two
//! 3-broker Kafka clusters, MirrorMaker 2 with the seed's mm2.properties, two gateway instances started with the
//! seed's docker-compose variables unchanged, virtual cluster teamA, Kafka's own command-line tools as the
//! clients, and the switch through the admin API with curl. Each step prints its title, the command as the seed
//! writes it, and that command's real output.
//!
//! Run it with `scripts/demo.sh` (which installs Kafka and builds the binary), or
//! `cargo run --example failover_demo -- target/debug/franzgate`. `tests/demo.rs` runs the same code on free
//! ports and checks every step through the returned [`DemoReport`].

#[path = "../../tests/common/kafka.rs"]
mod kafka;
#[path = "shell.rs"]
mod shell;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use kafka::{ClusterSpec, KafkaCluster, MirrorMaker};
use shell::{Narrator, Tool, gib};

/// The seed's records, produced with `kafka-console-producer` exactly as its steps 10 and 17 echo them.
pub const TOM: &str = r##"{"name":"tom","username":"tom@conduktor.io","password":"motorhead","visa":"#abc123","address":"Chancery lane, London"}"##;
pub const LAURA: &str = r##"{"name":"laura","username":"laura@conduktor.io","password":"kitesurf","visa":"#888999XZ","address":"Dubai, UAE"}"##;
pub const ALICE: &str =
    r##"{"name":"alice","username":"alice@conduktor.io","password":"youpi","visa":"#812SSS","address":"Les ifs"}"##;

/// franzgate's state topic (virtual clusters, service accounts, the generated token secret): the seed's
/// step 12 waits for the gateway's internal topic on the failover cluster.
pub const STATE_TOPIC: &str = "_franzgate_state";

/// The seed's mm2.properties, verbatim but for the two bootstrap lines (`@MAIN@`, `@FAILOVER@`).
const MM2_PROPERTIES: &str = "# specify any number of cluster aliases
clusters = main, failover

# connection information for each cluster
main.bootstrap.servers = @MAIN@
failover.bootstrap.servers = @FAILOVER@

# enable and configure individual replication flows
main->failover.enabled = true
# Do not rename topics
replication.policy.class=org.apache.kafka.connect.mirror.IdentityReplicationPolicy

# regex which defines which topics gets replicated.
main->failover.topics = .*
refresh.topics.interval.seconds=10
main.consumer.auto.offset.reset=earliest
# franzgate: copy only committed records, so a transaction aborted on main (one open at a switch) is not copied
# to the failover as plain records
main.consumer.isolation.level=read_committed

# regex which defines which consumer groups gets replicated.
main->failover.groups = .*
sync.group.offsets.enabled=true
refresh.groups.interval.seconds=10

# Setting replication factor of newly created remote topics
replication.factor=1

############################# Internal Topic Settings  #############################
# The replication factor for mm2 internal topics \"heartbeats\", \"B.checkpoints.internal\" and \"mm2-offset-syncs.B.internal\"
# For anything other than development testing, a value greater than 1 is recommended to ensure availability such as 3.
checkpoints.topic.replication.factor=1
heartbeats.topic.replication.factor=1
offset-syncs.topic.replication.factor=1

# The replication factor for connect internal topics \"mm2-configs.B.internal\", \"mm2-offsets.B.internal\" and
# \"mm2-status.B.internal\"
# For anything other than development testing, a value greater than 1 is recommended to ensure availability such as 3.
offset.storage.replication.factor=1
status.storage.replication.factor=1
config.storage.replication.factor=1
";

/// Every port the demo listens on.
#[derive(Clone, Debug, PartialEq)]
pub struct DemoPorts {
    pub main: [u16; 3],
    pub failover: [u16; 3],
    /// gateway1's first broker port (it opens one per backend broker: 6969-6971) and its admin API.
    pub gateway1: u16,
    pub admin1: u16,
    pub gateway2: u16,
    pub admin2: u16,
}

impl DemoPorts {
    /// The seed's: main 19092-19094, failover 29092-29094, gateway1 6969-6971 and 8888, gateway2 7969-7971 and
    /// 8889 (docker mapped gateway2's 8888 there).
    pub fn seed() -> Self {
        Self {
            main: [19092, 19093, 19094],
            failover: [29092, 29093, 29094],
            gateway1: 6969,
            admin1: 8888,
            gateway2: 7969,
            admin2: 8889,
        }
    }

    /// Free ones (held together while chosen, so none is handed out twice; the gateways' in runs of three).
    pub fn free() -> Self {
        let mut held = Vec::new();
        let mut take = |count: u16| -> u16 {
            loop {
                let base = kafka::free_port();
                let run: Vec<_> = (0..count)
                    .map_while(|i| std::net::TcpListener::bind(("0.0.0.0", base.checked_add(i)?)).ok())
                    .collect();
                if run.len() == usize::from(count) {
                    held.extend(run);
                    return base;
                }
            }
        };
        let (m, f) = ([take(1), take(1), take(1)], [take(1), take(1), take(1)]);
        Self { main: m, failover: f, gateway1: take(3), admin1: take(1), gateway2: take(3), admin2: take(1) }
    }

    /// Those already in use.
    pub fn busy(&self) -> Vec<u16> {
        let g = |p: u16| [p, p + 1, p + 2];
        let all = self.main.iter().chain(&self.failover).copied().chain(g(self.gateway1)).chain(g(self.gateway2));
        all.chain([self.admin1, self.admin2])
            .filter(|p| std::net::TcpListener::bind(("0.0.0.0", *p)).is_err())
            .collect()
    }
}

/// What each step produced, for `tests/demo.rs`.
#[derive(Debug, Default)]
pub struct DemoReport {
    /// teamA-sa.properties as written.
    pub properties: String,
    /// The service account's token (the password in teamA-sa.properties).
    pub token: String,
    /// `kafka-topics --create` through gateway1.
    pub create_output: String,
    /// `kafka-topics --list` on main, after the two records.
    pub main_topics: Vec<String>,
    /// Main's `teamAusers` read directly before the switch (names).
    pub main_before_switch: Vec<String>,
    /// Failover's `teamAusers` once MirrorMaker 2 copied it (names; the demo never writes to failover).
    pub mirrored: Vec<String>,
    /// Records of the gateway's state topic on main and on failover when MirrorMaker had copied it.
    pub state_records: (i64, i64),
    /// `kafka-topics --list` on failover.
    pub failover_topics: Vec<String>,
    /// The answers to the switches, in order: gateway1 and gateway2 to failover, then both back to main.
    pub switch_answers: Vec<String>,
    /// `users` through gateway1 after the switch (names).
    pub through_gateway1: Vec<String>,
    /// `users` through gateway2 with the same teamA-sa.properties, after the switch (names).
    pub through_gateway2: Vec<String>,
    /// Main's and failover's `teamAusers` read directly after the switch (names).
    pub main_after: Vec<String>,
    pub failover_after: Vec<String>,
    /// `users` through gateway1 after switching back to main (names).
    pub after_switch_back: Vec<String>,
    /// The highest total resident memory of the demo's processes.
    pub peak: shell::Peak,
}

/// A franzgate instance started with the seed's variables; killed when dropped.
struct Gateway {
    child: tokio::process::Child,
    log: PathBuf,
    admin: String,
}

impl Gateway {
    async fn start(bin: &Path, env: &[(&str, String)], log: PathBuf, admin_port: u16) -> anyhow::Result<Self> {
        let file = std::fs::File::create(&log)?;
        let child = tokio::process::Command::new(bin)
            .env_clear()
            .envs(env.iter().map(|(k, v)| (*k, v)))
            .stdin(Stdio::null())
            .stdout(file.try_clone()?)
            .stderr(file)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        Ok(Self { child, log, admin: format!("127.0.0.1:{admin_port}") })
    }

    /// Waits for the readiness probe (the seed's healthcheck curls `/health`).
    async fn ready(&mut self) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            if let Some(status) = self.child.try_wait()? {
                bail!("franzgate exited ({status}):\n{}", self.log_tail());
            }
            if let Ok((200, _)) = franzgate::admin::client::call(&self.admin, "GET", "/health/ready", None).await {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("franzgate not ready within 90 s:\n{}", self.log_tail());
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<_> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }
}

/// The seed's docker-compose environment of gateway1 (`gateway2`: false) or gateway2, with `clusters.yaml` at
/// `config`; plus what docker's port mapping did (gateway2's admin API on 8889) and non-seed ports.
fn gateway_env(gateway2: bool, ports: &DemoPorts, main: &str, config: &Path) -> Vec<(&'static str, String)> {
    let (broker, admin, seed_broker, seed_admin) = match gateway2 {
        false => (ports.gateway1, ports.admin1, 6969, 8888),
        true => (ports.gateway2, ports.admin2, 7969, 8888),
    };
    let mut env = vec![
        ("KAFKA_BOOTSTRAP_SERVERS", main.to_string()),
        ("GATEWAY_ADVERTISED_HOST", "localhost".into()),
        ("GATEWAY_MODE", "VCLUSTER".into()),
        ("GATEWAY_SECURITY_PROTOCOL", "SASL_PLAINTEXT".into()),
        ("GATEWAY_FEATURE_FLAGS_ANALYTICS", "false".into()),
    ];
    if gateway2 || broker != seed_broker {
        env.push(("GATEWAY_START_PORT", broker.to_string()));
    }
    env.push(("GATEWAY_FEATURE_FLAGS_MULTI_TENANCY", "true".into()));
    env.push(("GATEWAY_CLUSTER_ID", "private".into()));
    env.push(("GATEWAY_BACKEND_KAFKA_SELECTOR", format!("file : {{ path:  {}}}", config.display())));
    if admin != seed_admin {
        env.push(("GATEWAY_HTTP_PORT", admin.to_string()));
    }
    env
}

fn hosts(ports: &[u16]) -> String {
    ports.iter().map(|p| format!("localhost:{p}")).collect::<Vec<_>>().join(",")
}

/// Records in `topic` on a cluster (the sum over partitions of high minus low watermarks); None while the topic
/// does not exist.
fn record_count(cluster: &KafkaCluster, topic: &str) -> Option<i64> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let consumer: BaseConsumer = cluster.client_config().create().ok()?;
    let md = consumer.fetch_metadata(Some(topic), Duration::from_secs(5)).ok()?;
    let t = md.topics().first().filter(|t| t.error().is_none() && !t.partitions().is_empty())?;
    let mut total = 0;
    for p in t.partitions() {
        let (low, high) = consumer.fetch_watermarks(topic, p.id(), Duration::from_secs(5)).ok()?;
        total += high - low;
    }
    Some(total)
}

/// Waits until MirrorMaker 2 has copied at least as many records of `topic` to failover as main holds.
async fn wait_mirrored(
    main: &Arc<KafkaCluster>,
    failover: &Arc<KafkaCluster>,
    mm2: &mut MirrorMaker,
    topic: &'static str,
) -> anyhow::Result<(i64, i64, Duration)> {
    let started = Instant::now();
    loop {
        let (m, f) = (main.clone(), failover.clone());
        let counts = tokio::task::spawn_blocking(move || (record_count(&m, topic), record_count(&f, topic))).await?;
        if let (Some(m), Some(f)) = counts {
            if m > 0 && f >= m {
                return Ok((m, f, started.elapsed()));
            }
        }
        if mm2.exited() || started.elapsed() > Duration::from_secs(150) {
            bail!("MirrorMaker 2 did not copy {topic} ({counts:?} records on main, failover):\n{}", mm2.log_tail());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

fn names(records: &[String]) -> Vec<String> {
    records
        .iter()
        .filter_map(|r| serde_json::from_str::<serde_json::Value>(r).ok()?["name"].as_str().map(str::to_string))
        .collect()
}

fn consumer<'a>(bootstrap: &str, config: bool, topic: &str, max: Option<u32>, timeout_ms: u32) -> Tool<'a> {
    let mut lines = vec![format!("--bootstrap-server {bootstrap}")];
    if config {
        lines.push("--consumer.config teamA-sa.properties".into());
    }
    lines.push(format!("--topic {topic}"));
    lines.push("--from-beginning".into());
    if let Some(max) = max {
        lines.push(format!("--max-messages {max}"));
    }
    lines.push(format!("--timeout-ms {timeout_ms}"));
    Tool { name: "kafka-console-consumer", lines, echo: None, jq: true }
}

fn producer<'a>(gateway: u16, record: &'a str) -> Tool<'a> {
    let lines = vec![
        format!("--bootstrap-server localhost:{gateway}"),
        "--producer.config teamA-sa.properties".into(),
        "--topic users".into(),
    ];
    Tool { name: "kafka-console-producer", lines, echo: Some(record), jq: false }
}

fn list_topics<'a>(bootstrap: &str) -> Tool<'a> {
    Tool {
        name: "kafka-topics",
        lines: vec![format!("--bootstrap-server {bootstrap}"), "--list".into()],
        echo: None,
        jq: false,
    }
}

/// Runs the demo with the `franzgate` binary at `bin` on `ports`, narrating to `out`.
pub async fn run_demo(bin: &Path, ports: &DemoPorts, out: &mut (dyn Write + Send)) -> anyhow::Result<DemoReport> {
    let sampler = shell::RssSampler::start();
    let result = demo(bin, ports, out).await;
    let peak = sampler.finish();
    let mut report = result?;
    report.peak = peak;
    writeln!(
        out,
        "\nPeak memory of the demo's {} processes together (resident, sampled from /proc every 250 ms): {} \
         (Java: {}, franzgate: {})",
        peak.processes,
        gib(peak.total),
        gib(peak.java),
        gib(peak.franzgate)
    )?;
    Ok(report)
}

async fn demo(bin: &Path, ports: &DemoPorts, out: &mut (dyn Write + Send)) -> anyhow::Result<DemoReport> {
    let mut report = DemoReport::default();
    let say = &mut Narrator::new(out);
    let dir = tempfile::Builder::new().prefix("franzgate-demo-").tempdir()?;
    let (main_hosts, failover_hosts) = (hosts(&ports.main), hosts(&ports.failover));
    say.say("# Cluster Switching / Failover")?;

    say.step(
        "Starting the environment",
        &format!(
            "The seed starts it with `docker compose up --detach --wait`; here each piece is a local process.\n\
             main: Apache Kafka, nodes 1, 2, 3 on {main_hosts}\n\
             failover: Apache Kafka, nodes 4, 5, 6 on {failover_hosts}\n\
             The seed gives both clusters broker ids 1, 2, 3 because Conduktor Gateway needs common broker ids.\n\
             franzgate gives each cluster's brokers virtual node ids (in ascending backend id order), so the\n\
             failover's brokers keep their own ids 4, 5, 6 and clients never notice.\n\
             auto.create.topics.enable=false on both, as the seed's KAFKA_AUTO_CREATE_TOPICS_ENABLE."
        ),
    )?;
    let spec = |name: &str, ids: &[i32], ports: &[u16]| {
        ClusterSpec::new(name, ids).with_ports(ports).with_property("auto.create.topics.enable", "false")
    };
    let started = Instant::now();
    let (main, failover) = tokio::join!(
        KafkaCluster::start_async(spec("main", &[1, 2, 3], &ports.main)),
        KafkaCluster::start_async(spec("failover", &[4, 5, 6], &ports.failover))
    );
    let (main, failover) = (Arc::new(main), Arc::new(failover));
    say.say(&format!("Both clusters serve ({:.0?}).", started.elapsed()))?;

    let mm2_properties = MM2_PROPERTIES.replace("@MAIN@", &main_hosts).replace("@FAILOVER@", &failover_hosts);
    say.say(&format!("Review the Mirror-Maker configuration\n$ cat mm2.properties\n{mm2_properties}"))?;
    let mut mm2 = MirrorMaker::start(&mm2_properties);
    say.say("$ connect-mirror-maker mm2.properties   (running in the background)")?;

    let config = dir.path().join("clusters.yaml");
    let clusters_yaml = format!(
        "config:\n  main:\n    bootstrap.servers: {main_hosts}\n\n  failover:\n    bootstrap.servers: {failover_hosts}\n    \
         gateway.roles: failover\n"
    );
    std::fs::write(&config, &clusters_yaml)?;
    say.say(&format!("Review the Gateway configuration\n$ cat clusters.yaml\n{clusters_yaml}"))?;
    let mut gateways = Vec::new();
    for (n, second) in [(1, false), (2, true)] {
        let env = gateway_env(second, ports, &main_hosts, &config);
        let listing: String = env.iter().map(|(k, v)| format!("\n  {k}: {v}")).collect();
        say.say(&format!("gateway{n} (franzgate), environment:{listing}"))?;
        let admin = if second { ports.admin2 } else { ports.admin1 };
        gateways.push(Gateway::start(bin, &env, dir.path().join(format!("gateway{n}.log")), admin).await?);
    }
    if ports.admin2 == 8889 {
        say.say("GATEWAY_HTTP_PORT=8889 stands for docker's `8889:8888` port mapping of gateway2.")?;
    }
    for gateway in &mut gateways {
        gateway.ready().await?;
    }
    say.say(&format!("Both gateways are ready ({:.0?} since the start).", started.elapsed()))?;

    say.step(
        "Creating virtual cluster teamA",
        "Creating virtual cluster `teamA` on gateway `gateway1` and reviewing the configuration file to access it",
    )?;
    let path = "/admin/vclusters/v1/vcluster/teamA/username/sa";
    let answer = shell::post(say, ports.admin1, path, Some(r#"{"lifeTimeSeconds": 7776000}"#)).await?;
    let token = serde_json::from_str::<serde_json::Value>(&answer)?["token"]
        .as_str()
        .with_context(|| format!("no token in {answer}"))?
        .to_string();
    let properties = format!(
        "\nbootstrap.servers=localhost:{}\nsecurity.protocol=SASL_PLAINTEXT\nsasl.mechanism=PLAIN\n\
         sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required username='sa' \
         password='{token}';\n\n",
        ports.gateway1
    );
    std::fs::write(dir.path().join("teamA-sa.properties"), &properties)?;
    say.say(&format!("$ cat teamA-sa.properties\n{properties}"))?;
    (report.properties, report.token) = (properties, token);

    say.step(
        "Creating topic users on teamA",
        "Creating on `teamA`:\n* Topic `users` with partitions:1 and replication-factor:1",
    )?;
    let create = Tool {
        name: "kafka-topics",
        lines: vec![
            format!("--bootstrap-server localhost:{}", ports.gateway1),
            "--command-config teamA-sa.properties".into(),
            "--replication-factor 1".into(),
            "--partitions 1".into(),
            "--create --if-not-exists".into(),
            "--topic users".into(),
        ],
        echo: None,
        jq: false,
    };
    let run = create.show(say, dir.path()).await?;
    if !run.success {
        bail!("creating users failed:\n{}", run.stderr);
    }
    report.create_output = run.stdout;

    say.step("Send tom and laura into topic users", "Producing 2 messages in `users` in cluster `teamA`")?;
    for record in [TOM, LAURA] {
        let run = producer(ports.gateway1, record).show(say, dir.path()).await?;
        if !run.success {
            bail!("producing failed:\n{}", run.stderr);
        }
    }

    say.step("Listing topics in kafka1", "")?;
    report.main_topics =
        list_topics(&main_hosts).show(say, dir.path()).await?.stdout.lines().map(str::to_string).collect();
    report.main_before_switch = names(&kafka::read_topic(&main, "teamAusers", 2, Duration::from_secs(30)).await);
    say.say(&format!("(read directly with librdkafka: main's teamAusers holds {:?})", report.main_before_switch))?;

    say.step(
        "Wait for mirror maker to do its job on gateway internal topic",
        &format!(
            "Wait for mirror maker to do its job on gateway internal topic in cluster `failover-kafka1`\n\
             (franzgate's internal topic is {STATE_TOPIC}: virtual clusters, service accounts and the token secret)"
        ),
    )?;
    let (m, f, waited) = wait_mirrored(&main, &failover, &mut mm2, STATE_TOPIC).await?;
    say.say(&format!(
        "(MirrorMaker 2 has copied all {m} records of {STATE_TOPIC}: {f} on failover, waited {waited:.0?})"
    ))?;
    report.state_records = (m, f);
    consumer(&failover_hosts, false, STATE_TOPIC, Some(1), 15000).show(say, dir.path()).await?;

    say.step(
        "Wait for mirror maker to do its job on users topics",
        "Wait for mirror maker to do its job on users topics in cluster `failover-kafka1`",
    )?;
    let (_, _, waited) = wait_mirrored(&main, &failover, &mut mm2, "teamAusers").await?;
    report.mirrored = names(&kafka::read_topic(&failover, "teamAusers", 2, Duration::from_secs(30)).await);
    say.say(&format!("(waited {waited:.0?}; failover's teamAusers holds {:?})", report.mirrored))?;
    consumer(&failover_hosts, false, "teamAusers", Some(1), 15000).show(say, dir.path()).await?;

    say.step("Assert mirror maker did its job", "")?;
    let run = list_topics(&failover_hosts).show(say, dir.path()).await?;
    report.failover_topics = run.stdout.lines().map(str::to_string).collect();

    let switch = "/admin/pclusters/v1/pcluster/main/switch?to=failover";
    for (n, admin) in [(1, ports.admin1), (2, ports.admin2)] {
        say.step(
            "Failing over from main to failover",
            &format!("Failing over from `main` to `failover` on gateway `gateway{n}`"),
        )?;
        report.switch_answers.push(shell::post(say, admin, switch, None).await?);
        say.say(&format!(
            "From now on `gateway{n}` the cluster with id `main` is pointing to the `failover` cluster."
        ))?;
    }

    say.step(
        "Produce alice into users, it should hit only failover-kafka",
        "Producing 1 message in `users` in cluster `teamA`",
    )?;
    let run = producer(ports.gateway1, ALICE).show(say, dir.path()).await?;
    if !run.success {
        bail!("producing alice failed:\n{}", run.stderr);
    }

    say.step(
        "Verify we can read laura (via mirror maker), tom (via mirror maker) and alice (via cluster switching)",
        "Verify we can read laura (via mirror maker), tom (via mirror maker) and alice (via cluster switching) in \
         cluster `teamA`",
    )?;
    let gateway1 = format!("localhost:{}", ports.gateway1);
    report.through_gateway1 = consumer(&gateway1, true, "users", Some(3), 10000).show(say, dir.path()).await?.names();

    say.step(
        "(franzgate's addition) The same read through gateway2",
        "gateway2 serves teamA on its own ports with the same teamA-sa.properties: the token gateway1 issued \
         is signed with the secret both instances share",
    )?;
    let gateway2 = format!("localhost:{}", ports.gateway2);
    report.through_gateway2 = consumer(&gateway2, true, "users", Some(3), 10000).show(say, dir.path()).await?.names();

    say.step("Verify alice is not in main kafka", "Verify alice is not in main kafka in cluster `kafka1`")?;
    report.main_after = consumer(&main_hosts, false, "teamAusers", None, 10000).show(say, dir.path()).await?.names();

    say.step("Verify alice is in failover", "Verify alice is in failover in cluster `failover-kafka1`")?;
    report.failover_after =
        consumer(&failover_hosts, false, "teamAusers", Some(3), 15000).show(say, dir.path()).await?.names();

    let back = "/admin/pclusters/v1/pcluster/main/switch?to=main";
    for (n, admin) in [(1, ports.admin1), (2, ports.admin2)] {
        say.step(
            &format!("Switching back to main on gateway{n} (not in the seed's demo)"),
            "From Conduktor's how-to \"Configuring Failover\", section \"Switching back\": the request goes to \
             every gateway instance",
        )?;
        report.switch_answers.push(shell::post(say, admin, back, None).await?);
    }
    say.step(
        "(franzgate's addition) Read users through gateway1 after switching back",
        "main never received alice (MirrorMaker 2 replicates main -> failover only): tom and laura",
    )?;
    report.after_switch_back = consumer(&gateway1, true, "users", None, 10000).show(say, dir.path()).await?.names();

    for (n, gateway) in gateways.iter_mut().enumerate() {
        if let Some(status) = gateway.child.try_wait()? {
            bail!("gateway{} exited early ({status}):\n{}", n + 1, gateway.log_tail());
        }
    }
    say.say("\n# Conclusion\n\nCluster switching help your seamlessly move from one cluster to another!")?;
    say.say("(In plain English: cluster switching helps you move seamlessly from one cluster to another.)")?;
    drop(mm2);
    drop(gateways);
    Ok(report)
}

#[allow(dead_code)]
fn main() -> anyhow::Result<()> {
    let bin = std::env::args().nth(1).map(PathBuf::from).unwrap_or_else(|| PathBuf::from("target/debug/franzgate"));
    if !bin.exists() {
        bail!("{} not found: run scripts/demo.sh, which installs and builds what the demo needs", bin.display());
    }
    let seed = DemoPorts::seed();
    let busy = seed.busy();
    let ports = if busy.is_empty() {
        seed
    } else {
        println!("Ports {busy:?} of the seed's are in use: the demo uses free ports instead (printed below).");
        DemoPorts::free()
    };
    let started = Instant::now();
    let report = tokio::runtime::Runtime::new()?.block_on(run_demo(&bin, &ports, &mut std::io::stdout()))?;
    let ok = report.mirrored == ["tom", "laura"]
        && report.through_gateway1 == ["tom", "laura", "alice"]
        && report.through_gateway2 == ["tom", "laura", "alice"]
        && report.main_after == ["tom", "laura"]
        && report.failover_after == ["tom", "laura", "alice"]
        && report.after_switch_back == ["tom", "laura"];
    println!("Demo time: {:.0?}", started.elapsed());
    if !ok {
        bail!("unexpected demo result: {report:#?}");
    }
    Ok(())
}
