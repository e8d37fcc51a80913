//! Fuzz `CookieCodec::decode` with arbitrary cookie text (the value comes straight from a
//! client's `Cookie:` header).
//!
//! Checks, besides "never panics": a value decodes only if re-encoding what it carried (its
//! nonce, times and back-end) gives the value back byte for byte — so nothing but a value this
//! codec signed is accepted — and the error kind matches the shape of the input.

#![no_main]

use std::sync::LazyLock;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use libfuzzer_sys::fuzz_target;
use pentaflow_balance::cookie::TOKEN_LEN;
use pentaflow_balance::{BackendId, CookieCodec, CookieError};

const NAMES: [&str; 3] = ["web1", "web2", "static"];

/// Built once: the key schedule is not what is being fuzzed.
static CODEC: LazyLock<CookieCodec> = LazyLock::new(|| CookieCodec::new(b"fuzzing secret", &NAMES));

fn well_formed(value: &str) -> bool {
    value.len() == TOKEN_LEN
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fuzz_target!(|data: &[u8]| {
    // Header values reach the codec as &str; other bytes are rejected earlier by the proxy.
    let Ok(value) = std::str::from_utf8(data) else {
        return;
    };
    match CODEC.decode(value) {
        Ok(d) => {
            let raw = URL_SAFE_NO_PAD.decode(value).expect("decoded values are base64url");
            let mut nonce = [0u8; 8];
            nonce.copy_from_slice(&raw[..8]);
            let named = NAMES.iter().any(|n| {
                BackendId::from_name(n) == d.backend
                    && CODEC.token(n, nonce, d.issued, d.seen) == value
            });
            assert!(named, "{value:?} decoded to {d:?} but is no back-end's value");
        }
        Err(CookieError::Malformed) => assert!(!well_formed(value), "{value:?} is well-formed"),
        Err(CookieError::Unknown) => assert!(well_formed(value), "{value:?} is malformed"),
        Err(e) => panic!("unexpected error {e:?}"),
    }
});
