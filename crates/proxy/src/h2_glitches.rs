//! HTTP/2 "glitches": frames a well-behaved client has little reason to send in bulk, counted
//! per connection; past a threshold the connection is closed with `GOAWAY ENHANCE_YOUR_CALM`
//! (HAProxy's `tune.h2.fe.glitches-threshold`, nginx's flood checks).
//!
//! Owns: following the frame headers of an HTTP/2 client connection in both directions (the
//! 9-byte header of every frame; of a payload only the pad length of a padded DATA frame), the
//! per-connection [`GlitchMeter`], and, once it trips, writing one GOAWAY at a frame boundary
//! of the server's write stream and closing. It must not parse HEADERS blocks, settings or any
//! other payload (h2 does), and must not decide anything about requests.
//!
//! # Why an I/O wrapper
//! hyper's HTTP/2 server (h2 0.4) already bounds rapid reset (`max_pending_accept_reset_streams`,
//! GOAWAY `ENHANCE_YOUR_CALM`), locally reset streams (`max_local_error_reset_streams`),
//! CONTINUATION floods (`max_header_list_size`) and queued PING/SETTINGS acknowledgements (one
//! pending PONG at a time), but it answers every SETTINGS and PING for as long as a client sends
//! them and offers no hook to count frames or to close with a chosen error code: `Connection`
//! has only `graceful_shutdown` (GOAWAY `NO_ERROR`). So this module sits between the TLS stream
//! and hyper, sees the frames go by, and — when the meter trips — stops handing bytes to hyper,
//! waits for hyper to finish the frame it is writing, writes the GOAWAY itself and shuts the
//! stream down; hyper then sees an I/O error and drops the connection.
//!
//! # What counts (one glitch each)
//! * a SETTINGS frame after the client's first, and a SETTINGS ACK for which we sent no SETTINGS;
//! * a PING (each is answered), and a PING ACK we did not ask for;
//! * PRIORITY and PRIORITY_UPDATE frames (RFC 9113 deprecates the former; both cost work and
//!   carry nothing a proxy needs);
//! * an empty DATA frame (padding only counts as empty) without END_STREAM, an empty HEADERS or
//!   CONTINUATION frame without END_HEADERS (CVE-2019-9518);
//! * a frame of an unknown type (h2 must ignore it, RFC 9113 §4.1).
//!
//! # Why a leaky bucket
//! HAProxy's count only grows, so a week-long gRPC connection with a keepalive PING every few
//! seconds would eventually be cut. Here the level drains at `threshold` per `window`: a burst
//! of more than `threshold` glitches trips at once, a steady rate above `threshold / window`
//! trips soon, and anything slower never does.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The client connection preface (RFC 9113 §3.4), skipped before the first frame.
const PREFACE_LEN: usize = 24;
/// Length of every frame header.
const HEADER_LEN: usize = 9;

const DATA: u8 = 0x0;
const HEADERS: u8 = 0x1;
const PRIORITY: u8 = 0x2;
const RST_STREAM: u8 = 0x3;
const SETTINGS: u8 = 0x4;
const PUSH_PROMISE: u8 = 0x5;
const PING: u8 = 0x6;
const GOAWAY: u8 = 0x7;
const WINDOW_UPDATE: u8 = 0x8;
const CONTINUATION: u8 = 0x9;
/// RFC 9218 §7.1.
const PRIORITY_UPDATE: u8 = 0x10;

const FLAG_ACK: u8 = 0x1;
const FLAG_END_STREAM: u8 = 0x1;
const FLAG_END_HEADERS: u8 = 0x4;
const FLAG_PADDED: u8 = 0x8;

/// RFC 9113 §7.
const ENHANCE_YOUR_CALM: u32 = 0xb;
/// How long a tripped connection keeps discarding the client's bytes after the GOAWAY.
const LINGER: Duration = Duration::from_secs(1);
/// Debug data of our GOAWAY, for whoever reads a packet capture.
const GOAWAY_DEBUG: &[u8] = b"too many glitches";

