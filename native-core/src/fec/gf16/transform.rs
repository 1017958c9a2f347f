//! The additive FFT / IFFT over shards, the novel-basis formal derivative, and the
//! Walsh–Hadamard error-locator evaluation.
//!
//! Buffer slot `j` of a transform with `base` holds the value at evaluation point
//! `ω_(base+j)` (FFT output / IFFT input) or the coefficient of the novel-basis polynomial
//! `X_j` (FFT input / IFFT output). Both transforms recurse depth-first, so once a
//! sub-transform fits in cache all of its layers run there.

use super::field::{fwht, log_walsh, SkewTables, MODULUS};
use super::kernels::{Chunk, Kernel};

/// `shards` equally sized shards in the internal layout, in one 64-byte-aligned allocation.
#[derive(Default)]
pub(crate) struct ShardBuf {
    chunks: Vec<Chunk>,
    per_shard: usize,
}

impl ShardBuf {
    /// Makes room for `shards` shards of `per_shard` chunks; keeps the allocation when it
    /// already fits. Contents afterwards are unspecified.
    pub fn reshape(&mut self, shards: usize, per_shard: usize) {
        let total = shards * per_shard;
        if self.chunks.len() < total {
            self.chunks = vec![Chunk::default(); total];
        }
        self.per_shard = per_shard;
    }

    pub fn shard(&self, index: usize) -> &[Chunk] {
        &self.chunks[index * self.per_shard..(index + 1) * self.per_shard]
    }

    pub fn shard_mut(&mut self, index: usize) -> &mut [Chunk] {
        &mut self.chunks[index * self.per_shard..(index + 1) * self.per_shard]
    }

    /// The adjacent shard ranges `start..start + count` and `start + count..start + 2·count`,
    /// mutably. A butterfly layer treats all shard pairs of a block alike, so one kernel
    /// call covers the whole block.
    pub fn halves_mut(&mut self, start: usize, count: usize) -> (&mut [Chunk], &mut [Chunk]) {
        let per_shard = self.per_shard;
        let (low, high) = self.chunks[start * per_shard..(start + 2 * count) * per_shard]
            .split_at_mut(count * per_shard);
        (low, high)
    }

    /// Shards `first..first + count` (all chunks, contiguous).
    pub fn shards(&self, first: usize, count: usize) -> &[Chunk] {
        &self.chunks[first * self.per_shard..(first + count) * self.per_shard]
    }

    /// Shards `first..first + count` (all chunks, contiguous), mutably.
    pub fn shards_mut(&mut self, first: usize, count: usize) -> &mut [Chunk] {
        &mut self.chunks[first * self.per_shard..(first + count) * self.per_shard]
    }
}

/// A set of buffer slots: the FFT outputs a caller needs, or the IFFT inputs that may be
/// nonzero.
#[derive(Clone, Copy)]
pub(crate) enum Slots<'a> {
    /// Slots `0..count`.
    Prefix(usize),
    /// Slots `j` with `counts[j + 1] > counts[j]`: `counts[j]` is how many members lie
    /// below `j` (length `n + 1`).
    Counted(&'a [u32]),
}

impl Slots<'_> {
    /// Fills `counts` with the prefix counts of `members` (any order) among `n` slots, as
    /// [`Slots::Counted`] expects.
    pub fn count_into(counts: &mut Vec<u32>, n: usize, members: impl Iterator<Item = usize>) {
        counts.clear();
        counts.resize(n + 1, 0);
        for member in members {
            counts[member + 1] = 1;
        }
        for slot in 0..n {
            counts[slot + 1] += counts[slot];
        }
    }

    /// Whether any slot in `start..end` is a member.
    #[inline]
    fn any(self, start: usize, end: usize) -> bool {
        match self {
            Slots::Prefix(count) => start < count,
            Slots::Counted(counts) => counts[end] > counts[start],
        }
    }
}

/// Runs the transforms with one kernel backend and the skew constants of a point range.
pub(crate) struct Transforms<'a> {
    pub kernel: Kernel,
    pub skews: &'a SkewTables,
}

