//! GameStream (Moonlight-compatible) audio packets, host side and test-client
//! side (protocol reference: `docs/gamestream-protocol.md` §8.2–§8.4).
//!
//! Every Opus packet travels as `RTP header (12) ‖ payload` with payload type
//! 97; the sequence number starts at 0 and the timestamp advances by the
//! packet duration in milliseconds. With audio encryption the payload is the
//! AES-128-CBC/PKCS#7 ciphertext of the Opus packet, IV
//! `BE32(rikeyid + seq) ‖ 0×12` (§8.3).
//!
//! FEC (§8.4): every block of 4 data packets starting at a sequence number
//! that is a multiple of 4 is followed by 2 packets (payload type 127) with
//! Reed–Solomon parity over the 4 **wire payloads** (ciphertext if encrypted),
//! computed with the fixed GF(2^8) matrix NVIDIA uses (not nanors' Cauchy
//! default, so [`crate::fec::gf8::Gf8Code`] does not apply). The shards must
//! have equal length; Opus is run in CBR mode for this. A block whose
//! payloads differ in length gets no FEC packets (Moonlight would disable
//! audio FEC on seeing one).

use std::collections::VecDeque;
use std::fmt;

use crate::crypto::aes_cbc::{self, gamestream_audio_iv};
use crate::crypto::{CryptoError, KEY_LEN};

/// RTP header without extension.
pub const RTP_HEADER_LEN: usize = 12;
/// FEC header after the RTP header of a parity packet.
pub const FEC_HEADER_LEN: usize = 12;
/// RTP payload type of Opus data packets.
pub const AUDIO_PAYLOAD_TYPE: u8 = 97;
/// RTP payload type of FEC packets.
pub const FEC_PAYLOAD_TYPE: u8 = 127;
/// Data packets per FEC block (`RTPA_DATA_SHARDS`).
pub const DATA_SHARDS: usize = 4;
/// Parity packets per FEC block (`RTPA_FEC_SHARDS`).
pub const PARITY_SHARDS: usize = 2;
/// NVIDIA's audio parity matrix, row j = coefficients of parity shard j.
pub const PARITY_MATRIX: [[u8; DATA_SHARDS]; PARITY_SHARDS] =
    [[0x77, 0x40, 0x38, 0x0e], [0xc7, 0xa7, 0x0d, 0x6c]];
/// Largest datagram Moonlight reads (`MAX_PACKET_SIZE`).
pub const MAX_DATAGRAM_LEN: usize = 1400;
/// RTP version 2, no padding, no extension.
const RTP_BYTE0: u8 = 0x80;
/// Blocks the depacketizer keeps for late packets (≈ 160 ms at 5 ms packets).
const MAX_BLOCKS_IN_FLIGHT: usize = 8;
/// Reducing polynomial x^8 + x^4 + x^3 + x^2 + 1, as for video.
const FIELD_POLYNOMIAL: u16 = 0x11D;

/// `a · b` in GF(2^8) mod 0x11D (shift-and-add; audio volumes are tiny).
fn gf_mul(a: u8, b: u8) -> u8 {
    let (mut a, mut b, mut product) = (u16::from(a), b, 0u16);
    while b != 0 {
        if b & 1 != 0 {
            product ^= a;
        }
        a <<= 1;
        if a & 0x100 != 0 {
            a ^= FIELD_POLYNOMIAL;
        }
        b >>= 1;
    }
    product as u8
}

/// `a^-1 = a^254` (the multiplicative group has order 255); `a ≠ 0`.
fn gf_inv(a: u8) -> u8 {
    let mut result = 1;
    for _ in 0..254 {
        result = gf_mul(result, a);
    }
    result
}

/// `dst ^= coefficient · src`, bytewise.
fn mul_add(coefficient: u8, src: &[u8], dst: &mut [u8]) {
    let mut table = [0u8; 256];
    for (value, entry) in table.iter_mut().enumerate() {
        *entry = gf_mul(coefficient, value as u8);
    }
    for (d, &s) in dst.iter_mut().zip(src) {
        *d ^= table[usize::from(s)];
    }
}

