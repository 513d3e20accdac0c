//! The admin API's connections: a bounded number, each closed when it stays silent, and never allowed to eat
//! the file descriptors the Kafka listeners need.
//!
//! 1,100 idle admin connections once exhausted a process with 1,024 open files: new Kafka clients and `/health`
//! timed out. Now:
//! - at `admin_max_connections`, or when fewer than [`FileDescriptors::reserve`] descriptors are left, a new
//!   connection closes the oldest *idle* one (no request being handled) to take its place, so a flood of idle
//!   connections cannot lock out `/health` or an operator: their request arrives with the connection and makes
//!   it busy, while the flood's connections wait, oldest first, to be evicted. With no idle connection to evict,
//!   the new one is answered 503 and closed.
//! - a connection must send its first request's headers within `admin_header_read_timeout_ms`; a kept-alive one
//!   may wait `admin_idle_timeout_ms` between requests, then again has the header-read timeout once its next
//!   request's first byte arrives. hyper's own `header_read_timeout` is not used: its clock also runs while a
//!   kept-alive connection waits for its next request, so it cannot tell a slow header from an idle connection.
//! - one request may take `admin_request_timeout_ms`, its body included; past it, 503.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use http_body_util::BodyExt;
use hyper::StatusCode;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::debug;

use super::{AdminState, error, route};
use crate::config::ListenerConfig;
use crate::metrics::AdminConnectionMetrics;

/// The admin API's connection limits, from the `gateway:` section.
#[derive(Debug, Clone)]
pub struct AdminLimits {
    /// Connections held at most (0: no limit but the descriptor reserve).
    pub max_connections: usize,
    /// How long a connection may take to send a request's headers.
    pub header_read_timeout: Duration,
    /// How long a kept-alive connection may wait between requests.
    pub idle_timeout: Duration,
    /// How long one request may take to handle.
    pub request_timeout: Duration,
}

/// The connections open, oldest first (ids grow with each accept).
#[derive(Default)]
struct Connections {
    /// Open connections by id.
    open: Mutex<BTreeMap<u64, Arc<Connection>>>,
    /// The next connection's id.
    next_id: AtomicU64,
}

/// One admin connection, as the accept loop and its watchdog see it.
struct Connection {
    /// Its key in [`Connections::open`].
    id: u64,
    /// When it was accepted; the millisecond fields count from here.
    accepted: Instant,
    /// A request is being handled: from its headers until hyper has taken the response body.
    busy: AtomicBool,
    /// At least one request was handled (until then, the header-read timeout counts from the accept).
    served: AtomicBool,
    /// When it last became idle, ms after `accepted`.
    idle_since_ms: AtomicU64,
    /// When the first byte arrived since it became idle, ms after `accepted`; [`NO_BYTE`] if none.
    first_byte_ms: AtomicU64,
    /// Wakes the watchdog when one of the above changes.
    changed: Notify,
    /// Cancelled to evict it.
    evict: CancellationToken,
}

/// [`Connection::first_byte_ms`] while no byte has arrived.
const NO_BYTE: u64 = u64::MAX;

/// Which timeout closed a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Timeout {
    /// `admin_header_read_timeout_ms`.
    HeaderRead,
    /// `admin_idle_timeout_ms`.
    Idle,
}

/// Open-file accounting, so the admin API leaves a reserve of descriptors to the Kafka listeners.
struct FileDescriptors {
    /// The soft open-file limit; `None` where it cannot be read (no /proc) or is unlimited: no reserve then.
    limit: Option<u64>,
    /// Descriptors the admin API leaves free: 5% of the limit, at least 64.
    reserve: u64,
    /// The last count of open descriptors, when it was taken, and admin accepts since.
    counted: Mutex<Option<(Instant, u64, u64)>>,
}

/// A stream that tells its [`Connection`] when a byte arrives while it is idle.
struct Tracked {
    /// The TCP connection.
    stream: TcpStream,
    /// Its state.
    connection: Arc<Connection>,
}

/// Removes a connection from [`Connections`] and the open gauge when its task ends.
struct Registered {
    /// The table.
    connections: Arc<Connections>,
    /// The connection.
    id: u64,
    /// The gauge.
    metrics: Arc<crate::metrics::GatewayMetrics>,
}

