//! pddflow-bench: speed and memory of pddflow on this machine, in one run so that ratios hold.
//!
//! 1. Model only (ONNX Runtime through `Engine`, no GStreamer): features and flow graphs per
//!    frame, cached (features of the current frame + flow, the reference's features kept) and
//!    uncached (features of both frames + flow), per model and thread count.
//! 2. End to end: `SOURCE ! GRAY8 WxH ! pddflow ! fakesink sync=false`, keyframe and chain,
//!    overlay on and off, frames per second measured at the sink after a warm-up, and the
//!    overhead of the GStreamer path over model-only (cached) latency.
//! 3. Memory: peak RSS (VmHWM) and the RSS trend over a long run (`--long-frames`).
//! 4. OpenCV DIS and Farneback at the same sizes (scripts/baselines.py time), same run.
//! 5. Soak (`--soak-frames`): several pipelines in one process disturbed while they run
//!    (re-anchors, size changes, flushing seeks, property changes): errors and RSS.
//! 6. Live (`--live-seconds`): a live source faster than the model into a synchronised sink,
//!    with and without `skip-late`: per-frame time in pddflow and delay at the sink (p50, p99),
//!    skipped frames, the latency pddflow reports.
//!
//! 7. Stages (`stages`): the element's frame-size stages one by one (luma, resize, warp, clean,
//!    confidence, classes, areas, regions, overlay, metadata) on a synthetic RGBx frame.
//! 8. Frame-size cost (`ratio`): 1080p RGBx with the overlay against 256x256 GRAY8 without it,
//!    end to end at the same working size, and their ratio; the frames are drawn once and
//!    replayed from memory through `appsrc`, so that the source costs a copy per frame.
//!
//! Plain tables on stdout; `--markdown FILE` writes the same as a Markdown fragment.

#[path = "pddflow-bench/live.rs"]
mod live;
#[path = "pddflow-bench/replay.rs"]
mod replay;
#[path = "pddflow-bench/soak.rs"]
mod soak;
#[path = "pddflow-bench/stages.rs"]
mod stages;

use clap::Parser;
use gst::prelude::*;
use gstpddflow::engine::model::ModelFiles;
use gstpddflow::engine::{Engine, EngineConfig, ProviderRequest};
use gstpddflow::flow::tracker::FlowBackend;
use pddflow_tools::eval::bench::{
    markdown_table, parse_size, rss_kb, rss_trend, text_table, Timings,
};
use pddflow_tools::eval::score::median;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Instant;

#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// Model directories for the model-only table (e.g. the default architecture exported at
    /// 128², 256², 512²). The built-in model is measured too when the build has one.
    #[arg(long, num_args = 1..)]
    models: Vec<PathBuf>,
    /// Leave the built-in model out of the model-only table.
    #[arg(long)]
    no_builtin: bool,
    /// ONNX Runtime intra-op thread counts for the model-only table.
    #[arg(long, value_delimiter = ',', default_value = "1,2")]
    threads: Vec<usize>,
    /// Working sizes of the model-only table (pddflow's working-size: the longest side of one
    /// of a model's input_sizes; 0: its default). Each model runs at each size it takes, e.g.
    /// `--working-sizes 128,192,256,320,384`; a size no model takes is an error.
    #[arg(long, value_delimiter = ',', default_value = "0")]
    working_sizes: Vec<usize>,
    /// Timed repetitions per model-only case (at most).
    #[arg(long, default_value_t = 40)]
    iters: usize,
    /// Time budget per model-only case, seconds (at least 3 repetitions are always timed).
    #[arg(long, default_value_t = 3.0)]
    max_seconds: f64,
    /// cpu, cuda or auto (the lead's GPU runs use cuda).
    #[arg(long, default_value = "cpu")]
    execution_provider: String,
    /// Frame sizes of the end-to-end table.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "640x480,1280x720,1920x1080"
    )]
    sizes: Vec<String>,
    /// Frames per end-to-end run (the first 10% are a warm-up, not timed).
    #[arg(long, default_value_t = 60)]
    e2e_frames: u32,
    /// Frames per run of the frame-size cost section (the first 10% are a warm-up); more than
    /// the end-to-end table's, because its overhead and ratio are differences of two runs.
    #[arg(long, default_value_t = 300)]
    ratio_frames: u32,
    /// pddflow's threads property in the end-to-end runs (the long run uses the first).
    #[arg(long, value_delimiter = ',', default_value = "1,2")]
    e2e_threads: Vec<u32>,
    /// Model of the end-to-end and long runs (default: the built-in model).
    #[arg(long)]
    e2e_model: Option<PathBuf>,
    /// pddflow's working-size in the end-to-end, long and soak runs (0: the model's default
    /// working size, passed explicitly so that every frame size runs at the same input size).
    #[arg(long, default_value_t = 0)]
    e2e_working_size: u32,
    /// Source element description; num-buffers is appended.
    #[arg(long, default_value = "videotestsrc pattern=ball")]
    source: String,
    /// Frames of the long run that watches RSS (chain mode, no overlay); 0 skips it.
    /// The 100,000-frame check: --long-frames 100000.
    #[arg(long, default_value_t = 600)]
    long_frames: u64,
    /// Frame size of the long run.
    #[arg(long, default_value = "320x240")]
    long_size: String,
    /// Frames in all of the soak (0 skips it). The check: --soak-frames 100000.
    #[arg(long, default_value_t = 0)]
    soak_frames: u64,
    /// Pipelines running at once in the soak.
    #[arg(long, default_value_t = 8)]
    soak_pipelines: usize,
    /// Frame sizes the soak's pipelines switch between.
    #[arg(long, value_delimiter = ',', default_value = "96x64,160x120")]
    soak_sizes: Vec<String>,
    /// Frames between two disturbances of a soak pipeline.
    #[arg(long, default_value_t = 100)]
    soak_every: u64,
    /// Model of the soak (default: that of the end-to-end runs).
    #[arg(long)]
    soak_model: Option<PathBuf>,
    /// Seconds of each live run (0 skips them); the check: --live-seconds 60.
    #[arg(long, default_value_t = 0.0)]
    live_seconds: f64,
    /// Frame size of the live runs.
    #[arg(long, default_value = "1920x1080")]
    live_size: String,
    /// Frame rate of the live source (at 1080p60 this 2-core VM's videotestsrc alone is too slow
    /// to keep up, so the delay grows whatever pddflow does).
    #[arg(long, default_value_t = 30)]
    live_fps: u32,
    /// Raw format of the live frames.
    #[arg(long, default_value = "RGBx")]
    live_format: String,
    /// Python with opencv-python-headless for the OpenCV table ("" skips it).
    #[arg(long, default_value = "python3")]
    python: String,
    /// scripts/baselines.py.
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/baselines.py"))]
    baselines: PathBuf,
    /// Sizes of the OpenCV table (default: the model-only and end-to-end sizes).
    #[arg(long, value_delimiter = ',')]
    opencv_sizes: Vec<String>,
    /// Write the tables as Markdown here.
    #[arg(long)]
    markdown: Option<PathBuf>,
    /// Timed repetitions per stage of the stages table.
    #[arg(long, default_value_t = 30)]
    stage_iterations: u32,
    /// Frame size of the frame-size cost section (RGBx with the overlay, against 256x256 GRAY8).
    #[arg(long, default_value = "1920x1080")]
    ratio_size: String,
    /// Working sizes of the frame-size cost section (0: the end-to-end working size). The
    /// issue that asks for the ratio measured it at 256, the model's input size then.
    #[arg(long, value_delimiter = ',', default_value = "0,256")]
    ratio_working_sizes: Vec<u32>,
    /// Frames the frame-size cost section draws with --ratio-source once and then replays from
    /// memory, back and forth (a 1080p RGBx frame takes 8 MB).
    #[arg(long, default_value_t = 30)]
    ratio_distinct_frames: u32,
    /// Rounds of the frame-size cost section: each row runs its two frame sizes one after the
    /// other this many times and reports medians and the range of the ratio (a shared machine
    /// slows down and speeds up over minutes; pairs taken together cancel most of that).
    #[arg(long, default_value_t = 3)]
    ratio_rounds: u32,
    /// Source of the frame-size cost section's frames (num-buffers is appended; converted to
    /// each row's format). Ultrasound-like by default: on `videotestsrc pattern=ball`'s flat
    /// background the flow means nothing, chain mode breaks the mask into fragments and the
    /// frame-size work measured is that of the fragments.
    #[arg(long, default_value = "usphantomsrc seed=3")]
    ratio_source: String,
    /// Skip sections: model, e2e, stages, ratio, long, opencv (the soak runs only with
    /// --soak-frames).
    #[arg(long, value_delimiter = ',')]
    skip: Vec<String>,
}

