//! The fast path of HTML rewriting: a streaming scan that follows HTML's tokenizer exactly as
//! far as it decides where tags are (data, comments, doctype, bogus comments, tags and their
//! quoted attributes, RAWTEXT/RCDATA, script data with its escape states, PLAINTEXT), copies
//! every byte it does not rewrite, and rewrites the start tags lol_html's selector would match,
//! serialising them as lol_html does. It exists because lol_html, built for any selector and
//! any handler, spends most of a page's time in machinery this one fixed rule set does not
//! need; `memchr` carries the scan over text, comments, scripts and attribute values.
//!
//! It never guesses: where the page leaves the part of HTML it follows (`<svg>`/`<math>`
//! foreign content, a `<meta>` that would change the charset, a start tag ending in `a=>`, a
//! tag longer than [`MAX_TAG_BYTES`]) it stops at the `<` of that tag, a point where lol_html
//! starting afresh is in the very state lol_html would have reached, and hands the rest of the
//! page over ([`Scanned::Bail`]). The differential tests (`scan::tests`, and the `html_rewrite`
//! fuzz target) hold it to byte-for-byte the output of lol_html on the same input.
//!
//! It must not decide which URLs change (that is `html::PageState`) nor know about codings.

use std::borrow::Cow;

use encoding_rs::Encoding;
use memchr::{memchr, memchr2};

use crate::html::{Edits, PageState, TagView};

/// Longest tag kept whole while waiting for its end; past it the page goes to lol_html (whose
/// own limit, `HTML_MEMORY_LIMIT`, is larger and which then decides).
pub(crate) const MAX_TAG_BYTES: usize = 64 << 10;
/// How much of a new chunk is joined to carried bytes to finish them (more if they need it).
const HEAD_BYTES: usize = 4 << 10;

/// Where the tokenizer is between two pushes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Data,
    /// Inside `<!-- ... `, looking for `-->` or `--!>`.
    Comment,
    /// Inside a bogus comment or a doctype, looking for `>`.
    Bogus,
    /// RAWTEXT or RCDATA: text up to `</name` + delimiter (name of the start tag, lower case).
    RawText(&'static [u8]),
    Script(Script),
    PlainText,
}

/// Script data states (HTML's, as lol_html implements them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Script {
    Data,
    Escaped,
    EscapedDashDash,
    DoubleEscaped,
    DoubleEscapedDashDash,
}

/// One attribute of a start tag, offsets into the tag's bytes.
#[derive(Debug, Clone, Copy)]
struct Attr {
    name: (usize, usize),
    value: (usize, usize),
    /// Name through value (and its closing quote): what lol_html writes back unchanged.
    raw: (usize, usize),
}

/// A complete start tag.
struct Tag {
    /// Index of its `>`.
    end: usize,
    name: (usize, usize),
    self_closing: bool,
    /// Ended by `>` right after `=` (lol_html then leaves text modes alone: handed over).
    empty_value_end: bool,
    /// Whether its attributes are in `FastScan::attrs`: only for the names that can matter.
    recorded: bool,
}

/// What one scan of a buffer came to.
pub(crate) enum Scanned {
    /// Bytes `..n` are written out; the rest is kept for the next push.
    Consumed(usize),
    /// Bytes before `at` are written out; from `at` on the page needs lol_html.
    Bail(usize),
}

/// What lol_html must be set up with when the page is handed over.
pub(crate) struct Handover {
    pub(crate) encoding: &'static Encoding,
    /// Whether a `<meta>` may still set the charset.
    pub(crate) follow_meta_charset: bool,
}

/// The fast path's state for one page.
pub(crate) struct FastScan {
    mode: Mode,
    /// Bytes not yet decided (a partial tag or terminator), scanned again with the next push.
    carry: Vec<u8>,
    /// Carry length below which a partial tag is not scanned again: doubling keeps a long tag
    /// arriving in tiny pieces linear.
    rescan_at: usize,
    encoding: &'static Encoding,
    /// lol_html's rule: the first `<meta>` naming a charset decides; later ones are ignored.
    follow_meta_charset: bool,
    attrs: Vec<Attr>,
    edits: Edits,
}

