//! The raw system calls of the data plane: the only `unsafe` code of pentaflow.
//!
//! Owns: the AF_PACKET socket (ETH_P_ALL, bound to one interface, classic BPF filter,
//! PACKET_VNET_HDR, plain `recv`/`send`), the TAP device (IFF_TAP | IFF_NO_PI | IFF_VNET_HDR),
//! interface look-ups by ioctl, and the shared mapping of the XDP program's bucket map
//! ([`MappedWords`]). Must not: interpret frames or keep policy. Every `unsafe`
//! block states why it is sound; descriptors are `OwnedFd`, so they close exactly once.
//!
//! Everything here acts in the network namespace of the *calling thread*: sockets, TAP devices
//! and ioctls are bound to the namespace of the task that creates them.

use std::ffi::CString;
use std::io;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::ptr::NonNull;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use crate::frame::MacAddr;

/// `SOL_PACKET` option: prefix every frame with a `virtio_net_hdr` (linux/if_packet.h).
const PACKET_VNET_HDR: libc::c_int = 15;
/// `SOL_PACKET` option: do not deliver frames this host transmits (linux/if_packet.h, 4.20+).
const PACKET_IGNORE_OUTGOING: libc::c_int = 23;
/// `ETH_P_ALL`: every protocol, as the field notes require (taps run before netfilter ingress).
const ETH_P_ALL: u16 = 0x0003;
/// `TUNSETIFF` = `_IOW('T', 202, int)` (linux/if_tun.h).
const TUNSETIFF: libc::c_ulong = 0x4004_54ca;
/// `IFF_TAP`: an Ethernet-level device (linux/if_tun.h).
const IFF_TAP: libc::c_short = 0x0002;
/// `IFF_NO_PI`: no 4-byte packet-information prefix (linux/if_tun.h).
const IFF_NO_PI: libc::c_short = 0x1000;
/// `IFF_VNET_HDR`: frames carry a `virtio_net_hdr`, like the packet socket (linux/if_tun.h).
const IFF_VNET_HDR: libc::c_short = 0x4000;
/// Offset of the packet-type ancillary field for classic BPF (`SKF_AD_OFF + SKF_AD_PKTTYPE`).
const SKF_AD_PKTTYPE: u32 = 0xFFFF_F000 + 4;
/// Receive buffer asked for the packet socket: room for bursts of GSO super-frames.
const RCVBUF_BYTES: libc::c_int = 8 << 20;
/// Accept length returned by the filter: the whole frame.
const BPF_ACCEPT_ALL: u32 = 0x0004_0000;

/// An AF_PACKET raw socket bound to one interface.
#[derive(Debug)]
pub(crate) struct PacketSocket {
    fd: OwnedFd,
}

/// A TAP device, alive as long as this descriptor is open.
#[derive(Debug)]
pub(crate) struct Tap {
    fd: OwnedFd,
}

/// Converts a `-1` return into the thread's `errno`.
fn check(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// Converts a `-1` size return into the thread's `errno`.
fn check_size(ret: libc::ssize_t) -> io::Result<usize> {
    usize::try_from(ret).map_err(|_| io::Error::last_os_error())
}

fn cstring(name: &str) -> io::Result<CString> {
    CString::new(name).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in name"))
}

/// An `ifreq` with the interface name filled in (at most IFNAMSIZ-1 bytes, NUL-terminated).
fn ifreq(name: &str) -> io::Result<libc::ifreq> {
    let bytes = name.as_bytes();
    if bytes.is_empty() || bytes.len() >= libc::IFNAMSIZ {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "interface name {name:?} must have 1..{} bytes",
                libc::IFNAMSIZ - 1
            ),
        ));
    }
    // SAFETY: ifreq is a plain C struct (arrays and a union of plain data) for which all-zero
    // bytes are a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(bytes) {
        *dst = *src as libc::c_char;
    }
    Ok(req)
}

