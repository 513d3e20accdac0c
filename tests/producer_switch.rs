//! Issue 17: idempotent producers carry on across gateway switches. A producer's id, epoch and sequence numbers
//! belong to the cluster that issued them; after `POST .../pcluster/main/switch?to=failover` the gateway sends
//! its batches to the failover cluster (MirrorMaker 2 copies main to it), and after the switch back to main.
//!
//! Each test starts a paced idempotent acks=all producer (Java's kafka-clients, confluent-kafka) through a gateway
//! over the binary's mirrored pair, switches four times (failover, main, failover, main) while it runs, and then
//! reads both clusters directly: no error reached the application, every acknowledged record is on one of the
//! clusters, none twice where the producer wrote it, and the producer really wrote on both clusters. Cells:
//! `idempotent-switch` in target/client-matrix/<client>.jsonl (not a column of the README table yet).

mod common;
#[path = "clients/python/matrix.rs"]
#[allow(dead_code)] // this binary uses the Python driver and its cell recorder only
mod python_matrix;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::client_matrix::{Cell, Driver, Outcome, Running, args, java_driver, java_version, keys, mirrored_pair};
use common::{KafkaCluster, TestGateway, create_topic, read_all, unique};

const PARTITIONS: i32 = 3;
/// Records per producer, at [`RATE`] a second: about 33 s, room for four switches [`SPACING`] apart.
const COUNT: u64 = 2000;
const RATE: &str = "60";
/// Acknowledgements between the start and the first switch, and between the end of one switch and the next.
const SPACING: u64 = 300;
/// The switches, in order: each moves the producer to the other cluster.
const TARGETS: [&str; 4] = ["failover", "main", "failover", "main"];
/// A driver run's upper bound (the producer's own delivery timeouts end well within it).
const RUN_LIMIT: Duration = Duration::from_secs(180);

/// One switch while the producer ran: the acknowledgements it had reported before and after.
struct Switch {
    to: &'static str,
    acked_before: u64,
    acked_after: u64,
    took: Duration,
}

/// Runs the producer `running` to its end, switching the gateway to each of [`TARGETS`] in turn once the producer
/// reported [`SPACING`] more acknowledgements. Stops switching if the producer ended early (its result says why).
async fn produce_across_switches(gateway: &TestGateway, mut running: Running) -> (Outcome, Vec<Switch>) {
    let mut switches = Vec::new();
    let mut mark = SPACING;
    for to in TARGETS {
        if !running.await_progress_or_exit("acked", mark, Duration::from_secs(120)).await {
            eprintln!("the producer ended before {mark} acknowledgements: no switch to {to}");
            break;
        }
        let acked_before = running.latest("acked");
        let started = Instant::now();
        gateway.switch_to(to).await;
        let took = started.elapsed();
        let acked_after = running.latest("acked");
        eprintln!("switched to {to} in {took:?}: acked {acked_before} before, {acked_after} after");
        switches.push(Switch { to, acked_before, acked_after, took });
        mark = acked_after + SPACING;
    }
    (running.finish(RUN_LIMIT).await, switches)
}

/// How often each value is in `topic` on `cluster`, read directly.
fn counted(cluster: &KafkaCluster, topic: &str) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for value in read_all(&cluster.bootstrap(), topic) {
        *counts.entry(value).or_insert(0) += 1;
    }
    counts
}

/// The number in `prefix-n`.
fn index(key: &str, prefix: &str) -> Option<u64> {
    key.strip_prefix(prefix)?.strip_prefix('-')?.parse().ok()
}

