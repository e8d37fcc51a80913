//! The lol_html element handler of one page: which elements and attributes carry URLs of
//! content (images, scripts, stylesheets, preloads, media, `srcset`, `poster`), how `<base href>`
//! moves the resolution base, and the CDN URL each matching reference becomes.
//!
//! It decides per reference with the rules and (in `auto` mode) the selected object set it was
//! given, each distinct reference once per page (`memo`), and writes the new values into one
//! reused buffer ([`Edits`]); it must not block, allocate per reference, or touch shared state
//! beyond one counter.

use std::borrow::Cow;
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, LazyLock};

use lol_html::send::{Element, ElementContentHandlers};
use lol_html::{HandlerResult, Selector};

use crate::memo::Memo;
use crate::rules::Compiled;
use crate::urls::{directory, resolve, resolve_into, rewrite_srcset};

/// The elements whose URL attributes may be rewritten, and `<base>`.
const SELECTOR: &str = "img, script[src], link[href], source, video, audio, base[href]";
/// [`SELECTOR`] parsed once for every page; `None` cannot happen for this constant, and would
/// only mean pages pass through unchanged.
static PARSED_SELECTOR: LazyLock<Option<Selector>> = LazyLock::new(|| SELECTOR.parse().ok());
/// `rel` values of `<link>` that load content the page needs.
const LINK_RELS: &[&str] = &["stylesheet", "preload", "modulepreload", "prefetch", "icon"];

/// Everything the handler needs to rewrite one page.
pub(crate) struct PageRewrite {
    pub(crate) rules: Arc<Compiled>,
    /// In `auto` mode, the paths chosen from traffic; `None` in explicit mode.
    pub(crate) selected: Option<Arc<HashSet<String>>>,
    /// CDN host for this client.
    pub(crate) cdn_host: String,
    /// The request's host, lower-case, without port.
    pub(crate) request_host: Option<String>,
    /// Absolute path of the page (no query).
    pub(crate) page_path: String,
    /// Raised past the decoded-size limit: from then on nothing is rewritten.
    pub(crate) stop: Arc<AtomicBool>,
    /// Counter of URLs rewritten (shared with the `Rewriter`'s report).
    pub(crate) rewritten: Arc<AtomicU64>,
}

/// Per-page mutable state of the handler, moved from the fast scan to lol_html if the page
/// needs the full parser.
pub(crate) struct PageState {
    page: PageRewrite,
    /// Directory relative references resolve against; `None` after a foreign `<base>`.
    base_dir: Option<String>,
    base_seen: bool,
    /// Decisions already taken on this page, against the current `base_dir`.
    memo: Memo,
    /// Reused for resolving each reference: no allocation per attribute.
    scratch: String,
}

impl PageRewrite {
    /// The flag the pipeline raises past the size limit.
    pub(crate) fn stop_flag(&self) -> Arc<AtomicBool> {
        self.stop.clone()
    }

    /// Appends the CDN URL for `raw` resolved against `base_dir` to `out` when it is this
    /// site's and chosen for the CDN (resolved in `scratch`); `false`, `out` untouched, if not.
    fn decide_url(
        &self,
        raw: &str,
        base_dir: Option<&str>,
        scratch: &mut String,
        out: &mut String,
    ) -> bool {
        // A replacement character means the value was not valid in the page's charset: writing
        // it back would corrupt it.
        if !raw.is_ascii() && raw.contains('\u{FFFD}') {
            return false;
        }
        let is_site = |host: &str| self.rules.is_site_host(host, self.request_host.as_deref());
        let Some(path_len) = resolve_into(raw, base_dir, &is_site, scratch) else {
            return false;
        };
        let path = &scratch[..path_len];
        if !self.rules.path_matches(path) {
            return false;
        }
        if let Some(selected) = &self.selected {
            if !selected.contains(path) {
                return false;
            }
        }
        out.push_str("https://");
        out.push_str(&self.cdn_host);
        out.push_str(scratch);
        true
    }

    /// The per-page state both engines (the fast scan and lol_html) decide with; `memo` false
    /// decides every reference afresh (the differential tests' reference).
    pub(crate) fn into_state(self, memo: bool) -> PageState {
        let base_dir = Some(directory(&self.page_path).to_owned());
        PageState {
            page: self,
            base_dir,
            base_seen: false,
            memo: Memo::new(memo),
            scratch: String::new(),
        }
    }
}

/// Read access to one start tag's attributes, whichever engine parsed it. Names are matched
/// ASCII case-insensitively, the first of duplicates wins (as lol_html's `get_attribute`), and
/// values are the raw text decoded from the page's charset (character references untouched).
pub(crate) trait TagView {
    fn attr(&self, name: &str) -> Option<Cow<'_, str>>;
    fn has_attr(&self, name: &str) -> bool;
}

/// The attribute changes decided for one tag (at most a few: `src` and `srcset`, ...), their
/// new values side by side in one buffer that lives as long as the page's engine: deciding a
/// tag allocates nothing once the buffer has grown, memo hit or not.
#[derive(Default)]
pub(crate) struct Edits {
    values: String,
    /// Attribute name and the end of its value in `values` (each starts where the last ended).
    ends: Vec<(&'static str, usize)>,
}

impl Edits {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    pub(crate) fn clear(&mut self) {
        self.values.clear();
        self.ends.clear();
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// `(attribute, new value)` in the order decided.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&'static str, &str)> {
        let mut start = 0;
        self.ends.iter().map(move |&(name, end)| {
            let value = &self.values[start..end];
            start = end;
            (name, value)
        })
    }