/// The classic BPF program: keep only frames addressed to this host (not ones we send, not
/// flooded ones for other MACs) that are IPv4 to the VIP; everything else stays in the kernel.
fn vip_filter(vip: Ipv4Addr) -> Vec<libc::sock_filter> {
    let op = |code: u32, jt: u8, jf: u8, k: u32| libc::sock_filter {
        // Classic BPF opcodes fit 16 bits by definition.
        code: code as u16,
        jt,
        jf,
        k,
    };
    let ld_w_abs = libc::BPF_LD | libc::BPF_W | libc::BPF_ABS;
    let ld_h_abs = libc::BPF_LD | libc::BPF_H | libc::BPF_ABS;
    let jeq = libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K;
    let ret = libc::BPF_RET | libc::BPF_K;
    vec![
        op(ld_w_abs, 0, 0, SKF_AD_PKTTYPE),
        op(jeq, 0, 5, u32::from(libc::PACKET_HOST)),
        op(ld_h_abs, 0, 0, 12),
        op(jeq, 0, 3, u32::from(crate::frame::ETHERTYPE_IPV4)),
        op(ld_w_abs, 0, 0, 30),
        op(jeq, 0, 1, u32::from(vip)),
        op(ret, 0, 0, BPF_ACCEPT_ALL),
        op(ret, 0, 0, 0),
    ]
}

impl PacketSocket {
    /// Opens the socket on `ifname`, with the VIP filter attached before any frame can queue.
    pub(crate) fn open(ifname: &str, vip: Ipv4Addr) -> io::Result<Self> {
        let ifindex = interface_index(ifname)?;
        // SAFETY: socket(2) with constant arguments; protocol 0 means nothing is received
        // until bind, so no unfiltered frame can queue before the filter is attached.
        let raw = check(unsafe {
            libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0)
        })?;
        // SAFETY: `raw` is a fresh descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let sock = PacketSocket { fd };
        let filter = vip_filter(vip);
        let prog = libc::sock_fprog {
            len: u16::try_from(filter.len()).unwrap_or(u16::MAX),
            filter: filter.as_ptr().cast_mut(),
        };
        sock.setsockopt(libc::SOL_SOCKET, libc::SO_ATTACH_FILTER, &prog)?;
        sock.setsockopt(libc::SOL_PACKET, PACKET_VNET_HDR, &1 as &libc::c_int)?;
        sock.setsockopt(libc::SOL_PACKET, PACKET_IGNORE_OUTGOING, &1 as &libc::c_int)?;
        // Best effort: FORCE needs CAP_NET_ADMIN (which we have); fall back to the capped one.
        if sock
            .setsockopt(libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, &RCVBUF_BYTES)
            .is_err()
        {
            let _ = sock.setsockopt(libc::SOL_SOCKET, libc::SO_RCVBUF, &RCVBUF_BYTES);
        }
        // SAFETY: sockaddr_ll is plain data; all-zero is valid before we fill the fields.
        let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        addr.sll_family = libc::AF_PACKET as libc::c_ushort;
        addr.sll_protocol = ETH_P_ALL.to_be();
        addr.sll_ifindex = i32::try_from(ifindex).unwrap_or(i32::MAX);
        // SAFETY: `addr` is a valid sockaddr_ll and the length passed is its exact size.
        check(unsafe {
            libc::bind(
                sock.fd.as_raw_fd(),
                std::ptr::from_ref(&addr).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        })?;
        Ok(sock)
    }

    fn setsockopt<T>(&self, level: libc::c_int, name: libc::c_int, value: &T) -> io::Result<()> {
        // SAFETY: `value` points to a live T of the size passed; the kernel copies it.
        check(unsafe {
            libc::setsockopt(
                self.fd.as_raw_fd(),
                level,
                name,
                std::ptr::from_ref(value).cast(),
                std::mem::size_of::<T>() as libc::socklen_t,
            )
        })
        .map(drop)
    }

