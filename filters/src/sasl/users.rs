//! Who may authenticate: the configured users with their stored SCRAM credentials, and the service-account
//! token secret.

use std::collections::HashMap;

use std::sync::Arc;

use franzgate_api::vcluster::VirtualClusters;
use franzgate_api::{Principal, PrincipalSource};
pub use franzgate_auth::Mechanism;
use franzgate_auth::jwt;
use franzgate_auth::scram::{CredentialShape, ScramCredential, ScramMechanism};

use super::SaslConfig;

/// Users, credentials and the mechanisms offered; built once from config, shared by every session.
pub struct UserDirectory {
    /// Offered mechanisms, in SaslHandshake order.
    mechanisms: Vec<Mechanism>,
    /// Stored credentials by user name.
    users: HashMap<String, Vec<ScramCredential>>,
    /// The HS256 secret of service-account tokens.
    token_secret: Option<Vec<u8>>,
    /// The virtual clusters a token's `vcluster` claim must name, and whether naming one is mandatory.
    vclusters: Arc<VirtualClusters>,
    /// What an unknown user's PLAIN password is hashed against: the most common mechanism and shape of the
    /// credentials a PLAIN check uses. `None` when there are no users (nothing to hide).
    plain_stand_in: Option<(ScramMechanism, CredentialShape)>,
    /// The most common shape of each SCRAM mechanism's credentials, shown to unknown users in server-first.
    scram_stand_in: HashMap<ScramMechanism, CredentialShape>,
}

/// What checking a PLAIN password takes.
pub enum PlainCheck {
    /// Decided without hashing: a service-account token (an HMAC), or no users to compare with.
    Decided(Result<Principal, String>),
    /// A PBKDF2 check of the password against `credential`. `known` is false for an unknown user's stand-in,
    /// which is hashed just the same so the work done does not tell, and fails even on a match.
    Hash {
        /// The user's strongest stored credential, or the stand-in.
        credential: ScramCredential,
        /// Whether the user exists.
        known: bool,
    },
}

impl std::fmt::Debug for UserDirectory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserDirectory")
            .field("mechanisms", &self.mechanisms)
            .field("users", &self.users.len())
            .field("token_secret", &self.token_secret.is_some())
            .finish()
    }
}

// === impl UserDirectory ===

impl UserDirectory {
    /// Validates the config; errors name the offending key.
    pub fn from_config(config: &SaslConfig) -> Result<Self, String> {
        let mut mechanisms = Vec::new();
        for (i, name) in config.mechanisms.iter().enumerate() {
            let mechanism = Mechanism::from_name(name).ok_or_else(|| {
                format!("mechanisms[{i}]: `{name}` is not one of PLAIN, SCRAM-SHA-256, SCRAM-SHA-512")
            })?;
            if !mechanisms.contains(&mechanism) {
                mechanisms.push(mechanism);
            }
        }
        if mechanisms.is_empty() {
            return Err("mechanisms: at least one mechanism is required".into());
        }
        let mut users: HashMap<String, Vec<ScramCredential>> = HashMap::new();
        for (i, user) in config.users.iter().enumerate() {
            if user.username.is_empty() {
                return Err(format!("users[{i}].username: must not be empty"));
            }
            if users.contains_key(&user.username) {
                return Err(format!("users[{i}].username: `{}` is listed twice", user.username));
            }
            if user.credentials.is_empty() {
                return Err(format!("users[{i}].credentials: at least one stored credential is required"));
            }
            let mut stored = Vec::new();
            for (j, text) in user.credentials.iter().enumerate() {
                let credential = ScramCredential::parse(text).map_err(|e| {
                    format!(
                        "users[{i}].credentials[{j}]: {e} (expected `SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:\
                        <ServerKey>`, as printed by `franzgate hash-password`)"
                    )
                })?;
                stored.push(credential);
            }
            users.insert(user.username.clone(), stored);
        }
        let token_secret = config.token_secret.as_ref().filter(|s| !s.is_empty()).map(|s| s.as_bytes().to_vec());
        if users.is_empty() && token_secret.is_none() {
            return Err("users: none listed and no token_secret set: nobody could authenticate".into());
        }
        if token_secret.is_some() && !mechanisms.contains(&Mechanism::Plain) {
            return Err("token_secret: service-account tokens are presented with PLAIN, which `mechanisms` does not \
                offer"
                .into());
        }
        let plain_stand_in =
            most_common(users.values().filter_map(|stored| strongest(stored)).map(|c| (c.mechanism, c.shape())));
        let scram_stand_in = [ScramMechanism::Sha256, ScramMechanism::Sha512]
            .into_iter()
            .filter_map(|m| {
                let shapes = users.values().flatten().filter(|c| c.mechanism == m).map(ScramCredential::shape);
                Some((m, most_common(shapes)?))
            })
            .collect();
        Ok(Self { mechanisms, users, token_secret, vclusters: Arc::default(), plain_stand_in, scram_stand_in })
    }

