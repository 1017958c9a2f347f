//! Synthetic BGRA frames for the encoder tests, each stamped with its index
//! so decoded frames can be matched to their inputs after lossy coding.
//!
//! The stamp is a band of [`STAMP_HEIGHT`] rows at the top, split into
//! [`STAMP_BITS`] equal cells, least significant bit on the left; a set bit
//! is a white cell, a clear one black. Single pixel values would not survive
//! compression; 16-row, ≥ 64-pixel cells of pure black/white do at any sane
//! bit rate.

use super::decoder::DecodedFrame;
use super::{Frame, PixelFormat};

/// Bits of the index stamp (frames 0 ..= 1023).
pub const STAMP_BITS: u32 = 10;

/// Height of the stamp band: one macroblock row.
pub const STAMP_HEIGHT: u32 = 16;

/// Side of the moving white square.
const SQUARE: u32 = 64;

/// Pixels the square moves per frame.
const SQUARE_STEP: u32 = 8;

/// Limited-range luma of black and white.
pub const LUMA_BLACK: u8 = 16;
pub const LUMA_WHITE: u8 = 235;

fn cell_width(width: u32) -> u32 {
    width / STAMP_BITS
}

fn blank(width: u32, height: u32, index: u64) -> Frame {
    let stride = width as usize * 4;
    Frame {
        width,
        height,
        stride,
        format: PixelFormat::Bgra,
        data: vec![0; stride * height as usize],
        index,
        capture_ns: 1_000_000 + index * 16_666_667,
    }
}

fn put(frame: &mut Frame, x: u32, y: u32, bgr: [u8; 3]) {
    let at = y as usize * frame.stride + x as usize * 4;
    frame.data[at..at + 4].copy_from_slice(&[bgr[0], bgr[1], bgr[2], 0xff]);
}

fn stamp(frame: &mut Frame) {
    let cw = cell_width(frame.width);
    for y in 0..STAMP_HEIGHT.min(frame.height) {
        for x in 0..frame.width {
            let bit = x / cw;
            let on = bit < STAMP_BITS && (frame.index >> bit) & 1 == 1;
            let v = if on { 0xff } else { 0 };
            put(frame, x, y, [v, v, v]);
        }
    }
}

/// A gradient (blue across, green down) with a white square moving right
/// by 8 pixels a frame, stamped with `index`.
pub fn moving_square(width: u32, height: u32, index: u64) -> Frame {
    let mut frame = blank(width, height, index);
    let travel = u64::from(width.saturating_sub(SQUARE).max(1));
    let square_x = ((index * u64::from(SQUARE_STEP)) % travel) as u32;
    let square_y = height.saturating_sub(SQUARE) / 2;
    for y in 0..height {
        for x in 0..width {
            let in_square = (square_x..square_x + SQUARE).contains(&x)
                && (square_y..square_y + SQUARE).contains(&y);
            let bgr = if in_square {
                [0xff; 3]
            } else {
                let blue = (x * 255 / width.max(2).saturating_sub(1)).min(255) as u8;
                let green = (y * 255 / height.max(2).saturating_sub(1)).min(255) as u8;
                [blue, green, 0x80]
            };
            put(&mut frame, x, y, bgr);
        }
    }
    stamp(&mut frame);
    frame
}

/// Uniform random noise, new every frame (so no encoder can predict it and
/// every one is rate-limited), stamped with `index`.
pub fn noise(width: u32, height: u32, index: u64) -> Frame {
    let mut frame = blank(width, height, index);
    // xorshift64; the seed just has to be non-zero and differ per frame.
    let mut state = 0x9e37_79b9_7f4a_7c15_u64 ^ (index + 1).wrapping_mul(0x2545_f491_4f6c_dd1d);
    for chunk in frame.data.chunks_exact_mut(8) {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        chunk.copy_from_slice(&state.to_le_bytes());
    }
    stamp(&mut frame);
    frame
}

/// One colour everywhere (no stamp).
pub fn solid(width: u32, height: u32, bgr: [u8; 3]) -> Frame {
    let mut frame = blank(width, height, 0);
    for y in 0..height {
        for x in 0..width {
            put(&mut frame, x, y, bgr);
        }
    }
    frame
}

/// Pixels alternating between two colours in a 1-pixel checkerboard (no
/// stamp): its 4:2:0 chroma must be the average of both.
pub fn checkerboard(width: u32, height: u32, a: [u8; 3], b: [u8; 3]) -> Frame {
    let mut frame = blank(width, height, 0);
    for y in 0..height {
        for x in 0..width {
            put(&mut frame, x, y, if (x ^ y) & 1 == 0 { a } else { b });
        }
    }
    frame
}

