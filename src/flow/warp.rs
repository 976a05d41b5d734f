//! Warping label maps with a backward flow: `mask_t(p) = mask_ref(p + flow(p))`, evaluated on
//! soft one-hot maps (bilinear weights per label) and reduced with argmax.

use super::{FlowError, FlowField, LabelMap};

/// Bilinear interpolation of a single-channel f32 grid, clamped to the border.
#[inline]
pub fn bilinear(data: &[f32], width: usize, height: usize, x: f32, y: f32) -> f32 {
    BilinearTap::at(width, height, x, y).sample(data)
}

/// Where a bilinear sample of a `width` x `height` plane reads and with which weights (border
/// clamped): computed once, it samples every plane of the same size (the two of a flow field).
#[derive(Clone, Copy, Debug)]
pub struct BilinearTap {
    top: usize,
    bottom: usize,
    left: usize,
    right: usize,
    fx: f32,
    fy: f32,
}

impl BilinearTap {
    #[inline]
    pub fn at(width: usize, height: usize, x: f32, y: f32) -> Self {
        let x = x.clamp(0.0, (width - 1) as f32);
        let y = y.clamp(0.0, (height - 1) as f32);
        // Clamped to zero or more (or NaN, cast to 0): truncation is the floor, without a libm
        // call; through i32, which x86 converts in one instruction (frames are far narrower).
        let x0 = x as i32 as usize;
        let y0 = y as i32 as usize;
        Self {
            top: y0 * width,
            bottom: (y0 + 1).min(height - 1) * width,
            left: x0,
            right: (x0 + 1).min(width - 1),
            fx: x - x0 as f32,
            fy: y - y0 as f32,
        }
    }

    #[inline]
    pub fn sample(&self, data: &[f32]) -> f32 {
        let (fx, fy) = (self.fx, self.fy);
        let a = data[self.top + self.left] * (1.0 - fx) + data[self.top + self.right] * fx;
        let b = data[self.bottom + self.left] * (1.0 - fx) + data[self.bottom + self.right] * fx;
        a * (1.0 - fy) + b * fy
    }
}

/// Bilinear resampling taps from a grid of `src` cells onto `dst` pixels (centres aligned):
/// for each destination index, the two source indices and the weight of the second.
fn taps(dst: usize, src: usize) -> Vec<(usize, usize, f32)> {
    let scale = src as f32 / dst as f32;
    (0..dst)
        .map(|i| {
            let f = ((i as f32 + 0.5) * scale - 0.5).clamp(0.0, (src - 1) as f32);
            let i0 = f.floor() as usize;
            (i0, (i0 + 1).min(src - 1), f - i0 as f32)
        })
        .collect()
}

/// Side of the square output blocks that are decided as a whole when they can be.
const BLOCK: usize = 16;
/// Side of the reference tiles whose uniformity is recorded.
const TILE: usize = 8;
/// A tile whose pixels do not all carry the same label.
const MIXED: u16 = u16::MAX;

/// For every TILE x TILE tile of a label map, its label when all its pixels share it, else MIXED.
/// It depends on the reference mask only: build it once per reference ([`warp_labels_with`]).
pub struct UniformTiles {
    columns: usize,
    labels: Vec<u16>,
}

impl UniformTiles {
    pub fn new(map: &LabelMap) -> Self {
        use rayon::prelude::*;
        let (w, h) = (map.width, map.height);
        let columns = w.div_ceil(TILE);
        let rows = h.div_ceil(TILE);
        let mut labels = vec![MIXED; columns * rows];
        labels
            .par_chunks_mut(columns)
            .enumerate()
            .for_each(|(ty, line)| {
                let y_end = ((ty + 1) * TILE).min(h);
                for (tx, tile) in line.iter_mut().enumerate() {
                    let (x0, x_end) = (tx * TILE, ((tx + 1) * TILE).min(w));
                    let first = map.data[ty * TILE * w + x0];
                    let uniform = (ty * TILE..y_end).all(|y| {
                        map.data[y * w + x0..y * w + x_end]
                            .iter()
                            .all(|&l| l == first)
                    });
                    if uniform {
                        *tile = first as u16;
                    }
                }
            });
        UniformTiles { columns, labels }
    }

