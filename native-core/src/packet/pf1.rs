//! punktfunk/1 data-plane datagrams.
//!
//! ```text
//! seq u64 BE (clear) ‖ AEAD( header[40] ‖ shard[shard_bytes] ) ‖ tag[16]
//! ```
//!
//! The 40-byte header is little-endian, fields in this order:
//!
//! | off | field           | type | meaning                                        |
//! |-----|-----------------|------|------------------------------------------------|
//! | 0   | pts_ns          | u64  | presentation time of the frame                 |
//! | 8   | frame_index     | u32  | +1 per frame (wrapping)                        |
//! | 12  | stream_seq      | u32  | +1 per packet of this stream (wrapping)        |
//! | 16  | frame_bytes     | u32  | access-unit length (receiver strips padding)   |
//! | 20  | user_flags      | u32  | opaque to transport (keyframe etc.)            |
//! | 24  | block_index     | u16  | FEC block of this shard                        |
//! | 26  | block_count     | u16  | FEC blocks in the frame                        |
//! | 28  | data_shards     | u16  | k of this block                                |
//! | 30  | recovery_shards | u16  | m of this block                                |
//! | 32  | shard_index     | u16  | 0..k data, k..k+m parity                       |
//! | 34  | shard_bytes     | u16  | shard length, equal for all shards of a frame  |
//! | 36  | magic           | u8   | 0xC9                                           |
//! | 37  | version         | u8   | 1                                              |
//! | 38  | fec_scheme      | u8   | 0 none, 1 GF(2^8), 2 GF(2^16)                  |
//! | 39  | flags           | u8   | PIC 0x1, EOF 0x2, SOF 0x4, PROBE 0x8           |
//!
//! # Frame layout
//!
//! A frame of `F = frame_bytes` bytes is cut into `N = max(1, ceil(F / L))`
//! data shards of `L = shard_bytes` bytes (the last zero-padded). The `N`
//! shards are spread as evenly as possible over `block_count` blocks: with
//! `N = q·B + r`, blocks `0..r` get `q + 1` shards and the rest `q`, in
//! order. Every header therefore determines where its block's data lies in
//! the frame, and [`PacketHeader::parse`] rejects a `data_shards` that
//! contradicts `(frame_bytes, shard_bytes, block_count, block_index)`.

use std::fmt;

use crate::crypto::aes_gcm::{SEQ_LEN, TAG_LEN};
use crate::fec::FecScheme;

/// Header length in bytes.
pub const HEADER_LEN: usize = 40;
/// Bytes of a sealed datagram that are not shard payload: seq + header + tag.
pub const DATAGRAM_OVERHEAD: usize = SEQ_LEN + HEADER_LEN + TAG_LEN;
/// Default shard payload: 8 + 40 + 1408 + 16 = 1472 bytes = the UDP payload
/// of a 1500-byte-MTU IPv4 packet (1500 − 20 IP − 8 UDP). 1408 = 22 · 64, so
/// it also suits codes that want 64-byte-multiple shards.
pub const DEFAULT_SHARD_BYTES: usize = 1408;
/// Largest datagram we send or accept: a 9216-byte jumbo payload, the common
/// switch maximum; receive buffers of this size never truncate.
pub const MAX_DATAGRAM_BYTES: usize = 9216;
/// Largest shard that fits [`MAX_DATAGRAM_BYTES`].
pub const MAX_SHARD_BYTES: usize = MAX_DATAGRAM_BYTES - DATAGRAM_OVERHEAD;
/// Header magic byte.
pub const MAGIC: u8 = 0xC9;
/// Header version byte.
pub const VERSION: u8 = 1;

/// Transport flag bits (header byte 39).
pub mod flags {
    /// The packet carries access-unit bytes (a data shard).
    pub const PIC: u8 = 0x1;
    /// Last data shard of the frame.
    pub const EOF: u8 = 0x2;
    /// First data shard of the frame.
    pub const SOF: u8 = 0x4;
    /// Bandwidth probe: padding only, not part of any frame.
    pub const PROBE: u8 = 0x8;
    /// All bits defined by version 1; others must be zero.
    pub const KNOWN: u8 = PIC | EOF | SOF | PROBE;
}

