//! pentaflow-proxy: the L7 data plane of a pentaflow node (seed 002 "DLBA Server Architecture").
//!
//! A node accepts client connections, keeps them alive, and schedules **every request on its
//! own** to a back-end web server — by injected cookie, session-ID hash group, consistent URL
//! hash, weighted least connections or weighted round-robin — then streams the back-end's answer
//! straight back. Failed connects are rerouted at once; back-ends that fail repeatedly are marked
//! down (passive detection) and brought back by active health checks. Each node keeps the Web
//! Server Status Table of its back-ends.
//!
//! This crate must not depend on the control plane: it is handed a validated
//! [`pentaflow_config::Config`] and may be handed a new one ([`Proxy::reload`]).
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let config = pentaflow_config::load(std::path::Path::new("pentaflow.toml"))?;
//! let proxy = pentaflow_proxy::Proxy::start(&config).await?;
//! println!("{:?}", proxy.status());
//! proxy.shutdown(std::time::Duration::from_secs(30)).await;
//! # Ok(()) }
//! ```

#![forbid(unsafe_code)]

mod backend;
mod body;
mod clock;
mod conn;
mod discovered;
mod error;
mod forward;
mod h1;
mod h2_glitches;
pub mod headers;
mod health;
pub mod inherited;
mod log_gate;
mod node;
mod park;
mod persistence;
mod proxy_protocol;
mod respond;
mod service;
mod tls;
mod upstream_tls;
mod workers;

pub use body::ResponseBody;

/// Entry points for the fuzz targets (`fuzz/fuzz_targets/http_head.rs`, `h2_glitches.rs`) into
/// the parsers of untrusted bytes. Not an API: nothing here is stable.
#[doc(hidden)]
pub mod fuzz {
    /// Parses a client's request head as the engine does (`max_headers` fields): the length of
    /// a complete head, `Ok(None)` if incomplete, `Err` if refused (with the status code).
    pub fn request_head(data: &[u8], max_headers: usize) -> Result<Option<usize>, u16> {
        crate::h1::server::fuzz_parse_head(data, max_headers)
    }

    /// Parses a back-end's response head: the length of a complete head, `Ok(None)` if
    /// incomplete, `Err` (why) if refused.
    pub fn response_head(data: &[u8], head_request: bool) -> Result<Option<usize>, String> {
        crate::h1::upstream::fuzz_parse_response(data, head_request)
    }

    /// Decodes a chunked body fed in two pieces split at `split`: the body bytes, or `None` if
    /// refused or incomplete.
    pub fn chunked_body(data: &[u8], split: usize) -> Option<Vec<u8>> {
        crate::h1::framing::fuzz_chunked(data, split)
    }

    /// Follows a client's HTTP/2 byte stream fed in two pieces split at `split` as the
    /// glitch meter does (threshold `threshold` at one instant): where h2's input is cut off,
    /// and how many glitches were counted.
    pub fn h2_glitch_frames(data: &[u8], split: usize, threshold: u32) -> (Option<usize>, u64) {
        crate::h2_glitches::fuzz_feed(data, split, threshold)
    }

    /// Frames and decodes a connection's first bytes as an `accept_proxy` listener does: the
    /// header's length and the client address it carries (`None` for LOCAL/UNKNOWN), or
    /// `None` if refused or incomplete.
    pub fn proxy_header(data: &[u8]) -> Option<(usize, Option<std::net::SocketAddr>)> {
        crate::proxy_protocol::fuzz_header(data)
    }
}
pub use error::ProxyError;
pub use node::{LocalCount, NodeCounters, Proxy};
pub use pentaflow_rewrite::CdnReport;
pub use respond::LOCAL_REASONS;
pub use tls::TlsError;
pub use workers::Workers;
