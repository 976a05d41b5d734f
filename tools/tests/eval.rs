//! `pddflow-eval` end to end on tiny datasets written here, through the real element with the
//! test models (tests/models): identity_pool gives zero flow, shift gives a constant backward
//! flow of (-3, -2) model pixels, i.e. content moving (+6, +3) frame pixels at 128x96 over the
//! 64x64 model input.

use gstpddflow::flow::LabelMap;
use pddflow_tools::eval::report::Report;
use std::path::{Path, PathBuf};
use std::process::Command;

const W: usize = 128;
const H: usize = 96;

fn model(name: &str) -> String {
    format!("{}/../tests/models/{name}", env!("CARGO_MANIFEST_DIR"))
}

fn eval(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_pddflow-eval"))
        .args(args)
        .arg("--quiet")
        .output()
        .expect("pddflow-eval runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A rectangle of `label` at (x0, y0), size rw x rh, on a W x H map.
fn rect(x0: usize, y0: usize, rw: usize, rh: usize, label: u8) -> LabelMap {
    let mut m = LabelMap::new(W, H);
    for y in y0..y0 + rh {
        for x in x0..x0 + rw {
            m.data[y * W + x] = label;
        }
    }
    m
}

/// Reference mask: a vein and an artery, away from the borders.
fn reference_mask() -> LabelMap {
    let mut m = rect(20, 30, 24, 20, 1);
    for y in 20..44 {
        for x in 70..100 {
            m.data[y * W + x] = 2;
        }
    }
    m
}

/// `m` moved by (dx, dy) pixels, background shifted in.
fn shifted(m: &LabelMap, dx: usize, dy: usize) -> LabelMap {
    let mut out = LabelMap::new(m.width, m.height);
    for y in dy..m.height {
        for x in dx..m.width {
            out.data[y * m.width + x] = m.get(x - dx, y - dy);
        }
    }
    out
}

fn write_frame(path: &Path, seed: u32) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let mut s = seed.wrapping_mul(2654435761).wrapping_add(7);
    let img = image::GrayImage::from_fn(W as u32, H as u32, |_, _| {
        s ^= s << 13;
        s ^= s >> 17;
        s ^= s << 5;
        image::Luma([(s >> 24) as u8])
    });
    img.save(path).unwrap();
}

/// A sequence with `frames` frames and the given masks by frame index.
/// `pddflow-eval` running the element on `data` with the test model `model_name`, writing to
/// `out`, plus `extra` arguments.
fn run_element(
    data: &Path,
    out: &Path,
    model_name: &str,
    extra: &[&str],
) -> (bool, String, String) {
    let model = model(model_name);
    let mut args = vec![
        "--dataset",
        data.to_str().unwrap(),
        "--predictions",
        out.to_str().unwrap(),
        "--model",
        &model,
    ];
    args.extend_from_slice(extra);
    eval(&args)
}

fn sequence(root: &Path, name: &str, frames: usize, masks: &[(usize, LabelMap)]) -> PathBuf {
    let dir = root.join(name);
    for i in 0..frames {
        write_frame(&dir.join(format!("frames/{i:06}.png")), i as u32 + 1);
    }
    std::fs::create_dir_all(dir.join("masks")).unwrap();
    for (i, m) in masks {
        m.save_png(&dir.join(format!("masks/{i:06}.png"))).unwrap();
    }
    dir
}

/// A sequence "s" of two frames, both annotated with the reference mask.
fn annotated_pair(root: &Path) -> PathBuf {
    sequence(
        root,
        "s",
        2,
        &[(0, reference_mask()), (1, reference_mask())],
    )
}

fn load(stem: &Path) -> Report {
    Report::load(&stem.with_extension("json")).unwrap()
}

#[test]
fn identical_masks_give_dice_one_and_hd_zero() {
    let t = tempfile::tempdir().unwrap();
    let data = t.path().join("data");
    let m = reference_mask();
    // Frame 2 is not annotated: it is pushed (and predicted) but not scored.
    sequence(
        &data,
        "static",
        4,
        &[(0, m.clone()), (1, m.clone()), (3, m.clone())],
    );
    std::fs::write(
        data.join("static/meta.json"),
        r#"{"pixel_spacing_mm": 0.2}"#,
    )
    .unwrap();
    let out = t.path().join("out");
    let (ok, stdout, stderr) = run_element(&data, &out, "identity_pool", &[]);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("| static | 2 |"), "{stdout}");
    for i in 1..4 {
        let p = LabelMap::load_png(&out.join(format!("static/masks/{i:06}.png"))).unwrap();
        assert_eq!(p, m, "frame {i}");
    }
    assert!(
        !out.join("static/masks/000000.png").exists(),
        "no prediction for the reference"
    );
    let r = load(&out.join("report"));
    let s = &r.sequences[0];
    assert_eq!(s.frames.len(), 2);
    assert_eq!(s.frames[1].position, 3);
    let names: Vec<_> = s.classes.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["vein", "artery", "overall"]);
    for c in &s.classes {
        assert_eq!(
            (c.dice, c.hd95, c.hd, c.hd_mm),
            (1.0, Some(0.0), Some(0.0), Some(0.0))
        );
    }
    assert_eq!(r.summary[0].dice.mean, 1.0);
    assert_eq!(r.timing.as_ref().unwrap().frames, 4);
    assert!(out.join("report.md").is_file() && out.join("report-dice.png").is_file());
}

