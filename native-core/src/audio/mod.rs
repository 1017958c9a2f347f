//! Audio for the media core: sources that produce interleaved 16-bit PCM at
//! 48 kHz ([`tone`] for tests and synthetic streams, [`pulse`] for desktop
//! capture) and the Opus codec ([`opus`]) that turns it into GameStream
//! audio packets.
//!
//! Channel order everywhere in this module is the GameStream/Moonlight order
//! FL, FR, C, LFE, BL (rear left), BR (rear right), SL, SR; a layout with
//! fewer channels uses the prefix of that list.

pub mod opus;
pub mod pulse;
pub mod tone;

use std::fmt;

/// The only sample rate used: Opus's native full-band rate, and the rate
/// GameStream clients decode at.
pub const SAMPLE_RATE_HZ: u32 = 48_000;

/// Largest `samples_per_channel` a single [`AudioSource::read`] accepts:
/// one second. Streaming reads are 5–20 ms; the cap only stops a caller's
/// mistake from turning into a huge allocation.
pub const MAX_SAMPLES_PER_READ: usize = SAMPLE_RATE_HZ as usize;

/// Speaker layouts GameStream supports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChannelLayout {
    /// FL, FR.
    Stereo,
    /// FL, FR, C, LFE, BL, BR.
    Surround51,
    /// FL, FR, C, LFE, BL, BR, SL, SR.
    Surround71,
}

impl ChannelLayout {
    /// Every supported layout, fewest channels first.
    pub const ALL: [ChannelLayout; 3] = [
        ChannelLayout::Stereo,
        ChannelLayout::Surround51,
        ChannelLayout::Surround71,
    ];

    /// Number of interleaved channels: 2, 6 or 8.
    pub const fn channel_count(self) -> u8 {
        match self {
            ChannelLayout::Stereo => 2,
            ChannelLayout::Surround51 => 6,
            ChannelLayout::Surround71 => 8,
        }
    }

    /// The layout with `channels` channels, if GameStream supports it.
    pub const fn from_channel_count(channels: u8) -> Option<ChannelLayout> {
        match channels {
            2 => Some(ChannelLayout::Stereo),
            6 => Some(ChannelLayout::Surround51),
            8 => Some(ChannelLayout::Surround71),
            _ => None,
        }
    }

    /// GameStream speaker mask (`x-nv-audio.surround.channelMask`,
    /// `surroundAudioInfo`): Windows `SPEAKER_*` bits for the channels above,
    /// i.e. 0x3, 0x3F and 0x63F.
    pub const fn gamestream_channel_mask(self) -> u32 {
        match self {
            ChannelLayout::Stereo => 0x3,
            ChannelLayout::Surround51 => 0x3F,
            ChannelLayout::Surround71 => 0x63F,
        }
    }
}

/// A block of interleaved PCM. Reused across reads: sources resize
/// `samples` in place, so once its capacity has grown no read allocates.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AudioFrame {
    /// Interleaved samples, `channels` per sample instant.
    pub samples: Vec<i16>,
    /// Channels per sample instant (2, 6 or 8).
    pub channels: u8,
    /// Always [`SAMPLE_RATE_HZ`].
    pub sample_rate: u32,
    /// CLOCK_MONOTONIC time, in nanoseconds, at which the first sample of
    /// the block was captured (best estimate; see each source).
    pub capture_ns: u64,
}

impl AudioFrame {
    /// An empty frame; the first read sizes it.
    pub fn new() -> AudioFrame {
        AudioFrame::default()
    }

    /// Samples per channel currently held.
    pub fn samples_per_channel(&self) -> usize {
        if self.channels == 0 {
            0
        } else {
            self.samples.len() / usize::from(self.channels)
        }
    }

