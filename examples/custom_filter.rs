//! A custom filter written as a tower layer, registered by name and declared in YAML.
//!
//! `topic-policy` refuses Produce to topics whose name matches a pattern, answering those topics' partitions
//! with a real Kafka error code (POLICY_VIOLATION by default, or TOPIC_AUTHORIZATION_FAILED) exactly as a
//! broker would, while the allowed topics of the same request are forwarded and acknowledged as usual.
//!
//! ```yaml
//! filters:
//!   - type: topic-policy
//!     config:
//!       deny_produce: "^restricted\\."
//!       error: POLICY_VIOLATION        # or TOPIC_AUTHORIZATION_FAILED
//! ```
//! Run: `cargo run --example custom_filter -- config-examples/custom-filter.yaml`

use std::sync::Arc;
use std::task::{Context, Poll};

use franzgate::{FilterRegistry, Gateway, GatewayConfig};
use franzgate_api::filter::parse_config;
use franzgate_api::kafka_protocol::ResponseError;
use franzgate_api::kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use franzgate_api::kafka_protocol::messages::{ApiKey, RequestKind, ResponseKind};
use franzgate_api::rewrite::{Rewrite, RewriteResponse};
use franzgate_api::{BoxLayer, ConfigError, FilterContext, FilterError, FilterFactory, KafkaRequest, KafkaResponse};
use futures::future::{Either, Ready, ready};
use regex::Regex;
use serde::Deserialize;
use tower::{Layer, Service};

/// The filter's YAML config.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TopicPolicyConfig {
    /// A regular expression; Produce to a topic it matches is refused.
    pub deny_produce: String,
    /// The error code refused partitions get.
    #[serde(default)]
    pub error: PolicyError,
}

/// The Kafka error a refused partition gets.
#[derive(Debug, Default, Clone, Copy, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum PolicyError {
    /// POLICY_VIOLATION (44).
    #[default]
    PolicyViolation,
    /// TOPIC_AUTHORIZATION_FAILED (29).
    TopicAuthorizationFailed,
}

/// Registered as `topic-policy`.
pub struct TopicPolicyFactory;

/// Shared by every session: the compiled pattern and the error code.
#[derive(Clone)]
pub struct TopicPolicyLayer {
    /// Topics matching this are refused.
    deny: Arc<Regex>,
    /// The Kafka error refused partitions get.
    error_code: i16,
}

/// The per-session service.
pub struct TopicPolicy<S> {
    /// The wrapped service.
    inner: S,
    /// The settings shared by every session.
    policy: TopicPolicyLayer,
}

/// Adds the refused topics back into the broker's response, each partition with the error.
pub struct AddRefused {
    /// The refused topics, each partition with the error.
    refused: Vec<TopicProduceResponse>,
}

// === impl TopicPolicyFactory ===

impl FilterFactory for TopicPolicyFactory {
    fn type_name(&self) -> &'static str {
        "topic-policy"
    }

    fn create(&self, config: serde_yaml::Value, _ctx: &FilterContext) -> Result<BoxLayer, ConfigError> {
        let config: TopicPolicyConfig = parse_config(config)?;
        let deny = Regex::new(&config.deny_produce)
            .map_err(|e| ConfigError::new(format!("deny_produce: not a valid regular expression: {e}")))?;
        let error_code = match config.error {
            PolicyError::PolicyViolation => ResponseError::PolicyViolation.code(),
            PolicyError::TopicAuthorizationFailed => ResponseError::TopicAuthorizationFailed.code(),
        };
        Ok(BoxLayer::new(TopicPolicyLayer { deny: Arc::new(deny), error_code }))
    }
}

impl<S> Layer<S> for TopicPolicyLayer {
    type Service = TopicPolicy<S>;

    fn layer(&self, inner: S) -> Self::Service {
        TopicPolicy { inner, policy: self.clone() }
    }
}

// === impl TopicPolicy ===

impl<S> Service<KafkaRequest> for TopicPolicy<S>
where
    S: Service<KafkaRequest, Response = KafkaResponse, Error = FilterError>,
{
    type Response = KafkaResponse;
    type Error = FilterError;
    type Future = Either<Ready<Result<KafkaResponse, FilterError>>, RewriteResponse<S::Future, AddRefused>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), FilterError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: KafkaRequest) -> Self::Future {
        if request.api_key() != Some(ApiKey::Produce) {
            return Either::Right(RewriteResponse::new(self.inner.call(request), None));
        }
        // Reading the body decodes it; the original bytes are still what is forwarded unless we mutate.
        let denied = match request.body() {
            Ok(RequestKind::Produce(produce)) => {
                produce.topic_data.iter().filter(|t| self.policy.deny.is_match(t.name.as_str())).count()
            }
            Ok(_) => 0,
            Err(e) => return Either::Left(ready(Err(e))),
        };
        if denied == 0 {
            return Either::Right(RewriteResponse::new(self.inner.call(request), None));
        }
        let all_denied = matches!(request.body(), Ok(RequestKind::Produce(p)) if p.topic_data.len() == denied);
        if all_denied {
            // Nothing to forward: answer as the broker would, every partition with the error.
            return Either::Left(ready(request.error_response(self.policy.error_code)));
        }
        // Forward only the allowed topics; remember the refused ones to answer them ourselves.
        let mut refused = Vec::new();
        if let Ok(RequestKind::Produce(produce)) = request.body_mut() {
            let (deny, keep): (Vec<_>, Vec<_>) =
                produce.topic_data.drain(..).partition(|t| self.policy.deny.is_match(t.name.as_str()));
            produce.topic_data = keep;
            refused = deny
                .into_iter()
                .map(|t| {
                    let partitions = t
                        .partition_data
                        .iter()
                        .map(|p| {
                            PartitionProduceResponse::default()
                                .with_index(p.index)
                                .with_error_code(self.policy.error_code)
                                .with_base_offset(-1)
                                .with_log_append_time_ms(-1)
                                .with_log_start_offset(-1)
                        })
                        .collect();
                    TopicProduceResponse::default().with_name(t.name).with_partition_responses(partitions)
                })
                .collect();
        }
        let expects_response = request.expects_response();
        let rewrite = expects_response.then_some(AddRefused { refused });
        Either::Right(RewriteResponse::new(self.inner.call(request), rewrite))
    }
}

impl Rewrite for AddRefused {
    fn rewrite(self, response: &mut KafkaResponse) -> Result<(), FilterError> {
        if let ResponseKind::Produce(produce) = response.body_mut()? {
            produce.responses.extend(self.refused);
        }
        Ok(())
    }
}

/// Registers the filter next to the built-ins and runs the gateway with the config named on the command line.
#[allow(dead_code)]
fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt().with_env_filter("info").init();
    let path = std::env::args().nth(1).unwrap_or_else(|| "config-examples/custom-filter.yaml".into());
    let mut registry = FilterRegistry::with_builtins();
    registry.register(TopicPolicyFactory).map_err(anyhow::Error::msg)?;
    let config = GatewayConfig::from_file(path.as_ref())?;
    let gateway = Gateway::new(&config, &registry, &path)?;
    tokio::runtime::Runtime::new()?.block_on(async {
        let running = gateway.start().await?;
        tracing::info!(ports = ?running.ports(), "franzgate with the topic-policy filter listening");
        tokio::signal::ctrl_c().await?;
        running.shutdown();
        running.wait().await;
        Ok(())
    })
}
