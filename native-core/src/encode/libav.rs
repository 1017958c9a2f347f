//! Safe wrapper over the C shim's encoder and decoder calls:
//! [`EncoderSettings`] in, an owning [`Encoder`] handle (flushed and closed on
//! drop) or an [`AvError`] out; frames go in as BGRA ([`Encoder::convert_bgra`]
//! then [`Encoder::send_converted`]) and packets come out as borrowed views
//! ([`Encoder::receive`]). [`Decoder`] is the mirror image for decoding.
//!
//! Every pointer handed to the shim is checked here first (slice lengths,
//! integer ranges), so the unsafe blocks only rely on the shim's documented
//! contracts.

use std::ffi::{c_char, CString};
use std::fmt;
use std::ptr::{self, NonNull};

use super::ffi;
use super::libav_log;
use crate::log::{self, Level};

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
    /// System-memory frames (software encoders and nvenc).
    None,
    /// VAAPI surfaces (NV12 unless `sw_format` says otherwise) on the given
    /// render node.
    Vaapi { device: String },
}

/// Colour description written into the stream and used for RGB → YUV.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ColorSpec {
    /// Leave libav's defaults (the probe's black frames need nothing else).
    #[default]
    Unspecified,
    /// BT.709 matrix, primaries and transfer; limited range.
    Bt709,
    /// SMPTE 170M (BT.601 525-line); limited range.
    Bt601,
}

impl ColorSpec {
    fn to_shim(self) -> i32 {
        match self {
            ColorSpec::Unspecified => ffi::PFAV_COLOR_UNSPECIFIED,
            ColorSpec::Bt709 => ffi::PFAV_COLOR_BT709,
            ColorSpec::Bt601 => ffi::PFAV_COLOR_BT601,
        }
    }
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
    /// Input pixel format (libav name, e.g. `"nv12"`); for VAAPI the
    /// surfaces' format. `None`: yuv420p (NV12 for VAAPI).
    pub sw_format: Option<String>,
    pub color: ColorSpec,
    /// Key frames are IDR / closed-GOP key frames (AV_CODEC_FLAG_CLOSED_GOP).
    pub closed_gop: bool,
    /// `rc_max_rate`, bits per second; 0 = unset.
    pub max_bit_rate: u64,
    /// `rc_min_rate`, bits per second; 0 = unset.
    pub min_bit_rate: u64,
    /// `rc_buffer_size` (VBV size), bits; 0 = unset.
    pub buffer_bits: u64,
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
    Unsupported,
    Decode,
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
            ffi::PFAV_ERR_UNSUPPORTED => Self::Unsupported,
            ffi::PFAV_ERR_DECODE => Self::Decode,
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

impl AvError {
    fn invalid(message: String) -> Self {
        AvError {
            kind: AvErrorKind::InvalidConfig,
            message,
        }
    }
}

/// An open libavcodec encoder; on drop it is flushed (see
/// `pfav_encoder_close`) and freed, context and hardware refs included.
#[derive(Debug)]
pub struct Encoder {
    raw: NonNull<ffi::PfavEncoder>,
}

// SAFETY: the shim handle is reachable only through this owner, and every
// call on it takes `&mut self`, so calls never overlap; libavcodec contexts
// are not tied to the thread that created them.
unsafe impl Send for Encoder {}

/// Outcome of handing a frame or packet to libav.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sent {
    /// Accepted.
    Accepted,
    /// Refused until the pending output is received; send again after.
    Full,
}

/// One encoded packet, borrowed from the encoder until its next call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Packet<'a> {
    pub data: &'a [u8],
    /// The pts given to [`Encoder::send_converted`].
    pub pts: i64,
    /// AV_PKT_FLAG_KEY: an IDR (H.264/HEVC) or key frame (AV1).
    pub key: bool,
}

/// Outcome of asking libav for output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Received<T> {
    /// One item.
    Item(T),
    /// Nothing yet: send more input.
    Again,
    /// Everything was drained after end of stream.
    Eof,
}

