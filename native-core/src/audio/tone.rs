//! Synthetic audio source: one sine per channel, each at its own frequency,
//! so that a listener (or a test) can tell channels apart after encoding,
//! transport and decoding.
//!
//! Channel `c` plays `220 × (c + 2)` Hz, i.e. 440 Hz × (1 + c/2): 440, 660,
//! 880, … 1980 Hz for 7.1 — distinct, audible, and far inside even
//! narrow-band Opus's 4 kHz audio bandwidth — at a peak of −12 dBFS, which
//! leaves headroom for codec overshoot. Samples are a pure
//! function of the sample position, so output is deterministic and
//! phase-continuous however reads are split. With [`Pacing::RealTime`] reads
//! block until their last sample is "due", which makes the source usable for
//! live streaming; [`Pacing::Unpaced`] returns at once, for tests.

use std::time::{Duration, Instant};

use super::{
    monotonic_ns, samples_to_ns, AudioError, AudioFrame, AudioSource, ChannelLayout, SAMPLE_RATE_HZ,
};

/// Frequency of channel 0 (FL). Concert A: easy to recognise by ear.
pub const TONE_BASE_FREQUENCY_HZ: u32 = 440;

/// Peak level of every channel's sine, in dBFS.
pub const TONE_PEAK_DBFS: f64 = -12.0;

/// Whether [`ToneSource::read`] waits for real time to catch up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pacing {
    /// Each read returns when the wall clock reaches its last sample's time.
    RealTime,
    /// Reads return immediately (tests, offline encoding).
    Unpaced,
}

/// Sine generator implementing [`AudioSource`].
#[derive(Debug)]
pub struct ToneSource {
    layout: ChannelLayout,
    pacing: Pacing,
    peak_amplitude: f64,
    next_sample_position: u64,
    origin_instant: Instant,
    origin_ns: u64,
}

impl ToneSource {
    /// A source for `layout` starting at sample position 0 now.
    pub fn new(layout: ChannelLayout, pacing: Pacing) -> ToneSource {
        ToneSource {
            layout,
            pacing,
            peak_amplitude: f64::from(i16::MAX) * 10f64.powf(TONE_PEAK_DBFS / 20.0),
            next_sample_position: 0,
            origin_instant: Instant::now(),
            origin_ns: monotonic_ns(),
        }
    }

    /// Frequency of `channel`: 440 Hz × (1 + channel/2), an integer for every
    /// channel so one second holds a whole number of periods.
    pub const fn frequency_hz(channel: usize) -> u32 {
        TONE_BASE_FREQUENCY_HZ * (channel as u32 + 2) / 2
    }

    /// Peak amplitude in sample units (−12 dBFS of full scale ≈ 8231).
    pub fn peak_amplitude(&self) -> f64 {
        self.peak_amplitude
    }

    /// Position (samples per channel since start) of the next sample read.
    pub fn position(&self) -> u64 {
        self.next_sample_position
    }

    /// The sample of `channel` at `position`. The phase is computed from
    /// `(frequency × position) mod sample rate` in integers, so it never
    /// drifts or loses precision however long the source runs.
    fn sample(&self, channel: usize, position: u64) -> i16 {
        let rate = u64::from(SAMPLE_RATE_HZ);
        let frequency = u64::from(Self::frequency_hz(channel));
        let phase_numerator = (position % rate) * frequency % rate;
        let angle = std::f64::consts::TAU * phase_numerator as f64 / rate as f64;
        // |peak × sin| ≤ 8231 < i16::MAX, so the cast cannot saturate.
        (self.peak_amplitude * angle.sin()).round() as i16
    }

    /// The instant the sample before `end_position` is due (the source's
    /// start plus that much audio).
    fn due_instant(&self, end_position: u64) -> Instant {
        self.origin_instant + Duration::from_nanos(samples_to_ns(end_position))
    }

    /// How long a read ending at `end_position` must still wait at `now`:
    /// `None` when unpaced, zero when the audio is already due.
    fn wait_before(&self, end_position: u64, now: Instant) -> Option<Duration> {
        match self.pacing {
            Pacing::Unpaced => None,
            Pacing::RealTime => Some(
                self.due_instant(end_position)
                    .saturating_duration_since(now),
            ),
        }
    }
}

impl AudioSource for ToneSource {
    fn layout(&self) -> ChannelLayout {
        self.layout
    }

