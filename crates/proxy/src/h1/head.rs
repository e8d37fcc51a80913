//! Message heads kept as the bytes they arrived as: a client's request head and a back-end's
//! response head, each one `Bytes` (split off the connection's read buffer, no copy) with the
//! offsets of its start line and of every field line.
//!
//! Owns: turning `httparse`'s view of a head into offsets ([`RequestHead::parse`],
//! [`ResponseHead::parse`]), recognising the fields the proxy acts on ([`Known`]), and writing
//! a head again with only what a proxy must change rewritten (RFC 9110 §7.6): hop-by-hop
//! fields and the fields `Connection` names are dropped, `Via`, `X-Forwarded-*` and
//! `Forwarded` are added (folded into one line with any the message had), framing fields are
//! the writer's. Every other field line goes out byte for byte. A head whose field lines do not
//! all end in CRLF (httparse also takes a bare LF) is written field by field in the canonical
//! form instead, so a lenient line ending never reaches a next hop that may read it otherwise.
//! Pure code over buffers: no I/O, no scheduling, no `http::HeaderMap` on the HTTP/1 path
//! (the conversions at the end exist for the HTTP/2 boundary and the CDN rewriter).

use std::ops::Range;

use bytes::{Bytes, BytesMut};
use http::header::{HeaderMap, HeaderName, HeaderValue};
use http::{Method, StatusCode, Uri, Version};

use super::framing::{self, Framing, FramingFields};
use crate::headers::{ClientSide, FramingError, VIA_SELF};

/// Header fields parsed on the stack; more than this parses into the heap.
const STACK_FIELDS: usize = 64;
/// Most header fields accepted in a response head.
const MAX_RESPONSE_FIELDS: usize = 128;

/// The fields the proxy acts on; every other field is [`Known::Other`] and is forwarded as is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Known {
    Other,
    Host,
    Cookie,
    SetCookie,
    ContentLength,
    TransferEncoding,
    Connection,
    KeepAlive,
    ProxyConnection,
    Te,
    Trailer,
    Upgrade,
    ProxyAuthenticate,
    Expect,
    Via,
    XForwardedFor,
    XForwardedProto,
    XForwardedHost,
    Forwarded,
}

impl Known {
    /// The field `name` is (ASCII case-insensitive).
    pub(crate) fn of(name: &str) -> Self {
        let is = |n: &str| name.eq_ignore_ascii_case(n);
        match name.len() {
            2 if is("te") => Self::Te,
            3 if is("via") => Self::Via,
            4 if is("host") => Self::Host,
            6 if is("cookie") => Self::Cookie,
            6 if is("expect") => Self::Expect,
            7 if is("trailer") => Self::Trailer,
            7 if is("upgrade") => Self::Upgrade,
            9 if is("forwarded") => Self::Forwarded,
            10 if is("connection") => Self::Connection,
            10 if is("keep-alive") => Self::KeepAlive,
            10 if is("set-cookie") => Self::SetCookie,
            14 if is("content-length") => Self::ContentLength,
            15 if is("x-forwarded-for") => Self::XForwardedFor,
            16 if is("proxy-connection") => Self::ProxyConnection,
            16 if is("x-forwarded-host") => Self::XForwardedHost,
            17 if is("transfer-encoding") => Self::TransferEncoding,
            17 if is("x-forwarded-proto") => Self::XForwardedProto,
            18 if is("proxy-authenticate") => Self::ProxyAuthenticate,
            _ => Self::Other,
        }
    }

    /// Hop-by-hop whatever `Connection` says (RFC 9110 §7.6.1, and what proxies drop).
    fn hop_by_hop(self) -> bool {
        matches!(
            self,
            Self::Connection
                | Self::KeepAlive
                | Self::ProxyConnection
                | Self::Te
                | Self::Trailer
                | Self::TransferEncoding
                | Self::Upgrade
                | Self::ProxyAuthenticate
        )
    }
}

/// One field line of a head, as offsets into the head's bytes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Field {
    /// Start of the name (the start of the line).
    start: u32,
    name_end: u32,
    value_start: u32,
    value_end: u32,
    /// End of the line, after its LF.
    end: u32,
    pub(crate) known: Known,
}

impl Field {
    fn range(a: u32, b: u32) -> Range<usize> {
        a as usize..b as usize
    }
}

/// Why a head could not be taken apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HeadProblem {
    /// More fields than allowed.
    TooLarge,
    /// Not a valid HTTP/1.x head.
    Malformed,
}

