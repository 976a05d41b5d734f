//! Phantom generation speed: `cargo bench --bench phantom`.
//!
//! Times rendering of 256x256 frames (image, label map and ground-truth flow) on one thread
//! and on all threads (one sequence per task, as the dataset writer does), and prints frames
//! per second. Writing PNG/.flo files is not included: `pddflow-phantom` reports that rate.

use std::hint::black_box;
use std::time::Instant;

use rayon::prelude::*;

use gstpddflow::phantom::{Phantom, PhantomParams};

const FRAMES: u64 = 400;

use pddflow_tools::phantom_dataset::process_cpu_seconds as cpu_seconds;

fn report(label: &str, frames: u64, wall: f64, cpu: Option<f64>, threads: usize) {
    let mut line = format!(
        "{label}: {frames} frames of {SIZE}x{SIZE} in {wall:.2} s = {:.1} frames/s",
        frames as f64 / wall
    );
    if let Some(cpu) = cpu {
        let per_frame = cpu / frames as f64;
        line += &format!(
            "; CPU {:.2} ms/frame = {:.1} frames/s per core, {:.1} frames/s on {threads} idle cores",
            per_frame * 1e3,
            1.0 / per_frame,
            threads as f64 / per_frame
        );
    }
    println!("{line}");
}
const SIZE: usize = 256;

fn params(seed: u64) -> PhantomParams {
    PhantomParams {
        width: SIZE,
        height: SIZE,
        seed,
        veins: 2,
        arteries: 2,
        ..Default::default()
    }
}

fn main() {
    let start = Instant::now();
    let phantom = Phantom::new(params(1)).expect("valid parameters");
    let setup = start.elapsed().as_secs_f64();
    println!(
        "setup: {:.1} ms per sequence ({} scatterers)",
        setup * 1e3,
        phantom.scatterer_count()
    );

    let mut workspace = phantom.workspace();
    black_box(phantom.frame(0, &mut workspace));
    let cpu_start = cpu_seconds();
    let start = Instant::now();
    for index in 0..FRAMES {
        black_box(phantom.frame(index, &mut workspace));
    }
    let wall = start.elapsed().as_secs_f64();
    let cpu = cpu_seconds().zip(cpu_start).map(|(end, start)| end - start);
    report("1 thread", FRAMES, wall, cpu, 1);

    let threads = rayon::current_num_threads();
    let sequences = (threads * 2) as u64;
    let per_sequence = FRAMES / sequences;
    let cpu_start = cpu_seconds();
    let start = Instant::now();
    (0..sequences).into_par_iter().for_each(|seed| {
        let phantom = Phantom::new(params(seed)).expect("valid parameters");
        let mut workspace = phantom.workspace();
        for index in 0..per_sequence {
            black_box(phantom.frame(index, &mut workspace));
        }
    });
    let wall = start.elapsed().as_secs_f64();
    let cpu = cpu_seconds().zip(cpu_start).map(|(end, start)| end - start);
    report(
        &format!("{threads} threads, {sequences} sequences, setup included"),
        sequences * per_sequence,
        wall,
        cpu,
        threads,
    );
}
