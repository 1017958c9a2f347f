//! Encoder probe: which H.264/HEVC/AV1 encoders can really be opened on this
//! machine at a given size, in preference order, each with a concrete reason
//! when it cannot.
//!
//! Every candidate is opened with avcodec_open2 using the low-latency
//! settings the streamer will use (60 fps, 8-bit 4:2:0, no B-frames, long
//! GOP, fast presets), made to encode one black frame, and closed again;
//! the most severe libav lines logged during a failed attempt are appended
//! to its reason. Safe to call on any
//! thread, any number of times.

use super::libav::{self, AvError, AvErrorKind, ColorSpec, Encoder, EncoderSettings, HwPath};
use super::libav_log::{self, CapturedLine};
use super::{Backend, Codec};
use crate::error::{Error, Result};
use crate::json;
use crate::log::Level;

/// Largest width or height accepted.
pub const MAX_DIMENSION: u32 = 16384;

/// Frame rate used for the probe (time base 1/60).
pub const PROBE_FPS: u32 = 60;

/// Key-frame interval: long, since the streamer requests key frames on
/// demand (one minute at 60 fps).
pub const LOW_LATENCY_GOP: u32 = 3600;

/// Bit rate for the probe: a plausible 1080p60 streaming rate.
pub const PROBE_BIT_RATE: u64 = 10_000_000;

/// How many captured libav lines a reason quotes at most.
const MAX_REASON_LINES: usize = 3;

/// One encoder the probe tries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Candidate {
    pub codec: Codec,
    pub backend: Backend,
    /// libavcodec encoder name.
    pub encoder: &'static str,
}

const fn candidate(codec: Codec, backend: Backend, encoder: &'static str) -> Candidate {
    Candidate {
        codec,
        backend,
        encoder,
    }
}

/// All candidates in preference order: per codec, hardware first.
pub const CANDIDATES: [Candidate; 10] = [
    candidate(Codec::H264, Backend::Nvenc, "h264_nvenc"),
    candidate(Codec::H264, Backend::Vaapi, "h264_vaapi"),
    candidate(Codec::H264, Backend::Software, "libx264"),
    candidate(Codec::Hevc, Backend::Nvenc, "hevc_nvenc"),
    candidate(Codec::Hevc, Backend::Vaapi, "hevc_vaapi"),
    candidate(Codec::Hevc, Backend::Software, "libx265"),
    candidate(Codec::Av1, Backend::Nvenc, "av1_nvenc"),
    candidate(Codec::Av1, Backend::Vaapi, "av1_vaapi"),
    candidate(Codec::Av1, Backend::Software, "libsvtav1"),
    candidate(Codec::Av1, Backend::Software, "libaom-av1"),
];

/// Outcome for one candidate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CandidateReport {
    pub candidate: Candidate,
    pub available: bool,
    /// `None` when available, else why not.
    pub reason: Option<String>,
}

/// Outcome of a whole probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeReport {
    pub width: u32,
    pub height: u32,
    /// One entry per [`CANDIDATES`] element, same order.
    pub encoders: Vec<CandidateReport>,
}

impl ProbeReport {
    /// The report as JSON:
    /// `{"width":W,"height":H,"encoders":[{"codec":..,"backend":..,"encoder":..,"available":..,"reason":..},..]}`.
    pub fn to_json(&self) -> String {
        let mut out = String::with_capacity(256 + 160 * self.encoders.len());
        out.push_str(&format!(
            "{{\"width\":{},\"height\":{},\"encoders\":[",
            self.width, self.height
        ));
        for (i, e) in self.encoders.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str("{\"codec\":");
            json::write_string(&mut out, e.candidate.codec.as_str());
            out.push_str(",\"backend\":");
            json::write_string(&mut out, e.candidate.backend.as_str());
            out.push_str(",\"encoder\":");
            json::write_string(&mut out, e.candidate.encoder);
            out.push_str(",\"available\":");
            out.push_str(if e.available { "true" } else { "false" });
            out.push_str(",\"reason\":");
            json::write_opt_string(&mut out, e.reason.as_deref());
            out.push('}');
        }
        out.push_str("]}");
        out
    }
}

