//! Graceful shutdown: in-flight requests are answered before the gateway stops, no connection is accepted once
//! shutdown has begun, readiness reports DOWN while sessions drain, and broker ports close one after another
//! when a delay is configured.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::{api_versions_v0, free_ports, read_frame, shared_cluster};
use franzgate::{FilterRegistry, Gateway, GatewayConfig, RunningGateway};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::Semaphore;

/// A filter (`type: held`) that holds every response until the test adds a permit to `gate`, so a request is
/// surely in flight while the shutdown begins, and counts the responses it has let go.
struct HeldFactory {
    gate: Arc<Semaphore>,
    released: Arc<AtomicUsize>,
}

impl franzgate_api::FilterFactory for HeldFactory {
    fn type_name(&self) -> &'static str {
        "held"
    }

    fn create(
        &self,
        _config: serde_yaml::Value,
        _ctx: &franzgate_api::FilterContext,
    ) -> Result<franzgate_api::BoxLayer, franzgate_api::ConfigError> {
        let (gate, released) = (self.gate.clone(), self.released.clone());
        Ok(franzgate_api::BoxLayer::new(tower::util::MapFutureLayer::new(move |response| {
            let (gate, released) = (gate.clone(), released.clone());
            Box::pin(async move {
                let response = response.await;
                if let Ok(permit) = gate.acquire().await {
                    permit.forget();
                }
                released.fetch_add(1, Ordering::SeqCst);
                response
            }) as futures::future::BoxFuture<'static, _>
        })))
    }
}

/// Starts a gateway with the `held` filter available.
async fn start(bootstrap: &str, keys: &str, filters: &str, held: HeldFactory) -> (RunningGateway, u16) {
    // The gateway's debug log goes to the test's captured output: printed only for a failing test, it tells
    // which session closed when.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new("franzgate=debug"))
        .with_test_writer()
        .try_init();
    let port_start = free_ports(4);
    let yaml = format!(
        "gateway:\n  advertised_host: 127.0.0.1\n  bind_host: 127.0.0.1\n  port_start: {port_start}\n  port_count: 4\n  \
         http_port: 0\n{keys}clusters:\n  main:\n    bootstrap.servers: {bootstrap}\n{filters}"
    );
    let config = GatewayConfig::from_yaml(&yaml, "test.yaml").expect("valid config");
    let mut registry = FilterRegistry::with_builtins();
    registry.register(held).expect("register");
    let gateway = Gateway::new(&config, &registry, "test.yaml").expect("gateway builds");
    (gateway.start().await.expect("gateway starts"), port_start)
}

async fn accepts(port: u16) -> bool {
    TcpStream::connect(("127.0.0.1", port)).await.is_ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_flight_requests_are_answered_before_the_gateway_stops() {
    let broker = shared_cluster().await;
    let (gate, released) = (Arc::new(Semaphore::new(0)), Arc::new(AtomicUsize::new(0)));
    let held = HeldFactory { gate: gate.clone(), released: released.clone() };
    let (running, port) = start(&broker.bootstrap(), "", "filters: [{type: held}]\n", held).await;

    let mut client = TcpStream::connect(("127.0.0.1", port)).await.expect("connect");
    client.write_all(&api_versions_v0(42)).await.expect("send");
    // Shut down only once the request is in flight (the gateway counts it; the filter holds its response).
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
    let ready = franzgate::admin::client::call(&admin, "GET", "/health/ready", None).await.expect("ready");
    assert_eq!(ready.0, 200, "ready before the shutdown: {ready:?}");
    let shutdown = tokio::spawn(running.shutdown_gracefully());
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!accepts(port).await, "no connection is accepted once shutdown has begun");
    // While sessions drain, readiness says DOWN so a load balancer sends no new clients here.
    let draining = franzgate::admin::client::call(&admin, "GET", "/health/ready", None).await.expect("ready");
    assert_eq!((draining.0, &draining.1["status"], &draining.1["shuttingDown"]), (503, &"DOWN".into(), &true.into()));
    assert!(!shutdown.is_finished(), "the shutdown waits for the request held in flight");
    gate.add_permits(1);
    shutdown.await.expect("shutdown completes");
    assert_eq!(released.load(Ordering::SeqCst), 1, "the gateway stopped only after answering the in-flight request");
    let frame = tokio::time::timeout(Duration::from_secs(10), read_frame(&mut client))
        .await
        .expect("the response was written before the session closed")
        .expect("the in-flight request is answered");
    assert_eq!(&frame[..4], &42i32.to_be_bytes(), "its correlation id");
    let after = tokio::time::timeout(Duration::from_secs(10), read_frame(&mut client)).await;
    assert!(matches!(after, Ok(None)), "the session closed after the drain");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_ports_close_one_after_another_with_the_bootstrap_port_last() {
    let mock = rdkafka::mocking::MockCluster::new(3).expect("mock cluster");
    let (mut running, port_start) = start(
        &mock.bootstrap_servers(),
        "  shutdown_port_close_delay_ms: 3000\n",
        "",
        HeldFactory { gate: Arc::new(Semaphore::new(0)), released: Arc::default() },
    )
    .await;
    // A client's metadata opens the three broker ports.
    let client: rdkafka::consumer::BaseConsumer =
        common::client_config(&format!("127.0.0.1:{port_start}")).create().expect("client");
    rdkafka::consumer::Consumer::fetch_metadata(&client, None, Duration::from_secs(10)).expect("metadata");
    // The bootstrap port and one per broker. Wait for all four: a port opens as the gateway rewrites the
    // metadata naming it, which can be just after the client has its answer.
    let ports: Vec<u16> = running.wait_for_ports(4).await.into_iter().collect();
    assert_eq!(ports.len(), 4, "{ports:?}");

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
