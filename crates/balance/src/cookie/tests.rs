use super::*;

const SECRET: &[u8] = b"array secret shared by every node";
const NAMES: [&str; 3] = ["web1", "web2", "static"];

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn hmac_hex(key: &[u8], data: &[u8]) -> String {
    let mut mac = keyed_hmac(key);
    mac.update(data);
    hex(&mac.finalize().into_bytes())
}

#[test]
fn keyed_hmac_is_standard_hmac_sha256() {
    // RFC 4231 test case 1 (short key) and 6 (key longer than the block).
    assert_eq!(
        hmac_hex(&[0x0b; 20], b"Hi There"),
        "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"
    );
    assert_eq!(
        hmac_hex(
            &[0xaa; 131],
            b"Test Using Larger Than Block-Size Key - Hash Key First"
        ),
        "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
    );
    // And it agrees with the crate's own variable-length constructor.
    for key in [&b""[..], b"k", &[7u8; 64], &[9u8; 65]] {
        let mut ours = keyed_hmac(key);
        let mut theirs = <HmacSha256 as Mac>::new_from_slice(key).unwrap();
        ours.update(b"x");
        theirs.update(b"x");
        assert_eq!(ours.finalize().into_bytes(), theirs.finalize().into_bytes());
    }
}

const NONCE: [u8; 8] = [1, 2, 3, 4, 5, 6, 7, 8];
const T0: u32 = 1_790_000_000;

fn tok(codec: &CookieCodec, name: &str) -> String {
    codec.token(name, NONCE, T0, T0)
}

fn backend(codec: &CookieCodec, value: &str) -> Result<BackendId, CookieError> {
    codec.decode(value).map(|d| d.backend)
}

#[test]
fn round_trip() {
    let codec = CookieCodec::new(SECRET, &NAMES);
    assert_eq!(codec.backends(), 3);
    for name in NAMES {
        let t = codec.token(name, NONCE, T0, T0 + 7);
        assert_eq!(t.len(), TOKEN_LEN);
        assert!(!t.contains(name));
        assert_eq!(
            codec.decode(&t),
            Ok(Decoded {
                backend: BackendId::from_name(name),
                issued: T0,
                seen: T0 + 7,
                current_key: true,
            })
        );
    }
}

#[test]
fn every_client_gets_another_value_for_one_backend() {
    let codec = CookieCodec::new(SECRET, &NAMES);
    let values: std::collections::HashSet<String> = (0u64..64)
        .map(|n| codec.token("web1", n.to_be_bytes(), T0, T0))
        .collect();
    assert_eq!(values.len(), 64);
    for v in &values {
        assert_eq!(backend(&codec, v), Ok(BackendId::from_name("web1")));
    }
    // Not even the tag part repeats: the mask depends on the nonce.
    let tails: std::collections::HashSet<&str> = values.iter().map(|v| &v[22..]).collect();
    assert_eq!(tails.len(), 64);
}

#[test]
fn same_secret_same_values_on_every_node() {
    let a = CookieCodec::new(SECRET, &NAMES);
    // Another node, back-ends listed in another order.
    let b = CookieCodec::new(SECRET, &["static", "web2", "web1"]);
    for name in NAMES {
        assert_eq!(tok(&a, name), tok(&b, name));
        assert_eq!(backend(&b, &tok(&a, name)), Ok(BackendId::from_name(name)));
    }
}

#[test]
fn different_secret_is_unknown() {
    let a = CookieCodec::new(SECRET, &NAMES);
    let b = CookieCodec::new(b"another secret", &NAMES);
    for name in NAMES {
        assert_ne!(tok(&a, name), tok(&b, name));
        assert_eq!(b.decode(&tok(&a, name)), Err(CookieError::Unknown));
    }
}

#[test]
fn previous_secrets_still_decode_and_ask_for_a_refresh() {
    let old = CookieCodec::new(b"old secret", &NAMES);
    let new = CookieCodec::with_secrets(SECRET, &[b"old secret"], &NAMES);
    assert_eq!(new.previous_secrets(), 1);
    let v = tok(&old, "web2");
    let d = new.decode(&v).expect("old value decodes");
    assert_eq!(d.backend, BackendId::from_name("web2"));
    assert!(!d.current_key);
    assert_eq!(CookieLifetime::default().judge(&d, T0), Freshness::Refresh);
    // New values are signed with the current secret only.
    assert_eq!(old.decode(&tok(&new, "web2")), Err(CookieError::Unknown));
    assert!(new.decode(&tok(&new, "web2")).expect("decodes").current_key);
    // Dropping the old secret ends its values.
    assert_eq!(
        CookieCodec::new(SECRET, &NAMES).decode(&v),
        Err(CookieError::Unknown)
    );
}

