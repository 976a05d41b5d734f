//! Vessel instances: every connected vessel of the reference mask is tracked as one instance
//! with a stable id, and its propagated mask is kept to one region that does not smear.
//!
//! The warp carries an *instance map* (0 background, `k` the k-th vessel of the reference)
//! rather than the class map, so two arteries stay two vessels. After the warp:
//!
//! * pixels where the backward mapping `p -> p + flow(p)` folds (its Jacobian determinant below
//!   [`FOLD_DETERMINANT`]: the mapping turns over, several frame pixels land on the same
//!   reference pixels) leave the vessel: that is how tissue gets the vessel's label copied;
//! * of what remains, only the largest connected region of each instance is kept, so pieces
//!   that break off do not stay behind in tissue as extra vessels.

use super::components::components;
use super::{run_end, FlowField, LabelMap};

/// Below this Jacobian determinant of the backward mapping, a vessel pixel counts as folded.
/// Zero: only where the mapping turns over. Measured on the seven carotid recordings (Dice of the
/// propagated artery, chain / keyframe): no fold removal 53.8 / 47.8 % (largest region only
/// 54.7 / 50.5), threshold -0.5 57.3 / 51.2, 0 57.6 / 51.4, 0.05 55.7 / 51.0, 0.25 48.9 / 49.9:
/// any positive threshold also removes real vessel where a composed chain flow compresses.
pub const FOLD_DETERMINANT: f32 = 0.0;

/// The vessels of a reference mask, one instance each.
#[derive(Clone, Debug, PartialEq)]
pub struct Instances {
    /// Instance ids per pixel: 0 background, `k` the instance `k` (1-based).
    pub map: LabelMap,
    /// Class label of instance `k` at index `k - 1`.
    pub classes: Vec<u8>,
    /// Area of instance `k` in the reference, at index `k - 1`.
    pub reference_areas: Vec<u64>,
}

impl Instances {
    /// One instance per connected vessel of `classes` (a class label map), numbered in scan
    /// order. `None` when there are more vessels than an 8-bit instance map holds (255): the
    /// caller then propagates classes as they are.
    pub fn from_classes(classes: &LabelMap) -> Option<Self> {
        let found = components(classes);
        if found.components.len() > u8::MAX as usize {
            return None;
        }
        let mut map = LabelMap::new(classes.width, classes.height);
        for run in &found.runs {
            map.data[run.pixels(classes.width)].fill(run.component as u8 + 1);
        }
        Some(Self {
            map,
            classes: found.components.iter().map(|c| c.label).collect(),
            reference_areas: found.components.iter().map(|c| c.area).collect(),
        })
    }

    /// The number of instances.
    pub fn len(&self) -> usize {
        self.classes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.classes.is_empty()
    }

    /// The class of instance `id` (0 for background or an unknown id).
    pub fn class_of(&self, id: u8) -> u8 {
        match id {
            0 => 0,
            k => self.classes.get(k as usize - 1).copied().unwrap_or(0),
        }
    }

    /// The class label map of an instance map propagated from these instances.
    pub fn to_classes(&self, instance_map: &LabelMap) -> LabelMap {
        let mut lut = [0u8; 256];
        for (k, &class) in self.classes.iter().enumerate() {
            lut[k + 1] = class;
        }
        // Background stays background: only the runs of instance ids are written.
        let ids = &instance_map.data;
        let mut data = vec![0u8; ids.len()];
        let mut i = run_end(ids, 0, 0);
        while i < ids.len() {
            let end = run_end(ids, i, ids[i]);
            data[i..end].fill(lut[ids[i] as usize]);
            i = run_end(ids, end, 0);
        }
        LabelMap {
            width: instance_map.width,
            height: instance_map.height,
            data,
        }
    }
}

