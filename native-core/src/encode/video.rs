//! The streaming low-latency video encoder: BGRA [`Frame`]s in, encoded
//! frames out (Annex-B for H.264/HEVC, OBU temporal units for AV1).
//!
//! [`VideoEncoder::open`] walks the candidates of the requested codec in the
//! probe's preference order (hardware first, see [`CANDIDATES`]), asks
//! [`tuning::plan`] how each would serve the request, and keeps the first
//! that opens; every candidate passed over is recorded with its reason
//! ([`VideoEncoder::skipped`]) and logged. Each frame is converted with
//! libswscale into a reused input frame, sent, and every packet the encoder
//! has ready is collected; zero-latency encoders return the frame's own
//! packet from the same call. Conversion and encode times are measured per
//! frame on the monotonic clock (`Instant` is CLOCK_MONOTONIC on Linux).

use std::collections::VecDeque;
use std::fmt;
use std::time::{Duration, Instant};

use super::libav::{
    self, libav_call, AvError, AvErrorKind, Encoder, Failed, Packet, Received, Sent,
};
use super::probe::{self, Candidate, CANDIDATES};
use super::tuning::{
    self, BitDepth, BitrateChange, Chroma, KeyFrameRequest, Plan, RateControl, Rejection, Speed,
};
use super::{Backend, Codec, Frame, PixelFormat};

/// Highest frame rate accepted (a 240 Hz display).
pub const MAX_FPS: u32 = 240;

/// Highest bit rate accepted: 1 Gbit/s, above any link this streams over.
pub const MAX_BITRATE_KBPS: u32 = 1_000_000;

/// Log target of this module.
const TARGET: &str = "encode";

/// Frames the in-flight bookkeeping holds without reallocating: far more
/// than any low-latency encoder keeps (zero-latency ones keep none).
const IN_FLIGHT_CAPACITY: usize = 16;

/// Which encoder to use.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum EncoderPreference {
    /// Hardware first, then software, in the probe's order.
    #[default]
    Auto,
    /// Software encoders only, in the probe's order.
    Software,
    /// Exactly this libavcodec encoder (one of the probe's candidates).
    Named(String),
}

/// What to encode and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncoderSettings {
    pub codec: Codec,
    /// Encoded size: even, 2 ..= 16384. Input frames of another size are
    /// scaled.
    pub width: u32,
    pub height: u32,
    /// Frames per second, 1 ..= [`MAX_FPS`].
    pub fps: u32,
    /// Target (and maximum) bit rate, kbit/s.
    pub bitrate_kbps: u32,
    pub preference: EncoderPreference,
    pub bit_depth: BitDepth,
    pub chroma: Chroma,
    pub speed: Speed,
    /// Pad every frame to the constant rate with filler data (libx264
    /// `nal-hrd=cbr`; FEC tests want constant-size frames). Encoders that
    /// cannot pad are skipped as unsupported.
    pub cbr_filler: bool,
}

impl EncoderSettings {
    /// Settings with the defaults: automatic encoder choice, 8-bit 4:2:0,
    /// [`Speed::Auto`], no filler.
    pub fn new(codec: Codec, width: u32, height: u32, fps: u32, bitrate_kbps: u32) -> Self {
        EncoderSettings {
            codec,
            width,
            height,
            fps,
            bitrate_kbps,
            preference: EncoderPreference::Auto,
            bit_depth: BitDepth::Eight,
            chroma: Chroma::Yuv420,
            speed: Speed::Auto,
            cbr_filler: false,
        }
    }

    /// Checks size, frame rate and bit rate.
    pub fn validate(&self) -> Result<(), EncodeError> {
        probe::validate_size(self.width, self.height)
            .map_err(|e| EncodeError::InvalidSettings(e.message().to_string()))?;
        if self.fps == 0 || self.fps > MAX_FPS {
            return Err(EncodeError::InvalidSettings(format!(
                "fps {} is invalid: must be between 1 and {MAX_FPS}",
                self.fps
            )));
        }
        check_bitrate(self.bitrate_kbps, self.fps).map_err(EncodeError::InvalidSettings)
    }
}

