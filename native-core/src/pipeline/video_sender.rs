//! The host's video session: capture → encode on one thread, packetize (FEC) → seal → paced send
//! on another, so frame N+1 is captured and encoded while frame N is on the wire.
//!
//! The two threads are joined by a channel of depth [`PIPELINE_DEPTH`]; when the sender falls
//! behind, the encode thread skips a capture instead of queueing (latency over completeness).
//! Encoded-frame buffers travel back on a return channel, so steady state allocates nothing.
//!
//! Section numbers (§) refer to docs/gamestream-protocol.md.

use super::client_ping::{bind_client_by_ping, PingFilter};
use super::config::{FaultInjection, GameStreamVideoWire, PipelineConfig, SourceKind, Wire};
use super::events::EventQueue;
use super::stats::{PipelineStats, Stage};
use crate::capture::synthetic::SyntheticSource;
use crate::capture::x11::X11Source;
use crate::capture::{monotonic_ns, Frame, VideoSource};
use crate::crypto::aes_gcm::{Direction, MediaSealer};
use crate::encode::{
    Codec, EncodeError, EncodedFrame, EncoderPreference, EncoderSettings, VideoEncoder,
};
use crate::fec::provider::CachedCodes;
use crate::fec::FecScheme;
use crate::packet::gamestream_video::{GsFrameType, GsVideoFrameInput, GsVideoPacketizer};
use crate::packet::packetize::{FrameInput, Packetizer, PacketizerConfig};
use crate::send::impairment::Impairment;
use crate::send::pacer::Pacer;
use crate::send::udp::UdpSender;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// Frames between encoder and sender: one on the wire, one encoded and waiting.
pub const PIPELINE_DEPTH: usize = 2;
/// `user_flags` bit marking a keyframe (a recovery point the client can resume decoding at).
pub const USER_FLAG_KEYFRAME: u32 = 0x10;
/// Datagrams handed to the kernel per paced burst: small enough to keep the pace smooth, large
/// enough that sendmmsg/GSO amortize their syscall.
const PACED_BURST_DATAGRAMS: usize = 16;
/// Sent-frame fingerprints kept (about a minute at 60 fps).
const SENT_HASH_HISTORY: usize = 4096;
/// Mid-stream encoder fallbacks per session: the longest chain (AV1: four candidates) walked to its
/// end plus one fresh software instance. Beyond that the encoder is broken for good and the worker
/// ends, so a failure on every frame cannot spin reopening encoders forever.
const MAX_ENCODER_FALLBACKS: u32 = 4;

struct Shared {
    stop: AtomicBool,
    /// Set once packets have somewhere to go (at once for punktfunk/1, after the client's ping
    /// for GameStream); the encoder waits for it so frame 1 is the IDR the client sees first.
    ready: AtomicBool,
    finished: AtomicBool,
    idr_requested: AtomicBool,
    target_kbps: AtomicU32,
    pending_frames: AtomicUsize,
    stats: Mutex<PipelineStats>,
    events: EventQueue,
    /// FNV-1a of each sent access unit by frame index, so a receiver can prove byte-exactness.
    sent_hashes: Mutex<std::collections::VecDeque<(u32, u64)>>,
}

#[derive(Clone)]
pub struct IdrTrigger(Arc<Shared>);

impl IdrTrigger {
    pub fn request(&self) {
        self.0.idr_requested.store(true, Ordering::SeqCst);
    }
}

pub struct VideoSender {
    config: PipelineConfig,
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
    local_port: u16,
    started_ns: u64,
}

fn json_event(kind: &str, fields: &[(&str, String)]) -> String {
    let mut out = format!("{{\"event\":{}", crate::json::string(kind));
    for (key, value) in fields {
        out.push_str(&format!(",{}:{}", crate::json::string(key), value));
    }
    out.push('}');
    out
}

