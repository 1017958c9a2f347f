//! GF(2^8) Cauchy Reed–Solomon erasure code, byte-identical to nanors (the
//! FEC used by Moonlight / GameStream video packets).
//!
//! Construction (all arithmetic in GF(2^8) with reducing polynomial 0x11D,
//! generator α = 2, addition = XOR):
//!
//! * systematic — the `D` data shards are sent unchanged;
//! * parity shard `j` (`0 ≤ j < P`) is `Σ_i C[j][i] · data_i`, byte position by
//!   byte position, with Cauchy coefficients `C[j][i] = ((P + i) XOR j)^-1`,
//!   i.e. x-coordinates `P..P+D` and y-coordinates `0..P`;
//! * limits `D ≥ 1`, `P ≥ 1`, `D + P ≤ 255`.
//!
//! Every square submatrix of a Cauchy matrix is invertible, so any `D` of the
//! `D + P` shards rebuild the data. The bulk multiply-accumulate runs on Intel
//! ISA-L's SIMD kernels (`ec_init_tables` + `ec_encode_data`, which share our
//! field polynomial); matrix set-up and inversion are small and done here.
//! [`encode_scalar_reference`] is a plain log/exp-table implementation of the
//! same code, kept as a benchmark baseline and a test oracle.
//!
//! Where the CPU has GFNI and AVX-512 the multiply-accumulate runs on
//! [`gfni`] instead (one affine instruction per coefficient and 64 bytes);
//! [`Kernel`] names the choice, made once per code at construction.

pub mod gfni;

use super::{ErasureCode, FecError};

/// Largest `D + P`: every shard needs a distinct nonzero field element as its
/// Cauchy x- or y-coordinate, and GF(2^8) has 256 elements.
pub const MAX_TOTAL_SHARDS: usize = 255;

/// Bytes of ISA-L lookup table per matrix coefficient (two 16-entry nibble tables).
const ISAL_TABLE_BYTES_PER_COEFFICIENT: usize = 32;

/// Erasure patterns whose recovery tables are kept. A burst loss usually hits
/// consecutive blocks the same way, and four entries bound the cache at
/// `4 · 32 · D · e` bytes (about 1.2 MB for D = 212, e = 43).
const DECODE_PLAN_CACHE_CAPACITY: usize = 4;

/// Reducing polynomial x^8 + x^4 + x^3 + x^2 + 1, the one nanors and ISA-L use.
const FIELD_POLYNOMIAL: u16 = 0x11D;

struct FieldTables {
    /// `exp[n] = α^n`, doubled in length so `exp[log a + log b]` needs no modulo.
    exp: [u8; 512],
    /// `log[a]` for `a ≠ 0`; `log[0]` is unused.
    log: [u8; 256],
}

const fn build_field_tables() -> FieldTables {
    let mut exp = [0u8; 512];
    let mut log = [0u8; 256];
    let mut power: u16 = 1;
    let mut n = 0;
    while n < 255 {
        exp[n] = power as u8;
        exp[n + 255] = power as u8;
        log[power as usize] = n as u8;
        power <<= 1;
        if power & 0x100 != 0 {
            power ^= FIELD_POLYNOMIAL;
        }
        n += 1;
    }
    FieldTables { exp, log }
}

static FIELD: FieldTables = build_field_tables();

fn gf_mul(a: u8, b: u8) -> u8 {
    if a == 0 || b == 0 {
        return 0;
    }
    FIELD.exp[FIELD.log[a as usize] as usize + FIELD.log[b as usize] as usize]
}

/// `a / b`; callers never pass `b = 0`.
fn gf_div(a: u8, b: u8) -> u8 {
    gf_mul(a, gf_inv(b))
}

/// Multiplicative inverse; callers never pass 0 (it has none).
fn gf_inv(a: u8) -> u8 {
    debug_assert_ne!(a, 0, "0 has no inverse in GF(2^8)");
    FIELD.exp[255 - FIELD.log[a as usize] as usize]
}

/// nanors' coefficient for parity row `parity_row` and data column `data_column`.
/// The XOR is never 0 because `parity_shards + data_column ≥ parity_shards > parity_row`.
fn cauchy_coefficient(parity_shards: usize, parity_row: usize, data_column: usize) -> u8 {
    gf_inv(((parity_shards + data_column) ^ parity_row) as u8)
}

fn check_shard_counts(data_shards: usize, parity_shards: usize) -> Result<(), FecError> {
    if data_shards == 0 {
        return Err(FecError::InvalidParameters(
            "data shards must be at least 1".into(),
        ));
    }
    if parity_shards == 0 {
        return Err(FecError::InvalidParameters(
            "parity shards must be at least 1".into(),
        ));
    }
    if data_shards + parity_shards > MAX_TOTAL_SHARDS {
        return Err(FecError::InvalidParameters(format!(
            "data + parity shards is {}, at most {MAX_TOTAL_SHARDS} allowed",
            data_shards + parity_shards
        )));
    }
    Ok(())
}

/// Checks that every shard has the same, nonzero length that ISA-L's `int`
/// length parameter can carry, and returns it.
fn common_shard_length(mut lengths: impl Iterator<Item = usize>) -> Result<usize, FecError> {
    let Some(first) = lengths.next() else {
        return Err(FecError::InvalidParameters("no shards given".into()));
    };
    if first == 0 {
        return Err(FecError::InvalidParameters(
            "shards must not be empty".into(),
        ));
    }
    if first > i32::MAX as usize {
        return Err(FecError::InvalidParameters(format!(
            "shard length {first} exceeds {} bytes",
            i32::MAX
        )));
    }
    if let Some(other) = lengths.find(|&length| length != first) {
        return Err(FecError::InvalidParameters(format!(
            "shard lengths differ ({first} vs {other} bytes)"
        )));
    }
    Ok(first)
}

