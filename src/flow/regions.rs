//! Vessels as connected regions of a label map, with their boxes, areas and mean motion, and
//! the compression readout of a deep-vein-thrombosis exam.

use super::{FlowField, LabelMap};

/// One connected region of a single label (4-connectivity).
#[derive(Clone, Debug, PartialEq)]
pub struct Region {
    /// The vessel's instance id, stable from its reference frame on (0 when the reference had
    /// more vessels than are tracked one by one).
    pub id: u32,
    pub label: u8,
    /// Bounding box in frame pixels: x, y, width, height.
    pub bbox: (u32, u32, u32, u32),
    pub area: u64,
    /// Mean motion since the reference in frame pixels (reference -> current, i.e. `-flow`).
    pub mean_motion: (f64, f64),
    /// Tracking confidence in [0, 1] (see [`super::confidence`]), when the vessel is tracked as
    /// an instance.
    pub confidence: Option<f64>,
}

/// Regions of every non-zero label with at least `min_area` pixels, largest first per label.
/// `flow` (any grid) gives their mean motion; `None` leaves it at zero.
pub fn find_regions(labels: &LabelMap, flow: Option<&FlowField>, min_area: u64) -> Vec<Region> {
    regions_of(labels, flow, min_area, |label| (0, label))
}

/// The regions of a propagated instance map (see [`super::instances`]): `classes[k - 1]` is the
/// class of instance `k`, which becomes the region's `id`.
pub fn find_instance_regions(
    instances: &LabelMap,
    classes: &[u8],
    flow: Option<&FlowField>,
    min_area: u64,
) -> Vec<Region> {
    regions_of(instances, flow, min_area, |id| {
        (
            id as u32,
            classes.get(id as usize - 1).copied().unwrap_or(0),
        )
    })
}

/// Connected regions of equal non-zero values; `identify` gives a value's (id, label).
fn regions_of(
    labels: &LabelMap,
    flow: Option<&FlowField>,
    min_area: u64,
    identify: impl Fn(u8) -> (u32, u8),
) -> Vec<Region> {
    let (w, h) = (labels.width, labels.height);
    let mut seen = vec![false; w * h];
    let mut regions = Vec::new();
    let mut stack = Vec::new();
    let (sx, sy) = flow
        .map(|f| (w as f32 / f.width as f32, h as f32 / f.height as f32))
        .unwrap_or((1.0, 1.0));
    // Mean motion samples the flow at the nearest grid cell: exact enough for an average and
    // far cheaper than interpolating at every pixel of a large frame.
    let nearest = |n: usize, cells: usize| -> Vec<usize> {
        (0..n)
            .map(|i| ((2 * i + 1) * cells / (2 * n)).min(cells.saturating_sub(1)))
            .collect()
    };
    let (flow_cols, flow_rows) = flow
        .map(|f| (nearest(w, f.width), nearest(h, f.height)))
        .unwrap_or_default();
    for start in 0..w * h {
        let label = labels.data[start];
        if label == 0 || seen[start] {
            continue;
        }
        seen[start] = true;
        stack.push(start);
        let (mut x0, mut y0, mut x1, mut y1) = (w, h, 0, 0);
        let mut area = 0u64;
        let (mut mx, mut my) = (0f64, 0f64);
        while let Some(i) = stack.pop() {
            let (x, y) = (i % w, i / w);
            area += 1;
            x0 = x0.min(x);
            y0 = y0.min(y);
            x1 = x1.max(x);
            y1 = y1.max(y);
            if let Some(f) = flow {
                let cell = flow_rows[y] * f.width + flow_cols[x];
                mx -= (f.dx[cell] * sx) as f64;
                my -= (f.dy[cell] * sy) as f64;
            }
            for n in super::neighbours4(i, w, h).into_iter().flatten() {
                if !seen[n] && labels.data[n] == label {
                    seen[n] = true;
                    stack.push(n);
                }
            }
        }
        if area >= min_area {
            let (id, label) = identify(label);
            regions.push(Region {
                id,
                label,
                bbox: (
                    x0 as u32,
                    y0 as u32,
                    (x1 - x0 + 1) as u32,
                    (y1 - y0 + 1) as u32,
                ),
                area,
                mean_motion: (mx / area as f64, my / area as f64),
                confidence: None,
            });
        }
    }
    regions.sort_by(|a, b| {
        a.label
            .cmp(&b.label)
            .then(b.area.cmp(&a.area))
            .then(a.id.cmp(&b.id))
    });
    regions
}