fn open_source(config: &PipelineConfig) -> Result<Box<dyn VideoSource>, String> {
    match &config.source {
        SourceKind::Synthetic => SyntheticSource::new(config.width, config.height)
            .map(|s| Box::new(s) as Box<dyn VideoSource>)
            .map_err(|e| format!("synthetic source: {e}")),
        SourceKind::X11 { display } => X11Source::open(display)
            .map(|s| Box::new(s) as Box<dyn VideoSource>)
            .map_err(|e| format!("X11 capture of {display}: {e}")),
    }
}

fn codec_of(name: &str) -> Codec {
    match name {
        "hevc" => Codec::Hevc,
        "av1" => Codec::Av1,
        _ => Codec::H264,
    }
}

impl VideoSender {
    /// Opens source, encoder and socket (errors come back here, synchronously) and starts the
    /// threads.
    pub fn start(config: PipelineConfig) -> Result<Self, String> {
        let source = open_source(&config)?;
        let mut settings = EncoderSettings::new(
            codec_of(&config.codec),
            config.width,
            config.height,
            config.fps,
            config.bitrate_kbps,
        );
        settings.preference = match config.encoder.as_str() {
            "auto" => EncoderPreference::Auto,
            "software" => EncoderPreference::Software,
            name => EncoderPreference::Named(name.to_string()),
        };
        settings.cbr_filler = config.cbr_filler;
        let encoder = VideoEncoder::open(&settings).map_err(|e| format!("encoder: {e}"))?;

        let (wire, local_port, gso) = match &config.wire {
            Wire::Pf1 { salt, destination } => {
                let packetizer = pf1_packetizer(&config)?;
                let sealer = MediaSealer::new(&config.key, *salt, Direction::HostToClient)
                    .map_err(|e| format!("sealer: {e}"))?;
                let socket = UdpSender::connect(config.bind, *destination)
                    .map_err(|e| format!("socket: {e}"))?;
                let port = socket.local_addr().map(|a| a.port()).unwrap_or(0);
                let gso = socket.gso_available();
                (
                    WireSender::Pf1 {
                        packetizer,
                        sealer,
                        socket,
                    },
                    port,
                    gso,
                )
            }
            Wire::GameStream(gs) => {
                let fec_percent = if config.fec_scheme == FecScheme::None {
                    0
                } else {
                    config.fec_percent
                };
                let packetizer = GsVideoPacketizer::new(
                    gs.packet_size as usize,
                    fec_percent,
                    gs.min_required_fec as usize,
                    gs.encrypt.then_some(&config.key),
                )
                .map_err(|e| format!("packetizer: {e}"))?;
                let socket = std::net::UdpSocket::bind(config.bind)
                    .map_err(|e| format!("socket {}: {e}", config.bind))?;
                let port = socket.local_addr().map(|a| a.port()).unwrap_or(0);
                (
                    WireSender::GameStream {
                        packetizer,
                        socket,
                        wire: gs.clone(),
                    },
                    port,
                    false,
                )
            }
        };

        let mut stats = PipelineStats::new(monotonic_ns());
        stats.encoder = encoder.chosen().to_string();
        stats.bitrate_kbps = config.bitrate_kbps;
        let shared = Arc::new(Shared {
            stop: AtomicBool::new(false),
            ready: AtomicBool::new(matches!(config.wire, Wire::Pf1 { .. })),
            finished: AtomicBool::new(false),
            idr_requested: AtomicBool::new(false),
            target_kbps: AtomicU32::new(config.bitrate_kbps),
            pending_frames: AtomicUsize::new(0),
            stats: Mutex::new(stats),
            events: EventQueue::default(),
            sent_hashes: Mutex::new(std::collections::VecDeque::new()),
        });
        let skipped: Vec<String> = encoder
            .skipped()
            .iter()
            .map(|s| crate::json::string(&format!("{s:?}")))
            .collect();
        shared.events.push(json_event(
            "started",
            &[
                ("encoder", crate::json::string(encoder.chosen())),
                ("skipped", format!("[{}]", skipped.join(","))),
                ("source", crate::json::string(source.name())),
                ("gso", gso.to_string()),
                ("local_port", local_port.to_string()),
            ],
        ));
        crate::log::log_str(
            crate::log::Level::Info,
            "pipeline",
            &format!(
                "video session started: {} via {}, {}x{}@{}",
                source.name(),
                encoder.chosen(),
                config.width,
                config.height,
                config.fps
            ),
        );

        let (frames_tx, frames_rx) = sync_channel::<EncodedFrame>(PIPELINE_DEPTH);
        let (spare_tx, spare_rx) = sync_channel::<EncodedFrame>(PIPELINE_DEPTH + 1);
        for _ in 0..=PIPELINE_DEPTH {
            let _ = spare_tx.try_send(EncodedFrame::default());
        }
        let encode_shared = shared.clone();
        let encode_config = config.clone();
        let encode_thread = std::thread::Builder::new()
            .name("pf-video-encode".into())
            .spawn(move || {
                // A panic (a bug, or the kill fault) ends the worker like an error, with a reason.
                // `frames_tx` outlives the loop: the send thread (which sets `finished`) sees the
                // channel close only after the reason is queued.
                let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| {
                    encode_loop(
                        encode_config,
                        source,
                        encoder,
                        &encode_shared,
                        &frames_tx,
                        spare_rx,
                    )
                }));
                if let Err(payload) = outcome {
                    report_panic(&encode_shared, "encode", payload.as_ref());
                }
                drop(frames_tx);
            })
            .map_err(|e| format!("spawn: {e}"))?;
        let send_shared = shared.clone();
        let send_config = config.clone();
        let send_thread = std::thread::Builder::new()
            .name("pf-video-send".into())
            .spawn(move || {
                let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| {
                    run_wire(send_config, wire, &send_shared, frames_rx, spare_tx)
                }));
                if let Err(payload) = outcome {
                    report_panic(&send_shared, "send", payload.as_ref());
                }
                send_shared.finished.store(true, Ordering::SeqCst);
                send_shared.events.push(json_event("stopped", &[]));
            })
            .map_err(|e| format!("spawn: {e}"))?;
        Ok(Self {
            config,
            shared,
            threads: vec![encode_thread, send_thread],
            local_port,
            started_ns: monotonic_ns(),
        })
    }

    pub fn config(&self) -> &PipelineConfig {
        &self.config
    }

    pub fn local_port(&self) -> u16 {
        self.local_port
    }

    pub fn request_idr(&self) {
        self.shared.idr_requested.store(true, Ordering::SeqCst);
    }

    /// A handle other threads (a client's loss callback, the control plane) use to ask for an IDR.
    pub fn idr_trigger(&self) -> IdrTrigger {
        IdrTrigger(self.shared.clone())
    }

    /// Applied by the encode thread before its next frame, without restarting the session.
    pub fn set_bitrate(&self, kbps: u32) {
        self.shared.target_kbps.store(kbps, Ordering::SeqCst);
    }

    pub fn is_finished(&self) -> bool {
        self.shared.finished.load(Ordering::SeqCst)
    }

    pub fn stats_json(&self) -> String {
        let mut stats = self.shared.stats.lock().unwrap_or_else(|p| p.into_inner());
        stats.snapshot_json(monotonic_ns())
    }

    pub fn with_stats<R>(&self, f: impl FnOnce(&PipelineStats) -> R) -> R {
        f(&self.shared.stats.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// (frame index, FNV-1a 64) of the most recent sent access units, oldest first.
    pub fn sent_hashes(&self) -> Vec<(u32, u64)> {
        self.shared
            .sent_hashes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .copied()
            .collect()
    }

    pub fn drain_events(&self, out: &mut [u8]) -> usize {
        self.shared.events.drain_into(out)
    }

    /// Stops both threads and waits for them; idempotent. The first stop logs the session's
    /// per-frame figures (benchmarks compare them with what the client saw).
    pub fn stop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        let was_running = !self.threads.is_empty();
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
        if was_running {
            crate::log::log_str(crate::log::Level::Info, "pipeline", &self.summary());
        }
    }

    /// One line: frames, rate since start, and host latency (capture → last packet sent) and
    /// encode quantiles in milliseconds.
    fn summary(&self) -> String {
        let seconds = monotonic_ns().saturating_sub(self.started_ns) as f64 / 1e9;
        self.with_stats(|s| {
            use crate::pipeline::stats::Stage;
            let ms = |stage: Stage, q: f64| s.stage(stage).quantile(q) as f64 / 1e6;
            let c = &s.counters;
            format!(
                "video session stopped: {} via {}, {} frames sent in {seconds:.1} s ({:.1} fps), {} skipped; \
                 host latency p50 {:.1} / p90 {:.1} / p99 {:.1} ms, encode p50 {:.1} / p90 {:.1} ms",
                self.config.codec,
                s.encoder,
                c.frames_sent,
                c.frames_sent as f64 / seconds.max(1e-9),
                c.frames_skipped,
                ms(Stage::Total, 0.5),
                ms(Stage::Total, 0.9),
                ms(Stage::Total, 0.99),
                ms(Stage::Encode, 0.5),
                ms(Stage::Encode, 0.9),
            )
        })
    }
}

