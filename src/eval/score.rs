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

use crate::flow::metrics::{score_class, ClassScore};
use crate::flow::LabelMap;
use serde::{Deserialize, Serialize};

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

/// Summarises a sequence's frames. `names(label)` names the classes.
pub fn summarise_sequence(
    name: &str,
    reference: &str,
    spacing_mm: Option<(f64, f64)>,
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
    };
    let mut classes: Vec<ClassSummary> = labels
        .iter()
        .map(|&l| {
            let cells = frames
                .iter()
                .flat_map(|f| f.classes.iter().filter(|c| c.label == l).cloned())
                .collect();
            summarise(Some(l), names(l), cells)
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
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rect(w: usize, h: usize, x0: usize, y0: usize, rw: usize, rh: usize, l: u8) -> LabelMap {
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
        let s = summarise_sequence("s", "0", None, vec![f1, f2], &names);
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
            vec![score_frame("1", 1, &a, &a, &[2], None)],
            &names,
        );
        let s2 = summarise_sequence(
            "2",
            "0",
            None,
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
}
