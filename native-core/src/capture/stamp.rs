//! Frame stamp: a frame index and capture timestamp burnt into the picture
//! as a block of black/white cells in the top-left corner, so a receiver can
//! identify frames and measure latency after lossy encode → decode.
//!
//! # Layout
//! 144 cells, one bit each, most significant bit first, row-major from the
//! frame's top-left pixel:
//!
//! | cells     | bits | content                                         |
//! |-----------|------|-------------------------------------------------|
//! | 0..32     | 32   | sync pattern [`STAMP_MAGIC`]                     |
//! | 32..64    | 32   | frame index (low 32 bits)                        |
//! | 64..128   | 64   | capture time, CLOCK_MONOTONIC ns                 |
//! | 128..144  | 16   | CRC-16/CCITT-FALSE of index and time (big-endian) |
//!
//! A set bit is a white cell (BGRA 255,255,255 → limited-range luma 235),
//! a clear bit a black one (→ luma 16). Cells are 16×16 pixels in a
//! 36-column × 4-row stripe (576×64 px) whenever the frame is at least
//! 576 px wide and 128 px tall; smaller frames fall back to 8, 4 or 2 px
//! cells ([`StampLayout::for_frame`]). 16 px cells line up with H.264
//! macroblocks and the smallest HEVC/AV1 coding blocks, so each cell is a
//! flat block the encoder reproduces well even at moderate bitrates.
//!
//! # Reading
//! The reader averages the central half (8×8 px of a 16 px cell) of every
//! cell, derives the black/white threshold from the 16 white and 16 black
//! cells of the sync pattern (so limited- and full-range luma both work),
//! requires every sync cell to match, and finally checks the CRC.

/// Sync pattern in the first 32 cells. Exactly 16 ones and 16 zeros, so the
/// reader can estimate both the white and the black level from it, with
/// many 0↔1 transitions so a flat or smoothly shaded area cannot match.
pub const STAMP_MAGIC: u32 = 0xB4E1_5A2D;

/// Number of cells (bits) in a stamp.
pub const STAMP_BITS: usize = MAGIC_BITS + INDEX_BITS + TIME_BITS + CHECK_BITS;

const MAGIC_BITS: usize = 32;
const INDEX_BITS: usize = 32;
const TIME_BITS: usize = 64;
const CHECK_BITS: usize = 16;

/// Columns of the stamp stripe: 144 = 36 × 4, so wide frames get a full
/// 4-row stripe with no unused cells.
const MAX_COLUMNS: u32 = 36;

/// Cell sizes tried, largest first. Only 16 and 8 px cells are meant to
/// survive lossy coding; 4 and 2 px exist so even the smallest supported
/// frame (64×64) carries a stamp for lossless tests.
const CELL_SIZES: [u32; 4] = [MAX_CELL_SIZE as u32, 8, 4, 2];

/// Minimum difference, in 8-bit luma codes, between the mean white and mean
/// black sync cell. An ideal limited-range stamp has 235 − 16 = 219; 64
/// (under a third of that) tolerates heavy coding loss while rejecting the
/// low-contrast texture of ordinary picture content.
const MIN_CONTRAST: u32 = 64;

/// Largest cell side (the first of [`CELL_SIZES`]).
const MAX_CELL_SIZE: usize = 16;
/// One pixel row of the largest white / black cell, BGRA.
const WHITE_ROW: [u8; MAX_CELL_SIZE * 4] = solid_row([255, 255, 255, 255]);
const BLACK_ROW: [u8; MAX_CELL_SIZE * 4] = solid_row([0, 0, 0, 255]);

const fn solid_row(pixel: [u8; 4]) -> [u8; MAX_CELL_SIZE * 4] {
    let mut row = [0; MAX_CELL_SIZE * 4];
    let mut i = 0;
    while i < row.len() {
        row[i] = pixel[i % 4];
        i += 1;
    }
    row
}

