//! Overlays drawn in place: mask fill and outlines, the flow as an HSV colour wheel, flow arrows
//! on a grid and a legend. Everything goes through [`Canvas`], so every format gets every style.
//! [`render_overlay`] draws the same layers into a transparent image of their own instead, for
//! downstream to blend (the element's overlay composition).

use super::labels;
use super::pixels::{Canvas, Paint, PixelFormat};
use super::{run_end, FlowField, LabelMap};

/// The layers an overlay draws (the element's `overlay-style`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Layers {
    /// Mask fill at the overlay's alpha.
    pub fill: bool,
    /// Opaque mask outlines.
    pub contour: bool,
    /// The flow as an HSV colour wheel.
    pub flow: bool,
    /// Flow arrows on a grid.
    pub arrows: bool,
    /// The legend (drawn only with labels).
    pub legend: bool,
}

/// Draws the chosen `layers` of one frame's result: the flow colours under the masks, arrows
/// and legend on top. `alpha` is the mask fill's opacity; the flow colours stay at least half
/// opaque so that they can be seen.
pub fn draw_overlay(
    canvas: &mut Canvas,
    layers: Layers,
    alpha: f32,
    flow: &FlowField,
    labels: Option<&LabelMap>,
    legend: &[LegendLine],
) {
    if layers.flow {
        draw_flow_colors(canvas, flow, alpha.max(0.5));
    }
    if let Some(labels) = labels {
        if layers.fill || layers.contour {
            draw_labels(canvas, labels, alpha, layers.fill, layers.contour);
        }
    }
    if layers.arrows {
        // About 24 arrows along the longer side, never closer than 8 pixels.
        let spacing = (canvas.width.max(canvas.height) / 24).max(8);
        draw_arrows(canvas, flow, spacing);
    }
    if layers.legend && labels.is_some() {
        draw_legend(canvas, legend);
    }
}

/// The overlay drawn alone: the part of a frame that it covers, as straight-alpha (not
/// premultiplied) BGRA, the byte order of GStreamer's overlay rectangles on little-endian
/// machines.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OverlayImage {
    /// Where the image goes on the frame (its top-left corner, frame pixels).
    pub x: usize,
    pub y: usize,
    pub width: usize,
    pub height: usize,
    /// `width * height` pixels, B, G, R, A each, rows of `4 * width` bytes.
    pub bgra: Vec<u8>,
}

impl OverlayImage {
    /// The BGRA bytes of pixel `(x, y)` of the image (image coordinates).
    pub fn pixel(&self, x: usize, y: usize) -> [u8; 4] {
        let i = 4 * (y * self.width + x);
        [
            self.bgra[i],
            self.bgra[i + 1],
            self.bgra[i + 2],
            self.bgra[i + 3],
        ]
    }
}

/// [`draw_overlay`] for a `width` x `height` frame, drawn into a transparent image instead of
/// the frame, cropped to what it covers: `None` when it covers nothing (no layer drawn, or no
/// labels yet with only mask layers). Composited over the frame ("over", straight alpha), it
/// gives what [`draw_overlay`] draws into an RGB frame, up to rounding.
pub fn render_overlay(
    (width, height): (usize, usize),
    layers: Layers,
    alpha: f32,
    flow: &FlowField,
    labels: Option<&LabelMap>,
    legend: &[LegendLine],
) -> Option<OverlayImage> {
    if width == 0 || height == 0 {
        return None;
    }
    let mut image = vec![0u8; width * height * 4];
    {
        let mut planes = [(&mut image[..], 4 * width)];
        let mut canvas = Canvas::new(PixelFormat::Bgra, width, height, &mut planes).with_alpha();
        draw_overlay(&mut canvas, layers, alpha, flow, labels, legend);
    }
    // The bounding box of the covered (alpha > 0) pixels.
    let covered = |y: usize| image[4 * y * width..4 * (y + 1) * width].chunks_exact(4);
    let y0 = (0..height).find(|&y| covered(y).any(|p| p[3] > 0))?;
    let y1 = (y0..height).rev().find(|&y| covered(y).any(|p| p[3] > 0))?;
    let (mut x0, mut x1) = (width, 0);
    for y in y0..=y1 {
        for (x, p) in covered(y).enumerate() {
            if p[3] > 0 {
                x0 = x0.min(x);
                x1 = x1.max(x);
            }
        }
    }
    let (w, h) = (x1 - x0 + 1, y1 - y0 + 1);
    let mut bgra = Vec::with_capacity(w * h * 4);
    for y in y0..=y1 {
        for p in image[4 * (y * width + x0)..4 * (y * width + x1 + 1)].chunks_exact(4) {
            bgra.extend_from_slice(&unpremultiply([p[0], p[1], p[2], p[3]]));
        }
    }
    Some(OverlayImage {
        x: x0,
        y: y0,
        width: w,
        height: h,
        bgra,
    })
}

