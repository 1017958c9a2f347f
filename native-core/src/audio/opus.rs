//! Opus encoding and decoding at 48 kHz through libopus, configured the way
//! GameStream clients (Moonlight) expect.
//!
//! * Stereo uses the plain Opus API (`opus_encoder_create`); 5.1 and 7.1 use
//!   the multistream API with explicit streams / coupled streams / mapping
//!   (`opus_multistream_encoder_create`). A one-stream multistream packet is
//!   byte-identical to a plain Opus packet, so the decoder side can use
//!   either.
//! * Application `OPUS_APPLICATION_RESTRICTED_LOWDELAY`: CELT only, 2.5 ms
//!   look-ahead (AUDIO adds 4 ms more), and it allows 5 ms frames, which
//!   Moonlight requests by default; game audio is music and effects rather
//!   than speech, so SILK's speech modes would not help. This is also what
//!   Sunshine uses.
//! * Constant bitrate (`OPUS_SET_VBR(0)`): GameStream's audio FEC needs every
//!   packet of a Reed–Solomon block to have the same length.
//! * Frame durations 5, 10 and 20 ms only (see [`FrameDuration`]).
//!
//! The stream layouts and bitrates are the ones Sunshine advertises (see
//! `docs/gamestream-protocol.md` §8.5): encoder input order FL FR C LFE BL BR
//! SL SR with the identity mapping.
//!
//! The variadic `opus_*_ctl` calls go through the non-variadic wrappers in
//! `csrc/audio_glue.c`.

use std::ffi::CStr;
use std::os::raw::{c_char, c_int};
use std::ptr::NonNull;

use super::{AudioError, ChannelLayout, SAMPLE_RATE_HZ};

/// `OPUS_OK`.
const OPUS_OK: c_int = 0;
/// `OPUS_APPLICATION_RESTRICTED_LOWDELAY` (opus_defines.h; checked by a
/// static assertion in `csrc/audio_glue.c`).
const OPUS_APPLICATION_RESTRICTED_LOWDELAY: c_int = 2051;

/// Largest frame Opus can put in one packet: 120 ms at 48 kHz. A decode
/// buffer of this many samples per channel accepts every valid packet.
pub const MAX_FRAME_SAMPLES_PER_CHANNEL: usize = 5760;

/// Most channels any GameStream layout has (7.1).
pub const MAX_CHANNELS: usize = 8;

/// Opus's own bitrate limits (it clamps to them silently); we reject values
/// outside instead, so the CBR packet size stays what the caller asked for.
const MIN_BITRATE_PER_CHANNEL: u32 = 500;
const MAX_BITRATE_PER_CHANNEL: u32 = 300_000;

/// Largest single-stream Opus packet (RFC 6716 §3.2.1: a frame is at most
/// 1275 bytes, plus one TOC byte).
const MAX_SINGLE_STREAM_PACKET_BYTES: usize = 1276;

/// Opaque libopus state types.
#[repr(C)]
struct RawOpusEncoder {
    _opaque: [u8; 0],
}
#[repr(C)]
struct RawOpusMsEncoder {
    _opaque: [u8; 0],
}
#[repr(C)]
struct RawOpusDecoder {
    _opaque: [u8; 0],
}
#[repr(C)]
struct RawOpusMsDecoder {
    _opaque: [u8; 0],
}

extern "C" {
    fn opus_strerror(error: c_int) -> *const c_char;

    fn opus_encoder_create(
        sample_rate: i32,
        channels: c_int,
        application: c_int,
        error: *mut c_int,
    ) -> *mut RawOpusEncoder;
    fn opus_encode(
        encoder: *mut RawOpusEncoder,
        pcm: *const i16,
        frame_size: c_int,
        data: *mut u8,
        max_data_bytes: i32,
    ) -> i32;
    fn opus_encoder_destroy(encoder: *mut RawOpusEncoder);

    fn opus_multistream_encoder_create(
        sample_rate: i32,
        channels: c_int,
        streams: c_int,
        coupled_streams: c_int,
        mapping: *const u8,
        application: c_int,
        error: *mut c_int,
    ) -> *mut RawOpusMsEncoder;
    fn opus_multistream_encode(
        encoder: *mut RawOpusMsEncoder,
        pcm: *const i16,
        frame_size: c_int,
        data: *mut u8,
        max_data_bytes: i32,
    ) -> c_int;
    fn opus_multistream_encoder_destroy(encoder: *mut RawOpusMsEncoder);

    fn opus_decoder_create(
        sample_rate: i32,
        channels: c_int,
        error: *mut c_int,
    ) -> *mut RawOpusDecoder;
    fn opus_decode(
        decoder: *mut RawOpusDecoder,
        data: *const u8,
        len: i32,
        pcm: *mut i16,
        frame_size: c_int,
        decode_fec: c_int,
    ) -> c_int;
    fn opus_decoder_destroy(decoder: *mut RawOpusDecoder);

    fn opus_multistream_decoder_create(
        sample_rate: i32,
        channels: c_int,
        streams: c_int,
        coupled_streams: c_int,
        mapping: *const u8,
        error: *mut c_int,
    ) -> *mut RawOpusMsDecoder;
    fn opus_multistream_decode(
        decoder: *mut RawOpusMsDecoder,
        data: *const u8,
        len: i32,
        pcm: *mut i16,
        frame_size: c_int,
        decode_fec: c_int,
    ) -> c_int;
    fn opus_multistream_decoder_destroy(decoder: *mut RawOpusMsDecoder);

    // csrc/audio_glue.c
    fn pf_opus_encoder_set_bitrate(encoder: *mut RawOpusEncoder, bits_per_second: i32) -> c_int;
    fn pf_opus_encoder_set_vbr(encoder: *mut RawOpusEncoder, vbr_enabled: i32) -> c_int;
    fn pf_opus_encoder_get_lookahead(encoder: *mut RawOpusEncoder, samples: *mut i32) -> c_int;
    fn pf_opus_ms_encoder_set_bitrate(
        encoder: *mut RawOpusMsEncoder,
        bits_per_second: i32,
    ) -> c_int;
    fn pf_opus_ms_encoder_set_vbr(encoder: *mut RawOpusMsEncoder, vbr_enabled: i32) -> c_int;
    fn pf_opus_ms_encoder_get_lookahead(encoder: *mut RawOpusMsEncoder, samples: *mut i32)
        -> c_int;
}

/// `opus_strerror` text for a libopus error code.
fn opus_error_text(code: c_int) -> String {
    // SAFETY: opus_strerror accepts any int and returns a pointer to a static,
    // NUL-terminated string (never NULL; unknown codes map to "unknown error").
    let text = unsafe { CStr::from_ptr(opus_strerror(code)) };
    text.to_string_lossy().into_owned()
}

/// `AudioError::Opus` for a failed call.
fn opus_error(function: &str, code: c_int) -> AudioError {
    AudioError::Opus(format!("{function}: {}", opus_error_text(code)))
}

/// Maps a ctl wrapper's return code to a result.
fn check_ctl(function: &str, code: c_int) -> Result<(), AudioError> {
    if code == OPUS_OK {
        Ok(())
    } else {
        Err(opus_error(function, code))
    }
}

