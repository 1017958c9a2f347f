//! End-to-end tests of the whole data plane: packetize → seal → lossy,
//! reordering, duplicating network → open → replay filter → reassembly.

use proptest::prelude::*;

use crate::crypto::aes_gcm::{Direction, MediaOpener, MediaSealer};
use crate::fec::test_codes::TestCodes;
use crate::fec::FecScheme;
use crate::packet::packetize::{FrameInput, Packetizer, PacketizerConfig};
use crate::packet::pf1::parse_packet;
use crate::recv::reassembly::{CompletedFrame, Reassembler, ReassemblyConfig};
use crate::recv::replay::{ReplayFilter, ReplayVerdict};

const KEY: [u8; 16] = [0x42; 16];
const SALT: [u8; 4] = [9, 8, 7, 6];
const US: u64 = 1_000;
const FIRST_FRAME: u32 = 1000;

/// SplitMix64: a tiny deterministic generator driven by a proptest seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            items.swap(i, self.below(i + 1));
        }
    }
}

/// One packet on the simulated wire.
#[derive(Clone)]
struct Wire {
    block: u16,
    is_data: bool,
    datagram: Vec<u8>,
}

/// A sender run: frames sealed into datagrams, plus per-block parity counts.
struct Sent {
    frames: Vec<Vec<u8>>,
    /// Per frame: the datagrams in wire order.
    wire: Vec<Vec<Wire>>,
}

#[derive(Debug, Clone)]
struct Scenario {
    sizes: Vec<usize>,
    shard_bytes: usize,
    scheme: FecScheme,
    percent: u32,
    seed: u64,
}

fn scenario() -> impl Strategy<Value = Scenario> {
    (
        proptest::collection::vec(prop_oneof![3 => 0usize..20_000, 1 => 0usize..200_000], 1..5),
        prop_oneof![Just(1408usize), 100usize..1408, 16usize..100],
        prop_oneof![
            Just(FecScheme::None),
            Just(FecScheme::Gf8),
            Just(FecScheme::Gf16)
        ],
        0u32..=60,
        any::<u64>(),
    )
        .prop_map(|(sizes, shard_bytes, scheme, percent, seed)| Scenario {
            sizes,
            shard_bytes,
            scheme,
            percent,
            seed,
        })
}

fn send(s: &Scenario, codes: &mut TestCodes) -> Sent {
    let mut config = PacketizerConfig::new(s.scheme, s.percent);
    config.max_shard_bytes = s.shard_bytes;
    if s.scheme == FecScheme::Gf16 {
        // The test code is GF(2^8): keep GF16 blocks within 256 shards.
        config.max_data_shards = 150;
    }
    let mut packetizer = Packetizer::new(config).unwrap();
    let mut sealer = MediaSealer::new(&KEY, SALT, Direction::HostToClient).unwrap();
    let mut rng = Rng(s.seed ^ 0x5eed);
    let mut seq = 0u64;
    let mut sent = Sent {
        frames: Vec::new(),
        wire: Vec::new(),
    };
    for (n, &size) in s.sizes.iter().enumerate() {
        let data: Vec<u8> = (0..size).map(|_| rng.next() as u8).collect();
        let frame = FrameInput {
            data: &data,
            frame_index: FIRST_FRAME + n as u32,
            pts_ns: n as u64 * 16_666_667,
            user_flags: n as u32,
        };
        let mut batch = packetizer.packetize(&frame, codes).unwrap();
        let mut wire = Vec::with_capacity(batch.len());
        for i in 0..batch.len() {
            let (header, _) = parse_packet(batch.plaintext(i)).unwrap();
            let datagram = batch.datagram_mut(i);
            sealer.seal_datagram(seq, datagram).unwrap();
            seq += 1;
            wire.push(Wire {
                block: header.block_index,
                is_data: header.is_data(),
                datagram: datagram.to_vec(),
            });
        }
        sent.frames.push(data);
        sent.wire.push(wire);
    }
    sent
}

/// Drops up to `m_b` (or exactly `m_b + 1` for `overload`) packets from each
/// block of a frame; returns the survivors and the dropped data-shard count.
fn lose(rng: &mut Rng, wire: &[Wire], overload_block: Option<u16>) -> (Vec<Wire>, usize) {
    let mut blocks: std::collections::BTreeMap<u16, Vec<usize>> = Default::default();
    for (i, w) in wire.iter().enumerate() {
        blocks.entry(w.block).or_default().push(i);
    }
    let mut dropped = vec![false; wire.len()];
    for (&block, members) in &blocks {
        let parity = members.iter().filter(|&&i| !wire[i].is_data).count();
        let count = if overload_block == Some(block) {
            parity + 1
        } else {
            rng.below(parity + 1)
        };
        let mut order = members.clone();
        rng.shuffle(&mut order);
        for &i in order.iter().take(count) {
            dropped[i] = true;
        }
    }
    let lost_data = (0..wire.len())
        .filter(|&i| dropped[i] && wire[i].is_data)
        .count();
    let survivors = wire
        .iter()
        .zip(&dropped)
        .filter(|(_, &d)| !d)
        .map(|(w, _)| w.clone())
        .collect();
    (survivors, lost_data)
}

