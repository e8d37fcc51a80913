//! The PROXY protocol (HAProxy's, v1 text and v2 binary): the header a trusted L4 proxy puts
//! first on a connection to say whose connection it is, read on `accept_proxy` listeners and
//! written toward back-ends of a `send_proxy` service.
//!
//! Owns: framing a header on the wire (how many bytes it takes, with a size bound), reading
//! exactly those bytes from a client socket (nothing past the header is consumed, so the TLS
//! handshake or the HTTP engine starts on its own first byte), decoding them with the `ppp`
//! crate into the addresses they carry, and building the header for a back-end connection. It
//! must not decide trust, timeouts or counting (node.rs does) nor touch HTTP.

use std::net::{IpAddr, SocketAddr};

use pentaflow_config::ProxyVersion;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

/// The v2 signature (12 bytes).
const V2_SIGNATURE: &[u8] = ppp::v2::PROTOCOL_PREFIX;
/// The fixed part of a v2 header: the signature, version/command, family/protocol, length.
const V2_FIXED: usize = 16;
/// Largest v2 header accepted, TLVs included. The spec allows 16 + 65,535 bytes; real
/// senders (HAProxy, AWS NLB, GCP) send well under 1 KiB, so a larger one is refused rather
/// than buffered.
pub(crate) const V2_MAX: usize = 4096;
/// The v1 prefix.
const V1_PREFIX: &[u8] = b"PROXY ";
/// Longest v1 line, CRLF included (the spec's 107 bytes).
pub(crate) const V1_MAX: usize = 107;

/// Why a connection's PROXY header was refused.
#[derive(Debug, thiserror::Error)]
pub(crate) enum HeaderError {
    /// The first bytes are neither a v1 nor a v2 signature (a client speaking HTTP or TLS
    /// straight to a listener that expects the header).
    #[error("the connection does not start with a PROXY protocol header")]
    Missing,
    /// A v1 line without CRLF in 107 bytes, or a v2 header past the bound.
    #[error("PROXY protocol header longer than {0} bytes")]
    TooLong(usize),
    /// The header's bytes do not decode.
    #[error("malformed PROXY protocol header: {0}")]
    Malformed(String),
    /// The peer closed before the header was complete.
    #[error("connection closed inside the PROXY protocol header")]
    Closed,
    /// Reading the socket failed.
    #[error("reading the PROXY protocol header: {0}")]
    Io(#[from] std::io::Error),
}

/// What a header says about the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Origin {
    /// The client's address and the address it connected to.
    Proxied {
        source: SocketAddr,
        destination: SocketAddr,
    },
    /// v2 `LOCAL` (the proxy's own health check), v1 `UNKNOWN`, or an address family that is
    /// not TCP over IP: the connection's own addresses stand.
    Local,
}

/// How many bytes the header at the start of `buf` takes: `Ok(None)` when more bytes are
/// needed to tell, `Err` when no valid header can start this way.
pub(crate) fn header_len(buf: &[u8]) -> Result<Option<usize>, HeaderError> {
    let v2_prefix = buf.len().min(V2_SIGNATURE.len());
    if buf[..v2_prefix] == V2_SIGNATURE[..v2_prefix] && !buf.is_empty() {
        if buf.len() < V2_FIXED {
            return Ok(None);
        }
        let len = V2_FIXED + usize::from(u16::from_be_bytes([buf[14], buf[15]]));
        if len > V2_MAX {
            return Err(HeaderError::TooLong(V2_MAX));
        }
        return Ok(Some(len));
    }
    let v1_prefix = buf.len().min(V1_PREFIX.len());
    if buf.is_empty() || buf[..v1_prefix] != V1_PREFIX[..v1_prefix] {
        return if buf.is_empty() {
            Ok(None)
        } else {
            Err(HeaderError::Missing)
        };
    }
    let window = &buf[..buf.len().min(V1_MAX)];
    match window.windows(2).position(|w| w == b"\r\n") {
        Some(at) => Ok(Some(at + 2)),
        None if buf.len() >= V1_MAX => Err(HeaderError::TooLong(V1_MAX)),
        None => Ok(None),
    }
}