/// A bit rate must lie in 1 ..= [`MAX_BITRATE_KBPS`] and give the one-frame
/// VBV at least 1 kbit: x264 and x265 take the buffer size in whole kbit, and
/// 0 would switch the VBV off.
fn check_bitrate(kbps: u32, fps: u32) -> Result<(), String> {
    if kbps == 0 || kbps > MAX_BITRATE_KBPS {
        return Err(format!(
            "bitrate_kbps {kbps} is invalid: must be between 1 and {MAX_BITRATE_KBPS}"
        ));
    }
    const MIN_BUFFER_BITS: u64 = 1000;
    if RateControl::cbr(kbps, fps).buffer_bits < MIN_BUFFER_BITS {
        return Err(format!(
            "bitrate_kbps {kbps} is too low for {fps} fps: one frame must get at least 1 kbit"
        ));
    }
    Ok(())
}

/// Why a candidate was passed over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SkipKind {
    /// Not built into this libavcodec.
    NotBuilt,
    /// Cannot serve the requested format or feature.
    Unsupported,
    /// Should have worked, but opening it failed (no device, no driver,
    /// rejected parameters, ...).
    OpenFailed,
}

/// A candidate passed over by [`VideoEncoder::open`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedEncoder {
    /// libavcodec encoder name, with the attempt in parentheses when an
    /// encoder has several (e.g. `"h264_vaapi (low_power)"`).
    pub encoder: String,
    pub kind: SkipKind,
    pub reason: String,
}

/// A failed encoder operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EncodeError {
    /// The settings are out of range.
    InvalidSettings(String),
    /// The frame does not describe a valid image.
    InvalidFrame(String),
    /// No candidate can produce the requested format/feature combination.
    Unsupported(String),
    /// Every candidate was passed over; at least one failed to open.
    NoEncoder {
        codec: Codec,
        skipped: Vec<SkippedEncoder>,
    },
    /// libav failed while encoding (or reopening): av_strerror text plus
    /// the libav log lines of the failing call.
    Encode {
        encoder: String,
        message: String,
        libav: Vec<String>,
    },
    /// [`VideoEncoder::flush`] ended the stream.
    Finished,
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EncodeError::InvalidSettings(m) => write!(f, "invalid encoder settings: {m}"),
            EncodeError::InvalidFrame(m) => write!(f, "invalid frame: {m}"),
            EncodeError::Unsupported(m) => write!(f, "unsupported: {m}"),
            EncodeError::NoEncoder { codec, skipped } => {
                write!(f, "no {codec} encoder could be opened")?;
                for (i, s) in skipped.iter().enumerate() {
                    let sep = if i == 0 { ": " } else { "; " };
                    write!(f, "{sep}{}: {}", s.encoder, s.reason)?;
                }
                Ok(())
            }
            EncodeError::Encode {
                encoder,
                message,
                libav,
            } => {
                write!(f, "{encoder}: {message}")?;
                if !libav.is_empty() {
                    write!(f, " (libav: {})", libav.join("; "))?;
                }
                Ok(())
            }
            EncodeError::Finished => f.write_str("the encoder was flushed; open a new one"),
        }
    }
}

impl std::error::Error for EncodeError {}

/// One encoded frame.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EncodedFrame {
    /// Annex-B NAL units (H.264/HEVC) or one OBU temporal unit (AV1).
    pub data: Vec<u8>,
    /// An IDR (H.264/HEVC) or key frame (AV1), parameter sets in band.
    pub keyframe: bool,
    /// Presentation timestamp in frame units (1/fps), counted from 0 by the
    /// encoder.
    pub pts: i64,
    /// [`Frame::index`] of the input.
    pub frame_index: u64,
    /// [`Frame::capture_ns`] of the input.
    pub capture_ns: u64,
    /// BGRA → YUV conversion (and upload, for VAAPI) time.
    pub convert_ns: u64,
    /// From handing the frame to the encoder to receiving its packet.
    pub encode_ns: u64,
}

/// Bookkeeping of a frame sent but not yet returned.
#[derive(Debug, Clone, Copy)]
struct InFlight {
    pts: i64,
    index: u64,
    capture_ns: u64,
    convert_ns: u64,
    sent_at: Instant,
}

