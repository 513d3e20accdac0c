//! A one-shot Metadata request the gateway sends itself at start-up, so it knows every broker (and opens every
//! broker port) before the first client asks.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use franzgate_api::topology::{BackendCluster, BrokerAddress};
use kafka_protocol::messages::{ApiKey, MetadataRequest, MetadataResponse, RequestHeader};
use kafka_protocol::protocol::{Decodable, Encodable};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Metadata v4 is understood by every broker since Kafka 1.0 and is not yet flexible (simple header).
const PROBE_VERSION: i16 = 4;

/// Asks the cluster's first reachable bootstrap broker for its brokers and records them in its node map.
pub async fn probe_cluster(cluster: &BackendCluster, timeout: Duration, max_frame: usize) -> Result<usize, String> {
    let mut failures = Vec::new();
    for address in &cluster.bootstrap_servers {
        match tokio::time::timeout(timeout, fetch_brokers(address, max_frame)).await {
            Ok(Ok(brokers)) => {
                let table = cluster.nodes.observe(brokers);
                return Ok(table.len());
            }
            Ok(Err(e)) => failures.push(format!("{address}: {e}")),
            Err(_) => failures.push(format!("{address}: timed out")),
        }
    }
    Err(failures.join("; "))
}

async fn fetch_brokers(address: &BrokerAddress, max_frame: usize) -> Result<Vec<(i32, Option<BrokerAddress>)>, String> {
    let mut stream = TcpStream::connect((address.host.as_str(), address.port)).await.map_err(|e| e.to_string())?;
    let header = RequestHeader::default()
        .with_request_api_key(ApiKey::Metadata as i16)
        .with_request_api_version(PROBE_VERSION)
        .with_correlation_id(1)
        .with_client_id(Some("franzgate-probe".into()));
    let request = MetadataRequest::default().with_topics(Some(Vec::new())).with_allow_auto_topic_creation(false);
    let mut frame = BytesMut::new();
    frame.put_i32(0);
    header.encode(&mut frame, ApiKey::Metadata.request_header_version(PROBE_VERSION)).map_err(|e| e.to_string())?;
    request.encode(&mut frame, PROBE_VERSION).map_err(|e| e.to_string())?;
    let len = i32::try_from(frame.len() - 4).map_err(|e| e.to_string())?;
    frame[..4].copy_from_slice(&len.to_be_bytes());
    stream.write_all(&frame).await.map_err(|e| e.to_string())?;

    let len = stream.read_i32().await.map_err(|e| e.to_string())?;
    let len = usize::try_from(len).ok().filter(|l| *l >= 4 && *l <= max_frame).ok_or("bad response length")?;
    let mut body = vec![0u8; len];
    stream.read_exact(&mut body).await.map_err(|e| e.to_string())?;
    let mut body = Bytes::from(body);
    let _correlation_id = body.get_i32();
    let response = MetadataResponse::decode(&mut body, PROBE_VERSION).map_err(|e| format!("{e:#}"))?;
    Ok(response
        .brokers
        .into_iter()
        .map(|b| {
            let address = u16::try_from(b.port).ok().map(|port| BrokerAddress { host: b.host.to_string(), port });
            (b.node_id.0, address)
        })
        .collect())
}
