//! Bridge from libav's `av_log` into the native log queue (target `"libav"`),
//! plus a per-thread capture of error..verbose lines so a failed open can
//! report what libav said (e.g. nvenc's "Cannot load libcuda.so.1", or the
//! verbose-only lines libav's VAAPI setup logs before failing).
//!
//! The C shim formats each av_log call into one line and calls [`sink`]; the
//! sink is installed once, the first time any encoder function runs
//! ([`ensure_installed`]). Capture is thread-local, so concurrent probes on
//! different threads do not see each other's lines.

use std::cell::RefCell;
use std::ffi::{c_char, c_int, CStr};
use std::panic::{self, AssertUnwindSafe};
use std::sync::Once;

use super::ffi;
use crate::log::{self, Level};

/// Log target of forwarded libav lines.
pub const TARGET: &str = "libav";

static INSTALL: Once = Once::new();

thread_local! {
    static CAPTURE: RefCell<Option<Vec<CapturedLine>>> = const { RefCell::new(None) };
}

/// A libav line seen while [`capture`] was active on this thread.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CapturedLine {
    pub level: Level,
    pub text: String,
}

/// Routes av_log into the native log (once per process) and applies the
/// current log level to libav.
pub fn ensure_installed() {
    INSTALL.call_once(|| {
        apply_level();
        // SAFETY: `sink` matches `pfav_log_sink`, is thread-safe and never
        // unwinds into C (it catches panics); it stays valid for the life of
        // the process.
        unsafe { ffi::pfav_set_log_sink(Some(sink)) };
    });
}

/// Re-applies the native log level to libav's threshold, if the bridge is
/// installed (otherwise libav is untouched until the first encoder call).
pub fn sync_level() {
    if INSTALL.is_completed() {
        apply_level();
    }
}

fn apply_level() {
    let threshold = av_threshold(log::max_level());
    // SAFETY: pfav_set_log_level only stores an int in libavutil.
    unsafe { ffi::pfav_set_log_level(threshold) };
}

/// libav threshold for a native level: the matching AV_LOG_* value, but never
/// below verbose, so failures can always be captured for probe reasons (some
/// libav paths, e.g. VAAPI device setup, explain failures only at verbose).
/// Lines above the native level are still filtered before queueing.
pub fn av_threshold(native_level: u32) -> c_int {
    let mapped = match native_level {
        0 => ffi::AV_LOG_QUIET,
        1 => ffi::AV_LOG_ERROR,
        2 => ffi::AV_LOG_WARNING,
        3 => ffi::AV_LOG_INFO,
        4 => ffi::AV_LOG_VERBOSE,
        _ => ffi::AV_LOG_DEBUG,
    };
    mapped.max(ffi::AV_LOG_VERBOSE)
}

/// Native level of an AV_LOG_* value: panic/fatal/error → error, warning →
/// warn, info → info, verbose → debug, debug and more verbose → trace (libav's
/// debug level is per-frame statistics: a line per frame per encoder).
pub fn level_from_av(av_level: c_int) -> Level {
    match av_level {
        l if l <= ffi::AV_LOG_ERROR => Level::Error,
        l if l <= ffi::AV_LOG_WARNING => Level::Warn,
        l if l <= ffi::AV_LOG_INFO => Level::Info,
        l if l <= ffi::AV_LOG_VERBOSE => Level::Debug,
        _ => Level::Trace,
    }
}

/// Runs `f` while collecting the libav lines up to verbose logged on this
/// thread, and returns them with `f`'s result. Nested captures each see only
/// their own lines.
pub fn capture<R>(f: impl FnOnce() -> R) -> (R, Vec<CapturedLine>) {
    struct Restore(Option<Vec<CapturedLine>>);
    impl Drop for Restore {
        fn drop(&mut self) {
            let outer = self.0.take();
            let _ = CAPTURE.try_with(|c| *c.borrow_mut() = outer);
        }
    }
    let outer = CAPTURE.with(|c| c.borrow_mut().replace(Vec::new()));
    let restore = Restore(outer);
    let result = f();
    let lines = CAPTURE.with(|c| c.borrow_mut().take()).unwrap_or_default();
    drop(restore);
    (result, lines)
}

/// Handles one line from libav: forwards it to the log queue and, if a
/// capture is active on this thread, records it unless it is more verbose
/// than `AV_LOG_VERBOSE`. A captured line is forwarded at debug level only:
/// the capturer reports it (e.g. as a probe's reason), so an expected failure
/// such as "Cannot load libcuda.so.1" does not read as an error in the log.
pub fn handle_line(av_level: c_int, text: &str) {
    let level = level_from_av(av_level);
    if text.is_empty() {
        return;
    }
    let captured = CAPTURE
        .try_with(|c| match c.borrow_mut().as_mut() {
            Some(lines) if av_level <= ffi::AV_LOG_VERBOSE => {
                lines.push(CapturedLine {
                    level,
                    text: text.to_string(),
                });
                true
            }
            Some(_) => true,
            None => false,
        })
        .unwrap_or(false);
    let forwarded = if captured && level < Level::Debug {
        Level::Debug
    } else {
        level
    };
    log::log_str(forwarded, TARGET, text);
}