/// An open low-latency encoder. Not `Sync`; move it to the encode thread.
#[derive(Debug)]
pub struct VideoEncoder {
    settings: EncoderSettings,
    candidate: Candidate,
    plan: Plan,
    /// Index into `plan.attempts` that opened.
    attempt: usize,
    encoder: Encoder,
    skipped: Vec<SkippedEncoder>,
    next_pts: i64,
    in_flight: VecDeque<InFlight>,
    /// Frames received beyond the one returned, oldest first.
    ready: VecDeque<EncodedFrame>,
    force_next_key: bool,
    /// Frames sent to the current libav encoder (0 right after a reopen).
    sent_to_encoder: u64,
    finished: bool,
    reopens: u32,
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// The candidates a preference allows for a codec, in preference order.
fn candidates_for(settings: &EncoderSettings) -> Result<Vec<Candidate>, EncodeError> {
    let of_codec = CANDIDATES.iter().filter(|c| c.codec == settings.codec);
    match &settings.preference {
        EncoderPreference::Auto => Ok(of_codec.copied().collect()),
        EncoderPreference::Software => Ok(of_codec
            .filter(|c| c.backend == Backend::Software)
            .copied()
            .collect()),
        EncoderPreference::Named(name) => {
            let Some(c) = CANDIDATES.iter().find(|c| c.encoder == name) else {
                let known: Vec<&str> = CANDIDATES.iter().map(|c| c.encoder).collect();
                return Err(EncodeError::InvalidSettings(format!(
                    "unknown encoder {name:?}; known: {}",
                    known.join(", ")
                )));
            };
            if c.codec != settings.codec {
                return Err(EncodeError::InvalidSettings(format!(
                    "{name} encodes {}, not {}",
                    c.codec, settings.codec
                )));
            }
            Ok(vec![*c])
        }
    }
}

/// The candidates tried when `failed` breaks mid-stream, in order: those after it in the chain its
/// preference allows (a hardware encoder falls back to the next backend, ending with software). A
/// software encoder at the end of the chain gets one fresh instance of itself: its failures are
/// state (a bad frame, an internal error), not a device that is gone.
fn fallback_chain(
    settings: &EncoderSettings,
    failed: &Candidate,
) -> Result<Vec<Candidate>, EncodeError> {
    let mut chain_settings = settings.clone();
    // A named encoder that breaks falls back like the automatic choice would have.
    if matches!(chain_settings.preference, EncoderPreference::Named(_)) {
        chain_settings.preference = EncoderPreference::Auto;
    }
    let chain = candidates_for(&chain_settings)?;
    let after: Vec<Candidate> = match chain.iter().position(|c| c.encoder == failed.encoder) {
        Some(index) => chain[index + 1..].to_vec(),
        None => chain,
    };
    if after.is_empty() && failed.backend == Backend::Software {
        return Ok(vec![*failed]);
    }
    Ok(after)
}

/// Name of one attempt of a plan, for skip records.
fn attempt_label(candidate: &Candidate, plan: &Plan, attempt: usize) -> String {
    let low_power = plan.attempts[attempt]
        .iter()
        .any(|(k, v)| k == "low_power" && v == "1");
    if low_power {
        format!("{} (low_power)", candidate.encoder)
    } else {
        candidate.encoder.to_string()
    }
}

/// Removes and returns the bookkeeping of the frame with `pts`. Frames
/// before it produced no packet (an encoder dropped them) and are
/// discarded; a pts of a frame never tracked (the shim's blank frame)
/// yields `None`.
fn take_in_flight(in_flight: &mut VecDeque<InFlight>, pts: i64) -> Option<InFlight> {
    while let Some(front) = in_flight.front() {
        if front.pts == pts {
            return in_flight.pop_front();
        }
        if front.pts > pts {
            return None;
        }
        crate::pf_debug!(TARGET, "frame {} produced no packet", front.index);
        in_flight.pop_front();
    }
    None
}

fn fill(out: &mut EncodedFrame, packet: &Packet<'_>, meta: &InFlight, now: Instant) {
    out.data.clear();
    out.data.extend_from_slice(packet.data);
    out.keyframe = packet.key;
    out.pts = packet.pts;
    out.frame_index = meta.index;
    out.capture_ns = meta.capture_ns;
    out.convert_ns = meta.convert_ns;
    out.encode_ns = nanos(now.saturating_duration_since(meta.sent_at));
}

/// Receives every packet the encoder has now. The first goes into `out`
/// if `out_slot` is still free (no allocation: `out.data` is reused), the
/// rest are queued in `ready`. Returns whether `out` was filled.
fn collect(
    encoder: &mut Encoder,
    in_flight: &mut VecDeque<InFlight>,
    ready: &mut VecDeque<EncodedFrame>,
    mut out_slot: Option<&mut EncodedFrame>,
) -> Result<bool, AvError> {
    let mut filled = false;
    loop {
        let packet = match encoder.receive()? {
            Received::Item(p) => p,
            Received::Again | Received::Eof => return Ok(filled),
        };
        let now = Instant::now();
        let Some(meta) = take_in_flight(in_flight, packet.pts) else {
            continue;
        };
        match out_slot.take() {
            Some(out) => {
                fill(out, &packet, &meta, now);
                filled = true;
            }
            None => {
                let mut frame = EncodedFrame::default();
                fill(&mut frame, &packet, &meta, now);
                ready.push_back(frame);
            }
        }
    }
}

/// Ends `encoder`'s stream and queues everything it still had in `ready`.
fn drain(
    encoder: &mut Encoder,
    in_flight: &mut VecDeque<InFlight>,
    ready: &mut VecDeque<EncodedFrame>,
) -> Result<(), AvError> {
    encoder.send_eof()?;
    collect(encoder, in_flight, ready, None).map(|_| ())
}

impl VideoEncoder {
    /// Opens the first candidate that can serve `settings` (see the module
    /// docs). Fails with [`EncodeError::Unsupported`] if none can produce
    /// the requested combination, or [`EncodeError::NoEncoder`] with every
    /// candidate's reason if some could but failed to open.
    pub fn open(settings: &EncoderSettings) -> Result<VideoEncoder, EncodeError> {
        settings.validate()?;
        let rate = RateControl::cbr(settings.bitrate_kbps, settings.fps);
        let mut skipped = Vec::new();
        for candidate in candidates_for(settings)? {
            let plan = match tuning::plan(&candidate, settings) {
                Ok(plan) => plan,
                Err(rejection) => {
                    let (kind, reason) = match rejection {
                        Rejection::NotBuilt(r) => (SkipKind::NotBuilt, r),
                        Rejection::Unsupported(r) => (SkipKind::Unsupported, r),
                    };
                    skipped.push(SkippedEncoder {
                        encoder: candidate.encoder.to_string(),
                        kind,
                        reason,
                    });
                    continue;
                }
            };
            for attempt in 0..plan.attempts.len() {
                let open = tuning::open_settings(&candidate, &plan, attempt, settings, rate);
                match libav_call(|| Encoder::open(&open)) {
                    Ok(encoder) => {
                        let opened = VideoEncoder {
                            settings: settings.clone(),
                            candidate,
                            plan,
                            attempt,
                            encoder,
                            skipped,
                            next_pts: 0,
                            in_flight: VecDeque::with_capacity(IN_FLIGHT_CAPACITY),
                            ready: VecDeque::new(),
                            force_next_key: false,
                            sent_to_encoder: 0,
                            finished: false,
                            reopens: 0,
                        };
                        opened.log_opened();
                        return Ok(opened);
                    }
                    Err((e, lines)) => {
                        skipped.push(SkippedEncoder {
                            encoder: attempt_label(&candidate, &plan, attempt),
                            kind: SkipKind::OpenFailed,
                            reason: probe::failure_reason(&e, &lines),
                        });
                        // Another option set cannot bring a device back.
                        let device_missing = matches!(
                            e.kind,
                            AvErrorKind::NoDevice | AvErrorKind::HwDevice | AvErrorKind::HwFrames
                        );
                        if device_missing {
                            break;
                        }
                    }
                }
            }
        }
        for s in &skipped {
            crate::pf_info!(TARGET, "skipped {}: {}", s.encoder, s.reason);
        }
        if !skipped.is_empty() && skipped.iter().all(|s| s.kind != SkipKind::OpenFailed) {
            let reasons: Vec<&str> = skipped.iter().map(|s| s.reason.as_str()).collect();
            return Err(EncodeError::Unsupported(reasons.join("; ")));
        }
        Err(EncodeError::NoEncoder {
            codec: settings.codec,
            skipped,
        })
    }

