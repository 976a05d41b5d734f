//! The `pddflow` element: optical flow on ultrasound video with a PDD-Net through ONNX Runtime,
//! and propagation of a reference vessel mask onto every frame.
//!
//! The element is an in-place transform: pixels pass untouched unless `overlay` is on, and every
//! output buffer carries a [`crate::meta::FlowResult`]. Re-anchor the reference by attaching a
//! reference-mask meta upstream, by emitting the `reanchor` action signal, or by sending a
//! custom downstream event named [`REANCHOR_EVENT`].

mod imp;
pub mod live;

use gst::glib;
use gst::prelude::*;

/// The raw video formats `pddflow` (and `pddflowmask`) accept.
pub const FORMATS: [gst_video::VideoFormat; 10] = [
    gst_video::VideoFormat::Gray8,
    gst_video::VideoFormat::Gray16Le,
    gst_video::VideoFormat::Rgb,
    gst_video::VideoFormat::Bgr,
    gst_video::VideoFormat::Rgba,
    gst_video::VideoFormat::Bgra,
    gst_video::VideoFormat::Rgbx,
    gst_video::VideoFormat::Bgrx,
    gst_video::VideoFormat::I420,
    gst_video::VideoFormat::Nv12,
];

/// Name of the custom downstream event structure that re-anchors the reference.
pub const REANCHOR_EVENT: &str = "pddflow-reanchor";

glib::wrapper! {
    pub struct PddFlow(ObjectSubclass<imp::PddFlow>) @extends gst_base::BaseTransform, gst::Element, gst::Object;
}

/// Registration mode (`mode` property).
#[derive(Debug, Eq, PartialEq, Ord, PartialOrd, Hash, Clone, Copy, Default, glib::Enum)]
#[repr(u32)]
#[enum_type(name = "GstPddFlowMode")]
pub enum Mode {
    #[default]
    #[enum_value(
        name = "Keyframe: register every frame to the cached reference frame",
        nick = "keyframe"
    )]
    Keyframe = 0,
    #[enum_value(
        name = "Chain: register frame to frame, reusing the previous frame's features",
        nick = "chain"
    )]
    Chain = 1,
    #[enum_value(
        name = "Hybrid: chain, re-based on a direct registration to the reference every 8 frames when that matches better",
        nick = "hybrid"
    )]
    Hybrid = 2,
}

/// Execution provider request (`execution-provider` property).
#[derive(Debug, Eq, PartialEq, Ord, PartialOrd, Hash, Clone, Copy, Default, glib::Enum)]
#[repr(u32)]
#[enum_type(name = "GstPddFlowExecutionProvider")]
pub enum ExecutionProvider {
    #[default]
    #[enum_value(name = "CPU", nick = "cpu")]
    Cpu = 0,
    #[enum_value(
        name = "CUDA (falls back to CPU with a warning unless strict-provider)",
        nick = "cuda"
    )]
    Cuda = 1,
    #[enum_value(
        name = "Auto: CUDA when available, else CPU (strict-provider has no effect)",
        nick = "auto"
    )]
    Auto = 2,
}

/// Overlay layers (`overlay-style` property).
#[glib::flags(name = "GstPddFlowOverlayStyle")]
pub enum OverlayStyle {
    #[flags_value(name = "Mask fill (overlay-alpha)", nick = "fill")]
    FILL = 0b1,
    #[flags_value(name = "Opaque mask outlines", nick = "contour")]
    CONTOUR = 0b10,
    #[flags_value(
        name = "Flow as an HSV colour wheel (white: still, hue: direction)",
        nick = "flow"
    )]
    FLOW = 0b100,
    #[flags_value(name = "Flow arrows on a grid", nick = "arrows")]
    ARROWS = 0b1000,
    #[flags_value(
        name = "Legend with areas and the vein compression ratio",
        nick = "legend"
    )]
    LEGEND = 0b10000,
}

/// A custom event that makes the next frame the reference, carrying the propagated mask over.
pub fn reanchor_event() -> gst::Event {
    gst::event::CustomDownstream::new(gst::Structure::new_empty(REANCHOR_EVENT))
}

pub fn register(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    #[cfg(not(test))]
    {
        Mode::static_type().mark_as_plugin_api(gst::PluginAPIFlags::empty());
        ExecutionProvider::static_type().mark_as_plugin_api(gst::PluginAPIFlags::empty());
        OverlayStyle::static_type().mark_as_plugin_api(gst::PluginAPIFlags::empty());
    }
    gst::Element::register(
        Some(plugin),
        "pddflow",
        gst::Rank::NONE,
        PddFlow::static_type(),
    )
}
