//! One client connection: frames in, filter stack, responses out in request order.
//!
//! Clients pipeline requests and Kafka answers them in order on a connection. Each request's `call` future
//! goes into a `FuturesOrdered`, so responses are written strictly in request order however they complete.
//! The stack's outermost layer bounds the requests in flight: when it is full, `poll_ready` is pending and no
//! further frame is read — backpressure reaches the client through TCP. Likewise while the session's buffered
//! bytes are over its memory budget ([`franzgate_api::budget`]): each request frame is charged from the moment
//! it is read until it is written to the broker, each response until it is written to the client.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::{BufMut, BytesMut};
use franzgate_api::budget::Direction;
use franzgate_api::{FilterError, KafkaRequest, KafkaResponse, Session};
use futures::stream::FuturesOrdered;
use futures::{FutureExt, StreamExt};
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio_util::codec::FramedRead;
use tokio_util::sync::CancellationToken;
use tower::{Service, ServiceExt};
use tracing::{Instrument, debug, info, info_span, warn};

use crate::codec::{FrameDecoder, FrameError, parse_request};
use crate::metrics::GatewayMetrics;
use crate::net::{ReadHalf, Stream};

/// Responses whose untouched body is at least this large are written from their own buffer (no copy).
const ZERO_COPY_THRESHOLD: usize = 64 * 1024;
/// Batched responses are flushed once the batch buffer holds this much.
const FLUSH_AT: usize = 256 * 1024;

/// Per-session limits.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// The largest request frame a client may send.
    pub max_frame: usize,
    /// Until a SASL client has authenticated, the largest frame it may send (Kafka's
    /// `sasl.server.max.receive.size`, 512 KiB): an unauthenticated peer cannot make the gateway buffer 100 MiB.
    /// `None` when clients do not authenticate with SASL.
    pub pre_auth_max_frame: Option<usize>,
    /// After a switch, how long in-flight requests may take before the session closes anyway.
    pub drain_timeout: std::time::Duration,
    /// A connection with nothing in flight and no request for this long is closed; `None`: never.
    pub idle_timeout: Option<std::time::Duration>,
    /// Requests in flight at which the session stops reading (the stack's concurrency limit), for the log
    /// line and the metric when it is reached.
    pub max_in_flight: usize,
    /// The bytes one session may buffer, requests and responses (`gateway.session_buffer_bytes`).
    pub buffer_bytes: usize,
    /// Runtime counters.
    pub metrics: Arc<GatewayMetrics>,
}

/// What ends a session from outside.
#[derive(Debug)]
pub struct Signals {
    /// Cancelled when the backend connection dies.
    pub backend_lost: CancellationToken,
    /// Cancelled when the gateway shuts down.
    pub shutdown: CancellationToken,
    /// The cluster selector's epoch; a change means the session's cluster is no longer active.
    pub switched: tokio::sync::watch::Receiver<u64>,
}

/// Why a session ended.
#[derive(Debug)]
enum Close {
    ClientDone,
    BadFrame(FrameError),
    BadRequest(String),
    /// A request failed; with its api key when known.
    Filter(FilterError, Option<i16>),
    ClientWrite(std::io::Error),
    BackendLost,
    FilterAsked,
    Shutdown,
    Switched {
        drained: bool,
    },
    /// Nothing in flight and no request for `idle_timeout`.
    Idle,
}

