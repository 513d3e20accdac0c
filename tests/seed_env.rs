//! The seed's docker-compose environment, unchanged: the franzgate binary started with gateway1's Conduktor
//! variables (SASL_PLAINTEXT, `GATEWAY_MODE=VCLUSTER`, the feature flags, no `GATEWAY_USER_POOL_SECRET_KEY`)
//! in front of Apache Kafka serves a tenant; instances started without a secret share the one generated (a
//! token one instance issues logs in on another); unknown `GATEWAY_*` variables get one warning each.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{free_ports, produce, read_all, read_all_with};
use franzgate::admin::client::{call, call_with_body};
use rdkafka::ClientConfig;
use serde_json::Value;

/// gateway1's `GATEWAY_ADMIN_API_USERS` user.
const ADMIN: (&str, &str) = ("admin", "conduktor");

/// The warning a gateway running with a generated token secret logs once.
const SECRET_WARNING: &str = "GATEWAY_USER_POOL_SECRET_KEY is not set";

/// The franzgate binary, started with exactly the given variables (nothing inherited), its log collected.
/// Killed when dropped.
struct Franzgate {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
    port_start: u16,
    admin: String,
}

impl Franzgate {
    fn spawn(vars: &[(&str, String)]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_franzgate"))
            .env_clear()
            .envs(vars.iter().map(|(k, v)| (*k, v.as_str())))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("franzgate starts");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let ansi = regex::Regex::new("\x1b\\[[0-9;]*m").expect("regex");
        let readers: [Box<dyn std::io::Read + Send>; 2] =
            [Box::new(child.stdout.take().expect("stdout")), Box::new(child.stderr.take().expect("stderr"))];
        for stream in readers {
            let (lines, ansi) = (lines.clone(), ansi.clone());
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    let line = ansi.replace_all(&line, "").into_owned();
                    lines.lock().expect("log lines").push(line);
                }
            });
        }
        let var = |name: &str| vars.iter().find(|(k, _)| *k == name).and_then(|(_, v)| v.parse().ok());
        let port_start = var("GATEWAY_PORT_START").or_else(|| var("GATEWAY_START_PORT")).unwrap_or(6969);
        let admin = format!("127.0.0.1:{}", var("GATEWAY_HTTP_PORT").unwrap_or(8888));
        Self { child, lines, port_start, admin }
    }

    fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port_start)
    }

    fn log(&self) -> Vec<String> {
        self.lines.lock().expect("log lines").clone()
    }

    /// The log's WARN lines.
    fn warnings(&self) -> Vec<String> {
        self.log().into_iter().filter(|l| l.contains(" WARN ")).collect()
    }

    /// Waits until the admin API reports the gateway ready; panics with the log if it exits or takes too long.
    async fn ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("franzgate exited ({status}):\n{}", self.log().join("\n"));
            }
            if let Ok((200, _)) = call(&self.admin, "GET", "/health/ready", None).await {
                return;
            }
            assert!(Instant::now() < deadline, "franzgate not ready within 90 s:\n{}", self.log().join("\n"));
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Waits for the process to end by itself; its log.
    fn exit(mut self) -> (std::process::ExitStatus, Vec<String>) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                // The reader threads may still be draining the pipes.
                std::thread::sleep(Duration::from_millis(200));
                return (status, self.log());
            }
            assert!(Instant::now() < deadline, "franzgate still running:\n{}", self.log().join("\n"));
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// A token for `user` of `vcluster` from this instance's admin API.
    async fn token(&self, vcluster: &str, user: &str) -> String {
        let path = format!("/admin/vclusters/v1/vcluster/{vcluster}/username/{user}");
        let body = r#"{"lifeTimeSeconds": 3600}"#;
        let (status, answer) = call_with_body(&self.admin, "POST", &path, Some(ADMIN), body).await.expect("admin API");
        assert_eq!(status, 200, "{answer}");
        answer["token"].as_str().expect("a token").to_string()
    }
}

impl Drop for Franzgate {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A name no other test of this binary uses (they share one Kafka cluster).
fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    format!("{prefix}{}", nanos % 1_000_000_000)
}

