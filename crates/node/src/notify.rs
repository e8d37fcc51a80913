//! `[array] notify`: the operator's script, run on every role change and array event, as
//! keepalived runs its `notify_master` / `notify_backup` scripts — to move a floating route,
//! page someone, or record the failover.
//!
//! Called as `SCRIPT EVENT NODE [DETAIL]` (NODE: this node's id), one call at a time, in the
//! order of the events, with `PENTAFLOW_VIP` and `PENTAFLOW_NODE_ID` in its environment:
//!
//! | EVENT | when | DETAIL |
//! |---|---|---|
//! | `scheduler` | this node took the VIP (its data plane is up) | — |
//! | `standby` | this node released the VIP | — |
//! | `fault` | this node's data plane could not start or died; it stepped down | — |
//! | `node-failed` | another node was failed (silent, restarted, or not answering polls) | its id |
//! | `node-joined` | another node was heard (first time or again) | its id |
//! | `config-committed` | a committed configuration became active here | its version |
//!
//! Owns: the queue of calls and the one task that runs them. Must not: block or slow the
//! control plane — a call that outlives `SCRIPT_TIMEOUT` (10 s) is killed, the queue is bounded
//! (`QUEUE`, 64; an event beyond it is dropped and logged), and the script's output is logged,
//! never interpreted.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::sync::mpsc;

/// A script still running after this long is killed: a notify hook that hangs must not hold
/// back the ones after it.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(10);

/// Events waiting for the script; a flapping array beyond this drops events (and says so).
const QUEUE: usize = 64;

/// Most bytes of a script's output kept for the log.
const OUTPUT_LOGGED: usize = 512;

/// The operator's notify script, if any. Cloning shares the queue.
#[derive(Clone, Debug)]
pub struct Notifier {
    queue: Option<mpsc::Sender<Vec<String>>>,
}

impl Notifier {
    /// Runs `script` (if any) for the events of node `node_id` of an array on `vip`.
    pub fn start(script: Option<PathBuf>, node_id: u16, vip: String) -> Self {
        let Some(script) = script else {
            return Notifier { queue: None };
        };
        let (queue, mut events) = mpsc::channel::<Vec<String>>(QUEUE);
        tokio::spawn(async move {
            while let Some(args) = events.recv().await {
                run(&script, node_id, &vip, &args).await;
            }
        });
        Notifier { queue: Some(queue) }
    }

    /// Queues `SCRIPT EVENT NODE [DETAIL]`; never waits.
    pub fn event(&self, event: &str, detail: Option<String>) {
        let Some(queue) = &self.queue else { return };
        let args: Vec<String> = std::iter::once(event.to_owned()).chain(detail).collect();
        if queue.try_send(args).is_err() {
            tracing::warn!(
                event,
                "notify script queue full or stopped; event not notified"
            );
        }
    }
}

/// One call, bounded by `SCRIPT_TIMEOUT` (10 s); its outcome goes to the log.
async fn run(script: &PathBuf, node_id: u16, vip: &str, args: &[String]) {
    let mut command = tokio::process::Command::new(script);
    command
        .arg(&args[0])
        .arg(node_id.to_string())
        .args(&args[1..])
        .env("PENTAFLOW_NODE_ID", node_id.to_string())
        .env("PENTAFLOW_VIP", vip)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let shown = script.display().to_string();
    let child = match command.spawn() {
        Ok(child) => child,
        Err(e) => {
            tracing::warn!(script = %shown, error = %e, "notify script did not start");
            return;
        }
    };
    match tokio::time::timeout(SCRIPT_TIMEOUT, child.wait_with_output()).await {
        Ok(Ok(out)) => {
            let said = String::from_utf8_lossy(&out.stdout) + String::from_utf8_lossy(&out.stderr);
            let said: String = said.trim().chars().take(OUTPUT_LOGGED).collect();
            if out.status.success() {
                tracing::info!(script = %shown, ?args, output = %said, "notify script ran");
            } else {
                tracing::warn!(script = %shown, ?args, status = %out.status, output = %said,
                    "notify script failed");
            }
        }
        Ok(Err(e)) => tracing::warn!(script = %shown, error = %e, "notify script"),
        // Dropping the future drops the child: kill_on_drop ends it.
        Err(_) => tracing::warn!(script = %shown, ?args, "notify script killed after 10 s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[tokio::test]
    async fn events_reach_the_script_in_order_with_node_and_environment() {
        let dir = std::env::temp_dir().join(format!("pf-notify-run-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let log = dir.join("calls");
        let script = dir.join("notify.sh");
        let body = format!(
            "#!/bin/sh\necho \"$* $PENTAFLOW_NODE_ID $PENTAFLOW_VIP\" >> {}\n",
            log.display()
        );
        std::fs::write(&script, body).unwrap();
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        let n = Notifier::start(Some(script), 2, "10.77.1.10".into());
        n.event("scheduler", None);
        n.event("node-failed", Some("1".into()));
        let want = "scheduler 2 2 10.77.1.10\nnode-failed 2 1 2 10.77.1.10\n";
        let mut got = String::new();
        for _ in 0..100 {
            got = std::fs::read_to_string(&log).unwrap_or_default();
            if got == want {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(got, want);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[tokio::test]
    async fn without_a_script_nothing_runs_and_a_bad_one_is_only_logged() {
        let none = Notifier::start(None, 1, "x".into());
        assert!(none.queue.is_none(), "no script: no queue, no task");
        none.event("scheduler", None);
        // A script that cannot start is logged, and the events after it still run: the
        // script appears after the first event, and only the second one reaches it.
        let dir = std::env::temp_dir().join(format!("pf-notify-bad-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let log = dir.join("calls");
        let script = dir.join("notify.sh");
        let _ = std::fs::remove_file(&script);
        let n = Notifier::start(Some(script.clone()), 1, "x".into());
        n.event("scheduler", None);
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(!log.exists(), "nothing ran");
        std::fs::write(
            &script,
            format!("#!/bin/sh\necho \"$*\" >> {}\n", log.display()),
        )
        .unwrap();
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        n.event("standby", None);
        let mut got = String::new();
        for _ in 0..100 {
            got = std::fs::read_to_string(&log).unwrap_or_default();
            if !got.is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(got, "standby 1\n", "the failed call was only logged");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
