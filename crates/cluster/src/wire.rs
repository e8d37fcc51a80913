//! The control-plane messages of an array and their compact binary encoding.
//!
//! Owns: the [`Message`] set (seed 004's ID message as [`Message::Announce`], table snapshot and
//! deltas, version checks, the live-bucket query of a takeover, two-phase config push, node
//! status polling), the [`Envelope`] header every datagram carries, and [`encode`]/[`decode`].
//!
//! Layout of a datagram (all integers big-endian):
//!
//! ```text
//! 0      version   u8   = WIRE_VERSION
//! 1      kind      u8   which Message
//! 2..4   from      u16  sender's node id
//! 4..6   to        u16  receiver's node id, 0xFFFF = every node
//! 6..14  incarnation u64 sender's start-up number (a restart picks a larger one)
//! 14..22 sequence  u64  per-incarnation counter, never reused
//! 22..   body           per kind, see `encode_body`
//! last 16 bytes         HMAC-SHA256 tag, added by `crate::auth`
//! ```
//!
//! Must not: panic on any input, allocate more than the datagram announces it carries (every
//! count is checked against the bytes left before anything is allocated), or know about keys,
//! replay windows or sockets (see `crate::auth` and `crate::shell`).

use pentaflow_balance::NodeId;

/// Version byte of the encoding; a node drops datagrams of any other version (and counts them).
pub const WIRE_VERSION: u8 = 1;

/// Largest datagram a node sends: below a 1500-byte Ethernet MTU with room for IP/UDP headers
/// and any encapsulation a network adds.
pub const MAX_DATAGRAM: usize = 1400;

/// Bytes of the fixed header before the body.
pub const HEADER_LEN: usize = 22;

/// Bytes of the authentication tag at the end of every datagram (HMAC-SHA256 truncated to
/// 128 bits: forging it takes 2^128 tries, far beyond a LAN attacker).
pub const TAG_LEN: usize = 16;

/// The `to` value meaning "every node".
const BROADCAST: u16 = u16::MAX;

/// The raw node number meaning "unassigned" or "none" on the wire (the balance crate's
/// reserved id).
const NO_NODE: u16 = u16::MAX;

/// The `have` value meaning "no version: send the whole table".
const NO_VERSION: u64 = u64::MAX;

/// Buckets per [`Message::TableSnapshot`] chunk: 2 bytes each after an 18-byte chunk header
/// (640 × 2 + 18 = 1298 ≤ 1362 bytes of room). 65,536 buckets take 103 datagrams.
pub const SNAPSHOT_CHUNK: usize = 640;

/// Changes per [`Message::TableDelta`]: 6 bytes each after an 18-byte header.
pub const DELTA_CHUNK: usize = 200;

/// Buckets per [`Message::LiveBuckets`] chunk: 4 bytes each after a 10-byte header.
pub const LIVE_CHUNK: usize = 300;

/// Config text bytes per [`Message::ConfigPush`] chunk, after a 26-byte header.
pub const CONFIG_CHUNK: usize = 1200;

/// Longest reason text in a [`Message::ConfigAck`] (longer reasons are cut on a char boundary).
pub const MAX_REASON: usize = 512;

/// Where a message goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Destination {
    /// Every node of the array.
    Broadcast,
    /// One node.
    Node(NodeId),
}

/// What a node currently does in the array.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Role {
    /// Just started: listening for `dead_after` to learn the members and the scheduler.
    Starting,
    /// A serving node that follows the scheduler and keeps a replica of its table.
    Standby,
    /// Holds the VIP, routes inbound frames and owns the bucket table.
    Scheduler,
}

/// Seed 004's ID message: who a node is and what it knows, sent every `interval`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Announce {
    /// Current role.
    pub role: Role,
    /// Election priority: the highest wins, ties to the lowest id.
    pub priority: u8,
    /// Administratively enabled (false = draining: keeps its buckets, gets no new ones).
    pub enabled: bool,
    /// Configured weight for new buckets.
    pub weight: u32,
    /// Version of the node's bucket table (replica or authority).
    pub table_version: u64,
    /// Version of the node's active configuration.
    pub config_version: u64,
    /// Load in per mille (0 = idle, 1000 = saturated), informational.
    pub load: u16,
    /// The scheduler this node follows, if any.
    pub following: Option<NodeId>,
}

/// The status a node reports when polled (seed 002, Fig. 5 dynamic columns).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NodeStatus {
    /// Client connections open now.
    pub open_connections: u32,
    /// Requests served since start.
    pub hits: u64,
    /// Average response time in microseconds.
    pub avg_response_us: u32,
    /// Buckets with a live client connection on this node.
    pub live_buckets: u32,
}

