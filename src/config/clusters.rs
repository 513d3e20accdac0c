//! Backend clusters from Kafka client properties: `bootstrap.servers`, `gateway.roles`, and the security
//! properties, parsed and validated here.

use std::sync::Arc;

use franzgate_api::topology::{BackendCluster, BrokerAddress, ClusterRole};
use indexmap::IndexMap;

use super::ConfigFileError;
use super::jaas::JaasConfig;

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
];

/// Builds and checks every cluster; `origin` names where they came from in errors, `key_prefix` how a key is
/// written there (`clusters.` for franzgate's YAML, `config.` for the seed's file, `KAFKA_` for env vars).
pub fn build_clusters(
    clusters: &IndexMap<String, ClusterProperties>,
    origin: &str,
    key_prefix: &str,
) -> Result<Vec<Arc<BackendCluster>>, ConfigFileError> {
    if clusters.is_empty() {
        return Err(ConfigFileError::new(
            origin,
            "no backend cluster configured (set `clusters:` in the YAML, \
            GATEWAY_BACKEND_KAFKA_SELECTOR, or KAFKA_<ID>_BOOTSTRAP_SERVERS)",
        ));
    }
    let mut built = Vec::new();
    for (name, props) in clusters {
        built.push(Arc::new(build_cluster(name, props, origin, key_prefix)?));
    }
    let primaries: Vec<_> = built.iter().filter(|c| c.role == ClusterRole::Main).map(|c| c.name.clone()).collect();
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
) -> Result<BackendCluster, ConfigFileError> {
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

    let protocol = text("security.protocol")?.unwrap_or_else(|| "PLAINTEXT".into()).to_ascii_uppercase();
    if !["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"].contains(&protocol.as_str()) {
        return Err(err(
            "security.protocol",
            format!("`{protocol}` is not one of PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL"),
        ));
    }
    if protocol.starts_with("SASL_") {
        let mechanism = text("sasl.mechanism")?.unwrap_or_else(|| "GSSAPI".into()).to_ascii_uppercase();
        if !["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"].contains(&mechanism.as_str()) {
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
        for option in ["username", "password"] {
            if !jaas.options.contains_key(option) {
                return Err(err("sasl.jaas.config", format!("missing `{option}`")));
            }
        }
    }
    if let Some(store) = text("ssl.truststore.location")? {
        if store.to_ascii_lowercase().ends_with(".jks")
            || text("ssl.truststore.type")?.is_some_and(|t| t.eq_ignore_ascii_case("JKS"))
        {
            return Err(err(
                "ssl.truststore.location",
                "JKS trust stores are not supported; give a PEM CA file as ssl.ca.location".into(),
            ));
        }
    }
    // Connecting with TLS or SASL comes with the Security work: refusing beats silently downgrading.
    if protocol != "PLAINTEXT" {
        return Err(err(
            "security.protocol",
            format!("`{protocol}` is valid but not supported yet: this gateway reaches backends over PLAINTEXT only"),
        ));
    }
    Ok(BackendCluster::new(name, bootstrap).with_role(role))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clusters(yaml: &str) -> Result<Vec<Arc<BackendCluster>>, String> {
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
    fn security_properties_are_validated_and_then_refused_rather_than_downgraded() {
        let jaas = r#"org.apache.kafka.common.security.plain.PlainLoginModule required username="k" password="s";"#;
        let ok_but_unsupported = format!(
            "main: {{bootstrap.servers: 'a:1', security.protocol: SASL_SSL, sasl.mechanism: PLAIN, sasl.jaas.config: '{jaas}'}}"
        );
        let e = clusters(&ok_but_unsupported).expect_err("refused");
        assert!(e.contains("config.main.security.protocol: `SASL_SSL` is valid but not supported yet"), "{e}");
        let malformed = "main: {bootstrap.servers: 'a:1', security.protocol: SASL_SSL, sasl.mechanism: PLAIN, sasl.jaas.config: 'PlainLoginModule required username=\"k'}";
        assert!(clusters(malformed).expect_err("bad jaas").contains("config.main.sasl.jaas.config: unterminated"));
        let wrong_module = format!(
            "main: {{bootstrap.servers: 'a:1', security.protocol: SASL_PLAINTEXT, sasl.mechanism: SCRAM-SHA-512, sasl.jaas.config: '{jaas}'}}"
        );
        assert!(clusters(&wrong_module).expect_err("module").contains("needs ScramLoginModule"));
        let jks = "main: {bootstrap.servers: 'a:1', security.protocol: SSL, ssl.truststore.location: /t.jks}";
        assert!(clusters(jks).expect_err("jks").contains("JKS trust stores are not supported"));
        let typo = "main: {bootstrap.servers: 'a:1', security.protocol: SASL_SSLL}";
        assert!(clusters(typo).expect_err("typo").contains("is not one of PLAINTEXT"));
    }
}
