//! The client-matrix tests of the Python driver (tests/clients/python/driver.py), shared by the test binaries
//! tests/client_confluent_kafka.rs and tests/client_kafka_python_matrix.rs: each includes this file and runs
//! the same scenarios with its own `client=` key. Every scenario records its cell in
//! target/client-matrix/<client>.jsonl before asserting, so a failing cell is recorded as failing.

use std::collections::BTreeSet;
use std::io::Write;
use std::time::Duration;

use crate::common::client_matrix::{Driver, Outcome, args, mirrored_pair};
use crate::common::{TestGateway, create_topic, read_all, shared_cluster, tools_dir, unique};

/// Records per scenario (the brief's 300).
const RECORDS: u64 = 300;
/// A driver run's upper bound (each waits for its own timeouts well within it).
const RUN_LIMIT: Duration = Duration::from_secs(150);

/// The Python driver for `client` (`confluent-kafka` or `kafka-python`), run by the tools venv's interpreter.
pub fn driver(client: &'static str) -> Driver {
    let python = tools_dir().join("venv/bin/python");
    assert!(python.exists(), "{} missing: run scripts/install-deps.sh", python.display());
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/clients/python/driver.py");
    Driver { name: client, program: python, prefix: vec![script.to_string()] }
}

/// `key=value` arguments with the driver's `client=` key first.
pub fn client_args(driver: &Driver, pairs: &[(&str, &str)]) -> Vec<String> {
    let mut all = vec![format!("client={}", driver.name)];
    all.extend(args(pairs));
    all
}

/// Appends one matrix cell (client, version, capability, pass) to target/client-matrix/<client>.jsonl.
pub fn record_cell(driver: &Driver, outcome: Option<&Outcome>, capability: &str, pass: bool) {
    let version = outcome.and_then(|o| o.result["version"].as_str()).unwrap_or("unknown");
    let mut line =
        serde_json::json!({"client": driver.name, "version": version, "capability": capability, "pass": pass});
    if outcome.is_some_and(|o| o.errors().iter().any(|e| e.starts_with("unsupported:"))) {
        line["supported"] = false.into();
    }
    if let Some(lib) = outcome.and_then(|o| o.result["librdkafka"].as_str()) {
        line["librdkafka"] = lib.into();
    }
    let target =
        std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/target").into());
    let dir = std::path::Path::new(&target).join("client-matrix");
    std::fs::create_dir_all(&dir).expect("create target/client-matrix");
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join(format!("{}.jsonl", driver.name)))
        .expect("open the matrix file");
    writeln!(file, "{line}").expect("write the matrix cell");
}

/// The keys `k-0` .. `k-(n-1)` a producer run with `key_prefix=k` writes.
pub fn expected_keys(prefix: &str, n: u64) -> BTreeSet<String> {
    (0..n).map(|i| format!("{prefix}-{i}")).collect()
}

/// A run that did all it was asked with no error reaching the application.
pub fn clean(outcome: &Outcome, key: &str, n: u64) -> bool {
    outcome.success && outcome.errors().is_empty() && outcome.count(key) == n
}

