//! The client side of a punktfunk/1 video stream (our own client, the probe and the tests):
//! recvmmsg → AEAD open → replay check → reassembly with FEC → decode → stamp check.
//!
//! A frame lost despite FEC breaks the reference chain, so decoding pauses until the next
//! keyframe and the loss is reported (event + optional callback) for the session to request an
//! IDR — the same loop Moonlight and the original's client run.

use super::events::EventQueue;
use super::video_sender::USER_FLAG_KEYFRAME;
use crate::capture::monotonic_ns;
use crate::capture::stamp::read_stamp_from_luma;
use crate::crypto::aes_gcm::{Direction, MediaOpener};
use crate::encode::{Codec, VideoDecoder};
use crate::fec::provider::CachedCodes;
use crate::recv::reassembly::{CompletedFrame, Reassembler, ReassemblyConfig};
use crate::recv::replay::{ReplayFilter, ReplayVerdict};
use crate::recv::udp::UdpReceiver;
use crate::stats::LatencyHistogram;
use serde_json::Value;
use std::collections::VecDeque;
use std::fmt::Write;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// recvmmsg batch: 64 datagrams (~94 KB) per call keeps syscalls rare at Gbit rates.
const RECV_BATCH: usize = 64;
/// Poll interval of the socket, bounding how long stop() waits and how late loss is noticed.
const RECV_POLL: Duration = Duration::from_millis(5);
/// Completed frames kept for `take_frame` before the oldest are dropped (our client drains them).
const DELIVERED_CAPACITY: usize = 8;

#[derive(Debug, Clone)]
pub struct ReceiverConfig {
    pub bind: SocketAddr,
    pub key: [u8; 16],
    pub salt: [u8; 4],
    /// None: deliver access units without decoding.
    pub decode: Option<Codec>,
    /// Read the synthetic source's stamp from each decoded frame (tests, probe, latency).
    pub verify_stamps: bool,
    /// Keep completed access units for `take_frame` (our client).
    pub deliver_frames: bool,
}

fn hex<const N: usize>(value: Option<&Value>, name: &str) -> Result<[u8; N], String> {
    let text = value
        .and_then(Value::as_str)
        .ok_or_else(|| format!("{name} is required"))?;
    if text.len() != N * 2 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(format!("{name} must be exactly {} hex digits", N * 2));
    }
    let mut out = [0u8; N];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&text[i * 2..i * 2 + 2], 16).map_err(|e| e.to_string())?;
    }
    Ok(out)
}

impl ReceiverConfig {
    pub fn from_json(text: &str) -> Result<Self, String> {
        let root: Value =
            serde_json::from_str(text).map_err(|e| format!("config is not valid JSON: {e}"))?;
        let bind = root
            .get("bind")
            .and_then(Value::as_str)
            .unwrap_or("127.0.0.1:0");
        let decode = match root.get("decode").and_then(Value::as_str).unwrap_or("none") {
            "none" => None,
            "h264" => Some(Codec::H264),
            "hevc" => Some(Codec::Hevc),
            "av1" => Some(Codec::Av1),
            other => {
                return Err(format!(
                    "decode must be none, h264, hevc or av1, got {other:?}"
                ))
            }
        };
        let key = hex::<16>(root.get("key"), "key")?;
        if key == [0; 16] {
            return Err("key must not be all zero".into());
        }
        Ok(Self {
            bind: bind
                .parse()
                .map_err(|_| format!("bind must be IP:PORT, got {bind:?}"))?,
            key,
            salt: hex::<4>(root.get("salt"), "salt")?,
            decode,
            verify_stamps: root
                .get("verify_stamps")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            deliver_frames: root
                .get("deliver_frames")
                .and_then(Value::as_bool)
                .unwrap_or(false),
        })
    }
}

