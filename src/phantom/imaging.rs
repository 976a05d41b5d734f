//! Image formation of a linear probe: point-spread function in IQ (baseband), envelope
//! detection, attenuation, time-gain compensation, electronic noise and log compression.
//!
//! The received IQ signal of a scatterer of complex amplitude `a` at depth `z` is
//! `a exp(-i 2 k0 z) h(x - xs, z - zs)`, with `h` the (real) envelope of the pulse-echo PSF:
//! Gaussian axially (pulse length) and laterally (beam width, growing away from the focus).
//! The phase term is what makes speckle translate with the tissue and decorrelate under strain.

use super::anatomy::tgc_nepers_per_px;

/// Speed of sound in mm/µs.
pub const SPEED_OF_SOUND: f32 = 1.54;
/// Transmit pulse length in cycles.
const PULSE_CYCLES: f32 = 2.5;
/// Lateral f-number of the receive aperture.
const F_NUMBER: f32 = 2.2;
/// The scanner's display filter keeps the PSF at least this wide (px), so that speckle is
/// resolved at any frame size.
const MIN_SIGMA_AXIAL_PX: f32 = 0.9;
const MIN_SIGMA_LATERAL_PX: f32 = 1.3;
/// Gray level of muscle's mean echo at 0 dB gain.
const MUSCLE_GRAY: f32 = 45.0;

/// A Gaussian kernel of unit energy (sum of squares 1), so that a uniform scatterer field of
/// unit intensity gives unit mean intensity.
pub fn gaussian_kernel(sigma: f32) -> Vec<f32> {
    let radius = (3.0 * sigma).ceil().max(1.0) as i32;
    let mut k: Vec<f32> = (-radius..=radius)
        .map(|i| (-0.5 * (i as f32 / sigma).powi(2)).exp())
        .collect();
    let energy: f32 = k.iter().map(|v| v * v).sum::<f32>().sqrt();
    for v in &mut k {
        *v /= energy;
    }
    k
}

/// The probe and scanner settings turned into per-pixel quantities.
#[derive(Clone, Debug)]
pub struct Probe {
    /// Axial PSF kernel (odd length).
    pub axial: Vec<f32>,
    /// Lateral PSF kernel of each frame row (odd lengths).
    pub lateral: Vec<Vec<f32>>,
    /// Padding of the IQ buffer: lateral and axial kernel radii.
    pub pad_x: usize,
    pub pad_z: usize,
    /// Round-trip phase per pixel of depth, `2 k0 spacing`, in radians.
    pub phase_per_px: f32,
    pub phase_table: PhaseTable,
    /// TGC in nepers per pixel of depth (round trip).
    pub tgc_per_px: f32,
    /// Electronic noise standard deviation (per I and Q) at the receiver, before TGC.
    pub noise_sigma: f32,
    /// Gray level = `gray_offset + gray_per_db * dB`.
    pub gray_offset: f32,
    pub gray_per_db: f32,
}

impl Probe {
    pub fn new(
        frequency_mhz: f32,
        spacing_mm: f32,
        height: usize,
        dynamic_range_db: f32,
        gain_db: f32,
    ) -> Self {
        let wavelength = SPEED_OF_SOUND / frequency_mhz;
        // Axial resolution (FWHM) is half the spatial pulse length.
        let axial_fwhm = 0.5 * PULSE_CYCLES * wavelength;
        let sigma_z = (axial_fwhm / 2.355 / spacing_mm).max(MIN_SIGMA_AXIAL_PX);
        let depth = spacing_mm * height as f32;
        let focus = 0.55 * depth;
        let waist = F_NUMBER * wavelength / 2.355;
        // Depth of field of a dynamically focused receive beam; never shorter than a third of
        // the image so the beam widens gently, as on a modern scanner.
        let rayleigh = (8.0 * wavelength * F_NUMBER * F_NUMBER).max(0.3 * depth);
        let lateral: Vec<Vec<f32>> = (0..height)
            .map(|row| {
                let z = (row as f32 + 0.5) * spacing_mm;
                let sigma = waist * (1.0 + ((z - focus) / rayleigh).powi(2)).sqrt();
                gaussian_kernel((sigma / spacing_mm).max(MIN_SIGMA_LATERAL_PX))
            })
            .collect();
        let axial = gaussian_kernel(sigma_z);
        let pad_x = lateral.iter().map(|k| k.len() / 2).max().unwrap_or(0);
        let pad_z = axial.len() / 2;
        let tgc_per_px = tgc_nepers_per_px(frequency_mhz, spacing_mm);
        Self {
            axial,
            lateral,
            pad_x,
            pad_z,
            phase_per_px: 2.0 * std::f32::consts::TAU / wavelength * spacing_mm,
            phase_table: PhaseTable::default(),
            tgc_per_px,
            // 72 dB below muscle at the receiver: visible only deep, where TGC is high.
            noise_sigma: 10f32.powf(-72.0 / 20.0) / std::f32::consts::SQRT_2,
            gray_offset: MUSCLE_GRAY + 255.0 / dynamic_range_db * gain_db,
            gray_per_db: 255.0 / dynamic_range_db,
        }
    }

