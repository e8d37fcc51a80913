//! The client side of the HTTP/1.1 engine: one task serves one client connection.
//!
//! Owns the request loop of a keep-alive connection: waiting for the next request without a
//! buffer, reading and parsing its head with `httparse` (limits → 431, slowness → 408,
//! malformed or ambiguous framing → 400, always followed by a close), the client's body as a
//! [`ClientBody`] that forward.rs streams to the back-end from this same task (answering
//! `Expect: 100-continue` when it is first read, timing the client for what the client does,
//! and writing a back-end's interim `1xx` responses to an HTTP/1.1 client as forward.rs reads
//! them: the body is what holds the connection while the request is in flight),
//! writing each response head with its first body bytes in one vectored write, exact framing
//! towards the client (Content-Length, chunked with trailers, or close), pipelining, upgrades
//! (after `101` the connection becomes a byte tunnel to the back-end) and draining on shutdown.
//! It must not schedule, choose back-ends or build error texts (forward.rs and respond.rs).

use std::future::Future;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::header::{self, HeaderMap};
use http::{StatusCode, Version};
use http_body::{Body, Frame, SizeHint};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::sync::watch;
use tokio::time::{Instant, Sleep};

use super::framing::{self, Decoder, Framing, Step};
use super::head::{HeadProblem, RequestHead};
use super::upstream::write_all_vectored;
use crate::forward::{self, ClientInfo, Reply, ReplyHead};
use crate::node::Shared;
use crate::respond::Refusal;

/// How much is read from a client at a time (and the buffer a request in flight holds).
const READ_CHUNK: usize = 8 * 1024;

/// A client connection's byte stream, with a way to wait for bytes without holding a buffer.
pub(crate) trait ClientStream: AsyncRead + AsyncWrite + Unpin + Send {
    /// Ready when a read would find bytes (or EOF). Streams that may hold decrypted bytes of
    /// their own are ready at once. A poll function, not a future: the idle wait is one small
    /// hand-written future (tokio's `readable()` nests three async fns, ~200 bytes).
    fn poll_readable(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>>;

    /// Whether an idle connection on this stream may be handed back to its caller to be
    /// parked outside its task (see crate::park): only a stream that holds no bytes of its own.
    const PARKABLE: bool = false;
}

/// How long a keep-alive connection waits for its next request inside its task before it is
/// parked (when its stream allows; see `crate::park`). A client in the middle of a burst (a
/// page's sub-resources, an API client's loop) sends its next request sooner, so the hot path
/// never pays for the park; one that pauses longer pays one task spawn (about a microsecond)
/// when it returns, nothing next to its pause. Short, so that a burst of new connections going
/// idle together (a page load by many browsers at once) does not keep a full serving task
/// each for long: their memory is reused by the next ones instead of piling up.
const PARK_AFTER: Duration = Duration::from_millis(100);

impl ClientStream for tokio::net::TcpStream {
    fn poll_readable(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_read_ready(cx)
    }

    const PARKABLE: bool = true;
}

impl ClientStream for Box<tokio_rustls::server::TlsStream<tokio::net::TcpStream>> {
    fn poll_readable(&self, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // rustls may already hold a decrypted request (pipelined behind the last one).
        Poll::Ready(Ok(()))
    }
}

/// The state of the current request's body, as the connection needs to know it afterwards.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BodyState {
    /// Fully read (or there was none): the connection may carry another request.
    Done,
    /// Not (fully) read: the rest is still on the wire, so the connection must close.
    Unread,
    /// Broken (bad chunk, cut off, too slow): the connection must close.
    Failed,
}

/// A client connection: its stream and, while a request is in flight, its read buffer.
struct Conn<S> {
    io: S,
    buf: BytesMut,
    body: BodyState,
}

