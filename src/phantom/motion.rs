//! Motion of tissue and probe over time, and the exact maps between frame-`t` pixels and rest
//! tissue (= frame-0 pixel) coordinates.
//!
//! The forward map (rest tissue -> frame `t`) is a composition of three invertible pieces:
//! 1. arterial pulsation: a radial expansion of each artery, `rho -> rho (1 + d)` inside and
//!    a push on the surrounding tissue that fades linearly to zero at three radii, in the
//!    artery's normalised elliptic radius;
//! 2. probe compression: per image column, a piecewise-linear map of depth that keeps the skin
//!    on the probe, collapses each vessel's lumen by its own fraction, strains the soft tissue
//!    to take up the rest of the probe displacement, and shifts everything below the deep
//!    boundary rigidly;
//! 3. the probe pose: lateral sliding and tremor, and in-plane rocking about the probe face.
//!
//! Each piece has a closed-form inverse, so the backward map (what the ground-truth flow and
//! labels are built from) and the forward map (what moves the scatterers) agree exactly.
//! All motion is zero at `t = 0`: frame 0 shows the tissue at rest, as the convention needs.

use std::f32::consts::{PI, TAU};

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::anatomy::{Vessel, VesselKind};
use super::params::PhantomParams;

/// Most vessels a column can cross (veins + arteries at their maximum).
const MAX_VESSELS: usize = 8;
/// Knots of a column map: the skin, the deep boundary, and per vessel the start of the
/// strain ramp above it, its top and its bottom.
const MAX_KNOTS: usize = 3 * MAX_VESSELS + 2;
/// Step of the tabulated half-chords, in pixels.
const CHORD_STEP: f32 = 0.25;
/// Column maps are tabulated this many times per pixel; forward and backward maps use the
/// same table entry for a given column, so they stay exact inverses of each other.
const COLUMNS_PER_PX: f32 = 8.0;

/// One sinusoid of hand tremor: amplitude (px), angular frequency (rad/s), phase.
#[derive(Clone, Copy, Debug)]
struct Tremor {
    amplitude: f32,
    omega: f32,
    phase: f32,
}

impl Tremor {
    fn at(&self, t: f32) -> f32 {
        // Minus the value at t = 0 so that frame 0 is at rest.
        self.amplitude * ((self.omega * t + self.phase).sin() - self.phase.sin())
    }
}

/// Timing and amplitudes of all motion of one sequence.
#[derive(Clone, Debug)]
pub struct MotionModel {
    compression_px: f32,
    compression_period: f32,
    heart_period: f32,
    /// Lateral probe slide (px) reached at the slide's far point, and its period (s).
    slide_px: f32,
    slide_period: f32,
    /// In-plane rocking amplitude (rad) and period (s).
    rock: f32,
    rock_period: f32,
    rock_phase: f32,
    /// Elevational (out-of-plane) drift (px) and its period (s).
    elevation_px: f32,
    elevation_period: f32,
    /// Out-of-plane tilt amplitude (elevational px per px of depth).
    tilt: f32,
    tilt_period: f32,
    lateral_tremor: [Tremor; 3],
    axial_tremor: [Tremor; 2],
    /// Rocking pivot: centre of the probe face.
    pub pivot_x: f32,
}

/// The state of all motion at one instant.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Pose {
    /// Probe displacement into the tissue (px), hand tremor included.
    pub compression: f32,
    /// Compression as a fraction of its peak, 0..1.
    pub compression_phase: f32,
    /// Arterial pulsation as a fraction of systolic expansion, 0..1.
    pub pulse_phase: f32,
    /// Probe lateral offset (px): tissue appears shifted by minus this.
    pub shift_x: f32,
    /// In-plane rocking angle (rad).
    pub angle: f32,
    /// Out-of-plane offset of the image plane (px) at the skin.
    pub elevation: f32,
    /// Out-of-plane tilt: extra elevational offset per px of depth.
    pub tilt: f32,
}

