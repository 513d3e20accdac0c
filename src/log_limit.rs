//! Rate-limited log lines, for warnings a peer can trigger at will (refused connections, accept failures).
//!
//! Without a limit, 1,100 idle admin connections produced 60 "accept failed" lines a second: the log itself
//! becomes the attack, and the one line an operator needs scrolls away. Each call site of [`warn_limited!`] gets
//! its own [`RateLimitedLog`]: at most `LINES` lines per `INTERVAL`; once a new window lets a line through, one
//! line first says how many similar lines were suppressed. Suppressed lines are also counted for `/metrics`
//! (`franzgate_log_lines_suppressed_total`), so nothing disappears silently.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Lines one call site of [`warn_limited!`] may log per [`INTERVAL`].
pub const LINES: u32 = 5;
/// The window [`LINES`] applies to.
pub const INTERVAL: Duration = Duration::from_secs(10);

/// Lines suppressed by every limiter since start.
static SUPPRESSED_TOTAL: AtomicU64 = AtomicU64::new(0);

/// Log lines suppressed since start, across every call site of [`warn_limited!`].
pub fn suppressed_total() -> u64 {
    SUPPRESSED_TOTAL.load(Ordering::Relaxed)
}

/// Counts one suppressed line (called by [`warn_limited!`]).
pub fn count_suppressed() {
    SUPPRESSED_TOTAL.fetch_add(1, Ordering::Relaxed);
}

/// At most `lines` per `interval` (fixed windows); counts what it holds back.
#[derive(Debug)]
pub struct RateLimitedLog {
    /// Lines let through per window.
    lines: u32,
    /// The window's length.
    interval: Duration,
    /// The current window.
    window: Mutex<Window>,
}

/// One window's tally.
#[derive(Debug)]
struct Window {
    /// When it began; `None` before the first line.
    started: Option<Instant>,
    /// Lines let through in it.
    logged: u32,
    /// Lines held back since a line was last let through.
    suppressed: u64,
}

/// What a call site does with its line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Log it; first say that `suppressed` similar lines were held back (when not 0).
    Log {
        /// Lines held back since the last one logged here.
        suppressed: u64,
    },
    /// Drop it (counted).
    Suppress,
}

// === impl RateLimitedLog ===

impl RateLimitedLog {
    /// A limiter letting `lines` through per `interval`; `const`, so each call site can hold one in a `static`.
    pub const fn new(lines: u32, interval: Duration) -> Self {
        Self { lines, interval, window: Mutex::new(Window { started: None, logged: 0, suppressed: 0 }) }
    }

    /// Whether a line may be logged now.
    pub fn admit(&self) -> Verdict {
        self.admit_at(Instant::now())
    }

    /// Whether a line may be logged at `now` (tests pass their own clock).
    pub fn admit_at(&self, now: Instant) -> Verdict {
        let Ok(mut window) = self.window.lock() else {
            // A poisoned tally must not silence warnings.
            return Verdict::Log { suppressed: 0 };
        };
        let expired = window.started.is_none_or(|started| now.saturating_duration_since(started) >= self.interval);
        if expired {
            window.started = Some(now);
            window.logged = 0;
        }
        if window.logged < self.lines {
            window.logged += 1;
            let suppressed = std::mem::take(&mut window.suppressed);
            Verdict::Log { suppressed }
        } else {
            window.suppressed += 1;
            Verdict::Suppress
        }
    }
}

/// `tracing::warn!` limited to [`LINES`] per [`INTERVAL`] at this call site; the first line let through after
/// some were held back is preceded by "suppressed K similar lines".
#[macro_export]
macro_rules! warn_limited {
    ($($arg:tt)+) => {{
        static LIMIT: $crate::log_limit::RateLimitedLog =
            $crate::log_limit::RateLimitedLog::new($crate::log_limit::LINES, $crate::log_limit::INTERVAL);
        match LIMIT.admit() {
            $crate::log_limit::Verdict::Log { suppressed } => {
                if suppressed > 0 {
                    let site = concat!(module_path!(), ":", line!());
                    ::tracing::warn!(suppressed, site, "suppressed {suppressed} similar lines");
                }
                ::tracing::warn!($($arg)+);
            }
            $crate::log_limit::Verdict::Suppress => $crate::log_limit::count_suppressed(),
        }
    }};
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lets_the_first_lines_of_a_window_through_and_suppresses_the_rest() {
        let limit = RateLimitedLog::new(3, Duration::from_secs(10));
        let start = Instant::now();
        let verdicts: Vec<_> = (0..5).map(|i| limit.admit_at(start + Duration::from_millis(i))).collect();
        let logged = Verdict::Log { suppressed: 0 };
        assert_eq!(verdicts, [logged, logged, logged, Verdict::Suppress, Verdict::Suppress]);
    }

    #[test]
    fn the_first_line_of_the_next_window_reports_how_many_were_suppressed() {
        let limit = RateLimitedLog::new(1, Duration::from_secs(10));
        let start = Instant::now();
        assert_eq!(limit.admit_at(start), Verdict::Log { suppressed: 0 });
        for i in 1..=4 {
            assert_eq!(limit.admit_at(start + Duration::from_secs(i)), Verdict::Suppress);
        }
        assert_eq!(limit.admit_at(start + Duration::from_secs(10)), Verdict::Log { suppressed: 4 });
        // The count was reported once: the next window starts from zero.
        assert_eq!(limit.admit_at(start + Duration::from_secs(20)), Verdict::Log { suppressed: 0 });
    }

    #[test]
    fn each_call_site_of_the_macro_has_its_own_limit_and_counts_what_it_suppressed() {
        // The only test touching the process-wide count, so the differences below are exact.
        let before = suppressed_total();
        for _ in 0..2 * LINES {
            crate::warn_limited!("first site");
        }
        assert_eq!(suppressed_total(), before + u64::from(LINES), "the first site held back its extra lines");
        crate::warn_limited!("second site");
        assert_eq!(suppressed_total(), before + u64::from(LINES), "the second site's first line was logged");
    }
}
