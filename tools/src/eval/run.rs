//! The GStreamer glue: one sequence through `appsrc ! pddflow ! appsink`, frames decoded from the
//! PNG files, the reference mask attached as the element receives it in use (a
//! `PddFlowReferenceMaskMeta` on the reference frame), results read from `PddFlowMeta` at the
//! sink. Everything it decides is in [`super::dataset`] and [`super::score`].

use super::dataset::{load_frame, load_mask, Frame, Sequence};
use super::EvalError;
use gst::prelude::*;
use gstpddflow::flow::LabelMap;
use gstpddflow::meta::{attach_reference_mask, FlowResult};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Initialises GStreamer and registers the plugin statically (once per process).
pub fn init() -> Result<(), EvalError> {
    static INIT: std::sync::OnceLock<Result<(), String>> = std::sync::OnceLock::new();
    INIT.get_or_init(|| {
        gst::init().map_err(|e| format!("GStreamer could not be initialised: {e}"))?;
        gstpddflow::plugin_register_static()
            .map_err(|e| format!("the pddflow plugin could not be registered: {e}"))
    })
    .clone()
    .map_err(EvalError::Pipeline)
}

/// How the element is set up.
#[derive(Clone, Debug)]
pub struct ElementConfig {
    /// `keyframe` or `chain`.
    pub mode: String,
    /// Model directory; `None` for the built-in model.
    pub model: Option<PathBuf>,
    /// `cpu`, `cuda` or `auto`.
    pub execution_provider: String,
    /// Fail instead of falling back to CPU.
    pub strict_provider: bool,
    /// ONNX Runtime intra-op threads; 0 lets it choose.
    pub threads: u32,
    /// The element's `working-size` (longest side of the flow grid; 0: the model's default).
    pub working_size: u32,
    /// The element's `lumen-evidence`: image evidence in the vein-closed verdict.
    pub lumen_evidence: bool,
}

/// What a sequence run reports besides the masks.
#[derive(Clone, Debug)]
pub struct RunInfo {
    pub frames: u64,
    pub seconds: f64,
    /// The execution provider that computed the flow.
    pub execution_provider: String,
    /// The element's vein-closed verdict from its `pddflow-summary` message at EOS.
    pub vein_closed: Option<bool>,
}

fn pipeline_error(bus: &gst::Bus, context: &str) -> EvalError {
    while let Some(msg) = bus.pop_filtered(&[gst::MessageType::Error]) {
        if let gst::MessageView::Error(e) = msg.view() {
            return EvalError::Pipeline(format!(
                "{context}: {}{}",
                e.error(),
                e.debug().map(|d| format!(" ({d})")).unwrap_or_default()
            ));
        }
    }
    EvalError::Pipeline(context.to_string())
}

