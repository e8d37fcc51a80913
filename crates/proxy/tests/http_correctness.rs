//! RFC 9110/9112 proxy behaviour and bad input: forwarding headers, hop-by-hop removal,
//! HEAD, Expect: 100-continue, upgrades, and every framing/limit refusal with its exact status.

// Helpers outside #[test] fns unwrap too: a panic is the failure report.
#![allow(clippy::unwrap_used)]

mod support;

use std::time::Duration;

use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn one() -> (Vec<Backend>, std::net::SocketAddr, pentaflow_proxy::Proxy) {
    let b = backends(1).await;
    let text = format!(
        "[limits]\nheader_read_timeout = \"400ms\"\nidle_timeout = \"600ms\"\nmax_headers = 20\nmax_header_bytes = 8192\n{}{}",
        service(""),
        backend_tables(&b)
    );
    let (proxy, addr) = start_proxy(&text).await;
    (b, addr, proxy)
}

#[tokio::test]
async fn forwarding_headers_added_hop_by_hop_removed_host_kept() {
    let (_b, addr, _p) = one().await;
    let a = get(
        addr,
        "/echo",
        &[
            ("connection", "x-drop"),
            ("x-drop", "1"),
            ("x-forwarded-for", "198.51.100.9"),
            ("te", "trailers"),
        ],
    )
    .await;
    let body = a.body.to_lowercase();
    assert!(body.contains("host: site.test"), "{body}");
    assert!(
        body.contains("x-forwarded-for: 198.51.100.9, 127.0.0.1"),
        "{body}"
    );
    assert!(body.contains("x-forwarded-proto: http"), "{body}");
    assert!(body.contains("via: 1.1 pentaflow"), "{body}");
    assert!(
        body.contains("forwarded: for=127.0.0.1;proto=http\n")
            && body.contains("x-forwarded-host: site.test"),
        "{body}"
    );
    assert!(
        !body.contains("x-drop") && !body.contains("\nte:"),
        "{body}"
    );
    let hop = get(addr, "/hop", &[]).await;
    assert!(hop.headers.get("x-private").is_none() && hop.headers.get("keep-alive").is_none());
    assert_eq!(hop.headers.get("via").unwrap(), "1.1 pentaflow");
}

