//! The soak: several `usphantomsrc ! capsfilter ! pddflow ! fakesink` pipelines in one process,
//! disturbed while they run (re-anchors by signal and by event, frame size changes, flushing
//! seeks, property changes), watching errors and the process's resident memory.

use gst::prelude::*;
use pddflow_tools::eval::bench::rss_kb;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub struct Config {
    pub pipelines: usize,
    /// Frames in all (split evenly over the pipelines).
    pub frames: u64,
    /// Frame sizes the pipelines switch between.
    pub sizes: Vec<(u32, u32)>,
    /// Frames between two disturbances of a pipeline.
    pub every: u64,
    /// `pddflow` properties beyond those the soak changes (model, threads, provider).
    pub pddflow_properties: String,
}

/// What each disturbance did, in the order they are applied.
const DISTURBANCES: [&str; 6] = [
    "re-anchor (signal)",
    "mode and overlay change",
    "size change",
    "flushing seek",
    "re-anchor (event)",
    "readout property change",
];

pub struct Report {
    pub frames: u64,
    pub seconds: f64,
    /// Error messages from any pipeline (the soak passes with none).
    pub errors: Vec<String>,
    pub warnings: u64,
    /// How often each of [`DISTURBANCES`] was applied.
    pub disturbances: [u64; DISTURBANCES.len()],
    /// RSS before the pipelines were built, kB.
    pub rss_before_kb: u64,
    /// (frames in all, RSS kB) sampled while the pipelines run.
    pub rss: Vec<(u64, u64)>,
    /// RSS once every pipeline is back in NULL and gone, kB.
    pub rss_closed_kb: u64,
}