/// The largest shard payload whose sealed datagram fits an IP packet of
/// `mtu` bytes (20-byte IPv4 or 40-byte IPv6 header, 8-byte UDP header),
/// capped at [`MAX_SHARD_BYTES`]; `None` if not even an empty shard fits.
pub fn shard_bytes_for_mtu(mtu: usize, ipv6: bool) -> Option<usize> {
    let ip_header = if ipv6 { 40 } else { 20 };
    let udp_header = 8;
    mtu.checked_sub(ip_header + udp_header + DATAGRAM_OVERHEAD)
        .map(|s| s.min(MAX_SHARD_BYTES))
}

impl FecScheme {
    /// The header byte for this scheme.
    pub fn to_wire(self) -> u8 {
        match self {
            FecScheme::None => 0,
            FecScheme::Gf8 => 1,
            FecScheme::Gf16 => 2,
        }
    }

    /// The scheme for a header byte, if known.
    pub fn from_wire(value: u8) -> Option<FecScheme> {
        match value {
            0 => Some(FecScheme::None),
            1 => Some(FecScheme::Gf8),
            2 => Some(FecScheme::Gf16),
            _ => None,
        }
    }
}

/// How a frame is cut into shards and blocks (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameLayout {
    /// Access-unit length in bytes.
    pub frame_bytes: usize,
    /// Length of every shard (≥ 1).
    pub shard_bytes: usize,
    /// Data shards in the frame (N ≥ 1).
    pub data_shards: usize,
    /// FEC blocks (1 ≤ B ≤ N).
    pub block_count: usize,
}

impl FrameLayout {
    /// The layout for a frame, or `None` if `shard_bytes` is 0 or
    /// `block_count` is not in `1..=N`.
    pub fn new(frame_bytes: usize, shard_bytes: usize, block_count: usize) -> Option<Self> {
        if shard_bytes == 0 {
            return None;
        }
        let data_shards = frame_bytes.div_ceil(shard_bytes).max(1);
        if block_count == 0 || block_count > data_shards {
            return None;
        }
        Some(FrameLayout {
            frame_bytes,
            shard_bytes,
            data_shards,
            block_count,
        })
    }

    /// `(first data shard, data shard count)` of block `block_index`
    /// (which must be `< block_count`).
    pub fn block(&self, block_index: usize) -> (usize, usize) {
        let base = self.data_shards / self.block_count;
        let larger = self.data_shards % self.block_count;
        let first = block_index * base + block_index.min(larger);
        (first, base + usize::from(block_index < larger))
    }

    /// Bytes of the data area (N · L, including tail padding).
    pub fn data_area_bytes(&self) -> usize {
        self.data_shards * self.shard_bytes
    }
}

/// Why a packet (header ‖ shard) was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PacketError {
    /// Shorter than the header.
    TooShort {
        /// Packet length.
        len: usize,
    },
    /// Wrong magic byte.
    BadMagic(u8),
    /// Unknown version byte.
    UnsupportedVersion(u8),
    /// Unknown FEC scheme byte.
    UnknownFecScheme(u8),
    /// Flag bits undefined in version 1 are set.
    ReservedFlags(u8),
    /// `shard_bytes` is 0 or above [`MAX_SHARD_BYTES`].
    InvalidShardBytes(u16),
    /// `shard_bytes` differs from the bytes following the header.
    ShardLengthMismatch {
        /// `shard_bytes` from the header.
        declared: u16,
        /// Bytes actually present after the header.
        actual: usize,
    },
    /// `block_index >= block_count` (or `block_count == 0`).
    BlockIndexOutOfRange {
        /// Block index.
        index: u16,
        /// Block count.
        count: u16,
    },
    /// `data_shards == 0`, parity without a FEC scheme, or more shards than
    /// the scheme supports.
    InvalidShardCounts {
        /// k.
        data: u16,
        /// m.
        recovery: u16,
    },
    /// `shard_index >= data_shards + recovery_shards`.
    ShardIndexOutOfRange {
        /// Shard index.
        index: u16,
        /// k + m.
        total: u32,
    },
    /// `data_shards`/`block_count` contradict the frame layout implied by
    /// `frame_bytes` and `shard_bytes`.
    LayoutMismatch,
}

