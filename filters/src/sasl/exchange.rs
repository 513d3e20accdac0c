//! One session's SASL exchange: handshake, mechanism steps, and what happens to every other request.

use std::sync::Arc;

use bytes::Bytes;
use franzgate_api::kafka_protocol::messages::{
    ApiKey, RequestKind, ResponseKind, SaslAuthenticateResponse, SaslHandshakeResponse,
};
use franzgate_api::kafka_protocol::protocol::StrBytes;
use franzgate_api::{AuthStats, FilterError, KafkaRequest, KafkaResponse, Principal, PrincipalSource};
use franzgate_auth::plain::parse_plain;
use franzgate_auth::scram::{ScramMechanism, ScramServer};
use tracing::{debug, info, warn};

use super::users::{Mechanism, UserDirectory};
use super::versions::pre_auth_api_versions;
use crate::unix_now;

/// Kafka's error codes for SASL.
const ILLEGAL_SASL_STATE: i16 = 34;
const UNSUPPORTED_SASL_MECHANISM: i16 = 33;
const SASL_AUTHENTICATION_FAILED: i16 = 58;

/// What the filter does with a request.
pub enum Next {
    /// The session is authenticated: pass it on.
    Forward(KafkaRequest),
    /// Answered here; the backend never sees it.
    Answer(Result<KafkaResponse, FilterError>),
    /// The authentication failed with this answer: sent after the failure delay, then the connection closes.
    Refused(Result<KafkaResponse, FilterError>),
}

/// The per-session state machine.
pub struct Exchange {
    /// Users and mechanisms.
    directory: Arc<UserDirectory>,
    /// Outcome counters.
    stats: Arc<AuthStats>,
    /// Where the exchange is.
    state: State,
}

/// Progress of the exchange.
enum State {
    /// Waiting for SaslHandshake.
    Start,
    /// The handshake chose a mechanism; the next token starts it. `raw`: SaslHandshake v0 framing.
    Handshaken { mechanism: Mechanism, raw: bool },
    /// SCRAM server-first sent; waiting for client-final.
    Scram { server: Box<ScramServer>, mechanism: ScramMechanism, raw: bool },
    /// Done; requests flow to the backend.
    Authenticated,
    /// Failed; the connection is closing.
    Failed,
}

/// The result of one mechanism step.
enum Step {
    /// Send this challenge and wait for the next token.
    Continue(Vec<u8>),
    /// Authenticated: send this final message.
    Done(Vec<u8>, Principal),
    /// Refused, for this reason (logged; sent to v1+ clients).
    Failed(String),
}

// === impl Exchange ===

impl Exchange {
    /// A fresh exchange for a new session.
    pub fn new(directory: Arc<UserDirectory>, stats: Arc<AuthStats>) -> Self {
        Self { directory, stats, state: State::Start }
    }

    /// Decides what happens to `request`.
    pub fn handle(&mut self, mut request: KafkaRequest) -> Next {
        let key = request.api_key();
        if matches!(self.state, State::Authenticated) {
            return match key {
                Some(ApiKey::SaslHandshake | ApiKey::SaslAuthenticate) => {
                    Next::Answer(refuse(&mut request, "the session is already authenticated"))
                }
                _ => Next::Forward(request),
            };
        }
        let raw = matches!(self.state, State::Handshaken { raw: true, .. } | State::Scram { raw: true, .. });
        let failed_before = matches!(self.state, State::Failed);
        let answer = match key {
            // In v0 framing every frame is a token; the session wrapped it as a SaslAuthenticate v0 request.
            Some(ApiKey::SaslAuthenticate) if raw => self.authenticate(&mut request, true),
            Some(ApiKey::ApiVersions) if matches!(self.state, State::Start) => pre_auth_api_versions(&mut request),
            Some(ApiKey::SaslHandshake) if matches!(self.state, State::Start) => self.handshake(&mut request),
            Some(ApiKey::SaslAuthenticate) if matches!(self.state, State::Handshaken { .. } | State::Scram { .. }) => {
                self.authenticate(&mut request, false)
            }
            _ => {
                let what = key.map_or_else(|| format!("api key {}", request.api_key_raw()), |k| format!("{k:?}"));
                warn!(request = %what, "request before SASL authentication completed; closing the connection");
                refuse(&mut request, "authentication has not completed")
            }
        };
        if !failed_before && matches!(self.state, State::Failed) {
            // A refused mechanism or credentials: answered late, like Kafka's failed-authentication delay.
            return Next::Refused(answer);
        }
        Next::Answer(answer)
    }

    fn handshake(&mut self, request: &mut KafkaRequest) -> Result<KafkaResponse, FilterError> {
        let wanted = match request.body()? {
            RequestKind::SaslHandshake(body) => body.mechanism.to_string(),
            _ => return Err(FilterError::Internal("SaslHandshake key with another body".into())),
        };
        let offered: Vec<StrBytes> =
            self.directory.mechanisms().iter().map(|m| StrBytes::from_static_str(m.name())).collect();
        let chosen = Mechanism::from_name(&wanted).filter(|m| self.directory.mechanisms().contains(m));
        let mut body = SaslHandshakeResponse::default().with_mechanisms(offered);
        let close = match chosen {
            Some(mechanism) => {
                let raw = request.api_version() == 0;
                if raw {
                    // From the next frame on, the client sends bare tokens.
                    request.session.auth.set_raw_tokens(true);
                }
                self.state = State::Handshaken { mechanism, raw };
                false
            }
            None => {
                warn!(mechanism = %wanted, "client asked for a SASL mechanism the gateway does not offer");
                body.error_code = UNSUPPORTED_SASL_MECHANISM;
                self.state = State::Failed;
                true
            }
        };
        let response = respond(request, ResponseKind::SaslHandshake(body))?;
        Ok(if close { response.close_after() } else { response })
    }