/// Decodes one complete header (exactly the bytes [`header_len`] counted). v2 TLVs are not
/// looked at: unknown ones are skipped by not parsing any.
pub(crate) fn decode(header: &[u8]) -> Result<Origin, HeaderError> {
    if header.starts_with(V2_SIGNATURE) {
        let h =
            ppp::v2::Header::try_from(header).map_err(|e| HeaderError::Malformed(e.to_string()))?;
        if h.command == ppp::v2::Command::Local {
            return Ok(Origin::Local);
        }
        return Ok(match h.addresses {
            ppp::v2::Addresses::IPv4(a) => Origin::Proxied {
                source: SocketAddr::new(a.source_address.into(), a.source_port),
                destination: SocketAddr::new(a.destination_address.into(), a.destination_port),
            },
            ppp::v2::Addresses::IPv6(a) => Origin::Proxied {
                source: SocketAddr::new(a.source_address.into(), a.source_port),
                destination: SocketAddr::new(a.destination_address.into(), a.destination_port),
            },
            // The spec: a receiver must accept an unsupported family and use the real
            // connection's addresses.
            ppp::v2::Addresses::Unspecified | ppp::v2::Addresses::Unix(_) => Origin::Local,
        });
    }
    let h = ppp::v1::Header::try_from(header).map_err(|e| HeaderError::Malformed(e.to_string()))?;
    // ppp reads up to the first CR: a header that is shorter than what we framed had a stray
    // CR inside.
    if h.header.len() != header.len() {
        return Err(HeaderError::Malformed("stray CR inside the v1 line".into()));
    }
    Ok(match h.addresses {
        ppp::v1::Addresses::Tcp4(a) => Origin::Proxied {
            source: SocketAddr::new(a.source_address.into(), a.source_port),
            destination: SocketAddr::new(a.destination_address.into(), a.destination_port),
        },
        ppp::v1::Addresses::Tcp6(a) => Origin::Proxied {
            source: SocketAddr::new(a.source_address.into(), a.source_port),
            destination: SocketAddr::new(a.destination_address.into(), a.destination_port),
        },
        ppp::v1::Addresses::Unknown => Origin::Local,
    })
}

/// Reads the header at the start of a client connection, consuming exactly its bytes. The
/// caller bounds it in time.
///
/// The socket is peeked, not read, until the header's end is known: a v1 line's length is
/// only known at its CRLF, and bytes after it belong to the TLS handshake or the request.
/// Peeked bytes short of the end are all header, so they are consumed before waiting for
/// more (peeking again without consuming would return at once with the same bytes).
pub(crate) async fn read(stream: &mut TcpStream) -> Result<Origin, HeaderError> {
    let mut header = Vec::with_capacity(V1_MAX);
    let mut peeked = [0u8; V1_MAX];
    loop {
        let n = stream.peek(&mut peeked).await?;
        if n == 0 {
            return Err(HeaderError::Closed);
        }
        let seen = header.len();
        header.extend_from_slice(&peeked[..n]);
        match header_len(&header)? {
            Some(len) => {
                header.truncate(seen);
                header.resize(len, 0);
                stream
                    .read_exact(&mut header[seen..])
                    .await
                    .map_err(|e| match e.kind() {
                        std::io::ErrorKind::UnexpectedEof => HeaderError::Closed,
                        _ => HeaderError::Io(e),
                    })?;
                return decode(&header);
            }
            None => {
                header.truncate(seen);
                header.resize(seen + n, 0);
                stream.read_exact(&mut header[seen..]).await?;
            }
        }
    }
}

/// What a back-end connection's header says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outbound {
    /// A client's connection: its address, and the address it reached on this node.
    Client {
        source: SocketAddr,
        destination: SocketAddr,
    },
    /// The node's own connection (a health check): v2 `LOCAL`, v1 `UNKNOWN`, as HAProxy sends.
    Check,
}

/// The header to write first on a new back-end connection.
pub(crate) fn build(version: ProxyVersion, what: Outbound) -> Vec<u8> {
    let (source, destination) = match what {
        Outbound::Check => {
            return match version {
                ProxyVersion::V1 => b"PROXY UNKNOWN\r\n".to_vec(),
                ProxyVersion::V2 => {
                    let mut h = V2_SIGNATURE.to_vec();
                    // Version 2, LOCAL; family and protocol unspecified; no address block.
                    h.extend_from_slice(&[0x20, 0x00, 0, 0]);
                    h
                }
            };
        }
        Outbound::Client {
            source,
            destination,
        } => same_family(source, destination),
    };
    match version {
        ProxyVersion::V1 => {
            let addresses = match (source.ip(), destination.ip()) {
                (IpAddr::V4(s), IpAddr::V4(d)) => {
                    ppp::v1::Addresses::new_tcp4(s, d, source.port(), destination.port())
                }
                (s, d) => {
                    ppp::v1::Addresses::new_tcp6(v6(s), v6(d), source.port(), destination.port())
                }
            };
            addresses.to_string().into_bytes()
        }
        ProxyVersion::V2 => {
            let addresses: ppp::v2::Addresses = (source, destination).into();
            ppp::v2::Builder::with_addresses(
                ppp::v2::Version::Two | ppp::v2::Command::Proxy,
                ppp::v2::Protocol::Stream,
                addresses,
            )
            .build()
            // Writing into a Vec cannot fail; an empty header would make the back-end refuse
            // the connection, which is what a broken header should cause.
            .unwrap_or_default()
        }
    }
}