impl fmt::Display for PacketError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PacketError::TooShort { len } => write!(f, "packet of {len} bytes is too short"),
            PacketError::BadMagic(m) => write!(f, "bad magic 0x{m:02x}"),
            PacketError::UnsupportedVersion(v) => write!(f, "unsupported version {v}"),
            PacketError::UnknownFecScheme(s) => write!(f, "unknown FEC scheme {s}"),
            PacketError::ReservedFlags(fl) => write!(f, "reserved flag bits 0x{fl:02x}"),
            PacketError::InvalidShardBytes(n) => write!(f, "invalid shard_bytes {n}"),
            PacketError::ShardLengthMismatch { declared, actual } => {
                write!(f, "shard_bytes {declared} but {actual} payload bytes")
            }
            PacketError::BlockIndexOutOfRange { index, count } => {
                write!(f, "block {index} of {count}")
            }
            PacketError::InvalidShardCounts { data, recovery } => {
                write!(f, "invalid shard counts k={data} m={recovery}")
            }
            PacketError::ShardIndexOutOfRange { index, total } => {
                write!(f, "shard {index} of {total}")
            }
            PacketError::LayoutMismatch => write!(f, "shard counts contradict frame layout"),
        }
    }
}

impl std::error::Error for PacketError {}

/// A decoded, validated punktfunk/1 header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PacketHeader {
    /// Presentation timestamp in nanoseconds.
    pub pts_ns: u64,
    /// Frame number, +1 per frame (wrapping).
    pub frame_index: u32,
    /// Packet number within the stream, +1 per packet (wrapping).
    pub stream_seq: u32,
    /// Access-unit length in bytes.
    pub frame_bytes: u32,
    /// Opaque application flags, delivered with the frame.
    pub user_flags: u32,
    /// FEC block of this shard.
    pub block_index: u16,
    /// FEC blocks in the frame.
    pub block_count: u16,
    /// k of this block.
    pub data_shards: u16,
    /// m of this block.
    pub recovery_shards: u16,
    /// Index within the block: `< k` data, else parity.
    pub shard_index: u16,
    /// Length of the shard following the header.
    pub shard_bytes: u16,
    /// FEC scheme of the block.
    pub fec_scheme: FecScheme,
    /// Transport flags ([`flags`]).
    pub flags: u8,
}

fn u16_at(b: &[u8], off: usize) -> u16 {
    u16::from_le_bytes([b[off], b[off + 1]])
}

fn u32_at(b: &[u8], off: usize) -> u32 {
    u32::from_le_bytes(b[off..off + 4].try_into().expect("4 bytes"))
}

impl PacketHeader {
    /// Serialises the header (magic and version included).
    pub fn write_to(&self, out: &mut [u8; HEADER_LEN]) {
        out[0..8].copy_from_slice(&self.pts_ns.to_le_bytes());
        out[8..12].copy_from_slice(&self.frame_index.to_le_bytes());
        out[12..16].copy_from_slice(&self.stream_seq.to_le_bytes());
        out[16..20].copy_from_slice(&self.frame_bytes.to_le_bytes());
        out[20..24].copy_from_slice(&self.user_flags.to_le_bytes());
        out[24..26].copy_from_slice(&self.block_index.to_le_bytes());
        out[26..28].copy_from_slice(&self.block_count.to_le_bytes());
        out[28..30].copy_from_slice(&self.data_shards.to_le_bytes());
        out[30..32].copy_from_slice(&self.recovery_shards.to_le_bytes());
        out[32..34].copy_from_slice(&self.shard_index.to_le_bytes());
        out[34..36].copy_from_slice(&self.shard_bytes.to_le_bytes());
        out[36] = MAGIC;
        out[37] = VERSION;
        out[38] = self.fec_scheme.to_wire();
        out[39] = self.flags;
    }

