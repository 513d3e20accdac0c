//! Bytes the gateway buffers, per session and gateway-wide: what bounds its memory under any load.
//!
//! Counting requests is not enough: one client pipelining a thousand Fetch requests and never reading the
//! answers made the gateway hold a gigabyte, and acks=0 Produce against a paused broker grew without bound. So
//! every request frame is charged to its session from the moment it is read until it is written to the broker,
//! and every response frame from the moment it is read from the broker until it is written to the client. A
//! [`Charge`] is that claim; dropping it gives the bytes back.
//!
//! Two waits use the counts:
//! - the session reads the next request frame only while its buffered bytes (requests and responses) are under
//!   its budget, and the gateway's under the gateway-wide budget;
//! - a backend connection reads the next response frame only while its session's *response* bytes are under
//!   the session budget, and the gateway's response bytes under the gateway budget.
//!
//! Responses wait only on responses because requests leave the gateway when the broker reads them, and a broker
//! may stop reading until its own answer is taken: if response reads also waited on request bytes, a connection
//! could wait on itself. Responses leave only when the client reads them, so the only party that can stall a
//! session for good is its own client.
//!
//! Each wait lets a session that holds nothing go ahead by one frame even when the gateway-wide budget is used
//! up: sessions whose clients do not read cannot stall everybody else, and the overshoot is one frame per
//! working session. A single frame larger than the budget still passes (alone), so no budget can wedge a
//! connection.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use tokio::sync::Notify;

/// Which way a charged frame travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Read from the client, not yet written to the broker.
    Request,
    /// Read from the broker, not yet written to the client.
    Response,
}

/// Which budget made a read wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// The session's own budget.
    Session,
    /// The budget shared by all sessions.
    Gateway,
}

/// Buffered bytes of one scope (a session, or the whole gateway), and whoever waits for them to shrink.
#[derive(Debug, Default)]
struct Account {
    /// Request and response bytes.
    total: AtomicUsize,
    /// Response bytes only.
    responses: AtomicUsize,
    /// Tasks registered to be woken on release; releases skip the wake-up when none is.
    waiters: AtomicUsize,
    /// Woken on every release while somebody waits.
    released: Notify,
}

impl Account {
    fn add(&self, bytes: usize, direction: Direction) {
        self.total.fetch_add(bytes, Ordering::SeqCst);
        if direction == Direction::Response {
            self.responses.fetch_add(bytes, Ordering::SeqCst);
        }
    }

    fn remove(&self, bytes: usize, direction: Direction) {
        self.total.fetch_sub(bytes, Ordering::SeqCst);
        if direction == Direction::Response {
            self.responses.fetch_sub(bytes, Ordering::SeqCst);
        }
        // SeqCst on both sides: either the waiter's check sees the subtraction, or this load sees the waiter.
        if self.waiters.load(Ordering::SeqCst) > 0 {
            self.released.notify_waiters();
        }
    }

    fn held(&self, direction: Direction) -> usize {
        match direction {
            Direction::Request => self.total.load(Ordering::SeqCst),
            Direction::Response => self.responses.load(Ordering::SeqCst),
        }
    }
}

/// The budget all sessions share (`gateway.memory_budget_bytes`), with its counters for `/metrics`.
#[derive(Debug)]
pub struct GatewayBudget {
    /// Bytes all sessions may buffer together.
    limit: usize,
    /// What all sessions buffer now.
    account: Account,
    /// Reads that had to wait for this budget.
    waits: AtomicU64,
    /// Reads that had to wait for a session's own budget.
    session_waits: AtomicU64,
    /// The most bytes ever buffered at once.
    peak: AtomicUsize,
    /// The most bytes buffered at once since [`GatewayBudget::take_recent_peak`] was last called.
    recent_peak: AtomicUsize,
}

impl GatewayBudget {
    /// A budget of `limit` bytes for all sessions together.
    pub fn new(limit: usize) -> Arc<Self> {
        Arc::new(Self {
            limit,
            account: Account::default(),
            waits: AtomicU64::new(0),
            session_waits: AtomicU64::new(0),
            peak: AtomicUsize::new(0),
            recent_peak: AtomicUsize::new(0),
        })
    }

