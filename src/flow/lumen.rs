//! Image evidence that a vessel mask still covers an open lumen.
//!
//! A backward warp cannot shrink a region to nothing, so when the probe presses a vein shut its
//! propagated mask keeps 10–40 % of the reference area and the area alone never reads "closed".
//! The pixels under the mask then show tissue, not the dark (anechoic) lumen. The *lumen
//! contrast* of a mask is the mean luma of a ring of tissue around it minus the mean luma inside
//! it; relative to the same contrast on the reference frame it is about 1 over an open lumen and
//! 0 or below over tissue (a collapsed vein's walls are bright).
//!
//! A mask that has left its vessel reads low too, so the vein's contrast alone would call a lost
//! track a closed vein, the unsafe error in a compression exam. The artery is the control:
//! probe pressure does not close it, so the vein counts as closed by this evidence only in a
//! frame where its relative contrast is at most [`CLOSED_CONTRAST`] while the artery's is at
//! least [`CONTROL_CONTRAST`]. Where both vanish, tracking was lost.

use super::{run_end, LabelMap};

/// The ring's width as a share of the vessel's equivalent radius in the reference mask.
pub const RING_SHARE: f64 = 0.25;
/// The narrowest ring, in pixels.
pub const MIN_RING: usize = 2;
/// Relative contrast at or below which the vein no longer covers lumen.
pub const CLOSED_CONTRAST: f64 = 0.3;
/// Relative contrast at or above which the artery (the control) is still tracked.
pub const CONTROL_CONTRAST: f64 = 0.5;
/// Smallest reference contrast, in luma levels, that makes a relative contrast meaningful: a
/// vessel that is not darker than its surroundings on the reference frame gives no evidence.
pub const MIN_REFERENCE_CONTRAST: f64 = 4.0;

/// The ring width for a vessel of `area` pixels in the reference mask.
pub fn ring_width(area: u64) -> usize {
    let radius = (area as f64 / std::f64::consts::PI).sqrt();
    ((RING_SHARE * radius).round() as usize).max(MIN_RING)
}

/// Mean luma of the ring around `label` (its square dilation by `ring` pixels, less every
/// labelled pixel) minus the mean luma inside it. `luma` is `labels.width * labels.height`,
/// contiguous. `None` without pixels of `label` or without ring pixels.
pub fn contrast(luma: &[u8], labels: &LabelMap, label: u8, ring: usize) -> Option<f64> {
    let vessel = Vessel::find(luma, labels, label)?;
    vessel.contrast(luma, labels, ring)
}

/// Where a vessel lies in a label map, how large it is and how bright inside.
struct Vessel {
    label: u8,
    /// Inclusive bounding box `(x0, y0, x1, y1)`.
    bbox: (usize, usize, usize, usize),
    area: u64,
    luma_sum: u64,
}

impl Vessel {
    fn find(luma: &[u8], labels: &LabelMap, label: u8) -> Option<Self> {
        let (w, h) = (labels.width, labels.height);
        if luma.len() != w * h || w == 0 || h == 0 || label == 0 {
            return None;
        }
        let (mut x0, mut y0, mut x1, mut y1) = (w, h, 0, 0);
        let (mut area, mut luma_sum) = (0u64, 0u64);
        for (y, row) in labels.data.chunks_exact(w).enumerate() {
            // Runs, eight bytes at a time: most of a frame is background.
            let mut x = run_end(row, 0, 0);
            while x < w {
                let end = run_end(row, x, row[x]);
                if row[x] == label {
                    x0 = x0.min(x);
                    x1 = x1.max(end - 1);
                    y0 = y0.min(y);
                    y1 = y.max(y1);
                    area += (end - x) as u64;
                    luma_sum += luma[y * w + x..y * w + end]
                        .iter()
                        .map(|&v| u64::from(v))
                        .sum::<u64>();
                }
                x = run_end(row, end, 0);
            }
        }
        (area > 0).then_some(Self {
            label,
            bbox: (x0, y0, x1, y1),
            area,
            luma_sum,
        })
    }

