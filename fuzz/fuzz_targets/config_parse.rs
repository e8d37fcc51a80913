//! Fuzz the configuration parser: any text yields a `Config` or a typed error whose message
//! renders, never a panic. Seed it with `crates/config/example.toml`.

#![no_main]

use libfuzzer_sys::fuzz_target;
use pentaflow_config::{parse, Source};

fuzz_target!(|data: &[u8]| {
    // The loader reads files as UTF-8 (`read_to_string`), so only UTF-8 reaches `parse`.
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Err(err) = parse(text, Source::Inline("fuzz".into())) {
        let _ = err.to_string();
    }
});
