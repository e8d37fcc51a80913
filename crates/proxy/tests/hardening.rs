//! The node's side of the hardening findings (issue 17): a slow client never makes a healthy
//! back-end look dead (17.1), a slow reader is cut off (17.2), a back-end's framing errors
//! reach the client as a correct message or a close (17.3), request bodies have a size limit
//! (17.9), and a stale pooled connection is retried once on a fresh one without counting
//! against the back-end (issue 10.3).

#![allow(clippy::unwrap_used)]

mod support;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What a raw back-end does with request number `n` (from 0) on connection number `c`.
type Script = fn(c: usize, n: usize) -> Option<&'static [u8]>;

/// A back-end speaking raw bytes: reads each request head (and a Content-Length body), then
/// writes what `script` says (and closes if that has `Connection: close`), or closes without
/// an answer when it says `None`.
async fn raw_backend(script: Script) -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let conns = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&conns);
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else {
                return;
            };
            let c = counter.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut buf = Vec::new();
                for n in 0.. {
                    let head_end = loop {
                        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            break i + 4;
                        }
                        let mut chunk = [0u8; 4096];
                        match s.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(k) => buf.extend_from_slice(&chunk[..k]),
                        }
                    };
                    let head = String::from_utf8_lossy(&buf[..head_end]).to_lowercase();
                    let len: usize = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length:"))
                        .and_then(|v| v.trim().parse().ok())
                        .unwrap_or(0);
                    while buf.len() < head_end + len {
                        let mut chunk = [0u8; 4096];
                        match s.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(k) => buf.extend_from_slice(&chunk[..k]),
                        }
                    }
                    buf.drain(..head_end + len);
                    match script(c, n) {
                        Some(answer) => {
                            if s.write_all(answer).await.is_err() {
                                return;
                            }
                            // An answer that says so ends the connection.
                            if answer.windows(17).any(|w| w == b"Connection: close") {
                                return;
                            }
                        }
                        None => return,
                    }
                }
            });
        }
    });
    (addr, conns)
}

fn one_backend(name: &str, addr: SocketAddr) -> String {
    format!("\n[[service.backend]]\nname = \"{name}\"\naddress = \"{addr}\"\n")
}

#[tokio::test]
async fn a_slow_upload_is_timed_as_the_client_and_never_fails_the_backend() {
    let b = backends(1).await;
    let text = format!(
        "[limits]\nresponse_timeout = \"300ms\"\nclient_body_timeout = \"400ms\"\n{}{}",
        service("retries = 0\n[service.passive]\nmax_fails = 1"),
        backend_tables(&b)
    );
    let (proxy, addr) = start_proxy(&text).await;
    // An upload slower than response_timeout, but never silent for client_body_timeout.
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    for _ in 0..5 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        s.write_all(b"ab").await.unwrap();
    }
    let out = read_to_close(&mut s, Duration::from_secs(3)).await;
    assert!(
        out.starts_with("HTTP/1.1 200") && out.ends_with("web1 /up 10"),
        "{out}"
    );
    // Three uploads that stall: each gets 408 and a close, and the back-end stays up.
    for _ in 0..3 {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(b"POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc")
            .await
            .unwrap();
        let started = Instant::now();
        let out = read_to_close(&mut s, Duration::from_secs(3)).await;
        assert!(out.starts_with("HTTP/1.1 408"), "{out}");
        assert!(started.elapsed() < Duration::from_secs(2));
    }
    let row = &proxy.status()[0];
    assert_eq!(row.failures, 0, "{row:?}");
    assert_eq!(get(addr, "/", &[]).await.status, 200);
}

