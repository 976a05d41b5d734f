//! The phantom: scatterers in rest tissue, moved by the motion model and imaged by the probe.
//!
//! Every frame is a pure function of the parameters and the frame index, so frames can be
//! rendered in any order, on any thread, and always come out the same.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};

use super::anatomy::{Anatomy, Margins};
use super::imaging::{
    convolve_axial, convolve_row, fast_sin_cos, mix_seed, smooth_121, FastRng, Probe,
};
use super::motion::{Geometry, MotionModel, Pose};
use super::params::{ParamsError, PhantomParams};
use crate::flow::{FlowField, LabelMap};

/// Elevational (out-of-plane) beam width in mm: moving the image plane by this much leaves
/// speckle correlated by cos(1) ~ 0.54.
const ELEVATION_BEAM_MM: f32 = 1.0;

/// Scatterers in structure-of-arrays form. Each has two independent complex amplitudes; the
/// one seen is `a1 cos(theta) + a2 sin(theta)`, which keeps the speckle statistics for any
/// `theta` while decorrelating it as `theta` moves away from 0.
#[derive(Default)]
struct Scatterers {
    x: Vec<f32>,
    y: Vec<f32>,
    a1: Vec<[f32; 2]>,
    a2: Vec<[f32; 2]>,
    /// Raster row of each scatterer (for the elevational decorrelation of its depth).
    row: Vec<u32>,
}

impl Scatterers {
    fn push(&mut self, x: f32, y: f32, a1: [f32; 2], a2: [f32; 2], row: u32) {
        self.x.push(x);
        self.y.push(y);
        self.a1.push(a1);
        self.a2.push(a2);
        self.row.push(row);
    }

    fn len(&self) -> usize {
        self.x.len()
    }
}

/// Ground truth of one frame.
#[derive(Clone, Debug, PartialEq)]
pub struct FrameTruth {
    /// 0 background, 1 vein, 2 artery: frame 0's label map sampled (nearest) at `p + flow(p)`.
    /// The map extends beyond frame 0's borders, so tissue that slides into view keeps its
    /// true labels (which warping frame 0's mask cannot produce).
    pub labels: LabelMap,
    /// Backward flow to frame 0: `p + flow(p)` is where pixel `p` was in frame 0.
    pub flow: FlowField,
}

impl FrameTruth {
    pub fn new(width: usize, height: usize) -> Self {
        Self {
            labels: LabelMap::new(width, height),
            flow: FlowField::zeros(width, height),
        }
    }
}

/// A rendered frame with its ground truth.
#[derive(Clone, Debug, PartialEq)]
pub struct Frame {
    /// 8-bit B-mode image, `width * height`, row-major.
    pub image: Vec<u8>,
    pub truth: FrameTruth,
}

/// Buffers reused from frame to frame (one per thread).
pub struct Workspace {
    /// IQ samples, interleaved (re, im), on the frame padded by the PSF radii.
    iq: Vec<f32>,
    /// After the axial convolution: interleaved, padded laterally only.
    axial: Vec<f32>,
    /// One row after the lateral convolution, interleaved.
    row: Vec<f32>,
    /// Per frame pixel: round-trip amplitude transmission through its cell, whole and half.
    transmission: Vec<[f32; 2]>,
    /// Per frame pixel: displayed intensity before log compression.
    intensity: Vec<f32>,
    scratch: Vec<f32>,
    /// Per raster row: elevational decorrelation weights (cos, sin).
    elevation: Vec<(f32, f32)>,
}

/// A seeded ultrasound phantom sequence.
pub struct Phantom {
    params: PhantomParams,
    anatomy: Anatomy,
    motion: MotionModel,
    geometry: Geometry,
    probe: Probe,
    tissue: Scatterers,
    blood: Scatterers,
    /// Specular interfaces: fixed real amplitudes, no elevational decorrelation (they extend
    /// out of plane).
    interfaces: Scatterers,
    /// Per raster cell: `exp(-alpha)` and `exp(-alpha / 2)` of its round-trip attenuation.
    transmission: Vec<[f32; 2]>,
}

