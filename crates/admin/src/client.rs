//! The client side of every command that talks to a node's admin API: one bounded exchange
//! ([`exchange`]), and `pentaflow status --admin ADDR`'s `GET /status`, parsed ([`fetch_status`]).
//!
//! Owns: talking to a (possibly remote, possibly other-version) node's admin API with bounded
//! time and memory. Must not: retry or guess; a failure is reported with the address.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HOST};
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::error::AdminError;
use crate::model::StatusDocument;

/// The whole exchange (connect, request, body) must finish in this time; an operator at a
/// terminal should get an error, not a hang, from a wedged node.
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest status document accepted: about 40,000 back-ends' rows, far past any real node,
/// and small enough that a confused peer cannot exhaust the client's memory.
const MAX_STATUS_BODY: usize = 16 * 1024 * 1024;

/// Client used by `pentaflow status --admin ADDR`: GET /status and parse, with the admin
/// token when the node needs one.
pub async fn fetch_status(
    addr: SocketAddr,
    token: Option<&str>,
) -> Result<StatusDocument, AdminError> {
    let (status, body) = exchange(addr, Method::GET, "/status", token, Bytes::new()).await?;
    if status != StatusCode::OK {
        return Err(AdminError::BadStatus {
            addr,
            code: status.as_u16(),
        });
    }
    serde_json::from_slice(&body).map_err(|source| AdminError::Decode { addr, source })
}

/// One exchange with a node's admin API — `method path` with `body` (JSON when not empty) and
/// the admin token when given — answered with the status and the whole body, whatever the
/// status (a refusal's body says why). Bounded in time (10 s for all of it) and
/// in memory (16 MiB); used by every command that talks to a node
/// (`status`, `status --cluster`, `config push`, `backend …`).
pub async fn exchange(
    addr: SocketAddr,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Bytes,
) -> Result<(StatusCode, Bytes), AdminError> {
    match tokio::time::timeout(
        FETCH_TIMEOUT,
        exchange_once(addr, method, path, token, body),
    )
    .await
    {
        Ok(result) => result,
        Err(_elapsed) => Err(AdminError::Timeout {
            addr,
            after: FETCH_TIMEOUT,
        }),
    }
}

async fn exchange_once(
    addr: SocketAddr,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Bytes,
) -> Result<(StatusCode, Bytes), AdminError> {
    let stream = TcpStream::connect(addr)
        .await
        .map_err(|source| AdminError::Io { addr, source })?;
    let http = |source| AdminError::Http { addr, source };
    let (mut sender, connection) = http1::handshake(TokioIo::new(stream)).await.map_err(http)?;
    // The connection task drives the socket; it ends when `sender` is dropped or the peer closes.
    let driver = tokio::spawn(async move {
        if let Err(error) = connection.await {
            tracing::debug!(%addr, %error, "admin client connection ended with an error");
        }
    });
    let mut request = Request::builder()
        .method(method)
        .uri(path)
        .header(HOST, addr.to_string())
        .header(ACCEPT, "application/json");
    if !body.is_empty() {
        request = request.header(CONTENT_TYPE, "application/json");
    }
    if let Some(token) = token {
        request = request.header(AUTHORIZATION, format!("Bearer {token}"));
    }
    let request = request.body(Full::new(body));
    let request = request.map_err(|source| AdminError::Request { addr, source })?;
    let response = sender.send_request(request).await.map_err(http)?;
    let status = response.status();
    let body = Limited::new(response.into_body(), MAX_STATUS_BODY)
        .collect()
        .await
        .map_err(|source| AdminError::Body {
            addr,
            limit: MAX_STATUS_BODY,
            source,
        })?
        .to_bytes();
    drop(sender);
    driver.abort();
    Ok((status, body))
}
