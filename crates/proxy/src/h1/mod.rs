//! pentaflow's own HTTP/1.1 engine: the client side ([`server`]) and the back-end side
//! ([`upstream`]) of every proxied exchange, on `httparse`.
//!
//! One task per client connection reads a request head, has it scheduled (forward.rs and the
//! service), writes it to a pooled back-end connection and streams the response back itself:
//! the back-end's socket is read by the same task that writes to the client, with no
//! connection task and no channel in between. Heads stay the bytes they arrived as
//! ([`head`]): only what a proxy must change is rewritten on the way out.
//!
//! **The HTTP/2 boundary.** Clients that negotiate `h2` by ALPN are still served by hyper's
//! HTTP/2 server (node.rs): HTTP/2 framing, HPACK and flow control are a protocol of their own
//! that h2 implements well, and a multiplexed connection needs a task per stream anyway. Those
//! requests enter forward.rs as `http::Request`s like HTTP/1 ones and go to the back-ends
//! through the same [`upstream`] code and the same pools: there is one back-end engine.
//! Interim `1xx` responses of back-ends (e.g. `103 Early Hints`) are dropped for HTTP/2
//! clients: hyper's HTTP/2 server cannot send a `1xx` before the final response (its
//! hyperium/hyper#4114 is open); HTTP/1.1 clients get them as they arrive (forward.rs).
//!
//! This module must not schedule or choose error responses (forward.rs and respond.rs do).

pub(crate) mod framing;
pub(crate) mod head;
pub(crate) mod server;
pub(crate) mod upstream;

use std::io;
use std::pin::Pin;
use std::task::Poll;

use bytes::BytesMut;
use tokio::io::AsyncRead;

use crate::respond::Refusal;

/// Size of the per-worker scratch read buffer.
const SCRATCH_BYTES: usize = 16 * 1024;

thread_local! {
    /// The worker thread's read buffer for message heads: a head is read here and only its
    /// bytes are copied into the connection's own buffer, so a connection that waits for (or
    /// between) messages holds no read buffer of its own, and a small exchange allocates only
    /// what it received.
    static SCRATCH: std::cell::RefCell<Vec<u8>> = std::cell::RefCell::new(vec![0; SCRATCH_BYTES]);
}

/// Size of a back-end response read buffer: a whole small response (head and body) in one
/// read, straight into the buffer the response's bytes are then split from.
/// 32 KiB: a 16 KiB object with its head fits.
pub(crate) const RESPONSE_BUFFER_BYTES: usize = 32 * 1024;
/// Most response read buffers a worker keeps for reuse, and the largest one it keeps (a
/// large body's reads grow a buffer to [`upstream`]'s body read size).
const KEPT_RESPONSE_BUFFERS: usize = 32;
const KEPT_RESPONSE_BUFFER_MAX: usize = 128 * 1024;

thread_local! {
    /// The worker's response read buffers not in use: a response is read into one (no copy
    /// out of a scratch buffer, and no `malloc`/`free` of a buffer of this size per exchange,
    /// which glibc serves from its slower bins), and it comes back here when the response
    /// ended, so a pooled back-end connection holds no buffer while idle.
    static RESPONSE_BUFFERS: std::cell::RefCell<Vec<BytesMut>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

/// A response read buffer with room for [`RESPONSE_BUFFER_BYTES`]: a kept one whose bytes are
/// all released (the frames split from it were written and dropped), or a new one.
pub(crate) fn take_response_buffer() -> BytesMut {
    let kept = RESPONSE_BUFFERS.with(|kept| {
        let mut kept = kept.borrow_mut();
        while let Some(mut buf) = kept.pop() {
            // `false` while a frame split from it is still alive: then it is simply dropped
            // (freed when that frame is).
            if buf.try_reclaim(RESPONSE_BUFFER_BYTES) && buf.capacity() <= KEPT_RESPONSE_BUFFER_MAX
            {
                return Some(buf);
            }
        }
        None
    });
    kept.unwrap_or_else(|| BytesMut::with_capacity(RESPONSE_BUFFER_BYTES))
}

/// Gives an emptied response read buffer back to the worker (see [`take_response_buffer`]).
pub(crate) fn give_response_buffer(buf: BytesMut) {
    if !buf.is_empty() || buf.capacity() == 0 {
        return;
    }
    RESPONSE_BUFFERS.with(|kept| {
        let mut kept = kept.borrow_mut();
        if kept.len() < KEPT_RESPONSE_BUFFERS {
            kept.push(buf);
        }
    });
}

/// Reads what is there into the worker's scratch buffer and appends it to `buf`.
pub(crate) async fn read_via_scratch<S: AsyncRead + Unpin>(
    io: &mut S,
    buf: &mut BytesMut,
) -> io::Result<usize> {
    std::future::poll_fn(|cx| poll_read_via_scratch(io, cx, buf)).await
}

/// One poll of [`read_via_scratch`] (for hand-written futures that must stay small).
pub(crate) fn poll_read_via_scratch<S: AsyncRead + Unpin>(
    io: &mut S,
    cx: &mut std::task::Context<'_>,
    buf: &mut BytesMut,
) -> Poll<io::Result<usize>> {
    SCRATCH.with(|scratch| {
        let mut scratch = scratch.borrow_mut();
        let mut rb = tokio::io::ReadBuf::new(&mut scratch[..]);
        match Pin::new(&mut *io).poll_read(cx, &mut rb) {
            Poll::Ready(Ok(())) => {
                let got = rb.filled();
                buf.extend_from_slice(got);
                Poll::Ready(Ok(got.len()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => Poll::Pending,
        }
    })
}

/// The refusal for a client body that failed while it was being forwarded.
pub(crate) fn refusal_of_body_error(e: &(dyn std::error::Error + 'static)) -> Refusal {
    match e.downcast_ref::<server::ClientBodyError>() {
        Some(server::ClientBodyError::Timeout) => Refusal::BodyTimeout,
        Some(server::ClientBodyError::TooLarge) => Refusal::BodyTooLarge,
        _ => Refusal::BadBody,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_response_buffer_is_reused_only_once_every_frame_split_from_it_is_gone() {
        let mut buf = take_response_buffer();
        assert!(buf.capacity() >= RESPONSE_BUFFER_BYTES);
        buf.extend_from_slice(b"HTTP/1.1 200 OK\r\n\r\nbody");
        let frame = buf.split().freeze();
        give_response_buffer(buf);
        // The frame still points into the kept buffer: it must not be handed out again.
        let mut other = take_response_buffer();
        other.extend_from_slice(&[b'x'; 64]);
        assert_eq!(&frame[..], b"HTTP/1.1 200 OK\r\n\r\nbody");
        let start = other.as_ptr();
        other.clear();
        give_response_buffer(other);
        // A buffer nothing points into comes back, from its start.
        let again = take_response_buffer();
        assert_eq!(again.as_ptr(), start);
        assert!(again.capacity() >= RESPONSE_BUFFER_BYTES);
        // A buffer with bytes in it is never kept.
        let mut full = again;
        full.extend_from_slice(b"left over");
        give_response_buffer(full);
        assert!(take_response_buffer().is_empty());
    }
}
