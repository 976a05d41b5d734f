//! Results where users need them: the custom meta read generically, ROI metas, compression
//! messages, and metas that survive videoconvert, videoscale and queue.

mod common;

use common::*;
use gst::prelude::*;
use gstpddflow::meta::{attach_reference_mask, FlowResult, RESULT_META_NAME};

/// A pipeline `appsrc ! pddflow ! <middle> ! appsink` fed with GRAY8 frames, the first one
/// carrying `mask` as reference-mask meta. Returns the output samples and the bus messages.
fn run_pipeline(
    middle: &str,
    width: u32,
    height: u32,
    frames: u32,
    mask: &gstpddflow::flow::LabelMap,
    props: &str,
) -> (Vec<gst::Sample>, Vec<gst::Message>) {
    run_pipeline_with(middle, width, height, frames, mask, props, frame_buffer)
}

/// [`run_pipeline`] with the frames from `make_frame(info, index)`.
fn run_pipeline_with(
    middle: &str,
    width: u32,
    height: u32,
    frames: u32,
    mask: &gstpddflow::flow::LabelMap,
    props: &str,
    make_frame: impl Fn(&gst_video::VideoInfo, u32) -> gst::Buffer,
) -> (Vec<gst::Sample>, Vec<gst::Message>) {
    init();
    let desc = format!(
        "appsrc name=src format=time caps=video/x-raw,format=GRAY8,width={width},height={height},framerate=30/1 \
         ! pddflow model-location={} {props} {middle} ! appsink name=sink sync=false",
        test_model("shift")
    );
    let (pipeline, src, sink) = app_pipeline(&desc);
    let sink = sink.unwrap();
    pipeline.set_state(gst::State::Playing).unwrap();
    let info = gst_video::VideoInfo::from_caps(&gray_caps(width, height)).unwrap();
    for i in 0..frames {
        let mut buffer = make_frame(&info, i);
        {
            let b = buffer.get_mut().unwrap();
            b.set_pts(gst::ClockTime::from_mseconds(33 * i as u64));
            if i == 0 {
                attach_reference_mask(b, mask).unwrap();
            }
        }
        src.push_buffer(buffer).unwrap();
    }
    src.end_of_stream().unwrap();
    let samples: Vec<gst::Sample> = (0..frames).map(|_| sink.pull_sample().unwrap()).collect();
    let bus = pipeline.bus().unwrap();
    let mut messages = vec![];
    loop {
        let msg = bus
            .timed_pop(gst::ClockTime::from_seconds(5))
            .expect("EOS arrives");
        let eos = matches!(msg.view(), gst::MessageView::Eos(_));
        if let gst::MessageView::Error(e) = msg.view() {
            panic!("pipeline error: {} {:?}", e.error(), e.debug());
        }
        messages.push(msg);
        if eos {
            break;
        }
    }
    pipeline.set_state(gst::State::Null).unwrap();
    (samples, messages)
}

fn vein_and_artery(w: usize, h: usize) -> gstpddflow::flow::LabelMap {
    let mut m = square(w, h, 10, 20, 20, 1);
    for y in 20..36 {
        for x in 60..76 {
            m.data[y * w + x] = 2;
        }
    }
    m
}

#[test]
fn result_is_readable_through_the_generic_custom_meta_api() {
    let (samples, _) = run_pipeline("", 128, 96, 2, &vein_and_artery(128, 96), "");
    let buffer = samples[1].buffer().unwrap();
    // Only GStreamer's own API: what a C or Python application does.
    let meta = gst::meta::CustomMeta::from_buffer(buffer, RESULT_META_NAME).unwrap();
    let s = meta.structure();
    assert_eq!(s.get::<u64>("frame").unwrap(), 1);
    assert_eq!(s.get::<u64>("reference-frame").unwrap(), 0);
    assert_eq!(
        s.get::<&str>("flow-direction").unwrap(),
        "backward-to-reference"
    );
    let (fw, fh) = (
        s.get::<u32>("flow-width").unwrap(),
        s.get::<u32>("flow-height").unwrap(),
    );
    let flow = s.get::<glib::Bytes>("flow").unwrap();
    assert_eq!(flow.len(), (fw * fh * 8) as usize);
    let dx = f32::from_le_bytes(flow[0..4].try_into().unwrap());
    let dy = f32::from_le_bytes(flow[4..8].try_into().unwrap());
    assert_eq!((dx, dy), (-3.0, -2.0));
    assert_eq!(s.get::<f64>("flow-scale-x").unwrap(), 2.0);
    let labels = s.get::<glib::Bytes>("labels").unwrap();
    assert_eq!(labels.len(), 128 * 96);
    let names: Vec<String> = s
        .get::<gst::Array>("class-names")
        .unwrap()
        .iter()
        .map(|v| v.get::<String>().unwrap())
        .collect();
    assert_eq!(names, ["background", "vein", "artery"]);
    let areas: Vec<u64> = s
        .get::<gst::Array>("areas")
        .unwrap()
        .iter()
        .map(|v| v.get().unwrap())
        .collect();
    assert_eq!(areas[1], 400);
    assert_eq!(areas[2], 256);
    assert_eq!(s.get::<&str>("execution-provider").unwrap(), "cpu");
}

