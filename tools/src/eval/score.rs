//! Scores with the evaluation protocol (docs/evaluation.md) and their aggregation.
//!
//! Per frame and class: Dice, HD95 and HD (from [`gstpddflow::flow::metrics::score_class`]), in pixels
//! and, where the pixel spacing is known, in millimetres. A class absent from both maps is
//! skipped; absent from one only, it scores Dice 0 and an infinite distance, recorded as a
//! *missed* frame (`null` distances in JSON).
//!
//! Per sequence: the mean over its scored frames (distances over the frames where they are
//! finite; the missed frames are counted beside them). Over sequences: mean ± sample standard
//! deviation (n − 1; 0 for a single sequence) of the per-sequence means, the paper's Table 1
//! shape. "overall" averages the classes scored in a frame, then goes on like a class.
//!
//! Closed vessels (as models/train/pddflow_train/evaluate.py reports them): a frame is *closed* for
//! a class when its true area is below [`CLOSED_FRACTION`] of the class's area in the reference
//! frame's mask (a vein pressed shut by the probe). Closed frames are scored like any other, and
//! each class also reports its *open-frame Dice* (the mean over the other frames; with no reference
//! area every frame is open) and, over its closed frames, the mean predicted and true areas as
//! fractions of the reference area. Over sequences: the open-frame Dice as mean ± std over the
//! sequences that have open frames; the closed frames counted, and their areas averaged over the
//! sequences that have any (the mean of the per-sequence means). "overall" has neither.
//!
//! How propagation holds (issue: smearing, islands, drift, confidence): per class and "overall",
//! the mean Dice over the first and the last scored frames ([`window_length`]: 100 each from
//! 200 frames on, else a third each) and their difference, the *drift*; the median and max of
//! predicted over true area over the frames whose truth has the class ("overall": all classes'
//! pixels together; frames without true area are skipped), *shrinking* when the median is below
//! 1; and the *extra regions*, per frame the 4-connected regions of the predicted class beyond
//! the truth's (floored at 0; "overall" sums the classes): mean, max and the share of frames
//! with any. Per sequence and pooled over the dataset, the Spearman rank correlation (average
//! ranks for ties) between the element's per-frame tracking confidence and the frame's overall
//! Dice, and over sequences the mean of the per-sequence values of sequences with at least
//! [`MIN_CORRELATION_FRAMES`] frames. Over sequences: windows as mean ± std, area ratio as the
//! mean of the medians and the largest ratio, extra regions as the mean of the means, the
//! largest count and the share of all frames.
//!
//! The compression exam's verdict (issue: the readout holds): per sequence with a vein in the
//! reference mask, whether the vein truly closed (its smallest true area over the scored frames
//! at most [`TRUE_CLOSED_RATIO`] of the reference's) and whether the method said so: the
//! element's `vein-closed` from its `pddflow-summary` message, or for predictions from files the
//! area rule alone (smallest predicted ratio at most [`AREA_CLOSURE_THRESHOLD`]). Over
//! sequences: how many verdicts were right, among the closing sequences and the others.

use gstpddflow::flow::labels::VEIN;
use gstpddflow::flow::metrics::{score_class, ClassScore};
use gstpddflow::flow::LabelMap;
use serde::{Deserialize, Serialize};

/// A frame whose true area of a class is below this fraction of the class's area in the
/// reference frame's mask is *closed* for that class. On the phantom the probe presses the vein
/// shut; its ground truth then keeps only a sub-pixel sliver that no flow short of the exact
/// deformation reproduces, so the protocol's Dice there says little about tracking quality.
/// Such frames are still scored; the open-frame Dice and the closed-frame areas are reported
/// beside the protocol's numbers. The same value as `CLOSED_FRACTION` in
/// models/train/pddflow_train/evaluate.py, so both evaluators split the frames alike.
pub const CLOSED_FRACTION: f64 = 0.1;

/// Whether a frame whose truth covers `truth_area` pixels of a class is closed for it, given the
/// class's `reference_area` (pixels in the reference frame's mask; 0: never closed).
pub fn is_closed(truth_area: usize, reference_area: usize) -> bool {
    reference_area > 0 && (truth_area as f64) < CLOSED_FRACTION * reference_area as f64
}

/// A vein whose true area falls to this fraction of its reference area closed (the issue's
/// definition of a closing sequence).
pub const TRUE_CLOSED_RATIO: f64 = 0.05;

/// The element's default `closure-threshold`: the area rule applied to predictions from files.
pub const AREA_CLOSURE_THRESHOLD: f64 = 0.1;

