//! The README's main command, as a test: the seed demo with the real `franzgate` binary started from
//! environment variables alone (GATEWAY_BACKEND_KAFKA_SELECTOR and a seed-format cluster-config file).

mod common;
#[allow(dead_code)]
#[path = "../examples/failover_demo.rs"]
mod failover_demo;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seed_demo_runs_end_to_end_with_the_binary_configured_from_the_environment() {
    let mut narration = Vec::new();
    let tansu = common::tools_dir().join("bin/tansu");
    let report = failover_demo::run_demo(env!("CARGO_BIN_EXE_franzgate").as_ref(), &tansu, &mut narration)
        .await
        .unwrap_or_else(|e| panic!("demo failed: {e:#}\n{}", String::from_utf8_lossy(&narration)));
    assert_eq!(report.main, ["tom", "laura"], "alice never reached the primary");
    assert_eq!(report.failover, ["tom", "laura", "alice"]);
    assert_eq!(report.gateway_after_switch, ["tom", "laura", "alice"]);
    assert_eq!(report.gateway_after_switch_back, ["tom", "laura"]);
    let text = String::from_utf8_lossy(&narration);
    assert!(text.contains("\"message\":\"Cluster switched\""), "{text}");
    assert!(text.contains("STAND-IN ONLY"), "the replication stand-in is labelled");
}
