//! The runtime back-end API on a node: what `POST /backend/...` does (add, remove, re-weight,
//! drain, maintenance, enable).
//!
//! A change is an edit of the configuration file, never a second state beside it: the node
//! edits its file ([`pentaflow_config::edit`], comments kept), validates the result, applies
//! it through the proxy's reload (the path SIGHUP takes: open connections and the stickiness
//! of every other back-end are kept) and only then renames the new file over the old one, so
//! a restart or a SIGHUP sees exactly what runs.
//!
//! On a node of an array with a cluster, the edited file goes through the array's two-phase
//! push and commit instead (as `pentaflow config push` + `config commit`): every node
//! validates it, and on commit every node applies it and writes it over its own file, so no
//! node changes its back-ends alone. Must not: change an array node's file by itself.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use pentaflow_admin::{ControlError, ControlRequest};
use pentaflow_config::edit::{self, BackendChange, EditError};
use pentaflow_config::{BackendAdminState, Config, Source};
use pentaflow_proxy::Proxy;
use serde_json::{json, Value};

use crate::ClusterAccess;

/// How long an array change waits for every alive node to ack its push before the commit is
/// given up (the nodes ack within a few heartbeats).
const COMMIT_PATIENCE: Duration = Duration::from_secs(3);
/// Between two commit attempts.
const COMMIT_RETRY: Duration = Duration::from_millis(100);

/// The node's side of `POST /backend/...`.
pub struct BackendApi {
    /// The file the node runs from; `None` (the demo) refuses every change.
    file: Option<PathBuf>,
    /// Where an array node's changes go: the array's push and commit.
    array: ArrayPath,
    proxy: Proxy,
    /// One change at a time: read, edit, apply and rename are one step.
    busy: Mutex<()>,
}

/// How a node's back-end changes reach the array it is part of.
pub enum ArrayPath {
    /// Not an array node: the change is applied here and written to the file.
    None,
    /// A node of an array without a cluster (static): every file is edited by hand, so a
    /// change through one node is refused.
    Static,
    /// A node of a clustered array: through the array's push and commit.
    Cluster(ClusterAccess),
}

impl BackendApi {
    /// The API of a node started from `file` (`None`: the demo, which refuses every change).
    pub fn new(file: Option<PathBuf>, array: ArrayPath, proxy: Proxy) -> Self {
        BackendApi {
            file,
            array,
            proxy,
            busy: Mutex::new(()),
        }
    }

    /// Applies `change` (on the admin API's blocking pool): the answer, or a 4xx refusal
    /// after which nothing changed, neither the running node nor its file.
    pub fn apply(&self, change: &BackendChange) -> Result<Value, ControlError> {
        if matches!(self.array, ArrayPath::Static) {
            return Err(ControlError::new(
                409,
                "a static array (no cluster key): change every node's file and reload each",
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
        if let ArrayPath::Cluster(access) = &self.array {
            return through_the_array(access, change, new_text, &config);
        }
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
        Ok(json!({
            "message": message,
            "service": change.service(),
            "backends": backends_of(&config, change.service()),
            "file": file.display().to_string(),
        }))
    }
}

/// An array node's change: pushed to every node (each validates it) and committed; every
/// node then applies it and writes it over its file (the cluster driver's commit path).
fn through_the_array(
    access: &ClusterAccess,
    change: &BackendChange,
    text: String,
    config: &Config,
) -> Result<Value, ControlError> {
    let pushed = crate::cluster_document::control(access, ControlRequest::PushConfig(text))?;
    let proposal = pushed["proposal"].as_u64();
    // Every alive node must have validated and acked the proposal first: that takes a
    // heartbeat or two.
    let started = Instant::now();
    let committed = loop {
        match crate::cluster_document::control(access, ControlRequest::CommitConfig { proposal }) {
            Err(e) if e.status == 503 && started.elapsed() < COMMIT_PATIENCE => {
                std::thread::sleep(COMMIT_RETRY);
            }
            answer => break answer?,
        }
    };
    let version = committed["version"].as_u64();
    let message = format!(
        "{} (pushed to the array and committed as version {})",
        describe_change(change),
        version.map_or_else(|| "?".to_owned(), |v| v.to_string())
    );
    tracing::info!("{message}");
    Ok(json!({
        "message": message,
        "service": change.service(),
        "backends": backends_of(config, change.service()),
        "proposal": proposal,
        "version": version,
    }))
}

/// The back-ends of `service` in `config`, as the answer lists them.
fn backends_of(config: &Config, service: &str) -> Vec<Value> {
    let service = config.services.iter().find(|s| s.name == service);
    service
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
        .unwrap_or_default()
}

/// What was done, in one line for the operator and the log.
fn describe(change: &BackendChange, file: &Path) -> String {
    format!(
        "{} (written to {})",
        describe_change(change),
        file.display()
    )
}

/// The change, in words.
fn describe_change(change: &BackendChange) -> String {
    match change {
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
    }
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

    /// A node of a static array must not change its back-ends alone; the demo has no file to
    /// change.
    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn array_nodes_and_fileless_nodes_refuse() {
        let dir =
            std::env::temp_dir().join(format!("pentaflow-backend-unit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("node.toml");
        std::fs::write(&file, TEXT).unwrap();
        let array = BackendApi::new(Some(file.clone()), ArrayPath::Static, proxy().await);
        let none = BackendApi::new(None, ArrayPath::None, proxy().await);
        let (array, none) =
            tokio::task::spawn_blocking(move || (array.apply(&drain_a()), none.apply(&drain_a())))
                .await
                .unwrap();
        let array = array.unwrap_err();
        assert_eq!(array.status, 409);
        assert!(array.message.contains("static array"), "{}", array.message);
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
        let api = BackendApi::new(Some(file.clone()), ArrayPath::None, proxy().await);
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