fn main() -> ExitCode {
    match run(Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pddflow-bench: error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Collects each section as text (stdout) and Markdown.
struct Out {
    md: String,
}

impl Out {
    fn section(&mut self, title: &str, note: &str) {
        println!("\n== {title} ==");
        if !note.is_empty() {
            println!("{note}");
        }
        self.md.push_str(&format!("\n### {title}\n\n"));
        if !note.is_empty() {
            self.md.push_str(&format!("{note}\n\n"));
        }
    }

    fn table(&mut self, header: &[&str], rows: &[Vec<String>]) {
        print!("{}", text_table(header, rows));
        self.md.push_str(&markdown_table(header, rows));
    }

    fn line(&mut self, text: &str) {
        println!("{text}");
        self.md.push_str(&format!("\n{text}\n\n"));
    }
}

fn provider_request(name: &str) -> Result<ProviderRequest, String> {
    name.parse()
        .map_err(|e| format!("--execution-provider {e}"))
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let n = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!("{cpu}, {n} logical CPUs available to this process")
}

fn gpu_name() -> String {
    std::process::Command::new("nvidia-smi")
        .args(["--query-gpu=name,driver_version", "--format=csv,noheader"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .trim()
                .replace('\n', "; ")
        })
        .unwrap_or_else(|| "no GPU found (nvidia-smi did not answer)".into())
}

/// Times `f` until `iters` repetitions or `max_seconds` (at least 3).
fn time_loop(
    iters: usize,
    max_seconds: f64,
    mut f: impl FnMut() -> Result<(), String>,
) -> Result<Timings, String> {
    let mut samples = Vec::new();
    let start = Instant::now();
    while samples.len() < iters.max(1)
        && (samples.len() < 3 || start.elapsed().as_secs_f64() < max_seconds)
    {
        let t = Instant::now();
        f()?;
        samples.push(t.elapsed());
    }
    Ok(Timings::of(&samples).expect("at least one sample"))
}

/// A speckle-like image in [0, 1] and the same moved by (3, 2) pixels.
fn image_pair(w: usize, h: usize) -> (Vec<f32>, Vec<f32>) {
    let (pw, ph) = (w + 8, h + 8);
    let mut s = 0x9e3779b9u32;
    let base: Vec<f32> = (0..pw * ph)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            (s >> 8) as f32 / (1u32 << 24) as f32
        })
        .collect();
    let crop = |ox: usize, oy: usize| {
        (0..h)
            .flat_map(|y| (0..w).map(move |x| (x, y)))
            .map(|(x, y)| base[(y + oy) * pw + x + ox])
            .collect::<Vec<_>>()
    };
    (crop(4, 4), crop(1, 2))
}

struct ModelRow {
    name: String,
    size: (usize, usize),
    threads: usize,
    provider: String,
    features: Timings,
    flow: Timings,
    cached: Timings,
    uncached: Timings,
}

fn model_only(
    model: &ModelFiles,
    name: &str,
    threads: usize,
    working_size: usize,
    args: &Args,
) -> Result<ModelRow, String> {
    let config = EngineConfig {
        provider: provider_request(&args.execution_provider)?,
        strict_provider: false,
        device_id: 0,
        threads,
        working_size,
    };
    let mut engine = Engine::new(model, &config)?;
    if let Some(reason) = &engine.fallback_reason {
        eprintln!("note: {name}: {reason}");
    }
    let (w, h) = engine.input_size();
    let (a, b) = image_pair(w, h);
    for _ in 0..3 {
        let fa = engine.features(&a)?;
        let fb = engine.features(&b)?;
        engine.flow(&fa, &fb)?;
    }
    let reference = engine.features(&a)?;
    let current = engine.features(&b)?;
    let (iters, secs) = (args.iters, args.max_seconds);
    let features = time_loop(iters, secs, || engine.features(&b).map(|_| ()))?;
    let flow = time_loop(iters, secs, || {
        engine.flow(&reference, &current).map(|_| ())
    })?;
    let cached = time_loop(iters, secs, || {
        let f = engine.features(&b)?;
        engine.flow(&reference, &f).map(|_| ())
    })?;
    let uncached = time_loop(iters, secs, || {
        let fa = engine.features(&a)?;
        let fb = engine.features(&b)?;
        engine.flow(&fa, &fb).map(|_| ())
    })?;
    Ok(ModelRow {
        name: name.to_string(),
        size: (w, h),
        threads,
        provider: engine.provider().name().into(),
        features,
        flow,
        cached,
        uncached,
    })
}