/// The offsets of `headers` (httparse's slices of `buf`); `normalize` is set when a line does
/// not end in CRLF.
fn offsets(
    buf: &[u8],
    headers: &[httparse::Header<'_>],
    normalize: &mut bool,
) -> Result<Vec<Field>, HeadProblem> {
    let base = buf.as_ptr() as usize;
    let within = |p: usize, len: usize| -> Result<u32, HeadProblem> {
        let off = p.checked_sub(base).ok_or(HeadProblem::Malformed)?;
        if off + len > buf.len() {
            return Err(HeadProblem::Malformed);
        }
        u32::try_from(off).map_err(|_| HeadProblem::Malformed)
    };
    let mut fields = Vec::with_capacity(headers.len());
    for h in headers {
        let start = within(h.name.as_ptr() as usize, h.name.len())?;
        let name_end = start + h.name.len() as u32;
        // No field line holds a LF (httparse refuses obs-fold), so the line ends at the first
        // one after the name.
        let nl = buf[name_end as usize..]
            .iter()
            .position(|b| *b == b'\n')
            .ok_or(HeadProblem::Malformed)?;
        let end = name_end + nl as u32 + 1;
        let (value_start, value_end) = if h.value.is_empty() {
            (end, end)
        } else {
            let v = within(h.value.as_ptr() as usize, h.value.len())?;
            (v, v + h.value.len() as u32)
        };
        if end < 2 || buf[end as usize - 2] != b'\r' {
            *normalize = true;
        }
        fields.push(Field {
            start,
            name_end,
            value_start,
            value_end,
            end,
            known: Known::of(h.name),
        });
    }
    Ok(fields)
}

/// The offsets of a subslice of `buf`.
fn span(buf: &[u8], part: &[u8]) -> Range<u32> {
    let start = (part.as_ptr() as usize).saturating_sub(buf.as_ptr() as usize);
    let start = start.min(buf.len()) as u32;
    start..start + part.len() as u32
}

/// The fields and bytes of a head, and what both directions do with them.
#[derive(Debug, Clone)]
struct Fields {
    bytes: Bytes,
    list: Vec<Field>,
    /// Some field line ends in a bare LF: write field by field instead of byte for byte.
    normalize: bool,
    /// Some `Connection` token names a field that is not on the fixed hop-by-hop list.
    connection_names: bool,
}

impl Fields {
    fn name(&self, f: &Field) -> &[u8] {
        &self.bytes[Field::range(f.start, f.name_end)]
    }

    fn value(&self, f: &Field) -> &[u8] {
        &self.bytes[Field::range(f.value_start, f.value_end)]
    }

    fn values(&self, known: Known) -> impl Iterator<Item = &[u8]> + '_ {
        self.list
            .iter()
            .filter(move |f| f.known == known)
            .map(|f| self.value(f))
    }

    fn first(&self, known: Known) -> Option<&[u8]> {
        self.values(known).next()
    }

    fn connection_tokens(&self) -> impl Iterator<Item = &[u8]> + '_ {
        self.values(Known::Connection)
            .flat_map(|v| v.split(|b| *b == b','))
            .map(<[u8]>::trim_ascii)
            .filter(|t| !t.is_empty())
    }

    fn connection_lists(&self, token: &[u8]) -> bool {
        self.connection_tokens()
            .any(|t| t.eq_ignore_ascii_case(token))
    }

    fn has(&self, known: Known) -> bool {
        self.list.iter().any(|f| f.known == known)
    }

    /// Whether `f` is named by a `Connection` token (and so hop-by-hop too).
    fn named_by_connection(&self, f: &Field) -> bool {
        if !self.connection_names || f.known != Known::Other {
            return false;
        }
        let name = self.name(f);
        self.connection_tokens()
            .any(|t| t.eq_ignore_ascii_case(name))
    }

    /// Writes the field line `f` as it arrived (or canonically, see the module doc).
    fn write_line(&self, f: &Field, out: &mut Vec<u8>) {
        if self.normalize {
            out.extend_from_slice(self.name(f));
            out.extend_from_slice(b": ");
            out.extend_from_slice(self.value(f));
            out.extend_from_slice(b"\r\n");
        } else {
            out.extend_from_slice(&self.bytes[Field::range(f.start, f.end)]);
        }
    }

    /// Writes every field that `keep` accepts, with runs of neighbouring lines in one copy.
    fn write_kept(&self, out: &mut Vec<u8>, keep: impl Fn(&Field) -> bool) {
        if self.normalize {
            for f in self.list.iter().filter(|f| keep(f)) {
                self.write_line(f, out);
            }
            return;
        }
        let mut run: Option<(u32, u32)> = None;
        for f in &self.list {
            if keep(f) {
                run = match run {
                    Some((a, b)) if b == f.start => Some((a, f.end)),
                    Some((a, b)) => {
                        out.extend_from_slice(&self.bytes[Field::range(a, b)]);
                        Some((f.start, f.end))
                    }
                    None => Some((f.start, f.end)),
                };
            }
        }
        if let Some((a, b)) = run {
            out.extend_from_slice(&self.bytes[Field::range(a, b)]);
        }
    }

    /// Writes `name: v1, v2, item` when the head had `known` fields, else `name: item`.
    fn write_folded(&self, out: &mut Vec<u8>, known: Known, name: &[u8], item: &[u8]) {
        out.extend_from_slice(name);
        out.extend_from_slice(b": ");
        for v in self.values(known) {
            out.extend_from_slice(v);
            out.extend_from_slice(b", ");
        }
        out.extend_from_slice(item);
        out.extend_from_slice(b"\r\n");
    }

    /// The fields `keep` accepts as a `HeaderMap` (the HTTP/2 and CDN boundary).
    fn to_map(&self, keep: impl Fn(&Field) -> bool) -> HeaderMap {
        let mut map = HeaderMap::with_capacity(self.list.len());
        for f in self.list.iter().filter(|f| keep(f)) {
            let (Ok(name), Ok(value)) = (
                HeaderName::from_bytes(self.name(f)),
                HeaderValue::from_maybe_shared(
                    self.bytes.slice(Field::range(f.value_start, f.value_end)),
                ),
            ) else {
                continue;
            };
            map.append(name, value);
        }
        map
    }
}

/// A client's request head.
#[derive(Debug, Clone)]
pub(crate) struct RequestHead {
    fields: Fields,
    method: Range<u32>,
    target: Range<u32>,
    pub(crate) version: Version,
    /// The body framing, or why it is refused.
    pub(crate) framing: Result<Framing, FramingError>,
    /// HTTP/1.1 without `Connection: close`, or HTTP/1.0 with `keep-alive`.
    pub(crate) keep_alive: bool,
    /// HTTP/1.1 `Expect: 100-continue`.
    pub(crate) expect_continue: bool,
}

