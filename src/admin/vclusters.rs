//! The virtual-cluster endpoints:
//!
//! | method | path | body | answer |
//! |---|---|---|---|
//! | GET | `/admin/vclusters/v1` | | every virtual cluster with its prefix and service accounts |
//! | GET | `/admin/vclusters/v1/vcluster/{vc}` | | one virtual cluster |
//! | POST | `/admin/vclusters/v1/vcluster/{vc}` | `{"prefix": "teamA.", "adoptExisting": false}` (optional) | creates it |
//! | POST | `/admin/vclusters/v1/vcluster/{vc}/username/{user}` | `{"lifeTimeSeconds": N, "adoptExisting": false}` | `{"token": "<JWT>"}` |
//! | DELETE | `/admin/vclusters/v1/vcluster/{vc}/username/{user}` | | revokes the account: its tokens stop working |
//!
//! A token request creates the virtual cluster (prefix: its name) when it does not exist yet, as Conduktor
//! does. Every change is written to the state topic before it takes effect; if that fails the answer is 503
//! and nothing changed.
//!
//! A new virtual cluster must not capture what already exists: when topics, consumer groups or transactional
//! ids on the active cluster start with its prefix, the tenant would read, write and delete them as its own (a
//! passthrough topic `canary` is tenant `can`'s topic `ary`). Creating it — explicitly or through a token
//! request — is refused with 409 naming a few of them, unless the body says `"adoptExisting": true`; 503 when
//! the active cluster cannot be asked. An existing virtual cluster is not checked again.

use bytes::Bytes;
use franzgate_api::vcluster::{StateRecord, VClusterError, VirtualCluster, VirtualClusters, check_captures_nothing};
use franzgate_auth::jwt::{TokenClaims, issue};
use http_body_util::Full;
use hyper::{Response, StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{AdminState, audit, error, json_response};
use crate::backend::client::TopicClient;
use crate::vcluster_state::{ChangeError, StateStore};

/// Ten years: a longer-lived token is almost certainly a mistake.
const MAX_LIFETIME_SECONDS: u64 = 10 * 365 * 24 * 3600;

/// The body of a token request.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct TokenRequest {
    /// How long the token is valid.
    life_time_seconds: u64,
    /// Create the virtual cluster (if new) even though existing names start with its prefix.
    #[serde(default)]
    adopt_existing: bool,
}

/// The (optional) body of a create request.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct CreateRequest {
    /// The backend prefix; the virtual cluster's name when absent.
    prefix: Option<String>,
    /// Create it even though existing names start with its prefix: the tenant takes them over.
    #[serde(default)]
    adopt_existing: bool,
}

/// Why a checked change was not made.
enum CheckedError {
    /// Refused by the state (or the state topic unavailable).
    Change(ChangeError),
    /// The active cluster could not be asked what exists: nothing changed.
    Backend(String),
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
    let adopt = request.adopt_existing;
    match change_checked(store, adopt, |vclusters| vclusters.plan_create(name, prefix)).await {
        Ok(created) => {
            audit(user, &action, created_outcome(created.is_some(), adopt));
            let status = if created.is_some() { StatusCode::CREATED } else { StatusCode::OK };
            let cluster = state.vclusters.get(name).map(|c| describe(&c)).unwrap_or(Value::Null);
            json_response(status, cluster)
        }
        Err(e) => checked_failed(user, &action, e),
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
    let adopt = request.adopt_existing;
    match change_checked(store, adopt, |vclusters| vclusters.plan_ensure(vcluster)).await {
        Ok(Some(_)) => audit(user, &format!("create vcluster {vcluster}"), created_outcome(true, adopt)),
        Ok(None) => {}
        Err(e) => return checked_failed(user, &action, e),
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

/// Makes the change `plan` decides, after checking that a virtual cluster it creates captures no name that
/// already exists on the active cluster (unless `adopt`). The registry's view decides whether to ask the cluster
/// at all; if the state re-read by the change shows a creation that view did not, the names are asked for and the
/// change planned again, so nothing is created unchecked.
async fn change_checked(
    store: &StateStore,
    adopt: bool,
    plan: impl Fn(&VirtualClusters) -> Result<Option<StateRecord>, VClusterError>,
) -> Result<Option<StateRecord>, CheckedError> {
    let mut existing = None;
    if !adopt && matches!(plan(&store.registry), Ok(Some(StateRecord::VirtualCluster { .. }))) {
        existing = Some(existing_names(store).await.map_err(CheckedError::Backend)?);
    }
    loop {
        let mut unchecked = false;
        let outcome = store
            .change(|vclusters| {
                let record = plan(vclusters)?;
                let prefix = match &record {
                    Some(StateRecord::VirtualCluster { prefix, .. }) if !adopt => prefix,
                    _ => return Ok(record),
                };
                match &existing {
                    Some(names) => check_captures_nothing(prefix, names.iter().map(|(k, n)| (*k, n.as_str())))?,
                    None => {
                        unchecked = true;
                        return Ok(None);
                    }
                }
                Ok(record)
            })
            .await
            .map_err(CheckedError::Change)?;
        if !unchecked {
            return Ok(outcome);
        }
        existing = Some(existing_names(store).await.map_err(CheckedError::Backend)?);
    }
}

/// Every topic, consumer group and transactional id on the active cluster, as (kind, name), asked with the
/// gateway's own connection settings and credentials for that cluster.
async fn existing_names(store: &StateStore) -> Result<Vec<(&'static str, String)>, String> {
    let active = store.selector.active();
    let client = TopicClient {
        security: store.backends.get(&active.cluster.name),
        cluster: active.cluster.clone(),
        topic: store.topic.clone(),
        timeout: store.timeout,
        max_frame: store.max_frame,
    };
    let names = client.existing_names().await.map_err(|e| {
        format!(
            "cannot list the topics, groups and transactional ids of the active cluster `{}`, nothing changed: {e}",
            active.cluster.name
        )
    })?;
    let topics = names.topics.into_iter().map(|n| ("topic", n));
    let groups = names.groups.into_iter().map(|n| ("consumer group", n));
    let transactional_ids = names.transactional_ids.into_iter().map(|n| ("transactional id", n));
    Ok(topics.chain(groups).chain(transactional_ids).collect())
}

fn created_outcome(created: bool, adopt: bool) -> &'static str {
    match (created, adopt) {
        (true, true) => "created, adopting whatever existed under its prefix",
        (true, false) => "created",
        (false, _) => "unchanged: exists",
    }
}

fn checked_failed(user: &str, action: &str, e: CheckedError) -> Response<Full<Bytes>> {
    match e {
        CheckedError::Change(e) => change_failed(user, action, e),
        CheckedError::Backend(message) => refused(user, action, StatusCode::SERVICE_UNAVAILABLE, message),
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
        ChangeError::Invalid(
            VClusterError::PrefixOverlap { .. }
            | VClusterError::PrefixChange { .. }
            | VClusterError::CapturesExisting { .. },
        ) => StatusCode::CONFLICT,
        ChangeError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        ChangeError::Conflict => StatusCode::CONFLICT,
    };
    refused(user, action, status, e.to_string())
}

fn refused(user: &str, action: &str, status: StatusCode, message: String) -> Response<Full<Bytes>> {
    audit(user, action, &format!("refused: {message}"));
    error(status, message)
}
