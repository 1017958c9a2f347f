//! Sender side: one access unit → punktfunk/1 packets, with FEC parity.
//!
//! The frame is cut into `N` data shards of one size `L ≤ S` (chosen per
//! frame as small as possible so the tail padding is under `N · align`
//! bytes instead of up to a whole shard), spread evenly over as few blocks
//! as the FEC limits allow (see [`crate::packet::pf1`] for the layout).
//! Each block of `k` data shards gets `m = max(ceil(k · pct / 100),
//! min_parity)` parity shards. Wire order: every data shard of every block
//! in frame order, then all parity (block 0's first).
//!
//! Packets are written into a reusable arena as ready-to-seal datagrams:
//! `[seq slot 8][header 40][shard L][tag slot 16]`, so a sender calls
//! [`crate::crypto::aes_gcm::MediaSealer::seal_datagram`] on each slot and
//! sends it as is — no copy, and no allocation once the arena has grown to
//! the largest frame (FEC coding allocates two small pointer vectors per
//! frame).

use std::fmt;
use std::slice::ChunksExactMut;

use crate::crypto::aes_gcm::{SEQ_LEN, TAG_LEN};
use crate::fec::{CodeProvider, FecError, FecScheme};
use crate::packet::pf1::{
    flags, FrameLayout, PacketHeader, DATAGRAM_OVERHEAD, DEFAULT_SHARD_BYTES, HEADER_LEN,
    MAX_SHARD_BYTES,
};

/// Default parity share: Moonlight's default is 20 %, which rides out the
/// loss of one in five packets per block.
pub const DEFAULT_FEC_PERCENT: u32 = 20;
/// Parity floor per block when FEC is on: with fewer, small frames (k = 1–5)
/// would get a single parity shard and any two losses kill the frame.
pub const DEFAULT_MIN_PARITY: usize = 2;
/// Default GF(2^16) block size: large blocks protect against bursts but
/// coding cost grows with k; 4096 covers a 5.5 MiB frame in one block at the
/// default shard size.
pub const DEFAULT_GF16_MAX_DATA_SHARDS: usize = 4096;
/// Default frame cap, equal to the reassembler's: a 4K keyframe at very
/// high bitrates stays well below it.
pub const DEFAULT_MAX_FRAME_BYTES: usize = 16 << 20;

/// Packetizer settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PacketizerConfig {
    /// Largest shard payload S; a datagram is `S + 64` bytes.
    pub max_shard_bytes: usize,
    /// Shard lengths are rounded up to a multiple of this (some GF(2^16)
    /// codes need even or 64-byte-multiple shards); must divide
    /// `max_shard_bytes`.
    pub shard_align: usize,
    /// FEC scheme for every block.
    pub fec_scheme: FecScheme,
    /// Parity as a percentage of each block's data shards.
    pub fec_percent: u32,
    /// Parity floor per block (ignored without FEC).
    pub min_parity: usize,
    /// Cap on data shards per block; GF(2^8) further limits `k + m ≤ 255`.
    pub max_data_shards: usize,
    /// Larger access units are refused.
    pub max_frame_bytes: usize,
}

impl PacketizerConfig {
    /// Defaults for `scheme` with `fec_percent` parity.
    pub fn new(fec_scheme: FecScheme, fec_percent: u32) -> Self {
        PacketizerConfig {
            max_shard_bytes: DEFAULT_SHARD_BYTES,
            shard_align: 1,
            fec_scheme,
            fec_percent,
            min_parity: if fec_scheme == FecScheme::None {
                0
            } else {
                DEFAULT_MIN_PARITY
            },
            max_data_shards: match fec_scheme {
                FecScheme::Gf8 => 255,
                FecScheme::Gf16 => DEFAULT_GF16_MAX_DATA_SHARDS,
                FecScheme::None => u16::MAX as usize,
            },
            max_frame_bytes: DEFAULT_MAX_FRAME_BYTES,
        }
    }
}

impl Default for PacketizerConfig {
    fn default() -> Self {
        PacketizerConfig::new(FecScheme::Gf8, DEFAULT_FEC_PERCENT)
    }
}

