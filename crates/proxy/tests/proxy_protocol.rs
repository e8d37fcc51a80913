//! The PROXY protocol (issue 15 item 4) over real sockets: `accept_proxy` listeners read a v1
//! or v2 header and use the address it carries as the client's (X-Forwarded-For, the
//! per-client limit), refuse missing, malformed, over-long, late and untrusted headers by
//! closing (counted); `send_proxy` services write the header first on each back-end
//! connection (a raw back-end checks its bytes), pool per client connection, and health
//! checks send LOCAL/UNKNOWN.

#![allow(clippy::unwrap_used)]

mod support;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const V2_SIG: &[u8] = b"\r\n\r\n\0\r\nQUIT\n";

/// A v2 PROXY header for a TCP over IPv4 connection, built by hand (not by the crate under
/// test), with `tlv` appended to the address block.
fn v2_tcp4(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16, tlv: &[u8]) -> Vec<u8> {
    let mut h = V2_SIG.to_vec();
    h.extend_from_slice(&[0x21, 0x11]);
    h.extend_from_slice(&u16::try_from(12 + tlv.len()).unwrap().to_be_bytes());
    h.extend_from_slice(&src);
    h.extend_from_slice(&dst);
    h.extend_from_slice(&sport.to_be_bytes());
    h.extend_from_slice(&dport.to_be_bytes());
    h.extend_from_slice(tlv);
    h
}

fn v2_tcp6(src: std::net::Ipv6Addr, dst: std::net::Ipv6Addr, sport: u16, dport: u16) -> Vec<u8> {
    let mut h = V2_SIG.to_vec();
    h.extend_from_slice(&[0x21, 0x21, 0, 36]);
    h.extend_from_slice(&src.octets());
    h.extend_from_slice(&dst.octets());
    h.extend_from_slice(&sport.to_be_bytes());
    h.extend_from_slice(&dport.to_be_bytes());
    h
}

const V2_LOCAL: &[u8] = b"\r\n\r\n\0\r\nQUIT\n\x20\x00\x00\x00";

const ECHO: &[u8] = b"GET /echo HTTP/1.1\r\nHost: site.test\r\nConnection: close\r\n\r\n";

/// A proxy whose service accepts the PROXY protocol (`extra` added to the service).
async fn accepting(extra: &str) -> (pentaflow_proxy::Proxy, SocketAddr, Vec<Backend>) {
    let be = backends(1).await;
    let text = service(&format!("accept_proxy = true\n{extra}")) + &backend_tables(&be);
    let (p, addr) = start_proxy(&text).await;
    (p, addr, be)
}

/// The X-Forwarded-For the back-end saw, from an `/echo` answer read raw.
fn forwarded_for(answer: &str) -> Option<String> {
    answer
        .lines()
        .find_map(|l| l.strip_prefix("x-forwarded-for: "))
        .map(str::to_owned)
}

#[tokio::test]
async fn a_v1_header_gives_the_client_address() {
    let (p, addr, _be) = accepting("").await;
    let mut bytes = b"PROXY TCP4 203.0.113.7 192.0.2.1 51000 80\r\n".to_vec();
    bytes.extend_from_slice(ECHO);
    let answer = raw(addr, &bytes).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert_eq!(forwarded_for(&answer).as_deref(), Some("203.0.113.7"));
    assert_eq!(p.counters().proxy_headers, 1);
    assert_eq!(p.counters().proxy_header_errors, 0);
}

#[tokio::test]
async fn a_v2_header_with_tlvs_gives_the_client_address() {
    let (p, addr, _be) = accepting("").await;
    // An AUTHORITY TLV (type 2) and an unknown one (type 0xEE): both skipped.
    let tlvs = [&[0x02, 0, 4][..], b"a.ex", &[0xEE, 0, 2, 1, 2]].concat();
    let mut bytes = v2_tcp4([198, 51, 100, 9], [192, 0, 2, 1], 40000, 443, &tlvs);
    bytes.extend_from_slice(ECHO);
    let answer = raw(addr, &bytes).await;
    assert_eq!(
        forwarded_for(&answer).as_deref(),
        Some("198.51.100.9"),
        "{answer}"
    );

    let mut bytes = v2_tcp6(
        "2001:db8::42".parse().unwrap(),
        "2001:db8::1".parse().unwrap(),
        1234,
        80,
    );
    bytes.extend_from_slice(ECHO);
    let answer = raw(addr, &bytes).await;
    assert_eq!(
        forwarded_for(&answer).as_deref(),
        Some("2001:db8::42"),
        "{answer}"
    );
    assert_eq!(p.counters().proxy_headers, 2);
}

