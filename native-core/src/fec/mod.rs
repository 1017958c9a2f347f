//! Erasure codes for media packets: a block of `data` equal-length shards gets `parity` recovery shards; any `data` of the `data + parity` shards rebuild the block.
pub mod gf8;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FecError {
    /// Shard counts or sizes the code cannot take (message says which limit).
    InvalidParameters(String),
    /// Fewer than `needed` shards present: the block cannot be recovered.
    TooFewShards { needed: usize, present: usize },
}

impl std::fmt::Display for FecError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FecError::InvalidParameters(reason) => {
                write!(f, "invalid erasure-code parameters: {reason}")
            }
            FecError::TooFewShards { needed, present } => write!(
                f,
                "block cannot be recovered: {present} shards present, {needed} needed"
            ),
        }
    }
}

impl std::error::Error for FecError {}

pub trait ErasureCode {
    fn data_shards(&self) -> usize;
    fn parity_shards(&self) -> usize;
    /// `data.len() == data_shards`, `parity.len() == parity_shards`, every slice the same length.
    fn encode(&mut self, data: &[&[u8]], parity: &mut [&mut [u8]]) -> Result<(), FecError>;
    /// `shards.len() == data + parity`, all the same length; `present[i]` tells which hold valid bytes.
    /// Rewrites every missing DATA shard in place (missing parity shards may be left as they are).
    fn reconstruct(&mut self, shards: &mut [&mut [u8]], present: &[bool]) -> Result<(), FecError>;
}

#[cfg(test)]
mod tests {
    use super::FecError;

    #[test]
    fn errors_render_their_details() {
        let invalid = FecError::InvalidParameters("data shards must be at least 1".into());
        assert_eq!(
            invalid.to_string(),
            "invalid erasure-code parameters: data shards must be at least 1"
        );
        let too_few = FecError::TooFewShards {
            needed: 4,
            present: 3,
        };
        assert_eq!(
            too_few.to_string(),
            "block cannot be recovered: 3 shards present, 4 needed"
        );
    }
}
