//! Graceful shutdown (SIGTERM): stop accepting, let every session answer what it has in flight, then stop.
//!
//! Each broker port has its own stop token, a child of the gateway's: stopping a port closes its listener and
//! tells its sessions to stop reading requests, answer the ones in flight and close. Ports stop one after
//! another, `shutdown_port_close_delay_ms` apart, because librdkafka clients that lose every broker connection
//! at once report "all brokers down" to the application; staggered, they move their traffic to the brokers
//! still open. The session tasks are tracked, and the gateway waits for them up to
//! `shutdown_drain_timeout_ms` before cancelling everything else.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

/// The stop token of every open broker port.
#[derive(Debug)]
pub struct PortStops {
    /// The gateway's token: cancelling it stops every port at once.
    parent: CancellationToken,
    /// Per port; once `closing`, ports opened late are stopped from the start.
    ports: Mutex<(BTreeMap<u16, CancellationToken>, bool)>,
    /// Cancelled when a graceful shutdown begins: readiness reports DOWN from then on, so load balancers stop
    /// sending new clients while the sessions drain.
    draining: CancellationToken,
}

/// How a graceful shutdown proceeds.
#[derive(Debug, Clone, Copy)]
pub struct ShutdownPolicy {
    /// How long sessions may take, in all, to answer their in-flight requests.
    pub drain_timeout: Duration,
    /// Pause between closing one broker port and the next.
    pub port_close_delay: Duration,
}

// === impl PortStops ===

impl PortStops {
    /// Stop tokens under `parent`.
    pub fn new(parent: CancellationToken) -> Self {
        Self { parent, ports: Mutex::new((BTreeMap::new(), false)), draining: CancellationToken::new() }
    }

    /// Cancelled once a graceful shutdown has begun.
    pub fn draining(&self) -> CancellationToken {
        self.draining.clone()
    }

    /// The stop token of `port` (the same one for every caller). A port first seen after shutdown began gets
    /// a cancelled token: it never serves. A port already known keeps its token, which the shutdown cancels in
    /// its turn — the bootstrap port must keep accepting while the broker ports close one by one.
    pub fn token(&self, port: u16) -> CancellationToken {
        let mut guard = self.ports.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let (ports, closing) = &mut *guard;
        let closing = *closing;
        ports
            .entry(port)
            .or_insert_with(|| {
                let token = self.parent.child_token();
                if closing {
                    token.cancel();
                }
                token
            })
            .clone()
    }

    /// Marks shutdown begun and returns the ports to stop: broker ports from the highest down, so the
    /// bootstrap port (the lowest) serves to the end.
    fn begin_closing(&self) -> Vec<(u16, CancellationToken)> {
        self.draining.cancel();
        let mut guard = self.ports.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        guard.1 = true;
        guard.0.iter().rev().map(|(port, token)| (*port, token.clone())).collect()
    }
}

/// Stops the ports one by one, then waits for the sessions to drain.
pub async fn drain(ports: &PortStops, sessions: &TaskTracker, policy: ShutdownPolicy) {
    let stops = ports.begin_closing();
    info!(
        ports = stops.len(),
        sessions = sessions.len(),
        drain_timeout_ms = policy.drain_timeout.as_millis(),
        "shutting down: closing broker ports and draining sessions"
    );
    let deadline = tokio::time::Instant::now() + policy.drain_timeout;
    for (i, (port, token)) in stops.iter().enumerate() {
        if i > 0 && !policy.port_close_delay.is_zero() {
            tokio::time::sleep(policy.port_close_delay).await;
        }
        token.cancel();
        info!(port, "broker port closed; its sessions answer what is in flight, then close");
    }
    sessions.close();
    match tokio::time::timeout_at(deadline, sessions.wait()).await {
        Ok(()) => info!("every session drained"),
        Err(_) => warn!(
            sessions = sessions.len(),
            drain_timeout_ms = policy.drain_timeout.as_millis(),
            "shutdown drain timeout reached; closing the remaining sessions with requests unanswered"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_port_known_before_shutdown_keeps_serving_until_its_turn() {
        let stops = PortStops::new(CancellationToken::new());
        let (bootstrap, broker) = (stops.token(9092), stops.token(9093));
        let order = stops.begin_closing();
        assert_eq!(order.iter().map(|(port, _)| *port).collect::<Vec<_>>(), vec![9093, 9092], "highest first");
        // A session accepted on the bootstrap port while the broker ports close asks for its token again.
        assert!(!stops.token(9092).is_cancelled(), "asking again does not close the bootstrap port early");
        assert!(!bootstrap.is_cancelled() && !broker.is_cancelled(), "nothing closes before its turn");
        assert!(stops.token(9094).is_cancelled(), "a port first opened during shutdown never serves");
    }
}
