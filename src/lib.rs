//! # franzgate — a Kafka wire-protocol gateway
//!
//! Kafka clients connect to franzgate as if it were the cluster. Every request and response passes through a
//! tower `Service` stack of filters declared in YAML.
//!
//! ## Layout (the runtime; filters live in `franzgate-filters`, their API in `franzgate-api`)
//! - [`admin`]: the admin HTTP API (Conduktor's paths): switch clusters, list them, health.
//! - [`config`]: the YAML file — listeners, backend clusters, the filter list.
//! - [`registry`]: filter factories by type name, and the chain built from the YAML list.
//! - [`gateway`]: listeners (one port per virtual broker, opened as brokers are discovered, or one TLS port
//!   routing by server name) and sessions.
//! - [`chargeback_flush`]: produces chargeback usage to a Kafka topic at an interval, for billing pipelines.
//! - [`limits`]: client connection limits, global and per source address.
//! - [`log_limit`]: rate-limited warnings for lines a peer can trigger at will (`warn_limited!`).
//! - [`metrics`]: runtime counters and the Prometheus rendering of `/metrics` (chargeback included).
//! - [`tls`]: rustls server (client certificates to principals) and client (to TLS backends) settings.
//! - [`net`]: the byte streams sessions and upstreams use: plain TCP or TLS.
//! - [`session`]: one client connection — frames in, the filter stack, responses out in request order.
//! - [`codec`]: framing, request-header decoding, response wrapping.
//! - [`upstream`]: the innermost service — one backend connection per session, correlation ids, batching.
//! - [`backend`]: connecting to a broker with the cluster's own TLS and SASL settings (auth decoupling).
//! - [`vcluster_state`]: virtual clusters and service accounts, kept in a compacted topic on the active cluster.
//! - [`fleet`]: the switch decision, kept in a control topic on every cluster and followed by every instance.
//! - [`shutdown`]: graceful shutdown — ports closed one by one, sessions drained within a timeout.
//! - [`probe`]: the start-up Metadata request that discovers the brokers.
//!
//! ## Data flow
//! `gateway` accepts (and runs the TLS handshake) → `session` reads a frame → `codec::parse_request` decodes the header only → the filter
//! stack (`registry::FilterChain`) → `upstream::Upstream` writes it to the broker → the response comes back
//! through the same filters → `session` writes it to the client in request order.
#![forbid(unsafe_code)]
#![deny(rust_2018_idioms)]
#![warn(missing_docs)]

pub mod admin;
pub mod backend;
pub mod chargeback_flush;
pub mod codec;
pub mod config;
pub mod fleet;
pub mod gateway;
pub mod limits;
pub mod log_limit;
pub mod memory;
pub mod metrics;
pub mod net;
pub mod probe;
pub mod registry;
pub mod session;
pub mod shutdown;
pub mod tls;
pub mod upstream;
pub mod vcluster_state;

pub use config::GatewayConfig;
pub use gateway::{Gateway, RunningGateway};
pub use registry::FilterRegistry;

/// Seconds since the Unix epoch (0 if the clock is before it).
pub(crate) fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}
