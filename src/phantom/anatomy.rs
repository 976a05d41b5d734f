//! Tissue at rest: vessels, layers and the maps of echogenicity and attenuation that the
//! scatterers sample.
//!
//! Coordinates are frame-0 pixel coordinates (pixel centres at integers, y grows with depth);
//! the rasters cover the frame plus margins, so motion can bring unseen tissue into view.

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use serde::Serialize;

use super::params::{PhantomParams, Scene};
use crate::flow::labels;

/// Backscattered intensity of muscle, the reference of the echogenicity scale (0 dB).
const ECHO_MUSCLE: f32 = 1.0;
const ECHO_FAT: f32 = 0.15;
const ECHO_SKIN: f32 = 10.0;
const ECHO_DERMIS: f32 = 3.0;
const ECHO_FASCIA: f32 = 40.0;
const ECHO_SEPTUM: f32 = 8.0;
const ECHO_STREAK: f32 = 10.0;
const ECHO_WALL: f32 = 10.0;
const ECHO_SHEATH: f32 = 3.0;
const ECHO_CORTEX: f32 = 40.0;
const ECHO_MARROW: f32 = 0.5;
/// Blood is about 35 dB below muscle: lumens are anechoic with faint echoes.
const ECHO_BLOOD: f32 = 3e-4;
/// Subacute thrombus: hypoechoic but clearly above blood.
const ECHO_THROMBUS: f32 = 0.25;

/// Reflection amplitudes of specular interfaces (point reflectors every half pixel along
/// the interface; a horizontal interface images about 27 dB above muscle for 6).
const REFLECT_SKIN: f32 = 5.0;
const REFLECT_FASCIA: f32 = 8.0;
const REFLECT_SEPTUM: f32 = 3.5;
const REFLECT_WALL: f32 = 4.0;
const REFLECT_CORTEX: f32 = 12.0;
/// Spacing of interface reflectors, in pixels.
const INTERFACE_STEP: f32 = 0.5;

/// Attenuation coefficients in dB/(cm·MHz).
const ALPHA_SKIN: f32 = 1.0;
const ALPHA_FAT: f32 = 0.6;
const ALPHA_MUSCLE: f32 = 0.75;
const ALPHA_BLOOD: f32 = 0.25;
const ALPHA_THROMBUS: f32 = 0.5;
const ALPHA_BONE: f32 = 25.0;
/// Time-gain compensation restores muscle's attenuation at any frequency but for this
/// residual, in dB per cm of depth (round trip): the far field darkens as on a scanner.
const TGC_RESIDUAL_DB_PER_CM: f32 = 3.0;

/// Round-trip TGC gain in nepers per pixel of depth.
pub fn tgc_nepers_per_px(frequency_mhz: f32, spacing_mm: f32) -> f32 {
    let residual = TGC_RESIDUAL_DB_PER_CM * spacing_mm / 10.0 / 8.685_89;
    (nepers_per_px(ALPHA_MUSCLE, frequency_mhz, spacing_mm) - residual).max(0.0)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum VesselKind {
    Vein,
    Artery,
}

/// A vessel cross-section at rest: a superellipse `|u|^p + |v|^p <= 1` with
/// `u = (x - cx) / a`, `v = (y - cy) / b`, in pixels.
#[derive(Clone, Debug, Serialize)]
pub struct Vessel {
    pub kind: VesselKind,
    pub cx: f32,
    pub cy: f32,
    pub a: f32,
    pub b: f32,
    /// Superellipse exponent (2 is an ellipse; arteries are always ellipses).
    pub exponent: f32,
    /// Wall thickness in pixels.
    pub wall: f32,
    pub thrombosed: bool,
    /// Fraction of the lumen height lost at full compression (1 for a healthy vein).
    pub max_collapse: f32,
    /// Relative radius increase at systole (0 for veins).
    pub pulsation: f32,
}

impl Vessel {
    pub fn label(&self) -> u8 {
        match self.kind {
            VesselKind::Vein => labels::VEIN,
            VesselKind::Artery => labels::ARTERY,
        }
    }

    /// Normalised radius: 1 on the lumen boundary.
    #[inline]
    pub fn norm(&self, x: f32, y: f32) -> f32 {
        let u = ((x - self.cx) / self.a).abs();
        let v = ((y - self.cy) / self.b).abs();
        if self.exponent == 2.0 {
            (u * u + v * v).sqrt()
        } else {
            let p = self.exponent;
            (u.powf(p) + v.powf(p)).powf(1.0 / p)
        }
    }

    /// Half the lumen height in column `x` at rest (0 outside the vessel).
    pub fn half_chord(&self, x: f32) -> f32 {
        let u = ((x - self.cx) / self.a).abs();
        if u >= 1.0 {
            return 0.0;
        }
        self.b * (1.0 - u.powf(self.exponent)).powf(1.0 / self.exponent)
    }

    fn extent(&self) -> f32 {
        self.a.max(self.b) + self.wall
    }
}

/// The rectangle of tissue that the rasters cover, in frame-0 pixel coordinates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Grid {
    pub x0: i32,
    pub y0: i32,
    pub width: usize,
    pub height: usize,
}

