//! The operator's dashboard: the page at `/` of the admin API and the two documents only it
//! reads (`/ui/history`, `/ui/buckets`).
//!
//! Owns: the page's files, embedded in the binary with `include_str!` (no network, no build
//! step: a hand-written page whose sparklines and bucket picture are plain SVG, so no charting
//! library is needed), and the bucket picture's cells, computed from the table snapshot.
//!
//! Must not: hold data of its own (the page reads `/status`, `/cdn`, `/cluster` like any client,
//! with the same token rule, and the history from [`crate::timeline`]), or serve anything that
//! needs the token without it: the page and its files carry no data, so they are open and the
//! page asks for the token when a data document answers 401.

use pentaflow_balance::BucketSnapshot;
use serde_json::{json, Value};

/// The most cells the bucket picture draws; a bigger table is shown with several buckets per
/// cell (a 16 M bucket table must not become a 16 M element page).
pub(crate) const MAX_CELLS: usize = 4096;

/// Headers of the page and its files. The page holds the admin token, so: scripts, styles and
/// requests only from this node (an injected back-end name can never run as script, and
/// nothing can send the token elsewhere), no framing (no click-jacking of the operator), and
/// no content-type guessing.
pub(crate) const SECURITY_HEADERS: &[(http::header::HeaderName, &str)] = &[
    (
        http::header::CONTENT_SECURITY_POLICY,
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; \
         img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    ),
    (http::header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
    (http::header::X_FRAME_OPTIONS, "DENY"),
    (http::header::REFERRER_POLICY, "no-referrer"),
];

/// One embedded file of the page.
pub(crate) struct Asset {
    /// Its `Content-Type`.
    pub(crate) content_type: &'static str,
    /// Its bytes.
    pub(crate) body: &'static str,
}

const INDEX: Asset = Asset {
    content_type: "text/html; charset=utf-8",
    body: include_str!("dashboard/index.html"),
};
const SCRIPT: Asset = Asset {
    content_type: "text/javascript; charset=utf-8",
    body: include_str!("dashboard/app.js"),
};
const STYLE: Asset = Asset {
    content_type: "text/css; charset=utf-8",
    body: include_str!("dashboard/style.css"),
};

/// The embedded file served at `path`, if any.
pub(crate) fn asset(path: &str) -> Option<&'static Asset> {
    match path {
        "/" | "/ui" | "/ui/" => Some(&INDEX),
        "/ui/app.js" => Some(&SCRIPT),
        "/ui/style.css" => Some(&STYLE),
        _ => None,
    }
}

/// The bucket picture: at most [`MAX_CELLS`] cells, each covering `per_cell` consecutive
/// buckets, with the node most of its assigned buckets go to (`null` when all are idle) and
/// how many of them are assigned (the page fades a cell by that share). `null` outside an array.
pub(crate) fn bucket_cells(table: Option<&BucketSnapshot>) -> Value {
    let Some(table) = table else {
        return Value::Null;
    };
    let size = table.size.max(1);
    let per_cell = size.div_ceil(MAX_CELLS).max(1);
    let cells = size.div_ceil(per_cell);
    // Per cell: (node, count) pairs; a cell has few distinct nodes, so a small vector is enough.
    let mut counts: Vec<Vec<(u16, u32)>> = vec![Vec::new(); cells];
    for &(bucket, node) in &table.assigned {
        let Some(cell) = counts.get_mut(bucket as usize / per_cell) else {
            continue;
        };
        match cell.iter_mut().find(|(n, _)| *n == node.0) {
            Some((_, c)) => *c += 1,
            None => cell.push((node.0, 1)),
        }
    }
    let mut nodes = Vec::with_capacity(cells);
    let mut assigned = Vec::with_capacity(cells);
    for cell in &counts {
        let top = cell.iter().max_by_key(|(n, c)| (*c, std::cmp::Reverse(*n)));
        nodes.push(top.map(|(n, _)| *n));
        assigned.push(cell.iter().map(|(_, c)| *c).sum::<u32>());
    }
    json!({
        "size": table.size,
        "version": table.version,
        "per_cell": per_cell,
        "node": nodes,
        "assigned": assigned,
    })
}

#[cfg(test)]
mod tests {
    use pentaflow_balance::NodeId;

    use super::*;

    #[test]
    fn every_path_of_the_page_is_embedded() {
        assert!(asset("/").is_some_and(|a| a.body.contains("/ui/app.js")));
        assert!(asset("/ui/app.js").is_some_and(|a| a.body.contains("/ui/history")));
        assert!(asset("/ui/style.css").is_some());
        assert!(asset("/ui/missing.js").is_none());
        // No network at run time: nothing is loaded from another host.
        for a in [&INDEX, &SCRIPT, &STYLE] {
            // The SVG namespace is a name, not something fetched.
            let body = a.body.replace("http://www.w3.org/2000/svg", "");
            assert!(!body.contains("https://"), "external URL in an asset");
            assert!(!body.contains("http://"), "external URL in an asset");
        }
    }

    #[test]
    fn small_tables_get_one_cell_per_bucket_and_idle_ones_are_null() {
        let table = BucketSnapshot {
            size: 8,
            version: 3,
            assigned: vec![(0, NodeId(1)), (1, NodeId(2)), (7, NodeId(2))],
        };
        let doc = bucket_cells(Some(&table));
        assert_eq!(doc["per_cell"], 1);
        assert_eq!(doc["node"], json!([1, 2, null, null, null, null, null, 2]));
        assert_eq!(doc["assigned"], json!([1, 1, 0, 0, 0, 0, 0, 1]));
        assert_eq!(bucket_cells(None), Value::Null);
    }

    #[test]
    fn big_tables_are_grouped_by_majority() {
        let size = MAX_CELLS * 4;
        let mut assigned: Vec<(u32, NodeId)> = (0..4).map(|b| (b, NodeId(1))).collect();
        assigned[3].1 = NodeId(2);
        // Out of range: ignored, never a panic.
        assigned.push((u32::MAX, NodeId(3)));
        let table = BucketSnapshot {
            size,
            version: 1,
            assigned,
        };
        let doc = bucket_cells(Some(&table));
        assert_eq!(doc["per_cell"], 4);
        assert_eq!(doc["node"].as_array().unwrap().len(), MAX_CELLS);
        assert_eq!(doc["node"][0], 1);
        assert_eq!(doc["assigned"][0], 4);
        assert_eq!(doc["node"][1], Value::Null);
    }
}
