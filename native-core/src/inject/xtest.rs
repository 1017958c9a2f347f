//! Input injection into an X display through the XTEST extension.
//!
//! [`XTestInjector::open`] connects to a named display (e.g. `":99"`) with
//! the error-recording [`Connection`] of the X11 capture code (so a protocol
//! error or a dying server is reported, never fatal) and checks that the
//! server offers XTEST. Every method sends its fake events and flushes at
//! once (`XFlush`, no round trip), so input reaches the server without
//! waiting for replies. Protocol errors arrive asynchronously and are
//! therefore reported by the call *after* the one that caused them.
//!
//! Keys are X keysyms, translated with the display's keymap; before each
//! key the injector reads pending events so a `MappingNotify` (layout
//! switched on the desktop) refreshes Xlib's cached keymap. A keysym with
//! no key in the keymap is an [`InjectError::UnmappedKeysym`]; nothing is
//! remapped. Mouse buttons 4 and 5 (back/forward, "X1"/"X2") become X
//! buttons 8 and 9, because X reserves 4–7 for the wheel; scrolling is sent
//! as clicks of buttons 4/5 (vertical) and 6/7 (horizontal), one per 120
//! units, with the remainder carried over to the next call.
//!
//! One injector owns one connection and is driven by one thread at a time
//! (`Send`, not `Sync`); callers serialise.

use std::ffi::{c_int, c_uint};

use super::{ffi, InjectError, InputEvent};
use crate::capture::x11::connection::Connection;

/// Scroll units per wheel notch (Windows' `WHEEL_DELTA`, used by GameStream).
pub const SCROLL_UNITS_PER_NOTCH: i32 = 120;
/// Most wheel clicks one scroll call sends per axis; anything beyond is
/// dropped, so a corrupt or hostile amount cannot flood the server.
pub const MAX_NOTCHES_PER_CALL: i32 = 64;

/// `XK_space`, looked up once at open to load the keymap.
const XK_SPACE: ffi::KeySym = 0x20;
/// X buttons of the wheel: (positive, negative) direction per axis.
const VERTICAL_BUTTONS: (c_uint, c_uint) = (4, 5); // up, down
const HORIZONTAL_BUTTONS: (c_uint, c_uint) = (7, 6); // right, left

/// Fakes keyboard, mouse and wheel input on an X display. See the module
/// documentation.
pub struct XTestInjector {
    connection: Connection,
    screen: c_int,
    root: ffi::Window,
    width: u32,
    height: u32,
    /// Scroll units not yet sent as a click: (vertical, horizontal), each
    /// within ±119.
    scroll_remainder: (i32, i32),
}

// SAFETY: the Xlib connection is owned exclusively by this value and used
// only through `&mut self`/`&self` methods and `Drop`, i.e. by one thread at
// a time (the type is not `Sync`); Xlib is initialised with XInitThreads,
// and the error logs shared with the process-wide handlers are behind a
// mutex.
unsafe impl Send for XTestInjector {}

impl XTestInjector {
    /// Connects to `display_name` and checks that it supports XTEST.
    pub fn open(display_name: &str) -> Result<Self, InjectError> {
        let connection = Connection::open(display_name)?;
        let (major, minor) = query_xtest(&connection)?;
        let display = connection.raw();
        // SAFETY: the display is live; these read its screen table.
        let (screen, root) = unsafe {
            let screen = ffi::XDefaultScreen(display);
            (screen, ffi::XRootWindow(display, screen))
        };
        let mut injector = XTestInjector {
            connection,
            screen,
            root,
            width: 0,
            height: 0,
            scroll_remainder: (0, 0),
        };
        // Loads Xlib's keymap now: that also subscribes the connection to
        // keymap-change events, and the round trip below sends the
        // subscription before any key is injected.
        // SAFETY: the display is live; XK_space is a plain integer.
        unsafe { ffi::XKeysymToKeycode(display, XK_SPACE) };
        let (width, height) = injector.screen_size()?;
        crate::pf_info!(
            "inject",
            "XTEST {major}.{minor} input injection on X display {display_name} ({width}x{height})"
        );
        Ok(injector)
    }

    /// The display name the injector was opened with.
    pub fn display_name(&self) -> &str {
        self.connection.name()
    }

