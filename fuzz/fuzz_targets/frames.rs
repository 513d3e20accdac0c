//! Frame splitting, request-header decode, lazy body decode and re-encode: what the session does with every
//! byte a client sends.
#![no_main]

mod common;

use bytes::BytesMut;
use franzgate::codec::{FrameDecoder, parse_request};
use libfuzzer_sys::fuzz_target;
use tokio_util::codec::Decoder;

fuzz_target!(|data: &[u8]| {
    let session = common::session();
    let mut buffer = BytesMut::from(data);
    let mut decoder = FrameDecoder::new(1 << 20);
    while let Ok(Some(frame)) = decoder.decode(&mut buffer) {
        let Ok(mut request) = parse_request(frame, &session) else { continue };
        let version = request.api_version();
        if request.body_mut().is_ok() {
            let mut out = BytesMut::new();
            let _ = request.body.write_to(version, &mut out);
        }
        // What a filter refusing the request would send back.
        let _ = request.error_response(31).map(|r| r.encode_frame(&mut BytesMut::new()));
    }
});
