//! GF(2^16) Reed–Solomon erasure code with O(n log n) encoding and decoding (Leopard-RS
//! style), for blocks of up to 65535 shards.
//!
//! # Construction
//!
//! Lin, Chung and Han, "Novel polynomial basis and its application to Reed–Solomon erasure
//! codes" (FOCS 2014). With a basis `v_0 .. v_15` of GF(2^16) over GF(2), point `j` is
//! `ω_j = Σ j_b·v_b`, `W_i = span(v_0 .. v_(i-1))`, `s_i(x) = Π_{a ∈ W_i} (x - a)` (GF(2)-linear)
//! and the "novel" polynomial basis is `X_j(x) = Π_{b ∈ bits(j)} s_b(x) / s_b(v_b)`. A
//! polynomial of degree `< 2^t` in that basis is evaluated at the `2^t` points of a coset
//! `ω_base + W_t` by an additive FFT of `t` butterfly layers (`x ^= c·y; y ^= x`, with
//! `c = s_i(ω_r)` per block), and interpolated by running the layers backwards.
//!
//! **Field and basis choice** (this code is self-consistent only, not byte-compatible with
//! Leopard or any other implementation): GF(2)[x] / (x^16 + x^12 + x^3 + x + 1), elements
//! stored in the coordinates of the Cantor basis `v_0 = 1`, `v_i^2 + v_i = v_(i-1)` (each
//! `v_i` the numerically smallest root in polynomial form). In that basis `s_i(v_i) = 1`, the
//! integer `j` is the point `ω_j`, `ω_i + ω_j = ω_(i^j)`, and `s_i'(x) = 1`, so the formal
//! derivative in the novel basis costs XORs only. See [`field`] for the tables.
//!
//! # Codeword layouts
//!
//! A codeword is the vector of evaluations at points `ω_0 .. ω_(N-1)` (`N` a power of two)
//! of a polynomial of degree `< D`; some points carry shards, some are known zeros, some are
//! never transmitted. With `k` data and `m` parity shards:
//!
//! * **High rate** (preferred when `k >= m`; `M = 2^⌈log2 m⌉`, needs `M + k <= 65536`):
//!   parity at points `0..m` (points `m..M` are computed but never sent), data at `M..M+k`,
//!   zeros after. Encoding interpolates each `M`-point data chunk (IFFT on its coset),
//!   XORs the coefficient vectors and evaluates them on coset 0 (FFT): `O(k log M)`. The sum
//!   of those per-chunk codewords is orthogonal to all polynomials of degree `< M` over
//!   `W_N`, hence (the dual of an evaluation code on a whole subspace being an evaluation
//!   code) has degree `< N - M`.
//! * **Low rate** (preferred when `k < m`; `K = 2^⌈log2 k⌉`, needs `K + m <= 65536`): data
//!   at points `0..k`, zeros at `k..K`, parity at `K..K+m`; one IFFT of the data (degree
//!   `< K`), then one FFT per `K`-point parity chunk: `O(m log K)`. Points after `K + m` are
//!   never sent.
//! * **Direct** (the few `(k, m)` that fit neither, e.g. 33000 + 32000): data at `0..k`,
//!   parity at `k..k+m`, zeros after, degree `< N - m`. Encoding *is* decoding with every
//!   parity shard erased (the error locator of that pattern is cached): `O(N log N)`.
//!
//! # Decoding
//!
//! Let `E` be the erased points (missing shards plus never-sent points; at most `N - D` of
//! them whenever at least `k` shards arrived) and `Π(x) = Π_{e ∈ E} (x - ω_e)`. Then `f·Π` has
//! degree `< N` and is known everywhere (zero on `E`), so: multiply every received value by
//! `Π(ω_i)`, IFFT over all `N` points, take the formal derivative, FFT, and read
//! `f(ω_e) = (fΠ)'(ω_e) / Π'(ω_e)` at the missing data points. `log Π(ω_i)` (and `log Π'(ω_e)`
//! on `E`) is the XOR-convolution `Σ_{e ∈ E} log ω_(i^e)`, evaluated for all `i` with two
//! fast Walsh–Hadamard transforms mod 65535 ([`transform::error_locator_logs`]).
//!
//! # Performance
//!
//! Shards are converted into a 64-byte-chunk layout (32 low bytes, then 32 high bytes of 32
//! symbols) in work buffers kept across calls; every inner loop is a whole-shard butterfly
//! or multiply-add using split-nibble PSHUFB tables (AVX2 or SSSE3, chosen at runtime) with
//! a scalar log/exp fallback ([`kernels`]). Tables are process-wide and built on first use.

