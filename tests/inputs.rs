//! `pddflow` with inputs as users hand them over: reference masks in every encoding that
//! annotation tools write (and wrong ones), malformed model descriptions, provider settings,
//! and the per-segment summary after a re-anchor.

mod common;

use common::*;
use gst::prelude::*;
use gstpddflow::flow::LabelMap;
use gstpddflow::meta::{attach_reference_mask, FlowResult};
use std::path::{Path, PathBuf};

const W: usize = 64;
const H: usize = 64;

fn result(buffer: &gst::Buffer) -> FlowResult {
    FlowResult::from_buffer(buffer)
        .expect("result meta attached")
        .expect("result meta well formed")
}

/// A vein (1) and an artery (2), as class ids.
fn two_vessels() -> LabelMap {
    let mut m = square(W, H, 8, 8, 16, 1);
    for y in 36..52 {
        for x in 36..56 {
            m.data[y * W + x] = 2;
        }
    }
    m
}

/// Writes a PNG with raw (packed, big-endian) samples.
fn write_png(
    path: &Path,
    color: png::ColorType,
    depth: png::BitDepth,
    palette: Option<Vec<u8>>,
    data: &[u8],
) {
    let file = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut encoder = png::Encoder::new(file, W as u32, H as u32);
    encoder.set_color(color);
    encoder.set_depth(depth);
    if let Some(p) = palette {
        encoder.set_palette(p);
    }
    encoder
        .write_header()
        .unwrap()
        .write_image_data(data)
        .unwrap();
}

/// `mask` as an RGB PNG with `colour` giving each id's colour.
fn write_rgb(path: &Path, mask: &LabelMap, colour: impl Fn(u8) -> [u8; 3]) {
    let data: Vec<u8> = mask.data.iter().flat_map(|&l| colour(l)).collect();
    write_png(path, png::ColorType::Rgb, png::BitDepth::Eight, None, &data);
}

/// A harness on `element` with W x H GRAY8 caps, and their video info.
fn grey_harness(element: &gst::Element) -> (gst_check::Harness, gst_video::VideoInfo) {
    let mut h = harness(element);
    h.set_src_caps(gray_caps(W as u32, H as u32));
    (
        h,
        gst_video::VideoInfo::from_caps(&gray_caps(W as u32, H as u32)).unwrap(),
    )
}

/// The first frame's labels and the bus warnings and errors, with `mask_path` as the
/// `reference-mask` of the zero-flow model.
fn first_labels(
    mask_path: &Path,
    extra: &[(&str, &dyn ToValue)],
) -> (Option<FlowResult>, Vec<String>, Vec<String>) {
    let path = mask_path.to_str().unwrap().to_string();
    let model = test_model("identity_pool");
    let mut props: Vec<(&str, &dyn ToValue)> =
        vec![("model-location", &model), ("reference-mask", &path)];
    props.extend_from_slice(extra);
    let (element, bus) = element(&props);
    // Started here: the harness would abort on a failed start.
    let result = if element.set_state(gst::State::Playing).is_ok() {
        let (mut h, info) = grey_harness(&element);
        Some(result(&h.push_and_pull(frame_buffer(&info, 0)).unwrap()))
    } else {
        let _ = element.set_state(gst::State::Null);
        None
    };
    // One pass: popping one kind of message discards the others.
    let (mut warnings, mut errors) = (vec![], vec![]);
    while let Some(msg) = bus.pop() {
        match msg.view() {
            gst::MessageView::Warning(w) => {
                warnings.push(format!("{} | {:?}", w.error(), w.debug()))
            }
            gst::MessageView::Error(e) => errors.push(format!("{} | {:?}", e.error(), e.debug())),
            _ => {}
        }
    }
    (result, warnings, errors)
}

fn temp_mask(dir: &tempfile::TempDir, name: &str) -> PathBuf {
    dir.path().join(name)
}