/// Marks a connection busy while it lives: from a request's headers until hyper drops the response body.
struct Busy(Arc<Connection>);

// === impl AdminLimits ===

impl AdminLimits {
    /// The limits `gateway:` configures.
    pub fn from_config(gateway: &ListenerConfig) -> Self {
        Self {
            max_connections: gateway.admin_max_connections,
            header_read_timeout: Duration::from_millis(gateway.admin_header_read_timeout_ms.max(1)),
            idle_timeout: Duration::from_millis(gateway.admin_idle_timeout_ms.max(1)),
            request_timeout: Duration::from_millis(gateway.admin_request_timeout_ms.max(1)),
        }
    }
}

impl Default for AdminLimits {
    fn default() -> Self {
        Self::from_config(&ListenerConfig::default())
    }
}

// === serve ===

/// Serves the admin API on `listener` until `shutdown`.
pub async fn serve_admin(listener: TcpListener, state: Arc<AdminState>, shutdown: CancellationToken) {
    let connections = Arc::new(Connections::default());
    let descriptors = FileDescriptors::of_this_process();
    let metrics = &state.metrics.admin;
    let mut backoff = Duration::ZERO;
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of descriptors (EMFILE): an idle admin connection gives one back, to a waiting
                    // operator or to a Kafka listener. Retry after a growing pause, not in a hot loop.
                    let evicted = make_room(&connections, metrics);
                    backoff = (backoff * 2).clamp(Duration::from_millis(10), Duration::from_secs(1));
                    crate::warn_limited!(reason = %e, evicted_idle = evicted, retry_in = ?backoff, "admin API accept failed");
                    tokio::time::sleep(backoff).await;
                    continue;
                }
            },
            _ = shutdown.cancelled() => return,
        };
        backoff = Duration::ZERO;
        let full = state.limits.max_connections > 0 && connections.len() >= state.limits.max_connections;
        let short_of_descriptors = descriptors.short();
        if (full || short_of_descriptors) && !make_room(&connections, metrics) {
            refuse(stream, peer, short_of_descriptors, &descriptors, metrics);
            continue;
        }
        descriptors.accepted();
        let connection = connections.insert();
        let registered =
            Registered { connections: connections.clone(), id: connection.id, metrics: state.metrics.clone() };
        metrics.open.fetch_add(1, Ordering::Relaxed);
        tokio::spawn(serve_connection(stream, peer, connection, state.clone(), registered));
    }
}

/// Evicts the oldest idle connection; false if every connection is handling a request. It leaves the open
/// gauge at once, like the table, so the gauge never shows more than `admin_max_connections`.
fn make_room(connections: &Connections, metrics: &AdminConnectionMetrics) -> bool {
    let evicted = connections.evict_oldest_idle();
    if evicted {
        metrics.evicted.fetch_add(1, Ordering::Relaxed);
        metrics.open.fetch_sub(1, Ordering::Relaxed);
    }
    evicted
}

/// Answers 503 without waiting (the socket's buffer takes it) and closes.
fn refuse(
    stream: TcpStream,
    peer: SocketAddr,
    short_of_descriptors: bool,
    descriptors: &FileDescriptors,
    metrics: &AdminConnectionMetrics,
) {
    let body = r#"{"message":"the admin API is at its connection limit; try again shortly"}"#;
    let refusal = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nconnection: close\r\n\
         content-length: {}\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.try_write(refusal.as_bytes());
    if short_of_descriptors {
        metrics.refused_descriptor_reserve.fetch_add(1, Ordering::Relaxed);
        crate::warn_limited!(%peer, reserve = descriptors.reserve, limit = ?descriptors.limit,
            "refused an admin API connection: too few file descriptors left, and no idle admin connection to close");
    } else {
        metrics.refused_max_connections.fetch_add(1, Ordering::Relaxed);
        crate::warn_limited!(%peer,
            "refused an admin API connection: admin_max_connections reached and every connection is busy");
    }
}