#[tokio::test]
async fn absolute_form_uri_becomes_origin_form_with_host() {
    let (_b, addr, _p) = one().await;
    let out = raw(
        addr,
        b"GET http://other.test/echo?q=1 HTTP/1.1\r\nHost: ignored\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    assert!(out.contains("GET /echo?q=1"), "{out}");
    assert!(out.to_lowercase().contains("host: other.test"), "{out}");
}

#[tokio::test]
async fn head_has_no_body_and_keeps_the_connection() {
    let (_b, addr, _p) = one().await;
    let mut c = Client::connect(addr).await;
    let req = http::Request::head("/")
        .header("host", "x")
        .body(http_body_util::Full::new(bytes::Bytes::new()))
        .unwrap();
    let a = c.send(req).await;
    assert_eq!(a.status, 200);
    assert!(a.body.is_empty());
    assert_eq!(c.get("/", &[]).await.status, 200);
}

#[tokio::test]
async fn expect_100_continue_is_answered() {
    let (_b, addr, _p) = one().await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(
        b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n",
    )
    .await
    .unwrap();
    let mut buf = [0u8; 256];
    let n = tokio::time::timeout(Duration::from_secs(3), s.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 100 Continue"));
    s.write_all(b"hello").await.unwrap();
    let rest = read_to_close(&mut s, Duration::from_millis(1500)).await;
    assert!(
        rest.contains("200 OK") && rest.contains("body=hello"),
        "{rest}"
    );
}

#[tokio::test]
async fn chunked_request_body_is_streamed() {
    let (_b, addr, _p) = one().await;
    let out = raw(addr, b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n").await;
    assert!(
        out.starts_with("HTTP/1.1 200") && out.contains("body=abcde"),
        "{out}"
    );
}

#[tokio::test]
async fn upgrade_is_tunnelled() {
    let (_b, addr, _p) = one().await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
        .await
        .unwrap();
    let mut buf = vec![0u8; 1024];
    let n = tokio::time::timeout(Duration::from_secs(3), s.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    let head = String::from_utf8_lossy(&buf[..n]).to_string();
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    assert!(head.to_lowercase().contains("upgrade: echo"), "{head}");
    s.write_all(b"ping-through-tunnel").await.unwrap();
    let n = tokio::time::timeout(Duration::from_secs(3), s.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&buf[..n], b"ping-through-tunnel");
}

async fn status_of(addr: std::net::SocketAddr, request: &[u8]) -> String {
    let out = raw(addr, request).await;
    out.lines().next().unwrap_or("").to_owned()
}

#[tokio::test]
async fn ambiguous_framing_is_refused_with_400_and_closed() {
    let (b, addr, p) = one().await;
    let cases: [&[u8]; 7] = [
        b"GET / HTTP/1.1\r\nHost: a.test\r\nHost: b.test\r\n\r\n",
        b"GET / HTTP/1.1\r\nAccept: */*\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc",
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
        b"GET / HTTP/1.1\r\nHost: x\r\nX-Folded: a\r\n  b\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
    ];
    for case in cases {
        let line = status_of(addr, case).await;
        assert!(
            line.starts_with("HTTP/1.1 400"),
            "{:?} -> {line}",
            String::from_utf8_lossy(case)
        );
    }
    // A smuggled second request must never reach the back-end.
    assert_eq!(b[0].requests.load(std::sync::atomic::Ordering::SeqCst), 0);
    assert!(p.counters().local_4xx >= 2);
}

#[tokio::test]
async fn bad_chunk_size_is_refused_and_closed() {
    let (_b, addr, _p) = one().await;
    let out = raw(addr, b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n").await;
    assert!(out.starts_with("HTTP/1.1 400"), "{out}");
}

#[tokio::test]
async fn oversized_heads_get_431() {
    let (_b, addr, _p) = one().await;
    let big = format!(
        "GET / HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "a".repeat(20_000)
    );
    assert!(status_of(addr, big.as_bytes())
        .await
        .starts_with("HTTP/1.1 431"));
    let mut many = String::from("GET / HTTP/1.1\r\nHost: x\r\n");
    for i in 0..40 {
        many.push_str(&format!("X-H{i}: v\r\n"));
    }
    many.push_str("\r\n");
    assert!(status_of(addr, many.as_bytes())
        .await
        .starts_with("HTTP/1.1 431"));
}

#[tokio::test]
async fn slow_request_head_gets_408_and_idle_connections_close() {
    let (_b, addr, _p) = one().await;
    // Slowloris: half a head, then nothing.
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n").await.unwrap();
    let started = std::time::Instant::now();
    let out = read_to_close(&mut s, Duration::from_secs(5)).await;
    assert!(out.starts_with("HTTP/1.1 408"), "{out}");
    assert!(started.elapsed() < Duration::from_secs(2));
    // An idle keep-alive connection is closed quietly after idle_timeout.
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let out = read_to_close(&mut s, Duration::from_secs(5)).await;
    assert!(
        out.starts_with("HTTP/1.1 200") && !out.contains("408"),
        "{out}"
    );
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(500) && waited < Duration::from_secs(3),
        "{waited:?}"
    );
}

/// Issue 17 item 4: at `max_connections` a new client is neither reset nor closed unanswered
/// (as it was): it waits in the listen backlog and is served once a slot frees.
#[tokio::test]
async fn at_the_connection_cap_a_new_client_waits_and_is_served() {
    let b = backends(1).await;
    let text = format!(
        "[limits]\nmax_connections = 2\n{}{}",
        service(""),
        backend_tables(&b)
    );
    let (p, addr) = start_proxy(&text).await;
    let mut c1 = Client::connect(addr).await;
    assert_eq!(c1.get("/", &[]).await.status, 200);
    let c2 = Client::connect(addr).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let third = tokio::spawn(raw(
        addr,
        b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    ));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!third.is_finished(), "the third client waits at the cap");
    assert!(p.counters().accept_paused >= 1);
    assert_eq!(p.counters().connections_refused, 0);
    drop(c2);
    let out = tokio::time::timeout(Duration::from_secs(5), third)
        .await
        .expect("served once a slot freed")
        .unwrap();
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    assert_eq!(c1.get("/", &[]).await.status, 200, "c1 kept its slot");
}

/// Issue 17 item 4: one client address cannot take every connection: past
/// `max_connections_per_client` its new connection gets a `503` with `Connection: close`
/// (not a reset), counted by reason, while another address is still served.
#[tokio::test]
async fn one_client_address_cannot_take_every_connection() {
    let b = backends(1).await;
    let text = format!(
        "[limits]\nmax_connections = 10\nmax_connections_per_client = 2\n{}{}",
        service(""),
        backend_tables(&b)
    );
    let (p, addr) = start_proxy(&text).await;
    let mut c1 = Client::connect(addr).await;
    let mut c2 = Client::connect(addr).await;
    assert_eq!(c1.get("/", &[]).await.status, 200);
    assert_eq!(c2.get("/", &[]).await.status, 200);
    // The third from 127.0.0.1: refused with a complete answer, whatever it sends.
    let out = raw(addr, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert!(out.starts_with("HTTP/1.1 503"), "{out}");
    assert!(
        out.to_ascii_lowercase().contains("connection: close"),
        "{out}"
    );
    assert!(
        out.ends_with("client address\n"),
        "the whole body arrived: {out}"
    );
    let c = p.counters();
    assert_eq!(c.connections_refused, 1);
    let reason = c
        .local_responses
        .iter()
        .find(|r| r.reason == "client_connection_limit")
        .unwrap();
    assert_eq!((reason.status, reason.count), (503, 1));
    // Another address (127.0.0.2 is loopback too on Linux) still gets in.
    let other = tokio::net::TcpSocket::new_v4().unwrap();
    other.bind("127.0.0.2:0".parse().unwrap()).unwrap();
    let mut other = other.connect(addr).await.unwrap();
    other
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let out = read_to_close(&mut other, Duration::from_secs(5)).await;
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    // When one of the first two closes, the address may open another.
    drop(c2);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut c3 = Client::connect(addr).await;
    assert_eq!(c3.get("/", &[]).await.status, 200);
    assert_eq!(c1.get("/", &[]).await.status, 200);
}

/// A raw back-end for interim responses: on each connection it reads a request head, writes
/// `interim`, waits until `go` fires (if given), then writes `final_head`. With `flood`, it
/// writes `interim` again and again instead, until the proxy hangs up.
async fn interim_backend(
    interim: &'static [u8],
    final_head: &'static [u8],
    mut go: Option<tokio::sync::mpsc::Receiver<()>>,
    flood: bool,
) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") {
                if s.read(&mut byte).await.unwrap_or(0) == 0 {
                    break;
                }
                head.push(byte[0]);
            }
            if flood {
                tokio::spawn(async move { while s.write_all(interim).await.is_ok() {} });
                continue;
            }
            s.write_all(interim).await.unwrap();
            if let Some(go) = go.as_mut() {
                go.recv().await;
            }
            s.write_all(final_head).await.unwrap();
        }
    });
    addr
}

