//! Issue 17: a Kafka Streams word count with `processing.guarantee=exactly_once_v2` through the gateway across a
//! switch to the failover and back to main (tests/clients/java-streams/StreamsWordCount.java: key = word, count
//! per word in an in-memory store with a changelog, word -> count to the output topic; one sub-topology, no
//! repartition topic, one stream thread).
//!
//! The input is produced directly to the cluster active at the time, not through the gateway: what reaches each
//! cluster's input topic is then known exactly, and the gateway's producer handling (tests/producer_switch.rs) is
//! not under test here. Phases:
//! 1. main: words produced at a steady rate while the application runs. Once MirrorMaker has created the
//!    changelog topic on the failover and synced the application's committed offsets there (a long-running
//!    deployment's state), the gateway switches to the failover mid-stream; 500 more words go to main after it
//!    (MirrorMaker copies them to the failover).
//! 2. failover: more words, produced to the failover.
//! 3. main again (switched back): more words, produced to main.
//!
//! Each phase ends with one marker record `end-<phase>-<partition>` per input partition. Once the application
//! reports it processed a phase's markers and they are in the active cluster's output read_committed, everything
//! of that phase before them was processed and committed there. The output is then read read_committed from
//! each cluster (the failover's before the switch back: MirrorMaker keeps copying main's output to it) and each
//! word's last count compared with its count in the cluster's input topic.
//!
//! What happens: the stream thread's producer keeps the old cluster's producer id, so its first transactional
//! request after a switch is refused: a Produce with INVALID_PRODUCER_EPOCH, a TxnOffsetCommit with
//! UNKNOWN_MEMBER_ID, both of which Kafka Streams 4.4 turns into a TaskMigratedException (it closes its tasks,
//! re-creates its producer, rejoins and restores); but an EndTxn(commit) (the switch fell between the
//! transaction's last write and its commit) with UNKNOWN_PRODUCER_ID, which Streams treats as fatal (see
//! [`streams_word_count_exactly_once_across_switches`]). The task (or, with REPLACE_THREAD, the new thread)
//! restores the state from the new cluster's changelog (MirrorMaker's copy on the failover) and resumes from the group's offsets there
//! (MirrorMaker's translated checkpoints, which lag the changelog): the records between the two are counted again
//! on the failover. MirrorMaker copies nothing back, so on main after the switch back the application resumes from
//! main's own changelog and offsets: main's counts are exact for main's input, phase 2 is not in them.
//!
//! Asserted (what holds): no error reaches the application (beyond the replaced threads) and it is running when
//! stopped; it processes every phase's markers after each switch and commits them on the active cluster; every
//! word's count on each cluster is at least its count among the records produced to that cluster after the switch
//! to it; main's final counts equal main's input exactly. The failover's per-word differences from its input are
//! printed, not asserted.

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::client_matrix::{self, Driver, Outcome, Running, args, mirrored_pair};
use common::{KafkaCluster, TestGateway, create_topic, unique};
use rdkafka::producer::{FutureProducer, FutureRecord};

const PARTITIONS: i32 = 3;
/// Distinct words (`w00` .. `w19`).
const WORDS: u64 = 20;
/// Records of phase 1 at most, produced to main at [`RATE`] a second while the application runs, until
/// [`AFTER_SWITCH`] records after the switch to the failover.
const PHASE1: u64 = 30_000;
const RATE: u64 = 250;
const AFTER_SWITCH: u64 = 500;
/// Records processed on main before the switch to the failover (mid-phase 1), once MirrorMaker has also created
/// the changelog topic on the failover and synced the application's committed offsets there.
const SWITCH_AT: u64 = 1000;
/// Records of phases 2 and 3.
const PHASE: u64 = 1000;
/// How long the application may take to process a phase (rebalances, restores, MirrorMaker's copies).
const PHASE_LIMIT: Duration = Duration::from_secs(180);

/// The word of record `i` of `phase`.
fn word(phase: u64, i: u64) -> String {
    format!("w{:02}", (i * (phase + 2) + i / WORDS) % WORDS)
}

