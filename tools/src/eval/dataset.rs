//! Datasets in the layout of docs/contracts.md:
//!
//! ```text
//! DATASET/<sequence>/frames/NNNNNN.png   8-bit B-mode frames, in display order (file name order)
//! DATASET/<sequence>/masks/NNNNNN.png    label maps of annotated frames (same name as the frame)
//! DATASET/<sequence>/meta.json           optional: pixel spacing in mm, frame rate, label names
//! ```
//!
//! A directory that itself holds `frames/` is read as a dataset of one sequence.

use super::EvalError;
use gstpddflow::flow::LabelMap;
use rand::{Rng, SeedableRng};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// One frame of a sequence and its mask, if annotated.
#[derive(Clone, Debug, PartialEq)]
pub struct Frame {
    /// File name, e.g. `000042.png` (also the mask's and the prediction's file name).
    pub file: String,
    pub path: PathBuf,
    pub mask: Option<PathBuf>,
}

/// What `meta.json` says that evaluation uses.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SequenceMeta {
    /// Millimetres per pixel, horizontally and vertically.
    pub spacing_mm: Option<(f64, f64)>,
    pub frame_rate: Option<f64>,
    /// Label names by id, from `labels` (`{"2": "artery"}`).
    pub labels: BTreeMap<u8, String>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Sequence {
    pub name: String,
    pub dir: PathBuf,
    pub frames: Vec<Frame>,
    pub meta: SequenceMeta,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Dataset {
    pub root: PathBuf,
    pub sequences: Vec<Sequence>,
}

/// Which frame of a sequence is the reference (its mask is the input; earlier frames are skipped).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ReferenceChoice {
    /// The first frame (docs/evaluation.md).
    #[default]
    First,
    /// A random annotated frame in the first fifth of the sequence (the paper's choice), drawn
    /// from `seed` and the sequence name, so that a sequence's choice does not depend on which
    /// other sequences the dataset holds.
    Random { seed: u64 },
}

impl std::fmt::Display for ReferenceChoice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReferenceChoice::First => write!(f, "first frame"),
            ReferenceChoice::Random { seed } => {
                write!(f, "random annotated frame in the first fifth (seed {seed})")
            }
        }
    }
}

fn is_png(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("png"))
}

/// PNG file names in `dir`, sorted.
fn png_files(dir: &Path) -> Result<Vec<String>, EvalError> {
    let entries = std::fs::read_dir(dir).map_err(|e| EvalError::read(dir, e))?;
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| EvalError::read(dir, e))?;
        let path = entry.path();
        if path.is_file() && is_png(&path) {
            match entry.file_name().into_string() {
                Ok(name) => names.push(name),
                Err(name) => {
                    return Err(EvalError::Dataset(format!(
                        "{}: file name {name:?} is not UTF-8",
                        dir.display()
                    )))
                }
            }
        }
    }
    names.sort();
    Ok(names)
}

fn number(v: &serde_json::Value) -> Option<f64> {
    v.as_f64().filter(|x| x.is_finite() && *x > 0.0)
}

/// Parses `meta.json`. Spacing keys: `pixel_spacing_mm` (or `spacing_mm`), a positive number or
/// `[sx, sy]`; frame rate: `frame_rate` (or `fps`); labels: `{"id": "name"}`.
pub fn parse_meta(text: &str, path: &Path) -> Result<SequenceMeta, EvalError> {
    let bad = |what: String| EvalError::Dataset(format!("{}: {what}", path.display()));
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|e| bad(format!("not valid JSON: {e}")))?;
    let obj = value
        .as_object()
        .ok_or_else(|| bad("expected a JSON object".into()))?;
    let mut meta = SequenceMeta::default();
    for key in ["pixel_spacing_mm", "spacing_mm"] {
        let Some(v) = obj.get(key) else { continue };
        let spacing = match v {
            serde_json::Value::Array(a) if a.len() == 2 => number(&a[0]).zip(number(&a[1])),
            serde_json::Value::Array(a) if a.len() == 1 => number(&a[0]).map(|s| (s, s)),
            other => number(other).map(|s| (s, s)),
        };
        meta.spacing_mm = Some(spacing.ok_or_else(|| {
            bad(format!(
                "{key} must be a positive number or [sx, sy] in mm per pixel, got {v}"
            ))
        })?);
        break;
    }
    for key in ["frame_rate", "fps"] {
        if let Some(v) = obj.get(key) {
            meta.frame_rate = Some(
                number(v)
                    .ok_or_else(|| bad(format!("{key} must be a positive number, got {v}")))?,
            );
            break;
        }
    }
    if let Some(labels) = obj.get("labels") {
        let map = labels
            .as_object()
            .ok_or_else(|| bad("labels must be an object {\"id\": \"name\"}".into()))?;
        for (k, v) in map {
            let id: u8 = k
                .parse()
                .map_err(|_| bad(format!("label id {k:?} is not a number from 0 to 255")))?;
            let name = v
                .as_str()
                .ok_or_else(|| bad(format!("label {k} must have a string name")))?;
            meta.labels.insert(id, name.to_string());
        }
    }
    Ok(meta)
}

