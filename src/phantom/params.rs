//! Parameters of a phantom sequence: probe, anatomy and motion. Every field has physical units.

use serde::Serialize;
use thiserror::Error;

/// What the probe looks at.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scene {
    /// Leg cross-section of a femoral or popliteal compression exam.
    Leg,
    /// A homogeneous block of fully developed speckle (for checking the imaging chain).
    Uniform,
}

#[derive(Debug, Error, PartialEq)]
pub enum ParamsError {
    #[error("{name} = {value} is outside {min}..={max}")]
    OutOfRange {
        name: &'static str,
        value: f64,
        min: f64,
        max: f64,
    },
}

/// Everything that defines a phantom sequence. The same parameters give the same frames.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PhantomParams {
    /// Frame width in pixels (pixels are square).
    pub width: usize,
    /// Frame height in pixels; the image spans `depth_mm` vertically.
    pub height: usize,
    /// Frames per second: sets the time between frames for all motion.
    pub fps: f64,
    /// Seed of the anatomy, the scatterers, the motion phases and the noise.
    pub seed: u64,
    /// Probe centre frequency in MHz: sets speckle size and attenuation.
    pub frequency_mhz: f32,
    /// Imaging depth in mm (the frame height); the pixel spacing is `depth_mm / height`.
    pub depth_mm: f32,
    /// Displayed dynamic range of the log compression in dB.
    pub dynamic_range_db: f32,
    /// Overall gain in dB added before log compression.
    pub gain_db: f32,
    /// Number of veins (the first is the main deep vein).
    pub veins: u32,
    /// Number of arteries (the first is the main artery beside the main vein).
    pub arteries: u32,
    /// The main vein holds a thrombus: it collapses only partly under compression.
    pub thrombosed: bool,
    /// Probe displacement into the tissue at peak compression, in mm.
    pub compression_depth_mm: f32,
    /// Duration of one compress-and-release cycle in seconds (0 disables compression).
    pub compression_period_s: f32,
    /// Heart rate driving the arterial pulsation, in beats per minute (0 disables it).
    pub heart_rate_bpm: f32,
    /// Scale of the probe motion (sliding, rocking, elevational drift, tremor); 0 holds the
    /// probe perfectly still, 1 is a steady hand.
    pub motion_amplitude: f32,
    /// Anatomy to image.
    pub scene: Scene,
}

impl Default for PhantomParams {
    fn default() -> Self {
        Self {
            width: 256,
            height: 256,
            fps: 30.0,
            seed: 0,
            frequency_mhz: 7.5,
            depth_mm: 40.0,
            dynamic_range_db: 60.0,
            gain_db: 0.0,
            veins: 1,
            arteries: 1,
            thrombosed: false,
            compression_depth_mm: 8.0,
            compression_period_s: 3.0,
            heart_rate_bpm: 70.0,
            motion_amplitude: 1.0,
            scene: Scene::Leg,
        }
    }
}

/// Allowed ranges, shared by the element's property specs and the command line.
pub mod ranges {
    pub const SIZE: (usize, usize) = (16, 4096);
    pub const FREQUENCY_MHZ: (f32, f32) = (2.0, 20.0);
    pub const DEPTH_MM: (f32, f32) = (10.0, 120.0);
    pub const DYNAMIC_RANGE_DB: (f32, f32) = (20.0, 100.0);
    pub const GAIN_DB: (f32, f32) = (-40.0, 40.0);
    pub const VESSELS: (u32, u32) = (0, 4);
    pub const COMPRESSION_DEPTH_MM: (f32, f32) = (0.0, 30.0);
    pub const COMPRESSION_PERIOD_S: (f32, f32) = (0.0, 60.0);
    pub const HEART_RATE_BPM: (f32, f32) = (0.0, 220.0);
    pub const MOTION_AMPLITUDE: (f32, f32) = (0.0, 5.0);
}

fn check<T: Into<f64> + PartialOrd + Copy>(
    name: &'static str,
    value: T,
    (min, max): (T, T),
) -> Result<(), ParamsError> {
    if value < min || value > max || value.into().is_nan() {
        return Err(ParamsError::OutOfRange {
            name,
            value: value.into(),
            min: min.into(),
            max: max.into(),
        });
    }
    Ok(())
}

impl PhantomParams {
    /// Checks every field against [`ranges`].
    pub fn validate(&self) -> Result<(), ParamsError> {
        let size = (ranges::SIZE.0 as f64, ranges::SIZE.1 as f64);
        check("width", self.width as f64, size)?;
        check("height", self.height as f64, size)?;
        check("fps", self.fps, (0.1, 1000.0))?;
        check("frequency", self.frequency_mhz, ranges::FREQUENCY_MHZ)?;
        check("depth", self.depth_mm, ranges::DEPTH_MM)?;
        check(
            "dynamic-range",
            self.dynamic_range_db,
            ranges::DYNAMIC_RANGE_DB,
        )?;
        check("gain", self.gain_db, ranges::GAIN_DB)?;
        check("veins", self.veins, ranges::VESSELS)?;
        check("arteries", self.arteries, ranges::VESSELS)?;
        check(
            "compression-depth",
            self.compression_depth_mm,
            ranges::COMPRESSION_DEPTH_MM,
        )?;
        check(
            "compression-period",
            self.compression_period_s,
            ranges::COMPRESSION_PERIOD_S,
        )?;
        check("heart-rate", self.heart_rate_bpm, ranges::HEART_RATE_BPM)?;
        check(
            "motion-amplitude",
            self.motion_amplitude,
            ranges::MOTION_AMPLITUDE,
        )?;
        Ok(())
    }

    /// Pixel spacing in mm (square pixels).
    pub fn spacing_mm(&self) -> f32 {
        self.depth_mm / self.height as f32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        assert_eq!(PhantomParams::default().validate(), Ok(()));
    }

    #[test]
    fn out_of_range_is_reported_by_name() {
        let params = PhantomParams {
            frequency_mhz: 50.0,
            ..Default::default()
        };
        assert!(matches!(
            params.validate(),
            Err(ParamsError::OutOfRange {
                name: "frequency",
                ..
            })
        ));
    }
}