    /// `capture_ns` is the source's start time plus the block's sample
    /// position, i.e. exactly spaced by the block duration.
    fn read(
        &mut self,
        frame: &mut AudioFrame,
        samples_per_channel: usize,
    ) -> Result<(), AudioError> {
        frame.prepare(self.layout, samples_per_channel)?;
        let channels = usize::from(self.layout.channel_count());
        let start = self.next_sample_position;
        for (offset, instant) in frame.samples.chunks_exact_mut(channels).enumerate() {
            let position = start + offset as u64;
            for (channel, sample) in instant.iter_mut().enumerate() {
                *sample = self.sample(channel, position);
            }
        }
        let end = start + samples_per_channel as u64;
        if let Some(wait) = self.wait_before(end, Instant::now()) {
            std::thread::sleep(wait);
        }
        frame.capture_ns = self.origin_ns + samples_to_ns(start);
        self.next_sample_position = end;
        Ok(())
    }

    fn name(&self) -> &'static str {
        "tone"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audio::test_signal::{channel, dominant_frequency, rms};

    fn read_all(source: &mut ToneSource, chunk_sizes: &[usize]) -> Vec<i16> {
        let mut frame = AudioFrame::new();
        let mut all = Vec::new();
        for &size in chunk_sizes {
            source.read(&mut frame, size).unwrap();
            assert_eq!(frame.samples_per_channel(), size);
            all.extend_from_slice(&frame.samples);
        }
        all
    }

    #[test]
    fn frequencies_are_distinct_and_as_documented() {
        let expected = [440, 660, 880, 1100, 1320, 1540, 1760, 1980];
        for (channel, &hz) in expected.iter().enumerate() {
            assert_eq!(ToneSource::frequency_hz(channel), hz);
        }
    }

    #[test]
    fn output_is_deterministic() {
        let sizes = [480; 20];
        let first = read_all(
            &mut ToneSource::new(ChannelLayout::Surround71, Pacing::Unpaced),
            &sizes,
        );
        let second = read_all(
            &mut ToneSource::new(ChannelLayout::Surround71, Pacing::Unpaced),
            &sizes,
        );
        assert_eq!(first, second);
        assert!(first.iter().any(|&s| s != 0));
    }

    #[test]
    fn split_reads_equal_one_long_read() {
        // Irregular sizes, including 1 and a prime, put block boundaries at
        // arbitrary phases.
        let irregular = [1, 137, 240, 999, 7, 2616];
        let total: usize = irregular.iter().sum();
        let split = read_all(
            &mut ToneSource::new(ChannelLayout::Surround51, Pacing::Unpaced),
            &irregular,
        );
        let whole = read_all(
            &mut ToneSource::new(ChannelLayout::Surround51, Pacing::Unpaced),
            &[total],
        );
        assert_eq!(split, whole);
    }

    #[test]
    fn no_discontinuity_at_read_boundaries() {
        let mut source = ToneSource::new(ChannelLayout::Surround71, Pacing::Unpaced);
        let peak = source.peak_amplitude();
        let all = read_all(&mut source, &[240, 1, 479, 960, 13, 240]);
        for ch in 0..8 {
            let signal = channel(&all, 8, ch);
            // A sine's largest step between samples is 2π·f/fs × peak; allow
            // one unit of rounding on each sample.
            let max_step = std::f64::consts::TAU * f64::from(ToneSource::frequency_hz(ch))
                / f64::from(SAMPLE_RATE_HZ)
                * peak
                + 2.0;
            for pair in signal.windows(2) {
                assert!(
                    (pair[1] - pair[0]).abs() <= max_step,
                    "channel {ch}: step {} > {max_step}",
                    (pair[1] - pair[0]).abs()
                );
            }
        }
    }

    #[test]
    fn zero_crossings_over_one_second_match_frequency() {
        let mut source = ToneSource::new(ChannelLayout::Surround71, Pacing::Unpaced);
        // One second in 5 ms reads, as a streaming consumer would read.
        let all = read_all(&mut source, &[240; 200]);
        for ch in 0..8 {
            let signal = channel(&all, 8, ch);
            let upward_crossings = signal
                .windows(2)
                .filter(|pair| pair[0] < 0.0 && pair[1] >= 0.0)
                .count() as i64;
            let expected = i64::from(ToneSource::frequency_hz(ch));
            // The window starts exactly at an upward crossing (sample 0 is
            // 0), which `windows` cannot count: allow one off.
            assert!(
                (upward_crossings - expected).abs() <= 1,
                "channel {ch}: {upward_crossings} crossings, expected {expected}"
            );
        }
    }

