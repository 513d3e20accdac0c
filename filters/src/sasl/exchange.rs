//! One session's SASL exchange: handshake, mechanism steps, and what happens to every other request.

use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use franzgate_api::kafka_protocol::messages::{
    ApiKey, RequestKind, ResponseKind, SaslAuthenticateResponse, SaslHandshakeResponse,
};
use franzgate_api::kafka_protocol::protocol::StrBytes;
use franzgate_api::{AuthStats, FilterError, KafkaRequest, KafkaResponse, Principal, PrincipalSource, Session};
use franzgate_auth::plain::parse_plain;
use franzgate_auth::scram::{ScramCredential, ScramMechanism, ScramServer};
use futures::future::{BoxFuture, FutureExt, Shared};
use tracing::{Instrument, debug, info, warn};

use super::hashing::{HashRefused, PasswordHasher};
use super::limiter::FailureLimiter;
use super::users::{Mechanism, PlainCheck, UserDirectory};
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
    /// A password is being checked off the async workers: the answer, and whether the check failed (then it is
    /// sent after the failure delay and the connection closes).
    Checking(BoxFuture<'static, (Result<KafkaResponse, FilterError>, bool)>),
}

/// What every session's exchange shares; built once per gateway.
#[derive(Debug, Clone)]
pub struct Gatekeeper {
    /// Users and mechanisms.
    pub directory: Arc<UserDirectory>,
    /// Outcome counters.
    pub stats: Arc<AuthStats>,
    /// The bounded pool PLAIN passwords are hashed in.
    pub hasher: Arc<PasswordHasher>,
    /// Failed authentications per source address, when limited.
    pub limiter: Option<Arc<FailureLimiter>>,
}

/// The outcome of a password check, shared by the answer's future and the service's `poll_ready`.
type Verdict = Result<Principal, String>;

/// The per-session state machine.
pub struct Exchange {
    /// Users, counters, the hashing pool and the failure limit.
    gatekeeper: Gatekeeper,
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
    /// A PLAIN password is being checked; no request is taken until the verdict is in.
    Checking(Shared<BoxFuture<'static, Verdict>>),
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
    /// Check this PLAIN password against this credential (`known`: the user exists) off the async workers.
    CheckPassword { username: String, password: String, credential: ScramCredential, known: bool },
}

/// How to answer one SaslAuthenticate, copied from its request so the answer can be built later.
#[derive(Debug, Clone, Copy)]
struct Reply {
    /// The request's api key.
    key: i16,
    /// The request's version.
    version: i16,
    /// The request's correlation id.
    correlation_id: i32,
    /// SaslHandshake v0 framing: bare tokens, and a failure is a close.
    raw: bool,
}

// === impl Exchange ===

impl Exchange {
    /// A fresh exchange for a new session.
    pub fn new(gatekeeper: Gatekeeper) -> Self {
        Self { gatekeeper, state: State::Start }
    }

