//! The live run: a live source faster than the model (`videotestsrc is-live=true` at a given
//! size and frame rate) through `pddflow` into a synchronised sink that sends QoS events, for a
//! fixed wall-clock time. Per frame: the time spent in `pddflow` (its sink pad to its src pad)
//! and the end-to-end delay, how far behind the clock a frame reaches the sink (its capture
//! running time to its arrival); and the latency `pddflow` reported, the frames it skipped.

use gst::prelude::*;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub struct Config {
    pub seconds: f64,
    pub size: (u32, u32),
    pub fps: u32,
    /// Raw video format of the frames, e.g. `RGBx`.
    pub format: String,
    /// `pddflow` properties (threads, provider, model, overlay, skip-late ...).
    pub pddflow_properties: String,
}

#[derive(Default)]
pub struct Report {
    /// Frames that reached the sink.
    pub frames: u64,
    pub skipped: u64,
    /// Nanoseconds each frame spent in `pddflow`.
    pub processing_ns: Vec<u64>,
    /// Nanoseconds between a frame's capture (its running time) and its arrival at the sink.
    pub delay_ns: Vec<u64>,
    /// What `pddflow` answers to the latency query at the end (`stats` → `latency`).
    pub reported_latency_ns: u64,
    pub seconds: f64,
}

/// The `q`-quantile (0–1) of `values`, nearest rank; `None` when empty.
pub fn quantile(values: &[u64], q: f64) -> Option<u64> {
    let mut sorted = values.to_vec();
    sorted.sort_unstable();
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len().max(1));
    sorted.get(rank - 1).copied()
}

/// A label map with a vein and an artery, as a PNG in `dir`, for the reference mask.
fn reference_mask(dir: &std::path::Path, (w, h): (u32, u32)) -> Result<String, String> {
    let (w, h) = (w as usize, h as usize);
    let mut mask = gstpddflow::flow::LabelMap::new(w, h);
    let r = (w.min(h) / 10) as isize;
    for (cx, cy, label) in [(w / 3, h / 2, 1u8), (2 * w / 3, h / 2, 2u8)] {
        for y in 0..h {
            for x in 0..w {
                let (dx, dy) = (x as isize - cx as isize, y as isize - cy as isize);
                if dx * dx + dy * dy <= r * r {
                    mask.data[y * w + x] = label;
                }
            }
        }
    }
    let path = dir.join(format!("live-mask-{w}x{h}.png"));
    mask.save_png(&path)
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    Ok(path.display().to_string())
}

