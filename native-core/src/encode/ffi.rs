//! Raw bindings to the C shim `csrc/av_glue.{h,c}`: `#[repr(C)]` mirrors of
//! its structs, its return codes, the libav log levels it passes through, and
//! the `extern "C"` declarations. No logic lives here; see [`super::libav`]
//! for the safe wrapper.

use std::ffi::{c_char, c_int};

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

/// `PFAV_HW_NONE`: software (yuv420p) input frames.
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
}

/// Opaque `struct pfav_encoder`.
#[repr(C)]
pub struct PfavEncoder {
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
}