/// Computes both parity shards of a block; all six slices have one length.
pub fn encode_parity(data: [&[u8]; DATA_SHARDS], parity: [&mut [u8]; PARITY_SHARDS]) {
    for (row, out) in PARITY_MATRIX.iter().zip(parity) {
        out.fill(0);
        for (&coefficient, shard) in row.iter().zip(data) {
            mul_add(coefficient, shard, out);
        }
    }
}

/// Rebuilds missing data shards (indices 0–3) from the present ones and the
/// parity shards (indices 4–5). Returns the rebuilt indices, or `None` if
/// fewer than 4 shards are present or their lengths differ.
fn recover(shards: &mut [Option<Vec<u8>>; DATA_SHARDS + PARITY_SHARDS]) -> Option<Vec<usize>> {
    let missing: Vec<usize> = (0..DATA_SHARDS).filter(|&i| shards[i].is_none()).collect();
    let rows: Vec<usize> = (0..PARITY_SHARDS)
        .filter(|&j| shards[DATA_SHARDS + j].is_some())
        .take(missing.len())
        .collect();
    if missing.is_empty() || rows.len() < missing.len() {
        return None;
    }
    let len = shards.iter().flatten().next()?.len();
    if shards.iter().flatten().any(|shard| shard.len() != len) {
        return None;
    }
    // rhs_r = parity_r ⊕ Σ_{known i} M[r][i] · d_i = Σ_{missing e} M[r][e] · d_e
    let rhs: Vec<Vec<u8>> = rows
        .iter()
        .map(|&row| {
            let mut acc = shards[DATA_SHARDS + row].clone().expect("row is present");
            for (i, shard) in shards[..DATA_SHARDS].iter().enumerate() {
                if let Some(shard) = shard {
                    mul_add(PARITY_MATRIX[row][i], shard, &mut acc);
                }
            }
            acc
        })
        .collect();
    let coefficient = |r: usize, e: usize| PARITY_MATRIX[rows[r]][missing[e]];
    let solutions: Vec<Vec<u8>> = if missing.len() == 1 {
        let mut out = vec![0u8; len];
        mul_add(gf_inv(coefficient(0, 0)), &rhs[0], &mut out);
        vec![out]
    } else {
        // 2×2 inverse: [a b; c d]^-1 = [d b; c a] / (a·d ⊕ b·c); nonzero for
        // every column pair of this matrix (checked by a test).
        let (a, b, c, d) = (
            coefficient(0, 0),
            coefficient(0, 1),
            coefficient(1, 0),
            coefficient(1, 1),
        );
        let det_inv = gf_inv(gf_mul(a, d) ^ gf_mul(b, c));
        let solve = |first: u8, second: u8| {
            let mut out = vec![0u8; len];
            mul_add(gf_mul(first, det_inv), &rhs[0], &mut out);
            mul_add(gf_mul(second, det_inv), &rhs[1], &mut out);
            out
        };
        vec![solve(d, b), solve(c, a)]
    };
    for (&index, solution) in missing.iter().zip(solutions) {
        shards[index] = Some(solution);
    }
    Some(missing)
}

/// Audio encryption parameters from `/launch`.
#[derive(Clone, PartialEq, Eq)]
pub struct GsAudioEncryption {
    /// `rikey`.
    pub key: [u8; KEY_LEN],
    /// `rikeyid` as an integer.
    pub ri_key_id: u32,
}

impl fmt::Debug for GsAudioEncryption {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GsAudioEncryption")
            .field("ri_key_id", &self.ri_key_id)
            .finish_non_exhaustive()
    }
}

/// Why the packetizer refused a packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GsAudioError {
    /// The datagram would exceed [`MAX_DATAGRAM_LEN`].
    PacketTooLarge {
        /// Datagram length it would have.
        len: usize,
    },
    /// Encryption failed.
    Crypto(CryptoError),
}

impl fmt::Display for GsAudioError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GsAudioError::PacketTooLarge { len } => {
                write!(
                    f,
                    "audio datagram of {len} bytes exceeds {MAX_DATAGRAM_LEN}"
                )
            }
            GsAudioError::Crypto(e) => write!(f, "crypto: {e}"),
        }
    }
}

impl std::error::Error for GsAudioError {}

