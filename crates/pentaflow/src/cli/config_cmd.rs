//! `pentaflow config push|commit|show` and `pentaflow node drain|enable`: operator actions
//! on an array through one node's admin API (its management address), authenticated with
//! the array's admin token (`--token-file`, or env `PENTAFLOW_ADMIN_TOKEN`).
//!
//! `push` validates the file here first, then hands it to the node, which pushes it to every
//! node of the array (each validates it); `commit` makes it active everywhere with a new
//! version — retried while nodes are still acknowledging the push. Must not: talk to the
//! cluster directly; the node's admin API is the only entry point.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::{Args, Subcommand};

use super::cluster_status::{exchange, fetch};

/// How long `commit` retries while the push is still being acknowledged: the cluster's own
/// push deadline, with a margin.
const COMMIT_PATIENCE: Duration = Duration::from_secs(3);
/// Pause between commit attempts.
const COMMIT_RETRY: Duration = Duration::from_millis(100);
/// `node drain --wait` reads the node's status this often (it changes every 100 ms).
const DRAIN_POLL: Duration = Duration::from_millis(200);

/// Where and how to reach a node's admin API.
#[derive(Debug, Args)]
pub(crate) struct Target {
    /// The node's admin address (its management address), e.g. 10.0.0.11:9090.
    #[arg(long, default_value = "127.0.0.1:9090")]
    to: SocketAddr,
    /// File holding the array's admin token (`[array] admin_token`); or env
    /// PENTAFLOW_ADMIN_TOKEN.
    #[arg(long)]
    token_file: Option<PathBuf>,
}

/// The `config` verbs.
#[derive(Debug, Subcommand)]
pub(crate) enum ConfigCommand {
    /// Push a configuration file to every node of the array (phase one: each validates it).
    Push {
        /// The TOML file.
        file: PathBuf,
        #[command(flatten)]
        target: Target,
    },
    /// Make a pushed configuration active on every node (phase two), with a new version.
    Commit {
        /// The proposal printed by `push` (default: the last one pushed through that node).
        #[arg(long)]
        proposal: Option<u64>,
        #[command(flatten)]
        target: Target,
    },
    /// Print the active configuration version on every node.
    Show {
        #[command(flatten)]
        target: Target,
    },
}

/// The `node` verbs.
#[derive(Debug, Subcommand)]
pub(crate) enum NodeCommand {
    /// Drain a node: it keeps its connections but gets no new buckets.
    Drain {
        #[command(flatten)]
        target: Target,
        /// Then wait until the node has no live client connection left (its buckets are
        /// idle: safe to stop), printing the count as it falls; exit 1 if this long passes.
        #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
        wait: Option<Duration>,
    },
    /// Give a drained node new buckets again.
    Enable {
        #[command(flatten)]
        target: Target,
    },
}

/// The admin token from `--token-file`, else env `PENTAFLOW_ADMIN_TOKEN`, else none (a node
/// without a token serves its pages to anyone on its management address).
pub(crate) fn optional_token(token_file: Option<&Path>) -> anyhow::Result<Option<String>> {
    let token = match token_file {
        Some(path) => Some(read_token(path)?),
        None => std::env::var("PENTAFLOW_ADMIN_TOKEN").ok(),
    };
    if token.as_deref() == Some("") {
        bail!("the admin token is empty");
    }
    Ok(token)
}

impl Target {
    fn token(&self) -> anyhow::Result<String> {
        optional_token(self.token_file.as_deref())?
            .context("no admin token: pass --token-file or set PENTAFLOW_ADMIN_TOKEN")
    }

    /// POSTs to `path`; the JSON answer, or the node's refusal as the error.
    fn post(&self, path: &str, body: &[u8]) -> anyhow::Result<serde_json::Value> {
        let token = self.token()?;
        let (code, answer) = exchange(self.to, "POST", path, Some(&token), body)?;
        if code != 200 {
            bail!(Refused {
                code,
                message: answer.trim().to_owned()
            });
        }
        serde_json::from_str(&answer).with_context(|| format!("{} sent no JSON", self.to))
    }
}

/// A node's refusal of an action.
#[derive(Debug, thiserror::Error)]
#[error("refused (HTTP {code}): {message}")]
struct Refused {
    code: u16,
    message: String,
}