/// How many glitches a connection may have (`[limits] h2_glitch_threshold`, `0` = no limit)
/// and how long the meter takes to forget that many (`h2_glitch_window`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct GlitchPolicy {
    pub(crate) threshold: u32,
    pub(crate) window: Duration,
}

impl GlitchPolicy {
    pub(crate) fn of(limits: &pentaflow_config::Limits) -> Self {
        Self {
            threshold: limits.h2_glitch_threshold,
            window: limits.h2_glitch_window,
        }
    }
}

/// A leaky bucket of glitches with injected time (milliseconds).
#[derive(Debug, Clone)]
pub(crate) struct GlitchMeter {
    policy: GlitchPolicy,
    /// Glitches in thousandths, so the drain needs no floating point.
    level_milli: u64,
    last_ms: u64,
}

impl GlitchMeter {
    pub(crate) fn new(policy: GlitchPolicy, now_ms: u64) -> Self {
        Self {
            policy,
            level_milli: 0,
            last_ms: now_ms,
        }
    }

    /// Records one glitch at `now_ms`; true when the connection is now over its threshold.
    pub(crate) fn glitch(&mut self, now_ms: u64) -> bool {
        let threshold = u64::from(self.policy.threshold);
        if threshold == 0 {
            return false;
        }
        let window_ms = u64::try_from(self.policy.window.as_millis())
            .unwrap_or(u64::MAX)
            .max(1);
        let elapsed = now_ms.saturating_sub(self.last_ms);
        // threshold glitches (threshold * 1000 milli) drain per window.
        let drained = u128::from(elapsed) * u128::from(threshold) * 1000 / u128::from(window_ms);
        self.level_milli = self
            .level_milli
            .saturating_sub(u64::try_from(drained).unwrap_or(u64::MAX));
        self.last_ms = self.last_ms.max(now_ms);
        self.level_milli = self.level_milli.saturating_add(1000);
        self.level_milli > threshold * 1000
    }
}

/// Glitches seen on one connection, by kind (what the log line says when it trips).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct GlitchTally {
    pub(crate) settings: u64,
    pub(crate) pings: u64,
    pub(crate) priority: u64,
    pub(crate) empty_frames: u64,
    pub(crate) unknown_frames: u64,
}

impl GlitchTally {
    fn total(&self) -> u64 {
        self.settings + self.pings + self.priority + self.empty_frames + self.unknown_frames
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Settings,
    Ping,
    Priority,
    Empty,
    Unknown,
}

/// Where the client's byte stream is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ReadPos {
    /// Inside the 24-byte preface: how many bytes of it are left.
    Preface(usize),
    /// Collecting a frame header: how many of its bytes are in `header`.
    Header(usize),
    /// A padded DATA frame of this length: waiting for its pad-length byte.
    PadLength { len: u32, flags: u8 },
    /// Skipping a payload: bytes left.
    Payload(u64),
}

/// Follows the client's frames and meters the glitches among them (pure: time is injected).
#[derive(Debug, Clone)]
pub(crate) struct ClientFrames {
    pos: ReadPos,
    header: [u8; HEADER_LEN],
    meter: GlitchMeter,
    tally: GlitchTally,
    /// Non-ACK SETTINGS frames received (the first one is the preface's).
    settings_received: u64,
    /// SETTINGS and PING acknowledgements received.
    settings_acks: u64,
    ping_acks: u64,
    /// Highest client-initiated stream id that opened with HEADERS (GOAWAY's last-stream-id).
    last_stream: u32,
}

impl ClientFrames {
    pub(crate) fn new(policy: GlitchPolicy, now_ms: u64) -> Self {
        Self {
            pos: ReadPos::Preface(PREFACE_LEN),
            header: [0; HEADER_LEN],
            meter: GlitchMeter::new(policy, now_ms),
            tally: GlitchTally::default(),
            settings_received: 0,
            settings_acks: 0,
            ping_acks: 0,
            last_stream: 0,
        }
    }

