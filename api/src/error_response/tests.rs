//! Shared helpers for the `error_response` tests; the tests live in the submodules.
//!
//! Every response is checked on the wire: encoded at the request's version with
//! `ResponseKind::encode` and decoded back with `ResponseKind::decode`, then inspected.

use super::error_response;
use bytes::{Bytes, BytesMut};
use kafka_protocol::ResponseError;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, StrBytes};

const CODE: i16 = ResponseError::TopicAuthorizationFailed.code();

/// Encodes `response` at `version`, decodes it back as `key`'s response, and checks that the
/// decoder consumed exactly what the encoder wrote.
fn round_trip(key: ApiKey, response: &ResponseKind, version: i16) -> ResponseKind {
    let mut buf = BytesMut::new();
    response.encode(&mut buf, version).unwrap_or_else(|e| panic!("{key:?} v{version}: encode failed: {e:#}"));
    let mut bytes = buf.freeze();
    let decoded = ResponseKind::decode(key, &mut bytes, version)
        .unwrap_or_else(|e| panic!("{key:?} v{version}: decode failed: {e:#}"));
    assert!(bytes.is_empty(), "{key:?} v{version}: {} trailing bytes", bytes.len());
    decoded
}

/// `error_response` followed by `round_trip`, unwrapped to the expected response type.
macro_rules! respond {
    ($variant:ident, $request:expr, $version:expr) => {{
        let version: i16 = $version;
        let response = error_response(&RequestKind::$variant($request), version, CODE);
        match round_trip(ApiKey::$variant, &response, version) {
            ResponseKind::$variant(decoded) => decoded,
            other => panic!("expected {} response, got {other:?}", stringify!($variant)),
        }
    }};
}

fn topic(name: &'static str) -> TopicName {
    StrBytes::from_static_str(name).into()
}

fn group(name: &'static str) -> GroupId {
    StrBytes::from_static_str(name).into()
}

/// A distinct non-nil UUID. kafka-protocol does not re-export `uuid` (and the crate has no
/// `uuid` dependency), so decode a message whose body is just a UUID and take it from there.
macro_rules! uuid {
    ($seed:expr) => {{
        let mut body = vec![$seed; 16];
        body.push(0); // no tagged fields
        GetTelemetrySubscriptionsRequest::decode(&mut Bytes::from(body), 0)
            .expect("a 16-byte UUID body decodes")
            .client_instance_id
    }};
}

fn fetch_request(by_id: bool) -> FetchRequest {
    use fetch_request::{FetchPartition, FetchTopic};
    let topics = [("clicks", 3u8, vec![0, 2, 4]), ("views", 4u8, vec![1])]
        .into_iter()
        .map(|(name, seed, partitions)| {
            let mut t = FetchTopic::default()
                .with_partitions(partitions.into_iter().map(|p| FetchPartition::default().with_partition(p)).collect());
            if by_id {
                t.topic_id = uuid!(seed);
            } else {
                t.topic = topic(name);
            }
            t
        })
        .collect();
    FetchRequest::default().with_topics(topics)
}

fn encoded(key: ApiKey, response: &ResponseKind, version: i16) -> Bytes {
    let mut buf = BytesMut::new();
    response.encode(&mut buf, version).unwrap_or_else(|e| panic!("{key:?} v{version}: encode failed: {e:#}"));
    buf.freeze()
}

mod every_api;
mod populated;
mod representative;
