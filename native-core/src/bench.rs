//! In-process benchmarks behind `punktfunk bench` (and `pf_bench_json`): each measures a data-plane
//! stage and a baseline in the same run and reports the ratio, so results compare across machines.

use crate::crypto::aes_gcm::{Direction, MediaSealer};
use crate::fec::gf16::Gf16Code;
use crate::fec::gf8::{encode_scalar_reference, Gf8Code, Kernel};
use crate::fec::ErasureCode;
use crate::pipeline::config::PipelineConfig;
use crate::pipeline::video_receiver::{ReceiverConfig, VideoReceiver};
use crate::pipeline::video_sender::VideoSender;
use crate::send::impairment::SplitMix64;
use std::time::{Duration, Instant};

pub const BENCHMARKS: [&str; 5] = [
    "fec_gf8",
    "fec_gf16",
    "aead",
    "egress",
    "latency_x264_1080p60",
];

fn random_shards(count: usize, len: usize, seed: u64) -> Vec<Vec<u8>> {
    let mut rng = SplitMix64::new(seed);
    (0..count)
        .map(|_| (0..len).map(|_| rng.next_u64() as u8).collect())
        .collect()
}

/// Runs `f` repeatedly for about `budget`; returns seconds per call (best of 3 rounds).
fn time_per_call(budget: Duration, mut f: impl FnMut()) -> f64 {
    f(); // warm caches and lazily built tables
    let mut best = f64::MAX;
    for _ in 0..3 {
        let started = Instant::now();
        let mut calls = 0u64;
        while started.elapsed() < budget / 3 {
            f();
            calls += 1;
        }
        best = best.min(started.elapsed().as_secs_f64() / calls as f64);
    }
    best
}

fn encode_bench(code: &mut dyn ErasureCode, data: &[Vec<u8>], parity_len: usize) -> f64 {
    let refs: Vec<&[u8]> = data.iter().map(Vec::as_slice).collect();
    let mut parity = vec![vec![0u8; parity_len]; code.parity_shards()];
    time_per_call(Duration::from_millis(900), || {
        let mut outs: Vec<&mut [u8]> = parity.iter_mut().map(Vec::as_mut_slice).collect();
        code.encode(&refs, &mut outs).expect("encode");
    })
}

fn fec_gf8() -> String {
    let (k, m, len) = (212, 43, 1040);
    let data = random_shards(k, len, 1);
    let mut code = Gf8Code::new(k, m).expect("gf8");
    let ours = encode_bench(&mut code, &data, len);
    // The fair SIMD baseline: the same code on ISA-L's kernels, same run.
    let mut isal_code = Gf8Code::with_kernel(k, m, Kernel::Isal).expect("gf8 on ISA-L");
    let isal = encode_bench(&mut isal_code, &data, len);
    let refs: Vec<&[u8]> = data.iter().map(Vec::as_slice).collect();
    let mut parity = vec![vec![0u8; len]; m];
    let scalar = time_per_call(Duration::from_millis(900), || {
        let mut outs: Vec<&mut [u8]> = parity.iter_mut().map(Vec::as_mut_slice).collect();
        encode_scalar_reference(&refs, &mut outs);
    });
    let mb = (k * len) as f64 / 1e6;
    format!(
        "{{\"name\":\"fec_gf8\",\"block\":\"212+43 x 1040 B\",\"kernel\":\"{}\",\"ours_mb_s\":{:.0},\"isal_kernel_mb_s\":{:.0},\"ratio_vs_isal\":{:.2},\"scalar_reference_mb_s\":{:.0},\"ratio_vs_scalar\":{:.1}}}",
        code.kernel().name(),
        mb / ours,
        mb / isal,
        isal / ours,
        mb / scalar,
        scalar / ours
    )
}

fn fec_gf16() -> String {
    let (k, m, len) = (1000, 100, 1408);
    let data = random_shards(k, len, 2);
    let mut code = Gf16Code::new(k, m).expect("gf16");
    let ours = encode_bench(&mut code, &data, len);
    let mut copy = vec![0u8; k * len];
    let flat: Vec<u8> = data.concat();
    let memcpy = time_per_call(Duration::from_millis(300), || {
        copy.copy_from_slice(std::hint::black_box(&flat));
        std::hint::black_box(&mut copy);
    });
    let gb = (k * len) as f64 / 1e9;
    format!(
        "{{\"name\":\"fec_gf16\",\"block\":\"1000+100 x 1408 B\",\"encode_gb_s\":{:.2},\"memcpy_baseline_gb_s\":{:.2},\"ratio_to_memcpy\":{:.3},\"target_gb_s\":2}}",
        gb / ours,
        gb / memcpy,
        memcpy / ours
    )
}

