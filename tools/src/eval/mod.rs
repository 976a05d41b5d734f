//! Evaluation of mask propagation with the evaluation protocol (docs/evaluation.md), and the
//! pieces the `pddflow-eval` and `pddflow-bench` tools share.
//!
//! * [`dataset`]: reading and validating datasets (`DATASET/<sequence>/{frames,masks}/NNNNNN.png`,
//!   optional `meta.json`), choosing the reference frame.
//! * [`score`]: per-frame scores (Dice, HD95, HD in pixels and millimetres) and their aggregation
//!   per sequence and over sequences (mean ± standard deviation, the paper's Table 1 shape), and
//!   how propagation holds: Dice per time window, predicted/true area, extra regions per frame,
//!   and the rank correlation of the element's tracking confidence with Dice.
//! * [`report`]: the report as JSON and Markdown, and the merge of several reports into one table.
//! * [`plot`]: Dice over time per sequence as a PNG.
//! * [`run`]: the thin GStreamer glue, `appsrc ! pddflow ! appsink`, that produces predictions.
//! * [`bench`]: timing statistics, memory readings and tables for `pddflow-bench`.
//!
//! Everything but [`run`] is pure Rust without GStreamer.

pub mod bench;
pub mod dataset;
pub mod plot;
pub mod report;
pub mod run;
pub mod score;

use std::path::{Path, PathBuf};
use thiserror::Error;

/// Why an evaluation could not be done. Messages name the file and say what was expected.
#[derive(Debug, Error)]
pub enum EvalError {
    #[error("{0}")]
    Dataset(String),
    #[error("cannot read {path}: {message}")]
    Read { path: PathBuf, message: String },
    #[error("cannot write {path}: {message}")]
    Write { path: PathBuf, message: String },
    #[error("{0}")]
    Pipeline(String),
}

impl EvalError {
    pub fn read(path: &Path, message: impl ToString) -> Self {
        Self::Read {
            path: path.to_path_buf(),
            message: message.to_string(),
        }
    }

    pub fn write(path: &Path, message: impl ToString) -> Self {
        Self::Write {
            path: path.to_path_buf(),
            message: message.to_string(),
        }
    }
}

use dataset::{load_mask_sized_as, Dataset, Frame, ReferenceChoice, Sequence};
use gstpddflow::flow::LabelMap;
use report::{Report, Timing};
use score::{label_areas, score_frame, summarise_sequence, FrameScore, SequenceScores};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// `PREDICTIONS/manifest.json`: which method wrote the predictions and which frame of each
/// sequence was the reference, so that scoring uses the same reference.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub method: String,
    /// Sequence name -> reference frame file name.
    pub references: BTreeMap<String, String>,
}

impl Manifest {
    pub const FILE: &'static str = "manifest.json";

    pub fn write(&self, dir: &Path) -> Result<(), EvalError> {
        let path = dir.join(Self::FILE);
        std::fs::create_dir_all(dir).map_err(|e| EvalError::write(dir, e))?;
        std::fs::write(
            &path,
            serde_json::to_string_pretty(self).expect("serialises"),
        )
        .map_err(|e| EvalError::write(&path, e))
    }

    /// The manifest of a predictions directory, if it has one.
    pub fn read(dir: &Path) -> Result<Option<Self>, EvalError> {
        let path = dir.join(Self::FILE);
        if !path.is_file() {
            return Ok(None);
        }
        let text = std::fs::read_to_string(&path).map_err(|e| EvalError::read(&path, e))?;
        serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| EvalError::read(&path, format!("not a predictions manifest: {e}")))
    }
}

/// Labels present in either map, background excluded.
pub fn labels_present(truth: &LabelMap, prediction: &LabelMap) -> Vec<u8> {
    let mut seen = [false; 256];
    for &v in truth.data.iter().chain(&prediction.data) {
        seen[v as usize] = true;
    }
    (1..=255u8).filter(|&l| seen[l as usize]).collect()
}

/// Scores one predicted mask against the frame's ground truth (if annotated). `prediction_name`
/// names the prediction in a size mismatch (e.g. "its frame", "the prediction P").
fn score_if_annotated(
    sequence: &Sequence,
    reference: usize,
    index: usize,
    frame: &Frame,
    prediction: &LabelMap,
    prediction_name: &str,
) -> Result<Option<FrameScore>, EvalError> {
    let Some(mask_path) = &frame.mask else {
        return Ok(None);
    };
    if index <= reference {
        return Ok(None);
    }
    let truth = load_mask_sized_as(
        mask_path,
        (prediction.width, prediction.height),
        prediction_name,
    )?;
    Ok(Some(score_frame(
        &frame.file,
        index - reference,
        &truth,
        prediction,
        &labels_present(&truth, prediction),
        sequence.meta.spacing_mm,
    )))
}

