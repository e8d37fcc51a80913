//! The raw system calls of the data plane: the only `unsafe` code of pentaflow.
//!
//! Owns: the AF_PACKET socket (ETH_P_ALL, bound to one interface, classic BPF filter,
//! PACKET_VNET_HDR, plain `recv`/`send`), the TAP device (IFF_TAP | IFF_NO_PI | IFF_VNET_HDR),
//! and interface look-ups by ioctl. Must not: interpret frames or keep policy. Every `unsafe`
//! block states why it is sound; descriptors are `OwnedFd`, so they close exactly once.
//!
//! Everything here acts in the network namespace of the *calling thread*: sockets, TAP devices
//! and ioctls are bound to the namespace of the task that creates them.

use std::ffi::CString;
use std::io;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
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
