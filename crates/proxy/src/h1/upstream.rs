//! One HTTP/1.1 connection to a back-end, spoken by the task that serves the client.
//!
//! Owns: opening the connection (plain or TLS), writing a request (head and body in as few
//! writes as possible, the head and a body-less request in one), reading response heads
//! (kept as their own bytes, see [`super::head`]; interim `1xx` ones are handed to the caller
//! one at a time, within an [`InterimBudget`]), and [`UpstreamBody`], the response body read
//! straight from the socket by whoever polls it and handed back to the back-end's pool once it
//! ended cleanly. There is no connection task and no channel: every byte is read and written
//! by the polling task. It must not schedule, retry or choose error responses (forward.rs
//! does).

use std::future::Future;
use std::io::{self, IoSlice};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::StatusCode;
use http_body::{Body, Frame, SizeHint};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::Sleep;

use super::framing::{self, BodyError, Decoder, Framing, Step};
use super::head::ResponseHead;
use crate::backend::Backend;

/// Most read from a back-end at a time inside a response body. Large: each read becomes one
/// write to the client, and a 256 KiB body read 16 KiB at a time cost 16 reads and 16 writes
/// (HAProxy reads 16 KiB too, nginx 4–8 KiB); the buffer grows to this size only while such a
/// body is in flight, and goes back to the worker's buffers when it ends.
const READ_CHUNK: usize = 64 * 1024;
/// Largest response head accepted from a back-end.
const MAX_RESPONSE_HEAD: usize = 64 * 1024;

/// The byte stream to a back-end.
pub(crate) enum Io {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl std::fmt::Debug for Io {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Plain(_) => "Io::Plain",
            Self::Tls(_) => "Io::Tls",
        })
    }
}

