//! Real back-end web servers and real HTTP clients for the proxy's end-to-end tests.
//! Everything listens on 127.0.0.1 with ports the kernel allocates.

// Test support: a panic is the failure report, so unwrap is the right tool here.
#![allow(dead_code, unreachable_pub, missing_docs, clippy::unwrap_used)]

pub mod pki;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{header, HeaderMap, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use pentaflow_config::{Config, Source};
use pentaflow_proxy::Proxy;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A back-end: answers with its name; counts connections and requests; can be told to fail.
#[derive(Clone)]
pub struct Backend {
    pub name: String,
    pub addr: SocketAddr,
    pub connections: Arc<AtomicUsize>,
    pub requests: Arc<AtomicUsize>,
    /// Status for `/health`.
    pub health: Arc<AtomicU16>,
    /// When set, the back-end reads a request and closes the connection without answering.
    pub drop_requests: Arc<AtomicBool>,
}

impl Backend {
    pub async fn start(name: &str) -> Self {
        Self::start_with(name, None).await
    }

    /// A back-end that speaks HTTPS with this acceptor (for re-encryption tests).
    pub async fn start_with(name: &str, tls: Option<tokio_rustls::TlsAcceptor>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let b = Backend {
            name: name.to_owned(),
            addr: listener.local_addr().unwrap(),
            connections: Arc::default(),
            requests: Arc::default(),
            health: Arc::new(AtomicU16::new(200)),
            drop_requests: Arc::default(),
        };
        let me = b.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                me.connections.fetch_add(1, Ordering::SeqCst);
                let me = me.clone();
                let tls = tls.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req| {
                        let me = me.clone();
                        async move { me.answer(req).await }
                    });
                    let builder = http1::Builder::new();
                    match tls {
                        None => {
                            let conn = builder.serve_connection(TokioIo::new(stream), svc);
                            let _ = conn.with_upgrades().await;
                        }
                        Some(acceptor) => {
                            let Ok(stream) = acceptor.accept(stream).await else {
                                return;
                            };
                            let _ = builder.serve_connection(TokioIo::new(stream), svc).await;
                        }
                    }
                });
            }
        });
        b
    }

    async fn answer(
        &self,
        mut req: Request<Incoming>,
    ) -> Result<Response<Full<Bytes>>, std::io::Error> {
        let path = req.uri().path().to_owned();
        if path == "/health" {
            let code = self.health.load(Ordering::SeqCst);
            return Ok(Response::builder()
                .status(code)
                .body(Full::new(Bytes::from_static(b"h")))
                .unwrap());
        }
        self.requests.fetch_add(1, Ordering::SeqCst);
        if self.drop_requests.load(Ordering::SeqCst) {
            return Err(std::io::Error::other("told to drop"));
        }
        let query = req.uri().query().unwrap_or("").to_owned();
        let mut resp = Response::builder().header("x-backend", &self.name);
        if let Some(ms) = query.strip_prefix("sleep=") {
            tokio::time::sleep(Duration::from_millis(ms.parse().unwrap_or(0))).await;
        }
        match path.as_str() {
            "/echo" => {
                let mut text = format!("{} {}\n", req.method(), req.uri());
                for (k, v) in req.headers() {
                    text.push_str(&format!("{}: {}\n", k, v.to_str().unwrap_or("?")));
                }
                let body = req
                    .into_body()
                    .collect()
                    .await
                    .map(|b| b.to_bytes())
                    .unwrap_or_default();
                text.push_str(&format!("body={}\n", String::from_utf8_lossy(&body)));
                return Ok(resp.body(Full::new(Bytes::from(text))).unwrap());
            }
            "/login" => {
                resp = resp.header(header::SET_COOKIE, "JSESSIONID=s1; Max-Age=600; Path=/");
            }
            "/login-session" => {
                resp = resp.header(header::SET_COOKIE, "JSESSIONID=s2; Path=/");
            }
            "/hop" => {
                resp = resp
                    .header(header::CONNECTION, "x-private")
                    .header("x-private", "secret")
                    .header("keep-alive", "timeout=5");
            }
            "/ws" => {
                let on = hyper::upgrade::on(&mut req);
                tokio::spawn(async move {
                    if let Ok(up) = on.await {
                        let mut io = TokioIo::new(up);
                        let mut buf = [0u8; 64];
                        if let Ok(n) = io.read(&mut buf).await {
                            let _ = io.write_all(&buf[..n]).await;
                        }
                    }
                });
                return Ok(resp
                    .status(StatusCode::SWITCHING_PROTOCOLS)
                    .header(header::CONNECTION, "upgrade")
                    .header(header::UPGRADE, "echo")
                    .body(Full::new(Bytes::new()))
                    .unwrap());
            }
            _ => {}
        }
        // Drain any request body so keep-alive works.
        let body = req
            .into_body()
            .collect()
            .await
            .map(|b| b.to_bytes().len())
            .unwrap_or(0);
        Ok(resp
            .body(Full::new(Bytes::from(format!(
                "{} {} {}",
                self.name, path, body
            ))))
            .unwrap())
    }
}