/// Why a frame could not be packetized.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PacketizeError {
    /// The configuration is unusable.
    InvalidConfig(String),
    /// The access unit exceeds the configured or wire limits.
    FrameTooLarge {
        /// Its length.
        bytes: usize,
        /// The limit.
        max: usize,
    },
    /// The erasure code failed.
    Fec(FecError),
}

impl fmt::Display for PacketizeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PacketizeError::InvalidConfig(msg) => write!(f, "invalid packetizer config: {msg}"),
            PacketizeError::FrameTooLarge { bytes, max } => {
                write!(f, "frame of {bytes} bytes exceeds {max}")
            }
            PacketizeError::Fec(e) => write!(f, "FEC: {e}"),
        }
    }
}

impl std::error::Error for PacketizeError {}

impl From<FecError> for PacketizeError {
    fn from(e: FecError) -> Self {
        PacketizeError::Fec(e)
    }
}

/// One access unit to send.
#[derive(Debug, Clone, Copy)]
pub struct FrameInput<'a> {
    /// The encoded bytes.
    pub data: &'a [u8],
    /// Frame number; must be previous + 1 (wrapping) within a stream.
    pub frame_index: u32,
    /// Presentation timestamp.
    pub pts_ns: u64,
    /// Opaque flags delivered with the frame.
    pub user_flags: u32,
}

/// Splits frames into packets; owns the reusable packet arena.
#[derive(Debug)]
pub struct Packetizer {
    config: PacketizerConfig,
    /// Largest k per block that keeps k + m within the scheme's limit.
    max_block_data_shards: usize,
    next_stream_seq: u32,
    arena: Vec<u8>,
}

/// Offset of the shard inside a datagram slot.
const SHARD_OFFSET: usize = SEQ_LEN + HEADER_LEN;

impl Packetizer {
    /// Validates `config` and creates a packetizer.
    pub fn new(config: PacketizerConfig) -> Result<Self, PacketizeError> {
        let invalid = |msg: String| Err(PacketizeError::InvalidConfig(msg));
        if config.max_shard_bytes == 0 || config.max_shard_bytes > MAX_SHARD_BYTES {
            return invalid(format!(
                "max_shard_bytes {} not in 1..={MAX_SHARD_BYTES}",
                config.max_shard_bytes
            ));
        }
        if config.shard_align == 0 || !config.max_shard_bytes.is_multiple_of(config.shard_align) {
            return invalid(format!(
                "shard_align {} must divide max_shard_bytes {}",
                config.shard_align, config.max_shard_bytes
            ));
        }
        if config.max_frame_bytes > u32::MAX as usize {
            return invalid("max_frame_bytes exceeds the u32 frame_bytes field".into());
        }
        let limit = config.fec_scheme.max_block_shards();
        let mut k = config.max_data_shards.min(u16::MAX as usize);
        while k > 0 && k + ParityRule::of(&config).parity(k) > limit {
            k -= 1;
        }
        if k == 0 {
            return invalid(format!(
                "no block size fits: {}% parity, min {} within {limit} shards",
                config.fec_percent, config.min_parity
            ));
        }
        Ok(Packetizer {
            max_block_data_shards: k,
            config,
            next_stream_seq: 0,
            arena: Vec::new(),
        })
    }

    /// The configuration in use.
    pub fn config(&self) -> &PacketizerConfig {
        &self.config
    }

    /// Largest data-shard count per block this configuration produces.
    pub fn max_block_data_shards(&self) -> usize {
        self.max_block_data_shards
    }

    /// The `stream_seq` the next packet will carry.
    pub fn next_stream_seq(&self) -> u32 {
        self.next_stream_seq
    }