/// Packet (frame) duration. GameStream clients request 5 ms (default) or
/// 10 ms; 20 ms is Opus's most efficient size and useful off GameStream.
/// Other Opus durations (2.5, 40, 60 ms) are rejected: 2.5 ms doubles the
/// packet rate for little latency gain, and ≥ 40 ms is too laggy for games.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FrameDuration {
    /// 5 ms, 240 samples per channel.
    Ms5,
    /// 10 ms, 480 samples per channel.
    Ms10,
    /// 20 ms, 960 samples per channel.
    Ms20,
}

impl FrameDuration {
    /// Every supported duration, shortest first.
    pub const ALL: [FrameDuration; 3] =
        [FrameDuration::Ms5, FrameDuration::Ms10, FrameDuration::Ms20];

    /// Duration in milliseconds (GameStream's `packetDuration`).
    pub const fn millis(self) -> u32 {
        match self {
            FrameDuration::Ms5 => 5,
            FrameDuration::Ms10 => 10,
            FrameDuration::Ms20 => 20,
        }
    }

    /// Samples per channel in one frame at 48 kHz.
    pub const fn samples_per_channel(self) -> usize {
        (SAMPLE_RATE_HZ / 1000 * self.millis()) as usize
    }

    /// The duration for `millis`, if supported.
    pub fn from_millis(millis: u32) -> Result<FrameDuration, AudioError> {
        Self::ALL
            .into_iter()
            .find(|d| d.millis() == millis)
            .ok_or_else(|| {
                AudioError::InvalidArgument(format!(
                    "unsupported Opus frame duration {millis} ms (use 5, 10 or 20)"
                ))
            })
    }

    /// The duration whose frame has `samples` samples per channel.
    pub fn from_samples_per_channel(samples: usize) -> Result<FrameDuration, AudioError> {
        Self::ALL
            .into_iter()
            .find(|d| d.samples_per_channel() == samples)
            .ok_or_else(|| {
                AudioError::InvalidArgument(format!(
                    "unsupported Opus frame size {samples} samples per channel (use 240, 480 or 960)"
                ))
            })
    }

    /// Frames per second (200, 100, 50).
    const fn frames_per_second(self) -> u32 {
        1000 / self.millis()
    }
}

/// Normal or high-quality GameStream audio (`x-nv-audio.surround.AudioQuality`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AudioQuality {
    /// Coupled streams, moderate bitrate.
    Normal,
    /// One uncoupled stream per surround channel and a much higher bitrate;
    /// stereo keeps its one coupled stream.
    High,
}

/// How channels are split into Opus streams: the parameters of
/// `opus_multistream_*_create` and of GameStream's `surround-params`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct OpusStreamConfig {
    /// Channel count: 2, 6 or 8.
    pub channels: u8,
    /// Opus streams in each packet.
    pub streams: u8,
    /// How many of the streams are coupled (stereo) streams; they carry
    /// decoded channels 0..2×coupled, the mono streams the rest.
    pub coupled_streams: u8,
    /// For each channel (in layout order) the decoded channel it takes;
    /// only the first `channels` entries are used, the rest are 0.
    pub mapping: [u8; MAX_CHANNELS],
}

impl OpusStreamConfig {
    /// Stereo: one coupled stream (normal and high quality alike).
    pub const STEREO: OpusStreamConfig = OpusStreamConfig {
        channels: 2,
        streams: 1,
        coupled_streams: 1,
        mapping: [0, 1, 0, 0, 0, 0, 0, 0],
    };
    /// 5.1: (FL FR) (C LFE) coupled, BL and BR mono — 4 streams, 2 coupled.
    pub const SURROUND51: OpusStreamConfig = OpusStreamConfig {
        channels: 6,
        streams: 4,
        coupled_streams: 2,
        mapping: [0, 1, 2, 3, 4, 5, 0, 0],
    };
    /// High-quality 5.1: six mono streams.
    pub const SURROUND51_HIGH_QUALITY: OpusStreamConfig = OpusStreamConfig {
        channels: 6,
        streams: 6,
        coupled_streams: 0,
        mapping: [0, 1, 2, 3, 4, 5, 0, 0],
    };
    /// 7.1: (FL FR) (C LFE) (BL BR) coupled, SL and SR mono — 5 streams, 3 coupled.
    pub const SURROUND71: OpusStreamConfig = OpusStreamConfig {
        channels: 8,
        streams: 5,
        coupled_streams: 3,
        mapping: [0, 1, 2, 3, 4, 5, 6, 7],
    };
    /// High-quality 7.1: eight mono streams.
    pub const SURROUND71_HIGH_QUALITY: OpusStreamConfig = OpusStreamConfig {
        channels: 8,
        streams: 8,
        coupled_streams: 0,
        mapping: [0, 1, 2, 3, 4, 5, 6, 7],
    };

    /// The GameStream configuration for a layout and quality.
    pub const fn for_layout(layout: ChannelLayout, quality: AudioQuality) -> OpusStreamConfig {
        match (layout, quality) {
            (ChannelLayout::Stereo, _) => Self::STEREO,
            (ChannelLayout::Surround51, AudioQuality::Normal) => Self::SURROUND51,
            (ChannelLayout::Surround51, AudioQuality::High) => Self::SURROUND51_HIGH_QUALITY,
            (ChannelLayout::Surround71, AudioQuality::Normal) => Self::SURROUND71,
            (ChannelLayout::Surround71, AudioQuality::High) => Self::SURROUND71_HIGH_QUALITY,
        }
    }

    /// The used part of [`Self::mapping`].
    pub fn mapping(&self) -> &[u8] {
        &self.mapping[..usize::from(self.channels).min(MAX_CHANNELS)]
    }

    /// The channel layout, if the channel count is a supported one.
    pub fn layout(&self) -> Result<ChannelLayout, AudioError> {
        ChannelLayout::from_channel_count(self.channels).ok_or_else(|| {
            AudioError::InvalidArgument(format!(
                "unsupported channel count {} (use 2, 6 or 8)",
                self.channels
            ))
        })
    }

    /// Checks the invariants libopus requires, so bad values become an
    /// `InvalidArgument` with a reason rather than a bare "invalid argument".
    pub fn validate(&self) -> Result<ChannelLayout, AudioError> {
        let layout = self.layout()?;
        let coded_channels = u16::from(self.streams) + u16::from(self.coupled_streams);
        if self.streams == 0 || self.coupled_streams > self.streams {
            return Err(AudioError::InvalidArgument(format!(
                "need 1 or more streams and coupled ≤ streams, got {} streams / {} coupled",
                self.streams, self.coupled_streams
            )));
        }
        if coded_channels > u16::from(self.channels) {
            return Err(AudioError::InvalidArgument(format!(
                "{} streams + {} coupled code more channels than the {} present",
                self.streams, self.coupled_streams, self.channels
            )));
        }
        if let Some(bad) = self
            .mapping()
            .iter()
            .find(|&&m| u16::from(m) >= coded_channels)
        {
            return Err(AudioError::InvalidArgument(format!(
                "mapping entry {bad} ≥ {coded_channels} coded channels"
            )));
        }
        Ok(layout)
    }

