//! The bodies of the wire messages: field by field, big-endian, every count checked against
//! the bytes left before anything is allocated.
//!
//! Must not: panic on any input (every read goes through the bounds-checked [`Reader`]).

use pentaflow_balance::NodeId;

use super::{
    Announce, Message, NodeStatus, Role, ServerRow, WireError, CONFIG_CHUNK, DELTA_CHUNK,
    LIVE_CHUNK, MAX_CHUNK_ROWS, MAX_HEARD, MAX_REASON, MAX_SERVER_ROWS, MAX_TEXT, NO_NODE,
    NO_VERSION, SERVER_ROW_FIXED, SNAPSHOT_CHUNK,
};

fn node_raw(n: Option<NodeId>) -> u16 {
    n.map_or(NO_NODE, |n| n.0)
}

fn raw_node(raw: u16) -> Option<NodeId> {
    (raw != NO_NODE).then_some(NodeId(raw))
}

/// Cut `s` to at most `max` bytes on a char boundary.
pub(super) fn truncate_reason(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// A text with a one-byte length, cut to [`MAX_TEXT`] bytes on a char boundary.
fn encode_text(s: &str, o: &mut Vec<u8>) {
    let s = truncate_reason(s, MAX_TEXT);
    // MAX_TEXT is 255, so the length always fits the byte.
    o.push(u8::try_from(s.len()).unwrap_or(u8::MAX));
    o.extend_from_slice(s.as_bytes());
}

fn encode_row(row: &ServerRow, o: &mut Vec<u8>) {
    encode_text(&row.service, o);
    encode_text(&row.name, o);
    encode_text(&row.address, o);
    o.push(u8::from(row.up));
    o.extend_from_slice(&row.hits.to_be_bytes());
    o.extend_from_slice(&row.open_connections.to_be_bytes());
    o.extend_from_slice(&row.avg_response_us.to_be_bytes());
    o.extend_from_slice(&row.session_groups.to_be_bytes());
}

fn decode_row(r: &mut Reader<'_>) -> Result<ServerRow, WireError> {
    Ok(ServerRow {
        service: r.text("service")?,
        name: r.text("name")?,
        address: r.text("address")?,
        up: match r.u8()? {
            0 => false,
            1 => true,
            _ => {
                return Err(WireError::BadField {
                    kind: r.kind,
                    field: "up",
                })
            }
        },
        hits: r.u64()?,
        open_connections: r.u32()?,
        avg_response_us: r.u32()?,
        session_groups: r.u32()?,
    })
}

pub(super) fn encode_body(m: &Message, o: &mut Vec<u8>) {
    // Counts are written as u16: every list is bounded by its chunk constant, far below 65,535;
    // a longer list is cut here and then refused by `encode`'s size check.
    let count = |n: usize| u16::try_from(n).unwrap_or(u16::MAX).to_be_bytes();
    match m {
        Message::Announce(a) => {
            o.push(a.role.to_byte());
            o.push(a.priority);
            o.push(u8::from(a.enabled));
            o.extend_from_slice(&a.weight.to_be_bytes());
            o.extend_from_slice(&a.table_version.to_be_bytes());
            o.extend_from_slice(&a.config_version.to_be_bytes());
            o.extend_from_slice(&a.load.to_be_bytes());
            o.extend_from_slice(&node_raw(a.following).to_be_bytes());
            let heard = &a.heard[..a.heard.len().min(MAX_HEARD)];
            o.extend_from_slice(&count(heard.len()));
            for (id, age) in heard {
                o.extend_from_slice(&id.0.to_be_bytes());
                o.extend_from_slice(&age.to_be_bytes());
            }
        }
        Message::TableSnapshotRequest { have } => {
            o.extend_from_slice(&have.unwrap_or(NO_VERSION).to_be_bytes());
        }
        Message::TableSnapshot {
            version,
            size,
            start,
            nodes,
        } => {
            o.extend_from_slice(&version.to_be_bytes());
            o.extend_from_slice(&size.to_be_bytes());
            o.extend_from_slice(&start.to_be_bytes());
            o.extend_from_slice(&count(nodes.len()));
            for n in nodes {
                o.extend_from_slice(&node_raw(*n).to_be_bytes());
            }
        }
        Message::TableDelta {
            base,
            version,
            changes,
        } => {
            o.extend_from_slice(&base.to_be_bytes());
            o.extend_from_slice(&version.to_be_bytes());
            o.extend_from_slice(&count(changes.len()));
            for (b, n) in changes {
                o.extend_from_slice(&b.to_be_bytes());
                o.extend_from_slice(&node_raw(*n).to_be_bytes());
            }
        }
        Message::VersionCheck {
            table_version,
            config_version,
        } => {
            o.extend_from_slice(&table_version.to_be_bytes());
            o.extend_from_slice(&config_version.to_be_bytes());
        }
        Message::LiveBucketsQuery { query } => o.extend_from_slice(&query.to_be_bytes()),
        Message::LiveBuckets {
            query,
            chunk,
            chunks,
            buckets,
        } => {
            o.extend_from_slice(&query.to_be_bytes());
            o.extend_from_slice(&chunk.to_be_bytes());
            o.extend_from_slice(&chunks.to_be_bytes());
            o.extend_from_slice(&count(buckets.len()));
            for b in buckets {
                o.extend_from_slice(&b.to_be_bytes());
            }
        }
        Message::ConfigPush {
            proposal,
            version,
            total,
            offset,
            bytes,
        } => {
            o.extend_from_slice(&proposal.to_be_bytes());
            o.extend_from_slice(&version.to_be_bytes());
            o.extend_from_slice(&total.to_be_bytes());
            o.extend_from_slice(&offset.to_be_bytes());
            o.extend_from_slice(&count(bytes.len()));
            o.extend_from_slice(bytes);
        }
        Message::ConfigCommit { proposal, version } => {
            o.extend_from_slice(&proposal.to_be_bytes());
            o.extend_from_slice(&version.to_be_bytes());
        }
        Message::ConfigAck { proposal, verdict } => {
            o.extend_from_slice(&proposal.to_be_bytes());
            match verdict {
                Ok(()) => o.push(1),
                Err(reason) => {
                    o.push(0);
                    let reason = truncate_reason(reason, MAX_REASON);
                    o.extend_from_slice(&count(reason.len()));
                    o.extend_from_slice(reason.as_bytes());
                }
            }
        }
        Message::NodeStatusQuery { poll } => o.extend_from_slice(&poll.to_be_bytes()),
        Message::NodeStatus { poll, status } => {
            o.extend_from_slice(&poll.to_be_bytes());
            o.extend_from_slice(&status.open_connections.to_be_bytes());
            o.extend_from_slice(&status.hits.to_be_bytes());
            o.extend_from_slice(&status.avg_response_us.to_be_bytes());
            o.extend_from_slice(&status.live_buckets.to_be_bytes());
        }
        Message::ServerStatus {
            poll,
            chunk,
            chunks,
            rows,
        } => {
            o.extend_from_slice(&poll.to_be_bytes());
            o.extend_from_slice(&chunk.to_be_bytes());
            o.extend_from_slice(&chunks.to_be_bytes());
            o.extend_from_slice(&count(rows.len()));
            for row in rows {
                encode_row(row, o);
            }
        }
    }
}

pub(super) fn decode_body(kind: u8, r: &mut Reader<'_>) -> Result<Message, WireError> {
    let bad = |field| WireError::BadField { kind, field };
    Ok(match kind {
        1 => Message::Announce(Announce {
            role: Role::from_byte(r.u8()?).ok_or(bad("role"))?,
            priority: r.u8()?,
            enabled: match r.u8()? {
                0 => false,
                1 => true,
                _ => return Err(bad("enabled")),
            },
            weight: r.u32()?,
            table_version: r.u64()?,
            config_version: r.u64()?,
            load: r.u16()?,
            following: raw_node(r.u16()?),
            heard: {
                let n = r.count(4, MAX_HEARD)?;
                let mut heard = Vec::with_capacity(n);
                for _ in 0..n {
                    heard.push((NodeId(r.u16()?), r.u16()?));
                }
                heard
            },
        }),
        2 => Message::TableSnapshotRequest {
            have: Some(r.u64()?).filter(|&v| v != NO_VERSION),
        },
        3 => {
            let version = r.u64()?;
            let size = r.u32()?;
            let start = r.u32()?;
            let n = r.count(2, SNAPSHOT_CHUNK)?;
            let mut nodes = Vec::with_capacity(n);
            for _ in 0..n {
                nodes.push(raw_node(r.u16()?));
            }
            Message::TableSnapshot {
                version,
                size,
                start,
                nodes,
            }
        }
        4 => {
            let base = r.u64()?;
            let version = r.u64()?;
            let n = r.count(6, DELTA_CHUNK)?;
            let mut changes = Vec::with_capacity(n);
            for _ in 0..n {
                changes.push((r.u32()?, raw_node(r.u16()?)));
            }
            Message::TableDelta {
                base,
                version,
                changes,
            }
        }
        5 => Message::VersionCheck {
            table_version: r.u64()?,
            config_version: r.u64()?,
        },
        6 => Message::LiveBucketsQuery { query: r.u32()? },
        7 => {
            let query = r.u32()?;
            let chunk = r.u16()?;
            let chunks = r.u16()?;
            if chunks == 0 || chunk >= chunks {
                return Err(bad("chunk"));
            }
            let n = r.count(4, LIVE_CHUNK)?;
            let mut buckets = Vec::with_capacity(n);
            for _ in 0..n {
                buckets.push(r.u32()?);
            }
            Message::LiveBuckets {
                query,
                chunk,
                chunks,
                buckets,
            }
        }
        8 => {
            let proposal = r.u64()?;
            let version = r.u64()?;
            let total = r.u32()?;
            let offset = r.u32()?;
            let n = r.count(1, CONFIG_CHUNK)?;
            let bytes = r.take(n)?.to_vec();
            Message::ConfigPush {
                proposal,
                version,
                total,
                offset,
                bytes,
            }
        }
        9 => Message::ConfigCommit {
            proposal: r.u64()?,
            version: r.u64()?,
        },
        10 => {
            let proposal = r.u64()?;
            let verdict = match r.u8()? {
                1 => Ok(()),
                0 => {
                    let n = r.count(1, MAX_REASON)?;
                    let text = std::str::from_utf8(r.take(n)?)
                        .map_err(|source| WireError::BadUtf8 { kind, source })?;
                    Err(text.to_owned())
                }
                _ => return Err(bad("verdict")),
            };
            Message::ConfigAck { proposal, verdict }
        }
        11 => Message::NodeStatusQuery { poll: r.u32()? },
        12 => Message::NodeStatus {
            poll: r.u32()?,
            status: NodeStatus {
                open_connections: r.u32()?,
                hits: r.u64()?,
                avg_response_us: r.u32()?,
                live_buckets: r.u32()?,
            },
        },
        13 => {
            let poll = r.u32()?;
            let chunk = r.u16()?;
            let chunks = r.u16()?;
            if chunks == 0 || chunk >= chunks || usize::from(chunks) > MAX_SERVER_ROWS {
                return Err(bad("chunk"));
            }
            // Each row is at least SERVER_ROW_FIXED bytes: the count is checked against the
            // bytes left before the vector is allocated; the texts are checked as read.
            let n = r.count(SERVER_ROW_FIXED, MAX_CHUNK_ROWS)?;
            let mut rows = Vec::with_capacity(n);
            for _ in 0..n {
                rows.push(decode_row(r)?);
            }
            Message::ServerStatus {
                poll,
                chunk,
                chunks,
                rows,
            }
        }
        _ => return Err(WireError::UnknownKind { kind }),
    })
}

/// A bounds-checked cursor: every read either returns the field or `Truncated`.
pub(super) struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
    /// The message kind, for error reports.
    pub(super) kind: u8,
}

