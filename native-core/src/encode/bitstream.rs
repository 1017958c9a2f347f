//! Minimal bitstream readers: the NAL units of an Annex-B access unit
//! (H.264/HEVC) with their types, the H.264 slice type, and the OBU types of
//! an AV1 temporal unit. Enough to tell key frames and in-band parameter
//! sets apart (packetizers, FEC, tests); no full header parsing.

/// H.264 `nal_unit_type` values (ITU-T H.264 table 7-1).
pub mod h264 {
    /// Coded slice of a non-IDR picture.
    pub const SLICE: u8 = 1;
    /// Coded slice of an IDR picture.
    pub const IDR: u8 = 5;
    /// Supplemental enhancement information.
    pub const SEI: u8 = 6;
    /// Sequence parameter set.
    pub const SPS: u8 = 7;
    /// Picture parameter set.
    pub const PPS: u8 = 8;
    /// Filler data (CBR padding).
    pub const FILLER: u8 = 12;
}

/// HEVC `nal_unit_type` values (ITU-T H.265 table 7-1).
pub mod hevc {
    /// IDR with leading pictures allowed.
    pub const IDR_W_RADL: u8 = 19;
    /// IDR without leading pictures.
    pub const IDR_N_LP: u8 = 20;
    /// Video parameter set.
    pub const VPS: u8 = 32;
    /// Sequence parameter set.
    pub const SPS: u8 = 33;
    /// Picture parameter set.
    pub const PPS: u8 = 34;
}

/// AV1 `obu_type` values (AV1 spec 6.2.2).
pub mod av1 {
    pub const SEQUENCE_HEADER: u8 = 1;
    pub const TEMPORAL_DELIMITER: u8 = 2;
    pub const FRAME_HEADER: u8 = 3;
    pub const TILE_GROUP: u8 = 4;
    pub const METADATA: u8 = 5;
    pub const FRAME: u8 = 6;
    pub const PADDING: u8 = 15;
}

/// The NAL units of an Annex-B byte stream (start codes `00 00 01` or
/// `00 00 00 01`), without their start codes. Bytes before the first start
/// code are ignored.
pub fn annexb_nal_units(data: &[u8]) -> Vec<&[u8]> {
    let mut starts = Vec::new(); // (start code begin, payload begin)
    let mut i = 0;
    while i + 3 <= data.len() {
        if data[i] == 0 && data[i + 1] == 0 && data[i + 2] == 1 {
            let begin = if i > 0 && data[i - 1] == 0 { i - 1 } else { i };
            starts.push((begin, i + 3));
            i += 3;
        } else {
            i += 1;
        }
    }
    starts
        .iter()
        .enumerate()
        .map(|(n, &(_, payload))| {
            let end = starts.get(n + 1).map_or(data.len(), |&(begin, _)| begin);
            &data[payload..end.max(payload)]
        })
        .collect()
}

/// `nal_unit_type` of every H.264 NAL unit in an Annex-B access unit.
pub fn h264_nal_types(data: &[u8]) -> Vec<u8> {
    annexb_nal_units(data)
        .iter()
        .filter_map(|nal| nal.first().map(|h| h & 0x1f))
        .collect()
}

/// `nal_unit_type` of every HEVC NAL unit in an Annex-B access unit.
pub fn hevc_nal_types(data: &[u8]) -> Vec<u8> {
    annexb_nal_units(data)
        .iter()
        .filter_map(|nal| nal.first().map(|h| (h >> 1) & 0x3f))
        .collect()
}

/// H.264 slice kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SliceType {
    P,
    B,
    I,
    Sp,
    Si,
}

/// Reads `first_mb_in_slice` and `slice_type` (two Exp-Golomb numbers)
/// from an H.264 slice NAL unit (type 1 or 5, header byte included).
pub fn h264_slice_type(nal: &[u8]) -> Option<SliceType> {
    let kind = *nal.first()? & 0x1f;
    if kind != h264::SLICE && kind != h264::IDR {
        return None;
    }
    // Drop emulation-prevention bytes (00 00 03 -> 00 00) from the few
    // bytes the two numbers can occupy.
    const HEADER_BYTES: usize = 16;
    let mut rbsp = Vec::with_capacity(HEADER_BYTES);
    let mut zeros = 0;
    for &b in nal[1..].iter().take(HEADER_BYTES) {
        if zeros >= 2 && b == 3 {
            zeros = 0;
            continue;
        }
        zeros = if b == 0 { zeros + 1 } else { 0 };
        rbsp.push(b);
    }
    let mut bits = BitReader::new(&rbsp);
    let _first_mb_in_slice = bits.exp_golomb()?;
    Some(match bits.exp_golomb()? % 5 {
        0 => SliceType::P,
        1 => SliceType::B,
        2 => SliceType::I,
        3 => SliceType::Sp,
        _ => SliceType::Si,
    })
}

struct BitReader<'a> {
    data: &'a [u8],
    bit: usize,
}

impl<'a> BitReader<'a> {
    fn new(data: &'a [u8]) -> Self {
        BitReader { data, bit: 0 }
    }

    fn read_bit(&mut self) -> Option<u32> {
        let byte = *self.data.get(self.bit / 8)?;
        let value = (byte >> (7 - self.bit % 8)) & 1;
        self.bit += 1;
        Some(u32::from(value))
    }

