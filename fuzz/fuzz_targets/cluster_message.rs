//! Fuzz the control-plane decoders with arbitrary bytes (a datagram from anyone on the LAN).
//!
//! Checks, besides "never panics": `wire::decode` of the raw bytes is canonical (what decodes
//! re-encodes to the same bytes); `ClusterKey::open` never accepts unauthenticated bytes; and a
//! datagram sealed around the decoded message opens to the same envelope.

#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use pentaflow_cluster::wire;
use pentaflow_cluster::ClusterKey;

static KEY: LazyLock<ClusterKey> = LazyLock::new(|| {
    ClusterKey::new(b"fuzzing-cluster-key".to_vec()).expect("key of valid length")
});

fuzz_target!(|data: &[u8]| {
    // Random bytes carry a valid 128-bit tag with probability 2^-128: treat a pass as a bug.
    assert!(KEY.open(data).is_err(), "forged datagram accepted");
    if let Ok(env) = wire::decode(data) {
        let again = wire::encode(&env).expect("a decoded message fits a datagram");
        assert_eq!(again, data, "encoding is not canonical");
        let sealed = KEY.seal(&env).expect("seal");
        assert_eq!(KEY.open(&sealed).expect("open"), env);
    }
});
