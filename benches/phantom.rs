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
    let start = Instant::now();
    for index in 0..FRAMES {
        black_box(phantom.frame(index, &mut workspace));
    }
    let single = start.elapsed().as_secs_f64();
    println!(
        "single thread: {FRAMES} frames of {SIZE}x{SIZE} in {single:.2} s = {:.1} frames/s ({:.2} ms/frame)",
        FRAMES as f64 / single,
        single * 1e3 / FRAMES as f64
    );

    let threads = rayon::current_num_threads();
    let sequences = (threads * 2) as u64;
    let per_sequence = FRAMES / sequences;
    let start = Instant::now();
    (0..sequences).into_par_iter().for_each(|seed| {
        let phantom = Phantom::new(params(seed)).expect("valid parameters");
        let mut workspace = phantom.workspace();
        for index in 0..per_sequence {
            black_box(phantom.frame(index, &mut workspace));
        }
    });
    let multi = start.elapsed().as_secs_f64();
    let frames = sequences * per_sequence;
    println!(
        "{threads} threads: {frames} frames in {sequences} sequences in {multi:.2} s = {:.1} frames/s (setup included)",
        frames as f64 / multi
    );
}
