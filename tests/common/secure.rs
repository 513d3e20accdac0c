//! Security fixtures: a throw-away PKI (rcgen), Kafka clusters whose client listener requires SASL (PLAIN and
//! SCRAM users) or TLS (Kafka's own PEM key store), and a filter recording who sent what.
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};

/// A certificate authority and the files it issued, in a temporary directory.
pub struct Pki {
    /// Holds the PEM files.
    pub dir: tempfile::TempDir,
    /// The CA certificate, PEM.
    pub ca_file: PathBuf,
    /// Signs certificates.
    issuer: Issuer<'static, KeyPair>,
}

/// A certificate and its key, as PEM files.
pub struct Issued {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl Pki {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params.distinguished_name.push(DnType::CommonName, "franzgate test CA");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate().expect("CA key");
        let cert = params.self_signed(&key).expect("CA certificate");
        let ca_file = dir.path().join("ca.pem");
        std::fs::write(&ca_file, cert.pem()).expect("write CA");
        Self { dir, ca_file, issuer: Issuer::new(params, key) }
    }

    /// A server certificate for `names` (DNS names or IP addresses).
    pub fn server(&self, file: &str, names: &[&str]) -> Issued {
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let mut params = CertificateParams::new(names.clone()).expect("params");
        params.distinguished_name.push(DnType::CommonName, names.first().cloned().unwrap_or_default());
        self.issue(file, params)
    }

    /// A client certificate with subject `CN=<cn>,OU=<ou>,O=franzgate`.
    pub fn client(&self, file: &str, cn: &str, ou: &str) -> Issued {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        // rcgen's default subject holds a CN already; start empty so the order is the one written here.
        params.distinguished_name = rcgen::DistinguishedName::new();
        params.distinguished_name.push(DnType::OrganizationName, "franzgate");
        params.distinguished_name.push(DnType::OrganizationalUnitName, ou);
        params.distinguished_name.push(DnType::CommonName, cn);
        self.issue(file, params)
    }

    fn issue(&self, file: &str, params: CertificateParams) -> Issued {
        let key = KeyPair::generate().expect("key");
        let cert = params.signed_by(&key, &self.issuer).expect("sign");
        let issued = Issued {
            cert: self.dir.path().join(format!("{file}.pem")),
            key: self.dir.path().join(format!("{file}-key.pem")),
        };
        std::fs::write(&issued.cert, cert.pem()).expect("write cert");
        std::fs::write(&issued.key, key.serialize_pem()).expect("write key");
        issued
    }
}

/// A single-node Kafka cluster spec whose client listener is SSL, served by Kafka itself from PEM files: a
/// server certificate from `pki` for 127.0.0.1 and localhost. Its clients trust `pki.ca_file` (or the cluster's
/// `ca_file()`, a copy that lives as long as the cluster). The files are copied at start: `pki` may go then.
pub fn kafka_tls_spec(pki: &Pki, name: &str) -> super::ClusterSpec {
    let broker = pki.server(&format!("{name}-broker"), &["127.0.0.1", "localhost"]);
    super::ClusterSpec::new(name, &[1]).with_tls(&pki.ca_file, &broker.cert, &broker.key)
}

/// A single-node Kafka cluster whose client listener requires SASL (PLAIN, SCRAM-SHA-256 and SCRAM-SHA-512 all
/// accept each of `users`, given as name and password).
pub async fn kafka_with_sasl_users(users: &[(&str, &str)]) -> super::KafkaCluster {
    super::KafkaCluster::start_async(super::ClusterSpec::new("sasl", &[1]).with_sasl(users)).await
}

/// What a recording filter saw of each request: who sent it, and which virtual broker it addressed.
#[derive(Debug, Clone)]
pub struct SeenRequest {
    pub principal: String,
    pub vcluster: Option<String>,
    pub virtual_node: Option<i32>,
    pub api_key: i16,
}

