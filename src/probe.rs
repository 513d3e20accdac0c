//! A one-shot connection the gateway makes itself at start-up, so it knows every broker (and opens every
//! broker port) before the first client asks, and knows the api versions to promise clients before they
//! authenticate.

use franzgate_api::topology::{BackendCluster, BrokerAddress};
use kafka_protocol::messages::{ApiKey, MetadataRequest, MetadataResponse};
use std::time::Duration;

use crate::backend::{BackendSecurity, record_api_versions, round_trip};

/// Metadata v4 is understood by every broker since Kafka 1.0 and is not yet flexible (simple header).
const PROBE_VERSION: i16 = 4;

/// Asks the cluster's first reachable bootstrap broker for its brokers and api versions, and records them.
pub async fn probe_cluster(
    cluster: &BackendCluster,
    security: &BackendSecurity,
    timeout: Duration,
    max_frame: usize,
) -> Result<usize, String> {
    let mut failures = Vec::new();
    for address in &cluster.bootstrap_servers {
        match tokio::time::timeout(timeout * 2, fetch_brokers(address, cluster, security, timeout, max_frame)).await {
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

async fn fetch_brokers(
    address: &BrokerAddress,
    cluster: &BackendCluster,
    security: &BackendSecurity,
    timeout: Duration,
    max_frame: usize,
) -> Result<Vec<(i32, Option<BrokerAddress>)>, String> {
    let mut stream = security.connect(address, cluster, timeout, max_frame).await?;
    if cluster.api_versions.load().is_none() {
        record_api_versions(&mut stream, cluster, max_frame).await?;
    }
    let request = MetadataRequest::default().with_topics(Some(Vec::new())).with_allow_auto_topic_creation(false);
    let response: MetadataResponse =
        round_trip(&mut stream, ApiKey::Metadata, PROBE_VERSION, 7, &request, max_frame).await?;
    Ok(response
        .brokers
        .into_iter()
        .map(|b| {
            let address = u16::try_from(b.port).ok().map(|port| BrokerAddress { host: b.host.to_string(), port });
            (b.node_id.0, address)
        })
        .collect())
}
