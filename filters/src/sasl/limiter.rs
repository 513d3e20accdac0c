//! The per-source-address limit on failed authentications (`max_failures_per_ip_per_minute`).
//!
//! A token bucket per address: it holds up to the limit, refills at the limit per minute, and each failed
//! authentication takes one token. An address with no token left is refused at once (after the failure delay,
//! without hashing) until the bucket refills. IPv6 addresses count per /64, the block one host usually holds.
//!
//! Memory is bounded: at most [`MAX_TRACKED`] addresses. A full bucket is the same as no entry, so when the map
//! is full the full buckets are swept (at most once a second, so a spray of new addresses cannot make every
//! failure pay for a sweep); if it is still full, a new address goes untracked. Failing open there is
//! deliberate: refusing untracked addresses would let one attacker with many addresses lock everyone out.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Addresses tracked at most (each entry is a few dozen bytes: a few MB in all).
pub const MAX_TRACKED: usize = 65_536;
/// The least time between two sweeps of a full map.
const SWEEP_INTERVAL: Duration = Duration::from_secs(1);

/// Failed authentications per source address, shared by every session of a gateway.
#[derive(Debug)]
pub struct FailureLimiter {
    /// Failures allowed per minute (and in a burst).
    per_minute: f64,
    /// The buckets, by source address.
    buckets: Mutex<Buckets>,
}

/// The map and when it was last swept.
#[derive(Debug, Default)]
struct Buckets {
    /// Tokens left per address (IPv6: per /64).
    by_source: HashMap<IpAddr, Bucket>,
    /// The last sweep of full buckets.
    swept: Option<Instant>,
}

/// One address's bucket.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    /// Tokens at `at`.
    tokens: f64,
    /// When `tokens` was computed.
    at: Instant,
}

// === impl FailureLimiter ===

impl FailureLimiter {
    /// A limiter allowing `per_minute` failures per address and minute; `None` for 0 (no limit).
    pub fn new(per_minute: u32) -> Option<Self> {
        (per_minute > 0).then(|| Self { per_minute: f64::from(per_minute), buckets: Mutex::default() })
    }

    /// Whether `source` has used up its failures at `now`.
    pub fn is_limited(&self, source: IpAddr, now: Instant) -> bool {
        let Ok(buckets) = self.buckets.lock() else { return false };
        buckets.by_source.get(&key(source)).is_some_and(|b| self.refilled(*b, now) < 1.0)
    }

    /// Takes one token from `source`'s bucket.
    pub fn record_failure(&self, source: IpAddr, now: Instant) {
        let Ok(mut buckets) = self.buckets.lock() else { return };
        let source = key(source);
        if !buckets.by_source.contains_key(&source) && buckets.by_source.len() >= MAX_TRACKED {
            self.sweep(&mut buckets, now);
            if buckets.by_source.len() >= MAX_TRACKED {
                return;
            }
        }
        let full = Bucket { tokens: self.per_minute, at: now };
        let bucket = buckets.by_source.entry(source).or_insert(full);
        *bucket = Bucket { tokens: (self.refilled(*bucket, now) - 1.0).max(0.0), at: now };
    }

    /// Addresses tracked now.
    pub fn tracked(&self) -> usize {
        self.buckets.lock().map_or(0, |b| b.by_source.len())
    }

    fn refilled(&self, bucket: Bucket, now: Instant) -> f64 {
        let elapsed = now.saturating_duration_since(bucket.at).as_secs_f64();
        (bucket.tokens + elapsed * self.per_minute / 60.0).min(self.per_minute)
    }

    /// Drops the full buckets, unless the last sweep was under a second ago.
    fn sweep(&self, buckets: &mut Buckets, now: Instant) {
        if buckets.swept.is_some_and(|at| now.saturating_duration_since(at) < SWEEP_INTERVAL) {
            return;
        }
        buckets.swept = Some(now);
        buckets.by_source.retain(|_, b| self.refilled(*b, now) < self.per_minute);
    }
}

/// The address a bucket is kept for: IPv4 (also when mapped into IPv6) as is, IPv6 by its /64.
fn key(source: IpAddr) -> IpAddr {
    match source {
        IpAddr::V4(_) => source,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let [a, b, c, d, ..] = v6.segments();
                IpAddr::V6(Ipv6Addr::new(a, b, c, d, 0, 0, 0, 0))
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4(last: u8) -> IpAddr {
        IpAddr::from([10, 0, 0, last])
    }

    #[test]
    fn an_address_is_limited_after_its_failures_and_recovers_as_the_bucket_refills() {
        let limiter = FailureLimiter::new(3).expect("on");
        let start = Instant::now();
        for _ in 0..3 {
            assert!(!limiter.is_limited(v4(1), start));
            limiter.record_failure(v4(1), start);
        }
        assert!(limiter.is_limited(v4(1), start), "three failures used the minute's allowance");
        assert!(!limiter.is_limited(v4(2), start), "another address is not affected");
        assert!(!limiter.is_limited(v4(1), start + Duration::from_secs(20)), "one failure back after 20 s");
        assert!(FailureLimiter::new(0).is_none(), "0 turns the limit off");
    }

    #[test]
    fn ipv6_addresses_share_the_bucket_of_their_64_and_mapped_ipv4_is_ipv4() {
        let limiter = FailureLimiter::new(1).expect("on");
        let now = Instant::now();
        limiter.record_failure("2001:db8:1:2::1".parse().expect("ip"), now);
        assert!(limiter.is_limited("2001:db8:1:2:ffff::9".parse().expect("ip"), now));
        assert!(!limiter.is_limited("2001:db8:1:3::1".parse().expect("ip"), now));
        limiter.record_failure("::ffff:10.0.0.7".parse().expect("ip"), now);
        assert!(limiter.is_limited(v4(7), now));
    }

    #[test]
    fn the_map_never_grows_past_its_bound_and_full_buckets_are_swept() {
        let limiter = FailureLimiter::new(2).expect("on");
        let start = Instant::now();
        let address = |i: usize| IpAddr::from(u32::try_from(i).expect("fits").to_be_bytes());
        for i in 0..MAX_TRACKED + 10 {
            limiter.record_failure(address(i), start);
        }
        assert_eq!(limiter.tracked(), MAX_TRACKED, "addresses beyond the bound go untracked");
        // A minute later every bucket is full again: the next new address sweeps them all.
        limiter.record_failure(address(MAX_TRACKED + 20), start + Duration::from_secs(61));
        assert_eq!(limiter.tracked(), 1);
    }
}
