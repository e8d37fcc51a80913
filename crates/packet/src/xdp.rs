//! The XDP data plane: the scheduler's per-frame work in the kernel, fed from user space.
//!
//! Owns: loading `bpf/scheduler.bpf.c` (compiled by `build.rs`), its maps, attaching it to
//! the LAN interface in native or generic mode, and [`XdpSchedule`] — the user-space half
//! that keeps the bucket table's policy where it is (balance's [`BucketTable`], the one
//! least-assigned choice in the code base): it pre-computes the "next" node the program
//! assigns to a new bucket, hears every assignment on the ring buffer (so replication and the
//! supervisor see what the AF_PACKET path reports), releases dead nodes' and idle buckets
//! from the access times the program stamps, and adopts replicas at a takeover.
//! Must not: decide a frame itself — the program does, with the same checks in the same
//! order as [`crate::SchedulerCore`] (proven by the fixture table, see the tests).
//!
//! **Why aya** (and not libbpf-rs): aya is pure Rust — it parses the clang-built ELF, creates
//! maps, relocates, loads and attaches through the `bpf(2)` syscall and netlink itself — so
//! the binary needs no libbpf at run time and no C toolchain beyond the build; it exposes
//! `BPF_PROG_TEST_RUN` ([`aya::programs::TestRun`]), ring buffers and per-CPU maps with typed
//! wrappers, and it is actively maintained. 0.14 is the newest release that builds with the
//! pinned stable toolchain. Attachment uses a `bpf_link` where the kernel has it (≥ 5.9), so
//! a crashed process detaches its program with its last file descriptor.
//!
//! Differences from the AF_PACKET path, by design: self-served frames are passed to the
//! stack in place (`XDP_PASS`, destination MAC set to the LAN interface's; no TAP); frames
//! that are not ours (ARP, IPv6, other destinations, VLAN tags) reach the kernel (the
//! AF_PACKET path only sees copies, so the kernel got them there too); several CPUs meeting
//! one unassigned bucket at once agree by compare-and-swap, and until user space has heard
//! of an assignment and recomputed "next", further new buckets go to the same node
//! (microseconds; the AF_PACKET core recomputes per frame).

use std::net::Ipv4Addr;
use std::os::fd::AsFd;
use std::sync::atomic::Ordering;

use aya::maps::{Array, HashMap, MapData, PerCpuArray, PerCpuHashMap, RingBuf};
use aya::programs::{ProgramError, TestRun, TestRunOptions, Xdp};
use aya::{Ebpf, EbpfLoader};
use pentaflow_balance::{least_assigned, BucketSnapshot, BucketTable, NodeCandidate, NodeId};

use crate::frame::{DropReason, L4Proto, MacAddr, Verdict, ETHERNET_HEADER_LEN, ETHERTYPE_IPV4};
use crate::scheduler::{Change, Counters, NodeEntry};
use crate::sys::{self, MappedWords};

pub mod maps;

#[cfg(target_endian = "big")]
compile_error!("the XDP scheduler's bucket hash reads its key words little-endian");

/// The compiled program (`$OUT_DIR/scheduler.bpf.o`, built by `build.rs`).
static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/scheduler.bpf.o"));

/// The scheduler program's section name.
pub const PROGRAM: &str = "pf_scheduler";
/// The golden-vector probe (never attached).
const HASH_PROBE: &str = "pf_hash_probe";
/// How long the program may assign new buckets without hearing from user space (which
/// renews the lease every loop turn, at least every 20 ms): a crashed scheduler's program
/// stops assigning after this.
const LEASE_NS: u64 = 500_000_000;
/// Room a test run's output needs beyond the input (the program never grows frames).
const TEST_RUN_SLACK: usize = 256;

/// How the program runs on the interface.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum XdpAttach {
    /// In the driver, before an skb exists (`XDP_FLAGS_DRV_MODE`).
    Native,
    /// In the stack, after the skb is built (`XDP_FLAGS_SKB_MODE`): works on any device.
    Generic,
}

/// An XDP action code, as the program returns it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum XdpAction {
    /// `XDP_ABORTED`: a program error.
    Aborted,
    /// `XDP_DROP`.
    Drop,
    /// `XDP_PASS`: to the kernel's stack.
    Pass,
    /// `XDP_TX`: back out of the interface it came in on.
    Tx,
    /// `XDP_REDIRECT`.
    Redirect,
    /// Anything else (never returned by this program).
    Other(u32),
}

