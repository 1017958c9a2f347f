//! Throughput of the GF(2^16) code on one core, against a memcpy of the same data volume.
//!
//! Run with `cargo bench --bench gf16`. Each figure is the data volume (`data × shard_len`)
//! divided by the time of one call: the mean over the fastest of ten 100 ms rounds (about a
//! second per measurement; the best round filters out noise from other processes).

use std::hint::black_box;
use std::time::{Duration, Instant};

use punktfunk_native::fec::gf16::Gf16Code;
use punktfunk_native::fec::ErasureCode;

const SHARD_LEN: usize = 1408;
const ROUND: Duration = Duration::from_millis(100);
const ROUNDS: usize = 10;

/// Seconds per call of `step`: the mean within the fastest round, after a warm-up round.
fn seconds_per_call(mut step: impl FnMut()) -> f64 {
    let warm_up = Instant::now();
    while warm_up.elapsed() < ROUND {
        step();
    }
    (0..ROUNDS)
        .map(|_| {
            let start = Instant::now();
            let mut calls = 0u64;
            while start.elapsed() < ROUND {
                step();
                calls += 1;
            }
            start.elapsed().as_secs_f64() / calls as f64
        })
        .fold(f64::INFINITY, f64::min)
}

fn gigabytes_per_second(bytes: usize, seconds: f64) -> f64 {
    bytes as f64 / seconds / 1e9
}

fn pseudo_random_shards(count: usize, len: usize, seed: u64) -> Vec<Vec<u8>> {
    let mut state = seed | 1;
    (0..count)
        .map(|_| {
            (0..len)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    state as u8
                })
                .collect()
        })
        .collect()
}

fn bench_shape(data_count: usize, parity_count: usize, missing_data: usize) {
    let volume = data_count * SHARD_LEN;
    let data = pseudo_random_shards(data_count, SHARD_LEN, data_count as u64);

    let mut copies = vec![vec![0u8; SHARD_LEN]; data_count];
    let memcpy = seconds_per_call(|| {
        for (dst, src) in copies.iter_mut().zip(&data) {
            dst.copy_from_slice(black_box(src));
        }
        black_box(&mut copies);
    });

    let data_refs: Vec<&[u8]> = data.iter().map(Vec::as_slice).collect();
    // The AVX2 backend of the same code, same run: the baseline for the GFNI kernels.
    let mut baseline = Gf16Code::new_without_gfni(data_count, parity_count).expect("valid shape");
    let mut baseline_parity = vec![vec![0u8; SHARD_LEN]; parity_count];
    let baseline_encode = {
        let mut parity_refs: Vec<&mut [u8]> =
            baseline_parity.iter_mut().map(Vec::as_mut_slice).collect();
        seconds_per_call(|| {
            baseline
                .encode(black_box(&data_refs), &mut parity_refs)
                .expect("encode");
        })
    };

    let mut code = Gf16Code::new(data_count, parity_count).expect("valid shape");
    let mut parity = vec![vec![0u8; SHARD_LEN]; parity_count];
    let encode = {
        let mut parity_refs: Vec<&mut [u8]> = parity.iter_mut().map(Vec::as_mut_slice).collect();
        seconds_per_call(|| {
            code.encode(black_box(&data_refs), &mut parity_refs)
                .expect("encode");
        })
    };

    // Lose `missing_data` data shards spread over the block; decode from the rest.
    let mut shards: Vec<Vec<u8>> = data.iter().chain(&parity).cloned().collect();
    let mut present = vec![true; data_count + parity_count];
    let stride = data_count / missing_data;
    for lost in 0..missing_data {
        present[lost * stride] = false;
        shards[lost * stride].fill(0);
    }
    let mut shard_refs: Vec<&mut [u8]> = shards.iter_mut().map(Vec::as_mut_slice).collect();
    let decode = seconds_per_call(|| {
        code.reconstruct(&mut shard_refs, black_box(&present))
            .expect("reconstruct");
    });
    assert!(
        shards.iter().zip(&data).all(|(got, want)| got == want),
        "decode produced wrong data"
    );
    assert_eq!(parity, baseline_parity, "backends disagree");

    let memcpy_rate = gigabytes_per_second(volume, memcpy);
    let encode_rate = gigabytes_per_second(volume, encode);
    let decode_rate = gigabytes_per_second(volume, decode);
    println!(
        "{data_count:>5}+{parity_count:<4} x {SHARD_LEN} B  memcpy {memcpy_rate:6.2} GB/s | \
         encode {encode_rate:5.2} GB/s ({:6.1} us, {:5.3}x memcpy) | \
         decode {missing_data} lost {decode_rate:5.2} GB/s ({:7.1} us, {:5.3}x memcpy) | \
         {} encode {:5.2} GB/s, ours {:4.2}x it",
        encode * 1e6,
        encode_rate / memcpy_rate,
        decode * 1e6,
        decode_rate / memcpy_rate,
        baseline.backend(),
        gigabytes_per_second(volume, baseline_encode),
        baseline_encode / encode,
    );
}

fn main() {
    let backend = Gf16Code::new(1, 1).expect("valid shape").backend();
    println!("GF(2^16) additive-FFT code, backend {backend}, one thread");
    bench_shape(1000, 100, 100);
    bench_shape(200, 40, 40);
    bench_shape(4000, 400, 400);
}
