//! `pentaflow status`: the status document as aligned terminal tables.
//!
//! Owns: the column layout of the Web Server Status Table (seed 002 Fig. 7) and of the node
//! metrics. Must not: do I/O; it returns a `String` the binary prints.
//!
//! A column aligner is a few lines, so no table crate: the output is a fixed, golden-tested
//! layout without borders, colours or terminal-width probing, which keeps it greppable.

use std::time::Duration;

use pentaflow_balance::{BackendState, WebServerStatus};

use crate::model::{DiscoveryStatus, NodeMetric, StatusDocument};

/// Space between columns.
const GAP: &str = "  ";
/// Stands in for control characters in names read from a remote node, so a hostile or broken
/// document cannot move the cursor or recolour the operator's terminal.
const REPLACEMENT: char = '?';

/// The status document as terminal tables (aligned columns: service, back-end, address, state,
/// weight, avg resp ms, hits, open conns, active, failures, session groups; then the node
/// metrics). Text columns are left-aligned, numbers right-aligned; lines have no trailing
/// spaces and the result ends with a newline.
pub fn render_table(doc: &StatusDocument) -> String {
    let uptime = humantime::format_duration(Duration::from_secs(doc.uptime_secs));
    let mut out = format!("node    {}\nuptime  {uptime}\n\n", clean(&doc.node));
    backends_table(&doc.web_servers).render(&mut out, "(no back-ends)");
    out.push('\n');
    metrics_table(&doc.metrics).render(&mut out, "(no node metrics)");
    if !doc.discovery.is_empty() {
        out.push('\n');
        discovery_table(&doc.discovery).render(&mut out, "");
    }
    out
}

/// Back-ends named by DNS: one row per name, its addresses, and whether it resolves now.
fn discovery_table(rows: &[DiscoveryStatus]) -> Table {
    use Align::{Left, Right};
    let mut table = Table::new(&[
        ("SERVICE", Left),
        ("DNS BACK-END", Left),
        ("NAME", Left),
        ("ADDRESSES", Left),
        ("DRAINING", Left),
        ("LAST OK", Left),
        ("FAILURES", Right),
        ("LAST ERROR", Left),
    ]);
    let list = |l: &[String]| {
        if l.is_empty() {
            "-".to_owned()
        } else {
            clean(&l.join(","))
        }
    };
    for row in rows {
        table.push(vec![
            clean(&row.service),
            clean(&row.name),
            clean(&row.target),
            list(&row.addresses),
            list(&row.draining),
            row.last_success_unix
                .map_or_else(|| "never".to_owned(), |t| format!("@{t}")),
            row.consecutive_failures.to_string(),
            row.last_error
                .as_deref()
                .map_or_else(|| "-".to_owned(), clean),
        ]);
    }
    table
}

fn backends_table(rows: &[WebServerStatus]) -> Table {
    use Align::{Left, Right};
    let mut table = Table::new(&[
        ("SERVICE", Left),
        ("BACK-END", Left),
        ("ADDRESS", Left),
        ("STATE", Left),
        ("WEIGHT", Right),
        ("AVG RESP MS", Right),
        ("HITS", Right),
        ("OPEN CONNS", Right),
        ("ACTIVE", Right),
        ("FAILURES", Right),
        ("SESSION GROUPS", Right),
    ]);
    for row in rows {
        let state = match row.state {
            BackendState::Up => "up",
            BackendState::Down => "DOWN",
        };
        table.push(vec![
            clean(&row.service),
            clean(&row.name),
            clean(&row.address),
            state.to_owned(),
            row.weight.to_string(),
            format!("{:.1}", row.avg_response_ms),
            row.hits.to_string(),
            row.open_connections.to_string(),
            row.active_requests.to_string(),
            row.failures.to_string(),
            row.session_groups.to_string(),
        ]);
    }
    table
}

fn metrics_table(metrics: &[NodeMetric]) -> Table {
    let mut table = Table::new(&[
        ("METRIC", Align::Left),
        ("KIND", Align::Left),
        ("VALUE", Align::Right),
    ]);
    for metric in metrics {
        let mut name = clean(&metric.name);
        if !metric.labels.is_empty() {
            let labels: Vec<String> = metric
                .labels
                .iter()
                .map(|(k, v)| format!("{}={:?}", clean(k), clean(v)))
                .collect();
            name = format!("{name}{{{}}}", labels.join(","));
        }
        table.push(vec![
            name,
            metric.kind.as_str().to_owned(),
            metric.value.to_string(),
        ]);
    }
    table
}

/// Replaces control characters (escape sequences, newlines) with [`REPLACEMENT`].
fn clean(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { REPLACEMENT } else { c })
        .collect()
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Align {
    Left,
    Right,
}

/// Rows of cells under a header, rendered with every column as wide as its widest cell.
struct Table {
    headers: Vec<(&'static str, Align)>,
    rows: Vec<Vec<String>>,
}

impl Table {
    fn new(headers: &[(&'static str, Align)]) -> Self {
        Self {
            headers: headers.to_vec(),
            rows: Vec::new(),
        }
    }

    fn push(&mut self, row: Vec<String>) {
        debug_assert_eq!(row.len(), self.headers.len());
        self.rows.push(row);
    }

    fn render(&self, out: &mut String, when_empty: &str) {
        // Widths in characters: names are mostly ASCII, and counting chars rather than bytes
        // keeps non-ASCII names aligned in the common (non-wide) case.
        let mut widths: Vec<usize> = self
            .headers
            .iter()
            .map(|(h, _)| h.chars().count())
            .collect();
        for row in &self.rows {
            for (width, cell) in widths.iter_mut().zip(row) {
                *width = (*width).max(cell.chars().count());
            }
        }
        let header: Vec<&str> = self.headers.iter().map(|(h, _)| *h).collect();
        self.line(out, &widths, &header);
        if self.rows.is_empty() {
            out.push_str(when_empty);
            out.push('\n');
        }
        for row in &self.rows {
            let cells: Vec<&str> = row.iter().map(String::as_str).collect();
            self.line(out, &widths, &cells);
        }
    }

    fn line(&self, out: &mut String, widths: &[usize], cells: &[&str]) {
        let start = out.len();
        for (i, ((cell, width), (_, align))) in
            cells.iter().zip(widths).zip(&self.headers).enumerate()
        {
            if i > 0 {
                out.push_str(GAP);
            }
            let pad = width.saturating_sub(cell.chars().count());
            if *align == Align::Right {
                out.extend(std::iter::repeat_n(' ', pad));
            }
            out.push_str(cell);
            if *align == Align::Left {
                out.extend(std::iter::repeat_n(' ', pad));
            }
        }
        let end = out[start..].trim_end().len() + start;
        out.truncate(end);
        out.push('\n');
    }
}

#[cfg(test)]
mod tests;
