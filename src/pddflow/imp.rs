//! GObject glue of `pddflow`: properties, caps, events, mapping frames. The work is done by
//! [`crate::flow::tracker::Tracker`] over an [`crate::engine::Engine`]; what each frame
//! attaches and posts comes from [`super::readout`], the overlay from [`crate::flow::draw`].

use super::composition::{self, Delivery};
use super::live::{LatencyReport, ProcessingTimes, Qos};
use super::readout;
use super::{pixel_format, ExecutionProvider, Mode, OverlayStyle, FORMATS, REANCHOR_EVENT};
use crate::engine::model::{ModelError, ModelFiles};
use crate::engine::{runtime, Engine, EngineConfig, Features};
use crate::flow::draw;
use crate::flow::mask_file::{self, ColorMap};
use crate::flow::pixels::{self, Canvas, ModelInput, PixelFormat};
use crate::flow::tracker::{self, Anchor, Tracker};
use crate::flow::{warp::check_size, LabelMap};
use crate::meta::{self, FlowResult};
use crate::sync::lock;
use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;
use gst_base::subclass::base_transform::GenerateOutputSuccess;
use gst_base::subclass::prelude::*;
use gst_video::prelude::*;
use once_cell::sync::Lazy;
use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Instant;

// Property defaults: `Settings::default` and the ParamSpecs both read these.
const DEFAULT_MODE: Mode = Mode::Keyframe;
const DEFAULT_PROVIDER: ExecutionProvider = ExecutionProvider::Cpu;
const DEFAULT_STRICT_PROVIDER: bool = false;
const DEFAULT_DEVICE_ID: i32 = 0;
/// The default model is small: one thread is fastest on small or busy CPUs.
const DEFAULT_THREADS: u32 = 1;
/// 0: the model's default input size.
const DEFAULT_WORKING_SIZE: u32 = 0;
const DEFAULT_OVERLAY: bool = false;
const DEFAULT_OVERLAY_STYLE: OverlayStyle = OverlayStyle::FILL
    .union(OverlayStyle::CONTOUR)
    .union(OverlayStyle::LEGEND);
const DEFAULT_OVERLAY_ALPHA: f64 = 0.35;
/// 0: unknown, areas in pixels only.
const DEFAULT_PIXEL_SPACING: f64 = 0.0;
const DEFAULT_MESSAGE_INTERVAL: u32 = 30;
const DEFAULT_CLOSURE_THRESHOLD: f64 = 0.1;
const DEFAULT_LUMEN_EVIDENCE: bool = true;
const DEFAULT_SKIP_LATE: bool = true;
const DEFAULT_PIPELINE: bool = false;
/// `tracking-threshold`'s default. On the seven carotid dev recordings, chain mode, frames below
/// 0.3 have a mean artery Dice of 31.5 % (153 frames), frames at or above it 86.1 % (81 frames);
/// hybrid 19.4 / 87.0 %, keyframe 15.0 / 72.9 %.
const DEFAULT_TRACKING_THRESHOLD: f64 = 0.3;

/// The model at `location` (a directory), or the built-in one when it is empty.
fn load_model(location: &str) -> Result<ModelFiles, gst::ErrorMessage> {
    if location.is_empty() {
        ModelFiles::embedded()
    } else {
        ModelFiles::from_dir(&PathBuf::from(location))
    }
    .map_err(|e| match e {
        ModelError::Missing(e) => gst::error_msg!(gst::ResourceError::NotFound, ("{e}")),
        ModelError::Invalid(e) => gst::error_msg!(gst::LibraryError::Settings, ("{e}")),
    })
}

static CAT: Lazy<gst::DebugCategory> = Lazy::new(|| {
    gst::DebugCategory::new(
        "pddflow",
        gst::DebugColorFlags::empty(),
        Some("PDD-Net optical flow"),
    )
});

#[derive(Clone, Debug)]
struct Settings {
    model_location: String,
    mode: Mode,
    provider: ExecutionProvider,
    strict_provider: bool,
    device_id: i32,
    threads: u32,
    working_size: u32,
    reference_mask: String,
    mask_colors: String,
    overlay: bool,
    overlay_style: OverlayStyle,
    overlay_alpha: f64,
    pixel_spacing: f64,
    message_interval: u32,
    closure_threshold: f64,
    lumen_evidence: bool,
    tracking_threshold: f64,
    skip_late: bool,
    pipeline: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            model_location: String::new(),
            mode: DEFAULT_MODE,
            provider: DEFAULT_PROVIDER,
            strict_provider: DEFAULT_STRICT_PROVIDER,
            device_id: DEFAULT_DEVICE_ID,
            threads: DEFAULT_THREADS,
            working_size: DEFAULT_WORKING_SIZE,
            reference_mask: String::new(),
            mask_colors: String::new(),
            overlay: DEFAULT_OVERLAY,
            overlay_style: DEFAULT_OVERLAY_STYLE,
            overlay_alpha: DEFAULT_OVERLAY_ALPHA,
            pixel_spacing: DEFAULT_PIXEL_SPACING,
            message_interval: DEFAULT_MESSAGE_INTERVAL,
            closure_threshold: DEFAULT_CLOSURE_THRESHOLD,
            lumen_evidence: DEFAULT_LUMEN_EVIDENCE,
            tracking_threshold: DEFAULT_TRACKING_THRESHOLD,
            skip_late: DEFAULT_SKIP_LATE,
            pipeline: DEFAULT_PIPELINE,
        }
    }
}

struct State {
    engine: Engine,
    tracker: Tracker<Features>,
    /// Resizes frames to the engine's input size.
    input: ModelInput,
    /// The `working-size` the engine runs at.
    working_size: u32,
    /// Class names, compression and tracking-loss state of the readout.
    readout: readout::Monitors,
    /// How many of the readout's class names the model names.
    model_class_count: usize,
    /// The last warning about a reference mask's class ids, not repeated for every anchor.
    last_mask_warning: Option<String>,
    video: Option<(gst_video::VideoInfo, PixelFormat)>,
    /// Mask to anchor the next frame with (from the `reference-mask` file, or carried over a
    /// caps change).
    pending_mask: Option<LabelMap>,
    frames: u64,
    live: Live,
    /// `pipeline=true`: the frame the model has registered but whose mask is not yet warped,
    /// read out or attached. It leaves while the next frame's model runs.
    held: Option<Held>,
    /// Set by `transform_ip` for the buffer it was given when that buffer is to be held:
    /// `generate_output` pairs the two.
    incoming: Option<Pending>,
    /// Finished buffers, in stream order, for `generate_output` (or a drain) to push.
    ready: VecDeque<gst::Buffer>,
    /// `pipeline=true`: the read-out's own one-thread pool, made on first use, so that the
    /// read-out (its warp included) keeps to the core beside the model instead of taking
    /// both; rayon's global pool when it cannot be made.
    read_out_pool: ReadOutPool,
}

/// Where the read-out of `pipeline=true` runs.
#[derive(Debug, Default)]
enum ReadOutPool {
    /// Not asked for yet.
    #[default]
    Unmade,
    Own(rayon::ThreadPool),
    /// Its thread could not be made: rayon's global pool, for the rest of the stream.
    Global,
}

impl ReadOutPool {
    /// Makes the pool with `build` on first use; a failure (reported once, by the error
    /// returned) leaves the read-out on rayon's global pool instead of retrying every frame.
    fn ensure<E: std::fmt::Display>(
        &mut self,
        build: impl FnOnce() -> Result<rayon::ThreadPool, E>,
    ) -> Result<(), String> {
        if !matches!(self, ReadOutPool::Unmade) {
            return Ok(());
        }
        match build() {
            Ok(pool) => {
                *self = ReadOutPool::Own(pool);
                Ok(())
            }
            Err(e) => {
                *self = ReadOutPool::Global;
                Err(format!(
                    "no thread for the read-out ({e}): it shares rayon's global pool with the \
                     frame work for the rest of the stream"
                ))
            }
        }
    }

    fn own(&self) -> Option<&rayon::ThreadPool> {
        match self {
            ReadOutPool::Own(pool) => Some(pool),
            _ => None,
        }
    }
}

