//! Whole-shard kernels on the internal shard layout, with runtime-selected SIMD.
//!
//! Internally a shard is a slice of 64-byte [`Chunk`]s, each holding 32 symbols as 32 low
//! bytes followed by 32 high bytes (the Leopard layout), so PSHUFB can look up all four
//! nibbles of 32 (AVX2) or 16 (SSSE3) symbols without shuffling bytes apart first.
//! [`Kernel::load`] / [`Kernel::store`] convert from / to plain little-endian shard bytes,
//! zero-padding a final partial chunk.
//!
//! The backend is chosen once per code instance with `is_x86_feature_detected!`; the scalar
//! backend (log/exp tables) is the portable fallback and the reference the SIMD paths are
//! tested against.

mod scalar;

#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod gfni512;
#[cfg(target_arch = "x86_64")]
mod ssse3;

use super::field::{FieldTables, Multiplier};

/// Bytes per chunk (32 two-byte symbols).
pub(crate) const CHUNK_BYTES: usize = 64;
/// Symbols per chunk.
pub(crate) const CHUNK_SYMBOLS: usize = 32;

/// 32 symbols: low bytes then high bytes. The 64-byte alignment makes every SIMD load aligned.
#[repr(C, align(64))]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Chunk {
    pub lo: [u8; 32],
    pub hi: [u8; 32],
}