impl Grid {
    /// Index of the raster cell nearest to `(x, y)`, clamped to the grid.
    #[inline]
    pub fn nearest(&self, x: f32, y: f32) -> usize {
        // Truncation equals floor for the non-negative values that survive the clamp.
        let i = ((x - self.x0 as f32 + 0.5).max(0.0) as i64).min(self.width as i64 - 1);
        let j = ((y - self.y0 as f32 + 0.5).max(0.0) as i64).min(self.height as i64 - 1);
        j as usize * self.width + i as usize
    }
}

/// Margins of tissue beyond the frame, in pixels.
#[derive(Clone, Copy, Debug)]
pub struct Margins {
    pub lateral: usize,
    pub top: usize,
    pub bottom: usize,
}

/// Smooth random field: Gaussian values on a coarse lattice, smoothstep-interpolated.
struct ValueNoise {
    x0: f32,
    y0: f32,
    cell: f32,
    width: usize,
    height: usize,
    values: Vec<f32>,
}

impl ValueNoise {
    fn new(rng: &mut ChaCha8Rng, grid: &Grid, cell: f32) -> Self {
        let cell = cell.max(1.0);
        let width = (grid.width as f32 / cell).ceil() as usize + 2;
        let height = (grid.height as f32 / cell).ceil() as usize + 2;
        let values = (0..width * height)
            .map(|_| StandardNormal.sample(rng))
            .collect();
        Self {
            x0: grid.x0 as f32,
            y0: grid.y0 as f32,
            cell,
            width,
            height,
            values,
        }
    }

    fn sample(&self, x: f32, y: f32) -> f32 {
        let gx = ((x - self.x0) / self.cell).clamp(0.0, (self.width - 2) as f32);
        let gy = ((y - self.y0) / self.cell).clamp(0.0, (self.height - 2) as f32);
        let (ix, iy) = (gx.floor() as usize, gy.floor() as usize);
        let smooth = |t: f32| t * t * (3.0 - 2.0 * t);
        let (fx, fy) = (smooth(gx - ix as f32), smooth(gy - iy as f32));
        let at = |i: usize, j: usize| self.values[j * self.width + i];
        let top = at(ix, iy) * (1.0 - fx) + at(ix + 1, iy) * fx;
        let bottom = at(ix, iy + 1) * (1.0 - fx) + at(ix + 1, iy + 1) * fx;
        top * (1.0 - fy) + bottom * fy
    }
}

/// A bright, thin, wavy line (fascia, septum): `y(x) = y0 + slope (x - x_start) + amp sin(freq x + phase)`.
struct Curve {
    x_start: f32,
    x_end: f32,
    y0: f32,
    slope: f32,
    amp: f32,
    freq: f32,
    phase: f32,
    sigma: f32,
    level: f32,
    /// Specular reflection amplitude of the interface along the curve's centre line.
    reflect: f32,
}

impl Curve {
    fn y_at(&self, x: f32) -> f32 {
        self.y0 + self.slope * (x - self.x_start) + self.amp * (self.freq * x + self.phase).sin()
    }
}

/// Tissue at rest.
pub struct Anatomy {
    pub vessels: Vec<Vessel>,
    /// Depth (px) below which compression moves tissue rigidly (top of the bone, or deep
    /// muscle when no bone is modelled).
    pub deep_boundary: f32,
    pub grid: Grid,
    /// Backscattered intensity per raster cell (muscle = 1).
    pub echo: Vec<f32>,
    /// Round-trip amplitude attenuation per raster cell, in nepers per pixel of depth.
    pub attenuation: Vec<f32>,
    /// Cells holding flowing blood, whose echoes decorrelate from frame to frame.
    pub blood: Vec<bool>,
    /// Label of each raster cell (its centre), i.e. frame 0's label map extended beyond the
    /// frame.
    pub labels: Vec<u8>,
    /// Specular interfaces (skin, fascia, septa, vessel walls, bone cortex) as point
    /// reflectors at exact positions: they image as continuous lines where the surface faces
    /// the probe and fade where it is tilted, as real interfaces do.
    pub interfaces: Vec<Interface>,
}

/// A point reflector on a specular interface, at rest.
#[derive(Clone, Copy, Debug)]
pub struct Interface {
    pub x: f32,
    pub y: f32,
    pub amplitude: f32,
}

