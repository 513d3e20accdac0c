use super::*;

const CLIENT_NONCE: &str = "rOprNGfwEbeRWgbNEkqO";
const SERVER_NONCE: &str = "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
const SALT: &str = "W22ZaJ0SNY7soEsUEjb6gQ==";

fn rfc7677_credential() -> ScramCredential {
    let salt = B64.decode(SALT).expect("salt");
    ScramCredential::from_password(ScramMechanism::Sha256, "pencil", &salt, 4096)
}

#[test]
fn the_rfc_7677_vector_passes_on_both_sides() {
    let mut client = ScramClient::with_nonce(ScramMechanism::Sha256, "user", "pencil", CLIENT_NONCE);
    let mut server = ScramServer::with_nonce(ScramMechanism::Sha256, SERVER_NONCE);
    let first = client.client_first();
    assert_eq!(first, format!("n,,n=user,r={CLIENT_NONCE}").into_bytes());
    let server_first = server.client_first(&first, |u| (u == "user").then(rfc7677_credential)).expect("first");
    assert_eq!(String::from_utf8_lossy(&server_first), format!("r={CLIENT_NONCE}{SERVER_NONCE},s={SALT},i=4096"));
    let client_final = client.server_first(&server_first).expect("final");
    assert_eq!(
        String::from_utf8_lossy(&client_final),
        format!("c=biws,r={CLIENT_NONCE}{SERVER_NONCE},p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=")
    );
    let (server_final, user) = server.client_final(&client_final).expect("authenticated");
    assert_eq!(user, "user");
    assert_eq!(server_final, b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=".to_vec());
    client.server_final(&server_final).expect("server verified");
}

fn exchange(mechanism: ScramMechanism, stored: &str, user: &str, password: &str) -> Result<String, ScramError> {
    let credential = ScramCredential::from_password(mechanism, stored, b"0123456789abcdef", 4096);
    let mut client = ScramClient::new(mechanism, user, password)?;
    let mut server = ScramServer::new(mechanism);
    let server_first = server.client_first(&client.client_first(), |u| (u == "alice").then(|| credential.clone()))?;
    let client_final = client.server_first(&server_first)?;
    let (server_final, user) = server.client_final(&client_final)?;
    client.server_final(&server_final)?;
    Ok(user)
}

#[test]
fn both_mechanisms_round_trip_and_refuse_wrong_passwords_and_unknown_users_alike() {
    for m in [ScramMechanism::Sha256, ScramMechanism::Sha512] {
        assert_eq!(exchange(m, "pw", "alice", "pw"), Ok("alice".into()));
        assert_eq!(exchange(m, "pw", "alice", "wrong"), Err(ScramError::AuthenticationFailed));
        assert_eq!(exchange(m, "pw", "mallory", "pw"), Err(ScramError::AuthenticationFailed));
    }
}

#[test]
fn unknown_users_get_a_stable_plausible_challenge() {
    let first = b"n,,n=ghost,r=abc";
    let a = ScramServer::with_nonce(ScramMechanism::Sha256, "X").client_first(first, |_| None).expect("first");
    let b = ScramServer::with_nonce(ScramMechanism::Sha256, "X").client_first(first, |_| None).expect("first");
    assert_eq!(a, b, "the same salt each time, as for a real user");
}

#[test]
fn an_unknown_users_challenge_has_the_shape_of_the_real_users_credentials() {
    // A real user's server-first shows its salt length and iteration count; an unknown user's must look alike.
    let real = ScramCredential::from_password(ScramMechanism::Sha512, "pw", &[7u8; 40], 8192);
    let shown = |user: &str| {
        let mut server = ScramServer::new(ScramMechanism::Sha512).with_stand_in(real.shape());
        let first = format!("n,,n={user},r=abc");
        let server_first = server.client_first(first.as_bytes(), |u| (u == "alice").then(|| real.clone()));
        let server_first = String::from_utf8(server_first.expect("first")).expect("utf-8");
        let mut parts = server_first.split(',').skip(1);
        let salt = parts.next().and_then(|s| s.strip_prefix("s=")).expect("salt");
        let iterations = parts.next().and_then(|i| i.strip_prefix("i=")).expect("iterations").to_string();
        (B64.decode(salt).expect("base64").len(), iterations)
    };
    assert_eq!(shown("alice"), (40, "8192".to_string()));
    assert_eq!(shown("ghost"), shown("alice"), "an unknown user's salt length and iterations match");
    let stand_in = ScramCredential::stand_in(ScramMechanism::Sha256, "ghost", real.shape());
    assert_eq!(stand_in.shape(), real.shape());
    assert_ne!(stand_in.salt, ScramCredential::stand_in(ScramMechanism::Sha256, "ghosts", real.shape()).salt);
}

#[test]
fn tampered_nonces_and_proofs_fail() {
    let credential = rfc7677_credential();
    let start = || {
        let mut client = ScramClient::with_nonce(ScramMechanism::Sha256, "user", "pencil", CLIENT_NONCE);
        let mut server = ScramServer::new(ScramMechanism::Sha256);
        let first = server.client_first(&client.client_first(), |_| Some(credential.clone())).expect("first");
        let last = String::from_utf8(client.server_first(&first).expect("final")).expect("utf-8");
        (server, last)
    };
    let (mut server, last) = start();
    assert_eq!(server.client_final(last.replacen(",r=", ",r=x", 1).as_bytes()), Err(ScramError::NonceMismatch));
    let (mut server, last) = start();
    let (head, proof) = last.rsplit_once(",p=").expect("proof");
    let mut bytes = B64.decode(proof).expect("b64");
    bytes[0] ^= 1;
    let tampered = format!("{head},p={}", B64.encode(bytes));
    assert_eq!(server.client_final(tampered.as_bytes()), Err(ScramError::AuthenticationFailed));
    let (mut server, last) = start();
    let rebound = last.replacen("c=biws", "c=eSws", 1);
    assert!(matches!(server.client_final(rebound.as_bytes()), Err(ScramError::Malformed(_))));
}

#[test]
fn channel_binding_extensions_malformed_and_out_of_order_messages_are_refused() {
    let lookup = |_: &str| Some(rfc7677_credential());
    let first = |m: &[u8]| ScramServer::new(ScramMechanism::Sha256).client_first(m, lookup);
    assert_eq!(first(b"p=tls-unique,,n=user,r=abc"), Err(ScramError::ChannelBindingUnsupported));
    assert!(matches!(first(b"n,,n=user,r=abc,tokenauth=true"), Err(ScramError::UnsupportedExtension(_))));
    assert!(matches!(first(b"n,,m=x,n=user,r=abc"), Err(ScramError::UnsupportedExtension(_))));
    for bad in [&b""[..], b"n,,", b"n,,r=abc", b"n,,n=user", b"x,,n=user,r=a", b"n,,n=us=er,r=a", b"\xff,,n=a,r=b"] {
        assert!(matches!(first(bad), Err(ScramError::Malformed(_))), "{bad:?}");
    }
    assert!(first(b"n,a=user,n=user,r=abc").is_ok(), "authzid equal to the user");
    assert!(first(b"n,a=other,n=user,r=abc").is_err());
    let mut server = ScramServer::new(ScramMechanism::Sha256);
    assert_eq!(server.client_final(b"c=biws,r=a,p=b"), Err(ScramError::OutOfOrder));
    let mut client = ScramClient::with_nonce(ScramMechanism::Sha256, "user", "pencil", "abc");
    assert_eq!(client.server_first(b"r=abcd,s=AAAA,i=4096"), Err(ScramError::OutOfOrder));
    client.client_first();
    assert_eq!(client.server_first(b"r=zzzz,s=AAAA,i=4096"), Err(ScramError::NonceMismatch));
    let mut client = ScramClient::with_nonce(ScramMechanism::Sha256, "user", "pencil", "abc");
    client.client_first();
    assert_eq!(client.server_first(b"r=abcd,s=AAAA,i=1000"), Err(ScramError::TooFewIterations(1000)));
    let mut client = ScramClient::with_nonce(ScramMechanism::Sha256, "user", "pencil", "abc");
    client.client_first();
    assert_eq!(client.server_first(b"e=unknown-user"), Err(ScramError::ServerError("unknown-user".into())));
}

#[test]
fn user_names_are_escaped_and_unescaped() {
    let mut client = ScramClient::with_nonce(ScramMechanism::Sha256, "a,b=c", "pw", "n1");
    assert_eq!(client.client_first(), b"n,,n=a=2Cb=3Dc,r=n1".to_vec());
    let mut seen = String::new();
    let _ = ScramServer::new(ScramMechanism::Sha256).client_first(b"n,,n=a=2Cb=3Dc,r=n1", |u| {
        seen = u.to_string();
        None
    });
    assert_eq!(seen, "a,b=c");
}

#[test]
fn credentials_round_trip_as_text_and_verify_plain_passwords() {
    let credential = ScramCredential::generate(ScramMechanism::Sha512, "s3cret", 4096).expect("generate");
    let text = credential.to_string();
    assert!(text.starts_with("SCRAM-SHA-512$4096:"), "{text}");
    assert_eq!(ScramCredential::parse(&text), Ok(credential.clone()));
    assert!(credential.verify_password("s3cret"));
    assert!(!credential.verify_password("s3cre"));
    assert!(!format!("{credential:?}").contains(&B64.encode(&credential.stored_key)), "Debug hides keys");
    for bad in
        ["", "SCRAM-SHA-1$4096:AA==$AA==:AA==", "SCRAM-SHA-256$x:AA==$AA==:AA==", "SCRAM-SHA-256$4096:AA==$AA==:AA=="]
    {
        assert!(ScramCredential::parse(bad).is_err(), "{bad}");
    }
    let few = ScramCredential::from_password(ScramMechanism::Sha256, "pw", b"salt", 100).to_string();
    assert_eq!(ScramCredential::parse(&few), Err(ScramError::TooFewIterations(100)));
}

#[test]
fn gs2_variants_and_bad_nonces() {
    let lookup = |_: &str| Some(rfc7677_credential());
    // `y`: the client could bind but believes we cannot; its final message echoes `y,,`.
    let mut server = ScramServer::with_nonce(ScramMechanism::Sha256, SERVER_NONCE);
    server.client_first(format!("y,,n=user,r={CLIENT_NONCE}").as_bytes(), lookup).expect("y flag accepted");
    let echo_n = format!("c=biws,r={CLIENT_NONCE}{SERVER_NONCE},p=AAAA");
    assert!(matches!(server.client_final(echo_n.as_bytes()), Err(ScramError::Malformed(_))), "must echo y,,");
    let first = |m: &[u8]| ScramServer::new(ScramMechanism::Sha256).client_first(m, lookup);
    assert!(matches!(first(b"n,user,n=user,r=abc"), Err(ScramError::Malformed(_))), "authzid without a=");
    assert!(matches!(first("n,,n=user,r=n\u{e9}".as_bytes()), Err(ScramError::Malformed(_))), "non-ASCII nonce");
    assert!(matches!(first(b"n,,n=user,r="), Err(ScramError::Malformed(_))), "empty nonce");
    // A server that only echoes our nonce has not contributed its own.
    let mut client = ScramClient::with_nonce(ScramMechanism::Sha256, "user", "pencil", "abc");
    client.client_first();
    assert_eq!(client.server_first(b"r=abc,s=AAAA,i=4096"), Err(ScramError::NonceMismatch));
    let mut client = ScramClient::with_nonce(ScramMechanism::Sha256, "user", "pencil", "abc");
    client.client_first();
    assert!(matches!(client.server_first(b"r=abcd,s=!!,i=4096"), Err(ScramError::Malformed(_))), "salt not b64");
}

#[test]
fn the_client_checks_the_server_signature_and_relays_server_errors() {
    let start = || {
        let mut client = ScramClient::with_nonce(ScramMechanism::Sha256, "user", "pencil", CLIENT_NONCE);
        assert_eq!(client.client_first(), client.client_first(), "repeating client_first changes nothing");
        let server_first = format!("r={CLIENT_NONCE}{SERVER_NONCE},s={SALT},i=4096");
        client.server_first(server_first.as_bytes()).expect("final");
        client
    };
    let mut client = start();
    let forged = b"v=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
    assert_eq!(client.server_final(forged), Err(ScramError::ServerSignatureMismatch));
    assert_eq!(client.server_final(forged), Err(ScramError::OutOfOrder), "one attempt per exchange");
    assert_eq!(client.client_first(), format!("n,,n=user,r={CLIENT_NONCE}").into_bytes());
    assert_eq!(client.server_first(b"r=x,s=AAAA,i=4096"), Err(ScramError::OutOfOrder), "no restart after the end");
    let mut client = start();
    assert_eq!(client.server_final(b"e=invalid-proof"), Err(ScramError::ServerError("invalid-proof".into())));
    let mut client = start();
    assert!(matches!(client.server_final(b"x=1"), Err(ScramError::Malformed(_))));
    let mut client = start();
    client.server_final(b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=").expect("the RFC signature");
}

#[test]
fn mechanism_names_and_error_messages() {
    assert_eq!(ScramMechanism::from_name("scram-sha-512"), Some(ScramMechanism::Sha512));
    assert_eq!(ScramMechanism::from_name("SCRAM-SHA-256").map(ScramMechanism::name), Some("SCRAM-SHA-256"));
    assert_eq!(ScramMechanism::from_name("PLAIN"), None);
    // A proof or token smuggled into an attribute never reaches the error text.
    let mut server = ScramServer::new(ScramMechanism::Sha256);
    let err = server.client_first(b"n,,n=user,r=abc,tokenauth=s3cr3t-token", |_| None).expect_err("refused");
    assert_eq!(err, ScramError::UnsupportedExtension("tokenauth".into()));
    assert!(!err.to_string().contains("s3cr3t"));
}
