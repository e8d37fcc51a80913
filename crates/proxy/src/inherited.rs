//! Listening sockets this process did not open: handed over by the process it replaces (a
//! zero-downtime upgrade, `SIGUSR2`: see the binary's `serve`) or by a service manager
//! (systemd socket activation). Both speak the `LISTEN_FDS` protocol, read by the `listenfd`
//! crate (its one `unsafe` turns the numbered descriptors into sockets, after checking that
//! each is a listening TCP socket).
//!
//! Owns: the inherited sockets until a listener of the configuration claims one by its local
//! address ([`take`]). Must not: bind anything itself, or keep a socket nobody claimed past
//! [`unclaimed`] (the caller logs and drops them, so a stale port is not held open).

use std::net::{SocketAddr, TcpListener};
use std::sync::Mutex;

static INHERITED: Mutex<Vec<TcpListener>> = Mutex::new(Vec::new());

/// Takes the listening sockets passed in `LISTEN_FDS` (once, at start: it clears the variables,
/// so it must run before any other thread reads the environment); returns their local
/// addresses. Descriptors that are not TCP listeners are reported as errors and left alone.
pub fn adopt_from_env() -> (Vec<SocketAddr>, Vec<std::io::Error>) {
    let mut fds = listenfd::ListenFd::from_env();
    let mut adopted = Vec::new();
    let mut errors = Vec::new();
    for i in 0..fds.len() {
        match fds.take_tcp_listener(i) {
            Ok(Some(listener)) => {
                if let Ok(addr) = listener.local_addr() {
                    adopted.push(addr);
                }
                lock().push(listener);
            }
            Ok(None) => {}
            Err(e) => errors.push(e),
        }
    }
    (adopted, errors)
}

fn lock() -> std::sync::MutexGuard<'static, Vec<TcpListener>> {
    INHERITED
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The inherited socket listening on `address`, if any (then it is no longer held here).
pub fn take(address: SocketAddr) -> Option<TcpListener> {
    let mut held = lock();
    let i = held
        .iter()
        .position(|l| l.local_addr().is_ok_and(|a| a == address))?;
    Some(held.swap_remove(i))
}

/// The addresses of inherited sockets no listener claimed; they are closed.
pub fn unclaimed() -> Vec<SocketAddr> {
    lock()
        .drain(..)
        .filter_map(|l| l.local_addr().ok())
        .collect()
}