/// Why a client's body could not be read.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ClientBodyError {
    #[error("request body: {0}")]
    Framing(#[from] framing::BodyError),
    #[error("reading the request body failed")]
    Io(#[source] io::Error),
    #[error("the client sent no body bytes within the body timeout")]
    Timeout,
    #[error("the request body is larger than max_body_bytes")]
    TooLarge,
}

/// The client's request body, read from its connection by the task that forwards it.
pub(crate) struct ClientBody<'a, S> {
    conn: &'a mut Conn<S>,
    decoder: Decoder,
    /// `100 Continue` still to be written (bytes written so far).
    continue_written: Option<usize>,
    timeout: Duration,
    timer: Option<Pin<Box<Sleep>>>,
    /// Bytes still allowed by `max_body_bytes`.
    allowance: u64,
    /// For an HTTP/1.1 client, the send timeout its interim responses are written within;
    /// `None` for an HTTP/1.0 client, which gets none (RFC 9110 §15.2).
    interim: Option<Duration>,
}

impl<S: ClientStream> forward::InterimSink for ClientBody<'_, S> {
    fn takes_interim(&self) -> bool {
        self.interim.is_some()
    }

    async fn send_interim(&mut self, head: &[u8]) -> io::Result<()> {
        let Some(timeout) = self.interim else {
            return Ok(());
        };
        // The request's body was sent whole before any response head is read, so a
        // `100 Continue` of the node's own is never cut in two by an interim head.
        let io = &mut self.conn.io;
        send(io, &mut [IoSlice::new(head)], timeout).await?;
        // Flushed: a TLS stream would otherwise keep the hints until the final head.
        io.flush().await
    }
}

const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

impl<S: ClientStream> ClientBody<'_, S> {
    fn fail(&mut self, e: ClientBodyError) -> Poll<Option<Result<Frame<Bytes>, ClientBodyError>>> {
        self.conn.body = BodyState::Failed;
        Poll::Ready(Some(Err(e)))
    }
}

