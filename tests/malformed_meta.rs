//! Malformed reference-mask metas through `videoscale` and `videoconvert`: the process must not
//! abort (the meta transform is called from C), and the mask must be declined with a warning in
//! the debug log (category `pddflow-meta`), never rescaled into acceptance.

mod common;

use common::*;
use gst::prelude::*;
use gstpddflow::meta::{FlowResult, REFERENCE_MASK_META_NAME};
use std::sync::{Arc, Mutex};

/// Warnings logged by the meta transform (the `pddflow-meta` debug category).
fn meta_log() -> Arc<Mutex<Vec<String>>> {
    use std::sync::OnceLock;
    static LOG: OnceLock<Arc<Mutex<Vec<String>>>> = OnceLock::new();
    LOG.get_or_init(|| {
        init();
        let log = Arc::new(Mutex::new(Vec::new()));
        let sink = log.clone();
        gst::log::add_log_function(
            move |category, level, _file, _function, _line, _object, message| {
                if category.name() == "pddflow-meta" && level <= gst::DebugLevel::Warning {
                    if let Some(text) = message.get() {
                        sink.lock().unwrap().push(text.to_string());
                    }
                }
            },
        );
        gst::log::set_active(true);
        gst::log::set_threshold_for_name("pddflow-meta", gst::DebugLevel::Warning);
        log
    })
    .clone()
}

/// A reference-mask meta with exactly these fields.
fn attach(buffer: &mut gst::BufferRef, fields: &[(&str, glib::SendValue)]) {
    let mut meta = gst::meta::CustomMeta::add(buffer, REFERENCE_MASK_META_NAME).unwrap();
    for (name, value) in fields {
        meta.mut_structure().set_value(*name, value.clone());
    }
}

fn mask_fields(width: u32, height: u32, labels: Vec<u8>) -> Vec<(&'static str, glib::SendValue)> {
    vec![
        ("width", width.to_send_value()),
        ("height", height.to_send_value()),
        ("labels", glib::Bytes::from_owned(labels).to_send_value()),
    ]
}

struct Outcome {
    results: Vec<FlowResult>,
    errors: Vec<String>,
}

/// Pushes three GRAY8 64x48 frames through `converter ! pddflow ! appsink`, the second one
/// with a reference-mask meta of `fields`.
fn run(converter: &str, fields: &[(&str, glib::SendValue)]) -> Outcome {
    let (pipeline, src, sink) = app_pipeline(&format!(
        "appsrc name=src format=time caps=video/x-raw,format=GRAY8,width=64,height=48,framerate=30/1 \
         ! {converter} ! pddflow model-location={} ! appsink name=sink sync=false",
        test_model("identity_pool")
    ));
    let sink = sink.unwrap();
    pipeline.set_state(gst::State::Playing).unwrap();
    let info = gst_video::VideoInfo::from_caps(&gray_caps(64, 48)).unwrap();
    for i in 0..3u64 {
        let mut buffer = frame_buffer(&info, i as u32);
        let b = buffer.get_mut().unwrap();
        b.set_pts(gst::ClockTime::from_mseconds(33 * i));
        if i == 1 {
            attach(b, fields);
        }
        src.push_buffer(buffer).unwrap();
    }
    src.end_of_stream().unwrap();
    let mut results = vec![];
    while let Some(sample) = sink.try_pull_sample(gst::ClockTime::from_seconds(10)) {
        results.push(
            FlowResult::from_buffer(sample.buffer().unwrap())
                .unwrap()
                .unwrap(),
        );
    }
    let bus = pipeline.bus().unwrap();
    let _ = bus.timed_pop_filtered(gst::ClockTime::from_seconds(10), &[gst::MessageType::Eos]);
    pipeline.set_state(gst::State::Null).unwrap();
    Outcome {
        results,
        errors: messages(&bus, gst::MessageType::Error),
    }
}

fn malformed() -> Vec<(&'static str, Vec<(&'static str, glib::SendValue)>)> {
    vec![
        ("width 0", mask_fields(0, 48, vec![])),
        ("height 0", mask_fields(64, 0, vec![])),
        ("width and height 0", mask_fields(0, 0, vec![])),
        (
            "labels shorter than width x height",
            mask_fields(64, 48, vec![1; 100]),
        ),
        (
            "labels longer than width x height",
            mask_fields(64, 48, vec![1; 64 * 48 + 7]),
        ),
        (
            "a 32x24 mask on a 64x48 frame",
            mask_fields(32, 24, vec![1; 32 * 24]),
        ),
        (
            "labels as a string",
            vec![
                ("width", 64u32.to_send_value()),
                ("height", 48u32.to_send_value()),
                ("labels", "1111".to_send_value()),
            ],
        ),
        (
            "width as a string",
            vec![
                ("width", "64".to_send_value()),
                ("height", 48u32.to_send_value()),
                (
                    "labels",
                    glib::Bytes::from_owned(vec![1u8; 64 * 48]).to_send_value(),
                ),
            ],
        ),
        ("no fields", vec![]),
    ]
}

#[test]
fn a_well_formed_mask_is_rescaled_by_videoscale() {
    // The control: a mask of the frame's size does get through, rescaled.
    let outcome = run(
        "videoscale ! video/x-raw,width=128,height=96",
        &mask_fields(64, 48, square(64, 48, 8, 8, 16, 1).data),
    );
    assert!(outcome.errors.is_empty(), "{:?}", outcome.errors);
    assert_eq!(outcome.results.len(), 3);
    let anchored = &outcome.results[1];
    assert_eq!(anchored.reference_frame, 1);
    assert_eq!(
        anchored.labels.as_ref(),
        Some(&square(128, 96, 16, 16, 32, 1))
    );
}

#[test]
fn malformed_masks_through_videoscale_and_videoconvert_are_declined_not_an_abort() {
    let log = meta_log();
    // Both transform size-tagged metas with GStreamer's video scale transform.
    for converter in [
        "videoscale ! video/x-raw,width=128,height=96",
        "videoconvert ! video/x-raw,format=I420",
    ] {
        for (what, fields) in malformed() {
            let what = format!("{converter}: {what}");
            log.lock().unwrap().clear();
            let outcome = run(converter, &fields);
            assert!(outcome.errors.is_empty(), "{what}: {:?}", outcome.errors);
            assert_eq!(outcome.results.len(), 3, "{what}: the stream goes on");
            for r in &outcome.results {
                assert!(
                    r.labels.is_none(),
                    "{what}: frame {} anchored on it",
                    r.frame
                );
                assert_eq!(r.reference_frame, 0, "{what}");
            }
            let logged = log.lock().unwrap().clone();
            assert!(
                logged.iter().any(|l| l.contains(REFERENCE_MASK_META_NAME)),
                "{what}: the transform logs why it declined: {logged:?}"
            );
        }
    }
}