/// A reference mask for the end-to-end runs: a vein and an artery disc.
fn write_mask(dir: &Path, w: u32, h: u32) -> Result<PathBuf, String> {
    let m = stages::two_discs(w as usize, h as usize);
    let path = dir.join(format!("mask-{w}x{h}.png"));
    m.save_png(&path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(path)
}

struct PipelineRun {
    /// Arrival times at the sink.
    arrivals: Vec<Instant>,
    /// pddflow's `model-time` stat (ns in its two graphs so far) at each arrival, when the
    /// pipeline has a pddflow.
    model_ns: Vec<u64>,
    /// (frame, RSS kB) samples.
    rss: Vec<(u64, u64)>,
}

/// The pipeline `description` describes, or why it cannot be built.
fn launch(description: &str) -> Result<gst::Pipeline, String> {
    gst::parse::launch(description)
        .map_err(|e| format!("cannot build `{description}`: {e}"))?
        .downcast::<gst::Pipeline>()
        .map_err(|_| format!("`{description}` is not a pipeline"))
}

/// Runs `description` (its sink named `sink`) to EOS, recording arrivals at the sink; with
/// `feed`, its `appsrc` named `src` replays that many frames from memory.
fn run_pipeline(
    description: &str,
    rss_every: u64,
    feed: Option<(&replay::Replay, u64)>,
) -> Result<PipelineRun, String> {
    let pipeline = launch(description)?;
    if let Some((frames, count)) = feed {
        frames.feed(&pipeline, count)?;
    }
    let sink = pipeline
        .by_name("sink")
        .ok_or("the pipeline has no element named sink")?;
    let record = Arc::new(Mutex::new(PipelineRun {
        arrivals: Vec::new(),
        model_ns: Vec::new(),
        rss: Vec::new(),
    }));
    let pddflow = pipeline
        .iterate_recurse()
        .into_iter()
        .flatten()
        .find(|e| e.factory().is_some_and(|f| f.name() == "pddflow"));
    let r = record.clone();
    sink.static_pad("sink")
        .ok_or("sink has no sink pad")?
        .add_probe(gst::PadProbeType::BUFFER, move |_, _| {
            let arrived = Instant::now();
            let model_ns = pddflow.as_ref().and_then(|e| {
                e.property::<gst::Structure>("stats")
                    .get::<u64>("model-time")
                    .ok()
            });
            let mut r = r.lock().unwrap();
            r.arrivals.push(arrived);
            r.model_ns.extend(model_ns);
            let n = r.arrivals.len() as u64;
            if rss_every > 0 && (n == 1 || n.is_multiple_of(rss_every)) {
                if let Some((rss, _)) = rss_kb() {
                    r.rss.push((n, rss));
                }
            }
            gst::PadProbeReturn::Ok
        });
    let bus = pipeline.bus().expect("pipelines have a bus");
    pipeline
        .set_state(gst::State::Playing)
        .map_err(|_| format!("`{description}` did not start"))?;
    let mut error = None;
    for msg in bus.iter_timed(gst::ClockTime::NONE) {
        match msg.view() {
            gst::MessageView::Eos(_) => break,
            gst::MessageView::Error(e) => {
                error = Some(format!(
                    "{}{}",
                    e.error(),
                    e.debug().map(|d| format!(" ({d})")).unwrap_or_default()
                ));
                break;
            }
            _ => {}
        }
    }
    let _ = pipeline.set_state(gst::State::Null);
    if let Some(e) = error {
        return Err(format!("`{description}` failed: {e}"));
    }
    let mut r = record.lock().unwrap();
    Ok(PipelineRun {
        arrivals: std::mem::take(&mut r.arrivals),
        model_ns: std::mem::take(&mut r.model_ns),
        rss: std::mem::take(&mut r.rss),
    })
}

/// The samples after a 10% warm-up (at least one sample).
fn after_warm_up<T>(samples: &[T]) -> Option<&[T]> {
    samples.get((samples.len() / 10).max(1)..)
}

/// pddflow's milliseconds per frame in its two graphs over the frames [`fps`] times.
fn model_ms(run: &PipelineRun) -> Option<f64> {
    let timed = after_warm_up(&run.model_ns)?;
    let spent = timed.last()?.checked_sub(*timed.first()?)?;
    (timed.len() > 1).then(|| spent as f64 / 1e6 / (timed.len() - 1) as f64)
}

/// The median of a row's ratios, with their range when they were taken more than once:
/// "1.31 (1.25–1.40)".
fn ratio_text(ratios: &[f64]) -> String {
    let Some(mid) = median(ratios) else {
        return "–".into();
    };
    let (low, high) = ratios
        .iter()
        .fold((f64::MAX, f64::MIN), |(lo, hi), &r| (lo.min(r), hi.max(r)));
    if ratios.len() > 1 {
        format!("{mid:.2} ({low:.2}–{high:.2})")
    } else {
        format!("{mid:.2}")
    }
}

/// Frames per second over the arrivals after a 10% warm-up (at least one frame).
fn fps(arrivals: &[Instant]) -> Option<f64> {
    let timed = after_warm_up(arrivals)?;
    let span = timed.last()?.duration_since(*timed.first()?).as_secs_f64();
    (timed.len() > 1 && span > 0.0).then(|| (timed.len() - 1) as f64 / span)
}

fn pddflow_desc(args: &Args, threads: u32, mode: &str, overlay: bool, mask: &Path) -> String {
    pddflow_desc_at(args, args.e2e_working_size, threads, mode, overlay, mask)
}

/// [`pddflow_desc`] at another working size.
fn pddflow_desc_at(
    args: &Args,
    working_size: u32,
    threads: u32,
    mode: &str,
    overlay: bool,
    mask: &Path,
) -> String {
    let model = args
        .e2e_model
        .as_ref()
        .map(|m| format!(" model-location=\"{}\"", m.display()))
        .unwrap_or_default();
    format!(
        "pddflow mode={mode} overlay={overlay} threads={threads} working-size={working_size} execution-provider={} reference-mask=\"{}\"{model}",
        args.execution_provider,
        mask.display()
    )
}

fn caps(w: u32, h: u32) -> String {
    caps_of("GRAY8", w, h)
}

fn caps_of(format: &str, w: u32, h: u32) -> String {
    format!("video/x-raw,format={format},width={w},height={h},framerate=30/1")
}

fn run(mut args: Args) -> Result<(), String> {
    // With working-size 0 the element may run small frames at a larger input size; the
    // end-to-end rows compare frame sizes at one input size, so name it.
    if args.e2e_working_size == 0 {
        let model = match &args.e2e_model {
            Some(dir) => ModelFiles::from_dir(dir)?,
            None => ModelFiles::embedded()?,
        };
        let (w, h) = model.spec.default_working_size();
        args.e2e_working_size = w.max(h) as u32;
    }
    gst::init().map_err(|e| format!("GStreamer: {e}"))?;
    gstpddflow::plugin_register_static().map_err(|e| format!("plugin: {e}"))?;
    let skip = |s: &str| args.skip.iter().any(|k| k == s);
    let mut out = Out { md: String::new() };
    let gpu = args.execution_provider != "cpu";
    out.section("Machine", "");
    out.line(&format!("- CPU: {}", machine()));
    if gpu {
        out.line(&format!("- GPU: {}", gpu_name()));
    }
    out.line(&format!(
        "- execution provider asked for: {}",
        args.execution_provider
    ));

    // Models: the built-in one and those given.
    let mut models: Vec<(String, ModelFiles)> = Vec::new();
    if !args.no_builtin {
        match ModelFiles::embedded() {
            Ok(m) => models.push((format!("built-in ({} {})", m.spec.name, m.spec.version), m)),
            Err(e) => eprintln!("note: {e}"),
        }
    }
    for dir in &args.models {
        let m = ModelFiles::from_dir(dir)?;
        models.push((format!("{} ({})", dir.display(), m.spec.name), m));
    }

    // 1. Model only.
    let mut cached_ms: BTreeMap<(String, usize), f64> = BTreeMap::new();
    // The input sizes measured, for the OpenCV table.
    let mut model_sizes: Vec<String> = Vec::new();
    if !skip("model") {
        model_section(&args, &models, &mut cached_ms, &mut model_sizes, &mut out)?;
    }

    let tmp = tempfile_dir()?;
    // 2. End to end.
    if !skip("e2e") {
        e2e_section(&args, &models, &cached_ms, &tmp, &mut out)?;
    }

    // 7. Stages at frame size, 8. frame-size cost end to end.
    if !skip("stages") {
        stages_section(&args, &mut out)?;
    }
    if !skip("ratio") {
        ratio_section(&args, &tmp, &mut out)?;
    }

    // 3. Long run.
    if !skip("long") && args.long_frames > 0 {
        long_section(&args, &tmp, &mut out)?;
    }

    // 5. Soak (reported here, before OpenCV, with the other long runs).
    let mut soak_errors = 0;
    if args.soak_frames > 0 {
        soak_errors = soak_section(&args, &mut out)?;
    }

    // 6. Live runs (reported here, with the other long runs).
    if args.live_seconds > 0.0 {
        live_section(&args, &mut out)?;
    }

    // 4. OpenCV.
    if !skip("opencv") && !args.python.is_empty() {
        opencv_section(&args, &models, &model_sizes, &mut out)?;
    }

    out.section("Memory", "");
    match rss_kb() {
        Some((rss, hwm)) => out.line(&format!(
            "Peak resident memory of this benchmark process (VmHWM): {:.1} MB; at the end (VmRSS): {:.1} MB.",
            hwm as f64 / 1024.0,
            rss as f64 / 1024.0
        )),
        None => out.line("/proc/self/status unavailable: no memory figures."),
    }
    let _ = std::fs::remove_dir_all(&tmp);
    if let Some(path) = &args.markdown {
        std::fs::write(path, &out.md)
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        eprintln!("wrote {}", path.display());
    }
    if soak_errors > 0 {
        return Err(format!("the soak saw {soak_errors} errors (listed above)"));
    }
    Ok(())
}

/// Section 1, model only: each model at each working size and thread count, cached and
/// uncached. Fills in the cached times (the end-to-end overhead is taken over them) and the sizes
/// measured (the OpenCV table's).
fn model_section(
    args: &Args,
    models: &[(String, ModelFiles)],
    cached_ms: &mut BTreeMap<(String, usize), f64>,
    model_sizes: &mut Vec<String>,
    out: &mut Out,
) -> Result<(), String> {
    out.section(
        "Model only (ONNX Runtime, no GStreamer)",
        "Milliseconds per frame, mean (median) over repeated runs on a speckle-like image \
         pair. Cached = features of the current frame + flow (the reference's features are \
         kept, as pddflow does); uncached = features of both frames + flow.",
    );
    let mut rows = Vec::new();
    for &working_size in &args.working_sizes {
        if !models
            .iter()
            .any(|(_, m)| m.spec.size_for(working_size).is_ok())
        {
            return Err(format!(
                "--working-sizes {working_size}: no model takes it ({})",
                models
                    .iter()
                    .map(|(n, m)| format!("{n}: {}", m.spec.sizes_text()))
                    .collect::<Vec<_>>()
                    .join("; ")
            ));
        }
    }
    for (name, model) in models {
        let sizes = args
            .working_sizes
            .iter()
            .copied()
            .filter(|&s| model.spec.size_for(s).is_ok());
        for (working_size, t) in sizes.flat_map(|s| args.threads.iter().map(move |&t| (s, t))) {
            let size = model.spec.size_for(working_size)?;
            eprintln!(
                "model only: {name} at {}x{}, {t} thread(s)...",
                size.0, size.1
            );
            let r = model_only(model, name, t, working_size, args)?;
            model_sizes.push(format!("{}x{}", size.0, size.1));
            // The end-to-end runs' overhead is taken over the model at their size.
            if model.spec.size_for(args.e2e_working_size as usize) == Ok(size) {
                cached_ms.insert((name.clone(), t), r.cached.mean_ms);
            }
            let ms = |t: &Timings| format!("{:.2} ({:.2})", t.mean_ms, t.median_ms);
            rows.push(vec![
                r.name.clone(),
                format!("{}x{}", r.size.0, r.size.1),
                r.threads.to_string(),
                r.provider.clone(),
                ms(&r.features),
                ms(&r.flow),
                ms(&r.cached),
                ms(&r.uncached),
                format!("{:.2}x", r.uncached.mean_ms / r.cached.mean_ms),
                format!("{:.1}", 1000.0 / r.cached.mean_ms),
            ]);
        }
    }
    out.table(
        &[
            "model",
            "input",
            "threads",
            "provider",
            "features ms",
            "flow ms",
            "cached ms/frame",
            "uncached ms/frame",
            "caching speed-up",
            "cached fps",
        ],
        &rows,
    );
    Ok(())
}

/// Section 2, end to end: GStreamer pipelines per frame size, thread count, mode and overlay.
fn e2e_section(
    args: &Args,
    models: &[(String, ModelFiles)],
    cached_ms: &BTreeMap<(String, usize), f64>,
    tmp: &Path,
    out: &mut Out,
) -> Result<(), String> {
    let e2e_name = match &args.e2e_model {
        Some(dir) => {
            let m = ModelFiles::from_dir(dir)?;
            format!("{} ({})", dir.display(), m.spec.name)
        }
        None => models
            .iter()
            .find(|(n, _)| n.starts_with("built-in"))
            .map(|(n, _)| n.clone())
            .ok_or("the end-to-end runs need a model: this build has no built-in model; give --e2e-model DIR")?,
    };
    out.section(
        "End to end (GStreamer)",
        &format!(
            "`{} num-buffers={} ! {} ! pddflow threads={} ! fakesink sync=false`, model \
             {e2e_name}, a two-disc reference mask given with reference-mask. Frames per second \
             at the sink after a 10% warm-up. The source alone is timed too. Overhead = \
             end-to-end ms/frame minus model-only cached ms/frame at the same thread count \
             (luma extraction, resizing, warping the mask at frame size, overlay, metadata, \
             the source).",
            args.source,
            args.e2e_frames,
            caps(0, 0).replace("width=0,height=0", "width=W,height=H"),
            args.e2e_threads
                .iter()
                .map(|t| t.to_string())
                .collect::<Vec<_>>()
                .join("|")
        ),
    );
    let mut rows = Vec::new();
    for size in &args.sizes {
        let (w, h) = parse_size(size)?;
        let mask = write_mask(tmp, w, h)?;
        eprintln!("end to end: {w}x{h} source alone...");
        let src_only = run_pipeline(
            &format!(
                "{} num-buffers={} ! {} ! fakesink name=sink sync=false",
                args.source,
                args.e2e_frames,
                caps(w, h)
            ),
            0,
            None,
        )?;
        let src_fps = fps(&src_only.arrivals);
        for &threads in &args.e2e_threads {
            let model_ms = cached_ms
                .get(&(e2e_name.clone(), threads as usize))
                .copied();
            for mode in ["keyframe", "chain"] {
                for overlay in [false, true] {
                    eprintln!(
                        "end to end: {w}x{h} {threads} thread(s) {mode} overlay={overlay}..."
                    );
                    let run = run_pipeline(
                        &format!(
                            "{} num-buffers={} ! {} ! {} ! fakesink name=sink sync=false",
                            args.source,
                            args.e2e_frames,
                            caps(w, h),
                            pddflow_desc(args, threads, mode, overlay, &mask)
                        ),
                        0,
                        None,
                    )?;
                    let f = fps(&run.arrivals);
                    let ms = f.map(|f| 1000.0 / f);
                    rows.push(vec![
                        format!("{w}x{h}"),
                        threads.to_string(),
                        mode.to_string(),
                        if overlay { "on" } else { "off" }.to_string(),
                        f.map_or("–".into(), |f| format!("{f:.1}")),
                        ms.map_or("–".into(), |m| format!("{m:.2}")),
                        src_fps.map_or("–".into(), |f| format!("{:.2}", 1000.0 / f)),
                        match (ms, model_ms) {
                            (Some(e), Some(m)) => format!("{:+.2}", e - m),
                            _ => "–".into(),
                        },
                    ]);
                }
            }
        }
    }
    out.table(
        &[
            "frame",
            "threads",
            "mode",
            "overlay",
            "fps",
            "ms/frame",
            "source alone ms/frame",
            "overhead over model-only ms",
        ],
        &rows,
    );
    if rows.iter().any(|r| r[7] == "–") {
        out.line(&format!(
            "(Overhead – : no model-only row for {e2e_name} at that thread count.)"
        ));
    }
    Ok(())
}

/// Section 7, the element's frame-size stages, one by one, at each end-to-end size.
fn stages_section(args: &Args, out: &mut Out) -> Result<(), String> {
    let model = 128;
    out.section(
        "Frame-size stages",
        &format!(
            "What pddflow does per frame besides the model (chain mode, default overlay), stage \
             by stage on a synthetic RGBx frame with a two-disc mask and a smooth {model}x{model} \
             flow, mean ms over {} runs, in this process (rayon's pool for the warp). Alone: \
             `pddflow-bench --skip model,e2e,ratio,long,opencv --python \"\"`.",
            args.stage_iterations
        ),
    );
    let mut columns: Vec<Vec<stages::Stage>> = Vec::new();
    let mut header = vec!["stage".to_string(), "what".to_string()];
    for size in &args.sizes {
        let (w, h) = parse_size(size)?;
        eprintln!("stages: {w}x{h}...");
        columns.push(stages::run(
            w as usize,
            h as usize,
            model,
            args.stage_iterations.max(1),
        ));
        header.push(format!("{w}x{h} ms"));
    }
    let Some(first) = columns.first() else {
        return Ok(());
    };
    let mut rows: Vec<Vec<String>> = first
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let mut row = vec![s.name.to_string(), s.what.to_string()];
            row.extend(columns.iter().map(|c| format!("{:.2}", c[i].ms)));
            row
        })
        .collect();
    let mut total = vec!["total".to_string(), String::new()];
    total.extend(
        columns
            .iter()
            .map(|c| format!("{:.2}", c.iter().map(|s| s.ms).sum::<f64>())),
    );
    rows.push(total);
    let header: Vec<&str> = header.iter().map(String::as_str).collect();
    out.table(&header, &rows);
    Ok(())
}

