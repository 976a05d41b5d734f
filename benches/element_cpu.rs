//! Per-frame CPU work of pddflow outside the model, at common frame sizes: luma extraction and
//! resize to the model input, label warping, vessel regions, overlay. `cargo bench --bench element_cpu`.

use gstpddflow::flow::draw;
use gstpddflow::flow::pixels::{extract_luma, Canvas, ModelInput, PixelFormat};
use gstpddflow::flow::regions::find_regions;
use gstpddflow::flow::warp::{warp_labels_with, UniformTiles};
use gstpddflow::flow::{FlowField, LabelMap};
use std::time::Instant;

fn time_ms(iterations: u32, mut f: impl FnMut()) -> f64 {
    f();
    let start = Instant::now();
    for _ in 0..iterations {
        f();
    }
    start.elapsed().as_secs_f64() * 1000.0 / iterations as f64
}

fn main() {
    println!(
        "| frame | luma+resize (I420) | warp labels | mask tiles (once per reference) | regions | overlay fill+contour+legend |"
    );
    println!("|---|---|---|---|---|---|");
    for (w, h) in [(640usize, 480usize), (1280, 720), (1920, 1080)] {
        let mut mask = LabelMap::new(w, h);
        for y in h / 4..h / 2 {
            for x in w / 4..w / 2 {
                mask.data[y * w + x] = 1;
            }
        }
        for y in h / 2..3 * h / 4 {
            for x in w / 2..3 * w / 4 {
                mask.data[y * w + x] = 2;
            }
        }
        let mut flow = FlowField::zeros(256, 256);
        for (i, (dx, dy)) in flow.dx.iter_mut().zip(flow.dy.iter_mut()).enumerate() {
            *dx = ((i % 256) as f32 * 0.05).sin() * 3.0;
            *dy = ((i / 256) as f32 * 0.03).cos() * 2.0;
        }
        let mut frame = vec![128u8; w * h * 3 / 2];
        let mut input = ModelInput::new(256, 256);
        let prep = time_ms(50, || {
            let luma = extract_luma(PixelFormat::I420, w, h, &[(&frame[..w * h], w)], true);
            std::hint::black_box(input.prepare(&luma, w, h));
        });
        let mut warped = mask.clone();
        let tiles_ms = time_ms(20, || {
            std::hint::black_box(UniformTiles::new(&mask));
        });
        let tiles = UniformTiles::new(&mask);
        let warp = time_ms(20, || warped = warp_labels_with(&mask, &tiles, &flow));
        let regions = time_ms(20, || {
            std::hint::black_box(find_regions(&warped, Some(&flow), 4));
        });
        let overlay = time_ms(20, || {
            let (luma, chroma) = frame.split_at_mut(w * h);
            let (u, v) = chroma.split_at_mut(w * h / 4);
            let mut planes = [(luma, w), (u, w / 2), (v, w / 2)];
            let mut canvas = Canvas::new(PixelFormat::I420, w, h, &mut planes);
            // the element's default overlay: fill and contours
            draw::draw_labels(&mut canvas, &warped, 0.35, true, true);
            draw::draw_legend(
                &mut canvas,
                &[draw::LegendLine {
                    label: 1,
                    text: "vein 1234 px".into(),
                }],
            );
        });
        println!(
            "| {w}x{h} | {prep:.2} ms | {warp:.2} ms | {tiles_ms:.2} ms | {regions:.2} ms | {overlay:.2} ms |"
        );
    }
}