#[test]
fn known_shift_gives_the_known_hd() {
    let t = tempfile::tempdir().unwrap();
    let data = t.path().join("data");
    let m = reference_mask();
    // Every prediction is the reference moved by (+6, +3). Frame 1's truth did not move: each
    // rectangle's HD is the corner-to-corner distance sqrt(6² + 3²); frame 2's truth moved
    // exactly as predicted.
    sequence(
        &data,
        "moving",
        3,
        &[(0, m.clone()), (1, m.clone()), (2, shifted(&m, 6, 3))],
    );
    std::fs::write(
        data.join("moving/meta.json"),
        r#"{"pixel_spacing_mm": [0.1, 0.3]}"#,
    )
    .unwrap();
    let out = t.path().join("out");
    let stem = t.path().join("reports/shift");
    let (ok, _, stderr) = run_element(&data, &out, "shift", &["--report", stem.to_str().unwrap()]);
    assert!(ok, "{stderr}");
    let r = load(&stem);
    let frames = &r.sequences[0].frames;
    let hd = 45f64.sqrt();
    for c in &frames[0].classes {
        assert!((c.hd.unwrap() - hd).abs() < 1e-9, "{c:?}");
        // Only the 4 boundary pixels of the corner region lie farther than 6 px (6.71, 6.40,
        // 6.32, 6.08), under 5% of the 84 (vein) and 104 (artery) boundary pixels; the rest of
        // the left/top edges are at exactly 6.
        assert_eq!(c.hd95, Some(6.0), "{c:?}");
        // Anisotropic spacing: 6 px at 0.1 mm and 3 px at 0.3 mm.
        assert!((c.hd_mm.unwrap() - (0.6f64.powi(2) + 0.9f64.powi(2)).sqrt()).abs() < 1e-9);
    }
    // Vein 24x20 moved (6, 3): overlap 18x17.
    let vein = &frames[0].classes[0];
    assert!(
        (vein.dice - 2.0 * 18.0 * 17.0 / (2.0 * 480.0)).abs() < 1e-9,
        "{vein:?}"
    );
    for c in &frames[1].classes {
        assert_eq!((c.dice, c.hd), (1.0, Some(0.0)), "{c:?}");
    }
    // The same masks scored from the predictions directory give the same numbers.
    let stem2 = t.path().join("reports/rescored");
    let (ok, _, stderr) = eval(&[
        "--dataset",
        data.to_str().unwrap(),
        "--score-predictions",
        out.to_str().unwrap(),
        "--report",
        stem2.to_str().unwrap(),
    ]);
    assert!(ok, "{stderr}");
    let r2 = load(&stem2);
    // ... but for the element's tracking confidence and vein-closed verdict, which files do
    // not carry.
    let mut without_confidence = r.sequences.clone();
    for s in &mut without_confidence {
        s.confidence_dice = None;
        s.frames
            .iter_mut()
            .for_each(|f| f.tracking_confidence = None);
        if let Some(v) = &mut s.vein_verdict {
            v.element_closed = None;
        }
    }
    assert!(r.sequences[0].frames[0].tracking_confidence.is_some());
    let verdict = r.sequences[0]
        .vein_verdict
        .expect("a vein in the reference");
    assert_eq!(verdict.element_closed, Some(false), "{verdict:?}");
    assert_eq!(r2.sequences, without_confidence);
    assert_eq!(r2.method, "pddflow keyframe", "method from the manifest");
    // And a comparison table has a row per report.
    let (ok, table, stderr) = eval(&[
        "--compare",
        stem.with_extension("json").to_str().unwrap(),
        stem2.with_extension("json").to_str().unwrap(),
    ]);
    assert!(ok, "{stderr}");
    assert_eq!(
        table
            .lines()
            .filter(|l| l.starts_with("| pddflow keyframe"))
            .count(),
        4,
        "a row per report in each of the two tables: {table}"
    );
}

