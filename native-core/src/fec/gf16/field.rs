//! GF(2^16) arithmetic in Cantor-basis coordinates, plus the process-wide tables built from it.
//!
//! The field is GF(2)[x] / (x^16 + x^12 + x^3 + x + 1) ([`POLYNOMIAL`], primitive, so `x`
//! generates the multiplicative group). Elements are NOT stored in that polynomial basis:
//! a `u16` holds coordinates in a Cantor basis `v_0 .. v_15` (`v_0 = 1`,
//! `v_i^2 + v_i = v_(i-1)`), found once by search and mapped onto the polynomial basis when
//! the log/exp tables are built. In these coordinates the integer `j` *is* the FFT evaluation
//! point `ω_j = Σ j_b·v_b`, so `ω_i + ω_j = ω_(i^j)` and the subspace vanishing polynomials
//! `s_i` have GF(2) coefficients, `s_i(v_i) = 1` and `s_i'(x) = 1` (see the parent module).
//!
//! Tables (built lazily, shared by every code instance):
//! * `log`/`exp` for scalar multiplication (`exp` doubled so two logs add without `mod`);
//! * `skew_log`: the butterfly constants `s_i(ω_r)` of the additive FFT, one table for all
//!   layers via the index `r + 2^i - 1` (`r` a multiple of `2^(i+1)`), as logs;
//! * [`NibbleTable`]s for those constants (the SIMD kernels' operand), in 4096-entry segments
//!   built on first use so small codes never pay for the full 8 MiB;
//! * `log_walsh(t)`: the Walsh–Hadamard transform of the log table restricted to `2^t`
//!   points, pre-scaled by `2^-t`, used by the error-locator evaluation.

use std::sync::OnceLock;

/// Number of field elements.
pub(crate) const ORDER: usize = 1 << 16;
/// Size of the multiplicative group; logs live in `0..MODULUS`.
pub(crate) const MODULUS: u32 = (ORDER - 1) as u32;
/// Log sentinel for the element 0 (which has no logarithm): "multiply by zero".
pub(crate) const ZERO_LOG: u16 = MODULUS as u16;
/// x^16 + x^12 + x^3 + x + 1, the field's reduction polynomial (polynomial basis).
pub(crate) const POLYNOMIAL: u32 = 0x1100B;

const SEGMENT_BITS: u32 = 12;
const SEGMENT_LEN: usize = 1 << SEGMENT_BITS;

/// Log/exp and FFT-skew tables in Cantor coordinates.
pub(crate) struct FieldTables {
    /// `log[a]` for `a != 0`; `log[0] == ZERO_LOG`.
    pub log: Box<[u16]>,
    /// `exp[i] = g^i` for `i < 2·MODULUS`, so `exp[log a + log b]` needs no reduction.
    pub exp: Box<[u16]>,
    /// Log of the butterfly constant for skew index `r + 2^i - 1`, or `ZERO_LOG`.
    pub skew_log: Box<[u16]>,
}

impl FieldTables {
    /// Product of `a` and the element whose log is `log_c` (`ZERO_LOG` allowed).
    #[inline]
    pub fn mul_log(&self, a: u16, log_c: u16) -> u16 {
        if a == 0 || log_c == ZERO_LOG {
            0
        } else {
            self.exp[self.log[a as usize] as usize + log_c as usize]
        }
    }

    #[cfg(test)]
    pub fn mul(&self, a: u16, b: u16) -> u16 {
        self.mul_log(a, self.log[b as usize])
    }
}

/// The shared tables, built on first use (a few milliseconds).
pub(crate) fn tables() -> &'static FieldTables {
    static TABLES: OnceLock<FieldTables> = OnceLock::new();
    TABLES.get_or_init(build_tables)
}

