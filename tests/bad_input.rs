//! Bad input closes at most the affected session, with a reason; the gateway and its other sessions go on.
//! Every test keeps a healthy session open across the bad event and checks it still works afterwards.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{
    TestGateway, api_versions_v0, assert_gateway_serves, closed_by_peer, free_ports, own_kafka, read_frame,
    shared_cluster,
};
use franzgate::FilterRegistry;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};

async fn connect(port: u16) -> TcpStream {
    TcpStream::connect(("127.0.0.1", port)).await.expect("connect to gateway")
}

/// A session that already did one round trip, to be checked again after the bad event.
async fn healthy_session(port: u16) -> TcpStream {
    let mut stream = connect(port).await;
    stream.write_all(&api_versions_v0(1)).await.expect("write");
    read_frame(&mut stream).await.expect("first response");
    stream
}

async fn assert_still_healthy(stream: &mut TcpStream) {
    stream.write_all(&api_versions_v0(2)).await.expect("write on the healthy session");
    let frame = read_frame(stream).await.expect("the healthy session still gets answers");
    assert_eq!(&frame[..4], &2i32.to_be_bytes());
}

/// A gateway in front of the binary's shared Kafka cluster (these tests never touch the broker's state).
async fn gateway_on_shared_kafka(gateway_keys: &str) -> TestGateway {
    let kafka = shared_cluster().await;
    TestGateway::start_full(&kafka.bootstrap(), gateway_keys, "", FilterRegistry::with_builtins()).await
}

