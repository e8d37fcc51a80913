//! What the binary's end-to-end tests share: a `pentaflow` child process that is always
//! stopped, local ports that are never handed out twice, scratch directories, and a real
//! HTTP back-end that names itself.
//!
//! Each test file is its own crate and uses only part of this kit, hence the `dead_code`
//! allowance below: an unused helper here is not dead code of the product.
#![allow(dead_code)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;

/// A child process (a `pentaflow serve` or `demo`) killed and reaped when the test ends, pass
/// or fail, so no test leaves a node running.
pub(crate) struct Running(pub(crate) Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Running {
    /// Sends `sig` (a name `kill` knows: `HUP`, `TERM`…) to the child.
    pub(crate) fn signal(&self, sig: &str) {
        let status = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.0.id().to_string())
            .status()
            .unwrap();
        assert!(status.success(), "kill -{sig} {}", self.0.id());
    }

    /// Waits for the child to exit, failing the test after `limit`.
    pub(crate) fn wait_exit(&mut self, limit: Duration) -> ExitStatus {
        let until = Instant::now() + limit;
        loop {
            if let Some(status) = self.0.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < until, "process did not exit in {limit:?}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// A free local address. Never the same port twice in one test binary: the kernel may hand a
/// just-released port out again, and two listeners of one test (or of two tests running at
/// once) must not be given the same one.
pub(crate) fn free_addr() -> SocketAddr {
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

/// An empty scratch directory for this test process.
pub(crate) fn temp_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("pentaflow-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A real HTTP/1.1 back-end (hyper) that answers every request with its name, as the body
/// and in `x-backend`.
pub(crate) async fn named_backend(name: &'static str) -> SocketAddr {
    named_backend_on("127.0.0.1:0".parse().unwrap(), name).await
}

/// [`named_backend`] on a chosen address (e.g. another loopback address at a shared port).
pub(crate) async fn named_backend_on(at: SocketAddr, name: &'static str) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind(at).await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                let svc = service_fn(move |_req| async move {
                    Ok::<_, Infallible>(
                        http::Response::builder()
                            .header("x-backend", name)
                            .body(Full::new(Bytes::from(name)))
                            .unwrap(),
                    )
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    addr
}

/// Waits until something accepts connections on `addr` (at most 20 s).
pub(crate) async fn wait_listening(addr: SocketAddr) {
    let until = Instant::now() + Duration::from_secs(20);
    while tokio::net::TcpStream::connect(addr).await.is_err() {
        assert!(Instant::now() < until, "{addr} never started listening");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// One answer read whole: its status, its fields and its body.
pub(crate) struct Answer {
    pub(crate) status: u16,
    pub(crate) headers: http::HeaderMap,
    pub(crate) body: Bytes,
}

impl Answer {
    /// The value of field `name` (empty when absent or not text).
    pub(crate) fn field(&self, name: &str) -> String {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    }
}

/// One GET of `path` on a new HTTP/1.1 connection to `addr` with the extra `fields`, read to
/// its end; `Err` says which step failed (connect, handshake, request or body).
pub(crate) async fn get_once(
    addr: SocketAddr,
    path: &str,
    fields: &[(&str, &str)],
) -> Result<Answer, String> {
    use http_body_util::BodyExt;

    let stream = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    tokio::spawn(conn);
    let mut req = http::Request::get(path);
    for (name, value) in fields {
        req = req.header(*name, *value);
    }
    let req = req
        .body(Full::new(Bytes::new()))
        .map_err(|e| format!("request: {e}"))?;
    let resp = sender
        .send_request(req)
        .await
        .map_err(|e| format!("request: {e}"))?;
    let status = resp.status().as_u16();
    let (parts, body) = resp.into_parts();
    let body = body
        .collect()
        .await
        .map_err(|e| format!("body: {e}"))?
        .to_bytes();
    Ok(Answer {
        status,
        headers: parts.headers,
        body,
    })
}