/// What can go wrong with the XDP data plane.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum XdpError {
    /// The object could not be loaded (maps created, relocated).
    #[error("loading the XDP object")]
    Load(#[source] aya::EbpfError),
    /// A program is missing, or the kernel's verifier refused it.
    #[error("loading program {program}")]
    Program {
        /// The program's name.
        program: &'static str,
        /// The failure (the verifier log is in it).
        #[source]
        source: ProgramError,
    },
    /// A map is missing or has another type than expected.
    #[error("map {map} of the XDP object")]
    Map {
        /// The map's name.
        map: &'static str,
        /// The failure.
        #[source]
        source: aya::maps::MapError,
    },
    /// Mapping the bucket map into memory failed.
    #[error("mapping the bucket map")]
    Mmap(#[source] std::io::Error),
    /// The bucket table does not fit a BPF map.
    #[error("bucket table of {size} buckets does not fit a BPF array map")]
    TableSize {
        /// The size asked for.
        size: usize,
    },
    /// More services than the program checks.
    #[error(
        "{count} services on the VIP; the XDP program checks at most {}",
        maps::MAX_SERVICES
    )]
    TooManyServices {
        /// How many were configured.
        count: usize,
    },
    /// Attaching to (or detaching from) the interface failed.
    #[error("attaching the XDP program to {interface} in {mode:?} mode")]
    Attach {
        /// The interface.
        interface: String,
        /// The mode tried.
        mode: XdpAttach,
        /// The failure (rtnetlink's errno).
        #[source]
        source: std::io::Error,
    },
    /// No attach mode was left to try.
    #[error("no XDP attach mode left to try on {interface}")]
    NoAttachMode {
        /// The interface.
        interface: String,
    },
    /// `BPF_PROG_TEST_RUN` failed.
    #[error("BPF_PROG_TEST_RUN")]
    TestRun(#[source] ProgramError),
}

/// The addressing the program needs (the XDP twin of [`crate::CoreParams`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct XdpParams {
    /// The VIP (this data plane is IPv4 only).
    pub vip: Ipv4Addr,
    /// The served (protocol, port) pairs, at most [`maps::MAX_SERVICES`].
    pub services: Vec<(L4Proto, u16)>,
    /// This node's number: its buckets are passed to the local stack.
    pub self_id: NodeId,
    /// The LAN interface's MAC: source of forwarded frames, destination of local ones.
    pub lan_mac: MacAddr,
}

/// The program's counters, summed over CPUs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct XdpStats {
    /// Frames of ours (IPv4 to the VIP) dropped, per [`DropReason::index`].
    pub dropped: [u64; DropReason::ALL.len()],
    /// Frames not ours passed to the kernel, per [`DropReason::index`] of the reason the
    /// Rust core would drop them for (`NotIp`, `NotVip`, too short to show a destination).
    pub passed: [u64; DropReason::ALL.len()],
    /// IPv6 frames passed to the kernel unexamined.
    pub ipv6_passed: u64,
    /// Frames sent to a node (`XDP_TX`).
    pub forwarded: u64,
    /// Frames served here (`XDP_PASS` to the stack).
    pub local: u64,
    /// Buckets the program assigned.
    pub assigned: u64,
    /// Assignments not reported because the ring buffer was full.
    pub events_lost: u64,
}

/// The loaded program and its maps. Dropping it detaches and unloads everything.
pub struct XdpProgram {
    ebpf: Ebpf,
    events: RingBuf<MapData>,
    buckets: MappedWords,
    next: MappedWords,
    table_size: u32,
    /// Interface index and mode, while attached.
    attached: Option<(u32, XdpAttach)>,
}

impl std::fmt::Debug for XdpProgram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("XdpProgram")
            .field("table_size", &self.table_size)
            .field("attached", &self.attached.as_ref().map(|(_, m)| *m))
            .finish_non_exhaustive()
    }
}

/// The user-space half of the XDP scheduler: see the module documentation.
#[derive(Debug)]
pub struct XdpSchedule {
    program: XdpProgram,
    params: XdpParams,
    /// The mapping and per-node counts, following the program's assignments; last-access
    /// times live in the map.
    table: BucketTable,
    nodes: Vec<NodeEntry>,
    candidates: Vec<NodeCandidate>,
    accepting_new: bool,
    /// The sequence last written to the program (its first entry is the core's next pick).
    next: Vec<NodeId>,
    changes: Option<Vec<Change>>,
    idle_released: u64,
}