impl<S: ClientStream> Body for ClientBody<'_, S> {
    type Data = Bytes;
    type Error = ClientBodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, ClientBodyError>>> {
        let this = self.get_mut();
        if this.conn.body != BodyState::Unread {
            return Poll::Ready(None);
        }
        while let Some(done) = this.continue_written {
            if done == CONTINUE.len() {
                match Pin::new(&mut this.conn.io).poll_flush(cx) {
                    Poll::Ready(Ok(())) => this.continue_written = None,
                    Poll::Ready(Err(e)) => return this.fail(ClientBodyError::Io(e)),
                    Poll::Pending => return Poll::Pending,
                }
                break;
            }
            match Pin::new(&mut this.conn.io).poll_write(cx, &CONTINUE[done..]) {
                Poll::Ready(Ok(0)) => {
                    return this.fail(ClientBodyError::Io(io::ErrorKind::WriteZero.into()))
                }
                Poll::Ready(Ok(n)) => this.continue_written = Some(done + n),
                Poll::Ready(Err(e)) => return this.fail(ClientBodyError::Io(e)),
                Poll::Pending => return Poll::Pending,
            }
        }
        loop {
            match this.decoder.decode(&mut this.conn.buf) {
                Err(e) => return this.fail(e.into()),
                Ok(Step::Data(d)) => {
                    let len = d.len() as u64;
                    if len > this.allowance {
                        return this.fail(ClientBodyError::TooLarge);
                    }
                    this.allowance -= len;
                    if this.decoder.is_done() {
                        this.conn.body = BodyState::Done;
                    }
                    return Poll::Ready(Some(Ok(Frame::data(d))));
                }
                Ok(Step::Trailers(t)) => {
                    this.conn.body = BodyState::Done;
                    return Poll::Ready(Some(Ok(Frame::trailers(t))));
                }
                Ok(Step::End) => {
                    this.conn.body = BodyState::Done;
                    return Poll::Ready(None);
                }
                Ok(Step::NeedMore) => {}
            }
            let want = this.decoder.remaining().map_or(READ_CHUNK, |n| {
                usize::try_from(n).unwrap_or(usize::MAX).min(READ_CHUNK)
            });
            if this.conn.buf.capacity() - this.conn.buf.len() < want {
                this.conn.buf.reserve(want);
            }
            match tokio_util::io::poll_read_buf(Pin::new(&mut this.conn.io), cx, &mut this.conn.buf)
            {
                Poll::Ready(Ok(0)) => {
                    return this.fail(ClientBodyError::Framing(framing::BodyError::Truncated))
                }
                Poll::Ready(Ok(_)) => {
                    if let Some(t) = this.timer.as_mut() {
                        t.as_mut().reset(Instant::now() + this.timeout);
                    }
                }
                Poll::Ready(Err(e)) => return this.fail(ClientBodyError::Io(e)),
                Poll::Pending => {
                    let timeout = this.timeout;
                    let timer = this
                        .timer
                        .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
                    if timer.as_mut().poll(cx).is_ready() {
                        return this.fail(ClientBodyError::Timeout);
                    }
                    return Poll::Pending;
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.conn.body != BodyState::Unread
    }

    fn size_hint(&self) -> SizeHint {
        match self.decoder.remaining() {
            Some(n) => SizeHint::with_exact(n),
            None => SizeHint::default(),
        }
    }
}

/// [`RequestHead::check`] for the fuzz target: the head's length, or the status it is refused
/// with. A complete head also parses on its own bytes, and what goes to a back-end is itself
/// one well-formed head with no hop-by-hop field the client sent.
pub(crate) fn fuzz_parse_head(buf: &[u8], max_headers: usize) -> Result<Option<usize>, u16> {
    let max_headers = max_headers.clamp(1, 1000);
    match RequestHead::check(buf, max_headers) {
        Ok(Some(used)) => {
            assert!(used <= buf.len());
            let head = RequestHead::take(Bytes::copy_from_slice(&buf[..used]), max_headers)
                .map_err(|_| 400u16)?;
            if head.framing.is_err() {
                return Err(400);
            }
            let side = crate::headers::ClientSide::new([192, 0, 2, 1].into(), false);
            let mut out = Vec::new();
            head.write_upstream(&side, &HeaderMap::new(), true, &mut out);
            let mut fields = vec![httparse::EMPTY_HEADER; max_headers + 16];
            let mut again = httparse::Request::new(&mut fields);
            assert_eq!(
                again.parse(&out).ok(),
                Some(httparse::Status::Complete(out.len()))
            );
            assert!(!out[..out.len() - 2]
                .windows(2)
                .any(|w| w[1] == b'\n' && w[0] != b'\r'));
            let te = again
                .headers
                .iter()
                .filter(|h| h.name.eq_ignore_ascii_case("transfer-encoding"))
                .count();
            assert_eq!(te, 1, "only the framing field the proxy writes");
            assert!(again.headers.iter().all(|h| {
                !h.name.eq_ignore_ascii_case("keep-alive")
                    && !h.name.eq_ignore_ascii_case("proxy-connection")
                    && !h.name.eq_ignore_ascii_case("te")
                    && !h.name.eq_ignore_ascii_case("expect")
            }));
            Ok(Some(used))
        }
        Ok(None) => Ok(None),
        Err(HeadProblem::TooLarge) => Err(431),
        Err(HeadProblem::Malformed) => Err(400),
    }
}

/// The limits that apply while a head is awaited (a small copy, not the whole `Limits`).
struct HeadLimits {
    header_read_timeout: Duration,
    idle_timeout: Duration,
    max_headers: usize,
    max_header_bytes: usize,
}

impl HeadLimits {
    fn of(l: &pentaflow_config::Limits) -> Self {
        Self {
            header_read_timeout: l.header_read_timeout,
            idle_timeout: l.idle_timeout,
            max_headers: l.max_headers,
            max_header_bytes: l.max_header_bytes,
        }
    }
}

/// How waiting for a request head ended.
enum Wait {
    /// A complete head; its bytes are removed from the buffer.
    Head(Box<RequestHead>),
    /// The client closed (or the node drains) between requests: close quietly.
    Closed,
    /// The head is refused: answer and close.
    Refused(Refusal),
    /// Idle for [`PARK_AFTER`] with nothing buffered: park the stream until this deadline.
    Park(Instant),
}

/// How serving a connection ended.
pub(crate) enum Ended<S> {
    /// The connection is closed (or is being closed).
    Done,
    /// Idle, nothing buffered, no request in flight: the caller parks it and serves it again
    /// (not as a first request) when it becomes readable, or closes it at `deadline`.
    Park {
        io: S,
        client: ClientInfo,
        deadline: Instant,
    },
}

/// Reads the next request head. `first` = nothing was served yet on this connection.
async fn next_head<S: ClientStream>(
    conn: &mut Conn<S>,
    shared: &Shared,
    first: bool,
    draining: &mut watch::Receiver<bool>,
) -> Wait {
    // Only what the wait needs, copied: this future is what an idle connection holds.
    let limits = HeadLimits::of(&shared.state.load().limits);
    let mut head_deadline = None;
    loop {
        if !conn.buf.is_empty() {
            match RequestHead::parse(&mut conn.buf, limits.max_headers) {
                Ok(Some(head)) => {
                    if head.bytes().len() > limits.max_header_bytes {
                        return Wait::Refused(Refusal::HeadTooLarge);
                    }
                    return Wait::Head(Box::new(head));
                }
                Ok(None) if conn.buf.len() > limits.max_header_bytes => {
                    return Wait::Refused(Refusal::HeadTooLarge)
                }
                Ok(None) => {}
                Err(HeadProblem::TooLarge) => return Wait::Refused(Refusal::HeadTooLarge),
                Err(HeadProblem::Malformed) => return Wait::Refused(Refusal::BadRequest),
            }
            // The header timeout runs from the head's first bytes.
            head_deadline.get_or_insert_with(|| Instant::now() + limits.header_read_timeout);
        }
        match head_deadline {
            None => {
                // Between requests: wait for the first byte without holding a buffer.
                let idle = if first {
                    limits.header_read_timeout
                } else {
                    limits.idle_timeout
                };
                match wait_first_bytes(conn, idle, !first && S::PARKABLE, draining).await {
                    Idle::Bytes => {}
                    Idle::Closed => return Wait::Closed,
                    Idle::Park(deadline) => return Wait::Park(deadline),
                }
            }
            Some(deadline) => {
                let read =
                    tokio::time::timeout_at(deadline, read_some(&mut conn.io, &mut conn.buf));
                match read.await {
                    Ok(Ok(0)) | Ok(Err(_)) => return Wait::Closed,
                    Ok(Ok(_)) => {}
                    Err(_) => return Wait::Refused(Refusal::RequestTimeout),
                }
            }
        }
    }
}

/// How an idle wait ended.
enum Idle {
    /// The first bytes of a request were read.
    Bytes,
    /// The client closed, `idle` passed or the node drains.
    Closed,
    /// `park` and [`PARK_AFTER`] passed first: park until the deadline.
    Park(Instant),
}

/// Waits between requests for the first bytes of the next one, holding no buffer, and reads
/// them. With `park`, the wait inside the task ends after [`PARK_AFTER`] (if `idle` is
/// longer) so the connection can be parked outside it. One hand-written future (the timer,
/// the drain signal and readiness polled in turn) so that what an idle connection holds stays
/// small.
async fn wait_first_bytes<S: ClientStream>(
    conn: &mut Conn<S>,
    idle: Duration,
    park: bool,
    draining: &mut watch::Receiver<bool>,
) -> Idle {
    let park = park && idle > PARK_AFTER;
    let timer = tokio::time::sleep(if park { PARK_AFTER } else { idle });
    let mut timer = std::pin::pin!(timer);
    let changed = draining.changed();
    let mut changed = std::pin::pin!(changed);
    let mut readable = false;
    std::future::poll_fn(|cx| {
        if changed.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Idle::Closed);
        }
        if !readable {
            match conn.io.poll_readable(cx) {
                Poll::Ready(Ok(())) => readable = true,
                Poll::Ready(Err(_)) => return Poll::Ready(Idle::Closed),
                Poll::Pending => {}
            }
        }
        if readable {
            match super::poll_read_via_scratch(&mut conn.io, cx, &mut conn.buf) {
                Poll::Ready(Ok(n)) if n > 0 => return Poll::Ready(Idle::Bytes),
                Poll::Ready(_) => return Poll::Ready(Idle::Closed),
                Poll::Pending => readable = false,
            }
        }
        match timer.as_mut().poll(cx) {
            Poll::Ready(()) if park => {
                let idle_from = timer.deadline() - PARK_AFTER;
                Poll::Ready(Idle::Park(idle_from + idle))
            }
            Poll::Ready(()) => Poll::Ready(Idle::Closed),
            Poll::Pending => Poll::Pending,
        }
    })
    .await
}

