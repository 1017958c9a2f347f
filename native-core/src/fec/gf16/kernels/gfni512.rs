//! GFNI + AVX-512 kernels: one whole 64-byte chunk (32 symbols) per 512-bit register.
//!
//! Multiplying a GF(2^16) symbol by a constant is linear over GF(2): a 16×16 bit matrix, i.e.
//! four 8×8 blocks `A_ll, A_lh, A_hl, A_hh` (output byte ← input byte), and
//! `GF2P8AFFINEQB` applies an 8×8 block to every byte of a register. With the chunk `[lo | hi]`
//! in one register, `affine([lo | hi], [A_ll | A_hh]) ^ affine([hi | lo], [A_lh | A_hl])` is
//! `[c·x low bytes | c·x high bytes]`: two affines, one lane swap and one XOR per 32 symbols,
//! where the AVX2 nibble path needs eight shuffles. The blocks come from the same
//! [`NibbleTable`] the other backends use (its single-bit entries are the matrix columns).
//!
//! Every function needs GFNI and AVX-512F; callers must have detected them (they are
//! `#[target_feature]`, so calling them from other code is `unsafe`).
//!
//! Section numbers (§) refer to docs/gamestream-protocol.md.

use std::arch::x86_64::*;

use super::Chunk;
use crate::fec::gf16::field::NibbleTable;

/// The two affine operands of one constant: `[A_ll ×4 | A_hh ×4]` and `[A_lh ×4 | A_hl ×4]`.
struct Matrices {
    same_half: __m512i,
    other_half: __m512i,
}

/// Transposes an 8×8 bit matrix held as 8 bytes (bit `c` of byte `r` ↔ bit `r` of byte `c`),
/// with the three delta swaps of Hacker's Delight §7-3.
fn transpose8(mut x: u64) -> u64 {
    let t = (x ^ (x >> 7)) & 0x00AA_00AA_00AA_00AA;
    x ^= t ^ (t << 7);
    let t = (x ^ (x >> 14)) & 0x0000_CCCC_0000_CCCC;
    x ^= t ^ (t << 14);
    let t = (x ^ (x >> 28)) & 0x0000_0000_F0F0_F0F0;
    x ^ t ^ (t << 28)
}

/// The `GF2P8AFFINEQB` operand whose output bit `i` is bit `i` of `Σ_j x_j · column[j]`:
/// the instruction takes row `i` in byte `7 - i`, so transpose the columns, then reverse bytes.
fn affine_operand(columns: [u8; 8]) -> u64 {
    transpose8(u64::from_le_bytes(columns)).swap_bytes()
}

/// Builds the four 8×8 blocks from the table's single-bit entries: input bit `j` (nibble
/// `j / 4`, value `1 << (j % 4)`) maps to the symbol `hi:lo` of those entries.
#[inline]
#[target_feature(enable = "avx512f,gfni")]
fn matrices(table: &NibbleTable) -> Matrices {
    let column_lo = |bit: usize| table.lo[bit / 4][1 << (bit % 4)];
    let column_hi = |bit: usize| table.hi[bit / 4][1 << (bit % 4)];
    let low_in_low_out = affine_operand(std::array::from_fn(column_lo));
    let low_in_high_out = affine_operand(std::array::from_fn(column_hi));
    let high_in_low_out = affine_operand(std::array::from_fn(|j| column_lo(j + 8)));
    let high_in_high_out = affine_operand(std::array::from_fn(|j| column_hi(j + 8)));
    let lanes = |low: u64, high: u64| {
        _mm512_set_epi64(
            high as i64,
            high as i64,
            high as i64,
            high as i64,
            low as i64,
            low as i64,
            low as i64,
            low as i64,
        )
    };
    Matrices {
        same_half: lanes(low_in_low_out, high_in_high_out),
        other_half: lanes(high_in_low_out, low_in_high_out),
    }
}

#[inline]
#[target_feature(enable = "avx512f")]
fn load_chunk(chunk: &Chunk) -> __m512i {
    // SAFETY: a `Chunk` is 64 readable, 64-byte-aligned bytes.
    unsafe { _mm512_load_si512(std::ptr::from_ref(chunk).cast()) }
}

#[inline]
#[target_feature(enable = "avx512f")]
fn store_chunk(chunk: &mut Chunk, value: __m512i) {
    // SAFETY: a `Chunk` is 64 writable, exclusively borrowed, 64-byte-aligned bytes.
    unsafe { _mm512_store_si512(std::ptr::from_mut(chunk).cast(), value) }
}

/// `c · x` for the 32 symbols of one chunk register `[lo | hi]`.
#[inline]
#[target_feature(enable = "avx512f,gfni")]
fn mul_symbols(x: __m512i, m: &Matrices) -> __m512i {
    let swapped = _mm512_shuffle_i64x2::<0b01_00_11_10>(x, x);
    _mm512_xor_si512(
        _mm512_gf2p8affine_epi64_epi8::<0>(x, m.same_half),
        _mm512_gf2p8affine_epi64_epi8::<0>(swapped, m.other_half),
    )
}

#[target_feature(enable = "avx512f,gfni")]
pub(super) fn mul_add(dst: &mut [Chunk], src: &[Chunk], table: &NibbleTable) {
    let m = matrices(table);
    for (d, s) in dst.iter_mut().zip(src) {
        let product = mul_symbols(load_chunk(s), &m);
        store_chunk(d, _mm512_xor_si512(load_chunk(d), product));
    }
}

#[target_feature(enable = "avx512f,gfni")]
pub(super) fn mul_in_place(buf: &mut [Chunk], table: &NibbleTable) {
    let m = matrices(table);
    for chunk in buf {
        let product = mul_symbols(load_chunk(chunk), &m);
        store_chunk(chunk, product);
    }
}

#[target_feature(enable = "avx512f,gfni")]
pub(super) fn fft_butterfly(x: &mut [Chunk], y: &mut [Chunk], table: &NibbleTable) {
    let m = matrices(table);
    for (xc, yc) in x.iter_mut().zip(y.iter_mut()) {
        let y_value = load_chunk(yc);
        let x_value = _mm512_xor_si512(load_chunk(xc), mul_symbols(y_value, &m));
        store_chunk(xc, x_value);
        store_chunk(yc, _mm512_xor_si512(y_value, x_value));
    }
}

#[target_feature(enable = "avx512f,gfni")]
pub(super) fn ifft_butterfly(x: &mut [Chunk], y: &mut [Chunk], table: &NibbleTable) {
    let m = matrices(table);
    for (xc, yc) in x.iter_mut().zip(y.iter_mut()) {
        let x_value = load_chunk(xc);
        let y_value = _mm512_xor_si512(load_chunk(yc), x_value);
        store_chunk(yc, y_value);
        store_chunk(xc, _mm512_xor_si512(x_value, mul_symbols(y_value, &m)));
    }
}

#[target_feature(enable = "avx512f")]
pub(super) fn xor(dst: &mut [Chunk], src: &[Chunk]) {
    for (d, s) in dst.iter_mut().zip(src) {
        store_chunk(d, _mm512_xor_si512(load_chunk(d), load_chunk(s)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transpose_swaps_rows_and_columns() {
        // Bit c of byte r set alone ends up as bit r of byte c.
        for r in 0..8 {
            for c in 0..8 {
                let x = 1u64 << (8 * r + c);
                assert_eq!(transpose8(x), 1u64 << (8 * c + r), "row {r} column {c}");
            }
        }
    }
}
