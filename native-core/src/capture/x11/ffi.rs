//! Raw declarations of the Xlib and MIT-SHM (libXext) items the X11 source
//! uses: `#[repr(C)]` mirrors of the public structs from `<X11/Xlib.h>` and
//! `<X11/extensions/XShm.h>`, a few protocol constants and the `extern "C"`
//! functions. No logic lives here; see [`super`] for the safe wrapper.
//! Layouts were checked against the C headers with `offsetof`/`sizeof`
//! (see the size tests at the bottom).

// The mirrors keep every C field so the layouts match, read or not.
#![allow(dead_code)]

use std::ffi::{c_char, c_int, c_uchar, c_uint, c_ulong, c_void};

/// Opaque `Display` connection handle.
#[repr(C)]
pub struct Display {
    _opaque: [u8; 0],
}

/// An X resource id (`XID`) naming a window.
pub type Window = c_ulong;
/// A window or pixmap (`Drawable`).
pub type Drawable = c_ulong;
/// Xlib's `Bool`: 0 is false.
pub type Bool = c_int;
/// Xlib's `Status`: 0 is failure.
pub type Status = c_int;

/// `False`.
pub const FALSE: Bool = 0;
/// Visual class `TrueColor` (`<X11/X.h>`).
pub const TRUE_COLOR: c_int = 4;
/// Image format `ZPixmap`: packed pixels.
pub const Z_PIXMAP: c_int = 2;
/// Image byte order `LSBFirst`.
pub const LSB_FIRST: c_int = 0;
/// `AllPlanes`: every bit of every pixel.
pub const ALL_PLANES: c_ulong = !0;

/// Mirror of `Visual`.
#[repr(C)]
pub struct Visual {
    pub ext_data: *mut c_void,
    pub visualid: c_ulong,
    /// `class` (`c_class` in C++).
    pub class: c_int,
    pub red_mask: c_ulong,
    pub green_mask: c_ulong,
    pub blue_mask: c_ulong,
    pub bits_per_rgb: c_int,
    pub map_entries: c_int,
}

/// Mirror of `XImage`. `funcs` stands for the struct of six function
/// pointers (`f`), which this crate never calls.
#[repr(C)]
pub struct XImage {
    pub width: c_int,
    pub height: c_int,
    pub xoffset: c_int,
    pub format: c_int,
    pub data: *mut c_char,
    pub byte_order: c_int,
    pub bitmap_unit: c_int,
    pub bitmap_bit_order: c_int,
    pub bitmap_pad: c_int,
    pub depth: c_int,
    pub bytes_per_line: c_int,
    pub bits_per_pixel: c_int,
    pub red_mask: c_ulong,
    pub green_mask: c_ulong,
    pub blue_mask: c_ulong,
    pub obdata: *mut c_char,
    pub funcs: [*mut c_void; 6],
}

/// Mirror of `XErrorEvent`.
#[repr(C)]
pub struct XErrorEvent {
    pub kind: c_int,
    pub display: *mut Display,
    pub resourceid: c_ulong,
    pub serial: c_ulong,
    pub error_code: c_uchar,
    pub request_code: c_uchar,
    pub minor_code: c_uchar,
}

/// Mirror of `XShmSegmentInfo`.
#[repr(C)]
pub struct XShmSegmentInfo {
    pub shmseg: c_ulong,
    pub shmid: c_int,
    pub shmaddr: *mut c_char,
    pub read_only: Bool,
}

/// `XErrorHandler`.
pub type XErrorHandler = Option<unsafe extern "C" fn(*mut Display, *mut XErrorEvent) -> c_int>;
/// `XIOErrorHandler`.
pub type XIOErrorHandler = Option<unsafe extern "C" fn(*mut Display) -> c_int>;
/// `XIOErrorExitHandler` (libX11 ≥ 1.7).
pub type XIOErrorExitHandler = unsafe extern "C" fn(*mut Display, *mut c_void);
/// Signature of `XSetIOErrorExitHandler`, looked up at run time because
/// libX11 before 1.7 lacks it.
pub type XSetIOErrorExitHandlerFn =
    unsafe extern "C" fn(*mut Display, Option<XIOErrorExitHandler>, *mut c_void);

