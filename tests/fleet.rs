//! Issue 14 (1): the switch decision is the fleet's. Two gateway instances over the binary's pair of Apache Kafka
//! clusters (`main`, `failover`), sharing a control topic: one switch call to either moves both, a restarted
//! instance comes back on the fleet's cluster, and two decisions of the same epoch (two operators at once, each
//! reaching one cluster) are settled the same way everywhere.

mod common;

use std::time::{Duration, Instant};

use common::kafka::shared_pair;
use common::{ADMIN, TestGateway, client_config, create_topic, produce, read_all, unique};
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::Value;

/// The `gateway:` keys of an instance of the fleet `topic`.
fn fleet_keys(topic: &str, id: &str) -> String {
    format!(
        "  fleet: {{control_topic: {topic}, instance_id: {id}, poll_interval_ms: 200, announce_interval_ms: 500}}\n"
    )
}

async fn instance(topic: &str, id: &str) -> TestGateway {
    let (main, failover) = shared_pair().await;
    TestGateway::start_pair(&main.bootstrap(), &failover.bootstrap(), &fleet_keys(topic, id)).await
}

async fn listing(gateway: &TestGateway) -> Value {
    let (status, body) = gateway.admin_call("GET", "/admin/pclusters/v1", Some(ADMIN)).await;
    assert_eq!(status, 200, "{body}");
    body
}

async fn switch(gateway: &TestGateway, to: &str) -> Value {
    let path = format!("/admin/pclusters/v1/pcluster/main/switch?to={to}");
    let (status, body) = gateway.admin_call("POST", &path, Some(ADMIN)).await;
    assert_eq!(status, 200, "{body}");
    body
}