impl<'a> Reader<'a> {
    pub(super) fn new(bytes: &'a [u8], kind: u8) -> Self {
        Self { bytes, at: 0, kind }
    }

    pub(super) fn left(&self) -> usize {
        self.bytes.len() - self.at
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.bytes.len());
        let Some(end) = end else {
            return Err(WireError::Truncated {
                kind: self.kind,
                at: self.at,
            });
        };
        let s = &self.bytes[self.at..end];
        self.at = end;
        Ok(s)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], WireError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    pub(super) fn u8(&mut self) -> Result<u8, WireError> {
        Ok(self.array::<1>()?[0])
    }

    pub(super) fn u16(&mut self) -> Result<u16, WireError> {
        Ok(u16::from_be_bytes(self.array()?))
    }

    fn u32(&mut self) -> Result<u32, WireError> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    pub(super) fn u64(&mut self) -> Result<u64, WireError> {
        Ok(u64::from_be_bytes(self.array()?))
    }

    /// A text with a one-byte length (at most [`MAX_TEXT`] by construction), UTF-8 checked.
    fn text(&mut self, field: &'static str) -> Result<String, WireError> {
        let n = usize::from(self.u8()?);
        let kind = self.kind;
        let bytes = self.take(n)?;
        std::str::from_utf8(bytes)
            .map(str::to_owned)
            .map_err(|source| WireError::BadText {
                kind,
                field,
                source,
            })
    }

    /// A u16 element count, refused if above `max` or if the elements (`each` bytes) cannot
    /// be in the bytes left — checked before anything is allocated.
    fn count(&mut self, each: usize, max: usize) -> Result<usize, WireError> {
        let n = usize::from(self.u16()?);
        if n > max {
            return Err(WireError::BadField {
                kind: self.kind,
                field: "count",
            });
        }
        if n * each > self.left() {
            return Err(WireError::Truncated {
                kind: self.kind,
                at: self.at,
            });
        }
        Ok(n)
    }
}