impl AsyncRead for Io {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Self::Tls(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Io {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Self::Tls(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Self::Tls(s) => Pin::new(s).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Self::Plain(s) => s.is_write_vectored(),
            Self::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_flush(cx),
            Self::Tls(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Self::Tls(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}

/// Writes every slice, with as few (vectored) writes as the socket allows.
pub(crate) async fn write_all_vectored<W: AsyncWrite + Unpin>(
    w: &mut W,
    mut bufs: &mut [IoSlice<'_>],
) -> io::Result<()> {
    IoSlice::advance_slices(&mut bufs, 0);
    while !bufs.is_empty() {
        let n = w.write_vectored(bufs).await?;
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        IoSlice::advance_slices(&mut bufs, n);
    }
    Ok(())
}

/// An open connection to a back-end.
#[derive(Debug)]
pub(crate) struct Upstream {
    pub(crate) io: Io,
    /// Bytes read but not consumed yet. Empty and without capacity while pooled.
    pub(crate) buf: BytesMut,
    /// Whether this connection came from the pool.
    pub(crate) reused: bool,
    /// The PROXY header this connection opened with (`send_proxy`); `None` = none sent.
    /// Boxed: a connection's size weighs on every client connection's future.
    pub(crate) proxied: Option<Box<crate::proxy_protocol::Outbound>>,
    /// The back-end's count of open connections, decremented when this one is dropped.
    open: Arc<AtomicU64>,
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.open.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A failed read of a response head.
#[derive(Debug, thiserror::Error)]
pub(crate) enum HeadError {
    /// The connection closed or failed before any byte of a response.
    #[error("connection closed before any response byte")]
    NothingReceived(#[source] io::Error),
    /// The connection closed or failed inside the head.
    #[error("connection failed inside the response head")]
    Truncated(#[source] io::Error),
    /// The head is not HTTP/1.x, too large, or its framing is invalid.
    #[error("invalid response head: {0}")]
    Invalid(&'static str),
}

impl Upstream {
    /// Wraps a freshly opened stream.
    pub(crate) fn new(io: Io, open: Arc<AtomicU64>) -> Self {
        open.fetch_add(1, Ordering::Relaxed);
        Self {
            io,
            buf: BytesMut::new(),
            reused: false,
            proxied: None,
            open,
        }
    }

    /// Whether a pooled connection is still usable: not closed by the back-end, and nothing
    /// unexpected arrived. Polls the socket once without waiting.
    pub(crate) fn is_alive(&mut self) -> bool {
        if !self.buf.is_empty() {
            return false;
        }
        let mut probe = [0u8; 1];
        let mut rb = ReadBuf::new(&mut probe);
        let mut cx = Context::from_waker(std::task::Waker::noop());
        // Ready means EOF, an error, or bytes nobody asked for: not reusable.
        Pin::new(&mut self.io)
            .poll_read(&mut cx, &mut rb)
            .is_pending()
    }

    /// Gives the read buffer of a connection going idle back to the worker (idle connections
    /// hold no buffer).
    pub(crate) fn park(&mut self) {
        super::give_response_buffer(std::mem::take(&mut self.buf));
        self.reused = true;
    }

    /// Writes a request head and, when given, the body it frames.
    pub(crate) async fn send<B>(
        &mut self,
        head: &[u8],
        body: Option<&mut B>,
        chunked: bool,
    ) -> Result<(), SendError>
    where
        B: Body<Data = Bytes> + Unpin,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let Some(body) = body else {
            return self.io.write_all(head).await.map_err(SendError::Backend);
        };
        let mut head = Some(head);
        let mut body = Pin::new(body);
        loop {
            let frame = std::future::poll_fn(|cx| body.as_mut().poll_frame(cx)).await;
            let frame = match frame {
                None => break,
                Some(Ok(f)) => f,
                Some(Err(e)) => return Err(SendError::Client(e.into())),
            };
            let h = head.take().unwrap_or(&[]);
            match frame.into_data() {
                Ok(data) if data.is_empty() => {
                    if !h.is_empty() {
                        self.io.write_all(h).await.map_err(SendError::Backend)?;
                    }
                }
                Ok(data) => {
                    let line = if chunked {
                        framing::chunk_header(data.len())
                    } else {
                        Vec::new()
                    };
                    let end: &[u8] = if chunked { b"\r\n" } else { b"" };
                    let mut slices = [
                        IoSlice::new(h),
                        IoSlice::new(&line),
                        IoSlice::new(&data),
                        IoSlice::new(end),
                    ];
                    write_all_vectored(&mut self.io, &mut slices)
                        .await
                        .map_err(SendError::Backend)?;
                }
                Err(frame) => {
                    // Trailers of a chunked request body.
                    if let (true, Ok(trailers)) = (chunked, frame.into_trailers()) {
                        let last = framing::last_chunk(Some(&trailers));
                        let mut slices = [IoSlice::new(h), IoSlice::new(&last)];
                        write_all_vectored(&mut self.io, &mut slices)
                            .await
                            .map_err(SendError::Backend)?;
                        return Ok(());
                    }
                }
            }
        }
        let h = head.take().unwrap_or(&[]);
        let last = if chunked {
            framing::last_chunk(None)
        } else {
            Vec::new()
        };
        let mut slices = [IoSlice::new(h), IoSlice::new(&last)];
        write_all_vectored(&mut self.io, &mut slices)
            .await
            .map_err(SendError::Backend)
    }

    /// Reads one response head, an interim `1xx` one included: the caller forwards or drops
    /// it (forward.rs) and calls again for the final head, counting with an [`InterimBudget`].
    pub(crate) async fn read_head(
        &mut self,
        head_request: bool,
    ) -> Result<ResponseHead, HeadError> {
        let mut received_any = !self.buf.is_empty();
        loop {
            if !self.buf.is_empty() {
                match ResponseHead::parse(&mut self.buf, head_request)
                    .map_err(HeadError::Invalid)?
                {
                    Some(head) => return Ok(head),
                    None if self.buf.len() >= MAX_RESPONSE_HEAD => {
                        return Err(HeadError::Invalid("response head too large"))
                    }
                    None => {}
                }
            }
            // Straight into a buffer of the worker's: the body's first bytes usually come with
            // the head and are split from the same buffer, uncopied.
            if self.buf.capacity() == 0 {
                self.buf = super::take_response_buffer();
            } else if self.buf.capacity() - self.buf.len() < 1024 {
                self.buf.reserve(super::RESPONSE_BUFFER_BYTES);
            }
            match std::future::poll_fn(|cx| {
                tokio_util::io::poll_read_buf(Pin::new(&mut self.io), cx, &mut self.buf)
            })
            .await
            {
                Ok(0) => {
                    let e = io::Error::from(io::ErrorKind::UnexpectedEof);
                    return Err(if received_any {
                        HeadError::Truncated(e)
                    } else {
                        HeadError::NothingReceived(e)
                    });
                }
                Ok(_) => received_any = true,
                Err(e) if received_any => return Err(HeadError::Truncated(e)),
                Err(e) => return Err(HeadError::NothingReceived(e)),
            }
        }
    }

    /// Reads the final response head, dropping interim ones (for callers that forward none,
    /// the health checks), within the same [`InterimBudget`].
    pub(crate) async fn read_final_head(
        &mut self,
        head_request: bool,
    ) -> Result<ResponseHead, HeadError> {
        let mut budget = InterimBudget::default();
        loop {
            let head = self.read_head(head_request).await?;
            if !is_interim(head.status) {
                return Ok(head);
            }
            if !budget.admit(&head) {
                return Err(HeadError::Invalid(INTERIM_FLOOD));
            }
        }
    }
}

/// Most interim responses waited through before the final one. Real back-ends send one or
/// two (a `103` per batch of hints, a `102` now and then on a long WebDAV request); one that
/// sends more is broken or hostile, and a proxy that waited forever would loop on its bytes.
pub(crate) const MAX_INTERIM: u32 = 16;
/// Most bytes of interim heads waited through before the final one (each head is also under
/// the 64 KiB head limit, and none is kept once forwarded: this bounds work, not memory).
pub(crate) const MAX_INTERIM_BYTES: usize = 64 * 1024;
/// Why a back-end's answer was refused when it passed [`MAX_INTERIM`] or [`MAX_INTERIM_BYTES`].
pub(crate) const INTERIM_FLOOD: &str = "too many interim (1xx) responses";

/// Whether a head is an interim response to wait through: a `1xx` other than `101`, which is
/// final (the connection becomes a tunnel).
pub(crate) fn is_interim(status: StatusCode) -> bool {
    status.is_informational() && status != StatusCode::SWITCHING_PROTOCOLS
}

/// The interim responses one request has received so far, against the bounds above.
#[derive(Debug, Default)]
pub(crate) struct InterimBudget {
    count: u32,
    bytes: usize,
}

impl InterimBudget {
    /// Counts one interim head: `false` once the back-end has sent more than is waited through.
    pub(crate) fn admit(&mut self, head: &ResponseHead) -> bool {
        self.count += 1;
        self.bytes = self.bytes.saturating_add(head.wire_len());
        self.count <= MAX_INTERIM && self.bytes <= MAX_INTERIM_BYTES
    }

    /// Whether any interim head arrived (the back-end has the request: not a stale connection).
    pub(crate) fn any(&self) -> bool {
        self.count > 0
    }
}

/// A failed request write.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SendError {
    /// Writing to the back-end failed.
    #[error("writing the request to the back-end failed")]
    Backend(#[source] io::Error),
    /// The client's body failed (bad chunk, cut off, too slow): the client's fault.
    #[error("the client's request body failed")]
    Client(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// [`ResponseHead::check`] for the fuzz target: the head's length, or why it is refused.
/// A complete head also parses on its own bytes, and what it forwards never carries the
/// back-end's framing fields or a hop-by-hop field.
pub(crate) fn fuzz_parse_response(buf: &[u8], head_request: bool) -> Result<Option<usize>, String> {
    match ResponseHead::check(buf, head_request) {
        Ok(Some(used)) => {
            assert!(used <= buf.len());
            let head = ResponseHead::take(Bytes::copy_from_slice(&buf[..used]), head_request)
                .map_err(str::to_owned)?;
            let map = head.header_map(false);
            assert!(map.get(http::header::TRANSFER_ENCODING).is_none());
            assert!(map.get(http::header::CONNECTION).is_none());
            if head.dropped_length {
                assert!(map.get(http::header::CONTENT_LENGTH).is_none());
            }
            let mut out = Vec::new();
            head.write_client(false, b"", &mut out);
            out.extend_from_slice(b"\r\n");
            // What goes to the client is itself one well-formed head of the same length.
            let mut fields = [httparse::EMPTY_HEADER; 256];
            let mut again = httparse::Response::new(&mut fields);
            assert_eq!(
                again.parse(&out).ok(),
                Some(httparse::Status::Complete(out.len()))
            );
            if is_interim(head.status) {
                // An interim head is forwarded as it is, complete on its own, and never carries
                // a framing field (it frames nothing).
                let mut interim = Vec::new();
                head.write_interim(&mut interim);
                let mut fields = [httparse::EMPTY_HEADER; 256];
                let mut parsed = httparse::Response::new(&mut fields);
                assert_eq!(
                    parsed.parse(&interim).ok(),
                    Some(httparse::Status::Complete(interim.len()))
                );
                assert_eq!(parsed.code, Some(head.status.as_u16()));
                assert!(parsed.headers.iter().all(|h| {
                    !h.name.eq_ignore_ascii_case("transfer-encoding")
                        && !h.name.eq_ignore_ascii_case("content-length")
                        && !h.name.eq_ignore_ascii_case("connection")
                }));
            }
            // The client side frames anew, except that a bodiless answer to HEAD or a 304
            // keeps the back-end's `Content-Length` (RFC 9110 §8.6: it says what a GET would
            // have carried, and it frames nothing here).
            assert!(again.headers.iter().all(|h| {
                !h.name.eq_ignore_ascii_case("transfer-encoding")
                    && (head.keep_length_field || !h.name.eq_ignore_ascii_case("content-length"))
            }));
            Ok(Some(used))
        }
        Ok(None) => Ok(None),
        Err(e) => Err(e.to_owned()),
    }
}

/// Where a finished response body returns its connection.
pub(crate) struct Return {
    pub(crate) backend: Arc<Backend>,
    /// Pool it (keep-alive on, response allows it) or close it.
    pub(crate) pool: bool,
}

/// Why a response body stopped early.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ResponseBodyError {
    #[error("back-end response body: {0}")]
    Framing(#[from] BodyError),
    #[error("reading the back-end response body failed")]
    Io(#[source] io::Error),
    #[error("the back-end sent nothing for {0:?} inside a response body")]
    Timeout(Duration),
}

/// A response body read from a back-end connection by whoever polls it.
pub(crate) struct UpstreamBody {
    conn: Option<Upstream>,
    decoder: Decoder,
    framing: Framing,
    give_back: Option<Return>,
    /// Inactivity allowed between two reads from the back-end.
    read_timeout: Duration,
    timer: Option<Pin<Box<Sleep>>>,
}

impl UpstreamBody {
    pub(crate) fn new(
        conn: Upstream,
        framing: Framing,
        give_back: Return,
        read_timeout: Duration,
    ) -> Self {
        let mut body = Self {
            conn: Some(conn),
            decoder: Decoder::new(framing),
            framing,
            give_back: Some(give_back),
            read_timeout,
            timer: None,
        };
        if body.decoder.is_done() {
            body.release();
        }
        body
    }

    /// A body that is over before it starts (after `101`, the connection went to the tunnel).
    pub(crate) fn empty() -> Self {
        Self {
            conn: None,
            decoder: Decoder::new(Framing::Empty),
            framing: Framing::Empty,
            give_back: None,
            read_timeout: Duration::ZERO,
            timer: None,
        }
    }

    /// The body ended cleanly: the connection goes back to the pool (or is closed).
    fn release(&mut self) {
        let (Some(mut conn), Some(ret)) = (self.conn.take(), self.give_back.take()) else {
            return;
        };
        // Bytes after the end of the response mean the back-end is out of step: close.
        if ret.pool && conn.buf.is_empty() {
            conn.park();
            ret.backend.checkin(conn);
        }
    }

    fn poll_next(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, ResponseBodyError>>> {
        loop {
            let Some(conn) = self.conn.as_mut() else {
                return Poll::Ready(None);
            };
            match self.decoder.decode(&mut conn.buf) {
                Err(e) => {
                    self.conn = None;
                    return Poll::Ready(Some(Err(e.into())));
                }
                Ok(Step::Data(d)) => {
                    if self.decoder.is_done() {
                        self.release();
                    }
                    return Poll::Ready(Some(Ok(Frame::data(d))));
                }
                Ok(Step::Trailers(t)) => {
                    self.release();
                    return Poll::Ready(Some(Ok(Frame::trailers(t))));
                }
                Ok(Step::End) => {
                    self.release();
                    return Poll::Ready(None);
                }
                Ok(Step::NeedMore) => {}
            }
            // Read no further than the body when its length is known.
            let want = self.decoder.remaining().map_or(READ_CHUNK, |n| {
                usize::try_from(n).unwrap_or(usize::MAX).min(READ_CHUNK)
            });
            if conn.buf.capacity() - conn.buf.len() < want {
                conn.buf.reserve(want);
            }
            match tokio_util::io::poll_read_buf(Pin::new(&mut conn.io), cx, &mut conn.buf) {
                Poll::Ready(Ok(0)) => {
                    self.conn = None;
                    self.give_back = None;
                    return match self.decoder.eof() {
                        Ok(()) => Poll::Ready(None),
                        Err(e) => Poll::Ready(Some(Err(e.into()))),
                    };
                }
                Poll::Ready(Ok(_)) => {
                    if let Some(t) = self.timer.as_mut() {
                        t.as_mut()
                            .reset(tokio::time::Instant::now() + self.read_timeout);
                    }
                }
                Poll::Ready(Err(e)) => {
                    self.conn = None;
                    return Poll::Ready(Some(Err(ResponseBodyError::Io(e))));
                }
                Poll::Pending => {
                    let timeout = self.read_timeout;
                    let timer = self
                        .timer
                        .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
                    if timer.as_mut().poll(cx).is_ready() {
                        self.conn = None;
                        return Poll::Ready(Some(Err(ResponseBodyError::Timeout(timeout))));
                    }
                    return Poll::Pending;
                }
            }
        }
    }
}

impl Body for UpstreamBody {
    type Data = Bytes;
    type Error = ResponseBodyError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        self.poll_next(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.conn.is_none() || self.decoder.is_done()
    }

    fn size_hint(&self) -> SizeHint {
        match (self.framing, self.decoder.remaining()) {
            (Framing::Empty, _) => SizeHint::with_exact(0),
            (Framing::Length(_), Some(n)) => SizeHint::with_exact(n),
            (Framing::Length(_), None) => SizeHint::with_exact(0),
            _ => SizeHint::default(),
        }
    }
}

/// Opens a TCP (and, for `[service.backend_tls]`, TLS) connection to a back-end, writing the
/// PROXY header of `proxy` first (before TLS, as HAProxy's `send-proxy` does).
pub(crate) async fn open(
    address: SocketAddr,
    tls: Option<&crate::upstream_tls::UpstreamTls>,
    timeout: Duration,
    open: Arc<AtomicU64>,
    proxy: Option<(
        pentaflow_config::ProxyVersion,
        crate::proxy_protocol::Outbound,
    )>,
) -> Result<Upstream, crate::error::UpstreamError> {
    use crate::error::UpstreamError;
    let stream = match tokio::time::timeout(timeout, TcpStream::connect(address)).await {
        Ok(Ok(s)) => s,
        Ok(Err(source)) => return Err(UpstreamError::Connect { address, source }),
        Err(_) => return Err(UpstreamError::ConnectTimeout { address }),
    };
    // Small requests and responses: don't let Nagle hold the last segment back.
    let _ = stream.set_nodelay(true);
    let mut stream = stream;
    if let Some((version, origin)) = proxy {
        use tokio::io::AsyncWriteExt;
        let header = crate::proxy_protocol::build(version, origin);
        // A few dozen bytes into an empty send buffer: only a dead peer makes this wait.
        match tokio::time::timeout(timeout, stream.write_all(&header)).await {
            Ok(Ok(())) => {}
            Ok(Err(source)) => return Err(UpstreamError::Connect { address, source }),
            Err(_) => return Err(UpstreamError::ConnectTimeout { address }),
        }
    }
    let stream = stream;
    let io = match tls {
        None => Io::Plain(stream),
        Some(tls) => {
            let name = tls.server_name(address);
            match tokio::time::timeout(timeout, tls.connector.connect(name, stream)).await {
                Ok(Ok(s)) => Io::Tls(Box::new(s)),
                Ok(Err(source)) => return Err(UpstreamError::Connect { address, source }),
                Err(_) => return Err(UpstreamError::ConnectTimeout { address }),
            }
        }
    };
    let mut conn = Upstream::new(io, open);
    conn.proxied = proxy.map(|(_, origin)| Box::new(origin));
    Ok(conn)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(raw: &[u8], head_request: bool) -> Result<Option<ResponseHead>, &'static str> {
        ResponseHead::parse(&mut BytesMut::from(raw), head_request)
    }

    #[test]
    fn interim_heads_are_written_whole_without_hop_by_hop_fields() {
        let raw = b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\
Connection: x-hop\r\nX-Hop: 1\r\nVia: 1.1 app\r\n\r\n";
        assert_eq!(fuzz_parse_response(raw, false), Ok(Some(raw.len())));
        let head = parse(raw, false).unwrap().unwrap();
        assert!(is_interim(head.status));
        let mut out = Vec::new();
        head.write_interim(&mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\
via: 1.1 app, 1.1 pentaflow\r\n\r\n"
        );
        assert!(!is_interim(StatusCode::SWITCHING_PROTOCOLS) && !is_interim(StatusCode::OK));
    }

    #[test]
    fn the_interim_budget_stops_a_flood_by_count_and_by_bytes() {
        let small = parse(b"HTTP/1.1 102 Processing\r\n\r\n", false)
            .unwrap()
            .unwrap();
        let mut budget = InterimBudget::default();
        assert!(!budget.any());
        for _ in 0..MAX_INTERIM {
            assert!(budget.admit(&small));
        }
        assert!(budget.any() && !budget.admit(&small));
        let big = format!(
            "HTTP/1.1 103 Early Hints\r\nLink: {}\r\n\r\n",
            "x".repeat(40_000)
        );
        let big = parse(big.as_bytes(), false).unwrap().unwrap();
        let mut budget = InterimBudget::default();
        assert!(budget.admit(&big));
        assert!(
            !budget.admit(&big),
            "two 40 KB heads pass MAX_INTERIM_BYTES"
        );
    }

    #[test]
    fn response_heads_drop_a_length_that_comes_with_chunked() {
        let raw =
            b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\nX: y\r\n\r\n";
        let head = parse(raw, false).unwrap().unwrap();
        assert_eq!(head.framing, Framing::Chunked);
        assert!(head.dropped_length);
        let map = head.header_map(false);
        assert!(map.get("content-length").is_none());
        assert!(map.get("transfer-encoding").is_none());
        assert!(head.keep_alive);
    }

    #[test]
    fn response_heads_say_when_the_connection_cannot_be_reused() {
        let close = parse(
            b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
            false,
        )
        .unwrap()
        .unwrap();
        assert!(!close.keep_alive);
        let eof = parse(b"HTTP/1.1 200 OK\r\n\r\n", false).unwrap().unwrap();
        assert_eq!(eof.framing, Framing::Close);
        assert!(!eof.keep_alive);
        let old = parse(b"HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\n", false)
            .unwrap()
            .unwrap();
        assert!(!old.keep_alive);
        assert!(parse(
            b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
            false
        )
        .is_err());
        assert!(parse(b"HTTP/1.1 2000 OK\r\n\r\n", false).is_err());
        assert!(parse(b"HTTP/1.1 200 OK\r\n", false).unwrap().is_none());
    }
}
