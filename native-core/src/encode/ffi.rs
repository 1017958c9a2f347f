//! Raw bindings to the C shim `csrc/av_glue.{h,c}`: `#[repr(C)]` mirrors of
//! its structs, its return codes, the libav log levels it passes through, and
//! the `extern "C"` declarations. No logic lives here; see [`super::libav`]
//! for the safe wrapper.

use std::ffi::{c_char, c_int};
use std::ptr;

/// `PFAV_OK`.
pub const PFAV_OK: c_int = 0;
/// `PFAV_ERR_INVALID`: bad config.
pub const PFAV_ERR_INVALID: c_int = -1;
/// `PFAV_ERR_NOT_FOUND`: encoder not built into libavcodec.
pub const PFAV_ERR_NOT_FOUND: c_int = -2;
/// `PFAV_ERR_NO_DEVICE`: hardware device node cannot be opened.
pub const PFAV_ERR_NO_DEVICE: c_int = -3;
/// `PFAV_ERR_HW_DEVICE`: av_hwdevice_ctx_create failed.
pub const PFAV_ERR_HW_DEVICE: c_int = -4;
/// `PFAV_ERR_HW_FRAMES`: hardware frames context failed.
pub const PFAV_ERR_HW_FRAMES: c_int = -5;
/// `PFAV_ERR_OPEN`: avcodec_open2 failed.
pub const PFAV_ERR_OPEN: c_int = -6;
/// `PFAV_ERR_NOMEM`: allocation failed.
pub const PFAV_ERR_NOMEM: c_int = -7;
/// `PFAV_ERR_ENCODE`: sending a frame or receiving a packet failed.
pub const PFAV_ERR_ENCODE: c_int = -8;
/// `PFAV_ERR_UNSUPPORTED`: input or format the shim cannot handle.
pub const PFAV_ERR_UNSUPPORTED: c_int = -9;
/// `PFAV_ERR_DECODE`: sending a packet or receiving a frame failed.
pub const PFAV_ERR_DECODE: c_int = -10;

/// `PFAV_AGAIN`: no output yet (feed input), or drain before sending.
pub const PFAV_AGAIN: c_int = 1;
/// `PFAV_EOF`: fully drained after end of stream.
pub const PFAV_EOF: c_int = 2;

/// `PFAV_COLOR_UNSPECIFIED`: libav's defaults.
pub const PFAV_COLOR_UNSPECIFIED: i32 = 0;
/// `PFAV_COLOR_BT709`: BT.709 matrix/primaries/transfer, limited range.
pub const PFAV_COLOR_BT709: i32 = 1;
/// `PFAV_COLOR_BT601`: SMPTE 170M (BT.601), limited range.
pub const PFAV_COLOR_BT601: i32 = 2;

/// `PFAV_HW_NONE`: system-memory input frames (software encoders, nvenc).
pub const PFAV_HW_NONE: i32 = 0;
/// `PFAV_HW_VAAPI`: VAAPI NV12 surfaces.
pub const PFAV_HW_VAAPI: i32 = 1;

/// libavutil's `AV_LOG_*` levels (stable across FFmpeg versions).
pub const AV_LOG_QUIET: c_int = -8;
pub const AV_LOG_PANIC: c_int = 0;
pub const AV_LOG_FATAL: c_int = 8;
pub const AV_LOG_ERROR: c_int = 16;
pub const AV_LOG_WARNING: c_int = 24;
pub const AV_LOG_INFO: c_int = 32;
pub const AV_LOG_VERBOSE: c_int = 40;
pub const AV_LOG_DEBUG: c_int = 48;
pub const AV_LOG_TRACE: c_int = 56;

/// Mirror of `struct pfav_option`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct PfavOption {
    pub key: *const c_char,
    pub value: *const c_char,
}

/// Mirror of `struct pfav_encoder_config`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct PfavEncoderConfig {
    pub encoder: *const c_char,
    pub width: i32,
    pub height: i32,
    pub fps: i32,
    pub gop_size: i32,
    pub max_b_frames: i32,
    pub hw: i32,
    pub bit_rate: i64,
    pub hw_device: *const c_char,
    pub options: *const PfavOption,
    pub n_options: usize,
    pub sw_format: *const c_char,
    pub color: i32,
    pub closed_gop: i32,
    pub max_rate: i64,
    pub min_rate: i64,
    pub buffer_size: i64,
}

/// Mirror of `struct pfav_packet`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct PfavPacket {
    pub data: *const u8,
    pub size: usize,
    pub pts: i64,
    pub key: i32,
}

impl Default for PfavPacket {
    fn default() -> Self {
        PfavPacket {
            data: ptr::null(),
            size: 0,
            pts: 0,
            key: 0,
        }
    }
}

