//! GF(2^8) multiply-accumulate on GFNI + AVX-512 (`GF2P8AFFINEQB`).
//!
//! GFNI's own multiply (`GF2P8MULB`) is fixed to the AES polynomial 0x11B,
//! not the 0x11D our code shares with nanors, so it cannot be used. The affine
//! instruction can: multiplying by a constant `c` is linear over GF(2), so it
//! is an 8×8 bit matrix, and `GF2P8AFFINEQB` applies one such matrix to each of
//! 64 bytes in one instruction. ISA-L's nibble-table kernels need two shuffles,
//! two masks and a shift per coefficient and 32 bytes; this needs one
//! instruction per coefficient and 64 bytes.
//!
//! Chosen at run time ([`available`]); everything else uses the ISA-L path.

use std::arch::x86_64::{
    __m512i, _mm512_gf2p8affine_epi64_epi8, _mm512_loadu_si512, _mm512_mask_storeu_epi8,
    _mm512_maskz_loadu_epi8, _mm512_set1_epi64, _mm512_setzero_si512, _mm512_storeu_si512,
    _mm512_xor_si512,
};

/// Bytes per vector.
const LANE_BYTES: usize = 64;
/// Parity/recovery rows accumulated per pass over the sources: 8 accumulators,
/// one source vector and one broadcast matrix use 10 of the 32 vector registers,
/// and 8 rows per load of a source already make the pass compute-bound.
const ROWS_PER_PASS: usize = 8;

/// Whether this CPU runs the kernel (GFNI for the affine, AVX-512F for 512-bit
/// vectors, AVX-512BW for the byte-masked tail).
pub fn available() -> bool {
    is_x86_feature_detected!("gfni")
        && is_x86_feature_detected!("avx512f")
        && is_x86_feature_detected!("avx512bw")
}

/// The operand of `GF2P8AFFINEQB` that multiplies a byte by `c`, for every
/// `c`: built at compile time, so preparing a recovery plan's matrices is one
/// table lookup per coefficient (building them per plan cost more than the
/// decode itself).
pub const AFFINE_MATRICES: [u64; 256] = build_affine_matrices();

/// Output bit `i` of the affine is the parity of (matrix byte `7 - i`) AND x,
/// so byte `7 - i` holds row `i` of the product matrix: bit `j` of that row is
/// bit `i` of `c · 2^j`. `c · 2^j` comes from repeated doubling modulo the
/// field polynomial.
const fn build_affine_matrices() -> [u64; 256] {
    let mut matrices = [0u64; 256];
    let mut c = 0;
    while c < 256 {
        let mut columns = [0u8; 8];
        let mut value = c as u16;
        let mut j = 0;
        while j < 8 {
            columns[j] = value as u8;
            value <<= 1;
            if value & 0x100 != 0 {
                value ^= super::FIELD_POLYNOMIAL;
            }
            j += 1;
        }
        let mut matrix = 0u64;
        let mut i = 0;
        while i < 8 {
            let mut row = 0u8;
            let mut j = 0;
            while j < 8 {
                row |= ((columns[j] >> i) & 1) << j;
                j += 1;
            }
            matrix |= (row as u64) << (8 * (7 - i));
            i += 1;
        }
        matrices[c] = matrix;
        c += 1;
    }
    matrices
}

/// `outputs[r][b] = Σ_s M[r][s] · inputs[s][b]` for `b < len`, with
/// `matrices[r * inputs.len() + s]` the [`affine_matrix`] of `M[r][s]`.
///
/// Panics unless [`available`] (checked once per call; callers choose this
/// kernel only when it is) and every buffer holds `len` bytes.
pub fn multiply_accumulate(
    len: usize,
    matrices: &[u64],
    inputs: &[&[u8]],
    outputs: &mut [&mut [u8]],
) {
    assert!(available(), "GFNI/AVX-512 kernel on a CPU without it");
    assert_eq!(matrices.len(), inputs.len() * outputs.len());
    assert!(inputs.iter().all(|input| input.len() >= len));
    assert!(outputs.iter().all(|output| output.len() >= len));
    let sources = inputs.len();
    for (group, rows) in outputs.chunks_mut(ROWS_PER_PASS).enumerate() {
        let group_matrices = &matrices[group * ROWS_PER_PASS * sources..][..rows.len() * sources];
        // SAFETY: `available()` was asserted, so the target features the
        // kernels enable are present; buffer lengths are asserted above.
        unsafe {
            match rows.len() {
                8 => rows_pass::<8>(len, group_matrices, inputs, rows),
                7 => rows_pass::<7>(len, group_matrices, inputs, rows),
                6 => rows_pass::<6>(len, group_matrices, inputs, rows),
                5 => rows_pass::<5>(len, group_matrices, inputs, rows),
                4 => rows_pass::<4>(len, group_matrices, inputs, rows),
                3 => rows_pass::<3>(len, group_matrices, inputs, rows),
                2 => rows_pass::<2>(len, group_matrices, inputs, rows),
                _ => rows_pass::<1>(len, group_matrices, inputs, rows),
            }
        }
    }
}

/// One pass of `ROWS` output rows over every source, 64 bytes at a time; the
/// last partial vector is loaded and stored under a byte mask (masked-off
/// bytes are neither read nor written, so no buffer is overrun).
///
/// # Safety
/// The CPU must have GFNI, AVX-512F and AVX-512BW; `outputs.len() == ROWS`,
/// `matrices.len() == ROWS * inputs.len()` and every buffer holds `len` bytes.
#[target_feature(enable = "gfni,avx512f,avx512bw")]
unsafe fn rows_pass<const ROWS: usize>(
    len: usize,
    matrices: &[u64],
    inputs: &[&[u8]],
    outputs: &mut [&mut [u8]],
) {
    let sources = inputs.len();
    let mut offset = 0;
    while offset < len {
        let remaining = len - offset;
        let mask: u64 = if remaining >= LANE_BYTES {
            u64::MAX
        } else {
            (1u64 << remaining) - 1
        };
        let mut accumulators: [__m512i; ROWS] = [_mm512_setzero_si512(); ROWS];
        for (source, input) in inputs.iter().enumerate() {
            let pointer = input.as_ptr().add(offset);
            let vector = if mask == u64::MAX {
                _mm512_loadu_si512(pointer.cast())
            } else {
                _mm512_maskz_loadu_epi8(mask, pointer.cast())
            };
            for (row, accumulator) in accumulators.iter_mut().enumerate() {
                let matrix =
                    _mm512_set1_epi64(*matrices.get_unchecked(row * sources + source) as i64);
                *accumulator = _mm512_xor_si512(
                    *accumulator,
                    _mm512_gf2p8affine_epi64_epi8::<0>(vector, matrix),
                );
            }
        }
        for (output, accumulator) in outputs.iter_mut().zip(accumulators) {
            let pointer = output.as_mut_ptr().add(offset);
            if mask == u64::MAX {
                _mm512_storeu_si512(pointer.cast(), accumulator);
            } else {
                _mm512_mask_storeu_epi8(pointer.cast(), mask, accumulator);
            }
        }
        offset += LANE_BYTES;
    }
}
