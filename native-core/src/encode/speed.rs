//! Encoder speed benchmark: how fast the encoder a session would get for a
//! codec encodes W×H@fps on this machine, and with what delay.
//!
//! The encoder is opened exactly as a video session opens it
//! ([`EncoderSettings::new`] with the automatic encoder choice and
//! [`super::Speed::Auto`]), fed the synthetic test pattern, and measured in
//! two phases after a warm-up:
//!
//! * **throughput**: frames handed over as fast as the encoder takes them;
//!   packets out per second is the most it can sustain;
//! * **paced**: frames handed over at the requested rate, each timed from
//!   the moment it was due (as a capture would produce it) to the return of
//!   the call that handed its packet back. A late frame delays the ones
//!   after it, as it would in a session, so an encoder that cannot keep up
//!   shows it as growing latency; one that holds frames back (SVT-AV1 in
//!   libavcodec 5.1 returns at most one packet per frame sent, so a lag
//!   taken at start-up never shrinks) shows it as whole frame intervals.
//!
//! Whether the figures are good enough is the caller's policy (the host's
//! codec advertising); this module only measures.

use std::time::{Duration, Instant};

use super::{Codec, EncodedFrame, EncoderSettings, Frame, VideoEncoder};
use crate::capture::synthetic::SyntheticSource;
use crate::json;

/// Frames encoded before anything is measured: the first quarter second at
/// 60 fps, where encoders allocate, SVT-AV1 fills its pipeline and the
/// first (key) frame is several times larger — a session pays that once.
pub const WARMUP_FRAMES: u64 = 15;

/// Frames of the throughput phase: one second's worth at 60 fps, enough to
/// average over the encoders' frame-to-frame variation (the P-frame cost of
/// the synthetic pattern varies by about 2× with the moving box).
pub const THROUGHPUT_FRAMES: u64 = 60;

/// Frames of the paced phase (one second at 60 fps, see above).
pub const PACED_FRAMES: u64 = 60;

/// Wall time after which a phase stops early: twice its nominal second at
/// 60 fps. An encoder that needs longer is far from keeping up, and what
/// it did so far already shows that; the cap keeps a measurement of a slow
/// encoder (or a big mode) from occupying the cores for tens of seconds.
pub const PHASE_BUDGET: Duration = Duration::from_secs(2);

/// Bit rate at the reference mode 1280x720@60 (Moonlight's default for
/// that mode is of this order); other modes scale it by pixel rate, since
/// the encoders' entropy-coding cost grows with the bits they produce.
const REFERENCE_KBPS: u64 = 10_000;
const REFERENCE_PIXEL_RATE: u64 = 1280 * 720 * 60;

/// A mode to measure: codec and W×H@fps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpeedMode {
    pub codec: Codec,
    pub width: u32,
    pub height: u32,
    pub fps: u32,
}

impl SpeedMode {
    /// Parses `"hevc:1280x720@60"` (codec `h264`, `hevc` or `av1`); the
    /// size and rate must be valid encoder settings.
    pub fn parse(spec: &str) -> Result<SpeedMode, String> {
        let bad = || format!("encoder speed mode {spec:?} is not CODEC:WxH@FPS");
        let (codec, rest) = spec.split_once(':').ok_or_else(bad)?;
        let codec = match codec {
            "h264" => Codec::H264,
            "hevc" => Codec::Hevc,
            "av1" => Codec::Av1,
            _ => {
                return Err(format!(
                    "unknown codec {codec:?}: expected h264, hevc or av1"
                ))
            }
        };
        let (size, fps) = rest.split_once('@').ok_or_else(bad)?;
        let (width, height) = size.split_once('x').ok_or_else(bad)?;
        let number = |text: &str| text.parse::<u32>().map_err(|_| bad());
        let mode = SpeedMode {
            codec,
            width: number(width)?,
            height: number(height)?,
            fps: number(fps)?,
        };
        mode.settings()
            .validate()
            .map_err(|e| format!("{spec}: {e}"))?;
        Ok(mode)
    }

    /// The settings a session asking for this mode opens its encoder with.
    pub fn settings(&self) -> EncoderSettings {
        EncoderSettings::new(
            self.codec,
            self.width,
            self.height,
            self.fps,
            bench_kbps(self.width, self.height, self.fps),
        )
    }
}

