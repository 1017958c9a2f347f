//! Per-encoder low-latency configuration: for one [`Candidate`] and the
//! requested stream ([`EncoderSettings`]), which input pixel format it gets,
//! which private options, which colour description, how its rate control is
//! set up and how a bitrate change reaches it — or why it cannot serve the
//! request at all.
//!
//! Everything here is pure policy (no libav calls except the pix_fmts
//! check), so it is unit-tested without opening encoders. The common rules:
//!
//! * **No B-frames, no lookahead, zero-latency tuning**: one frame in, one
//!   packet out.
//! * **Infinite GOP, IDR on request**: the only key frames are the first and
//!   the ones the caller forces (scene-cut detection off), and a forced key
//!   frame is a real IDR / AV1 key frame (closed GOP, `forced-idr`).
//! * **In-band parameter sets**: no global header; SPS/PPS (and VPS), or the
//!   AV1 sequence header, precede every key frame.
//! * **CBR with a one-frame VBV**: `maxrate = bitrate`, `bufsize =
//!   bitrate / fps`. A frame then never holds more bits than the link
//!   carries in one frame interval, so no frame — an IDR or a scene change
//!   included — takes longer than one frame time to send and queueing delay
//!   stays bounded by one frame. A larger buffer would smooth quality, but
//!   it is spent exactly on the big frames, which is when latency hurts.

use super::libav::{self, AvErrorKind, ColorSpec, HwPath};
use super::probe::Candidate;
use super::video::EncoderSettings;
use super::Backend;

/// Bits per sample of the encoded stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum BitDepth {
    #[default]
    Eight,
    Ten,
}

impl BitDepth {
    /// 8 or 10.
    pub fn bits(self) -> u32 {
        match self {
            BitDepth::Eight => 8,
            BitDepth::Ten => 10,
        }
    }
}

/// Chroma subsampling of the encoded stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Chroma {
    /// Half-resolution chroma both ways (what every decoder plays).
    #[default]
    Yuv420,
    /// Full-resolution chroma (sharp text; needs High 4:4:4 / Rext / AV1
    /// High profile decoders).
    Yuv444,
}

/// Encoder speed/quality trade-off, mapped to each encoder's preset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Speed {
    /// Chosen per encoder by [`resolve_speed`]: the best quality that
    /// still keeps up with a live stream on a small CPU.
    #[default]
    Auto,
    /// x264/x265 ultrafast, nvenc p1, SVT-AV1 preset 12, libaom cpu-used 10.
    Fastest,
    /// x264/x265 superfast, nvenc p2, SVT-AV1 11, libaom 9.
    Faster,
    /// x264/x265 veryfast, nvenc p3, SVT-AV1 10, libaom 8.
    Fast,
    /// x264/x265 faster, nvenc p4, SVT-AV1 9, libaom 7.
    Balanced,
}

/// Pixels per second per core up to which libx264 keeps `veryfast`: 1080p60
/// on two cores, where it measured encode p50 10.5 ms (docs/perf.md) —
/// about 12 ns of CPU per pixel, so this rate keeps each core about 75 %
/// busy. Above it (1440p60 or 4K on two cores, 1080p60 on one) the session
/// falls back to `ultrafast`, about half the CPU per pixel.
pub const X264_VERYFAST_PIXELS_PER_CORE: u64 = 1920 * 1080 * 60 / 2;