/// What a stamp carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Stamp {
    /// Low 32 bits of the frame index (wraps after 2^32 frames: over two
    /// years at 60 fps).
    pub index: u32,
    /// CLOCK_MONOTONIC capture time in nanoseconds.
    pub capture_ns: u64,
}

impl Stamp {
    /// The stamp for frame `frame_index` captured at `capture_ns`.
    pub fn new(frame_index: u64, capture_ns: u64) -> Self {
        Stamp {
            // Truncation intended: the stamp carries the low 32 bits.
            index: frame_index as u32,
            capture_ns,
        }
    }

    /// Index and time as the big-endian bytes the checksum covers.
    fn payload(&self) -> [u8; 12] {
        let mut bytes = [0u8; 12];
        bytes[..4].copy_from_slice(&self.index.to_be_bytes());
        bytes[4..].copy_from_slice(&self.capture_ns.to_be_bytes());
        bytes
    }

    /// All cells, in layout order.
    fn to_bits(self) -> [bool; STAMP_BITS] {
        let fields = [
            (u64::from(STAMP_MAGIC), MAGIC_BITS),
            (u64::from(self.index), INDEX_BITS),
            (self.capture_ns, TIME_BITS),
            (u64::from(crc16_ccitt(&self.payload())), CHECK_BITS),
        ];
        let mut bits = [false; STAMP_BITS];
        let mut position = 0;
        for (value, width) in fields {
            for shift in (0..width).rev() {
                bits[position] = (value >> shift) & 1 == 1;
                position += 1;
            }
        }
        bits
    }

    /// Parses cells back, checking sync pattern and checksum.
    fn from_bits(bits: &[bool; STAMP_BITS]) -> Option<Self> {
        let mut position = 0;
        let mut next_field = |width: usize| {
            let value = bits[position..position + width]
                .iter()
                .fold(0u64, |acc, &bit| (acc << 1) | u64::from(bit));
            position += width;
            value
        };
        let magic = next_field(MAGIC_BITS);
        let index = next_field(INDEX_BITS);
        let capture_ns = next_field(TIME_BITS);
        let check = next_field(CHECK_BITS);
        if magic != u64::from(STAMP_MAGIC) {
            return None;
        }
        let stamp = Stamp {
            index: u32::try_from(index).ok()?,
            capture_ns,
        };
        (u64::from(crc16_ccitt(&stamp.payload())) == check).then_some(stamp)
    }

    /// Draws the stamp into a BGRA image of `layout`'s frame size.
    ///
    /// # Panics
    /// If `data`/`stride` cannot hold the stamp area.
    pub fn draw_bgra(&self, layout: &StampLayout, data: &mut [u8], stride: usize) {
        const BYTES_PER_PIXEL: usize = 4;
        let cell = layout.cell_size as usize;
        let cell_row_bytes = cell * BYTES_PER_PIXEL;
        assert!(stride >= layout.pixel_width() as usize * BYTES_PER_PIXEL);
        assert!(data.len() >= layout.required_len(stride, BYTES_PER_PIXEL));

        let white_span = &WHITE_ROW[..cell_row_bytes];
        let black_span = &BLACK_ROW[..cell_row_bytes];
        let bits = self.to_bits();
        for grid_row in 0..layout.rows as usize {
            for pixel_row in 0..cell {
                let row_start = (grid_row * cell + pixel_row) * stride;
                let row =
                    &mut data[row_start..row_start + cell_row_bytes * layout.columns as usize];
                for (column, target) in row.chunks_exact_mut(cell_row_bytes).enumerate() {
                    // Cells past the last bit (partial last row) stay black.
                    let bit = grid_row * layout.columns as usize + column;
                    let white = bits.get(bit).copied().unwrap_or(false);
                    target.copy_from_slice(if white { white_span } else { black_span });
                }
            }
        }
    }
}

/// Where the stamp sits in a frame of a given size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StampLayout {
    /// Side of one square cell, in pixels.
    pub cell_size: u32,
    /// Cells per row.
    pub columns: u32,
    /// Rows of cells (the last may be partly unused).
    pub rows: u32,
}

