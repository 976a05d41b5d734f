//! `pddflow` through gst_check::Harness on tiny test models (tests/make_test_models.py).

mod common;

use common::*;
use gst::prelude::*;
use gstpddflow::flow::metrics::score_class;
use gstpddflow::meta::{attach_reference_mask, FlowResult};

fn result(buffer: &gst::Buffer) -> FlowResult {
    FlowResult::from_buffer(buffer)
        .expect("result meta attached")
        .expect("result meta well formed")
}

#[test]
fn every_format_negotiates_and_passes_pixels_through() {
    for format in gstpddflow::pddflow::FORMATS {
        // Odd sizes give padded strides and odd chroma planes.
        for (w, h) in [(64, 48), (67, 45)] {
            let (element, _bus) = element(&[("model-location", &test_model("shift"))]);
            let mut h_ = harness(&element);
            let info = gst_video::VideoInfo::builder(format, w, h)
                .fps(gst::Fraction::new(25, 1))
                .build()
                .unwrap();
            h_.set_src_caps(info.to_caps().unwrap());
            for i in 0..3 {
                let input = frame_buffer(&info, i);
                let expected = input.map_readable().unwrap().to_vec();
                let out = h_.push_and_pull(input).unwrap();
                assert_eq!(
                    out.map_readable().unwrap().as_slice(),
                    &expected[..],
                    "{format:?} {w}x{h}"
                );
                let r = result(&out);
                assert_eq!(r.frame, i as u64);
                assert_eq!((r.flow.width, r.flow.height), (64, 64));
                assert!((r.flow_scale.0 - w as f64 / 64.0).abs() < 1e-9);
                assert!(r.labels.is_none(), "no reference mask given");
            }
        }
    }
}

#[test]
fn known_shift_moves_the_reference_mask() {
    let dir = tempfile::tempdir().unwrap();
    let mask_path = dir.path().join("mask.png");
    // Frame 128x96 over a 64x64 model: model flow (-3, -2) is (-6, -3) frame pixels, so content
    // moves 6 right and 3 down.
    let mut reference = square(128, 96, 20, 30, 24, 1);
    for y in 10..30 {
        for x in 70..100 {
            reference.data[y * 128 + x] = 2;
        }
    }
    reference.save_png(&mask_path).unwrap();
    let (element, bus) = element(&[
        ("model-location", &test_model("shift")),
        ("reference-mask", &mask_path.to_str().unwrap()),
    ]);
    let mut h = harness(&element);
    h.set_src_caps(gray_caps(128, 96));
    let info = gst_video::VideoInfo::from_caps(&gray_caps(128, 96)).unwrap();
    let first = result(&h.push_and_pull(frame_buffer(&info, 0)).unwrap());
    assert_eq!(first.labels.as_ref(), Some(&reference));
    let second = result(&h.push_and_pull(frame_buffer(&info, 1)).unwrap());
    let labels = second.labels.unwrap();
    let mut expected = gstpddflow::flow::LabelMap::new(128, 96);
    for y in 0..96 {
        for x in 0..128 {
            if x >= 6 && y >= 3 {
                expected.data[y * 128 + x] = reference.get(x - 6, y - 3);
            }
        }
    }
    for class in [1, 2] {
        let s = score_class(&expected, &labels, class).unwrap();
        assert!(s.dice >= 0.99, "class {class}: dice {}", s.dice);
    }
    assert_eq!(second.areas[1], 24 * 24);
    assert_eq!(second.areas[2], 20 * 30);
    assert!(messages(&bus, gst::MessageType::Warning).is_empty());
}

/// `model`'s pddflow in a harness taking 64x64 GRAY8, and those frames' video info.
fn gray64_harness(model: &str) -> (gst::Element, gst_check::Harness, gst_video::VideoInfo) {
    let (element, _bus) = element(&[("model-location", &test_model(model))]);
    let mut h = harness(&element);
    h.set_src_caps(gray_caps(64, 64));
    let info = gst_video::VideoInfo::from_caps(&gray_caps(64, 64)).unwrap();
    (element, h, info)
}

fn run_counts(mode: &str, frames: u32) -> (u64, u64, Vec<FlowResult>) {
    let (element, mut h, info) = gray64_harness("shift");
    element.set_property_from_str("mode", mode);
    let results = (0..frames)
        .map(|i| result(&h.push_and_pull(frame_buffer(&info, i)).unwrap()))
        .collect();
    (
        stat(&element, "feature-runs"),
        stat(&element, "flow-runs"),
        results,
    )
}

#[test]
fn keyframe_mode_computes_reference_features_once() {
    let (features, flows, results) = run_counts("keyframe", 6);
    // Once for the reference, once per new frame; never again for the reference.
    assert_eq!(features, 6);
    assert_eq!(flows, 5);
    assert!(results
        .iter()
        .all(|r| r.reference_frame == 0 && r.mode == "keyframe"));
    // Every frame is registered directly to the reference: the flow stays the model's shift.
    assert!((results[5].flow.dx[100] + 3.0).abs() < 1e-5);
}

#[test]
fn stats_sum_the_time_spent_in_the_model() {
    let (element, mut h, info) = gray64_harness("shift");
    let started = std::time::Instant::now();
    let mut pushed_after = Vec::new();
    for i in 0..4 {
        h.push_and_pull(frame_buffer(&info, i)).unwrap();
        pushed_after.push(stat(&element, "model-time"));
    }
    let wall = started.elapsed().as_nanos() as u64;
    assert!(pushed_after[0] > 0, "the reference frame's features count");
    assert!(
        pushed_after.windows(2).all(|w| w[1] > w[0]),
        "every frame adds its graphs' time: {pushed_after:?}"
    );
    assert!(
        pushed_after[3] < wall,
        "{} ns of {wall} ns",
        pushed_after[3]
    );
}

