//! The admin HTTP API, compatible with Conduktor Gateway's paths:
//!
//! | method | path | who | what |
//! |---|---|---|---|
//! | POST | `/admin/pclusters/v1/pcluster/{id}/switch?to={target}` | admin user | switch `id`'s traffic to `target` |
//! | GET | `/admin/pclusters/v1` | any user | clusters, roles, active one, since when, switch count |
//! | GET | `/health`, `/health/live` | anyone | the process is up |
//! | GET | `/health/ready` | anyone | listeners up, the active cluster reachable, and no shutdown under way |
//! | GET | `/metrics` | any user | Prometheus text: runtime metrics and chargeback |
//! | GET | `/admin/chargeback/v1` | any user | chargeback totals since start and per time window (JSON) |
//! | GET | `/admin/vclusters/v1`, `/admin/vclusters/v1/vcluster/{vc}` | any user | virtual clusters, accounts |
//! | POST | `/admin/vclusters/v1/vcluster/{vc}` | admin user | create a virtual cluster (`{"prefix": ...}`) |
//! | POST | `/admin/vclusters/v1/vcluster/{vc}/username/{user}` | admin user | a service-account token |
//! | DELETE | `/admin/vclusters/v1/vcluster/{vc}/username/{user}` | admin user | revoke the account's tokens |
//!
//! Basic auth; a body larger than `admin_max_body_bytes` gets 413; every refusal is a 4xx with a JSON `message`, and a refused call changes nothing. Every call to
//! `/admin` is logged on the `franzgate::audit` target with who asked, what, and the outcome.

pub(crate) mod chargeback;
pub mod client;
mod pclusters;
mod server;
mod vclusters;

pub use server::{AdminLimits, serve_admin};

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use bytes::Bytes;
use franzgate_api::selector::ClusterSelector;
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::Incoming;
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue, WWW_AUTHENTICATE};
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{Value, json};
use tokio::sync::watch;
use tracing::warn;

use crate::config::AdminUser;

/// What the admin API reads and drives.
pub struct AdminState {
    /// The switchable state.
    pub selector: Arc<ClusterSelector>,
    /// Who may call it.
    pub users: Vec<AdminUser>,
    /// The broker ports open (readiness needs at least one).
    pub ports: watch::Receiver<BTreeSet<u16>>,
    /// How long the readiness probe may take to reach the active cluster.
    pub probe_timeout: Duration,
    /// Runtime counters, for `/metrics`.
    pub metrics: Arc<crate::metrics::GatewayMetrics>,
    /// Authentication outcomes, for `/metrics`.
    pub auth_stats: Arc<franzgate_api::AuthStats>,
    /// Chargeback counts, for `/metrics` and `/admin/chargeback/v1`.
    pub usage: Arc<franzgate_api::usage::UsageLedger>,
    /// Client connections accepted per port, for `/metrics`.
    pub accepted: Arc<std::sync::Mutex<std::collections::BTreeMap<u16, u64>>>,
    /// The virtual clusters.
    pub vclusters: Arc<franzgate_api::vcluster::VirtualClusters>,
    /// Where virtual-cluster changes are persisted; `None` without a token secret.
    pub state_store: Option<Arc<crate::vcluster_state::StateStore>>,
    /// The fleet's switch decision; `None` with a single cluster or `gateway.fleet.enabled: false`.
    pub fleet: Option<Arc<crate::fleet::Fleet>>,
    /// The HS256 secret tokens are signed with (`GATEWAY_USER_POOL_SECRET_KEY`).
    pub token_secret: Option<Vec<u8>>,
    /// The largest request body read.
    pub max_body: usize,
    /// Cancelled once a graceful shutdown has begun (readiness is DOWN from then on).
    pub draining: tokio_util::sync::CancellationToken,
    /// Connection limits and timeouts.
    pub limits: AdminLimits,
}

