//! The runtime side of the memory budgets ([`franzgate_api::budget`]): log lines when a budget holds reading
//! back, and giving freed memory back to the system once a load has passed.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use franzgate_api::budget::{GatewayBudget, Limit, SessionBudget};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// At most one line per this many seconds says the gateway-wide budget was reached.
const GATEWAY_LINE_EVERY_SECS: u64 = 10;

/// When the gateway-wide budget was last logged (seconds since start-up of the process clock), and how many
/// waits went unlogged since.
static LAST_GATEWAY_LINE: AtomicU64 = AtomicU64::new(0);
static UNLOGGED_GATEWAY_WAITS: AtomicU64 = AtomicU64::new(0);

/// Logs that a read of `what` waited for `limit`: once per session for its own budget (a client that does not
/// keep up is normal), at most every 10 s for the gateway-wide one (with the count of waits in between), so a
/// hostile client cannot set the log's growth rate.
pub fn note_wait(session_id: u64, limit: Limit, budget: &SessionBudget, what: &str) {
    match limit {
        Limit::Session => {
            if budget.first_wait() {
                info!(
                    session = session_id,
                    session_buffer_bytes = budget.limit(),
                    buffered = budget.buffered(),
                    "session_buffer_bytes reached: {what} wait until the client reads what is buffered"
                );
            }
        }
        Limit::Gateway => {
            let now = process_seconds();
            let last = LAST_GATEWAY_LINE.load(Ordering::Relaxed);
            let due = last == 0 || now >= last + GATEWAY_LINE_EVERY_SECS;
            if due && LAST_GATEWAY_LINE.compare_exchange(last, now.max(1), Ordering::Relaxed, Ordering::Relaxed).is_ok()
            {
                let since = UNLOGGED_GATEWAY_WAITS.swap(0, Ordering::Relaxed);
                warn!(
                    session = session_id,
                    waits_since_last_line = since,
                    "memory_budget_bytes reached: sessions holding buffered bytes wait until clients read them"
                );
            } else {
                UNLOGGED_GATEWAY_WAITS.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

fn process_seconds() -> u64 {
    static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    START.get_or_init(std::time::Instant::now).elapsed().as_secs()
}

/// After a load has passed, gives freed heap back to the system.
///
/// The binary keeps freed memory in the process (`retain_freed_memory` in main.rs: re-faulting fresh pages cost
/// a quarter of the CPU under load), so a burst would otherwise leave the process at its peak size for good.
/// When the buffered bytes rose past `threshold` since the last trim and then stayed under a sixteenth of it for
/// two whole `period`s, the allocator is asked to return its free pages.
///
/// `trim` is the allocator call (main.rs: `malloc_trim`; this crate has no unsafe code).
pub async fn return_memory_after_load(
    budget: Arc<GatewayBudget>,
    period: Duration,
    threshold: usize,
    trim: fn(),
    stop: CancellationToken,
) {
    let mut high_since_trim = false;
    let mut quiet_ticks = 0;
    let mut ticks = tokio::time::interval(period);
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            () = stop.cancelled() => return,
        }
        let recent_peak = budget.take_recent_peak();
        high_since_trim |= recent_peak >= threshold;
        // Quiet for two whole periods: the load has passed, not merely paused between two fetches.
        quiet_ticks = if recent_peak < threshold / 16 { quiet_ticks + 1 } else { 0 };
        if high_since_trim && quiet_ticks >= 2 {
            high_since_trim = false;
            trim();
        }
    }
}