/// A premultiplied BGRA pixel as straight alpha (transparent pixels stay all zero).
fn unpremultiply([b, g, r, a]: [u8; 4]) -> [u8; 4] {
    if a == 0 {
        return [0; 4];
    }
    let un = |c: u8| ((c as u32 * 255 + a as u32 / 2) / a as u32).min(255) as u8;
    [un(b), un(g), un(r), a]
}

/// A line of the legend: the colour swatch's label id and its text.
pub struct LegendLine {
    pub label: u8,
    pub text: String,
}

/// Mask fill with `alpha` and/or opaque outlines. `labels` must have the canvas's size.
///
/// Walks each row's runs of one label and blends them as spans of outline or interior pixels
/// (a pixel is outline when a 4-neighbour has another label), each span through one prepared
/// [`Paint`] per label and kind.
pub fn draw_labels(canvas: &mut Canvas, labels: &LabelMap, alpha: f32, fill: bool, contour: bool) {
    let interior_alpha = if fill { alpha } else { 0.0 };
    let edge_alpha = if contour { 1.0 } else { interior_alpha };
    if interior_alpha <= 0.0 && edge_alpha <= 0.0 {
        return;
    }
    let w = labels.width;
    // Paints are prepared on first use, by (label, outline).
    let mut paints: Vec<((u8, bool), Paint)> = Vec::new();
    for (y, row) in labels
        .data
        .chunks_exact(w.max(1))
        .enumerate()
        .take(labels.height)
    {
        let above = y.checked_sub(1).map(|u| &labels.data[u * w..][..w]);
        let below = (y + 1 < labels.height).then(|| &labels.data[(y + 1) * w..][..w]);
        let mut x = run_end(row, 0, 0);
        while x < w {
            let label = row[x];
            let end = run_end(row, x, label);
            // Interior: inside the run (its first and last pixels count as outline where a side
            // neighbour differs) with the same label above and below; the rest is outline.
            let lo = if x > 0 { x + 1 } else { x };
            let hi = if end < w { end - 1 } else { end };
            let interior_end = |i: usize| {
                if i < lo || i >= hi {
                    return i;
                }
                let up = above.map_or(hi, |a| run_end(&a[..hi], i, label));
                let down = below.map_or(hi, |b| run_end(&b[..hi], i, label));
                up.min(down)
            };
            let mut start = x;
            while start < end {
                let mut stop = interior_end(start);
                let edge = stop == start;
                if edge {
                    stop += 1;
                    while stop < end && interior_end(stop) == stop {
                        stop += 1;
                    }
                }
                let k = match paints.iter().position(|(key, _)| *key == (label, edge)) {
                    Some(k) => k,
                    None => {
                        let a = if edge { edge_alpha } else { interior_alpha };
                        paints.push(((label, edge), canvas.paint(labels::color(label), a)));
                        paints.len() - 1
                    }
                };
                canvas.fill_span(y as i64, start as i64, stop as i64, &paints[k].1);
                start = stop;
            }
            x = run_end(row, end, 0);
        }
    }
}

/// Hue from direction, saturation from magnitude (relative to `max_magnitude` frame pixels).
pub fn flow_color(dx: f32, dy: f32, max_magnitude: f32) -> [u8; 3] {
    let magnitude = (dx * dx + dy * dy).sqrt();
    let hue = (dy.atan2(dx).to_degrees() + 360.0) % 360.0;
    let saturation = (magnitude / max_magnitude.max(1e-6)).min(1.0);
    let c = saturation;
    let h = hue / 60.0;
    let x = c * (1.0 - (h % 2.0 - 1.0).abs());
    let (r, g, b) = match h as u32 {
        0 => (c, x, 0.0),
        1 => (x, c, 0.0),
        2 => (0.0, c, x),
        3 => (0.0, x, c),
        4 => (x, 0.0, c),
        _ => (c, 0.0, x),
    };
    let m = 1.0 - c;
    [
        ((r + m) * 255.0) as u8,
        ((g + m) * 255.0) as u8,
        ((b + m) * 255.0) as u8,
    ]
}