fn write_rtp_header(out: &mut Vec<u8>, payload_type: u8, sequence: u16, timestamp: u32) {
    out.extend_from_slice(&[RTP_BYTE0, payload_type]);
    out.extend_from_slice(&sequence.to_be_bytes());
    out.extend_from_slice(&timestamp.to_be_bytes());
    out.extend_from_slice(&[0; 4]); // SSRC
}

/// Host side: Opus packets → audio datagrams (data, plus FEC after every
/// fourth). Buffers are reused; only encryption allocates.
#[derive(Debug)]
pub struct GsAudioPacketizer {
    packet_duration_ms: u32,
    encryption: Option<GsAudioEncryption>,
    next_sequence: u16,
    next_timestamp: u32,
    block_payloads: [Vec<u8>; DATA_SHARDS],
    block_base_timestamp: u32,
    parity: [Vec<u8>; PARITY_SHARDS],
    arena: Vec<u8>,
    datagram_ends: [usize; 1 + PARITY_SHARDS],
    datagram_count: usize,
    blocks_without_fec: u64,
}

impl GsAudioPacketizer {
    /// `packet_duration_ms` is the ANNOUNCE `x-nv-aqos.packetDuration`.
    pub fn new(packet_duration_ms: u32, encryption: Option<GsAudioEncryption>) -> Self {
        GsAudioPacketizer {
            packet_duration_ms,
            encryption,
            next_sequence: 0,
            next_timestamp: 0,
            block_payloads: Default::default(),
            block_base_timestamp: 0,
            parity: Default::default(),
            arena: Vec::with_capacity((1 + PARITY_SHARDS) * MAX_DATAGRAM_LEN),
            datagram_ends: [0; 1 + PARITY_SHARDS],
            datagram_count: 0,
            blocks_without_fec: 0,
        }
    }

    /// Blocks sent without FEC because their payload lengths differed.
    pub fn blocks_without_fec(&self) -> u64 {
        self.blocks_without_fec
    }

    /// Packetizes one Opus packet; the batch holds its data datagram and, if
    /// it completed a block, the block's two FEC datagrams.
    pub fn packetize(&mut self, opus: &[u8]) -> Result<GsAudioBatch<'_>, GsAudioError> {
        let sequence = self.next_sequence;
        let timestamp = self.next_timestamp;
        let shard_index = usize::from(sequence) % DATA_SHARDS;
        let payload_len = match &self.encryption {
            // PKCS#7 always adds 1–16 bytes up to whole blocks.
            Some(_) => (opus.len() / aes_cbc::BLOCK_LEN + 1) * aes_cbc::BLOCK_LEN,
            None => opus.len(),
        };
        let data_len = RTP_HEADER_LEN + payload_len;
        let fec_len = RTP_HEADER_LEN + FEC_HEADER_LEN + payload_len;
        if data_len.max(fec_len) > MAX_DATAGRAM_LEN {
            return Err(GsAudioError::PacketTooLarge {
                len: data_len.max(fec_len),
            });
        }

        let payload = &mut self.block_payloads[shard_index];
        payload.clear();
        match &self.encryption {
            Some(encryption) => {
                let iv = gamestream_audio_iv(encryption.ri_key_id, sequence);
                let ciphertext =
                    aes_cbc::encrypt(&encryption.key, &iv, opus).map_err(GsAudioError::Crypto)?;
                payload.extend_from_slice(&ciphertext);
            }
            None => payload.extend_from_slice(opus),
        }
        if shard_index == 0 {
            self.block_base_timestamp = timestamp;
        }

        self.arena.clear();
        write_rtp_header(&mut self.arena, AUDIO_PAYLOAD_TYPE, sequence, timestamp);
        self.arena.extend_from_slice(payload);
        self.datagram_ends[0] = self.arena.len();
        self.datagram_count = 1;

