//! GameStream (Moonlight-compatible) video packets, host side and test-client
//! side (protocol reference: `docs/gamestream-protocol.md` §7.2–§7.8).
//!
//! One access unit becomes a byte stream `frame header (8) ‖ access unit`
//! (§7.6), cut into chunks of `P − 16` bytes, `P` being the ANNOUNCE
//! `packetSize`. Each chunk gets a 32-byte header (16 bytes RTP + extension
//! placeholder, 16 bytes NV header) and is zero-padded to one **shard** of
//! `P + 16` bytes. Shards are grouped into at most four FEC blocks (§7.4),
//! each protected by nanors' Cauchy Reed–Solomon code over the *whole* shard
//! ([`Gf8Code`], §7.5). Wire order is block by block, data then parity.
//!
//! Header bytes and FEC (§7.5): parity is computed while the RTP header
//! (bytes 0–15) and `fecInfo` (28–31) are zero and the NV fields the client
//! reads from recovered shards (`streamPacketIndex`, `flags`) are final.
//! Afterwards every shard gets its RTP header and `fecInfo`, and parity shards
//! additionally get `frameIndex` and `multiFecBlocks` written over their
//! parity bytes (the client overwrites those fields in recovered shards).
//! The depacketizer therefore zeroes bytes 0–15 and 28–31 of every shard
//! before decoding and ignores the recovered `frameIndex`/`multiFecBlocks`.
//!
//! Deviation from Sunshine, on purpose: `streamPacketIndex` comes from a
//! 24-bit shard counter instead of the 16-bit RTP sequence number. Both agree
//! for the first 65 536 shards; the counter stays consecutive in the 24 bits
//! Moonlight compares when the 16-bit sequence wraps.
//!
//! With video encryption (§7.8) each shard is sealed with AES-128-GCM (no
//! AAD) and prefixed by `nonce (12) ‖ LE32 frameIndex ‖ tag (16)`; the nonce
//! is `LE64(counter) ‖ 00 00 00 ‖ 'V'`, one counter value per datagram.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use crate::crypto::evp::{GcmContext, GcmMode, GCM_NONCE_LEN, GCM_TAG_LEN};
use crate::crypto::{CryptoError, KEY_LEN};
use crate::fec::gf8::{Gf8Code, MAX_TOTAL_SHARDS};
use crate::fec::{ErasureCode, FecError};

/// RTP header (12) plus the 4 bytes Moonlight skips for the extension bit.
pub const RTP_HEADER_LEN: usize = 16;
/// Header in front of every shard payload: RTP (16) + NV video header (16).
pub const SHARD_HEADER_LEN: usize = 32;
/// Sunshine's short frame header at the start of block 0, shard 0 (§7.6).
pub const FRAME_HEADER_LEN: usize = 8;
/// `nonce ‖ frameIndex ‖ tag` in front of an encrypted shard (§7.8).
pub const ENCRYPTION_PREFIX_LEN: usize = GCM_NONCE_LEN + 4 + GCM_TAG_LEN;
/// The 2-bit block fields allow four FEC blocks per frame (§7.4).
pub const MAX_FEC_BLOCKS: usize = 4;
/// Sunshine's default `fec_percentage`.
pub const DEFAULT_FEC_PERCENT: u32 = 20;
/// The `x-nv-vqos[0].fec.minRequiredFecPackets` Moonlight announces.
pub const DEFAULT_MIN_REQUIRED_FEC_PACKETS: usize = 2;
/// Smallest `packetSize`: a shard must carry at least 16 payload bytes so
/// the 8-byte frame header fits into the first one.
pub const MIN_PACKET_SIZE: usize = 32;
/// Largest `packetSize`: an encrypted datagram (`P + 48` bytes) must fit the
/// 65 507-byte UDP/IPv4 payload, rounded down to a multiple of 16.
pub const MAX_PACKET_SIZE: usize = 65_456;
/// Data shards a block may have when FEC is off for the frame: the 10-bit
/// shard index in `fecInfo`.
pub const MAX_UNPROTECTED_BLOCK_SHARDS: usize = 1023;
/// `fecInfo` carries the percentage in 8 bits.
const MAX_ADVERTISED_FEC_PERCENT: u32 = 255;
/// Frames the depacketizer assembles at once; older incomplete ones are
/// dropped when a newer frame would exceed this (≈ 130 ms at 60 fps).
const MAX_FRAMES_IN_FLIGHT: usize = 8;

/// Byte offsets inside a shard (§7.2).
pub mod offset {
    /// `0x90`: RTP version 2 with the extension bit.
    pub const RTP_FLAGS: usize = 0;
    /// RTP payload type (0).
    pub const RTP_PAYLOAD_TYPE: usize = 1;
    /// `BE16` RTP sequence number.
    pub const RTP_SEQUENCE: usize = 2;
    /// `BE32` 90 kHz timestamp.
    pub const RTP_TIMESTAMP: usize = 4;
    /// `BE32` SSRC (0).
    pub const RTP_SSRC: usize = 8;
    /// `LE32 (packetIndex << 8)`.
    pub const STREAM_PACKET_INDEX: usize = 16;
    /// `LE32` frame number, first frame 1.
    pub const FRAME_INDEX: usize = 20;
    /// PIC/EOF/SOF bits.
    pub const FLAGS: usize = 24;
    /// `0x01` = LTR frame (always 0 here).
    pub const EXTRA_FLAGS: usize = 25;
    /// Always `0x10`.
    pub const MULTI_FEC_FLAGS: usize = 26;
    /// Bits 4–5 block index, bits 6–7 last block index.
    pub const MULTI_FEC_BLOCKS: usize = 27;
    /// `LE32`: data shards, shard index, FEC percentage.
    pub const FEC_INFO: usize = 28;
    /// First payload byte.
    pub const PAYLOAD: usize = 32;
}

/// Bits of the NV header `flags` byte.
pub mod flags {
    /// Set on every data shard.
    pub const PIC_DATA: u8 = 0x01;
    /// Last data shard of an FEC block.
    pub const EOF: u8 = 0x02;
    /// First data shard of an FEC block.
    pub const SOF: u8 = 0x04;
}

/// RTP byte 0: version 2 (`0x80`) with the extension bit (`0x10`).
const RTP_FLAGS_VALUE: u8 = 0x90;
/// Mask of the RTP version bits in byte 0.
const RTP_VERSION_MASK: u8 = 0xC0;
/// RTP version 2 in byte 0.
const RTP_VERSION_2: u8 = 0x80;
/// RTP extension bit; Moonlight needs it to find the NV header.
const RTP_EXTENSION_BIT: u8 = 0x10;
/// Constant `multiFecFlags` value.
const MULTI_FEC_FLAGS_VALUE: u8 = 0x10;
/// `video_short_frame_header_t` type byte.
const SHORT_FRAME_HEADER_TYPE: u8 = 0x01;
/// Last byte of Sunshine's video GCM nonce.
const VIDEO_NONCE_TAG: u8 = b'V';
/// `streamPacketIndex` keeps 24 bits (bits 8–31 of the field).
const STREAM_PACKET_INDEX_MASK: u32 = 0x00FF_FFFF;

/// Frame type byte of the frame header (§7.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum GsFrameType {
    /// Ordinary predicted frame.
    Predicted = 1,
    /// Key frame (must start with parameter sets, §7.7).
    Idr = 2,
    /// Predicted frame with intra refresh.
    IntraRefresh = 4,
    /// First frame after a reference-picture invalidation.
    AfterReferenceInvalidation = 5,
}

