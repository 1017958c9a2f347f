//! Forward-error-correction interface used by the packetizer and the
//! reassembler. The real GF(2^8) / GF(2^16) Reed-Solomon codes live
//! elsewhere; this module only fixes the contract ([`ErasureCode`]) and how
//! coders are obtained per block shape ([`CodeProvider`]).
//!
//! Tests use the `test_codes` module (test builds only), a small systematic Cauchy Reed-Solomon code over
//! GF(2^8) that is MDS (any `k` of `k + m` shards recover the data).

pub mod gf16;
pub mod gf8;
pub mod provider;

use std::fmt;

/// Why an erasure-code operation failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FecError {
    /// Shard counts/lengths the code cannot handle.
    InvalidParameters(String),
    /// Fewer than `needed` shards are present.
    TooFewShards {
        /// Shards required (the data-shard count).
        needed: usize,
        /// Shards marked present.
        present: usize,
    },
}

impl fmt::Display for FecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FecError::InvalidParameters(msg) => write!(f, "invalid FEC parameters: {msg}"),
            FecError::TooFewShards { needed, present } => {
                write!(f, "too few shards: {present} present, {needed} needed")
            }
        }
    }
}

impl std::error::Error for FecError {}

/// A systematic erasure code with fixed `data_shards` (k) and
/// `parity_shards` (m).
pub trait ErasureCode {
    /// k: data shards per block.
    fn data_shards(&self) -> usize;
    /// m: parity shards per block.
    fn parity_shards(&self) -> usize;
    /// Computes all `parity` shards (overwriting them) from `data`; all
    /// shards have equal length.
    fn encode(&mut self, data: &[&[u8]], parity: &mut [&mut [u8]]) -> Result<(), FecError>;
    /// `shards.len() == data + parity`, equal lengths; `present[i]` marks
    /// valid shards; rewrites missing DATA shards (parity may be left as is).
    fn reconstruct(&mut self, shards: &mut [&mut [u8]], present: &[bool]) -> Result<(), FecError>;
}

/// The FEC scheme of a block, as carried in the punktfunk/1 header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FecScheme {
    /// No parity shards.
    None,
    /// Reed-Solomon over GF(2^8): at most 255 shards (data + parity) a block.
    Gf8,
    /// Reed-Solomon over GF(2^16): at most 65535 shards a block (the u16
    /// header fields).
    Gf16,
}

impl FecScheme {
    /// Most shards (data + parity) one block of this scheme may have.
    pub fn max_block_shards(self) -> usize {
        match self {
            // Without parity the limit is only the u16 header fields.
            FecScheme::None | FecScheme::Gf16 => u16::MAX as usize,
            FecScheme::Gf8 => 255,
        }
    }
}

/// Hands out a coder for a block shape. Implementations are expected to
/// cache coders (building an RS matrix per frame would be wasteful); the
/// packetizer and reassembler call this once per block that needs coding.
pub trait CodeProvider {
    /// A coder for `scheme` (never [`FecScheme::None`]) with `data_shards`
    /// data and `parity_shards` parity shards.
    fn code(
        &mut self,
        scheme: FecScheme,
        data_shards: usize,
        parity_shards: usize,
    ) -> Result<&mut dyn ErasureCode, FecError>;
}

#[cfg(test)]
pub(crate) mod test_codes {
    //! Test-only systematic Cauchy Reed-Solomon code over GF(2^8).
    //!
    //! Parity row i, data column j has coefficient 1 / (x_i + y_j) with
    //! x_i = k + i and y_j = j (distinct field elements, so k + m ≤ 256).
    //! Every square submatrix of a Cauchy matrix is invertible, which makes
    //! `[I; C]` MDS. Reconstruction solves only for the missing data shards
    //! (an e×e system for e erasures), so tests stay fast.

    use super::{CodeProvider, ErasureCode, FecError, FecScheme};
    use std::collections::HashMap;

    /// GF(2^8) log/antilog tables for the polynomial x^8+x^4+x^3+x^2+1
    /// (0x11d) with generator 2.
    struct Gf256 {
        exp: [u8; 512],
        log: [u8; 256],
    }