fn uniform(rng: &mut ChaCha8Rng, lo: f32, hi: f32) -> f32 {
    lo + (hi - lo) * rng.random::<f32>()
}

/// Round-trip nepers per pixel for an attenuation coefficient in dB/(cm·MHz).
pub fn nepers_per_px(alpha_db_cm_mhz: f32, frequency_mhz: f32, spacing_mm: f32) -> f32 {
    2.0 * alpha_db_cm_mhz * frequency_mhz * spacing_mm / 10.0 / 8.685_89
}

impl Anatomy {
    /// Label (0, [`labels::VEIN`], [`labels::ARTERY`]) of the rest position `(x, y)`.
    #[inline]
    pub fn label_at(&self, x: f32, y: f32) -> u8 {
        for v in &self.vessels {
            if (x - v.cx).abs() < v.a && (y - v.cy).abs() < v.b && v.norm(x, y) <= 1.0 {
                return v.label();
            }
        }
        0
    }

    /// Builds the anatomy of `params.scene` with the random stream `rng`.
    pub fn generate(params: &PhantomParams, margins: Margins, rng: &mut ChaCha8Rng) -> Self {
        let grid = Grid {
            x0: -(margins.lateral as i32),
            y0: -(margins.top as i32),
            width: params.width + 2 * margins.lateral,
            height: params.height + margins.top + margins.bottom,
        };
        match params.scene {
            Scene::Uniform => Self::uniform(params, grid),
            Scene::Leg => Self::leg(params, grid, margins, rng),
        }
    }

    fn uniform(params: &PhantomParams, grid: Grid) -> Self {
        let n = grid.width * grid.height;
        // Attenuation equal to what TGC assumes: the envelope is flat over depth.
        let alpha = tgc_nepers_per_px(params.frequency_mhz, params.spacing_mm());
        Self {
            vessels: Vec::new(),
            deep_boundary: params.height as f32 * 2.0,
            grid,
            echo: vec![ECHO_MUSCLE; n],
            attenuation: vec![alpha; n],
            blood: vec![false; n],
            interfaces: Vec::new(),
            labels: vec![0; n],
        }
    }

    fn leg(params: &PhantomParams, grid: Grid, margins: Margins, rng: &mut ChaCha8Rng) -> Self {
        let spacing = params.spacing_mm();
        let mm = 1.0 / spacing;
        let fat_bottom = uniform(rng, 3.0, 9.0).min(0.25 * params.depth_mm).max(2.5) * mm;
        let layers = Layers {
            mm,
            skin: 0.4 * mm,
            dermis: 1.8 * mm,
            fat_bottom,
        };
        let fascia = fascia(rng, &grid, fat_bottom, mm);
        let vessels = place_vessels(params, rng, fascia.y0 + fascia.amp, margins);
        let deepest = vessels
            .iter()
            .map(|v| v.cy + v.b * (1.0 + v.pulsation) + v.wall)
            .fold(fat_bottom + 10.0 * mm, f32::max);
        let deep_boundary = deepest + uniform(rng, 6.0, 16.0) * mm;
        let bone = rng.random_bool(0.4).then(|| {
            let radius = uniform(rng, 40.0, 90.0) * mm;
            Bone {
                x: uniform(rng, 0.15, 0.85) * params.width as f32,
                y: deep_boundary + radius,
                radius,
            }
        });
        let mut curves = vec![fascia];
        curves.extend(tissue_curves(rng, &grid, &layers, params, deep_boundary));
        let textures = Textures::new(rng, &grid, mm);

        let (mut echo, mut alpha) = layer_rasters(&grid, &layers, &curves[0], &textures, bone);
        for curve in &curves {
            draw_curve(&mut echo, &grid, curve, mm);
        }
        let interfaces = specular_interfaces(&grid, &curves, &vessels, bone, mm);
        let mut blood = vec![false; grid.width * grid.height];
        for v in &vessels {
            paint_vessel(v, &grid, mm, &textures, &mut echo, &mut alpha, &mut blood);
        }
        let to_nepers = nepers_per_px(1.0, params.frequency_mhz, spacing);
        for a in &mut alpha {
            *a *= to_nepers;
        }
        Self {
            vessels,
            deep_boundary,
            grid,
            echo,
            attenuation: alpha,
            blood,
            interfaces,
            labels: Vec::new(),
        }
        .with_labels()
    }

    fn with_labels(mut self) -> Self {
        let grid = self.grid;
        self.labels = (0..grid.width * grid.height)
            .map(|k| {
                let x = (grid.x0 + (k % grid.width) as i32) as f32;
                let y = (grid.y0 + (k / grid.width) as i32) as f32;
                self.label_at(x, y)
            })
            .collect();
        self
    }
}