/// The Kafka Streams word count (scripts/install-deps.sh builds it).
fn streams_driver() -> Driver {
    client_matrix::java_program("java-streams", &common::tools_dir().join("clients/java-streams"), "StreamsWordCount")
}

/// An idempotent acks=all producer writing directly to `cluster`.
fn producer(cluster: &KafkaCluster) -> FutureProducer {
    let mut config = common::client_config(&cluster.bootstrap());
    config.set("acks", "all").set("enable.idempotence", "true").set("linger.ms", "5");
    config.create().expect("producer")
}

/// Until when a paced phase produces: `stop` set (the switch happened), then [`AFTER_SWITCH`] more records.
struct Pace {
    rate: u64,
    stop: Arc<AtomicBool>,
}

/// Produces `count` words of `phase` to `topic` (key and value the word) — or, paced, at `rate` a second until
/// `stop` is set and then [`AFTER_SWITCH`] more (at most `count`) — then the phase's markers, one per partition.
/// Returns how often each word was produced (markers included).
async fn produce_phase(
    producer: &FutureProducer,
    topic: &str,
    phase: u64,
    count: u64,
    pace: Option<Pace>,
) -> BTreeMap<String, i64> {
    let mut produced = BTreeMap::new();
    let started = tokio::time::Instant::now();
    let mut pending = Vec::new();
    let mut stop_at = count;
    for i in 0..count {
        if i >= stop_at {
            break;
        }
        if let Some(pace) = &pace {
            tokio::time::sleep_until(started + Duration::from_millis(i * 1000 / pace.rate)).await;
            if stop_at == count && pace.stop.load(Ordering::SeqCst) {
                stop_at = (i + AFTER_SWITCH).min(count);
            }
        }
        let word = word(phase, i);
        let record = FutureRecord::to(topic).key(&word).payload(&word);
        pending.push(producer.send_result(record).map_err(|(e, _)| e).expect("enqueued"));
        *produced.entry(word).or_insert(0) += 1;
        if pending.len() >= 50 {
            for delivery in pending.drain(..) {
                delivery.await.expect("delivery").map_err(|(e, _)| e).expect("acknowledged");
            }
        }
    }
    for p in 0..PARTITIONS {
        let marker = format!("end-{phase}-{p}");
        let record = FutureRecord::to(topic).key(&marker).payload(&marker).partition(p);
        pending.push(producer.send_result(record).map_err(|(e, _)| e).expect("enqueued"));
        produced.insert(marker, 1);
    }
    for delivery in pending {
        delivery.await.expect("delivery").map_err(|(e, _)| e).expect("acknowledged");
    }
    produced
}

/// Every record of `topic` on `cluster` read read_committed, as (key, value) in offset order per partition.
fn read_records(cluster: &KafkaCluster, topic: &str) -> Vec<(String, Vec<u8>)> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::{Message, Offset, TopicPartitionList};
    let consumer: BaseConsumer = common::client_config(&cluster.bootstrap())
        .set("group.id", "streams-switch-reader")
        .set("isolation.level", "read_committed")
        .set("enable.partition.eof", "true")
        .create()
        .expect("consumer");
    let mut assignment = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        assignment.add_partition_offset(topic, p, Offset::Beginning).expect("offset");
    }
    consumer.assign(&assignment).expect("assign");
    let mut records = Vec::new();
    let mut at_end = 0;
    let deadline = Instant::now() + Duration::from_secs(30);
    while at_end < PARTITIONS && Instant::now() < deadline {
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => records.push((
                String::from_utf8_lossy(m.key().unwrap_or_default()).into_owned(),
                m.payload().unwrap_or_default().to_vec(),
            )),
            Some(Err(rdkafka::error::KafkaError::PartitionEOF(_))) => at_end += 1,
            Some(Err(e)) => panic!("reading {topic} from {}: {e}", cluster.name()),
            None => {}
        }
    }
    assert_eq!(at_end, PARTITIONS, "reached the end of every partition of {topic} on {}", cluster.name());
    records
}