/// Produces [`RECORDS`] idempotent acks=all records to a new topic through a passthrough gateway and consumes
/// them in a fresh group with commits, with the classic protocol and, where given, with each of `protocols`.
/// Cells: `produce`, `idempotent`, `consume-group` (classic) and `kip848` (protocol `consumer`).
pub async fn produce_idempotent_and_consume_in_groups(driver: &Driver, protocols: &[&str]) {
    let broker = shared_cluster().await;
    let gateway = TestGateway::start(&broker.bootstrap(), "").await;
    let topic = unique(&format!("{}-orders", driver.name));
    create_topic(&gateway.bootstrap(), &topic, 3).await;
    let bootstrap = gateway.bootstrap();
    let count = RECORDS.to_string();
    let produced = driver
        .run(
            "produce",
            &client_args(
                driver,
                &[
                    ("bootstrap", &bootstrap),
                    ("topic", &topic),
                    ("count", &count),
                    ("acks", "all"),
                    ("idempotent", "true"),
                    ("key_prefix", "k"),
                ],
            ),
            RUN_LIMIT,
        )
        .await;
    let ok = clean(&produced, "produced", RECORDS);
    record_cell(driver, Some(&produced), "produce", ok);
    record_cell(driver, Some(&produced), "idempotent", ok);
    assert!(ok, "produce: {:?}\nstderr:\n{}", produced.result, produced.stderr);

    for protocol in protocols {
        let group = unique(&format!("{}-{protocol}", driver.name));
        let consumed = driver
            .run(
                "consume",
                &client_args(
                    driver,
                    &[
                        ("bootstrap", &bootstrap),
                        ("topic", &topic),
                        ("group", &group),
                        ("count", &count),
                        ("protocol", protocol),
                        ("timeout_ms", "60000"),
                    ],
                ),
                RUN_LIMIT,
            )
            .await;
        // Which protocol the group really used, asked of the backend directly.
        let group_type = group_type_on(&broker.bootstrap(), &group).await;
        let wanted_type = if *protocol == "consumer" { "CONSUMER" } else { "CLASSIC" };
        let ok = clean(&consumed, "consumed", RECORDS)
            && consumed.keys() == expected_keys("k", RECORDS)
            && group_type == wanted_type;
        let capability = if *protocol == "consumer" { "kip848" } else { "consume-group" };
        record_cell(driver, Some(&consumed), capability, ok);
        assert!(
            ok,
            "consume ({protocol}): {:?} keys, group type {group_type} (wanted {wanted_type}), errors {:?}\nstderr:\n{}",
            consumed.count("consumed"),
            consumed.errors(),
            consumed.stderr
        );
    }
}

/// The type (`CLASSIC`, `CONSUMER`) of consumer group `group` on the cluster at `bootstrap`, from the
/// confluent-kafka driver's `group-type` command (an admin client's ListGroups, which names each group's type).
pub async fn group_type_on(bootstrap: &str, group: &str) -> String {
    let checker = driver("confluent-kafka");
    let outcome = checker
        .run("group-type", &client_args(&checker, &[("bootstrap", bootstrap), ("group", group)]), RUN_LIMIT)
        .await;
    assert!(outcome.success, "group-type {group}: {:?}\nstderr:\n{}", outcome.result, outcome.stderr);
    outcome.result["type"].as_str().unwrap_or_default().to_string()
}

// === tenants ===

/// The token secret and admin user of the tenant gateways.
const TOKEN_SECRET: &str = "python-matrix-token-secret";
const TENANT_ADMIN: (&str, &str) = ("admin", "admin-secret");

/// Where a scenario's clients connect: a gateway, and the SASL keys of its tenant when it has one.
pub struct Target {
    /// The gateway the driver connects to.
    pub gateway: TestGateway,
    /// `user`, `password`, `mechanism` for a tenant; empty for a passthrough principal.
    pub sasl: Vec<(&'static str, String)>,
    /// The prefix the backend adds to the tenant's names (empty for a passthrough principal).
    pub prefix: String,
}

impl Target {
    /// A passthrough gateway before the binary's shared cluster.
    pub async fn passthrough() -> Self {
        let broker = shared_cluster().await;
        Self { gateway: TestGateway::start(&broker.bootstrap(), "").await, sasl: Vec::new(), prefix: String::new() }
    }

    /// A SASL_PLAINTEXT gateway with virtual clusters before the shared cluster, and a token of a new tenant
    /// (its own virtual cluster) as the PLAIN password — as tests/vclusters.rs does it.
    pub async fn tenant() -> Self {
        let broker = shared_cluster().await;
        let keys = format!(
            "  security_protocol: SASL_PLAINTEXT\n  authentication:\n    token_secret: {TOKEN_SECRET}\n  \
             admin_users: [{{username: {}, password: {}, admin: true}}]\n  \
             virtual_clusters: {{refresh_interval_ms: 300, state_topic: {}}}\n",
            TENANT_ADMIN.0,
            TENANT_ADMIN.1,
            unique("_franzgate_state")
        );
        let clusters = format!("  main:\n    bootstrap.servers: {}\n", broker.bootstrap());
        let gateway = TestGateway::from_yaml(&crate::common::secure::gateway_yaml(&keys, &clusters, "")).await;
        let team = unique("teamPy");
        let path = format!("/admin/vclusters/v1/vcluster/{team}/username/app");
        let (status, body) = franzgate::admin::client::call_with_body(
            &gateway.admin(),
            "POST",
            &path,
            Some(TENANT_ADMIN),
            r#"{"lifeTimeSeconds": 3600}"#.to_string(),
        )
        .await
        .expect("admin API");
        assert_eq!(status, 200, "{body}");
        let token = body["token"].as_str().expect("token in the answer").to_string();
        let sasl = vec![("user", "app".to_string()), ("password", token), ("mechanism", "PLAIN".to_string())];
        Self { gateway, sasl, prefix: team }
    }

