//! Checks of `[service.cdn]`: the CDN host template, the eligible paths, extensions and
//! content types, the `auto` selection settings and the page cache size.
//!
//! The rewriter validates its rules again when the proxy builds them; here every problem gets
//! its line and key.

use std::ops::RangeInclusive;

use toml::Spanned;

use super::Checker;
use crate::file::FileCdn;
use crate::model::{CdnAuto, CdnConfig};

/// What the CDN host template may contain besides host-name characters.
const CLIENT_TOKEN: &str = "{client_token}";
/// `min_hits`, `top_k`, `max_page_bytes`: at least one.
const POSITIVE: RangeInclusive<i64> = 1..=i64::MAX;
/// `cache_bytes`: up to 64 GiB (more is surely a unit mistake).
const CACHE_BYTES: RangeInclusive<i64> = 0..=(64 << 30);
/// Defaults, matching the rewriter's.
const DEFAULT_MIN_HITS: u64 = 10;
const DEFAULT_SAMPLE_RATE: f64 = 0.1;
const DEFAULT_MAX_PAGE_BYTES: u64 = 8 << 20;
const DEFAULT_CACHE_BYTES: usize = 64 << 20;

impl Checker<'_> {
    pub(super) fn cdn(&mut self, key: &str, table: &Spanned<FileCdn>) -> CdnConfig {
        let c = table.get_ref();
        let key = format!("{key}.cdn");
        let host = match &c.host {
            None => {
                self.report(table.span(), &format!("{key}.host"), "missing required key");
                String::new()
            }
            Some(h) => {
                let bare = h.get_ref().replace(CLIENT_TOKEN, "t");
                if bare.is_empty() || !bare.split('.').all(is_label) {
                    let message = format!(
                        "{:?} is not a host name (letters, digits, '-', dots; may contain {CLIENT_TOKEN})",
                        h.get_ref()
                    );
                    self.report(h.span(), &format!("{key}.host"), message);
                }
                h.get_ref().clone()
            }
        };
        let site_hosts = self.list(c.site_hosts.as_ref(), &format!("{key}.site_hosts"), |h| {
            (!h.is_empty() && h.split('.').all(is_label))
                .then_some(())
                .ok_or("is not a host name")
        });
        let path_prefixes = self.list(
            c.path_prefixes.as_ref(),
            &format!("{key}.path_prefixes"),
            |p| {
                p.starts_with('/')
                    .then_some(())
                    .ok_or("must start with '/'")
            },
        );
        let extensions = self.list(c.extensions.as_ref(), &format!("{key}.extensions"), |e| {
            (!e.is_empty() && !e.contains(['.', '/']))
                .then_some(())
                .ok_or("must be a bare extension like \"png\"")
        });
        let content_types = self.list(
            c.content_types.as_ref(),
            &format!("{key}.content_types"),
            |t| {
                (!t.is_empty() && t.is_ascii())
                    .then_some(())
                    .ok_or("must be a content type or prefix like \"image/\"")
            },
        );
        let auto_only = [
            (c.min_hits.as_ref().map(Spanned::span), "min_hits"),
            (c.top_k.as_ref().map(Spanned::span), "top_k"),
            (
                c.content_types
                    .as_ref()
                    .and_then(|v| v.first())
                    .map(Spanned::span),
                "content_types",
            ),
        ];
        let auto = match c.mode.as_ref().map(|m| (m.get_ref().as_str(), m.span())) {
            None | Some(("explicit", _)) => {
                for (span, name) in auto_only {
                    if let Some(span) = span {
                        self.report(
                            span,
                            &format!("{key}.{name}"),
                            "only applies with mode = \"auto\"",
                        );
                    }
                }
                None
            }
            Some(("auto", _)) => Some(CdnAuto {
                min_hits: self.int(
                    c.min_hits.as_ref(),
                    &format!("{key}.min_hits"),
                    POSITIVE,
                    DEFAULT_MIN_HITS,
                ),
                top_k: c
                    .top_k
                    .as_ref()
                    .map(|t| self.int(Some(t), &format!("{key}.top_k"), POSITIVE, 1)),
                content_types,
            }),
            Some((other, span)) => {
                let message = format!("{other:?} is not a mode: use explicit or auto");
                self.report(span, &format!("{key}.mode"), message);
                None
            }
        };
        let sample_rate = match &c.sample_rate {
            None => DEFAULT_SAMPLE_RATE,
            Some(r) if (0.0..=1.0).contains(r.get_ref()) => *r.get_ref(),
            Some(r) => {
                let message = format!("must be between 0.0 and 1.0, not {}", r.get_ref());
                self.report(r.span(), &format!("{key}.sample_rate"), message);
                DEFAULT_SAMPLE_RATE
            }
        };
        CdnConfig {
            host,
            site_hosts,
            path_prefixes,
            extensions,
            auto,
            sample_rate,
            max_page_bytes: self.int(
                c.max_page_bytes.as_ref(),
                &format!("{key}.max_page_bytes"),
                POSITIVE,
                DEFAULT_MAX_PAGE_BYTES,
            ),
            ask_identity: c.ask_identity.unwrap_or(false),
            cache_bytes: self.int(
                c.cache_bytes.as_ref(),
                &format!("{key}.cache_bytes"),
                CACHE_BYTES,
                DEFAULT_CACHE_BYTES,
            ),
        }
    }

    /// A list of strings, each checked; problems are reported with the element's index.
    fn list(
        &mut self,
        values: Option<&Vec<Spanned<String>>>,
        key: &str,
        check: impl Fn(&str) -> Result<(), &'static str>,
    ) -> Vec<String> {
        let mut out = Vec::new();
        for (i, v) in values.into_iter().flatten().enumerate() {
            match check(v.get_ref()) {
                Ok(()) => out.push(v.get_ref().clone()),
                Err(why) => self.report(
                    v.span(),
                    &format!("{key}[{i}]"),
                    format!("{:?} {why}", v.get_ref()),
                ),
            }
        }
        out
    }
}

