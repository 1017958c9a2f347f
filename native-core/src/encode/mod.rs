//! Video encoding and decoding through libavcodec (via the C shim
//! `csrc/av_glue.c`).
//!
//! Layers, bottom up: the raw shim bindings ([`ffi`]); safe wrappers over
//! them ([`libav`]); the av_log bridge into the native log queue
//! ([`libav_log`]); the encoder probe ([`probe`]); the per-encoder
//! low-latency configuration ([`tuning`]); the encoder speed benchmark
//! ([`speed`]); the streaming [`VideoEncoder`]
//! (BGRA [`Frame`]s in, Annex-B / AV1 temporal units out, [`video`]) and
//! [`VideoDecoder`] ([`decoder`]); and small bitstream readers for NAL and
//! OBU headers ([`bitstream`]).

pub mod bitstream;
pub mod decoder;
pub mod ffi;
pub mod libav;
pub mod libav_log;
pub mod probe;
pub mod speed;
pub mod tuning;
pub mod video;

#[cfg(test)]
mod roundtrip_tests;
#[cfg(test)]
mod test_pattern;

pub use decoder::{DecodeError, DecodedFrame, VideoDecoder};
pub use tuning::{BitDepth, BitrateChange, Chroma, KeyFrameRequest, Speed};
pub use video::{
    EncodeError, EncodedFrame, EncoderPreference, EncoderSettings, SkipKind, SkippedEncoder,
    VideoEncoder,
};

use std::fmt;

/// Encoders take the capture module's frames as they are.
pub use crate::capture::{Frame, PixelFormat};

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
