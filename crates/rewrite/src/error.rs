//! Errors a rewritten body can end with. Each names the stage that failed; the cause is kept in
//! `#[source]`. Once a body has started, none of them is retryable: the client has bytes already.

use std::io;

use thiserror::Error;

use crate::policy::Coding;

/// A boxed error from the back-end's body.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Why a [`RewriteBody`](crate::RewriteBody) ended early.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum RewriteError {
    /// The back-end's body failed (connection reset, timeout, bad framing).
    #[error("back-end body failed")]
    Upstream {
        /// The back-end body's error.
        #[source]
        source: BoxError,
    },
    /// The back-end's compressed body could not be decoded (corrupt or truncated).
    #[error("cannot decode the back-end's {} body", coding.as_str())]
    Decode {
        /// The body's content coding.
        coding: Coding,
        /// The decoder's error.
        #[source]
        source: io::Error,
    },
    /// The rewritten page could not be encoded again.
    #[error("cannot re-encode the page as {}", coding.as_str())]
    Encode {
        /// The content coding being produced.
        coding: Coding,
        /// The encoder's error.
        #[source]
        source: io::Error,
    },
    /// The HTML rewriter gave up (memory limit on one tag, handler error).
    #[error("html rewriting failed")]
    Html {
        /// lol_html's error.
        #[source]
        source: lol_html::errors::RewritingError,
    },
}
