//! The innermost service: one backend connection per client session.
//!
//! `Upstream` is a cheap handle; the connection itself is an actor task spawned on the first request. The
//! actor connects to the broker the routing filter chose (or the first reachable bootstrap broker), rewrites
//! correlation ids to its own sequence (so the gateway can interleave requests of its own later), writes frames
//! in batches, and hands each response to the request that awaits it. Kafka answers in order on a connection,
//! so a FIFO of pending requests is enough to match them; the correlation id is checked anyway.
//!
//! If a later request is routed to a different broker (a client that bootstrapped on this port before the
//! gateway knew which broker the port stands for), the actor opens the new connection and lets the old one
//! finish its in-flight responses before closing it; the session still answers the client in order.

use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use franzgate_api::budget::{Charge, Direction, SessionBudget};
use franzgate_api::topology::BrokerAddress;
use franzgate_api::{FilterError, KafkaRequest, KafkaResponse, Route, Session};
use futures::StreamExt;
use tokio::io::AsyncWriteExt;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_util::codec::FramedRead;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use crate::backend::BackendSecurityMap;
use crate::codec::{FrameDecoder, PendingRequest, parse_response};
use crate::net::{ReadHalf, Stream, WriteHalf};

/// Bodies at least this large are written straight from their `Bytes` instead of being copied into the
/// batch buffer.
const ZERO_COPY_THRESHOLD: usize = 64 * 1024;
/// How many queued requests one write batch takes at most.
const MAX_BATCH: usize = 64;

/// Settings of backend connections.
#[derive(Debug, Clone)]
pub struct UpstreamConfig {
    /// How long one connection attempt may take before the next bootstrap broker is tried.
    pub connect_timeout: Duration,
    /// The largest response frame accepted from a broker.
    pub max_frame: usize,
    /// TLS and SASL settings of each backend cluster.
    pub backends: BackendSecurityMap,
    /// Runtime counters (backend connections).
    pub metrics: Arc<crate::metrics::GatewayMetrics>,
    /// How long a broker may take to answer one request before its connection is given up (`None`: forever).
    pub request_timeout: Option<Duration>,
}

/// The handle filters forward to: `Service<KafkaRequest>` whose future resolves with the broker's response.
pub struct Upstream {
    /// The session whose requests this forwards (its cluster's bootstrap list, its id for logs).
    session: Arc<Session>,
    /// Connect timeout and frame limit.
    config: Arc<UpstreamConfig>,
    /// Cancelled when the backend connection dies, so the session closes even with nothing in flight.
    lost: CancellationToken,
    /// The connection actor's queue, spawned on the first request.
    actor: Option<mpsc::UnboundedSender<Outbound>>,
}

/// A request on its way to the actor, already reduced to its wire parts.
struct Outbound {
    /// Which broker it goes to.
    route: Route,
    /// The request's api key.
    api_key: i16,
    /// The request's api version.
    api_version: i16,
    /// Restored in the response.
    client_correlation_id: i32,
    /// Header bytes after the fixed 8, as the client sent them.
    header_rest: Bytes,
    /// The body: the received bytes, or the re-encoded message.
    body: Bytes,
    /// Where the response goes; `None` for Produce with acks=0.
    reply: Option<oneshot::Sender<Result<KafkaResponse, FilterError>>>,
    /// The request's bytes against the session's budget, given back once written to the broker. An acks=0
    /// Produce is answered at once, so without this its bytes would queue here unbounded while a broker is slow.
    charge: Option<Charge>,
}

/// A response the reader still owes.
struct Waiting {
    /// The upstream correlation id the response must carry.
    correlation_id: i32,
    /// How to interpret the response.
    request: PendingRequest,
    /// Where the response goes.
    reply: Option<oneshot::Sender<Result<KafkaResponse, FilterError>>>,
}

