//! Config parsing and validation: the YAML file and the clusters' Kafka properties.
#![no_main]

use franzgate::GatewayConfig;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(config) = GatewayConfig::from_yaml(text, "fuzz.yaml") {
        let _ = config.built_clusters("fuzz.yaml");
    }
});