impl GsFrameType {
    /// The type for a wire byte, if known.
    pub fn from_wire(value: u8) -> Option<Self> {
        match value {
            1 => Some(Self::Predicted),
            2 => Some(Self::Idr),
            4 => Some(Self::IntraRefresh),
            5 => Some(Self::AfterReferenceInvalidation),
            _ => None,
        }
    }
}

/// One FEC block of a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct GsFecBlock {
    /// D: data shards.
    pub data_shards: usize,
    /// Pp: parity shards.
    pub parity_shards: usize,
    /// The percentage written into `fecInfo`; `(D·F + 99) / 100 == Pp`.
    pub advertised_percent: u32,
}

/// How a frame's data shards are split into FEC blocks (§7.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GsFramePlan {
    /// Blocks in use (1–4); entries beyond are zero.
    pub block_count: usize,
    /// The blocks, in wire order.
    pub blocks: [GsFecBlock; MAX_FEC_BLOCKS],
}

impl GsFramePlan {
    /// The blocks in use.
    pub fn blocks(&self) -> &[GsFecBlock] {
        &self.blocks[..self.block_count]
    }

    /// Data plus parity shards of the whole frame.
    pub fn total_shards(&self) -> usize {
        self.blocks()
            .iter()
            .map(|b| b.data_shards + b.parity_shards)
            .sum()
    }
}

/// Largest D for percentage F such that `D + ceil(D·F/100) ≤ 255`.
fn max_data_shards_per_block(fec_percent: u32) -> usize {
    MAX_TOTAL_SHARDS * 100 / (100 + fec_percent as usize)
}

/// Parity count and advertised percentage for a block of `data_shards` (§7.4).
///
/// `Pp = ceil(D·F/100)`, raised to `min_required` if F ≠ 0; a raised count
/// is advertised as `floor(100·Pp/D)`, which the client turns back into Pp.
/// If that is not possible (the percentage would not fit 8 bits, or would
/// not reproduce Pp), the next larger reproducible Pp is used, and failing
/// that the unraised count.
fn block_parity(data_shards: usize, fec_percent: u32, min_required: usize) -> (usize, u32) {
    if fec_percent == 0 {
        return (0, 0);
    }
    let by_percent = (data_shards * fec_percent as usize).div_ceil(100);
    if by_percent >= min_required {
        return (by_percent, fec_percent);
    }
    let reproducible = |parity: usize| {
        let advertised = 100 * parity / data_shards;
        (advertised <= MAX_ADVERTISED_FEC_PERCENT as usize
            && (data_shards * advertised).div_ceil(100) == parity)
            .then_some((parity, advertised as u32))
    };
    (min_required..=MAX_TOTAL_SHARDS.saturating_sub(data_shards))
        .find_map(reproducible)
        .unwrap_or((by_percent, fec_percent))
}

/// Splits `total_data_shards` into FEC blocks as Sunshine does (§7.4).
///
/// Sunshine sizes blocks in bytes (`ceil(totalBytes / blocks)` rounded up to
/// whole shards); because only the final shard is short, that equals the
/// shard arithmetic used here. When more than four blocks would be needed,
/// FEC is off for the frame and four blocks of up to 1023 shards are used.
pub fn plan_fec_blocks(
    total_data_shards: usize,
    fec_percent: u32,
    min_required_fec_packets: usize,
) -> Result<GsFramePlan, GsVideoError> {
    let total = total_data_shards.max(1);
    let mut percent = fec_percent;
    let mut block_count = total.div_ceil(max_data_shards_per_block(percent));
    if block_count > MAX_FEC_BLOCKS {
        percent = 0;
        block_count = MAX_FEC_BLOCKS;
    }
    let per_block = total.div_ceil(block_count);
    if per_block > MAX_UNPROTECTED_BLOCK_SHARDS {
        return Err(GsVideoError::FrameTooLarge {
            data_shards: total,
            max: MAX_FEC_BLOCKS * MAX_UNPROTECTED_BLOCK_SHARDS,
        });
    }
    let mut blocks = [GsFecBlock::default(); MAX_FEC_BLOCKS];
    for (index, block) in blocks.iter_mut().take(block_count).enumerate() {
        // The last block takes the remainder. It is never empty: with at most
        // four blocks and ≥ 71 data shards a block (F ≤ 255), or ≥ 285 shards
        // when forced to four, (blocks − 1) · ceil(total / blocks) < total.
        let data_shards = if index + 1 == block_count {
            total - per_block * (block_count - 1)
        } else {
            per_block
        };
        let (parity_shards, advertised_percent) =
            block_parity(data_shards, percent, min_required_fec_packets);
        *block = GsFecBlock {
            data_shards,
            parity_shards,
            advertised_percent,
        };
    }
    Ok(GsFramePlan {
        block_count,
        blocks,
    })
}

/// Why the packetizer refused a configuration or a frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GsVideoError {
    /// The configuration is unusable.
    InvalidConfig(String),
    /// The frame needs more shards than four unprotected blocks hold.
    FrameTooLarge {
        /// Data shards the frame needs.
        data_shards: usize,
        /// The limit.
        max: usize,
    },
    /// The erasure code failed.
    Fec(FecError),
    /// Sealing failed.
    Crypto(CryptoError),
}

impl fmt::Display for GsVideoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GsVideoError::InvalidConfig(msg) => write!(f, "invalid GameStream video config: {msg}"),
            GsVideoError::FrameTooLarge { data_shards, max } => {
                write!(f, "frame needs {data_shards} shards, at most {max} fit")
            }
            GsVideoError::Fec(e) => write!(f, "FEC: {e}"),
            GsVideoError::Crypto(e) => write!(f, "crypto: {e}"),
        }
    }
}

impl std::error::Error for GsVideoError {}

impl From<FecError> for GsVideoError {
    fn from(e: FecError) -> Self {
        GsVideoError::Fec(e)
    }
}

impl From<CryptoError> for GsVideoError {
    fn from(e: CryptoError) -> Self {
        GsVideoError::Crypto(e)
    }
}

/// One access unit to send.
#[derive(Debug, Clone, Copy)]
pub struct GsVideoFrameInput<'a> {
    /// Frame number: 1 for the first frame, +1 per frame.
    pub frame_index: u32,
    /// 90 kHz capture time since stream start.
    pub rtp_timestamp: u32,
    /// Frame type byte of the frame header.
    pub frame_type: GsFrameType,
    /// Host processing latency in units of 0.1 ms (0 = unknown).
    pub host_latency_100us: u16,
    /// Annex-B H.264/HEVC or AV1 OBUs.
    pub access_unit: &'a [u8],
}

/// Checks `packet_size` and returns it.
fn check_packet_size(packet_size: usize) -> Result<usize, GsVideoError> {
    if !(MIN_PACKET_SIZE..=MAX_PACKET_SIZE).contains(&packet_size)
        || !packet_size.is_multiple_of(16)
    {
        return Err(GsVideoError::InvalidConfig(format!(
            "packet size {packet_size} must be a multiple of 16 in {MIN_PACKET_SIZE}..={MAX_PACKET_SIZE}"
        )));
    }
    Ok(packet_size)
}

/// Host side: access units → GameStream video datagrams. Owns a reusable
/// arena, so steady-state packetizing allocates only two small pointer
/// vectors per FEC block.
pub struct GsVideoPacketizer {
    packet_size: usize,
    fec_percent: u32,
    min_required_fec_packets: usize,
    sealer: Option<GcmContext>,
    next_sequence: u16,
    next_stream_packet_index: u32,
    next_nonce_counter: u64,
    codes: HashMap<(usize, usize), Gf8Code>,
    arena: Vec<u8>,
}