    /// Feeds bytes the client sent. `sent` says what we have sent so far (to tell solicited
    /// ACKs from unsolicited ones). Returns the offset of the frame that tripped the meter:
    /// bytes from there on must not reach h2.
    pub(crate) fn feed(
        &mut self,
        mut data: &[u8],
        sent: &ServerFrames,
        now_ms: u64,
    ) -> Option<usize> {
        let total = data.len();
        while !data.is_empty() {
            let start = total - data.len();
            match self.pos {
                ReadPos::Preface(left) => {
                    let n = left.min(data.len());
                    data = &data[n..];
                    self.pos = if left == n {
                        ReadPos::Header(0)
                    } else {
                        ReadPos::Preface(left - n)
                    };
                }
                ReadPos::Header(have) => {
                    let n = (HEADER_LEN - have).min(data.len());
                    self.header[have..have + n].copy_from_slice(&data[..n]);
                    data = &data[n..];
                    if have + n < HEADER_LEN {
                        self.pos = ReadPos::Header(have + n);
                        continue;
                    }
                    let frame_start = start.saturating_sub(have);
                    if let Some(kind) = self.frame_header(sent) {
                        if self.count(kind, now_ms) {
                            return Some(frame_start);
                        }
                    }
                }
                ReadPos::PadLength { len, flags } => {
                    let pad = u32::from(data[0]);
                    data = &data[1..];
                    self.pos = skip(u64::from(len) - 1);
                    // Only padding: as empty as an empty frame.
                    if pad + 1 >= len
                        && flags & FLAG_END_STREAM == 0
                        && self.count(Kind::Empty, now_ms)
                    {
                        // Cut at the frame, as far as its header is in this read.
                        return Some(start.saturating_sub(HEADER_LEN));
                    }
                }
                ReadPos::Payload(left) => {
                    let n = usize::try_from(left).unwrap_or(usize::MAX).min(data.len());
                    data = &data[n..];
                    self.pos = skip(left - n as u64);
                }
            }
        }
        None
    }

    /// A complete frame header is in `self.header`: sets the next position and says which
    /// glitch it is, if any.
    fn frame_header(&mut self, sent: &ServerFrames) -> Option<Kind> {
        let h = &self.header;
        let len = u32::from_be_bytes([0, h[0], h[1], h[2]]);
        let (kind, flags) = (h[3], h[4]);
        let stream = u32::from_be_bytes([h[5], h[6], h[7], h[8]]) & 0x7fff_ffff;
        self.pos = if kind == DATA && flags & FLAG_PADDED != 0 && len > 0 {
            ReadPos::PadLength { len, flags }
        } else {
            skip(u64::from(len))
        };
        match kind {
            DATA => (len == 0 && flags & FLAG_END_STREAM == 0).then_some(Kind::Empty),
            HEADERS => {
                if stream % 2 == 1 {
                    self.last_stream = self.last_stream.max(stream);
                }
                (len == 0 && flags & FLAG_END_HEADERS == 0).then_some(Kind::Empty)
            }
            CONTINUATION => (len == 0 && flags & FLAG_END_HEADERS == 0).then_some(Kind::Empty),
            PRIORITY | PRIORITY_UPDATE => Some(Kind::Priority),
            SETTINGS if flags & FLAG_ACK != 0 => {
                self.settings_acks += 1;
                (self.settings_acks > sent.settings).then_some(Kind::Settings)
            }
            SETTINGS => {
                self.settings_received += 1;
                (self.settings_received > 1).then_some(Kind::Settings)
            }
            PING if flags & FLAG_ACK != 0 => {
                self.ping_acks += 1;
                (self.ping_acks > sent.pings).then_some(Kind::Ping)
            }
            PING => Some(Kind::Ping),
            RST_STREAM | PUSH_PROMISE | GOAWAY | WINDOW_UPDATE => None,
            _ => Some(Kind::Unknown),
        }
    }