    /// Waits until a frame is queued or `timeout` passes; `false` on timeout or signal.
    pub(crate) fn wait_readable(&self, timeout: Duration) -> io::Result<bool> {
        let mut pfd = libc::pollfd {
            fd: self.fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let ms = libc::c_int::try_from(timeout.as_millis()).unwrap_or(libc::c_int::MAX);
        // SAFETY: one valid pollfd, count 1.
        match check(unsafe { libc::poll(&mut pfd, 1, ms) }) {
            Ok(n) => Ok(n > 0),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Receives up to `bufs.len()` queued frames in one `recvmmsg` without blocking, writing
    /// each length into `lens`; 0 when the queue is empty.
    pub(crate) fn recv_many(
        &self,
        bufs: &mut [&mut [u8]],
        lens: &mut [usize],
    ) -> io::Result<usize> {
        let n = bufs.len().min(lens.len());
        let mut iovs: Vec<libc::iovec> = bufs
            .iter_mut()
            .take(n)
            .map(|b| libc::iovec {
                iov_base: b.as_mut_ptr().cast(),
                iov_len: b.len(),
            })
            .collect();
        // SAFETY: mmsghdr is plain data; all-zero is valid (null name, no control data).
        let mut msgs: Vec<libc::mmsghdr> = (0..n).map(|_| unsafe { std::mem::zeroed() }).collect();
        for (m, iov) in msgs.iter_mut().zip(iovs.iter_mut()) {
            m.msg_hdr.msg_iov = iov;
            m.msg_hdr.msg_iovlen = 1;
        }
        let count = libc::c_uint::try_from(n).unwrap_or(libc::c_uint::MAX);
        // SAFETY: `msgs` holds `count` headers, each pointing at one iovec that points at a
        // live, exclusively borrowed buffer of the stated length; all outlive the call.
        let ret = unsafe {
            libc::recvmmsg(
                self.fd.as_raw_fd(),
                msgs.as_mut_ptr(),
                count,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        match check(ret) {
            Ok(got) => {
                let got = usize::try_from(got).unwrap_or(0).min(n);
                for (len, m) in lens.iter_mut().zip(&msgs).take(got) {
                    *len = m.msg_len as usize;
                }
                Ok(got)
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                ) =>
            {
                Ok(0)
            }
            Err(e) => Err(e),
        }
    }

    /// Sends frames (each with its virtio-net header) with `sendmmsg`; returns how many the
    /// kernel took. Stops at the first error after the first frame, like `sendmmsg` itself.
    pub(crate) fn send_many(&self, frames: &[&[u8]]) -> io::Result<usize> {
        let mut iovs: Vec<libc::iovec> = frames
            .iter()
            .map(|f| libc::iovec {
                iov_base: f.as_ptr().cast_mut().cast(),
                iov_len: f.len(),
            })
            .collect();
        // SAFETY: mmsghdr is plain data; all-zero is valid (null name: the bound interface).
        let mut msgs: Vec<libc::mmsghdr> = (0..frames.len())
            .map(|_| unsafe { std::mem::zeroed() })
            .collect();
        for (m, iov) in msgs.iter_mut().zip(iovs.iter_mut()) {
            m.msg_hdr.msg_iov = iov;
            m.msg_hdr.msg_iovlen = 1;
        }
        let mut sent = 0usize;
        while sent < msgs.len() {
            let rest = &mut msgs[sent..];
            let count = libc::c_uint::try_from(rest.len()).unwrap_or(libc::c_uint::MAX);
            // SAFETY: `rest` holds `count` headers pointing at live iovecs over frames that
            // outlive the call; the kernel only reads the frames.
            let ret = unsafe { libc::sendmmsg(self.fd.as_raw_fd(), rest.as_mut_ptr(), count, 0) };
            match check(ret) {
                Ok(0) => break,
                Ok(k) => sent += usize::try_from(k).unwrap_or(0),
                Err(e) if sent == 0 => return Err(e),
                Err(_) => break,
            }
        }
        Ok(sent)
    }

    /// Sends one frame (virtio-net header first) out of the bound interface.
    pub(crate) fn send(&self, buf: &[u8]) -> io::Result<()> {
        // SAFETY: the kernel reads buf.len() bytes from the live buffer.
        let ret = unsafe { libc::send(self.fd.as_raw_fd(), buf.as_ptr().cast(), buf.len(), 0) };
        check_size(ret).map(drop)
    }
}

impl PacketSocket {
    /// A socket on `ifname` that only sends (protocol 0: the kernel queues nothing on it),
    /// for the gratuitous ARP of the XDP data plane, which has no receive path in user space.
    pub(crate) fn open_send_only(ifname: &str) -> io::Result<Self> {
        let ifindex = interface_index(ifname)?;
        // SAFETY: socket(2) with constant arguments; protocol 0 receives nothing.
        let raw = check(unsafe {
            libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0)
        })?;
        // SAFETY: `raw` is a fresh descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        // SAFETY: sockaddr_ll is plain data; all-zero is valid before we fill the fields.
        let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        addr.sll_family = libc::AF_PACKET as libc::c_ushort;
        addr.sll_protocol = 0;
        addr.sll_ifindex = i32::try_from(ifindex).unwrap_or(i32::MAX);
        // SAFETY: `addr` is a valid sockaddr_ll and the length passed is its exact size.
        check(unsafe {
            libc::bind(
                fd.as_raw_fd(),
                std::ptr::from_ref(&addr).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        })?;
        Ok(PacketSocket { fd })
    }
}

/// A `BPF_F_MMAPABLE` array map mapped shared into this process, seen as 64-bit words: user
/// space reads the XDP program's last-access stamps and swaps bucket assignments with plain
/// atomic loads and compare-and-swaps instead of one system call per bucket.
#[derive(Debug)]
pub(crate) struct MappedWords {
    ptr: NonNull<AtomicU64>,
    words: usize,
    bytes: usize,
}

// SAFETY: the mapping is plain shared memory accessed only through `AtomicU64`, which is Sync;
// the pointer is owned by this value and unmapped exactly once, in Drop.
unsafe impl Send for MappedWords {}
// SAFETY: as above — every access is an atomic operation.
unsafe impl Sync for MappedWords {}

impl MappedWords {
    /// Maps the first `bytes` bytes of the map behind `fd` (rounded up to whole pages).
    pub(crate) fn map(fd: BorrowedFd<'_>, bytes: usize) -> io::Result<Self> {
        // SAFETY: sysconf has no preconditions.
        let page = usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap_or(4096);
        let len = bytes.div_ceil(page).max(1) * page;
        // SAFETY: a fresh shared mapping of a map descriptor; the kernel checks that the map
        // is mmapable and at least `len` bytes, and fails otherwise.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let ptr = NonNull::new(ptr.cast::<AtomicU64>()).ok_or_else(io::Error::last_os_error)?;
        Ok(MappedWords {
            ptr,
            words: bytes / 8,
            bytes: len,
        })
    }

    /// The mapped words.
    pub(crate) fn words(&self) -> &[AtomicU64] {
        // SAFETY: `ptr` is page-aligned (so 8-aligned), valid for `bytes >= words * 8` bytes
        // while `self` lives, and AtomicU64 has the size and alignment of u64; the kernel
        // writes the same memory only with aligned 64-bit stores or atomics, and every access
        // here is atomic.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.words) }
    }
}

impl Drop for MappedWords {
    fn drop(&mut self) {
        // SAFETY: the mapping of `bytes` bytes at `ptr` was made in `map` and is unmapped once.
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.bytes) };
    }
}

impl Tap {
    /// Creates (or attaches to) the TAP device `name`; it disappears when this is dropped.
    pub(crate) fn open(name: &str) -> io::Result<Self> {
        let path = cstring("/dev/net/tun")?;
        // SAFETY: open(2) on a NUL-terminated path.
        let raw = check(unsafe { libc::open(path.as_ptr(), libc::O_RDWR | libc::O_CLOEXEC) })?;
        // SAFETY: `raw` is a fresh descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let mut req = ifreq(name)?;
        req.ifr_ifru.ifru_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
        // SAFETY: TUNSETIFF reads and writes one ifreq, which `req` is.
        check(unsafe { libc::ioctl(fd.as_raw_fd(), TUNSETIFF, &mut req) })?;
        Ok(Tap { fd })
    }

    /// Writes one frame (virtio-net header first) into the local stack.
    pub(crate) fn write(&self, buf: &[u8]) -> io::Result<()> {
        // SAFETY: the kernel reads buf.len() bytes from the live buffer.
        let ret = unsafe { libc::write(self.fd.as_raw_fd(), buf.as_ptr().cast(), buf.len()) };
        check_size(ret).map(drop)
    }
}

/// The index of interface `name` in the calling thread's namespace.
pub(crate) fn interface_index(name: &str) -> io::Result<u32> {
    let c = cstring(name)?;
    // SAFETY: if_nametoindex reads a NUL-terminated string.
    match unsafe { libc::if_nametoindex(c.as_ptr()) } {
        0 => Err(io::Error::last_os_error()),
        i => Ok(i),
    }
}

/// The MAC address of interface `name` in the calling thread's namespace (SIOCGIFHWADDR;
/// not sysfs, which shows the namespace sysfs was mounted in, not the thread's).
pub(crate) fn interface_mac(name: &str) -> io::Result<MacAddr> {
    // SAFETY: socket(2) with constant arguments.
    let raw =
        check(unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) })?;
    // SAFETY: `raw` is a fresh descriptor that nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    let mut req = ifreq(name)?;
    // SAFETY: SIOCGIFHWADDR reads and writes one ifreq, which `req` is.
    check(unsafe { libc::ioctl(fd.as_raw_fd(), libc::SIOCGIFHWADDR, &mut req) })?;
    // SAFETY: after a successful SIOCGIFHWADDR the union holds `ifru_hwaddr`.
    let data = unsafe { req.ifr_ifru.ifru_hwaddr.sa_data };
    let mut mac = [0u8; 6];
    for (dst, src) in mac.iter_mut().zip(data.iter()) {
        *dst = *src as u8;
    }
    Ok(MacAddr(mac))
}

/// Nanoseconds of `CLOCK_MONOTONIC`: the clock `bpf_ktime_get_ns()` reads, so the bucket
/// table's access times mean the same to this data plane and to a BPF one.
pub(crate) fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec, which `ts` is; CLOCK_MONOTONIC always exists
    // on Linux, so it cannot fail (a zero time would only make buckets look older).
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    let secs = u64::try_from(ts.tv_sec).unwrap_or(0);
    let nanos = u64::try_from(ts.tv_nsec).unwrap_or(0);
    secs.saturating_mul(1_000_000_000).saturating_add(nanos)
}

