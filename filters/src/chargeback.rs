//! Chargeback: who produced and consumed how many bytes, batches and records, per {physical cluster, virtual
//! cluster, principal, client id, topic}.
//!
//! Produce requests are counted on the way in, Fetch responses on the way out. Only the request or response
//! structure is decoded; record batches are read no further than their headers (length, record count). Topic
//! ids (Fetch v13+) are named from the Metadata responses that pass through. The counts go to the gateway's
//! [`UsageLedger`], which the runtime exports on `/metrics` and `/admin/chargeback/v1`; the physical cluster
//! is a label, so counting simply continues across a switch.

use std::sync::Arc;
use std::task::{Context, Poll};

use franzgate_api::filter::parse_config;
use franzgate_api::kafka_protocol::messages::{RequestKind, ResponseKind};
use franzgate_api::rewrite::{Rewrite, RewriteResponse};
use franzgate_api::usage::{BatchStats, UsageKey, UsageLedger};
use franzgate_api::{
    BoxLayer, ConfigError, FilterContext, FilterError, FilterFactory, KafkaRequest, KafkaResponse, Session,
};
use serde::Deserialize;

use crate::unix_now;
use tower::{Layer, Service};

/// The YAML type name.
pub const TYPE_NAME: &str = "chargeback";

/// No settings: label limits and windows are the gateway's `metrics:` keys.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChargebackConfig {}

/// Builds [`ChargebackLayer`] from YAML.
#[derive(Debug)]
pub struct ChargebackFactory;

/// Counts usage into a ledger.
#[derive(Debug, Clone)]
pub struct ChargebackLayer {
    /// Where counts go.
    ledger: Arc<UsageLedger>,
}

/// The service of [`ChargebackLayer`].
#[derive(Debug, Clone)]
pub struct Chargeback<S> {
    /// The wrapped service.
    inner: S,
    /// Where counts go.
    ledger: Arc<UsageLedger>,
}

/// Counts a response once it arrives: Fetch bytes, or topic names from Metadata.
#[derive(Debug)]
pub struct CountResponse {
    /// Where counts go.
    ledger: Arc<UsageLedger>,
    /// The labels of the request, topic still blank.
    key: UsageKey,
}

// === impl ChargebackFactory ===

impl FilterFactory for ChargebackFactory {
    fn type_name(&self) -> &'static str {
        TYPE_NAME
    }

    fn create(&self, config: serde_yaml::Value, ctx: &FilterContext) -> Result<BoxLayer, ConfigError> {
        let _: ChargebackConfig = parse_config(config)?;
        Ok(BoxLayer::new(ChargebackLayer::new(ctx.usage.clone())))
    }
}

// === impl ChargebackLayer ===

impl ChargebackLayer {
    /// Counts into `ledger`.
    pub fn new(ledger: Arc<UsageLedger>) -> Self {
        Self { ledger }
    }
}

impl<S> Layer<S> for ChargebackLayer {
    type Service = Chargeback<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Chargeback { inner, ledger: self.ledger.clone() }
    }
}

// === impl Chargeback ===

/// The labels of a request from `session`, topic left blank.
fn key_of(session: &Session, client_id: Option<&str>) -> UsageKey {
    let principal = session.auth.principal();
    UsageKey {
        cluster: session.cluster.name.clone(),
        vcluster: principal.vcluster.unwrap_or_else(|| "passthrough".to_string()),
        principal: principal.name,
        client_id: client_id.unwrap_or_default().to_string(),
        topic: String::new(),
    }
}

/// A topic's name: as sent, else looked up by id.
fn topic_name(ledger: &UsageLedger, cluster: &str, name: &str, id: &[u8; 16]) -> String {
    if !name.is_empty() || *id == [0; 16] {
        return name.to_string();
    }
    ledger.topic_name(cluster, *id).unwrap_or_else(|| "unknown-topic-id".to_string())
}

impl<S> Service<KafkaRequest> for Chargeback<S>
where
    S: Service<KafkaRequest, Response = KafkaResponse, Error = FilterError>,
{
    type Response = KafkaResponse;
    type Error = FilterError;
    type Future = RewriteResponse<S::Future, CountResponse>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), FilterError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: KafkaRequest) -> Self::Future {
        use franzgate_api::kafka_protocol::messages::ApiKey;
        let key = request.api_key();
        let count = match key {
            Some(ApiKey::Produce) => {
                let base = key_of(&request.session, request.client_id());
                // A body that does not decode is forwarded as is; the broker will refuse it.
                if let Ok(RequestKind::Produce(body)) = request.body() {
                    let now = unix_now();
                    for topic in &body.topic_data {
                        let records = topic.partition_data.iter().map(|p| p.records.as_deref().unwrap_or_default());
                        let stats = BatchStats::of_all(records);
                        let name = topic_name(&self.ledger, &base.cluster, &topic.name, topic.topic_id.as_bytes());
                        self.ledger.record_produce(UsageKey { topic: name, ..base.clone() }, stats, now);
                    }
                }
                None
            }
            Some(ApiKey::Fetch | ApiKey::Metadata) => {
                Some(CountResponse { ledger: self.ledger.clone(), key: key_of(&request.session, request.client_id()) })
            }
            _ => None,
        };
        RewriteResponse::new(self.inner.call(request), count)
    }
}

// === impl CountResponse ===

impl Rewrite for CountResponse {
    fn rewrite(self, response: &mut KafkaResponse) -> Result<(), FilterError> {
        match response.body() {
            Ok(ResponseKind::Fetch(body)) => {
                let now = unix_now();
                for topic in &body.responses {
                    let stats =
                        BatchStats::of_all(topic.partitions.iter().map(|p| p.records.as_deref().unwrap_or_default()));
                    if stats.bytes == 0 {
                        continue;
                    }
                    let name = topic_name(&self.ledger, &self.key.cluster, &topic.topic, topic.topic_id.as_bytes());
                    self.ledger.record_fetch(UsageKey { topic: name, ..self.key.clone() }, stats, now);
                }
            }
            Ok(ResponseKind::Metadata(body)) => {
                for topic in &body.topics {
                    if let Some(name) = &topic.name {
                        if *topic.topic_id.as_bytes() != [0; 16] {
                            self.ledger.learn_topic(&self.key.cluster, *topic.topic_id.as_bytes(), name);
                        }
                    }
                }
            }
            // Counting must never fail a request.
            _ => {}
        }
        Ok(())
    }
}
