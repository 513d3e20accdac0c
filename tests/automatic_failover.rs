//! Issue 14 (4): automatic failover. Two single-node Apache Kafka clusters of this binary's own (the primary is
//! killed), three gateway instances sharing a control topic with `quorum: 2`. One instance that alone cannot
//! reach the primary (its `main` points at a closed port) does not move the fleet; once the primary's broker is
//! killed, every instance sees it down and the fleet switches to the failover within `unreachable_for_ms` plus a
//! few probes, with the decision in the switch history.

mod common;

use std::time::{Duration, Instant};

use common::{ADMIN, TestGateway, client_config, free_ports, own_kafka, produce, read_all, unique};
use serde_json::Value;

const UNREACHABLE_FOR_MS: u64 = 2_000;

async fn instance(main: &str, failover: &str, control: &str, id: &str) -> TestGateway {
    let keys = format!(
        "  fleet: {{control_topic: {control}, instance_id: {id}, poll_interval_ms: 200, announce_interval_ms: 300}}\n  \
         failover: {{automatic: true, unreachable_for_ms: {UNREACHABLE_FOR_MS}, quorum: 2, probe_interval_ms: 300}}\n"
    );
    TestGateway::start_pair(main, failover, &keys).await
}

async fn fleet_of(gateway: &TestGateway) -> Value {
    let (status, body) = gateway.admin_call("GET", "/admin/pclusters/v1", Some(ADMIN)).await;
    assert_eq!(status, 200, "{body}");
    body
}

/// Waits until `check` holds for `gateway`'s listing, or fails with `what`.
async fn await_listing(gateway: &TestGateway, what: &str, limit: Duration, check: impl Fn(&Value) -> bool) -> Duration {
    let started = Instant::now();
    loop {
        let body = fleet_of(gateway).await;
        if check(&body) {
            return started.elapsed();
        }
        assert!(started.elapsed() < limit, "{what} not within {limit:?}: {body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fleet_fails_over_when_a_quorum_sees_the_primary_down_and_not_when_one_instance_alone_does() {
    common::init_test_logging();
    let (main, failover) = tokio::join!(own_kafka("auto-main"), own_kafka("auto-failover"));
    let control = unique("_franzgate_control");
    let (a, b) = (
        instance(&main.bootstrap(), &failover.bootstrap(), &control, "gw-a").await,
        instance(&main.bootstrap(), &failover.bootstrap(), &control, "gw-b").await,
    );
    // gw-c's `main` is a port nothing listens on: it alone finds the primary down.
    let nowhere = format!("127.0.0.1:{}", free_ports(1));
    let c = instance(&nowhere, &failover.bootstrap(), &control, "gw-c").await;

    // Its observation reaches the others, and outlives `unreachable_for_ms` by a few probes: no switch.
    let down_long_enough = |body: &Value| {
        let instances = body["fleet"]["instances"].as_array().cloned().unwrap_or_default();
        instances.iter().any(|i| i["id"] == "gw-c" && i["primaryDownSince"].is_string())
    };
    await_listing(&a, "gw-c's observation on gw-a", Duration::from_secs(20), down_long_enough).await;
    let observed = Instant::now();
    while observed.elapsed() < Duration::from_millis(UNREACHABLE_FOR_MS + 1_500) {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for gateway in [&a, &b, &c] {
        let body = fleet_of(gateway).await;
        assert_eq!(body["activeCluster"], "main", "one instance of a quorum of 2 moved the fleet: {body}");
    }

    // The primary really goes down: every instance sees it, and the fleet switches.
    let killed = Instant::now();
    main.stop();
    for gateway in [&a, &b, &c] {
        let on_failover = |body: &Value| body["activeCluster"] == "failover";
        await_listing(gateway, "the automatic switch", Duration::from_secs(60), on_failover).await;
    }
    eprintln!(
        "automatic failover: the fleet was on the failover {:?} after the primary was killed (unreachable_for_ms {UNREACHABLE_FOR_MS})",
        killed.elapsed()
    );
    let (_, history) = a.admin_call("GET", "/admin/pclusters/v1/history", Some(ADMIN)).await;
    let automatic = history["attempts"].as_array().into_iter().flatten().find(|h| h["user"] == "automatic").cloned();
    let automatic = automatic.unwrap_or_else(|| panic!("no automatic switch in the history: {history}"));
    assert_eq!(automatic["to"], "failover", "{automatic}");
    assert!(automatic["outcome"].as_str().is_some_and(|o| o.contains("unreachable")), "the evidence: {automatic}");

    let topic = unique("after-automatic");
    common::create_topic(&failover.bootstrap(), &topic, 1).await;
    produce(&client_config(&b.bootstrap()), &topic, &["on-the-failover"]).await;
    assert_eq!(read_all(&failover.bootstrap(), &topic), ["on-the-failover"]);
}
