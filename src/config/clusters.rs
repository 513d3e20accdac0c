//! Backend clusters from Kafka client properties: `bootstrap.servers`, `gateway.roles`, and the security
//! properties, parsed and validated here.

use std::path::PathBuf;
use std::sync::Arc;

use franzgate_api::topology::{BackendCluster, BrokerAddress, ClusterRole};
use indexmap::IndexMap;

use super::ConfigFileError;
use super::jaas::JaasConfig;
use super::security::SecurityProtocol;

/// How the gateway connects and authenticates to one backend cluster: its own credentials, whoever the
/// client is.
#[derive(Clone, Default)]
pub struct BackendSecuritySpec {
    /// PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL.
    pub protocol: SecurityProtocol,
    /// The PEM CA the brokers' certificates chain to (`ssl.ca.location`); the system's roots when unset.
    pub ca_file: Option<PathBuf>,
    /// A client certificate chain and key (`ssl.certificate.location`, `ssl.key.location`), PEM.
    pub identity: Option<(PathBuf, PathBuf)>,
    /// Whether the broker's certificate must name its host (`ssl.endpoint.identification.algorithm`).
    pub verify_hostname: bool,
    /// SASL credentials, with a SASL protocol.
    pub sasl: Option<SaslCredentials>,
}

/// The gateway's SASL credentials for one backend, from `sasl.mechanism` and `sasl.jaas.config`.
#[derive(Clone)]
pub struct SaslCredentials {
    /// PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512.
    pub mechanism: String,
    /// The user name.
    pub username: String,
    /// The password (or API secret).
    pub password: String,
}

impl std::fmt::Debug for BackendSecuritySpec {
    // Credentials stay out of logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BackendSecurity")
            .field("protocol", &self.protocol.name())
            .field("ca_file", &self.ca_file)
            .field("client_certificate", &self.identity.as_ref().map(|(c, _)| c))
            .field("verify_hostname", &self.verify_hostname)
            .field("sasl", &self.sasl.as_ref().map(|s| format!("{} as {}", s.mechanism, s.username)))
            .finish()
    }
}

/// One backend cluster, with how to reach it securely.
#[derive(Debug, Clone)]
pub struct BuiltCluster {
    /// The cluster.
    pub cluster: Arc<BackendCluster>,
    /// How to connect to it.
    pub security: BackendSecuritySpec,
}

/// The properties of one cluster, as strings (YAML scalars are accepted and turned into text).
pub type ClusterProperties = IndexMap<String, serde_yaml::Value>;

/// Kafka client properties this version reads; others are accepted with a warning.
const KNOWN_PROPERTIES: &[&str] = &[
    "bootstrap.servers",
    "security.protocol",
    "sasl.mechanism",
    "sasl.jaas.config",
    "gateway.roles",
    "client.id",
    "ssl.truststore.location",
    "ssl.truststore.password",
    "ssl.truststore.type",
    "ssl.ca.location",
    "ssl.certificate.location",
    "ssl.key.location",
    "ssl.endpoint.identification.algorithm",
];

/// Builds and checks every cluster; `origin` names where they came from in errors, `key_prefix` how a key is
/// written there (`clusters.` for franzgate's YAML, `config.` for the seed's file, `KAFKA_` for env vars).
pub fn build_clusters(
    clusters: &IndexMap<String, ClusterProperties>,
    origin: &str,
    key_prefix: &str,
) -> Result<Vec<BuiltCluster>, ConfigFileError> {
    if clusters.is_empty() {
        return Err(ConfigFileError::new(
            origin,
            "no backend cluster configured (set `clusters:` in the YAML, \
            GATEWAY_BACKEND_KAFKA_SELECTOR, or KAFKA_<ID>_BOOTSTRAP_SERVERS)",
        ));
    }
    let mut built = Vec::new();
    for (name, props) in clusters {
        let (cluster, security) = build_cluster(name, props, origin, key_prefix)?;
        built.push(BuiltCluster { cluster: Arc::new(cluster), security });
    }
    let primaries: Vec<_> =
        built.iter().filter(|c| c.cluster.role == ClusterRole::Main).map(|c| c.cluster.name.clone()).collect();
    if primaries.len() != 1 {
        return Err(ConfigFileError::new(
            origin,
            format!(
                "exactly one primary cluster is required, the others marked `gateway.roles: failover`; found {} ({})",
                primaries.len(),
                primaries.join(", ")
            ),
        ));
    }
    Ok(built)
}