    fn contrast(&self, luma: &[u8], labels: &LabelMap, ring: usize) -> Option<f64> {
        let (w, h) = (labels.width, labels.height);
        let data = &labels.data;
        let (x0, y0, x1, y1) = self.bbox;
        // The dilation lies in the box grown by the ring, clipped to the frame. Square dilation
        // is separable: each row's vessel runs widened by the ring, then a column count of the
        // widened rows within the ring above and below.
        let (wx0, wy0) = (x0.saturating_sub(ring), y0.saturating_sub(ring));
        let (wx1, wy1) = ((x1 + ring).min(w - 1), (y1 + ring).min(h - 1));
        let (ww, wh) = (wx1 - wx0 + 1, wy1 - wy0 + 1);
        let mut widened = vec![0u8; ww * wh];
        for y in 0..wh {
            let row = &data[(wy0 + y) * w + wx0..(wy0 + y) * w + wx1 + 1];
            let out = &mut widened[y * ww..(y + 1) * ww];
            let mut x = 0;
            while x < ww {
                let end = run_end(row, x, row[x]);
                if row[x] == self.label {
                    out[x.saturating_sub(ring)..(end + ring).min(ww)].fill(1);
                }
                x = end;
            }
        }
        let mut columns = vec![0u16; ww];
        let add = |columns: &mut [u16], row: &[u8]| {
            for (c, &v) in columns.iter_mut().zip(row) {
                *c += u16::from(v);
            }
        };
        for y in 0..ring.min(wh) {
            add(&mut columns, &widened[y * ww..(y + 1) * ww]);
        }
        let (mut ring_sum, mut ring_n) = (0u64, 0u64);
        for y in 0..wh {
            // Rows y - ring ..= y + ring of the widened map are in `columns`.
            if y + ring < wh {
                add(&mut columns, &widened[(y + ring) * ww..(y + ring + 1) * ww]);
            }
            if y > ring {
                let gone = &widened[(y - ring - 1) * ww..(y - ring) * ww];
                for (c, &v) in columns.iter_mut().zip(gone) {
                    *c -= u16::from(v);
                }
            }
            let start = (wy0 + y) * w + wx0;
            let (labels_row, luma_row) = (&data[start..start + ww], &luma[start..start + ww]);
            for ((&c, &l), &v) in columns.iter().zip(labels_row).zip(luma_row) {
                let in_ring = u64::from(c > 0 && l == 0);
                ring_sum += in_ring * u64::from(v);
                ring_n += in_ring;
            }
        }
        (ring_n > 0)
            .then(|| ring_sum as f64 / ring_n as f64 - self.luma_sum as f64 / self.area as f64)
    }
}

/// One vessel's lumen contrast on its reference frame, against which later frames are read.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LumenReference {
    pub ring: usize,
    pub contrast: f64,
}

impl LumenReference {
    /// The reference of `label` on the reference frame; `None` without the vessel, or where it
    /// is not darker than its surroundings by [`MIN_REFERENCE_CONTRAST`].
    pub fn new(luma: &[u8], labels: &LabelMap, label: u8) -> Option<Self> {
        let vessel = Vessel::find(luma, labels, label)?;
        let ring = ring_width(vessel.area);
        let c = vessel.contrast(luma, labels, ring)?;
        (c >= MIN_REFERENCE_CONTRAST).then_some(Self { ring, contrast: c })
    }

    /// The contrast of `label` on a later frame relative to the reference's; `None` where the
    /// vessel or its ring is absent.
    pub fn relative(&self, luma: &[u8], labels: &LabelMap, label: u8) -> Option<f64> {
        contrast(luma, labels, label, self.ring).map(|c| c / self.contrast)
    }
}

