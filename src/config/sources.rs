//! Configuration from the environment, the way Conduktor Gateway's container reads it.
//!
//! Precedence (highest first), documented in the README:
//! 1. `GATEWAY_*` variables override the matching `gateway:` keys of the YAML file (or the defaults).
//! 2. Backend clusters come from exactly one source, the first present of: the file named by
//!    `GATEWAY_BACKEND_KAFKA_SELECTOR` (the seed's cluster-config format), `KAFKA_<ID>_<PROPERTY>` variables,
//!    the YAML's `clusters:`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use indexmap::IndexMap;
use serde::Deserialize;

use super::clusters::ClusterProperties;
use super::{AdminUser, ClientAuth, ConfigFileError, ListenerConfig, TlsConfig};

/// A snapshot of environment variables (injectable, so tests need not touch the process environment).
#[derive(Debug, Clone, Default)]
pub struct Env(BTreeMap<String, String>);

impl Env {
    /// The process environment.
    pub fn from_process() -> Self {
        Self(std::env::vars().collect())
    }

    /// Given variables.
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        Self(pairs.into_iter().map(|(k, v)| (k.to_string(), v.to_string())).collect())
    }

    /// One variable, if set and not blank.
    pub fn get(&self, name: &str) -> Option<&str> {
        debug_assert!(
            !name.starts_with("GATEWAY_") || KNOWN_VARIABLES.contains(&name),
            "{name} is read but missing from KNOWN_VARIABLES: it would be warned about as unknown"
        );
        self.0.get(name).map(String::as_str).filter(|v| !v.trim().is_empty())
    }
}

/// Every `GATEWAY_*` variable franzgate reads: here, and `GATEWAY_LOG_FORMAT` in main.rs. Any other `GATEWAY_*`
/// variable gets a warning at start-up ([`unknown_variables`]). [`Env::get`] asserts (in debug builds) that a
/// `GATEWAY_*` name it reads is listed, and a test checks every name in this file and main.rs, so the list and
/// the parser cannot drift apart.
pub const KNOWN_VARIABLES: &[&str] = &[
    "GATEWAY_ADVERTISED_HOST",
    "GATEWAY_BIND_HOST",
    "GATEWAY_PORT_START",
    "GATEWAY_START_PORT",
    "GATEWAY_PORT_COUNT",
    "GATEWAY_HTTP_PORT",
    "GATEWAY_SWITCH_DRAIN_TIMEOUT_MS",
    "GATEWAY_MAX_CONNECTIONS",
    "GATEWAY_MAX_CONNECTIONS_PER_IP",
    "GATEWAY_SESSION_BUFFER_BYTES",
    "GATEWAY_MEMORY_BUDGET_BYTES",
    "GATEWAY_IDLE_TIMEOUT_MS",
    "GATEWAY_ADMIN_MAX_BODY_BYTES",
    "GATEWAY_REQUEST_TIMEOUT_MS",
    "GATEWAY_SHUTDOWN_DRAIN_TIMEOUT_MS",
    "GATEWAY_SHUTDOWN_PORT_CLOSE_DELAY_MS",
    "GATEWAY_ADMIN_MAX_CONNECTIONS",
    "GATEWAY_ADMIN_HEADER_READ_TIMEOUT_MS",
    "GATEWAY_ADMIN_IDLE_TIMEOUT_MS",
    "GATEWAY_ADMIN_REQUEST_TIMEOUT_MS",
    "GATEWAY_MODE",
    "GATEWAY_SECURITY_MODE",
    "GATEWAY_FEATURE_FLAGS_MANDATORY_VCLUSTER",
    "GATEWAY_FEATURE_FLAGS_MULTI_TENANCY",
    "GATEWAY_FEATURE_FLAGS_ANALYTICS",
    "GATEWAY_STATE_TOPIC",
    "GATEWAY_CONTROL_TOPIC",
    "GATEWAY_INSTANCE_ID",
    "GATEWAY_FLEET_ENABLED",
    "GATEWAY_FAILOVER_AUTOMATIC",
    "GATEWAY_STATE_ACCEPT_UNSIGNED_RECORDS",
    "GATEWAY_CLUSTER_ID",
    "GATEWAY_ADMIN_API_USERS",
    "GATEWAY_SECURITY_PROTOCOL",
    "GATEWAY_ROUTING_MECHANISM",
    "GATEWAY_ADVERTISED_HOST_PREFIX",
    "GATEWAY_SNI_HOST_SEPARATOR",
    "GATEWAY_SNI_CLUSTER_ID",
    "GATEWAY_ADVERTISED_SNI_PORT",
    "GATEWAY_SSL_KEY_STORE_PATH",
    "GATEWAY_SSL_TRUST_STORE_PATH",
    "GATEWAY_SSL_CERT_FILE",
    "GATEWAY_SSL_KEY_FILE",
    "GATEWAY_SSL_CLIENT_AUTH",
    "GATEWAY_SSL_CA_FILE",
    "GATEWAY_SSL_PRINCIPAL_MAPPING_RULES",
    "GATEWAY_USER_POOL_SECRET_KEY",
    "GATEWAY_BACKEND_KAFKA_SELECTOR",
    "GATEWAY_LOG_FORMAT",
];

