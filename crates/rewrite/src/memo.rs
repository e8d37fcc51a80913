//! The per-page memo of URL decisions: a page names the same references again and again (the
//! stylesheet, the logo, the sprite in every card), and resolving plus rule-matching one is most
//! of what deciding a tag costs, so each distinct raw reference is decided once per page and the
//! decision (its CDN URL, or "leave it") reused.
//!
//! A decision depends on the raw value, the resolution base and the page's fixed inputs (rules,
//! hosts, selection), so the memo lives in one page's state and is emptied when `<base>` moves
//! the base. It is bounded in entries and bytes, whatever the page holds: a page of endless
//! distinct URLs only empties it again and again. It must not decide anything itself, nor be
//! shared between pages (the rules or the selection may change between them).

use std::collections::HashMap;

/// Most decisions kept at once. A page rarely has more distinct asset references than this;
/// past it the memo starts over.
pub(crate) const MAX_ENTRIES: usize = 1024;
/// Most bytes of references and CDN URLs kept at once (besides the table itself).
pub(crate) const MAX_BYTES: usize = 128 << 10;
/// References longer than this are decided every time: hashing and keeping them (an inline
/// `data:` image, say) would cost more than deciding, and they rarely repeat.
pub(crate) const MAX_KEY_BYTES: usize = 512;

/// Decisions of one page, keyed by the raw attribute value (or `srcset` candidate).
///
/// The hasher is foldhash's: the keys are short strings, where std's SipHash costs several
/// times more per lookup (measured: BENCHMARKS.md, CDN section, "Step: a per-page memo").
/// Its per-process random seed keeps a page from choosing colliding keys; the entry bound
/// caps what a collision could cost anyway.
pub(crate) struct Memo {
    decisions: HashMap<Box<str>, Option<Box<str>>, foldhash::fast::RandomState>,
    bytes: usize,
    /// `false`: keeps nothing, every reference is decided afresh (the reference engine of the
    /// differential tests, so they also hold the memo to deciding every time).
    keeps: bool,
}

impl Memo {
    /// An empty memo; `keeps` false makes one that never remembers.
    pub(crate) fn new(keeps: bool) -> Self {
        Self {
            decisions: HashMap::default(),
            bytes: 0,
            keeps,
        }
    }

    /// The decision kept for `raw`: `Some(Some(url))` rewrite, `Some(None)` leave, `None`
    /// not decided yet.
    pub(crate) fn get(&self, raw: &str) -> Option<Option<&str>> {
        if raw.len() > MAX_KEY_BYTES || self.decisions.is_empty() {
            return None;
        }
        self.decisions.get(raw).map(Option::as_deref)
    }

    /// Keeps the decision for `raw` (a reference [`Memo::get`] did not know).
    pub(crate) fn insert(&mut self, raw: &str, url: Option<&str>) {
        if !self.keeps || raw.len() > MAX_KEY_BYTES {
            return;
        }
        let size = raw.len() + url.map_or(0, str::len);
        if self.decisions.len() >= MAX_ENTRIES || self.bytes + size > MAX_BYTES {
            self.clear();
        }
        self.bytes += size;
        self.decisions.insert(raw.into(), url.map(Into::into));
    }

    /// Forgets every decision (the resolution base moved).
    pub(crate) fn clear(&mut self) {
        self.decisions.clear();
        self.bytes = 0;
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.decisions.len()
    }

    #[cfg(test)]
    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_both_kinds_of_decision() {
        let mut memo = Memo::new(true);
        assert_eq!(memo.get("/a.css"), None);
        memo.insert("/a.css", Some("https://cdn/a.css"));
        memo.insert("/about", None);
        assert_eq!(memo.get("/a.css"), Some(Some("https://cdn/a.css")));
        assert_eq!(memo.get("/about"), Some(None));
        memo.clear();
        assert_eq!(memo.get("/a.css"), None);
        assert_eq!(memo.bytes(), 0);
    }

    #[test]
    fn stays_within_its_bounds() {
        let mut memo = Memo::new(true);
        for i in 0..10 * MAX_ENTRIES {
            let raw = format!("/img/{i}.png");
            memo.insert(&raw, Some(&format!("https://cdn.example.net{raw}")));
            assert!(memo.len() <= MAX_ENTRIES, "{} entries", memo.len());
            assert!(memo.bytes() <= MAX_BYTES);
            assert_eq!(memo.get(&raw).map(|u| u.is_some()), Some(true));
        }
        let long = "a".repeat(MAX_KEY_BYTES - 1);
        for i in 0..1000 {
            let raw = format!("{long}{i}");
            memo.insert(&raw, Some(&raw));
            assert!(memo.bytes() <= MAX_BYTES, "{} bytes", memo.bytes());
        }
        let too_long = "a".repeat(MAX_KEY_BYTES + 1);
        memo.insert(&too_long, None);
        assert_eq!(memo.get(&too_long), None, "long references are not kept");
    }

    #[test]
    fn a_memo_that_does_not_keep() {
        let mut memo = Memo::new(false);
        memo.insert("/a.css", Some("https://cdn/a.css"));
        assert_eq!(memo.get("/a.css"), None);
    }
}
