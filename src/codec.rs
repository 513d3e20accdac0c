//! Framing and header decoding.
//!
//! Kafka frames are a 4-byte big-endian length followed by the payload. Only the request header is decoded
//! here; the body stays the `Bytes` slice of the frame it arrived in (see `franzgate_api::Body`).

use std::sync::Arc;

use bytes::{Buf, Bytes, BytesMut};
use franzgate_api::{Body, KafkaRequest, KafkaResponse, Session};
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::Decodable;
use tokio_util::codec::Decoder;

/// How much of a large frame is reserved at a time: big enough that a large Fetch response is read in few
/// syscalls, small enough that a peer announcing a huge frame gets no huge allocation before sending it.
/// (`BytesMut::reserve` itself at least doubles, so growth stays geometric.)
const READ_CHUNK: usize = 1 << 20;

/// Why a connection's byte stream is unusable.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The announced frame length exceeds the configured maximum.
    #[error("frame of {size} bytes exceeds the maximum of {max} bytes")]
    TooLarge {
        /// The announced length.
        size: usize,
        /// The configured maximum.
        max: usize,
    },
    /// The announced frame length is negative.
    #[error("negative frame length {0}")]
    NegativeLength(i32),
    /// The peer closed the connection in the middle of a frame.
    #[error("connection closed mid-frame ({buffered} bytes of an incomplete frame)")]
    Truncated {
        /// Bytes received of the incomplete frame.
        buffered: usize,
    },
    /// The socket failed.
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
}

/// Splits a byte stream into frame payloads (without the length prefix).
#[derive(Debug, Clone)]
pub struct FrameDecoder {
    /// The largest frame accepted.
    max_frame: usize,
}

impl FrameDecoder {
    /// A decoder refusing frames longer than `max_frame` bytes.
    pub fn new(max_frame: usize) -> Self {
        Self { max_frame }
    }

    /// Changes the limit (a session raises it once its client has authenticated).
    pub fn set_max_frame(&mut self, max_frame: usize) {
        self.max_frame = max_frame;
    }

    /// The current limit.
    pub fn max_frame(&self) -> usize {
        self.max_frame
    }
}

impl Decoder for FrameDecoder {
    type Item = Bytes;
    type Error = FrameError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Bytes>, FrameError> {
        let Some(prefix) = src.get(..4) else {
            return Ok(None);
        };
        let announced = i32::from_be_bytes([prefix[0], prefix[1], prefix[2], prefix[3]]);
        let size = usize::try_from(announced).map_err(|_| FrameError::NegativeLength(announced))?;
        if size > self.max_frame {
            return Err(FrameError::TooLarge { size, max: self.max_frame });
        }
        let missing = (4 + size).saturating_sub(src.len());
        if missing > 0 {
            src.reserve(missing.min(READ_CHUNK));
            return Ok(None);
        }
        src.advance(4);
        Ok(Some(src.split_to(size).freeze()))
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<Bytes>, FrameError> {
        match self.decode(src)? {
            Some(frame) => Ok(Some(frame)),
            None if src.is_empty() => Ok(None),
            None => Err(FrameError::Truncated { buffered: src.len() }),
        }
    }
}

/// Why a frame is not a request this gateway can forward.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    /// Shorter than the 8 fixed header bytes.
    #[error("request frame of {0} bytes is shorter than a request header")]
    TooShort(usize),
    /// The header does not decode at the version its api key and version imply.
    #[error("malformed {key:?} v{version} request header: {reason}")]
    BadHeader {
        /// The api key.
        key: ApiKey,
        /// The api version.
        version: i16,
        /// What the decoder said.
        reason: String,
    },
    /// A Produce request whose acks field cannot be read.
    #[error("malformed Produce v{0} request: cannot read acks")]
    BadProduce(i16),
}

/// Decodes the request header of `frame` and wraps the rest as a lazy body.
pub fn parse_request(frame: Bytes, session: &Arc<Session>) -> Result<KafkaRequest, RequestError> {
    if frame.len() < 8 {
        return Err(RequestError::TooShort(frame.len()));
    }
    let raw_key = i16::from_be_bytes([frame[0], frame[1]]);
    let version = i16::from_be_bytes([frame[2], frame[3]]);
    let Ok(key) = ApiKey::try_from(raw_key) else {
        // Unknown api key: forward untouched. Only the fixed part of the header can be read without its schema.
        let header = RequestHeader::default()
            .with_request_api_key(raw_key)
            .with_request_api_version(version)
            .with_correlation_id(i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]));
        let body = frame.slice(8..);
        return Ok(KafkaRequest::from_parts(header, Bytes::new(), Body::raw(body), session.clone(), true));
    };
    let mut rest = frame.clone();
    let header = RequestHeader::decode(&mut rest, key.request_header_version(version))
        .map_err(|e| RequestError::BadHeader { key, version, reason: format!("{e:#}") })?;
    let body_start = frame.len() - rest.len();
    let expects_response = match key {
        ApiKey::Produce => produce_acks(&rest, version).ok_or(RequestError::BadProduce(version))? != 0,
        _ => true,
    };
    let header_rest = frame.slice(8..body_start);
    Ok(KafkaRequest::from_parts(header, header_rest, Body::raw(rest), session.clone(), expects_response))
}