/// Arterial diameter over one heart cycle, 0 at end-diastole, 1 at peak systole.
pub fn pulse_waveform(phase: f32) -> f32 {
    const SYSTOLE: f32 = 0.15;
    const DECAY: f32 = 0.22;
    let tail = (-(1.0 - SYSTOLE) / DECAY).exp();
    if phase < SYSTOLE {
        (0.5 * PI * phase / SYSTOLE).sin().powi(2)
    } else {
        // Exponential run-off, bent down so it ends at 0 and the cycle is continuous.
        let s = phase - SYSTOLE;
        (-s / DECAY).exp() - tail * s / (1.0 - SYSTOLE)
    }
}

/// Compression as a fraction of its peak over one cycle: press, hold briefly, release.
pub fn compression_waveform(phase: f32) -> f32 {
    (1.3 * (PI * phase).sin().powi(2)).min(1.0)
}

fn random_tremor(rng: &mut ChaCha8Rng, amplitude_px: f32) -> Tremor {
    Tremor {
        amplitude: amplitude_px * rng.random_range(0.5..1.0),
        omega: TAU * rng.random_range(3.0..11.0),
        phase: rng.random_range(0.0..TAU),
    }
}

impl MotionModel {
    pub fn new(params: &PhantomParams, rng: &mut ChaCha8Rng) -> Self {
        let mm = 1.0 / params.spacing_mm();
        let amp = params.motion_amplitude;
        let direction = if rng.random_bool(0.5) { 1.0 } else { -1.0 };
        Self {
            compression_px: params.compression_depth_mm * mm,
            compression_period: params.compression_period_s,
            heart_period: if params.heart_rate_bpm > 0.0 {
                60.0 / params.heart_rate_bpm
            } else {
                0.0
            },
            slide_px: direction * amp * rng.random_range(0.8..2.0) * mm,
            slide_period: rng.random_range(4.0..9.0),
            rock: amp * rng.random_range(0.4..1.0f32).to_radians(),
            rock_period: rng.random_range(2.0..5.0),
            rock_phase: rng.random_range(0.0..TAU),
            elevation_px: amp * rng.random_range(0.5..1.5) * mm,
            elevation_period: rng.random_range(3.0..8.0),
            tilt: amp * rng.random_range(0.005..0.02),
            tilt_period: rng.random_range(2.0..6.0),
            lateral_tremor: [(); 3].map(|_| random_tremor(rng, amp * 0.06 * mm)),
            axial_tremor: [(); 2].map(|_| random_tremor(rng, amp * 0.04 * mm)),
            pivot_x: 0.5 * (params.width as f32 - 1.0),
        }
    }

    /// Largest lateral tissue displacement any pixel of a `height`-pixel frame can see.
    pub fn max_lateral_px(&self, height: f32) -> f32 {
        let tremor: f32 = self.lateral_tremor.iter().map(|t| 2.0 * t.amplitude).sum();
        self.slide_px.abs() + tremor + self.rock.abs() * height
    }

    /// Largest upward shift of deep tissue (px), rocking included.
    pub fn max_axial_px(&self, width: f32) -> f32 {
        let tremor: f32 = self.axial_tremor.iter().map(|t| 2.0 * t.amplitude).sum();
        self.compression_px + tremor + self.rock.abs() * 0.5 * width
    }

    pub fn pose(&self, t: f64) -> Pose {
        let t32 = t as f32;
        let cycle = |period: f32| -> f32 {
            if period > 0.0 {
                (t / period as f64).fract() as f32
            } else {
                0.0
            }
        };
        let compression_phase = if self.compression_period > 0.0 {
            compression_waveform(cycle(self.compression_period))
        } else {
            0.0
        };
        let pulse_phase = if self.heart_period > 0.0 {
            pulse_waveform(cycle(self.heart_period))
        } else {
            0.0
        };
        let axial_tremor: f32 = self.axial_tremor.iter().map(|tr| tr.at(t32)).sum();
        let lateral_tremor: f32 = self.lateral_tremor.iter().map(|tr| tr.at(t32)).sum();
        let raised_cosine = |period: f32| 0.5 * (1.0 - (TAU * cycle(period)).cos());
        Pose {
            compression: self.compression_px * compression_phase + axial_tremor,
            compression_phase,
            pulse_phase,
            shift_x: self.slide_px * raised_cosine(self.slide_period) + lateral_tremor,
            angle: self.rock
                * ((TAU * cycle(self.rock_period) + self.rock_phase).sin() - self.rock_phase.sin()),
            elevation: self.elevation_px * raised_cosine(self.elevation_period),
            tilt: self.tilt * (TAU * cycle(self.tilt_period)).sin(),
        }
    }
}