/// Depths of the leg's superficial layers in pixels, and pixels per millimetre.
struct Layers {
    mm: f32,
    skin: f32,
    dermis: f32,
    fat_bottom: f32,
}

/// A bone cross-section below the muscle: centre and radius in pixels.
#[derive(Clone, Copy)]
struct Bone {
    x: f32,
    y: f32,
    radius: f32,
}

/// The random textures of muscle, fat and thrombus.
struct Textures {
    muscle_fine: ValueNoise,
    muscle_coarse: ValueNoise,
    fat_lobules: ValueNoise,
    thrombus: ValueNoise,
}

impl Textures {
    fn new(rng: &mut ChaCha8Rng, grid: &Grid, mm: f32) -> Self {
        Self {
            muscle_fine: ValueNoise::new(rng, grid, 1.5 * mm),
            muscle_coarse: ValueNoise::new(rng, grid, 6.0 * mm),
            fat_lobules: ValueNoise::new(rng, grid, 2.5 * mm),
            thrombus: ValueNoise::new(rng, grid, 1.0 * mm),
        }
    }
}

/// The muscle fascia under the fat, across the whole grid.
fn fascia(rng: &mut ChaCha8Rng, grid: &Grid, fat_bottom: f32, mm: f32) -> Curve {
    Curve {
        x_start: grid.x0 as f32,
        x_end: (grid.x0 + grid.width as i32) as f32,
        y0: fat_bottom,
        slope: uniform(rng, -0.08, 0.08),
        amp: uniform(rng, 0.2, 1.0) * mm,
        freq: std::f32::consts::TAU / (uniform(rng, 15.0, 40.0) * mm),
        phase: uniform(rng, 0.0, std::f32::consts::TAU),
        sigma: 0.25 * mm,
        level: ECHO_FASCIA,
        reflect: REFLECT_FASCIA,
    }
}

/// Septa in the fat, intermuscular fasciae and short streaks in the muscle.
fn tissue_curves(
    rng: &mut ChaCha8Rng,
    grid: &Grid,
    layers: &Layers,
    params: &PhantomParams,
    deep_boundary: f32,
) -> Vec<Curve> {
    let &Layers {
        mm,
        dermis,
        fat_bottom,
        ..
    } = layers;
    let (w, h) = (params.width as f32, params.height as f32);
    let mut curves = Vec::new();
    let fat_septa = rng.random_range(8..20);
    for _ in 0..fat_septa {
        let x_start = uniform(rng, grid.x0 as f32, w);
        curves.push(Curve {
            x_start,
            x_end: x_start + uniform(rng, 6.0, 30.0) * mm,
            y0: uniform(rng, dermis, fat_bottom),
            slope: uniform(rng, -0.15, 0.15),
            amp: uniform(rng, 0.0, 0.6) * mm,
            freq: std::f32::consts::TAU / (uniform(rng, 3.0, 10.0) * mm),
            phase: uniform(rng, 0.0, std::f32::consts::TAU),
            sigma: 0.12 * mm,
            level: ECHO_SEPTUM,
            reflect: REFLECT_SEPTUM,
        });
    }
    let intermuscular = rng.random_range(2..6);
    for _ in 0..intermuscular {
        let x_start = uniform(rng, grid.x0 as f32, 0.6 * w);
        curves.push(Curve {
            x_start,
            x_end: x_start + uniform(rng, 0.4, 1.2) * w,
            y0: uniform(rng, fat_bottom + 4.0 * mm, h.min(deep_boundary)),
            slope: uniform(rng, -0.25, 0.25),
            amp: uniform(rng, 0.3, 1.5) * mm,
            freq: std::f32::consts::TAU / (uniform(rng, 10.0, 30.0) * mm),
            phase: uniform(rng, 0.0, std::f32::consts::TAU),
            sigma: 0.2 * mm,
            level: ECHO_FASCIA * 0.5,
            reflect: REFLECT_FASCIA * 0.6,
        });
    }
    let spacing = params.spacing_mm();
    let area_mm2 = (grid.width * grid.height) as f32 * spacing * spacing;
    let streaks = (area_mm2 / 5.0) as usize;
    for _ in 0..streaks {
        let x_start = uniform(rng, grid.x0 as f32, (grid.x0 + grid.width as i32) as f32);
        let length = uniform(rng, 0.8, 4.0) * mm;
        curves.push(Curve {
            x_start,
            x_end: x_start + length,
            y0: uniform(rng, fat_bottom, (grid.y0 + grid.height as i32) as f32),
            slope: uniform(rng, -0.5, 0.5),
            amp: 0.0,
            freq: 0.0,
            phase: 0.0,
            sigma: 0.1 * mm,
            level: ECHO_STREAK,
            reflect: 0.0,
        });
    }
    curves
}