impl Phantom {
    pub fn new(params: PhantomParams) -> Result<Self, ParamsError> {
        params.validate()?;
        let (w, h) = (params.width, params.height);
        let spacing = params.spacing_mm();
        let probe = Probe::new(
            params.frequency_mhz,
            spacing,
            h,
            params.dynamic_range_db,
            params.gain_db,
        );
        let mut rng = ChaCha8Rng::seed_from_u64(params.seed);
        let motion = MotionModel::new(&params, &mut rng);
        let rocking_lift = (motion.max_lateral_px(h as f32) * 0.5).ceil() as usize;
        let margins = Margins {
            lateral: motion.max_lateral_px(h as f32).ceil() as usize + probe.pad_x + 3,
            top: probe.pad_z + rocking_lift + 3,
            bottom: motion.max_axial_px(w as f32).ceil() as usize + probe.pad_z + 3,
        };
        let anatomy = Anatomy::generate(&params, margins, &mut rng);
        let geometry = Geometry::new(
            &anatomy.vessels,
            anatomy.deep_boundary,
            anatomy.grid.x0 as f32 - 2.0,
            (anatomy.grid.x0 + anatomy.grid.width as i32) as f32 + 2.0,
        );

        let mut rng = ChaCha8Rng::seed_from_u64(mix_seed(params.seed, 1));
        let mut tissue = Scatterers::default();
        let mut blood = Scatterers::default();
        let grid = anatomy.grid;
        let gaussian = |rng: &mut ChaCha8Rng| -> [f32; 2] {
            [StandardNormal.sample(rng), StandardNormal.sample(rng)]
        };
        for j in 0..grid.height {
            for i in 0..grid.width {
                let k = j * grid.width + i;
                let echo = anatomy.echo[k];
                // Drawn for every cell so that the stream does not depend on the echo map.
                let (g1, g2) = (gaussian(&mut rng), gaussian(&mut rng));
                let jitter: [f32; 2] = [rng.random(), rng.random()];
                if echo <= 0.0 {
                    continue;
                }
                let scale = (0.5 * echo).sqrt();
                let x = (grid.x0 + i as i32) as f32 + jitter[0] - 0.5;
                let y = (grid.y0 + j as i32) as f32 + jitter[1] - 0.5;
                let a1 = [g1[0] * scale, g1[1] * scale];
                let a2 = [g2[0] * scale, g2[1] * scale];
                if anatomy.blood[k] {
                    blood.push(x, y, a1, a2, j as u32);
                } else {
                    tissue.push(x, y, a1, a2, j as u32);
                }
            }
        }
        let mut interfaces = Scatterers::default();
        for p in &anatomy.interfaces {
            // A little phase roughness gives interfaces their grainy brightness.
            let normal: f32 = StandardNormal.sample(&mut rng);
            let roughness = 0.7 * normal;
            let (s, c) = roughness.sin_cos();
            interfaces.push(p.x, p.y, [p.amplitude * c, p.amplitude * s], [0.0, 0.0], 0);
        }
        let transmission = anatomy
            .attenuation
            .iter()
            .map(|&a| [(-a).exp(), (-0.5 * a).exp()])
            .collect();
        Ok(Self {
            transmission,
            params,
            anatomy,
            motion,
            geometry,
            probe,
            tissue,
            blood,
            interfaces,
        })
    }

    pub fn params(&self) -> &PhantomParams {
        &self.params
    }

    pub fn anatomy(&self) -> &Anatomy {
        &self.anatomy
    }

    pub fn width(&self) -> usize {
        self.params.width
    }

    pub fn height(&self) -> usize {
        self.params.height
    }

    /// Number of scatterers (tissue and blood).
    pub fn scatterer_count(&self) -> usize {
        self.tissue.len() + self.blood.len() + self.interfaces.len()
    }

    /// Time of frame `index` in seconds.
    pub fn time_of(&self, index: u64) -> f64 {
        index as f64 / self.params.fps
    }

    /// Motion state at frame `index`.
    pub fn pose(&self, index: u64) -> Pose {
        self.motion.pose(self.time_of(index))
    }

    pub fn workspace(&self) -> Workspace {
        let (w, h) = (self.params.width, self.params.height);
        let wp = w + 2 * self.probe.pad_x;
        let hp = h + 2 * self.probe.pad_z;
        Workspace {
            iq: vec![0.0; 2 * wp * hp],
            axial: vec![0.0; 2 * wp * h],
            row: vec![0.0; 2 * w],
            transmission: vec![[1.0, 1.0]; w * h],
            intensity: vec![0.0; w * h],
            elevation: vec![(1.0, 0.0); self.anatomy.grid.height],
            scratch: Vec::with_capacity(w),
        }
    }