impl Drop for VideoSender {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The packetizing half of a session, by wire format.
enum WireSender {
    Pf1 {
        packetizer: Packetizer,
        sealer: MediaSealer,
        socket: UdpSender,
    },
    /// Not yet connected: the socket learns its destination from the client's ping.
    GameStream {
        packetizer: GsVideoPacketizer,
        socket: std::net::UdpSocket,
        wire: GameStreamVideoWire,
    },
}

fn pf1_packetizer(config: &PipelineConfig) -> Result<Packetizer, String> {
    let mut packetizer_config = PacketizerConfig::new(config.fec_scheme, config.fec_percent);
    packetizer_config.max_shard_bytes = config.shard_bytes as usize;
    packetizer_config.min_parity = if config.fec_scheme == FecScheme::None {
        0
    } else {
        config.min_parity as usize
    };
    packetizer_config.max_data_shards = config.max_data_per_block as usize;
    // GF(2^16) symbols are 2 bytes, so its shards must have even length.
    packetizer_config.shard_align = if config.fec_scheme == FecScheme::Gf16 {
        2
    } else {
        1
    };
    Packetizer::new(packetizer_config).map_err(|e| e.to_string())
}

fn run_wire(
    config: PipelineConfig,
    wire: WireSender,
    shared: &Shared,
    frames: Receiver<EncodedFrame>,
    spares: SyncSender<EncodedFrame>,
) {
    match wire {
        WireSender::Pf1 {
            packetizer,
            sealer,
            socket,
        } => {
            let link = PacedLink::new(&config, socket);
            send_loop(packetizer, sealer, link, shared, frames, spares);
        }
        WireSender::GameStream {
            packetizer,
            socket,
            wire,
        } => {
            let timeout = Duration::from_millis(u64::from(wire.ping_timeout_ms));
            let filter = PingFilter {
                payload: wire.ping_payload,
                owner: wire.client_ip,
            };
            match bind_client_by_ping(&socket, &filter, timeout, &shared.stop) {
                Ok(client) => {
                    shared.events.push(json_event(
                        "client_bound",
                        &[
                            ("address", crate::json::string(&client.address.to_string())),
                            ("ignored_datagrams", client.ignored.to_string()),
                            ("foreign_pings", client.foreign_pings.to_string()),
                        ],
                    ));
                    let link = PacedLink::new(&config, UdpSender::from_connected(socket));
                    shared.ready.store(true, Ordering::SeqCst);
                    gamestream_send_loop(packetizer, link, shared, frames, spares);
                }
                Err(error) => {
                    shared.events.push(json_event(
                        "error",
                        &[("message", crate::json::string(&format!("video: {error}")))],
                    ));
                }
            }
        }
    }
}

/// Egress shared by both wire formats: loss impairment, token-bucket pacing, GSO/sendmmsg.
struct PacedLink {
    socket: UdpSender,
    pacer: Pacer,
    impairment: Impairment,
    pacing_multiplier: f64,
    fps: u32,
    kept: Vec<usize>,
}

#[derive(Default)]
struct SendOutcome {
    sent: usize,
    dropped: usize,
    errors: u64,
}

impl PacedLink {
    fn new(config: &PipelineConfig, socket: UdpSender) -> Self {
        let mut link = Self {
            socket,
            pacer: Pacer::new(0, 0, monotonic_ns()),
            impairment: Impairment::new(config.loss_ppm, config.loss_seed),
            pacing_multiplier: config.pacing_multiplier,
            fps: config.fps,
            kept: Vec::new(),
        };
        link.pacer = Pacer::new(
            link.bytes_per_sec(config.bitrate_kbps),
            link.burst(config.bitrate_kbps),
            monotonic_ns(),
        );
        link
    }

