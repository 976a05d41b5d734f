//! pddflow: realtime optical flow on ultrasound video and propagation of vessel masks (vein,
//! artery), after Nicke et al., with a PDD-Net student run through ONNX Runtime.
//!
//! Layers: [`flow`] (pure Rust: flow fields, warping, metrics), [`engine`] (ONNX Runtime
//! sessions and the reference feature cache), [`meta`] (buffer metadata), [`pddflow`] (the
//! element) and [`phantom`] (the synthetic ultrasound source).

pub mod engine;
pub mod flow;
pub mod meta;
pub mod pddflow;
pub mod pddflowmask;
pub mod phantom;
mod sync;

fn plugin_init(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    meta::register();
    if let Some(dir) = plugin.filename().as_deref().and_then(|f| f.parent()) {
        engine::runtime::set_plugin_dir(dir);
    }
    pddflow::register(plugin)?;
    pddflowmask::register(plugin)?;
    phantom::register(plugin)?;
    Ok(())
}

gst::plugin_define!(
    pddflow,
    env!("CARGO_PKG_DESCRIPTION"),
    plugin_init,
    concat!(env!("CARGO_PKG_VERSION"), "-", env!("COMMIT_ID")),
    "MIT/X11",
    env!("CARGO_PKG_NAME"),
    env!("CARGO_PKG_NAME"),
    env!("CARGO_PKG_REPOSITORY"),
    env!("BUILD_REL_DATE")
);