/// `IFLA_XDP` (linux/if_link.h), a nested attribute of RTM_SETLINK.
const IFLA_XDP: u16 = 43;
/// `IFLA_XDP_FD`: the program's descriptor, -1 to detach.
const IFLA_XDP_FD: u16 = 1;
/// `IFLA_XDP_FLAGS`: `XDP_FLAGS_*`.
const IFLA_XDP_FLAGS: u16 = 3;
/// `NLA_F_NESTED`.
const NLA_F_NESTED: u16 = 0x8000;
/// `XDP_FLAGS_UPDATE_IF_NOEXIST`: fail with EBUSY if a program is attached.
pub(crate) const XDP_FLAGS_UPDATE_IF_NOEXIST: u32 = 1;
/// `XDP_FLAGS_SKB_MODE`: generic XDP.
pub(crate) const XDP_FLAGS_SKB_MODE: u32 = 2;
/// `XDP_FLAGS_DRV_MODE`: native XDP.
pub(crate) const XDP_FLAGS_DRV_MODE: u32 = 4;

/// Attaches the XDP program `prog` to interface `ifindex` (`None`: detaches whatever is
/// attached in the mode of `flags`) with one RTM_SETLINK over rtnetlink, in the calling
/// thread's namespace.
///
/// Why netlink and not a `bpf_link`: a link dies with its last descriptor, so a crashed
/// scheduler would leave its interface without the program and its kernel — which has the
/// VIP on lo — would answer every frame of the array's connections with a RST until the
/// router follows the new scheduler's gratuitous ARP. A netlink attachment outlives the
/// process; the program then keeps forwarding established buckets (and assigns no new ones
/// once its lease runs out), and the next start on this interface replaces or removes it.
pub(crate) fn set_xdp(ifindex: u32, prog: Option<BorrowedFd<'_>>, flags: u32) -> io::Result<()> {
    let fd: i32 = prog.map_or(-1, |p| p.as_raw_fd());
    let index = i32::try_from(ifindex).unwrap_or(i32::MAX);
    let mut msg: Vec<u8> = Vec::with_capacity(52);
    // nlmsghdr: length (filled below), RTM_SETLINK, NLM_F_REQUEST | NLM_F_ACK, seq 1, pid 0.
    msg.extend_from_slice(&0u32.to_ne_bytes());
    msg.extend_from_slice(&libc::RTM_SETLINK.to_ne_bytes());
    let nl_flags = u16::try_from(libc::NLM_F_REQUEST | libc::NLM_F_ACK).unwrap_or(5);
    msg.extend_from_slice(&nl_flags.to_ne_bytes());
    msg.extend_from_slice(&1u32.to_ne_bytes());
    msg.extend_from_slice(&0u32.to_ne_bytes());
    // ifinfomsg: AF_UNSPEC, pad, type 0, the index, flags 0, change 0.
    msg.extend_from_slice(&[0, 0, 0, 0]);
    msg.extend_from_slice(&index.to_ne_bytes());
    msg.extend_from_slice(&0u32.to_ne_bytes());
    msg.extend_from_slice(&0u32.to_ne_bytes());
    // IFLA_XDP { IFLA_XDP_FD, IFLA_XDP_FLAGS }.
    msg.extend_from_slice(&20u16.to_ne_bytes());
    msg.extend_from_slice(&(IFLA_XDP | NLA_F_NESTED).to_ne_bytes());
    msg.extend_from_slice(&8u16.to_ne_bytes());
    msg.extend_from_slice(&IFLA_XDP_FD.to_ne_bytes());
    msg.extend_from_slice(&fd.to_ne_bytes());
    msg.extend_from_slice(&8u16.to_ne_bytes());
    msg.extend_from_slice(&IFLA_XDP_FLAGS.to_ne_bytes());
    msg.extend_from_slice(&flags.to_ne_bytes());
    let len = u32::try_from(msg.len()).unwrap_or(0);
    msg[..4].copy_from_slice(&len.to_ne_bytes());

    // SAFETY: socket(2) with constant arguments.
    let raw = check(unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            libc::NETLINK_ROUTE,
        )
    })?;
    // SAFETY: `raw` is a fresh descriptor that nothing else owns.
    let sock = unsafe { OwnedFd::from_raw_fd(raw) };
    // SAFETY: sockaddr_nl is plain data; all-zero (pid 0 = the kernel) is what we want.
    let mut kernel: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
    kernel.nl_family = libc::AF_NETLINK as libc::sa_family_t;
    // SAFETY: the kernel reads msg.len() bytes of the live buffer and one sockaddr_nl.
    check_size(unsafe {
        libc::sendto(
            sock.as_raw_fd(),
            msg.as_ptr().cast(),
            msg.len(),
            0,
            std::ptr::from_ref(&kernel).cast(),
            std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
        )
    })?;
    let mut reply = [0u8; 1024];
    // SAFETY: the kernel writes at most reply.len() bytes into the live buffer.
    let n = check_size(unsafe {
        libc::recv(sock.as_raw_fd(), reply.as_mut_ptr().cast(), reply.len(), 0)
    })?;
    // The answer is an NLMSG_ERROR whose `error` (after the 16-byte header) is 0 or -errno.
    let error = reply
        .get(16..20)
        .filter(|_| n >= 20)
        .and_then(|b| <[u8; 4]>::try_from(b).ok())
        .map(i32::from_ne_bytes)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "short rtnetlink answer"))?;
    if error < 0 {
        return Err(io::Error::from_raw_os_error(-error));
    }
    Ok(())
}

