//! C ABI for input injection into an X display (XTEST, see
//! [`crate::inject`]). Opening reports errors into a caller buffer (it may
//! run on any thread, e.g. Deno `nonblocking`); the other calls are made
//! per input event from the control plane's thread and report a status
//! code plus the thread's last error (`pf_last_error`). An injector handle
//! must not be used by two threads at once.
//!
//! ```c
//! void   *pf_input_x11_open(const uint8_t *display, size_t len, uint8_t *err, size_t err_cap);
//!                                                   /* NULL on error, message in err */
//! int32_t pf_input_x11_inject(void *injector, const uint8_t *event, size_t len);
//! int32_t pf_input_x11_screen_size(void *injector, uint32_t *out_wh /* width, height */);
//! int32_t pf_input_x11_pointer(void *injector, int32_t *out_xym /* x, y, button mask */);
//! void    pf_input_x11_close(void *injector);      /* NULL is a no-op */
//! ```
//!
//! An event is exactly [`INPUT_EVENT_BYTES`] (16) bytes, little-endian:
//!
//! | offset | type | field |
//! |---|---|---|
//! | 0 | u8  | kind: 1 key, 2 mouse_abs, 3 mouse_rel, 4 button, 5 scroll |
//! | 1 | u8  | down: 1 pressed, 0 released (0 for kinds without a state) |
//! | 2 | u16 | reserved, 0 |
//! | 4 | …   | key: u32 keysym · mouse_abs: i32 x, i32 y (screen pixels) · mouse_rel: i32 dx, i32 dy · button: u8 (1 left, 2 middle, 3 right, 4 X1, 5 X2) · scroll: i32 vertical, i32 horizontal (1/120 notches, positive = up/right) |
//!
//! Unused trailing bytes are ignored. A malformed event (length, kind,
//! down flag) or an unknown button returns `PF_ERR_INVALID_ARGUMENT`; a
//! keysym missing from the keymap `PF_ERR_NOT_FOUND`; a server error or
//! lost connection `PF_ERR_IO`.

use std::ffi::c_void;
use std::ptr;

use crate::abi_session::{guarded, start_handle, stop_handle};
use crate::error::Error;
use crate::inject::{InjectError, InputEvent, XTestInjector};
use crate::last_error;
use crate::status::{PF_ERR_PANIC, PF_OK};

/// Size of one encoded input event.
pub const INPUT_EVENT_BYTES: usize = 16;
/// Event kinds (byte 0).
pub const KIND_KEY: u8 = 1;
pub const KIND_MOUSE_ABSOLUTE: u8 = 2;
pub const KIND_MOUSE_RELATIVE: u8 = 3;
pub const KIND_BUTTON: u8 = 4;
pub const KIND_SCROLL: u8 = 5;

/// Decodes one 16-byte event (format in the module documentation).
pub fn decode_event(bytes: &[u8]) -> Result<InputEvent, InjectError> {
    let bytes: &[u8; INPUT_EVENT_BYTES] = bytes.try_into().map_err(|_| {
        InjectError::InvalidArgument(format!(
            "input event is {} bytes, expected {INPUT_EVENT_BYTES}",
            bytes.len()
        ))
    })?;
    let down = match bytes[1] {
        0 => false,
        1 => true,
        other => {
            return Err(InjectError::InvalidArgument(format!(
                "input event down flag is {other}, expected 0 or 1"
            )))
        }
    };
    let word = |offset: usize| {
        let mut four = [0u8; 4];
        four.copy_from_slice(&bytes[offset..offset + 4]);
        four
    };
    let (first, second) = (i32::from_le_bytes(word(4)), i32::from_le_bytes(word(8)));
    Ok(match bytes[0] {
        KIND_KEY => InputEvent::Key {
            keysym: u32::from_le_bytes(word(4)),
            down,
        },
        KIND_MOUSE_ABSOLUTE => InputEvent::MouseAbsolute {
            x: first,
            y: second,
        },
        KIND_MOUSE_RELATIVE => InputEvent::MouseRelative {
            dx: first,
            dy: second,
        },
        KIND_BUTTON => InputEvent::Button {
            button: bytes[4],
            down,
        },
        KIND_SCROLL => InputEvent::Scroll {
            vertical: first,
            horizontal: second,
        },
        other => {
            return Err(InjectError::InvalidArgument(format!(
                "input event kind {other} is not 1 (key), 2 (mouse_abs), 3 (mouse_rel), \
                 4 (button) or 5 (scroll)"
            )))
        }
    })
}