/// A registered frame's part of the work still to do (`pipeline=true`).
struct Pending {
    registration: tracker::Registration,
    /// The frame's luma, for the lumen evidence.
    luma: Vec<u8>,
    info: gst_video::VideoInfo,
    format: PixelFormat,
    mode: Mode,
    started: Instant,
}

struct Held {
    buffer: gst::Buffer,
    pending: Pending,
}

/// A frame `transform_ip` maps, before its registration.
struct IncomingFrame {
    info: gst_video::VideoInfo,
    format: PixelFormat,
    started: Instant,
}

/// A held frame read out, ready to be published.
struct ReadOut {
    buffer: gst::Buffer,
    frame: readout::Frame,
    info: gst_video::VideoInfo,
    format: PixelFormat,
    started: Instant,
    /// What the tracker records of the step (its labels and instances).
    recorded: (Option<LabelMap>, Option<(LabelMap, Vec<u8>)>),
}

/// A read-out frame with its overlay and metadata, still to be recorded and timed.
struct Published {
    buffer: gst::Buffer,
    result: FlowResult,
    with_flow: bool,
    started: Instant,
    recorded: (Option<LabelMap>, Option<(LabelMap, Vec<u8>)>),
}

/// Warps a held frame's mask and reads it out: no lock, nothing posted, so that it can run on
/// another thread beside the model.
fn read_out(
    held: Held,
    monitors: &mut readout::Monitors,
    settings: &Settings,
    execution_provider: &str,
) -> ReadOut {
    let Held { buffer, pending } = held;
    let step = pending.registration.propagate();
    let labels = step.labels.clone();
    let context = readout::Context {
        frame_size: (
            pending.info.width() as usize,
            pending.info.height() as usize,
        ),
        mode: pending.mode.into(),
        execution_provider,
        pixel_spacing: settings.pixel_spacing,
        tracking_threshold: settings.tracking_threshold,
        luma: settings.lumen_evidence.then_some(pending.luma.as_slice()),
    };
    let mut frame = readout::frame(step, &context, monitors);
    frame.find_vessels();
    let recorded = (labels, frame.take_instances());
    ReadOut {
        buffer,
        frame,
        info: pending.info,
        format: pending.format,
        started: pending.started,
        recorded,
    }
}

/// `rayon::in_place_scope` on `pool`, or on rayon's global pool without one.
fn in_place_scope_of<'scope, R>(
    pool: Option<&rayon::ThreadPool>,
    op: impl FnOnce(&rayon::Scope<'scope>) -> R,
) -> R {
    match pool {
        Some(pool) => pool.in_place_scope(op),
        None => rayon::in_place_scope(op),
    }
}

/// Late frames skipped in a row at most: when the pipeline stays late for a reason beyond
/// `pddflow` (a source slower than its frame rate), at least every 8th frame still computes
/// flow, so the mask never freezes.
const MAX_CONSECUTIVE_SKIPS: u32 = 7;

/// Timing and lateness in live pipelines.
#[derive(Default)]
struct Live {
    /// Per-frame processing times of the frames with flow: the latency the element reports.
    times: ProcessingTimes,
    report: LatencyReport,
    qos: Qos,
    /// The last computed result (moved here after publishing, not copied), which a skipped
    /// frame carries forward.
    last_result: Option<FlowResult>,
    skipped: u64,
    /// Frames skipped since the last computed one.
    consecutive_skips: u32,
}

#[derive(Default)]
pub struct PddFlow {
    settings: Mutex<Settings>,
    state: Mutex<Option<State>>,
    reanchor: AtomicBool,
    /// Where the overlay goes for the negotiated caps: asked downstream at the first overlay
    /// after each caps change or reconfiguration (`None` until then).
    delivery: Mutex<Option<Delivery>>,
}

#[glib::object_subclass]
impl ObjectSubclass for PddFlow {
    const NAME: &'static str = "GstPddFlow";
    type Type = super::PddFlow;
    type ParentType = gst_base::BaseTransform;
}

impl PddFlow {
    fn request_reanchor(&self) {
        gst::info!(CAT, imp = self, "re-anchoring on the next frame");
        self.reanchor.store(true, Ordering::SeqCst);
    }

    /// The reference mask carried by this buffer, checked against the frame size.
    fn upstream_mask(
        &self,
        buffer: &gst::BufferRef,
        width: usize,
        height: usize,
    ) -> Option<LabelMap> {
        match meta::reference_mask(buffer)? {
            Ok(mask) => match check_size(&mask, width, height) {
                Ok(()) => Some(mask),
                Err(e) => {
                    gst::element_imp_warning!(
                        self,
                        gst::StreamError::Format,
                        ("Ignoring the reference mask attached upstream: {e}"),
                        ["The mask must have the frame's size; keeping the current reference."]
                    );
                    None
                }
            },
            Err(e) => {
                gst::element_imp_warning!(
                    self,
                    gst::StreamError::Format,
                    ("Ignoring a malformed reference mask meta: {e}")
                );
                None
            }
        }
    }

    /// Reads the `reference-mask` file: an error when it cannot be read, decoded, or names no
    /// class of the model; a warning for a binary mask and for ids the model does not name.
    fn load_reference_mask(
        &self,
        path: &str,
        colors: &ColorMap,
        class_names: &[String],
    ) -> Result<LabelMap, gst::ErrorMessage> {
        let bytes = std::fs::read(path).map_err(|e| {
            gst::error_msg!(
                gst::ResourceError::OpenRead,
                ("cannot read reference-mask {path}: {e}")
            )
        })?;
        let mask = mask_file::decode(&bytes, colors).map_err(|e| {
            gst::error_msg!(gst::ResourceError::Read, ("reference-mask {path}: {e}"))
        })?;
        let what = format!("reference-mask {path}: {} mask", mask.encoding);
        let unnamed = mask_file::unnamed_ids(&mask.labels, class_names, &what)
            .map_err(|e| gst::error_msg!(gst::ResourceError::Read, ("{e}")))?;
        if mask.binary {
            gst::element_imp_warning!(
                self,
                gst::ResourceError::Read,
                ("{what} is binary (0 and its maximum): its foreground is read as class 1 (vein)"),
                ["Save the mask with class ids (0 background, 1 vein, 2 artery) for another class."]
            );
        }
        if !unnamed.is_empty() {
            let text = mask_file::unnamed_ids_warning(&what, &unnamed, class_names);
            gst::element_imp_warning!(self, gst::ResourceError::Read, ("{text}"));
        }
        Ok(mask.labels)
    }

    /// Warns about class ids of an upstream mask that the model does not name, once per
    /// distinct warning (a segmenter may attach a mask every few frames).
    fn check_upstream_class_ids(&self, state: &mut State, mask: &LabelMap) {
        let names = &state.readout.class_names[..state.model_class_count];
        let what = "the reference mask attached upstream";
        let warning = match mask_file::unnamed_ids(mask, names, what) {
            Ok(ids) if ids.is_empty() => None,
            Ok(ids) => Some(mask_file::unnamed_ids_warning(what, &ids, names)),
            Err(e) => Some(e),
        };
        if let Some(text) = warning
            .as_ref()
            .filter(|&w| Some(w) != state.last_mask_warning.as_ref())
        {
            gst::element_imp_warning!(self, gst::StreamError::Format, ("{text}"));
        }
        state.last_mask_warning = warning;
    }
}

