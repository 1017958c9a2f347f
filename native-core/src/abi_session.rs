//! C ABI for media sessions and benchmarks: per-session calls only (start, IDR, bitrate, stats,
//! events, stop) — nothing here is called per packet. Start calls may run on any thread (Deno
//! `nonblocking`), so they report errors into a caller buffer instead of the thread-local
//! last error.
//!
//! ```c
//! void    *pf_video_sender_start(const uint8_t *json, size_t len, uint8_t *err, size_t err_cap);
//! int32_t  pf_video_sender_request_idr(void *sender);
//! int32_t  pf_video_sender_set_bitrate(void *sender, uint32_t kbps);
//! int32_t  pf_video_sender_is_finished(void *sender);           /* 1 finished, 0 running */
//! char    *pf_video_sender_stats_json(void *sender);            /* free with pf_string_free */
//! ssize_t  pf_video_sender_poll_events(void *sender, uint8_t *buf, size_t cap);
//! void     pf_video_sender_stop(void *sender);                  /* joins threads, frees */
//! void    *pf_video_receiver_start(const uint8_t *json, size_t len, uint8_t *err, size_t err_cap);
//! uint16_t pf_video_receiver_port(void *receiver);
//! char    *pf_video_receiver_stats_json(void *receiver);
//! ssize_t  pf_video_receiver_poll_events(void *receiver, uint8_t *buf, size_t cap);
//! void     pf_video_receiver_stop(void *receiver);
//! char    *pf_bench_json(const uint8_t *name, size_t len);     /* NULL: unknown, see last error */
//! ```

use crate::pipeline::config::PipelineConfig;
use crate::pipeline::video_receiver::{ReceiverConfig, VideoReceiver};
use crate::pipeline::video_sender::VideoSender;
use std::ffi::{c_char, c_void, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr;

/// # Safety
/// `ptr` must be valid for `len` bytes of reads (or null with len 0).
pub(crate) unsafe fn input_text(ptr: *const u8, len: usize) -> Result<String, String> {
    if len == 0 {
        return Ok(String::new());
    }
    if ptr.is_null() {
        return Err("input pointer is null".into());
    }
    // SAFETY: per this function's contract.
    let bytes = unsafe { std::slice::from_raw_parts(ptr, len) };
    String::from_utf8(bytes.to_vec()).map_err(|_| "input is not UTF-8".into())
}

/// # Safety
/// `err` must be null or valid for `cap` bytes of writes.
pub(crate) unsafe fn write_error(err: *mut u8, cap: usize, message: &str) {
    crate::log::log_str(crate::log::Level::Warn, "abi", message);
    if err.is_null() || cap == 0 {
        return;
    }
    let text = crate::last_error::truncate_at_char_boundary(message, cap - 1);
    // SAFETY: `text.len() + 1 <= cap` and `err` is valid for `cap` bytes.
    unsafe {
        ptr::copy_nonoverlapping(text.as_ptr(), err, text.len());
        *err.add(text.len()) = 0;
    }
}

pub(crate) fn guarded<T>(body: impl FnOnce() -> Result<T, String>) -> Result<T, String> {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(result) => result,
        Err(payload) => Err(format!(
            "panic: {}",
            payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_default()
        )),
    }
}

pub(crate) fn into_c_string(text: String) -> *mut c_char {
    CString::new(text)
        .map(CString::into_raw)
        .unwrap_or(ptr::null_mut())
}

/// # Safety
/// `handle` must be a live pointer returned by the matching `*_start`.
unsafe fn sender<'a>(handle: *mut c_void) -> Option<&'a VideoSender> {
    // SAFETY: per the contract, a live VideoSender from pf_video_sender_start.
    unsafe { (handle as *const VideoSender).as_ref() }
}

/// # Safety
/// `handle` must be a live pointer returned by the matching `*_start`.
unsafe fn receiver<'a>(handle: *mut c_void) -> Option<&'a VideoReceiver> {
    // SAFETY: per the contract, a live VideoReceiver from pf_video_receiver_start.
    unsafe { (handle as *const VideoReceiver).as_ref() }
}

/// Starts a session object from JSON and leaks it as an opaque handle; errors go to `err`.
///
/// # Safety
/// `json` valid for `len` bytes; `err` null or valid for `err_cap` bytes.
pub(crate) unsafe fn start_handle<T>(
    json: *const u8,
    len: usize,
    err: *mut u8,
    err_cap: usize,
    start: impl FnOnce(&str) -> Result<T, String>,
) -> *mut c_void {
    let result = guarded(|| {
        // SAFETY: forwarded caller contract.
        let text = unsafe { input_text(json, len) }?;
        start(&text)
    });
    match result {
        Ok(session) => Box::into_raw(Box::new(session)) as *mut c_void,
        Err(message) => {
            // SAFETY: forwarded caller contract.
            unsafe { write_error(err, err_cap, &message) };
            ptr::null_mut()
        }
    }
}

