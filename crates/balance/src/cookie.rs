//! The value of the injected persistence cookie (seed 002, cookie persistence).
//!
//! Owns: turning a back-end name into an opaque cookie value and back. A value is 24 bytes,
//! written in base64url without padding (32 characters):
//!
//! ```text
//! nonce (8, random) | issued (u32 BE, Unix s) | seen (u32 BE, Unix s) | tag ⊕ mask (8)
//! tag  = HMAC-SHA256(secret, "pentaflow/persistence-cookie/v2/tag:" ‖ back-end name)[..8]
//! mask = HMAC-SHA256(secret, "pentaflow/persistence-cookie/v2/pad:" ‖ first 16 bytes)[..8]
//! ```
//!
//! That makes the value
//!
//! * **different for every client**: the nonce makes two clients of one back-end hold unrelated
//!   values, so comparing cookies does not tell who shares a back-end, and a list of values
//!   does not enumerate the back-ends (HAProxy's `cookie … dynamic` has the same aim);
//! * **opaque and unforgeable**: without the secret nobody can compute a value that selects a
//!   given back-end, nor change `issued`/`seen` of a value they hold (the mask is a MAC of
//!   them, so any change turns the tag into noise: a 2⁻⁶⁴ guess per request);
//! * **array-wide**: every node sharing the secret decodes every other node's values, with one
//!   map lookup (the mask is computed from the value itself, then the tag is looked up);
//! * **rotatable**: a codec holds the current secret, which signs, and up to a few previous
//!   ones, which still decode (the decoded value says so, so the proxy re-issues it);
//! * **able to expire**: `issued` and `seen` carry HAProxy's `maxlife`/`maxidle` semantics,
//!   judged by [`CookieLifetime`] against a time the caller passes (this crate has no clock).
//!
//! Must not: log or print a secret (the `Debug` impl redacts them), read a clock or a random
//! source (the nonce and the times are arguments), or accept anything but an exact,
//! well-formed value before looking it up. Decoding untrusted cookie text is fuzzed
//! (`fuzz/fuzz_targets/cookie_token.rs`).

use std::collections::HashMap;
use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::digest::{Key, KeyInit};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

use crate::candidate::BackendId;

/// Bytes of a decoded value: nonce, two times, masked tag.
pub const TOKEN_BYTES: usize = 24;

/// Characters of a value: 24 bytes in base64 are exactly 32 characters, no padding, no spare
/// bits (so every well-formed value decodes canonically).
pub const TOKEN_LEN: usize = 32;

/// Bytes of the back-end tag (and of its mask): 64 bits; a forged value is checked by a
/// request, never offline, so 2⁻⁶⁴ per try is ample.
const TAG_BYTES: usize = 8;

/// The part of a value the mask is computed from: nonce and both times.
const HEADER_BYTES: usize = TOKEN_BYTES - TAG_BYTES;

/// Most previous secrets a codec keeps for decoding (a rotation window, not an archive).
pub const MAX_PREVIOUS_SECRETS: usize = 8;

/// Domain separation: the same secret used for something else must not yield cookie values,
/// and the two MACs of one value must not be each other.
const TAG_CONTEXT: &[u8] = b"pentaflow/persistence-cookie/v2/tag:";
const MASK_CONTEXT: &[u8] = b"pentaflow/persistence-cookie/v2/pad:";

/// How much later than our clock a value's times may be (another node's clock runs ahead).
pub const CLOCK_SKEW_SECS: u32 = 300;

type HmacSha256 = Hmac<Sha256>;

/// One secret: its keyed HMAC state and the tags of the current back-ends under it.
#[derive(Clone)]
struct Keyed {
    /// HMAC state already keyed with the secret; cloned per MAC.
    mac: HmacSha256,
    /// Tag → back-end, for the back-ends of the current configuration.
    known: HashMap<[u8; TAG_BYTES], BackendId>,
}