/// Jacobian determinant of the backward mapping `p -> p + flow(p)` on the flow's grid (central
/// differences inside, one-sided at the border). It does not depend on the grid's scale.
pub fn jacobian_determinant(flow: &FlowField) -> Vec<f32> {
    let (w, h) = (flow.width, flow.height);
    let mut det = vec![1f32; w * h];
    if w < 2 || h < 2 {
        return det;
    }
    // Central differences, one-sided at the border (cells 1 apart instead of 2). Halving is
    // a multiplication by 0.5: exact, and far cheaper than a division per derivative.
    let scale = |span: usize| if span == 2 { 0.5 } else { 1.0 };
    for (y, det_row) in det.chunks_exact_mut(w).enumerate() {
        let (up, down) = (y.saturating_sub(1), (y + 1).min(h - 1));
        let along = scale(down - up);
        let (dx, dy) = (&flow.dx[y * w..][..w], &flow.dy[y * w..][..w]);
        let (dx_up, dx_down) = (&flow.dx[up * w..][..w], &flow.dx[down * w..][..w]);
        let (dy_up, dy_down) = (&flow.dy[up * w..][..w], &flow.dy[down * w..][..w]);
        for (x, out) in det_row.iter_mut().enumerate() {
            let (left, right) = (x.saturating_sub(1), (x + 1).min(w - 1));
            let across = scale(right - left);
            let dxdx = (dx[right] - dx[left]) * across;
            let dydx = (dy[right] - dy[left]) * across;
            let dxdy = (dx_down[x] - dx_up[x]) * along;
            let dydy = (dy_down[x] - dy_up[x]) * along;
            *out = (1.0 + dxdx) * (1.0 + dydy) - dxdy * dydx;
        }
    }
    det
}

/// Sets to 0 the vessel pixels of `instance_map` where the mapping `p -> p + flow(p)` folds
/// (its Jacobian determinant, at the flow cell nearest to the pixel, is below
/// [`FOLD_DETERMINANT`]). A flow of fewer than 2 x 2 cells has no determinant: nothing changes.
pub fn remove_folds(instance_map: &mut LabelMap, flow: &FlowField) {
    if flow.width < 2 || flow.height < 2 {
        return;
    }
    let (w, h) = (instance_map.width, instance_map.height);
    let det = jacobian_determinant(flow);
    // Flow rows with a folded cell: frame rows nearest to the others keep every pixel.
    let folded_rows: Vec<bool> = det
        .chunks_exact(flow.width)
        .map(|row| row.iter().any(|&d| d < FOLD_DETERMINANT))
        .collect();
    // The flow cell whose centre is nearest to each frame pixel.
    let cell = |i: usize, n: usize, cells: usize| ((2 * i + 1) * cells / (2 * n)).min(cells - 1);
    let columns: Vec<usize> = (0..w).map(|x| cell(x, w, flow.width)).collect();
    // Per frame column of the current flow row: 0 where the pixel folded, else 0xff, so
    // that a row is cleaned with one AND per pixel.
    let mut keep = vec![0u8; w];
    let mut keep_row = None;
    for y in 0..h {
        let flow_row = cell(y, h, flow.height);
        if !folded_rows[flow_row] {
            continue;
        }
        if keep_row != Some(flow_row) {
            let det_row = &det[flow_row * flow.width..][..flow.width];
            for (k, &c) in keep.iter_mut().zip(&columns) {
                *k = if det_row[c] < FOLD_DETERMINANT {
                    0
                } else {
                    0xff
                };
            }
            keep_row = Some(flow_row);
        }
        for (id, &k) in instance_map.data[y * w..(y + 1) * w].iter_mut().zip(&keep) {
            *id &= k;
        }
    }
}

/// What cleaning did to one instance, in pixels.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Cleaning {
    /// Pixels the warp gave the instance.
    pub warped: u64,
    /// Of those, pixels that stayed (the largest region, folds removed).
    pub kept: u64,
    /// Bounding box of the pixels that stayed: x, y, width, height (zero when none stayed).
    pub bbox: (u32, u32, u32, u32),
}

impl Cleaning {
    /// The share of the warped vessel that stayed (1 when nothing was removed).
    pub fn kept_fraction(&self) -> f32 {
        if self.warped == 0 {
            return 0.0;
        }
        self.kept as f32 / self.warped as f32
    }
}

