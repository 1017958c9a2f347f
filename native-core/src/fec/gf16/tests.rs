//! End-to-end tests of [`Gf16Code`]: round trips under random erasures in every layout and
//! backend, large blocks, failure modes and parameter checks.

use super::*;
use proptest::prelude::*;

/// Small deterministic generator so large tests need no proptest machinery.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, bound: usize) -> usize {
        (self.next() % bound as u64) as usize
    }

    fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next() as u8).collect()
    }
}

/// `count` distinct indices below `total`, in random order.
fn pick_distinct(rng: &mut XorShift, total: usize, count: usize) -> Vec<usize> {
    let mut indices: Vec<usize> = (0..total).collect();
    for i in 0..count {
        let j = i + rng.below(total - i);
        indices.swap(i, j);
    }
    indices.truncate(count);
    indices
}

fn encode_block(code: &mut Gf16Code, data: &[Vec<u8>]) -> Vec<Vec<u8>> {
    let len = data[0].len();
    let mut parity = vec![vec![0u8; len]; code.parity_shards()];
    let data_refs: Vec<&[u8]> = data.iter().map(Vec::as_slice).collect();
    let mut parity_refs: Vec<&mut [u8]> = parity.iter_mut().map(Vec::as_mut_slice).collect();
    code.encode(&data_refs, &mut parity_refs).unwrap();
    parity
}

/// Overwrites the `erased` shards with junk, reconstructs, and returns the shards.
fn erase_and_reconstruct(
    code: &mut Gf16Code,
    data: &[Vec<u8>],
    parity: &[Vec<u8>],
    erased: &[usize],
) -> Result<Vec<Vec<u8>>, FecError> {
    let mut shards: Vec<Vec<u8>> = data.iter().chain(parity).cloned().collect();
    let mut present = vec![true; shards.len()];
    for &index in erased {
        present[index] = false;
        shards[index].iter_mut().for_each(|b| *b = 0xA5);
    }
    let mut refs: Vec<&mut [u8]> = shards.iter_mut().map(Vec::as_mut_slice).collect();
    code.reconstruct(&mut refs, &present)?;
    Ok(shards)
}

fn assert_round_trip(code: &mut Gf16Code, rng: &mut XorShift, len: usize, erasures: usize) {
    let (k, m) = (code.data_shards(), code.parity_shards());
    let data: Vec<Vec<u8>> = (0..k).map(|_| rng.bytes(len)).collect();
    let parity = encode_block(code, &data);
    let erased = pick_distinct(rng, k + m, erasures);
    let shards = erase_and_reconstruct(code, &data, &parity, &erased).unwrap();
    for (i, shard) in shards.iter().take(k).enumerate() {
        assert!(
            shard == &data[i],
            "{k}+{m} len {len} {:?}: data shard {i} wrong",
            code
        );
    }
}

fn layouts_that_fit(k: usize, m: usize) -> Vec<Layout> {
    [
        Layout::HighRate {
            chunk: m.next_power_of_two(),
        },
        Layout::LowRate {
            chunk: k.next_power_of_two(),
        },
        Layout::Direct,
    ]
    .into_iter()
    .filter(|layout| layout.span(k, m) <= FIELD_POINTS)
    .collect()
}

fn kernel_by_index(index: usize) -> Kernel {
    match index {
        0 => Kernel::scalar(),
        1 => Kernel::ssse3_or_scalar(),
        2 => Kernel::avx2_or_below(),
        _ => Kernel::detect(),
    }
}

/// Thousands of cases in release builds (about 3 s); unoptimised builds get a smoke run.
const CASES: u32 = if cfg!(debug_assertions) { 200 } else { 2500 };

proptest! {
    #![proptest_config(ProptestConfig { cases: CASES, ..ProptestConfig::default() })]

    #[test]
    fn any_data_count_of_shards_rebuilds_the_block(
        k in 1usize..=300,
        m in 1usize..=300,
        half_len in 1usize..=300,
        seed in any::<u64>(),
        erase_fraction in 0.0f64..=1.0,
        layout_pick in 0usize..3,
        kernel_pick in 0usize..8,
    ) {
        let layouts = layouts_that_fit(k, m);
        let layout = layouts[layout_pick % layouts.len()];
        // Mostly the detected backend; scalar and SSSE3 now and then.
        let kernel = kernel_by_index(kernel_pick.saturating_sub(5));
        let mut code = Gf16Code::with_choices(k, m, Some(layout), kernel);
        let mut rng = XorShift(seed | 1);
        let erasures = (erase_fraction * m as f64).round() as usize;
        let len = 2 * half_len;
        let data: Vec<Vec<u8>> = (0..k).map(|_| rng.bytes(len)).collect();
        let parity = encode_block(&mut code, &data);
        let erased = pick_distinct(&mut rng, k + m, erasures);
        let shards = erase_and_reconstruct(&mut code, &data, &parity, &erased).unwrap();
        for i in 0..k {
            prop_assert!(shards[i] == data[i], "data shard {} wrong ({:?})", i, code);
        }
        // Present shards are never modified.
        for (i, shard) in shards.iter().enumerate().skip(k) {
            if !erased.contains(&i) {
                prop_assert!(shard == &parity[i - k]);
            }
        }
    }

    #[test]
    fn simd_and_scalar_backends_agree(
        k in 1usize..=64,
        m in 1usize..=64,
        half_len in 1usize..=200,
        seed in any::<u64>(),
    ) {
        let mut rng = XorShift(seed | 1);
        let len = 2 * half_len;
        let data: Vec<Vec<u8>> = (0..k).map(|_| rng.bytes(len)).collect();
        let erased = pick_distinct(&mut rng, k + m, m);
        let mut outputs = Vec::new();
        for kernel_index in 0..4 {
            let mut code = Gf16Code::with_choices(k, m, None, kernel_by_index(kernel_index));
            let parity = encode_block(&mut code, &data);
            let shards = erase_and_reconstruct(&mut code, &data, &parity, &erased).unwrap();
            outputs.push((parity, shards));
        }
        prop_assert!(outputs[0] == outputs[1], "scalar != ssse3");
        prop_assert!(outputs[0] == outputs[2], "scalar != avx2 ({})", Kernel::avx2_or_below().name());
        prop_assert!(outputs[0] == outputs[3], "scalar != detected ({})", Kernel::detect().name());
    }
}