#[test]
fn chain_mode_runs_and_composes() {
    let t = tempfile::tempdir().unwrap();
    let data = t.path().join("data");
    let m = reference_mask();
    // Chain: each frame-to-frame flow is (-3, -2) model px, composed back to the reference, so
    // frame k is predicted moved by (6k, 3k).
    sequence(
        &data,
        "s",
        3,
        &[
            (0, m.clone()),
            (1, shifted(&m, 6, 3)),
            (2, shifted(&m, 12, 6)),
        ],
    );
    let out = t.path().join("out");
    let (ok, _, stderr) = run_element(&data, &out, "shift", &["--mode", "chain"]);
    assert!(ok, "{stderr}");
    let r = load(&out.join("report"));
    assert_eq!(r.mode.as_deref(), Some("chain"));
    for f in &r.sequences[0].frames {
        for c in &f.classes {
            assert_eq!((c.dice, c.hd), (1.0, Some(0.0)), "{} {c:?}", f.frame);
        }
    }
}

fn expect_error(data: &Path, out: &Path, needles: &[&str]) {
    let (ok, _, stderr) = run_element(data, out, "identity_pool", &[]);
    assert!(!ok, "should fail");
    for n in needles {
        assert!(stderr.contains(n), "{n:?} not in: {stderr}");
    }
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn malformed_datasets_fail_with_clear_messages() {
    let t = tempfile::tempdir().unwrap();
    let out = t.path().join("out");
    let m = reference_mask();

    let empty = t.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    expect_error(&empty, &out, &["is empty", "frames/NNNNNN.png"]);

    let no_ref = t.path().join("no_ref");
    sequence(&no_ref, "s", 2, &[(1, m.clone())]);
    expect_error(
        &no_ref,
        &out,
        &["reference frame", "has no mask", "000000.png"],
    );

    let mismatch = t.path().join("mismatch");
    let dir = sequence(&mismatch, "s", 2, &[(0, m.clone())]);
    LabelMap::new(64, 48)
        .save_png(&dir.join("masks/000001.png"))
        .unwrap();
    expect_error(
        &mismatch,
        &out,
        &["size mismatch", "000001.png", "64x48", "128x96"],
    );

    let bad_frame = t.path().join("bad_frame");
    let dir = sequence(&bad_frame, "s", 3, &[(0, m.clone()), (1, m.clone())]);
    std::fs::write(dir.join("frames/000002.png"), b"not a png").unwrap();
    expect_error(&bad_frame, &out, &["000002.png", "not a readable image"]);

    let frame_size = t.path().join("frame_size");
    let dir = sequence(&frame_size, "s", 2, &[(0, m.clone()), (1, m.clone())]);
    image::GrayImage::new(64, 64)
        .save(dir.join("frames/000001.png"))
        .unwrap();
    expect_error(&frame_size, &out, &["size mismatch", "64x64", "128x96"]);

    let bad_meta = t.path().join("bad_meta");
    let dir = sequence(&bad_meta, "s", 2, &[(0, m.clone())]);
    std::fs::write(dir.join("meta.json"), r#"{"pixel_spacing_mm": -1}"#).unwrap();
    expect_error(&bad_meta, &out, &["meta.json", "pixel_spacing_mm"]);

    // Scoring a predictions directory that lacks an annotated frame's mask.
    let ok_data = t.path().join("ok");
    sequence(&ok_data, "s", 2, &[(0, m.clone()), (1, m.clone())]);
    let pred = t.path().join("pred");
    std::fs::create_dir_all(&pred).unwrap();
    let (ok, _, stderr) = eval(&[
        "--dataset",
        ok_data.to_str().unwrap(),
        "--score-predictions",
        pred.to_str().unwrap(),
    ]);
    assert!(!ok);
    assert!(
        stderr.contains("prediction missing") && stderr.contains("000001.png"),
        "{stderr}"
    );
}

#[test]
fn missing_model_is_reported_not_panicked() {
    let t = tempfile::tempdir().unwrap();
    let data = t.path().join("data");
    annotated_pair(&data);
    let (ok, _, stderr) = eval(&[
        "--dataset",
        data.to_str().unwrap(),
        "--predictions",
        t.path().join("out").to_str().unwrap(),
        "--model",
        "/nonexistent/model",
    ]);
    assert!(!ok);
    assert!(stderr.contains("/nonexistent/model"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn a_dataset_with_nothing_to_score_fails_with_a_message() {
    let t = tempfile::tempdir().unwrap();
    let data = t.path().join("data");
    // Only the reference is annotated: there is nothing to score it against.
    sequence(&data, "s", 3, &[(0, reference_mask())]);
    expect_error(
        &data,
        &t.path().join("out"),
        &["nothing to score", "annotated frame"],
    );
    let pred = t.path().join("pred");
    std::fs::create_dir_all(&pred).unwrap();
    let (ok, stdout, stderr) = eval(&[
        "--dataset",
        data.to_str().unwrap(),
        "--score-predictions",
        pred.to_str().unwrap(),
    ]);
    assert!(!ok, "{stdout}");
    assert!(stderr.contains("nothing to score"), "{stderr}");
}

#[test]
fn score_predictions_size_mismatch_names_each_file_in_its_role() {
    let t = tempfile::tempdir().unwrap();
    let data = t.path().join("data");
    annotated_pair(&data);
    let pred = t.path().join("pred");
    let prediction = pred.join("s/masks/000001.png");
    std::fs::create_dir_all(prediction.parent().unwrap()).unwrap();
    LabelMap::new(64, 48).save_png(&prediction).unwrap();
    let (ok, _, stderr) = eval(&[
        "--dataset",
        data.to_str().unwrap(),
        "--score-predictions",
        pred.to_str().unwrap(),
    ]);
    assert!(!ok);
    let truth = data.join("s/masks/000001.png");
    let expected = format!(
        "mask {} is 128x96 but the prediction {} is 64x48",
        truth.display(),
        prediction.display()
    );
    assert!(stderr.contains(&expected), "{expected:?} not in: {stderr}");
}

#[test]
fn reports_dice_windows_area_ratios_extra_regions_and_confidence() {
    let t = tempfile::tempdir().unwrap();
    let data = t.path().join("data");
    // The reference: vein, artery and a second, small vein. Zero flow keeps all three in every
    // prediction. Frames 1-4 are annotated as the reference; in frames 5 and 6 the vein is half
    // as wide and the small vein gone: predicted area about twice the truth's, one extra vein
    // region, and Dice falls over the last window.
    let with_blob = |mut m: LabelMap| {
        for y in 70..76 {
            m.data[y * W + 60..y * W + 66].fill(1);
        }
        m
    };
    let m = with_blob(reference_mask());
    let mut narrow = reference_mask();
    for y in 30..50 {
        narrow.data[y * W + 32..y * W + 44].fill(0);
    }
    let masks: Vec<(usize, LabelMap)> = (0..7)
        .map(|i| (i, if i < 5 { m.clone() } else { narrow.clone() }))
        .collect();
    sequence(&data, "s", 7, &masks);
    let out = t.path().join("out");
    let (ok, stdout, stderr) = run_element(&data, &out, "identity_pool", &[]);
    assert!(ok, "{stderr}");
    let r = load(&out.join("report"));
    let s = &r.sequences[0];
    assert_eq!(s.frames.len(), 6);
    assert!(s.frames.iter().all(|f| f.tracking_confidence.is_some()));
    let (vein, overall) = (&s.classes[0], s.classes.last().unwrap());
    // Six scored frames: windows of two, positions 1-2 and 5-6.
    let w = overall.windows.unwrap();
    assert_eq!(
        (w.first.from, w.first.to, w.last.from, w.last.to),
        (1, 2, 5, 6)
    );
    assert_eq!(w.first.dice, 1.0);
    assert!(w.drift < -0.05, "{w:?}");
    let ratio = vein.area_ratio.unwrap();
    assert_eq!(
        (ratio.frames, ratio.median, ratio.shrinking),
        (6, 1.0, false)
    );
    assert!(ratio.max > 2.0, "{ratio:?}");
    let extra = vein.extra_regions.unwrap();
    assert_eq!((extra.frames, extra.max), (6, 1));
    assert!((extra.share - 1.0 / 3.0).abs() < 1e-12, "{extra:?}");
    if let Some(c) = s.confidence_dice {
        assert_eq!(c.frames, 6);
        assert_eq!(r.confidence_dice.unwrap().pooled, c);
    }
    let summary = r.summary.last().unwrap();
    assert_eq!(summary.windows.unwrap().drift.mean, w.drift);
    for needle in [
        "Dice first %",
        "vein area ratio",
        "vein extra regions",
        "conf–Dice ρ",
    ] {
        assert!(stdout.contains(needle), "{needle}: {stdout}");
    }
    // The same masks scored from files: the figures without confidences.
    let (ok, _, stderr) = eval(&[
        "--dataset",
        data.to_str().unwrap(),
        "--score-predictions",
        out.to_str().unwrap(),
        "--name",
        "files",
        "--report",
        t.path().join("files").to_str().unwrap(),
    ]);
    assert!(ok, "{stderr}");
    let f = load(&t.path().join("files"));
    assert!(f.sequences[0]
        .frames
        .iter()
        .all(|f| f.tracking_confidence.is_none()));
    assert_eq!(f.confidence_dice, None);
    assert_eq!(f.sequences[0].classes[0].area_ratio, Some(ratio));
    assert_eq!(f.sequences[0].classes.last().unwrap().windows, Some(w));
    let (ok, table, stderr) = eval(&[
        "--compare",
        out.join("report.json").to_str().unwrap(),
        t.path().join("files.json").to_str().unwrap(),
    ]);
    assert!(ok, "{stderr}");
    assert!(
        table.contains("| Method | Dataset | Dice first % |"),
        "{table}"
    );
    assert!(table.contains("| files |"), "{table}");
}