fn build_tables() -> FieldTables {
    // Polynomial-basis log/exp, generator x.
    let mut poly_exp = vec![0u16; MODULUS as usize];
    let mut poly_log = vec![0u16; ORDER];
    let mut element: u32 = 1;
    for (power, slot) in poly_exp.iter_mut().enumerate() {
        assert!(
            power == 0 || element != 1,
            "field polynomial is not primitive"
        );
        *slot = element as u16;
        poly_log[element as usize] = power as u16;
        element <<= 1;
        if element & (1 << 16) != 0 {
            element ^= POLYNOMIAL;
        }
    }
    assert_eq!(element, 1, "field polynomial is not primitive");
    let poly_mul = |a: u16, b: u16| -> u16 {
        if a == 0 || b == 0 {
            return 0;
        }
        let sum = poly_log[a as usize] as u32 + poly_log[b as usize] as u32;
        poly_exp[(sum % MODULUS) as usize]
    };

    // Cantor basis: v_0 = 1, v_i = smallest root of y^2 + y = v_(i-1).
    let square_plus_self: Vec<u16> = (0..ORDER as u32)
        .map(|y| poly_mul(y as u16, y as u16) ^ y as u16)
        .collect();
    let mut basis = [0u16; 16];
    basis[0] = 1;
    for i in 1..16 {
        let root = square_plus_self
            .iter()
            .position(|&value| value == basis[i - 1])
            .expect("GF(2^16) has a Cantor basis of dimension 16");
        basis[i] = root as u16;
    }

    // Cantor coordinates -> polynomial basis, and back.
    let mut to_poly = vec![0u16; ORDER];
    for coords in 1..ORDER {
        to_poly[coords] = to_poly[coords & (coords - 1)] ^ basis[coords.trailing_zeros() as usize];
    }
    let mut from_poly = vec![0u16; ORDER];
    let mut seen = vec![false; ORDER];
    for (coords, &poly) in to_poly.iter().enumerate() {
        assert!(
            !seen[poly as usize],
            "Cantor basis is not linearly independent"
        );
        seen[poly as usize] = true;
        from_poly[poly as usize] = coords as u16;
    }

    let mut log = vec![ZERO_LOG; ORDER].into_boxed_slice();
    for coords in 1..ORDER {
        log[coords] = poly_log[to_poly[coords] as usize];
    }
    let exp: Box<[u16]> = (0..2 * MODULUS as usize)
        .map(|power| from_poly[poly_exp[power % MODULUS as usize] as usize])
        .collect();

    let cantor_mul = |a: u16, b: u16| -> u16 {
        if a == 0 || b == 0 {
            0
        } else {
            exp[log[a as usize] as usize + log[b as usize] as usize]
        }
    };

    // s_0(y) = y and s_(i+1)(y) = s_i(y)^2 + s_i(y) (Cantor basis: s_i(v_i) = 1). Each s_i is
    // GF(2)-linear, so tabulating it on the basis vectors gives it everywhere.
    let mut vanishing_at_basis = [[0u16; 16]; 16];
    for b in 0..16 {
        let mut value = 1u16 << b;
        for row in vanishing_at_basis.iter_mut() {
            row[b] = value;
            value = cantor_mul(value, value) ^ value;
        }
    }

    let mut skew_log = vec![ZERO_LOG; ORDER].into_boxed_slice();
    for (layer, row) in vanishing_at_basis.iter().enumerate() {
        let dist = 1usize << layer;
        for block_start in (0..ORDER).step_by(2 * dist) {
            // block_start only has bits above `layer`, so s_layer(ω_block_start) is the XOR of
            // s_layer over those basis vectors.
            let mut value = 0u16;
            let mut bits = block_start;
            while bits != 0 {
                value ^= row[bits.trailing_zeros() as usize];
                bits &= bits - 1;
            }
            skew_log[block_start + dist - 1] = log[value as usize];
        }
    }

    FieldTables { log, exp, skew_log }
}

/// Split-nibble product tables for one constant `c`: `lo[k][n]` / `hi[k][n]` are the low /
/// high byte of `c · (n << 4k)`. A symbol's product is the XOR of its four nibbles' entries,
/// which is what PSHUFB evaluates 16 or 32 lanes at a time.
#[repr(C, align(64))]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct NibbleTable {
    pub lo: [[u8; 16]; 4],
    pub hi: [[u8; 16]; 4],
}

impl NibbleTable {
    pub fn for_log(log_c: u16, tables: &FieldTables) -> Self {
        let mut table = NibbleTable::default();
        if log_c == ZERO_LOG {
            return table;
        }
        // Multiplication by c is GF(2)-linear: tabulate it on the 16 bit positions, then
        // XOR-combine within each nibble (branch-free so it vectorises; this runs per shard
        // in the decoder).
        let of_bit: [u16; 16] =
            std::array::from_fn(|bit| tables.exp[tables.log[1 << bit] as usize + log_c as usize]);
        for nibble in 0..4 {
            let bits = &of_bit[4 * nibble..4 * nibble + 4];
            let row: [u16; 16] = std::array::from_fn(|n| {
                (0..4).fold(0, |acc, i| {
                    acc ^ (bits[i] & 0u16.wrapping_sub((n as u16 >> i) & 1))
                })
            });
            table.lo[nibble] = row.map(|value| value as u8);
            table.hi[nibble] = row.map(|value| (value >> 8) as u8);
        }
        table
    }
}