    /// Checks tokens against `vclusters` (by default, an empty registry that is not mandatory).
    pub fn with_vclusters(mut self, vclusters: Arc<VirtualClusters>) -> Self {
        self.vclusters = vclusters;
        self
    }

    /// Admits an authenticated principal, unless virtual clusters are mandatory and it names none.
    pub fn admit(&self, principal: Principal) -> Result<Principal, String> {
        if principal.vcluster.is_none() {
            self.vclusters.admit_passthrough(&principal.name).map_err(|e| e.to_string())?;
        }
        Ok(principal)
    }

    /// The mechanisms offered, in order.
    pub fn mechanisms(&self) -> &[Mechanism] {
        &self.mechanisms
    }

    /// A user's stored credential for a SCRAM mechanism.
    pub fn scram_credential(&self, username: &str, mechanism: ScramMechanism) -> Option<ScramCredential> {
        self.users.get(username)?.iter().find(|c| c.mechanism == mechanism).cloned()
    }

    /// The shape of the stand-in credential an unknown user sees in a `mechanism` exchange.
    pub fn scram_stand_in(&self, mechanism: ScramMechanism) -> CredentialShape {
        self.scram_stand_in.get(&mechanism).copied().unwrap_or_default()
    }

    /// What checking a PLAIN exchange's credentials at unix time `now` takes: a token is decided here; a
    /// password needs a PBKDF2 check, against a stand-in of the same cost for an unknown user.
    pub fn plain_check(&self, username: &str, password: &str, now: u64) -> PlainCheck {
        if self.token_secret.is_some() && jwt::looks_like_jwt(password) {
            return PlainCheck::Decided(self.verify_token(username, password, now));
        }
        if let Some(credential) = self.users.get(username).and_then(|stored| strongest(stored)) {
            return PlainCheck::Hash { credential: credential.clone(), known: true };
        }
        match self.plain_stand_in {
            Some((mechanism, shape)) => {
                PlainCheck::Hash { credential: ScramCredential::stand_in(mechanism, username, shape), known: false }
            }
            None => PlainCheck::Decided(Err(INVALID_CREDENTIALS.into())),
        }
    }

    /// The outcome of a PLAIN password check: `matched` is whether the password derived the credential.
    pub fn plain_outcome(username: &str, known: bool, matched: bool) -> Result<Principal, String> {
        if known && matched {
            Ok(Principal {
                name: username.to_string(),
                vcluster: None,
                generation: 0,
                source: PrincipalSource::SaslPlain,
            })
        } else {
            Err(INVALID_CREDENTIALS.into())
        }
    }

    /// Checks a service-account token presented as a PLAIN password.
    fn verify_token(&self, username: &str, password: &str, now: u64) -> Result<Principal, String> {
        if let Some(secret) = self.token_secret.as_ref().filter(|_| jwt::looks_like_jwt(password)) {
            let claims =
                jwt::verify(secret, password, now).map_err(|e| format!("invalid service-account token: {e}"))?;
            if claims.username != username {
                return Err("the service-account token was issued to another user".into());
            }
            // A token naming a virtual cluster is good only while that cluster exists and the account was not
            // revoked since the token was issued.
            if let Some(vcluster) = &claims.vcluster {
                self.vclusters
                    .check_token(vcluster, &claims.username, claims.generation)
                    .map_err(|e| format!("invalid service-account token: {e}"))?;
            }
            return Ok(Principal {
                name: claims.username,
                vcluster: claims.vcluster,
                generation: claims.generation,
                source: PrincipalSource::ServiceAccountToken,
            });
        }
        Err(INVALID_CREDENTIALS.into())
    }
}

/// What a wrong password and an unknown user are both told.
const INVALID_CREDENTIALS: &str = "Invalid username or password";

/// The credential a PLAIN check uses: the strongest hash; any one proves the password.
fn strongest(stored: &[ScramCredential]) -> Option<&ScramCredential> {
    stored.iter().max_by_key(|c| matches!(c.mechanism, ScramMechanism::Sha512))
}

/// The value seen most often (ties: the first counted most), `None` for none.
fn most_common<T: Eq + std::hash::Hash + Copy>(values: impl Iterator<Item = T>) -> Option<T> {
    let mut counts: Vec<(T, usize)> = Vec::new();
    for value in values {
        match counts.iter_mut().find(|(v, _)| *v == value) {
            Some((_, n)) => *n += 1,
            None => counts.push((value, 1)),
        }
    }
    let best = counts.iter().map(|(_, n)| *n).max()?;
    counts.into_iter().find(|(_, n)| *n == best).map(|(v, _)| v)
}