    fn authenticate(&mut self, request: &mut KafkaRequest, raw: bool) -> Result<KafkaResponse, FilterError> {
        let token = match request.body()? {
            RequestKind::SaslAuthenticate(body) => body.auth_bytes.clone(),
            _ => return Err(FilterError::Internal("SaslAuthenticate key with another body".into())),
        };
        let mechanism_name = self.mechanism_name();
        let step = self.step(&token);
        let session = &request.session;
        let (error_code, message, bytes, close) = match step {
            Step::Continue(challenge) => (0, None, challenge, false),
            Step::Done(last, principal) => {
                info!(principal = %principal.name, vcluster = ?principal.vcluster, mechanism = mechanism_name,
                    "client authenticated");
                // The session's span declares `principal`: every later log line of the session carries it.
                tracing::Span::current().record("principal", principal.name.as_str());
                session.auth.set_raw_tokens(false);
                session.auth.set_sasl_principal(principal);
                self.stats.record_success();
                self.state = State::Authenticated;
                (0, None, last, false)
            }
            Step::Failed(reason) => {
                warn!(mechanism = mechanism_name, %reason, "SASL authentication failed; closing the connection");
                session.auth.set_raw_tokens(false);
                self.stats.record_failure();
                self.state = State::Failed;
                let message = format!("Authentication failed: {reason}");
                (SASL_AUTHENTICATION_FAILED, Some(message), Vec::new(), true)
            }
        };
        if raw {
            // v0 framing has no error field: a failure is signalled by closing the connection.
            return Ok(if close {
                KafkaResponse::no_response(request.api_key_raw(), 0, request.correlation_id()).close_after()
            } else {
                KafkaResponse::raw_sasl_token(Bytes::from(bytes))
            });
        }
        let body = SaslAuthenticateResponse::default()
            .with_error_code(error_code)
            .with_error_message(message.map(StrBytes::from_string))
            .with_auth_bytes(Bytes::from(bytes));
        let response = respond(request, ResponseKind::SaslAuthenticate(body))?;
        Ok(if close { response.close_after() } else { response })
    }

    fn mechanism_name(&self) -> &'static str {
        match &self.state {
            State::Handshaken { mechanism, .. } => mechanism.name(),
            State::Scram { mechanism, .. } => mechanism.name(),
            _ => "none",
        }
    }

    /// Runs the mechanism on one client token.
    fn step(&mut self, token: &[u8]) -> Step {
        match std::mem::replace(&mut self.state, State::Failed) {
            State::Handshaken { mechanism: Mechanism::Plain, .. } => {
                let credentials = match parse_plain(token) {
                    Ok(c) => c,
                    Err(e) => return Step::Failed(format!("malformed PLAIN message: {e}")),
                };
                match self.directory.verify_plain(&credentials.username, &credentials.password, unix_now()) {
                    Ok(principal) => match self.directory.admit(principal) {
                        Ok(principal) => Step::Done(Vec::new(), principal),
                        Err(reason) => Step::Failed(reason),
                    },
                    Err(reason) => Step::Failed(reason),
                }
            }
            State::Handshaken { mechanism: Mechanism::Scram(mechanism), raw } => {
                let mut server = Box::new(ScramServer::new(mechanism));
                let directory = &self.directory;
                match server.client_first(token, |user| directory.scram_credential(user, mechanism)) {
                    Ok(challenge) => {
                        self.state = State::Scram { server, mechanism, raw };
                        Step::Continue(challenge)
                    }
                    Err(e) => Step::Failed(e.to_string()),
                }
            }
            State::Scram { mut server, mechanism, .. } => match server.client_final(token) {
                Ok((last, username)) => {
                    let source = match mechanism {
                        ScramMechanism::Sha256 => PrincipalSource::ScramSha256,
                        ScramMechanism::Sha512 => PrincipalSource::ScramSha512,
                    };
                    let principal = Principal { name: username, vcluster: None, generation: 0, source };
                    match self.directory.admit(principal) {
                        Ok(principal) => Step::Done(last, principal),
                        Err(reason) => Step::Failed(reason),
                    }
                }
                Err(e) => Step::Failed(e.to_string()),
            },
            _ => Step::Failed("SASL message out of order".into()),
        }
    }
}

/// ILLEGAL_SASL_STATE, then close: what a Kafka broker does with a request out of place in the exchange.
fn refuse(request: &mut KafkaRequest, why: &str) -> Result<KafkaResponse, FilterError> {
    debug!(reason = why, "refusing a request with ILLEGAL_SASL_STATE");
    let closing = KafkaResponse::no_response(request.api_key_raw(), request.api_version(), request.correlation_id())
        .close_after();
    match request.api_key() {
        // An unknown api key's body cannot be decoded to build an error response: just close.
        None => Ok(closing),
        Some(_) => match request.error_response(ILLEGAL_SASL_STATE) {
            Ok(response) => Ok(response.close_after()),
            Err(_) => Ok(closing),
        },
    }
}

fn respond(request: &KafkaRequest, body: ResponseKind) -> Result<KafkaResponse, FilterError> {
    KafkaResponse::from_message(request.api_key_raw(), request.api_version(), request.correlation_id(), body)
}