    /// After this encoder failed mid-stream: opens the next encoder of its chain (see
    /// [`fallback_chain`]) at the current bit rate. Its first frame is an IDR with parameter sets,
    /// so a client resumes decoding from it. Errors like [`VideoEncoder::open`] when nothing opens.
    pub fn open_fallback(&self) -> Result<VideoEncoder, EncodeError> {
        let chain = fallback_chain(&self.settings, &self.candidate)?;
        let mut settings = self.settings.clone();
        let mut skipped = Vec::new();
        for candidate in chain {
            settings.preference = EncoderPreference::Named(candidate.encoder.to_string());
            match VideoEncoder::open(&settings) {
                Ok(mut opened) => {
                    skipped.append(&mut opened.skipped);
                    opened.skipped = skipped;
                    opened.force_next_key = true;
                    return Ok(opened);
                }
                Err(EncodeError::NoEncoder { skipped: mut s, .. }) => skipped.append(&mut s),
                Err(EncodeError::Unsupported(reason)) => skipped.push(SkippedEncoder {
                    encoder: candidate.encoder.to_string(),
                    kind: SkipKind::Unsupported,
                    reason,
                }),
                Err(other) => return Err(other),
            }
        }
        Err(EncodeError::NoEncoder {
            codec: self.settings.codec,
            skipped,
        })
    }