/// Where an absolute-form request target keeps its parts.
struct AbsoluteForm {
    authority: Bytes,
    path_and_query: Bytes,
}

impl RequestHead {
    /// Parses a request head at the start of `buf` (`max_headers` fields at most):
    /// `Ok(None)` = incomplete; `Ok(Some(len))` = a head of `len` bytes, to be taken out of
    /// the buffer and given to [`RequestHead::take`].
    pub(crate) fn check(buf: &[u8], max_headers: usize) -> Result<Option<usize>, HeadProblem> {
        Self::parse_at(buf, max_headers).map(|r| r.map(|(used, _)| used))
    }

    /// Parses a request head at the start of `buf` and, when it is complete, takes its bytes
    /// out of the buffer (no copy): `Ok(None)` = incomplete.
    pub(crate) fn parse(
        buf: &mut BytesMut,
        max_headers: usize,
    ) -> Result<Option<Self>, HeadProblem> {
        let Some((used, mut head)) = Self::parse_at(buf, max_headers)? else {
            return Ok(None);
        };
        head.fields.bytes = buf.split_to(used).freeze();
        Ok(Some(head))
    }

    /// A complete head the node made itself (e.g. a stand-in to log a refused request under).
    pub(crate) fn from_bytes(bytes: Bytes) -> Option<Self> {
        Self::take(bytes, STACK_FIELDS).ok()
    }

    /// Parses the complete head `bytes` (as [`RequestHead::check`] measured it).
    pub(crate) fn take(bytes: Bytes, max_headers: usize) -> Result<Self, HeadProblem> {
        let (_, mut head) = Self::parse_at(&bytes, max_headers)?.ok_or(HeadProblem::Malformed)?;
        head.fields.bytes = bytes;
        Ok(head)
    }

    /// Parses and keeps the offsets; the returned head's bytes are still empty.
    fn parse_at(buf: &[u8], max_headers: usize) -> Result<Option<(usize, Self)>, HeadProblem> {
        let mut stack = [httparse::EMPTY_HEADER; STACK_FIELDS];
        let mut heap;
        let slots: &mut [httparse::Header<'_>] = if max_headers <= STACK_FIELDS {
            &mut stack[..max_headers]
        } else {
            heap = vec![httparse::EMPTY_HEADER; max_headers];
            &mut heap
        };
        let mut req = httparse::Request::new(slots);
        let used = match req.parse(buf) {
            Ok(httparse::Status::Complete(n)) => n,
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(httparse::Error::TooManyHeaders) => return Err(HeadProblem::TooLarge),
            Err(_) => return Err(HeadProblem::Malformed),
        };
        let (Some(method), Some(target)) = (req.method, req.path) else {
            return Err(HeadProblem::Malformed);
        };
        Method::from_bytes(method.as_bytes()).map_err(|_| HeadProblem::Malformed)?;
        let version = match req.version {
            Some(1) => Version::HTTP_11,
            Some(0) => Version::HTTP_10,
            _ => return Err(HeadProblem::Malformed),
        };
        let framing = framing::request_framing(req.headers);
        let mut normalize = false;
        let list = offsets(buf, req.headers, &mut normalize)?;
        let mut fields = Fields {
            bytes: Bytes::new(),
            list,
            normalize,
            connection_names: false,
        };
        let method = span(buf, method.as_bytes());
        let target = span(buf, target.as_bytes());
        // The tokens are read from `buf` here: the head's own bytes are attached later.
        let mut keep_alive = version == Version::HTTP_11;
        let mut expect_continue = false;
        let mut connection_names = false;
        for f in &fields.list {
            let value = &buf[Field::range(f.value_start, f.value_end)];
            match f.known {
                Known::Connection => {
                    for token in value.split(|b| *b == b',').map(<[u8]>::trim_ascii) {
                        if token.eq_ignore_ascii_case(b"close") {
                            keep_alive = false;
                        } else if token.eq_ignore_ascii_case(b"keep-alive") {
                            keep_alive |= version == Version::HTTP_10;
                        } else if !token.is_empty()
                            && std::str::from_utf8(token)
                                .map_or(true, |t| Known::of(t) == Known::Other)
                        {
                            connection_names = true;
                        }
                    }
                }
                Known::Expect => {
                    expect_continue |= value.trim_ascii().eq_ignore_ascii_case(b"100-continue");
                }
                _ => {}
            }
        }
        fields.connection_names = connection_names;
        let head = Self {
            fields,
            method,
            target,
            version,
            framing,
            keep_alive,
            expect_continue: expect_continue && version == Version::HTTP_11,
        };
        // An absolute-form target must be a URI we can take apart.
        if head.target_bytes_in(buf).first() != Some(&b'/')
            && head.target_bytes_in(buf) != b"*"
            && head.target_bytes_in(buf).parse_uri().is_none()
        {
            return Err(HeadProblem::Malformed);
        }
        Ok(Some((used, head)))
    }