#[tokio::test]
async fn a_v2_local_header_keeps_the_connection_address() {
    let (p, addr, _be) = accepting("").await;
    let answer = raw(addr, &[V2_LOCAL, ECHO].concat()).await;
    assert_eq!(
        forwarded_for(&answer).as_deref(),
        Some("127.0.0.1"),
        "{answer}"
    );
    let answer = raw(addr, &[b"PROXY UNKNOWN\r\n".as_slice(), ECHO].concat()).await;
    assert_eq!(
        forwarded_for(&answer).as_deref(),
        Some("127.0.0.1"),
        "{answer}"
    );
    assert_eq!(p.counters().proxy_header_errors, 0);
}

#[tokio::test]
async fn a_header_split_across_segments_is_read_whole() {
    let (_p, addr, _be) = accepting("").await;
    for header in [
        b"PROXY TCP4 203.0.113.8 192.0.2.1 51000 80\r\n".to_vec(),
        v2_tcp4([203, 0, 113, 9], [192, 0, 2, 1], 5, 80, &[]),
    ] {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.set_nodelay(true).unwrap();
        // Pieces cut inside the signature, inside the addresses, and the request after.
        for piece in [&header[..3], &header[3..14], &header[14..], ECHO] {
            s.write_all(piece).await.unwrap();
            s.flush().await.unwrap();
            tokio::time::sleep(Duration::from_millis(30)).await;
        }
        let answer = read_to_close(&mut s, Duration::from_secs(5)).await;
        let want = if header.starts_with(b"PROXY") {
            "203.0.113.8"
        } else {
            "203.0.113.9"
        };
        assert_eq!(forwarded_for(&answer).as_deref(), Some(want), "{answer}");
    }
}

/// `bytes` sent, the connection closes with no byte of an answer.
async fn closed_silently(addr: SocketAddr, bytes: &[u8]) {
    let answer = raw(addr, bytes).await;
    assert_eq!(answer, "", "the proxy answered instead of closing");
}

