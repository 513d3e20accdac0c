//! The client-facing security settings of `gateway:`: security protocol, TLS, routing mechanism (port or
//! SNI host names) and SASL authentication.
//!
//! ```yaml
//! gateway:
//!   security_protocol: SASL_SSL          # PLAINTEXT | SSL | SASL_PLAINTEXT | SASL_SSL
//!   routing: host                        # port (default) | host (SNI; needs TLS)
//!   sni: { host_prefix: broker, separator: "-", cluster_id: main, advertised_port: 9092 }
//!   tls:
//!     cert_file: /etc/franzgate/gateway.pem      # PEM certificate chain
//!     key_file: /etc/franzgate/gateway-key.pem   # PEM private key
//!     client_auth: required              # none (default) | requested | required
//!     ca_file: /etc/franzgate/clients-ca.pem     # verifies client certificates
//!     principal_mapping_rules: "RULE:^CN=(.*?),.*$/$1/,DEFAULT"
//!   authentication:                      # the sasl-authentication filter's config
//!     mechanisms: [PLAIN, SCRAM-SHA-256, SCRAM-SHA-512]
//!     users: [{username: alice, credentials: ["SCRAM-SHA-512$4096:..."]}]
//!     token_secret: ...                  # GATEWAY_USER_POOL_SECRET_KEY
//! ```

use std::path::PathBuf;
use std::str::FromStr;

use serde::Deserialize;

/// How clients connect to the gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum SecurityProtocol {
    /// No TLS, no authentication.
    #[default]
    Plaintext,
    /// TLS, optionally with client certificates.
    Ssl,
    /// SASL without TLS.
    SaslPlaintext,
    /// SASL over TLS.
    SaslSsl,
}

/// How clients tell the gateway which broker they want.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RoutingMechanism {
    /// A port per broker.
    #[default]
    Port,
    /// One TLS port; the TLS server name (SNI) names the broker.
    Host,
}

/// The broker host names of host routing: `<host_prefix><cluster_id><node id><separator><advertised_host>`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SniConfig {
    /// Starts every broker host name.
    pub host_prefix: String,
    /// Between the node id and the advertised host.
    pub separator: String,
    /// Follows the prefix; defaults to the primary cluster's name, so names stay the same across a switch.
    pub cluster_id: Option<String>,
    /// The port advertised in metadata; defaults to `port_start` (set it when a load balancer fronts the
    /// gateway on another port).
    pub advertised_port: Option<u16>,
}

impl Default for SniConfig {
    fn default() -> Self {
        Self { host_prefix: "broker".into(), separator: "-".into(), cluster_id: None, advertised_port: None }
    }
}

/// Whether clients must present a certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClientAuth {
    /// Not asked for.
    #[default]
    None,
    /// Asked for and verified when given; clients without one connect anonymously.
    Requested,
    /// Required: the TLS handshake fails without a certificate the CA signed.
    Required,
}

/// The gateway's TLS server settings (PEM files; JKS/PKCS12 key stores are not supported).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// The certificate chain, leaf first.
    pub cert_file: PathBuf,
    /// The private key (PKCS#8, PKCS#1 or SEC1).
    pub key_file: PathBuf,
    /// Client certificate verification.
    #[serde(default)]
    pub client_auth: ClientAuth,
    /// The CA(s) client certificates must chain to; required unless `client_auth` is `none`.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Kafka's `ssl.principal.mapping.rules`: how a certificate subject becomes a principal name.
    #[serde(default = "default_mapping_rules")]
    pub principal_mapping_rules: String,
}

fn default_mapping_rules() -> String {
    "DEFAULT".into()
}

// === impl SecurityProtocol ===

impl SecurityProtocol {
    /// Whether connections start with a TLS handshake.
    pub fn uses_tls(self) -> bool {
        matches!(self, Self::Ssl | Self::SaslSsl)
    }

    /// Whether clients must authenticate with SASL.
    pub fn uses_sasl(self) -> bool {
        matches!(self, Self::SaslPlaintext | Self::SaslSsl)
    }

    /// The Kafka name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Plaintext => "PLAINTEXT",
            Self::Ssl => "SSL",
            Self::SaslPlaintext => "SASL_PLAINTEXT",
            Self::SaslSsl => "SASL_SSL",
        }
    }
}

impl FromStr for SecurityProtocol {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_uppercase().as_str() {
            "PLAINTEXT" => Ok(Self::Plaintext),
            "SSL" => Ok(Self::Ssl),
            "SASL_PLAINTEXT" => Ok(Self::SaslPlaintext),
            "SASL_SSL" => Ok(Self::SaslSsl),
            _ => Err("not one of PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL".into()),
        }
    }
}

impl FromStr for RoutingMechanism {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "port" => Ok(Self::Port),
            "host" | "sni" => Ok(Self::Host),
            _ => Err("not one of port, host".into()),
        }
    }
}

impl FromStr for ClientAuth {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "none" => Ok(Self::None),
            "requested" => Ok(Self::Requested),
            "required" => Ok(Self::Required),
            _ => Err("not one of NONE, REQUESTED, REQUIRED".into()),
        }
    }
}
