//! Video sources: where the frames the encoder consumes come from.
//!
//! Every source implements [`VideoSource`], which fills a caller-owned
//! [`Frame`] with packed pixels. Nothing in this module is tied to a
//! particular windowing system, so X11 ([`x11`]), the synthetic test pattern
//! ([`synthetic`]) and later Wayland/PipeWire sources share one interface.
//!
//! Frames carry a CLOCK_MONOTONIC capture timestamp ([`monotonic_ns`]) so the
//! pipeline can measure latency end to end; the synthetic source also burns
//! that timestamp and its frame index into the picture ([`stamp`]).

pub mod stamp;
pub mod synthetic;
pub mod x11;

use std::fmt;
use std::io;

/// Memory layout of a frame's pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum PixelFormat {
    /// 4 bytes per pixel in memory order B, G, R, A/X: X11's 24/32-bit
    /// TrueColor layout on little-endian machines (`0x00RRGGBB` words).
    /// The fourth byte is opaque alpha or undefined padding depending on the
    /// source; consumers must ignore it.
    #[default]
    Bgra,
}

impl PixelFormat {
    /// Bytes one pixel occupies.
    pub const fn bytes_per_pixel(self) -> usize {
        match self {
            PixelFormat::Bgra => 4,
        }
    }
}

/// One captured picture. Sources reuse `data` from call to call, so a
/// capture loop that keeps passing the same `Frame` allocates nothing in
/// steady state.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Frame {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Bytes from the start of one row to the start of the next
    /// (at least `width * format.bytes_per_pixel()`).
    pub stride: usize,
    /// Pixel layout.
    pub format: PixelFormat,
    /// `stride * height` bytes of pixels, top row first.
    pub data: Vec<u8>,
    /// Position of this frame in its source's sequence, starting at 0.
    pub index: u64,
    /// CLOCK_MONOTONIC time, in nanoseconds, at which the pixels were taken.
    pub capture_ns: u64,
}

impl Frame {
    /// An empty frame, ready to be filled by any source.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the geometry and sizes `data` to `stride * height` bytes. Keeps
    /// the existing allocation whenever it is large enough, so repeated calls
    /// with the same geometry never allocate.
    ///
    /// # Panics
    /// If `stride` is smaller than one row of pixels.
    pub fn reshape(&mut self, width: u32, height: u32, stride: usize, format: PixelFormat) {
        assert!(
            stride >= width as usize * format.bytes_per_pixel(),
            "stride {stride} shorter than a row of {width} pixels"
        );
        self.width = width;
        self.height = height;
        self.stride = stride;
        self.format = format;
        self.data.resize(stride * height as usize, 0);
    }

    /// The pixel bytes of row `y` (without stride padding).
    ///
    /// # Panics
    /// If `y` is outside the frame.
    pub fn row(&self, y: u32) -> &[u8] {
        assert!(
            y < self.height,
            "row {y} outside a frame of height {}",
            self.height
        );
        let start = y as usize * self.stride;
        &self.data[start..start + self.width as usize * self.format.bytes_per_pixel()]
    }
}

/// Why a source could not deliver a frame.
#[derive(Debug)]
pub enum CaptureError {
    /// The caller passed something unusable (odd or tiny size, empty name…).
    InvalidArgument(String),
    /// The source cannot be used here, with the reason: no display, missing
    /// extension, unsupported pixel format…
    Unavailable(String),
    /// The captured surface changed size; reopen the source.
    Resized {
        /// Size the source was opened with.
        old: (u32, u32),
        /// Size the surface has now.
        new: (u32, u32),
    },
    /// The connection to the source broke (e.g. the X server went away);
    /// the source will never deliver frames again.
    Lost(String),
    /// A single capture failed; a later one may succeed.
    Failed(String),
    /// An operating-system call failed.
    Io {
        /// What was being done.
        context: String,
        /// The OS error.
        source: io::Error,
    },
}

