//! Symmetric crypto for the media plane: AES-128-GCM for punktfunk/1
//! datagrams ([`aes_gcm`]) and AES-128-CBC for GameStream audio
//! ([`aes_cbc`]). Both run on the system OpenSSL.

pub mod aes_cbc;
pub mod aes_gcm;
pub(crate) mod evp;

use std::fmt;

/// AES-128 key length in bytes.
pub const KEY_LEN: usize = 16;

/// Why a crypto operation failed. Never carries key material.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CryptoError {
    /// An all-zero key: almost certainly an uninitialised key, so refused.
    ZeroKey,
    /// A buffer had an unusable length.
    InvalidLength {
        /// Which buffer.
        what: &'static str,
        /// Its length in bytes.
        len: usize,
    },
    /// AEAD tag mismatch: wrong key, wrong seq/direction, or tampered data.
    AuthenticationFailed,
    /// CBC padding invalid after decryption (wrong key/IV or corrupted data).
    BadPadding,
    /// A sealer was asked to reuse (or go back to) a sequence number, which
    /// would reuse a GCM nonce.
    SeqNotIncreasing {
        /// The refused seq.
        seq: u64,
        /// The last seq this sealer used.
        last: u64,
    },
    /// OpenSSL failed for a reason unrelated to the input (e.g. allocation).
    Backend(String),
}

impl fmt::Display for CryptoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CryptoError::ZeroKey => write!(f, "all-zero key refused"),
            CryptoError::InvalidLength { what, len } => {
                write!(f, "invalid length {len} for {what}")
            }
            CryptoError::AuthenticationFailed => write!(f, "AEAD authentication failed"),
            CryptoError::BadPadding => write!(f, "bad CBC padding"),
            CryptoError::SeqNotIncreasing { seq, last } => {
                write!(
                    f,
                    "seq {seq} not above last sealed seq {last} (nonce reuse)"
                )
            }
            CryptoError::Backend(msg) => write!(f, "OpenSSL error: {msg}"),
        }
    }
}

impl std::error::Error for CryptoError {}

/// Refuses the all-zero key (see [`CryptoError::ZeroKey`]).
fn check_key(key: &[u8; KEY_LEN]) -> Result<(), CryptoError> {
    if key.iter().all(|&b| b == 0) {
        Err(CryptoError::ZeroKey)
    } else {
        Ok(())
    }
}
