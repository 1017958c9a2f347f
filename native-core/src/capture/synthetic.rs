//! Synthetic video source: a deterministic moving test pattern for encoder
//! and transport tests on machines without a display.
//!
//! Each frame is a static colour gradient with a 64 px grid, four vertical
//! bars sliding right at different speeds (wrapping around) and a
//! checkerboard box bouncing off the edges, so consecutive frames differ and
//! encoders see real translational motion. The frame index and capture time
//! are stamped into the top-left corner ([`super::stamp`]); read them back
//! with [`read_stamp_from_luma`] or [`read_stamp_from_bgra`].
//!
//! Frame N's pixels depend only on N and the frame size, except for the
//! stamp's timestamp and checksum cells. Rendering copies a precomputed
//! background and redraws only the moving parts and the stamp.

use super::{monotonic_ns, CaptureError, Frame, PixelFormat, VideoSource};

pub use super::stamp::{
    luma_bt601_limited, read_stamp_from_bgra, read_stamp_from_luma, Stamp, StampLayout,
};

/// Smallest accepted width and height: room for a stamp and a moving box.
pub const MIN_DIMENSION: u32 = 64;
/// Largest accepted width and height (16K), far beyond any codec level this
/// host targets; it keeps buffer sizes well inside `usize` arithmetic.
pub const MAX_DIMENSION: u32 = 16_384;

const BYTES_PER_PIXEL: usize = 4;

/// Spacing of the darker background grid lines: a multiple of the 16/64 px
/// coding-block sizes of H.264/HEVC/AV1, so the static lines stay block
/// aligned.
const GRID_SPACING: u32 = 64;

/// Sliding bars: BGRA colour and speed in pixels per frame. Distinct small
/// speeds (2–7 px/frame, 120–420 px/s at 60 fps) give motion vectors of
/// several sizes; prime speeds keep the bars from moving in lockstep.
const BARS: [([u8; 4], u32); 4] = [
    ([0, 255, 255, 255], 2),   // yellow
    ([255, 255, 0, 255], 3),   // cyan
    ([255, 0, 255, 255], 5),   // magenta
    ([255, 255, 255, 255], 7), // white
];

/// Bounce speed of the box in pixels per frame, horizontally and
/// vertically; different values make it sweep the whole frame over time.
const BOX_SPEED_X: u32 = 5;
const BOX_SPEED_Y: u32 = 3;
/// Checkerboard square size inside the box: half a macroblock, so the box
/// carries texture an encoder can track.
const CHECKER_SIZE: u32 = 8;
const BOX_COLORS: [[u8; 4]; 2] = [[0x20, 0x80, 0xF0, 255], [0x80, 0x20, 0x10, 255]];
/// Width of the white frame around the box.
const BOX_BORDER: u32 = 2;

/// The test-pattern source. See the module documentation.
#[derive(Debug, Clone)]
pub struct SyntheticSource {
    width: u32,
    height: u32,
    stride: usize,
    /// Static gradient and grid, `stride * height` bytes.
    background: Vec<u8>,
    bar_width: u32,
    /// One row of each bar (`bar_width` pixels), copied per frame row.
    bar_rows: Vec<Vec<u8>>,
    box_side: u32,
    /// The box's pixels, `box_side`² BGRA, rows packed.
    box_sprite: Vec<u8>,
    stamp_layout: StampLayout,
    next_index: u64,
}

impl SyntheticSource {
    /// A source producing `width`×`height` frames, both even (4:2:0 chroma)
    /// and within [`MIN_DIMENSION`]..=[`MAX_DIMENSION`].
    pub fn new(width: u32, height: u32) -> Result<Self, CaptureError> {
        for (what, value) in [("width", width), ("height", height)] {
            if !(MIN_DIMENSION..=MAX_DIMENSION).contains(&value) || value % 2 != 0 {
                return Err(CaptureError::InvalidArgument(format!(
                    "synthetic {what} {value} must be even and in \
                     {MIN_DIMENSION}..={MAX_DIMENSION}"
                )));
            }
        }
        let stamp_layout = StampLayout::for_frame(width, height).ok_or_else(|| {
            CaptureError::InvalidArgument(format!("no stamp layout fits {width}x{height}"))
        })?;

        // Bars 1/32 of the width (60 px at 1080p), box 1/4 of the smaller
        // side (270 px at 1080p); both even so chroma stays aligned.
        let bar_width = (width / 32).max(2) & !1;
        let box_side = (width.min(height) / 4) & !1;
        let bar_rows = BARS
            .iter()
            .map(|(color, _)| color.repeat(bar_width as usize))
            .collect();

        Ok(SyntheticSource {
            width,
            height,
            stride: width as usize * BYTES_PER_PIXEL,
            background: render_background(width, height),
            bar_width,
            bar_rows,
            box_side,
            box_sprite: render_box(box_side),
            stamp_layout,
            next_index: 0,
        })
    }

