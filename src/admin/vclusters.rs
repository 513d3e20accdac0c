//! The virtual-cluster endpoints:
//!
//! | method | path | body | answer |
//! |---|---|---|---|
//! | GET | `/admin/vclusters/v1` | | every virtual cluster with its prefix and service accounts |
//! | GET | `/admin/vclusters/v1/vcluster/{vc}` | | one virtual cluster |
//! | POST | `/admin/vclusters/v1/vcluster/{vc}` | `{"prefix": "teamA."}` (optional) | creates it |
//! | POST | `/admin/vclusters/v1/vcluster/{vc}/username/{user}` | `{"lifeTimeSeconds": N}` | `{"token": "<JWT>"}` |
//! | DELETE | `/admin/vclusters/v1/vcluster/{vc}/username/{user}` | | revokes the account: its tokens stop working |
//!
//! A token request creates the virtual cluster (prefix: its name) when it does not exist yet, as Conduktor
//! does. Every change is written to the state topic before it takes effect; if that fails the answer is 503
//! and nothing changed.

use bytes::Bytes;
use franzgate_api::vcluster::{VClusterError, VirtualCluster};
use franzgate_auth::jwt::{TokenClaims, issue};
use http_body_util::Full;
use hyper::{Response, StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{AdminState, audit, error, json_response};
use crate::vcluster_state::ChangeError;

/// Ten years: a longer-lived token is almost certainly a mistake.
const MAX_LIFETIME_SECONDS: u64 = 10 * 365 * 24 * 3600;

/// The body of a token request.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct TokenRequest {
    /// How long the token is valid.
    life_time_seconds: u64,
}

/// The (optional) body of a create request.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateRequest {
    /// The backend prefix; the virtual cluster's name when absent.
    prefix: Option<String>,
}

fn describe(cluster: &VirtualCluster) -> Value {
    let accounts: Vec<_> = cluster
        .accounts
        .values()
        .map(|a| json!({ "username": a.username, "revoked": a.revoked, "generation": a.generation }))
        .collect();
    json!({ "name": cluster.name, "prefix": cluster.prefix, "serviceAccounts": accounts })
}

/// `GET /admin/vclusters/v1`.
pub fn list(state: &AdminState) -> Response<Full<Bytes>> {
    let clusters: Vec<_> = state.vclusters.list().iter().map(|c| describe(c)).collect();
    json_response(StatusCode::OK, json!({ "vclusters": clusters, "mandatory": state.vclusters.mandatory() }))
}

/// `GET /admin/vclusters/v1/vcluster/{vc}`.
pub fn get(state: &AdminState, name: &str) -> Response<Full<Bytes>> {
    match state.vclusters.get(name) {
        Some(cluster) => json_response(StatusCode::OK, describe(&cluster)),
        None => error(StatusCode::NOT_FOUND, VClusterError::UnknownVCluster(name.to_string()).to_string()),
    }
}

/// `POST /admin/vclusters/v1/vcluster/{vc}`.
pub async fn create(state: &AdminState, user: &str, name: &str, body: &[u8]) -> Response<Full<Bytes>> {
    let action = format!("create vcluster {name}");
    let request: CreateRequest = if body.iter().all(u8::is_ascii_whitespace) {
        CreateRequest::default()
    } else {
        match serde_json::from_slice(body) {
            Ok(request) => request,
            Err(e) => return refused(user, &action, StatusCode::BAD_REQUEST, format!("body: {e}")),
        }
    };
    let Some(store) = state.state_store.as_ref() else {
        return unavailable(user, &action);
    };
    let prefix = request.prefix.as_deref();
    match store.change(|vclusters| vclusters.plan_create(name, prefix)).await {
        Ok(created) => {
            audit(user, &action, if created.is_some() { "created" } else { "unchanged: exists" });
            let status = if created.is_some() { StatusCode::CREATED } else { StatusCode::OK };
            let cluster = state.vclusters.get(name).map(|c| describe(&c)).unwrap_or(Value::Null);
            json_response(status, cluster)
        }
        Err(e) => change_failed(user, &action, e),
    }
}

