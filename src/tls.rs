//! TLS with rustls (ring provider): the gateway's server side towards clients, with optional client
//! certificates mapped to principals, and its client side towards TLS backends.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use franzgate_api::{Principal, PrincipalSource};
use franzgate_auth::mapping::{PrincipalMappingRules, subject_dn};
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use tokio::net::TcpStream;

use crate::config::{ClientAuth, TlsConfig};
use crate::net::Stream;

/// How long a client may take to complete its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The gateway's TLS server: its config and how client certificates become principals.
#[derive(Clone)]
pub struct TlsServer {
    /// The rustls server config.
    config: Arc<ServerConfig>,
    /// Certificate subject to principal name.
    rules: Arc<PrincipalMappingRules>,
}

/// A client connection after its TLS handshake.
pub struct Accepted {
    /// The decrypted stream.
    pub stream: Stream,
    /// The server name the client asked for (SNI), if any.
    pub server_name: Option<String>,
    /// The principal of a verified client certificate.
    pub principal: Option<Principal>,
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Reads every certificate of a PEM file.
pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("cannot read `{}`: {e}", path.display()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("`{}` is not a PEM certificate file: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("`{}` holds no PEM certificate", path.display()));
    }
    Ok(certs)
}

/// Reads the first private key of a PEM file.
pub fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, String> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| format!("no PEM private key in `{}`: {e}", path.display()))
}

fn roots(path: &Path) -> Result<RootCertStore, String> {
    let mut roots = RootCertStore::empty();
    for cert in load_certs(path)? {
        roots.add(cert).map_err(|e| format!("`{}`: unusable CA certificate: {e}", path.display()))?;
    }
    Ok(roots)
}

// === impl TlsServer ===

impl TlsServer {
    /// Loads the certificate, key and client CA; errors name the `gateway.tls` key and the file.
    pub fn new(tls: &TlsConfig) -> Result<Self, String> {
        let certs = load_certs(&tls.cert_file).map_err(|e| format!("gateway.tls.cert_file: {e}"))?;
        let key = load_key(&tls.key_file).map_err(|e| format!("gateway.tls.key_file: {e}"))?;
        let builder = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("gateway.tls: {e}"))?;
        let builder = match (tls.client_auth, &tls.ca_file) {
            (ClientAuth::None, _) => builder.with_no_client_auth(),
            (mode, Some(ca)) => {
                let roots = roots(ca).map_err(|e| format!("gateway.tls.ca_file: {e}"))?;
                let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider());
                let verifier = if mode == ClientAuth::Requested { verifier.allow_unauthenticated() } else { verifier };
                builder.with_client_cert_verifier(verifier.build().map_err(|e| format!("gateway.tls.ca_file: {e}"))?)
            }
            (_, None) => return Err("gateway.tls.ca_file: required when client_auth is requested or required".into()),
        };
        let config = builder
            .with_single_cert(certs, key)
            .map_err(|e| format!("gateway.tls.key_file: does not match the certificate, or unusable: {e}"))?;
        let rules = PrincipalMappingRules::parse(&tls.principal_mapping_rules)
            .map_err(|e| format!("gateway.tls.principal_mapping_rules: {e}"))?;
        Ok(Self { config: Arc::new(config), rules: Arc::new(rules) })
    }

    /// Runs the TLS handshake. `check_name` sees the client's server name (SNI) before the handshake
    /// completes and may refuse it: a client naming a host the gateway does not serve gets no certificate.
    pub async fn accept(
        &self,
        tcp: TcpStream,
        check_name: impl FnOnce(Option<&str>) -> Result<(), String>,
    ) -> Result<Accepted, String> {
        let handshake = async {
            let start = tokio_rustls::LazyConfigAcceptor::new(rustls::server::Acceptor::default(), tcp)
                .await
                .map_err(|e| format!("not a TLS ClientHello: {e}"))?;
            let server_name = start.client_hello().server_name().map(str::to_string);
            check_name(server_name.as_deref())?;
            let tls = start.into_stream(self.config.clone()).await.map_err(|e| format!("TLS handshake failed: {e}"))?;
            Ok::<_, String>((tls, server_name))
        };
        let (tls, server_name) = tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake)
            .await
            .map_err(|_| format!("TLS handshake not completed within {HANDSHAKE_TIMEOUT:?}"))??;
        let principal = match tls.get_ref().1.peer_certificates().and_then(|c| c.first()) {
            None => None,
            Some(leaf) => Some(self.principal_of(leaf)?),
        };
        Ok(Accepted { stream: Stream::TlsServer(Box::new(tls)), server_name, principal })
    }

    /// The principal of a verified client certificate, by the mapping rules.
    fn principal_of(&self, leaf: &CertificateDer<'_>) -> Result<Principal, String> {
        let dn = subject_dn(leaf).map_err(|e| format!("cannot read the client certificate's subject: {e}"))?;
        let name = self
            .rules
            .apply(&dn)
            .ok_or_else(|| format!("no principal mapping rule matches the client certificate subject `{dn}`"))?;
        Ok(Principal { name, vcluster: None, generation: 0, source: PrincipalSource::TlsCertificate })
    }
}