    fn bytes_per_sec(&self, kbps: u32) -> u64 {
        (f64::from(kbps) * 1000.0 / 8.0 * self.pacing_multiplier) as u64
    }

    /// Burst allowance: one average frame, at least 64 KiB, so small frames leave at once.
    fn burst(&self, kbps: u32) -> u64 {
        (u64::from(kbps) * 1000 / 8 / u64::from(self.fps)).max(64 * 1024)
    }

    fn follow_bitrate(&mut self, kbps: u32) {
        let rate = self.bytes_per_sec(kbps);
        if rate != self.pacer.rate() {
            self.pacer.set_rate(rate, monotonic_ns());
        }
    }

    /// Sends `count` datagrams of `datagram_len` bytes; `span(start, n)` returns n consecutive
    /// ones as one buffer, `single(i)` one datagram.
    fn send<'a>(
        &mut self,
        count: usize,
        datagram_len: usize,
        span: impl Fn(usize, usize) -> &'a [u8],
        single: impl Fn(usize) -> &'a [u8],
    ) -> SendOutcome {
        let impairment = &mut self.impairment;
        self.kept.clear();
        self.kept
            .extend((0..count).filter(|_| !impairment.should_drop()));
        let mut outcome = SendOutcome {
            sent: self.kept.len(),
            dropped: count - self.kept.len(),
            errors: 0,
        };
        for chunk in self.kept.chunks(PACED_BURST_DATAGRAMS) {
            let bytes = chunk.len() * datagram_len;
            let wait = self.pacer.wait_ns(bytes, monotonic_ns());
            if wait > 0 {
                std::thread::sleep(Duration::from_nanos(wait));
            }
            let contiguous = chunk.windows(2).all(|w| w[1] == w[0] + 1);
            let result = if contiguous {
                // Consecutive slots are one contiguous span: a single GSO send (or sendmmsg).
                self.socket
                    .send_segmented(span(chunk[0], chunk.len()), datagram_len)
            } else {
                let packets: Vec<&[u8]> = chunk.iter().map(|&i| single(i)).collect();
                self.socket.send_all(&packets)
            };
            if result.is_err() {
                outcome.errors += 1;
            }
            self.pacer.consume(bytes, monotonic_ns());
        }
        outcome
    }
}

