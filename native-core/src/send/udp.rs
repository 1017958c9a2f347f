//! Batched UDP egress: `sendmmsg` (up to 64 datagrams per system call) and, where the kernel
//! supports it, UDP GSO (`UDP_SEGMENT`: one large buffer the kernel cuts into datagrams), which
//! is what keeps egress cost per Gbit/s low.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;

/// Linux accepts at most 64 segments per GSO send (UDP_MAX_SEGMENTS) and 64 KiB of payload.
const GSO_MAX_SEGMENTS: usize = 64;
const GSO_MAX_BYTES: usize = 65_000;
/// Datagrams per sendmmsg call; 64 amortizes the syscall well past the point of diminishing returns.
const MMSG_BATCH: usize = 64;
/// 4 MiB: room for several 1080p frames' worth of packets while the NIC drains.
const SEND_BUFFER_BYTES: libc::c_int = 4 << 20;

pub struct UdpSender {
    socket: UdpSocket,
    gso: bool,
    headers: Vec<libc::mmsghdr>,
    iovecs: Vec<libc::iovec>,
    datagrams_sent: u64,
    syscalls: u64,
}

// SAFETY: the raw pointers inside `headers`/`iovecs` are scratch space rebuilt before every call and
// never dereferenced outside `send_all`; the sender is used by one thread at a time.
unsafe impl Send for UdpSender {}