    fn log_opened(&self) {
        for s in &self.skipped {
            crate::pf_info!(TARGET, "skipped {}: {}", s.encoder, s.reason);
        }
        let s = &self.settings;
        crate::pf_info!(
            TARGET,
            "{} opened ({} preset): {} {}x{}@{} {} kbps, {} input, bitrate changes {}",
            self.chosen(),
            self.speed().as_str(),
            s.codec,
            s.width,
            s.height,
            s.fps,
            s.bitrate_kbps,
            self.plan.pix_fmt,
            match self.plan.bitrate_change {
                BitrateChange::Reconfigured => "in place",
                BitrateChange::Reopened => "by reopening",
            }
        );
    }

    /// libavcodec name of the encoder in use, e.g. `"libx264"`.
    pub fn chosen(&self) -> &str {
        self.candidate.encoder
    }

    /// The speed preset the chosen encoder runs at ([`Speed::Auto`]
    /// resolved, see [`tuning::resolve_speed`]).
    pub fn speed(&self) -> Speed {
        tuning::resolve_speed(&self.candidate, &self.settings, tuning::available_cores())
    }

    /// Where the chosen encoder runs.
    pub fn backend(&self) -> Backend {
        self.candidate.backend
    }

    /// Candidates passed over before [`VideoEncoder::chosen`], in order.
    pub fn skipped(&self) -> &[SkippedEncoder] {
        &self.skipped
    }

    /// The settings in force (bit rate included, after
    /// [`VideoEncoder::set_bitrate`]).
    pub fn settings(&self) -> &EncoderSettings {
        &self.settings
    }

    /// libav name of the pixel format frames are converted to.
    pub fn input_format(&self) -> &'static str {
        self.plan.pix_fmt
    }

    /// How [`VideoEncoder::set_bitrate`] reaches this encoder.
    pub fn bitrate_change(&self) -> BitrateChange {
        self.plan.bitrate_change
    }

    /// How a `force_idr` request reaches this encoder.
    pub fn key_frame_request(&self) -> KeyFrameRequest {
        self.plan.key_frames
    }

    /// How often the libav encoder was reopened (bitrate changes, or key
    /// frames for [`KeyFrameRequest::Reopen`] encoders).
    pub fn reopens(&self) -> u32 {
        self.reopens
    }

    /// Frames handed to the encoder whose packets have not come out yet
    /// (always 0 after a call for zero-latency encoders).
    pub fn frames_in_encoder(&self) -> usize {
        self.in_flight.len()
    }

    /// Encoded frames waiting in [`VideoEncoder::take_ready`].
    pub fn ready_frames(&self) -> usize {
        self.ready.len()
    }

    /// Encodes one frame; see [`VideoEncoder::encode_into`].
    pub fn encode(
        &mut self,
        frame: &Frame,
        force_idr: bool,
    ) -> Result<Option<EncodedFrame>, EncodeError> {
        let mut out = EncodedFrame::default();
        Ok(self.encode_into(frame, force_idr, &mut out)?.then_some(out))
    }

