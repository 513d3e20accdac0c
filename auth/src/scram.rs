//! SCRAM-SHA-256 and SCRAM-SHA-512 (RFC 5802, RFC 7677) as Kafka uses them: no channel binding, user names
//! escaped with `=2C` / `=3D`, at least 4096 iterations.

mod client;
mod server;

pub use client::ScramClient;
pub use server::ScramServer;

use std::sync::OnceLock;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256, Sha512};
use subtle::ConstantTimeEq;

/// Kafka's minimum iteration count; Kafka clients refuse fewer.
pub const MIN_ITERATIONS: u32 = 4096;
/// Random bytes in a nonce (base64-encoded on the wire).
const NONCE_BYTES: usize = 24;
/// Bytes of salt in a generated credential.
const GENERATED_SALT_BYTES: usize = 32;

/// The hash function of a SCRAM mechanism.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ScramMechanism {
    /// SCRAM-SHA-256.
    Sha256,
    /// SCRAM-SHA-512.
    Sha512,
}

/// Why a SCRAM exchange failed. Messages never contain passwords, keys or proofs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScramError {
    /// A message does not follow the SCRAM grammar.
    #[error("malformed SCRAM message: {0}")]
    Malformed(String),
    /// A message arrived at the wrong step.
    #[error("SCRAM message out of order")]
    OutOfOrder,
    /// The client asked for channel binding, which Kafka does not use.
    #[error("channel binding is not supported")]
    ChannelBindingUnsupported,
    /// The client used an extension the gateway does not support (delegation tokens, say).
    #[error("unsupported SCRAM extension `{0}`")]
    UnsupportedExtension(String),
    /// The nonce does not continue the exchange's nonce.
    #[error("SCRAM nonce mismatch")]
    NonceMismatch,
    /// Wrong password or unknown user (deliberately indistinguishable).
    #[error("Invalid username or password")]
    AuthenticationFailed,
    /// Fewer iterations than Kafka allows, asked by a server or found in a stored credential.
    #[error("{0} iterations is below the minimum of 4096")]
    TooFewIterations(u32),
    /// The server's final signature is wrong: it does not know the password.
    #[error("the server's SCRAM signature does not verify")]
    ServerSignatureMismatch,
    /// The server ended the exchange with an error.
    #[error("server refused: {0}")]
    ServerError(String),
    /// The operating system gave no randomness.
    #[error("{0}")]
    Random(String),
}

/// What a stored credential shows a client and costs to check: the iteration count and the salt length. A
/// stand-in for an unknown user copies the shape of the real credentials, so neither the server-first message
/// nor the work of checking a password tells a client whether the user exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CredentialShape {
    /// PBKDF2 iterations.
    pub iterations: u32,
    /// Bytes of salt.
    pub salt_len: usize,
}

impl Default for CredentialShape {
    /// Kafka's minimum iterations and the salt length of [`ScramCredential::generate`].
    fn default() -> Self {
        Self { iterations: MIN_ITERATIONS, salt_len: GENERATED_SALT_BYTES }
    }
}

/// The salted keys stored for a user instead of the password. `Debug` shows only the mechanism and the
/// iteration count: the keys are password-equivalent for SCRAM (a StoredKey and a stolen exchange let an
/// attacker impersonate the user), so they must not reach logs.
#[derive(Clone, PartialEq, Eq)]
pub struct ScramCredential {
    /// The mechanism these keys are for.
    pub mechanism: ScramMechanism,
    /// The salt.
    pub salt: Vec<u8>,
    /// PBKDF2 iterations.
    pub iterations: u32,
    /// H(ClientKey): verifies client proofs.
    pub stored_key: Vec<u8>,
    /// HMAC(SaltedPassword, "Server Key"): signs the server's final message.
    pub server_key: Vec<u8>,
}

// === impl ScramMechanism ===