fn set_int_option(
    fd: libc::c_int,
    level: libc::c_int,
    name: libc::c_int,
    value: libc::c_int,
) -> io::Result<()> {
    // SAFETY: `value` lives for the call and its size is passed exactly.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            &value as *const libc::c_int as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

impl UdpSender {
    /// A socket bound to `local` and connected to `dest` (so batches need no per-datagram address).
    pub fn connect(local: SocketAddr, dest: SocketAddr) -> io::Result<Self> {
        let socket = UdpSocket::bind(local)?;
        socket.connect(dest)?;
        Ok(Self::from_connected(socket))
    }

    /// Wraps a socket the caller already connected (e.g. to the source of a client's ping).
    pub fn from_connected(socket: UdpSocket) -> Self {
        let fd = socket.as_raw_fd();
        let _ = set_int_option(fd, libc::SOL_SOCKET, libc::SO_SNDBUF, SEND_BUFFER_BYTES);
        // Probing with a zero segment size asks "is UDP_SEGMENT known?" without changing behaviour.
        let gso = set_int_option(fd, libc::SOL_UDP, libc::UDP_SEGMENT, 0).is_ok();
        Self {
            socket,
            gso,
            headers: Vec::with_capacity(MMSG_BATCH),
            iovecs: Vec::with_capacity(MMSG_BATCH),
            datagrams_sent: 0,
            syscalls: 0,
        }
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.socket.local_addr()
    }

    pub fn gso_available(&self) -> bool {
        self.gso
    }

    /// Forces the sendmmsg path (benchmarks compare both).
    pub fn disable_gso(&mut self) {
        self.gso = false;
    }

    pub fn datagrams_sent(&self) -> u64 {
        self.datagrams_sent
    }

    pub fn syscalls(&self) -> u64 {
        self.syscalls
    }

    /// Sends every packet as its own datagram, 64 per `sendmmsg`. Retries on ENOBUFS/EAGAIN.
    pub fn send_all(&mut self, packets: &[&[u8]]) -> io::Result<()> {
        let fd = self.socket.as_raw_fd();
        let mut offset = 0;
        while offset < packets.len() {
            let batch = &packets[offset..(offset + MMSG_BATCH).min(packets.len())];
            self.iovecs.clear();
            self.iovecs.extend(batch.iter().map(|p| libc::iovec {
                iov_base: p.as_ptr() as *mut libc::c_void,
                iov_len: p.len(),
            }));
            fill_mmsg_headers(&mut self.iovecs, &mut self.headers);
            // SAFETY: headers point at iovecs that point at `batch`, all alive for this call.
            let sent = unsafe {
                libc::sendmmsg(fd, self.headers.as_mut_ptr(), self.headers.len() as u32, 0)
            };
            self.syscalls += 1;
            if sent < 0 {
                let error = io::Error::last_os_error();
                if retryable(&error) {
                    std::thread::yield_now();
                    continue;
                }
                return Err(error);
            }
            offset += sent as usize;
            self.datagrams_sent += sent as u64;
        }
        Ok(())
    }

    /// Sends `buf` as consecutive `segment`-byte datagrams (the last may be shorter) with UDP GSO,
    /// falling back to `send_all` when GSO is unavailable.
    pub fn send_segmented(&mut self, buf: &[u8], segment: usize) -> io::Result<()> {
        if segment == 0 || segment > u16::MAX as usize {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "segment size out of range",
            ));
        }
        if !self.gso {
            let packets: Vec<&[u8]> = buf.chunks(segment).collect();
            return self.send_all(&packets);
        }
        let per_call = GSO_MAX_SEGMENTS.min(GSO_MAX_BYTES / segment).max(1) * segment;
        for chunk in buf.chunks(per_call) {
            loop {
                match self.send_gso_chunk(chunk, segment as u16) {
                    Ok(()) => break,
                    Err(error) if retryable(&error) => std::thread::yield_now(),
                    Err(error) => return Err(error),
                }
            }
            self.datagrams_sent += chunk.len().div_ceil(segment) as u64;
        }
        Ok(())
    }

    fn send_gso_chunk(&mut self, chunk: &[u8], segment: u16) -> io::Result<()> {
        // Control buffer for one cmsg carrying a u16; u64-aligned as cmsghdr requires.
        let mut control = [0u64; 4];
        let mut iovec = libc::iovec {
            iov_base: chunk.as_ptr() as *mut libc::c_void,
            iov_len: chunk.len(),
        };
        // SAFETY: msghdr is plain old data; zero is a valid starting state.
        let mut message: libc::msghdr = unsafe { std::mem::zeroed() };
        message.msg_iov = &mut iovec;
        message.msg_iovlen = 1;
        message.msg_control = control.as_mut_ptr() as *mut libc::c_void;
        // SAFETY: CMSG_SPACE only computes a size.
        message.msg_controllen =
            unsafe { libc::CMSG_SPACE(std::mem::size_of::<u16>() as u32) } as usize;
        // SAFETY: the control buffer is large enough for one u16 cmsg (32 bytes ≥ CMSG_SPACE(2)), and
        // CMSG_FIRSTHDR/CMSG_DATA stay within it.
        let rc = unsafe {
            let cmsg = libc::CMSG_FIRSTHDR(&message);
            (*cmsg).cmsg_level = libc::SOL_UDP;
            (*cmsg).cmsg_type = libc::UDP_SEGMENT;
            (*cmsg).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<u16>() as u32) as usize;
            std::ptr::write_unaligned(libc::CMSG_DATA(cmsg) as *mut u16, segment);
            libc::sendmsg(self.socket.as_raw_fd(), &message, 0)
        };
        self.syscalls += 1;
        if rc < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(())
        }
    }
}

/// One mmsghdr per iovec (no address, no control data), for sendmmsg and recvmmsg alike.
pub(crate) fn fill_mmsg_headers(iovecs: &mut [libc::iovec], headers: &mut Vec<libc::mmsghdr>) {
    headers.clear();
    for iovec in iovecs.iter_mut() {
        // SAFETY: mmsghdr is plain old data; all-zero is a valid "no name, no control" header.
        let mut header: libc::mmsghdr = unsafe { std::mem::zeroed() };
        header.msg_hdr.msg_iov = iovec as *mut libc::iovec;
        header.msg_hdr.msg_iovlen = 1;
        headers.push(header);
    }
}

fn retryable(error: &io::Error) -> bool {
    matches!(
        error.raw_os_error(),
        Some(libc::ENOBUFS) | Some(libc::EAGAIN) | Some(libc::EINTR)
    )
}