/// Checks a probe/encode size: both dimensions even and in 2..=16384.
pub fn validate_size(width: u32, height: u32) -> Result<()> {
    for (name, value) in [("width", width), ("height", height)] {
        if value == 0 || value % 2 != 0 || value > MAX_DIMENSION {
            return Err(Error::invalid_argument(format!(
                "{name} {value} is invalid: must be even and between 2 and {MAX_DIMENSION}"
            )));
        }
    }
    Ok(())
}

/// Encoder private options for low-latency streaming.
pub fn low_latency_options(encoder: &str) -> Vec<(&'static str, &'static str)> {
    match encoder {
        "libx264" => vec![("preset", "veryfast"), ("tune", "zerolatency")],
        "libx265" => vec![
            ("preset", "ultrafast"),
            ("tune", "zerolatency"),
            ("x265-params", "log-level=error"),
        ],
        "libsvtav1" => vec![("preset", "12"), ("svtav1-params", "pred-struct=1:rc=2")],
        "libaom-av1" => vec![
            ("usage", "realtime"),
            ("cpu-used", "8"),
            ("lag-in-frames", "0"),
        ],
        e if e.ends_with("_nvenc") => {
            vec![("preset", "p1"), ("tune", "ll"), ("zerolatency", "1")]
        }
        _ => Vec::new(),
    }
}

/// The settings the probe opens `candidate` with.
pub fn probe_settings(candidate: &Candidate, width: u32, height: u32) -> EncoderSettings {
    EncoderSettings {
        encoder: candidate.encoder.to_string(),
        width,
        height,
        fps: PROBE_FPS,
        gop_size: LOW_LATENCY_GOP,
        max_b_frames: 0,
        bit_rate: PROBE_BIT_RATE,
        hw: match candidate.backend {
            Backend::Vaapi => HwPath::Vaapi {
                device: libav::vaapi_device(),
            },
            Backend::Nvenc | Backend::Software => HwPath::None,
        },
        options: low_latency_options(candidate.encoder)
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        sw_format: None,
        color: ColorSpec::Unspecified,
        closed_gop: false,
        max_bit_rate: 0,
        min_bit_rate: 0,
        buffer_bits: 0,
    }
}

/// Tries to open one candidate and encode a black frame with it, then
/// closes it.
pub fn probe_candidate(candidate: &Candidate, width: u32, height: u32) -> CandidateReport {
    let settings = probe_settings(candidate, width, height);
    let (result, lines) = libav_log::capture(|| {
        let mut encoder = Encoder::open(&settings)?;
        encoder.encode_blank_frame()
    });
    let reason = result.err().map(|e| failure_reason(&e, &lines));
    match &reason {
        None => crate::pf_debug!("encode", "{} opens at {width}x{height}", candidate.encoder),
        Some(r) => crate::pf_debug!("encode", "{} unavailable: {r}", candidate.encoder),
    }
    CandidateReport {
        candidate: *candidate,
        available: reason.is_none(),
        reason,
    }
}

/// Probes every candidate at `width`×`height`.
pub fn probe_encoders(width: u32, height: u32) -> Result<ProbeReport> {
    validate_size(width, height)?;
    let encoders: Vec<CandidateReport> = CANDIDATES
        .iter()
        .map(|c| probe_candidate(c, width, height))
        .collect();
    let available: Vec<&str> = encoders
        .iter()
        .filter(|e| e.available)
        .map(|e| e.candidate.encoder)
        .collect();
    crate::pf_info!(
        "encode",
        "encoder probe at {width}x{height}: available [{}]",
        available.join(", ")
    );
    Ok(ProbeReport {
        width,
        height,
        encoders,
    })
}

/// [`probe_encoders`] serialized with [`ProbeReport::to_json`].
pub fn probe_encoders_json(width: u32, height: u32) -> Result<String> {
    probe_encoders(width, height).map(|r| r.to_json())
}