    /// Sets channel count and rate and resizes `samples` for
    /// `samples_per_channel` instants (reusing the allocation), after
    /// checking the requested size. Contents are unspecified afterwards.
    pub(crate) fn prepare(
        &mut self,
        layout: ChannelLayout,
        samples_per_channel: usize,
    ) -> Result<(), AudioError> {
        if samples_per_channel == 0 || samples_per_channel > MAX_SAMPLES_PER_READ {
            return Err(AudioError::InvalidArgument(format!(
                "samples_per_channel must be 1..={MAX_SAMPLES_PER_READ}, got {samples_per_channel}"
            )));
        }
        self.channels = layout.channel_count();
        self.sample_rate = SAMPLE_RATE_HZ;
        self.samples
            .resize(samples_per_channel * usize::from(layout.channel_count()), 0);
        Ok(())
    }
}

/// Why an audio operation failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AudioError {
    /// The audio system (server, device) cannot be used; carries the reason
    /// as reported by it, e.g. "Connection refused".
    Unavailable(String),
    /// libopus reported an error: the failing call and `opus_strerror` text,
    /// e.g. "opus_encode: invalid argument".
    Opus(String),
    /// A parameter is out of range or inconsistent (frame size, channel
    /// count, bitrate, layout string…).
    InvalidArgument(String),
    /// An output buffer cannot hold the result.
    BufferTooSmall {
        /// Elements (bytes or samples) the operation needs.
        needed: usize,
        /// Elements the caller provided.
        available: usize,
    },
}

impl fmt::Display for AudioError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AudioError::Unavailable(reason) => write!(f, "audio unavailable: {reason}"),
            AudioError::Opus(reason) => write!(f, "opus error: {reason}"),
            AudioError::InvalidArgument(reason) => write!(f, "invalid argument: {reason}"),
            AudioError::BufferTooSmall { needed, available } => write!(
                f,
                "buffer too small: need {needed} elements, have {available}"
            ),
        }
    }
}

impl std::error::Error for AudioError {}

/// Something that produces PCM blocks: a capture device or a generator.
pub trait AudioSource: Send {
    /// The layout every frame from this source has.
    fn layout(&self) -> ChannelLayout;

    /// Fills `frame` with the next `samples_per_channel` sample instants
    /// (1..=[`MAX_SAMPLES_PER_READ`]), blocking until they are available.
    fn read(
        &mut self,
        frame: &mut AudioFrame,
        samples_per_channel: usize,
    ) -> Result<(), AudioError>;

    /// Short static name for logs and stats, e.g. "tone" or "pulse".
    fn name(&self) -> &'static str;
}

/// Nanoseconds between a sample position and the stream's first sample.
pub(crate) fn samples_to_ns(samples: u64) -> u64 {
    let ns = u128::from(samples) * 1_000_000_000 / u128::from(SAMPLE_RATE_HZ);
    u64::try_from(ns).unwrap_or(u64::MAX)
}

/// Current CLOCK_MONOTONIC time in nanoseconds (the clock `Instant` uses on
/// Linux, and the one video capture stamps frames with).
pub(crate) fn monotonic_ns() -> u64 {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `now` is a valid, writable timespec for the duration of the
    // call, and CLOCK_MONOTONIC is always supported on Linux, so the call
    // only writes through that pointer.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) };
    debug_assert_eq!(rc, 0, "clock_gettime(CLOCK_MONOTONIC) cannot fail");
    let seconds = u64::try_from(now.tv_sec).unwrap_or(0);
    let nanos = u64::try_from(now.tv_nsec).unwrap_or(0);
    seconds.saturating_mul(1_000_000_000).saturating_add(nanos)
}

#[cfg(test)]
pub(crate) mod test_signal {
    //! Signal analysis helpers shared by the audio tests.

    /// One channel of an interleaved buffer, as f64.
    pub fn channel(interleaved: &[i16], channels: usize, index: usize) -> Vec<f64> {
        interleaved
            .iter()
            .skip(index)
            .step_by(channels)
            .map(|&s| f64::from(s))
            .collect()
    }

