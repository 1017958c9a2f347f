//! Raw declarations of the XTEST (libXtst) functions and the few extra
//! Xlib calls and structs the injector needs, on top of the Xlib types and
//! functions already mirrored in [`crate::capture::x11::ffi`]. No logic
//! lives here; see [`super::xtest`] for the safe wrapper. Signatures follow
//! `<X11/extensions/XTest.h>` and `<X11/Xlib.h>`; layouts were checked with
//! `sizeof`/`offsetof` (see the test at the bottom).

// The mirrors keep every C field so the layouts match, read or not.
#![allow(dead_code)]

use std::ffi::{c_int, c_long, c_uchar, c_uint, c_ulong};

pub use crate::capture::x11::ffi::XDefaultScreen;
pub use crate::capture::x11::ffi::{Bool, Display, Window, XGetGeometry, XRootWindow, FALSE};

/// Xlib's `KeySym`.
pub type KeySym = c_ulong;
/// Xlib's `KeyCode`: 8..=255 on every server, 0 means "no key".
pub type KeyCode = c_uchar;

/// `True`.
pub const TRUE: Bool = 1;
/// `CurrentTime`: an XTEST delay of 0, i.e. inject now.
pub const CURRENT_TIME: c_ulong = 0;
/// Event type `MappingNotify` (keyboard or pointer mapping changed).
pub const MAPPING_NOTIFY: c_int = 34;

/// Event type `KeyPress`.
pub const KEY_PRESS: c_int = 2;
/// Event type `KeyRelease`.
pub const KEY_RELEASE: c_int = 3;
/// Event type `ButtonPress`.
pub const BUTTON_PRESS: c_int = 4;
/// Event type `ButtonRelease`.
pub const BUTTON_RELEASE: c_int = 5;
/// `XSelectInput` mask `ButtonPressMask`.
pub const BUTTON_PRESS_MASK: c_long = 1 << 2;
/// `XSelectInput` mask `ButtonReleaseMask`.
pub const BUTTON_RELEASE_MASK: c_long = 1 << 3;
/// Pointer state bit `Button1Mask`, as `XQueryPointer` reports it.
pub const BUTTON1_MASK: c_uint = 1 << 8;
/// Pointer state bit `Button2Mask`.
pub const BUTTON2_MASK: c_uint = 1 << 9;
/// Pointer state bit `Button3Mask`.
pub const BUTTON3_MASK: c_uint = 1 << 10;

/// Mirror of `XButtonEvent` (`XKeyEvent` has the same layout, with
/// `keycode` where `button` is).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct XButtonEvent {
    pub kind: c_int,
    pub serial: c_ulong,
    pub send_event: Bool,
    pub display: *mut Display,
    pub window: Window,
    pub root: Window,
    pub subwindow: Window,
    pub time: c_ulong,
    pub x: c_int,
    pub y: c_int,
    pub x_root: c_int,
    pub y_root: c_int,
    pub state: c_uint,
    pub button: c_uint,
    pub same_screen: Bool,
}

/// Mirror of the `XEvent` union (24 longs); `XMappingEvent`, which
/// `XRefreshKeyboardMapping` takes, is one of its views.
#[repr(C)]
pub union XEvent {
    pub kind: c_int,
    pub button: XButtonEvent,
    pub pad: [c_long; 24],
}

extern "C" {
    // libXtst
    pub fn XTestQueryExtension(
        display: *mut Display,
        event_base: *mut c_int,
        error_base: *mut c_int,
        major: *mut c_int,
        minor: *mut c_int,
    ) -> Bool;
    pub fn XTestFakeKeyEvent(
        display: *mut Display,
        keycode: c_uint,
        is_press: Bool,
        delay: c_ulong,
    ) -> c_int;
    pub fn XTestFakeButtonEvent(
        display: *mut Display,
        button: c_uint,
        is_press: Bool,
        delay: c_ulong,
    ) -> c_int;
    pub fn XTestFakeMotionEvent(
        display: *mut Display,
        screen: c_int,
        x: c_int,
        y: c_int,
        delay: c_ulong,
    ) -> c_int;
    pub fn XTestFakeRelativeMotionEvent(
        display: *mut Display,
        x: c_int,
        y: c_int,
        delay: c_ulong,
    ) -> c_int;

    // libX11
    pub fn XKeysymToKeycode(display: *mut Display, keysym: KeySym) -> KeyCode;
    pub fn XFlush(display: *mut Display) -> c_int;
    pub fn XPending(display: *mut Display) -> c_int;
    pub fn XNextEvent(display: *mut Display, event: *mut XEvent) -> c_int;
    /// Takes the `XMappingEvent` view of an `XEvent`.
    pub fn XRefreshKeyboardMapping(event: *mut XEvent) -> c_int;
}

extern "C" {
    pub fn XQueryPointer(
        display: *mut Display,
        window: Window,
        root: *mut Window,
        child: *mut Window,
        root_x: *mut c_int,
        root_y: *mut c_int,
        win_x: *mut c_int,
        win_y: *mut c_int,
        mask: *mut c_uint,
    ) -> Bool;
}

// Used only by tests, to read back what the injector did.
#[cfg(test)]
extern "C" {
    pub fn XQueryKeymap(display: *mut Display, keys: *mut std::ffi::c_char) -> c_int;
    pub fn XSelectInput(display: *mut Display, window: Window, mask: c_long) -> c_int;
    pub fn XDisplayKeycodes(display: *mut Display, min: *mut c_int, max: *mut c_int) -> c_int;
    pub fn XChangeKeyboardMapping(
        display: *mut Display,
        first_keycode: c_int,
        keysyms_per_keycode: c_int,
        keysyms: *const KeySym,
        num_codes: c_int,
    ) -> c_int;
}

#[cfg(all(test, target_os = "linux", target_pointer_width = "64"))]
mod tests {
    use super::*;
    use std::mem::{offset_of, size_of};

    /// `sizeof(XEvent)` and `offsetof(XButtonEvent, …)` printed by a C
    /// program including the real headers on x86_64/aarch64 Linux.
    #[test]
    fn inject_event_layouts_match_the_c_headers() {
        assert_eq!(size_of::<XEvent>(), 192);
        assert_eq!(size_of::<XButtonEvent>(), 96);
        assert_eq!(offset_of!(XButtonEvent, window), 32);
        assert_eq!(offset_of!(XButtonEvent, x_root), 72);
        assert_eq!(offset_of!(XButtonEvent, state), 80);
        assert_eq!(offset_of!(XButtonEvent, button), 84);
    }
}