    /// No gateway-wide bound (tests, and filters' own connections).
    pub fn unlimited() -> Arc<Self> {
        Self::new(usize::MAX)
    }

    /// The configured limit.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Request and response bytes buffered now.
    pub fn buffered(&self) -> usize {
        self.account.total.load(Ordering::Relaxed)
    }

    /// Response bytes buffered now.
    pub fn buffered_responses(&self) -> usize {
        self.account.responses.load(Ordering::Relaxed)
    }

    /// The most bytes ever buffered at once.
    pub fn peak(&self) -> usize {
        self.peak.load(Ordering::Relaxed)
    }

    /// The most bytes buffered at once since the last call (for deciding whether a load has passed).
    pub fn take_recent_peak(&self) -> usize {
        self.recent_peak.swap(self.buffered(), Ordering::Relaxed)
    }

    /// How many reads waited, by the budget that made them wait.
    pub fn waits(&self, limit: Limit) -> u64 {
        match limit {
            Limit::Session => self.session_waits.load(Ordering::Relaxed),
            Limit::Gateway => self.waits.load(Ordering::Relaxed),
        }
    }

    /// A session's own budget of `limit` bytes, drawing on this one.
    pub fn session(self: &Arc<Self>, limit: usize) -> Arc<SessionBudget> {
        Arc::new(SessionBudget {
            limit,
            account: Account::default(),
            gateway: self.clone(),
            told: AtomicBool::new(false),
        })
    }
}

/// One session's budget (`gateway.session_buffer_bytes`).
#[derive(Debug)]
pub struct SessionBudget {
    /// Bytes this session may buffer.
    limit: usize,
    /// What it buffers now.
    account: Account,
    /// The budget all sessions share.
    gateway: Arc<GatewayBudget>,
    /// Set the first time this session waited (so the runtime logs it once per session).
    told: AtomicBool,
}

/// Bytes held against a session's budget and the gateway's; dropping it gives them back.
#[derive(Debug)]
pub struct Charge {
    budget: Arc<SessionBudget>,
    bytes: usize,
    direction: Direction,
}

impl Drop for Charge {
    fn drop(&mut self) {
        self.budget.account.remove(self.bytes, self.direction);
        self.budget.gateway.account.remove(self.bytes, self.direction);
    }
}

impl Charge {
    /// The bytes it holds.
    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

impl SessionBudget {
    /// A session budget with no bounds at all (tests, and connections of the gateway's own).
    pub fn unlimited() -> Arc<Self> {
        GatewayBudget::unlimited().session(usize::MAX)
    }

    /// The configured limit.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Bytes this session buffers now, requests and responses.
    pub fn buffered(&self) -> usize {
        self.account.total.load(Ordering::Relaxed)
    }

    /// Charges `bytes` read in `direction` to this session and the gateway.
    pub fn charge(self: &Arc<Self>, bytes: usize, direction: Direction) -> Charge {
        self.account.add(bytes, direction);
        self.gateway.account.add(bytes, direction);
        let now = self.gateway.account.total.load(Ordering::Relaxed);
        self.gateway.peak.fetch_max(now, Ordering::Relaxed);
        self.gateway.recent_peak.fetch_max(now, Ordering::Relaxed);
        Charge { budget: self.clone(), bytes, direction }
    }

    /// Whether the next frame in `direction` may be read now; else which budget is used up.
    pub fn blocked_by(&self, direction: Direction) -> Option<Limit> {
        let own = self.account.held(direction);
        if own >= self.limit {
            return Some(Limit::Session);
        }
        // A session holding nothing goes ahead by one frame whatever the others hold.
        if own > 0 && self.gateway.account.held(direction) >= self.gateway.limit {
            return Some(Limit::Gateway);
        }
        None
    }