/// Serves one client connection until it closes, the backend goes away, or `shutdown` fires.
pub async fn serve<S>(stream: Stream, session: Arc<Session>, mut stack: S, signals: Signals, config: SessionConfig)
where
    S: Service<KafkaRequest, Response = KafkaResponse, Error = FilterError>,
{
    let span = info_span!("session", id = session.id, peer = %session.peer, port = session.listener_port,
        cluster = %session.cluster.name, principal = tracing::field::Empty);
    if let Some(principal) = session.auth.tls_principal() {
        span.record("principal", principal.name.as_str());
    }
    async move {
        debug!("client connected");
        config.metrics.client_connections_open.fetch_add(1, Ordering::Relaxed);
        let (read, mut write) = stream.into_split();
        let first_limit = config.pre_auth_max_frame.map_or(config.max_frame, |pre| pre.min(config.max_frame));
        let mut frames = FramedRead::with_capacity(read, FrameDecoder::new(first_limit), 16 * 1024);
        let mut in_flight = FuturesOrdered::new();
        let mut out = BytesMut::with_capacity(16 * 1024);
        let mut reading = true;
        let mut stopping = false;
        let mut told_in_flight_limit = false;
        let Signals { backend_lost, shutdown, mut switched } = signals;
        let bound_epoch = session.epoch;
        // Set when a switch made this session's cluster inactive: stop reading, answer what is in flight.
        let mut drain_until: Option<tokio::time::Instant> = None;
        let mut last_activity = tokio::time::Instant::now();
        let idle_timeout = config.idle_timeout;

        let close = loop {
            // Authenticated (the SASL filter decides as it takes the request): the full frame limit applies
            // from the next frame on.
            if frames.decoder().max_frame() < config.max_frame && session.auth.sasl_principal().is_some() {
                frames.decoder_mut().set_max_frame(config.max_frame);
            }
            if !reading && in_flight.is_empty() {
                break match drain_until {
                    _ if stopping => Close::Shutdown,
                    Some(_) => Close::Switched { drained: true },
                    None => Close::ClientDone,
                };
            }
            tokio::select! {
                biased;
                _ = tokio::time::sleep_until(last_activity + idle_timeout.unwrap_or_default()),
                    if idle_timeout.is_some() && reading && in_flight.is_empty() && drain_until.is_none() => {
                    break Close::Idle;
                }
                Some(result) = in_flight.next(), if !in_flight.is_empty() => {
                    last_activity = tokio::time::Instant::now();
                    if let Some(close) = write_responses(result, &mut in_flight, &mut out, &mut write, &config.metrics).await {
                        break close;
                    }
                }
                _ = backend_lost.cancelled(), if in_flight.is_empty() => break Close::BackendLost,
                _ = epoch_moved_on(&mut switched, bound_epoch), if drain_until.is_none() => {
                    reading = false;
                    drain_until = Some(tokio::time::Instant::now() + config.drain_timeout);
                }
                _ = tokio::time::sleep_until(drain_until.unwrap_or_else(tokio::time::Instant::now)), if drain_until.is_some() => {
                    break Close::Switched { drained: false };
                }
                // Shutdown: read no more requests, answer the ones in flight, then close.
                _ = shutdown.cancelled(), if !stopping => {
                    stopping = true;
                    reading = false;
                }
                next = next_frame(&mut stack, &mut frames, &session), if reading => match next {
                    Ok(Some(frame)) => {
                        last_activity = tokio::time::Instant::now();
                        let size = 4 + frame.len();
                        let charge = session.budget.charge(size, Direction::Request);
                        match parse_frame(frame, &session) {
                            Ok(mut request) => {
                                request.set_charge(charge);
                                let (key, started) = (request.api_key_raw(), std::time::Instant::now());
                                config.metrics.request_started(size);
                                in_flight.push_back(stack.call(request).map(move |r| (r, key, started)));
                                if in_flight.len() >= config.max_in_flight {
                                    config.metrics.in_flight_limit_reached.fetch_add(1, Ordering::Relaxed);
                                    if !told_in_flight_limit {
                                        told_in_flight_limit = true;
                                        info!(max_in_flight = config.max_in_flight,
                                            "max_in_flight_per_session reached: no further request is read until a response goes out");
                                    }
                                }
                            }
                            Err(e) => break Close::BadRequest(e.to_string()),
                        }
                    }
                    Ok(None) => reading = false,
                    Err(close) => break close,
                },
            }
        };
        let _ = write.shutdown().await;
        config.metrics.client_connections_open.fetch_sub(1, Ordering::Relaxed);
        // Requests never answered (the session closed first) leave the in-flight gauge too.
        for _ in 0..in_flight.len() {
            config.metrics.in_flight.fetch_sub(1, Ordering::Relaxed);
        }
        match close {
            Close::ClientDone => debug!("client closed the connection"),
            Close::FilterAsked => debug!("closed after a filter's final response"),
            Close::Shutdown => debug!("closed for shutdown"),
            Close::Idle => {
                config.metrics.sessions_closed_idle.fetch_add(1, Ordering::Relaxed);
                info!(idle_timeout_ms = idle_timeout.map(|t| t.as_millis()), "closed: idle (gateway.idle_timeout_ms)")
            }
            Close::Switched { drained: true } => info!("closed after a cluster switch; in-flight requests answered"),
            Close::Switched { drained: false } => {
                warn!(in_flight = in_flight.len(), "closed after a cluster switch; drain timeout reached")
            }
            Close::BackendLost => warn!("closing: backend connection lost"),
            Close::BadFrame(e @ FrameError::TooLarge { .. }) => {
                config.metrics.refused_oversized_frames.fetch_add(1, Ordering::Relaxed);
                crate::warn_limited!(reason = %e, "closing: frame larger than max_frame_bytes from client")
            }
            // A client decides how often these happen: rate-limited, so it cannot set the log's growth rate.
            Close::BadFrame(e) => crate::warn_limited!(reason = %e, "closing: bad frame from client"),
            Close::BadRequest(e) => crate::warn_limited!(reason = %e, "closing: malformed request"),
            Close::Filter(e, None) => crate::warn_limited!(reason = %e, "closing: request failed"),
            Close::Filter(e, Some(key)) => {
                let api = franzgate_api::kafka_protocol::messages::ApiKey::try_from(key)
                    .map_or_else(|_| key.to_string(), |k| format!("{k:?}"));
                crate::warn_limited!(reason = %e, api = %api, "closing: request failed")
            }
            Close::ClientWrite(e) => debug!(reason = %e, "closing: cannot write to client"),
        }
    }
    .instrument(span)
    .await
}

