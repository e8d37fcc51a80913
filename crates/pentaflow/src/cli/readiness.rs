//! Readiness for the service manager: systemd's `Type=notify` (`READY=1` once every listener
//! is bound, `RELOADING=1` … `READY=1` around a SIGHUP reload, `STOPPING=1` when draining
//! starts), through the `sd-notify` crate.
//!
//! Owns: the notify messages and their wording in `systemctl status`. Must not: fail the node:
//! outside systemd (`NOTIFY_SOCKET` unset, as for `pentaflow demo` or a shell) every call does
//! nothing, and a socket error is only logged.

use sd_notify::NotifyState;

/// The node serves: the proxy's listeners and the admin API are bound.
pub(crate) fn ready() {
    send(&[NotifyState::Ready, NotifyState::Status("serving")]);
}

/// A SIGHUP reload starts; [`reloaded`] must follow, whatever its outcome.
pub(crate) fn reloading() {
    // systemd 253+ wants the monotonic time with RELOADING=1; older ones ignore it.
    match NotifyState::monotonic_usec_now() {
        Ok(now) => send(&[NotifyState::Reloading, now]),
        Err(_) => send(&[NotifyState::Reloading]),
    }
}

/// The reload is over (applied, or refused with the running configuration kept).
pub(crate) fn reloaded(applied: bool) {
    let status = if applied {
        "serving (configuration reloaded)"
    } else {
        "serving (reload refused: running configuration kept, see the log)"
    };
    send(&[NotifyState::Ready, NotifyState::Status(status)]);
}

/// Draining has started: no new connections, requests in flight finishing.
pub(crate) fn stopping() {
    send(&[NotifyState::Stopping, NotifyState::Status("draining")]);
}

fn send(states: &[NotifyState<'_>]) {
    if let Err(error) = sd_notify::notify(states) {
        tracing::warn!(%error, "cannot notify the service manager");
    }
}
