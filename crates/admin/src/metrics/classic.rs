//! The classic Prometheus text format (0.0.4) for `GET /metrics`, and the choice between it and
//! OpenMetrics by the scraper's `Accept` header.
//!
//! Owns: turning the OpenMetrics text that prometheus-client writes into the classic format,
//! which `promtool check metrics`, older Prometheus servers, Telegraf, Datadog and most other
//! scrapers read; and [`Format::negotiate`]. Prometheus itself asks for OpenMetrics first and
//! gets it; everybody who does not ask gets the classic format, as from every Go exporter.
//!
//! The conversion is line by line over a body we produced ourselves (so no exemplars and no
//! `_created` samples to expect): `# EOF` and `# UNIT` lines go, a counter family `x` is named
//! `x_total` in its `# HELP`/`# TYPE` lines (its samples already are), an info family `x`
//! becomes the gauge `x_info`, and help texts keep only the two escapes the classic format
//! knows (`\\`, `\n`: an escaped quote is written plain).
//!
//! Must not: compute or hold any number (everything comes from the OpenMetrics body).

use std::collections::HashMap;

/// `Content-Type` of the classic text format.
pub(crate) const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Which exposition format a scrape gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    /// OpenMetrics 1.0 text.
    OpenMetrics,
    /// The classic Prometheus text format 0.0.4.
    Classic,
}

impl Format {
    /// The format an `Accept` header asks for: OpenMetrics when it names
    /// `application/openmetrics-text` with a quality above zero and at least that of
    /// `text/plain` (and of `*/*` when that is all it names besides); classic otherwise,
    /// including without the header.
    pub(crate) fn negotiate(accept: Option<&str>) -> Self {
        let Some(accept) = accept else {
            return Self::Classic;
        };
        let mut open_metrics: Option<f32> = None;
        let mut plain: Option<f32> = None;
        for range in accept.split(',') {
            let mut parts = range.split(';');
            let media = parts.next().unwrap_or("").trim().to_ascii_lowercase();
            let q = parts
                .filter_map(|p| p.split_once('='))
                .find(|(k, _)| k.trim().eq_ignore_ascii_case("q"))
                .and_then(|(_, v)| v.trim().parse::<f32>().ok())
                .unwrap_or(1.0);
            let slot = match media.as_str() {
                "application/openmetrics-text" => &mut open_metrics,
                "text/plain" | "text/*" | "*/*" => &mut plain,
                _ => continue,
            };
            *slot = Some(slot.map_or(q, |old| old.max(q)));
        }
        match (open_metrics, plain) {
            (Some(om), p) if om > 0.0 && om >= p.unwrap_or(0.0) => Self::OpenMetrics,
            _ => Self::Classic,
        }
    }

    /// The `Content-Type` of a body in this format.
    pub(crate) fn content_type(self) -> &'static str {
        match self {
            Self::OpenMetrics => super::CONTENT_TYPE,
            Self::Classic => CONTENT_TYPE,
        }
    }
}

/// `open_metrics` (a body prometheus-client wrote) in the classic text format.
pub(crate) fn to_classic(open_metrics: &str) -> String {
    // Family types first: a family's `# HELP` line comes before its `# TYPE` line.
    let types: HashMap<&str, &str> = open_metrics
        .lines()
        .filter_map(|line| line.strip_prefix("# TYPE "))
        .filter_map(|rest| rest.split_once(' '))
        .collect();
    let renamed = |name: &str| match types.get(name).copied() {
        Some("counter") => (format!("{name}_total"), "counter"),
        Some("info") => (format!("{name}_info"), "gauge"),
        Some("gauge") => (name.to_owned(), "gauge"),
        Some("histogram") => (name.to_owned(), "histogram"),
        Some("summary") => (name.to_owned(), "summary"),
        _ => (name.to_owned(), "untyped"),
    };
    let mut out = String::with_capacity(open_metrics.len());
    for line in open_metrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').unwrap_or((rest, ""));
            out.push_str("# HELP ");
            out.push_str(&renamed(name).0);
            out.push(' ');
            out.push_str(&help.replace("\\\"", "\""));
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let name = rest.split_once(' ').map_or(rest, |(n, _)| n);
            let (name, kind) = renamed(name);
            out.push_str("# TYPE ");
            out.push_str(&name);
            out.push(' ');
            out.push_str(kind);
        } else {
            out.push_str(line);
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prometheus_gets_open_metrics_and_everybody_else_classic() {
        let prometheus = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
        assert_eq!(Format::negotiate(Some(prometheus)), Format::OpenMetrics);
        assert_eq!(
            Format::negotiate(Some("application/openmetrics-text")),
            Format::OpenMetrics
        );
        for classic in [
            None,
            Some("*/*"),
            Some("text/plain"),
            Some("text/plain;version=0.0.4"),
            Some("application/json"),
            Some(""),
            Some("text/plain, application/openmetrics-text;q=0.5"),
            Some("application/openmetrics-text;q=0"),
            Some(";;;,,=,q=;"),
        ] {
            assert_eq!(Format::negotiate(classic), Format::Classic, "{classic:?}");
        }
    }

    #[test]
    fn converts_names_types_units_help_and_eof() {
        let om = "# HELP p_node The node.\n# TYPE p_node info\np_node_info{node=\"a\"} 1\n\
                  # HELP p_up Uptime \\\"since\\\" start\\\\.\n# TYPE p_up gauge\n# UNIT p_up seconds\np_up 3\n\
                  # HELP p_hits Hits.\n# TYPE p_hits counter\np_hits_total{b=\"x\\\"y\"} 7\n# EOF\n";
        let want = "# HELP p_node_info The node.\n# TYPE p_node_info gauge\np_node_info{node=\"a\"} 1\n\
                    # HELP p_up Uptime \"since\" start\\\\.\n# TYPE p_up gauge\np_up 3\n\
                    # HELP p_hits_total Hits.\n# TYPE p_hits_total counter\np_hits_total{b=\"x\\\"y\"} 7\n";
        assert_eq!(to_classic(om), want);
    }
}
