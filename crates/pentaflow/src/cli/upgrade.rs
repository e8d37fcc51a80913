//! Zero-downtime binary upgrade, as nginx's `USR2`: on `SIGUSR2` a serving node starts the
//! binary found at its own path again (the new version, once the package replaced the file),
//! with the same arguments, handing it every listening socket — the proxy's and the admin
//! API's — by the `LISTEN_FDS` protocol. The new process binds nothing that was handed over
//! (the same sockets: no connection waiting in a backlog is lost, no port is ever closed), and
//! says `READY=1` on a notify socket this process listens on, as it would to systemd. Only then
//! does the old process drain (no new connections; requests in flight finish) and exit; if the
//! new one fails to start, exits, or is not ready in [`READY_WITHIN`], it is stopped and the
//! old one keeps serving.
//!
//! Array nodes refuse: the array role (VIP, scheduler data plane, cluster membership) belongs
//! to one process; an array is upgraded node by node with restarts, the array failing over.
//!
//! Must not: pass anything but listening sockets, or leave the new process running after a
//! failed hand-over.

use std::ffi::OsString;
use std::net::SocketAddr;
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use command_fds::{CommandFdExt, FdMapping};

/// How long the new process may take to say it is ready.
pub(crate) const READY_WITHIN: Duration = Duration::from_secs(30);

/// What is needed to start this program again: its path and arguments, taken at start (the
/// file at that path may be replaced later: that is the point).
pub(crate) struct Upgrade {
    exe: PathBuf,
    args: Vec<OsString>,
}

impl Upgrade {
    /// This process's program and arguments.
    pub(crate) fn of_this_process() -> anyhow::Result<Self> {
        let exe = std::env::current_exe().context("cannot find this program's path")?;
        Ok(Upgrade {
            exe,
            args: std::env::args_os().skip(1).collect(),
        })
    }

    /// Starts the new process with `listeners` and waits until it is ready: its PID.
    pub(crate) async fn hand_over(
        &self,
        listeners: Vec<(SocketAddr, OwnedFd)>,
    ) -> anyhow::Result<u32> {
        let dir = std::env::temp_dir();
        let socket_path = dir.join(format!("pentaflow-upgrade-{}.sock", std::process::id()));
        let _ = std::fs::remove_file(&socket_path);
        let notify = tokio::net::UnixDatagram::bind(&socket_path)
            .with_context(|| format!("cannot listen on {}", socket_path.display()))?;
        let removed = RemoveOnDrop(socket_path.clone());
        let addresses: Vec<String> = listeners.iter().map(|(a, _)| a.to_string()).collect();
        let mappings = listeners
            .into_iter()
            .zip(3..)
            .map(|((_, fd), child_fd)| FdMapping {
                parent_fd: fd,
                child_fd,
            })
            .collect();
        let mut command = Command::new(&self.exe);
        command
            .args(&self.args)
            .env("LISTEN_FDS", addresses.len().to_string())
            .env_remove("LISTEN_PID")
            .env_remove("LISTEN_FDNAMES")
            .env("NOTIFY_SOCKET", &socket_path)
            .stdin(Stdio::null());
        command
            .fd_mappings(mappings)
            .context("cannot hand the listening sockets over")?;
        let mut child = command
            .spawn()
            .with_context(|| format!("cannot start {}", self.exe.display()))?;
        let pid = child.id();
        tracing::info!(pid, exe = %self.exe.display(), listeners = ?addresses, "upgrade: new process started");
        let deadline = Instant::now() + READY_WITHIN;
        let mut buf = [0u8; 4096];
        let outcome = loop {
            if let Ok(Some(status)) = child.try_wait() {
                break Err(anyhow::anyhow!(
                    "the new process exited before it was ready: {status}"
                ));
            }
            if Instant::now() >= deadline {
                break Err(anyhow::anyhow!(
                    "the new process was not ready within {READY_WITHIN:?}"
                ));
            }
            match tokio::time::timeout(Duration::from_millis(100), notify.recv(&mut buf)).await {
                Ok(Ok(n)) => {
                    let message = String::from_utf8_lossy(&buf[..n]);
                    if message.lines().any(|l| l == "READY=1") {
                        break Ok(pid);
                    }
                }
                Ok(Err(e)) => break Err(anyhow::Error::new(e).context("reading the notify socket")),
                Err(_elapsed) => {}
            }
        };
        drop(removed);
        match outcome {
            Ok(pid) => Ok(pid),
            Err(e) => {
                // Never two half-started nodes: the new one goes, the old one serves on.
                let _ = child.kill();
                let _ = child.wait();
                bail!("{e:#}")
            }
        }
    }
}

/// Removes the notify socket's file when the hand-over ends, however it ends.
struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}
