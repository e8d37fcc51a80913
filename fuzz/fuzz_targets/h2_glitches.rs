//! The HTTP/2 glitch meter follows a hostile client's frame headers: it must never panic, and
//! how the byte stream is split into reads must not change whether it trips or what it counts.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pentaflow_proxy::fuzz;

fuzz_target!(|data: &[u8]| {
    let split = data.first().map_or(0, |b| usize::from(*b)).min(data.len());
    let threshold = u32::from(data.get(1).copied().unwrap_or(0) % 8);
    let (whole, counted) = fuzz::h2_glitch_frames(data, data.len(), threshold);
    let (parts, counted_parts) = fuzz::h2_glitch_frames(data, split, threshold);
    assert_eq!(whole.is_some(), parts.is_some());
    assert_eq!(counted, counted_parts);
    if let (Some(w), Some(p)) = (whole, parts) {
        // A cut never reaches past the frame that tripped; split reads may cut later only up
        // to the split (the tripping frame's start was already handed over).
        assert!(w <= data.len() && p >= w && p <= w.max(split));
    }
});