#[test]
fn layouts_are_chosen_by_rate_and_fit() {
    assert_eq!(Layout::choose(1000, 100), Layout::HighRate { chunk: 128 });
    assert_eq!(Layout::choose(10, 100), Layout::LowRate { chunk: 16 });
    assert_eq!(
        Layout::choose(32768, 32767),
        Layout::HighRate { chunk: 32768 }
    );
    assert_eq!(Layout::choose(1, 65534), Layout::LowRate { chunk: 1 });
    assert_eq!(Layout::choose(65534, 1), Layout::HighRate { chunk: 1 });
    assert_eq!(Layout::choose(33000, 32000), Layout::Direct);
    assert_eq!(Layout::choose(32000, 33000), Layout::Direct);
}

#[test]
fn every_layout_recovers_the_leading_data_shards() {
    // Each layout is a different code; every one must survive losing the first data shards.
    let mut rng = XorShift(77);
    for (k, m) in [(5, 7), (7, 5), (64, 64), (100, 3), (3, 100)] {
        for layout in layouts_that_fit(k, m) {
            let mut code = Gf16Code::with_choices(k, m, Some(layout), Kernel::detect());
            let data: Vec<Vec<u8>> = (0..k).map(|_| rng.bytes(34)).collect();
            let parity = encode_block(&mut code, &data);
            let erased: Vec<usize> = (0..m.min(k)).collect();
            let shards = erase_and_reconstruct(&mut code, &data, &parity, &erased).unwrap();
            assert_eq!(&shards[..k], &data[..], "{k}+{m} {layout:?}");
        }
    }
}

#[test]
fn thousand_plus_hundred_with_hundred_erasures() {
    let mut code = Gf16Code::new(1000, 100).unwrap();
    let mut rng = XorShift(0x1000_0100);
    for _ in 0..3 {
        assert_round_trip(&mut code, &mut rng, 1408, 100);
    }
    // All 100 erasures among the data shards.
    let data: Vec<Vec<u8>> = (0..1000).map(|_| rng.bytes(1408)).collect();
    let parity = encode_block(&mut code, &data);
    let erased = pick_distinct(&mut rng, 1000, 100);
    let shards = erase_and_reconstruct(&mut code, &data, &parity, &erased).unwrap();
    assert_eq!(&shards[..1000], &data[..]);
}

#[test]
fn largest_blocks_round_trip() {
    let mut rng = XorShift(0xB16_B10C);
    for (k, m, len) in [
        (32768, 32767, 8),
        (33000, 32000, 2),
        (65534, 1, 2),
        (1, 65534, 4),
        (4000, 400, 130),
    ] {
        let mut code = Gf16Code::new(k, m).unwrap();
        assert_round_trip(&mut code, &mut rng, len, m.min(5));
        assert_round_trip(&mut code, &mut rng, len, m.min(40));
    }
}

#[test]
fn code_is_reusable_across_shard_lengths() {
    let mut code = Gf16Code::new(20, 6).unwrap();
    let mut rng = XorShift(5);
    for len in [1408, 2, 64, 66, 4096, 1408, 62] {
        assert_round_trip(&mut code, &mut rng, len, 6);
    }
}