impl FastScan {
    pub(crate) fn new(encoding: &'static Encoding, follow_meta_charset: bool) -> Self {
        Self {
            mode: Mode::Data,
            carry: Vec::new(),
            rescan_at: 0,
            encoding,
            follow_meta_charset,
            attrs: Vec::new(),
            edits: Edits::new(),
        }
    }

    /// Scans `chunk` (after what was carried), writing to `out`. `Err(rest)`: from `rest` on,
    /// the page is lol_html's.
    pub(crate) fn push(
        &mut self,
        chunk: &[u8],
        page: &mut PageState,
        out: &mut Vec<u8>,
    ) -> Result<(), Vec<u8>> {
        let mut from = 0;
        if !self.carry.is_empty() {
            // Finish what was carried with the head of the chunk only: copying the whole chunk
            // behind it would copy most pages twice (a tag straddles most chunk boundaries).
            let head = chunk.len().min(self.carry.len().max(HEAD_BYTES));
            let mut buf = std::mem::take(&mut self.carry);
            let carried = buf.len();
            buf.extend_from_slice(&chunk[..head]);
            if head == chunk.len() && buf.len() < self.rescan_at && buf.len() <= MAX_TAG_BYTES {
                self.carry = buf;
                return Ok(());
            }
            match self.scan(&buf, false, page, out) {
                Scanned::Bail(at) => {
                    buf.drain(..at);
                    buf.extend_from_slice(&chunk[head..]);
                    return Err(buf);
                }
                // What was carried is done: go on in the chunk itself.
                Scanned::Consumed(n) if n >= carried => from = n - carried,
                Scanned::Consumed(n) if head == chunk.len() => {
                    // Still unfinished, and the whole chunk is in: wait for more.
                    self.rescan_at = if n == 0 { 2 * (buf.len() - n) } else { 0 };
                    buf.drain(..n);
                    if buf.len() > MAX_TAG_BYTES {
                        return Err(buf);
                    }
                    self.carry = buf;
                    return Ok(());
                }
                Scanned::Consumed(n) => {
                    // A long tag: give it the whole chunk.
                    buf.drain(..n);
                    buf.extend_from_slice(&chunk[head..]);
                    self.carry = buf;
                    self.rescan_at = 0;
                    return self.push(&[], page, out);
                }
            }
        }
        let rest = &chunk[from..];
        match self.scan(rest, false, page, out) {
            Scanned::Consumed(n) => {
                self.keep(&rest[n..]);
                if self.carry.len() > MAX_TAG_BYTES {
                    return Err(std::mem::take(&mut self.carry));
                }
                Ok(())
            }
            Scanned::Bail(at) => Err(rest[at..].to_vec()),
        }
    }

    /// The page ended: what was carried is written as it is (lol_html does the same with an
    /// unfinished tag or comment), unless its scan needs lol_html.
    pub(crate) fn finish(
        &mut self,
        page: &mut PageState,
        out: &mut Vec<u8>,
    ) -> Result<(), Vec<u8>> {
        let buf = std::mem::take(&mut self.carry);
        match self.scan(&buf, true, page, out) {
            Scanned::Consumed(n) => {
                out.extend_from_slice(&buf[n..]);
                Ok(())
            }
            Scanned::Bail(at) => Err(buf[at..].to_vec()),
        }
    }

    /// How lol_html must start if the page is handed over now.
    pub(crate) fn handover(&self) -> Handover {
        Handover {
            encoding: self.encoding,
            follow_meta_charset: self.follow_meta_charset,
        }
    }

    fn keep(&mut self, rest: &[u8]) {
        self.rescan_at = 0;
        self.carry.extend_from_slice(rest);
    }