    /// Parses and validates `packet = header ‖ shard` (an opened datagram's
    /// plaintext). Never panics.
    pub fn parse(packet: &[u8]) -> Result<PacketHeader, PacketError> {
        if packet.len() < HEADER_LEN {
            return Err(PacketError::TooShort { len: packet.len() });
        }
        let b = &packet[..HEADER_LEN];
        if b[36] != MAGIC {
            return Err(PacketError::BadMagic(b[36]));
        }
        if b[37] != VERSION {
            return Err(PacketError::UnsupportedVersion(b[37]));
        }
        let fec_scheme = FecScheme::from_wire(b[38]).ok_or(PacketError::UnknownFecScheme(b[38]))?;
        let flags = b[39];
        if flags & !flags::KNOWN != 0 {
            return Err(PacketError::ReservedFlags(flags));
        }
        let header = PacketHeader {
            pts_ns: u64::from_le_bytes(b[0..8].try_into().expect("8 bytes")),
            frame_index: u32_at(b, 8),
            stream_seq: u32_at(b, 12),
            frame_bytes: u32_at(b, 16),
            user_flags: u32_at(b, 20),
            block_index: u16_at(b, 24),
            block_count: u16_at(b, 26),
            data_shards: u16_at(b, 28),
            recovery_shards: u16_at(b, 30),
            shard_index: u16_at(b, 32),
            shard_bytes: u16_at(b, 34),
            fec_scheme,
            flags,
        };
        header.validate(packet.len() - HEADER_LEN)?;
        Ok(header)
    }

    /// Checks every field invariant, given the payload length after the
    /// header.
    fn validate(&self, payload_len: usize) -> Result<(), PacketError> {
        let shard_bytes = usize::from(self.shard_bytes);
        if shard_bytes == 0 || shard_bytes > MAX_SHARD_BYTES {
            return Err(PacketError::InvalidShardBytes(self.shard_bytes));
        }
        if shard_bytes != payload_len {
            return Err(PacketError::ShardLengthMismatch {
                declared: self.shard_bytes,
                actual: payload_len,
            });
        }
        if self.block_index >= self.block_count {
            return Err(PacketError::BlockIndexOutOfRange {
                index: self.block_index,
                count: self.block_count,
            });
        }
        let (k, m) = (
            usize::from(self.data_shards),
            usize::from(self.recovery_shards),
        );
        let counts_ok = k >= 1
            && (self.fec_scheme != FecScheme::None || m == 0)
            && k + m <= self.fec_scheme.max_block_shards();
        if !counts_ok {
            return Err(PacketError::InvalidShardCounts {
                data: self.data_shards,
                recovery: self.recovery_shards,
            });
        }
        if usize::from(self.shard_index) >= k + m {
            return Err(PacketError::ShardIndexOutOfRange {
                index: self.shard_index,
                total: (k + m) as u32,
            });
        }
        let layout = self.layout().ok_or(PacketError::LayoutMismatch)?;
        if layout.block(usize::from(self.block_index)).1 != k {
            return Err(PacketError::LayoutMismatch);
        }
        Ok(())
    }

    /// The frame layout this header implies, if consistent.
    pub fn layout(&self) -> Option<FrameLayout> {
        FrameLayout::new(
            self.frame_bytes as usize,
            usize::from(self.shard_bytes),
            usize::from(self.block_count),
        )
    }

    /// Whether this is a data shard (as opposed to parity).
    pub fn is_data(&self) -> bool {
        self.shard_index < self.data_shards
    }
}