/// `POST /admin/vclusters/v1/vcluster/{vc}/username/{user}`.
pub async fn token(
    state: &AdminState,
    user: &str,
    vcluster: &str,
    username: &str,
    body: &[u8],
) -> Response<Full<Bytes>> {
    let action = format!("issue token for {username} in vcluster {vcluster}");
    let request: TokenRequest = match serde_json::from_slice(body) {
        Ok(request) => request,
        Err(e) => {
            let message = format!("body: expected {{\"lifeTimeSeconds\": <seconds>}}: {e}");
            return refused(user, &action, StatusCode::BAD_REQUEST, message);
        }
    };
    if request.life_time_seconds == 0 || request.life_time_seconds > MAX_LIFETIME_SECONDS {
        let message = format!("lifeTimeSeconds: must be between 1 and {MAX_LIFETIME_SECONDS}");
        return refused(user, &action, StatusCode::BAD_REQUEST, message);
    }
    // Both names are checked before anything is written: a refused call changes nothing.
    for (what, name) in [("virtual cluster name", vcluster), ("user name", username)] {
        if let Err(e) = franzgate_api::vcluster::validate_name(what, name) {
            return refused(user, &action, StatusCode::BAD_REQUEST, e.to_string());
        }
    }
    let Some(secret) = state.token_secret.as_deref() else {
        let message = "no token secret configured: set GATEWAY_USER_POOL_SECRET_KEY".to_string();
        return refused(user, &action, StatusCode::CONFLICT, message);
    };
    let Some(store) = state.state_store.as_ref() else {
        return unavailable(user, &action);
    };
    // The virtual cluster first (if new), then the account; each is persisted before it counts.
    if let Err(e) = store.change(|vclusters| vclusters.plan_ensure(vcluster)).await {
        return change_failed(user, &action, e);
    }
    let mut generation = 0;
    let issued = store
        .change(|vclusters| {
            let (record, current) = vclusters.plan_issue(vcluster, username)?;
            generation = current;
            Ok(Some(record))
        })
        .await;
    if let Err(e) = issued {
        return change_failed(user, &action, e);
    }
    let exp = crate::unix_now().saturating_add(request.life_time_seconds);
    let claims = TokenClaims { username: username.to_string(), vcluster: Some(vcluster.to_string()), exp, generation };
    match issue(secret, &claims) {
        Ok(token) => {
            audit(user, &action, "issued");
            json_response(StatusCode::OK, json!({ "token": token }))
        }
        Err(e) => refused(user, &action, StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

/// `DELETE /admin/vclusters/v1/vcluster/{vc}/username/{user}`.
pub async fn revoke(state: &AdminState, user: &str, vcluster: &str, username: &str) -> Response<Full<Bytes>> {
    let action = format!("revoke {username} in vcluster {vcluster}");
    let Some(store) = state.state_store.as_ref() else {
        return unavailable(user, &action);
    };
    match store.change(|vclusters| vclusters.plan_revoke(vcluster, username).map(Some)).await {
        Ok(_) => {
            audit(user, &action, "revoked");
            let message = format!("service account {username} of {vcluster} revoked: its tokens no longer work");
            json_response(StatusCode::OK, json!({ "message": message }))
        }
        Err(e) => change_failed(user, &action, e),
    }
}

fn unavailable(user: &str, action: &str) -> Response<Full<Bytes>> {
    let message = "virtual clusters need service-account tokens: set GATEWAY_USER_POOL_SECRET_KEY".to_string();
    refused(user, action, StatusCode::CONFLICT, message)
}

fn change_failed(user: &str, action: &str, e: ChangeError) -> Response<Full<Bytes>> {
    let status = match &e {
        ChangeError::Invalid(VClusterError::UnknownVCluster(_) | VClusterError::UnknownAccount { .. }) => {
            StatusCode::NOT_FOUND
        }
        ChangeError::Invalid(
            VClusterError::InvalidName { .. } | VClusterError::Revoked { .. } | VClusterError::Mandatory(_),
        ) => StatusCode::BAD_REQUEST,
        ChangeError::Invalid(VClusterError::PrefixOverlap { .. } | VClusterError::PrefixChange { .. }) => {
            StatusCode::CONFLICT
        }
        ChangeError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        ChangeError::Conflict => StatusCode::CONFLICT,
    };
    refused(user, action, status, e.to_string())
}

fn refused(user: &str, action: &str, status: StatusCode, message: String) -> Response<Full<Bytes>> {
    audit(user, action, &format!("refused: {message}"));
    error(status, message)
}
