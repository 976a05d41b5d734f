//! Writes phantom sequences in the project's dataset layout:
//!
//! ```text
//! DIR/<sequence>/frames/NNNNNN.png   8-bit B-mode frames
//! DIR/<sequence>/masks/NNNNNN.png    label maps (0 background, 1 vein, 2 artery)
//! DIR/<sequence>/flow/NNNNNN.flo     backward flow to the sequence's first frame
//! DIR/<sequence>/meta.json           source, seed, pixel spacing, frame rate, parameters
//! ```

use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use image::codecs::png::{CompressionType, FilterType, PngEncoder};
use image::{ExtendedColorType, ImageEncoder};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use gstpddflow::flow::flo::write_flo;
use gstpddflow::flow::labels;
use gstpddflow::phantom::imaging::mix_seed;
use gstpddflow::phantom::PhantomParams;
use gstpddflow::phantom::{Frame, Phantom};

/// CPU time (user + system) this process has used, in seconds, from `/proc/self/stat`
/// (Linux); `None` elsewhere. On a shared machine it measures cost regardless of other load.
pub fn process_cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = stat.rsplit_once(')')?.1;
    let mut fields = rest.split_whitespace().skip(11);
    let user: f64 = fields.next()?.parse().ok()?;
    let system: f64 = fields.next()?.parse().ok()?;
    // USER_HZ is 100 on Linux.
    Some((user + system) / 100.0)
}

/// What to write.
#[derive(Clone, Debug)]
pub struct DatasetOptions {
    pub out: PathBuf,
    pub sequences: usize,
    pub frames: usize,
    pub width: usize,
    pub height: usize,
    pub fps: f64,
    pub seed: u64,
    /// Draw probe, anatomy and motion settings per sequence (else use `base` for all).
    pub randomize: bool,
    /// Fraction of randomised sequences whose main vein is thrombosed.
    pub thrombosed_fraction: f64,
    /// Settings when not randomising (size, rate and seed are overridden per sequence).
    pub base: PhantomParams,
}

/// Name of sequence `index`.
pub fn sequence_name(index: usize) -> String {
    format!("phantom-{index:04}")
}

/// The parameters of sequence `index`: reproducible from the options alone.
pub fn sequence_params(options: &DatasetOptions, index: usize) -> PhantomParams {
    let seed = mix_seed(options.seed, index as u64);
    let mut params = PhantomParams {
        width: options.width,
        height: options.height,
        fps: options.fps,
        seed,
        ..options.base.clone()
    };
    if options.randomize {
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5eed_0f5e);
        params.frequency_mhz = rng.random_range(5.0..12.0);
        params.depth_mm = rng.random_range(30.0..50.0);
        params.dynamic_range_db = rng.random_range(50.0..70.0);
        params.gain_db = rng.random_range(-4.0..4.0);
        params.veins = rng.random_range(1..=2);
        params.arteries = rng.random_range(1..=2);
        params.thrombosed = rng.random_bool(options.thrombosed_fraction.clamp(0.0, 1.0));
        params.compression_depth_mm = rng.random_range(7.0..12.0);
        params.compression_period_s = rng.random_range(2.0..4.5);
        params.heart_rate_bpm = rng.random_range(50.0..100.0);
        params.motion_amplitude = rng.random_range(0.4..1.6);
    }
    params
}

/// Writes an 8-bit gray PNG with fast compression (the dataset writer is I/O-heavy).
pub fn write_gray_png(path: &Path, width: usize, height: usize, data: &[u8]) -> Result<()> {
    let file = File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let encoder =
        PngEncoder::new_with_quality(BufWriter::new(file), CompressionType::Fast, FilterType::Sub);
    encoder
        .write_image(data, width as u32, height as u32, ExtendedColorType::L8)
        .with_context(|| format!("writing {}", path.display()))
}

fn meta_json(name: &str, phantom: &Phantom, frames: usize) -> serde_json::Value {
    let params = phantom.params();
    let spacing = params.spacing_mm() as f64;
    let label_names: serde_json::Map<String, serde_json::Value> = [labels::VEIN, labels::ARTERY]
        .into_iter()
        .map(|id| (id.to_string(), labels::default_name(id as usize).into()))
        .collect();
    serde_json::json!({
        "source": "usphantomsrc",
        "sequence": name,
        "seed": params.seed,
        "frames": frames,
        "width": params.width,
        "height": params.height,
        "pixel_spacing_mm": [spacing, spacing],
        "frame_rate": params.fps,
        "labels": label_names,
        "flow": "backward to frame 0: p + flow(p) is where p was in the first frame",
        "parameters": params,
        "vessels": phantom.anatomy().vessels,
    })
}

