//! Service-account tokens: HS256 JSON Web Tokens with claims `username`, `vcluster` and `exp`, signed with the
//! gateway's user-pool secret. Only HS256 is accepted: `alg: none` and every other algorithm are refused
//! before any claim is read.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

/// What a token says about its holder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenClaims {
    /// The service account; must equal the SASL PLAIN user name it is presented with.
    pub username: String,
    /// The virtual cluster the account belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vcluster: Option<String>,
    /// Expiry, unix seconds.
    pub exp: u64,
    /// The service account's generation when the token was issued (claim `gen`, absent means 0): revoking an
    /// account bumps its generation, so older tokens stop working.
    #[serde(default, rename = "gen", skip_serializing_if = "is_zero")]
    pub generation: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// Why a token is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwtError {
    /// Not a JWT.
    #[error("malformed token: {0}")]
    Malformed(String),
    /// Signed with something other than HS256 (or not signed: `none`).
    #[error("unsupported token algorithm `{0}`: only HS256 is accepted")]
    UnsupportedAlgorithm(String),
    /// The signature does not verify with the gateway's secret.
    #[error("token signature does not verify")]
    BadSignature,
    /// Past its expiry.
    #[error("token expired at {exp} (unix seconds)")]
    Expired {
        /// The token's `exp`.
        exp: u64,
    },
    /// A required claim is absent.
    #[error("token has no `{0}` claim")]
    MissingClaim(&'static str),
    /// No secret configured.
    #[error("no token secret configured")]
    EmptySecret,
}

#[derive(Deserialize)]
struct Header {
    alg: Option<String>,
}

fn mac(secret: &[u8]) -> Result<Hmac<Sha256>, JwtError> {
    if secret.is_empty() {
        return Err(JwtError::EmptySecret);
    }
    Hmac::<Sha256>::new_from_slice(secret).map_err(|_| JwtError::EmptySecret)
}

/// Signs `claims` with `secret` (HS256).
pub fn issue(secret: &[u8], claims: &TokenClaims) -> Result<String, JwtError> {
    let header = B64URL.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    let payload = serde_json::to_vec(claims).map_err(|e| JwtError::Malformed(e.to_string()))?;
    let signing_input = format!("{header}.{}", B64URL.encode(payload));
    let mut mac = mac(secret)?;
    mac.update(signing_input.as_bytes());
    Ok(format!("{signing_input}.{}", B64URL.encode(mac.finalize().into_bytes())))
}

/// Verifies a token at unix time `now_unix`: the algorithm must be HS256 (`none` and every other algorithm are
/// refused, signature or not), then the signature (constant time), and only then are claims read. `exp` is
/// required and must lie in the future.
pub fn verify(secret: &[u8], token: &str, now_unix: u64) -> Result<TokenClaims, JwtError> {
    let parts: Vec<&str> = token.trim().split('.').collect();
    let [header, payload, signature] = parts.as_slice() else {
        return Err(JwtError::Malformed("expected three dot-separated parts".into()));
    };
    let decoded: Header = decode_json(header, "header")?;
    match decoded.alg.as_deref() {
        Some("HS256") => {}
        Some(other) => return Err(JwtError::UnsupportedAlgorithm(other.to_string())),
        None => return Err(JwtError::Malformed("header has no `alg`".into())),
    }
    let signature = B64URL.decode(signature).map_err(|_| JwtError::Malformed("signature is not base64url".into()))?;
    let mut mac = mac(secret)?;
    mac.update(header.as_bytes());
    mac.update(b".");
    mac.update(payload.as_bytes());
    mac.verify_slice(&signature).map_err(|_| JwtError::BadSignature)?;
    let claims: serde_json::Value = decode_json(payload, "payload")?;
    // Checked by name first so a missing claim is reported as such rather than as a serde message.
    for claim in ["username", "exp"] {
        if claims.get(claim).is_none_or(serde_json::Value::is_null) {
            return Err(JwtError::MissingClaim(claim));
        }
    }
    let claims: TokenClaims =
        serde_json::from_value(claims).map_err(|_| JwtError::Malformed("claims have the wrong types".into()))?;
    if claims.exp <= now_unix {
        return Err(JwtError::Expired { exp: claims.exp });
    }
    Ok(claims)
}

/// Whether `text` is shaped like a JWT: three dot-separated base64url parts, the first a JSON header naming an
/// `alg`. Lets a SASL PLAIN password be told apart from a token. The signature part may be empty so that an
/// unsigned (`alg: none`) token is still recognised, and then refused by [`verify`] as what it is.
pub fn looks_like_jwt(text: &str) -> bool {
    let parts: Vec<&str> = text.split('.').collect();
    let [header, payload, signature] = parts.as_slice() else {
        return false;
    };
    let base64url = |p: &str| p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    !header.is_empty()
        && !payload.is_empty()
        && [header, payload, signature].iter().all(|p| base64url(p))
        && decode_json::<serde_json::Value>(header, "header").is_ok_and(|h| h.get("alg").is_some())
}

