//! Record batches as the chargeback filter reads them (headers only) and as the state-topic reader decodes
//! them (whole batches).
#![no_main]

use bytes::Bytes;
use franzgate_api::usage::BatchStats;
use kafka_protocol::records::RecordBatchDecoder;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = BatchStats::of(data);
    let mut bytes = Bytes::copy_from_slice(data);
    while !bytes.is_empty() {
        if RecordBatchDecoder::decode(&mut bytes).is_err() {
            break;
        }
    }
});
