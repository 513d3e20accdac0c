//! Issue 17: idempotent producers carry on across gateway switches. A producer's id, epoch and sequence numbers
//! belong to the cluster that issued them; after `POST .../pcluster/main/switch?to=failover` the gateway sends
//! its batches to the failover cluster (MirrorMaker 2 copies main to it), and after the switch back to main.
//!
//! Each test starts a paced acks=all producer through a gateway over the binary's mirrored pair, switches four
//! times (failover, main, failover, main) while it runs, each once the producer reported 300 more acknowledgements,
//! and then reads both clusters directly (read_committed):
//! - `java_default_idempotent_producer_survives_four_switches` and the same for confluent-kafka, kafka-python,
//!   kafkajs and franz-go: an idempotent producer. No error reached the application, all 2,000 records acknowledged, each on
//!   one cluster at least, none twice on main, none written twice on the failover, and the records handed to the
//!   client between two switches are on the cluster the first of them chose (a producer stuck on a cluster that
//!   refuses its producer id writes them later, elsewhere). The gateway's metrics show a stand-in producer id at
//!   least per switch and batches rewritten to them.
//! - `java_transactional_producer_across_switches`, the same for confluent-kafka and franz-go: transactions of 100
//!   records by an application that aborts and re-sends a transaction on an abortable error (the drivers'
//!   `retry_aborted=true`). The same, and every transaction whole on one cluster; the aborts are reported (the
//!   drivers give up after 20 on one transaction), and the gateway's metrics show it refused requests of a
//!   transaction that crossed a switch.
//!
//! Cells `idempotent-switch` and `transactions-switch` go to target/client-matrix/<client>.jsonl, the README
//! table's last two columns.

mod common;
#[path = "clients/python/matrix.rs"]
#[allow(dead_code)] // this binary uses the Python driver and its cell recorder only
mod python_matrix;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::client_matrix::{
    Cell, Driver, Outcome, Running, args, franz_go_driver, franz_go_version, java_driver, java_version, kafkajs_driver,
    kafkajs_version, mirrored_pair,
};
use common::{KafkaCluster, TestGateway, create_topic, read_all, unique};

const PARTITIONS: i32 = 3;
/// Records per producer, at [`RATE`] a second: about 33 s, room for four switches [`SPACING`] apart.
const COUNT: u64 = 2000;
const RATE: &str = "60";
/// Acknowledgements between the start and the first switch, and between the end of one switch and the next.
const SPACING: u64 = 300;
/// The switches, in order: each moves the producer to the other cluster.
const TARGETS: [&str; 4] = ["failover", "main", "failover", "main"];
/// How long the producer may go without reaching the next switch's mark (it needs 5 s at [`RATE`]).
const STALL_LIMIT: Duration = Duration::from_secs(60);
/// A driver run's upper bound (the producer's own delivery timeouts end well within it).
const RUN_LIMIT: Duration = Duration::from_secs(180);

/// One switch while the producer ran: the acknowledgements and records handed to the client it had reported
/// before the switch began and after it ended (each a multiple of 100, up to 99 behind the truth).
struct Switch {
    to: &'static str,
    acked_before: u64,
    acked_after: u64,
    sent_before: u64,
    sent_after: u64,
    took: Duration,
}

