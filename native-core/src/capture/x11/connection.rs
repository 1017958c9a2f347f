//! An Xlib display connection whose errors are recorded instead of ending
//! the process.
//!
//! Xlib's default handlers print and `exit()` on any protocol error or lost
//! connection. The first [`Connection::open`] calls `XInitThreads` and
//! installs process-wide handlers that *record* errors of displays opened
//! here, and pass errors of any other display on to the handlers installed
//! before (so other Xlib users in the process keep their behaviour).
//!
//! A lost connection is survivable only with libX11 ≥ 1.7, whose per-display
//! `XSetIOErrorExitHandler` lets the handler return instead of exiting; it
//! is looked up at run time. With older libX11 the loss is recorded and
//! reported on stderr, then Xlib exits the process (an Xlib limitation).
//! Code that later replaces the process-wide handlers with
//! `XSetErrorHandler` also takes this protection away.

use std::ffi::{c_char, c_int, c_ulong, c_void, CStr, CString};
use std::io::Write;
use std::ptr::{self, NonNull};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, Once, OnceLock, PoisonError};

use super::ffi;
use crate::capture::CaptureError;

/// One protocol error reported by the X server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct XErrorRecord {
    pub error_code: u8,
    pub request_code: u8,
    pub minor_code: u8,
    pub resource_id: c_ulong,
    pub serial: c_ulong,
}

/// What the handlers recorded for one open [`Connection`].
struct DisplayLog {
    registration: u64,
    display: usize,
    errors: Vec<XErrorRecord>,
    connection_lost: bool,
}

/// Errors kept per connection between two checks. Every check drains the
/// log and a capture issues one or two requests, so more than a handful
/// means nobody is checking; the cap bounds memory in that case.
const MAX_RECORDED_ERRORS: usize = 32;

/// Logs of all open connections.
static LOGS: Mutex<Vec<DisplayLog>> = Mutex::new(Vec::new());
static NEXT_REGISTRATION: AtomicU64 = AtomicU64::new(1);
/// Handlers that were installed before ours, for displays not opened here.
static PREVIOUS_HANDLERS: OnceLock<(ffi::XErrorHandler, ffi::XIOErrorHandler)> = OnceLock::new();
static SET_IO_ERROR_EXIT_HANDLER: OnceLock<Option<ffi::XSetIOErrorExitHandlerFn>> = OnceLock::new();

fn logs() -> MutexGuard<'static, Vec<DisplayLog>> {
    // A panic while holding the lock cannot leave the logs inconsistent
    // (every update is a single push or assignment), so poison is ignored.
    LOGS.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Runs `update` on the newest log of `display`; `None` if it is not ours.
fn with_log<R>(display: *mut ffi::Display, update: impl FnOnce(&mut DisplayLog) -> R) -> Option<R> {
    logs()
        .iter_mut()
        .rev()
        .find(|log| log.display == display as usize)
        .map(update)
}

/// `XInitThreads` and the recording handlers, once per process.
fn init_xlib() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        // SAFETY: XInitThreads takes no arguments; it is the first Xlib call
        // this crate makes, as Xlib requires.
        unsafe { ffi::XInitThreads() };
        // SAFETY: the handlers have the signatures Xlib expects and, being
        // plain functions, stay valid for the life of the process.
        let previous = unsafe {
            (
                ffi::XSetErrorHandler(Some(record_error)),
                ffi::XSetIOErrorHandler(Some(record_io_error)),
            )
        };
        // Only this closure sets the cell, exactly once.
        let _ = PREVIOUS_HANDLERS.set(previous);
    });
}

/// `XSetIOErrorExitHandler` if the loaded libX11 has it (≥ 1.7).
fn io_error_exit_setter() -> Option<ffi::XSetIOErrorExitHandlerFn> {
    *SET_IO_ERROR_EXIT_HANDLER.get_or_init(|| {
        // libX11 is already loaded (this crate links it); RTLD_NOLOAD just
        // returns its handle. Looking the symbol up in that handle works even
        // when this library itself was dlopen'ed with RTLD_LOCAL.
        // SAFETY: the name is a valid NUL-terminated string.
        let handle =
            unsafe { libc::dlopen(c"libX11.so.6".as_ptr(), libc::RTLD_LAZY | libc::RTLD_NOLOAD) };
        let scope = if handle.is_null() {
            libc::RTLD_DEFAULT
        } else {
            handle
        };
        // SAFETY: `scope` is a live handle or RTLD_DEFAULT; the name is a
        // valid NUL-terminated string.
        let symbol = unsafe { libc::dlsym(scope, c"XSetIOErrorExitHandler".as_ptr()) };
        if !handle.is_null() {
            // SAFETY: drops the reference dlopen took above; libX11 stays
            // loaded because this crate links it.
            unsafe { libc::dlclose(handle) };
        }
        (!symbol.is_null()).then(|| {
            // SAFETY: libX11 exports XSetIOErrorExitHandler with exactly this
            // signature (`<X11/Xlib.h>`, libX11 ≥ 1.7).
            unsafe { std::mem::transmute::<*mut c_void, ffi::XSetIOErrorExitHandlerFn>(symbol) }
        })
    })
}