/// Every message of the array.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Message {
    /// ID message, see [`Announce`].
    Announce(Announce),
    /// "Bring my table up to date": the deltas since `have` if the scheduler still holds them,
    /// else (or with `have: None`) the whole table.
    TableSnapshotRequest {
        /// The requester's version, `None` to ask for a full snapshot.
        have: Option<u64>,
    },
    /// One chunk of a table: the node of buckets `start..start + nodes.len()`.
    TableSnapshot {
        /// Version of the table this chunk belongs to.
        version: u64,
        /// Number of buckets of the table.
        size: u32,
        /// First bucket of this chunk, a multiple of [`SNAPSHOT_CHUNK`].
        start: u32,
        /// Node of each bucket of the chunk, `None` = unassigned.
        nodes: Vec<Option<NodeId>>,
    },
    /// Changes taking a table from `base` to `version`.
    TableDelta {
        /// Version the changes apply to.
        base: u64,
        /// Version after them.
        version: u64,
        /// `(bucket, node)`, `None` = unassigned.
        changes: Vec<(u32, Option<NodeId>)>,
    },
    /// The scheduler's periodic "my table is at this version".
    VersionCheck {
        /// The scheduler's table version.
        table_version: u64,
        /// The scheduler's config version.
        config_version: u64,
    },
    /// A new scheduler asks which buckets each node's live connections belong to.
    LiveBucketsQuery {
        /// Identifies the takeover, echoed in the answers.
        query: u32,
    },
    /// One chunk of an answer to [`Message::LiveBucketsQuery`].
    LiveBuckets {
        /// The query answered.
        query: u32,
        /// Index of this chunk, `0..chunks`.
        chunk: u16,
        /// Number of chunks of the answer (at least 1, even for no buckets).
        chunks: u16,
        /// Buckets of this chunk.
        buckets: Vec<u32>,
    },
    /// One chunk of a proposed configuration (phase one).
    ConfigPush {
        /// Identifies the proposal.
        proposal: u64,
        /// Version the config gets if committed.
        version: u64,
        /// Length of the whole text in bytes.
        total: u32,
        /// Offset of this chunk, a multiple of [`CONFIG_CHUNK`].
        offset: u32,
        /// The chunk's bytes (UTF-8 once reassembled).
        bytes: Vec<u8>,
    },
    /// Make a validated proposal active (phase two).
    ConfigCommit {
        /// The proposal.
        proposal: u64,
        /// Its version.
        version: u64,
    },
    /// A node's verdict on a pushed proposal.
    ConfigAck {
        /// The proposal.
        proposal: u64,
        /// `Ok` if it validated, else why not.
        verdict: Result<(), String>,
    },
    /// The scheduler polls one node's status.
    NodeStatusQuery {
        /// Identifies the poll, echoed in the answer.
        poll: u32,
    },
    /// Answer to [`Message::NodeStatusQuery`].
    NodeStatus {
        /// The poll answered.
        poll: u32,
        /// The status.
        status: NodeStatus,
    },
}

/// A message with its header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Envelope {
    /// Sender.
    pub from: NodeId,
    /// Receiver(s).
    pub to: Destination,
    /// Sender's incarnation.
    pub incarnation: u64,
    /// Sender's sequence number within the incarnation.
    pub sequence: u64,
    /// The message.
    pub message: Message,
}

/// Why bytes are not a well-formed datagram.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum WireError {
    /// Shorter than header and tag.
    #[error("datagram of {len} bytes is shorter than the {min}-byte minimum")]
    TooShort {
        /// Length received.
        len: usize,
        /// Minimum length.
        min: usize,
    },
    /// Longer than [`MAX_DATAGRAM`].
    #[error("datagram of {len} bytes is longer than {MAX_DATAGRAM}")]
    TooLong {
        /// Length received.
        len: usize,
    },
    /// A version byte this node does not speak.
    #[error("wire version {version} is not {WIRE_VERSION}")]
    BadVersion {
        /// The version byte received.
        version: u8,
    },
    /// An unknown message kind.
    #[error("unknown message kind {kind}")]
    UnknownKind {
        /// The kind byte.
        kind: u8,
    },
    /// The body ends before a field.
    #[error("message kind {kind} is truncated at byte {at}")]
    Truncated {
        /// The kind byte.
        kind: u8,
        /// Offset in the body where a field was cut.
        at: usize,
    },
    /// Bytes left after the body.
    #[error("message kind {kind} has {extra} trailing bytes")]
    Trailing {
        /// The kind byte.
        kind: u8,
        /// How many.
        extra: usize,
    },
    /// A field has a value no sender produces.
    #[error("message kind {kind}: bad {field}")]
    BadField {
        /// The kind byte.
        kind: u8,
        /// Which field.
        field: &'static str,
    },
    /// A reason text is not UTF-8.
    #[error("message kind {kind}: reason is not UTF-8")]
    BadUtf8 {
        /// The kind byte.
        kind: u8,
        /// The decoding error.
        #[source]
        source: std::str::Utf8Error,
    },
    /// The encoded message would not fit one datagram (a sender bug: chunking is the caller's).
    #[error("message kind {kind} needs {len} bytes, more than one datagram")]
    Oversized {
        /// The kind byte.
        kind: u8,
        /// Bytes needed.
        len: usize,
    },
}

