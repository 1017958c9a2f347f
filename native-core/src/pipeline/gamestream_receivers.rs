//! The Moonlight side of GameStream media, for our test client and probes: ping the host's media
//! port (`docs/gamestream-protocol.md` §7.1, §8.1), receive, open, recover with FEC, and decode.
//!
//! Video follows Moonlight's rule that a lost frame breaks the reference chain: frames after a gap
//! count as undecodable until the next IDR (the client asks for one over the control stream when it
//! sees `frames_lost` grow). Loss can be injected on receive (`loss_ppm`), which is
//! indistinguishable from loss on the wire.

use super::client_ping::ping_payload;
use super::config::{field, hex_bytes, string_field, u32_field};
use super::gamestream_audio_sender::{audio_encryption, opus_stream_config};
use super::worker::{Worker, WorkerShared};
use crate::audio::opus::{
    FrameDuration, OpusDecoder, OpusStreamConfig, MAX_FRAME_SAMPLES_PER_CHANNEL,
};
use crate::audio::SAMPLE_RATE_HZ;
use crate::encode::{Codec, VideoDecoder};
use crate::packet::gamestream_audio::{GsAudioDepacketizer, GsAudioEncryption};
use crate::packet::gamestream_video::{GsFrameType, GsReceivedVideoFrame, GsVideoDepacketizer};
use crate::recv::udp::enlarge_receive_buffer;
use crate::send::impairment::Impairment;
use serde_json::Value;
use std::io::ErrorKind;
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

/// Moonlight pings every 500 ms for the whole session.
const PING_INTERVAL: Duration = Duration::from_millis(500);
/// Socket poll step: bounds stop latency and ping jitter.
const RECV_POLL: Duration = Duration::from_millis(5);

/// Settings shared by both receivers.
#[derive(Debug, Clone, PartialEq)]
pub struct GsReceiverLink {
    pub host: SocketAddr,
    pub bind: SocketAddr,
    pub ping_payload: Option<[u8; 16]>,
    pub loss_ppm: u32,
    pub loss_seed: u64,
}

fn parse_root(text: &str) -> Result<Value, String> {
    let root: Value =
        serde_json::from_str(text).map_err(|e| format!("config is not valid JSON: {e}"))?;
    if root.is_object() {
        Ok(root)
    } else {
        Err("config must be a JSON object".into())
    }
}

impl GsReceiverLink {
    fn from_value(root: &Value) -> Result<Self, String> {
        let host = string_field(root, "host", "")?;
        let bind = string_field(root, "bind", "0.0.0.0:0")?;
        Ok(Self {
            host: host
                .parse()
                .map_err(|_| format!("host must be IP:PORT, got {host:?}"))?,
            bind: bind
                .parse()
                .map_err(|_| format!("bind must be IP:PORT, got {bind:?}"))?,
            ping_payload: ping_payload(root)?,
            loss_ppm: u32_field(root, "loss_ppm", 0, 0, 1_000_000)?,
            loss_seed: field(root, "loss_seed")
                .and_then(Value::as_u64)
                .unwrap_or(1),
        })
    }

    fn open(&self) -> Result<UdpSocket, String> {
        let socket = UdpSocket::bind(self.bind).map_err(|e| format!("bind {}: {e}", self.bind))?;
        // Like Moonlight's large RTP buffer: an IDR burst must survive a briefly descheduled thread.
        enlarge_receive_buffer(&socket);
        socket
            .connect(self.host)
            .map_err(|e| format!("connect {}: {e}", self.host))?;
        socket
            .set_read_timeout(Some(RECV_POLL))
            .map_err(|e| e.to_string())?;
        Ok(socket)
    }
}

/// Sends the session's ping every [`PING_INTERVAL`]: payload ‖ BE32 counter (from 1), or `PING`.
struct Pinger {
    payload: Option<[u8; 16]>,
    counter: u32,
    next: Instant,
}

impl Pinger {
    fn new(payload: Option<[u8; 16]>) -> Self {
        Self {
            payload,
            counter: 0,
            next: Instant::now(),
        }
    }