fn backend_at(addr: std::net::SocketAddr) -> String {
    format!("\n[[service.backend]]\nname = \"raw\"\naddress = \"{addr}\"\n")
}

/// Reads from `s` until `buf` holds `end` (or the proxy closes, or 5 s pass: a failure).
async fn read_until(s: &mut TcpStream, buf: &mut Vec<u8>, end: &str) {
    let found = |b: &[u8]| String::from_utf8_lossy(b).contains(end);
    let mut chunk = [0u8; 4096];
    while !found(buf) {
        match tokio::time::timeout(Duration::from_secs(5), s.read(&mut chunk)).await {
            Ok(Ok(n)) if n > 0 => buf.extend_from_slice(&chunk[..n]),
            _ => panic!("no {end:?} in {:?}", String::from_utf8_lossy(buf)),
        }
    }
}

const EARLY_HINTS: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\n\
Link: </style.css>; rel=preload; as=style\r\nConnection: x-hop\r\nX-Hop: 1\r\n\r\n";
const FINAL_OK: &[u8] =
    b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nfinal";

#[tokio::test]
async fn interim_responses_reach_http11_clients_as_they_arrive() {
    let (go, wait) = tokio::sync::mpsc::channel(1);
    let be = interim_backend(EARLY_HINTS, FINAL_OK, Some(wait), false).await;
    let (_p, addr) = start_proxy(&(service("") + &backend_at(be))).await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET /page HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    // The 103 arrives while the back-end still holds its final response back.
    let mut got = Vec::new();
    read_until(&mut s, &mut got, "\r\n\r\n").await;
    let hints = String::from_utf8_lossy(&got).into_owned();
    assert!(hints.starts_with("HTTP/1.1 103 Early Hints\r\n"), "{hints}");
    assert!(
        hints.contains("Link: </style.css>; rel=preload; as=style\r\n"),
        "{hints}"
    );
    assert!(hints.contains("via: 1.1 pentaflow\r\n"), "{hints}");
    assert!(
        !hints.to_lowercase().contains("x-hop") && !hints.contains("100 Continue"),
        "hop-by-hop fields and the back-end's 100 stay behind: {hints}"
    );
    go.send(()).await.unwrap();
    let rest = read_to_close(&mut s, Duration::from_secs(5)).await;
    let all = hints + &rest;
    let final_at = all.find("HTTP/1.1 200 OK\r\n").expect(&all);
    assert!(all.find("103 Early Hints").unwrap() < final_at);
    assert!(all.ends_with("\r\n\r\nfinal"), "{all}");
    assert_eq!(all.matches("HTTP/1.1 ").count(), 2, "{all}");
}

