//! C ABI for single-thread media sessions: the GameStream audio sender (host) and the GameStream
//! video/audio receivers of our test client. They share one handle type (`dyn MediaSession`), so
//! stats, events and stop are one set of calls. (GameStream *video* on the host is the ordinary
//! video sender started with a `gamestream` wire config.) Per-session calls only.
//!
//! ```c
//! void    *pf_gs_audio_sender_start(const uint8_t *json, size_t len, uint8_t *err, size_t err_cap);
//! void    *pf_gs_video_receiver_start(const uint8_t *json, size_t len, uint8_t *err, size_t err_cap);
//! void    *pf_gs_audio_receiver_start(const uint8_t *json, size_t len, uint8_t *err, size_t err_cap);
//! uint16_t pf_media_session_port(void *session);
//! int32_t  pf_media_session_is_finished(void *session);      /* 1 finished, 0 running */
//! char    *pf_media_session_stats_json(void *session);       /* free with pf_string_free */
//! ssize_t  pf_media_session_poll_events(void *session, uint8_t *buf, size_t cap);
//! void     pf_media_session_stop(void *session);             /* joins, frees */
//! ```

use crate::abi_session::{into_c_string, poll_into, start_handle, stop_handle};
use crate::pipeline::gamestream_audio_sender::{start_gs_audio_sender, GsAudioSenderConfig};
use crate::pipeline::gamestream_receivers::{
    start_gs_audio_receiver, start_gs_video_receiver, GsAudioReceiverConfig, GsVideoReceiverConfig,
};
use crate::pipeline::worker::MediaSession;
use std::ffi::{c_char, c_void};
use std::ptr;

type SessionBox = Box<dyn MediaSession>;

/// # Safety
/// `handle` must be null or a live pointer from one of this module's `*_start` calls.
unsafe fn session<'a>(handle: *mut c_void) -> Option<&'a SessionBox> {
    // SAFETY: per the contract, a live Box<dyn MediaSession> leaked by start_handle.
    unsafe { (handle as *const SessionBox).as_ref() }
}

fn boxed(result: Result<crate::pipeline::worker::Worker, String>) -> Result<SessionBox, String> {
    result.map(|worker| Box::new(worker) as SessionBox)
}

/// # Safety
/// `json` valid for `len` bytes; `err` null or valid for `err_cap` bytes.
#[no_mangle]
pub unsafe extern "C" fn pf_gs_audio_sender_start(
    json: *const u8,
    len: usize,
    err: *mut u8,
    err_cap: usize,
) -> *mut c_void {
    // SAFETY: forwarded caller contract.
    unsafe {
        start_handle(json, len, err, err_cap, |text| {
            boxed(start_gs_audio_sender(GsAudioSenderConfig::from_json(text)?))
        })
    }
}

/// # Safety
/// `json` valid for `len` bytes; `err` null or valid for `err_cap` bytes.
#[no_mangle]
pub unsafe extern "C" fn pf_gs_video_receiver_start(
    json: *const u8,
    len: usize,
    err: *mut u8,
    err_cap: usize,
) -> *mut c_void {
    // SAFETY: forwarded caller contract.
    unsafe {
        start_handle(json, len, err, err_cap, |text| {
            boxed(start_gs_video_receiver(GsVideoReceiverConfig::from_json(
                text,
            )?))
        })
    }
}

/// # Safety
/// `json` valid for `len` bytes; `err` null or valid for `err_cap` bytes.
#[no_mangle]
pub unsafe extern "C" fn pf_gs_audio_receiver_start(
    json: *const u8,
    len: usize,
    err: *mut u8,
    err_cap: usize,
) -> *mut c_void {
    // SAFETY: forwarded caller contract.
    unsafe {
        start_handle(json, len, err, err_cap, |text| {
            boxed(start_gs_audio_receiver(GsAudioReceiverConfig::from_json(
                text,
            )?))
        })
    }
}

/// # Safety
/// `handle` from a `*_start` of this module, not yet stopped.
#[no_mangle]
pub unsafe extern "C" fn pf_media_session_port(handle: *mut c_void) -> u16 {
    // SAFETY: caller contract.
    unsafe { session(handle) }
        .map(|s| s.local_port())
        .unwrap_or(0)
}

/// # Safety
/// `handle` from a `*_start` of this module, not yet stopped.
#[no_mangle]
pub unsafe extern "C" fn pf_media_session_is_finished(handle: *mut c_void) -> i32 {
    // SAFETY: caller contract.
    unsafe { session(handle) }
        .map(|s| i32::from(s.is_finished()))
        .unwrap_or(crate::status::PF_ERR_INVALID_ARGUMENT)
}

/// # Safety
/// `handle` from a `*_start` of this module, not yet stopped.
#[no_mangle]
pub unsafe extern "C" fn pf_media_session_stats_json(handle: *mut c_void) -> *mut c_char {
    // SAFETY: caller contract.
    unsafe { session(handle) }
        .map(|s| into_c_string(s.stats_json()))
        .unwrap_or(ptr::null_mut())
}

/// # Safety
/// `handle` from a `*_start` of this module; `buf` valid for `cap` bytes.
#[no_mangle]
pub unsafe extern "C" fn pf_media_session_poll_events(
    handle: *mut c_void,
    buf: *mut u8,
    cap: usize,
) -> isize {
    // SAFETY: caller contract.
    unsafe { poll_into(session(handle), buf, cap, |s, out| s.drain_events(out)) }
}

/// # Safety
/// `handle` from a `*_start` of this module (or null), used by no other thread; invalid afterwards.
#[no_mangle]
pub unsafe extern "C" fn pf_media_session_stop(handle: *mut c_void) {
    // SAFETY: caller contract.
    unsafe { stop_handle::<SessionBox>(handle) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_config_fails_in_the_buffer_and_a_session_runs_and_stops() {
        let mut err = [0u8; 128];
        let bad = br#"{"host":"nowhere"}"#;
        // SAFETY: valid buffers of the stated sizes.
        let handle = unsafe {
            pf_gs_video_receiver_start(bad.as_ptr(), bad.len(), err.as_mut_ptr(), err.len())
        };
        assert!(handle.is_null());
        let text = std::ffi::CStr::from_bytes_until_nul(&err)
            .unwrap()
            .to_str()
            .unwrap();
        assert!(text.contains("host"), "{text}");

        let json = br#"{"host":"127.0.0.1:9","bind":"127.0.0.1:0"}"#;
        // SAFETY: valid input; error buffer omitted.
        let handle =
            unsafe { pf_gs_audio_receiver_start(json.as_ptr(), json.len(), ptr::null_mut(), 0) };
        assert!(!handle.is_null());
        // SAFETY: live handle.
        assert!(unsafe { pf_media_session_port(handle) } > 0);
        // SAFETY: live handle.
        assert_eq!(unsafe { pf_media_session_is_finished(handle) }, 0);
        // SAFETY: null is refused, not dereferenced.
        assert!(unsafe { pf_media_session_stats_json(ptr::null_mut()) }.is_null());
        // SAFETY: live handle, stopped once.
        unsafe { pf_media_session_stop(handle) };
    }
}
