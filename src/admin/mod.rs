//! The admin HTTP API, compatible with Conduktor Gateway's paths:
//!
//! | method | path | who | what |
//! |---|---|---|---|
//! | POST | `/admin/pclusters/v1/pcluster/{id}/switch?to={target}` | admin user | switch `id`'s traffic to `target` |
//! | GET | `/admin/pclusters/v1` | any user | clusters, roles, active one, since when, switch count |
//! | GET | `/health`, `/health/live` | anyone | the process is up |
//! | GET | `/health/ready` | anyone | listeners up and the active cluster reachable |
//! | GET | `/metrics` | any user | Prometheus text: runtime metrics and chargeback |
//! | GET | `/admin/chargeback/v1` | any user | chargeback totals since start and per time window (JSON) |
//!
//! Basic auth; every refusal is a 4xx with a JSON `message`, and a refused call changes nothing. Every call to
//! `/admin` is logged on the `franzgate::audit` target with who asked, what, and the outcome.

pub(crate) mod chargeback;
pub mod client;
mod pclusters;

use std::collections::BTreeSet;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use bytes::Bytes;
use franzgate_api::selector::ClusterSelector;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue, WWW_AUTHENTICATE};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

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
}

/// Serves the admin API on `listener` until `shutdown`.
pub async fn serve_admin(listener: TcpListener, state: Arc<AdminState>, shutdown: CancellationToken) {
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    warn!(reason = %e, "admin API accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = shutdown.cancelled() => return,
        };
        let state = state.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                let state = state.clone();
                async move { Ok::<_, Infallible>(route(request, &state).await) }
            });
            if let Err(e) =
                hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service).await
            {
                debug!(%peer, reason = %e, "admin API connection ended with an error");
            }
        });
    }
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
        (["admin", "pclusters", "v1", "pcluster", cluster, "switch"], &Method::POST) => {
            let user = match authenticate(&request, state) {
                Ok(user) => user,
                Err(refusal) => return *refusal,
            };
            if !user.admin {
                audit(&user.username, &format!("switch {cluster}"), "refused: not an admin");
                return error(StatusCode::FORBIDDEN, format!("user `{}` is not an admin", user.username));
            }
            let target = query_param(request.uri().query(), "to");
            pclusters::switch(state, &user.username, cluster, target.as_deref())
        }
        (["health"] | ["health", "live"] | ["health", "ready"] | ["admin", "pclusters", "v1"], _)
        | (["metrics"] | ["admin", "chargeback", "v1"], _)
        | (["admin", "pclusters", "v1", "pcluster", _, "switch"], _) => {
            error(StatusCode::METHOD_NOT_ALLOWED, format!("{method} is not allowed on {path}"))
        }
        _ => error(StatusCode::NOT_FOUND, format!("no such endpoint: {method} {path}")),
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

fn query_param(query: Option<&str>, name: &str) -> Option<String> {
    query?.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        (key == name).then(|| value.to_string())
    })
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