    /// Encodes one frame — an IDR with parameter sets in band if
    /// `force_idr` (see [`VideoEncoder::key_frame_request`]) — and writes
    /// the oldest encoded frame available into `out`, reusing its buffer.
    /// Returns `false` if the encoder is still holding everything (then
    /// `out` is untouched). Zero-latency encoders (libx264, libx265,
    /// libaom, nvenc, VAAPI) return this frame's own packet; SVT-AV1 works
    /// asynchronously and returns packets up to a few calls later. If an
    /// encoder releases several packets at once, the extra ones wait in
    /// [`VideoEncoder::take_ready`].
    pub fn encode_into(
        &mut self,
        frame: &Frame,
        force_idr: bool,
        out: &mut EncodedFrame,
    ) -> Result<bool, EncodeError> {
        if self.finished {
            return Err(EncodeError::Finished);
        }
        match frame.format {
            PixelFormat::Bgra => {}
        }
        libav::check_bgra_image(frame.data.len(), frame.width, frame.height, frame.stride)
            .map_err(|e| EncodeError::InvalidFrame(e.message))?;
        let reopen_for_key = force_idr
            && self.plan.key_frames == KeyFrameRequest::Reopen
            && self.sent_to_encoder > 0;
        if reopen_for_key {
            let kbps = self.settings.bitrate_kbps;
            self.reopen(kbps, RateControl::cbr(kbps, self.settings.fps))?;
        }

        let started = Instant::now();
        let encoder = &mut self.encoder;
        libav_call(|| encoder.convert_bgra(&frame.data, frame.width, frame.height, frame.stride))
            .map_err(|f| self.failure(f))?;
        let converted = Instant::now();

        let pts = self.next_pts;
        let force_key = force_idr || self.force_next_key;
        let (encoder, in_flight, ready) = (&mut self.encoder, &mut self.in_flight, &mut self.ready);
        libav_call(|| {
            if encoder.send_converted(pts, force_key)? == Sent::Full {
                // Only if output was left behind; make room and retry once.
                collect(encoder, in_flight, ready, None)?;
                if encoder.send_converted(pts, force_key)? == Sent::Full {
                    return Err(AvError {
                        kind: AvErrorKind::Encode,
                        message: "encoder refuses input although drained".into(),
                    });
                }
            }
            Ok(())
        })
        .map_err(|f| self.failure(f))?;
        self.next_pts += 1;
        self.sent_to_encoder += 1;
        self.force_next_key = false;
        self.in_flight.push_back(InFlight {
            pts,
            index: frame.index,
            capture_ns: frame.capture_ns,
            convert_ns: nanos(converted - started),
            sent_at: converted,
        });

        // Older frames first: a queued one goes out before this call's.
        let mut filled = false;
        if let Some(older) = self.ready.pop_front() {
            *out = older;
            filled = true;
        }
        let (encoder, in_flight, ready) = (&mut self.encoder, &mut self.in_flight, &mut self.ready);
        let slot = if filled { None } else { Some(&mut *out) };
        let filled_now =
            libav_call(|| collect(encoder, in_flight, ready, slot)).map_err(|f| self.failure(f))?;
        Ok(filled || filled_now)
    }

    /// Moves the oldest queued encoded frame into `out`; `false` if none.
    pub fn take_ready(&mut self, out: &mut EncodedFrame) -> bool {
        match self.ready.pop_front() {
            Some(frame) => {
                *out = frame;
                true
            }
            None => false,
        }
    }

    /// Changes the bit rate (kbit/s, with the same one-frame VBV) without
    /// interrupting the stream. libx264 (without cbr_filler) and nvenc apply
    /// it from the next frame on; the others are drained, reopened at the
    /// new rate, and continue with an IDR — their in-flight frames are still
    /// delivered. Returns the path taken. If reopening fails, the encoder
    /// keeps running at the old rate and the error is returned.
    pub fn set_bitrate(&mut self, kbps: u32) -> Result<BitrateChange, EncodeError> {
        if self.finished {
            return Err(EncodeError::Finished);
        }
        check_bitrate(kbps, self.settings.fps).map_err(EncodeError::InvalidSettings)?;
        let rate = RateControl::cbr(kbps, self.settings.fps);
        match self.plan.bitrate_change {
            BitrateChange::Reconfigured => {
                let encoder = &mut self.encoder;
                libav_call(|| {
                    encoder.set_rate(
                        rate.bit_rate,
                        rate.max_bit_rate,
                        rate.min_bit_rate,
                        rate.buffer_bits,
                    )
                })
                .map_err(|f| self.failure(f))?;
            }
            BitrateChange::Reopened => self.reopen(kbps, rate)?,
        }
        crate::pf_info!(
            TARGET,
            "{}: bitrate {} -> {kbps} kbps ({:?})",
            self.chosen(),
            self.settings.bitrate_kbps,
            self.plan.bitrate_change
        );
        self.settings.bitrate_kbps = kbps;
        Ok(self.plan.bitrate_change)
    }