/// Whether `encoder` lists pixel format `pix_fmt` (libav name; `"vaapi"`
/// for VAAPI encoders) as an input format. `Err` with kind `NotBuilt` if the
/// encoder is not built, `InvalidConfig` if libav does not know the format.
pub fn encoder_accepts_pix_fmt(encoder: &str, pix_fmt: &str) -> Result<bool, AvError> {
    libav_log::ensure_installed();
    let name = c_string("encoder name", encoder)?;
    let format = c_string("pixel format", pix_fmt)?;
    // SAFETY: both are valid NUL-terminated strings for the call.
    let code = unsafe { ffi::pfav_encoder_pix_fmt_supported(name.as_ptr(), format.as_ptr()) };
    match code {
        1 => Ok(true),
        0 => Ok(false),
        ffi::PFAV_ERR_NOT_FOUND => Err(AvError {
            kind: AvErrorKind::NotBuilt,
            message: "encoder not built into this libavcodec".into(),
        }),
        _ => Err(AvError::invalid(format!("unknown pixel format {pix_fmt}"))),
    }
}

/// A failed libav call plus the libav lines it logged.
pub type Failed = (AvError, Vec<libav_log::CapturedLine>);

/// Runs libav calls capturing their log lines for the error; on success,
/// the warnings and errors among them are re-logged at their own level
/// (capturing demotes them to debug, see `libav_log::handle_line`).
pub fn libav_call<R>(call: impl FnOnce() -> Result<R, AvError>) -> Result<R, Failed> {
    let (result, lines) = libav_log::capture(call);
    match result {
        Ok(value) => {
            for line in lines.iter().filter(|l| l.level <= Level::Warn) {
                log::log_str(line.level, libav_log::TARGET, &line.text);
            }
            Ok(value)
        }
        Err(e) => Err((e, lines)),
    }
}

/// Size of the message buffer handed to shim calls: the shim truncates
/// longer messages, and its longest (a path plus av_strerror text) fits.
const ERR_CAP: usize = 1024;

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