/// What [`Speed::Auto`] means for an encoder serving `settings` on a
/// machine with `cores` CPUs.
///
/// Measured at 1280x720@60 on a shared 2-core EPYC (docs/perf.md): x264
/// `veryfast` encodes 70 fps while x265 `veryfast` manages 15–24 fps and
/// `ultrafast` 50–60 fps; SVT-AV1 reaches 33 fps at preset 10 and 61 at 12.
/// So libx264 keeps `veryfast` while the mode's pixel rate fits
/// [`X264_VERYFAST_PIXELS_PER_CORE`], the hardware encoders keep their
/// `Fast` presets (they have headroom), and the CPU encoders of HEVC and AV1
/// run at their fastest: on a CPU they only just keep up even there, and
/// one that is fast enough for more has cores to spare for the rest of the
/// host.
pub fn resolve_speed(candidate: &Candidate, settings: &EncoderSettings, cores: usize) -> Speed {
    let pixel_rate =
        u64::from(settings.width) * u64::from(settings.height) * u64::from(settings.fps);
    let x264_budget = X264_VERYFAST_PIXELS_PER_CORE * cores.max(1) as u64;
    match (settings.speed, candidate.backend, candidate.encoder) {
        (Speed::Auto, Backend::Software, "libx264") if pixel_rate <= x264_budget => Speed::Fast,
        (Speed::Auto, Backend::Software, _) => Speed::Fastest,
        (Speed::Auto, _, _) => Speed::Fast,
        (speed, _, _) => speed,
    }
}

/// CPUs this process may run on (1 if unknown).
pub fn available_cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

impl Speed {
    /// Name used in JSON and logs (`"auto"`, `"fastest"`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Speed::Auto => "auto",
            Speed::Fastest => "fastest",
            Speed::Faster => "faster",
            Speed::Fast => "fast",
            Speed::Balanced => "balanced",
        }
    }

    fn x26x_preset(self) -> &'static str {
        match self {
            Speed::Fastest => "ultrafast",
            Speed::Faster => "superfast",
            Speed::Fast | Speed::Auto => "veryfast",
            Speed::Balanced => "faster",
        }
    }

    fn nvenc_preset(self) -> &'static str {
        match self {
            Speed::Fastest => "p1",
            Speed::Faster => "p2",
            Speed::Fast | Speed::Auto => "p3",
            Speed::Balanced => "p4",
        }
    }

    /// SVT-AV1 1.4 presets run 0 (slowest) ..= 13; 12 is the fastest meant
    /// for real use: 13 was 13 % faster at 720p on two cores, but SVT warns
    /// it exists only for debugging and convex-hull encoding.
    fn svt_preset(self) -> &'static str {
        match self {
            Speed::Fastest => "12",
            Speed::Faster => "11",
            Speed::Fast | Speed::Auto => "10",
            Speed::Balanced => "9",
        }
    }

    /// libaom's realtime mode accepts cpu-used 0 ..= 10 (libaom 3.6).
    fn aom_cpu_used(self) -> &'static str {
        match self {
            Speed::Fastest => "10",
            Speed::Faster => "9",
            Speed::Fast | Speed::Auto => "8",
            Speed::Balanced => "7",
        }
    }
}

/// How [`super::VideoEncoder::set_bitrate`] reaches an encoder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BitrateChange {
    /// The running encoder re-reads the rate fields before its next frame
    /// (libx264 via x264_encoder_reconfig; nvenc via
    /// nvEncReconfigureEncoder, which also forces an IDR).
    Reconfigured,
    /// The encoder is drained, reopened at the new rate and the next frame
    /// is forced to be an IDR.
    Reopened,
}

/// How a key frame on request is produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyFrameRequest {
    /// The frame is sent as a forced I frame, which the encoder turns into
    /// an IDR / key frame (forced-idr, closed GOP).
    Forced,
    /// The encoder cannot force key frames in its low-delay mode (SVT-AV1
    /// 1.4 allows it only with random-access CRF/CQP), so it is drained and
    /// reopened; a fresh encoder starts with a key frame. Costs an encoder
    /// open/close (about 0.1 s at 1080p on two cores).
    Reopen,
}

/// Which [`KeyFrameRequest`] path an encoder takes.
pub fn key_frame_request(candidate: &Candidate) -> KeyFrameRequest {
    match candidate.encoder {
        "libsvtav1" => KeyFrameRequest::Reopen,
        _ => KeyFrameRequest::Forced,
    }
}

