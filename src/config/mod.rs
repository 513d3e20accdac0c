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
//!
//! Environment variables override the file (see [`sources`]): `GATEWAY_*` for the `gateway:` keys, and the
//! seed's `GATEWAY_BACKEND_KAFKA_SELECTOR` / `KAFKA_<ID>_<PROPERTY>` for the clusters. Started with no file
//! at all, franzgate runs from the environment alone, like Conduktor Gateway's container.

mod clusters;
pub mod jaas;
pub mod security;
pub mod sources;

pub use clusters::{BackendSecuritySpec, BuiltCluster, ClusterProperties, SaslCredentials, build_clusters};
pub use security::{ClientAuth, RoutingMechanism, SecurityProtocol, SniConfig, TlsConfig};
pub use sources::Env;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use franzgate_api::topology::{AdvertisedAddress, BackendCluster, BrokerNaming, SniNames};
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
    /// Backend clusters by name, each a map of Kafka client properties (the seed's cluster-config format).
    #[serde(default)]
    pub clusters: IndexMap<String, ClusterProperties>,
    /// The filter chain, outermost first.
    #[serde(default)]
    pub filters: Vec<FilterSpec>,
    /// Where `clusters` came from and how its keys are spelled there, for error messages.
    #[serde(skip)]
    pub cluster_origin: Option<(String, &'static str)>,
}

/// A user of the admin HTTP API, in Conduktor's `GATEWAY_ADMIN_API_USERS` format.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct AdminUser {
    /// The basic-auth user name.
    pub username: String,
    /// The basic-auth password.
    pub password: String,
    /// Only admins may switch clusters; others may read.
    #[serde(default)]
    pub admin: bool,
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
    /// Bytes one client connection may have buffered in the gateway — requests read but not yet written to the
    /// broker, responses read but not yet written to the client — before the gateway stops reading from the
    /// client (requests) or from the broker for it (responses). One frame may pass it.
    pub session_buffer_bytes: usize,
    /// Bytes all client connections together may have buffered; a connection holding nothing may still read
    /// one frame, so sessions whose clients do not read cannot stall the others.
    pub memory_budget_bytes: usize,
    /// How long one backend connection attempt may take.
    pub connect_timeout_ms: u64,
    /// The admin HTTP API's port (bound on `bind_host`).
    pub http_port: u16,
    /// Admin API users; when unset, `admin`/`conduktor` with a warning at start-up, as Conduktor does.
    pub admin_users: Option<Vec<AdminUser>>,
    /// After a switch, how long sessions of the old cluster may take to answer their in-flight requests.
    pub switch_drain_timeout_ms: u64,
    /// How clients connect: PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL.
    pub security_protocol: SecurityProtocol,
    /// Port per broker, or SNI host names on one TLS port.
    pub routing: RoutingMechanism,
    /// Host names under host routing.
    pub sni: SniConfig,
    /// The TLS server settings (required by SSL, SASL_SSL and host routing).
    pub tls: Option<TlsConfig>,
    /// SASL users and mechanisms (required by SASL_PLAINTEXT and SASL_SSL).
    pub authentication: Option<franzgate_filters::sasl::SaslConfig>,
    /// Chargeback label limits and time windows.
    pub chargeback: ChargebackConfig,
    /// Time every filter per request (`franzgate_filter_duration_seconds`); costs a boxed future and two clock
    /// reads per filter per request, so it is off unless asked for.
    pub filter_latency_metrics: bool,
    /// Count the Kafka error codes of responses (`franzgate_response_errors_total`); decodes every response
    /// body the filters left undecoded, so it is off unless asked for.
    pub error_code_metrics: bool,
    /// Client connections the gateway holds at most (0: no limit); more are closed at once.
    pub max_connections: usize,
    /// Client connections one source address may hold (0: no limit).
    pub max_connections_per_ip: usize,
    /// A client connection with nothing in flight and no request for this long is closed (0: never), like
    /// Kafka's `connections.max.idle.ms`.
    pub idle_timeout_ms: u64,
    /// Virtual clusters (tenants): where their state is kept, and whether every principal must belong to one.
    pub virtual_clusters: VirtualClustersConfig,
    /// How the instances of a fleet share the switch decision (with a failover cluster configured).
    pub fleet: FleetConfig,
    /// Automatic failover (off by default).
    pub failover: FailoverConfig,
    /// The largest request body the admin API reads; a bigger one gets 413 and changes nothing.
    pub admin_max_body_bytes: usize,
    /// How long a broker may take to answer one request (JoinGroup excepted) before the gateway gives up that
    /// backend connection and closes the session, so the client retries elsewhere (0: no limit).
    pub request_timeout_ms: u64,
    /// On SIGTERM, how long sessions may take, in all, to answer their in-flight requests.
    pub shutdown_drain_timeout_ms: u64,
    /// On SIGTERM, the pause between closing one broker port and the next (librdkafka reports "all brokers
    /// down" when every connection closes at once).
    pub shutdown_port_close_delay_ms: u64,
    /// Admin API connections held at most (0: no limit; the file-descriptor reserve still applies). A new one
    /// past the limit closes the oldest idle one, so idle connections cannot lock out `/health` or operators.
    pub admin_max_connections: usize,
    /// How long an admin API connection may take to send its first request's headers, and a kept-alive one the
    /// rest of a request's headers once it started sending them.
    pub admin_header_read_timeout_ms: u64,
    /// How long a kept-alive admin API connection may wait between requests before it is closed.
    pub admin_idle_timeout_ms: u64,
    /// How long the admin API may take to handle one request (its body included); past it, 503.
    pub admin_request_timeout_ms: u64,
}