impl StampLayout {
    /// The layout for a `width`×`height` frame: the largest cell size whose
    /// stripe (at most 36 columns) fits the width and the top half of the
    /// frame. Writer and reader must use the same frame size. `None` only for
    /// frames too small for even 2 px cells (below the 64×64 minimum of the
    /// synthetic source).
    pub fn for_frame(width: u32, height: u32) -> Option<Self> {
        CELL_SIZES.iter().find_map(|&cell_size| {
            let columns = (width / cell_size).min(MAX_COLUMNS);
            if columns == 0 {
                return None;
            }
            let rows = (STAMP_BITS as u32).div_ceil(columns);
            (rows * cell_size <= height / 2).then_some(StampLayout {
                cell_size,
                columns,
                rows,
            })
        })
    }

    /// Width of the stamp area in pixels.
    pub fn pixel_width(&self) -> u32 {
        self.columns * self.cell_size
    }

    /// Height of the stamp area in pixels.
    pub fn pixel_height(&self) -> u32 {
        self.rows * self.cell_size
    }

    /// Whether pixel (`x`, `y`) lies inside the stamp area.
    pub fn contains(&self, x: u32, y: u32) -> bool {
        x < self.pixel_width() && y < self.pixel_height()
    }

    /// Bytes an image with `stride` needs to hold the stamp area.
    fn required_len(&self, stride: usize, bytes_per_pixel: usize) -> usize {
        (self.pixel_height() as usize - 1) * stride + self.pixel_width() as usize * bytes_per_pixel
    }

    /// Top-left pixel of the central sampling square of cell `bit`, and the
    /// square's side: the middle half of the cell, clear of the edges that
    /// blur and block artefacts smear into the neighbours.
    fn sample_square(&self, bit: usize) -> (usize, usize, usize) {
        let cell = self.cell_size as usize;
        let columns = self.columns as usize;
        let inset = cell / 4;
        let side = (cell / 2).max(1);
        (
            (bit % columns) * cell + inset,
            (bit / columns) * cell + inset,
            side,
        )
    }
}

/// Reads the stamp from a decoded 8-bit luma (Y) plane of the original
/// `width`×`height` frame. Returns `None` when there is no valid stamp
/// (sync pattern or checksum mismatch, too little contrast, buffer too
/// small for the given geometry).
pub fn read_stamp_from_luma(y: &[u8], stride: usize, width: u32, height: u32) -> Option<Stamp> {
    let layout = StampLayout::for_frame(width, height)?;
    if stride < width as usize || y.len() < layout.required_len(stride, 1) {
        return None;
    }
    decode(&layout, |left, top, side| {
        let sum: u32 = (top..top + side)
            .map(|row| {
                let start = row * stride + left;
                y[start..start + side]
                    .iter()
                    .map(|&v| u32::from(v))
                    .sum::<u32>()
            })
            .sum();
        sum / (side * side) as u32
    })
}

/// Reads the stamp from a BGRA image (see [`read_stamp_from_luma`]),
/// converting sampled pixels to BT.601 limited-range luma.
pub fn read_stamp_from_bgra(data: &[u8], stride: usize, width: u32, height: u32) -> Option<Stamp> {
    const BYTES_PER_PIXEL: usize = 4;
    let layout = StampLayout::for_frame(width, height)?;
    if stride < width as usize * BYTES_PER_PIXEL
        || data.len() < layout.required_len(stride, BYTES_PER_PIXEL)
    {
        return None;
    }
    decode(&layout, |left, top, side| {
        let sum: u32 = (top..top + side)
            .map(|row| {
                let start = row * stride + left * BYTES_PER_PIXEL;
                data[start..start + side * BYTES_PER_PIXEL]
                    .chunks_exact(BYTES_PER_PIXEL)
                    .map(|px| u32::from(luma_bt601_limited(px[0], px[1], px[2])))
                    .sum::<u32>()
            })
            .sum();
        sum / (side * side) as u32
    })
}

