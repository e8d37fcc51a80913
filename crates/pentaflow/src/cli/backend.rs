//! The runtime back-end API: `pentaflow backend add|remove|drain|maintenance|enable|weight`
//! (the client) and [`BackendApi`], what `serve` runs for `POST /backend/...` (the node).
//!
//! A change is an edit of the configuration file, never a second state beside it: the node
//! edits its file ([`pentaflow_config::edit`], comments kept), validates the result, applies
//! it through the proxy's reload (the path SIGHUP takes: open connections and the stickiness
//! of every other back-end are kept) and only then renames the new file over the old one, so
//! a restart or a SIGHUP sees exactly what runs. Must not: change an array node's file alone
//! (every node must agree: that is `pentaflow config push`).

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Mutex;

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use pentaflow_admin::ControlError;
use pentaflow_config::edit::{self, BackendChange, EditError};
use pentaflow_config::{BackendAdminState, Source};
use pentaflow_proxy::Proxy;
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

/// The node's side of `POST /backend/...`.
pub(crate) struct BackendApi {
    /// The file the node runs from; `None` (the demo) refuses every change.
    file: Option<PathBuf>,
    /// An array node refuses: its back-ends change through the array's push and commit.
    array: bool,
    proxy: Proxy,
    /// One change at a time: read, edit, apply and rename are one step.
    busy: Mutex<()>,
}

impl BackendApi {
    pub(crate) fn new(file: Option<PathBuf>, array: bool, proxy: Proxy) -> Self {
        BackendApi {
            file,
            array,
            proxy,
            busy: Mutex::new(()),
        }
    }

    /// Applies `change` (on the admin API's blocking pool): the answer, or a 4xx refusal
    /// after which nothing changed, neither the running node nor its file.
    pub(crate) fn apply(&self, change: &BackendChange) -> Result<Value, ControlError> {
        if self.array {
            return Err(ControlError::new(
                409,
                "array nodes: use pentaflow config push (every node must agree on its back-ends)",
            ));
        }
        let Some(file) = &self.file else {
            return Err(ControlError::new(
                409,
                "this node runs without a configuration file: nothing to change",
            ));
        };
        let _busy = self
            .busy
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // Write next to the real file, not a symlink's own directory: the rename must replace
        // the file the node was started with.
        let file = std::fs::canonicalize(file).map_err(|e| io_refusal(file, &e))?;
        let text = std::fs::read_to_string(&file).map_err(|e| io_refusal(&file, &e))?;
        let (new_text, config) =
            edit::apply(&text, Source::File(file.clone()), change).map_err(edit_refusal)?;
        let temp = write_temp(&file, &new_text).map_err(|e| io_refusal(&file, &e))?;
        let applied = tokio::runtime::Handle::current().block_on(self.proxy.reload(&config));
        if let Err(e) = applied {
            let _ = std::fs::remove_file(&temp);
            return Err(ControlError::new(
                409,
                format!("the change was refused by the proxy; nothing changed: {e}"),
            ));
        }
        if let Err(e) = std::fs::rename(&temp, &file) {
            let _ = std::fs::remove_file(&temp);
            // Running, but not on disk: say so loudly, a restart would lose it.
            tracing::error!(file = %file.display(), error = %e, "back-end change applied but not written");
            return Err(ControlError::new(
                500,
                format!(
                    "applied, but {} could not be replaced ({e}): a restart would undo it",
                    file.display()
                ),
            ));
        }
        sync_dir(&file);
        let message = describe(change, &file);
        tracing::info!(file = %file.display(), "{message}");
        let service = config.services.iter().find(|s| s.name == change.service());
        let backends: Vec<Value> = service
            .map(|s| {
                s.backends
                    .iter()
                    .map(|b| {
                        json!({
                            "name": b.name,
                            "address": b.address.to_string(),
                            "weight": b.weight,
                            "state": b.state.as_str(),
                        })
                    })
                    .collect()
            })
            .unwrap_or_default();
        Ok(json!({
            "message": message,
            "service": change.service(),
            "backends": backends,
            "file": file.display().to_string(),
        }))
    }
}

