//! The seed's failover demo on one machine: two real Kafka-compatible clusters (tansu), the `franzgate`
//! binary configured exactly as Conduktor Gateway is in the seed (a cluster-config file named by
//! GATEWAY_BACKEND_KAFKA_SELECTOR, GATEWAY_* variables), and a real client (librdkafka) producing and
//! consuming through it across a switch.
//!
//! Run it with `scripts/demo.sh` (which installs tansu and builds the binary), or
//! `cargo run --example failover_demo -- target/debug/franzgate`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Message, Offset, TopicPartitionList};
use tokio::process::{Child, Command};

/// What each side held at the end of the demo, for the test that runs it.
#[derive(Debug, Default)]
pub struct DemoReport {
    /// `users` on the primary, read directly.
    pub main: Vec<String>,
    /// `users` on the secondary, read directly.
    pub failover: Vec<String>,
    /// `users` through the gateway after the switch.
    pub gateway_after_switch: Vec<String>,
    /// `users` through the gateway after switching back.
    pub gateway_after_switch_back: Vec<String>,
}

const ADMIN: (&str, &str) = ("admin", "conduktor");

/// Runs the demo against the `franzgate` binary at `gateway_bin`, narrating to `out`.
pub async fn run_demo(gateway_bin: &Path, tansu_bin: &Path, out: &mut impl Write) -> anyhow::Result<DemoReport> {
    let dir = tempfile::tempdir()?;
    let (main_port, failover_port) = (free_port()?, free_port()?);
    let mut say = |text: String| -> anyhow::Result<()> { Ok(writeln!(out, "{text}")?) };

    say(format!(
        "==> 1. Starting two Kafka clusters: main on 127.0.0.1:{main_port}, failover on 127.0.0.1:{failover_port}"
    ))?;
    let _main = start_tansu(tansu_bin, main_port, "main-cluster").await?;
    let _failover = start_tansu(tansu_bin, failover_port, "failover-cluster").await?;

    let config = dir.path().join("cluster-config.yaml");
    std::fs::write(
        &config,
        format!(
            "config:\n  main:\n    bootstrap.servers: 127.0.0.1:{main_port}\n  failover:\n    \
             bootstrap.servers: 127.0.0.1:{failover_port}\n    gateway.roles: failover\n"
        ),
    )?;
    let (port_start, http_port) = (free_port_run(3)?, free_port()?);
    let selector = format!("file : {{ path: {}}}", config.display());
    say(format!(
        "==> 2. Starting franzgate from environment variables alone, as the seed starts Conduktor Gateway:\n    \
        GATEWAY_BACKEND_KAFKA_SELECTOR='{selector}'\n    GATEWAY_ADVERTISED_HOST=127.0.0.1 GATEWAY_PORT_START={port_start} \
        GATEWAY_HTTP_PORT={http_port}\n    cluster-config.yaml:\n{}",
        indent(&std::fs::read_to_string(&config)?)
    ))?;
    let mut gateway = Command::new(gateway_bin)
        .env("GATEWAY_BACKEND_KAFKA_SELECTOR", &selector)
        .env("GATEWAY_ADVERTISED_HOST", "127.0.0.1")
        .env("GATEWAY_BIND_HOST", "127.0.0.1")
        .env("GATEWAY_PORT_START", port_start.to_string())
        .env("GATEWAY_PORT_COUNT", "3")
        .env("GATEWAY_HTTP_PORT", http_port.to_string())
        .env("GATEWAY_ADMIN_API_USERS", format!("[{{username: {}, password: {}, admin: true}}]", ADMIN.0, ADMIN.1))
        .env("RUST_LOG", "warn")
        .env_remove("FRANZGATE_CONFIG")
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {}", gateway_bin.display()))?;
    wait_for_port(port_start).await?;
    let bootstrap = format!("127.0.0.1:{port_start}");
    let admin = format!("127.0.0.1:{http_port}");

    say(format!("==> 3. Creating topic `users` through the gateway ({bootstrap})"))?;
    create_topic(&bootstrap, "users").await?;
    say("==> 4. Producing tom and laura through the gateway".into())?;
    let producer: FutureProducer = client(&bootstrap).set("acks", "all").create()?;
    for name in ["tom", "laura"] {
        produce(&producer, name).await?;
    }

    say("==> 5. Replicating main -> failover. STAND-IN ONLY: in production MirrorMaker 2 or Cluster Linking \
        replicates continuously; franzgate does not replicate."
        .into())?;
    let failover_bootstrap = format!("127.0.0.1:{failover_port}");
    create_topic(&failover_bootstrap, "users").await?;
    let replicator: FutureProducer = client(&failover_bootstrap).set("acks", "all").create()?;
    for value in read_all(&format!("127.0.0.1:{main_port}"), "users")? {
        produce(&replicator, &value).await?;
    }

    say(switch_call(&admin, "6", "failover").await?)?;
    say("==> 7. Producing alice through the gateway with the same producer, never reconfigured".into())?;
    produce(&producer, "alice").await?;

    let report_main = read_all(&format!("127.0.0.1:{main_port}"), "users")?;
    let report_failover = read_all(&failover_bootstrap, "users")?;
    let through = read_all(&bootstrap, "users")?;
    say(format!(
        "==> 8. main holds {report_main:?}; failover holds {report_failover:?}; through the gateway: {through:?}"
    ))?;

    say(switch_call(&admin, "9", "main").await?)?;
    let back = read_all(&bootstrap, "users")?;
    say(format!("==> 10. Switched back: through the gateway {back:?}"))?;
    let (_, clusters) = franzgate::admin::client::call(&admin, "GET", "/admin/pclusters/v1", Some(ADMIN))
        .await
        .map_err(anyhow::Error::msg)?;
    say(format!("==> GET /admin/pclusters/v1 -> {clusters}"))?;

    if let Ok(Some(status)) = gateway.try_wait() {
        bail!("franzgate exited early: {status}");
    }
    gateway.kill().await.ok();
    Ok(DemoReport {
        main: report_main,
        failover: report_failover,
        gateway_after_switch: through,
        gateway_after_switch_back: back,
    })
}