    /// Maps an intensity (|IQ|^2, muscle = 1) to an 8-bit gray level.
    #[inline]
    pub fn compress(&self, intensity: f32) -> u8 {
        let db = 10.0 * fast_log10(intensity.max(1e-30));
        (self.gray_offset + self.gray_per_db * db).clamp(0.0, 255.0) as u8
    }
}

/// log10 with about 1e-6 absolute error, for positive normal `x`: enough for display.
#[inline]
pub fn fast_log10(x: f32) -> f32 {
    let bits = x.to_bits();
    let mut exponent = ((bits >> 23) & 0xff) as i32 - 127;
    let mut m = f32::from_bits((bits & 0x007f_ffff) | 0x3f80_0000); // mantissa in [1, 2)
    if m > std::f32::consts::SQRT_2 {
        m *= 0.5;
        exponent += 1;
    }
    // ln m = 2 atanh(s), s = (m - 1) / (m + 1), |s| < 0.172: four terms suffice.
    let s = (m - 1.0) / (m + 1.0);
    let s2 = s * s;
    let ln_m = 2.0 * s * (1.0 + s2 * (1.0 / 3.0 + s2 * (0.2 + s2 / 7.0)));
    exponent as f32 * std::f32::consts::LOG10_2 + ln_m * std::f32::consts::LOG10_E
}

/// `(sin x, cos x)` to about 2e-5 for any finite `x`, without branches (phases of random
/// scatterers would defeat branch prediction).
#[inline]
pub fn fast_sin_cos(x: f32) -> (f32, f32) {
    use std::f32::consts::TAU;
    // Round to the nearest turn without a libm call (values stay far inside i32).
    let turns = x * (1.0 / TAU);
    let r = x - TAU * ((turns + 0.5f32.copysign(turns)) as i32 as f32);
    // Taylor series on [-pi, pi]: odd terms to r^13, even terms to r^14.
    let r2 = r * r;
    let sin = r
        * (1.0
            + r2 * (-1.0 / 6.0
                + r2 * (1.0 / 120.0
                    + r2 * (-1.0 / 5040.0
                        + r2 * (1.0 / 362_880.0
                            + r2 * (-1.0 / 39_916_800.0 + r2 / 6_227_020_800.0))))));
    let cos = 1.0
        + r2 * (-0.5
            + r2 * (1.0 / 24.0
                + r2 * (-1.0 / 720.0
                    + r2 * (1.0 / 40_320.0
                        + r2 * (-1.0 / 3_628_800.0
                            + r2 * (1.0 / 479_001_600.0 - r2 / 87_178_291_200.0))))));
    (sin, cos)
}

/// `(sin, cos)` of `2 pi t` by a 1024-entry table with linear interpolation (error < 5e-6),
/// for the per-scatterer phase that every frame needs.
#[derive(Clone, Debug)]
pub struct PhaseTable {
    table: Vec<[f32; 2]>,
}

impl Default for PhaseTable {
    fn default() -> Self {
        const N: usize = 1024;
        let table = (0..=N)
            .map(|i| {
                let (s, c) = (i as f64 / N as f64 * std::f64::consts::TAU).sin_cos();
                [s as f32, c as f32]
            })
            .collect();
        Self { table }
    }
}

impl PhaseTable {
    /// `(sin, cos)` of `2 pi turns`.
    #[inline]
    pub fn sin_cos_turns(&self, turns: f32) -> (f32, f32) {
        let n = (self.table.len() - 1) as f32;
        let mut frac = turns - (turns as i64) as f32;
        if frac < 0.0 {
            frac += 1.0;
        }
        let g = frac * n;
        let i = (g as usize).min(self.table.len() - 2);
        let f = g - i as f32;
        let (a, b) = (self.table[i], self.table[i + 1]);
        (a[0] + (b[0] - a[0]) * f, a[1] + (b[1] - a[1]) * f)
    }
}

/// SplitMix64: a tiny, portable random stream for per-frame noise (reproducible everywhere).
#[derive(Clone, Debug)]
pub struct FastRng(u64);

impl FastRng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    #[inline]
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Approximately standard normal: a sum of four uniforms, rescaled (Irwin–Hall).
    #[inline]
    pub fn normal(&mut self) -> f32 {
        let r = self.next_u64();
        let sum = (r & 0xffff) + ((r >> 16) & 0xffff) + ((r >> 32) & 0xffff) + (r >> 48);
        // Four uniforms on [0, 1): mean 2, variance 1/3.
        (sum as f32 / 65536.0 - 2.0) * 1.732_050_8
    }

    /// Uniform on [0, 1).
    #[inline]
    pub fn uniform(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32
    }
}

/// Mixes a seed and a stream index into a new seed.
pub fn mix_seed(seed: u64, stream: u64) -> u64 {
    let mut rng = FastRng::new(seed ^ stream.wrapping_mul(0xd1b5_4a32_d192_ed03));
    rng.next_u64()
}

