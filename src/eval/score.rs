//! Scores with DESIGN.md's protocol and their aggregation.
//!
//! Per frame and class: Dice, HD95 and HD (from [`crate::flow::metrics::score_class`]), in pixels
//! and, where the pixel spacing is known, in millimetres. A class absent from both maps is
//! skipped; absent from one only, it scores Dice 0 and an infinite distance, recorded as a
//! *missed* frame (`null` distances in JSON).
//!
//! Per sequence: the mean over its scored frames (distances over the frames where they are
//! finite; the missed frames are counted beside them). Over sequences: mean ± sample standard
//! deviation (n − 1; 0 for a single sequence) of the per-sequence means, the paper's Table 1
//! shape. "overall" averages the classes scored in a frame, then goes on like a class.
//!
//! Closed vessels (as models/train/evaluate.py reports them): a frame is *closed* for a class
//! when its true area is below [`CLOSED_FRACTION`] of the class's area in the reference frame's
//! mask (a vein pressed shut by the probe). Closed frames are scored like any other, and each
//! class also reports its *open-frame Dice* (the mean over the other frames; with no reference
//! area every frame is open) and, over its closed frames, the mean predicted and true areas as
//! fractions of the reference area. Over sequences: the open-frame Dice as mean ± std over the
//! sequences that have open frames; the closed frames counted, and their areas averaged over the
//! sequences that have any (the mean of the per-sequence means). "overall" has neither.

use crate::flow::metrics::{score_class, ClassScore};
use crate::flow::LabelMap;
use serde::{Deserialize, Serialize};

/// A frame whose true area of a class is below this fraction of the class's area in the
/// reference frame's mask is *closed* for that class. On the phantom the probe presses the vein
/// shut; its ground truth then keeps only a sub-pixel sliver that no flow short of the exact
/// deformation reproduces, so the protocol's Dice there says little about tracking quality.
/// Such frames are still scored; the open-frame Dice and the closed-frame areas are reported
/// beside the protocol's numbers. The same value as `CLOSED_FRACTION` in
/// models/train/evaluate.py, so both evaluators split the frames alike.
pub const CLOSED_FRACTION: f64 = 0.1;

/// Whether a frame whose truth covers `truth_area` pixels of a class is closed for it, given the
/// class's `reference_area` (pixels in the reference frame's mask; 0: never closed).
pub fn is_closed(truth_area: usize, reference_area: usize) -> bool {
    reference_area > 0 && (truth_area as f64) < CLOSED_FRACTION * reference_area as f64
}

/// Pixels per label of a map, background (0) excluded, in label order.
pub fn label_areas(map: &LabelMap) -> Vec<(u8, usize)> {
    let mut counts = [0usize; 256];
    for &v in &map.data {
        counts[v as usize] += 1;
    }
    (1..=255u8)
        .filter(|&l| counts[l as usize] > 0)
        .map(|l| (l, counts[l as usize]))
        .collect()
}

/// One class in one frame. `None` distances are infinite (class missing from one map).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClassFrame {
    pub label: u8,
    pub dice: f64,
    pub hd95: Option<f64>,
    pub hd: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub hd95_mm: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub hd_mm: Option<f64>,
    /// Pixels of the class in the truth (0 in reports written before areas were recorded).
    #[serde(default)]
    pub truth_area: usize,
    /// Pixels of the class in the prediction (0 in reports written before areas were recorded).
    #[serde(default)]
    pub predicted_area: usize,
}

/// All scored classes of one annotated frame.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FrameScore {
    /// File name of the frame.
    pub frame: String,
    /// Position in the sequence counted from the reference (the reference is 0).
    pub position: usize,
    pub classes: Vec<ClassFrame>,
}

impl FrameScore {
    /// Mean Dice over the classes scored in this frame (`None` if none was).
    pub fn overall_dice(&self) -> Option<f64> {
        mean(self.classes.iter().map(|c| c.dice))
    }
}

fn finite(v: f64) -> Option<f64> {
    v.is_finite().then_some(v)
}