async fn switch_call(admin: &str, step: &str, to: &str) -> anyhow::Result<String> {
    let path = format!("/admin/pclusters/v1/pcluster/main/switch?to={to}");
    let (status, body) =
        franzgate::admin::client::call(admin, "POST", &path, Some(ADMIN)).await.map_err(anyhow::Error::msg)?;
    if status != 200 {
        bail!("switch to {to} refused: {status} {body}");
    }
    Ok(format!(
        "==> {step}. Switching: curl -u {}:{} -X POST 'http://{admin}{path}'\n    -> {status} {body}",
        ADMIN.0, ADMIN.1
    ))
}

fn indent(text: &str) -> String {
    text.lines().map(|l| format!("      {l}")).collect::<Vec<_>>().join("\n")
}

fn client(bootstrap: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", bootstrap).set("message.timeout.ms", "60000");
    c
}

async fn produce(producer: &FutureProducer, value: &str) -> anyhow::Result<()> {
    producer
        .send(FutureRecord::to("users").key(value).payload(value), Duration::from_secs(60))
        .await
        .map_err(|(e, _)| anyhow::anyhow!("producing {value}: {e}"))?;
    Ok(())
}

async fn create_topic(bootstrap: &str, topic: &str) -> anyhow::Result<()> {
    let admin: AdminClient<_> = client(bootstrap).create()?;
    let results =
        admin.create_topics(&[NewTopic::new(topic, 1, TopicReplication::Fixed(1))], &AdminOptions::new()).await?;
    for result in results {
        result.map_err(|(name, code)| anyhow::anyhow!("creating {name}: {code}"))?;
    }
    Ok(())
}

/// Every value of `topic`'s partition 0, from the beginning to the end.
fn read_all(bootstrap: &str, topic: &str) -> anyhow::Result<Vec<String>> {
    let consumer: BaseConsumer =
        client(bootstrap).set("group.id", "demo-reader").set("enable.partition.eof", "true").create()?;
    let mut assignment = TopicPartitionList::new();
    assignment.add_partition_offset(topic, 0, Offset::Beginning)?;
    consumer.assign(&assignment)?;
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut values = Vec::new();
    while Instant::now() < deadline {
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => values.push(String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned()),
            Some(Err(rdkafka::error::KafkaError::PartitionEOF(_))) => return Ok(values),
            Some(Err(e)) => bail!("reading {topic} from {bootstrap}: {e}"),
            None => {}
        }
    }
    bail!("reading {topic} from {bootstrap}: no end of partition within 30s")
}

async fn start_tansu(bin: &Path, port: u16, cluster_id: &str) -> anyhow::Result<Child> {
    let url = format!("tcp://127.0.0.1:{port}");
    let child = Command::new(bin)
        .args(["broker", "--listener-url", &url, "--advertised-listener-url", &url, "--cluster-id", cluster_id])
        .args(["--storage-engine", &format!("memory://{cluster_id}/")])
        .env_remove("CLUSTER_ID")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {}", bin.display()))?;
    wait_for_port(port).await?;
    Ok(child)
}

async fn wait_for_port(port: u16) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err() {
        if Instant::now() > deadline {
            bail!("nothing listening on port {port} after 30s");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// The first of `count` consecutive free ports.
fn free_port_run(count: u16) -> anyhow::Result<u16> {
    for _ in 0..100 {
        let base = free_port()?;
        if base.checked_add(count).is_some()
            && (1..count).all(|i| std::net::TcpListener::bind(("127.0.0.1", base + i)).is_ok())
        {
            return Ok(base);
        }
    }
    bail!("no {count} consecutive free ports")
}

fn tools_dir() -> PathBuf {
    std::env::var_os("FRANZGATE_TOOLS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/franzgate-tools"))
}

#[allow(dead_code)]
fn main() -> anyhow::Result<()> {
    let gateway_bin =
        std::env::args().nth(1).map(PathBuf::from).unwrap_or_else(|| PathBuf::from("target/debug/franzgate"));
    let tansu_bin = tools_dir().join("bin/tansu");
    for bin in [&gateway_bin, &tansu_bin] {
        if !bin.exists() {
            bail!("{} not found: run scripts/demo.sh, which installs and builds what the demo needs", bin.display());
        }
    }
    let report =
        tokio::runtime::Runtime::new()?.block_on(run_demo(&gateway_bin, &tansu_bin, &mut std::io::stdout()))?;
    let ok = report.main == ["tom", "laura"]
        && report.failover == ["tom", "laura", "alice"]
        && report.gateway_after_switch == ["tom", "laura", "alice"]
        && report.gateway_after_switch_back == ["tom", "laura"];
    println!(
        "{}",
        if ok {
            "==> Demo complete: alice lives only on the failover; clients never changed their config."
        } else {
            "==> UNEXPECTED RESULT"
        }
    );
    if !ok {
        bail!("unexpected demo result: {report:?}");
    }
    Ok(())
}
