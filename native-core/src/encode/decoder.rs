//! Low-delay software video decoder for the client and for tests: one
//! packet (an Annex-B access unit or an AV1 temporal unit) in, at most one
//! picture out, as 8-bit planes.
//!
//! Decoders: libavcodec's `h264` and `hevc`, and `libdav1d` for AV1 (falling
//! back to `libaom-av1`; FFmpeg's native `av1` decoder needs a hardware
//! accelerator). They run with slice threads only and
//! AV_CODEC_FLAG_LOW_DELAY, so no frame waits for a later one, and with
//! AV_EF_EXPLODE, so damaged input is an error rather than a concealed
//! picture: the client answers an error with a key-frame request.

use std::collections::VecDeque;
use std::fmt;

use super::libav::{self, libav_call, AvError, AvErrorKind, Decoder, Picture, Received, Sent};
use super::libav_log::CapturedLine;
use super::Codec;

/// A decoded picture, converted to 8 bits per sample.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DecodedFrame {
    pub width: u32,
    pub height: u32,
    /// Bits per sample of the coded stream (8 or 10); the planes here are
    /// always 8-bit (deeper samples are rounded).
    pub bit_depth: u32,
    /// Luma, `y_stride` bytes per row (= `width`: rows are packed).
    pub y: Vec<u8>,
    pub y_stride: usize,
    /// Chroma planes (empty for monochrome streams), `uv_stride` bytes per
    /// row (= `chroma_width`).
    pub u: Vec<u8>,
    pub v: Vec<u8>,
    pub uv_stride: usize,
    /// `width` for 4:4:4, half (rounded up) for 4:2:0.
    pub chroma_width: u32,
    pub chroma_height: u32,
    /// Number of the packet that produced this picture, counting the
    /// decoder's [`VideoDecoder::decode`] calls from 0.
    pub pts: i64,
    pub keyframe: bool,
}

impl DecodedFrame {
    /// Luma sample at (x, y).
    pub fn luma(&self, x: u32, y: u32) -> u8 {
        self.y[y as usize * self.y_stride + x as usize]
    }
}

/// A failed decoder operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// None of the codec's decoders is built into this libavcodec.
    NotBuilt(String),
    /// avcodec_open2 failed.
    Open {
        decoder: String,
        message: String,
        libav: Vec<String>,
    },
    /// The data could not be decoded (damaged, truncated or not the codec):
    /// av_strerror text plus the libav lines of the failing call.
    InvalidData {
        decoder: String,
        message: String,
        libav: Vec<String>,
    },
    /// The decoder produced a picture layout this module does not convert.
    Unsupported(String),
    /// An empty packet was passed.
    EmptyPacket,
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let with_lines = |f: &mut fmt::Formatter<'_>, libav: &[String]| {
            if libav.is_empty() {
                Ok(())
            } else {
                write!(f, " (libav: {})", libav.join("; "))
            }
        };
        match self {
            DecodeError::NotBuilt(m) => f.write_str(m),
            DecodeError::Open {
                decoder,
                message,
                libav,
            } => {
                write!(f, "{decoder}: {message}")?;
                with_lines(f, libav)
            }
            DecodeError::InvalidData {
                decoder,
                message,
                libav,
            } => {
                write!(f, "{decoder}: {message}")?;
                with_lines(f, libav)
            }
            DecodeError::Unsupported(m) => write!(f, "unsupported: {m}"),
            DecodeError::EmptyPacket => f.write_str("empty packet"),
        }
    }
}

impl std::error::Error for DecodeError {}

/// Decoder names per codec, in preference order.
pub fn decoder_names(codec: Codec) -> &'static [&'static str] {
    match codec {
        Codec::H264 => &["h264"],
        Codec::Hevc => &["hevc"],
        Codec::Av1 => &["libdav1d", "libaom-av1"],
    }
}

/// An open low-delay decoder.
#[derive(Debug)]
pub struct VideoDecoder {
    name: &'static str,
    decoder: Decoder,
    next_pts: i64,
    /// Pictures received beyond the one returned (never, for the streams
    /// our encoders produce).
    queue: VecDeque<DecodedFrame>,
}

fn lines_text(lines: Vec<CapturedLine>) -> Vec<String> {
    lines.into_iter().map(|l| l.text).collect()
}

impl VideoDecoder {
    /// Opens the first available decoder for `codec` with an automatic
    /// slice-thread count.
    pub fn open(codec: Codec) -> Result<VideoDecoder, DecodeError> {
        let names = decoder_names(codec);
        let Some(&name) = names.iter().find(|n| libav::decoder_built(n)) else {
            return Err(DecodeError::NotBuilt(format!(
                "no {codec} decoder built into this libavcodec (tried {})",
                names.join(", ")
            )));
        };
        const AUTOMATIC_THREADS: u32 = 0;
        let decoder =
            libav_call(|| Decoder::open(name, AUTOMATIC_THREADS)).map_err(|(e, lines)| {
                DecodeError::Open {
                    decoder: name.to_string(),
                    message: e.message,
                    libav: lines_text(lines),
                }
            })?;
        crate::pf_debug!("decode", "{name} opened for {codec}");
        Ok(VideoDecoder {
            name,
            decoder,
            next_pts: 0,
            queue: VecDeque::new(),
        })
    }