#[test]
fn chain_mode_never_recomputes_features_and_composes_flow() {
    let (features, flows, results) = run_counts("chain", 6);
    assert_eq!(features, 6, "one feature run per frame");
    assert_eq!(flows, 5);
    // Five chained steps of (-3, -2) compose to (-15, -10) at an interior pixel.
    let r = &results[5];
    let i = 40 * 64 + 40;
    assert!((r.flow.dx[i] + 15.0).abs() < 1e-4, "{}", r.flow.dx[i]);
    assert!((r.flow.dy[i] + 10.0).abs() < 1e-4, "{}", r.flow.dy[i]);
}

#[test]
fn reanchors_on_metadata_signal_and_event() {
    let (element, mut h, info) = gray64_harness("identity_pool");
    let push = |h: &mut gst_check::Harness, i: u32, mask: Option<&gstpddflow::flow::LabelMap>| {
        let mut buffer = frame_buffer(&info, i);
        if let Some(mask) = mask {
            attach_reference_mask(buffer.get_mut().unwrap(), mask).unwrap();
        }
        result(&h.push_and_pull(buffer).unwrap())
    };
    assert_eq!(push(&mut h, 0, None).reference_frame, 0);
    let mask = square(64, 64, 10, 10, 8, 2);
    let r = push(&mut h, 1, Some(&mask));
    assert_eq!(r.reference_frame, 1);
    assert_eq!(r.labels.as_ref(), Some(&mask));
    let r = push(&mut h, 2, None);
    assert_eq!(r.reference_frame, 1);
    assert_eq!(r.labels.as_ref(), Some(&mask), "zero flow keeps the mask");

    element.emit_by_name::<()>("reanchor", &[]);
    let r = push(&mut h, 3, None);
    assert_eq!(r.reference_frame, 3);
    assert_eq!(
        r.labels.as_ref(),
        Some(&mask),
        "the propagated mask is carried over"
    );

    assert!(h.push_event(gstpddflow::pddflow::reanchor_event()));
    assert_eq!(push(&mut h, 4, None).reference_frame, 4);
    assert_eq!(push(&mut h, 5, None).reference_frame, 4);
    assert_eq!(stat(&element, "feature-runs"), 6);
}

fn start_error(props: &[(&str, &dyn ToValue)]) -> String {
    let (element, bus) = element(props);
    assert!(
        element.set_state(gst::State::Playing).is_err(),
        "start must fail"
    );
    let _ = element.set_state(gst::State::Null);
    let errors = messages(&bus, gst::MessageType::Error);
    assert_eq!(errors.len(), 1, "{errors:?}");
    errors[0].clone()
}

#[test]
fn missing_model_directory_is_a_clear_error() {
    let e = start_error(&[("model-location", &"/nonexistent/pddflow-model")]);
    assert!(
        e.contains("does not exist") && e.contains("model-location"),
        "{e}"
    );
}

#[test]
fn corrupt_onnx_file_is_a_clear_error() {
    let e = start_error(&[("model-location", &test_model("corrupt"))]);
    assert!(e.contains("features.onnx could not be loaded"), "{e}");
}

#[test]
fn wrong_names_and_shapes_are_clear_errors() {
    let e = start_error(&[("model-location", &test_model("bad_names"))]);
    assert!(
        e.contains("does not follow the model contract") && e.contains("image"),
        "{e}"
    );
    let e = start_error(&[("model-location", &test_model("bad_shape"))]);
    assert!(
        e.contains("flow.onnx does not follow the model contract"),
        "{e}"
    );
}

#[test]
fn unreadable_reference_mask_is_a_clear_error() {
    let e = start_error(&[
        ("model-location", &test_model("shift")),
        ("reference-mask", &"/nonexistent/mask.png"),
    ]);
    assert!(e.contains("reference-mask"), "{e}");
}

#[test]
fn wrong_size_reference_mask_warns_and_the_stream_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("small.png");
    square(32, 32, 4, 4, 8, 1).save_png(&path).unwrap();
    let (element, bus) = element(&[
        ("model-location", &test_model("shift")),
        ("reference-mask", &path.to_str().unwrap()),
    ]);
    let mut h = harness(&element);
    h.set_src_caps(gray_caps(64, 64));
    let info = gst_video::VideoInfo::from_caps(&gray_caps(64, 64)).unwrap();
    for i in 0..3 {
        let r = result(&h.push_and_pull(frame_buffer(&info, i)).unwrap());
        assert!(r.labels.is_none());
    }
    let warnings = messages(&bus, gst::MessageType::Warning);
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].contains("32x32") && warnings[0].contains("64x64"),
        "{}",
        warnings[0]
    );
}

#[test]
fn upstream_mask_of_wrong_size_is_ignored_with_a_warning() {
    let (element, bus) = element(&[("model-location", &test_model("shift"))]);
    let mut h = harness(&element);
    h.set_src_caps(gray_caps(64, 64));
    let info = gst_video::VideoInfo::from_caps(&gray_caps(64, 64)).unwrap();
    let mut buffer = frame_buffer(&info, 0);
    attach_reference_mask(buffer.get_mut().unwrap(), &square(10, 10, 0, 0, 5, 1)).unwrap();
    let r = result(&h.push_and_pull(buffer).unwrap());
    assert!(r.labels.is_none());
    assert_eq!(messages(&bus, gst::MessageType::Warning).len(), 1);
}