pub fn run(config: &Config) -> Result<Report, String> {
    let dir = std::env::temp_dir().join(format!("pddflow-bench-live-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let mask = reference_mask(&dir, config.size);
    let report = mask.and_then(|mask| run_with_mask(config, &mask));
    let _ = std::fs::remove_dir_all(&dir);
    report
}

fn run_with_mask(config: &Config, mask: &str) -> Result<Report, String> {
    let (w, h) = config.size;
    let description = format!(
        "videotestsrc is-live=true pattern=ball ! video/x-raw,format={},width={w},height={h},framerate={}/1 \
         ! pddflow name=flow reference-mask=\"{mask}\" {} ! fakesink name=sink sync=true qos=true",
        config.format, config.fps, config.pddflow_properties
    );
    let pipeline = super::launch(&description)?;
    let flow = pipeline.by_name("flow").ok_or("no pddflow")?;
    let sink = pipeline.by_name("sink").ok_or("no sink")?;

    // Arrival time in pddflow by PTS, taken out when the frame leaves it.
    let entered: Arc<Mutex<HashMap<u64, Instant>>> = Arc::default();
    let processing: Arc<Mutex<Vec<u64>>> = Arc::default();
    let delays: Arc<Mutex<Vec<u64>>> = Arc::default();
    {
        let entered = entered.clone();
        flow.static_pad("sink").ok_or("no sink pad")?.add_probe(
            gst::PadProbeType::BUFFER,
            move |_, info| {
                if let Some(pts) = info.buffer().and_then(|b| b.pts()) {
                    lock_ignoring_poison(&entered).insert(pts.nseconds(), Instant::now());
                }
                gst::PadProbeReturn::Ok
            },
        );
    }
    {
        let entered = entered.clone();
        let processing = processing.clone();
        flow.static_pad("src").ok_or("no src pad")?.add_probe(
            gst::PadProbeType::BUFFER,
            move |_, info| {
                if let Some(pts) = info.buffer().and_then(|b| b.pts()) {
                    if let Some(t) = lock_ignoring_poison(&entered).remove(&pts.nseconds()) {
                        lock_ignoring_poison(&processing).push(t.elapsed().as_nanos() as u64);
                    }
                }
                gst::PadProbeReturn::Ok
            },
        );
    }
    {
        let delays = delays.clone();
        let sink_element = sink.clone();
        sink.static_pad("sink").ok_or("no sink pad")?.add_probe(
            gst::PadProbeType::BUFFER,
            move |pad, info| {
                let running = info.buffer().and_then(|b| b.pts()).and_then(|pts| {
                    let segment = pad.sticky_event::<gst::event::Segment>(0)?;
                    segment
                        .segment()
                        .downcast_ref::<gst::ClockTime>()?
                        .to_running_time(pts)
                });
                let now = sink_element
                    .clock()
                    .map(|c| c.time())
                    .zip(sink_element.base_time())
                    .map(|(now, base)| now.saturating_sub(base));
                if let (Some(running), Some(now)) = (running, now) {
                    lock_ignoring_poison(&delays).push(now.saturating_sub(running).nseconds());
                }
                gst::PadProbeReturn::Ok
            },
        );
    }

    let bus = pipeline.bus().ok_or("no bus")?;
    pipeline
        .set_state(gst::State::Playing)
        .map_err(|e| format!("cannot start the live pipeline: {e}"))?;
    let started = Instant::now();
    let deadline = started + Duration::from_secs_f64(config.seconds);
    let mut error = None;
    while Instant::now() < deadline {
        let Some(msg) = bus.timed_pop_filtered(
            gst::ClockTime::from_mseconds(100),
            &[gst::MessageType::Error, gst::MessageType::Latency],
        ) else {
            continue;
        };
        match msg.view() {
            gst::MessageView::Error(e) => {
                error = Some(format!("{}: {:?}", e.error(), e.debug()));
                break;
            }
            // As a pipeline in an application must: recompute the latency when asked.
            gst::MessageView::Latency(_) => {
                let _ = pipeline.recalculate_latency();
            }
            _ => {}
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    let stats = flow.property::<gst::Structure>("stats");
    let _ = pipeline.set_state(gst::State::Null);
    if let Some(e) = error {
        return Err(format!("live run: {e}"));
    }
    let delay_ns = std::mem::take(&mut *lock_ignoring_poison(&delays));
    let processing_ns = std::mem::take(&mut *lock_ignoring_poison(&processing));
    Ok(Report {
        frames: delay_ns.len() as u64,
        skipped: stats.get::<u64>("skipped").unwrap_or(0),
        reported_latency_ns: stats.get::<u64>("latency").unwrap_or(0),
        processing_ns,
        delay_ns,
        seconds,
    })
}

/// Locks a mutex that a panicking probe may have poisoned (the numbers stay usable).
fn lock_ignoring_poison<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::quantile;

    #[test]
    fn nearest_rank_quantiles() {
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(quantile(&v, 0.5), Some(50));
        assert_eq!(quantile(&v, 0.99), Some(99));
        assert_eq!(quantile(&v, 1.0), Some(100));
        assert_eq!(quantile(&[7], 0.99), Some(7));
        assert_eq!(quantile(&[], 0.5), None);
    }
}