/// Plain scalar encoder for the same code: log/exp tables and a byte loop.
/// Benchmark baseline and test oracle for [`Gf8Code::encode`].
///
/// # Panics
/// If the shard counts break the limits or the shard lengths differ; this is
/// a reference routine, production callers use [`Gf8Code`].
pub fn encode_scalar_reference(data: &[&[u8]], parity: &mut [&mut [u8]]) {
    if let Err(error) = check_shard_counts(data.len(), parity.len()) {
        panic!("encode_scalar_reference: {error}");
    }
    let shard_len = data[0].len();
    assert!(
        data.iter().all(|shard| shard.len() == shard_len)
            && parity.iter().all(|shard| shard.len() == shard_len),
        "encode_scalar_reference: shard lengths differ"
    );
    let parity_shards = parity.len();
    for (parity_row, output) in parity.iter_mut().enumerate() {
        output.fill(0);
        for (data_column, input) in data.iter().enumerate() {
            let coefficient = cauchy_coefficient(parity_shards, parity_row, data_column);
            let log_coefficient = FIELD.log[coefficient as usize] as usize;
            for (out_byte, &in_byte) in output.iter_mut().zip(input.iter()) {
                if in_byte != 0 {
                    *out_byte ^= FIELD.exp[log_coefficient + FIELD.log[in_byte as usize] as usize];
                }
            }
        }
    }
}

/// Recovery tables for one erasure pattern.
struct DecodePlan {
    /// Bit `i` set when shard `i` is one of the `D` sources used.
    source_mask: [u64; 4],
    /// Shard indices read, ascending: the present data shards, then the parity
    /// shards standing in for the missing ones.
    sources: Vec<usize>,
    /// Data shard indices rebuilt, ascending.
    missing_data: Vec<usize>,
    /// The `missing_data.len() × D` recovery matrix, prepared for the kernel.
    tables: MultiplyTables,
}

/// nanors-compatible GF(2^8) Reed–Solomon code for one `(D, P)` shape.
///
/// Holds the Cauchy matrix, its ISA-L tables and a small cache of recovery
/// tables, so reuse one instance per shape.
pub struct Gf8Code {
    data_shards: usize,
    parity_shards: usize,
    kernel: Kernel,
    /// `P × D`, row-major: `parity_matrix[j * D + i] = C[j][i]`.
    parity_matrix: Vec<u8>,
    encode_tables: MultiplyTables,
    /// Most recently used first.
    decode_plans: Vec<DecodePlan>,
}

impl Gf8Code {
    /// Code with `data_shards` data and `parity_shards` parity shards
    /// (`≥ 1` each, at most [`MAX_TOTAL_SHARDS`] together).
    pub fn new(data_shards: usize, parity_shards: usize) -> Result<Self, FecError> {
        Self::with_kernel(data_shards, parity_shards, Kernel::best_available())
    }

    /// As [`Gf8Code::new`] on a named kernel (benchmarks and tests compare
    /// them); a kernel this CPU lacks is an error.
    pub fn with_kernel(
        data_shards: usize,
        parity_shards: usize,
        kernel: Kernel,
    ) -> Result<Self, FecError> {
        check_shard_counts(data_shards, parity_shards)?;
        if !kernel.is_available() {
            return Err(FecError::InvalidParameters(format!(
                "the {} kernel needs CPU features this machine lacks",
                kernel.name()
            )));
        }
        let parity_matrix: Vec<u8> = (0..parity_shards)
            .flat_map(|row| {
                (0..data_shards).map(move |column| cauchy_coefficient(parity_shards, row, column))
            })
            .collect();
        let encode_tables = MultiplyTables::new(kernel, data_shards, parity_shards, &parity_matrix);
        Ok(Self {
            data_shards,
            parity_shards,
            kernel,
            parity_matrix,
            encode_tables,
            decode_plans: Vec::with_capacity(DECODE_PLAN_CACHE_CAPACITY),
        })
    }

    /// The multiply-accumulate kernel this code runs on.
    pub fn kernel(&self) -> Kernel {
        self.kernel
    }

    /// The `P × D` Cauchy coefficients, row-major (`[j * D + i] = C[j][i]`).
    pub fn parity_matrix(&self) -> &[u8] {
        &self.parity_matrix
    }

    /// Recovery plan for the erasure pattern in `present` (which must leave at
    /// least `D` shards), from the cache or freshly built and cached.
    fn decode_plan(&mut self, present: &[bool]) -> &DecodePlan {
        let data_shards = self.data_shards;
        let missing_data: Vec<usize> = (0..data_shards).filter(|&i| !present[i]).collect();
        // Present data shards plus the lowest-indexed present parity shards,
        // one per missing data shard.
        let sources: Vec<usize> = (0..data_shards)
            .filter(|&i| present[i])
            .chain(
                (data_shards..present.len())
                    .filter(|&i| present[i])
                    .take(missing_data.len()),
            )
            .collect();
        let mut source_mask = [0u64; 4];
        for &index in &sources {
            source_mask[index / 64] |= 1 << (index % 64);
        }

        if let Some(position) = self
            .decode_plans
            .iter()
            .position(|plan| plan.source_mask == source_mask)
        {
            self.decode_plans[..=position].rotate_right(1);
        } else {
            let recovery_matrix = self.recovery_matrix(&missing_data, &sources);
            let tables = MultiplyTables::new(
                self.kernel,
                data_shards,
                missing_data.len(),
                &recovery_matrix,
            );
            self.decode_plans.truncate(DECODE_PLAN_CACHE_CAPACITY - 1);
            self.decode_plans.insert(
                0,
                DecodePlan {
                    source_mask,
                    sources,
                    missing_data,
                    tables,
                },
            );
        }
        &self.decode_plans[0]
    }

