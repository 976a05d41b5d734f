//! Vessels as connected regions of a label map, with their boxes, areas and mean motion, and
//! the compression readout of a deep-vein-thrombosis exam.

use super::components::components;
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
    let found = components(labels);
    // Mean motion sums the flow at the nearest grid cell of each pixel: exact enough for an
    // average and far cheaper than interpolating at every pixel of a large frame.
    let mut motion = vec![(0f64, 0f64); found.components.len()];
    if let Some(f) = flow.filter(|f| f.width > 0 && f.height > 0) {
        let (sx, sy) = (w as f32 / f.width as f32, h as f32 / f.height as f32);
        let nearest =
            |i: usize, n: usize, cells: usize| ((2 * i + 1) * cells / (2 * n)).min(cells - 1);
        let flow_cols: Vec<usize> = (0..w).map(|x| nearest(x, w, f.width)).collect();
        for run in &found.runs {
            let row = nearest(run.y as usize, h, f.height) * f.width;
            let m = &mut motion[run.component as usize];
            for &col in &flow_cols[run.x0 as usize..run.x1 as usize] {
                m.0 -= (f.dx[row + col] * sx) as f64;
                m.1 -= (f.dy[row + col] * sy) as f64;
            }
        }
    }
    let mut regions: Vec<Region> = found
        .components
        .iter()
        .zip(&motion)
        .filter(|(c, _)| c.area >= min_area)
        .map(|(c, &(mx, my))| {
            let (id, label) = identify(c.label);
            Region {
                id,
                label,
                bbox: c.bbox(),
                area: c.area,
                mean_motion: (mx / c.area as f64, my / c.area as f64),
                confidence: None,
            }
        })
        .collect();
    regions.sort_by(|a, b| {
        a.label
            .cmp(&b.label)
            .then(b.area.cmp(&a.area))
            .then(a.id.cmp(&b.id))
    });
    regions
}

/// An area in pixels as mm² at `spacing_mm` millimetres per (square) pixel.
pub fn area_mm2(area: u64, spacing_mm: f64) -> f64 {
    area as f64 * spacing_mm * spacing_mm
}

/// Segments kept for the summary; older ones are counted in
/// [`CompressionSummary::segments_dropped`] (a live stream re-anchored by a segmenter every few
/// frames must not grow without bound).
pub const MAX_SEGMENTS: usize = 1024;

/// One exam segment: the frames registered to one reference frame. Its ratios are against that
/// reference's vein area only.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Segment {
    pub reference_frame: u64,
    /// Frames in the segment, the reference frame included.
    pub frames: u64,
    /// Vein area of the reference frame; `None` without a vein there (then no ratios).
    pub reference_vein_area: Option<u64>,
    /// Smallest vein area over `reference_vein_area`, and the frame where it happened.
    pub min_ratio: Option<(f64, u64)>,
    /// The first frame whose image showed the vein shut while the artery stayed open
    /// ([`super::lumen::closed_by_contrast`]), when the element looks for that evidence.
    pub contrast_closed_frame: Option<u64>,
}

impl Segment {
    /// Whether the vein closed fully: its area ratio at or below the closure threshold, or the
    /// image showed it shut.
    pub fn vein_closed(&self, closure_threshold: f64) -> bool {
        self.closed_by_area(closure_threshold) || self.contrast_closed_frame.is_some()
    }

    /// Whether the area ratio alone reached the closure threshold.
    pub fn closed_by_area(&self, closure_threshold: f64) -> bool {
        self.min_ratio.is_some_and(|(r, _)| r <= closure_threshold)
    }
}

/// Follows the vein area against its area in the reference frame, segment by segment.
#[derive(Clone, Debug, Default)]
pub struct CompressionMonitor {
    segments: std::collections::VecDeque<Segment>,
    dropped: u64,
    /// The segment with the smallest ratio so far (kept when it is dropped from `segments`).
    most_compressed: Option<Segment>,
}

/// The exam's outcome at the end of a stream.
#[derive(Clone, Debug, PartialEq)]
pub struct CompressionSummary {
    /// Segments in stream order (the last [`MAX_SEGMENTS`]).
    pub segments: Vec<Segment>,
    pub segments_dropped: u64,
    /// The segment the top-level readout names: one the image showed shut if any, else the one
    /// with the smallest ratio, or the last segment when none has a ratio.
    pub named: Option<Segment>,
    /// Whether the vein closed fully in the named segment (so in any segment).
    pub vein_closed: bool,
}

impl CompressionMonitor {
    /// A new reference frame starts a segment: its vein area is 100 %.
    pub fn anchor(&mut self, frame: u64, vein_area: u64) {
        if self.segments.len() == MAX_SEGMENTS {
            self.segments.pop_front();
            self.dropped += 1;
        }
        self.segments.push_back(Segment {
            reference_frame: frame,
            frames: 0,
            reference_vein_area: (vein_area > 0).then_some(vein_area),
            min_ratio: None,
            contrast_closed_frame: None,
        });
    }

    /// Records that `frame`'s image showed the vein shut (the segment keeps the first such
    /// frame). Ignored before any reference, and in a segment without a vein.
    pub fn contrast_closed(&mut self, frame: u64) {
        if !self.wants_contrast() {
            return;
        }
        let Some(segment) = self.segments.back_mut() else {
            return;
        };
        segment.contrast_closed_frame = Some(frame);
        let segment = *segment;
        self.consider(segment);
    }

    /// Whether image evidence can still change the current segment's verdict: it has a vein
    /// and no frame has shown it shut yet.
    pub fn wants_contrast(&self) -> bool {
        self.segments
            .back()
            .is_some_and(|s| s.reference_vein_area.is_some() && s.contrast_closed_frame.is_none())
    }

