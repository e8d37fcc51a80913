//! Each node's Web Server Status Table (seed 002 Fig. 7) on its way to the scheduler, which
//! sums them into the Summary Web Server Status Table (Fig. 8, see [`crate::info::summarize`]).
//!
//! Owns: the conversion of the proxy's rows ([`WebServerStatus`]) into the wire's
//! [`ServerRow`]s, the cut to [`MAX_SERVER_ROWS`] rows per node (dropped rows are counted),
//! the chunking of one node's table into [`Message::ServerStatus`] datagrams
//! ([`server_status_answer`]), and [`ServerTables`]: this node's own rows and, on the
//! scheduler, every polled node's latest *complete* table with the time it completed.
//!
//! Must not: sum or judge rows (that is `info`'s summary, for people only: the summary feeds
//! no scheduling decision), read a clock, or keep more than [`MAX_SERVER_ROWS`] rows and one
//! unfinished answer per node, whatever peers send.

use std::collections::BTreeMap;

use pentaflow_balance::{BackendState, NodeId, WebServerStatus};

use crate::wire::{Message, ServerRow, MAX_SERVER_ROWS, SERVER_CHUNK_ROOM};

impl From<&WebServerStatus> for ServerRow {
    fn from(s: &WebServerStatus) -> Self {
        ServerRow {
            service: s.service.clone(),
            name: s.name.clone(),
            address: s.address.clone(),
            up: s.state == BackendState::Up,
            hits: s.hits,
            open_connections: u32::try_from(s.open_connections).unwrap_or(u32::MAX),
            avg_response_us: micros(s.avg_response_ms),
            session_groups: u32::try_from(s.session_groups).unwrap_or(u32::MAX),
        }
        .bounded()
    }
}

/// Milliseconds (a float: the proxy's moving average) as whole microseconds; no sample yet
/// (NaN) or a negative value reads 0, anything beyond `u32` (71 minutes) saturates.
fn micros(ms: f64) -> u32 {
    let us = (ms * 1000.0).round();
    if us.is_nan() || us <= 0.0 {
        0
    } else if us >= f64::from(u32::MAX) {
        u32::MAX
    } else {
        // In range and integral after the checks above: the cast is exact.
        us as u32
    }
}

/// The datagrams of one node's answer to poll `poll`: its rows (at most [`MAX_SERVER_ROWS`])
/// packed greedily into chunks of at most [`SERVER_CHUNK_ROOM`] bytes. Always at least one
/// chunk, so an empty table is reported (and replaces an older one) too.
#[must_use]
pub fn server_status_answer(poll: u32, rows: &[ServerRow]) -> Vec<Message> {
    let mut chunks: Vec<Vec<ServerRow>> = vec![Vec::new()];
    let mut used = 0;
    for row in rows.iter().take(MAX_SERVER_ROWS) {
        let len = row.encoded_len();
        // A row is at most 24 + 3 × 255 bytes, far below the room: it always fits a chunk.
        if used + len > SERVER_CHUNK_ROOM {
            chunks.push(Vec::new());
            used = 0;
        }
        used += len;
        if let Some(last) = chunks.last_mut() {
            last.push(row.clone().bounded());
        }
    }
    // At most MAX_SERVER_ROWS (1024) chunks: the counts fit u16.
    let total = u16::try_from(chunks.len()).unwrap_or(u16::MAX);
    chunks
        .into_iter()
        .enumerate()
        .map(|(i, rows)| Message::ServerStatus {
            poll,
            chunk: u16::try_from(i).unwrap_or(u16::MAX),
            chunks: total,
            rows,
        })
        .collect()
}

/// An answer whose chunks are still arriving.
#[derive(Clone, Debug)]
struct Pending {
    poll: u32,
    /// One flag per chunk of the answer (at most [`MAX_SERVER_ROWS`], checked by the decoder).
    seen: Vec<bool>,
    /// Chunks not yet seen.
    left: usize,
    rows: Vec<ServerRow>,
}

/// This node's own Web Server Status Table and, on the scheduler, each polled node's latest
/// complete one. See the module documentation.
#[derive(Clone, Debug, Default)]
pub struct ServerTables {
    own: Vec<ServerRow>,
    reports: BTreeMap<NodeId, (Vec<ServerRow>, u64)>,
    pending: BTreeMap<NodeId, Pending>,
    dropped: u64,
}

impl ServerTables {
    /// This node's own rows (at most [`MAX_SERVER_ROWS`], texts bounded).
    #[must_use]
    pub fn own(&self) -> &[ServerRow] {
        &self.own
    }