/// GOP length handed to libavcodec: effectively infinite (i32::MAX frames
/// is over a year at 60 fps); each encoder also gets its own "infinite"
/// switch where it has one.
pub const INFINITE_GOP: u32 = i32::MAX as u32;

/// Rate-control numbers of one bitrate (all bits or bits per second).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateControl {
    pub bit_rate: u64,
    pub max_bit_rate: u64,
    /// Equal to the bit rate: libaom switches to CBR only when min = max =
    /// target; the other encoders ignore it.
    pub min_bit_rate: u64,
    /// One frame's worth of bits (see the module docs).
    pub buffer_bits: u64,
}

impl RateControl {
    /// CBR at `kbps` with a one-frame VBV at `fps`.
    pub fn cbr(kbps: u32, fps: u32) -> RateControl {
        let bit_rate = u64::from(kbps) * 1000;
        RateControl {
            bit_rate,
            max_bit_rate: bit_rate,
            min_bit_rate: bit_rate,
            buffer_bits: bit_rate / u64::from(fps.max(1)),
        }
    }
}

/// Colour description for a frame height: BT.709 for HD (720 lines and
/// up), BT.601 below. It is signalled in the stream either way; the split
/// matches what players assume when a stream does not say, so even a client
/// that ignores the signalling shows the right colours.
pub fn color_for_height(height: u32) -> ColorSpec {
    const HD_MIN_HEIGHT: u32 = 720;
    if height >= HD_MIN_HEIGHT {
        ColorSpec::Bt709
    } else {
        ColorSpec::Bt601
    }
}

/// Why a candidate cannot serve a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejection {
    /// Not built into this libavcodec.
    NotBuilt(String),
    /// Built, but the requested format/feature is not available with it.
    Unsupported(String),
}

/// How to open one candidate for a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// libav name of the input pixel format (system memory; for VAAPI the
    /// surfaces' format).
    pub pix_fmt: &'static str,
    pub hw: HwPath,
    pub color: ColorSpec,
    /// Private option sets to try in order (VAAPI: low-power first, then
    /// the normal entrypoint); every other encoder has exactly one.
    pub attempts: Vec<Vec<(String, String)>>,
    pub bitrate_change: BitrateChange,
    pub key_frames: KeyFrameRequest,
}

/// The input pixel format a backend gets for a bit depth and chroma.
fn input_format(
    backend: Backend,
    bit_depth: BitDepth,
    chroma: Chroma,
) -> Result<&'static str, String> {
    use BitDepth::{Eight, Ten};
    use Chroma::{Yuv420, Yuv444};
    Ok(match (backend, bit_depth, chroma) {
        (Backend::Software, Eight, Yuv420) => "yuv420p",
        (Backend::Software, Ten, Yuv420) => "yuv420p10le",
        (Backend::Software, Eight, Yuv444) => "yuv444p",
        (Backend::Software, Ten, Yuv444) => "yuv444p10le",
        // NVENC's native surface layouts; 4:4:4 has no semi-planar form.
        (Backend::Nvenc, Eight, Yuv420) => "nv12",
        (Backend::Nvenc, Ten, Yuv420) => "p010le",
        (Backend::Nvenc, Eight, Yuv444) => "yuv444p",
        (Backend::Nvenc, Ten, Yuv444) => "yuv444p16le",
        (Backend::Vaapi, Eight, Yuv420) => "nv12",
        (Backend::Vaapi, Ten, Yuv420) => "p010le",
        (Backend::Vaapi, _, Yuv444) => {
            return Err(
                "4:4:4 is not available over VAAPI here: frames are uploaded as NV12/P010 \
                 (4:2:0) surfaces only"
                    .into(),
            )
        }
    })
}

fn describe(bit_depth: BitDepth, chroma: Chroma) -> String {
    let chroma = match chroma {
        Chroma::Yuv420 => "4:2:0",
        Chroma::Yuv444 => "4:4:4",
    };
    format!("{chroma} {}-bit", bit_depth.bits())
}

