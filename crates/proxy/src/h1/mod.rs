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