fn write_frame(dir: &Path, index: usize, frame: &Frame, width: usize, height: usize) -> Result<()> {
    let name = format!("{index:06}");
    write_gray_png(
        &dir.join("frames").join(format!("{name}.png")),
        width,
        height,
        &frame.image,
    )?;
    write_gray_png(
        &dir.join("masks").join(format!("{name}.png")),
        width,
        height,
        &frame.truth.labels.data,
    )?;
    let flo = dir.join("flow").join(format!("{name}.flo"));
    write_flo(&flo, &frame.truth.flow).with_context(|| format!("writing {}", flo.display()))
}

/// Writes the whole dataset on the current rayon pool, calling `progress(frames_done)` as
/// frames are written. Returns the number of frames written.
pub fn write_dataset(options: &DatasetOptions, progress: &(dyn Fn(u64) + Sync)) -> Result<u64> {
    std::fs::create_dir_all(&options.out)
        .with_context(|| format!("creating {}", options.out.display()))?;
    // Sequences in batches: enough to keep every thread busy, few enough to bound memory.
    let batch = (rayon::current_num_threads() * 2).max(1);
    let mut written = 0u64;
    for first in (0..options.sequences).step_by(batch) {
        let last = (first + batch).min(options.sequences);
        let phantoms: Vec<(String, PathBuf, Phantom)> = (first..last)
            .into_par_iter()
            .map(|index| -> Result<_> {
                let name = sequence_name(index);
                let dir = options.out.join(&name);
                for sub in ["frames", "masks", "flow"] {
                    std::fs::create_dir_all(dir.join(sub))
                        .with_context(|| format!("creating {}", dir.join(sub).display()))?;
                }
                let phantom = Phantom::new(sequence_params(options, index))?;
                let meta =
                    serde_json::to_string_pretty(&meta_json(&name, &phantom, options.frames))?;
                std::fs::write(dir.join("meta.json"), meta)?;
                Ok((name, dir, phantom))
            })
            .collect::<Result<_>>()?;
        let jobs: Vec<(usize, usize)> = (0..phantoms.len())
            .flat_map(|s| (0..options.frames).map(move |f| (s, f)))
            .collect();
        jobs.par_iter()
            .map_init(
                || None,
                |workspace: &mut Option<(usize, gstpddflow::phantom::Workspace)>,
                 &(s, f)|
                 -> Result<()> {
                    let (_, dir, phantom) = &phantoms[s];
                    if workspace.as_ref().is_none_or(|(owner, _)| *owner != s) {
                        *workspace = Some((s, phantom.workspace()));
                    }
                    let Some((_, ws)) = workspace.as_mut() else {
                        unreachable!("workspace was just set")
                    };
                    let frame = phantom.frame(f as u64, ws);
                    write_frame(dir, f, &frame, phantom.width(), phantom.height())?;
                    progress(1);
                    Ok(())
                },
            )
            .collect::<Result<()>>()?;
        written += jobs.len() as u64;
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_the_layout() {
        let dir = tempfile::tempdir().unwrap();
        let options = DatasetOptions {
            out: dir.path().to_path_buf(),
            sequences: 2,
            frames: 3,
            width: 48,
            height: 40,
            fps: 30.0,
            seed: 9,
            randomize: true,
            thrombosed_fraction: 0.5,
            base: PhantomParams::default(),
        };
        let written = write_dataset(&options, &|_| {}).unwrap();
        assert_eq!(written, 6);
        let seq = dir.path().join("phantom-0001");
        for sub in [
            "frames/000002.png",
            "masks/000002.png",
            "flow/000002.flo",
            "meta.json",
        ] {
            assert!(seq.join(sub).is_file(), "{sub}");
        }
        let meta: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(seq.join("meta.json")).unwrap()).unwrap();
        assert_eq!(meta["source"], "usphantomsrc");
        assert_eq!(meta["labels"]["2"], "artery");
        let flow = gstpddflow::flow::flo::read_flo(&seq.join("flow/000002.flo")).unwrap();
        assert_eq!((flow.width, flow.height), (48, 40));
    }
}
