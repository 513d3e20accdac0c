//! The physical-cluster endpoints: list, switch, readiness.

use std::time::Duration;

use bytes::Bytes;
use franzgate_api::selector::{SwitchError, SwitchOutcome};
use franzgate_api::topology::ClusterRole;
use http_body_util::Full;
use hyper::{Response, StatusCode};
use serde_json::json;
use tokio::net::TcpStream;

use super::{AdminState, audit, error, json_response};

fn rfc3339(time: std::time::SystemTime) -> String {
    humantime::format_rfc3339_millis(time).to_string()
}

/// `GET /admin/pclusters/v1`.
pub fn list(state: &AdminState) -> Response<Full<Bytes>> {
    let active = state.selector.active();
    let clusters: Vec<_> = state
        .selector
        .clusters()
        .iter()
        .map(|c| {
            json!({
                "name": c.name,
                "role": match c.role { ClusterRole::Main => "main", ClusterRole::Failover => "failover" },
                "bootstrapServers": c.bootstrap_servers.iter().map(ToString::to_string).collect::<Vec<_>>(),
                "active": c.name == active.cluster.name,
            })
        })
        .collect();
    json_response(
        StatusCode::OK,
        json!({
            "activeCluster": active.cluster.name,
            "activeSince": rfc3339(active.since),
            "switchCount": active.switch_count,
            "epoch": active.epoch,
            "clusters": clusters,
        }),
    )
}

/// `POST /admin/pclusters/v1/pcluster/{cluster}/switch?to={target}`.
pub fn switch(state: &AdminState, user: &str, cluster: &str, target: Option<&str>) -> Response<Full<Bytes>> {
    let action = format!("switch {cluster} to {}", target.unwrap_or("<missing>"));
    let Some(target) = target.filter(|t| !t.is_empty()) else {
        audit(user, &action, "refused: no target");
        return error(StatusCode::BAD_REQUEST, "query parameter `to` is required, e.g. ?to=failover".into());
    };
    match state.selector.switch(cluster, target) {
        Ok(SwitchOutcome::Switched { from, to, epoch }) => {
            audit(user, &action, "switched");
            tracing::warn!(%from, %to, epoch, user, "cluster switched: sessions on the previous cluster are draining");
            let active = state.selector.active();
            json_response(
                StatusCode::OK,
                json!({
                    "message": "Cluster switched",
                    "pcluster": cluster,
                    "from": from,
                    "to": to,
                    "epoch": epoch,
                    "switchCount": active.switch_count,
                    "activeSince": rfc3339(active.since),
                }),
            )
        }
        Ok(SwitchOutcome::AlreadyActive { name }) => {
            audit(user, &action, "unchanged: already active");
            json_response(
                StatusCode::OK,
                json!({ "message": format!("Cluster {name} is already active; nothing changed"), "pcluster": cluster, "to": name }),
            )
        }
        Err(e @ SwitchError::UnknownCluster(_)) => {
            audit(user, &action, &format!("refused: {e}"));
            error(StatusCode::NOT_FOUND, e.to_string())
        }
        Err(e @ SwitchError::UnknownTarget { .. }) => {
            audit(user, &action, &format!("refused: {e}"));
            error(StatusCode::BAD_REQUEST, e.to_string())
        }
    }
}

/// `GET /health/ready`: broker ports are open, a bootstrap broker of the active cluster accepts a
/// connection, and no graceful shutdown is under way (while sessions drain, a load balancer must stop sending
/// new clients here).
pub async fn ready(state: &AdminState) -> Response<Full<Bytes>> {
    let draining = state.draining.is_cancelled();
    let ports = state.ports.borrow().len();
    let active = state.selector.active();
    let mut reachable = None;
    for address in &active.cluster.bootstrap_servers {
        let connect = TcpStream::connect((address.host.as_str(), address.port));
        if let Ok(Ok(_)) = tokio::time::timeout(state.probe_timeout.min(Duration::from_secs(2)), connect).await {
            reachable = Some(address.to_string());
            break;
        }
    }
    let up = ports > 0 && reachable.is_some() && !draining;
    let status = if up { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    json_response(
        status,
        json!({
            "status": if up { "UP" } else { "DOWN" },
            "listeners": ports,
            "activeCluster": active.cluster.name,
            "activeClusterReachable": reachable.is_some(),
            "shuttingDown": draining,
        }),
    )
}
