//! Pure Rust core: flow fields, label maps, warping and metrics. No GStreamer here.
//!
//! Flow convention (backward flow): for each pixel `p` of the current frame, `flow(p) = (dx, dy)`
//! such that `p + flow(p)` is where `p` was in the reference frame.

pub mod components;
pub mod confidence;
pub mod draw;
pub mod flo;
pub mod instances;
pub mod labels;
pub mod lumen;
pub mod mask_file;
pub mod metrics;
pub mod pixels;
pub mod regions;
pub mod tracker;
pub mod warp;

use thiserror::Error;

#[derive(Debug, Error)]
pub enum FlowError {
    #[error("size mismatch: {what} is {got_w}x{got_h}, expected {want_w}x{want_h}")]
    SizeMismatch {
        what: &'static str,
        got_w: usize,
        got_h: usize,
        want_w: usize,
        want_h: usize,
    },
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("image: {0}")]
    Image(#[from] image::ImageError),
    #[error("invalid data: {0}")]
    Invalid(String),
}

/// An 8-bit label map: 0 background, 1 vein, 2 artery (other ids allowed).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LabelMap {
    pub width: usize,
    pub height: usize,
    pub data: Vec<u8>,
}

#[cfg(test)]
impl LabelMap {
    /// A map from text rows for tests, one character per pixel: `.` background, a digit its label.
    pub(crate) fn from_rows(width: usize, rows: &[&str]) -> Self {
        let data = rows
            .iter()
            .flat_map(|r| r.bytes().map(|b| if b == b'.' { 0 } else { b - b'0' }))
            .collect();
        Self::from_vec(width, rows.len(), data).expect("rows of the given width")
    }
}

impl LabelMap {
    pub fn new(width: usize, height: usize) -> Self {
        Self {
            width,
            height,
            data: vec![0; width * height],
        }
    }

    pub fn from_vec(width: usize, height: usize, data: Vec<u8>) -> Result<Self, FlowError> {
        if data.len() != width * height {
            return Err(FlowError::Invalid(format!(
                "label map of {width}x{height} needs {} bytes, got {}",
                width * height,
                data.len()
            )));
        }
        Ok(Self {
            width,
            height,
            data,
        })
    }

    #[inline]
    pub fn get(&self, x: usize, y: usize) -> u8 {
        self.data[y * self.width + x]
    }

    /// Largest label id present (0 for an empty map).
    pub fn max_label(&self) -> u8 {
        self.data.iter().copied().max().unwrap_or(0)
    }

    /// Pixel count per label id, indexed by id, up to the largest id present.
    pub fn areas(&self) -> Vec<u64> {
        let counts = self.histogram();
        let largest = counts.iter().rposition(|&c| c > 0).unwrap_or(0);
        counts[..=largest].to_vec()
    }

    /// Pixel count of every possible label id (index = id), in one pass over the map.
    pub fn histogram(&self) -> [u64; 256] {
        const ONES: u64 = 0x0101_0101_0101_0101;
        let mut counts = [0u64; 256];
        let mut words = self.data.chunks_exact(8);
        // Label maps are mostly long runs of one id: eight equal bytes count at once, and a
        // run of such words is counted in a register, because adding each word to its slot of
        // `counts` made every word wait for the previous word's store.
        let (mut run_id, mut run_words) = (0u8, 0u64);
        for word in &mut words {
            let bits = u64::from_ne_bytes(word.try_into().expect("8 bytes"));
            if bits == u64::from(run_id) * ONES {
                run_words += 1;
            } else if bits == u64::from(word[0]) * ONES {
                counts[run_id as usize] += 8 * run_words;
                (run_id, run_words) = (word[0], 1);
            } else {
                for &v in word {
                    counts[v as usize] += 1;
                }
            }
        }
        counts[run_id as usize] += 8 * run_words;
        for &v in words.remainder() {
            counts[v as usize] += 1;
        }
        counts
    }

    /// Reads a PNG label map in any encoding of [`mask_file`] (grey ids, binary, palette,
    /// colours through the default colour map).
    pub fn load_png(path: &std::path::Path) -> Result<Self, FlowError> {
        mask_file::read(path, &mask_file::ColorMap::default())
            .map(|mask| mask.labels)
            .map_err(FlowError::Invalid)
    }