async fn route(request: Request<Incoming>, state: &AdminState) -> Response<Full<Bytes>> {
    let path = request.uri().path().trim_end_matches('/').to_string();
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let method = request.method().clone();
    match (segments.as_slice(), &method) {
        (["health"] | ["health", "live"], &Method::GET) => json_response(StatusCode::OK, json!({"status": "UP"})),
        (["health", "ready"], &Method::GET) => pclusters::ready(state).await,
        (["metrics"], &Method::GET) => match authenticate(&request, state) {
            Ok(_) => chargeback::metrics(state),
            Err(refusal) => *refusal,
        },
        (["admin", "chargeback", "v1"], &Method::GET) => match authenticate(&request, state) {
            Ok(user) => {
                audit(&user.username, "read chargeback", "ok");
                chargeback::report(state)
            }
            Err(refusal) => *refusal,
        },
        (["admin", "pclusters", "v1"], &Method::GET) => match authenticate(&request, state) {
            Ok(user) => {
                audit(&user.username, "list pclusters", "ok");
                pclusters::list(state)
            }
            Err(refusal) => *refusal,
        },
        (["admin", "pclusters", "v1", "history"], &Method::GET) => match authenticate(&request, state) {
            Ok(user) => {
                audit(&user.username, "read switch history", "ok");
                pclusters::history(state)
            }
            Err(refusal) => *refusal,
        },
        (["admin", "pclusters", "v1", "pcluster", cluster, "switch"], &Method::POST) => {
            let user = match authenticate(&request, state) {
                Ok(user) => user,
                Err(refusal) => return *refusal,
            };
            if !user.admin {
                audit(&user.username, &format!("switch {cluster}"), "refused: not an admin");
                return error(StatusCode::FORBIDDEN, format!("user `{}` is not an admin", user.username));
            }
            let asked = match pclusters::SwitchAsked::parse(request.uri().query()) {
                Ok(asked) => asked,
                Err(message) => {
                    audit(&user.username, &format!("switch {cluster}"), &format!("refused: {message}"));
                    return error(StatusCode::BAD_REQUEST, message);
                }
            };
            pclusters::switch(state, &user.username, cluster, asked).await
        }
        (["admin", "vclusters", "v1"], &Method::GET) => match authenticate(&request, state) {
            Ok(user) => {
                audit(&user.username, "list vclusters", "ok");
                vclusters::list(state)
            }
            Err(refusal) => *refusal,
        },
        (["admin", "vclusters", "v1", "vcluster", name], &Method::GET) => match authenticate(&request, state) {
            Ok(user) => {
                audit(&user.username, &format!("read vcluster {name}"), "ok");
                vclusters::get(state, name)
            }
            Err(refusal) => *refusal,
        },
        (["admin", "vclusters", "v1", "vcluster", name], &Method::POST) => {
            let (user, body) = match admin_with_body(request, state, &format!("create vcluster {name}")).await {
                Ok(ok) => ok,
                Err(refusal) => return *refusal,
            };
            vclusters::create(state, &user.username, name, &body).await
        }
        (["admin", "vclusters", "v1", "vcluster", vcluster, "username", username], &Method::POST) => {
            let action = format!("issue token for {username} in vcluster {vcluster}");
            let (user, body) = match admin_with_body(request, state, &action).await {
                Ok(ok) => ok,
                Err(refusal) => return *refusal,
            };
            vclusters::token(state, &user.username, vcluster, username, &body).await
        }
        (["admin", "vclusters", "v1", "vcluster", vcluster, "username", username], &Method::DELETE) => {
            let action = format!("revoke {username} in vcluster {vcluster}");
            let (user, _) = match admin_with_body(request, state, &action).await {
                Ok(ok) => ok,
                Err(refusal) => return *refusal,
            };
            vclusters::revoke(state, &user.username, vcluster, username).await
        }
        (["admin", "vclusters", "v1"], _)
        | (["admin", "vclusters", "v1", "vcluster", _], _)
        | (["admin", "vclusters", "v1", "vcluster", _, "username", _], _) => {
            error(StatusCode::METHOD_NOT_ALLOWED, format!("{method} is not allowed on {path}"))
        }
        (
            ["health"]
            | ["health", "live"]
            | ["health", "ready"]
            | ["admin", "pclusters", "v1"]
            | ["admin", "pclusters", "v1", "history"],
            _,
        )
        | (["metrics"] | ["admin", "chargeback", "v1"], _)
        | (["admin", "pclusters", "v1", "pcluster", _, "switch"], _) => {
            error(StatusCode::METHOD_NOT_ALLOWED, format!("{method} is not allowed on {path}"))
        }
        _ => error(StatusCode::NOT_FOUND, format!("no such endpoint: {method} {path}")),
    }
}