    /// Each node's latest complete table and when (ms) its last chunk came, by node id.
    pub fn reports(&self) -> impl Iterator<Item = (NodeId, &[ServerRow], u64)> + '_ {
        self.reports
            .iter()
            .map(|(&id, (rows, at))| (id, rows.as_slice(), *at))
    }

    /// Rows dropped for being beyond [`MAX_SERVER_ROWS`] of one table (counted each time this
    /// node's own table is cut and each time a received table is).
    #[must_use]
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Replace this node's own rows.
    pub(crate) fn set_own(&mut self, mut rows: Vec<ServerRow>) {
        if rows.len() > MAX_SERVER_ROWS {
            self.count_dropped(rows.len() - MAX_SERVER_ROWS);
            rows.truncate(MAX_SERVER_ROWS);
        }
        self.own = rows.into_iter().map(ServerRow::bounded).collect();
    }

    /// One chunk of `from`'s answer to poll `poll`, at `now`. A chunk of another poll (or
    /// another chunk count) than the one being assembled starts over: the newest answer wins
    /// and a lost chunk only leaves the older complete table (and its growing age) in place.
    /// A chunk seen twice (a retried poll) is ignored.
    pub(crate) fn on_chunk(
        &mut self,
        from: NodeId,
        (poll, chunk, chunks): (u32, u16, u16),
        rows: Vec<ServerRow>,
        now: u64,
    ) {
        let chunks = usize::from(chunks).clamp(1, MAX_SERVER_ROWS);
        let fresh = self
            .pending
            .get(&from)
            .is_none_or(|p| p.poll != poll || p.seen.len() != chunks);
        if fresh {
            let p = Pending {
                poll,
                seen: vec![false; chunks],
                left: chunks,
                rows: Vec::new(),
            };
            self.pending.insert(from, p);
        }
        let Some(p) = self.pending.get_mut(&from) else {
            return;
        };
        match p.seen.get_mut(usize::from(chunk)) {
            Some(seen) if !*seen => *seen = true,
            _ => return,
        }
        p.left -= 1;
        let room = MAX_SERVER_ROWS - p.rows.len();
        let over = rows.len().saturating_sub(room);
        p.rows.extend(rows.into_iter().take(room));
        let done = p.left == 0;
        self.count_dropped(over);
        if done {
            if let Some(p) = self.pending.remove(&from) {
                self.reports.insert(from, (p.rows, now));
            }
        }
    }

    /// A failed node's table leaves the summary (as its row leaves the Node Status Table).
    pub(crate) fn forget(&mut self, node: NodeId) {
        self.reports.remove(&node);
        self.pending.remove(&node);
    }

    fn count_dropped(&mut self, n: usize) {
        if n > 0 {
            let n = u64::try_from(n).unwrap_or(u64::MAX);
            self.dropped = self.dropped.saturating_add(n);
            tracing::debug!(rows = n, "web server status rows beyond the bound dropped");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::MAX_DATAGRAM;
    use crate::wire::{decode, encode, Destination, Envelope, MAX_TEXT, TAG_LEN};

    fn row(i: usize, text: usize) -> ServerRow {
        ServerRow {
            service: format!("s{i}"),
            name: "n".repeat(text),
            address: format!("10.0.0.{}:80", i % 250),
            up: i % 2 == 0,
            hits: i as u64,
            open_connections: 1,
            avg_response_us: 2,
            session_groups: 3,
        }
    }

    fn sealed_len(m: Message) -> usize {
        let env = Envelope {
            from: NodeId(1),
            to: Destination::Node(NodeId(2)),
            incarnation: u64::MAX,
            sequence: u64::MAX,
            message: m,
        };
        let bytes = encode(&env).unwrap();
        assert_eq!(decode(&bytes).unwrap(), env);
        bytes.len() + TAG_LEN
    }

    #[test]
    fn answers_are_chunked_below_the_datagram_size_and_cut_at_the_bound() {
        for (n, text) in [(0, 0), (1, 0), (30, 10), (200, 40), (5, 1000), (2000, 3)] {
            let rows: Vec<ServerRow> = (0..n).map(|i| row(i, text)).collect();
            let answer = server_status_answer(7, &rows);
            let total = answer.len();
            let mut back = Vec::new();
            for (i, m) in answer.into_iter().enumerate() {
                let Message::ServerStatus {
                    poll,
                    chunk,
                    chunks,
                    rows,
                } = m.clone()
                else {
                    panic!("{m:?}")
                };
                assert_eq!(
                    (poll, usize::from(chunk), usize::from(chunks)),
                    (7, i, total)
                );
                assert!(sealed_len(m) <= MAX_DATAGRAM);
                back.extend(rows);
            }
            let want: Vec<ServerRow> = rows
                .into_iter()
                .take(MAX_SERVER_ROWS)
                .map(ServerRow::bounded)
                .collect();
            assert_eq!(back, want, "{n} rows of {text}-byte names");
            assert!(back.iter().all(|r| r.name.len() <= MAX_TEXT));
        }
        // Small rows share datagrams: 25 rows of ~48 bytes in one.
        let rows: Vec<ServerRow> = (0..25).map(|i| row(i, 10)).collect();
        assert_eq!(server_status_answer(1, &rows).len(), 1);
    }

    #[test]
    fn texts_are_cut_on_char_boundaries() {
        let mut r = row(0, 0);
        r.name = "é".repeat(200); // 400 bytes
        let b = r.bounded();
        assert_eq!(b.name.len(), 254);
        assert!(b.name.chars().all(|c| c == 'é'));
    }

    #[test]
    fn proxy_rows_convert_with_saturation() {
        let s = WebServerStatus {
            service: "web".into(),
            name: "web1".into(),
            address: "10.0.0.1:80".into(),
            state: BackendState::Down,
            weight: 1,
            avg_response_ms: 1.2345,
            hits: 9,
            open_connections: u64::MAX,
            active_requests: 0,
            failures: 0,
            session_groups: 4,
        };
        let r = ServerRow::from(&s);
        assert_eq!(
            (
                r.up,
                r.hits,
                r.open_connections,
                r.avg_response_us,
                r.session_groups
            ),
            (false, 9, u32::MAX, 1235, 4)
        );
        assert_eq!(micros(f64::NAN), 0);
        assert_eq!(micros(-1.0), 0);
        assert_eq!(micros(f64::INFINITY), u32::MAX);
        assert_eq!(micros(1e12), u32::MAX);
    }

    fn chunks_of(poll: u32, rows: &[ServerRow]) -> Vec<((u32, u16, u16), Vec<ServerRow>)> {
        server_status_answer(poll, rows)
            .into_iter()
            .map(|m| match m {
                Message::ServerStatus {
                    poll,
                    chunk,
                    chunks,
                    rows,
                } => ((poll, chunk, chunks), rows),
                other => panic!("{other:?}"),
            })
            .collect()
    }

    #[test]
    fn a_table_counts_only_once_complete_and_the_newest_poll_wins() {
        let mut t = ServerTables::default();
        let a = NodeId(2);
        let rows: Vec<ServerRow> = (0..100).map(|i| row(i, 30)).collect();
        let mut chunks = chunks_of(1, &rows);
        assert!(chunks.len() > 2);
        // Out of order, one duplicate: complete only when the last distinct chunk comes.
        let last = chunks.remove(0);
        for (h, r) in chunks.clone() {
            t.on_chunk(a, h, r, 10);
        }
        t.on_chunk(a, chunks[0].0, chunks[0].1.clone(), 11);
        assert_eq!(t.reports().count(), 0);
        t.on_chunk(a, last.0, last.1, 12);
        let (id, got, at) = t.reports().next().unwrap();
        assert_eq!((id, got.len(), at), (a, 100, 12));
        // A half answer of poll 2, then poll 3 complete: poll 3's rows, poll 2 forgotten.
        let two = chunks_of(2, &rows[..50]);
        t.on_chunk(a, two[0].0, two[0].1.clone(), 20);
        let three = chunks_of(3, &rows[..3]);
        for (h, r) in three {
            t.on_chunk(a, h, r, 21);
        }
        assert_eq!(t.reports().next().unwrap().1.len(), 3);
        for (h, r) in two.into_iter().skip(1) {
            t.on_chunk(a, h, r, 22);
        }
        assert_eq!(t.reports().next().unwrap().1.len(), 3, "incomplete poll 2");
        // An empty table replaces the old one; a failed node is forgotten.
        for (h, r) in chunks_of(4, &[]) {
            t.on_chunk(a, h, r, 30);
        }
        assert_eq!(t.reports().next().unwrap().1.len(), 0);
        t.forget(a);
        assert_eq!(t.reports().count(), 0);
        assert_eq!(t.dropped(), 0);
    }

    #[test]
    fn rows_beyond_the_bound_are_dropped_and_counted() {
        let mut t = ServerTables::default();
        t.set_own((0..MAX_SERVER_ROWS + 5).map(|i| row(i, 1)).collect());
        assert_eq!((t.own().len(), t.dropped()), (MAX_SERVER_ROWS, 5));
        // A hostile (but authenticated) peer: 1024 chunks of 56 rows each.
        let full: Vec<ServerRow> = (0..56).map(|_| ServerRow::default()).collect();
        for c in 0..1024u16 {
            t.on_chunk(NodeId(3), (9, c, 1024), full.clone(), 1);
        }
        let (_, rows, _) = t.reports().next().unwrap();
        assert_eq!(rows.len(), MAX_SERVER_ROWS);
        assert_eq!(t.dropped(), 5 + 1024 * 56 - MAX_SERVER_ROWS as u64);
        // Impossible chunk numbers (the decoder refuses them) change nothing.
        t.on_chunk(NodeId(4), (1, 5, 2), vec![ServerRow::default()], 1);
        assert_eq!(t.reports().count(), 1);
    }
}