/// A vessel with its half-chords tabulated for fast column maps.
#[derive(Clone, Debug)]
struct ChordTable {
    cx: f32,
    cy: f32,
    a: f32,
    b: f32,
    x_start: f32,
    half_chords: Vec<f32>,
    artery: bool,
    pulsation: f32,
    max_collapse: f32,
}

impl ChordTable {
    fn new(v: &Vessel) -> Self {
        let x_start = v.cx - v.a;
        let n = (2.0 * v.a / CHORD_STEP).ceil() as usize + 2;
        let half_chords = (0..n)
            .map(|i| v.half_chord(x_start + i as f32 * CHORD_STEP))
            .collect();
        Self {
            cx: v.cx,
            cy: v.cy,
            a: v.a,
            b: v.b,
            x_start,
            half_chords,
            artery: v.kind == VesselKind::Artery,
            pulsation: v.pulsation,
            max_collapse: v.max_collapse,
        }
    }

    /// Half-chord at column `x` of the vessel scaled by `scale` about its centre.
    #[inline]
    fn at(&self, x: f32, scale: f32) -> f32 {
        let xr = self.cx + (x - self.cx) / scale;
        if (xr - self.cx).abs() >= self.a {
            return 0.0;
        }
        let g = (xr - self.x_start) / CHORD_STEP;
        let i = g as usize;
        let f = g - i as f32;
        let (h0, h1) = (self.half_chords[i], self.half_chords[i + 1]);
        scale * (h0 + (h1 - h0) * f)
    }
}

/// The tissue geometry the deformation needs: vessels and the deep boundary.
#[derive(Clone, Debug)]
pub struct Geometry {
    vessels: Vec<ChordTable>,
    deep_boundary: f32,
    /// Columns (px) covered by the per-frame table of column maps; beyond, the nearest
    /// column's map is used.
    x_min: f32,
    x_max: f32,
}

impl Geometry {
    pub fn new(vessels: &[Vessel], deep_boundary: f32, x_min: f32, x_max: f32) -> Self {
        Self {
            vessels: vessels
                .iter()
                .take(MAX_VESSELS)
                .map(ChordTable::new)
                .collect(),
            deep_boundary,
            x_min,
            x_max: x_max.max(x_min + 1.0),
        }
    }

    /// The deformation at one pose. `compression_scale` maps the probe displacement to the
    /// vessels' collapse: a healthy vein closes fully once the probe has moved in by 60 % of
    /// the vein's diameter.
    pub fn deformation(&self, pose: &Pose, pivot_x: f32) -> Deformation<'_> {
        let mut collapse = [0.0f32; MAX_VESSELS];
        let mut scale = [1.0f32; MAX_VESSELS];
        for (k, v) in self.vessels.iter().enumerate() {
            if v.artery {
                scale[k] = 1.0 + v.pulsation * pose.pulse_phase;
            }
            let closing = (pose.compression.max(0.0) / (0.6 * 2.0 * v.b)).min(1.0);
            collapse[k] = v.max_collapse * closing;
        }
        let (sin, cos) = pose.angle.sin_cos();
        let mut deformation = Deformation {
            geometry: self,
            collapse,
            scale,
            compression: pose.compression,
            shift_x: pose.shift_x,
            pivot_x,
            sin,
            cos,
            columns: Vec::new(),
        };
        let count = ((self.x_max - self.x_min) * COLUMNS_PER_PX).ceil() as usize + 1;
        deformation.columns = (0..count)
            .map(|i| deformation.column_exact(self.x_min + i as f32 / COLUMNS_PER_PX))
            .collect();
        deformation
    }
}

/// The exact forward and backward maps at one instant.
pub struct Deformation<'a> {
    geometry: &'a Geometry,
    collapse: [f32; MAX_VESSELS],
    /// Pulsation scale (1 + d) of each vessel.
    scale: [f32; MAX_VESSELS],
    compression: f32,
    shift_x: f32,
    pivot_x: f32,
    sin: f32,
    cos: f32,
    /// Column maps from `x_min` every `1 / COLUMNS_PER_PX` pixel.
    columns: Vec<ColumnMap>,
}