    fn count(&mut self, kind: Kind, now_ms: u64) -> bool {
        let t = &mut self.tally;
        match kind {
            Kind::Settings => t.settings += 1,
            Kind::Ping => t.pings += 1,
            Kind::Priority => t.priority += 1,
            Kind::Empty => t.empty_frames += 1,
            Kind::Unknown => t.unknown_frames += 1,
        }
        self.meter.glitch(now_ms)
    }

    pub(crate) fn tally(&self) -> GlitchTally {
        self.tally
    }
}

fn skip(left: u64) -> ReadPos {
    if left == 0 {
        ReadPos::Header(0)
    } else {
        ReadPos::Payload(left)
    }
}

/// Follows the server's (our, h2's) frames: where the next frame boundary is, and how many
/// SETTINGS and PINGs we sent (so their acknowledgements are not glitches).
#[derive(Debug, Clone, Default)]
pub(crate) struct ServerFrames {
    /// Bytes of the current frame header collected (0..9); meaningful when `payload_left == 0`.
    have: usize,
    header: [u8; HEADER_LEN],
    payload_left: u64,
    settings: u64,
    pings: u64,
}

impl ServerFrames {
    /// Whether the write stream is between two frames.
    fn at_boundary(&self) -> bool {
        self.have == 0 && self.payload_left == 0
    }

    /// Follows `data` as written. With `stop_at_boundary`, stops after the first frame boundary
    /// reached (having consumed at least one byte); returns the bytes consumed.
    fn feed(&mut self, data: &[u8], stop_at_boundary: bool) -> usize {
        let mut used = 0;
        while used < data.len() {
            let rest = &data[used..];
            if self.payload_left > 0 {
                let n = usize::try_from(self.payload_left)
                    .unwrap_or(usize::MAX)
                    .min(rest.len());
                used += n;
                self.payload_left -= n as u64;
            } else {
                let n = (HEADER_LEN - self.have).min(rest.len());
                self.header[self.have..self.have + n].copy_from_slice(&rest[..n]);
                self.have += n;
                used += n;
                if self.have < HEADER_LEN {
                    continue;
                }
                self.have = 0;
                let h = &self.header;
                self.payload_left = u64::from(u32::from_be_bytes([0, h[0], h[1], h[2]]));
                if h[4] & FLAG_ACK == 0 {
                    match h[3] {
                        SETTINGS => self.settings += 1,
                        PING => self.pings += 1,
                        _ => {}
                    }
                }
            }
            if stop_at_boundary && self.at_boundary() {
                break;
            }
        }
        used
    }
}

/// The GOAWAY frame sent when a connection trips: last-stream-id, `ENHANCE_YOUR_CALM`.
fn goaway_frame(last_stream: u32) -> Vec<u8> {
    let len = 8 + GOAWAY_DEBUG.len();
    let mut f = Vec::with_capacity(HEADER_LEN + len);
    f.extend_from_slice(&u32::to_be_bytes(len as u32)[1..]);
    f.extend_from_slice(&[GOAWAY, 0]);
    f.extend_from_slice(&0u32.to_be_bytes());
    f.extend_from_slice(&(last_stream & 0x7fff_ffff).to_be_bytes());
    f.extend_from_slice(&ENHANCE_YOUR_CALM.to_be_bytes());
    f.extend_from_slice(GOAWAY_DEBUG);
    f
}

/// Called once when a connection trips, with what it sent.
pub(crate) type OnTrip = Box<dyn FnOnce(GlitchTally) + Send>;

/// What the guard is doing.
enum Closing {
    /// Serving normally.
    No,
    /// Tripped: the GOAWAY (and how much of it is written), then flush and shutdown.
    Goaway {
        frame: Vec<u8>,
        written: usize,
    },
    Flush,
    Shutdown,
    /// Reading and discarding what the client still sends, so that closing the socket with
    /// unread bytes does not turn into a TCP reset that destroys the GOAWAY in flight (nginx's
    /// lingering close).
    Linger(Pin<Box<tokio::time::Sleep>>),
    /// Closed: every further call fails.
    Done,
}

