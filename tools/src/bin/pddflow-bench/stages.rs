//! The element's frame-size stages, one by one, on a synthetic frame: what `pddflow` does per
//! frame besides the model (chain mode with the default overlay), without GStreamer's path.

use gstpddflow::flow::confidence::{vessel_confidence, warped_correlation, window_around};
use gstpddflow::flow::draw::{self, Layers, LegendLine};
use gstpddflow::flow::instances::{clean_propagated, Instances};
use gstpddflow::flow::lumen::{closed_by_contrast, LumenReference};
use gstpddflow::flow::pixels::{extract_luma, Canvas, ModelInput, PixelFormat};
use gstpddflow::flow::regions::find_instance_regions;
use gstpddflow::flow::warp::{warp_labels_with, UniformTiles};
use gstpddflow::flow::{FlowField, LabelMap};
use gstpddflow::meta::FlowResult;
use std::time::{Duration, Instant};

/// One stage's mean time in milliseconds.
pub struct Stage {
    pub name: &'static str,
    pub what: &'static str,
    pub ms: f64,
}

/// Mean time of `f` over `iterations` runs after one warm-up, `setup` (untimed) before each.
fn time<S>(iterations: u32, mut setup: impl FnMut() -> S, mut f: impl FnMut(S)) -> f64 {
    f(setup());
    let mut total = Duration::ZERO;
    for _ in 0..iterations {
        let input = setup();
        let t = Instant::now();
        f(input);
        total += t.elapsed();
    }
    total.as_secs_f64() * 1000.0 / iterations as f64
}

/// A vein and an artery disc: the reference mask of the stages and of the end-to-end runs.
pub fn two_discs(w: usize, h: usize) -> LabelMap {
    let mut m = LabelMap::new(w, h);
    let r = (w.min(h) / 8) as f64;
    let discs = [
        (w as f64 * 0.35, h as f64 * 0.5, 1u8),
        (w as f64 * 0.65, h as f64 * 0.45, 2u8),
    ];
    for y in 0..h {
        for x in 0..w {
            for (cx, cy, l) in discs {
                if (x as f64 - cx).powi(2) + (y as f64 - cy).powi(2) <= r * r {
                    m.data[y * w + x] = l;
                }
            }
        }
    }
    m
}

