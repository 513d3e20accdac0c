//! Lazy message bodies.
//!
//! Most frames cross the gateway untouched, so a body stays the `Bytes` it arrived as until a filter asks for
//! the decoded message. Reading a decoded body keeps the original bytes for forwarding; only a mutable borrow
//! marks the body dirty, and only a dirty body is re-encoded. Produce and Fetch records are therefore never
//! copied by the gateway unless a filter changes the message that carries them.

use bytes::{Bytes, BytesMut};

/// A message body that is decoded on first use and re-encoded only when mutated.
#[derive(Debug, Clone)]
pub struct Body<T> {
    /// The bytes as received; `None` once a filter has mutated the decoded message.
    raw: Option<Bytes>,
    /// The decoded message, present once a filter asked for it.
    decoded: Option<T>,
    /// Why the bytes did not decode, once tried: later asks fail at once (and are not counted again).
    undecodable: Option<String>,
}

/// How a body type is decoded and encoded at a given api key and version.
pub trait BodyCodec: Sized {
    /// Which way such messages travel, for the undecodable-message count.
    const DIRECTION: crate::undecodable::Direction;
    /// Decodes `bytes` as the message for `api_key` at `version`.
    fn decode_body(api_key: i16, version: i16, bytes: Bytes) -> Result<Self, anyhow::Error>;
    /// Appends the encoded message at `version` to `out`.
    fn encode_body(&self, version: i16, out: &mut BytesMut) -> Result<(), anyhow::Error>;
}

// === impl Body ===

impl<T> Body<T> {
    /// A body holding only the bytes received from the network.
    pub fn raw(bytes: Bytes) -> Self {
        Self { raw: Some(bytes), decoded: None, undecodable: None }
    }

    /// A body built by the gateway itself (a short-circuit answer); it is encoded when written.
    pub fn decoded(message: T) -> Self {
        Self { raw: None, decoded: Some(message), undecodable: None }
    }

    /// True when a filter changed the message, so the original bytes no longer describe it.
    pub fn is_dirty(&self) -> bool {
        self.raw.is_none()
    }

    /// The original bytes, if the message was not mutated.
    pub fn raw_bytes(&self) -> Option<&Bytes> {
        self.raw.as_ref()
    }

    /// The decoded message if some filter already decoded it.
    pub fn peek(&self) -> Option<&T> {
        self.decoded.as_ref()
    }
}

impl<T: BodyCodec> Body<T> {
    /// Decodes (once) and returns the message, keeping the original bytes for forwarding.
    pub fn get(&mut self, api_key: i16, version: i16) -> Result<&T, anyhow::Error> {
        self.ensure_decoded(api_key, version)?;
        self.decoded.as_ref().ok_or_else(|| anyhow::anyhow!("body has neither bytes nor message"))
    }

    /// Decodes (once) and returns the message for mutation; the body will be re-encoded when written.
    pub fn get_mut(&mut self, api_key: i16, version: i16) -> Result<&mut T, anyhow::Error> {
        self.ensure_decoded(api_key, version)?;
        self.raw = None;
        self.decoded.as_mut().ok_or_else(|| anyhow::anyhow!("body has neither bytes nor message"))
    }

    /// Replaces the message; the body is re-encoded when written.
    pub fn set(&mut self, message: T) {
        self.raw = None;
        self.decoded = Some(message);
    }

    /// Appends the wire form to `out`: the original bytes when untouched, else the re-encoded message.
    pub fn write_to(&self, version: i16, out: &mut BytesMut) -> Result<(), anyhow::Error> {
        match (&self.raw, &self.decoded) {
            (Some(raw), _) => {
                out.extend_from_slice(raw);
                Ok(())
            }
            (None, Some(message)) => message.encode_body(version, out),
            (None, None) => Err(anyhow::anyhow!("body has neither bytes nor message")),
        }
    }

    /// Decodes once. A body that does not decode is still forwarded as the bytes it came as: only the filter
    /// that needed the message fails; the failure is counted and logged once per api and version.
    fn ensure_decoded(&mut self, api_key: i16, version: i16) -> Result<(), anyhow::Error> {
        if let Some(reason) = &self.undecodable {
            anyhow::bail!("{reason}");
        }
        if self.decoded.is_none() {
            let raw = self.raw.clone().ok_or_else(|| anyhow::anyhow!("body has neither bytes nor message"))?;
            match T::decode_body(api_key, version, raw) {
                Ok(message) => self.decoded = Some(message),
                Err(e) => {
                    let reason = format!("{e:#}");
                    crate::undecodable::record(T::DIRECTION, api_key, version, &reason);
                    self.undecodable = Some(reason);
                    return Err(e);
                }
            }
        }
        Ok(())
    }
}

// Both directions decode with kafka-protocol's per-api-key dispatch.

fn known_key(api_key: i16, version: i16) -> Result<kafka_protocol::messages::ApiKey, anyhow::Error> {
    let key = kafka_protocol::messages::ApiKey::try_from(api_key)
        .map_err(|_| anyhow::anyhow!("api key {api_key} is unknown to this gateway"))?;
    let range = key.valid_versions();
    if version < range.min || version > range.max {
        anyhow::bail!(
            "{key:?} v{version} is outside the versions this gateway decodes ({}..={})",
            range.min,
            range.max
        );
    }
    Ok(key)
}

impl BodyCodec for kafka_protocol::messages::RequestKind {
    const DIRECTION: crate::undecodable::Direction = crate::undecodable::Direction::Request;

    fn decode_body(api_key: i16, version: i16, mut bytes: Bytes) -> Result<Self, anyhow::Error> {
        let key = known_key(api_key, version)?;
        Self::decode(key, &mut bytes, version)
    }

    fn encode_body(&self, version: i16, out: &mut BytesMut) -> Result<(), anyhow::Error> {
        self.encode(out, version)
    }
}

impl BodyCodec for kafka_protocol::messages::ResponseKind {
    const DIRECTION: crate::undecodable::Direction = crate::undecodable::Direction::Response;

    fn decode_body(api_key: i16, version: i16, mut bytes: Bytes) -> Result<Self, anyhow::Error> {
        let key = known_key(api_key, version)?;
        Self::decode(key, &mut bytes, version)
    }

    fn encode_body(&self, version: i16, out: &mut BytesMut) -> Result<(), anyhow::Error> {
        self.encode(out, version)
    }
}