fn aead() -> String {
    let key = [7u8; 16];
    let mut sealer = MediaSealer::new(&key, [1, 2, 3, 4], Direction::HostToClient).expect("sealer");
    let mut datagram = vec![0u8; 1472];
    let mut seq = 0u64;
    let ours = time_per_call(Duration::from_millis(600), || {
        seq += 1;
        sealer.seal_datagram(seq, &mut datagram).expect("seal");
    });
    // Baseline: OpenSSL's own one-shot AEAD API on the same 1400-byte payload.
    let cipher = openssl::symm::Cipher::aes_128_gcm();
    let plaintext = vec![0u8; 1400];
    let mut tag = [0u8; 16];
    let nonce = [0u8; 12];
    let raw = time_per_call(Duration::from_millis(600), || {
        let _ = openssl::symm::encrypt_aead(
            cipher,
            &key,
            Some(&nonce),
            &[0u8; 8],
            &plaintext,
            &mut tag,
        );
    });
    format!(
        "{{\"name\":\"aead\",\"packet\":\"1400 B AES-128-GCM\",\"seal_ns\":{:.0},\"openssl_one_shot_ns\":{:.0},\"ratio\":{:.2}}}",
        ours * 1e9,
        raw * 1e9,
        raw / ours
    )
}

fn thread_cpu_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid out-pointer for the duration of the call.
    unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// FEC + seal + send of pre-built frames through the real packetizer/sealer/socket, as CPU
/// time per Gbit/s of payload, against a plain sendmmsg loop of the same datagrams.
fn egress() -> String {
    use crate::fec::provider::CachedCodes;
    use crate::fec::FecScheme;
    use crate::packet::packetize::{FrameInput, Packetizer, PacketizerConfig};
    use crate::send::udp::UdpSender;
    let sink = std::net::UdpSocket::bind("127.0.0.1:0").expect("sink");
    let _ = sink.set_nonblocking(true);
    let destination = sink.local_addr().expect("addr");
    let mut socket =
        UdpSender::connect("127.0.0.1:0".parse().unwrap(), destination).expect("socket");
    let mut packetizer = Packetizer::new(PacketizerConfig {
        shard_align: 2,
        ..PacketizerConfig::new(FecScheme::Gf16, 20)
    })
    .expect("packetizer");
    let mut codes = CachedCodes::new();
    let mut sealer = MediaSealer::new(&[9u8; 16], [0; 4], Direction::HostToClient).expect("sealer");
    let frame = random_shards(1, 200_000, 3).remove(0);
    let frames = 400u32;
    let mut seq = 0u64;
    let mut payload_bytes = 0u64;
    let cpu_started = thread_cpu_ns();
    for index in 0..frames {
        let input = FrameInput {
            data: &frame,
            frame_index: index,
            pts_ns: 0,
            user_flags: 0,
        };
        let mut batch = packetizer.packetize(&input, &mut codes).expect("packetize");
        for datagram in batch.datagrams_mut() {
            seq += 1;
            sealer.seal_datagram(seq, datagram).expect("seal");
        }
        let _ = socket.send_segmented(batch.datagram_span(0, batch.len()), batch.datagram_len());
        payload_bytes += frame.len() as u64;
        // Drain the sink so the loopback queue never fills (its cost is not part of egress).
        let mut buf = [0u8; 2048];
        while sink.recv(&mut buf).is_ok() {}
    }
    let ours_cpu = thread_cpu_ns() - cpu_started;
    // Baseline: the same number of datagrams through plain sendmmsg, no FEC or crypto.
    let datagrams = vec![vec![0u8; 1472]; (seq / u64::from(frames)) as usize];
    let refs: Vec<&[u8]> = datagrams.iter().map(Vec::as_slice).collect();
    let cpu_started = thread_cpu_ns();
    for _ in 0..frames {
        let _ = socket.send_all(&refs);
        let mut buf = [0u8; 2048];
        while sink.recv(&mut buf).is_ok() {}
    }
    let baseline_cpu = thread_cpu_ns() - cpu_started;
    let gbit = payload_bytes as f64 * 8.0 / 1e9;
    let percent = |cpu_ns: u64| cpu_ns as f64 / 1e9 / gbit * 100.0;
    format!(
        "{{\"name\":\"egress\",\"path\":\"GF(2^16) 20% + AES-GCM + GSO send, 200 KB frames\",\"core_percent_per_gbit\":{:.1},\"plain_sendmmsg_core_percent_per_gbit\":{:.1},\"ratio\":{:.2},\"gso\":{},\"target_core_percent_per_gbit\":15,\"note\":\"process CPU time incl. draining the loopback sink\"}}",
        percent(ours_cpu),
        percent(baseline_cpu),
        ours_cpu as f64 / baseline_cpu as f64,
        socket.gso_available()
    )
}

