//! Rules of `[tls_tickets]`: inline keys, the keys file, and the lifetime. Keys are secrets,
//! so every error test also checks that the key text is not quoted.

use std::time::Duration;

use super::{only_problem, problems, Scratch, SERVICE};
use crate::{parse, Config, Source};

/// A key of 64 hex digits whose bytes are all `byte`.
fn key(byte: u8) -> String {
    format!("{byte:02x}").repeat(32)
}

/// `[tls_tickets]` with `body` (lines 1–…), then a valid service.
fn tickets(body: &str) -> String {
    format!("[tls_tickets]\n{body}\n{SERVICE}")
}

fn valid(text: &str) -> Config {
    match parse(text, Source::Inline("t".into())) {
        Ok(config) => config,
        Err(err) => panic!("{err}\n--- text:\n{text}"),
    }
}

#[test]
fn no_table_or_no_keys_means_a_random_key_and_12h() {
    let config = valid(SERVICE);
    assert!(config.tickets.keys.is_empty());
    assert_eq!(config.tickets.lifetime, Duration::from_secs(12 * 3600));
    let config = valid(&tickets("lifetime = \"7d\""));
    assert!(config.tickets.keys.is_empty());
    assert_eq!(config.tickets.lifetime, Duration::from_secs(7 * 86_400));
    let config = valid(&tickets("lifetime = \"1s\""));
    assert_eq!(config.tickets.lifetime, Duration::from_secs(1));
}

#[test]
fn inline_keys_in_order_either_case() {
    let upper = key(0xcd).to_uppercase();
    let config = valid(&tickets(&format!(
        "keys = [\"{}\", \"{upper}\"]",
        key(0x01)
    )));
    assert_eq!(config.tickets.keys, [[0x01; 32], [0xcd; 32]]);
}

#[test]
fn lifetime_range() {
    for (value, says) in [
        ("0s", "longer than zero"),
        ("500ms", "between 1s and 7days, not 500ms"),
        ("7d 1s", "between 1s and 7days, not 7days 1s"),
        ("forever", "is not a duration"),
    ] {
        let text = tickets(&format!("lifetime = \"{value}\""));
        only_problem(&text, "lifetime", "tls_tickets.lifetime", says);
    }
}

#[test]
fn keys_or_keys_file_not_both() {
    let text = tickets(&format!(
        "keys = [\"{}\"]\nkeys_file = \"ticket.keys\"",
        key(1)
    ));
    only_problem(&text, "keys_file", "tls_tickets.keys_file", "not both");
}

#[test]
fn inline_keys_count() {
    only_problem(
        &tickets("keys = []"),
        "keys",
        "tls_tickets.keys",
        "at least one key",
    );
    let list: Vec<String> = (0..17).map(|i| format!("\"{}\"", key(i))).collect();
    let text = tickets(&format!("keys = [{}]", list.join(", ")));
    only_problem(&text, "keys", "tls_tickets.keys", "at most 16 keys, not 17");
    let text = tickets(&format!("keys = [{}]", list[..16].join(", ")));
    assert_eq!(valid(&text).tickets.keys.len(), 16);
}

#[test]
fn inline_keys_must_be_64_hex_digits_and_are_never_quoted() {
    let bad_digit = format!("{}zz", &key(0x5a)[..62]);
    let short = key(0x5a)[..62].to_owned();
    let plus = format!("+{}", &key(0x5a)[..63]);
    for (bad, says) in [
        (&bad_digit, "this one has other characters"),
        (&plus, "this one has other characters"),
        (&short, "this one has 62"),
    ] {
        let text = tickets(&format!("keys = [\"{}\", \"{bad}\"]", key(1)));
        only_problem(&text, "keys", "tls_tickets.keys[1]", says);
        let found = problems(&text);
        assert!(!found[0].message.contains("5a5a"), "{found:?}");
    }
}

#[test]
fn keys_file_with_comments_and_blank_lines() {
    let dir = Scratch::new("keys-file");
    let path = dir.file(
        "ticket.keys",
        format!(
            "# rotated daily, newest first\n\n{}\r\n  {}  # yesterday's\n\n# end\n",
            key(0xa1),
            key(0xb2).to_uppercase()
        ),
    );
    let config = valid(&tickets(&format!("keys_file = \"{path}\"")));
    assert_eq!(config.tickets.keys, [[0xa1; 32], [0xb2; 32]]);
}

#[test]
fn keys_file_errors_name_the_file_line() {
    let dir = Scratch::new("keys-file-errors");
    let check = |name: &str, contents: String, says: &str| {
        let path = dir.file(name, contents);
        let text = tickets(&format!("keys_file = \"{path}\""));
        only_problem(&text, "keys_file", "tls_tickets.keys_file", says);
        let found = problems(&text);
        assert!(found[0].message.contains(&path), "{found:?}");
        assert!(!found[0].message.contains("5a5a"), "{found:?}");
    };
    check(
        "bad-hex.keys",
        format!("# c\n{}\n{}zz\n", key(1), &key(0x5a)[..62]),
        "line 3: a key must be 64 hex digits (0-9, a-f), this one has other characters",
    );
    check(
        "short.keys",
        format!("{}\n", &key(0x5a)[..60]),
        "line 1: a key must be 64 hex digits (32 bytes), this one has 60",
    );
    check("long.keys", format!("{}5a\n", key(0x5a)), "this one has 66");
    check("empty.keys", "# nothing yet\n\n".to_owned(), "holds no key");
    let many: String = (0..17).map(|i| key(i) + "\n").collect();
    check("many.keys", many, "holds 17 keys, at most 16");
    check("big.keys", "#".repeat(5000), "larger than 4096 bytes");
    check(
        "binary.keys",
        String::from_utf8_lossy(&[0x5a, 0xff, 0xfe]).into_owned(),
        "a key must be 64 hex digits",
    );
    let missing = dir.0.join("absent.keys").display().to_string();
    let text = tickets(&format!("keys_file = \"{missing}\""));
    only_problem(
        &text,
        "keys_file",
        "tls_tickets.keys_file",
        &format!("cannot use {missing}"),
    );

    // Each bad line is its own problem, all on the keys_file line.
    let path = dir.file("two-bad.keys", "xx\nyy\n");
    let found = problems(&tickets(&format!("keys_file = \"{path}\"")));
    assert_eq!(found.len(), 2, "{found:#?}");
    assert!(found
        .iter()
        .all(|p| p.line == 2 && p.key == "tls_tickets.keys_file"));
}

#[test]
fn keys_file_must_be_text() {
    let dir = Scratch::new("keys-file-binary");
    let path = dir.0.join("ticket.keys");
    std::fs::write(&path, [0x5a, 0xff, 0xfe, b'\n']).unwrap();
    let text = tickets(&format!("keys_file = \"{}\"", path.display()));
    only_problem(&text, "keys_file", "tls_tickets.keys_file", "is not text");
}