mod field;
mod kernels;
mod transform;

use super::{ErasureCode, FecError};
use field::{Multiplier, NibbleTable, SkewTables, MODULUS};
use kernels::{chunks_for, Chunk, Kernel};
use transform::{error_locator_logs, ShardBuf, Slots, Transforms};

/// Most shards (data + parity) one block can have.
pub const MAX_TOTAL_SHARDS: usize = 65535;

/// Number of evaluation points the field offers.
const FIELD_POINTS: usize = 1 << 16;

/// Where a block's shards sit among the evaluation points (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Layout {
    /// `chunk` = parity count rounded up to a power of two.
    HighRate {
        chunk: usize,
    },
    /// `chunk` = data count rounded up to a power of two.
    LowRate {
        chunk: usize,
    },
    Direct,
}

impl Layout {
    /// The preferred layout that fits in the field.
    fn choose(data: usize, parity: usize) -> Layout {
        let high = Layout::HighRate {
            chunk: parity.next_power_of_two(),
        };
        let low = Layout::LowRate {
            chunk: data.next_power_of_two(),
        };
        let preference = if data >= parity {
            [high, low]
        } else {
            [low, high]
        };
        preference
            .into_iter()
            .find(|layout| layout.span(data, parity) <= FIELD_POINTS)
            .unwrap_or(Layout::Direct)
    }

    /// Points up to the last one that carries a shard.
    fn span(self, data: usize, parity: usize) -> usize {
        match self {
            Layout::HighRate { chunk } => chunk + data,
            Layout::LowRate { chunk } => chunk + parity,
            Layout::Direct => data + parity,
        }
    }

    fn data_point(self, index: usize) -> usize {
        match self {
            Layout::HighRate { chunk } => chunk + index,
            Layout::LowRate { .. } | Layout::Direct => index,
        }
    }

    fn parity_point(self, index: usize, data: usize) -> usize {
        match self {
            Layout::HighRate { .. } => index,
            Layout::LowRate { chunk } => chunk + index,
            Layout::Direct => data + index,
        }
    }

    /// Points that are evaluated but never sent: erased in every decode.
    fn unsent_points(self, parity: usize, points: usize) -> std::ops::Range<usize> {
        match self {
            Layout::HighRate { chunk } => parity..chunk,
            Layout::LowRate { chunk } => chunk + parity..points,
            Layout::Direct => points..points,
        }
    }
}

/// GF(2^16) additive-FFT Reed–Solomon code for a fixed `(data, parity)` shape.
///
/// Reusable across blocks: tables are shared process-wide and work buffers are kept (and
/// regrown only when a block needs more room). Shard length must be even and non-zero.
pub struct Gf16Code {
    data: usize,
    parity: usize,
    layout: Layout,
    /// Transform size `N`: the span rounded up to a power of two.
    points: usize,
    kernel: Kernel,
    skews: SkewTables,
    encode_work: ShardBuf,
    encode_temp: ShardBuf,
    decode_work: ShardBuf,
    /// Per-point bookkeeping of one decode, kept to avoid allocating per block.
    scratch: DecodeScratch,
    /// Error-locator logs of "all parity erased", for the direct layout's encoder.
    direct_encode_locator: Vec<u32>,
}