/// Reads the next bytes within `within`: `false` if the client closed or sent nothing.
async fn read_within<S: ClientStream>(conn: &mut Conn<S>, within: Duration) -> bool {
    matches!(
        tokio::time::timeout(within, read_some(&mut conn.io, &mut conn.buf)).await,
        Ok(Ok(n)) if n > 0
    )
}

/// Reads what is there (through the worker's scratch buffer) and appends it to `buf`.
async fn read_some<S: AsyncRead + Unpin>(io: &mut S, buf: &mut BytesMut) -> io::Result<usize> {
    super::read_via_scratch(io, buf).await
}

/// Serves HTTP/1.1 on an accepted (and possibly decrypted) client connection until it ends,
/// the node drains or it idles long enough to be parked. `first`: no request was served on
/// it yet (a parked connection comes back with `false`).
pub(crate) async fn serve<S: ClientStream>(
    shared: Arc<Shared>,
    client: ClientInfo,
    io: S,
    mut draining: watch::Receiver<bool>,
    mut first: bool,
) -> Ended<S> {
    let mut conn = Conn {
        io,
        buf: BytesMut::new(),
        body: BodyState::Done,
    };
    loop {
        // Draining: no further request on a connection that was served.
        if *draining.borrow_and_update() && !first {
            return Ended::Done;
        }
        if conn.buf.is_empty() {
            // Idle connections hold no buffer.
            conn.buf = BytesMut::new();
        }
        let head = match next_head(&mut conn, &shared, first, &mut draining).await {
            Wait::Head(h) => h,
            Wait::Park(deadline) => {
                return Ended::Park {
                    io: conn.io,
                    client,
                    deadline,
                }
            }
            Wait::Closed => {
                // A connection that has not sent its first request yet is waited for even
                // when the node drains: its client connected to a socket that was open and may
                // already be sending (closing it now would fail a request the node accepted,
                // e.g. during a binary upgrade). Boxed: a rare path, kept out of the idle
                // future. The request is then served with `Connection: close`.
                if first && *draining.borrow() {
                    let within = shared.state.load().limits.header_read_timeout;
                    if Box::pin(read_within(&mut conn, within)).await {
                        continue;
                    }
                }
                return Ended::Done;
            }
            Wait::Refused(refusal) => {
                shared.counters.refusal(refusal);
                // Boxed, like the rare paths below: the idle future stays small.
                let _ = Box::pin(write_local(&mut conn.io, refusal)).await;
                let _ = conn.io.shutdown().await;
                return Ended::Done;
            }
        };
        first = false;
        // Boxed: the idle connection's future stays small, the request's state lives only
        // while it is in flight.
        let keep = Box::pin(exchange(&shared, &client, &mut conn, *head, &draining)).await;
        match keep {
            Next::KeepAlive => {}
            Next::Close => {
                let _ = conn.io.shutdown().await;
                return Ended::Done;
            }
            Next::Tunnel(up) => {
                Box::pin(tunnel(conn, up)).await;
                return Ended::Done;
            }
        }
    }
}

