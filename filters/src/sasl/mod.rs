//! SASL termination: clients authenticate to the gateway, never to the backend.
//!
//! The gateway answers SaslHandshake and SaslAuthenticate itself (v1+ framed, and v0's raw tokens), with
//! PLAIN — against configured users, or a service-account token (HS256 JWT) as the password — and
//! SCRAM-SHA-256/512 against stored salted keys. Until a session has authenticated, nothing it sends reaches
//! the backend: ApiVersions is answered from the versions the backend last advertised to the gateway, and any
//! other request is refused with ILLEGAL_SASL_STATE and the connection closed, as a Kafka broker does. A failed
//! authentication gets its error response, then the connection closes. The principal is recorded on the
//! session for the filters after this one; the gateway's own connections to the backend authenticate with the
//! backend's credentials, whoever the client is (auth decoupling).
//!
//! The runtime places this filter outermost when the client-facing security protocol is SASL_PLAINTEXT or
//! SASL_SSL, configured from `gateway.authentication`.

mod exchange;
mod hashing;
mod limiter;
mod users;
mod versions;

#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use franzgate_api::filter::parse_config;
use franzgate_api::{
    AuthStats, BoxLayer, ConfigError, FilterContext, FilterError, FilterFactory, KafkaRequest, KafkaResponse,
};
use futures::future::{BoxFuture, FutureExt, ready};
use serde::Deserialize;
use tower::{Layer, Service};

pub use exchange::{Exchange, Gatekeeper};
pub use hashing::PasswordHasher;
pub use limiter::FailureLimiter;
pub use users::{Mechanism, UserDirectory};

/// The YAML type name.
pub const TYPE_NAME: &str = "sasl-authentication";

/// `gateway.authentication`, or this filter's `config:`.
#[derive(Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct SaslConfig {
    /// Mechanisms offered to clients, in the order SaslHandshake lists them.
    #[serde(default = "default_mechanisms")]
    pub mechanisms: Vec<String>,
    /// Users and their stored credentials (never plain passwords; `franzgate hash-password` makes them).
    #[serde(default)]
    pub users: Vec<UserConfig>,
    /// The HS256 secret service-account tokens are signed with (`GATEWAY_USER_POOL_SECRET_KEY`); when set, a
    /// PLAIN password that is such a token authenticates its `username` claim.
    #[serde(default)]
    pub token_secret: Option<String>,
    /// How long a failed authentication waits before its answer (and the close) goes out, like Kafka's
    /// `connection.failed.authentication.delay.ms` (100 ms by default): a client guessing passwords gets one
    /// guess per connection and this delay. The wait holds no thread.
    #[serde(default = "default_failure_delay_ms")]
    pub failure_delay_ms: u64,
    /// Failed authentications allowed per source address and minute (a token bucket: that many at once, then
    /// refilled at that rate; IPv6 per /64); beyond it, the address's logins are refused after the failure
    /// delay without being checked. 0 (the default, as in Kafka) turns the limit off: behind a NAT or a TCP
    /// load balancer, many clients share one address and one broken client would lock the others out.
    #[serde(default)]
    pub max_failures_per_ip_per_minute: u32,
}

impl std::fmt::Debug for SaslConfig {
    // The token secret stays out of logs and `check-config` output.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SaslConfig")
            .field("mechanisms", &self.mechanisms)
            .field("users", &self.users.iter().map(|u| &u.username).collect::<Vec<_>>())
            .field("token_secret", &self.token_secret.as_ref().map(|_| "<set>"))
            .field("failure_delay_ms", &self.failure_delay_ms)
            .field("max_failures_per_ip_per_minute", &self.max_failures_per_ip_per_minute)
            .finish()
    }
}

/// One user allowed to authenticate.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct UserConfig {
    /// The SASL user name.
    pub username: String,
    /// Stored SCRAM credentials in RFC 5803 form (`SCRAM-SHA-256$4096:<salt>$<StoredKey>:<ServerKey>`), one per
    /// SCRAM mechanism the user may use; PLAIN is verified against any of them.
    pub credentials: Vec<String>,
}

impl Default for SaslConfig {
    fn default() -> Self {
        Self {
            mechanisms: default_mechanisms(),
            users: Vec::new(),
            token_secret: None,
            failure_delay_ms: default_failure_delay_ms(),
            max_failures_per_ip_per_minute: 0,
        }
    }
}

fn default_failure_delay_ms() -> u64 {
    100
}

