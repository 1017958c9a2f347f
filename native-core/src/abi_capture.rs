//! C ABI probe for X11 capture, for `punktfunk selftest`: whether a display
//! opens and offers what MIT-SHM capture needs, without starting a session.
//!
//! ```c
//! int32_t pf_capture_x11_probe(const uint8_t *display, size_t len, uint32_t *out_wh,
//!                              uint8_t *err, size_t err_cap);
//!                      /* PF_OK and width, height in out_wh; else the reason in err */
//! ```

use crate::abi_session::{guarded, input_text, write_error};
use crate::capture::x11::probe_display;
use crate::status::{PF_ERR_INVALID_ARGUMENT, PF_ERR_UNSUPPORTED, PF_OK};

/// `int32_t pf_capture_x11_probe(const uint8_t *display, size_t len, uint32_t *out_wh, uint8_t *err, size_t err_cap)`:
/// opens X display `display` (UTF-8, e.g. `:99`), checks MIT-SHM and the
/// root window's pixel format, writes the screen size to `out_wh` and
/// returns `PF_OK`; otherwise `PF_ERR_UNSUPPORTED` (or
/// `PF_ERR_INVALID_ARGUMENT` for bad arguments) with a NUL-terminated reason
/// in `err`. Blocks for the X round trips, so call it off the JS thread.
///
/// # Safety
/// `display` valid for `len` bytes; `out_wh` null or valid for two u32;
/// `err` null or valid for `err_cap` bytes.
#[no_mangle]
pub unsafe extern "C" fn pf_capture_x11_probe(
    display: *const u8,
    len: usize,
    out_wh: *mut u32,
    err: *mut u8,
    err_cap: usize,
) -> i32 {
    if out_wh.is_null() {
        // SAFETY: forwarded caller contract.
        unsafe { write_error(err, err_cap, "out_wh is null") };
        return PF_ERR_INVALID_ARGUMENT;
    }
    let result = guarded(|| {
        // SAFETY: forwarded caller contract.
        let name = unsafe { input_text(display, len) }?;
        probe_display(&name).map_err(|e| e.to_string())
    });
    match result {
        Ok((width, height)) => {
            // SAFETY: non-null and, per the contract, valid for two u32.
            unsafe {
                *out_wh = width;
                *out_wh.add(1) = height;
            }
            PF_OK
        }
        Err(message) => {
            // SAFETY: forwarded caller contract.
            unsafe { write_error(err, err_cap, &message) };
            PF_ERR_UNSUPPORTED
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::x11::xvfb::Xvfb;
    use std::ptr;

    fn probe(display: &str) -> (i32, [u32; 2], String) {
        let mut wh = [0u32; 2];
        let mut err = [0xFFu8; 128];
        // SAFETY: valid buffers of the stated sizes.
        let status = unsafe {
            pf_capture_x11_probe(
                display.as_ptr(),
                display.len(),
                wh.as_mut_ptr(),
                err.as_mut_ptr(),
                err.len(),
            )
        };
        let text = std::ffi::CStr::from_bytes_until_nul(&err)
            .map(|c| c.to_string_lossy().into_owned())
            .unwrap_or_default();
        (status, wh, text)
    }

    #[test]
    fn missing_display_and_null_output_are_refused_with_the_reason() {
        let (status, wh, text) = probe(":65003");
        assert_eq!((status, wh), (PF_ERR_UNSUPPORTED, [0, 0]));
        assert_eq!(text, "source unavailable: cannot open display :65003");
        let mut err = [0u8; 64];
        // SAFETY: null output is refused before anything is read or written but `err`.
        let status =
            unsafe { pf_capture_x11_probe(ptr::null(), 0, ptr::null_mut(), err.as_mut_ptr(), 64) };
        assert_eq!(status, PF_ERR_INVALID_ARGUMENT);
    }

    #[test]
    #[ignore = "needs Xvfb (bootstrap.sh runs it when installed)"]
    fn needs_xvfb_probe_reports_the_screen_size_and_refuses_16_bit_screens() {
        let server = Xvfb::require("800x600x24");
        assert_eq!(probe(&server.display()), (PF_OK, [800, 600], String::new()));
        let shallow = Xvfb::require("640x480x16");
        let (status, _, text) = probe(&shallow.display());
        assert_eq!(status, PF_ERR_UNSUPPORTED);
        assert!(text.contains("depth is 16"), "{text}");
    }
}