#[tokio::test]
async fn missing_malformed_and_over_long_headers_close_the_connection() {
    let (p, addr, be) = accepting("").await;
    closed_silently(addr, ECHO).await;
    closed_silently(
        addr,
        &[b"PROXY TCP4 999.1.1.1 192.0.2.1 1 80\r\n".as_slice(), ECHO].concat(),
    )
    .await;
    closed_silently(
        addr,
        &[b"PROXY TCP4 1.2.3.4 192.0.2.1 1\r\n".as_slice(), ECHO].concat(),
    )
    .await;
    let long = [b"PROXY TCP4 ".as_slice(), &[b'1'; 200], b"\r\n", ECHO].concat();
    closed_silently(addr, &long).await;
    // A v2 header of a bad version (0x3_).
    let mut bad = v2_tcp4([1, 2, 3, 4], [5, 6, 7, 8], 1, 2, &[]);
    bad[12] = 0x31;
    closed_silently(addr, &[bad.as_slice(), ECHO].concat()).await;
    // A v2 header claiming 60 KB of TLVs: refused before reading them.
    let mut huge = v2_tcp4([1, 2, 3, 4], [5, 6, 7, 8], 1, 2, &[]);
    huge[14..16].copy_from_slice(&60_000u16.to_be_bytes());
    closed_silently(addr, &huge).await;
    // A TLS ClientHello where the header should be.
    closed_silently(addr, &[0x16, 0x03, 0x01, 0x00, 0x05, 1, 0, 0, 1, 0]).await;
    // Closed half-way through the header.
    {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(b"PROXY TCP4 1.2.").await.unwrap();
        s.shutdown().await.unwrap();
        assert_eq!(read_to_close(&mut s, Duration::from_secs(5)).await, "");
    }
    let c = p.counters();
    assert_eq!(c.proxy_header_errors, 8);
    assert_eq!(c.proxy_headers, 0);
    assert_eq!(c.requests, 0);
    assert_eq!(be[0].requests.load(std::sync::atomic::Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_header_not_complete_within_header_read_timeout_closes() {
    let be = backends(1).await;
    let text = service("accept_proxy = true")
        + "\n[limits]\nheader_read_timeout = \"1s\"\n"
        + &backend_tables(&be);
    let (p, addr) = start_proxy(&text).await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"PROXY TCP4 1.2.3.4").await.unwrap();
    // Closed by the node (well before this bound), with nothing said.
    assert_eq!(read_to_close(&mut s, Duration::from_secs(10)).await, "");
    assert_eq!(p.counters().proxy_header_errors, 1);
}

#[tokio::test]
async fn an_untrusted_source_is_closed_before_any_byte_is_read() {
    let (p, addr, be) = accepting("proxy_trusted = [\"10.0.0.0/8\", \"192.0.2.1\"]").await;
    let header = b"PROXY TCP4 203.0.113.7 192.0.2.1 51000 80\r\n";
    closed_silently(addr, &[header.as_slice(), ECHO].concat()).await;
    let c = p.counters();
    assert_eq!(c.proxy_untrusted, 1);
    assert_eq!(c.proxy_headers, 0);
    assert_eq!(be[0].requests.load(std::sync::atomic::Ordering::SeqCst), 0);

    // 127.0.0.0/8 trusted: the same connection goes through.
    let (p, addr, _be) = accepting("proxy_trusted = [\"127.0.0.0/8\"]").await;
    let answer = raw(addr, &[header.as_slice(), ECHO].concat()).await;
    assert_eq!(forwarded_for(&answer).as_deref(), Some("203.0.113.7"));
    assert_eq!(p.counters().proxy_untrusted, 0);
}

#[tokio::test]
async fn the_per_client_limit_counts_the_header_address() {
    let be = backends(1).await;
    let text = service("accept_proxy = true")
        + "\n[limits]\nmax_connections_per_client = 1\n"
        + &backend_tables(&be);
    let (p, addr) = start_proxy(&text).await;
    let header = |ip: &str| format!("PROXY TCP4 {ip} 192.0.2.1 1000 80\r\n");
    // One open connection for client A (header sent, request not yet).
    let mut a = TcpStream::connect(addr).await.unwrap();
    a.write_all(header("203.0.113.1").as_bytes()).await.unwrap();
    // Client B, from the same TCP peer (127.0.0.1), is another client: served.
    let answer = raw(addr, &[header("203.0.113.2").as_bytes(), ECHO].concat()).await;
    assert_eq!(
        forwarded_for(&answer).as_deref(),
        Some("203.0.113.2"),
        "{answer}"
    );
    // A second connection of client A is past its limit: 503.
    let mut refused = String::new();
    for _ in 0..50 {
        refused = raw(addr, &[header("203.0.113.1").as_bytes(), ECHO].concat()).await;
        if refused.starts_with("HTTP/1.1 503") {
            break;
        }
        // A's header may not have been read yet: try again.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(refused.starts_with("HTTP/1.1 503"), "{refused}");
    assert!(p.counters().connections_refused >= 1);
    // A itself is still served.
    a.write_all(ECHO).await.unwrap();
    let answer = read_to_close(&mut a, Duration::from_secs(5)).await;
    assert_eq!(
        forwarded_for(&answer).as_deref(),
        Some("203.0.113.1"),
        "{answer}"
    );
}

#[tokio::test]
async fn an_https_listener_reads_the_header_before_tls() {
    let pki = support::pki::Pki::new("proxy-protocol");
    let leaf = pki.leaf("site", &["site.test"], false);
    let be = backends(1).await;
    let https = free_addr();
    let text = format!(
        "[node]\naccess_log = false\n[[service]]\nname = \"t\"\ntls_listen = [\"{https}\"]\naccept_proxy = true\n[service.tls]\n[[service.tls.certificate]]\ncert = \"{}\"\nkey = \"{}\"\n",
        leaf.cert.display(),
        leaf.key.display()
    ) + &backend_tables(&be);
    let (p, _) = start_proxy(&text).await;
    let mut tcp = TcpStream::connect(https).await.unwrap();
    tcp.write_all(&v2_tcp4([203, 0, 113, 77], [192, 0, 2, 1], 999, 443, &[]))
        .await
        .unwrap();
    let name = rustls::pki_types::ServerName::try_from("site.test").unwrap();
    let tls = tokio_rustls::TlsConnector::from(pki.client(&[b"http/1.1"], false))
        .connect(name, tcp)
        .await
        .unwrap();
    let mut client = Client::over(tls).await;
    let answer = client.get("/echo", &[]).await;
    assert!(
        answer.body.contains("x-forwarded-for: 203.0.113.77"),
        "{}",
        answer.body
    );
    assert!(
        answer.body.contains("x-forwarded-proto: https"),
        "{}",
        answer.body
    );
    assert_eq!(p.counters().proxy_headers, 1);
    assert_eq!(p.counters().tls_handshakes, 1);
}

/// A back-end that expects a PROXY header: records each connection's header bytes, then
/// answers every request head `200 ok` on the same connection.
async fn header_backend() -> (SocketAddr, Arc<Mutex<Vec<Vec<u8>>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen: Arc<Mutex<Vec<Vec<u8>>>> = Arc::default();
    let record = Arc::clone(&seen);
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else {
                return;
            };
            let record = Arc::clone(&record);
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let header_len = loop {
                    if buf.starts_with(V2_SIG) && buf.len() >= 16 {
                        let len = 16 + usize::from(u16::from_be_bytes([buf[14], buf[15]]));
                        if buf.len() >= len {
                            break len;
                        }
                    } else if let Some(i) = buf.windows(2).position(|w| w == b"\r\n") {
                        if buf.starts_with(b"PROXY ") {
                            break i + 2;
                        }
                    }
                    let mut chunk = [0u8; 1024];
                    match s.read(&mut chunk).await {
                        Ok(0) | Err(_) => {
                            record.lock().unwrap().push(buf);
                            return;
                        }
                        Ok(k) => buf.extend_from_slice(&chunk[..k]),
                    }
                };
                record.lock().unwrap().push(buf[..header_len].to_vec());
                if !(buf.starts_with(V2_SIG) || buf.starts_with(b"PROXY ")) {
                    return;
                }
                buf.drain(..header_len);
                loop {
                    while let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        buf.drain(..i + 4);
                        if s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                            .await
                            .is_err()
                        {
                            return;
                        }
                    }
                    let mut chunk = [0u8; 4096];
                    match s.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(k) => buf.extend_from_slice(&chunk[..k]),
                    }
                }
            });
        }
    });
    (addr, seen)
}

