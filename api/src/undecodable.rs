//! Messages the gateway could not decode, counted per direction, api key and version.
//!
//! A message a filter only inspects is forwarded as the bytes it came as even when it does not decode (a
//! broker newer than the gateway's codec, a tagged field the codec does not know): the filter gets an error and
//! carries on without the facts it wanted. Only a filter that must rewrite the message fails the request. Either
//! way the operator should know: the first failure of each api and version is logged, and every one is counted
//! (`franzgate_undecodable_messages_total`).

use std::collections::BTreeMap;
use std::sync::Mutex;

/// Which way a message travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Direction {
    /// From a client.
    Request,
    /// From a broker.
    Response,
}

impl Direction {
    /// `request` or `response`, for labels.
    pub fn name(self) -> &'static str {
        match self {
            Self::Request => "request",
            Self::Response => "response",
        }
    }
}

/// Failures per (direction, api key, version).
static COUNTS: Mutex<BTreeMap<(Direction, i16, i16), u64>> = Mutex::new(BTreeMap::new());

/// Counts one message that did not decode; logs the first of its kind.
pub fn record(direction: Direction, api_key: i16, version: i16, reason: &str) {
    let mut counts = COUNTS.lock().unwrap_or_else(|p| p.into_inner());
    let count = counts.entry((direction, api_key, version)).or_default();
    *count += 1;
    if *count == 1 {
        let api = kafka_protocol::messages::ApiKey::try_from(api_key)
            .map_or_else(|_| format!("api key {api_key}"), |k| format!("{k:?}"));
        tracing::warn!(
            direction = direction.name(),
            api = %api,
            version,
            %reason,
            "a message did not decode: forwarded unchanged where filters only inspect it; a filter that must rewrite \
             it fails the request (logged once per api and version, counted in franzgate_undecodable_messages_total)"
        );
    }
}

/// Every count so far.
pub fn counts() -> Vec<((Direction, i16, i16), u64)> {
    COUNTS.lock().unwrap_or_else(|p| p.into_inner()).iter().map(|(k, v)| (*k, *v)).collect()
}