/// BT.601 limited-range luma (16..=235) of an 8-bit B, G, R pixel:
/// Y = 16 + (66 R + 129 G + 25 B) / 256, rounded — the integer form of
/// 16 + 219 × (0.299 R + 0.587 G + 0.114 B) / 255 that encoders use.
pub fn luma_bt601_limited(b: u8, g: u8, r: u8) -> u8 {
    const ROUNDING: u32 = 128;
    let weighted = 66 * u32::from(r) + 129 * u32::from(g) + 25 * u32::from(b) + ROUNDING;
    // At most (220 × 255 + 128) / 256 + 16 = 235, so it fits a u8.
    ((weighted >> 8) + 16) as u8
}

/// Classifies every cell and parses the result. `cell_level(x, y, side)`
/// returns the mean luma of the `side`×`side` square at (`x`, `y`).
fn decode(
    layout: &StampLayout,
    mut cell_level: impl FnMut(usize, usize, usize) -> u32,
) -> Option<Stamp> {
    let mut levels = [0u32; STAMP_BITS];
    for (bit, level) in levels.iter_mut().enumerate() {
        let (x, y, side) = layout.sample_square(bit);
        *level = cell_level(x, y, side);
    }

    // White and black reference levels from the known sync cells.
    let (mut white_sum, mut black_sum) = (0u32, 0u32);
    for (bit, &level) in levels[..MAGIC_BITS].iter().enumerate() {
        if magic_bit(bit) {
            white_sum += level;
        } else {
            black_sum += level;
        }
    }
    let ones = STAMP_MAGIC.count_ones();
    let white = white_sum / ones;
    let black = black_sum / (MAGIC_BITS as u32 - ones);
    if white < black + MIN_CONTRAST {
        return None;
    }
    let threshold = (white + black) / 2;

    let mut bits = [false; STAMP_BITS];
    for (bit, &level) in bits.iter_mut().zip(levels.iter()) {
        *bit = level > threshold;
    }
    Stamp::from_bits(&bits)
}

/// Bit `position` (0 = most significant) of the sync pattern.
fn magic_bit(position: usize) -> bool {
    (STAMP_MAGIC >> (MAGIC_BITS - 1 - position)) & 1 == 1
}

