//! The gateway's YAML configuration.
//!
//! ```yaml
//! gateway:                       # every key optional
//!   advertised_host: localhost   # the host clients are told to use
//!   bind_host: 0.0.0.0
//!   port_start: 6969             # port of virtual broker 0; broker n listens on port_start + n
//!   port_count: 32               # how many broker ports may be opened
//! clusters:                      # Kafka client properties per backend cluster, as in the seed's cluster-config
//!   main:
//!     bootstrap.servers: kafka1:9092,kafka2:9092
//! filters:                       # outermost first; the core filters are added innermost if not listed
//!   - type: my-filter
//!     config: { ... }
//! ```
//! Errors name the file and the key (`gateway.port_start: invalid type ...`).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use franzgate_api::topology::{AdvertisedAddress, BackendCluster, BrokerAddress};
use indexmap::IndexMap;
use serde::Deserialize;

/// Why a configuration cannot be used; the message names the file and the key.
#[derive(Debug, thiserror::Error)]
#[error("{origin}: {message}")]
pub struct ConfigFileError {
    /// The file (or other source) the configuration came from.
    pub origin: String,
    /// What is wrong, starting with the key.
    pub message: String,
}

impl ConfigFileError {
    /// An error in `source` about `message`.
    pub fn new(source: impl Into<String>, message: impl Into<String>) -> Self {
        Self { origin: source.into(), message: message.into() }
    }
}

/// The whole configuration file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayConfig {
    /// Listener and protocol settings.
    #[serde(default)]
    pub gateway: ListenerConfig,
    /// Backend clusters by name, each a map of Kafka client properties.
    pub clusters: IndexMap<String, IndexMap<String, serde_yaml::Value>>,
    /// The filter chain, outermost first.
    #[serde(default)]
    pub filters: Vec<FilterSpec>,
}

/// The `gateway:` section.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ListenerConfig {
    /// The host clients are told to connect to.
    pub advertised_host: String,
    /// The address the listeners bind.
    pub bind_host: String,
    /// The port of virtual broker 0.
    pub port_start: u16,
    /// How many broker ports the gateway may open.
    pub port_count: u16,
    /// The cluster id clients see; when unset, the backend's passes through.
    pub cluster_id: Option<String>,
    /// The largest frame accepted from a client or a broker (Kafka's socket.request.max.bytes is 100 MiB).
    pub max_frame_bytes: usize,
    /// Requests one client connection may have in flight before the gateway stops reading from it.
    pub max_in_flight_per_session: usize,
    /// How long one backend connection attempt may take.
    pub connect_timeout_ms: u64,
}

impl Default for ListenerConfig {
    fn default() -> Self {
        Self {
            advertised_host: "localhost".into(),
            bind_host: "0.0.0.0".into(),
            port_start: 6969,
            port_count: 32,
            cluster_id: None,
            max_frame_bytes: 100 * 1024 * 1024,
            max_in_flight_per_session: 1024,
            connect_timeout_ms: 5_000,
        }
    }
}

/// One entry of the filter chain.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilterSpec {
    /// The registered filter type.
    #[serde(rename = "type")]
    pub kind: String,
    /// The filter's own settings, validated by its factory.
    #[serde(default)]
    pub config: serde_yaml::Value,
}

/// Kafka client properties a backend cluster may carry that this version understands.
const KNOWN_PROPERTIES: &[&str] = &["bootstrap.servers", "security.protocol", "gateway.roles", "client.id"];

// === impl GatewayConfig ===

impl GatewayConfig {
    /// Reads and parses a YAML file.
    pub fn from_file(path: &Path) -> Result<Self, ConfigFileError> {
        let source = path.display().to_string();
        let text =
            std::fs::read_to_string(path).map_err(|e| ConfigFileError::new(&source, format!("cannot read: {e}")))?;
        Self::from_yaml(&text, &source)
    }

    /// Parses YAML text; `source` names it in errors.
    pub fn from_yaml(text: &str, source: &str) -> Result<Self, ConfigFileError> {
        let de = serde_yaml::Deserializer::from_str(text);
        let config: Self = serde_path_to_error::deserialize(de).map_err(|e| {
            let path = e.path().to_string();
            let message = strip_yaml_location(&path, e.into_inner().to_string());
            let key = if path == "." { String::new() } else { format!("{path}: ") };
            ConfigFileError::new(source, format!("{key}{message}"))
        })?;
        config.validate(source)?;
        Ok(config)
    }

    fn validate(&self, source: &str) -> Result<(), ConfigFileError> {
        let g = &self.gateway;
        if g.port_count == 0 {
            return Err(ConfigFileError::new(source, "gateway.port_count: must be at least 1"));
        }
        if u32::from(g.port_start) + u32::from(g.port_count) > 65536 {
            return Err(ConfigFileError::new(source, "gateway.port_start + gateway.port_count: exceeds port 65535"));
        }
        if g.max_frame_bytes < 1024 {
            return Err(ConfigFileError::new(source, "gateway.max_frame_bytes: must be at least 1024"));
        }
        if g.max_in_flight_per_session == 0 {
            return Err(ConfigFileError::new(source, "gateway.max_in_flight_per_session: must be at least 1"));
        }
        if self.clusters.is_empty() {
            return Err(ConfigFileError::new(source, "clusters: at least one backend cluster is required"));
        }
        self.backend_clusters(source).map(|_| ())
    }

