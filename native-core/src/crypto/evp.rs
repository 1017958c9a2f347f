//! The crate's only FFI edge: a minimal owner of an OpenSSL `EVP_CIPHER_CTX`
//! keyed once for AES-128-GCM that seals and opens buffers in place.
//!
//! The `openssl` crate's safe `CipherCtx` cannot encrypt in place (its input
//! and output are separate slices), and `symm::encrypt_aead` allocates per
//! call; a sender that seals straight into its packet arena needs neither.
//! Keying once and only re-setting the IV per packet also skips the AES key
//! schedule on every packet.

use std::os::raw::{c_int, c_void};
use std::ptr::{self, NonNull};

use openssl_sys as ffi;

use super::{CryptoError, KEY_LEN};

/// GCM nonce length: OpenSSL's default for AES-GCM, and the 96-bit size for
/// which GCM needs no extra GHASH pass over the IV.
pub(crate) const GCM_NONCE_LEN: usize = 12;
/// Full 128-bit GCM tag; we never truncate.
pub(crate) const GCM_TAG_LEN: usize = 16;

/// Whether a context was initialised for sealing or opening.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum GcmMode {
    Seal,
    Open,
}

/// An AES-128-GCM context with its key schedule loaded.
pub(crate) struct GcmContext {
    ctx: NonNull<ffi::EVP_CIPHER_CTX>,
    mode: GcmMode,
}

// SAFETY: the context is exclusively owned by this value and every use goes
// through `&mut self`; OpenSSL cipher contexts have no thread affinity, so
// moving one to another thread is sound. (Not `Sync`: no shared use.)
unsafe impl Send for GcmContext {}

impl Drop for GcmContext {
    fn drop(&mut self) {
        // SAFETY: `ctx` came from EVP_CIPHER_CTX_new and is freed exactly once
        // here; EVP_CIPHER_CTX_free also cleanses the key schedule.
        unsafe { ffi::EVP_CIPHER_CTX_free(self.ctx.as_ptr()) }
    }
}

/// Collects (and thereby clears) OpenSSL's thread-local error queue so a
/// failure here cannot leak into unrelated OpenSSL calls later.
fn backend_error(call: &str) -> CryptoError {
    let stack = openssl::error::ErrorStack::get();
    CryptoError::Backend(format!("{call} failed: {stack}"))
}

/// Converts a buffer length to OpenSSL's `int`.
fn c_len(what: &'static str, len: usize) -> Result<c_int, CryptoError> {
    c_int::try_from(len).map_err(|_| CryptoError::InvalidLength { what, len })
}

impl GcmContext {
    /// Allocates a context and loads `key` for `mode`.
    pub(crate) fn new(key: &[u8; KEY_LEN], mode: GcmMode) -> Result<Self, CryptoError> {
        ffi::init();
        // SAFETY: no preconditions; a null return means allocation failure.
        let raw = unsafe { ffi::EVP_CIPHER_CTX_new() };
        let ctx = NonNull::new(raw).ok_or_else(|| backend_error("EVP_CIPHER_CTX_new"))?;
        let this = GcmContext { ctx, mode };
        // SAFETY: `ctx` is a live context; the cipher is a static OpenSSL
        // object; `key` points to 16 readable bytes, the AES-128 key length;
        // a null IV defers the nonce to each seal/open call.
        let ok = unsafe {
            let cipher = ffi::EVP_aes_128_gcm();
            match mode {
                GcmMode::Seal => ffi::EVP_EncryptInit_ex(
                    ctx.as_ptr(),
                    cipher,
                    ptr::null_mut(),
                    key.as_ptr(),
                    ptr::null(),
                ),
                GcmMode::Open => ffi::EVP_DecryptInit_ex(
                    ctx.as_ptr(),
                    cipher,
                    ptr::null_mut(),
                    key.as_ptr(),
                    ptr::null(),
                ),
            }
        };
        if ok != 1 {
            return Err(backend_error("EVP_CipherInit_ex"));
        }
        Ok(this)
    }

