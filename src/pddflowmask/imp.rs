//! GObject glue of `pddflowmask`.

use crate::flow::pixels::PixelFormat;
use crate::meta;
use crate::sync::lock;
use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;
use gst_base::subclass::prelude::*;
use gst_video::prelude::*;
use gst_video::VideoFormat;
use once_cell::sync::Lazy;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

static CAT: Lazy<gst::DebugCategory> = Lazy::new(|| {
    gst::DebugCategory::new(
        "pddflowmask",
        gst::DebugColorFlags::empty(),
        Some("pddflow label maps as video"),
    )
});

use crate::pddflow::FORMATS as INPUT_FORMATS;

#[derive(Default)]
pub struct PddFlowMask {
    scale: Mutex<u32>,
    out_info: Mutex<Option<gst_video::VideoInfo>>,
    warned: AtomicBool,
}

#[glib::object_subclass]
impl ObjectSubclass for PddFlowMask {
    const NAME: &'static str = "GstPddFlowMask";
    type Type = super::PddFlowMask;
    type ParentType = gst_base::BaseTransform;

    fn new() -> Self {
        Self {
            scale: Mutex::new(1),
            ..Default::default()
        }
    }
}

impl ObjectImpl for PddFlowMask {
    fn properties() -> &'static [glib::ParamSpec] {
        static PROPERTIES: Lazy<Vec<glib::ParamSpec>> = Lazy::new(|| {
            vec![glib::ParamSpecUInt::builder("scale")
                .nick("Scale")
                .blurb("Output value = label id x scale (1: raw label maps; 100: visible greys)")
                .minimum(1)
                .maximum(255)
                .default_value(1)
                .mutable_playing()
                .build()]
        });
        PROPERTIES.as_ref()
    }

    fn set_property(&self, _id: usize, value: &glib::Value, pspec: &glib::ParamSpec) {
        match pspec.name() {
            "scale" => *lock(&self.scale) = value.get().expect("type checked"),
            other => unimplemented!("property {other}"),
        }
    }

    fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
        match pspec.name() {
            "scale" => lock(&self.scale).to_value(),
            other => unimplemented!("property {other}"),
        }
    }
}

impl GstObjectImpl for PddFlowMask {}

impl ElementImpl for PddFlowMask {
    fn metadata() -> Option<&'static gst::subclass::ElementMetadata> {
        static METADATA: Lazy<gst::subclass::ElementMetadata> = Lazy::new(|| {
            gst::subclass::ElementMetadata::new(
                "pddflow label maps as video",
                "Filter/Converter/Video",
                "Outputs the label map that pddflow propagated onto each frame as GRAY8 (label id x scale; \
                 0 where no label map is attached)",
                "pddflow developers",
            )
        });
        Some(&*METADATA)
    }

    fn pad_templates() -> &'static [gst::PadTemplate] {
        static TEMPLATES: Lazy<Vec<gst::PadTemplate>> = Lazy::new(|| {
            let sink = gst_video::VideoCapsBuilder::new()
                .format_list(INPUT_FORMATS)
                .build();
            let src = gst_video::VideoCapsBuilder::new()
                .format(VideoFormat::Gray8)
                .build();
            vec![
                gst::PadTemplate::new(
                    "src",
                    gst::PadDirection::Src,
                    gst::PadPresence::Always,
                    &src,
                )
                .expect("valid template"),
                gst::PadTemplate::new(
                    "sink",
                    gst::PadDirection::Sink,
                    gst::PadPresence::Always,
                    &sink,
                )
                .expect("valid template"),
            ]
        });
        TEMPLATES.as_ref()
    }
}

impl BaseTransformImpl for PddFlowMask {
    const MODE: gst_base::subclass::BaseTransformMode =
        gst_base::subclass::BaseTransformMode::NeverInPlace;
    const PASSTHROUGH_ON_SAME_CAPS: bool = false;
    const TRANSFORM_IP_ON_PASSTHROUGH: bool = false;