/// gateway1's variables from the seed's docker-compose, with free ports; `port_var` is `GATEWAY_PORT_START` or
/// gateway2's `GATEWAY_START_PORT`. The state topic is the test's own (the cluster is shared).
fn seed_vars(kafka: &str, state_topic: &str, port_var: &'static str) -> Vec<(&'static str, String)> {
    vec![
        ("KAFKA_MAIN_BOOTSTRAP_SERVERS", kafka.to_string()),
        ("GATEWAY_ADVERTISED_HOST", "127.0.0.1".into()),
        ("GATEWAY_MODE", "VCLUSTER".into()),
        ("GATEWAY_SECURITY_PROTOCOL", "SASL_PLAINTEXT".into()),
        ("GATEWAY_FEATURE_FLAGS_MULTI_TENANCY", "true".into()),
        ("GATEWAY_FEATURE_FLAGS_ANALYTICS", "false".into()),
        ("GATEWAY_ADMIN_API_USERS", format!("[{{username: {}, password: {}, admin: true}}]", ADMIN.0, ADMIN.1)),
        (port_var, free_ports(3).to_string()),
        ("GATEWAY_PORT_COUNT", "3".into()),
        ("GATEWAY_HTTP_PORT", free_ports(1).to_string()),
        ("GATEWAY_BIND_HOST", "127.0.0.1".into()),
        ("GATEWAY_STATE_TOPIC", state_topic.to_string()),
    ]
}

fn tenant(gateway: &Franzgate, user: &str, token: &str) -> ClientConfig {
    common::tenant_config(&gateway.bootstrap(), user, token)
}

/// Every record of `topic` read through a gateway, on a blocking thread.
async fn read_through(config: &ClientConfig, topic: &str) -> Vec<String> {
    let (config, topic) = (config.clone(), topic.to_string());
    tokio::task::spawn_blocking(move || read_all_with(config, &topic)).await.expect("reader")
}

