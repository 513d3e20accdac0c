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
        self.0.get(name).map(String::as_str).filter(|v| !v.trim().is_empty())
    }
}

fn env_error(name: &str, message: impl std::fmt::Display) -> ConfigFileError {
    ConfigFileError::new(format!("environment variable {name}"), message.to_string())
}

fn parse_env<T: std::str::FromStr>(env: &Env, name: &str, target: &mut T) -> Result<(), ConfigFileError>
where
    T::Err: std::fmt::Display,
{
    if let Some(value) = env.get(name) {
        *target = value.trim().parse().map_err(|e| env_error(name, format!("`{value}`: {e}")))?;
    }
    Ok(())
}

/// Applies the `GATEWAY_*` variables to the `gateway:` section.
pub fn apply_gateway_env(gateway: &mut ListenerConfig, env: &Env) -> Result<(), ConfigFileError> {
    if let Some(host) = env.get("GATEWAY_ADVERTISED_HOST") {
        gateway.advertised_host = host.trim().to_string();
    }
    if let Some(host) = env.get("GATEWAY_BIND_HOST") {
        gateway.bind_host = host.trim().to_string();
    }
    parse_env(env, "GATEWAY_PORT_START", &mut gateway.port_start)?;
    parse_env(env, "GATEWAY_PORT_COUNT", &mut gateway.port_count)?;
    parse_env(env, "GATEWAY_HTTP_PORT", &mut gateway.http_port)?;
    parse_env(env, "GATEWAY_SWITCH_DRAIN_TIMEOUT_MS", &mut gateway.switch_drain_timeout_ms)?;
    parse_env(env, "GATEWAY_MAX_CONNECTIONS", &mut gateway.max_connections)?;
    parse_env(env, "GATEWAY_MAX_CONNECTIONS_PER_IP", &mut gateway.max_connections_per_ip)?;
    parse_env(env, "GATEWAY_IDLE_TIMEOUT_MS", &mut gateway.idle_timeout_ms)?;
    parse_env(env, "GATEWAY_ADMIN_MAX_BODY_BYTES", &mut gateway.admin_max_body_bytes)?;
    parse_env(env, "GATEWAY_REQUEST_TIMEOUT_MS", &mut gateway.request_timeout_ms)?;
    parse_env(env, "GATEWAY_SHUTDOWN_DRAIN_TIMEOUT_MS", &mut gateway.shutdown_drain_timeout_ms)?;
    parse_env(env, "GATEWAY_SHUTDOWN_PORT_CLOSE_DELAY_MS", &mut gateway.shutdown_port_close_delay_ms)?;
    parse_env(env, "GATEWAY_FEATURE_FLAGS_MANDATORY_VCLUSTER", &mut gateway.virtual_clusters.mandatory)?;
    if let Some(topic) = env.get("GATEWAY_STATE_TOPIC") {
        gateway.virtual_clusters.state_topic = topic.trim().to_string();
    }
    if let Some(id) = env.get("GATEWAY_CLUSTER_ID") {
        gateway.cluster_id = Some(id.trim().to_string());
    }
    apply_security_env(gateway, env)?;
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
}