    /// Encrypts `buf` in place under `nonce`, authenticating `aad` as well,
    /// and writes the tag.
    pub(crate) fn seal(
        &mut self,
        nonce: &[u8; GCM_NONCE_LEN],
        aad: &[u8],
        buf: &mut [u8],
        tag: &mut [u8; GCM_TAG_LEN],
    ) -> Result<(), CryptoError> {
        debug_assert_eq!(self.mode, GcmMode::Seal);
        let aad_len = c_len("aad", aad.len())?;
        let buf_len = c_len("plaintext", buf.len())?;
        let ctx = self.ctx.as_ptr();
        let mut out_len: c_int = 0;
        // SAFETY (whole block): `ctx` is live and keyed for encryption;
        // `nonce` is 12 readable bytes (the context's IV length); AAD is fed
        // with a null output pointer as OpenSSL requires; the in-place update
        // passes the same pointer as input and output, which EVP_EncryptUpdate
        // explicitly allows, over `buf_len` bytes we exclusively borrow; GCM
        // never emits more bytes than it consumes, and Final emits none, for
        // which `final_block` (one AES block) is ample; the tag buffer has the
        // 16 writable bytes requested.
        unsafe {
            if ffi::EVP_EncryptInit_ex(
                ctx,
                ptr::null(),
                ptr::null_mut(),
                ptr::null(),
                nonce.as_ptr(),
            ) != 1
            {
                return Err(backend_error("EVP_EncryptInit_ex(iv)"));
            }
            if aad_len > 0
                && ffi::EVP_EncryptUpdate(ctx, ptr::null_mut(), &mut out_len, aad.as_ptr(), aad_len)
                    != 1
            {
                return Err(backend_error("EVP_EncryptUpdate(aad)"));
            }
            if buf_len > 0 {
                let data = buf.as_mut_ptr();
                if ffi::EVP_EncryptUpdate(ctx, data, &mut out_len, data, buf_len) != 1
                    || out_len != buf_len
                {
                    return Err(backend_error("EVP_EncryptUpdate"));
                }
            }
            let mut final_block = [0u8; 16];
            if ffi::EVP_EncryptFinal_ex(ctx, final_block.as_mut_ptr(), &mut out_len) != 1 {
                return Err(backend_error("EVP_EncryptFinal_ex"));
            }
            if ffi::EVP_CIPHER_CTX_ctrl(
                ctx,
                ffi::EVP_CTRL_GCM_GET_TAG,
                GCM_TAG_LEN as c_int,
                tag.as_mut_ptr().cast::<c_void>(),
            ) != 1
            {
                return Err(backend_error("EVP_CTRL_GCM_GET_TAG"));
            }
        }
        Ok(())
    }