    /// Renders frame `index` as an allocated [`Frame`].
    pub fn frame(&self, index: u64, workspace: &mut Workspace) -> Frame {
        let (w, h) = (self.params.width, self.params.height);
        let mut image = vec![0u8; w * h];
        let mut truth = FrameTruth::new(w, h);
        self.render(index, workspace, &mut image, w, Some(&mut truth));
        Frame { image, truth }
    }

    /// Renders frame `index` into `image` (rows `stride` bytes apart) and, if asked, its
    /// ground truth. `image` must hold `stride * (height - 1) + width` bytes.
    pub fn render(
        &self,
        index: u64,
        workspace: &mut Workspace,
        image: &mut [u8],
        stride: usize,
        truth: Option<&mut FrameTruth>,
    ) {
        self.render_intensity(index, workspace, truth);
        let w = self.params.width;
        smooth_121(
            &mut workspace.intensity,
            w,
            self.params.height,
            &mut workspace.scratch,
        );
        for (row, out) in workspace
            .intensity
            .chunks_exact(w)
            .zip(image.chunks_mut(stride))
        {
            for (o, &v) in out[..w].iter_mut().zip(row) {
                *o = self.probe.compress(v);
            }
        }
    }

    /// Displayed intensity (squared envelope after attenuation, noise and TGC; muscle at the
    /// focus is about 1) of frame `index`, before log compression: `width * height` values.
    pub fn intensity<'w>(&self, index: u64, workspace: &'w mut Workspace) -> &'w [f32] {
        self.render_intensity(index, workspace, None);
        &workspace.intensity
    }

    fn render_intensity(&self, index: u64, ws: &mut Workspace, mut truth: Option<&mut FrameTruth>) {
        let (w, h) = (self.params.width, self.params.height);
        let probe = &self.probe;
        let (pad_x, pad_z) = (probe.pad_x, probe.pad_z);
        let wp = w + 2 * pad_x;
        let hp = h + 2 * pad_z;
        let pose = self.pose(index);
        let deformation = self.geometry.deformation(&pose, self.motion.pivot_x);
        let grid = self.anatomy.grid;

        // Out-of-plane motion decorrelates speckle by depth.
        let elevation_px = ELEVATION_BEAM_MM / self.params.spacing_mm();
        for (j, e) in ws.elevation.iter_mut().enumerate() {
            let depth = (grid.y0 + j as i32) as f32;
            let theta = (pose.elevation + pose.tilt * depth.max(0.0)) / elevation_px;
            let (sin, cos) = fast_sin_cos(theta);
            *e = (cos, sin);
        }

        ws.iq.fill(0.0);
        // Baseband phase of the round trip to depth `y`: `a exp(-i 2 k0 z)`.
        let turns_per_px = probe.phase_per_px / std::f32::consts::TAU;
        let phased = |re: f32, im: f32, y: f32| {
            let (s, c) = probe.phase_table.sin_cos_turns(turns_per_px * y);
            (re * c + im * s, im * c - re * s)
        };
        let (xmax, ymax) = ((wp - 1) as f32, (hp - 1) as f32);
        // Adds a scatterer's IQ contribution `(vr, vi)` at frame position `(x, y)`.
        let mut splat = |x: f32, y: f32, vr: f32, vi: f32| {
            let (fx, fy) = (x + pad_x as f32, y + pad_z as f32);
            if !(fx >= 0.0 && fy >= 0.0 && fx < xmax && fy < ymax) {
                return;
            }
            let (ix, iy) = (fx as usize, fy as usize);
            let (tx, ty) = (fx - ix as f32, fy - iy as f32);
            let i00 = 2 * (iy * wp + ix);
            let (top, bottom) = ws.iq[i00..i00 + 2 * wp + 4].split_at_mut(2 * wp);
            let (w00, w01) = ((1.0 - tx) * (1.0 - ty), tx * (1.0 - ty));
            let (w10, w11) = ((1.0 - tx) * ty, tx * ty);
            top[0] += vr * w00;
            top[1] += vi * w00;
            top[2] += vr * w01;
            top[3] += vi * w01;
            bottom[0] += vr * w10;
            bottom[1] += vi * w10;
            bottom[2] += vr * w11;
            bottom[3] += vi * w11;
        };
        let s = &self.tissue;
        for k in 0..s.len() {
            let (fx, fy) = deformation.forward(s.x[k], s.y[k]);
            let (c, sn) = ws.elevation[s.row[k] as usize];
            let (a1, a2) = (s.a1[k], s.a2[k]);
            let (re, im) = phased(a1[0] * c + a2[0] * sn, a1[1] * c + a2[1] * sn, fy);
            splat(fx, fy, re, im);
        }
        // Interfaces image as their envelope: no depth phase, so a tilted interface stays a
        // continuous line instead of breaking into interference fringes.
        let s = &self.interfaces;
        for k in 0..s.len() {
            let (fx, fy) = deformation.forward(s.x[k], s.y[k]);
            splat(fx, fy, s.a1[k][0], s.a1[k][1]);
        }
        // Blood echoes decorrelate completely from frame to frame.
        let mut rng = FastRng::new(mix_seed(self.params.seed, 0x1_0000_0000 + index));
        let b = &self.blood;
        for k in 0..b.len() {
            let (fx, fy) = deformation.forward(b.x[k], b.y[k]);
            let (sn, c) = fast_sin_cos(std::f32::consts::TAU * rng.uniform());
            let (a1, a2) = (b.a1[k], b.a2[k]);
            let (re, im) = phased(a1[0] * c + a2[0] * sn, a1[1] * c + a2[1] * sn, fy);
            splat(fx, fy, re, im);
        }

        // Ground truth and the attenuation seen by each pixel, from the backward map.
        for y in 0..h {
            for x in 0..w {
                let (bx, by) = deformation.backward(x as f32, y as f32);
                let i = y * w + x;
                let cell = grid.nearest(bx, by);
                ws.transmission[i] = self.transmission[cell];
                if let Some(truth) = truth.as_deref_mut() {
                    truth.flow.dx[i] = bx - x as f32;
                    truth.flow.dy[i] = by - y as f32;
                    // Nearest sample of the rest label map (frame 0's, extended beyond the frame),
                    // so that a perfect flow propagates frame 0's mask exactly.
                    truth.labels.data[i] = self.anatomy.labels[cell];
                }
            }
        }

        // Interleaved rows are convolved axially as rows of 2 * wp values.
        convolve_axial(&ws.iq, &mut ws.axial, 2 * wp, h, &probe.axial);

        // Amplitude transmission from the probe down to the current row, per column.
        let mut path = vec![1.0f32; w];
        let mut noise = FastRng::new(mix_seed(self.params.seed, 0x2_0000_0000 + index));
        for y in 0..h {
            let kernel = &probe.lateral[y];
            convolve_row(
                &ws.axial[2 * y * wp..2 * (y + 1) * wp],
                &mut ws.row,
                pad_x,
                kernel,
                2,
            );
            let tgc_gain = (2.0 * probe.tgc_per_px * (y as f32 + 0.5)).exp();
            let out = &mut ws.intensity[y * w..(y + 1) * w];
            let transmission = &ws.transmission[y * w..(y + 1) * w];
            for x in 0..w {
                // Half the cell's attenuation before its echo, half after (midpoint rule).
                let [whole, half] = transmission[x];
                let attenuation = path[x] * half;
                path[x] *= whole;
                let re = ws.row[2 * x] * attenuation + probe.noise_sigma * noise.normal();
                let im = ws.row[2 * x + 1] * attenuation + probe.noise_sigma * noise.normal();
                out[x] = (re * re + im * im) * tgc_gain;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small() -> PhantomParams {
        PhantomParams {
            width: 96,
            height: 80,
            depth_mm: 30.0,
            ..Default::default()
        }
    }

    #[test]
    fn frames_are_reproducible_and_differ_over_time() {
        let phantom = Phantom::new(small()).unwrap();
        let again = Phantom::new(small()).unwrap();
        let mut ws = phantom.workspace();
        let a = phantom.frame(5, &mut ws);
        let b = again.frame(5, &mut again.workspace());
        assert_eq!(a, b);
        assert_ne!(a.image, phantom.frame(6, &mut ws).image);
    }

    #[test]
    fn frame_zero_has_zero_flow() {
        let phantom = Phantom::new(small()).unwrap();
        let frame = phantom.frame(0, &mut phantom.workspace());
        let max = frame
            .truth
            .flow
            .dx
            .iter()
            .chain(&frame.truth.flow.dy)
            .fold(0f32, |m, v| m.max(v.abs()));
        assert!(max < 1e-3, "max |flow| {max}");
    }
}
