//! The evaluation report: JSON (everything, per frame) and Markdown (Table 1 shape: a row per
//! sequence and mean ± std over sequences; Dice in %, distances in pixels and mm).
//!
//! Per class the Markdown tables show Dice, HD95, HD (and mm) and "missed"; for a class with
//! closed frames somewhere in the report(s) (a vein pressed shut, see
//! [`super::score::CLOSED_FRACTION`]) two more columns: "open Dice" (the Dice over the other
//! frames) and "closed area %" (predicted area over the closed frames in % of the reference
//! area, the truth's and the number of closed frames in brackets). Without closed frames the
//! tables are as before.
//!
//! A second table, per sequence and over sequences (and one per method in the comparison), shows
//! how propagation holds over time and space: overall Dice over the first and the last scored
//! frames and their difference (drift), per class the predicted/true area ratio (median, max,
//! shrinking) and the extra regions per frame, and the Spearman correlation of the element's
//! tracking confidence with the frame's Dice, and the vein-closed verdict against the truth
//! where a sequence has a vein. Reports without these figures show no such table.

use super::score::{
    summarise_confidence, summarise_dataset, AreaRatio, ClassStats, ClassSummary, ClosedStats,
    ConfidenceStats, ExtraRegions, SequenceScores, Stat, VeinVerdict, VerdictStats, Window,
    AREA_CLOSURE_THRESHOLD, CLOSED_FRACTION, MIN_CORRELATION_FRAMES, TRUE_CLOSED_RATIO,
    WINDOW_FRAMES,
};
use super::EvalError;
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;
use std::path::Path;

/// How long the predictions took (element runs only).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Timing {
    /// Frames pushed through the pipeline (all frames from the reference on).
    pub frames: u64,
    /// Wall-clock seconds of the pipeline runs, PNG decoding and encoding included.
    pub seconds: f64,
}

