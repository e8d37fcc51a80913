//! Parked client connections: a plain HTTP/1 keep-alive connection that has been idle for a
//! while leaves the task that served it and waits in a task of its own that holds only the
//! socket, what the next request needs to know about the client, and one timer.
//!
//! Why: a connection's serving task is sized by its busiest state (the request in flight, the
//! back-end connection, the response being streamed: over a kilobyte), and a task keeps its
//! size for its whole life. nginx frees an idle connection's buffers in
//! `ngx_http_set_keepalive`; HAProxy gives its buffers back to a pool. Here the serving task
//! ends and this small one takes its place; when the client's next bytes arrive a new serving
//! task is spawned (on the same worker) and this one ends.
//!
//! Owns: the wait of a parked connection (readable, its idle deadline, or the node draining)
//! and the hand-back through `resume`. Must not: read or write a byte of the connection (the
//! serving task reads the next request, so framing and timeouts stay in one place), or hold a
//! buffer.

use std::future::Future as _;
use std::pin::pin;
use std::task::Poll;

use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::Instant;

/// What happens to a parked connection when its wait ends.
pub(crate) struct Then<H> {
    /// It became readable: serve it again (called on the worker that parked it).
    pub(crate) resume: fn(TcpStream, H),
    /// Its deadline passed or the node drains: its socket is closed first (dropped, as an idle
    /// connection that times out is), then this is called with what it held.
    pub(crate) close: fn(H),
}

/// Parks `io` until it becomes readable, `deadline` passes or the node drains.
pub(crate) fn park<H: Send + 'static>(
    io: TcpStream,
    held: H,
    deadline: Instant,
    draining: watch::Receiver<bool>,
    then: Then<H>,
) {
    tokio::spawn(parked(io, held, deadline, draining, then));
}

/// How a parked wait ends.
enum Woken {
    Readable,
    Close,
}

/// The parked connection's whole task: kept small on purpose (the socket, `held`, one timer,
/// the drain receiver), since this is what an idle connection costs.
async fn parked<H: Send + 'static>(
    io: TcpStream,
    held: H,
    deadline: Instant,
    mut draining: watch::Receiver<bool>,
    then: Then<H>,
) {
    {
        // Marked seen here: a drain that began before the park is seen by `borrow`, one that
        // begins later by `changed`.
        if *draining.borrow_and_update() {
            drop(io);
            (then.close)(held);
            return;
        }
        let woken = {
            let mut timer = pin!(tokio::time::sleep_until(deadline));
            let mut changed = pin!(draining.changed());
            std::future::poll_fn(|cx| {
                if changed.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(Woken::Close);
                }
                match io.poll_read_ready(cx) {
                    // Readable also when the client closed or reset: the serving task reads
                    // the end and closes, as it would have without the park.
                    Poll::Ready(Ok(())) => return Poll::Ready(Woken::Readable),
                    Poll::Ready(Err(_)) => return Poll::Ready(Woken::Close),
                    Poll::Pending => {}
                }
                match timer.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Woken::Close),
                    Poll::Pending => Poll::Pending,
                }
            })
            .await
        };
        match woken {
            Woken::Readable => (then.resume)(io, held),
            Woken::Close => {
                drop(io);
                (then.close)(held);
            }
        }
    }
}

/// The size of a parked connection's future for a `held` of type `H` (for the tests that
/// guard it): read from the function's type, nothing is run.
#[cfg(test)]
pub(crate) fn parked_future_size<H: Send + 'static>() -> usize {
    fn size<H, F>(_: fn(TcpStream, H, Instant, watch::Receiver<bool>, Then<H>) -> F) -> usize {
        std::mem::size_of::<F>()
    }
    size(parked::<H>)
}
