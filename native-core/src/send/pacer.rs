//! Token-bucket pacing for media egress (pure: time is passed in).
//!
//! A frame's packets leave at `rate` instead of in one line-rate burst, so switch and NIC queues
//! (and the receiver's socket buffer) are not overrun. The bucket holds at most `burst_bytes`, which
//! bounds how far ahead of the rate a sender may get after an idle period.

#[derive(Debug, Clone)]
pub struct Pacer {
    bytes_per_sec: u64,
    burst_bytes: u64,
    tokens: f64,
    last_ns: u64,
}

impl Pacer {
    /// `bytes_per_sec == 0` disables pacing (every send may go at once).
    pub fn new(bytes_per_sec: u64, burst_bytes: u64, now_ns: u64) -> Self {
        Self {
            bytes_per_sec,
            burst_bytes: burst_bytes.max(1),
            tokens: burst_bytes as f64,
            last_ns: now_ns,
        }
    }

    pub fn set_rate(&mut self, bytes_per_sec: u64, now_ns: u64) {
        self.refill(now_ns);
        self.bytes_per_sec = bytes_per_sec;
    }

    pub fn rate(&self) -> u64 {
        self.bytes_per_sec
    }

    fn refill(&mut self, now_ns: u64) {
        if now_ns > self.last_ns {
            let elapsed = (now_ns - self.last_ns) as f64 / 1e9;
            self.tokens =
                (self.tokens + elapsed * self.bytes_per_sec as f64).min(self.burst_bytes as f64);
            self.last_ns = now_ns;
        }
    }

    /// Nanoseconds to wait before `bytes` may be sent; 0 means now. Call `consume` after sending.
    pub fn wait_ns(&mut self, bytes: usize, now_ns: u64) -> u64 {
        if self.bytes_per_sec == 0 {
            return 0;
        }
        self.refill(now_ns);
        let deficit = bytes as f64 - self.tokens;
        if deficit <= 0.0 {
            0
        } else {
            (deficit / self.bytes_per_sec as f64 * 1e9).ceil() as u64
        }
    }

    pub fn consume(&mut self, bytes: usize, now_ns: u64) {
        if self.bytes_per_sec == 0 {
            return;
        }
        self.refill(now_ns);
        self.tokens -= bytes as f64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Simulates a sender that sleeps exactly as told; returns when the last byte left.
    fn simulate(rate: u64, burst: u64, packets: usize, size: usize) -> u64 {
        let mut now = 0;
        let mut pacer = Pacer::new(rate, burst, now);
        for _ in 0..packets {
            now += pacer.wait_ns(size, now);
            pacer.consume(size, now);
        }
        now
    }

    #[test]
    fn long_run_rate_matches_the_configured_rate() {
        // 10 MB at 100 MB/s with a 64 KiB burst: ~100 ms minus the initial burst.
        let end = simulate(100_000_000, 65_536, 10_000, 1000);
        let expected = (10_000_000.0 - 65_536.0) / 100_000_000.0 * 1e9;
        assert!(
            (end as f64 - expected).abs() < 1e6,
            "end {end} expected {expected}"
        );
    }

    #[test]
    fn burst_goes_out_at_once() {
        assert_eq!(simulate(1_000_000, 10_000, 10, 1000), 0);
        assert!(simulate(1_000_000, 10_000, 11, 1000) > 0);
    }

    #[test]
    fn zero_rate_means_unpaced() {
        assert_eq!(simulate(0, 1, 1000, 1500), 0);
    }

    #[test]
    fn idle_time_refills_only_up_to_the_burst() {
        let mut pacer = Pacer::new(1_000_000, 5_000, 0);
        pacer.consume(5_000, 0);
        // After 1 s idle the bucket is full again but not beyond the burst.
        assert_eq!(pacer.wait_ns(5_000, 1_000_000_000), 0);
        assert!(pacer.wait_ns(5_001, 1_000_000_000) > 0);
    }
}