    /// The tokenizer over `buf`; `last` when no more input follows (then nothing is "needed").
    fn scan(&mut self, buf: &[u8], last: bool, page: &mut PageState, out: &mut Vec<u8>) -> Scanned {
        let len = buf.len();
        // Everything before `flushed` is in `out`; `i` is where the tokenizer stands.
        let mut flushed = 0;
        let mut i = 0;
        macro_rules! need_more {
            ($at:expr) => {{
                let at = $at;
                out.extend_from_slice(&buf[flushed..at]);
                return Scanned::Consumed(if last { at.min(len) } else { at });
            }};
        }
        loop {
            match self.mode {
                Mode::Data => {
                    let Some(off) = memchr(b'<', &buf[i..]) else {
                        out.extend_from_slice(&buf[flushed..]);
                        return Scanned::Consumed(len);
                    };
                    let lt = i + off;
                    let Some(&next) = buf.get(lt + 1) else {
                        need_more!(lt)
                    };
                    if next.is_ascii_alphabetic() {
                        let Some(tag) = self.start_tag(buf, lt) else {
                            need_more!(lt)
                        };
                        let bytes = &buf[lt..=tag.end];
                        let Some(mode) = self.on_start_tag(bytes, &tag, page) else {
                            out.extend_from_slice(&buf[flushed..lt]);
                            return Scanned::Bail(lt);
                        };
                        self.mode = mode;
                        i = tag.end + 1;
                        // Unchanged tags stay in the run copied out later, in one piece.
                        if !self.edits.is_empty() {
                            out.extend_from_slice(&buf[flushed..lt]);
                            self.serialize(bytes, &tag, &self.edits, out);
                            flushed = i;
                        }
                    } else if next == b'/' {
                        let Some(&b2) = buf.get(lt + 2) else {
                            need_more!(lt)
                        };
                        if b2.is_ascii_alphabetic() {
                            let Some(tag) = self.tag(buf, lt, lt + 2, false) else {
                                need_more!(lt)
                            };
                            i = tag.end + 1;
                        } else if b2 == b'>' {
                            i = lt + 3;
                        } else {
                            i = lt + 2;
                            self.mode = Mode::Bogus;
                        }
                    } else if next == b'!' {
                        let rest = &buf[lt + 2..];
                        if rest.starts_with(b"--") {
                            // `<!-->` and `<!--->` end at once; else the first `-->`/`--!>`.
                            let c = lt + 4;
                            match (buf.get(c), buf.get(c + 1)) {
                                (None, _) => need_more!(lt),
                                (Some(b'>'), _) => i = c + 1,
                                (Some(b'-'), None) => need_more!(lt),
                                (Some(b'-'), Some(b'>')) => i = c + 2,
                                _ => {
                                    i = c;
                                    self.mode = Mode::Comment;
                                }
                            }
                        } else if rest.len() >= 7 && rest[..7].eq_ignore_ascii_case(b"DOCTYPE") {
                            i = lt + 9;
                            self.mode = Mode::Bogus;
                        } else if !last
                            && rest.len() < 7
                            && (b"--".starts_with(rest)
                                || b"DOCTYPE"[..rest.len()].eq_ignore_ascii_case(rest))
                        {
                            need_more!(lt)
                        } else {
                            // `<![CDATA[` too: outside foreign content it is a bogus comment.
                            i = lt + 2;
                            self.mode = Mode::Bogus;
                        }
                    } else if next == b'?' {
                        i = lt + 2;
                        self.mode = Mode::Bogus;
                    } else {
                        i = lt + 1;
                    }
                }
                Mode::Bogus => match memchr(b'>', &buf[i..]) {
                    Some(off) => {
                        i += off + 1;
                        self.mode = Mode::Data;
                    }
                    None => {
                        out.extend_from_slice(&buf[flushed..]);
                        return Scanned::Consumed(len);
                    }
                },
                Mode::Comment => match comment_end(buf, i) {
                    Ok(gt) => {
                        i = gt + 1;
                        self.mode = Mode::Data;
                    }
                    Err(at) => need_more!(at),
                },
                Mode::RawText(name) => {
                    let Some(off) = memchr(b'<', &buf[i..]) else {
                        out.extend_from_slice(&buf[flushed..]);
                        return Scanned::Consumed(len);
                    };
                    let lt = i + off;
                    match end_tag_at(buf, lt, name) {
                        Some(true) => self.mode = Mode::Data,
                        Some(false) => i = lt + 1,
                        None => need_more!(lt),
                    }
                    if self.mode == Mode::Data {
                        i = lt;
                    }
                }
                Mode::Script(state) => match self.script(buf, i, state) {
                    Ok(next) => i = next,
                    Err(at) => need_more!(at),
                },
                Mode::PlainText => {
                    out.extend_from_slice(&buf[flushed..]);
                    return Scanned::Consumed(len);
                }
            }
        }
    }