impl XdpAction {
    /// The action of a return code.
    #[must_use]
    pub fn from_code(code: u32) -> Self {
        match code {
            0 => XdpAction::Aborted,
            1 => XdpAction::Drop,
            2 => XdpAction::Pass,
            3 => XdpAction::Tx,
            4 => XdpAction::Redirect,
            other => XdpAction::Other(other),
        }
    }
}

/// The action the XDP program takes for a frame the Rust core answered with `verdict`: the
/// contract the fixture tests hold both data planes to. A frame is *ours* when it is IPv4 to
/// the VIP (destination readable at its fixed offset); ours and not routable is dropped (as
/// the AF_PACKET path's nftables rule drops it), anything not ours goes to the kernel.
#[must_use]
pub fn expected_action(verdict: Verdict, frame: &[u8], vip: Ipv4Addr) -> XdpAction {
    /// Offset of the IPv4 destination address in an untagged frame.
    const DST_AT: usize = ETHERNET_HEADER_LEN + 16;
    match verdict {
        Verdict::Forward { .. } => XdpAction::Tx,
        Verdict::Local => XdpAction::Pass,
        Verdict::Drop(_) => {
            let ipv4 = frame.get(12..14) == Some(&ETHERTYPE_IPV4.to_be_bytes()[..]);
            let ours = ipv4 && frame.get(DST_AT..DST_AT + 4) == Some(&vip.octets()[..]);
            if ours {
                XdpAction::Drop
            } else {
                XdpAction::Pass
            }
        }
    }
}

/// Maps the mmapable array `name` of `bytes` bytes into this process.
fn mmap_array(ebpf: &Ebpf, name: &'static str, bytes: usize) -> Result<MappedWords, XdpError> {
    let missing = |what: &str| XdpError::Map {
        map: name,
        source: aya::maps::MapError::InvalidName {
            name: format!("{name} {what}"),
        },
    };
    let data: &MapData = match ebpf.map(name).ok_or_else(|| missing("missing"))? {
        aya::maps::Map::Array(d) => d,
        _ => return Err(missing("is not an array")),
    };
    MappedWords::map(data.fd().as_fd(), bytes).map_err(XdpError::Mmap)
}

/// The `XDP_FLAGS_*` mode bit of `mode`.
fn mode_flag(mode: XdpAttach) -> u32 {
    match mode {
        XdpAttach::Native => sys::XDP_FLAGS_DRV_MODE,
        XdpAttach::Generic => sys::XDP_FLAGS_SKB_MODE,
    }
}

/// Removes any XDP program from interface `ifindex`, in both modes (errors ignored: nothing
/// attached is the common case).
fn detach_any(ifindex: u32) {
    let _ = sys::set_xdp(ifindex, None, sys::XDP_FLAGS_SKB_MODE);
    let _ = sys::set_xdp(ifindex, None, sys::XDP_FLAGS_DRV_MODE);
}

/// Removes an XDP program left on `interface` (a scheduler that crashed leaves its program
/// attached on purpose): every node does this at start, as it removes a leftover nftables
/// table, so that a former scheduler never forwards frames meant for it.
pub fn remove_leftover(interface: &str) -> std::io::Result<()> {
    detach_any(sys::interface_index(interface)?);
    Ok(())
}

fn map_err(map: &'static str) -> impl FnOnce(aya::maps::MapError) -> XdpError {
    move |source| XdpError::Map { map, source }
}

impl XdpProgram {
    /// Loads the object with a bucket map of `table_size` entries and both programs into the
    /// kernel (the verifier runs here). Needs CAP_BPF/CAP_SYS_ADMIN.
    pub fn load(table_size: usize) -> Result<Self, XdpError> {
        let size = u32::try_from(table_size)
            .ok()
            .filter(|s| s.is_power_of_two())
            .ok_or(XdpError::TableSize { size: table_size })?;
        let mut ebpf = EbpfLoader::new()
            .map_max_entries("pf_buckets", size)
            .load(OBJECT)
            .map_err(XdpError::Load)?;
        for program in [PROGRAM, HASH_PROBE] {
            let prog: &mut Xdp = ebpf
                .program_mut(program)
                .ok_or(XdpError::Program {
                    program,
                    source: ProgramError::NotLoaded,
                })?
                .try_into()
                .map_err(|source| XdpError::Program { program, source })?;
            prog.load()
                .map_err(|source| XdpError::Program { program, source })?;
        }
        let events = RingBuf::try_from(ebpf.take_map("pf_events").ok_or(XdpError::Map {
            map: "pf_events",
            source: aya::maps::MapError::InvalidName {
                name: "pf_events".into(),
            },
        })?)
        .map_err(map_err("pf_events"))?;
        let buckets = mmap_array(&ebpf, "pf_buckets", table_size * 16)?;
        let next = mmap_array(&ebpf, "pf_next", maps::NEXT_BYTES)?;
        Ok(XdpProgram {
            ebpf,
            events,
            buckets,
            next,
            table_size: size,
            attached: None,
        })
    }