/// A sequence's vein-closed verdict against the truth.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct VeinVerdict {
    /// Smallest true vein area over the scored frames, as a fraction of the reference's.
    pub true_min_ratio: f64,
    /// Smallest predicted vein area, likewise.
    pub predicted_min_ratio: f64,
    /// The element's verdict (`None` for predictions scored from files).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub element_closed: Option<bool>,
}

impl VeinVerdict {
    /// The verdict of a sequence whose reference has `reference_area` vein pixels; `None`
    /// without a vein there or without scored frames.
    pub fn of(frames: &[FrameScore], reference_area: usize) -> Option<Self> {
        if reference_area == 0 || frames.is_empty() {
            return None;
        }
        let ratio = |area: &dyn Fn(&ClassFrame) -> usize| {
            frames
                .iter()
                .map(|f| {
                    f.classes.iter().find(|c| c.label == VEIN).map_or(0, area) as f64
                        / reference_area as f64
                })
                .fold(f64::INFINITY, f64::min)
        };
        Some(Self {
            true_min_ratio: ratio(&|c| c.truth_area),
            predicted_min_ratio: ratio(&|c| c.predicted_area),
            element_closed: None,
        })
    }

    pub fn truly_closed(&self) -> bool {
        self.true_min_ratio <= TRUE_CLOSED_RATIO
    }

    /// What the method said: the element's verdict, else the area rule.
    pub fn said_closed(&self) -> bool {
        self.element_closed
            .unwrap_or(self.predicted_min_ratio <= AREA_CLOSURE_THRESHOLD)
    }

    pub fn right(&self) -> bool {
        self.truly_closed() == self.said_closed()
    }
}

/// Right verdicts over a dataset's sequences with a vein, split by the truth.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct VerdictStats {
    pub closing: usize,
    pub closing_right: usize,
    pub other: usize,
    pub other_right: usize,
}

impl VerdictStats {
    /// `None` when no sequence has a verdict.
    pub fn of(sequences: &[SequenceScores]) -> Option<Self> {
        let mut stats = Self::default();
        for v in sequences.iter().filter_map(|s| s.vein_verdict) {
            if v.truly_closed() {
                stats.closing += 1;
                stats.closing_right += usize::from(v.right());
            } else {
                stats.other += 1;
                stats.other_right += usize::from(v.right());
            }
        }
        (stats.closing + stats.other > 0).then_some(stats)
    }
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
    /// 4-connected regions of the class in the truth (`None` in reports written before regions
    /// were counted).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub truth_regions: Option<usize>,
    /// 4-connected regions of the class in the prediction (`None` as for `truth_regions`).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub predicted_regions: Option<usize>,
}

impl ClassFrame {
    /// Predicted over true area; `None` when the truth lacks the class (or areas were not
    /// recorded).
    pub fn area_ratio(&self) -> Option<f64> {
        (self.truth_area > 0).then(|| self.predicted_area as f64 / self.truth_area as f64)
    }

    /// Predicted regions beyond the truth's (0 when there are no more); `None` when not counted.
    pub fn extra_regions(&self) -> Option<usize> {
        Some(self.predicted_regions?.saturating_sub(self.truth_regions?))
    }
}

/// All scored classes of one annotated frame.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FrameScore {
    /// File name of the frame.
    pub frame: String,
    /// Position in the sequence counted from the reference (the reference is 0).
    pub position: usize,
    pub classes: Vec<ClassFrame>,
    /// The element's `tracking-confidence` for this frame (`None` for predictions scored from
    /// files, and when the element reported none).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub tracking_confidence: Option<f64>,
}

impl FrameScore {
    /// Mean Dice over the classes scored in this frame (`None` if none was).
    pub fn overall_dice(&self) -> Option<f64> {
        mean(self.classes.iter().map(|c| c.dice))
    }