    /// One step of script data from `i`: the next position (mode updated), or `Err(at)` when
    /// the bytes from `at` must wait for more input.
    fn script(&mut self, buf: &[u8], i: usize, state: Script) -> Result<usize, usize> {
        let len = buf.len();
        if i >= len {
            return Err(len);
        }
        match state {
            Script::Data => {
                let Some(off) = memchr(b'<', &buf[i..]) else {
                    return Err(len);
                };
                let lt = i + off;
                let Some(&next) = buf.get(lt + 1) else {
                    return Err(lt);
                };
                if next == b'/' {
                    match end_tag_at(buf, lt, b"script") {
                        Some(true) => {
                            self.mode = Mode::Data;
                            Ok(lt)
                        }
                        Some(false) => Ok(lt + 1),
                        None => Err(lt),
                    }
                } else if next == b'!' {
                    match (buf.get(lt + 2), buf.get(lt + 3)) {
                        (Some(b'-'), Some(b'-')) => {
                            self.mode = Mode::Script(Script::EscapedDashDash);
                            Ok(lt + 4)
                        }
                        (None, _) | (Some(b'-'), None) => Err(lt),
                        _ => Ok(lt + 1),
                    }
                } else {
                    Ok(lt + 1)
                }
            }
            Script::Escaped | Script::DoubleEscaped => {
                let Some(off) = memchr2(b'-', b'<', &buf[i..]) else {
                    return Err(len);
                };
                let at = i + off;
                if buf[at] == b'-' {
                    match buf.get(at + 1) {
                        None => Err(at),
                        Some(b'-') => {
                            self.mode = Mode::Script(if state == Script::Escaped {
                                Script::EscapedDashDash
                            } else {
                                Script::DoubleEscapedDashDash
                            });
                            Ok(at + 2)
                        }
                        Some(_) => Ok(at + 1),
                    }
                } else {
                    self.script_lt(buf, at, state == Script::DoubleEscaped)
                }
            }
            Script::EscapedDashDash | Script::DoubleEscapedDashDash => {
                let double = state == Script::DoubleEscapedDashDash;
                match buf[i] {
                    b'-' => Ok(i + 1),
                    b'<' => self.script_lt(buf, i, double),
                    b'>' => {
                        self.mode = Mode::Script(Script::Data);
                        Ok(i + 1)
                    }
                    _ => {
                        self.mode = Mode::Script(if double {
                            Script::DoubleEscaped
                        } else {
                            Script::Escaped
                        });
                        Ok(i + 1)
                    }
                }
            }
        }
    }

    /// A `<` in escaped (`double` false) or double-escaped script data.
    fn script_lt(&mut self, buf: &[u8], lt: usize, double: bool) -> Result<usize, usize> {
        let plain = if double {
            Script::DoubleEscaped
        } else {
            Script::Escaped
        };
        let Some(&next) = buf.get(lt + 1) else {
            return Err(lt);
        };
        if double {
            // `</script` + delimiter leaves double escaping.
            if next != b'/' {
                self.mode = Mode::Script(plain);
                return Ok(lt + 1);
            }
            return match word_then_delimiter(buf, lt + 2, b"script") {
                Some(true) => {
                    self.mode = Mode::Script(Script::Escaped);
                    Ok(lt + 9)
                }
                Some(false) => {
                    self.mode = Mode::Script(plain);
                    Ok(lt + 1)
                }
                None => Err(lt),
            };
        }
        if next == b'/' {
            return match end_tag_at(buf, lt, b"script") {
                Some(true) => {
                    self.mode = Mode::Data;
                    Ok(lt)
                }
                Some(false) => {
                    self.mode = Mode::Script(plain);
                    Ok(lt + 1)
                }
                None => Err(lt),
            };
        }
        match word_then_delimiter(buf, lt + 1, b"script") {
            Some(true) => {
                self.mode = Mode::Script(Script::DoubleEscaped);
                Ok(lt + 8)
            }
            Some(false) => {
                self.mode = Mode::Script(plain);
                Ok(lt + 1)
            }
            None => Err(lt),
        }
    }