    /// Number of buckets of the map.
    #[must_use]
    pub fn table_size(&self) -> usize {
        self.table_size as usize
    }

    /// Writes the addressing (and whether new buckets may be assigned).
    pub fn configure(&mut self, params: &XdpParams, accepting: bool) -> Result<(), XdpError> {
        if params.services.len() > maps::MAX_SERVICES {
            return Err(XdpError::TooManyServices {
                count: params.services.len(),
            });
        }
        let mut cfg = maps::Config {
            vip_be: u32::from_ne_bytes(params.vip.octets()),
            bucket_mask: self.table_size - 1,
            self_id: params.self_id.0,
            lan_mac: params.lan_mac.0,
            accepting: u8::from(accepting),
            n_services: u8::try_from(params.services.len()).unwrap_or(0),
            ..maps::Config::default()
        };
        for (slot, (proto, port)) in cfg.services.iter_mut().zip(&params.services) {
            *slot = maps::Service {
                proto: match proto {
                    L4Proto::Tcp => 6,
                    L4Proto::Udp => 17,
                },
                reserved: 0,
                port_be: u16::from_ne_bytes(port.to_be_bytes()),
            };
        }
        let mut map: Array<&mut MapData, maps::Config> =
            Array::try_from(self.map_mut("pf_config")?).map_err(map_err("pf_config"))?;
        map.set(0, cfg, 0).map_err(map_err("pf_config"))
    }

    /// Sets the nodes the next new buckets take, in order (empty: no node is eligible; at
    /// most [`maps::NEXT_LEN`] are used) and rewinds the program's cursor to the first.
    pub fn set_next(&self, sequence: &[NodeId]) {
        let words = self.next.words();
        let seq = &sequence[..sequence.len().min(maps::NEXT_LEN)];
        // Two u32 node numbers per word, the first in the low half (little-endian layout of
        // `nodes[]` in `struct pf_next`, after the cursor/length word and the lease).
        for (word, pair) in words.iter().skip(2).zip(seq.chunks(2)) {
            let lo = u64::from(pair[0].0);
            let hi = pair
                .get(1)
                .map_or(u64::from(maps::UNASSIGNED), |n| u64::from(n.0));
            word.store(lo | (hi << 32), Ordering::Relaxed);
        }
        // Cursor 0 and the new length in one store, after the sequence.
        let len = u64::try_from(seq.len()).unwrap_or(0);
        if let Some(head) = words.first() {
            head.store(len << 32, Ordering::Release);
        }
    }

    /// Lets the program assign new buckets until `until` (ns of `CLOCK_MONOTONIC`): user
    /// space renews this lease every turn, so a program that outlives a crashed process
    /// stops assigning soon after (see `bpf/scheduler.bpf.c`).
    pub fn renew_lease(&self, until: u64) {
        if let Some(lease) = self.next.words().get(1) {
            lease.store(until, Ordering::Release);
        }
    }

    /// Replaces the node map with `nodes` (MAC and liveness).
    pub fn set_nodes(&mut self, nodes: &[NodeEntry]) -> Result<(), XdpError> {
        let mut map: HashMap<&mut MapData, u32, maps::Node> =
            HashMap::try_from(self.map_mut("pf_nodes")?).map_err(map_err("pf_nodes"))?;
        let stale: Vec<u32> = map
            .keys()
            .filter_map(Result::ok)
            .filter(|k| !nodes.iter().any(|n| u32::from(n.id.0) == *k))
            .collect();
        for k in stale {
            map.remove(&k).map_err(map_err("pf_nodes"))?;
        }
        for n in nodes.iter().take(maps::MAX_NODES as usize) {
            let entry = maps::Node {
                mac: n.mac.0,
                alive: u8::from(n.alive),
                reserved: 0,
            };
            map.insert(u32::from(n.id.0), entry, 0)
                .map_err(map_err("pf_nodes"))?;
        }
        Ok(())
    }