    #[test]
    fn level_is_minus_12_dbfs_and_dominant_frequency_per_channel() {
        let mut source = ToneSource::new(ChannelLayout::Surround71, Pacing::Unpaced);
        let all = read_all(&mut source, &[4800]);
        let candidates: Vec<f64> = (0..8)
            .map(|c| f64::from(ToneSource::frequency_hz(c)))
            .collect();
        for ch in 0..8 {
            let signal = channel(&all, 8, ch);
            let peak = signal.iter().fold(0.0_f64, |m, s| m.max(s.abs()));
            let peak_dbfs = 20.0 * (peak / f64::from(i16::MAX)).log10();
            assert!(
                (peak_dbfs - TONE_PEAK_DBFS).abs() < 0.1,
                "channel {ch}: {peak_dbfs} dBFS"
            );
            let expected_rms = source.peak_amplitude() / std::f64::consts::SQRT_2;
            assert!((rms(&signal) / expected_rms - 1.0).abs() < 0.01);
            let (dominant, _) = dominant_frequency(&signal, &candidates, f64::from(SAMPLE_RATE_HZ));
            assert_eq!(dominant, candidates[ch], "channel {ch}");
        }
    }

    #[test]
    fn capture_timestamps_advance_by_block_duration() {
        let mut source = ToneSource::new(ChannelLayout::Stereo, Pacing::Unpaced);
        let mut frame = AudioFrame::new();
        source.read(&mut frame, 480).unwrap();
        let first = frame.capture_ns;
        source.read(&mut frame, 480).unwrap();
        assert_eq!(frame.capture_ns - first, 10_000_000);
        assert_eq!(source.position(), 960);
        assert_eq!(frame.channels, 2);
        assert_eq!(frame.sample_rate, SAMPLE_RATE_HZ);
        assert_eq!(source.name(), "tone");
        assert_eq!(source.layout(), ChannelLayout::Stereo);
    }

    #[test]
    fn real_time_pacing_waits_exactly_until_the_audio_is_due() {
        let source = ToneSource::new(ChannelLayout::Stereo, Pacing::RealTime);
        let origin = source.origin_instant;
        // 240 samples are 5 ms of audio: due 5 ms after the start, and no
        // wait once that moment has passed.
        assert_eq!(
            source.wait_before(240, origin),
            Some(Duration::from_millis(5))
        );
        assert_eq!(
            source.wait_before(240, origin + Duration::from_millis(2)),
            Some(Duration::from_millis(3))
        );
        assert_eq!(
            source.wait_before(240, origin + Duration::from_millis(5)),
            Some(Duration::ZERO)
        );
        assert_eq!(
            source.wait_before(240, origin + Duration::from_secs(1)),
            Some(Duration::ZERO)
        );
        assert_eq!(
            source.wait_before(48_000, origin),
            Some(Duration::from_secs(1))
        );
    }

    #[test]
    fn real_time_reads_return_no_earlier_than_their_audio_is_due() {
        let mut source = ToneSource::new(ChannelLayout::Stereo, Pacing::RealTime);
        let mut frame = AudioFrame::new();
        // Ten 5 ms reads: each returns once its last sample is due.
        for read in 1..=10u64 {
            source.read(&mut frame, 240).unwrap();
            assert!(
                Instant::now() >= source.due_instant(read * 240),
                "read {read} returned early"
            );
        }
    }

    #[test]
    fn unpaced_never_waits_and_invalid_sizes_fail() {
        let mut source = ToneSource::new(ChannelLayout::Stereo, Pacing::Unpaced);
        for end in [0, 960, 96_000, u64::from(u32::MAX)] {
            assert_eq!(source.wait_before(end, source.origin_instant), None);
        }
        let mut frame = AudioFrame::new();
        for _ in 0..100 {
            source.read(&mut frame, 960).unwrap();
        }
        assert!(matches!(
            source.read(&mut frame, 0),
            Err(AudioError::InvalidArgument(_))
        ));
        assert_eq!(source.position(), 96_000, "a failed read must not advance");
    }
}