/// Encodes back-end names into cookie values and decodes values back into back-end ids.
///
/// Built once per configuration (secrets + current back-ends); cheap to clone. `Debug` does
/// not print the keys.
#[derive(Clone)]
pub struct CookieCodec {
    /// The current secret first (it signs), then the previous ones (they only decode).
    keys: Vec<Keyed>,
}

/// A value that named a current back-end, and what it carried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decoded {
    /// The back-end it selects.
    pub backend: BackendId,
    /// When the value was first issued to this client (Unix seconds).
    pub issued: u32,
    /// When the value was last issued or refreshed (Unix seconds).
    pub seen: u32,
    /// Whether the current secret signed it (false: a previous one; re-issue it).
    pub current_key: bool,
}

/// Why a cookie value does not name a back-end.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum CookieError {
    /// Not a value at all: wrong length or a character outside base64url.
    #[error("persistence cookie is malformed (expected {TOKEN_LEN} base64url characters)")]
    Malformed,
    /// Well-formed, but names no current back-end (removed, other secret, tampered or forged).
    #[error("persistence cookie names no current back-end")]
    Unknown,
}

impl CookieCodec {
    /// A codec for one `secret` that recognises the values of `backend_names`.
    ///
    /// Any secret length is accepted (HMAC hashes keys longer than a block); an empty secret
    /// works but makes values forgeable, which the config layer refuses.
    #[must_use]
    pub fn new(secret: &[u8], backend_names: &[&str]) -> Self {
        Self::with_secrets(secret, &[], backend_names)
    }

    /// A codec that signs with `current` and also decodes values signed with `previous`
    /// (newest first; at most [`MAX_PREVIOUS_SECRETS`] are kept, the rest ignored).
    #[must_use]
    pub fn with_secrets(current: &[u8], previous: &[&[u8]], backend_names: &[&str]) -> Self {
        let keys = std::iter::once(current)
            .chain(previous.iter().copied().take(MAX_PREVIOUS_SECRETS))
            .map(|secret| {
                let mac = keyed_hmac(secret);
                let known = backend_names
                    .iter()
                    .map(|name| (tag(&mac, name), BackendId::from_name(name)))
                    .collect();
                Keyed { mac, known }
            })
            .collect();
        Self { keys }
    }

    /// The value that selects `backend_name` (whether or not it is a current back-end), for a
    /// client given `nonce` (random, from the caller), first issued at `issued` and refreshed
    /// at `seen` (Unix seconds). Always signed with the current secret.
    #[must_use]
    pub fn token(&self, backend_name: &str, nonce: [u8; 8], issued: u32, seen: u32) -> String {
        let key = &self.keys[0];
        let mut raw = [0u8; TOKEN_BYTES];
        raw[..8].copy_from_slice(&nonce);
        raw[8..12].copy_from_slice(&issued.to_be_bytes());
        raw[12..16].copy_from_slice(&seen.to_be_bytes());
        let tag = tag(&key.mac, backend_name);
        let mask = mask(&key.mac, &raw[..HEADER_BYTES]);
        for (i, out) in raw[HEADER_BYTES..].iter_mut().enumerate() {
            *out = tag[i] ^ mask[i];
        }
        URL_SAFE_NO_PAD.encode(raw)
    }

    /// Which back-end a cookie value names, and when it was issued and refreshed.
    ///
    /// Anything that is not exactly [`TOKEN_LEN`] base64url characters is
    /// [`CookieError::Malformed`] before any MAC is computed; a well-formed value that no
    /// secret of this codec maps to a current back-end is [`CookieError::Unknown`]. A
    /// constant-time compare is not needed: the lookup is by map key, and the answer (which
    /// back-end) is visible to the client anyway.
    pub fn decode(&self, value: &str) -> Result<Decoded, CookieError> {
        let bytes = value.as_bytes();
        if bytes.len() != TOKEN_LEN || !bytes.iter().all(|&b| is_base64url(b)) {
            return Err(CookieError::Malformed);
        }
        let mut raw = [0u8; TOKEN_BYTES];
        match URL_SAFE_NO_PAD.decode_slice(bytes, &mut raw) {
            Ok(TOKEN_BYTES) => {}
            _ => return Err(CookieError::Malformed),
        }
        let (header, masked) = raw.split_at(HEADER_BYTES);
        let issued = u32::from_be_bytes([header[8], header[9], header[10], header[11]]);
        let seen = u32::from_be_bytes([header[12], header[13], header[14], header[15]]);
        for (index, key) in self.keys.iter().enumerate() {
            let mask = mask(&key.mac, header);
            let mut tag = [0u8; TAG_BYTES];
            for (i, t) in tag.iter_mut().enumerate() {
                *t = masked[i] ^ mask[i];
            }
            if let Some(&backend) = key.known.get(&tag) {
                return Ok(Decoded {
                    backend,
                    issued,
                    seen,
                    current_key: index == 0,
                });
            }
        }
        Err(CookieError::Unknown)
    }