/// Reads the index stamp back from decoded luma: each cell's centre is
/// averaged and compared with mid-grey.
pub fn read_stamp(decoded: &DecodedFrame) -> u64 {
    let cw = cell_width(decoded.width);
    let mut index = 0;
    for bit in 0..STAMP_BITS {
        let (x0, x1) = (bit * cw + cw / 4, bit * cw + cw * 3 / 4);
        let (y0, y1) = (STAMP_HEIGHT / 4, STAMP_HEIGHT * 3 / 4);
        let mut sum = 0u64;
        for y in y0..y1 {
            for x in x0..x1 {
                sum += u64::from(decoded.luma(x, y));
            }
        }
        let mean = sum / u64::from((x1 - x0) * (y1 - y0));
        let mid = u64::from(LUMA_BLACK) + u64::from(LUMA_WHITE - LUMA_BLACK) / 2;
        if mean > mid {
            index |= 1 << bit;
        }
    }
    index
}

/// Mean of the decoded luma over a centred square of side `side`.
pub fn centre_luma(decoded: &DecodedFrame, side: u32) -> f64 {
    let (x0, y0) = ((decoded.width - side) / 2, (decoded.height - side) / 2);
    let mut sum = 0u64;
    for y in y0..y0 + side {
        for x in x0..x0 + side {
            sum += u64::from(decoded.luma(x, y));
        }
    }
    sum as f64 / f64::from(side * side)
}

/// Limited-range luma of an 8-bit RGB colour for luma weights (kr, kb).
pub fn limited_luma(rgb: [u8; 3], kr: f64, kb: f64) -> f64 {
    let [r, g, b] = rgb.map(f64::from);
    let y = kr * r + (1.0 - kr - kb) * g + kb * b;
    16.0 + y * 219.0 / 255.0
}

/// Limited-range (Cb, Cr) of an 8-bit RGB colour for luma weights (kr, kb).
pub fn limited_chroma(rgb: [u8; 3], kr: f64, kb: f64) -> (f64, f64) {
    let [r, g, b] = rgb.map(f64::from);
    let y = kr * r + (1.0 - kr - kb) * g + kb * b;
    let scale = 112.0 / 255.0;
    (
        128.0 + scale * (b - y) / (1.0 - kb),
        128.0 + scale * (r - y) / (1.0 - kr),
    )
}

/// Mean of a decoded chroma plane over a centred square of side `side`.
pub fn centre_chroma(decoded: &DecodedFrame, plane: &[u8], side: u32) -> f64 {
    let (w, h) = (decoded.chroma_width, decoded.chroma_height);
    let (x0, y0) = ((w - side) / 2, (h - side) / 2);
    let mut sum = 0u64;
    for y in y0..y0 + side {
        for x in x0..x0 + side {
            sum += u64::from(plane[y as usize * decoded.uv_stride + x as usize]);
        }
    }
    sum as f64 / f64::from(side * side)
}

/// BT.709 luma weights.
pub const BT709: (f64, f64) = (0.2126, 0.0722);
/// BT.601 luma weights.
pub const BT601: (f64, f64) = (0.299, 0.114);

#[cfg(test)]
mod tests {
    use super::*;

    fn as_decoded(frame: &Frame) -> DecodedFrame {
        // Ideal "decode": BT.709 luma of every pixel.
        let mut y = Vec::new();
        for px in frame.data.chunks_exact(4) {
            let luma = limited_luma([px[2], px[1], px[0]], BT709.0, BT709.1);
            y.push(luma.round() as u8);
        }
        DecodedFrame {
            width: frame.width,
            height: frame.height,
            y,
            y_stride: frame.width as usize,
            ..DecodedFrame::default()
        }
    }

    #[test]
    fn stamps_read_back() {
        for index in [0, 1, 2, 5, 512, 1023] {
            for frame in [moving_square(640, 360, index), noise(640, 360, index)] {
                assert_eq!(read_stamp(&as_decoded(&frame)), index);
                assert_eq!(frame.index, index);
            }
        }
    }

    #[test]
    fn square_moves_and_noise_changes() {
        assert_ne!(
            moving_square(320, 240, 1).data,
            moving_square(320, 240, 2).data
        );
        assert_ne!(noise(320, 240, 1).data, noise(320, 240, 2).data);
    }

    #[test]
    fn reference_lumas() {
        assert_eq!(
            limited_luma([255, 255, 255], BT709.0, BT709.1).round(),
            235.0
        );
        assert_eq!(limited_luma([0, 0, 0], BT601.0, BT601.1), 16.0);
        assert_eq!(limited_luma([255, 0, 0], BT709.0, BT709.1).round(), 63.0);
        assert_eq!(limited_luma([255, 0, 0], BT601.0, BT601.1).round(), 81.0);
        let (cb, cr) = limited_chroma([255, 0, 0], BT709.0, BT709.1);
        assert_eq!((cb.round(), cr.round()), (102.0, 240.0));
        let (cb, cr) = limited_chroma([0, 0, 255], BT709.0, BT709.1);
        assert_eq!((cb.round(), cr.round()), (240.0, 118.0));
        let (cb, cr) = limited_chroma([128, 128, 128], BT601.0, BT601.1);
        assert_eq!(
            (cb.round(), cr.round()),
            (128.0, 128.0),
            "grey has no chroma"
        );
    }
}