    fn start_tag(&mut self, buf: &[u8], lt: usize) -> Option<Tag> {
        self.tag(buf, lt, lt + 1, true)
    }

    /// Tokenizes the tag opening at `lt` whose name starts at `name_start`; `None` when it is
    /// not complete in `buf`. Start tags' attributes go to `self.attrs` (offsets from `lt`).
    fn tag(&mut self, buf: &[u8], lt: usize, name_start: usize, start: bool) -> Option<Tag> {
        let len = buf.len();
        self.attrs.clear();
        let mut i = name_start;
        while i < len && !is(buf[i], WS | SLASH | GT) {
            i += 1;
        }
        let name = (name_start - lt, i - lt);
        let start = start && may_matter(&buf[name_start..i]);
        let mut self_closing = false;
        // Attribute being built: name start, name end.
        loop {
            // Before attribute name.
            while i < len && is_ws(buf[i]) {
                i += 1;
            }
            let &b = buf.get(i)?;
            match b {
                b'>' => {
                    return Some(Tag {
                        end: i,
                        name,
                        self_closing,
                        empty_value_end: false,
                        recorded: start,
                    })
                }
                b'/' => {
                    // Self-closing start tag state: `>` ends, anything else is reconsumed.
                    let &n = buf.get(i + 1)?;
                    if n == b'>' {
                        self_closing = true;
                        i += 1;
                    } else {
                        i += 1;
                        self_closing = false;
                    }
                    continue;
                }
                _ => {}
            }
            self_closing = false;
            // Attribute name: the first byte is always part of it (even `=`).
            let name_begin = i;
            i += 1;
            while i < len && !is(buf[i], WS | SLASH | GT | EQ) {
                i += 1;
            }
            let &b = buf.get(i)?;
            let attr_name = (name_begin - lt, i - lt);
            let mut attr = Attr {
                name: attr_name,
                value: (0, 0),
                raw: attr_name,
            };
            // After attribute name.
            let mut b = b;
            if is_ws(b) {
                while i < len && is_ws(buf[i]) {
                    i += 1;
                }
                b = *buf.get(i)?;
            }
            if b != b'=' {
                // `/`, `>` or the start of the next attribute: this one has no value.
                if start {
                    self.attrs.push(attr);
                }
                continue;
            }
            // Before attribute value.
            i += 1;
            while i < len && is_ws(buf[i]) {
                i += 1;
            }
            let &b = buf.get(i)?;
            match b {
                b'"' | b'\'' => {
                    let close = i + 1 + memchr(b, &buf[i + 1..])?;
                    attr.value = (i + 1 - lt, close - lt);
                    attr.raw.1 = close + 1 - lt;
                    i = close + 1;
                }
                b'>' => {
                    if start {
                        self.attrs.push(attr);
                    }
                    return Some(Tag {
                        end: i,
                        name,
                        self_closing: false,
                        empty_value_end: true,
                        recorded: start,
                    });
                }
                _ => {
                    let begin = i;
                    while i < len && !is(buf[i], WS | GT) {
                        i += 1;
                    }
                    if i == len {
                        return None;
                    }
                    attr.value = (begin - lt, i - lt);
                    attr.raw.1 = i - lt;
                }
            }
            if start {
                self.attrs.push(attr);
            }
        }
    }