/// `gateway.fleet`: the switch decision kept in a control topic on every cluster, followed by every instance.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FleetConfig {
    /// Keep the switch decision in the control topic (`GATEWAY_FLEET_ENABLED`; on by default whenever a
    /// failover cluster is configured). `false`: a switch is this instance's alone, and is lost on restart.
    pub enabled: bool,
    /// The compacted topic, on every cluster, holding the decision and the instances' announcements
    /// (`GATEWAY_CONTROL_TOPIC`); created when missing.
    pub control_topic: String,
    /// This instance's id in the fleet (`GATEWAY_INSTANCE_ID`); by default the advertised host and the admin
    /// port.
    pub instance_id: Option<String>,
    /// How often every cluster's control topic is read.
    pub poll_interval_ms: u64,
    /// How often the instance announces itself.
    pub announce_interval_ms: u64,
    /// At start-up, how long the decision may take to read before the instance serves on what it has.
    pub startup_read_timeout_ms: u64,
}

impl Default for FleetConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            control_topic: "_franzgate_control".into(),
            instance_id: None,
            poll_interval_ms: 300,
            announce_interval_ms: 2_000,
            startup_read_timeout_ms: 10_000,
        }
    }
}

/// `gateway.failover`: the fleet switches to the failover cluster by itself when the primary is down.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FailoverConfig {
    /// Switch automatically (`GATEWAY_FAILOVER_AUTOMATIC`); needs the fleet's control topic.
    pub automatic: bool,
    /// How long the primary must be unreachable (connect, authenticate, answer Metadata) before the switch.
    pub unreachable_for_ms: u64,
    /// How many instances must see the primary down that long (their observations go through the control
    /// topic), so one instance cut off from the primary cannot move the fleet.
    pub quorum: usize,
    /// Switch back to the primary once it has been reachable as long (never, by default).
    pub fail_back: bool,
    /// How often each instance probes the primary and the failover cluster.
    pub probe_interval_ms: u64,
}

impl Default for FailoverConfig {
    fn default() -> Self {
        Self { automatic: false, unreachable_for_ms: 30_000, quorum: 1, fail_back: false, probe_interval_ms: 1_000 }
    }
}

