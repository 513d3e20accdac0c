//! The filter framework: how a YAML entry becomes a tower layer.

use std::sync::Arc;

use serde::de::DeserializeOwned;

use crate::selector::ClusterSelector;
use crate::topology::AdvertisedAddress;
use crate::{ConfigError, FilterError, KafkaRequest, KafkaResponse};

/// The service every filter wraps and is wrapped by. Boxed because the chain is assembled from YAML at
/// start-up; each session owns its own stack, so the service need not be `Sync`.
pub type BoxKafkaService = tower::util::BoxService<KafkaRequest, KafkaResponse, FilterError>;

/// A filter as the runtime holds it: a shareable layer from [`BoxKafkaService`] to [`BoxKafkaService`].
pub type BoxLayer = tower::util::BoxLayer<BoxKafkaService, KafkaRequest, KafkaResponse, FilterError>;

/// Builds one filter from its YAML `config`. Registered with the runtime under [`FilterFactory::type_name`].
pub trait FilterFactory: Send + Sync + 'static {
    /// The name used as `type:` in the YAML filter list.
    fn type_name(&self) -> &'static str;

    /// Validates `config` and builds the layer once; the layer's `layer()` then runs per session.
    fn create(&self, config: serde_yaml::Value, ctx: &FilterContext) -> Result<BoxLayer, ConfigError>;
}

/// What the runtime hands a factory: the gateway's addresses and the backend clusters, shared by all sessions.
#[derive(Debug, Clone)]
pub struct FilterContext {
    /// The address clients are told to use.
    pub advertised: Arc<AdvertisedAddress>,
    /// The backend clusters and which one is active.
    pub selector: Arc<ClusterSelector>,
    /// The cluster id clients see, whatever the backend's; `None` passes the backend's through.
    pub gateway_cluster_id: Option<String>,
    /// Authentication outcomes, counted by the SASL filter and exported by the runtime.
    pub auth_stats: Arc<crate::AuthStats>,
    /// The chargeback ledger the `chargeback` filter fills and the runtime exports.
    pub usage: Arc<crate::usage::UsageLedger>,
    /// The virtual clusters (tenants) and their service accounts, kept by the runtime in a Kafka topic.
    pub vclusters: Arc<crate::vcluster::VirtualClusters>,
    /// Ids of the gateway's own topics, learnt by the runtime's own client (read by the `internal-topics` filter).
    pub internal_topic_ids: Arc<InternalTopicIds>,
}

/// Topic ids (as `u128`) of the gateway's own topics on every cluster it used: a request naming a topic by id
/// only (Fetch v13+, Produce v13, DeleteTopics v6+) is checked against them.
#[derive(Debug, Default)]
pub struct InternalTopicIds(std::sync::RwLock<std::collections::HashSet<u128>>);

impl InternalTopicIds {
    /// Records an internal topic's id (the nil id is no topic's).
    pub fn learn(&self, id: u128) {
        if id == 0 || self.contains(id) {
            return;
        }
        if let Ok(mut ids) = self.0.write() {
            ids.insert(id);
        }
    }

    /// Whether `id` is an internal topic's.
    pub fn contains(&self, id: u128) -> bool {
        self.0.read().map(|ids| ids.contains(&id)).unwrap_or(false)
    }
}

/// Deserializes a filter's config, treating a missing (`null`) config as an empty map so that filters whose
/// fields all have defaults can be declared with just `type:`.
pub fn parse_config<T: DeserializeOwned>(config: serde_yaml::Value) -> Result<T, ConfigError> {
    let config = match config {
        serde_yaml::Value::Null => serde_yaml::Value::Mapping(Default::default()),
        other => other,
    };
    serde_yaml::from_value(config).map_err(|e| ConfigError::new(e.to_string()))
}