    /// Decides a complete start tag (`bytes`, from `<` to `>`): the attribute changes go to
    /// `self.edits` (empty: the tag stays as it is); returns the tokenizer's next mode, or
    /// `None` when the page must go to lol_html from this tag on.
    fn on_start_tag(&mut self, bytes: &[u8], tag: &Tag, page: &mut PageState) -> Option<Mode> {
        self.edits.clear();
        let mut lower = [0u8; 10];
        let raw_name = &bytes[tag.name.0..tag.name.1];
        let name: &[u8] = if raw_name.len() <= lower.len() {
            for (l, b) in lower.iter_mut().zip(raw_name) {
                *l = b.to_ascii_lowercase();
            }
            &lower[..raw_name.len()]
        } else {
            b""
        };
        if tag.empty_value_end || matches!(name, b"svg" | b"math") {
            return None;
        }
        if tag.recorded {
            let view = FastView {
                bytes,
                attrs: &self.attrs,
                encoding: self.encoding,
            };
            if name == b"meta" && self.follow_meta_charset {
                let charset = view
                    .attr("charset")
                    .and_then(|cs| Encoding::for_label_no_replacement(cs.as_bytes()))
                    .and_then(lol_html::AsciiCompatibleEncoding::new)
                    .map(<&'static Encoding>::from);
                match charset {
                    Some(found) if found == self.encoding => self.follow_meta_charset = false,
                    Some(_) => return None,
                    // `http-equiv` with a Content-Type: lol_html parses it as a MIME type.
                    None if view.raw_attr("http-equiv").is_some() => return None,
                    None => {}
                }
            }
            if PageState::selected(name, &view) {
                page.decide(name, &view, &mut self.edits);
            }
        }
        Some(match name {
            b"script" => Mode::Script(Script::Data),
            b"style" => Mode::RawText(b"style"),
            b"iframe" => Mode::RawText(b"iframe"),
            b"xmp" => Mode::RawText(b"xmp"),
            b"noembed" => Mode::RawText(b"noembed"),
            b"noframes" => Mode::RawText(b"noframes"),
            b"noscript" => Mode::RawText(b"noscript"),
            b"textarea" => Mode::RawText(b"textarea"),
            b"title" => Mode::RawText(b"title"),
            b"plaintext" => Mode::PlainText,
            _ => Mode::Data,
        })
    }

    /// A modified start tag as lol_html writes one: `<name`, each attribute after one space
    /// (unchanged ones as they were, changed ones as `name="value"` with `"` escaped), then
    /// ` />` or `>`.
    fn serialize(&self, bytes: &[u8], tag: &Tag, edits: &Edits, out: &mut Vec<u8>) {
        out.push(b'<');
        out.extend_from_slice(&bytes[tag.name.0..tag.name.1]);
        let mut done = [false; 4];
        for attr in &self.attrs {
            out.push(b' ');
            let attr_name = &bytes[attr.name.0..attr.name.1];
            let edit = edits
                .iter()
                .enumerate()
                .find(|(k, (n, _))| !done[*k] && attr_name.eq_ignore_ascii_case(n.as_bytes()));
            match edit {
                Some((k, (_, value))) => {
                    if let Some(slot) = done.get_mut(k) {
                        *slot = true;
                    }
                    out.extend_from_slice(attr_name);
                    out.extend_from_slice(b"=\"");
                    let encoded = if self.encoding == encoding_rs::UTF_8 {
                        Cow::Borrowed(value.as_bytes())
                    } else {
                        self.encoding.encode(value).0
                    };
                    let mut rest: &[u8] = &encoded;
                    while let Some(q) = memchr(b'"', rest) {
                        out.extend_from_slice(&rest[..q]);
                        out.extend_from_slice(b"&quot;");
                        rest = &rest[q + 1..];
                    }
                    out.extend_from_slice(rest);
                    out.push(b'"');
                }
                None => out.extend_from_slice(&bytes[attr.raw.0..attr.raw.1]),
            }
        }
        if tag.self_closing {
            if !self.attrs.is_empty() {
                out.push(b' ');
            }
            out.extend_from_slice(b"/>");
        } else {
            out.push(b'>');
        }
    }
}

/// A start tag's attributes seen by `html::PageState`.
struct FastView<'a> {
    bytes: &'a [u8],
    attrs: &'a [Attr],
    encoding: &'static Encoding,
}

impl FastView<'_> {
    fn find(&self, name: &str) -> Option<&Attr> {
        self.attrs
            .iter()
            .find(|a| self.bytes[a.name.0..a.name.1].eq_ignore_ascii_case(name.as_bytes()))
    }

    fn raw_attr(&self, name: &str) -> Option<&[u8]> {
        self.find(name).map(|a| &self.bytes[a.value.0..a.value.1])
    }
}