/// What was done, in one line for the operator and the log.
fn describe(change: &BackendChange, file: &Path) -> String {
    let done = match change {
        BackendChange::Add {
            service,
            name,
            address,
            ..
        } => format!("{service}/{name}: added at {address}"),
        BackendChange::Remove { service, name } => format!("{service}/{name}: removed"),
        BackendChange::Weight {
            service,
            name,
            weight,
        } => format!("{service}/{name}: weight {weight}"),
        BackendChange::State {
            service,
            name,
            state,
        } => format!(
            "{service}/{name}: {}",
            match state {
                BackendAdminState::Ready => "ready",
                BackendAdminState::Drain => "draining",
                BackendAdminState::Maintenance => "in maintenance",
            }
        ),
    };
    format!("{done} (written to {})", file.display())
}

/// The HTTP refusal of an edit.
fn edit_refusal(e: EditError) -> ControlError {
    let status = match &e {
        EditError::UnknownService(_) | EditError::UnknownBackend { .. } => 404,
        EditError::DuplicateName { .. } | EditError::DuplicateAddress { .. } => 409,
        EditError::BadAddress(_) | EditError::WeightOutOfRange(_) => 400,
        EditError::Invalid(_) => 422,
        _ => 409,
    };
    ControlError::new(status, e.to_string())
}

fn io_refusal(file: &Path, e: &std::io::Error) -> ControlError {
    ControlError::new(
        409,
        format!("cannot update {}: {e}; nothing changed", file.display()),
    )
}

/// Writes `text` to a new file beside `file` with the same permissions (it may hold secrets),
/// flushed to disk, so the rename that follows is atomic and durable.
fn write_temp(file: &Path, text: &str) -> std::io::Result<PathBuf> {
    let name = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temp = file.with_file_name(format!(".{name}.pentaflow-{}.tmp", std::process::id()));
    let written = (|| {
        let mut f = std::fs::File::create(&temp)?;
        f.set_permissions(std::fs::metadata(file)?.permissions())?;
        f.write_all(text.as_bytes())?;
        f.sync_all()
    })();
    match written {
        Ok(()) => Ok(temp),
        Err(e) => {
            let _ = std::fs::remove_file(&temp);
            Err(e)
        }
    }
}

/// Makes the rename itself durable (best effort: some file systems refuse to sync a
/// directory, and the file is already replaced).
fn sync_dir(file: &Path) {
    if let Some(dir) = file.parent() {
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    const TEXT: &str = "[[service]]\nname = \"web\"\nlisten = [\"127.0.0.1:0\"]\n\
        [[service.backend]]\nname = \"a\"\naddress = \"127.0.0.1:9\"\n";

    fn drain_a() -> BackendChange {
        BackendChange::State {
            service: "web".into(),
            name: "a".into(),
            state: BackendAdminState::Drain,
        }
    }

    async fn proxy() -> Proxy {
        let config = pentaflow_config::parse(TEXT, Source::Inline("test".into())).unwrap();
        Proxy::start(&config).await.unwrap()
    }

    /// An array node must not change its back-ends alone; the demo has no file to change.
    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn array_nodes_and_fileless_nodes_refuse() {
        let dir =
            std::env::temp_dir().join(format!("pentaflow-backend-unit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("node.toml");
        std::fs::write(&file, TEXT).unwrap();
        let array = BackendApi::new(Some(file.clone()), true, proxy().await);
        let none = BackendApi::new(None, false, proxy().await);
        let (array, none) =
            tokio::task::spawn_blocking(move || (array.apply(&drain_a()), none.apply(&drain_a())))
                .await
                .unwrap();
        let array = array.unwrap_err();
        assert_eq!(array.status, 409);
        assert!(
            array.message.contains("use pentaflow config push"),
            "{}",
            array.message
        );
        assert_eq!(none.unwrap_err().status, 409);
        assert_eq!(
            std::fs::read_to_string(&file).unwrap(),
            TEXT,
            "the file was changed"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A plain node applies the change and writes it, leaving no temporary file.
    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn a_plain_node_writes_the_change() {
        let dir =
            std::env::temp_dir().join(format!("pentaflow-backend-unit2-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("node.toml");
        std::fs::write(&file, TEXT).unwrap();
        let api = BackendApi::new(Some(file.clone()), false, proxy().await);
        let answer = tokio::task::spawn_blocking(move || api.apply(&drain_a()))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(answer["backends"][0]["state"], "drain");
        let text = std::fs::read_to_string(&file).unwrap();
        assert!(text.contains("state = \"drain\""), "{text}");
        assert_eq!(
            std::fs::read_dir(&dir).unwrap().count(),
            1,
            "a temporary file was left"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