    /// Keeps `segment` as the most compressed when it is that segment's update or ranks before
    /// the one kept: shut by image evidence first, then by the smallest ratio.
    fn consider(&mut self, segment: Segment) {
        let rank = |s: &Segment| {
            (
                s.contrast_closed_frame.is_none(),
                s.min_ratio.map_or(f64::INFINITY, |(m, _)| m),
            )
        };
        if self.most_compressed.is_none_or(|m| {
            m.reference_frame == segment.reference_frame
                || rank(&segment).partial_cmp(&rank(&m)) == Some(std::cmp::Ordering::Less)
        }) {
            self.most_compressed = Some(segment);
        }
    }

    /// The ratio of a frame against its segment's reference, `None` without a vein there (or
    /// before any reference).
    pub fn update(&mut self, frame: u64, vein_area: u64) -> Option<f64> {
        let segment = self.segments.back_mut()?;
        segment.frames += 1;
        let ratio = vein_area as f64 / segment.reference_vein_area? as f64;
        if segment.min_ratio.is_none_or(|(m, _)| ratio < m) {
            segment.min_ratio = Some((ratio, frame));
        }
        let segment = *segment;
        self.consider(segment);
        Some(ratio)
    }

    pub fn summary(&self, closure_threshold: f64) -> CompressionSummary {
        let named = self.most_compressed.or(self.segments.back().copied());
        CompressionSummary {
            segments: self.segments.iter().copied().collect(),
            segments_dropped: self.dropped,
            named,
            vein_closed: named.is_some_and(|s| s.vein_closed(closure_threshold)),
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
        c.anchor(1, 200);
        assert_eq!(c.update(1, 200), Some(1.0));
        assert_eq!(c.update(2, 100), Some(0.5));
        assert_eq!(c.update(3, 10), Some(0.05));
        assert_eq!(c.update(4, 150), Some(0.75));
        let s = c.summary(0.1);
        assert_eq!(s.segments.len(), 1);
        let named = s.named.unwrap();
        assert_eq!((named.reference_frame, named.frames), (1, 4));
        assert_eq!(named.reference_vein_area, Some(200));
        assert_eq!(named.min_ratio, Some((0.05, 3)));
        assert!(s.vein_closed);
        assert!(!c.summary(0.01).vein_closed);
    }

    #[test]
    fn each_segment_measures_against_its_own_reference() {
        let mut c = CompressionMonitor::default();
        c.anchor(0, 200);
        c.update(0, 200);
        assert_eq!(c.update(1, 40), Some(0.2));
        // Re-anchored on the compressed vein: 40 px is the new 100 %.
        c.anchor(2, 40);
        assert_eq!(c.update(2, 40), Some(1.0));
        assert_eq!(c.update(3, 30), Some(0.75));
        let s = c.summary(0.1);
        let [first, second] = s.segments[..] else {
            panic!("two segments: {:?}", s.segments)
        };
        assert_eq!(
            (
                first.reference_frame,
                first.frames,
                first.reference_vein_area,
                first.min_ratio
            ),
            (0, 2, Some(200), Some((0.2, 1)))
        );
        assert_eq!(
            (
                second.reference_frame,
                second.frames,
                second.reference_vein_area,
                second.min_ratio
            ),
            (2, 2, Some(40), Some((0.75, 3)))
        );
        // The top level names the most compressed segment, with its own reference area.
        assert_eq!(s.named, Some(first));
        assert!(!s.vein_closed);
        assert!(c.summary(0.2).vein_closed);
    }

    #[test]
    fn image_evidence_closes_the_vein_and_names_its_segment() {
        let mut c = CompressionMonitor::default();
        c.anchor(0, 200);
        c.update(0, 200);
        assert_eq!(c.update(1, 20), Some(0.1));
        // Re-anchored: this segment's vein stays at 25 % by area but the image shows it shut.
        c.anchor(2, 200);
        c.update(2, 200);
        c.update(3, 50);
        c.contrast_closed(3);
        c.contrast_closed(4);
        let s = c.summary(0.05);
        let named = s.named.unwrap();
        assert_eq!(named.reference_frame, 2);
        assert_eq!(named.contrast_closed_frame, Some(3), "the first such frame");
        assert!(named.vein_closed(0.05) && !named.closed_by_area(0.05));
        assert!(s.vein_closed);
        assert!(!s.segments[0].vein_closed(0.05));
    }

    #[test]
    fn image_evidence_needs_a_vein_in_the_reference() {
        let mut c = CompressionMonitor::default();
        c.contrast_closed(0);
        c.anchor(0, 0);
        c.update(0, 0);
        c.contrast_closed(1);
        assert!(!c.summary(0.05).vein_closed);
    }

    #[test]
    fn a_segment_without_a_vein_has_no_ratio_and_the_last_one_is_named() {
        let mut c = CompressionMonitor::default();
        c.anchor(0, 0);
        assert_eq!(c.update(0, 0), None);
        assert_eq!(c.update(1, 5), None);
        let s = c.summary(0.1);
        assert_eq!(s.named.unwrap().frames, 2);
        assert_eq!(s.named.unwrap().min_ratio, None);
        assert!(!s.vein_closed);
    }

    #[test]
    fn old_segments_are_counted_not_kept_and_the_most_compressed_stays_named() {
        let mut c = CompressionMonitor::default();
        c.anchor(0, 100);
        c.update(0, 5);
        for frame in 1..=MAX_SEGMENTS as u64 + 9 {
            c.anchor(frame, 100);
            c.update(frame, 90);
        }
        let s = c.summary(0.1);
        assert_eq!(s.segments.len(), MAX_SEGMENTS);
        assert_eq!(s.segments_dropped, 10);
        assert_eq!(s.named.unwrap().reference_frame, 0);
        assert!(s.vein_closed);
    }
}