fn default_mechanisms() -> Vec<String> {
    ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"].map(String::from).to_vec()
}

/// Builds [`SaslLayer`] from YAML.
#[derive(Debug)]
pub struct SaslFactory;

/// Terminates SASL for every session it wraps.
#[derive(Debug, Clone)]
pub struct SaslLayer {
    /// Who may authenticate and how, where outcomes are counted, the hashing pool and the failure limit.
    gatekeeper: Gatekeeper,
    /// The wait before a failed authentication's answer.
    failure_delay: Duration,
}

/// The service of [`SaslLayer`]: one per session, holding that session's exchange.
pub struct Sasl<S> {
    /// The wrapped service; reached only once the session has authenticated.
    inner: S,
    /// This session's progress through the SASL exchange.
    exchange: Exchange,
    /// The wait before a failed authentication's answer.
    failure_delay: Duration,
}

// === impl SaslFactory ===

impl FilterFactory for SaslFactory {
    fn type_name(&self) -> &'static str {
        TYPE_NAME
    }

    fn create(&self, config: serde_yaml::Value, ctx: &FilterContext) -> Result<BoxLayer, ConfigError> {
        let config: SaslConfig = parse_config(config)?;
        let directory =
            UserDirectory::from_config(&config).map_err(ConfigError::new)?.with_vclusters(ctx.vclusters.clone());
        let layer = SaslLayer::new(Arc::new(directory), ctx.auth_stats.clone())
            .with_failure_delay(Duration::from_millis(config.failure_delay_ms))
            .with_failure_limit(config.max_failures_per_ip_per_minute);
        Ok(BoxLayer::new(layer))
    }
}

// === impl SaslLayer ===

impl SaslLayer {
    /// A layer authenticating against `directory`, counting outcomes in `stats`, hashing passwords one per
    /// core at a time, with no per-address failure limit.
    pub fn new(directory: Arc<UserDirectory>, stats: Arc<AuthStats>) -> Self {
        let hasher = Arc::new(PasswordHasher::for_this_machine());
        Self {
            gatekeeper: Gatekeeper { directory, stats, hasher, limiter: None },
            failure_delay: Duration::from_millis(default_failure_delay_ms()),
        }
    }

    /// With another hashing pool.
    pub fn with_hasher(mut self, hasher: Arc<PasswordHasher>) -> Self {
        self.gatekeeper.hasher = hasher;
        self
    }

    /// With at most `per_minute` failed authentications per source address and minute (0: no limit).
    pub fn with_failure_limit(mut self, per_minute: u32) -> Self {
        self.gatekeeper.limiter = FailureLimiter::new(per_minute).map(Arc::new);
        self
    }

    /// With another wait before a failed authentication's answer.
    pub fn with_failure_delay(mut self, delay: Duration) -> Self {
        self.failure_delay = delay;
        self
    }
}

impl<S> Layer<S> for SaslLayer {
    type Service = Sasl<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Sasl { inner, exchange: Exchange::new(self.gatekeeper.clone()), failure_delay: self.failure_delay }
    }
}

// === impl Sasl ===

impl<S> Service<KafkaRequest> for Sasl<S>
where
    S: Service<KafkaRequest, Response = KafkaResponse, Error = FilterError>,
    S::Future: Send + 'static,
{
    type Response = KafkaResponse;
    type Error = FilterError;
    type Future = BoxFuture<'static, Result<KafkaResponse, FilterError>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), FilterError>> {
        // A request behind a SaslAuthenticate whose password is being checked waits for the verdict.
        if self.exchange.poll_checked(cx).is_pending() {
            return Poll::Pending;
        }
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: KafkaRequest) -> Self::Future {
        // Decided here, in request order: a pipelined request behind a SaslAuthenticate must see the outcome of
        // that exchange (a password check in progress holds `poll_ready` until its verdict is in).
        match self.exchange.handle(request) {
            exchange::Next::Forward(request) => self.inner.call(request).boxed(),
            exchange::Next::Answer(response) => ready(response).boxed(),
            exchange::Next::Refused(response) => {
                let delay = self.failure_delay;
                async move {
                    tokio::time::sleep(delay).await;
                    response
                }
                .boxed()
            }
            exchange::Next::Checking(answer) => {
                let delay = self.failure_delay;
                async move {
                    let (response, failed) = answer.await;
                    if failed {
                        tokio::time::sleep(delay).await;
                    }
                    response
                }
                .boxed()
            }
        }
    }
}
