//! Video encoding through libavcodec (via the C shim `csrc/av_glue.c`).
//!
//! This slice has the pieces the encoder probe needs: the raw shim bindings
//! ([`ffi`]), a safe open/close wrapper ([`libav`]), the av_log bridge into
//! the native log queue ([`libav_log`]) and the probe itself ([`probe`]).

pub mod ffi;
pub mod libav;
pub mod libav_log;
pub mod probe;

use std::fmt;

/// Video codec of an encoder candidate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Codec {
    H264,
    Hevc,
    Av1,
}

impl Codec {
    /// Name used in JSON (`"h264"`, `"hevc"`, `"av1"`).
    pub fn as_str(self) -> &'static str {
        match self {
            Codec::H264 => "h264",
            Codec::Hevc => "hevc",
            Codec::Av1 => "av1",
        }
    }
}

impl fmt::Display for Codec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where an encoder runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Backend {
    /// NVIDIA NVENC (needs libcuda / an NVIDIA GPU).
    Nvenc,
    /// VAAPI on a DRM render node (Intel/AMD).
    Vaapi,
    /// CPU encoder.
    Software,
}

impl Backend {
    /// Name used in JSON (`"nvenc"`, `"vaapi"`, `"software"`).
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Nvenc => "nvenc",
            Backend::Vaapi => "vaapi",
            Backend::Software => "software",
        }
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