fn build_cluster(
    name: &str,
    props: &ClusterProperties,
    origin: &str,
    prefix: &str,
) -> Result<(BackendCluster, BackendSecuritySpec), ConfigFileError> {
    let key = |k: &str| format!("{prefix}{name}.{k}");
    let err = |k: &str, m: String| ConfigFileError::new(origin, format!("{}: {m}", key(k)));
    let text = |k: &str| -> Result<Option<String>, ConfigFileError> {
        match props.get(k) {
            None | Some(serde_yaml::Value::Null) => Ok(None),
            Some(serde_yaml::Value::String(s)) => Ok(Some(s.trim().to_string())),
            Some(serde_yaml::Value::Number(n)) => Ok(Some(n.to_string())),
            Some(serde_yaml::Value::Bool(b)) => Ok(Some(b.to_string())),
            Some(_) => Err(err(k, "expected a string".into())),
        }
    };
    for property in props.keys() {
        if !KNOWN_PROPERTIES.contains(&property.as_str()) && !property.starts_with("ssl.") {
            tracing::warn!("{origin}: {}: property not used by this gateway version", key(property));
        }
    }

    let servers = text("bootstrap.servers")?.ok_or_else(|| err("bootstrap.servers", "required".into()))?;
    let bootstrap = servers
        .split(',')
        .filter(|s| !s.trim().is_empty())
        .map(BrokerAddress::parse)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| err("bootstrap.servers", e))?;
    if bootstrap.is_empty() {
        return Err(err("bootstrap.servers", "no servers listed".into()));
    }

    let role = match text("gateway.roles")?.as_deref() {
        None => ClusterRole::Main,
        Some(roles) => {
            let roles: Vec<&str> = roles.split(',').map(str::trim).filter(|r| !r.is_empty()).collect();
            match roles.as_slice() {
                ["failover"] => ClusterRole::Failover,
                ["main"] | [] => ClusterRole::Main,
                _ => {
                    return Err(err(
                        "gateway.roles",
                        format!("unknown role list `{}`; expected `failover`", roles.join(",")),
                    ));
                }
            }
        }
    };

    let protocol: SecurityProtocol = match text("security.protocol")? {
        None => SecurityProtocol::Plaintext,
        Some(p) => p.parse().map_err(|e| err("security.protocol", format!("`{p}` is {e}")))?,
    };
    let mut security = BackendSecuritySpec { protocol, verify_hostname: true, ..Default::default() };
    if protocol.uses_sasl() {
        let mechanism = text("sasl.mechanism")?.unwrap_or_else(|| "GSSAPI".into()).to_ascii_uppercase();
        if franzgate_auth::Mechanism::from_name(&mechanism).is_none() {
            return Err(err(
                "sasl.mechanism",
                format!("`{mechanism}` is not supported; use PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512"),
            ));
        }
        let jaas = text("sasl.jaas.config")?
            .ok_or_else(|| err("sasl.jaas.config", "required with a SASL security.protocol".into()))?;
        let jaas = JaasConfig::parse(&jaas).map_err(|e| err("sasl.jaas.config", e))?;
        let expected = if mechanism == "PLAIN" { "PlainLoginModule" } else { "ScramLoginModule" };
        if jaas.module_name() != expected {
            return Err(err("sasl.jaas.config", format!("{mechanism} needs {expected}, found {}", jaas.module_name())));
        }
        let option = |name: &str| {
            jaas.options.get(name).cloned().ok_or_else(|| err("sasl.jaas.config", format!("missing `{name}`")))
        };
        security.sasl =
            Some(SaslCredentials { mechanism, username: option("username")?, password: option("password")? });
    }
    if let Some(store) = text("ssl.truststore.location")? {
        let store_type = text("ssl.truststore.type")?.unwrap_or_default().to_ascii_uppercase();
        let lower = store.to_ascii_lowercase();
        if store_type == "PEM" || (store_type.is_empty() && [".pem", ".crt"].iter().any(|e| lower.ends_with(e))) {
            security.ca_file = Some(PathBuf::from(&store));
        } else {
            return Err(err(
                "ssl.truststore.location",
                format!(
                    "{} trust stores are not supported; give a PEM CA file as ssl.ca.location",
                    if store_type.is_empty() { "JKS" } else { store_type.as_str() }
                ),
            ));
        }
    }
    if let Some(ca) = text("ssl.ca.location")? {
        security.ca_file = Some(PathBuf::from(ca));
    }
    match (text("ssl.certificate.location")?, text("ssl.key.location")?) {
        (Some(cert), Some(key)) => security.identity = Some((cert.into(), key.into())),
        (None, None) => {}
        _ => {
            return Err(err(
                "ssl.certificate.location",
                "ssl.certificate.location and ssl.key.location go together".into(),
            ));
        }
    }
    if let Some(algorithm) = text("ssl.endpoint.identification.algorithm")? {
        security.verify_hostname = match algorithm.to_ascii_lowercase().as_str() {
            "" | "none" => false,
            "https" => true,
            other => {
                return Err(err(
                    "ssl.endpoint.identification.algorithm",
                    format!("`{other}`: expected https or empty"),
                ));
            }
        };
    }
    Ok((BackendCluster::new(name, bootstrap).with_role(role), security))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clusters(yaml: &str) -> Result<Vec<Arc<BackendCluster>>, String> {
        Ok(built(yaml)?.into_iter().map(|b| b.cluster).collect())
    }

    fn built(yaml: &str) -> Result<Vec<BuiltCluster>, String> {
        let map: IndexMap<String, ClusterProperties> = serde_yaml::from_str(yaml).map_err(|e| e.to_string())?;
        build_clusters(&map, "f.yaml", "config.").map_err(|e| e.to_string())
    }

    #[test]
    fn roles_mark_the_failover_and_exactly_one_primary_is_required() {
        let c =
            clusters("main: {bootstrap.servers: 'a:1'}\nfailover: {bootstrap.servers: 'b:1', gateway.roles: failover}")
                .expect("ok");
        assert_eq!((c[0].role, c[1].role), (ClusterRole::Main, ClusterRole::Failover));
        let e = clusters("a: {bootstrap.servers: 'a:1'}\nb: {bootstrap.servers: 'b:1'}").expect_err("two primaries");
        assert!(e.contains("exactly one primary"), "{e}");
        let e = clusters("a: {bootstrap.servers: 'a:1', gateway.roles: standby}").expect_err("bad role");
        assert!(e.contains("config.a.gateway.roles"), "{e}");
    }

    #[test]
    fn security_properties_become_the_backend_credentials() {
        let jaas = r#"org.apache.kafka.common.security.plain.PlainLoginModule required username="k" password="s\"x";"#;
        let yaml = format!(
            "main: {{bootstrap.servers: 'a:1', security.protocol: sasl_ssl, sasl.mechanism: PLAIN, sasl.jaas.config: '{jaas}', ssl.ca.location: /ca.pem, ssl.endpoint.identification.algorithm: ''}}"
        );
        let b = built(&yaml).expect("valid");
        let s = &b[0].security;
        assert_eq!(s.protocol, SecurityProtocol::SaslSsl);
        assert_eq!(s.ca_file.as_deref(), Some(std::path::Path::new("/ca.pem")));
        assert!(!s.verify_hostname);
        let sasl = s.sasl.as_ref().expect("sasl");
        assert_eq!((sasl.mechanism.as_str(), sasl.username.as_str(), sasl.password.as_str()), ("PLAIN", "k", "s\"x"));
        assert!(!format!("{s:?}").contains("s\"x"), "Debug hides the password");
        let pem_store = "main: {bootstrap.servers: 'a:1', security.protocol: SSL, ssl.truststore.location: /t.pem}";
        assert_eq!(built(pem_store).expect("pem").remove(0).security.ca_file, Some("/t.pem".into()));
    }

    #[test]
    fn malformed_security_properties_are_refused_with_the_key() {
        let malformed = "main: {bootstrap.servers: 'a:1', security.protocol: SASL_SSL, sasl.mechanism: PLAIN, sasl.jaas.config: 'PlainLoginModule required username=\"k'}";
        assert!(clusters(malformed).expect_err("bad jaas").contains("config.main.sasl.jaas.config: unterminated"));
        let jaas = r#"org.apache.kafka.common.security.plain.PlainLoginModule required username="k" password="s";"#;
        let wrong_module = format!(
            "main: {{bootstrap.servers: 'a:1', security.protocol: SASL_PLAINTEXT, sasl.mechanism: SCRAM-SHA-512, sasl.jaas.config: '{jaas}'}}"
        );
        assert!(clusters(&wrong_module).expect_err("module").contains("needs ScramLoginModule"));
        let no_password = "main: {bootstrap.servers: 'a:1', security.protocol: SASL_PLAINTEXT, sasl.mechanism: PLAIN, sasl.jaas.config: 'PlainLoginModule required username=k;'}";
        assert!(clusters(no_password).expect_err("password").contains("missing `password`"));
        let jks = "main: {bootstrap.servers: 'a:1', security.protocol: SSL, ssl.truststore.location: /t.jks}";
        assert!(clusters(jks).expect_err("jks").contains("JKS trust stores are not supported"));
        let typo = "main: {bootstrap.servers: 'a:1', security.protocol: SASL_SSLL}";
        assert!(clusters(typo).expect_err("typo").contains("is not one of PLAINTEXT"));
        let gssapi = "main: {bootstrap.servers: 'a:1', security.protocol: SASL_SSL}";
        assert!(clusters(gssapi).expect_err("gssapi").contains("`GSSAPI` is not supported"));
    }
}