#[test]
fn caps_change_mid_stream_reanchors_with_rescaled_mask() {
    let (element, bus) = element(&[("model-location", &test_model("identity_pool"))]);
    let mut h = harness(&element);
    h.set_src_caps(gray_caps(64, 64));
    let info = gst_video::VideoInfo::from_caps(&gray_caps(64, 64)).unwrap();
    let mut buffer = frame_buffer(&info, 0);
    attach_reference_mask(buffer.get_mut().unwrap(), &square(64, 64, 16, 16, 16, 1)).unwrap();
    h.push_and_pull(buffer).unwrap();
    h.set_src_caps(gray_caps(128, 128));
    let info = gst_video::VideoInfo::from_caps(&gray_caps(128, 128)).unwrap();
    let r = result(&h.push_and_pull(frame_buffer(&info, 1)).unwrap());
    assert_eq!(r.reference_frame, 1);
    assert_eq!(r.labels.unwrap(), square(128, 128, 32, 32, 32, 1));
    let warnings = messages(&bus, gst::MessageType::Warning);
    assert!(
        warnings.iter().any(|w| w.contains("64x64 to 128x128")),
        "{warnings:?}"
    );
}

#[test]
fn flush_keeps_the_stream_going() {
    let (element, bus) = element(&[("model-location", &test_model("shift"))]);
    element.set_property_from_str("mode", "chain");
    let mut h = harness(&element);
    h.set_src_caps(gray_caps(64, 64));
    let info = gst_video::VideoInfo::from_caps(&gray_caps(64, 64)).unwrap();
    for i in 0..3 {
        h.push_and_pull(frame_buffer(&info, i)).unwrap();
    }
    assert!(h.push_event(gst::event::FlushStart::new()));
    assert!(h.push_event(gst::event::FlushStop::new(true)));
    h.push_event(gst::event::Segment::new(&gst::FormattedSegment::<
        gst::ClockTime,
    >::new()));
    let r = result(&h.push_and_pull(frame_buffer(&info, 3)).unwrap());
    // After a flush chain mode registers straight to the reference again.
    assert_eq!(r.reference_frame, 0);
    assert!((r.flow.dx[2000] + 3.0).abs() < 1e-5);
    assert!(messages(&bus, gst::MessageType::Error).is_empty());
}

#[test]
fn overlay_draws_the_mask() {
    let (element, _bus) = element(&[
        ("model-location", &test_model("identity_pool")),
        ("overlay", &true),
    ]);
    element.set_property_from_str("overlay-style", "fill+contour");
    let mut h = harness(&element);
    let info = gst_video::VideoInfo::builder(gst_video::VideoFormat::Rgb, 64, 64)
        .build()
        .unwrap();
    h.set_src_caps(info.to_caps().unwrap());
    let mut buffer = gst::Buffer::from_mut_slice(vec![0u8; info.size()]);
    attach_reference_mask(buffer.get_mut().unwrap(), &square(64, 64, 8, 8, 16, 2)).unwrap();
    let out = h.push_and_pull(buffer).unwrap();
    let map = out.map_readable().unwrap();
    let stride = info.stride()[0] as usize;
    let at = |x: usize, y: usize| &map[y * stride + 3 * x..y * stride + 3 * x + 3];
    assert_eq!(at(0, 0), &[0, 0, 0]);
    assert_eq!(
        at(8, 8),
        &[255, 50, 50],
        "opaque outline in the artery colour"
    );
    assert!(at(16, 16)[0] > 50 && at(16, 16)[1] < 30, "filled interior");
}

/// A 64x64 RGB harness on `pddflow overlay=true` with `overlay-style` `style`, set up by
/// `downstream` (its sink caps, the metas it proposes) before the caps are negotiated, and a
/// grey (100) frame carrying an artery square (x 24..40, y 32..48) as its reference mask, below
/// the legend.
fn overlay_run(
    style: &str,
    downstream: impl FnOnce(&mut gst_check::Harness),
) -> (gst::Buffer, gst::Buffer, gst_check::Harness) {
    let (element, _bus) = element(&[
        ("model-location", &test_model("identity_pool")),
        ("overlay", &true),
    ]);
    element.set_property_from_str("overlay-style", style);
    let mut h = harness(&element);
    downstream(&mut h);
    h.set_src_caps(overlay_info().to_caps().unwrap());
    let mut input = gst::Buffer::from_mut_slice(vec![100u8; overlay_info().size()]);
    attach_reference_mask(input.get_mut().unwrap(), &square(64, 64, 24, 32, 16, 2)).unwrap();
    let out = h.push_and_pull(input.clone()).unwrap();
    (input, out, h)
}

fn overlay_info() -> gst_video::VideoInfo {
    gst_video::VideoInfo::builder(gst_video::VideoFormat::Rgb, 64, 64)
        .fps(gst::Fraction::new(30, 1))
        .build()
        .unwrap()
}

/// The RGB pixel at `(x, y)` of a 64x64 RGB frame.
fn rgb_at(data: &[u8], x: usize, y: usize) -> [u8; 3] {
    let i = y * overlay_info().stride()[0] as usize + 3 * x;
    [data[i], data[i + 1], data[i + 2]]
}