/// Runs the producer `running` to its end, switching the gateway to each of [`TARGETS`] in turn once the producer
/// reported [`SPACING`] more acknowledgements. Stops switching if the producer ended early (its result says why).
async fn produce_across_switches(gateway: &TestGateway, mut running: Running) -> (Outcome, Vec<Switch>) {
    let mut switches = Vec::new();
    let mut mark = SPACING;
    for to in TARGETS {
        // A producer stuck on a cluster stops the switching: its result (when it gives up) says why.
        let progress = running.await_progress_or_exit("acked", mark, Duration::from_secs(3600));
        match tokio::time::timeout(STALL_LIMIT, progress).await {
            Ok(true) => {}
            Ok(false) => {
                eprintln!("the producer ended before {mark} acknowledgements: no switch to {to}");
                break;
            }
            Err(_) => {
                eprintln!("the producer stalled below {mark} acknowledgements for {STALL_LIMIT:?}: no switch to {to}");
                break;
            }
        }
        let (acked_before, sent_before) = (running.latest("acked"), running.latest("sent"));
        let started = Instant::now();
        gateway.switch_to(to).await;
        let took = started.elapsed();
        let (acked_after, sent_after) = (running.latest("acked"), running.latest("sent"));
        eprintln!(
            "switched to {to} in {took:?}: acked {acked_before}, sent {sent_before} before; {acked_after}, {sent_after} after"
        );
        switches.push(Switch { to, acked_before, acked_after, sent_before, sent_after, took });
        mark = acked_after + SPACING;
    }
    (running.finish(RUN_LIMIT).await, switches)
}

/// How often each value is in `topic` on `cluster`, read directly (read_committed: librdkafka's default).
fn counted(cluster: &KafkaCluster, topic: &str) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for value in read_all(&cluster.bootstrap(), topic) {
        *counts.entry(value).or_insert(0) += 1;
    }
    counts
}

/// Where the producer's records are: how often each key is on main and on the failover. MirrorMaker copies main
/// to the failover, so a key the producer wrote on the failover is one not on main.
struct Placement {
    prefix: &'static str,
    on_main: BTreeMap<String, usize>,
    on_failover: BTreeMap<String, usize>,
}

impl Placement {
    fn read(main: &KafkaCluster, failover: &KafkaCluster, topic: &str, prefix: &'static str) -> Self {
        Self { prefix, on_main: counted(main, topic), on_failover: counted(failover, topic) }
    }

    fn key(&self, i: u64) -> String {
        format!("{}-{i}", self.prefix)
    }

    fn on_main(&self, i: u64) -> bool {
        self.on_main.contains_key(&self.key(i))
    }

    /// Written on the failover by the producer (not copied from main).
    fn only_on_failover(&self, i: u64) -> bool {
        let key = self.key(i);
        !self.on_main.contains_key(&key) && self.on_failover.contains_key(&key)
    }

    /// Keys the producer wrote on the failover more than once (keys on main may be there twice: MirrorMaker
    /// copies at least once, and the producer may have re-sent there a batch main had written).
    fn twice_on_failover(&self) -> Vec<(&String, &usize)> {
        self.on_failover.iter().filter(|(k, n)| **n > 1 && !self.on_main.contains_key(*k)).collect()
    }

    /// Breaks of the promise every producer of these tests makes: each of the `COUNT` keys on one cluster at
    /// least, none twice on main, and (when `strict_failover`) none written twice on the failover.
    fn failures(&self, strict_failover: bool) -> Vec<String> {
        let mut failures = Vec::new();
        let missing: Vec<_> = (0..COUNT).filter(|i| !self.on_main(*i) && !self.only_on_failover(*i)).collect();
        if !missing.is_empty() {
            failures.push(format!("{} keys on neither cluster: {}", missing.len(), ranges(&missing)));
        }
        let twice_on_main: Vec<_> = self.on_main.iter().filter(|(_, n)| **n > 1).collect();
        if !twice_on_main.is_empty() {
            failures.push(format!("{} keys more than once on main: {:?}", twice_on_main.len(), first(&twice_on_main)));
        }
        let twice_on_failover = self.twice_on_failover();
        if strict_failover && !twice_on_failover.is_empty() {
            failures.push(format!(
                "{} keys written to the failover more than once: {:?}",
                twice_on_failover.len(),
                first(&twice_on_failover)
            ));
        }
        let written_on_failover: Vec<u64> = (0..COUNT).filter(|i| self.only_on_failover(*i)).collect();
        let mirrored_twice = self.on_failover.iter().filter(|(k, n)| **n > 1 && self.on_main.contains_key(*k)).count();
        eprintln!(
            "{} keys on main; {} only on the failover ({}); {} written twice on the failover; {} on main duplicated \
             on the failover (MirrorMaker's at-least-once copies, not asserted)",
            self.on_main.len(),
            written_on_failover.len(),
            ranges(&written_on_failover),
            twice_on_failover.len(),
            mirrored_twice
        );
        if written_on_failover.is_empty() {
            failures.push("nothing was written to the failover only: the switches did not move the producer".into());
        }
        if !self.on_main(COUNT - 1) {
            failures
                .push(format!("the last record, {}, sent after the 4th switch, is not on main", self.key(COUNT - 1)));
        }
        failures
    }
}

