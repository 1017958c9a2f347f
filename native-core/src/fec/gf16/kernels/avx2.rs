//! AVX2 kernels: one 64-byte chunk (32 symbols) per step, nibble lookups with `vpshufb`.
//!
//! Every function needs AVX2; callers must have detected it (they are `#[target_feature]`, so
//! calling them from other code is `unsafe`).

use std::arch::x86_64::*;

use super::{Chunk, CHUNK_BYTES};
use crate::fec::gf16::field::NibbleTable;

/// A [`NibbleTable`] with each 16-byte row broadcast to both 128-bit lanes.
struct Tables {
    lo: [__m256i; 4],
    hi: [__m256i; 4],
}

#[inline]
#[target_feature(enable = "avx2")]
fn broadcast_row(row: &[u8; 16]) -> __m256i {
    // SAFETY: `row` is 16 readable bytes; the unaligned load has no alignment requirement.
    let row = unsafe { _mm_loadu_si128(row.as_ptr().cast()) };
    _mm256_broadcastsi128_si256(row)
}

#[inline]
#[target_feature(enable = "avx2")]
fn load32(bytes: &[u8; 32]) -> __m256i {
    // SAFETY: `bytes` is 32 readable bytes; the unaligned load has no alignment requirement
    // (chunk halves are 32-byte aligned anyway, so it never splits a cache line there).
    unsafe { _mm256_loadu_si256(bytes.as_ptr().cast()) }
}

#[inline]
#[target_feature(enable = "avx2")]
fn store32(bytes: &mut [u8; 32], value: __m256i) {
    // SAFETY: `bytes` is 32 writable, exclusively borrowed bytes; the unaligned store has no
    // alignment requirement.
    unsafe { _mm256_storeu_si256(bytes.as_mut_ptr().cast(), value) }
}

#[inline]
#[target_feature(enable = "avx2")]
fn broadcast_tables(table: &NibbleTable) -> Tables {
    Tables {
        lo: [
            broadcast_row(&table.lo[0]),
            broadcast_row(&table.lo[1]),
            broadcast_row(&table.lo[2]),
            broadcast_row(&table.lo[3]),
        ],
        hi: [
            broadcast_row(&table.hi[0]),
            broadcast_row(&table.hi[1]),
            broadcast_row(&table.hi[2]),
            broadcast_row(&table.hi[3]),
        ],
    }
}

#[inline]
#[target_feature(enable = "avx2")]
fn load_chunk(chunk: &Chunk) -> (__m256i, __m256i) {
    (load32(&chunk.lo), load32(&chunk.hi))
}

#[inline]
#[target_feature(enable = "avx2")]
fn store_chunk(chunk: &mut Chunk, lo: __m256i, hi: __m256i) {
    store32(&mut chunk.lo, lo);
    store32(&mut chunk.hi, hi);
}

/// Products of 32 symbols (low bytes, high bytes) with the tables' constant.
#[inline]
#[target_feature(enable = "avx2")]
fn mul_symbols(lo: __m256i, hi: __m256i, t: &Tables) -> (__m256i, __m256i) {
    let mask = _mm256_set1_epi8(0x0f);
    let n0 = _mm256_and_si256(lo, mask);
    let n1 = _mm256_and_si256(_mm256_srli_epi64::<4>(lo), mask);
    let n2 = _mm256_and_si256(hi, mask);
    let n3 = _mm256_and_si256(_mm256_srli_epi64::<4>(hi), mask);
    let out_lo = _mm256_xor_si256(
        _mm256_xor_si256(
            _mm256_shuffle_epi8(t.lo[0], n0),
            _mm256_shuffle_epi8(t.lo[1], n1),
        ),
        _mm256_xor_si256(
            _mm256_shuffle_epi8(t.lo[2], n2),
            _mm256_shuffle_epi8(t.lo[3], n3),
        ),
    );
    let out_hi = _mm256_xor_si256(
        _mm256_xor_si256(
            _mm256_shuffle_epi8(t.hi[0], n0),
            _mm256_shuffle_epi8(t.hi[1], n1),
        ),
        _mm256_xor_si256(
            _mm256_shuffle_epi8(t.hi[2], n2),
            _mm256_shuffle_epi8(t.hi[3], n3),
        ),
    );
    (out_lo, out_hi)
}

#[target_feature(enable = "avx2")]
pub(super) fn mul_add(dst: &mut [Chunk], src: &[Chunk], table: &NibbleTable) {
    let t = broadcast_tables(table);
    for (d, s) in dst.iter_mut().zip(src) {
        let (s_lo, s_hi) = load_chunk(s);
        let (p_lo, p_hi) = mul_symbols(s_lo, s_hi, &t);
        let (d_lo, d_hi) = load_chunk(d);
        store_chunk(
            d,
            _mm256_xor_si256(d_lo, p_lo),
            _mm256_xor_si256(d_hi, p_hi),
        );
    }
}

#[target_feature(enable = "avx2")]
pub(super) fn mul_in_place(buf: &mut [Chunk], table: &NibbleTable) {
    let t = broadcast_tables(table);
    for chunk in buf {
        let (lo, hi) = load_chunk(chunk);
        let (p_lo, p_hi) = mul_symbols(lo, hi, &t);
        store_chunk(chunk, p_lo, p_hi);
    }
}