    /// Extra regions summed over the scored classes (`None` when any class lacks its counts).
    pub fn extra_regions(&self) -> Option<usize> {
        self.classes.iter().map(ClassFrame::extra_regions).sum()
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
    let (truth_regions, predicted_regions) = (
        gstpddflow::flow::regions::find_regions(truth, None, 0),
        gstpddflow::flow::regions::find_regions(prediction, None, 0),
    );
    let regions = |all: &[gstpddflow::flow::regions::Region], label: u8| {
        Some(all.iter().filter(|r| r.label == label).count())
    };
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
                truth_regions: regions(&truth_regions, label),
                predicted_regions: regions(&predicted_regions, label),
            })
        })
        .collect();
    FrameScore {
        frame: frame.to_string(),
        position,
        classes,
        tracking_confidence: None,
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

/// Scored frames per Dice window once a sequence has at least twice as many (see
/// [`window_length`]).
pub const WINDOW_FRAMES: usize = 100;

/// Frames per Dice window for `n` scored frames: [`WINDOW_FRAMES`] from `2 × WINDOW_FRAMES`
/// frames on, else a third of them (rounded down, so the windows never overlap); 0 below 3.
pub fn window_length(n: usize) -> usize {
    if n >= 2 * WINDOW_FRAMES {
        WINDOW_FRAMES
    } else {
        n / 3
    }
}

/// Mean Dice over a run of consecutive scored frames.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Window {
    /// Position (from the reference) of its first frame.
    pub from: usize,
    /// Position of its last frame.
    pub to: usize,
    pub frames: usize,
    pub dice: f64,
}

/// Dice over the first and the last window of a sequence's scored frames.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct DiceWindows {
    pub first: Window,
    pub last: Window,
    /// `last.dice − first.dice`: negative when the masks drift off over the sequence.
    pub drift: f64,
}

fn window(points: &[(usize, f64)]) -> Option<Window> {
    Some(Window {
        from: points.first()?.0,
        to: points.last()?.0,
        frames: points.len(),
        dice: mean(points.iter().map(|p| p.1))?,
    })
}

/// The Dice windows of `(position, Dice)` points ([`window_length`] frames each, by position);
/// `None` with fewer than 3 points.
pub fn dice_windows(points: &[(usize, f64)]) -> Option<DiceWindows> {
    let mut points = points.to_vec();
    points.sort_by_key(|p| p.0);
    let k = window_length(points.len());
    if k == 0 {
        return None;
    }
    let first = window(&points[..k])?;
    let last = window(&points[points.len() - k..])?;
    Some(DiceWindows {
        first,
        last,
        drift: last.dice - first.dice,
    })
}

/// Median of the values (mean of the two middle ones for an even count); `None` when empty.
pub fn median(values: &[f64]) -> Option<f64> {
    let mut v = values.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(v[n / 2]),
        _ => Some((v[n / 2 - 1] + v[n / 2]) / 2.0),
    }
}

/// Predicted over true area of a class over the frames whose truth has it.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct AreaRatio {
    pub frames: usize,
    pub median: f64,
    pub max: f64,
    /// The median is below 1: the prediction shrinks rather than smears.
    pub shrinking: bool,
}

impl AreaRatio {
    /// Over the finite ratios; `None` when there are none.
    pub fn of(ratios: impl IntoIterator<Item = f64>) -> Option<Self> {
        let r: Vec<f64> = ratios.into_iter().filter(|v| v.is_finite()).collect();
        let median = median(&r)?;
        Some(Self {
            frames: r.len(),
            median,
            max: r.iter().copied().fold(f64::NEG_INFINITY, f64::max),
            shrinking: median < 1.0,
        })
    }
}

/// Predicted regions beyond the truth's per frame (see [`ClassFrame::extra_regions`]).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct ExtraRegions {
    pub frames: usize,
    pub mean: f64,
    pub max: usize,
    /// Share of the frames with at least one extra region (0–1).
    pub share: f64,
}

impl ExtraRegions {
    /// Over per-frame extra region counts; `None` when there are none.
    pub fn of(extras: &[usize]) -> Option<Self> {
        let n = extras.len();
        Some(Self {
            frames: n,
            mean: mean(extras.iter().map(|&e| e as f64))?,
            max: extras.iter().copied().max()?,
            share: extras.iter().filter(|&&e| e > 0).count() as f64 / n as f64,
        })
    }
}

/// Ranks from 1, ties given the mean of the ranks they span.
pub fn average_ranks(values: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|&a, &b| values[a].total_cmp(&values[b]));
    let mut ranks = vec![0.0; values.len()];
    let mut start = 0;
    while start < order.len() {
        let mut end = start + 1;
        while end < order.len() && values[order[end]] == values[order[start]] {
            end += 1;
        }
        // Ranks start + 1 ..= end share their mean.
        let rank = (start + 1 + end) as f64 / 2.0;
        for &i in &order[start..end] {
            ranks[i] = rank;
        }
        start = end;
    }
    ranks
}

/// Pearson correlation; `None` with fewer than 2 pairs or a constant side.
fn pearson(x: &[f64], y: &[f64]) -> Option<f64> {
    let (mx, my) = (mean(x.iter().copied())?, mean(y.iter().copied())?);
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for (a, b) in x.iter().zip(y) {
        sxy += (a - mx) * (b - my);
        sxx += (a - mx).powi(2);
        syy += (b - my).powi(2);
    }
    (x.len() >= 2 && sxx > 0.0 && syy > 0.0).then(|| sxy / (sxx * syy).sqrt())
}

