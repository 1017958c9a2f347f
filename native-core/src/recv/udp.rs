//! Batched UDP ingress with `recvmmsg`: one system call returns every datagram already queued
//! (MSG_WAITFORONE), into a preallocated arena — no allocation per packet.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::time::Duration;

/// Largest datagram we accept (jumbo-frame media packets); bigger ones are truncated and dropped.
pub const MAX_DATAGRAM_BYTES: usize = 9216;
/// 8 MiB (the kernel doubles it): several hundred ms of a 50 Mbit/s stream if the thread stalls.
const RECV_BUFFER_BYTES: libc::c_int = 8 << 20;

/// Asks for a [`RECV_BUFFER_BYTES`] receive buffer (the kernel caps it at `net.core.rmem_max`), so a
/// receive thread that is not scheduled for a while loses nothing.
pub fn enlarge_receive_buffer(socket: &UdpSocket) {
    let value = RECV_BUFFER_BYTES;
    // SAFETY: `value` lives for the call; size passed exactly. Failure only means a smaller buffer.
    unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            &value as *const libc::c_int as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}

pub struct UdpReceiver {
    socket: UdpSocket,
    arena: Vec<u8>,
    lengths: Vec<usize>,
    truncated: Vec<bool>,
    iovecs: Vec<libc::iovec>,
    headers: Vec<libc::mmsghdr>,
    batch: usize,
}

// SAFETY: the raw pointers in `iovecs`/`headers` point into `arena`, owned by the same struct, and
// are rebuilt before every receive; one thread uses a receiver at a time.
unsafe impl Send for UdpReceiver {}

impl UdpReceiver {
    /// Binds `addr`; `recv_batch` waits at most `poll` so the owner can check for shutdown.
    pub fn bind(addr: SocketAddr, batch: usize, poll: Duration) -> io::Result<Self> {
        let socket = UdpSocket::bind(addr)?;
        socket.set_read_timeout(Some(poll))?;
        enlarge_receive_buffer(&socket);
        let batch = batch.max(1);
        Ok(Self {
            socket,
            arena: vec![0; batch * MAX_DATAGRAM_BYTES],
            lengths: vec![0; batch],
            truncated: vec![false; batch],
            iovecs: Vec::with_capacity(batch),
            headers: Vec::with_capacity(batch),
            batch,
        })
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.socket.local_addr()
    }

    /// Waits up to the poll interval for datagrams; returns how many arrived (0 on timeout).
    pub fn recv_batch(&mut self) -> io::Result<usize> {
        self.iovecs.clear();
        for slot in self.arena.chunks_mut(MAX_DATAGRAM_BYTES) {
            self.iovecs.push(libc::iovec {
                iov_base: slot.as_mut_ptr() as *mut libc::c_void,
                iov_len: slot.len(),
            });
        }
        crate::send::udp::fill_mmsg_headers(&mut self.iovecs, &mut self.headers);
        // SAFETY: headers → iovecs → arena slots, all owned by self and alive for the call.
        let received = unsafe {
            libc::recvmmsg(
                self.socket.as_raw_fd(),
                self.headers.as_mut_ptr(),
                self.batch as u32,
                libc::MSG_WAITFORONE,
                std::ptr::null_mut(),
            )
        };
        if received < 0 {
            let error = io::Error::last_os_error();
            return match error.raw_os_error() {
                Some(libc::EAGAIN) | Some(libc::EINTR) => Ok(0),
                _ => Err(error),
            };
        }
        let count = received as usize;
        for i in 0..count {
            self.lengths[i] = self.headers[i].msg_len as usize;
            self.truncated[i] = self.headers[i].msg_hdr.msg_flags & libc::MSG_TRUNC != 0;
        }
        Ok(count)
    }

    /// Datagram `i` of the last batch, mutable so it can be opened in place; None when truncated.
    pub fn datagram_mut(&mut self, i: usize) -> Option<&mut [u8]> {
        if self.truncated[i] {
            return None;
        }
        let start = i * MAX_DATAGRAM_BYTES;
        Some(&mut self.arena[start..start + self.lengths[i]])
    }

    /// Datagram `i` of the last batch, or None when it was truncated (oversized → dropped).
    pub fn datagram(&self, i: usize) -> Option<&[u8]> {
        if self.truncated[i] {
            return None;
        }
        let start = i * MAX_DATAGRAM_BYTES;
        Some(&self.arena[start..start + self.lengths[i]])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::send::udp::UdpSender;

    fn pair() -> (UdpSender, UdpReceiver) {
        let receiver = UdpReceiver::bind(
            "127.0.0.1:0".parse().unwrap(),
            64,
            Duration::from_millis(200),
        )
        .unwrap();
        let sender = UdpSender::connect(
            "127.0.0.1:0".parse().unwrap(),
            receiver.local_addr().unwrap(),
        )
        .unwrap();
        (sender, receiver)
    }

    fn receive(receiver: &mut UdpReceiver, expected: usize) -> Vec<Vec<u8>> {
        let mut got = Vec::new();
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while got.len() < expected && std::time::Instant::now() < deadline {
            let n = receiver.recv_batch().unwrap();
            for i in 0..n {
                got.push(receiver.datagram(i).unwrap().to_vec());
            }
        }
        got
    }

    #[test]
    fn sendmmsg_batches_arrive_whole_and_in_order_on_loopback() {
        let (mut sender, mut receiver) = pair();
        let packets: Vec<Vec<u8>> = (0..200u32)
            .map(|i| vec![(i % 251) as u8; 100 + i as usize])
            .collect();
        let refs: Vec<&[u8]> = packets.iter().map(|p| p.as_slice()).collect();
        sender.send_all(&refs).unwrap();
        assert_eq!(sender.datagrams_sent(), 200);
        assert!(
            sender.syscalls() <= 4,
            "200 datagrams in {} syscalls",
            sender.syscalls()
        );
        assert_eq!(receive(&mut receiver, 200), packets);
    }

    #[test]
    fn gso_or_fallback_cuts_the_buffer_into_segments() {
        let (mut sender, mut receiver) = pair();
        let buf: Vec<u8> = (0..(1472 * 50 + 100)).map(|i| (i % 253) as u8).collect();
        sender.send_segmented(&buf, 1472).unwrap();
        let got = receive(&mut receiver, 51);
        assert_eq!(got.len(), 51, "gso available: {}", sender.gso_available());
        assert_eq!(got.concat(), buf);
        assert!(got[..50].iter().all(|d| d.len() == 1472));
        assert_eq!(got[50].len(), 100);
    }

    #[test]
    fn a_quiet_socket_times_out_with_zero() {
        let (_sender, mut receiver) = pair();
        assert_eq!(receiver.recv_batch().unwrap(), 0);
    }

    #[test]
    fn invalid_segment_sizes_are_refused() {
        let (mut sender, _receiver) = pair();
        assert!(sender.send_segmented(&[1, 2, 3], 0).is_err());
        assert!(sender.send_segmented(&[1, 2, 3], 70_000).is_err());
    }
}