        if shard_index == DATA_SHARDS - 1 {
            let len = self.block_payloads[0].len();
            if self.block_payloads.iter().all(|p| p.len() == len) {
                let [p0, p1] = &mut self.parity;
                p0.resize(len, 0);
                p1.resize(len, 0);
                let [d0, d1, d2, d3] = &self.block_payloads;
                encode_parity([d0, d1, d2, d3], [p0, p1]);
                let base_sequence = sequence.wrapping_sub((DATA_SHARDS - 1) as u16);
                for (k, parity) in self.parity.iter().enumerate() {
                    let fec_sequence = sequence.wrapping_add(1 + k as u16);
                    write_rtp_header(&mut self.arena, FEC_PAYLOAD_TYPE, fec_sequence, 0);
                    self.arena.extend_from_slice(&[k as u8, AUDIO_PAYLOAD_TYPE]);
                    self.arena.extend_from_slice(&base_sequence.to_be_bytes());
                    self.arena
                        .extend_from_slice(&self.block_base_timestamp.to_be_bytes());
                    self.arena.extend_from_slice(&[0; 4]); // SSRC
                    self.arena.extend_from_slice(parity);
                    self.datagram_ends[1 + k] = self.arena.len();
                }
                self.datagram_count += PARITY_SHARDS;
            } else {
                self.blocks_without_fec += 1;
            }
        }

        self.next_sequence = sequence.wrapping_add(1);
        self.next_timestamp = timestamp.wrapping_add(self.packet_duration_ms);
        Ok(GsAudioBatch {
            arena: &self.arena,
            ends: &self.datagram_ends[..self.datagram_count],
        })
    }
}

/// The datagrams produced for one Opus packet, in send order.
#[derive(Debug)]
pub struct GsAudioBatch<'a> {
    arena: &'a [u8],
    ends: &'a [usize],
}

impl<'a> GsAudioBatch<'a> {
    /// 1, or 3 when FEC packets follow.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// Never true; for clippy.
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// Datagram `i`.
    pub fn datagram(&self, i: usize) -> &'a [u8] {
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        &self.arena[start..self.ends[i]]
    }

    /// All datagrams in send order.
    pub fn datagrams(&self) -> impl Iterator<Item = &'a [u8]> + '_ {
        (0..self.len()).map(|i| self.datagram(i))
    }
}

/// An Opus packet delivered by the depacketizer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GsAudioPacket {
    /// RTP sequence number.
    pub sequence: u16,
    /// RTP timestamp (ms units).
    pub timestamp: u32,
    /// The decrypted Opus packet.
    pub opus: Vec<u8>,
    /// Rebuilt from FEC rather than received.
    pub recovered: bool,
}

/// Why the depacketizer refused a datagram (also counted in the stats).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GsAudioDrop {
    /// Not a well-formed audio or FEC packet.
    Malformed(&'static str),
    /// CBC decryption or padding failed.
    DecryptionFailed,
    /// The shard was already received.
    Duplicate,
}

/// Counters of the audio depacketizer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GsAudioDepacketizerStats {
    /// Datagrams pushed.
    pub datagrams: u64,
    /// Data packets delivered as received.
    pub received: u64,
    /// Data packets rebuilt from FEC and delivered.
    pub recovered: u64,
    /// Malformed datagrams.
    pub malformed: u64,
    /// Payloads (received or rebuilt) that failed to decrypt.
    pub decryption_failures: u64,
    /// Repeated shards.
    pub duplicates: u64,
}

struct AudioBlock {
    base_sequence: u16,
    base_timestamp: Option<u32>,
    shards: [Option<Vec<u8>>; DATA_SHARDS + PARITY_SHARDS],
}

/// Test-client side: audio datagrams → Opus packets, rebuilding up to two
/// lost packets of each 4-packet block.
#[derive(Debug)]
pub struct GsAudioDepacketizer {
    packet_duration_ms: u32,
    encryption: Option<GsAudioEncryption>,
    blocks: VecDeque<AudioBlock>,
    stats: GsAudioDepacketizerStats,
}

impl fmt::Debug for AudioBlock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AudioBlock")
            .field("base_sequence", &self.base_sequence)
            .finish_non_exhaustive()
    }
}

impl GsAudioDepacketizer {
    /// Settings as for the packetizer.
    pub fn new(packet_duration_ms: u32, encryption: Option<GsAudioEncryption>) -> Self {
        GsAudioDepacketizer {
            packet_duration_ms,
            encryption,
            blocks: VecDeque::with_capacity(MAX_BLOCKS_IN_FLIGHT + 1),
            stats: GsAudioDepacketizerStats::default(),
        }
    }