/// Section 8, the frame-size cost end to end: `--ratio-size` RGBx with the overlay against
/// 256x256 GRAY8 without it, same working size, threads and mode; raw, and with the time the
/// source alone takes for each subtracted. The frames are drawn once and replayed from memory
/// (`appsrc`), so that the source costs a copy per frame, not the drawing.
fn ratio_section(args: &Args, tmp: &Path, out: &mut Out) -> Result<(), String> {
    let (w, h) = parse_size(&args.ratio_size)?;
    let threads = args.e2e_threads.first().copied().unwrap_or(1);
    out.section(
        "Frame-size cost end to end",
        &format!(
            "`appsrc ! pddflow threads={threads} working-size=S ! fakesink sync=false`, {} \
             frames of `{} ! videoconvert ! CAPS` drawn once and replayed from memory back and forth, each \
             pushed as a fresh copy (the source's only cost, on the streaming thread, as a \
             capture card hands over new buffers): {w}x{h} RGBx with overlay=true against \
             256x256 GRAY8 with overlay=false, {} frames, ms/frame at the sink after a 10% \
             warm-up, the two sizes run one after the other in each of {} rounds: medians, and \
             for the ratios the median and range of the rounds' ratios; \"net\" subtracts what the same pipeline without pddflow takes per \
             frame (the copy, mostly). 1.0 would \
             mean frame size costs nothing. Pipeline on: `pipeline=true`, each frame's model run \
             beside the previous frame's mask warp and read-out (one frame more latency). \
             \"Model alone\": the two graphs at the working size and thread count, cached \
             reference features, no GStreamer (as in \"Model only\"); the overhead is the 256x256 \
             net time over it. \"In the model, same run\": the time pddflow itself spent in its \
             graphs during the timed 256x256 frames (its `model-time` stat), so that the \
             overhead over it compares times taken together (with the pipeline on, the model's \
             time includes the slow-down from the read-out running beside it). Alone: `pddflow-bench --skip \
             model,e2e,stages,long,opencv --python \"\"`.",
            args.ratio_distinct_frames,
            args.ratio_source,
            args.ratio_frames,
            args.ratio_rounds.max(1)
        ),
    );
    let small_mask = write_mask(tmp, 256, 256)?;
    let large_mask = write_mask(tmp, w, h)?;
    let render = |format: &str, (w, h): (u32, u32)| {
        eprintln!("frame-size cost: drawing {w}x{h} {format} frames...");
        replay::Replay::render(
            &args.ratio_source,
            &caps_of(format, w, h),
            args.ratio_distinct_frames.max(1),
        )
    };
    let small_frames = render("GRAY8", (256, 256))?;
    let large_frames = render("RGBx", (w, h))?;
    let run_of = |frames: &replay::Replay, pipeline: String| {
        let run = run_pipeline(
            &format!("appsrc name=src ! {pipeline}"),
            0,
            Some((frames, u64::from(args.ratio_frames))),
        )?;
        Ok::<_, String>((fps(&run.arrivals).map(|f| 1000.0 / f), model_ms(&run)))
    };
    let source_ms = |frames: &replay::Replay, what: &str| {
        eprintln!("frame-size cost: {what} source alone...");
        run_of(frames, "fakesink name=sink sync=false".into()).map(|(ms, _)| ms)
    };
    let small_source = source_ms(&small_frames, "256x256 GRAY8")?;
    let large_source = source_ms(&large_frames, &format!("{w}x{h} RGBx"))?;
    let f = |v: Option<f64>| v.map_or("–".into(), |v| format!("{v:.2}"));
    let minus = |a: Option<f64>, b: Option<f64>| a.zip(b).map(|(a, b)| a - b);
    /// One round of a row: ms per frame of each size, and what the small frames spent in the
    /// model.
    struct Round {
        small: Option<f64>,
        small_model: Option<f64>,
        large: Option<f64>,
    }
    // The element's overhead is taken over its two graphs alone at the same size and threads.
    let model = match &args.e2e_model {
        Some(dir) => ModelFiles::from_dir(dir)?,
        None => ModelFiles::embedded()?,
    };
    let mut rows = Vec::new();
    for &requested in &args.ratio_working_sizes {
        let size = if requested == 0 {
            args.e2e_working_size
        } else {
            requested
        };
        eprintln!("frame-size cost: model alone at {size}, {threads} thread(s)...");
        let model_ms = model_only(&model, "e2e", threads as usize, size as usize, args)?
            .cached
            .mean_ms;
        for (mode, pipeline) in [
            ("keyframe", false),
            ("keyframe", true),
            ("chain", false),
            ("chain", true),
        ] {
            let ms = |frames: &replay::Replay, what: &str, overlay: bool, mask: &Path| {
                eprintln!(
                    "frame-size cost: {what} at {size} {mode} overlay={overlay} \
                     pipeline={pipeline}..."
                );
                run_of(
                    frames,
                    format!(
                        "{} pipeline={pipeline} ! fakesink name=sink sync=false",
                        pddflow_desc_at(args, size, threads, mode, overlay, mask)
                    ),
                )
            };
            // The two frame sizes one after the other, round after round.
            let mut rounds = Vec::new();
            for _ in 0..args.ratio_rounds.max(1) {
                let (small, small_model) = ms(&small_frames, "256x256 GRAY8", false, &small_mask)?;
                let (large, _) = ms(&large_frames, &format!("{w}x{h} RGBx"), true, &large_mask)?;
                rounds.push(Round {
                    small,
                    small_model,
                    large,
                });
            }
            let median_of = |pick: &dyn Fn(&Round) -> Option<f64>| {
                median(&rounds.iter().filter_map(pick).collect::<Vec<_>>())
            };
            let net_small = |r: &Round| minus(r.small, small_source);
            let net_large = |r: &Round| minus(r.large, large_source);
            let ratios = |pick: &dyn Fn(&Round) -> Option<(f64, f64)>| {
                let values: Vec<f64> = rounds
                    .iter()
                    .filter_map(pick)
                    .filter(|&(_, small)| small > 0.0)
                    .map(|(large, small)| large / small)
                    .collect();
                ratio_text(&values)
            };
            let (small, small_model, large) = (
                median_of(&|r| r.small),
                median_of(&|r| r.small_model),
                median_of(&|r| r.large),
            );
            let (small_net, large_net) = (median_of(&net_small), median_of(&net_large));
            let over = |model: Option<f64>| match (small_net, model) {
                (Some(net), Some(model)) if model > 0.0 => {
                    format!("{:+.0} %", 100.0 * (net - model) / model)
                }
                _ => "–".into(),
            };
            let overhead = over(Some(model_ms));
            rows.push(vec![
                size.to_string(),
                mode.to_string(),
                if pipeline { "on" } else { "off" }.to_string(),
                format!("{model_ms:.2}"),
                f(small),
                f(small_net),
                overhead,
                f(small_model),
                over(small_model),
                f(large),
                f(large_net),
                ratios(&|r| r.large.zip(r.small)),
                ratios(&|r| net_large(r).zip(net_small(r))),
            ]);
        }
    }
    out.table(
        &[
            "working size",
            "mode",
            "pipeline",
            "model alone ms/frame",
            "256x256 GRAY8 ms/frame",
            "net of its source",
            "its overhead over the model",
            "in the model, same run ms/frame",
            "its overhead over that",
            &format!("{w}x{h} RGBx + overlay ms/frame"),
            "net of its source",
            "ratio",
            "ratio net",
        ],
        &rows,
    );
    out.line(&format!(
        "Source alone (the replay's copy): 256x256 GRAY8 {} ms/frame, {w}x{h} RGBx {} ms/frame.",
        f(small_source),
        f(large_source)
    ));
    Ok(())
}