fn remember_sent_hash(shared: &Shared, frame_index: u32, data: &[u8]) {
    let mut hashes = shared.sent_hashes.lock().unwrap_or_else(|p| p.into_inner());
    hashes.push_back((frame_index, super::video_receiver::fnv1a64(data)));
    if hashes.len() > SENT_HASH_HISTORY {
        hashes.pop_front();
    }
}

fn report_panic(shared: &Shared, thread: &str, payload: &(dyn std::any::Any + Send)) {
    let message = payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "non-string panic payload".into());
    crate::log::log_str(
        crate::log::Level::Error,
        "pipeline",
        &format!("video {thread} thread died: {message}"),
    );
    shared.events.push(json_event(
        "error",
        &[(
            "message",
            crate::json::string(&format!("video {thread} thread died: {message}")),
        )],
    ));
}

/// TEST FAULT INJECTION: the error a real libav failure would give, for the fallback path.
fn injected_encoder_failure(encoder: &VideoEncoder, frames: u64) -> EncodeError {
    EncodeError::Encode {
        encoder: encoder.chosen().to_string(),
        message: format!("fault injection: encoder failed after {frames} frames"),
        libav: Vec::new(),
    }
}

/// After `encoder` failed mid-stream: switches to the next encoder of its chain (whose first frame
/// is an IDR) and reports it; false when no fallback is left and the worker must end.
fn fall_back(
    encoder: &mut VideoEncoder,
    error: &EncodeError,
    shared: &Shared,
    fallbacks: &mut u32,
) -> bool {
    let next = if *fallbacks >= MAX_ENCODER_FALLBACKS {
        Err(format!("{MAX_ENCODER_FALLBACKS} fallbacks already used"))
    } else {
        encoder.open_fallback().map_err(|e| e.to_string())
    };
    let next = match next {
        Ok(next) => next,
        Err(why) => {
            shared.events.push(json_event(
                "error",
                &[(
                    "message",
                    crate::json::string(&format!("encode: {error}; no fallback: {why}")),
                )],
            ));
            return false;
        }
    };
    *fallbacks += 1;
    let from = encoder.chosen().to_string();
    *encoder = next;
    crate::log::log_str(
        crate::log::Level::Warn,
        "pipeline",
        &format!(
            "encoder {from} failed ({error}); continuing with {}",
            encoder.chosen()
        ),
    );
    {
        let mut stats = shared.stats.lock().unwrap_or_else(|p| p.into_inner());
        stats.encoder = encoder.chosen().to_string();
        stats.counters.encoder_fallbacks += 1;
    }
    shared.events.push(json_event(
        "encoder_fallback",
        &[
            ("from", crate::json::string(&from)),
            ("to", crate::json::string(encoder.chosen())),
            ("reason", crate::json::string(&error.to_string())),
        ],
    ));
    true
}

