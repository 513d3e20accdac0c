//! Connections to backend brokers: TCP, then TLS and SASL with the cluster's own settings and credentials.
//!
//! Every backend connection — a session's upstream, the start-up probe — is made here, so each one is
//! authenticated by the gateway before a single client byte is forwarded on it. A switch moves sessions to a
//! cluster whose connections use that cluster's credentials; the client's own never change.

pub mod client;
mod handshake;
pub mod tails;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use franzgate_api::topology::{BackendCluster, BrokerAddress};
use franzgate_auth::Mechanism;
use tokio::net::TcpStream;

pub use handshake::{record_api_versions, round_trip};

use crate::config::{BackendSecuritySpec, BuiltCluster};
use crate::net::Stream;
use crate::tls::TlsClient;

/// How to connect to one backend cluster, ready to use (certificates loaded).
#[derive(Debug, Clone, Default)]
pub struct BackendSecurity {
    /// TLS to the brokers, if the cluster's protocol uses it.
    tls: Option<TlsClient>,
    /// SASL to the brokers, if the cluster's protocol uses it.
    sasl: Option<BackendSasl>,
}

/// The gateway's SASL identity at one backend.
#[derive(Clone)]
pub struct BackendSasl {
    /// PLAIN or SCRAM.
    pub mechanism: Mechanism,
    /// The user name.
    pub username: String,
    /// The password.
    pub password: String,
}

impl std::fmt::Debug for BackendSasl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?} as {}", self.mechanism, self.username)
    }
}

/// Connection settings of every backend cluster, by cluster name.
#[derive(Debug, Clone, Default)]
pub struct BackendSecurityMap(HashMap<String, Arc<BackendSecurity>>);

// === impl BackendSecurity ===

impl BackendSecurity {
    /// Loads what `spec` names; errors say which property is unusable.
    pub fn from_spec(spec: &BackendSecuritySpec) -> Result<Self, String> {
        let tls = if spec.protocol.uses_tls() {
            let identity = spec.identity.as_ref().map(|(c, k)| (c.as_path(), k.as_path()));
            let client = TlsClient::new(spec.ca_file.as_deref(), identity, spec.verify_hostname)
                .map_err(|e| format!("ssl.ca.location / ssl.certificate.location: {e}"))?;
            Some(client)
        } else {
            None
        };
        let sasl = match &spec.sasl {
            Some(credentials) => {
                let mechanism = Mechanism::from_name(&credentials.mechanism)
                    .ok_or_else(|| format!("sasl.mechanism: `{}` unsupported", credentials.mechanism))?;
                Some(BackendSasl {
                    mechanism,
                    username: credentials.username.clone(),
                    password: credentials.password.clone(),
                })
            }
            None => None,
        };
        Ok(Self { tls, sasl })
    }

    /// Connects to `address`, runs TLS and SASL as configured, and leaves the stream ready for requests.
    /// `cluster` records the api versions the broker advertises on the way.
    pub async fn connect(
        &self,
        address: &BrokerAddress,
        cluster: &BackendCluster,
        timeout: Duration,
        max_frame: usize,
    ) -> Result<Stream, String> {
        let connect = async {
            let tcp = TcpStream::connect((address.host.as_str(), address.port)).await.map_err(|e| e.to_string())?;
            let _ = tcp.set_nodelay(true);
            let mut stream = match &self.tls {
                Some(tls) => tls.connect(&address.host, tcp).await?,
                None => Stream::Tcp(tcp),
            };
            if let Some(sasl) = &self.sasl {
                handshake::authenticate(&mut stream, sasl, cluster, max_frame).await?;
            }
            Ok::<_, String>(stream)
        };
        tokio::time::timeout(timeout, connect).await.map_err(|_| format!("timed out after {timeout:?}"))?
    }
}

// === impl BackendSecurityMap ===

impl BackendSecurityMap {
    /// Loads the settings of every cluster; errors name the cluster.
    pub fn load(clusters: &[BuiltCluster]) -> Result<Self, String> {
        let mut map = HashMap::new();
        for built in clusters {
            let security = BackendSecurity::from_spec(&built.security)
                .map_err(|e| format!("cluster `{}`: {e}", built.cluster.name))?;
            map.insert(built.cluster.name.clone(), Arc::new(security));
        }
        Ok(Self(map))
    }

    /// The settings of a cluster (plaintext if unknown, which only tests construct).
    pub fn get(&self, cluster: &str) -> Arc<BackendSecurity> {
        self.0.get(cluster).cloned().unwrap_or_default()
    }
}