    fn target_bytes_in<'b>(&self, buf: &'b [u8]) -> &'b [u8] {
        &buf[Field::range(self.target.start, self.target.end)]
    }

    /// The head's bytes, as received.
    pub(crate) fn bytes(&self) -> &Bytes {
        &self.fields.bytes
    }

    /// The method as the client wrote it.
    pub(crate) fn method_bytes(&self) -> &[u8] {
        &self.fields.bytes[Field::range(self.method.start, self.method.end)]
    }

    /// The method (standard ones are constants: no allocation).
    pub(crate) fn method(&self) -> Method {
        Method::from_bytes(self.method_bytes()).unwrap_or_default()
    }

    /// The request target as the client wrote it.
    pub(crate) fn target(&self) -> &[u8] {
        &self.fields.bytes[Field::range(self.target.start, self.target.end)]
    }

    fn absolute_form(&self) -> Option<AbsoluteForm> {
        let t = self.target();
        if t.first() == Some(&b'/') || t == b"*" {
            return None;
        }
        let uri = t.parse_uri()?;
        let authority = uri.authority()?.as_str().as_bytes();
        let path_and_query = uri.path_and_query().map_or("/", |p| p.as_str());
        let path_and_query = if path_and_query.starts_with('/') {
            Bytes::copy_from_slice(path_and_query.as_bytes())
        } else {
            Bytes::from(format!("/{path_and_query}"))
        };
        Some(AbsoluteForm {
            authority: Bytes::copy_from_slice(authority),
            path_and_query,
        })
    }

    /// The origin-form target (`/path?query`, or `*`) that goes to the back-end.
    pub(crate) fn path_and_query(&self) -> Bytes {
        match self.absolute_form() {
            Some(a) => a.path_and_query,
            None => self
                .fields
                .bytes
                .slice(Field::range(self.target.start, self.target.end)),
        }
    }

    /// The target as a `Uri` of the origin form (what scheduling reads: path and query).
    pub(crate) fn uri(&self) -> Uri {
        Uri::from_maybe_shared(self.path_and_query()).unwrap_or_default()
    }

    /// The host the client asked for: an absolute-form target's authority, else `Host`.
    pub(crate) fn host(&self) -> Option<Bytes> {
        if let Some(a) = self.absolute_form() {
            return Some(a.authority);
        }
        self.fields
            .list
            .iter()
            .find(|f| f.known == Known::Host)
            .map(|f| {
                self.fields
                    .bytes
                    .slice(Field::range(f.value_start, f.value_end))
            })
    }

    /// Whether the request asks to switch protocols (`Connection: upgrade` and `Upgrade`).
    pub(crate) fn is_upgrade(&self) -> bool {
        self.fields.has(Known::Upgrade) && self.fields.connection_lists(b"upgrade")
    }

    /// Whether the head has a `Content-Length` field.
    pub(crate) fn has_length(&self) -> bool {
        self.fields.has(Known::ContentLength)
    }

    /// The `Cookie` fields as a `HeaderMap` of their own (what scheduling reads; the values
    /// share the head's bytes).
    pub(crate) fn cookies(&self) -> HeaderMap {
        self.fields.to_map(|f| f.known == Known::Cookie)
    }

    /// Every field as a `HeaderMap` (for the CDN rewriter, which reads conditionals and more).
    pub(crate) fn header_map(&self) -> HeaderMap {
        self.fields.to_map(|_| true)
    }

    /// Writes the head as it goes to a back-end: the request line in origin form and
    /// HTTP/1.1; every field as it arrived except the hop-by-hop ones (for an upgrade,
    /// `Upgrade` and `Connection: upgrade` stay), `Expect` (the client side answers it), the
    /// forwarding fields (added again, lists folded), the fields of `replace` (added from it),
    /// and a `Host` an absolute-form target overrides; `chunked` adds the framing field.
    pub(crate) fn write_upstream(
        &self,
        side: &ClientSide,
        replace: &HeaderMap,
        chunked: bool,
        out: &mut Vec<u8>,
    ) {
        let absolute = self.absolute_form();
        let upgrade = self.is_upgrade();
        let f = &self.fields;
        out.extend_from_slice(self.method_bytes());
        out.push(b' ');
        match &absolute {
            Some(a) => out.extend_from_slice(&a.path_and_query),
            None => out.extend_from_slice(self.target()),
        }
        out.extend_from_slice(b" HTTP/1.1\r\n");
        f.write_kept(out, |field| {
            let drop = match field.known {
                Known::Other => {
                    f.named_by_connection(field)
                        || (!replace.is_empty() && replace.contains_key(name_str(f.name(field))))
                }
                Known::Host => absolute.is_some(),
                Known::Cookie | Known::SetCookie | Known::ContentLength => false,
                _ => true,
            };
            !drop
        });
        if let Some(a) = &absolute {
            out.extend_from_slice(b"host: ");
            out.extend_from_slice(&a.authority);
            out.extend_from_slice(b"\r\n");
        }
        if upgrade {
            if let Some(v) = f.first(Known::Upgrade) {
                out.extend_from_slice(b"upgrade: ");
                out.extend_from_slice(v);
                out.extend_from_slice(b"\r\nconnection: upgrade\r\n");
            }
        }
        f.write_folded(out, Known::Via, b"via", VIA_SELF.as_bytes());
        f.write_folded(
            out,
            Known::XForwardedFor,
            b"x-forwarded-for",
            side.for_value(),
        );
        out.extend_from_slice(b"x-forwarded-proto: ");
        out.extend_from_slice(side.proto.as_bytes());
        out.extend_from_slice(b"\r\n");
        let host = match &absolute {
            Some(a) => Some(&a.authority[..]),
            None => f.first(Known::Host),
        };
        if let Some(host) = host {
            out.extend_from_slice(b"x-forwarded-host: ");
            out.extend_from_slice(host);
            out.extend_from_slice(b"\r\n");
        }
        f.write_folded(out, Known::Forwarded, b"forwarded", side.forwarded_value());
        for (name, value) in replace {
            out.extend_from_slice(name.as_str().as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(value.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        if chunked {
            out.extend_from_slice(b"transfer-encoding: chunked\r\n");
        }
        out.extend_from_slice(b"\r\n");
    }

    /// The head of an HTTP/2 request (hyper's `Parts`) in HTTP/1.1 form, parsed like one a
    /// client sent: the boundary of the one back-end engine (see h1's module doc).
    pub(crate) fn from_parts(
        parts: &http::request::Parts,
        max_headers: usize,
    ) -> Result<Self, HeadProblem> {
        let pq = parts.uri.path_and_query().map_or("/", |p| p.as_str());
        let mut out = Vec::with_capacity(128 + parts.headers.len() * 40);
        out.extend_from_slice(parts.method.as_str().as_bytes());
        out.push(b' ');
        out.extend_from_slice(if pq.starts_with('/') || pq == "*" {
            pq.as_bytes()
        } else {
            b"/"
        });
        out.extend_from_slice(b" HTTP/1.1\r\n");
        let authority = parts.uri.authority();
        if let Some(a) = authority {
            out.extend_from_slice(b"host: ");
            out.extend_from_slice(a.as_str().as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        for (name, value) in &parts.headers {
            if authority.is_some() && name == http::header::HOST {
                continue;
            }
            out.extend_from_slice(name.as_str().as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(value.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"\r\n");
        let max = max_headers.max(parts.headers.len() + 1);
        Self::take(Bytes::from(out), max)
    }
}

/// A field name as `&str` (httparse only hands out token names, so this always succeeds).
fn name_str(name: &[u8]) -> &str {
    std::str::from_utf8(name).unwrap_or("")
}

trait ParseUri {
    fn parse_uri(&self) -> Option<Uri>;
}

impl ParseUri for [u8] {
    fn parse_uri(&self) -> Option<Uri> {
        // Absolute form only (RFC 9112 §3.2.2); authority form is for CONNECT, not served.
        let uri = Uri::try_from(self).ok()?;
        uri.scheme()?;
        uri.authority()?;
        Some(uri)
    }
}

/// Why a back-end's response head was refused (the client gets 502).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ResponseProblem {
    Incomplete,
    Invalid(&'static str),
}

/// A back-end's response head.
#[derive(Debug, Clone)]
pub(crate) struct ResponseHead {
    fields: Fields,
    pub(crate) status: StatusCode,
    reason: Range<u32>,
    pub(crate) framing: Framing,
    /// The single length a `Content-Length` (or a list of equal ones) gave.
    length: Option<u64>,
    /// Whether the connection may carry another request after this response.
    pub(crate) keep_alive: bool,
    /// Whether a `Content-Length` was dropped because `Transfer-Encoding` came with it.
    pub(crate) dropped_length: bool,
    /// A bodiless answer to HEAD, or a 304, keeps the back-end's `Content-Length` as it is.
    pub(crate) keep_length_field: bool,
}

impl ResponseHead {
    /// Parses a response head at the start of `buf`: `Ok(Some(len))` when complete.
    pub(crate) fn check(buf: &[u8], head_request: bool) -> Result<Option<usize>, &'static str> {
        match Self::parse_at(buf, head_request) {
            Ok((used, _)) => Ok(Some(used)),
            Err(ResponseProblem::Incomplete) => Ok(None),
            Err(ResponseProblem::Invalid(why)) => Err(why),
        }
    }

    /// Parses a response head at the start of `buf` and, when it is complete, takes its bytes
    /// out of the buffer (no copy): `Ok(None)` = incomplete.
    pub(crate) fn parse(
        buf: &mut BytesMut,
        head_request: bool,
    ) -> Result<Option<Self>, &'static str> {
        match Self::parse_at(buf, head_request) {
            Ok((used, mut head)) => {
                head.fields.bytes = buf.split_to(used).freeze();
                Ok(Some(head))
            }
            Err(ResponseProblem::Incomplete) => Ok(None),
            Err(ResponseProblem::Invalid(why)) => Err(why),
        }
    }

    /// Parses the complete head `bytes`.
    pub(crate) fn take(bytes: Bytes, head_request: bool) -> Result<Self, &'static str> {
        match Self::parse_at(&bytes, head_request) {
            Ok((_, mut head)) => {
                head.fields.bytes = bytes;
                Ok(head)
            }
            Err(ResponseProblem::Incomplete) => Err("incomplete response head"),
            Err(ResponseProblem::Invalid(why)) => Err(why),
        }
    }

    fn parse_at(buf: &[u8], head_request: bool) -> Result<(usize, Self), ResponseProblem> {
        let mut slots = [httparse::EMPTY_HEADER; MAX_RESPONSE_FIELDS];
        let mut resp = httparse::Response::new(&mut slots);
        let used = match resp.parse(buf) {
            Ok(httparse::Status::Complete(n)) => n,
            Ok(httparse::Status::Partial) => return Err(ResponseProblem::Incomplete),
            Err(httparse::Error::TooManyHeaders) => {
                return Err(ResponseProblem::Invalid("too many response header fields"))
            }
            Err(_) => return Err(ResponseProblem::Invalid("malformed response head")),
        };
        let code = resp.code.unwrap_or(0);
        let status = StatusCode::from_u16(code)
            .map_err(|_| ResponseProblem::Invalid("invalid status code"))?;
        let f: FramingFields = framing::response_fields(resp.headers)
            .map_err(|_| ResponseProblem::Invalid("invalid or conflicting Content-Length"))?;
        let framing = framing::response_framing(code, head_request, &f);
        let http10 = resp.version == Some(0);
        let mut keep_alive = !http10;
        let reason = span(buf, resp.reason.unwrap_or("").as_bytes());
        let mut normalize = false;
        let list = offsets(buf, resp.headers, &mut normalize)
            .map_err(|_| ResponseProblem::Invalid("malformed response head"))?;
        // The `Connection` fields, found by the names `offsets` already classified (no second
        // pass of name comparisons over every field).
        let connection = resp
            .headers
            .iter()
            .zip(&list)
            .filter(|(_, f)| f.known == Known::Connection)
            .map(|(h, _)| h.value);
        for value in connection.clone() {
            for token in value.split(|b| *b == b',').map(<[u8]>::trim_ascii) {
                if token.eq_ignore_ascii_case(b"close") {
                    keep_alive = false;
                } else if http10 && token.eq_ignore_ascii_case(b"keep-alive") {
                    keep_alive = true;
                }
            }
        }
        if framing == Framing::Close {
            keep_alive = false;
        }
        let connection_names = connection.clone().any(|value| {
            value
                .split(|b| *b == b',')
                .map(<[u8]>::trim_ascii)
                .any(|t| {
                    !t.is_empty()
                        && std::str::from_utf8(t).map_or(true, |t| Known::of(t) == Known::Other)
                })
        });
        let fields = Fields {
            bytes: Bytes::new(),
            list,
            normalize,
            connection_names,
        };
        Ok((
            used,
            Self {
                fields,
                status,
                reason,
                framing,
                length: f.length,
                keep_alive,
                dropped_length: f.transfer_encoding && f.length.is_some(),
                // Never on a 1xx: it frames nothing, and RFC 9110 §8.6 forbids the field there.
                keep_length_field: !f.transfer_encoding
                    && framing == Framing::Empty
                    && !(100..200).contains(&code)
                    && (head_request || code == 304),
            },
        ))
    }

    /// Whether `f` goes to the client: not hop-by-hop (after `101`, `Upgrade` and
    /// `Connection` stay), not a framing field (the client side frames anew), not `Via`
    /// (written again, folded).
    fn forwarded(&self, f: &Field, switching: bool) -> bool {
        match f.known {
            Known::Other => !self.fields.named_by_connection(f),
            Known::Upgrade | Known::Connection => switching,
            Known::ContentLength => self.keep_length_field,
            Known::TransferEncoding | Known::Via => false,
            k => !k.hop_by_hop(),
        }
    }

    /// The values of the response's `Set-Cookie` fields.
    pub(crate) fn set_cookies(&self) -> impl Iterator<Item = &[u8]> + '_ {
        self.fields.values(Known::SetCookie)
    }

    /// The `Content-Length` to keep when the client side frames by the back-end's length.
    pub(crate) fn length(&self) -> Option<u64> {
        match self.framing {
            Framing::Length(_) => self.length,
            _ => None,
        }
    }

    /// Writes the status line and forwarded fields for an HTTP/1.1 client, then `Via` (folded
    /// with the back-end's), then `extra` (complete field lines, e.g. the injected cookie).
    /// Framing fields and the final CRLF are the caller's.
    pub(crate) fn write_client(&self, switching: bool, extra: &[u8], out: &mut Vec<u8>) {
        out.extend_from_slice(b"HTTP/1.1 ");
        out.extend_from_slice(self.status.as_str().as_bytes());
        out.push(b' ');
        let reason = &self.fields.bytes[Field::range(self.reason.start, self.reason.end)];
        if reason.is_empty() {
            out.extend_from_slice(self.status.canonical_reason().unwrap_or("").as_bytes());
        } else {
            out.extend_from_slice(reason);
        }
        out.extend_from_slice(b"\r\n");
        self.fields
            .write_kept(out, |f| self.forwarded(f, switching));
        self.fields
            .write_folded(out, Known::Via, b"via", VIA_SELF.as_bytes());
        out.extend_from_slice(extra);
    }

    /// Writes an interim (`1xx`) response for an HTTP/1.1 client, complete with its final
    /// CRLF: the status line, the forwarded fields (hop-by-hop ones dropped) and `Via`, as
    /// [`Self::write_client`] writes a final head.
    pub(crate) fn write_interim(&self, out: &mut Vec<u8>) {
        self.write_client(false, b"", out);
        out.extend_from_slice(b"\r\n");
    }

    /// The length of the head as it arrived.
    pub(crate) fn wire_len(&self) -> usize {
        self.fields.bytes.len()
    }

    /// The forwarded fields and `Via` as a `HeaderMap` (for HTTP/2 clients and the CDN
    /// rewriter), with the back-end's single `Content-Length` when it frames the body.
    pub(crate) fn header_map(&self, switching: bool) -> HeaderMap {
        let mut map = self.fields.to_map(|f| self.forwarded(f, switching));
        let mut via = Vec::new();
        self.fields
            .write_folded(&mut via, Known::Via, b"via", VIA_SELF.as_bytes());
        // "via: …\r\n" → the value.
        if let Ok(v) = HeaderValue::from_bytes(&via[5..via.len() - 2]) {
            map.insert(http::header::VIA, v);
        }
        if let (Some(n), false) = (self.length(), switching) {
            map.insert(http::header::CONTENT_LENGTH, HeaderValue::from(n));
        }
        map
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(raw: &[u8]) -> RequestHead {
        let used = RequestHead::check(raw, 100).unwrap().unwrap();
        RequestHead::take(Bytes::copy_from_slice(&raw[..used]), 100).unwrap()
    }

    fn upstream(raw: &[u8]) -> String {
        let side = ClientSide::new("192.0.2.7".parse().unwrap(), false);
        let mut out = Vec::new();
        req(raw).write_upstream(&side, &HeaderMap::new(), false, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn fields_go_out_as_they_came_in() {
        let out = upstream(
            b"GET /a?b HTTP/1.1\r\nHost: Site.Test\r\nX-Odd:  spaced  \r\nAccept: */*\r\n\r\n",
        );
        assert_eq!(
            out,
            "GET /a?b HTTP/1.1\r\nHost: Site.Test\r\nX-Odd:  spaced  \r\nAccept: */*\r\n\
             via: 1.1 pentaflow\r\nx-forwarded-for: 192.0.2.7\r\nx-forwarded-proto: http\r\n\
             x-forwarded-host: Site.Test\r\nforwarded: for=192.0.2.7;proto=http\r\n\r\n"
        );
    }

    #[test]
    fn hop_by_hop_fields_and_those_connection_names_are_dropped_in_any_case() {
        let out = upstream(
            b"GET / HTTP/1.1\r\nhost: a\r\nCONNECTION: keep-alive, X-Secret\r\nx-secret: 1\r\n\
              Keep-Alive: 5\r\nTE: trailers\r\nte: x\r\nUpgrade: h2c\r\nExpect: 100-continue\r\n\
              X-Forwarded-Proto: https\r\nX-Keep: yes\r\nProxy-Connection: x\r\n\r\n",
        );
        for gone in [
            "CONNECTION",
            "x-secret",
            "Keep-Alive",
            "TE:",
            "te:",
            "Upgrade",
            "Expect",
            "X-Forwarded-Proto",
            "Proxy-Connection",
        ] {
            assert!(!out.contains(gone), "{gone} in {out}");
        }
        assert!(out.contains("X-Keep: yes\r\n"));
        assert!(out.contains("x-forwarded-proto: http\r\n"));
    }

    #[test]
    fn forwarding_lists_are_folded_into_one_line() {
        let out = upstream(
            b"GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 10.0.0.1\r\nx-forwarded-for: 10.0.0.2\r\n\
              Via: 1.0 edge\r\nForwarded: for=10.0.0.1\r\n\r\n",
        );
        assert!(
            out.contains("x-forwarded-for: 10.0.0.1, 10.0.0.2, 192.0.2.7\r\n"),
            "{out}"
        );
        assert!(out.contains("via: 1.0 edge, 1.1 pentaflow\r\n"), "{out}");
        assert!(
            out.contains("forwarded: for=10.0.0.1, for=192.0.2.7;proto=http\r\n"),
            "{out}"
        );
        assert_eq!(out.matches("orwarded-For").count(), 0, "{out}");
    }

    #[test]
    fn upgrades_keep_upgrade_and_absolute_targets_become_origin_form() {
        let out = upstream(
            b"GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
        );
        assert!(
            out.contains("upgrade: websocket\r\nconnection: upgrade\r\n"),
            "{out}"
        );
        let out = upstream(b"GET http://b.test:8080/x?y HTTP/1.0\r\nHost: a\r\n\r\n");
        assert!(out.starts_with("GET /x?y HTTP/1.1\r\n"), "{out}");
        assert!(
            out.contains("host: b.test:8080\r\n") && !out.contains("Host: a"),
            "{out}"
        );
        assert!(out.contains("x-forwarded-host: b.test:8080\r\n"), "{out}");
    }

    #[test]
    fn bare_lf_heads_are_written_canonically() {
        let out = upstream(b"GET / HTTP/1.1\nHost: a\nX:  b\n\n");
        assert!(
            out.starts_with("GET / HTTP/1.1\r\nHost: a\r\nX: b\r\n"),
            "{out}"
        );
        assert!(!out.replace("\r\n", "").contains('\n'), "{out}");
    }

    #[test]
    fn obs_fold_and_bad_targets_are_refused() {
        assert!(
            RequestHead::check(b"GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n", 100).is_err()
        );
        assert!(RequestHead::check(b"GET nope HTTP/1.1\r\nHost: a\r\n\r\n", 100).is_err());
        assert!(RequestHead::check(b"GET / HTTP/1.1\r\nHost : a\r\n\r\n", 100).is_err());
    }

    #[test]
    fn a_head_split_anywhere_parses_the_same_once_complete() {
        let raw = b"POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nCookie: s=1\r\n\r\nabc";
        for cut in 0..raw.len() {
            match RequestHead::check(&raw[..cut], 100) {
                Ok(None) => {}
                Ok(Some(n)) => assert_eq!(n, raw.len() - 3, "cut {cut}"),
                Err(_) => panic!("cut {cut} refused"),
            }
        }
        let head = req(raw);
        assert_eq!(head.framing, Ok(Framing::Length(3)));
        assert_eq!(head.cookies().get("cookie").unwrap(), "s=1");
        assert_eq!(head.host().as_deref(), Some(&b"a"[..]));
        assert_eq!(head.uri().path(), "/p");
    }

    fn resp(raw: &[u8], head_request: bool) -> ResponseHead {
        let used = ResponseHead::check(raw, head_request).unwrap().unwrap();
        ResponseHead::take(Bytes::copy_from_slice(&raw[..used]), head_request).unwrap()
    }

    #[test]
    fn response_heads_lose_only_hop_by_hop_and_framing_fields() {
        let head = resp(
            b"HTTP/1.0 200 Fine\r\nServer: x\r\nConnection: keep-alive, X-Hop\r\nX-Hop: 1\r\n\
              Content-Length: 5\r\nVia: 1.0 app\r\nSet-Cookie: a=1\r\nKeep-Alive: timeout=5\r\n\r\n",
            false,
        );
        assert!(head.keep_alive);
        assert_eq!(head.length(), Some(5));
        let mut out = Vec::new();
        head.write_client(false, b"set-cookie: lb=x\r\n", &mut out);
        let out = String::from_utf8(out).unwrap();
        assert_eq!(
            out,
            "HTTP/1.1 200 Fine\r\nServer: x\r\nSet-Cookie: a=1\r\nvia: 1.0 app, 1.1 pentaflow\r\n\
             set-cookie: lb=x\r\n"
        );
        let map = head.header_map(false);
        assert_eq!(map.get("content-length").unwrap(), "5");
        assert!(map.get("x-hop").is_none() && map.get("connection").is_none());
        assert_eq!(map.get("via").unwrap(), "1.0 app, 1.1 pentaflow");
    }

    #[test]
    fn switching_protocols_keeps_upgrade() {
        let head = resp(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
            false,
        );
        let mut out = Vec::new();
        head.write_client(true, b"", &mut out);
        let out = String::from_utf8(out).unwrap();
        assert!(
            out.contains("Upgrade: websocket\r\nConnection: Upgrade\r\n"),
            "{out}"
        );
    }

    proptest::proptest! {
        /// Whatever the case and order of the fields, the hop-by-hop ones (and those
        /// `Connection` names) never reach the back-end, every other field goes out byte for
        /// byte in its order, and the head parses the same however it is split across reads.
        #[test]
        fn raw_rewriting_keeps_end_to_end_fields_only(
            fields in proptest::collection::vec(
                (proptest::sample::select(vec![
                    "Connection", "keep-alive", "TE", "Trailer", "Upgrade", "Proxy-Connection",
                    "X-App", "Accept", "x-secret", "Cookie", "Content-Type", "X-Forwarded-Host",
                ]), proptest::prop_oneof![
                    proptest::strategy::Strategy::boxed("[a-z0-9=;]{0,12}"),
                    proptest::strategy::Strategy::boxed(proptest::strategy::Just("x-secret".to_owned())),
                ], proptest::bool::ANY),
                0..12,
            ),
            cut in 0usize..400,
        ) {
            let mut raw = b"GET /x HTTP/1.1\r\nHost: h\r\n".to_vec();
            let mut expected = Vec::new();
            let named_secret = fields.iter().any(|(n, v, _)| {
                n.eq_ignore_ascii_case("connection") && v.trim().eq_ignore_ascii_case("x-secret")
            });
            for (name, value, upper) in &fields {
                let name = if *upper { name.to_ascii_uppercase() } else { (*name).to_owned() };
                let line = format!("{name}: {value}\r\n");
                raw.extend_from_slice(line.as_bytes());
                let k = Known::of(&name);
                let kept = match k {
                    Known::Other => !(named_secret && name.eq_ignore_ascii_case("x-secret")),
                    Known::Cookie => true,
                    _ => false,
                };
                if kept {
                    expected.push(line);
                }
            }
            raw.extend_from_slice(b"\r\n");
            let cut = cut.min(raw.len());
            let mut buf = BytesMut::from(&raw[..cut]);
            let head = match RequestHead::parse(&mut buf, 100).unwrap() {
                Some(h) => h,
                None => {
                    buf.extend_from_slice(&raw[cut..]);
                    RequestHead::parse(&mut buf, 100).unwrap().unwrap()
                }
            };
            proptest::prop_assert!(buf.is_empty());
            let side = ClientSide::new("192.0.2.7".parse().unwrap(), false);
            let mut out = Vec::new();
            head.write_upstream(&side, &HeaderMap::new(), false, &mut out);
            let out = String::from_utf8(out).unwrap();
            let expected = format!("GET /x HTTP/1.1\r\nHost: h\r\n{}", expected.concat());
            proptest::prop_assert!(out.starts_with(&expected), "{} vs {}", out, expected);
            let rest = &out[expected.len()..];
            proptest::prop_assert!(
                rest.starts_with("via: 1.1 pentaflow\r\n") || rest.starts_with("upgrade: "),
                "{}",
                rest
            );
        }
    }
}

#[cfg(test)]
mod corpus {
    /// The `http_head` fuzz target's checks (the rewritten heads are well-formed, without
    /// hop-by-hop or framing fields) over its seed corpus and every split of each seed, so
    /// `cargo test` catches what the fuzz smoke would on the corpus alone.
    #[test]
    fn fuzz_seed_corpus_passes_the_rewriting_checks() {
        let dir =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/http_head");
        let mut seen = 0;
        for entry in std::fs::read_dir(&dir).expect("fuzz/corpus/http_head") {
            let data = std::fs::read(entry.expect("corpus entry").path()).expect("corpus file");
            seen += 1;
            for cut in 0..=data.len() {
                let piece = &data[..cut];
                let _ = crate::h1::server::fuzz_parse_head(piece, 100);
                let _ = crate::h1::upstream::fuzz_parse_response(piece, cut % 2 == 0);
            }
        }
        assert!(seen > 0, "no seeds in {}", dir.display());
    }
}