/// Echogenicity and attenuation (dB/(cm·MHz)) of skin, dermis, fat, muscle and bone per raster
/// cell, before vessels and curves are drawn.
fn layer_rasters(
    grid: &Grid,
    layers: &Layers,
    fascia: &Curve,
    textures: &Textures,
    bone: Option<Bone>,
) -> (Vec<f32>, Vec<f32>) {
    let n = grid.width * grid.height;
    let mut echo = vec![0.0f32; n];
    let mut alpha = vec![0.0f32; n];
    for j in 0..grid.height {
        let y = (grid.y0 + j as i32) as f32;
        for i in 0..grid.width {
            let x = (grid.x0 + i as i32) as f32;
            let k = j * grid.width + i;
            let (e, a) = if y < 0.0 {
                (0.0, 0.0)
            } else if y < layers.skin {
                (ECHO_SKIN, ALPHA_SKIN)
            } else if y < layers.dermis {
                (ECHO_DERMIS, ALPHA_SKIN)
            } else if y < fascia.y_at(x) {
                let lobule = (0.7 * textures.fat_lobules.sample(x, y)).exp();
                (ECHO_FAT * lobule, ALPHA_FAT)
            } else {
                let texture = (0.6 * textures.muscle_fine.sample(x, y)
                    + 0.4 * textures.muscle_coarse.sample(x, y))
                .exp();
                (ECHO_MUSCLE * texture, ALPHA_MUSCLE)
            };
            echo[k] = e;
            alpha[k] = a;
            if let Some(Bone {
                x: bx,
                y: by,
                radius,
            }) = bone
            {
                let r = ((x - bx).powi(2) + (y - by).powi(2)).sqrt();
                let d = r - radius;
                if d < 0.0 {
                    echo[k] = ECHO_MARROW;
                    alpha[k] = ALPHA_BONE;
                }
                let sigma = 0.35 * layers.mm;
                if d.abs() < 3.0 * sigma && y < by {
                    echo[k] += ECHO_CORTEX * (-0.5 * (d / sigma).powi(2)).exp();
                }
            }
        }
    }
    (echo, alpha)
}

/// The specular interfaces: along the curves and the skin surface (except through a vessel or
/// the bone), the bone's upper cortex and each vessel's intima and adventitia.
fn specular_interfaces(
    grid: &Grid,
    curves: &[Curve],
    vessels: &[Vessel],
    bone: Option<Bone>,
    mm: f32,
) -> Vec<Interface> {
    let mut interfaces = Vec::new();
    for curve in curves {
        curve_interface(&mut interfaces, grid, curve, mm);
    }
    // The skin surface: a continuous bright line just under the probe.
    let skin_line = Curve {
        x_start: grid.x0 as f32,
        x_end: (grid.x0 + grid.width as i32) as f32,
        y0: 0.15 * mm,
        slope: 0.0,
        amp: 0.0,
        freq: 0.0,
        phase: 0.0,
        sigma: 0.0,
        level: 0.0,
        reflect: REFLECT_SKIN,
    };
    curve_interface(&mut interfaces, grid, &skin_line, mm);
    // No interface runs through a lumen, a vessel wall or the bone.
    interfaces.retain(|p| {
        let in_vessel = vessels.iter().any(|v| {
            let reach = 1.0 + (v.wall + 1.0) / (0.5 * (v.a + v.b));
            v.norm(p.x, p.y) <= reach * (1.0 + v.pulsation)
        });
        let in_bone = bone.is_some_and(
            |Bone {
                 x: bx,
                 y: by,
                 radius,
             }| { (p.x - bx).powi(2) + (p.y - by).powi(2) < radius * radius },
        );
        !in_vessel && !in_bone
    });
    if let Some(Bone {
        x: bx,
        y: by,
        radius,
    }) = bone
    {
        // The upper half of the cortex, as seen from above.
        let steps = (std::f32::consts::PI * radius / INTERFACE_STEP) as usize;
        for i in 0..steps {
            let theta = std::f32::consts::PI * (1.0 + i as f32 / steps as f32);
            let facing = theta.sin().abs();
            interfaces.push(Interface {
                x: bx + radius * theta.cos(),
                y: by + radius * theta.sin(),
                amplitude: REFLECT_CORTEX * (0.3 + 0.7 * facing.powi(4)),
            });
        }
    }
    for v in vessels {
        // Intima and adventitia: two outlines, which the beam sees best at the top and
        // bottom of the lumen (specular reflection needs a surface facing the probe).
        let mean_radius = 0.5 * (v.a + v.b);
        for rho in [
            1.0 + 0.15 * v.wall / mean_radius,
            1.0 + 0.9 * v.wall / mean_radius,
        ] {
            let steps = (std::f32::consts::TAU * v.a.max(v.b) * rho / INTERFACE_STEP) as usize;
            for i in 0..steps {
                let theta = std::f32::consts::TAU * i as f32 / steps as f32;
                let (nx, ny) = (theta.cos() / v.a, theta.sin() / v.b);
                let facing = ny.abs() / (nx * nx + ny * ny).sqrt();
                interfaces.push(Interface {
                    x: v.cx + rho * v.a * theta.cos(),
                    y: v.cy + rho * v.b * theta.sin(),
                    amplitude: REFLECT_WALL * (0.1 + 0.9 * facing.powi(4)),
                });
            }
        }
    }
    interfaces
}