    /// Opens a twin of the encoder at `rate` (the old one keeps working if
    /// that fails), then drains the old one into the ready queue and
    /// switches over; the next frame is forced to be an IDR.
    fn reopen(&mut self, kbps: u32, rate: RateControl) -> Result<(), EncodeError> {
        let mut at_new_rate = self.settings.clone();
        at_new_rate.bitrate_kbps = kbps;
        let open = tuning::open_settings(
            &self.candidate,
            &self.plan,
            self.attempt,
            &at_new_rate,
            rate,
        );
        let fresh = libav_call(|| Encoder::open(&open)).map_err(|f| self.failure(f))?;
        let mut old = std::mem::replace(&mut self.encoder, fresh);
        let (in_flight, ready) = (&mut self.in_flight, &mut self.ready);
        if let Err((e, _)) = libav_call(|| drain(&mut old, in_flight, ready)) {
            crate::pf_warn!(
                TARGET,
                "{}: draining before reopen failed, {} frame(s) lost: {e}",
                self.chosen(),
                self.in_flight.len()
            );
        }
        // Whatever the old encoder did not return is gone with it.
        self.in_flight.clear();
        self.force_next_key = true;
        self.sent_to_encoder = 0;
        self.reopens += 1;
        Ok(())
    }

    /// Ends the stream: returns every frame still queued or inside the
    /// encoder, oldest first. Later calls to `encode*` fail with
    /// [`EncodeError::Finished`].
    pub fn flush(&mut self) -> Result<Vec<EncodedFrame>, EncodeError> {
        if self.finished {
            return Ok(Vec::new());
        }
        self.finished = true;
        let (encoder, in_flight, ready) = (&mut self.encoder, &mut self.in_flight, &mut self.ready);
        let result = libav_call(|| drain(encoder, in_flight, ready));
        let frames: Vec<EncodedFrame> = self.ready.drain(..).collect();
        result.map_err(|f| self.failure(f))?;
        Ok(frames)
    }