/// An open backend connection owned by the actor.
struct Connection {
    /// The broker it is connected to.
    address: BrokerAddress,
    /// Requests are written here, by the actor only.
    writer: WriteHalf,
    /// Responses owed, in order; the reader task takes them.
    waiting: mpsc::UnboundedSender<Waiting>,
    /// The task reading responses.
    reader: JoinHandle<()>,
    /// Cancelled when the connection is retired: its reader then drains what is in flight without waiting for
    /// the session's budget (the responses of the connection that replaced it may hold the budget, and the
    /// session cannot write those before these).
    retired: CancellationToken,
}

// === impl Upstream ===

impl Upstream {
    /// A handle for `session`; nothing connects until the first request.
    pub fn new(session: Arc<Session>, config: Arc<UpstreamConfig>, lost: CancellationToken) -> Self {
        Self { session, config, lost, actor: None }
    }

    fn actor(&mut self) -> &mpsc::UnboundedSender<Outbound> {
        self.actor.get_or_insert_with(|| {
            let (tx, rx) = mpsc::unbounded_channel();
            let actor = Actor {
                session: self.session.clone(),
                config: self.config.clone(),
                lost: self.lost.clone(),
                current: None,
                retiring: Vec::new(),
                next_correlation_id: 0,
                out: BytesMut::with_capacity(16 * 1024),
                written: Vec::new(),
                handle_dropped: CancellationToken::new(),
            };
            tokio::spawn(actor.run(rx));
            tx
        })
    }
}

impl tower::Service<KafkaRequest> for Upstream {
    type Response = KafkaResponse;
    type Error = FilterError;
    type Future = futures::future::Either<
        futures::future::Ready<Result<KafkaResponse, FilterError>>,
        futures::future::Map<
            oneshot::Receiver<Result<KafkaResponse, FilterError>>,
            fn(
                Result<Result<KafkaResponse, FilterError>, oneshot::error::RecvError>,
            ) -> Result<KafkaResponse, FilterError>,
        >,
    >;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), FilterError>> {
        // The session bounds requests in flight; the actor's queue never holds more than that.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut request: KafkaRequest) -> Self::Future {
        use futures::FutureExt;
        use futures::future::{Either, ready};

        let body = match request.body.raw_bytes() {
            Some(raw) => raw.clone(),
            None => {
                let mut encoded = BytesMut::new();
                if let Err(e) = request.body.write_to(request.api_version(), &mut encoded) {
                    return Either::Left(ready(Err(FilterError::encode(e))));
                }
                encoded.freeze()
            }
        };
        let (reply, response) = if request.expects_response() {
            let (tx, rx) = oneshot::channel();
            (Some(tx), Some(rx))
        } else {
            (None, None)
        };
        let outbound = Outbound {
            route: std::mem::take(&mut request.route),
            api_key: request.api_key_raw(),
            api_version: request.api_version(),
            client_correlation_id: request.correlation_id(),
            header_rest: request.header_rest().clone(),
            body,
            reply,
            charge: request.take_charge(),
        };
        if self.actor().send(outbound).is_err() {
            return Either::Left(ready(Err(FilterError::UpstreamClosed("connection actor stopped".into()))));
        }
        match response {
            Some(rx) => {
                Either::Right(rx.map(|r| {
                    r.unwrap_or_else(|_| Err(FilterError::UpstreamClosed("backend connection closed".into())))
                }))
            }
            None => Either::Left(ready(Ok(KafkaResponse::no_response(
                request.api_key_raw(),
                request.api_version(),
                request.correlation_id(),
            )))),
        }
    }
}

// === impl Actor ===

/// Owns the backend connection(s) of one session: connects, writes batches, retires replaced connections.
struct Actor {
    /// The session served.
    session: Arc<Session>,
    /// Connect timeout and frame limit.
    config: Arc<UpstreamConfig>,
    /// Cancelled when the backend connection is lost.
    lost: CancellationToken,
    /// The connection requests go to now.
    current: Option<Connection>,
    /// Connections replaced by a route change: their write halves stay open (a broker may drop in-flight
    /// responses of a half-closed connection) until their readers have delivered what was in flight.
    retiring: Vec<(WriteHalf, JoinHandle<()>)>,
    /// The upstream correlation-id sequence.
    next_correlation_id: i32,
    /// The write batch being assembled.
    out: BytesMut,
    /// Charges of the requests in `out`, given back when it is flushed.
    written: Vec<Charge>,
    /// Cancelled when the `Upstream` handle is dropped and its queue drained.
    handle_dropped: CancellationToken,
}