impl Transforms<'_> {
    /// Evaluates the polynomial with novel-basis coefficients in slots `0..n` at the points
    /// `ω_(base+j)`, in place. Only `wanted` slots must come out right (others may hold
    /// garbage), which prunes whole sub-transforms.
    pub fn fft(&self, buf: &mut ShardBuf, base: usize, n: usize, wanted: Slots<'_>) {
        debug_assert!(n.is_power_of_two() && base.is_multiple_of(n));
        self.fft_block(buf, base, 0, n, wanted);
    }

    fn fft_block(
        &self,
        buf: &mut ShardBuf,
        base: usize,
        start: usize,
        n: usize,
        wanted: Slots<'_>,
    ) {
        if n == 1 || !wanted.any(start, start + n) {
            return;
        }
        let half = n / 2;
        // D = D0 + s_i·D1 with s_i(ω) = c on the first half and c + 1 on the second.
        let c = self.skews.get(base + start + half - 1);
        let (x, y) = buf.halves_mut(start, half);
        if wanted.any(start + half, start + n) {
            self.kernel.fft_butterfly(x, y, c);
        } else {
            self.kernel.mul_add(x, y, c);
        }
        self.fft_block(buf, base, start, half, wanted);
        self.fft_block(buf, base, start + half, half, wanted);
    }

    /// Interpolates the values at points `ω_(base+j)` in slots `0..n` into novel-basis
    /// coefficients, in place. Slots outside `nonzero` are taken as zero without being read,
    /// so they need not be initialised.
    pub fn ifft(&self, buf: &mut ShardBuf, base: usize, n: usize, nonzero: Slots<'_>) {
        debug_assert!(n.is_power_of_two() && base.is_multiple_of(n));
        if nonzero.any(0, n) {
            self.ifft_block(buf, base, 0, n, nonzero);
        } else {
            buf.shards_mut(0, n).fill(Chunk::default());
        }
    }

    /// IFFT of slots `start..start + n`, some of which are nonzero.
    fn ifft_block(
        &self,
        buf: &mut ShardBuf,
        base: usize,
        start: usize,
        n: usize,
        nonzero: Slots<'_>,
    ) {
        if n == 1 {
            return;
        }
        let half = n / 2;
        let c = self.skews.get(base + start + half - 1);
        let first_nonzero = nonzero.any(start, start + half);
        let second_nonzero = nonzero.any(start + half, start + n);
        if first_nonzero {
            self.ifft_block(buf, base, start, half, nonzero);
        }
        if second_nonzero {
            self.ifft_block(buf, base, start + half, half, nonzero);
        }
        // An all-zero half interpolates to zero; the butterfly `y ^= x; x ^= c·y` then
        // reduces to a copy and a multiply-add, or to a plain multiply.
        let (x, y) = buf.halves_mut(start, half);
        match (first_nonzero, second_nonzero) {
            (true, true) => self.kernel.ifft_butterfly(x, y, c),
            (true, false) => {
                y.copy_from_slice(x);
                self.kernel.mul_add(x, y, c);
            }
            _ => {
                x.copy_from_slice(y);
                self.kernel.mul_in_place(x, c);
            }
        }
    }
}

impl Transforms<'_> {
    /// The erasure-decoding core over `n` points at base 0: slots hold the values of `f·Π`
    /// (zero outside `nonzero`) on entry; on exit each `wanted` slot that is a root of `f·Π`
    /// (an erased point) holds `(f·Π)'` there.
    pub fn decode(&self, buf: &mut ShardBuf, n: usize, nonzero: Slots<'_>, wanted: Slots<'_>) {
        self.ifft(buf, 0, n, nonzero);
        add_formal_derivative(self.kernel, buf, n);
        self.fft(buf, 0, n, wanted);
    }
}

/// Replaces the novel-basis coefficients `D` in slots `0..n` by those of `D + D'`.
///
/// With a Cantor basis `s_b'(x) = 1`, so `X_l' = Σ_{b ∈ bits(l)} X_(l - 2^b)` and the
/// derivative's coefficient `l` is `Σ_{b ∉ bits(l)} d_(l + 2^b)`: XORs only. The loop below
/// (range XORs, cache friendly) also keeps `d_l` itself; that extra `D` is harmless for the
/// decoder, which evaluates the result only at roots of `D`.
pub(crate) fn add_formal_derivative(kernel: Kernel, buf: &mut ShardBuf, n: usize) {
    for i in 1..n {
        let width = 1 << i.trailing_zeros();
        let (low, high) = buf.halves_mut(i - width, width);
        kernel.xor(low, high);
    }
}