impl ObjectImpl for PddFlow {
    fn properties() -> &'static [glib::ParamSpec] {
        static PROPERTIES: Lazy<Vec<glib::ParamSpec>> = Lazy::new(|| {
            vec![
                glib::ParamSpecString::builder("model-location")
                    .nick("Model location")
                    .blurb("Directory with features.onnx, flow.onnx and model.json; empty for the built-in model")
                    .mutable_ready()
                    .build(),
                glib::ParamSpecEnum::builder_with_default("mode", DEFAULT_MODE)
                    .nick("Mode")
                    .blurb("keyframe: every frame against the cached reference; chain: frame to frame; \
                            hybrid: chain, re-based on the reference every 8 frames when that matches better")
                    .mutable_playing()
                    .build(),
                glib::ParamSpecEnum::builder_with_default("execution-provider", DEFAULT_PROVIDER)
                    .nick("Execution provider")
                    .blurb("ONNX Runtime execution provider to run the model on")
                    .mutable_ready()
                    .build(),
                glib::ParamSpecBoolean::builder("strict-provider")
                    .nick("Strict provider")
                    .blurb("With execution-provider=cuda: fail to start instead of falling back to CPU \
                            when CUDA cannot be used (no effect with cpu or auto)")
                    .default_value(DEFAULT_STRICT_PROVIDER)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecString::builder("active-provider")
                    .nick("Active provider")
                    .blurb("Execution provider really in use (cpu or cuda; empty before start)")
                    .read_only()
                    .build(),
                glib::ParamSpecInt::builder("device-id")
                    .nick("Device id")
                    .blurb("CUDA device index")
                    .minimum(0)
                    .maximum(64)
                    .default_value(DEFAULT_DEVICE_ID)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("threads")
                    .nick("Threads")
                    .blurb("ONNX Runtime intra-op threads per model (0 = ONNX Runtime's default, all cores). \
                            The default model is small: one thread is fastest on small or busy CPUs")
                    .maximum(256)
                    .default_value(DEFAULT_THREADS)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("working-size")
                    .nick("Working size")
                    .blurb("Resolution the flow is computed at: the longest side in pixels of one of the \
                            model's input sizes (model.json input_sizes; the built-in model: 128, 192, 256, \
                            320, 384); 0 = the model's default for the frame size (built-in model: 256 on frames \
                            of at most 256 px, else 128). A change while playing re-anchors on the \
                            next frame, carrying the propagated mask over. A size the model does not take \
                            is an error that lists those it does")
                    .maximum(65536)
                    .default_value(DEFAULT_WORKING_SIZE)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecString::builder("reference-mask")
                    .nick("Reference mask")
                    .blurb("PNG label map of the first frame, at frame size: grey class ids (0 background, \
                            1 vein, 2 artery; 8 or 16 bits), a palette (index = id), colours (see mask-colors) \
                            or a binary 0/255 mask (255 = vein)")
                    .mutable_ready()
                    .build(),
                glib::ParamSpecString::builder("mask-colors")
                    .nick("Mask colours")
                    .blurb("Colour -> class id for RGB reference masks, added to the defaults (black 0, \
                            blue #0000ff and the overlay's #2878ff 1, red #ff0000 and #ff3232 2), \
                            e.g. \"#00ff00=1,#ffff00=2\"")
                    .mutable_ready()
                    .build(),
                glib::ParamSpecBoolean::builder("overlay")
                    .nick("Overlay")
                    .blurb("Draw the propagated masks into the frame (vein blue, artery red)")
                    .default_value(DEFAULT_OVERLAY)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecFlags::builder::<OverlayStyle>("overlay-style")
                    .nick("Overlay style")
                    .blurb("Layers drawn when overlay is on")
                    .default_value(DEFAULT_OVERLAY_STYLE)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecDouble::builder("pixel-spacing")
                    .nick("Pixel spacing")
                    .blurb("Millimetres per frame pixel (isotropic) for areas in mm^2; 0 = unknown")
                    .minimum(0.0)
                    .maximum(100.0)
                    .default_value(DEFAULT_PIXEL_SPACING)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecUInt::builder("message-interval")
                    .nick("Message interval")
                    .blurb("Post a pddflow-compression element message every N frames (0 = never); a \
                            pddflow-summary message is always posted at EOS")
                    .default_value(DEFAULT_MESSAGE_INTERVAL)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecDouble::builder("closure-threshold")
                    .nick("Closure threshold")
                    .blurb("Vein compression ratio (area / reference area) at or below which the vein counts as closed")
                    .minimum(0.0)
                    .maximum(1.0)
                    .default_value(DEFAULT_CLOSURE_THRESHOLD)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecBoolean::builder("lumen-evidence")
                    .nick("Lumen evidence")
                    .blurb("Also count the vein as closed when its mask covers tissue instead of dark lumen \
                            while the artery's still covers lumen (false: the area ratio alone)")
                    .default_value(DEFAULT_LUMEN_EVIDENCE)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecDouble::builder("tracking-threshold")
                    .nick("Tracking threshold")
                    .blurb("Post a pddflow-tracking-lost element message when a vessel's tracking confidence \
                            falls below this (0 = never); re-anchor (the reanchor signal, a new reference mask) \
                            when it comes")
                    .minimum(0.0)
                    .maximum(1.0)
                    .default_value(DEFAULT_TRACKING_THRESHOLD)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecDouble::builder("overlay-alpha")
                    .nick("Overlay alpha")
                    .blurb("Opacity of the mask fill (outlines are opaque)")
                    .minimum(0.0)
                    .maximum(1.0)
                    .default_value(DEFAULT_OVERLAY_ALPHA)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecBoolean::builder("skip-late")
                    .nick("Skip late frames")
                    .blurb("When downstream's QoS events say a frame is already late (a live source \
                            outpacing the model), skip its flow and carry the last mask forward, \
                            flagged skipped in the metadata; reference frames are never skipped")
                    .default_value(DEFAULT_SKIP_LATE)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecBoolean::builder("pipeline")
                    .nick("Pipeline")
                    .blurb("Run each frame's model while the previous frame's mask is warped and read out \
                            on another core: on two or more cores, frames/s near the model's alone, at one \
                            frame more latency (a frame leaves when the next one has been registered; at EOS, \
                            caps and other serialized events the held frame leaves first)")
                    .default_value(DEFAULT_PIPELINE)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecBoxed::builder::<gst::Structure>("stats")
                    .nick("Statistics")
                    .blurb(
                        "frames, feature-runs, flow-runs, skipped, latency (ns), model-time (ns \
                         in the two ONNX graphs, summed) (read-only)",
                    )
                    .read_only()
                    .build(),
            ]
        });
        PROPERTIES.as_ref()
    }

    fn signals() -> &'static [glib::subclass::Signal] {
        static SIGNALS: Lazy<Vec<glib::subclass::Signal>> = Lazy::new(|| {
            vec![glib::subclass::Signal::builder("reanchor")
                .action()
                .class_handler(|args| {
                    if let Some(element) = args.first().and_then(|v| v.get::<super::PddFlow>().ok())
                    {
                        element.imp().request_reanchor();
                    }
                    None
                })
                .build()]
        });
        SIGNALS.as_ref()
    }

    fn set_property(&self, _id: usize, value: &glib::Value, pspec: &glib::ParamSpec) {
        let mut settings = lock(&self.settings);
        match pspec.name() {
            "model-location" => {
                settings.model_location = value
                    .get::<Option<String>>()
                    .expect("type checked")
                    .unwrap_or_default()
            }
            // Applied to the tracker by the next frame.
            "mode" => settings.mode = value.get().expect("type checked"),
            "execution-provider" => settings.provider = value.get().expect("type checked"),
            "strict-provider" => settings.strict_provider = value.get().expect("type checked"),
            "device-id" => settings.device_id = value.get().expect("type checked"),
            "threads" => settings.threads = value.get().expect("type checked"),
            "working-size" => settings.working_size = value.get().expect("type checked"),
            "reference-mask" => {
                settings.reference_mask = value
                    .get::<Option<String>>()
                    .expect("type checked")
                    .unwrap_or_default()
            }
            "mask-colors" => {
                settings.mask_colors = value
                    .get::<Option<String>>()
                    .expect("type checked")
                    .unwrap_or_default()
            }
            "overlay" => settings.overlay = value.get().expect("type checked"),
            "overlay-alpha" => settings.overlay_alpha = value.get().expect("type checked"),
            "overlay-style" => settings.overlay_style = value.get().expect("type checked"),
            "pixel-spacing" => settings.pixel_spacing = value.get().expect("type checked"),
            "message-interval" => settings.message_interval = value.get().expect("type checked"),
            "closure-threshold" => settings.closure_threshold = value.get().expect("type checked"),
            "lumen-evidence" => settings.lumen_evidence = value.get().expect("type checked"),
            "tracking-threshold" => {
                settings.tracking_threshold = value.get().expect("type checked")
            }
            "skip-late" => settings.skip_late = value.get().expect("type checked"),
            "pipeline" => settings.pipeline = value.get().expect("type checked"),
            other => unimplemented!("property {other}"),
        }
    }

    fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
        let settings = lock(&self.settings);
        match pspec.name() {
            "model-location" => settings.model_location.to_value(),
            "mode" => settings.mode.to_value(),
            "execution-provider" => settings.provider.to_value(),
            "strict-provider" => settings.strict_provider.to_value(),
            "device-id" => settings.device_id.to_value(),
            "threads" => settings.threads.to_value(),
            "working-size" => settings.working_size.to_value(),
            "reference-mask" => settings.reference_mask.to_value(),
            "mask-colors" => settings.mask_colors.to_value(),
            "overlay" => settings.overlay.to_value(),
            "overlay-alpha" => settings.overlay_alpha.to_value(),
            "overlay-style" => settings.overlay_style.to_value(),
            "pixel-spacing" => settings.pixel_spacing.to_value(),
            "message-interval" => settings.message_interval.to_value(),
            "closure-threshold" => settings.closure_threshold.to_value(),
            "lumen-evidence" => settings.lumen_evidence.to_value(),
            "tracking-threshold" => settings.tracking_threshold.to_value(),
            "skip-late" => settings.skip_late.to_value(),
            "pipeline" => settings.pipeline.to_value(),
            "active-provider" => {
                let state = lock(&self.state);
                state
                    .as_ref()
                    .map(|s| s.engine.provider().name())
                    .unwrap_or("")
                    .to_value()
            }
            "stats" => {
                let state = lock(&self.state);
                let (frames, features, flows, skipped, latency, model_time) = state
                    .as_ref()
                    .map(|s| {
                        (
                            s.frames,
                            s.engine.feature_runs,
                            s.engine.flow_runs,
                            s.live.skipped,
                            s.live.times.latency().unwrap_or(0),
                            s.engine.model_time.as_nanos().min(u64::MAX as u128) as u64,
                        )
                    })
                    .unwrap_or_default();
                gst::Structure::builder("pddflow-stats")
                    .field("frames", frames)
                    .field("feature-runs", features)
                    .field("flow-runs", flows)
                    .field("skipped", skipped)
                    .field("latency", latency)
                    .field("model-time", model_time)
                    .build()
                    .to_value()
            }
            other => unimplemented!("property {other}"),
        }
    }
}