    /// Whether this is the plain stereo layout that the single-stream Opus
    /// API handles.
    fn is_single_stereo_stream(&self) -> bool {
        self.channels == 2
            && self.streams == 1
            && self.coupled_streams == 1
            && self.mapping() == [0, 1]
    }

    /// The `a=fmtp:97 surround-params=` value a host advertises in its RTSP
    /// DESCRIBE reply: `<channels><streams><coupled><mapping digits>`.
    ///
    /// Moonlight reorders the *normal-quality* string (it expects GFE's order
    /// FL FR C RL RR SL SR LFE): decoder mapping `[3]` = advertised last digit,
    /// `[4..]` = advertised `[3..n-1]`. For the client to end up with this
    /// config's mapping `d`, normal quality therefore advertises
    /// `d0 d1 d2 d4 … d(n−1) d3`; high quality is used unreordered. (For 5.1
    /// this equals Sunshine's string `642012453`; for 7.1 Sunshine advertises
    /// `85301245367`, which Moonlight turns into `0 1 2 7 4 5 3 6` — see the
    /// open question in docs/gamestream-protocol.md §13 — whereas this yields the identity.)
    pub fn surround_params(&self, quality: AudioQuality) -> String {
        let mapping = self.mapping();
        let mut advertised: Vec<u8> = mapping.to_vec();
        if quality == AudioQuality::Normal && mapping.len() > 3 {
            advertised = mapping[..3]
                .iter()
                .chain(&mapping[4..])
                .chain(&mapping[3..4])
                .copied()
                .collect();
        }
        let mut text = format!("{}{}{}", self.channels, self.streams, self.coupled_streams);
        for digit in advertised {
            text.push(char::from(b'0' + digit));
        }
        text
    }

    /// Client side of [`Self::surround_params`]: parses an advertised value
    /// and applies Moonlight's reordering for normal quality, returning the
    /// config a decoder must use. Each field is one decimal digit.
    pub fn from_surround_params(
        text: &str,
        quality: AudioQuality,
    ) -> Result<OpusStreamConfig, AudioError> {
        let invalid =
            |why: &str| AudioError::InvalidArgument(format!("surround-params {text:?}: {why}"));
        let digits: Vec<u8> = text
            .bytes()
            .map(|b| {
                if b.is_ascii_digit() {
                    Ok(b - b'0')
                } else {
                    Err(invalid("not all decimal digits"))
                }
            })
            .collect::<Result<_, _>>()?;
        let (&channels, rest) = digits.split_first().ok_or_else(|| invalid("empty"))?;
        let channel_count = usize::from(channels);
        if !(2..=MAX_CHANNELS).contains(&channel_count) || rest.len() != 2 + channel_count {
            return Err(invalid("length does not match the channel count"));
        }
        let advertised = &rest[2..];
        let mut mapping = [0u8; MAX_CHANNELS];
        if quality == AudioQuality::Normal && channel_count > 3 {
            mapping[..3].copy_from_slice(&advertised[..3]);
            mapping[3] = advertised[channel_count - 1];
            mapping[4..channel_count].copy_from_slice(&advertised[3..channel_count - 1]);
        } else {
            mapping[..channel_count].copy_from_slice(advertised);
        }
        let config = OpusStreamConfig {
            channels,
            streams: rest[0],
            coupled_streams: rest[1],
            mapping,
        };
        config.validate()?;
        Ok(config)
    }
}

/// Bitrate Sunshine uses for each GameStream configuration (docs/gamestream-protocol.md
/// §8.5), in bit/s.
pub const fn gamestream_bitrate_bps(layout: ChannelLayout, quality: AudioQuality) -> u32 {
    match (layout, quality) {
        (ChannelLayout::Stereo, AudioQuality::Normal) => 96_000,
        (ChannelLayout::Stereo, AudioQuality::High) => 512_000,
        (ChannelLayout::Surround51, AudioQuality::Normal) => 256_000,
        (ChannelLayout::Surround51, AudioQuality::High) => 1_536_000,
        (ChannelLayout::Surround71, AudioQuality::Normal) => 450_000,
        (ChannelLayout::Surround71, AudioQuality::High) => 2_048_000,
    }
}

enum EncoderHandle {
    SingleStream(NonNull<RawOpusEncoder>),
    MultiStream(NonNull<RawOpusMsEncoder>),
}

/// A CBR Opus encoder for one stream configuration and frame duration.
pub struct OpusEncoder {
    handle: EncoderHandle,
    config: OpusStreamConfig,
    frame_duration: FrameDuration,
    bitrate_bps: u32,
    lookahead_samples: usize,
}

// SAFETY: libopus encoder state is plain heap memory with no thread
// affinity or thread-local use; `OpusEncoder` owns it exclusively and every
// access goes through `&mut self` (or `&self` for reads of Rust fields only),
// so moving it to another thread is sound.
unsafe impl Send for OpusEncoder {}

impl std::fmt::Debug for OpusEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpusEncoder")
            .field("config", &self.config)
            .field("frame_duration", &self.frame_duration)
            .field("bitrate_bps", &self.bitrate_bps)
            .finish()
    }
}

impl OpusEncoder {
    /// An encoder for `config` producing `frame_duration` packets at
    /// `bitrate_bps` (constant bitrate, restricted-low-delay application).
    pub fn new(
        config: OpusStreamConfig,
        frame_duration: FrameDuration,
        bitrate_bps: u32,
    ) -> Result<OpusEncoder, AudioError> {
        config.validate()?;
        Self::check_bitrate(&config, bitrate_bps)?;
        let sample_rate = SAMPLE_RATE_HZ as i32;
        let mut error: c_int = OPUS_OK;
        let handle = if config.is_single_stereo_stream() {
            // SAFETY: `error` is a valid out-pointer; the other arguments are
            // plain integers. The returned pointer is NULL or an encoder we
            // now own.
            let raw = unsafe {
                opus_encoder_create(
                    sample_rate,
                    c_int::from(config.channels),
                    OPUS_APPLICATION_RESTRICTED_LOWDELAY,
                    &mut error,
                )
            };
            NonNull::new(raw)
                .filter(|_| error == OPUS_OK)
                .map(EncoderHandle::SingleStream)
                .ok_or_else(|| opus_error("opus_encoder_create", error))?
        } else {
            // SAFETY: `mapping` points to at least `channels` bytes (the
            // array holds 8 ≥ channels, checked by `validate`) and lives for
            // the call; `error` is a valid out-pointer.
            let raw = unsafe {
                opus_multistream_encoder_create(
                    sample_rate,
                    c_int::from(config.channels),
                    c_int::from(config.streams),
                    c_int::from(config.coupled_streams),
                    config.mapping.as_ptr(),
                    OPUS_APPLICATION_RESTRICTED_LOWDELAY,
                    &mut error,
                )
            };
            NonNull::new(raw)
                .filter(|_| error == OPUS_OK)
                .map(EncoderHandle::MultiStream)
                .ok_or_else(|| opus_error("opus_multistream_encoder_create", error))?
        };
        // From here on `encoder` owns the handle and frees it on any error.
        let mut encoder = OpusEncoder {
            handle,
            config,
            frame_duration,
            bitrate_bps,
            lookahead_samples: 0,
        };
        encoder.set_vbr(false)?;
        encoder.set_bitrate(bitrate_bps)?;
        encoder.lookahead_samples = encoder.query_lookahead()?;
        Ok(encoder)
    }