    /// libavcodec name of the decoder in use.
    pub fn decoder_name(&self) -> &str {
        self.name
    }

    /// Decodes one packet and returns the oldest picture available: with
    /// our low-latency streams, the packet's own picture. `Ok(None)` if the
    /// packet yielded no picture (parameter sets alone, or data the decoder
    /// skipped as unusable — in a stream of ours, treat it like an error and
    /// ask for a key frame). Damaged data is an [`DecodeError::InvalidData`].
    pub fn decode(&mut self, data: &[u8]) -> Result<Option<DecodedFrame>, DecodeError> {
        if data.is_empty() {
            return Err(DecodeError::EmptyPacket);
        }
        let pts = self.next_pts;
        self.next_pts += 1;
        let (decoder, queue) = (&mut self.decoder, &mut self.queue);
        let result = libav_call(|| -> Result<(), AvError> {
            if decoder.send(data, pts)? == Sent::Full {
                // Only if pictures were left behind: take them, retry once.
                receive_all(decoder, queue)?;
                if decoder.send(data, pts)? == Sent::Full {
                    return Err(AvError {
                        kind: AvErrorKind::Decode,
                        message: "decoder refuses input although drained".into(),
                    });
                }
            }
            receive_all(decoder, queue)
        });
        if let Err((e, lines)) = result {
            return Err(self.failure(e, lines));
        }
        Ok(self.queue.pop_front())
    }

    fn failure(&self, e: AvError, lines: Vec<CapturedLine>) -> DecodeError {
        match e.kind {
            AvErrorKind::Unsupported => DecodeError::Unsupported(e.message),
            _ => DecodeError::InvalidData {
                decoder: self.name.to_string(),
                message: e.message,
                libav: lines_text(lines),
            },
        }
    }
}

/// Receives every picture the decoder has into `queue`.
fn receive_all(decoder: &mut Decoder, queue: &mut VecDeque<DecodedFrame>) -> Result<(), AvError> {
    loop {
        match decoder.receive()? {
            Received::Item(picture) => queue.push_back(to_frame(&picture)),
            Received::Again | Received::Eof => return Ok(()),
        }
    }
}

/// Copies a picture into packed 8-bit planes.
fn to_frame(p: &Picture<'_>) -> DecodedFrame {
    let chroma_width = p.width.div_ceil(1 << p.log2_chroma_w);
    let chroma_height = p.height.div_ceil(1 << p.log2_chroma_h);
    let copy = |plane: usize, width: u32, height: u32| {
        pack_plane(
            p.planes[plane],
            p.linesizes[plane],
            width as usize,
            height as usize,
            p.bit_depth,
        )
    };
    let has_chroma = !p.planes[1].is_empty();
    DecodedFrame {
        width: p.width,
        height: p.height,
        bit_depth: p.bit_depth,
        y: copy(0, p.width, p.height),
        y_stride: p.width as usize,
        u: if has_chroma {
            copy(1, chroma_width, chroma_height)
        } else {
            Vec::new()
        },
        v: if has_chroma {
            copy(2, chroma_width, chroma_height)
        } else {
            Vec::new()
        },
        uv_stride: if has_chroma { chroma_width as usize } else { 0 },
        chroma_width: if has_chroma { chroma_width } else { 0 },
        chroma_height: if has_chroma { chroma_height } else { 0 },
        pts: p.pts,
        keyframe: p.key,
    }
}

/// Packs `height` rows of `width` samples from a plane with `linesize`
/// bytes per row into 8-bit samples; deeper samples (little-endian u16) are
/// rounded to the nearest 8-bit value.
pub fn pack_plane(
    src: &[u8],
    linesize: usize,
    width: usize,
    height: usize,
    bit_depth: u32,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(width * height);
    for row in src.chunks(linesize).take(height) {
        if bit_depth <= 8 {
            out.extend_from_slice(&row[..width]);
        } else {
            let shift = bit_depth - 8;
            let half = 1u32 << (shift - 1);
            out.extend(row[..width * 2].chunks_exact(2).map(|s| {
                let sample = u32::from(u16::from_le_bytes([s[0], s[1]]));
                ((sample + half) >> shift).min(u32::from(u8::MAX)) as u8
            }));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_codec_has_a_decoder() {
        for codec in [Codec::H264, Codec::Hevc, Codec::Av1] {
            let d = VideoDecoder::open(codec).unwrap_or_else(|e| panic!("{codec}: {e}"));
            assert_eq!(d.decoder_name(), decoder_names(codec)[0]);
        }
    }

    #[test]
    fn empty_packets_are_rejected() {
        let mut d = VideoDecoder::open(Codec::H264).unwrap();
        assert_eq!(d.decode(&[]), Err(DecodeError::EmptyPacket));
    }

    #[test]
    fn ten_bit_samples_round_to_eight() {
        // Rows of 2 samples, linesize 6 (2 bytes of padding per row).
        let plane: Vec<u8> = [0u16, 1023, 0xffff, 514, 2, 1]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        assert_eq!(pack_plane(&plane, 6, 2, 2, 10), [0, 255, 129, 1]);
        let eight = [1u8, 2, 9, 3, 4, 9];
        assert_eq!(pack_plane(&eight, 3, 2, 2, 8), [1, 2, 3, 4]);
    }
}