    /// Rows, one per missing data shard, of coefficients over `sources` that
    /// rebuild that shard (the plan's recovery matrix, `e × D` row-major).
    ///
    /// Closed-form Cauchy algebra instead of Gaussian elimination, so it costs
    /// O(e·D) and has no singular case. With x_k = P + k for data column k,
    /// y_j = j for parity row j, E the `e` missing data columns, R the `e`
    /// chosen parity rows, K the known data columns and M = C[R][E]:
    /// * M^-1[a][b] = u_a · v_b / (x_a + y_b), where
    ///   u_a = Π_{r∈R} (x_a + y_r) / Π_{m∈E, m≠a} (x_a + x_m) and
    ///   v_b = Π_{m∈E} (y_b + x_m) / Π_{r∈R, r≠b} (y_b + y_r);
    /// * the parity equations give d_E = M^-1 · p_R + (M^-1 · C[R][K]) · d_K,
    ///   and splitting 1/((x_a + y_b)(x_k + y_b)) into partial fractions gives
    ///   (M^-1 · C[R][K])[a][k] = u_a · (S(x_a) + S(x_k)) / (x_a + x_k)
    ///   with S(x) = Σ_b v_b / (x + y_b).
    fn recovery_matrix(&self, missing_data: &[usize], sources: &[usize]) -> Vec<u8> {
        let data_shards = self.data_shards;
        let known_data = data_shards - missing_data.len();
        // Coordinates fit in u8 (P + D ≤ 255) and are pairwise distinct, so
        // no sum below is 0 and every division is defined.
        let data_x = |column: usize| (self.parity_shards + column) as u8;
        let missing_x: Vec<u8> = missing_data.iter().map(|&column| data_x(column)).collect();
        let known_x: Vec<u8> = sources[..known_data]
            .iter()
            .map(|&column| data_x(column))
            .collect();
        let parity_y: Vec<u8> = sources[known_data..]
            .iter()
            .map(|&index| (index - data_shards) as u8)
            .collect();
        // Π (point + other) over `others`, skipping `point` itself if listed.
        let product_of_sums = |point: u8, others: &[u8]| {
            others
                .iter()
                .filter(|&&other| other != point)
                .fold(1, |product, &other| gf_mul(product, point ^ other))
        };
        let u: Vec<u8> = missing_x
            .iter()
            .map(|&x| {
                gf_div(
                    product_of_sums(x, &parity_y),
                    product_of_sums(x, &missing_x),
                )
            })
            .collect();
        let v: Vec<u8> = parity_y
            .iter()
            .map(|&y| {
                gf_div(
                    product_of_sums(y, &missing_x),
                    product_of_sums(y, &parity_y),
                )
            })
            .collect();
        let partial_sum = |x: u8| {
            parity_y
                .iter()
                .zip(&v)
                .fold(0, |sum, (&y, &v_b)| sum ^ gf_div(v_b, x ^ y))
        };
        let known_sums: Vec<u8> = known_x.iter().map(|&x| partial_sum(x)).collect();

        let mut recovery = vec![0u8; missing_data.len() * data_shards];
        for ((recovery_row, &x_a), &u_a) in recovery
            .chunks_exact_mut(data_shards)
            .zip(&missing_x)
            .zip(&u)
        {
            let (known_part, parity_part) = recovery_row.split_at_mut(known_data);
            let sum_a = partial_sum(x_a);
            for ((out, &x_k), &sum_k) in known_part.iter_mut().zip(&known_x).zip(&known_sums) {
                *out = gf_mul(u_a, gf_div(sum_a ^ sum_k, x_a ^ x_k));
            }
            for ((out, &y_b), &v_b) in parity_part.iter_mut().zip(&parity_y).zip(&v) {
                *out = gf_mul(u_a, gf_div(v_b, x_a ^ y_b));
            }
        }
        recovery
    }
}

impl std::fmt::Debug for Gf8Code {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gf8Code")
            .field("data_shards", &self.data_shards)
            .field("parity_shards", &self.parity_shards)
            .field("cached_decode_plans", &self.decode_plans.len())
            .finish_non_exhaustive()
    }
}

impl ErasureCode for Gf8Code {
    fn data_shards(&self) -> usize {
        self.data_shards
    }

    fn parity_shards(&self) -> usize {
        self.parity_shards
    }

    fn encode(&mut self, data: &[&[u8]], parity: &mut [&mut [u8]]) -> Result<(), FecError> {
        if data.len() != self.data_shards || parity.len() != self.parity_shards {
            return Err(FecError::InvalidParameters(format!(
                "expected {} data and {} parity shards, got {} and {}",
                self.data_shards,
                self.parity_shards,
                data.len(),
                parity.len()
            )));
        }
        let shard_len = common_shard_length(
            data.iter()
                .map(|shard| shard.len())
                .chain(parity.iter().map(|shard| shard.len())),
        )?;
        self.encode_tables
            .multiply_accumulate(shard_len, data, parity);
        Ok(())
    }

