//! The hash functions every node of an array must agree on.
//!
//! Owns: the fixed seed and the two primitives the rest of the crate builds on — a byte hash
//! ([`stable_hash`], xxh3-64) and an integer finalizer ([`mix64`], the splitmix64 finalizer).
//!
//! Must not: use a per-process random seed (`RandomState`) or anything that depends on the
//! platform, the build or the time. A bucket, a session group or a URL owner computed on one
//! node must be the same on every other node, today and after an upgrade; the golden vectors in
//! the tests pin the exact values, so changing either function is a wire-breaking change.

use xxhash_rust::xxh3::xxh3_64_with_seed;

/// Seed of [`stable_hash`]. Fixed, because every node of an array (and every version of
/// pentaflow) must map the same bytes to the same bucket. The value is the ASCII of
/// `"PENTAFLW"`, chosen only so it is recognisable in a memory dump.
pub const HASH_SEED: u64 = 0x5045_4E54_4146_4C57;

/// Hash bytes to 64 bits with xxh3 and [`HASH_SEED`].
///
/// Fast (a few ns for short keys), well distributed and stable across platforms and releases
/// of `xxhash-rust`: xxh3 is a specified algorithm, not an implementation detail.
#[must_use]
pub fn stable_hash(bytes: &[u8]) -> u64 {
    xxh3_64_with_seed(bytes, HASH_SEED)
}

/// The splitmix64 finalizer: a bijection on `u64` with full avalanche.
///
/// Used where two already-hashed values are combined (e.g. `key_hash ^ backend_id` in
/// rendezvous hashing): XOR alone keeps structure, the finalizer spreads every input bit over
/// every output bit. Being a bijection, it never adds collisions.
#[must_use]
pub fn mix64(x: u64) -> u64 {
    // Constants from Steele, Lea & Flood, "Fast splittable pseudorandom number generators"
    // (the finalizer of SplitMix64, itself a variant of MurmurHash3's fmix64).
    let mut z = x;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mix64_is_the_splitmix64_finalizer() {
        // splitmix64's first output for state 0 is mix64(0x9E3779B97F4A7C15) = 0xE220A8397B1DCDAF,
        // the published reference value.
        assert_eq!(mix64(0x9E37_79B9_7F4A_7C15), 0xE220_A839_7B1D_CDAF);
        assert_eq!(mix64(0), 0);
    }

    #[test]
    fn stable_hash_differs_from_unseeded_xxh3() {
        assert_ne!(stable_hash(b"abc"), xxhash_rust::xxh3::xxh3_64(b"abc"));
    }
}