/// The bit rate a mode is measured at (see [`REFERENCE_KBPS`]), at least
/// 1 Mbit/s.
pub fn bench_kbps(width: u32, height: u32, fps: u32) -> u32 {
    let pixel_rate = u64::from(width) * u64::from(height) * u64::from(fps);
    let kbps = REFERENCE_KBPS * pixel_rate / REFERENCE_PIXEL_RATE;
    u32::try_from(kbps.clamp(1000, u64::from(super::video::MAX_BITRATE_KBPS))).unwrap_or(1000)
}

/// What one measurement found.
#[derive(Debug, Clone, PartialEq)]
pub struct SpeedReport {
    pub mode: SpeedMode,
    /// libavcodec name of the encoder a session would get.
    pub encoder: String,
    pub backend: super::Backend,
    /// Its speed preset ([`super::Speed::Auto`] resolved).
    pub speed: super::Speed,
    /// Packets per second when frames are handed over back to back.
    pub throughput_fps: f64,
    /// Packets per second at the requested pace.
    pub paced_fps: f64,
    /// Due → packet, paced phase, milliseconds.
    pub latency_p50_ms: f64,
    pub latency_p90_ms: f64,
    pub latency_max_ms: f64,
    /// Most frames inside the encoder after a call, paced phase.
    pub frames_held: usize,
    /// Process CPU time per frame over the throughput phase: less sensitive
    /// to other load on the machine than the wall-clock figures.
    pub cpu_ms_per_frame: f64,
    /// A phase hit [`PHASE_BUDGET`] before its last frame.
    pub truncated: bool,
}

impl SpeedReport {
    pub fn to_json(&self) -> String {
        let m = &self.mode;
        format!(
            "{{\"codec\":\"{}\",\"width\":{},\"height\":{},\"fps\":{},\"encoder\":{},\"backend\":\"{}\",\
             \"speed\":\"{}\",\"throughput_fps\":{:.1},\"paced_fps\":{:.1},\"latency_ms\":{{\"p50\":{:.2},\
             \"p90\":{:.2},\"max\":{:.2}}},\"frames_held\":{},\"cpu_ms_per_frame\":{:.2},\"frames\":{},\"truncated\":{}}}",
            m.codec.as_str(),
            m.width,
            m.height,
            m.fps,
            json::string(&self.encoder),
            self.backend.as_str(),
            self.speed.as_str(),
            self.throughput_fps,
            self.paced_fps,
            self.latency_p50_ms,
            self.latency_p90_ms,
            self.latency_max_ms,
            self.frames_held,
            self.cpu_ms_per_frame,
            WARMUP_FRAMES + THROUGHPUT_FRAMES + PACED_FRAMES,
            self.truncated
        )
    }
}

fn process_cpu_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid out-pointer for the duration of the call.
    unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// The `q`-quantile (0..=1) of sorted values; 0 for none.
fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let index = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

/// Packets per second from arrival instants: (n - 1) intervals over the
/// span from the first to the last; 0 with fewer than two.
fn rate(arrivals: &[Instant]) -> f64 {
    match (arrivals.first(), arrivals.last()) {
        (Some(first), Some(last)) if arrivals.len() > 1 => {
            let span = last.saturating_duration_since(*first).as_secs_f64();
            if span > 0.0 {
                (arrivals.len() - 1) as f64 / span
            } else {
                0.0
            }
        }
        _ => 0.0,
    }
}

struct Feeder {
    source: SyntheticSource,
    frame: Frame,
    next_index: u64,
}

impl Feeder {
    /// Renders the next frame and hands it to `encoder`; returns whether a
    /// packet came back (into `out`).
    fn feed(&mut self, encoder: &mut VideoEncoder, out: &mut EncodedFrame) -> Result<bool, String> {
        self.source.render(self.next_index, 0, &mut self.frame);
        self.next_index += 1;
        encoder
            .encode_into(&self.frame, false, out)
            .map_err(|e| format!("{}: {e}", encoder.chosen()))
    }
}

