//! Dice over time per sequence, as a PNG (plotters' bitmap backend, encoded by the image crate).
//!
//! Text needs a TrueType font, loaded at run time from `PDDFLOW_FONT` or
//! `/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf` (Debian: fonts-dejavu-core). Without one the
//! plot is drawn without text (no caption, tick labels or legend) and a note says so.

use super::EvalError;
use once_cell::sync::OnceCell;
use plotters::prelude::*;
use std::path::Path;

const DEFAULT_FONT: &str = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";

/// Registers the font once per process; whether text can be drawn.
fn font_available() -> bool {
    static FONT: OnceCell<bool> = OnceCell::new();
    *FONT.get_or_init(|| {
        let path = std::env::var("PDDFLOW_FONT").unwrap_or_else(|_| DEFAULT_FONT.to_string());
        let Ok(bytes) = std::fs::read(&path) else {
            return false;
        };
        // plotters keeps fonts for the life of the process.
        let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
        plotters::style::register_font("sans-serif", FontStyle::Normal, bytes).is_ok()
    })
}

/// One line of the plot: a name and (position after the reference, Dice in [0, 1]) points.
pub struct Series {
    pub name: String,
    pub points: Vec<(usize, f64)>,
}

/// Draws the series into a `width`×`height` PNG. Returns whether text could be drawn.
pub fn plot_dice_over_time(
    path: &Path,
    title: &str,
    series: &[Series],
    width: u32,
    height: u32,
) -> Result<bool, EvalError> {
    let text = font_available();
    let mut buffer = vec![255u8; width as usize * height as usize * 3];
    let x_max = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.0))
        .max()
        .unwrap_or(1)
        .max(1);
    let err = |e: &dyn std::fmt::Display| EvalError::write(path, format!("plotting failed: {e}"));
    {
        let root = BitMapBackend::with_buffer(&mut buffer, (width, height)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| err(&e))?;
        let mut builder = ChartBuilder::on(&root);
        builder.margin(12);
        if text {
            builder
                .caption(title, ("sans-serif", 20))
                .x_label_area_size(40)
                .y_label_area_size(50);
        }
        let mut chart = builder
            .build_cartesian_2d(0f64..x_max as f64, 0f64..100f64)
            .map_err(|e| err(&e))?;
        let mut mesh = chart.configure_mesh();
        if text {
            mesh.x_desc("frames after the reference")
                .y_desc("Dice %")
                .x_label_formatter(&|x| format!("{x:.0}"))
                .y_label_formatter(&|y| format!("{y:.0}"))
                .label_style(("sans-serif", 13));
        } else {
            mesh.x_labels(0).y_labels(0);
        }
        mesh.draw().map_err(|e| err(&e))?;
        for (i, s) in series.iter().enumerate() {
            let color = Palette99::pick(i).to_rgba();
            let line = chart
                .draw_series(LineSeries::new(
                    s.points.iter().map(|&(x, d)| (x as f64, 100.0 * d)),
                    color.stroke_width(2),
                ))
                .map_err(|e| err(&e))?;
            if text {
                line.label(s.name.clone()).legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 16, y)], color.stroke_width(2))
                });
            }
            chart
                .draw_series(
                    s.points
                        .iter()
                        .map(|&(x, d)| Circle::new((x as f64, 100.0 * d), 3, color.filled())),
                )
                .map_err(|e| err(&e))?;
        }
        if text && !series.is_empty() {
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::UpperRight)
                .background_style(WHITE.mix(0.8))
                .border_style(BLACK)
                .label_font(("sans-serif", 13))
                .draw()
                .map_err(|e| err(&e))?;
        }
        root.present().map_err(|e| err(&e))?;
    }
    image::RgbImage::from_raw(width, height, buffer)
        .ok_or_else(|| EvalError::write(path, "plot buffer size"))?
        .save(path)
        .map_err(|e| EvalError::write(path, e))?;
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_a_png_of_the_requested_size() {
        let t = tempfile::tempdir().unwrap();
        let path = t.path().join("dice.png");
        let series = vec![
            Series {
                name: "a".into(),
                points: vec![(1, 0.9), (2, 0.8), (5, 0.7)],
            },
            Series {
                name: "b".into(),
                points: vec![],
            },
        ];
        plot_dice_over_time(&path, "Dice", &series, 320, 200).unwrap();
        let img = image::open(&path).unwrap();
        assert_eq!((img.width(), img.height()), (320, 200));
        // Something other than the white background was drawn.
        assert!(img.to_rgb8().pixels().any(|p| p.0 != [255, 255, 255]));
    }
}