fn report_packetize_error(shared: &Shared, error: &dyn std::fmt::Display) {
    shared.events.push(json_event(
        "error",
        &[(
            "message",
            crate::json::string(&format!("packetize: {error}")),
        )],
    ));
}

/// Stats of one sent frame: `fec_ns` covers packetizing (and, for GameStream, sealing).
fn record_sent_frame(
    shared: &Shared,
    outcome: &SendOutcome,
    datagram_len: usize,
    capture_ns: u64,
    fec_ns: u64,
    seal_ns: u64,
    send_ns: u64,
) {
    let mut stats = shared.stats.lock().unwrap_or_else(|p| p.into_inner());
    stats.counters.frames_sent += 1;
    stats.counters.packets_sent += outcome.sent as u64;
    stats.counters.bytes_sent += (outcome.sent * datagram_len) as u64;
    stats.counters.packets_dropped_impairment += outcome.dropped as u64;
    stats.counters.send_errors += outcome.errors;
    stats.record(Stage::Fec, fec_ns);
    stats.record(Stage::Seal, seal_ns);
    stats.record(Stage::Send, send_ns);
    stats.record(Stage::Total, monotonic_ns().saturating_sub(capture_ns));
}

/// GameStream video: frame numbers from 1, 90 kHz timestamps since the session started,
/// IDR frame type for keyframes (§7.2–§7.6); FEC and AES-GCM happen inside the packetizer.
fn gamestream_send_loop(
    mut packetizer: GsVideoPacketizer,
    mut link: PacedLink,
    shared: &Shared,
    frames: Receiver<EncodedFrame>,
    spares: SyncSender<EncodedFrame>,
) {
    let started_ns = monotonic_ns();
    let mut frame_index = 0u32;
    while let Ok(encoded) = frames.recv() {
        link.follow_bitrate(shared.target_kbps.load(Ordering::SeqCst));
        frame_index = frame_index.wrapping_add(1).max(1);
        remember_sent_hash(shared, frame_index, &encoded.data);
        let fec_started = monotonic_ns();
        let elapsed_ns = encoded.capture_ns.saturating_sub(started_ns);
        let input = GsVideoFrameInput {
            frame_index,
            // 90 kHz: ns × 90 / 10^6.
            rtp_timestamp: (elapsed_ns * 9 / 100_000) as u32,
            frame_type: if encoded.keyframe {
                GsFrameType::Idr
            } else {
                GsFrameType::Predicted
            },
            host_latency_100us: (fec_started.saturating_sub(encoded.capture_ns) / 100_000)
                .min(u64::from(u16::MAX)) as u16,
            access_unit: &encoded.data,
        };
        let batch = match packetizer.packetize(&input) {
            Ok(batch) => batch,
            Err(error) => {
                report_packetize_error(shared, &error);
                shared.pending_frames.fetch_sub(1, Ordering::SeqCst);
                let _ = spares.try_send(encoded);
                continue;
            }
        };
        let send_started = monotonic_ns();
        let datagram_len = batch.datagram_len();
        let outcome = link.send(
            batch.len(),
            datagram_len,
            |start, n| batch.datagram_span(start, n),
            |i| batch.datagram(i),
        );
        let done = monotonic_ns();
        record_sent_frame(
            shared,
            &outcome,
            datagram_len,
            encoded.capture_ns,
            send_started - fec_started,
            0,
            done - send_started,
        );
        shared.pending_frames.fetch_sub(1, Ordering::SeqCst);
        let _ = spares.try_send(encoded);
    }
}