extern "C" {
    // libX11
    pub fn XInitThreads() -> Status;
    pub fn XOpenDisplay(name: *const c_char) -> *mut Display;
    pub fn XCloseDisplay(display: *mut Display) -> c_int;
    pub fn XSync(display: *mut Display, discard: Bool) -> c_int;
    pub fn XFree(data: *mut c_void) -> c_int;
    pub fn XSetErrorHandler(handler: XErrorHandler) -> XErrorHandler;
    pub fn XSetIOErrorHandler(handler: XIOErrorHandler) -> XIOErrorHandler;
    pub fn XGetErrorText(
        display: *mut Display,
        code: c_int,
        buffer: *mut c_char,
        length: c_int,
    ) -> c_int;
    pub fn XDefaultScreen(display: *mut Display) -> c_int;
    pub fn XRootWindow(display: *mut Display, screen: c_int) -> Window;
    pub fn XDefaultVisual(display: *mut Display, screen: c_int) -> *mut Visual;
    pub fn XDefaultDepth(display: *mut Display, screen: c_int) -> c_int;
    pub fn XGetGeometry(
        display: *mut Display,
        drawable: Drawable,
        root: *mut Window,
        x: *mut c_int,
        y: *mut c_int,
        width: *mut c_uint,
        height: *mut c_uint,
        border_width: *mut c_uint,
        depth: *mut c_uint,
    ) -> Status;

    // libXext: MIT-SHM
    pub fn XShmQueryExtension(display: *mut Display) -> Bool;
    pub fn XShmCreateImage(
        display: *mut Display,
        visual: *mut Visual,
        depth: c_uint,
        format: c_int,
        data: *mut c_char,
        shminfo: *mut XShmSegmentInfo,
        width: c_uint,
        height: c_uint,
    ) -> *mut XImage;
    pub fn XShmAttach(display: *mut Display, shminfo: *mut XShmSegmentInfo) -> Bool;
    pub fn XShmDetach(display: *mut Display, shminfo: *mut XShmSegmentInfo) -> Bool;
    pub fn XShmGetImage(
        display: *mut Display,
        drawable: Drawable,
        image: *mut XImage,
        x: c_int,
        y: c_int,
        plane_mask: c_ulong,
    ) -> Bool;
}

#[cfg(all(test, target_os = "linux", target_pointer_width = "64"))]
mod tests {
    use super::*;
    use std::mem::{offset_of, size_of};

    /// Sizes and offsets printed by a C program including the real headers
    /// on x86_64/aarch64 Linux.
    #[test]
    fn layouts_match_the_c_headers() {
        assert_eq!(size_of::<XImage>(), 136);
        assert_eq!(offset_of!(XImage, data), 16);
        assert_eq!(offset_of!(XImage, bytes_per_line), 44);
        assert_eq!(offset_of!(XImage, bits_per_pixel), 48);
        assert_eq!(offset_of!(XImage, red_mask), 56);
        assert_eq!(offset_of!(XImage, obdata), 80);
        assert_eq!(size_of::<XErrorEvent>(), 40);
        assert_eq!(offset_of!(XErrorEvent, serial), 24);
        assert_eq!(offset_of!(XErrorEvent, error_code), 32);
        assert_eq!(size_of::<Visual>(), 56);
        assert_eq!(offset_of!(Visual, class), 16);
        assert_eq!(offset_of!(Visual, red_mask), 24);
        assert_eq!(size_of::<XShmSegmentInfo>(), 32);
        assert_eq!(offset_of!(XShmSegmentInfo, shmid), 8);
        assert_eq!(offset_of!(XShmSegmentInfo, shmaddr), 16);
        assert_eq!(offset_of!(XShmSegmentInfo, read_only), 24);
    }
}