impl CaptureError {
    /// An [`CaptureError::Io`] from `errno` of the call just made.
    pub(crate) fn last_os_error(context: impl Into<String>) -> Self {
        CaptureError::Io {
            context: context.into(),
            source: io::Error::last_os_error(),
        }
    }
}

impl fmt::Display for CaptureError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CaptureError::InvalidArgument(reason) => write!(f, "invalid argument: {reason}"),
            CaptureError::Unavailable(reason) => write!(f, "source unavailable: {reason}"),
            CaptureError::Resized { old, new } => write!(
                f,
                "source resized from {}x{} to {}x{}",
                old.0, old.1, new.0, new.1
            ),
            CaptureError::Lost(reason) => write!(f, "source lost: {reason}"),
            CaptureError::Failed(reason) => write!(f, "capture failed: {reason}"),
            CaptureError::Io { context, source } => write!(f, "{context}: {source}"),
        }
    }
}

impl std::error::Error for CaptureError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            CaptureError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// A producer of video frames. A source is driven by one capture thread at a
/// time (`Send`, not necessarily `Sync`); pacing is the caller's business.
pub trait VideoSource: Send {
    /// Width and height, in pixels, of the frames [`VideoSource::capture`]
    /// produces.
    fn size(&self) -> (u32, u32);

    /// Fills `frame` (reusing its buffer: no allocation per frame in steady
    /// state) with the next picture, its index and its capture time.
    fn capture(&mut self, frame: &mut Frame) -> Result<(), CaptureError>;

    /// Short stable identifier for logs and stats, e.g. `"x11-shm"`.
    fn name(&self) -> &'static str;
}

/// Current CLOCK_MONOTONIC time in nanoseconds, the time base of
/// [`Frame::capture_ns`].
pub fn monotonic_ns() -> u64 {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `now` is a valid, writable timespec for the duration of the call.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) };
    // CLOCK_MONOTONIC always exists on Linux; failure would mean a bad pointer.
    debug_assert_eq!(rc, 0, "clock_gettime(CLOCK_MONOTONIC) failed");
    const NANOS_PER_SECOND: u64 = 1_000_000_000;
    now.tv_sec as u64 * NANOS_PER_SECOND + now.tv_nsec as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn monotonic_clock_advances() {
        let first = monotonic_ns();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let second = monotonic_ns();
        assert!(second > first);
        assert!(
            second - first >= 2_000_000,
            "slept 2 ms, clock moved {} ns",
            second - first
        );
    }

    #[test]
    fn reshape_reuses_the_allocation() {
        let mut frame = Frame::new();
        frame.reshape(64, 32, 256, PixelFormat::Bgra);
        assert_eq!(frame.data.len(), 256 * 32);
        let buffer = frame.data.as_ptr();
        frame.reshape(64, 32, 256, PixelFormat::Bgra);
        frame.reshape(32, 16, 128, PixelFormat::Bgra);
        frame.reshape(64, 32, 256, PixelFormat::Bgra);
        assert_eq!(frame.data.as_ptr(), buffer);
        assert_eq!(frame.row(31).len(), 64 * 4);
    }

    #[test]
    #[should_panic(expected = "stride")]
    fn reshape_rejects_short_stride() {
        Frame::new().reshape(64, 2, 255, PixelFormat::Bgra);
    }

    #[test]
    fn errors_describe_themselves() {
        let unavailable = CaptureError::Unavailable("cannot open display :99".into());
        assert_eq!(
            unavailable.to_string(),
            "source unavailable: cannot open display :99"
        );
        let resized = CaptureError::Resized {
            old: (1280, 720),
            new: (1920, 1080),
        };
        assert_eq!(
            resized.to_string(),
            "source resized from 1280x720 to 1920x1080"
        );
        let io = CaptureError::Io {
            context: "shmget".into(),
            source: io::Error::from_raw_os_error(libc::ENOMEM),
        };
        assert!(io.to_string().starts_with("shmget: "));
        assert!(std::error::Error::source(&io).is_some());
    }
}