/// What the connection does after a response.
enum Next {
    KeepAlive,
    Close,
    Tunnel(super::upstream::Upstream),
}

/// One request and its response.
async fn exchange<S: ClientStream>(
    shared: &Shared,
    client: &ClientInfo,
    conn: &mut Conn<S>,
    head: RequestHead,
    draining: &watch::Receiver<bool>,
) -> Next {
    let keep_alive = head.keep_alive;
    let expect_continue = head.expect_continue;
    let head_request = head.method_bytes() == b"HEAD";
    let version = head.version;
    let (framing, early) = match head.framing {
        Ok(f) => (f, None),
        Err(e) => (Framing::Empty, Some(Refusal::BadFraming(e))),
    };
    let state = shared.state.load();
    let max_body = state
        .by_listen
        .get(&client.listener)
        .map_or(u64::MAX, |s| s.config.max_body_bytes.unwrap_or(u64::MAX));
    let body_timeout = state.limits.client_body_timeout;
    let send_timeout = state.limits.send_timeout;
    drop(state);
    // A declared length over the limit is refused before any byte is forwarded.
    let early = early.or(match framing {
        Framing::Length(n) if n > max_body => Some(Refusal::BodyTooLarge),
        _ => None,
    });
    conn.body = if framing == Framing::Empty {
        BodyState::Done
    } else {
        BodyState::Unread
    };
    let body = ClientBody {
        decoder: Decoder::new(if early.is_some() {
            Framing::Empty
        } else {
            framing
        }),
        continue_written: (expect_continue && framing != Framing::Empty).then_some(0),
        timeout: body_timeout,
        timer: None,
        allowance: max_body,
        interim: (version == Version::HTTP_11).then_some(send_timeout),
        conn,
    };
    let reply = forward::handle_head(shared, client, head, body, early, true).await;
    let closing = !keep_alive || conn.body != BodyState::Done || *draining.borrow();
    match write_response(
        &mut conn.io,
        reply,
        head_request,
        version,
        closing,
        send_timeout,
    )
    .await
    {
        Ok(Written::KeepAlive) if !closing => Next::KeepAlive,
        Ok(Written::Tunnel(up)) => Next::Tunnel(up),
        Ok(_) => Next::Close,
        Err(WriteError::Client(e)) => {
            if e.kind() == io::ErrorKind::TimedOut {
                shared
                    .counters
                    .send_timeouts
                    .fetch_add(1, Ordering::Relaxed);
            }
            tracing::debug!(peer = %client.peer, error = %e, "response to the client failed");
            Next::Close
        }
        Err(WriteError::Body(e)) => {
            shared
                .counters
                .response_body_errors
                .fetch_add(1, Ordering::Relaxed);
            tracing::warn!(peer = %client.peer, error = %e,
                "response body failed: the client's connection is closed so it sees the truncation");
            Next::Close
        }
    }
}