    /// The counters so far.
    pub fn stats(&self) -> &GsAudioDepacketizerStats {
        &self.stats
    }

    /// Takes one datagram; returns the Opus packets it made available (the
    /// packet itself, and any rebuilt by FEC).
    pub fn push(&mut self, datagram: &[u8]) -> Result<Vec<GsAudioPacket>, GsAudioDrop> {
        self.stats.datagrams += 1;
        let result = self.accept(datagram);
        match result {
            Err(GsAudioDrop::Malformed(_)) => self.stats.malformed += 1,
            Err(GsAudioDrop::DecryptionFailed) => self.stats.decryption_failures += 1,
            Err(GsAudioDrop::Duplicate) => self.stats.duplicates += 1,
            Ok(_) => {}
        }
        result
    }

    fn decrypt(&self, sequence: u16, payload: &[u8]) -> Result<Vec<u8>, GsAudioDrop> {
        match &self.encryption {
            None => Ok(payload.to_vec()),
            Some(encryption) => {
                let iv = gamestream_audio_iv(encryption.ri_key_id, sequence);
                aes_cbc::decrypt(&encryption.key, &iv, payload)
                    .map_err(|_| GsAudioDrop::DecryptionFailed)
            }
        }
    }

    /// The block starting at `base_sequence`, created if new (evicting the
    /// oldest beyond [`MAX_BLOCKS_IN_FLIGHT`]).
    fn block(&mut self, base_sequence: u16) -> &mut AudioBlock {
        let position = match self
            .blocks
            .iter()
            .position(|block| block.base_sequence == base_sequence)
        {
            Some(position) => position,
            None => {
                if self.blocks.len() == MAX_BLOCKS_IN_FLIGHT {
                    self.blocks.pop_front();
                }
                self.blocks.push_back(AudioBlock {
                    base_sequence,
                    base_timestamp: None,
                    shards: Default::default(),
                });
                self.blocks.len() - 1
            }
        };
        &mut self.blocks[position]
    }

