//! The hash functions every node of an array must agree on.
//!
//! Owns: the fixed seeds and the primitives the rest of the crate builds on — a byte hash
//! ([`stable_hash`], xxh3-64), an integer finalizer ([`mix64`], the splitmix64 finalizer) and
//! the scheduler's bucket hash ([`bucket_hash`], Bob Jenkins' lookup3 — the kernel's
//! `jhash` — over one fixed 20-byte key), which a C or BPF data plane computes bit-exactly.
//!
//! Must not: use a per-process random seed (`RandomState`) or anything that depends on the
//! platform, the build or the time. A bucket, a session group or a URL owner computed on one
//! node must be the same on every other node, today and after an upgrade; the golden vectors in
//! the tests pin the exact values, so changing either function is a wire-breaking change.

use std::net::IpAddr;

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

/// Seed (`initval`) of [`bucket_hash`]: the ASCII of `"PFLW"`, recognisable in a dump.
pub const BUCKET_HASH_SEED: u32 = 0x5046_4C57;

/// Bytes of the bucket key: 16 of address, 2 of port, 2 of zero padding (five 32-bit words).
pub const BUCKET_KEY_LEN: usize = 20;

/// The key a client's bucket is hashed from, the same for IPv4 and IPv6 so that a data plane
/// has one code path: the address as 16 bytes in network order (IPv4 as the IPv4-mapped
/// `::ffff:a.b.c.d`, so both spellings of one client agree), the port in network order, two
/// zero bytes.
#[must_use]
pub fn bucket_key(ip: IpAddr, port: u16) -> [u8; BUCKET_KEY_LEN] {
    let v6 = match ip.to_canonical() {
        IpAddr::V4(a) => a.to_ipv6_mapped(),
        IpAddr::V6(a) => a,
    };
    let mut key = [0u8; BUCKET_KEY_LEN];
    key[..16].copy_from_slice(&v6.octets());
    key[16..18].copy_from_slice(&port.to_be_bytes());
    key
}

/// The 32-bit bucket hash of a client: [`jhash`] of [`bucket_key`] with [`BUCKET_HASH_SEED`].
///
/// Why lookup3/jhash: an XDP or tc-BPF scheduler must compute the same bucket as this code,
/// bit for bit, in a verifier-friendly program — a fixed number of 32-bit adds, xors and
/// rotates, no tables and no loops over variable lengths. lookup3 is exactly that (it is the
/// Linux kernel's `jhash`, and Katran's BPF programs use it), it avalanches well enough that
/// the low bits (the mask) are uniform, and over a 20-byte key it is three fixed rounds. The
/// key's words are read little-endian, which is what `*(__u32 *)` gives a BPF program on
/// x86-64 and arm64 with no byte swap (a big-endian host must `le32_to_cpu` them). The golden
/// vectors in `tests/golden.rs` are shared with that C side.
#[must_use]
pub fn bucket_hash(ip: IpAddr, port: u16) -> u32 {
    jhash(&bucket_key(ip, port), BUCKET_HASH_SEED)
}

/// Bob Jenkins' lookup3 `hashlittle` (public domain; the Linux kernel's `jhash`): `bytes`
/// read as little-endian 32-bit words, the last partial word zero-padded.
#[must_use]
pub fn jhash(bytes: &[u8], initval: u32) -> u32 {
    // lookup3 adds the length as a u32; keys here are tiny, longer ones wrap like the C code.
    #[allow(clippy::cast_possible_truncation)]
    let len = bytes.len() as u32;
    let init = 0xdead_beef_u32.wrapping_add(len).wrapping_add(initval);
    let (mut a, mut b, mut c) = (init, init, init);
    let word = |chunk: &[u8]| {
        let mut w = [0u8; 4];
        w[..chunk.len()].copy_from_slice(chunk);
        u32::from_le_bytes(w)
    };
    let mut rest = bytes;
    while rest.len() > 12 {
        a = a.wrapping_add(word(&rest[0..4]));
        b = b.wrapping_add(word(&rest[4..8]));
        c = c.wrapping_add(word(&rest[8..12]));
        (a, b, c) = jhash_mix(a, b, c);
        rest = &rest[12..];
    }
    if rest.is_empty() {
        return c;
    }
    let mut tail = [0u8; 12];
    tail[..rest.len()].copy_from_slice(rest);
    a = a.wrapping_add(word(&tail[0..4]));
    b = b.wrapping_add(word(&tail[4..8]));
    c = c.wrapping_add(word(&tail[8..12]));
    jhash_final(a, b, c)
}

/// lookup3's `mix()`.
fn jhash_mix(mut a: u32, mut b: u32, mut c: u32) -> (u32, u32, u32) {
    a = a.wrapping_sub(c);
    a ^= c.rotate_left(4);
    c = c.wrapping_add(b);
    b = b.wrapping_sub(a);
    b ^= a.rotate_left(6);
    a = a.wrapping_add(c);
    c = c.wrapping_sub(b);
    c ^= b.rotate_left(8);
    b = b.wrapping_add(a);
    a = a.wrapping_sub(c);
    a ^= c.rotate_left(16);
    c = c.wrapping_add(b);
    b = b.wrapping_sub(a);
    b ^= a.rotate_left(19);
    a = a.wrapping_add(c);
    c = c.wrapping_sub(b);
    c ^= b.rotate_left(4);
    b = b.wrapping_add(a);
    (a, b, c)
}

/// lookup3's `final()`: the result is `c`.
fn jhash_final(mut a: u32, mut b: u32, mut c: u32) -> u32 {
    c ^= b;
    c = c.wrapping_sub(b.rotate_left(14));
    a ^= c;
    a = a.wrapping_sub(c.rotate_left(11));
    b ^= a;
    b = b.wrapping_sub(a.rotate_left(25));
    c ^= b;
    c = c.wrapping_sub(b.rotate_left(16));
    a ^= c;
    a = a.wrapping_sub(c.rotate_left(4));
    b ^= a;
    b = b.wrapping_sub(a.rotate_left(14));
    c ^= b;
    c.wrapping_sub(b.rotate_left(24))
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
    fn jhash_is_lookup3_hashlittle() {
        // The reference values printed by lookup3.c's driver5() (Bob Jenkins, 2006).
        assert_eq!(jhash(b"", 0), 0xdead_beef);
        assert_eq!(jhash(b"", 0xdead_beef), 0xbd5b_7dde);
        assert_eq!(jhash(b"Four score and seven years ago", 0), 0x1777_0551);
        assert_eq!(jhash(b"Four score and seven years ago", 1), 0xcd62_8161);
    }

    #[test]
    fn the_bucket_key_is_one_layout_for_both_families() {
        let v4: IpAddr = "192.0.2.1"
            .parse()
            .unwrap_or(IpAddr::V4(std::net::Ipv4Addr::LOCALHOST));
        let key = bucket_key(v4, 0x1234);
        assert_eq!(&key[..12], &[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff]);
        assert_eq!(&key[12..], &[192, 0, 2, 1, 0x12, 0x34, 0, 0]);
    }

    #[test]
    fn stable_hash_differs_from_unseeded_xxh3() {
        assert_ne!(stable_hash(b"abc"), xxhash_rust::xxh3::xxh3_64(b"abc"));
    }
}