/// How often each word is in the input topic on `cluster`.
fn input_counts(cluster: &KafkaCluster, topic: &str) -> BTreeMap<String, i64> {
    let mut counts = BTreeMap::new();
    for (word, _) in read_records(cluster, topic) {
        *counts.entry(word).or_insert(0) += 1;
    }
    counts
}

/// The output topic on `cluster`: each word's last count, and the highest count it ever had.
struct Output {
    last: BTreeMap<String, i64>,
    highest: BTreeMap<String, i64>,
    records: usize,
}

fn output(cluster: &KafkaCluster, topic: &str) -> Output {
    let mut out = Output { last: BTreeMap::new(), highest: BTreeMap::new(), records: 0 };
    for (word, value) in read_records(cluster, topic) {
        let count = i64::from_be_bytes(value.as_slice().try_into().expect("a Long count"));
        out.last.insert(word.clone(), count);
        let highest = out.highest.entry(word).or_insert(count);
        *highest = (*highest).max(count);
        out.records += 1;
    }
    out
}

/// Waits until `phase`'s markers are in the output on `cluster`, read_committed (at most [`PHASE_LIMIT`]).
async fn await_committed_markers(cluster: &KafkaCluster, topic: &str, phase: u64) -> Result<Output, String> {
    let deadline = Instant::now() + PHASE_LIMIT;
    loop {
        let out = output(cluster, topic);
        if (0..PARTITIONS).all(|p| out.last.contains_key(&format!("end-{phase}-{p}"))) {
            return Ok(out);
        }
        if Instant::now() > deadline {
            return Err(format!(
                "phase {phase}'s markers not in the output on {} within {PHASE_LIMIT:?}",
                cluster.name()
            ));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Waits until the application processed `markers` distinct markers, or ended, or [`PHASE_LIMIT`] passed.
async fn await_markers(running: &mut Running, markers: u64) -> Result<(), String> {
    match tokio::time::timeout(PHASE_LIMIT, running.await_progress_or_exit("markers", markers, PHASE_LIMIT * 2)).await {
        Ok(true) => Ok(()),
        Ok(false) => Err(format!("the application ended before processing {markers} markers")),
        Err(_) => Err(format!(
            "the application processed {} of {markers} markers within {PHASE_LIMIT:?}",
            running.latest("markers")
        )),
    }
}

/// Per word: the output's last count minus the expected count (words whose difference is not 0).
fn differences(expected: &BTreeMap<String, i64>, out: &Output) -> BTreeMap<String, i64> {
    let mut words: Vec<&String> = expected.keys().chain(out.last.keys()).collect();
    words.sort();
    words.dedup();
    words
        .into_iter()
        .filter_map(|w| {
            let diff = out.last.get(w).copied().unwrap_or(0) - expected.get(w).copied().unwrap_or(0);
            (diff != 0).then(|| (w.clone(), diff))
        })
        .collect()
}

/// Words whose last count on the output is below `floor` (what was produced to that cluster after the switch to
/// it: the application processed those records there, whatever state it restored).
fn below(floor: &BTreeMap<String, i64>, out: &Output) -> Vec<String> {
    floor
        .iter()
        .filter(|(w, n)| out.last.get(*w).copied().unwrap_or(0) < **n)
        .map(|(w, n)| format!("{w}: {} < {n}", out.last.get(w).copied().unwrap_or(0)))
        .collect()
}

/// Words whose last count is below the highest the output had for them.
fn stale(out: &Output) -> Vec<String> {
    out.last
        .iter()
        .filter(|(w, n)| out.highest.get(*w).is_some_and(|h| h > *n))
        .map(|(w, n)| format!("{w}: {n} after {}", out.highest[w]))
        .collect()
}

fn add(into: &mut BTreeMap<String, i64>, from: &BTreeMap<String, i64>) {
    for (w, n) in from {
        *into.entry(w.clone()).or_insert(0) += n;
    }
}

/// Waits until `topic` exists on `cluster` with [`PARTITIONS`] partitions (MirrorMaker creates the application's
/// changelog topic on the failover; the metadata request asks for no auto-creation).
async fn await_topic(cluster: &'static KafkaCluster, topic: &str) -> Result<(), String> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let topic = topic.to_string();
    tokio::task::spawn_blocking(move || {
        let consumer: BaseConsumer = common::client_config(&cluster.bootstrap())
            .set("allow.auto.create.topics", "false")
            .create()
            .expect("metadata client");
        let deadline = Instant::now() + PHASE_LIMIT;
        loop {
            let partitions = consumer
                .fetch_metadata(None, Duration::from_secs(10))
                .ok()
                .and_then(|m| Some(m.topics().iter().find(|t| t.name() == topic)?.partitions().len()));
            if partitions == Some(PARTITIONS as usize) {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!("{topic} on {}: {partitions:?} partitions after {PHASE_LIMIT:?}", cluster.name()));
            }
            std::thread::sleep(Duration::from_millis(300));
        }
    })
    .await
    .expect("metadata thread")
}

/// The sum of the offsets `group` committed for `topic` on `cluster`.
async fn committed(cluster: &'static KafkaCluster, group: &str, topic: &str) -> i64 {
    let (group, topic) = (group.to_string(), topic.to_string());
    tokio::task::spawn_blocking(move || common::client_matrix::committed_total(cluster, &group, &topic, PARTITIONS))
        .await
        .expect("committed offsets thread")
}

/// Waits until MirrorMaker synced offsets of `group` for `topic` to the failover (at most [`PHASE_LIMIT`]).
async fn await_synced_offsets(failover: &'static KafkaCluster, group: &str, topic: &str) -> Result<i64, String> {
    let deadline = Instant::now() + PHASE_LIMIT;
    loop {
        let total = committed(failover, group, topic).await;
        if total > 0 {
            return Ok(total);
        }
        if Instant::now() > deadline {
            return Err(format!("no offsets of {group} synced to the failover within {PHASE_LIMIT:?}"));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// A counter of the gateway's `/metrics` (without labels), 0 when absent.
async fn counter(gateway: &TestGateway, name: &str) -> u64 {
    let text = franzgate::admin::client::call_text(&gateway.admin(), "/metrics", common::ADMIN).await.expect("metrics");
    let prefix = format!("{name} ");
    text.lines().find_map(|l| l.strip_prefix(prefix.as_str())?.trim().parse().ok()).unwrap_or(0)
}

/// How often each exception or error name of interest appears in the application's log (stderr, WARN and up).
fn log_mentions(stderr: &str) -> BTreeMap<&'static str, usize> {
    const NAMES: [&str; 12] = [
        "TaskMigratedException",
        "TaskCorruptedException",
        "ProducerFencedException",
        "InvalidProducerEpochException",
        "TransactionAbortableException",
        "UnknownProducerIdException",
        "CommitFailedException",
        "UNKNOWN_MEMBER_ID",
        "OffsetOutOfRange",
        "TimeoutException",
        "OutOfOrderSequenceException",
        "Restoration",
    ];
    NAMES.iter().map(|n| (*n, stderr.matches(n).count())).filter(|(_, c)| *c > 0).collect()
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Runs the word count (its uncaught-exception handler answering `on_error`: `shutdown` or `replace`) through the
/// phases and returns every failure of what holds.
async fn word_count_across_switches(on_error: &str) -> Vec<String> {
    let started = Instant::now();
    let mut run = WordCount::start(on_error).await;
    let phase1 = run.phase_one_with_a_switch().await;

    // Phase 2 on the failover, phase 3 back on main.
    let failover = run.failover;
    let phase2 = produce_phase(&producer(failover), &run.input, 2, PHASE, None).await;
    let failover_result = run.await_phase(failover, 2, "on the failover").await;
    let transitions_on_failover = run.running.latest("transitions");
    run.gateway.switch_to("main").await;
    eprintln!("switched back to main after {} records processed", run.running.latest("processed"));
    let phase3 = produce_phase(&run.main_producer, &run.input, 3, PHASE, None).await;
    let main_result = run.await_phase(run.main, 3, "back on main").await;

    std::fs::write(&run.stop_file, b"").expect("stop file");
    let outcome: Outcome = run.running.finish(Duration::from_secs(90)).await;
    let mut failures = std::mem::take(&mut run.failures);
    if outcome.result.get("client").is_none() || !outcome.success || !outcome.errors().is_empty() {
        failures.push(format!("the application failed: result {}", outcome.result));
    }
    let mut produced_for_failover = phase1.clone();
    add(&mut produced_for_failover, &phase2);
    if let Some(result) = &failover_result {
        failures.extend(check_failover(result, &produced_for_failover, &phase2));
    }
    if let Some(result) = &main_result {
        let mut produced_for_main = phase1.clone();
        add(&mut produced_for_main, &phase3);
        let mut counted_everywhere = produced_for_failover.clone();
        add(&mut counted_everywhere, &phase3);
        failures.extend(check_main(result, &produced_for_main, &counted_everywhere, &phase3));
    }
    let measured = gateway_counters(&run.gateway).await;
    eprintln!(
        "streams word count: {:?} in all; {transitions_on_failover} state changes by the switch back; gateway {measured:?}",
        started.elapsed()
    );
    report(&outcome, &failures);
    failures
}

/// A word count application running through a gateway over the mirrored pair, and its topics.
struct WordCount {
    main: &'static KafkaCluster,
    failover: &'static KafkaCluster,
    gateway: TestGateway,
    input: String,
    output: String,
    application_id: String,
    /// Holds the application's state directory and its stop file.
    _state_dir: tempfile::TempDir,
    stop_file: PathBuf,
    running: Running,
    main_producer: FutureProducer,
    failures: Vec<String>,
}

impl WordCount {
    /// Topics on both clusters and the application started through the gateway, with `on_error` as its
    /// uncaught-exception handler.
    async fn start(on_error: &str) -> Self {
        let (main, failover) = mirrored_pair().await;
        let gateway = TestGateway::start_pair(&main.bootstrap(), &failover.bootstrap(), "").await;
        let (input, output) = (unique("wc-input"), unique("wc-output"));
        for topic in [&input, &output] {
            create_topic(&main.bootstrap(), topic, PARTITIONS).await;
            create_topic(&failover.bootstrap(), topic, PARTITIONS).await;
        }
        let state_dir = tempfile::Builder::new().prefix("franzgate-streams-").tempdir().expect("state dir");
        let stop_file = state_dir.path().join("stop");
        let application_id = unique("wordcount");
        let app_args = args(&[
            ("bootstrap", &gateway.bootstrap()),
            ("input", &input),
            ("output", &output),
            ("application_id", &application_id),
            ("state_dir", &state_dir.path().join("state").display().to_string()),
            ("stop_file", &stop_file.display().to_string()),
            ("commit_interval_ms", "100"),
            ("session_timeout_ms", "10000"),
            ("on_error", on_error),
        ]);
        let running = streams_driver().start("run", &app_args);
        let main_producer = producer(main);
        Self {
            main,
            failover,
            gateway,
            input,
            output,
            application_id,
            _state_dir: state_dir,
            stop_file,
            running,
            main_producer,
            failures: Vec::new(),
        }
    }

    /// Phase 1 on main, the switch to the failover in the middle of it; returns what phase 1 produced.
    async fn phase_one_with_a_switch(&mut self) -> BTreeMap<String, i64> {
        let (main, failover) = (self.main, self.failover);
        let switched = Arc::new(AtomicBool::new(false));
        let phase1 = {
            let (producer, topic) = (self.main_producer.clone(), self.input.clone());
            let pace = Pace { rate: RATE, stop: switched.clone() };
            tokio::spawn(async move { produce_phase(&producer, &topic, 1, PHASE1, Some(pace)).await })
        };
        let progress = self.running.await_progress_or_exit("processed", SWITCH_AT, PHASE_LIMIT).await;
        assert!(progress, "the application ended before processing {SWITCH_AT} records on main");
        // A long-running deployment's state at any moment: MirrorMaker created the changelog topic on the
        // failover (else the application's own producer, switched there, has the broker auto-create it with one
        // partition, and Streams stops on "invalid partitions") and synced the application's committed offsets
        // at least once.
        let changelog = format!("{}-counts-changelog", self.application_id);
        if let Err(e) = await_topic(failover, &changelog).await {
            self.failures.push(e);
        }
        let synced = await_synced_offsets(failover, &self.application_id, &self.input).await.unwrap_or_else(|e| {
            self.failures.push(e);
            0
        });
        let processed_before = self.running.latest("processed");
        let committed_on_main = committed(main, &self.application_id, &self.input).await;
        let synced_before = committed(failover, &self.application_id, &self.input).await;
        let switch_started = Instant::now();
        self.gateway.switch_to("failover").await;
        let took = switch_started.elapsed();
        switched.store(true, Ordering::SeqCst);
        eprintln!(
            "switched to the failover in {took:?} after {processed_before} records processed on main ({} after, \
             the phase 1 producer {}); committed input offsets (sum) just before: {committed_on_main} on main, \
             {synced_before} synced to the failover (first seen {synced})",
            self.running.latest("processed"),
            if phase1.is_finished() { "had finished: not mid-stream" } else { "still producing" },
        );
        phase1.await.expect("phase 1 producer")
    }

    /// Waits for `phase`'s markers to be processed and committed on `cluster`; its output and input counts then.
    async fn await_phase(
        &mut self,
        cluster: &'static KafkaCluster,
        phase: u64,
        where_: &str,
    ) -> Option<(Output, BTreeMap<String, i64>)> {
        if let Err(e) = await_markers(&mut self.running, phase * PARTITIONS as u64).await {
            self.failures.push(format!("{where_}: {e}"));
            return None;
        }
        match await_committed_markers(cluster, &self.output, phase).await {
            Err(e) => {
                self.failures.push(e);
                None
            }
            Ok(out) => Some((out, input_counts(cluster, &self.input))),
        }
    }
}

/// The failover's counts after phase 2, against what was produced for it (phase 1 copied, phase 2): printed; a
/// count below phase 2's own records fails.
fn check_failover(
    (out, input_now): &(Output, BTreeMap<String, i64>),
    produced: &BTreeMap<String, i64>,
    phase2: &BTreeMap<String, i64>,
) -> Vec<String> {
    eprintln!(
        "failover: input topic vs produced (MirrorMaker's copies of phase 1 and phase 2): {:?}",
        input_now.iter().filter(|(w, n)| produced.get(*w) != Some(n)).collect::<Vec<_>>()
    );
    let diff = differences(input_now, out);
    eprintln!(
        "failover after phase 2: {} output records; last count - input count per word: {diff:?} (sum {})",
        out.records,
        diff.values().sum::<i64>()
    );
    eprintln!("failover: words whose last count is below an earlier one (a stale copy after): {:?}", stale(out));
    let floor = below(phase2, out);
    if floor.is_empty() {
        Vec::new()
    } else {
        vec![format!("on the failover, counts below phase 2's own records: {floor:?}")]
    }
}

/// Main's counts after phase 3: exactly main's input (phases 1 and 3), and no count below phase 3's own records.
fn check_main(
    (out, input_now): &(Output, BTreeMap<String, i64>),
    produced: &BTreeMap<String, i64>,
    counted_everywhere: &BTreeMap<String, i64>,
    phase3: &BTreeMap<String, i64>,
) -> Vec<String> {
    let mut failures = Vec::new();
    eprintln!(
        "main: input topic vs produced: {:?}",
        input_now.iter().filter(|(w, n)| produced.get(*w) != Some(n)).collect::<Vec<_>>()
    );
    let diff = differences(input_now, out);
    eprintln!(
        "main after phase 3: {} output records; last count - input count per word: {diff:?} (sum {})",
        out.records,
        diff.values().sum::<i64>()
    );
    eprintln!(
        "main after phase 3: last count - (phases 1, 2 and 3) per word: {:?}",
        differences(counted_everywhere, out)
    );
    eprintln!("main: words whose last count is below an earlier one: {:?}", stale(out));
    let floor = below(phase3, out);
    if !floor.is_empty() {
        failures.push(format!("on main, counts below phase 3's own records: {floor:?}"));
    }
    // Exactly-once on main itself holds: MirrorMaker copies nothing back, and the application, its thread
    // replaced or its tasks lost, restores main's changelog and resumes from main's committed offsets.
    if !diff.is_empty() {
        failures.push(format!("on main, last counts differ from main's input: {diff:?}"));
    }
    failures
}

/// The gateway's counters of what it did about the switches.
async fn gateway_counters(gateway: &TestGateway) -> Vec<(&'static str, u64)> {
    let metrics = [
        "franzgate_offset_commits_fenced_total",
        "franzgate_transaction_requests_refused_total",
        "franzgate_transactions_aborted_by_gateway_total",
        "franzgate_producer_stand_ins_total",
    ];
    let mut measured = Vec::new();
    for name in metrics {
        measured.push((name, counter(gateway, name).await));
    }
    measured
}

/// The application's story in order (state changes, replaced threads, restores, markers), its log's exceptions
/// and the failures.
fn report(outcome: &Outcome, failures: &[String]) {
    let timeline: Vec<String> = outcome
        .progress
        .iter()
        .filter(|v| v.get("processed").is_none())
        .map(|v| {
            let mut line = v.to_string();
            line.truncate(240);
            line
        })
        .collect();
    let states: Vec<String> =
        outcome.progress.iter().filter_map(|v| Some(v.get("state")?.as_str()?.to_string())).collect();
    eprintln!(
        "result {}\nstate changes {states:?}\ntimeline {timeline:#?}\nlog mentions {:?}\nfailures: {failures:#?}\n\
         stderr (tail):\n{}",
        outcome.result,
        log_mentions(&outcome.stderr),
        tail(&outcome.stderr, 60)
    );
}

/// The application as written by default: an exception that reaches the uncaught-exception handler shuts it down.
/// Only ProducerFenced, InvalidProducerEpoch, InvalidPidMapping, OutOfOrderSequence (and CommitFailed on commit)
/// become a TaskMigratedException, which Streams recovers from by closing its tasks, re-creating its producer and
/// rejoining. The gateway refuses a crossed transaction's Produce (v11+) with INVALID_PRODUCER_EPOCH and its
/// TxnOffsetCommit with UNKNOWN_MEMBER_ID (CommitFailed): recovered. Its EndTxn(commit) gets UNKNOWN_PRODUCER_ID,
/// abortable for a plain producer but a fatal StreamsException to Streams: a switch between a transaction's last
/// write and its commit shuts the application down. Ignored for that: it fails about one run in four (3 of 4
/// passed, 2026-12-04); the REPLACE_THREAD test below covers the same path and recovers from both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "Kafka Streams 4.4 shuts down when a switch falls between a transaction's last write and its commit"]
async fn streams_word_count_exactly_once_across_switches() {
    common::init_test_logging();
    let failures = word_count_across_switches("shutdown").await;
    assert!(failures.is_empty(), "streams word count across switches: {failures:#?}");
}

/// The same application with an uncaught-exception handler that replaces the stream thread (REPLACE_THREAD): the
/// new thread has a new producer (a new transactional id), a new group member, and restores its tasks' state.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_word_count_replacing_threads_across_switches() {
    common::init_test_logging();
    let failures = word_count_across_switches("replace").await;
    assert!(failures.is_empty(), "streams word count (REPLACE_THREAD) across switches: {failures:#?}");
}