/// Runs an export body that reports a status: catches panics
/// (`PF_ERR_PANIC`) and stores any failure's message as the last error.
fn status_call(export: &'static str, body: impl FnOnce() -> Result<(), InjectError>) -> i32 {
    let error = match guarded(|| Ok(body())) {
        Ok(Ok(())) => return PF_OK,
        Ok(Err(error)) => Error::new(error.status(), error.to_string()),
        Err(panic) => {
            let message = format!("{panic} (in {export})");
            crate::pf_error!("abi", "{message}");
            Error::new(PF_ERR_PANIC, message)
        }
    };
    last_error::set(error.message());
    error.status()
}

/// # Safety
/// `handle` must be null or a live pointer from [`pf_input_x11_open`], not
/// used by another thread for the duration of the borrow.
unsafe fn injector<'a>(handle: *mut c_void) -> Result<&'a mut XTestInjector, InjectError> {
    // SAFETY: per the contract, null or a live, exclusively used injector.
    unsafe { (handle as *mut XTestInjector).as_mut() }
        .ok_or_else(|| InjectError::InvalidArgument("injector handle is null".to_owned()))
}

/// `void *pf_input_x11_open(const uint8_t *display, size_t len, uint8_t *err, size_t err_cap)`:
/// connects to X display `display` (UTF-8, e.g. `:99`, no NUL needed) and
/// checks for XTEST. Returns an injector handle, or NULL with a
/// NUL-terminated message in `err` (truncated to `err_cap`).
///
/// # Safety
/// `display` valid for `len` bytes; `err` null or valid for `err_cap` bytes.
#[no_mangle]
pub unsafe extern "C" fn pf_input_x11_open(
    display: *const u8,
    len: usize,
    err: *mut u8,
    err_cap: usize,
) -> *mut c_void {
    // SAFETY: forwarded caller contract.
    unsafe {
        start_handle(display, len, err, err_cap, |name| {
            XTestInjector::open(name).map_err(|e| e.to_string())
        })
    }
}

/// `int32_t pf_input_x11_inject(void *injector, const uint8_t *event, size_t len)`:
/// decodes one 16-byte event and injects it (flushed, no round trip).
///
/// # Safety
/// `handle` null or from [`pf_input_x11_open`], not closed, not in use on
/// another thread; `event` null or valid for `len` bytes.
#[no_mangle]
pub unsafe extern "C" fn pf_input_x11_inject(
    handle: *mut c_void,
    event: *const u8,
    len: usize,
) -> i32 {
    status_call("pf_input_x11_inject", || {
        // SAFETY: forwarded caller contract.
        let injector = unsafe { injector(handle) }?;
        let bytes: &[u8] = if event.is_null() {
            if len != 0 {
                return Err(InjectError::InvalidArgument(format!(
                    "input event pointer is null but len is {len}"
                )));
            }
            &[]
        } else {
            // SAFETY: non-null and, per the contract, valid for `len` bytes.
            unsafe { std::slice::from_raw_parts(event, len) }
        };
        injector.inject(&decode_event(bytes)?)
    })
}

/// `int32_t pf_input_x11_screen_size(void *injector, uint32_t *out_wh)`:
/// writes the root window's current width and height (one round trip).
///
/// # Safety
/// `handle` as for [`pf_input_x11_inject`]; `out_wh` null or valid for
/// writes of two `u32`.
#[no_mangle]
pub unsafe extern "C" fn pf_input_x11_screen_size(handle: *mut c_void, out_wh: *mut u32) -> i32 {
    status_call("pf_input_x11_screen_size", || {
        // SAFETY: forwarded caller contract.
        let injector = unsafe { injector(handle) }?;
        if out_wh.is_null() {
            return Err(InjectError::InvalidArgument("out_wh is null".to_owned()));
        }
        let (width, height) = injector.screen_size()?;
        // SAFETY: non-null and, per the contract, valid for two u32 writes;
        // unaligned writes keep a byte buffer from JS acceptable.
        unsafe {
            ptr::write_unaligned(out_wh, width);
            ptr::write_unaligned(out_wh.add(1), height);
        }
        Ok(())
    })
}