    /// Waits until the next frame in `direction` may be read. Returns the budget that made it wait, if any;
    /// the first wait of a session is reported as such by [`Self::first_wait`].
    pub async fn admit(&self, direction: Direction) -> Option<Limit> {
        let first = self.blocked_by(direction)?;
        match first {
            Limit::Session => self.gateway.session_waits.fetch_add(1, Ordering::Relaxed),
            Limit::Gateway => self.gateway.waits.fetch_add(1, Ordering::Relaxed),
        };
        let (own, shared) = (&self.account, &self.gateway.account);
        own.waiters.fetch_add(1, Ordering::SeqCst);
        shared.waiters.fetch_add(1, Ordering::SeqCst);
        let _registered = Registered([own, shared]);
        loop {
            let mine = own.released.notified();
            let theirs = shared.released.notified();
            tokio::pin!(mine, theirs);
            mine.as_mut().enable();
            theirs.as_mut().enable();
            if self.blocked_by(direction).is_none() {
                return Some(first);
            }
            tokio::select! {
                () = mine => {}
                () = theirs => {}
            }
        }
    }

    /// True the first time it is called on this session: for a log line once per session.
    pub fn first_wait(&self) -> bool {
        !self.told.swap(true, Ordering::Relaxed)
    }
}

/// Unregisters a waiter however its wait ends (also when the waiting future is dropped).
struct Registered<'a>([&'a Account; 2]);

impl Drop for Registered<'_> {
    fn drop(&mut self) {
        for account in self.0 {
            account.waiters.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn a_session_over_its_budget_waits_until_bytes_are_given_back() {
        let gateway = GatewayBudget::new(1 << 30);
        let session = gateway.session(100);
        let first = session.charge(60, Direction::Request);
        assert_eq!(session.admit(Direction::Request).await, None, "under the budget: no wait");
        let second = session.charge(60, Direction::Request);
        assert_eq!(session.blocked_by(Direction::Request), Some(Limit::Session));
        assert_eq!(session.blocked_by(Direction::Response), None, "responses wait on response bytes only");
        let waiting = tokio::spawn({
            let session = session.clone();
            async move { session.admit(Direction::Request).await }
        });
        while gateway.waits(Limit::Session) == 0 {
            tokio::task::yield_now().await;
        }
        assert!(!waiting.is_finished(), "still over the budget");
        drop(first);
        let waited = tokio::time::timeout(Duration::from_secs(5), waiting).await.expect("woken").expect("task");
        assert_eq!(waited, Some(Limit::Session));
        assert_eq!(gateway.waits(Limit::Session), 1);
        drop(second);
        assert_eq!((session.buffered(), gateway.buffered()), (0, 0), "every charge given back");
        assert_eq!(gateway.peak(), 120);
    }

    #[tokio::test]
    async fn the_gateway_budget_holds_back_sessions_that_hold_something_but_lets_an_empty_one_go_ahead() {
        let gateway = GatewayBudget::new(100);
        let (hog, busy, fresh) = (gateway.session(1000), gateway.session(1000), gateway.session(1000));
        let held = hog.charge(95, Direction::Response);
        let _small = busy.charge(10, Direction::Response);
        assert_eq!(busy.blocked_by(Direction::Response), Some(Limit::Gateway));
        assert_eq!(fresh.blocked_by(Direction::Response), None, "a session holding nothing reads one frame");
        assert_eq!(busy.blocked_by(Direction::Request), Some(Limit::Gateway), "requests count all bytes");
        let waiting = tokio::spawn({
            let busy = busy.clone();
            async move { busy.admit(Direction::Response).await }
        });
        while gateway.waits(Limit::Gateway) == 0 {
            tokio::task::yield_now().await;
        }
        assert!(!waiting.is_finished(), "still over the gateway budget");
        drop(held);
        let waited = tokio::time::timeout(Duration::from_secs(5), waiting).await.expect("woken").expect("task");
        assert_eq!(waited, Some(Limit::Gateway));
    }

    #[tokio::test]
    async fn a_frame_larger_than_the_whole_budget_still_passes_alone() {
        let session = GatewayBudget::new(10).session(10);
        assert_eq!(session.admit(Direction::Response).await, None);
        let big = session.charge(1_000, Direction::Response);
        assert_eq!(session.blocked_by(Direction::Response), Some(Limit::Session));
        drop(big);
        assert_eq!(session.blocked_by(Direction::Response), None);
    }

    #[test]
    fn the_first_wait_is_reported_once() {
        let session = SessionBudget::unlimited();
        assert!(session.first_wait());
        assert!(!session.first_wait());
    }
}