impl Report {
    pub fn disturbance_summary(&self) -> String {
        DISTURBANCES
            .iter()
            .zip(self.disturbances)
            .map(|(what, n)| format!("{n} × {what}"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

fn caps(w: u32, h: u32) -> Result<gst::Caps, String> {
    super::caps(w, h)
        .parse()
        .map_err(|e| format!("caps {w}x{h}: {e}"))
}

struct PipelineOutcome {
    errors: Vec<String>,
    warnings: u64,
    disturbances: [u64; DISTURBANCES.len()],
}

/// Runs one pipeline until it has delivered `quota` frames, disturbing it every `every` frames.
fn soak_one(
    index: usize,
    quota: u64,
    config: &Config,
    total: Arc<AtomicU64>,
) -> Result<PipelineOutcome, String> {
    let (w, h) = config.sizes[0];
    let pipeline = super::launch(&format!(
        "usphantomsrc seed={index} ! capsfilter name=caps ! pddflow name=flow {} \
         ! fakesink name=sink sync=false",
        config.pddflow_properties
    ))?;
    let by_name = |name: &str| {
        pipeline
            .by_name(name)
            .ok_or_else(|| format!("no element {name}"))
    };
    let (capsfilter, flow, sink) = (by_name("caps")?, by_name("flow")?, by_name("sink")?);
    capsfilter.set_property("caps", caps(w, h)?);
    let delivered = Arc::new(AtomicU64::new(0));
    let counter = delivered.clone();
    sink.static_pad("sink")
        .ok_or("fakesink has no sink pad")?
        .add_probe(gst::PadProbeType::BUFFER, move |_, _| {
            counter.fetch_add(1, Ordering::Relaxed);
            total.fetch_add(1, Ordering::Relaxed);
            gst::PadProbeReturn::Ok
        });
    let bus = pipeline.bus().ok_or("no bus")?;
    pipeline
        .set_state(gst::State::Playing)
        .map_err(|_| "the soak pipeline did not start")?;
    let mut outcome = PipelineOutcome {
        errors: Vec::new(),
        warnings: 0,
        disturbances: [0; DISTURBANCES.len()],
    };
    let mut next = config.every;
    let mut step = 0usize;
    let mut size = 0usize;
    let mut last_progress = (0, Instant::now());
    loop {
        while let Some(msg) = bus.timed_pop(gst::ClockTime::from_mseconds(5)) {
            match msg.view() {
                gst::MessageView::Error(e) => outcome.errors.push(format!(
                    "pipeline {index}: {} ({:?})",
                    e.error(),
                    e.debug()
                )),
                gst::MessageView::Warning(_) => outcome.warnings += 1,
                _ => {}
            }
        }
        let n = delivered.load(Ordering::Relaxed);
        if !outcome.errors.is_empty() || n >= quota {
            break;
        }
        if n != last_progress.0 {
            last_progress = (n, Instant::now());
        } else if last_progress.1.elapsed() > Duration::from_secs(60) {
            outcome
                .errors
                .push(format!("pipeline {index}: no frame for 60 s after {n}"));
            break;
        }
        if n < next {
            continue;
        }
        next = n + config.every;
        let kind = step % DISTURBANCES.len();
        step += 1;
        outcome.disturbances[kind] += 1;
        match kind {
            0 => {
                flow.emit_by_name::<()>("reanchor", &[]);
            }
            1 => {
                let chain = step % 4 < 2;
                flow.set_property_from_str("mode", if chain { "chain" } else { "keyframe" });
                flow.set_property("overlay", !step.is_multiple_of(3));
                flow.set_property_from_str(
                    "overlay-style",
                    ["fill+contour+legend", "flow+arrows", "contour"][step % 3],
                );
            }
            2 => {
                size = (size + 1) % config.sizes.len();
                let (w, h) = config.sizes[size];
                capsfilter.set_property("caps", caps(w, h)?);
            }
            3 => {
                let position = gst::ClockTime::from_mseconds((step as u64 * 137) % 20_000);
                if pipeline
                    .seek_simple(gst::SeekFlags::FLUSH, position)
                    .is_err()
                {
                    outcome
                        .errors
                        .push(format!("pipeline {index}: flushing seek refused"));
                }
            }
            4 => {
                if let Some(pad) = flow.static_pad("sink") {
                    pad.send_event(gstpddflow::pddflow::reanchor_event());
                }
            }
            _ => {
                flow.set_property("message-interval", (step % 5) as u32 * 10);
                flow.set_property("pixel-spacing", (step % 3) as f64 * 0.05);
                flow.set_property("overlay-alpha", (step % 10) as f64 / 10.0);
                flow.set_property("closure-threshold", 0.05 + (step % 4) as f64 * 0.05);
            }
        }
    }
    pipeline.send_event(gst::event::Eos::new());
    if outcome.errors.is_empty() {
        match bus.timed_pop_filtered(
            gst::ClockTime::from_seconds(30),
            &[gst::MessageType::Eos, gst::MessageType::Error],
        ) {
            Some(msg) => {
                if let gst::MessageView::Error(e) = msg.view() {
                    outcome
                        .errors
                        .push(format!("pipeline {index} at EOS: {}", e.error()));
                }
            }
            None => outcome
                .errors
                .push(format!("pipeline {index}: no EOS within 30 s")),
        }
    }
    pipeline
        .set_state(gst::State::Null)
        .map_err(|_| format!("pipeline {index} did not stop"))?;
    Ok(outcome)
}

pub fn run(config: &Config) -> Result<Report, String> {
    if config.pipelines == 0 || config.sizes.is_empty() {
        return Err("the soak needs at least one pipeline and one size".into());
    }
    let rss_before_kb = rss_kb().map_or(0, |(rss, _)| rss);
    let total = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let quota = config.frames.div_ceil(config.pipelines as u64);
    let outcomes = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..config.pipelines)
            .map(|i| {
                let total = total.clone();
                scope.spawn(move || soak_one(i, quota, config, total))
            })
            .collect();
        let mut rss = Vec::new();
        let sample_every = (config.frames / 200).max(1);
        let mut next_sample = 0;
        while handles.iter().any(|h| !h.is_finished()) {
            let n = total.load(Ordering::Relaxed);
            if n >= next_sample {
                if let Some((kb, _)) = rss_kb() {
                    rss.push((n, kb));
                }
                next_sample = n + sample_every;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let outcomes: Vec<Result<PipelineOutcome, String>> = handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err("a soak thread panicked".into()))
            })
            .collect();
        (outcomes, rss)
    });
    let (outcomes, rss) = outcomes;
    let mut report = Report {
        frames: total.load(Ordering::Relaxed),
        seconds: start.elapsed().as_secs_f64(),
        errors: Vec::new(),
        warnings: 0,
        disturbances: [0; DISTURBANCES.len()],
        rss_before_kb,
        rss,
        rss_closed_kb: rss_kb().map_or(0, |(rss, _)| rss),
    };
    for outcome in outcomes {
        match outcome {
            Ok(o) => {
                report.errors.extend(o.errors);
                report.warnings += o.warnings;
                for (sum, n) in report.disturbances.iter_mut().zip(o.disturbances) {
                    *sum += n;
                }
            }
            Err(e) => report.errors.push(e),
        }
    }
    Ok(report)
}
