//! Segmentation metrics of the evaluation protocol (docs/evaluation.md): Dice per class,
//! Hausdorff distance (HD) and HD95 (maximum of the two directed 95th percentiles) between the
//! classes' boundaries.

use super::LabelMap;

/// Scores of one class in one frame. `None` for a class absent from both maps (skipped).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ClassScore {
    pub dice: f64,
    /// Infinite when the class is present in only one of the two maps.
    pub hd: f64,
    pub hd95: f64,
    /// Pixels of the class in the truth and in the prediction.
    pub truth_area: usize,
    pub predicted_area: usize,
}

/// Scores class `label` of `prediction` against `truth` (same size).
pub fn score_class(truth: &LabelMap, prediction: &LabelMap, label: u8) -> Option<ClassScore> {
    assert_eq!(
        (truth.width, truth.height),
        (prediction.width, prediction.height)
    );
    let a: Vec<bool> = truth.data.iter().map(|&v| v == label).collect();
    let b: Vec<bool> = prediction.data.iter().map(|&v| v == label).collect();
    let na = a.iter().filter(|&&v| v).count();
    let nb = b.iter().filter(|&&v| v).count();
    if na == 0 && nb == 0 {
        return None;
    }
    if na == 0 || nb == 0 {
        return Some(ClassScore {
            dice: 0.0,
            hd: f64::INFINITY,
            hd95: f64::INFINITY,
            truth_area: na,
            predicted_area: nb,
        });
    }
    let inter = a.iter().zip(&b).filter(|(x, y)| **x && **y).count();
    let dice = 2.0 * inter as f64 / (na + nb) as f64;
    let (w, h) = (truth.width, truth.height);
    let ba = boundary(&a, w, h);
    let bb = boundary(&b, w, h);
    let da = directed_distances(&ba, &bb, w, h);
    let db = directed_distances(&bb, &ba, w, h);
    let hd = da
        .last()
        .copied()
        .unwrap_or(0.0)
        .max(db.last().copied().unwrap_or(0.0));
    let hd95 = percentile(&da, 95.0).max(percentile(&db, 95.0));
    Some(ClassScore {
        dice,
        hd,
        hd95,
        truth_area: na,
        predicted_area: nb,
    })
}

/// Foreground pixels with a 4-neighbour outside the set (or on the image edge).
fn boundary(set: &[bool], w: usize, h: usize) -> Vec<bool> {
    let mut out = vec![false; set.len()];
    for y in 0..h {
        for x in 0..w {
            let i = y * w + x;
            if !set[i] {
                continue;
            }
            let edge = x == 0 || y == 0 || x + 1 == w || y + 1 == h;
            out[i] = edge || !set[i - 1] || !set[i + 1] || !set[i - w] || !set[i + w];
        }
    }
    out
}

/// Sorted distances from every pixel of `from` to the nearest pixel of `to`.
fn directed_distances(from: &[bool], to: &[bool], w: usize, h: usize) -> Vec<f64> {
    let dt = squared_distance_transform(to, w, h);
    let mut d: Vec<f64> = from
        .iter()
        .zip(&dt)
        .filter(|(f, _)| **f)
        .map(|(_, &d2)| d2.sqrt())
        .collect();
    d.sort_by(|a, b| a.partial_cmp(b).unwrap());
    d
}

/// Nearest-rank percentile of sorted values.
fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Exact squared Euclidean distance transform (Felzenszwalb & Huttenlocher), distance to the
/// nearest `true` pixel.
fn squared_distance_transform(set: &[bool], w: usize, h: usize) -> Vec<f64> {
    const INF: f64 = 1e20;
    let mut grid: Vec<f64> = set.iter().map(|&v| if v { 0.0 } else { INF }).collect();
    let mut buf = vec![0.0; w.max(h)];
    let mut out = vec![0.0; w.max(h)];
    for x in 0..w {
        for y in 0..h {
            buf[y] = grid[y * w + x];
        }
        dt_1d(&buf[..h], &mut out[..h]);
        for y in 0..h {
            grid[y * w + x] = out[y];
        }
    }
    for y in 0..h {
        buf[..w].copy_from_slice(&grid[y * w..(y + 1) * w]);
        dt_1d(&buf[..w], &mut out[..w]);
        grid[y * w..(y + 1) * w].copy_from_slice(&out[..w]);
    }
    grid
}