    /// `(node, last_used)` of a bucket as the map holds it (`None` node = unassigned).
    #[must_use]
    pub fn bucket(&self, bucket: usize) -> Option<(Option<NodeId>, u64)> {
        let words = self.buckets.words();
        let word = words.get(bucket * 2)?.load(Ordering::Relaxed);
        let last = words.get(bucket * 2 + 1)?.load(Ordering::Relaxed);
        #[allow(clippy::cast_possible_truncation)] // the node is the low 16 bits
        let node = (word & 0xffff) as u16;
        Some((
            (u32::from(node) != maps::UNASSIGNED).then_some(NodeId(node)),
            last,
        ))
    }

    /// Writes a bucket (user-space decisions: adoption, releases, start-up).
    pub fn set_bucket(&self, bucket: usize, node: Option<NodeId>, last_used: u64) {
        let words = self.buckets.words();
        let raw = node.map_or(u64::from(maps::UNASSIGNED), |n| u64::from(n.0));
        if let (Some(w), Some(l)) = (words.get(bucket * 2), words.get(bucket * 2 + 1)) {
            l.store(last_used, Ordering::Relaxed);
            w.store(raw, Ordering::Release);
        }
    }

    /// Releases a bucket if it still holds `node` (the program may have reassigned it since
    /// user space looked); whether it did.
    pub fn release_bucket(&self, bucket: usize, node: NodeId) -> bool {
        self.buckets.words().get(bucket * 2).is_some_and(|w| {
            w.compare_exchange(
                u64::from(node.0),
                u64::from(maps::UNASSIGNED),
                Ordering::AcqRel,
                Ordering::Relaxed,
            )
            .is_ok()
        })
    }

    /// Drains the ring buffer: every assignment the program made since the last call.
    pub fn take_events(&mut self) -> Vec<maps::Event> {
        let mut out = Vec::new();
        while let Some(item) = self.events.next() {
            if let Some(ev) = maps::Event::from_bytes(&item) {
                out.push(ev);
            }
        }
        out
    }

