//! Graceful shutdown: in-flight requests are answered before the gateway stops, no connection is accepted once
//! shutdown has begun, and broker ports close one after another when a delay is configured.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::{Tansu, api_versions_v0, free_ports, read_frame};
use franzgate::{FilterRegistry, Gateway, GatewayConfig, RunningGateway};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

/// A filter (`type: slow`) that holds every response for a second: a request is surely in flight when the
/// shutdown begins.
struct SlowFactory;

impl franzgate_api::FilterFactory for SlowFactory {
    fn type_name(&self) -> &'static str {
        "slow"
    }

    fn create(
        &self,
        _config: serde_yaml::Value,
        _ctx: &franzgate_api::FilterContext,
    ) -> Result<franzgate_api::BoxLayer, franzgate_api::ConfigError> {
        Ok(franzgate_api::BoxLayer::new(tower::util::MapFutureLayer::new(|response| {
            Box::pin(async move {
                tokio::time::sleep(Duration::from_secs(1)).await;
                response.await
            }) as futures::future::BoxFuture<'static, _>
        })))
    }
}

async fn start(bootstrap: &str, keys: &str, filters: &str) -> (RunningGateway, u16) {
    common::init_test_logging();
    let port_start = free_ports(4);
    let yaml = format!(
        "gateway:\n  advertised_host: 127.0.0.1\n  bind_host: 127.0.0.1\n  port_start: {port_start}\n  port_count: 4\n  \
         http_port: 0\n{keys}clusters:\n  main:\n    bootstrap.servers: {bootstrap}\n{filters}"
    );
    let config = GatewayConfig::from_yaml(&yaml, "test.yaml").expect("valid config");
    let mut registry = FilterRegistry::with_builtins();
    registry.register(SlowFactory).expect("register");
    let gateway = Gateway::new(&config, &registry, "test.yaml").expect("gateway builds");
    (gateway.start().await.expect("gateway starts"), port_start)
}

async fn accepts(port: u16) -> bool {
    TcpStream::connect(("127.0.0.1", port)).await.is_ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_flight_requests_are_answered_before_the_gateway_stops() {
    let broker = Tansu::start().await;
    let (running, port) = start(&broker.bootstrap(), "", "filters: [{type: slow}]\n").await;

    let mut client = TcpStream::connect(("127.0.0.1", port)).await.expect("connect");
    client.write_all(&api_versions_v0(42)).await.expect("send");
    // Shut down only once the request is held by the slow filter (the gateway counts it in flight).
    let admin = running.admin_addr().to_string();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let text =
            franzgate::admin::client::call_text(&admin, "/metrics", ("admin", "conduktor")).await.expect("metrics");
        if text.lines().any(|l| l == "franzgate_requests_in_flight 1") {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the request never got in flight");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let answered = Arc::new(AtomicBool::new(false));
    let reader = {
        let answered = answered.clone();
        tokio::spawn(async move {
            let frame = read_frame(&mut client).await.expect("the in-flight request is answered");
            assert_eq!(&frame[..4], &42i32.to_be_bytes(), "its correlation id");
            answered.store(true, Ordering::SeqCst);
            // Then the session closes.
            assert!(read_frame(&mut client).await.is_none(), "closed after the drain");
        })
    };
    let shutdown = tokio::spawn(running.shutdown_gracefully());
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!accepts(port).await, "no connection is accepted once shutdown has begun");
    shutdown.await.expect("shutdown completes");
    assert!(answered.load(Ordering::SeqCst), "the gateway stopped only after answering the in-flight request");
    reader.await.expect("client side checks");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_ports_close_one_after_another_with_the_bootstrap_port_last() {
    let mock = rdkafka::mocking::MockCluster::new(3).expect("mock cluster");
    let (mut running, port_start) =
        start(&mock.bootstrap_servers(), "  shutdown_port_close_delay_ms: 3000\n", "").await;
    // A client's metadata opens the three broker ports.
    let client: rdkafka::consumer::BaseConsumer =
        common::client_config(&format!("127.0.0.1:{port_start}")).create().expect("client");
    rdkafka::consumer::Consumer::fetch_metadata(&client, None, Duration::from_secs(10)).expect("metadata");
    // (Four ports, in fact: the mock cluster names a controller id no broker has, which gets a port too.)
    let ports: Vec<u16> = running.wait_for_ports(3).await.into_iter().collect();
    assert!(ports.len() >= 3, "{ports:?}");

    let shutdown = tokio::spawn(running.shutdown_gracefully());
    // The highest port closes at once; the next only 3 s later.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
    while accepts(ports[ports.len() - 1]).await {
        assert!(tokio::time::Instant::now() < deadline, "the highest broker port closes first");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(accepts(ports[0]).await, "the bootstrap port still serves while the others close");
    shutdown.await.expect("shutdown completes");
    for port in ports {
        assert!(!accepts(port).await, "port {port} closed at the end");
    }
}