impl GstObjectImpl for PddFlow {}

impl ElementImpl for PddFlow {
    fn metadata() -> Option<&'static gst::subclass::ElementMetadata> {
        static METADATA: Lazy<gst::subclass::ElementMetadata> = Lazy::new(|| {
            gst::subclass::ElementMetadata::new(
                "PDD-Net optical flow and vessel mask propagation",
                "Filter/Analyzer/Video",
                "Estimates optical flow on ultrasound video with a PDD-Net student (ONNX Runtime), propagates \
                 a reference vessel mask (vein, artery) onto every frame and attaches both as metadata",
                "pddflow developers",
            )
        });
        Some(&*METADATA)
    }

    fn pad_templates() -> &'static [gst::PadTemplate] {
        static TEMPLATES: Lazy<Vec<gst::PadTemplate>> = Lazy::new(|| {
            // With and without meta:GstVideoOverlayComposition: see `composition`.
            let caps = composition::template_caps(&FORMATS);
            vec![
                gst::PadTemplate::new(
                    "src",
                    gst::PadDirection::Src,
                    gst::PadPresence::Always,
                    &caps,
                )
                .expect("valid template"),
                gst::PadTemplate::new(
                    "sink",
                    gst::PadDirection::Sink,
                    gst::PadPresence::Always,
                    &caps,
                )
                .expect("valid template"),
            ]
        });
        TEMPLATES.as_ref()
    }
}

impl BaseTransformImpl for PddFlow {
    const MODE: gst_base::subclass::BaseTransformMode =
        gst_base::subclass::BaseTransformMode::AlwaysInPlace;
    const PASSTHROUGH_ON_SAME_CAPS: bool = false;
    const TRANSFORM_IP_ON_PASSTHROUGH: bool = false;

    fn start(&self) -> Result<(), gst::ErrorMessage> {
        let settings = lock(&self.settings).clone();
        let model = load_model(&settings.model_location)?;
        let colors = ColorMap::with_entries(&settings.mask_colors)
            .map_err(|e| gst::error_msg!(gst::LibraryError::Settings, ("{e}")))?;
        let engine = self.start_engine(&model, &settings)?;
        let spec = engine.spec().clone();
        let class_names = spec.class_names();
        let pending_mask = if settings.reference_mask.is_empty() {
            None
        } else {
            Some(self.load_reference_mask(&settings.reference_mask, &colors, &class_names)?)
        };
        let (width, height) = engine.size();
        gst::info!(
            CAT,
            imp = self,
            "model {} {} at {}x{} (sizes {}) from {} on {}",
            spec.name,
            spec.version,
            width,
            height,
            spec.sizes_text(),
            model.origin,
            engine.provider().name()
        );
        *lock(&self.state) = Some(State {
            tracker: Tracker::new(settings.mode.into()),
            input: ModelInput::new(width, height),
            working_size: settings.working_size,
            model_class_count: class_names.len(),
            readout: readout::Monitors {
                class_names,
                ..Default::default()
            },
            last_mask_warning: None,
            engine,
            video: None,
            pending_mask,
            frames: 0,
            live: Live::default(),
            held: None,
            read_out_pool: ReadOutPool::Unmade,
            incoming: None,
            ready: VecDeque::new(),
        });
        self.reanchor.store(false, Ordering::SeqCst);
        self.obj().notify("active-provider");
        Ok(())
    }

    fn stop(&self) -> Result<(), gst::ErrorMessage> {
        *lock(&self.state) = None;
        *lock(&self.delivery) = None;
        Ok(())
    }

    fn set_caps(&self, incaps: &gst::Caps, _outcaps: &gst::Caps) -> Result<(), gst::LoggableError> {
        let info = gst_video::VideoInfo::from_caps(incaps)
            .map_err(|_| gst::loggable_error!(CAT, "cannot parse caps {incaps}"))?;
        let format = pixel_format(info.format())
            .ok_or_else(|| gst::loggable_error!(CAT, "unsupported format {:?}", info.format()))?;
        let mut guard = lock(&self.state);
        let Some(state) = guard.as_mut() else {
            return Err(gst::loggable_error!(CAT, "caps set before start"));
        };
        if let Some((old, _)) = &state.video {
            if (old.width(), old.height()) != (info.width(), info.height()) {
                // The reference no longer matches the frames: start over, keeping the mask.
                let carried = state
                    .tracker
                    .last_labels()
                    .map(|m| m.resize_nearest(info.width() as usize, info.height() as usize));
                gst::element_imp_warning!(
                    self,
                    gst::StreamError::Format,
                    (
                        "Frame size changed mid-stream from {}x{} to {}x{}: re-anchoring on the next frame{}",
                        old.width(),
                        old.height(),
                        info.width(),
                        info.height(),
                        if carried.is_some() { " with the propagated mask rescaled" } else { "" }
                    )
                );
                state.tracker.reset();
                state.live.last_result = None;
                if carried.is_some() {
                    state.pending_mask = carried;
                }
            }
        }
        gst::debug!(CAT, imp = self, "configured for {incaps} -> {_outcaps}");
        // With working-size 0 the model may run frames of this size at another input size.
        let before = state.engine.size();
        let frame_side = info.width().max(info.height()) as usize;
        let resized = state.engine.set_frame_side(frame_side).map_err(|e| {
            gst::element_imp_error!(
                self,
                gst::LibraryError::Settings,
                ("Cannot run the model on {frame_side} px frames: {e}"),
                ["Set working-size to one of the model's sizes."]
            );
            gst::loggable_error!(CAT, "no input size for {frame_side} px frames: {e}")
        })?;
        if resized {
            let (w, h) = state.engine.size();
            gst::info!(
                CAT,
                imp = self,
                "{}x{} frames: model input {}x{} -> {w}x{h} (working-size 0 follows the model's \
                 working_size_by_frame)",
                info.width(),
                info.height(),
                before.0,
                before.1
            );
            state.input = ModelInput::new(w, h);
            // Features cached at the old size cannot be compared with new ones.
            if let Some(carried) = state.tracker.last_labels().cloned() {
                state.pending_mask.get_or_insert(carried);
            }
            state.tracker.reset();
        }
        state.video = Some((info, format));
        // Downstream is asked again where the overlay goes.
        *lock(&self.delivery) = None;
        Ok(())
    }