impl Actor {
    async fn run(mut self, mut rx: mpsc::UnboundedReceiver<Outbound>) {
        let mut batch = Vec::with_capacity(MAX_BATCH);
        while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
            for outbound in batch.drain(..) {
                self.forward(outbound).await;
            }
            if let Err(e) = self.flush().await {
                self.connection_failed(format!("write to broker failed: {e}"));
            }
            self.retiring.retain(|(_, reader)| !reader.is_finished());
        }
        // The handle is gone (the session closed): readers stop at the first response nobody awaits any more,
        // rather than reading all the broker still owes (a thousand pipelined fetches, say).
        self.handle_dropped.cancel();
    }

    async fn forward(&mut self, outbound: Outbound) {
        if let Err(error) = self.ensure_connection(&outbound.route).await {
            crate::warn_limited!(session = self.session.id, %error, "cannot reach backend");
            self.lost.cancel();
            if let Some(reply) = outbound.reply {
                let _ = reply.send(Err(error));
            }
            return;
        }
        let Some(conn) = self.current.as_ref() else {
            return;
        };
        self.next_correlation_id = self.next_correlation_id.wrapping_add(1);
        let correlation_id = self.next_correlation_id;
        let request = PendingRequest {
            api_key: outbound.api_key,
            api_version: outbound.api_version,
            client_correlation_id: outbound.client_correlation_id,
        };
        // Register before writing: the reader must find the entry when the response arrives.
        if outbound.reply.is_some() {
            let waiting = Waiting { correlation_id, request, reply: outbound.reply };
            if let Err(mpsc::error::SendError(w)) = conn.waiting.send(waiting) {
                if let Some(reply) = w.reply {
                    let _ = reply.send(Err(FilterError::UpstreamClosed("backend connection closed".into())));
                }
                return;
            }
        }
        let len = 8 + outbound.header_rest.len() + outbound.body.len();
        let Ok(len) = i32::try_from(len) else { return };
        self.out.put_i32(len);
        self.out.put_i16(outbound.api_key);
        self.out.put_i16(outbound.api_version);
        self.out.put_i32(correlation_id);
        self.out.extend_from_slice(&outbound.header_rest);
        if outbound.body.len() < ZERO_COPY_THRESHOLD {
            self.out.extend_from_slice(&outbound.body);
            self.written.extend(outbound.charge);
        } else if let Err(e) = self.write_large(outbound.body).await {
            self.connection_failed(format!("write to broker failed: {e}"));
        }
    }

    /// Writes the batch so far, then `body` from its own buffer (no copy).
    async fn write_large(&mut self, body: Bytes) -> std::io::Result<()> {
        self.flush().await?;
        if let Some(conn) = self.current.as_mut() {
            conn.writer.write_all(&body).await?;
            conn.writer.flush().await?;
        }
        Ok(())
    }

    async fn flush(&mut self) -> std::io::Result<()> {
        if self.out.is_empty() {
            return Ok(());
        }
        let result = match self.current.as_mut() {
            // flush: a no-op on TCP, needed on TLS.
            Some(conn) => match conn.writer.write_all(&self.out).await {
                Ok(()) => conn.writer.flush().await,
                Err(e) => Err(e),
            },
            None => Ok(()),
        };
        self.out.clear();
        self.written.clear();
        result
    }

    fn connection_failed(&mut self, reason: String) {
        crate::warn_limited!(session = self.session.id, %reason, "backend connection failed");
        // Dropping the connection drops the waiting queue; the reader fails what is still pending.
        self.current = None;
        self.lost.cancel();
    }

    async fn ensure_connection(&mut self, route: &Route) -> Result<(), FilterError> {
        if self.lost.is_cancelled() {
            return Err(FilterError::UpstreamClosed("backend connection already lost".into()));
        }
        let wanted = match (route, &self.current) {
            (Route::Bootstrap, Some(_)) => return Ok(()),
            (Route::Broker { address, .. }, Some(conn)) if conn.address == *address => {
                return Ok(());
            }
            (Route::Broker { address, .. }, _) => vec![address.clone()],
            (Route::Bootstrap, None) => self.session.cluster.bootstrap_servers.clone(),
        };
        // Anything batched belongs to the connection being replaced.
        if let Err(e) = self.flush().await {
            self.connection_failed(format!("write to broker failed: {e}"));
            return Err(FilterError::UpstreamClosed(e.to_string()));
        }
        let conn = self.connect_any(&wanted).await?;
        if let Some(old) = self.current.replace(conn) {
            debug!(session = self.session.id, from = %old.address, "route changed; retiring backend connection");
            old.retired.cancel();
            // Dropping `waiting` lets the old reader stop once its queue is drained.
            self.retiring.push((old.writer, old.reader));
        }
        Ok(())
    }

    async fn connect_any(&self, candidates: &[BrokerAddress]) -> Result<Connection, FilterError> {
        let mut failures = Vec::new();
        let cluster = &self.session.cluster;
        let security = self.config.backends.get(&cluster.name);
        for address in candidates {
            let attempt = security.connect(address, cluster, self.config.connect_timeout, self.config.max_frame).await;
            match attempt {
                Ok(stream) => {
                    debug!(session = self.session.id, broker = %address, "connected to backend");
                    return Ok(self.spawn_connection(address.clone(), stream));
                }
                Err(e) => failures.push(format!("{address}: {e}")),
            }
        }
        Err(FilterError::Unreachable(format!(
            "cluster `{}`: {}",
            self.session.cluster.name,
            if failures.is_empty() { "no bootstrap servers configured".to_string() } else { failures.join("; ") }
        )))
    }

    fn spawn_connection(&self, address: BrokerAddress, stream: Stream) -> Connection {
        let (read, writer) = stream.into_split();
        let (waiting, queue) = mpsc::unbounded_channel();
        let frames = FramedRead::with_capacity(read, FrameDecoder::new(self.config.max_frame), 64 * 1024);
        let metrics = self.config.metrics.clone();
        metrics.upstream_connections_opened.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        metrics.upstream_connections_open.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let retired = CancellationToken::new();
        let limits = ReadLimits {
            request_timeout: self.config.request_timeout,
            metrics: metrics.clone(),
            budget: self.session.budget.clone(),
            retired: retired.clone(),
            handle_dropped: self.handle_dropped.clone(),
        };
        let reading = read_responses(frames, queue, self.lost.clone(), self.session.id, address.clone(), limits);
        let reader = tokio::spawn(async move {
            // Counted down however the task ends, also when it is aborted.
            let _open = OpenGauge(metrics);
            reading.await;
        });
        Connection { address, writer, waiting, reader, retired }
    }
}