impl Sequence {
    /// Reads one sequence directory (with `frames/`, optional `masks/` and `meta.json`).
    pub fn open(dir: &Path) -> Result<Self, EvalError> {
        let name = dir
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("sequence")
            .to_string();
        let frames_dir = dir.join("frames");
        if !frames_dir.is_dir() {
            return Err(EvalError::Dataset(format!(
                "sequence {}: no frames/ directory",
                dir.display()
            )));
        }
        let frame_files = png_files(&frames_dir)?;
        if frame_files.is_empty() {
            return Err(EvalError::Dataset(format!(
                "sequence {name}: {} holds no PNG frames",
                frames_dir.display()
            )));
        }
        let masks_dir = dir.join("masks");
        let mask_files = if masks_dir.is_dir() {
            png_files(&masks_dir)?
        } else {
            Vec::new()
        };
        if let Some(orphan) = mask_files
            .iter()
            .find(|m| frame_files.binary_search(m).is_err())
        {
            return Err(EvalError::Dataset(format!(
                "sequence {name}: mask {} has no frame {} (masks must have their frame's file name)",
                masks_dir.join(orphan).display(),
                frames_dir.join(orphan).display()
            )));
        }
        let frames = frame_files
            .into_iter()
            .map(|file| Frame {
                path: frames_dir.join(&file),
                mask: mask_files
                    .binary_search(&file)
                    .is_ok()
                    .then(|| masks_dir.join(&file)),
                file,
            })
            .collect();
        let meta_path = dir.join("meta.json");
        let meta = if meta_path.is_file() {
            let text =
                std::fs::read_to_string(&meta_path).map_err(|e| EvalError::read(&meta_path, e))?;
            parse_meta(&text, &meta_path)?
        } else {
            SequenceMeta::default()
        };
        Ok(Self {
            name,
            dir: dir.to_path_buf(),
            frames,
            meta,
        })
    }

    /// Index of the reference frame. Fails when that frame has no mask.
    pub fn reference_index(&self, choice: ReferenceChoice) -> Result<usize, EvalError> {
        let index = match choice {
            ReferenceChoice::First => 0,
            ReferenceChoice::Random { seed } => {
                let fifth = self.frames.len().div_ceil(5).max(1);
                let candidates: Vec<usize> = (0..fifth)
                    .filter(|&i| self.frames[i].mask.is_some())
                    .collect();
                if candidates.is_empty() {
                    return Err(EvalError::Dataset(format!(
                        "sequence {}: no annotated frame in its first fifth ({fifth} frames) to \
                         draw the reference from; add masks there or use --reference first",
                        self.name
                    )));
                }
                let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed ^ fnv1a(&self.name));
                candidates[rng.random_range(0..candidates.len())]
            }
        };
        let frame = &self.frames[index];
        if frame.mask.is_none() {
            return Err(EvalError::Dataset(format!(
                "sequence {}: the reference frame {} has no mask (expected {}); the reference mask \
                 is the input that is propagated",
                self.name,
                frame.path.display(),
                self.dir.join("masks").join(&frame.file).display()
            )));
        }
        Ok(index)
    }

    /// Name of the label id: meta.json's name, else vein (1), artery (2) or class-N.
    pub fn label_name(&self, id: u8) -> String {
        label_name(&self.meta.labels, id)
    }
}