/// Drains a session's events into `buf`.
///
/// # Safety
/// `buf` null or valid for `cap` bytes.
pub(crate) unsafe fn poll_into<T>(
    session: Option<&T>,
    buf: *mut u8,
    cap: usize,
    drain: impl Fn(&T, &mut [u8]) -> usize,
) -> isize {
    match session {
        Some(session) if !buf.is_null() => {
            // SAFETY: caller contract: buf valid for cap bytes.
            let out = unsafe { std::slice::from_raw_parts_mut(buf, cap) };
            drain(session, out) as isize
        }
        _ => crate::status::PF_ERR_INVALID_ARGUMENT as isize,
    }
}

/// Takes back a handle from `start_handle` and drops it (stopping and joining its threads).
///
/// # Safety
/// `handle` null or from `start_handle::<T>`, not used afterwards.
pub(crate) unsafe fn stop_handle<T>(handle: *mut c_void) {
    if handle.is_null() {
        return;
    }
    let _ = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: ownership handed back exactly once per the contract.
        drop(unsafe { Box::from_raw(handle as *mut T) });
    }));
}

/// # Safety
/// `json` valid for `len` bytes; `err` null or valid for `err_cap` bytes.
#[no_mangle]
pub unsafe extern "C" fn pf_video_sender_start(
    json: *const u8,
    len: usize,
    err: *mut u8,
    err_cap: usize,
) -> *mut c_void {
    // SAFETY: forwarded caller contract.
    unsafe {
        start_handle(json, len, err, err_cap, |text| {
            VideoSender::start(PipelineConfig::from_json(text)?)
        })
    }
}

/// # Safety
/// `handle` from `pf_video_sender_start`, not yet stopped.
#[no_mangle]
pub unsafe extern "C" fn pf_video_sender_request_idr(handle: *mut c_void) -> i32 {
    // SAFETY: caller contract.
    match unsafe { sender(handle) } {
        Some(s) => {
            s.request_idr();
            crate::status::PF_OK
        }
        None => crate::status::PF_ERR_INVALID_ARGUMENT,
    }
}

/// # Safety
/// `handle` from `pf_video_sender_start`, not yet stopped.
#[no_mangle]
pub unsafe extern "C" fn pf_video_sender_set_bitrate(handle: *mut c_void, kbps: u32) -> i32 {
    // SAFETY: caller contract.
    match unsafe { sender(handle) } {
        Some(s) if (100..=2_000_000).contains(&kbps) => {
            s.set_bitrate(kbps);
            crate::status::PF_OK
        }
        _ => crate::status::PF_ERR_INVALID_ARGUMENT,
    }
}

/// # Safety
/// `handle` from `pf_video_sender_start`, not yet stopped.
#[no_mangle]
pub unsafe extern "C" fn pf_video_sender_is_finished(handle: *mut c_void) -> i32 {
    // SAFETY: caller contract.
    unsafe { sender(handle) }
        .map(|s| i32::from(s.is_finished()))
        .unwrap_or(crate::status::PF_ERR_INVALID_ARGUMENT)
}

/// # Safety
/// `handle` from `pf_video_sender_start`, not yet stopped.
#[no_mangle]
pub unsafe extern "C" fn pf_video_sender_stats_json(handle: *mut c_void) -> *mut c_char {
    // SAFETY: caller contract.
    unsafe { sender(handle) }
        .map(|s| into_c_string(s.stats_json()))
        .unwrap_or(ptr::null_mut())
}

/// # Safety
/// `handle` from `pf_video_sender_start`; `buf` valid for `cap` bytes.
#[no_mangle]
pub unsafe extern "C" fn pf_video_sender_poll_events(
    handle: *mut c_void,
    buf: *mut u8,
    cap: usize,
) -> isize {
    // SAFETY: caller contract.
    unsafe { poll_into(sender(handle), buf, cap, VideoSender::drain_events) }
}

/// # Safety
/// `handle` from `pf_video_sender_start` (or null), used by no other thread; invalid afterwards.
#[no_mangle]
pub unsafe extern "C" fn pf_video_sender_stop(handle: *mut c_void) {
    // SAFETY: caller contract.
    unsafe { stop_handle::<VideoSender>(handle) }
}