/// Logs (mod 65535) of the error locator `Π(x) = Π_{e erased} (x - ω_e)` where it does not
/// vanish, and of its derivative `Π'(ω_e)` at the erased points: the same XOR-convolution
/// `Σ_e log(ω_(i^e))` gives both once `log 0` is read as 0. Evaluated with two Walsh–Hadamard
/// transforms over `erased.len()` (a power of two) points. The logs go into `logs`.
pub(crate) fn error_locator_logs(erased: &[bool], logs: &mut Vec<u32>) {
    let n = erased.len();
    debug_assert!(n.is_power_of_two());
    let transformed_logs = log_walsh(n.trailing_zeros());
    logs.clear();
    logs.extend(erased.iter().map(|&e| e as u32));
    fwht(logs);
    for (value, &walsh) in logs.iter_mut().zip(transformed_logs) {
        // Both factors are below 2^16, so the product fits in u32.
        *value = (*value * walsh) % MODULUS;
    }
    fwht(logs);
}

#[cfg(test)]
mod tests {
    use super::super::field::{tables, ZERO_LOG};
    use super::super::kernels::CHUNK_SYMBOLS;
    use super::*;

    fn buffer_from_symbols(values: &[u16]) -> ShardBuf {
        let mut buf = ShardBuf::default();
        buf.reshape(values.len(), 1);
        for (i, &v) in values.iter().enumerate() {
            let chunk = &mut buf.shard_mut(i)[0];
            *chunk = Chunk::default();
            // Put the value in symbol 0 and a related one in symbol 31 to catch lane mixups.
            chunk.lo[0] = v as u8;
            chunk.hi[0] = (v >> 8) as u8;
            let other = v.rotate_left(5) ^ 0x5A5A;
            chunk.lo[CHUNK_SYMBOLS - 1] = other as u8;
            chunk.hi[CHUNK_SYMBOLS - 1] = (other >> 8) as u8;
        }
        buf
    }

    fn symbol0(buf: &ShardBuf, index: usize) -> u16 {
        let chunk = &buf.shard(index)[0];
        chunk.lo[0] as u16 | (chunk.hi[0] as u16) << 8
    }

    /// Evaluates a novel-basis polynomial at one point straight from the definition
    /// `X_j(x) = Π_{b ∈ bits(j)} s_b(x)`.
    fn evaluate_novel(coefficients: &[u16], point: u16) -> u16 {
        let field = tables();
        let mut vanishing = [0u16; 16];
        let mut value = point;
        for slot in vanishing.iter_mut() {
            *slot = value;
            value = field.mul(value, value) ^ value;
        }
        let mut total = 0u16;
        for (j, &coefficient) in coefficients.iter().enumerate() {
            let mut basis_value = 1u16;
            for (b, &s) in vanishing.iter().enumerate() {
                if j >> b & 1 == 1 {
                    basis_value = field.mul(basis_value, s);
                }
            }
            total ^= field.mul(coefficient, basis_value);
        }
        total
    }

    #[test]
    fn fft_evaluates_the_novel_basis_polynomial_and_ifft_inverts_it() {
        let kernel = Kernel::detect();
        let skews = SkewTables::new(256);
        let transforms = Transforms {
            kernel,
            skews: &skews,
        };
        let coefficients: Vec<u16> = (0..32u32).map(|i| (i * 40_503 + 17) as u16).collect();
        for base in [0usize, 32, 96, 224] {
            let mut buf = buffer_from_symbols(&coefficients);
            transforms.fft(&mut buf, base, 32, Slots::Prefix(32));
            for j in 0..32 {
                assert_eq!(
                    symbol0(&buf, j),
                    evaluate_novel(&coefficients, (base + j) as u16),
                    "base {base} point {j}"
                );
            }
            transforms.ifft(&mut buf, base, 32, Slots::Prefix(32));
            let original = buffer_from_symbols(&coefficients);
            for j in 0..32 {
                assert_eq!(buf.shard(j), original.shard(j));
            }
        }
    }