#[test]
fn vessels_are_region_of_interest_metas() {
    let (samples, _) = run_pipeline(
        "",
        128,
        96,
        2,
        &vein_and_artery(128, 96),
        "pixel-spacing=0.1",
    );
    let buffer = samples[1].buffer().unwrap();
    let rois: Vec<_> = buffer
        .iter_meta::<gst_video::VideoRegionOfInterestMeta>()
        .collect();
    assert_eq!(rois.len(), 2);
    let vein = rois.iter().find(|r| r.roi_type() == "vein").unwrap();
    // Shift model: content moved +6, +3 frame pixels.
    assert_eq!(vein.rect(), (16, 23, 20, 20));
    let p = vein.param("pddflow/vessel").unwrap();
    assert_eq!(p.get::<u64>("area").unwrap(), 400);
    assert!((p.get::<f64>("area-mm2").unwrap() - 4.0).abs() < 1e-9);
    assert!((p.get::<f64>("mean-motion-x").unwrap() - 6.0).abs() < 1e-6);
    assert!((p.get::<f64>("mean-motion-y").unwrap() - 3.0).abs() < 1e-6);
    assert!(rois
        .iter()
        .any(|r| r.roi_type() == "artery" && r.rect() == (66, 23, 16, 16)));
}

#[test]
fn metas_survive_videoconvert_videoscale_and_queue() {
    let middle = "! queue ! videoconvert ! video/x-raw,format=I420 ! videoscale ! video/x-raw,width=256,height=192 ! queue";
    let (samples, _) = run_pipeline(middle, 128, 96, 3, &vein_and_artery(128, 96), "");
    let buffer = samples[2].buffer().unwrap();
    let r = FlowResult::from_buffer(buffer).unwrap().unwrap();
    // Scaled x2: the flow stays at model resolution, its scale and the labels follow the frame.
    assert_eq!((r.flow.width, r.flow.height), (64, 64));
    assert_eq!(r.flow_scale, (4.0, 3.0));
    let labels = r.labels.unwrap();
    assert_eq!((labels.width, labels.height), (256, 192));
    assert_eq!(r.areas[1], 1600);
    let vein = buffer
        .iter_meta::<gst_video::VideoRegionOfInterestMeta>()
        .find(|r| r.roi_type() == "vein")
        .unwrap();
    assert_eq!(vein.rect(), (32, 46, 40, 40));
}

#[test]
fn compression_readouts_and_summary_are_posted() {
    let (_, messages) = run_pipeline(
        "",
        128,
        96,
        4,
        &vein_and_artery(128, 96),
        "message-interval=1",
    );
    let structures: Vec<gst::Structure> = messages
        .iter()
        .filter_map(|m| match m.view() {
            gst::MessageView::Element(e) => e.structure().map(|s| s.to_owned()),
            _ => None,
        })
        .collect();
    let readouts: Vec<_> = structures
        .iter()
        .filter(|s| s.name() == "pddflow-compression")
        .collect();
    assert_eq!(readouts.len(), 4);
    assert_eq!(readouts[2].get::<u64>("vein-area").unwrap(), 400);
    assert_eq!(
        readouts[2].get::<f64>("vein-compression-ratio").unwrap(),
        1.0
    );
    let summary = structures
        .iter()
        .find(|s| s.name() == "pddflow-summary")
        .unwrap();
    assert_eq!(summary.get::<u64>("frames").unwrap(), 4);
    assert!(!summary.get::<bool>("vein-closed").unwrap());
    assert_eq!(
        summary.get::<f64>("min-vein-compression-ratio").unwrap(),
        1.0
    );
}

