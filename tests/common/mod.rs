//! Shared helpers for the element tests.
#![allow(dead_code)]

use gst::prelude::*;
use gstpddflow::flow::LabelMap;

pub fn init() {
    use std::sync::Once;
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        gst::init().unwrap();
        gstpddflow::plugin_register_static().expect("plugin registers");
    });
}

pub fn test_model(name: &str) -> String {
    format!("{}/tests/models/{name}", env!("CARGO_MANIFEST_DIR"))
}

/// A `pddflow` element with a bus of its own so that errors and warnings can be read.
pub fn element(props: &[(&str, &dyn ToValue)]) -> (gst::Element, gst::Bus) {
    init();
    let mut builder = gst::ElementFactory::make("pddflow");
    for (k, v) in props {
        builder = builder.property(k, v.to_value());
    }
    let element = builder.build().expect("pddflow exists");
    let bus = gst::Bus::new();
    element.set_bus(Some(&bus));
    (element, bus)
}

pub fn harness(element: &gst::Element) -> gst_check::Harness {
    gst_check::Harness::with_element(element, Some("sink"), Some("src"))
}

pub fn gray_caps(w: u32, h: u32) -> gst::Caps {
    gst_video::VideoCapsBuilder::new()
        .format(gst_video::VideoFormat::Gray8)
        .width(w as i32)
        .height(h as i32)
        .framerate(gst::Fraction::new(30, 1))
        .build()
}

/// A frame of pseudo-random bytes for `info` (strides and padding included).
pub fn frame_buffer(info: &gst_video::VideoInfo, seed: u32) -> gst::Buffer {
    let mut state = seed.wrapping_mul(2654435761).wrapping_add(1);
    let data: Vec<u8> = (0..info.size())
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            (state >> 24) as u8
        })
        .collect();
    gst::Buffer::from_mut_slice(data)
}

pub fn square(w: usize, h: usize, x0: usize, y0: usize, size: usize, label: u8) -> LabelMap {
    let mut m = LabelMap::new(w, h);
    for y in y0..y0 + size {
        for x in x0..x0 + size {
            m.data[y * w + x] = label;
        }
    }
    m
}

/// All messages of `kind` (error, warning) on the bus so far, as text.
pub fn messages(bus: &gst::Bus, kind: gst::MessageType) -> Vec<String> {
    let mut out = vec![];
    while let Some(msg) = bus.pop_filtered(&[kind]) {
        match msg.view() {
            gst::MessageView::Error(e) => out.push(format!("{} | {:?}", e.error(), e.debug())),
            gst::MessageView::Warning(w) => out.push(format!("{} | {:?}", w.error(), w.debug())),
            _ => {}
        }
    }
    out
}

pub fn stat(element: &gst::Element, field: &str) -> u64 {
    element
        .property::<gst::Structure>("stats")
        .get::<u64>(field)
        .unwrap()
}

/// `desc` parsed into a pipeline, with its `appsrc` named `src` and its `appsink` named `sink`
/// when it has one.
pub fn app_pipeline(desc: &str) -> (gst::Pipeline, gst_app::AppSrc, Option<gst_app::AppSink>) {
    init();
    let pipeline = gst::parse::launch(desc)
        .unwrap_or_else(|e| panic!("{desc}: {e}"))
        .downcast::<gst::Pipeline>()
        .unwrap();
    let src = pipeline
        .by_name("src")
        .and_then(|e| e.downcast::<gst_app::AppSrc>().ok())
        .expect("an appsrc named src");
    let sink = pipeline
        .by_name("sink")
        .and_then(|e| e.downcast::<gst_app::AppSink>().ok());
    (pipeline, src, sink)
}