impl fmt::Debug for GsVideoPacketizer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GsVideoPacketizer")
            .field("packet_size", &self.packet_size)
            .field("fec_percent", &self.fec_percent)
            .field("min_required_fec_packets", &self.min_required_fec_packets)
            .field("encrypted", &self.sealer.is_some())
            .field("next_sequence", &self.next_sequence)
            .finish_non_exhaustive()
    }
}

impl GsVideoPacketizer {
    /// `packet_size` is the ANNOUNCE `x-nv-video[0].packetSize` (already
    /// reduced by 32 if the client enabled encryption), `fec_percent` the
    /// host's FEC percentage (0–255, 0 = no FEC), `min_required_fec_packets`
    /// the ANNOUNCE `fec.minRequiredFecPackets`, `encryption_key` the
    /// session's `rikey` if video encryption is on.
    pub fn new(
        packet_size: usize,
        fec_percent: u32,
        min_required_fec_packets: usize,
        encryption_key: Option<&[u8; KEY_LEN]>,
    ) -> Result<Self, GsVideoError> {
        let packet_size = check_packet_size(packet_size)?;
        if fec_percent > MAX_ADVERTISED_FEC_PERCENT {
            return Err(GsVideoError::InvalidConfig(format!(
                "FEC percentage {fec_percent} exceeds {MAX_ADVERTISED_FEC_PERCENT}"
            )));
        }
        let sealer = encryption_key
            .map(|key| GcmContext::new(key, GcmMode::Seal))
            .transpose()?;
        Ok(GsVideoPacketizer {
            packet_size,
            fec_percent,
            min_required_fec_packets,
            sealer,
            next_sequence: 0,
            next_stream_packet_index: 0,
            next_nonce_counter: 0,
            codes: HashMap::new(),
            arena: Vec::new(),
        })
    }

    /// Bytes of frame stream per shard: `P − 16`.
    pub fn shard_payload_len(&self) -> usize {
        self.packet_size - 16
    }

    /// Bytes of one shard: `P + 16`.
    pub fn shard_len(&self) -> usize {
        self.packet_size + 16
    }

    /// The RTP sequence number of the next datagram.
    pub fn next_sequence(&self) -> u16 {
        self.next_sequence
    }

    /// Packetizes one frame; the batch borrows the arena until the next call.
    pub fn packetize(
        &mut self,
        frame: &GsVideoFrameInput<'_>,
    ) -> Result<GsVideoBatch<'_>, GsVideoError> {
        let payload_len = self.shard_payload_len();
        let shard_len = self.shard_len();
        let stream_len = FRAME_HEADER_LEN + frame.access_unit.len();
        let data_shard_count = stream_len.div_ceil(payload_len);
        let plan = plan_fec_blocks(
            data_shard_count,
            self.fec_percent,
            self.min_required_fec_packets,
        )?;
        let frame_header = short_frame_header(frame, stream_len, payload_len);

        let prefix_len = if self.sealer.is_some() {
            ENCRYPTION_PREFIX_LEN
        } else {
            0
        };
        let stride = prefix_len + shard_len;
        let total_shards = plan.total_shards();
        // Only growth is zero-filled; every shard byte is rewritten below
        // (headers and payload explicitly, parity by the encoder).
        self.arena.resize(total_shards * stride, 0);
        let arena = &mut self.arena[..total_shards * stride];
        let last_block_index = (plan.block_count - 1) as u8;

        let mut position = 0; // shard position within the frame, wire order
        let mut data_shard_index = 0; // global data shard (stream chunk) index
        for (block_index, block) in plan.blocks().iter().enumerate() {
            let block_shards = block.data_shards + block.parity_shards;
            let region = &mut arena[position * stride..(position + block_shards) * stride];
            let multi_fec_blocks = ((block_index as u8) << 4) | (last_block_index << 6);

            for (i, slot) in region
                .chunks_exact_mut(stride)
                .take(block.data_shards)
                .enumerate()
            {
                let shard = &mut slot[prefix_len..];
                shard[..SHARD_HEADER_LEN].fill(0);
                let stream_packet_index = self
                    .next_stream_packet_index
                    .wrapping_add((position + i) as u32)
                    & STREAM_PACKET_INDEX_MASK;
                put_le32(shard, offset::STREAM_PACKET_INDEX, stream_packet_index << 8);
                put_le32(shard, offset::FRAME_INDEX, frame.frame_index);
                shard[offset::FLAGS] = flags::PIC_DATA
                    | if i == 0 { flags::SOF } else { 0 }
                    | if i + 1 == block.data_shards {
                        flags::EOF
                    } else {
                        0
                    };
                shard[offset::MULTI_FEC_FLAGS] = MULTI_FEC_FLAGS_VALUE;
                shard[offset::MULTI_FEC_BLOCKS] = multi_fec_blocks;
                let start = data_shard_index * payload_len;
                let end = (start + payload_len).min(stream_len);
                let payload = &mut shard[offset::PAYLOAD..];
                copy_stream_range(&frame_header, frame.access_unit, start, end, payload);
                payload[end - start..].fill(0);
                data_shard_index += 1;
            }

            if block.parity_shards > 0 {
                let (data_region, parity_region) = region.split_at_mut(block.data_shards * stride);
                let data_refs: Vec<&[u8]> = data_region
                    .chunks_exact(stride)
                    .map(|slot| &slot[prefix_len..])
                    .collect();
                let mut parity_refs: Vec<&mut [u8]> = parity_region
                    .chunks_exact_mut(stride)
                    .map(|slot| &mut slot[prefix_len..])
                    .collect();
                let code = match self.codes.entry((block.data_shards, block.parity_shards)) {
                    std::collections::hash_map::Entry::Occupied(entry) => entry.into_mut(),
                    std::collections::hash_map::Entry::Vacant(entry) => {
                        entry.insert(Gf8Code::new(block.data_shards, block.parity_shards)?)
                    }
                };
                code.encode(&data_refs, &mut parity_refs)?;
            }

            for (i, slot) in region.chunks_exact_mut(stride).enumerate() {
                let shard = &mut slot[prefix_len..];
                let sequence = self.next_sequence.wrapping_add((position + i) as u16);
                shard[offset::RTP_FLAGS] = RTP_FLAGS_VALUE;
                shard[offset::RTP_PAYLOAD_TYPE] = 0;
                shard[offset::RTP_SEQUENCE..offset::RTP_SEQUENCE + 2]
                    .copy_from_slice(&sequence.to_be_bytes());
                shard[offset::RTP_TIMESTAMP..offset::RTP_TIMESTAMP + 4]
                    .copy_from_slice(&frame.rtp_timestamp.to_be_bytes());
                shard[offset::RTP_SSRC..RTP_HEADER_LEN].fill(0);
                let fec_info = ((block.data_shards as u32) << 22)
                    | ((i as u32) << 12)
                    | (block.advertised_percent << 4);
                put_le32(shard, offset::FEC_INFO, fec_info);
                if i >= block.data_shards {
                    put_le32(shard, offset::FRAME_INDEX, frame.frame_index);
                    shard[offset::MULTI_FEC_BLOCKS] = multi_fec_blocks;
                }
            }
            position += block_shards;
        }