    /// The rdkafka settings of this target's principal (to create topics through the gateway).
    pub fn client_config(&self) -> rdkafka::ClientConfig {
        match self.sasl.iter().find(|(k, _)| *k == "password") {
            Some((_, token)) => crate::common::tenant_config(&self.gateway.bootstrap(), "app", token),
            None => crate::common::client_config(&self.gateway.bootstrap()),
        }
    }

    /// `pairs` with the bootstrap and the SASL keys added.
    pub fn args(&self, driver: &Driver, pairs: &[(&str, &str)]) -> Vec<String> {
        let bootstrap = self.gateway.bootstrap();
        let mut all: Vec<(&str, &str)> = vec![("bootstrap", &bootstrap)];
        all.extend(self.sasl.iter().map(|(k, v)| (*k, v.as_str())));
        all.extend_from_slice(pairs);
        client_args(driver, &all)
    }
}

/// As a virtual-cluster tenant with SASL PLAIN (a token as password): produces [`RECORDS`] idempotent records
/// and consumes them in a group; on the backend the records are in the prefixed topic. Cell: `tenant`.
pub async fn produce_and_consume_as_a_tenant(driver: &Driver) {
    let target = Target::tenant().await;
    crate::common::create_topic_with(target.client_config(), "orders", 3).await;
    let count = RECORDS.to_string();
    let produce = [("topic", "orders"), ("count", count.as_str()), ("idempotent", "true"), ("key_prefix", "t")];
    let produced = driver.run("produce", &target.args(driver, &produce), RUN_LIMIT).await;
    let consume = [("topic", "orders"), ("group", "readers"), ("count", count.as_str()), ("timeout_ms", "60000")];
    let consumed = driver.run("consume", &target.args(driver, &consume), RUN_LIMIT).await;
    let broker = shared_cluster().await;
    let on_backend: BTreeSet<String> =
        read_all(&broker.bootstrap(), &format!("{}orders", target.prefix)).into_iter().collect();
    let expected = expected_keys("t", RECORDS);
    let ok = clean(&produced, "produced", RECORDS)
        && clean(&consumed, "consumed", RECORDS)
        && consumed.keys() == expected
        && on_backend == expected;
    record_cell(driver, Some(&consumed), "tenant", ok);
    assert!(clean(&produced, "produced", RECORDS), "produce: {:?}\nstderr:\n{}", produced.result, produced.stderr);
    assert!(
        clean(&consumed, "consumed", RECORDS) && consumed.keys() == expected,
        "consume: {} keys, errors {:?}\nstderr:\n{}",
        consumed.count("consumed"),
        consumed.errors(),
        consumed.stderr
    );
    assert_eq!(on_backend, expected, "the tenant's records are in {}orders on the backend", target.prefix);
}

// === a switch mid-stream ===

/// Records the producer of the switch scenario writes, at [`SWITCH_RATE`] per second.
const SWITCH_RECORDS: u64 = 1000;
const SWITCH_RATE: &str = "100";

/// Waits until MirrorMaker 2 has made `topic` on `cluster` with `partitions` partitions: a producer switched to
/// the failover needs the topic there, or it would auto-create one of another shape.
async fn wait_for_topic(cluster: &'static crate::common::KafkaCluster, topic: &str, partitions: usize) {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    loop {
        let t = topic.to_string();
        let found = tokio::task::spawn_blocking(move || {
            let client: BaseConsumer = cluster.client_config().create().expect("metadata client");
            client
                .fetch_metadata(Some(&t), Duration::from_secs(5))
                .ok()
                .and_then(|md| md.topics().first().filter(|t| t.error().is_none()).map(|t| t.partitions().len()))
        })
        .await
        .expect("metadata thread");
        if found == Some(partitions) {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "MirrorMaker did not create {topic} on the failover in 120 s");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// A producer (rate-limited, not idempotent: idempotent producers across a switch are issue 17) and a consumer
/// group run through a gateway in front of `main` and `failover`; the gateway switches to the failover once 300
/// records are acknowledged. The producer finishes with no error reaching the application, every key is on
/// main or failover, and the consumer, started before the switch, carries on on the failover and sees every
/// key, the later ones included. Cell: `switch`.
pub async fn switch_mid_stream(driver: &Driver) {
    let (main, failover) = mirrored_pair().await;
    let gateway = TestGateway::start_pair(&main.bootstrap(), &failover.bootstrap(), "").await;
    let topic = unique(&format!("{}-switch", driver.name));
    create_topic(&gateway.bootstrap(), &topic, 3).await;
    wait_for_topic(failover, &topic, 3).await;
    let bootstrap = gateway.bootstrap();
    let (count, group) = (SWITCH_RECORDS.to_string(), unique(&format!("{}-switch", driver.name)));
    let consume = [
        ("bootstrap", bootstrap.as_str()),
        ("topic", &topic),
        ("group", &group),
        ("count", &count),
        ("timeout_ms", "110000"),
    ];
    let mut consumer = driver.start("consume", &client_args(driver, &consume));
    let produce = [
        ("bootstrap", bootstrap.as_str()),
        ("topic", &topic),
        ("count", &count),
        ("rate", SWITCH_RATE),
        ("idempotent", "false"),
        ("acks", "all"),
        ("key_prefix", "s"),
    ];
    let mut producer = driver.start("produce", &client_args(driver, &produce));
    producer.await_progress("acked", 300, Duration::from_secs(60)).await;
    consumer.await_progress("consumed", 100, Duration::from_secs(60)).await;
    gateway.switch_to("failover").await;
    let produced = producer.finish(RUN_LIMIT).await;
    let consumed = consumer.finish(RUN_LIMIT).await;

    let expected = expected_keys("s", SWITCH_RECORDS);
    let on_main: BTreeSet<String> = read_all(&main.bootstrap(), &topic).into_iter().collect();
    let on_failover: BTreeSet<String> = read_all(&failover.bootstrap(), &topic).into_iter().collect();
    let stored: BTreeSet<String> = on_main.union(&on_failover).cloned().collect();
    let after_switch: BTreeSet<String> = on_failover.difference(&on_main).cloned().collect();
    let ok = clean(&produced, "produced", SWITCH_RECORDS)
        && stored.is_superset(&expected)
        && !after_switch.is_empty()
        && consumed.keys().is_superset(&expected);
    record_cell(driver, Some(&produced), "switch", ok);
    assert!(
        clean(&produced, "produced", SWITCH_RECORDS),
        "the producer across the switch: {:?}\nstderr:\n{}",
        produced.result,
        produced.stderr
    );
    let missing: Vec<_> = expected.difference(&stored).collect();
    assert!(missing.is_empty(), "acknowledged keys on neither cluster: {missing:?}");
    assert!(!after_switch.is_empty(), "records were written to the failover after the switch");
    let unseen: Vec<_> = expected.difference(&consumed.keys()).cloned().collect();
    assert!(
        unseen.is_empty(),
        "the consumer did not see {} keys (e.g. {:?}); errors {:?}\nstderr:\n{}",
        unseen.len(),
        unseen.iter().take(5).collect::<Vec<_>>(),
        consumed.errors(),
        consumed.stderr
    );
}

/// A client that has no KIP-848 consumer refuses `protocol=consumer` as unsupported (exit 2), and the matrix
/// says so: cell `kip848` with `pass: false, supported: false`.
pub async fn kip848_is_reported_unsupported(driver: &Driver) {
    let pairs =
        [("bootstrap", "127.0.0.1:9"), ("topic", "t"), ("group", "g"), ("count", "1"), ("protocol", "consumer")];
    let refused = driver.run("consume", &client_args(driver, &pairs), RUN_LIMIT).await;
    let unsupported = !refused.success && refused.errors().iter().any(|e| e.starts_with("unsupported:"));
    assert!(unsupported, "{:?}\nstderr:\n{}", refused.result, refused.stderr);
    record_cell(driver, Some(&refused), "kip848", false);
}

// === issue 18: kafka-python 3.x at the protocol versions that once failed ===

/// kafka-python pinned to broker version 3.0 (`api_version=3.0`: FindCoordinator v4 and Fetch v12, the versions
/// of issue 18's two kafka-python 3.x failures) through `target`: a group consumer (FindCoordinator v4 — every
/// one once closed the connection: `cannot encode ... FindCoordinatorResponse`) and a consumer with assigned
/// partitions (Fetch v12 — once closed on every response against tansu: `Tag 0 is not valid for version 12`)
/// both read every record, and the versions they used are the pinned ones.
pub async fn kafka_python_consumes_at_find_coordinator_v4_and_fetch_v12(driver: &Driver, target: &Target) {
    let topic = unique("pinned");
    crate::common::create_topic_with(target.client_config(), &topic, 3).await;
    let produced = driver
        .run("produce", &target.args(driver, &[("topic", &topic), ("count", "100"), ("key_prefix", "p")]), RUN_LIMIT)
        .await;
    assert!(clean(&produced, "produced", 100), "produce: {:?}\nstderr:\n{}", produced.result, produced.stderr);
    let group = unique("pinned-group");
    let runs = [
        ("group", vec![("topic", topic.as_str()), ("group", group.as_str())]),
        ("assigned partitions", vec![("topic", topic.as_str()), ("assign", "true")]),
    ];
    for (how, mut pairs) in runs {
        pairs.extend([("count", "100"), ("api_version", "3.0"), ("timeout_ms", "45000")]);
        let consumed = driver.run("consume", &target.args(driver, &pairs), RUN_LIMIT).await;
        assert!(
            clean(&consumed, "consumed", 100) && consumed.keys() == expected_keys("p", 100),
            "consume ({how}) at api_version 3.0: {} keys, errors {:?}\nstderr:\n{}",
            consumed.count("consumed"),
            consumed.errors(),
            consumed.stderr
        );
        let used = &consumed.result["api_versions"];
        assert_eq!((used["Fetch"].as_i64(), used["FindCoordinator"].as_i64()), (Some(12), Some(4)), "{how}: {used}");
    }
}

/// Produces [`RECORDS`] records in committed transactions of 100 (confluent-kafka's `transactional_id=`) to a
/// new topic through a passthrough gateway; a read_committed reader on the backend finds each once, and a fresh
/// group reads them all through the gateway. Cell: `transactions`.
pub async fn produce_in_committed_transactions(driver: &Driver) {
    let broker = shared_cluster().await;
    let gateway = TestGateway::start(&broker.bootstrap(), "").await;
    let (topic, group) = (unique(&format!("{}-txn", driver.name)), unique(&format!("{}-txn-app", driver.name)));
    let transactional_id = unique(&format!("{}-txn-id", driver.name));
    create_topic(&gateway.bootstrap(), &topic, 3).await;
    let (bootstrap, count) = (gateway.bootstrap(), RECORDS.to_string());
    let pairs = [
        ("bootstrap", bootstrap.as_str()),
        ("topic", &topic),
        ("count", &count),
        ("key_prefix", "t"),
        ("transactional_id", &transactional_id),
        ("retry_aborted", "true"),
    ];
    let produced = driver.run("produce", &client_args(driver, &pairs), RUN_LIMIT).await;
    // Without a switch nothing is aborted.
    let mut ok = clean(&produced, "produced", RECORDS) && produced.count("aborts") == 0;
    // librdkafka reads read_committed by default: every committed record once.
    let on_backend = read_all(&broker.bootstrap(), &topic);
    ok &= on_backend.len() as u64 == RECORDS
        && on_backend.iter().cloned().collect::<BTreeSet<_>>() == expected_keys("t", RECORDS);
    let consume = [("bootstrap", bootstrap.as_str()), ("topic", &topic), ("group", &group), ("count", &count)];
    let consumed = driver.run("consume", &client_args(driver, &consume), RUN_LIMIT).await;
    ok &= clean(&consumed, "consumed", RECORDS);
    record_cell(driver, Some(&produced), "transactions", ok);
    assert!(
        ok,
        "transactions: produced {:?}\n{} records on the backend\nconsumed {:?}\nstderr:\n{}",
        produced.result,
        on_backend.len(),
        consumed.result["errors"],
        produced.stderr
    );
}