/// The receiver: opener → replay filter → reassembler, with counters.
struct Receiver {
    opener: MediaOpener,
    replay: ReplayFilter,
    reassembler: Reassembler,
    auth_failures: usize,
    replays: usize,
    delivered: Vec<CompletedFrame>,
}

impl Receiver {
    fn new(skip_ahead: bool) -> Self {
        Receiver {
            opener: MediaOpener::new(&KEY, SALT, Direction::HostToClient).unwrap(),
            replay: ReplayFilter::new(),
            reassembler: Reassembler::new(ReassemblyConfig {
                skip_ahead,
                first_frame_index: Some(FIRST_FRAME),
                ..ReassemblyConfig::default()
            })
            .unwrap(),
            auth_failures: 0,
            replays: 0,
            delivered: Vec::new(),
        }
    }

    /// What a real receive loop does per datagram.
    fn receive(&mut self, now_ns: u64, datagram: &[u8], codes: &mut TestCodes) {
        let mut buffer = datagram.to_vec();
        match self.opener.open_datagram(&mut buffer) {
            Err(_) => self.auth_failures += 1,
            Ok((seq, plaintext)) => match self.replay.check_and_insert(seq) {
                ReplayVerdict::Fresh => {
                    self.reassembler.push(now_ns, plaintext, codes);
                }
                ReplayVerdict::Duplicate | ReplayVerdict::TooOld => self.replays += 1,
            },
        }
        self.drain();
    }

    fn poll(&mut self, now_ns: u64) {
        self.reassembler.poll(now_ns);
        self.drain();
    }

