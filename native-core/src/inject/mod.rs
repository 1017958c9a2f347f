//! Input injection: replaying keyboard, mouse and scroll input from
//! streaming clients on the host's desktop.
//!
//! [`InputEvent`] is the backend-neutral event (keys are X keysyms, pointer
//! positions are already in screen pixels, scroll amounts in 1/120 wheel
//! notches as Windows and GameStream clients send them). The only backend
//! so far is [`XTestInjector`], which fakes input on an X display through
//! the XTEST extension; uinput or Wayland backends would accept the same
//! events.

mod ffi;
mod xtest;

use std::fmt;

use crate::capture::CaptureError;
use crate::status::{PF_ERR_INVALID_ARGUMENT, PF_ERR_IO, PF_ERR_NOT_FOUND, PF_ERR_UNSUPPORTED};

pub use xtest::{XTestInjector, MAX_NOTCHES_PER_CALL, SCROLL_UNITS_PER_NOTCH};

/// One unit of client input, in host terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputEvent {
    /// A key, named by its X keysym (e.g. `0x61` for `a`), pressed or released.
    Key { keysym: u32, down: bool },
    /// Pointer to an absolute screen position in pixels (clamped to the screen).
    MouseAbsolute { x: i32, y: i32 },
    /// Pointer moved by a delta in pixels.
    MouseRelative { dx: i32, dy: i32 },
    /// A mouse button: 1 left, 2 middle, 3 right, 4 back (X1), 5 forward (X2).
    Button { button: u8, down: bool },
    /// Wheel movement in 1/120 notches: positive `vertical` scrolls up (away
    /// from the user), positive `horizontal` scrolls right.
    Scroll { vertical: i32, horizontal: i32 },
}

/// Why input could not be injected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InjectError {
    /// Malformed input: unknown button, empty display name, bad event bytes…
    InvalidArgument(String),
    /// The keysym has no key in the display's current keymap.
    UnmappedKeysym(String),
    /// The backend cannot be used here: no such display, no XTEST…
    Unavailable(String),
    /// The connection broke (e.g. the X server went away); the injector
    /// will never work again and should be reopened.
    Lost(String),
    /// The server rejected a request; later events may still succeed.
    Failed(String),
}

impl InjectError {
    /// The `pf_*` status code for this error (see [`crate::status`]).
    pub fn status(&self) -> i32 {
        match self {
            InjectError::InvalidArgument(_) => PF_ERR_INVALID_ARGUMENT,
            InjectError::UnmappedKeysym(_) => PF_ERR_NOT_FOUND,
            InjectError::Unavailable(_) => PF_ERR_UNSUPPORTED,
            InjectError::Lost(_) | InjectError::Failed(_) => PF_ERR_IO,
        }
    }
}

impl fmt::Display for InjectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InjectError::InvalidArgument(reason) => write!(f, "invalid input: {reason}"),
            InjectError::UnmappedKeysym(reason) => write!(f, "unmapped key: {reason}"),
            InjectError::Unavailable(reason) => write!(f, "input injection unavailable: {reason}"),
            InjectError::Lost(reason) => write!(f, "input injection lost: {reason}"),
            InjectError::Failed(reason) => write!(f, "input injection failed: {reason}"),
        }
    }
}

impl std::error::Error for InjectError {}

/// The X11 connection helpers report [`CaptureError`]s; the variants they
/// produce carry over one to one.
impl From<CaptureError> for InjectError {
    fn from(error: CaptureError) -> Self {
        match error {
            CaptureError::InvalidArgument(reason) => InjectError::InvalidArgument(reason),
            CaptureError::Unavailable(reason) => InjectError::Unavailable(reason),
            CaptureError::Lost(reason) => InjectError::Lost(reason),
            CaptureError::Failed(reason) => InjectError::Failed(reason),
            other @ (CaptureError::Resized { .. } | CaptureError::Io { .. }) => {
                InjectError::Failed(other.to_string())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inject_errors_map_to_distinct_statuses_and_readable_text() {
        let cases = [
            (
                InjectError::InvalidArgument("button 9".into()),
                PF_ERR_INVALID_ARGUMENT,
            ),
            (InjectError::UnmappedKeysym("0x1".into()), PF_ERR_NOT_FOUND),
            (
                InjectError::Unavailable("no XTEST".into()),
                PF_ERR_UNSUPPORTED,
            ),
            (InjectError::Lost("gone".into()), PF_ERR_IO),
            (InjectError::Failed("BadValue".into()), PF_ERR_IO),
        ];
        for (error, status) in cases {
            assert_eq!(error.status(), status, "{error}");
        }
        assert_eq!(
            InjectError::Unavailable("no XTEST".into()).to_string(),
            "input injection unavailable: no XTEST"
        );
    }

    #[test]
    fn inject_error_from_capture_error_keeps_the_reason() {
        let error = InjectError::from(CaptureError::Unavailable("cannot open display :7".into()));
        assert_eq!(
            error,
            InjectError::Unavailable("cannot open display :7".into())
        );
        let resized = InjectError::from(CaptureError::Resized {
            old: (1, 2),
            new: (3, 4),
        });
        assert!(matches!(resized, InjectError::Failed(ref m) if m.contains("1x2 to 3x4")));
    }
}
