//! `pddflow` in live pipelines: late frames by QoS (flow skipped, mask carried forward) and the
//! latency it reports.

mod common;

use common::*;
use gst::prelude::*;
use gstpddflow::meta::FlowResult;

const FRAME_MS: u64 = 40;

fn result(buffer: &gst::Buffer) -> FlowResult {
    FlowResult::from_buffer(buffer)
        .expect("result meta attached")
        .expect("result meta well formed")
}

/// Frame `index` of a 25 fps stream, timestamped.
fn timed_frame(info: &gst_video::VideoInfo, index: u64) -> gst::Buffer {
    let mut buffer = frame_buffer(info, index as u32);
    let b = buffer.get_mut().unwrap();
    b.set_pts(gst::ClockTime::from_mseconds(index * FRAME_MS));
    b.set_duration(gst::ClockTime::from_mseconds(FRAME_MS));
    buffer
}

/// Downstream reports that the frame at `at_ms` reached it `late_ms` late.
fn qos_late(h: &mut gst_check::Harness, at_ms: u64, late_ms: i64) {
    let event = gst::event::Qos::new(
        gst::QOSType::Underflow,
        0.5,
        late_ms * 1_000_000,
        gst::ClockTime::from_mseconds(at_ms),
    );
    assert!(h.push_upstream_event(event));
}

/// Frames 0 (the reference) and 1 processed, then downstream reports frame 1 `late_ms` late.
fn two_frames_then_late(h: &mut gst_check::Harness, info: &gst_video::VideoInfo, late_ms: i64) {
    h.push_and_pull(timed_frame(info, 0)).unwrap();
    h.push_and_pull(timed_frame(info, 1)).unwrap();
    qos_late(h, FRAME_MS, late_ms);
}

fn live_element(
    skip_late: bool,
) -> (
    gst::Element,
    gst::Bus,
    gst_check::Harness,
    gst_video::VideoInfo,
) {
    let dir = tempfile::tempdir().unwrap();
    let mask_path = dir.path().join("mask.png");
    square(64, 64, 20, 20, 16, 2).save_png(&mask_path).unwrap();
    let (element, bus) = element(&[
        ("model-location", &test_model("shift")),
        ("reference-mask", &mask_path.to_str().unwrap()),
        ("skip-late", &skip_late),
    ]);
    element.set_property_from_str("mode", "chain");
    let mut h = harness(&element);
    let caps = gst_video::VideoCapsBuilder::new()
        .format(gst_video::VideoFormat::Gray8)
        .width(64)
        .height(64)
        .framerate(gst::Fraction::new(25, 1))
        .build();
    h.set_src_caps(caps.clone());
    let info = gst_video::VideoInfo::from_caps(&caps).unwrap();
    (element, bus, h, info)
}

#[test]
fn late_frames_skip_flow_and_carry_the_last_mask_forward() {
    let (element, _bus, mut h, info) = live_element(true);
    let first = result(&h.push_and_pull(timed_frame(&info, 0)).unwrap());
    let computed = result(&h.push_and_pull(timed_frame(&info, 1)).unwrap());
    assert!(!first.skipped && !computed.skipped);
    let flows = stat(&element, "flow-runs");
    // Frame 1 (40 ms) came 60 ms late: frames up to 160 ms are late as well.
    qos_late(&mut h, FRAME_MS, 60);
    for index in 2..=4 {
        let out = result(&h.push_and_pull(timed_frame(&info, index)).unwrap());
        assert!(out.skipped, "frame {index} is late");
        assert_eq!(out.frame, index, "a skipped frame keeps its index");
        assert_eq!(
            out.labels, computed.labels,
            "the last mask, carried forward"
        );
        assert_eq!(out.vessels, computed.vessels);
    }
    assert_eq!(
        stat(&element, "flow-runs"),
        flows,
        "no flow for late frames"
    );
    assert_eq!(stat(&element, "skipped"), 3);
    assert_eq!(stat(&element, "frames"), 5);
    // 200 ms is in time again: flow from the last computed frame (chain), one step of the
    // model's constant shift more than frame 1.
    let resumed = result(&h.push_and_pull(timed_frame(&info, 5)).unwrap());
    assert!(!resumed.skipped);
    assert_eq!(resumed.frame, 5);
    assert_eq!(stat(&element, "flow-runs"), flows + 1);
    assert!((resumed.flow.dx[100] - 2.0 * computed.flow.dx[100]).abs() < 1e-4);
}