/// Scores `labels` of `prediction` against `truth`. `spacing_mm` adds millimetre distances.
pub fn score_frame(
    frame: &str,
    position: usize,
    truth: &LabelMap,
    prediction: &LabelMap,
    labels: &[u8],
    spacing_mm: Option<(f64, f64)>,
) -> FrameScore {
    let classes = labels
        .iter()
        .filter_map(|&label| {
            let s: ClassScore = score_class(truth, prediction, label)?;
            let (hd95_mm, hd_mm) = match spacing_mm {
                None => (None, None),
                Some((sx, sy)) if (sx - sy).abs() <= 1e-9 * sx.max(sy) => {
                    (finite(s.hd95 * sx), finite(s.hd * sx))
                }
                Some((sx, sy)) => {
                    let (hd95, hd) = hausdorff_anisotropic(truth, prediction, label, sx, sy);
                    (finite(hd95), finite(hd))
                }
            };
            Some(ClassFrame {
                label,
                dice: s.dice,
                hd95: finite(s.hd95),
                hd: finite(s.hd),
                hd95_mm,
                hd_mm,
                truth_area: s.truth_area,
                predicted_area: s.predicted_area,
            })
        })
        .collect();
    FrameScore {
        frame: frame.to_string(),
        position,
        classes,
    }
}

/// Boundary pixels (4-neighbourhood, image edge included) of `label`, as metrics.rs defines them.
fn boundary_points(map: &LabelMap, label: u8) -> Vec<(usize, usize)> {
    let (w, h) = (map.width, map.height);
    let inside = |x: usize, y: usize| map.data[y * w + x] == label;
    let mut out = Vec::new();
    for y in 0..h {
        for x in 0..w {
            if !inside(x, y) {
                continue;
            }
            let edge = x == 0 || y == 0 || x + 1 == w || y + 1 == h;
            if edge
                || !inside(x - 1, y)
                || !inside(x + 1, y)
                || !inside(x, y - 1)
                || !inside(x, y + 1)
            {
                out.push((x, y));
            }
        }
    }
    out
}

/// (HD95, HD) in millimetres with anisotropic spacing, by brute force over boundary pixels (the
/// same boundary-to-boundary distances as metrics.rs, with scaled axes). Infinite when the class
/// is missing from one map.
pub fn hausdorff_anisotropic(
    truth: &LabelMap,
    prediction: &LabelMap,
    label: u8,
    sx: f64,
    sy: f64,
) -> (f64, f64) {
    let a = boundary_points(truth, label);
    let b = boundary_points(prediction, label);
    if a.is_empty() || b.is_empty() {
        return (f64::INFINITY, f64::INFINITY);
    }
    let directed = |from: &[(usize, usize)], to: &[(usize, usize)]| {
        let mut d: Vec<f64> = from
            .iter()
            .map(|&(x, y)| {
                to.iter()
                    .map(|&(u, v)| {
                        let dx = (x as f64 - u as f64) * sx;
                        let dy = (y as f64 - v as f64) * sy;
                        dx * dx + dy * dy
                    })
                    .fold(f64::INFINITY, f64::min)
                    .sqrt()
            })
            .collect();
        d.sort_by(|p, q| p.total_cmp(q));
        d
    };
    let (da, db) = (directed(&a, &b), directed(&b, &a));
    let p95 = |d: &[f64]| {
        let rank = (0.95 * d.len() as f64).ceil() as usize;
        d[rank.clamp(1, d.len()) - 1]
    };
    (
        p95(&da).max(p95(&db)),
        da[da.len() - 1].max(db[db.len() - 1]),
    )
}

/// Mean of the values (`None` when there are none).
pub fn mean(values: impl IntoIterator<Item = f64>) -> Option<f64> {
    let (mut sum, mut n) = (0.0, 0usize);
    for v in values {
        sum += v;
        n += 1;
    }
    (n > 0).then(|| sum / n as f64)
}

/// Mean, sample standard deviation and count.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Stat {
    pub mean: f64,
    pub std: f64,
    pub n: usize,
}

