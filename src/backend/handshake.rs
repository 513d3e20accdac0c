//! The gateway's own requests on a fresh backend connection: ApiVersions, then the SASL exchange.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use franzgate_api::topology::{ApiVersionRange, BackendCluster};
use franzgate_auth::plain::encode_plain;
use franzgate_auth::scram::ScramClient;
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, RequestHeader, ResponseHeader, SaslAuthenticateRequest,
    SaslAuthenticateResponse, SaslHandshakeRequest, SaslHandshakeResponse,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use franzgate_auth::Mechanism;

use super::BackendSasl;

/// Versions every broker since Kafka 1.0 answers; none is flexible, so headers stay simple.
const API_VERSIONS_VERSION: i16 = 0;
const HANDSHAKE_VERSION: i16 = 1;
const AUTHENTICATE_VERSION: i16 = 1;

/// Sends one request and reads its response body (header checked and skipped).
pub async fn round_trip<S, Req, Resp>(
    stream: &mut S,
    key: ApiKey,
    version: i16,
    correlation_id: i32,
    request: &Req,
    max_frame: usize,
) -> Result<Resp, String>
where
    S: AsyncRead + AsyncWrite + Unpin,
    Req: Encodable,
    Resp: Decodable,
{
    let header = RequestHeader::default()
        .with_request_api_key(key as i16)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(StrBytes::from_static_str("franzgate")));
    let mut frame = BytesMut::new();
    frame.put_i32(0);
    header.encode(&mut frame, key.request_header_version(version)).map_err(|e| e.to_string())?;
    request.encode(&mut frame, version).map_err(|e| e.to_string())?;
    let len = i32::try_from(frame.len() - 4).map_err(|e| e.to_string())?;
    frame[..4].copy_from_slice(&len.to_be_bytes());
    stream.write_all(&frame).await.map_err(|e| e.to_string())?;
    stream.flush().await.map_err(|e| e.to_string())?;

    let len = stream.read_i32().await.map_err(|e| format!("broker closed the connection ({e})"))?;
    let len = usize::try_from(len).ok().filter(|l| *l >= 4 && *l <= max_frame).ok_or("bad response length")?;
    let mut body = vec![0u8; len];
    stream.read_exact(&mut body).await.map_err(|e| e.to_string())?;
    let mut body = Bytes::from(body);
    let header = ResponseHeader::decode(&mut body, key.response_header_version(version)).map_err(|e| e.to_string())?;
    if header.correlation_id != correlation_id {
        return Err(format!("response to correlation id {} instead of {correlation_id}", header.correlation_id));
    }
    let response = Resp::decode(&mut body, version).map_err(|e| format!("malformed {key:?} response: {e:#}"))?;
    if body.has_remaining() {
        tracing::debug!(?key, left = body.remaining(), "trailing bytes after the response");
    }
    Ok(response)
}

/// Asks the broker for its api versions and records them on the cluster: pre-authentication ApiVersions
/// answers come from them.
pub async fn record_api_versions<S>(stream: &mut S, cluster: &BackendCluster, max_frame: usize) -> Result<(), String>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let response: ApiVersionsResponse =
        round_trip(stream, ApiKey::ApiVersions, API_VERSIONS_VERSION, 0, &ApiVersionsRequest::default(), max_frame)
            .await?;
    if response.error_code != 0 {
        return Err(format!("ApiVersions refused with error code {}", response.error_code));
    }
    let ranges = response
        .api_keys
        .iter()
        .map(|v| ApiVersionRange { api_key: v.api_key, min: v.min_version, max: v.max_version })
        .collect();
    cluster.api_versions.store(Some(std::sync::Arc::new(ranges)));
    Ok(())
}

/// Authenticates a fresh connection with the gateway's credentials for this cluster.
pub async fn authenticate<S>(
    stream: &mut S,
    sasl: &BackendSasl,
    cluster: &BackendCluster,
    max_frame: usize,
) -> Result<(), String>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    record_api_versions(stream, cluster, max_frame).await?;
    let name = sasl.mechanism.name();
    let request = SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str(name));
    let response: SaslHandshakeResponse =
        round_trip(stream, ApiKey::SaslHandshake, HANDSHAKE_VERSION, 1, &request, max_frame).await?;
    if response.error_code != 0 {
        let offered: Vec<&str> = response.mechanisms.iter().map(|m| m.as_str()).collect();
        return Err(format!("broker refused SASL mechanism {name}; it offers {offered:?}"));
    }
    let refused =
        |what: &str| format!("broker refused the gateway's {name} credentials for `{}`: {what}", sasl.username);
    match sasl.mechanism {
        Mechanism::Plain => {
            exchange(stream, encode_plain(&sasl.username, &sasl.password), 2, max_frame)
                .await
                .map_err(|e| refused(&e))?;
        }
        Mechanism::Scram(mechanism) => {
            let mut client = ScramClient::new(mechanism, &sasl.username, &sasl.password).map_err(|e| e.to_string())?;
            let server_first = exchange(stream, client.client_first(), 2, max_frame).await.map_err(|e| refused(&e))?;
            let client_final = client.server_first(&server_first).map_err(|e| refused(&e.to_string()))?;
            let server_final = exchange(stream, client_final, 3, max_frame).await.map_err(|e| refused(&e))?;
            client.server_final(&server_final).map_err(|e| refused(&e.to_string()))?;
        }
    }
    Ok(())
}

/// One SaslAuthenticate round: sends a token, returns the broker's.
async fn exchange<S>(stream: &mut S, token: Vec<u8>, correlation_id: i32, max_frame: usize) -> Result<Bytes, String>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let request = SaslAuthenticateRequest::default().with_auth_bytes(Bytes::from(token));
    let response: SaslAuthenticateResponse =
        round_trip(stream, ApiKey::SaslAuthenticate, AUTHENTICATE_VERSION, correlation_id, &request, max_frame).await?;
    if response.error_code != 0 {
        let message = response.error_message.as_deref().unwrap_or("no message").to_string();
        return Err(format!("error code {}: {message}", response.error_code));
    }
    Ok(response.auth_bytes)
}