/// Where the producer's `COUNT` records `prefix-*` ended up, and every way that placement breaks the promise of an
/// idempotent producer across the `switches` (empty when it holds). The key is the value in these drivers.
fn placement_failures(
    main: &KafkaCluster,
    failover: &KafkaCluster,
    topic: &str,
    prefix: &str,
    switches: &[Switch],
) -> Vec<String> {
    let (on_main, on_failover) = (counted(main, topic), counted(failover, topic));
    let mut failures = Vec::new();
    let missing: Vec<_> =
        keys(prefix, COUNT).into_iter().filter(|k| !on_main.contains_key(k) && !on_failover.contains_key(k)).collect();
    if !missing.is_empty() {
        failures.push(format!(
            "{} keys on neither cluster, e.g. {:?}",
            missing.len(),
            &missing[..missing.len().min(5)]
        ));
    }
    let twice_on_main: Vec<_> = on_main.iter().filter(|(_, n)| **n > 1).collect();
    if !twice_on_main.is_empty() {
        failures.push(format!("{} keys more than once on main: {:?}", twice_on_main.len(), first(&twice_on_main)));
    }
    // Keys not on main were written to the failover by the producer itself: once each. Keys on main may be on
    // the failover twice, copied by MirrorMaker (at least once) and re-sent there by the producer.
    let written_on_failover: BTreeMap<_, _> = on_failover.iter().filter(|(k, _)| !on_main.contains_key(*k)).collect();
    let twice_on_failover: Vec<_> =
        written_on_failover.iter().filter(|(_, n)| ***n > 1).map(|(k, n)| (*k, *n)).collect();
    if !twice_on_failover.is_empty() {
        failures.push(format!(
            "{} keys written to the failover more than once: {:?}",
            twice_on_failover.len(),
            first(&twice_on_failover)
        ));
    }
    let mirrored_twice = on_failover.iter().filter(|(k, n)| **n > 1 && on_main.contains_key(*k)).count();
    eprintln!(
        "{topic}: {} keys on main, {} only on the failover, {} missing, {} on main duplicated on the failover \
         (MirrorMaker's at-least-once copies, not asserted)",
        on_main.len(),
        written_on_failover.len(),
        missing.len(),
        mirrored_twice
    );
    if written_on_failover.is_empty() {
        failures.push("nothing was written to the failover only: the switches did not move the producer".into());
    }
    if let [_, back_to_main, to_failover_again, _] = switches {
        // Acknowledged after the switch back to main had ended (its mark is a multiple of 100 behind, hence the
        // 100) and before the next switch began: written to main.
        let window = back_to_main.acked_after + 100..to_failover_again.acked_before;
        let written_back_on_main =
            on_main.keys().filter_map(|k| index(k, prefix)).filter(|i| window.contains(i)).count();
        eprintln!("{written_back_on_main} keys of {window:?} (between the 2nd and 3rd switch) on main");
        if written_back_on_main == 0 {
            failures.push(format!("none of the keys {window:?}, acknowledged after the switch back, is on main"));
        }
    } else {
        failures.push(format!("{} of 4 switches happened while the producer ran", switches.len()));
    }
    let last = format!("{prefix}-{}", COUNT - 1);
    if !on_main.contains_key(&last) {
        failures.push(format!("the last record, {last}, sent after the 4th switch, is not on main"));
    }
    failures
}

/// The first few entries of a list of offenders.
fn first<T: std::fmt::Debug>(items: &[T]) -> &[T] {
    &items[..items.len().min(5)]
}

/// A gateway over the mirrored pair and a new topic on both clusters (the producer switched to the failover
/// needs it there; MirrorMaker would make it, but how soon depends on a busy machine).
async fn gateway_and_topic(name: &str) -> (TestGateway, &'static KafkaCluster, &'static KafkaCluster, String) {
    let (main, failover) = mirrored_pair().await;
    let gateway = TestGateway::start_pair(&main.bootstrap(), &failover.bootstrap(), "").await;
    let topic = unique(name);
    create_topic(&gateway.bootstrap(), &topic, PARTITIONS).await;
    create_topic(&failover.bootstrap(), &topic, PARTITIONS).await;
    (gateway, main, failover, topic)
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

/// Everything one client's run broke: errors that reached the application, a short count, the placement.
fn run_failures(outcome: &Outcome, placement: Vec<String>) -> Vec<String> {
    let mut failures = Vec::new();
    if !outcome.success || !outcome.errors().is_empty() {
        failures.push(format!("the producer reported {} errors: {:?}", outcome.errors().len(), outcome.errors()));
    }
    if outcome.count("produced") != COUNT {
        failures.push(format!("{} of {COUNT} records acknowledged", outcome.count("produced")));
    }
    failures.extend(placement);
    failures
}

fn report(client: &str, started: Instant, outcome: &Outcome, switches: &[Switch], failures: &[String]) {
    let switches: Vec<String> = switches
        .iter()
        .map(|s| format!("to {} at acked {}..{} in {:?}", s.to, s.acked_before, s.acked_after, s.took))
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn java_default_idempotent_producer_survives_four_switches() {
    common::init_test_logging();
    let started = Instant::now();
    let _cell = Cell::new("java", java_version(), "idempotent-switch");
    let (gateway, main, failover, topic) = gateway_and_topic("java-idem-switch").await;
    let produce = idempotent_produce(&gateway.bootstrap(), &topic);
    let running = java_driver().start("produce", &args(&pairs(&produce)));
    let (outcome, switches) = produce_across_switches(&gateway, running).await;
    let failures = run_failures(&outcome, placement_failures(main, failover, &topic, "key", &switches));
    report("java", started, &outcome, &switches, &failures);
    assert!(failures.is_empty(), "java idempotent producer across four switches: {failures:#?}");
    assert_eq!(outcome.result["client"], "java");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn confluent_kafka_idempotent_producer_survives_four_switches() {
    common::init_test_logging();
    let started = Instant::now();
    let driver: Driver = python_matrix::driver("confluent-kafka");
    let (gateway, main, failover, topic) = gateway_and_topic("ck-idem-switch").await;
    let produce = idempotent_produce(&gateway.bootstrap(), &topic);
    let running = driver.start("produce", &python_matrix::client_args(&driver, &pairs(&produce)));
    let (outcome, switches) = produce_across_switches(&gateway, running).await;
    let failures = run_failures(&outcome, placement_failures(main, failover, &topic, "key", &switches));
    report("confluent-kafka", started, &outcome, &switches, &failures);
    python_matrix::record_cell(&driver, Some(&outcome), "idempotent-switch", failures.is_empty());
    assert!(failures.is_empty(), "confluent-kafka idempotent producer across four switches: {failures:#?}");
}