/// Forwards every connection on `listener` to `target` (a broker appearing at the listener's address).
fn forward(listener: TcpListener, target: u16) {
    tokio::spawn(async move {
        while let Ok((mut client, _)) = listener.accept().await {
            let Ok(mut server) = TcpStream::connect(("127.0.0.1", target)).await else { continue };
            tokio::spawn(async move {
                let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
            });
        }
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_frame_closes_only_its_session_before_anything_is_allocated() {
    let gateway = gateway_on_shared_kafka("  max_frame_bytes: 4096\n").await;
    let mut healthy = healthy_session(gateway.port_start).await;

    let mut bad = connect(gateway.port_start).await;
    bad.write_all(&4097i32.to_be_bytes()).await.expect("write length");
    assert!(closed_by_peer(&mut bad).await, "a frame above max_frame_bytes closes the connection");

    // A length near 2 GiB is refused the same way: the gateway never allocates on the peer's word.
    let mut huge = connect(gateway.port_start).await;
    huge.write_all(&i32::MAX.to_be_bytes()).await.expect("write length");
    assert!(closed_by_peer(&mut huge).await);

    assert_still_healthy(&mut healthy).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_truncated_frame_closes_its_session() {
    let gateway = gateway_on_shared_kafka("").await;
    let mut healthy = healthy_session(gateway.port_start).await;

    let mut bad = connect(gateway.port_start).await;
    let frame = api_versions_v0(9);
    bad.write_all(&frame[..frame.len() - 3]).await.expect("write partial frame");
    bad.shutdown().await.expect("half-close mid-frame");
    assert!(closed_by_peer(&mut bad).await, "EOF inside a frame closes the session");

    assert_still_healthy(&mut healthy).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_bytes_close_their_session() {
    let gateway = gateway_on_shared_kafka("").await;
    let mut healthy = healthy_session(gateway.port_start).await;

    // An HTTP request: its first four bytes read as a ~1.1 GB frame length.
    let mut http = connect(gateway.port_start).await;
    http.write_all(b"GET / HTTP/1.1\r\nHost: gateway\r\n\r\n").await.expect("write");
    assert!(closed_by_peer(&mut http).await);

    // A frame too short to hold a request header.
    let mut short = connect(gateway.port_start).await;
    short.write_all(&[0, 0, 0, 3, 0, 18, 0]).await.expect("write");
    assert!(closed_by_peer(&mut short).await);

    // A known api key whose header is malformed (client id length beyond the frame).
    let mut bad_header = connect(gateway.port_start).await;
    let payload = [0u8, 18, 0, 1, 0, 0, 0, 5, 0x7f, 0x00];
    let mut frame = (payload.len() as i32).to_be_bytes().to_vec();
    frame.extend_from_slice(&payload);
    bad_header.write_all(&frame).await.expect("write");
    assert!(closed_by_peer(&mut bad_header).await);

    // A negative length.
    let mut negative = connect(gateway.port_start).await;
    negative.write_all(&(-5i32).to_be_bytes()).await.expect("write");
    assert!(closed_by_peer(&mut negative).await);

    assert_still_healthy(&mut healthy).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_api_key_is_forwarded_and_the_brokers_answer_stands() {
    let gateway = gateway_on_shared_kafka("").await;
    let mut healthy = healthy_session(gateway.port_start).await;

    // Kafka closes a connection that sends an api key it does not know (it cannot parse the request header);
    // through the gateway the client sees the same, and only that session ends. (That the bytes are forwarded untouched is unit-tested in
    // src/upstream.rs.)
    let mut unknown = connect(gateway.port_start).await;
    let payload = [0x03u8, 0xe7, 0, 0, 0, 0, 0, 5, 0, 4, b't', b'e', b's', b't'];
    let mut frame = (payload.len() as i32).to_be_bytes().to_vec();
    frame.extend_from_slice(&payload);
    unknown.write_all(&frame).await.expect("write");
    assert!(closed_by_peer(&mut unknown).await, "closed as the broker closed it");

    assert_still_healthy(&mut healthy).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_disconnects_mid_request_or_before_its_answer_harms_no_one() {
    let gateway = gateway_on_shared_kafka("").await;
    let mut healthy = healthy_session(gateway.port_start).await;

    for _ in 0..20 {
        // Half a request, then gone.
        let mut partial = connect(gateway.port_start).await;
        let frame = api_versions_v0(3);
        partial.write_all(&frame[..6]).await.expect("write");
        drop(partial);
        // A pipeline of whole requests, gone before the answers arrive.
        let mut impatient = connect(gateway.port_start).await;
        for i in 0..10 {
            impatient.write_all(&api_versions_v0(i)).await.expect("write");
        }
        drop(impatient);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_still_healthy(&mut healthy).await;
    assert_gateway_serves(gateway.port_start).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_that_goes_away_closes_its_sessions_and_the_gateway_serves_again_when_it_returns() {
    // A cluster of this test's own: its broker is killed.
    let broker = Arc::new(own_kafka("killed").await);
    let gateway = TestGateway::start(&broker.bootstrap(), "").await;
    let mut session = healthy_session(gateway.port_start).await;

    let killed = broker.clone();
    tokio::task::spawn_blocking(move || killed.kill(1)).await.expect("kill");
    assert!(closed_by_peer(&mut session).await, "the session closes when its backend connection closes");

    // The gateway itself survived: once the broker is back on that address, new sessions are served.
    let restarted = broker.clone();
    tokio::task::spawn_blocking(move || restarted.restart(1)).await.expect("restart");
    assert_gateway_serves(gateway.port_start).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_reachable_bootstrap_broker_closes_the_session_and_the_gateway_keeps_running() {
    let dead = free_ports(2);
    let bootstrap = format!("127.0.0.1:{dead},127.0.0.1:{}", dead + 1);
    let gateway = TestGateway::start(&bootstrap, "").await;

    let mut session = connect(gateway.port_start).await;
    session.write_all(&api_versions_v0(1)).await.expect("write");
    assert!(closed_by_peer(&mut session).await, "after trying every bootstrap broker, the session is closed");

    // The second bootstrap broker comes up: the next session reaches it. (A Kafka node's port is the kit's
    // choice, so the shared broker appears at that address through a forwarder.)
    let kafka = shared_cluster().await;
    forward(TcpListener::bind(("127.0.0.1", dead + 1)).await.expect("bind the second address"), kafka.port(1));
    assert_gateway_serves(gateway.port_start).await;
}

#[test]
fn a_config_typo_is_refused_at_start_naming_the_file_and_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cases = [
        (
            "gateway:\n  port_strat: 7000\nclusters: {main: {bootstrap.servers: 'k:9092'}}\n",
            "gateway.port_strat: unknown field `port_strat`",
        ),
        (
            "clusters: {main: {bootstrap.servers: 'k:9092'}}\nfilters:\n  - type: metadata-rewrit\n",
            "filters[0].type: unknown filter type `metadata-rewrit`",
        ),
        (
            "clusters: {main: {bootstrap.servers: 'k:9092'}}\nfilters:\n  - type: port-routing\n    config: {mode: x}\n",
            "filters[0] (type `port-routing`).config: unknown field `mode`",
        ),
        ("clusters: {main: {bootstrap.server: 'k:9092'}}\n", "clusters.main.bootstrap.servers: required"),
    ];
    for (i, (yaml, expected)) in cases.iter().enumerate() {
        let path = dir.path().join(format!("typo{i}.yaml"));
        std::fs::write(&path, yaml).expect("write config");
        for args in [
            vec!["check-config".to_string(), path.display().to_string()],
            vec!["--config".into(), path.display().to_string()],
        ] {
            let output = std::process::Command::new(env!("CARGO_BIN_EXE_franzgate"))
                .args(&args)
                .output()
                .expect("run franzgate");
            let stderr = String::from_utf8_lossy(&output.stderr);
            assert!(!output.status.success(), "{args:?} must refuse {yaml}");
            assert!(stderr.contains(&format!("{}: {expected}", path.display())), "{args:?}: {stderr}");
        }
    }
}

/// Found by `scripts/fuzz.sh` (target `frames`): a JoinGroup whose protocol array claims 2^31 elements. The
/// protocol library reserved room for all of them up front, so decoding it (which the SASL filter does to
/// refuse a request sent before authentication) made the whole process abort on a 143 GB allocation. Now the
/// request is refused, that one connection closes, and the gateway keeps serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_array_count_before_authentication_cannot_abort_the_gateway() {
    let broker = shared_cluster().await;
    let keys = format!(
        "  security_protocol: SASL_PLAINTEXT\n  authentication:\n    users: [{}]\n",
        common::secure::user_entry("alice", &common::secure::hashed_credentials("alice-secret"))
    );
    let cluster = format!("  main:\n    bootstrap.servers: {}\n", broker.bootstrap());
    let gateway = TestGateway::from_yaml(&common::secure::gateway_yaml(&keys, &cluster, "")).await;
    let crash =
        std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/fuzz/corpus/frames/regression-joingroup-array-count"))
            .expect("the fuzzer's input");
    let mut stream = TcpStream::connect(("127.0.0.1", gateway.port_start)).await.expect("connect");
    stream.write_all(&crash).await.expect("send");
    assert!(closed_by_peer(&mut stream).await, "refused and closed");
    assert_gateway_serves(gateway.port_start).await;
}
