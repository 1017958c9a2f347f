//! Safe wrapper over the C shim's encoder calls: [`EncoderSettings`] in, an
//! owning [`Encoder`] handle (flushed and closed on drop) or an [`AvError`]
//! out.

use std::ffi::{c_char, CString};
use std::fmt;
use std::ptr::{self, NonNull};

use super::ffi;
use super::libav_log;

/// Default VAAPI render node.
pub const DEFAULT_VAAPI_DEVICE: &str = "/dev/dri/renderD128";

/// Environment variable overriding [`DEFAULT_VAAPI_DEVICE`].
pub const VAAPI_DEVICE_ENV: &str = "PUNKTFUNK_VAAPI_DEVICE";

/// The VAAPI render node to use: `$PUNKTFUNK_VAAPI_DEVICE` if set and
/// non-empty, else `/dev/dri/renderD128`.
pub fn vaapi_device() -> String {
    std::env::var(VAAPI_DEVICE_ENV)
        .ok()
        .filter(|d| !d.is_empty())
        .unwrap_or_else(|| DEFAULT_VAAPI_DEVICE.to_string())
}

/// How frames reach the encoder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HwPath {
    /// System-memory yuv420p frames (software encoders and nvenc).
    None,
    /// VAAPI NV12 surfaces on the given render node.
    Vaapi { device: String },
}

/// Everything needed to open one encoder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncoderSettings {
    /// libavcodec encoder name, e.g. `"libx264"`.
    pub encoder: String,
    pub width: u32,
    pub height: u32,
    /// Frames per second; time base is `1/fps`.
    pub fps: u32,
    /// Frames between key frames.
    pub gop_size: u32,
    /// 0 for low latency.
    pub max_b_frames: u32,
    /// Bits per second; 0 leaves the encoder default.
    pub bit_rate: u64,
    pub hw: HwPath,
    /// Encoder private options (`av_opt_set`); rejected ones are logged and
    /// skipped.
    pub options: Vec<(String, String)>,
}

/// Which step of an encoder call failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AvErrorKind {
    InvalidConfig,
    NotBuilt,
    NoDevice,
    HwDevice,
    HwFrames,
    Open,
    OutOfMemory,
    Encode,
    Other(i32),
}

impl AvErrorKind {
    fn from_code(code: i32) -> Self {
        match code {
            ffi::PFAV_ERR_INVALID => Self::InvalidConfig,
            ffi::PFAV_ERR_NOT_FOUND => Self::NotBuilt,
            ffi::PFAV_ERR_NO_DEVICE => Self::NoDevice,
            ffi::PFAV_ERR_HW_DEVICE => Self::HwDevice,
            ffi::PFAV_ERR_HW_FRAMES => Self::HwFrames,
            ffi::PFAV_ERR_OPEN => Self::Open,
            ffi::PFAV_ERR_NOMEM => Self::OutOfMemory,
            ffi::PFAV_ERR_ENCODE => Self::Encode,
            other => Self::Other(other),
        }
    }
}

/// A failed shim call: the kind plus the shim's human-readable message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AvError {
    pub kind: AvErrorKind,
    pub message: String,
}

impl fmt::Display for AvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for AvError {}

/// An open libavcodec encoder; on drop it is flushed (see
/// `pfav_encoder_close`) and freed, context and hardware refs included.
#[derive(Debug)]
pub struct Encoder {
    raw: NonNull<ffi::PfavEncoder>,
}

/// Whether this libavcodec has an encoder called `name`.
pub fn encoder_built(name: &str) -> bool {
    libav_log::ensure_installed();
    let Ok(name) = CString::new(name) else {
        return false;
    };
    // SAFETY: `name` is a valid NUL-terminated string for the call.
    unsafe { ffi::pfav_encoder_available(name.as_ptr()) == 1 }
}

fn c_string(what: &str, s: &str) -> Result<CString, AvError> {
    CString::new(s).map_err(|_| AvError {
        kind: AvErrorKind::InvalidConfig,
        message: format!("{what} contains a NUL byte"),
    })
}

fn c_int_field(what: &str, value: u64) -> Result<i32, AvError> {
    i32::try_from(value).map_err(|_| AvError {
        kind: AvErrorKind::InvalidConfig,
        message: format!("{what} {value} is out of range"),
    })
}