#[test]
fn removed_backend_is_unknown() {
    let a = CookieCodec::new(SECRET, &NAMES);
    let b = CookieCodec::new(SECRET, &["web1"]);
    assert_eq!(b.decode(&tok(&a, "web2")), Err(CookieError::Unknown));
    assert_eq!(
        backend(&b, &tok(&a, "web1")),
        Ok(BackendId::from_name("web1"))
    );
}

#[test]
fn tampering_with_any_byte_is_unknown() {
    let codec = CookieCodec::new(SECRET, &NAMES);
    let t = codec.token("web1", NONCE, T0, T0);
    let raw = URL_SAFE_NO_PAD.decode(&t).expect("valid base64");
    // Flip one bit of every byte in turn: nonce, times and tag are all covered.
    for i in 0..TOKEN_BYTES {
        let mut bad = raw.clone();
        bad[i] ^= 0x10;
        let bad = URL_SAFE_NO_PAD.encode(&bad);
        assert_eq!(codec.decode(&bad), Err(CookieError::Unknown), "byte {i}");
    }
}

#[test]
fn lifetime_judges_idle_life_skew_and_refresh() {
    let codec = CookieCodec::new(SECRET, &NAMES);
    let at = |issued, seen| {
        codec
            .decode(&codec.token("web1", NONCE, issued, seen))
            .expect("decodes")
    };
    let forever = CookieLifetime::default();
    assert_eq!(forever.judge(&at(0, 0), T0), Freshness::Valid);
    let life = CookieLifetime {
        max_idle: Some(400),
        max_life: Some(3600),
    };
    assert_eq!(life.judge(&at(T0, T0), T0 + 50), Freshness::Valid);
    // A quarter of max_idle since the last refresh: re-issue.
    assert_eq!(life.judge(&at(T0, T0), T0 + 101), Freshness::Refresh);
    assert_eq!(life.judge(&at(T0, T0), T0 + 400), Freshness::Refresh);
    assert_eq!(life.judge(&at(T0, T0), T0 + 401), Freshness::Expired);
    // Active all along, but too old.
    assert_eq!(life.judge(&at(T0, T0 + 3500), T0 + 3550), Freshness::Valid);
    assert_eq!(
        life.judge(&at(T0, T0 + 3590), T0 + 3601),
        Freshness::Expired
    );
    // Another node's clock a little ahead is fine; far ahead, or seen before issued, is not.
    assert_eq!(life.judge(&at(T0 + 60, T0 + 60), T0), Freshness::Valid);
    assert_eq!(life.judge(&at(T0 + 301, T0 + 301), T0), Freshness::Expired);
    assert_eq!(life.judge(&at(T0, T0 - 1), T0), Freshness::Expired);
}

#[test]
fn garbage_is_malformed() {
    let codec = CookieCodec::new(SECRET, &NAMES);
    let t = tok(&codec, "web1");
    let oversized = "A".repeat(1 << 20);
    let padded = format!("{}=", "A".repeat(TOKEN_LEN - 1));
    let standard = format!("{}+", "A".repeat(TOKEN_LEN - 1));
    let slash = format!("{}/A", "A".repeat(TOKEN_LEN - 2));
    let space = format!("{} A", "A".repeat(TOKEN_LEN - 2));
    let accent = format!("{}é", "A".repeat(TOKEN_LEN - 2));
    let nul = "\0".repeat(TOKEN_LEN);
    let old_format = "WVbMOFn_7Buqi9QU"; // a v1 value (16 characters)
    let cases = [
        "",
        "web1",
        &t[..TOKEN_LEN - 1],
        &oversized,
        &padded, // padding is not part of the alphabet
        &standard,
        &slash,
        &space,
        &accent, // the right length in bytes, non-ASCII
        &nul,
        old_format,
    ];
    for case in cases {
        assert_eq!(codec.decode(case), Err(CookieError::Malformed), "{case:?}");
    }
    assert_eq!(codec.decode(&format!("{t}A")), Err(CookieError::Malformed));
    assert_eq!(codec.decode(&format!(" {t}")), Err(CookieError::Malformed));
    // Well-formed but random: unknown, not malformed.
    assert_eq!(
        codec.decode(&"A".repeat(TOKEN_LEN)),
        Err(CookieError::Unknown)
    );
    assert_eq!(
        codec.decode(&"-_".repeat(TOKEN_LEN / 2)),
        Err(CookieError::Unknown)
    );
}

#[test]
fn debug_does_not_print_the_keys() {
    let codec = CookieCodec::with_secrets(b"s3cr3t-K3Y", &[b"0ld-s3cr3t"], &NAMES);
    let dbg = format!("{codec:?}");
    assert!(!dbg.contains("s3cr3t"), "{dbg}");
    assert!(dbg.contains("redacted"));
    // Nor any byte-ish rendering of it.
    assert!(!dbg.contains("115, 51"), "{dbg}");
}

#[test]
fn errors_display() {
    assert!(CookieError::Malformed.to_string().contains("32"));
    assert!(CookieError::Unknown.to_string().contains("no current"));
}
