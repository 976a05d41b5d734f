//! Warping label maps with a backward flow: `mask_t(p) = mask_ref(p + flow(p))`, evaluated on
//! soft one-hot maps (bilinear weights per label) and reduced with argmax.

use super::{FlowError, FlowField, LabelMap};

/// Bilinear interpolation of a single-channel f32 grid, clamped to the border.
#[inline]
pub fn bilinear(data: &[f32], width: usize, height: usize, x: f32, y: f32) -> f32 {
    let x = x.clamp(0.0, (width - 1) as f32);
    let y = y.clamp(0.0, (height - 1) as f32);
    let x0 = x.floor() as usize;
    let y0 = y.floor() as usize;
    let x1 = (x0 + 1).min(width - 1);
    let y1 = (y0 + 1).min(height - 1);
    let fx = x - x0 as f32;
    let fy = y - y0 as f32;
    let a = data[y0 * width + x0] * (1.0 - fx) + data[y0 * width + x1] * fx;
    let b = data[y1 * width + x0] * (1.0 - fx) + data[y1 * width + x1] * fx;
    a * (1.0 - fy) + b * fy
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

/// Warps `reference` (at frame resolution) with `flow` given on a coarser or equal grid.
///
/// The flow is upsampled bilinearly to the label map's size and its vectors are scaled by the
/// ratio of the two grids, so a model running at 256x256 drives a 1920x1080 mask. Positions
/// that fall outside the reference are treated as background. Rows run in parallel.
pub fn warp_labels(reference: &LabelMap, flow: &FlowField) -> LabelMap {
    use rayon::prelude::*;
    let (w, h) = (reference.width, reference.height);
    let mut out = LabelMap::new(w, h);
    if w == 0 || h == 0 {
        return out;
    }
    let sx = w as f32 / flow.width as f32;
    let sy = h as f32 / flow.height as f32;
    let columns = taps(w, flow.width);
    let rows = taps(h, flow.height);
    out.data.par_chunks_mut(w).enumerate().for_each_init(
        || (vec![0f32; flow.width], vec![0f32; flow.width]),
        |(row_dx, row_dy), (y, line)| {
            // The flow row at this frame row, blended once, then sampled per column.
            let (r0, r1, wy) = rows[y];
            for (plane, row) in [(&flow.dx, &mut *row_dx), (&flow.dy, &mut *row_dy)] {
                let (a, b) = (
                    &plane[r0 * flow.width..][..flow.width],
                    &plane[r1 * flow.width..][..flow.width],
                );
                for ((r, &p), &q) in row.iter_mut().zip(a).zip(b) {
                    *r = p + (q - p) * wy;
                }
            }
            for (x, (&(c0, c1, wx), label)) in columns.iter().zip(line.iter_mut()).enumerate() {
                let dx = row_dx[c0] + (row_dx[c1] - row_dx[c0]) * wx;
                let dy = row_dy[c0] + (row_dy[c1] - row_dy[c0]) * wx;
                *label = sample_label_soft(reference, x as f32 + dx * sx, y as f32 + dy * sy);
            }
        },
    );
    out
}

/// Argmax of the bilinear weights of the four neighbouring labels (soft one-hot sampling).
#[inline]
fn sample_label_soft(reference: &LabelMap, x: f32, y: f32) -> u8 {
    let (w, h) = (reference.width as isize, reference.height as isize);
    let x0f = x.floor();
    let y0f = y.floor();
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
            0
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
    fn check_size_reports_both_sizes() {
        let err = check_size(&LabelMap::new(4, 3), 5, 3)
            .unwrap_err()
            .to_string();
        assert!(err.contains("4x3") && err.contains("5x3"), "{err}");
    }
}
