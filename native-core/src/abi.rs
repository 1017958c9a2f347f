//! The C ABI (version [`crate::ABI_VERSION`]): every `pf_*` export of the
//! cdylib, and nothing else. Each export runs its body inside
//! `catch_unwind`; a failure (including a caught panic, `PF_ERR_PANIC`)
//! stores its message as the calling thread's last error, readable with
//! [`pf_last_error`].
//!
//! C declarations:
//! ```c
//! uint32_t pf_abi_version(void);
//! size_t   pf_last_error(uint8_t *buf, size_t cap);
//! int32_t  pf_log_set_level(uint32_t level);
//! ssize_t  pf_log_drain(uint8_t *buf, size_t cap);
//! int32_t  pf_debug_panic(void);                 /* tests only */
//! char    *pf_probe_encoders_json(uint32_t width, uint32_t height);
//! void     pf_string_free(char *s);
//! ```

use std::any::Any;
use std::ffi::{c_char, CString};
use std::panic::{self, AssertUnwindSafe};
use std::ptr;

use crate::encode::{libav_log, probe};
use crate::error::{Error, Result};
use crate::status::{PF_ERR_PANIC, PF_OK};
use crate::{last_error, log};

/// Runs an export body: catches panics (→ `PF_ERR_PANIC`) and stores any
/// failure's message as this thread's last error.
///
/// `AssertUnwindSafe` is sound here because the state an export can leave
/// behind is either lock-protected and kept consistent across panics (the log
/// queue takes over poisoned locks; each mutation is a single push/pop) or
/// thread-local and overwritten by the next call (the last error).
fn guarded<T>(export: &'static str, body: impl FnOnce() -> Result<T>) -> Result<T> {
    let result = match panic::catch_unwind(AssertUnwindSafe(body)) {
        Ok(result) => result,
        Err(payload) => {
            let message = format!("panic in {export}: {}", panic_message(payload.as_ref()));
            crate::pf_error!("abi", "{message}");
            Err(Error::new(PF_ERR_PANIC, message))
        }
    };
    if let Err(e) = &result {
        last_error::set(e.message());
    }
    result
}

fn panic_message(payload: &(dyn Any + Send)) -> &str {
    if let Some(s) = payload.downcast_ref::<&'static str>() {
        s
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s
    } else {
        "non-string panic payload"
    }
}

fn status_of(result: Result<()>) -> i32 {
    match result {
        Ok(()) => PF_OK,
        Err(e) => e.status(),
    }
}

/// Builds a byte slice from a C buffer; a null `buf` is allowed only with
/// `cap == 0`.
///
/// # Safety
/// If `buf` is non-null it must be valid for writes of `cap` bytes for `'a`.
unsafe fn out_buffer<'a>(buf: *mut u8, cap: usize) -> Result<&'a mut [u8]> {
    if cap == 0 {
        return Ok(&mut []);
    }
    if buf.is_null() {
        return Err(Error::invalid_argument(format!(
            "buf is null but cap is {cap}"
        )));
    }
    // SAFETY: non-null and, per this function's contract, valid for `cap`
    // bytes of writes for 'a.
    Ok(unsafe { std::slice::from_raw_parts_mut(buf, cap) })
}

/// `uint32_t pf_abi_version(void)`: the C ABI version (1).
#[no_mangle]
pub extern "C" fn pf_abi_version() -> u32 {
    guarded("pf_abi_version", || Ok(crate::ABI_VERSION)).unwrap_or(0)
}

/// `size_t pf_last_error(uint8_t *buf, size_t cap)`: copies this thread's
/// last error message into `buf` (UTF-8, no NUL, truncated to `cap` at a
/// character boundary) and returns its full length in bytes, 0 if none.
/// Pass `buf = NULL, cap = 0` to query the length.
///
/// # Safety
/// `buf` must be null or valid for writes of `cap` bytes.
#[no_mangle]
pub unsafe extern "C" fn pf_last_error(buf: *mut u8, cap: usize) -> usize {
    guarded("pf_last_error", || {
        // A null buffer with a non-zero cap is treated as a length query
        // rather than an error, so reading the error never replaces it.
        let cap = if buf.is_null() { 0 } else { cap };
        // SAFETY: `buf` is non-null here whenever `cap > 0`, and the caller
        // guarantees it is valid for `cap` bytes.
        let out = unsafe { out_buffer(buf, cap) }?;
        Ok(last_error::copy_to(out))
    })
    .unwrap_or(0)
}

/// `int32_t pf_log_set_level(uint32_t level)`: 0=off, 1=error, 2=warn,
/// 3=info (default), 4=debug, 5=trace; larger values fail with
/// `PF_ERR_INVALID_ARGUMENT`. Also adjusts libav's threshold.
#[no_mangle]
pub extern "C" fn pf_log_set_level(level: u32) -> i32 {
    status_of(guarded("pf_log_set_level", || {
        log::set_level(level)?;
        libav_log::sync_level();
        Ok(())
    }))
}

