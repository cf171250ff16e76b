//! `GET` of a Docker Engine API path as plain JSON, for the fields bollard's typed models do not
//! have: the API's task objects carry `NetworksAttachments` (each task's addresses), which the
//! API's published schema, and so bollard's `Task`, leaves out. One HTTP/1.1 request on a fresh
//! unix-socket connection, through hyper (the client bollard itself runs on).

use std::path::Path;

use http_body_util::{BodyExt as _, Empty};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;

#[derive(Debug, thiserror::Error)]
pub enum RawError {
    #[error("GET {path}: {message}")]
    Transport { path: String, message: String },
    #[error("GET {path}: HTTP {status}: {body}")]
    Status { path: String, status: u16, body: String },
    #[error("GET {path}: the answer is not JSON: {source}")]
    Json { path: String, source: serde_json::Error },
}

/// `GET /v{version}{path}` on the daemon at `socket`, as JSON. `path` starts with `/` and
/// carries its query string, already encoded.
pub async fn get_json(socket: &Path, version: &str, path: &str) -> Result<serde_json::Value, RawError> {
    let full = format!("/v{version}{path}");
    let transport = |e: &dyn std::fmt::Display| RawError::Transport { path: full.clone(), message: e.to_string() };
    let stream = real_tokio::net::UnixStream::connect(socket).await.map_err(|e| transport(&e))?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.map_err(|e| transport(&e))?;
    let driver = real_tokio::spawn(connection);
    let request = hyper::Request::get(full.as_str())
        .header(hyper::header::HOST, "docker")
        .body(Empty::<Bytes>::new())
        .map_err(|e| transport(&e))?;
    let response = sender.send_request(request).await.map_err(|e| transport(&e))?;
    let status = response.status().as_u16();
    let body = response.into_body().collect().await.map_err(|e| transport(&e))?.to_bytes();
    driver.abort();
    if status != 200 {
        return Err(RawError::Status { path: full, status, body: String::from_utf8_lossy(&body).trim().to_string() });
    }
    serde_json::from_slice(&body).map_err(|source| RawError::Json { path: full, source })
}