/// Whether a lost X connection can be reported as an error instead of
/// ending the process (libX11 ≥ 1.7).
pub(crate) fn survives_lost_connections() -> bool {
    io_error_exit_setter().is_some()
}

/// Process-wide protocol-error handler: records errors of our displays.
unsafe extern "C" fn record_error(
    display: *mut ffi::Display,
    event: *mut ffi::XErrorEvent,
) -> c_int {
    let record = {
        // SAFETY: Xlib passes a valid event that lives for the duration of
        // the call.
        let event = unsafe { &*event };
        XErrorRecord {
            error_code: event.error_code,
            request_code: event.request_code,
            minor_code: event.minor_code,
            resource_id: event.resourceid,
            serial: event.serial,
        }
    };
    let ours = with_log(display, |log| {
        if log.errors.len() < MAX_RECORDED_ERRORS {
            log.errors.push(record);
        }
    });
    if ours.is_some() {
        return 0;
    }
    match PREVIOUS_HANDLERS.get().and_then(|(error, _)| *error) {
        // SAFETY: hands Xlib's own arguments to the handler that was
        // installed before ours, as Xlib would have.
        Some(previous) => unsafe { previous(display, event) },
        None => 0,
    }
}

/// Process-wide I/O-error handler: marks our displays as lost.
unsafe extern "C" fn record_io_error(display: *mut ffi::Display) -> c_int {
    if with_log(display, |log| log.connection_lost = true).is_some() {
        if !survives_lost_connections() {
            let _ = writeln!(
                std::io::stderr(),
                "punktfunk: X display connection lost; libX11 < 1.7 will now exit the process"
            );
        }
        return 0;
    }
    match PREVIOUS_HANDLERS.get().and_then(|(_, io_error)| *io_error) {
        // SAFETY: hands Xlib's own argument to the handler that was
        // installed before ours, as Xlib would have.
        Some(previous) => unsafe { previous(display) },
        None => 0,
    }
}

/// Per-display exit handler: returning (instead of Xlib's default `exit`)
/// leaves the display marked dead, so further calls on it fail fast.
unsafe extern "C" fn return_after_io_error(_display: *mut ffi::Display, _user_data: *mut c_void) {}

/// An open display connection, registered with the recording handlers.
/// Not `Send`; owners that guarantee exclusive use may implement it.
pub(crate) struct Connection {
    display: NonNull<ffi::Display>,
    name: String,
    registration: u64,
}

impl Connection {
    /// Opens display `name` (e.g. `":99"`).
    pub fn open(name: &str) -> Result<Self, CaptureError> {
        if name.is_empty() {
            return Err(CaptureError::InvalidArgument(
                "X display name is empty".to_owned(),
            ));
        }
        let c_name = CString::new(name).map_err(|_| {
            CaptureError::InvalidArgument(format!("X display name {name:?} contains a NUL byte"))
        })?;
        init_xlib();
        // SAFETY: `c_name` is a valid NUL-terminated string for the call.
        let raw = unsafe { ffi::XOpenDisplay(c_name.as_ptr()) };
        let display = NonNull::new(raw)
            .ok_or_else(|| CaptureError::Unavailable(format!("cannot open display {name}")))?;

        let registration = NEXT_REGISTRATION.fetch_add(1, Ordering::Relaxed);
        logs().push(DisplayLog {
            registration,
            display: display.as_ptr() as usize,
            errors: Vec::new(),
            connection_lost: false,
        });
        if let Some(set_exit_handler) = io_error_exit_setter() {
            // SAFETY: the display is live; the handler is a plain function
            // valid for the life of the process and takes no user data.
            unsafe {
                set_exit_handler(
                    display.as_ptr(),
                    Some(return_after_io_error),
                    ptr::null_mut(),
                )
            };
        }
        Ok(Connection {
            display,
            name: name.to_owned(),
            registration,
        })
    }