    fn transform_caps(
        &self,
        direction: gst::PadDirection,
        caps: &gst::Caps,
        filter: Option<&gst::Caps>,
    ) -> Option<gst::Caps> {
        // The pixels are the same on both pads; only the overlay composition feature may be
        // added or dropped. Downstream (from the sink pad's caps) the feature comes first, so
        // that a sink which blends overlay rectangles itself is offered it.
        let other =
            composition::with_and_without_feature(caps, direction == gst::PadDirection::Sink);
        Some(match filter {
            Some(filter) => filter.intersect_with_mode(&other, gst::CapsIntersectMode::First),
            None => other,
        })
    }

    fn sink_event(&self, event: gst::Event) -> bool {
        match event.view() {
            gst::EventView::FlushStop(_) => {
                if let Some(state) = lock(&self.state).as_mut() {
                    state.tracker.discontinuity();
                    state.live.qos.reset();
                    // A flush drops what is in flight, the held frame included.
                    state.held = None;
                    state.incoming = None;
                    state.ready.clear();
                }
            }
            gst::EventView::Segment(_) => {
                if let Some(state) = lock(&self.state).as_mut() {
                    state.live.qos.reset();
                }
            }
            gst::EventView::CustomDownstream(_) | gst::EventView::CustomDownstreamOob(_)
                if event
                    .structure()
                    .is_some_and(|s| s.name() == REANCHOR_EVENT) =>
            {
                self.request_reanchor();
            }
            _ => {}
        }
        // The held frame (pipeline=true) leaves before any serialized event that follows it:
        // EOS, caps, segment, gap, tags, custom events.
        if event.is_serialized() && event.type_() != gst::EventType::FlushStop {
            self.drain();
        }
        if let gst::EventView::Eos(_) = event.view() {
            self.post_summary();
        }
        self.parent_sink_event(event)
    }

    fn src_event(&self, event: gst::Event) -> bool {
        match event.view() {
            gst::EventView::Qos(qos) => {
                let (_, _, jitter, timestamp) = qos.get();
                if let (Some(timestamp), Some(state)) = (timestamp, lock(&self.state).as_mut()) {
                    state.live.qos.observe(timestamp.nseconds(), jitter);
                }
            }
            // Downstream changed (a new sink, new allocation): ask it again.
            gst::EventView::Reconfigure(_) => *lock(&self.delivery) = None,
            _ => {}
        }
        self.parent_src_event(event)
    }

    fn query(&self, direction: gst::PadDirection, query: &mut gst::QueryRef) -> bool {
        // A drain asks for every buffer in flight, the held one (pipeline=true) included.
        if direction == gst::PadDirection::Sink && matches!(query.view(), gst::QueryView::Drain(_))
        {
            self.drain();
        }
        let is_latency = matches!(query.view(), gst::QueryView::Latency(_));
        if direction != gst::PadDirection::Src || !is_latency {
            return BaseTransformImplExt::parent_query(self, direction, query);
        }
        if !BaseTransformImplExt::parent_query(self, direction, query) {
            return false;
        }
        // Buffers leave this element one processing time after they came in.
        let ours = lock(&self.state)
            .as_mut()
            .map(|state| {
                let latency = state.live.times.latency();
                state.live.report.answered(latency);
                latency.unwrap_or(0)
            })
            .unwrap_or(0);
        if let gst::QueryViewMut::Latency(q) = query.view_mut() {
            let (live, min, max) = q.result();
            let ours = gst::ClockTime::from_nseconds(ours);
            q.set(live, min + ours, max.map(|max| max + ours));
            gst::debug!(CAT, imp = self, "latency query: ours {ours}, live {live}");
        }
        true
    }

    /// With `pipeline=true` the buffer `transform_ip` registered is held and the one before it,
    /// finished meanwhile, leaves instead; finished buffers leave in stream order.
    fn generate_output(&self) -> Result<GenerateOutputSuccess, gst::FlowError> {
        if let Some(buffer) = lock(&self.state)
            .as_mut()
            .and_then(|state| state.ready.pop_front())
        {
            return Ok(GenerateOutputSuccess::Buffer(buffer));
        }
        let buffer = match self.parent_generate_output() {
            Ok(GenerateOutputSuccess::Buffer(buffer)) => buffer,
            Ok(other) => return Ok(other),
            Err(e) => {
                if let Some(state) = lock(&self.state).as_mut() {
                    state.incoming = None;
                }
                return Err(e);
            }
        };
        let mut guard = lock(&self.state);
        let Some(state) = guard.as_mut() else {
            return Ok(GenerateOutputSuccess::Buffer(buffer));
        };
        match state.incoming.take() {
            Some(pending) => state.held = Some(Held { buffer, pending }),
            None => state.ready.push_back(buffer),
        }
        Ok(state.ready.pop_front().map_or(
            GenerateOutputSuccess::NoOutput,
            GenerateOutputSuccess::Buffer,
        ))
    }

    fn transform_ip(
        &self,
        buffer: &mut gst::BufferRef,
    ) -> Result<gst::FlowSuccess, gst::FlowError> {
        let started = Instant::now();
        let settings = lock(&self.settings).clone();
        if !settings.pipeline {
            // Switched off mid-stream: the held frame leaves first.
            self.finish_held_into_ready()?;
        }
        let mut guard = lock(&self.state);
        let Some(state) = guard.as_mut() else {
            gst::element_imp_error!(self, gst::CoreError::Negotiation, ("Buffer before start"));
            return Err(gst::FlowError::Error);
        };
        let Some((info, format)) = state.video.clone() else {
            gst::element_imp_error!(self, gst::CoreError::Negotiation, ("Buffer before caps"));
            return Err(gst::FlowError::NotNegotiated);
        };
        let (width, height) = (info.width() as usize, info.height() as usize);
        self.check_video_meta(buffer, format, width, height)?;
        let anchor = self.anchor(state, buffer, width, height);
        // What this frame does may depend on the held frame's result: a carried mask, a
        // working-size change (which carries it too) and a late frame (which repeats it). The
        // held frame is finished first then, without overlap.
        let needs_held_result = matches!(anchor, Anchor::Carry)
            || settings.working_size != state.working_size
            || (settings.skip_late && self.qos_late(state, buffer));
        if state.held.is_some() && needs_held_result {
            drop(guard);
            self.finish_held_into_ready()?;
            guard = lock(&self.state);
        }
        let Some(state) = guard.as_mut() else {
            return Err(gst::FlowError::Flushing);
        };

        if let Some(result) = self.skip_late_frame(state, &settings, &anchor, buffer) {
            drop(guard);
            self.publish(buffer, &info, format, &settings, &result, &[], false)?;
            return Ok(gst::FlowSuccess::Ok);
        }

        if settings.pipeline {
            let frame = IncomingFrame {
                info,
                format,
                started,
            };
            return self.register_beside_held(guard, &settings, buffer, frame, anchor);
        }
        let luma = self.read_luma(buffer, &info, format, true)?;
        let step = self
            .register(state, &settings, &luma, (width, height), anchor)?
            .propagate();
        let labels = step.labels.clone();
        let context = readout::Context {
            frame_size: (width, height),
            mode: settings.mode.into(),
            execution_provider: state.engine.provider().name(),
            pixel_spacing: settings.pixel_spacing,
            tracking_threshold: settings.tracking_threshold,
            luma: settings.lumen_evidence.then_some(luma.as_slice()),
        };
        let mut frame = readout::frame(step, &context, &mut state.readout);
        // Regions are found outside the lock: a property read need not wait for them.
        drop(guard);
        frame.find_vessels();
        // Recorded before the next frame registers: this thread registers them all.
        if let Some(state) = lock(&self.state).as_mut() {
            state.tracker.record(labels, frame.take_instances());
        }
        self.publish(
            buffer,
            &info,
            format,
            &settings,
            &frame.result,
            &frame.confidence,
            frame.tracking_lost,
        )?;
        let with_flow = frame.with_flow();
        self.finish_frame(frame.result, with_flow, &settings, started);
        Ok(gst::FlowSuccess::Ok)
    }
}