/// Measures `mode` (see the module docs). Fails if no encoder of the codec
/// opens or encoding fails. Takes about (warm-up + throughput frames) /
/// throughput + paced frames / fps: 2 s at 720p60 on two cores.
pub fn measure(mode: &SpeedMode) -> Result<SpeedReport, String> {
    let settings = mode.settings();
    settings.validate().map_err(|e| e.to_string())?;
    let mut encoder = VideoEncoder::open(&settings).map_err(|e| e.to_string())?;
    let mut feeder = Feeder {
        source: SyntheticSource::new(mode.width, mode.height).map_err(|e| e.to_string())?,
        frame: Frame::new(),
        next_index: 0,
    };
    let mut out = EncodedFrame::default();
    let warmup_started = Instant::now();
    for _ in 0..WARMUP_FRAMES {
        feeder.feed(&mut encoder, &mut out)?;
        if warmup_started.elapsed() > PHASE_BUDGET {
            break;
        }
    }

    let cpu_started = process_cpu_ns();
    let throughput_started = Instant::now();
    let mut arrivals = Vec::with_capacity(THROUGHPUT_FRAMES as usize);
    let mut fed = 0u64;
    let mut truncated = false;
    while fed < THROUGHPUT_FRAMES {
        if feeder.feed(&mut encoder, &mut out)? {
            arrivals.push(Instant::now());
        }
        fed += 1;
        while encoder.take_ready(&mut out) {
            arrivals.push(Instant::now());
        }
        if throughput_started.elapsed() > PHASE_BUDGET {
            truncated = fed < THROUGHPUT_FRAMES;
            break;
        }
    }
    let cpu_ms_per_frame = (process_cpu_ns() - cpu_started) as f64 / 1e6 / fed as f64;
    let throughput_fps = rate(&arrivals);

    // Paced: frame k of this phase is due at start + k intervals.
    let interval = Duration::from_secs_f64(1.0 / f64::from(mode.fps));
    let first_index = feeder.next_index;
    let started = Instant::now();
    let due = |index: u64| started + interval * (index - first_index) as u32;
    let mut latencies = Vec::with_capacity(PACED_FRAMES as usize);
    let mut arrivals = Vec::with_capacity(PACED_FRAMES as usize);
    let mut frames_held = 0;
    let record = |out: &EncodedFrame, latencies: &mut Vec<f64>, arrivals: &mut Vec<Instant>| {
        let now = Instant::now();
        // Packets of warm-up or throughput frames still inside (SVT-AV1)
        // are counted as arrivals but have no due time of this phase.
        if out.frame_index >= first_index {
            latencies.push(
                now.saturating_duration_since(due(out.frame_index))
                    .as_secs_f64()
                    * 1e3,
            );
        }
        arrivals.push(now);
    };
    for k in 0..PACED_FRAMES {
        if started.elapsed() > PHASE_BUDGET {
            truncated = true;
            break;
        }
        let wait = due(first_index + k).saturating_duration_since(Instant::now());
        if !wait.is_zero() {
            std::thread::sleep(wait);
        }
        if feeder.feed(&mut encoder, &mut out)? {
            record(&out, &mut latencies, &mut arrivals);
        }
        while encoder.take_ready(&mut out) {
            record(&out, &mut latencies, &mut arrivals);
        }
        frames_held = frames_held.max(encoder.frames_in_encoder());
    }
    // Frames still inside at the end never arrived within the phase: count
    // them as having waited until now, so holding frames back is not free.
    let still_inside = feeder.next_index - encoder.frames_in_encoder() as u64;
    for index in still_inside.max(first_index)..feeder.next_index {
        latencies.push(
            Instant::now()
                .saturating_duration_since(due(index))
                .as_secs_f64()
                * 1e3,
        );
    }
    latencies.sort_by(f64::total_cmp);

    Ok(SpeedReport {
        mode: *mode,
        encoder: encoder.chosen().to_string(),
        backend: encoder.backend(),
        speed: encoder.speed(),
        throughput_fps,
        paced_fps: rate(&arrivals),
        latency_p50_ms: quantile(&latencies, 0.5),
        latency_p90_ms: quantile(&latencies, 0.9),
        latency_max_ms: quantile(&latencies, 1.0),
        frames_held,
        cpu_ms_per_frame,
        truncated,
    })
}