        if let Some(sealer) = self.sealer.as_mut() {
            for slot in arena.chunks_exact_mut(stride) {
                let nonce = video_nonce(self.next_nonce_counter);
                self.next_nonce_counter += 1;
                let (prefix, shard) = slot.split_at_mut(ENCRYPTION_PREFIX_LEN);
                let mut tag = [0u8; GCM_TAG_LEN];
                sealer.seal(&nonce, &[], shard, &mut tag)?;
                prefix[..GCM_NONCE_LEN].copy_from_slice(&nonce);
                put_le32(prefix, GCM_NONCE_LEN, frame.frame_index);
                prefix[GCM_NONCE_LEN + 4..].copy_from_slice(&tag);
            }
        }

        self.next_sequence = self.next_sequence.wrapping_add(total_shards as u16);
        self.next_stream_packet_index = self
            .next_stream_packet_index
            .wrapping_add(total_shards as u32)
            & STREAM_PACKET_INDEX_MASK;
        Ok(GsVideoBatch {
            arena,
            stride,
            count: total_shards,
            plan,
        })
    }
}

/// Sunshine's video GCM nonce: `LE64(counter) ‖ 00 00 00 ‖ 'V'`.
fn video_nonce(counter: u64) -> [u8; GCM_NONCE_LEN] {
    let mut nonce = [0u8; GCM_NONCE_LEN];
    nonce[..8].copy_from_slice(&counter.to_le_bytes());
    nonce[GCM_NONCE_LEN - 1] = VIDEO_NONCE_TAG;
    nonce
}

/// The 8-byte short frame header (§7.6).
fn short_frame_header(
    frame: &GsVideoFrameInput<'_>,
    stream_len: usize,
    payload_len: usize,
) -> [u8; FRAME_HEADER_LEN] {
    let last_payload_len = match stream_len % payload_len {
        0 => payload_len,
        rest => rest,
    };
    let mut header = [0u8; FRAME_HEADER_LEN];
    header[0] = SHORT_FRAME_HEADER_TYPE;
    header[1..3].copy_from_slice(&frame.host_latency_100us.to_le_bytes());
    header[3] = frame.frame_type as u8;
    // payload_len ≤ MAX_PACKET_SIZE − 16 < 65 536, so this fits.
    header[4..6].copy_from_slice(&(last_payload_len as u16).to_le_bytes());
    header
}

/// Copies bytes `start..end` of the stream `header ‖ body` to `out`.
fn copy_stream_range(header: &[u8], body: &[u8], start: usize, end: usize, out: &mut [u8]) {
    let mut written = 0;
    if start < header.len() {
        let header_end = end.min(header.len());
        out[..header_end - start].copy_from_slice(&header[start..header_end]);
        written = header_end - start;
    }
    let body_start = start.max(header.len()) - header.len();
    let body_end = end.max(header.len()) - header.len();
    out[written..written + body_end - body_start].copy_from_slice(&body[body_start..body_end]);
}

fn put_le32(buf: &mut [u8], at: usize, value: u32) {
    buf[at..at + 4].copy_from_slice(&value.to_le_bytes());
}

fn le32(buf: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([buf[at], buf[at + 1], buf[at + 2], buf[at + 3]])
}

fn le16(buf: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([buf[at], buf[at + 1]])
}

/// The datagrams of one frame, in wire order.
#[derive(Debug)]
pub struct GsVideoBatch<'a> {
    arena: &'a [u8],
    stride: usize,
    count: usize,
    plan: GsFramePlan,
}

impl<'a> GsVideoBatch<'a> {
    /// Datagrams in the batch.
    pub fn len(&self) -> usize {
        self.count
    }

    /// Never true (a frame always yields a shard); for clippy.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The frame's FEC block plan.
    pub fn plan(&self) -> &GsFramePlan {
        &self.plan
    }

    /// Bytes of every datagram of the batch (they are all the same length).
    pub fn datagram_len(&self) -> usize {
        self.stride
    }

    /// Datagrams `start..start + count` as one contiguous span (for a GSO send).
    pub fn datagram_span(&self, start: usize, count: usize) -> &'a [u8] {
        &self.arena[start * self.stride..(start + count) * self.stride]
    }

    /// Datagram `i`, ready to send.
    pub fn datagram(&self, i: usize) -> &'a [u8] {
        &self.arena[i * self.stride..(i + 1) * self.stride]
    }

    /// All datagrams in wire order.
    pub fn datagrams(&self) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.arena.chunks_exact(self.stride)
    }
}

/// Why the depacketizer refused a datagram (also counted in the stats).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GsVideoDrop {
    /// Not a well-formed shard, or inconsistent with its frame/block.
    Malformed(&'static str),
    /// The GCM tag did not verify.
    AuthenticationFailed,
    /// The frame was already delivered or dropped.
    Stale,
    /// The shard was already received.
    Duplicate,
}

/// Counters of the depacketizer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GsVideoDepacketizerStats {
    /// Datagrams pushed.
    pub datagrams: u64,
    /// Frames delivered.
    pub frames_completed: u64,
    /// Incomplete frames given up (evicted, or overtaken by a newer complete frame).
    pub frames_dropped: u64,
    /// Data shards rebuilt from parity.
    pub shards_recovered: u64,
    /// Data shards that were neither received nor rebuilt (of dropped frames
    /// only those counted so far are known).
    pub data_shards_lost: u64,
    /// Malformed datagrams or frames.
    pub malformed: u64,
    /// Datagrams failing GCM authentication.
    pub authentication_failures: u64,
    /// Datagrams for frames already finished.
    pub stale: u64,
    /// Repeated shards.
    pub duplicates: u64,
}

/// A frame delivered by the depacketizer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GsReceivedVideoFrame {
    /// `frameIndex`.
    pub frame_index: u32,
    /// 90 kHz RTP timestamp.
    pub rtp_timestamp: u32,
    /// Frame type byte of the frame header (not validated).
    pub frame_type: u8,
    /// Host latency in 0.1 ms.
    pub host_latency_100us: u16,
    /// The access unit (frame header stripped, padding removed).
    pub access_unit: Vec<u8>,
    /// Data shards rebuilt from parity for this frame.
    pub recovered_shards: usize,
}

struct BlockAssembly {
    data_shards: usize,
    parity_shards: usize,
    advertised_percent: u32,
    /// Full-length shards with RTP header and `fecInfo` zeroed.
    shards: Vec<Option<Vec<u8>>>,
    received: usize,
}

struct FrameAssembly {
    rtp_timestamp: u32,
    block_count: usize,
    blocks: [Option<BlockAssembly>; MAX_FEC_BLOCKS],
}

impl FrameAssembly {
    fn is_complete(&self) -> bool {
        self.blocks[..self.block_count].iter().all(|block| {
            block
                .as_ref()
                .is_some_and(|block| block.received >= block.data_shards)
        })
    }

    fn missing_data_shards(&self) -> usize {
        self.blocks[..self.block_count]
            .iter()
            .flatten()
            .map(|block| {
                block.shards[..block.data_shards]
                    .iter()
                    .filter(|shard| shard.is_none())
                    .count()
            })
            .sum()
    }
}

/// Test-client side: datagrams (any order, with loss) → access units.
pub struct GsVideoDepacketizer {
    packet_size: usize,
    opener: Option<GcmContext>,
    frames: BTreeMap<u32, FrameAssembly>,
    /// Frames at or below this index are finished (delivered or dropped).
    finished_through: Option<u32>,
    codes: HashMap<(usize, usize), Gf8Code>,
    scratch: Vec<u8>,
    stats: GsVideoDepacketizerStats,
}

impl fmt::Debug for GsVideoDepacketizer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GsVideoDepacketizer")
            .field("packet_size", &self.packet_size)
            .field("encrypted", &self.opener.is_some())
            .field("frames_in_flight", &self.frames.len())
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