/// One DNS label: letters, digits, '-' and '_', not empty, at most 63 bytes.
fn is_label(label: &str) -> bool {
    !label.is_empty()
        && label.len() <= 63
        && label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use crate::{parse, Source};

    const HEAD: &str = "[[service]]\nname = \"w\"\nlisten = [\"127.0.0.1:1\"]\n[[service.backend]]\nname = \"a\"\naddress = \"127.0.0.1:2\"\n";

    fn problems(cdn: &str) -> Vec<(usize, String)> {
        let text = format!("{HEAD}[service.cdn]\n{cdn}");
        match parse(&text, Source::Inline("t".into())) {
            Ok(_) => Vec::new(),
            Err(e) => e
                .problems()
                .iter()
                .map(|p| (p.line, p.key.clone()))
                .collect(),
        }
    }

    #[test]
    fn a_full_table_parses() {
        let text = format!(
            "{HEAD}[service.cdn]\nhost = \"{{client_token}}.cdn.example.net\"\nsite_hosts = [\"www.example.com\"]\n\
             path_prefixes = [\"/static/\"]\nextensions = [\"png\"]\nmode = \"auto\"\nmin_hits = 3\ntop_k = 20\n\
             content_types = [\"image/\"]\nsample_rate = 0.5\nmax_page_bytes = 1000\nask_identity = true\ncache_bytes = 0\n"
        );
        let cfg = parse(&text, Source::Inline("t".into())).unwrap();
        let cdn = cfg.services[0].cdn.clone().unwrap();
        assert_eq!(cdn.host, "{client_token}.cdn.example.net");
        let auto = cdn.auto.unwrap();
        assert_eq!((auto.min_hits, auto.top_k), (3, Some(20)));
        assert_eq!(auto.content_types, vec!["image/".to_owned()]);
        assert_eq!(
            (
                cdn.sample_rate,
                cdn.max_page_bytes,
                cdn.ask_identity,
                cdn.cache_bytes
            ),
            (0.5, 1000, true, 0)
        );
    }

    #[test]
    fn every_problem_has_its_line_and_key() {
        let found = problems(
            "host = \"bad host\"\npath_prefixes = [\"static\"]\nextensions = [\".png\"]\nmode = \"fast\"\nsample_rate = 2.0\n",
        );
        let keys: Vec<&str> = found.iter().map(|(_, k)| k.as_str()).collect();
        assert_eq!(
            keys,
            [
                "service[0].cdn.host",
                "service[0].cdn.path_prefixes[0]",
                "service[0].cdn.extensions[0]",
                "service[0].cdn.mode",
                "service[0].cdn.sample_rate"
            ]
        );
        assert_eq!(found[0].0, 8);
        assert_eq!(found[4].0, 12);
        assert_eq!(
            problems("path_prefixes = []\n"),
            vec![(7, "service[0].cdn.host".to_owned())]
        );
        assert_eq!(
            problems("host = \"c.test\"\nmin_hits = 2\n"),
            vec![(9, "service[0].cdn.min_hits".to_owned())]
        );
    }
}
