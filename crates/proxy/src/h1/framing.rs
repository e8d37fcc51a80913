//! HTTP/1.1 message framing (RFC 9112 §6): how long a body is, decoding it as it arrives, and
//! encoding it again on the way out.
//!
//! Owns the body-length rules for requests (strict: anything two parsers could read
//! differently is refused) and for responses (§6.3, with the intermediary's duty to drop a
//! `Content-Length` that comes with `Transfer-Encoding`), the incremental chunked decoder
//! (chunk sizes by `httparse`), and the chunk encoder. Pure code over buffers: no I/O, no
//! sockets, no timers.

use bytes::{Buf, Bytes, BytesMut};
use http::header::{HeaderMap, HeaderName, HeaderValue};

use crate::headers::FramingError;

/// Longest chunk-size line accepted (size, extensions and CRLF).
const MAX_CHUNK_LINE: usize = 4096;
/// Largest trailer section accepted.
const MAX_TRAILERS: usize = 16 * 1024;
/// Most trailer fields accepted.
const MAX_TRAILER_FIELDS: usize = 64;

/// How the body of one message is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Framing {
    /// No body at all (HEAD responses, 1xx/204/304, requests without length).
    Empty,
    /// Exactly this many bytes.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
    /// Until the connection closes (responses only).
    Close,
}

/// Why a body could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum BodyError {
    /// A chunk-size line that is not hex, too long, or not ended by CRLF.
    #[error("invalid chunk size line")]
    ChunkSize,
    /// A chunk's data not followed by CRLF.
    #[error("chunk data not followed by CRLF")]
    ChunkEnd,
    /// A malformed or oversized trailer section.
    #[error("invalid trailer section")]
    Trailers,
    /// The connection ended before the body did.
    #[error("connection closed before the end of the body")]
    Truncated,
}

/// Why a back-end's response framing was refused (the client gets 502).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ResponseFramingError {
    /// `Content-Length` values that disagree, or one that is not a decimal number.
    #[error("invalid or conflicting Content-Length")]
    Length,
}

/// What the framing fields of a head said.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct FramingFields {
    /// The (single, valid) `Content-Length`, if there was one.
    pub(crate) length: Option<u64>,
    /// Some `Transfer-Encoding` field was present.
    pub(crate) transfer_encoding: bool,
    /// The last transfer coding is `chunked`.
    pub(crate) chunked: bool,
}

/// Parses a `Content-Length` value: one or more ASCII digits, nothing else (no sign, no
/// spaces, no list), without overflow.
pub(crate) fn parse_length(value: &[u8]) -> Option<u64> {
    if value.is_empty() || value.len() > 19 || !value.iter().all(u8::is_ascii_digit) {
        return None;
    }
    value.iter().try_fold(0u64, |n, d| {
        n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
    })
}

/// Whether the last coding of a `Transfer-Encoding` list is `chunked`, and the only
/// `chunked` (RFC 9112 §7: it must not be applied more than once).
fn ends_in_chunked<'a>(values: impl Iterator<Item = &'a [u8]>) -> bool {
    let mut last: Option<&[u8]> = None;
    let mut chunked = 0usize;
    for v in values {
        for coding in v.split(|b| *b == b',') {
            let coding = coding.trim_ascii();
            if !coding.is_empty() {
                chunked += usize::from(coding.eq_ignore_ascii_case(b"chunked"));
                last = Some(coding);
            }
        }
    }
    chunked == 1 && last.is_some_and(|c| c.eq_ignore_ascii_case(b"chunked"))
}