/// The motion reference -> current (`-flow`) as colours: white is still, hue is direction.
pub fn draw_flow_colors(canvas: &mut Canvas, flow: &FlowField, alpha: f32) {
    let (sx, sy) = (
        canvas.width as f32 / flow.width as f32,
        canvas.height as f32 / flow.height as f32,
    );
    // Saturate at 5 % of the frame: ultrasound motion is small.
    let max = 0.05 * canvas.width.max(canvas.height) as f32;
    for y in 0..canvas.height {
        let fy = (y as f32 + 0.5) / sy - 0.5;
        for x in 0..canvas.width {
            let (dx, dy) = flow.sample((x as f32 + 0.5) / sx - 0.5, fy);
            canvas.blend(
                x as i64,
                y as i64,
                flow_color(-dx * sx, -dy * sy, max),
                alpha,
            );
        }
    }
}

fn draw_line(canvas: &mut Canvas, (x0, y0): (i64, i64), (x1, y1): (i64, i64), rgb: [u8; 3]) {
    // Bresenham.
    let (dx, dy) = ((x1 - x0).abs(), -(y1 - y0).abs());
    let (sx, sy) = (if x0 < x1 { 1 } else { -1 }, if y0 < y1 { 1 } else { -1 });
    let (mut x, mut y, mut err) = (x0, y0, dx + dy);
    loop {
        canvas.blend(x, y, rgb, 1.0);
        if x == x1 && y == y1 {
            break;
        }
        let e2 = 2 * err;
        if e2 >= dy {
            err += dy;
            x += sx;
        }
        if e2 <= dx {
            err += dx;
            y += sy;
        }
    }
}

/// Arrows every `spacing` frame pixels from where content was in the reference to where it is.
pub fn draw_arrows(canvas: &mut Canvas, flow: &FlowField, spacing: usize) {
    let (sx, sy) = (
        canvas.width as f32 / flow.width as f32,
        canvas.height as f32 / flow.height as f32,
    );
    let spacing = spacing.max(4);
    for y in (spacing / 2..canvas.height).step_by(spacing) {
        for x in (spacing / 2..canvas.width).step_by(spacing) {
            let (dx, dy) = flow.sample((x as f32 + 0.5) / sx - 0.5, (y as f32 + 0.5) / sy - 0.5);
            let (mut dx, mut dy) = (dx * sx, dy * sy);
            // Long arrows would cross the whole picture: cap them at 1.5 grid cells.
            let cap = 1.5 * spacing as f32;
            let length = (dx * dx + dy * dy).sqrt();
            if length > cap {
                dx *= cap / length;
                dy *= cap / length;
            }
            let tip = (x as i64, y as i64);
            let tail = (
                (x as f32 + dx).round() as i64,
                (y as f32 + dy).round() as i64,
            );
            draw_line(canvas, tail, tip, [255, 255, 0]);
            let len = (dx * dx + dy * dy).sqrt();
            if len >= 2.0 {
                // Two short barbs at the tip, pointing back along the arrow at +-30 degrees.
                let (ux, uy) = (dx / len, dy / len);
                let barb = len.min(6.0);
                for angle in [std::f32::consts::FRAC_PI_6, -std::f32::consts::FRAC_PI_6] {
                    let (c, s) = (angle.cos(), angle.sin());
                    let bx = (ux * c - uy * s) * barb;
                    let by = (ux * s + uy * c) * barb;
                    draw_line(
                        canvas,
                        tip,
                        (tip.0 + bx.round() as i64, tip.1 + by.round() as i64),
                        [255, 255, 0],
                    );
                }
            }
        }
    }
}

/// Text in an 8x8 bitmap font, scaled by `scale`.
pub fn draw_text(canvas: &mut Canvas, x: i64, y: i64, text: &str, rgb: [u8; 3], scale: i64) {
    use font8x8::UnicodeFonts;
    for (i, ch) in text.chars().enumerate() {
        let Some(glyph) = font8x8::BASIC_FONTS.get(ch) else {
            continue;
        };
        for (row, bits) in glyph.iter().enumerate() {
            for col in 0..8 {
                if bits & (1 << col) != 0 {
                    for k in 0..scale * scale {
                        let px = x + (i as i64 * 8 + col) * scale + k % scale;
                        let py = y + row as i64 * scale + k / scale;
                        canvas.blend(px, py, rgb, 1.0);
                    }
                }
            }
        }
    }
}