/// Name of a label id given meta.json's names.
pub fn label_name(names: &BTreeMap<u8, String>, id: u8) -> String {
    names
        .get(&id)
        .cloned()
        .unwrap_or_else(|| gstpddflow::flow::labels::default_name(id as usize))
}

fn fnv1a(s: &str) -> u64 {
    s.bytes().fold(0xcbf29ce484222325u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x100000001b3)
    })
}

impl Dataset {
    /// Reads a dataset: every subdirectory with `frames/` is a sequence (sorted by name).
    pub fn open(root: &Path) -> Result<Self, EvalError> {
        if !root.is_dir() {
            return Err(EvalError::Dataset(format!(
                "dataset {} is not a directory",
                root.display()
            )));
        }
        if root.join("frames").is_dir() {
            return Ok(Self {
                root: root.to_path_buf(),
                sequences: vec![Sequence::open(root)?],
            });
        }
        let mut dirs = Vec::new();
        for entry in std::fs::read_dir(root).map_err(|e| EvalError::read(root, e))? {
            let path = entry.map_err(|e| EvalError::read(root, e))?.path();
            if path.is_dir() && path.join("frames").is_dir() {
                dirs.push(path);
            }
        }
        dirs.sort();
        if dirs.is_empty() {
            return Err(EvalError::Dataset(format!(
                "dataset {} is empty: expected {}/<sequence>/frames/NNNNNN.png (and masks/ beside \
                 frames/)",
                root.display(),
                root.display()
            )));
        }
        let sequences = dirs
            .iter()
            .map(|d| Sequence::open(d))
            .collect::<Result<_, _>>()?;
        Ok(Self {
            root: root.to_path_buf(),
            sequences,
        })
    }
}

/// An 8-bit grey image as the element receives it.
#[derive(Clone, Debug, PartialEq)]
pub struct GrayFrame {
    pub width: usize,
    pub height: usize,
    pub data: Vec<u8>,
}

/// Decodes a frame PNG to 8-bit grey (colour is converted to luma, 16-bit scaled down).
pub fn load_frame(path: &Path) -> Result<GrayFrame, EvalError> {
    let img = image::open(path)
        .map_err(|e| EvalError::read(path, format!("not a readable image ({e})")))?
        .into_luma8();
    let (w, h) = img.dimensions();
    Ok(GrayFrame {
        width: w as usize,
        height: h as usize,
        data: img.into_raw(),
    })
}

/// Reads a label map and checks that it has the frame's size.
pub fn load_mask(path: &Path, width: usize, height: usize) -> Result<LabelMap, EvalError> {
    load_mask_sized_as(path, (width, height), "its frame")
}