/// `out`'s pixels with its overlay compositions blended on, as a sink that renders them would.
fn blend_compositions(out: &gst::Buffer) -> Vec<u8> {
    let mut blended = gst::Buffer::from_mut_slice(out.map_readable().unwrap().to_vec());
    {
        let info = overlay_info();
        let mut frame =
            gst_video::VideoFrameRef::from_buffer_ref_writable(blended.get_mut().unwrap(), &info)
                .unwrap();
        for meta in out.iter_meta::<gst_video::VideoOverlayCompositionMeta>() {
            meta.overlay().blend(&mut frame).unwrap();
        }
    }
    let data = blended.map_readable().unwrap().to_vec();
    data
}

fn negotiated_feature(h: &gst_check::Harness) -> bool {
    let caps = h.sinkpad().unwrap().current_caps().expect("negotiated");
    caps.features(0)
        .unwrap()
        .contains(gst_video::CAPS_FEATURE_META_GST_VIDEO_OVERLAY_COMPOSITION)
}

/// Downstream that blends overlay rectangles itself (it proposes the meta, as glimagesink and
/// the compositors do): the overlay is attached as a composition and the pixels stay
/// untouched; rendered, it looks like the overlay blended in place.
#[test]
fn overlay_is_attached_as_a_composition_when_downstream_proposes_the_meta() {
    let (input, out, h) = overlay_run("fill+contour+legend", |h| {
        h.add_propose_allocation_meta(gst_video::VideoOverlayCompositionMeta::meta_api(), None);
    });
    assert!(negotiated_feature(&h), "the caps carry the feature");
    assert_eq!(
        out.map_readable().unwrap().as_slice(),
        input.map_readable().unwrap().as_slice(),
        "pixels untouched"
    );
    let metas: Vec<_> = out
        .iter_meta::<gst_video::VideoOverlayCompositionMeta>()
        .collect();
    assert_eq!(metas.len(), 1, "one composition attached");
    assert_eq!(metas[0].overlay().n_rectangles(), 1);
    let blended = blend_compositions(&out);
    assert_eq!(
        rgb_at(&blended, 24, 32),
        [255, 50, 50],
        "opaque artery outline"
    );
    let interior = rgb_at(&blended, 32, 40);
    assert!(
        interior[0] > 130 && interior[1] < 95,
        "filled: {interior:?}"
    );
    assert_eq!(
        rgb_at(&blended, 60, 60),
        [100; 3],
        "nothing outside the mask"
    );
    assert!(rgb_at(&blended, 5, 5)[0] < 60, "the legend box");
    assert_eq!(
        rgb_at(&blended, 10, 10),
        [255, 50, 50],
        "the legend's artery swatch"
    );

    // The same as blending in place (downstream without the meta), up to rounding.
    let (_, in_place, _) = overlay_run("fill+contour+legend", |_| {});
    let in_place = in_place.map_readable().unwrap();
    let worst = in_place
        .iter()
        .zip(&blended)
        .map(|(a, b)| a.abs_diff(*b))
        .max()
        .unwrap();
    assert!(
        worst <= 3,
        "composition and in-place overlay differ by {worst}"
    );
}

/// Downstream that takes only caps with the feature (an application asking for it): the
/// overlay is attached even without an ALLOCATION answer that proposes the meta.
#[test]
fn overlay_is_attached_when_downstream_takes_only_caps_with_the_feature() {
    let (input, out, h) = overlay_run("fill+contour", |h| {
        h.set_sink_caps_str("video/x-raw(meta:GstVideoOverlayComposition),format=RGB");
    });
    assert!(negotiated_feature(&h));
    assert_eq!(
        out.map_readable().unwrap().as_slice(),
        input.map_readable().unwrap().as_slice(),
        "pixels untouched"
    );
    let blended = blend_compositions(&out);
    assert_eq!(rgb_at(&blended, 24, 32), [255, 50, 50]);
    assert_eq!(rgb_at(&blended, 0, 0), [100; 3]);
}

/// Downstream without the composition feature in its caps, or with it but rendering no metas
/// (ANY caps, no meta proposed: fakesink, appsink): the overlay is blended in place, as before.
#[test]
fn overlay_is_blended_in_place_when_downstream_does_not_render_compositions() {
    type Setup = fn(&mut gst_check::Harness);
    let cases: [(&str, Setup, bool); 2] = [
        ("ANY caps, no meta proposed", |_| {}, true),
        (
            "caps without the feature, meta proposed",
            |h| {
                h.set_sink_caps_str("video/x-raw,format=RGB");
                h.add_propose_allocation_meta(
                    gst_video::VideoOverlayCompositionMeta::meta_api(),
                    None,
                );
            },
            false,
        ),
    ];
    for (case, setup, feature) in cases {
        let (_, out, h) = overlay_run("fill+contour", setup);
        assert_eq!(negotiated_feature(&h), feature, "{case}");
        let data = out.map_readable().unwrap();
        assert_eq!(
            rgb_at(&data, 24, 32),
            [255, 50, 50],
            "{case}: drawn in place"
        );
        assert_eq!(rgb_at(&data, 0, 0), [100; 3], "{case}");
        assert!(
            out.meta::<gst_video::VideoOverlayCompositionMeta>()
                .is_none(),
            "{case}: no composition"
        );
    }
}

/// Whether `execution-provider=cuda` runs on CUDA here: only with a GPU build of ONNX Runtime and
/// a usable device. Either way the element must say which provider it really uses.
fn cuda_outcome() -> (String, Vec<String>, FlowResult) {
    let (element, bus) = element(&[("model-location", &test_model("shift"))]);
    element.set_property_from_str("execution-provider", "cuda");
    let mut h = harness(&element);
    h.set_src_caps(gray_caps(64, 64));
    let active = element.property::<String>("active-provider");
    let warnings = messages(&bus, gst::MessageType::Warning);
    let info = gst_video::VideoInfo::from_caps(&gray_caps(64, 64)).unwrap();
    let r = result(&h.push_and_pull(frame_buffer(&info, 0)).unwrap());
    (active, warnings, r)
}