    #[test]
    fn truncated_transforms_agree_with_full_ones() {
        let kernel = Kernel::detect();
        let skews = SkewTables::new(64);
        let transforms = Transforms {
            kernel,
            skews: &skews,
        };
        let values: Vec<u16> = (0..64u32).map(|i| (i * 7_777 + 3) as u16).collect();
        for nonzero in [1usize, 5, 32, 33, 63] {
            let mut zero_padded: Vec<u16> = values.clone();
            zero_padded[nonzero..].fill(0);
            let mut full = buffer_from_symbols(&zero_padded);
            transforms.ifft(&mut full, 0, 64, Slots::Prefix(64));
            // Garbage beyond `nonzero` must not be read.
            let mut truncated = buffer_from_symbols(&values);
            transforms.ifft(&mut truncated, 0, 64, Slots::Prefix(nonzero));
            for j in 0..64 {
                assert_eq!(
                    symbol0(&truncated, j),
                    symbol0(&full, j),
                    "ifft nonzero {nonzero}"
                );
            }
            let mut evaluated = buffer_from_symbols(&values);
            transforms.fft(&mut evaluated, 0, 64, Slots::Prefix(64));
            let mut pruned = buffer_from_symbols(&values);
            transforms.fft(&mut pruned, 0, 64, Slots::Prefix(nonzero));
            for j in 0..nonzero {
                assert_eq!(
                    symbol0(&pruned, j),
                    symbol0(&evaluated, j),
                    "fft needed {nonzero}"
                );
            }
            // A scattered set: every `nonzero`-th slot plus the last one.
            let is_wanted = |j: usize| j.is_multiple_of(nonzero) || j == 63;
            let mut counts = Vec::new();
            Slots::count_into(&mut counts, 64, (0..64).filter(|&j| is_wanted(j)));
            let mut scattered = buffer_from_symbols(&values);
            transforms.fft(&mut scattered, 0, 64, Slots::Counted(&counts));
            for j in (0..64).filter(|&j| is_wanted(j)) {
                assert_eq!(
                    symbol0(&scattered, j),
                    symbol0(&evaluated, j),
                    "fft every {nonzero}"
                );
            }
        }
    }

    #[test]
    fn derivative_matches_the_definition_at_roots() {
        // D(x) = Π (x - ω_e) for a few e: D' at each root e equals Π_{f≠e} (ω_e - ω_f).
        let field = tables();
        let roots = [3u16, 10, 17, 40, 41];
        let n = 64;
        let mut values = vec![0u16; n];
        for (point, value) in values.iter_mut().enumerate() {
            *value = roots
                .iter()
                .fold(1, |acc, &r| field.mul(acc, point as u16 ^ r));
        }
        let kernel = Kernel::scalar();
        let skews = SkewTables::new(n);
        let transforms = Transforms {
            kernel,
            skews: &skews,
        };
        let mut buf = buffer_from_symbols(&values);
        transforms.ifft(&mut buf, 0, n, Slots::Prefix(n));
        add_formal_derivative(kernel, &mut buf, n);
        transforms.fft(&mut buf, 0, n, Slots::Prefix(n));
        for &e in &roots {
            let expected = roots
                .iter()
                .filter(|&&f| f != e)
                .fold(1, |acc, &f| field.mul(acc, e ^ f));
            assert_eq!(symbol0(&buf, e as usize), expected, "root {e}");
        }
    }

    #[test]
    fn error_locator_matches_direct_products() {
        let field = tables();
        let n = 128;
        let mut erased = vec![false; n];
        for e in [0usize, 5, 6, 77, 127] {
            erased[e] = true;
        }
        let mut logs = Vec::new();
        error_locator_logs(&erased, &mut logs);
        for (i, &log) in logs.iter().enumerate() {
            let product = (0..n)
                .filter(|&e| erased[e] && e != i)
                .fold(1u16, |acc, e| field.mul(acc, (i ^ e) as u16));
            let expected = field.log[product as usize];
            assert_ne!(expected, ZERO_LOG);
            assert_eq!(log % MODULUS, expected as u32 % MODULUS, "point {i}");
        }
    }
}