/// Removes folded pixels from the vessels of `instance_map` (propagated with `flow`, on any
/// coarser or equal grid) and keeps each instance's largest connected region. Returns, for
/// instance ids `1..=count`, what was warped and what stayed.
pub fn clean_propagated(
    instance_map: &mut LabelMap,
    flow: Option<&FlowField>,
    count: usize,
) -> Vec<Cleaning> {
    let w = instance_map.width;
    let mut stats: Vec<Cleaning> = instance_map
        .histogram()
        .iter()
        .map(|&warped| Cleaning {
            warped,
            ..Cleaning::default()
        })
        .collect();
    if let Some(flow) = flow {
        remove_folds(instance_map, flow);
    }
    let found = components(instance_map);
    // The largest component of each instance id (the first of equal ones).
    let mut largest = [u32::MAX; 256];
    let mut largest_area = [0u64; 256];
    for (k, c) in found.components.iter().enumerate() {
        if c.area > largest_area[c.label as usize] {
            largest_area[c.label as usize] = c.area;
            largest[c.label as usize] = k as u32;
        }
    }
    for (k, c) in found.components.iter().enumerate() {
        if largest[c.label as usize] == k as u32 {
            let s = &mut stats[c.label as usize];
            s.kept = c.area;
            s.bbox = c.bbox();
        }
    }
    for run in &found.runs {
        let id = found.components[run.component as usize].label;
        if largest[id as usize] != run.component {
            instance_map.data[run.pixels(w)].fill(0);
        }
    }
    stats.truncate(count + 1);
    stats.remove(0);
    stats
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_connected_vessel_is_one_instance_with_its_class() {
        let classes = LabelMap::from_rows(6, &["11..22", "11..22", "......", "2....1"]);
        let inst = Instances::from_classes(&classes).unwrap();
        assert_eq!(inst.classes, vec![1, 2, 2, 1]);
        assert_eq!(inst.reference_areas, vec![4, 4, 1, 1]);
        assert_eq!(
            inst.map,
            LabelMap::from_rows(6, &["11..22", "11..22", "......", "3....4"])
        );
        assert_eq!(inst.to_classes(&inst.map), classes);
        assert_eq!(inst.class_of(3), 2);
        assert_eq!(inst.class_of(0), 0);
        assert_eq!(inst.class_of(9), 0);
    }

    #[test]
    fn classes_of_an_instance_map_match_a_lookup_per_pixel() {
        let instances = Instances {
            map: LabelMap::new(1, 1),
            classes: vec![2, 1, 2, 7],
            reference_areas: vec![1; 4],
        };
        let mut s = 0x1234_5678_9abc_def1u64;
        for len in [0, 1, 7, 8, 9, 63, 200] {
            let ids: Vec<u8> = (0..len)
                .map(|_| {
                    s ^= s << 13;
                    s ^= s >> 7;
                    s ^= s << 17;
                    // Mostly background, ids 1-4 and one unknown id (6: background).
                    [0, 0, 0, 1, 1, 2, 3, 4, 6][(s % 9) as usize]
                })
                .collect();
            let map = LabelMap::from_vec(len, 1, ids.clone()).unwrap();
            let expected: Vec<u8> = ids.iter().map(|&id| instances.class_of(id)).collect();
            assert_eq!(instances.to_classes(&map).data, expected, "{ids:?}");
        }
    }

    #[test]
    fn too_many_vessels_for_an_8_bit_map_are_refused() {
        // A checkerboard: every labelled pixel is its own region.
        let mut m = LabelMap::new(32, 32);
        for (i, v) in m.data.iter_mut().enumerate() {
            *v = ((i % 32 + i / 32) % 2) as u8;
        }
        assert!(Instances::from_classes(&m).is_none());
    }

    #[test]
    fn only_the_largest_region_of_an_instance_stays() {
        let mut m = LabelMap::from_rows(8, &["11.....2", "11...1.2", "........", "1......2"]);
        let stats = clean_propagated(&mut m, None, 2);
        assert_eq!(
            stats[0],
            Cleaning {
                warped: 6,
                kept: 4,
                bbox: (0, 0, 2, 2)
            }
        );
        assert_eq!(
            (stats[1].warped, stats[1].kept, stats[1].bbox),
            (3, 2, (7, 0, 1, 2))
        );
        assert!((stats[1].kept_fraction() - 2.0 / 3.0).abs() < 1e-6);
        assert_eq!(
            m,
            LabelMap::from_rows(8, &["11.....2", "11.....2", "........", "........"])
        );
    }

    #[test]
    fn jacobian_of_a_translation_is_one_and_of_a_collapse_is_small() {
        assert!(jacobian_determinant(&FlowField::constant(8, 8, 3.0, -2.0))
            .iter()
            .all(|&d| (d - 1.0).abs() < 1e-6));
        // flow(x) = -0.8 x: p + flow(p) = 0.2 x, a 5x horizontal squeeze.
        let mut f = FlowField::zeros(8, 8);
        for (i, v) in f.dx.iter_mut().enumerate() {
            *v = -0.8 * (i % 8) as f32;
        }
        assert!(jacobian_determinant(&f)
            .iter()
            .all(|&d| (d - 0.2).abs() < 1e-5));
    }

    #[test]
    fn jacobian_uses_central_differences_inside_and_one_sided_ones_at_the_border() {
        let (w, h) = (9, 7);
        let f = FlowField::rough(w, h, 7);
        let det = jacobian_determinant(&f);
        let at = |p: &[f32], x: usize, y: usize| p[y * w + x];
        for y in 0..h {
            for x in 0..w {
                let (l, r) = (x.saturating_sub(1), (x + 1).min(w - 1));
                let (u, d) = (y.saturating_sub(1), (y + 1).min(h - 1));
                let across = (r - l) as f32;
                let along = (d - u) as f32;
                let dxdx = (at(&f.dx, r, y) - at(&f.dx, l, y)) / across;
                let dydx = (at(&f.dy, r, y) - at(&f.dy, l, y)) / across;
                let dxdy = (at(&f.dx, x, d) - at(&f.dx, x, u)) / along;
                let dydy = (at(&f.dy, x, d) - at(&f.dy, x, u)) / along;
                let expected = (1.0 + dxdx) * (1.0 + dydy) - dxdy * dydx;
                assert_eq!(det[y * w + x], expected, "at ({x}, {y})");
            }
        }
    }

    #[test]
    fn folds_are_removed_where_the_nearest_cell_folds() {
        // Rough flows that fold in places, on grids coarser than, equal to and odd against
        // the map; compared with the fold check done pixel by pixel.
        let mut s = 0x0dd5_eed5_1234_5678u64;
        let mut next = move || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s % 10_000) as f32 / 10_000.0
        };
        for (w, h, fw, fh) in [
            (41, 29, 8, 6),
            (16, 16, 16, 16),
            (50, 7, 9, 2),
            (5, 9, 1, 4),
        ] {
            let mut flow = FlowField::zeros(fw, fh);
            for v in flow.dx.iter_mut().chain(flow.dy.iter_mut()) {
                *v = (next() - 0.5) * 3.0;
            }
            let data = (0..w * h).map(|_| (next() * 4.0) as u8).collect();
            let map = LabelMap::from_vec(w, h, data).unwrap();
            let mut expected = map.clone();
            if fw > 1 && fh > 1 {
                let det = jacobian_determinant(&flow);
                let cell = |i: usize, n: usize, cells: usize| {
                    ((2 * i + 1) * cells / (2 * n)).min(cells - 1)
                };
                for y in 0..h {
                    for x in 0..w {
                        if det[cell(y, h, fh) * fw + cell(x, w, fw)] < FOLD_DETERMINANT {
                            expected.data[y * w + x] = 0;
                        }
                    }
                }
            }
            let mut got = map.clone();
            remove_folds(&mut got, &flow);
            assert_eq!(got, expected, "{w}x{h} on {fw}x{fh}");
            if fw > 1 && fh > 1 {
                assert_ne!(got, map, "{w}x{h} on {fw}x{fh}: something folded");
            }
        }
    }

    #[test]
    fn folded_pixels_leave_the_vessel() {
        // A vessel over the whole frame; the flow mirrors the right half (x -> 11 - x), so the
        // mapping turns over there.
        let mut m = LabelMap::from_vec(8, 4, vec![1; 32]).unwrap();
        let mut f = FlowField::zeros(8, 4);
        for y in 0..4 {
            for x in 5..8 {
                f.dx[y * 8 + x] = 11.0 - 2.0 * x as f32;
            }
        }
        let stats = clean_propagated(&mut m, Some(&f), 1);
        assert_eq!(stats[0].warped, 32);
        assert!(stats[0].kept <= 24, "{:?}", stats[0]);
        assert!(m.data[0..3].iter().all(|&v| v == 1), "the left stays");
        assert!(
            m.data[6..8].iter().all(|&v| v == 0),
            "the collapsed right goes"
        );
    }
}