#[test]
fn cuda_runs_on_cuda_or_falls_back_to_cpu_with_a_warning() {
    let (active, warnings, r) = cuda_outcome();
    let fallback_warned = warnings
        .iter()
        .any(|w| w.contains("CUDA requested but running on CPU"));
    match active.as_str() {
        // CPU-only library (or no device): a warning that says so.
        "cpu" => assert!(fallback_warned, "{warnings:?}"),
        // GPU library with a device: no fallback warning.
        "cuda" => assert!(!fallback_warned, "{warnings:?}"),
        other => panic!("active-provider {other:?}"),
    }
    assert_eq!(
        r.execution_provider, active,
        "the meta names the provider in use"
    );
}

#[test]
fn strict_cuda_starts_on_cuda_or_is_an_error() {
    let (active, _, _) = cuda_outcome();
    let (element, bus) = element(&[
        ("model-location", &test_model("shift")),
        ("strict-provider", &true),
    ]);
    element.set_property_from_str("execution-provider", "cuda");
    let started = element.set_state(gst::State::Playing).is_ok();
    let strict_active = element.property::<String>("active-provider");
    let _ = element.set_state(gst::State::Null);
    let errors = messages(&bus, gst::MessageType::Error);
    if active == "cuda" {
        assert!(started && errors.is_empty(), "{errors:?}");
        assert_eq!(strict_active, "cuda");
    } else {
        assert!(!started, "strict CUDA must not start on {active}");
        assert!(
            errors.iter().any(|e| e.contains("strict-provider")),
            "{errors:?}"
        );
    }
}

#[test]
fn state_cycles_null_ready_paused_playing_and_back_twenty_times() {
    init();
    let pipeline = gst::parse::launch(&format!(
        "videotestsrc is-live=true ! video/x-raw,format=GRAY8,width=64,height=48,framerate=100/1 \
         ! pddflow name=flow model-location={} ! fakesink name=sink",
        test_model("shift")
    ))
    .unwrap()
    .downcast::<gst::Pipeline>()
    .unwrap();
    let frames = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let counter = frames.clone();
    pipeline
        .by_name("sink")
        .unwrap()
        .static_pad("sink")
        .unwrap()
        .add_probe(gst::PadProbeType::BUFFER, move |_, _| {
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            gst::PadProbeReturn::Ok
        });
    let flow = pipeline.by_name("flow").unwrap();
    let bus = pipeline.bus().unwrap();
    use gst::State::*;
    for cycle in 0..20 {
        for state in [Ready, Paused, Playing, Paused, Ready, Null] {
            let change = pipeline.set_state(state);
            assert!(change.is_ok(), "cycle {cycle}: to {state:?}");
            let (result, current, _) = pipeline.state(gst::ClockTime::from_seconds(10));
            assert!(result.is_ok(), "cycle {cycle}: {state:?} not reached");
            assert_eq!(current, state, "cycle {cycle}");
            if state == Playing {
                // Frames flow in every cycle, from a fresh start.
                let before = frames.load(std::sync::atomic::Ordering::SeqCst);
                let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
                while frames.load(std::sync::atomic::Ordering::SeqCst) < before + 3 {
                    assert!(
                        std::time::Instant::now() < deadline,
                        "cycle {cycle}: no frames"
                    );
                    std::thread::sleep(std::time::Duration::from_millis(5));
                }
                assert!(stat(&flow, "frames") >= 3, "cycle {cycle}");
            }
        }
        assert_eq!(
            flow.property::<String>("active-provider"),
            "",
            "stopped: no provider"
        );
    }
    let errors = messages(&bus, gst::MessageType::Error);
    assert!(errors.is_empty(), "{errors:?}");
}

#[test]
fn timestamps_durations_offsets_and_flags_pass_through() {
    for overlay in [false, true] {
        let (element, _bus) = element(&[
            ("model-location", &test_model("shift")),
            ("overlay", &overlay),
        ]);
        let mut h = harness(&element);
        h.set_src_caps(gray_caps(64, 48));
        let info = gst_video::VideoInfo::from_caps(&gray_caps(64, 48)).unwrap();
        let flags = [
            gst::BufferFlags::DISCONT | gst::BufferFlags::RESYNC,
            gst::BufferFlags::DELTA_UNIT,
            gst::BufferFlags::DELTA_UNIT | gst::BufferFlags::MARKER,
            gst::BufferFlags::CORRUPTED | gst::BufferFlags::DROPPABLE,
            gst::BufferFlags::GAP,
        ];
        for (i, flags) in flags.into_iter().enumerate() {
            let i = i as u64;
            let mut buffer = frame_buffer(&info, i as u32);
            {
                let b = buffer.get_mut().unwrap();
                b.set_pts(gst::ClockTime::from_mseconds(1000 + 40 * i));
                b.set_dts(gst::ClockTime::from_mseconds(990 + 40 * i));
                b.set_duration(gst::ClockTime::from_mseconds(40));
                b.set_offset(100 + i);
                b.set_offset_end(101 + i);
                b.set_flags(flags);
            }
            let out = h.push_and_pull(buffer).unwrap();
            let context = format!("overlay {overlay}, buffer {i}");
            assert_eq!(
                out.pts(),
                Some(gst::ClockTime::from_mseconds(1000 + 40 * i)),
                "{context}"
            );
            assert_eq!(
                out.dts(),
                Some(gst::ClockTime::from_mseconds(990 + 40 * i)),
                "{context}"
            );
            assert_eq!(
                out.duration(),
                Some(gst::ClockTime::from_mseconds(40)),
                "{context}"
            );
            assert_eq!(
                (out.offset(), out.offset_end()),
                (100 + i, 101 + i),
                "{context}"
            );
            assert_eq!(out.flags(), flags, "{context}");
            assert_eq!(result(&out).frame, i, "{context}");
        }
    }
}