fn c_i64_field(what: &str, value: u64) -> Result<i64, AvError> {
    i64::try_from(value).map_err(|_| AvError {
        kind: AvErrorKind::InvalidConfig,
        message: format!("{what} {value} is out of range"),
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
        let sw_format = settings
            .sw_format
            .as_deref()
            .map(|f| c_string("pixel format", f))
            .transpose()?;
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
            bit_rate: c_i64_field("bit_rate", settings.bit_rate)?,
            hw_device: device.as_ref().map_or(ptr::null(), |d| d.as_ptr()),
            options: if raw_options.is_empty() {
                ptr::null()
            } else {
                raw_options.as_ptr()
            },
            n_options: raw_options.len(),
            sw_format: sw_format.as_ref().map_or(ptr::null(), |f| f.as_ptr()),
            color: settings.color.to_shim(),
            closed_gop: i32::from(settings.closed_gop),
            max_rate: c_i64_field("max_bit_rate", settings.max_bit_rate)?,
            min_rate: c_i64_field("min_bit_rate", settings.min_bit_rate)?,
            buffer_size: c_int_field("buffer_bits", settings.buffer_bits)?.into(),
        };

        let mut raw: *mut ffi::PfavEncoder = ptr::null_mut();
        let mut err = [0 as c_char; ERR_CAP];
        // SAFETY: `config` and every string/array it points to (`encoder`,
        // `device`, `options`, `raw_options`, `sw_format`) outlive the call;
        // `raw` and `err` are valid for writes of the sizes passed.
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
        let mut err = [0 as c_char; ERR_CAP];
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

    /// Converts a BGRA image (`stride` bytes per row, alpha ignored) into
    /// the encoder's reused input frame, scaling if its size differs from
    /// the encoder's; for VAAPI also uploads it. Send it with
    /// [`Encoder::send_converted`].
    pub fn convert_bgra(
        &mut self,
        bgra: &[u8],
        width: u32,
        height: u32,
        stride: usize,
    ) -> Result<(), AvError> {
        check_bgra_image(bgra.len(), width, height, stride)?;
        let mut err = [0 as c_char; ERR_CAP];
        // SAFETY: `raw` is live and exclusively borrowed; `bgra` holds at
        // least `stride * (height - 1) + width * 4` bytes (checked above),
        // which is all libswscale reads for that geometry; `err` is valid
        // for writes of its length. All three integers fit in i32 (checked).
        let code = unsafe {
            ffi::pfav_encoder_convert_bgra(
                self.raw.as_ptr(),
                bgra.as_ptr(),
                width as i32,
                height as i32,
                stride as i32,
                err.as_mut_ptr(),
                err.len(),
            )
        };
        ok_or_error(code, &err)
    }

    /// Sends the last converted frame with `pts`; `force_key` makes it a key
    /// frame (IDR with the forced-idr options).
    pub fn send_converted(&mut self, pts: i64, force_key: bool) -> Result<Sent, AvError> {
        let mut err = [0 as c_char; ERR_CAP];
        // SAFETY: `raw` is live and exclusively borrowed; `err` is valid for
        // writes of its length.
        let code = unsafe {
            ffi::pfav_encoder_send_converted(
                self.raw.as_ptr(),
                pts,
                i32::from(force_key),
                err.as_mut_ptr(),
                err.len(),
            )
        };
        match code {
            ffi::PFAV_AGAIN => Ok(Sent::Full),
            _ => ok_or_error(code, &err).map(|()| Sent::Accepted),
        }
    }

    /// Signals end of stream (idempotent); [`Encoder::receive`] then yields
    /// the remaining packets and finally [`Received::Eof`].
    pub fn send_eof(&mut self) -> Result<(), AvError> {
        let mut err = [0 as c_char; ERR_CAP];
        // SAFETY: `raw` is live and exclusively borrowed; `err` is valid for
        // writes of its length.
        let code =
            unsafe { ffi::pfav_encoder_send_eof(self.raw.as_ptr(), err.as_mut_ptr(), err.len()) };
        ok_or_error(code, &err)
    }

    /// Takes one encoded packet, if there is one.
    pub fn receive(&mut self) -> Result<Received<Packet<'_>>, AvError> {
        let mut packet = ffi::PfavPacket::default();
        let mut err = [0 as c_char; ERR_CAP];
        // SAFETY: `raw` is live and exclusively borrowed; `packet` and `err`
        // are valid for writes.
        let code = unsafe {
            ffi::pfav_encoder_receive(self.raw.as_ptr(), &mut packet, err.as_mut_ptr(), err.len())
        };
        match code {
            ffi::PFAV_AGAIN => return Ok(Received::Again),
            ffi::PFAV_EOF => return Ok(Received::Eof),
            _ => ok_or_error(code, &err)?,
        }
        let data = if packet.size == 0 || packet.data.is_null() {
            &[][..]
        } else {
            // SAFETY: the shim returns the packet's buffer, `size` bytes,
            // valid until the next call on this encoder; the returned slice
            // borrows `self` mutably, so no such call can happen while it
            // lives.
            unsafe { std::slice::from_raw_parts(packet.data, packet.size) }
        };
        Ok(Received::Item(Packet {
            data,
            pts: packet.pts,
            key: packet.key != 0,
        }))
    }

    /// Updates the rate-control fields the encoder may re-read per frame
    /// (libx264 does; see `pfav_encoder_set_rate`). 0 leaves a field.
    pub fn set_rate(
        &mut self,
        bit_rate: u64,
        max_bit_rate: u64,
        min_bit_rate: u64,
        buffer_bits: u64,
    ) -> Result<(), AvError> {
        let bit_rate = c_i64_field("bit_rate", bit_rate)?;
        let max_rate = c_i64_field("max_bit_rate", max_bit_rate)?;
        let min_rate = c_i64_field("min_bit_rate", min_bit_rate)?;
        let buffer_size = c_int_field("buffer_bits", buffer_bits)?.into();
        let mut err = [0 as c_char; ERR_CAP];
        // SAFETY: `raw` is live and exclusively borrowed; `err` is valid for
        // writes of its length.
        let code = unsafe {
            ffi::pfav_encoder_set_rate(
                self.raw.as_ptr(),
                bit_rate,
                max_rate,
                min_rate,
                buffer_size,
                err.as_mut_ptr(),
                err.len(),
            )
        };
        ok_or_error(code, &err)
    }
}