/// A constant multiplier in both forms the kernels use.
#[derive(Clone, Copy)]
pub(crate) struct Multiplier<'a> {
    pub log: u16,
    pub table: &'a NibbleTable,
}

impl Multiplier<'_> {
    #[inline]
    pub fn is_zero(&self) -> bool {
        self.log == ZERO_LOG
    }
}

/// Nibble tables for skew indices `segment·4096 ..`, built on first request.
pub(crate) fn skew_segment(segment: usize) -> &'static [NibbleTable] {
    static SEGMENTS: [OnceLock<Box<[NibbleTable]>>; ORDER / SEGMENT_LEN] =
        [const { OnceLock::new() }; ORDER / SEGMENT_LEN];
    SEGMENTS[segment].get_or_init(|| {
        let field = tables();
        field.skew_log[segment * SEGMENT_LEN..(segment + 1) * SEGMENT_LEN]
            .iter()
            .map(|&log_c| NibbleTable::for_log(log_c, field))
            .collect()
    })
}

/// The butterfly constants of transforms over the first `points` evaluation points.
pub(crate) struct SkewTables {
    logs: &'static [u16],
    segments: Vec<&'static [NibbleTable]>,
}

impl SkewTables {
    pub fn new(points: usize) -> Self {
        let segment_count = points.div_ceil(SEGMENT_LEN);
        SkewTables {
            logs: &tables().skew_log[..points],
            segments: (0..segment_count).map(skew_segment).collect(),
        }
    }

    #[inline]
    pub fn get(&self, index: usize) -> Multiplier<'static> {
        Multiplier {
            log: self.logs[index],
            table: &self.segments[index >> SEGMENT_BITS][index & (SEGMENT_LEN - 1)],
        }
    }
}

#[inline]
fn reduce(value: u32) -> u32 {
    if value >= MODULUS {
        value - MODULUS
    } else {
        value
    }
}

/// In-place Walsh–Hadamard transform over Z/65535 (entries must be `< MODULUS`).
pub(crate) fn fwht(values: &mut [u32]) {
    let n = values.len();
    debug_assert!(n.is_power_of_two());
    let mut dist = 1;
    while dist < n {
        for block in values.chunks_exact_mut(2 * dist) {
            let (left, right) = block.split_at_mut(dist);
            for (a, b) in left.iter_mut().zip(right.iter_mut()) {
                let (x, y) = (*a, *b);
                *a = reduce(x + y);
                *b = reduce(x + MODULUS - y);
            }
        }
        dist *= 2;
    }
}