    /// Injects one event (dispatches to the methods below).
    pub fn inject(&mut self, event: &InputEvent) -> Result<(), InjectError> {
        match *event {
            InputEvent::Key { keysym, down } => self.key(keysym, down),
            InputEvent::MouseAbsolute { x, y } => self.mouse_move_absolute(x, y),
            InputEvent::MouseRelative { dx, dy } => self.mouse_move_relative(dx, dy),
            InputEvent::Button { button, down } => self.button(button, down),
            InputEvent::Scroll {
                vertical,
                horizontal,
            } => self.scroll(vertical, horizontal),
        }
    }

    /// Presses or releases the key that produces `keysym` in the current
    /// keymap; [`InjectError::UnmappedKeysym`] if none does.
    pub fn key(&mut self, keysym: u32, down: bool) -> Result<(), InjectError> {
        self.ensure_live("key event")?;
        self.process_pending_events();
        // SAFETY: the display is live; the keysym is a plain integer.
        let keycode = unsafe { ffi::XKeysymToKeycode(self.raw(), ffi::KeySym::from(keysym)) };
        if keycode == 0 {
            return Err(InjectError::UnmappedKeysym(format!(
                "keysym {keysym:#x} has no key in the keymap of X display {}",
                self.display_name()
            )));
        }
        // SAFETY: the display is live and XTEST was found at open.
        unsafe {
            ffi::XTestFakeKeyEvent(
                self.raw(),
                c_uint::from(keycode),
                x_bool(down),
                ffi::CURRENT_TIME,
            )
        };
        self.flush("XTestFakeKeyEvent")
    }

    /// Moves the pointer to (`x`, `y`) in screen pixels, clamped to the
    /// screen size last seen (at open or by [`Self::screen_size`]).
    pub fn mouse_move_absolute(&mut self, x: i32, y: i32) -> Result<(), InjectError> {
        self.ensure_live("pointer motion")?;
        let x = clamp_to_extent(x, self.width);
        let y = clamp_to_extent(y, self.height);
        // SAFETY: the display is live and XTEST was found at open.
        unsafe { ffi::XTestFakeMotionEvent(self.raw(), self.screen, x, y, ffi::CURRENT_TIME) };
        self.flush("XTestFakeMotionEvent")
    }

    /// Moves the pointer by (`dx`, `dy`) pixels; the server keeps it on the
    /// screen. Deltas beyond the protocol's 16-bit range are clamped.
    pub fn mouse_move_relative(&mut self, dx: i32, dy: i32) -> Result<(), InjectError> {
        self.ensure_live("relative pointer motion")?;
        let (dx, dy) = (clamp_to_i16(dx), clamp_to_i16(dy));
        // SAFETY: the display is live and XTEST was found at open.
        unsafe { ffi::XTestFakeRelativeMotionEvent(self.raw(), dx, dy, ffi::CURRENT_TIME) };
        self.flush("XTestFakeRelativeMotionEvent")
    }

    /// Presses or releases a mouse button: 1 left, 2 middle, 3 right,
    /// 4 back (X button 8), 5 forward (X button 9).
    pub fn button(&mut self, button: u8, down: bool) -> Result<(), InjectError> {
        let x_button = x_button(button)?;
        self.ensure_live("button event")?;
        // SAFETY: the display is live and XTEST was found at open.
        unsafe { ffi::XTestFakeButtonEvent(self.raw(), x_button, x_bool(down), ffi::CURRENT_TIME) };
        self.flush("XTestFakeButtonEvent")
    }

    /// Scrolls by amounts in 1/120 notches (positive: up, right): one click
    /// of X button 4/5/6/7 per whole notch, the remainder kept for later
    /// calls, at most [`MAX_NOTCHES_PER_CALL`] clicks per axis.
    pub fn scroll(&mut self, vertical: i32, horizontal: i32) -> Result<(), InjectError> {
        self.ensure_live("scroll")?;
        let (vertical_notches, vertical_rest) = split_notches(self.scroll_remainder.0, vertical);
        let (horizontal_notches, horizontal_rest) =
            split_notches(self.scroll_remainder.1, horizontal);
        self.scroll_remainder = (vertical_rest, horizontal_rest);
        self.click_wheel(vertical_notches, VERTICAL_BUTTONS);
        self.click_wheel(horizontal_notches, HORIZONTAL_BUTTONS);
        self.flush("XTestFakeButtonEvent (wheel)")
    }