/// Records handed to the client this shortly before a switch (half a second at [`RATE`]) may still be in its
/// buffer or in flight when it begins, and then are written on the cluster the switch chose.
const IN_FLIGHT: u64 = 30;

/// Each phase's records on the phase's cluster: those handed to the client after one switch ended and before
/// the next began (the progress marks are up to 99 behind, hence the 100; less the last [`IN_FLIGHT`]) were
/// written on the cluster that switch chose, on the failover only when it was the failover. A producer stuck on
/// a cluster that does not know its producer id writes them later, elsewhere.
fn phase_failures(placement: &Placement, switches: &[Switch]) -> Vec<String> {
    if switches.len() != TARGETS.len() {
        return vec![format!("{} of {} switches happened while the producer ran", switches.len(), TARGETS.len())];
    }
    let mut failures = Vec::new();
    for (n, switch) in switches.iter().enumerate() {
        let end = switches.get(n + 1).map_or(COUNT, |next| next.sent_before.saturating_sub(IN_FLIGHT));
        let window: Vec<u64> = (switch.sent_after + 100..end).collect();
        let misplaced: Vec<u64> = window
            .iter()
            .copied()
            .filter(|i| if switch.to == "main" { !placement.on_main(*i) } else { !placement.only_on_failover(*i) })
            .collect();
        eprintln!(
            "phase {} (on {}): {} of the {} keys sent in {}..{end} elsewhere: {}",
            n + 1,
            switch.to,
            misplaced.len(),
            window.len(),
            switch.sent_after + 100,
            ranges(&misplaced)
        );
        if window.is_empty() {
            failures.push(format!("phase {} (on {}) had no records of its own", n + 1, switch.to));
        } else if !misplaced.is_empty() {
            failures.push(format!(
                "phase {} (on {}): {} of {} keys sent then are not where it wrote: {}",
                n + 1,
                switch.to,
                misplaced.len(),
                window.len(),
                ranges(&misplaced)
            ));
        }
    }
    failures
}

/// `3..7, 9, 12..15`: sorted numbers as runs.
fn ranges(sorted: &[u64]) -> String {
    let mut runs: Vec<(u64, u64)> = Vec::new();
    for &i in sorted {
        match runs.last_mut() {
            Some((_, last)) if *last + 1 == i => *last = i,
            _ => runs.push((i, i)),
        }
    }
    let text: Vec<String> =
        runs.iter().map(|(a, b)| if a == b { a.to_string() } else { format!("{a}..={b}") }).collect();
    if text.len() > 12 { format!("{} … ({} runs)", text[..12].join(", "), text.len()) } else { text.join(", ") }
}

/// The first few entries of a list of offenders.
fn first<T: std::fmt::Debug>(items: &[T]) -> &[T] {
    &items[..items.len().min(5)]
}

/// A gateway over the mirrored pair and a new topic on both clusters (the producer switched to the failover
/// needs it there; MirrorMaker would make it, but how soon depends on a busy machine).
async fn gateway_and_topic(name: &str) -> Setup {
    let (main, failover) = mirrored_pair().await;
    let gateway = TestGateway::start_pair(&main.bootstrap(), &failover.bootstrap(), "").await;
    let topic = unique(name);
    create_topic(&gateway.bootstrap(), &topic, PARTITIONS).await;
    create_topic(&failover.bootstrap(), &topic, PARTITIONS).await;
    Setup { gateway, main, failover, topic }
}

