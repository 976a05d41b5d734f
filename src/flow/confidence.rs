//! Tracking confidence per vessel: does the flow still explain the image around the vessel, and
//! did the warp keep the vessel whole?
//!
//! Two measurements, multiplied, each in [0, 1]:
//!
//! * the normalised cross-correlation, in a window around the vessel, between the current
//!   image and the reference image warped onto it by the flow (at the model's resolution,
//!   where both images and the flow already are): a flow that lost the vessel pairs tissue
//!   with unrelated tissue, and the correlation drops;
//! * the share of the warped vessel that survived cleaning ([`super::instances::Cleaning`]):
//!   a vessel that came out of the warp folded or in pieces was not tracked as one.

use super::warp::bilinear;
use super::FlowField;

/// A window `(x0, y0, x1, y1)`, inclusive, in pixels of the model grid.
pub type Window = (usize, usize, usize, usize);

/// The window around a vessel's bounding box (`x, y, width, height` in frame pixels) on a
/// `grid_w x grid_h` grid for a `frame_w x frame_h` frame: the box grown by half its size on
/// every side, at least [`MIN_MARGIN`] grid pixels, clipped to the grid.
pub fn window_around(
    bbox: (u32, u32, u32, u32),
    (frame_w, frame_h): (usize, usize),
    (grid_w, grid_h): (usize, usize),
) -> Window {
    let (sx, sy) = (
        grid_w as f64 / frame_w as f64,
        grid_h as f64 / frame_h as f64,
    );
    let (x, y, w, h) = (
        bbox.0 as f64 * sx,
        bbox.1 as f64 * sy,
        bbox.2 as f64 * sx,
        bbox.3 as f64 * sy,
    );
    let mx = (w / 2.0).max(MIN_MARGIN);
    let my = (h / 2.0).max(MIN_MARGIN);
    let clip = |v: f64, n: usize| v.clamp(0.0, (n - 1) as f64) as usize;
    (
        clip((x - mx).floor(), grid_w),
        clip((y - my).floor(), grid_h),
        clip((x + w + mx).ceil(), grid_w),
        clip((y + h + my).ceil(), grid_h),
    )
}

/// Smallest margin around a vessel, in model pixels: enough tissue for a correlation.
pub const MIN_MARGIN: f64 = 8.0;

/// Normalised cross-correlation over `window` between `current` and `reference` sampled at
/// `p + flow(p)` (all three on the same `width x height` grid). `None` for a flat window.
pub fn warped_correlation(
    reference: &[f32],
    current: &[f32],
    flow: &FlowField,
    (x0, y0, x1, y1): Window,
) -> Option<f32> {
    let (w, h) = (flow.width, flow.height);
    if reference.len() != w * h || current.len() != w * h || w == 0 || h == 0 {
        return None;
    }
    let (mut n, mut sa, mut sb, mut saa, mut sbb, mut sab) = (0f64, 0f64, 0f64, 0f64, 0f64, 0f64);
    for y in y0..=y1.min(h - 1) {
        for x in x0..=x1.min(w - 1) {
            let i = y * w + x;
            let a = current[i] as f64;
            let b = bilinear(
                reference,
                w,
                h,
                x as f32 + flow.dx[i],
                y as f32 + flow.dy[i],
            ) as f64;
            n += 1.0;
            sa += a;
            sb += b;
            saa += a * a;
            sbb += b * b;
            sab += a * b;
        }
    }
    let var_a = saa - sa * sa / n;
    let var_b = sbb - sb * sb / n;
    let cov = sab - sa * sb / n;
    let denominator = (var_a * var_b).sqrt();
    (n > 1.0 && denominator > 1e-9).then(|| (cov / denominator) as f32)
}

/// A vessel's confidence from its warped correlation and the share kept by cleaning.
pub fn vessel_confidence(correlation: Option<f32>, kept_fraction: f32) -> f32 {
    (correlation.unwrap_or(0.0).clamp(0.0, 1.0) * kept_fraction.clamp(0.0, 1.0)).clamp(0.0, 1.0)
}