/// Paints one vessel into the rasters: its lumen (blood, or thrombus), its specular wall and
/// the sheath around it.
fn paint_vessel(
    v: &Vessel,
    grid: &Grid,
    mm: f32,
    textures: &Textures,
    echo: &mut [f32],
    alpha: &mut [f32],
    blood: &mut [bool],
) {
    let reach = v.extent() + 1.6 * mm;
    let i_lo = ((v.cx - reach).floor() as i32 - grid.x0).max(0) as usize;
    let i_hi = ((v.cx + reach).ceil() as i32 - grid.x0).clamp(0, grid.width as i32) as usize;
    let j_lo = ((v.cy - reach).floor() as i32 - grid.y0).max(0) as usize;
    let j_hi = ((v.cy + reach).ceil() as i32 - grid.y0).clamp(0, grid.height as i32) as usize;
    let mean_radius = 0.5 * (v.a + v.b);
    let wall = v.wall / mean_radius;
    let sheath = 1.5 * mm / mean_radius;
    for j in j_lo..j_hi {
        let y = (grid.y0 + j as i32) as f32;
        for i in i_lo..i_hi {
            let x = (grid.x0 + i as i32) as f32;
            let k = j * grid.width + i;
            let rho = v.norm(x, y);
            if rho <= 1.0 {
                if v.thrombosed {
                    let t = (0.8 * textures.thrombus.sample(x, y)).exp();
                    echo[k] = ECHO_THROMBUS * t;
                    alpha[k] = ALPHA_THROMBUS;
                } else {
                    echo[k] = ECHO_BLOOD;
                    alpha[k] = ALPHA_BLOOD;
                    blood[k] = true;
                }
            } else if rho <= 1.0 + wall {
                // Specular wall: brightest where the beam (vertical) hits it head-on.
                let nx = (x - v.cx) / (v.a * v.a);
                let ny = (y - v.cy) / (v.b * v.b);
                let cos2 = ny * ny / (nx * nx + ny * ny + 1e-12);
                echo[k] = ECHO_WALL * (0.05 + 0.95 * cos2 * cos2);
                alpha[k] = ALPHA_MUSCLE;
            } else if rho <= 1.0 + wall + sheath {
                let fade = 1.0 - (rho - 1.0 - wall) / sheath;
                echo[k] += ECHO_SHEATH * fade * (0.5 + textures.muscle_fine.sample(x, y).abs());
            }
        }
    }
}

fn curve_interface(interfaces: &mut Vec<Interface>, grid: &Grid, curve: &Curve, mm: f32) {
    if curve.reflect <= 0.0 {
        return;
    }
    let taper = (2.0 * mm)
        .min(0.25 * (curve.x_end - curve.x_start))
        .max(1.0);
    let x_lo = curve.x_start.max(grid.x0 as f32);
    let x_hi = curve.x_end.min((grid.x0 + grid.width as i32) as f32);
    let steps = ((x_hi - x_lo) / INTERFACE_STEP).max(0.0) as usize;
    for i in 0..steps {
        let x = x_lo + i as f32 * INTERFACE_STEP;
        let fade = ((x - curve.x_start) / taper)
            .min((curve.x_end - x) / taper)
            .clamp(0.0, 1.0);
        let y = curve.y_at(x);
        // Specular: strongest where the surface faces the probe.
        let slope = (curve.y_at(x + 0.5) - curve.y_at(x - 0.5)).abs();
        let facing = 1.0 / (1.0 + slope * slope).sqrt();
        if y >= 0.0 {
            interfaces.push(Interface {
                x,
                y,
                amplitude: curve.reflect * fade * (0.3 + 0.7 * facing.powi(4)),
            });
        }
    }
}

