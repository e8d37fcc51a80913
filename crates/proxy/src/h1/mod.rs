//! pentaflow's own HTTP/1.1 engine: the client side ([`server`]) and the back-end side
//! ([`upstream`]) of every proxied exchange, on `httparse`.
//!
//! One task per client connection reads a request head, has it scheduled (forward.rs and the
//! service), writes it to a pooled back-end connection and streams the response back itself:
//! the back-end's socket is read by the same task that writes to the client, with no
//! connection task and no channel in between.
//!
//! **The HTTP/2 boundary.** Clients that negotiate `h2` by ALPN are still served by hyper's
//! HTTP/2 server (node.rs): HTTP/2 framing, HPACK and flow control are a protocol of their own
//! that h2 implements well, and a multiplexed connection needs a task per stream anyway. Those
//! requests enter forward.rs as `http::Request`s like HTTP/1 ones and go to the back-ends
//! through the same [`upstream`] code and the same pools: there is one back-end engine.
//!
//! This module must not schedule or choose error responses (forward.rs and respond.rs do).

pub(crate) mod framing;
pub(crate) mod server;
pub(crate) mod upstream;

use crate::respond::Refusal;

/// The refusal for a client body that failed while it was being forwarded.
pub(crate) fn refusal_of_body_error(e: &(dyn std::error::Error + 'static)) -> Refusal {
    match e.downcast_ref::<server::ClientBodyError>() {
        Some(server::ClientBodyError::Timeout) => Refusal::BodyTimeout,
        Some(server::ClientBodyError::TooLarge) => Refusal::BodyTooLarge,
        _ => Refusal::BadBody,
    }
}