/// The lowest confidence of a frame's vessels (a vanished vessel counts 0); `None` without any.
pub fn frame_confidence(vessels: &[f32]) -> Option<f32> {
    vessels.iter().copied().reduce(f32::min)
}

/// Decides when tracking counts as lost: once when the frame's confidence falls below the
/// threshold, and again only after it recovered or the reference changed.
#[derive(Clone, Debug, Default)]
pub struct LossMonitor {
    lost: bool,
}

impl LossMonitor {
    /// Whether this frame is where tracking was lost. `threshold` 0 never reports.
    pub fn update(&mut self, confidence: Option<f32>, threshold: f32, new_reference: bool) -> bool {
        if new_reference {
            self.lost = false;
        }
        let Some(c) = confidence else {
            return false;
        };
        let below = c < threshold;
        let report = below && !self.lost;
        self.lost = below;
        report
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texture(w: usize, h: usize, shift: f32) -> Vec<f32> {
        (0..w * h)
            .map(|i| {
                let (x, y) = ((i % w) as f32 - shift, (i / w) as f32);
                ((x * 0.7).sin() * (y * 0.45).cos() + 1.0) * 0.5
            })
            .collect()
    }

    #[test]
    fn the_right_flow_correlates_and_a_wrong_one_does_not() {
        // The current image is the reference moved 3 px right: p was at p - (3, 0).
        let (w, h) = (48, 40);
        let reference = texture(w, h, 0.0);
        let current = texture(w, h, 3.0);
        let window = (10, 10, 30, 30);
        let right = warped_correlation(
            &reference,
            &current,
            &FlowField::constant(w, h, -3.0, 0.0),
            window,
        )
        .unwrap();
        let wrong = warped_correlation(
            &reference,
            &current,
            &FlowField::constant(w, h, 2.0, 1.0),
            window,
        )
        .unwrap();
        assert!(right > 0.99, "{right}");
        assert!(wrong < 0.5, "{wrong}");
    }

    #[test]
    fn loss_is_reported_once_per_drop() {
        let mut m = LossMonitor::default();
        let seen: Vec<bool> = [0.9, 0.2, 0.1, 0.8, 0.2]
            .iter()
            .map(|&c| m.update(Some(c), 0.3, false))
            .collect();
        assert_eq!(seen, vec![false, true, false, false, true]);
        assert!(!m.update(Some(0.1), 0.3, false), "still lost");
        assert!(
            m.update(Some(0.1), 0.3, true),
            "a new reference starts over"
        );
        assert!(!m.update(None, 0.3, false));
        assert!(
            !LossMonitor::default().update(Some(0.0), 0.0, false),
            "threshold 0: never"
        );
        assert_eq!(frame_confidence(&[0.7, 0.2, 0.9]), Some(0.2));
        assert_eq!(frame_confidence(&[]), None);
    }

    #[test]
    fn a_flat_window_has_no_correlation() {
        let flat = vec![0.5; 16 * 16];
        assert_eq!(
            warped_correlation(&flat, &flat, &FlowField::zeros(16, 16), (0, 0, 15, 15)),
            None
        );
        assert_eq!(vessel_confidence(None, 1.0), 0.0);
    }

    #[test]
    fn confidence_is_correlation_times_kept_share() {
        assert!((vessel_confidence(Some(0.8), 0.5) - 0.4).abs() < 1e-6);
        assert_eq!(vessel_confidence(Some(-0.3), 1.0), 0.0);
    }

    #[test]
    fn window_grows_the_box_and_stays_on_the_grid() {
        // A 40x20 box at (100, 50) in a 640x480 frame, on a 256x256 grid.
        let (x0, y0, x1, y1) = window_around((100, 50, 40, 20), (640, 480), (256, 256));
        assert_eq!((x0, y0), (32, 18));
        assert_eq!((x1, y1), (64, 46));
        assert_eq!(
            window_around((0, 0, 640, 480), (640, 480), (256, 256)),
            (0, 0, 255, 255)
        );
    }
}
