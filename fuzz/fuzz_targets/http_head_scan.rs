//! The proxy's request-head scanner sees every byte a client sends before hyper parses it:
//! it must never panic, whatever the bytes and however they are split.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pentaflow_proxy::head_scan::HeadScan;

fuzz_target!(|data: &[u8]| {
    let split = data.first().map_or(0, |b| usize::from(*b)).min(data.len());
    let mut whole = HeadScan::new();
    whole.feed(data);
    let mut parts = HeadScan::new();
    parts.feed(&data[..split]);
    parts.feed(&data[split..]);
    // Splitting the stream anywhere must not change the verdict.
    assert_eq!(whole.verdict(), parts.verdict());
});