/// TLS settings for connections to one backend cluster.
#[derive(Clone)]
pub struct TlsClient {
    /// The rustls client config.
    pub config: Arc<ClientConfig>,
}

impl std::fmt::Debug for TlsClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TlsClient")
    }
}

// === impl TlsClient ===

impl TlsClient {
    /// Trusts `ca_file` (PEM), or the system's roots without one; presents `identity` (certificate chain and
    /// key files) when the backend asks for a client certificate; checks the broker's host name unless
    /// `verify_hostname` is false (Kafka's `ssl.endpoint.identification.algorithm=` empty).
    pub fn new(
        ca_file: Option<&Path>,
        identity: Option<(&Path, &Path)>,
        verify_hostname: bool,
    ) -> Result<Self, String> {
        let roots = match ca_file {
            Some(path) => roots(path)?,
            None => {
                let mut roots = RootCertStore::empty();
                let found = rustls_native_certs::load_native_certs();
                for cert in found.certs {
                    let _ = roots.add(cert);
                }
                if roots.is_empty() {
                    return Err("no CA given (ssl.ca.location) and no system CA certificates found".into());
                }
                roots
            }
        };
        let roots = Arc::new(roots);
        let builder = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?;
        let builder = if verify_hostname {
            builder.with_root_certificates(roots)
        } else {
            let inner =
                WebPkiServerVerifier::builder_with_provider(roots, provider()).build().map_err(|e| e.to_string())?;
            builder.dangerous().with_custom_certificate_verifier(Arc::new(NoHostnameCheck { inner }))
        };
        let config = match identity {
            Some((cert, key)) => builder
                .with_client_auth_cert(load_certs(cert)?, load_key(key)?)
                .map_err(|e| format!("client certificate unusable: {e}"))?,
            None => builder.with_no_client_auth(),
        };
        Ok(Self { config: Arc::new(config) })
    }

    /// Runs the TLS handshake with a broker at `host`.
    pub async fn connect(&self, host: &str, tcp: TcpStream) -> Result<Stream, String> {
        let name =
            ServerName::try_from(host.to_string()).map_err(|e| format!("`{host}` is not a valid TLS name: {e}"))?;
        let connector = tokio_rustls::TlsConnector::from(self.config.clone());
        let tls =
            connector.connect(name, tcp).await.map_err(|e| format!("TLS handshake with the broker failed: {e}"))?;
        Ok(Stream::TlsClient(Box::new(tls)))
    }
}

/// Verifies the broker's certificate chain but not its host name, for `ssl.endpoint.identification.algorithm=`.
#[derive(Debug)]
struct NoHostnameCheck {
    /// The full verifier; its name mismatch errors are forgiven.
    inner: Arc<WebPkiServerVerifier>,
}

impl ServerCertVerifier for NoHostnameCheck {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self.inner.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now) {
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::NotValidForName | rustls::CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}