/// [`SpeedMode::parse`] then [`measure`], as JSON, on a thread of its own
/// like a session's encode thread (not on the caller's thread, which for
/// the host is a pooled worker of Deno's nonblocking FFI calls).
pub fn measure_json(spec: &str) -> Result<String, String> {
    let mode = SpeedMode::parse(spec)?;
    std::thread::Builder::new()
        .name("pf-encoder-speed".into())
        .spawn(move || measure(&mode).map(|r| r.to_json()))
        .map_err(|e| format!("spawn: {e}"))?
        .join()
        .map_err(|_| "the encoder speed measurement panicked".to_string())?
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    #[test]
    fn modes_parse_and_are_validated() {
        let mode = SpeedMode::parse("hevc:1280x720@60").unwrap();
        assert_eq!(
            mode,
            SpeedMode {
                codec: Codec::Hevc,
                width: 1280,
                height: 720,
                fps: 60
            }
        );
        assert_eq!(
            SpeedMode::parse("av1:1920x1080@30").unwrap().codec,
            Codec::Av1
        );
        for bad in [
            "",
            "hevc",
            "hevc:1280x720",
            "hevc:1280@60",
            "vp9:1280x720@60",
            "h264:1281x720@60",
            "h264:1280x720@0",
            "h264:1280x720@241",
            "h264:-1x720@60",
            "h264:1280x720@60x",
        ] {
            assert!(SpeedMode::parse(bad).is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn bitrate_scales_with_pixel_rate() {
        assert_eq!(bench_kbps(1280, 720, 60), 10_000);
        assert_eq!(bench_kbps(1920, 1080, 60), 22_500);
        assert_eq!(bench_kbps(1280, 720, 30), 5_000);
        assert_eq!(bench_kbps(320, 240, 30), 1000, "floor");
    }

    #[test]
    fn quantiles_and_rates() {
        assert_eq!(quantile(&[], 0.5), 0.0);
        let sorted = [1.0, 2.0, 3.0, 4.0, 5.0];
        assert_eq!(quantile(&sorted, 0.5), 3.0);
        assert_eq!(quantile(&sorted, 1.0), 5.0);
        assert_eq!(quantile(&sorted, 0.0), 1.0);
        let t = Instant::now();
        assert_eq!(rate(&[t]), 0.0);
        let ten_per_second: Vec<Instant> = (0..11)
            .map(|i| t + Duration::from_millis(100 * i))
            .collect();
        assert!((rate(&ten_per_second) - 10.0).abs() < 1e-9);
    }

    /// A real (small) measurement: x264 at 320x240@30 keeps up on any
    /// machine that runs these tests, and the report is well-formed.
    #[test]
    fn x264_small_mode_is_measured() {
        let report = measure(&SpeedMode::parse("h264:320x240@30").unwrap()).unwrap();
        assert_eq!(report.encoder, "libx264");
        assert_eq!(report.speed, super::super::Speed::Fast);
        assert!(report.throughput_fps > 0.0);
        assert!(report.paced_fps > 0.0);
        assert!(report.latency_p50_ms <= report.latency_p90_ms);
        assert!(report.latency_p90_ms <= report.latency_max_ms);
        assert_eq!(
            report.frames_held, 0,
            "x264 zerolatency returns every frame at once"
        );
        let v: Value = serde_json::from_str(&report.to_json()).unwrap();
        assert_eq!(v["codec"], "h264");
        assert_eq!(v["encoder"], "libx264");
        assert_eq!(v["backend"], "software");
        assert_eq!(v["speed"], "fast");
        assert_eq!(v["width"], 320);
        assert!(v["latency_ms"]["p90"].as_f64().unwrap() > 0.0);
        assert_eq!(
            v["frames"],
            WARMUP_FRAMES + THROUGHPUT_FRAMES + PACED_FRAMES
        );
        assert_eq!(v["truncated"], report.truncated);
    }

    #[test]
    fn svt_av1_reports_the_frames_it_holds() {
        let report = measure(&SpeedMode::parse("av1:320x240@30").unwrap()).unwrap();
        assert_eq!(report.encoder, "libsvtav1");
        assert_eq!(report.speed, super::super::Speed::Fastest);
        assert!(report.frames_held >= 1, "{report:?}");
    }
}