/// `ssize_t pf_log_drain(uint8_t *buf, size_t cap)`: moves as many whole
/// queued log records as fit into `buf`, as JSON lines each ending in `\n`,
/// and returns the number of bytes written (0 when the queue is empty).
/// Returns `PF_ERR_BUFFER_TOO_SMALL` (record stays queued) if not even the
/// first record fits; `log::MAX_RECORD_BYTES` (about 24 KiB) always suffices.
///
/// # Safety
/// `buf` must be null (only with `cap == 0`) or valid for writes of `cap`
/// bytes.
#[no_mangle]
pub unsafe extern "C" fn pf_log_drain(buf: *mut u8, cap: usize) -> isize {
    let result = guarded("pf_log_drain", || {
        // SAFETY: forwarded caller contract: `buf` is valid for `cap` bytes.
        let out = unsafe { out_buffer(buf, cap) }?;
        log::drain(out)
    });
    match result {
        Ok(n) => isize::try_from(n).unwrap_or(isize::MAX),
        Err(e) => e.status() as isize,
    }
}

/// `int32_t pf_debug_panic(void)`: TEST ONLY. Panics deliberately inside the
/// export guard and so always returns `PF_ERR_PANIC`, with the panic message
/// available through [`pf_last_error`]. Lets Rust and TypeScript tests prove
/// that panics never cross the FFI boundary.
#[no_mangle]
pub extern "C" fn pf_debug_panic() -> i32 {
    status_of(guarded("pf_debug_panic", || {
        panic!("deliberate panic for testing");
    }))
}

/// `char *pf_probe_encoders_json(uint32_t width, uint32_t height)`: probes
/// every encoder candidate at the given size and returns the report as a
/// NUL-terminated JSON string owned by the caller (free it with
/// [`pf_string_free`]). Returns NULL and sets the last error on failure
/// (e.g. a size that is 0, odd or above 16384).
#[no_mangle]
pub extern "C" fn pf_probe_encoders_json(width: u32, height: u32) -> *mut c_char {
    guarded("pf_probe_encoders_json", || {
        let json = probe::probe_encoders_json(width, height)?;
        CString::new(json)
            .map(CString::into_raw)
            .map_err(|_| Error::internal("probe JSON contains a NUL byte"))
    })
    .unwrap_or(ptr::null_mut())
}

