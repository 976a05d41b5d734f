//! `pddflow-phantom`: writes synthetic ultrasound sequences with exact ground truth (label maps
//! and backward flow to the first frame) in the project's dataset layout, in parallel.
//!
//! ```text
//! pddflow-phantom --out DIR --sequences 20 --frames 150 --size 256x256 --seed 1
//! pddflow-phantom --compare docs/phantom-vs-real.png --real ../shared/data/carotid
//! ```

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::Parser;
use image::imageops::FilterType;
use image::GrayImage;
use indicatif::{ProgressBar, ProgressStyle};

use gstpddflow::phantom::{Phantom, PhantomParams};
use pddflow_tools::phantom_dataset::{process_cpu_seconds, write_dataset, DatasetOptions};

#[derive(Parser, Debug)]
#[command(
    version,
    about = "Writes synthetic B-mode ultrasound sequences (leg compression exams) \
with label maps and ground-truth flow, in pddflow's dataset layout"
)]
struct Cli {
    /// Dataset directory to write (created if missing).
    #[arg(long, required_unless_present = "compare")]
    out: Option<PathBuf>,
    /// Number of sequences.
    #[arg(long, default_value_t = 10)]
    sequences: usize,
    /// Frames per sequence.
    #[arg(long, default_value_t = 100)]
    frames: usize,
    /// Frame size, WIDTHxHEIGHT in pixels.
    #[arg(long, default_value = "256x256", value_parser = parse_size)]
    size: (usize, usize),
    /// Master seed: sequence i uses a seed derived from it and i.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Frame rate in frames per second (sets the time step of all motion).
    #[arg(long, default_value_t = 30.0)]
    fps: f64,
    /// Worker threads (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
    /// Use the default probe, anatomy and motion settings for every sequence instead of
    /// drawing them per sequence.
    #[arg(long)]
    fixed: bool,
    /// Fraction of sequences whose main vein is thrombosed (when not --fixed).
    #[arg(long, default_value_t = 0.3)]
    thrombosed_fraction: f64,
    /// Hide the progress bar.
    #[arg(long)]
    quiet: bool,
    /// Instead of a dataset, write a side-by-side PNG of phantom frames (top row) and real
    /// frames (bottom row) to this path.
    #[arg(long)]
    compare: Option<PathBuf>,
    /// Folder of real recordings (`<recording>/frames/*.png`) for --compare.
    #[arg(long, default_value = "../shared/data/carotid")]
    real: PathBuf,
}

fn parse_size(s: &str) -> Result<(usize, usize), String> {
    let (w, h) = s
        .split_once(['x', 'X'])
        .ok_or_else(|| format!("expected WIDTHxHEIGHT, got {s:?}"))?;
    let parse = |v: &str| v.trim().parse::<usize>().map_err(|e| format!("{v:?}: {e}"));
    Ok((parse(w)?, parse(h)?))
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    if let Some(threads) = cli.threads {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads.max(1))
            .build_global()
            .context("setting up the thread pool")?;
    }
    if let Some(path) = &cli.compare {
        return write_comparison(path, &cli.real, cli.size);
    }
    let Some(out) = cli.out.clone() else {
        bail!("--out is required");
    };
    let options = DatasetOptions {
        out,
        sequences: cli.sequences,
        frames: cli.frames,
        width: cli.size.0,
        height: cli.size.1,
        fps: cli.fps,
        seed: cli.seed,
        randomize: !cli.fixed,
        thrombosed_fraction: cli.thrombosed_fraction,
        base: PhantomParams::default(),
    };
    // Fail early on a bad size or rate rather than in a worker.
    Phantom::new(PhantomParams {
        width: options.width,
        height: options.height,
        fps: options.fps,
        ..Default::default()
    })
    .context("invalid settings")?;

    let total = (options.sequences * options.frames) as u64;
    let bar = if cli.quiet {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(total)
    };
    bar.set_style(
        ProgressStyle::with_template(
            "{elapsed_precise} [{bar:40}] {pos}/{len} frames ({per_sec}, eta {eta})",
        )
        .context("progress style")?
        .progress_chars("=> "),
    );
    let cpu_start = process_cpu_seconds();
    let start = Instant::now();
    let written = write_dataset(&options, &|n| bar.inc(n))?;
    bar.finish();
    let seconds = start.elapsed().as_secs_f64();
    let threads = rayon::current_num_threads();
    println!(
        "wrote {written} frames in {} sequences to {} in {seconds:.2} s: {:.1} frames/s on {threads} threads",
        options.sequences,
        options.out.display(),
        written as f64 / seconds.max(1e-9),
    );
    // Wall-clock rate depends on what else runs; CPU time per frame does not (much).
    if let Some(cpu) = process_cpu_seconds()
        .zip(cpu_start)
        .map(|(end, start)| end - start)
    {
        let per_frame = cpu / written.max(1) as f64;
        println!(
            "CPU {:.2} ms per frame (rendering and writing): {:.1} frames/s per core, {:.1} frames/s on {threads} idle cores",
            per_frame * 1e3,
            1.0 / per_frame.max(1e-9),
            threads as f64 / per_frame.max(1e-9)
        );
    }
    Ok(())
}