    /// Cuts `frame` into packets, computing parity with `codes`. The returned
    /// batch borrows the arena until the next call.
    pub fn packetize(
        &mut self,
        frame: &FrameInput<'_>,
        codes: &mut dyn CodeProvider,
    ) -> Result<PacketBatch<'_>, PacketizeError> {
        let config = &self.config;
        let frame_bytes = frame.data.len();
        if frame_bytes > config.max_frame_bytes {
            return Err(PacketizeError::FrameTooLarge {
                bytes: frame_bytes,
                max: config.max_frame_bytes,
            });
        }
        let data_shards = frame_bytes.div_ceil(config.max_shard_bytes).max(1);
        let block_count = data_shards.div_ceil(self.max_block_data_shards);
        if block_count > u16::MAX as usize {
            return Err(PacketizeError::FrameTooLarge {
                bytes: frame_bytes,
                max: u16::MAX as usize * self.max_block_data_shards * config.max_shard_bytes,
            });
        }
        // Smallest aligned shard that still needs only `data_shards` shards;
        // never above max_shard_bytes because that is a multiple of align.
        let shard_bytes = frame_bytes
            .div_ceil(data_shards)
            .max(1)
            .next_multiple_of(config.shard_align);
        let layout = FrameLayout::new(frame_bytes, shard_bytes, block_count)
            .expect("block_count ≤ data_shards and shard_bytes ≥ 1 by construction");
        debug_assert_eq!(layout.data_shards, data_shards);

        let rule = ParityRule::of(config);
        let parity_shards: usize = (0..block_count)
            .map(|b| rule.parity(layout.block(b).1))
            .sum();
        let count = data_shards + parity_shards;
        let stride = shard_bytes + DATAGRAM_OVERHEAD;
        // Only growth is zero-filled; every byte of the plaintext region is
        // rewritten below, seq and tag slots are the sealer's.
        self.arena.resize(count * stride, 0);
        let arena = &mut self.arena[..];

        let mut header = PacketHeader {
            pts_ns: frame.pts_ns,
            frame_index: frame.frame_index,
            stream_seq: 0,
            frame_bytes: frame_bytes as u32,
            user_flags: frame.user_flags,
            block_index: 0,
            block_count: block_count as u16,
            data_shards: 0,
            recovery_shards: 0,
            shard_index: 0,
            shard_bytes: shard_bytes as u16,
            fec_scheme: config.fec_scheme,
            flags: 0,
        };
        // Data shards, in frame order.
        for (g, slot) in arena.chunks_exact_mut(stride).take(data_shards).enumerate() {
            let block = block_of(&layout, g);
            let (first, k) = layout.block(block);
            header.block_index = block as u16;
            header.data_shards = k as u16;
            header.recovery_shards = rule.parity(k) as u16;
            header.shard_index = (g - first) as u16;
            header.stream_seq = self.next_stream_seq.wrapping_add(g as u32);
            header.flags = flags::PIC
                | if g == 0 { flags::SOF } else { 0 }
                | if g + 1 == data_shards { flags::EOF } else { 0 };
            write_header(&header, slot);
            let start = (g * shard_bytes).min(frame_bytes);
            let end = ((g + 1) * shard_bytes).min(frame_bytes);
            let shard = &mut slot[SHARD_OFFSET..SHARD_OFFSET + shard_bytes];
            shard[..end - start].copy_from_slice(&frame.data[start..end]);
            shard[end - start..].fill(0);
        }

        // Parity headers, then parity payloads block by block.
        let (data_region, parity_region) = arena.split_at_mut(data_shards * stride);
        let mut position = data_shards;
        for (b, parity_block) in split_parity(parity_region, layout, rule, stride) {
            let (_, k) = layout.block(b);
            let m = parity_block.len() / stride;
            for (j, slot) in parity_block.chunks_exact_mut(stride).enumerate() {
                header.block_index = b as u16;
                header.data_shards = k as u16;
                header.recovery_shards = m as u16;
                header.shard_index = (k + j) as u16;
                header.stream_seq = self.next_stream_seq.wrapping_add(position as u32);
                header.flags = 0;
                write_header(&header, slot);
                position += 1;
            }
        }
        if config.fec_scheme != FecScheme::None {
            let mut data_refs: Vec<&[u8]> = Vec::with_capacity(self.max_block_data_shards);
            let mut parity_refs: Vec<&mut [u8]> = Vec::new();
            for (b, parity_block) in split_parity(parity_region, layout, rule, stride) {
                let (first, k) = layout.block(b);
                data_refs.clear();
                data_refs.extend(
                    data_region[first * stride..(first + k) * stride]
                        .chunks_exact(stride)
                        .map(|slot| &slot[SHARD_OFFSET..SHARD_OFFSET + shard_bytes]),
                );
                parity_refs.clear();
                parity_refs.extend(
                    parity_block
                        .chunks_exact_mut(stride)
                        .map(|slot| &mut slot[SHARD_OFFSET..SHARD_OFFSET + shard_bytes]),
                );
                let m = parity_refs.len();
                codes
                    .code(config.fec_scheme, k, m)?
                    .encode(&data_refs, &mut parity_refs)?;
            }
        }

