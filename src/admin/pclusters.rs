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
            "fleet": state.fleet.as_deref().map(fleet_view),
        }),
    )
}

/// The fleet as this instance sees it: the decision it applied, and every instance announced on the clusters it
/// reads, with whether each applied the same decision.
fn fleet_view(fleet: &crate::fleet::Fleet) -> serde_json::Value {
    let applied = fleet.applied();
    let instances: Vec<_> = fleet
        .instances()
        .into_iter()
        .map(|i| {
            json!({
                "id": i.record.id,
                "admin": i.record.admin,
                "activeCluster": i.record.active,
                "epoch": i.record.epoch,
                "lastSeen": rfc3339(std::time::UNIX_EPOCH + Duration::from_millis(i.record.seen_ms)),
                "alive": i.alive,
                "converged": i.converged,
            })
        })
        .collect();
    let converged = fleet.instances().iter().filter(|i| i.alive).all(|i| i.converged);
    json!({
        "instanceId": fleet.id(),
        "controlTopic": fleet.topic(),
        "epoch": applied.as_ref().map_or(0, |a| a.epoch),
        "decision": applied.map(|a| json!({"activeCluster": a.active, "epoch": a.epoch, "by": a.by, "user": a.user,
            "at": rfc3339(std::time::UNIX_EPOCH + Duration::from_millis(a.at_ms))})),
        "converged": converged,
        "instances": instances,
    })
}

/// `POST /admin/pclusters/v1/pcluster/{cluster}/switch?to={target}`: switches this instance at once; with a
/// fleet, the decision is then written to every cluster's control topic and the answer says where it reached.
pub async fn switch(state: &AdminState, user: &str, cluster: &str, target: Option<&str>) -> Response<Full<Bytes>> {
    let action = format!("switch {cluster} to {}", target.unwrap_or("<missing>"));
    let Some(target) = target.filter(|t| !t.is_empty()) else {
        audit(user, &action, "refused: no target");
        return error(StatusCode::BAD_REQUEST, "query parameter `to` is required, e.g. ?to=failover".into());
    };
    let (outcome, fleet) = match &state.fleet {
        Some(fleet) => match fleet.switch(cluster, target, user).await {
            Ok(switched) => {
                let fleet_json = json!({
                    "epoch": switched.fleet_epoch,
                    "persistedTo": switched.persisted,
                    "notPersisted": switched.failed.iter().map(|(c, reason)| json!({"cluster": c, "reason": reason})).collect::<Vec<_>>(),
                    "followedDecisionOf": switched.followed.as_ref().map(|d| &d.by),
                });
                // Switched a moment ago by following another instance's decision: the answer a script that
                // calls every instance expects.
                let outcome = match (switched.outcome, switched.followed) {
                    (SwitchOutcome::AlreadyActive { .. }, Some(decision)) => {
                        let epoch = state.selector.epoch();
                        SwitchOutcome::Switched { from: decision.from, to: decision.active, epoch }
                    }
                    (outcome, _) => outcome,
                };
                (Ok(outcome), Some(fleet_json))
            }
            Err(e) => (Err(e), None),
        },
        None => (state.selector.switch(cluster, target), None),
    };
    match outcome {
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
                    "fleet": fleet,
                }),
            )
        }
        Ok(SwitchOutcome::AlreadyActive { name }) => {
            audit(user, &action, "unchanged: already active");
            json_response(
                StatusCode::OK,
                json!({ "message": format!("Cluster {name} is already active; nothing changed"), "pcluster": cluster, "to": name, "fleet": fleet }),
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
