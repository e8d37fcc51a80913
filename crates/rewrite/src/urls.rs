//! URL references found in attributes: resolving them against the page (or its `<base>`) to a
//! same-site absolute path, and rewriting `srcset` candidate lists.
//!
//! Deliberately conservative: anything unusual (user info, backslashes, other schemes, another
//! host) is "not ours" and left untouched. It must not decide *whether* a URL goes to the CDN.

/// A reference resolved to this site: absolute `path` (dot segments removed) and the untouched
/// `suffix` (query and fragment).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SiteUrl {
    pub(crate) path: String,
    pub(crate) suffix: String,
}

/// Resolves `raw` against the directory `base_path` (absolute, of the page or its `<base>`;
/// `None` when the `<base>` is another site, so relative references are not ours).
/// `is_site` says whether a host (lower-case, without port) is this site.
pub(crate) fn resolve(
    raw: &str,
    base_path: Option<&str>,
    is_site: &dyn Fn(&str) -> bool,
) -> Option<SiteUrl> {
    let mut buf = String::new();
    let path_len = resolve_into(raw, base_path, is_site, &mut buf)?;
    Some(SiteUrl {
        path: buf[..path_len].to_owned(),
        suffix: buf[path_len..].to_owned(),
    })
}

/// [`resolve`] into `buf` (cleared first): the absolute path then the suffix; returns the
/// path's length. The hot path: no allocation once `buf` has grown.
pub(crate) fn resolve_into(
    raw: &str,
    base_path: Option<&str>,
    is_site: &dyn Fn(&str) -> bool,
    buf: &mut String,
) -> Option<usize> {
    buf.clear();
    let raw = raw.trim_matches(|c: char| c.is_ascii_whitespace());
    if raw.is_empty() || raw.starts_with('#') || memchr::memchr(b'\\', raw.as_bytes()).is_some() {
        return None;
    }
    let rest = if let Some(after) = strip_scheme(raw) {
        after
    } else if raw.starts_with("//") {
        raw
    } else {
        let base = base_path?;
        if raw.starts_with('/') {
            buf.push_str(raw);
        } else if raw.starts_with('?') {
            // Same document, other query: the base's own path is the document.
            buf.push_str(base);
            buf.push_str(raw);
            return Some(base.len());
        } else {
            buf.push_str(base);
            buf.push_str(raw);
        }
        return Some(normalize(buf));
    };
    // `rest` is "//authority/path...": only http(s) and scheme-relative URLs get here.
    let rest = rest.strip_prefix("//")?;
    let end = rest
        .bytes()
        .position(|b| matches!(b, b'/' | b'?' | b'#'))
        .unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    if memchr::memchr(b'@', authority.as_bytes()).is_some() {
        return None;
    }
    let host = strip_port(authority);
    let site = if host.bytes().any(|b| b.is_ascii_uppercase()) {
        is_site(&host.to_ascii_lowercase())
    } else {
        is_site(host)
    };
    if host.is_empty() || !site {
        return None;
    }
    if !tail.starts_with('/') {
        buf.push('/');
    }
    buf.push_str(tail);
    Some(normalize(buf))
}

/// Splits `buf` (an absolute reference) at its query or fragment and removes dot segments from
/// the path in place; returns the path's length.
fn normalize(buf: &mut String) -> usize {
    let cut = memchr::memchr2(b'?', b'#', buf.as_bytes()).unwrap_or(buf.len());
    // Nearly every path has no dot segment (its only dot is the extension's): skip the rebuild.
    let path = &buf.as_bytes()[..cut];
    if !memchr::memchr_iter(b'.', path).any(|i| i > 0 && path[i - 1] == b'/') {
        return cut;
    }
    let path = remove_dot_segments(&buf[..cut]);
    let len = path.len();
    buf.replace_range(..cut, &path);
    len
}

/// The directory of an absolute path (up to and including its last `/`).
pub(crate) fn directory(path: &str) -> &str {
    let path = path.split(['?', '#']).next().unwrap_or_default();
    match path.rfind('/') {
        Some(i) => &path[..=i],
        None => "/",
    }
}

/// Appends `value`, a `srcset`, to `out` with each candidate URL rewritten by `map` (which
/// appends the new URL to `out` and says whether it did); `false`, `out` untouched, when
/// nothing changed.
pub(crate) fn rewrite_srcset(
    value: &str,
    out: &mut String,
    map: &mut dyn FnMut(&str, &mut String) -> bool,
) -> bool {
    let bytes = value.as_bytes();
    let mark = out.len();
    let mut copied = 0;
    let mut changed = false;
    let mut i = 0;
    while i < bytes.len() {
        // Skip separators between candidates.
        while i < bytes.len() && (bytes[i].is_ascii_whitespace() || bytes[i] == b',') {
            i += 1;
        }
        let start = i;
        while i < bytes.len() && !bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        let mut end = i;
        let ends_candidate = bytes[start..end].ends_with(b",");
        while end > start && bytes[end - 1] == b',' {
            end -= 1;
        }
        if end > start {
            // The text since the last change goes first; taken back if this one stays too.
            let before = out.len();
            out.push_str(&value[copied..start]);
            if map(&value[start..end], out) {
                copied = end;
                changed = true;
            } else {
                out.truncate(before);
            }
        }
        if !ends_candidate {
            // Descriptors run to the next comma outside parentheses.
            let mut depth = 0usize;
            while i < bytes.len() {
                match bytes[i] {
                    b'(' => depth += 1,
                    b')' => depth = depth.saturating_sub(1),
                    b',' if depth == 0 => break,
                    _ => {}
                }
                i += 1;
            }
        }
    }
    if !changed {
        out.truncate(mark);
        return false;
    }
    out.push_str(&value[copied..]);
    true
}