    /// The ring buffer's descriptor, to wait on (it becomes readable on each submit).
    pub fn events_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.events.as_fd()
    }

    /// The counters, summed over CPUs.
    pub fn stats(&self) -> Result<XdpStats, XdpError> {
        let map = self.ebpf.map("pf_stats").ok_or(XdpError::Map {
            map: "pf_stats",
            source: aya::maps::MapError::InvalidName {
                name: "pf_stats".into(),
            },
        })?;
        let stats: PerCpuArray<&MapData, u64> =
            PerCpuArray::try_from(map).map_err(map_err("pf_stats"))?;
        let mut sums = [0u64; maps::STAT_COUNT as usize];
        for (i, sum) in (0u32..).zip(sums.iter_mut()) {
            let per_cpu = stats.get(&i, 0).map_err(map_err("pf_stats"))?;
            *sum = per_cpu.iter().sum();
        }
        let reasons = DropReason::ALL.len();
        let passed_at = maps::STAT_PASSED as usize;
        let mut dropped = [0u64; DropReason::ALL.len()];
        dropped.copy_from_slice(&sums[..reasons]);
        let mut passed = [0u64; DropReason::ALL.len()];
        passed.copy_from_slice(&sums[passed_at..passed_at + reasons]);
        Ok(XdpStats {
            dropped,
            passed,
            ipv6_passed: sums[maps::STAT_IPV6 as usize],
            forwarded: sums[maps::STAT_FORWARDED as usize],
            local: sums[maps::STAT_LOCAL as usize],
            assigned: sums[maps::STAT_ASSIGNED as usize],
            events_lost: sums[maps::STAT_EVENTS_LOST as usize],
        })
    }

    /// Frames forwarded per node, summed over CPUs (nodes never forwarded to are absent).
    pub fn forwarded_per_node(&self) -> Result<Vec<(NodeId, u64)>, XdpError> {
        let map = self.ebpf.map("pf_node_tx").ok_or(XdpError::Map {
            map: "pf_node_tx",
            source: aya::maps::MapError::InvalidName {
                name: "pf_node_tx".into(),
            },
        })?;
        let tx: PerCpuHashMap<&MapData, u32, u64> =
            PerCpuHashMap::try_from(map).map_err(map_err("pf_node_tx"))?;
        let mut out: Vec<(NodeId, u64)> = tx
            .iter()
            .filter_map(Result::ok)
            .filter_map(|(k, v)| {
                let n: u64 = v.iter().sum();
                Some((NodeId(u16::try_from(k).ok()?), n)).filter(|_| n > 0)
            })
            .collect();
        out.sort();
        Ok(out)
    }

    /// Runs the scheduler program once on `frame` through `BPF_PROG_TEST_RUN` (the maps are
    /// the live ones); returns the action and the frame as the program left it.
    pub fn test_run(&self, frame: &[u8]) -> Result<(XdpAction, Vec<u8>), XdpError> {
        self.run_program(PROGRAM, frame)
    }

    /// The C side's [`pentaflow_balance::hash::bucket_hash`] of a client, through the probe
    /// program: what the golden vectors check.
    pub fn c_bucket_hash(&self, ip: Ipv4Addr, port: u16) -> Result<u32, XdpError> {
        // The probe reads the address and port as they lie in a packet; test runs need at
        // least an Ethernet header of data.
        let mut input = [0u8; ETHERNET_HEADER_LEN];
        input[..4].copy_from_slice(&ip.octets());
        input[4..6].copy_from_slice(&port.to_be_bytes());
        let (_, out) = self.run_program(HASH_PROBE, &input)?;
        let bytes: [u8; 4] = out
            .get(6..10)
            .and_then(|b| b.try_into().ok())
            .ok_or(XdpError::TestRun(ProgramError::NotLoaded))?;
        Ok(u32::from_le_bytes(bytes))
    }

    fn run_program(
        &self,
        program: &'static str,
        frame: &[u8],
    ) -> Result<(XdpAction, Vec<u8>), XdpError> {
        let prog: &Xdp = self
            .ebpf
            .program(program)
            .ok_or(XdpError::Program {
                program,
                source: ProgramError::NotLoaded,
            })?
            .try_into()
            .map_err(|source| XdpError::Program { program, source })?;
        let mut out = vec![0u8; frame.len() + TEST_RUN_SLACK];
        let result = prog
            .test_run(TestRunOptions {
                data_in: Some(frame),
                data_out: Some(&mut out),
                ..TestRunOptions::default()
            })
            .map_err(XdpError::TestRun)?;
        out.truncate(result.data_size_out as usize);
        Ok((XdpAction::from_code(result.return_value), out))
    }

    /// Attaches the scheduler program to `interface` (in the calling thread's network
    /// namespace) in `mode`, through rtnetlink so that it outlives a crash (see
    /// `sys::set_xdp`). A program already attached there (a crashed run's, or another
    /// tool's) is replaced; returns whether one was.
    pub fn attach(&mut self, interface: &str, mode: XdpAttach) -> Result<bool, XdpError> {
        let err = |source| XdpError::Attach {
            interface: interface.to_owned(),
            mode,
            source,
        };
        let ifindex = crate::sys::interface_index(interface).map_err(err)?;
        let prog: &Xdp = self
            .ebpf
            .program(PROGRAM)
            .ok_or(XdpError::Program {
                program: PROGRAM,
                source: ProgramError::NotLoaded,
            })?
            .try_into()
            .map_err(|source| XdpError::Program {
                program: PROGRAM,
                source,
            })?;
        let fd = prog.fd().map_err(|source| XdpError::Program {
            program: PROGRAM,
            source,
        })?;
        let flag = mode_flag(mode);
        let first = sys::set_xdp(
            ifindex,
            Some(fd.as_fd()),
            flag | sys::XDP_FLAGS_UPDATE_IF_NOEXIST,
        );
        let replaced = match first {
            Ok(()) => false,
            Err(e) if matches!(e.raw_os_error(), Some(libc::EBUSY | libc::EEXIST)) => {
                // Both modes: a leftover in the other one would refuse this one.
                detach_any(ifindex);
                sys::set_xdp(ifindex, Some(fd.as_fd()), flag).map_err(err)?;
                true
            }
            Err(e) => return Err(err(e)),
        };
        self.attached = Some((ifindex, mode));
        Ok(replaced)
    }

    /// The mode the program is attached in, if it is.
    #[must_use]
    pub fn attached(&self) -> Option<XdpAttach> {
        self.attached.as_ref().map(|(_, m)| *m)
    }

    /// Detaches the program from its interface (also done on drop; a crashed process leaves
    /// it attached on purpose, and the next start replaces or removes it).
    pub fn detach(&mut self) -> Result<(), XdpError> {
        if let Some((ifindex, mode)) = self.attached.take() {
            sys::set_xdp(ifindex, None, mode_flag(mode)).map_err(|source| XdpError::Attach {
                interface: format!("ifindex {ifindex}"),
                mode,
                source,
            })?;
        }
        Ok(())
    }

    fn map_mut(&mut self, map: &'static str) -> Result<&mut aya::maps::Map, XdpError> {
        self.ebpf.map_mut(map).ok_or(XdpError::Map {
            map,
            source: aya::maps::MapError::InvalidName { name: map.into() },
        })
    }
}

