//! Per-worker runtimes (`pentaflow serve --workers N`, N ≥ 2): N OS threads, each running a
//! current-thread tokio runtime of its own. As with nginx's worker processes or HAProxy's
//! threads, a client connection is accepted, served, and its back-end connections pooled on
//! one thread: no work-stealing queues, no task moving between threads, no cross-thread
//! wake-ups on the hot path.
//!
//! Every worker runs its own accept loop on each listening socket, through a duplicate
//! descriptor of the one socket (node.rs) — not `SO_REUSEPORT` sockets: the socket stays the one
//! a zero-downtime upgrade hands over by `LISTEN_FDS`, and its single backlog is shared, so
//! whichever worker is free takes the next connection. The control plane (admin API, health
//! checks, reload, the cluster) stays on the caller's runtime.
//!
//! Owns: the worker threads and their runtimes ([`Workers::start`]; stopped and joined by
//! [`Workers::stop`] or on drop, which drops whatever tasks are still on them), and which worker
//! the running thread is ([`current`]) — the key by which state that must stay with one runtime
//! is partitioned (pooled back-end connections: a tokio socket belongs to the reactor of the
//! runtime that registered it).
//!
//! Must not: hand a runtime-bound object (a socket, a timer) from one worker to another. What
//! the workers share is `Arc`ed state built from parts that belong to no runtime (atomics,
//! locks, `ArcSwap`, tokio's `watch` and `Semaphore`).

use std::cell::Cell;

use tokio::runtime::Handle;
use tokio::sync::oneshot;

thread_local! {
    /// This thread's worker number (1..=N); 0 on any thread that is not a worker's (the
    /// control plane's, a multi-thread runtime's, a blocking pool's).
    static INDEX: Cell<usize> = const { Cell::new(0) };
}

/// The running thread's worker number: 1..=N on worker `n`, 0 on every other thread.
pub(crate) fn current() -> usize {
    INDEX.with(Cell::get)
}

/// The worker threads of a node (see the module doc). Dropping it stops them.
#[derive(Debug)]
pub struct Workers {
    workers: Vec<Worker>,
}

#[derive(Debug)]
struct Worker {
    /// Spawns onto the worker's runtime from any thread.
    handle: Handle,
    /// Ends the worker's `block_on`.
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Workers {
    /// Starts `n` worker threads (at least one), each with its own current-thread runtime,
    /// idle until a proxy started on them spawns its accept loops there.
    pub fn start(n: usize) -> std::io::Result<Self> {
        let mut started = Self {
            workers: Vec::with_capacity(n.max(1)),
        };
        for index in 1..=n.max(1) {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let handle = runtime.handle().clone();
            let (stop, stopped) = oneshot::channel::<()>();
            // On failure `started` is dropped, which stops the workers already running.
            let thread = std::thread::Builder::new()
                .name(format!("pentaflow-worker-{index}"))
                .spawn(move || {
                    INDEX.with(|i| i.set(index));
                    // Drives every task spawned onto this runtime until told to stop (or the
                    // sender is gone); dropping the runtime then drops the tasks left on it.
                    let _ = runtime.block_on(stopped);
                    drop(runtime);
                })?;
            started.workers.push(Worker {
                handle,
                stop: Some(stop),
                thread: Some(thread),
            });
        }
        Ok(started)
    }

    /// How many workers there are.
    pub fn len(&self) -> usize {
        self.workers.len()
    }

    /// Whether there are none (never, once started; for clippy's `len` rule).
    pub fn is_empty(&self) -> bool {
        self.workers.is_empty()
    }

    /// Each worker's number (1..=N, as [`current`] says on its thread) and a handle that spawns
    /// onto its runtime.
    pub(crate) fn handles(&self) -> Vec<(usize, Handle)> {
        self.workers
            .iter()
            .enumerate()
            .map(|(i, w)| (i + 1, w.handle.clone()))
            .collect()
    }

    /// Stops every worker and waits for its thread: connections still open on it are dropped
    /// (closed), so call it after the proxy's `shutdown` drained them. Blocks briefly; call it
    /// off an async worker (`spawn_blocking`) or after the control runtime returned.
    pub fn stop(mut self) {
        self.stop_all();
    }

    fn stop_all(&mut self) {
        for w in &mut self.workers {
            if let Some(stop) = w.stop.take() {
                let _ = stop.send(());
            }
        }
        for w in &mut self.workers {
            if let Some(thread) = w.thread.take() {
                if thread.join().is_err() {
                    tracing::error!("a worker thread panicked");
                }
            }
        }
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        self.stop_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each worker knows its own number, and a task spawned through a worker's handle runs on
    /// that worker's thread (so what it registers stays with that runtime).
    #[test]
    fn a_task_spawned_on_a_worker_runs_there_and_knows_its_number() {
        let workers = Workers::start(2).expect("workers start");
        assert_eq!(current(), 0, "the test thread is no worker");
        let mut seen = Vec::new();
        for (index, handle) in workers.handles() {
            let (tx, rx) = std::sync::mpsc::channel();
            handle.spawn(async move {
                let _ = tx.send((current(), std::thread::current().name().map(str::to_owned)));
            });
            let (number, name) = rx.recv().expect("the task ran");
            assert_eq!(number, index);
            assert_eq!(name.as_deref(), Some(&*format!("pentaflow-worker-{index}")));
            seen.push(number);
        }
        assert_eq!(seen, vec![1, 2]);
        workers.stop();
    }
}