/// Reads `acks` from a Produce request body without decoding the records: it follows the nullable
/// transactional id (v3+; a compact string from v9, when the request became flexible).
pub fn produce_acks(body: &[u8], version: i16) -> Option<i16> {
    let mut buf = body;
    if version >= 9 {
        // Compact nullable string: unsigned varint length + 1 (0 = null).
        let mut len_plus_one: u64 = 0;
        let mut shift = 0;
        loop {
            let byte = *buf.first()?;
            buf = &buf[1..];
            len_plus_one |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                break;
            }
            shift += 7;
            if shift > 28 {
                return None;
            }
        }
        let len = usize::try_from(len_plus_one.saturating_sub(1)).ok()?;
        buf = buf.get(len..)?;
    } else if version >= 3 {
        let len = i16::from_be_bytes([*buf.first()?, *buf.get(1)?]);
        buf = buf.get(2..)?;
        if len > 0 {
            buf = buf.get(usize::try_from(len).ok()?..)?;
        }
    }
    Some(i16::from_be_bytes([*buf.first()?, *buf.get(1)?]))
}

/// What the upstream remembers about a request so it can interpret the response.
#[derive(Debug, Clone, Copy)]
pub struct PendingRequest {
    /// The request's api key.
    pub api_key: i16,
    /// The request's api version.
    pub api_version: i16,
    /// The client's correlation id, restored in the response.
    pub client_correlation_id: i32,
}

/// Wraps a broker's response frame (correlation id first) for the filters, restoring the client's
/// correlation id. The header's tagged fields and the body remain slices of `frame`.
pub fn parse_response(frame: Bytes, pending: PendingRequest) -> Result<KafkaResponse, String> {
    if frame.len() < 4 {
        return Err(format!("response frame of {} bytes has no correlation id", frame.len()));
    }
    let header_len = match ApiKey::try_from(pending.api_key) {
        Ok(key) if key.response_header_version(pending.api_version) >= 1 => {
            let mut rest = frame.clone();
            ResponseHeader::decode(&mut rest, 1).map_err(|e| format!("malformed response header: {e:#}"))?;
            frame.len() - rest.len()
        }
        _ => 4,
    };
    Ok(KafkaResponse::from_wire(
        pending.api_key,
        pending.api_version,
        pending.client_correlation_id,
        frame.slice(4..header_len),
        frame.slice(header_len..),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_split_at_their_length_prefix() {
        let mut dec = FrameDecoder::new(100);
        let mut buf = BytesMut::from(&[0, 0, 0, 2, 9, 9, 0, 0, 0, 1][..]);
        assert_eq!(dec.decode(&mut buf).ok().flatten().as_deref(), Some(&[9u8, 9][..]));
        assert!(matches!(dec.decode(&mut buf), Ok(None)), "partial frame waits for more bytes");
        buf.extend_from_slice(&[7]);
        assert_eq!(dec.decode(&mut buf).ok().flatten().as_deref(), Some(&[7u8][..]));
    }

    #[test]
    fn oversized_and_negative_lengths_are_refused_without_allocating() {
        let mut dec = FrameDecoder::new(1024);
        let mut buf = BytesMut::from(&[0x7f, 0xff, 0xff, 0xff][..]);
        assert!(matches!(dec.decode(&mut buf), Err(FrameError::TooLarge { max: 1024, .. })));
        assert!(buf.capacity() < 1 << 20);
        let mut buf = BytesMut::from(&[0xff, 0xff, 0xff, 0xfe][..]);
        assert!(matches!(dec.decode(&mut buf), Err(FrameError::NegativeLength(-2))));
    }

    #[test]
    fn a_large_frame_grows_its_buffer_geometrically_and_only_with_what_arrived() {
        let mut dec = FrameDecoder::new(64 << 20);
        let size = 32usize << 20;
        // A small frame first, split off and kept alive as a request body would be, so the buffer is shared.
        let mut buf = BytesMut::from(&[0u8, 0, 0, 1, 9][..]);
        let _earlier = dec.decode(&mut buf).ok().flatten().expect("first frame");
        buf.extend_from_slice(&(size as i32).to_be_bytes());
        let mut reallocations = 0;
        let mut last_ptr = buf.as_ptr();
        while buf.len() < 4 + size {
            assert!(matches!(dec.decode(&mut buf), Ok(None)));
            assert!(buf.capacity() <= 2 * buf.len().max(READ_CHUNK) + 4, "never far beyond what arrived");
            // Fill the spare capacity, as a socket read would.
            let fill = (buf.capacity() - buf.len()).min(4 + size - buf.len());
            buf.extend_from_slice(&vec![7u8; fill]);
            if buf.as_ptr() != last_ptr {
                reallocations += 1;
                last_ptr = buf.as_ptr();
            }
        }
        assert!(reallocations <= 8, "{reallocations} reallocations for a 32 MiB frame");
        assert_eq!(dec.decode(&mut buf).ok().flatten().map(|f| f.len()), Some(size));
    }

    #[test]
    fn eof_inside_a_frame_is_reported_as_truncated() {
        let mut dec = FrameDecoder::new(100);
        let mut buf = BytesMut::from(&[0, 0, 0, 5, 1][..]);
        assert!(matches!(dec.decode_eof(&mut buf), Err(FrameError::Truncated { buffered: 5 })));
    }

    #[test]
    fn produce_acks_is_read_for_every_header_layout() {
        // v2: acks first.
        assert_eq!(produce_acks(&[0, 1, 0, 0], 2), Some(1));
        // v3..v8: int16-length nullable transactional id, then acks.
        assert_eq!(produce_acks(&[0xff, 0xff, 0xff, 0xff], 3), Some(-1));
        assert_eq!(produce_acks(&[0, 2, b't', b'x', 0, 0], 8), Some(0));
        // v9+: compact nullable string (varint len+1).
        assert_eq!(produce_acks(&[0, 0, 1], 9), Some(1));
        assert_eq!(produce_acks(&[3, b't', b'x', 0, 0], 11), Some(0));
        // Truncated bodies are refused, not read past.
        assert_eq!(produce_acks(&[0, 9, b't'], 8), None);
        assert_eq!(produce_acks(&[0x80, 0x80, 0x80, 0x80, 0x80, 0x01], 9), None);
    }
}