#[test]
fn grey_16_bit_palette_and_colour_masks_are_read_as_class_ids() {
    let dir = tempfile::tempdir().unwrap();
    let mask = two_vessels();
    let grey16: Vec<u8> = mask
        .data
        .iter()
        .flat_map(|&l| (l as u16).to_be_bytes())
        .collect();
    let palette = vec![0, 0, 0, 0, 0, 255, 255, 0, 0];
    let write = |name: &str, path: &Path| match name {
        "grey8.png" => mask.save_png(path).unwrap(),
        "grey16.png" => write_png(
            path,
            png::ColorType::Grayscale,
            png::BitDepth::Sixteen,
            None,
            &grey16,
        ),
        "palette.png" => write_png(
            path,
            png::ColorType::Indexed,
            png::BitDepth::Eight,
            Some(palette.clone()),
            &mask.data,
        ),
        "pure.png" => write_rgb(path, &mask, |l| {
            [[0, 0, 0], [0, 0, 255], [255, 0, 0]][l as usize]
        }),
        "overlay-colours.png" => write_rgb(path, &mask, |l| {
            [[0, 0, 0], [40, 120, 255], [255, 50, 50]][l as usize]
        }),
        _ => unreachable!(),
    };
    for name in [
        "grey8.png",
        "grey16.png",
        "palette.png",
        "pure.png",
        "overlay-colours.png",
    ] {
        let path = temp_mask(&dir, name);
        write(name, &path);
        let (result, warnings, errors) = first_labels(&path, &[]);
        assert!(
            errors.is_empty() && warnings.is_empty(),
            "{name}: {errors:?} {warnings:?}"
        );
        let result = result.unwrap();
        assert_eq!(result.labels.as_ref(), Some(&mask), "{name}");
        assert_eq!(
            result.areas,
            vec![(W * H - 256 - 320) as u64, 256, 320],
            "{name}"
        );
    }
}

#[test]
fn a_binary_mask_is_the_vein_with_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let path = temp_mask(&dir, "binary.png");
    let vein = square(W, H, 8, 8, 16, 1);
    LabelMap::from_vec(W, H, vein.data.iter().map(|&l| l * 255).collect())
        .unwrap()
        .save_png(&path)
        .unwrap();
    let (result, warnings, errors) = first_labels(&path, &[]);
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(result.unwrap().labels, Some(vein));
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].contains("binary") && warnings[0].contains("class 1 (vein)"),
        "{}",
        warnings[0]
    );
}

#[test]
fn ids_the_model_does_not_name_warn_and_are_named_class_n() {
    let dir = tempfile::tempdir().unwrap();
    let path = temp_mask(&dir, "ids.png");
    let mut mask = two_vessels();
    for y in 30..34 {
        for x in 2..8 {
            mask.data[y * W + x] = 7;
        }
    }
    mask.save_png(&path).unwrap();
    let (result, warnings, errors) = first_labels(&path, &[]);
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].contains("does not name: 7") && warnings[0].contains("class-7"),
        "{}",
        warnings[0]
    );
    let result = result.unwrap();
    assert_eq!(result.class_names.len(), 8);
    assert_eq!(result.class_names[7], "class-7");
    assert_eq!(result.areas.len(), 8);
    assert_eq!(result.areas[7], 24);
    assert!(
        result.class_names.iter().all(|n| !n.is_empty()),
        "{:?}",
        result.class_names
    );
}

#[test]
fn vessels_of_unnamed_ids_carry_a_class_name_in_the_meta_and_the_roi() {
    let (element, _bus) = element(&[("model-location", &test_model("identity_pool"))]);
    let (mut h, info) = grey_harness(&element);
    let mut buffer = frame_buffer(&info, 0);
    attach_reference_mask(buffer.get_mut().unwrap(), &square(W, H, 4, 4, 10, 9)).unwrap();
    let out = h.push_and_pull(buffer).unwrap();
    let meta = gst::meta::CustomMeta::from_buffer(&out, "PddFlowMeta").unwrap();
    let vessels = meta.structure().get::<gst::Array>("vessels").unwrap();
    assert_eq!(vessels.len(), 1);
    let vessel = vessels.as_slice()[0].get::<gst::Structure>().unwrap();
    assert_eq!(vessel.get::<&str>("class").unwrap(), "class-9");
    let roi = out
        .meta::<gst_video::VideoRegionOfInterestMeta>()
        .expect("a ROI per vessel");
    assert_eq!(roi.roi_type(), "class-9");
}

#[test]
fn a_mask_of_no_class_ids_is_an_error_naming_encoding_and_values() {
    let dir = tempfile::tempdir().unwrap();
    let path = temp_mask(&dir, "scaled.png");
    LabelMap::from_vec(W, H, two_vessels().data.iter().map(|&l| l * 100).collect())
        .unwrap()
        .save_png(&path)
        .unwrap();
    let (result, _, errors) = first_labels(&path, &[]);
    assert!(result.is_none());
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].contains("8-bit grey mask with values {0, 100, 200}")
            && errors[0].contains("expected class ids 0 to 2"),
        "{}",
        errors[0]
    );
}

