//! The `#[repr(C)]` twins of `bpf/scheduler.h`: what user space writes into and reads from the
//! XDP program's maps.
//!
//! Owns: the byte layout shared with the C program (each struct asserts its size; the tests
//! assert the offsets the C compiler gives the same struct) and the counter indices.
//! Must not: hold logic — the program's meaning lives in `bpf/scheduler.bpf.c`, the policy in
//! `pentaflow_balance`.

use pentaflow_balance::BucketEntry;

/// `PF_MAX_SERVICES`: (protocol, port) pairs the program checks.
pub const MAX_SERVICES: usize = 16;
/// `PF_MAX_NODES`: entries of the node map.
pub const MAX_NODES: u32 = 1024;
/// `PF_NEXT_LEN`: entries of the next-node sequence.
pub const NEXT_LEN: usize = 1024;
/// Bytes of `struct pf_next`: cursor, length, lease, the sequence.
pub const NEXT_BYTES: usize = 16 + 4 * NEXT_LEN;
/// `PF_UNASSIGNED`, balance's `BucketEntry::UNASSIGNED`.
pub const UNASSIGNED: u32 = BucketEntry::UNASSIGNED as u32;

/// `PF_STAT_PASSED`: frames not ours, passed to the kernel, start here (+ the reason's
/// index); below it, frames of ours dropped, by reason.
pub const STAT_PASSED: u32 = 8;
/// `PF_STAT_IPV6`: IPv6 frames passed to the kernel unexamined.
pub const STAT_IPV6: u32 = 16;
/// `PF_STAT_FORWARDED`: frames sent back out with `XDP_TX`.
pub const STAT_FORWARDED: u32 = 17;
/// `PF_STAT_LOCAL`: frames the scheduler serves itself (`XDP_PASS`).
pub const STAT_LOCAL: u32 = 18;
/// `PF_STAT_ASSIGNED`: buckets the program assigned (each reported on the ring buffer).
pub const STAT_ASSIGNED: u32 = 19;
/// `PF_STAT_EVENTS_LOST`: assignments made while the ring buffer was full.
pub const STAT_EVENTS_LOST: u32 = 20;
/// `PF_STAT_COUNT`.
pub const STAT_COUNT: u32 = 21;

/// `struct pf_service`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Service {
    /// IP protocol number (6 TCP, 17 UDP).
    pub proto: u8,
    /// Zero.
    pub reserved: u8,
    /// Port in network order (as the packet holds it).
    pub port_be: u16,
}

/// `struct pf_config`: one entry, the addressing of the program.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Config {
    /// The VIP in network order.
    pub vip_be: u32,
    /// Table size − 1.
    pub bucket_mask: u32,
    /// This node's number.
    pub self_id: u16,
    /// The LAN interface's MAC.
    pub lan_mac: [u8; 6],
    /// 1 = assign new buckets, 0 = hold every flow (takeover merge).
    pub accepting: u8,
    /// Entries of `services` in use.
    pub n_services: u8,
    /// Zero.
    pub reserved: u16,
    /// The served (protocol, port) pairs.
    pub services: [Service; MAX_SERVICES],
}

/// `struct pf_node`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Node {
    /// The node's LAN MAC.
    pub mac: [u8; 6],
    /// 1 if alive (a dead node's buckets take the next node).
    pub alive: u8,
    /// Zero.
    pub reserved: u8,
}

/// `struct pf_event`: one assignment made by the program (read from the ring buffer's bytes
/// with [`Event::from_bytes`], no cast).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Event {
    /// The bucket.
    pub bucket: u32,
    /// The node it went to.
    pub node: u16,
    /// Zero.
    pub reserved: u16,
    /// `bpf_ktime_get_ns()` of the assignment.
    pub at: u64,
}

const _: () = assert!(std::mem::size_of::<Service>() == 4);
const _: () = assert!(std::mem::size_of::<Config>() == 20 + 4 * MAX_SERVICES);
const _: () = assert!(std::mem::size_of::<Node>() == 8);
const _: () = assert!(std::mem::size_of::<Event>() == 16);

// SAFETY (all three): `aya::Pod` requires plain data that any bit pattern makes valid and that
// has no padding the kernel could leak or read uninitialised. These are `#[repr(C)]` structs
// of integers and integer arrays whose explicit `reserved` fields fill every gap (the sizes
// are asserted above), exactly like `struct pf_*` in bpf/scheduler.h.
#[allow(unsafe_code)]
unsafe impl aya::Pod for Service {}
#[allow(unsafe_code)]
unsafe impl aya::Pod for Config {}
#[allow(unsafe_code)]
unsafe impl aya::Pod for Node {}

/// The bucket table's entry as the map stores it (balance's type, 16 bytes, no padding).
#[repr(transparent)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bucket(pub BucketEntry);

// SAFETY: `BucketEntry` is `#[repr(C)]` { u16, [u16; 3], u64 }: 16 bytes with no implicit
// padding (asserted in pentaflow-balance), every bit pattern valid.
#[allow(unsafe_code)]
unsafe impl aya::Pod for Bucket {}

impl Event {
    /// Reads an event from a ring buffer record; `None` if it is too short.
    #[must_use]
    pub fn from_bytes(b: &[u8]) -> Option<Event> {
        Some(Event {
            bucket: u32::from_ne_bytes(b.get(0..4)?.try_into().ok()?),
            node: u16::from_ne_bytes(b.get(4..6)?.try_into().ok()?),
            reserved: 0,
            at: u64::from_ne_bytes(b.get(8..16)?.try_into().ok()?),
        })
    }
}
