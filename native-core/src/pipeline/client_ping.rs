//! GameStream media binding (protocol reference `docs/gamestream-protocol.md` §7.1, §8.1): the host
//! does not know where to send video or audio until the client pings the media port. The source
//! address of the first matching ping becomes the destination; later pings only keep NAT mappings
//! open.
//!
//! The ping payload travels in plain RTSP, so anyone who sniffed it could ping first and take the
//! stream. When the session knows its owner (`client_ip`, the address that launched it), only pings
//! from that IP count; others are ignored and counted. Once bound, the socket is connected to the
//! owner's address, so the kernel no longer delivers datagrams from anyone else: the destination
//! never moves.

use std::io::ErrorKind;
use std::net::{IpAddr, SocketAddr, UdpSocket};
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

/// Parses the optional `client_ip` field: the only IP whose pings may bind the media stream.
pub fn client_ip(root: &serde_json::Value) -> Result<Option<IpAddr>, String> {
    match root.get("client_ip").filter(|v| !v.is_null()) {
        None => Ok(None),
        Some(v) => v
            .as_str()
            .and_then(|text| text.parse::<IpAddr>().ok())
            .map(|ip| Some(ip.to_canonical()))
            .ok_or_else(|| "client_ip must be an IPv4 or IPv6 address".into()),
    }
}

/// Which datagrams may bind the media stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PingFilter {
    /// `X-SS-Ping-Payload`; None accepts the legacy `PING`.
    pub payload: Option<[u8; 16]>,
    /// The session owner's IP; None accepts a ping from anywhere (tests, punktfunk-internal use).
    pub owner: Option<IpAddr>,
}

/// The bound client and what was turned away before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BoundClient {
    pub address: SocketAddr,
    /// Datagrams that were not a ping for this session.
    pub ignored: u64,
    /// Well-formed pings from an address other than the owner's.
    pub foreign_pings: u64,
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

