//! Portable kernels: one symbol at a time through the log/exp tables.

use super::{Chunk, CHUNK_SYMBOLS};
use crate::fec::gf16::field::FieldTables;

#[inline]
fn symbol(chunk: &Chunk, index: usize) -> u16 {
    chunk.lo[index] as u16 | (chunk.hi[index] as u16) << 8
}

/// `dst ^= c · src` for a nonzero constant with log `log_c`.
pub(super) fn mul_add(dst: &mut [Chunk], src: &[Chunk], log_c: u16, field: &FieldTables) {
    for (d, s) in dst.iter_mut().zip(src) {
        for j in 0..CHUNK_SYMBOLS {
            let product = field.mul_log(symbol(s, j), log_c);
            d.lo[j] ^= product as u8;
            d.hi[j] ^= (product >> 8) as u8;
        }
    }
}

/// `buf = c · buf` for a nonzero constant with log `log_c`.
pub(super) fn mul_in_place(buf: &mut [Chunk], log_c: u16, field: &FieldTables) {
    for chunk in buf {
        for j in 0..CHUNK_SYMBOLS {
            let product = field.mul_log(symbol(chunk, j), log_c);
            chunk.lo[j] = product as u8;
            chunk.hi[j] = (product >> 8) as u8;
        }
    }
}

pub(super) fn xor(dst: &mut [Chunk], src: &[Chunk]) {
    for (d, s) in dst.iter_mut().zip(src) {
        for (a, b) in d.lo.iter_mut().zip(&s.lo) {
            *a ^= b;
        }
        for (a, b) in d.hi.iter_mut().zip(&s.hi) {
            *a ^= b;
        }
    }
}

/// Whole chunks of plain bytes -> internal layout.
pub(super) fn load(src: &[u8], dst: &mut [Chunk]) {
    for (bytes, chunk) in src.chunks_exact(64).zip(dst) {
        load_partial(bytes, chunk);
    }
}

/// Up to 64 plain bytes (an even count) into one chunk, zeroing the symbols after them.
pub(super) fn load_partial(src: &[u8], chunk: &mut Chunk) {
    *chunk = Chunk::default();
    for (j, pair) in src.chunks_exact(2).enumerate() {
        chunk.lo[j] = pair[0];
        chunk.hi[j] = pair[1];
    }
}

/// Whole chunks of internal layout -> plain bytes.
pub(super) fn store(src: &[Chunk], dst: &mut [u8]) {
    for (chunk, bytes) in src.iter().zip(dst.chunks_exact_mut(64)) {
        store_partial(chunk, bytes);
    }
}

/// The first `dst.len() / 2` symbols of one chunk as plain bytes.
pub(super) fn store_partial(chunk: &Chunk, dst: &mut [u8]) {
    for (j, pair) in dst.chunks_exact_mut(2).enumerate() {
        pair[0] = chunk.lo[j];
        pair[1] = chunk.hi[j];
    }
}