/// A Spearman rank correlation and the number of pairs it is over.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct RankCorrelation {
    pub frames: usize,
    pub rho: f64,
}

/// Spearman's rank correlation of the finite pairs (Pearson on average ranks, so ties count
/// right); `None` with fewer than 2 pairs or when one side is constant.
pub fn spearman(pairs: &[(f64, f64)]) -> Option<RankCorrelation> {
    let (x, y): (Vec<f64>, Vec<f64>) = pairs
        .iter()
        .filter(|(a, b)| a.is_finite() && b.is_finite())
        .copied()
        .unzip();
    Some(RankCorrelation {
        frames: x.len(),
        rho: pearson(&average_ranks(&x), &average_ranks(&y))?,
    })
}

/// (tracking confidence, overall Dice) of the frames that have both.
fn confidence_dice_pairs(frames: &[FrameScore]) -> Vec<(f64, f64)> {
    frames
        .iter()
        .filter_map(|f| Some((f.tracking_confidence?, f.overall_dice()?)))
        .collect()
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
    /// Dice over the first and last scored frames (`None` below 3 frames and in older reports).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub windows: Option<DiceWindows>,
    /// Predicted over true area over the frames whose truth has the class ("overall": all
    /// classes' pixels together); `None` without such frames and in older reports.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub area_ratio: Option<AreaRatio>,
    /// Extra regions per frame ("overall": summed over the classes); `None` in older reports.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub extra_regions: Option<ExtraRegions>,
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
/// frames (each sequence's mean counts once, as models/train/pddflow_train/evaluate.py aggregates).
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
    /// Spearman correlation of the frames' tracking confidence with their overall Dice (`None`
    /// without confidences, e.g. for predictions scored from files).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub confidence_dice: Option<RankCorrelation>,
    /// The vein-closed verdict against the truth (`None` without a vein in the reference).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub vein_verdict: Option<VeinVerdict>,
}

/// One frame's part in a class summary.
struct Cell {
    position: usize,
    score: ClassFrame,
    extra_regions: Option<usize>,
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
    let summarise = |label: Option<u8>, name: String, cells: Vec<Cell>| ClassSummary {
        label,
        name,
        frames: cells.len(),
        missed: cells.iter().filter(|c| c.score.hd.is_none()).count(),
        dice: mean(cells.iter().map(|c| c.score.dice)).unwrap_or(0.0),
        hd95: mean(cells.iter().filter_map(|c| c.score.hd95)),
        hd: mean(cells.iter().filter_map(|c| c.score.hd)),
        hd95_mm: mean(cells.iter().filter_map(|c| c.score.hd95_mm)),
        hd_mm: mean(cells.iter().filter_map(|c| c.score.hd_mm)),
        reference_area: 0,
        dice_open: None,
        closed: None,
        windows: dice_windows(
            &cells
                .iter()
                .map(|c| (c.position, c.score.dice))
                .collect::<Vec<_>>(),
        ),
        area_ratio: AreaRatio::of(cells.iter().filter_map(|c| c.score.area_ratio())),
        extra_regions: ExtraRegions::of(
            &cells
                .iter()
                .filter_map(|c| c.extra_regions)
                .collect::<Vec<_>>(),
        ),
    };
    let mut classes: Vec<ClassSummary> = labels
        .iter()
        .map(|&l| {
            let cells: Vec<Cell> = frames
                .iter()
                .flat_map(|f| {
                    f.classes.iter().filter(|c| c.label == l).map(|c| Cell {
                        position: f.position,
                        score: c.clone(),
                        extra_regions: c.extra_regions(),
                    })
                })
                .collect();
            let reference_area = reference_areas
                .iter()
                .find(|(label, _)| *label == l)
                .map_or(0, |&(_, a)| a);
            let (shut, open): (Vec<&Cell>, Vec<&Cell>) = cells
                .iter()
                .partition(|c| is_closed(c.score.truth_area, reference_area));
            let fraction = |a: usize| a as f64 / reference_area as f64;
            let closed = (!shut.is_empty()).then(|| ClosedFrames {
                frames: shut.len(),
                predicted_area: mean(shut.iter().map(|c| fraction(c.score.predicted_area)))
                    .unwrap_or(0.0),
                true_area: mean(shut.iter().map(|c| fraction(c.score.truth_area))).unwrap_or(0.0),
            });
            ClassSummary {
                reference_area,
                dice_open: mean(open.iter().map(|c| c.score.dice)),
                closed,
                ..summarise(Some(l), names(l), cells)
            }
        })
        .collect();
    // Overall: per frame, the mean over its scored classes (distances over the finite ones; a
    // frame counts as missed when any class was), the areas and extra regions summed.
    let overall: Vec<Cell> = frames
        .iter()
        .filter(|f| !f.classes.is_empty())
        .map(|f| Cell {
            position: f.position,
            score: overall_cell(f),
            extra_regions: f.extra_regions(),
        })
        .collect();
    if !overall.is_empty() {
        classes.push(summarise(None, "overall".into(), overall));
    }
    SequenceScores {
        name: name.to_string(),
        reference: reference.to_string(),
        spacing_mm,
        confidence_dice: spearman(&confidence_dice_pairs(&frames)),
        vein_verdict: VeinVerdict::of(
            &frames,
            reference_areas
                .iter()
                .find(|(label, _)| *label == VEIN)
                .map_or(0, |&(_, a)| a),
        ),
        frames,
        classes,
    }
}