    /// Where the stamp sits in this source's frames.
    pub fn stamp_layout(&self) -> StampLayout {
        self.stamp_layout
    }

    /// Index the next [`VideoSource::capture`] will produce.
    pub fn next_index(&self) -> u64 {
        self.next_index
    }

    /// Renders frame `index` stamped with `capture_ns` into `frame`,
    /// reusing its buffer. Does not advance the source.
    pub fn render(&self, index: u64, capture_ns: u64, frame: &mut Frame) {
        frame.reshape(self.width, self.height, self.stride, PixelFormat::Bgra);
        frame.data.copy_from_slice(&self.background);
        self.draw_bars(index, &mut frame.data);
        self.draw_box(index, &mut frame.data);
        Stamp::new(index, capture_ns).draw_bgra(&self.stamp_layout, &mut frame.data, self.stride);
        frame.index = index;
        frame.capture_ns = capture_ns;
    }

    fn draw_bars(&self, index: u64, data: &mut [u8]) {
        let width = u64::from(self.width);
        for (bar, ((_, speed), row_pixels)) in BARS.iter().zip(&self.bar_rows).enumerate() {
            // Bars start evenly spread over the width.
            let start = bar as u64 * width / BARS.len() as u64;
            // (index mod width) keeps the product far from overflow.
            let x = ((start + (index % width) * u64::from(*speed)) % width) as usize;
            // Split a bar that runs off the right edge and wrap it to x = 0.
            let visible = (self.bar_width as usize).min(self.width as usize - x) * BYTES_PER_PIXEL;
            let (right_part, wrapped_part) = row_pixels.split_at(visible);
            for row in data.chunks_exact_mut(self.stride) {
                let at = x * BYTES_PER_PIXEL;
                row[at..at + visible].copy_from_slice(right_part);
                row[..wrapped_part.len()].copy_from_slice(wrapped_part);
            }
        }
    }

    fn draw_box(&self, index: u64, data: &mut [u8]) {
        let side = self.box_side as usize;
        let left = bounce(index, BOX_SPEED_X, self.width - self.box_side) as usize;
        let top = bounce(index, BOX_SPEED_Y, self.height - self.box_side) as usize;
        let row_bytes = side * BYTES_PER_PIXEL;
        for (row, sprite_row) in self.box_sprite.chunks_exact(row_bytes).enumerate() {
            let start = (top + row) * self.stride + left * BYTES_PER_PIXEL;
            data[start..start + row_bytes].copy_from_slice(sprite_row);
        }
    }
}

impl VideoSource for SyntheticSource {
    fn size(&self) -> (u32, u32) {
        (self.width, self.height)
    }

    fn capture(&mut self, frame: &mut Frame) -> Result<(), CaptureError> {
        let capture_ns = monotonic_ns();
        self.render(self.next_index, capture_ns, frame);
        self.next_index = self.next_index.wrapping_add(1);
        Ok(())
    }

    fn name(&self) -> &'static str {
        "synthetic"
    }
}

/// Position after `index` frames of a point moving `speed` px/frame back
/// and forth over `0..=range` (a triangle wave starting at 0).
fn bounce(index: u64, speed: u32, range: u32) -> u32 {
    if range == 0 {
        return 0;
    }
    let period = 2 * u64::from(range);
    // Reducing index first keeps the product far from overflow.
    let phase = (index % period) * u64::from(speed) % period;
    let position = if phase <= u64::from(range) {
        phase
    } else {
        period - phase
    };
    position as u32
}

/// The static background: red grows to the right, green downwards, blue
/// opposite to both, with half-brightness grid lines every
/// [`GRID_SPACING`] px.
fn render_background(width: u32, height: u32) -> Vec<u8> {
    let mut data = Vec::with_capacity(width as usize * height as usize * BYTES_PER_PIXEL);
    for y in 0..height {
        let green = y * 255 / (height - 1);
        for x in 0..width {
            let red = x * 255 / (width - 1);
            let blue = 255 - (red + green) / 2;
            let on_grid = x % GRID_SPACING == 0 || y % GRID_SPACING == 0;
            let dim = if on_grid { 2 } else { 1 };
            // Every channel is at most 255, so the casts are lossless.
            data.extend_from_slice(&[
                (blue / dim) as u8,
                (green / dim) as u8,
                (red / dim) as u8,
                255,
            ]);
        }
    }
    data
}