/// An admin user's call and its body (at most `max_body` bytes), or the 401, 403 or 413 to answer.
async fn admin_with_body(
    request: Request<Incoming>,
    state: &AdminState,
    action: &str,
) -> Result<(AdminUser, Bytes), Box<Response<Full<Bytes>>>> {
    let user = authenticate(&request, state)?;
    if !user.admin {
        audit(&user.username, action, "refused: not an admin");
        return Err(Box::new(error(StatusCode::FORBIDDEN, format!("user `{}` is not an admin", user.username))));
    }
    let limit = state.max_body;
    match Limited::new(request.into_body(), limit).collect().await {
        Ok(body) => Ok((user, body.to_bytes())),
        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => {
            state.metrics.refused_admin_body.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            warn!(user = %user.username, action, limit, "admin request body larger than admin_max_body_bytes: refused");
            audit(&user.username, action, "refused: body too large");
            let message = format!("request body larger than {limit} bytes (admin_max_body_bytes)");
            Err(Box::new(error(StatusCode::PAYLOAD_TOO_LARGE, message)))
        }
        Err(e) => {
            audit(&user.username, action, "refused: unreadable body");
            Err(Box::new(error(StatusCode::BAD_REQUEST, format!("cannot read the request body: {e}"))))
        }
    }
}

/// The user whose basic-auth credentials the request carries, or the 401 to answer.
fn authenticate(request: &Request<Incoming>, state: &AdminState) -> Result<AdminUser, Box<Response<Full<Bytes>>>> {
    credentials(request, state).map_err(|reason| {
        audit("-", &format!("{} {}", request.method(), request.uri().path()), &format!("refused: {reason}"));
        let mut response = error(StatusCode::UNAUTHORIZED, format!("authentication required: {reason}"));
        response.headers_mut().insert(WWW_AUTHENTICATE, HeaderValue::from_static("Basic realm=\"franzgate\""));
        Box::new(response)
    })
}

fn credentials(request: &Request<Incoming>, state: &AdminState) -> Result<AdminUser, &'static str> {
    let header = request.headers().get(AUTHORIZATION).ok_or("no credentials")?;
    let encoded = header
        .to_str()
        .ok()
        .and_then(|h| h.strip_prefix("Basic ").or_else(|| h.strip_prefix("basic ")))
        .ok_or("not basic auth")?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()
        .and_then(|d| String::from_utf8(d).ok())
        .ok_or("malformed credentials")?;
    let (username, password) = decoded.split_once(':').ok_or("malformed credentials")?;
    state
        .users
        .iter()
        .find(|u| {
            constant_time_eq(u.username.as_bytes(), username.as_bytes())
                & constant_time_eq(u.password.as_bytes(), password.as_bytes())
        })
        .cloned()
        .ok_or("wrong user name or password")
}

/// Compares without returning early on the first differing byte, so timing does not reveal a prefix.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The value of query parameter `name`, if given; given twice is an error (which one was meant is unknown).
pub(crate) fn query_param(query: Option<&str>, name: &str) -> Result<Option<String>, String> {
    let mut values = query.unwrap_or_default().split('&').filter_map(|pair| {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        (key == name).then_some(value)
    });
    let first = values.next().map(str::to_string);
    match values.next() {
        Some(_) => Err(format!("query parameter `{name}` given more than once")),
        None => Ok(first),
    }
}

fn audit(user: &str, action: &str, outcome: &str) {
    tracing::info!(target: "franzgate::audit", user, action, outcome, "admin call");
}

fn json_response(status: StatusCode, body: Value) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = status;
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

fn error(status: StatusCode, message: String) -> Response<Full<Bytes>> {
    json_response(status, json!({ "message": message }))
}