/// The summary of 3 frames of tissue (luma 120) with the vessels of [`vein_and_artery`] as dark
/// lumens (luma 20) on the reference frame; on later frames, where the shift model moves the
/// masks by (+6, +3), only the artery's lumen is dark: the vein was pressed shut under its mask.
fn summary_of_a_vein_pressed_shut(props: &str) -> gst::Structure {
    let (w, h) = (128usize, 96usize);
    let mask = vein_and_artery(w, h);
    let make_frame = |info: &gst_video::VideoInfo, i: u32| {
        let stride = info.stride()[0] as usize;
        let mut data = vec![120u8; info.size()];
        for y in 0..h {
            for x in 0..w {
                let label = if i == 0 {
                    mask.get(x, y)
                } else if x >= 6 && y >= 3 {
                    mask.get(x - 6, y - 3)
                } else {
                    0
                };
                if label == 2 || (i == 0 && label == 1) {
                    data[y * stride + x] = 20;
                }
            }
        }
        gst::Buffer::from_mut_slice(data)
    };
    let (_, messages) = run_pipeline_with("", w as u32, h as u32, 3, &mask, props, make_frame);
    messages
        .iter()
        .find_map(|m| match m.view() {
            gst::MessageView::Element(e) => e
                .structure()
                .filter(|s| s.name() == "pddflow-summary")
                .map(|s| s.to_owned()),
            _ => None,
        })
        .expect("a summary at EOS")
}

#[test]
fn a_vein_pressed_shut_reads_closed_from_the_image_unless_told_otherwise() {
    let summary = summary_of_a_vein_pressed_shut("");
    // The masks keep their whole area (ratio 1): the image is the only evidence.
    assert_eq!(
        summary.get::<f64>("min-vein-compression-ratio").unwrap(),
        1.0
    );
    assert!(summary.get::<bool>("vein-closed").unwrap());
    assert_eq!(summary.get::<u64>("contrast-closed-frame").unwrap(), 1);
    let area_only = summary_of_a_vein_pressed_shut("lumen-evidence=false");
    assert!(!area_only.get::<bool>("vein-closed").unwrap());
    assert!(!area_only.has_field("contrast-closed-frame"));
}

#[test]
fn pddflowmask_outputs_the_label_map_as_gray8() {
    let mask = vein_and_artery(128, 96);
    let (samples, _) = run_pipeline("! pddflowmask scale=100", 128, 96, 2, &mask, "");
    let caps = samples[1].caps().unwrap();
    let info = gst_video::VideoInfo::from_caps(caps).unwrap();
    assert_eq!(info.format(), gst_video::VideoFormat::Gray8);
    let buffer = samples[1].buffer().unwrap();
    let labels = FlowResult::from_buffer(buffer)
        .unwrap()
        .unwrap()
        .labels
        .unwrap();
    let map = buffer.map_readable().unwrap();
    let stride = info.stride()[0] as usize;
    for y in 0..96 {
        for x in 0..128 {
            assert_eq!(map[y * stride + x], labels.get(x, y) * 100, "at {x},{y}");
        }
    }
    assert_eq!(
        labels.get(16 + 5, 23 + 5),
        1,
        "vein moved by the model's shift"
    );
}

/// The hybrid pattern: a segmentation model upstream attaches a fresh mask every N frames
/// (here a pad probe stands in for it) and pddflow propagates between them.
#[test]
fn segmentation_every_n_frames_reanchors_and_propagates_between() {
    init();
    let pipeline = gst::parse::launch(&format!(
        "videotestsrc num-buffers=10 pattern=ball ! video/x-raw,format=GRAY8,width=64,height=64 \
         ! identity name=segmenter ! pddflow model-location={} ! appsink name=sink sync=false",
        test_model("shift")
    ))
    .unwrap()
    .downcast::<gst::Pipeline>()
    .unwrap();
    let segmenter = pipeline.by_name("segmenter").unwrap();
    let counter = std::sync::atomic::AtomicU64::new(0);
    segmenter
        .static_pad("src")
        .unwrap()
        .add_probe(gst::PadProbeType::BUFFER, move |_, info| {
            let n = counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            if n.is_multiple_of(4) {
                if let Some(gst::PadProbeData::Buffer(buffer)) = info.data.as_mut() {
                    attach_reference_mask(buffer.make_mut(), &square(64, 64, 20, 20, 10, 1))
                        .unwrap();
                }
            }
            gst::PadProbeReturn::Ok
        });
    let sink = pipeline
        .by_name("sink")
        .unwrap()
        .downcast::<gst_app::AppSink>()
        .unwrap();
    pipeline.set_state(gst::State::Playing).unwrap();
    let references: Vec<u64> = (0..10)
        .map(|_| {
            let sample = sink.pull_sample().unwrap();
            FlowResult::from_buffer(sample.buffer().unwrap())
                .unwrap()
                .unwrap()
                .reference_frame
        })
        .collect();
    pipeline.set_state(gst::State::Null).unwrap();
    assert_eq!(references, [0, 0, 0, 0, 4, 4, 4, 4, 8, 8]);
}