/// The box: a checkerboard with a white border.
fn render_box(side: u32) -> Vec<u8> {
    let mut data = Vec::with_capacity(side as usize * side as usize * BYTES_PER_PIXEL);
    for y in 0..side {
        for x in 0..side {
            let on_border = x < BOX_BORDER
                || y < BOX_BORDER
                || x >= side - BOX_BORDER
                || y >= side - BOX_BORDER;
            let color = if on_border {
                [255, 255, 255, 255]
            } else {
                BOX_COLORS[((x / CHECKER_SIZE + y / CHECKER_SIZE) % 2) as usize]
            };
            data.extend_from_slice(&color);
        }
    }
    data
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Whether `a` and `b` differ anywhere outside the stamp area.
    fn differ_outside_stamp(a: &Frame, b: &Frame, layout: &StampLayout) -> bool {
        (0..a.height).any(|y| {
            a.row(y)
                .chunks_exact(BYTES_PER_PIXEL)
                .zip(b.row(y).chunks_exact(BYTES_PER_PIXEL))
                .enumerate()
                .any(|(x, (pa, pb))| !layout.contains(x as u32, y) && pa != pb)
        })
    }

    /// A lossy channel: BGRA → BT.601 limited-range luma, uniform noise in
    /// ±`amplitude` (xorshift64 seeded with `seed`), then a 3×3 binomial
    /// blur, clamped back to 8 bits.
    fn lossy_luma(frame: &Frame, seed: u64, amplitude: i32) -> Vec<u8> {
        let (width, height) = (frame.width as usize, frame.height as usize);
        let mut state = seed | 1;
        let mut noisy = vec![0i32; width * height];
        for y in 0..height {
            for (x, px) in frame
                .row(y as u32)
                .chunks_exact(BYTES_PER_PIXEL)
                .enumerate()
            {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                let noise = (state % (2 * amplitude as u64 + 1)) as i32 - amplitude;
                noisy[y * width + x] = i32::from(luma_bt601_limited(px[0], px[1], px[2])) + noise;
            }
        }
        const KERNEL: [i32; 3] = [1, 2, 1];
        let mut blurred = vec![0u8; width * height];
        for y in 0..height {
            for x in 0..width {
                let mut sum = 0;
                for (dy, ky) in KERNEL.iter().enumerate() {
                    for (dx, kx) in KERNEL.iter().enumerate() {
                        let sy = (y + dy).saturating_sub(1).min(height - 1);
                        let sx = (x + dx).saturating_sub(1).min(width - 1);
                        sum += ky * kx * noisy[sy * width + sx];
                    }
                }
                // The kernel weights sum to 16.
                blurred[y * width + x] = (sum / 16).clamp(0, 255) as u8;
            }
        }
        blurred
    }

    #[test]
    fn rejects_small_odd_or_huge_sizes() {
        for (width, height) in [
            (62, 64),
            (64, 62),
            (0, 0),
            (65, 64),
            (64, 99),
            (MAX_DIMENSION + 2, 64),
        ] {
            match SyntheticSource::new(width, height) {
                Err(CaptureError::InvalidArgument(reason)) => {
                    assert!(reason.contains("must be even"), "{reason}")
                }
                other => panic!("{width}x{height}: expected InvalidArgument, got {other:?}"),
            }
        }
        assert!(SyntheticSource::new(64, 64).is_ok());
    }

    #[test]
    fn consecutive_frames_differ() {
        let source = SyntheticSource::new(320, 180).unwrap();
        let layout = source.stamp_layout();
        let (mut previous, mut current) = (Frame::new(), Frame::new());
        source.render(0, 0, &mut previous);
        for index in 1..200 {
            source.render(index, 0, &mut current);
            assert!(
                differ_outside_stamp(&previous, &current, &layout),
                "frame {index} equals its predecessor"
            );
            std::mem::swap(&mut previous, &mut current);
        }
    }

    #[test]
    fn frames_depend_only_on_index_except_the_time_cells() {
        let first = SyntheticSource::new(640, 360).unwrap();
        let second = SyntheticSource::new(640, 360).unwrap();
        let (mut a, mut b) = (Frame::new(), Frame::new());
        for index in [0, 1, 17, 1_000_003, u64::MAX] {
            first.render(index, 5_000, &mut a);
            second.render(index, 5_000, &mut b);
            assert_eq!(a, b, "frame {index}");
            second.render(index, 9_999_999, &mut b);
            assert_ne!(a.data, b.data);
            assert!(!differ_outside_stamp(&a, &b, &first.stamp_layout()));
        }
    }

    #[test]
    fn capture_numbers_and_stamps_frames() {
        let mut source = SyntheticSource::new(640, 360).unwrap();
        assert_eq!(source.size(), (640, 360));
        assert_eq!(source.name(), "synthetic");
        let mut frame = Frame::new();
        let mut last_ns = 0;
        for expected_index in 0..5 {
            source.capture(&mut frame).unwrap();
            assert_eq!(
                (frame.width, frame.height, frame.stride),
                (640, 360, 640 * 4)
            );
            assert_eq!(frame.format, PixelFormat::Bgra);
            assert_eq!(frame.index, expected_index);
            assert!(frame.capture_ns >= last_ns);
            last_ns = frame.capture_ns;
            let stamp = read_stamp_from_bgra(&frame.data, frame.stride, 640, 360);
            assert_eq!(stamp, Some(Stamp::new(frame.index, frame.capture_ns)));
        }
        assert_eq!(source.next_index(), 5);
    }

    #[test]
    fn capture_reuses_the_frame_buffer() {
        let mut source = SyntheticSource::new(256, 128).unwrap();
        let mut frame = Frame::new();
        source.capture(&mut frame).unwrap();
        let buffer = frame.data.as_ptr();
        for _ in 0..10 {
            source.capture(&mut frame).unwrap();
        }
        assert_eq!(frame.data.as_ptr(), buffer);
    }

    #[test]
    fn corrupted_stamp_is_rejected() {
        let source = SyntheticSource::new(640, 360).unwrap();
        let mut frame = Frame::new();
        source.render(1234, 987_654_321, &mut frame);
        assert!(read_stamp_from_bgra(&frame.data, frame.stride, 640, 360).is_some());
        // Paint the cell of the index's lowest bit (cell 63) with the inverse
        // of its current colour.
        let cell = source.stamp_layout().cell_size as usize;
        let columns = source.stamp_layout().columns as usize;
        let (left, top) = ((63 % columns) * cell, (63 / columns) * cell);
        for y in top..top + cell {
            let start = y * frame.stride + left * BYTES_PER_PIXEL;
            for value in &mut frame.data[start..start + cell * BYTES_PER_PIXEL] {
                *value = 255 - *value;
            }
        }
        assert_eq!(
            read_stamp_from_bgra(&frame.data, frame.stride, 640, 360),
            None
        );
    }

    #[test]
    fn bounce_is_a_triangle_wave() {
        let positions: Vec<u32> = (0..8).map(|i| bounce(i, 3, 9)).collect();
        assert_eq!(positions, [0, 3, 6, 9, 6, 3, 0, 3]);
        assert_eq!(bounce(u64::MAX, 7, 0), 0);
        assert!(bounce(u64::MAX, 7, 100) <= 100);
    }

    #[test]
    fn timing_1080p_render() {
        let mut source = SyntheticSource::new(1920, 1080).unwrap();
        let mut frame = Frame::new();
        // Warm-up: the first frame pays for page faults on the new buffer.
        for _ in 0..5 {
            source.capture(&mut frame).unwrap();
        }
        // 4 s of 60 fps video.
        const FRAMES: usize = 240;
        let mut times: Vec<_> = (0..FRAMES)
            .map(|_| {
                let started = std::time::Instant::now();
                source.capture(&mut frame).unwrap();
                started.elapsed()
            })
            .collect();
        times.sort_unstable();
        println!(
            "timing: synthetic 1920x1080 render: median {:?}, p99 {:?}, max {:?} per frame \
             ({FRAMES} frames)",
            times[FRAMES / 2],
            times[FRAMES * 99 / 100],
            times[FRAMES - 1]
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn stamp_round_trips_at_any_size(
            half_width in MIN_DIMENSION / 2..=400,
            half_height in MIN_DIMENSION / 2..=300,
            index in any::<u64>(),
            capture_ns in any::<u64>(),
        ) {
            let (width, height) = (half_width * 2, half_height * 2);
            let source = SyntheticSource::new(width, height).unwrap();
            let mut frame = Frame::new();
            source.render(index, capture_ns, &mut frame);
            prop_assert_eq!(
                read_stamp_from_bgra(&frame.data, frame.stride, width, height),
                Some(Stamp::new(index, capture_ns))
            );
        }

        #[test]
        fn stamp_survives_noise_and_blur(
            size in prop::sample::select(vec![(320u32, 240u32), (640, 360), (1280, 720)]),
            index in any::<u64>(),
            capture_ns in any::<u64>(),
            seed in any::<u64>(),
        ) {
            let (width, height) = size;
            let source = SyntheticSource::new(width, height).unwrap();
            let mut frame = Frame::new();
            source.render(index, capture_ns, &mut frame);
            let luma = lossy_luma(&frame, seed, 20);
            prop_assert_eq!(
                read_stamp_from_luma(&luma, width as usize, width, height),
                Some(Stamp::new(index, capture_ns))
            );
        }
    }
}