/// Parses `packet = header ‖ shard` and returns the header and the shard.
pub fn parse_packet(packet: &[u8]) -> Result<(PacketHeader, &[u8]), PacketError> {
    let header = PacketHeader::parse(packet)?;
    Ok((header, &packet[HEADER_LEN..]))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;

    pub(crate) fn sample_header() -> PacketHeader {
        // 3000 bytes in 1000-byte shards = 3 data shards, one block.
        PacketHeader {
            pts_ns: 0x0102_0304_0506_0708,
            frame_index: 0x1122_3344,
            stream_seq: 0x5566_7788,
            frame_bytes: 3000,
            user_flags: 0xdead_beef,
            block_index: 0,
            block_count: 1,
            data_shards: 3,
            recovery_shards: 2,
            shard_index: 4,
            shard_bytes: 1000,
            fec_scheme: FecScheme::Gf8,
            flags: flags::PROBE,
        }
    }

    fn packet_of(h: &PacketHeader) -> Vec<u8> {
        let mut out = vec![0u8; HEADER_LEN + usize::from(h.shard_bytes)];
        h.write_to((&mut out[..HEADER_LEN]).try_into().unwrap());
        out
    }

    #[test]
    fn sizes_match_the_spec() {
        assert_eq!(DATAGRAM_OVERHEAD, 64);
        assert_eq!(DATAGRAM_OVERHEAD + DEFAULT_SHARD_BYTES, 1472);
        assert_eq!(shard_bytes_for_mtu(1500, false), Some(DEFAULT_SHARD_BYTES));
        assert_eq!(shard_bytes_for_mtu(1500, true), Some(1388));
        assert_eq!(shard_bytes_for_mtu(9216 + 28, false), Some(MAX_SHARD_BYTES));
        assert_eq!(shard_bytes_for_mtu(91, false), None);
    }

    #[test]
    fn wire_layout_is_little_endian_in_field_order() {
        let mut b = [0u8; HEADER_LEN];
        sample_header().write_to(&mut b);
        assert_eq!(b[0..8], [8, 7, 6, 5, 4, 3, 2, 1]);
        assert_eq!(b[8..12], [0x44, 0x33, 0x22, 0x11]);
        assert_eq!(b[12..16], [0x88, 0x77, 0x66, 0x55]);
        assert_eq!(b[16..20], 3000u32.to_le_bytes());
        assert_eq!(b[20..24], [0xef, 0xbe, 0xad, 0xde]);
        assert_eq!(b[24..36], [0, 0, 1, 0, 3, 0, 2, 0, 4, 0, 0xe8, 0x03]);
        assert_eq!(b[36..], [0xC9, 1, 1, 0x8]);
    }

    #[test]
    fn round_trip() {
        let h = sample_header();
        let p = packet_of(&h);
        assert_eq!(PacketHeader::parse(&p), Ok(h));
        let (parsed, shard) = parse_packet(&p).unwrap();
        assert_eq!(parsed, h);
        assert_eq!(shard.len(), 1000);
        assert!(!h.is_data());
    }

    #[test]
    fn each_invariant_is_checked() {
        let ok = packet_of(&sample_header());
        let with = |edit: &dyn Fn(&mut PacketHeader)| {
            let mut h = sample_header();
            edit(&mut h);
            PacketHeader::parse(&packet_of(&h))
        };
        assert_eq!(
            PacketHeader::parse(&ok[..39]),
            Err(PacketError::TooShort { len: 39 })
        );
        let mut bad = ok.clone();
        bad[36] = 0xC8;
        assert_eq!(PacketHeader::parse(&bad), Err(PacketError::BadMagic(0xC8)));
        let mut bad = ok.clone();
        bad[37] = 2;
        assert_eq!(
            PacketHeader::parse(&bad),
            Err(PacketError::UnsupportedVersion(2))
        );
        let mut bad = ok.clone();
        bad[38] = 3;
        assert_eq!(
            PacketHeader::parse(&bad),
            Err(PacketError::UnknownFecScheme(3))
        );
        assert_eq!(
            with(&|h| h.flags = 0x10),
            Err(PacketError::ReservedFlags(0x10))
        );
        assert_eq!(
            PacketHeader::parse(&ok[..ok.len() - 1]),
            Err(PacketError::ShardLengthMismatch {
                declared: 1000,
                actual: 999
            })
        );
        let mut longer = ok.clone();
        longer.push(0);
        assert!(matches!(
            PacketHeader::parse(&longer),
            Err(PacketError::ShardLengthMismatch { .. })
        ));
        assert_eq!(
            with(&|h| h.block_index = 1),
            Err(PacketError::BlockIndexOutOfRange { index: 1, count: 1 })
        );
        assert!(matches!(
            with(&|h| {
                h.block_count = 0;
                h.block_index = 0
            }),
            Err(PacketError::BlockIndexOutOfRange { .. })
        ));
        assert!(matches!(
            with(&|h| h.data_shards = 0),
            Err(PacketError::InvalidShardCounts { .. })
        ));
        assert!(matches!(
            with(&|h| h.fec_scheme = FecScheme::None),
            Err(PacketError::InvalidShardCounts { .. })
        ));
        assert_eq!(
            with(&|h| h.shard_index = 5),
            Err(PacketError::ShardIndexOutOfRange { index: 5, total: 5 })
        );
        // 3000 bytes / 1000 = 3 data shards, so k = 4 contradicts the layout.
        assert_eq!(
            with(&|h| h.data_shards = 4),
            Err(PacketError::LayoutMismatch)
        );
        // Four blocks cannot share three data shards.
        assert_eq!(
            with(&|h| h.block_count = 4),
            Err(PacketError::LayoutMismatch)
        );
        // GF(2^8) blocks hold at most 255 shards.
        let big = |h: &mut PacketHeader| {
            h.frame_bytes = 254 * 8;
            h.shard_bytes = 8;
            h.data_shards = 254;
            h.shard_index = 0;
        };
        let gf8_ok = with(&|h| {
            big(h);
            h.recovery_shards = 1
        });
        assert!(gf8_ok.is_ok());
        assert!(matches!(
            with(&|h| {
                big(h);
                h.recovery_shards = 2
            }),
            Err(PacketError::InvalidShardCounts { .. })
        ));
        assert!(with(&|h| {
            big(h);
            h.recovery_shards = 2;
            h.fec_scheme = FecScheme::Gf16
        })
        .is_ok());
        assert_eq!(
            with(&|h| h.shard_bytes = 0),
            Err(PacketError::InvalidShardBytes(0))
        );
    }

    #[test]
    fn layout_spreads_shards_evenly() {
        let l = FrameLayout::new(10 * 100 - 1, 100, 3).unwrap();
        assert_eq!(l.data_shards, 10);
        let blocks: Vec<_> = (0..3).map(|b| l.block(b)).collect();
        assert_eq!(blocks, [(0, 4), (4, 3), (7, 3)]);
        assert_eq!(FrameLayout::new(0, 64, 1).unwrap().data_shards, 1);
        assert_eq!(FrameLayout::new(0, 64, 2), None);
        assert_eq!(FrameLayout::new(5, 0, 1), None);
    }

    /// Headers consistent with some frame layout.
    pub(crate) fn valid_header() -> impl Strategy<Value = PacketHeader> {
        (
            (1usize..=MAX_SHARD_BYTES, 0usize..2_000_000),
            (any::<u64>(), any::<u32>(), any::<u32>(), any::<u32>()),
            (
                0u8..3,
                any::<u8>(),
                any::<u16>(),
                any::<u16>(),
                any::<u16>(),
            ),
        )
            .prop_filter_map(
                "layout",
                |((shard, frame), (pts, fi, seq, uf), (scheme, fl, b_pick, m_pick, s_pick))| {
                    let layout = FrameLayout::new(frame, shard, 1)?;
                    let max_blocks = layout.data_shards.min(u16::MAX as usize);
                    let block_count = 1 + usize::from(b_pick) % max_blocks;
                    let layout = FrameLayout::new(frame, shard, block_count)?;
                    let block_index = usize::from(b_pick) % block_count;
                    let (_, k) = layout.block(block_index);
                    let scheme = FecScheme::from_wire(scheme)?;
                    let room = scheme.max_block_shards().checked_sub(k)?;
                    let m = if scheme == FecScheme::None {
                        0
                    } else {
                        usize::from(m_pick) % (room + 1)
                    };
                    Some(PacketHeader {
                        pts_ns: pts,
                        frame_index: fi,
                        stream_seq: seq,
                        frame_bytes: frame as u32,
                        user_flags: uf,
                        block_index: block_index as u16,
                        block_count: block_count as u16,
                        data_shards: k as u16,
                        recovery_shards: m as u16,
                        shard_index: (usize::from(s_pick) % (k + m)) as u16,
                        shard_bytes: shard as u16,
                        fec_scheme: scheme,
                        flags: fl & flags::KNOWN,
                    })
                },
            )
    }

    proptest! {
        #[test]
        fn parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = PacketHeader::parse(&bytes);
        }

        #[test]
        fn parse_never_panics_past_magic_and_version(
            mut bytes in proptest::collection::vec(any::<u8>(), 40..200),
            scheme in 0u8..4,
        ) {
            bytes[36] = MAGIC;
            bytes[37] = VERSION;
            bytes[38] = scheme;
            if let Ok(h) = PacketHeader::parse(&bytes) {
                // Anything accepted must describe a consistent layout.
                let layout = h.layout().expect("validated");
                let (_, k) = layout.block(usize::from(h.block_index));
                prop_assert_eq!(k, usize::from(h.data_shards));
                prop_assert_eq!(bytes.len() - HEADER_LEN, usize::from(h.shard_bytes));
            }
        }

        #[test]
        fn valid_headers_round_trip(h in valid_header()) {
            let p = packet_of(&h);
            prop_assert_eq!(PacketHeader::parse(&p), Ok(h));
        }
    }
}