    fn reconstruct(&mut self, shards: &mut [&mut [u8]], present: &[bool]) -> Result<(), FecError> {
        let total = self.data_shards + self.parity_shards;
        if shards.len() != total || present.len() != total {
            return Err(FecError::InvalidParameters(format!(
                "expected {total} shards and presence flags, got {} and {}",
                shards.len(),
                present.len()
            )));
        }
        let shard_len = common_shard_length(shards.iter().map(|shard| shard.len()))?;
        let present_count = present.iter().filter(|&&is_present| is_present).count();
        if present_count < self.data_shards {
            return Err(FecError::TooFewShards {
                needed: self.data_shards,
                present: present_count,
            });
        }
        if present[..self.data_shards]
            .iter()
            .all(|&is_present| is_present)
        {
            return Ok(());
        }

        let plan = self.decode_plan(present);
        let mut inputs: Vec<&[u8]> = Vec::with_capacity(plan.sources.len());
        let mut outputs: Vec<&mut [u8]> = Vec::with_capacity(plan.missing_data.len());
        // Both index lists are ascending, so one pass splits the borrows.
        let (mut next_source, mut next_missing) = (0, 0);
        for (index, shard) in shards.iter_mut().enumerate() {
            if plan.sources.get(next_source) == Some(&index) {
                inputs.push(shard);
                next_source += 1;
            } else if plan.missing_data.get(next_missing) == Some(&index) {
                outputs.push(shard);
                next_missing += 1;
            }
        }
        plan.tables
            .multiply_accumulate(shard_len, &inputs, &mut outputs);
        Ok(())
    }
}

/// Which multiply-accumulate kernel a code runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kernel {
    /// ISA-L's nibble-table kernels (SSE/AVX2/AVX-512, its own dispatch).
    Isal,
    /// [`gfni`]: `GF2P8AFFINEQB` on 512-bit vectors.
    GfniAvx512,
}

impl Kernel {
    /// GFNI + AVX-512 where present, else ISA-L.
    pub fn best_available() -> Self {
        if gfni::available() {
            Kernel::GfniAvx512
        } else {
            Kernel::Isal
        }
    }

    pub fn is_available(self) -> bool {
        match self {
            Kernel::Isal => true,
            Kernel::GfniAvx512 => gfni::available(),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Kernel::Isal => "isa-l",
            Kernel::GfniAvx512 => "gfni-avx512",
        }
    }
}

/// A coefficient matrix prepared for one kernel.
enum MultiplyTables {
    Isal(Vec<u8>),
    /// One affine operand per coefficient, row-major like the matrix.
    Gfni(Vec<u64>),
}

impl MultiplyTables {
    /// Prepares the `rows × sources` row-major `coefficients`.
    fn new(kernel: Kernel, sources: usize, rows: usize, coefficients: &[u8]) -> Self {
        match kernel {
            Kernel::Isal => MultiplyTables::Isal(isal::init_tables(sources, rows, coefficients)),
            Kernel::GfniAvx512 => MultiplyTables::Gfni(
                coefficients
                    .iter()
                    .map(|&c| gfni::AFFINE_MATRICES[usize::from(c)])
                    .collect(),
            ),
        }
    }

    /// `outputs[r][b] = Σ_s M[r][s] · inputs[s][b]` for `b < len`.
    fn multiply_accumulate(&self, len: usize, inputs: &[&[u8]], outputs: &mut [&mut [u8]]) {
        match self {
            MultiplyTables::Isal(tables) => isal::multiply_accumulate(len, tables, inputs, outputs),
            MultiplyTables::Gfni(matrices) => {
                gfni::multiply_accumulate(len, matrices, inputs, outputs)
            }
        }
    }
}

/// Safe wrappers around the few ISA-L functions we call (erasure_code.h).
mod isal {
    use super::{ISAL_TABLE_BYTES_PER_COEFFICIENT, MAX_TOTAL_SHARDS};
    use std::ffi::{c_int, c_uchar};

    unsafe extern "C" {
        fn ec_init_tables(k: c_int, rows: c_int, a: *mut c_uchar, gftbls: *mut c_uchar);
        fn ec_encode_data(
            len: c_int,
            k: c_int,
            rows: c_int,
            gftbls: *mut c_uchar,
            data: *mut *mut c_uchar,
            coding: *mut *mut c_uchar,
        );
        #[cfg(test)]
        fn gf_mul(a: c_uchar, b: c_uchar) -> c_uchar;
    }

    /// Expands a `rows × sources` row-major coefficient matrix into the tables
    /// [`multiply_accumulate`] takes.
    pub(super) fn init_tables(sources: usize, rows: usize, coefficients: &[u8]) -> Vec<u8> {
        assert!(sources <= MAX_TOTAL_SHARDS && rows <= MAX_TOTAL_SHARDS);
        assert_eq!(coefficients.len(), sources * rows);
        let mut tables = vec![0u8; ISAL_TABLE_BYTES_PER_COEFFICIENT * sources * rows];
        // SAFETY: ec_init_tables reads `sources * rows` bytes from `a` (the
        // length checked above; it never writes through `a` despite the
        // non-const pointer) and writes 32 bytes per coefficient to `gftbls`,
        // exactly `tables.len()`. Both counts fit in c_int (≤ 255).
        unsafe {
            ec_init_tables(
                sources as c_int,
                rows as c_int,
                coefficients.as_ptr().cast_mut(),
                tables.as_mut_ptr(),
            );
        }
        tables
    }