#[target_feature(enable = "avx2")]
pub(super) fn fft_butterfly(x: &mut [Chunk], y: &mut [Chunk], table: &NibbleTable) {
    let t = broadcast_tables(table);
    for (xc, yc) in x.iter_mut().zip(y.iter_mut()) {
        let (y_lo, y_hi) = load_chunk(yc);
        let (p_lo, p_hi) = mul_symbols(y_lo, y_hi, &t);
        let (x_lo, x_hi) = load_chunk(xc);
        let x_lo = _mm256_xor_si256(x_lo, p_lo);
        let x_hi = _mm256_xor_si256(x_hi, p_hi);
        store_chunk(xc, x_lo, x_hi);
        store_chunk(
            yc,
            _mm256_xor_si256(y_lo, x_lo),
            _mm256_xor_si256(y_hi, x_hi),
        );
    }
}

#[target_feature(enable = "avx2")]
pub(super) fn ifft_butterfly(x: &mut [Chunk], y: &mut [Chunk], table: &NibbleTable) {
    let t = broadcast_tables(table);
    for (xc, yc) in x.iter_mut().zip(y.iter_mut()) {
        let (x_lo, x_hi) = load_chunk(xc);
        let (y_lo, y_hi) = load_chunk(yc);
        let y_lo = _mm256_xor_si256(y_lo, x_lo);
        let y_hi = _mm256_xor_si256(y_hi, x_hi);
        store_chunk(yc, y_lo, y_hi);
        let (p_lo, p_hi) = mul_symbols(y_lo, y_hi, &t);
        store_chunk(
            xc,
            _mm256_xor_si256(x_lo, p_lo),
            _mm256_xor_si256(x_hi, p_hi),
        );
    }
}

#[target_feature(enable = "avx2")]
pub(super) fn xor(dst: &mut [Chunk], src: &[Chunk]) {
    for (d, s) in dst.iter_mut().zip(src) {
        let (s_lo, s_hi) = load_chunk(s);
        let (d_lo, d_hi) = load_chunk(d);
        store_chunk(
            d,
            _mm256_xor_si256(d_lo, s_lo),
            _mm256_xor_si256(d_hi, s_hi),
        );
    }
}

/// Per 128-bit lane: even bytes (low halves of 8 symbols) first, then odd bytes.
#[inline]
#[target_feature(enable = "avx2")]
fn split_bytes_mask() -> __m256i {
    _mm256_setr_epi8(
        0, 2, 4, 6, 8, 10, 12, 14, 1, 3, 5, 7, 9, 11, 13, 15, //
        0, 2, 4, 6, 8, 10, 12, 14, 1, 3, 5, 7, 9, 11, 13, 15,
    )
}

/// Inverse of [`split_bytes_mask`]: re-interleave 8 low and 8 high bytes per lane.
#[inline]
#[target_feature(enable = "avx2")]
fn join_bytes_mask() -> __m256i {
    _mm256_setr_epi8(
        0, 8, 1, 9, 2, 10, 3, 11, 4, 12, 5, 13, 6, 14, 7, 15, //
        0, 8, 1, 9, 2, 10, 3, 11, 4, 12, 5, 13, 6, 14, 7, 15,
    )
}

/// Quadword order [0, 2, 1, 3]; it is its own inverse.
const SWAP_MIDDLE_QUADWORDS: i32 = 0b11_01_10_00;

#[target_feature(enable = "avx2")]
pub(super) fn load(src: &[u8], dst: &mut [Chunk]) {
    let split = split_bytes_mask();
    let (blocks, _) = src.as_chunks::<CHUNK_BYTES>();
    for (block, chunk) in blocks.iter().zip(dst) {
        let (halves, _) = block.as_chunks::<32>();
        let (first, second) = (load32(&halves[0]), load32(&halves[1]));
        // Quadwords become [lo 0-7, hi 0-7, lo 8-15, hi 8-15], then [lo, lo, hi, hi].
        let first =
            _mm256_permute4x64_epi64::<SWAP_MIDDLE_QUADWORDS>(_mm256_shuffle_epi8(first, split));
        let second =
            _mm256_permute4x64_epi64::<SWAP_MIDDLE_QUADWORDS>(_mm256_shuffle_epi8(second, split));
        let lo = _mm256_permute2x128_si256::<0x20>(first, second);
        let hi = _mm256_permute2x128_si256::<0x31>(first, second);
        store_chunk(chunk, lo, hi);
    }
}

#[target_feature(enable = "avx2")]
pub(super) fn store(src: &[Chunk], dst: &mut [u8]) {
    let join = join_bytes_mask();
    let (blocks, _) = dst.as_chunks_mut::<CHUNK_BYTES>();
    for (chunk, block) in src.iter().zip(blocks) {
        let (lo, hi) = load_chunk(chunk);
        let first = _mm256_permute2x128_si256::<0x20>(lo, hi);
        let second = _mm256_permute2x128_si256::<0x31>(lo, hi);
        let first = _mm256_shuffle_epi8(
            _mm256_permute4x64_epi64::<SWAP_MIDDLE_QUADWORDS>(first),
            join,
        );
        let second = _mm256_shuffle_epi8(
            _mm256_permute4x64_epi64::<SWAP_MIDDLE_QUADWORDS>(second),
            join,
        );
        let (halves, _) = block.as_chunks_mut::<32>();
        store32(&mut halves[0], first);
        store32(&mut halves[1], second);
    }
}