/// `produce` arguments of an idempotent acks=all producer of [`COUNT`] records `key-*` at [`RATE`].
fn idempotent_produce(bootstrap: &str, topic: &str) -> Vec<(&'static str, String)> {
    [
        ("bootstrap", bootstrap),
        ("topic", topic),
        ("count", &COUNT.to_string()),
        ("idempotent", "true"),
        ("acks", "all"),
        ("rate", RATE),
        ("key_prefix", "key"),
    ]
    .into_iter()
    .map(|(k, v)| (k, v.to_string()))
    .collect()
}

fn pairs<'a>(owned: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    owned.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

/// The errors that reached the application, each kind once with how often (`delivery of key-N: ` dropped).
fn error_kinds(outcome: &Outcome) -> BTreeMap<String, usize> {
    let mut kinds = BTreeMap::new();
    for error in outcome.errors() {
        let kind = match error.split_once(": ") {
            Some((head, rest)) if head.starts_with("delivery of ") => rest.to_string(),
            _ => error,
        };
        *kinds.entry(kind).or_insert(0) += 1;
    }
    kinds
}

/// Everything one client's run broke: no result, errors that reached the application, a short count.
fn run_failures(outcome: &Outcome) -> Vec<String> {
    let mut failures = Vec::new();
    if outcome.result.get("client").is_none() {
        failures
            .push(format!("the driver printed no result (it crashed: see its stderr); last line {}", outcome.result));
    }
    if !outcome.success || !outcome.errors().is_empty() {
        failures.push(format!("the producer reported {} errors: {:#?}", outcome.errors().len(), error_kinds(outcome)));
    }
    if outcome.count("produced") != COUNT {
        failures.push(format!("{} of {COUNT} records acknowledged", outcome.count("produced")));
    }
    failures
}

fn report(client: &str, started: Instant, outcome: &Outcome, switches: &[Switch], failures: &[String]) {
    let switches: Vec<String> = switches
        .iter()
        .map(|s| {
            let (acked, sent) = ((s.acked_before, s.acked_after), (s.sent_before, s.sent_after));
            format!("to {} (acked {acked:?}, sent {sent:?}) in {:?}", s.to, s.took)
        })
        .collect();
    eprintln!(
        "{client}: {:?} in all; switches {switches:?}\nresult {}\nfailures: {failures:#?}\nstderr (tail):\n{}",
        started.elapsed(),
        outcome.result,
        tail(&outcome.stderr, 40)
    );
}

/// The last `lines` lines of `text`.
fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Runs an idempotent producer with `produce` arguments (pairs) across the switches and returns every failure.
async fn idempotent_run(client: &str, driver: &Driver, produce: Vec<String>, setup: Setup) -> (Outcome, Vec<String>) {
    let started = Instant::now();
    let running = driver.start("produce", &produce);
    let (outcome, switches) = produce_across_switches(&setup.gateway, running).await;
    let placement = Placement::read(setup.main, setup.failover, &setup.topic, "key");
    let mut failures = run_failures(&outcome);
    failures.extend(placement.failures(true));
    failures.extend(phase_failures(&placement, &switches));
    // The producer carried on because the gateway wrote its batches under stand-ins: one at least per switch
    // (each move to a cluster, back to main too, needs a fresh one).
    let (stand_ins, rewritten) = (
        counter(&setup.gateway, "franzgate_producer_stand_ins_total").await,
        counter(&setup.gateway, "franzgate_producer_batches_rewritten_total").await,
    );
    eprintln!("{client}: {stand_ins} stand-in producer ids, {rewritten} batches rewritten");
    if stand_ins < switches.len() as u64 || rewritten == 0 {
        failures.push(format!("{stand_ins} stand-ins for {} switches, {rewritten} batches rewritten", switches.len()));
    }
    report(client, started, &outcome, &switches, &failures);
    (outcome, failures)
}