/// Per-point vectors of a decode (length `points` or `points + 1`).
#[derive(Default)]
struct DecodeScratch {
    erased: Vec<bool>,
    locator: Vec<u32>,
    received: Vec<u32>,
    lost_data: Vec<u32>,
}

impl std::fmt::Debug for Gf16Code {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gf16Code")
            .field("data", &self.data)
            .field("parity", &self.parity)
            .field("layout", &self.layout)
            .field("points", &self.points)
            .field("kernel", &self.kernel)
            .finish()
    }
}

impl Gf16Code {
    /// A code with `data` data shards and `parity` recovery shards: both at least 1, at most
    /// [`MAX_TOTAL_SHARDS`] together.
    pub fn new(data: usize, parity: usize) -> Result<Self, FecError> {
        Self::check_counts(data, parity)?;
        Ok(Self::build(
            data,
            parity,
            Layout::choose(data, parity),
            Kernel::detect(),
        ))
    }

    /// As [`Gf16Code::new`] but never on the GFNI backend: the AVX2 baseline benchmarks
    /// measure it against in the same run.
    pub fn new_without_gfni(data: usize, parity: usize) -> Result<Self, FecError> {
        Self::check_counts(data, parity)?;
        Ok(Self::build(
            data,
            parity,
            Layout::choose(data, parity),
            Kernel::avx2_or_below(),
        ))
    }

    fn check_counts(data: usize, parity: usize) -> Result<(), FecError> {
        if data == 0 {
            return Err(FecError::InvalidParameters(
                "data shard count must be at least 1".into(),
            ));
        }
        if parity == 0 {
            return Err(FecError::InvalidParameters(
                "parity shard count must be at least 1".into(),
            ));
        }
        if data.saturating_add(parity) > MAX_TOTAL_SHARDS {
            return Err(FecError::InvalidParameters(format!(
                "data + parity shards must be at most {MAX_TOTAL_SHARDS}, got {data} + {parity}"
            )));
        }
        Ok(())
    }

    fn build(data: usize, parity: usize, layout: Layout, kernel: Kernel) -> Self {
        let points = layout.span(data, parity).next_power_of_two();
        // Build the shared decoder table now so the first lossy block pays no set-up.
        field::log_walsh(points.trailing_zeros());
        Gf16Code {
            data,
            parity,
            layout,
            points,
            kernel,
            skews: SkewTables::new(points),
            encode_work: ShardBuf::default(),
            encode_temp: ShardBuf::default(),
            decode_work: ShardBuf::default(),
            scratch: DecodeScratch::default(),
            direct_encode_locator: Vec::new(),
        }
    }