/// A token file minus one trailing line break (as the config reads secrets).
fn read_token(path: &Path) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the admin token from {}", path.display()))?;
    let text = text.strip_suffix('\n').unwrap_or(&text);
    Ok(text.strip_suffix('\r').unwrap_or(text).to_owned())
}

/// Runs one `config` verb.
pub(crate) fn run(command: ConfigCommand) -> anyhow::Result<ExitCode> {
    match command {
        ConfigCommand::Push { file, target } => {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("cannot read {}", file.display()))?;
            // Refuse here what every node would refuse anyway, with file, line and key.
            pentaflow_config::parse(&text, pentaflow_config::Source::File(file.clone()))
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            let answer = target.post("/cluster/config", text.as_bytes())?;
            let proposal = answer["proposal"]
                .as_u64()
                .context("no proposal in the answer")?;
            println!(
                "pushed {} as proposal {proposal}; make it active with:",
                file.display()
            );
            println!(
                "  pentaflow config commit --to {} --proposal {proposal}",
                target.to
            );
            Ok(ExitCode::SUCCESS)
        }
        ConfigCommand::Commit { proposal, target } => {
            let path = proposal.map_or_else(
                || "/cluster/commit".to_owned(),
                |p| format!("/cluster/commit?proposal={p}"),
            );
            let started = Instant::now();
            let answer = loop {
                match target.post(&path, b"") {
                    Ok(answer) => break answer,
                    // Some node has not acknowledged the push yet: it may in a moment.
                    Err(e)
                        if e.downcast_ref::<Refused>()
                            .is_some_and(|r| r.message.contains("not acked"))
                            && started.elapsed() < COMMIT_PATIENCE =>
                    {
                        std::thread::sleep(COMMIT_RETRY);
                    }
                    Err(e) => return Err(e),
                }
            };
            println!(
                "proposal {} committed: configuration version {} is active on every node",
                answer["proposal"], answer["version"]
            );
            Ok(ExitCode::SUCCESS)
        }
        ConfigCommand::Show { target } => {
            let to = target.to;
            let doc = fetch(to, optional_token(target.token_file.as_deref())?.as_deref())?;
            if doc.is_null() {
                bail!("{to} is not part of an array cluster");
            }
            println!("  node  address          alive  config version");
            for n in doc["nodes"].as_array().into_iter().flatten() {
                let version = n["config_version"]
                    .as_u64()
                    .map_or_else(|| "-".to_owned(), |v| v.to_string());
                println!(
                    "  {:<5} {:<16} {:<6} {version}",
                    n["id"].to_string(),
                    n["address"].as_str().unwrap_or("-"),
                    n["alive"].to_string()
                );
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Runs one `node` verb.
pub(crate) fn run_node(command: NodeCommand) -> anyhow::Result<ExitCode> {
    let (target, path, what, wait) = match &command {
        NodeCommand::Drain { target, wait } => {
            (target, "/cluster/drain", "draining: no new buckets", *wait)
        }
        NodeCommand::Enable { target } => {
            (target, "/cluster/enable", "enabled: gets new buckets", None)
        }
    };
    let answer = target.post(path, b"")?;
    println!("node {} {what}", answer["node"]);
    match wait {
        Some(limit) => wait_drained(target, limit),
        None => Ok(ExitCode::SUCCESS),
    }
}

/// Polls the node's own row of `GET /cluster` until its state is `drained`.
fn wait_drained(target: &Target, limit: Duration) -> anyhow::Result<ExitCode> {
    let start = Instant::now();
    let mut last = None;
    let token = target.token()?;
    loop {
        let doc = fetch(target.to, Some(&token))?;
        let me = doc["nodes"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|n| n["self"] == true)
            .cloned()
            .unwrap_or_default();
        let live = me["live_buckets"].as_u64();
        if me["state"] == "drained" {
            println!(
                "node {} drained after {:.1} s: no live connection left, safe to stop",
                me["id"],
                start.elapsed().as_secs_f64()
            );
            return Ok(ExitCode::SUCCESS);
        }
        if live != last {
            let live = live.map_or_else(|| "?".to_owned(), |n| n.to_string());
            println!("  {live} buckets with live connections");
            last = me["live_buckets"].as_u64();
        }
        if start.elapsed() >= limit {
            eprintln!(
                "pentaflow: node {} still has live connections after {}",
                me["id"],
                humantime::format_duration(limit)
            );
            return Ok(ExitCode::from(1));
        }
        std::thread::sleep(DRAIN_POLL);
    }
}