fn draw_curve(echo: &mut [f32], grid: &Grid, curve: &Curve, mm: f32) {
    let reach = 3.0 * curve.sigma;
    let taper = (2.0 * mm)
        .min(0.25 * (curve.x_end - curve.x_start))
        .max(1.0);
    let i_lo = ((curve.x_start.floor() as i32) - grid.x0).max(0) as usize;
    let i_hi = ((curve.x_end.ceil() as i32) - grid.x0).clamp(0, grid.width as i32) as usize;
    for i in i_lo..i_hi {
        let x = (grid.x0 + i as i32) as f32;
        let fade = ((x - curve.x_start) / taper)
            .min((curve.x_end - x) / taper)
            .clamp(0.0, 1.0);
        let yc = curve.y_at(x);
        let j_lo = ((yc - reach).floor() as i32 - grid.y0).max(0) as usize;
        let j_hi = ((yc + reach).ceil() as i32 - grid.y0).clamp(0, grid.height as i32) as usize;
        for j in j_lo..j_hi {
            let y = (grid.y0 + j as i32) as f32;
            if y < 0.0 {
                continue;
            }
            let d = (y - yc) / curve.sigma;
            echo[j * grid.width + i] += curve.level * fade * (-0.5 * d * d).exp();
        }
    }
}

/// No point of `v`'s outline, at systole, grown by its wall and `gap`, lies in `o`'s outline
/// at systole grown by its wall.
fn separated(v: &Vessel, o: &Vessel, gap: f32) -> bool {
    const POINTS: usize = 48;
    let grow_v = 1.0 + v.pulsation;
    let grow_o = 1.0 + o.pulsation;
    let grown_o = Vessel {
        a: o.a * grow_o + o.wall,
        b: o.b * grow_o + o.wall,
        exponent: 2.0_f32.min(o.exponent),
        ..o.clone()
    };
    (0..POINTS).all(|i| {
        let theta = i as f32 / POINTS as f32 * std::f32::consts::TAU;
        let x = v.cx + (v.a * grow_v + v.wall + gap) * theta.cos();
        let y = v.cy + (v.b * grow_v + v.wall + gap) * theta.sin();
        grown_o.norm(x, y) > 1.0
    })
}