    /// The address clients are told to use.
    pub fn advertised(&self) -> AdvertisedAddress {
        AdvertisedAddress {
            host: self.gateway.advertised_host.clone(),
            port_start: self.gateway.port_start,
            port_count: self.gateway.port_count,
        }
    }

    /// The backend connection timeout.
    pub fn connect_timeout(&self) -> Duration {
        Duration::from_millis(self.gateway.connect_timeout_ms)
    }

    /// Builds the backend clusters, checking each one's properties.
    pub fn backend_clusters(&self, source: &str) -> Result<Vec<Arc<BackendCluster>>, ConfigFileError> {
        let mut clusters = Vec::new();
        for (name, props) in &self.clusters {
            let key = |k: &str| format!("clusters.{name}.{k}");
            let text = |k: &str| -> Result<Option<String>, ConfigFileError> {
                match props.get(k) {
                    None | Some(serde_yaml::Value::Null) => Ok(None),
                    Some(serde_yaml::Value::String(s)) => Ok(Some(s.clone())),
                    Some(serde_yaml::Value::Number(n)) => Ok(Some(n.to_string())),
                    Some(serde_yaml::Value::Bool(b)) => Ok(Some(b.to_string())),
                    Some(_) => Err(ConfigFileError::new(source, format!("{}: expected a string", key(k)))),
                }
            };
            for property in props.keys() {
                if !KNOWN_PROPERTIES.contains(&property.as_str()) {
                    tracing::warn!("{source}: {}: property not used by this gateway version", key(property));
                }
            }
            let servers = text("bootstrap.servers")?
                .ok_or_else(|| ConfigFileError::new(source, format!("{}: required", key("bootstrap.servers"))))?;
            let bootstrap = servers
                .split(',')
                .filter(|s| !s.trim().is_empty())
                .map(BrokerAddress::parse)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| ConfigFileError::new(source, format!("{}: {e}", key("bootstrap.servers"))))?;
            if bootstrap.is_empty() {
                return Err(ConfigFileError::new(source, format!("{}: no servers listed", key("bootstrap.servers"))));
            }
            // Connecting with TLS or SASL is not implemented yet: refusing beats silently downgrading.
            if let Some(protocol) = text("security.protocol")? {
                if !protocol.eq_ignore_ascii_case("PLAINTEXT") {
                    return Err(ConfigFileError::new(
                        source,
                        format!(
                            "{}: `{protocol}` is not supported yet; only PLAINTEXT backends can be reached",
                            key("security.protocol")
                        ),
                    ));
                }
            }
            clusters.push(Arc::new(BackendCluster::new(name.clone(), bootstrap)));
        }
        Ok(clusters)
    }
}

/// serde_yaml prefixes nested errors with the parent's path (`gateway: unknown field ...`); the full key path
/// is already in front of the message, so that prefix would only repeat it.
fn strip_yaml_location(path: &str, message: String) -> String {
    let mut candidate = path;
    loop {
        if let Some(rest) = message.strip_prefix(&format!("{candidate}: ")) {
            return rest.to_string();
        }
        match candidate.rsplit_once('.') {
            Some((parent, _)) => candidate = parent,
            None => return message,
        }
    }
}

/// Where a config came from, for messages.
pub fn describe_source(path: Option<&PathBuf>) -> String {
    path.map_or_else(|| "<built-in defaults>".to_string(), |p| p.display().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_minimal_config_takes_the_defaults() {
        let c = GatewayConfig::from_yaml("clusters: {main: {bootstrap.servers: 'k:9092'}}", "t.yaml");
        let c = c.expect("valid");
        assert_eq!(c.gateway.port_start, 6969);
        assert_eq!(c.backend_clusters("t").map(|v| v[0].bootstrap_servers[0].port).ok(), Some(9092));
    }

    #[test]
    fn errors_name_the_file_and_the_key() {
        let e =
            GatewayConfig::from_yaml("gateway: {port_strat: 1}\nclusters: {}", "gw.yaml").err().map(|e| e.to_string());
        let e = e.unwrap_or_default();
        assert!(e.starts_with("gw.yaml: gateway"), "{e}");
        assert!(e.contains("port_strat"), "{e}");

        let e = GatewayConfig::from_yaml("gateway: {port_start: high}\nclusters: {}", "gw.yaml").err();
        assert!(e.map(|e| e.to_string()).unwrap_or_default().contains("gateway.port_start"));

        let e = GatewayConfig::from_yaml("clusters: {main: {bootstrap.servers: 'nohost'}}", "gw.yaml").err();
        assert!(e.map(|e| e.to_string()).unwrap_or_default().contains("clusters.main.bootstrap.servers"));

        let e =
            GatewayConfig::from_yaml("clusters: {main: {security.protocol: SASL_SSL, bootstrap.servers: 'a:1'}}", "x");
        assert!(e.err().map(|e| e.to_string()).unwrap_or_default().contains("not supported yet"));
    }
}