    /// Number of back-ends this codec recognises.
    #[must_use]
    pub fn backends(&self) -> usize {
        self.keys[0].known.len()
    }

    /// Number of previous secrets this codec still decodes.
    #[must_use]
    pub fn previous_secrets(&self) -> usize {
        self.keys.len() - 1
    }
}

/// HAProxy's `maxidle`/`maxlife` for injected cookies: how long a value stays honoured.
///
/// `None` is "forever" for that bound. Times are Unix seconds, passed in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CookieLifetime {
    /// A value not refreshed for longer than this is ignored (the client is scheduled anew).
    pub max_idle: Option<u32>,
    /// A value first issued longer ago than this is ignored, however active the client.
    pub max_life: Option<u32>,
}

/// What to do with a decoded value now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Freshness {
    /// Honour it; nothing to send.
    Valid,
    /// Honour it and send a re-issued value (same `issued`, `seen` = now, current secret):
    /// it was signed with a previous secret, or a quarter of `max_idle` has passed since it
    /// was last refreshed (so an active client never reaches `max_idle`, without a
    /// `Set-Cookie` on every response).
    Refresh,
    /// Ignore it: past `max_idle` or `max_life`, or dated in the future beyond the skew.
    Expired,
}

impl CookieLifetime {
    /// Judges `value` at `now`.
    #[must_use]
    pub fn judge(&self, value: &Decoded, now: u32) -> Freshness {
        let ahead = now.saturating_add(CLOCK_SKEW_SECS);
        if value.issued > ahead || value.seen > ahead || value.seen < value.issued {
            return Freshness::Expired;
        }
        let since_issued = now.saturating_sub(value.issued);
        let since_seen = now.saturating_sub(value.seen);
        if self.max_life.is_some_and(|life| since_issued > life)
            || self.max_idle.is_some_and(|idle| since_seen > idle)
        {
            return Freshness::Expired;
        }
        let refresh_due = self.max_idle.is_some_and(|idle| since_seen > idle / 4);
        if !value.current_key || refresh_due {
            Freshness::Refresh
        } else {
            Freshness::Valid
        }
    }
}

impl fmt::Debug for CookieCodec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CookieCodec")
            .field("keys", &"<redacted>")
            .field("previous_secrets", &self.previous_secrets())
            .field("backends", &self.backends())
            .finish()
    }
}

/// The back-end tag under one secret.
fn tag(mac: &HmacSha256, backend_name: &str) -> [u8; TAG_BYTES] {
    truncated(mac, TAG_CONTEXT, backend_name.as_bytes())
}

/// The mask of a value's nonce and times under one secret.
fn mask(mac: &HmacSha256, header: &[u8]) -> [u8; TAG_BYTES] {
    truncated(mac, MASK_CONTEXT, header)
}

fn truncated(mac: &HmacSha256, context: &[u8], data: &[u8]) -> [u8; TAG_BYTES] {
    let mut mac = mac.clone();
    mac.update(context);
    mac.update(data);
    let full = mac.finalize().into_bytes();
    let mut out = [0u8; TAG_BYTES];
    out.copy_from_slice(&full[..TAG_BYTES]);
    out
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