/// Fields of a parsed shard header.
struct ShardInfo {
    rtp_timestamp: u32,
    frame_index: u32,
    block_index: usize,
    block_count: usize,
    data_shards: usize,
    parity_shards: usize,
    shard_index: usize,
    advertised_percent: u32,
}

fn parse_shard(shard: &[u8], shard_len: usize) -> Result<ShardInfo, GsVideoDrop> {
    if shard.len() < SHARD_HEADER_LEN || shard.len() > shard_len {
        return Err(GsVideoDrop::Malformed("shard length"));
    }
    let byte0 = shard[offset::RTP_FLAGS];
    if byte0 & RTP_VERSION_MASK != RTP_VERSION_2 || byte0 & RTP_EXTENSION_BIT == 0 {
        return Err(GsVideoDrop::Malformed("RTP version or extension bit"));
    }
    let multi_fec_blocks = shard[offset::MULTI_FEC_BLOCKS];
    let block_index = usize::from((multi_fec_blocks >> 4) & 0x3);
    let last_block_index = usize::from(multi_fec_blocks >> 6);
    if block_index > last_block_index {
        return Err(GsVideoDrop::Malformed("block index beyond last block"));
    }
    let fec_info = le32(shard, offset::FEC_INFO);
    let data_shards = (fec_info >> 22) as usize;
    let shard_index = ((fec_info >> 12) & 0x3FF) as usize;
    let advertised_percent = (fec_info >> 4) & 0xFF;
    let parity_shards = (data_shards * advertised_percent as usize).div_ceil(100);
    if data_shards == 0 {
        return Err(GsVideoDrop::Malformed("zero data shards"));
    }
    if parity_shards > 0 && data_shards + parity_shards > MAX_TOTAL_SHARDS {
        return Err(GsVideoDrop::Malformed("FEC block exceeds 255 shards"));
    }
    if shard_index >= data_shards + parity_shards {
        return Err(GsVideoDrop::Malformed("shard index beyond block"));
    }
    Ok(ShardInfo {
        rtp_timestamp: u32::from_be_bytes([shard[4], shard[5], shard[6], shard[7]]),
        frame_index: le32(shard, offset::FRAME_INDEX),
        block_index,
        block_count: last_block_index + 1,
        data_shards,
        parity_shards,
        shard_index,
        advertised_percent,
    })
}

impl GsVideoDepacketizer {
    /// `packet_size` as announced; `decryption_key` the `rikey` if video
    /// encryption is on.
    pub fn new(
        packet_size: usize,
        decryption_key: Option<&[u8; KEY_LEN]>,
    ) -> Result<Self, GsVideoError> {
        let packet_size = check_packet_size(packet_size)?;
        let opener = decryption_key
            .map(|key| GcmContext::new(key, GcmMode::Open))
            .transpose()?;
        Ok(GsVideoDepacketizer {
            packet_size,
            opener,
            frames: BTreeMap::new(),
            finished_through: None,
            codes: HashMap::new(),
            scratch: Vec::new(),
            stats: GsVideoDepacketizerStats::default(),
        })
    }

    /// The counters so far.
    pub fn stats(&self) -> &GsVideoDepacketizerStats {
        &self.stats
    }

    /// Takes one datagram; returns a frame when this datagram completed one.
    pub fn push(&mut self, datagram: &[u8]) -> Result<Option<GsReceivedVideoFrame>, GsVideoDrop> {
        self.stats.datagrams += 1;
        let mut scratch = std::mem::take(&mut self.scratch);
        let result = self.open(datagram, &mut scratch).and_then(|shard| {
            let shard: &[u8] = shard.unwrap_or(datagram);
            self.accept(shard)
        });
        self.scratch = scratch;
        match result {
            Err(GsVideoDrop::Malformed(_)) => self.stats.malformed += 1,
            Err(GsVideoDrop::AuthenticationFailed) => self.stats.authentication_failures += 1,
            Err(GsVideoDrop::Stale) => self.stats.stale += 1,
            Err(GsVideoDrop::Duplicate) => self.stats.duplicates += 1,
            Ok(_) => {}
        }
        result
    }