/// Tile size of the comparison picture.
const TILE: u32 = 256;
const GAP: u32 = 6;

fn phantom_tiles(size: (usize, usize)) -> Result<Vec<GrayImage>> {
    // A healthy femoral exam at rest and at peak compression, a thrombosed vein at peak
    // compression, and a deeper, lower-frequency view.
    let base = PhantomParams {
        width: size.0,
        height: size.1,
        ..Default::default()
    };
    let shots = [
        (
            PhantomParams {
                seed: 11,
                ..base.clone()
            },
            0u64,
        ),
        (
            PhantomParams {
                seed: 11,
                ..base.clone()
            },
            45,
        ),
        (
            PhantomParams {
                seed: 5,
                thrombosed: true,
                veins: 2,
                ..base.clone()
            },
            45,
        ),
        (
            PhantomParams {
                seed: 23,
                depth_mm: 50.0,
                frequency_mhz: 6.0,
                arteries: 2,
                ..base
            },
            20,
        ),
    ];
    shots
        .into_iter()
        .map(|(params, index)| {
            let phantom = Phantom::new(params)?;
            let frame = phantom.frame(index, &mut phantom.workspace());
            let image = GrayImage::from_raw(size.0 as u32, size.1 as u32, frame.image)
                .context("frame size")?;
            Ok(image::imageops::resize(
                &image,
                TILE,
                TILE,
                FilterType::Triangle,
            ))
        })
        .collect()
}

fn real_tiles(real: &Path, count: usize) -> Result<Vec<GrayImage>> {
    let mut recordings: Vec<PathBuf> = std::fs::read_dir(real)
        .with_context(|| format!("reading {}", real.display()))?
        .filter_map(|e| e.ok().map(|e| e.path().join("frames")))
        .filter(|p| p.is_dir())
        .collect();
    recordings.sort();
    let mut tiles = Vec::new();
    for frames in recordings.iter().take(count) {
        let mut files: Vec<PathBuf> = std::fs::read_dir(frames)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "png"))
            .collect();
        files.sort();
        let Some(first) = files.first() else { continue };
        let image = image::open(first)
            .with_context(|| format!("reading {}", first.display()))?
            .into_luma8();
        tiles.push(image::imageops::resize(
            &image,
            TILE,
            TILE,
            FilterType::Triangle,
        ));
    }
    if tiles.is_empty() {
        bail!("no real frames under {}", real.display());
    }
    Ok(tiles)
}

fn write_comparison(path: &Path, real: &Path, size: (usize, usize)) -> Result<()> {
    let rows = [phantom_tiles(size)?, real_tiles(real, 4)?];
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0) as u32;
    let width = columns * TILE + (columns + 1) * GAP;
    let height = rows.len() as u32 * TILE + (rows.len() as u32 + 1) * GAP;
    let mut canvas = GrayImage::from_pixel(width, height, image::Luma([255]));
    for (r, row) in rows.iter().enumerate() {
        for (c, tile) in row.iter().enumerate() {
            let x = GAP + c as u32 * (TILE + GAP);
            let y = GAP + r as u32 * (TILE + GAP);
            image::imageops::replace(&mut canvas, tile, x as i64, y as i64);
        }
    }
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    canvas
        .save(path)
        .with_context(|| format!("writing {}", path.display()))?;
    println!(
        "wrote {} (top: phantom, bottom: real frames from {})",
        path.display(),
        real.display()
    );
    Ok(())
}
