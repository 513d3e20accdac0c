//! The README's main command, as a test: Conduktor's cluster-switching demo, step for step, on two 3-broker
//! Apache Kafka clusters and MirrorMaker 2, with two `franzgate` binaries started from the seed's variables and
//! Kafka's own command-line tools as clients. The same code as `scripts/demo.sh`, on free ports.

#[allow(dead_code)]
#[path = "../examples/failover_demo/main.rs"]
mod failover_demo;

use failover_demo::{DemoPorts, run_demo};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seed_demo_fails_over_and_back_through_two_gateways_with_mirror_maker_carrying_the_data() {
    let ports = DemoPorts::free();
    let mut narration = Vec::new();
    let report = run_demo(env!("CARGO_BIN_EXE_franzgate").as_ref(), &ports, &mut narration)
        .await
        .unwrap_or_else(|e| panic!("demo failed: {e:#}\n{}", String::from_utf8_lossy(&narration)));
    let text = String::from_utf8_lossy(&narration).into_owned();
    let context = |what: &str| format!("{what}\n--- demo output ---\n{text}");

    // Step 2: teamA-sa.properties exactly as the seed's `echo """...""" > teamA-sa.properties` writes it.
    assert!(report.token.len() > 20 && report.token.split('.').count() == 3, "{}", context("a JWT"));
    let expected = format!(
        "\nbootstrap.servers=localhost:{}\nsecurity.protocol=SASL_PLAINTEXT\nsasl.mechanism=PLAIN\n\
         sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required username='sa' \
         password='{}';\n\n",
        ports.gateway1, report.token
    );
    assert_eq!(report.properties, expected);

    // Steps 3-5: `users` created through gateway1 is main's `teamAusers`, holding tom and laura.
    assert!(report.create_output.contains("Created topic users."), "{}", context(&report.create_output));
    assert!(report.main_topics.iter().any(|t| t == "teamAusers"), "{}", context("teamAusers on main"));
    assert_eq!(report.main_before_switch, ["tom", "laura"], "{}", context("main before the switch"));

    // Steps 6-8: MirrorMaker 2, not the demo, carried the state topic and tom and laura to failover.
    let (on_main, on_failover) = report.state_records;
    assert!(on_main > 0 && on_failover >= on_main, "{}", context("state topic mirrored"));
    assert_eq!(report.mirrored, ["tom", "laura"], "{}", context("MirrorMaker copied tom and laura"));
    for topic in ["teamAusers", failover_demo::STATE_TOPIC] {
        assert!(report.failover_topics.iter().any(|t| t == topic), "{}", context(topic));
    }

    // Steps 9-10: both gateways switched.
    assert_eq!(report.switch_answers.len(), 4);
    for answer in &report.switch_answers[..2] {
        assert!(answer.contains(r#""message":"Cluster switched""#), "{}", context(answer));
    }

    // Steps 11-14: alice went to failover only; both gateways read all three with the one token.
    assert_eq!(report.through_gateway1, ["tom", "laura", "alice"], "{}", context("through gateway1"));
    assert_eq!(report.through_gateway2, ["tom", "laura", "alice"], "{}", context("through gateway2"));
    assert!(text.contains(&format!("--bootstrap-server localhost:{}", ports.gateway2)), "gateway2 on its own port");
    assert_eq!(report.main_after, ["tom", "laura"], "{}", context("alice is not on main"));
    assert_eq!(report.failover_after, ["tom", "laura", "alice"], "{}", context("alice is on failover"));

    // The switch back (Conduktor's how-to): the gateway reads main again, which never had alice.
    for answer in &report.switch_answers[2..] {
        assert!(answer.contains(r#""message":"Cluster switched""#), "{}", context(answer));
    }
    assert_eq!(report.after_switch_back, ["tom", "laura"], "{}", context("after switching back"));

    assert!(text.contains("Cluster switching help your seamlessly move from one cluster to another!"));
    assert!(report.peak.total > 0 && report.peak.java > 0 && report.peak.franzgate > 0, "{:?}", report.peak);
}