fn dt_1d(f: &[f64], d: &mut [f64]) {
    let n = f.len();
    let mut v = vec![0usize; n];
    let mut z = vec![0f64; n + 1];
    let mut k = 0usize;
    z[0] = f64::NEG_INFINITY;
    z[1] = f64::INFINITY;
    for q in 1..n {
        loop {
            let p = v[k];
            let s =
                ((f[q] + (q * q) as f64) - (f[p] + (p * p) as f64)) / (2.0 * (q as f64 - p as f64));
            if s <= z[k] && k > 0 {
                k -= 1;
                continue;
            }
            if s <= z[k] {
                // k == 0: replace the first parabola.
                v[0] = q;
                z[0] = f64::NEG_INFINITY;
                z[1] = f64::INFINITY;
                break;
            }
            k += 1;
            v[k] = q;
            z[k] = s;
            z[k + 1] = f64::INFINITY;
            break;
        }
    }
    k = 0;
    for (q, dq) in d.iter_mut().enumerate().take(n) {
        while z[k + 1] < q as f64 {
            k += 1;
        }
        let p = v[k];
        *dq = (q as f64 - p as f64).powi(2) + f[p];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rect(w: usize, h: usize, x0: usize, y0: usize, rw: usize, rh: usize) -> LabelMap {
        let mut m = LabelMap::new(w, h);
        for y in y0..y0 + rh {
            for x in x0..x0 + rw {
                m.data[y * w + x] = 1;
            }
        }
        m
    }

    #[test]
    fn identical_masks_score_dice_one_and_hd_zero() {
        let m = rect(32, 32, 4, 6, 10, 8);
        let s = score_class(&m, &m, 1).unwrap();
        assert_eq!(s.dice, 1.0);
        assert_eq!(s.hd, 0.0);
        assert_eq!(s.hd95, 0.0);
    }

    #[test]
    fn known_shift_gives_known_hd_and_dice() {
        let a = rect(64, 64, 10, 10, 20, 20);
        let b = rect(64, 64, 13, 10, 20, 20);
        let s = score_class(&a, &b, 1).unwrap();
        assert_eq!(s.hd, 3.0);
        // Overlap 17x20 of two 20x20 squares.
        assert!((s.dice - 2.0 * 340.0 / 800.0).abs() < 1e-12);
    }

    #[test]
    fn absent_class_is_skipped_or_zero() {
        let empty = LabelMap::new(8, 8);
        assert!(score_class(&empty, &empty, 1).is_none());
        let s = score_class(&rect(8, 8, 1, 1, 2, 2), &empty, 1).unwrap();
        assert_eq!(s.dice, 0.0);
        assert!(s.hd.is_infinite());
    }

    #[test]
    fn distance_transform_matches_brute_force() {
        let w = 17;
        let h = 11;
        let set: Vec<bool> = (0..w * h).map(|i| (i * 7919) % 13 == 0).collect();
        let dt = squared_distance_transform(&set, w, h);
        for y in 0..h {
            for x in 0..w {
                let mut best = f64::INFINITY;
                for (j, &s) in set.iter().enumerate() {
                    if s {
                        let (qx, qy) = ((j % w) as f64, (j / w) as f64);
                        best = best.min((qx - x as f64).powi(2) + (qy - y as f64).powi(2));
                    }
                }
                assert_eq!(dt[y * w + x], best, "at {x},{y}");
            }
        }
    }
}
