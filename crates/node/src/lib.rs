//! pentaflow-node: one node of a pentaflow array — the layer that joins the control plane
//! (`pentaflow-cluster`) to the data planes (`pentaflow-packet`'s scheduler, the L7 proxy),
//! as linkerd2-proxy's `linkerd/app` is to its `main.rs`.
//!
//! * [`supervisor`] — the pure state machine deciding which data plane runs: cluster views
//!   and data-plane events with `now` in, [`Action`]s out;
//! * [`node_table`] — the scheduler's node table from the cluster's candidates;
//! * [`cause`] — an error's whole cause chain on one line, for logs and status pages;
//! * [`notify`] — the operator's `[array] notify` script, run on role changes and array events.
//!
//! Must not: parse command lines or print (the binary does), or decide what the cluster core
//! decides. The deterministic simulation in `tests/simulation.rs` drives the production
//! decision path — cluster [`pentaflow_cluster::Node`] + [`Supervisor`] +
//! [`pentaflow_packet::SchedulerCore`] — under loss, delay, partitions and crashes.

#![forbid(unsafe_code)]

pub mod cause;
pub mod node_table;
pub mod notify;
pub mod supervisor;

pub use cause::cause_chain;
pub use node_table::{node_entries, Configured};
pub use supervisor::{Action, DataPlane, Event, Failure, Supervisor, DEFAULT_HOLD_OFF_MS};