/// Label id of the vein class in the contract's label maps.
pub const VEIN: u8 = 1;

/// Follows the vein area against its area in the reference frame.
#[derive(Clone, Debug, Default)]
pub struct CompressionMonitor {
    reference_area: Option<u64>,
    min_ratio: Option<(f64, u64)>,
}

/// The exam's outcome at the end of a stream.
#[derive(Clone, Debug, PartialEq)]
pub struct CompressionSummary {
    pub reference_vein_area: Option<u64>,
    /// Smallest vein area over its reference area, and the frame where it happened.
    pub min_ratio: Option<(f64, u64)>,
    /// Whether the vein closed fully (ratio at or below the closure threshold).
    pub vein_closed: bool,
}

impl CompressionMonitor {
    /// A new reference frame: its vein area is 100 %.
    pub fn anchor(&mut self, vein_area: u64) {
        self.reference_area = (vein_area > 0).then_some(vein_area);
    }

    /// The ratio for a frame, `None` without a vein in the reference.
    pub fn update(&mut self, frame: u64, vein_area: u64) -> Option<f64> {
        let ratio = vein_area as f64 / self.reference_area? as f64;
        if self.min_ratio.is_none_or(|(m, _)| ratio < m) {
            self.min_ratio = Some((ratio, frame));
        }
        Some(ratio)
    }

    pub fn summary(&self, closure_threshold: f64) -> CompressionSummary {
        CompressionSummary {
            reference_vein_area: self.reference_area,
            min_ratio: self.min_ratio,
            vein_closed: self.min_ratio.is_some_and(|(r, _)| r <= closure_threshold),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_separate_regions_with_boxes_and_motion() {
        let mut m = LabelMap::new(20, 10);
        for y in 1..4 {
            for x in 2..6 {
                m.data[y * 20 + x] = 1;
            }
        }
        for y in 5..9 {
            for x in 10..12 {
                m.data[y * 20 + x] = 2;
            }
        }
        m.data[9 * 20 + 19] = 2; // a speck below min_area
        let flow = FlowField::constant(10, 5, -1.0, 0.5);
        let r = find_regions(&m, Some(&flow), 2);
        assert_eq!(r.len(), 2);
        assert_eq!((r[0].label, r[0].bbox, r[0].area), (1, (2, 1, 4, 3), 12));
        assert_eq!((r[1].label, r[1].bbox, r[1].area), (2, (10, 5, 2, 4), 8));
        // Flow -1 on a grid half the size: content moved +2 px in x and -1 px in y.
        assert!((r[0].mean_motion.0 - 2.0).abs() < 1e-9 && (r[0].mean_motion.1 + 1.0).abs() < 1e-9);
    }

    #[test]
    fn compression_ratio_and_summary() {
        let mut c = CompressionMonitor::default();
        assert_eq!(c.update(0, 10), None);
        c.anchor(200);
        assert_eq!(c.update(1, 100), Some(0.5));
        assert_eq!(c.update(2, 10), Some(0.05));
        assert_eq!(c.update(3, 150), Some(0.75));
        let s = c.summary(0.1);
        assert_eq!(s.min_ratio, Some((0.05, 2)));
        assert!(s.vein_closed);
        assert!(!c.summary(0.01).vein_closed);
    }
}