/// Waits on `socket` for the first matching ping from the owner and connects the socket to its
/// source. Everything else is ignored and counted in the result.
pub fn bind_client_by_ping(
    socket: &UdpSocket,
    filter: &PingFilter,
    timeout: Duration,
    stop: &AtomicBool,
) -> Result<BoundClient, BindError> {
    socket
        .set_read_timeout(Some(POLL))
        .map_err(|e| BindError::Socket(e.to_string()))?;
    let deadline = Instant::now() + timeout;
    let mut ignored = 0u64;
    let mut foreign_pings = 0u64;
    let mut buf = [0u8; 1500];
    loop {
        if stop.load(Ordering::SeqCst) {
            return Err(BindError::Stopped);
        }
        if Instant::now() >= deadline {
            return Err(BindError::TimedOut);
        }
        match socket.recv_from(&mut buf) {
            Ok((len, _)) if !ping_matches(&buf[..len], filter.payload.as_ref()) => ignored += 1,
            Ok((_, from))
                if filter
                    .owner
                    .is_some_and(|owner| from.ip().to_canonical() != owner) =>
            {
                foreign_pings += 1;
            }
            Ok((_, from)) => {
                socket
                    .connect(from)
                    .map_err(|e| BindError::Socket(e.to_string()))?;
                socket
                    .set_read_timeout(None)
                    .map_err(|e| BindError::Socket(e.to_string()))?;
                return Ok(BoundClient {
                    address: from,
                    ignored,
                    foreign_pings,
                });
            }
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

    fn ping(counter: u32) -> Vec<u8> {
        let mut ping = PAYLOAD.to_vec();
        ping.extend_from_slice(&counter.to_be_bytes());
        ping
    }

    fn filter(owner: Option<&str>) -> PingFilter {
        PingFilter {
            payload: Some(*PAYLOAD),
            owner: owner.map(|ip| ip.parse().unwrap()),
        }
    }

    #[test]
    fn the_first_matching_ping_binds_and_strangers_are_ignored() {
        let host = UdpSocket::bind("127.0.0.1:0").unwrap();
        let host_addr = host.local_addr().unwrap();
        let stranger = UdpSocket::bind("127.0.0.1:0").unwrap();
        let client = UdpSocket::bind("127.0.0.1:0").unwrap();
        stranger.send_to(b"PING", host_addr).unwrap();
        client.send_to(&ping(1), host_addr).unwrap();
        let stop = AtomicBool::new(false);
        let bound =
            bind_client_by_ping(&host, &filter(None), Duration::from_secs(2), &stop).unwrap();
        assert_eq!(bound.address, client.local_addr().unwrap());
        assert_eq!((bound.ignored, bound.foreign_pings), (1, 0));
        host.send(b"video").unwrap();
        let mut buf = [0u8; 16];
        let (len, _) = client.recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..len], b"video");
    }

    #[test]
    fn only_the_owner_binds_and_the_destination_never_moves() {
        let host = UdpSocket::bind("127.0.0.1:0").unwrap();
        let host_addr = host.local_addr().unwrap();
        // 127.0.0.2 stands in for another machine on the LAN that sniffed the ping payload.
        let stranger = UdpSocket::bind("127.0.0.2:0").unwrap();
        let client = UdpSocket::bind("127.0.0.1:0").unwrap();
        stranger.send_to(&ping(1), host_addr).unwrap();
        stranger.send_to(&ping(2), host_addr).unwrap();
        client.send_to(&ping(1), host_addr).unwrap();
        let stop = AtomicBool::new(false);
        let bound = bind_client_by_ping(
            &host,
            &filter(Some("127.0.0.1")),
            Duration::from_secs(2),
            &stop,
        )
        .unwrap();
        assert_eq!(bound.address, client.local_addr().unwrap());
        assert_eq!((bound.ignored, bound.foreign_pings), (0, 2));

        // After binding, the connected socket hears only the owner: the stranger's later ping is
        // never delivered (loopback delivery is synchronous, so it would be queued before the marker).
        stranger.send_to(&ping(3), host_addr).unwrap();
        client.send_to(b"marker", host_addr).unwrap();
        host.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let mut buf = [0u8; 64];
        let (len, from) = host.recv_from(&mut buf).unwrap();
        assert_eq!(
            (&buf[..len], from),
            (&b"marker"[..], client.local_addr().unwrap())
        );

        // Media goes to the owner only.
        host.send(b"video").unwrap();
        let (len, _) = client.recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..len], b"video");
        stranger.set_nonblocking(true).unwrap();
        let nothing = stranger.recv_from(&mut buf);
        assert_eq!(nothing.unwrap_err().kind(), ErrorKind::WouldBlock);
    }

    #[test]
    fn a_stranger_alone_never_binds() {
        let host = UdpSocket::bind("127.0.0.1:0").unwrap();
        let stranger = UdpSocket::bind("127.0.0.2:0").unwrap();
        stranger
            .send_to(&ping(1), host.local_addr().unwrap())
            .unwrap();
        let stop = AtomicBool::new(false);
        let result = bind_client_by_ping(
            &host,
            &filter(Some("127.0.0.1")),
            Duration::from_millis(200),
            &stop,
        );
        assert_eq!(result, Err(BindError::TimedOut));
    }

    #[test]
    fn client_ip_parses_canonically_and_rejects_garbage() {
        let parse = |text: &str| client_ip(&serde_json::from_str(text).unwrap());
        assert_eq!(parse("{}"), Ok(None));
        assert_eq!(parse(r#"{"client_ip":null}"#), Ok(None));
        assert_eq!(
            parse(r#"{"client_ip":"::ffff:127.0.0.1"}"#),
            Ok(Some("127.0.0.1".parse().unwrap()))
        );
        assert_eq!(
            parse(r#"{"client_ip":"fe80::1"}"#),
            Ok(Some("fe80::1".parse().unwrap()))
        );
        for bad in [
            r#"{"client_ip":"nope"}"#,
            r#"{"client_ip":5}"#,
            r#"{"client_ip":"1.2.3.4:5"}"#,
        ] {
            assert!(parse(bad).unwrap_err().contains("client_ip"), "{bad}");
        }
    }

    #[test]
    fn silence_times_out_and_stop_is_prompt() {
        let host = UdpSocket::bind("127.0.0.1:0").unwrap();
        let stop = AtomicBool::new(false);
        let legacy = PingFilter::default();
        assert_eq!(
            bind_client_by_ping(&host, &legacy, Duration::from_millis(60), &stop),
            Err(BindError::TimedOut)
        );
        stop.store(true, Ordering::SeqCst);
        assert_eq!(
            bind_client_by_ping(&host, &legacy, Duration::from_secs(60), &stop),
            Err(BindError::Stopped)
        );
    }
}
