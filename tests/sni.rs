//! Host routing: one TLS port serves the bootstrap and every broker of a real 3-node Apache Kafka cluster
//! (node ids 11, 12, 13), the broker chosen by the TLS server name (SNI) the client sends. The client is
//! kafka-python 3.x, whose name resolution the test can point at loopback. (librdkafka's mock cluster, used
//! here before, answers ApiVersions v4 with UNSUPPORTED_VERSION, which kafka-python 3.x cannot decode.)

mod common;

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use common::secure::{Pki, gateway_recording, gateway_yaml};
use common::{ClusterSpec, KafkaCluster, api_versions_v0, tools_dir, unique};
use kafka_protocol::messages::ApiKey;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rustls_pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const DOMAIN: &str = "gateway.test";

/// Backend node ids, presented to clients as virtual brokers 0, 1, 2.
const NODES: [i32; 3] = [11, 12, 13];

/// The binary's 3-node cluster.
async fn three_nodes() -> &'static KafkaCluster {
    static CLUSTER: OnceLock<KafkaCluster> = OnceLock::new();
    common::kafka::shared(&CLUSTER, || ClusterSpec::new("sni", &NODES)).await
}

fn broker_name(id: i32) -> String {
    format!("brokermain{id}-{DOMAIN}")
}

/// A gateway with host routing on one TLS port, in front of `bootstrap`.
async fn sni_gateway(pki: &Pki, bootstrap: &str) -> (common::TestGateway, common::secure::Seen) {
    let names: Vec<String> = std::iter::once(DOMAIN.to_string()).chain((0..4).map(broker_name)).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let server = pki.server("gateway", &names);
    let keys = format!(
        "  routing: host\n  security_protocol: SSL\n  tls: {{cert_file: '{}', key_file: '{}'}}\n",
        server.cert.display(),
        server.key.display()
    );
    let yaml = gateway_yaml(
        &keys,
        &format!("  main:\n    bootstrap.servers: {bootstrap}\n"),
        "filters: [{type: record-sessions}]\n",
    )
    .replace("advertised_host: 127.0.0.1", &format!("advertised_host: {DOMAIN}"));
    gateway_recording(&yaml).await
}

fn tls_client(pki: &Pki) -> tokio_rustls::TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pki_types::pem::PemObject::pem_file_iter(&pki.ca_file).expect("ca") {
        roots.add(cert.expect("cert")).expect("root");
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_tls_port_serves_the_bootstrap_and_every_broker_by_server_name() {
    let kafka = three_nodes().await;
    let topic = unique("spread");
    kafka.create_topic_led_by_each_node(&topic).await;
    let pki = Pki::new();
    let (gateway, seen) = sni_gateway(&pki, &kafka.bootstrap()).await;
    let port = gateway.port_start;

    let python = tools_dir().join("venv/bin/python");
    assert!(python.exists(), "{} missing: run scripts/install-deps.sh", python.display());
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/clients/kafka_python_sni.py");
    let output = tokio::process::Command::new(python)
        .args([script, &format!("{DOMAIN}:{port}"), &pki.ca_file.to_string_lossy(), DOMAIN, &topic])
        .output()
        .await
        .expect("run kafka-python");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "kafka-python SNI check failed\nstdout: {stdout}\nstderr: {stderr}");
    let report: serde_json::Value = serde_json::from_str(
        stdout.trim().strip_prefix("OK ").unwrap_or_else(|| panic!("no OK line: {stdout}\n{stderr}")),
    )
    .expect("json report");
    let expected: Vec<serde_json::Value> = (0..3).map(|id| serde_json::json!([id, broker_name(id), port])).collect();
    assert_eq!(report["brokers"], serde_json::Value::Array(expected), "every broker advertised on the one port");

    // Each produce went through the broker its server name named, and only one port was ever used.
    let mut nodes: Vec<_> = seen.with_key(ApiKey::Produce).iter().filter_map(|r| r.virtual_node).collect();
    nodes.sort();
    nodes.dedup();
    assert_eq!(nodes, vec![0, 1, 2], "produce requests reached the gateway under every broker name");
    assert_eq!(gateway.running.accepted_per_port().keys().copied().collect::<Vec<_>>(), vec![port]);
    let direct: BaseConsumer = kafka.client_config().create().expect("direct");
    for partition in 0..3 {
        let (_, high) = direct.fetch_watermarks(&topic, partition, Duration::from_secs(10)).expect("watermarks");
        assert_eq!(high, 10, "partition {partition} holds its records on its own leader");
    }
}

/// Sends ApiVersions over TLS to the gateway with `name` as the server name; the correlation id comes back.
async fn api_versions_over_tls(pki: &Pki, port: u16, name: ServerName<'static>) -> std::io::Result<i32> {
    let tcp = TcpStream::connect(("127.0.0.1", port)).await?;
    let mut tls = tls_client(pki).connect(name, tcp).await?;
    tls.write_all(&api_versions_v0(41)).await?;
    tls.flush().await?;
    let len = tls.read_i32().await?;
    let mut frame = vec![0u8; len as usize];
    tls.read_exact(&mut frame).await?;
    Ok(i32::from_be_bytes([frame[0], frame[1], frame[2], frame[3]]))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_names_missing_sni_and_plaintext_are_refused_and_the_port_keeps_serving() {
    let broker = three_nodes().await;
    let pki = Pki::new();
    let (gateway, seen) = sni_gateway(&pki, &broker.bootstrap()).await;
    let port = gateway.port_start;

    let unknown = ServerName::try_from("brokerother1-gateway.test").expect("name");
    assert!(api_versions_over_tls(&pki, port, unknown).await.is_err(), "a name the gateway does not serve");
    let no_sni = ServerName::IpAddress(std::net::Ipv4Addr::LOCALHOST.into());
    assert!(api_versions_over_tls(&pki, port, no_sni).await.is_err(), "rustls sends no SNI for an IP address");
    let mut plaintext = TcpStream::connect(("127.0.0.1", port)).await.expect("connect");
    plaintext.write_all(&api_versions_v0(1)).await.expect("write");
    assert!(common::closed_by_peer(&mut plaintext).await, "plaintext Kafka bytes on a TLS port are dropped");

    let name = ServerName::try_from(broker_name(1)).expect("name");
    assert_eq!(api_versions_over_tls(&pki, port, name).await.expect("served"), 41);
    let bootstrap = ServerName::try_from(DOMAIN).expect("name");
    assert_eq!(api_versions_over_tls(&pki, port, bootstrap).await.expect("served"), 41);
    let nodes: Vec<_> = seen.with_key(ApiKey::ApiVersions).iter().map(|r| r.virtual_node).collect();
    assert_eq!(nodes, vec![Some(1), None], "the broker name addresses virtual node 1; the bootstrap none");
}