/// Serves one connection until it closes, times out or is evicted.
async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    connection: Arc<Connection>,
    state: Arc<AdminState>,
    registered: Registered,
) {
    let limits = state.limits.clone();
    let metrics = state.metrics.clone();
    let tracked = Tracked { stream, connection: connection.clone() };
    let on_request = connection.clone();
    let service = hyper::service::service_fn(move |request| {
        let busy = Busy::begin(on_request.clone());
        let state = state.clone();
        async move {
            let response = match tokio::time::timeout(state.limits.request_timeout, route(request, &state)).await {
                Ok(response) => response,
                Err(_) => {
                    state.metrics.admin.request_timeouts.fetch_add(1, Ordering::Relaxed);
                    let limit = state.limits.request_timeout;
                    error(
                        StatusCode::SERVICE_UNAVAILABLE,
                        format!("not handled within {limit:?} (admin_request_timeout_ms)"),
                    )
                }
            };
            // The connection stays busy until hyper drops the body, i.e. has taken all of it.
            let (parts, body) = response.into_parts();
            let body = body.map_frame(move |frame| {
                let _busy = &busy;
                frame
            });
            Ok::<_, Infallible>(hyper::Response::from_parts(parts, body))
        }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    // Timed by the watchdog instead (see the module doc).
    builder.header_read_timeout(None);
    let served = builder.serve_connection(TokioIo::new(tracked), service);
    tokio::select! {
        result = served => if let Err(e) = result {
            debug!(%peer, reason = %e, "admin API connection ended with an error");
        },
        timeout = connection.watchdog(&limits) => {
            let counter = match timeout {
                Timeout::HeaderRead => &metrics.admin.header_read_timeouts,
                Timeout::Idle => &metrics.admin.idle_timeouts,
            };
            counter.fetch_add(1, Ordering::Relaxed);
            debug!(%peer, ?timeout, "admin API connection closed: silent for too long");
        }
        _ = connection.evict.cancelled() => debug!(%peer, "admin API connection closed to make room for a new one"),
    }
    drop(registered);
}

// === impl Connections ===

impl Connections {
    fn len(&self) -> usize {
        self.open.lock().map(|open| open.len()).unwrap_or(0)
    }

    /// Registers a new connection, the youngest.
    fn insert(&self) -> Arc<Connection> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let connection = Arc::new(Connection::new(id));
        if let Ok(mut open) = self.open.lock() {
            open.insert(id, connection.clone());
        }
        connection
    }

    /// Closes the oldest connection not handling a request, and forgets it at once so its place is free.
    fn evict_oldest_idle(&self) -> bool {
        let Ok(mut open) = self.open.lock() else { return false };
        let victim = open.iter().find(|(_, c)| !c.busy.load(Ordering::Acquire)).map(|(id, _)| *id);
        match victim.and_then(|id| open.remove(&id)) {
            Some(connection) => {
                connection.evict.cancel();
                true
            }
            None => false,
        }
    }

    /// Forgets a connection; false if it was already gone (evicted).
    fn remove(&self, id: u64) -> bool {
        self.open.lock().is_ok_and(|mut open| open.remove(&id).is_some())
    }
}

impl Drop for Registered {
    fn drop(&mut self) {
        if self.connections.remove(self.id) {
            self.metrics.admin.open.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

// === impl Connection ===

impl Connection {
    fn new(id: u64) -> Self {
        Self {
            id,
            accepted: Instant::now(),
            busy: AtomicBool::new(false),
            served: AtomicBool::new(false),
            idle_since_ms: AtomicU64::new(0),
            first_byte_ms: AtomicU64::new(NO_BYTE),
            changed: Notify::new(),
            evict: CancellationToken::new(),
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.accepted.elapsed().as_millis()).unwrap_or(u64::MAX - 1)
    }

    /// A byte arrived; the first since the connection became idle starts the header-read clock.
    fn bytes_arrived(&self) {
        if self.busy.load(Ordering::Acquire) || self.first_byte_ms.load(Ordering::Acquire) != NO_BYTE {
            return;
        }
        let _ = self.first_byte_ms.compare_exchange(NO_BYTE, self.now_ms(), Ordering::AcqRel, Ordering::Acquire);
        self.changed.notify_one();
    }

    /// When the connection times out unless something happens, and which timeout that is; `None` while busy.
    fn deadline(&self, limits: &AdminLimits) -> Option<(Instant, Timeout)> {
        if self.busy.load(Ordering::Acquire) {
            return None;
        }
        let at = |ms: u64, after: Duration| self.accepted + Duration::from_millis(ms) + after;
        if !self.served.load(Ordering::Acquire) {
            return Some((at(0, limits.header_read_timeout), Timeout::HeaderRead));
        }
        match self.first_byte_ms.load(Ordering::Acquire) {
            NO_BYTE => Some((at(self.idle_since_ms.load(Ordering::Acquire), limits.idle_timeout), Timeout::Idle)),
            first => Some((at(first, limits.header_read_timeout), Timeout::HeaderRead)),
        }
    }

    /// Resolves once the connection has been silent past its deadline.
    async fn watchdog(&self, limits: &AdminLimits) -> Timeout {
        loop {
            match self.deadline(limits) {
                None => self.changed.notified().await,
                Some((at, timeout)) => {
                    tokio::select! {
                        _ = self.changed.notified() => {}
                        _ = tokio::time::sleep_until(at) => {
                            // Re-read: a request or a byte may have arrived just now.
                            if self.deadline(limits).is_some_and(|(again, _)| again <= Instant::now()) {
                                return timeout;
                            }
                        }
                    }
                }
            }
        }
    }
}

// === impl Busy ===

impl Busy {
    fn begin(connection: Arc<Connection>) -> Self {
        connection.served.store(true, Ordering::Release);
        connection.busy.store(true, Ordering::Release);
        connection.changed.notify_one();
        Self(connection)
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        let connection = &self.0;
        connection.first_byte_ms.store(NO_BYTE, Ordering::Release);
        connection.idle_since_ms.store(connection.now_ms(), Ordering::Release);
        connection.busy.store(false, Ordering::Release);
        connection.changed.notify_one();
    }
}

// === impl FileDescriptors ===

impl FileDescriptors {
    /// How often open descriptors are recounted at most; between counts, admin accepts are added to the last one.
    const RECOUNT: Duration = Duration::from_millis(20);

    fn of_this_process() -> Self {
        let limit = soft_open_file_limit();
        let reserve = limit.map_or(0, reserve_for);
        Self { limit, reserve, counted: Mutex::new(None) }
    }

    /// Fewer than `reserve` descriptors are free.
    fn short(&self) -> bool {
        let Some(limit) = self.limit else { return false };
        let Ok(mut counted) = self.counted.lock() else { return false };
        let open = match *counted {
            Some((at, open, since)) if at.elapsed() < Self::RECOUNT => open + since,
            _ => match open_descriptors() {
                Some(open) => {
                    *counted = Some((Instant::now(), open, 0));
                    open
                }
                // Counting needs a descriptor itself: none left.
                None => return true,
            },
        };
        limit.saturating_sub(open) < self.reserve
    }

    /// One more admin connection holds a descriptor.
    fn accepted(&self) {
        if let Ok(mut counted) = self.counted.lock() {
            if let Some((_, _, since)) = counted.as_mut() {
                *since += 1;
            }
        }
    }
}

/// The descriptors left to the Kafka listeners under `limit`: 5%, at least 64 (a few clients' worth, each holding
/// two: its own and its backend connection).
fn reserve_for(limit: u64) -> u64 {
    (limit / 20).max(64)
}

/// The soft "Max open files" of this process, from /proc/self/limits; `None` if unreadable or unlimited.
fn soft_open_file_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.trim_start_matches("Max open files").split_whitespace().next()?.parse().ok()
}

/// How many descriptors this process has open.
fn open_descriptors() -> Option<u64> {
    Some(std::fs::read_dir("/proc/self/fd").ok()?.count() as u64)
}

// === impl Tracked ===

impl AsyncRead for Tracked {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let poll = Pin::new(&mut self.stream).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.connection.bytes_arrived();
        }
        poll
    }
}

impl AsyncWrite for Tracked {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

#[cfg(test)]
mod tests;
