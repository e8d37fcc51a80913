//! The seam between the scheduler core and the kernel: [`FrameIo`], and its AF_PACKET + TAP
//! implementation [`AfPacketIo`].
//!
//! Owns: receiving batches of VIP frames, sending them back out of the LAN interface, handing
//! them to the local stack, and sending announcements (gratuitous ARP). Must not decide
//! anything about a frame: that is [`crate::SchedulerCore`]'s job. A future XDP data plane
//! implements the same trait (or replaces the loop entirely with the same table).
//!
//! Why plain `recv`/`send` and not a TPACKET_V3 ring: at low load a ring hands frames over
//! only when a block fills or times out, costing milliseconds per packet (DESIGN.md, field
//! notes). Batching here means draining everything queued after one `poll`.

use std::io;
use std::net::Ipv4Addr;
use std::time::Duration;

use crate::frame::MacAddr;
use crate::sys::{self, PacketSocket, Tap};

/// Size of the `virtio_net_hdr` the kernel puts before each frame with PACKET_VNET_HDR (and
/// expects back on send): it carries the checksum-offload and GSO state of veth frames.
pub const VNET_HDR_LEN: usize = 10;
/// Most frames taken by one `recvmmsg`.
const RECV_BATCH_MAX: usize = 64;
/// Largest frame kept: a 64 KiB GSO super-frame plus its Ethernet header and a VLAN tag.
pub const MAX_FRAME_LEN: usize = 65_536 + 18;

/// One received frame and the per-frame header in front of it.
#[derive(Clone, Debug)]
pub struct PacketBuf {
    bytes: Box<[u8]>,
    len: usize,
    head: usize,
}

/// Where a frame goes after the verdict.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Output {
    /// Back out of the LAN interface (to another node).
    Lan,
    /// Into this machine's own stack.
    Local,
}

/// Receiving and sending frames: what the scheduler loop needs from a data plane.
pub trait FrameIo {
    /// Fills `bufs` from the start with received frames, waiting at most `timeout` for the
    /// first; returns how many were filled (0 on timeout).
    fn recv_batch(&mut self, bufs: &mut [PacketBuf], timeout: Duration) -> io::Result<usize>;
    /// Sends a received (possibly rewritten) frame, with its header, to `out`.
    fn send(&mut self, out: Output, buf: &PacketBuf) -> io::Result<()>;
    /// Sends several frames to `out`; returns how many were sent (the rest failed). The
    /// default sends one by one; implementations batch the system calls.
    fn send_batch(&mut self, out: Output, bufs: &[&PacketBuf]) -> usize {
        bufs.iter().filter(|b| self.send(out, b).is_ok()).count()
    }
    /// Sends a bare Ethernet frame (no per-frame header) out of the LAN interface.
    fn announce(&mut self, frame: &[u8]) -> io::Result<()>;
    /// Whether the LAN link is up and has carrier (checked a few times a second by the
    /// loop, which ends with an error when it is not). In-memory I/O is always up.
    fn link_up(&mut self) -> io::Result<bool> {
        Ok(true)
    }
}

/// The AF_PACKET + TAP data plane. Create it in the scheduler's network namespace.
#[derive(Debug)]
pub struct AfPacketIo {
    sock: PacketSocket,
    tap: Tap,
    lan: String,
}

impl PacketBuf {
    /// An empty buffer able to hold the largest frame.
    pub fn new() -> Self {
        PacketBuf {
            bytes: vec![0u8; VNET_HDR_LEN + MAX_FRAME_LEN].into_boxed_slice(),
            len: 0,
            head: 0,
        }
    }

    /// A buffer holding `frame` behind an all-zero header of `head` bytes (tests, benches).
    pub fn from_frame(head: usize, frame: &[u8]) -> Self {
        let mut b = PacketBuf::new();
        let head = head.min(VNET_HDR_LEN);
        let take = frame.len().min(MAX_FRAME_LEN);
        b.bytes[head..head + take].copy_from_slice(&frame[..take]);
        b.head = head;
        b.len = head + take;
        b
    }

    /// The Ethernet frame.
    pub fn frame(&self) -> &[u8] {
        self.bytes.get(self.head..self.len).unwrap_or_default()
    }

    /// The Ethernet frame, for rewriting in place.
    pub fn frame_mut(&mut self) -> &mut [u8] {
        self.bytes.get_mut(self.head..self.len).unwrap_or_default()
    }

    /// Header and frame, as they go on the wire to the kernel.
    pub fn wire(&self) -> &[u8] {
        self.bytes.get(..self.len).unwrap_or_default()
    }
}

impl Default for PacketBuf {
    fn default() -> Self {
        PacketBuf::new()
    }
}

impl AfPacketIo {
    /// Opens the packet socket on `lan` (filtered to IPv4 frames for `vip` addressed to this
    /// host) and the TAP device `tap` for local delivery. Needs CAP_NET_RAW + CAP_NET_ADMIN.
    pub fn open(lan: &str, vip: Ipv4Addr, tap: &str) -> io::Result<Self> {
        Ok(AfPacketIo {
            sock: PacketSocket::open(lan, vip)?,
            tap: Tap::open(tap)?,
            lan: lan.to_owned(),
        })
    }
}

impl FrameIo for AfPacketIo {
    fn recv_batch(&mut self, bufs: &mut [PacketBuf], timeout: Duration) -> io::Result<usize> {
        if bufs.is_empty() || !self.sock.wait_readable(timeout)? {
            return Ok(0);
        }
        let mut lens = [0usize; RECV_BATCH_MAX];
        let mut total = 0;
        // One recvmmsg per RECV_BATCH_MAX frames: fewer syscalls than recv per frame, and no
        // waiting for a batch to fill (unlike a TPACKET_V3 block), so latency stays low.
        for chunk in bufs.chunks_mut(RECV_BATCH_MAX) {
            let mut slices: Vec<&mut [u8]> = chunk.iter_mut().map(|b| &mut b.bytes[..]).collect();
            let got = self.sock.recv_many(&mut slices, &mut lens)?;
            for (buf, &len) in chunk.iter_mut().zip(&lens).take(got) {
                buf.len = len.min(buf.bytes.len());
                buf.head = VNET_HDR_LEN.min(buf.len);
            }
            total += got;
            if got < chunk.len() {
                break;
            }
        }
        Ok(total)
    }

    fn send(&mut self, out: Output, buf: &PacketBuf) -> io::Result<()> {
        match out {
            Output::Lan => self.sock.send(buf.wire()),
            Output::Local => self.tap.write(buf.wire()),
        }
    }

    fn send_batch(&mut self, out: Output, bufs: &[&PacketBuf]) -> usize {
        match out {
            Output::Lan => {
                let wires: Vec<&[u8]> = bufs.iter().map(|b| b.wire()).collect();
                self.sock.send_many(&wires).unwrap_or(0)
            }
            Output::Local => bufs
                .iter()
                .filter(|b| self.tap.write(b.wire()).is_ok())
                .count(),
        }
    }

    fn announce(&mut self, frame: &[u8]) -> io::Result<()> {
        // An all-zero virtio-net header: no offload, no GSO.
        let mut wire = vec![0u8; VNET_HDR_LEN + frame.len()];
        wire[VNET_HDR_LEN..].copy_from_slice(frame);
        self.sock.send(&wire)
    }

    fn link_up(&mut self) -> io::Result<bool> {
        crate::sys::interface_running(&self.lan)
    }
}

/// The MAC address of interface `name` in the calling thread's network namespace.
pub fn interface_mac(name: &str) -> io::Result<MacAddr> {
    sys::interface_mac(name)
}