    /// Records that what was appended to `values` since the last edit is `name`'s new value.
    fn commit(&mut self, name: &'static str) {
        self.ends.push((name, self.values.len()));
    }
}

impl PageState {
    /// Whether [`SELECTOR`] matches a start tag named `tag` (ASCII lower case): the fast scan
    /// asks this to hand [`PageState::decide`] exactly the tags lol_html would.
    pub(crate) fn selected(tag: &[u8], view: &dyn TagView) -> bool {
        match tag {
            b"img" | b"source" | b"video" | b"audio" => true,
            b"script" => view.has_attr("src"),
            b"link" | b"base" => view.has_attr("href"),
            _ => false,
        }
    }

    /// The attribute values to replace in a tag matched by [`SELECTOR`], into `edits` (cleared
    /// first); also moves the resolution base on the first `<base href>`.
    pub(crate) fn decide(&mut self, tag: &[u8], view: &dyn TagView, edits: &mut Edits) {
        edits.clear();
        match tag {
            b"base" => self.on_base(view),
            b"img" | b"source" => {
                self.rewrite_attr(view, "src", edits);
                self.rewrite_srcset_attr(view, "srcset", edits);
            }
            b"script" | b"audio" => self.rewrite_attr(view, "src", edits),
            b"video" => {
                self.rewrite_attr(view, "src", edits);
                self.rewrite_attr(view, "poster", edits);
            }
            b"link" => {
                let loads = view.attr("rel").is_some_and(|rel| {
                    rel.split_ascii_whitespace()
                        .any(|r| LINK_RELS.iter().any(|l| l.eq_ignore_ascii_case(r)))
                });
                if loads {
                    self.rewrite_attr(view, "href", edits);
                    self.rewrite_srcset_attr(view, "imagesrcset", edits);
                }
            }
            _ => {}
        }
    }

    /// The `(selector, handlers)` pair for lol_html's settings, owning this state.
    pub(crate) fn into_handler(
        mut self,
    ) -> Option<(Cow<'static, Selector>, ElementContentHandlers<'static>)> {
        let selector: &'static Selector = PARSED_SELECTOR.as_ref()?;
        let mut edits = Edits::new();
        let handlers = ElementContentHandlers::default().element(
            move |el: &mut Element<'_, '_>| -> HandlerResult {
                let name = el.tag_name();
                self.decide(name.as_bytes(), &ElementView(el), &mut edits);
                for (attr, value) in edits.iter() {
                    el.set_attribute(attr, value)?;
                }
                Ok(())
            },
        );
        Some((Cow::Borrowed(selector), handlers))
    }

    /// Only the first `<base href>` counts (HTML's rule).
    fn on_base(&mut self, view: &dyn TagView) {
        if self.base_seen {
            return;
        }
        self.base_seen = true;
        if let Some(href) = view.attr("href") {
            let page = &self.page;
            let is_site = |host: &str| page.rules.is_site_host(host, page.request_host.as_deref());
            self.base_dir = resolve(&href, self.base_dir.as_deref(), &is_site)
                .map(|url| directory(&url.path).to_owned());
            // Relative references now mean other URLs.
            self.memo.clear();
        }
    }

    /// Appends the CDN URL for `raw` on this page to `out` (`false`, nothing appended, when
    /// it stays), decided once per distinct `raw` (see `memo`).
    fn cdn_url(&mut self, raw: &str, out: &mut String) -> bool {
        if self.page.stop.load(Ordering::Relaxed) {
            return false;
        }
        let rewritten = match self.memo.get(raw) {
            Some(url) => {
                out.push_str(url.unwrap_or_default());
                url.is_some()
            }
            None => {
                let from = out.len();
                let base = self.base_dir.as_deref();
                let rewritten = self.page.decide_url(raw, base, &mut self.scratch, out);
                self.memo.insert(raw, rewritten.then(|| &out[from..]));
                rewritten
            }
        };
        if rewritten {
            self.page.rewritten.fetch_add(1, Ordering::Relaxed);
        }
        rewritten
    }

    fn rewrite_attr(&mut self, view: &dyn TagView, name: &'static str, edits: &mut Edits) {
        let Some(value) = view.attr(name) else {
            return;
        };
        if self.cdn_url(&value, &mut edits.values) {
            edits.commit(name);
        }
    }

    fn rewrite_srcset_attr(&mut self, view: &dyn TagView, name: &'static str, edits: &mut Edits) {
        let Some(value) = view.attr(name) else {
            return;
        };
        if rewrite_srcset(&value, &mut edits.values, &mut |u, out| {
            self.cdn_url(u, out)
        }) {
            edits.commit(name);
        }
    }
}

/// lol_html's element as a [`TagView`].
struct ElementView<'a, 'b, 'c>(&'a Element<'b, 'c>);

impl TagView for ElementView<'_, '_, '_> {
    fn attr(&self, name: &str) -> Option<Cow<'_, str>> {
        self.0.get_attribute(name).map(Cow::Owned)
    }

    fn has_attr(&self, name: &str) -> bool {
        self.0.has_attribute(name)
    }
}