/// Checks that a `len`-byte buffer holds a `width`×`height` BGRA image with
/// rows `stride` bytes apart (the last row may be short of `stride`) and
/// that every number fits the shim's `int32_t`.
pub fn check_bgra_image(len: usize, width: u32, height: u32, stride: usize) -> Result<(), AvError> {
    const BYTES_PER_PIXEL: u64 = 4;
    let row = u64::from(width) * BYTES_PER_PIXEL;
    let fits_i32 = |v: u64| v <= i32::MAX as u64;
    if width == 0 || height == 0 || !fits_i32(row) || !fits_i32(u64::from(height)) {
        return Err(AvError::invalid(format!(
            "BGRA image size {width}x{height} is invalid"
        )));
    }
    let stride64 = stride as u64;
    if stride64 < row || !fits_i32(stride64) {
        return Err(AvError::invalid(format!(
            "BGRA stride {stride} is invalid for width {width} (needs {row}..={})",
            i32::MAX
        )));
    }
    let needed = stride64 * (u64::from(height) - 1) + row;
    if (len as u64) < needed {
        return Err(AvError::invalid(format!(
            "BGRA buffer of {len} bytes is too small for {width}x{height} with stride {stride} \
             (needs {needed})"
        )));
    }
    Ok(())
}

/// Whether this libavcodec has a decoder called `name`.
pub fn decoder_built(name: &str) -> bool {
    libav_log::ensure_installed();
    let Ok(name) = CString::new(name) else {
        return false;
    };
    // SAFETY: `name` is a valid NUL-terminated string for the call.
    unsafe { ffi::pfav_decoder_available(name.as_ptr()) == 1 }
}

/// A decoded picture, borrowed from the decoder until its next call.
#[derive(Debug, Clone, Copy)]
pub struct Picture<'a> {
    pub width: u32,
    pub height: u32,
    /// Bits per sample; above 8, samples are little-endian u16.
    pub bit_depth: u32,
    /// Chroma planes are `width >> log2_chroma_w` (rounded up) wide.
    pub log2_chroma_w: u32,
    pub log2_chroma_h: u32,
    /// Y, U, V (U and V empty for gray): each `linesize * rows` bytes.
    pub planes: [&'a [u8]; 3],
    pub linesizes: [usize; 3],
    /// The pts of the packet this picture came from.
    pub pts: i64,
    pub key: bool,
}

/// An open libavcodec decoder, freed on drop.
#[derive(Debug)]
pub struct Decoder {
    raw: NonNull<ffi::PfavDecoder>,
}

// SAFETY: as for `Encoder`: exclusively owned, every call takes `&mut self`,
// and decoder contexts are not tied to a thread.
unsafe impl Send for Decoder {}

impl Decoder {
    /// Opens decoder `name` for low delay (see `pfav_decoder_open`);
    /// `threads` = 0 picks the slice-thread count automatically.
    pub fn open(name: &str, threads: u32) -> Result<Decoder, AvError> {
        libav_log::ensure_installed();
        let name = c_string("decoder name", name)?;
        let threads = c_int_field("threads", threads.into())?;
        let mut raw: *mut ffi::PfavDecoder = ptr::null_mut();
        let mut err = [0 as c_char; ERR_CAP];
        // SAFETY: `name` is NUL-terminated and outlives the call; `raw` and
        // `err` are valid for writes of the sizes passed.
        let code = unsafe {
            ffi::pfav_decoder_open(
                name.as_ptr(),
                threads,
                &mut raw,
                err.as_mut_ptr(),
                err.len(),
            )
        };
        if code == ffi::PFAV_OK {
            if let Some(raw) = NonNull::new(raw) {
                return Ok(Decoder { raw });
            }
        }
        Err(shim_error(code, &err))
    }

    /// Sends one packet (copied; empty = end of stream) tagged with `pts`.
    pub fn send(&mut self, data: &[u8], pts: i64) -> Result<Sent, AvError> {
        let mut err = [0 as c_char; ERR_CAP];
        // SAFETY: `raw` is live and exclusively borrowed; `data` is valid
        // for reads of its length (the shim copies it); `err` is valid for
        // writes of its length.
        let code = unsafe {
            ffi::pfav_decoder_send(
                self.raw.as_ptr(),
                data.as_ptr(),
                data.len(),
                pts,
                err.as_mut_ptr(),
                err.len(),
            )
        };
        match code {
            ffi::PFAV_AGAIN => Ok(Sent::Full),
            _ => ok_or_error(code, &err).map(|()| Sent::Accepted),
        }
    }

