//! HTTP/2 glitch floods (issue 17 item 5) against a real node over TLS with ALPN h2: a client
//! speaking raw frames floods SETTINGS and PING (and PRIORITY / empty DATA) and must get
//! `GOAWAY ENHANCE_YOUR_CALM` and a closed connection, counted; an ordinary HTTP/2 client
//! (hyper's, and a raw one sending a few PINGs) is served as before.

// Helpers outside #[test] fns unwrap too: a panic is the failure report.
#![allow(clippy::unwrap_used)]

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use support::pki::{connect, Pki};
use support::*;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const SETTINGS: u8 = 0x4;
const PING: u8 = 0x6;
const GOAWAY: u8 = 0x7;
const HEADERS: u8 = 0x1;
const DATA: u8 = 0x0;
const PRIORITY: u8 = 0x2;
const ACK: u8 = 0x1;

fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let mut f = u32::to_be_bytes(payload.len() as u32)[1..].to_vec();
    f.extend_from_slice(&[kind, flags]);
    f.extend_from_slice(&stream.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// `GET https://a.test/` on stream 1 with HPACK static-table entries and one literal.
fn get_request(stream: u32) -> Vec<u8> {
    let mut block = vec![0x82, 0x87, 0x84, 0x41, 6];
    block.extend_from_slice(b"a.test");
    frame(HEADERS, 0x4 | 0x1, stream, &block)
}

struct Frame {
    kind: u8,
    flags: u8,
    stream: u32,
    payload: Vec<u8>,
}

/// The next frame, or `None` at EOF / a reset.
async fn read_frame<R: AsyncRead + Unpin>(r: &mut R) -> Option<Frame> {
    let mut h = [0u8; 9];
    r.read_exact(&mut h).await.ok()?;
    let len = u32::from_be_bytes([0, h[0], h[1], h[2]]) as usize;
    let mut payload = vec![0; len];
    r.read_exact(&mut payload).await.ok()?;
    Some(Frame {
        kind: h[3],
        flags: h[4],
        stream: u32::from_be_bytes([h[5], h[6], h[7], h[8]]) & 0x7fff_ffff,
        payload,
    })
}

fn tls_config(https: SocketAddr, pki: &Pki, limits: &str, be: &[Backend]) -> String {
    let a = pki.leaf("a", &["a.test"], false);
    format!(
        "[node]\naccess_log = false\n[limits]\n{limits}\n\n[[service]]\nname = \"t\"\ntls_listen = [\"{https}\"]\n\n[service.tls]\n[[service.tls.certificate]]\ncert = \"{}\"\nkey = \"{}\"\n{}",
        a.cert.display(),
        a.key.display(),
        backend_tables(be)
    )
}

/// Floods `flood` after the preface; returns the GOAWAY's error code and whether the
/// connection then ended, or `None` if no GOAWAY came within 10 s.
async fn flood_and_watch(https: SocketAddr, pki: &Pki, flood: Vec<u8>) -> Option<(u32, bool)> {
    let tls = connect(https, &pki.client(&[b"h2"], false), "a.test")
        .await
        .unwrap();
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (mut rd, mut wr) = tokio::io::split(tls);
    let mut start = PREFACE.to_vec();
    start.extend(frame(SETTINGS, 0, 0, &[]));
    wr.write_all(&start).await.unwrap();
    // The writer keeps going after the node stops reading; it may fail then, which is fine.
    let writer = tokio::spawn(async move {
        let _ = wr.write_all(&flood).await;
        let _ = wr.flush().await;
        wr
    });
    let watch = async {
        while let Some(f) = read_frame(&mut rd).await {
            if f.kind == GOAWAY {
                let code = u32::from_be_bytes(f.payload[4..8].try_into().unwrap());
                // After the GOAWAY: nothing but the end of the connection.
                let mut rest = Vec::new();
                let ended = tokio::time::timeout(Duration::from_secs(5), rd.read_to_end(&mut rest))
                    .await
                    .is_ok();
                return Some((code, ended));
            }
        }
        None
    };
    let seen = tokio::time::timeout(Duration::from_secs(10), watch)
        .await
        .ok()
        .flatten();
    writer.abort();
    seen
}

fn settings_and_pings(n: usize) -> Vec<u8> {
    let mut flood = Vec::new();
    for i in 0..n {
        flood.extend(frame(SETTINGS, 0, 0, &[]));
        flood.extend(frame(PING, 0, 0, &(i as u64).to_be_bytes()));
    }
    flood
}

#[tokio::test]
async fn settings_and_ping_floods_get_goaway_enhance_your_calm_and_a_close() {
    let pki = Pki::new("h2flood");
    let be = backends(1).await;
    let https = free_addr();
    // The default threshold (1000 per 10 s).
    let (proxy, _) = start_proxy(&tls_config(https, &pki, "", &be)).await;

    let seen = flood_and_watch(https, &pki, settings_and_pings(5000)).await;
    assert_eq!(
        seen,
        Some((0xb, true)),
        "GOAWAY ENHANCE_YOUR_CALM then the close"
    );
    let seen = flood_and_watch(https, &pki, {
        let mut f = Vec::new();
        for _ in 0..2000 {
            f.extend(frame(PING, 0, 0, &[1; 8]));
        }
        f
    })
    .await;
    assert_eq!(seen, Some((0xb, true)), "a PING flood alone");
    assert_eq!(proxy.counters().h2_glitch_closures, 2);
}

#[tokio::test]
async fn priority_and_empty_data_floods_trip_a_configured_threshold() {
    let pki = Pki::new("h2flood2");
    let be = backends(1).await;
    let https = free_addr();
    let (proxy, _) = start_proxy(&tls_config(
        https,
        &pki,
        "h2_glitch_threshold = 50\nh2_glitch_window = \"60s\"",
        &be,
    ))
    .await;
    let mut prio = Vec::new();
    for i in 0..200u32 {
        prio.extend(frame(PRIORITY, 0, 2 * i + 1, &[0, 0, 0, 0, 16]));
    }
    assert_eq!(flood_and_watch(https, &pki, prio).await, Some((0xb, true)));
    // An upload that never ends, in empty DATA frames.
    let mut empty = frame(HEADERS, 0x4, 1, &{
        let mut b = vec![0x83, 0x87, 0x84, 0x41, 6];
        b.extend_from_slice(b"a.test");
        b
    });
    for _ in 0..200 {
        empty.extend(frame(DATA, 0, 1, &[]));
    }
    assert_eq!(flood_and_watch(https, &pki, empty).await, Some((0xb, true)));
    assert_eq!(proxy.counters().h2_glitch_closures, 2);
}

#[tokio::test]
async fn ordinary_http2_clients_are_not_affected() {
    let pki = Pki::new("h2calm");
    let be = backends(2).await;
    let https = free_addr();
    let (proxy, _) = start_proxy(&tls_config(https, &pki, "h2_glitch_threshold = 50", &be)).await;

    // hyper's client: many requests on one connection (SETTINGS exchange, WINDOW_UPDATEs, bodies).
    let tls = connect(https, &pki.client(&[b"h2"], false), "a.test")
        .await
        .unwrap();
    let mut h2 = h2_client(tls).await;
    for _ in 0..200 {
        let req = http::Request::get("https://a.test/echo")
            .body(http_body_util::Full::new(bytes::Bytes::new()))
            .unwrap();
        let resp = h2.send_request(req).await.unwrap();
        assert_eq!(resp.status(), 200);
        http_body_util::BodyExt::collect(resp.into_body())
            .await
            .unwrap();
    }

    // A raw client with a few keepalive PINGs (below the threshold): every one answered, and
    // a request on the same connection still served.
    let tls = connect(https, &pki.client(&[b"h2"], false), "a.test")
        .await
        .unwrap();
    let (mut rd, mut wr) = tokio::io::split(tls);
    let mut out = PREFACE.to_vec();
    out.extend(frame(SETTINGS, 0, 0, &[]));
    for i in 0..40u64 {
        out.extend(frame(PING, 0, 0, &i.to_be_bytes()));
    }
    out.extend(get_request(1));
    wr.write_all(&out).await.unwrap();
    let (mut pongs, mut answered) = (0, false);
    let read = async {
        while let Some(f) = read_frame(&mut rd).await {
            match f.kind {
                SETTINGS if f.flags & ACK == 0 => {
                    wr.write_all(&frame(SETTINGS, ACK, 0, &[])).await.unwrap();
                }
                PING if f.flags & ACK != 0 => pongs += 1,
                HEADERS if f.stream == 1 => answered = true,
                GOAWAY => panic!("GOAWAY to an ordinary client"),
                _ => {}
            }
            if pongs == 40 && answered {
                return;
            }
        }
        panic!("connection closed: {pongs} PONGs, answered {answered}");
    };
    tokio::time::timeout(Duration::from_secs(10), read)
        .await
        .unwrap();
    assert_eq!(proxy.counters().h2_glitch_closures, 0);
}