/// Both addresses in one family (a header has one): an IPv4 client reaching a dual-stack
/// socket shows as `::ffff:a.b.c.d`, so mixed pairs go out as IPv6 and v4-mapped pairs as IPv4.
fn same_family(source: SocketAddr, destination: SocketAddr) -> (SocketAddr, SocketAddr) {
    let (s, d) = (source.ip().to_canonical(), destination.ip().to_canonical());
    match (s, d) {
        (IpAddr::V4(_), IpAddr::V4(_)) => (
            SocketAddr::new(s, source.port()),
            SocketAddr::new(d, destination.port()),
        ),
        _ => (
            SocketAddr::new(IpAddr::V6(v6(s)), source.port()),
            SocketAddr::new(IpAddr::V6(v6(d)), destination.port()),
        ),
    }
}

fn v6(ip: IpAddr) -> std::net::Ipv6Addr {
    match ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped(),
        IpAddr::V6(v6) => v6,
    }
}

/// The fuzz entry point: frames and decodes `data` as a connection's first bytes.
pub(crate) fn fuzz_header(data: &[u8]) -> Option<(usize, Option<SocketAddr>)> {
    let len = header_len(data).ok()??;
    let header = data.get(..len)?;
    assert!(len <= V2_MAX.max(V1_MAX));
    match decode(header).ok()? {
        Origin::Proxied { source, .. } => Some((len, Some(source))),
        Origin::Local => Some((len, None)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sa(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn framing_needs_the_whole_header() {
        assert!(matches!(header_len(b""), Ok(None)));
        assert!(matches!(header_len(b"PRO"), Ok(None)));
        assert!(matches!(header_len(b"PROXY TCP4 1.2.3.4"), Ok(None)));
        assert!(matches!(header_len(b"PROXY UNKNOWN\r\nGET"), Ok(Some(15))));
        assert!(matches!(
            header_len(b"GET / HTTP/1.1\r\n"),
            Err(HeaderError::Missing)
        ));
        assert!(matches!(
            header_len(&[0x16, 3, 1]),
            Err(HeaderError::Missing)
        ));
        assert!(matches!(header_len(&V2_SIGNATURE[..5]), Ok(None)));
        let long = [b"PROXY ".as_slice(), &[b'x'; 120]].concat();
        assert!(matches!(header_len(&long), Err(HeaderError::TooLong(107))));
        let mut big = V2_SIGNATURE.to_vec();
        big.extend_from_slice(&[0x21, 0x11, 0xff, 0xff]);
        assert!(matches!(header_len(&big), Err(HeaderError::TooLong(_))));
    }

    #[test]
    fn headers_built_decode_to_the_same_addresses() {
        for (s, d) in [
            ("192.0.2.1:5555", "198.51.100.2:80"),
            ("[2001:db8::1]:5555", "[2001:db8::2]:443"),
        ] {
            for v in [ProxyVersion::V1, ProxyVersion::V2] {
                let h = build(
                    v,
                    Outbound::Client {
                        source: sa(s),
                        destination: sa(d),
                    },
                );
                assert_eq!(header_len(&h).unwrap(), Some(h.len()));
                assert_eq!(
                    decode(&h).unwrap(),
                    Origin::Proxied {
                        source: sa(s),
                        destination: sa(d)
                    }
                );
            }
        }
        for v in [ProxyVersion::V1, ProxyVersion::V2] {
            let h = build(v, Outbound::Check);
            assert_eq!(decode(&h).unwrap(), Origin::Local);
        }
    }

    #[test]
    fn mixed_families_go_out_as_one() {
        let h = build(
            ProxyVersion::V1,
            Outbound::Client {
                source: sa("[::ffff:192.0.2.1]:1000"),
                destination: sa("198.51.100.2:80"),
            },
        );
        assert_eq!(h, b"PROXY TCP4 192.0.2.1 198.51.100.2 1000 80\r\n");
    }

    #[test]
    fn a_stray_cr_in_a_v1_line_is_malformed() {
        assert!(decode(b"PROXY TCP4 1.2.3.4\r 5.6.7.8 1 2\r\n").is_err());
    }
}
