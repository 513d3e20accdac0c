//! One function per response type that names brokers.

use franzgate_api::kafka_protocol::messages::{ApiKey, BrokerId};
use franzgate_api::kafka_protocol::messages::{
    DescribeClusterResponse, DescribeTopicPartitionsResponse, FetchResponse, FindCoordinatorResponse, MetadataResponse,
    ProduceResponse, ResponseKind,
};
use franzgate_api::kafka_protocol::protocol::StrBytes;
use franzgate_api::{FilterError, KafkaResponse};

use super::NodeRewriter;

/// Rewrites `response` if its api names brokers. Produce and Fetch are re-encoded only when they carry
/// leadership hints; otherwise their original bytes are forwarded.
pub fn rewrite_response(
    response: &mut KafkaResponse,
    nodes: &NodeRewriter<'_>,
    cluster_id: Option<&str>,
) -> Result<(), FilterError> {
    let only_inspected = matches!(response.api_key(), Some(ApiKey::Produce | ApiKey::Fetch));
    let needs_rewrite = match response.body() {
        Ok(ResponseKind::Produce(body)) => produce_names_brokers(body),
        Ok(ResponseKind::Fetch(body)) => fetch_names_brokers(body),
        Ok(_) => true,
        // Produce and Fetch are only looked at for leadership hints: one that does not decode (tansu answered
        // Fetch v12 with NodeEndpoints, a v16+ tagged field) goes to the client as it came — the codec counted
        // and logged it. The other apis here name brokers in every answer and must be rewritten: they fail.
        Err(_) if only_inspected => return Ok(()),
        Err(e) => return Err(e),
    };
    if !needs_rewrite {
        return Ok(());
    }
    match response.body_mut()? {
        ResponseKind::Metadata(body) => metadata(body, nodes, cluster_id),
        ResponseKind::FindCoordinator(body) => find_coordinator(body, nodes),
        ResponseKind::DescribeCluster(body) => describe_cluster(body, nodes, cluster_id),
        ResponseKind::DescribeTopicPartitions(body) => describe_topic_partitions(body, nodes),
        ResponseKind::Produce(body) => produce(body, nodes),
        ResponseKind::Fetch(body) => fetch(body, nodes),
        _ => {}
    }
    Ok(())
}

/// Records the brokers of a list, then rewrites each to its gateway address, dropping those no gateway port
/// can reach. `fields` borrows a list entry's (node id, host, port) — the list types differ per api.
fn rewrite_brokers<T>(
    list: &mut Vec<T>,
    nodes: &NodeRewriter<'_>,
    fields: impl Fn(&mut T) -> (&mut BrokerId, &mut StrBytes, &mut i32),
) {
    // All at once: new brokers get virtual ids in ascending backend-id order, not in list order.
    let seen: Vec<(i32, String, i32)> = list
        .iter_mut()
        .map(|entry| {
            let (id, host, port) = fields(entry);
            (id.0, host.to_string(), *port)
        })
        .collect();
    nodes.observe(seen.iter().map(|(id, host, port)| (*id, host.as_str(), *port)));
    list.retain_mut(|entry| {
        let (id, host, port) = fields(entry);
        match nodes.address(*id) {
            Some(address) => {
                (*id, *host, *port) = address;
                true
            }
            None => false,
        }
    });
}

fn metadata(body: &mut MetadataResponse, nodes: &NodeRewriter<'_>, cluster_id: Option<&str>) {
    rewrite_brokers(&mut body.brokers, nodes, |b| (&mut b.node_id, &mut b.host, &mut b.port));
    body.controller_id = nodes.id(body.controller_id);
    for topic in &mut body.topics {
        for p in &mut topic.partitions {
            p.leader_id = nodes.id(p.leader_id);
            nodes.ids(&mut p.replica_nodes);
            nodes.ids(&mut p.isr_nodes);
            nodes.ids(&mut p.offline_replicas);
        }
    }
    if let (Some(id), Some(_)) = (cluster_id, &body.cluster_id) {
        body.cluster_id = Some(StrBytes::from_string(id.to_string()));
    }
}

fn find_coordinator(body: &mut FindCoordinatorResponse, nodes: &NodeRewriter<'_>) {
    // v0-3 answer one key in the top-level fields; v4+ answer many in `coordinators`. Unused fields are at
    // their defaults, which the rewriter leaves alone: a v4+ answer decodes with top-level node id 0 (not -1),
    // and giving it a virtual id fails encoding at v4+ ("a field is set that is not available").
    if body.coordinators.is_empty() && body.node_id.0 >= 0 {
        nodes.observe([(body.node_id.0, body.host.as_str(), body.port)]);
        if let Some((id, host, port)) = nodes.address(body.node_id) {
            (body.node_id, body.host, body.port) = (id, host, port);
        }
    }
    for c in &mut body.coordinators {
        if c.node_id.0 >= 0 {
            nodes.observe([(c.node_id.0, c.host.as_str(), c.port)]);
            if let Some((id, host, port)) = nodes.address(c.node_id) {
                (c.node_id, c.host, c.port) = (id, host, port);
            }
        }
    }
}

fn describe_cluster(body: &mut DescribeClusterResponse, nodes: &NodeRewriter<'_>, cluster_id: Option<&str>) {
    rewrite_brokers(&mut body.brokers, nodes, |b| (&mut b.broker_id, &mut b.host, &mut b.port));
    body.controller_id = nodes.id(body.controller_id);
    if let Some(id) = cluster_id {
        body.cluster_id = StrBytes::from_string(id.to_string());
    }
}

fn describe_topic_partitions(body: &mut DescribeTopicPartitionsResponse, nodes: &NodeRewriter<'_>) {
    for topic in &mut body.topics {
        for p in &mut topic.partitions {
            p.leader_id = nodes.id(p.leader_id);
            nodes.ids(&mut p.replica_nodes);
            nodes.ids(&mut p.isr_nodes);
            nodes.ids(&mut p.offline_replicas);
            if let Some(ids) = &mut p.eligible_leader_replicas {
                nodes.ids(ids);
            }
            if let Some(ids) = &mut p.last_known_elr {
                nodes.ids(ids);
            }
        }
    }
}

fn produce_names_brokers(body: &ProduceResponse) -> bool {
    !body.node_endpoints.is_empty()
        || body.responses.iter().flat_map(|t| &t.partition_responses).any(|p| p.current_leader.leader_id.0 >= 0)
}

fn produce(body: &mut ProduceResponse, nodes: &NodeRewriter<'_>) {
    rewrite_brokers(&mut body.node_endpoints, nodes, |n| (&mut n.node_id, &mut n.host, &mut n.port));
    for p in body.responses.iter_mut().flat_map(|t| &mut t.partition_responses) {
        p.current_leader.leader_id = nodes.id(p.current_leader.leader_id);
    }
}

fn fetch_names_brokers(body: &FetchResponse) -> bool {
    !body.node_endpoints.is_empty()
        || body
            .responses
            .iter()
            .flat_map(|t| &t.partitions)
            .any(|p| p.current_leader.leader_id.0 >= 0 || p.preferred_read_replica.0 >= 0)
}

fn fetch(body: &mut FetchResponse, nodes: &NodeRewriter<'_>) {
    rewrite_brokers(&mut body.node_endpoints, nodes, |n| (&mut n.node_id, &mut n.host, &mut n.port));
    for p in body.responses.iter_mut().flat_map(|t| &mut t.partitions) {
        p.current_leader.leader_id = nodes.id(p.current_leader.leader_id);
        p.preferred_read_replica = nodes.id(p.preferred_read_replica);
    }
}