impl Role {
    fn to_byte(self) -> u8 {
        match self {
            Role::Starting => 0,
            Role::Standby => 1,
            Role::Scheduler => 2,
        }
    }

    fn from_byte(b: u8) -> Option<Self> {
        match b {
            0 => Some(Role::Starting),
            1 => Some(Role::Standby),
            2 => Some(Role::Scheduler),
            _ => None,
        }
    }
}

impl Message {
    /// The kind byte of this message on the wire.
    #[must_use]
    pub fn kind(&self) -> u8 {
        match self {
            Message::Announce(_) => 1,
            Message::TableSnapshotRequest { .. } => 2,
            Message::TableSnapshot { .. } => 3,
            Message::TableDelta { .. } => 4,
            Message::VersionCheck { .. } => 5,
            Message::LiveBucketsQuery { .. } => 6,
            Message::LiveBuckets { .. } => 7,
            Message::ConfigPush { .. } => 8,
            Message::ConfigCommit { .. } => 9,
            Message::ConfigAck { .. } => 10,
            Message::NodeStatusQuery { .. } => 11,
            Message::NodeStatus { .. } => 12,
        }
    }
}

/// Encode an envelope without its tag (`crate::auth` appends it). Fails only if the message is
/// too big for one datagram, which the chunking constants above rule out for messages this
/// crate builds.
pub fn encode(env: &Envelope) -> Result<Vec<u8>, WireError> {
    let mut out = Vec::with_capacity(256);
    out.push(WIRE_VERSION);
    out.push(env.message.kind());
    out.extend_from_slice(&env.from.0.to_be_bytes());
    let to = match env.to {
        Destination::Broadcast => BROADCAST,
        Destination::Node(n) => n.0,
    };
    out.extend_from_slice(&to.to_be_bytes());
    out.extend_from_slice(&env.incarnation.to_be_bytes());
    out.extend_from_slice(&env.sequence.to_be_bytes());
    encode_body(&env.message, &mut out);
    if out.len() + TAG_LEN > MAX_DATAGRAM {
        return Err(WireError::Oversized {
            kind: env.message.kind(),
            len: out.len() + TAG_LEN,
        });
    }
    Ok(out)
}

/// Decode a datagram *without* its tag (the caller has checked and removed it).
pub fn decode(bytes: &[u8]) -> Result<Envelope, WireError> {
    if bytes.len() < HEADER_LEN {
        return Err(WireError::TooShort {
            len: bytes.len(),
            min: HEADER_LEN,
        });
    }
    if bytes.len() + TAG_LEN > MAX_DATAGRAM {
        return Err(WireError::TooLong {
            len: bytes.len() + TAG_LEN,
        });
    }
    let mut r = Reader::new(bytes, 0);
    let version = r.u8()?;
    if version != WIRE_VERSION {
        return Err(WireError::BadVersion { version });
    }
    let kind = r.u8()?;
    r.kind = kind;
    let from = NodeId(r.u16()?);
    let to = match r.u16()? {
        BROADCAST => Destination::Broadcast,
        n => Destination::Node(NodeId(n)),
    };
    let incarnation = r.u64()?;
    let sequence = r.u64()?;
    let message = decode_body(kind, &mut r)?;
    if r.left() > 0 {
        return Err(WireError::Trailing {
            kind,
            extra: r.left(),
        });
    }
    Ok(Envelope {
        from,
        to,
        incarnation,
        sequence,
        message,
    })
}

fn node_raw(n: Option<NodeId>) -> u16 {
    n.map_or(NO_NODE, |n| n.0)
}

fn raw_node(raw: u16) -> Option<NodeId> {
    (raw != NO_NODE).then_some(NodeId(raw))
}

/// Cut `s` to at most `max` bytes on a char boundary.
pub(crate) fn truncate_reason(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

fn encode_body(m: &Message, o: &mut Vec<u8>) {
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
    }
}

fn decode_body(kind: u8, r: &mut Reader<'_>) -> Result<Message, WireError> {
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
        _ => return Err(WireError::UnknownKind { kind }),
    })
}

/// A bounds-checked cursor: every read either returns the field or `Truncated`.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
    kind: u8,
}

impl<'a> Reader<'a> {
    fn new(bytes: &'a [u8], kind: u8) -> Self {
        Self { bytes, at: 0, kind }
    }

    fn left(&self) -> usize {
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

    fn u8(&mut self) -> Result<u8, WireError> {
        Ok(self.array::<1>()?[0])
    }

    fn u16(&mut self) -> Result<u16, WireError> {
        Ok(u16::from_be_bytes(self.array()?))
    }

    fn u32(&mut self) -> Result<u32, WireError> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    fn u64(&mut self) -> Result<u64, WireError> {
        Ok(u64::from_be_bytes(self.array()?))
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

#[cfg(test)]
#[path = "wire_tests.rs"]
mod tests;