/// A frame's "overall" cell: Dice and distances averaged over its classes (distances `None` when
/// any class was missed), areas summed.
fn overall_cell(f: &FrameScore) -> ClassFrame {
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
        truth_area: f.classes.iter().map(|c| c.truth_area).sum(),
        predicted_area: f.classes.iter().map(|c| c.predicted_area).sum(),
        truth_regions: None,
        predicted_regions: None,
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
    /// Dice windows over the sequences that have them; `None` when none has, and in older
    /// reports.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub windows: Option<WindowStats>,
    /// Area ratios over the sequences that have them.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub area_ratio: Option<AreaRatioStats>,
    /// Extra regions over the sequences that have them.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub extra_regions: Option<ExtraRegionsStats>,
}

/// Dice windows over sequences: mean ± std of the per-sequence values.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct WindowStats {
    pub first: Stat,
    pub last: Stat,
    pub drift: Stat,
}

impl WindowStats {
    pub fn of(windows: &[DiceWindows]) -> Option<Self> {
        let stat =
            |get: fn(&DiceWindows) -> f64| Stat::of(&windows.iter().map(get).collect::<Vec<_>>());
        Some(Self {
            first: stat(|w| w.first.dice)?,
            last: stat(|w| w.last.dice)?,
            drift: stat(|w| w.drift)?,
        })
    }
}

/// Area ratios over sequences.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct AreaRatioStats {
    pub sequences: usize,
    /// Mean of the per-sequence medians.
    pub median: f64,
    /// The largest ratio of any frame.
    pub max: f64,
    /// Sequences whose median is below 1.
    pub shrinking: usize,
}

impl AreaRatioStats {
    pub fn of(ratios: &[AreaRatio]) -> Option<Self> {
        Some(Self {
            sequences: ratios.len(),
            median: mean(ratios.iter().map(|r| r.median))?,
            max: ratios
                .iter()
                .map(|r| r.max)
                .fold(f64::NEG_INFINITY, f64::max),
            shrinking: ratios.iter().filter(|r| r.shrinking).count(),
        })
    }
}

/// Extra regions over sequences.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct ExtraRegionsStats {
    pub sequences: usize,
    /// Frames counted, in all sequences.
    pub frames: usize,
    /// Mean of the per-sequence means.
    pub mean: f64,
    /// The most extra regions in any frame.
    pub max: usize,
    /// Share of all frames with an extra region (0–1).
    pub share: f64,
}

impl ExtraRegionsStats {
    pub fn of(extras: &[ExtraRegions]) -> Option<Self> {
        let frames: usize = extras.iter().map(|e| e.frames).sum();
        let with_extra: f64 = extras.iter().map(|e| e.share * e.frames as f64).sum();
        Some(Self {
            sequences: extras.len(),
            frames,
            mean: mean(extras.iter().map(|e| e.mean))?,
            max: extras.iter().map(|e| e.max).max()?,
            share: if frames > 0 {
                with_extra / frames as f64
            } else {
                0.0
            },
        })
    }
}

/// Sequences need this many frames with a confidence for their rank correlation to enter the
/// mean over sequences.
pub const MIN_CORRELATION_FRAMES: usize = 5;

/// Confidence–Dice rank correlation over a dataset.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct ConfidenceStats {
    /// Over the frames of all sequences pooled.
    pub pooled: RankCorrelation,
    /// Mean ± std of the per-sequence values over the sequences with at least
    /// [`MIN_CORRELATION_FRAMES`] frames (`None` when there is none).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub per_sequence: Option<Stat>,
}

