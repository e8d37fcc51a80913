//! `pentaflow backend add|remove|drain|maintenance|enable|weight`: the client of the runtime
//! back-end API (`POST /backend/...`, served by `pentaflow_node::backend_api`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use serde_json::{json, Value};

use super::cluster_status::exchange;
use super::config_cmd::optional_token;

/// Where and how to reach a node's admin API.
#[derive(Debug, Args)]
pub(crate) struct Target {
    /// The node's admin address, e.g. 127.0.0.1:9090.
    #[arg(long, default_value = "127.0.0.1:9090")]
    to: SocketAddr,
    /// File holding the node's admin token (`[node] admin_token`); or env
    /// PENTAFLOW_ADMIN_TOKEN.
    #[arg(long)]
    token_file: Option<PathBuf>,
}

/// Which back-end.
#[derive(Debug, Args)]
pub(crate) struct Which {
    /// The service's name.
    #[arg(long)]
    service: String,
    /// The back-end's name.
    #[arg(long)]
    name: String,
}

/// The `backend` verbs.
#[derive(Debug, Subcommand)]
pub(crate) enum BackendCommand {
    /// Add a back-end to a service (written to the node's file).
    Add {
        #[command(flatten)]
        which: Which,
        /// Its address, ip:port.
        #[arg(long)]
        address: String,
        /// Its weight, 1..=1000 (default 1).
        #[arg(long)]
        weight: Option<i64>,
        /// Start it drained or in maintenance (default ready).
        #[arg(long)]
        state: Option<String>,
        #[command(flatten)]
        target: Target,
    },
    /// Remove a back-end: clients that persisted to it move to the others.
    Remove {
        #[command(flatten)]
        which: Which,
        #[command(flatten)]
        target: Target,
    },
    /// Drain a back-end: no new clients or sessions; persistent ones stay until it is removed.
    Drain {
        #[command(flatten)]
        which: Which,
        #[command(flatten)]
        target: Target,
    },
    /// Put a back-end in maintenance: no traffic at all; persistent clients move.
    Maintenance {
        #[command(flatten)]
        which: Which,
        #[command(flatten)]
        target: Target,
    },
    /// Make a drained or maintained back-end ready again.
    Enable {
        #[command(flatten)]
        which: Which,
        #[command(flatten)]
        target: Target,
    },
    /// Set a back-end's weight, 1..=1000.
    Weight {
        #[command(flatten)]
        which: Which,
        /// The new weight.
        weight: i64,
        #[command(flatten)]
        target: Target,
    },
}

/// Runs one `backend` verb: one POST to the node, its answer printed.
pub(crate) fn run(command: BackendCommand) -> anyhow::Result<ExitCode> {
    let (verb, which, target, extra) = match command {
        BackendCommand::Add {
            which,
            address,
            weight,
            state,
            target,
        } => {
            let mut extra = json!({ "address": address });
            if let Some(w) = weight {
                extra["weight"] = json!(w);
            }
            if let Some(s) = state {
                extra["state"] = json!(s);
            }
            ("add", which, target, extra)
        }
        BackendCommand::Remove { which, target } => ("remove", which, target, json!({})),
        BackendCommand::Drain { which, target } => ("drain", which, target, json!({})),
        BackendCommand::Maintenance { which, target } => ("maintenance", which, target, json!({})),
        BackendCommand::Enable { which, target } => ("enable", which, target, json!({})),
        BackendCommand::Weight {
            which,
            weight,
            target,
        } => ("weight", which, target, json!({ "weight": weight })),
    };
    let mut body = json!({ "service": which.service, "name": which.name });
    if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
        body.extend(extra.clone());
    }
    let token = optional_token(target.token_file.as_deref())?
        .context("no admin token: pass --token-file or set PENTAFLOW_ADMIN_TOKEN")?;
    let path = format!("/backend/{verb}");
    let (code, answer) = exchange(
        target.to,
        "POST",
        &path,
        Some(&token),
        body.to_string().as_bytes(),
    )?;
    if code != 200 {
        bail!("refused (HTTP {code}): {}", answer.trim());
    }
    let answer: Value =
        serde_json::from_str(&answer).with_context(|| format!("{} sent no JSON", target.to))?;
    println!(
        "{}",
        answer["message"].as_str().unwrap_or("done").trim_end()
    );
    Ok(ExitCode::SUCCESS)
}
