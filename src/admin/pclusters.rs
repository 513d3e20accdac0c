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
use crate::fleet::{FleetSwitch, FleetSwitchError, PlannedRefusal};

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
    let views = fleet.instances();
    let converged = views.iter().filter(|i| i.alive).all(|i| i.converged);
    let instances: Vec<_> = views
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
                "fenced": i.record.fenced,
                "primaryDownSince": i.record.primary_down_since_ms.map(|ms| rfc3339(std::time::UNIX_EPOCH + Duration::from_millis(ms))),
            })
        })
        .collect();
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

/// What a switch call asks: `to`, `mode` (`unplanned`, the default, or `planned`) and, for a planned switch,
/// `timeout` (how long replication may take to catch up: `30s`, `2m`, `1500ms`; default 30 s).
pub struct SwitchAsked {
    target: Option<String>,
    mode: Mode,
    timeout: Duration,
    /// Run the checks only.
    dry_run: bool,
    /// Switch even if a check fails.
    force: bool,
}

fn flag(query: Option<&str>, name: &str) -> Result<bool, String> {
    match super::query_param(query, name)?.as_deref() {
        None | Some("false") => Ok(false),
        Some("true" | "") => Ok(true),
        Some(other) => Err(format!("`{name}={other}`: expected true or false")),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Unplanned,
    Planned,
}

/// The longest a planned switch may wait for replication.
const MAX_PLANNED_TIMEOUT: Duration = Duration::from_secs(600);

impl SwitchAsked {
    /// Parses the query; a message for a 400 when it is wrong.
    pub fn parse(query: Option<&str>) -> Result<Self, String> {
        let target = super::query_param(query, "to")?;
        let mode = match super::query_param(query, "mode")?.as_deref() {
            None | Some("unplanned") => Mode::Unplanned,
            Some("planned") => Mode::Planned,
            Some(other) => {
                return Err(format!("unknown mode `{other}`; expected `unplanned` (the default) or `planned`"));
            }
        };
        let timeout = match super::query_param(query, "timeout")? {
            None => Duration::from_secs(30),
            Some(_) if mode == Mode::Unplanned => {
                return Err("`timeout` applies to `mode=planned` only".into());
            }
            Some(text) => {
                let timeout = humantime::parse_duration(&text)
                    .map_err(|e| format!("timeout `{text}`: {e} (e.g. 30s, 2m, 1500ms)"))?;
                if timeout.is_zero() || timeout > MAX_PLANNED_TIMEOUT {
                    return Err(format!("timeout `{text}`: must be above 0 and at most {MAX_PLANNED_TIMEOUT:?}"));
                }
                timeout
            }
        };
        Ok(Self { target, mode, timeout, dry_run: flag(query, "dryRun")?, force: flag(query, "force")? })
    }
}

/// `POST /admin/pclusters/v1/pcluster/{cluster}/switch?to={target}[&mode=planned[&timeout=30s]]`: switches this
/// instance at once (planned: once replication caught up under a produce fence); with a fleet, the decision is
/// then written to every cluster's control topic and the answer says where it reached.
pub async fn switch(state: &AdminState, user: &str, cluster: &str, asked: SwitchAsked) -> Response<Full<Bytes>> {
    let started = std::time::Instant::now();
    let from = state.selector.active().cluster.name.clone();
    let (status, body) = switch_inner(state, user, cluster, &asked).await;
    if let Some(fleet) = &state.fleet {
        let attempt = crate::fleet::records::HistoryRecord {
            at_ms: crate::fleet::now_ms(),
            by: fleet.id().to_string(),
            user: user.to_string(),
            from,
            to: asked.target.clone().unwrap_or_default(),
            mode: format!("{:?}", asked.mode).to_lowercase(),
            dry_run: asked.dry_run,
            forced: asked.force,
            status: status.as_u16(),
            outcome: body["message"].as_str().unwrap_or_default().to_string(),
            duration_ms: started.elapsed().as_millis() as u64,
            fenced_ms: body["fleet"]["planned"]["fencedMs"].as_u64(),
            replication_wait_ms: body["fleet"]["planned"]["replicationWaitMs"].as_u64(),
            failed_checks: body["checks"]["checks"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|c| c["ok"] == false)
                .filter_map(|c| c["name"].as_str().map(str::to_string))
                .collect(),
        };
        fleet.record_attempt(attempt);
    }
    json_response(status, body)
}

/// A switch answer before it is sent: what the history records.
type Reply = (StatusCode, serde_json::Value);

fn reply(status: StatusCode, body: serde_json::Value) -> Reply {
    (status, body)
}

fn refusal(status: StatusCode, message: String) -> Reply {
    (status, json!({ "message": message }))
}

async fn switch_inner(state: &AdminState, user: &str, cluster: &str, asked: &SwitchAsked) -> Reply {
    let mode = match (asked.mode, asked.dry_run) {
        (_, true) => " (dry run)",
        (Mode::Planned, false) => " (planned)",
        (Mode::Unplanned, false) => "",
    };
    let action = format!("switch {cluster} to {}{mode}", asked.target.as_deref().unwrap_or("<missing>"));
    let Some(target) = asked.target.as_deref().filter(|t| !t.is_empty()) else {
        audit(user, &action, "refused: no target");
        return refusal(StatusCode::BAD_REQUEST, "query parameter `to` is required, e.g. ?to=failover".into());
    };
    let Some(fleet) = &state.fleet else {
        if asked.mode == Mode::Planned {
            audit(user, &action, "refused: no fleet");
            let message = "a planned switch needs the fleet's control topic (gateway.fleet.enabled and a failover)";
            return refusal(StatusCode::BAD_REQUEST, message.into());
        }
        let outcome = state.selector.switch(cluster, target).map_err(Into::into);
        return answer(state, user, &action, cluster, outcome, None, None);
    };
    // An unknown cluster or target is refused as such (404, 400) before any check looks for it.
    if let Err(e) = state.selector.target(cluster, target) {
        return answer(state, user, &action, cluster, Err(e.into()), None, None);
    }
    let moving = state.selector.active().cluster.name != target;
    let replication = asked.dry_run || asked.mode == Mode::Planned;
    let report = if moving || asked.dry_run { Some(fleet.check(target, replication).await) } else { None };
    if let Some(report) = &report {
        // An unplanned switch is the emergency path: it refuses only a target it cannot reach or that lacks the
        // topics clients use; a planned one refuses any failed check but replication, which it waits for.
        let blocking: Vec<&str> = report
            .failed()
            .into_iter()
            .filter(|check| match asked.mode {
                Mode::Unplanned => matches!(*check, "target-reachable" | "topics-on-target"),
                Mode::Planned => *check != "replication",
            })
            .collect();
        if asked.dry_run {
            audit(user, &action, if blocking.is_empty() { "dry run: would switch" } else { "dry run: would refuse" });
            let (status, message) = if blocking.is_empty() {
                (StatusCode::OK, "Dry run: the checks pass; nothing changed".to_string())
            } else {
                (
                    StatusCode::CONFLICT,
                    format!("Dry run: the switch would be refused ({}); nothing changed", blocking.join(", ")),
                )
            };
            return reply(status, json!({ "message": message, "dryRun": true, "checks": report }));
        }
        if !blocking.is_empty() && !asked.force {
            audit(user, &action, &format!("refused: checks failed ({})", blocking.join(", ")));
            let message = format!(
                "pre-switch checks failed ({}); nothing changed; add force=true to switch anyway",
                blocking.join(", ")
            );
            return reply(StatusCode::CONFLICT, json!({ "message": message, "checks": report }));
        }
    }
    let checks = report.map(|r| json!(r));
    let call = Call { state, user, action: &action, cluster, target };
    switch_with_fleet(&call, fleet, asked, checks).await
}

/// A switch call: who asked what.
struct Call<'a> {
    state: &'a AdminState,
    user: &'a str,
    action: &'a str,
    cluster: &'a str,
    target: &'a str,
}