/// Decides how `candidate` would serve `settings`, or why it cannot.
pub fn plan(candidate: &Candidate, settings: &EncoderSettings) -> Result<Plan, Rejection> {
    let encoder = candidate.encoder;
    let wanted = describe(settings.bit_depth, settings.chroma);
    let pix_fmt = input_format(candidate.backend, settings.bit_depth, settings.chroma)
        .map_err(|reason| Rejection::Unsupported(format!("{encoder}: {reason}")))?;
    // VAAPI encoders list only the opaque "vaapi" format; the surface
    // format is ours to choose (above).
    let listed = match candidate.backend {
        Backend::Vaapi => "vaapi",
        Backend::Nvenc | Backend::Software => pix_fmt,
    };
    match libav::encoder_accepts_pix_fmt(encoder, listed) {
        Ok(true) => {}
        Ok(false) => {
            return Err(Rejection::Unsupported(format!(
                "{encoder} does not accept {pix_fmt} input ({wanted})"
            )))
        }
        Err(e) if e.kind == AvErrorKind::NotBuilt => {
            return Err(Rejection::NotBuilt(format!("{encoder}: {}", e.message)))
        }
        Err(e) => return Err(Rejection::Unsupported(format!("{encoder}: {}", e.message))),
    }
    if settings.cbr_filler && encoder != "libx264" {
        return Err(Rejection::Unsupported(format!(
            "{encoder}: cbr_filler needs filler-data padding to a constant frame size, which \
             only libx264 (nal-hrd=cbr) provides in this libavcodec"
        )));
    }
    Ok(Plan {
        pix_fmt,
        hw: match candidate.backend {
            Backend::Vaapi => HwPath::Vaapi {
                device: libav::vaapi_device(),
            },
            Backend::Nvenc | Backend::Software => HwPath::None,
        },
        color: color_for_height(settings.height),
        attempts: option_sets(candidate, settings),
        bitrate_change: bitrate_change(candidate, settings),
        key_frames: key_frame_request(candidate),
    })
}

/// Which bitrate-change path an encoder takes (see [`BitrateChange`]).
///
/// libx264 in FFmpeg 5.1 compares `bit_rate`, `rc_max_rate` and
/// `rc_buffer_size` with its parameters before every frame and calls
/// x264_encoder_reconfig on a change — except that x264 refuses to change
/// VBV parameters while NAL HRD (cbr_filler) is signalled, so that case
/// reopens. nvenc does the same via nvEncReconfigureEncoder on GPUs that
/// report dynamic bitrate support (all NVENC generations FFmpeg 5.1 runs
/// on). libx265, SVT-AV1, libaom and VAAPI read rate control only at open.
pub fn bitrate_change(candidate: &Candidate, settings: &EncoderSettings) -> BitrateChange {
    match candidate.backend {
        Backend::Software if candidate.encoder == "libx264" && !settings.cbr_filler => {
            BitrateChange::Reconfigured
        }
        Backend::Nvenc => BitrateChange::Reconfigured,
        _ => BitrateChange::Reopened,
    }
}