/// A counter of the gateway's `/metrics` (without labels), 0 when absent.
async fn counter(gateway: &TestGateway, name: &str) -> u64 {
    let text = franzgate::admin::client::call_text(&gateway.admin(), "/metrics", common::ADMIN).await.expect("metrics");
    let prefix = format!("{name} ");
    text.lines().find_map(|l| l.strip_prefix(prefix.as_str())?.trim().parse().ok()).unwrap_or(0)
}

/// A gateway over the mirrored pair and a topic on both clusters.
struct Setup {
    gateway: TestGateway,
    main: &'static KafkaCluster,
    failover: &'static KafkaCluster,
    topic: String,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn java_default_idempotent_producer_survives_four_switches() {
    common::init_test_logging();
    let _cell = Cell::new("java", java_version(), "idempotent-switch");
    let setup = gateway_and_topic("java-idem-switch").await;
    let produce = args(&pairs(&idempotent_produce(&setup.gateway.bootstrap(), &setup.topic)));
    let (outcome, failures) = idempotent_run("java", &java_driver(), produce, setup).await;
    assert!(failures.is_empty(), "java idempotent producer across four switches: {failures:#?}");
    assert_eq!(outcome.result["client"], "java");
}

/// The idempotent run of the Python driver's `client`, its cell recorded; returns the failures.
async fn python_idempotent_run(client: &'static str, topic: &str) -> Vec<String> {
    let driver: Driver = python_matrix::driver(client);
    let setup = gateway_and_topic(topic).await;
    let produce = idempotent_produce(&setup.gateway.bootstrap(), &setup.topic);
    let produce = python_matrix::client_args(&driver, &pairs(&produce));
    let (outcome, failures) = idempotent_run(client, &driver, produce, setup).await;
    python_matrix::record_cell(&driver, Some(&outcome), "idempotent-switch", failures.is_empty());
    failures
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn confluent_kafka_idempotent_producer_survives_four_switches() {
    common::init_test_logging();
    let failures = python_idempotent_run("confluent-kafka", "ck-idem-switch").await;
    assert!(failures.is_empty(), "confluent-kafka idempotent producer across four switches: {failures:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_python_idempotent_producer_survives_four_switches() {
    common::init_test_logging();
    let failures = python_idempotent_run("kafka-python", "kp-idem-switch").await;
    assert!(failures.is_empty(), "kafka-python idempotent producer across four switches: {failures:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafkajs_idempotent_producer_survives_four_switches() {
    common::init_test_logging();
    let _cell = Cell::new("kafkajs", kafkajs_version(), "idempotent-switch");
    let setup = gateway_and_topic("kjs-idem-switch").await;
    let produce = args(&pairs(&idempotent_produce(&setup.gateway.bootstrap(), &setup.topic)));
    let (_, failures) = idempotent_run("kafkajs", &kafkajs_driver(), produce, setup).await;
    assert!(failures.is_empty(), "kafkajs idempotent producer across four switches: {failures:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn franz_go_idempotent_producer_survives_four_switches() {
    common::init_test_logging();
    let _cell = Cell::new("franz-go", franz_go_version(), "idempotent-switch");
    let setup = gateway_and_topic("fg-idem-switch").await;
    let produce = args(&pairs(&idempotent_produce(&setup.gateway.bootstrap(), &setup.topic)));
    let (_, failures) = idempotent_run("franz-go", &franz_go_driver(), produce, setup).await;
    assert!(failures.is_empty(), "franz-go idempotent producer across four switches: {failures:#?}");
}

/// Every transaction of 100 records (`key-0..99`, `key-100..199`, ...) committed on one cluster, whole: all its
/// keys on main, or all only on the failover.
fn transaction_failures(placement: &Placement) -> Vec<String> {
    let mut split = Vec::new();
    let (mut on_main, mut on_failover) = (0, 0);
    for first in (0..COUNT).step_by(100) {
        let block = first..(first + 100).min(COUNT);
        let main = block.clone().filter(|i| placement.on_main(*i)).count();
        let failover = block.clone().filter(|i| placement.only_on_failover(*i)).count();
        match (main, failover) {
            (0, 0) => {} // on neither cluster: reported by Placement::failures
            (m, 0) if m == block.clone().count() => on_main += 1,
            (0, f) if f == block.clone().count() => on_failover += 1,
            _ => split.push(format!("{block:?}: {main} on main, {failover} only on the failover")),
        }
    }
    eprintln!("transactions whole on main: {on_main}, whole on the failover: {on_failover}, split: {split:?}");
    if split.is_empty() { Vec::new() } else { vec![format!("transactions not whole on one cluster: {split:?}")] }
}

/// Runs a transactional producer (`produce` arguments, `retry_aborted=true`) across the switches and returns every
/// failure.
async fn transactional_run(
    client: &str,
    driver: &Driver,
    produce: Vec<String>,
    setup: Setup,
) -> (Outcome, Vec<String>) {
    let started = Instant::now();
    let running = driver.start("produce", &produce);
    let (outcome, switches) = produce_across_switches(&setup.gateway, running).await;
    let placement = Placement::read(setup.main, setup.failover, &setup.topic, "key");
    let mut failures = run_failures(&outcome);
    // The binary's MirrorMaker reads main read_committed (common::client_matrix::mirrored_pair): a transaction
    // aborted on main is not copied, so a key written twice on the failover is the producer's doing.
    failures.extend(placement.failures(true));
    failures.extend(transaction_failures(&placement));
    // Each switch leaves the producer with a transaction or producer id of the other cluster, which the
    // gateway refuses (or aborts itself) rather than forwarding.
    let refused = counter(&setup.gateway, "franzgate_transaction_requests_refused_total").await
        + counter(&setup.gateway, "franzgate_transactions_aborted_by_gateway_total").await;
    if refused == 0 {
        failures.push("the gateway refused no request of a transaction that crossed a switch".into());
    }
    eprintln!("{client}: {} aborts; reasons: {:#?}", outcome.count("aborts"), outcome.result["abort_reasons"]);
    report(&format!("{client} transactional"), started, &outcome, &switches, &failures);
    (outcome, failures)
}

/// The produce arguments of a transactional producer that aborts and re-sends a transaction on abortable errors.
fn transactional_produce(setup: &Setup) -> Vec<(&'static str, String)> {
    let mut produce = idempotent_produce(&setup.gateway.bootstrap(), &setup.topic);
    produce.extend([("transactional_id", unique("txn-switch-id")), ("retry_aborted", "true".to_string())]);
    produce
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn java_transactional_producer_across_switches() {
    common::init_test_logging();
    let _cell = Cell::new("java", java_version(), "transactions-switch");
    let setup = gateway_and_topic("java-txn-switch").await;
    let produce = args(&pairs(&transactional_produce(&setup)));
    let (_, failures) = transactional_run("java", &java_driver(), produce, setup).await;
    assert!(failures.is_empty(), "java transactional producer across four switches: {failures:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn confluent_kafka_transactional_producer_across_switches() {
    common::init_test_logging();
    let driver: Driver = python_matrix::driver("confluent-kafka");
    let setup = gateway_and_topic("ck-txn-switch").await;
    let produce = python_matrix::client_args(&driver, &pairs(&transactional_produce(&setup)));
    let (outcome, failures) = transactional_run("confluent-kafka", &driver, produce, setup).await;
    python_matrix::record_cell(&driver, Some(&outcome), "transactions-switch", failures.is_empty());
    assert!(failures.is_empty(), "confluent-kafka transactional producer across four switches: {failures:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn franz_go_transactional_producer_across_switches() {
    common::init_test_logging();
    let _cell = Cell::new("franz-go", franz_go_version(), "transactions-switch");
    let setup = gateway_and_topic("fg-txn-switch").await;
    let produce = args(&pairs(&transactional_produce(&setup)));
    let (_, failures) = transactional_run("franz-go", &franz_go_driver(), produce, setup).await;
    assert!(failures.is_empty(), "franz-go transactional producer across four switches: {failures:#?}");
}
