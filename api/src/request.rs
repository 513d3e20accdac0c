//! One client request as filters see it.

use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::messages::{ApiKey, RequestHeader, RequestKind, SaslAuthenticateRequest};

use crate::budget::Charge;
use crate::error_response::error_response;
use crate::topology::BrokerAddress;
use crate::{Body, FilterError, KafkaResponse, Session};

/// Where the innermost service sends a request.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Route {
    /// Any broker of the session's cluster: the first reachable one of its bootstrap list.
    #[default]
    Bootstrap,
    /// One backend broker, chosen by a routing filter.
    Broker {
        /// The broker's id in its own cluster.
        node_id: i32,
        /// Where it listens.
        address: BrokerAddress,
    },
}

/// A request from a client, with its header decoded and its body lazy.
#[derive(Debug)]
pub struct KafkaRequest {
    /// The decoded request header. For an api key this gateway does not know, only the key, version and
    /// correlation id are filled in (the client id of such a request cannot be located without its schema).
    header: RequestHeader,
    /// The header bytes after the 8 fixed ones (client id, tagged fields), forwarded as they came.
    header_rest: Bytes,
    /// The request message.
    pub body: Body<RequestKind>,
    /// The connection it arrived on.
    pub session: Arc<Session>,
    /// Where it goes; set by a routing filter, defaulting to any bootstrap broker.
    pub route: Route,
    /// False only for Produce with acks=0: the broker sends no response and the client waits for none.
    expects_response: bool,
    /// The frame's bytes held against the session's memory budget until the request is written to the broker.
    charge: Option<Charge>,
}

// === impl KafkaRequest ===

impl KafkaRequest {
    /// Assembles a request from its parts; the runtime's frame decoder is the usual caller.
    pub fn from_parts(
        header: RequestHeader,
        header_rest: Bytes,
        body: Body<RequestKind>,
        session: Arc<Session>,
        expects_response: bool,
    ) -> Self {
        Self { header, header_rest, body, session, route: Route::Bootstrap, expects_response, charge: None }
    }

    /// A request the gateway sends on its own (out of band) through the inner services of a filter, on the
    /// session's backend connection. Its header names the gateway as the client (`franzgate`); the backend
    /// connection gives it a correlation id of its own, so it never collides with the client's.
    pub fn out_of_band(key: ApiKey, version: i16, body: RequestKind, session: Arc<Session>) -> Self {
        use bytes::BufMut;
        const CLIENT_ID: &[u8] = b"franzgate";
        let header = RequestHeader::default()
            .with_request_api_key(key as i16)
            .with_request_api_version(version)
            .with_client_id(Some("franzgate".into()));
        // Header v1 adds the client id (a nullable INT16-length string), v2 an empty tagged-field list after it.
        let header_version = key.request_header_version(version);
        let mut rest = bytes::BytesMut::with_capacity(2 + CLIENT_ID.len() + 1);
        if header_version >= 1 {
            rest.put_i16(CLIENT_ID.len() as i16);
            rest.put_slice(CLIENT_ID);
        }
        if header_version >= 2 {
            rest.put_u8(0);
        }
        Self {
            header,
            header_rest: rest.freeze(),
            body: Body::decoded(body),
            session,
            route: Route::Bootstrap,
            expects_response: true,
            charge: None,
        }
    }

    /// A bare SASL token sent after SaslHandshake v0 (no Kafka header), as a SaslAuthenticate v0 request so
    /// that the SASL filter handles both framings alike; its response is written back as a bare token.
    pub fn raw_sasl_token(token: Bytes, session: Arc<Session>) -> Self {
        let header =
            RequestHeader::default().with_request_api_key(ApiKey::SaslAuthenticate as i16).with_request_api_version(0);
        let body = SaslAuthenticateRequest::default().with_auth_bytes(token);
        let body = Body::decoded(RequestKind::SaslAuthenticate(body));
        Self {
            header,
            header_rest: Bytes::new(),
            body,
            session,
            route: Route::Bootstrap,
            expects_response: true,
            charge: None,
        }
    }

    /// Holds `charge` (the bytes of the frame this request was read from) until the request is written out.
    pub fn set_charge(&mut self, charge: Charge) {
        self.charge = Some(charge);
    }

    /// Takes the request's charge, for whoever now holds its bytes (the backend connection's write queue).
    pub fn take_charge(&mut self) -> Option<Charge> {
        self.charge.take()
    }

    /// The decoded header.
    pub fn header(&self) -> &RequestHeader {
        &self.header
    }

    /// The header bytes after api key, version and correlation id, as the client sent them.
    pub fn header_rest(&self) -> &Bytes {
        &self.header_rest
    }

    /// The api key, if this gateway knows it.
    pub fn api_key(&self) -> Option<ApiKey> {
        ApiKey::try_from(self.header.request_api_key).ok()
    }

    /// The raw api key number.
    pub fn api_key_raw(&self) -> i16 {
        self.header.request_api_key
    }

    /// The api version the client used.
    pub fn api_version(&self) -> i16 {
        self.header.request_api_version
    }

    /// The client's correlation id; responses carry it back.
    pub fn correlation_id(&self) -> i32 {
        self.header.correlation_id
    }

    /// The client id from the header, when present.
    pub fn client_id(&self) -> Option<&str> {
        self.header.client_id.as_deref()
    }

    /// False for Produce with acks=0, which gets no response.
    pub fn expects_response(&self) -> bool {
        self.expects_response
    }

    /// The decoded message; the original bytes are still the ones forwarded.
    pub fn body(&mut self) -> Result<&RequestKind, FilterError> {
        let (key, version) = (self.header.request_api_key, self.header.request_api_version);
        self.body.get(key, version).map_err(FilterError::decode)
    }

    /// The decoded message for mutation; the request is re-encoded when forwarded.
    pub fn body_mut(&mut self) -> Result<&mut RequestKind, FilterError> {
        let (key, version) = (self.header.request_api_key, self.header.request_api_version);
        self.body.get_mut(key, version).map_err(FilterError::decode)
    }

    /// The response a broker would send refusing this whole request with `error_code`, ready to return
    /// from a filter instead of forwarding. Produce with acks=0 gets no response: the connection is closed,
    /// as a broker does, so the client learns of the failure.
    pub fn error_response(&mut self, error_code: i16) -> Result<KafkaResponse, FilterError> {
        let (key, version, correlation_id) = (self.api_key_raw(), self.api_version(), self.correlation_id());
        if !self.expects_response {
            return Ok(KafkaResponse::no_response(key, version, correlation_id).close_after());
        }
        let message = error_response(self.body()?, version, error_code);
        KafkaResponse::from_message(key, version, correlation_id, message)
    }
}
