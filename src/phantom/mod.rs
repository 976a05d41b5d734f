//! The ultrasound phantom and `usphantomsrc`, the source element that streams it.
//!
//! The simulator is pure Rust (no GStreamer): [`params`] (settings with units), [`anatomy`]
//! (leg cross-section: layers, fascia, muscle, bone, veins and arteries as echogenicity and
//! attenuation maps), [`motion`] (compression, pulsation, probe motion, and the exact maps
//! between frames and rest tissue), [`imaging`] (linear-probe PSF in IQ, envelope, attenuation,
//! TGC, noise, log compression) and [`simulator`] (scatterers and frame rendering); the
//! `pddflow-phantom` dataset writer is in the tools crate (`tools/src/phantom_dataset.rs`).
//!
//! Conventions: tissue coordinates are frame-0 pixel coordinates. For frame `t` the backward
//! map `T_t` gives the frame-0 position of each pixel; the ground-truth flow is `T_t(p) - p`
//! (so `p + flow(p)` is where `p` was in frame 0) and the label map is `label_0(T_t(p))`.
//! Scatterers move with the forward map `T_t^-1`, so image, labels and flow always agree.
//!
//! ```text
//! gst-launch-1.0 usphantomsrc num-buffers=300 ! videoconvert ! x264enc ! mp4mux ! filesink location=phantom.mp4
//! ```

pub mod anatomy;
pub mod imaging;
mod imp;
pub mod motion;
pub mod params;
pub mod simulator;

use gst::glib;
use gst::prelude::*;

pub use params::{PhantomParams, Scene};
pub use simulator::{Frame, FrameTruth, Phantom, Workspace};

glib::wrapper! {
    /// `usphantomsrc`: GRAY8 B-mode frames of a simulated leg compression exam, with the
    /// ground-truth label map attached as reference-mask meta (see [`crate::meta`]).
    pub struct UsPhantomSrc(ObjectSubclass<imp::UsPhantomSrc>)
        @extends gst_base::PushSrc, gst_base::BaseSrc, gst::Element, gst::Object;
}

pub fn register(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    gst::Element::register(
        Some(plugin),
        "usphantomsrc",
        gst::Rank::NONE,
        UsPhantomSrc::static_type(),
    )
}