/// The token secrets written to `state_topic`, in topic order.
async fn secrets_in(kafka: &str, state_topic: &str) -> Vec<String> {
    let (kafka, topic) = (kafka.to_string(), state_topic.to_string());
    let values = tokio::task::spawn_blocking(move || read_all(&kafka, &topic)).await.expect("reader");
    values
        .iter()
        .filter_map(|v| serde_json::from_str::<Value>(v).ok())
        .filter(|v| v["type"] == "tokenSecret")
        .filter_map(|v| v["secret"].as_str().map(String::from))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway1_of_the_seed_starts_unchanged_and_serves_a_tenant() {
    let kafka = common::kafka::shared_cluster().await.bootstrap();
    let state_topic = unique("_franzgate_state_a");
    let mut gateway = Franzgate::spawn(&seed_vars(&kafka, &state_topic, "GATEWAY_PORT_START"));
    gateway.ready().await;

    // The seed's steps: a token for sa of a virtual cluster, a topic created and written through the gateway.
    let vcluster = unique("seedA");
    let sa = tenant(&gateway, "sa", &gateway.token(&vcluster, "sa").await);
    common::create_topic_with(sa.clone(), "users", 1).await;
    produce(&sa, "users", &["tom", "laura"]).await;
    assert_eq!(read_through(&sa, "users").await, ["tom", "laura"]);
    let backend_topic = format!("{vcluster}users");
    let kafka_for_read = kafka.clone();
    let stored = tokio::task::spawn_blocking(move || read_all(&kafka_for_read, &backend_topic)).await.expect("read");
    assert_eq!(stored, ["tom", "laura"], "Kafka holds the tenant's topic under its prefix");

    // One warning about the generated secret, none about the variables: every one of them is known.
    let warnings = gateway.warnings();
    let secret: Vec<_> = warnings.iter().filter(|w| w.contains(SECRET_WARNING)).collect();
    assert_eq!(secret.len(), 1, "{warnings:#?}");
    assert!(secret[0].contains("generated by this instance"), "{}", secret[0]);
    assert!(!warnings.iter().any(|w| w.contains("unknown environment variable")), "{warnings:#?}");
    assert_eq!(secrets_in(&kafka, &state_topic).await.len(), 1, "the secret is kept in the state topic");
    let log = gateway.log();
    assert!(log.iter().any(|l| l.contains("franzgate sends no analytics")), "{log:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_without_a_secret_share_the_one_generated() {
    let kafka = common::kafka::shared_cluster().await.bootstrap();
    let state_topic = unique("_franzgate_state_b");
    // gateway1 and gateway2 of the seed, started at the same moment: they race to write their secrets.
    let mut first = Franzgate::spawn(&seed_vars(&kafka, &state_topic, "GATEWAY_PORT_START"));
    let mut second = Franzgate::spawn(&seed_vars(&kafka, &state_topic, "GATEWAY_START_PORT"));
    first.ready().await;
    second.ready().await;

    let vcluster = unique("fleet");
    let token_of_first = first.token(&vcluster, "sa1").await;
    // Issued by the second instance (which reads the state topic first, and so learns the virtual cluster).
    let token_of_second = second.token(&vcluster, "sa2").await;

    // A token the first instance issued logs in on the second, and the other way round.
    let on_second = tenant(&second, "sa1", &token_of_first);
    common::create_topic_with(on_second.clone(), "orders", 1).await;
    produce(&on_second, "orders", &["from-sa1-on-second"]).await;
    let on_first = tenant(&first, "sa2", &token_of_second);
    produce(&on_first, "orders", &["from-sa2-on-first"]).await;
    assert_eq!(read_through(&on_first, "orders").await, ["from-sa1-on-second", "from-sa2-on-first"]);

    // Exactly one of them generated the secret; the other adopted it.
    let origins: Vec<String> = [&first, &second]
        .iter()
        .map(|g| {
            let warnings = g.warnings();
            let secret: Vec<_> = warnings.iter().filter(|w| w.contains(SECRET_WARNING)).cloned().collect();
            assert_eq!(secret.len(), 1, "one secret warning per instance: {warnings:#?}");
            secret[0].clone()
        })
        .collect();
    let generated = origins.iter().filter(|w| w.contains("generated by this instance")).count();
    let adopted = origins.iter().filter(|w| w.contains("read from the topic")).count();
    assert_eq!((generated, adopted), (1, 1), "{origins:#?}");

    // Compaction keeps the latest record per key: the latest secret record is the first one, the one in use,
    // even when both instances wrote theirs.
    let secrets = secrets_in(&kafka, &state_topic).await;
    assert!(!secrets.is_empty() && secrets.first() == secrets.last(), "{} secret records", secrets.len());

    // An instance started later (a restart, a scale-out) adopts it too.
    let mut third = Franzgate::spawn(&seed_vars(&kafka, &state_topic, "GATEWAY_PORT_START"));
    third.ready().await;
    let on_third = tenant(&third, "sa1", &token_of_first);
    assert_eq!(read_through(&on_third, "orders").await, ["from-sa1-on-second", "from-sa2-on-first"]);
    let warnings = third.warnings();
    assert!(warnings.iter().any(|w| w.contains(SECRET_WARNING) && w.contains("read from the topic")), "{warnings:#?}");
}

#[test]
fn unknown_gateway_variables_get_one_warning_each() {
    // No cluster configured: franzgate reports the variables, then exits on the missing cluster.
    let gateway = Franzgate::spawn(&[
        ("GATEWAY_TYPO_VAR", "1".into()),
        ("GATEWAY_PORT_STRAT", "7000".into()),
        ("GATEWAY_START_PORT", "7000".into()),
        ("GATEWAY_FEATURE_FLAGS_ANALYTICS", "false".into()),
    ]);
    let (status, log) = gateway.exit();
    assert!(!status.success(), "no cluster: {log:#?}");
    let warnings: Vec<_> = log.iter().filter(|l| l.contains(" WARN ")).collect();
    let typo: Vec<_> = warnings.iter().filter(|w| w.contains("GATEWAY_TYPO_VAR")).collect();
    assert_eq!(typo.len(), 1, "{log:#?}");
    assert!(typo[0].ends_with("unknown environment variable GATEWAY_TYPO_VAR, ignored"), "{}", typo[0]);
    let near: Vec<_> = warnings.iter().filter(|w| w.contains("GATEWAY_PORT_STRAT")).collect();
    assert_eq!(near.len(), 1, "{log:#?}");
    assert!(near[0].ends_with("did you mean GATEWAY_PORT_START?"), "{}", near[0]);
    assert_eq!(warnings.len(), 2, "known variables are not reported: {warnings:#?}");
    assert!(log.iter().any(|l| l.contains("no backend cluster configured")), "{log:#?}");
}
