//! The HTTP/1 engine's parsers of untrusted bytes — a client's request head, a back-end's
//! response head, a chunked body — must never panic, and a chunked body must decode the same
//! however the stream is split. The raw-head rewriting is checked too (inside the entry
//! points): what a head becomes on its way out (to a back-end, to a client) is one well-formed
//! head of its own length, in CRLF lines, without the hop-by-hop or framing fields it came with.
//! An interim (`1xx`) response head, forwarded to HTTP/1.1 clients as it arrives, is checked
//! the same way: one complete head of its own status, with no framing or `Connection` field.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pentaflow_proxy::fuzz;

fuzz_target!(|data: &[u8]| {
    let split = data.first().map_or(0, |b| usize::from(*b)).min(data.len());
    if let Ok(Some(used)) = fuzz::request_head(data, 100) {
        // A complete head is complete on its own bytes too, with the same length.
        assert_eq!(fuzz::request_head(&data[..used], 100), Ok(Some(used)));
    }
    let _ = fuzz::response_head(data, split % 2 == 0);
    let whole = fuzz::chunked_body(data, data.len());
    let parts = fuzz::chunked_body(data, split);
    assert_eq!(whole, parts);
});