#[test]
fn unknown_colours_are_an_error_until_mask_colors_maps_them() {
    let dir = tempfile::tempdir().unwrap();
    let path = temp_mask(&dir, "green.png");
    let mask = two_vessels();
    write_rgb(&path, &mask, |l| {
        [[0, 0, 0], [0, 255, 0], [255, 255, 0]][l as usize]
    });
    let (result, _, errors) = first_labels(&path, &[]);
    assert!(result.is_none());
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].contains("8-bit RGB mask")
            && errors[0].contains("#00ff00 (256 px)")
            && errors[0].contains("#ffff00 (320 px)")
            && errors[0].contains("mask-colors"),
        "{}",
        errors[0]
    );
    let (result, warnings, errors) =
        first_labels(&path, &[("mask-colors", &"#00ff00=1, #ffff00=2")]);
    assert!(
        errors.is_empty() && warnings.is_empty(),
        "{errors:?} {warnings:?}"
    );
    assert_eq!(result.unwrap().labels, Some(mask));
}

#[test]
fn a_bad_mask_colors_entry_is_a_settings_error() {
    let (element, bus) = element(&[
        ("model-location", &test_model("identity_pool")),
        ("mask-colors", &"green=1"),
    ]);
    assert!(element.set_state(gst::State::Playing).is_err());
    let _ = element.set_state(gst::State::Null);
    let error = pop_error(&bus);
    assert!(error.matches(gst::LibraryError::Settings), "{error:?}");
    assert!(error.to_string().contains("#RRGGBB=ID"), "{error:?}");
}

#[test]
fn an_upstream_mask_with_unnamed_ids_warns_once() {
    let (element, bus) = element(&[("model-location", &test_model("identity_pool"))]);
    let (mut h, info) = grey_harness(&element);
    let mut mask = two_vessels();
    mask.data[0] = 5;
    for i in 0..4 {
        let mut buffer = frame_buffer(&info, i);
        attach_reference_mask(buffer.get_mut().unwrap(), &mask).unwrap();
        let r = result(&h.push_and_pull(buffer).unwrap());
        assert_eq!(r.class_names[5], "class-5");
    }
    let warnings = messages(&bus, gst::MessageType::Warning);
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].contains("upstream") && warnings[0].contains("5"),
        "{}",
        warnings[0]
    );
}

fn pop_error(bus: &gst::Bus) -> glib::Error {
    let msg = bus
        .pop_filtered(&[gst::MessageType::Error])
        .expect("an error message");
    match msg.view() {
        gst::MessageView::Error(e) => e.error(),
        _ => unreachable!(),
    }
}

/// A copy of the identity_pool model with `model_json` as its description.
fn model_with_json(dir: &Path, model_json: &str) -> String {
    for file in ["features.onnx", "flow.onnx"] {
        std::fs::copy(
            Path::new(&test_model("identity_pool")).join(file),
            dir.join(file),
        )
        .unwrap();
    }
    std::fs::write(dir.join("model.json"), model_json).unwrap();
    dir.to_str().unwrap().to_string()
}

#[test]
fn a_malformed_model_json_is_a_settings_error_saying_what_is_wrong() {
    let good = std::fs::read_to_string(Path::new(&test_model("identity_pool")).join("model.json"))
        .unwrap();
    let cases = [
        ("{ not json", "not valid JSON"),
        (
            &good.replace("\"stride\"", "\"strides\"")[..],
            "field stride (a pixel count) is missing",
        ),
        (
            &good.replacen("\"0\": \"background\"", "\"zero\": \"background\"", 1)[..],
            "classes key \"zero\" is not a class id",
        ),
    ];
    for (json, expected) in cases {
        let dir = tempfile::tempdir().unwrap();
        let location = model_with_json(dir.path(), json);
        let (element, bus) = element(&[("model-location", &location)]);
        assert!(
            element.set_state(gst::State::Playing).is_err(),
            "{expected}"
        );
        let _ = element.set_state(gst::State::Null);
        let error = pop_error(&bus);
        assert!(
            error.matches(gst::LibraryError::Settings),
            "{expected}: {error:?}"
        );
        let text = error.to_string();
        assert!(
            text.contains("model.json") && text.contains(expected),
            "{text}"
        );
    }
    // A missing directory stays a resource error.
    let (element, bus) = element(&[("model-location", &"/nonexistent/pddflow-model")]);
    assert!(element.set_state(gst::State::Playing).is_err());
    let _ = element.set_state(gst::State::Null);
    assert!(pop_error(&bus).matches(gst::ResourceError::NotFound));
}

