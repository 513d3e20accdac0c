//! # franzgate-auth
//!
//! The authentication primitives franzgate needs, as pure functions with no I/O: both ends of SASL SCRAM
//! (the gateway is a SCRAM server to its clients and a SCRAM client to its backends), SASL PLAIN messages,
//! service-account tokens (HS256 JWT), stored credentials, and Kafka's certificate-subject → principal mapping.
//!
//! ## Layout
//! - [`scram`]: RFC 5802 / RFC 7677 SCRAM-SHA-256 and SCRAM-SHA-512 — [`scram::ScramServer`],
//!   [`scram::ScramClient`], and [`scram::ScramCredential`], the salted keys stored instead of passwords
//!   (RFC 5803 text form).
//! - [`Mechanism`]: the SASL mechanisms, by name.
//! - [`plain`]: RFC 4616 PLAIN messages.
//! - [`jwt`]: HS256 service-account tokens with claims `username`, `vcluster`, `exp`.
//! - [`mapping`]: Kafka's `ssl.principal.mapping.rules`, and a certificate's subject DN as Kafka prints it.
#![forbid(unsafe_code)]
#![deny(rust_2018_idioms)]
#![warn(missing_docs)]

pub mod jwt;
pub mod mapping;
pub mod plain;
pub mod scram;

/// A SASL mechanism franzgate speaks, as a server to clients and as a client to brokers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mechanism {
    /// RFC 4616 PLAIN.
    Plain,
    /// SCRAM-SHA-256 or SCRAM-SHA-512.
    Scram(scram::ScramMechanism),
}

impl Mechanism {
    /// The mechanism's SASL name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Plain => "PLAIN",
            Self::Scram(m) => m.name(),
        }
    }

    /// Parses a SASL mechanism name (case-insensitive).
    pub fn from_name(name: &str) -> Option<Self> {
        if name.eq_ignore_ascii_case("PLAIN") {
            return Some(Self::Plain);
        }
        scram::ScramMechanism::from_name(name).map(Self::Scram)
    }
}

/// Fills `buf` with random bytes from the operating system.
fn random(buf: &mut [u8]) -> Result<(), String> {
    getrandom::fill(buf).map_err(|e| format!("no randomness from the operating system: {e}"))
}