    /// The SIMD backend in use ("avx512-gfni", "avx2", "ssse3" or "scalar").
    pub fn backend(&self) -> &'static str {
        self.kernel.name()
    }

    fn check_shard_len(len: usize) -> Result<(), FecError> {
        if len == 0 {
            return Err(FecError::InvalidParameters(
                "shards must not be empty".into(),
            ));
        }
        if !len.is_multiple_of(2) {
            return Err(FecError::InvalidParameters(format!(
                "shard length must be even (2-byte GF(2^16) symbols), got {len}"
            )));
        }
        Ok(())
    }

    fn encode_high_rate(&mut self, chunk: usize, data: &[&[u8]], parity: &mut [&mut [u8]]) {
        let per_shard = chunks_for(data[0].len());
        self.encode_work.reshape(chunk, per_shard);
        self.encode_temp.reshape(chunk, per_shard);
        let transforms = Transforms {
            kernel: self.kernel,
            skews: &self.skews,
        };
        for (group_index, group) in data.chunks(chunk).enumerate() {
            let target = if group_index == 0 {
                &mut self.encode_work
            } else {
                &mut self.encode_temp
            };
            for (slot, shard) in group.iter().enumerate() {
                transforms.kernel.load(shard, target.shard_mut(slot));
            }
            // Group g sits on the coset starting at point (g + 1)·chunk.
            transforms.ifft(
                target,
                (group_index + 1) * chunk,
                chunk,
                Slots::Prefix(group.len()),
            );
            if group_index > 0 {
                transforms.kernel.xor(
                    self.encode_work.shards_mut(0, chunk),
                    self.encode_temp.shards(0, chunk),
                );
            }
        }
        transforms.fft(&mut self.encode_work, 0, chunk, Slots::Prefix(parity.len()));
        for (slot, shard) in parity.iter_mut().enumerate() {
            transforms.kernel.store(self.encode_work.shard(slot), shard);
        }
    }

    fn encode_low_rate(&mut self, chunk: usize, data: &[&[u8]], parity: &mut [&mut [u8]]) {
        let per_shard = chunks_for(data[0].len());
        self.encode_work.reshape(chunk, per_shard);
        self.encode_temp.reshape(chunk, per_shard);
        let transforms = Transforms {
            kernel: self.kernel,
            skews: &self.skews,
        };
        for (slot, shard) in data.iter().enumerate() {
            transforms
                .kernel
                .load(shard, self.encode_temp.shard_mut(slot));
        }
        transforms.ifft(&mut self.encode_temp, 0, chunk, Slots::Prefix(data.len()));
        for (group_index, group) in parity.chunks_mut(chunk).enumerate() {
            self.encode_work
                .shards_mut(0, chunk)
                .copy_from_slice(self.encode_temp.shards(0, chunk));
            transforms.fft(
                &mut self.encode_work,
                (group_index + 1) * chunk,
                chunk,
                Slots::Prefix(group.len()),
            );
            for (slot, shard) in group.iter_mut().enumerate() {
                transforms.kernel.store(self.encode_work.shard(slot), shard);
            }
        }
    }

    fn encode_direct(&mut self, data: &[&[u8]], parity: &mut [&mut [u8]]) {
        if self.direct_encode_locator.is_empty() {
            let mut erased = vec![false; self.points];
            erased[self.data..self.data + self.parity].fill(true);
            error_locator_logs(&erased, &mut self.direct_encode_locator);
        }
        let locator = &self.direct_encode_locator;
        let work = &mut self.decode_work;
        work.reshape(self.points, chunks_for(data[0].len()));
        for (point, shard) in data.iter().enumerate() {
            load_scaled(self.kernel, work.shard_mut(point), shard, locator[point]);
        }
        let transforms = Transforms {
            kernel: self.kernel,
            skews: &self.skews,
        };
        let span = self.data + self.parity;
        transforms.decode(
            work,
            self.points,
            Slots::Prefix(self.data),
            Slots::Prefix(span),
        );
        for (index, shard) in parity.iter_mut().enumerate() {
            let point = self.data + index;
            store_unscaled(self.kernel, work.shard_mut(point), shard, locator[point]);
        }
    }

    #[cfg(test)]
    fn with_choices(data: usize, parity: usize, layout: Option<Layout>, kernel: Kernel) -> Self {
        Self::check_counts(data, parity).unwrap();
        let layout = layout.unwrap_or(Layout::choose(data, parity));
        assert!(layout.span(data, parity) <= FIELD_POINTS);
        Self::build(data, parity, layout, kernel)
    }
}

impl ErasureCode for Gf16Code {
    fn data_shards(&self) -> usize {
        self.data
    }

    fn parity_shards(&self) -> usize {
        self.parity
    }

    fn encode(&mut self, data: &[&[u8]], parity: &mut [&mut [u8]]) -> Result<(), FecError> {
        if data.len() != self.data || parity.len() != self.parity {
            return Err(FecError::InvalidParameters(format!(
                "expected {} data and {} parity shards, got {} and {}",
                self.data,
                self.parity,
                data.len(),
                parity.len()
            )));
        }
        let len = data[0].len();
        Self::check_shard_len(len)?;
        let same_len = data.iter().all(|shard| shard.len() == len)
            && parity.iter().all(|shard| shard.len() == len);
        if !same_len {
            return Err(FecError::InvalidParameters(
                "all shards must have the same length".into(),
            ));
        }
        match self.layout {
            Layout::HighRate { chunk } => self.encode_high_rate(chunk, data, parity),
            Layout::LowRate { chunk } => self.encode_low_rate(chunk, data, parity),
            Layout::Direct => self.encode_direct(data, parity),
        }
        Ok(())
    }

