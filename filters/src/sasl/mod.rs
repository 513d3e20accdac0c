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

pub use exchange::Exchange;
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
}

impl std::fmt::Debug for SaslConfig {
    // The token secret stays out of logs and `check-config` output.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SaslConfig")
            .field("mechanisms", &self.mechanisms)
            .field("users", &self.users.iter().map(|u| &u.username).collect::<Vec<_>>())
            .field("token_secret", &self.token_secret.as_ref().map(|_| "<set>"))
            .field("failure_delay_ms", &self.failure_delay_ms)
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
    /// Who may authenticate, and how.
    directory: Arc<UserDirectory>,
    /// Where outcomes are counted.
    stats: Arc<AuthStats>,
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
            .with_failure_delay(Duration::from_millis(config.failure_delay_ms));
        Ok(BoxLayer::new(layer))
    }
}

// === impl SaslLayer ===

impl SaslLayer {
    /// A layer authenticating against `directory`, counting outcomes in `stats`.
    pub fn new(directory: Arc<UserDirectory>, stats: Arc<AuthStats>) -> Self {
        Self { directory, stats, failure_delay: Duration::from_millis(default_failure_delay_ms()) }
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
        Sasl {
            inner,
            exchange: Exchange::new(self.directory.clone(), self.stats.clone()),
            failure_delay: self.failure_delay,
        }
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
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: KafkaRequest) -> Self::Future {
        // Decided here, synchronously and in request order: a pipelined request behind a SaslAuthenticate
        // must see the outcome of that exchange.
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
        }
    }
}