/// Section 3, memory over a long chain-mode run.
fn long_section(args: &Args, tmp: &Path, out: &mut Out) -> Result<(), String> {
    let (w, h) = parse_size(&args.long_size)?;
    let mask = write_mask(tmp, w, h)?;
    out.section(
        "Memory over a long run",
        &format!(
            "{} frames at {w}x{h}, chain mode, no overlay; RSS sampled at the sink every {} \
             frames; the first 20% are a warm-up. 100,000 frames: `pddflow-bench --skip \
             model,e2e,stages,ratio,opencv --long-frames 100000`.",
            args.long_frames,
            (args.long_frames / 50).max(1)
        ),
    );
    eprintln!("long run: {} frames at {w}x{h}...", args.long_frames);
    let t = Instant::now();
    let run = run_pipeline(
        &format!(
            "{} num-buffers={} ! {} ! {} ! fakesink name=sink sync=false",
            args.source,
            args.long_frames,
            caps(w, h),
            pddflow_desc(
                args,
                args.e2e_threads.first().copied().unwrap_or(1),
                "chain",
                false,
                &mask
            )
        ),
        (args.long_frames / 50).max(1),
        None,
    )?;
    let secs = t.elapsed().as_secs_f64();
    match rss_trend(&run.rss, 0.2, 4096) {
        Some(tr) => out.table(
            &[
                "frames",
                "seconds",
                "fps",
                "RSS after warm-up MB",
                "RSS at end MB",
                "max MB",
                "slope kB/1000 frames",
                "flat (< 4 MB growth)",
            ],
            &[vec![
                run.arrivals.len().to_string(),
                format!("{secs:.1}"),
                fps(&run.arrivals).map_or("–".into(), |f| format!("{f:.1}")),
                format!("{:.1}", tr.start_kb as f64 / 1024.0),
                format!("{:.1}", tr.end_kb as f64 / 1024.0),
                format!("{:.1}", tr.max_kb as f64 / 1024.0),
                format!("{:.1}", tr.slope_kb_per_1000),
                if tr.flat { "yes" } else { "NO" }.to_string(),
            ]],
        ),
        None => out.line("Too few RSS samples for a trend (raise --long-frames)."),
    }
    Ok(())
}

