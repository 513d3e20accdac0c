//! Who may authenticate: the configured users with their stored SCRAM credentials, and the service-account
//! token secret.

use std::collections::HashMap;

use std::sync::Arc;

use franzgate_api::vcluster::VirtualClusters;
use franzgate_api::{Principal, PrincipalSource};
pub use franzgate_auth::Mechanism;
use franzgate_auth::jwt;
use franzgate_auth::scram::{ScramCredential, ScramMechanism};

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
        Ok(Self { mechanisms, users, token_secret, vclusters: Arc::default() })
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

    /// Checks a PLAIN exchange's credentials at unix time `now`. The error says why, for the gateway's log
    /// and for the client (never echoing the password).
    pub fn verify_plain(&self, username: &str, password: &str, now: u64) -> Result<Principal, String> {
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
        let verified = self.users.get(username).is_some_and(|stored| {
            // Prefer the strongest hash; any one proves the password.
            let best = stored.iter().max_by_key(|c| matches!(c.mechanism, ScramMechanism::Sha512));
            best.is_some_and(|c| c.verify_password(password))
        });
        if verified {
            Ok(Principal {
                name: username.to_string(),
                vcluster: None,
                generation: 0,
                source: PrincipalSource::SaslPlain,
            })
        } else {
            Err("Invalid username or password".into())
        }
    }
}