impl Encoder {
    /// Opens the encoder described by `settings` (avcodec_open2).
    pub fn open(settings: &EncoderSettings) -> Result<Encoder, AvError> {
        libav_log::ensure_installed();

        let encoder = c_string("encoder name", &settings.encoder)?;
        let (hw, device) = match &settings.hw {
            HwPath::None => (ffi::PFAV_HW_NONE, None),
            HwPath::Vaapi { device } => {
                (ffi::PFAV_HW_VAAPI, Some(c_string("VAAPI device", device)?))
            }
        };
        let options = settings
            .options
            .iter()
            .map(|(k, v)| Ok((c_string("option key", k)?, c_string("option value", v)?)))
            .collect::<Result<Vec<_>, AvError>>()?;
        let raw_options: Vec<ffi::PfavOption> = options
            .iter()
            .map(|(k, v)| ffi::PfavOption {
                key: k.as_ptr(),
                value: v.as_ptr(),
            })
            .collect();
        let config = ffi::PfavEncoderConfig {
            encoder: encoder.as_ptr(),
            width: c_int_field("width", settings.width.into())?,
            height: c_int_field("height", settings.height.into())?,
            fps: c_int_field("fps", settings.fps.into())?,
            gop_size: c_int_field("gop_size", settings.gop_size.into())?,
            max_b_frames: c_int_field("max_b_frames", settings.max_b_frames.into())?,
            hw,
            bit_rate: i64::try_from(settings.bit_rate).map_err(|_| AvError {
                kind: AvErrorKind::InvalidConfig,
                message: format!("bit_rate {} is out of range", settings.bit_rate),
            })?,
            hw_device: device.as_ref().map_or(ptr::null(), |d| d.as_ptr()),
            options: if raw_options.is_empty() {
                ptr::null()
            } else {
                raw_options.as_ptr()
            },
            n_options: raw_options.len(),
        };

        let mut raw: *mut ffi::PfavEncoder = ptr::null_mut();
        let mut err = [0 as c_char; 1024];
        // SAFETY: `config` and every string/array it points to (`encoder`,
        // `device`, `options`, `raw_options`) outlive the call; `raw` and
        // `err` are valid for writes of the sizes passed.
        let code =
            unsafe { ffi::pfav_encoder_open(&config, &mut raw, err.as_mut_ptr(), err.len()) };
        if code == ffi::PFAV_OK {
            if let Some(raw) = NonNull::new(raw) {
                return Ok(Encoder { raw });
            }
        }
        Err(shim_error(code, &err))
    }

    /// Encodes one black frame and discards the output, proving the encoder
    /// works beyond avcodec_open2.
    pub fn encode_blank_frame(&mut self) -> Result<(), AvError> {
        let mut err = [0 as c_char; 1024];
        // SAFETY: `raw` is a live handle owned by `self` (exclusively
        // borrowed), and `err` is valid for writes of its length.
        let code = unsafe {
            ffi::pfav_encoder_encode_blank(self.raw.as_ptr(), err.as_mut_ptr(), err.len())
        };
        if code == ffi::PFAV_OK {
            Ok(())
        } else {
            Err(shim_error(code, &err))
        }
    }
}

/// Turns a failed shim return code and its message buffer into an
/// [`AvError`]. A `PFAV_OK` code here means the shim broke its contract
/// (success without a handle).
fn shim_error(code: i32, err: &[c_char]) -> AvError {
    // The buffer is zeroed by the caller and only ever written by snprintf,
    // which NUL-terminates within bounds; read up to the first NUL anyway.
    let bytes: Vec<u8> = err
        .iter()
        .take_while(|&&c| c != 0)
        .map(|&c| c as u8)
        .collect();
    let message = String::from_utf8_lossy(&bytes).into_owned();
    let kind = if code == ffi::PFAV_OK {
        AvErrorKind::Other(code)
    } else {
        AvErrorKind::from_code(code)
    };
    AvError {
        kind,
        message: if message.is_empty() {
            format!("av_glue call failed with code {code}")
        } else {
            message
        },
    }
}

