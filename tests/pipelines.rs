//! The scripts in pipelines/ and the examples, run as a user would (against the debug build).

use gst::prelude::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// target/debug, where cargo put the plugin and the examples for this test run.
fn build_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.parent().unwrap().parent().unwrap().to_path_buf()
}

fn run(program: &str, args: &[&str]) -> Output {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = Command::new(root.join(program))
        .args(args)
        .env("GST_PLUGIN_PATH", build_dir())
        .current_dir(root)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?} failed\nstdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Decodes the H.264 MP4 at `path`: (frames, width, height).
fn decode_mp4(path: &Path) -> (usize, i32, i32) {
    gst::init().unwrap();
    let pipeline = gst::parse::launch(&format!(
        "filesrc location=\"{}\" ! qtdemux ! avdec_h264 ! appsink name=sink sync=false",
        path.display()
    ))
    .unwrap()
    .downcast::<gst::Pipeline>()
    .unwrap();
    let sink = pipeline
        .by_name("sink")
        .unwrap()
        .downcast::<gst_app::AppSink>()
        .unwrap();
    pipeline.set_state(gst::State::Playing).unwrap();
    let mut frames = 0;
    let mut size = (0, 0);
    while let Some(sample) = sink.try_pull_sample(gst::ClockTime::from_seconds(30)) {
        let caps = sample.caps().expect("decoded frames have caps");
        let s = caps.structure(0).unwrap();
        size = (
            s.get::<i32>("width").unwrap(),
            s.get::<i32>("height").unwrap(),
        );
        frames += 1;
    }
    let eos = pipeline
        .bus()
        .unwrap()
        .timed_pop_filtered(
            gst::ClockTime::from_seconds(5),
            &[gst::MessageType::Eos, gst::MessageType::Error],
        )
        .map(|m| m.type_());
    pipeline.set_state(gst::State::Null).unwrap();
    assert_eq!(
        eos,
        Some(gst::MessageType::Eos),
        "{} decodes to the end",
        path.display()
    );
    (frames, size.0, size.1)
}

#[test]
fn png_sequence_to_label_maps() {
    let dir = tempfile::tempdir().unwrap();
    let frames = dir.path().join("frames");
    std::fs::create_dir(&frames).unwrap();
    let mut mask = gstpddflow::flow::LabelMap::new(96, 80);
    for y in 30..50 {
        for x in 20..44 {
            mask.data[y * 96 + x] = 2;
        }
    }
    // Names with gaps, as in sampled cine loops.
    for (i, name) in ["000003.png", "000010.png", "000011.png", "000040.png"]
        .iter()
        .enumerate()
    {
        let img = image::GrayImage::from_fn(96, 80, |x, y| {
            image::Luma([((x * 7 + y * 3 + i as u32 * 5) % 256) as u8])
        });
        img.save(frames.join(name)).unwrap();
    }
    let mask_path = dir.path().join("mask.png");
    mask.save_png(&mask_path).unwrap();
    let out = dir.path().join("labels");
    run(
        "pipelines/png-sequence-to-labels.sh",
        &[
            frames.to_str().unwrap(),
            mask_path.to_str().unwrap(),
            out.to_str().unwrap(),
            "chain",
        ],
    );
    let first = gstpddflow::flow::LabelMap::load_png(&out.join("000003.png")).unwrap();
    assert_eq!(first, mask, "the reference frame keeps its mask");
    let last = gstpddflow::flow::LabelMap::load_png(&out.join("000040.png")).unwrap();
    assert_eq!((last.width, last.height), (96, 80));
    assert!(
        last.areas().get(2).copied().unwrap_or(0) > 0,
        "the artery is propagated"
    );
}

#[test]
fn phantom_to_mp4_and_file_to_annotated_mp4() {
    let dir = tempfile::tempdir().unwrap();
    let exam = dir.path().join("exam.mp4");
    run(
        "pipelines/phantom-to-mp4.sh",
        &[exam.to_str().unwrap(), "30", "320x240"],
    );
    assert_eq!(
        decode_mp4(&exam),
        (30, 320, 240),
        "the exam: frames, width, height"
    );
    let annotated = dir.path().join("annotated.mp4");
    run(
        "pipelines/file-to-annotated-mp4.sh",
        &[exam.to_str().unwrap(), annotated.to_str().unwrap()],
    );
    assert_eq!(
        decode_mp4(&annotated),
        (30, 320, 240),
        "the annotated exam: every frame, at the input's size"
    );
}

#[test]
fn rtp_live_view_on_loopback() {
    // A port free right now, not a fixed one that another run may hold.
    let port = std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .unwrap()
        .port()
        .to_string();
    let out = run("pipelines/rtp-live-view.sh", &["--check", &port]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    // "rtp loopback: received N of M frames"
    let counts: Vec<usize> = stdout
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    let [received, sent] = counts[..] else {
        panic!("no frame counts in {stdout:?}");
    };
    assert_eq!(sent, 60, "{stdout}");
    assert!(received >= sent * 9 / 10, "{stdout}");
}

#[test]
fn python_example_reads_the_metadata() {
    let out = Command::new("/usr/bin/python3")
        .args(["examples/read_meta.py", "--frames", "20", "--check"])
        .env("GST_PLUGIN_PATH", build_dir())
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("Debian's python3 with python3-gi (scripts/setup.sh)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("vein") && stdout.contains("summary"),
        "{stdout}"
    );
}

#[test]
fn rust_embedding_example_runs() {
    let example = build_dir().join("examples/embed");
    let out = Command::new(&example)
        .arg("20")
        .output()
        .expect("cargo test builds the examples");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("frame    0") && stdout.contains("summary"),
        "{stdout}"
    );
}