/// The dataset's confidence–Dice rank correlation; `None` without (varying) confidences.
pub fn summarise_confidence(sequences: &[SequenceScores]) -> Option<ConfidenceStats> {
    let pairs: Vec<(f64, f64)> = sequences
        .iter()
        .flat_map(|s| confidence_dice_pairs(&s.frames))
        .collect();
    let per_sequence: Vec<f64> = sequences
        .iter()
        .filter_map(|s| s.confidence_dice)
        .filter(|c| c.frames >= MIN_CORRELATION_FRAMES)
        .map(|c| c.rho)
        .collect();
    Some(ConfidenceStats {
        pooled: spearman(&pairs)?,
        per_sequence: Stat::of(&per_sequence),
    })
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
                windows: WindowStats::of(
                    &rows.iter().filter_map(|r| r.windows).collect::<Vec<_>>(),
                ),
                area_ratio: AreaRatioStats::of(
                    &rows.iter().filter_map(|r| r.area_ratio).collect::<Vec<_>>(),
                ),
                extra_regions: ExtraRegionsStats::of(
                    &rows
                        .iter()
                        .filter_map(|r| r.extra_regions)
                        .collect::<Vec<_>>(),
                ),
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
    fn the_vein_verdict_compares_what_was_said_with_the_smallest_true_area() {
        let reference = rect(40, 30, 5, 5, 10, 10, 1);
        let (sliver, squeezed) = (rect(40, 30, 6, 6, 2, 2, 1), rect(40, 30, 5, 5, 5, 5, 1));
        let names = |l: u8| format!("class-{l}");
        // The vein closes to 4 % while the prediction keeps 25 %: the area rule says open.
        let frames = vec![
            vein_frame(1, &reference, &reference),
            vein_frame(2, &sliver, &squeezed),
        ];
        let s = summarise_sequence("s", "0", None, &[(1, 100)], frames, &names);
        let v = s.vein_verdict.unwrap();
        assert_eq!((v.true_min_ratio, v.predicted_min_ratio), (0.04, 0.25));
        assert!(v.truly_closed() && !v.said_closed() && !v.right());
        // The element's own verdict wins over the area rule.
        let said = VeinVerdict {
            element_closed: Some(true),
            ..v
        };
        assert!(said.right());
        // A vein that vanishes from both maps counts as area 0.
        let empty = LabelMap::new(40, 30);
        let frames = vec![vein_frame(1, &empty, &squeezed)];
        let open = summarise_sequence("o", "0", None, &[(1, 100)], frames, &names);
        assert_eq!(open.vein_verdict.unwrap().true_min_ratio, 0.0);
        // No vein in the reference: no verdict.
        let frames = vec![vein_frame(1, &reference, &reference)];
        assert_eq!(
            summarise_sequence("n", "0", None, &[(2, 16)], frames, &names).vein_verdict,
            None
        );
        let stats = VerdictStats::of(&[
            s.clone(),
            SequenceScores {
                vein_verdict: Some(said),
                ..s.clone()
            },
            SequenceScores {
                vein_verdict: Some(VeinVerdict {
                    true_min_ratio: 0.5,
                    predicted_min_ratio: 0.5,
                    element_closed: None,
                }),
                ..s
            },
        ])
        .unwrap();
        assert_eq!(
            stats,
            VerdictStats {
                closing: 2,
                closing_right: 1,
                other: 1,
                other_right: 1
            }
        );
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

    #[test]
    fn dice_windows_take_the_first_and_last_hundred_or_thirds() {
        // 250 frames: Dice 1 over positions 1-100, 0.5 in between, 0.8 over 151-250; given out
        // of order.
        let mut points: Vec<(usize, f64)> = (1..=250)
            .rev()
            .map(|p| {
                (
                    p,
                    if p <= 100 {
                        1.0
                    } else if p <= 150 {
                        0.5
                    } else {
                        0.8
                    },
                )
            })
            .collect();
        let w = dice_windows(&points).unwrap();
        assert_eq!((w.first.from, w.first.to, w.first.frames), (1, 100, 100));
        assert_eq!((w.last.from, w.last.to, w.last.frames), (151, 250, 100));
        assert!((w.first.dice - 1.0).abs() < 1e-12 && (w.last.dice - 0.8).abs() < 1e-12);
        assert!((w.drift + 0.2).abs() < 1e-12);
        // 7 frames: thirds of 2 frames each.
        points.truncate(0);
        points.extend((1..=7).map(|p| (p * 2, p as f64 / 10.0)));
        let w = dice_windows(&points).unwrap();
        assert_eq!(
            (w.first.from, w.first.to, w.last.from, w.last.to),
            (2, 4, 12, 14)
        );
        assert!((w.first.dice - 0.15).abs() < 1e-12 && (w.last.dice - 0.65).abs() < 1e-12);
        assert_eq!((window_length(199), window_length(200)), (66, 100));
        assert_eq!(dice_windows(&points[..2]), None);
        assert_eq!(dice_windows(&[]), None);
    }

    #[test]
    fn area_ratio_median_max_and_shrinking() {
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 2.0, 0.5]), Some(1.5));
        let r = AreaRatio::of([2.0, 1.0, 4.0, 0.5, f64::INFINITY]).unwrap();
        assert_eq!(
            (r.frames, r.median, r.max, r.shrinking),
            (4, 1.5, 4.0, false)
        );
        assert!(AreaRatio::of([0.5, 0.8, 1.2]).unwrap().shrinking);
        assert_eq!(AreaRatio::of([]), None);
        // Per sequence: frame 1 predicts twice the truth (10x10 against 10x5), frame 2 a class
        // the truth lacks (skipped: no true area), frame 3 half of it.
        let truth = rect(40, 30, 5, 5, 10, 10, 1);
        let frames = vec![
            vein_frame(1, &rect(40, 30, 5, 5, 10, 5, 1), &truth),
            vein_frame(2, &LabelMap::new(40, 30), &truth),
            vein_frame(3, &truth, &rect(40, 30, 5, 5, 10, 5, 1)),
        ];
        let s = summarise_sequence("s", "0", None, &[], frames, &names);
        let vein = s.classes[0].area_ratio.unwrap();
        assert_eq!((vein.frames, vein.median, vein.max), (2, 1.25, 2.0));
        let stats = AreaRatioStats::of(&[vein, AreaRatio::of([0.5, 0.7, 0.9]).unwrap()]).unwrap();
        assert_eq!((stats.sequences, stats.shrinking, stats.max), (2, 1, 2.0));
        assert!((stats.median - (1.25 + 0.7) / 2.0).abs() < 1e-12);
    }

    #[test]
    fn extra_regions_count_islands_beyond_the_truth() {
        let truth = rect(40, 30, 5, 5, 10, 10, 1);
        // The vessel and two islands (one touching it diagonally only: 4-connectivity).
        let mut islands = truth.clone();
        islands.data[20 * 40 + 30] = 1;
        islands.data[15 * 40 + 15] = 1;
        let f = vein_frame(1, &truth, &islands);
        let c = &f.classes[0];
        assert_eq!((c.truth_regions, c.predicted_regions), (Some(1), Some(3)));
        assert_eq!(c.extra_regions(), Some(2));
        // Fewer predicted regions than true ones count 0, not negative.
        let mut two = truth.clone();
        two.data[25 * 40 + 35] = 1;
        assert_eq!(
            vein_frame(2, &two, &truth).classes[0].extra_regions(),
            Some(0)
        );
        let e = ExtraRegions::of(&[2, 0, 0, 1]).unwrap();
        assert_eq!((e.frames, e.mean, e.max, e.share), (4, 0.75, 2, 0.5));
        assert_eq!(ExtraRegions::of(&[]), None);
        let frames = vec![
            f,
            vein_frame(2, &two, &truth),
            vein_frame(3, &truth, &truth),
        ];
        let s = summarise_sequence("s", "0", None, &[], frames, &names);
        let vein = s.classes[0].extra_regions.unwrap();
        assert_eq!((vein.frames, vein.max), (3, 2));
        assert!((vein.mean - 2.0 / 3.0).abs() < 1e-12 && (vein.share - 1.0 / 3.0).abs() < 1e-12);
        assert_eq!(
            s.classes[1].extra_regions,
            Some(vein),
            "overall sums one class"
        );
        let stats = ExtraRegionsStats::of(&[vein, e]).unwrap();
        assert_eq!((stats.sequences, stats.frames, stats.max), (2, 7, 2));
        assert!(
            (stats.share - 3.0 / 7.0).abs() < 1e-12,
            "pooled over frames"
        );
    }

    #[test]
    fn spearman_uses_average_ranks_for_ties() {
        assert_eq!(
            average_ranks(&[10.0, 20.0, 20.0, 30.0]),
            vec![1.0, 2.5, 2.5, 4.0]
        );
        assert_eq!(average_ranks(&[5.0, 5.0, 5.0]), vec![2.0; 3]);
        // Ranks (1, 2.5, 2.5, 4) against (1, 2, 3, 4): Pearson 4.5 / sqrt(4.5 * 5); the
        // tie-ignoring 1 - 6 sum d^2 / (n (n^2 - 1)) would give 0.95.
        let r = spearman(&[(1.0, 1.0), (2.0, 2.0), (2.0, 3.0), (3.0, 4.0)]).unwrap();
        assert_eq!(r.frames, 4);
        assert!((r.rho - 4.5 / 22.5f64.sqrt()).abs() < 1e-12, "{}", r.rho);
        // Monotonic, not linear: 1; reversed: -1.
        let up: Vec<(f64, f64)> = (1..6).map(|i| (i as f64, (i as f64).exp())).collect();
        assert!((spearman(&up).unwrap().rho - 1.0).abs() < 1e-12);
        let down: Vec<(f64, f64)> = up.iter().map(|&(x, y)| (x, -y)).collect();
        assert!((spearman(&down).unwrap().rho + 1.0).abs() < 1e-12);
        // Constant side, too few pairs, non-finite values.
        assert_eq!(spearman(&[(1.0, 1.0), (1.0, 2.0)]), None);
        assert_eq!(spearman(&[(1.0, 1.0)]), None);
        assert_eq!(spearman(&[]), None);
        let r = spearman(&[(1.0, 1.0), (f64::NAN, 0.0), (2.0, 2.0)]).unwrap();
        assert_eq!((r.frames, r.rho), (2, 1.0));
    }

    /// A sequence whose frame i has confidence `conf[i]` and vein Dice falling with i (a 10x10
    /// truth against a prediction shifted by i rows).
    fn confident_sequence(conf: &[f64]) -> SequenceScores {
        let truth = rect(40, 30, 5, 5, 10, 10, 1);
        let frames = conf
            .iter()
            .enumerate()
            .map(|(i, &c)| FrameScore {
                tracking_confidence: Some(c),
                ..vein_frame(i + 1, &truth, &rect(40, 30, 5, 5 + i, 10, 10, 1))
            })
            .collect();
        summarise_sequence("s", "0", None, &[], frames, &names)
    }

    #[test]
    fn confidence_dice_correlation_per_sequence_and_pooled() {
        // Confidence falls with Dice in "a" (5 frames), rises against it in "b" (3 frames).
        let a = confident_sequence(&[0.9, 0.8, 0.7, 0.6, 0.5]);
        let b = confident_sequence(&[0.1, 0.2, 0.3]);
        assert_eq!(
            a.confidence_dice,
            Some(RankCorrelation {
                frames: 5,
                rho: 1.0
            })
        );
        assert_eq!(b.confidence_dice.unwrap().rho, -1.0);
        let c = summarise_confidence(&[a.clone(), b.clone()]).unwrap();
        assert_eq!(c.pooled.frames, 8);
        let pairs: Vec<(f64, f64)> = [&a, &b]
            .iter()
            .flat_map(|s| confidence_dice_pairs(&s.frames))
            .collect();
        assert_eq!(c.pooled, spearman(&pairs).unwrap());
        // Only "a" has 5 frames: the mean over sequences is its value alone.
        let per = c.per_sequence.unwrap();
        assert_eq!((per.n, per.mean), (1, 1.0));
        // No confidences (predictions from files): nothing.
        let truth = rect(40, 30, 5, 5, 10, 10, 1);
        let plain = summarise_sequence(
            "s",
            "0",
            None,
            &[],
            vec![vein_frame(1, &truth, &truth)],
            &names,
        );
        assert_eq!(plain.confidence_dice, None);
        assert_eq!(summarise_confidence(&[plain]), None);
        assert_eq!(summarise_confidence(&[]), None);
    }

    #[test]
    fn dataset_windows_are_mean_and_std_over_sequences() {
        let a = confident_sequence(&[0.9, 0.8, 0.7]);
        let b = confident_sequence(&[0.9, 0.9, 0.9, 0.9, 0.9, 0.9]);
        let (wa, wb) = (a.classes[1].windows.unwrap(), b.classes[1].windows.unwrap());
        assert_eq!((wa.first.frames, wb.first.frames), (1, 2));
        let stats = summarise_dataset(&[a, b]);
        let overall = stats.last().unwrap().windows.unwrap();
        assert_eq!(overall.drift.n, 2);
        assert!((overall.drift.mean - (wa.drift + wb.drift) / 2.0).abs() < 1e-12);
        assert!((overall.first.mean - (wa.first.dice + wb.first.dice) / 2.0).abs() < 1e-12);
        assert!(wa.drift < 0.0, "Dice falls over the sequence");
    }
}