#[derive(Default, Clone)]
pub struct ReceiverCounters {
    pub datagrams: u64,
    pub datagrams_truncated: u64,
    pub auth_failures: u64,
    pub replays: u64,
    pub frames_complete: u64,
    pub frames_fec_recovered: u64,
    pub frames_lost: u64,
    pub loss_events: u64,
    pub frames_decoded: u64,
    pub decode_errors: u64,
    /// Frames not decoded while waiting for a keyframe after a loss.
    pub frames_awaiting_keyframe: u64,
    pub stamps_verified: u64,
    pub stamps_mismatched: u64,
    pub packets_dropped_malformed: u64,
    pub packets_dropped_late: u64,
}

pub struct ReceiverState {
    pub counters: ReceiverCounters,
    /// Capture (stamp) to decoded picture: end-to-end latency on one machine (CLOCK_MONOTONIC).
    pub end_to_end: LatencyHistogram,
    pub decode: LatencyHistogram,
    /// FNV-1a of each completed access unit, by frame index (tests compare with the sender's).
    pub frame_hashes: VecDeque<(u32, u64)>,
    delivered: VecDeque<CompletedFrame>,
}

pub type LossCallback = Box<dyn Fn() + Send + Sync>;

pub struct VideoReceiver {
    state: Arc<Mutex<ReceiverState>>,
    events: Arc<EventQueue>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    local_addr: SocketAddr,
}

