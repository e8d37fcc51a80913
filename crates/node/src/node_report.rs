//! What this node reports to the array's control plane every `LIVE_EVERY` (the binary's cluster driver):
//! the buckets of its live client connections (for a new scheduler's merge and for drain),
//! its load and its average back-end response time — all read from the proxy's own tables.
//!
//! Must not: talk to the cluster or decide anything; pure functions of what the proxy shows.

use std::collections::BTreeSet;
use std::net::SocketAddr;

use pentaflow_balance::BucketTable;
use pentaflow_cluster::ServerRow;
use pentaflow_config::ArrayConfig;

/// The load a node announces: its open client connections against `max_connections`, in
/// per mille (1000 = the next connection is refused).
pub fn load_permille(open: u32, limit: usize) -> u16 {
    let limit = u64::try_from(limit).unwrap_or(u64::MAX).max(1);
    let permille = (u64::from(open) * 1000 / limit).min(1000);
    u16::try_from(permille).unwrap_or(1000)
}

/// This node's average back-end response time (µs) over its Web Server Status Table,
/// weighted by each back-end's hits (0 before the first request).
pub fn avg_response_us(rows: &[ServerRow]) -> u32 {
    let hits: u128 = rows.iter().map(|r| u128::from(r.hits)).sum();
    if hits == 0 {
        return 0;
    }
    let weighted: u128 = rows
        .iter()
        .map(|r| u128::from(r.avg_response_us) * u128::from(r.hits))
        .sum();
    // A weighted mean of u32 values is a u32.
    u32::try_from(weighted / hits).unwrap_or(u32::MAX)
}

/// The buckets of this node's open client connections (the proxy's `live_clients`): what
/// a new scheduler merges before assigning anything, so no surviving connection moves.
pub struct LiveBuckets {
    /// Only for `bucket_of` (the hash and mask every node shares); `None` if the size is
    /// invalid, which validation already refuses.
    table: Option<BucketTable>,
}

impl LiveBuckets {
    /// Live buckets in the table shape of `array` (its `table_size`).
    pub fn new(array: &ArrayConfig) -> Self {
        LiveBuckets {
            table: BucketTable::new(array.table_size).ok(),
        }
    }

    /// `(buckets, connections)` of these client addresses.
    pub fn of(&self, clients: &[SocketAddr]) -> (Vec<u32>, u32) {
        let Some(table) = &self.table else {
            return (Vec::new(), 0);
        };
        let buckets: BTreeSet<u32> = clients
            .iter()
            .filter_map(|c| u32::try_from(table.bucket_of(c.ip(), c.port())).ok())
            .collect();
        let open = u32::try_from(clients.len()).unwrap_or(u32::MAX);
        (buckets.into_iter().collect(), open)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::fixtures::two_node_array as array;

    #[test]
    fn live_buckets_are_the_buckets_of_the_clients() {
        let a = array();
        let live = LiveBuckets::new(&a);
        let c1: SocketAddr = "10.77.2.50:40000".parse().unwrap();
        let c2: SocketAddr = "10.77.2.51:40001".parse().unwrap();
        let (buckets, open) = live.of(&[c1, c2, c1]);
        assert_eq!(open, 3);
        let table = BucketTable::new(a.table_size).unwrap();
        let mut want: Vec<u32> = [c1, c2]
            .iter()
            .map(|c| u32::try_from(table.bucket_of(c.ip(), c.port())).unwrap())
            .collect();
        want.sort_unstable();
        want.dedup();
        assert_eq!(buckets, want);
    }

    #[test]
    fn load_is_open_connections_against_the_limit() {
        assert_eq!(load_permille(0, 10_000), 0);
        assert_eq!(load_permille(2_500, 10_000), 250);
        assert_eq!(load_permille(20_000, 10_000), 1000, "capped");
        assert_eq!(load_permille(3, 0), 1000, "no division by zero");
    }

    #[test]
    fn average_response_is_weighted_by_hits() {
        let row = |avg_response_us, hits| ServerRow {
            service: "web".into(),
            name: "b".into(),
            address: "10.0.0.1:80".into(),
            up: true,
            hits,
            open_connections: 0,
            avg_response_us,
            session_groups: 0,
        };
        assert_eq!(avg_response_us(&[]), 0);
        assert_eq!(avg_response_us(&[row(9_000, 0)]), 0);
        // (1 ms × 3 + 5 ms × 1) / 4 = 2 ms.
        assert_eq!(avg_response_us(&[row(1_000, 3), row(5_000, 1)]), 2_000);
        assert_eq!(avg_response_us(&[row(u32::MAX, u64::MAX)]), u32::MAX);
    }
}
