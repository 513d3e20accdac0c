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
    // The smallest request of that key and version: a header, no body (the filters read only the header).
    let mut frame = Vec::new();
    frame.extend_from_slice(&key.to_be_bytes());
    frame.extend_from_slice(&version.to_be_bytes());
    frame.extend_from_slice(&1i32.to_be_bytes());
    frame.extend_from_slice(&(-1i16).to_be_bytes());
    let (session, registry) = common::tenant();
    let Ok(request) = parse_request(Bytes::from(frame), &session) else { return };
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