/// One warning per `GATEWAY_*` variable that is set but not one franzgate reads (a typo, or a Conduktor setting
/// franzgate does not have), with the closest known name when one is close.
pub fn unknown_variables(env: &Env) -> Vec<String> {
    env.0
        .keys()
        .filter(|name| name.to_ascii_uppercase().starts_with("GATEWAY_") && !KNOWN_VARIABLES.contains(&name.as_str()))
        .map(|name| match closest_known(name) {
            Some(known) => format!("unknown environment variable {name}, ignored; did you mean {known}?"),
            None => format!("unknown environment variable {name}, ignored"),
        })
        .collect()
}

/// The known variable nearest to `name` by edit distance (case aside), if it is near enough to be a typo.
fn closest_known(name: &str) -> Option<&'static str> {
    let upper = name.to_ascii_uppercase();
    let (distance, known) = KNOWN_VARIABLES.iter().map(|k| (edit_distance(&upper, k), *k)).min()?;
    let suffix = upper.len().saturating_sub("GATEWAY_".len());
    (distance <= (suffix / 3).max(2)).then_some(known)
}

/// Levenshtein distance over bytes.
fn edit_distance(a: &str, b: &str) -> usize {
    let b = b.as_bytes();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.bytes().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitution = diagonal + usize::from(ca != *cb);
            diagonal = row[j + 1];
            row[j + 1] = substitution.min(row[j] + 1).min(diagonal + 1);
        }
    }
    row[b.len()]
}

fn env_error(name: &str, message: impl std::fmt::Display) -> ConfigFileError {
    ConfigFileError::new(format!("environment variable {name}"), message.to_string())
}

fn parse_env<T: std::str::FromStr>(env: &Env, name: &str, target: &mut T) -> Result<(), ConfigFileError>
where
    T::Err: std::fmt::Display,
{
    if let Some(value) = parse_opt(env, name)? {
        *target = value;
    }
    Ok(())
}

fn parse_opt<T: std::str::FromStr>(env: &Env, name: &str) -> Result<Option<T>, ConfigFileError>
where
    T::Err: std::fmt::Display,
{
    env.get(name).map(|value| value.trim().parse().map_err(|e| env_error(name, format!("`{value}`: {e}")))).transpose()
}

/// A feature flag: `true` or `false`, in any case (Conduktor's flags are booleans).
struct Flag(bool);

impl std::str::FromStr for Flag {
    type Err = &'static str;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "true" => Ok(Self(true)),
            "false" => Ok(Self(false)),
            _ => Err("expected true or false"),
        }
    }
}

fn parse_flag(env: &Env, name: &str) -> Result<Option<bool>, ConfigFileError> {
    Ok(parse_opt::<Flag>(env, name)?.map(|f| f.0))
}

/// Conduktor's `GATEWAY_MODE` (Gateway 2.x and 3.0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum GatewayMode {
    /// Tenants: virtual clusters, service accounts logging in with tokens.
    Vcluster,
    /// The gateway authenticates clients; no tenants required.
    GatewaySecurity,
    /// Clients' credentials are passed to Kafka, which authenticates them.
    KafkaSecurity,
}

impl std::str::FromStr for GatewayMode {
    type Err = &'static str;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_uppercase().as_str() {
            "VCLUSTER" => Ok(Self::Vcluster),
            "GATEWAY_SECURITY" => Ok(Self::GatewaySecurity),
            "KAFKA_SECURITY" => Ok(Self::KafkaSecurity),
            _ => Err("not one of VCLUSTER, GATEWAY_SECURITY, KAFKA_SECURITY"),
        }
    }
}

/// Conduktor's `GATEWAY_SECURITY_MODE` (Gateway 3.10 on): who authenticates clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SecurityMode {
    /// The gateway.
    GatewayManaged,
    /// Kafka, with the clients' own credentials passed through.
    KafkaManaged,
}

impl std::str::FromStr for SecurityMode {
    type Err = &'static str;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_uppercase().as_str() {
            "GATEWAY_MANAGED" => Ok(Self::GatewayManaged),
            "KAFKA_MANAGED" => Ok(Self::KafkaManaged),
            _ => Err("not one of GATEWAY_MANAGED, KAFKA_MANAGED"),
        }
    }
}