impl Stat {
    pub fn of(values: &[f64]) -> Option<Self> {
        let m = mean(values.iter().copied())?;
        let n = values.len();
        let std = if n > 1 {
            (values.iter().map(|v| (v - m).powi(2)).sum::<f64>() / (n - 1) as f64).sqrt()
        } else {
            0.0
        };
        Some(Self { mean: m, std, n })
    }
}

/// One class (or "overall") over the frames of one sequence: means over frames.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClassSummary {
    /// Label id; `None` for "overall".
    pub label: Option<u8>,
    pub name: String,
    /// Frames where the class was scored.
    pub frames: usize,
    /// Frames where it was missing from the prediction or the truth (Dice 0, infinite HD).
    pub missed: usize,
    pub dice: f64,
    pub hd95: Option<f64>,
    pub hd: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub hd95_mm: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub hd_mm: Option<f64>,
    /// Pixels of the class in the reference frame's mask (0: unknown or absent, so no frame is
    /// closed; always 0 for "overall").
    #[serde(skip_serializing_if = "is_zero", default)]
    pub reference_area: usize,
    /// Mean Dice over the open frames (see [`CLOSED_FRACTION`]); `None` when every frame was
    /// closed, for "overall", and in reports written before it was recorded.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub dice_open: Option<f64>,
    /// The closed frames; `None` when there were none, and for "overall".
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub closed: Option<ClosedFrames>,
}

fn is_zero(v: &usize) -> bool {
    *v == 0
}

/// A class's closed frames in one sequence (see [`CLOSED_FRACTION`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClosedFrames {
    /// How many scored frames were closed.
    pub frames: usize,
    /// Mean predicted area over those frames, as a fraction of the reference area.
    pub predicted_area: f64,
    /// Mean true area over those frames, as a fraction of the reference area.
    pub true_area: f64,
}

/// A class's closed frames over sequences: areas averaged over the sequences that have closed
/// frames (each sequence's mean counts once, as models/train/evaluate.py aggregates).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClosedStats {
    /// Sequences with at least one closed frame.
    pub sequences: usize,
    /// Closed frames in all sequences.
    pub frames: usize,
    /// Mean over those sequences of their mean predicted area (fraction of the reference area).
    pub predicted_area: f64,
    /// Mean over those sequences of their mean true area (fraction of the reference area).
    pub true_area: f64,
}

/// A sequence's scores: per frame and summarised per class.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SequenceScores {
    pub name: String,
    /// File name of the reference frame.
    pub reference: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub spacing_mm: Option<(f64, f64)>,
    pub frames: Vec<FrameScore>,
    /// Per class in label order, then "overall" last (absent when no frame was scored).
    pub classes: Vec<ClassSummary>,
}

