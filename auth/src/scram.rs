//! SCRAM-SHA-256 and SCRAM-SHA-512 (RFC 5802, RFC 7677) as Kafka uses them: no channel binding, user names
//! escaped with `=2C` / `=3D`, at least 4096 iterations.

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
    /// The server asked for fewer iterations than Kafka allows.
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

/// The salted keys stored for a user instead of the password.
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

    fn hmac(self, key: &[u8], data: &[u8]) -> Vec<u8> {
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

    fn hash(self, data: &[u8]) -> Vec<u8> {
        match self {
            Self::Sha256 => Sha256::digest(data).to_vec(),
            Self::Sha512 => Sha512::digest(data).to_vec(),
        }
    }

    /// Hi(password, salt, i): PBKDF2 with HMAC of this mechanism's hash.
    fn salted_password(self, password: &str, salt: &[u8], iterations: u32) -> Vec<u8> {
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

    fn from_salted(mechanism: ScramMechanism, salted: &[u8], salt: &[u8], iterations: u32) -> Self {
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
        let mut salt = [0u8; 32];
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

fn nonce() -> Result<String, ScramError> {
    let mut bytes = [0u8; NONCE_BYTES];
    crate::random(&mut bytes).map_err(ScramError::Random)?;
    Ok(B64.encode(bytes))
}

/// `saslname` escaping: `,` and `=` may not appear raw in a user name.
fn escape(name: &str) -> String {
    name.replace('=', "=3D").replace(',', "=2C")
}

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
        .ok_or_else(|| ScramError::Malformed(format!("expected `{key}=`, found `{}`", preview(part))))
}

fn preview(text: &str) -> String {
    text.chars().take(8).collect()
}

fn utf8(message: &[u8]) -> Result<&str, ScramError> {
    std::str::from_utf8(message).map_err(|_| ScramError::Malformed("not UTF-8".into()))
}

fn xor(a: &[u8], b: &[u8]) -> Vec<u8> {
    a.iter().zip(b).map(|(x, y)| x ^ y).collect()
}

/// A fake credential for unknown users, the same for a name every time, so an exchange for an unknown user
/// looks like any other until the proof fails.
fn fake_credential(mechanism: ScramMechanism, username: &str) -> ScramCredential {
    static KEY: OnceLock<[u8; 32]> = OnceLock::new();
    let key = KEY.get_or_init(|| {
        let mut key = [0u8; 32];
        // Without randomness the fake salt is merely predictable; authentication still fails.
        let _ = crate::random(&mut key);
        key
    });
    let salt = mechanism.hmac(key, username.as_bytes());
    let salt = salt.get(..16).unwrap_or(&salt).to_vec();
    let keys = mechanism.hmac(key, &salt);
    ScramCredential { mechanism, salt, iterations: MIN_ITERATIONS, stored_key: keys.clone(), server_key: keys }
}

/// Server side of one SCRAM exchange.
pub struct ScramServer {
    /// The mechanism negotiated in SaslHandshake.
    mechanism: ScramMechanism,
    /// Where the exchange is.
    state: ServerState,
    /// Injected server nonce (tests against RFC vectors).
    fixed_nonce: Option<String>,
}

enum ServerState {
    Initial,
    SentFirst {
        username: String,
        known: bool,
        credential: ScramCredential,
        gs2_header: String,
        nonce: String,
        auth_prefix: String,
    },
    Done,
}

// === impl ScramServer ===

impl ScramServer {
    /// A server awaiting client-first-message.
    pub fn new(mechanism: ScramMechanism) -> Self {
        Self { mechanism, state: ServerState::Initial, fixed_nonce: None }
    }

    /// A server whose nonce part is `nonce` (for tests against published vectors).
    #[doc(hidden)]
    pub fn with_nonce(mechanism: ScramMechanism, nonce: &str) -> Self {
        Self { fixed_nonce: Some(nonce.to_string()), ..Self::new(mechanism) }
    }

    /// Handles client-first-message; `lookup` returns a user's stored credential. Returns server-first-message.
    pub fn client_first(
        &mut self,
        message: &[u8],
        lookup: impl FnOnce(&str) -> Option<ScramCredential>,
    ) -> Result<Vec<u8>, ScramError> {
        if !matches!(self.state, ServerState::Initial) {
            return Err(ScramError::OutOfOrder);
        }
        self.state = ServerState::Done;
        let text = utf8(message)?;
        let mut gs2 = text.splitn(3, ',');
        let flag = gs2.next().unwrap_or_default();
        let authzid = gs2.next().ok_or_else(|| ScramError::Malformed("missing GS2 header".into()))?;
        let bare = gs2.next().ok_or_else(|| ScramError::Malformed("missing client-first-message-bare".into()))?;
        match flag {
            "n" | "y" => {}
            f if f.starts_with("p=") => return Err(ScramError::ChannelBindingUnsupported),
            _ => return Err(ScramError::Malformed("GS2 flag must be n or y".into())),
        }
        let gs2_header = format!("{flag},{authzid},");
        let mut parts = bare.split(',');
        let first = parts.next();
        if first.is_some_and(|p| p.starts_with("m=")) {
            return Err(ScramError::UnsupportedExtension("m".into()));
        }
        let username = unescape(attribute(first, 'n')?)?;
        let client_nonce = attribute(parts.next(), 'r')?;
        if let Some(extension) = parts.next() {
            return Err(ScramError::UnsupportedExtension(extension.split('=').next().unwrap_or_default().to_string()));
        }
        if username.is_empty() || client_nonce.is_empty() {
            return Err(ScramError::Malformed("empty user name or nonce".into()));
        }
        if !authzid.is_empty() && unescape(authzid.strip_prefix("a=").unwrap_or(authzid))? != username {
            return Err(ScramError::Malformed("authorization id differs from the user name".into()));
        }
        let (credential, known) = match lookup(&username) {
            Some(c) if c.mechanism == self.mechanism => (c, true),
            _ => (fake_credential(self.mechanism, &username), false),
        };
        let server_nonce = match &self.fixed_nonce {
            Some(n) => n.clone(),
            None => nonce()?,
        };
        let nonce = format!("{client_nonce}{server_nonce}");
        let server_first = format!("r={nonce},s={},i={}", B64.encode(&credential.salt), credential.iterations);
        let auth_prefix = format!("{bare},{server_first}");
        self.state = ServerState::SentFirst { username, known, credential, gs2_header, nonce, auth_prefix };
        Ok(server_first.into_bytes())
    }

    /// Handles client-final-message; on success returns server-final-message and the user name.
    pub fn client_final(&mut self, message: &[u8]) -> Result<(Vec<u8>, String), ScramError> {
        let ServerState::SentFirst { username, known, credential, gs2_header, nonce, auth_prefix } =
            std::mem::replace(&mut self.state, ServerState::Done)
        else {
            return Err(ScramError::OutOfOrder);
        };
        let text = utf8(message)?;
        let (without_proof, proof) =
            text.rsplit_once(",p=").ok_or_else(|| ScramError::Malformed("missing proof".into()))?;
        let mut parts = without_proof.split(',');
        let binding = attribute(parts.next(), 'c')?;
        let final_nonce = attribute(parts.next(), 'r')?;
        if parts.next().is_some() {
            return Err(ScramError::UnsupportedExtension("client-final".into()));
        }
        if B64.decode(binding).ok().as_deref() != Some(gs2_header.as_bytes()) {
            return Err(ScramError::Malformed("channel-binding echo does not match the GS2 header".into()));
        }
        if final_nonce != nonce {
            return Err(ScramError::NonceMismatch);
        }
        let proof = B64.decode(proof).map_err(|_| ScramError::Malformed("proof is not base64".into()))?;
        let auth_message = format!("{auth_prefix},{without_proof}");
        let m = self.mechanism;
        let signature = m.hmac(&credential.stored_key, auth_message.as_bytes());
        if proof.len() != signature.len() {
            return Err(ScramError::AuthenticationFailed);
        }
        let client_key = xor(&proof, &signature);
        let matches = bool::from(m.hash(&client_key).ct_eq(&credential.stored_key));
        if !(matches && known) {
            return Err(ScramError::AuthenticationFailed);
        }
        let server_signature = m.hmac(&credential.server_key, auth_message.as_bytes());
        Ok((format!("v={}", B64.encode(server_signature)).into_bytes(), username))
    }
}

/// Client side of one SCRAM exchange (the gateway authenticating to a broker).
pub struct ScramClient {
    /// The mechanism.
    mechanism: ScramMechanism,
    /// The password, kept until the salt is known.
    password: String,
    /// client-first-message-bare.
    first_bare: String,
    /// Our nonce.
    nonce: String,
    /// Where the exchange is.
    state: ClientState,
}

enum ClientState {
    Initial,
    SentFirst,
    SentFinal { server_signature: Vec<u8> },
    Done,
}

// === impl ScramClient ===

impl ScramClient {
    /// A client for `username` with a random nonce.
    pub fn new(mechanism: ScramMechanism, username: &str, password: &str) -> Result<Self, ScramError> {
        Ok(Self::with_nonce(mechanism, username, password, &nonce()?))
    }

    /// A client with a given nonce (for tests against published vectors).
    #[doc(hidden)]
    pub fn with_nonce(mechanism: ScramMechanism, username: &str, password: &str, nonce: &str) -> Self {
        Self {
            mechanism,
            password: password.to_string(),
            first_bare: format!("n={},r={nonce}", escape(username)),
            nonce: nonce.to_string(),
            state: ClientState::Initial,
        }
    }

    /// client-first-message (no channel binding).
    pub fn client_first(&mut self) -> Vec<u8> {
        self.state = ClientState::SentFirst;
        format!("n,,{}", self.first_bare).into_bytes()
    }

    /// Checks server-first-message and returns client-final-message.
    pub fn server_first(&mut self, message: &[u8]) -> Result<Vec<u8>, ScramError> {
        if !matches!(self.state, ClientState::SentFirst) {
            return Err(ScramError::OutOfOrder);
        }
        self.state = ClientState::Done;
        let text = utf8(message)?;
        if let Some(error) = text.strip_prefix("e=") {
            return Err(ScramError::ServerError(error.to_string()));
        }
        let mut parts = text.split(',');
        let first = parts.next();
        if first.is_some_and(|p| p.starts_with("m=")) {
            return Err(ScramError::UnsupportedExtension("m".into()));
        }
        let nonce = attribute(first, 'r')?;
        let salt = B64
            .decode(attribute(parts.next(), 's')?)
            .map_err(|_| ScramError::Malformed("salt is not base64".into()))?;
        let iterations: u32 = attribute(parts.next(), 'i')?
            .parse()
            .map_err(|_| ScramError::Malformed("iteration count is not a number".into()))?;
        if !nonce.starts_with(&self.nonce) || nonce.len() <= self.nonce.len() {
            return Err(ScramError::NonceMismatch);
        }
        if iterations < MIN_ITERATIONS {
            return Err(ScramError::TooFewIterations(iterations));
        }
        let m = self.mechanism;
        let salted = m.salted_password(&self.password, &salt, iterations);
        let credential = ScramCredential::from_salted(m, &salted, &salt, iterations);
        let without_proof = format!("c=biws,r={nonce}");
        let auth_message = format!("{},{text},{without_proof}", self.first_bare);
        let client_key = m.hmac(&salted, b"Client Key");
        let proof = xor(&client_key, &m.hmac(&credential.stored_key, auth_message.as_bytes()));
        let server_signature = m.hmac(&credential.server_key, auth_message.as_bytes());
        self.state = ClientState::SentFinal { server_signature };
        Ok(format!("{without_proof},p={}", B64.encode(proof)).into_bytes())
    }

    /// Verifies server-final-message: the server proves it knows the stored keys.
    pub fn server_final(&mut self, message: &[u8]) -> Result<(), ScramError> {
        let ClientState::SentFinal { server_signature } = std::mem::replace(&mut self.state, ClientState::Done) else {
            return Err(ScramError::OutOfOrder);
        };
        let text = utf8(message)?;
        if let Some(error) = text.strip_prefix("e=") {
            return Err(ScramError::ServerError(error.to_string()));
        }
        let verifier = attribute(text.split(',').next(), 'v')?;
        let verifier = B64.decode(verifier).map_err(|_| ScramError::Malformed("verifier is not base64".into()))?;
        if bool::from(verifier.ct_eq(&server_signature)) { Ok(()) } else { Err(ScramError::ServerSignatureMismatch) }
    }
}

#[cfg(test)]
mod tests;