/// Reads a label map and checks that it has the size of `other` (e.g. "the prediction P"),
/// which the message names.
pub fn load_mask_sized_as(
    path: &Path,
    (width, height): (usize, usize),
    other: &str,
) -> Result<LabelMap, EvalError> {
    let mask = LabelMap::load_png(path)
        .map_err(|e| EvalError::read(path, format!("not a readable label map ({e})")))?;
    if (mask.width, mask.height) != (width, height) {
        return Err(EvalError::Dataset(format!(
            "size mismatch: mask {} is {}x{} but {other} is {width}x{height}",
            path.display(),
            mask.width,
            mask.height
        )));
    }
    Ok(mask)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_png(path: &Path, w: u32, h: u32, v: u8) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        image::GrayImage::from_pixel(w, h, image::Luma([v]))
            .save(path)
            .unwrap();
    }

    fn sequence(root: &Path, name: &str, frames: usize, masks: &[usize]) -> PathBuf {
        let dir = root.join(name);
        for i in 0..frames {
            write_png(&dir.join(format!("frames/{i:06}.png")), 8, 6, 10);
        }
        for &i in masks {
            write_png(&dir.join(format!("masks/{i:06}.png")), 8, 6, 2);
        }
        dir
    }

    #[test]
    fn reads_sequences_in_order_with_masks() {
        let t = tempfile::tempdir().unwrap();
        sequence(t.path(), "b", 3, &[0, 2]);
        sequence(t.path(), "a", 2, &[0]);
        std::fs::create_dir_all(t.path().join("not-a-sequence")).unwrap();
        let d = Dataset::open(t.path()).unwrap();
        let names: Vec<_> = d.sequences.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["a", "b"]);
        let b = &d.sequences[1];
        assert_eq!(b.frames.len(), 3);
        assert!(b.frames[0].mask.is_some() && b.frames[1].mask.is_none());
        assert_eq!(b.frames[2].file, "000002.png");
        // A sequence directory alone is a dataset of one.
        let one = Dataset::open(&t.path().join("a")).unwrap();
        assert_eq!(one.sequences.len(), 1);
    }

    #[test]
    fn malformed_datasets_are_explained() {
        let t = tempfile::tempdir().unwrap();
        let err = Dataset::open(t.path()).unwrap_err().to_string();
        assert!(err.contains("is empty"), "{err}");
        let err = Dataset::open(&t.path().join("nope"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("not a directory"), "{err}");
        let dir = sequence(t.path(), "s", 2, &[1]);
        let d = Dataset::open(t.path()).unwrap();
        let err = d.sequences[0]
            .reference_index(ReferenceChoice::First)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("has no mask") && err.contains("000000.png"),
            "{err}"
        );
        write_png(&dir.join("masks/000009.png"), 8, 6, 0);
        let err = Dataset::open(t.path()).unwrap_err().to_string();
        assert!(
            err.contains("000009.png") && err.contains("has no frame"),
            "{err}"
        );
    }

    #[test]
    fn random_reference_is_an_annotated_frame_of_the_first_fifth() {
        let t = tempfile::tempdir().unwrap();
        sequence(t.path(), "s", 20, &[0, 1, 3, 10]);
        let s = &Dataset::open(t.path()).unwrap().sequences[0];
        let mut seen = std::collections::BTreeSet::new();
        for seed in 0..40 {
            let i = s.reference_index(ReferenceChoice::Random { seed }).unwrap();
            assert_eq!(
                i,
                s.reference_index(ReferenceChoice::Random { seed }).unwrap()
            );
            seen.insert(i);
        }
        assert_eq!(seen.into_iter().collect::<Vec<_>>(), vec![0, 1, 3]);
    }

    #[test]
    fn meta_spacing_is_a_number_or_a_pair() {
        let p = Path::new("meta.json");
        let m = parse_meta(r#"{"pixel_spacing_mm": 0.1, "fps": 20}"#, p).unwrap();
        assert_eq!(m.spacing_mm, Some((0.1, 0.1)));
        assert_eq!(m.frame_rate, Some(20.0));
        let m = parse_meta(
            r#"{"pixel_spacing_mm": [0.1, 0.2], "labels": {"2": "carotid"}}"#,
            p,
        )
        .unwrap();
        assert_eq!(m.spacing_mm, Some((0.1, 0.2)));
        assert_eq!(label_name(&m.labels, 2), "carotid");
        assert_eq!(label_name(&m.labels, 1), "vein");
        assert_eq!(parse_meta("{}", p).unwrap(), SequenceMeta::default());
        let err = parse_meta(r#"{"pixel_spacing_mm": "x"}"#, p)
            .unwrap_err()
            .to_string();
        assert!(err.contains("pixel_spacing_mm"), "{err}");
        assert!(parse_meta("[", p).unwrap_err().to_string().contains("JSON"));
    }

    #[test]
    fn unreadable_and_mismatched_files_are_explained() {
        let t = tempfile::tempdir().unwrap();
        let bad = t.path().join("bad.png");
        std::fs::write(&bad, b"not a png").unwrap();
        let err = load_frame(&bad).unwrap_err().to_string();
        assert!(
            err.contains("bad.png") && err.contains("not a readable image"),
            "{err}"
        );
        let good = t.path().join("m.png");
        write_png(&good, 8, 6, 1);
        let err = load_mask(&good, 9, 6).unwrap_err().to_string();
        assert!(err.contains("8x6") && err.contains("9x6"), "{err}");
        assert_eq!(load_mask(&good, 8, 6).unwrap().data, vec![1; 48]);
    }
}
