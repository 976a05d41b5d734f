//! The `pddflow` element: optical flow on ultrasound video with a PDD-Net through ONNX Runtime,
//! and propagation of a reference vessel mask onto every frame.
//!
//! The element is an in-place transform: pixels pass untouched unless `overlay` is on (and even
//! then when downstream blends a `GstVideoOverlayCompositionMeta` itself, see `composition`),
//! and every output buffer carries a [`crate::meta::FlowResult`]. Re-anchor the reference by attaching a
//! reference-mask meta upstream, by emitting the `reanchor` action signal, or by sending a
//! custom downstream event named [`REANCHOR_EVENT`].

mod composition;
mod imp;
pub mod live;
mod readout;

use gst::glib;
use gst::prelude::*;
use gst_video::VideoFormat;

use crate::engine::ProviderRequest;
use crate::flow::draw;
use crate::flow::pixels::PixelFormat;
use crate::flow::tracker;

/// Every raw video format `pddflow` (and `pddflowmask`) accepts, with the [`PixelFormat`] the
/// pure code reads and draws it as: the one list behind the pad templates and [`pixel_format`].
const FORMAT_TABLE: [(VideoFormat, PixelFormat); 10] = [
    (VideoFormat::Gray8, PixelFormat::Gray8),
    (VideoFormat::Gray16Le, PixelFormat::Gray16Le),
    (VideoFormat::Rgb, PixelFormat::Rgb),
    (VideoFormat::Bgr, PixelFormat::Bgr),
    (VideoFormat::Rgba, PixelFormat::Rgba),
    (VideoFormat::Bgra, PixelFormat::Bgra),
    (VideoFormat::Rgbx, PixelFormat::Rgbx),
    (VideoFormat::Bgrx, PixelFormat::Bgrx),
    (VideoFormat::I420, PixelFormat::I420),
    (VideoFormat::Nv12, PixelFormat::Nv12),
];

/// The raw video formats `pddflow` (and `pddflowmask`) accept.
pub const FORMATS: [VideoFormat; FORMAT_TABLE.len()] = {
    let mut formats = [VideoFormat::Unknown; FORMAT_TABLE.len()];
    let mut i = 0;
    while i < formats.len() {
        formats[i] = FORMAT_TABLE[i].0;
        i += 1;
    }
    formats
};

/// The pixel format a GStreamer video format is read as; `None` for a format not in [`FORMATS`].
pub fn pixel_format(format: VideoFormat) -> Option<PixelFormat> {
    FORMAT_TABLE
        .iter()
        .find(|&&(video, _)| video == format)
        .map(|&(_, pixel)| pixel)
}

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

impl From<Mode> for tracker::Mode {
    fn from(mode: Mode) -> Self {
        match mode {
            Mode::Keyframe => tracker::Mode::Keyframe,
            Mode::Chain => tracker::Mode::Chain,
            Mode::Hybrid => tracker::Mode::Hybrid,
        }
    }
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

impl From<ExecutionProvider> for ProviderRequest {
    fn from(provider: ExecutionProvider) -> Self {
        match provider {
            ExecutionProvider::Cpu => ProviderRequest::Cpu,
            ExecutionProvider::Cuda => ProviderRequest::Cuda,
            ExecutionProvider::Auto => ProviderRequest::Auto,
        }
    }
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

impl From<OverlayStyle> for draw::Layers {
    fn from(style: OverlayStyle) -> Self {
        draw::Layers {
            fill: style.contains(OverlayStyle::FILL),
            contour: style.contains(OverlayStyle::CONTOUR),
            flow: style.contains(OverlayStyle::FLOW),
            arrows: style.contains(OverlayStyle::ARROWS),
            legend: style.contains(OverlayStyle::LEGEND),
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepted_formats_and_only_those_have_a_pixel_format() {
        for format in FORMATS {
            assert!(pixel_format(format).is_some(), "{format:?}");
        }
        assert_eq!(pixel_format(VideoFormat::Nv12), Some(PixelFormat::Nv12));
        assert_eq!(pixel_format(VideoFormat::Yuy2), None);
    }

    /// The element's enum nicks are the names the pure types parse and print.
    #[test]
    fn nicks_are_the_pure_types_names() {
        fn nick(value: impl ToValue) -> String {
            let value = value.to_value();
            let (_, enum_value) = glib::EnumValue::from_value(&value).unwrap();
            enum_value.nick().to_string()
        }
        for mode in [Mode::Keyframe, Mode::Chain, Mode::Hybrid] {
            assert_eq!(nick(mode), tracker::Mode::from(mode).name());
        }
        for provider in [
            ExecutionProvider::Cpu,
            ExecutionProvider::Cuda,
            ExecutionProvider::Auto,
        ] {
            assert_eq!(nick(provider), ProviderRequest::from(provider).name());
        }
    }
}
