//! HTTPS end to end: SNI certificate choice, ALPN h2 and http/1.1, persistence identical over
//! HTTP and HTTPS, resumption on another instance sharing the ticket keys, reload of
//! certificates, the HTTP→HTTPS redirect, and bad TLS input closed and counted.

// Helpers outside #[test] fns unwrap too: a panic is the failure report.
#![allow(clippy::unwrap_used)]

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use support::pki::{acceptor, connect, Leaf, Pki};
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const KEY_A: &str = "1111111111111111111111111111111111111111111111111111111111111111";

/// A service with a plain and a TLS listener (fixed free ports) and the given certificates.
fn tls_service(
    http: SocketAddr,
    https: SocketAddr,
    certs: &[&Leaf],
    extra: &str,
    tls_extra: &str,
) -> String {
    let mut text = format!(
        "[node]\naccess_log = false\n[tls_tickets]\nkeys = [\"{KEY_A}\"]\n\n[[service]]\nname = \"t\"\nlisten = [\"{http}\"]\ntls_listen = [\"{https}\"]\n{extra}\n[service.tls]\n{tls_extra}\n"
    );
    for c in certs {
        text.push_str(&format!(
            "[[service.tls.certificate]]\ncert = \"{}\"\nkey = \"{}\"\n",
            c.cert.display(),
            c.key.display()
        ));
    }
    text
}

async fn peer_cert(addr: SocketAddr, pki: &Pki, sni: &str) -> Option<Vec<u8>> {
    let tls = connect(addr, &pki.client(&[b"http/1.1"], false), sni)
        .await
        .ok()?;
    Some(tls.get_ref().1.peer_certificates()?[0].to_vec())
}

#[tokio::test]
async fn certificates_are_chosen_by_sni_with_ecdsa_and_rsa_keys() {
    let pki = Pki::new("sni");
    let a = pki.leaf("a", &["a.test"], false);
    let b = pki.leaf("b", &["b.test", "*.wild.test"], true);
    let be = backends(1).await;
    let (http, https) = (free_addr(), free_addr());
    let (_p, _) =
        start_proxy(&(tls_service(http, https, &[&a, &b], "", "") + &backend_tables(&be))).await;
    assert_eq!(
        peer_cert(https, &pki, "a.test").await.unwrap(),
        a.der.to_vec()
    );
    assert_eq!(
        peer_cert(https, &pki, "b.test").await.unwrap(),
        b.der.to_vec()
    );
    assert_eq!(
        peer_cert(https, &pki, "x.wild.test").await.unwrap(),
        b.der.to_vec()
    );
    // Unknown SNI: the default (first) certificate; the client then rejects the name itself.
    assert!(peer_cert(https, &pki, "unknown.test").await.is_none());

    let (http2, https2) = (free_addr(), free_addr());
    let refuse =
        tls_service(http2, https2, &[&a], "", "unknown_sni = \"refuse\"") + &backend_tables(&be);
    let (p2, _) = start_proxy(&refuse).await;
    assert!(peer_cert(https2, &pki, "a.test").await.is_some());
    assert!(peer_cert(https2, &pki, "other.test").await.is_none());
    assert!(p2.counters().tls_failed >= 1);
}

#[tokio::test]
async fn alpn_serves_http2_and_http11_and_backends_see_https() {
    let pki = Pki::new("alpn");
    let a = pki.leaf("a", &["a.test"], false);
    let be = backends(2).await;
    let (http, https) = (free_addr(), free_addr());
    let (proxy, _) = start_proxy(
        &(tls_service(http, https, &[&a], "policy = \"round_robin\"", "") + &backend_tables(&be)),
    )
    .await;

    let tls = connect(https, &pki.client(&[b"h2", b"http/1.1"], false), "a.test")
        .await
        .unwrap();
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let mut h2 = h2_client(tls).await;
    let mut seen = Vec::new();
    for _ in 0..4 {
        let req = http::Request::get("https://a.test/echo")
            .body(http_body_util::Full::new(bytes::Bytes::new()))
            .unwrap();
        let resp = h2.send_request(req).await.unwrap();
        assert_eq!(resp.version(), http::Version::HTTP_2);
        seen.push(resp.headers()["x-backend"].to_str().unwrap().to_owned());
        let body = http_body_util::BodyExt::collect(resp.into_body())
            .await
            .unwrap()
            .to_bytes();
        let text = String::from_utf8_lossy(&body).to_lowercase();
        assert!(text.contains("x-forwarded-proto: https"), "{text}");
        assert!(
            text.contains("host: a.test"),
            "back-ends get HTTP/1.1 with Host: {text}"
        );
    }
    assert_eq!(
        tally(seen).len(),
        2,
        "HTTP/2 streams are scheduled per request"
    );

    let tls = connect(https, &pki.client(&[b"http/1.1"], false), "a.test")
        .await
        .unwrap();
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
    let mut h1 = Client::over(tls).await;
    assert_eq!(h1.get("/", &[]).await.status, 200);
    let c = proxy.counters();
    assert_eq!(c.http2_connections, 1);
    assert_eq!(c.tls_handshakes, 2);
    assert_eq!(c.tls13, 2);
}

