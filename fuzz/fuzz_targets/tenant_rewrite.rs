//! A tenant's request through the topic-prefix filter (prefix every name, or refuse), answered by the error
//! response a broker would build for it, whose names the filter then strips.
#![no_main]

mod common;

use bytes::{Bytes, BytesMut};
use franzgate::codec::parse_request;
use franzgate_api::{FilterError, KafkaRequest, KafkaResponse};
use franzgate_filters::topic_prefix::TopicPrefixLayer;
use libfuzzer_sys::fuzz_target;
use tower::{Layer, Service, ServiceExt};

fuzz_target!(|data: &[u8]| {
    let (session, registry) = common::tenant();
    let Ok(request) = parse_request(Bytes::copy_from_slice(data), &session) else { return };
    let inner = tower::service_fn(|mut request: KafkaRequest| async move {
        let version = request.api_version();
        let mut out = BytesMut::new();
        request.body.write_to(version, &mut out).map_err(FilterError::encode)?;
        request.error_response(7)
    });
    let mut service = TopicPrefixLayer::new(registry).layer(inner);
    let response: Result<KafkaResponse, FilterError> =
        futures::executor::block_on(async { service.ready().await?.call(request).await });
    if let Ok(response) = response {
        let _ = response.encode_frame(&mut BytesMut::new());
    }
});