    /// The GameStream encoder for a layout and quality (Sunshine's stream
    /// config and bitrate).
    pub fn for_gamestream(
        layout: ChannelLayout,
        quality: AudioQuality,
        frame_duration: FrameDuration,
    ) -> Result<OpusEncoder, AudioError> {
        Self::new(
            OpusStreamConfig::for_layout(layout, quality),
            frame_duration,
            gamestream_bitrate_bps(layout, quality),
        )
    }

    fn check_bitrate(config: &OpusStreamConfig, bitrate_bps: u32) -> Result<(), AudioError> {
        let channels = u32::from(config.channels);
        let allowed = MIN_BITRATE_PER_CHANNEL * channels..=MAX_BITRATE_PER_CHANNEL * channels;
        if allowed.contains(&bitrate_bps) {
            Ok(())
        } else {
            Err(AudioError::InvalidArgument(format!(
                "bitrate {bitrate_bps} bit/s outside {}..={} for {channels} channels",
                allowed.start(),
                allowed.end()
            )))
        }
    }

    /// Changes the bitrate; takes effect with the next packet.
    pub fn set_bitrate(&mut self, bitrate_bps: u32) -> Result<(), AudioError> {
        Self::check_bitrate(&self.config, bitrate_bps)?;
        // In range by `check_bitrate`: at most 300 000 × 8 < i32::MAX.
        let bits_per_second = bitrate_bps as i32;
        match self.handle {
            // SAFETY: the handle is a live encoder owned by `self`.
            EncoderHandle::SingleStream(raw) => check_ctl("OPUS_SET_BITRATE", unsafe {
                pf_opus_encoder_set_bitrate(raw.as_ptr(), bits_per_second)
            })?,
            // SAFETY: the handle is a live encoder owned by `self`.
            EncoderHandle::MultiStream(raw) => check_ctl("OPUS_SET_BITRATE", unsafe {
                pf_opus_ms_encoder_set_bitrate(raw.as_ptr(), bits_per_second)
            })?,
        }
        self.bitrate_bps = bitrate_bps;
        Ok(())
    }

    fn set_vbr(&mut self, enabled: bool) -> Result<(), AudioError> {
        let flag = i32::from(enabled);
        match self.handle {
            // SAFETY: the handle is a live encoder owned by `self`.
            EncoderHandle::SingleStream(raw) => check_ctl("OPUS_SET_VBR", unsafe {
                pf_opus_encoder_set_vbr(raw.as_ptr(), flag)
            }),
            // SAFETY: the handle is a live encoder owned by `self`.
            EncoderHandle::MultiStream(raw) => check_ctl("OPUS_SET_VBR", unsafe {
                pf_opus_ms_encoder_set_vbr(raw.as_ptr(), flag)
            }),
        }
    }

    fn query_lookahead(&mut self) -> Result<usize, AudioError> {
        let mut samples: i32 = 0;
        let code = match self.handle {
            // SAFETY: live encoder owned by `self`; `samples` is a valid
            // out-pointer for the call.
            EncoderHandle::SingleStream(raw) => unsafe {
                pf_opus_encoder_get_lookahead(raw.as_ptr(), &mut samples)
            },
            // SAFETY: as above.
            EncoderHandle::MultiStream(raw) => unsafe {
                pf_opus_ms_encoder_get_lookahead(raw.as_ptr(), &mut samples)
            },
        };
        check_ctl("OPUS_GET_LOOKAHEAD", code)?;
        usize::try_from(samples)
            .map_err(|_| AudioError::Opus(format!("OPUS_GET_LOOKAHEAD: negative value {samples}")))
    }

    /// Current bitrate in bit/s.
    pub fn bitrate_bps(&self) -> u32 {
        self.bitrate_bps
    }

    /// The stream configuration.
    pub fn config(&self) -> &OpusStreamConfig {
        &self.config
    }

    /// The frame duration every packet has.
    pub fn frame_duration(&self) -> FrameDuration {
        self.frame_duration
    }

    /// Interleaved channel count of the input.
    pub fn channels(&self) -> usize {
        usize::from(self.config.channels)
    }

    /// Interleaved samples [`Self::encode`] expects: samples per channel of
    /// one frame × channels.
    pub fn pcm_samples_per_frame(&self) -> usize {
        self.frame_duration.samples_per_channel() * self.channels()
    }

    /// Encoder look-ahead (algorithmic delay) in samples per channel: decoded
    /// audio lags the input by this much (120 = 2.5 ms for restricted low
    /// delay).
    pub fn lookahead_samples(&self) -> usize {
        self.lookahead_samples
    }

    /// Upper bound of a packet's size at the current bitrate; `encode`
    /// requires an output buffer at least this large. With CBR every packet
    /// has the same size, at most this.
    pub fn max_packet_bytes(&self) -> usize {
        let bits_per_frame = self
            .bitrate_bps
            .div_ceil(self.frame_duration.frames_per_second());
        // +1: libopus rounds the single-stream CBR size to the nearest byte.
        let bitrate_bytes = bits_per_frame.div_ceil(8) as usize + 1;
        if self.config.is_single_stereo_stream() {
            bitrate_bytes.min(MAX_SINGLE_STREAM_PACKET_BYTES)
        } else {
            bitrate_bytes
        }
    }

    /// Encodes one frame of interleaved PCM (exactly
    /// [`Self::pcm_samples_per_frame`] samples) into `out`, which must hold at
    /// least [`Self::max_packet_bytes`]. Returns the packet length. Does not
    /// allocate.
    pub fn encode(&mut self, pcm: &[i16], out: &mut [u8]) -> Result<usize, AudioError> {
        if pcm.len() != self.pcm_samples_per_frame() {
            return Err(AudioError::InvalidArgument(format!(
                "expected {} interleaved samples ({} per channel × {} channels), got {}",
                self.pcm_samples_per_frame(),
                self.frame_duration.samples_per_channel(),
                self.channels(),
                pcm.len()
            )));
        }
        let needed = self.max_packet_bytes();
        if out.len() < needed {
            return Err(AudioError::BufferTooSmall {
                needed,
                available: out.len(),
            });
        }
        let out_capacity = i32::try_from(out.len()).unwrap_or(i32::MAX);
        // 240/480/960: fits any int.
        let frame_size = self.frame_duration.samples_per_channel() as c_int;
        let (function, result) = match self.handle {
            // SAFETY: live encoder owned by `self`; `pcm` holds exactly
            // frame_size × channels samples (checked above) and `out` is
            // writable for `out_capacity` ≤ out.len() bytes.
            EncoderHandle::SingleStream(raw) => ("opus_encode", unsafe {
                opus_encode(
                    raw.as_ptr(),
                    pcm.as_ptr(),
                    frame_size,
                    out.as_mut_ptr(),
                    out_capacity,
                )
            }),
            // SAFETY: as above, for the multistream encoder.
            EncoderHandle::MultiStream(raw) => ("opus_multistream_encode", unsafe {
                opus_multistream_encode(
                    raw.as_ptr(),
                    pcm.as_ptr(),
                    frame_size,
                    out.as_mut_ptr(),
                    out_capacity,
                )
            }),
        };
        usize::try_from(result).map_err(|_| opus_error(function, result))
    }
}