/// For `http:`/`https:` URLs returns what follows the scheme; `None` for no scheme. Other schemes
/// (`data:`, `javascript:`, `mailto:`) yield `Some("")`, which never resolves.
fn strip_scheme(raw: &str) -> Option<&str> {
    let colon = memchr::memchr(b':', raw.as_bytes())?;
    let scheme = &raw[..colon];
    let mut chars = scheme.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphabetic());
    if !first_ok || !chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')) {
        // A colon inside a path ("a:b" after a slash) is not a scheme.
        return None;
    }
    if scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("https") {
        Some(&raw[colon + 1..])
    } else {
        Some("")
    }
}

fn strip_port(authority: &str) -> &str {
    if authority.starts_with('[') {
        return authority.split_inclusive(']').next().unwrap_or(authority);
    }
    authority.split(':').next().unwrap_or(authority)
}

/// RFC 3986 section 5.2.4 on an absolute path.
fn remove_dot_segments(path: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    let segments: Vec<&str> = path.split('/').skip(1).collect();
    let last = segments.len().saturating_sub(1);
    for (i, segment) in segments.iter().enumerate() {
        match *segment {
            "." => {
                if i == last {
                    out.push("");
                }
            }
            ".." => {
                out.pop();
                if i == last {
                    out.push("");
                }
            }
            other => out.push(other),
        }
    }
    let mut result = String::with_capacity(path.len());
    for segment in out {
        result.push('/');
        result.push_str(segment);
    }
    if result.is_empty() {
        result.push('/');
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn site(host: &str) -> bool {
        host == "www.example.com"
    }

    fn r(raw: &str) -> Option<String> {
        resolve(raw, Some("/blog/2024/"), &site).map(|u| format!("{}{}", u.path, u.suffix))
    }

    #[test]
    fn resolves_relative_absolute_and_foreign() {
        assert_eq!(r("img/a.png").as_deref(), Some("/blog/2024/img/a.png"));
        assert_eq!(r("../../css/s.css?v=2").as_deref(), Some("/css/s.css?v=2"));
        assert_eq!(r("/a/./b/../c.js#x").as_deref(), Some("/a/c.js#x"));
        assert_eq!(
            r("https://WWW.example.com:8443/x.png").as_deref(),
            Some("/x.png")
        );
        assert_eq!(r("//www.example.com").as_deref(), Some("/"));
        assert_eq!(r(" http://www.example.com/y.js ").as_deref(), Some("/y.js"));
        assert_eq!(r("https://other.org/x.png"), None);
        assert_eq!(r("https://u@www.example.com/x.png"), None);
        assert_eq!(r("data:image/png;base64,AAAA"), None);
        assert_eq!(r("javascript:void(0)"), None);
        assert_eq!(r("#top"), None);
        assert_eq!(r(""), None);
        assert_eq!(r("..\\x.png"), None);
        assert_eq!(r("../../../../x.png").as_deref(), Some("/x.png"));
        assert_eq!(
            resolve("a.png", None, &site),
            None,
            "relative to a foreign <base>"
        );
    }

    #[test]
    fn directory_of_paths() {
        assert_eq!(directory("/blog/post.html?x=1"), "/blog/");
        assert_eq!(directory("/"), "/");
        assert_eq!(directory("/a/b/"), "/a/b/");
    }

    /// [`rewrite_srcset`] into a buffer that already holds other text, as `Edits` uses it.
    fn srcset(value: &str) -> Option<String> {
        let mut map = |u: &str, out: &mut String| {
            let ours = !u.starts_with("http");
            if ours {
                out.push_str("https://cdn");
                out.push_str(u);
            }
            ours
        };
        let mut out = String::from("before|");
        let changed = rewrite_srcset(value, &mut out, &mut map);
        let rest = out.strip_prefix("before|").expect("earlier text kept");
        assert_eq!(changed, !rest.is_empty(), "{value:?} gave {rest:?}");
        changed.then(|| rest.to_owned())
    }

    #[test]
    fn srcset_candidates_are_rewritten_in_place() {
        let out = srcset(" /a.png 1x,/b.png 2x , http://x/c.png 3x");
        assert_eq!(
            out.as_deref(),
            Some(" https://cdn/a.png 1x,https://cdn/b.png 2x , http://x/c.png 3x")
        );
        // As in HTML's parser, a URL runs to whitespace: commas inside it are part of it.
        let out = srcset("/a.png,/b.png 100w");
        assert_eq!(out.as_deref(), Some("https://cdn/a.png,/b.png 100w"));
        let out = srcset("/a.png, /b.png 100w,");
        assert_eq!(
            out.as_deref(),
            Some("https://cdn/a.png, https://cdn/b.png 100w,")
        );
        let out = srcset("/a.png (max-width: 1px, x), /b.png");
        assert_eq!(
            out.as_deref(),
            Some("https://cdn/a.png (max-width: 1px, x), https://cdn/b.png")
        );
        let out = srcset("http://x/a.png 1x, /b.png 2x, http://y/c.png 3x");
        assert_eq!(
            out.as_deref(),
            Some("http://x/a.png 1x, https://cdn/b.png 2x, http://y/c.png 3x")
        );
        assert_eq!(srcset("http://x/a.png 1x"), None);
        assert_eq!(srcset(""), None);
        assert_eq!(srcset(",,, ,"), None);
    }
}