    pub fn save_png(&self, path: &std::path::Path) -> Result<(), FlowError> {
        let img =
            image::GrayImage::from_raw(self.width as u32, self.height as u32, self.data.clone())
                .ok_or_else(|| FlowError::Invalid("label map buffer size".into()))?;
        img.save(path)?;
        Ok(())
    }

    /// Nearest-neighbour resize (labels must not be interpolated). A map with no pixels, or with
    /// fewer bytes than its size says (the fields are public), resizes to all background.
    pub fn resize_nearest(&self, width: usize, height: usize) -> Self {
        let mut out = Self::new(width, height);
        if self.width == 0 || self.height == 0 || self.data.len() < self.width * self.height {
            return out;
        }
        for y in 0..height {
            let sy = ((y as f64 + 0.5) * self.height as f64 / height as f64) as usize;
            let sy = sy.min(self.height - 1);
            for x in 0..width {
                let sx = ((x as f64 + 0.5) * self.width as f64 / width as f64) as usize;
                out.data[y * width + x] = self.get(sx.min(self.width - 1), sy);
            }
        }
        out
    }
}

/// The end of the run of `value` that starts at `from` in `row`: the first index at or after
/// `from` whose byte is not `value`, else `row.len()`. Eight bytes are compared at a time, so
/// scanning the long runs of a label map (mostly background) costs little.
pub fn run_end(row: &[u8], from: usize, value: u8) -> usize {
    let splat = u64::from_ne_bytes([value; 8]);
    let mut i = from;
    while let Some(word) = row.get(i..i + 8) {
        let differs = u64::from_ne_bytes(word.try_into().expect("8 bytes")) ^ splat;
        if differs != 0 {
            // The first differing byte in memory order.
            let bits = if cfg!(target_endian = "little") {
                differs.trailing_zeros()
            } else {
                differs.leading_zeros()
            };
            return i + bits as usize / 8;
        }
        i += 8;
    }
    while i < row.len() && row[i] == value {
        i += 1;
    }
    i
}

/// A dense 2-channel flow field, planar: `dx` then `dy`, row-major, in pixels of its own grid.
#[derive(Clone, Debug, PartialEq)]
pub struct FlowField {
    pub width: usize,
    pub height: usize,
    pub dx: Vec<f32>,
    pub dy: Vec<f32>,
}

impl FlowField {
    pub fn zeros(width: usize, height: usize) -> Self {
        Self {
            width,
            height,
            dx: vec![0.0; width * height],
            dy: vec![0.0; width * height],
        }
    }

    pub fn constant(width: usize, height: usize, dx: f32, dy: f32) -> Self {
        Self {
            width,
            height,
            dx: vec![dx; width * height],
            dy: vec![dy; width * height],
        }
    }

    /// From a planar `[2, H, W]` buffer as the flow model outputs it.
    pub fn from_planar(width: usize, height: usize, planar: &[f32]) -> Result<Self, FlowError> {
        let n = width * height;
        if planar.len() != 2 * n {
            return Err(FlowError::Invalid(format!(
                "flow of {width}x{height} needs {} values, got {}",
                2 * n,
                planar.len()
            )));
        }
        Ok(Self {
            width,
            height,
            dx: planar[..n].to_vec(),
            dy: planar[n..].to_vec(),
        })
    }

    /// Bilinear sample at a sub-pixel position, clamped to the border.
    #[inline(always)]
    pub fn sample(&self, x: f32, y: f32) -> (f32, f32) {
        let tap = warp::BilinearTap::at(self.width, self.height, x, y);
        (tap.sample(&self.dx), tap.sample(&self.dy))
    }

    /// Composes two backward flows: `self` maps the current frame to an intermediate frame,
    /// `earlier` maps that intermediate frame to the reference. The result maps current to
    /// reference: `f(p) = self(p) + earlier(p + self(p))`. Used by chain mode so that the mask
    /// is resampled once from the reference instead of being blurred frame after frame.
    pub fn compose(&self, earlier: &FlowField) -> FlowField {
        let mut out = FlowField::zeros(self.width, self.height);
        let rows = out
            .dx
            .chunks_exact_mut(self.width)
            .zip(out.dy.chunks_exact_mut(self.width))
            .zip(
                self.dx
                    .chunks_exact(self.width)
                    .zip(self.dy.chunks_exact(self.width)),
            );
        for (y, ((out_dx, out_dy), (dx, dy))) in rows.enumerate() {
            for (x, (((ox, oy), &ux), &uy)) in
                out_dx.iter_mut().zip(out_dy).zip(dx).zip(dy).enumerate()
            {
                let (vx, vy) = earlier.sample(x as f32 + ux, y as f32 + uy);
                *ox = ux + vx;
                *oy = uy + vy;
            }
        }
        out
    }