/// `SIOCETHTOOL` (linux/sockios.h).
const SIOCETHTOOL: libc::c_ulong = 0x8946;
/// `ETHTOOL_GDRVINFO` (linux/ethtool.h).
const ETHTOOL_GDRVINFO: u32 = 0x0000_0003;

/// `struct ethtool_drvinfo` (linux/ethtool.h): only `driver` is read.
#[repr(C)]
struct EthtoolDrvinfo {
    cmd: u32,
    driver: [u8; 32],
    version: [u8; 32],
    fw_version: [u8; 32],
    bus_info: [u8; 32],
    erom_version: [u8; 32],
    reserved2: [u8; 12],
    n_priv_flags: u32,
    n_stats: u32,
    testinfo_len: u32,
    eedump_len: u32,
    regdump_len: u32,
}

/// The driver of interface `name` (`veth`, `virtio_net`, `mlx5_core`, ...), by the ethtool
/// ioctl, in the calling thread's namespace: the XDP data plane picks its mode by it.
pub(crate) fn interface_driver(name: &str) -> io::Result<String> {
    // SAFETY: socket(2) with constant arguments.
    let raw =
        check(unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) })?;
    // SAFETY: `raw` is a fresh descriptor that nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    // SAFETY: plain integers and byte arrays: all-zero is a valid value.
    let mut info: EthtoolDrvinfo = unsafe { std::mem::zeroed() };
    info.cmd = ETHTOOL_GDRVINFO;
    let mut req = ifreq(name)?;
    req.ifr_ifru.ifru_data = std::ptr::from_mut(&mut info).cast();
    // SAFETY: SIOCETHTOOL with ETHTOOL_GDRVINFO writes one ethtool_drvinfo through
    // `ifru_data`, which points to a live one for the duration of the call.
    check(unsafe { libc::ioctl(fd.as_raw_fd(), SIOCETHTOOL, &mut req) })?;
    let end = info
        .driver
        .iter()
        .position(|&b| b == 0)
        .unwrap_or(info.driver.len());
    Ok(String::from_utf8_lossy(&info.driver[..end]).into_owned())
}

