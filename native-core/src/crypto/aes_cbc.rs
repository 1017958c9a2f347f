//! AES-128-CBC with PKCS#7 padding, as GameStream (Moonlight) uses for audio
//! payloads, plus GameStream's per-packet IV derivation.
//!
//! Audio runs at a few hundred packets per second, so the one-shot OpenSSL
//! API (one small allocation per packet) is fine here.

use openssl::symm::{self, Cipher};

use super::{check_key, CryptoError, KEY_LEN};

/// AES block (and CBC IV) size in bytes.
pub const BLOCK_LEN: usize = 16;

/// Encrypts `plaintext` with PKCS#7 padding; the output is 1–16 bytes longer
/// than the input (always a whole number of blocks). Refuses the zero key.
pub fn encrypt(
    key: &[u8; KEY_LEN],
    iv: &[u8; BLOCK_LEN],
    plaintext: &[u8],
) -> Result<Vec<u8>, CryptoError> {
    check_key(key)?;
    symm::encrypt(Cipher::aes_128_cbc(), key, Some(iv), plaintext)
        .map_err(|e| CryptoError::Backend(e.to_string()))
}

/// Decrypts and strips PKCS#7 padding. A ciphertext that is empty or not a
/// whole number of blocks is [`CryptoError::InvalidLength`]; bad padding
/// (wrong key/IV, corruption) is [`CryptoError::BadPadding`].
pub fn decrypt(
    key: &[u8; KEY_LEN],
    iv: &[u8; BLOCK_LEN],
    ciphertext: &[u8],
) -> Result<Vec<u8>, CryptoError> {
    check_key(key)?;
    if ciphertext.is_empty() || !ciphertext.len().is_multiple_of(BLOCK_LEN) {
        return Err(CryptoError::InvalidLength {
            what: "CBC ciphertext",
            len: ciphertext.len(),
        });
    }
    // With the length checked, OpenSSL's only remaining failure is the
    // padding check ("bad decrypt"); the error stack is drained either way.
    symm::decrypt(Cipher::aes_128_cbc(), key, Some(iv), ciphertext)
        .map_err(|_| CryptoError::BadPadding)
}

/// GameStream's audio IV: `BE32(ri_key_id + rtp_seq)` (wrapping) followed by
/// 12 zero bytes. `ri_key_id` is the integer from the launch request's
/// `rikeyid`.
pub fn gamestream_audio_iv(ri_key_id: u32, rtp_seq: u16) -> [u8; BLOCK_LEN] {
    let mut iv = [0u8; BLOCK_LEN];
    iv[..4].copy_from_slice(&ri_key_id.wrapping_add(u32::from(rtp_seq)).to_be_bytes());
    iv
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::evp::tests::hex;
    use proptest::prelude::*;

    // NIST SP 800-38A, F.2.1 CBC-AES128.Encrypt.
    const KEY: &str = "2b7e151628aed2a6abf7158809cf4f3c";
    const IV: &str = "000102030405060708090a0b0c0d0e0f";
    const PLAINTEXT: &str = "6bc1bee22e409f96e93d7e117393172a ae2d8a571e03ac9c9eb76fac45af8e51
                             30c81c46a35ce411e5fbc1191a0a52ef f69f2445df4f9b17ad2b417be66c3710";
    const CIPHERTEXT: &str = "7649abac8119b246cee98e9b12e9197d 5086cb9b507219ee95db113a917678b2
                              73bed6b8e3c1743b7116e69e22229516 3ff1caa1681fac09120eca307586e1a7";

    fn key() -> [u8; 16] {
        hex(KEY).try_into().unwrap()
    }
    fn iv() -> [u8; 16] {
        hex(IV).try_into().unwrap()
    }

    #[test]
    fn sp800_38a_known_answer() {
        // The vectors have no padding; PKCS#7 appends one full padding block
        // after the four, so the first 64 bytes must match exactly.
        let out = encrypt(&key(), &iv(), &hex(PLAINTEXT)).unwrap();
        assert_eq!(out.len(), 64 + BLOCK_LEN);
        assert_eq!(out[..64], hex(CIPHERTEXT)[..]);
        assert_eq!(decrypt(&key(), &iv(), &out).unwrap(), hex(PLAINTEXT));
        // First block alone, too (the brief's minimal KAT).
        let first = encrypt(&key(), &iv(), &hex(PLAINTEXT)[..16]).unwrap();
        assert_eq!(first[..16], hex(CIPHERTEXT)[..16]);
    }

    #[test]
    fn padding_lengths() {
        for len in 0..=40usize {
            let plaintext = vec![0xa5u8; len];
            let out = encrypt(&key(), &iv(), &plaintext).unwrap();
            assert_eq!(out.len(), (len / BLOCK_LEN + 1) * BLOCK_LEN);
            assert_eq!(decrypt(&key(), &iv(), &out).unwrap(), plaintext);
        }
    }

    #[test]
    fn bad_padding_and_bad_lengths_are_errors() {
        let mut out = encrypt(&key(), &iv(), b"opus frame").unwrap();
        // Flip the last byte: padding byte becomes garbage.
        let last = out.len() - 1;
        out[last] ^= 0x55;
        assert_eq!(decrypt(&key(), &iv(), &out), Err(CryptoError::BadPadding));
        for len in [0usize, 1, 15, 17, 31] {
            assert!(matches!(
                decrypt(&key(), &iv(), &vec![0u8; len]),
                Err(CryptoError::InvalidLength { .. })
            ));
        }
    }

    #[test]
    fn zero_key_refused() {
        let zero = [0u8; 16];
        assert_eq!(encrypt(&zero, &iv(), b"x"), Err(CryptoError::ZeroKey));
        assert_eq!(decrypt(&zero, &iv(), &[0; 16]), Err(CryptoError::ZeroKey));
    }

    #[test]
    fn audio_iv_layout_and_wrap() {
        let iv = gamestream_audio_iv(0xffff_ffff, 2);
        assert_eq!(iv[..4], [0, 0, 0, 1]);
        assert_eq!(iv[4..], [0u8; 12]);
        assert_eq!(gamestream_audio_iv(0x0102_0304, 0x0100)[..4], [1, 2, 4, 4]);
        assert_eq!(gamestream_audio_iv(0, 0), [0u8; 16]);
    }

    proptest! {
        #[test]
        fn decrypt_of_arbitrary_bytes_never_panics(
            data in proptest::collection::vec(any::<u8>(), 0..100),
            k in any::<[u8; 16]>(),
        ) {
            let _ = decrypt(&k, &iv(), &data);
        }

        #[test]
        fn round_trip(data in proptest::collection::vec(any::<u8>(), 0..300), seq in any::<u16>()) {
            let iv = gamestream_audio_iv(0x1234_5678, seq);
            let out = encrypt(&key(), &iv, &data).unwrap();
            prop_assert_eq!(decrypt(&key(), &iv, &out).unwrap(), data);
        }
    }
}
