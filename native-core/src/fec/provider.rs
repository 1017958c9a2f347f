//! The production [`CodeProvider`]: real GF(2^8) and GF(2^16) coders, cached by block shape.
//!
//! Frames of similar size reuse the same (k, m) shapes, so a small most-recently-used cache
//! avoids rebuilding matrices and tables per block.

use super::gf16::Gf16Code;
use super::gf8::Gf8Code;
use super::{CodeProvider, ErasureCode, FecError, FecScheme};

/// Shapes kept per scheme; a stream alternates between a handful (P-frames, keyframes, tails).
const CACHED_SHAPES: usize = 16;

struct Entry {
    scheme: FecScheme,
    data: usize,
    parity: usize,
    code: Box<dyn ErasureCode + Send>,
}

#[derive(Default)]
pub struct CachedCodes {
    /// Most recently used first.
    entries: Vec<Entry>,
}

impl CachedCodes {
    pub fn new() -> Self {
        Self::default()
    }
}

impl CodeProvider for CachedCodes {
    fn code(
        &mut self,
        scheme: FecScheme,
        data: usize,
        parity: usize,
    ) -> Result<&mut dyn ErasureCode, FecError> {
        if let Some(position) = self
            .entries
            .iter()
            .position(|e| e.scheme == scheme && e.data == data && e.parity == parity)
        {
            let entry = self.entries.remove(position);
            self.entries.insert(0, entry);
        } else {
            let code: Box<dyn ErasureCode + Send> = match scheme {
                FecScheme::Gf8 => Box::new(Gf8Code::new(data, parity)?),
                FecScheme::Gf16 => Box::new(Gf16Code::new(data, parity)?),
                FecScheme::None => {
                    return Err(FecError::InvalidParameters(
                        "no coder for FEC scheme none".into(),
                    ))
                }
            };
            self.entries.insert(
                0,
                Entry {
                    scheme,
                    data,
                    parity,
                    code,
                },
            );
            self.entries.truncate(CACHED_SHAPES);
        }
        Ok(self.entries[0].code.as_mut())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caches_by_shape_and_scheme_and_codes_work() {
        let mut codes = CachedCodes::new();
        for scheme in [FecScheme::Gf8, FecScheme::Gf16] {
            let code = codes.code(scheme, 4, 2).unwrap();
            assert_eq!((code.data_shards(), code.parity_shards()), (4, 2));
            let data: Vec<Vec<u8>> = (0..4u8).map(|i| vec![i + 1; 64]).collect();
            let data_refs: Vec<&[u8]> = data.iter().map(|d| d.as_slice()).collect();
            let mut parity = [vec![0u8; 64], vec![0u8; 64]];
            let (p0, p1) = parity.split_at_mut(1);
            code.encode(
                &data_refs,
                &mut [p0[0].as_mut_slice(), p1[0].as_mut_slice()],
            )
            .unwrap();
            let mut shards: Vec<Vec<u8>> =
                data.iter().cloned().chain(parity.iter().cloned()).collect();
            shards[0].fill(0);
            shards[3].fill(0);
            let mut refs: Vec<&mut [u8]> = shards.iter_mut().map(|s| s.as_mut_slice()).collect();
            code.reconstruct(&mut refs, &[false, true, true, false, true, true])
                .unwrap();
            assert_eq!(shards[0], data[0]);
            assert_eq!(shards[3], data[3]);
        }
        assert_eq!(codes.entries.len(), 2);
        for k in 1..=40 {
            codes.code(FecScheme::Gf8, k, 2).unwrap();
        }
        assert_eq!(codes.entries.len(), CACHED_SHAPES);
        assert!(codes.code(FecScheme::None, 1, 1).is_err());
    }
}