impl Drop for XdpProgram {
    fn drop(&mut self) {
        if let Err(e) = self.detach() {
            tracing::warn!(error = %e, "detaching the XDP program");
        }
    }
}

impl XdpSchedule {
    /// The user-space half over a loaded `program`: writes the addressing, the node table,
    /// every bucket of `table` (stamped `now`) and the first "next" node.
    pub fn new(
        program: XdpProgram,
        params: XdpParams,
        nodes: Vec<NodeEntry>,
        table: BucketTable,
        now: u64,
    ) -> Result<Self, XdpError> {
        if table.len() != program.table_size() {
            return Err(XdpError::TableSize { size: table.len() });
        }
        for (b, e) in table.entries().iter().enumerate() {
            let node =
                (e.node != pentaflow_balance::BucketEntry::UNASSIGNED).then_some(NodeId(e.node));
            program.set_bucket(b, node, now);
        }
        let mut s = XdpSchedule {
            program,
            params,
            table,
            nodes: Vec::new(),
            candidates: Vec::new(),
            accepting_new: true,
            next: Vec::new(),
            changes: None,
            idle_released: 0,
        };
        s.program.configure(&s.params, true)?;
        s.set_nodes(nodes)?;
        s.poll()?;
        Ok(s)
    }

    /// Keep every assignment and release for [`XdpSchedule::take_changes`].
    pub fn record_changes(&mut self) {
        self.changes.get_or_insert_with(Vec::new);
    }

    /// The assignments and releases since the last call (empty unless recording).
    pub fn take_changes(&mut self) -> Vec<Change> {
        self.changes
            .as_mut()
            .map(std::mem::take)
            .unwrap_or_default()
    }

    /// Hears the program's assignments (the ring buffer), follows them in the table and
    /// recomputes "next"; returns how many there were.
    pub fn poll(&mut self) -> Result<usize, XdpError> {
        self.program
            .renew_lease(sys::monotonic_ns().saturating_add(LEASE_NS));
        let events = self.program.take_events();
        for ev in &events {
            let bucket = ev.bucket as usize;
            let node = NodeId(ev.node);
            if self.table.get(bucket).map(|(n, _)| n) != Some(node) {
                self.table.set(bucket, Some(node), ev.at);
                if let Some(c) = self.changes.as_mut() {
                    c.push((ev.bucket, Some(node)));
                }
            }
        }
        if !events.is_empty() {
            self.update_next()?;
        }
        Ok(events.len())
    }

    /// Replaces the node table: a node no longer alive (or listed) loses its buckets at once,
    /// in the map too, as [`crate::BucketSchedule`] does.
    pub fn set_nodes(&mut self, nodes: Vec<NodeEntry>) -> Result<(), XdpError> {
        self.program.set_nodes(&nodes)?;
        for old in &self.candidates {
            if !nodes.iter().any(|n| n.id == old.id && n.alive) {
                let held: Vec<usize> = (0..self.table.len())
                    .filter(|&b| self.table.get(b).is_some_and(|(n, _)| n == old.id))
                    .collect();
                for b in held {
                    self.program.release_bucket(b, old.id);
                }
                self.table.release_node(old.id);
            }
        }
        self.candidates = nodes
            .iter()
            .map(|n| NodeCandidate {
                id: n.id,
                weight: n.weight,
                enabled: n.enabled,
                alive: n.alive,
            })
            .collect();
        self.nodes = nodes;
        self.update_next()
    }

    /// Allow (true) or hold (false) new assignments (the takeover merge).
    pub fn set_accepting_new(&mut self, accepting: bool) -> Result<(), XdpError> {
        self.accepting_new = accepting;
        self.program.configure(&self.params, accepting)
    }