/// An HTTP/2 client stream that counts glitches and, past the threshold, closes with
/// `GOAWAY ENHANCE_YOUR_CALM` (see the module doc).
pub(crate) struct GlitchGuard<S> {
    inner: S,
    client: ClientFrames,
    server: ServerFrames,
    closing: Closing,
    on_trip: Option<OnTrip>,
}

impl<S> GlitchGuard<S> {
    pub(crate) fn new(inner: S, policy: GlitchPolicy, on_trip: OnTrip) -> Self {
        Self {
            inner,
            client: ClientFrames::new(policy, crate::clock::now_ms()),
            server: ServerFrames::default(),
            closing: Closing::No,
            on_trip: Some(on_trip),
        }
    }

    fn trip(&mut self) {
        self.closing = Closing::Goaway {
            frame: goaway_frame(self.client.last_stream),
            written: 0,
        };
        if let Some(report) = self.on_trip.take() {
            report(self.client.tally());
        }
    }
}

fn closed_error() -> io::Error {
    io::Error::new(
        io::ErrorKind::ConnectionAborted,
        "HTTP/2 glitch threshold exceeded: sent GOAWAY ENHANCE_YOUR_CALM",
    )
}

impl<S: AsyncRead + AsyncWrite + Unpin> GlitchGuard<S> {
    /// Drives the close (GOAWAY, flush, shutdown) once the write stream is at a frame
    /// boundary; resolves to the error every later call returns.
    fn poll_close(&mut self, cx: &mut Context<'_>) -> Poll<io::Error> {
        loop {
            match &mut self.closing {
                Closing::No => return Poll::Ready(closed_error()),
                Closing::Goaway { frame, written } => {
                    if *written == frame.len() {
                        self.closing = Closing::Flush;
                        continue;
                    }
                    match ready!(Pin::new(&mut self.inner).poll_write(cx, &frame[*written..])) {
                        Ok(0) | Err(_) => self.closing = Closing::Done,
                        Ok(n) => *written += n,
                    }
                }
                Closing::Flush => {
                    let _ = ready!(Pin::new(&mut self.inner).poll_flush(cx));
                    self.closing = Closing::Shutdown;
                }
                Closing::Shutdown => {
                    let _ = ready!(Pin::new(&mut self.inner).poll_shutdown(cx));
                    self.closing = Closing::Linger(Box::pin(tokio::time::sleep(LINGER)));
                }
                Closing::Linger(until) => {
                    if until.as_mut().poll(cx).is_ready() {
                        self.closing = Closing::Done;
                        continue;
                    }
                    let mut scratch = [0u8; 4096];
                    let mut buf = ReadBuf::new(&mut scratch);
                    match ready!(Pin::new(&mut self.inner).poll_read(cx, &mut buf)) {
                        Ok(()) if !buf.filled().is_empty() => {}
                        _ => self.closing = Closing::Done,
                    }
                }
                Closing::Done => return Poll::Ready(closed_error()),
            }
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for GlitchGuard<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !matches!(this.closing, Closing::No) {
            // Mid-frame on the write side: hyper is still writing that frame and will be woken
            // by the socket; the GOAWAY goes out after it (from poll_write, or here next time).
            if !this.server.at_boundary()
                && matches!(this.closing, Closing::Goaway { written: 0, .. })
            {
                return Poll::Pending;
            }
            return this.poll_close(cx).map(Err);
        }
        let before = buf.filled().len();
        ready!(Pin::new(&mut this.inner).poll_read(cx, buf))?;
        let tripped = this.client.feed(
            &buf.filled()[before..],
            &this.server,
            crate::clock::now_ms(),
        );
        let Some(cut) = tripped else {
            return Poll::Ready(Ok(()));
        };
        // h2 never sees the frame that tripped nor anything after it.
        buf.set_filled(before + cut);
        this.trip();
        if cut > 0 {
            return Poll::Ready(Ok(()));
        }
        // Nothing to hand over: an empty read would look like EOF to h2, so close from here.
        if !this.server.at_boundary() {
            return Poll::Pending;
        }
        this.poll_close(cx).map(Err)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for GlitchGuard<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if matches!(this.closing, Closing::No) {
            let n = ready!(Pin::new(&mut this.inner).poll_write(cx, buf))?;
            this.server.feed(&buf[..n], false);
            return Poll::Ready(Ok(n));
        }
        if this.server.at_boundary() {
            return this.poll_close(cx).map(Err);
        }
        // Finish the frame h2 is writing, and not a byte more.
        let upto = this.server.clone().feed(buf, true);
        let n = ready!(Pin::new(&mut this.inner).poll_write(cx, &buf[..upto]))?;
        this.server.feed(&buf[..n], false);
        Poll::Ready(Ok(n))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if !matches!(this.closing, Closing::No) {
            let first = bufs
                .iter()
                .find(|b| !b.is_empty())
                .map_or(&[][..], |b| &**b);
            return Pin::new(this).poll_write(cx, first);
        }
        let n = ready!(Pin::new(&mut this.inner).poll_write_vectored(cx, bufs))?;
        let mut left = n;
        for b in bufs {
            if left == 0 {
                break;
            }
            let take = left.min(b.len());
            this.server.feed(&b[..take], false);
            left -= take;
        }
        Poll::Ready(Ok(n))
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if matches!(this.closing, Closing::No) || !this.server.at_boundary() {
            return Pin::new(&mut this.inner).poll_flush(cx);
        }
        this.poll_close(cx).map(Err)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if matches!(this.closing, Closing::No) {
            return Pin::new(&mut this.inner).poll_shutdown(cx);
        }
        if !this.server.at_boundary() && matches!(this.closing, Closing::Goaway { written: 0, .. })
        {
            // A frame cut short: no GOAWAY can follow it, just close.
            this.closing = Closing::Shutdown;
        }
        let _ = ready!(this.poll_close(cx));
        Poll::Ready(Ok(()))
    }
}

/// Counts a closure and logs it (at most one line a second for the whole process, with how
/// many were not logged).
pub(crate) fn report_to(
    shared: std::sync::Arc<crate::node::Shared>,
    peer: std::net::SocketAddr,
) -> OnTrip {
    Box::new(move |tally: GlitchTally| {
        shared
            .counters
            .h2_glitch_closures
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if let Some(suppressed) = LOG_GATE.admit(crate::clock::now_ms()) {
            tracing::warn!(
                %peer,
                glitches = tally.total(),
                settings = tally.settings,
                pings = tally.pings,
                priority = tally.priority,
                empty_frames = tally.empty_frames,
                unknown_frames = tally.unknown_frames,
                suppressed,
                "HTTP/2 connection closed with GOAWAY ENHANCE_YOUR_CALM: too many glitches"
            );
        }
    })
}

/// See [`crate::fuzz::h2_glitch_frames`].
pub(crate) fn fuzz_feed(data: &[u8], split: usize, threshold: u32) -> (Option<usize>, u64) {
    let policy = GlitchPolicy {
        threshold,
        window: Duration::from_secs(10),
    };
    let split = split.min(data.len());
    let mut frames = ClientFrames::new(policy, 0);
    let server = ServerFrames::default();
    let cut = match frames.feed(&data[..split], &server, 0) {
        Some(c) => Some(c),
        None => frames.feed(&data[split..], &server, 0).map(|c| split + c),
    };
    (cut, frames.tally().total())
}

static LOG_GATE: crate::log_gate::LogGate = crate::log_gate::LogGate::new(1000);

#[cfg(test)]
mod tests;