#[test]
fn too_many_erasures_fail_cleanly_and_leave_shards_alone() {
    let mut rng = XorShift(9);
    for (k, m) in [(10, 4), (4, 10), (1, 1), (200, 30)] {
        let mut code = Gf16Code::new(k, m).unwrap();
        let data: Vec<Vec<u8>> = (0..k).map(|_| rng.bytes(40)).collect();
        let parity = encode_block(&mut code, &data);
        for erasures in [m + 1, k + m] {
            let erased = pick_distinct(&mut rng, k + m, erasures);
            let mut shards: Vec<Vec<u8>> = data.iter().chain(&parity).cloned().collect();
            let mut present = vec![true; k + m];
            for &i in &erased {
                present[i] = false;
            }
            let before = shards.clone();
            let mut refs: Vec<&mut [u8]> = shards.iter_mut().map(Vec::as_mut_slice).collect();
            assert_eq!(
                code.reconstruct(&mut refs, &present),
                Err(FecError::TooFewShards {
                    needed: k,
                    present: k + m - erasures,
                })
            );
            assert_eq!(shards, before);
        }
        // The instance still works afterwards.
        assert_round_trip(&mut code, &mut rng, 40, m);
    }
}

#[test]
fn nothing_missing_is_a_no_op() {
    let mut code = Gf16Code::new(3, 2).unwrap();
    let data = vec![vec![1u8, 2], vec![3, 4], vec![5, 6]];
    let parity = encode_block(&mut code, &data);
    let shards = erase_and_reconstruct(&mut code, &data, &parity, &[]).unwrap();
    assert_eq!(&shards[..3], &data[..]);
    let shards = erase_and_reconstruct(&mut code, &data, &parity, &[3, 4]).unwrap();
    assert_eq!(&shards[..3], &data[..]);
}

#[test]
fn invalid_shapes_are_rejected() {
    let invalid =
        |result: Result<Gf16Code, FecError>| matches!(result, Err(FecError::InvalidParameters(_)));
    assert!(invalid(Gf16Code::new(0, 1)));
    assert!(invalid(Gf16Code::new(1, 0)));
    assert!(invalid(Gf16Code::new(65535, 1)));
    assert!(invalid(Gf16Code::new(30000, 35536)));
    assert!(invalid(Gf16Code::new(usize::MAX, usize::MAX)));
    assert!(Gf16Code::new(65534, 1).is_ok());
    assert!(Gf16Code::new(1, 65534).is_ok());
}

#[test]
fn invalid_shard_lengths_and_counts_are_rejected() {
    let mut code = Gf16Code::new(2, 1).unwrap();
    let is_invalid = |r: Result<(), FecError>| matches!(r, Err(FecError::InvalidParameters(_)));
    for len in [0usize, 1, 3, 1407] {
        let data = [vec![0u8; len], vec![0u8; len]];
        let mut parity = [vec![0u8; len]];
        let data_refs: Vec<&[u8]> = data.iter().map(Vec::as_slice).collect();
        let mut parity_refs: Vec<&mut [u8]> = parity.iter_mut().map(Vec::as_mut_slice).collect();
        assert!(
            is_invalid(code.encode(&data_refs, &mut parity_refs)),
            "{len}"
        );

        let mut shards = [vec![0u8; len], vec![0u8; len], vec![0u8; len]];
        let mut refs: Vec<&mut [u8]> = shards.iter_mut().map(Vec::as_mut_slice).collect();
        assert!(
            is_invalid(code.reconstruct(&mut refs, &[false, true, true])),
            "{len}"
        );
    }
    // Mismatched lengths and counts.
    let data = [vec![0u8; 4], vec![0u8; 6]];
    let mut parity = [vec![0u8; 4]];
    let data_refs: Vec<&[u8]> = data.iter().map(Vec::as_slice).collect();
    let mut parity_refs: Vec<&mut [u8]> = parity.iter_mut().map(Vec::as_mut_slice).collect();
    assert!(is_invalid(code.encode(&data_refs, &mut parity_refs)));
    assert!(is_invalid(code.encode(&data_refs[..1], &mut parity_refs)));
    let mut shards = [vec![0u8; 4], vec![0u8; 4]];
    let mut refs: Vec<&mut [u8]> = shards.iter_mut().map(Vec::as_mut_slice).collect();
    assert!(is_invalid(code.reconstruct(&mut refs, &[true, true])));
    let mut shards = [vec![0u8; 4], vec![0u8; 4], vec![0u8; 4]];
    let mut refs: Vec<&mut [u8]> = shards.iter_mut().map(Vec::as_mut_slice).collect();
    assert!(is_invalid(code.reconstruct(&mut refs, &[true, true])));
}

#[test]
fn parity_of_a_single_data_shard_is_a_copy_in_low_rate() {
    // k = 1 in the low-rate layout: the data polynomial is a constant, so every parity shard
    // equals the data shard.
    let mut code =
        Gf16Code::with_choices(1, 3, Some(Layout::LowRate { chunk: 1 }), Kernel::detect());
    let data = vec![vec![9u8, 8, 7, 6]];
    let parity = encode_block(&mut code, &data);
    assert!(parity.iter().all(|p| p == &data[0]));
}

#[test]
fn codes_can_move_between_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Gf16Code>();
    let mut code = Gf16Code::new(8, 4).unwrap();
    let handle = std::thread::spawn(move || {
        assert_round_trip(&mut code, &mut XorShift(3), 128, 4);
        code
    });
    assert_eq!(handle.join().unwrap().data_shards(), 8);
}