#[test]
fn accept_caps_refuses_what_the_element_cannot_take() {
    let (element, _bus) = element(&[("model-location", &test_model("shift"))]);
    let pad = element.static_pad("sink").unwrap();
    let accepts = |caps: &str| {
        let mut query = gst::query::AcceptCaps::new(&caps.parse::<gst::Caps>().unwrap());
        assert!(pad.query(&mut query), "{caps}: the query is answered");
        query.result()
    };
    for format in gstpddflow::pddflow::FORMATS {
        let caps = format!(
            "video/x-raw,format={},width=64,height=48,framerate=30/1",
            format.to_str()
        );
        assert!(accepts(&caps), "{caps}");
    }
    for refused in [
        "video/x-raw,format=YUY2,width=64,height=48,framerate=30/1",
        "video/x-raw,format=GRAY16_BE,width=64,height=48,framerate=30/1",
        "video/x-raw,format=I420_10LE,width=64,height=48,framerate=30/1",
        "video/x-raw(memory:DMABuf),format=GRAY8,width=64,height=48,framerate=30/1",
        "video/x-bayer,format=rggb,width=64,height=48,framerate=30/1",
        "image/jpeg,width=64,height=48,framerate=30/1",
        "audio/x-raw,format=S16LE,rate=48000,channels=1,layout=interleaved",
    ] {
        assert!(!accepts(refused), "{refused} must be refused");
    }
}

/// `multi_size` runs at 64x64 by default and has graphs at 32x32 and 48x48 whose flows differ:
/// (-3, -2), (-1, -1) and (-2, -1) model pixels.
#[test]
fn working_size_selects_the_input_size_the_flow_runs_at() {
    for (working_size, side, dx, dy) in [
        (0u32, 64usize, -3.0f32, -2.0f32),
        (64, 64, -3.0, -2.0),
        (48, 48, -2.0, -1.0),
        (32, 32, -1.0, -1.0),
    ] {
        let (element, bus) = element(&[
            ("model-location", &test_model("multi_size")),
            ("working-size", &working_size),
        ]);
        let mut h = harness(&element);
        h.set_src_caps(gray_caps(96, 80));
        let info = gst_video::VideoInfo::from_caps(&gray_caps(96, 80)).unwrap();
        h.push_and_pull(frame_buffer(&info, 0)).unwrap();
        let r = result(&h.push_and_pull(frame_buffer(&info, 1)).unwrap());
        assert_eq!(
            (r.flow.width, r.flow.height),
            (side, side),
            "{working_size}"
        );
        assert!((r.flow_scale.0 - 96.0 / side as f64).abs() < 1e-9);
        let i = side * side / 2 + side / 2;
        assert_eq!((r.flow.dx[i], r.flow.dy[i]), (dx, dy), "{working_size}");
        assert_eq!(element.property::<u32>("working-size"), working_size);
        assert!(messages(&bus, gst::MessageType::Error).is_empty());
    }
}

/// A copy of `multi_size` whose `model.json` runs frames of at most 48 px at 32x32
/// (`working_size_by_frame` [[48, 32]]), larger ones at its default 64x64.
fn multi_size_with_small_frames_at_32() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let source = std::path::PathBuf::from(test_model("multi_size"));
    for entry in std::fs::read_dir(&source).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, dir.path().join(path.file_name().unwrap())).unwrap();
    }
    let json_path = dir.path().join("model.json");
    let mut spec: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&json_path).unwrap()).unwrap();
    spec["working_size_by_frame"] = serde_json::json!([[48, 32]]);
    std::fs::write(&json_path, spec.to_string()).unwrap();
    dir
}

/// `multi_size` with `working_size_by_frame` [[48, 32]]: frames of at most 48 px run at 32x32
/// when no working size is asked for, larger ones at the default 64x64.
#[test]
fn small_frames_run_at_the_size_the_model_names_for_them() {
    let dir = multi_size_with_small_frames_at_32();
    let model = dir.path().to_str().unwrap().to_string();

    // Two frames of a size: the second's flow grid, its centre vector and its reference.
    let flow_of = |h: &mut gst_check::Harness, (w, ht): (u32, u32), first| {
        let info = gst_video::VideoInfo::from_caps(&gray_caps(w, ht)).unwrap();
        h.set_src_caps(gray_caps(w, ht));
        h.push_and_pull(frame_buffer(&info, first)).unwrap();
        let r = result(&h.push_and_pull(frame_buffer(&info, first + 1)).unwrap());
        let side = r.flow.width;
        let i = side * side / 2 + side / 2;
        (
            side,
            r.flow.height,
            r.flow.dx[i],
            r.flow.dy[i],
            r.reference_frame,
        )
    };
    let (auto, bus) = element(&[("model-location", &model)]);
    let mut h = harness(&auto);
    assert_eq!(flow_of(&mut h, (40, 48), 0), (32, 32, -1.0, -1.0, 0));
    // Larger frames mid-stream: the default size, re-anchored on the first of them.
    assert_eq!(flow_of(&mut h, (96, 80), 2), (64, 64, -3.0, -2.0, 2));
    assert!(messages(&bus, gst::MessageType::Error).is_empty());

    // A working size asked for applies to small frames too.
    let (asked, _bus) = element(&[("model-location", &model), ("working-size", &48u32)]);
    let mut h = harness(&asked);
    assert_eq!(flow_of(&mut h, (40, 48), 0), (48, 48, -2.0, -1.0, 0));
}