/// Piecewise-linear depth map of one image column: `pre[i] -> post[i]`, linear in between.
struct ColumnMap {
    n: usize,
    pre: [f32; MAX_KNOTS],
    post: [f32; MAX_KNOTS],
    /// Rigid shift of everything below the deep boundary.
    deep_shift: f32,
}

impl ColumnMap {
    #[inline]
    fn forward(&self, y: f32) -> f32 {
        if y <= 0.0 {
            return y;
        }
        let last = self.n - 1;
        if y >= self.pre[last] {
            return y - self.deep_shift;
        }
        for i in 1..self.n {
            if y < self.pre[i] {
                let (p0, p1) = (self.pre[i - 1], self.pre[i]);
                let (q0, q1) = (self.post[i - 1], self.post[i]);
                return q0 + (y - p0) * (q1 - q0) / (p1 - p0).max(1e-12);
            }
        }
        y - self.deep_shift
    }

    #[inline]
    fn backward(&self, y: f32) -> f32 {
        if y <= 0.0 {
            return y;
        }
        let last = self.n - 1;
        if y >= self.post[last] {
            return y + self.deep_shift;
        }
        for i in 1..self.n {
            if y < self.post[i] {
                let (p0, p1) = (self.pre[i - 1], self.pre[i]);
                let (q0, q1) = (self.post[i - 1], self.post[i]);
                return p0 + (y - q0) * (p1 - p0) / (q1 - q0).max(1e-12);
            }
        }
        y + self.deep_shift
    }
}

