//! The evaluation report: JSON (everything, per frame) and Markdown (Table 1 shape: a row per
//! sequence and mean ± std over sequences; Dice in %, distances in pixels and mm).

use super::score::{summarise_dataset, ClassStats, SequenceScores, Stat};
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
        let _ = writeln!(
            md,
            "\nDice in %, distances in pixels{}; mean over the annotated frames after the \
             reference; \"missed\" counts frames where a class is in only one of truth and \
             prediction (Dice 0, HD infinite, left out of the distance means).\n",
            if mm { " and mm" } else { "" }
        );
        let shown = shown_classes(&self.summary);
        let names: Vec<String> = shown.iter().map(|c| c.name.clone()).collect();
        let mut header = vec!["Sequence".to_string(), "Frames".to_string()];
        for n in &names {
            header.push(format!("{n} Dice"));
            header.push(format!("{n} HD95"));
            header.push(format!("{n} HD"));
            if mm {
                header.push(format!("{n} HD95 mm"));
                header.push(format!("{n} HD mm"));
            }
            header.push(format!("{n} missed"));
        }
        table_header(&mut md, &header);
        for s in &self.sequences {
            let scored = s.frames.len();
            let mut row = vec![s.name.clone(), scored.to_string()];
            for n in &names {
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
                    }
                    None => {
                        row.extend(std::iter::repeat_n("–".to_string(), if mm { 6 } else { 4 }))
                    }
                }
            }
            table_row(&mut md, &row);
        }
        let frames: usize = self.sequences.iter().map(|s| s.frames.len()).sum();
        let mut row = vec!["**mean ± std**".to_string(), frames.to_string()];
        for c in &shown {
            row.push(pct(Some(c.dice)));
            row.push(pm(c.hd95));
            row.push(pm(c.hd));
            if mm {
                row.push(pm(c.hd95_mm));
                row.push(pm(c.hd_mm));
            }
            row.push(c.missed.to_string());
        }
        table_row(&mut md, &row);
        md
    }
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

/// One table comparing methods (a row per report): mean ± std over sequences per class.
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
    let mut header = vec!["Method".to_string(), "Dataset".to_string()];
    for (_, n) in &names {
        header.push(format!("{n} Dice %"));
        header.push(format!("{n} HD95 px"));
        header.push(format!("{n} HD px"));
        if mm {
            header.push(format!("{n} HD95 mm"));
        }
    }
    header.push("frames/s".to_string());
    let mut md = String::new();
    table_header(&mut md, &header);
    for r in reports {
        let mut row = vec![r.method.clone(), r.dataset.clone()];
        for (label, _) in &names {
            match r.summary.iter().find(|c| c.label == *label) {
                Some(c) => {
                    row.push(pct(Some(c.dice)));
                    row.push(pm(c.hd95));
                    row.push(pm(c.hd));
                    if mm {
                        row.push(pm(c.hd95_mm));
                    }
                }
                None => row.extend(std::iter::repeat_n("–".to_string(), if mm { 4 } else { 3 })),
            }
        }
        row.push(
            r.timing
                .as_ref()
                .map_or("–".into(), |t| format!("{:.1}", t.fps())),
        );
        table_row(&mut md, &row);
    }
    md
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval::score::{score_frame, summarise_sequence};
    use crate::flow::LabelMap;

    fn report() -> Report {
        let mut a = LabelMap::new(16, 16);
        a.data[5 * 16 + 5..5 * 16 + 9].fill(2);
        let names = |l: u8| crate::eval::dataset::label_name(&Default::default(), l);
        let seqs = vec![
            summarise_sequence(
                "s1",
                "000000.png",
                Some((0.1, 0.1)),
                vec![score_frame("000001.png", 1, &a, &a, &[2], Some((0.1, 0.1)))],
                &names,
            ),
            summarise_sequence(
                "s2",
                "000000.png",
                None,
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
    }
}