/// Waits until `fd` is readable or `timeout` passes; `false` on timeout or signal.
pub(crate) fn wait_readable(fd: BorrowedFd<'_>, timeout: Duration) -> io::Result<bool> {
    let mut pfd = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    let ms = libc::c_int::try_from(timeout.as_millis()).unwrap_or(libc::c_int::MAX);
    // SAFETY: one valid pollfd, count 1.
    match check(unsafe { libc::poll(&mut pfd, 1, ms) }) {
        Ok(n) => Ok(n > 0),
        Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(false),
        Err(e) => Err(e),
    }
}

/// Whether interface `name` is administratively up and has carrier (`IFF_UP` and
/// `IFF_RUNNING`, SIOCGIFFLAGS) in the calling thread's namespace. A packet socket hears of
/// an administrative down (its receive fails with ENETDOWN) but not of a lost carrier, which
/// leaves it polling a dead link.
pub(crate) fn interface_running(name: &str) -> io::Result<bool> {
    // SAFETY: socket(2) with constant arguments.
    let raw =
        check(unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) })?;
    // SAFETY: `raw` is a fresh descriptor that nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    let mut req = ifreq(name)?;
    // SAFETY: SIOCGIFFLAGS reads and writes one ifreq, which `req` is.
    check(unsafe { libc::ioctl(fd.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) })?;
    // SAFETY: after a successful SIOCGIFFLAGS the union holds `ifru_flags`.
    let flags = i32::from(unsafe { req.ifr_ifru.ifru_flags });
    let want = libc::IFF_UP | libc::IFF_RUNNING;
    Ok(flags & want == want)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_monotonic_clock_moves_forward_in_nanoseconds() {
        let a = monotonic_ns();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let b = monotonic_ns();
        assert!(b - a >= 2_000_000 && b - a < 2_000_000_000, "{a} {b}");
    }

    #[test]
    fn the_driver_of_an_interface_is_read_and_a_missing_one_is_an_error() {
        // lo has no ethtool driver info on every kernel; a missing interface always fails.
        let _ = interface_driver("lo");
        assert!(interface_driver("pf-no-such-if").is_err());
    }

    #[test]
    fn loopback_is_running() {
        assert!(interface_running("lo").unwrap());
        assert!(interface_running("pf-no-such-if").is_err());
    }

    #[test]
    fn filter_jumps_land_inside_the_program() {
        let prog = vip_filter(Ipv4Addr::new(10, 77, 1, 10));
        let last = prog.len() - 1;
        for (i, ins) in prog
            .iter()
            .enumerate()
            .filter(|(_, ins)| u32::from(ins.code) & 0x07 == libc::BPF_JMP)
        {
            assert!(i + 1 + usize::from(ins.jt) <= last);
            assert!(i + 1 + usize::from(ins.jf) <= last);
        }
        assert_eq!(prog[5].k, 0x0A4D_010A);
    }

    #[test]
    fn long_interface_names_are_refused() {
        assert!(ifreq("a-name-of-16-chr").is_err());
        assert!(ifreq("").is_err());
        assert!(ifreq("eth0").is_ok());
    }
}