/// The graphs of a small-frame size are loaded when such frames arrive: if they cannot be, the
/// element says so instead of running at another size.
#[test]
fn a_small_frame_size_whose_graphs_do_not_load_is_an_element_error() {
    let dir = multi_size_with_small_frames_at_32();
    std::fs::write(dir.path().join("features-32x32.onnx"), b"not an onnx graph").unwrap();
    let model = dir.path().to_str().unwrap().to_string();

    let (element, bus) = element(&[("model-location", &model)]);
    let mut h = harness(&element);
    h.set_src_caps(gray_caps(40, 48));
    let info = gst_video::VideoInfo::from_caps(&gray_caps(40, 48)).unwrap();
    assert!(h.push(frame_buffer(&info, 0)).is_err());
    let errors = messages(&bus, gst::MessageType::Error);
    assert!(
        errors
            .iter()
            .any(|e| e.contains("Cannot run the model on 48 px frames")),
        "{errors:?}"
    );
}

#[test]
fn a_working_size_the_model_does_not_take_is_an_error_naming_those_it_does() {
    let e = start_error(&[
        ("model-location", &test_model("multi_size")),
        ("working-size", &40u32),
    ]);
    assert!(
        e.contains("working-size 40") && e.contains("it takes 32, 48, 64 (default)"),
        "{e}"
    );
    // A model.json without input_sizes takes its input_width x input_height only.
    let e = start_error(&[
        ("model-location", &test_model("shift")),
        ("working-size", &32u32),
    ]);
    assert!(
        e.contains("working-size 32") && e.contains("it takes 64 (default)"),
        "{e}"
    );
}

#[test]
fn working_size_changed_while_playing_reanchors_with_the_propagated_mask() {
    let (element, bus) = element(&[("model-location", &test_model("multi_size"))]);
    let mut h = harness(&element);
    h.set_src_caps(gray_caps(64, 64));
    let info = gst_video::VideoInfo::from_caps(&gray_caps(64, 64)).unwrap();
    let mut buffer = frame_buffer(&info, 0);
    attach_reference_mask(buffer.get_mut().unwrap(), &square(64, 64, 20, 20, 16, 1)).unwrap();
    h.push_and_pull(buffer).unwrap();
    let moved = result(&h.push_and_pull(frame_buffer(&info, 1)).unwrap());
    assert_eq!(moved.labels, Some(square(64, 64, 23, 22, 16, 1)));

    element.set_property("working-size", 32u32);
    let r = result(&h.push_and_pull(frame_buffer(&info, 2)).unwrap());
    assert_eq!(r.reference_frame, 2, "a new size re-anchors on this frame");
    assert_eq!((r.flow.width, r.flow.height), (32, 32));
    assert_eq!(
        r.labels, moved.labels,
        "the propagated mask is carried over"
    );
    let r = result(&h.push_and_pull(frame_buffer(&info, 3)).unwrap());
    assert_eq!(r.reference_frame, 2);
    // (-1, -1) model pixels at 32x32 are (-2, -2) frame pixels.
    assert_eq!(r.flow.dx[16 * 32 + 16], -1.0);
    assert_eq!(r.labels, Some(square(64, 64, 25, 24, 16, 1)));
    assert_eq!(
        stat(&element, "feature-runs"),
        4,
        "one feature run per frame"
    );

    // The same size again (0 is the default, 64) changes nothing but the size.
    element.set_property("working-size", 0u32);
    assert_eq!(
        result(&h.push_and_pull(frame_buffer(&info, 4)).unwrap()).reference_frame,
        4
    );
    element.set_property("working-size", 64u32);
    assert_eq!(
        result(&h.push_and_pull(frame_buffer(&info, 5)).unwrap()).reference_frame,
        4,
        "working-size 64 is the default size: no re-anchor"
    );
    assert!(messages(&bus, gst::MessageType::Error).is_empty());

    element.set_property("working-size", 40u32);
    assert!(h.push(frame_buffer(&info, 6)).is_err());
    let errors = messages(&bus, gst::MessageType::Error);
    assert!(
        errors.len() == 1 && errors[0].contains("it takes 32, 48, 64 (default)"),
        "{errors:?}"
    );
}

#[test]
fn properties_start_at_their_declared_defaults() {
    use gst::prelude::GstValueExt;
    let (element, _bus) = element(&[]);
    for pspec in element.list_properties() {
        // Strings declare no default (None) and start empty: nothing to compare.
        let writable = pspec.flags().contains(gst::glib::ParamFlags::WRITABLE);
        if !writable || pspec.value_type() == String::static_type() {
            continue;
        }
        let value = element.property_value(pspec.name());
        let default = pspec.default_value();
        assert_eq!(
            value.compare(default),
            Some(std::cmp::Ordering::Equal),
            "{}: starts at {value:?}, declares {default:?}",
            pspec.name()
        );
    }
}