/// Why a response could not be written to the end.
#[derive(Debug, thiserror::Error)]
enum WriteError {
    /// Writing to the client failed or timed out.
    #[error("writing to the client failed")]
    Client(#[source] io::Error),
    /// The body (a back-end's) broke or disagreed with its length.
    #[error("response body: {0}")]
    Body(String),
}

impl From<io::Error> for WriteError {
    fn from(e: io::Error) -> Self {
        Self::Client(e)
    }
}

/// How a response was written.
enum Written {
    KeepAlive,
    Close,
    Tunnel(super::upstream::Upstream),
}

/// The status line of a response.
fn status_line(out: &mut Vec<u8>, status: StatusCode) {
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(status.canonical_reason().unwrap_or("Unknown").as_bytes());
    out.extend_from_slice(b"\r\n");
}

fn encode_fields(out: &mut Vec<u8>, headers: &HeaderMap) {
    for (k, v) in headers {
        out.extend_from_slice(k.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(v.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
}

/// Writes `w` within the send timeout (a client that reads too slowly is cut off).
async fn send<W: AsyncWrite + Unpin>(
    w: &mut W,
    slices: &mut [IoSlice<'_>],
    timeout: Duration,
) -> io::Result<()> {
    let mut write = std::pin::pin!(write_all_vectored(w, slices));
    // Almost every write goes into the socket buffer at once: the timer (a clock read and an
    // entry in the timer wheel) is set only for one that has to wait.
    if let Poll::Ready(done) = std::future::poll_fn(|cx| Poll::Ready(write.as_mut().poll(cx))).await
    {
        return done;
    }
    match tokio::time::timeout(timeout, write).await {
        Ok(r) => r,
        Err(_) => Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "client did not read the response within send_timeout",
        )),
    }
}

/// Writes a response: the head with the first body bytes in one write, then the rest of the
/// body in the framing chosen for the client.
async fn write_response<W: AsyncWrite + Unpin>(
    w: &mut W,
    reply: Reply,
    head_request: bool,
    version: Version,
    mut closing: bool,
    send_timeout: Duration,
) -> Result<Written, WriteError> {
    let Reply {
        head: reply_head,
        mut body,
        tunnel,
    } = reply;
    let (status, switching) = match &reply_head {
        ReplyHead::Backend {
            head, switching, ..
        } => (head.status, *switching),
        ReplyHead::Made(parts) => {
            if parts
                .headers
                .get(header::CONNECTION)
                .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"close"))
            {
                closing = true;
            }
            (parts.status, false)
        }
    };
    let switching = switching && status == StatusCode::SWITCHING_PROTOCOLS && tunnel.is_some();
    let no_body = head_request
        || status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED;
    let mut chunked = false;
    let mut length = None;
    if !no_body {
        match body.size_hint().exact() {
            Some(n) => length = Some(n),
            None if version == Version::HTTP_11 => chunked = true,
            None => closing = true,
        }
    }
    let mut head = Vec::with_capacity(512);
    match reply_head {
        ReplyHead::Backend {
            head: backend,
            set_cookie,
            ..
        } => {
            let mut extra = Vec::new();
            if let Some(v) = set_cookie {
                extra.extend_from_slice(b"set-cookie: ");
                extra.extend_from_slice(v.as_bytes());
                extra.extend_from_slice(b"\r\n");
            }
            backend.write_client(switching, &extra, &mut head);
        }
        ReplyHead::Made(mut parts) => {
            if !no_body {
                parts.headers.remove(header::CONTENT_LENGTH);
            }
            parts.headers.remove(header::CONNECTION);
            status_line(&mut head, parts.status);
            encode_fields(&mut head, &parts.headers);
        }
    }
    if let Some(n) = length {
        head.extend_from_slice(b"content-length: ");
        head.extend_from_slice(itoa(n, &mut [0u8; 20]));
        head.extend_from_slice(b"\r\n");
    }
    if chunked {
        head.extend_from_slice(b"transfer-encoding: chunked\r\n");
    }
    if !switching {
        if closing {
            head.extend_from_slice(b"connection: close\r\n");
        } else if version == Version::HTTP_10 {
            head.extend_from_slice(b"connection: keep-alive\r\n");
        }
    }
    head.extend_from_slice(b"\r\n");
    if switching {
        send(w, &mut [IoSlice::new(&head)], send_timeout).await?;
        drop(body);
        return Ok(tunnel.map_or(Written::Close, Written::Tunnel));
    }
    if no_body {
        send(w, &mut [IoSlice::new(&head)], send_timeout).await?;
        return Ok(if closing {
            Written::Close
        } else {
            Written::KeepAlive
        });
    }
    let mut head = Some(head);
    let mut written = 0u64;
    let mut trailers = None;
    loop {
        let frame = if head.is_some() {
            // The first frame, if it is already here, goes out with the head.
            match std::future::poll_fn(|cx| Poll::Ready(Pin::new(&mut body).poll_frame(cx))).await {
                Poll::Ready(f) => f,
                Poll::Pending => {
                    let h = head.take().unwrap_or_default();
                    send(w, &mut [IoSlice::new(&h)], send_timeout).await?;
                    w.flush().await?;
                    continue;
                }
            }
        } else {
            std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await
        };
        let h = head.take().unwrap_or_default();
        match frame {
            None => {
                let end = if chunked {
                    framing::last_chunk(trailers.as_ref())
                } else {
                    Vec::new()
                };
                send(w, &mut [IoSlice::new(&h), IoSlice::new(&end)], send_timeout).await?;
                if length.is_some_and(|n| n != written) {
                    return Err(WriteError::Body(format!(
                        "{written} bytes where Content-Length said {}",
                        length.unwrap_or(0)
                    )));
                }
                break;
            }
            Some(Err(e)) => {
                if !h.is_empty() {
                    let _ = send(w, &mut [IoSlice::new(&h)], send_timeout).await;
                }
                return Err(WriteError::Body(e.to_string()));
            }
            Some(Ok(frame)) => match frame.into_data() {
                Ok(data) => {
                    written += data.len() as u64;
                    if length.is_some_and(|n| written > n) {
                        return Err(WriteError::Body(
                            "longer than its Content-Length".to_owned(),
                        ));
                    }
                    let line = if chunked && !data.is_empty() {
                        framing::chunk_header(data.len())
                    } else {
                        Vec::new()
                    };
                    let crlf: &[u8] = if chunked && !data.is_empty() {
                        b"\r\n"
                    } else {
                        b""
                    };
                    send(
                        w,
                        &mut [
                            IoSlice::new(&h),
                            IoSlice::new(&line),
                            IoSlice::new(&data),
                            IoSlice::new(crlf),
                        ],
                        send_timeout,
                    )
                    .await?;
                }
                Err(frame) => {
                    if !h.is_empty() {
                        send(w, &mut [IoSlice::new(&h)], send_timeout).await?;
                    }
                    if let Ok(t) = frame.into_trailers() {
                        trailers = Some(t);
                    }
                }
            },
        }
    }
    drop(body);
    Ok(if closing {
        Written::Close
    } else {
        Written::KeepAlive
    })
}

/// `n` in decimal, written into `buf`.
fn itoa(mut n: u64, buf: &mut [u8; 20]) -> &[u8] {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return &buf[i..];
        }
    }
}