/// Summarises a sequence's scored frames. `size` is the size the truth masks were loaded at (that
/// of the predictions; `None` when no frame was scored): the reference frame's mask is loaded at
/// it for the areas that tell closed frames ([`score::CLOSED_FRACTION`]). A reference without a
/// mask (a manifest may name one) leaves every frame open. `predictions_name` names what has
/// `size` in a mismatch.
fn summarise(
    sequence: &Sequence,
    reference: usize,
    frames: Vec<FrameScore>,
    size: Option<(usize, usize)>,
    predictions_name: &str,
) -> Result<SequenceScores, EvalError> {
    let reference_areas = match (&sequence.frames[reference].mask, size) {
        (Some(path), Some(size)) => label_areas(&load_mask_sized_as(path, size, predictions_name)?),
        _ => Vec::new(),
    };
    Ok(summarise_sequence(
        &sequence.name,
        &sequence.frames[reference].file,
        sequence.meta.spacing_mm,
        &reference_areas,
        frames,
        &|l| sequence.label_name(l),
    ))
}

/// Fails when no sequence has an annotated frame after its reference (`references`, by
/// sequence): such an evaluation would report nothing.
fn check_something_to_score(dataset: &Dataset, references: &[usize]) -> Result<(), EvalError> {
    let scorable = dataset
        .sequences
        .iter()
        .zip(references)
        .any(|(s, &r)| s.frames.iter().skip(r + 1).any(|f| f.mask.is_some()));
    if scorable {
        return Ok(());
    }
    Err(EvalError::Dataset(format!(
        "nothing to score in {}: no sequence has an annotated frame after its reference frame \
         (the reference's mask is the input; scores need masks/NNNNNN.png for later frames)",
        dataset.root.display()
    )))
}

/// Frames that an element run pushes for `choice` (from each reference on), for progress bars.
pub fn frames_to_push(dataset: &Dataset, choice: ReferenceChoice) -> Result<u64, EvalError> {
    let mut n = 0;
    for s in &dataset.sequences {
        n += (s.frames.len() - s.reference_index(choice)?) as u64;
    }
    Ok(n)
}