/// Whether a frame shows the vein closed by image evidence: its relative contrast at most
/// [`CLOSED_CONTRAST`] while the artery's is at least [`CONTROL_CONTRAST`]. A vein whose mask
/// vanished entirely counts as covering no lumen.
pub fn closed_by_contrast(vein: Option<f64>, artery: Option<f64>) -> bool {
    vein.is_none_or(|v| v <= CLOSED_CONTRAST) && artery.is_some_and(|a| a >= CONTROL_CONTRAST)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 40x30 frame of tissue at luma 120 with a dark disc (luma 20) of radius 6 at (12, 15)
    /// labelled `label`.
    fn disc_frame(label: u8, lumen: u8) -> (Vec<u8>, LabelMap) {
        let (w, h) = (40, 30);
        let mut luma = vec![120u8; w * h];
        let mut labels = LabelMap::new(w, h);
        for y in 0..h {
            for x in 0..w {
                let (dx, dy) = (x as f64 - 12.0, y as f64 - 15.0);
                if dx * dx + dy * dy <= 36.0 {
                    luma[y * w + x] = lumen;
                    labels.data[y * w + x] = label;
                }
            }
        }
        (luma, labels)
    }

    #[test]
    fn an_open_lumen_reads_the_full_contrast_and_tissue_reads_none() {
        let (luma, labels) = disc_frame(1, 20);
        assert_eq!(contrast(&luma, &labels, 1, 2), Some(100.0));
        // The same mask over tissue (the vein pressed shut under it).
        let tissue = vec![120u8; luma.len()];
        assert_eq!(contrast(&tissue, &labels, 1, 2), Some(0.0));
        assert_eq!(contrast(&luma, &labels, 2, 2), None);
    }

    #[test]
    fn the_ring_is_the_square_dilation_less_labelled_pixels() {
        // One labelled pixel at (5, 5), a second class right of it: the ring of width 1 is the
        // 3x3 square less both labelled pixels, 7 pixels.
        let (w, h) = (10, 10);
        let mut labels = LabelMap::new(w, h);
        labels.data[5 * w + 5] = 1;
        labels.data[5 * w + 6] = 2;
        let mut luma = vec![0u8; w * h];
        for y in 4..=6 {
            for x in 4..=6 {
                luma[y * w + x] = 70;
            }
        }
        luma[5 * w + 5] = 0;
        luma[5 * w + 6] = 255; // excluded: labelled
        luma[3 * w + 5] = 255; // excluded: two rows away
        assert_eq!(contrast(&luma, &labels, 1, 1), Some(70.0));
    }

    #[test]
    fn the_ring_is_clipped_at_the_frame_edge() {
        let (w, h) = (6, 4);
        let mut labels = LabelMap::new(w, h);
        labels.data[0] = 1;
        let mut luma = vec![50u8; w * h];
        luma[0] = 10;
        assert_eq!(contrast(&luma, &labels, 1, 3), Some(40.0));
    }

    /// The definition, pixel by pixel: ring pixels are unlabelled pixels with a `label` pixel
    /// within `ring` in both directions.
    fn brute_force(luma: &[u8], labels: &LabelMap, label: u8, ring: usize) -> Option<f64> {
        let (w, h) = (labels.width as i64, labels.height as i64);
        let at = |x: i64, y: i64| labels.data[(y * w + x) as usize];
        let (mut inside, mut around) = (Vec::new(), Vec::new());
        for y in 0..h {
            for x in 0..w {
                let v = f64::from(luma[(y * w + x) as usize]);
                if at(x, y) == label {
                    inside.push(v);
                } else if at(x, y) == 0 {
                    let r = ring as i64;
                    let near = (y - r..=y + r).any(|yy| {
                        (x - r..=x + r).any(|xx| {
                            (0..w).contains(&xx) && (0..h).contains(&yy) && at(xx, yy) == label
                        })
                    });
                    if near {
                        around.push(v);
                    }
                }
            }
        }
        let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
        (!inside.is_empty() && !around.is_empty()).then(|| mean(&around) - mean(&inside))
    }

    #[test]
    fn contrast_matches_the_definition_on_random_maps() {
        let mut seed = 12345u64;
        let mut next = || {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 33) as usize
        };
        for case in 0..200 {
            let (w, h) = (1 + next() % 23, 1 + next() % 17);
            // Sparse blobs of labels 1 and 2 on background.
            let data = (0..w * h)
                .map(|_| match next() % 10 {
                    0 => 1,
                    1 => 2,
                    _ => 0,
                })
                .collect();
            let labels = LabelMap::from_vec(w, h, data).unwrap();
            let luma: Vec<u8> = (0..w * h).map(|_| next() as u8).collect();
            let ring = next() % 5;
            let (fast, slow) = (
                contrast(&luma, &labels, 1, ring),
                brute_force(&luma, &labels, 1, ring),
            );
            match (fast, slow) {
                (Some(a), Some(b)) => assert!((a - b).abs() < 1e-9, "case {case}: {a} vs {b}"),
                (a, b) => assert_eq!(a, b, "case {case}"),
            }
        }
    }

    #[test]
    fn the_ring_grows_with_the_vessel() {
        assert_eq!(ring_width(1), MIN_RING);
        // Radius 20: a quarter is 5.
        assert_eq!(ring_width((std::f64::consts::PI * 400.0) as u64), 5);
    }

    #[test]
    fn relative_contrast_is_against_the_reference_frame() {
        let (luma, labels) = disc_frame(1, 20);
        let reference = LumenReference::new(&luma, &labels, 1).unwrap();
        assert_eq!(reference.contrast, 100.0);
        let (half, _) = disc_frame(1, 70);
        assert_eq!(reference.relative(&half, &labels, 1), Some(0.5));
        // A vessel as bright as the tissue on the reference frame gives no reference.
        let (flat, flat_labels) = disc_frame(1, 118);
        assert_eq!(LumenReference::new(&flat, &flat_labels, 1), None);
    }

    #[test]
    fn the_vein_closes_only_while_the_artery_stays_open() {
        assert!(closed_by_contrast(Some(0.1), Some(0.9)));
        assert!(closed_by_contrast(None, Some(0.9)));
        assert!(
            !closed_by_contrast(Some(0.1), Some(0.2)),
            "both lost: tracking"
        );
        assert!(
            !closed_by_contrast(Some(0.1), None),
            "no control: area only"
        );
        assert!(!closed_by_contrast(Some(0.6), Some(0.9)));
    }
}