/// CRC-16/CCITT-FALSE (polynomial 0x1021, initial value 0xFFFF, no
/// reflection). Detects every error of up to 3 bits in the 96-bit payload
/// and lets random garbage through with probability 2^-16.
fn crc16_ccitt(bytes: &[u8]) -> u16 {
    const POLYNOMIAL: u16 = 0x1021;
    let mut crc: u16 = 0xFFFF;
    for &byte in bytes {
        crc ^= u16::from(byte) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ POLYNOMIAL
            } else {
                crc << 1
            };
        }
    }
    crc
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A mid-grey BGRA image with `stamp` drawn in.
    fn stamped_image(width: u32, height: u32, stamp: Stamp) -> Vec<u8> {
        let stride = width as usize * 4;
        let mut data = vec![128u8; stride * height as usize];
        let layout = StampLayout::for_frame(width, height).unwrap();
        stamp.draw_bgra(&layout, &mut data, stride);
        data
    }

    #[test]
    fn crc_matches_the_standard_check_value() {
        assert_eq!(crc16_ccitt(b"123456789"), 0x29B1);
    }

    #[test]
    fn magic_is_balanced() {
        assert_eq!(STAMP_MAGIC.count_ones(), 16);
        assert_eq!(STAMP_BITS, 144);
    }

    #[test]
    fn layout_prefers_16_pixel_cells_on_real_frames() {
        for (width, height) in [(1920, 1080), (1280, 720), (3840, 2160), (640, 360)] {
            let layout = StampLayout::for_frame(width, height).unwrap();
            assert_eq!(
                layout,
                StampLayout {
                    cell_size: 16,
                    columns: 36,
                    rows: 4
                },
                "{width}x{height}"
            );
        }
        let small = StampLayout::for_frame(320, 240).unwrap();
        assert_eq!((small.cell_size, small.columns, small.rows), (8, 36, 4));
        let tiny = StampLayout::for_frame(64, 64).unwrap();
        assert_eq!((tiny.cell_size, tiny.columns, tiny.rows), (2, 32, 5));
        assert!(StampLayout::for_frame(1, 64).is_none());
    }

    #[test]
    fn layout_always_fits_the_frame() {
        for width in (64..=700).step_by(2) {
            for height in [64, 66, 100, 128, 130, 200, 720] {
                let layout = StampLayout::for_frame(width, height).unwrap();
                assert!(layout.pixel_width() <= width && layout.pixel_height() <= height / 2);
                assert!((layout.columns * layout.rows) as usize >= STAMP_BITS);
            }
        }
    }

    #[test]
    fn round_trips_through_bgra() {
        let stamp = Stamp::new(0x1_2345_6789, 0xDEAD_BEEF_0123_4567);
        assert_eq!(stamp.index, 0x2345_6789);
        let data = stamped_image(640, 360, stamp);
        assert_eq!(read_stamp_from_bgra(&data, 640 * 4, 640, 360), Some(stamp));
    }

    #[test]
    fn reads_limited_and_full_range_luma() {
        let stamp = Stamp::new(42, 1_000_000_007);
        let layout = StampLayout::for_frame(640, 360).unwrap();
        for (black, white) in [(16u8, 235u8), (0, 255)] {
            let mut luma = vec![128u8; 640 * 360];
            for (bit, set) in stamp.to_bits().iter().enumerate() {
                let (x, y, _) = layout.sample_square(bit);
                let cell = layout.cell_size as usize;
                let (left, top) = (x - cell / 4, y - cell / 4);
                for row in top..top + cell {
                    luma[row * 640 + left..row * 640 + left + cell].fill(if *set {
                        white
                    } else {
                        black
                    });
                }
            }
            assert_eq!(read_stamp_from_luma(&luma, 640, 640, 360), Some(stamp));
        }
    }

    #[test]
    fn flipped_payload_cell_fails_the_checksum() {
        let stamp = Stamp::new(7, 123_456_789);
        let layout = StampLayout::for_frame(640, 360).unwrap();
        for bit in [MAGIC_BITS, MAGIC_BITS + INDEX_BITS + 5, STAMP_BITS - 1] {
            let mut data = stamped_image(640, 360, stamp);
            let (x, y, side) = layout.sample_square(bit);
            let flipped = if stamp.to_bits()[bit] { 0 } else { 255 };
            for row in y..y + side {
                data[row * 640 * 4 + x * 4..row * 640 * 4 + (x + side) * 4].fill(flipped);
            }
            assert_eq!(
                read_stamp_from_bgra(&data, 640 * 4, 640, 360),
                None,
                "bit {bit}"
            );
        }
    }

    #[test]
    fn rejects_pictures_without_a_stamp() {
        let grey = vec![128u8; 640 * 360 * 4];
        assert_eq!(read_stamp_from_bgra(&grey, 640 * 4, 640, 360), None);
        // An inverted stamp has the contrast but not the sync pattern.
        let mut inverted = stamped_image(640, 360, Stamp::new(1, 2));
        inverted.iter_mut().for_each(|v| *v = 255 - *v);
        assert_eq!(read_stamp_from_bgra(&inverted, 640 * 4, 640, 360), None);
    }

    #[test]
    fn rejects_buffers_too_small_for_the_geometry() {
        let data = stamped_image(640, 360, Stamp::new(1, 2));
        assert_eq!(read_stamp_from_bgra(&data[..1000], 640 * 4, 640, 360), None);
        assert_eq!(read_stamp_from_bgra(&data, 100, 640, 360), None);
        assert_eq!(read_stamp_from_luma(&data[..10], 640, 640, 360), None);
    }

    #[test]
    fn luma_spans_the_limited_range() {
        assert_eq!(luma_bt601_limited(0, 0, 0), 16);
        assert_eq!(luma_bt601_limited(255, 255, 255), 235);
        assert!(luma_bt601_limited(0, 255, 0) > luma_bt601_limited(0, 0, 255));
    }
}