#[tokio::test]
async fn cookie_persistence_is_the_same_over_http_and_https() {
    let pki = Pki::new("cookie");
    let a = pki.leaf("a", &["a.test"], false);
    let be = backends(3).await;
    let (http, https) = (free_addr(), free_addr());
    let cookie = "persistence = \"cookie\"\n[service.cookie]\nsecret = \"0123456789abcdef-tls\"\n";
    let text = tls_service(http, https, &[&a], cookie, "") + &backend_tables(&be);
    let (_p, _) = start_proxy(&text).await;
    let first = get(http, "/", &[]).await;
    let set = first.set_cookie().unwrap();
    assert!(!set.contains("Secure"), "over HTTP: {set}");
    let pair = set.split(';').next().unwrap().to_owned();
    for _ in 0..6 {
        let tls = connect(https, &pki.client(&[b"http/1.1"], false), "a.test")
            .await
            .unwrap();
        let a = Client::over(tls).await.get("/", &[("cookie", &pair)]).await;
        assert_eq!(
            a.backend(),
            first.backend(),
            "http → https keeps the back-end"
        );
    }
    let tls = connect(https, &pki.client(&[b"http/1.1"], false), "a.test")
        .await
        .unwrap();
    let fresh = Client::over(tls).await.get("/", &[]).await;
    assert!(
        fresh.set_cookie().unwrap().contains("Secure"),
        "injected over HTTPS: Secure"
    );
}