/// Applies the `GATEWAY_*` variables to the `gateway:` section.
pub fn apply_gateway_env(gateway: &mut ListenerConfig, env: &Env) -> Result<(), ConfigFileError> {
    if let Some(host) = env.get("GATEWAY_ADVERTISED_HOST") {
        gateway.advertised_host = host.trim().to_string();
    }
    if let Some(host) = env.get("GATEWAY_BIND_HOST") {
        gateway.bind_host = host.trim().to_string();
    }
    apply_port_start(gateway, env)?;
    parse_env(env, "GATEWAY_PORT_COUNT", &mut gateway.port_count)?;
    parse_env(env, "GATEWAY_HTTP_PORT", &mut gateway.http_port)?;
    parse_env(env, "GATEWAY_SWITCH_DRAIN_TIMEOUT_MS", &mut gateway.switch_drain_timeout_ms)?;
    parse_env(env, "GATEWAY_MAX_CONNECTIONS", &mut gateway.max_connections)?;
    parse_env(env, "GATEWAY_MAX_CONNECTIONS_PER_IP", &mut gateway.max_connections_per_ip)?;
    parse_env(env, "GATEWAY_SESSION_BUFFER_BYTES", &mut gateway.session_buffer_bytes)?;
    parse_env(env, "GATEWAY_MEMORY_BUDGET_BYTES", &mut gateway.memory_budget_bytes)?;
    parse_env(env, "GATEWAY_IDLE_TIMEOUT_MS", &mut gateway.idle_timeout_ms)?;
    parse_env(env, "GATEWAY_ADMIN_MAX_BODY_BYTES", &mut gateway.admin_max_body_bytes)?;
    parse_env(env, "GATEWAY_REQUEST_TIMEOUT_MS", &mut gateway.request_timeout_ms)?;
    parse_env(env, "GATEWAY_SHUTDOWN_DRAIN_TIMEOUT_MS", &mut gateway.shutdown_drain_timeout_ms)?;
    parse_env(env, "GATEWAY_SHUTDOWN_PORT_CLOSE_DELAY_MS", &mut gateway.shutdown_port_close_delay_ms)?;
    parse_env(env, "GATEWAY_ADMIN_MAX_CONNECTIONS", &mut gateway.admin_max_connections)?;
    parse_env(env, "GATEWAY_ADMIN_HEADER_READ_TIMEOUT_MS", &mut gateway.admin_header_read_timeout_ms)?;
    parse_env(env, "GATEWAY_ADMIN_IDLE_TIMEOUT_MS", &mut gateway.admin_idle_timeout_ms)?;
    parse_env(env, "GATEWAY_ADMIN_REQUEST_TIMEOUT_MS", &mut gateway.admin_request_timeout_ms)?;
    if let Some(mandatory) = parse_flag(env, "GATEWAY_FEATURE_FLAGS_MANDATORY_VCLUSTER")? {
        gateway.virtual_clusters.mandatory = mandatory;
    }
    if let Some(topic) = env.get("GATEWAY_STATE_TOPIC") {
        gateway.virtual_clusters.state_topic = topic.trim().to_string();
    }
    if let Some(topic) = env.get("GATEWAY_CONTROL_TOPIC") {
        gateway.fleet.control_topic = topic.trim().to_string();
    }
    if let Some(id) = env.get("GATEWAY_INSTANCE_ID") {
        gateway.fleet.instance_id = Some(id.trim().to_string());
    }
    if let Some(enabled) = parse_flag(env, "GATEWAY_FLEET_ENABLED")? {
        gateway.fleet.enabled = enabled;
    }
    if let Some(automatic) = parse_flag(env, "GATEWAY_FAILOVER_AUTOMATIC")? {
        gateway.failover.automatic = automatic;
    }
    if let Some(accept) = parse_flag(env, "GATEWAY_STATE_ACCEPT_UNSIGNED_RECORDS")? {
        gateway.virtual_clusters.accept_unsigned_records = accept;
    }
    if let Some(id) = env.get("GATEWAY_CLUSTER_ID") {
        gateway.cluster_id = Some(id.trim().to_string());
    }
    apply_security_env(gateway, env)?;
    apply_modes(gateway, env)?;
    if let Some(users) = env.get("GATEWAY_ADMIN_API_USERS") {
        // Conduktor's format is a YAML flow sequence: [{username: admin, password: conduktor, admin: true}]
        let parsed: Vec<AdminUser> = serde_yaml::from_str(users).map_err(|e| {
            env_error(
                "GATEWAY_ADMIN_API_USERS",
                format!(
                    "expected \
                [{{username: NAME, password: SECRET, admin: true}}, ...]: {e}"
                ),
            )
        })?;
        gateway.admin_users = Some(parsed);
    }
    Ok(())
}

/// `GATEWAY_PORT_START`, or `GATEWAY_START_PORT`, Conduktor's older name for it.
fn apply_port_start(gateway: &mut ListenerConfig, env: &Env) -> Result<(), ConfigFileError> {
    let current: Option<u16> = parse_opt(env, "GATEWAY_PORT_START")?;
    let older: Option<u16> = parse_opt(env, "GATEWAY_START_PORT")?;
    match (current, older) {
        (Some(current), Some(older)) if current != older => Err(env_error(
            "GATEWAY_START_PORT",
            format!(
                "`{older}` differs from GATEWAY_PORT_START `{current}`: both set the first broker port \
                 (GATEWAY_START_PORT is Conduktor's older name for GATEWAY_PORT_START); set only one"
            ),
        )),
        (Some(port), _) | (None, Some(port)) => {
            gateway.port_start = port;
            Ok(())
        }
        (None, None) => Ok(()),
    }
}