/// The `pfav_log_sink` handed to the C shim.
unsafe extern "C" fn sink(av_level: c_int, line: *const c_char) {
    if line.is_null() {
        return;
    }
    // SAFETY: the shim passes a valid NUL-terminated string that lives for
    // the duration of this call.
    let text = unsafe { CStr::from_ptr(line) }.to_string_lossy();
    // A panic must not unwind into C; a lost log line is the lesser evil.
    let _ = panic::catch_unwind(AssertUnwindSafe(|| handle_line(av_level, &text)));
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CString;

    #[test]
    fn av_levels_map_to_native_levels() {
        assert_eq!(level_from_av(ffi::AV_LOG_PANIC), Level::Error);
        assert_eq!(level_from_av(ffi::AV_LOG_FATAL), Level::Error);
        assert_eq!(level_from_av(ffi::AV_LOG_ERROR), Level::Error);
        assert_eq!(level_from_av(ffi::AV_LOG_WARNING), Level::Warn);
        assert_eq!(level_from_av(ffi::AV_LOG_INFO), Level::Info);
        assert_eq!(level_from_av(ffi::AV_LOG_VERBOSE), Level::Debug);
        assert_eq!(level_from_av(ffi::AV_LOG_DEBUG), Level::Trace);
        assert_eq!(level_from_av(ffi::AV_LOG_TRACE), Level::Trace);
    }

    #[test]
    fn threshold_never_hides_verbose() {
        assert_eq!(av_threshold(0), ffi::AV_LOG_VERBOSE);
        assert_eq!(av_threshold(1), ffi::AV_LOG_VERBOSE);
        assert_eq!(av_threshold(3), ffi::AV_LOG_VERBOSE);
        assert_eq!(av_threshold(4), ffi::AV_LOG_VERBOSE);
        assert_eq!(av_threshold(5), ffi::AV_LOG_DEBUG);
    }

    #[test]
    fn capture_collects_only_this_threads_lines_up_to_verbose() {
        let ((), lines) = capture(|| {
            handle_line(ffi::AV_LOG_ERROR, "libx264: boom");
            handle_line(ffi::AV_LOG_DEBUG, "libx264: debug noise");
            handle_line(ffi::AV_LOG_WARNING, "libx264: careful");
            handle_line(ffi::AV_LOG_VERBOSE, "vaapi: cannot open display");
            std::thread::spawn(|| handle_line(ffi::AV_LOG_ERROR, "other thread"))
                .join()
                .unwrap();
        });
        let texts: Vec<_> = lines.iter().map(|l| l.text.as_str()).collect();
        assert_eq!(
            texts,
            [
                "libx264: boom",
                "libx264: careful",
                "vaapi: cannot open display"
            ]
        );
        let levels: Vec<_> = lines.iter().map(|l| l.level).collect();
        assert_eq!(levels, [Level::Error, Level::Warn, Level::Debug]);
    }

    #[test]
    fn nested_captures_are_separate_and_the_outer_resumes() {
        let ((inner, ()), outer) = capture(|| {
            handle_line(ffi::AV_LOG_ERROR, "before");
            let ((), inner) = capture(|| handle_line(ffi::AV_LOG_ERROR, "inner"));
            handle_line(ffi::AV_LOG_ERROR, "after");
            (inner, ())
        });
        assert_eq!(inner.len(), 1);
        assert_eq!(inner[0].text, "inner");
        let outer: Vec<_> = outer.into_iter().map(|l| l.text).collect();
        assert_eq!(outer, ["before", "after"]);
        // No capture active now: lines are not collected anywhere.
        handle_line(ffi::AV_LOG_ERROR, "uncaptured");
        assert!(CAPTURE.with(|c| c.borrow().is_none()));
    }

    #[test]
    fn sink_accepts_c_strings_and_ignores_null() {
        let line = CString::new("probe-test: through the sink").unwrap();
        let ((), lines) = capture(|| {
            // SAFETY: a valid NUL-terminated string, and a null pointer,
            // which the sink must tolerate.
            unsafe {
                sink(ffi::AV_LOG_ERROR, line.as_ptr());
                sink(ffi::AV_LOG_ERROR, std::ptr::null());
            }
        });
        assert_eq!(lines.len(), 1);
        assert_eq!(lines[0].text, "probe-test: through the sink");
    }
}
