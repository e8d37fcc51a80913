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

#[test]
fn round_trip() {
    let codec = CookieCodec::new(SECRET, &NAMES);
    assert_eq!(codec.backends(), 3);
    for name in NAMES {
        let t = codec.token(name);
        assert_eq!(t.len(), TOKEN_LEN);
        assert!(!t.contains(name));
        assert_eq!(codec.decode(&t), Ok(BackendId::from_name(name)));
    }
}

#[test]
fn same_secret_same_tokens_on_every_node() {
    let a = CookieCodec::new(SECRET, &NAMES);
    // Another node, back-ends listed in another order.
    let b = CookieCodec::new(SECRET, &["static", "web2", "web1"]);
    for name in NAMES {
        assert_eq!(a.token(name), b.token(name));
        assert_eq!(b.decode(&a.token(name)), Ok(BackendId::from_name(name)));
    }
}

#[test]
fn different_secret_is_unknown() {
    let a = CookieCodec::new(SECRET, &NAMES);
    let b = CookieCodec::new(b"another secret", &NAMES);
    for name in NAMES {
        assert_ne!(a.token(name), b.token(name));
        assert_eq!(b.decode(&a.token(name)), Err(CookieError::Unknown));
    }
}

#[test]
fn removed_backend_is_unknown() {
    let a = CookieCodec::new(SECRET, &NAMES);
    let b = CookieCodec::new(SECRET, &["web1"]);
    assert_eq!(b.decode(&a.token("web2")), Err(CookieError::Unknown));
    assert_eq!(b.decode(&a.token("web1")), Ok(BackendId::from_name("web1")));
}

#[test]
fn tampered_is_unknown() {
    let codec = CookieCodec::new(SECRET, &NAMES);
    let t = codec.token("web1");
    let mut chars: Vec<char> = t.chars().collect();
    chars[5] = if chars[5] == 'A' { 'B' } else { 'A' };
    let tampered: String = chars.into_iter().collect();
    assert_eq!(codec.decode(&tampered), Err(CookieError::Unknown));
}

#[test]
fn garbage_is_malformed() {
    let codec = CookieCodec::new(SECRET, &NAMES);
    let t = codec.token("web1");
    let oversized = "A".repeat(1 << 20);
    let cases = [
        "",
        "web1",
        &t[..TOKEN_LEN - 1],
        &oversized,
        "AAAAAAAAAAAAAAA=", // padding is not part of the alphabet
        "AAAAAAAAAAAAAAA+", // standard base64, not url-safe
        "AAAAAAAAAAAAAA/A",
        "AAAAAAAAAAAAAA A",
        "AAAAAAAAAAAAAAé", // 16 bytes, non-ASCII
        "\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0",
    ];
    for case in cases {
        assert_eq!(codec.decode(case), Err(CookieError::Malformed), "{case:?}");
    }
    assert_eq!(codec.decode(&format!("{t}A")), Err(CookieError::Malformed));
    assert_eq!(codec.decode(&format!(" {t}")), Err(CookieError::Malformed));
    // Well-formed but random: unknown, not malformed.
    assert_eq!(codec.decode("AAAAAAAAAAAAAAAA"), Err(CookieError::Unknown));
    assert_eq!(codec.decode("-_-_-_-_-_-_-_-_"), Err(CookieError::Unknown));
}

#[test]
fn debug_does_not_print_the_key() {
    let codec = CookieCodec::new(b"s3cr3t-K3Y", &NAMES);
    let dbg = format!("{codec:?}");
    assert!(!dbg.contains("s3cr3t"), "{dbg}");
    assert!(dbg.contains("redacted"));
    // Nor any byte-ish rendering of it.
    assert!(!dbg.contains("115, 51"), "{dbg}");
}

#[test]
fn errors_display() {
    assert!(CookieError::Malformed.to_string().contains("16"));
    assert!(CookieError::Unknown.to_string().contains("no current"));
}