/// Synthetic 1080p60 → libx264 → FEC → seal → send, host processing latency (capture to last
/// packet handed to the kernel), with the encode stage as the in-run reference.
fn latency_x264_1080p60() -> String {
    let key = "2b7e151628aed2a6abf7158809cf4f3c";
    let receiver = VideoReceiver::start(
        ReceiverConfig::from_json(&format!(r#"{{"key":"{key}","salt":"00000000"}}"#))
            .expect("receiver"),
        None,
    )
    .expect("receiver");
    let config = PipelineConfig::from_json(&format!(
        r#"{{"width":1920,"height":1080,"fps":60,"encoder":"software","bitrate_kbps":20000,"key":"{key}","salt":"00000000","destination":"{}","max_frames":180}}"#,
        receiver.local_addr()
    ))
    .expect("config");
    let mut sender = match VideoSender::start(config) {
        Ok(sender) => sender,
        Err(error) => {
            return format!(
                "{{\"name\":\"latency_x264_1080p60\",\"error\":{}}}",
                crate::json::string(&error)
            )
        }
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while !sender.is_finished() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    sender.stop();
    sender.with_stats(|s| {
        use crate::pipeline::stats::Stage;
        let total = s.stage(Stage::Total);
        let encode = s.stage(Stage::Encode);
        format!(
            "{{\"name\":\"latency_x264_1080p60\",\"encoder\":{},\"frames\":{},\"host_processing_ms\":{{\"p50\":{:.2},\"p99\":{:.2}}},\"encode_ms\":{{\"p50\":{:.2},\"p99\":{:.2}}},\"frames_skipped\":{}}}",
            crate::json::string(&s.encoder),
            total.count(),
            total.quantile(0.5) as f64 / 1e6,
            total.quantile(0.99) as f64 / 1e6,
            encode.quantile(0.5) as f64 / 1e6,
            encode.quantile(0.99) as f64 / 1e6,
            s.counters.frames_skipped
        )
    })
}

/// Prefix of the encoder speed benchmark: `encoder_speed:CODEC:WxH@FPS`
/// (see [`crate::encode::speed`]).
pub const ENCODER_SPEED_PREFIX: &str = "encoder_speed:";

/// Runs one named benchmark; returns its JSON result.
pub fn run(name: &str) -> Result<String, String> {
    if let Some(spec) = name.strip_prefix(ENCODER_SPEED_PREFIX) {
        return crate::encode::speed::measure_json(spec);
    }
    match name {
        "fec_gf8" => Ok(fec_gf8()),
        "fec_gf16" => Ok(fec_gf16()),
        "aead" => Ok(aead()),
        "egress" => Ok(egress()),
        "latency_x264_1080p60" => Ok(latency_x264_1080p60()),
        other => Err(format!(
            "unknown benchmark {other:?}; known: {}",
            BENCHMARKS.join(", ")
        )),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn unknown_benchmark_names_the_known_ones() {
        let error = super::run("nope").unwrap_err();
        assert!(error.contains("fec_gf8") && error.contains("egress"));
    }

    #[test]
    fn encoder_speed_is_reached_through_its_prefix() {
        let error = super::run("encoder_speed:vp9:1280x720@60").unwrap_err();
        assert!(error.contains("unknown codec"), "{error}");
        let json = super::run("encoder_speed:h264:320x240@30").unwrap();
        let value: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(value["encoder"], "libx264");
    }

    #[test]
    fn aead_bench_reports_a_ratio() {
        let value: serde_json::Value = serde_json::from_str(&super::aead()).unwrap();
        assert!(value["seal_ns"].as_f64().unwrap() > 0.0);
        assert!(value["ratio"].as_f64().unwrap() > 0.0);
    }
}