    impl Gf256 {
        fn new() -> Self {
            let mut exp = [0u8; 512];
            let mut log = [0u8; 256];
            let mut x: u16 = 1;
            for (i, slot) in exp.iter_mut().take(255).enumerate() {
                *slot = x as u8;
                log[x as usize] = i as u8;
                x <<= 1;
                if x & 0x100 != 0 {
                    x ^= 0x11d;
                }
            }
            // Doubled table: mul can index log a + log b (< 510) directly.
            exp.copy_within(0..255, 255);
            Gf256 { exp, log }
        }

        fn mul(&self, a: u8, b: u8) -> u8 {
            if a == 0 || b == 0 {
                0
            } else {
                self.exp[self.log[a as usize] as usize + self.log[b as usize] as usize]
            }
        }

        fn inv(&self, a: u8) -> u8 {
            assert_ne!(a, 0, "zero has no inverse");
            self.exp[255 - self.log[a as usize] as usize]
        }

        /// dst ^= c · src, bytewise.
        fn mul_add(&self, c: u8, src: &[u8], dst: &mut [u8]) {
            let table: Vec<u8> = (0..=255u8).map(|b| self.mul(c, b)).collect();
            for (d, s) in dst.iter_mut().zip(src) {
                *d ^= table[*s as usize];
            }
        }
    }

    /// The test code for one (k, m).
    pub(crate) struct CauchyTestCode {
        k: usize,
        m: usize,
        gf: Gf256,
        /// m rows × k columns.
        coeff: Vec<Vec<u8>>,
    }

    impl CauchyTestCode {
        pub(crate) fn new(k: usize, m: usize) -> Result<Self, FecError> {
            if k == 0 || k + m > 256 {
                return Err(FecError::InvalidParameters(format!("k={k} m={m}")));
            }
            let gf = Gf256::new();
            let coeff = (0..m)
                .map(|i| (0..k).map(|j| gf.inv(((k + i) ^ j) as u8)).collect())
                .collect();
            Ok(CauchyTestCode { k, m, gf, coeff })
        }
    }

    fn check_lengths(lens: impl Iterator<Item = usize>) -> Result<usize, FecError> {
        let mut len = None;
        for l in lens {
            if *len.get_or_insert(l) != l {
                return Err(FecError::InvalidParameters("unequal shard lengths".into()));
            }
        }
        Ok(len.unwrap_or(0))
    }

    impl ErasureCode for CauchyTestCode {
        fn data_shards(&self) -> usize {
            self.k
        }

        fn parity_shards(&self) -> usize {
            self.m
        }

        fn encode(&mut self, data: &[&[u8]], parity: &mut [&mut [u8]]) -> Result<(), FecError> {
            if data.len() != self.k || parity.len() != self.m {
                return Err(FecError::InvalidParameters("shard counts".into()));
            }
            check_lengths(
                data.iter()
                    .map(|d| d.len())
                    .chain(parity.iter().map(|p| p.len())),
            )?;
            for (row, out) in self.coeff.iter().zip(parity.iter_mut()) {
                out.fill(0);
                for (&c, d) in row.iter().zip(data) {
                    self.gf.mul_add(c, d, out);
                }
            }
            Ok(())
        }