/// FNV-1a 64: a cheap fingerprint to compare access units end to end; not a security hash.
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |hash, &b| {
        (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// How many frame hashes to keep (about a minute at 60 fps).
const HASH_HISTORY: usize = 4096;

impl VideoReceiver {
    pub fn start(config: ReceiverConfig, on_loss: Option<LossCallback>) -> Result<Self, String> {
        let mut socket = UdpReceiver::bind(config.bind, RECV_BATCH, RECV_POLL)
            .map_err(|e| format!("bind: {e}"))?;
        let local_addr = socket.local_addr().map_err(|e| e.to_string())?;
        let mut opener = MediaOpener::new(&config.key, config.salt, Direction::HostToClient)
            .map_err(|e| format!("opener: {e}"))?;
        let mut decoder = match config.decode {
            Some(codec) => Some(VideoDecoder::open(codec).map_err(|e| format!("decoder: {e}"))?),
            None => None,
        };
        let reassembly_config = ReassemblyConfig {
            first_frame_index: Some(0),
            ..ReassemblyConfig::default()
        };
        let mut reassembler = Reassembler::new(reassembly_config).map_err(|e| e.to_string())?;
        let state = Arc::new(Mutex::new(ReceiverState {
            counters: ReceiverCounters::default(),
            end_to_end: LatencyHistogram::new(),
            decode: LatencyHistogram::new(),
            frame_hashes: VecDeque::new(),
            delivered: VecDeque::new(),
        }));
        let events = Arc::new(EventQueue::default());
        let stop = Arc::new(AtomicBool::new(false));
        let (thread_state, thread_events, thread_stop) =
            (state.clone(), events.clone(), stop.clone());
        let thread = std::thread::Builder::new()
            .name("pf-video-recv".into())
            .spawn(move || {
                let mut replay = ReplayFilter::new();
                let mut codes = CachedCodes::new();
                let mut awaiting_keyframe = false;
                while !thread_stop.load(Ordering::SeqCst) {
                    let count = match socket.recv_batch() {
                        Ok(count) => count,
                        Err(_) => break,
                    };
                    let now = monotonic_ns();
                    let mut auth_failures = 0;
                    let mut replays = 0;
                    let mut truncated = 0;
                    for i in 0..count {
                        let Some(datagram) = socket.datagram_mut(i) else {
                            truncated += 1;
                            continue;
                        };
                        match opener.open_datagram(datagram) {
                            Err(_) => auth_failures += 1,
                            Ok((seq, plaintext)) => {
                                if replay.check_and_insert(seq) == ReplayVerdict::Fresh {
                                    reassembler.push(now, plaintext, &mut codes);
                                } else {
                                    replays += 1;
                                }
                            }
                        }
                    }
                    reassembler.poll(now);
                    let mut state = thread_state.lock().unwrap_or_else(|p| p.into_inner());
                    state.counters.datagrams += count as u64;
                    state.counters.auth_failures += auth_failures;
                    state.counters.replays += replays;
                    state.counters.datagrams_truncated += truncated;
                    while let Some(frame) = reassembler.pop_frame() {
                        if frame.lost_before > 0 {
                            state.counters.loss_events += 1;
                            awaiting_keyframe = true;
                            thread_events.push(format!(
                                "{{\"event\":\"frame_lost\",\"lost\":{},\"next_frame\":{}}}",
                                frame.lost_before, frame.frame_index
                            ));
                            if let Some(callback) = &on_loss {
                                callback();
                            }
                        }
                        state
                            .frame_hashes
                            .push_back((frame.frame_index, fnv1a64(&frame.data)));
                        if state.frame_hashes.len() > HASH_HISTORY {
                            state.frame_hashes.pop_front();
                        }
                        let keyframe = frame.user_flags & USER_FLAG_KEYFRAME != 0;
                        if keyframe {
                            awaiting_keyframe = false;
                        }
                        if let Some(decoder) = decoder.as_mut() {
                            if awaiting_keyframe {
                                state.counters.frames_awaiting_keyframe += 1;
                            } else {
                                let started = monotonic_ns();
                                match decoder.decode(&frame.data) {
                                    Ok(Some(picture)) => {
                                        let decoded_at = monotonic_ns();
                                        state.decode.record(decoded_at - started);
                                        state.counters.frames_decoded += 1;
                                        if config.verify_stamps {
                                            match read_stamp_from_luma(
                                                &picture.y,
                                                picture.y_stride,
                                                picture.width,
                                                picture.height,
                                            ) {
                                                Some(stamp) if stamp.index == frame.frame_index => {
                                                    state.counters.stamps_verified += 1;
                                                    state.end_to_end.record(
                                                        decoded_at.saturating_sub(stamp.capture_ns),
                                                    );
                                                }
                                                _ => state.counters.stamps_mismatched += 1,
                                            }
                                        }
                                    }
                                    Ok(None) | Err(_) => {
                                        // One packet in must give one picture out: treat as loss.
                                        state.counters.decode_errors += 1;
                                        awaiting_keyframe = true;
                                        if let Some(callback) = &on_loss {
                                            callback();
                                        }
                                    }
                                }
                            }
                        }
                        if config.deliver_frames {
                            if state.delivered.len() == DELIVERED_CAPACITY {
                                if let Some(old) = state.delivered.pop_front() {
                                    reassembler.recycle(old.data);
                                }
                            }
                            state.delivered.push_back(frame);
                        } else {
                            reassembler.recycle(frame.data);
                        }
                    }
                    let r = reassembler.stats();
                    state.counters.frames_complete = r.frames_complete;
                    state.counters.frames_fec_recovered = r.frames_recovered;
                    state.counters.frames_lost = r.frames_lost;
                    state.counters.packets_dropped_malformed = r.packets_dropped_malformed;
                    state.counters.packets_dropped_late = r.packets_dropped_late;
                }
            })
            .map_err(|e| format!("spawn: {e}"))?;
        Ok(Self {
            state,
            events,
            stop,
            thread: Some(thread),
            local_addr,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    pub fn with_state<R>(&self, f: impl FnOnce(&ReceiverState) -> R) -> R {
        f(&self.state.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// The oldest completed access unit not yet taken (when `deliver_frames` is on).
    pub fn take_frame(&self) -> Option<CompletedFrame> {
        self.state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .delivered
            .pop_front()
    }

    pub fn drain_events(&self, out: &mut [u8]) -> usize {
        self.events.drain_into(out)
    }

    pub fn stats_json(&self) -> String {
        let state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let c = &state.counters;
        let mut out = String::with_capacity(512);
        let _ = write!(
            out,
            "{{\"datagrams\":{},\"datagrams_truncated\":{},\"auth_failures\":{},\"replays\":{},\
             \"frames_complete\":{},\"frames_fec_recovered\":{},\"frames_lost\":{},\"loss_events\":{},\
             \"frames_decoded\":{},\"decode_errors\":{},\"frames_awaiting_keyframe\":{},\
             \"stamps_verified\":{},\"stamps_mismatched\":{},\"packets_dropped_malformed\":{},\
             \"packets_dropped_late\":{},\"latency_us\":{{\"end_to_end\":{{\"p50\":{:.1},\"p99\":{:.1}}},\
             \"decode\":{{\"p50\":{:.1},\"p99\":{:.1}}}}}}}",
            c.datagrams,
            c.datagrams_truncated,
            c.auth_failures,
            c.replays,
            c.frames_complete,
            c.frames_fec_recovered,
            c.frames_lost,
            c.loss_events,
            c.frames_decoded,
            c.decode_errors,
            c.frames_awaiting_keyframe,
            c.stamps_verified,
            c.stamps_mismatched,
            c.packets_dropped_malformed,
            c.packets_dropped_late,
            state.end_to_end.quantile(0.5) as f64 / 1e3,
            state.end_to_end.quantile(0.99) as f64 / 1e3,
            state.decode.quantile(0.5) as f64 / 1e3,
            state.decode.quantile(0.99) as f64 / 1e3,
        );
        out
    }

    pub fn stop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for VideoReceiver {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod x11_session_tests {
    //! The real-display path end to end: an Xvfb screen captured over MIT-SHM, encoded, sent
    //! and decoded — the source the GameStream "Desktop" app uses when a display exists.
    use super::*;
    use crate::capture::x11::xvfb::Xvfb;
    use crate::pipeline::config::PipelineConfig;
    use crate::pipeline::video_sender::VideoSender;

    #[test]
    #[ignore = "needs Xvfb (bootstrap.sh runs it when installed)"]
    fn needs_xvfb_desktop_streams_and_decodes_at_its_own_size() {
        let mut xvfb = Xvfb::require("640x480x24");
        let key = "2b7e151628aed2a6abf7158809cf4f3c";
        let config = ReceiverConfig::from_json(&format!(
            r#"{{"key":"{key}","salt":"01020304","decode":"h264"}}"#
        ))
        .unwrap();
        let mut receiver = VideoReceiver::start(config, None).unwrap();
        let sender_config = PipelineConfig::from_json(&format!(
            r#"{{"source":{{"kind":"x11","display":"{}"}},"width":640,"height":480,"fps":30,"encoder":"software",
                "bitrate_kbps":4000,"key":"{key}","salt":"01020304","destination":"{}","max_frames":20}}"#,
            xvfb.display(),
            receiver.local_addr()
        ))
        .unwrap();
        let mut sender = VideoSender::start(sender_config).unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while !sender.is_finished() && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        // The last datagrams may still be in flight when the sender finishes: wait for the
        // receiver to decode them rather than for a fixed time.
        while receiver.with_state(|state| state.counters.frames_decoded) < 20
            && std::time::Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(20));
        }
        sender.stop();
        receiver.stop();
        xvfb.stop();
        assert_eq!(sender.with_stats(|s| s.counters.frames_sent), 20);
        receiver.with_state(|state| {
            assert_eq!(state.counters.frames_complete, 20);
            assert_eq!(state.counters.frames_decoded, 20);
            assert_eq!(state.counters.decode_errors, 0);
        });
    }

    #[test]
    fn a_missing_display_fails_at_start_with_its_name() {
        let config = PipelineConfig::from_json(
            r#"{"source":{"kind":"x11","display":":87"},"key":"2b7e151628aed2a6abf7158809cf4f3c","salt":"01020304","destination":"127.0.0.1:9"}"#,
        )
        .unwrap();
        let error = VideoSender::start(config).err().expect("start must fail");
        assert!(error.contains(":87"), "{error}");
    }
}