/// # Safety
/// `json` valid for `len` bytes; `err` null or valid for `err_cap` bytes.
#[no_mangle]
pub unsafe extern "C" fn pf_video_receiver_start(
    json: *const u8,
    len: usize,
    err: *mut u8,
    err_cap: usize,
) -> *mut c_void {
    // SAFETY: forwarded caller contract.
    unsafe {
        start_handle(json, len, err, err_cap, |text| {
            VideoReceiver::start(ReceiverConfig::from_json(text)?, None)
        })
    }
}

/// # Safety
/// `handle` from `pf_video_receiver_start`, not yet stopped.
#[no_mangle]
pub unsafe extern "C" fn pf_video_receiver_port(handle: *mut c_void) -> u16 {
    // SAFETY: caller contract.
    unsafe { receiver(handle) }
        .map(|r| r.local_addr().port())
        .unwrap_or(0)
}

/// # Safety
/// `handle` from `pf_video_receiver_start`, not yet stopped.
#[no_mangle]
pub unsafe extern "C" fn pf_video_receiver_stats_json(handle: *mut c_void) -> *mut c_char {
    // SAFETY: caller contract.
    unsafe { receiver(handle) }
        .map(|r| into_c_string(r.stats_json()))
        .unwrap_or(ptr::null_mut())
}

/// # Safety
/// `handle` from `pf_video_receiver_start`; `buf` valid for `cap` bytes.
#[no_mangle]
pub unsafe extern "C" fn pf_video_receiver_poll_events(
    handle: *mut c_void,
    buf: *mut u8,
    cap: usize,
) -> isize {
    // SAFETY: caller contract.
    unsafe { poll_into(receiver(handle), buf, cap, VideoReceiver::drain_events) }
}

/// # Safety
/// `handle` from `pf_video_receiver_start` (or null); invalid afterwards.
#[no_mangle]
pub unsafe extern "C" fn pf_video_receiver_stop(handle: *mut c_void) {
    // SAFETY: caller contract.
    unsafe { stop_handle::<VideoReceiver>(handle) }
}

/// # Safety
/// `name` valid for `len` bytes.
#[no_mangle]
pub unsafe extern "C" fn pf_bench_json(name: *const u8, len: usize) -> *mut c_char {
    let result = guarded(|| {
        // SAFETY: forwarded caller contract.
        let name = unsafe { input_text(name, len) }?;
        crate::bench::run(&name)
    });
    match result {
        Ok(json) => into_c_string(json),
        Err(message) => {
            crate::last_error::set(message);
            ptr::null_mut()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_errors_land_in_the_caller_buffer() {
        let json = b"{\"key\":\"00\"}";
        let mut err = [0u8; 128];
        // SAFETY: valid buffers of the stated sizes.
        let handle = unsafe {
            pf_video_sender_start(json.as_ptr(), json.len(), err.as_mut_ptr(), err.len())
        };
        assert!(handle.is_null());
        let text = std::ffi::CStr::from_bytes_until_nul(&err)
            .unwrap()
            .to_str()
            .unwrap();
        assert!(text.contains("key"), "{text}");
        // SAFETY: null handles are accepted.
        unsafe { pf_video_sender_stop(ptr::null_mut()) };
        // SAFETY: a null handle is refused, not dereferenced.
        assert_eq!(
            unsafe { pf_video_sender_request_idr(ptr::null_mut()) },
            crate::status::PF_ERR_INVALID_ARGUMENT
        );
    }

    #[test]
    fn receiver_starts_reports_its_port_and_stops() {
        let json =
            br#"{"bind":"127.0.0.1:0","key":"000102030405060708090a0b0c0d0e0f","salt":"01020304"}"#;
        // SAFETY: valid input; error buffer omitted.
        let handle =
            unsafe { pf_video_receiver_start(json.as_ptr(), json.len(), ptr::null_mut(), 0) };
        assert!(!handle.is_null());
        // SAFETY: live handle.
        assert!(unsafe { pf_video_receiver_port(handle) } > 0);
        // SAFETY: live handle; the string is freed below.
        let stats = unsafe { pf_video_receiver_stats_json(handle) };
        // SAFETY: a valid C string from this library.
        let text = unsafe { std::ffi::CStr::from_ptr(stats) }
            .to_str()
            .unwrap()
            .to_string();
        // SAFETY: returned by this library.
        unsafe { crate::abi::pf_string_free(stats) };
        assert!(text.contains("\"frames_complete\":0"));
        // SAFETY: live handle, stopped once.
        unsafe { pf_video_receiver_stop(handle) };
    }
}
