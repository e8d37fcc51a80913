//! One monotonic millisecond clock for the proxy's tables.
//!
//! The pure balance part takes time as a number; this is the only place the proxy reads the
//! clock to produce that number, so every table agrees on what "now" means.

use std::sync::OnceLock;
use std::time::Instant;

static EPOCH: OnceLock<Instant> = OnceLock::new();

/// Milliseconds since the first call in this process (monotonic, never goes back).
pub(crate) fn now_ms() -> u64 {
    let epoch = *EPOCH.get_or_init(Instant::now);
    u64::try_from(epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
}