/// The switch itself, unplanned or planned, once the checks allowed it.
async fn switch_with_fleet(
    call: &Call<'_>,
    fleet: &crate::fleet::Fleet,
    asked: &SwitchAsked,
    checks: Option<serde_json::Value>,
) -> Reply {
    let Call { state, user, action, cluster, target } = *call;
    let action = action.to_string();
    if asked.mode == Mode::Unplanned {
        let switched = fleet.switch(cluster, target, user).await;
        let (outcome, fleet_json) = match switched {
            Ok(switched) => {
                let fleet_json = fleet_answer(&switched);
                (Ok(followed_as_switched(state, switched)), Some(fleet_json))
            }
            Err(e) => (Err(e), None),
        };
        return answer(state, user, &action, cluster, outcome, fleet_json, checks);
    }
    match fleet.planned_switch(cluster, target, user, asked.timeout).await {
        Ok(planned) => {
            let mut fleet_json = fleet_answer(&planned.switch);
            fleet_json["planned"] = json!({
                "fencedMs": planned.fenced.as_millis() as u64,
                "replicationWaitMs": planned.waited.as_millis() as u64,
                "partitionsCompared": planned.partitions,
                "notMirrored": planned.not_mirrored,
                "fenceUnconfirmedBy": planned.unconfirmed,
            });
            answer(state, user, &action, cluster, Ok(planned.switch.outcome), Some(fleet_json), checks)
        }
        Err(PlannedRefusal::Switch(e)) => answer(state, user, &action, cluster, Err(e), None, checks),
        Err(PlannedRefusal::Behind { timeout, behind }) => {
            audit(user, &action, "refused: replication behind");
            let behind: Vec<_> = behind
                .iter()
                .map(|((topic, partition), end, copy_end)| {
                    json!({"topic": topic, "partition": partition, "sourceEndOffset": end, "targetEndOffset": copy_end})
                })
                .collect();
            reply(
                StatusCode::CONFLICT,
                json!({
                    "message": format!("replication did not reach the end of {} partition(s) within {timeout:?}: nothing switched, the produce fence is lifted", behind.len()),
                    "behind": behind,
                }),
            )
        }
        Err(PlannedRefusal::Unreadable(reason)) => {
            audit(user, &action, "refused: clusters unreadable");
            refusal(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("cannot compare the clusters: {reason}; nothing switched, the produce fence is lifted"),
            )
        }
    }
}