/// Conduktor's mode variables and feature flags: `GATEWAY_MODE`, `GATEWAY_SECURITY_MODE`,
/// `GATEWAY_FEATURE_FLAGS_MULTI_TENANCY` and `GATEWAY_FEATURE_FLAGS_ANALYTICS`. Applied after the security
/// protocol is known, which decides whether a Kafka-managed mode can be honoured.
fn apply_modes(gateway: &mut ListenerConfig, env: &Env) -> Result<(), ConfigFileError> {
    let mode: Option<GatewayMode> = parse_opt(env, "GATEWAY_MODE")?;
    let security_mode: Option<SecurityMode> = parse_opt(env, "GATEWAY_SECURITY_MODE")?;
    let multi_tenancy = parse_flag(env, "GATEWAY_FEATURE_FLAGS_MULTI_TENANCY")?;
    let protocol = gateway.security_protocol;
    // franzgate authenticates to each cluster with that cluster's own credentials (auth decoupling): there is no
    // way to hand a client's SASL credentials on to Kafka. Without SASL there is nothing to hand on.
    let kafka_managed = [
        ("GATEWAY_MODE", mode == Some(GatewayMode::KafkaSecurity), "KAFKA_SECURITY", "VCLUSTER or GATEWAY_SECURITY"),
        (
            "GATEWAY_SECURITY_MODE",
            security_mode == Some(SecurityMode::KafkaManaged),
            "KAFKA_MANAGED",
            "GATEWAY_MANAGED",
        ),
    ];
    for (name, set, value, instead) in kafka_managed {
        if set && protocol.uses_sasl() {
            return Err(env_error(
                name,
                format!(
                    "{value} with security protocol {}: franzgate does not pass clients' credentials on to Kafka; \
                     it authenticates clients itself and connects to each cluster with that cluster's own KAFKA_* \
                     credentials. Use {name}={instead}",
                    protocol.name()
                ),
            ));
        }
    }
    if multi_tenancy == Some(false) && mode == Some(GatewayMode::Vcluster) {
        return Err(env_error(
            "GATEWAY_FEATURE_FLAGS_MULTI_TENANCY",
            "`false` contradicts GATEWAY_MODE=VCLUSTER, which turns virtual clusters on; set one of them",
        ));
    }
    if mode == Some(GatewayMode::Vcluster) || multi_tenancy == Some(true) {
        gateway.virtual_clusters.enabled = true;
    } else if multi_tenancy == Some(false) {
        gateway.virtual_clusters.enabled = false;
    }
    if let Some(analytics) = parse_flag(env, "GATEWAY_FEATURE_FLAGS_ANALYTICS")? {
        tracing::info!(
            "GATEWAY_FEATURE_FLAGS_ANALYTICS={analytics}: accepted for compatibility; franzgate sends no analytics \
             anywhere, whatever its value"
        );
    }
    Ok(())
}

