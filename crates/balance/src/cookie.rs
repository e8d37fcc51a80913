//! The value of the injected persistence cookie (seed 002, cookie persistence).
//!
//! Owns: turning a back-end name into an opaque cookie value and back. The value is a keyed MAC
//! of the back-end name — HMAC-SHA256 with the array's configured secret, truncated to 96 bits
//! and written in base64url without padding (16 characters). That makes it
//!
//! * **opaque**: it reveals nothing of the back-end's name or address;
//! * **unforgeable**: without the secret nobody can compute the value that selects a given
//!   back-end (96 bits is plenty: a guess is checked by a request, not offline);
//! * **array-wide**: every node sharing the secret computes the same value, so any node honours
//!   a cookie another node set, and it survives reloads that keep the back-end's name.
//!
//! Must not: log or print the secret (the `Debug` impl redacts it), or accept anything but an
//! exact, well-formed token before looking it up. Decoding untrusted cookie text is fuzzed
//! (`fuzz/fuzz_targets/cookie_token.rs`).

use std::collections::HashMap;
use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::digest::{Key, KeyInit};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

use crate::candidate::BackendId;

/// Bytes of the truncated MAC: 96 bits, as in many truncated-HMAC uses (RFC 2104 §5 allows
/// truncation to no less than half the hash and 80 bits).
pub const TOKEN_BYTES: usize = 12;

/// Characters of a token: 12 bytes in base64 are exactly 16 characters, no padding, no spare
/// bits (so every well-formed token decodes canonically).
pub const TOKEN_LEN: usize = 16;

/// Domain separation: the same secret used for something else must not yield cookie values.
const COOKIE_CONTEXT: &[u8] = b"pentaflow/persistence-cookie/v1:";

type HmacSha256 = Hmac<Sha256>;

/// Encodes back-end names into cookie values and decodes values back into back-end ids.
///
/// Built once per configuration (secret + current back-ends); cheap to clone. `Debug` does not
/// print the key.
#[derive(Clone)]
pub struct CookieCodec {
    /// HMAC state already keyed with the secret; cloned per token.
    mac: HmacSha256,
    /// Token bytes → back-end, for the back-ends of the current configuration.
    known: HashMap<[u8; TOKEN_BYTES], BackendId>,
}

/// Why a cookie value does not name a back-end.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum CookieError {
    /// Not a token at all: wrong length or a character outside base64url.
    #[error("persistence cookie is malformed (expected {TOKEN_LEN} base64url characters)")]
    Malformed,
    /// Well-formed, but names no current back-end (removed, other secret, or forged).
    #[error("persistence cookie names no current back-end")]
    Unknown,
}

impl CookieCodec {
    /// A codec for `secret` that recognises the tokens of `backend_names`.
    ///
    /// Any secret length is accepted (HMAC hashes keys longer than a block); an empty secret
    /// works but makes tokens forgeable, which the config layer should refuse.
    #[must_use]
    pub fn new(secret: &[u8], backend_names: &[&str]) -> Self {
        let mac = keyed_hmac(secret);
        let mut codec = Self {
            mac,
            known: HashMap::with_capacity(backend_names.len()),
        };
        for name in backend_names {
            let tag = codec.tag(name);
            codec.known.insert(tag, BackendId::from_name(name));
        }
        codec
    }

    /// The cookie value that selects `backend_name` (whether or not it is a current back-end).
    #[must_use]
    pub fn token(&self, backend_name: &str) -> String {
        URL_SAFE_NO_PAD.encode(self.tag(backend_name))
    }

    /// Which back-end a cookie value names.
    ///
    /// Anything that is not exactly [`TOKEN_LEN`] base64url characters is
    /// [`CookieError::Malformed`] before any lookup; a well-formed token of no current back-end
    /// is [`CookieError::Unknown`]. A constant-time compare is not needed: the lookup is by map
    /// key, and the answer (which back-end) is visible to the client anyway.
    pub fn decode(&self, value: &str) -> Result<BackendId, CookieError> {
        let bytes = value.as_bytes();
        if bytes.len() != TOKEN_LEN || !bytes.iter().all(|&b| is_base64url(b)) {
            return Err(CookieError::Malformed);
        }
        let mut tag = [0u8; TOKEN_BYTES];
        match URL_SAFE_NO_PAD.decode_slice(bytes, &mut tag) {
            Ok(TOKEN_BYTES) => {}
            _ => return Err(CookieError::Malformed),
        }
        self.known.get(&tag).copied().ok_or(CookieError::Unknown)
    }

    /// Number of back-ends this codec recognises.
    #[must_use]
    pub fn backends(&self) -> usize {
        self.known.len()
    }

    /// The truncated MAC of a back-end name.
    fn tag(&self, backend_name: &str) -> [u8; TOKEN_BYTES] {
        let mut mac = self.mac.clone();
        mac.update(COOKIE_CONTEXT);
        mac.update(backend_name.as_bytes());
        let full = mac.finalize().into_bytes();
        let mut tag = [0u8; TOKEN_BYTES];
        tag.copy_from_slice(&full[..TOKEN_BYTES]);
        tag
    }
}

impl fmt::Debug for CookieCodec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CookieCodec")
            .field("key", &"<redacted>")
            .field("backends", &self.known.len())
            .finish()
    }
}

/// HMAC-SHA256 keyed with `secret`, built without a fallible constructor.
///
/// RFC 2104: a key longer than the block is first hashed, and the key is zero-padded to the
/// block size. Doing that here lets us use the infallible fixed-size `KeyInit::new`, and yields
/// exactly standard HMAC (checked against RFC 4231 in the tests).
fn keyed_hmac(secret: &[u8]) -> HmacSha256 {
    let mut block = Key::<HmacSha256>::default();
    if secret.len() > block.len() {
        let digest = Sha256::digest(secret);
        block[..digest.len()].copy_from_slice(&digest);
    } else {
        block[..secret.len()].copy_from_slice(secret);
    }
    <HmacSha256 as KeyInit>::new(&block)
}

/// The base64url alphabet (RFC 4648 §5).
fn is_base64url(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_'
}

#[cfg(test)]
mod tests;