    /// Decrypts `buf` in place under `nonce` and verifies `tag` over it and
    /// `aad`. On any error `buf` holds unauthenticated bytes and must be
    /// discarded.
    pub(crate) fn open(
        &mut self,
        nonce: &[u8; GCM_NONCE_LEN],
        aad: &[u8],
        buf: &mut [u8],
        tag: &[u8; GCM_TAG_LEN],
    ) -> Result<(), CryptoError> {
        debug_assert_eq!(self.mode, GcmMode::Open);
        let aad_len = c_len("aad", aad.len())?;
        let buf_len = c_len("ciphertext", buf.len())?;
        let ctx = self.ctx.as_ptr();
        let mut out_len: c_int = 0;
        // SAFETY (whole block): as in `seal`, with the context keyed for
        // decryption; EVP_CTRL_GCM_SET_TAG only reads the 16 tag bytes (the
        // `*mut` is a C API wart).
        let verified = unsafe {
            if ffi::EVP_DecryptInit_ex(
                ctx,
                ptr::null(),
                ptr::null_mut(),
                ptr::null(),
                nonce.as_ptr(),
            ) != 1
            {
                return Err(backend_error("EVP_DecryptInit_ex(iv)"));
            }
            if aad_len > 0
                && ffi::EVP_DecryptUpdate(ctx, ptr::null_mut(), &mut out_len, aad.as_ptr(), aad_len)
                    != 1
            {
                return Err(backend_error("EVP_DecryptUpdate(aad)"));
            }
            if buf_len > 0 {
                let data = buf.as_mut_ptr();
                if ffi::EVP_DecryptUpdate(ctx, data, &mut out_len, data, buf_len) != 1
                    || out_len != buf_len
                {
                    return Err(backend_error("EVP_DecryptUpdate"));
                }
            }
            if ffi::EVP_CIPHER_CTX_ctrl(
                ctx,
                ffi::EVP_CTRL_GCM_SET_TAG,
                GCM_TAG_LEN as c_int,
                tag.as_ptr().cast_mut().cast::<c_void>(),
            ) != 1
            {
                return Err(backend_error("EVP_CTRL_GCM_SET_TAG"));
            }
            let mut final_block = [0u8; 16];
            ffi::EVP_DecryptFinal_ex(ctx, final_block.as_mut_ptr(), &mut out_len) == 1
        };
        if verified {
            Ok(())
        } else {
            // SAFETY: no preconditions; drops whatever a failed tag check may
            // have queued so forged packets cannot grow the error queue.
            unsafe { ffi::ERR_clear_error() };
            Err(CryptoError::AuthenticationFailed)
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Lowercase hex string → bytes (test vectors only).
    pub(crate) fn hex(s: &str) -> Vec<u8> {
        let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
        assert_eq!(s.len() % 2, 0, "odd hex length");
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex digit"))
            .collect()
    }

    fn arr<const N: usize>(s: &str) -> [u8; N] {
        hex(s).try_into().expect("vector length")
    }

    // McGrew & Viega, "The Galois/Counter Mode of Operation (GCM)", the
    // AES-128 test cases 3 and 4 (also in the NIST GCM validation suite).
    const TC_KEY: &str = "feffe9928665731c6d6a8f9467308308";
    const TC_IV: &str = "cafebabefacedbaddecaf888";
    const TC_PLAINTEXT: &str = "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72
        1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b391aafd255";
    pub(crate) const TC3_CIPHERTEXT: &str =
        "42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e
         21d514b25466931c7d8f6a5aac84aa051ba30b396a0aac973d58e091473f5985";
    const TC3_TAG: &str = "4d5c2af327cd64a62cf35abd2ba6fab4";
    const TC4_AAD: &str = "feedfacedeadbeeffeedfacedeadbeefabaddad2";
    const TC4_TAG: &str = "5bc94fbc3221a5db94fae95ae7121a47";

    #[test]
    fn gcm_test_case_3_known_answer() {
        let mut ctx = GcmContext::new(&arr(TC_KEY), GcmMode::Seal).unwrap();
        let mut buf = hex(TC_PLAINTEXT);
        let mut tag = [0u8; 16];
        ctx.seal(&arr(TC_IV), &[], &mut buf, &mut tag).unwrap();
        assert_eq!(buf, hex(TC3_CIPHERTEXT));
        assert_eq!(tag, arr::<16>(TC3_TAG));

        let mut opener = GcmContext::new(&arr(TC_KEY), GcmMode::Open).unwrap();
        opener.open(&arr(TC_IV), &[], &mut buf, &tag).unwrap();
        assert_eq!(buf, hex(TC_PLAINTEXT));
    }

    #[test]
    fn gcm_test_case_4_known_answer_with_aad() {
        // Test case 4 drops the last 4 plaintext bytes and adds 20 bytes AAD.
        let mut buf = hex(TC_PLAINTEXT);
        buf.truncate(60);
        let mut tag = [0u8; 16];
        let mut ctx = GcmContext::new(&arr(TC_KEY), GcmMode::Seal).unwrap();
        ctx.seal(&arr(TC_IV), &hex(TC4_AAD), &mut buf, &mut tag)
            .unwrap();
        assert_eq!(buf, hex(TC3_CIPHERTEXT)[..60]);
        assert_eq!(tag, arr::<16>(TC4_TAG));

        let mut opener = GcmContext::new(&arr(TC_KEY), GcmMode::Open).unwrap();
        let mut wrong_aad = hex(TC4_AAD);
        wrong_aad[0] ^= 1;
        let mut copy = buf.clone();
        assert_eq!(
            opener.open(&arr(TC_IV), &wrong_aad, &mut copy, &tag),
            Err(CryptoError::AuthenticationFailed)
        );
        opener
            .open(&arr(TC_IV), &hex(TC4_AAD), &mut buf, &tag)
            .unwrap();
        assert_eq!(buf, hex(TC_PLAINTEXT)[..60]);
    }

    #[test]
    fn context_is_reusable_and_failures_leave_no_queued_errors() {
        let key = arr::<16>(TC_KEY);
        let mut sealer = GcmContext::new(&key, GcmMode::Seal).unwrap();
        let mut opener = GcmContext::new(&key, GcmMode::Open).unwrap();
        for round in 0u8..4 {
            let mut nonce = arr::<12>(TC_IV);
            nonce[11] = round;
            let mut buf = vec![round; 100 + round as usize];
            let mut tag = [0u8; 16];
            sealer.seal(&nonce, b"aad", &mut buf, &mut tag).unwrap();
            let mut forged = tag;
            forged[15] ^= 0x80;
            let mut copy = buf.clone();
            assert_eq!(
                opener.open(&nonce, b"aad", &mut copy, &forged),
                Err(CryptoError::AuthenticationFailed)
            );
            assert!(openssl::error::ErrorStack::get().errors().is_empty());
            opener.open(&nonce, b"aad", &mut buf, &tag).unwrap();
            assert_eq!(buf, vec![round; 100 + round as usize]);
        }
    }

    #[test]
    fn empty_plaintext_still_authenticates() {
        let key = arr::<16>(TC_KEY);
        let mut sealer = GcmContext::new(&key, GcmMode::Seal).unwrap();
        let mut opener = GcmContext::new(&key, GcmMode::Open).unwrap();
        let mut tag = [0u8; 16];
        sealer.seal(&[7; 12], b"hdr", &mut [], &mut tag).unwrap();
        opener.open(&[7; 12], b"hdr", &mut [], &tag).unwrap();
        assert!(opener.open(&[7; 12], b"hdX", &mut [], &tag).is_err());
    }
}