    fn accept(&mut self, datagram: &[u8]) -> Result<Vec<GsAudioPacket>, GsAudioDrop> {
        if datagram.len() < RTP_HEADER_LEN {
            return Err(GsAudioDrop::Malformed("shorter than the RTP header"));
        }
        if datagram[0] & 0xC0 != RTP_BYTE0 {
            return Err(GsAudioDrop::Malformed("RTP version"));
        }
        let sequence = u16::from_be_bytes([datagram[2], datagram[3]]);
        let timestamp = u32::from_be_bytes([datagram[4], datagram[5], datagram[6], datagram[7]]);
        let duration = self.packet_duration_ms;
        let mut delivered = Vec::new();
        let base_sequence = match datagram[1] & 0x7F {
            AUDIO_PAYLOAD_TYPE => {
                let payload = &datagram[RTP_HEADER_LEN..];
                let shard_index = usize::from(sequence) % DATA_SHARDS;
                let base_sequence = sequence - shard_index as u16;
                if self.block(base_sequence).shards[shard_index].is_some() {
                    return Err(GsAudioDrop::Duplicate);
                }
                let opus = self.decrypt(sequence, payload)?;
                let block = self.block(base_sequence);
                block.shards[shard_index] = Some(payload.to_vec());
                block.base_timestamp.get_or_insert(
                    timestamp.wrapping_sub(duration.wrapping_mul(shard_index as u32)),
                );
                self.stats.received += 1;
                delivered.push(GsAudioPacket {
                    sequence,
                    timestamp,
                    opus,
                    recovered: false,
                });
                base_sequence
            }
            FEC_PAYLOAD_TYPE => {
                let header_end = RTP_HEADER_LEN + FEC_HEADER_LEN;
                if datagram.len() <= header_end {
                    return Err(GsAudioDrop::Malformed("FEC packet without parity"));
                }
                let fec = &datagram[RTP_HEADER_LEN..header_end];
                let parity_index = usize::from(fec[0]);
                let base_sequence = u16::from_be_bytes([fec[2], fec[3]]);
                let base_timestamp = u32::from_be_bytes([fec[4], fec[5], fec[6], fec[7]]);
                if parity_index >= PARITY_SHARDS
                    || fec[1] != AUDIO_PAYLOAD_TYPE
                    || usize::from(base_sequence) % DATA_SHARDS != 0
                {
                    return Err(GsAudioDrop::Malformed("FEC header"));
                }
                let block = self.block(base_sequence);
                let slot = &mut block.shards[DATA_SHARDS + parity_index];
                if slot.is_some() {
                    return Err(GsAudioDrop::Duplicate);
                }
                *slot = Some(datagram[header_end..].to_vec());
                block.base_timestamp = Some(base_timestamp);
                base_sequence
            }
            _ => return Err(GsAudioDrop::Malformed("payload type")),
        };

        let block = self.block(base_sequence);
        let base_timestamp = block.base_timestamp.unwrap_or(0);
        if let Some(rebuilt) = recover(&mut block.shards) {
            let payloads: Vec<(usize, Vec<u8>)> = rebuilt
                .iter()
                .map(|&i| (i, block.shards[i].clone().expect("just rebuilt")))
                .collect();
            for (i, payload) in payloads {
                let sequence = base_sequence.wrapping_add(i as u16);
                match self.decrypt(sequence, &payload) {
                    Ok(opus) => {
                        self.stats.recovered += 1;
                        delivered.push(GsAudioPacket {
                            sequence,
                            timestamp: base_timestamp.wrapping_add(duration.wrapping_mul(i as u32)),
                            opus,
                            recovered: true,
                        });
                    }
                    // Only garbage parity can do this; the other packets stand.
                    Err(_) => self.stats.decryption_failures += 1,
                }
            }
        }
        Ok(delivered)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fec::gf8::Gf8Code;
    use proptest::prelude::*;

    const DURATION_MS: u32 = 5;

    fn encryption() -> GsAudioEncryption {
        GsAudioEncryption {
            key: *b"audio-key-16byte",
            ri_key_id: 0x0102_0304,
        }
    }

    #[test]
    fn field_arithmetic_matches_the_video_code() {
        // nanors' (4, 2) Cauchy matrix C[j][i] = ((2 + i) ^ j)^-1 built with
        // this module's arithmetic equals Gf8Code's (same 0x11D field).
        let ours: Vec<u8> = (0..2)
            .flat_map(|j| (0..4).map(move |i| gf_inv((2 + i) ^ j)))
            .collect();
        assert_eq!(ours, Gf8Code::new(4, 2).unwrap().parity_matrix());
        assert_eq!(ours, [0x8e, 0xf4, 0x47, 0xa7, 0xf4, 0x8e, 0xa7, 0x47]);
        for a in 1..=255u8 {
            assert_eq!(gf_mul(a, gf_inv(a)), 1);
        }
    }

    #[test]
    fn fixed_matrix_parity_by_hand() {
        let parity = |data: [[u8; 1]; 4]| {
            let (mut p0, mut p1) = ([0u8], [0u8]);
            encode_parity([&data[0], &data[1], &data[2], &data[3]], [&mut p0, &mut p1]);
            [p0[0], p1[0]]
        };
        // d0 = 1: the first column.
        assert_eq!(parity([[1], [0], [0], [0]]), [0x77, 0xc7]);
        // d0 = 2: 2·0x77 = 0xee; 2·0xc7 = 0x18e ⊕ 0x11d = 0x93.
        assert_eq!(parity([[2], [0], [0], [0]]), [0xee, 0x93]);
        // All ones: row sums 77⊕40⊕38⊕0e = 01 and c7⊕a7⊕0d⊕6c = 01.
        assert_eq!(parity([[1], [1], [1], [1]]), [0x01, 0x01]);
        // d3 = 3: 3·0x0e = 0x1c ⊕ 0x0e = 0x12; 3·0x6c = 0xd8 ⊕ 0x6c = 0xb4.
        assert_eq!(parity([[0], [0], [0], [3]]), [0x12, 0xb4]);
    }

    #[test]
    fn every_pair_of_columns_is_invertible() {
        for e0 in 0..4 {
            for e1 in e0 + 1..4 {
                let m = PARITY_MATRIX;
                let det = gf_mul(m[0][e0], m[1][e1]) ^ gf_mul(m[0][e1], m[1][e0]);
                assert_ne!(det, 0, "columns {e0}, {e1}");
            }
        }
    }

    #[test]
    fn data_and_fec_packet_layout() {
        let mut packetizer = GsAudioPacketizer::new(DURATION_MS, None);
        let payloads: Vec<Vec<u8>> = (0..4u8).map(|i| vec![i + 1; 3]).collect();
        for (i, payload) in payloads.iter().enumerate().take(3) {
            let batch = packetizer.packetize(payload).unwrap();
            assert_eq!(batch.len(), 1);
            let ts = (i as u32 * DURATION_MS).to_be_bytes();
            assert_eq!(
                batch.datagram(0),
                [
                    &[0x80, 97, 0, i as u8],
                    &ts[..],
                    &[0, 0, 0, 0],
                    &payload[..]
                ]
                .concat()
            );
        }
        let batch = packetizer.packetize(&payloads[3]).unwrap();
        assert_eq!(batch.len(), 3);
        let mut parity = [vec![0u8; 3], vec![0u8; 3]];
        {
            let [p0, p1] = &mut parity;
            encode_parity(
                [&payloads[0], &payloads[1], &payloads[2], &payloads[3]],
                [p0, p1],
            );
        }
        for k in 0..2u8 {
            #[rustfmt::skip]
            let header = [
                0x80, 127, 0x00, 4 + k,     // FEC PT, BE16 seq = lastDataSeq + 1 + k
                0, 0, 0, 0, 0, 0, 0, 0,     // timestamp 0, SSRC 0
                k, 97, 0x00, 0x00,          // shard index, PT, BE16 base seq 0
                0, 0, 0, 0, 0, 0, 0, 0,     // BE32 base timestamp 0, SSRC 0
            ];
            assert_eq!(
                batch.datagram(1 + usize::from(k)),
                [&header[..], &parity[usize::from(k)]].concat()
            );
        }
        // The next data packet: seq 4, timestamp 20.
        let batch = packetizer.packetize(&payloads[0]).unwrap();
        assert_eq!(batch.datagram(0)[2..8], [0, 4, 0, 0, 0, 20]);
    }

    #[test]
    fn encrypted_payload_uses_the_sequence_iv() {
        let mut packetizer = GsAudioPacketizer::new(DURATION_MS, Some(encryption()));
        packetizer.packetize(b"first").unwrap();
        let batch = packetizer.packetize(b"opus").unwrap();
        let datagram = batch.datagram(0);
        assert_eq!(datagram.len(), RTP_HEADER_LEN + 16);
        let iv = gamestream_audio_iv(0x0102_0304, 1);
        assert_eq!(iv[..4], [0x01, 0x02, 0x03, 0x05]);
        let opus = aes_cbc::decrypt(&encryption().key, &iv, &datagram[12..]).unwrap();
        assert_eq!(opus, b"opus");
    }

    /// Sends `blocks` blocks of equal-size packets, drops shards per
    /// `lost(block) → 6-bit mask`, and checks every data packet arrives.
    fn round_trip(encryption: Option<GsAudioEncryption>, lost: impl Fn(usize) -> u8) {
        let blocks = 16;
        let mut packetizer = GsAudioPacketizer::new(DURATION_MS, encryption.clone());
        let mut depacketizer = GsAudioDepacketizer::new(DURATION_MS, encryption);
        let mut received = Vec::new();
        let opus = |seq: usize| -> Vec<u8> { (0..60).map(|b| (seq * 7 + b * 3) as u8).collect() };
        for block in 0..blocks {
            let mut datagrams = Vec::new();
            for i in 0..4 {
                let batch = packetizer.packetize(&opus(block * 4 + i)).unwrap();
                datagrams.extend(batch.datagrams().map(<[u8]>::to_vec));
            }
            assert_eq!(datagrams.len(), 6);
            let mask = lost(block);
            // Arrival order: data, then parity, skipping lost shards.
            for (shard, datagram) in datagrams.iter().enumerate() {
                if mask & (1 << shard) == 0 {
                    received.extend(depacketizer.push(datagram).unwrap());
                }
            }
        }
        received.sort_by_key(|packet| packet.sequence);
        assert_eq!(received.len(), blocks * 4, "every packet delivered once");
        for (seq, packet) in received.iter().enumerate() {
            assert_eq!(usize::from(packet.sequence), seq);
            assert_eq!(packet.timestamp, seq as u32 * DURATION_MS);
            assert_eq!(packet.opus, opus(seq), "packet {seq}");
        }
        let stats = depacketizer.stats();
        let lost_data: u32 = (0..blocks).map(|b| (lost(b) & 0x0f).count_ones()).sum();
        assert_eq!(stats.recovered, u64::from(lost_data));
    }

    /// All 6-bit masks losing at most two shards; 22 of them, which hit
    /// each of the 6 data-loss pairs and single losses.
    fn masks_up_to_two() -> Vec<u8> {
        (0u8..64).filter(|m| m.count_ones() <= 2).collect()
    }

    #[test]
    fn round_trip_with_any_two_of_six_lost() {
        let masks = masks_up_to_two();
        assert_eq!(masks.len(), 22);
        for chunk in masks.chunks(16) {
            round_trip(None, |block| chunk[block % chunk.len()]);
        }
    }

    #[test]
    fn round_trip_encrypted_with_two_data_packets_lost() {
        let pairs = [0b0011u8, 0b0101, 0b0110, 0b1001, 0b1010, 0b1100];
        round_trip(Some(encryption()), |block| pairs[block % pairs.len()]);
    }

    #[test]
    fn three_losses_are_not_recovered_and_unequal_blocks_skip_fec() {
        let mut packetizer = GsAudioPacketizer::new(DURATION_MS, None);
        let mut depacketizer = GsAudioDepacketizer::new(DURATION_MS, None);
        let mut datagrams = Vec::new();
        for i in 0..4 {
            let batch = packetizer.packetize(&[i; 10]).unwrap();
            datagrams.extend(batch.datagrams().map(<[u8]>::to_vec));
        }
        for datagram in &datagrams[3..] {
            let packets = depacketizer.push(datagram).unwrap();
            assert!(packets.iter().all(|p| !p.recovered));
        }
        assert_eq!(
            depacketizer.push(&datagrams[3]),
            Err(GsAudioDrop::Duplicate)
        );
        assert_eq!(depacketizer.stats().recovered, 0);

        for len in [10, 10, 10, 11] {
            let batch = packetizer.packetize(&vec![0u8; len]).unwrap();
            assert_eq!(batch.len(), 1);
        }
        assert_eq!(packetizer.blocks_without_fec(), 1);
        assert!(matches!(
            packetizer.packetize(&[0u8; MAX_DATAGRAM_LEN]),
            Err(GsAudioError::PacketTooLarge { .. })
        ));
    }

    proptest! {
        #[test]
        fn random_datagrams_never_panic(
            datagrams in proptest::collection::vec(
                proptest::collection::vec(any::<u8>(), 0..80), 0..60),
            encrypted in any::<bool>(),
        ) {
            let mut depacketizer =
                GsAudioDepacketizer::new(DURATION_MS, encrypted.then(encryption));
            for datagram in &datagrams {
                let _ = depacketizer.push(datagram);
            }
            prop_assert_eq!(depacketizer.stats().datagrams, datagrams.len() as u64);
        }

        #[test]
        fn audio_shaped_datagrams_never_panic(
            headers in proptest::collection::vec(
                (prop_oneof![Just(97u8), Just(127u8)], any::<u16>(), 0u8..3, any::<u16>(),
                 proptest::collection::vec(any::<u8>(), 0..40)),
                0..60),
            encrypted in any::<bool>(),
        ) {
            let mut depacketizer =
                GsAudioDepacketizer::new(DURATION_MS, encrypted.then(encryption));
            for (payload_type, sequence, shard, base, body) in headers {
                let mut datagram = vec![0x80, payload_type];
                datagram.extend_from_slice(&sequence.to_be_bytes());
                datagram.extend_from_slice(&[0; 8]);
                if payload_type == FEC_PAYLOAD_TYPE {
                    datagram.extend_from_slice(&[shard, 97]);
                    datagram.extend_from_slice(&(base & !3).to_be_bytes());
                    datagram.extend_from_slice(&[0; 8]);
                }
                datagram.extend_from_slice(&body);
                let _ = depacketizer.push(&datagram);
            }
        }
    }
}
