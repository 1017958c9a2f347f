//! Deliberate packet loss at the sender, for tests and demos (this kernel has no `tc netem`).
//! Seeded, so a failing run can be replayed exactly.

/// SplitMix64: tiny, fast, statistically sound for loss decisions; not for cryptography.
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

#[derive(Debug, Clone)]
pub struct Impairment {
    /// Drop probability in parts per million (100_000 = 10 %).
    loss_ppm: u32,
    rng: SplitMix64,
    dropped: u64,
}

impl Impairment {
    pub fn new(loss_ppm: u32, seed: u64) -> Self {
        Self {
            loss_ppm: loss_ppm.min(1_000_000),
            rng: SplitMix64::new(seed),
            dropped: 0,
        }
    }

    pub fn none() -> Self {
        Self::new(0, 0)
    }

    /// True when this packet should be dropped instead of sent.
    pub fn should_drop(&mut self) -> bool {
        if self.loss_ppm == 0 {
            return false;
        }
        let drop = (self.rng.next_u64() % 1_000_000) < u64::from(self.loss_ppm);
        self.dropped += u64::from(drop);
        drop
    }

    pub fn dropped(&self) -> u64 {
        self.dropped
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loss_rate_is_close_to_the_setting() {
        let mut impairment = Impairment::new(100_000, 7);
        let drops = (0..100_000).filter(|_| impairment.should_drop()).count();
        assert!((9_000..11_000).contains(&drops), "{drops}");
        assert_eq!(impairment.dropped(), drops as u64);
    }

    #[test]
    fn same_seed_same_pattern_and_zero_loss_drops_nothing() {
        let mut a = Impairment::new(300_000, 42);
        let mut b = Impairment::new(300_000, 42);
        assert!((0..1000).all(|_| a.should_drop() == b.should_drop()));
        let mut none = Impairment::none();
        assert!((0..1000).all(|_| !none.should_drop()));
    }
}
