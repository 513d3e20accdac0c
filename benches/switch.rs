//! Time from the switch call to the first acknowledged produce on the new cluster, with librdkafka's default
//! producer settings, against two Apache Kafka clusters (main: nodes 1, 2, 3; failover: nodes 4, 5, 6) with
//! MirrorMaker 2 copying main -> failover. Reports the median of several switches (alternating
//! main -> failover -> main ...). A benchmark, not a test: it prints, it asserts nothing about time.
//!
//! Run: `cargo bench --bench switch` (needs Kafka: `scripts/install-deps.sh`).

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use common::{KafkaCluster, MirrorMaker, TestGateway, create_topic, read_all, shared_pair};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord};

const SWITCHES: usize = 7;
const TOPIC: &str = "bench";

async fn produce(producer: &FutureProducer, value: &str) {
    producer
        .send(FutureRecord::to(TOPIC).key(value).payload(value), Duration::from_secs(60))
        .await
        .map_err(|(e, _)| e)
        .unwrap_or_else(|e| panic!("`{value}` not acknowledged: {e}"));
}

/// Whether `cluster` has the topic, asked directly (a consumer's metadata request does not create it).
fn has_topic(cluster: &KafkaCluster) -> bool {
    let consumer: BaseConsumer = cluster.client_config().create().expect("metadata client");
    let md = consumer.fetch_metadata(Some(TOPIC), Duration::from_secs(5));
    md.is_ok_and(|md| md.topics().first().is_some_and(|t| t.error().is_none() && !t.partitions().is_empty()))
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --all-targets` does not, and then this only checks it builds.
    // A name filter for another bench skips this one.
    let args: Vec<String> = std::env::args().skip(1).collect();
    if !args.iter().any(|a| a == "--bench")
        || args.iter().any(|a| !a.starts_with('-') && !"switch".contains(a.as_str()))
    {
        println!("switch bench: run with `cargo bench --bench switch`");
        return;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    runtime.block_on(async {
        let (main, failover) = shared_pair().await;
        let _mirror_maker = MirrorMaker::start(&MirrorMaker::seed_properties(
            &main.bootstrap(),
            &failover.bootstrap(),
            "refresh.topics.interval.seconds=2\nrefresh.groups.interval.seconds=2\n",
        ));
        let gateway = TestGateway::start_pair(&main.bootstrap(), &failover.bootstrap(), "").await;
        create_topic(&gateway.bootstrap(), TOPIC, 1).await;
        // MirrorMaker creates the topic on the failover; the producer needs it there before the first switch.
        let deadline = Instant::now() + Duration::from_secs(180);
        while !has_topic(failover) {
            assert!(Instant::now() < deadline, "MirrorMaker did not create {TOPIC} on the failover");
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        // librdkafka defaults, apart from the bootstrap address.
        let producer: FutureProducer =
            rdkafka::ClientConfig::new().set("bootstrap.servers", gateway.bootstrap()).create().expect("producer");
        produce(&producer, "warm-up").await;

        let mut samples = Vec::new();
        for i in 0..SWITCHES {
            let target = if i % 2 == 0 { "failover" } else { "main" };
            let value = format!("after-switch-{i}");
            let started = Instant::now();
            gateway.switch_to(target).await;
            produce(&producer, &value).await;
            let elapsed = started.elapsed();
            let (landed, other) = if target == "failover" { (failover, main) } else { (main, failover) };
            assert!(read_all(&landed.bootstrap(), TOPIC).contains(&value), "{value} landed on {target}");
            if target == "failover" {
                // MirrorMaker copies main -> failover only: a record on the failover is never on main.
                assert!(!read_all(&other.bootstrap(), TOPIC).contains(&value), "{value} is not on main");
            }
            samples.push(elapsed);
            // Steady traffic on the new cluster before the next switch. Real switches are minutes apart; librdkafka
            // doubles its reconnect backoff when a connection closes less than reconnect.backoff.max.ms (10 s)
            // after it opened, so switches closer than that measure the client's backoff, not the gateway.
            for j in 0..110 {
                produce(&producer, &format!("steady-{i}-{j}")).await;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        println!(
            "samples (ms, in order): {:?}",
            samples.iter().map(|d| (d.as_secs_f64() * 1000.0).round()).collect::<Vec<_>>()
        );
        samples.sort();
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        println!(
            "switch -> first acknowledged produce on the new cluster (librdkafka defaults, Kafka 3+3 nodes, \
             MirrorMaker 2 running, {SWITCHES} switches)"
        );
        println!(
            "  median {:.1} ms   min {:.1} ms   max {:.1} ms",
            ms(samples[SWITCHES / 2]),
            ms(samples[0]),
            ms(samples[SWITCHES - 1])
        );
    });
}