    /// The root window's current size in pixels (one round trip); also
    /// becomes the bound for [`Self::mouse_move_absolute`].
    pub fn screen_size(&mut self) -> Result<(u32, u32), InjectError> {
        self.ensure_live("XGetGeometry")?;
        let (mut root, mut x, mut y) = (0, 0, 0);
        let (mut width, mut height, mut border, mut depth): (c_uint, c_uint, c_uint, c_uint) =
            (0, 0, 0, 0);
        // SAFETY: the display is live and every out-pointer refers to a
        // local valid for writes.
        let succeeded = unsafe {
            ffi::XGetGeometry(
                self.raw(),
                self.root,
                &mut root,
                &mut x,
                &mut y,
                &mut width,
                &mut height,
                &mut border,
                &mut depth,
            )
        };
        self.connection.check("XGetGeometry")?;
        if succeeded == 0 || width == 0 || height == 0 {
            return Err(InjectError::Failed(format!(
                "XGetGeometry of the root window of X display {} failed",
                self.display_name()
            )));
        }
        (self.width, self.height) = (width, height);
        Ok((width, height))
    }

    /// Where the pointer is (root coordinates) and the button/modifier mask
    /// (`Button1Mask` = 1 << 8 …), one round trip: lets the control plane
    /// and its tests see what the injected input did.
    pub fn pointer(&mut self) -> Result<(i32, i32, u32), InjectError> {
        self.ensure_live("XQueryPointer")?;
        let (mut root, mut child) = (0, 0);
        let (mut x, mut y, mut window_x, mut window_y, mut mask) = (0, 0, 0, 0, 0);
        // SAFETY: the display is live and every out-pointer refers to a
        // local valid for writes.
        let same_screen = unsafe {
            ffi::XQueryPointer(
                self.raw(),
                self.root,
                &mut root,
                &mut child,
                &mut x,
                &mut y,
                &mut window_x,
                &mut window_y,
                &mut mask,
            )
        };
        self.connection.check("XQueryPointer")?;
        if same_screen == 0 {
            return Err(InjectError::Failed(format!(
                "the pointer of X display {} is on another screen",
                self.display_name()
            )));
        }
        Ok((x, y, mask))
    }

    fn raw(&self) -> *mut ffi::Display {
        self.connection.raw()
    }

    fn ensure_live(&self, what: &str) -> Result<(), InjectError> {
        if self.connection.is_lost() {
            return Err(self.connection.lost(what).into());
        }
        Ok(())
    }

    /// Sends what is queued and reports any error recorded so far
    /// (typically caused by an earlier request).
    fn flush(&self, what: &str) -> Result<(), InjectError> {
        // SAFETY: the display is live (or marked dead, in which case Xlib
        // returns without touching the socket).
        unsafe { ffi::XFlush(self.raw()) };
        Ok(self.connection.check(what)?)
    }

    /// `notches` press/release pairs of the wheel button for its sign.
    fn click_wheel(&self, notches: i32, (positive, negative): (c_uint, c_uint)) {
        let button = if notches > 0 { positive } else { negative };
        for _ in 0..notches.unsigned_abs() {
            for press in [ffi::TRUE, ffi::FALSE] {
                // SAFETY: the display is live and XTEST was found at open.
                unsafe { ffi::XTestFakeButtonEvent(self.raw(), button, press, ffi::CURRENT_TIME) };
            }
        }
    }

    /// Reads every event already received (none are selected, so these are
    /// only the ones X sends everyone) and lets a `MappingNotify` refresh
    /// Xlib's keymap cache. Never blocks.
    fn process_pending_events(&self) {
        let display = self.raw();
        // SAFETY: the display is live; XPending only reads what is already
        // available, and XNextEvent returns at once while events are pending.
        unsafe {
            while ffi::XPending(display) > 0 {
                let mut event: ffi::XEvent = std::mem::zeroed();
                ffi::XNextEvent(display, &mut event);
                if event.kind == ffi::MAPPING_NOTIFY {
                    ffi::XRefreshKeyboardMapping(&mut event);
                }
            }
        }
    }

    /// Waits until the server has processed every request (tests only).
    #[cfg(test)]
    fn sync(&self) {
        self.connection.sync("XSync").expect("XSync");
    }
}

