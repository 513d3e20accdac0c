//! Errors a filter can return.

/// A request could not be served. The runtime closes the affected client connection with this reason; other
/// connections are untouched. Filters that want the client to see a Kafka error code instead build one with
/// [`crate::KafkaRequest::error_response`].
#[derive(Debug, thiserror::Error)]
pub enum FilterError {
    /// No backend broker could be reached.
    #[error("no backend broker reachable: {0}")]
    Unreachable(String),
    /// The backend connection failed or closed while requests were waiting for it.
    #[error("backend connection lost: {0}")]
    UpstreamClosed(String),
    /// A message could not be decoded at its api key and version.
    #[error("cannot decode message: {0}")]
    Decode(String),
    /// A message could not be encoded.
    #[error("cannot encode message: {0}")]
    Encode(String),
    /// A filter asked for the body of a request that gets no response.
    #[error("request has no response body (Produce with acks=0)")]
    NoResponseBody,
    /// The gateway will not serve this session any more (e.g. its service account was revoked).
    #[error("session refused: {0}")]
    Refused(String),
    /// A bug or an impossible state; the connection is closed rather than served wrongly.
    #[error("internal error: {0}")]
    Internal(String),
}

impl FilterError {
    /// Wraps a decode failure.
    pub fn decode(error: anyhow::Error) -> Self {
        Self::Decode(format!("{error:#}"))
    }

    /// Wraps an encode failure.
    pub fn encode(error: anyhow::Error) -> Self {
        Self::Encode(format!("{error:#}"))
    }
}

/// A filter's configuration is wrong. The runtime adds the file and the filter's position and type.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

impl ConfigError {
    /// A config error with a message naming the key and what was expected.
    pub fn new(message: impl Into<String>) -> Self {
        Self(message.into())
    }
}