        self.next_stream_seq = self.next_stream_seq.wrapping_add(count as u32);
        Ok(PacketBatch {
            arena,
            stride,
            count,
            data_packets: data_shards,
            layout,
        })
    }
}

/// How many parity shards a block gets.
#[derive(Debug, Clone, Copy)]
struct ParityRule {
    enabled: bool,
    percent: u32,
    min_parity: usize,
}

impl ParityRule {
    fn of(config: &PacketizerConfig) -> Self {
        ParityRule {
            enabled: config.fec_scheme != FecScheme::None,
            percent: config.fec_percent,
            min_parity: config.min_parity,
        }
    }

    /// `max(ceil(k · percent / 100), min_parity)`, or 0 without FEC.
    fn parity(self, k: usize) -> usize {
        if !self.enabled {
            return 0;
        }
        let by_percent = (k as u64 * u64::from(self.percent)).div_ceil(100);
        usize::try_from(by_percent)
            .unwrap_or(usize::MAX)
            .max(self.min_parity)
    }
}

/// The block holding global data shard `g`.
fn block_of(layout: &FrameLayout, g: usize) -> usize {
    let base = layout.data_shards / layout.block_count;
    let larger = layout.data_shards % layout.block_count;
    // The first `larger` blocks hold base + 1 shards each.
    let boundary = larger * (base + 1);
    if g < boundary {
        g / (base + 1)
    } else {
        larger + (g - boundary) / base
    }
}

/// Splits the parity region into per-block slices (block index, slots).
fn split_parity(
    mut region: &mut [u8],
    layout: FrameLayout,
    rule: ParityRule,
    stride: usize,
) -> impl Iterator<Item = (usize, &mut [u8])> {
    (0..layout.block_count).map(move |b| {
        let bytes = rule.parity(layout.block(b).1) * stride;
        let (this, rest) = std::mem::take(&mut region).split_at_mut(bytes);
        region = rest;
        (b, this)
    })
}

fn write_header(header: &PacketHeader, slot: &mut [u8]) {
    let out: &mut [u8; HEADER_LEN] = (&mut slot[SEQ_LEN..SHARD_OFFSET])
        .try_into()
        .expect("slot holds a header");
    header.write_to(out);
}

/// The packets of one frame, as datagram slots in wire order.
#[derive(Debug)]
pub struct PacketBatch<'a> {
    arena: &'a mut [u8],
    stride: usize,
    count: usize,
    data_packets: usize,
    layout: FrameLayout,
}

impl<'a> PacketBatch<'a> {
    /// Packets in the batch.
    pub fn len(&self) -> usize {
        self.count
    }

    /// Never true (an empty frame still yields one packet); for clippy.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Data packets (the first `data_packets()` of the batch).
    pub fn data_packets(&self) -> usize {
        self.data_packets
    }

    /// Parity packets (after the data packets).
    pub fn parity_packets(&self) -> usize {
        self.count - self.data_packets
    }

    /// The frame's shard/block layout.
    pub fn layout(&self) -> &FrameLayout {
        &self.layout
    }

    /// Length of every datagram slot: shard + 64.
    pub fn datagram_len(&self) -> usize {
        self.stride
    }

    /// Datagram slot `i`: `[seq 8][header ‖ shard][tag 16]`, ready for
    /// `MediaSealer::seal_datagram`.
    pub fn datagram_mut(&mut self, i: usize) -> &mut [u8] {
        &mut self.arena[i * self.stride..(i + 1) * self.stride]
    }