impl Timing {
    pub fn fps(&self) -> f64 {
        if self.seconds > 0.0 {
            self.frames as f64 / self.seconds
        } else {
            0.0
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// Row name in merged tables, e.g. `pddflow keyframe` or `dis_medium chain`.
    pub method: String,
    pub dataset: String,
    /// Where the predictions came from: the element, or a predictions directory.
    pub source: String,
    /// How the reference frame was chosen.
    pub reference: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub mode: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub model: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub execution_provider: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub timing: Option<Timing>,
    pub sequences: Vec<SequenceScores>,
    /// Per class in label order and "overall" last: mean ± std over sequences.
    pub summary: Vec<ClassStats>,
    /// Confidence–Dice rank correlation over the dataset (`None` without confidences).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub confidence_dice: Option<ConfidenceStats>,
}

impl Report {
    /// A report over `sequences`, with its summary computed.
    pub fn new(
        method: &str,
        dataset: &str,
        source: &str,
        reference: &str,
        sequences: Vec<SequenceScores>,
    ) -> Self {
        Self {
            method: method.to_string(),
            dataset: dataset.to_string(),
            source: source.to_string(),
            reference: reference.to_string(),
            mode: None,
            model: None,
            execution_provider: None,
            timing: None,
            summary: summarise_dataset(&sequences),
            confidence_dice: summarise_confidence(&sequences),
            sequences,
        }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("reports serialise")
    }

    pub fn load(path: &Path) -> Result<Self, EvalError> {
        let text = std::fs::read_to_string(path).map_err(|e| EvalError::read(path, e))?;
        serde_json::from_str(&text)
            .map_err(|e| EvalError::read(path, format!("not a pddflow-eval JSON report: {e}")))
    }

    fn has_mm(&self) -> bool {
        self.sequences.iter().any(|s| s.spacing_mm.is_some())
    }

    /// The Markdown report: settings, then one row per sequence and the mean ± std row.
    pub fn to_markdown(&self) -> String {
        let mut md = String::new();
        let _ = writeln!(md, "### {} on {}\n", self.method, self.dataset);
        let _ = writeln!(md, "- predictions: {}", self.source);
        if let Some(mode) = &self.mode {
            let _ = writeln!(md, "- mode: {mode}");
        }
        if let Some(model) = &self.model {
            let _ = writeln!(md, "- model: {model}");
        }
        if let Some(ep) = &self.execution_provider {
            let _ = writeln!(md, "- execution provider: {ep}");
        }
        let _ = writeln!(md, "- reference: {}", self.reference);
        if let Some(t) = &self.timing {
            let _ = writeln!(
                md,
                "- {} frames in {:.1} s ({:.1} frames/s, PNG decoding and writing included)",
                t.frames,
                t.seconds,
                t.fps()
            );
        }
        let mm = self.has_mm();
        let shown = shown_classes(&self.summary);
        // Classes with closed frames get the open-Dice and closed-area columns.
        let closing: Vec<bool> = shown.iter().map(|c| c.closed.is_some()).collect();
        let _ = writeln!(
            md,
            "\nDice in %, distances in pixels{}; mean over the annotated frames after the \
             reference; \"missed\" counts frames where a class is in only one of truth and \
             prediction (Dice 0, HD infinite, left out of the distance means).{}\n",
            if mm { " and mm" } else { "" },
            if closing.contains(&true) {
                format!(" {}", closed_columns_note())
            } else {
                String::new()
            }
        );
        let names: Vec<String> = shown.iter().map(|c| c.name.clone()).collect();
        let mut header = vec!["Sequence".to_string(), "Frames".to_string()];
        for (n, &closes) in names.iter().zip(&closing) {
            header.push(format!("{n} Dice"));
            header.push(format!("{n} HD95"));
            header.push(format!("{n} HD"));
            if mm {
                header.push(format!("{n} HD95 mm"));
                header.push(format!("{n} HD mm"));
            }
            header.push(format!("{n} missed"));
            if closes {
                header.push(format!("{n} open Dice"));
                header.push(format!("{n} closed area %"));
            }
        }
        table_header(&mut md, &header);
        for s in &self.sequences {
            let scored = s.frames.len();
            let mut row = vec![s.name.clone(), scored.to_string()];
            for (n, &closes) in names.iter().zip(&closing) {
                match s.classes.iter().find(|c| &c.name == n) {
                    Some(c) => {
                        row.push(format!("{:.1}", 100.0 * c.dice));
                        row.push(opt(c.hd95));
                        row.push(opt(c.hd));
                        if mm {
                            row.push(opt(c.hd95_mm));
                            row.push(opt(c.hd_mm));
                        }
                        row.push(c.missed.to_string());
                        if closes {
                            row.push(opt(c.dice_open.map(|d| 100.0 * d)));
                            row.push(closed_cell(c));
                        }
                    }
                    None => row.extend(std::iter::repeat_n(
                        "–".to_string(),
                        if mm { 6 } else { 4 } + if closes { 2 } else { 0 },
                    )),
                }
            }
            table_row(&mut md, &row);
        }
        let frames: usize = self.sequences.iter().map(|s| s.frames.len()).sum();
        let mut row = vec!["**mean ± std**".to_string(), frames.to_string()];
        for (c, &closes) in shown.iter().zip(&closing) {
            row.push(pct(Some(c.dice)));
            row.push(pm(c.hd95));
            row.push(pm(c.hd));
            if mm {
                row.push(pm(c.hd95_mm));
                row.push(pm(c.hd_mm));
            }
            row.push(c.missed.to_string());
            if closes {
                row.push(pct(c.dice_open));
                row.push(closed_stats_cell(c.closed.as_ref()));
            }
        }
        table_row(&mut md, &row);
        md.push_str(&self.propagation_markdown());
        md
    }

    /// Whether any sequence has the propagation figures (reports from before them have none).
    fn has_propagation(&self) -> bool {
        self.confidence_dice.is_some()
            || self
                .summary
                .iter()
                .any(|c| c.windows.is_some() || c.area_ratio.is_some() || c.extra_regions.is_some())
    }

    /// The second table: Dice windows, area ratios, extra regions and the confidence–Dice rank
    /// correlation per sequence and over sequences; empty for reports without them.
    fn propagation_markdown(&self) -> String {
        if !self.has_propagation() {
            return String::new();
        }
        let names = class_names(&self.summary);
        let verdicts = has_verdicts(self);
        let mut md = format!("\n{}\n\n", propagation_note(verdicts));
        table_header(&mut md, &propagation_header("Sequence", &names, verdicts));
        for s in &self.sequences {
            let overall = s.classes.iter().find(|c| c.label.is_none());
            let w = overall.and_then(|c| c.windows);
            let mut row = vec![
                s.name.clone(),
                window_cell(w.map(|w| w.first)),
                window_cell(w.map(|w| w.last)),
                w.map_or("–".into(), |w| format!("{:+.1}", 100.0 * w.drift)),
            ];
            for (label, _) in &names {
                let c = s.classes.iter().find(|c| c.label == *label);
                if label.is_some() {
                    row.push(area_ratio_cell(c.and_then(|c| c.area_ratio)));
                }
                row.push(extra_regions_cell(c.and_then(|c| c.extra_regions)));
            }
            row.push(s.confidence_dice.map_or("–".into(), |r| {
                format!("{:.2} ({})", r.rho, frames_word(r.frames))
            }));
            if verdicts {
                row.push(verdict_cell(s.vein_verdict));
            }
            table_row(&mut md, &row);
        }
        let mut row = vec!["**over sequences**".to_string()];
        row.extend(propagation_stats_cells(self, &names));
        if verdicts {
            row.push(verdict_stats_cell(self));
        }
        table_row(&mut md, &row);
        md
    }
}

/// The classes with a column in the propagation tables: (label, name), "overall" only when it
/// sums several classes.
fn class_names(summary: &[ClassStats]) -> Vec<(Option<u8>, String)> {
    shown_classes(summary)
        .into_iter()
        .map(|c| (c.label, c.name))
        .collect()
}

fn propagation_note(verdicts: bool) -> String {
    let verdict = if verdicts {
        format!(
            " \"vein-closed verdict\": whether the method said the vein closed (the element's \
             pddflow-summary; for predictions from files, the smallest predicted area at most \
             {:.0} % of the reference's) and whether it did (its smallest true area at most \
             {:.0} %).",
            100.0 * AREA_CLOSURE_THRESHOLD,
            100.0 * TRUE_CLOSED_RATIO
        )
    } else {
        String::new()
    };
    format!(
        "Over time and space: overall Dice in % over the first and the last {WINDOW_FRAMES} \
         scored frames (a third of them each below {} frames; positions from the reference in \
         brackets) and their difference (\"drift\", points); \"area ratio\" the median of the \
         predicted over the true area per frame (frames whose truth has the class), its max \
         in brackets, \"shrinking\" when the median is below 1; \"extra regions\" the mean per \
         frame of the predicted 4-connected regions beyond the truth's, its max and the share \
         of frames with any; \"conf–Dice ρ\" the Spearman rank correlation of the element's \
         tracking confidence with the frame's overall Dice (over sequences: all frames pooled, \
         then the mean ± std of the sequences with at least {MIN_CORRELATION_FRAMES} frames).\
         {verdict}",
        2 * WINDOW_FRAMES
    )
}

fn propagation_header(first: &str, names: &[(Option<u8>, String)], verdicts: bool) -> Vec<String> {
    let mut header = vec![
        first.to_string(),
        "Dice first %".to_string(),
        "Dice last %".to_string(),
        "drift".to_string(),
    ];
    // "overall" gets no area ratio column: its pooled ratio hides the classes'.
    for (label, n) in names {
        if label.is_some() {
            header.push(format!("{n} area ratio"));
        }
        header.push(format!("{n} extra regions"));
    }
    header.push("conf–Dice ρ".to_string());
    if verdicts {
        header.push("vein-closed verdict".to_string());
    }
    header
}

/// Whether any sequence of `r` has a vein-closed verdict.
fn has_verdicts(r: &Report) -> bool {
    r.sequences.iter().any(|s| s.vein_verdict.is_some())
}

fn verdict_cell(v: Option<VeinVerdict>) -> String {
    v.map_or("–".into(), |v| {
        format!(
            "{}: said {}, truth {} (min {:.1} %)",
            if v.right() { "right" } else { "wrong" },
            if v.said_closed() { "closed" } else { "open" },
            if v.truly_closed() {
                "closes"
            } else {
                "stays open"
            },
            100.0 * v.true_min_ratio
        )
    })
}

fn verdict_stats_cell(r: &Report) -> String {
    VerdictStats::of(&r.sequences).map_or("–".into(), |v| {
        format!(
            "{} of {} right (closing {} of {}, others {} of {})",
            v.closing_right + v.other_right,
            v.closing + v.other,
            v.closing_right,
            v.closing,
            v.other_right,
            v.other
        )
    })
}

fn window_cell(w: Option<Window>) -> String {
    w.map_or("–".into(), |w| {
        format!("{:.1} ({}–{})", 100.0 * w.dice, w.from, w.to)
    })
}

fn area_ratio_cell(r: Option<AreaRatio>) -> String {
    r.map_or("–".into(), |r| {
        format!(
            "{:.2} (max {:.2}){}",
            r.median,
            r.max,
            if r.shrinking { ", shrinking" } else { "" }
        )
    })
}

fn extra_regions_cell(e: Option<ExtraRegions>) -> String {
    e.map_or("–".into(), |e| extra_cell(e.mean, e.max, e.share))
}

/// Extra regions: mean per frame (max, share of frames with any).
fn extra_cell(mean: f64, max: usize, share: f64) -> String {
    format!("{mean:.2} (max {max}, {:.0} % of frames)", 100.0 * share)
}

/// The over-sequences cells of the propagation tables (after the first column).
fn propagation_stats_cells(r: &Report, names: &[(Option<u8>, String)]) -> Vec<String> {
    let class = |label: Option<u8>| r.summary.iter().find(|c| c.label == label);
    let w = class(None).and_then(|c| c.windows);
    let mut row = vec![
        pct(w.map(|w| w.first)),
        pct(w.map(|w| w.last)),
        pct(w.map(|w| w.drift)),
    ];
    for (label, _) in names {
        let c = class(*label);
        // "overall" shows its extra regions only: its pooled area ratio hides the classes'.
        if label.is_some() {
            row.push(c.and_then(|c| c.area_ratio).map_or("–".into(), |a| {
                format!(
                    "{:.2} (max {:.2}, {} of {} seq. shrinking)",
                    a.median, a.max, a.shrinking, a.sequences
                )
            }));
        }
        row.push(
            c.and_then(|c| c.extra_regions)
                .map_or("–".into(), |e| extra_cell(e.mean, e.max, e.share)),
        );
    }
    row.push(r.confidence_dice.map_or("–".into(), |c| {
        format!(
            "{:.2} pooled ({}){}",
            c.pooled.rho,
            frames_word(c.pooled.frames),
            c.per_sequence.map_or(String::new(), |s| format!(
                "; {:.2} ± {:.2} over {} seq.",
                s.mean, s.std, s.n
            ))
        )
    }));
    row
}

/// The sentence that explains the open-Dice and closed-area columns.
fn closed_columns_note() -> String {
    format!(
        "\"open Dice\" is the Dice over the frames where the class's true area is at least {:.0} % \
         of its area in the reference mask, \"closed area %\" the mean predicted area over the \
         other, closed frames (a vessel pressed shut, whose truth is a sliver where Dice says \
         little) in % of the reference area, with the truth's and the number of closed frames in \
         brackets.",
        100.0 * CLOSED_FRACTION
    )
}

fn frames_word(n: usize) -> String {
    format!("{n} frame{}", if n == 1 { "" } else { "s" })
}

/// A sequence's closed-area cell: predicted % (truth %, frames), or "–" without closed frames.
fn closed_cell(c: &ClassSummary) -> String {
    c.closed.as_ref().map_or("–".into(), |k| {
        format!(
            "{:.1} (truth {:.1}, {})",
            100.0 * k.predicted_area,
            100.0 * k.true_area,
            frames_word(k.frames)
        )
    })
}

/// The closed-area cell over sequences: predicted % (truth %, frames, sequences).
fn closed_stats_cell(c: Option<&ClosedStats>) -> String {
    c.map_or("–".into(), |k| {
        format!(
            "{:.1} (truth {:.1}, {} in {} seq.)",
            100.0 * k.predicted_area,
            100.0 * k.true_area,
            frames_word(k.frames),
            k.sequences
        )
    })
}

/// The classes of a summary worth a column: "overall" only when it averages several classes.
fn shown_classes(summary: &[ClassStats]) -> Vec<ClassStats> {
    let classes = summary.iter().filter(|c| c.label.is_some()).count();
    summary
        .iter()
        .filter(|c| c.label.is_some() || classes > 1)
        .cloned()
        .collect()
}

fn opt(v: Option<f64>) -> String {
    v.map_or("–".into(), |v| format!("{v:.1}"))
}

fn pm(s: Option<Stat>) -> String {
    s.map_or("–".into(), |s| format!("{:.1} ± {:.1}", s.mean, s.std))
}

fn pct(s: Option<Stat>) -> String {
    s.map_or("–".into(), |s| {
        format!("{:.1} ± {:.1}", 100.0 * s.mean, 100.0 * s.std)
    })
}

fn table_header(md: &mut String, cells: &[String]) {
    table_row(md, cells);
    let _ = writeln!(md, "|{}", "---|".repeat(cells.len()));
}

fn table_row(md: &mut String, cells: &[String]) {
    let _ = writeln!(md, "| {} |", cells.join(" | "));
}

/// One table comparing methods (a row per report): mean ± std over sequences per class. When a
/// class has closed frames in any report, its open-Dice and closed-area columns are added and
/// explained in a sentence below the table.
pub fn comparison_markdown(reports: &[Report]) -> String {
    let mut names: Vec<(Option<u8>, String)> = Vec::new();
    for r in reports {
        for c in &shown_classes(&r.summary) {
            if !names.iter().any(|(l, _)| *l == c.label) {
                names.push((c.label, c.name.clone()));
            }
        }
    }
    names.sort_by_key(|(l, _)| l.map_or(256, |v| v as u16));
    let mm = reports.iter().any(Report::has_mm);
    // Classes with closed frames in any report get the open-Dice and closed-area columns.
    let closing: Vec<bool> = names
        .iter()
        .map(|(label, _)| {
            reports.iter().any(|r| {
                r.summary
                    .iter()
                    .any(|c| c.label == *label && c.closed.is_some())
            })
        })
        .collect();
    let mut header = vec!["Method".to_string(), "Dataset".to_string()];
    for ((_, n), &closes) in names.iter().zip(&closing) {
        header.push(format!("{n} Dice %"));
        header.push(format!("{n} HD95 px"));
        header.push(format!("{n} HD px"));
        if mm {
            header.push(format!("{n} HD95 mm"));
        }
        if closes {
            header.push(format!("{n} open Dice %"));
            header.push(format!("{n} closed area %"));
        }
    }
    header.push("frames/s".to_string());
    let mut md = String::new();
    table_header(&mut md, &header);
    for r in reports {
        let mut row = vec![r.method.clone(), r.dataset.clone()];
        for ((label, _), &closes) in names.iter().zip(&closing) {
            match r.summary.iter().find(|c| c.label == *label) {
                Some(c) => {
                    row.push(pct(Some(c.dice)));
                    row.push(pm(c.hd95));
                    row.push(pm(c.hd));
                    if mm {
                        row.push(pm(c.hd95_mm));
                    }
                    if closes {
                        row.push(pct(c.dice_open));
                        row.push(closed_stats_cell(c.closed.as_ref()));
                    }
                }
                None => row.extend(std::iter::repeat_n(
                    "–".to_string(),
                    if mm { 4 } else { 3 } + if closes { 2 } else { 0 },
                )),
            }
        }
        row.push(
            r.timing
                .as_ref()
                .map_or("–".into(), |t| format!("{:.1}", t.fps())),
        );
        table_row(&mut md, &row);
    }
    if closing.contains(&true) {
        let _ = writeln!(md, "\n{}", closed_columns_note());
    }
    md.push_str(&propagation_comparison(reports, &names));
    md
}

/// The comparison's second table: the propagation figures over sequences, a row per report that
/// has them; empty when none has.
fn propagation_comparison(reports: &[Report], names: &[(Option<u8>, String)]) -> String {
    let with: Vec<&Report> = reports.iter().filter(|r| r.has_propagation()).collect();
    if with.is_empty() {
        return String::new();
    }
    let verdicts = with.iter().any(|r| has_verdicts(r));
    let mut md = format!("\n{}\n\n", propagation_note(verdicts));
    let mut header = propagation_header("Method", names, verdicts);
    header.insert(1, "Dataset".into());
    table_header(&mut md, &header);
    for r in with {
        let mut row = vec![r.method.clone(), r.dataset.clone()];
        row.extend(propagation_stats_cells(r, names));
        if verdicts {
            row.push(verdict_stats_cell(r));
        }
        table_row(&mut md, &row);
    }
    md
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval::score::{label_areas, score_frame, summarise_sequence};
    use gstpddflow::flow::LabelMap;

    fn report() -> Report {
        let mut a = LabelMap::new(16, 16);
        a.data[5 * 16 + 5..5 * 16 + 9].fill(2);
        let names = |l: u8| crate::eval::dataset::label_name(&Default::default(), l);
        let seqs = vec![
            summarise_sequence(
                "s1",
                "000000.png",
                Some((0.1, 0.1)),
                &label_areas(&a),
                vec![score_frame("000001.png", 1, &a, &a, &[2], Some((0.1, 0.1)))],
                &names,
            ),
            summarise_sequence(
                "s2",
                "000000.png",
                None,
                &label_areas(&a),
                vec![score_frame(
                    "000001.png",
                    1,
                    &a,
                    &LabelMap::new(16, 16),
                    &[2],
                    None,
                )],
                &names,
            ),
        ];
        Report::new("test method", "data", "element", "first frame", seqs)
    }

    #[test]
    fn json_round_trips_with_infinite_distances_as_null() {
        let r = report();
        let json = r.to_json();
        assert!(json.contains("\"hd\": null"), "{json}");
        let back: Report = serde_json::from_str(&json).unwrap();
        assert_eq!(back, r);
    }

    #[test]
    fn markdown_has_a_row_per_sequence_and_the_mean() {
        let md = report().to_markdown();
        assert!(
            md.contains("| s1 | 1 | 100.0 | 0.0 | 0.0 | 0.0 | 0.0 | 0 |"),
            "{md}"
        );
        assert!(md.contains("| s2 | 1 | 0.0 | – | – | – | – | 1 |"), "{md}");
        assert!(md.contains("| **mean ± std** | 2 | 50.0 ± 70.7 |"), "{md}");
        let cmp = comparison_markdown(&[report()]);
        assert!(
            cmp.contains("| test method | data | 50.0 ± 70.7 |"),
            "{cmp}"
        );
        // No class closes: no open-Dice or closed-area columns, no note.
        for text in [&md, &cmp] {
            assert!(!text.contains("open Dice"), "{text}");
            assert!(!text.contains("closed"), "{text}");
        }
    }

    fn rect(x0: usize, y0: usize, rw: usize, rh: usize, l: u8) -> LabelMap {
        crate::eval::score::tests::rect(20, 20, x0, y0, rw, rh, l)
    }

    /// Vein 10x10 = 100 px and artery 3x3 in the reference; in "shut" the vein closes in frame 2
    /// (truth 2x2 = 4 px, predicted 5x4 = 20 px), in "open" it never does.
    fn closing_report(method: &str) -> Report {
        let names = |l: u8| crate::eval::dataset::label_name(&Default::default(), l);
        let with_artery = |mut m: LabelMap| {
            for y in 16..19 {
                m.data[y * 20 + 16..y * 20 + 19].fill(2);
            }
            m
        };
        let reference = with_artery(rect(2, 2, 10, 10, 1));
        let shifted = with_artery(rect(2, 4, 10, 10, 1));
        let sliver = with_artery(rect(5, 5, 2, 2, 1));
        let squeezed = with_artery(rect(4, 4, 5, 4, 1));
        let frame = |i: usize, truth: &LabelMap, pred: &LabelMap| {
            score_frame(&format!("{i:06}.png"), i, truth, pred, &[1, 2], None)
        };
        let areas = label_areas(&reference);
        let seqs = vec![
            summarise_sequence(
                "shut",
                "000000.png",
                None,
                &areas,
                vec![frame(1, &reference, &shifted), frame(2, &sliver, &squeezed)],
                &names,
            ),
            summarise_sequence(
                "open",
                "000000.png",
                None,
                &areas,
                vec![frame(1, &reference, &reference)],
                &names,
            ),
        ];
        Report::new(method, "data", "element", "first frame", seqs)
    }

    #[test]
    fn markdown_shows_open_dice_and_closed_area_only_for_closing_classes() {
        let r = closing_report("closing");
        let md = r.to_markdown();
        assert!(
            md.contains("\"open Dice\" is the Dice over the frames"),
            "{md}"
        );
        assert!(
            md.contains(
                "| Sequence | Frames | vein Dice | vein HD95 | vein HD | vein missed | \
                 vein open Dice | vein closed area % | artery Dice | artery HD95 | artery HD | \
                 artery missed | overall Dice |"
            ),
            "{md}"
        );
        // "shut": frame 1 Dice 0.8 (open), frame 2 Dice 8/24 (closed).
        let dice = 100.0 * (0.8 + 8.0 / 24.0) / 2.0;
        assert!(
            md.contains(&format!(
                "| shut | 2 | {dice:.1} | 2.1 | 2.1 | 0 | 80.0 | 20.0 (truth 4.0, 1 frame) | 100.0 |"
            )),
            "{md}"
        );
        assert!(
            md.contains("| open | 1 | 100.0 | 0.0 | 0.0 | 0 | 100.0 | – | 100.0 |"),
            "{md}"
        );
        // Mean row: open Dice over both sequences (80 and 100), closed areas from "shut" only.
        assert!(
            md.contains("| 0 | 90.0 ± 14.1 | 20.0 (truth 4.0, 1 frame in 1 seq.) | 100.0 ± 0.0 |"),
            "{md}"
        );
        // Comparison: the columns once a report has closed frames, "–" for the one without
        // (whose spacing adds the HD95 mm columns).
        let mut plain = report();
        plain.method = "plain".into();
        let cmp = comparison_markdown(&[r, plain]);
        assert!(
            cmp.contains("| vein open Dice % | vein closed area % | artery Dice % |"),
            "{cmp}"
        );
        assert!(
            cmp.contains("| 90.0 ± 14.1 | 20.0 (truth 4.0, 1 frame in 1 seq.) | 100.0 ± 0.0 |"),
            "{cmp}"
        );
        assert!(!cmp.contains("artery open Dice"), "{cmp}");
        assert!(
            cmp.contains("| plain | data | – | – | – | – | – | – | 50.0 ± 70.7 |"),
            "{cmp}"
        );
        assert!(cmp.contains("\n\"open Dice\" is the Dice"), "{cmp}");
    }

    #[test]
    fn reports_without_the_closed_frame_fields_still_load() {
        let r = closing_report("closing");
        let json = r.to_json();
        assert!(json.contains("\"truth_area\": 4"), "{json}");
        // The new fields survive a round trip (whole reports may differ in the last bit of a
        // distance: serde_json's float parsing is not exact).
        let back: Report = serde_json::from_str(&json).unwrap();
        for (b, s) in back.sequences.iter().zip(&r.sequences) {
            for (bc, sc) in b.classes.iter().zip(&s.classes) {
                assert_eq!(
                    (bc.reference_area, bc.dice_open, &bc.closed),
                    (sc.reference_area, sc.dice_open, &sc.closed)
                );
            }
            for (bf, sf) in b.frames.iter().zip(&s.frames) {
                for (bc, sc) in bf.classes.iter().zip(&sf.classes) {
                    assert_eq!(
                        (bc.truth_area, bc.predicted_area),
                        (sc.truth_area, sc.predicted_area)
                    );
                }
            }
        }
        assert_eq!(back.summary[0].closed, r.summary[0].closed);
        let (bo, so) = (
            back.summary[0].dice_open.unwrap(),
            r.summary[0].dice_open.unwrap(),
        );
        assert_eq!((bo.mean, bo.n), (so.mean, so.n));
        assert!((bo.std - so.std).abs() < 1e-12);
        // An older report: none of the new fields.
        fn strip(v: &mut serde_json::Value) {
            match v {
                serde_json::Value::Object(m) => {
                    for key in [
                        "truth_area",
                        "predicted_area",
                        "reference_area",
                        "dice_open",
                        "closed",
                        "truth_regions",
                        "predicted_regions",
                        "tracking_confidence",
                        "windows",
                        "area_ratio",
                        "extra_regions",
                        "confidence_dice",
                    ] {
                        m.remove(key);
                    }
                    m.values_mut().for_each(strip);
                }
                serde_json::Value::Array(a) => a.iter_mut().for_each(strip),
                _ => {}
            }
        }
        let mut old: serde_json::Value = serde_json::from_str(&json).unwrap();
        strip(&mut old);
        let old: Report = serde_json::from_value(old).unwrap();
        let vein = &old.sequences[0].classes[0];
        assert_eq!(
            (vein.dice_open, &vein.closed, vein.reference_area),
            (None, &None, 0)
        );
        assert_eq!(old.sequences[0].frames[1].classes[0].truth_area, 0);
        assert_eq!(
            (old.summary[0].dice_open, &old.summary[0].closed),
            (None, &None)
        );
        assert_eq!(old.summary[0].dice, r.summary[0].dice);
        assert_eq!(old.sequences[0].classes[0].area_ratio, None);
        assert_eq!(old.summary[0].windows, None);
        // Old reports show the old tables.
        assert!(!old.to_markdown().contains("open Dice"));
        assert!(!old.to_markdown().contains("Dice first %"));
        assert!(!comparison_markdown(std::slice::from_ref(&old)).contains("closed"));
        assert!(!comparison_markdown(&[old]).contains("area ratio"));
    }

    #[test]
    fn propagation_table_shows_windows_ratios_regions_and_confidence() {
        use crate::eval::score::{DiceWindows, RankCorrelation, Window};
        let mut r = closing_report("closing");
        let window = |from, to, dice| Window {
            from,
            to,
            frames: to - from + 1,
            dice,
        };
        r.sequences[0].classes.last_mut().unwrap().windows = Some(DiceWindows {
            first: window(1, 100, 0.9),
            last: window(151, 250, 0.8),
            drift: -0.1,
        });
        r.sequences[0].confidence_dice = Some(RankCorrelation {
            frames: 6,
            rho: 0.5,
        });
        r.confidence_dice = Some(ConfidenceStats {
            pooled: RankCorrelation {
                frames: 8,
                rho: 0.25,
            },
            per_sequence: Stat::of(&[0.5]),
        });
        let md = r.to_markdown();
        assert!(
            md.contains(
                "| Sequence | Dice first % | Dice last % | drift | vein area ratio | \
                 vein extra regions | artery area ratio | artery extra regions | \
                 overall extra regions | conf–Dice ρ |"
            ),
            "{md}"
        );
        // "shut": vein predicted/true 100/100 and 20/4 (median 3, max 5), one region each.
        let none = "0.00 (max 0, 0 % of frames)";
        assert!(
            md.contains(&format!(
                "| shut | 90.0 (1–100) | 80.0 (151–250) | -10.0 | 3.00 (max 5.00) | {none} | \
                 1.00 (max 1.00) | {none} | {none} | 0.50 (6 frames) |"
            )),
            "{md}"
        );
        assert!(
            md.contains(&format!(
                "| open | – | – | – | 1.00 (max 1.00) | {none} | 1.00 (max 1.00) | {none} | \
                 {none} | – |"
            )),
            "{md}"
        );
        // Over sequences: the mean of the medians (3 and 1), the largest frame.
        assert!(
            md.contains(
                "| **over sequences** | – | – | – | 2.00 (max 5.00, 0 of 2 seq. shrinking) |"
            ),
            "{md}"
        );
        assert!(
            md.contains("| 0.25 pooled (8 frames); 0.50 ± 0.00 over 1 seq. |"),
            "{md}"
        );
        let cmp = comparison_markdown(&[r]);
        assert!(
            cmp.contains("| closing | data | – | – | – | 2.00 (max 5.00, 0 of 2 seq. shrinking) |"),
            "{cmp}"
        );
    }
}
