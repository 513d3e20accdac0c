//! One response travelling back to the client.

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, ResponseKind};

use crate::budget::Charge;
use crate::{Body, FilterError};

/// A response to a client request, with its body lazy.
#[derive(Debug)]
pub struct KafkaResponse {
    /// The api key of the request it answers.
    api_key: i16,
    /// The api version of the request it answers (responses use the request's version).
    api_version: i16,
    /// The client's correlation id.
    correlation_id: i32,
    /// Response header bytes after the correlation id (tagged fields in header v1), forwarded as they came.
    header_rest: Bytes,
    /// The response message; `None` for a request that gets no response (Produce acks=0).
    body: Option<Body<ResponseKind>>,
    /// Close the client connection once this response is written (or instead of it, when there is none).
    close_after: bool,
    /// A raw SASL token (SaslHandshake v0 framing): written as length + bytes, with no response header.
    raw_token: bool,
    /// The frame's bytes held against the session's memory budget until the response is written and dropped.
    charge: Option<Charge>,
}

// === impl KafkaResponse ===

impl KafkaResponse {
    /// A response received from a broker: `header_rest` and `body` are slices of its frame.
    pub fn from_wire(api_key: i16, api_version: i16, correlation_id: i32, header_rest: Bytes, body: Bytes) -> Self {
        Self {
            api_key,
            api_version,
            correlation_id,
            header_rest,
            body: Some(Body::raw(body)),
            close_after: false,
            raw_token: false,
            charge: None,
        }
    }

    /// A response built by the gateway (short-circuit or error), encoded when written.
    pub fn from_message(
        api_key: i16,
        api_version: i16,
        correlation_id: i32,
        message: ResponseKind,
    ) -> Result<Self, FilterError> {
        let key = ApiKey::try_from(api_key)
            .map_err(|_| FilterError::Internal(format!("cannot build a response for unknown api key {api_key}")))?;
        // Header v1 ends with an empty tagged-field list: a single zero byte.
        let header_rest =
            if key.response_header_version(api_version) >= 1 { Bytes::from_static(&[0]) } else { Bytes::new() };
        Ok(Self {
            api_key,
            api_version,
            correlation_id,
            header_rest,
            body: Some(Body::decoded(message)),
            close_after: false,
            raw_token: false,
            charge: None,
        })
    }

    /// The placeholder for a request that gets no response (Produce with acks=0): nothing is written.
    pub fn no_response(api_key: i16, api_version: i16, correlation_id: i32) -> Self {
        Self {
            api_key,
            api_version,
            correlation_id,
            header_rest: Bytes::new(),
            body: None,
            close_after: false,
            raw_token: false,
            charge: None,
        }
    }

    /// A raw SASL token, framed as SaslHandshake v0 requires: a length and the token, no header.
    pub fn raw_sasl_token(token: Bytes) -> Self {
        let key = ApiKey::SaslAuthenticate as i16;
        Self {
            api_key: key,
            api_version: 0,
            correlation_id: 0,
            header_rest: Bytes::new(),
            body: Some(Body::raw(token)),
            close_after: false,
            raw_token: true,
            charge: None,
        }
    }

    /// Holds `charge` (the bytes of the frame this response was read from) until the response is dropped.
    pub fn set_charge(&mut self, charge: Charge) {
        self.charge = Some(charge);
    }

    /// Whether this is a raw SASL token rather than a Kafka response.
    pub fn is_raw_token(&self) -> bool {
        self.raw_token
    }

    /// Marks the client connection to be closed after this response.
    pub fn close_after(mut self) -> Self {
        self.close_after = true;
        self
    }

    /// Whether the connection closes after this response.
    pub fn closes_connection(&self) -> bool {
        self.close_after
    }

    /// The api key of the request this answers.
    pub fn api_key(&self) -> Option<ApiKey> {
        ApiKey::try_from(self.api_key).ok()
    }

    /// The raw api key number.
    pub fn api_key_raw(&self) -> i16 {
        self.api_key
    }

    /// The api version of the request this answers.
    pub fn api_version(&self) -> i16 {
        self.api_version
    }

    /// The client's correlation id.
    pub fn correlation_id(&self) -> i32 {
        self.correlation_id
    }

    /// False for the placeholder of a request that gets no response.
    pub fn has_body(&self) -> bool {
        self.body.is_some()
    }

    /// The response header bytes after the correlation id.
    pub fn header_rest(&self) -> &Bytes {
        &self.header_rest
    }

    /// The lazy body, for the runtime's writer.
    pub fn raw_body(&self) -> Option<&Body<ResponseKind>> {
        self.body.as_ref()
    }

    /// The decoded message; the original bytes are still the ones written.
    pub fn body(&mut self) -> Result<&ResponseKind, FilterError> {
        let (key, version) = (self.api_key, self.api_version);
        self.body.as_mut().ok_or(FilterError::NoResponseBody)?.get(key, version).map_err(FilterError::decode)
    }

    /// The decoded message for mutation; the response is re-encoded when written.
    pub fn body_mut(&mut self) -> Result<&mut ResponseKind, FilterError> {
        let (key, version) = (self.api_key, self.api_version);
        self.body.as_mut().ok_or(FilterError::NoResponseBody)?.get_mut(key, version).map_err(FilterError::decode)
    }

    /// Encodes the whole frame (length prefix, header, body) into `out`. Untouched bodies are copied as they
    /// came; writers that want zero-copy use [`Self::raw_body`] and write the parts themselves.
    pub fn encode_frame(&self, out: &mut BytesMut) -> Result<(), FilterError> {
        let Some(body) = &self.body else {
            return Ok(());
        };
        let start = out.len();
        out.put_i32(0); // length, patched below
        if !self.raw_token {
            out.put_i32(self.correlation_id);
            out.extend_from_slice(&self.header_rest);
        }
        body.write_to(self.api_version, out).map_err(FilterError::encode)?;
        let len = i32::try_from(out.len() - start - 4)
            .map_err(|_| FilterError::Internal("response larger than 2 GiB".into()))?;
        out[start..start + 4].copy_from_slice(&len.to_be_bytes());
        Ok(())
    }
}
