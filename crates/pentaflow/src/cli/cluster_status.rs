//! `pentaflow status --cluster`: a node's `GET /cluster` document (built by
//! `pentaflow_node::cluster_document`), fetched through admin's bounded client and printed as
//! terminal tables; and [`exchange`], the one admin exchange every command uses.
//!
//! Tables (seed 002): the Node Status Table (Fig. 5: every node with its role, state, load,
//! connections and hits, and how old each row is — this node's own row has age 0), the
//! bucket-table summary (Fig. 4: buckets per node, unassigned, version) and, from
//! [`super::cluster_summary`], the Summary Web Server Status Table (Fig. 8). Must not:
//! compute anything the cluster does not report, nor trust a remote node's text.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::process::ExitCode;

use anyhow::{bail, Context};
use serde_json::Value;

use super::cluster_summary;

/// One exchange with a node's admin API: `(status, body)`. The commands that call it are
/// synchronous (and `lab` runs them inside a node's network namespace, on this thread), so the
/// exchange runs on a current-thread runtime of its own; admin's client bounds its time and
/// the size of the answer.
pub(crate) fn exchange(
    admin: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: &[u8],
) -> anyhow::Result<(u16, String)> {
    let method = http::Method::from_bytes(method.as_bytes())
        .with_context(|| format!("{method:?} is not an HTTP method"))?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start a runtime for the admin client")?;
    let body = bytes::Bytes::copy_from_slice(body);
    let (status, answer) = runtime
        .block_on(pentaflow_admin::exchange(admin, method, path, token, body))
        .with_context(|| format!("cannot talk to the admin API at {admin}"))?;
    Ok((
        status.as_u16(),
        String::from_utf8_lossy(&answer).into_owned(),
    ))
}

/// The `/cluster` document of a node.
pub(crate) fn fetch(admin: SocketAddr, token: Option<&str>) -> anyhow::Result<Value> {
    let (code, body) = exchange(admin, "GET", "/cluster", token, b"")?;
    if code != 200 {
        bail!("{admin} answered HTTP {code}: {}", body.trim());
    }
    serde_json::from_str(&body).with_context(|| format!("{admin} sent no JSON"))
}

/// `pentaflow status --cluster`.
pub(crate) fn run(admin: SocketAddr, json: bool, token: Option<&str>) -> anyhow::Result<ExitCode> {
    let doc = fetch(admin, token)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&doc)?);
    } else if doc.is_null() {
        println!("{admin} is not part of an array cluster");
    } else {
        print!("{}", render(&doc));
    }
    Ok(ExitCode::SUCCESS)
}

/// Terminal tables of a `/cluster` document.
pub(crate) fn render(doc: &Value) -> String {
    let text = |v: &Value| match v {
        Value::Null => "-".to_owned(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let mut out = format!(
        "node {} ({}), scheduler {}, accepting new buckets: {}, config version {}\n\n",
        text(&doc["node"]),
        text(&doc["role"]),
        text(&doc["scheduler"]),
        text(&doc["accepting_new"]),
        text(&doc["config_version"]),
    );
    let q = &doc["quorum"];
    if !q.is_null() {
        let verdict = if q["quorate"].as_bool() == Some(true) {
            "quorate"
        } else {
            "NO QUORUM: this node will neither take nor keep the VIP"
        };
        let _ = writeln!(
            out,
            "quorum: hears {} of the {} needed nodes ({verdict})\n",
            text(&q["heard"]),
            text(&q["needed"]),
        );
    }
    out.push_str("Node Status Table\n");
    out.push_str(
        "  id  address          role       state         prio  weight  heard   conns  hits      live-bk  buckets  table  config  status-age\n",
    );
    for n in doc["nodes"].as_array().into_iter().flatten() {
        let ms = |v: &Value| {
            v.as_u64()
                .map_or_else(|| "-".to_owned(), |m| format!("{m}ms"))
        };
        let _ = writeln!(
            out,
            "  {:<3} {:<16} {:<10} {:<13} {:<5} {:<7} {:<7} {:<6} {:<9} {:<8} {:<8} {:<6} {:<7} {}",
            text(&n["id"]),
            text(&n["address"]),
            text(&n["role"]),
            text(&n["state"]),
            text(&n["priority"]),
            text(&n["weight"]),
            ms(&n["heard_ms_ago"]),
            text(&n["open_connections"]),
            text(&n["hits"]),
            text(&n["live_buckets"]),
            text(&n["buckets"]),
            text(&n["table_version"]),
            text(&n["config_version"]),
            ms(&n["status_age_ms"]),
        );
    }
    let b = &doc["buckets"];
    let _ = writeln!(
        out,
        "\nBucket table: {} buckets, version {}, {} assigned, {} unassigned; by node {}",
        text(&b["size"]),
        text(&b["version"]),
        text(&b["assigned"]),
        text(&b["unassigned"]),
        text(&b["by_node"]),
    );
    let _ = writeln!(
        out,
        "Status poll: last sweep {} ago",
        doc["status_sweep_ms_ago"]
            .as_u64()
            .map_or_else(|| "-".to_owned(), |m| format!("{m}ms"))
    );
    let p = &doc["data_plane"];
    if !p.is_null() {
        let _ = writeln!(
            out,
            "Scheduler data plane here: {}, {} failure(s)",
            text(&p["state"]),
            text(&p["failures"]),
        );
        if !p["kind"].is_null() {
            let _ = writeln!(out, "  {}: {}", text(&p["kind"]), text(&p["reason"]));
        }
        let f = &p["last_failure"];
        if !f.is_null() {
            let when = if f["at_start"].as_bool() == Some(true) {
                "could not start"
            } else {
                "died"
            };
            let _ = writeln!(
                out,
                "  last: {when} {} ago: {}",
                f["ms_ago"]
                    .as_u64()
                    .map_or_else(|| "-".to_owned(), |m| format!("{m}ms")),
                text(&f["cause"]),
            );
        }
    }
    cluster_summary::render(doc, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// The golden document of `pentaflow_node::cluster_document`'s tests, as tables.
    #[test]
    fn the_document_renders_as_the_node_and_bucket_tables() {
        let doc: Value = serde_json::from_str(include_str!(
            "../../../node/tests/fixtures/cluster-document.json"
        ))
        .unwrap();
        let table = render(&doc);
        assert!(table.contains("Summary Web Server Status Table"), "{table}");
        assert!(table.contains("Node Status Table"), "{table}");
        assert!(table.contains("10.77.1.12"), "{table}");
        assert!(table.contains("65533 unassigned"), "{table}");
        assert!(
            table.contains("quorum: hears 2 of the 2 needed nodes (quorate)"),
            "{table}"
        );
    }

    #[test]
    fn a_failed_data_plane_is_shown_with_its_cause() {
        let doc = json!({ "nodes": [], "buckets": {}, "data_plane": {
            "state": "down", "failures": 2,
            "kind": "xdp_generic", "reason": "data_plane = \"xdp\": veth",
            "last_failure": {
                "at_start": true, "ms_ago": 1200,
                "cause": "scheduler set-up: could not run `nft -f -`: is `nft` installed?"
            }
        }});
        let table = render(&doc);
        assert!(
            table.contains("  xdp_generic: data_plane = \"xdp\": veth"),
            "{table}"
        );
        assert!(
            table.contains("Scheduler data plane here: down, 2 failure(s)"),
            "{table}"
        );
        assert!(
            table.contains("could not start") && table.contains("is `nft` installed?"),
            "{table}"
        );
    }
}