fn opts(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The private option sets for a candidate, in the order to try them.
pub fn option_sets(
    candidate: &Candidate,
    settings: &EncoderSettings,
) -> Vec<Vec<(String, String)>> {
    let speed = resolve_speed(candidate, settings, available_cores());
    match candidate.encoder {
        "libx264" => {
            let mut set = opts(&[
                ("preset", speed.x26x_preset()),
                ("tune", "zerolatency"),
                // A forced I frame becomes an IDR, not a recovery point.
                ("forced-idr", "1"),
                // No key frames of its own at scene cuts.
                ("sc_threshold", "0"),
                ("x264-params", "keyint=infinite:repeat-headers=1"),
            ]);
            if settings.cbr_filler {
                // HRD signalling in CBR mode: x264 pads every frame with
                // filler data up to the constant rate.
                set.push(("nal-hrd".into(), "cbr".into()));
            }
            vec![set]
        }
        "libx265" => vec![opts(&[
            ("preset", speed.x26x_preset()),
            ("tune", "zerolatency"),
            ("forced-idr", "1"),
            // keyint=-1 is x265's infinite GOP; info=0 drops the encoder
            // settings SEI; x265 logs to stderr itself, so keep it quiet.
            // zerolatency already implies the next three; they are spelled
            // out because each is a latency guarantee: one frame thread
            // (frame-threads=2 measured 2 frames held, 270 ms p50 at 720p
            // on two cores), no B-frames, no lookahead. The cores are used
            // by wavefront (row) parallelism inside the frame instead, on
            // x265's default pool of one thread per core.
            (
                "x265-params",
                "keyint=-1:scenecut=0:repeat-headers=1:info=0:aud=0:log-level=error:\
                 frame-threads=1:bframes=0:rc-lookahead=0",
            ),
        ])],
        "libsvtav1" => vec![opts(&[
            ("preset", speed.svt_preset()),
            // Low-delay prediction (no hierarchical B/ALTREF), no lookahead,
            // no scene-change key frames, key frames only on request; rc=2
            // is CBR (see `rate_for`: libav leaves it at VBR here). The
            // level of parallelism (`lp`) stays automatic: pinned to 1 or 2
            // it measured 47 and 27 fps against 61 at 720p on two cores.
            (
                "svtav1-params",
                "pred-struct=1:rc=2:lookahead=0:scd=0:keyint=-1:enable-overlays=0",
            ),
        ])],
        "libaom-av1" => vec![opts(&[
            ("usage", "realtime"),
            ("cpu-used", speed.aom_cpu_used()),
            ("lag-in-frames", "0"),
            ("row-mt", "1"),
        ])],
        _ if candidate.backend == Backend::Nvenc => {
            vec![opts(&[
                ("preset", speed.nvenc_preset()),
                ("tune", "ll"),
                ("zerolatency", "1"),
                ("delay", "0"),
                ("rc", "cbr"),
                ("forced-idr", "1"),
                ("no-scenecut", "1"),
            ])]
        }
        _ if candidate.backend == Backend::Vaapi => {
            // async_depth=1: hand each packet back before taking the next
            // frame (the default 2 keeps one frame in flight).
            let normal = opts(&[("rc_mode", "CBR"), ("async_depth", "1")]);
            let mut low_power = opts(&[("low_power", "1")]);
            low_power.extend(normal.iter().cloned());
            vec![low_power, normal]
        }
        _ => vec![Vec::new()],
    }
}

/// SVT-AV1 1.4 accepts VBV sizes of 20 ms and up only.
const SVT_MIN_BUFFER_MS: u64 = 20;

/// The rate-control numbers an encoder gets for `rate`, where it cannot
/// take them as they are.
///
/// SVT-AV1: libav 5.1 passes `rc_max_rate` on as SVT's maximum bit rate,
/// which SVT 1.4 rejects unless it exceeds the target, so the maximum is
/// left unset and CBR is requested through `svtav1-params` (`rc=2`); and
/// its VBV cannot be shorter than 20 ms (one frame is 16.7 ms at 60 fps).
pub fn rate_for(candidate: &Candidate, rate: RateControl) -> RateControl {
    match candidate.encoder {
        "libsvtav1" => RateControl {
            max_bit_rate: 0,
            min_bit_rate: 0,
            buffer_bits: rate
                .buffer_bits
                .max(rate.bit_rate * SVT_MIN_BUFFER_MS / 1000),
            ..rate
        },
        _ => rate,
    }
}

/// libav open settings for one attempt of a plan at a rate.
pub fn open_settings(
    candidate: &Candidate,
    plan: &Plan,
    attempt: usize,
    settings: &EncoderSettings,
    rate: RateControl,
) -> libav::EncoderSettings {
    let rate = rate_for(candidate, rate);
    libav::EncoderSettings {
        encoder: candidate.encoder.to_string(),
        width: settings.width,
        height: settings.height,
        fps: settings.fps,
        gop_size: INFINITE_GOP,
        max_b_frames: 0,
        bit_rate: rate.bit_rate,
        hw: plan.hw.clone(),
        options: plan.attempts.get(attempt).cloned().unwrap_or_default(),
        sw_format: Some(plan.pix_fmt.to_string()),
        color: plan.color,
        closed_gop: true,
        max_bit_rate: rate.max_bit_rate,
        min_bit_rate: rate.min_bit_rate,
        buffer_bits: rate.buffer_bits,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encode::probe::CANDIDATES;
    use crate::encode::video::EncoderPreference;
    use crate::encode::Codec;

    fn settings(codec: Codec) -> EncoderSettings {
        EncoderSettings::new(codec, 1280, 720, 60, 6000)
    }

    fn candidate(name: &str) -> Candidate {
        *CANDIDATES.iter().find(|c| c.encoder == name).unwrap()
    }

    fn option<'a>(set: &'a [(String, String)], key: &str) -> Option<&'a str> {
        set.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    #[test]
    fn one_frame_vbv_at_the_target_rate() {
        let rc = RateControl::cbr(6000, 60);
        assert_eq!(rc.bit_rate, 6_000_000);
        assert_eq!(rc.max_bit_rate, 6_000_000);
        assert_eq!(rc.min_bit_rate, 6_000_000);
        assert_eq!(rc.buffer_bits, 100_000);
        assert_eq!(RateControl::cbr(2000, 30).buffer_bits, 66_666);
    }

    #[test]
    fn hd_is_bt709_and_sd_is_bt601() {
        assert_eq!(color_for_height(720), ColorSpec::Bt709);
        assert_eq!(color_for_height(2160), ColorSpec::Bt709);
        assert_eq!(color_for_height(719), ColorSpec::Bt601);
        assert_eq!(color_for_height(360), ColorSpec::Bt601);
    }

    #[test]
    fn input_formats_per_backend() {
        let mut s = settings(Codec::H264);
        let p = plan(&candidate("libx264"), &s).unwrap();
        assert_eq!((p.pix_fmt, p.color), ("yuv420p", ColorSpec::Bt709));
        s.bit_depth = BitDepth::Ten;
        assert_eq!(
            plan(&candidate("libx264"), &s).unwrap().pix_fmt,
            "yuv420p10le"
        );
        assert_eq!(
            plan(&candidate("h264_nvenc"), &s).unwrap().pix_fmt,
            "p010le"
        );
        s.bit_depth = BitDepth::Eight;
        assert_eq!(plan(&candidate("h264_nvenc"), &s).unwrap().pix_fmt, "nv12");
        s.chroma = Chroma::Yuv444;
        assert_eq!(plan(&candidate("libx264"), &s).unwrap().pix_fmt, "yuv444p");
        match plan(&candidate("h264_vaapi"), &s) {
            Err(Rejection::Unsupported(r)) => assert!(r.contains("NV12/P010"), "{r}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn pix_fmts_lists_are_checked() {
        let mut s = settings(Codec::Av1);
        s.chroma = Chroma::Yuv444;
        match plan(&candidate("libsvtav1"), &s) {
            Err(Rejection::Unsupported(r)) => {
                assert_eq!(r, "libsvtav1 does not accept yuv444p input (4:4:4 8-bit)")
            }
            other => panic!("{other:?}"),
        }
        assert!(plan(&candidate("libaom-av1"), &s).is_ok());
        match plan(&candidate("av1_nvenc"), &s) {
            Err(Rejection::NotBuilt(r)) => assert!(r.starts_with("av1_nvenc: "), "{r}"),
            Ok(_) => {} // a newer libavcodec with av1_nvenc
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn cbr_filler_is_only_offered_by_libx264() {
        let mut s = settings(Codec::H264);
        s.cbr_filler = true;
        let p = plan(&candidate("libx264"), &s).unwrap();
        assert_eq!(option(&p.attempts[0], "nal-hrd"), Some("cbr"));
        assert_eq!(p.bitrate_change, BitrateChange::Reopened);
        for name in ["h264_nvenc", "h264_vaapi"] {
            assert!(
                matches!(plan(&candidate(name), &s), Err(Rejection::Unsupported(_))),
                "{name}"
            );
        }
        s.codec = Codec::Hevc;
        assert!(matches!(
            plan(&candidate("libx265"), &s),
            Err(Rejection::Unsupported(_))
        ));
    }

    #[test]
    fn low_latency_options_per_encoder() {
        let mut s = settings(Codec::H264);
        s.speed = Speed::Fastest;
        let x264 = &option_sets(&candidate("libx264"), &s)[0];
        assert_eq!(option(x264, "preset"), Some("ultrafast"));
        assert_eq!(option(x264, "tune"), Some("zerolatency"));
        assert_eq!(option(x264, "forced-idr"), Some("1"));
        assert_eq!(option(x264, "nal-hrd"), None);
        assert!(option(x264, "x264-params")
            .unwrap()
            .contains("keyint=infinite"));

        let x265 = &option_sets(&candidate("libx265"), &s)[0];
        let params = option(x265, "x265-params").unwrap();
        assert!(params.contains("keyint=-1") && params.contains("repeat-headers=1"));
        for latency in ["frame-threads=1", "bframes=0", "rc-lookahead=0"] {
            assert!(params.contains(latency), "{latency}: {params}");
        }
        assert_eq!(option(x265, "tune"), Some("zerolatency"));

        let nvenc = &option_sets(&candidate("hevc_nvenc"), &s)[0];
        for (k, v) in [
            ("preset", "p1"),
            ("tune", "ll"),
            ("zerolatency", "1"),
            ("delay", "0"),
            ("rc", "cbr"),
            ("forced-idr", "1"),
        ] {
            assert_eq!(option(nvenc, k), Some(v), "{k}");
        }

        let vaapi = option_sets(&candidate("h264_vaapi"), &s);
        assert_eq!(vaapi.len(), 2);
        assert_eq!(option(&vaapi[0], "low_power"), Some("1"));
        assert_eq!(option(&vaapi[1], "low_power"), None);
        assert_eq!(option(&vaapi[1], "rc_mode"), Some("CBR"));

        let svt = &option_sets(&candidate("libsvtav1"), &s)[0];
        assert_eq!(option(svt, "preset"), Some("12"));
        assert!(option(svt, "svtav1-params")
            .unwrap()
            .contains("pred-struct=1"));
        let aom = &option_sets(&candidate("libaom-av1"), &s)[0];
        assert_eq!(option(aom, "lag-in-frames"), Some("0"));
        assert_eq!(option(aom, "cpu-used"), Some("10"));
    }

    #[test]
    fn auto_speed_is_fastest_for_the_slow_cpu_encoders_only() {
        let s720 = settings(Codec::H264);
        let resolved = |name| resolve_speed(&candidate(name), &s720, 2);
        assert_eq!(resolved("libx264"), Speed::Fast);
        for name in ["libx265", "libsvtav1", "libaom-av1"] {
            assert_eq!(resolved(name), Speed::Fastest, "{name}");
        }
        for name in ["h264_nvenc", "hevc_nvenc", "hevc_vaapi", "av1_vaapi"] {
            assert_eq!(resolved(name), Speed::Fast, "{name}");
        }
        let mut balanced = settings(Codec::Hevc);
        balanced.speed = Speed::Balanced;
        assert_eq!(
            resolve_speed(&candidate("libx265"), &balanced, 2),
            Speed::Balanced,
            "an explicit speed is kept"
        );
        let mode = |w, h, fps| {
            let mut s = settings(Codec::H264);
            (s.width, s.height, s.fps) = (w, h, fps);
            s
        };
        let x264 = candidate("libx264");
        assert_eq!(resolve_speed(&x264, &mode(1920, 1080, 60), 2), Speed::Fast);
        assert_eq!(
            resolve_speed(&x264, &mode(1920, 1080, 60), 1),
            Speed::Fastest
        );
        assert_eq!(
            resolve_speed(&x264, &mode(2560, 1440, 60), 2),
            Speed::Fastest
        );
        assert_eq!(resolve_speed(&x264, &mode(2560, 1440, 60), 4), Speed::Fast);
        assert_eq!(
            resolve_speed(&x264, &mode(3840, 2160, 60), 0),
            Speed::Fastest
        );
        let s = settings(Codec::Hevc);
        assert_eq!(s.speed, Speed::Auto);
        let x265 = &option_sets(&candidate("libx265"), &s)[0];
        assert_eq!(option(x265, "preset"), Some("ultrafast"));
        let svt = &option_sets(&candidate("libsvtav1"), &settings(Codec::Av1))[0];
        assert_eq!(option(svt, "preset"), Some("12"));
        let x264 = &option_sets(&candidate("libx264"), &settings(Codec::H264))[0];
        assert_eq!(option(x264, "preset"), Some("veryfast"));
    }

    #[test]
    fn svt_gets_cbr_without_a_maximum_and_at_least_20_ms_of_vbv() {
        let rc = rate_for(&candidate("libsvtav1"), RateControl::cbr(6000, 60));
        assert_eq!(
            (rc.bit_rate, rc.max_bit_rate, rc.min_bit_rate),
            (6_000_000, 0, 0)
        );
        assert_eq!(rc.buffer_bits, 120_000);
        let rc = rate_for(&candidate("libsvtav1"), RateControl::cbr(6000, 30));
        assert_eq!(rc.buffer_bits, 200_000, "one frame at 30 fps is over 20 ms");
        let x264 = RateControl::cbr(6000, 60);
        assert_eq!(rate_for(&candidate("libx264"), x264), x264);
    }

    #[test]
    fn only_svt_needs_a_reopen_for_key_frames() {
        for c in CANDIDATES {
            let expected = if c.encoder == "libsvtav1" {
                KeyFrameRequest::Reopen
            } else {
                KeyFrameRequest::Forced
            };
            assert_eq!(key_frame_request(&c), expected, "{}", c.encoder);
        }
    }

    #[test]
    fn bitrate_paths() {
        let s = settings(Codec::H264);
        let path = |name| bitrate_change(&candidate(name), &s);
        assert_eq!(path("libx264"), BitrateChange::Reconfigured);
        assert_eq!(path("h264_nvenc"), BitrateChange::Reconfigured);
        assert_eq!(path("hevc_nvenc"), BitrateChange::Reconfigured);
        for name in [
            "h264_vaapi",
            "libx265",
            "libsvtav1",
            "libaom-av1",
            "hevc_vaapi",
        ] {
            assert_eq!(path(name), BitrateChange::Reopened, "{name}");
        }
    }

    #[test]
    fn open_settings_are_low_latency() {
        let mut s = settings(Codec::H264);
        s.preference = EncoderPreference::Software;
        let c = candidate("libx264");
        let p = plan(&c, &s).unwrap();
        let o = open_settings(&c, &p, 0, &s, RateControl::cbr(s.bitrate_kbps, s.fps));
        assert_eq!(o.max_b_frames, 0);
        assert_eq!(o.gop_size, INFINITE_GOP);
        assert!(o.closed_gop);
        assert_eq!(o.sw_format.as_deref(), Some("yuv420p"));
        assert_eq!((o.bit_rate, o.max_bit_rate), (6_000_000, 6_000_000));
        assert_eq!(o.buffer_bits, 100_000);
    }
}