    /// Datagram slot `i` (sealed, once the sender has sealed it).
    pub fn datagram(&self, i: usize) -> &[u8] {
        &self.arena[i * self.stride..(i + 1) * self.stride]
    }

    /// `count` consecutive slots from `start` as one contiguous buffer (for UDP GSO).
    pub fn datagram_span(&self, start: usize, count: usize) -> &[u8] {
        &self.arena[start * self.stride..(start + count) * self.stride]
    }

    /// All datagram slots in wire order.
    pub fn datagrams_mut(&mut self) -> ChunksExactMut<'_, u8> {
        self.arena.chunks_exact_mut(self.stride)
    }

    /// The plaintext packet `header ‖ shard` of slot `i` (before sealing).
    pub fn plaintext(&self, i: usize) -> &[u8] {
        let slot = &self.arena[i * self.stride..(i + 1) * self.stride];
        &slot[SEQ_LEN..self.stride - TAG_LEN]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fec::test_codes::TestCodes;
    use crate::packet::pf1::parse_packet;

    fn frame(data: &[u8], index: u32) -> FrameInput<'_> {
        FrameInput {
            data,
            frame_index: index,
            pts_ns: 1_000 * u64::from(index),
            user_flags: 7,
        }
    }

    fn bytes(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 131 + 17) as u8).collect()
    }

    #[test]
    fn splits_into_data_then_parity_with_consistent_headers() {
        let mut p = Packetizer::new(PacketizerConfig::new(FecScheme::Gf8, 20)).unwrap();
        let mut codes = TestCodes::default();
        let data = bytes(10_000);
        let batch = p.packetize(&frame(&data, 3), &mut codes).unwrap();
        // 10000 / 1408 → 8 shards of 1250 bytes, one block, m = max(ceil(1.6), 2) = 2.
        assert_eq!(batch.data_packets(), 8);
        assert_eq!(batch.parity_packets(), 2);
        assert_eq!(batch.datagram_len(), 1250 + 64);
        let mut reassembled = Vec::new();
        for i in 0..batch.len() {
            let (h, shard) = parse_packet(batch.plaintext(i)).unwrap();
            assert_eq!(h.frame_index, 3);
            assert_eq!(h.stream_seq, i as u32);
            assert_eq!(h.frame_bytes, 10_000);
            assert_eq!(h.user_flags, 7);
            assert_eq!((h.data_shards, h.recovery_shards), (8, 2));
            assert_eq!(h.shard_index as usize, i);
            assert_eq!(h.is_data(), i < 8);
            assert_eq!(h.flags & flags::PIC != 0, i < 8);
            assert_eq!(h.flags & flags::SOF != 0, i == 0);
            assert_eq!(h.flags & flags::EOF != 0, i == 7);
            if h.is_data() {
                reassembled.extend_from_slice(shard);
            }
        }
        assert_eq!(reassembled[..10_000], data[..]);
        assert!(reassembled[10_000..].iter().all(|&b| b == 0));
        assert_eq!(p.next_stream_seq(), 10);
    }

    #[test]
    fn gf8_blocks_respect_255_shards_and_spread_evenly() {
        let mut p = Packetizer::new(PacketizerConfig::new(FecScheme::Gf8, 20)).unwrap();
        // k + ceil(k/5) ≤ 255 → k ≤ 212.
        assert_eq!(p.max_block_data_shards(), 212);
        let mut codes = TestCodes::default();
        let data = bytes(300 * 1408);
        let batch = p.packetize(&frame(&data, 0), &mut codes).unwrap();
        assert_eq!(batch.layout().block_count, 2);
        let mut per_block = [0usize; 2];
        for i in 0..batch.data_packets() {
            let (h, _) = parse_packet(batch.plaintext(i)).unwrap();
            per_block[h.block_index as usize] += 1;
            assert_eq!(h.data_shards, 150);
            assert_eq!(h.recovery_shards, 30);
        }
        assert_eq!(per_block, [150, 150]);
        assert_eq!(batch.parity_packets(), 60);
    }

    #[test]
    fn no_fec_means_no_parity_and_no_coder() {
        let mut p = Packetizer::new(PacketizerConfig::new(FecScheme::None, 50)).unwrap();
        let mut codes = TestCodes::default();
        let data = bytes(5000);
        let batch = p.packetize(&frame(&data, 1), &mut codes).unwrap();
        assert_eq!(batch.parity_packets(), 0);
        assert_eq!(batch.len(), 4);
        assert_eq!(codes.lookups, 0);
    }

    #[test]
    fn empty_and_tiny_frames_get_one_minimal_shard() {
        let mut p = Packetizer::new(PacketizerConfig::default()).unwrap();
        let mut codes = TestCodes::default();
        let batch = p.packetize(&frame(&[], 1), &mut codes).unwrap();
        assert_eq!((batch.data_packets(), batch.parity_packets()), (1, 2));
        let (h, shard) = parse_packet(batch.plaintext(0)).unwrap();
        assert_eq!((h.frame_bytes, h.shard_bytes), (0, 1));
        assert_eq!(shard, [0]);
        let batch = p.packetize(&frame(&[9; 100], 2), &mut codes).unwrap();
        assert_eq!(batch.datagram_len(), 164);
    }

    #[test]
    fn alignment_rounds_shards_up() {
        let mut config = PacketizerConfig::new(FecScheme::Gf16, 10);
        config.shard_align = 64;
        let mut p = Packetizer::new(config).unwrap();
        let mut codes = TestCodes::default();
        let data = bytes(1409);
        let batch = p.packetize(&frame(&data, 0), &mut codes).unwrap();
        // 2 shards of ceil(1409 / 2) = 705 → 768.
        assert_eq!(batch.data_packets(), 2);
        assert_eq!(batch.datagram_len(), 768 + 64);
    }

    #[test]
    fn arena_is_reused_across_frames() {
        let mut p = Packetizer::new(PacketizerConfig::default()).unwrap();
        let mut codes = TestCodes::default();
        let big = bytes(100_000);
        p.packetize(&frame(&big, 0), &mut codes).unwrap();
        let capacity = p.arena.capacity();
        let pointer = p.arena.as_ptr();
        for i in 1..20 {
            let data = bytes(1000 * i);
            p.packetize(&frame(&data, i as u32), &mut codes).unwrap();
        }
        assert_eq!(p.arena.capacity(), capacity);
        assert_eq!(p.arena.as_ptr(), pointer);
    }

    #[test]
    fn rejects_bad_config_and_oversize_frames() {
        let bad = |edit: &dyn Fn(&mut PacketizerConfig)| {
            let mut c = PacketizerConfig::default();
            edit(&mut c);
            Packetizer::new(c).is_err()
        };
        assert!(bad(&|c| c.max_shard_bytes = 0));
        assert!(bad(&|c| c.max_shard_bytes = MAX_SHARD_BYTES + 1));
        assert!(bad(&|c| c.shard_align = 0));
        assert!(bad(&|c| c.shard_align = 1000));
        assert!(bad(&|c| c.min_parity = 255));
        assert!(bad(&|c| c.fec_percent = 30_000));
        assert!(!bad(&|c| c.fec_percent = 100));

        let mut p = Packetizer::new(PacketizerConfig {
            max_frame_bytes: 1000,
            ..PacketizerConfig::default()
        })
        .unwrap();
        let err = p
            .packetize(&frame(&[0; 1001], 0), &mut TestCodes::default())
            .unwrap_err();
        assert_eq!(
            err,
            PacketizeError::FrameTooLarge {
                bytes: 1001,
                max: 1000
            }
        );
    }

    #[test]
    fn block_of_matches_layout() {
        for (n, b) in [(1, 1), (10, 3), (300, 2), (7, 7), (1000, 13)] {
            let layout = FrameLayout::new(n * 10, 10, b).unwrap();
            for blk in 0..b {
                let (first, k) = layout.block(blk);
                for g in first..first + k {
                    assert_eq!(block_of(&layout, g), blk);
                }
            }
        }
    }
}