    /// `outputs[r][b] = Σ_s M[r][s] · inputs[s][b]` for `b < len`, where `M` is
    /// the matrix `tables` was built from.
    pub(super) fn multiply_accumulate(
        len: usize,
        tables: &[u8],
        inputs: &[&[u8]],
        outputs: &mut [&mut [u8]],
    ) {
        assert!(inputs.len() <= MAX_TOTAL_SHARDS && outputs.len() <= MAX_TOTAL_SHARDS);
        assert_eq!(
            tables.len(),
            ISAL_TABLE_BYTES_PER_COEFFICIENT * inputs.len() * outputs.len()
        );
        assert!(len <= c_int::MAX as usize);
        let mut input_pointers = [std::ptr::null_mut::<c_uchar>(); MAX_TOTAL_SHARDS];
        let mut output_pointers = [std::ptr::null_mut::<c_uchar>(); MAX_TOTAL_SHARDS];
        for (pointer, input) in input_pointers.iter_mut().zip(inputs) {
            assert!(input.len() >= len);
            // ISA-L only reads its source buffers; the API just lacks `const`.
            *pointer = input.as_ptr().cast_mut();
        }
        for (pointer, output) in output_pointers.iter_mut().zip(outputs.iter_mut()) {
            assert!(output.len() >= len);
            *pointer = output.as_mut_ptr();
        }
        // SAFETY: every one of the inputs.len() source and outputs.len()
        // destination pointers addresses at least `len` bytes (asserted), the
        // destinations are exclusive borrows so they overlap neither each
        // other nor the shared sources, `tables` holds the 32 · k · rows bytes
        // ISA-L reads (asserted), and ISA-L writes only through `coding`.
        unsafe {
            ec_encode_data(
                len as c_int,
                inputs.len() as c_int,
                outputs.len() as c_int,
                tables.as_ptr().cast_mut(),
                input_pointers.as_mut_ptr(),
                output_pointers.as_mut_ptr(),
            );
        }
    }