/// `gateway.virtual_clusters`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct VirtualClustersConfig {
    /// Keep virtual clusters in the state topic (the default whenever service-account tokens are enabled).
    /// `false`: no state topic is read or written, and tokens naming a virtual cluster are refused.
    pub enabled: bool,
    /// The compacted topic, on the active cluster, holding virtual clusters and service accounts
    /// (`GATEWAY_STATE_TOPIC`); created when missing. Replicate it with the data so the failover cluster knows
    /// every tenant.
    pub state_topic: String,
    /// How often the state topic is re-read for changes made by other gateway instances.
    pub refresh_interval_ms: u64,
    /// Refuse principals that belong to no virtual cluster instead of passing them through unprefixed
    /// (`GATEWAY_FEATURE_FLAGS_MANDATORY_VCLUSTER`).
    pub mandatory: bool,
    /// Apply state records without a signature, as a franzgate from before signed records wrote them, and
    /// write their current state back signed (`GATEWAY_STATE_ACCEPT_UNSIGNED_RECORDS`). For one start after
    /// upgrading; left on, anyone who can write to the topic on the backend can change tenants and accounts.
    pub accept_unsigned_records: bool,
}

impl Default for VirtualClustersConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            state_topic: "_franzgate_state".into(),
            refresh_interval_ms: 5_000,
            mandatory: false,
            accept_unsigned_records: false,
        }
    }
}

/// `gateway.chargeback`: bounds on what the `chargeback` filter keeps.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ChargebackConfig {
    /// Distinct topics labelled individually; the rest count under `other`.
    pub max_topics: usize,
    /// Distinct client ids labelled individually; the rest count under `other`.
    pub max_client_ids: usize,
    /// The length of one reporting window, seconds.
    pub window_seconds: u64,
    /// How many past windows `/admin/chargeback/v1` reports.
    pub windows_kept: usize,
    /// When set, the usage since the last flush is produced to this topic (on the active cluster, with the
    /// gateway's credentials) every `flush_interval_seconds`, one JSON record per key. Create the topic first.
    pub flush_topic: Option<String>,
    /// Seconds between flushes to `flush_topic`.
    pub flush_interval_seconds: u64,
}

impl Default for ChargebackConfig {
    fn default() -> Self {
        let limits = franzgate_api::usage::UsageLimits::default();
        Self {
            max_topics: limits.max_topics,
            max_client_ids: limits.max_client_ids,
            window_seconds: limits.window_seconds,
            windows_kept: limits.windows_kept,
            flush_topic: None,
            flush_interval_seconds: 60,
        }
    }
}

