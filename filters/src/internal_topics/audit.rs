//! One audit line per refused request, within a budget: a client retrying in a loop must not flood the log.

use std::sync::Mutex;
use std::time::Instant;

use tracing::warn;

/// At most this many refusal lines a second, gateway-wide; the rest are counted and reported on the next line.
pub const AUDIT_LINES_PER_SECOND: u32 = 20;

/// The line budget of the current second.
#[derive(Debug, Default)]
pub(super) struct AuditLimiter(Mutex<Budget>);

#[derive(Debug, Default)]
struct Budget {
    /// When the current one-second window began.
    window: Option<Instant>,
    /// Lines written in it.
    written: u32,
    /// Refusals not written since the last line.
    suppressed: u64,
}

// === impl AuditLimiter ===

impl AuditLimiter {
    /// Logs that `principal`'s request (api `key` at `version`) naming `topics` was refused, if the budget allows.
    pub(super) fn refused(&self, principal: &str, key: i16, version: i16, topics: &[String]) {
        let Some(suppressed) = self.take() else { return };
        warn!(
            target: "franzgate::audit",
            principal,
            api_key = key,
            api_version = version,
            topics = %topics.join(","),
            suppressed_before = suppressed,
            outcome = "refused: TOPIC_AUTHORIZATION_FAILED",
            "a client named the gateway's internal topic"
        );
    }

    /// `Some(refusals suppressed since the last line)` when a line may be written now.
    fn take(&self) -> Option<u64> {
        let mut budget = self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let now = Instant::now();
        if budget.window.is_none_or(|start| now.duration_since(start).as_secs() >= 1) {
            budget.window = Some(now);
            budget.written = 0;
        }
        if budget.written >= AUDIT_LINES_PER_SECOND {
            budget.suppressed += 1;
            return None;
        }
        budget.written += 1;
        Some(std::mem::take(&mut budget.suppressed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_beyond_the_budget_are_counted_and_reported_on_the_next_line() {
        let limiter = AuditLimiter::default();
        for _ in 0..AUDIT_LINES_PER_SECOND {
            assert_eq!(limiter.take(), Some(0));
        }
        assert_eq!(limiter.take(), None);
        assert_eq!(limiter.take(), None);
        // A new window: the two suppressed are reported.
        limiter.0.lock().expect("lock").window = Some(Instant::now() - std::time::Duration::from_secs(2));
        assert_eq!(limiter.take(), Some(2));
    }
}