#[test]
fn with_pipeline_a_late_frame_leaves_after_the_held_one_and_carries_its_mask() {
    let (element, _bus, mut h, info) = live_element(true);
    element.set_property("pipeline", true);
    h.push(timed_frame(&info, 0)).unwrap();
    h.push(timed_frame(&info, 1)).unwrap();
    let first = result(&h.pull().unwrap());
    assert_eq!(first.frame, 0);
    // Frame 1 is held; frame 2 comes late, so frame 1 is finished first and frame 2 repeats it.
    qos_late(&mut h, FRAME_MS, 60);
    h.push(timed_frame(&info, 2)).unwrap();
    let held = result(&h.pull().unwrap());
    let late = result(&h.pull().unwrap());
    assert_eq!((held.frame, held.skipped), (1, false));
    assert_eq!((late.frame, late.skipped), (2, true));
    assert_eq!(
        late.labels, held.labels,
        "the held frame's mask, carried forward"
    );
    assert!(h.try_pull().is_none());
    assert_eq!(stat(&element, "skipped"), 1);
}

#[test]
fn a_pipeline_that_stays_late_still_computes_every_eighth_frame() {
    let (element, _bus, mut h, info) = live_element(true);
    // late far beyond the frames pushed below
    two_frames_then_late(&mut h, &info, 10_000);
    let skipped: Vec<bool> = (2..20)
        .map(|index| result(&h.push_and_pull(timed_frame(&info, index)).unwrap()).skipped)
        .collect();
    let computed: Vec<usize> = skipped
        .iter()
        .enumerate()
        .filter(|(_, &s)| !s)
        .map(|(i, _)| i + 2)
        .collect();
    assert_eq!(computed, vec![9, 17], "7 skipped, then one computed");
    assert_eq!(stat(&element, "skipped"), 16);
}

#[test]
fn anchoring_frames_are_never_skipped() {
    let (element, _bus, mut h, info) = live_element(true);
    two_frames_then_late(&mut h, &info, 500);
    element.emit_by_name::<()>("reanchor", &[]);
    let anchored = result(&h.push_and_pull(timed_frame(&info, 2)).unwrap());
    assert!(!anchored.skipped);
    assert_eq!(anchored.reference_frame, 2);
    assert!(result(&h.push_and_pull(timed_frame(&info, 3)).unwrap()).skipped);
}

#[test]
fn skip_late_false_computes_every_frame() {
    let (element, _bus, mut h, info) = live_element(false);
    two_frames_then_late(&mut h, &info, 500);
    for index in 2..5 {
        assert!(!result(&h.push_and_pull(timed_frame(&info, index)).unwrap()).skipped);
    }
    assert_eq!(stat(&element, "skipped"), 0);
    assert_eq!(stat(&element, "flow-runs"), 4);
}

#[test]
fn a_flush_forgets_the_lateness() {
    let (_element, _bus, mut h, info) = live_element(true);
    two_frames_then_late(&mut h, &info, 500);
    assert!(h.push_event(gst::event::FlushStart::new()));
    assert!(h.push_event(gst::event::FlushStop::new(false)));
    // as after a flushing seek: a new segment follows
    let segment = gst::FormattedSegment::<gst::ClockTime>::new();
    assert!(h.push_event(gst::event::Segment::new(&segment)));
    assert!(!result(&h.push_and_pull(timed_frame(&info, 2)).unwrap()).skipped);
}

#[test]
fn latency_query_adds_the_processing_time() {
    let (element, bus, mut h, info) = live_element(true);
    let upstream = gst::ClockTime::from_mseconds(10);
    h.set_upstream_latency(upstream);
    for index in 0..4 {
        h.push_and_pull(timed_frame(&info, index)).unwrap();
    }
    let ours = stat(&element, "latency");
    assert!(ours > 0, "frames with flow were timed");
    assert_eq!(
        h.query_latency(),
        Some(upstream + gst::ClockTime::from_nseconds(ours))
    );
    // the first estimate asked the pipeline to query again
    let latency_messages = std::iter::from_fn(|| bus.pop_filtered(&[gst::MessageType::Latency]));
    assert!(latency_messages.count() >= 1);
}