/// Counts one backend connection out of `upstream_connections_open` when dropped.
struct OpenGauge(Arc<crate::metrics::GatewayMetrics>);

impl Drop for OpenGauge {
    fn drop(&mut self) {
        self.0.upstream_connections_open.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

/// What bounds the wait for a response.
struct ReadLimits {
    /// Per response, from the moment it is next in line.
    request_timeout: Option<Duration>,
    /// Where timeouts are counted.
    metrics: Arc<crate::metrics::GatewayMetrics>,
    /// The session's memory budget: no response is read while the session holds too many unwritten ones.
    budget: Arc<SessionBudget>,
    /// Cancelled when the connection is retired (then the budget is not waited for).
    retired: CancellationToken,
    /// Cancelled when the session's `Upstream` handle is gone: responses nobody awaits are not read any more.
    handle_dropped: CancellationToken,
}

impl ReadLimits {
    /// Waits until the session may buffer another response, unless the connection is retired.
    async fn admit_response(&self, session_id: u64) {
        if self.retired.is_cancelled() {
            return;
        }
        tokio::select! {
            waited = self.budget.admit(Direction::Response) => {
                if let Some(limit) = waited {
                    crate::memory::note_wait(session_id, limit, &self.budget, "backend responses");
                }
            }
            () = self.retired.cancelled() => {}
        }
    }
}

/// JoinGroup may legitimately wait for the group's whole rebalance (`rebalance.timeout.ms`, minutes): it is
/// left unbounded rather than cut short.
const JOIN_GROUP: i16 = 11;

/// Reads responses in order and hands each to the request waiting for it. Ends when the connection closes,
/// when a response is later than the request timeout (the connection is then out of step and given up; the
/// session closes and the client retries on a new one), or when its queue is closed and drained (the
/// connection was retired).
async fn read_responses(
    mut frames: FramedRead<ReadHalf, FrameDecoder>,
    mut queue: mpsc::UnboundedReceiver<Waiting>,
    lost: CancellationToken,
    session_id: u64,
    address: BrokerAddress,
    limits: ReadLimits,
) {
    let failure = loop {
        tokio::select! {
            // The entry is queued before its request is written, so it is always seen before its response.
            biased;
            next = queue.recv() => {
                let Some(waiting) = next else { return };
                if limits.handle_dropped.is_cancelled() && waiting.reply.as_ref().is_none_or(|r| r.is_closed()) {
                    break "the session closed; nobody awaits the responses still owed".to_string();
                }
                limits.admit_response(session_id).await;
                let limit = limits.request_timeout.filter(|_| waiting.request.api_key != JOIN_GROUP);
                let next = match limit {
                    None => frames.next().await,
                    Some(limit) => match tokio::time::timeout(limit, frames.next()).await {
                        Ok(next) => next,
                        Err(_) => {
                            limits.metrics.backend_request_timeouts.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            let api_key = waiting.request.api_key;
                            warn!(session = session_id, broker = %address, api_key, timeout_ms = limit.as_millis(),
                                "broker did not answer within request_timeout_ms; giving up its connection");
                            fail(waiting, "broker did not answer within request_timeout_ms");
                            break format!("api key {api_key}: no response within {limit:?}");
                        }
                    },
                };
                match next {
                    Some(Ok(frame)) => {
                        let actual = frame.get(..4).map(|b| i32::from_be_bytes([b[0], b[1], b[2], b[3]]));
                        if actual != Some(waiting.correlation_id) {
                            let expected = waiting.correlation_id;
                            fail(waiting, "broker answered out of order");
                            break format!("expected correlation id {expected}, got {actual:?}");
                        }
                        let charge = limits.budget.charge(4 + frame.len(), Direction::Response);
                        let response = parse_response(frame, waiting.request)
                            .map(|mut response| {
                                response.set_charge(charge);
                                response
                            })
                            .map_err(|e| FilterError::Decode(e.clone()));
                        if let Some(reply) = waiting.reply {
                            let _ = reply.send(response);
                        }
                    }
                    Some(Err(e)) => {
                        fail(waiting, "backend connection failed");
                        break e.to_string();
                    }
                    None => {
                        fail(waiting, "broker closed the connection");
                        break "broker closed the connection with a request in flight".to_string();
                    }
                }
            }
            unsolicited = frames.next() => {
                break match unsolicited {
                    None => "broker closed the connection".to_string(),
                    Some(Ok(_)) => "broker sent a response to no request".to_string(),
                    Some(Err(e)) => e.to_string(),
                };
            }
        }
    };
    debug!(session = session_id, broker = %address, reason = %failure, "backend connection ended");
    lost.cancel();
    queue.close();
    while let Ok(waiting) = queue.try_recv() {
        fail(waiting, "backend connection closed");
    }
}

fn fail(waiting: Waiting, reason: &str) {
    if let Some(reply) = waiting.reply {
        let _ = reply.send(Err(FilterError::UpstreamClosed(reason.to_string())));
    }
}

#[cfg(test)]
mod tests {
    //! The upstream against a loopback listener standing in for a broker: what bytes it receives, and what
    //! the caller gets back.
    use super::*;
    use franzgate_api::topology::BackendCluster;
    use tokio::io::AsyncReadExt;
    use tokio::net::TcpListener;
    use tower::ServiceExt;

    use crate::codec::parse_request;

    async fn broker_answering(reply: &'static [u8]) -> (BrokerAddress, tokio::sync::mpsc::UnboundedReceiver<Vec<u8>>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            let Ok((mut stream, _)) = listener.accept().await else { return };
            while let Ok(len) = stream.read_i32().await {
                let mut frame = vec![0; len as usize];
                if stream.read_exact(&mut frame).await.is_err() {
                    return;
                }
                let correlation = frame[4..8].to_vec();
                let _ = tx.send(frame);
                if reply.is_empty() {
                    continue;
                }
                let mut response = ((4 + reply.len()) as i32).to_be_bytes().to_vec();
                response.extend_from_slice(&correlation);
                response.extend_from_slice(reply);
                let _ = stream.write_all(&response).await;
            }
        });
        (BrokerAddress { host: "127.0.0.1".into(), port }, rx)
    }

