//! SSSE3 kernels: each 64-byte chunk as two groups of 16 symbols, nibble lookups with `pshufb`.
//!
//! Every function needs SSSE3; callers must have detected it (they are `#[target_feature]`,
//! so calling them from other code is `unsafe`).

use std::arch::x86_64::*;

use super::{Chunk, CHUNK_BYTES};
use crate::fec::gf16::field::NibbleTable;

struct Tables {
    lo: [__m128i; 4],
    hi: [__m128i; 4],
}

#[inline]
#[target_feature(enable = "ssse3")]
fn load16(bytes: &[u8; 16]) -> __m128i {
    // SAFETY: `bytes` is 16 readable bytes; the unaligned load has no alignment requirement.
    unsafe { _mm_loadu_si128(bytes.as_ptr().cast()) }
}

#[inline]
#[target_feature(enable = "ssse3")]
fn store16(bytes: &mut [u8; 16], value: __m128i) {
    // SAFETY: `bytes` is 16 writable, exclusively borrowed bytes; the unaligned store has no
    // alignment requirement.
    unsafe { _mm_storeu_si128(bytes.as_mut_ptr().cast(), value) }
}

#[inline]
#[target_feature(enable = "ssse3")]
fn load_tables(table: &NibbleTable) -> Tables {
    Tables {
        lo: [
            load16(&table.lo[0]),
            load16(&table.lo[1]),
            load16(&table.lo[2]),
            load16(&table.lo[3]),
        ],
        hi: [
            load16(&table.hi[0]),
            load16(&table.hi[1]),
            load16(&table.hi[2]),
            load16(&table.hi[3]),
        ],
    }
}

/// A chunk as two 16-symbol groups: `[lo 0-15, lo 16-31, hi 0-15, hi 16-31]`.
#[inline]
#[target_feature(enable = "ssse3")]
fn load_chunk(chunk: &Chunk) -> [__m128i; 4] {
    let (lo, _) = chunk.lo.as_chunks::<16>();
    let (hi, _) = chunk.hi.as_chunks::<16>();
    [
        load16(&lo[0]),
        load16(&lo[1]),
        load16(&hi[0]),
        load16(&hi[1]),
    ]
}

#[inline]
#[target_feature(enable = "ssse3")]
fn store_chunk(chunk: &mut Chunk, parts: [__m128i; 4]) {
    let (lo, _) = chunk.lo.as_chunks_mut::<16>();
    store16(&mut lo[0], parts[0]);
    store16(&mut lo[1], parts[1]);
    let (hi, _) = chunk.hi.as_chunks_mut::<16>();
    store16(&mut hi[0], parts[2]);
    store16(&mut hi[1], parts[3]);
}

#[inline]
#[target_feature(enable = "ssse3")]
fn mul_group(lo: __m128i, hi: __m128i, t: &Tables) -> (__m128i, __m128i) {
    let mask = _mm_set1_epi8(0x0f);
    let n0 = _mm_and_si128(lo, mask);
    let n1 = _mm_and_si128(_mm_srli_epi64::<4>(lo), mask);
    let n2 = _mm_and_si128(hi, mask);
    let n3 = _mm_and_si128(_mm_srli_epi64::<4>(hi), mask);
    let out_lo = _mm_xor_si128(
        _mm_xor_si128(_mm_shuffle_epi8(t.lo[0], n0), _mm_shuffle_epi8(t.lo[1], n1)),
        _mm_xor_si128(_mm_shuffle_epi8(t.lo[2], n2), _mm_shuffle_epi8(t.lo[3], n3)),
    );
    let out_hi = _mm_xor_si128(
        _mm_xor_si128(_mm_shuffle_epi8(t.hi[0], n0), _mm_shuffle_epi8(t.hi[1], n1)),
        _mm_xor_si128(_mm_shuffle_epi8(t.hi[2], n2), _mm_shuffle_epi8(t.hi[3], n3)),
    );
    (out_lo, out_hi)
}

/// Products of a whole chunk, in `load_chunk` order.
#[inline]
#[target_feature(enable = "ssse3")]
fn mul_chunk(parts: [__m128i; 4], t: &Tables) -> [__m128i; 4] {
    let (lo0, hi0) = mul_group(parts[0], parts[2], t);
    let (lo1, hi1) = mul_group(parts[1], parts[3], t);
    [lo0, lo1, hi0, hi1]
}