/// Runs every sequence through the element, writes `out/<sequence>/masks/<frame>.png` for
/// every frame after the reference and `out/manifest.json`, and scores the annotated frames.
/// `tick` is called once per frame pushed.
pub fn evaluate_element(
    dataset: &Dataset,
    choice: ReferenceChoice,
    config: &run::ElementConfig,
    method: &str,
    out: &Path,
    tick: &dyn Fn(&str),
) -> Result<Report, EvalError> {
    // Validate every sequence's reference first: fail before any long run.
    let references: Vec<usize> = dataset
        .sequences
        .iter()
        .map(|s| s.reference_index(choice))
        .collect::<Result<_, _>>()?;
    check_something_to_score(dataset, &references)?;
    let mut manifest = Manifest {
        method: method.to_string(),
        references: BTreeMap::new(),
    };
    let mut sequences = Vec::new();
    let mut timing = Timing {
        frames: 0,
        seconds: 0.0,
    };
    let mut provider = String::new();
    // The longest frame side of each sequence: with working-size 0 it can pick the input size.
    let mut frame_sides = std::collections::BTreeSet::new();
    for (sequence, &reference) in dataset.sequences.iter().zip(&references) {
        let masks_dir = out.join(&sequence.name).join("masks");
        std::fs::create_dir_all(&masks_dir).map_err(|e| EvalError::write(&masks_dir, e))?;
        let mut frames = Vec::new();
        let mut size = None;
        let info = run::run_sequence(sequence, reference, config, |index, frame, labels, conf| {
            tick(&sequence.name);
            if index > reference {
                let path = masks_dir.join(&frame.file);
                labels
                    .save_png(&path)
                    .map_err(|e| EvalError::write(&path, e))?;
            }
            if let Some(score) =
                score_if_annotated(sequence, reference, index, frame, &labels, "its frame")?
            {
                size = Some((labels.width, labels.height));
                frames.push(FrameScore {
                    tracking_confidence: conf,
                    ..score
                });
            }
            Ok(())
        })?;
        timing.frames += info.frames;
        timing.seconds += info.seconds;
        provider = info.execution_provider;
        manifest.references.insert(
            sequence.name.clone(),
            sequence.frames[reference].file.clone(),
        );
        if let Some((w, h)) = size {
            frame_sides.insert(w.max(h));
        }
        let mut scores = summarise(sequence, reference, frames, size, "its frames")?;
        if let Some(verdict) = &mut scores.vein_verdict {
            verdict.element_closed = info.vein_closed;
        }
        sequences.push(scores);
    }
    manifest.write(out)?;
    let mut report = Report::new(
        method,
        &dataset.root.display().to_string(),
        &format!(
            "pddflow element (appsrc ! pddflow ! appsink), written to {}",
            out.display()
        ),
        &choice.to_string(),
        sequences,
    );
    report.mode = Some(config.mode.clone());
    let files = match &config.model {
        Some(dir) => gstpddflow::engine::model::ModelFiles::from_dir(dir),
        None => gstpddflow::engine::model::ModelFiles::embedded(),
    };
    // The input sizes the flow ran at (the element refused the run otherwise).
    let at = |m: &gstpddflow::engine::model::ModelFiles| {
        let sides: Vec<Option<usize>> = if frame_sides.is_empty() {
            vec![None]
        } else {
            frame_sides.iter().map(|&s| Some(s)).collect()
        };
        let sizes: std::collections::BTreeSet<(usize, usize)> = sides
            .into_iter()
            .filter_map(|side| {
                m.spec
                    .size_for_frame(config.working_size as usize, side)
                    .ok()
            })
            .collect();
        let sizes: Vec<String> = sizes.iter().map(|(w, h)| format!("{w}x{h}")).collect();
        if sizes.is_empty() {
            String::new()
        } else {
            format!(", at {}", sizes.join(" and "))
        }
    };
    report.model = Some(match (&config.model, files) {
        (Some(dir), Ok(m)) => format!(
            "{} ({} {}{})",
            dir.display(),
            m.spec.name,
            m.spec.version,
            at(&m)
        ),
        (None, Ok(m)) => format!("built-in ({} {}{})", m.spec.name, m.spec.version, at(&m)),
        (Some(dir), Err(_)) => dir.display().to_string(),
        (None, Err(_)) => "built-in".into(),
    });
    report.execution_provider = Some(provider);
    report.timing = Some(timing);
    Ok(report)
}

/// Scores the predictions in `predictions/<sequence>/masks/` without running the element. The
/// reference of each sequence comes from `predictions/manifest.json` when present, else `choice`.
pub fn score_predictions(
    dataset: &Dataset,
    choice: ReferenceChoice,
    predictions: &Path,
    method: &str,
) -> Result<Report, EvalError> {
    if !predictions.is_dir() {
        return Err(EvalError::Dataset(format!(
            "predictions {} is not a directory",
            predictions.display()
        )));
    }
    let manifest = Manifest::read(predictions)?;
    let mut references = Vec::new();
    for sequence in &dataset.sequences {
        references.push(
            match manifest
                .as_ref()
                .and_then(|m| m.references.get(&sequence.name))
            {
                Some(file) => sequence
                    .frames
                    .iter()
                    .position(|f| &f.file == file)
                    .ok_or_else(|| {
                        EvalError::Dataset(format!(
                            "{}: the reference {file} of sequence {} is not a frame of the dataset",
                            predictions.join(Manifest::FILE).display(),
                            sequence.name
                        ))
                    })?,
                None => sequence.reference_index(choice)?,
            },
        );
    }
    check_something_to_score(dataset, &references)?;
    let mut sequences = Vec::new();
    for (sequence, &reference) in dataset.sequences.iter().zip(&references) {
        let mut frames = Vec::new();
        let mut size = None;
        for (index, frame) in sequence.frames.iter().enumerate().skip(reference + 1) {
            if frame.mask.is_none() {
                continue;
            }
            let path = predictions
                .join(&sequence.name)
                .join("masks")
                .join(&frame.file);
            if !path.is_file() {
                return Err(EvalError::Dataset(format!(
                    "prediction missing: {} (annotated frame {} of sequence {})",
                    path.display(),
                    frame.file,
                    sequence.name
                )));
            }
            let prediction = LabelMap::load_png(&path)
                .map_err(|e| EvalError::read(&path, format!("not a readable label map ({e})")))?;
            let prediction_name = format!("the prediction {}", path.display());
            if let Some(score) = score_if_annotated(
                sequence,
                reference,
                index,
                frame,
                &prediction,
                &prediction_name,
            )? {
                size = Some((prediction.width, prediction.height));
                frames.push(score);
            }
        }
        sequences.push(summarise(
            sequence,
            reference,
            frames,
            size,
            "the predictions",
        )?);
    }
    let reference = if manifest.is_some() {
        format!("as in {}", predictions.join(Manifest::FILE).display())
    } else {
        choice.to_string()
    };
    Ok(Report::new(
        method,
        &dataset.root.display().to_string(),
        &format!("predictions read from {}", predictions.display()),
        &reference,
        sequences,
    ))
}