impl PddFlow {
    /// The engine for `model` as the settings ask: a settings error for a working size the
    /// model does not take, an init error without ONNX Runtime, a warning when CUDA was asked
    /// for and the engine fell back to the CPU.
    fn start_engine(
        &self,
        model: &ModelFiles,
        settings: &Settings,
    ) -> Result<Engine, gst::ErrorMessage> {
        let config = EngineConfig {
            provider: settings.provider.into(),
            strict_provider: settings.strict_provider,
            device_id: settings.device_id,
            threads: settings.threads as usize,
            working_size: settings.working_size as usize,
        };
        // A working size the model does not take: a settings error naming those it does.
        model
            .spec
            .size_for(settings.working_size as usize)
            .map_err(|e| {
                gst::error_msg!(
                    gst::LibraryError::Settings,
                    ("{e}"),
                    ["Set working-size to one of the listed sizes, or 0 for the model's default."]
                )
            })?;
        if let Err(e) = runtime::runtime() {
            return Err(gst::error_msg!(gst::LibraryError::Init, ["{e}"]));
        }
        let engine = Engine::new(model, &config)
            .map_err(|e| gst::error_msg!(gst::LibraryError::Settings, ["{e}"]))?;
        if let Some(reason) = &engine.fallback_reason {
            if settings.provider == ExecutionProvider::Cuda {
                gst::element_imp_warning!(
                    self,
                    gst::LibraryError::Settings,
                    ("CUDA requested but running on CPU: {reason}"),
                    ["Set strict-provider=true to fail instead of falling back."]
                );
            } else {
                gst::info!(CAT, imp = self, "{reason}");
            }
        }
        Ok(engine)
    }

    /// Mapping trusts a video meta's offsets and strides: checks they stay inside the buffer.
    fn check_video_meta(
        &self,
        buffer: &gst::BufferRef,
        format: PixelFormat,
        width: usize,
        height: usize,
    ) -> Result<(), gst::FlowError> {
        let Some(meta) = buffer.meta::<gst_video::VideoMeta>() else {
            return Ok(());
        };
        let layout: Vec<(usize, isize)> = (0..meta.n_planes() as usize)
            .map(|p| {
                let available = buffer.size().saturating_sub(meta.offset()[p]);
                (available, meta.stride()[p] as isize)
            })
            .collect();
        self.check_layout(format, width, height, &layout)
    }

    /// The frame's 8-bit luma, `width * height` contiguous.
    fn read_luma(
        &self,
        buffer: &gst::BufferRef,
        info: &gst_video::VideoInfo,
        format: PixelFormat,
        across_threads: bool,
    ) -> Result<Vec<u8>, gst::FlowError> {
        let (width, height) = (info.width() as usize, info.height() as usize);
        let frame =
            gst_video::VideoFrameRef::from_buffer_ref_readable(buffer, info).map_err(|_| {
                gst::element_imp_error!(
                    self,
                    gst::StreamError::Format,
                    (
                        "Buffer of {} bytes is too small for {}x{} {:?}",
                        buffer.size(),
                        width,
                        height,
                        info.format()
                    )
                );
                gst::FlowError::Error
            })?;
        // Strides and plane starts of this buffer (its GstVideoMeta when it has one).
        let planes: Vec<(&[u8], isize)> = (0..frame.n_planes())
            .map(|p| {
                (
                    frame.plane_data(p).unwrap_or(&[]),
                    frame.plane_stride()[p as usize] as isize,
                )
            })
            .collect();
        let planes = self.checked_planes(format, width, height, planes)?;
        Ok(pixels::extract_luma(
            format,
            width,
            height,
            &planes,
            across_threads,
        ))
    }

    /// Registers this frame with the tracker at the current `working-size` and `mode`.
    fn register(
        &self,
        state: &mut State,
        settings: &Settings,
        luma: &[u8],
        (width, height): (usize, usize),
        anchor: Anchor,
    ) -> Result<tracker::Registration, gst::FlowError> {
        // A new working size: the cached features are of the old size, so this frame becomes
        // the reference, carrying the propagated mask over.
        let resized = settings.working_size != state.working_size
            && self.change_working_size(state, settings.working_size)?;
        let image = state.input.prepare(luma, width, height);
        // Never keep a reference whose features are of another size.
        let anchor = match anchor {
            Anchor::Keep if resized => Anchor::Carry,
            anchor => anchor,
        };
        let mode = settings.mode.into();
        if state.tracker.mode() != mode {
            state.tracker.set_mode(mode);
        }
        let registration = state
            .tracker
            .register(&mut state.engine, &image, anchor)
            .map_err(|e| {
                gst::element_imp_error!(self, gst::StreamError::Failed, ("Inference failed: {e}"));
                gst::FlowError::Error
            })?;
        state.frames += 1;
        Ok(registration)
    }