impl Drop for OpusEncoder {
    fn drop(&mut self) {
        match self.handle {
            // SAFETY: the handle came from the matching create call, is owned
            // solely by `self` and is never used after this.
            EncoderHandle::SingleStream(raw) => unsafe { opus_encoder_destroy(raw.as_ptr()) },
            // SAFETY: as above.
            EncoderHandle::MultiStream(raw) => unsafe {
                opus_multistream_encoder_destroy(raw.as_ptr())
            },
        }
    }
}

enum DecoderHandle {
    SingleStream(NonNull<RawOpusDecoder>),
    MultiStream(NonNull<RawOpusMsDecoder>),
}

/// An Opus decoder for one stream configuration (our own client and tests).
pub struct OpusDecoder {
    handle: DecoderHandle,
    config: OpusStreamConfig,
}

// SAFETY: libopus decoder state is plain heap memory with no thread affinity;
// `OpusDecoder` owns it exclusively and uses it only through `&mut self`.
unsafe impl Send for OpusDecoder {}

impl std::fmt::Debug for OpusDecoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpusDecoder")
            .field("config", &self.config)
            .finish()
    }
}

impl OpusDecoder {
    /// A 48 kHz decoder for `config`.
    pub fn new(config: OpusStreamConfig) -> Result<OpusDecoder, AudioError> {
        config.validate()?;
        let sample_rate = SAMPLE_RATE_HZ as i32;
        let mut error: c_int = OPUS_OK;
        let handle = if config.is_single_stereo_stream() {
            // SAFETY: `error` is a valid out-pointer; the result is NULL or a
            // decoder we now own.
            let raw = unsafe {
                opus_decoder_create(sample_rate, c_int::from(config.channels), &mut error)
            };
            NonNull::new(raw)
                .filter(|_| error == OPUS_OK)
                .map(DecoderHandle::SingleStream)
                .ok_or_else(|| opus_error("opus_decoder_create", error))?
        } else {
            // SAFETY: `mapping` holds 8 ≥ channels bytes and lives for the
            // call; `error` is a valid out-pointer.
            let raw = unsafe {
                opus_multistream_decoder_create(
                    sample_rate,
                    c_int::from(config.channels),
                    c_int::from(config.streams),
                    c_int::from(config.coupled_streams),
                    config.mapping.as_ptr(),
                    &mut error,
                )
            };
            NonNull::new(raw)
                .filter(|_| error == OPUS_OK)
                .map(DecoderHandle::MultiStream)
                .ok_or_else(|| opus_error("opus_multistream_decoder_create", error))?
        };
        Ok(OpusDecoder { handle, config })
    }

    /// The stream configuration.
    pub fn config(&self) -> &OpusStreamConfig {
        &self.config
    }

    /// Interleaved channel count of the output.
    pub fn channels(&self) -> usize {
        usize::from(self.config.channels)
    }

    /// Decodes one packet into `pcm` (interleaved; room for
    /// `pcm.len() / channels` samples per channel — use
    /// [`MAX_FRAME_SAMPLES_PER_CHANNEL`] to accept any packet). Returns the
    /// samples per channel written. Corrupt packets yield an error.
    pub fn decode(&mut self, packet: &[u8], pcm: &mut [i16]) -> Result<usize, AudioError> {
        if packet.is_empty() {
            return Err(AudioError::InvalidArgument(
                "empty packet (use decode_lost for a missing packet)".into(),
            ));
        }
        let packet_len = i32::try_from(packet.len()).map_err(|_| {
            AudioError::InvalidArgument(format!("packet of {} bytes", packet.len()))
        })?;
        self.decode_raw(packet.as_ptr(), packet_len, pcm, 1)
    }

    /// Conceals one lost packet of `frame_duration` (Opus packet loss
    /// concealment), writing that many samples per channel into `pcm`.
    pub fn decode_lost(
        &mut self,
        frame_duration: FrameDuration,
        pcm: &mut [i16],
    ) -> Result<usize, AudioError> {
        let needed = frame_duration.samples_per_channel() * self.channels();
        if pcm.len() < needed {
            return Err(AudioError::BufferTooSmall {
                needed,
                available: pcm.len(),
            });
        }
        self.decode_raw(
            std::ptr::null(),
            0,
            &mut pcm[..needed],
            frame_duration.samples_per_channel(),
        )
    }

    /// Shared decode call: `data` NULL means "lost packet".
    /// `min_samples_per_channel` is the least room the call needs.
    fn decode_raw(
        &mut self,
        data: *const u8,
        data_len: i32,
        pcm: &mut [i16],
        min_samples_per_channel: usize,
    ) -> Result<usize, AudioError> {
        let channels = self.channels();
        let capacity = (pcm.len() / channels).min(MAX_FRAME_SAMPLES_PER_CHANNEL);
        if capacity < min_samples_per_channel {
            return Err(AudioError::BufferTooSmall {
                needed: min_samples_per_channel * channels,
                available: pcm.len(),
            });
        }
        // ≤ 5760: fits any int.
        let frame_size = capacity as c_int;
        let (function, result) = match self.handle {
            // SAFETY: live decoder owned by `self`; `data` is NULL (with
            // length 0) or valid for `data_len` bytes; `pcm` is writable for
            // capacity × channels samples.
            DecoderHandle::SingleStream(raw) => ("opus_decode", unsafe {
                opus_decode(
                    raw.as_ptr(),
                    data,
                    data_len,
                    pcm.as_mut_ptr(),
                    frame_size,
                    0,
                )
            }),
            // SAFETY: as above, for the multistream decoder.
            DecoderHandle::MultiStream(raw) => ("opus_multistream_decode", unsafe {
                opus_multistream_decode(
                    raw.as_ptr(),
                    data,
                    data_len,
                    pcm.as_mut_ptr(),
                    frame_size,
                    0,
                )
            }),
        };
        usize::try_from(result).map_err(|_| opus_error(function, result))
    }
}