    fn transform_caps(
        &self,
        direction: gst::PadDirection,
        caps: &gst::Caps,
        filter: Option<&gst::Caps>,
    ) -> Option<gst::Caps> {
        let mut out = caps.clone();
        let formats: Vec<&str> = match direction {
            gst::PadDirection::Sink => vec!["GRAY8"],
            _ => INPUT_FORMATS.iter().map(|f| f.to_str().as_str()).collect(),
        };
        for s in out.make_mut().iter_mut() {
            s.set("format", gst::List::new(formats.iter().copied()));
        }
        Some(match filter {
            Some(f) => f.intersect_with_mode(&out, gst::CapsIntersectMode::First),
            None => out,
        })
    }

    fn unit_size(&self, caps: &gst::Caps) -> Option<usize> {
        gst_video::VideoInfo::from_caps(caps).ok().map(|i| i.size())
    }

    fn set_caps(&self, _incaps: &gst::Caps, outcaps: &gst::Caps) -> Result<(), gst::LoggableError> {
        let info = gst_video::VideoInfo::from_caps(outcaps)
            .map_err(|_| gst::loggable_error!(CAT, "cannot parse caps {outcaps}"))?;
        *lock(&self.out_info) = Some(info);
        Ok(())
    }

    fn transform_meta<'a>(
        &self,
        _outbuf: &mut gst::BufferRef,
        _meta: gst::MetaRef<'a, gst::Meta>,
        _inbuf: &'a gst::BufferRef,
    ) -> bool {
        // Same size in and out: every meta (pddflow's, ROIs) still holds.
        true
    }

    fn transform(
        &self,
        inbuf: &gst::Buffer,
        outbuf: &mut gst::BufferRef,
    ) -> Result<gst::FlowSuccess, gst::FlowError> {
        let Some(info) = lock(&self.out_info).clone() else {
            return Err(gst::FlowError::NotNegotiated);
        };
        let scale = *lock(&self.scale) as u16;
        let (w, h) = (info.width() as usize, info.height() as usize);
        let labels = meta::result_labels(inbuf)
            .and_then(Result::ok)
            .filter(|l| (l.width, l.height) == (w, h))
            .map(|l| l.data);
        if labels.is_none() && !self.warned.swap(true, Ordering::SeqCst) {
            gst::element_imp_warning!(
                self,
                gst::StreamError::Format,
                ("No pddflow label map on the input (yet): writing empty frames"),
                ["Put pddflowmask after pddflow and give pddflow a reference mask."]
            );
        }
        let mut frame =
            gst_video::VideoFrameRef::from_buffer_ref_writable(outbuf, &info).map_err(|_| {
                gst::element_imp_error!(
                    self,
                    gst::StreamError::Failed,
                    ("Cannot map the output frame writable")
                );
                gst::FlowError::Error
            })?;
        // The output buffer's own stride (its GstVideoMeta when downstream's pool adds one).
        let stride = frame.plane_stride()[0];
        let data = frame.plane_data_mut(0).map_err(|_| gst::FlowError::Error)?;
        let layout = PixelFormat::Gray8.check_layout(w, h, &[(data.len(), stride as isize)]);
        if let Err(e) = layout {
            gst::element_imp_error!(
                self,
                gst::StreamError::Format,
                ("Cannot write the output buffer's layout: {e}")
            );
            return Err(gst::FlowError::Error);
        }
        let stride = stride as usize;
        for y in 0..h {
            let row = &mut data[y * stride..y * stride + w];
            match &labels {
                Some(l) => {
                    for (d, &v) in row.iter_mut().zip(&l[y * w..(y + 1) * w]) {
                        *d = (v as u16 * scale).min(255) as u8;
                    }
                }
                None => row.fill(0),
            }
        }
        Ok(gst::FlowSuccess::Ok)
    }
}