    /// `pipeline=true`: reads this frame's luma and registers it (the model) on this thread
    /// while the held frame's mask is warped and read out on another; the held frame is then
    /// published and queued to leave, and this one is held in its place.
    fn register_beside_held(
        &self,
        mut guard: std::sync::MutexGuard<'_, Option<State>>,
        settings: &Settings,
        buffer: &gst::BufferRef,
        frame: IncomingFrame,
        anchor: Anchor,
    ) -> Result<gst::FlowSuccess, gst::FlowError> {
        let Some(state) = guard.as_mut() else {
            return Err(gst::FlowError::Flushing);
        };
        let (width, height) = (frame.info.width() as usize, frame.info.height() as usize);
        let provider = state.engine.provider().name();
        let held = state.held.take();
        // The read-out's monitors go to the other thread and come back; the state stays
        // locked meanwhile, so nothing sees them missing.
        let mut monitors = std::mem::take(&mut state.readout);
        // A thread of its own, kept for the stream, rather than one per frame; a panic in the
        // read-out becomes an element error, not a panic of the streaming thread.
        let mut previous = None;
        if let Err(why) = state.read_out_pool.ensure(|| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(1)
                .thread_name(|_| "pddflow-readout".into())
                .build()
        }) {
            gst::warning!(CAT, imp = self, "{why}");
        }
        let pool = std::mem::take(&mut state.read_out_pool);
        let registration = in_place_scope_of(pool.own(), |scope| {
            if let Some(held) = held {
                let (monitors, previous) = (&mut monitors, &mut previous);
                scope.spawn(move |_| {
                    *previous = Some(std::panic::catch_unwind(std::panic::AssertUnwindSafe(
                        || {
                            let read = read_out(held, monitors, settings, provider);
                            self.publish_read_out(read, settings)
                        },
                    )));
                });
            }
            // This frame's luma is read while the held frame's read-out runs: on this thread
            // alone, as a split across rayon's pool would put half of it behind the read-out.
            let luma = self.read_luma(buffer, &frame.info, frame.format, false)?;
            let registration = self.register(state, settings, &luma, (width, height), anchor)?;
            Ok((registration, luma))
        });
        state.read_out_pool = pool;
        state.readout = monitors;
        let previous = match previous {
            Some(Ok(published)) => Some(published?),
            Some(Err(_)) => {
                gst::element_imp_error!(
                    self,
                    gst::CoreError::Failed,
                    ("Internal error: reading out the previous frame failed")
                );
                return Err(gst::FlowError::Error);
            }
            None => None,
        };
        let (registration, luma) = registration?;
        state.incoming = Some(Pending {
            registration,
            luma,
            info: frame.info,
            format: frame.format,
            mode: settings.mode,
            started: frame.started,
        });
        drop(guard);
        if let Some(published) = previous {
            self.queue_published(published, settings);
        }
        Ok(gst::FlowSuccess::Ok)
    }

    /// Publishes a read-out frame: overlay, metadata, messages. Takes no lock on the state, so
    /// that it can run beside the next frame's model.
    fn publish_read_out(
        &self,
        read: ReadOut,
        settings: &Settings,
    ) -> Result<Published, gst::FlowError> {
        let ReadOut {
            mut buffer,
            frame,
            info,
            format,
            started,
            recorded,
        } = read;
        self.publish(
            buffer.make_mut(),
            &info,
            format,
            settings,
            &frame.result,
            &frame.confidence,
            frame.tracking_lost,
        )?;
        let with_flow = frame.with_flow();
        Ok(Published {
            buffer,
            result: frame.result,
            with_flow,
            started,
            recorded,
        })
    }

    /// Finishes the held frame, if any, without overlap and queues it to leave.
    fn finish_held_into_ready(&self) -> Result<(), gst::FlowError> {
        let settings = lock(&self.settings).clone();
        let read = {
            let mut guard = lock(&self.state);
            let Some(state) = guard.as_mut() else {
                return Ok(());
            };
            let Some(held) = state.held.take() else {
                return Ok(());
            };
            let provider = state.engine.provider().name();
            read_out(held, &mut state.readout, &settings, provider)
        };
        let published = self.publish_read_out(read, &settings)?;
        self.queue_published(published, &settings);
        Ok(())
    }

    /// Records a published frame's step with the tracker and its timing, and queues it to
    /// leave.
    fn queue_published(&self, published: Published, settings: &Settings) {
        let Published {
            buffer,
            result,
            with_flow,
            started,
            recorded: (labels, instances),
        } = published;
        if let Some(state) = lock(&self.state).as_mut() {
            state.tracker.record(labels, instances);
            state.ready.push_back(buffer);
        }
        self.finish_frame(result, with_flow, settings, started);
    }

    /// Finishes the held frame and pushes every finished buffer downstream, in stream order:
    /// before a serialized event, nothing may stay behind it.
    fn drain(&self) {
        if self.finish_held_into_ready().is_err() {
            gst::warning!(CAT, imp = self, "the held frame could not be finished");
        }
        let buffers: Vec<gst::Buffer> = lock(&self.state)
            .as_mut()
            .map(|state| state.ready.drain(..).collect())
            .unwrap_or_default();
        for buffer in buffers {
            if let Err(e) = self.obj().src_pad().push(buffer) {
                gst::debug!(CAT, imp = self, "held frame not taken downstream: {e:?}");
                break;
            }
        }
    }

    /// Why this frame would anchor, from its upstream mask meta, a pending `reference-mask` or a
    /// re-anchor request.
    fn anchor(
        &self,
        state: &mut State,
        buffer: &gst::BufferRef,
        width: usize,
        height: usize,
    ) -> Anchor {
        if let Some(mask) = self.upstream_mask(buffer, width, height) {
            self.check_upstream_class_ids(state, &mask);
            Anchor::Mask(mask)
        } else if let Some(mask) = state.pending_mask.take() {
            match check_size(&mask, width, height) {
                Ok(()) => Anchor::Mask(mask),
                Err(e) => {
                    gst::element_imp_warning!(
                        self,
                        gst::StreamError::Format,
                        ("reference-mask ignored: {e}"),
                        ["Give a label map with the frame's size; flow is still computed and attached."]
                    );
                    // Without a reference yet, Keep anchors this frame without labels.
                    Anchor::Keep
                }
            }
        } else if self.reanchor.swap(false, Ordering::SeqCst) {
            Anchor::Carry
        } else {
            Anchor::Keep
        }
    }

    /// The last result, carried forward, when this frame is late by downstream's QoS reports
    /// and may be skipped: never an anchoring frame, never before a first result. Counts the
    /// skip.
    fn skip_late_frame(
        &self,
        state: &mut State,
        settings: &Settings,
        anchor: &Anchor,
        buffer: &gst::BufferRef,
    ) -> Option<FlowResult> {
        if !settings.skip_late
            || !matches!(anchor, Anchor::Keep)
            || state.live.consecutive_skips >= MAX_CONSECUTIVE_SKIPS
        {
            return None;
        }
        let last = state.live.last_result.as_ref()?;
        if !self.qos_late(state, buffer) {
            return None;
        }
        let mut result = last.clone();
        result.frame = state.tracker.skip();
        result.skipped = true;
        state.frames += 1;
        state.live.skipped += 1;
        state.live.consecutive_skips += 1;
        gst::debug!(CAT, imp = self, "frame {} late: flow skipped", result.frame);
        Some(result)
    }

    /// Whether downstream's QoS reports say this buffer is already late.
    fn qos_late(&self, state: &State, buffer: &gst::BufferRef) -> bool {
        let segment = self.obj().segment();
        let running_time = buffer.pts().and_then(|pts| {
            segment
                .downcast_ref::<gst::ClockTime>()?
                .to_running_time(pts)
        });
        running_time.is_some_and(|t| state.live.qos.is_late(t.nseconds()))
    }

    /// Keeps what a later late frame carries forward, records the processing time of a frame
    /// with flow, and asks the pipeline to query the latency again when it moved.
    fn finish_frame(
        &self,
        result: FlowResult,
        with_flow: bool,
        settings: &Settings,
        started: Instant,
    ) {
        let latency_moved = {
            let mut guard = lock(&self.state);
            let Some(state) = guard.as_mut() else {
                return;
            };
            state.live.consecutive_skips = 0;
            if settings.skip_late {
                state.live.last_result = Some(result);
            }
            // The reference frame computes no flow (and carries the runtime's warm-up).
            if !with_flow {
                return;
            }
            let live = &mut state.live;
            live.times
                .record(started.elapsed().as_nanos().min(u64::MAX as u128) as u64);
            let estimate = live.times.latency();
            let moved = live.report.needs_update(estimate);
            if moved {
                // Until the pipeline queries again, this is what it will be told.
                live.report.answered(estimate);
            }
            moved
        };
        if latency_moved {
            gst::debug!(
                CAT,
                imp = self,
                "processing latency changed: posting a latency message"
            );
            let _ = self
                .obj()
                .post_message(gst::message::Latency::builder().src(&*self.obj()).build());
        }
    }

    /// Draws the overlay when asked and attaches the result, its ROI metas and messages.
    #[allow(clippy::too_many_arguments)]
    fn publish(
        &self,
        buffer: &mut gst::BufferRef,
        info: &gst_video::VideoInfo,
        format: PixelFormat,
        settings: &Settings,
        result: &FlowResult,
        confidence: &[f32],
        tracking_lost: bool,
    ) -> Result<(), gst::FlowError> {
        if settings.overlay {
            match self.overlay_delivery() {
                Delivery::Blend => self.draw(buffer, info, format, settings, result)?,
                Delivery::Attach => self.attach_overlay(buffer, info, format, settings, result)?,
            }
        }
        result.attach(buffer).map_err(|e| {
            gst::element_imp_error!(
                self,
                gst::CoreError::Failed,
                ("Cannot attach metadata: {e}")
            );
            gst::FlowError::Error
        })?;
        for roi in readout::rois(result) {
            let mut meta = gst_video::VideoRegionOfInterestMeta::add(buffer, &roi.name, roi.bbox);
            meta.add_param(roi.param);
        }
        if readout::posts_compression(result, settings.message_interval) {
            self.post(readout::compression_message(result, buffer.pts()));
        }
        if tracking_lost {
            let message = readout::tracking_lost_message(
                result,
                confidence,
                settings.tracking_threshold,
                buffer.pts(),
            );
            gst::info!(CAT, imp = self, "tracking lost: {message}");
            self.post(message);
        }
        Ok(())
    }

    /// Posts an element message from this element.
    fn post(&self, structure: gst::Structure) {
        let _ = self.obj().post_message(
            gst::message::Element::builder(structure)
                .src(&*self.obj())
                .build(),
        );
    }

    /// Switches the engine to another `working-size`: an element error (naming the sizes the
    /// model takes) when it cannot, else the frames are resized to the new input size. Returns
    /// whether the input size changed (`working-size` 0 and the default's side are one size).
    fn change_working_size(
        &self,
        state: &mut State,
        working_size: u32,
    ) -> Result<bool, gst::FlowError> {
        let before = state.engine.size();
        state
            .engine
            .set_working_size(working_size as usize)
            .map_err(|e| {
                gst::element_imp_error!(
                    self,
                    gst::LibraryError::Settings,
                    ("{e}"),
                    ["Set working-size to one of the listed sizes, or 0 for the model's default."]
                );
                gst::FlowError::Error
            })?;
        state.working_size = working_size;
        let (w, h) = state.engine.size();
        if (w, h) != before {
            gst::info!(
                CAT,
                imp = self,
                "working size {}x{} -> {w}x{h}: re-anchoring on this frame",
                before.0,
                before.1
            );
            state.input = ModelInput::new(w, h);
        }
        Ok((w, h) != before)
    }

    /// Where the overlay goes with the negotiated caps: asked downstream once per negotiation
    /// (never under the state lock: downstream answers in its own time).
    fn overlay_delivery(&self) -> Delivery {
        if let Some(delivery) = *lock(&self.delivery) {
            return delivery;
        }
        let src = self.obj().src_pad().clone();
        let delivery = match src.current_caps() {
            Some(caps) if composition::has_feature(&caps) => {
                let mut query = gst::query::Allocation::new(Some(&caps), false);
                let allocation_meta = src.peer_query(&mut query)
                    && query
                        .find_allocation_meta::<gst_video::VideoOverlayCompositionMeta>()
                        .is_some();
                let plain = composition::without_feature_caps(&caps);
                let takes_plain_caps = !src.peer_query_caps(Some(&plain)).is_empty();
                let downstream = composition::Downstream {
                    caps_feature: true,
                    allocation_meta,
                    takes_plain_caps,
                };
                let delivery = composition::delivery(downstream);
                gst::info!(
                    CAT,
                    imp = self,
                    "overlay: {delivery:?} (downstream: {downstream:?}, caps {caps})"
                );
                delivery
            }
            _ => {
                gst::info!(
                    CAT,
                    imp = self,
                    "overlay: blended in place (downstream caps without {})",
                    gst_video::CAPS_FEATURE_META_GST_VIDEO_OVERLAY_COMPOSITION
                );
                Delivery::Blend
            }
        };
        *lock(&self.delivery) = Some(delivery);
        delivery
    }

    /// The overlay as a `GstVideoOverlayCompositionMeta`, the pixels untouched. Nothing is
    /// attached when nothing is drawn; when the composition cannot be built, a warning and the
    /// overlay is blended in place instead.
    fn attach_overlay(
        &self,
        buffer: &mut gst::BufferRef,
        info: &gst_video::VideoInfo,
        format: PixelFormat,
        settings: &Settings,
        result: &FlowResult,
    ) -> Result<(), gst::FlowError> {
        let Some(image) = draw::render_overlay(
            (info.width() as usize, info.height() as usize),
            settings.overlay_style.into(),
            settings.overlay_alpha as f32,
            &result.flow,
            result.labels.as_ref(),
            &readout::legend(result),
        ) else {
            return Ok(());
        };
        match composition::composition(image) {
            Ok(composition) => {
                gst_video::VideoOverlayCompositionMeta::add(buffer, &composition);
                Ok(())
            }
            Err(e) => {
                gst::element_imp_warning!(
                    self,
                    gst::StreamError::Failed,
                    ("Cannot build the overlay composition ({e}): blending the overlay into the frame"),
                    ["Report this as a bug; the overlay stays visible, drawn into the pixels."]
                );
                *lock(&self.delivery) = Some(Delivery::Blend);
                self.draw(buffer, info, format, settings, result)
            }
        }
    }

    fn draw(
        &self,
        buffer: &mut gst::BufferRef,
        info: &gst_video::VideoInfo,
        format: PixelFormat,
        settings: &Settings,
        result: &FlowResult,
    ) -> Result<(), gst::FlowError> {
        let mut frame =
            gst_video::VideoFrameRef::from_buffer_ref_writable(buffer, info).map_err(|_| {
                gst::element_imp_error!(
                    self,
                    gst::StreamError::Failed,
                    ("Cannot map the frame writable")
                );
                gst::FlowError::Error
            })?;
        // Strides of this buffer (its GstVideoMeta when it has one), not the caps' defaults.
        let strides: Vec<isize> = frame.plane_stride().iter().map(|&s| s as isize).collect();
        let n = frame.n_planes() as usize;
        let planes: Vec<(&mut [u8], isize)> = frame
            .planes_data_mut()
            .into_iter()
            .take(n)
            .zip(strides)
            .collect();
        let mut planes = self.checked_planes(
            format,
            info.width() as usize,
            info.height() as usize,
            planes,
        )?;
        let mut canvas = Canvas::new(
            format,
            info.width() as usize,
            info.height() as usize,
            &mut planes,
        );
        draw::draw_overlay(
            &mut canvas,
            settings.overlay_style.into(),
            settings.overlay_alpha as f32,
            &result.flow,
            result.labels.as_ref(),
            &readout::legend(result),
        );
        Ok(())
    }

    /// `(data, stride)` per plane once checked to hold the whole frame; an element error for a
    /// layout that cannot be read (negative strides, planes too short).
    fn checked_planes<D: AsRef<[u8]>>(
        &self,
        format: PixelFormat,
        width: usize,
        height: usize,
        planes: Vec<(D, isize)>,
    ) -> Result<Vec<(D, usize)>, gst::FlowError> {
        let layout: Vec<(usize, isize)> = planes
            .iter()
            .map(|(data, stride)| (data.as_ref().len(), *stride))
            .collect();
        self.check_layout(format, width, height, &layout)?;
        Ok(planes
            .into_iter()
            .map(|(data, stride)| (data, stride as usize))
            .collect())
    }

    /// [`PixelFormat::check_layout`], an element error when the frame does not fit.
    fn check_layout(
        &self,
        format: PixelFormat,
        width: usize,
        height: usize,
        layout: &[(usize, isize)],
    ) -> Result<(), gst::FlowError> {
        format.check_layout(width, height, layout).map_err(|e| {
            gst::element_imp_error!(
                self,
                gst::StreamError::Format,
                ("Cannot read this buffer's layout: {e}"),
                ["Put videoconvert before pddflow to get a frame in the default layout."]
            );
            gst::FlowError::Error
        })
    }

    /// Posts the `pddflow-summary` element message (at EOS).
    fn post_summary(&self) {
        let threshold = lock(&self.settings).closure_threshold;
        let Some((frames, summary)) = lock(&self.state)
            .as_ref()
            .map(|s| (s.frames, s.readout.compression.summary(threshold)))
        else {
            return;
        };
        self.post(readout::summary_message(frames, &summary, threshold));
    }
}

#[cfg(test)]
mod tests {
    use super::ReadOutPool;

    #[test]
    fn a_read_out_thread_that_cannot_be_made_is_tried_and_reported_once() {
        let mut pool = ReadOutPool::default();
        let mut attempts = 0;
        let reports: Vec<bool> = (0..3)
            .map(|_| {
                pool.ensure(|| {
                    attempts += 1;
                    Err::<rayon::ThreadPool, _>("no threads left")
                })
                .is_err()
            })
            .collect();
        assert_eq!(reports, [true, false, false]);
        assert_eq!(attempts, 1);
        assert!(pool.own().is_none());

        let mut made = ReadOutPool::default();
        let build = || rayon::ThreadPoolBuilder::new().num_threads(1).build();
        assert!(made.ensure(build).is_ok());
        assert_eq!(made.own().map(|p| p.current_num_threads()), Some(1));
    }
}