/// Pushes `count` frames of `info` (a mask on the first, a re-anchor by signal before
/// `reanchor_at`) and returns every buffer that came out, EOS included.
fn pipeline_run(pipeline: bool, mode: &str, count: u32, reanchor_at: u32) -> Vec<gst::Buffer> {
    let (element, bus) = element(&[
        ("model-location", &test_model("shift")),
        ("pipeline", &pipeline),
        ("overlay", &true),
    ]);
    element.set_property_from_str("mode", mode);
    let mut h = harness(&element);
    h.set_src_caps(gray_caps(128, 96));
    let info = gst_video::VideoInfo::from_caps(&gray_caps(128, 96)).unwrap();
    let mut out = Vec::new();
    for i in 0..count {
        if i == reanchor_at {
            element.emit_by_name::<()>("reanchor", &[]);
        }
        let mut buffer = frame_buffer(&info, i);
        {
            let buffer = buffer.get_mut().unwrap();
            buffer.set_pts(gst::ClockTime::from_mseconds(40 * i as u64));
            if i == 0 {
                attach_reference_mask(buffer, &square(128, 96, 20, 30, 24, 1)).unwrap();
            }
        }
        assert_eq!(h.push(buffer), Ok(gst::FlowSuccess::Ok));
        while let Some(b) = h.try_pull() {
            out.push(b);
        }
        // A held frame leaves when the next one has been registered, not before.
        let expected = if pipeline { i } else { i + 1 };
        assert_eq!(out.len() as u32, expected, "after frame {i}");
    }
    assert!(h.push_event(gst::event::Eos::new()));
    while let Some(b) = h.try_pull() {
        out.push(b);
    }
    assert!(messages(&bus, gst::MessageType::Error).is_empty());
    out
}

#[test]
fn pipeline_holds_one_frame_and_gives_the_same_buffers() {
    for mode in ["keyframe", "chain", "hybrid"] {
        let direct = pipeline_run(false, mode, 12, 6);
        let pipelined = pipeline_run(true, mode, 12, 6);
        assert_eq!(
            pipelined.len(),
            12,
            "{mode}: every frame leaves, the last at EOS"
        );
        for (i, (p, d)) in pipelined.iter().zip(&direct).enumerate() {
            assert_eq!(p.pts(), d.pts(), "{mode}: stream order kept");
            let (rp, rd) = (result(p), result(d));
            assert_eq!(rp.frame, i as u64);
            assert_eq!(rp.reference_frame, rd.reference_frame, "{mode} frame {i}");
            assert_eq!(rp.labels, rd.labels, "{mode} frame {i}");
            assert_eq!(rp.flow.dx, rd.flow.dx, "{mode} frame {i}");
            assert_eq!(rp.areas, rd.areas, "{mode} frame {i}");
            assert_eq!(
                p.map_readable().unwrap().as_slice(),
                d.map_readable().unwrap().as_slice(),
                "{mode} frame {i}: the same overlay"
            );
        }
        // the re-anchor at frame 6 carried the mask of frame 5, the held one
        assert_eq!(result(&pipelined[6]).reference_frame, 6);
        assert!(result(&pipelined[6]).areas[1] > 0);
    }
}

#[test]
fn pipeline_drops_the_held_frame_on_flush_and_releases_it_before_caps_on_drain_and_when_switched_off(
) {
    let (element, bus) = element(&[
        ("model-location", &test_model("shift")),
        ("pipeline", &true),
    ]);
    let mut h = harness(&element);
    h.set_src_caps(gray_caps(64, 64));
    let info = gst_video::VideoInfo::from_caps(&gray_caps(64, 64)).unwrap();
    let frame_of = |b: gst::Buffer| result(&b).frame;
    for i in 0..3 {
        h.push(frame_buffer(&info, i)).unwrap();
    }
    assert_eq!(frame_of(h.pull().unwrap()), 0);
    assert_eq!(frame_of(h.pull().unwrap()), 1);
    // Frame 2 is held: a flush drops it.
    assert!(h.push_event(gst::event::FlushStart::new()));
    assert!(h.push_event(gst::event::FlushStop::new(true)));
    h.push_event(gst::event::Segment::new(&gst::FormattedSegment::<
        gst::ClockTime,
    >::new()));
    assert!(h.try_pull().is_none(), "the held frame was dropped");
    h.push(frame_buffer(&info, 3)).unwrap();
    assert!(h.try_pull().is_none());
    // New caps: frame 3 leaves first, with its own size's result.
    h.set_src_caps(gray_caps(128, 128));
    let held = h.pull().unwrap();
    assert_eq!(result(&held).frame, 3);
    assert_eq!(result(&held).flow_scale, (1.0, 1.0));
    let info = gst_video::VideoInfo::from_caps(&gray_caps(128, 128)).unwrap();
    h.push(frame_buffer(&info, 4)).unwrap();
    assert!(h.try_pull().is_none());
    // A DRAIN query (upstream renegotiating its pool, a decoder draining) lets it go too.
    let mut drain = gst::query::Drain::new();
    assert!(h.srcpad().unwrap().peer_query(&mut drain));
    assert_eq!(frame_of(h.try_pull().expect("drained")), 4);
    h.push(frame_buffer(&info, 5)).unwrap();
    assert!(h.try_pull().is_none());
    // Switched off: the held frame leaves before the next one.
    element.set_property("pipeline", false);
    h.push(frame_buffer(&info, 6)).unwrap();
    assert_eq!(frame_of(h.pull().unwrap()), 5);
    assert_eq!(frame_of(h.pull().unwrap()), 6);
    assert!(h.try_pull().is_none());
    assert!(messages(&bus, gst::MessageType::Error).is_empty());
}
