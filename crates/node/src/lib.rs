//! pentaflow-node: one node of a pentaflow array — the layer that joins the control plane
//! (`pentaflow-cluster`) to the data planes (`pentaflow-packet`'s scheduler, the L7 proxy),
//! as linkerd2-proxy's `linkerd/app` is to its `main.rs`.
//!
//! * [`array_role`] — a node's part in the array: the VIP on `lo`, and the static scheduler;
//! * [`cluster_document`] — the `/cluster` document, the cluster metrics and operator actions;
//! * [`driver`] — the cluster driver: one task that performs what the supervisor decides
//!   (starts and stops the scheduler data plane, forwards its assignments, reports live
//!   buckets and status, applies committed configurations, answers operator actions);
//! * [`status_source`] — what the admin API reads of this node (proxy, cluster, back-end API);
//! * [`supervisor`] — the pure state machine deciding which data plane runs: cluster views
//!   and data-plane events with `now` in, [`Action`]s out;
//! * [`node_table`] — the scheduler's node table from the cluster's candidates;
//! * [`backend_api`] — the runtime back-end API (`POST /backend/...`), through the array's
//!   push and commit on a clustered node;
//! * [`discovery`] — DNS service discovery of back-ends named by DNS (A/AAAA, SRV), applied
//!   through the proxy's reload path;
//! * [`cause`] — an error's whole cause chain on one line, for logs and status pages;
//! * [`notify`] — the operator's `[array] notify` script, run on role changes and array events;
//! * [`pushed_config`] — what a configuration pushed to the array may change live, its
//!   validation on this node, and writing the committed text over the node's file;
//! * [`node_report`] — what this node reports to the control plane: live buckets, load and
//!   average back-end response time.
//!
//! Must not: parse command lines or print (the binary does), or decide what the cluster core
//! decides. The deterministic simulation in `tests/simulation.rs` drives the production
//! decision path — cluster [`pentaflow_cluster::Node`] + [`Supervisor`] +
//! [`pentaflow_packet::SchedulerCore`] — under loss, delay, partitions and crashes.

#![forbid(unsafe_code)]

pub mod array_role;
pub mod backend_api;
pub mod cause;
pub mod cluster_document;
pub mod discovery;
pub mod driver;
mod error;
#[cfg(test)]
mod fixtures;
pub mod node_report;
pub mod node_table;
pub mod notify;
pub mod pushed_config;
pub mod status_source;
pub mod supervisor;

pub use array_role::ArrayRole;
pub use cause::cause_chain;
pub use discovery::Discovery;
pub use driver::{ClusterAccess, ClusterDriver, DataPlaneReport};
pub use error::RoleError;
pub use node_table::{node_entries, Configured};
pub use supervisor::{Action, DataPlane, Event, Failure, Supervisor, DEFAULT_HOLD_OFF_MS};