    /// Takes one decoded picture, if there is one.
    pub fn receive(&mut self) -> Result<Received<Picture<'_>>, AvError> {
        let mut pic = ffi::PfavPicture::default();
        let mut err = [0 as c_char; ERR_CAP];
        // SAFETY: `raw` is live and exclusively borrowed; `pic` and `err`
        // are valid for writes.
        let code = unsafe {
            ffi::pfav_decoder_receive(self.raw.as_ptr(), &mut pic, err.as_mut_ptr(), err.len())
        };
        match code {
            ffi::PFAV_AGAIN => return Ok(Received::Again),
            ffi::PFAV_EOF => return Ok(Received::Eof),
            _ => ok_or_error(code, &err)?,
        }
        picture_view(self, &pic).map(Received::Item)
    }
}

/// Builds the view of a picture the shim filled in for `decoder`, borrowing
/// the decoder, after checking every number before trusting it for a slice.
fn picture_view<'a>(_decoder: &'a Decoder, pic: &ffi::PfavPicture) -> Result<Picture<'a>, AvError> {
    let broken = |what: &str| AvError {
        kind: AvErrorKind::Decode,
        message: format!("decoder returned an unusable picture: {what}"),
    };
    let width = u32::try_from(pic.width).map_err(|_| broken("width"))?;
    let height = u32::try_from(pic.height).map_err(|_| broken("height"))?;
    let bit_depth = u32::try_from(pic.bit_depth).map_err(|_| broken("bit depth"))?;
    let log2_w = u32::try_from(pic.log2_chroma_w).map_err(|_| broken("chroma shift"))?;
    let log2_h = u32::try_from(pic.log2_chroma_h).map_err(|_| broken("chroma shift"))?;
    if width == 0 || height == 0 || !(8..=16).contains(&bit_depth) || log2_w > 2 || log2_h > 2 {
        return Err(broken("geometry"));
    }
    let planes = match pic.planes {
        1 => 1,
        3 => 3,
        _ => return Err(broken("plane count")),
    };
    let bytes_per_sample: usize = if bit_depth > 8 { 2 } else { 1 };
    let mut views: [&[u8]; 3] = [&[]; 3];
    let mut linesizes = [0usize; 3];
    for i in 0..planes {
        let (plane_w, plane_h) = if i == 0 {
            (width, height)
        } else {
            (width.div_ceil(1 << log2_w), height.div_ceil(1 << log2_h))
        };
        let linesize = usize::try_from(pic.linesize[i]).map_err(|_| broken("linesize"))?;
        if pic.data[i].is_null() || linesize < plane_w as usize * bytes_per_sample {
            return Err(broken("plane"));
        }
        // SAFETY: libav allocates each plane as `linesize` bytes for each of
        // its `plane_h` rows (checked non-null, linesize ≥ the row); the
        // frame stays referenced by the decoder until its next call, which
        // the returned borrow of `decoder` rules out meanwhile.
        views[i] = unsafe { std::slice::from_raw_parts(pic.data[i], linesize * plane_h as usize) };
        linesizes[i] = linesize;
    }
    Ok(Picture {
        width,
        height,
        bit_depth,
        log2_chroma_w: log2_w,
        log2_chroma_h: log2_h,
        planes: views,
        linesizes,
        pts: pic.pts,
        key: pic.key != 0,
    })
}

impl Drop for Decoder {
    fn drop(&mut self) {
        // SAFETY: `raw` came from a successful pfav_decoder_open and is
        // closed exactly once, here.
        unsafe { ffi::pfav_decoder_close(self.raw.as_ptr()) };
    }
}

fn ok_or_error(code: i32, err: &[c_char]) -> Result<(), AvError> {
    if code == ffi::PFAV_OK {
        Ok(())
    } else {
        Err(shim_error(code, err))
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
            sw_format: None,
            color: ColorSpec::Unspecified,
            closed_gop: false,
            max_bit_rate: 0,
            min_bit_rate: 0,
            buffer_bits: 0,
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
        // Debian's libavcodec (what bootstrap.sh installs) has VAAPI; without it this is a failure
        // with the reason, not a silent pass.
        assert!(
            encoder_built("h264_vaapi"),
            "this libavcodec lacks h264_vaapi; the test needs one built with VAAPI"
        );
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