/// `FWHT(L)·2^-t` over `2^t` points, where `L[j] = log ω_j` and `L[0] = 0`.
///
/// Since `2^16 ≡ 1 (mod 65535)`, `2^-t = 2^(16-t)`: the inverse transform is a forward
/// transform with this scale folded in.
pub(crate) fn log_walsh(log2_points: u32) -> &'static [u32] {
    static BY_SIZE: [OnceLock<Box<[u32]>>; 17] = [const { OnceLock::new() }; 17];
    BY_SIZE[log2_points as usize].get_or_init(|| {
        let field = tables();
        let points = 1usize << log2_points;
        let mut values: Vec<u32> = field.log[..points]
            .iter()
            .map(|&l| if l == ZERO_LOG { 0 } else { l as u32 })
            .collect();
        fwht(&mut values);
        let scale = 1u64 << (16 - log2_points);
        values
            .iter()
            .map(|&v| ((v as u64 * scale) % MODULUS as u64) as u32)
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Carry-less multiply-and-reduce straight from the definition, in polynomial coordinates.
    fn poly_mul_reference(mut a: u32, mut b: u32) -> u32 {
        let mut product = 0;
        while b != 0 {
            if b & 1 != 0 {
                product ^= a;
            }
            b >>= 1;
            a <<= 1;
            if a & (1 << 16) != 0 {
                a ^= POLYNOMIAL;
            }
        }
        product
    }

    #[test]
    fn multiplication_is_a_field_operation() {
        let field = tables();
        let samples = [1u16, 2, 3, 0x8000, 0x1234, 0xFFFF, 0xBEEF, 0x0F0F];
        for &a in &samples {
            assert_eq!(field.mul(a, 1), a, "1 is the identity");
            assert_eq!(field.mul(a, 0), 0);
            for &b in &samples {
                assert_eq!(field.mul(a, b), field.mul(b, a));
                for &c in &samples {
                    assert_eq!(
                        field.mul(a, b ^ c),
                        field.mul(a, b) ^ field.mul(a, c),
                        "distributive"
                    );
                    assert_eq!(field.mul(field.mul(a, b), c), field.mul(a, field.mul(b, c)));
                }
            }
        }
        // Every nonzero element has an inverse: a · g^(-log a) = 1.
        for a in 1..ORDER as u32 {
            let inverse_log = (MODULUS - field.log[a as usize] as u32) % MODULUS;
            assert_eq!(field.mul_log(a as u16, inverse_log as u16), 1);
        }
    }

    #[test]
    fn cantor_coordinates_are_an_isomorphic_image_of_the_polynomial_field() {
        // Map Cantor coordinates to polynomial form through the basis and compare products.
        let field = tables();
        let mut basis_poly = [0u32; 16];
        basis_poly[0] = 1;
        for i in 1..16 {
            basis_poly[i] = (0..ORDER as u32)
                .find(|&y| poly_mul_reference(y, y) ^ y == basis_poly[i - 1])
                .unwrap();
        }
        let to_poly = |coords: u16| -> u32 {
            (0..16)
                .filter(|b| coords >> b & 1 == 1)
                .fold(0, |acc, b| acc ^ basis_poly[b])
        };
        let mut state = 0x1234_5678u32;
        for _ in 0..2000 {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            let (a, b) = (state as u16, (state >> 16) as u16);
            assert_eq!(
                to_poly(field.mul(a, b)),
                poly_mul_reference(to_poly(a), to_poly(b))
            );
        }
    }

    #[test]
    fn vanishing_polynomials_have_the_cantor_properties() {
        let field = tables();
        for b in 0..16 {
            // s_i(v_b) by iterating y -> y^2 + y from v_b (Cantor coordinates: v_b = 1 << b).
            let mut value = 1u16 << b;
            for i in 0..16 {
                match b.cmp(&i) {
                    std::cmp::Ordering::Less => assert_eq!(value, 0, "s_{i} kills v_{b}"),
                    std::cmp::Ordering::Equal => assert_eq!(value, 1, "s_{i}(v_{i}) = 1"),
                    std::cmp::Ordering::Greater => assert_ne!(value, 0),
                }
                value = field.mul(value, value) ^ value;
            }
        }
        // Only the first block of each layer has a zero constant.
        let zero_indices: Vec<usize> = (0..ORDER)
            .filter(|&index| field.skew_log[index] == ZERO_LOG)
            .collect();
        let expected: Vec<usize> = (0..16)
            .map(|layer| (1 << layer) - 1)
            .chain([ORDER - 1])
            .collect();
        assert_eq!(zero_indices, expected);
    }

    #[test]
    fn nibble_tables_match_scalar_products() {
        let field = tables();
        for log_c in [0u16, 1, 77, 40_000, 65_534, ZERO_LOG] {
            let table = NibbleTable::for_log(log_c, field);
            for x in [0u16, 1, 0x00F0, 0x0F00, 0xF000, 0xABCD, 0xFFFF] {
                let nibbles = [x & 15, (x >> 4) & 15, (x >> 8) & 15, x >> 12];
                let mut product = 0u16;
                for (k, &n) in nibbles.iter().enumerate() {
                    product ^=
                        table.lo[k][n as usize] as u16 | (table.hi[k][n as usize] as u16) << 8;
                }
                assert_eq!(product, field.mul_log(x, log_c));
            }
        }
    }

    #[test]
    fn fwht_twice_scales_by_the_length() {
        let original: Vec<u32> = (0..64u32).map(|i| (i * 7919) % MODULUS).collect();
        let mut values = original.clone();
        fwht(&mut values);
        fwht(&mut values);
        for (after, before) in values.iter().zip(&original) {
            assert_eq!(*after as u64, (*before as u64 * 64) % MODULUS as u64);
        }
    }
}