#[test]
fn strict_provider_with_auto_starts_and_means_nothing() {
    let (element, bus) = element(&[
        ("model-location", &test_model("identity_pool")),
        ("strict-provider", &true),
    ]);
    element.set_property_from_str("execution-provider", "auto");
    assert!(
        element.set_state(gst::State::Playing).is_ok(),
        "{:?}",
        messages(&bus, gst::MessageType::Error)
    );
    assert!(["cpu", "cuda"].contains(&element.property::<String>("active-provider").as_str()));
    let _ = element.set_state(gst::State::Null);
    assert!(messages(&bus, gst::MessageType::Error).is_empty());
    assert!(messages(&bus, gst::MessageType::Warning).is_empty());
}

/// The `pddflow-summary` message on `bus`.
fn summary(bus: &gst::Bus) -> gst::Structure {
    while let Some(msg) = bus.pop_filtered(&[gst::MessageType::Element]) {
        if let Some(s) = msg.structure().filter(|s| s.name() == "pddflow-summary") {
            return s.to_owned();
        }
    }
    panic!("no pddflow-summary message");
}

#[test]
fn the_summary_is_per_segment_and_names_the_reference_of_its_ratio() {
    // Shift model at 128x96: content moves 6 px right and 3 down from the reference. A vein at
    // the right edge loses a quarter of its width; after a re-anchor on a central vein (larger),
    // nothing is lost.
    let (w, h) = (128u32, 96u32);
    let (element, bus) = element(&[("model-location", &test_model("shift"))]);
    let mut harness = harness(&element);
    harness.set_src_caps(gray_caps(w, h));
    let info = gst_video::VideoInfo::from_caps(&gray_caps(w, h)).unwrap();
    let edge_vein = square(128, 96, 104, 40, 24, 1);
    let central_vein = square(128, 96, 40, 30, 30, 1);
    let masks = [Some(&edge_vein), None, Some(&central_vein), None, None];
    for (i, mask) in masks.into_iter().enumerate() {
        let mut buffer = frame_buffer(&info, i as u32);
        if let Some(mask) = mask {
            attach_reference_mask(buffer.get_mut().unwrap(), mask).unwrap();
        }
        harness.push_and_pull(buffer).unwrap();
    }
    assert!(harness.push_event(gst::event::Eos::new()));
    let s = summary(&bus);
    assert_eq!(s.get::<u64>("frames").unwrap(), 5);
    let segments: Vec<gst::Structure> = s
        .get::<gst::Array>("segments")
        .unwrap()
        .iter()
        .map(|v| v.get::<gst::Structure>().unwrap())
        .collect();
    assert_eq!(segments.len(), 2, "{s}");
    let field = |s: &gst::Structure, name: &str| s.get::<u64>(name).unwrap();
    let ratio = |s: &gst::Structure| s.get::<f64>("min-vein-compression-ratio").unwrap();
    assert_eq!(field(&segments[0], "reference-frame"), 0);
    assert_eq!(field(&segments[0], "frames"), 2);
    assert_eq!(field(&segments[0], "reference-vein-area"), 24 * 24);
    assert!((ratio(&segments[0]) - 0.75).abs() < 0.03, "{s}");
    assert_eq!(field(&segments[0], "min-ratio-frame"), 1);
    assert_eq!(field(&segments[1], "reference-frame"), 2);
    assert_eq!(field(&segments[1], "frames"), 3);
    assert_eq!(field(&segments[1], "reference-vein-area"), 30 * 30);
    assert!(ratio(&segments[1]) > 0.97, "{s}");
    // The top level is the most compressed segment, whole: its reference, area and ratio.
    assert_eq!(field(&s, "reference-frame"), 0);
    assert_eq!(field(&s, "reference-vein-area"), 24 * 24);
    assert_eq!(ratio(&s), ratio(&segments[0]));
    assert_eq!(field(&s, "min-ratio-frame"), 1);
    assert!(!s.get::<bool>("vein-closed").unwrap());
    assert_eq!(field(&s, "segments-dropped"), 0);
}