/// Writes `STEM.json`, `STEM.md` and `STEM-dice.png` (Dice over time per sequence). Returns the
/// paths written.
pub fn write_report(report: &Report, stem: &Path) -> Result<Vec<PathBuf>, EvalError> {
    if let Some(dir) = stem.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| EvalError::write(dir, e))?;
    }
    let with = |suffix: &str| {
        let mut s = stem.as_os_str().to_owned();
        s.push(suffix);
        PathBuf::from(s)
    };
    let (json, md, png) = (with(".json"), with(".md"), with("-dice.png"));
    std::fs::write(&json, report.to_json()).map_err(|e| EvalError::write(&json, e))?;
    let series: Vec<plot::Series> = report
        .sequences
        .iter()
        .map(|s| plot::Series {
            name: s.name.clone(),
            points: s
                .frames
                .iter()
                .filter_map(|f| f.overall_dice().map(|d| (f.position, d)))
                .collect(),
        })
        .collect();
    let text = plot::plot_dice_over_time(
        &png,
        &format!("Dice over time: {}", report.method),
        &series,
        900,
        500,
    )?;
    let mut markdown = report.to_markdown();
    markdown.push_str(&format!(
        "\nDice over time per sequence: {}{}\n",
        png.file_name().unwrap_or_default().to_string_lossy(),
        if text {
            ""
        } else {
            " (drawn without text: no font found; set PDDFLOW_FONT to a .ttf file)"
        }
    ));
    std::fs::write(&md, markdown).map_err(|e| EvalError::write(&md, e))?;
    Ok(vec![json, md, png])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rect(x0: usize, y0: usize, rw: usize, rh: usize) -> LabelMap {
        score::tests::rect(20, 20, x0, y0, rw, rh, 1)
    }

    #[test]
    fn scored_predictions_tell_closed_frames_by_the_reference_mask() {
        let t = tempfile::tempdir().unwrap();
        let (data, pred) = (t.path().join("seq"), t.path().join("pred"));
        // Reference vein 10x10 = 100 px; frame 1 open, frame 2 shut to 2x2 = 4 px (closed),
        // predicted 4x5 = 20 px; frame 3 has no mask.
        let masks = [rect(5, 5, 10, 10), rect(5, 5, 10, 10), rect(8, 8, 2, 2)];
        let predictions = [rect(5, 5, 10, 10), rect(7, 7, 4, 5), rect(5, 5, 10, 10)];
        let pred_masks = pred.join("seq").join("masks");
        for dir in [data.join("frames"), data.join("masks"), pred_masks.clone()] {
            std::fs::create_dir_all(dir).unwrap();
        }
        for i in 0..4 {
            let file = format!("{i:06}.png");
            image::GrayImage::from_pixel(20, 20, image::Luma([40]))
                .save(data.join("frames").join(&file))
                .unwrap();
            if let Some(m) = masks.get(i) {
                m.save_png(&data.join("masks").join(&file)).unwrap();
            }
            if i > 0 {
                predictions[i - 1]
                    .save_png(&pred_masks.join(&file))
                    .unwrap();
            }
        }
        let dataset = Dataset::open(&data).unwrap();
        let report = score_predictions(&dataset, ReferenceChoice::First, &pred, "m").unwrap();
        let vein = &report.sequences[0].classes[0];
        assert_eq!((vein.frames, vein.reference_area), (2, 100));
        assert_eq!(vein.dice_open, Some(1.0));
        let closed = vein.closed.as_ref().unwrap();
        assert_eq!(closed.frames, 1);
        assert!((closed.predicted_area - 0.2).abs() < 1e-12);
        assert!((closed.true_area - 0.04).abs() < 1e-12);
        let summary = report.summary[0].closed.as_ref().unwrap();
        assert_eq!((summary.sequences, summary.frames), (1, 1));
        assert!(report.to_markdown().contains("vein closed area %"));
    }
}