/// Asks the server for XTEST; `Unavailable` naming the display if absent.
fn query_xtest(connection: &Connection) -> Result<(i32, i32), InjectError> {
    let (mut event_base, mut error_base, mut major, mut minor) = (0, 0, 0, 0);
    // SAFETY: the display is live and the out-pointers refer to locals.
    let present = unsafe {
        ffi::XTestQueryExtension(
            connection.raw(),
            &mut event_base,
            &mut error_base,
            &mut major,
            &mut minor,
        )
    };
    connection.check("XTestQueryExtension")?;
    if present == ffi::FALSE {
        return Err(InjectError::Unavailable(format!(
            "X display {} does not offer the XTEST extension, so input cannot be injected \
             (was the server started with -tst or XTEST disabled?)",
            connection.name()
        )));
    }
    Ok((major, minor))
}

/// Xlib's `Bool` for a press/release flag.
fn x_bool(down: bool) -> ffi::Bool {
    if down {
        ffi::TRUE
    } else {
        ffi::FALSE
    }
}

/// Client button number → X button number.
fn x_button(button: u8) -> Result<c_uint, InjectError> {
    match button {
        1..=3 => Ok(c_uint::from(button)),
        4 => Ok(8),
        5 => Ok(9),
        other => Err(InjectError::InvalidArgument(format!(
            "mouse button {other} is not one of 1 (left), 2 (middle), 3 (right), 4 (X1), 5 (X2)"
        ))),
    }
}

/// `value` clamped to `0..extent` (an extent of 0 clamps to 0).
fn clamp_to_extent(value: i32, extent: u32) -> i32 {
    let last = i32::try_from(extent.saturating_sub(1)).unwrap_or(i32::MAX);
    value.clamp(0, last)
}

/// `value` clamped to the X protocol's INT16 coordinates.
fn clamp_to_i16(value: i32) -> i32 {
    value.clamp(i32::from(i16::MIN), i32::from(i16::MAX))
}