/// Polls `gateway`'s admin API until it serves `cluster`; returns how long that took.
async fn await_active(gateway: &TestGateway, cluster: &str) -> Duration {
    let started = Instant::now();
    loop {
        let body = listing(gateway).await;
        if body["activeCluster"] == cluster {
            return started.elapsed();
        }
        assert!(started.elapsed() < Duration::from_secs(15), "still not on {cluster} after 15 s: {body}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_switch_call_moves_every_instance_and_a_restarted_instance_comes_back_on_the_fleets_cluster() {
    common::init_test_logging();
    let (main, failover) = shared_pair().await;
    let control = unique("_franzgate_control");
    let first = instance(&control, "gw-1").await;
    let mut second = instance(&control, "gw-2").await;
    let topic = unique("fleet-orders");
    create_topic(&main.bootstrap(), &topic, 1).await;
    create_topic(&failover.bootstrap(), &topic, 1).await;

    let answer = switch(&first, "failover").await;
    assert_eq!(answer["message"], "Cluster switched", "{answer}");
    let persisted = answer["fleet"]["persistedTo"].as_array().map(Vec::len);
    assert_eq!(persisted, Some(2), "the decision is on both clusters: {answer}");
    let took = await_active(&second, "failover").await;
    eprintln!("instance 2 followed instance 1's switch to the failover in {took:?}");
    // A script that calls every instance, as Conduktor's documentation asks, gets the same answer from each.
    let answer = switch(&second, "failover").await;
    assert_eq!(answer["message"], "Cluster switched", "{answer}");
    assert_eq!(answer["fleet"]["followedDecisionOf"], "gw-1", "{answer}");

    produce(&client_config(&second.bootstrap()), &topic, &["through-instance-2"]).await;
    assert_eq!(read_all(&failover.bootstrap(), &topic), ["through-instance-2"], "the produce went to the failover");
    assert!(read_all(&main.bootstrap(), &topic).is_empty(), "nothing reached main");

    // Killed and started again: it reads the decision before serving, and comes back on the failover.
    drop(second);
    second = instance(&control, "gw-2").await;
    let body = listing(&second).await;
    assert_eq!(body["activeCluster"], "failover", "a restarted instance serves the fleet's cluster: {body}");
    let producer: FutureProducer = client_config(&second.bootstrap()).create().expect("producer");
    let sent = producer.send(FutureRecord::<(), _>::to(&topic).payload("after-restart"), Duration::from_secs(30)).await;
    assert!(sent.is_ok(), "{sent:?}");
    assert_eq!(read_all(&failover.bootstrap(), &topic), ["through-instance-2", "after-restart"]);

    // And a switch back through instance 2 moves instance 1.
    let answer = switch(&second, "main").await;
    assert_eq!(answer["message"], "Cluster switched", "{answer}");
    let took = await_active(&first, "main").await;
    eprintln!("instance 1 followed instance 2's switch back to main in {took:?}");

    // Each lists the fleet: both instances, on the same decision.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let fleet = listing(&first).await["fleet"].clone();
        let instances = fleet["instances"].as_array().cloned().unwrap_or_default();
        let ids: Vec<&str> = instances.iter().filter_map(|i| i["id"].as_str()).collect();
        let on_main = instances.iter().all(|i| i["activeCluster"] == "main" && i["converged"] == true);
        if ids == ["gw-1", "gw-2"] && on_main && fleet["converged"] == true {
            assert_eq!(fleet["decision"]["by"], "gw-2", "{fleet}");
            break;
        }
        assert!(Instant::now() < deadline, "the fleet did not list both instances converged on main: {fleet}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The switch history is the fleet's too: instance 1 lists the attempts made through instance 2.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (status, history) = first.admin_call("GET", "/admin/pclusters/v1/history", Some(ADMIN)).await;
        assert_eq!(status, 200, "{history}");
        let attempts = history["attempts"].as_array().cloned().unwrap_or_default();
        let by = |id: &str, to: &str| attempts.iter().any(|a| a["by"] == id && a["to"] == to && a["status"] == 200);
        if by("gw-1", "failover") && by("gw-2", "failover") && by("gw-2", "main") {
            let newest = &attempts[0];
            assert_eq!((newest["by"].as_str(), newest["to"].as_str()), (Some("gw-2"), Some("main")), "{history}");
            assert_eq!(newest["mode"], "unplanned", "{history}");
            break;
        }
        assert!(Instant::now() < deadline, "instance 1 does not list every attempt: {history}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Writes a switch decision straight to `bootstrap`'s control topic, as an instance that reaches only that
/// cluster would.
async fn write_decision(bootstrap: &str, topic: &str, active: &str, epoch: u64, at_ms: u64, by: &str) {
    let producer: FutureProducer = client_config(bootstrap).create().expect("producer");
    let value =
        serde_json::json!({"active": active, "from": "", "epoch": epoch, "at_ms": at_ms, "by": by, "user": "ops"});
    let value = value.to_string();
    let record = FutureRecord::to(topic).key("switch").payload(&value).partition(0);
    producer.send(record, Duration::from_secs(30)).await.expect("decision written");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_decisions_of_one_epoch_on_different_clusters_are_settled_alike_by_every_instance() {
    common::init_test_logging();
    let (main, failover) = shared_pair().await;
    let control = unique("_franzgate_control");
    // Both instances create the topic on both clusters as they start.
    let first = instance(&control, "gw-a").await;
    let second = instance(&control, "gw-b").await;
    // Two operators while the clusters could not reach each other: one decided for the failover and reached
    // main only, the other, a second later, for main and reached the failover only. Same epoch.
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_millis() as u64;
    write_decision(&main.bootstrap(), &control, "failover", 7, now, "operator-x").await;
    write_decision(&failover.bootstrap(), &control, "main", 7, now + 1_000, "operator-y").await;
    // The later decision wins on every instance that reads both, whatever the order it read them in.
    for gateway in [&first, &second] {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let fleet = listing(gateway).await["fleet"].clone();
            if fleet["decision"]["by"] == "operator-y" {
                assert_eq!(fleet["epoch"], 7, "{fleet}");
                break;
            }
            assert!(Instant::now() < deadline, "operator-y's decision not applied: {fleet}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(listing(gateway).await["activeCluster"], "main");
    }
    // The next switch call outranks both: epoch 8, written to both clusters.
    let answer = switch(&first, "failover").await;
    assert_eq!(answer["fleet"]["epoch"], 8, "{answer}");
    await_active(&second, "failover").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_run_and_a_failed_check_change_nothing_and_force_switches_anyway() {
    common::init_test_logging();
    let (main, failover) = shared_pair().await;
    let gateway = instance(&unique("_franzgate_control"), "gw-checks").await;
    // A client uses a topic that exists on main only.
    let topic = unique("main-only");
    create_topic(&main.bootstrap(), &topic, 1).await;
    produce(&client_config(&gateway.bootstrap()), &topic, &["on-main"]).await;

    let call = |query: &'static str| {
        let gateway = &gateway;
        async move {
            let path = format!("/admin/pclusters/v1/pcluster/main/switch?to=failover&{query}");
            gateway.admin_call("POST", &path, Some(ADMIN)).await
        }
    };
    let failed_check = |body: &Value, name: &str| {
        body["checks"]["checks"].as_array().into_iter().flatten().any(|c| c["name"] == name && c["ok"] == false)
    };
    let (status, body) = call("dryRun=true").await;
    assert_eq!(status, 409, "{body}");
    assert!(failed_check(&body, "topics-on-target"), "{body}");
    assert!(body["checks"].to_string().contains(&topic), "the report names the missing topic: {body}");
    assert_eq!(listing(&gateway).await["activeCluster"], "main", "a dry run changes nothing");

    let (status, body) = call("mode=unplanned").await;
    assert_eq!(status, 409, "a failed check refuses the switch: {body}");
    assert!(body["message"].as_str().is_some_and(|m| m.contains("force=true")), "{body}");
    let fleet = listing(&gateway).await;
    assert_eq!((fleet["activeCluster"].as_str(), fleet["fleet"]["epoch"].as_u64()), (Some("main"), Some(0)), "{fleet}");

    // With the topic on the failover too, the dry run passes; force overrides a failing check.
    create_topic(&failover.bootstrap(), &topic, 1).await;
    let (status, body) = call("dryRun=true").await;
    assert_eq!(status, 200, "{body}");
    assert!(!failed_check(&body, "topics-on-target") && !failed_check(&body, "target-reachable"), "{body}");
    let other = unique("main-only-again");
    create_topic(&main.bootstrap(), &other, 1).await;
    produce(&client_config(&gateway.bootstrap()), &other, &["on-main"]).await;
    let (status, body) = call("force=true").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["message"], "Cluster switched", "{body}");
    assert!(failed_check(&body, "topics-on-target"), "the report is in the answer: {body}");
    assert_eq!(listing(&gateway).await["activeCluster"], "failover");

    // Every attempt is in the history, newest first, with its outcome and the checks that failed.
    let (status, history) = gateway.admin_call("GET", "/admin/pclusters/v1/history", Some(ADMIN)).await;
    assert_eq!(status, 200, "{history}");
    let attempts = history["attempts"].as_array().cloned().unwrap_or_default();
    let summary: Vec<(u64, bool, bool)> = attempts
        .iter()
        .map(|a| (a["status"].as_u64().unwrap_or(0), a["dry_run"] == true, a["forced"] == true))
        .collect();
    assert_eq!(summary, [(200, false, true), (200, true, false), (409, false, false), (409, true, false)], "{history}");
    let failed = attempts[0]["failed_checks"].as_array().cloned().unwrap_or_default();
    assert!(failed.contains(&Value::from("topics-on-target")), "{history}");
}