impl Deformation<'_> {
    /// The depth map of column `x`. Tissue strains uniformly by `D / deep_boundary`; on top of
    /// that, the tissue above each vessel is pushed down by the lumen height the vessel loses
    /// (ramping from 0 at the skin), so the superficial wall closes onto the deep wall while
    /// everything below the vessel moves with its neighbours.
    fn column_exact(&self, x: f32) -> ColumnMap {
        let bottom = self.geometry.deep_boundary;
        let strain = (self.compression / bottom).min(0.9);
        // (ramp, top, bottom, push): push is the downward shift of the vessel's top relative
        // to the uniformly strained tissue, fading out over `ramp` pixels above the vessel.
        let mut intervals = [(0.0f32, 0.0f32, 0.0f32, 0.0f32); MAX_VESSELS];
        let mut n = 0;
        for (k, v) in self.geometry.vessels.iter().enumerate() {
            if (x - v.cx).abs() >= v.a * self.scale[k] {
                continue;
            }
            let h = v.at(x, self.scale[k]);
            let top = (v.cy - h).max(1e-3);
            let bot = (v.cy + h).min(bottom);
            if bot > top {
                // Tissue within about a vessel diameter above it follows its wall; the skin
                // and superficial layers only see the uniform strain.
                let ramp = (2.0 * v.b * self.scale[k]).min(top);
                // The lumen keeps (1 - collapse) of its height while its deep wall moves with
                // the uniformly strained tissue; a stiff vessel (artery, thrombus) gives a
                // negative push: the tissue above it takes more of the strain. Bounded so the
                // tissue above keeps a positive thickness.
                let push =
                    ((bot - top) * (self.collapse[k] - strain)).max(-0.45 * (1.0 - strain) * ramp);
                intervals[n] = (ramp, top, bot, push);
                n += 1;
            }
        }
        let post_of = |y: f32| -> f32 {
            let mut post = y * (1.0 - strain);
            for &(ramp, top, bot, push) in &intervals[..n] {
                post += if y <= top {
                    push * ((y - (top - ramp)) / ramp).max(0.0)
                } else if y < bot {
                    push * (bot - y) / (bot - top)
                } else {
                    0.0
                };
            }
            post
        };
        // Knots: every place where some vessel's term changes slope, sorted.
        let mut knots = [0.0f32; MAX_KNOTS];
        let mut count = 0;
        for &(ramp, top, bot, _) in &intervals[..n] {
            for y in [top - ramp, top, bot] {
                let mut i = count;
                while i > 0 && knots[i - 1] > y {
                    knots[i] = knots[i - 1];
                    i -= 1;
                }
                knots[i] = y;
                count += 1;
            }
        }
        let mut map = ColumnMap {
            n: 1,
            pre: [0.0; MAX_KNOTS],
            post: [0.0; MAX_KNOTS],
            deep_shift: 0.0,
        };
        for &y in knots[..count].iter().chain(std::iter::once(&bottom)) {
            // Knots must increase strictly (touching vessels, a ramp from the skin).
            if y > map.pre[map.n - 1] + 1e-4 && y <= bottom && map.n < MAX_KNOTS {
                map.pre[map.n] = y;
                map.post[map.n] = post_of(y);
                map.n += 1;
            }
        }
        // Stacked stiff vessels could still fold the map: keep it strictly increasing.
        for i in 1..map.n {
            let floor = map.post[i - 1] + 1e-3 * (map.pre[i] - map.pre[i - 1]);
            map.post[i] = map.post[i].max(floor);
        }
        map.deep_shift = map.pre[map.n - 1] - map.post[map.n - 1];
        map
    }

    #[inline]
    fn column(&self, x: f32) -> &ColumnMap {
        let g = (x - self.geometry.x_min) * COLUMNS_PER_PX + 0.5;
        // Truncation is floor here: g is clamped at 0 first.
        let i = (g.max(0.0) as usize).min(self.columns.len() - 1);
        &self.columns[i]
    }

    /// Rest tissue position -> frame position.
    #[inline]
    pub fn forward(&self, x: f32, y: f32) -> (f32, f32) {
        let (mut x, mut y) = (x, y);
        for (k, v) in self.geometry.vessels.iter().enumerate() {
            if v.artery && self.scale[k] != 1.0 {
                (x, y) = pulse_forward(v, self.scale[k] - 1.0, x, y);
            }
        }
        let y = self.column(x).forward(y);
        // Probe pose: tissue relative to the probe, then rocking about the probe face centre.
        let (dx, dy) = (x - self.pivot_x - self.shift_x, y);
        (
            self.cos * dx - self.sin * dy + self.pivot_x,
            self.sin * dx + self.cos * dy,
        )
    }

    /// Frame position -> rest tissue position (the exact inverse of [`Self::forward`]).
    #[inline]
    pub fn backward(&self, x: f32, y: f32) -> (f32, f32) {
        let dx = x - self.pivot_x;
        let wx = self.cos * dx + self.sin * y + self.pivot_x + self.shift_x;
        let wy = -self.sin * dx + self.cos * y;
        let (mut x, mut y) = (wx, self.column(wx).backward(wy));
        for (k, v) in self.geometry.vessels.iter().enumerate().rev() {
            if v.artery && self.scale[k] != 1.0 {
                (x, y) = pulse_backward(v, self.scale[k] - 1.0, x, y);
            }
        }
        (x, y)
    }
}

/// Outer reach of the pulsation, in normalised radii: tissue beyond it does not move.
const PULSE_REACH: f32 = 3.0;

/// Radial pulsation in the artery's normalised radius `rho`: the lumen scales by `1 + d`,
/// the surrounding tissue is pushed out by an amount that falls linearly to zero at
/// [`PULSE_REACH`] (it is compressed against the tissue beyond).
#[inline]
fn pulse_forward(v: &ChordTable, d: f32, x: f32, y: f32) -> (f32, f32) {
    let (u, w) = ((x - v.cx) / v.a, (y - v.cy) / v.b);
    if u.abs() >= PULSE_REACH || w.abs() >= PULSE_REACH {
        return (x, y);
    }
    let rho = (u * u + w * w).sqrt();
    let moved = if rho < 1.0 {
        rho * (1.0 + d)
    } else if rho < PULSE_REACH {
        rho + d * (PULSE_REACH - rho) / (PULSE_REACH - 1.0)
    } else {
        return (x, y);
    };
    let ratio = if rho > 0.0 { moved / rho } else { 1.0 + d };
    (v.cx + u * ratio * v.a, v.cy + w * ratio * v.b)
}