/// `void pf_string_free(char *s)`: frees a string returned by this library;
/// NULL is a no-op.
///
/// # Safety
/// `s` must be null or a pointer returned by a `pf_*` function documented as
/// caller-owned, not freed before.
#[no_mangle]
pub unsafe extern "C" fn pf_string_free(s: *mut c_char) {
    let _ = guarded("pf_string_free", || {
        if s.is_null() {
            return Ok(());
        }
        // SAFETY: per the contract, `s` came from CString::into_raw in this
        // library and ownership is handed back exactly once.
        drop(unsafe { CString::from_raw(s) });
        Ok(())
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::{PF_ERR_BUFFER_TOO_SMALL, PF_ERR_INVALID_ARGUMENT};
    use std::ffi::CStr;

    fn last_error_string() -> String {
        // SAFETY: null/0 is the documented length query.
        let len = unsafe { pf_last_error(ptr::null_mut(), 0) };
        let mut buf = vec![0u8; len];
        // SAFETY: `buf` is valid for `len` bytes.
        let full = unsafe { pf_last_error(buf.as_mut_ptr(), buf.len()) };
        assert_eq!(full, len);
        String::from_utf8(buf).unwrap()
    }

    #[test]
    fn abi_version_is_one() {
        assert_eq!(pf_abi_version(), 1);
        assert_eq!(crate::ABI_VERSION, 1);
    }

    #[test]
    fn panic_becomes_status_and_last_error() {
        last_error::clear();
        assert_eq!(pf_debug_panic(), PF_ERR_PANIC);
        let msg = last_error_string();
        assert!(msg.contains("deliberate panic for testing"), "{msg}");
        assert!(msg.starts_with("panic in pf_debug_panic: "), "{msg}");
        // Still usable afterwards.
        assert_eq!(pf_abi_version(), 1);
    }

    #[test]
    fn last_error_truncates_at_char_boundary_and_reports_length() {
        last_error::set("größe: 5€");
        let full = "größe: 5€".len();
        // SAFETY: null/0 length query.
        assert_eq!(unsafe { pf_last_error(ptr::null_mut(), 0) }, full);
        // A null buffer with a cap is a length query too, not a crash.
        // SAFETY: the export must ignore `cap` when `buf` is null.
        assert_eq!(unsafe { pf_last_error(ptr::null_mut(), 64) }, full);

        let mut buf = [0xAAu8; 3]; // "gr" + first byte of 'ö' would split it
                                   // SAFETY: `buf` is valid for 3 bytes.
        assert_eq!(unsafe { pf_last_error(buf.as_mut_ptr(), buf.len()) }, full);
        assert_eq!(&buf[..2], b"gr");
        assert_eq!(buf[2], 0xAA, "the partial char must not be written");

        let mut buf = vec![0u8; full + 10];
        // SAFETY: `buf` is valid for its length.
        let n = unsafe { pf_last_error(buf.as_mut_ptr(), buf.len()) };
        assert_eq!(std::str::from_utf8(&buf[..n]).unwrap(), "größe: 5€");
    }

    #[test]
    fn last_error_is_empty_on_a_fresh_thread() {
        let len = std::thread::spawn(|| {
            // SAFETY: null/0 length query.
            unsafe { pf_last_error(ptr::null_mut(), 0) }
        })
        .join()
        .unwrap();
        assert_eq!(len, 0);
    }

    #[test]
    fn probe_export_returns_json_and_rejects_bad_sizes() {
        let p = pf_probe_encoders_json(1281, 720);
        assert!(p.is_null());
        assert!(last_error_string().contains("width 1281"));
        assert!(pf_probe_encoders_json(0, 0).is_null());
        assert!(pf_probe_encoders_json(1280, 16386).is_null());
        assert!(last_error_string().contains("height 16386"));

        let p = pf_probe_encoders_json(320, 240);
        assert!(!p.is_null(), "{}", last_error_string());
        // SAFETY: a non-null return is a valid NUL-terminated string that we
        // own until pf_string_free.
        let json = unsafe { CStr::from_ptr(p) }.to_str().unwrap().to_owned();
        // SAFETY: `p` came from pf_probe_encoders_json and is freed once;
        // null is explicitly allowed.
        unsafe {
            pf_string_free(p);
            pf_string_free(ptr::null_mut());
        }
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(
            (v["width"].as_u64(), v["height"].as_u64()),
            (Some(320), Some(240))
        );
        assert_eq!(v["encoders"].as_array().unwrap().len(), 10);
    }

    /// The only test that touches the global log level and drains the global
    /// queue (other tests may add records concurrently, never remove them).
    #[test]
    fn global_log_end_to_end_through_the_exports() {
        assert_eq!(pf_log_set_level(6), PF_ERR_INVALID_ARGUMENT);
        assert!(last_error_string().contains("log level 6"));
        assert_eq!(pf_log_set_level(3), PF_OK);

        let marker = "abi-e2e \"quoted\" \\ line\nbreak";
        crate::pf_info!("abi", "{marker}");
        crate::pf_debug!("abi", "abi-e2e debug must be filtered at info");
        // libav lines are forwarded too: libx264 complains about odd sizes.
        let bad = probe::probe_settings(
            probe::CANDIDATES
                .iter()
                .find(|c| c.encoder == "libx264")
                .unwrap(),
            321,
            241,
        );
        assert!(crate::encode::libav::Encoder::open(&bad).is_err());

        // A one-byte buffer cannot hold any record: BUFFER_TOO_SMALL, kept.
        let mut tiny = [0u8; 1];
        // SAFETY: `tiny` is valid for 1 byte.
        let r = unsafe { pf_log_drain(tiny.as_mut_ptr(), tiny.len()) };
        assert_eq!(r, PF_ERR_BUFFER_TOO_SMALL as isize);
        // SAFETY: null with cap > 0 is rejected before any access.
        let r = unsafe { pf_log_drain(ptr::null_mut(), 16) };
        assert_eq!(r, PF_ERR_INVALID_ARGUMENT as isize);

        let mut records = Vec::new();
        let mut buf = vec![0u8; log::MAX_RECORD_BYTES];
        loop {
            // SAFETY: `buf` is valid for its length.
            let n = unsafe { pf_log_drain(buf.as_mut_ptr(), buf.len()) };
            assert!(n >= 0, "drain failed: {n}");
            if n == 0 {
                break;
            }
            let text = std::str::from_utf8(&buf[..n as usize]).unwrap();
            assert!(text.ends_with('\n'));
            for line in text.lines() {
                let v: serde_json::Value = serde_json::from_str(line).unwrap();
                assert!(v["t_ms"].as_u64().unwrap() > 1_600_000_000_000);
                records.push(v);
            }
        }
        assert!(
            records
                .iter()
                .any(|r| r["msg"] == marker && r["target"] == "abi" && r["level"] == "info"),
            "marker record missing"
        );
        assert!(!records
            .iter()
            .any(|r| r["msg"] == "abi-e2e debug must be filtered at info"));
        assert!(
            records.iter().any(|r| r["target"] == "libav"
                && r["level"] == "error"
                && r["msg"].as_str().unwrap().starts_with("libx264: ")),
            "no forwarded libav error among {} records",
            records.len()
        );
        assert!(records
            .iter()
            .all(|r| !r["msg"].as_str().unwrap().ends_with('\n')));

        // Level off silences everything, including forwarded libav lines.
        assert_eq!(pf_log_set_level(0), PF_OK);
        crate::pf_error!("abi", "abi-e2e must not be recorded when off");
        assert_eq!(pf_log_set_level(3), PF_OK);
        let n = {
            // SAFETY: `buf` is valid for its length.
            unsafe { pf_log_drain(buf.as_mut_ptr(), buf.len()) }
        };
        let text = std::str::from_utf8(&buf[..n.max(0) as usize]).unwrap();
        assert!(!text.contains("must not be recorded when off"), "{text}");
    }
}