impl Drop for Encoder {
    fn drop(&mut self) {
        // SAFETY: `raw` came from a successful pfav_encoder_open and is
        // closed exactly once, here.
        unsafe { ffi::pfav_encoder_close(self.raw.as_ptr()) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn x264(width: u32, height: u32) -> EncoderSettings {
        EncoderSettings {
            encoder: "libx264".into(),
            width,
            height,
            fps: 60,
            gop_size: 120,
            max_b_frames: 0,
            bit_rate: 4_000_000,
            hw: HwPath::None,
            options: vec![
                ("preset".into(), "ultrafast".into()),
                ("tune".into(), "zerolatency".into()),
            ],
        }
    }

    #[test]
    fn unknown_encoder_is_not_built() {
        assert!(!encoder_built("punktfunk_no_such_encoder"));
        assert!(!encoder_built("nul\0byte"));
        let mut s = x264(64, 64);
        s.encoder = "punktfunk_no_such_encoder".into();
        let err = Encoder::open(&s).unwrap_err();
        assert_eq!(err.kind, AvErrorKind::NotBuilt);
        assert_eq!(err.message, "encoder not built into this libavcodec");
    }

    #[test]
    fn libx264_opens_repeatedly_and_on_many_threads() {
        assert!(encoder_built("libx264"));
        for _ in 0..5 {
            drop(Encoder::open(&x264(320, 240)).expect("libx264 opens"));
        }
        let handles: Vec<_> = (0..4)
            .map(|i| std::thread::spawn(move || Encoder::open(&x264(160 + 16 * i, 96)).map(drop)))
            .collect();
        for h in handles {
            h.join().unwrap().expect("libx264 opens on a worker thread");
        }
    }

    #[test]
    fn blank_frames_encode_and_the_encoder_flushes_on_drop() {
        let mut enc = Encoder::open(&x264(320, 240)).unwrap();
        for _ in 0..3 {
            enc.encode_blank_frame()
                .expect("libx264 encodes a black frame");
        }
        drop(enc);
    }

    #[test]
    fn unused_encoders_close_without_hanging() {
        // SVT-AV1 1.4 hangs in deinit unless it saw a frame and EOS; the
        // shim's close must take care of that for an encoder never used.
        for name in ["libsvtav1", "libx265", "libaom-av1", "libx264"] {
            if !encoder_built(name) {
                continue;
            }
            let mut s = x264(320, 240);
            s.encoder = name.into();
            s.options.clear();
            drop(Encoder::open(&s).unwrap_or_else(|e| panic!("{name}: {e}")));
        }
    }

    #[test]
    fn bad_option_is_skipped_with_a_captured_warning() {
        let mut s = x264(128, 96);
        s.options
            .push(("punktfunk_bogus_option".into(), "1".into()));
        let (result, lines) = libav_log::capture(|| Encoder::open(&s));
        result.expect("an unknown option must not fail the open");
        assert!(
            lines
                .iter()
                .any(|l| l.text.contains("ignoring option punktfunk_bogus_option=1")),
            "{lines:?}"
        );
    }

    #[test]
    fn avcodec_open2_failure_reports_av_strerror_and_libav_lines() {
        // libx264 rejects odd dimensions for yuv420p.
        let (result, lines) = libav_log::capture(|| Encoder::open(&x264(321, 241)));
        let err = result.unwrap_err();
        assert_eq!(err.kind, AvErrorKind::Open);
        assert!(
            err.message.starts_with("avcodec_open2 failed: "),
            "{}",
            err.message
        );
        assert!(
            !lines.is_empty(),
            "libx264 explains the failure through av_log"
        );
    }

    #[test]
    fn invalid_config_is_rejected_before_libav() {
        let mut s = x264(0, 64);
        assert_eq!(
            Encoder::open(&s).unwrap_err().kind,
            AvErrorKind::InvalidConfig
        );
        s = x264(64, 64);
        s.fps = 0;
        assert_eq!(
            Encoder::open(&s).unwrap_err().kind,
            AvErrorKind::InvalidConfig
        );
        s = x264(u32::MAX, 64);
        assert_eq!(
            Encoder::open(&s).unwrap_err().kind,
            AvErrorKind::InvalidConfig
        );
        s = x264(64, 64);
        s.options.push(("k\0".into(), "v".into()));
        assert_eq!(
            Encoder::open(&s).unwrap_err().kind,
            AvErrorKind::InvalidConfig
        );
    }

    #[test]
    fn unusable_vaapi_node_reports_hwdevice_failure_with_libav_lines() {
        if !encoder_built("h264_vaapi") {
            return;
        }
        let mut s = x264(64, 64);
        s.encoder = "h264_vaapi".into();
        s.options.clear();
        s.hw = HwPath::Vaapi {
            device: "/dev/null".into(), // opens fine, but is no DRM node
        };
        let (result, lines) = libav_log::capture(|| Encoder::open(&s));
        let err = result.unwrap_err();
        assert_eq!(err.kind, AvErrorKind::HwDevice, "{err}");
        assert!(
            err.message.starts_with("VAAPI device /dev/null unusable: "),
            "{err}"
        );
        assert!(
            lines.iter().any(|l| l.text.contains("/dev/null")),
            "{lines:?}"
        );
    }

    #[test]
    fn missing_vaapi_node_names_the_path() {
        let device = "/nonexistent/punktfunk/renderD999".to_string();
        let mut s = x264(64, 64);
        s.encoder = "h264_vaapi".into();
        s.options.clear();
        s.hw = HwPath::Vaapi {
            device: device.clone(),
        };
        match Encoder::open(&s) {
            Err(e) if e.kind == AvErrorKind::NotBuilt => {}
            Err(e) => {
                assert_eq!(e.kind, AvErrorKind::NoDevice);
                assert_eq!(
                    e.message,
                    format!("no VAAPI device: {device}: No such file or directory")
                );
            }
            Ok(_) => panic!("opened a VAAPI encoder on a nonexistent node"),
        }
    }
}