impl ScramMechanism {
    /// The SASL mechanism name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Sha256 => "SCRAM-SHA-256",
            Self::Sha512 => "SCRAM-SHA-512",
        }
    }

    /// Parses a mechanism name (case-insensitive).
    pub fn from_name(name: &str) -> Option<Self> {
        match name.to_ascii_uppercase().as_str() {
            "SCRAM-SHA-256" => Some(Self::Sha256),
            "SCRAM-SHA-512" => Some(Self::Sha512),
            _ => None,
        }
    }

    pub(crate) fn hmac(self, key: &[u8], data: &[u8]) -> Vec<u8> {
        // HMAC takes keys of any length: new_from_slice cannot fail.
        match self {
            Self::Sha256 => Hmac::<Sha256>::new_from_slice(key)
                .map(|mut m| {
                    m.update(data);
                    m.finalize().into_bytes().to_vec()
                })
                .unwrap_or_default(),
            Self::Sha512 => Hmac::<Sha512>::new_from_slice(key)
                .map(|mut m| {
                    m.update(data);
                    m.finalize().into_bytes().to_vec()
                })
                .unwrap_or_default(),
        }
    }

    pub(crate) fn hash(self, data: &[u8]) -> Vec<u8> {
        match self {
            Self::Sha256 => Sha256::digest(data).to_vec(),
            Self::Sha512 => Sha512::digest(data).to_vec(),
        }
    }

    /// Hi(password, salt, i): PBKDF2 with HMAC of this mechanism's hash.
    pub(crate) fn salted_password(self, password: &str, salt: &[u8], iterations: u32) -> Vec<u8> {
        match self {
            Self::Sha256 => {
                let mut out = [0u8; 32];
                pbkdf2::pbkdf2_hmac::<Sha256>(password.as_bytes(), salt, iterations, &mut out);
                out.to_vec()
            }
            Self::Sha512 => {
                let mut out = [0u8; 64];
                pbkdf2::pbkdf2_hmac::<Sha512>(password.as_bytes(), salt, iterations, &mut out);
                out.to_vec()
            }
        }
    }
}

// === impl ScramCredential ===

impl ScramCredential {
    /// Derives the stored keys from a password.
    pub fn from_password(mechanism: ScramMechanism, password: &str, salt: &[u8], iterations: u32) -> Self {
        let salted = mechanism.salted_password(password, salt, iterations);
        Self::from_salted(mechanism, &salted, salt, iterations)
    }

    pub(crate) fn from_salted(mechanism: ScramMechanism, salted: &[u8], salt: &[u8], iterations: u32) -> Self {
        let client_key = mechanism.hmac(salted, b"Client Key");
        Self {
            mechanism,
            salt: salt.to_vec(),
            iterations,
            stored_key: mechanism.hash(&client_key),
            server_key: mechanism.hmac(salted, b"Server Key"),
        }
    }

    /// Derives the stored keys from a password with a fresh random 32-byte salt.
    pub fn generate(mechanism: ScramMechanism, password: &str, iterations: u32) -> Result<Self, ScramError> {
        let mut salt = [0u8; GENERATED_SALT_BYTES];
        crate::random(&mut salt).map_err(ScramError::Random)?;
        Ok(Self::from_password(mechanism, password, &salt, iterations))
    }

    /// Parses the RFC 5803 form `SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>` (base64).
    pub fn parse(text: &str) -> Result<Self, ScramError> {
        let bad = |what: &str| ScramError::Malformed(format!("stored credential: {what}"));
        let (name, rest) = text.trim().split_once('$').ok_or_else(|| bad("expected `<mechanism>$...`"))?;
        let mechanism = ScramMechanism::from_name(name).ok_or_else(|| bad("unknown mechanism"))?;
        let (salting, keys) = rest.split_once('$').ok_or_else(|| bad("expected `$<StoredKey>:<ServerKey>`"))?;
        let (iterations, salt) = salting.split_once(':').ok_or_else(|| bad("expected `<iterations>:<salt>`"))?;
        let iterations: u32 = iterations.parse().map_err(|_| bad("iterations is not a number"))?;
        let (stored, server) = keys.split_once(':').ok_or_else(|| bad("expected `<StoredKey>:<ServerKey>`"))?;
        let decode = |field: &str, v: &str| B64.decode(v).map_err(|_| bad(&format!("{field} is not base64")));
        let (salt, stored_key, server_key) =
            (decode("salt", salt)?, decode("StoredKey", stored)?, decode("ServerKey", server)?);
        let size = mechanism.hash(b"").len();
        if stored_key.len() != size || server_key.len() != size {
            return Err(bad("key length does not match the mechanism"));
        }
        if salt.is_empty() {
            return Err(bad("empty salt"));
        }
        if iterations < MIN_ITERATIONS {
            return Err(ScramError::TooFewIterations(iterations));
        }
        Ok(Self { mechanism, salt, iterations, stored_key, server_key })
    }