/// The body length of a client's request, refusing every ambiguity (RFC 9112 §6.1–6.3, and
/// what HAProxy refuses): `Content-Length` with `Transfer-Encoding`, more than one
/// `Content-Length`, a length that is not a plain number, a transfer coding that does not end
/// in `chunked`, and more than one `Host`.
pub(crate) fn request_framing(headers: &[httparse::Header<'_>]) -> Result<Framing, FramingError> {
    let mut lengths = 0usize;
    let mut length = None;
    let mut hosts = 0usize;
    let mut te = false;
    for h in headers {
        if h.name.eq_ignore_ascii_case("content-length") {
            lengths += 1;
            length = parse_length(h.value);
            if length.is_none() {
                return Err(FramingError::InvalidLength);
            }
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            te = true;
        } else if h.name.eq_ignore_ascii_case("host") {
            hosts += 1;
        }
    }
    if hosts > 1 {
        return Err(FramingError::DuplicateHost);
    }
    if te && lengths > 0 {
        return Err(FramingError::LengthAndChunked);
    }
    if lengths > 1 {
        return Err(FramingError::DuplicateLength);
    }
    if te {
        let values = headers
            .iter()
            .filter(|h| h.name.eq_ignore_ascii_case("transfer-encoding"))
            .map(|h| h.value);
        if !ends_in_chunked(values) {
            return Err(FramingError::BadTransferEncoding);
        }
        return Ok(Framing::Chunked);
    }
    Ok(match length {
        Some(0) | None => Framing::Empty,
        Some(n) => Framing::Length(n),
    })
}

/// The framing fields of a back-end's response head.
pub(crate) fn response_fields(
    headers: &[httparse::Header<'_>],
) -> Result<FramingFields, ResponseFramingError> {
    let mut fields = FramingFields::default();
    let mut te_values = Vec::new();
    for h in headers {
        if h.name.eq_ignore_ascii_case("content-length") {
            // A list of equal values ("5, 5") is allowed by §6.3 item 5; anything else is not.
            let mut value = None;
            for part in h.value.split(|b| *b == b',') {
                let n = parse_length(part.trim_ascii()).ok_or(ResponseFramingError::Length)?;
                if value.is_some_and(|v| v != n) || fields.length.is_some_and(|v| v != n) {
                    return Err(ResponseFramingError::Length);
                }
                value = Some(n);
            }
            fields.length = value;
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            fields.transfer_encoding = true;
            te_values.push(h.value);
        }
    }
    fields.chunked = ends_in_chunked(te_values.into_iter());
    Ok(fields)
}

/// The body framing of a response (RFC 9112 §6.3): none for HEAD, 1xx, 204 and 304; chunked
/// when the last coding is chunked (any `Content-Length` is then ignored, and the caller must
/// not forward it); until close for another transfer coding or when no length is given.
pub(crate) fn response_framing(status: u16, head_request: bool, f: &FramingFields) -> Framing {
    if head_request || (100..200).contains(&status) || status == 204 || status == 304 {
        return Framing::Empty;
    }
    if f.transfer_encoding {
        return if f.chunked {
            Framing::Chunked
        } else {
            Framing::Close
        };
    }
    match f.length {
        Some(0) => Framing::Empty,
        Some(n) => Framing::Length(n),
        None => Framing::Close,
    }
}

/// One step of decoding a body from a read buffer.
#[derive(Debug)]
pub(crate) enum Step {
    /// Body bytes, taken out of the buffer.
    Data(Bytes),
    /// The trailer fields of a chunked body; the body is over.
    Trailers(HeaderMap),
    /// The body is over.
    End,
    /// The buffer holds no complete next piece: read more.
    NeedMore,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Length(u64),
    Close,
    ChunkSize,
    ChunkData(u64),
    ChunkCrlf,
    Trailers,
    Done,
}

/// Incremental decoder of one body.
#[derive(Debug, Clone)]
pub(crate) struct Decoder {
    state: State,
}

impl Decoder {
    pub(crate) fn new(framing: Framing) -> Self {
        let state = match framing {
            Framing::Empty | Framing::Length(0) => State::Done,
            Framing::Length(n) => State::Length(n),
            Framing::Chunked => State::ChunkSize,
            Framing::Close => State::Close,
        };
        Self { state }
    }

    /// Whether the whole body was decoded.
    pub(crate) fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// For a length-delimited body, how many bytes are still to come (reads can stop there).
    pub(crate) fn remaining(&self) -> Option<u64> {
        match self.state {
            State::Length(n) => Some(n),
            _ => None,
        }
    }

    /// The next piece of the body in `buf`; consumed bytes are removed from it.
    pub(crate) fn decode(&mut self, buf: &mut BytesMut) -> Result<Step, BodyError> {
        loop {
            match self.state {
                State::Done => return Ok(Step::End),
                State::Length(n) => {
                    if buf.is_empty() {
                        return Ok(Step::NeedMore);
                    }
                    let take = usize::try_from(n).unwrap_or(usize::MAX).min(buf.len());
                    let left = n - take as u64;
                    self.state = if left == 0 {
                        State::Done
                    } else {
                        State::Length(left)
                    };
                    return Ok(Step::Data(buf.split_to(take).freeze()));
                }
                State::Close => {
                    if buf.is_empty() {
                        return Ok(Step::NeedMore);
                    }
                    return Ok(Step::Data(buf.split().freeze()));
                }
                State::ChunkSize => {
                    // httparse accepts a line without digits as size 0; RFC 9112 wants 1*HEXDIG.
                    if buf.first().is_some_and(|b| !b.is_ascii_hexdigit()) {
                        return Err(BodyError::ChunkSize);
                    }
                    match httparse::parse_chunk_size(buf) {
                        Ok(httparse::Status::Complete((used, size))) => {
                            buf.advance(used);
                            self.state = if size == 0 {
                                State::Trailers
                            } else {
                                State::ChunkData(size)
                            };
                        }
                        Ok(httparse::Status::Partial) if buf.len() < MAX_CHUNK_LINE => {
                            return Ok(Step::NeedMore)
                        }
                        _ => return Err(BodyError::ChunkSize),
                    }
                }
                State::ChunkData(n) => {
                    if buf.is_empty() {
                        return Ok(Step::NeedMore);
                    }
                    let take = usize::try_from(n).unwrap_or(usize::MAX).min(buf.len());
                    let left = n - take as u64;
                    self.state = if left == 0 {
                        State::ChunkCrlf
                    } else {
                        State::ChunkData(left)
                    };
                    return Ok(Step::Data(buf.split_to(take).freeze()));
                }
                State::ChunkCrlf => {
                    if buf.len() < 2 {
                        // A lone "\r" may still become "\r\n"; anything else is wrong now.
                        if buf.first().is_some_and(|b| *b != b'\r') {
                            return Err(BodyError::ChunkEnd);
                        }
                        return Ok(Step::NeedMore);
                    }
                    if &buf[..2] != b"\r\n" {
                        return Err(BodyError::ChunkEnd);
                    }
                    buf.advance(2);
                    self.state = State::ChunkSize;
                }
                State::Trailers => {
                    let mut fields = [httparse::EMPTY_HEADER; MAX_TRAILER_FIELDS];
                    match httparse::parse_headers(buf, &mut fields) {
                        Ok(httparse::Status::Complete((used, fields))) => {
                            let mut map = HeaderMap::new();
                            for f in fields.iter() {
                                // Framing fields are never allowed in trailers (RFC 9110 §6.5.1).
                                let name = HeaderName::from_bytes(f.name.as_bytes())
                                    .map_err(|_| BodyError::Trailers)?;
                                if is_forbidden_trailer(&name) {
                                    continue;
                                }
                                let value = HeaderValue::from_bytes(f.value)
                                    .map_err(|_| BodyError::Trailers)?;
                                map.append(name, value);
                            }
                            buf.advance(used);
                            self.state = State::Done;
                            return Ok(if map.is_empty() {
                                Step::End
                            } else {
                                Step::Trailers(map)
                            });
                        }
                        Ok(httparse::Status::Partial) if buf.len() < MAX_TRAILERS => {
                            return Ok(Step::NeedMore)
                        }
                        _ => return Err(BodyError::Trailers),
                    }
                }
            }
        }
    }

    /// The connection ended: fine for a close-delimited body, truncation otherwise.
    pub(crate) fn eof(&mut self) -> Result<(), BodyError> {
        match self.state {
            State::Close | State::Done => {
                self.state = State::Done;
                Ok(())
            }
            _ => Err(BodyError::Truncated),
        }
    }
}

fn is_forbidden_trailer(name: &HeaderName) -> bool {
    use http::header;
    [
        header::CONTENT_LENGTH,
        header::TRANSFER_ENCODING,
        header::HOST,
        header::CONNECTION,
        header::TRAILER,
        header::TE,
    ]
    .contains(name)
}

/// The line that starts a chunk of `len` bytes.
pub(crate) fn chunk_header(len: usize) -> Vec<u8> {
    format!("{len:x}\r\n").into_bytes()
}

/// The last chunk with its trailer section.
pub(crate) fn last_chunk(trailers: Option<&HeaderMap>) -> Vec<u8> {
    let mut out = b"0\r\n".to_vec();
    if let Some(t) = trailers {
        for (k, v) in t {
            out.extend_from_slice(k.as_str().as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(v.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
    }
    out.extend_from_slice(b"\r\n");
    out
}

/// Decodes a chunked body from two pieces split at `split` (for the fuzz target and tests).
pub(crate) fn fuzz_chunked(input: &[u8], split: usize) -> Option<Vec<u8>> {
    let split = split.min(input.len());
    let mut d = Decoder::new(Framing::Chunked);
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    for piece in [&input[..split], &input[split..]] {
        buf.extend_from_slice(piece);
        loop {
            match d.decode(&mut buf).ok()? {
                Step::Data(b) => out.extend_from_slice(&b),
                Step::Trailers(_) | Step::End => return Some(out),
                Step::NeedMore => break,
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(framing: Framing, input: &[u8], split: usize) -> Result<Vec<u8>, BodyError> {
        let mut d = Decoder::new(framing);
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        for piece in [&input[..split], &input[split..]] {
            buf.extend_from_slice(piece);
            loop {
                match d.decode(&mut buf)? {
                    Step::Data(b) => out.extend_from_slice(&b),
                    Step::Trailers(_) | Step::End => return Ok(out),
                    Step::NeedMore => break,
                }
            }
        }
        d.eof()?;
        Ok(out)
    }

    #[test]
    fn chunked_bodies_decode_however_they_are_split() {
        let body = b"3\r\nabc\r\n2;ext=1\r\nde\r\n0\r\nX-T: 1\r\n\r\n";
        for split in 0..body.len() {
            assert_eq!(
                decode_all(Framing::Chunked, body, split).unwrap(),
                b"abcde",
                "split {split}"
            );
        }
    }

    #[test]
    fn bad_chunks_are_refused() {
        for bad in [
            &b"zz\r\nabc\r\n0\r\n\r\n"[..],
            b"3\r\nabcX\r\n0\r\n\r\n",
            b"\r\n",
            b"-1\r\n",
            b"3\nabc\r\n0\r\n\r\n",
            b"11111111111111111\r\n",
            b"3\r\nabc",
        ] {
            assert!(
                decode_all(Framing::Chunked, bad, 0).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    fn headers<'a>(pairs: &'a [(&'a str, &'a [u8])]) -> Vec<httparse::Header<'a>> {
        pairs
            .iter()
            .map(|(n, v)| httparse::Header { name: n, value: v })
            .collect()
    }

    #[test]
    fn request_framing_refuses_ambiguity() {
        let f = |p: &[(&str, &[u8])]| request_framing(&headers(p));
        assert_eq!(f(&[("content-length", b"5")]), Ok(Framing::Length(5)));
        assert_eq!(
            f(&[("Transfer-Encoding", b"gzip, chunked")]),
            Ok(Framing::Chunked)
        );
        assert_eq!(f(&[]), Ok(Framing::Empty));
        assert_eq!(
            f(&[("content-length", b"5"), ("transfer-encoding", b"chunked")]),
            Err(FramingError::LengthAndChunked)
        );
        assert_eq!(
            f(&[("content-length", b"5"), ("content-length", b"5")]),
            Err(FramingError::DuplicateLength)
        );
        assert_eq!(
            f(&[("content-length", b"+5")]),
            Err(FramingError::InvalidLength)
        );
        assert_eq!(
            f(&[("content-length", b"5, 5")]),
            Err(FramingError::InvalidLength)
        );
        assert_eq!(
            f(&[("transfer-encoding", b"chunked, gzip")]),
            Err(FramingError::BadTransferEncoding)
        );
        assert_eq!(
            f(&[("host", b"a"), ("host", b"b")]),
            Err(FramingError::DuplicateHost)
        );
        assert_eq!(
            f(&[("content-length", b"99999999999999999999")]),
            Err(FramingError::InvalidLength)
        );
    }

    #[test]
    fn response_framing_follows_rfc_9112_section_6_3() {
        let fields = |p: &[(&str, &[u8])]| response_fields(&headers(p));
        let both = fields(&[("content-length", b"3"), ("transfer-encoding", b"chunked")]).unwrap();
        assert_eq!(response_framing(200, false, &both), Framing::Chunked);
        let listed = fields(&[("content-length", b"7, 7")]).unwrap();
        assert_eq!(response_framing(200, false, &listed), Framing::Length(7));
        assert!(fields(&[("content-length", b"7, 8")]).is_err());
        assert!(fields(&[("content-length", b"7"), ("content-length", b"8")]).is_err());
        let none = fields(&[]).unwrap();
        assert_eq!(response_framing(200, false, &none), Framing::Close);
        assert_eq!(response_framing(204, false, &none), Framing::Empty);
        assert_eq!(response_framing(200, true, &listed), Framing::Empty);
        let gzip = fields(&[("transfer-encoding", b"gzip")]).unwrap();
        assert_eq!(response_framing(200, false, &gzip), Framing::Close);
    }
}