    fn reconstruct(&mut self, shards: &mut [&mut [u8]], present: &[bool]) -> Result<(), FecError> {
        let total = self.data + self.parity;
        if shards.len() != total || present.len() != total {
            return Err(FecError::InvalidParameters(format!(
                "expected {total} shards and presence flags, got {} and {}",
                shards.len(),
                present.len()
            )));
        }
        let len = shards[0].len();
        Self::check_shard_len(len)?;
        if shards.iter().any(|shard| shard.len() != len) {
            return Err(FecError::InvalidParameters(
                "all shards must have the same length".into(),
            ));
        }
        let present_count = present.iter().filter(|&&p| p).count();
        if present_count < self.data {
            return Err(FecError::TooFewShards {
                needed: self.data,
                present: present_count,
            });
        }
        if present[..self.data].iter().all(|&p| p) {
            return Ok(());
        }

        let (layout, data, parity, points) = (self.layout, self.data, self.parity, self.points);
        let point_of = |shard: usize| {
            if shard < data {
                layout.data_point(shard)
            } else {
                layout.parity_point(shard - data, data)
            }
        };
        let scratch = &mut self.scratch;
        scratch.erased.clear();
        scratch.erased.resize(points, false);
        scratch.erased[layout.unsent_points(parity, points)].fill(true);
        for (shard, _) in present.iter().enumerate().filter(|(_, &p)| !p) {
            scratch.erased[point_of(shard)] = true;
        }
        error_locator_logs(&scratch.erased, &mut scratch.locator);
        let locator = &scratch.locator;

        let work = &mut self.decode_work;
        work.reshape(points, chunks_for(len));
        for (shard, bytes) in shards.iter().enumerate().filter(|(i, _)| present[*i]) {
            let point = point_of(shard);
            load_scaled(self.kernel, work.shard_mut(point), bytes, locator[point]);
        }
        let received = (0..total).filter(|&i| present[i]).map(point_of);
        Slots::count_into(&mut scratch.received, points, received);
        let lost_data = (0..data).filter(|&i| !present[i]).map(point_of);
        Slots::count_into(&mut scratch.lost_data, points, lost_data);
        let transforms = Transforms {
            kernel: self.kernel,
            skews: &self.skews,
        };
        transforms.decode(
            work,
            points,
            Slots::Counted(&scratch.received),
            Slots::Counted(&scratch.lost_data),
        );

        for (shard, bytes) in shards.iter_mut().enumerate().take(data) {
            if !present[shard] {
                let point = point_of(shard);
                store_unscaled(self.kernel, work.shard_mut(point), bytes, locator[point]);
            }
        }
        Ok(())
    }
}

/// Loads a received shard into its decode slot, multiplied by `Π(ω_point)` (given as a log).
fn load_scaled(kernel: Kernel, slot: &mut [Chunk], bytes: &[u8], locator_log: u32) {
    let log = locator_log as u16;
    let table = NibbleTable::for_log(log, field::tables());
    kernel.load(bytes, slot);
    kernel.mul_in_place(slot, Multiplier { log, table: &table });
}

/// Writes a decoded slot divided by `Π'(ω_point)` (given as a log) into `out`.
fn store_unscaled(kernel: Kernel, slot: &mut [Chunk], out: &mut [u8], locator_log: u32) {
    let log = ((MODULUS - locator_log) % MODULUS) as u16;
    let table = NibbleTable::for_log(log, field::tables());
    kernel.mul_in_place(slot, Multiplier { log, table: &table });
    kernel.store(slot, out);
}

#[cfg(test)]
mod tests;
