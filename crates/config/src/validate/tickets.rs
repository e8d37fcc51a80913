//! Checks of `[tls_tickets]`: the session-ticket keys shared by the array, and their lifetime.
//!
//! Keys are secrets: no message here ever quotes a key or a line of the keys file, only its
//! position and length. Reads `keys_file` (through `files`); nothing else here does I/O.

use std::ops::RangeInclusive;
use std::time::Duration;

use toml::Spanned;

use super::{Checker, Zero};
use crate::file::FileTickets;
use crate::model::TicketKeys;

/// Most keys kept at once: rotation needs the current key plus a few recent ones; a long list
/// only means every ticket is tried against more keys.
const MAX_TICKET_KEYS: usize = 16;
/// Longest `keys_file`: 16 keys of 65 bytes with generous comments fit easily.
const MAX_KEYS_FILE_BYTES: u64 = 4096;
/// Bytes of one key: AES-256.
const KEY_BYTES: usize = 32;
/// Ticket lifetime: at least a second (zero would make every ticket useless); at most the
/// week that RFC 8446 §4.6.1 allows for a ticket.
const LIFETIME: RangeInclusive<Duration> = Duration::from_secs(1)..=Duration::from_secs(7 * 86_400);

impl Checker<'_> {
    pub(super) fn tickets(&mut self, table: Option<&Spanned<FileTickets>>) -> TicketKeys {
        let d = TicketKeys::default();
        let Some(t) = table.map(Spanned::get_ref) else {
            return d;
        };
        let keys = match (&t.keys, &t.keys_file) {
            (Some(_), Some(file)) => {
                self.report(
                    file.span(),
                    "tls_tickets.keys_file",
                    "set either keys or keys_file, not both",
                );
                Vec::new()
            }
            (None, None) => Vec::new(),
            (Some(keys), None) => self.inline_keys(keys),
            (None, Some(file)) => self.keys_file(file),
        };
        let lifetime_key = "tls_tickets.lifetime";
        let lifetime = self.duration(
            t.lifetime.as_ref(),
            lifetime_key,
            d.lifetime,
            Zero::Rejected,
        );
        if let Some(value) = &t.lifetime {
            if !LIFETIME.contains(&lifetime) {
                let message = format!(
                    "must be between {} and {}, not {}",
                    humantime::format_duration(*LIFETIME.start()),
                    humantime::format_duration(*LIFETIME.end()),
                    humantime::format_duration(lifetime)
                );
                self.report(value.span(), lifetime_key, message);
            }
        }
        TicketKeys { keys, lifetime }
    }

    /// `keys = [...]`: each element a key, at most [`MAX_TICKET_KEYS`].
    fn inline_keys(&mut self, keys: &Spanned<Vec<Spanned<String>>>) -> Vec<[u8; KEY_BYTES]> {
        let list = keys.get_ref();
        if list.is_empty() {
            self.report(
                keys.span(),
                "tls_tickets.keys",
                "must list at least one key (remove keys for a random key per process)",
            );
        } else if list.len() > MAX_TICKET_KEYS {
            let message = format!("at most {MAX_TICKET_KEYS} keys, not {}", list.len());
            self.report(keys.span(), "tls_tickets.keys", message);
        }
        let mut out = Vec::with_capacity(list.len());
        for (i, key) in list.iter().enumerate() {
            match parse_key(key.get_ref()) {
                Ok(bytes) => out.push(bytes),
                Err(why) => self.report(key.span(), &format!("tls_tickets.keys[{i}]"), why),
            }
        }
        out
    }

    /// `keys_file`: one key per line, newest first; `#` starts a comment.
    fn keys_file(&mut self, file: &Spanned<String>) -> Vec<[u8; KEY_BYTES]> {
        let key = "tls_tickets.keys_file";
        let Some((path, bytes)) = self.read_small_file(file, key, MAX_KEYS_FILE_BYTES) else {
            return Vec::new();
        };
        let shown = path.display();
        let Ok(text) = std::str::from_utf8(&bytes) else {
            let message = format!("{shown} is not text (expected lines of hex digits)");
            self.report(file.span(), key, message);
            return Vec::new();
        };
        let mut out = Vec::new();
        let mut bad = false;
        for (n, line) in text.lines().enumerate() {
            let hex = line
                .split_once('#')
                .map_or(line, |(before, _)| before)
                .trim();
            if hex.is_empty() {
                continue;
            }
            match parse_key(hex) {
                Ok(bytes) => out.push(bytes),
                Err(why) => {
                    bad = true;
                    self.report(file.span(), key, format!("{shown} line {}: {why}", n + 1));
                }
            }
        }
        if out.is_empty() && !bad {
            let message = format!("{shown} holds no key (one key of 64 hex digits per line)");
            self.report(file.span(), key, message);
        } else if out.len() > MAX_TICKET_KEYS {
            let message = format!(
                "{shown} holds {} keys, at most {MAX_TICKET_KEYS} are allowed",
                out.len()
            );
            self.report(file.span(), key, message);
        }
        out
    }
}

/// A key written as 64 hex digits (either case). The error never quotes the text: it is a
/// secret, perhaps with one typo.
fn parse_key(text: &str) -> Result<[u8; KEY_BYTES], String> {
    let digits: Vec<u32> = text.chars().filter_map(|c| c.to_digit(16)).collect();
    let chars = text.chars().count();
    if digits.len() != chars {
        return Err(format!(
            "a key must be {} hex digits (0-9, a-f), this one has other characters",
            KEY_BYTES * 2
        ));
    }
    if chars != KEY_BYTES * 2 {
        return Err(format!(
            "a key must be {} hex digits ({KEY_BYTES} bytes), this one has {chars}",
            KEY_BYTES * 2
        ));
    }
    let mut key = [0u8; KEY_BYTES];
    for (byte, pair) in key.iter_mut().zip(digits.chunks_exact(2)) {
        // Two hex digits are below 256, so the cast cannot truncate.
        *byte = (pair[0] * 16 + pair[1]) as u8;
    }
    Ok(key)
}