/// Vessels of a femoral (artery beside the vein) or popliteal (vein above the artery) exam.
fn place_vessels(
    params: &PhantomParams,
    rng: &mut ChaCha8Rng,
    fat_bottom: f32,
    margins: Margins,
) -> Vec<Vessel> {
    let mm = 1.0 / params.spacing_mm();
    let (w, h) = (params.width as f32, params.height as f32);
    // Keep vessels in view while the probe slides; small frames get smaller vessels.
    let side = (margins.lateral as f32 * 0.6).min(0.15 * w);
    let size_limit = 0.16 * w.min(h);
    let popliteal = rng.random_bool(0.35);
    let mut vessels: Vec<Vessel> = Vec::new();
    let fits = |v: &Vessel, others: &[Vessel]| {
        let inside = v.cx - v.a - v.wall >= side
            && v.cx + v.a + v.wall <= w - side
            && v.cy - v.b - v.wall >= fat_bottom + 1.0 * mm
            && v.cy + v.b * (1.0 + v.pulsation) + v.wall <= 0.85 * h;
        inside
            && others
                .iter()
                .all(|o| separated(v, o, 1.0 * mm) && separated(o, v, 1.0 * mm))
    };
    let make = |rng: &mut ChaCha8Rng, kind: VesselKind, radius_mm: (f32, f32), main: bool| {
        let radius = (uniform(rng, radius_mm.0, radius_mm.1) * mm).min(size_limit);
        let (aspect, exponent) = match kind {
            VesselKind::Vein => (uniform(rng, 1.05, 1.5), uniform(rng, 1.8, 2.5)),
            VesselKind::Artery => (uniform(rng, 0.95, 1.08), 2.0),
        };
        let thrombosed = main && kind == VesselKind::Vein && params.thrombosed;
        Vessel {
            kind,
            cx: 0.0,
            cy: 0.0,
            a: radius * aspect.sqrt(),
            b: radius / aspect.sqrt(),
            exponent,
            wall: (uniform(rng, 0.5, 0.8) * mm).max(1.0),
            thrombosed,
            max_collapse: match (kind, thrombosed) {
                (VesselKind::Vein, false) => 1.0,
                (VesselKind::Vein, true) => uniform(rng, 0.05, 0.25),
                (VesselKind::Artery, _) => 0.1,
            },
            pulsation: match kind {
                VesselKind::Vein => 0.0,
                VesselKind::Artery => uniform(rng, 0.05, 0.09),
            },
        }
    };
    const TRIES: usize = 200;

    // Main vein.
    let mut main_vein = None;
    if params.veins > 0 {
        let template = make(rng, VesselKind::Vein, (4.0, 6.0), true);
        for _ in 0..TRIES {
            let mut v = template.clone();
            v.cx = uniform(rng, 0.3, 0.7) * w;
            v.cy = fat_bottom + uniform(rng, 2.0, 7.0) * mm + v.b + v.wall;
            if fits(&v, &vessels) {
                main_vein = Some(vessels.len());
                vessels.push(v);
                break;
            }
        }
    }
    // Main artery next to it.
    if params.arteries > 0 {
        let template = make(rng, VesselKind::Artery, (3.0, 4.5), true);
        for _ in 0..TRIES {
            let mut v = template.clone();
            if let Some(vein) = main_vein.map(|i| vessels[i].clone()) {
                let gap = uniform(rng, 1.0, 4.0) * mm;
                if popliteal {
                    v.cx = vein.cx + uniform(rng, -0.4, 0.4) * vein.a;
                    v.cy = vein.cy + vein.b + v.b + vein.wall + v.wall + gap;
                } else {
                    let side = if rng.random_bool(0.5) { 1.0 } else { -1.0 };
                    v.cx = vein.cx + side * (vein.a + v.a + vein.wall + v.wall + gap);
                    v.cy = vein.cy + uniform(rng, -0.6, 0.2) * vein.b;
                }
            } else {
                v.cx = uniform(rng, 0.3, 0.7) * w;
                v.cy = fat_bottom + uniform(rng, 3.0, 10.0) * mm + v.b;
            }
            if fits(&v, &vessels) {
                vessels.push(v);
                break;
            }
        }
    }
    // Smaller veins (saphenous, muscular branches) and arteries (deep femoral, branches).
    let extra = [
        (VesselKind::Vein, params.veins.saturating_sub(1)),
        (VesselKind::Artery, params.arteries.saturating_sub(1)),
    ];
    for (kind, count) in extra {
        for _ in 0..count {
            let template = make(rng, kind, (1.5, 3.0), false);
            for _ in 0..TRIES {
                let mut v = template.clone();
                v.cx = uniform(rng, 0.1, 0.9) * w;
                v.cy = uniform(rng, fat_bottom, 0.8 * h);
                if fits(&v, &vessels) {
                    vessels.push(v);
                    break;
                }
            }
        }
    }
    vessels
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn margins() -> Margins {
        Margins {
            lateral: 20,
            top: 8,
            bottom: 40,
        }
    }

    #[test]
    fn leg_has_the_requested_vessels_without_overlap() {
        let params = PhantomParams {
            veins: 2,
            arteries: 2,
            ..Default::default()
        };
        for seed in 0..10 {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            let anatomy = Anatomy::generate(&params, margins(), &mut rng);
            let count = |kind| anatomy.vessels.iter().filter(|v| v.kind == kind).count();
            assert_eq!(
                (count(VesselKind::Vein), count(VesselKind::Artery)),
                (2, 2),
                "seed {seed}: veins and arteries"
            );
            for (i, v) in anatomy.vessels.iter().enumerate() {
                assert!(v.cy + v.b < anatomy.deep_boundary);
                assert_eq!(anatomy.label_at(v.cx, v.cy), v.label());
                for o in &anatomy.vessels[i + 1..] {
                    assert_ne!(o.label_at_centre_of(v), o.label(), "overlap, seed {seed}");
                }
            }
        }
    }

    impl Vessel {
        fn label_at_centre_of(&self, other: &Vessel) -> u8 {
            if self.norm(other.cx, other.cy) <= 1.0 {
                self.label()
            } else {
                0
            }
        }
    }

    #[test]
    fn lumen_is_far_darker_than_muscle() {
        let params = PhantomParams::default();
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let anatomy = Anatomy::generate(&params, margins(), &mut rng);
        let v = &anatomy.vessels[0];
        let lumen = anatomy.echo[anatomy.grid.nearest(v.cx, v.cy)];
        assert!(lumen < 1e-3 * ECHO_MUSCLE);
    }

    #[test]
    fn half_chord_matches_the_boundary() {
        let v = Vessel {
            kind: VesselKind::Vein,
            cx: 10.0,
            cy: 20.0,
            a: 6.0,
            b: 4.0,
            exponent: 2.0,
            wall: 1.0,
            thrombosed: false,
            max_collapse: 1.0,
            pulsation: 0.0,
        };
        assert!((v.half_chord(10.0) - 4.0).abs() < 1e-5);
        assert_eq!(v.half_chord(16.5), 0.0);
        let h = v.half_chord(13.0);
        assert!((v.norm(13.0, 20.0 + h) - 1.0).abs() < 1e-4);
    }
}
