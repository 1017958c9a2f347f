//! Per-session counters and per-stage latency histograms, read by TS as one JSON snapshot on a
//! timer (never a call per packet). Rates are computed over the interval since the last snapshot.

use crate::stats::LatencyHistogram;
use std::fmt::Write;

pub const STAGES: [&str; 7] = [
    "capture", "convert", "encode", "fec", "seal", "send", "total",
];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    Capture = 0,
    Convert = 1,
    Encode = 2,
    Fec = 3,
    Seal = 4,
    Send = 5,
    /// Capture timestamp to the frame's last packet handed to the kernel: host processing latency.
    Total = 6,
}

#[derive(Default, Clone)]
pub struct Counters {
    pub frames_captured: u64,
    pub frames_encoded: u64,
    pub frames_sent: u64,
    /// Captures skipped because the sender was still busy with older frames (back-pressure).
    pub frames_skipped: u64,
    pub keyframes: u64,
    pub idr_requests: u64,
    pub packets_sent: u64,
    pub bytes_sent: u64,
    pub packets_dropped_impairment: u64,
    pub send_errors: u64,
    /// Mid-stream switches to the next encoder of the chain after a failure.
    pub encoder_fallbacks: u64,
}

pub struct PipelineStats {
    pub counters: Counters,
    stages: Vec<LatencyHistogram>,
    last_snapshot_ns: u64,
    last_counters: Counters,
    pub bitrate_kbps: u32,
    pub encoder: String,
}

impl PipelineStats {
    pub fn new(now_ns: u64) -> Self {
        Self {
            counters: Counters::default(),
            stages: STAGES.iter().map(|_| LatencyHistogram::new()).collect(),
            last_snapshot_ns: now_ns,
            last_counters: Counters::default(),
            bitrate_kbps: 0,
            encoder: String::new(),
        }
    }

    pub fn record(&mut self, stage: Stage, ns: u64) {
        self.stages[stage as usize].record(ns);
    }

    pub fn stage(&self, stage: Stage) -> &LatencyHistogram {
        &self.stages[stage as usize]
    }

    /// JSON snapshot; rates cover the time since the previous snapshot.
    pub fn snapshot_json(&mut self, now_ns: u64) -> String {
        let seconds = (now_ns.saturating_sub(self.last_snapshot_ns) as f64 / 1e9).max(1e-9);
        let c = &self.counters;
        let fps = (c.frames_sent - self.last_counters.frames_sent) as f64 / seconds;
        let mbps = (c.bytes_sent - self.last_counters.bytes_sent) as f64 * 8.0 / seconds / 1e6;
        let mut out = String::with_capacity(1024);
        let _ = write!(
            out,
            "{{\"fps\":{fps:.2},\"send_mbps\":{mbps:.3},\"target_bitrate_kbps\":{},\"encoder\":{},\
             \"frames_captured\":{},\"frames_encoded\":{},\"frames_sent\":{},\"frames_skipped\":{},\
             \"keyframes\":{},\"idr_requests\":{},\"packets_sent\":{},\"bytes_sent\":{},\
             \"packets_dropped_impairment\":{},\"send_errors\":{},\"encoder_fallbacks\":{},\
             \"latency_us\":{{",
            self.bitrate_kbps,
            crate::json::string(&self.encoder),
            c.frames_captured,
            c.frames_encoded,
            c.frames_sent,
            c.frames_skipped,
            c.keyframes,
            c.idr_requests,
            c.packets_sent,
            c.bytes_sent,
            c.packets_dropped_impairment,
            c.send_errors,
            c.encoder_fallbacks,
        );
        for (i, name) in STAGES.iter().enumerate() {
            let h = &self.stages[i];
            let _ = write!(
                out,
                "{}\"{name}\":{{\"p50\":{:.1},\"p99\":{:.1},\"count\":{}}}",
                if i == 0 { "" } else { "," },
                h.quantile(0.5) as f64 / 1e3,
                h.quantile(0.99) as f64 / 1e3,
                h.count()
            );
        }
        out.push_str("}}");
        self.last_snapshot_ns = now_ns;
        self.last_counters = self.counters.clone();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_is_json_with_rates_over_the_interval() {
        let mut stats = PipelineStats::new(0);
        stats.counters.frames_sent = 60;
        stats.counters.bytes_sent = 1_250_000;
        stats.record(Stage::Encode, 4_000_000);
        stats.record(Stage::Encode, 6_000_000);
        let value: serde_json::Value =
            serde_json::from_str(&stats.snapshot_json(1_000_000_000)).unwrap();
        assert_eq!(value["fps"], 60.0);
        assert_eq!(value["send_mbps"], 10.0);
        assert_eq!(value["latency_us"]["encode"]["count"], 2);
        let p50 = value["latency_us"]["encode"]["p50"].as_f64().unwrap();
        assert!((3_700.0..=4_000.0).contains(&p50), "{p50}");
        // Next interval: nothing new happened.
        let value: serde_json::Value =
            serde_json::from_str(&stats.snapshot_json(2_000_000_000)).unwrap();
        assert_eq!(value["fps"], 0.0);
    }
}