/// Adds `amount` scroll units to `remainder` and splits the total into
/// whole notches (capped at ±[`MAX_NOTCHES_PER_CALL`], the excess dropped)
/// and the units left over (within ±119, same sign as the total).
fn split_notches(remainder: i32, amount: i32) -> (i32, i32) {
    let total = i64::from(remainder) + i64::from(amount);
    let unit = i64::from(SCROLL_UNITS_PER_NOTCH);
    let cap = i64::from(MAX_NOTCHES_PER_CALL);
    let notches = (total / unit).clamp(-cap, cap);
    // Both results are bounded (|notches| ≤ 64, |rest| < 120), so the
    // conversions cannot fail.
    (notches as i32, (total % unit) as i32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::x11::xvfb::Xvfb;
    use std::ffi::c_char;
    use std::thread::sleep;
    use std::time::{Duration, Instant};

    /// How long a test waits for the server to reflect injected input; it
    /// normally takes well under a millisecond.
    const SETTLE_TIMEOUT: Duration = Duration::from_secs(3);

    /// Polls `probe` until it returns `expected` or the timeout passes;
    /// returns the last value seen.
    fn settle<T: PartialEq + Copy>(expected: T, mut probe: impl FnMut() -> T) -> T {
        let deadline = Instant::now() + SETTLE_TIMEOUT;
        loop {
            let value = probe();
            if value == expected || Instant::now() > deadline {
                return value;
            }
            sleep(Duration::from_millis(5));
        }
    }

    /// Pointer position and button/modifier mask, seen by `connection`.
    fn pointer(connection: &Connection) -> (i32, i32, c_uint) {
        let display = connection.raw();
        let (mut root, mut child) = (0, 0);
        let (mut x, mut y, mut wx, mut wy, mut mask) = (0, 0, 0, 0, 0);
        // SAFETY: the display is live; out-pointers refer to locals.
        unsafe {
            let screen = ffi::XDefaultScreen(display);
            ffi::XQueryPointer(
                display,
                ffi::XRootWindow(display, screen),
                &mut root,
                &mut child,
                &mut x,
                &mut y,
                &mut wx,
                &mut wy,
                &mut mask,
            );
        }
        (x, y, mask)
    }

    /// Whether `keycode` is down, seen by `connection`.
    fn key_is_down(connection: &Connection, keycode: u8) -> bool {
        let mut keys = [0 as c_char; 32];
        // SAFETY: the display is live; XQueryKeymap writes exactly 32 bytes.
        unsafe { ffi::XQueryKeymap(connection.raw(), keys.as_mut_ptr()) };
        (keys[usize::from(keycode / 8)] as u8) & (1 << (keycode % 8)) != 0
    }

    fn keycode_of(connection: &Connection, keysym: u32) -> u8 {
        // SAFETY: the display is live.
        unsafe { ffi::XKeysymToKeycode(connection.raw(), ffi::KeySym::from(keysym)) }
    }

    /// A second client that selected button presses/releases on the root
    /// window, to see exactly which X buttons the injector clicked.
    struct ButtonListener(Connection);

    impl ButtonListener {
        fn open(display: &str) -> Self {
            let connection = Connection::open(display).expect("listener connection");
            let raw = connection.raw();
            // SAFETY: the display is live; selecting on its root window.
            unsafe {
                let root = ffi::XRootWindow(raw, ffi::XDefaultScreen(raw));
                ffi::XSelectInput(raw, root, ffi::BUTTON_PRESS_MASK | ffi::BUTTON_RELEASE_MASK);
            }
            connection.sync("XSelectInput").expect("select buttons");
            ButtonListener(connection)
        }

        /// The next `count` events as (pressed?, X button), waiting up to
        /// the timeout; fewer if they do not come.
        fn take(&self, count: usize) -> Vec<(bool, u32)> {
            let display = self.0.raw();
            let deadline = Instant::now() + SETTLE_TIMEOUT;
            let mut seen = Vec::new();
            while seen.len() < count && Instant::now() < deadline {
                // SAFETY: the display is live; XNextEvent returns at once
                // while XPending reports queued events.
                unsafe {
                    while ffi::XPending(display) > 0 {
                        let mut event: ffi::XEvent = std::mem::zeroed();
                        ffi::XNextEvent(display, &mut event);
                        match event.kind {
                            ffi::BUTTON_PRESS => seen.push((true, event.button.button)),
                            ffi::BUTTON_RELEASE => seen.push((false, event.button.button)),
                            _ => {}
                        }
                    }
                }
                sleep(Duration::from_millis(5));
            }
            seen
        }

        /// Asserts nothing more arrives within a short grace period.
        fn assert_quiet(&self) {
            self.0.sync("XSync").unwrap();
            sleep(Duration::from_millis(50));
            let display = self.0.raw();
            // SAFETY: the display is live.
            assert_eq!(unsafe { ffi::XPending(display) }, 0, "unexpected events");
        }
    }

    fn clicks(button: u32, count: usize) -> Vec<(bool, u32)> {
        [(true, button), (false, button)].repeat(count)
    }

    #[test]
    fn inject_injector_is_send() {
        fn assert_send<T: Send>() {}
        assert_send::<XTestInjector>();
    }

    #[test]
    fn inject_split_notches_carries_remainders_both_ways() {
        assert_eq!(split_notches(0, 120), (1, 0));
        assert_eq!(split_notches(0, 60), (0, 60));
        assert_eq!(split_notches(60, 60), (1, 0));
        assert_eq!(split_notches(0, 250), (2, 10));
        assert_eq!(split_notches(0, -130), (-1, -10));
        assert_eq!(split_notches(-10, 40), (0, 30));
        assert_eq!(split_notches(119, -119), (0, 0));
        assert_eq!(split_notches(0, i32::MAX), (MAX_NOTCHES_PER_CALL, 7));
        assert_eq!(split_notches(-119, i32::MIN), (-MAX_NOTCHES_PER_CALL, -7));
    }

    #[test]
    fn inject_clamps_and_maps_buttons() {
        assert_eq!(clamp_to_extent(-5, 640), 0);
        assert_eq!(clamp_to_extent(700, 640), 639);
        assert_eq!(clamp_to_extent(100, 640), 100);
        assert_eq!(clamp_to_extent(3, 0), 0);
        assert_eq!(clamp_to_i16(100_000), 32_767);
        assert_eq!(clamp_to_i16(-100_000), -32_768);
        let mapped: Vec<_> = (1..=5).map(|b| x_button(b).unwrap()).collect();
        assert_eq!(mapped, [1, 2, 3, 8, 9]);
        for bad in [0, 6, 255] {
            assert!(matches!(
                x_button(bad),
                Err(InjectError::InvalidArgument(m)) if m.contains(&format!("button {bad}"))
            ));
        }
    }

    #[test]
    fn inject_open_names_a_missing_display() {
        match XTestInjector::open(":65003") {
            Err(InjectError::Unavailable(reason)) => {
                assert_eq!(reason, "cannot open display :65003")
            }
            Err(other) => panic!("expected Unavailable, got {other}"),
            Ok(_) => panic!("display :65003 unexpectedly exists"),
        }
        assert!(matches!(
            XTestInjector::open(""),
            Err(InjectError::InvalidArgument(_))
        ));
    }

    #[test]
    #[ignore = "needs Xvfb (bootstrap.sh runs it when installed)"]
    fn needs_xvfb_inject_pointer_moves_absolute_relative_and_clamped() {
        let server = Xvfb::require("640x480x24");
        let mut injector = XTestInjector::open(&server.display()).unwrap();
        assert_eq!(injector.display_name(), server.display());
        assert_eq!(injector.screen_size().unwrap(), (640, 480));
        let probe = Connection::open(&server.display()).unwrap();
        let position = || {
            let (x, y, _) = pointer(&probe);
            (x, y)
        };

        injector.mouse_move_absolute(100, 50).unwrap();
        injector.sync();
        assert_eq!(settle((100, 50), position), (100, 50));

        injector.mouse_move_relative(10, -5).unwrap();
        injector.sync();
        assert_eq!(settle((110, 45), position), (110, 45));

        injector
            .inject(&InputEvent::MouseAbsolute { x: -20, y: 9999 })
            .unwrap();
        injector.sync();
        assert_eq!(settle((0, 479), position), (0, 479));

        injector
            .inject(&InputEvent::MouseRelative {
                dx: i32::MAX,
                dy: i32::MIN,
            })
            .unwrap();
        injector.sync();
        assert_eq!(settle((639, 0), position), (639, 0));
        // The injector's own query sees what another client sees.
        let (x, y, mask) = injector.pointer().unwrap();
        assert_eq!((x, y), (639, 0));
        assert_eq!(mask & ffi::BUTTON1_MASK, 0);
        injector.button(1, true).unwrap();
        injector.sync();
        assert_ne!(
            settle(ffi::BUTTON1_MASK, || injector.pointer().unwrap().2
                & ffi::BUTTON1_MASK),
            0
        );
        injector.button(1, false).unwrap();
    }

    #[test]
    #[ignore = "needs Xvfb (bootstrap.sh runs it when installed)"]
    fn needs_xvfb_inject_key_press_and_release_show_in_the_keymap() {
        let server = Xvfb::require("640x480x24");
        let mut injector = XTestInjector::open(&server.display()).unwrap();
        let probe = Connection::open(&server.display()).unwrap();
        let keycode = keycode_of(&probe, 0x61); // XK_a
        assert_ne!(keycode, 0, "the default keymap has an 'a' key");

        injector.key(0x61, true).unwrap();
        injector.sync();
        assert!(settle(true, || key_is_down(&probe, keycode)));
        injector
            .inject(&InputEvent::Key {
                keysym: 0x61,
                down: false,
            })
            .unwrap();
        injector.sync();
        assert!(!settle(false, || key_is_down(&probe, keycode)));

        // U+1234 (ETHIOPIC SYLLABLE SEE) is on no default key: an error,
        // after which the injector keeps working.
        match injector.key(0x0100_1234, true) {
            Err(error @ InjectError::UnmappedKeysym(_)) => {
                assert!(error.to_string().contains("keysym 0x1001234"), "{error}");
                assert_eq!(error.status(), crate::status::PF_ERR_NOT_FOUND);
            }
            other => panic!("expected UnmappedKeysym, got {other:?}"),
        }
        injector.key(0x61, true).unwrap();
        injector.key(0x61, false).unwrap();
        injector.sync();
        assert!(!key_is_down(&probe, keycode));
    }

    #[test]
    #[ignore = "needs Xvfb (bootstrap.sh runs it when installed)"]
    fn needs_xvfb_inject_follows_keymap_changes_made_by_other_clients() {
        let server = Xvfb::require("640x480x24");
        let mut injector = XTestInjector::open(&server.display()).unwrap();
        let keysym = 0x0100_1234;
        assert!(injector.key(keysym, true).is_err(), "unmapped at first");

        // Another client (think setxkbmap) puts the keysym on the highest keycode.
        let other = Connection::open(&server.display()).unwrap();
        let (mut min, mut max) = (0, 0);
        // SAFETY: the display is live; out-pointers refer to locals.
        unsafe { ffi::XDisplayKeycodes(other.raw(), &mut min, &mut max) };
        assert!(max > min);
        let symbols = [ffi::KeySym::from(keysym)];
        // SAFETY: one keycode with one keysym, read from a live array.
        unsafe { ffi::XChangeKeyboardMapping(other.raw(), max, 1, symbols.as_ptr(), 1) };
        other.sync("XChangeKeyboardMapping").unwrap();

        let pressed = settle(true, || injector.key(keysym, true).is_ok());
        assert!(pressed, "the injector never saw the new keymap");
        injector.sync();
        let keycode = u8::try_from(max).unwrap();
        assert!(settle(true, || key_is_down(&other, keycode)));
        injector.key(keysym, false).unwrap();
    }

    #[test]
    #[ignore = "needs Xvfb (bootstrap.sh runs it when installed)"]
    fn needs_xvfb_inject_buttons_press_release_and_map_side_buttons() {
        let server = Xvfb::require("640x480x24");
        let mut injector = XTestInjector::open(&server.display()).unwrap();
        let listener = ButtonListener::open(&server.display());
        let probe = Connection::open(&server.display()).unwrap();
        let mask = || pointer(&probe).2 & (ffi::BUTTON1_MASK | ffi::BUTTON3_MASK);

        injector.button(1, true).unwrap();
        injector.button(3, true).unwrap();
        injector.sync();
        let both = ffi::BUTTON1_MASK | ffi::BUTTON3_MASK;
        assert_eq!(settle(both, mask), both);
        injector.button(1, false).unwrap();
        injector
            .inject(&InputEvent::Button {
                button: 3,
                down: false,
            })
            .unwrap();
        injector.sync();
        assert_eq!(settle(0, mask), 0);
        assert_eq!(
            listener.take(4),
            [(true, 1), (true, 3), (false, 1), (false, 3)]
        );

        for button in [2, 4, 5] {
            injector.button(button, true).unwrap();
            injector.button(button, false).unwrap();
        }
        injector.sync();
        let mut expected = clicks(2, 1);
        expected.extend(clicks(8, 1));
        expected.extend(clicks(9, 1));
        assert_eq!(listener.take(6), expected);

        assert!(matches!(
            injector.button(6, true),
            Err(InjectError::InvalidArgument(_))
        ));
        listener.assert_quiet();
    }

    #[test]
    #[ignore = "needs Xvfb (bootstrap.sh runs it when installed)"]
    fn needs_xvfb_inject_scroll_clicks_once_per_notch_and_keeps_remainders() {
        let server = Xvfb::require("640x480x24");
        let mut injector = XTestInjector::open(&server.display()).unwrap();
        let listener = ButtonListener::open(&server.display());

        injector.scroll(120, 0).unwrap(); // one notch up
        injector.sync();
        assert_eq!(listener.take(2), clicks(4, 1));

        injector.scroll(60, 0).unwrap(); // half a notch: nothing yet
        injector.sync();
        listener.assert_quiet();
        injector.scroll(60, 0).unwrap(); // …completed by the next half
        injector.sync();
        assert_eq!(listener.take(2), clicks(4, 1));

        injector
            .inject(&InputEvent::Scroll {
                vertical: -250,
                horizontal: 0,
            })
            .unwrap(); // two notches down, 10 units kept
        injector.sync();
        assert_eq!(listener.take(4), clicks(5, 2));
        injector.scroll(-110, 0).unwrap(); // with the 10 kept: one more
        injector.sync();
        assert_eq!(listener.take(2), clicks(5, 1));

        injector.scroll(0, 240).unwrap(); // two notches right
        injector.scroll(0, -120).unwrap(); // one notch left
        injector.sync();
        let mut expected = clicks(7, 2);
        expected.extend(clicks(6, 1));
        assert_eq!(listener.take(6), expected);

        injector.scroll(i32::MAX, 0).unwrap(); // capped, not 17 million clicks
        injector.sync();
        assert_eq!(
            listener.take(2 * MAX_NOTCHES_PER_CALL as usize),
            clicks(4, MAX_NOTCHES_PER_CALL as usize)
        );
        listener.assert_quiet();
    }
}