/// Mirror of `struct pfav_picture`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct PfavPicture {
    pub width: i32,
    pub height: i32,
    pub bit_depth: i32,
    pub log2_chroma_w: i32,
    pub log2_chroma_h: i32,
    pub planes: i32,
    pub data: [*const u8; 3],
    pub linesize: [i32; 3],
    pub pts: i64,
    pub key: i32,
}

impl Default for PfavPicture {
    fn default() -> Self {
        PfavPicture {
            width: 0,
            height: 0,
            bit_depth: 0,
            log2_chroma_w: 0,
            log2_chroma_h: 0,
            planes: 0,
            data: [ptr::null(); 3],
            linesize: [0; 3],
            pts: 0,
            key: 0,
        }
    }
}

/// Opaque `struct pfav_encoder`.
#[repr(C)]
pub struct PfavEncoder {
    _opaque: [u8; 0],
}

/// Opaque `struct pfav_decoder`.
#[repr(C)]
pub struct PfavDecoder {
    _opaque: [u8; 0],
}

/// `pfav_log_sink`.
pub type PfavLogSink = unsafe extern "C" fn(level: c_int, line: *const c_char);

extern "C" {
    pub fn pfav_encoder_open(
        config: *const PfavEncoderConfig,
        out: *mut *mut PfavEncoder,
        err: *mut c_char,
        err_cap: usize,
    ) -> c_int;
    pub fn pfav_encoder_encode_blank(
        encoder: *mut PfavEncoder,
        err: *mut c_char,
        err_cap: usize,
    ) -> c_int;
    pub fn pfav_encoder_close(encoder: *mut PfavEncoder);
    pub fn pfav_encoder_available(name: *const c_char) -> c_int;
    pub fn pfav_encoder_config_size() -> usize;
    pub fn pfav_encoder_pix_fmt_supported(name: *const c_char, pix_fmt: *const c_char) -> c_int;
    pub fn pfav_encoder_convert_bgra(
        encoder: *mut PfavEncoder,
        bgra: *const u8,
        width: i32,
        height: i32,
        stride: i32,
        err: *mut c_char,
        err_cap: usize,
    ) -> c_int;
    pub fn pfav_encoder_send_converted(
        encoder: *mut PfavEncoder,
        pts: i64,
        force_key: i32,
        err: *mut c_char,
        err_cap: usize,
    ) -> c_int;
    pub fn pfav_encoder_send_eof(
        encoder: *mut PfavEncoder,
        err: *mut c_char,
        err_cap: usize,
    ) -> c_int;
    pub fn pfav_encoder_receive(
        encoder: *mut PfavEncoder,
        out: *mut PfavPacket,
        err: *mut c_char,
        err_cap: usize,
    ) -> c_int;
    pub fn pfav_encoder_set_rate(
        encoder: *mut PfavEncoder,
        bit_rate: i64,
        max_rate: i64,
        min_rate: i64,
        buffer_size: i64,
        err: *mut c_char,
        err_cap: usize,
    ) -> c_int;
    pub fn pfav_decoder_open(
        name: *const c_char,
        threads: i32,
        out: *mut *mut PfavDecoder,
        err: *mut c_char,
        err_cap: usize,
    ) -> c_int;
    pub fn pfav_decoder_available(name: *const c_char) -> c_int;
    pub fn pfav_decoder_send(
        decoder: *mut PfavDecoder,
        data: *const u8,
        size: usize,
        pts: i64,
        err: *mut c_char,
        err_cap: usize,
    ) -> c_int;
    pub fn pfav_decoder_receive(
        decoder: *mut PfavDecoder,
        out: *mut PfavPicture,
        err: *mut c_char,
        err_cap: usize,
    ) -> c_int;
    pub fn pfav_decoder_close(decoder: *mut PfavDecoder);
    pub fn pfav_packet_size() -> usize;
    pub fn pfav_picture_size() -> usize;
    pub fn pfav_set_log_sink(sink: Option<PfavLogSink>);
    pub fn pfav_set_log_level(av_level: c_int);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_mirror_matches_the_c_layout() {
        // SAFETY: pfav_encoder_config_size takes no arguments and only
        // returns a constant.
        let c_size = unsafe { pfav_encoder_config_size() };
        assert_eq!(std::mem::size_of::<PfavEncoderConfig>(), c_size);
    }

    #[test]
    fn packet_and_picture_mirrors_match_the_c_layout() {
        // SAFETY: both functions take no arguments and return constants.
        let (packet, picture) = unsafe { (pfav_packet_size(), pfav_picture_size()) };
        assert_eq!(std::mem::size_of::<PfavPacket>(), packet);
        assert_eq!(std::mem::size_of::<PfavPicture>(), picture);
    }
}
