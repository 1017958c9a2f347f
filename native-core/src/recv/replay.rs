//! Sliding-window anti-replay filter over the 64-bit datagram seq.
//!
//! Runs *after* a successful AEAD open, so only authentic packets move the
//! window (a forged seq far ahead cannot shift it). A seq is accepted if it
//! is above everything seen so far, or within the last [`REPLAY_WINDOW`]
//! seqs of the highest and not yet seen; duplicates and anything older are
//! rejected.
//!
//! The window is 131072 seqs, a 16 KiB bitmap: at 1472-byte datagrams that
//! is ~190 MB of traffic, i.e. > 1 s of reordering tolerance even at
//! 1.5 Gbit/s, far beyond the reassembler's loss window — so the filter
//! never rejects a packet the reassembler could still use.

/// Seqs tracked behind the highest one (bits in the bitmap).
pub const REPLAY_WINDOW: u64 = 131_072;

/// Outcome of [`ReplayWindow::check_and_insert`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplayVerdict {
    /// First time seen; now recorded.
    Fresh,
    /// Already seen within the window.
    Duplicate,
    /// Older than the window: can no longer be told from a replay.
    TooOld,
}

/// A replay filter of `WORDS · 64` seqs. Use [`ReplayFilter`]; other sizes
/// exist so tests can exercise wrap-around cheaply.
#[derive(Clone)]
pub struct ReplayWindow<const WORDS: usize> {
    /// Bit `seq % (WORDS·64)` is set if that seq (within the window) was seen.
    bits: Box<[u64; WORDS]>,
    /// Highest accepted seq, `None` before the first.
    highest: Option<u64>,
}

/// The production filter: 131072 seqs in 16 KiB.
pub type ReplayFilter = ReplayWindow<{ (REPLAY_WINDOW / 64) as usize }>;

impl<const WORDS: usize> std::fmt::Debug for ReplayWindow<WORDS> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplayWindow")
            .field("window", &Self::WINDOW)
            .field("highest", &self.highest)
            .finish_non_exhaustive()
    }
}

impl<const WORDS: usize> Default for ReplayWindow<WORDS> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const WORDS: usize> ReplayWindow<WORDS> {
    /// Window size in seqs.
    pub const WINDOW: u64 = WORDS as u64 * 64;

    /// An empty filter (allocates the bitmap once).
    pub fn new() -> Self {
        assert!(WORDS > 0, "a replay window needs at least one word");
        ReplayWindow {
            bits: Box::new([0u64; WORDS]),
            highest: None,
        }
    }

    /// The highest seq accepted so far.
    pub fn highest(&self) -> Option<u64> {
        self.highest
    }

    /// Checks `seq` and, if fresh, records it.
    pub fn check_and_insert(&mut self, seq: u64) -> ReplayVerdict {
        let Some(highest) = self.highest else {
            self.set(seq);
            self.highest = Some(seq);
            return ReplayVerdict::Fresh;
        };
        if seq > highest {
            self.clear_after(highest, seq);
            self.set(seq);
            self.highest = Some(seq);
            return ReplayVerdict::Fresh;
        }
        if highest - seq >= Self::WINDOW {
            return ReplayVerdict::TooOld;
        }
        if self.is_set(seq) {
            ReplayVerdict::Duplicate
        } else {
            self.set(seq);
            ReplayVerdict::Fresh
        }
    }

    fn position(seq: u64) -> (usize, u64) {
        let bit = seq % Self::WINDOW;
        ((bit / 64) as usize, 1u64 << (bit % 64))
    }

    fn set(&mut self, seq: u64) {
        let (word, mask) = Self::position(seq);
        self.bits[word] |= mask;
    }

    fn is_set(&self, seq: u64) -> bool {
        let (word, mask) = Self::position(seq);
        self.bits[word] & mask != 0
    }