/// The shim's message plus the most relevant libav lines: those of the most
/// severe level logged (errors, else warnings, else info/verbose), the last
/// few, without duplicates.
pub(crate) fn failure_reason(err: &AvError, lines: &[CapturedLine]) -> String {
    let mut reason = err.message.clone();
    if err.kind == AvErrorKind::NotBuilt {
        return reason;
    }
    let worst = lines.iter().map(|l| l.level).min().unwrap_or(Level::Warn);
    let mut relevant: Vec<&str> = Vec::new();
    for line in lines.iter().rev().filter(|l| l.level == worst) {
        if relevant.len() == MAX_REASON_LINES {
            break;
        }
        if !relevant.contains(&line.text.as_str()) {
            relevant.push(&line.text);
        }
    }
    if !relevant.is_empty() {
        relevant.reverse();
        reason.push_str(" (libav: ");
        reason.push_str(&relevant.join("; "));
        reason.push(')');
    }
    reason
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::PF_ERR_INVALID_ARGUMENT;
    use serde_json::Value;
    use std::path::Path;
    use std::sync::OnceLock;

    /// One real probe at 1280x720 shared by the tests below (it opens ten
    /// encoders, including SVT-AV1, so it is not free).
    fn probe_720p() -> &'static ProbeReport {
        static REPORT: OnceLock<ProbeReport> = OnceLock::new();
        REPORT.get_or_init(|| probe_encoders(1280, 720).expect("valid size"))
    }

    fn entry(report: &ProbeReport, encoder: &str) -> CandidateReport {
        report
            .encoders
            .iter()
            .find(|e| e.candidate.encoder == encoder)
            .unwrap_or_else(|| panic!("{encoder} missing from report"))
            .clone()
    }

    #[test]
    fn json_lists_all_ten_candidates_in_preference_order() {
        let report = probe_720p();
        let v: Value = serde_json::from_str(&report.to_json()).expect("valid JSON");
        assert_eq!(v["width"], 1280);
        assert_eq!(v["height"], 720);
        let encoders = v["encoders"].as_array().unwrap();
        let rows: Vec<(&str, &str, &str)> = encoders
            .iter()
            .map(|e| {
                (
                    e["codec"].as_str().unwrap(),
                    e["backend"].as_str().unwrap(),
                    e["encoder"].as_str().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            rows,
            [
                ("h264", "nvenc", "h264_nvenc"),
                ("h264", "vaapi", "h264_vaapi"),
                ("h264", "software", "libx264"),
                ("hevc", "nvenc", "hevc_nvenc"),
                ("hevc", "vaapi", "hevc_vaapi"),
                ("hevc", "software", "libx265"),
                ("av1", "nvenc", "av1_nvenc"),
                ("av1", "vaapi", "av1_vaapi"),
                ("av1", "software", "libsvtav1"),
                ("av1", "software", "libaom-av1"),
            ]
        );
        for e in encoders {
            let keys: Vec<&str> = e.as_object().unwrap().keys().map(|k| k.as_str()).collect();
            assert_eq!(keys.len(), 5, "{e}");
            match e["available"].as_bool().expect("available is a bool") {
                true => assert!(e["reason"].is_null(), "{e}"),
                false => {
                    let reason = e["reason"].as_str().expect("reason is a string");
                    assert!(!reason.trim().is_empty(), "{e}");
                }
            }
        }
    }

    #[test]
    fn libx264_is_available_at_720p() {
        let x264 = entry(probe_720p(), "libx264");
        assert!(x264.available, "libx264 should open: {:?}", x264.reason);
        assert_eq!(x264.reason, None);
    }

    #[test]
    fn nvenc_is_unavailable_without_an_nvidia_gpu() {
        // On a GPU machine nvenc may legitimately open; either way a "no" carries a reason.
        let gpu = Path::new("/dev/nvidia0").exists();
        for name in ["h264_nvenc", "hevc_nvenc", "av1_nvenc"] {
            let e = entry(probe_720p(), name);
            assert!(gpu || !e.available, "{name} opened without a GPU");
            assert_eq!(e.available, e.reason.is_none(), "{name}: {:?}", e.reason);
            assert!(e.reason.is_none_or(|reason| !reason.is_empty()), "{name}");
        }
    }

    #[test]
    fn vaapi_reason_names_the_missing_device() {
        let device = libav::vaapi_device();
        // On a VAAPI machine the encoders may open, and a "no" has another reason than the device.
        let present = Path::new(&device).exists();
        for name in ["h264_vaapi", "hevc_vaapi", "av1_vaapi"] {
            let e = entry(probe_720p(), name);
            assert!(present || !e.available, "{name} opened without {device}");
            let Some(reason) = e.reason else {
                continue;
            };
            assert!(!reason.is_empty(), "{name}");
            if present {
                continue;
            }
            if reason == "encoder not built into this libavcodec" {
                continue;
            }
            assert!(
                reason.starts_with("no VAAPI device: ") && reason.contains(&device),
                "{name}: {reason}"
            );
        }
    }

    #[test]
    fn invalid_sizes_are_rejected() {
        for (w, h) in [
            (0, 720),
            (1280, 0),
            (1281, 720),
            (1280, 721),
            (16386, 720),
            (1280, 16386),
        ] {
            let err = probe_encoders(w, h).unwrap_err();
            assert_eq!(err.status(), PF_ERR_INVALID_ARGUMENT, "{w}x{h}");
            assert!(err.message().contains("must be even"), "{}", err.message());
        }
        assert!(validate_size(16384, 16384).is_ok());
        assert!(validate_size(2, 2).is_ok());
    }

    #[test]
    fn single_candidate_probe_is_repeatable() {
        let x264 = CANDIDATES.iter().find(|c| c.encoder == "libx264").unwrap();
        for _ in 0..3 {
            let r = probe_candidate(x264, 640, 360);
            assert!(r.available, "{:?}", r.reason);
        }
    }

    #[test]
    fn reasons_prefer_errors_and_deduplicate() {
        let err = AvError {
            kind: AvErrorKind::Open,
            message: "avcodec_open2 failed: Generic error in an external library".into(),
        };
        let line = |level, text: &str| CapturedLine {
            level,
            text: text.to_string(),
        };
        let lines = [
            line(Level::Warn, "h264_nvenc: some warning"),
            line(Level::Error, "h264_nvenc: Cannot load libcuda.so.1"),
            line(Level::Error, "h264_nvenc: Cannot load libcuda.so.1"),
        ];
        assert_eq!(
            failure_reason(&err, &lines),
            "avcodec_open2 failed: Generic error in an external library \
             (libav: h264_nvenc: Cannot load libcuda.so.1)"
        );
        assert_eq!(
            failure_reason(&err, &lines[..1]),
            format!("{} (libav: h264_nvenc: some warning)", err.message)
        );
        assert_eq!(failure_reason(&err, &[]), err.message);
        let verbose_only = [
            line(Level::Debug, "vaapi: a"),
            line(Level::Debug, "vaapi: b"),
            line(Level::Debug, "vaapi: c"),
            line(Level::Debug, "vaapi: d"),
        ];
        assert_eq!(
            failure_reason(&err, &verbose_only),
            format!("{} (libav: vaapi: b; vaapi: c; vaapi: d)", err.message)
        );
        let not_built = AvError {
            kind: AvErrorKind::NotBuilt,
            message: "encoder not built into this libavcodec".into(),
        };
        assert_eq!(failure_reason(&not_built, &lines), not_built.message);
    }

    #[test]
    fn low_latency_options_cover_every_non_vaapi_candidate() {
        for c in CANDIDATES {
            let opts = low_latency_options(c.encoder);
            match c.backend {
                Backend::Vaapi => assert!(opts.is_empty()),
                _ => assert!(!opts.is_empty(), "{}", c.encoder),
            }
            let s = probe_settings(&c, 1280, 720);
            assert_eq!((s.fps, s.max_b_frames), (60, 0));
            assert_eq!(
                matches!(s.hw, HwPath::Vaapi { .. }),
                c.backend == Backend::Vaapi
            );
        }
    }
}