/// Section 4, OpenCV's flow timings (scripts/baselines.py time) at the model and frame sizes.
fn opencv_section(
    args: &Args,
    models: &[(String, ModelFiles)],
    model_sizes: &[String],
    out: &mut Out,
) -> Result<(), String> {
    let mut sizes: Vec<String> = if args.opencv_sizes.is_empty() {
        let mut s: Vec<String> = if model_sizes.is_empty() {
            models
                .iter()
                .map(|(_, m)| format!("{}x{}", m.spec.input_width, m.spec.input_height))
                .collect()
        } else {
            model_sizes.to_vec()
        };
        s.extend(args.sizes.iter().cloned());
        s
    } else {
        args.opencv_sizes.clone()
    };
    sizes.dedup();
    let mut seen = std::collections::BTreeSet::new();
    sizes.retain(|s| seen.insert(s.clone()));
    let threads: Vec<String> = args.threads.iter().map(|t| t.to_string()).collect();
    eprintln!("OpenCV: {} sizes...", sizes.len());
    let output = std::process::Command::new(&args.python)
        .arg(&args.baselines)
        .args([
            "time",
            "--sizes",
            &sizes.join(","),
            "--threads",
            &threads.join(","),
        ])
        .args(["--frames", "20", "--max-seconds", "1.5", "--json", "-"])
        .stderr(std::process::Stdio::inherit())
        .output();
    out.section(
        "OpenCV optical flow (scripts/baselines.py time)",
        "Flow only (no warping), milliseconds per frame pair, mean (median), on a speckle-like \
         pair, with cv2.setNumThreads(threads). Farneback with OpenCV's example parameters; \
         DIS with its presets.",
    );
    match output {
        Ok(o) if o.status.success() => {
            let v: serde_json::Value = serde_json::from_slice(&o.stdout)
                .map_err(|e| format!("baselines.py time printed no JSON: {e}"))?;
            let rows: Vec<Vec<String>> = v["rows"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .map(|r| {
                            vec![
                                r["method"].as_str().unwrap_or("?").to_string(),
                                format!("{}x{}", r["width"], r["height"]),
                                r["threads"].to_string(),
                                format!(
                                    "{:.2} ({:.2})",
                                    r["mean_ms"].as_f64().unwrap_or(f64::NAN),
                                    r["median_ms"].as_f64().unwrap_or(f64::NAN)
                                ),
                                format!(
                                    "{:.1}",
                                    1000.0 / r["mean_ms"].as_f64().unwrap_or(f64::NAN)
                                ),
                            ]
                        })
                        .collect()
                })
                .unwrap_or_default();
            out.line(&format!(
                "OpenCV {}",
                v["opencv"].as_str().unwrap_or("(unknown version)")
            ));
            out.table(&["method", "size", "threads", "ms/frame", "fps"], &rows);
        }
        Ok(o) => out.line(&format!(
            "OpenCV timings failed ({} exited with {}); give --python with opencv-python-headless",
            args.python, o.status
        )),
        Err(e) => out.line(&format!(
            "OpenCV timings skipped: cannot run {}: {e}",
            args.python
        )),
    }
    Ok(())
}

