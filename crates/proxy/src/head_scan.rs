//! Watches the raw bytes of a request head for a framing ambiguity hyper resolves silently.
//!
//! hyper accepts a request with both `Content-Length` and `Transfer-Encoding` (it drops the
//! length, reads chunked and closes afterwards — allowed by RFC 9112 §6.3), and then the
//! `Content-Length` is gone from the parsed headers. pentaflow refuses such requests outright,
//! as HAProxy does, so this scanner notes which of the two field names a head carried while
//! the bytes go by. It must not parse anything else or hold bytes.

use crate::headers::FramingError;

/// Field names we watch, lower-case.
const CONTENT_LENGTH: &[u8] = b"content-length";
const TRANSFER_ENCODING: &[u8] = b"transfer-encoding";

/// Incremental scanner over the bytes of one request head.
#[derive(Debug, Clone, Default)]
pub struct HeadScan {
    /// Bytes of the current line's field name so far (only while it can still match).
    name: [u8; 17],
    name_len: usize,
    /// Still inside a field name on this line (no ':' yet, name still a possible match).
    in_name: bool,
    at_line_start: bool,
    /// Consecutive line ends seen, to find the blank line that ends the head.
    blank: u8,
    done: bool,
    /// How many `Content-Length` fields (hyper keeps only the first of equal duplicates).
    pub content_length: u8,
    /// Whether a `Transfer-Encoding` field was seen.
    pub transfer_encoding: bool,
}

impl HeadScan {
    /// A scanner at the start of a head (the request line comes first).
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds bytes read from the client; bytes after the end of the head are ignored.
    pub fn feed(&mut self, bytes: &[u8]) {
        for &b in bytes {
            if self.done {
                return;
            }
            match b {
                b'\n' => {
                    self.blank += 1;
                    if self.blank == 2 {
                        self.done = true;
                    }
                    self.at_line_start = true;
                    self.in_name = false;
                }
                b'\r' => {}
                _ => {
                    self.blank = 0;
                    if self.at_line_start {
                        self.at_line_start = false;
                        self.in_name = true;
                        self.name_len = 0;
                    }
                    if self.in_name {
                        if b == b':' {
                            self.in_name = false;
                            let name = &self.name[..self.name_len];
                            if name == CONTENT_LENGTH {
                                self.content_length = self.content_length.saturating_add(1);
                            }
                            self.transfer_encoding |= name == TRANSFER_ENCODING;
                        } else if self.name_len < self.name.len() {
                            self.name[self.name_len] = b.to_ascii_lowercase();
                            self.name_len += 1;
                        } else {
                            self.in_name = false; // longer than any name we watch
                        }
                    }
                }
            }
        }
    }

    /// The framing ambiguity this head carried, if any.
    pub fn verdict(&self) -> Option<FramingError> {
        if self.content_length > 0 && self.transfer_encoding {
            Some(FramingError::LengthAndChunked)
        } else if self.content_length > 1 {
            Some(FramingError::DuplicateLength)
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan(chunks: &[&[u8]]) -> HeadScan {
        let mut s = HeadScan::new();
        for c in chunks {
            s.feed(c);
        }
        s
    }

    #[test]
    fn finds_both_headers_in_any_case_and_split_anywhere() {
        let head = b"POST / HTTP/1.1\r\nHost: x\r\nContent-LENGTH: 3\r\ntransfer-encoding: chunked\r\n\r\n";
        for split in 0..head.len() {
            let s = scan(&[&head[..split], &head[split..]]);
            assert_eq!(
                s.verdict(),
                Some(FramingError::LengthAndChunked),
                "split at {split}"
            );
        }
    }

    #[test]
    fn ignores_values_bodies_and_longer_names() {
        let s = scan(&[b"POST /content-length: HTTP/1.1\r\nX: transfer-encoding: 1\r\nContent-Length-X: 2\r\nContent-Length: 4\r\n\r\ntransfer-encoding: chunked\r\n"]);
        assert_eq!(s.content_length, 1);
        assert!(!s.transfer_encoding);
        assert_eq!(s.verdict(), None);
        let dup = scan(&[b"POST / HTTP/1.1\r\ncontent-length: 1\r\nContent-Length: 1\r\n\r\n"]);
        assert_eq!(dup.verdict(), Some(FramingError::DuplicateLength));
    }
}