    /// The raw handle, valid while `self` lives.
    pub fn raw(&self) -> *mut ffi::Display {
        self.display.as_ptr()
    }

    /// The display name it was opened with.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether Xlib reported the connection as broken.
    pub fn is_lost(&self) -> bool {
        self.with_own_log(|log| log.connection_lost)
    }

    /// Forgets errors recorded so far.
    pub fn clear_errors(&self) {
        self.with_own_log(|log| log.errors.clear());
    }

    /// Waits until the server has processed every request sent so far, then
    /// reports the first error they caused (see [`Connection::check`]).
    pub fn sync(&self, what: &str) -> Result<(), CaptureError> {
        if !self.is_lost() {
            // SAFETY: the display is live.
            unsafe { ffi::XSync(self.raw(), ffi::FALSE) };
        }
        self.check(what)
    }

    /// `Lost` if the connection broke, `Failed` naming `what` and the first
    /// recorded protocol error if there is one; clears the record.
    pub fn check(&self, what: &str) -> Result<(), CaptureError> {
        if self.is_lost() {
            return Err(self.lost(what));
        }
        let first_error = self.with_own_log(|log| {
            let first = log.errors.first().copied();
            log.errors.clear();
            first
        });
        match first_error {
            None => Ok(()),
            Some(error) => Err(CaptureError::Failed(format!(
                "{what} on X display {}: {}",
                self.name,
                self.describe(&error)
            ))),
        }
    }

    /// The error for a broken connection, noticed during `what`.
    pub fn lost(&self, what: &str) -> CaptureError {
        CaptureError::Lost(format!(
            "connection to X display {} lost ({what})",
            self.name
        ))
    }

    /// Human-readable text of a recorded error, e.g. `BadAccess (attempt
    /// to access private resource denied) [request 130.1, resource 0x…]`.
    pub fn describe(&self, error: &XErrorRecord) -> String {
        // Xlib's error texts are short ("BadMatch (invalid parameter
        // attributes)"); 256 bytes leaves ample room.
        let mut text = [0u8; 256];
        // SAFETY: the display is live and `text` is writable for the length
        // passed (which fits a c_int).
        unsafe {
            ffi::XGetErrorText(
                self.raw(),
                c_int::from(error.error_code),
                text.as_mut_ptr().cast::<c_char>(),
                text.len() as c_int,
            )
        };
        // Guarantee termination whatever Xlib wrote.
        text[text.len() - 1] = 0;
        let message = CStr::from_bytes_until_nul(&text)
            .map(|c| c.to_string_lossy().into_owned())
            .unwrap_or_default();
        format!(
            "{message} [error {}, request {}.{}, resource {:#x}, serial {}]",
            error.error_code, error.request_code, error.minor_code, error.resource_id, error.serial
        )
    }

    fn with_own_log<R: Default>(&self, update: impl FnOnce(&mut DisplayLog) -> R) -> R {
        logs()
            .iter_mut()
            .find(|log| log.registration == self.registration)
            .map(update)
            .unwrap_or_default()
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        // SAFETY: the display came from XOpenDisplay and is closed exactly
        // once, here. After a lost connection Xlib only frees client-side
        // state (its request paths check the dead-display flag).
        unsafe { ffi::XCloseDisplay(self.raw()) };
        // Unregister after closing so errors raised while closing are still
        // recorded rather than passed to the previous handlers.
        logs().retain(|log| log.registration != self.registration);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_validated_before_connecting() {
        assert!(matches!(
            Connection::open(""),
            Err(CaptureError::InvalidArgument(_))
        ));
        assert!(matches!(
            Connection::open(":1\0"),
            Err(CaptureError::InvalidArgument(_))
        ));
    }

    #[test]
    fn missing_display_is_unavailable_and_names_it() {
        match Connection::open(":65001") {
            Err(CaptureError::Unavailable(reason)) => {
                assert_eq!(reason, "cannot open display :65001")
            }
            Err(other) => panic!("expected Unavailable, got {other}"),
            Ok(_) => panic!("display :65001 unexpectedly exists"),
        }
    }

    #[test]
    fn foreign_displays_are_not_ours() {
        let fake = 0x10 as *mut ffi::Display;
        assert!(with_log(fake, |_| ()).is_none());
    }
}