/// The client-facing security variables (Conduktor's names where Conduktor has one).
fn apply_security_env(gateway: &mut ListenerConfig, env: &Env) -> Result<(), ConfigFileError> {
    parse_env(env, "GATEWAY_SECURITY_PROTOCOL", &mut gateway.security_protocol)?;
    parse_env(env, "GATEWAY_ROUTING_MECHANISM", &mut gateway.routing)?;
    if let Some(prefix) = env.get("GATEWAY_ADVERTISED_HOST_PREFIX") {
        gateway.sni.host_prefix = prefix.trim().to_string();
    }
    if let Some(separator) = env.get("GATEWAY_SNI_HOST_SEPARATOR") {
        gateway.sni.separator = separator.trim().to_string();
    }
    if let Some(id) = env.get("GATEWAY_SNI_CLUSTER_ID") {
        gateway.sni.cluster_id = Some(id.trim().to_string());
    }
    if let Some(port) = env.get("GATEWAY_ADVERTISED_SNI_PORT") {
        let port =
            port.trim().parse().map_err(|e| env_error("GATEWAY_ADVERTISED_SNI_PORT", format!("`{port}`: {e}")))?;
        gateway.sni.advertised_port = Some(port);
    }
    for name in ["GATEWAY_SSL_KEY_STORE_PATH", "GATEWAY_SSL_TRUST_STORE_PATH"] {
        if let Some(path) = env.get(name) {
            let lower = path.to_ascii_lowercase();
            if [".jks", ".p12", ".pfx", ".keystore", ".truststore"].iter().any(|ext| lower.ends_with(ext)) {
                return Err(env_error(
                    name,
                    format!(
                        "`{path}`: JKS and PKCS12 stores are not supported; give PEM files with GATEWAY_SSL_CERT_FILE, \
                         GATEWAY_SSL_KEY_FILE and GATEWAY_SSL_CA_FILE"
                    ),
                ));
            }
        }
    }
    // A PEM "key store" holds the certificate chain and the key in one file.
    let cert = env.get("GATEWAY_SSL_CERT_FILE").or(env.get("GATEWAY_SSL_KEY_STORE_PATH"));
    let key = env.get("GATEWAY_SSL_KEY_FILE").or(env.get("GATEWAY_SSL_KEY_STORE_PATH"));
    match (cert, key, gateway.tls.as_mut()) {
        (Some(cert), Some(key), None) => {
            gateway.tls = Some(TlsConfig {
                cert_file: cert.trim().into(),
                key_file: key.trim().into(),
                client_auth: ClientAuth::None,
                ca_file: None,
                principal_mapping_rules: "DEFAULT".into(),
            });
        }
        (cert, key, Some(tls)) => {
            if let Some(cert) = cert {
                tls.cert_file = cert.trim().into();
            }
            if let Some(key) = key {
                tls.key_file = key.trim().into();
            }
        }
        (Some(_), None, None) | (None, Some(_), None) => {
            return Err(env_error(
                "GATEWAY_SSL_CERT_FILE",
                "GATEWAY_SSL_CERT_FILE and GATEWAY_SSL_KEY_FILE must be set together",
            ));
        }
        (None, None, None) => {}
    }
    if let Some(tls) = gateway.tls.as_mut() {
        parse_env(env, "GATEWAY_SSL_CLIENT_AUTH", &mut tls.client_auth)?;
        if let Some(ca) = env.get("GATEWAY_SSL_CA_FILE").or(env.get("GATEWAY_SSL_TRUST_STORE_PATH")) {
            tls.ca_file = Some(ca.trim().into());
        }
        if let Some(rules) = env.get("GATEWAY_SSL_PRINCIPAL_MAPPING_RULES") {
            tls.principal_mapping_rules = rules.trim().to_string();
        }
    }
    if let Some(secret) = env.get("GATEWAY_USER_POOL_SECRET_KEY") {
        let auth = gateway.authentication.get_or_insert_with(Default::default);
        auth.token_secret = Some(secret.to_string());
    }
    Ok(())
}

/// The seed's cluster-config file: `config: { <id>: { <kafka property>: <value>, ... }, ... }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SeedClusterFile {
    config: IndexMap<String, ClusterProperties>,
}

/// Parses `file : { path: /cluster-config.yaml}` and its spacing variants into the path.
pub fn selector_path(selector: &str) -> Result<PathBuf, String> {
    let compact: String = selector.chars().filter(|c| !c.is_whitespace()).collect();
    let path = compact
        .strip_prefix("file:{")
        .and_then(|rest| rest.strip_suffix('}'))
        .and_then(|inner| inner.strip_prefix("path:"))
        .map(|p| p.trim_matches(|c| c == '"' || c == '\''))
        .filter(|p| !p.is_empty())
        .ok_or_else(|| format!("`{selector}` is not of the form `file : {{ path: /cluster-config.yaml }}`"))?;
    // The path itself may contain spaces: take it from the original text, not the compacted one.
    let original = selector
        .find("path")
        .and_then(|i| selector[i + 4..].trim_start().strip_prefix(':'))
        .map(|rest| rest.trim().trim_end_matches('}').trim().trim_matches(|c| c == '"' || c == '\'').to_string());
    Ok(PathBuf::from(original.filter(|p| !p.is_empty()).unwrap_or_else(|| path.to_string())))
}

/// Where the clusters come from, and their properties.
pub struct ClusterSource {
    /// Names the source in errors (a file path or "environment").
    pub origin: String,
    /// How a key is spelled in that source, before `<id>.<property>`.
    pub key_prefix: &'static str,
    /// The clusters.
    pub clusters: IndexMap<String, ClusterProperties>,
}

/// The clusters from the environment, if it names any: the selector file first, else `KAFKA_<ID>_*`.
pub fn clusters_from_env(env: &Env) -> Result<Option<ClusterSource>, ConfigFileError> {
    if let Some(selector) = env.get("GATEWAY_BACKEND_KAFKA_SELECTOR") {
        let path = selector_path(selector).map_err(|e| env_error("GATEWAY_BACKEND_KAFKA_SELECTOR", e))?;
        let origin = path.display().to_string();
        let text = std::fs::read_to_string(&path).map_err(|e| {
            ConfigFileError::new(
                &origin,
                format!("cannot read the cluster config named by GATEWAY_BACKEND_KAFKA_SELECTOR: {e}"),
            )
        })?;
        let de = serde_yaml::Deserializer::from_str(&text);
        let file: SeedClusterFile = serde_path_to_error::deserialize(de).map_err(|e| {
            let path = e.path().to_string();
            ConfigFileError::new(&origin, format!("{path}: {}", e.into_inner()))
        })?;
        return Ok(Some(ClusterSource { origin, key_prefix: "config.", clusters: file.config }));
    }
    let mut clusters: IndexMap<String, ClusterProperties> = IndexMap::new();
    for (name, value) in &env.0 {
        let Some((id, property)) = kafka_env_property(name) else { continue };
        clusters.entry(id).or_default().insert(property, serde_yaml::Value::String(value.clone()));
    }
    if clusters.is_empty() {
        return Ok(None);
    }
    // A primary named `main` is listed first, as in the seed.
    clusters.sort_by(|a, _, b, _| (a != "main").cmp(&(b != "main")));
    Ok(Some(ClusterSource { origin: "environment".into(), key_prefix: "KAFKA_", clusters }))
}