    #[cfg(test)]
    pub(super) fn field_mul(a: u8, b: u8) -> u8 {
        // SAFETY: gf_mul is a pure function of two bytes.
        unsafe { gf_mul(a, b) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use proptest::sample::subsequence;

    /// Deterministic xorshift64* bytes, so failures reproduce from the seed.
    fn random_bytes(seed: u64, len: usize) -> Vec<u8> {
        let mut state = seed | 1;
        (0..len)
            .map(|_| {
                state ^= state >> 12;
                state ^= state << 25;
                state ^= state >> 27;
                (state.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 56) as u8
            })
            .collect()
    }

    fn random_block(data_shards: usize, shard_len: usize, seed: u64) -> Vec<Vec<u8>> {
        (0..data_shards)
            .map(|i| random_bytes(seed.wrapping_add(i as u64 * 0x9E37_79B9), shard_len))
            .collect()
    }

    fn encode_with(code: &mut Gf8Code, data: &[Vec<u8>]) -> Vec<Vec<u8>> {
        let mut parity = vec![vec![0u8; data[0].len()]; code.parity_shards()];
        let data_refs: Vec<&[u8]> = data.iter().map(Vec::as_slice).collect();
        let mut parity_refs: Vec<&mut [u8]> = parity.iter_mut().map(Vec::as_mut_slice).collect();
        code.encode(&data_refs, &mut parity_refs).unwrap();
        parity
    }

    fn encode_reference(data: &[Vec<u8>], parity_shards: usize) -> Vec<Vec<u8>> {
        let mut parity = vec![vec![0u8; data[0].len()]; parity_shards];
        let data_refs: Vec<&[u8]> = data.iter().map(Vec::as_slice).collect();
        let mut parity_refs: Vec<&mut [u8]> = parity.iter_mut().map(Vec::as_mut_slice).collect();
        encode_scalar_reference(&data_refs, &mut parity_refs);
        parity
    }

    fn reconstruct_with(
        code: &mut Gf8Code,
        shards: &mut [Vec<u8>],
        present: &[bool],
    ) -> Result<(), FecError> {
        let mut shard_refs: Vec<&mut [u8]> = shards.iter_mut().map(Vec::as_mut_slice).collect();
        code.reconstruct(&mut shard_refs, present)
    }

    /// Encodes a random block, overwrites the `erased` shards with garbage,
    /// reconstructs, and checks the outcome against the original.
    fn check_erasure_case(
        data_shards: usize,
        parity_shards: usize,
        shard_len: usize,
        erased: &[usize],
        seed: u64,
    ) {
        let mut code = Gf8Code::new(data_shards, parity_shards).unwrap();
        let data = random_block(data_shards, shard_len, seed);
        let parity = encode_with(&mut code, &data);
        let original: Vec<Vec<u8>> = data.into_iter().chain(parity).collect();
        let mut shards = original.clone();
        let mut present = vec![true; data_shards + parity_shards];
        for &index in erased {
            present[index] = false;
            shards[index].fill(0xA5);
        }
        let damaged = shards.clone();
        let result = reconstruct_with(&mut code, &mut shards, &present);
        if erased.len() <= parity_shards {
            assert_eq!(result, Ok(()));
            assert_eq!(shards[..data_shards], original[..data_shards]);
        } else {
            assert_eq!(
                result,
                Err(FecError::TooFewShards {
                    needed: data_shards,
                    present: data_shards + parity_shards - erased.len(),
                })
            );
            assert_eq!(shards, damaged, "failed reconstruct must not write");
        }
    }

    #[test]
    fn field_matches_isal() {
        for a in 0..=255u8 {
            for b in 0..=255u8 {
                assert_eq!(gf_mul(a, b), isal::field_mul(a, b), "{a:#04x} * {b:#04x}");
            }
            if a != 0 {
                assert_eq!(gf_mul(a, gf_inv(a)), 1, "inverse of {a:#04x}");
            }
        }
    }

    /// Every kernel this CPU runs (ISA-L always; GFNI where present).
    fn available_kernels() -> Vec<Kernel> {
        [Kernel::Isal, Kernel::GfniAvx512]
            .into_iter()
            .filter(|kernel| kernel.is_available())
            .collect()
    }

    #[test]
    fn best_kernel_follows_the_cpu() {
        let has_gfni = is_x86_feature_detected!("gfni")
            && is_x86_feature_detected!("avx512f")
            && is_x86_feature_detected!("avx512bw");
        let expected = if has_gfni {
            Kernel::GfniAvx512
        } else {
            Kernel::Isal
        };
        assert_eq!(Kernel::best_available(), expected);
        assert_eq!(Gf8Code::new(4, 2).unwrap().kernel(), expected);
        if !has_gfni {
            assert!(Gf8Code::with_kernel(4, 2, Kernel::GfniAvx512).is_err());
        }
    }

    #[test]
    fn every_kernel_multiplies_every_byte_pair() {
        // One source and one row: output byte x is M[0][0] · x, for all 256 x
        // and all 256 coefficients, including a masked tail (256 = 4 · 64, so
        // lengths 255 and 1 exercise it too).
        let bytes: Vec<u8> = (0..=255u8).collect();
        for kernel in available_kernels() {
            for c in 0..=255u8 {
                for len in [256, 255, 1] {
                    let tables = MultiplyTables::new(kernel, 1, 1, &[c]);
                    let mut out = vec![0x5Au8; 256];
                    tables.multiply_accumulate(len, &[&bytes], &mut [&mut out]);
                    for (x, &product) in out.iter().enumerate() {
                        let expected = if x < len { gf_mul(c, x as u8) } else { 0x5A };
                        assert_eq!(
                            product, expected,
                            "{kernel:?}: {c:#04x} * {x:#04x}, len {len}"
                        );
                    }
                }
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]
        /// Byte-identical parity and recovery on every kernel, for shapes up
        /// to the full 255 shards and lengths around the 64-byte vector.
        #[test]
        fn kernels_agree_with_the_scalar_reference(
            data_shards in 1usize..=212,
            parity_shards in 1usize..=43,
            shard_len in prop_oneof![1usize..=130, 1000usize..=1500],
            seed in any::<u64>(),
        ) {
            let data = random_block(data_shards, shard_len, seed);
            let expected = encode_reference(&data, parity_shards);
            for kernel in available_kernels() {
                let mut code = Gf8Code::with_kernel(data_shards, parity_shards, kernel).unwrap();
                let parity = encode_with(&mut code, &data);
                prop_assert_eq!(&parity, &expected, "{:?}", kernel);
                // Lose as many data shards as there is parity, from the front.
                let erased = parity_shards.min(data_shards);
                let mut shards: Vec<Vec<u8>> = data.iter().cloned().chain(parity).collect();
                let mut present = vec![true; data_shards + parity_shards];
                for index in 0..erased {
                    present[index] = false;
                    shards[index].fill(0xA5);
                }
                reconstruct_with(&mut code, &mut shards, &present).unwrap();
                prop_assert_eq!(&shards[..data_shards], &data[..], "{:?}", kernel);
            }
        }
    }

    #[test]
    fn code_can_move_between_threads() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Gf8Code>();
        let code = Gf8Code::new(4, 2).unwrap();
        assert_eq!(
            format!("{code:?}"),
            "Gf8Code { data_shards: 4, parity_shards: 2, cached_decode_plans: 0, .. }"
        );
    }

    #[test]
    fn matrix_matches_nanors_vector() {
        let code = Gf8Code::new(4, 2).unwrap();
        assert_eq!(
            code.parity_matrix(),
            [0x8e, 0xf4, 0x47, 0xa7, 0xf4, 0x8e, 0xa7, 0x47]
        );
    }

    #[test]
    fn parity_matches_nanors_vector() {
        let data = vec![
            vec![0x01, 0x02, 0x03, 0x04],
            vec![0x05, 0x06, 0x07, 0x08],
            vec![0x09, 0x0a, 0x0b, 0x0c],
        ];
        let expected = vec![vec![0xc8, 0x8f, 0xb2, 0xf2], vec![0x8e, 0xf4, 0x29, 0x04]];
        let mut code = Gf8Code::new(3, 2).unwrap();
        assert_eq!(encode_with(&mut code, &data), expected);
        assert_eq!(encode_reference(&data, 2), expected);
    }

    #[test]
    fn isal_path_matches_scalar_reference() {
        let shapes = [
            (1, 1),
            (1, 254),
            (254, 1),
            (2, 3),
            (4, 2),
            (10, 4),
            (17, 13),
            (64, 32),
            (128, 127),
            (200, 55),
            (212, 43),
        ];
        // Lengths straddle ISA-L's 16/32/64-byte vector widths and its scalar tail.
        let lengths = [
            1, 2, 15, 16, 17, 31, 32, 33, 63, 64, 65, 127, 129, 1040, 1041,
        ];
        let mut seed = 1;
        for &(data_shards, parity_shards) in &shapes {
            let mut code = Gf8Code::new(data_shards, parity_shards).unwrap();
            for &shard_len in &lengths {
                seed += 1;
                let data = random_block(data_shards, shard_len, seed);
                assert_eq!(
                    encode_with(&mut code, &data),
                    encode_reference(&data, parity_shards),
                    "D={data_shards} P={parity_shards} len={shard_len}"
                );
            }
        }
    }

    #[test]
    fn random_shapes_match_scalar_reference() {
        let shape_source = random_bytes(7, 3 * 200);
        for (case, triple) in shape_source.chunks_exact(3).enumerate() {
            let data_shards = 1 + triple[0] as usize % 254;
            let parity_shards = 1 + triple[1] as usize % (255 - data_shards);
            let shard_len = 1 + triple[2] as usize * 3;
            let data = random_block(data_shards, shard_len, case as u64);
            let mut code = Gf8Code::new(data_shards, parity_shards).unwrap();
            assert_eq!(
                encode_with(&mut code, &data),
                encode_reference(&data, parity_shards),
                "D={data_shards} P={parity_shards} len={shard_len}"
            );
        }
    }

    #[test]
    fn invalid_shapes_are_rejected() {
        for (data_shards, parity_shards) in [(0, 1), (1, 0), (0, 0), (200, 56), (255, 1), (1, 255)]
        {
            assert!(
                matches!(
                    Gf8Code::new(data_shards, parity_shards),
                    Err(FecError::InvalidParameters(_))
                ),
                "D={data_shards} P={parity_shards}"
            );
        }
        assert!(Gf8Code::new(254, 1).is_ok());
        assert!(Gf8Code::new(1, 254).is_ok());
    }

    fn assert_invalid(result: Result<(), FecError>) {
        assert!(
            matches!(result, Err(FecError::InvalidParameters(_))),
            "{result:?}"
        );
    }

    #[test]
    fn bad_encode_arguments_are_rejected() {
        let mut code = Gf8Code::new(3, 2).unwrap();
        let full = [0u8; 8];
        let short = [0u8; 7];
        let (mut parity_a, mut parity_b, mut parity_short) = ([0u8; 8], [0u8; 8], [0u8; 7]);
        assert_invalid(code.encode(&[&full[..], &full], &mut [&mut parity_a, &mut parity_b]));
        assert_invalid(code.encode(&[&full[..], &full, &full], &mut [&mut parity_a]));
        assert_invalid(code.encode(
            &[&full[..], &full, &short],
            &mut [&mut parity_a, &mut parity_b],
        ));
        assert_invalid(code.encode(
            &[&full[..], &full, &full],
            &mut [&mut parity_a, &mut parity_short],
        ));
        let (mut empty_a, mut empty_b) = ([0u8; 0], [0u8; 0]);
        assert_invalid(code.encode(&[&[], &[], &[]], &mut [&mut empty_a, &mut empty_b]));
    }

    #[test]
    fn bad_reconstruct_arguments_are_rejected() {
        let mut code = Gf8Code::new(3, 2).unwrap();
        let all_present = vec![true; 5];
        let mut five = vec![vec![0u8; 8]; 5];
        let mut four = vec![vec![0u8; 8]; 4];
        let mut ragged = vec![vec![0u8; 8]; 5];
        ragged[4].pop();
        let mut empty = vec![Vec::new(); 5];
        let cases: [(&mut [Vec<u8>], &[bool]); 4] = [
            (&mut four, &all_present),
            (&mut five, &all_present[..4]),
            (&mut ragged, &all_present),
            (&mut empty, &all_present),
        ];
        for (shards, present) in cases {
            assert_invalid(reconstruct_with(&mut code, shards, present));
        }
    }

    #[test]
    fn missing_parity_only_leaves_data_alone() {
        check_erasure_case(5, 3, 100, &[5, 7], 11);
        check_erasure_case(5, 3, 100, &[5, 6, 7], 12);
    }

    #[test]
    fn reconstructs_every_single_and_double_erasure() {
        let (data_shards, parity_shards) = (6, 2);
        for first in 0..8 {
            check_erasure_case(data_shards, parity_shards, 37, &[first], first as u64);
            for second in first + 1..8 {
                check_erasure_case(data_shards, parity_shards, 37, &[first, second], 99);
            }
        }
    }

    /// One instance fed a long run of patterns, many repeated, so cached plans
    /// are both hit and evicted; every reconstruction must still be exact.
    #[test]
    fn decode_plan_cache_stays_correct() {
        let (data_shards, parity_shards, shard_len) = (20, 6, 50);
        let mut code = Gf8Code::new(data_shards, parity_shards).unwrap();
        let data = random_block(data_shards, shard_len, 5);
        let parity = encode_with(&mut code, &data);
        let original: Vec<Vec<u8>> = data.into_iter().chain(parity).collect();
        for (round, pattern_choice) in random_bytes(3, 400).into_iter().enumerate() {
            // Draw from only 8 patterns (twice the cache capacity); odd seeds
            // because random_bytes forces the low seed bit.
            let pattern_seed = 1 + 2 * (pattern_choice as u64 % 8);
            let pattern = random_bytes(pattern_seed, parity_shards);
            let mut shards = original.clone();
            let mut present = vec![true; data_shards + parity_shards];
            for &choice in &pattern {
                let index = choice as usize % (data_shards + parity_shards);
                present[index] = false;
                shards[index].fill(0);
            }
            reconstruct_with(&mut code, &mut shards, &present).unwrap();
            assert_eq!(
                shards[..data_shards],
                original[..data_shards],
                "round {round}"
            );
            assert!(code.decode_plans.len() <= DECODE_PLAN_CACHE_CAPACITY);
        }
    }

    /// Patterns that differ only in shards past index 64 (a different word of
    /// the cache key) must not share a plan.
    #[test]
    fn decode_plans_are_keyed_by_the_whole_pattern() {
        let (data_shards, parity_shards, shard_len) = (240, 4, 33);
        let mut code = Gf8Code::new(data_shards, parity_shards).unwrap();
        let data = random_block(data_shards, shard_len, 8);
        let parity = encode_with(&mut code, &data);
        let original: Vec<Vec<u8>> = data.into_iter().chain(parity).collect();
        for round in 0..6 {
            for erased in [[3, 70], [3, 71], [3, 200], [3, 239]] {
                let mut shards = original.clone();
                let mut present = vec![true; data_shards + parity_shards];
                for index in erased {
                    present[index] = false;
                    shards[index].fill(0);
                }
                // Alternate which parity shards are missing too, so the
                // chosen parity rows (high bits of the key) vary as well.
                present[data_shards + round % parity_shards] = false;
                reconstruct_with(&mut code, &mut shards, &present).unwrap();
                assert_eq!(
                    shards[..data_shards],
                    original[..data_shards],
                    "{erased:?} round {round}"
                );
            }
        }
    }

    /// Row `s` of the systematic generator [I; C] restricted to column `column`.
    fn generator_entry(code: &Gf8Code, shard: usize, column: usize) -> u8 {
        let data_shards = code.data_shards();
        if shard < data_shards {
            u8::from(shard == column)
        } else {
            code.parity_matrix()[(shard - data_shards) * data_shards + column]
        }
    }

    /// Checks the closed-form algebra directly: recovery rows times the
    /// generator rows of the sources must give the identity rows of the
    /// missing data shards.
    #[test]
    fn recovery_rows_invert_the_source_generator_rows() {
        let shapes = [(1, 1), (3, 2), (10, 10), (40, 20), (128, 127), (212, 43)];
        for (case, &(data_shards, parity_shards)) in shapes.iter().enumerate() {
            let code = Gf8Code::new(data_shards, parity_shards).unwrap();
            let total = data_shards + parity_shards;
            for trial in 0..20u64 {
                let mut present = vec![true; total];
                let erasures = 1 + trial as usize % parity_shards;
                for choice in random_bytes(trial * 31 + case as u64, erasures) {
                    present[choice as usize % total] = false;
                }
                present[..data_shards][trial as usize % data_shards] = false;
                if present.iter().filter(|&&p| p).count() < data_shards {
                    continue;
                }
                let missing: Vec<usize> = (0..data_shards).filter(|&i| !present[i]).collect();
                let sources: Vec<usize> = (0..data_shards)
                    .filter(|&i| present[i])
                    .chain(
                        (data_shards..total)
                            .filter(|&i| present[i])
                            .take(missing.len()),
                    )
                    .collect();
                let recovery = code.recovery_matrix(&missing, &sources);
                for (row, &target) in recovery.chunks_exact(data_shards).zip(&missing) {
                    for column in 0..data_shards {
                        let entry = row.iter().zip(&sources).fold(0, |sum, (&r, &shard)| {
                            sum ^ gf_mul(r, generator_entry(&code, shard, column))
                        });
                        assert_eq!(
                            entry,
                            u8::from(column == target),
                            "D={data_shards} P={parity_shards} missing {missing:?}"
                        );
                    }
                }
            }
        }
    }

    /// A shape, a shard length, an erasure set of `erasures` size and a seed.
    fn erasure_case(
        shapes: impl Strategy<Value = (usize, usize)>,
        recoverable: bool,
    ) -> impl Strategy<Value = (usize, usize, usize, Vec<usize>, u64)> {
        shapes.prop_flat_map(move |(data_shards, parity_shards)| {
            let total = data_shards + parity_shards;
            let erased_count = if recoverable {
                0..=parity_shards
            } else {
                parity_shards + 1..=total
            };
            (
                Just(data_shards),
                Just(parity_shards),
                1..=300usize,
                subsequence((0..total).collect::<Vec<_>>(), erased_count),
                any::<u64>(),
            )
        })
    }

    fn small_shapes() -> impl Strategy<Value = (usize, usize)> {
        (1..=64usize).prop_flat_map(|data_shards| {
            (
                Just(data_shards),
                1..=32.min(MAX_TOTAL_SHARDS - data_shards),
            )
        })
    }

    fn large_shapes() -> impl Strategy<Value = (usize, usize)> {
        prop_oneof![
            Just((212usize, 43usize)),
            (150..=254usize).prop_flat_map(|data_shards| {
                (Just(data_shards), 1..=MAX_TOTAL_SHARDS - data_shards)
            }),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(5000))]
        #[test]
        fn small_codes_recover_up_to_parity_erasures(
            (data_shards, parity_shards, shard_len, erased, seed) in erasure_case(small_shapes(), true)
        ) {
            check_erasure_case(data_shards, parity_shards, shard_len, &erased, seed);
        }

        #[test]
        fn small_codes_refuse_too_many_erasures(
            (data_shards, parity_shards, shard_len, erased, seed) in erasure_case(small_shapes(), false)
        ) {
            check_erasure_case(data_shards, parity_shards, shard_len, &erased, seed);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1000))]
        #[test]
        fn large_codes_recover_up_to_parity_erasures(
            (data_shards, parity_shards, shard_len, erased, seed) in erasure_case(large_shapes(), true)
        ) {
            check_erasure_case(data_shards, parity_shards, shard_len, &erased, seed);
        }

        #[test]
        fn large_codes_refuse_too_many_erasures(
            (data_shards, parity_shards, shard_len, erased, seed) in erasure_case(large_shapes(), false)
        ) {
            check_erasure_case(data_shards, parity_shards, shard_len, &erased, seed);
        }
    }
}