    /// Mean displacement magnitude, in pixels of this grid.
    pub fn mean_magnitude(&self) -> f32 {
        if self.dx.is_empty() {
            return 0.0;
        }
        let s: f64 = self
            .dx
            .iter()
            .zip(&self.dy)
            .map(|(a, b)| ((a * a + b * b) as f64).sqrt())
            .sum();
        (s / self.dx.len() as f64) as f32
    }
}

#[cfg(test)]
impl FlowField {
    /// A rough flow for tests: every value in [-4, 4) px, drawn from `seed`.
    pub(crate) fn rough(width: usize, height: usize, seed: u32) -> Self {
        let mut f = Self::zeros(width, height);
        let mut s = seed;
        for (dx, dy) in f.dx.iter_mut().zip(f.dy.iter_mut()) {
            s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            *dx = (s >> 16) as f32 / 8192.0 - 4.0;
            *dy = (s & 0xffff) as f32 / 8192.0 - 4.0;
        }
        f
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Rows of long runs and noise, of lengths around the 8-byte words.
    fn rows() -> Vec<Vec<u8>> {
        let mut s = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            s
        };
        (0..300)
            .map(|i| {
                let len = i % 41;
                let mut row = Vec::with_capacity(len);
                while row.len() < len {
                    let value = if next() % 3 == 0 {
                        0
                    } else {
                        (next() % 4) as u8
                    };
                    let run = 1 + (next() % 19) as usize;
                    row.extend(std::iter::repeat_n(value, run.min(len - row.len())));
                }
                row
            })
            .collect()
    }

    #[test]
    fn run_end_is_the_first_other_byte() {
        for row in rows() {
            for from in 0..=row.len() {
                for value in 0..4 {
                    let expected = (from..row.len())
                        .find(|&i| row[i] != value)
                        .unwrap_or(row.len());
                    assert_eq!(
                        run_end(&row, from, value),
                        expected,
                        "{row:?} {from} {value}"
                    );
                }
            }
        }
    }

    #[test]
    fn histogram_and_areas_count_every_id() {
        // Long runs too, as in frame-size label maps: many equal words in a row, then another id.
        let long = [
            (0u8, 1000usize),
            (1, 37),
            (0, 500),
            (2, 64),
            (2, 3),
            (0, 77),
            (255, 800),
        ];
        let long_rows = (0..long.len()).map(|start| {
            long[start..]
                .iter()
                .flat_map(|&(id, run)| std::iter::repeat_n(id, run))
                .collect::<Vec<u8>>()
        });
        for row in rows().into_iter().chain(long_rows) {
            let map = LabelMap::from_vec(row.len(), 1, row.clone()).unwrap();
            let mut expected = [0u64; 256];
            for &v in &row {
                expected[v as usize] += 1;
            }
            assert_eq!(map.histogram(), expected, "{row:?}");
            let largest = row.iter().copied().max().unwrap_or(0) as usize;
            assert_eq!(map.areas(), expected[..=largest], "{row:?}");
        }
        assert_eq!(LabelMap::new(0, 0).areas(), [0]);
    }

    #[test]
    fn resize_nearest_of_degenerate_maps_is_background_not_a_panic() {
        let target = LabelMap::new(8, 6);
        for (w, h, len) in [(0, 4, 0), (4, 0, 0), (0, 0, 0), (4, 3, 5), (4, 3, 0)] {
            let map = LabelMap {
                width: w,
                height: h,
                data: vec![1; len],
            };
            assert_eq!(map.resize_nearest(8, 6), target, "{w}x{h} with {len} bytes");
        }
        let map = LabelMap::from_vec(2, 1, vec![1, 2]).unwrap();
        assert_eq!(map.resize_nearest(0, 5), LabelMap::new(0, 5));
        assert_eq!(map.resize_nearest(4, 1).data, vec![1, 1, 2, 2]);
    }
}