impl TagView for FastView<'_> {
    fn attr(&self, name: &str) -> Option<Cow<'_, str>> {
        let raw = self.raw_attr(name)?;
        // ASCII reads the same in every charset lol_html accepts; anything else is decoded
        // as lol_html decodes it (`Encoding::decode`, which also honours a BOM).
        Some(match std::str::from_utf8(raw) {
            // UTF-8 reads as itself (but for a BOM, which `decode` drops).
            Ok(s) if self.encoding == encoding_rs::UTF_8 && !s.starts_with('\u{feff}') => {
                Cow::Borrowed(s)
            }
            Ok(s) if raw.is_ascii() => Cow::Borrowed(s),
            _ => Cow::Owned(self.encoding.decode(raw).0.into_owned()),
        })
    }

    fn has_attr(&self, name: &str) -> bool {
        self.find(name).is_some()
    }
}

/// Byte classes of the tag states: one table load per byte instead of a chain of compares.
const WS: u8 = 1;
const SLASH: u8 = 2;
const GT: u8 = 4;
const EQ: u8 = 8;
static CLASS: [u8; 256] = {
    let mut t = [0u8; 256];
    // HTML whitespace as lol_html's tokenizer has it (with CR: it sees raw bytes).
    t[b' ' as usize] = WS;
    t[b'\n' as usize] = WS;
    t[b'\r' as usize] = WS;
    t[b'\t' as usize] = WS;
    t[0x0C] = WS;
    t[b'/' as usize] = SLASH;
    t[b'>' as usize] = GT;
    t[b'=' as usize] = EQ;
    t
};

fn is_ws(b: u8) -> bool {
    CLASS[usize::from(b)] == WS
}

/// Whether `b` is in one of the `classes`.
fn is(b: u8, classes: u8) -> bool {
    CLASS[usize::from(b)] & classes != 0
}

/// Whether a start tag of this name can be rewritten or move the charset (so its attributes
/// are worth recording).
fn may_matter(name: &[u8]) -> bool {
    [
        &b"img"[..],
        b"source",
        b"video",
        b"audio",
        b"script",
        b"link",
        b"base",
        b"meta",
    ]
    .iter()
    .any(|n| n.eq_ignore_ascii_case(name))
}

/// Whether `</name` + delimiter (whitespace, `/`, `>`) starts at `lt`; `None` when `buf` ends
/// before that is known.
fn end_tag_at(buf: &[u8], lt: usize, name: &[u8]) -> Option<bool> {
    match buf.get(lt + 1) {
        None => None,
        Some(b'/') => word_then_delimiter(buf, lt + 2, name),
        Some(_) => Some(false),
    }
}

/// Whether `word` (ASCII case-insensitive) and then a delimiter start at `at`.
fn word_then_delimiter(buf: &[u8], at: usize, word: &[u8]) -> Option<bool> {
    let avail = buf.len().saturating_sub(at);
    if avail <= word.len() {
        let part = &buf[at.min(buf.len())..];
        return if word[..part.len()].eq_ignore_ascii_case(part) {
            None
        } else {
            Some(false)
        };
    }
    let d = buf[at + word.len()];
    Some(
        buf[at..at + word.len()].eq_ignore_ascii_case(word) && (is_ws(d) || d == b'/' || d == b'>'),
    )
}

/// The `>` ending a comment whose text starts at `from`, or `Err(at)`: no end before the
/// buffer does, and bytes from `at` may be the start of one.
fn comment_end(buf: &[u8], from: usize) -> Result<usize, usize> {
    let mut k = from;
    loop {
        let Some(off) = memchr(b'-', &buf[k..]) else {
            return Err(buf.len());
        };
        k += off;
        match (buf.get(k + 1), buf.get(k + 2), buf.get(k + 3)) {
            (Some(b'-'), Some(b'>'), _) => return Ok(k + 2),
            (Some(b'-'), Some(b'!'), Some(b'>')) => return Ok(k + 3),
            (None, _, _) | (Some(b'-'), None, _) | (Some(b'-'), Some(b'!'), None) => return Err(k),
            _ => k += 1,
        }
    }
}

#[cfg(test)]
mod tests;