/// Runs the live source through pddflow with and without `skip-late` and reports both.
fn live_section(args: &Args, out: &mut Out) -> Result<(), String> {
    let size = parse_size(&args.live_size)?;
    let threads = args.e2e_threads.first().copied().unwrap_or(1);
    let model = args
        .e2e_model
        .as_ref()
        .map(|m| format!(" model-location=\"{}\"", m.display()))
        .unwrap_or_default();
    out.section(
        "Live source faster than the model",
        &format!(
            "`videotestsrc is-live=true ! {} {}x{} @ {} fps ! pddflow mode=chain overlay=true \
             threads={threads} reference-mask=(vein + artery) ! fakesink sync=true qos=true`, {:.0} s \
             each. \"in pddflow\": a frame's time from pddflow's sink pad to its src pad; \"delay at \
             sink\": from its capture (running time) to its arrival at the sink, which grows \
             without bound when frames queue up. Alone: `pddflow-bench --skip model,e2e,stages,ratio,long,opencv \
             --live-seconds {:.0}`.",
            args.live_format, size.0, size.1, args.live_fps, args.live_seconds, args.live_seconds
        ),
    );
    let ms = |ns: Option<u64>| ns.map_or("–".into(), |v| format!("{:.1}", v as f64 / 1e6));
    let mut rows = vec![];
    for (skip_late, pipeline) in [(true, false), (false, false), (true, true)] {
        let config = live::Config {
            seconds: args.live_seconds,
            size,
            fps: args.live_fps,
            format: args.live_format.clone(),
            pddflow_properties: format!(
                "mode=chain overlay=true threads={threads} execution-provider={} skip-late={skip_late} \
                 pipeline={pipeline}{model}",
                args.execution_provider
            ),
        };
        let setting = format!("skip-late={skip_late} pipeline={pipeline}");
        eprintln!("live run, {setting}: {:.0} s...", args.live_seconds);
        let r = live::run(&config)?;
        rows.push(vec![
            setting,
            format!("{:.1}", r.frames as f64 / r.seconds),
            format!(
                "{} ({:.0} %)",
                r.skipped,
                100.0 * r.skipped as f64 / r.frames.max(1) as f64
            ),
            format!(
                "{} / {}",
                ms(live::quantile(&r.processing_ns, 0.5)),
                ms(live::quantile(&r.processing_ns, 0.99))
            ),
            format!(
                "{} / {}",
                ms(live::quantile(&r.delay_ns, 0.5)),
                ms(live::quantile(&r.delay_ns, 0.99))
            ),
            ms(Some(r.reported_latency_ns)),
        ]);
    }
    out.table(
        &[
            "setting",
            "frames/s at sink",
            "skipped",
            "in pddflow p50 / p99 ms",
            "delay at sink p50 / p99 ms",
            "reported latency ms",
        ],
        &rows,
    );
    Ok(())
}