        fn reconstruct(
            &mut self,
            shards: &mut [&mut [u8]],
            present: &[bool],
        ) -> Result<(), FecError> {
            let (k, m) = (self.k, self.m);
            if shards.len() != k + m || present.len() != k + m {
                return Err(FecError::InvalidParameters("shard counts".into()));
            }
            let len = check_lengths(shards.iter().map(|s| s.len()))?;
            let present_count = present.iter().filter(|&&p| p).count();
            if present_count < k {
                return Err(FecError::TooFewShards {
                    needed: k,
                    present: present_count,
                });
            }
            let missing: Vec<usize> = (0..k).filter(|&j| !present[j]).collect();
            if missing.is_empty() {
                return Ok(());
            }
            let e = missing.len();
            let rows: Vec<usize> = (0..m).filter(|&i| present[k + i]).take(e).collect();
            // rhs_r = parity_row ⊕ Σ_{known j} c·d_j
            let mut rhs: Vec<Vec<u8>> = Vec::with_capacity(e);
            for &i in &rows {
                let mut acc = shards[k + i].to_vec();
                for j in (0..k).filter(|&j| present[j]) {
                    self.gf.mul_add(self.coeff[i][j], shards[j], &mut acc);
                }
                rhs.push(acc);
            }
            // Invert the e×e Cauchy submatrix by Gauss-Jordan.
            let mut a: Vec<Vec<u8>> = rows
                .iter()
                .map(|&i| missing.iter().map(|&j| self.coeff[i][j]).collect())
                .collect();
            let mut inv: Vec<Vec<u8>> = (0..e)
                .map(|r| (0..e).map(|c| u8::from(r == c)).collect())
                .collect();
            for col in 0..e {
                let pivot = (col..e)
                    .find(|&r| a[r][col] != 0)
                    .ok_or_else(|| FecError::InvalidParameters("singular".into()))?;
                a.swap(col, pivot);
                inv.swap(col, pivot);
                let scale = self.gf.inv(a[col][col]);
                for c in 0..e {
                    a[col][c] = self.gf.mul(a[col][c], scale);
                    inv[col][c] = self.gf.mul(inv[col][c], scale);
                }
                for r in 0..e {
                    let f = a[r][col];
                    if r != col && f != 0 {
                        for c in 0..e {
                            a[r][c] ^= self.gf.mul(f, a[col][c]);
                            inv[r][c] ^= self.gf.mul(f, inv[col][c]);
                        }
                    }
                }
            }
            for (slot, &j) in missing.iter().enumerate() {
                let mut out = vec![0u8; len];
                for (r, b) in rhs.iter().enumerate() {
                    self.gf.mul_add(inv[slot][r], b, &mut out);
                }
                shards[j].copy_from_slice(&out);
            }
            Ok(())
        }
    }

    /// Caching provider over [`CauchyTestCode`]; ignores the scheme (the
    /// test code serves GF8 and, for ≤ 256 shards, stands in for GF16).
    #[derive(Default)]
    pub(crate) struct TestCodes {
        cache: HashMap<(usize, usize), CauchyTestCode>,
        /// How often a coder was requested (tests assert FEC was or was not used).
        pub(crate) lookups: usize,
    }

    impl CodeProvider for TestCodes {
        fn code(
            &mut self,
            scheme: FecScheme,
            data_shards: usize,
            parity_shards: usize,
        ) -> Result<&mut dyn ErasureCode, FecError> {
            if scheme == FecScheme::None {
                return Err(FecError::InvalidParameters("scheme None".into()));
            }
            self.lookups += 1;
            use std::collections::hash_map::Entry;
            let code = match self.cache.entry((data_shards, parity_shards)) {
                Entry::Occupied(e) => e.into_mut(),
                Entry::Vacant(v) => v.insert(CauchyTestCode::new(data_shards, parity_shards)?),
            };
            Ok(code)
        }
    }

    #[test]
    fn recovers_any_erasure_pattern_up_to_m() {
        let (k, m, len) = (5usize, 3usize, 37usize);
        let mut code = CauchyTestCode::new(k, m).unwrap();
        let data: Vec<Vec<u8>> = (0..k)
            .map(|j| (0..len).map(|t| (t * 31 + j * 7 + 1) as u8).collect())
            .collect();
        let mut parity = vec![vec![0u8; len]; m];
        {
            let d: Vec<&[u8]> = data.iter().map(|v| v.as_slice()).collect();
            let mut p: Vec<&mut [u8]> = parity.iter_mut().map(|v| v.as_mut_slice()).collect();
            code.encode(&d, &mut p).unwrap();
        }
        for mask in 0u32..(1 << (k + m)) {
            let lost = mask.count_ones() as usize;
            let mut shards: Vec<Vec<u8>> = data.iter().chain(&parity).cloned().collect();
            let present: Vec<bool> = (0..k + m).map(|i| mask & (1 << i) == 0).collect();
            for (s, &p) in shards.iter_mut().zip(&present) {
                if !p {
                    s.fill(0xee);
                }
            }
            let mut refs: Vec<&mut [u8]> = shards.iter_mut().map(|v| v.as_mut_slice()).collect();
            let result = code.reconstruct(&mut refs, &present);
            if lost <= m {
                result.unwrap();
                assert_eq!(shards[..k], data[..], "mask {mask:b}");
            } else {
                assert!(matches!(result, Err(FecError::TooFewShards { .. })));
            }
        }
    }
}