/// Runs `sequence` from frame `reference` on through the element. `on_frame(index, frame,
/// labels, tracking_confidence)` receives every frame's propagated mask, the reference's
/// included, and the element's `tracking-confidence` when it reported one.
pub fn run_sequence(
    sequence: &Sequence,
    reference: usize,
    config: &ElementConfig,
    mut on_frame: impl FnMut(usize, &Frame, LabelMap, Option<f64>) -> Result<(), EvalError>,
) -> Result<RunInfo, EvalError> {
    init()?;
    let first = &sequence.frames[reference];
    let image = load_frame(&first.path)?;
    let (width, height) = (image.width, image.height);
    let mask_path = first
        .mask
        .as_ref()
        .ok_or_else(|| EvalError::Dataset(format!("{}: no reference mask", sequence.name)))?;
    let mask = load_mask(mask_path, width, height)?;

    let info =
        gst_video::VideoInfo::builder(gst_video::VideoFormat::Gray8, width as u32, height as u32)
            .fps(gst::Fraction::new(
                sequence
                    .meta
                    .frame_rate
                    .map_or(30, |f| f.round().max(1.0) as i32),
                1,
            ))
            .build()
            .map_err(|e| EvalError::Pipeline(format!("{width}x{height} GRAY8 video info: {e}")))?;
    let caps = info
        .to_caps()
        .map_err(|e| EvalError::Pipeline(format!("caps: {e}")))?;
    let make = |factory: &str| {
        gst::ElementFactory::make(factory)
            .build()
            .map_err(|e| EvalError::Pipeline(format!("cannot create {factory}: {e}")))
    };
    let src = gst_app::AppSrc::builder()
        .caps(&caps)
        .format(gst::Format::Time)
        .is_live(false)
        .build();
    let flow = make("pddflow")?;
    flow.set_property_from_str("mode", &config.mode);
    flow.set_property_from_str("execution-provider", &config.execution_provider);
    flow.set_property("strict-provider", config.strict_provider);
    flow.set_property("threads", config.threads);
    flow.set_property("working-size", config.working_size);
    flow.set_property("lumen-evidence", config.lumen_evidence);
    if let Some(model) = &config.model {
        flow.set_property("model-location", model.to_string_lossy().to_string());
    }
    let sink = gst_app::AppSink::builder().sync(false).build();
    let pipeline = gst::Pipeline::new();
    pipeline
        .add_many([src.upcast_ref(), &flow, sink.upcast_ref()])
        .and_then(|_| gst::Element::link_many([src.upcast_ref(), &flow, sink.upcast_ref()]))
        .map_err(|e| EvalError::Pipeline(format!("cannot build the pipeline: {e}")))?;
    let bus = pipeline.bus().expect("pipelines have a bus");
    let result = (|| {
        pipeline.set_state(gst::State::Playing).map_err(|_| {
            pipeline_error(&bus, "the pipeline did not start (model or ONNX Runtime?)")
        })?;
        let stride = info.stride()[0] as usize;
        let duration = gst::ClockTime::SECOND / info.fps().numer().max(1) as u64;
        let start = Instant::now();
        let mut provider = String::new();
        let mut pushed = 0u64;
        for (index, frame) in sequence.frames.iter().enumerate().skip(reference) {
            let image = if index == reference {
                image.clone()
            } else {
                load_frame(&frame.path)?
            };
            if (image.width, image.height) != (width, height) {
                return Err(EvalError::Dataset(format!(
                    "size mismatch: frame {} is {}x{} but the sequence's reference frame is \
                     {width}x{height}",
                    frame.path.display(),
                    image.width,
                    image.height
                )));
            }
            let mut data = vec![0u8; info.size()];
            for (row, dst) in image.data.chunks_exact(width).zip(data.chunks_mut(stride)) {
                dst[..width].copy_from_slice(row);
            }
            let mut buffer = gst::Buffer::from_mut_slice(data);
            {
                let b = buffer.get_mut().expect("new buffer is writable");
                b.set_pts(duration * pushed);
                b.set_duration(duration);
                if index == reference {
                    attach_reference_mask(b, &mask).map_err(|e| {
                        EvalError::Pipeline(format!("cannot attach the reference mask: {e}"))
                    })?;
                }
            }
            src.push_buffer(buffer).map_err(|e| {
                pipeline_error(&bus, &format!("pushing {} failed: {e:?}", frame.file))
            })?;
            pushed += 1;
            let sample = sink
                .try_pull_sample(gst::ClockTime::from_seconds(120))
                .ok_or_else(|| {
                    pipeline_error(
                        &bus,
                        &format!("no output for frame {}", frame.path.display()),
                    )
                })?;
            let out = sample
                .buffer()
                .ok_or_else(|| EvalError::Pipeline("a sample without a buffer".into()))?;
            let result = FlowResult::from_buffer(out)
                .ok_or_else(|| {
                    EvalError::Pipeline(format!("no pddflow result on frame {}", frame.file))
                })?
                .map_err(|e| EvalError::Pipeline(format!("malformed pddflow result: {e}")))?;
            if result.reference_frame != 0 {
                return Err(EvalError::Pipeline(format!(
                    "pddflow re-anchored on frame {} unexpectedly",
                    result.reference_frame
                )));
            }
            let labels = result.labels.ok_or_else(|| {
                EvalError::Pipeline(format!(
                    "pddflow gave no labels for {} although the reference mask was attached",
                    frame.file
                ))
            })?;
            provider = result.execution_provider;
            on_frame(index, frame, labels, result.tracking_confidence)?;
        }
        let seconds = start.elapsed().as_secs_f64();
        let _ = src.end_of_stream();
        // Drain to EOS so that the element stops cleanly; its summary comes before.
        let mut vein_closed = None;
        while let Some(msg) = bus.timed_pop_filtered(
            gst::ClockTime::from_seconds(10),
            &[
                gst::MessageType::Eos,
                gst::MessageType::Error,
                gst::MessageType::Element,
            ],
        ) {
            match msg.view() {
                gst::MessageView::Element(e) => {
                    if let Some(s) = e.structure().filter(|s| s.name() == "pddflow-summary") {
                        vein_closed = s.get::<bool>("vein-closed").ok();
                    }
                }
                _ => break,
            }
        }
        Ok(RunInfo {
            frames: pushed,
            seconds,
            execution_provider: provider,
            vein_closed,
        })
    })();
    let _ = pipeline.set_state(gst::State::Null);
    // The last state change may take a moment for the streaming thread.
    let _ = pipeline.state(Some(gst::ClockTime::from_mseconds(
        Duration::from_secs(5).as_millis() as u64,
    )));
    result
}
