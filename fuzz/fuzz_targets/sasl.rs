//! SASL message parsing: PLAIN, both sides of SCRAM, service-account tokens, stored credentials.
#![no_main]

use franzgate_auth::jwt;
use franzgate_auth::plain::parse_plain;
use franzgate_auth::scram::{ScramClient, ScramCredential, ScramMechanism, ScramServer};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = parse_plain(data);
    // Split the input in two messages: a client-first and a client-final (or a server-first).
    let cut = data.iter().position(|b| *b == 0xff).unwrap_or(data.len());
    let (first, rest) = data.split_at(cut);
    let last = rest.get(1..).unwrap_or_default();
    for mechanism in [ScramMechanism::Sha256, ScramMechanism::Sha512] {
        let mut server = ScramServer::new(mechanism);
        let credential = ScramCredential::from_password(mechanism, "pw", b"salt", 1);
        if server.client_first(first, |_| Some(credential.clone())).is_ok() {
            let _ = server.client_final(last);
        }
        if let Ok(mut client) = ScramClient::new(mechanism, "user", "pw") {
            let _ = client.client_first();
            let _ = client.server_first(first);
        }
    }
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = jwt::looks_like_jwt(text);
        let _ = jwt::verify(b"secret", text, 1_700_000_000);
        let _ = ScramCredential::parse(text);
    }
});