/// A legend box in the top-left corner: a colour swatch and a line of text per entry.
pub fn draw_legend(canvas: &mut Canvas, lines: &[LegendLine]) {
    if lines.is_empty() {
        return;
    }
    let scale = if canvas.height >= 720 { 2 } else { 1 };
    let line_h = 10 * scale;
    let chars = lines
        .iter()
        .map(|l| l.text.chars().count())
        .max()
        .unwrap_or(0) as i64;
    let (w, h) = (
        chars * 8 * scale + 20 * scale,
        lines.len() as i64 * line_h + 6 * scale,
    );
    let shade = canvas.paint([0, 0, 0], 0.55);
    for y in 0..h {
        canvas.fill_span(4 + y, 4, 4 + w, &shade);
    }
    for (i, line) in lines.iter().enumerate() {
        let y = 4 + 3 * scale + i as i64 * line_h;
        let (x0, side) = (4 + 3 * scale, 8 * scale);
        let swatch = canvas.paint(labels::color(line.label), 1.0);
        for row in y..y + side {
            canvas.fill_span(row, x0, x0 + side, &swatch);
        }
        draw_text(
            canvas,
            4 + 14 * scale,
            y,
            &line.text,
            [255, 255, 255],
            scale,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn square_labels() -> LabelMap {
        let mut labels = LabelMap::new(5, 5);
        for y in 1..4 {
            for x in 1..4 {
                labels.data[y * 5 + x] = 2;
            }
        }
        labels
    }

    #[test]
    fn fill_and_contour_touch_only_labelled_pixels() {
        let mut frame = [100u8; 5 * 5 * 3];
        let mut planes = [(&mut frame[..], 15)];
        let mut canvas = Canvas::new(PixelFormat::Rgb, 5, 5, &mut planes);
        draw_labels(&mut canvas, &square_labels(), 0.5, true, true);
        assert_eq!(&frame[0..3], &[100, 100, 100]);
        // Centre is filled at half strength, the outline opaque.
        assert_eq!(&frame[(2 * 5 + 2) * 3..(2 * 5 + 2) * 3 + 3], &[178, 75, 75]);
        assert_eq!(&frame[(5 + 1) * 3..(5 + 1) * 3 + 3], &[255, 50, 50]);
    }

    /// Pixel by pixel, as the labels were drawn before they were drawn by runs.
    fn draw_labels_per_pixel(
        canvas: &mut Canvas,
        labels: &LabelMap,
        alpha: f32,
        fill: bool,
        contour: bool,
    ) {
        for y in 0..labels.height {
            for x in 0..labels.width {
                let l = labels.get(x, y);
                if l == 0 {
                    continue;
                }
                let edge = (x > 0 && labels.get(x - 1, y) != l)
                    || (x + 1 < labels.width && labels.get(x + 1, y) != l)
                    || (y > 0 && labels.get(x, y - 1) != l)
                    || (y + 1 < labels.height && labels.get(x, y + 1) != l);
                let a = match (edge, contour, fill) {
                    (true, true, _) => 1.0,
                    (_, _, true) => alpha,
                    _ => 0.0,
                };
                canvas.blend(x as i64, y as i64, labels::color(l), a);
            }
        }
    }

    #[test]
    fn labels_drawn_by_runs_equal_labels_drawn_pixel_by_pixel() {
        let (w, h) = (37, 23);
        let mut s = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            s
        };
        // Discs of three labels that touch each other and the border, and specks.
        let mut labels = LabelMap::new(w, h);
        for (cx, cy, r, l) in [(8, 8, 7, 1), (20, 12, 9, 2), (33, 20, 6, 1), (30, 3, 4, 7)] {
            for y in 0..h as i64 {
                for x in 0..w as i64 {
                    if (x - cx) * (x - cx) + (y - cy) * (y - cy) <= r * r {
                        labels.data[y as usize * w + x as usize] = l;
                    }
                }
            }
        }
        for _ in 0..20 {
            let i = (next() % (w * h) as u64) as usize;
            labels.data[i] = (next() % 4) as u8;
        }
        let formats = [
            (PixelFormat::Rgbx, false),
            (PixelFormat::Bgr, false),
            (PixelFormat::Bgra, true),
            (PixelFormat::Gray8, false),
            (PixelFormat::Gray16Le, false),
            (PixelFormat::I420, false),
            (PixelFormat::Nv12, false),
        ];
        for (format, with_alpha) in formats {
            for (fill, contour) in [(true, true), (true, false), (false, true), (false, false)] {
                let planes: Vec<(Vec<u8>, usize)> = (0..format.n_planes())
                    .map(|p| {
                        let (row, rows) = format.plane_size(p, w, h);
                        let data = (0..(row + 3) * rows).map(|_| next() as u8).collect();
                        (data, row + 3)
                    })
                    .collect();
                let draw = |by_runs: bool| {
                    let mut planes = planes.clone();
                    let mut views: Vec<(&mut [u8], usize)> =
                        planes.iter_mut().map(|(d, s)| (&mut d[..], *s)).collect();
                    let mut canvas = Canvas::new(format, w, h, &mut views);
                    if with_alpha {
                        canvas = canvas.with_alpha();
                    }
                    if by_runs {
                        draw_labels(&mut canvas, &labels, 0.35, fill, contour);
                    } else {
                        draw_labels_per_pixel(&mut canvas, &labels, 0.35, fill, contour);
                    }
                    planes
                };
                assert_eq!(
                    draw(true),
                    draw(false),
                    "{format:?} fill {fill} contour {contour}"
                );
            }
        }
    }

    #[test]
    fn contour_only_leaves_the_interior() {
        let mut frame = [100u8; 25];
        let mut planes = [(&mut frame[..], 5)];
        let mut canvas = Canvas::new(PixelFormat::Gray8, 5, 5, &mut planes);
        draw_labels(&mut canvas, &square_labels(), 0.5, false, true);
        assert_eq!(frame[2 * 5 + 2], 100);
        assert_ne!(frame[5 + 1], 100);
    }

    #[test]
    fn overlay_draws_only_the_chosen_layers() {
        let draw = |layers: Layers| {
            let mut frame = [100u8; 25];
            let mut planes = [(&mut frame[..], 5)];
            let mut canvas = Canvas::new(PixelFormat::Gray8, 5, 5, &mut planes);
            let flow = FlowField::zeros(5, 5);
            draw_overlay(&mut canvas, layers, 0.5, &flow, Some(&square_labels()), &[]);
            frame
        };
        assert_eq!(draw(Layers::default()), [100u8; 25]);
        let contour = draw(Layers {
            contour: true,
            ..Layers::default()
        });
        assert_eq!(contour[2 * 5 + 2], 100, "the interior is not filled");
        assert_ne!(contour[5 + 1], 100, "the outline is drawn");
        let fill = draw(Layers {
            fill: true,
            ..Layers::default()
        });
        assert_ne!(fill[2 * 5 + 2], 100, "the interior is filled");
    }

    #[test]
    fn flow_colors_are_white_when_still_and_hue_follows_direction() {
        assert_eq!(flow_color(0.0, 0.0, 10.0), [255, 255, 255]);
        assert_eq!(flow_color(10.0, 0.0, 10.0), [255, 0, 0]);
        let down = flow_color(0.0, 10.0, 10.0);
        assert_eq!(down, [127, 255, 0], "90 degrees is yellow-green");
    }

    #[test]
    fn arrows_and_text_draw_something_in_every_format() {
        for format in [PixelFormat::Gray8, PixelFormat::Bgrx] {
            let bpp = if format == PixelFormat::Gray8 { 1 } else { 4 };
            let mut frame = vec![0u8; 64 * 64 * bpp];
            {
                let mut planes = [(&mut frame[..], 64 * bpp)];
                let mut canvas = Canvas::new(format, 64, 64, &mut planes);
                draw_arrows(&mut canvas, &FlowField::constant(16, 16, -1.0, 0.0), 16);
                draw_legend(
                    &mut canvas,
                    &[LegendLine {
                        label: 1,
                        text: "vein".into(),
                    }],
                );
            }
            assert!(frame.iter().filter(|&&v| v > 0).count() > 50);
        }
    }

    fn fill_and_contour() -> Layers {
        Layers {
            fill: true,
            contour: true,
            ..Layers::default()
        }
    }

    #[test]
    fn rendered_overlay_is_cropped_to_what_it_covers_in_straight_alpha() {
        let mut labels = LabelMap::new(8, 6);
        for y in 1..4 {
            for x in 2..5 {
                labels.data[y * 8 + x] = 2;
            }
        }
        let flow = FlowField::zeros(8, 6);
        let image =
            render_overlay((8, 6), fill_and_contour(), 0.5, &flow, Some(&labels), &[]).unwrap();
        assert_eq!((image.x, image.y, image.width, image.height), (2, 1, 3, 3));
        assert_eq!(image.bgra.len(), 3 * 3 * 4);
        // The outline is opaque in the artery colour (BGRA), the interior half covered.
        assert_eq!(image.pixel(0, 0), [50, 50, 255, 255]);
        let [b, g, r, a] = image.pixel(1, 1);
        assert_eq!(a, 128);
        for (c, want) in [(b, 50), (g, 50), (r, 255)] {
            assert!(c.abs_diff(want) <= 2, "{:?}", image.pixel(1, 1));
        }
    }

    #[test]
    fn nothing_drawn_renders_no_image() {
        let flow = FlowField::zeros(8, 6);
        let legend = [LegendLine {
            label: 1,
            text: "vein".into(),
        }];
        let all_but_flow = Layers {
            legend: true,
            ..fill_and_contour()
        };
        assert_eq!(
            render_overlay((8, 6), all_but_flow, 0.5, &flow, None, &legend),
            None,
            "mask layers and the legend need labels"
        );
        let labels = LabelMap::new(8, 6);
        assert_eq!(
            render_overlay((8, 6), fill_and_contour(), 0.5, &flow, Some(&labels), &[]),
            None,
            "background only"
        );
        let square = square_labels();
        assert_eq!(
            render_overlay((5, 5), Layers::default(), 0.5, &flow, Some(&square), &[]),
            None,
            "no layer"
        );
    }

    /// Every layer rendered alone and composited over an RGB frame ("over", straight alpha)
    /// looks like the same layers drawn into the frame.
    #[test]
    fn rendered_overlay_composited_over_a_frame_matches_drawing_in_place() {
        let (w, h) = (48, 40);
        let mut labels = LabelMap::new(w, h);
        for y in 20..34 {
            for x in 6..20 {
                labels.data[y * w + x] = 1;
            }
            for x in 28..44 {
                labels.data[y * w + x] = 2;
            }
        }
        let flow = FlowField::constant(16, 16, -1.5, 0.5);
        let legend = [
            LegendLine {
                label: 1,
                text: "vein 42".into(),
            },
            LegendLine {
                label: 2,
                text: "artery".into(),
            },
        ];
        let frame: Vec<u8> = (0..w * h * 3).map(|i| (i * 37 % 251) as u8).collect();
        for layers in [
            Layers {
                legend: true,
                ..fill_and_contour()
            },
            Layers {
                fill: true,
                contour: true,
                flow: true,
                arrows: true,
                legend: true,
            },
        ] {
            let mut in_place = frame.clone();
            {
                let mut planes = [(&mut in_place[..], 3 * w)];
                let mut canvas = Canvas::new(PixelFormat::Rgb, w, h, &mut planes);
                draw_overlay(&mut canvas, layers, 0.35, &flow, Some(&labels), &legend);
            }
            let image =
                render_overlay((w, h), layers, 0.35, &flow, Some(&labels), &legend).unwrap();
            let mut composited = frame.clone();
            for y in 0..image.height {
                for x in 0..image.width {
                    let [b, g, r, a] = image.pixel(x, y);
                    let i = 3 * ((image.y + y) * w + image.x + x);
                    for (c, src) in [r, g, b].into_iter().enumerate() {
                        let dst = composited[i + c] as u32;
                        composited[i + c] =
                            ((src as u32 * a as u32 + dst * (255 - a as u32) + 127) / 255) as u8;
                    }
                }
            }
            let worst = in_place
                .iter()
                .zip(&composited)
                .map(|(a, b)| a.abs_diff(*b))
                .max()
                .unwrap();
            assert!(worst <= 2, "{layers:?}: differs by up to {worst}");
            assert_ne!(composited, frame, "{layers:?}: something is drawn");
        }
    }
}