    /// Clears the bits of seqs `old+1 ..= new`: their positions still hold
    /// seqs one window older, which are now out of the window.
    fn clear_after(&mut self, old: u64, new: u64) {
        let advance = new - old;
        if advance >= Self::WINDOW {
            self.bits.fill(0);
            return;
        }
        let mut seq = old + 1;
        let mut remaining = advance;
        while remaining > 0 {
            let bit = seq % Self::WINDOW;
            let word = (bit / 64) as usize;
            let offset = bit % 64;
            let span = (64 - offset).min(remaining);
            let mask = if span == 64 {
                u64::MAX
            } else {
                ((1u64 << span) - 1) << offset
            };
            self.bits[word] &= !mask;
            seq += span;
            remaining -= span;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashSet;

    #[test]
    fn production_window_is_16_kib() {
        assert_eq!(ReplayFilter::WINDOW, 131_072);
        assert_eq!(std::mem::size_of::<[u64; 2048]>(), 16 * 1024);
    }

    #[test]
    fn accepts_new_and_reordered_rejects_duplicates_and_old() {
        let mut f = ReplayFilter::new();
        assert_eq!(f.check_and_insert(0), ReplayVerdict::Fresh);
        assert_eq!(f.check_and_insert(0), ReplayVerdict::Duplicate);
        assert_eq!(f.check_and_insert(5), ReplayVerdict::Fresh);
        assert_eq!(f.check_and_insert(3), ReplayVerdict::Fresh);
        assert_eq!(f.check_and_insert(3), ReplayVerdict::Duplicate);
        assert_eq!(f.check_and_insert(200_000), ReplayVerdict::Fresh);
        // 200000 − 131072 = 68928 is the oldest seq still in the window.
        assert_eq!(f.check_and_insert(68_928), ReplayVerdict::TooOld);
        assert_eq!(f.check_and_insert(68_929), ReplayVerdict::Fresh);
        assert_eq!(f.check_and_insert(68_929), ReplayVerdict::Duplicate);
        assert_eq!(f.check_and_insert(5), ReplayVerdict::TooOld);
        assert_eq!(f.highest(), Some(200_000));
    }

    #[test]
    fn advancing_clears_stale_bits_exactly() {
        // Seq s and s + WINDOW share a bit; after advancing past s + WINDOW
        // the old mark must not make the new seq look like a duplicate.
        let mut f = ReplayWindow::<2>::new();
        let w = ReplayWindow::<2>::WINDOW;
        for s in 0..w {
            assert_eq!(f.check_and_insert(s), ReplayVerdict::Fresh);
        }
        assert_eq!(f.check_and_insert(w + 10), ReplayVerdict::Fresh);
        for s in w..w + 10 {
            assert_eq!(f.check_and_insert(s), ReplayVerdict::Fresh, "{s}");
        }
        for s in 11..w {
            assert_eq!(f.check_and_insert(s), ReplayVerdict::Duplicate, "{s}");
        }
        assert_eq!(f.check_and_insert(10), ReplayVerdict::TooOld);
    }

    #[test]
    fn extremes_do_not_overflow() {
        let mut f = ReplayFilter::new();
        assert_eq!(f.check_and_insert(u64::MAX), ReplayVerdict::Fresh);
        assert_eq!(f.check_and_insert(u64::MAX), ReplayVerdict::Duplicate);
        assert_eq!(f.check_and_insert(u64::MAX - 1), ReplayVerdict::Fresh);
        assert_eq!(f.check_and_insert(0), ReplayVerdict::TooOld);
    }

    /// The reference model: a set of everything accepted.
    fn model_check(
        seen: &mut HashSet<u64>,
        highest: &mut Option<u64>,
        window: u64,
        seq: u64,
    ) -> ReplayVerdict {
        match *highest {
            Some(h) if seq <= h && h - seq >= window => ReplayVerdict::TooOld,
            _ if seen.contains(&seq) => ReplayVerdict::Duplicate,
            _ => {
                seen.insert(seq);
                *highest = Some(highest.map_or(seq, |h| h.max(seq)));
                ReplayVerdict::Fresh
            }
        }
    }

    /// Seqs that mostly advance, with jitter, jumps and replays.
    fn seq_steps() -> impl Strategy<Value = Vec<i64>> {
        proptest::collection::vec(
            prop_oneof![
                6 => -3i64..10,
                2 => -300i64..300,
                1 => -140_000i64..140_000,
                1 => 0i64..400_000,
            ],
            1..600,
        )
    }

    fn run_against_model<const WORDS: usize>(
        start: u64,
        steps: &[i64],
    ) -> Result<(), TestCaseError> {
        let mut filter = ReplayWindow::<WORDS>::new();
        let mut seen = HashSet::new();
        let mut highest = None;
        let mut seq = start;
        for &step in steps {
            seq = seq.saturating_add_signed(step);
            let expected = model_check(&mut seen, &mut highest, ReplayWindow::<WORDS>::WINDOW, seq);
            prop_assert_eq!(filter.check_and_insert(seq), expected, "seq {}", seq);
        }
        Ok(())
    }

    proptest! {
        #[test]
        fn matches_hashset_model(start in prop_oneof![Just(0u64), any::<u64>()], steps in seq_steps()) {
            run_against_model::<2048>(start, &steps)?;
        }

        #[test]
        fn small_window_matches_hashset_model(start in 0u64..1000, steps in seq_steps()) {
            run_against_model::<3>(start, &steps)?;
        }
    }
}