/// Summarises a sequence's frames. `reference_areas` are the pixels per label of the reference
/// frame's mask at the scored masks' size ([`label_areas`]; empty when it has none: then every
/// frame is open). `names(label)` names the classes.
pub fn summarise_sequence(
    name: &str,
    reference: &str,
    spacing_mm: Option<(f64, f64)>,
    reference_areas: &[(u8, usize)],
    frames: Vec<FrameScore>,
    names: &dyn Fn(u8) -> String,
) -> SequenceScores {
    let mut labels: Vec<u8> = frames
        .iter()
        .flat_map(|f| f.classes.iter().map(|c| c.label))
        .collect();
    labels.sort_unstable();
    labels.dedup();
    let summarise = |label: Option<u8>, name: String, cells: Vec<ClassFrame>| ClassSummary {
        label,
        name,
        frames: cells.len(),
        missed: cells.iter().filter(|c| c.hd.is_none()).count(),
        dice: mean(cells.iter().map(|c| c.dice)).unwrap_or(0.0),
        hd95: mean(cells.iter().filter_map(|c| c.hd95)),
        hd: mean(cells.iter().filter_map(|c| c.hd)),
        hd95_mm: mean(cells.iter().filter_map(|c| c.hd95_mm)),
        hd_mm: mean(cells.iter().filter_map(|c| c.hd_mm)),
        reference_area: 0,
        dice_open: None,
        closed: None,
    };
    let mut classes: Vec<ClassSummary> = labels
        .iter()
        .map(|&l| {
            let cells: Vec<ClassFrame> = frames
                .iter()
                .flat_map(|f| f.classes.iter().filter(|c| c.label == l).cloned())
                .collect();
            let reference_area = reference_areas
                .iter()
                .find(|(label, _)| *label == l)
                .map_or(0, |&(_, a)| a);
            let (shut, open): (Vec<&ClassFrame>, Vec<&ClassFrame>) = cells
                .iter()
                .partition(|c| is_closed(c.truth_area, reference_area));
            let fraction = |a: usize| a as f64 / reference_area as f64;
            let closed = (!shut.is_empty()).then(|| ClosedFrames {
                frames: shut.len(),
                predicted_area: mean(shut.iter().map(|c| fraction(c.predicted_area)))
                    .unwrap_or(0.0),
                true_area: mean(shut.iter().map(|c| fraction(c.truth_area))).unwrap_or(0.0),
            });
            ClassSummary {
                reference_area,
                dice_open: mean(open.iter().map(|c| c.dice)),
                closed,
                ..summarise(Some(l), names(l), cells)
            }
        })
        .collect();
    // Overall: per frame, the mean over its scored classes (distances over the finite ones; a
    // frame counts as missed when any class was).
    let overall: Vec<ClassFrame> = frames
        .iter()
        .filter(|f| !f.classes.is_empty())
        .map(|f| {
            let any_missed = f.classes.iter().any(|c| c.hd.is_none());
            let m = |get: &dyn Fn(&ClassFrame) -> Option<f64>| {
                if any_missed {
                    None
                } else {
                    mean(f.classes.iter().filter_map(get))
                }
            };
            ClassFrame {
                label: 0,
                dice: f.overall_dice().unwrap_or(0.0),
                hd95: m(&|c| c.hd95),
                hd: m(&|c| c.hd),
                hd95_mm: m(&|c| c.hd95_mm),
                hd_mm: m(&|c| c.hd_mm),
                truth_area: 0,
                predicted_area: 0,
            }
        })
        .collect();
    if !overall.is_empty() {
        classes.push(summarise(None, "overall".into(), overall));
    }
    SequenceScores {
        name: name.to_string(),
        reference: reference.to_string(),
        spacing_mm,
        frames,
        classes,
    }
}

/// One class (or "overall") over sequences: mean ± std of the per-sequence means.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClassStats {
    pub label: Option<u8>,
    pub name: String,
    pub sequences: usize,
    pub frames: usize,
    pub missed: usize,
    pub dice: Stat,
    pub hd95: Option<Stat>,
    pub hd: Option<Stat>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub hd95_mm: Option<Stat>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub hd_mm: Option<Stat>,
    /// Open-frame Dice over the sequences that have open frames; `None` for "overall" and in
    /// reports written before it was recorded.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub dice_open: Option<Stat>,
    /// The closed frames; `None` when no sequence had any, and for "overall".
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub closed: Option<ClosedStats>,
}