#[inline]
fn pulse_backward(v: &ChordTable, d: f32, x: f32, y: f32) -> (f32, f32) {
    let (u, w) = ((x - v.cx) / v.a, (y - v.cy) / v.b);
    if u.abs() >= PULSE_REACH || w.abs() >= PULSE_REACH {
        return (x, y);
    }
    let rho = (u * u + w * w).sqrt();
    let rest = if rho < 1.0 + d {
        rho / (1.0 + d)
    } else if rho < PULSE_REACH {
        // Inverse of rho + d (R - rho) / (R - 1): linear in rho.
        (rho - d * PULSE_REACH / (PULSE_REACH - 1.0)) / (1.0 - d / (PULSE_REACH - 1.0))
    } else {
        return (x, y);
    };
    let ratio = if rho > 0.0 {
        rest / rho
    } else {
        1.0 / (1.0 + d)
    };
    (v.cx + u * ratio * v.a, v.cy + w * ratio * v.b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn vessels() -> Vec<Vessel> {
        vec![
            Vessel {
                kind: VesselKind::Vein,
                cx: 60.0,
                cy: 70.0,
                a: 20.0,
                b: 14.0,
                exponent: 2.2,
                wall: 2.0,
                thrombosed: false,
                max_collapse: 1.0,
                pulsation: 0.0,
            },
            Vessel {
                kind: VesselKind::Artery,
                cx: 100.0,
                cy: 65.0,
                a: 11.0,
                b: 11.0,
                exponent: 2.0,
                wall: 2.0,
                thrombosed: false,
                max_collapse: 0.1,
                pulsation: 0.08,
            },
        ]
    }

    #[test]
    fn backward_inverts_forward() {
        let geometry = Geometry::new(&vessels(), 110.0, -20.0, 180.0);
        let params = PhantomParams::default();
        let model = MotionModel::new(&params, &mut ChaCha8Rng::seed_from_u64(1));
        for t in [0.3, 0.8, 1.4, 2.2] {
            let pose = model.pose(t);
            let deformation = geometry.deformation(&pose, model.pivot_x);
            for y in (0..160).step_by(7) {
                for x in (-10..170).step_by(5) {
                    let (x, y) = (x as f32 + 0.3, y as f32 + 0.6);
                    // Frame positions always come from somewhere.
                    let (bx, by) = deformation.backward(x, y);
                    let (fx, fy) = deformation.forward(bx, by);
                    assert!((fx - x).abs() < 1e-2 && (fy - y).abs() < 1e-2, "t {t}");
                    // A fully collapsed lumen maps to a line: only its outside is invertible.
                    if vessels().iter().any(|v| v.norm(x, y) < 1.0) {
                        continue;
                    }
                    let (fx, fy) = deformation.forward(x, y);
                    let (bx, by) = deformation.backward(fx, fy);
                    assert!(
                        (bx - x).abs() < 1e-2 && (by - y).abs() < 1e-2,
                        "t {t}: ({x}, {y}) -> ({fx}, {fy}) -> ({bx}, {by})"
                    );
                }
            }
        }
    }

    #[test]
    fn frame_zero_is_at_rest() {
        let model = MotionModel::new(&PhantomParams::default(), &mut ChaCha8Rng::seed_from_u64(2));
        let pose = model.pose(0.0);
        assert!(pose.compression.abs() < 1e-5 && pose.shift_x.abs() < 1e-5);
        assert!(pose.angle.abs() < 1e-6 && pose.elevation.abs() < 1e-6);
        assert!(pose.pulse_phase.abs() < 1e-6);
    }

    #[test]
    fn waveforms_are_continuous_and_bounded() {
        assert!(pulse_waveform(0.0).abs() < 1e-6);
        assert!((pulse_waveform(0.15) - 1.0).abs() < 1e-3);
        assert!(pulse_waveform(0.9999).abs() < 1e-3);
        assert!((compression_waveform(0.5) - 1.0).abs() < 1e-6);
        for i in 0..100 {
            let p = i as f32 / 100.0;
            assert!((0.0..=1.0).contains(&compression_waveform(p)));
            assert!((-1e-3..=1.0 + 1e-6).contains(&pulse_waveform(p)));
        }
    }
}
