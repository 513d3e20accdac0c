//! Connection limits: at most `max_connections` client connections, and `max_connections_per_ip` from one
//! source address. A connection over a limit is closed at once, with a log line and a metric.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

/// Counts open client connections against the limits.
#[derive(Debug, Default)]
pub struct ConnectionLimiter {
    /// Global limit (0: none).
    max_total: usize,
    /// Per source address limit (0: none).
    max_per_ip: usize,
    /// Open connections: total and per address.
    open: Mutex<(usize, HashMap<IpAddr, usize>)>,
}

/// Which limit refused a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitReached {
    /// `max_connections`.
    Total(usize),
    /// `max_connections_per_ip`.
    PerIp(usize),
}

/// Held by a session while its connection is open; releases its place when dropped.
#[derive(Debug)]
pub struct ConnectionPermit {
    /// The limiter to give the place back to.
    limiter: Arc<ConnectionLimiter>,
    /// The source address.
    ip: IpAddr,
}

// === impl ConnectionLimiter ===

impl ConnectionLimiter {
    /// Limits of `max_total` and `max_per_ip` connections (0: unlimited).
    pub fn new(max_total: usize, max_per_ip: usize) -> Self {
        Self { max_total, max_per_ip, ..Self::default() }
    }

    /// Takes a place for a connection from `ip`, or says which limit is reached.
    pub fn try_acquire(self: &Arc<Self>, ip: IpAddr) -> Result<ConnectionPermit, LimitReached> {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        if self.max_total > 0 && open.0 >= self.max_total {
            return Err(LimitReached::Total(self.max_total));
        }
        let from_ip = open.1.get(&ip).copied().unwrap_or(0);
        if self.max_per_ip > 0 && from_ip >= self.max_per_ip {
            return Err(LimitReached::PerIp(self.max_per_ip));
        }
        open.0 += 1;
        open.1.insert(ip, from_ip + 1);
        Ok(ConnectionPermit { limiter: self.clone(), ip })
    }
}

impl Drop for ConnectionPermit {
    fn drop(&mut self) {
        let mut open = self.limiter.open.lock().unwrap_or_else(|p| p.into_inner());
        open.0 = open.0.saturating_sub(1);
        if let Some(count) = open.1.get_mut(&self.ip) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                open.1.remove(&self.ip);
            }
        }
    }
}

impl std::fmt::Display for LimitReached {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Total(n) => write!(f, "gateway.max_connections ({n}) reached"),
            Self::PerIp(n) => write!(f, "gateway.max_connections_per_ip ({n}) reached for this address"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn places_are_taken_and_given_back_per_address_and_in_total() {
        let limiter = Arc::new(ConnectionLimiter::new(3, 2));
        let (a, b): (IpAddr, IpAddr) = ("10.0.0.1".parse().expect("ip"), "10.0.0.2".parse().expect("ip"));
        let first = limiter.try_acquire(a).expect("1st from a");
        let _second = limiter.try_acquire(a).expect("2nd from a");
        assert_eq!(limiter.try_acquire(a).err(), Some(LimitReached::PerIp(2)));
        let _third = limiter.try_acquire(b).expect("1st from b");
        assert_eq!(limiter.try_acquire(b).err(), Some(LimitReached::Total(3)));
        drop(first);
        assert!(limiter.try_acquire(b).is_ok(), "a closed connection frees its place");
        let unlimited = Arc::new(ConnectionLimiter::new(0, 0));
        let held: Vec<_> = (0..100).map(|_| unlimited.try_acquire(a).expect("no limit")).collect();
        assert_eq!(held.len(), 100);
    }
}