    fn upstream_to(address: BrokerAddress) -> (Upstream, Arc<Session>) {
        let peer = "127.0.0.1:1".parse().expect("addr");
        let session = Arc::new(Session::new(1, peer, 6969, Arc::new(BackendCluster::new("main", vec![address])), 0));
        let config = Arc::new(UpstreamConfig {
            connect_timeout: Duration::from_secs(2),
            request_timeout: None,
            max_frame: 1 << 20,
            backends: BackendSecurityMap::default(),
            metrics: Default::default(),
        });
        (Upstream::new(session.clone(), config, CancellationToken::new()), session)
    }

    #[tokio::test]
    async fn an_unknown_api_key_crosses_byte_for_byte_with_only_the_correlation_id_swapped() {
        let (address, mut received) = broker_answering(b"opaque-reply").await;
        let (upstream, session) = upstream_to(address);
        let frame = Bytes::from_static(&[0x03, 0xe7, 0, 2, 0, 0, 0, 42, 0xde, 0xad, 0xbe, 0xef]);
        let request = parse_request(frame.clone(), &session).expect("unknown keys parse");
        let mut response = upstream.oneshot(request).await.expect("response");

        let sent = received.recv().await.expect("broker got the frame");
        assert_eq!(sent[..4], frame[..4], "api key and version untouched");
        assert_ne!(sent[4..8], frame[4..8], "the upstream uses its own correlation ids");
        assert_eq!(sent[8..], frame[8..], "everything after the header prefix untouched");
        assert_eq!(response.correlation_id(), 42, "the client's correlation id is restored");
        assert!(response.body().is_err(), "an unknown api key's body cannot be decoded...");
        let raw = response.raw_body().and_then(|b| b.raw_bytes()).cloned();
        assert_eq!(raw.as_deref(), Some(&b"opaque-reply"[..]), "...and is passed through as raw bytes");
    }

    #[tokio::test]
    async fn produce_with_acks_zero_is_forwarded_and_answered_with_no_response() {
        let (address, mut received) = broker_answering(b"").await;
        let (upstream, session) = upstream_to(address);
        // Produce v3: transactional id null (-1), acks 0, timeout, no topics.
        let frame =
            Bytes::from_static(&[0, 0, 0, 3, 0, 0, 0, 9, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0x75, 0x30, 0, 0, 0, 0]);
        let request = parse_request(frame, &session).expect("produce parses");
        assert!(!request.expects_response());
        let response = tokio::time::timeout(Duration::from_secs(2), upstream.oneshot(request))
            .await
            .expect("no waiting for a response that never comes")
            .expect("ok");
        assert!(!response.has_body(), "nothing is written back to the client");
        assert!(received.recv().await.is_some(), "the broker still got the records");
    }
}