/// Property prefixes that mark `KAFKA_<PROPERTY>` (no cluster id) as belonging to the `main` cluster.
const UNSCOPED_PREFIXES: &[&str] = &["bootstrap.", "security.", "sasl.", "ssl.", "client."];

/// `KAFKA_MAIN_BOOTSTRAP_SERVERS` -> (`main`, `bootstrap.servers`); `KAFKA_BOOTSTRAP_SERVERS` -> (`main`, ...).
/// Variables of other tools (`KAFKA_HEAP_OPTS`, ...) are ignored: only known property families count.
fn kafka_env_property(name: &str) -> Option<(String, String)> {
    let rest = name.strip_prefix("KAFKA_")?;
    let dotted = rest.to_ascii_lowercase().replace('_', ".");
    if UNSCOPED_PREFIXES.iter().any(|p| dotted.starts_with(p)) {
        return Some(("main".into(), dotted));
    }
    let (id, property) = dotted.split_once('.')?;
    let known = UNSCOPED_PREFIXES.iter().any(|p| property.starts_with(p)) || property.starts_with("gateway.");
    (known && !id.is_empty()).then(|| (id.to_string(), property.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_selector_tolerates_the_spacing_variants_of_the_seed() {
        for s in [
            "file : { path: /cluster-config.yaml}",
            "file:{path:/cluster-config.yaml}",
            "file : {path : /cluster-config.yaml }",
            "  file: { path: \"/cluster-config.yaml\" }  ",
        ] {
            assert_eq!(selector_path(s), Ok(PathBuf::from("/cluster-config.yaml")), "{s}");
        }
        assert!(selector_path("kafka: {}").is_err());
        assert!(selector_path("file : { path: }").is_err());
    }

    #[test]
    fn kafka_variables_map_to_cluster_and_property() {
        assert_eq!(
            kafka_env_property("KAFKA_MAIN_BOOTSTRAP_SERVERS"),
            Some(("main".into(), "bootstrap.servers".into()))
        );
        assert_eq!(
            kafka_env_property("KAFKA_FAILOVER_GATEWAY_ROLES"),
            Some(("failover".into(), "gateway.roles".into()))
        );
        assert_eq!(kafka_env_property("KAFKA_MAIN_SASL_JAAS_CONFIG"), Some(("main".into(), "sasl.jaas.config".into())));
        assert_eq!(kafka_env_property("KAFKA_BOOTSTRAP_SERVERS"), Some(("main".into(), "bootstrap.servers".into())));
        assert_eq!(kafka_env_property("KAFKA_HEAP_OPTS"), None);
        assert_eq!(kafka_env_property("KAFKAESQUE"), None);
    }

    #[test]
    fn gateway_variables_override_and_bad_values_name_the_variable() {
        let mut g = ListenerConfig::default();
        let env = Env::from_pairs([
            ("GATEWAY_PORT_START", "7000"),
            ("GATEWAY_ADVERTISED_HOST", "gw.example"),
            ("GATEWAY_ADMIN_API_USERS", "[{username: ops, password: pw, admin: true}]"),
        ]);
        apply_gateway_env(&mut g, &env).expect("valid");
        assert_eq!((g.port_start, g.advertised_host.as_str()), (7000, "gw.example"));
        assert_eq!(g.admin_users.as_ref().map(|u| u[0].username.as_str()), Some("ops"));
        let e = apply_gateway_env(&mut g, &Env::from_pairs([("GATEWAY_PORT_COUNT", "many")])).expect_err("bad");
        assert!(e.to_string().starts_with("environment variable GATEWAY_PORT_COUNT: `many`"), "{e}");
        let e = apply_gateway_env(&mut g, &Env::from_pairs([("GATEWAY_ADMIN_API_USERS", "admin:conduktor")]))
            .expect_err("bad");
        assert!(e.to_string().contains("GATEWAY_ADMIN_API_USERS"), "{e}");
    }

    /// The `gateway:` section after applying `pairs` to the defaults, or the error's text.
    fn applied(pairs: &[(&str, &str)]) -> Result<ListenerConfig, String> {
        let mut g = ListenerConfig::default();
        apply_gateway_env(&mut g, &Env::from_pairs(pairs.iter().copied())).map(|()| g).map_err(|e| e.to_string())
    }

    #[test]
    fn gateway_start_port_is_the_older_name_of_gateway_port_start() {
        assert_eq!(applied(&[("GATEWAY_START_PORT", "7969")]).map(|g| g.port_start), Ok(7969));
        let both = [("GATEWAY_START_PORT", "7969"), ("GATEWAY_PORT_START", " 7969")];
        assert_eq!(applied(&both).map(|g| g.port_start), Ok(7969), "the same port twice is fine");
        let e = applied(&[("GATEWAY_START_PORT", "7969"), ("GATEWAY_PORT_START", "6969")]).expect_err("differ");
        assert!(
            e.starts_with("environment variable GATEWAY_START_PORT: `7969` differs from GATEWAY_PORT_START `6969`")
        );
        assert!(e.contains("set only one"), "{e}");
        let e = applied(&[("GATEWAY_START_PORT", "70000")]).expect_err("not a port");
        assert!(e.starts_with("environment variable GATEWAY_START_PORT: `70000`"), "{e}");
    }

    #[test]
    fn gateway_mode_vcluster_turns_virtual_clusters_on_and_kafka_security_needs_no_sasl() {
        let mut g = ListenerConfig::default();
        g.virtual_clusters.enabled = false;
        apply_gateway_env(&mut g, &Env::from_pairs([("GATEWAY_MODE", "VCLUSTER")])).expect("valid");
        assert!(g.virtual_clusters.enabled, "VCLUSTER overrides a file's `enabled: false`");
        assert!(!g.virtual_clusters.mandatory, "mandatory stays GATEWAY_FEATURE_FLAGS_MANDATORY_VCLUSTER's");
        assert!(applied(&[("GATEWAY_MODE", "vcluster")]).is_ok(), "any case");

        let mut g = ListenerConfig::default();
        g.virtual_clusters.enabled = false;
        apply_gateway_env(&mut g, &Env::from_pairs([("GATEWAY_MODE", "GATEWAY_SECURITY")])).expect("valid");
        assert!(!g.virtual_clusters.enabled, "GATEWAY_SECURITY leaves virtual clusters as configured");

        let e = applied(&[("GATEWAY_MODE", "TENANTS")]).expect_err("unknown mode");
        assert_eq!(
            e,
            "environment variable GATEWAY_MODE: `TENANTS`: not one of VCLUSTER, GATEWAY_SECURITY, KAFKA_SECURITY"
        );
        let plaintext = applied(&[("GATEWAY_MODE", "KAFKA_SECURITY")]);
        assert!(plaintext.is_ok(), "no client credentials to pass on: {plaintext:?}");
        let sasl = [("GATEWAY_MODE", "KAFKA_SECURITY"), ("GATEWAY_SECURITY_PROTOCOL", "SASL_PLAINTEXT")];
        let e = applied(&sasl).expect_err("credentials cannot be passed on");
        assert!(
            e.starts_with("environment variable GATEWAY_MODE: KAFKA_SECURITY with security protocol SASL_PLAINTEXT")
        );
        assert!(e.contains("Use GATEWAY_MODE=VCLUSTER or GATEWAY_SECURITY") && !e.contains("  "), "{e}");
    }

    #[test]
    fn gateway_security_mode_accepts_gateway_managed_and_refuses_kafka_managed_with_sasl() {
        let sasl = ("GATEWAY_SECURITY_PROTOCOL", "SASL_SSL");
        let tls = [("GATEWAY_SSL_CERT_FILE", "/c.pem"), ("GATEWAY_SSL_KEY_FILE", "/k.pem")];
        assert!(applied(&[("GATEWAY_SECURITY_MODE", "GATEWAY_MANAGED"), sasl, tls[0], tls[1]]).is_ok());
        let e = applied(&[("GATEWAY_SECURITY_MODE", "KAFKA_MANAGED"), sasl, tls[0], tls[1]]).expect_err("refused");
        assert!(
            e.starts_with("environment variable GATEWAY_SECURITY_MODE: KAFKA_MANAGED with security protocol SASL_SSL")
        );
        let e = applied(&[("GATEWAY_SECURITY_MODE", "DELEGATED")]).expect_err("unknown");
        assert_eq!(
            e,
            "environment variable GATEWAY_SECURITY_MODE: `DELEGATED`: not one of GATEWAY_MANAGED, KAFKA_MANAGED"
        );
    }

    #[test]
    fn feature_flags_are_booleans_named_in_errors() {
        let mut g = ListenerConfig::default();
        g.virtual_clusters.enabled = false;
        apply_gateway_env(&mut g, &Env::from_pairs([("GATEWAY_FEATURE_FLAGS_MULTI_TENANCY", "true")])).expect("ok");
        assert!(g.virtual_clusters.enabled);
        let off = applied(&[("GATEWAY_FEATURE_FLAGS_MULTI_TENANCY", "FALSE")]).map(|g| g.virtual_clusters.enabled);
        assert_eq!(off, Ok(false));
        let e = applied(&[("GATEWAY_FEATURE_FLAGS_MULTI_TENANCY", "false"), ("GATEWAY_MODE", "VCLUSTER")])
            .expect_err("contradiction");
        assert!(e.starts_with("environment variable GATEWAY_FEATURE_FLAGS_MULTI_TENANCY: `false` contradicts"), "{e}");
        assert!(e.contains("GATEWAY_MODE=VCLUSTER"), "{e}");
        for name in [
            "GATEWAY_FEATURE_FLAGS_MULTI_TENANCY",
            "GATEWAY_FEATURE_FLAGS_ANALYTICS",
            "GATEWAY_FEATURE_FLAGS_MANDATORY_VCLUSTER",
        ] {
            let e = applied(&[(name, "yes")]).expect_err("not a boolean");
            assert_eq!(e, format!("environment variable {name}: `yes`: expected true or false"));
        }
        for analytics in ["false", "true"] {
            let g = applied(&[("GATEWAY_FEATURE_FLAGS_ANALYTICS", analytics)]).expect("accepted, no effect");
            assert!(g.virtual_clusters.enabled && !g.virtual_clusters.mandatory);
        }
        let mandatory = applied(&[("GATEWAY_FEATURE_FLAGS_MANDATORY_VCLUSTER", "True")]);
        assert_eq!(mandatory.map(|g| g.virtual_clusters.mandatory), Ok(true));
    }

    #[test]
    fn gateway_cluster_id_sets_the_cluster_id_clients_see() {
        assert_eq!(
            applied(&[("GATEWAY_CLUSTER_ID", " gw-cluster ")]).map(|g| g.cluster_id),
            Ok(Some("gw-cluster".into()))
        );
        assert_eq!(applied(&[]).map(|g| g.cluster_id), Ok(None));
    }

    #[test]
    fn unknown_gateway_variables_get_one_warning_each_with_a_suggestion_when_close() {
        let env = Env::from_pairs([
            ("GATEWAY_TYPO_VAR", "1"),
            ("GATEWAY_PORT_STRAT", "7000"),
            ("gateway_http_port", "8080"),
            ("GATEWAY_PORT_START", "7000"),
            ("GATEWAY_START_PORT", "7000"),
            ("GATEWAY_FEATURE_FLAGS_ANALYTICS", "false"),
            ("GATEWAY_LOG_FORMAT", "json"),
            ("KAFKA_HEAP_OPTS", "-Xmx1g"),
            ("PATH", "/bin"),
        ]);
        assert_eq!(
            unknown_variables(&env),
            [
                "unknown environment variable GATEWAY_PORT_STRAT, ignored; did you mean GATEWAY_PORT_START?",
                "unknown environment variable GATEWAY_TYPO_VAR, ignored",
                "unknown environment variable gateway_http_port, ignored; did you mean GATEWAY_HTTP_PORT?",
            ]
        );
        assert_eq!(edit_distance("GATEWAY_MODE", "GATEWAY_MODE"), 0);
        assert_eq!(edit_distance("GATEWAY_MOD", "GATEWAY_MODE"), 1);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }

    /// The `"GATEWAY_..."` literals of the code outside its tests.
    fn names_read_in(text: &str) -> Vec<String> {
        let code = text.split("#[cfg(test)]").next().unwrap_or_default();
        let literal = regex::Regex::new(r#""(GATEWAY_[A-Z0-9_]+)""#).expect("regex");
        literal.captures_iter(code).map(|c| c[1].to_string()).collect()
    }

    #[test]
    fn the_known_variables_are_exactly_those_the_code_reads() {
        let mut read = names_read_in(include_str!("sources.rs"));
        read.extend(names_read_in(include_str!("mod.rs")));
        read.extend(names_read_in(include_str!("../main.rs")));
        // Values of GATEWAY_MODE and GATEWAY_SECURITY_MODE, not variables.
        read.retain(|name| !["GATEWAY_SECURITY", "GATEWAY_MANAGED"].contains(&name.as_str()));
        for name in &read {
            assert!(KNOWN_VARIABLES.contains(&name.as_str()), "{name} is read but not in KNOWN_VARIABLES");
        }
        for known in KNOWN_VARIABLES {
            // Once in the list itself, at least once where it is read.
            let uses = read.iter().filter(|name| name == known).count();
            assert!(uses >= 2, "{known} is in KNOWN_VARIABLES but nothing reads it");
        }
    }

    #[test]
    fn the_readme_documents_every_known_variable() {
        let readme = include_str!("../../README.md");
        for known in KNOWN_VARIABLES {
            assert!(readme.contains(&format!("`{known}")), "README.md does not document {known}");
        }
    }
}