/// Writes a refusal made before any request existed (head too large, too slow, malformed).
async fn write_local<W: AsyncWrite + Unpin>(w: &mut W, refusal: Refusal) -> io::Result<()> {
    let resp = refusal.response();
    let (parts, body) = resp.into_parts();
    let len = body.size_hint().exact().unwrap_or(0);
    let text = http_body_util::BodyExt::collect(body)
        .await
        .map(|c| c.to_bytes())
        .unwrap_or_default();
    let mut head = Vec::with_capacity(256);
    status_line(&mut head, parts.status);
    encode_fields(&mut head, &parts.headers);
    head.extend_from_slice(format!("content-length: {len}\r\n\r\n").as_bytes());
    let mut slices = [IoSlice::new(&head), IoSlice::new(&text)];
    tokio::time::timeout(Duration::from_secs(5), write_all_vectored(w, &mut slices))
        .await
        .map_err(|_| io::Error::from(io::ErrorKind::TimedOut))?
}

/// After `101 Switching Protocols`: bytes both ways until either side closes.
async fn tunnel<S: ClientStream>(mut conn: Conn<S>, mut up: super::upstream::Upstream) {
    if !up.buf.is_empty() && conn.io.write_all(&up.buf).await.is_err() {
        return;
    }
    if !conn.buf.is_empty() && up.io.write_all(&conn.buf).await.is_err() {
        return;
    }
    up.buf = BytesMut::new();
    conn.buf = BytesMut::new();
    if let Err(e) = tokio::io::copy_bidirectional(&mut conn.io, &mut up.io).await {
        tracing::debug!(error = %e, "tunnel ended");
    }
}
