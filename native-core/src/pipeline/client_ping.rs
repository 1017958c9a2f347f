//! GameStream media binding (protocol reference `docs/gamestream.md` §7.1, §8.1): the host does not
//! know where to send video or audio until the client pings the media port. The source address of
//! the first matching ping becomes the destination; later pings only keep NAT mappings open.

use std::io::ErrorKind;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// The legacy ping of clients without `X-SS-Ping-Payload`.
pub const LEGACY_PING: &[u8; 4] = b"PING";
/// Poll step while waiting, bounding how long a stop request waits.
const POLL: Duration = Duration::from_millis(20);

/// Whether `datagram` is a ping for this session: with a payload, ≥ 20 bytes starting with it
/// (payload ‖ BE32 counter); without, exactly the legacy `PING`.
pub fn ping_matches(datagram: &[u8], expected: Option<&[u8; 16]>) -> bool {
    match expected {
        Some(payload) => datagram.len() >= 20 && &datagram[..16] == payload,
        None => datagram == LEGACY_PING,
    }
}

/// Parses the optional `ping_payload` field (the 16-character `X-SS-Ping-Payload`).
pub fn ping_payload(root: &serde_json::Value) -> Result<Option<[u8; 16]>, String> {
    match root.get("ping_payload").filter(|v| !v.is_null()) {
        None => Ok(None),
        Some(v) => {
            let text = v.as_str().unwrap_or_default();
            if text.len() != 16 || !text.is_ascii() {
                return Err("ping_payload must be 16 ASCII characters".into());
            }
            let mut out = [0u8; 16];
            out.copy_from_slice(text.as_bytes());
            Ok(Some(out))
        }
    }
}

/// Why no client was bound.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BindError {
    Stopped,
    TimedOut,
    Socket(String),
}

impl std::fmt::Display for BindError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BindError::Stopped => write!(f, "stopped before the client pinged"),
            BindError::TimedOut => write!(f, "no ping from the client in time"),
            BindError::Socket(e) => write!(f, "socket: {e}"),
        }
    }
}

/// Waits on `socket` for the first matching ping and connects the socket to its source.
/// Non-matching datagrams are ignored (counted in the returned tuple's second field).
pub fn bind_client_by_ping(
    socket: &UdpSocket,
    expected: Option<&[u8; 16]>,
    timeout: Duration,
    stop: &AtomicBool,
) -> Result<(SocketAddr, u64), BindError> {
    socket
        .set_read_timeout(Some(POLL))
        .map_err(|e| BindError::Socket(e.to_string()))?;
    let deadline = Instant::now() + timeout;
    let mut ignored = 0u64;
    let mut buf = [0u8; 1500];
    loop {
        if stop.load(Ordering::SeqCst) {
            return Err(BindError::Stopped);
        }
        if Instant::now() >= deadline {
            return Err(BindError::TimedOut);
        }
        match socket.recv_from(&mut buf) {
            Ok((len, from)) if ping_matches(&buf[..len], expected) => {
                socket
                    .connect(from)
                    .map_err(|e| BindError::Socket(e.to_string()))?;
                socket
                    .set_read_timeout(None)
                    .map_err(|e| BindError::Socket(e.to_string()))?;
                return Ok((from, ignored));
            }
            Ok(_) => ignored += 1,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            // ICMP errors from earlier traffic surface here on Linux; they are not fatal.
            Err(e) if e.kind() == ErrorKind::ConnectionRefused => {}
            Err(e) => return Err(BindError::Socket(e.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAYLOAD: &[u8; 16] = b"0123456789ABCDEF";

    #[test]
    fn pings_match_by_payload_or_legacy_text() {
        let mut ping = PAYLOAD.to_vec();
        ping.extend_from_slice(&7u32.to_be_bytes());
        assert!(ping_matches(&ping, Some(PAYLOAD)));
        assert!(!ping_matches(&ping[..16], Some(PAYLOAD)), "counter missing");
        assert!(!ping_matches(b"PING", Some(PAYLOAD)));
        assert!(ping_matches(b"PING", None));
        assert!(!ping_matches(&ping, None));
        let mut wrong = ping.clone();
        wrong[3] ^= 1;
        assert!(!ping_matches(&wrong, Some(PAYLOAD)));
    }

    #[test]
    fn the_first_matching_ping_binds_and_strangers_are_ignored() {
        let host = UdpSocket::bind("127.0.0.1:0").unwrap();
        let host_addr = host.local_addr().unwrap();
        let stranger = UdpSocket::bind("127.0.0.1:0").unwrap();
        let client = UdpSocket::bind("127.0.0.1:0").unwrap();
        stranger.send_to(b"PING", host_addr).unwrap();
        let mut ping = PAYLOAD.to_vec();
        ping.extend_from_slice(&1u32.to_be_bytes());
        client.send_to(&ping, host_addr).unwrap();
        let stop = AtomicBool::new(false);
        let (bound, ignored) =
            bind_client_by_ping(&host, Some(PAYLOAD), Duration::from_secs(2), &stop).unwrap();
        assert_eq!(bound, client.local_addr().unwrap());
        assert_eq!(ignored, 1);
        host.send(b"video").unwrap();
        let mut buf = [0u8; 16];
        let (len, _) = client.recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..len], b"video");
    }

    #[test]
    fn silence_times_out_and_stop_is_prompt() {
        let host = UdpSocket::bind("127.0.0.1:0").unwrap();
        let stop = AtomicBool::new(false);
        assert_eq!(
            bind_client_by_ping(&host, None, Duration::from_millis(60), &stop),
            Err(BindError::TimedOut)
        );
        stop.store(true, Ordering::SeqCst);
        assert_eq!(
            bind_client_by_ping(&host, None, Duration::from_secs(60), &stop),
            Err(BindError::Stopped)
        );
    }
}