    fn drain(&mut self) {
        while let Some(frame) = self.reassembler.pop_frame() {
            self.delivered.push(frame);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Loss ≤ parity per block, reordering, duplicates and forgeries: every
    /// frame arrives byte-exact and in order.
    #[test]
    fn recoverable_loss_reordering_and_duplicates(
        s in scenario(),
        cross_frame_shuffle in any::<bool>(),
        skip_ahead in any::<bool>(),
    ) {
        let mut codes = TestCodes::default();
        let sent = send(&s, &mut codes);
        let mut rng = Rng(s.seed);
        let mut lost_data = 0;
        let mut frames_on_wire: Vec<Vec<Wire>> = sent
            .wire
            .iter()
            .map(|w| {
                let (survivors, lost) = lose(&mut rng, w, None);
                lost_data += lost;
                survivors
            })
            .collect();
        for w in &mut frames_on_wire {
            rng.shuffle(w);
        }
        let mut wire: Vec<Wire> = frames_on_wire.into_iter().flatten().collect();
        // Reordering across frames can complete a newer frame first, which
        // skip-ahead (by design) answers by giving up the older one.
        let cross = cross_frame_shuffle && !skip_ahead;
        if cross {
            rng.shuffle(&mut wire);
        }
        let duplicates = wire.len() / 10;
        for _ in 0..duplicates {
            let original = rng.below(wire.len());
            let pick = wire[original].clone();
            // An early copy is reordering: with skip-ahead it could complete a newer frame (say an
            // empty one) first, so those copies only arrive after their original.
            let at = if skip_ahead {
                original + 1 + rng.below(wire.len() - original)
            } else {
                rng.below(wire.len() + 1)
            };
            wire.insert(at, pick);
        }
        let mut receiver = Receiver::new(skip_ahead);
        let mut forged = 0;
        for (n, w) in wire.iter().enumerate() {
            let now = n as u64 * US;
            receiver.receive(now, &w.datagram, &mut codes);
            if n % 13 == 0 {
                let mut tampered = w.datagram.clone();
                let at = rng.below(tampered.len());
                tampered[at] ^= 1 << rng.below(8);
                receiver.receive(now, &tampered, &mut codes);
                forged += 1;
            }
        }
        receiver.poll(wire.len() as u64 * US);

        prop_assert_eq!(receiver.auth_failures, forged);
        prop_assert_eq!(receiver.replays, duplicates);
        prop_assert_eq!(receiver.delivered.len(), sent.frames.len());
        for (n, frame) in receiver.delivered.iter().enumerate() {
            prop_assert_eq!(frame.frame_index, FIRST_FRAME + n as u32);
            prop_assert_eq!(frame.user_flags, n as u32);
            prop_assert_eq!(frame.lost_before, 0);
            prop_assert!(frame.data == sent.frames[n], "frame {} differs", n);
        }
        let stats = *receiver.reassembler.stats();
        prop_assert_eq!(stats.frames_lost, 0);
        // FEC may also rebuild shards that were merely still in flight.
        prop_assert!(stats.shards_recovered >= lost_data as u64);
        prop_assert_eq!(stats.frames_recovered > 0, stats.shards_recovered > 0);
        prop_assert_eq!(stats.packets_dropped_malformed, 0);
        prop_assert_eq!(receiver.reassembler.buffered_bytes(), 0);
        if s.scheme == FecScheme::None {
            prop_assert_eq!(lost_data, 0);
        }
    }

    /// One block loses more than its parity: that frame is given up (after
    /// the loss window, or when a newer frame completes with skip-ahead) and
    /// every other frame is still delivered exactly.
    #[test]
    fn unrecoverable_loss_costs_exactly_one_frame(
        s in scenario(),
        victim_pick in any::<usize>(),
        skip_ahead in any::<bool>(),
    ) {
        let mut codes = TestCodes::default();
        let sent = send(&s, &mut codes);
        let mut rng = Rng(s.seed);
        let victim = victim_pick % sent.frames.len();
        let victim_block = sent.wire[victim][rng.below(sent.wire[victim].len())].block;
        let mut receiver = Receiver::new(skip_ahead);
        let mut now = 0;
        let mut victim_vanished = false;
        for (n, w) in sent.wire.iter().enumerate() {
            let overload = (n == victim).then_some(victim_block);
            let (mut survivors, _) = lose(&mut rng, w, overload);
            victim_vanished |= n == victim && survivors.is_empty();
            rng.shuffle(&mut survivors);
            for packet in &survivors {
                now += US;
                receiver.receive(now, &packet.datagram, &mut codes);
            }
        }
        let window = receiver.reassembler.config().loss_window_ns;
        receiver.poll(now + window);

        let expected: Vec<usize> = (0..sent.frames.len()).filter(|&n| n != victim).collect();
        let got: Vec<usize> = receiver
            .delivered
            .iter()
            .map(|f| (f.frame_index - FIRST_FRAME) as usize)
            .collect();
        prop_assert_eq!(&got, &expected);
        for frame in &receiver.delivered {
            let n = (frame.frame_index - FIRST_FRAME) as usize;
            prop_assert!(frame.data == sent.frames[n]);
            prop_assert_eq!(frame.lost_before, u32::from(n == victim + 1));
        }
        // A last frame of which nothing at all arrived is indistinguishable
        // from one never sent.
        let invisible = victim_vanished && victim + 1 == sent.frames.len();
        prop_assert_eq!(receiver.reassembler.stats().frames_lost, u64::from(!invisible));
        prop_assert_eq!(receiver.reassembler.buffered_bytes(), 0);
        prop_assert_eq!(receiver.reassembler.frames_in_flight(), 0);
    }

    /// Duplicates that bypass the replay filter (e.g. a sender resending a
    /// shard under a new seq) are absorbed by the reassembler itself.
    #[test]
    fn reassembler_alone_tolerates_duplicates(s in scenario()) {
        let mut codes = TestCodes::default();
        let sent = send(&s, &mut codes);
        let mut rng = Rng(s.seed);
        let mut opener = MediaOpener::new(&KEY, SALT, Direction::HostToClient).unwrap();
        let mut plaintexts: Vec<Vec<u8>> = Vec::new();
        for w in sent.wire.iter().flatten() {
            let mut buffer = w.datagram.clone();
            let (_, plaintext) = opener.open_datagram(&mut buffer).unwrap();
            plaintexts.push(plaintext.to_vec());
        }
        let mut reassembler = Reassembler::new(ReassemblyConfig::default()).unwrap();
        let mut delivered = Vec::new();
        for (n, packet) in plaintexts.iter().enumerate() {
            reassembler.push(n as u64 * US, packet, &mut codes);
            // Re-send an earlier packet of the same or an older frame.
            let again = &plaintexts[rng.below(n + 1)];
            reassembler.push(n as u64 * US, again, &mut codes);
            while let Some(frame) = reassembler.pop_frame() {
                delivered.push(frame);
            }
        }
        prop_assert_eq!(delivered.len(), sent.frames.len());
        for (frame, data) in delivered.iter().zip(&sent.frames) {
            prop_assert!(&frame.data == data);
        }
        let stats = reassembler.stats();
        prop_assert_eq!(stats.packets_total(), 2 * plaintexts.len() as u64);
        prop_assert_eq!(stats.frames_lost, 0);
    }
}
