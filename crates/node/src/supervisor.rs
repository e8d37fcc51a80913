//! The supervisor: which data plane this node runs, as a pure state machine.
//!
//! Owns: the decision to start or stop the scheduler's data plane from the cluster's view,
//! what a running data plane is told (node table, the takeover hold, the merged replica to
//! adopt), and what a data plane that cannot start or dies makes the node do — relinquish the
//! role for a hold-off so another node takes the VIP, and be counted. Events and `now` in,
//! [`Action`]s out; the binary's driver performs them and the deterministic simulation
//! (`tests/simulation.rs`) performs them on a real [`pentaflow_packet::SchedulerCore`].
//!
//! Must not: read a clock, spawn, log, touch a socket, or decide anything the cluster core
//! decides (who is scheduler, which node failed): the role comes from the view.

use std::sync::Arc;

use pentaflow_balance::{BucketSnapshot, NodeCandidate};
use pentaflow_cluster::{ClusterView, Role};

/// How long (ms) a node whose data plane failed stands down: long enough for another node to
/// be elected and take the VIP (a failover), short enough that a lone node retries its
/// set-up about once a second (the set-up is a few `ip`/`nft` commands, not something to spin
/// on).
pub const DEFAULT_HOLD_OFF_MS: u64 = 1_000;

/// What happened, for [`Supervisor::handle`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// The cluster published a new view of this node.
    View(ClusterView),
    /// The data plane asked for by [`Action::StartScheduler`] is up.
    Started,
    /// It could not start; `cause` is the whole rendered cause chain.
    StartFailed {
        /// Why, every `source()` included.
        cause: String,
    },
    /// The running data plane stopped by itself (its loop failed, its thread died).
    Died {
        /// Why, every `source()` included.
        cause: String,
    },
}

/// What the driver must do, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Start the scheduler's data plane from this replica, holding new assignments unless
    /// `accepting_new`; answer with [`Event::Started`] or [`Event::StartFailed`].
    StartScheduler {
        /// The replica to start from.
        table: Arc<BucketSnapshot>,
        /// This node and the alive members.
        nodes: Arc<[NodeCandidate]>,
        /// Whether the live-bucket merge is already over.
        accepting_new: bool,
    },
    /// Stop the data plane (it restores the kernel).
    StopScheduler {
        /// Why, for the log.
        why: &'static str,
    },
    /// A new node table for the running data plane.
    UpdateNodes(Arc<[NodeCandidate]>),
    /// The merge's result (or a newer replica during it) for the running data plane.
    Adopt(Arc<BucketSnapshot>),
    /// Hold (false) or allow (true) new assignments.
    SetAcceptingNew(bool),
    /// Tell the cluster core this node cannot schedule for `hold_ms`
    /// (`Node::data_plane_failed`): it steps down at once and is not elected meanwhile.
    Relinquish {
        /// The hold-off.
        hold_ms: u64,
    },
    /// Run the operator's notify script with this event.
    Notify(&'static str),
}

/// What the data plane is doing, as far as the supervisor knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DataPlane {
    /// Not running (standby, or after a failure).
    Down,
    /// [`Action::StartScheduler`] was issued; no answer yet.
    Starting,
    /// Running.
    Up,
}

/// A data-plane failure, for status pages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    /// When (the supervisor's `now`, ms).
    pub at: u64,
    /// Whether it failed to start (true) or died running (false).
    pub at_start: bool,
    /// The rendered cause chain.
    pub cause: String,
}

/// See the module documentation.
#[derive(Debug)]
pub struct Supervisor {
    plane: DataPlane,
    hold_off_ms: u64,
    /// The last view, so that a data plane that comes up is brought up to date.
    view: Option<ClusterView>,
    /// What the running data plane was last told.
    told_nodes: Option<Arc<[NodeCandidate]>>,
    told_accepting: bool,
    /// The replica version the data plane has; newer ones are adopted while merging.
    seen_version: u64,
    /// The takeover's merge is not over: newer replicas are adopted. After it the data plane
    /// is the table's only writer, and adopting a replica could revive a bucket it released.
    merging: bool,
    failures: u64,
    last_failure: Option<Failure>,
    /// After a failure, until this time (ms) or a view without the role, a view that still
    /// says `Scheduler` predates the relinquish and must not restart the data plane.
    relinquished_until: Option<u64>,
}

impl Default for Supervisor {
    fn default() -> Self {
        Self::new(DEFAULT_HOLD_OFF_MS)
    }
}

