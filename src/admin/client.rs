//! A minimal client for the admin API, used by the demo, the tests and the switch benchmark.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper::header::{AUTHORIZATION, HOST};
use hyper_util::rt::TokioIo;

/// Sends one request to the admin API at `addr` (`host:port`) and returns the status and the JSON body
/// (`Null` if the body is not JSON).
pub async fn call(
    addr: &str,
    method: &str,
    path: &str,
    credentials: Option<(&str, &str)>,
) -> Result<(u16, serde_json::Value), String> {
    call_with_body(addr, method, path, credentials, Bytes::new()).await
}

/// [`call`] with a request body (JSON, or anything else to test refusals).
pub async fn call_with_body(
    addr: &str,
    method: &str,
    path: &str,
    credentials: Option<(&str, &str)>,
    body: impl Into<Bytes>,
) -> Result<(u16, serde_json::Value), String> {
    let (status, body) = call_raw(addr, method, path, credentials, body.into()).await?;
    Ok((status, serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null)))
}

/// GETs `path` as `credentials` and returns the body as text (for `/metrics`); a non-200 status is an error.
pub async fn call_text(addr: &str, path: &str, credentials: (&str, &str)) -> Result<String, String> {
    let (status, body) = call_raw(addr, "GET", path, Some(credentials), Bytes::new()).await?;
    if status != 200 {
        return Err(format!("GET {path}: status {status}"));
    }
    String::from_utf8(body.to_vec()).map_err(|e| e.to_string())
}

async fn call_raw(
    addr: &str,
    method: &str,
    path: &str,
    credentials: Option<(&str, &str)>,
    body: Bytes,
) -> Result<(u16, Bytes), String> {
    use base64::Engine;
    let stream = tokio::net::TcpStream::connect(addr).await.map_err(|e| format!("connect {addr}: {e}"))?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.map_err(|e| e.to_string())?;
    tokio::spawn(connection);
    let mut request = Request::builder().method(method).uri(path).header(HOST, addr);
    if let Some((user, password)) = credentials {
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        request = request.header(AUTHORIZATION, format!("Basic {token}"));
    }
    let request = request.body(Full::new(body)).map_err(|e| e.to_string())?;
    let response = sender.send_request(request).await.map_err(|e| e.to_string())?;
    let status = response.status().as_u16();
    let body = response.into_body().collect().await.map_err(|e| e.to_string())?.to_bytes();
    Ok((status, body))
}
