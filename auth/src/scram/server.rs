//! The server side: the gateway authenticating its clients.

use base64::Engine;
use subtle::ConstantTimeEq;

use super::{B64, CredentialShape, ScramCredential, ScramError, ScramMechanism};
use super::{attribute, attribute_name, nonce, printable, unescape, utf8, xor};

/// Server side of one SCRAM exchange: [`client_first`](Self::client_first), then
/// [`client_final`](Self::client_final). A failed step ends the exchange; every later call is
/// [`ScramError::OutOfOrder`].
pub struct ScramServer {
    /// The mechanism negotiated in SaslHandshake.
    mechanism: ScramMechanism,
    /// Where the exchange is.
    state: ServerState,
    /// Injected server nonce part (tests against published vectors).
    fixed_nonce: Option<String>,
    /// The shape of an unknown user's stand-in credential.
    stand_in: CredentialShape,
}

/// Progress of a [`ScramServer`].
enum ServerState {
    /// Awaiting client-first-message.
    Initial,
    /// Server-first-message sent; awaiting client-final-message.
    SentFirst {
        /// The (unescaped) user name.
        username: String,
        /// False when `credential` is the stand-in for an unknown user: the proof must then fail.
        known: bool,
        /// The user's stored keys (or the stand-in).
        credential: ScramCredential,
        /// `n,,` / `y,,` / `n,a=user,`, which the client must echo base64-encoded in `c=`.
        gs2_header: String,
        /// Client nonce followed by ours.
        nonce: String,
        /// client-first-message-bare `,` server-first-message: the AuthMessage up to client-final.
        auth_prefix: String,
    },
    /// Finished, successfully or not.
    Done,
}

// === impl ScramServer ===

impl ScramServer {
    /// A server awaiting client-first-message.
    pub fn new(mechanism: ScramMechanism) -> Self {
        Self { mechanism, state: ServerState::Initial, fixed_nonce: None, stand_in: CredentialShape::default() }
    }

    /// Shows unknown users a stand-in credential of this shape (by default Kafka's minimum iterations and a
    /// 32-byte salt): give it the shape of the real users' credentials, or the salt length and iteration count
    /// in server-first tell a client which users exist.
    pub fn with_stand_in(mut self, shape: CredentialShape) -> Self {
        self.stand_in = shape;
        self
    }

    /// A server whose nonce part is `nonce`, for tests against published vectors. Never use it for real
    /// exchanges: a predictable nonce allows replay.
    #[doc(hidden)]
    pub fn with_nonce(mechanism: ScramMechanism, nonce: &str) -> Self {
        Self { fixed_nonce: Some(nonce.to_string()), ..Self::new(mechanism) }
    }

    /// Handles client-first-message (`n,,n=user,r=nonce`); `lookup` returns a user's stored credential, given
    /// the unescaped user name. Returns server-first-message.
    ///
    /// An unknown user (or a credential of another mechanism) does not fail here, so clients cannot probe
    /// which users exist: the exchange continues with a stand-in credential and fails in
    /// [`client_final`](Self::client_final) with [`ScramError::AuthenticationFailed`], as a wrong password does.
    pub fn client_first(
        &mut self,
        message: &[u8],
        lookup: impl FnOnce(&str) -> Option<ScramCredential>,
    ) -> Result<Vec<u8>, ScramError> {
        if !matches!(self.state, ServerState::Initial) {
            return Err(ScramError::OutOfOrder);
        }
        // Any error below ends the exchange.
        self.state = ServerState::Done;
        let text = utf8(message)?;
        let mut gs2 = text.splitn(3, ',');
        let flag = gs2.next().unwrap_or_default();
        let authzid = gs2.next().ok_or_else(|| ScramError::Malformed("missing GS2 header".into()))?;
        let bare = gs2.next().ok_or_else(|| ScramError::Malformed("missing client-first-message-bare".into()))?;
        match flag {
            // `y`: the client supports channel binding but thinks we do not — true, so fine.
            "n" | "y" => {}
            f if f.starts_with("p=") => return Err(ScramError::ChannelBindingUnsupported),
            _ => return Err(ScramError::Malformed("GS2 flag must be n or y".into())),
        }
        let gs2_header = format!("{flag},{authzid},");
        let mut parts = bare.split(',');
        let first = parts.next();
        if first.is_some_and(|p| p.starts_with("m=")) {
            // `m=` is reserved for mandatory extensions, none of which we implement.
            return Err(ScramError::UnsupportedExtension("m".into()));
        }
        let username = unescape(attribute(first, 'n')?)?;
        let client_nonce = attribute(parts.next(), 'r')?;
        if let Some(extension) = parts.next() {
            // Kafka's `tokenauth=true` (delegation tokens) and anything else we cannot honour.
            return Err(ScramError::UnsupportedExtension(attribute_name(extension)));
        }
        if username.is_empty() {
            return Err(ScramError::Malformed("empty user name".into()));
        }
        if !printable(client_nonce) {
            return Err(ScramError::Malformed("nonce is empty or not printable ASCII".into()));
        }
        if !authzid.is_empty() {
            let authzid = authzid
                .strip_prefix("a=")
                .ok_or_else(|| ScramError::Malformed("authorization id must be `a=<name>`".into()))?;
            if unescape(authzid)? != username {
                return Err(ScramError::Malformed("authorization id differs from the user name".into()));
            }
        }
        let (credential, known) = match lookup(&username) {
            Some(c) if c.mechanism == self.mechanism => (c, true),
            _ => (ScramCredential::stand_in(self.mechanism, &username, self.stand_in), false),
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

    /// Handles client-final-message (`c=<gs2 header>,r=<nonce>,p=<proof>`). On success returns
    /// server-final-message (`v=<signature>`) and the authenticated user name.
    pub fn client_final(&mut self, message: &[u8]) -> Result<(Vec<u8>, String), ScramError> {
        let ServerState::SentFirst { username, known, credential, gs2_header, nonce, auth_prefix } =
            std::mem::replace(&mut self.state, ServerState::Done)
        else {
            return Err(ScramError::OutOfOrder);
        };
        let text = utf8(message)?;
        // The proof is always last; everything before it is signed as part of the AuthMessage.
        let (without_proof, proof) =
            text.rsplit_once(",p=").ok_or_else(|| ScramError::Malformed("missing proof".into()))?;
        let mut parts = without_proof.split(',');
        let binding = attribute(parts.next(), 'c')?;
        let final_nonce = attribute(parts.next(), 'r')?;
        if let Some(extension) = parts.next() {
            return Err(ScramError::UnsupportedExtension(attribute_name(extension)));
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
        // ClientKey = proof XOR ClientSignature; it is right when H(ClientKey) is the StoredKey.
        let client_key = xor(&proof, &signature);
        let matches = bool::from(m.hash(&client_key).ct_eq(&credential.stored_key));
        if !(matches && known) {
            return Err(ScramError::AuthenticationFailed);
        }
        let server_signature = m.hmac(&credential.server_key, auth_message.as_bytes());
        Ok((format!("v={}", B64.encode(server_signature)).into_bytes(), username))
    }
}