/// `out[y][x] = sum_k kernel[k] * input[y + k][x]` for `rows` output rows (input has
/// `rows + kernel.len() - 1` rows of `width`).
pub fn convolve_axial(input: &[f32], out: &mut [f32], width: usize, rows: usize, kernel: &[f32]) {
    for y in 0..rows {
        let dst = &mut out[y * width..(y + 1) * width];
        dst.fill(0.0);
        for (k, &weight) in kernel.iter().enumerate() {
            let src = &input[(y + k) * width..(y + k + 1) * width];
            for (d, s) in dst.iter_mut().zip(src) {
                *d += weight * s;
            }
        }
    }
}

/// Lateral convolution of one row of interleaved samples (`channels` values per pixel):
/// `out[x] = sum_k kernel[k] * input[x + offset + k]` per channel, where
/// `offset = pad - kernel.len() / 2` centres the kernel on a row padded by `pad` pixels each side.
pub fn convolve_row(input: &[f32], out: &mut [f32], pad: usize, kernel: &[f32], channels: usize) {
    let offset = (pad - kernel.len() / 2) * channels;
    out.fill(0.0);
    let len = out.len();
    for (k, &weight) in kernel.iter().enumerate() {
        let start = offset + k * channels;
        let src = &input[start..start + len];
        for (d, s) in out.iter_mut().zip(src) {
            *d += weight * s;
        }
    }
}

/// In-place [1 2 1] / 4 smoothing along both axes (edges replicated). It stands in for the
/// spatial compounding and speckle smoothing every scanner applies before display.
pub fn smooth_121(data: &mut [f32], width: usize, height: usize, scratch: &mut Vec<f32>) {
    if width < 3 || height < 3 {
        return;
    }
    for row in data.chunks_exact_mut(width) {
        let mut previous = row[0];
        for x in 0..width {
            let next = row[(x + 1).min(width - 1)];
            let current = row[x];
            row[x] = 0.25 * (previous + 2.0 * current + next);
            previous = current;
        }
    }
    scratch.clear();
    scratch.extend_from_slice(&data[..width]);
    for y in 0..height {
        let next_row = (y + 1).min(height - 1) * width;
        for x in 0..width {
            let current = data[y * width + x];
            let smoothed = 0.25 * (scratch[x] + 2.0 * current + data[next_row + x]);
            scratch[x] = current;
            data[y * width + x] = smoothed;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smoothing_keeps_flat_fields_and_the_mean() {
        let mut flat = vec![2.0f32; 20];
        smooth_121(&mut flat, 5, 4, &mut Vec::new());
        assert!(flat.iter().all(|v| (v - 2.0).abs() < 1e-6));
        let mut spike = vec![0.0f32; 25];
        spike[12] = 16.0;
        smooth_121(&mut spike, 5, 5, &mut Vec::new());
        assert_eq!(spike[12], 4.0);
        assert_eq!(spike[7], 2.0);
        assert_eq!(spike[6], 1.0);
        assert!((spike.iter().sum::<f32>() - 16.0).abs() < 1e-5);
    }

    #[test]
    fn kernels_have_unit_energy() {
        for sigma in [0.8, 1.3, 4.0] {
            let k = gaussian_kernel(sigma);
            let e: f32 = k.iter().map(|v| v * v).sum();
            assert!((e - 1.0).abs() < 1e-5);
            assert_eq!(k.len() % 2, 1);
        }
    }

    #[test]
    fn fast_math_is_close() {
        for i in -2000..2000 {
            let x = i as f32 * 0.37;
            let (s, c) = fast_sin_cos(x);
            assert!(
                (s - x.sin()).abs() < 2e-4 && (c - x.cos()).abs() < 2e-4,
                "{x}"
            );
        }
        for x in [1e-6f32, 0.01, 0.5, 1.0, 3.3, 1e4, 7e8] {
            assert!((fast_log10(x) - x.log10()).abs() < 2e-4, "{x}");
        }
    }

    #[test]
    fn phase_table_is_accurate() {
        let table = PhaseTable::default();
        for i in -3000..3000 {
            let t = i as f32 * 0.0137;
            let (s, c) = table.sin_cos_turns(t);
            let x = std::f32::consts::TAU * t;
            assert!(
                (s - x.sin()).abs() < 2e-4 && (c - x.cos()).abs() < 2e-4,
                "{t}"
            );
        }
    }

    #[test]
    fn noise_is_roughly_standard_normal() {
        let mut rng = FastRng::new(5);
        let n = 100_000;
        let v: Vec<f32> = (0..n).map(|_| rng.normal()).collect();
        let mean = v.iter().sum::<f32>() / n as f32;
        let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f32>() / n as f32;
        assert!(mean.abs() < 0.02 && (var - 1.0).abs() < 0.03);
    }

    #[test]
    fn compression_maps_muscle_to_its_gray_level() {
        let probe = Probe::new(7.5, 0.15, 64, 60.0, 0.0);
        assert_eq!(probe.compress(1.0), MUSCLE_GRAY as u8);
        assert_eq!(probe.compress(1e-8), 0);
        assert_eq!(probe.compress(1e8), 255);
    }
}