/// Runs the soak and reports it; returns the number of errors it saw.
fn soak_section(args: &Args, out: &mut Out) -> Result<usize, String> {
    let sizes = args
        .soak_sizes
        .iter()
        .map(|s| parse_size(s))
        .collect::<Result<Vec<_>, _>>()?;
    let model = args.soak_model.as_ref().or(args.e2e_model.as_ref());
    let config = soak::Config {
        pipelines: args.soak_pipelines,
        frames: args.soak_frames,
        sizes: sizes.clone(),
        every: args.soak_every.max(1),
        pddflow_properties: format!(
            "threads={} execution-provider={}{}",
            args.e2e_threads.first().copied().unwrap_or(1),
            args.execution_provider,
            model
                .map(|m| format!(" model-location=\"{}\"", m.display()))
                .unwrap_or_default()
        ),
    };
    let sizes: Vec<String> = sizes.iter().map(|(w, h)| format!("{w}x{h}")).collect();
    eprintln!(
        "soak: {} pipelines, {} frames in all...",
        config.pipelines, config.frames
    );
    let report = soak::run(&config)?;
    out.section(
        "Soak",
        &format!(
            "{} pipelines `usphantomsrc ! capsfilter ! pddflow ! fakesink` in one process ({}), \
             {} frames in all at {}; every {} frames each pipeline is disturbed in turn: {}. \
             RSS of the process sampled every ~{} frames while the pipelines run (the first 20% \
             are a warm-up), and once they are closed. \
             Alone: `pddflow-bench --skip model,e2e,stages,ratio,long,opencv --soak-frames {}`.",
            config.pipelines,
            model.map_or("built-in model".into(), |m| m.display().to_string()),
            report.frames,
            sizes.join(" and "),
            config.every,
            report.disturbance_summary(),
            (config.frames / 200).max(1),
            config.frames
        ),
    );
    let mb = |kb: u64| format!("{:.1}", kb as f64 / 1024.0);
    let trend = pddflow_tools::eval::bench::rss_trend(&report.rss, 0.2, 4096);
    out.table(
        &[
            "frames",
            "seconds",
            "fps (all)",
            "errors",
            "warnings",
            "RSS at start MB",
            "RSS after warm-up MB",
            "RSS at end MB",
            "slope kB/1000 frames",
            "flat (< 4 MB growth)",
            "RSS after closing MB",
        ],
        &[vec![
            report.frames.to_string(),
            format!("{:.1}", report.seconds),
            format!("{:.1}", report.frames as f64 / report.seconds.max(1e-9)),
            report.errors.len().to_string(),
            report.warnings.to_string(),
            mb(report.rss_before_kb),
            trend.as_ref().map_or("–".into(), |t| mb(t.start_kb)),
            trend.as_ref().map_or("–".into(), |t| mb(t.end_kb)),
            trend
                .as_ref()
                .map_or("–".into(), |t| format!("{:.1}", t.slope_kb_per_1000)),
            trend
                .as_ref()
                .map_or("–", |t| if t.flat { "yes" } else { "NO" })
                .to_string(),
            mb(report.rss_closed_kb),
        ]],
    );
    out.line(
        "Warnings are expected: each size change re-anchors with a warning. Errors must be 0. \
         The pipelines reach their share of frames at different times and close one by one, so \
         the last samples (and the slope) include that wind-down.",
    );
    for e in &report.errors {
        eprintln!("soak error: {e}");
    }
    Ok(report.errors.len())
}

fn tempfile_dir() -> Result<PathBuf, String> {
    let dir = std::env::temp_dir().join(format!("pddflow-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::ratio_text;

    #[test]
    fn ratios_read_as_their_median_and_range() {
        assert_eq!(ratio_text(&[1.40, 1.25, 1.31]), "1.31 (1.25–1.40)");
        assert_eq!(ratio_text(&[1.2, 1.4]), "1.30 (1.20–1.40)");
        assert_eq!(ratio_text(&[1.5]), "1.50");
        assert_eq!(ratio_text(&[]), "–");
    }
}