/// Chunks needed for a shard of `bytes` bytes.
pub(crate) fn chunks_for(bytes: usize) -> usize {
    bytes.div_ceil(CHUNK_BYTES)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Backend {
    Scalar,
    /// Only constructed after `is_x86_feature_detected!("ssse3")` succeeded.
    Ssse3,
    /// Only constructed after `is_x86_feature_detected!("avx2")` succeeded.
    Avx2,
    /// Only constructed after AVX2, AVX-512F and GFNI were all detected (layout conversion
    /// stays on the AVX2 code).
    Avx512Gfni,
}

/// A kernel backend the running CPU supports (the constructors guarantee it).
#[derive(Clone, Copy)]
pub(crate) struct Kernel {
    backend: Backend,
    field: &'static FieldTables,
}

impl std::fmt::Debug for Kernel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl Kernel {
    /// The fastest backend this CPU runs.
    pub fn detect() -> Self {
        Self::best_up_to(Backend::Avx512Gfni)
    }

    /// AVX2 (or below) even where GFNI exists; lets tests and benchmarks compare the two.
    pub fn avx2_or_below() -> Self {
        Self::best_up_to(Backend::Avx2)
    }

    /// The portable log/exp backend (test-only switch: production always takes `detect`).
    #[cfg(test)]
    pub fn scalar() -> Self {
        Self::best_up_to(Backend::Scalar)
    }

    /// SSSE3 if the CPU has it (else scalar); lets tests cover the 128-bit path on AVX2 hosts.
    #[cfg(test)]
    pub fn ssse3_or_scalar() -> Self {
        Self::best_up_to(Backend::Ssse3)
    }

    fn best_up_to(limit: Backend) -> Self {
        let field = super::field::tables();
        let backend = Self::probe(limit);
        Kernel { backend, field }
    }

    #[cfg(target_arch = "x86_64")]
    fn probe(limit: Backend) -> Backend {
        let avx2 = is_x86_feature_detected!("avx2");
        if limit == Backend::Avx512Gfni
            && avx2
            && is_x86_feature_detected!("avx512f")
            && is_x86_feature_detected!("gfni")
        {
            Backend::Avx512Gfni
        } else if matches!(limit, Backend::Avx2 | Backend::Avx512Gfni) && avx2 {
            Backend::Avx2
        } else if limit != Backend::Scalar && is_x86_feature_detected!("ssse3") {
            Backend::Ssse3
        } else {
            Backend::Scalar
        }
    }

    #[cfg(not(target_arch = "x86_64"))]
    fn probe(_limit: Backend) -> Backend {
        Backend::Scalar
    }

    /// Backend name for diagnostics and benchmark output.
    pub fn name(&self) -> &'static str {
        match self.backend {
            Backend::Scalar => "scalar",
            Backend::Ssse3 => "ssse3",
            Backend::Avx2 => "avx2",
            Backend::Avx512Gfni => "avx512-gfni",
        }
    }

    /// `dst ^= c · src`.
    pub fn mul_add(&self, dst: &mut [Chunk], src: &[Chunk], c: Multiplier<'_>) {
        debug_assert_eq!(dst.len(), src.len());
        if c.is_zero() {
            return;
        }
        match self.backend {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `Backend::Avx2` exists only if AVX2 was detected at runtime.
            Backend::Avx2 => unsafe { avx2::mul_add(dst, src, c.table) },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `Backend::Avx512Gfni` exists only if AVX-512F and GFNI were detected.
            Backend::Avx512Gfni => unsafe { gfni512::mul_add(dst, src, c.table) },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `Backend::Ssse3` exists only if SSSE3 was detected at runtime.
            Backend::Ssse3 => unsafe { ssse3::mul_add(dst, src, c.table) },
            _ => scalar::mul_add(dst, src, c.log, self.field),
        }
    }

    /// `buf = c · buf`.
    pub fn mul_in_place(&self, buf: &mut [Chunk], c: Multiplier<'_>) {
        if c.is_zero() {
            buf.fill(Chunk::default());
            return;
        }
        match self.backend {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `Backend::Avx2` exists only if AVX2 was detected at runtime.
            Backend::Avx2 => unsafe { avx2::mul_in_place(buf, c.table) },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `Backend::Avx512Gfni` exists only if AVX-512F and GFNI were detected.
            Backend::Avx512Gfni => unsafe { gfni512::mul_in_place(buf, c.table) },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `Backend::Ssse3` exists only if SSSE3 was detected at runtime.
            Backend::Ssse3 => unsafe { ssse3::mul_in_place(buf, c.table) },
            _ => scalar::mul_in_place(buf, c.log, self.field),
        }
    }

    /// Forward-transform butterfly: `x ^= c · y; y ^= x`.
    pub fn fft_butterfly(&self, x: &mut [Chunk], y: &mut [Chunk], c: Multiplier<'_>) {
        debug_assert_eq!(x.len(), y.len());
        if c.is_zero() {
            self.xor(y, x);
            return;
        }
        match self.backend {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `Backend::Avx2` exists only if AVX2 was detected at runtime.
            Backend::Avx2 => unsafe { avx2::fft_butterfly(x, y, c.table) },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `Backend::Avx512Gfni` exists only if AVX-512F and GFNI were detected.
            Backend::Avx512Gfni => unsafe { gfni512::fft_butterfly(x, y, c.table) },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `Backend::Ssse3` exists only if SSSE3 was detected at runtime.
            Backend::Ssse3 => unsafe { ssse3::fft_butterfly(x, y, c.table) },
            _ => {
                scalar::mul_add(x, y, c.log, self.field);
                scalar::xor(y, x);
            }
        }
    }

    /// Inverse-transform butterfly: `y ^= x; x ^= c · y`.
    pub fn ifft_butterfly(&self, x: &mut [Chunk], y: &mut [Chunk], c: Multiplier<'_>) {
        debug_assert_eq!(x.len(), y.len());
        if c.is_zero() {
            self.xor(y, x);
            return;
        }
        match self.backend {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `Backend::Avx2` exists only if AVX2 was detected at runtime.
            Backend::Avx2 => unsafe { avx2::ifft_butterfly(x, y, c.table) },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `Backend::Avx512Gfni` exists only if AVX-512F and GFNI were detected.
            Backend::Avx512Gfni => unsafe { gfni512::ifft_butterfly(x, y, c.table) },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `Backend::Ssse3` exists only if SSSE3 was detected at runtime.
            Backend::Ssse3 => unsafe { ssse3::ifft_butterfly(x, y, c.table) },
            _ => {
                scalar::xor(y, x);
                scalar::mul_add(x, y, c.log, self.field);
            }
        }
    }

    /// `dst ^= src`.
    pub fn xor(&self, dst: &mut [Chunk], src: &[Chunk]) {
        debug_assert_eq!(dst.len(), src.len());
        match self.backend {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `Backend::Avx2` exists only if AVX2 was detected at runtime.
            Backend::Avx2 => unsafe { avx2::xor(dst, src) },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `Backend::Avx512Gfni` exists only if AVX-512F and GFNI were detected.
            Backend::Avx512Gfni => unsafe { gfni512::xor(dst, src) },
            _ => scalar::xor(dst, src),
        }
    }

    /// Plain shard bytes -> internal layout; `dst` has `chunks_for(src.len())` chunks and the
    /// padding after the last symbol is zeroed. `src.len()` must be even.
    pub fn load(&self, src: &[u8], dst: &mut [Chunk]) {
        debug_assert_eq!(dst.len(), chunks_for(src.len()));
        let full = src.len() / CHUNK_BYTES;
        let (body, tail) = src.split_at(full * CHUNK_BYTES);
        match self.backend {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: both backends exist only if AVX2 was detected at runtime.
            Backend::Avx2 | Backend::Avx512Gfni => unsafe { avx2::load(body, &mut dst[..full]) },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `Backend::Ssse3` exists only if SSSE3 was detected at runtime.
            Backend::Ssse3 => unsafe { ssse3::load(body, &mut dst[..full]) },
            _ => scalar::load(body, &mut dst[..full]),
        }
        if !tail.is_empty() {
            scalar::load_partial(tail, &mut dst[full]);
        }
    }

    /// Internal layout -> plain shard bytes (the inverse of [`Kernel::load`]).
    pub fn store(&self, src: &[Chunk], dst: &mut [u8]) {
        debug_assert_eq!(src.len(), chunks_for(dst.len()));
        let full = dst.len() / CHUNK_BYTES;
        let (body, tail) = dst.split_at_mut(full * CHUNK_BYTES);
        match self.backend {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: both backends exist only if AVX2 was detected at runtime.
            Backend::Avx2 | Backend::Avx512Gfni => unsafe { avx2::store(&src[..full], body) },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `Backend::Ssse3` exists only if SSSE3 was detected at runtime.
            Backend::Ssse3 => unsafe { ssse3::store(&src[..full], body) },
            _ => scalar::store(&src[..full], body),
        }
        if !tail.is_empty() {
            scalar::store_partial(&src[full], tail);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::field::{tables, NibbleTable, ZERO_LOG};
    use super::*;

    fn pseudo_random_chunks(count: usize, seed: u64) -> Vec<Chunk> {
        let mut state = seed | 1;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        };
        (0..count)
            .map(|_| {
                let mut chunk = Chunk::default();
                chunk.lo.iter_mut().for_each(|b| *b = next());
                chunk.hi.iter_mut().for_each(|b| *b = next());
                chunk
            })
            .collect()
    }

    fn symbols(chunks: &[Chunk]) -> Vec<u16> {
        chunks
            .iter()
            .flat_map(|c| (0..CHUNK_SYMBOLS).map(move |j| c.lo[j] as u16 | (c.hi[j] as u16) << 8))
            .collect()
    }

    fn all_kernels() -> Vec<Kernel> {
        vec![
            Kernel::scalar(),
            Kernel::ssse3_or_scalar(),
            Kernel::avx2_or_below(),
            Kernel::detect(),
        ]
    }

    #[test]
    fn every_backend_multiplies_like_the_field() {
        let field = tables();
        for kernel in all_kernels() {
            for log_c in [0u16, 1, 12_345, 65_534, ZERO_LOG] {
                let table = NibbleTable::for_log(log_c, field);
                let c = Multiplier {
                    log: log_c,
                    table: &table,
                };
                let src = pseudo_random_chunks(5, 3 + log_c as u64);
                let dst0 = pseudo_random_chunks(5, 99);

                let mut dst = dst0.clone();
                kernel.mul_add(&mut dst, &src, c);
                let expected: Vec<u16> = symbols(&dst0)
                    .iter()
                    .zip(symbols(&src))
                    .map(|(&d, s)| d ^ field.mul_log(s, log_c))
                    .collect();
                assert_eq!(symbols(&dst), expected, "{} mul_add", kernel.name());

                let mut scaled = src.clone();
                kernel.mul_in_place(&mut scaled, c);
                let expected: Vec<u16> = symbols(&src)
                    .iter()
                    .map(|&s| field.mul_log(s, log_c))
                    .collect();
                assert_eq!(symbols(&scaled), expected, "{} mul_in_place", kernel.name());

                let (mut x, mut y) = (dst0.clone(), src.clone());
                kernel.fft_butterfly(&mut x, &mut y, c);
                kernel.ifft_butterfly(&mut x, &mut y, c);
                assert_eq!(
                    (x, y),
                    (dst0.clone(), src.clone()),
                    "{} inverse",
                    kernel.name()
                );
            }
        }
    }

    #[test]
    fn load_and_store_round_trip_with_zero_padding() {
        for kernel in all_kernels() {
            for len in [2usize, 62, 64, 66, 128, 190, 1408] {
                let bytes: Vec<u8> = (0..len).map(|i| (i * 31 + 7) as u8).collect();
                let mut chunks = vec![Chunk::default(); chunks_for(len)];
                chunks.fill(pseudo_random_chunks(1, 5)[0]);
                kernel.load(&bytes, &mut chunks);
                let syms = symbols(&chunks);
                for (j, &s) in syms.iter().enumerate() {
                    let expected = if 2 * j < len {
                        bytes[2 * j] as u16 | (bytes[2 * j + 1] as u16) << 8
                    } else {
                        0
                    };
                    assert_eq!(s, expected, "{} len {len} symbol {j}", kernel.name());
                }
                let mut back = vec![0u8; len];
                kernel.store(&chunks, &mut back);
                assert_eq!(back, bytes, "{} len {len}", kernel.name());
            }
        }
    }
}
