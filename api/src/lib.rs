//! # franzgate-api — the filter API
//!
//! Everything a filter sees, and nothing of the runtime that drives it. Custom filters depend on this crate
//! only, so it stays small and stable.
//!
//! ## Layout
//! - [`request`]: [`KafkaRequest`] — one client request: its decoded header, its lazy [`Body`], the
//!   [`Session`] it arrived on and the [`Route`] a routing filter chose for it.
//! - [`response`]: [`KafkaResponse`] — the answer travelling back out through the same filters.
//! - [`body`]: [`Body`] — raw `Bytes` until a filter asks for the decoded message; re-encoded only if mutated.
//! - [`session`]: [`Session`] — per-connection facts (peer, gateway port, the backend cluster it is bound to).
//! - [`selector`]: [`selector::ClusterSelector`] — the switchable state: which cluster new sessions use.
//! - [`auth`]: [`Principal`] — who a session authenticated as — and the authentication counters.
//! - [`advertised`]: the addresses clients are told: a port per broker, or a host name per broker (SNI).
//! - [`budget`]: the bytes a session, and the whole gateway, may buffer; what bounds memory under load.
//! - [`usage`]: the chargeback ledger — bytes produced and consumed per cluster, principal, client and topic.
//! - [`vcluster`]: the virtual clusters (tenants), their prefixes and service accounts.
//! - [`topology`]: the backend clusters, the advertised gateway address and the virtual <-> backend node map.
//! - [`filter`]: [`FilterFactory`], the boxed service and layer types, and [`FilterContext`].
//! - [`error`]: [`FilterError`] (a request could not be served) and [`ConfigError`] (a filter's config is wrong).
//! - [`error_response`]: builds the response a broker would send when refusing any request with an error code.
//! - [`rewrite`]: a response future that applies a per-request rewrite, for filters that change responses.
//!
//! ## Data flow
//! The runtime splits a client connection into frames, decodes only the request header, wraps the rest as
//! `Body::Raw` and calls the session's filter stack — a `tower::Service<KafkaRequest, Response = KafkaResponse>`
//! whose innermost service writes the frame to the backend broker. Filters are `tower::Layer`s built once from
//! YAML by their [`FilterFactory`].
#![forbid(unsafe_code)]
#![deny(rust_2018_idioms)]
#![warn(missing_docs)]

pub mod advertised;
pub mod auth;
pub mod body;
pub mod budget;
pub mod error;
pub mod error_response;
pub mod filter;
pub mod request;
pub mod response;
pub mod rewrite;
pub mod selector;
pub mod session;
pub mod topology;
pub mod undecodable;
pub mod usage;
pub mod vcluster;

pub use auth::{AuthStats, Principal, PrincipalSource};
pub use body::Body;
pub use error::{ConfigError, FilterError};
pub use filter::{BoxKafkaService, BoxLayer, FilterContext, FilterFactory};
pub use kafka_protocol;
pub use request::{KafkaRequest, Route};
pub use response::KafkaResponse;
pub use session::Session;
