//! An HTTP/2 client connection's socket with the proxy's own timeouts (HTTP/1 connections time
//! themselves in h1::server).
//!
//! Owns: the header-read timeout (a client that started sending must get a request through in
//! time) and the idle keep-alive timeout (a connection with nothing in flight is closed
//! quietly); [`ConnState`] says whether a request is in flight. HTTP/2 has no place for a bare
//! `408` text, so a timed-out connection just closes. It must not parse HTTP.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};

use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// Requests of one client connection whose responses are not finished yet.
#[derive(Debug, Default)]
pub(crate) struct ConnState {
    in_flight: AtomicUsize,
}

impl ConnState {
    pub(crate) fn begin_request(&self) {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
    }

    pub(crate) fn end_request(&self) {
        self.in_flight.fetch_sub(1, Ordering::AcqRel);
    }

    fn busy(&self) -> bool {
        self.in_flight.load(Ordering::Acquire) > 0
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Nothing in flight, no byte of a new request yet: the idle timeout runs.
    Idle,
    /// Bytes of a request head arrived: the header-read timeout runs.
    Head,
    /// A request is in flight: no timer here (back-end timeouts apply).
    Busy,
}

/// A client socket (plain TCP, or a TLS stream over it) that enforces the header-read and
/// idle timeouts.
#[derive(Debug)]
pub(crate) struct ClientIo<S> {
    stream: S,
    state: std::sync::Arc<ConnState>,
    phase: Phase,
    timer: Pin<Box<Sleep>>,
    header_timeout: Duration,
    idle_timeout: Duration,
    /// Set when the 408 was sent, so hyper's later reads keep failing.
    timed_out: bool,
    /// Whether `timer` runs for the head being read. It is armed only when a read in the
    /// `Head` phase has to wait for more bytes: a head that arrives in one read (nearly all of
    /// them) never moves the timer to an earlier deadline, which costs a timer-wheel
    /// re-registration per request, while moving it later (the idle timeout) is one atomic
    /// store. The header timeout thus starts at the first wait after the head's first bytes,
    /// microseconds after they arrived.
    head_armed: bool,
}

impl<S> ClientIo<S> {
    pub(crate) fn new(
        stream: S,
        state: std::sync::Arc<ConnState>,
        header_timeout: Duration,
        idle_timeout: Duration,
    ) -> Self {
        Self {
            stream,
            state,
            // A new connection is expected to send its first request head promptly.
            phase: Phase::Head,
            timer: Box::pin(tokio::time::sleep(header_timeout)),
            header_timeout,
            idle_timeout,
            timed_out: false,
            head_armed: true,
        }
    }

    fn enter(&mut self, phase: Phase) {
        self.phase = phase;
        match phase {
            Phase::Idle => {
                let at = Instant::now() + self.idle_timeout;
                self.timer.as_mut().reset(at);
            }
            Phase::Head => {
                // Armed at the first read that must wait (see `head_armed`).
                self.head_armed = false;
            }
            Phase::Busy => {}
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for ClientIo<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.timed_out {
            return Poll::Ready(Err(io::ErrorKind::TimedOut.into()));
        }
        let busy = this.state.busy();
        if busy {
            this.phase = Phase::Busy;
        } else if this.phase == Phase::Busy {
            this.enter(Phase::Idle);
        }
        let before = buf.filled().len();
        match Pin::new(&mut this.stream).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before && this.phase == Phase::Idle {
                    this.enter(Phase::Head);
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => {
                if this.phase == Phase::Head && !this.head_armed {
                    this.head_armed = true;
                    let at = Instant::now() + this.header_timeout;
                    this.timer.as_mut().reset(at);
                }
                if this.phase == Phase::Busy || this.timer.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                this.timed_out = true;
                Poll::Ready(Err(io::ErrorKind::TimedOut.into()))
            }
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for ClientIo<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}
