//! pentaflow-balance: the pure scheduling core of a pentaflow array.
//!
//! Owns every decision of *where* traffic goes, as plain functions and tables:
//!
//! * [`hash`] — the fixed-seed hashes all nodes must agree on;
//! * [`bucket`] — the scheduler's Client IP/Port → node table (seed 002, Figs. 4–5);
//! * [`owner`] — node ownership of a connection by integer rendezvous scores (seed 004);
//! * [`policy`] — weighted least connections and smooth weighted round-robin;
//! * [`consistent`] — URL hashing by weighted rendezvous hashing, with bounded loads;
//! * [`session`] — session-ID hash groups (fixed size, hash-group persistence);
//! * [`cookie`] — the opaque, keyed persistence-cookie value;
//! * [`status`] — the Web Server Status Table row.
//!
//! Must not: do I/O, spawn, use async or tokio, read the clock or use a global RNG. Time comes
//! in as `now_ms`, seeds as arguments, so everything here is deterministic, unit-tested,
//! property-tested, fuzzed and benchmarked on its own (`cargo check -p pentaflow-balance`
//! proves it needs no runtime).
//!
//! ```
//! use pentaflow_balance::{BucketTable, NodeCandidate, NodeId};
//!
//! let mut table = BucketTable::new(65_536)?;
//! let nodes = [
//!     NodeCandidate { id: NodeId(1), weight: 1, enabled: true, alive: true },
//!     NodeCandidate { id: NodeId(2), weight: 1, enabled: true, alive: true },
//! ];
//! let bucket = table.bucket_of("192.0.2.7".parse()?, 40_000);
//! let node = table.route(bucket, &nodes, 1_000);
//! assert_eq!(node, Some(NodeId(1))); // empty table: least assigned, lowest id
//! assert_eq!(table.route(bucket, &nodes, 2_000), node); // sticky while the node lives
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![forbid(unsafe_code)]

pub mod bucket;
pub mod candidate;
pub mod consistent;
pub mod cookie;
pub mod hash;
pub mod ilb;
pub mod owner;
pub mod policy;
pub mod session;
pub mod status;

pub use bucket::{
    least_assigned, BucketEntry, BucketError, BucketSnapshot, BucketTable, NodeCandidate, NodeId,
};
pub use candidate::{BackendId, Candidate};
pub use consistent::{rendezvous_rank, url_hash_pick};
pub use cookie::{CookieCodec, CookieError, CookieLifetime, Decoded, Freshness};
pub use ilb::{Announcement, Arrival, Association, Ilb, IlbCounters, IlbDrop, IlbLimits, Verdict};
pub use owner::{owners, score, ConnectionId, Owner};
pub use policy::{least_connections, SmoothWeightedRoundRobin};
pub use session::SessionGroups;
pub use status::{BackendState, WebServerStatus};