#[tokio::test]
async fn interim_responses_are_not_sent_to_http10_clients() {
    let be = interim_backend(EARLY_HINTS, FINAL_OK, None, false).await;
    let (_p, addr) = start_proxy(&(service("") + &backend_at(be))).await;
    let out = raw(addr, b"GET /page HTTP/1.0\r\nHost: x\r\n\r\n").await;
    assert!(out.starts_with("HTTP/1.1 200 OK\r\n"), "{out}");
    assert!(
        !out.contains("103") && !out.contains("100 Continue"),
        "{out}"
    );
    assert!(out.ends_with("\r\n\r\nfinal"), "{out}");
}

#[tokio::test]
async fn a_backend_sending_interim_responses_forever_gets_a_502() {
    let be = interim_backend(b"HTTP/1.1 102 Processing\r\n\r\n", b"", None, true).await;
    let (p, addr) = start_proxy(&(service("") + &backend_at(be))).await;
    let out = raw(
        addr,
        b"GET /slow HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    let forwarded = out.matches("HTTP/1.1 102 Processing\r\n").count();
    assert!(
        (1..=16).contains(&forwarded),
        "{forwarded} forwarded: {out}"
    );
    let tail = out
        .rsplit("HTTP/1.1 102 Processing\r\nvia: 1.1 pentaflow\r\n\r\n")
        .next()
        .unwrap();
    assert!(tail.starts_with("HTTP/1.1 502 "), "{tail}");
    assert_eq!(p.counters().interim_floods, 1);
    assert_eq!(p.counters().local_5xx, 1);
}

#[tokio::test]
async fn interim_responses_pass_on_a_cdn_service_and_the_page_is_rewritten() {
    const PAGE: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 42\r\n\r\n\
<html><img src=\"/static/img/a.png\"></html>";
    let be = interim_backend(EARLY_HINTS, PAGE, None, false).await;
    let text = format!(
        "{}[service.cdn]\nhost = \"cdn.test\"\nsite_hosts = [\"www.example.com\"]\n{}",
        service(""),
        backend_at(be)
    );
    let (_p, addr) = start_proxy(&text).await;
    let out = raw(
        addr,
        b"GET /p.html HTTP/1.1\r\nHost: www.example.com\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(out.starts_with("HTTP/1.1 103 Early Hints\r\n"), "{out}");
    let final_at = out.find("HTTP/1.1 200 OK\r\n").expect(&out);
    assert!(
        out[final_at..].contains("src=\"https://cdn.test/static/img/a.png\""),
        "{out}"
    );
}

/// Reads one response with a `Content-Length` from a kept-alive connection (5 s at most).
async fn read_one_response(s: &mut TcpStream) -> String {
    let mut out = Vec::new();
    let mut chunk = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        if let Some(end) = out.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&out[..end]).to_ascii_lowercase();
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .map_or(0, |v| v.trim().parse().unwrap());
            if out.len() >= end + 4 + len {
                return String::from_utf8_lossy(&out).into_owned();
            }
        }
        let n = tokio::time::timeout_at(deadline, s.read(&mut chunk))
            .await
            .expect("a response within 5 s")
            .unwrap();
        assert!(n > 0, "closed before a whole response: {out:?}");
        out.extend_from_slice(&chunk[..n]);
    }
}