    /// Signal power at `frequency_hz` (Goertzel algorithm), normalised by
    /// length so different window lengths compare.
    pub fn tone_power(signal: &[f64], frequency_hz: f64, sample_rate_hz: f64) -> f64 {
        let omega = 2.0 * std::f64::consts::PI * frequency_hz / sample_rate_hz;
        let coefficient = 2.0 * omega.cos();
        let (mut previous, mut before_previous) = (0.0_f64, 0.0_f64);
        for &x in signal {
            let current = x + coefficient * previous - before_previous;
            before_previous = previous;
            previous = current;
        }
        let power = previous * previous + before_previous * before_previous
            - coefficient * previous * before_previous;
        power / (signal.len() as f64).powi(2)
    }

    /// The candidate frequency with the most power in `signal`, and its
    /// power's ratio over the runner-up, in dB.
    pub fn dominant_frequency(
        signal: &[f64],
        candidates_hz: &[f64],
        sample_rate_hz: f64,
    ) -> (f64, f64) {
        let mut powers: Vec<(f64, f64)> = candidates_hz
            .iter()
            .map(|&f| (f, tone_power(signal, f, sample_rate_hz)))
            .collect();
        powers.sort_by(|a, b| b.1.total_cmp(&a.1));
        let margin_db = match powers.get(1) {
            Some(runner_up) => 10.0 * (powers[0].1 / runner_up.1.max(1e-12)).log10(),
            None => f64::INFINITY,
        };
        (powers[0].0, margin_db)
    }

    /// Root mean square of a signal.
    pub fn rms(signal: &[f64]) -> f64 {
        (signal.iter().map(|x| x * x).sum::<f64>() / signal.len().max(1) as f64).sqrt()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layouts_round_trip_through_channel_count() {
        for layout in ChannelLayout::ALL {
            assert_eq!(
                ChannelLayout::from_channel_count(layout.channel_count()),
                Some(layout)
            );
        }
        for invalid in [0, 1, 3, 4, 5, 7, 9, 255] {
            assert_eq!(ChannelLayout::from_channel_count(invalid), None);
        }
        assert_eq!(ChannelLayout::Stereo.gamestream_channel_mask(), 0x3);
        assert_eq!(ChannelLayout::Surround71.gamestream_channel_mask(), 0x63F);
    }

    #[test]
    fn mask_bit_count_equals_channel_count() {
        for layout in ChannelLayout::ALL {
            assert_eq!(
                layout.gamestream_channel_mask().count_ones(),
                u32::from(layout.channel_count())
            );
        }
    }

    #[test]
    fn prepare_rejects_empty_and_oversized_reads() {
        let mut frame = AudioFrame::new();
        assert!(matches!(
            frame.prepare(ChannelLayout::Stereo, 0),
            Err(AudioError::InvalidArgument(_))
        ));
        assert!(matches!(
            frame.prepare(ChannelLayout::Stereo, MAX_SAMPLES_PER_READ + 1),
            Err(AudioError::InvalidArgument(_))
        ));
        frame.prepare(ChannelLayout::Surround51, 240).unwrap();
        assert_eq!(frame.samples.len(), 240 * 6);
        assert_eq!(frame.samples_per_channel(), 240);
        assert_eq!(frame.sample_rate, SAMPLE_RATE_HZ);
    }

    #[test]
    fn samples_to_ns_is_exact_for_whole_milliseconds() {
        assert_eq!(samples_to_ns(0), 0);
        assert_eq!(samples_to_ns(240), 5_000_000);
        assert_eq!(samples_to_ns(48_000), 1_000_000_000);
    }

    #[test]
    fn monotonic_clock_advances() {
        let first = monotonic_ns();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let second = monotonic_ns();
        assert!(second >= first + 2_000_000, "{first} -> {second}");
    }

    #[test]
    fn errors_display_their_reason() {
        let text = AudioError::Unavailable("Connection refused".into()).to_string();
        assert!(text.contains("Connection refused"), "{text}");
        let text = AudioError::BufferTooSmall {
            needed: 10,
            available: 3,
        }
        .to_string();
        assert!(text.contains("10") && text.contains('3'), "{text}");
    }
}
