//! `pddflowmask`: turns the label map that `pddflow` attaches into a GRAY8 video frame, so that
//! label maps can be encoded (`pngenc ! multifilesink`), recorded or viewed with stock elements.

mod imp;

use gst::glib;
use gst::prelude::*;

glib::wrapper! {
    pub struct PddFlowMask(ObjectSubclass<imp::PddFlowMask>) @extends gst_base::BaseTransform, gst::Element, gst::Object;
}

pub fn register(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    gst::Element::register(
        Some(plugin),
        "pddflowmask",
        gst::Rank::NONE,
        PddFlowMask::static_type(),
    )
}
