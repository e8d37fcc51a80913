//! The control-plane messages of an array and their compact binary encoding.
//!
//! Owns: the [`Message`] set (seed 004's ID message as [`Message::Announce`], table snapshot and
//! deltas, version checks, the live-bucket query of a takeover, two-phase config push, node
//! status polling with each node's Web Server Status Table), the [`Envelope`] header every
//! datagram carries, and [`encode`]/[`decode`].
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

use body::{decode_body, encode_body, Reader};

mod body;

/// Version byte of the encoding; a node drops datagrams of any other version (and counts them).
pub const WIRE_VERSION: u8 = 2;

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

/// Most members one [`Announce`] vouches for (4 bytes each; an array is far smaller, and
/// 256 × 4 bytes still fits a datagram with the rest of the announcement).
pub const MAX_HEARD: usize = 256;

/// Buckets per [`Message::LiveBuckets`] chunk: 4 bytes each after a 10-byte header.
pub const LIVE_CHUNK: usize = 300;

/// Config text bytes per [`Message::ConfigPush`] chunk, after a 26-byte header.
pub const CONFIG_CHUNK: usize = 1200;

/// Longest reason text in a [`Message::ConfigAck`] (longer reasons are cut on a char boundary).
pub const MAX_REASON: usize = 512;

/// Longest text field of a [`ServerRow`] in bytes (service, back-end name, address; a
/// one-byte length on the wire; longer texts are cut on a char boundary). A row of three
/// such texts still fits one datagram, so a [`Message::ServerStatus`] chunk always has a row.
pub const MAX_TEXT: usize = 255;

/// Most back-end rows one node reports (its whole Web Server Status Table); rows beyond are
/// dropped and counted. Bounds what the scheduler keeps per node and the datagrams of one
/// answer (at most one per row, usually ~30 rows per datagram).
pub const MAX_SERVER_ROWS: usize = 1024;

/// Bytes of a [`Message::ServerStatus`] body before its rows: poll, chunk, chunks, count.
pub const SERVER_CHUNK_HEADER: usize = 10;

/// Bytes of a [`ServerRow`] besides its texts: three lengths, up, hits, open connections,
/// average response, session groups.
pub const SERVER_ROW_FIXED: usize = 3 + 1 + 8 + 4 + 4 + 4;

/// Bytes of rows one [`Message::ServerStatus`] chunk may carry (1352).
pub const SERVER_CHUNK_ROOM: usize = MAX_DATAGRAM - HEADER_LEN - TAG_LEN - SERVER_CHUNK_HEADER;

/// Most rows one chunk can hold (all texts empty); a larger count is refused before anything
/// is allocated.
pub const MAX_CHUNK_ROWS: usize = SERVER_CHUNK_ROOM / SERVER_ROW_FIXED;

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
    /// The members this node considers alive, each with the ms since this node last heard it
    /// directly (capped at `u16::MAX`): indirect evidence for the others' failure detectors
    /// (a member one node lost a few announcements of is still heard by another), in id
    /// order, at most [`MAX_HEARD`].
    pub heard: Vec<(NodeId, u16)>,
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

/// One back-end as one node sees it: a row of that node's Web Server Status Table (seed 002
/// Fig. 7) as it travels to the scheduler for the Summary table (Fig. 8).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServerRow {
    /// The service (site) the back-end belongs to, at most [`MAX_TEXT`] bytes.
    pub service: String,
    /// The back-end's configured name, at most [`MAX_TEXT`] bytes.
    pub name: String,
    /// The back-end's address (`host:port`), at most [`MAX_TEXT`] bytes.
    pub address: String,
    /// Up (passing health checks) as this node sees it.
    pub up: bool,
    /// Requests this node sent to it since start.
    pub hits: u64,
    /// Connections this node has open to it now.
    pub open_connections: u32,
    /// Average response time in microseconds, as this node measured it.
    pub avg_response_us: u32,
    /// Session / cookie hash groups this node assigned to it.
    pub session_groups: u32,
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
    /// One chunk of the polled node's Web Server Status Table, sent right after its
    /// [`Message::NodeStatus`] answer.
    ServerStatus {
        /// The poll answered.
        poll: u32,
        /// Index of this chunk, `0..chunks`.
        chunk: u16,
        /// Number of chunks of the answer (at least 1, even for no rows; at most
        /// [`MAX_SERVER_ROWS`]).
        chunks: u16,
        /// Rows of this chunk (together at most [`SERVER_CHUNK_ROOM`] bytes encoded).
        rows: Vec<ServerRow>,
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
    /// A text field (other than a reason) is not UTF-8.
    #[error("message kind {kind}: {field} is not UTF-8")]
    BadText {
        /// The kind byte.
        kind: u8,
        /// Which field.
        field: &'static str,
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

impl ServerRow {
    /// Bytes this row takes on the wire (texts longer than [`MAX_TEXT`] count as cut).
    #[must_use]
    pub fn encoded_len(&self) -> usize {
        let text = |s: &str| body::truncate_reason(s, MAX_TEXT).len();
        SERVER_ROW_FIXED + text(&self.service) + text(&self.name) + text(&self.address)
    }

    /// The row with its texts cut to [`MAX_TEXT`] bytes on char boundaries, as the wire
    /// carries it (so a node's own rows and what the scheduler receives of them agree).
    #[must_use]
    pub fn bounded(mut self) -> Self {
        for s in [&mut self.service, &mut self.name, &mut self.address] {
            let keep = body::truncate_reason(s, MAX_TEXT).len();
            s.truncate(keep);
        }
        self
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
            Message::ServerStatus { .. } => 13,
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

#[cfg(test)]
#[path = "wire_tests.rs"]
mod tests;