    fn failure(&self, (error, lines): Failed) -> EncodeError {
        EncodeError::Encode {
            encoder: self.chosen().to_string(),
            message: error.message,
            libav: lines.into_iter().map(|l| l.text).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn x264_settings() -> EncoderSettings {
        let mut s = EncoderSettings::new(Codec::H264, 320, 240, 30, 1000);
        s.preference = EncoderPreference::Named("libx264".into());
        s
    }

    fn candidate(name: &str) -> Candidate {
        *CANDIDATES.iter().find(|c| c.encoder == name).unwrap()
    }

    fn chain_names(settings: &EncoderSettings, failed: &str) -> Vec<&'static str> {
        fallback_chain(settings, &candidate(failed))
            .unwrap()
            .iter()
            .map(|c| c.encoder)
            .collect()
    }

    #[test]
    fn fallback_walks_the_chain_from_hardware_to_software() {
        let h264 = EncoderSettings::new(Codec::H264, 320, 240, 30, 1000);
        assert_eq!(chain_names(&h264, "h264_nvenc"), ["h264_vaapi", "libx264"]);
        assert_eq!(chain_names(&h264, "h264_vaapi"), ["libx264"]);
        // The end of the chain is software: one fresh instance of it.
        assert_eq!(chain_names(&h264, "libx264"), ["libx264"]);
        // A named encoder falls back along the automatic chain.
        assert_eq!(chain_names(&x264_settings(), "libx264"), ["libx264"]);
        let mut av1 = EncoderSettings::new(Codec::Av1, 320, 240, 30, 1000);
        assert_eq!(chain_names(&av1, "av1_vaapi"), ["libsvtav1", "libaom-av1"]);
        assert_eq!(chain_names(&av1, "libsvtav1"), ["libaom-av1"]);
        av1.preference = EncoderPreference::Software;
        assert_eq!(chain_names(&av1, "libaom-av1"), ["libaom-av1"]);
    }

    #[test]
    fn settings_are_validated() {
        let ok = x264_settings();
        assert_eq!(ok.validate(), Ok(()));
        type Change = fn(&mut EncoderSettings);
        let cases: [(&str, Change); 6] = [
            ("odd width", |s| s.width = 321),
            ("zero height", |s| s.height = 0),
            ("zero fps", |s| s.fps = 0),
            ("fps above max", |s| s.fps = MAX_FPS + 1),
            ("zero bitrate", |s| s.bitrate_kbps = 0),
            ("under 1 kbit per frame", |s| s.bitrate_kbps = 29),
        ];
        for (what, change) in cases {
            let mut s = ok.clone();
            change(&mut s);
            match VideoEncoder::open(&s) {
                Err(EncodeError::InvalidSettings(_)) => {}
                other => panic!("{what}: {other:?}"),
            }
        }
    }

    #[test]
    fn named_preference_must_exist_and_match_the_codec() {
        let mut s = x264_settings();
        s.preference = EncoderPreference::Named("libvpx".into());
        match VideoEncoder::open(&s) {
            Err(EncodeError::InvalidSettings(m)) => assert!(m.contains("known: h264_nvenc")),
            other => panic!("{other:?}"),
        }
        s.preference = EncoderPreference::Named("libx265".into());
        match VideoEncoder::open(&s) {
            Err(EncodeError::InvalidSettings(m)) => {
                assert_eq!(m, "libx265 encodes hevc, not h264")
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn candidate_lists_follow_the_probe_order() {
        let mut s = x264_settings();
        s.preference = EncoderPreference::Auto;
        s.codec = Codec::Av1;
        let names: Vec<&str> = candidates_for(&s)
            .unwrap()
            .iter()
            .map(|c| c.encoder)
            .collect();
        assert_eq!(names, ["av1_nvenc", "av1_vaapi", "libsvtav1", "libaom-av1"]);
        s.preference = EncoderPreference::Software;
        let names: Vec<&str> = candidates_for(&s)
            .unwrap()
            .iter()
            .map(|c| c.encoder)
            .collect();
        assert_eq!(names, ["libsvtav1", "libaom-av1"]);
    }

    #[test]
    fn in_flight_matching_skips_dropped_and_untracked_frames() {
        let now = Instant::now();
        let entry = |pts, index| InFlight {
            pts,
            index,
            capture_ns: 0,
            convert_ns: 0,
            sent_at: now,
        };
        let mut q: VecDeque<InFlight> = [entry(3, 30), entry(4, 40), entry(5, 50)].into();
        assert!(take_in_flight(&mut q, 1).is_none(), "untracked pts");
        assert_eq!(q.len(), 3);
        assert_eq!(take_in_flight(&mut q, 4).unwrap().index, 40);
        assert_eq!(q.len(), 1, "frame 3 was dropped by the encoder");
        assert!(take_in_flight(&mut q, 9).is_none());
        assert!(q.is_empty());
    }

    #[test]
    fn error_messages_name_everything() {
        let e = EncodeError::NoEncoder {
            codec: Codec::Hevc,
            skipped: vec![
                SkippedEncoder {
                    encoder: "hevc_nvenc".into(),
                    kind: SkipKind::OpenFailed,
                    reason: "no GPU".into(),
                },
                SkippedEncoder {
                    encoder: "libx265".into(),
                    kind: SkipKind::Unsupported,
                    reason: "no filler".into(),
                },
            ],
        };
        assert_eq!(
            e.to_string(),
            "no hevc encoder could be opened: hevc_nvenc: no GPU; libx265: no filler"
        );
        let e = EncodeError::Encode {
            encoder: "libx264".into(),
            message: "avcodec_send_frame failed: Invalid argument".into(),
            libav: vec!["libx264: bad".into()],
        };
        assert_eq!(
            e.to_string(),
            "libx264: avcodec_send_frame failed: Invalid argument (libav: libx264: bad)"
        );
    }
}