fn decode_json<T: serde::de::DeserializeOwned>(part: &str, what: &str) -> Result<T, JwtError> {
    let bytes = B64URL.decode(part).map_err(|_| JwtError::Malformed(format!("{what} is not base64url")))?;
    serde_json::from_slice(&bytes).map_err(|_| JwtError::Malformed(format!("{what} is not JSON")))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"pool secret";
    const NOW: u64 = 1_800_000_000;

    fn claims(exp: u64) -> TokenClaims {
        TokenClaims { username: "sa".into(), vcluster: Some("teamA".into()), exp, generation: 0 }
    }

    #[test]
    fn a_valid_token_verifies_and_carries_its_claims() {
        let token = issue(SECRET, &claims(NOW + 60)).expect("issue");
        assert!(looks_like_jwt(&token));
        assert_eq!(verify(SECRET, &token, NOW), Ok(claims(NOW + 60)));
        let header = token.split('.').next().expect("header");
        assert_eq!(B64URL.decode(header).expect("b64"), br#"{"alg":"HS256","typ":"JWT"}"#);
        let bare = TokenClaims { vcluster: None, ..claims(NOW + 60) };
        let token = issue(SECRET, &bare).expect("issue");
        let payload = B64URL.decode(token.split('.').nth(1).expect("payload")).expect("b64");
        assert_eq!(payload, format!(r#"{{"username":"sa","exp":{}}}"#, NOW + 60).into_bytes(), "no vcluster key");
        assert_eq!(verify(SECRET, &format!(" {token}\n"), NOW), Ok(bare), "surrounding whitespace tolerated");
    }

    #[test]
    fn tampering_wrong_secrets_and_expiry_are_refused() {
        let token = issue(SECRET, &claims(NOW + 60)).expect("issue");
        assert_eq!(verify(b"other", &token, NOW), Err(JwtError::BadSignature));
        let parts: Vec<&str> = token.split('.').collect();
        let forged_payload = B64URL.encode(serde_json::to_vec(&claims(NOW + 999_999)).expect("json"));
        let tampered = format!("{}.{forged_payload}.{}", parts[0], parts[2]);
        assert_eq!(verify(SECRET, &tampered, NOW), Err(JwtError::BadSignature));
        let expired = issue(SECRET, &claims(NOW - 1)).expect("issue");
        assert_eq!(verify(SECRET, &expired, NOW), Err(JwtError::Expired { exp: NOW - 1 }));
        assert_eq!(issue(b"", &claims(NOW)), Err(JwtError::EmptySecret));
    }

    #[test]
    fn unsigned_and_other_algorithms_are_refused_before_any_claim_is_trusted() {
        let payload = B64URL.encode(serde_json::to_vec(&claims(NOW + 60)).expect("json"));
        for alg in ["none", "HS512", "RS256"] {
            let header = B64URL.encode(format!(r#"{{"alg":"{alg}","typ":"JWT"}}"#));
            let token = format!("{header}.{payload}.");
            assert!(looks_like_jwt(&token), "recognised as a token, to be refused as one");
            assert_eq!(verify(SECRET, &token, NOW), Err(JwtError::UnsupportedAlgorithm(alg.into())));
        }
    }

    #[test]
    fn missing_claims_and_garbage_are_malformed() {
        let signed = |payload: &[u8]| {
            let input = format!("{}.{}", B64URL.encode(br#"{"alg":"HS256"}"#), B64URL.encode(payload));
            let mut mac = mac(SECRET).expect("mac");
            mac.update(input.as_bytes());
            format!("{input}.{}", B64URL.encode(mac.finalize().into_bytes()))
        };
        assert_eq!(verify(SECRET, &signed(br#"{"username":"sa"}"#), NOW), Err(JwtError::MissingClaim("exp")));
        let null_exp = signed(br#"{"username":"sa","exp":null}"#);
        assert_eq!(verify(SECRET, &null_exp, NOW), Err(JwtError::MissingClaim("exp")));
        let no_user = signed(format!(r#"{{"exp":{}}}"#, NOW + 60).as_bytes());
        assert_eq!(verify(SECRET, &no_user, NOW), Err(JwtError::MissingClaim("username")));
        let text_exp = signed(br#"{"username":"sa","exp":"soon"}"#);
        assert!(matches!(verify(SECRET, &text_exp, NOW), Err(JwtError::Malformed(_))));
        assert_eq!(verify(b"", &null_exp, NOW), Err(JwtError::EmptySecret));
        for garbage in ["", "a.b", "a.b.c.d", "!!!.x.y", "password"] {
            assert!(matches!(verify(SECRET, garbage, NOW), Err(JwtError::Malformed(_))), "{garbage}");
            assert!(!looks_like_jwt(garbage));
        }
        assert!(!looks_like_jwt("my.pass.word"), "dots alone do not make a token");
        let header = B64URL.encode(br#"{"alg":"HS256"}"#);
        assert!(!looks_like_jwt(&format!("{header}.pay load.sig")), "not base64url");
        assert!(!looks_like_jwt(&format!("{header}..sig")), "empty payload");
    }
}