fn sending(version: &str, backend: SocketAddr, extra: &str) -> String {
    service(&format!(
        "send_proxy = \"{version}\"\n{extra}\n[[service.backend]]\nname = \"b\"\naddress = \"{backend}\"\n"
    ))
}

#[tokio::test]
async fn send_proxy_v1_passes_the_client_address_on() {
    let (backend, seen) = header_backend().await;
    let (_p, addr) = start_proxy(&sending("v1", backend, "accept_proxy = true")).await;
    let header = b"PROXY TCP4 203.0.113.7 192.0.2.1 51000 80\r\n";
    let answer = raw(
        addr,
        &[
            header.as_slice(),
            b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
        ]
        .concat(),
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert_eq!(seen.lock().unwrap().as_slice(), [header.to_vec()]);
}

#[tokio::test]
async fn send_proxy_v2_carries_the_tcp_peer_and_pools_per_client_connection() {
    let (backend, seen) = header_backend().await;
    let (_p, addr) = start_proxy(&sending("v2", backend, "")).await;
    let mut conns = Vec::new();
    for _ in 0..2 {
        let tcp = TcpStream::connect(addr).await.unwrap();
        let me = tcp.local_addr().unwrap();
        let mut c = Client::over(tcp).await;
        // Two requests on one client connection: one back-end connection, one header.
        for _ in 0..2 {
            assert_eq!(c.get("/", &[]).await.body, "ok");
        }
        conns.push((c, me));
    }
    let want: Vec<Vec<u8>> = conns
        .iter()
        .map(|(_, me)| {
            let SocketAddr::V4(me) = me else { panic!() };
            v2_tcp4(
                me.ip().octets(),
                [127, 0, 0, 1],
                me.port(),
                addr.port(),
                &[],
            )
        })
        .collect();
    // The second client did not get the first one's pooled connection.
    assert_eq!(*seen.lock().unwrap(), want);
}

#[tokio::test]
async fn health_checks_send_local_or_unknown() {
    for (version, want) in [("v2", V2_LOCAL), ("v1", b"PROXY UNKNOWN\r\n".as_slice())] {
        let (backend, seen) = header_backend().await;
        let health =
            "[service.health]\npath = \"/health\"\ninterval = \"200ms\"\ntimeout = \"150ms\"\n";
        let (_p, _addr) = start_proxy(&sending(version, backend, "").replace(
            "[[service.backend]]",
            &format!("{health}\n[[service.backend]]"),
        ))
        .await;
        let mut first = None;
        for _ in 0..100 {
            first = seen.lock().unwrap().first().cloned();
            if first.is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(first.as_deref(), Some(want), "{version}");
    }
}

/// Debian's HAProxy on its own ports (foreground, killed on drop), with `conf` after a
/// `defaults` section; `None` when it is not installed.
struct Haproxy {
    child: std::process::Child,
    dir: std::path::PathBuf,
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

async fn start_haproxy(tag: &str, conf: &str, wait_for: SocketAddr) -> Option<Haproxy> {
    let bin = ["/usr/sbin/haproxy", "/usr/bin/haproxy"]
        .iter()
        .map(std::path::PathBuf::from)
        .find(|p| p.exists());
    let Some(bin) = bin else {
        // scripts/install-deps installs haproxy; without it the interop check cannot run.
        assert!(
            std::env::var_os("PENTAFLOW_REQUIRE_TOOLS").is_none(),
            "haproxy is required with PENTAFLOW_REQUIRE_TOOLS (scripts/install-deps installs it)"
        );
        eprintln!("SKIPPED the HAProxy interop check: no haproxy binary (apt-get install haproxy)");
        return None;
    };
    let dir =
        std::env::temp_dir().join(format!("pentaflow-pp-haproxy-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("haproxy.cfg");
    std::fs::write(
        &path,
        format!("defaults\n  mode http\n  timeout connect 2s\n  timeout client 5s\n  timeout server 5s\n{conf}"),
    )
    .unwrap();
    let child = std::process::Command::new(bin)
        .arg("-db")
        .arg("-f")
        .arg(&path)
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let h = Haproxy { child, dir };
    for _ in 0..200 {
        if TcpStream::connect(wait_for).await.is_ok() {
            return Some(h);
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("haproxy did not listen on {wait_for}");
}

/// A GET on a new connection from the loopback source address `from` (so the client's
/// address differs from every proxy's, which all connect from 127.0.0.1); the raw answer.
async fn get_from(from: &str, to: SocketAddr, path: &str) -> String {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(format!("{from}:0").parse().unwrap()).unwrap();
    let mut s = socket.connect(to).await.unwrap();
    s.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: site.test\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await
    .unwrap();
    read_to_close(&mut s, Duration::from_secs(5)).await
}

#[tokio::test]
async fn haproxy_send_proxy_v2_in_front_of_pentaflow() {
    let (p, node, _be) = accepting("proxy_trusted = [\"127.0.0.1\"]").await;
    let front = free_addr();
    let conf = format!(
        "frontend front\n  bind {front}\n  default_backend pf\nbackend pf\n  server pf {node} send-proxy-v2\n"
    );
    let Some(_h) = start_haproxy("front", &conf, front).await else {
        return;
    };
    let answer = get_from("127.0.0.2", front, "/echo").await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    // HAProxy adds no X-Forwarded-For here (no `option forwardfor`): the one the back-end sees
    // is pentaflow's, from the header.
    assert_eq!(
        forwarded_for(&answer).as_deref(),
        Some("127.0.0.2"),
        "{answer}"
    );
    assert!(p.counters().proxy_headers >= 1);
    assert_eq!(p.counters().proxy_header_errors, 0);
}

#[tokio::test]
async fn pentaflow_send_proxy_to_haproxy_accept_proxy() {
    for version in ["v1", "v2"] {
        let back = free_addr();
        let conf = format!(
            "frontend back\n  bind {back} accept-proxy\n  http-request return status 200 content-type text/plain lf-string \"src=%ci\"\n"
        );
        let Some(_h) = start_haproxy(version, &conf, back).await else {
            return;
        };
        let (_p, node) = start_proxy(&sending(version, back, "")).await;
        let answer = get_from("127.0.0.3", node, "/").await;
        assert!(answer.ends_with("src=127.0.0.3"), "{version}: {answer}");
    }
}