impl Drop for OpusDecoder {
    fn drop(&mut self) {
        match self.handle {
            // SAFETY: the handle came from the matching create call, is owned
            // solely by `self` and is never used after this.
            DecoderHandle::SingleStream(raw) => unsafe { opus_decoder_destroy(raw.as_ptr()) },
            // SAFETY: as above.
            DecoderHandle::MultiStream(raw) => unsafe {
                opus_multistream_decoder_destroy(raw.as_ptr())
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audio::test_signal::{channel, dominant_frequency};
    use crate::audio::tone::{Pacing, ToneSource};
    use crate::audio::{AudioFrame, AudioSource};
    use proptest::prelude::*;

    /// Encodes `frames` frames of the tone for `encoder`'s layout, decodes
    /// them, and returns (input, decoded, packet sizes), all interleaved.
    fn round_trip(encoder: &mut OpusEncoder, frames: usize) -> (Vec<i16>, Vec<i16>, Vec<usize>) {
        let layout = encoder.config().layout().unwrap();
        let mut decoder = OpusDecoder::new(*encoder.config()).unwrap();
        let mut source = ToneSource::new(layout, Pacing::Unpaced);
        let mut frame = AudioFrame::new();
        let mut packet = vec![0u8; encoder.max_packet_bytes()];
        let mut decoded_frame = vec![0i16; MAX_FRAME_SAMPLES_PER_CHANNEL * encoder.channels()];
        let (mut input, mut decoded, mut sizes) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..frames {
            source
                .read(&mut frame, encoder.frame_duration().samples_per_channel())
                .unwrap();
            let size = encoder.encode(&frame.samples, &mut packet).unwrap();
            let samples = decoder.decode(&packet[..size], &mut decoded_frame).unwrap();
            assert_eq!(samples, encoder.frame_duration().samples_per_channel());
            input.extend_from_slice(&frame.samples);
            decoded.extend_from_slice(&decoded_frame[..samples * encoder.channels()]);
            sizes.push(size);
        }
        (input, decoded, sizes)
    }

    /// Normalised cross-correlation of all channels of `decoded` against
    /// `input` delayed by `lag` samples, over `range` of input positions.
    fn correlation_at_lag(
        input: &[i16],
        decoded: &[i16],
        channels: usize,
        lag: usize,
        range: std::ops::Range<usize>,
    ) -> f64 {
        let (mut cross, mut input_energy, mut decoded_energy) = (0.0, 0.0, 0.0);
        for position in range {
            for ch in 0..channels {
                let x = f64::from(input[position * channels + ch]);
                let y = f64::from(decoded[(position + lag) * channels + ch]);
                cross += x * y;
                input_energy += x * x;
                decoded_energy += y * y;
            }
        }
        cross / (input_energy * decoded_energy).sqrt().max(1e-9)
    }

    fn snr_db_at_lag(
        input: &[i16],
        decoded: &[i16],
        channels: usize,
        lag: usize,
        range: std::ops::Range<usize>,
    ) -> f64 {
        let (mut signal, mut noise) = (0.0, 0.0);
        for position in range {
            for ch in 0..channels {
                let x = f64::from(input[position * channels + ch]);
                let y = f64::from(decoded[(position + lag) * channels + ch]);
                signal += x * x;
                noise += (x - y) * (x - y);
            }
        }
        10.0 * (signal / noise.max(1e-9)).log10()
    }

    #[test]
    fn stereo_round_trip_matches_input_after_lookahead() {
        for duration in FrameDuration::ALL {
            let mut encoder =
                OpusEncoder::new(OpusStreamConfig::STEREO, duration, 128_000).unwrap();
            let frames = 48_000 / duration.samples_per_channel() / 2; // 0.5 s
            let (input, decoded, _) = round_trip(&mut encoder, frames);
            // Skip the first 100 ms (encoder start-up) and leave room for
            // the lag at the end.
            let compare = 4_800..input.len() / 2 - 1_000;
            // Search lags below one joint period of the two tones (440 Hz
            // and 660 Hz repeat together every 48000/220 ≈ 218 samples), so
            // the best lag is unambiguous.
            let max_lag = 200;
            let (best_lag, best_correlation) = (0..=max_lag)
                .map(|lag| {
                    (
                        lag,
                        correlation_at_lag(&input, &decoded, 2, lag, compare.clone()),
                    )
                })
                .max_by(|a, b| a.1.total_cmp(&b.1))
                .unwrap();
            let snr = snr_db_at_lag(&input, &decoded, 2, best_lag, compare.clone());
            assert!(
                best_correlation > 0.9 && snr > 10.0,
                "{duration:?}: correlation {best_correlation:.3}, SNR {snr:.1} dB at lag {best_lag}"
            );
            assert_eq!(
                best_lag,
                encoder.lookahead_samples(),
                "{duration:?}: decoded lag should be the encoder's look-ahead"
            );
        }
    }

    #[test]
    fn restricted_low_delay_look_ahead_is_2_5_ms() {
        let encoder =
            OpusEncoder::new(OpusStreamConfig::STEREO, FrameDuration::Ms5, 96_000).unwrap();
        assert_eq!(encoder.lookahead_samples(), 120);
        let encoder = OpusEncoder::for_gamestream(
            ChannelLayout::Surround71,
            AudioQuality::Normal,
            FrameDuration::Ms5,
        )
        .unwrap();
        assert_eq!(encoder.lookahead_samples(), 120);
    }

    #[test]
    fn cbr_packets_have_constant_size_within_bound() {
        for layout in ChannelLayout::ALL {
            for quality in [AudioQuality::Normal, AudioQuality::High] {
                for duration in FrameDuration::ALL {
                    let mut encoder =
                        OpusEncoder::for_gamestream(layout, quality, duration).unwrap();
                    let (_, _, sizes) = round_trip(&mut encoder, 50);
                    let first = sizes[0];
                    assert!(
                        sizes.iter().all(|&s| s == first),
                        "{layout:?} {quality:?} {duration:?}: sizes vary: {sizes:?}"
                    );
                    assert!(first <= encoder.max_packet_bytes());
                    // CBR means the size follows from the bitrate: allow one
                    // byte of rounding and a stream's framing (≤ 2 bytes).
                    let expected = encoder.bitrate_bps() as f64
                        / 8.0
                        / f64::from(duration.frames_per_second());
                    if expected < MAX_SINGLE_STREAM_PACKET_BYTES as f64
                        || !encoder.config().is_single_stereo_stream()
                    {
                        assert!(
                            (first as f64 - expected).abs() <= 2.0,
                            "{layout:?} {quality:?} {duration:?}: {first} bytes, expected ≈{expected}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn bitrate_change_changes_packet_size() {
        for config in [OpusStreamConfig::STEREO, OpusStreamConfig::SURROUND51] {
            let mut encoder = OpusEncoder::new(config, FrameDuration::Ms20, 128_000).unwrap();
            let (_, _, before) = round_trip(&mut encoder, 5);
            encoder.set_bitrate(64_000).unwrap();
            assert_eq!(encoder.bitrate_bps(), 64_000);
            let (_, _, after) = round_trip(&mut encoder, 5);
            // 128 kbit/s × 20 ms = 320 bytes; 64 kbit/s → 160 bytes.
            assert_eq!(before[4], 320, "{config:?}");
            assert_eq!(after[4], 160, "{config:?}");
        }
    }

    fn assert_channel_order_preserved(
        config: OpusStreamConfig,
        decoder_config: OpusStreamConfig,
        bitrate: u32,
    ) {
        let channels = usize::from(config.channels);
        let candidates: Vec<f64> = (0..channels)
            .map(|c| f64::from(ToneSource::frequency_hz(c)))
            .collect();
        for duration in FrameDuration::ALL {
            let mut encoder = OpusEncoder::new(config, duration, bitrate).unwrap();
            let frames = 48_000 / duration.samples_per_channel() / 4; // 0.25 s
            let layout = config.layout().unwrap();
            let mut decoder = OpusDecoder::new(decoder_config).unwrap();
            let mut source = ToneSource::new(layout, Pacing::Unpaced);
            let mut frame = AudioFrame::new();
            let mut packet = vec![0u8; encoder.max_packet_bytes()];
            let mut pcm = vec![0i16; MAX_FRAME_SAMPLES_PER_CHANNEL * channels];
            let mut decoded = Vec::new();
            for _ in 0..frames {
                source
                    .read(&mut frame, duration.samples_per_channel())
                    .unwrap();
                let size = encoder.encode(&frame.samples, &mut packet).unwrap();
                let samples = decoder.decode(&packet[..size], &mut pcm).unwrap();
                decoded.extend_from_slice(&pcm[..samples * channels]);
            }
            // Skip the first 50 ms of start-up.
            let skip = 2_400 * channels;
            for ch in 0..channels {
                let signal = channel(&decoded[skip..], channels, ch);
                let (dominant, margin_db) = dominant_frequency(&signal, &candidates, 48_000.0);
                assert_eq!(
                    dominant, candidates[ch],
                    "{config:?} {duration:?} channel {ch}"
                );
                assert!(
                    margin_db > 10.0,
                    "{config:?} {duration:?} channel {ch}: margin {margin_db:.1} dB"
                );
            }
        }
    }

    #[test]
    fn surround51_round_trip_preserves_channel_order() {
        assert_channel_order_preserved(
            OpusStreamConfig::SURROUND51,
            OpusStreamConfig::SURROUND51,
            256_000,
        );
        assert_channel_order_preserved(
            OpusStreamConfig::SURROUND51_HIGH_QUALITY,
            OpusStreamConfig::SURROUND51_HIGH_QUALITY,
            1_536_000,
        );
    }

    #[test]
    fn surround71_round_trip_preserves_channel_order() {
        assert_channel_order_preserved(
            OpusStreamConfig::SURROUND71,
            OpusStreamConfig::SURROUND71,
            450_000,
        );
        assert_channel_order_preserved(
            OpusStreamConfig::SURROUND71_HIGH_QUALITY,
            OpusStreamConfig::SURROUND71_HIGH_QUALITY,
            2_048_000,
        );
    }

    #[test]
    fn advertised_surround_params_decode_in_order_after_moonlight_reordering() {
        for layout in ChannelLayout::ALL {
            for quality in [AudioQuality::Normal, AudioQuality::High] {
                let config = OpusStreamConfig::for_layout(layout, quality);
                let advertised = config.surround_params(quality);
                let client = OpusStreamConfig::from_surround_params(&advertised, quality).unwrap();
                assert_eq!(client, config, "{layout:?} {quality:?}: {advertised}");
                if layout != ChannelLayout::Stereo {
                    assert_channel_order_preserved(
                        config,
                        client,
                        gamestream_bitrate_bps(layout, quality),
                    );
                }
            }
        }
    }

    #[test]
    fn surround_params_match_gamestream_doc() {
        use AudioQuality::{High, Normal};
        assert_eq!(OpusStreamConfig::STEREO.surround_params(Normal), "21101");
        assert_eq!(
            OpusStreamConfig::SURROUND51.surround_params(Normal),
            "642012453"
        );
        assert_eq!(
            OpusStreamConfig::SURROUND51_HIGH_QUALITY.surround_params(High),
            "660012345"
        );
        assert_eq!(
            OpusStreamConfig::SURROUND71_HIGH_QUALITY.surround_params(High),
            "88001234567"
        );
        // Deliberately not Sunshine's "85301245367" (see `surround_params`).
        assert_eq!(
            OpusStreamConfig::SURROUND71.surround_params(Normal),
            "85301245673"
        );
        // Sunshine's 7.1 string gives Moonlight the mapping 0 1 2 7 4 5 3 6.
        let sunshine = OpusStreamConfig::from_surround_params("85301245367", Normal).unwrap();
        assert_eq!(sunshine.mapping(), [0, 1, 2, 7, 4, 5, 3, 6]);
        // Moonlight's 5.1 fallback when nothing is advertised.
        let fallback = OpusStreamConfig::from_surround_params("642041523", High).unwrap();
        assert_eq!((fallback.streams, fallback.coupled_streams), (4, 2));
        assert_eq!(fallback.mapping(), [0, 4, 1, 5, 2, 3]);
    }

    #[test]
    fn gamestream_bitrates_as_documented() {
        use AudioQuality::{High, Normal};
        assert_eq!(
            gamestream_bitrate_bps(ChannelLayout::Stereo, Normal),
            96_000
        );
        assert_eq!(
            gamestream_bitrate_bps(ChannelLayout::Surround51, Normal),
            256_000
        );
        assert_eq!(
            gamestream_bitrate_bps(ChannelLayout::Surround71, High),
            2_048_000
        );
    }

    #[test]
    fn frame_durations() {
        assert_eq!(FrameDuration::Ms5.samples_per_channel(), 240);
        assert_eq!(FrameDuration::Ms10.samples_per_channel(), 480);
        assert_eq!(FrameDuration::Ms20.samples_per_channel(), 960);
        assert_eq!(FrameDuration::from_millis(10).unwrap(), FrameDuration::Ms10);
        assert_eq!(
            FrameDuration::from_samples_per_channel(960).unwrap(),
            FrameDuration::Ms20
        );
        for millis in [0, 2, 3, 40, 60, 120] {
            assert!(matches!(
                FrameDuration::from_millis(millis),
                Err(AudioError::InvalidArgument(_))
            ));
        }
        for samples in [0, 120, 241, 1920, 2880] {
            assert!(FrameDuration::from_samples_per_channel(samples).is_err());
        }
    }

    #[test]
    fn wrong_frame_size_is_rejected() {
        let mut encoder =
            OpusEncoder::new(OpusStreamConfig::STEREO, FrameDuration::Ms10, 96_000).unwrap();
        let mut out = vec![0u8; 1500];
        for len in [0, 1, 480, 959, 961, 1920] {
            let pcm = vec![0i16; len];
            assert!(
                matches!(
                    encoder.encode(&pcm, &mut out),
                    Err(AudioError::InvalidArgument(_))
                ),
                "{len} samples accepted"
            );
        }
        assert!(encoder.encode(&vec![0i16; 960], &mut out).is_ok());
    }

    #[test]
    fn pcm_with_wrong_channel_count_is_rejected() {
        // 5.1 encoder fed a stereo frame of the right duration.
        let mut encoder =
            OpusEncoder::new(OpusStreamConfig::SURROUND51, FrameDuration::Ms5, 256_000).unwrap();
        let mut out = vec![0u8; 1500];
        assert!(encoder.encode(&[0i16; 240 * 2], &mut out).is_err());
        assert!(encoder.encode(&[0i16; 240 * 6], &mut out).is_ok());
    }

    #[test]
    fn invalid_stream_configs_are_rejected() {
        let bad_channels = OpusStreamConfig {
            channels: 3,
            ..OpusStreamConfig::SURROUND51
        };
        let no_streams = OpusStreamConfig {
            streams: 0,
            coupled_streams: 0,
            ..OpusStreamConfig::SURROUND51
        };
        let too_many_coupled = OpusStreamConfig {
            coupled_streams: 5,
            ..OpusStreamConfig::SURROUND51
        };
        let too_many_coded = OpusStreamConfig {
            streams: 6,
            coupled_streams: 2,
            ..OpusStreamConfig::SURROUND51
        };
        let bad_mapping = OpusStreamConfig {
            mapping: [0, 1, 2, 3, 4, 6, 0, 0],
            ..OpusStreamConfig::SURROUND51
        };
        for config in [
            bad_channels,
            no_streams,
            too_many_coupled,
            too_many_coded,
            bad_mapping,
        ] {
            assert!(
                matches!(
                    OpusEncoder::new(config, FrameDuration::Ms5, 256_000),
                    Err(AudioError::InvalidArgument(_))
                ),
                "{config:?}"
            );
            assert!(
                matches!(
                    OpusDecoder::new(config),
                    Err(AudioError::InvalidArgument(_))
                ),
                "{config:?}"
            );
        }
    }

    #[test]
    fn libopus_rejections_carry_strerror_text() {
        assert_eq!(opus_error_text(-1), "invalid argument");
        assert_eq!(opus_error_text(-2), "buffer too small");
        assert_eq!(
            opus_error("opus_encode", -1),
            AudioError::Opus("opus_encode: invalid argument".into())
        );
        // A code-3 TOC byte without its frame-count byte.
        let mut decoder = OpusDecoder::new(OpusStreamConfig::STEREO).unwrap();
        let mut pcm = vec![0i16; MAX_FRAME_SAMPLES_PER_CHANNEL * 2];
        match decoder.decode(&[0xFF], &mut pcm) {
            Err(AudioError::Opus(text)) => assert!(text.starts_with("opus_decode: "), "{text}"),
            other => panic!("expected an Opus error, got {other:?}"),
        }
    }

    #[test]
    fn bitrate_out_of_range_is_rejected() {
        assert!(OpusEncoder::new(OpusStreamConfig::STEREO, FrameDuration::Ms5, 0).is_err());
        assert!(OpusEncoder::new(OpusStreamConfig::STEREO, FrameDuration::Ms5, 999).is_err());
        assert!(OpusEncoder::new(OpusStreamConfig::STEREO, FrameDuration::Ms5, 600_001).is_err());
        let mut encoder =
            OpusEncoder::new(OpusStreamConfig::STEREO, FrameDuration::Ms5, 96_000).unwrap();
        assert!(matches!(
            encoder.set_bitrate(10_000_000),
            Err(AudioError::InvalidArgument(_))
        ));
        assert_eq!(
            encoder.bitrate_bps(),
            96_000,
            "failed set must not change the bitrate"
        );
    }

    #[test]
    fn too_small_output_buffer_is_rejected() {
        let mut encoder =
            OpusEncoder::new(OpusStreamConfig::STEREO, FrameDuration::Ms20, 128_000).unwrap();
        let pcm = vec![0i16; encoder.pcm_samples_per_frame()];
        let needed = encoder.max_packet_bytes();
        for len in [0, 1, 100, needed - 1] {
            let mut out = vec![0u8; len];
            assert_eq!(
                encoder.encode(&pcm, &mut out),
                Err(AudioError::BufferTooSmall {
                    needed,
                    available: len
                })
            );
        }
        let mut decoder = OpusDecoder::new(OpusStreamConfig::STEREO).unwrap();
        let mut out = vec![0u8; needed];
        let size = encoder.encode(&pcm, &mut out).unwrap();
        // 20 ms packet into room for 10 ms: libopus refuses.
        let mut small = vec![0i16; 480 * 2];
        assert!(matches!(
            decoder.decode(&out[..size], &mut small),
            Err(AudioError::Opus(_))
        ));
        assert!(matches!(
            decoder.decode(&out[..size], &mut [0i16; 1]),
            Err(AudioError::BufferTooSmall { .. })
        ));
        assert!(matches!(
            decoder.decode(&[], &mut small),
            Err(AudioError::InvalidArgument(_))
        ));
        assert!(matches!(
            decoder.decode_lost(FrameDuration::Ms20, &mut small),
            Err(AudioError::BufferTooSmall { .. })
        ));
    }

    #[test]
    fn lost_packet_concealment_produces_a_frame() {
        let mut encoder =
            OpusEncoder::new(OpusStreamConfig::SURROUND51, FrameDuration::Ms5, 256_000).unwrap();
        let (_, _, _) = round_trip(&mut encoder, 1);
        let mut decoder = OpusDecoder::new(OpusStreamConfig::SURROUND51).unwrap();
        let mut pcm = vec![0i16; 240 * 6];
        assert_eq!(
            decoder.decode_lost(FrameDuration::Ms5, &mut pcm).unwrap(),
            240
        );
    }

    #[test]
    fn encoder_and_decoder_are_send() {
        fn assert_send<T: Send>() {}
        assert_send::<OpusEncoder>();
        assert_send::<OpusDecoder>();
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn decoder_survives_random_bytes(
            bytes in proptest::collection::vec(any::<u8>(), 0..1500),
            config_index in 0usize..5,
            room in 0usize..=MAX_FRAME_SAMPLES_PER_CHANNEL,
        ) {
            let config = [
                OpusStreamConfig::STEREO,
                OpusStreamConfig::SURROUND51,
                OpusStreamConfig::SURROUND51_HIGH_QUALITY,
                OpusStreamConfig::SURROUND71,
                OpusStreamConfig::SURROUND71_HIGH_QUALITY,
            ][config_index];
            let mut decoder = OpusDecoder::new(config).unwrap();
            let mut pcm = vec![0i16; room * usize::from(config.channels)];
            if let Ok(samples) = decoder.decode(&bytes, &mut pcm) {
                prop_assert!(samples <= room);
            }
        }

        #[test]
        fn encoder_survives_random_sizes(
            pcm_len in 0usize..4000,
            out_len in 0usize..400,
            duration_index in 0usize..3,
        ) {
            let duration = FrameDuration::ALL[duration_index];
            let mut encoder = OpusEncoder::new(OpusStreamConfig::STEREO, duration, 64_000).unwrap();
            let pcm = vec![1000i16; pcm_len];
            let mut out = vec![0u8; out_len];
            if let Ok(size) = encoder.encode(&pcm, &mut out) {
                prop_assert!(size <= out_len);
                prop_assert_eq!(pcm_len, encoder.pcm_samples_per_frame());
            }
        }

        #[test]
        fn surround_params_parser_never_panics(text in "[0-9]{0,12}|.{0,12}") {
            for quality in [AudioQuality::Normal, AudioQuality::High] {
                if let Ok(config) = OpusStreamConfig::from_surround_params(&text, quality) {
                    prop_assert!(config.validate().is_ok());
                    prop_assert_eq!(config.surround_params(quality), text.clone());
                }
            }
        }
    }
}