fn sleep_until(deadline_ns: u64) {
    let now = monotonic_ns();
    if deadline_ns > now {
        std::thread::sleep(Duration::from_nanos(deadline_ns - now));
    }
}

fn encode_loop(
    config: PipelineConfig,
    mut source: Box<dyn VideoSource>,
    mut encoder: VideoEncoder,
    shared: &Shared,
    frames: &SyncSender<EncodedFrame>,
    spares: Receiver<EncodedFrame>,
) {
    while !shared.ready.load(Ordering::SeqCst) {
        if shared.stop.load(Ordering::SeqCst) || shared.finished.load(Ordering::SeqCst) {
            return;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let interval_ns = 1_000_000_000 / u64::from(config.fps);
    let mut next_tick = monotonic_ns();
    let mut frame = Frame::new();
    let mut applied_kbps = config.bitrate_kbps;
    let mut produced = 0u64;
    let fault: FaultInjection = config.fault;
    let mut encoder_fault_fired = false;
    let mut fallbacks = 0u32;
    // A buffer the encoder did not fill (it held the frame back) is kept for the next frame.
    let mut unused: Option<EncodedFrame> = None;
    while !shared.stop.load(Ordering::SeqCst) && config.max_frames.is_none_or(|max| produced < max)
    {
        sleep_until(next_tick);
        next_tick += interval_ns;
        let now = monotonic_ns();
        if now > next_tick + interval_ns {
            next_tick = now; // fell far behind (e.g. a stall): don't try to catch up in a burst
        }
        if shared.pending_frames.load(Ordering::SeqCst) >= PIPELINE_DEPTH {
            shared
                .stats
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .counters
                .frames_skipped += 1;
            continue;
        }
        let kbps = shared.target_kbps.load(Ordering::SeqCst);
        if kbps != applied_kbps {
            match encoder.set_bitrate(kbps) {
                Ok(path) => {
                    applied_kbps = kbps;
                    shared
                        .stats
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .bitrate_kbps = kbps;
                    shared.events.push(json_event(
                        "bitrate_changed",
                        &[
                            ("kbps", kbps.to_string()),
                            ("path", crate::json::string(&format!("{path:?}"))),
                        ],
                    ));
                }
                Err(error) => {
                    shared.target_kbps.store(applied_kbps, Ordering::SeqCst);
                    shared.events.push(json_event(
                        "error",
                        &[("message", crate::json::string(&error.to_string()))],
                    ));
                }
            }
        }
        let capture_started = monotonic_ns();
        if let Err(error) = source.capture(&mut frame) {
            shared.events.push(json_event(
                "error",
                &[("message", crate::json::string(&format!("capture: {error}")))],
            ));
            break;
        }
        let capture_ns = monotonic_ns().saturating_sub(capture_started);
        if fault.kill_worker_after_frames == Some(produced) {
            panic!("fault injection: video worker killed after {produced} frames");
        }
        let force_idr = shared.idr_requested.swap(false, Ordering::SeqCst);
        let mut out = unused
            .take()
            .or_else(|| spares.try_recv().ok())
            .unwrap_or_default();
        let result = if !encoder_fault_fired && fault.fail_encoder_after_frames == Some(produced) {
            encoder_fault_fired = true;
            Err(injected_encoder_failure(&encoder, produced))
        } else {
            encoder.encode_into(&frame, force_idr, &mut out)
        };
        match result {
            Ok(true) => {
                produced += 1;
                {
                    let mut stats = shared.stats.lock().unwrap_or_else(|p| p.into_inner());
                    stats.counters.frames_captured += 1;
                    stats.counters.frames_encoded += 1;
                    stats.counters.keyframes += u64::from(out.keyframe);
                    stats.counters.idr_requests += u64::from(force_idr);
                    stats.record(Stage::Capture, capture_ns);
                    stats.record(Stage::Convert, out.convert_ns);
                    stats.record(Stage::Encode, out.encode_ns);
                }
                shared.pending_frames.fetch_add(1, Ordering::SeqCst);
                if frames.send(out).is_err() {
                    break;
                }
            }
            Ok(false) => {
                shared
                    .stats
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .counters
                    .frames_captured += 1;
                unused = Some(out);
            }
            Err(error) => {
                unused = Some(out);
                if !fall_back(&mut encoder, &error, shared, &mut fallbacks) {
                    break;
                }
            }
        }
    }
}

fn send_loop(
    mut packetizer: Packetizer,
    mut sealer: MediaSealer,
    mut link: PacedLink,
    shared: &Shared,
    frames: Receiver<EncodedFrame>,
    spares: SyncSender<EncodedFrame>,
) {
    let mut codes = CachedCodes::new();
    let mut next_seq = 0u64;
    while let Ok(encoded) = frames.recv() {
        link.follow_bitrate(shared.target_kbps.load(Ordering::SeqCst));
        remember_sent_hash(shared, encoded.frame_index as u32, &encoded.data);
        let fec_started = monotonic_ns();
        let input = FrameInput {
            data: &encoded.data,
            frame_index: encoded.frame_index as u32,
            pts_ns: encoded.capture_ns,
            user_flags: if encoded.keyframe {
                USER_FLAG_KEYFRAME
            } else {
                0
            },
        };
        let mut batch = match packetizer.packetize(&input, &mut codes) {
            Ok(batch) => batch,
            Err(error) => {
                report_packetize_error(shared, &error);
                shared.pending_frames.fetch_sub(1, Ordering::SeqCst);
                let _ = spares.try_send(encoded);
                continue;
            }
        };
        let seal_started = monotonic_ns();
        let datagram_len = batch.datagram_len();
        let count = batch.len();
        let mut seal_failed = false;
        for datagram in batch.datagrams_mut() {
            if sealer.seal_datagram(next_seq, datagram).is_err() {
                seal_failed = true;
            }
            next_seq += 1;
        }
        let send_started = monotonic_ns();
        let batch = &batch;
        let mut outcome = link.send(
            count,
            datagram_len,
            |start, n| batch.datagram_span(start, n),
            |i| batch.datagram(i),
        );
        outcome.errors += u64::from(seal_failed);
        let done = monotonic_ns();
        record_sent_frame(
            shared,
            &outcome,
            datagram_len,
            encoded.capture_ns,
            seal_started - fec_started,
            send_started - seal_started,
            done - send_started,
        );
        shared.pending_frames.fetch_sub(1, Ordering::SeqCst);
        let _ = spares.try_send(encoded);
    }
}