#[tokio::test]
async fn a_response_with_length_and_chunked_is_read_as_chunked_without_the_length() {
    let (backend, _) = raw_backend(|_, _| {
        Some(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n")
    })
    .await;
    let (_proxy, addr) = start_proxy(&(service("") + &one_backend("raw", backend))).await;
    let a = get(addr, "/", &[]).await;
    assert_eq!(a.status, 200);
    assert_eq!(a.body, "hello");
    assert!(
        a.headers.get("content-length").is_none_or(|v| v == "5"),
        "{:?}",
        a.headers
    );
}

#[tokio::test]
async fn a_response_cut_short_closes_the_client_connection_and_is_counted() {
    let (backend, _) = raw_backend(|_, _| {
        Some(b"HTTP/1.1 200 OK\r\nContent-Length: 200\r\nConnection: close\r\n\r\nhello")
    })
    .await;
    let (proxy, addr) = start_proxy(&(service("") + &one_backend("raw", backend))).await;
    let out = raw(addr, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    assert!(out.to_lowercase().contains("content-length: 200"), "{out}");
    // The client got 5 of 200 bytes and a close (raw() returns at the close, well before its
    // 5 s limit), so it knows the body is incomplete.
    assert!(out.ends_with("\r\n\r\nhello"), "{out}");
    assert_eq!(proxy.counters().response_body_errors, 1);
    // A back-end whose framing is invalid gets 502, not a guess.
    let (bad, _) = raw_backend(|_, _| {
        Some(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd")
    })
    .await;
    let (_p2, addr2) = start_proxy(&(service("retries = 0") + &one_backend("bad", bad))).await;
    assert!(raw(
        addr2,
        b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .await
    .starts_with("HTTP/1.1 502"));
}

#[tokio::test]
async fn request_bodies_over_max_body_bytes_get_413_and_a_close() {
    let b = backends(1).await;
    let text = service("max_body_bytes = 10") + &backend_tables(&b);
    let (proxy, addr) = start_proxy(&text).await;
    // A declared length over the limit: refused before any byte reaches the back-end.
    let out = raw(
        addr,
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\n",
    )
    .await;
    assert!(out.starts_with("HTTP/1.1 413"), "{out}");
    assert_eq!(b[0].requests.load(Ordering::SeqCst), 0);
    // A chunked body that grows past it.
    let out = raw(
        addr,
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n8\r\n12345678\r\n8\r\n12345678\r\n0\r\n\r\n",
    )
    .await;
    assert!(out.starts_with("HTTP/1.1 413"), "{out}");
    // At the limit: served.
    let out = raw(
        addr,
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\nConnection: close\r\n\r\n0123456789",
    )
    .await;
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    assert!(proxy.counters().local_4xx >= 2);
    assert_eq!(proxy.status()[0].failures, 0);
}

#[tokio::test]
async fn a_client_that_does_not_read_is_cut_off_after_send_timeout() {
    static BIG: std::sync::LazyLock<&'static [u8]> = std::sync::LazyLock::new(|| {
        let body = vec![b'x'; 32 << 20];
        let mut r =
            format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len()).into_bytes();
        r.extend_from_slice(&body);
        Box::leak(r.into_boxed_slice())
    });
    let (backend, _) = raw_backend(|_, _| Some(*BIG)).await;
    let text = format!(
        "[limits]\nsend_timeout = \"300ms\"\n{}{}",
        service(""),
        one_backend("big", backend)
    );
    let (proxy, addr) = start_proxy(&text).await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    // Read nothing for a while: the proxy's writes stall and it gives up.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let mut got = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut got)).await;
    assert!(got.len() < BIG.len(), "the slow reader got everything");
    assert_eq!(proxy.counters().send_timeouts, 1);
}

#[tokio::test]
async fn a_stale_reused_connection_is_retried_once_on_a_fresh_one_for_any_method() {
    // Every back-end connection answers its first request and closes at the second without
    // a byte: what a back-end that closed an idle keep-alive connection looks like.
    let (backend, conns) = raw_backend(|_, n| {
        (n == 0).then_some(&b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"[..])
    })
    .await;
    let text =
        service("retries = 0\n[service.passive]\nmax_fails = 1") + &one_backend("raw", backend);
    let (proxy, addr) = start_proxy(&text).await;
    let mut client = Client::connect(addr).await;
    assert_eq!(client.get("/", &[]).await.status, 200);
    for _ in 0..3 {
        let req = http::Request::post("/pay")
            .header("host", "x")
            .body(http_body_util::Full::new(bytes::Bytes::from_static(
                b"amount=1",
            )))
            .unwrap();
        let a = client.send(req).await;
        assert_eq!(a.status, 200, "{}", a.body);
    }
    assert_eq!(conns.load(Ordering::SeqCst), 4);
    let row = &proxy.status()[0];
    assert_eq!(row.failures, 0, "{row:?}");
}

fn local(proxy: &pentaflow_proxy::Proxy, status: u16, reason: &str) -> u64 {
    let c = proxy.counters();
    c.local_responses
        .iter()
        .find(|l| l.status == status && l.reason == reason)
        .map_or(0, |l| l.count)
}

#[tokio::test]
async fn every_local_answer_is_counted_by_status_and_reason() {
    let b = backends(1).await;
    let text = format!(
        "[limits]\nheader_read_timeout = \"300ms\"\nresponse_timeout = \"300ms\"\nmax_header_bytes = 2048\n{}{}",
        service("retries = 0\nmax_body_bytes = 10\n[service.passive]\nmax_fails = 100"),
        backend_tables(&b)
    );
    let (proxy, addr) = start_proxy(&text).await;
    // 408: half a head, then nothing.
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n").await.unwrap();
    assert!(read_to_close(&mut s, Duration::from_secs(3))
        .await
        .starts_with("HTTP/1.1 408"));
    // 431, 400 (smuggling), 413, 504.
    let big = format!(
        "GET / HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "a".repeat(4000)
    );
    assert!(raw(addr, big.as_bytes()).await.starts_with("HTTP/1.1 431"));
    assert!(raw(
        addr,
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
    )
    .await
    .starts_with("HTTP/1.1 400"));
    assert!(raw(
        addr,
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\n"
    )
    .await
    .starts_with("HTTP/1.1 413"));
    assert_eq!(get(addr, "/slow?sleep=2000", &[]).await.status, 504);
    // 503: a service whose only back-end refuses connections.
    let dead = free_addr();
    let (p2, addr2) = start_proxy(
        &(service("retries = 0")
            + &format!("\n[[service.backend]]\nname = \"dead\"\naddress = \"{dead}\"\n")),
    )
    .await;
    assert_eq!(get(addr2, "/", &[]).await.status, 503);
    assert_eq!(local(&proxy, 408, "request_timeout"), 1);
    assert_eq!(local(&proxy, 431, "head_too_large"), 1);
    assert_eq!(local(&proxy, 400, "bad_framing"), 1);
    assert_eq!(local(&proxy, 413, "body_too_large"), 1);
    assert_eq!(local(&proxy, 504, "gateway_timeout"), 1);
    assert_eq!(local(&p2, 503, "no_backend"), 1);
    let c = proxy.counters();
    assert_eq!(c.local_4xx, 4);
    assert_eq!(c.local_5xx, 1);
}