/// The `fleet` part of a switch answer.
fn fleet_answer(switched: &FleetSwitch) -> serde_json::Value {
    json!({
        "epoch": switched.fleet_epoch,
        "persistedTo": switched.persisted,
        "notPersisted": switched.failed.iter().map(|(c, reason)| json!({"cluster": c, "reason": reason})).collect::<Vec<_>>(),
        "followedDecisionOf": switched.followed.as_ref().map(|d| &d.by),
    })
}

/// Switched a moment ago by following another instance's decision: the answer a script that calls every instance
/// expects.
fn followed_as_switched(state: &AdminState, switched: FleetSwitch) -> SwitchOutcome {
    match (switched.outcome, switched.followed) {
        (SwitchOutcome::AlreadyActive { .. }, Some(decision)) => {
            SwitchOutcome::Switched { from: decision.from, to: decision.active, epoch: state.selector.epoch() }
        }
        (outcome, _) => outcome,
    }
}

/// The answer to a switch call.
fn answer(
    state: &AdminState,
    user: &str,
    action: &str,
    cluster: &str,
    outcome: Result<SwitchOutcome, FleetSwitchError>,
    fleet: Option<serde_json::Value>,
    checks: Option<serde_json::Value>,
) -> Reply {
    match outcome {
        Ok(SwitchOutcome::Switched { from, to, epoch }) => {
            audit(user, action, "switched");
            tracing::warn!(%from, %to, epoch, user, "cluster switched: sessions on the previous cluster are draining");
            let active = state.selector.active();
            reply(
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
                    "checks": checks,
                }),
            )
        }
        Ok(SwitchOutcome::AlreadyActive { name }) => {
            audit(user, action, "unchanged: already active");
            reply(
                StatusCode::OK,
                json!({ "message": format!("Cluster {name} is already active; nothing changed"), "pcluster": cluster, "to": name, "fleet": fleet, "checks": checks }),
            )
        }
        Err(FleetSwitchError::Refused(e @ SwitchError::UnknownCluster(_))) => {
            audit(user, action, &format!("refused: {e}"));
            refusal(StatusCode::NOT_FOUND, e.to_string())
        }
        Err(FleetSwitchError::Refused(e @ SwitchError::UnknownTarget { .. })) => {
            audit(user, action, &format!("refused: {e}"));
            refusal(StatusCode::BAD_REQUEST, e.to_string())
        }
        Err(e @ FleetSwitchError::InProgress) => {
            audit(user, action, "refused: in progress");
            refusal(StatusCode::CONFLICT, e.to_string())
        }
    }
}

/// `GET /admin/pclusters/v1/history`: every switch attempt the fleet recorded, newest first.
pub fn history(state: &AdminState) -> Response<Full<Bytes>> {
    let Some(fleet) = &state.fleet else {
        return error(StatusCode::NOT_FOUND, "no switch history: the fleet's control topic is not used".into());
    };
    let attempts: Vec<_> = fleet
        .history()
        .into_iter()
        .map(|a| {
            let mut value = json!(a);
            value["at"] = json!(rfc3339(std::time::UNIX_EPOCH + Duration::from_millis(a.at_ms)));
            value
        })
        .collect();
    json_response(StatusCode::OK, json!({ "attempts": attempts }))
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