    /// A stand-in credential for an unknown user, shaped like the real ones. Derived from the name under a
    /// per-process secret key, so the same name always gets the same salt, as a real user would: an unknown
    /// user's exchange is indistinguishable from a known user's until the check fails exactly as a wrong
    /// password does. Nobody knows a password for it; callers still must not accept a match.
    pub fn stand_in(mechanism: ScramMechanism, username: &str, shape: CredentialShape) -> Self {
        static KEY: OnceLock<[u8; 32]> = OnceLock::new();
        let key = KEY.get_or_init(|| {
            let mut key = [0u8; 32];
            // Without randomness the stand-in salts are merely predictable; authentication still fails.
            let _ = crate::random(&mut key);
            key
        });
        let salt_len = shape.salt_len.max(1);
        let mut salt = Vec::with_capacity(salt_len);
        let mut block = 0u32;
        while salt.len() < salt_len {
            let mut input = username.as_bytes().to_vec();
            input.extend_from_slice(&block.to_be_bytes());
            salt.extend(mechanism.hmac(key, &input));
            block += 1;
        }
        salt.truncate(salt_len);
        let keys = mechanism.hmac(key, &salt);
        Self { mechanism, salt, iterations: shape.iterations, stored_key: keys.clone(), server_key: keys }
    }

    /// The iteration count and salt length.
    pub fn shape(&self) -> CredentialShape {
        CredentialShape { iterations: self.iterations, salt_len: self.salt.len() }
    }

    /// Checks a plain password (SASL PLAIN against a stored SCRAM credential), in constant time.
    pub fn verify_password(&self, password: &str) -> bool {
        let candidate = Self::from_password(self.mechanism, password, &self.salt, self.iterations);
        bool::from(candidate.stored_key.ct_eq(&self.stored_key))
    }
}

impl std::fmt::Display for ScramCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}${}:{}${}:{}",
            self.mechanism.name(),
            self.iterations,
            B64.encode(&self.salt),
            B64.encode(&self.stored_key),
            B64.encode(&self.server_key)
        )
    }
}

impl std::fmt::Debug for ScramCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScramCredential")
            .field("mechanism", &self.mechanism)
            .field("iterations", &self.iterations)
            .finish_non_exhaustive()
    }
}

/// A fresh nonce: random bytes, base64 so it is printable and free of `,`.
fn nonce() -> Result<String, ScramError> {
    let mut bytes = [0u8; NONCE_BYTES];
    crate::random(&mut bytes).map_err(ScramError::Random)?;
    Ok(B64.encode(bytes))
}

/// Whether `nonce` is RFC 5802 `printable`: ASCII 0x21..=0x7E except `,` (which would split the message).
fn printable(nonce: &str) -> bool {
    !nonce.is_empty() && nonce.bytes().all(|b| (0x21..=0x7e).contains(&b) && b != b',')
}

/// `saslname` escaping: `,` and `=` may not appear raw in a user name.
fn escape(name: &str) -> String {
    name.replace('=', "=3D").replace(',', "=2C")
}

/// Undoes [`escape`]; any other `=` sequence is malformed.
fn unescape(name: &str) -> Result<String, ScramError> {
    let mut out = String::with_capacity(name.len());
    let mut rest = name;
    while let Some(i) = rest.find('=') {
        out.push_str(&rest[..i]);
        match rest.get(i..i + 3) {
            Some("=2C") => out.push(','),
            Some("=3D") => out.push('='),
            _ => return Err(ScramError::Malformed("bad `=` escape in user name".into())),
        }
        rest = &rest[i + 3..];
    }
    out.push_str(rest);
    Ok(out)
}

/// The value of attribute `key` (`r=...`) in `part`.
fn attribute(part: Option<&str>, key: char) -> Result<&str, ScramError> {
    let part = part.ok_or_else(|| ScramError::Malformed(format!("missing `{key}=` attribute")))?;
    part.strip_prefix(key)
        .and_then(|p| p.strip_prefix('='))
        .ok_or_else(|| ScramError::Malformed(format!("expected `{key}=`, found `{}`", attribute_name(part))))
}

/// The name of an attribute or extension (`tokenauth` of `tokenauth=true`), for error messages: the value is
/// left out because it may be a proof or a token.
fn attribute_name(part: &str) -> String {
    part.split('=').next().unwrap_or_default().chars().take(16).collect()
}

fn utf8(message: &[u8]) -> Result<&str, ScramError> {
    std::str::from_utf8(message).map_err(|_| ScramError::Malformed("not UTF-8".into()))
}

fn xor(a: &[u8], b: &[u8]) -> Vec<u8> {
    a.iter().zip(b).map(|(x, y)| x ^ y).collect()
}

#[cfg(test)]
mod tests;
