//! The lol_html element handler of one page: which elements and attributes carry URLs of
//! content (images, scripts, stylesheets, preloads, media, `srcset`, `poster`), how `<base href>`
//! moves the resolution base, and the CDN URL each matching reference becomes.
//!
//! It decides per reference with the rules and (in `auto` mode) the selected object set it was
//! given; it must not block, allocate per byte, or touch shared state beyond one counter.

use std::borrow::Cow;
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, LazyLock};

use lol_html::send::{Element, ElementContentHandlers};
use lol_html::{HandlerResult, Selector};

use crate::rules::Compiled;
use crate::urls::{directory, resolve, rewrite_srcset};

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

/// Per-page mutable state of the handler.
struct PageState {
    page: PageRewrite,
    /// Directory relative references resolve against; `None` after a foreign `<base>`.
    base_dir: Option<String>,
    base_seen: bool,
}

impl PageRewrite {
    /// The flag the pipeline raises past the size limit.
    pub(crate) fn stop_flag(&self) -> Arc<AtomicBool> {
        self.stop.clone()
    }

    /// The CDN URL for `raw`, when it is this site's and chosen for the CDN.
    pub(crate) fn cdn_url(&self, raw: &str, base_dir: Option<&str>) -> Option<String> {
        // A replacement character means the value was not valid in the page's charset: writing
        // it back would corrupt it.
        if self.stop.load(Ordering::Relaxed) || raw.contains('\u{FFFD}') {
            return None;
        }
        let is_site = |host: &str| self.rules.is_site_host(host, self.request_host.as_deref());
        let url = resolve(raw, base_dir, &is_site)?;
        if !self.rules.path_matches(&url.path) {
            return None;
        }
        if let Some(selected) = &self.selected {
            if !selected.contains(&url.path) {
                return None;
            }
        }
        self.rewritten.fetch_add(1, Ordering::Relaxed);
        Some(format!(
            "https://{}{}{}",
            self.cdn_host, url.path, url.suffix
        ))
    }

    /// The `(selector, handlers)` pair for lol_html's settings.
    pub(crate) fn into_handler(
        self,
    ) -> Option<(Cow<'static, Selector>, ElementContentHandlers<'static>)> {
        let selector: &'static Selector = PARSED_SELECTOR.as_ref()?;
        let base_dir = Some(directory(&self.page_path).to_owned());
        let mut state = PageState {
            page: self,
            base_dir,
            base_seen: false,
        };
        let handlers = ElementContentHandlers::default()
            .element(move |el: &mut Element<'_, '_>| state.on_element(el));
        Some((Cow::Borrowed(selector), handlers))
    }
}

impl PageState {
    fn on_element(&mut self, el: &mut Element<'_, '_>) -> HandlerResult {
        let tag = el.tag_name();
        match tag.as_str() {
            "base" => self.on_base(el),
            "img" | "source" => {
                self.rewrite_attr(el, "src")?;
                self.rewrite_srcset_attr(el, "srcset")
            }
            "script" | "audio" => self.rewrite_attr(el, "src"),
            "video" => {
                self.rewrite_attr(el, "src")?;
                self.rewrite_attr(el, "poster")
            }
            "link" => {
                let rel = el
                    .get_attribute("rel")
                    .unwrap_or_default()
                    .to_ascii_lowercase();
                if rel.split_ascii_whitespace().any(|r| LINK_RELS.contains(&r)) {
                    self.rewrite_attr(el, "href")?;
                    self.rewrite_srcset_attr(el, "imagesrcset")?;
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// Only the first `<base href>` counts (HTML's rule).
    fn on_base(&mut self, el: &mut Element<'_, '_>) -> HandlerResult {
        if self.base_seen {
            return Ok(());
        }
        self.base_seen = true;
        if let Some(href) = el.get_attribute("href") {
            let page = &self.page;
            let is_site = |host: &str| page.rules.is_site_host(host, page.request_host.as_deref());
            self.base_dir = resolve(&href, self.base_dir.as_deref(), &is_site)
                .map(|url| directory(&url.path).to_owned());
        }
        Ok(())
    }

    fn rewrite_attr(&mut self, el: &mut Element<'_, '_>, name: &str) -> HandlerResult {
        let Some(value) = el.get_attribute(name) else {
            return Ok(());
        };
        if let Some(new) = self.page.cdn_url(&value, self.base_dir.as_deref()) {
            el.set_attribute(name, &new)?;
        }
        Ok(())
    }

    fn rewrite_srcset_attr(&mut self, el: &mut Element<'_, '_>, name: &str) -> HandlerResult {
        let Some(value) = el.get_attribute(name) else {
            return Ok(());
        };
        let base = self.base_dir.as_deref();
        let page = &self.page;
        if let Some(new) = rewrite_srcset(&value, &mut |u| page.cdn_url(u, base)) {
            el.set_attribute(name, &new)?;
        }
        Ok(())
    }
}
