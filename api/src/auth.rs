//! Who is on the other end of a session: the authenticated principal, and the counters of authentication
//! outcomes.
//!
//! A session's principal comes from the strongest evidence it presented: a SASL exchange answered by the
//! gateway, else a TLS client certificate, else none (`ANONYMOUS`, as Kafka names it). The SASL filter sets it
//! once, mid-session, so it lives in a `OnceLock` that later filters read per request.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// Kafka's name for an unauthenticated client.
pub const ANONYMOUS: &str = "ANONYMOUS";

/// How a principal proved who it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PrincipalSource {
    /// Nothing: a PLAINTEXT or one-way TLS connection.
    Anonymous,
    /// A verified TLS client certificate, its subject mapped by the principal mapping rules.
    TlsCertificate,
    /// SASL PLAIN against a configured user.
    SaslPlain,
    /// SASL PLAIN whose password was a service-account token (JWT) signed by the gateway.
    ServiceAccountToken,
    /// SASL SCRAM-SHA-256.
    ScramSha256,
    /// SASL SCRAM-SHA-512.
    ScramSha512,
}

/// An authenticated identity.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Principal {
    /// The user name (`User:<name>` in Kafka's terms).
    pub name: String,
    /// The virtual cluster the principal belongs to, when its credentials name one (service-account tokens).
    pub vcluster: Option<String>,
    /// The service-account generation a token carried (0 for every other credential); a revocation bumps the
    /// account's generation, which ends the sessions of older tokens.
    pub generation: u32,
    /// How the identity was established.
    pub source: PrincipalSource,
}

impl Principal {
    /// The unauthenticated principal.
    pub fn anonymous() -> Self {
        Self { name: ANONYMOUS.to_string(), vcluster: None, generation: 0, source: PrincipalSource::Anonymous }
    }
}

/// Per-session authentication state, written by the SASL filter and read by everything after it.
#[derive(Debug, Default)]
pub struct SessionAuth {
    /// Set once, when a SASL exchange succeeds.
    sasl: OnceLock<Principal>,
    /// A verified TLS client certificate's principal, known when the session starts.
    tls: Option<Principal>,
    /// True between a SaslHandshake v0 and the end of its exchange: the client then sends raw SASL tokens,
    /// frames with no Kafka header, which the session must not parse as requests.
    raw_tokens: AtomicBool,
}

impl SessionAuth {
    /// State for a session whose TLS handshake established `tls` (or nothing).
    pub fn new(tls: Option<Principal>) -> Self {
        Self { sasl: OnceLock::new(), tls, raw_tokens: AtomicBool::new(false) }
    }

    /// The session's principal: the SASL one, else the certificate's, else anonymous.
    pub fn principal(&self) -> Principal {
        self.sasl.get().or(self.tls.as_ref()).cloned().unwrap_or_else(Principal::anonymous)
    }

    /// The SASL principal, once authenticated.
    pub fn sasl_principal(&self) -> Option<&Principal> {
        self.sasl.get()
    }

    /// The TLS client certificate's principal.
    pub fn tls_principal(&self) -> Option<&Principal> {
        self.tls.as_ref()
    }

    /// Records a successful SASL exchange; false if the session was already authenticated.
    pub fn set_sasl_principal(&self, principal: Principal) -> bool {
        self.sasl.set(principal).is_ok()
    }

    /// Whether the next frame from the client is a raw SASL token (SaslHandshake v0 framing).
    pub fn expects_raw_token(&self) -> bool {
        self.raw_tokens.load(Ordering::Acquire)
    }

    /// Switches raw-token framing on (after SaslHandshake v0) or off (when the exchange ends).
    pub fn set_raw_tokens(&self, on: bool) {
        self.raw_tokens.store(on, Ordering::Release);
    }
}

/// Authentication outcomes, shared by every session of a gateway (exported as metrics).
#[derive(Debug, Default)]
pub struct AuthStats {
    /// Successful authentications.
    successes: AtomicU64,
    /// Failed authentications (each closed its connection).
    failures: AtomicU64,
    /// Of the failures, those refused unchecked because their source address had too many failures.
    limited: AtomicU64,
}

impl AuthStats {
    /// Counts a success.
    pub fn record_success(&self) {
        self.successes.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a failure.
    pub fn record_failure(&self) {
        self.failures.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a failure refused by the per-address failure limit (also counted as a failure).
    pub fn record_limited(&self) {
        self.limited.fetch_add(1, Ordering::Relaxed);
    }

    /// Failures refused by the per-address failure limit so far.
    pub fn limited(&self) -> u64 {
        self.limited.load(Ordering::Relaxed)
    }

    /// (successes, failures) so far.
    pub fn counts(&self) -> (u64, u64) {
        (self.successes.load(Ordering::Relaxed), self.failures.load(Ordering::Relaxed))
    }
}