/// Issue 10 item 2: a keep-alive connection idle past the park delay (100 ms) leaves its serving
/// task and is parked (counted), is served again when its next request comes, is closed by a
/// drain while parked, and a parked connection still closes quietly at `idle_timeout`.
#[tokio::test]
async fn an_idle_connection_is_parked_served_again_and_closed_on_time() {
    let b = backends(1).await;
    let text = format!(
        "[limits]\nidle_timeout = \"2500ms\"\n{}{}",
        service(""),
        backend_tables(&b)
    );
    let (p, addr) = start_proxy(&text).await;
    let request = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";

    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(request).await.unwrap();
    assert!(read_one_response(&mut s).await.starts_with("HTTP/1.1 200"));
    // (start_proxy's own probe may hold a connection too.)
    let open = p.counters().connections_open;
    tokio::time::sleep(Duration::from_millis(1400)).await;
    assert_eq!(
        p.counters().connections_parked,
        1,
        "parked after 1.4 s idle"
    );
    assert_eq!(
        p.counters().connections_open,
        open,
        "a parked connection stays open"
    );
    // Served again from the park, and counted out of it.
    s.write_all(request).await.unwrap();
    assert!(read_one_response(&mut s).await.starts_with("HTTP/1.1 200"));
    assert_eq!(p.counters().connections_parked, 0);
    // Parked again, it closes at idle_timeout from its last request, without a 408.
    let started = std::time::Instant::now();
    let out = read_to_close(&mut s, Duration::from_secs(5)).await;
    let waited = started.elapsed();
    assert!(out.is_empty(), "closed quietly: {out}");
    assert!(
        waited >= Duration::from_millis(2300) && waited < Duration::from_millis(3500),
        "{waited:?}"
    );
    assert_eq!(p.counters().connections_parked, 0);
    assert_eq!(p.counters().connections_open, open - 1);

    // A parked connection is closed by a drain, which then ends at once.
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(request).await.unwrap();
    assert!(read_one_response(&mut s).await.starts_with("HTTP/1.1 200"));
    tokio::time::sleep(Duration::from_millis(1400)).await;
    assert_eq!(p.counters().connections_parked, 1);
    let started = std::time::Instant::now();
    assert!(p.shutdown(Duration::from_secs(5)).await, "a clean drain");
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    assert!(read_to_close(&mut s, Duration::from_secs(2))
        .await
        .is_empty());
    assert_eq!(p.counters().connections_parked, 0);
}
