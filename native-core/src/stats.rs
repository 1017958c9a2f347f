//! Latency histograms with bounded relative error, for per-stage p50/p99 without storing samples.
//!
//! Values (nanoseconds) go into log-linear buckets: 16 linear sub-buckets per power of two, so any
//! reported percentile is within 1/16 (6.25 %) of a recorded value — ample for p50/p99 of stage
//! latencies, in 1 KiB of counters.

const SUB_BUCKET_BITS: u32 = 4;
const SUB_BUCKETS: usize = 1 << SUB_BUCKET_BITS;
/// Powers of two up to 2^40 ns (~18 minutes) cover every latency worth reporting.
const MAGNITUDES: usize = 41;
const BUCKETS: usize = MAGNITUDES * SUB_BUCKETS;

#[derive(Clone)]
pub struct LatencyHistogram {
    counts: Box<[u64; BUCKETS]>,
    total: u64,
    max: u64,
}

impl Default for LatencyHistogram {
    fn default() -> Self {
        Self::new()
    }
}

fn bucket_of(value: u64) -> usize {
    if value < SUB_BUCKETS as u64 {
        return value as usize;
    }
    let magnitude = 63 - value.leading_zeros(); // >= SUB_BUCKET_BITS
    let shift = magnitude - SUB_BUCKET_BITS;
    let sub = ((value >> shift) as usize) & (SUB_BUCKETS - 1);
    let index = (magnitude - SUB_BUCKET_BITS + 1) as usize * SUB_BUCKETS + sub;
    index.min(BUCKETS - 1)
}

/// Smallest value that falls into `index` (what percentiles report).
fn bucket_floor(index: usize) -> u64 {
    if index < SUB_BUCKETS {
        return index as u64;
    }
    let magnitude = (index / SUB_BUCKETS) as u32 + SUB_BUCKET_BITS - 1;
    let sub = (index % SUB_BUCKETS) as u64;
    (1u64 << magnitude) | (sub << (magnitude - SUB_BUCKET_BITS))
}

impl LatencyHistogram {
    pub fn new() -> Self {
        Self {
            counts: Box::new([0; BUCKETS]),
            total: 0,
            max: 0,
        }
    }

    pub fn record(&mut self, value_ns: u64) {
        self.counts[bucket_of(value_ns)] += 1;
        self.total += 1;
        self.max = self.max.max(value_ns);
    }

    pub fn count(&self) -> u64 {
        self.total
    }

    pub fn max(&self) -> u64 {
        self.max
    }

    /// The value at quantile `q` (0.0–1.0), rounded down to its bucket; 0 when empty.
    pub fn quantile(&self, q: f64) -> u64 {
        if self.total == 0 {
            return 0;
        }
        let rank = ((q.clamp(0.0, 1.0) * self.total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (index, &count) in self.counts.iter().enumerate() {
            seen += count;
            if seen >= rank {
                return bucket_floor(index).min(self.max);
            }
        }
        self.max
    }

    pub fn clear(&mut self) {
        self.counts.fill(0);
        self.total = 0;
        self.max = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn small_values_are_exact() {
        let mut h = LatencyHistogram::new();
        for v in 0..16 {
            h.record(v);
        }
        assert_eq!(h.quantile(0.5), 7);
        assert_eq!(h.quantile(1.0), 15);
        assert_eq!(h.count(), 16);
    }

    #[test]
    fn empty_histogram_reports_zero() {
        assert_eq!(LatencyHistogram::new().quantile(0.99), 0);
    }

    proptest! {
        #[test]
        fn quantiles_are_within_one_sixteenth(values in proptest::collection::vec(1u64..10_000_000_000, 1..400), q in 0.01f64..1.0) {
            let mut h = LatencyHistogram::new();
            for &v in &values { h.record(v); }
            let mut sorted = values.clone();
            sorted.sort_unstable();
            let rank = ((q * sorted.len() as f64).ceil() as usize).max(1);
            let exact = sorted[rank - 1];
            let reported = h.quantile(q);
            prop_assert!(reported <= exact, "reported {} > exact {}", reported, exact);
            prop_assert!(reported as f64 >= exact as f64 * (1.0 - 1.0 / 16.0) - 1.0, "reported {} exact {}", reported, exact);
        }

        #[test]
        fn bucket_floor_inverts_bucket_of(v in 0u64..(1u64 << 40)) {
            let b = bucket_of(v);
            prop_assert!(bucket_floor(b) <= v);
            if b + 1 < BUCKETS { prop_assert!(bucket_floor(b + 1) > v); }
        }
    }
}