async fn resumed_on_b(tls12: bool) {
    let pki = Pki::new(if tls12 { "res12" } else { "res13" });
    let a = pki.leaf("a", &["a.test"], false);
    let be = backends(1).await;
    let (h1, s1, h2, s2) = (free_addr(), free_addr(), free_addr(), free_addr());
    let (_node_a, _) =
        start_proxy(&(tls_service(h1, s1, &[&a], "", "") + &backend_tables(&be))).await;
    let (node_b, _) =
        start_proxy(&(tls_service(h2, s2, &[&a], "", "") + &backend_tables(&be))).await;
    let client = pki.client(&[b"http/1.1"], tls12);
    let mut first = connect(s1, &client, "a.test").await.unwrap();
    assert_eq!(
        first.get_ref().1.handshake_kind(),
        Some(rustls::HandshakeKind::Full)
    );
    // TLS 1.3 tickets arrive after the handshake: read a response so they are processed.
    first
        .write_all(b"GET / HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut sink = Vec::new();
    let _ = first.read_to_end(&mut sink).await;
    let second = connect(s2, &client, "a.test").await.unwrap();
    assert_eq!(
        second.get_ref().1.handshake_kind(),
        Some(rustls::HandshakeKind::Resumed),
        "resumed on the other node"
    );
    drop(second);
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(node_b.counters().tls_resumed, 1);
    // A node with other ticket keys cannot resume it: a full handshake.
    let (h3, s3) = (free_addr(), free_addr());
    let other =
        tls_service(h3, s3, &[&a], "", "").replace(KEY_A, &"2".repeat(64)) + &backend_tables(&be);
    let (_node_c, _) = start_proxy(&other).await;
    let third = connect(s3, &client, "a.test").await.unwrap();
    assert_eq!(
        third.get_ref().1.handshake_kind(),
        Some(rustls::HandshakeKind::Full)
    );
}

#[tokio::test]
async fn tls13_session_resumes_on_another_node_with_the_shared_ticket_keys() {
    resumed_on_b(false).await;
}

#[tokio::test]
async fn tls12_session_resumes_on_another_node_with_the_shared_ticket_keys() {
    resumed_on_b(true).await;
}

#[tokio::test]
async fn bad_tls_input_is_closed_and_counted() {
    let pki = Pki::new("bad");
    let a = pki.leaf("a", &["a.test"], false);
    let be = backends(1).await;
    let (http, https) = (free_addr(), free_addr());
    let text = tls_service(
        http,
        https,
        &[&a],
        "",
        "handshake_timeout = \"300ms\"\nmax_handshakes = 3",
    ) + &backend_tables(&be);
    let (proxy, _) = start_proxy(&text).await;
    // Plain HTTP to the TLS port, and garbage.
    assert!(
        raw(https, b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n")
            .await
            .len()
            < 64
    );
    assert!(
        raw(https, &[0x16, 0x03, 0x01, 0xff, 0xff, 1, 2, 3, 4, 5])
            .await
            .len()
            < 64
    );
    // A truncated ClientHello that then stalls: closed after the handshake timeout.
    let mut stalled = tokio::net::TcpStream::connect(https).await.unwrap();
    stalled
        .write_all(&[0x16, 0x03, 0x01, 0x00, 0x40, 0x01])
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let _ = read_to_close(&mut stalled, Duration::from_secs(5)).await;
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "stalled handshake closed after the timeout"
    );
    // A handshake flood beyond max_handshakes: the extra connections are closed at once.
    let mut held = Vec::new();
    for _ in 0..6 {
        let mut s = tokio::net::TcpStream::connect(https).await.unwrap();
        s.write_all(&[0x16, 0x03, 0x01]).await.unwrap();
        held.push(s);
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let c = proxy.counters();
    assert!(c.tls_over_limit >= 3, "{c:?}");
    assert!(c.tls_failed >= 3, "{c:?}");
    drop(held);
    // The port still serves real clients.
    let tls = connect(https, &pki.client(&[b"http/1.1"], false), "a.test")
        .await
        .unwrap();
    assert_eq!(Client::over(tls).await.get("/", &[]).await.status, 200);
}

#[tokio::test]
async fn reload_swaps_certificates_without_dropping_connections() {
    let pki = Pki::new("reload");
    let a = pki.leaf("a", &["a.test"], false);
    let a2 = pki.leaf("a2", &["a.test"], true);
    let be = backends(1).await;
    let (http, https) = (free_addr(), free_addr());
    let (proxy, _) =
        start_proxy(&(tls_service(http, https, &[&a], "", "") + &backend_tables(&be))).await;
    let tls = connect(https, &pki.client(&[b"http/1.1"], false), "a.test")
        .await
        .unwrap();
    let mut open = Client::over(tls).await;
    assert_eq!(open.get("/", &[]).await.status, 200);
    proxy
        .reload(&config(
            &(tls_service(http, https, &[&a2], "", "") + &backend_tables(&be)),
        ))
        .await
        .unwrap();
    assert_eq!(
        peer_cert(https, &pki, "a.test").await.unwrap(),
        a2.der.to_vec(),
        "new connections get the new certificate"
    );
    assert_eq!(
        open.get("/", &[]).await.status,
        200,
        "the open connection survived the reload"
    );
    // A broken certificate file is refused and the running configuration kept.
    std::fs::write(&a2.cert, "not a certificate").unwrap();
    let err = proxy
        .reload(&config(
            &(tls_service(http, https, &[&a2], "", "") + &backend_tables(&be)),
        ))
        .await;
    let message = format!("{:#}", anyhow_like(err.unwrap_err()));
    assert!(
        message.contains(&a2.cert.display().to_string()),
        "{message}"
    );
    assert_eq!(
        peer_cert(https, &pki, "a.test").await.unwrap(),
        a2.der.to_vec()
    );
}

fn anyhow_like(e: pentaflow_proxy::ProxyError) -> String {
    let mut out = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

#[tokio::test]
async fn plain_http_can_be_redirected_to_https() {
    let pki = Pki::new("redirect");
    let a = pki.leaf("a", &["a.test"], false);
    let be = backends(1).await;
    let (http, https) = (free_addr(), free_addr());
    let (_p, _) = start_proxy(
        &(tls_service(http, https, &[&a], "redirect_https = true", "") + &backend_tables(&be)),
    )
    .await;
    let out = raw(
        http,
        b"GET /shop?id=7 HTTP/1.1\r\nHost: a.test:8080\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(out.starts_with("HTTP/1.1 308"), "{out}");
    assert!(
        out.to_lowercase().contains(&format!(
            "location: https://a.test:{}/shop?id=7",
            https.port()
        )),
        "{out}"
    );
}

#[tokio::test]
async fn backends_can_be_spoken_to_over_verified_tls() {
    let pki = Pki::new("upstream");
    let leaf = pki.leaf("backend", &["backend.test"], false);
    let secure = Backend::start_with("secure", Some(acceptor(&leaf))).await;
    let tables = backend_tables(std::slice::from_ref(&secure));
    let with = |tls: &str| {
        format!(
            "{}\n[service.backend_tls]\n{tls}\n{tables}",
            service("retries = 0")
        )
    };

    let (_p, addr) = start_proxy(&with(&format!(
        "ca_file = \"{}\"\nserver_name = \"backend.test\"",
        pki.ca_file.display()
    )))
    .await;
    let a = get(addr, "/echo", &[]).await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.backend(), "secure");

    // Verification on, but the name does not match: the back-end is not trusted.
    let (_p, addr) = start_proxy(&with(&format!(
        "ca_file = \"{}\"\nserver_name = \"other.test\"",
        pki.ca_file.display()
    )))
    .await;
    assert_eq!(get(addr, "/", &[]).await.status, 503);

    // Verification off (self-signed back-ends on a trusted network): accepted.
    let (_p, addr) = start_proxy(&with("verify = false")).await;
    assert_eq!(get(addr, "/", &[]).await.status, 200);
}

/// A raw back-end that answers every request with a `103 Early Hints` and then a `200`.
async fn early_hints_backend() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (mut s, _) = listener.accept().await.unwrap();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                loop {
                    while !head.ends_with(b"\r\n\r\n") {
                        if s.read(&mut byte).await.unwrap_or(0) == 0 {
                            return;
                        }
                        head.push(byte[0]);
                    }
                    head.clear();
                    let answer = b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n\
HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfinal";
                    if s.write_all(answer).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

#[tokio::test]
async fn early_hints_reach_https_http11_clients_and_http2_clients_get_the_final_response() {
    let pki = Pki::new("hints");
    let a = pki.leaf("a", &["a.test"], false);
    let be = early_hints_backend().await;
    let (http, https) = (free_addr(), free_addr());
    let backend = format!("\n[[service.backend]]\nname = \"raw\"\naddress = \"{be}\"\n");
    let (_proxy, _) = start_proxy(&(tls_service(http, https, &[&a], "", "") + &backend)).await;

    // HTTP/1.1 over TLS: the hints come first (flushed through rustls), then the final head.
    let mut tls = connect(https, &pki.client(&[b"http/1.1"], false), "a.test")
        .await
        .unwrap();
    tls.write_all(b"GET / HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), tls.read_to_end(&mut out)).await;
    let out = String::from_utf8_lossy(&out);
    assert!(out.starts_with("HTTP/1.1 103 Early Hints\r\n"), "{out}");
    assert!(
        out.contains("\r\n\r\nHTTP/1.1 200 OK\r\n") && out.ends_with("final"),
        "{out}"
    );

    // HTTP/2: hyper's server cannot send a 1xx; the hints are dropped, the answer arrives.
    let tls = connect(https, &pki.client(&[b"h2"], false), "a.test")
        .await
        .unwrap();
    let mut h2 = h2_client(tls).await;
    let req = http::Request::get("https://a.test/")
        .body(http_body_util::Full::new(bytes::Bytes::new()))
        .unwrap();
    let resp = h2.send_request(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    let body = http_body_util::BodyExt::collect(resp.into_body())
        .await
        .unwrap()
        .to_bytes();
    assert_eq!(&body[..], b"final");
}
