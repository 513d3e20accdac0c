//! The client side: the gateway authenticating to a backend broker.

use base64::Engine;
use subtle::ConstantTimeEq;

use super::{B64, MIN_ITERATIONS, ScramCredential, ScramError, ScramMechanism};
use super::{attribute, escape, nonce, printable, utf8, xor};

/// Client side of one SCRAM exchange: [`client_first`](Self::client_first),
/// [`server_first`](Self::server_first), [`server_final`](Self::server_final). A failed step ends the
/// exchange; every later call is [`ScramError::OutOfOrder`].
pub struct ScramClient {
    /// The mechanism.
    mechanism: ScramMechanism,
    /// The password, kept only until the salt is known (then emptied).
    password: String,
    /// client-first-message-bare (`n=user,r=nonce`).
    first_bare: String,
    /// Our nonce.
    nonce: String,
    /// Where the exchange is.
    state: ClientState,
}

/// Progress of a [`ScramClient`].
enum ClientState {
    /// client-first-message not produced yet.
    Initial,
    /// Awaiting server-first-message.
    SentFirst,
    /// Awaiting server-final-message, which must carry this signature.
    SentFinal {
        /// HMAC(ServerKey, AuthMessage).
        server_signature: Vec<u8>,
    },
    /// Finished, successfully or not.
    Done,
}

// === impl ScramClient ===

impl ScramClient {
    /// A client for `username` with a random nonce.
    pub fn new(mechanism: ScramMechanism, username: &str, password: &str) -> Result<Self, ScramError> {
        Ok(Self::with_nonce(mechanism, username, password, &nonce()?))
    }

    /// A client with a given nonce, for tests against published vectors. Never use it for real exchanges.
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

    /// client-first-message (`n,,n=user,r=nonce`: no channel binding, no authzid). Calling it again returns the
    /// same message and leaves the exchange where it is.
    pub fn client_first(&mut self) -> Vec<u8> {
        if matches!(self.state, ClientState::Initial) {
            self.state = ClientState::SentFirst;
        }
        format!("n,,{}", self.first_bare).into_bytes()
    }

    /// Checks server-first-message (our nonce extended, base64 salt, at least [`MIN_ITERATIONS`]) and returns
    /// client-final-message.
    pub fn server_first(&mut self, message: &[u8]) -> Result<Vec<u8>, ScramError> {
        if !matches!(self.state, ClientState::SentFirst) {
            return Err(ScramError::OutOfOrder);
        }
        self.state = ClientState::Done;
        // Whatever happens next, the password is no longer needed.
        let password = std::mem::take(&mut self.password);
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
        // The server must add its own part: a server echoing our nonce alone could be replaying.
        if !nonce.starts_with(&self.nonce) || nonce.len() <= self.nonce.len() || !printable(nonce) {
            return Err(ScramError::NonceMismatch);
        }
        if iterations < MIN_ITERATIONS {
            return Err(ScramError::TooFewIterations(iterations));
        }
        let m = self.mechanism;
        let salted = m.salted_password(&password, &salt, iterations);
        let credential = ScramCredential::from_salted(m, &salted, &salt, iterations);
        // `biws` is base64 of the GS2 header `n,,` we sent.
        let without_proof = format!("c=biws,r={nonce}");
        let auth_message = format!("{},{text},{without_proof}", self.first_bare);
        let client_key = m.hmac(&salted, b"Client Key");
        let proof = xor(&client_key, &m.hmac(&credential.stored_key, auth_message.as_bytes()));
        let server_signature = m.hmac(&credential.server_key, auth_message.as_bytes());
        self.state = ClientState::SentFinal { server_signature };
        Ok(format!("{without_proof},p={}", B64.encode(proof)).into_bytes())
    }

    /// Verifies server-final-message (`v=<signature>`, compared in constant time): the server proves it holds
    /// the user's keys. `e=<error>` is returned as [`ScramError::ServerError`].
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