    /// Ready once no password check is pending: the verdict decides what the next request may do.
    pub fn poll_checked(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if let State::Checking(verdict) = &mut self.state {
            let Poll::Ready(verdict) = verdict.poll_unpin(cx) else { return Poll::Pending };
            self.state = if verdict.is_ok() { State::Authenticated } else { State::Failed };
        }
        Poll::Ready(())
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
            Some(ApiKey::SaslAuthenticate) if raw => return self.authenticate(&mut request, true),
            Some(ApiKey::ApiVersions) if matches!(self.state, State::Start) => pre_auth_api_versions(&mut request),
            Some(ApiKey::SaslHandshake) if matches!(self.state, State::Start) => self.handshake(&mut request),
            Some(ApiKey::SaslAuthenticate) if matches!(self.state, State::Handshaken { .. } | State::Scram { .. }) => {
                return self.authenticate(&mut request, false);
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
            self.gatekeeper.directory.mechanisms().iter().map(|m| StrBytes::from_static_str(m.name())).collect();
        let chosen = Mechanism::from_name(&wanted).filter(|m| self.gatekeeper.directory.mechanisms().contains(m));
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

    fn authenticate(&mut self, request: &mut KafkaRequest, raw: bool) -> Next {
        let token = match request.body() {
            Ok(RequestKind::SaslAuthenticate(body)) => body.auth_bytes.clone(),
            Ok(_) => return Next::Answer(Err(FilterError::Internal("SaslAuthenticate key with another body".into()))),
            Err(e) => return Next::Answer(Err(e)),
        };
        let reply = Reply {
            key: request.api_key_raw(),
            version: request.api_version(),
            correlation_id: request.correlation_id(),
            raw,
        };
        let mechanism_name = self.mechanism_name();
        let session = request.session.clone();
        let source = session.peer.ip();
        let limited = self.gatekeeper.limiter.as_ref().is_some_and(|l| l.is_limited(source, Instant::now()));
        let step = if limited {
            // Refused without looking at the token: no hashing for an address that used up its failures.
            self.gatekeeper.stats.record_limited();
            self.state = State::Failed;
            Step::Failed("too many failed authentications from this address; retry later".into())
        } else {
            self.step(&token)
        };
        match step {
            Step::Continue(challenge) => Next::Answer(reply.answer(Ok(challenge))),
            Step::Done(last, principal) => {
                settle(&self.gatekeeper, &session, mechanism_name, &Ok(principal), false);
                self.state = State::Authenticated;
                Next::Answer(reply.answer(Ok(last)))
            }
            Step::Failed(reason) => {
                settle(&self.gatekeeper, &session, mechanism_name, &Err(reason.clone()), limited);
                self.state = State::Failed;
                Next::Refused(reply.answer(Err(reason)))
            }
            Step::CheckPassword { username, password, credential, known } => {
                let verdict = spawn_check(self.gatekeeper.clone(), session, username, password, credential, known);
                self.state = State::Checking(verdict.clone());
                Next::Checking(
                    async move {
                        let verdict = verdict.await;
                        let failed = verdict.is_err();
                        (reply.answer(verdict.map(|_| Vec::new())), failed)
                    }
                    .boxed(),
                )
            }
        }
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
                let directory = &self.gatekeeper.directory;
                match directory.plain_check(&credentials.username, &credentials.password, unix_now()) {
                    PlainCheck::Decided(Ok(principal)) => match directory.admit(principal) {
                        Ok(principal) => Step::Done(Vec::new(), principal),
                        Err(reason) => Step::Failed(reason),
                    },
                    PlainCheck::Decided(Err(reason)) => Step::Failed(reason),
                    PlainCheck::Hash { credential, known } => Step::CheckPassword {
                        username: credentials.username,
                        password: credentials.password,
                        credential,
                        known,
                    },
                }
            }
            State::Handshaken { mechanism: Mechanism::Scram(mechanism), raw } => {
                let directory = &self.gatekeeper.directory;
                let mut server =
                    Box::new(ScramServer::new(mechanism).with_stand_in(directory.scram_stand_in(mechanism)));
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
                    match self.gatekeeper.directory.admit(principal) {
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

// === impl Reply ===

impl Reply {
    /// The answer to a step: the next token or the final one, or a failure (which closes the connection).
    fn answer(self, outcome: Result<Vec<u8>, String>) -> Result<KafkaResponse, FilterError> {
        let (error_code, message, bytes, close) = match outcome {
            Ok(bytes) => (0, None, bytes, false),
            Err(reason) => {
                (SASL_AUTHENTICATION_FAILED, Some(format!("Authentication failed: {reason}")), Vec::new(), true)
            }
        };
        if self.raw {
            // v0 framing has no error field: a failure is signalled by closing the connection.
            return Ok(if close {
                KafkaResponse::no_response(self.key, 0, self.correlation_id).close_after()
            } else {
                KafkaResponse::raw_sasl_token(Bytes::from(bytes))
            });
        }
        let body = SaslAuthenticateResponse::default()
            .with_error_code(error_code)
            .with_error_message(message.map(StrBytes::from_string))
            .with_auth_bytes(Bytes::from(bytes));
        let response = KafkaResponse::from_message(
            self.key,
            self.version,
            self.correlation_id,
            ResponseKind::SaslAuthenticate(body),
        )?;
        Ok(if close { response.close_after() } else { response })
    }
}

/// Checks a PLAIN password in the gatekeeper's hashing pool, in a task of its own: the check completes (and
/// is counted) whether or not anyone waits for the answer.
fn spawn_check(
    gatekeeper: Gatekeeper,
    session: Arc<Session>,
    username: String,
    password: String,
    credential: ScramCredential,
    known: bool,
) -> Shared<BoxFuture<'static, Verdict>> {
    let check = async move {
        let verdict = match gatekeeper.hasher.verify(credential, password).await {
            Ok(matched) => UserDirectory::plain_outcome(&username, known, matched)
                .and_then(|principal| gatekeeper.directory.admit(principal)),
            Err(HashRefused::Busy) => Err("the gateway is busy checking other logins; retry later".into()),
            Err(HashRefused::Lost) => Err("the password check did not complete".into()),
        };
        settle(&gatekeeper, &session, Mechanism::Plain.name(), &verdict, false);
        verdict
    };
    let task = tokio::spawn(check.in_current_span());
    async move { task.await.unwrap_or_else(|_| Err("the password check did not complete".into())) }.boxed().shared()
}

/// Records an authentication's outcome: the log line, the session's principal (or the end of raw tokens),
/// the counters, and a failure against the source address unless the failure limit refused it.
fn settle(gatekeeper: &Gatekeeper, session: &Session, mechanism: &str, verdict: &Verdict, limited: bool) {
    session.auth.set_raw_tokens(false);
    match verdict {
        Ok(principal) => {
            info!(principal = %principal.name, vcluster = ?principal.vcluster, mechanism, "client authenticated");
            // The session's span declares `principal`: every later log line of the session carries it.
            tracing::Span::current().record("principal", principal.name.as_str());
            session.auth.set_sasl_principal(principal.clone());
            gatekeeper.stats.record_success();
        }
        Err(reason) => {
            warn!(mechanism, %reason, "SASL authentication failed; closing the connection");
            gatekeeper.stats.record_failure();
            if let Some(limiter) = gatekeeper.limiter.as_ref().filter(|_| !limited) {
                limiter.record_failure(session.peer.ip(), Instant::now());
            }
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
