//! The ultrasound phantom (pure Rust: [`params`], [`anatomy`], [`motion`], [`imaging`],
//! [`simulator`], [`dataset`]) and the `usphantomsrc` element that streams it.

pub mod anatomy;
pub mod dataset;
pub mod imaging;
pub mod motion;
pub mod params;
pub mod simulator;

pub use params::{PhantomParams, Scene};
pub use simulator::{Frame, FrameTruth, Phantom, Workspace};

pub fn register(_plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    Ok(())
}