/// Requests seen by a [`RecorderFactory`] filter.
#[derive(Debug, Clone, Default)]
pub struct Seen(pub Arc<std::sync::Mutex<Vec<SeenRequest>>>);

impl Seen {
    pub fn all(&self) -> Vec<SeenRequest> {
        self.0.lock().expect("lock").clone()
    }

    /// The requests with `api_key`.
    pub fn with_key(&self, api_key: kafka_protocol::messages::ApiKey) -> Vec<SeenRequest> {
        self.all().into_iter().filter(|r| r.api_key == api_key as i16).collect()
    }
}

/// A filter (`type: record-sessions`) that records every request's principal and virtual broker.
pub struct RecorderFactory(pub Seen);

impl franzgate_api::FilterFactory for RecorderFactory {
    fn type_name(&self) -> &'static str {
        "record-sessions"
    }

    fn create(
        &self,
        _config: serde_yaml::Value,
        _ctx: &franzgate_api::FilterContext,
    ) -> Result<franzgate_api::BoxLayer, franzgate_api::ConfigError> {
        let seen = self.0.clone();
        Ok(franzgate_api::BoxLayer::new(tower::util::MapRequestLayer::new(
            move |request: franzgate_api::KafkaRequest| {
                let principal = request.session.auth.principal();
                if let Ok(mut all) = seen.0.lock() {
                    all.push(SeenRequest {
                        principal: principal.name,
                        vcluster: principal.vcluster,
                        virtual_node: request.session.virtual_node,
                        api_key: request.api_key_raw(),
                    });
                }
                request
            },
        )))
    }
}

/// A gateway with the recording filter, from a YAML document (see `TestGateway::from_yaml`).
pub async fn gateway_recording(yaml: &str) -> (super::TestGateway, Seen) {
    let seen = Seen::default();
    let mut registry = franzgate::FilterRegistry::with_builtins();
    registry.register(RecorderFactory(seen.clone())).expect("register");
    (super::TestGateway::from_yaml_with(yaml, registry).await, seen)
}

/// A gateway YAML document: `{PORT}` is filled in by `TestGateway::from_yaml`. `gateway_keys` are lines of the
/// `gateway:` section (two-space indent), `clusters` lines of `clusters:` (two-space indent).
pub fn gateway_yaml(gateway_keys: &str, clusters: &str, filters: &str) -> String {
    format!(
        "gateway:\n  advertised_host: 127.0.0.1\n  bind_host: 127.0.0.1\n  port_start: {{PORT}}\n  port_count: 4\n  \
         connect_timeout_ms: 3000\n  http_port: 0\n{gateway_keys}clusters:\n{clusters}{filters}"
    )
}

/// `sasl.jaas.config` for SCRAM credentials.
pub fn scram_jaas(user: &str, password: &str) -> String {
    format!(
        r#"org.apache.kafka.common.security.scram.ScramLoginModule required username="{user}" password="{password}";"#
    )
}

/// Stored credentials for a gateway user, made by the `franzgate hash-password` command.
pub fn hashed_credentials(password: &str) -> Vec<String> {
    use std::io::Write;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_franzgate"))
        .args(["hash-password", "--iterations", "4096"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("run franzgate hash-password");
    child.stdin.take().expect("stdin").write_all(password.as_bytes()).expect("write password");
    let output = child.wait_with_output().expect("hash-password output");
    assert!(output.status.success(), "hash-password failed");
    let text = String::from_utf8(output.stdout).expect("utf-8");
    let lines: Vec<String> = text.lines().map(str::to_string).collect();
    assert_eq!(lines.len(), 2, "one SCRAM-SHA-256 and one SCRAM-SHA-512 credential: {text}");
    assert!(!text.contains(password), "the password itself is not printed");
    lines
}

/// A gateway `users:` entry in YAML flow style.
pub fn user_entry(name: &str, credentials: &[String]) -> String {
    let quoted: Vec<String> = credentials.iter().map(|c| format!("'{c}'")).collect();
    format!("{{username: {name}, credentials: [{}]}}", quoted.join(", "))
}