    /// Decrypts into `scratch` if encryption is on (`Some(plaintext)`).
    fn open<'s>(
        &mut self,
        datagram: &[u8],
        scratch: &'s mut Vec<u8>,
    ) -> Result<Option<&'s [u8]>, GsVideoDrop> {
        let Some(opener) = self.opener.as_mut() else {
            return Ok(None);
        };
        let shard_len = self.packet_size + 16;
        if datagram.len() < ENCRYPTION_PREFIX_LEN + SHARD_HEADER_LEN
            || datagram.len() > ENCRYPTION_PREFIX_LEN + shard_len
        {
            return Err(GsVideoDrop::Malformed("encrypted datagram length"));
        }
        let nonce: [u8; GCM_NONCE_LEN] = datagram[..GCM_NONCE_LEN]
            .try_into()
            .expect("length checked");
        let tag: [u8; GCM_TAG_LEN] = datagram[GCM_NONCE_LEN + 4..ENCRYPTION_PREFIX_LEN]
            .try_into()
            .expect("length checked");
        scratch.clear();
        scratch.extend_from_slice(&datagram[ENCRYPTION_PREFIX_LEN..]);
        opener
            .open(&nonce, &[], scratch, &tag)
            .map_err(|_| GsVideoDrop::AuthenticationFailed)?;
        Ok(Some(scratch.as_slice()))
    }

    fn accept(&mut self, shard: &[u8]) -> Result<Option<GsReceivedVideoFrame>, GsVideoDrop> {
        let shard_len = self.packet_size + 16;
        let info = parse_shard(shard, shard_len)?;
        if self
            .finished_through
            .is_some_and(|finished| info.frame_index <= finished)
        {
            return Err(GsVideoDrop::Stale);
        }
        let frame = self
            .frames
            .entry(info.frame_index)
            .or_insert_with(|| FrameAssembly {
                rtp_timestamp: info.rtp_timestamp,
                block_count: info.block_count,
                blocks: Default::default(),
            });
        if frame.block_count != info.block_count {
            return Err(GsVideoDrop::Malformed("block count differs within frame"));
        }
        let block = frame.blocks[info.block_index].get_or_insert_with(|| BlockAssembly {
            data_shards: info.data_shards,
            parity_shards: info.parity_shards,
            advertised_percent: info.advertised_percent,
            shards: vec![None; info.data_shards + info.parity_shards],
            received: 0,
        });
        if block.data_shards != info.data_shards
            || block.advertised_percent != info.advertised_percent
        {
            return Err(GsVideoDrop::Malformed("FEC info differs within block"));
        }
        let slot = &mut block.shards[info.shard_index];
        if slot.is_some() {
            return Err(GsVideoDrop::Duplicate);
        }
        // Short final packets are zero-padded to the full shard, and the
        // fields written after FEC are zeroed, so parity lines up (§7.5).
        let mut stored = vec![0u8; shard_len];
        stored[..shard.len()].copy_from_slice(shard);
        stored[..RTP_HEADER_LEN].fill(0);
        stored[offset::FEC_INFO..SHARD_HEADER_LEN].fill(0);
        *slot = Some(stored);
        block.received += 1;

        if frame.is_complete() {
            let frame = self
                .frames
                .remove(&info.frame_index)
                .expect("frame was just updated");
            self.finish_through(info.frame_index);
            return self.assemble(info.frame_index, frame).map(Some);
        }
        if self.frames.len() > MAX_FRAMES_IN_FLIGHT {
            let (&oldest, _) = self.frames.first_key_value().expect("map is not empty");
            self.finish_through(oldest);
        }
        Ok(None)
    }

    /// Marks frames up to `frame_index` finished, dropping incomplete ones.
    fn finish_through(&mut self, frame_index: u32) {
        let newer = self.frames.split_off(&frame_index.saturating_add(1));
        for (_, dropped) in std::mem::replace(&mut self.frames, newer) {
            self.stats.frames_dropped += 1;
            self.stats.data_shards_lost += dropped.missing_data_shards() as u64;
        }
        self.finished_through = Some(frame_index);
    }

    fn assemble(
        &mut self,
        frame_index: u32,
        mut frame: FrameAssembly,
    ) -> Result<GsReceivedVideoFrame, GsVideoDrop> {
        let shard_len = self.packet_size + 16;
        let payload_len = self.packet_size - 16;
        let mut recovered_shards = 0;
        for block in frame.blocks[..frame.block_count].iter_mut().flatten() {
            let present: Vec<bool> = block.shards.iter().map(Option::is_some).collect();
            let missing = present[..block.data_shards]
                .iter()
                .filter(|&&is_present| !is_present)
                .count();
            if missing == 0 {
                continue;
            }
            let code = match self.codes.entry((block.data_shards, block.parity_shards)) {
                std::collections::hash_map::Entry::Occupied(entry) => entry.into_mut(),
                std::collections::hash_map::Entry::Vacant(entry) => entry.insert(
                    Gf8Code::new(block.data_shards, block.parity_shards)
                        .map_err(|_| GsVideoDrop::Malformed("FEC shape"))?,
                ),
            };
            let mut refs: Vec<&mut [u8]> = block
                .shards
                .iter_mut()
                .map(|shard| {
                    shard
                        .get_or_insert_with(|| vec![0u8; shard_len])
                        .as_mut_slice()
                })
                .collect();
            code.reconstruct(&mut refs, &present)
                .map_err(|_| GsVideoDrop::Malformed("FEC reconstruction failed"))?;
            recovered_shards += missing;
        }

        let data_shards: Vec<&[u8]> = frame.blocks[..frame.block_count]
            .iter()
            .flatten()
            .flat_map(|block| block.shards[..block.data_shards].iter().flatten())
            .map(Vec::as_slice)
            .collect();
        for block in frame.blocks[..frame.block_count].iter().flatten() {
            for (i, shard) in block.shards[..block.data_shards]
                .iter()
                .flatten()
                .enumerate()
            {
                let expected = flags::PIC_DATA
                    | if i == 0 { flags::SOF } else { 0 }
                    | if i + 1 == block.data_shards {
                        flags::EOF
                    } else {
                        0
                    };
                if shard[offset::FLAGS] != expected {
                    return Err(GsVideoDrop::Malformed("data shard flags"));
                }
            }
        }
        let first = &data_shards[0][offset::PAYLOAD..];
        let last_payload_len = usize::from(le16(first, 4));
        if first[0] != SHORT_FRAME_HEADER_TYPE
            || last_payload_len == 0
            || last_payload_len > payload_len
        {
            return Err(GsVideoDrop::Malformed("frame header"));
        }
        let stream_len = (data_shards.len() - 1) * payload_len + last_payload_len;
        if stream_len < FRAME_HEADER_LEN {
            return Err(GsVideoDrop::Malformed("frame shorter than its header"));
        }
        let mut access_unit = Vec::with_capacity(stream_len - FRAME_HEADER_LEN);
        for shard in &data_shards {
            access_unit.extend_from_slice(&shard[offset::PAYLOAD..]);
        }
        access_unit.truncate(stream_len);
        access_unit.drain(..FRAME_HEADER_LEN);

        self.stats.frames_completed += 1;
        self.stats.shards_recovered += recovered_shards as u64;
        Ok(GsReceivedVideoFrame {
            frame_index,
            rtp_timestamp: frame.rtp_timestamp,
            frame_type: first[3],
            host_latency_100us: le16(first, 1),
            access_unit,
            recovered_shards,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fec::gf8::encode_scalar_reference;
    use proptest::prelude::*;

    /// splitmix64: deterministic test randomness without a crate.
    struct TestRng(u64);

    impl TestRng {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        }

        fn below(&mut self, bound: usize) -> usize {
            (self.next() % bound as u64) as usize
        }

        fn shuffle<T>(&mut self, items: &mut [T]) {
            for i in (1..items.len()).rev() {
                items.swap(i, self.below(i + 1));
            }
        }
    }

    const KEY: [u8; KEY_LEN] = *b"0123456789abcdef";

    fn input(frame_index: u32, access_unit: &[u8]) -> GsVideoFrameInput<'_> {
        GsVideoFrameInput {
            frame_index,
            rtp_timestamp: frame_index.wrapping_mul(1500),
            frame_type: GsFrameType::Idr,
            host_latency_100us: 42,
            access_unit,
        }
    }

    /// Sends `frames` random frames with random loss (≤ parity per block) in
    /// shuffled order and checks byte-exact delivery.
    fn lossy_round_trip(key: Option<&[u8; KEY_LEN]>, seed: u64, frames: u32, max_len: usize) {
        let mut rng = TestRng(seed);
        let mut packetizer = GsVideoPacketizer::new(1024, 20, 2, key).unwrap();
        let mut depacketizer = GsVideoDepacketizer::new(1024, key).unwrap();
        let mut expected_recovered = 0;
        for frame_index in 1..=frames {
            let len = 1 + rng.below(max_len);
            let access_unit: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            let batch = packetizer
                .packetize(&input(frame_index, &access_unit))
                .unwrap();
            let mut kept: Vec<&[u8]> = Vec::new();
            let mut position = 0;
            for block in batch.plan().blocks() {
                let shards = block.data_shards + block.parity_shards;
                let mut indices: Vec<usize> = (0..shards).collect();
                rng.shuffle(&mut indices);
                let lost = rng.below(block.parity_shards + 1);
                expected_recovered += indices[..lost]
                    .iter()
                    .filter(|&&i| i < block.data_shards)
                    .count();
                kept.extend(
                    indices[lost..]
                        .iter()
                        .map(|&i| batch.datagram(position + i)),
                );
                position += shards;
            }
            rng.shuffle(&mut kept);
            let mut delivered = None;
            for datagram in kept {
                match depacketizer.push(datagram) {
                    Ok(Some(frame)) => {
                        assert!(delivered.is_none(), "frame delivered twice");
                        delivered = Some(frame);
                    }
                    Ok(None) => assert!(delivered.is_none(), "shard stored after delivery"),
                    Err(GsVideoDrop::Stale) => assert!(delivered.is_some(), "stale too early"),
                    Err(other) => panic!("frame {frame_index}: {other:?}"),
                }
            }
            let frame = delivered.unwrap_or_else(|| panic!("frame {frame_index} ({len} B) lost"));
            assert_eq!(frame.frame_index, frame_index);
            assert_eq!(frame.rtp_timestamp, frame_index.wrapping_mul(1500));
            assert_eq!(frame.frame_type, GsFrameType::Idr as u8);
            assert_eq!(frame.host_latency_100us, 42);
            assert!(
                frame.access_unit == access_unit,
                "frame {frame_index} differs"
            );
        }
        let stats = depacketizer.stats();
        assert_eq!(stats.frames_completed, u64::from(frames));
        // A block completes with its first D shards, so data shards still in
        // flight are rebuilt too: at least the lost ones are.
        assert!(stats.shards_recovered >= expected_recovered as u64);
        assert!(expected_recovered > 0, "the test lost no data shard");
        assert_eq!(stats.malformed + stats.frames_dropped, 0);
    }

    #[test]
    fn lossy_round_trip_random_frames_up_to_300_kb() {
        lossy_round_trip(None, 1, 60, 300 * 1024);
    }

    #[test]
    fn lossy_round_trip_small_frames() {
        lossy_round_trip(None, 2, 300, 3000);
    }

    #[test]
    fn lossy_round_trip_encrypted() {
        lossy_round_trip(Some(&KEY), 3, 20, 300 * 1024);
    }

    #[test]
    fn small_frame_matches_documented_layout() {
        // P = 64: shards of 80 bytes carrying 48 payload bytes.
        let mut packetizer = GsVideoPacketizer::new(64, 20, 2, None).unwrap();
        let access_unit = [0xA0, 0xA1, 0xA2, 0xA3, 0xA4, 0xA5, 0xA6, 0xA7, 0xA8, 0xA9];
        let frame = GsVideoFrameInput {
            frame_index: 1,
            rtp_timestamp: 0x0102_0304,
            frame_type: GsFrameType::Idr,
            host_latency_100us: 0x0506,
            access_unit: &access_unit,
        };
        let batch = packetizer.packetize(&frame).unwrap();
        // 18 stream bytes → D = 1; ceil(1·20/100) = 1 < 2 ⇒ Pp = 2, F = 200.
        assert_eq!(batch.len(), 3);
        let data = batch.datagram(0);
        assert_eq!(data.len(), 80);
        #[rustfmt::skip]
        let expected_header = [
            0x90, 0x00, 0x00, 0x00,             // RTP flags, PT, BE16 seq 0
            0x01, 0x02, 0x03, 0x04,             // BE32 timestamp
            0x00, 0x00, 0x00, 0x00,             // SSRC
            0x00, 0x00, 0x00, 0x00,             // extension placeholder
            0x00, 0x00, 0x00, 0x00,             // LE32 streamPacketIndex 0 << 8
            0x01, 0x00, 0x00, 0x00,             // LE32 frameIndex 1
            0x07, 0x00, 0x10, 0x00,             // PIC|EOF|SOF, extra, 0x10, block 0 of 1
            0x80, 0x0C, 0x40, 0x00,             // LE32 1<<22 | 0<<12 | 200<<4
        ];
        assert_eq!(data[..32], expected_header);
        #[rustfmt::skip]
        let expected_frame_header = [
            0x01, 0x06, 0x05, 0x02,             // short header, LE16 latency, IDR
            0x12, 0x00, 0x00, 0x00,             // LE16 lastPayloadLen = 18
        ];
        assert_eq!(data[32..40], expected_frame_header);
        assert_eq!(data[40..50], access_unit);
        assert!(data[50..].iter().all(|&b| b == 0));

        // Parity = nanors RS over the data shard with RTP header and fecInfo zero.
        let mut zeroed = data.to_vec();
        zeroed[..16].fill(0);
        zeroed[28..32].fill(0);
        let mut parity = vec![vec![0u8; 80]; 2];
        {
            let mut refs: Vec<&mut [u8]> = parity.iter_mut().map(Vec::as_mut_slice).collect();
            encode_scalar_reference(&[&zeroed], &mut refs);
        }
        for (k, expected) in parity.iter().enumerate() {
            let shard = batch.datagram(1 + k);
            assert_eq!(shard[..4], [0x90, 0x00, 0x00, 1 + k as u8]);
            assert_eq!(shard[4..16], expected_header[4..16]);
            assert_eq!(shard[16..20], expected[16..20], "RS bytes kept");
            assert_eq!(
                shard[20..24],
                [1, 0, 0, 0],
                "frameIndex written over parity"
            );
            assert_eq!(shard[24..27], expected[24..27], "RS bytes kept");
            assert_eq!(shard[27], 0x00, "multiFecBlocks written over parity");
            let fec_info = (1u32 << 22) | ((1 + k as u32) << 12) | (200 << 4);
            assert_eq!(shard[28..32], fec_info.to_le_bytes());
            assert_eq!(shard[32..], expected[32..]);
        }

        // The next frame continues sequence and packet index.
        let batch = packetizer.packetize(&input(2, &access_unit)).unwrap();
        let data = batch.datagram(0);
        assert_eq!(data[2..4], [0x00, 0x03]);
        assert_eq!(data[16..20], [0x00, 0x03, 0x00, 0x00]);
        assert_eq!(data[20..24], [0x02, 0x00, 0x00, 0x00]);
    }

    #[test]
    fn last_payload_len_is_full_when_the_stream_fills_the_last_shard() {
        let mut packetizer = GsVideoPacketizer::new(64, 0, 0, None).unwrap();
        let access_unit = vec![7u8; 2 * 48 - FRAME_HEADER_LEN];
        let batch = packetizer.packetize(&input(1, &access_unit)).unwrap();
        assert_eq!(batch.len(), 2, "F = 0: no parity");
        assert_eq!(batch.datagram(0)[36..38], [48, 0]);
        assert_eq!(batch.datagram(0)[28..32], (2u32 << 22).to_le_bytes());
        assert_eq!(batch.datagram(0)[24], flags::PIC_DATA | flags::SOF);
        assert_eq!(batch.datagram(1)[24], flags::PIC_DATA | flags::EOF);
    }

    #[test]
    fn advertised_percentage_reproduces_parity_count() {
        let block = |d, f, min| plan_fec_blocks(d, f, min).unwrap().blocks[0];
        let expect = |data_shards, parity_shards, advertised_percent| GsFecBlock {
            data_shards,
            parity_shards,
            advertised_percent,
        };
        assert_eq!(block(1, 20, 2), expect(1, 2, 200));
        assert_eq!(block(3, 20, 2), expect(3, 2, 66));
        assert_eq!(block(4, 20, 2), expect(4, 2, 50));
        assert_eq!(block(7, 20, 2), expect(7, 2, 20), "ceil(1.4) = 2 already");
        assert_eq!(block(10, 20, 2), expect(10, 2, 20), "F itself suffices");
        assert_eq!(block(212, 20, 2), expect(212, 43, 20));
        assert_eq!(block(5, 0, 2), expect(5, 0, 0), "F = 0 ignores the minimum");
        // D = 1 with a minimum of 3 would need 300 %, which 8 bits cannot
        // carry; 2 parity shards (200 %) is the most expressible.
        assert_eq!(block(1, 20, 3), expect(1, 1, 20));
        for data_shards in 1..=212 {
            for min in 0..=4 {
                let b = block(data_shards, 20, min);
                assert_eq!(
                    (data_shards * b.advertised_percent as usize).div_ceil(100),
                    b.parity_shards
                );
                assert!(b.advertised_percent <= 255);
                assert!(data_shards + b.parity_shards <= 255);
            }
        }
    }

    #[test]
    fn block_split_follows_sunshine_sizing() {
        let plan = plan_fec_blocks(212, 20, 2).unwrap();
        assert_eq!(plan.block_count, 1);
        let plan = plan_fec_blocks(213, 20, 2).unwrap();
        assert_eq!(plan.block_count, 2);
        assert_eq!(plan.blocks[0].data_shards, 107);
        assert_eq!(plan.blocks[1].data_shards, 106);
        let plan = plan_fec_blocks(4 * 212, 20, 2).unwrap();
        assert_eq!(plan.block_count, 4);
        assert!(plan.blocks().iter().all(|b| b.data_shards == 212));
        assert!(plan.blocks().iter().all(|b| b.advertised_percent == 20));
    }

    #[test]
    fn more_than_four_blocks_disables_fec_for_the_frame() {
        // P = 32: 16 payload bytes a shard; 849 shards need 5 blocks at 20 %.
        let data_shards = 4 * 212 + 1;
        let plan = plan_fec_blocks(data_shards, 20, 2).unwrap();
        assert_eq!(plan.block_count, 4);
        assert_eq!(
            plan.blocks()
                .iter()
                .map(|b| b.data_shards)
                .collect::<Vec<_>>(),
            [213, 213, 213, 210]
        );
        assert!(plan
            .blocks()
            .iter()
            .all(|b| b.parity_shards == 0 && b.advertised_percent == 0));

        let mut packetizer = GsVideoPacketizer::new(32, 20, 2, None).unwrap();
        let mut depacketizer = GsVideoDepacketizer::new(32, None).unwrap();
        let access_unit: Vec<u8> = (0..data_shards * 16 - FRAME_HEADER_LEN)
            .map(|i| (i * 13) as u8)
            .collect();
        let batch = packetizer.packetize(&input(1, &access_unit)).unwrap();
        assert_eq!(batch.len(), data_shards);
        for (i, datagram) in batch.datagrams().enumerate() {
            let block = i / 213;
            assert_eq!(datagram[27], ((block as u8) << 4) | (3 << 6));
            let fec_info = le32(datagram, offset::FEC_INFO);
            assert_eq!((fec_info >> 4) & 0xFF, 0, "advertised F = 0");
            assert_eq!((fec_info >> 12) & 0x3FF, (i % 213) as u32);
        }
        let datagrams: Vec<&[u8]> = batch.datagrams().collect();
        let delivered: Vec<_> = datagrams
            .iter()
            .rev()
            .filter_map(|d| depacketizer.push(d).unwrap())
            .collect();
        assert_eq!(delivered.len(), 1);
        assert!(delivered[0].access_unit == access_unit);

        // Without parity one lost shard loses the frame.
        let batch = packetizer.packetize(&input(2, &access_unit)).unwrap();
        for datagram in batch.datagrams().skip(1) {
            assert_eq!(depacketizer.push(datagram), Ok(None));
        }

        // Beyond 4 × 1023 shards the frame cannot be sent at all.
        let too_large = vec![0u8; 4 * 1023 * 16];
        assert!(matches!(
            packetizer.packetize(&input(3, &too_large)),
            Err(GsVideoError::FrameTooLarge { .. })
        ));
    }

    #[test]
    fn encrypted_datagram_prefix_and_wrong_key() {
        let mut packetizer = GsVideoPacketizer::new(64, 20, 2, Some(&KEY)).unwrap();
        let batch = packetizer.packetize(&input(9, b"hello")).unwrap();
        assert_eq!(batch.len(), 3);
        for (counter, datagram) in batch.datagrams().enumerate() {
            assert_eq!(datagram.len(), 64 + 48);
            assert_eq!(datagram[..8], (counter as u64).to_le_bytes());
            assert_eq!(datagram[8..12], [0, 0, 0, b'V']);
            assert_eq!(datagram[12..16], 9u32.to_le_bytes());
        }
        let mut wrong = GsVideoDepacketizer::new(64, Some(b"fedcba9876543210")).unwrap();
        assert_eq!(
            wrong.push(batch.datagram(0)),
            Err(GsVideoDrop::AuthenticationFailed)
        );
        assert_eq!(wrong.stats().authentication_failures, 1);
        // D = 1: any one shard of the three, here the second parity shard.
        let mut right = GsVideoDepacketizer::new(64, Some(&KEY)).unwrap();
        let frame = right.push(batch.datagram(2)).unwrap().expect("D = 1 of 3");
        assert_eq!(frame.access_unit, b"hello");
        assert_eq!(frame.recovered_shards, 1);
    }

    #[test]
    fn duplicates_stale_and_too_much_loss_are_counted() {
        let mut packetizer = GsVideoPacketizer::new(64, 20, 2, None).unwrap();
        let mut depacketizer = GsVideoDepacketizer::new(64, None).unwrap();
        let frame_one: Vec<Vec<u8>> = packetizer
            .packetize(&input(1, &[1u8; 200]))
            .unwrap()
            .datagrams()
            .map(<[u8]>::to_vec)
            .collect();
        // 208 stream bytes → D = 5, Pp = 2: lose three data shards.
        assert_eq!(frame_one.len(), 7);
        assert_eq!(depacketizer.push(&frame_one[0]), Ok(None));
        assert_eq!(
            depacketizer.push(&frame_one[0]),
            Err(GsVideoDrop::Duplicate)
        );
        assert_eq!(depacketizer.push(&frame_one[5]), Ok(None));
        assert_eq!(depacketizer.push(&frame_one[6]), Ok(None));
        let frame_two: Vec<Vec<u8>> = packetizer
            .packetize(&input(2, b"x"))
            .unwrap()
            .datagrams()
            .map(<[u8]>::to_vec)
            .collect();
        assert!(depacketizer.push(&frame_two[0]).unwrap().is_some());
        assert_eq!(depacketizer.push(&frame_one[1]), Err(GsVideoDrop::Stale));
        assert_eq!(depacketizer.push(&frame_two[1]), Err(GsVideoDrop::Stale));
        let stats = depacketizer.stats();
        assert_eq!(stats.frames_dropped, 1);
        assert_eq!(stats.data_shards_lost, 4);
        assert_eq!((stats.duplicates, stats.stale), (1, 2));
    }

    #[test]
    fn rejects_bad_configs() {
        assert!(
            GsVideoPacketizer::new(1000, 20, 2, None).is_err(),
            "not /16"
        );
        assert!(GsVideoPacketizer::new(16, 20, 2, None).is_err());
        assert!(GsVideoPacketizer::new(1024, 256, 2, None).is_err());
        assert!(GsVideoDepacketizer::new(MAX_PACKET_SIZE + 16, None).is_err());
    }

    proptest! {
        #[test]
        fn random_datagrams_never_panic(
            datagrams in proptest::collection::vec(
                proptest::collection::vec(any::<u8>(), 0..200), 0..40),
            encrypted in any::<bool>(),
        ) {
            let key = encrypted.then_some(&KEY);
            let mut depacketizer = GsVideoDepacketizer::new(64, key).unwrap();
            for datagram in &datagrams {
                let _ = depacketizer.push(datagram);
            }
            prop_assert_eq!(depacketizer.stats().datagrams, datagrams.len() as u64);
        }

        #[test]
        fn mutated_valid_datagrams_never_panic(
            len in 1usize..400,
            mutations in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..6),
            truncate in any::<usize>(),
        ) {
            let mut packetizer = GsVideoPacketizer::new(64, 20, 2, None).unwrap();
            let mut depacketizer = GsVideoDepacketizer::new(64, None).unwrap();
            let access_unit = vec![0x55u8; len];
            let batch = packetizer.packetize(&input(1, &access_unit)).unwrap();
            for (i, datagram) in batch.datagrams().enumerate() {
                let mut datagram = datagram.to_vec();
                if i % 2 == 0 {
                    for &(at, value) in &mutations {
                        let at = at % datagram.len();
                        datagram[at] = value;
                    }
                    datagram.truncate(truncate % (datagram.len() + 1));
                }
                let _ = depacketizer.push(&datagram);
            }
        }
    }
}