    /// The label of the pixel rectangle [x0, x1] x [y0, y1] (inclusive, inside the map) when all
    /// tiles it touches are uniform with one label.
    fn label_of(&self, x0: usize, x1: usize, y0: usize, y1: usize) -> Option<u8> {
        let first = self.labels[(y0 / TILE) * self.columns + x0 / TILE];
        if first == MIXED {
            return None;
        }
        for ty in y0 / TILE..=y1 / TILE {
            let line = &self.labels[ty * self.columns..][..self.columns];
            if line[x0 / TILE..=x1 / TILE].iter().any(|&l| l != first) {
                return None;
            }
        }
        Some(first as u8)
    }
}

/// Warps `reference` (at frame resolution) with `flow` given on a coarser or equal grid.
///
/// The flow is upsampled bilinearly to the label map's size and its vectors are scaled by the
/// ratio of the two grids, so a model running at 256x256 drives a 1920x1080 mask. Positions
/// that fall outside the reference are treated as background. Block rows run in parallel.
///
/// Most of a frame is far from any label boundary: a block of output pixels whose possible
/// source positions (bounded by the extreme flow values of the grid points it interpolates
/// from) all fall in one uniformly labelled part of the reference gets that label without
/// sampling. The result is identical to sampling every pixel.
pub fn warp_labels(reference: &LabelMap, flow: &FlowField) -> LabelMap {
    warp_labels_with(reference, &UniformTiles::new(reference), flow)
}

/// [`warp_labels`] with the reference's tiles built beforehand (`tiles` must come from
/// `reference`), for a reference that is warped frame after frame.
pub fn warp_labels_with(reference: &LabelMap, tiles: &UniformTiles, flow: &FlowField) -> LabelMap {
    use rayon::prelude::*;
    let (w, h) = (reference.width, reference.height);
    let mut out = LabelMap::new(w, h);
    if w == 0 || h == 0 {
        return out;
    }
    let scale = (w as f32 / flow.width as f32, h as f32 / flow.height as f32);
    let columns = taps(w, flow.width);
    let rows = taps(h, flow.height);
    let blocks: Vec<(usize, usize)> = (0..w)
        .step_by(BLOCK)
        .map(|x_start| (x_start, (x_start + BLOCK).min(w)))
        .collect();
    out.data
        .par_chunks_mut(w * BLOCK)
        .enumerate()
        .for_each_init(
            || BandScratch::new(flow.width, blocks.len()),
            |scratch, (by, band)| {
                let y_start = by * BLOCK;
                let band_rows = band.len() / w;
                let knot_rows = (rows[y_start].0, rows[y_start + band_rows - 1].1);
                scratch.column_extremes(flow, knot_rows);
                // Each block's label when it is uniform, decided for the whole band first so
                // that runs of equal blocks are filled row by row in one go.
                for (decided, &(x_start, x_end)) in scratch.decided.iter_mut().zip(&blocks) {
                    let knot_columns = (columns[x_start].0, columns[x_end - 1].1);
                    *decided = match block_source_bounds(
                        &scratch.extremes,
                        knot_columns,
                        (x_start, x_end - 1, y_start, y_start + band_rows - 1),
                        scale,
                        (w, h),
                    ) {
                        Some(Source::Outside) => Some(OUTSIDE),
                        // Samples outside the map read OUTSIDE, so a block that reaches past
                        // the border is uniform only when its part inside is OUTSIDE too.
                        Some(Source::Within {
                            rect: (x0, x1, y0, y1),
                            clipped,
                        }) => tiles
                            .label_of(x0, x1, y0, y1)
                            .filter(|&label| !clipped || label == OUTSIDE),
                        None => None,
                    };
                }
                let sampled = scratch.decided.iter().any(Option::is_none);
                if sampled {
                    scratch.blend_flow_rows(flow, &rows[y_start..y_start + band_rows]);
                }
                for r in 0..band_rows {
                    let line = &mut band[r * w..(r + 1) * w];
                    let mut b = 0;
                    while b < blocks.len() {
                        let x_start = blocks[b].0;
                        if let Some(label) = scratch.decided[b] {
                            // The run of blocks with this label.
                            let mut end = b + 1;
                            while end < blocks.len() && scratch.decided[end] == Some(label) {
                                end += 1;
                            }
                            line[x_start..blocks[end - 1].1].fill(label);
                            b = end;
                            continue;
                        }
                        let fw = flow.width;
                        let row_dx = &scratch.band_dx[r * fw..][..fw];
                        let row_dy = &scratch.band_dy[r * fw..][..fw];
                        for x in x_start..blocks[b].1 {
                            let (c0, c1, wx) = columns[x];
                            let dx = row_dx[c0] + (row_dx[c1] - row_dx[c0]) * wx;
                            let dy = row_dy[c0] + (row_dy[c1] - row_dy[c0]) * wx;
                            line[x] = sample_label_soft(
                                reference,
                                x as f32 + dx * scale.0,
                                (y_start + r) as f32 + dy * scale.1,
                            );
                        }
                        b += 1;
                    }
                }
            },
        );
    out
}

