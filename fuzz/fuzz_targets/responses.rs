//! A broker's response body for any api key and version, through the response rewrites: metadata rewrite
//! (gateway addresses and node ids) and, for a tenant, the topic-prefix strip; then re-encoded.
#![no_main]

mod common;

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use franzgate::codec::parse_request;
use franzgate_api::topology::AdvertisedAddress;
use franzgate_api::{FilterError, KafkaRequest, KafkaResponse};
use franzgate_filters::metadata_rewrite::MetadataRewriteLayer;
use franzgate_filters::topic_prefix::TopicPrefixLayer;
use libfuzzer_sys::fuzz_target;
use tower::{Layer, Service, ServiceExt};

fuzz_target!(|data: &[u8]| {
    // [api key: 2][version: 2][response body...]
    if data.len() < 4 {
        return;
    }
    let (key, version) = (i16::from_be_bytes([data[0], data[1]]), i16::from_be_bytes([data[2], data[3]]));
    let body = Bytes::copy_from_slice(&data[4..]);
    // The smallest request of that key and version: a header in the version the api key implies, no body (the
    // filters read only the header of these requests).
    let Ok(api) = kafka_protocol::messages::ApiKey::try_from(key) else { return };
    let range = api.valid_versions();
    if version < range.min || version > range.max {
        return;
    }
    let header = kafka_protocol::messages::RequestHeader::default()
        .with_request_api_key(key)
        .with_request_api_version(version)
        .with_correlation_id(1);
    let mut frame = BytesMut::new();
    if kafka_protocol::protocol::Encodable::encode(&header, &mut frame, api.request_header_version(version)).is_err() {
        return;
    }
    let frame = frame.freeze();
    let (session, registry) = common::tenant();
    let Ok(request) = parse_request(frame, &session) else { return };
    let inner = tower::service_fn(move |request: KafkaRequest| {
        let body = body.clone();
        async move {
            Ok::<_, FilterError>(KafkaResponse::from_wire(
                request.api_key_raw(),
                request.api_version(),
                request.correlation_id(),
                Bytes::new(),
                body,
            ))
        }
    });
    let advertised = Arc::new(AdvertisedAddress::ports("gateway", 9092, 8));
    let metadata = MetadataRewriteLayer::new(advertised, Some("franzgate".into()));
    let mut service = metadata.layer(TopicPrefixLayer::new(registry).layer(inner));
    let response = futures::executor::block_on(async { service.ready().await?.call(request).await });
    if let Ok(response) = response {
        let _ = response.encode_frame(&mut BytesMut::new());
    }
});