    /// Adopts the control plane's replica, with the rules of [`crate::SchedulerCore::adopt`]
    /// (whole while holding, only unassigned buckets otherwise); returns how many changed.
    pub fn adopt(&mut self, snapshot: &BucketSnapshot, now: u64) -> Result<usize, XdpError> {
        self.poll()?;
        if snapshot.size != self.table.len() {
            return Ok(0);
        }
        let mut want: Vec<Option<NodeId>> = vec![None; self.table.len()];
        for &(bucket, node) in &snapshot.assigned {
            if let Some(slot) = want.get_mut(bucket as usize) {
                *slot = Some(node).filter(|n| !n.is_reserved());
            }
        }
        let mut n = 0;
        for (b, node) in want.into_iter().enumerate() {
            let current = self.table.get(b).map(|(n, _)| n);
            let take = if self.accepting_new {
                current.is_none() && node.is_some()
            } else {
                current != node
            };
            if take {
                self.table.set(b, node, now);
                self.program.set_bucket(b, node, now);
                n += 1;
            }
        }
        self.update_next()?;
        Ok(n)
    }

    /// Releases buckets idle longer than `idle` by the access times the program stamped
    /// (`now` and `idle` in ns of `CLOCK_MONOTONIC`); a bucket the program touched or
    /// reassigned meanwhile is left alone. Nothing is released while holding.
    pub fn tick(&mut self, now: u64, idle: u64) -> Result<usize, XdpError> {
        self.poll()?;
        if !self.accepting_new {
            return Ok(0);
        }
        let mut released = 0;
        for b in 0..self.table.len() {
            let Some((node, _)) = self.table.get(b) else {
                continue;
            };
            let Some((Some(map_node), last)) = self.program.bucket(b) else {
                continue;
            };
            if map_node == node
                && now.saturating_sub(last) > idle
                && self.program.release_bucket(b, node)
            {
                self.table.set(b, None, now);
                if let (Some(c), Ok(b)) = (self.changes.as_mut(), u32::try_from(b)) {
                    c.push((b, None));
                }
                released += 1;
            }
        }
        self.idle_released += released as u64;
        if released > 0 {
            self.update_next()?;
        }
        Ok(released)
    }

    /// The counters in the AF_PACKET data plane's form.
    pub fn counters(&self) -> Result<Counters, XdpError> {
        let stats = self.program.stats()?;
        Ok(Counters {
            forwarded: self.program.forwarded_per_node()?,
            local: stats.local,
            dropped: stats.dropped,
            idle_released: self.idle_released,
            send_errors: 0,
        })
    }

    /// The table as user space follows it (mapping and counts).
    #[must_use]
    pub fn table(&self) -> &BucketTable {
        &self.table
    }

    /// The loaded program.
    #[must_use]
    pub fn program(&self) -> &XdpProgram {
        &self.program
    }

    /// The loaded program, to attach or detach it.
    pub fn program_mut(&mut self) -> &mut XdpProgram {
        &mut self.program
    }

    /// The node a bucket that needs one takes now.
    #[must_use]
    pub fn next(&self) -> Option<NodeId> {
        self.next.first().copied()
    }

    /// Rewrites the program's next-node sequence from the current counts: what the
    /// least-assigned rule picks for each of the next [`maps::NEXT_LEN`] new buckets.
    fn update_next(&mut self) -> Result<(), XdpError> {
        let mut counts: Vec<(NodeId, u32)> = self
            .candidates
            .iter()
            .map(|c| {
                let n = u32::try_from(self.table.assigned_to(c.id)).unwrap_or(u32::MAX);
                (c.id, n)
            })
            .collect();
        let count_of = |counts: &[(NodeId, u32)], id: NodeId| {
            counts.iter().find(|(n, _)| *n == id).map_or(0, |(_, c)| *c)
        };
        self.next.clear();
        while self.next.len() < maps::NEXT_LEN {
            let Some(pick) = least_assigned(&self.candidates, |id| count_of(&counts, id)) else {
                break;
            };
            if let Some((_, c)) = counts.iter_mut().find(|(n, _)| *n == pick) {
                *c = c.saturating_add(1);
            }
            self.next.push(pick);
        }
        self.program.set_next(&self.next);
        Ok(())
    }
}

#[cfg(test)]
mod tests;