/// Per-band working memory of [`warp_labels_with`], reused from band to band.
struct BandScratch {
    /// Per flow column, the extremes of the flow over the band's knot rows.
    extremes: ColumnExtremes,
    /// Which uniform label each output block of the band gets (`None`: sampled per pixel).
    decided: Vec<Option<u8>>,
    /// The flow rows of the band, blended once, then sampled per column.
    band_dx: Vec<f32>,
    band_dy: Vec<f32>,
}

/// Minimum and maximum of each flow component per flow column over some flow rows.
struct ColumnExtremes {
    dx_min: Vec<f32>,
    dx_max: Vec<f32>,
    dy_min: Vec<f32>,
    dy_max: Vec<f32>,
}

impl BandScratch {
    fn new(flow_width: usize, blocks: usize) -> Self {
        let column = || vec![0f32; flow_width];
        Self {
            extremes: ColumnExtremes {
                dx_min: column(),
                dx_max: column(),
                dy_min: column(),
                dy_max: column(),
            },
            decided: vec![None; blocks],
            band_dx: vec![0f32; flow_width * BLOCK],
            band_dy: vec![0f32; flow_width * BLOCK],
        }
    }

    /// The extremes over flow rows `first..=last`, column by column: each block then reduces
    /// only its own few columns.
    fn column_extremes(&mut self, flow: &FlowField, (first, last): (usize, usize)) {
        let fw = flow.width;
        let e = &mut self.extremes;
        e.dx_min.copy_from_slice(&flow.dx[first * fw..][..fw]);
        e.dx_max.copy_from_slice(&flow.dx[first * fw..][..fw]);
        e.dy_min.copy_from_slice(&flow.dy[first * fw..][..fw]);
        e.dy_max.copy_from_slice(&flow.dy[first * fw..][..fw]);
        for r in first + 1..=last {
            let (dx, dy) = (&flow.dx[r * fw..][..fw], &flow.dy[r * fw..][..fw]);
            for c in 0..fw {
                e.dx_min[c] = e.dx_min[c].min(dx[c]);
                e.dx_max[c] = e.dx_max[c].max(dx[c]);
                e.dy_min[c] = e.dy_min[c].min(dy[c]);
                e.dy_max[c] = e.dy_max[c].max(dy[c]);
            }
        }
    }

    fn blend_flow_rows(&mut self, flow: &FlowField, rows: &[(usize, usize, f32)]) {
        let fw = flow.width;
        for (r, &(r0, r1, wy)) in rows.iter().enumerate() {
            for (plane, dst) in [(&flow.dx, &mut self.band_dx), (&flow.dy, &mut self.band_dy)] {
                let (a, b) = (&plane[r0 * fw..][..fw], &plane[r1 * fw..][..fw]);
                for ((d, &p), &q) in dst[r * fw..][..fw].iter_mut().zip(a).zip(b) {
                    *d = p + (q - p) * wy;
                }
            }
        }
    }
}

/// What positions outside the reference read: background.
const OUTSIDE: u8 = 0;

/// Where the bilinear samples of an output block can fall in the reference.
enum Source {
    /// All of them outside the map.
    Outside,
    /// The pixels (x0, x1, y0, y1, inclusive) inside the map that they can touch; `clipped`
    /// when some samples can also fall outside.
    Within {
        rect: (usize, usize, usize, usize),
        clipped: bool,
    },
}

