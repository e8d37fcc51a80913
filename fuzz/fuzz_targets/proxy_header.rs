//! The PROXY protocol header an `accept_proxy` listener reads first on each connection (v1
//! text, v2 binary) comes from the network: framing and decoding it must never panic, a
//! header's length never exceeds the bytes given nor the size bound, and a header accepted on
//! its own bytes decodes the same when the connection's next bytes follow it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pentaflow_proxy::fuzz;

fuzz_target!(|data: &[u8]| {
    if let Some((len, client)) = fuzz::proxy_header(data) {
        assert!(len <= data.len());
        assert!(len <= 4096);
        assert_eq!(fuzz::proxy_header(&data[..len]), Some((len, client)));
        let mut more = data[..len].to_vec();
        more.extend_from_slice(b"GET / HTTP/1.1\r\n\r\n");
        assert_eq!(fuzz::proxy_header(&more), Some((len, client)));
    }
});
