//! `GET /metrics` (Prometheus text) and `GET /admin/chargeback/v1` (JSON usage report).

use bytes::Bytes;
use franzgate_api::usage::{Usage, UsageKey};
use http_body_util::Full;
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::{Response, StatusCode};
use serde_json::{Value, json};

use super::{AdminState, json_response};
use crate::metrics::Sources;

/// Every metric, in the Prometheus text exposition format.
pub fn metrics(state: &AdminState) -> Response<Full<Bytes>> {
    let accepted = state.accepted.lock().map(|a| a.clone()).unwrap_or_default();
    let fleet = state.fleet.as_deref();
    let sources = Sources { selector: &state.selector, auth: &state.auth_stats, usage: &state.usage, accepted, fleet };
    let mut response = Response::new(Full::new(Bytes::from(state.metrics.render(&sources))));
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"));
    response
}

/// Usage since start and per window, one entry per {cluster, vcluster, principal, client id, topic}.
pub fn report(state: &AdminState) -> Response<Full<Bytes>> {
    let snapshot = state.usage.snapshot();
    let rows = |usage: &std::collections::BTreeMap<UsageKey, Usage>| -> Vec<Value> {
        usage.iter().map(|(key, u)| row(key, u)).collect()
    };
    let windows: Vec<Value> = snapshot
        .windows
        .iter()
        .map(|(start, usage)| json!({"startEpochSeconds": start, "usage": rows(usage)}))
        .collect();
    json_response(
        StatusCode::OK,
        json!({
            "windowSeconds": snapshot.window_seconds,
            "totals": rows(&snapshot.totals),
            "windows": windows,
            "foldedTopics": snapshot.folded_topics,
            "foldedClientIds": snapshot.folded_client_ids,
        }),
    )
}

/// One usage row as JSON: the labels and the counters (also the records of the chargeback flush).
pub(crate) fn row(key: &UsageKey, u: &Usage) -> Value {
    json!({
        "cluster": key.cluster,
        "vcluster": key.vcluster,
        "principal": key.principal,
        "clientId": key.client_id,
        "topic": key.topic,
        "producedBytes": u.produced_bytes,
        "producedBatches": u.produced_batches,
        "producedRecords": u.produced_records,
        "produceRequests": u.produce_requests,
        "consumedBytes": u.consumed_bytes,
        "consumedBatches": u.consumed_batches,
        "consumedRecords": u.consumed_records,
        "fetchResponses": u.fetch_responses,
    })
}