    /// Unsigned Exp-Golomb `ue(v)`; `None` past the data or beyond 31
    /// leading zeros.
    fn exp_golomb(&mut self) -> Option<u32> {
        let mut leading_zeros = 0;
        while self.read_bit()? == 0 {
            leading_zeros += 1;
            if leading_zeros > 31 {
                return None;
            }
        }
        let mut suffix: u64 = 0;
        for _ in 0..leading_zeros {
            suffix = (suffix << 1) | u64::from(self.read_bit()?);
        }
        u32::try_from((1u64 << leading_zeros) - 1 + suffix).ok()
    }
}

/// `obu_type` of every OBU in an AV1 temporal unit (low-overhead format,
/// every OBU with `obu_has_size_field`, as libaom/SVT-AV1 emit it). `Err`
/// names the first malformed OBU.
pub fn av1_obu_types(data: &[u8]) -> Result<Vec<u8>, String> {
    let mut types = Vec::new();
    let mut pos = 0;
    while pos < data.len() {
        let header = data[pos];
        if header & 0x80 != 0 {
            return Err(format!("OBU at byte {pos}: forbidden bit set"));
        }
        let obu_type = (header >> 3) & 0x0f;
        let has_extension = header & 0x04 != 0;
        let has_size = header & 0x02 != 0;
        pos += 1 + usize::from(has_extension);
        let size = if has_size {
            let (size, used) =
                leb128(&data[pos.min(data.len())..]).ok_or(format!("OBU {obu_type}: bad size"))?;
            pos += used;
            usize::try_from(size).map_err(|_| format!("OBU {obu_type}: size overflows"))?
        } else {
            data.len().saturating_sub(pos)
        };
        if pos + size > data.len() {
            return Err(format!(
                "OBU {obu_type} at byte {pos}: {size} bytes overrun the data"
            ));
        }
        types.push(obu_type);
        pos += size;
    }
    Ok(types)
}

/// AV1 `leb128()`: value and bytes used (at most 8).
fn leb128(data: &[u8]) -> Option<(u64, usize)> {
    const MAX_BYTES: usize = 8;
    let mut value: u64 = 0;
    for (i, &byte) in data.iter().take(MAX_BYTES).enumerate() {
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Some((value, i + 1));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn annexb_splits_on_three_and_four_byte_start_codes() {
        let stream = [
            0, 0, 0, 1, 0x67, 0xaa, // SPS, 4-byte start code
            0, 0, 1, 0x68, 0xbb, 0, // PPS, 3-byte start code, trailing zero
            0, 0, 0, 1, 0x65, 0x88, 0x80, // IDR
        ];
        let nals = annexb_nal_units(&stream);
        assert_eq!(
            nals,
            [
                &[0x67, 0xaa][..],
                &[0x68, 0xbb, 0][..],
                &[0x65, 0x88, 0x80][..]
            ]
        );
        assert_eq!(h264_nal_types(&stream), [7, 8, 5]);
        assert!(annexb_nal_units(&[1, 2, 3]).is_empty());
        assert!(annexb_nal_units(&[]).is_empty());
    }

    #[test]
    fn hevc_types_use_six_bits_after_the_forbidden_bit() {
        // VPS (32 << 1 = 0x40), SPS (0x42), PPS (0x44), IDR_W_RADL (0x26).
        let stream = [
            0, 0, 0, 1, 0x40, 1, 0, 0, 1, 0x42, 1, 0, 0, 1, 0x44, 1, 0, 0, 1, 0x26, 1,
        ];
        assert_eq!(hevc_nal_types(&stream), [32, 33, 34, 19]);
    }

    #[test]
    fn slice_types_from_exp_golomb() {
        // first_mb 0 ("1"), slice_type 5 = P ("00110"), then padding bits.
        assert_eq!(h264_slice_type(&[0x41, 0b1001_1000]), Some(SliceType::P));
        // first_mb 0, slice_type 7 = I ("0001000").
        assert_eq!(h264_slice_type(&[0x65, 0b1000_1000, 0]), Some(SliceType::I));
        // first_mb 0, slice_type 0 = P ("1").
        assert_eq!(h264_slice_type(&[0x41, 0b1100_0000]), Some(SliceType::P));
        assert_eq!(h264_slice_type(&[0x67, 0xff]), None, "not a slice");
        assert_eq!(h264_slice_type(&[0x41]), None, "truncated");
        assert_eq!(h264_slice_type(&[0x41, 0, 0, 3, 0]), None, "all zeros");
    }

    #[test]
    fn av1_obus_with_size_fields() {
        let tu = [
            0x12, 0x00, // temporal delimiter, size 0
            0x0a, 0x02, 0xaa, 0xbb, // sequence header, size 2
            0x32, 0x81, 0x00, // frame, size 1 as a two-byte leb128 ...
            0xcc, // ... its payload
        ];
        assert_eq!(av1_obu_types(&tu), Ok(vec![2, 1, 6]));
        assert!(av1_obu_types(&[0x0a, 0x05, 1]).is_err(), "overrun");
        assert!(av1_obu_types(&[0x8a, 0x00]).is_err(), "forbidden bit");
        assert!(av1_obu_types(&[0x0a, 0x80]).is_err(), "unterminated size");
        assert_eq!(av1_obu_types(&[]), Ok(vec![]));
    }
}