    fn tick(&mut self, socket: &UdpSocket, shared: &WorkerShared) {
        if Instant::now() < self.next {
            return;
        }
        self.next = Instant::now() + PING_INTERVAL;
        self.counter += 1;
        let sent = match &self.payload {
            Some(payload) => {
                let mut ping = [0u8; 20];
                ping[..16].copy_from_slice(payload);
                ping[16..].copy_from_slice(&self.counter.to_be_bytes());
                socket.send(&ping)
            }
            None => socket.send(b"PING"),
        };
        // Before the host listens the kernel reports ICMP "refused"; keep pinging.
        shared.add(
            if sent.is_ok() {
                "pings_sent"
            } else {
                "ping_errors"
            },
            1,
        );
    }
}

/// Receives one datagram into `buf`, or None on timeout/refusal; Err ends the session.
fn receive(socket: &UdpSocket, buf: &mut [u8]) -> Result<Option<usize>, String> {
    match socket.recv(buf) {
        Ok(len) => Ok(Some(len)),
        Err(e)
            if matches!(
                e.kind(),
                ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::ConnectionRefused
            ) =>
        {
            Ok(None)
        }
        Err(e) => Err(e.to_string()),
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct GsVideoReceiverConfig {
    pub link: GsReceiverLink,
    pub packet_size: u32,
    pub key: Option<[u8; 16]>,
    pub codec: Codec,
}

impl GsVideoReceiverConfig {
    pub fn from_json(text: &str) -> Result<Self, String> {
        let root = parse_root(text)?;
        let encrypt = field(&root, "encrypt")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let codec = match string_field(&root, "codec", "h264")?.as_str() {
            "h264" => Codec::H264,
            "hevc" => Codec::Hevc,
            "av1" => Codec::Av1,
            other => return Err(format!("codec must be h264, hevc or av1, got {other:?}")),
        };
        Ok(Self {
            link: GsReceiverLink::from_value(&root)?,
            packet_size: u32_field(&root, "packet_size", 1024, 32, 65_456)?,
            key: if encrypt {
                Some(hex_bytes::<16>(&root, "key")?)
            } else {
                None
            },
            codec,
        })
    }
}

pub fn start_gs_video_receiver(config: GsVideoReceiverConfig) -> Result<Worker, String> {
    let mut depacketizer =
        GsVideoDepacketizer::new(config.packet_size as usize, config.key.as_ref())
            .map_err(|e| format!("depacketizer: {e}"))?;
    let mut decoder = VideoDecoder::open(config.codec).map_err(|e| format!("decoder: {e}"))?;
    let socket = config.link.open()?;
    let port = socket.local_addr().map(|a| a.port()).unwrap_or(0);
    Worker::spawn("pf-gs-video-rx", port, move |shared| {
        let mut chain = FrameChain::default();
        receive_loop(&socket, &config.link, 65_536, shared, |datagram| {
            if let Ok(Some(frame)) = depacketizer.push(datagram) {
                chain.accept(&frame, &mut decoder, shared);
            }
            let stats = depacketizer.stats();
            shared.set("shards_recovered", stats.shards_recovered);
            shared.set("malformed", stats.malformed);
            shared.set("authentication_failures", stats.authentication_failures);
            shared.set("frames_dropped_incomplete", stats.frames_dropped);
        });
    })
}

/// Moonlight's view of the reference chain: a gap breaks it, an IDR mends it.
#[derive(Default)]
struct FrameChain {
    last_index: Option<u32>,
    broken: bool,
}

impl FrameChain {
    fn accept(
        &mut self,
        frame: &GsReceivedVideoFrame,
        decoder: &mut VideoDecoder,
        shared: &WorkerShared,
    ) {
        shared.add("frames_received", 1);
        shared.set("last_frame_index", frame.frame_index);
        if frame.recovered_shards > 0 {
            shared.add("frames_recovered_by_fec", 1);
        }
        let expected = self.last_index.map_or(1, |last| last.wrapping_add(1));
        if frame.frame_index != expected {
            let lost = frame.frame_index.wrapping_sub(expected);
            shared.add("frames_lost", u64::from(lost));
            shared.event(
                "frames_lost",
                &[("first", expected.into()), ("count", lost.into())],
            );
            self.broken = true;
        }
        self.last_index = Some(frame.frame_index);
        if frame.frame_type == GsFrameType::Idr as u8 {
            shared.add("idr_frames", 1);
            shared.event("idr", &[("frame_index", frame.frame_index.into())]);
            self.broken = false;
        }
        if self.broken {
            shared.add("frames_undecodable", 1);
            return;
        }
        match decoder.decode(&frame.access_unit) {
            Ok(Some(picture)) => {
                shared.add("frames_decoded", 1);
                shared.set("width", picture.width);
                shared.set("height", picture.height);
            }
            Ok(None) | Err(_) => {
                shared.add("decode_errors", 1);
                self.broken = true;
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct GsAudioReceiverConfig {
    pub link: GsReceiverLink,
    pub stream: OpusStreamConfig,
    pub duration: FrameDuration,
    pub encryption: Option<GsAudioEncryption>,
}

impl GsAudioReceiverConfig {
    pub fn from_json(text: &str) -> Result<Self, String> {
        let root = parse_root(text)?;
        Ok(Self {
            link: GsReceiverLink::from_value(&root)?,
            stream: opus_stream_config(&root)?,
            duration: FrameDuration::from_millis(u32_field(&root, "packet_duration_ms", 5, 5, 20)?)
                .map_err(|e| e.to_string())?,
            encryption: audio_encryption(&root)?,
        })
    }
}

pub fn start_gs_audio_receiver(config: GsAudioReceiverConfig) -> Result<Worker, String> {
    let mut depacketizer =
        GsAudioDepacketizer::new(config.duration.millis(), config.encryption.clone());
    let mut decoder = OpusDecoder::new(config.stream).map_err(|e| format!("opus decoder: {e}"))?;
    let channels = usize::from(config.stream.channels);
    let socket = config.link.open()?;
    let port = socket.local_addr().map(|a| a.port()).unwrap_or(0);
    Worker::spawn("pf-gs-audio-rx", port, move |shared| {
        let mut pcm = vec![0i16; MAX_FRAME_SAMPLES_PER_CHANNEL * channels];
        let mut pitch = PitchMeter::default();
        receive_loop(&socket, &config.link, 2048, shared, |datagram| {
            let Ok(packets) = depacketizer.push(datagram) else {
                return;
            };
            for packet in packets {
                shared.add(
                    if packet.recovered {
                        "packets_recovered"
                    } else {
                        "packets_received"
                    },
                    1,
                );
                match decoder.decode(&packet.opus, &mut pcm) {
                    Ok(samples) => {
                        shared.add("packets_decoded", 1);
                        shared.set("channels", decoder.channels());
                        shared.set(
                            "last_rms_channel0",
                            rms_of_channel0(&pcm[..samples * channels], channels),
                        );
                        pitch.measure(&pcm[..samples * channels], channels, shared);
                    }
                    Err(_) => shared.add("decode_errors", 1),
                }
            }
            let stats = depacketizer.stats();
            shared.set("malformed", stats.malformed);
            shared.set("decryption_failures", stats.decryption_failures);
        });
    })
}

/// What both receivers do per datagram before their own work: ping the host, receive (an error ends
/// the session), count, apply the receive-side loss impairment, then hand the datagram on.
fn receive_loop(
    socket: &UdpSocket,
    link: &GsReceiverLink,
    buffer_bytes: usize,
    shared: &WorkerShared,
    mut on_datagram: impl FnMut(&[u8]),
) {
    let mut pinger = Pinger::new(link.ping_payload);
    let mut impairment = Impairment::new(link.loss_ppm, link.loss_seed);
    let mut buf = vec![0u8; buffer_bytes];
    while !shared.stopping() {
        pinger.tick(socket, shared);
        let len = match receive(socket, &mut buf) {
            Ok(Some(len)) => len,
            Ok(None) => continue,
            Err(error) => {
                shared.event("error", &[("message", error.into())]);
                return;
            }
        };
        shared.add("datagrams_received", 1);
        if impairment.should_drop() {
            shared.add("datagrams_dropped_impairment", 1);
            continue;
        }
        on_datagram(&buf[..len]);
    }
}

const PITCH_NAMES: [&str; 8] = [
    "hz_channel0",
    "hz_channel1",
    "hz_channel2",
    "hz_channel3",
    "hz_channel4",
    "hz_channel5",
    "hz_channel6",
    "hz_channel7",
];

/// Each channel's frequency from its zero crossings, published every half second of audio as
/// `hz_channel<n>`: with the host's test tone (a distinct pitch per channel) this shows that every
/// channel arrived in its own place, i.e. that the Opus multistream layouts of both ends agree.
#[derive(Default)]
struct PitchMeter {
    crossings: [u64; 8],
    previous: [i16; 8],
    frames: u64,
}

impl PitchMeter {
    fn measure(&mut self, interleaved: &[i16], channels: usize, shared: &WorkerShared) {
        let channels = channels.clamp(1, 8);
        for frame in interleaved.chunks_exact(channels) {
            for (c, &sample) in frame.iter().enumerate() {
                if (sample >= 0) != (self.previous[c] >= 0) {
                    self.crossings[c] += 1;
                }
                self.previous[c] = sample;
            }
        }
        self.frames += (interleaved.len() / channels) as u64;
        let window = u64::from(SAMPLE_RATE_HZ / 2);
        if self.frames >= window {
            for (name, crossings) in PITCH_NAMES.iter().zip(self.crossings).take(channels) {
                // Two crossings per period.
                shared.set(
                    name,
                    crossings * u64::from(SAMPLE_RATE_HZ) / (2 * self.frames),
                );
            }
            self.crossings = [0; 8];
            self.frames = 0;
        }
    }
}

/// Root-mean-square of the first channel, rounded to whole sample units (0 = silence).
fn rms_of_channel0(interleaved: &[i16], channels: usize) -> u64 {
    let samples: Vec<f64> = interleaved
        .iter()
        .step_by(channels.max(1))
        .map(|&s| f64::from(s))
        .collect();
    if samples.is_empty() {
        return 0;
    }
    (samples.iter().map(|s| s * s).sum::<f64>() / samples.len() as f64)
        .sqrt()
        .round() as u64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::config::PipelineConfig;
    use crate::pipeline::gamestream_audio_sender::{start_gs_audio_sender, GsAudioSenderConfig};
    use crate::pipeline::video_sender::VideoSender;
    use crate::pipeline::worker::MediaSession;

    const KEY: &str = "000102030405060708090a0b0c0d0e0f";
    const PING: &str = "0123456789ABCDEF";

    fn wait_for(worker: &Worker, counter: &'static str, at_least: u64, timeout: Duration) -> u64 {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline && worker.shared.get(counter) < at_least {
            std::thread::sleep(Duration::from_millis(10));
        }
        worker.shared.get(counter)
    }

    #[test]
    fn receiver_configs_name_bad_fields() {
        assert!(
            GsVideoReceiverConfig::from_json(r#"{"bind":"127.0.0.1:0"}"#)
                .unwrap_err()
                .contains("host")
        );
        assert!(
            GsVideoReceiverConfig::from_json(r#"{"host":"127.0.0.1:1","codec":"vp8"}"#)
                .unwrap_err()
                .contains("codec")
        );
        assert!(
            GsAudioReceiverConfig::from_json(r#"{"host":"127.0.0.1:1","channels":3}"#)
                .unwrap_err()
                .contains("channels")
        );
    }

    /// Host video sender (ping-bound, encrypted, FEC) → test receiver with 5 % loss: frames decode.
    #[test]
    fn gamestream_video_reaches_a_pinging_client_through_loss() {
        let host = UdpSocket::bind("127.0.0.1:0").unwrap();
        let host_port = host.local_addr().unwrap().port();
        drop(host);
        let sender_json = format!(
            r#"{{"key":"{KEY}","fec":{{"scheme":"gf8","percent":20}},"width":320,"height":240,"fps":60,"bitrate_kbps":4000,"bind":"127.0.0.1:{host_port}","gamestream":{{"packet_size":1024,"encrypt":true,"ping_payload":"{PING}"}}}}"#
        );
        let mut sender =
            VideoSender::start(PipelineConfig::from_json(&sender_json).unwrap()).unwrap();
        let receiver_json = format!(
            r#"{{"host":"127.0.0.1:{host_port}","bind":"127.0.0.1:0","packet_size":1024,"encrypt":true,"key":"{KEY}","ping_payload":"{PING}","loss_ppm":50000}}"#
        );
        let mut receiver =
            start_gs_video_receiver(GsVideoReceiverConfig::from_json(&receiver_json).unwrap())
                .unwrap();
        // A frame lost beyond FEC breaks the chain until the next IDR; ask for one, as Moonlight does.
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut lost_seen = 0;
        while Instant::now() < deadline && receiver.shared.get("frames_decoded") < 60 {
            let lost = receiver.shared.get("frames_lost");
            if lost > lost_seen {
                lost_seen = lost;
                sender.request_idr();
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let decoded = receiver.shared.get("frames_decoded");
        sender.stop();
        receiver.stop();
        let stats: Value = serde_json::from_str(&receiver.stats_json()).unwrap();
        assert!(decoded >= 60, "{stats}");
        assert!(
            stats["datagrams_dropped_impairment"].as_u64().unwrap() > 0,
            "{stats}"
        );
        assert_eq!(stats["width"], 320);
        assert!(stats["idr_frames"].as_u64().unwrap() >= 1);
    }

    /// A stranger (127.0.0.2) with the sniffed ping payload pings before and after the owner: the
    /// stream binds to the owner only and the stranger receives nothing.
    #[test]
    fn gamestream_audio_binds_to_the_owner_not_to_a_stranger_with_the_payload() {
        let probe = UdpSocket::bind("127.0.0.1:0").unwrap();
        let host_addr = probe.local_addr().unwrap();
        drop(probe);
        let common = format!(r#""encrypt":false,"ping_payload":"{PING}""#);
        let mut sender = start_gs_audio_sender(
            GsAudioSenderConfig::from_json(&format!(
                r#"{{"bind":"{host_addr}","client_ip":"127.0.0.1",{common}}}"#
            ))
            .unwrap(),
        )
        .unwrap();
        let stranger = UdpSocket::bind("127.0.0.2:0").unwrap();
        let mut ping = PING.as_bytes().to_vec();
        ping.extend_from_slice(&1u32.to_be_bytes());
        stranger.send_to(&ping, host_addr).unwrap();
        let mut receiver = start_gs_audio_receiver(
            GsAudioReceiverConfig::from_json(&format!(
                r#"{{"host":"{host_addr}","bind":"127.0.0.1:0",{common}}}"#
            ))
            .unwrap(),
        )
        .unwrap();
        let decoded = wait_for(&receiver, "packets_decoded", 20, Duration::from_secs(10));
        stranger.send_to(&ping, host_addr).unwrap();
        let more = wait_for(
            &receiver,
            "packets_decoded",
            decoded + 20,
            Duration::from_secs(10),
        );
        let foreign = sender.shared.get("foreign_pings");
        sender.stop();
        receiver.stop();
        assert!(more >= decoded + 20, "{}", receiver.stats_json());
        assert_eq!(foreign, 1, "{}", sender.stats_json());
        stranger.set_nonblocking(true).unwrap();
        let mut buf = [0u8; 2048];
        let nothing = stranger.recv_from(&mut buf);
        assert_eq!(
            nothing.map(|(len, _)| len).unwrap_err().kind(),
            std::io::ErrorKind::WouldBlock
        );
    }

    #[test]
    fn gamestream_audio_reaches_a_pinging_client_encrypted() {
        let probe = UdpSocket::bind("127.0.0.1:0").unwrap();
        let host_port = probe.local_addr().unwrap().port();
        drop(probe);
        let common =
            format!(r#""encrypt":true,"key":"{KEY}","rikeyid":16909060,"ping_payload":"{PING}""#);
        let mut sender = start_gs_audio_sender(
            GsAudioSenderConfig::from_json(&format!(
                r#"{{"bind":"127.0.0.1:{host_port}",{common}}}"#
            ))
            .unwrap(),
        )
        .unwrap();
        let mut receiver = start_gs_audio_receiver(
            GsAudioReceiverConfig::from_json(&format!(
                r#"{{"host":"127.0.0.1:{host_port}","bind":"127.0.0.1:0","loss_ppm":20000,{common}}}"#
            ))
            .unwrap(),
        )
        .unwrap();
        // 1.2 s of audio: at least two half-second pitch windows, the second without start-up effects.
        let decoded = wait_for(&receiver, "packets_decoded", 240, Duration::from_secs(10));
        sender.stop();
        receiver.stop();
        let stats: Value = serde_json::from_str(&receiver.stats_json()).unwrap();
        assert!(decoded >= 240, "{stats}");
        for (channel, name) in ["hz_channel0", "hz_channel1"].into_iter().enumerate() {
            let expected = f64::from(crate::audio::tone::ToneSource::frequency_hz(channel));
            let measured = stats[name].as_u64().unwrap_or(0) as f64;
            assert!((measured / expected - 1.0).abs() < 0.05, "{name}: {stats}");
        }
        assert_eq!(stats["decryption_failures"], 0, "{stats}");
        // The tone peaks at −12 dBFS (≈ 8231): its RMS is ≈ 5800, far from silence.
        assert!(
            stats["last_rms_channel0"].as_u64().unwrap() > 2000,
            "{stats}"
        );
    }

    fn sender_with_fault(fault: &str) -> (VideoSender, u16) {
        let probe = UdpSocket::bind("127.0.0.1:0").unwrap();
        let host_port = probe.local_addr().unwrap().port();
        drop(probe);
        let sender_json = format!(
            r#"{{"key":"{KEY}","fec":{{"scheme":"gf8","percent":20}},"width":320,"height":240,"fps":60,"bitrate_kbps":2000,"encoder":"libx264","bind":"127.0.0.1:{host_port}","gamestream":{{"packet_size":1024,"ping_payload":"{PING}"}},"fault":{fault}}}"#
        );
        let sender = VideoSender::start(PipelineConfig::from_json(&sender_json).unwrap()).unwrap();
        (sender, host_port)
    }

    fn client_of(host_port: u16) -> Worker {
        let receiver_json = format!(
            r#"{{"host":"127.0.0.1:{host_port}","bind":"127.0.0.1:0","packet_size":1024,"ping_payload":"{PING}"}}"#
        );
        start_gs_video_receiver(GsVideoReceiverConfig::from_json(&receiver_json).unwrap()).unwrap()
    }

    fn sender_events(sender: &VideoSender) -> String {
        let mut buf = vec![0u8; 64 * 1024];
        let n = sender.drain_events(&mut buf);
        String::from_utf8_lossy(&buf[..n]).into_owned()
    }

    /// TEST FAULT INJECTION `fail_encoder_after_frames`: the encoder fails mid-stream, the next one
    /// of the chain takes over with an IDR, and the client keeps decoding without a lost frame.
    #[test]
    fn an_encoder_failure_falls_back_and_the_client_keeps_decoding_after_one_idr() {
        let (mut sender, port) = sender_with_fault(r#"{"fail_encoder_after_frames":30}"#);
        let mut receiver = client_of(port);
        let decoded = wait_for(&receiver, "frames_decoded", 90, Duration::from_secs(20));
        let finished = sender.is_finished();
        let fallbacks = sender.with_stats(|s| s.counters.encoder_fallbacks);
        let events = sender_events(&sender);
        sender.stop();
        receiver.stop();
        let stats = receiver.stats_json();
        assert!(decoded >= 90, "{stats}");
        assert!(
            !finished,
            "the session survives an encoder failure: {events}"
        );
        assert_eq!(fallbacks, 1, "{events}");
        assert!(
            events.contains(r#""event":"encoder_fallback","from":"libx264","to":"libx264""#),
            "{events}"
        );
        assert!(events.contains("fault injection"), "{events}");
        let stats: Value = serde_json::from_str(&stats).unwrap();
        // The first IDR of the session and the fallback's: nothing in between was undecodable.
        assert_eq!(stats["idr_frames"], 2, "{stats}");
        assert_eq!(stats["decode_errors"].as_u64().unwrap_or(0), 0, "{stats}");
        assert_eq!(stats["frames_lost"].as_u64().unwrap_or(0), 0, "{stats}");
    }

    /// TEST FAULT INJECTION `kill_worker_after_frames`: the encode thread dies; the session finishes
    /// with the reason as an `error` event, and the handle still answers.
    #[test]
    fn a_killed_video_worker_finishes_the_session_with_a_reason() {
        let (mut sender, port) = sender_with_fault(r#"{"kill_worker_after_frames":20}"#);
        let mut receiver = client_of(port);
        let deadline = Instant::now() + Duration::from_secs(20);
        while !sender.is_finished() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(sender.is_finished(), "{}", sender.stats_json());
        let events = sender_events(&sender);
        assert!(
            events.contains(
                "video encode thread died: fault injection: video worker killed after 20 frames"
            ),
            "{events}"
        );
        assert!(events.contains(r#""event":"stopped""#), "{events}");
        assert_eq!(sender.with_stats(|s| s.counters.frames_encoded), 20);
        sender.stop();
        receiver.stop();
    }
}