impl ChargebackConfig {
    /// The ledger limits.
    pub fn limits(&self) -> franzgate_api::usage::UsageLimits {
        franzgate_api::usage::UsageLimits {
            max_topics: self.max_topics,
            max_client_ids: self.max_client_ids,
            window_seconds: self.window_seconds.max(1),
            windows_kept: self.windows_kept.max(1),
        }
    }
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
            session_buffer_bytes: 32 * 1024 * 1024,
            memory_budget_bytes: 1024 * 1024 * 1024,
            connect_timeout_ms: 5_000,
            http_port: 8888,
            admin_users: None,
            switch_drain_timeout_ms: 10_000,
            security_protocol: SecurityProtocol::default(),
            routing: RoutingMechanism::default(),
            sni: SniConfig::default(),
            tls: None,
            authentication: None,
            chargeback: ChargebackConfig::default(),
            filter_latency_metrics: false,
            error_code_metrics: false,
            max_connections: 10_000,
            max_connections_per_ip: 1_000,
            idle_timeout_ms: 600_000,
            virtual_clusters: VirtualClustersConfig::default(),
            fleet: FleetConfig::default(),
            failover: FailoverConfig::default(),
            admin_max_body_bytes: 64 * 1024,
            request_timeout_ms: 120_000,
            shutdown_drain_timeout_ms: 30_000,
            shutdown_port_close_delay_ms: 0,
            admin_max_connections: 128,
            admin_header_read_timeout_ms: 10_000,
            admin_idle_timeout_ms: 30_000,
            admin_request_timeout_ms: 60_000,
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
        if g.session_buffer_bytes < 64 * 1024 {
            return Err(ConfigFileError::new(source, "gateway.session_buffer_bytes: must be at least 65536 (64 KiB)"));
        }
        if g.memory_budget_bytes < g.session_buffer_bytes {
            return Err(ConfigFileError::new(
                source,
                format!(
                    "gateway.memory_budget_bytes: must be at least gateway.session_buffer_bytes ({})",
                    g.session_buffer_bytes
                ),
            ));
        }
        for (key, ms) in [
            ("admin_header_read_timeout_ms", g.admin_header_read_timeout_ms),
            ("admin_idle_timeout_ms", g.admin_idle_timeout_ms),
            ("admin_request_timeout_ms", g.admin_request_timeout_ms),
            ("fleet.poll_interval_ms", g.fleet.poll_interval_ms),
            ("fleet.announce_interval_ms", g.fleet.announce_interval_ms),
        ] {
            if ms == 0 {
                return Err(ConfigFileError::new(source, format!("gateway.{key}: must be at least 1")));
            }
        }
        if g.failover.automatic && !g.fleet.enabled {
            return Err(ConfigFileError::new(source, "gateway.failover.automatic: needs gateway.fleet.enabled"));
        }
        if g.failover.quorum == 0 || g.failover.probe_interval_ms == 0 {
            return Err(ConfigFileError::new(
                source,
                "gateway.failover.quorum and probe_interval_ms: must be at least 1",
            ));
        }
        if g.fleet.enabled && g.fleet.control_topic.trim().is_empty() {
            return Err(ConfigFileError::new(source, "gateway.fleet.control_topic: must not be empty"));
        }
        self.validate_security(source)
    }

    fn validate_security(&self, source: &str) -> Result<(), ConfigFileError> {
        let g = &self.gateway;
        let protocol = g.security_protocol.name();
        if g.security_protocol.uses_tls() && g.tls.is_none() {
            return Err(ConfigFileError::new(
                source,
                format!("gateway.tls: required with security_protocol {protocol} (cert_file and key_file, PEM)"),
            ));
        }
        if g.routing == RoutingMechanism::Host && !g.security_protocol.uses_tls() {
            return Err(ConfigFileError::new(
                source,
                format!(
                    "gateway.routing: host routing reads the TLS server name (SNI), so security_protocol must be \
                     SSL or SASL_SSL, not {protocol}"
                ),
            ));
        }
        if let Some(tls) = &g.tls {
            if tls.client_auth != ClientAuth::None && tls.ca_file.is_none() {
                return Err(ConfigFileError::new(
                    source,
                    "gateway.tls.ca_file: required when client_auth is requested or required",
                ));
            }
            if !g.security_protocol.uses_tls() {
                tracing::warn!("{source}: gateway.tls is set but security_protocol {protocol} does not use TLS");
            }
        }
        let generated = self.generates_token_secret();
        if g.security_protocol.uses_sasl() && g.authentication.is_none() && !generated {
            return Err(ConfigFileError::new(
                source,
                format!(
                    "gateway.authentication: required with security_protocol {protocol} (users, or a token_secret \
                     via GATEWAY_USER_POOL_SECRET_KEY) unless the gateway generates the token secret, which needs \
                     gateway.virtual_clusters.enabled (the state topic keeps the secret) and no \
                     sasl-authentication filter of your own in `filters:`"
                ),
            ));
        }
        if let Some(auth) = &g.authentication {
            let mut auth = auth.clone();
            if generated {
                // Checked as it will run: with the secret generated at start-up.
                auth.token_secret = Some("generated at start-up".into());
            }
            franzgate_filters::sasl::UserDirectory::from_config(&auth)
                .map_err(|e| ConfigFileError::new(source, format!("gateway.authentication.{e}")))?;
        }
        if g.routing == RoutingMechanism::Host && g.sni.host_prefix.is_empty() && g.sni.separator.is_empty() {
            return Err(ConfigFileError::new(source, "gateway.sni: host_prefix and separator cannot both be empty"));
        }
        Ok(())
    }

    /// Whether the gateway generates the service-account token secret at start-up: SASL clients, neither users
    /// nor a token secret configured, virtual clusters enabled (the secret is kept in their state topic, so every
    /// gateway instance using that topic shares it), and the SASL filter added by the gateway itself rather than
    /// listed in `filters:` with a config of its own.
    pub fn generates_token_secret(&self) -> bool {
        let g = &self.gateway;
        let auth = g.authentication.as_ref();
        let no_secret = auth.and_then(|a| a.token_secret.as_deref()).is_none_or(str::is_empty);
        let no_users = auth.is_none_or(|a| a.users.is_empty());
        let own_sasl_filter = self.filters.iter().any(|f| f.kind == franzgate_filters::sasl::TYPE_NAME);
        g.security_protocol.uses_sasl() && no_secret && no_users && g.virtual_clusters.enabled && !own_sasl_filter
    }

    /// The address clients are told to use; `primary_cluster` names host-routing brokers unless
    /// `gateway.sni.cluster_id` does.
    pub fn advertised(&self, primary_cluster: &str) -> AdvertisedAddress {
        let g = &self.gateway;
        let mut advertised = AdvertisedAddress::ports(g.advertised_host.clone(), g.port_start, g.port_count);
        if g.routing == RoutingMechanism::Host {
            advertised.naming = BrokerNaming::Host(SniNames {
                prefix: g.sni.host_prefix.clone(),
                cluster_id: g.sni.cluster_id.clone().unwrap_or_else(|| primary_cluster.to_string()),
                separator: g.sni.separator.clone(),
                port: g.sni.advertised_port.unwrap_or(g.port_start),
            });
        }
        advertised
    }

    /// The backend connection timeout.
    pub fn connect_timeout(&self) -> Duration {
        Duration::from_millis(self.gateway.connect_timeout_ms)
    }

    /// Builds the backend clusters, checking each one's properties; `source` names the YAML file.
    pub fn backend_clusters(&self, source: &str) -> Result<Vec<Arc<BackendCluster>>, ConfigFileError> {
        Ok(self.built_clusters(source)?.into_iter().map(|b| b.cluster).collect())
    }

    /// Builds the backend clusters with their connection security; `source` names the YAML file.
    pub fn built_clusters(&self, source: &str) -> Result<Vec<BuiltCluster>, ConfigFileError> {
        match &self.cluster_origin {
            Some((origin, prefix)) => build_clusters(&self.clusters, origin, prefix),
            None => build_clusters(&self.clusters, source, "clusters."),
        }
    }

    /// The configuration the binary runs with: the YAML file if given (else the defaults), overridden by the
    /// environment. Returns the config and a name for its source.
    pub fn load(file: Option<&Path>, env: &Env) -> Result<(Self, String), ConfigFileError> {
        for warning in sources::unknown_variables(env) {
            tracing::warn!("{warning}");
        }
        let (mut config, source) = match file {
            Some(path) => (Self::from_file(path)?, path.display().to_string()),
            None => (Self::from_yaml("{}", "<defaults>")?, "environment".to_string()),
        };
        sources::apply_gateway_env(&mut config.gateway, env)?;
        if let Some(env_clusters) = sources::clusters_from_env(env)? {
            config.clusters = env_clusters.clusters;
            config.cluster_origin = Some((env_clusters.origin, env_clusters.key_prefix));
        }
        config.validate(&source)?;
        config.backend_clusters(&source)?;
        Ok((config, source))
    }

    /// The admin API users, and whether they are the built-in default (which deserves a warning).
    pub fn admin_users(&self) -> (Vec<AdminUser>, bool) {
        match &self.gateway.admin_users {
            Some(users) => (users.clone(), false),
            None => (vec![AdminUser { username: "admin".into(), password: "conduktor".into(), admin: true }], true),
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_minimal_config_takes_the_defaults() {
        let c = GatewayConfig::from_yaml("clusters: {main: {bootstrap.servers: 'k:9092'}}", "t.yaml");
        let c = c.expect("valid");
        assert_eq!((c.gateway.port_start, c.gateway.http_port), (6969, 8888));
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

        let c = GatewayConfig::from_yaml("clusters: {main: {bootstrap.servers: 'nohost'}}", "gw.yaml").expect("parses");
        let e = c.backend_clusters("gw.yaml").err().map(|e| e.to_string()).unwrap_or_default();
        assert!(e.starts_with("gw.yaml: clusters.main.bootstrap.servers"), "{e}");
    }

    #[test]
    fn the_environment_alone_configures_a_seed_style_gateway() {
        use franzgate_api::topology::ClusterRole::{Failover, Main};
        let env = Env::from_pairs([
            ("KAFKA_MAIN_BOOTSTRAP_SERVERS", "primary:9092"),
            ("KAFKA_FAILOVER_BOOTSTRAP_SERVERS", "secondary:9092"),
            ("KAFKA_FAILOVER_GATEWAY_ROLES", "failover"),
            ("GATEWAY_PORT_START", "7969"),
        ]);
        let (config, source) = GatewayConfig::load(None, &env).expect("loads");
        assert_eq!(source, "environment");
        assert_eq!(config.gateway.port_start, 7969);
        let clusters = config.backend_clusters(&source).expect("clusters");
        let names: Vec<_> = clusters.iter().map(|c| (c.name.as_str(), c.role)).collect();
        assert_eq!(names, vec![("main", Main), ("failover", Failover)]);
        assert!(config.admin_users().1, "no GATEWAY_ADMIN_API_USERS: the default user, flagged for a warning");
    }

    /// SASL with neither users nor a token secret, and no state topic to keep a generated secret in.
    const SASL_WITHOUT_STATE_TOPIC: &str =
        "gateway: {security_protocol: SASL_PLAINTEXT, virtual_clusters: {enabled: false}}";

    #[test]
    fn multi_line_messages_have_single_spaces() {
        let host_routing = GatewayConfig::from_yaml("gateway: {routing: host}", "gw.yaml").expect_err("no TLS");
        let sasl = GatewayConfig::from_yaml(SASL_WITHOUT_STATE_TOPIC, "gw.yaml").expect_err("no auth");
        let jks =
            GatewayConfig::load(None, &Env::from_pairs([("GATEWAY_SSL_KEY_STORE_PATH", "/k.jks")])).expect_err("JKS");
        for e in [host_routing, sasl, jks] {
            let e = e.to_string();
            assert!(!e.contains("  "), "a line continuation left a run of spaces: {e}");
        }
    }

    /// The seed's gateway1 (Conduktor Gateway 2.x/3.0 variables), with no token secret.
    const GATEWAY1: &[(&str, &str)] = &[
        ("KAFKA_MAIN_BOOTSTRAP_SERVERS", "kafka1:9092"),
        ("GATEWAY_ADVERTISED_HOST", "localhost"),
        ("GATEWAY_MODE", "VCLUSTER"),
        ("GATEWAY_SECURITY_PROTOCOL", "SASL_PLAINTEXT"),
        ("GATEWAY_FEATURE_FLAGS_MULTI_TENANCY", "true"),
        ("GATEWAY_FEATURE_FLAGS_ANALYTICS", "false"),
        ("GATEWAY_CLUSTER_ID", "gateway-cluster"),
        ("GATEWAY_ADMIN_API_USERS", "[{username: admin, password: conduktor, admin: true}]"),
    ];

    fn env_with(extra: &[(&'static str, &'static str)]) -> Env {
        Env::from_pairs(GATEWAY1.iter().chain(extra).copied())
    }

    #[test]
    fn the_seed_gateway1_variables_start_a_gateway_that_generates_its_token_secret() {
        let (config, source) = GatewayConfig::load(None, &env_with(&[])).expect("gateway1's variables load");
        assert!(config.generates_token_secret());
        assert!(config.gateway.virtual_clusters.enabled);
        assert_eq!(config.gateway.cluster_id.as_deref(), Some("gateway-cluster"));
        let gateway = crate::Gateway::new(&config, &crate::FilterRegistry::with_builtins(), &source);
        let names = gateway.expect("the gateway builds").chain_names();
        assert_eq!(names.first().map(String::as_str), Some("sasl-authentication"), "{names:?}");
        // gateway2 differs by its port, under Conduktor's older name.
        let (config, _) = GatewayConfig::load(None, &env_with(&[("GATEWAY_START_PORT", "7969")])).expect("loads");
        assert_eq!(config.gateway.port_start, 7969);
    }

    #[test]
    fn a_configured_secret_or_users_mean_nothing_is_generated() {
        let (config, _) = GatewayConfig::load(None, &env_with(&[("GATEWAY_USER_POOL_SECRET_KEY", "s")])).expect("ok");
        assert!(!config.generates_token_secret());
        use franzgate_auth::scram::{ScramCredential, ScramMechanism};
        let credential = ScramCredential::generate(ScramMechanism::Sha256, "pw", 4096).expect("credential");
        let users = format!(
            "gateway:\n  security_protocol: SASL_PLAINTEXT\n  authentication:\n    \
             users: [{{username: u, credentials: ['{credential}']}}]\n"
        );
        let config = GatewayConfig::from_yaml(&users, "gw.yaml").expect("valid");
        assert!(!config.generates_token_secret());
        let plaintext = GatewayConfig::from_yaml("{}", "gw.yaml").expect("valid");
        assert!(!plaintext.generates_token_secret(), "no SASL, no tokens to verify");
    }

    #[test]
    fn without_virtual_clusters_there_is_nowhere_to_keep_a_generated_secret() {
        let security = Env::from_pairs([
            ("KAFKA_MAIN_BOOTSTRAP_SERVERS", "kafka1:9092"),
            ("GATEWAY_MODE", "GATEWAY_SECURITY"),
            ("GATEWAY_SECURITY_PROTOCOL", "SASL_PLAINTEXT"),
        ]);
        let generated = GatewayConfig::load(None, &security).map(|(c, _)| c.generates_token_secret());
        assert_eq!(generated.ok(), Some(true), "virtual clusters are on by default");
        let off = Env::from_pairs([
            ("KAFKA_MAIN_BOOTSTRAP_SERVERS", "kafka1:9092"),
            ("GATEWAY_SECURITY_PROTOCOL", "SASL_PLAINTEXT"),
            ("GATEWAY_FEATURE_FLAGS_MULTI_TENANCY", "false"),
        ]);
        let e = GatewayConfig::load(None, &off).expect_err("no state topic").to_string();
        assert!(e.starts_with("environment: gateway.authentication: required with security_protocol SASL_PLAINTEXT"));
        assert!(e.contains("gateway.virtual_clusters.enabled"), "{e}");
    }

    #[test]
    fn every_example_config_parses_and_validates() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config-examples");
        let mut checked = 0;
        for entry in std::fs::read_dir(&dir).expect("config-examples") {
            let path = entry.expect("entry").path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_string();
            // The seed's cluster-config files are another format, read through GATEWAY_BACKEND_KAFKA_SELECTOR.
            if !name.ends_with(".yaml") || name.starts_with("cluster-config") {
                continue;
            }
            let config = GatewayConfig::from_file(&path).unwrap_or_else(|e| panic!("{e}"));
            config.backend_clusters(&name).unwrap_or_else(|e| panic!("{e}"));
            checked += 1;
        }
        assert!(checked >= 6, "only {checked} examples found");
    }

    #[test]
    fn the_selector_file_overrides_yaml_clusters_and_its_errors_name_that_file() {
        let dir = tempfile::tempdir().expect("dir");
        let seed = dir.path().join("cluster-config.yaml");
        let text = "config:\n  main:\n    bootstrap.servers: a:1\n  failover:\n    bootstrap.servers: b\n    gateway.roles: failover\n";
        std::fs::write(&seed, text).expect("write");
        let selector = format!("file : {{ path: {}}}", seed.display());
        let env = Env::from_pairs([("GATEWAY_BACKEND_KAFKA_SELECTOR", selector.as_str())]);
        let e = GatewayConfig::load(None, &env).expect_err("b has no port");
        assert!(e.to_string().starts_with(&format!("{}: config.failover.bootstrap.servers", seed.display())), "{e}");
        let missing = Env::from_pairs([("GATEWAY_BACKEND_KAFKA_SELECTOR", "file: {path: /nonexistent.yaml}")]);
        assert!(GatewayConfig::load(None, &missing).expect_err("missing").to_string().contains("/nonexistent.yaml"));
    }
}