/// Times each stage at `w` x `h` (RGBx frame) with the model at `model` x `model`.
pub fn run(w: usize, h: usize, model: usize, iterations: u32) -> Vec<Stage> {
    // A textured RGBx frame, a smooth flow of a few model pixels with a fold-free swirl.
    let frame: Vec<u8> = (0..w * h * 4)
        .map(|i| ((i / 4 % w) * 7 + (i / 4 / w) * 13 + i % 4 * 50) as u8)
        .collect();
    let mut flow = FlowField::zeros(model, model);
    for (i, (dx, dy)) in flow.dx.iter_mut().zip(flow.dy.iter_mut()).enumerate() {
        let (x, y) = ((i % model) as f32, (i / model) as f32);
        *dx = (x * 0.05).sin() * 1.5 - 1.0;
        *dy = (y * 0.04).cos() * 1.0 + 0.5;
    }
    let reference = two_discs(w, h);
    let instances = Instances::from_classes(&reference).expect("two vessels");
    let tiles = UniformTiles::new(&instances.map);
    let model_image: Vec<f32> = (0..model * model)
        .map(|i| ((i % model) as f32 * 0.3).sin() * 0.5 + 0.5)
        .collect();

    let mut stages = Vec::new();
    let mut stage = |name, what, ms| stages.push(Stage { name, what, ms });
    let planes = [(&frame[..], 4 * w)];
    let luma = extract_luma(PixelFormat::Rgbx, w, h, &planes, true);
    stage(
        "luma",
        "RGBx frame -> 8-bit luma",
        time(
            iterations,
            || (),
            |_| {
                std::hint::black_box(extract_luma(PixelFormat::Rgbx, w, h, &planes, true));
            },
        ),
    );
    let mut input = ModelInput::new(model, model);
    stage(
        "resize",
        "luma -> model input in [0, 1]",
        time(
            iterations,
            || (),
            |_| {
                std::hint::black_box(input.prepare(&luma, w, h));
            },
        ),
    );
    let warped = warp_labels_with(&instances.map, &tiles, &flow);
    stage(
        "warp",
        "instance map warped at frame size",
        time(
            iterations,
            || (),
            |_| {
                std::hint::black_box(warp_labels_with(&instances.map, &tiles, &flow));
            },
        ),
    );
    let mut cleaned = warped.clone();
    let cleaning = clean_propagated(&mut cleaned, Some(&flow), instances.len());
    stage(
        "clean",
        "folds and pieces removed (instances::clean_propagated)",
        time(
            iterations,
            || warped.clone(),
            |mut m| {
                std::hint::black_box(clean_propagated(&mut m, Some(&flow), instances.len()));
            },
        ),
    );
    stage(
        "confidence",
        "warped correlation per vessel (model grid)",
        time(
            iterations,
            || (),
            |_| {
                for c in &cleaning {
                    let window = window_around(c.bbox, (w, h), (model, model));
                    let r = warped_correlation(&model_image, &model_image, &flow, window);
                    std::hint::black_box(vessel_confidence(r, c.kept_fraction()));
                }
            },
        ),
    );
    let classes = instances.to_classes(&cleaned);
    stage(
        "classes",
        "instance map -> class map",
        time(
            iterations,
            || (),
            |_| {
                std::hint::black_box(instances.to_classes(&cleaned));
            },
        ),
    );
    stage(
        "areas",
        "pixels per class (LabelMap::areas)",
        time(
            iterations,
            || (),
            |_| {
                std::hint::black_box(classes.areas());
            },
        ),
    );
    // The discs as dark lumens, so that both vessels give a reference.
    let lumen_luma: Vec<u8> = luma
        .iter()
        .zip(&reference.data)
        .map(|(&l, &m)| if m == 0 { l } else { 20 })
        .collect();
    let vein = LumenReference::new(&lumen_luma, &reference, 1).expect("a dark vein disc");
    let artery = LumenReference::new(&lumen_luma, &reference, 2).expect("a dark artery disc");
    stage(
        "lumen",
        "vein and artery lumen contrast (vein-closed evidence)",
        time(
            iterations,
            || (),
            |_| {
                std::hint::black_box(closed_by_contrast(
                    vein.relative(&lumen_luma, &classes, 1),
                    artery.relative(&lumen_luma, &classes, 2),
                ));
            },
        ),
    );
    stage(
        "regions",
        "vessel regions of the instance map",
        time(
            iterations,
            || (),
            |_| {
                std::hint::black_box(find_instance_regions(
                    &cleaned,
                    &instances.classes,
                    Some(&flow),
                    4,
                ));
            },
        ),
    );
    let legend = [
        LegendLine {
            label: 1,
            text: "vein 35312 px 100%".into(),
        },
        LegendLine {
            label: 2,
            text: "artery 35312 px".into(),
        },
    ];
    let layers = Layers {
        fill: true,
        contour: true,
        legend: true,
        ..Layers::default()
    };
    let mut canvas_frame = frame.clone();
    stage(
        "overlay",
        "fill + contour + legend drawn into the RGBx frame",
        time(
            iterations,
            || (),
            |_| {
                let mut planes = [(&mut canvas_frame[..], 4 * w)];
                let mut canvas = Canvas::new(PixelFormat::Rgbx, w, h, &mut planes);
                draw::draw_overlay(&mut canvas, layers, 0.35, &flow, Some(&classes), &legend);
            },
        ),
    );
    let result = FlowResult {
        frame: 1,
        reference_frame: 0,
        flow: flow.clone(),
        flow_scale: (w as f64 / model as f64, h as f64 / model as f64),
        labels: Some(classes.clone()),
        class_names: vec!["background".into(), "vein".into(), "artery".into()],
        areas: classes.areas(),
        mode: "chain".into(),
        execution_provider: "cpu".into(),
        vein_compression_ratio: Some(1.0),
        pixel_spacing_mm: None,
        vessels: find_instance_regions(&cleaned, &instances.classes, Some(&flow), 4),
        tracking_confidence: Some(1.0),
        skipped: false,
    };
    stage(
        "metadata",
        "result attached as buffer metadata",
        time(iterations, gst::Buffer::new, |mut buffer| {
            result
                .attach(buffer.get_mut().expect("a new buffer is writable"))
                .expect("metadata attaches");
            std::hint::black_box(buffer);
        }),
    );
    stages
}