/// The reference pixels that the bilinear samples of an output block can touch, or None for a
/// flow that is not finite there. Interpolated flow is a convex combination of the grid values
/// it comes from, so their extremes bound it; a margin absorbs float rounding.
fn block_source_bounds(
    extremes: &ColumnExtremes,
    (col_lo, col_hi): (usize, usize),
    (x0, x1, y0, y1): (usize, usize, usize, usize),
    (sx, sy): (f32, f32),
    (w, h): (usize, usize),
) -> Option<Source> {
    const MARGIN: f32 = 0.01;
    let (mut dx_min, mut dx_max, mut dy_min, mut dy_max) = (f32::MAX, f32::MIN, f32::MAX, f32::MIN);
    for c in col_lo..=col_hi {
        dx_min = dx_min.min(extremes.dx_min[c]);
        dx_max = dx_max.max(extremes.dx_max[c]);
        dy_min = dy_min.min(extremes.dy_min[c]);
        dy_max = dy_max.max(extremes.dy_max[c]);
    }
    let left = (x0 as f32 + dx_min * sx - MARGIN).floor();
    let right = (x1 as f32 + dx_max * sx + MARGIN).floor() + 1.0;
    let top = (y0 as f32 + dy_min * sy - MARGIN).floor();
    let bottom = (y1 as f32 + dy_max * sy + MARGIN).floor() + 1.0;
    // NaN or infinite flow: sampled pixel by pixel.
    if ![left, right, top, bottom].iter().all(|v| v.is_finite()) {
        return None;
    }
    let (last_x, last_y) = ((w - 1) as f32, (h - 1) as f32);
    if right < 0.0 || bottom < 0.0 || left > last_x || top > last_y {
        return Some(Source::Outside);
    }
    Some(Source::Within {
        rect: (
            left.max(0.0) as usize,
            right.min(last_x) as usize,
            top.max(0.0) as usize,
            bottom.min(last_y) as usize,
        ),
        clipped: left < 0.0 || top < 0.0 || right > last_x || bottom > last_y,
    })
}

/// `x.floor()`, bit for bit (signed zeros, NaN and infinities included), without the libm call
/// that `floor` is on x86-64 without SSE4.1: it ran twice per sampled pixel of the warp.
#[inline]
fn floor(x: f32) -> f32 {
    // From 2^23 on every f32 is an integer; NaN comes back as it is.
    if x.is_nan() || x.abs() >= 8_388_608.0 {
        return x;
    }
    let t = x as i32 as f32;
    if t == x {
        // An integer: keeps the sign of -0.0.
        x
    } else if t > x {
        t - 1.0
    } else {
        t
    }
}

/// Argmax of the bilinear weights of the four neighbouring labels (soft one-hot sampling).
#[inline]
fn sample_label_soft(reference: &LabelMap, x: f32, y: f32) -> u8 {
    let (w, h) = (reference.width as isize, reference.height as isize);
    let x0f = floor(x);
    let y0f = floor(y);
    let fx = x - x0f;
    let fy = y - y0f;
    let x0 = x0f as isize;
    let y0 = y0f as isize;
    if x0 >= 0 && y0 >= 0 && x0 + 1 < w && y0 + 1 < h {
        // Inside the map: most pixels have four equal neighbours.
        let i = (y0 * w + x0) as usize;
        let d = &reference.data;
        let l = d[i];
        if d[i + 1] == l && d[i + reference.width] == l && d[i + reference.width + 1] == l {
            return l;
        }
    }
    let taps = [
        (x0, y0, (1.0 - fx) * (1.0 - fy)),
        (x0 + 1, y0, fx * (1.0 - fy)),
        (x0, y0 + 1, (1.0 - fx) * fy),
        (x0 + 1, y0 + 1, fx * fy),
    ];
    let mut labels = [0u8; 4];
    let mut weights = [0f32; 4];
    let mut n = 0;
    for (tx, ty, wgt) in taps {
        let label = if tx < 0 || ty < 0 || tx >= w || ty >= h {
            OUTSIDE
        } else {
            reference.data[(ty * w + tx) as usize]
        };
        match labels[..n].iter().position(|&l| l == label) {
            Some(k) => weights[k] += wgt,
            None => {
                labels[n] = label;
                weights[n] = wgt;
                n += 1;
            }
        }
    }
    let mut best = 0;
    for k in 1..n {
        // Ties go to the lower label id, which keeps results deterministic.
        if weights[k] > weights[best] || (weights[k] == weights[best] && labels[k] < labels[best]) {
            best = k;
        }
    }
    labels[best]
}