#[inline]
#[target_feature(enable = "ssse3")]
fn xor_parts(a: [__m128i; 4], b: [__m128i; 4]) -> [__m128i; 4] {
    [
        _mm_xor_si128(a[0], b[0]),
        _mm_xor_si128(a[1], b[1]),
        _mm_xor_si128(a[2], b[2]),
        _mm_xor_si128(a[3], b[3]),
    ]
}

#[target_feature(enable = "ssse3")]
pub(super) fn mul_add(dst: &mut [Chunk], src: &[Chunk], table: &NibbleTable) {
    let t = load_tables(table);
    for (d, s) in dst.iter_mut().zip(src) {
        let product = mul_chunk(load_chunk(s), &t);
        store_chunk(d, xor_parts(load_chunk(d), product));
    }
}

#[target_feature(enable = "ssse3")]
pub(super) fn mul_in_place(buf: &mut [Chunk], table: &NibbleTable) {
    let t = load_tables(table);
    for chunk in buf {
        let product = mul_chunk(load_chunk(chunk), &t);
        store_chunk(chunk, product);
    }
}

#[target_feature(enable = "ssse3")]
pub(super) fn fft_butterfly(x: &mut [Chunk], y: &mut [Chunk], table: &NibbleTable) {
    let t = load_tables(table);
    for (xc, yc) in x.iter_mut().zip(y.iter_mut()) {
        let y_parts = load_chunk(yc);
        let x_parts = xor_parts(load_chunk(xc), mul_chunk(y_parts, &t));
        store_chunk(xc, x_parts);
        store_chunk(yc, xor_parts(y_parts, x_parts));
    }
}

#[target_feature(enable = "ssse3")]
pub(super) fn ifft_butterfly(x: &mut [Chunk], y: &mut [Chunk], table: &NibbleTable) {
    let t = load_tables(table);
    for (xc, yc) in x.iter_mut().zip(y.iter_mut()) {
        let x_parts = load_chunk(xc);
        let y_parts = xor_parts(load_chunk(yc), x_parts);
        store_chunk(yc, y_parts);
        store_chunk(xc, xor_parts(x_parts, mul_chunk(y_parts, &t)));
    }
}

#[target_feature(enable = "ssse3")]
pub(super) fn load(src: &[u8], dst: &mut [Chunk]) {
    // Per register: even bytes (low halves of 8 symbols), then odd bytes.
    let split = _mm_setr_epi8(0, 2, 4, 6, 8, 10, 12, 14, 1, 3, 5, 7, 9, 11, 13, 15);
    let (blocks, _) = src.as_chunks::<CHUNK_BYTES>();
    for (block, chunk) in blocks.iter().zip(dst) {
        let (quarters, _) = block.as_chunks::<16>();
        let s = [0, 1, 2, 3].map(|i| _mm_shuffle_epi8(load16(&quarters[i]), split));
        store_chunk(
            chunk,
            [
                _mm_unpacklo_epi64(s[0], s[1]),
                _mm_unpacklo_epi64(s[2], s[3]),
                _mm_unpackhi_epi64(s[0], s[1]),
                _mm_unpackhi_epi64(s[2], s[3]),
            ],
        );
    }
}

#[target_feature(enable = "ssse3")]
pub(super) fn store(src: &[Chunk], dst: &mut [u8]) {
    let join = _mm_setr_epi8(0, 8, 1, 9, 2, 10, 3, 11, 4, 12, 5, 13, 6, 14, 7, 15);
    let (blocks, _) = dst.as_chunks_mut::<CHUNK_BYTES>();
    for (chunk, block) in src.iter().zip(blocks) {
        let [lo0, lo1, hi0, hi1] = load_chunk(chunk);
        let out = [
            _mm_shuffle_epi8(_mm_unpacklo_epi64(lo0, hi0), join),
            _mm_shuffle_epi8(_mm_unpackhi_epi64(lo0, hi0), join),
            _mm_shuffle_epi8(_mm_unpacklo_epi64(lo1, hi1), join),
            _mm_shuffle_epi8(_mm_unpackhi_epi64(lo1, hi1), join),
        ];
        let (quarters, _) = block.as_chunks_mut::<16>();
        for (quarter, value) in quarters.iter_mut().zip(out) {
            store16(quarter, value);
        }
    }
}