impl Supervisor {
    /// A supervisor with no data plane running, relinquishing for `hold_off_ms` after a
    /// failure.
    #[must_use]
    pub fn new(hold_off_ms: u64) -> Self {
        Self {
            plane: DataPlane::Down,
            hold_off_ms,
            view: None,
            told_nodes: None,
            told_accepting: false,
            seen_version: 0,
            merging: false,
            failures: 0,
            last_failure: None,
            relinquished_until: None,
        }
    }

    /// The data plane's state.
    #[must_use]
    pub fn data_plane(&self) -> DataPlane {
        self.plane
    }

    /// Data-plane failures (start-up and while running) so far.
    #[must_use]
    pub fn failures(&self) -> u64 {
        self.failures
    }

    /// The last data-plane failure.
    #[must_use]
    pub fn last_failure(&self) -> Option<&Failure> {
        self.last_failure.as_ref()
    }

    /// One event at `now` (ms); the actions to perform, in order.
    pub fn handle(&mut self, event: Event, now: u64) -> Vec<Action> {
        let mut out = Vec::new();
        match event {
            Event::View(view) => {
                self.on_view(&view, now, &mut out);
                self.view = Some(view);
            }
            Event::Started => {
                if self.plane == DataPlane::Starting {
                    self.plane = DataPlane::Up;
                    out.push(Action::Notify("scheduler"));
                    // Views that came while it started.
                    if let Some(v) = self.view.clone() {
                        self.on_view(&v, now, &mut out);
                    }
                }
            }
            Event::StartFailed { cause } => self.failed(true, cause, now, &mut out),
            Event::Died { cause } => self.failed(false, cause, now, &mut out),
        }
        out
    }

    fn on_view(&mut self, v: &ClusterView, now: u64, out: &mut Vec<Action>) {
        let elected = v.role == Role::Scheduler;
        if let Some(until) = self.relinquished_until {
            if !elected || now >= until {
                self.relinquished_until = None;
            } else {
                return;
            }
        }
        match (self.plane, elected) {
            (DataPlane::Down, true) => {
                self.plane = DataPlane::Starting;
                self.seen_version = v.version;
                self.merging = !v.accepting_new;
                self.told_nodes = Some(Arc::clone(&v.nodes));
                self.told_accepting = v.accepting_new;
                out.push(Action::StartScheduler {
                    table: Arc::clone(&v.table),
                    nodes: Arc::clone(&v.nodes),
                    accepting_new: v.accepting_new,
                });
            }
            (DataPlane::Up | DataPlane::Starting, false) => {
                // The view is the truth: a role lost for any reason releases the VIP.
                self.plane = DataPlane::Down;
                out.push(Action::StopScheduler {
                    why: "no longer the elected scheduler",
                });
                out.push(Action::Notify("standby"));
            }
            (DataPlane::Up, true) => self.update(v, out),
            (DataPlane::Starting | DataPlane::Down, _) => {}
        }
    }

    /// Bring the running data plane up to date with `v`. The merged replica goes before the
    /// end of the hold, so that nothing is routed on the pre-merge table.
    fn update(&mut self, v: &ClusterView, out: &mut Vec<Action>) {
        if self.told_nodes.as_ref() != Some(&v.nodes) {
            self.told_nodes = Some(Arc::clone(&v.nodes));
            out.push(Action::UpdateNodes(Arc::clone(&v.nodes)));
        }
        if self.merging && v.version > self.seen_version {
            self.seen_version = v.version;
            out.push(Action::Adopt(Arc::clone(&v.table)));
        }
        if v.accepting_new {
            self.merging = false;
        }
        if v.accepting_new != self.told_accepting {
            self.told_accepting = v.accepting_new;
            out.push(Action::SetAcceptingNew(v.accepting_new));
        }
    }

    fn failed(&mut self, at_start: bool, cause: String, now: u64, out: &mut Vec<Action>) {
        if self.plane == DataPlane::Down {
            // Already stopped (a stop raced the failure): nothing runs, nothing to hand on.
            return;
        }
        self.plane = DataPlane::Down;
        self.failures += 1;
        self.last_failure = Some(Failure {
            at: now,
            at_start,
            cause,
        });
        self.relinquished_until = Some(now.saturating_add(self.hold_off_ms));
        out.push(Action::Relinquish {
            hold_ms: self.hold_off_ms,
        });
        out.push(Action::Notify("fault"));
    }
}

#[cfg(test)]
mod tests;