/// Checks that a mask matches the frame it is meant for.
pub fn check_size(mask: &LabelMap, width: usize, height: usize) -> Result<(), FlowError> {
    if mask.width != width || mask.height != height {
        return Err(FlowError::SizeMismatch {
            what: "reference mask",
            got_w: mask.width,
            got_h: mask.height,
            want_w: width,
            want_h: height,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn square(w: usize, h: usize, x0: usize, y0: usize, s: usize, label: u8) -> LabelMap {
        let mut m = LabelMap::new(w, h);
        for y in y0..y0 + s {
            for x in x0..x0 + s {
                m.data[y * w + x] = label;
            }
        }
        m
    }

    #[test]
    fn floor_is_f32_floor_bit_for_bit() {
        let mut values = vec![
            0.0f32,
            -0.0,
            0.5,
            -0.5,
            1.0,
            -1.0,
            -1.5,
            2.999_999_8,
            -2.999_999_8,
            8_388_607.5,
            -8_388_607.5,
            8_388_608.0,
            -8_388_609.0,
            1e20,
            -1e20,
            f32::MAX,
            f32::MIN,
            f32::MIN_POSITIVE,
            -f32::MIN_POSITIVE,
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::NAN,
        ];
        let mut bits = 0x3f80_0000u32;
        for _ in 0..100_000 {
            bits ^= bits << 13;
            bits ^= bits >> 17;
            bits ^= bits << 5;
            values.push(f32::from_bits(bits));
            values.push((bits % 4_000_000) as f32 / 1000.0 - 2000.0);
        }
        for x in values {
            assert_eq!(floor(x).to_bits(), x.floor().to_bits(), "{x:e}");
        }
    }

    #[test]
    fn bilinear_weighs_the_four_neighbours_and_clamps_to_the_border() {
        // Not linear, so that the wrong neighbours cannot give the right value.
        let data = [0.0, 1.0, 4.0, 9.0, 10.0, 20.0, 40.0, 90.0];
        let at = |x: f32, y: f32| bilinear(&data, 4, 2, x, y);
        assert_eq!(at(1.0, 0.0), 1.0);
        assert!((at(1.75, 0.0) - 3.25).abs() < 1e-6, "{}", at(1.75, 0.0));
        assert!((at(0.5, 0.5) - 7.75).abs() < 1e-6, "{}", at(0.5, 0.5));
        assert!((at(2.6, 0.25) - 22.75).abs() < 1e-5, "{}", at(2.6, 0.25));
        assert_eq!(at(-3.0, -1.0), 0.0, "clamped");
        assert_eq!(at(7.5, 3.0), 90.0, "clamped");
        assert!(at(f32::NAN, 0.0).is_nan());
    }

    #[test]
    fn zero_flow_is_identity() {
        let m = square(40, 30, 5, 5, 10, 2);
        assert_eq!(warp_labels(&m, &FlowField::zeros(10, 10)), m);
    }

    #[test]
    fn integer_shift_moves_mask_exactly() {
        // Object moved right by 3 and down by 2: current p was at p - (3, 2) in the reference.
        let reference = square(40, 30, 5, 5, 10, 1);
        let expected = square(40, 30, 8, 7, 10, 1);
        let got = warp_labels(&reference, &FlowField::constant(40, 30, -3.0, -2.0));
        assert_eq!(got, expected);
    }

    #[test]
    fn coarse_flow_is_scaled_to_frame_pixels() {
        let reference = square(80, 60, 10, 10, 20, 2);
        let expected = square(80, 60, 14, 10, 20, 2);
        // A flow of -1 on a 20x15 grid is -4 frame pixels horizontally (80 / 20).
        let got = warp_labels(&reference, &FlowField::constant(20, 15, -1.0, 0.0));
        assert_eq!(got, expected);
    }

    #[test]
    fn compose_adds_translations() {
        let a = FlowField::constant(16, 16, 1.0, 0.5);
        let b = FlowField::constant(16, 16, 2.0, -1.5);
        let c = a.compose(&b);
        assert!(c.dx.iter().all(|&v| (v - 3.0).abs() < 1e-6));
        assert!(c.dy.iter().all(|&v| (v + 1.0).abs() < 1e-6));
    }

    #[test]
    fn compose_samples_the_earlier_flow_where_the_later_one_points() {
        let (a, b) = (FlowField::rough(23, 17, 1), FlowField::rough(23, 17, 2));
        let c = a.compose(&b);
        for y in 0..17 {
            for x in 0..23 {
                let i = y * 23 + x;
                let (px, py) = (x as f32 + a.dx[i], y as f32 + a.dy[i]);
                let vx = bilinear(&b.dx, 23, 17, px, py);
                let vy = bilinear(&b.dy, 23, 17, px, py);
                assert_eq!(
                    (c.dx[i], c.dy[i]),
                    (a.dx[i] + vx, a.dy[i] + vy),
                    "at ({x}, {y})"
                );
            }
        }
    }

    /// Every pixel sampled, no block shortcut: what warp_labels must equal.
    fn warp_every_pixel(reference: &LabelMap, flow: &FlowField) -> LabelMap {
        let (w, h) = (reference.width, reference.height);
        let (sx, sy) = (w as f32 / flow.width as f32, h as f32 / flow.height as f32);
        let (columns, rows) = (taps(w, flow.width), taps(h, flow.height));
        let mut out = LabelMap::new(w, h);
        for (y, &(r0, r1, wy)) in rows.iter().enumerate() {
            for (x, &(c0, c1, wx)) in columns.iter().enumerate() {
                // Same operation order as warp_labels: rows first, then columns.
                let blend = |plane: &[f32]| {
                    let a = |c: usize| {
                        let (p, q) = (plane[r0 * flow.width + c], plane[r1 * flow.width + c]);
                        p + (q - p) * wy
                    };
                    a(c0) + (a(c1) - a(c0)) * wx
                };
                out.data[y * w + x] = sample_label_soft(
                    reference,
                    x as f32 + blend(&flow.dx) * sx,
                    y as f32 + blend(&flow.dy) * sy,
                );
            }
        }
        out
    }

    #[test]
    fn block_shortcut_equals_sampling_every_pixel() {
        // Random blobs, random smooth and rough flows, sizes that are not multiples of the
        // block and tile sizes, flows that push blocks across the border.
        let mut seed = 12345u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % 1_000_000) as f32 / 1_000_000.0
        };
        for (w, h, fw, fh) in [
            (203, 117, 64, 48),
            (640, 480, 256, 256),
            (97, 250, 97, 250),
            (960, 540, 128, 128),
        ] {
            let mut reference = LabelMap::new(w, h);
            for label in 1..=3u8 {
                let (cx, cy) = (next() * w as f32, next() * h as f32);
                let r = 5.0 + next() * w.min(h) as f32 / 4.0;
                for y in 0..h {
                    for x in 0..w {
                        let d = ((x as f32 - cx).powi(2) + (y as f32 - cy).powi(2)).sqrt();
                        if d < r {
                            reference.data[y * w + x] = label;
                        }
                    }
                }
            }
            // The last amplitude moves whole blocks past the border, partly and entirely.
            for (roughness, amplitude) in [(0.0f32, 6.0f32), (0.3, 6.0), (3.0, 6.0), (0.3, 40.0)] {
                let mut flow = FlowField::zeros(fw, fh);
                for i in 0..fw * fh {
                    let (x, y) = ((i % fw) as f32, (i / fw) as f32);
                    flow.dx[i] = (x * 0.07).sin() * amplitude + (next() - 0.5) * roughness;
                    flow.dy[i] =
                        (y * 0.05).cos() * amplitude / 1.5 - 2.0 + (next() - 0.5) * roughness;
                }
                assert_eq!(
                    warp_labels(&reference, &flow),
                    warp_every_pixel(&reference, &flow),
                    "{w}x{h} flow {fw}x{fh} roughness {roughness} amplitude {amplitude}"
                );
            }
        }
    }

    #[test]
    fn one_displaced_knot_is_seen_by_every_block_it_reaches() {
        // A flow that is zero but at one grid point: the blocks around it must sample, wherever
        // the point lies in a band (first, inner or last knot row or column of a block).
        let (w, h, fw, fh) = (200, 120, 50, 30);
        let mut reference = LabelMap::new(w, h);
        for y in 0..h {
            reference.data[y * w..y * w + 100].fill(1);
        }
        reference.data[90 * w..].fill(2);
        for knot in 0..fw * fh {
            // Far enough (in grid cells) that a neighbour's small weight still crosses a
            // boundary.
            let mut flow = FlowField::zeros(fw, fh);
            flow.dx[knot] = -40.0;
            flow.dy[knot] = -40.0;
            assert_eq!(
                warp_labels(&reference, &flow),
                warp_every_pixel(&reference, &flow),
                "knot ({}, {})",
                knot % fw,
                knot / fw
            );
        }
    }

    #[test]
    fn uniform_tiles_see_one_odd_pixel() {
        let mut m = LabelMap::new(20, 12);
        m.data[9 * 20 + 17] = 2;
        let tiles = UniformTiles::new(&m);
        assert_eq!(tiles.label_of(0, 15, 0, 7), Some(0));
        assert_eq!(tiles.label_of(16, 19, 8, 11), None);
        assert_eq!(tiles.label_of(0, 19, 0, 11), None);
    }

    #[test]
    fn check_size_reports_both_sizes() {
        let err = check_size(&LabelMap::new(4, 3), 5, 3)
            .unwrap_err()
            .to_string();
        assert!(err.contains("4x3") && err.contains("5x3"), "{err}");
    }
}