/// Resolves once the selector's epoch differs from the session's (at once if it already does). Never
/// resolves if the selector is gone, which only happens at shutdown.
async fn epoch_moved_on(switched: &mut tokio::sync::watch::Receiver<u64>, bound: u64) {
    if switched.wait_for(|epoch| *epoch != bound).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// A frame as a request: a Kafka request, or — after SaslHandshake v0 — a bare SASL token, which the SASL
/// filter receives as a SaslAuthenticate v0 request.
fn parse_frame(frame: bytes::Bytes, session: &Arc<Session>) -> Result<KafkaRequest, crate::codec::RequestError> {
    if session.auth.expects_raw_token() {
        return Ok(KafkaRequest::raw_sasl_token(frame, session.clone()));
    }
    parse_request(frame, session)
}

/// Waits until the stack can take a request and the memory budgets another frame, then reads the next frame.
async fn next_frame<S>(
    stack: &mut S,
    frames: &mut FramedRead<ReadHalf, FrameDecoder>,
    session: &Session,
) -> Result<Option<bytes::Bytes>, Close>
where
    S: Service<KafkaRequest, Response = KafkaResponse, Error = FilterError>,
{
    stack.ready().await.map_err(|e| Close::Filter(e, None))?;
    if let Some(limit) = session.budget.admit(Direction::Request).await {
        crate::memory::note_wait(session.id, limit, &session.budget, "client requests");
    }
    match frames.next().await {
        Some(Ok(frame)) => Ok(Some(frame)),
        Some(Err(e)) => Err(Close::BadFrame(e)),
        None => Ok(None),
    }
}

/// A response with its api key and when its request arrived.
type Timed = (Result<KafkaResponse, FilterError>, i16, std::time::Instant);

/// Writes `first` and every response already complete behind it in one batch.
async fn write_responses<F, W>(
    first: Timed,
    in_flight: &mut FuturesOrdered<F>,
    out: &mut BytesMut,
    write: &mut W,
    metrics: &GatewayMetrics,
) -> Option<Close>
where
    F: std::future::Future<Output = Timed>,
    W: AsyncWrite + Unpin,
{
    let mut next = Some(first);
    while let Some((result, key, started)) = next.take() {
        metrics.request_done(key, started.elapsed());
        let before = out.len();
        let mut response = match result {
            Ok(response) => response,
            Err(e) => {
                return Some(flush(out, write).await.err().map_or(Close::Filter(e, Some(key)), Close::ClientWrite));
            }
        };
        metrics.count_errors(&mut response);
        match append_response(&response, out, write).await {
            Ok(large) => {
                let written = large + out.len().saturating_sub(before);
                metrics.bytes_out.fetch_add(written as u64, Ordering::Relaxed);
            }
            Err(e) => return Some(e),
        }
        if response.closes_connection() {
            return Some(flush(out, write).await.err().map_or(Close::FilterAsked, Close::ClientWrite));
        }
        if out.len() >= FLUSH_AT {
            if let Err(e) = flush(out, write).await {
                return Some(Close::ClientWrite(e));
            }
        }
        next = in_flight.next().now_or_never().flatten();
    }
    flush(out, write).await.err().map(Close::ClientWrite)
}

/// Appends one response to the batch; a large untouched body is written from its own buffer. Returns the bytes
/// written directly (not through the batch).
async fn append_response<W: AsyncWrite + Unpin>(
    response: &KafkaResponse,
    out: &mut BytesMut,
    write: &mut W,
) -> Result<usize, Close> {
    let Some(body) = response.raw_body() else {
        return Ok(0);
    };
    match body.raw_bytes() {
        Some(raw) if raw.len() >= ZERO_COPY_THRESHOLD && !response.is_raw_token() => {
            let len = 4 + response.header_rest().len() + raw.len();
            let len = i32::try_from(len).map_err(|_| Close::BadRequest("response over 2 GiB".into()))?;
            out.put_i32(len);
            out.put_i32(response.correlation_id());
            out.extend_from_slice(response.header_rest());
            flush(out, write).await.map_err(Close::ClientWrite)?;
            write.write_all(raw).await.map_err(Close::ClientWrite)?;
            // TLS buffers inside the stream: flush so the record goes out now.
            write.flush().await.map_err(Close::ClientWrite)?;
            Ok(4 + len.unsigned_abs() as usize)
        }
        _ => response.encode_frame(out).map(|()| 0).map_err(|e| Close::Filter(e, Some(response.api_key_raw()))),
    }
}

async fn flush<W: AsyncWrite + Unpin>(out: &mut BytesMut, write: &mut W) -> std::io::Result<()> {
    if out.is_empty() {
        return Ok(());
    }
    let result = write.write_all(out).await;
    out.clear();
    result?;
    // A no-op on TCP; TLS holds written bytes until flushed.
    write.flush().await
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use franzgate_api::kafka_protocol::messages::{ApiVersionsResponse, ResponseKind};
    use franzgate_api::topology::BackendCluster;
    use tokio::io::AsyncReadExt;
    use tokio::net::{TcpListener, TcpStream};
    use tower::limit::ConcurrencyLimit;

    use super::*;

    fn api_versions(correlation_id: i32) -> Vec<u8> {
        let payload = [&18i16.to_be_bytes()[..], &0i16.to_be_bytes(), &correlation_id.to_be_bytes(), &[0, 0]].concat();
        [&(payload.len() as i32).to_be_bytes()[..], &payload].concat()
    }

    /// Serves one connection with a stack whose responses complete in *reverse* order of arrival, counting
    /// the most requests ever in flight at once.
    async fn start(max_in_flight: usize) -> (TcpStream, Arc<AtomicUsize>) {
        let (current, peak) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let peak_seen = peak.clone();
        let stack = tower::service_fn(move |request: KafkaRequest| {
            let (current, peak) = (current.clone(), peak.clone());
            async move {
                let now = current.fetch_add(1, Ordering::SeqCst) + 1;
                peak.fetch_max(now, Ordering::SeqCst);
                let delay = 50u64.saturating_sub(request.correlation_id() as u64 * 10);
                tokio::time::sleep(Duration::from_millis(delay)).await;
                current.fetch_sub(1, Ordering::SeqCst);
                let body = ResponseKind::ApiVersions(ApiVersionsResponse::default());
                KafkaResponse::from_message(18, 0, request.correlation_id(), body)
            }
        });
        let stack = ConcurrencyLimit::new(stack, max_in_flight);
        (serve_one(stack, max_in_flight, GatewayMetrics::default()).await, peak_seen)
    }

    /// A client connection served by `stack`.
    async fn serve_one<S>(stack: S, max_in_flight: usize, metrics: GatewayMetrics) -> TcpStream
    where
        S: Service<KafkaRequest, Response = KafkaResponse, Error = FilterError> + Send + 'static,
        S::Future: Send,
    {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let client = TcpStream::connect(listener.local_addr().expect("addr")).await.expect("connect");
        let (server, peer) = listener.accept().await.expect("accept");
        let server = Stream::Tcp(server);
        let session = Arc::new(Session::new(1, peer, 0, Arc::new(BackendCluster::new("main", vec![])), 0));
        let config = SessionConfig {
            max_frame: 1 << 20,
            pre_auth_max_frame: None,
            drain_timeout: Duration::from_secs(1),
            idle_timeout: None,
            max_in_flight,
            buffer_bytes: usize::MAX,
            metrics: Arc::new(metrics),
        };
        let never = CancellationToken::new();
        let (_epoch, switched) = tokio::sync::watch::channel(0);
        let signals = Signals { backend_lost: never.clone(), shutdown: never, switched };
        tokio::spawn(serve(server, session, stack, signals, config));
        client
    }

    async fn correlation_ids(client: &mut TcpStream, count: usize) -> Vec<i32> {
        let mut ids = Vec::new();
        for _ in 0..count {
            let len = client.read_i32().await.expect("length");
            let mut frame = vec![0; len as usize];
            client.read_exact(&mut frame).await.expect("frame");
            ids.push(i32::from_be_bytes([frame[0], frame[1], frame[2], frame[3]]));
        }
        ids
    }

    #[tokio::test]
    async fn responses_are_written_in_request_order_whatever_order_they_complete_in() {
        let (mut client, peak) = start(16).await;
        let pipeline: Vec<u8> = (0..5).flat_map(api_versions).collect();
        client.write_all(&pipeline).await.expect("write");
        assert_eq!(correlation_ids(&mut client, 5).await, vec![0, 1, 2, 3, 4]);
        assert!(peak.load(Ordering::SeqCst) > 1, "requests were pipelined, not served one by one");
    }

    #[tokio::test]
    async fn requests_in_flight_never_exceed_the_limit() {
        let (mut client, peak) = start(2).await;
        let pipeline: Vec<u8> = (0..5).flat_map(api_versions).collect();
        client.write_all(&pipeline).await.expect("write");
        assert_eq!(correlation_ids(&mut client, 5).await, vec![0, 1, 2, 3, 4]);
        assert_eq!(peak.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_response_filters_only_inspect_reaches_the_client_unchanged_even_when_it_does_not_decode() {
        use franzgate_api::undecodable::Direction as Way;
        use tower::Layer;
        // A Fetch v12 answer whose body is not a Fetch response (a newer broker, an unknown tagged field...).
        let garbage = bytes::Bytes::from_static(&[0xde, 0xad, 0xbe, 0xef, 0xff, 0x01]);
        let broker = tower::service_fn(move |request: KafkaRequest| {
            let garbage = garbage.clone();
            async move {
                if request.api_key_raw() == 18 {
                    let body = ResponseKind::ApiVersions(ApiVersionsResponse::default());
                    return KafkaResponse::from_message(18, 0, request.correlation_id(), body);
                }
                let tags = bytes::Bytes::from_static(&[0]);
                Ok(KafkaResponse::from_wire(1, 12, request.correlation_id(), tags, garbage))
            }
        });
        // The chargeback filter reads every Fetch response; error-code metrics read every response.
        let ledger = Arc::new(franzgate_api::usage::UsageLedger::new(Default::default()));
        let stack = franzgate_filters::chargeback::ChargebackLayer::new(ledger).layer(broker);
        let mut metrics = GatewayMetrics::default();
        metrics.count_error_codes = true;
        let mut client = serve_one(stack, 16, metrics).await;

        let fetch = [&1i16.to_be_bytes()[..], &12i16.to_be_bytes(), &5i32.to_be_bytes(), &[0xff, 0xff, 0]].concat();
        client.write_all(&(fetch.len() as i32).to_be_bytes()).await.expect("write");
        client.write_all(&fetch).await.expect("write");
        let len = client.read_i32().await.expect("the answer comes");
        let mut frame = vec![0; len as usize];
        client.read_exact(&mut frame).await.expect("frame");
        assert_eq!(frame, [&5i32.to_be_bytes()[..], &[0], &[0xde, 0xad, 0xbe, 0xef, 0xff, 0x01]].concat());

        client.write_all(&api_versions(6)).await.expect("write");
        assert_eq!(correlation_ids(&mut client, 1).await, vec![6], "the session stays open");
        let counted = franzgate_api::undecodable::counts()
            .into_iter()
            .any(|((way, key, version), n)| way == Way::Response && key == 1 && version == 12 && n >= 1);
        assert!(counted, "the undecodable response is counted");
    }
}
