//! The proxy's two clocks: one monotonic millisecond clock for its tables, and wall-clock Unix
//! seconds for what leaves the node (the times inside persistence cookies, which every node of
//! the array must read alike).
//!
//! The pure balance part takes time as a number; this is the only place the proxy reads a
//! clock to produce that number, so every table agrees on what "now" means.

use std::sync::OnceLock;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

static EPOCH: OnceLock<Instant> = OnceLock::new();

/// Milliseconds since the first call in this process (monotonic, never goes back).
pub(crate) fn now_ms() -> u64 {
    let epoch = *EPOCH.get_or_init(Instant::now);
    u64::try_from(epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// Wall-clock seconds since the Unix epoch, saturating at `u32::MAX` (year 2106) and 0 for a
/// clock set before 1970.
pub(crate) fn unix_secs() -> u32 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u32::try_from(d.as_secs()).unwrap_or(u32::MAX))
}