/// Mean ± std over sequences, per class in label order, "overall" last.
pub fn summarise_dataset(sequences: &[SequenceScores]) -> Vec<ClassStats> {
    let mut keys: Vec<(Option<u8>, String)> = Vec::new();
    for s in sequences {
        for c in &s.classes {
            if !keys.iter().any(|(l, _)| *l == c.label) {
                keys.push((c.label, c.name.clone()));
            }
        }
    }
    // Label order with "overall" (None) last.
    keys.sort_by_key(|(l, _)| l.map_or(256, |v| v as u16));
    keys.into_iter()
        .filter_map(|(label, name)| {
            let rows: Vec<&ClassSummary> = sequences
                .iter()
                .filter_map(|s| s.classes.iter().find(|c| c.label == label))
                .collect();
            let stat = |get: &dyn Fn(&ClassSummary) -> Option<f64>| {
                Stat::of(&rows.iter().filter_map(|r| get(r)).collect::<Vec<_>>())
            };
            let shut: Vec<&ClosedFrames> = rows.iter().filter_map(|r| r.closed.as_ref()).collect();
            let closed = (!shut.is_empty()).then(|| ClosedStats {
                sequences: shut.len(),
                frames: shut.iter().map(|c| c.frames).sum(),
                predicted_area: mean(shut.iter().map(|c| c.predicted_area)).unwrap_or(0.0),
                true_area: mean(shut.iter().map(|c| c.true_area)).unwrap_or(0.0),
            });
            Some(ClassStats {
                label,
                name,
                sequences: rows.len(),
                frames: rows.iter().map(|r| r.frames).sum(),
                missed: rows.iter().map(|r| r.missed).sum(),
                dice: stat(&|r| Some(r.dice))?,
                hd95: stat(&|r| r.hd95),
                hd: stat(&|r| r.hd),
                hd95_mm: stat(&|r| r.hd95_mm),
                hd_mm: stat(&|r| r.hd_mm),
                dice_open: stat(&|r| r.dice_open),
                closed,
            })
        })
        .collect()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A w x h map with label `l` in the rw x rh rectangle at (x0, y0) (the evaluation tests' masks).
    pub(crate) fn rect(
        w: usize,
        h: usize,
        x0: usize,
        y0: usize,
        rw: usize,
        rh: usize,
        l: u8,
    ) -> LabelMap {
        let mut m = LabelMap::new(w, h);
        for y in y0..y0 + rh {
            for x in x0..x0 + rw {
                m.data[y * w + x] = l;
            }
        }
        m
    }

    fn names(l: u8) -> String {
        crate::eval::dataset::label_name(&Default::default(), l)
    }

    #[test]
    fn identical_and_shifted_frames() {
        let a = rect(40, 30, 5, 5, 10, 8, 2);
        let s = score_frame("f", 1, &a, &a, &[1, 2], Some((0.5, 0.5)));
        assert_eq!(s.classes.len(), 1, "vein absent from both is skipped");
        let c = &s.classes[0];
        assert_eq!(
            (c.dice, c.hd, c.hd95, c.hd_mm),
            (1.0, Some(0.0), Some(0.0), Some(0.0))
        );
        let b = rect(40, 30, 9, 8, 10, 8, 2);
        let c = &score_frame("f", 1, &a, &b, &[2], Some((0.5, 0.5))).classes[0];
        assert_eq!(c.hd, Some(5.0));
        assert_eq!(c.hd_mm, Some(2.5));
        // Overlap 6x5 = 30 pixels of two 10x8 rectangles.
        assert!((c.dice - 2.0 * 30.0 / 160.0).abs() < 1e-12);
    }

    #[test]
    fn anisotropic_spacing_scales_each_axis() {
        let a = rect(40, 30, 5, 5, 10, 8, 1);
        let b = rect(40, 30, 9, 8, 10, 8, 1);
        // Isotropic brute force agrees with metrics.rs.
        let (p95, hd) = hausdorff_anisotropic(&a, &b, 1, 1.0, 1.0);
        let s = score_class(&a, &b, 1).unwrap();
        assert_eq!((p95, hd), (s.hd95, s.hd));
        let (_, hd) = hausdorff_anisotropic(&a, &b, 1, 0.1, 0.2);
        assert!((hd - (0.4f64.powi(2) + 0.6f64.powi(2)).sqrt()).abs() < 1e-12);
        let c = &score_frame("f", 1, &a, &b, &[1], Some((0.1, 0.2))).classes[0];
        assert!((c.hd_mm.unwrap() - hd).abs() < 1e-12);
    }

    #[test]
    fn missed_class_scores_zero_and_is_counted() {
        let a = rect(20, 20, 2, 2, 5, 5, 1);
        let empty = LabelMap::new(20, 20);
        let f1 = score_frame("1", 1, &a, &a, &[1], None);
        let f2 = score_frame("2", 2, &a, &empty, &[1], None);
        assert_eq!(f2.classes[0].hd, None);
        let s = summarise_sequence("s", "0", None, &label_areas(&a), vec![f1, f2], &names);
        let vein = &s.classes[0];
        assert_eq!(
            (vein.name.as_str(), vein.frames, vein.missed),
            ("vein", 2, 1)
        );
        assert_eq!(vein.dice, 0.5);
        assert_eq!(vein.hd, Some(0.0), "distances average the finite frames");
        assert_eq!(s.classes[1].name, "overall");
    }

    #[test]
    fn dataset_mean_and_sample_std() {
        let a = rect(20, 20, 2, 2, 5, 5, 2);
        let b = rect(20, 20, 3, 2, 5, 5, 2);
        let s1 = summarise_sequence(
            "1",
            "0",
            None,
            &label_areas(&a),
            vec![score_frame("1", 1, &a, &a, &[2], None)],
            &names,
        );
        let s2 = summarise_sequence(
            "2",
            "0",
            None,
            &label_areas(&a),
            vec![score_frame("1", 1, &a, &b, &[2], None)],
            &names,
        );
        let stats = summarise_dataset(&[s1, s2]);
        assert_eq!(stats.len(), 2);
        assert_eq!(stats[0].name, "artery");
        assert_eq!(stats[1].name, "overall");
        let d = stats[0].dice;
        assert_eq!(d.n, 2);
        assert!((d.mean - 0.9).abs() < 1e-12);
        // Values 1.0 and 0.8: sample std = sqrt(0.02 + 0.02) = 0.1414...
        assert!((d.std - 0.02f64.sqrt()).abs() < 1e-12);
        assert_eq!(stats[0].hd.unwrap().mean, 0.5);
        assert_eq!(Stat::of(&[3.0]).unwrap().std, 0.0);
        assert!(Stat::of(&[]).is_none());
    }

    /// A vein of 10x10 = 100 px in the reference; `truth` and `prediction` are its later masks.
    fn vein_frame(position: usize, truth: &LabelMap, prediction: &LabelMap) -> FrameScore {
        score_frame(
            &position.to_string(),
            position,
            truth,
            prediction,
            &[1, 2],
            None,
        )
    }

    #[test]
    fn closed_frames_are_left_out_of_open_dice_and_report_areas() {
        let reference = rect(40, 30, 5, 5, 10, 10, 1);
        let mut artery_ref = reference.clone();
        for y in 20..24 {
            artery_ref.data[y * 40 + 25..y * 40 + 29].fill(2);
        }
        let areas = label_areas(&artery_ref);
        assert_eq!(areas, vec![(1, 100), (2, 16)]);
        // Frame 1: open, perfect. Frame 2: truth 3x3 = 9 px < 10 % of 100: closed; prediction
        // 5x5 = 25 px around it (Dice 18/34). Frame 3: open, 8 of 10 rows overlap (Dice 0.8).
        // Frame 4: truth 2x5 = 10 px, exactly 10 %: open (closed is strictly below).
        let shifted = rect(40, 30, 5, 7, 10, 10, 1);
        let sliver = rect(40, 30, 6, 6, 3, 3, 1);
        let squeezed = rect(40, 30, 5, 5, 5, 5, 1);
        let ten = rect(40, 30, 5, 5, 2, 5, 1);
        let frames = vec![
            vein_frame(1, &reference, &reference),
            vein_frame(2, &sliver, &squeezed),
            vein_frame(3, &reference, &shifted),
            vein_frame(4, &ten, &ten),
        ];
        let c = &frames[1].classes[0];
        assert_eq!((c.truth_area, c.predicted_area), (9, 25));
        assert!(is_closed(9, 100) && !is_closed(10, 100) && !is_closed(0, 0));
        let s = summarise_sequence("s", "0", None, &areas, frames, &names);
        let vein = &s.classes[0];
        assert_eq!((vein.name.as_str(), vein.frames), ("vein", 4));
        assert_eq!(vein.reference_area, 100);
        let closed_dice = 18.0 / 34.0;
        assert!((vein.dice - (1.0 + closed_dice + 0.8 + 1.0) / 4.0).abs() < 1e-12);
        let open = vein.dice_open.unwrap();
        assert!((open - (1.0 + 0.8 + 1.0) / 3.0).abs() < 1e-12, "{open}");
        assert_eq!(
            vein.closed,
            Some(ClosedFrames {
                frames: 1,
                predicted_area: 0.25,
                true_area: 0.09
            })
        );
        // "overall" reports neither.
        let overall = s.classes.last().unwrap();
        assert_eq!(overall.name, "overall");
        assert_eq!((overall.dice_open, &overall.closed), (None, &None));
        assert_eq!(overall.reference_area, 0);
    }

    #[test]
    fn without_reference_area_every_frame_is_open() {
        let reference = rect(40, 30, 5, 5, 10, 10, 1);
        let sliver = rect(40, 30, 6, 6, 3, 3, 1);
        let frames = vec![
            vein_frame(1, &reference, &reference),
            vein_frame(2, &sliver, &reference),
        ];
        // No reference mask at all, or one without the class.
        for areas in [vec![], vec![(2u8, 16usize)]] {
            let s = summarise_sequence("s", "0", None, &areas, frames.clone(), &names);
            let vein = &s.classes[0];
            assert_eq!(vein.closed, None);
            assert_eq!(vein.dice_open, Some(vein.dice));
        }
    }

    #[test]
    fn dataset_aggregates_open_dice_and_closed_areas_per_sequence() {
        let reference = rect(40, 30, 5, 5, 10, 10, 1);
        let areas = label_areas(&reference);
        let shifted = rect(40, 30, 5, 7, 10, 10, 1);
        let sliver = rect(40, 30, 6, 6, 3, 3, 1);
        let squeezed = rect(40, 30, 5, 5, 5, 5, 1);
        let empty = LabelMap::new(40, 30);
        let seq = |frames| summarise_sequence("s", "0", None, &areas, frames, &names);
        // s1: open (Dice 1) and closed (predicted 25 %, truth 9 %).
        let s1 = seq(vec![
            vein_frame(1, &reference, &reference),
            vein_frame(2, &sliver, &squeezed),
        ]);
        // s2: closed only, predicted 0 % (missed) and 25 %: no open Dice, mean predicted 12.5 %.
        let s2 = seq(vec![
            vein_frame(1, &sliver, &empty),
            vein_frame(2, &sliver, &squeezed),
        ]);
        assert_eq!(s2.classes[0].dice_open, None);
        assert_eq!(s2.classes[0].closed.as_ref().unwrap().predicted_area, 0.125);
        // s3: open only (Dice 0.8).
        let s3 = seq(vec![vein_frame(1, &reference, &shifted)]);
        assert_eq!(s3.classes[0].closed, None);
        let stats = summarise_dataset(&[s1, s2, s3]);
        let vein = &stats[0];
        assert_eq!(
            (vein.name.as_str(), vein.sequences, vein.frames),
            ("vein", 3, 5)
        );
        let open = vein.dice_open.unwrap();
        assert_eq!(open.n, 2, "s2 has no open frame");
        assert!((open.mean - 0.9).abs() < 1e-12);
        assert!((open.std - 0.02f64.sqrt()).abs() < 1e-12);
        let closed = vein.closed.as_ref().unwrap();
        assert_eq!((closed.sequences, closed.frames), (2, 3));
        // The mean of the per-sequence means (25 % and 12.5 %), not over the 3 frames (16.7 %).
        assert!((closed.predicted_area - 0.1875).abs() < 1e-12);
        assert!((closed.true_area - 0.09).abs() < 1e-12);
        let overall = stats.last().unwrap();
        assert_eq!(overall.name, "overall");
        assert_eq!((overall.dice_open, &overall.closed), (None, &None));
        // Nothing closes: no closed stats, open Dice = Dice.
        let stats = summarise_dataset(&[seq(vec![vein_frame(1, &reference, &shifted)])]);
        assert_eq!(stats[0].closed, None);
        assert_eq!(stats[0].dice_open, Some(stats[0].dice));
    }
}