/// `int32_t pf_input_x11_pointer(void *injector, int32_t *out_xym)`: writes
/// the pointer's root position and X button/modifier mask (one round trip).
///
/// # Safety
/// `handle` as for [`pf_input_x11_inject`]; `out_xym` null or valid for
/// writes of three `i32`.
#[no_mangle]
pub unsafe extern "C" fn pf_input_x11_pointer(handle: *mut c_void, out_xym: *mut i32) -> i32 {
    status_call("pf_input_x11_pointer", || {
        // SAFETY: forwarded caller contract.
        let injector = unsafe { injector(handle) }?;
        if out_xym.is_null() {
            return Err(InjectError::InvalidArgument("out_xym is null".to_owned()));
        }
        let (x, y, mask) = injector.pointer()?;
        // SAFETY: non-null and, per the contract, valid for three i32 writes;
        // unaligned writes keep a byte buffer from JS acceptable.
        unsafe {
            ptr::write_unaligned(out_xym, x);
            ptr::write_unaligned(out_xym.add(1), y);
            ptr::write_unaligned(out_xym.add(2), mask as i32);
        }
        Ok(())
    })
}

/// `void pf_input_x11_close(void *injector)`: closes the X connection and
/// frees the injector; NULL is a no-op.
///
/// # Safety
/// `handle` null or from [`pf_input_x11_open`], not used afterwards.
#[no_mangle]
pub unsafe extern "C" fn pf_input_x11_close(handle: *mut c_void) {
    // SAFETY: forwarded caller contract.
    unsafe { stop_handle::<XTestInjector>(handle) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::x11::xvfb::Xvfb;
    use crate::status::{PF_ERR_INVALID_ARGUMENT, PF_ERR_NOT_FOUND};

    fn event(kind: u8, down: u8, a: [u8; 4], b: [u8; 4]) -> [u8; INPUT_EVENT_BYTES] {
        let mut bytes = [0u8; INPUT_EVENT_BYTES];
        bytes[0] = kind;
        bytes[1] = down;
        bytes[4..8].copy_from_slice(&a);
        bytes[8..12].copy_from_slice(&b);
        bytes
    }

    fn last_error_text() -> String {
        last_error::get().unwrap_or_default()
    }

    #[test]
    fn inject_decode_reads_every_kind() {
        let cases = [
            (
                event(KIND_KEY, 1, 0x61u32.to_le_bytes(), [0; 4]),
                InputEvent::Key {
                    keysym: 0x61,
                    down: true,
                },
            ),
            (
                event(KIND_KEY, 0, 0xff0du32.to_le_bytes(), [0; 4]),
                InputEvent::Key {
                    keysym: 0xff0d,
                    down: false,
                },
            ),
            (
                event(
                    KIND_MOUSE_ABSOLUTE,
                    0,
                    100i32.to_le_bytes(),
                    50i32.to_le_bytes(),
                ),
                InputEvent::MouseAbsolute { x: 100, y: 50 },
            ),
            (
                event(
                    KIND_MOUSE_RELATIVE,
                    0,
                    (-3i32).to_le_bytes(),
                    7i32.to_le_bytes(),
                ),
                InputEvent::MouseRelative { dx: -3, dy: 7 },
            ),
            (
                event(KIND_BUTTON, 1, [5, 0xAA, 0xAA, 0xAA], [0; 4]),
                InputEvent::Button {
                    button: 5,
                    down: true,
                },
            ),
            (
                event(KIND_SCROLL, 0, (-240i32).to_le_bytes(), 60i32.to_le_bytes()),
                InputEvent::Scroll {
                    vertical: -240,
                    horizontal: 60,
                },
            ),
        ];
        for (bytes, expected) in cases {
            assert_eq!(decode_event(&bytes), Ok(expected));
        }
    }

    #[test]
    fn inject_decode_rejects_malformed_events() {
        let good = event(KIND_KEY, 1, 0x61u32.to_le_bytes(), [0; 4]);
        for len in [0, 1, 15, 17, 32] {
            let mut bytes = good.to_vec();
            bytes.resize(len, 0);
            let error = decode_event(&bytes).unwrap_err();
            assert!(
                matches!(&error, InjectError::InvalidArgument(m) if m.contains(&format!("{len} bytes"))),
                "{error}"
            );
        }
        for kind in [0, 6, 99, 255] {
            let error = decode_event(&event(kind, 0, [0; 4], [0; 4])).unwrap_err();
            assert!(
                error.to_string().contains(&format!("kind {kind}")),
                "{error}"
            );
        }
        let error = decode_event(&event(KIND_KEY, 2, [0; 4], [0; 4])).unwrap_err();
        assert!(error.to_string().contains("down flag is 2"), "{error}");
    }

    #[test]
    fn inject_exports_refuse_null_handles_and_bad_events_without_crashing() {
        let bytes = event(KIND_KEY, 1, 0x61u32.to_le_bytes(), [0; 4]);
        // SAFETY: a null handle is refused before any access.
        let status = unsafe { pf_input_x11_inject(ptr::null_mut(), bytes.as_ptr(), bytes.len()) };
        assert_eq!(status, PF_ERR_INVALID_ARGUMENT);
        assert!(last_error_text().contains("handle is null"));
        let mut wh = [0u32; 2];
        // SAFETY: as above.
        let status = unsafe { pf_input_x11_screen_size(ptr::null_mut(), wh.as_mut_ptr()) };
        assert_eq!(status, PF_ERR_INVALID_ARGUMENT);
        // SAFETY: null is a documented no-op.
        unsafe { pf_input_x11_close(ptr::null_mut()) };

        let mut err = [0xFFu8; 64];
        let name = b":65004";
        // SAFETY: valid buffers of the stated sizes.
        let handle =
            unsafe { pf_input_x11_open(name.as_ptr(), name.len(), err.as_mut_ptr(), err.len()) };
        assert!(handle.is_null());
        let text = std::ffi::CStr::from_bytes_until_nul(&err)
            .unwrap()
            .to_str()
            .unwrap();
        assert_eq!(
            text,
            "input injection unavailable: cannot open display :65004"
        );
    }

    #[test]
    #[ignore = "needs Xvfb (bootstrap.sh runs it when installed)"]
    fn needs_xvfb_inject_exports_drive_an_injector() {
        let server = Xvfb::require("640x480x24");
        let name = server.display();
        // SAFETY: valid input; error buffer omitted.
        let handle = unsafe { pf_input_x11_open(name.as_ptr(), name.len(), ptr::null_mut(), 0) };
        assert!(!handle.is_null());

        let mut wh = [0u32; 2];
        // SAFETY: live handle; `wh` holds two u32.
        let status = unsafe { pf_input_x11_screen_size(handle, wh.as_mut_ptr()) };
        assert_eq!((status, wh), (PF_OK, [640, 480]));
        // SAFETY: live handle; a null output is refused.
        let status = unsafe { pf_input_x11_screen_size(handle, ptr::null_mut()) };
        assert_eq!(status, PF_ERR_INVALID_ARGUMENT);

        let inject = |bytes: &[u8]| {
            // SAFETY: live handle; `bytes` valid for its length.
            unsafe { pf_input_x11_inject(handle, bytes.as_ptr(), bytes.len()) }
        };
        let move_to = event(
            KIND_MOUSE_ABSOLUTE,
            0,
            100i32.to_le_bytes(),
            50i32.to_le_bytes(),
        );
        assert_eq!(inject(&move_to), PF_OK);
        assert_eq!(
            inject(&event(KIND_KEY, 1, 0x61u32.to_le_bytes(), [0; 4])),
            PF_OK
        );
        assert_eq!(
            inject(&event(KIND_KEY, 0, 0x61u32.to_le_bytes(), [0; 4])),
            PF_OK
        );
        assert_eq!(
            inject(&event(KIND_SCROLL, 0, 120i32.to_le_bytes(), [0; 4])),
            PF_OK
        );

        assert_eq!(inject(&move_to[..15]), PF_ERR_INVALID_ARGUMENT);
        assert!(last_error_text().contains("15 bytes, expected 16"));
        assert_eq!(
            inject(&event(99, 0, [0; 4], [0; 4])),
            PF_ERR_INVALID_ARGUMENT
        );
        assert!(last_error_text().contains("kind 99"));
        assert_eq!(
            inject(&event(KIND_BUTTON, 1, [7, 0, 0, 0], [0; 4])),
            PF_ERR_INVALID_ARGUMENT
        );
        assert!(last_error_text().contains("mouse button 7"));
        assert_eq!(
            inject(&event(KIND_KEY, 1, 0x0100_1234u32.to_le_bytes(), [0; 4])),
            PF_ERR_NOT_FOUND
        );
        // SAFETY: live handle; null event with a length is refused.
        let status = unsafe { pf_input_x11_inject(handle, ptr::null(), 16) };
        assert_eq!(status, PF_ERR_INVALID_ARGUMENT);
        assert_eq!(inject(&move_to), PF_OK, "still usable after refusals");

        // SAFETY: live handle, closed once.
        unsafe { pf_input_x11_close(handle) };
    }
}