pub async fn backends(n: usize) -> Vec<Backend> {
    let mut v = Vec::new();
    for i in 1..=n {
        v.push(Backend::start(&format!("web{i}")).await);
    }
    v
}

/// `[[service.backend]]` tables for these back-ends.
pub fn backend_tables(backends: &[Backend]) -> String {
    backends
        .iter()
        .map(|b| {
            format!(
                "\n[[service.backend]]\nname = \"{}\"\naddress = \"{}\"\n",
                b.name, b.addr
            )
        })
        .collect()
}

pub fn config(text: &str) -> Config {
    pentaflow_config::parse(text, Source::Inline("test".into())).unwrap_or_else(|e| panic!("{e}"))
}

/// Starts a proxy for `text` (whose listen address must be 127.0.0.1:0); returns it and its address.
pub async fn start_proxy(text: &str) -> (Proxy, SocketAddr) {
    let proxy = Proxy::start(&config(text)).await.unwrap();
    let addr = *proxy.local_addrs().values().next().unwrap();
    (proxy, addr)
}

/// A service header with the given extra keys, listening on an allocated port.
pub fn service(extra: &str) -> String {
    format!("[node]\naccess_log = false\n\n[[service]]\nname = \"t\"\nlisten = [\"127.0.0.1:0\"]\n{extra}\n")
}

/// A loopback address whose port was free a moment ago (for tests that reload a fixed address),
/// never one this process was given before: the kernel may hand a just-released port out again
/// at once, and two calls in a row then collide (`listen` and `tls_listen` on one port).
pub fn free_addr() -> SocketAddr {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    loop {
        let addr = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let mut given = GIVEN
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if !given.contains(&addr.port()) {
            given.push(addr.port());
            return addr;
        }
    }
}

/// One client keep-alive connection to the proxy.
pub struct Client {
    sender: hyper::client::conn::http1::SendRequest<Full<Bytes>>,
}

/// One HTTP/2 client connection over any stream (e.g. TLS with ALPN h2).
pub async fn h2_client<S>(io: S) -> hyper::client::conn::http2::SendRequest<Full<Bytes>>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (sender, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        TokioIo::new(io),
    )
    .await
    .unwrap();
    tokio::spawn(conn);
    sender
}

pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

impl Answer {
    pub fn backend(&self) -> String {
        self.headers
            .get("x-backend")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default()
    }

    pub fn set_cookie(&self) -> Option<String> {
        self.headers
            .get(header::SET_COOKIE)
            .map(|v| v.to_str().unwrap().to_owned())
    }
}

impl Client {
    pub async fn connect(addr: SocketAddr) -> Self {
        Self::over(TcpStream::connect(addr).await.unwrap()).await
    }

    /// HTTP/1.1 over an already connected stream (e.g. TLS).
    pub async fn over<S>(io: S) -> Self
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
            .await
            .unwrap();
        tokio::spawn(conn);
        Self { sender }
    }

    pub async fn send(&mut self, req: Request<Full<Bytes>>) -> Answer {
        self.sender.ready().await.unwrap();
        let resp = self.sender.send_request(req).await.unwrap();
        let (parts, body) = resp.into_parts();
        let body = body.collect().await.unwrap().to_bytes();
        Answer {
            status: parts.status,
            headers: parts.headers,
            body: String::from_utf8_lossy(&body).into_owned(),
        }
    }

    /// The response head and the raw body bytes (no decoding).
    pub async fn send_raw(&mut self, req: Request<Full<Bytes>>) -> (http::response::Parts, Bytes) {
        self.sender.ready().await.unwrap();
        let resp = self.sender.send_request(req).await.unwrap();
        let (parts, body) = resp.into_parts();
        (parts, body.collect().await.unwrap().to_bytes())
    }

    pub async fn get(&mut self, path: &str, headers: &[(&str, &str)]) -> Answer {
        let mut req = Request::get(path)
            .header(header::HOST, "site.test")
            .body(Full::new(Bytes::new()))
            .unwrap();
        for (k, v) in headers {
            let name = http::HeaderName::from_bytes(k.as_bytes()).unwrap();
            let value = http::HeaderValue::from_str(v).unwrap();
            // A given Host replaces the default one; other headers add up.
            if name == header::HOST {
                req.headers_mut().insert(name, value);
            } else {
                req.headers_mut().append(name, value);
            }
        }
        self.send(req).await
    }
}

/// One request on a new connection.
pub async fn get(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Answer {
    Client::connect(addr).await.get(path, headers).await
}

/// Writes raw bytes and reads what comes back until the proxy closes (or 5 s pass).
pub async fn raw(addr: SocketAddr, bytes: &[u8]) -> String {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(bytes).await.unwrap();
    read_to_close(&mut stream, Duration::from_secs(5)).await
}

pub async fn read_to_close(stream: &mut TcpStream, limit: Duration) -> String {
    let mut out = Vec::new();
    let _ = tokio::time::timeout(limit, stream.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

/// Counts answers per back-end name.
pub fn tally(names: impl IntoIterator<Item = String>) -> HashMap<String, usize> {
    let mut m = HashMap::new();
    for n in names {
        *m.entry(n).or_insert(0) += 1;
    }
    m
}
