//! Property-based tests: label maps, metadata structures, reference-mask PNGs and `model.json`
//! with arbitrary sizes, lengths and field types never panic, and give a valid result or an
//! error. Case counts are modest so that the file runs in seconds.

use gst::prelude::*;
use gstpddflow::engine::model::parse_spec;
use gstpddflow::flow::mask_file::{self, ColorMap};
use gstpddflow::flow::regions::find_regions;
use gstpddflow::flow::{FlowField, LabelMap};
use gstpddflow::meta::{self, FlowResult, REFERENCE_MASK_META_NAME, RESULT_META_NAME};
use proptest::prelude::*;

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// A label map of 1 to 40 pixels a side with ids 0 to `max_id`.
fn label_map(max_id: u8) -> impl Strategy<Value = LabelMap> {
    (1usize..40, 1usize..40).prop_flat_map(move |(w, h)| {
        proptest::collection::vec(0..=max_id, w * h)
            .prop_map(move |data| LabelMap::from_vec(w, h, data).unwrap())
    })
}

proptest! {
    #![proptest_config(config(200))]

    #[test]
    fn resize_nearest_gives_the_size_asked_with_source_labels(
        map in label_map(5), w in 0usize..60, h in 0usize..60,
    ) {
        let out = map.resize_nearest(w, h);
        prop_assert_eq!((out.width, out.height, out.data.len()), (w, h, w * h));
        let areas = map.areas();
        for &l in &out.data {
            prop_assert!(areas.get(l as usize).is_some_and(|&a| a > 0), "label {} not in the source", l);
        }
        // Same size: unchanged.
        prop_assert_eq!(&map.resize_nearest(map.width, map.height), &map);
    }

    #[test]
    fn areas_count_every_pixel_once(map in label_map(255)) {
        let areas = map.areas();
        prop_assert_eq!(areas.len(), map.max_label() as usize + 1);
        prop_assert_eq!(areas.iter().sum::<u64>(), (map.width * map.height) as u64);
    }

    #[test]
    fn regions_lie_inside_the_map_and_cover_their_labels(
        map in label_map(3),
        flow_size in (1usize..20, 1usize..20),
        min_area in 0u64..6,
        dx in -5f32..5.0,
    ) {
        let flow = FlowField::constant(flow_size.0, flow_size.1, dx, 0.0);
        let regions = find_regions(&map, Some(&flow), min_area);
        let areas = map.areas();
        let mut per_label = vec![0u64; areas.len()];
        for r in &regions {
            let (x, y, w, h) = r.bbox;
            prop_assert!(r.label > 0 && r.area >= min_area.max(1));
            prop_assert!((x + w) as usize <= map.width && (y + h) as usize <= map.height);
            prop_assert!(r.area <= w as u64 * h as u64);
            prop_assert!(r.mean_motion.0.is_finite() && r.mean_motion.1.is_finite());
            per_label[r.label as usize] += r.area;
        }
        for (label, &sum) in per_label.iter().enumerate().skip(1) {
            prop_assert!(sum <= areas[label]);
            if min_area <= 1 {
                prop_assert_eq!(sum, areas[label], "every pixel of label {} is in a region", label);
            }
        }
    }

    #[test]
    fn empty_maps_have_no_regions(n in 0usize..5) {
        for map in [LabelMap::new(n, 0), LabelMap::new(0, n)] {
            prop_assert!(find_regions(&map, None, 0).is_empty());
            prop_assert_eq!(map.areas(), vec![0]);
        }
    }
}

/// A value of one of the types a structure field could hold.
#[derive(Clone, Debug)]
enum Field {
    U32(u32),
    U64(u64),
    I32(i32),
    F64(f64),
    Bool(bool),
    Str(String),
    Bytes(Vec<u8>),
    U64Array(Vec<u64>),
    StrArray(Vec<String>),
    Vessels(Vec<Vec<(String, u32)>>),
}

impl Field {
    fn to_send_value(&self) -> glib::SendValue {
        match self {
            Field::U32(v) => v.to_send_value(),
            Field::U64(v) => v.to_send_value(),
            Field::I32(v) => v.to_send_value(),
            Field::F64(v) => v.to_send_value(),
            Field::Bool(v) => v.to_send_value(),
            Field::Str(v) => v.to_send_value(),
            Field::Bytes(v) => glib::Bytes::from(&v[..]).to_send_value(),
            Field::U64Array(v) => gst::Array::new(v.iter().copied()).to_send_value(),
            Field::StrArray(v) => gst::Array::new(v.iter().map(String::as_str)).to_send_value(),
            Field::Vessels(v) => gst::Array::new(v.iter().map(|fields| {
                let mut s = gst::Structure::new_empty("vessel");
                for (k, val) in fields {
                    s.set(k.as_str(), *val);
                }
                s
            }))
            .to_send_value(),
        }
    }
}

/// Small sizes most of the time, extreme ones sometimes.
fn size() -> impl Strategy<Value = u32> {
    prop_oneof![4 => 0u32..6, 1 => Just(u32::MAX), 1 => any::<u32>()]
}

fn field() -> impl Strategy<Value = Field> {
    let key = prop_oneof![
        Just("label".to_string()),
        Just("x".to_string()),
        Just("width".to_string()),
        "[a-z]{1,6}"
    ];
    prop_oneof![
        size().prop_map(Field::U32),
        any::<u64>().prop_map(Field::U64),
        any::<i32>().prop_map(Field::I32),
        any::<f64>().prop_map(Field::F64),
        any::<bool>().prop_map(Field::Bool),
        "[a-z]{0,8}".prop_map(Field::Str),
        proptest::collection::vec(any::<u8>(), 0..200).prop_map(Field::Bytes),
        proptest::collection::vec(any::<u64>(), 0..5).prop_map(Field::U64Array),
        proptest::collection::vec("[a-z]{0,5}", 0..5).prop_map(Field::StrArray),
        proptest::collection::vec(proptest::collection::vec((key, any::<u32>()), 0..4), 0..3)
            .prop_map(Field::Vessels),
    ]
}

const RESULT_FIELDS: [&str; 18] = [
    "frame",
    "reference-frame",
    "flow",
    "flow-width",
    "flow-height",
    "flow-scale-x",
    "flow-scale-y",
    "labels",
    "labels-width",
    "labels-height",
    "class-names",
    "areas",
    "mode",
    "execution-provider",
    "vein-compression-ratio",
    "pixel-spacing-mm",
    "vessels",
    "areas-mm2",
];

fn init() {
    gst::init().unwrap();
    meta::register();
}

fn buffer_with_meta(name: &str, fields: &[(String, Field)]) -> gst::Buffer {
    let mut buffer = gst::Buffer::new();
    {
        let buffer = buffer.get_mut().unwrap();
        let mut custom = gst::meta::CustomMeta::add(buffer, name).unwrap();
        let s = custom.mut_structure();
        for (k, v) in fields {
            s.set_value(k.as_str(), v.to_send_value());
        }
    }
    buffer
}

/// A buffer with a well-formed result meta whose `fields` are then set to other values.
fn well_formed_result_with(fields: &[(&str, Field)]) -> gst::Buffer {
    init();
    let good = FlowResult {
        frame: 3,
        reference_frame: 1,
        flow: FlowField::zeros(2, 2),
        flow_scale: (1.0, 1.0),
        labels: Some(LabelMap::from_vec(2, 1, vec![0, 1]).unwrap()),
        class_names: vec!["background".into(), "vein".into()],
        areas: vec![1, 1],
        mode: "keyframe".into(),
        execution_provider: "cpu".into(),
        vein_compression_ratio: Some(1.0),
        pixel_spacing_mm: None,
        vessels: vec![],
        tracking_confidence: Some(0.5),
        skipped: false,
    };
    let mut buffer = gst::Buffer::new();
    good.attach(buffer.get_mut().unwrap()).unwrap();
    {
        let buffer = buffer.get_mut().unwrap();
        let mut custom = gst::meta::CustomMeta::from_mut_buffer(buffer, RESULT_META_NAME).unwrap();
        for (name, value) in fields {
            custom
                .mut_structure()
                .set_value(*name, value.to_send_value());
        }
    }
    buffer
}

proptest! {
    #![proptest_config(config(300))]

    #[test]
    fn result_meta_with_any_fields_reads_or_errs(
        fields in proptest::collection::vec(
            (proptest::sample::select(RESULT_FIELDS.to_vec()).prop_map(String::from), field()),
            0..24,
        ),
    ) {
        init();
        let buffer = buffer_with_meta(RESULT_META_NAME, &fields);
        if let Ok(result) = FlowResult::from_buffer(&buffer).expect("the meta is attached") {
            prop_assert_eq!(result.flow.dx.len(), result.flow.width * result.flow.height);
            if let Some(labels) = &result.labels {
                prop_assert_eq!(labels.data.len(), labels.width * labels.height);
            }
        }
    }

    #[test]
    fn a_well_formed_result_with_one_field_changed_reads_or_errs(
        field_name in proptest::sample::select(RESULT_FIELDS.to_vec()),
        value in field(),
    ) {
        let buffer = well_formed_result_with(&[(field_name, value)]);
        let _ = FlowResult::from_buffer(&buffer).expect("the meta is attached");
    }

    #[test]
    fn a_result_with_any_sizes_and_lengths_reads_or_errs(
        flow_size in (size(), size()),
        flow_bytes in 0usize..64,
        labels_size in (size(), size()),
        labels_bytes in 0usize..16,
    ) {
        let buffer = well_formed_result_with(&[
            ("flow-width", Field::U32(flow_size.0)),
            ("flow-height", Field::U32(flow_size.1)),
            ("flow", Field::Bytes(vec![0; flow_bytes])),
            ("labels-width", Field::U32(labels_size.0)),
            ("labels-height", Field::U32(labels_size.1)),
            ("labels", Field::Bytes(vec![1; labels_bytes])),
        ]);
        if let Ok(result) = FlowResult::from_buffer(&buffer).expect("the meta is attached") {
            prop_assert_eq!(result.flow.width * result.flow.height * 8, flow_bytes);
            let labels = result.labels.expect("labels were attached");
            prop_assert_eq!(labels.width * labels.height, labels_bytes);
        }
    }

    #[test]
    fn reference_mask_meta_with_any_fields_reads_or_errs(
        width in prop_oneof![Just(None), field().prop_map(Some)],
        height in prop_oneof![Just(None), field().prop_map(Some)],
        labels in prop_oneof![Just(None), field().prop_map(Some)],
    ) {
        init();
        let fields: Vec<(String, Field)> = [("width", width), ("height", height), ("labels", labels)]
            .into_iter()
            .filter_map(|(k, v)| v.map(|v| (k.to_string(), v)))
            .collect();
        let buffer = buffer_with_meta(REFERENCE_MASK_META_NAME, &fields);
        if let Ok(mask) = meta::reference_mask(&buffer).expect("the meta is attached") {
            prop_assert_eq!(mask.data.len(), mask.width * mask.height);
        }
    }
}

/// Arbitrary JSON, a few levels deep.
fn json() -> impl Strategy<Value = serde_json::Value> {
    use serde_json::Value;
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        (-1e6f64..1e6).prop_map(Value::from),
        prop_oneof![Just(0u64), Just(4), Just(64), Just(u64::MAX)].prop_map(Value::from),
        "[a-z0-9]{0,6}".prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::Array),
            proptest::collection::btree_map("[a-z0-9]{0,4}", inner, 0..4)
                .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}

const SPEC_FIELDS: [&str; 8] = [
    "input_sizes",
    "name",
    "version",
    "input_width",
    "input_height",
    "stride",
    "feature_channels",
    "classes",
];

proptest! {
    #![proptest_config(config(300))]

    #[test]
    fn any_json_is_a_model_description_or_an_error(value in json()) {
        let _ = parse_spec(value.to_string().as_bytes(), "x");
    }

    #[test]
    fn model_json_with_fields_of_any_type_is_valid_or_an_error(
        overrides in proptest::collection::vec(
            (proptest::sample::select(SPEC_FIELDS.to_vec()), json()),
            0..4,
        ),
        class_ids in proptest::collection::btree_map("[0-9]{1,11}|[a-z]{1,3}", "[a-z]{1,6}", 0..4),
    ) {
        let mut value = serde_json::json!({
            "name": "m", "version": "1", "input_width": 64, "input_height": 32,
            "stride": 4, "feature_channels": 8,
            "classes": class_ids,
        });
        for (k, v) in overrides {
            value[k] = v;
        }
        if let Ok(spec) = parse_spec(value.to_string().as_bytes(), "x") {
            prop_assert!(spec.input_width > 0 && spec.input_height > 0 && spec.stride > 0);
            prop_assert!(spec.input_width % spec.stride == 0 && spec.input_height % spec.stride == 0);
            prop_assert!(spec.input_sizes.contains(&spec.default_size()));
            let stride = spec.stride;
            let on_grid = |&(w, h): &(usize, usize)| w > 0 && h > 0 && w % stride == 0 && h % stride == 0;
            prop_assert!(spec.input_sizes.iter().all(on_grid), "{:?}", spec.input_sizes);
            prop_assert_eq!(spec.size_for(0), Ok(spec.default_size()));
            let names = spec.class_names();
            prop_assert!((3..=256).contains(&names.len()), "{} class names", names.len());
            prop_assert!(names.iter().all(|n| !n.is_empty()));
        }
    }
}

/// Arbitrary PNG headers and samples: any colour type and bit depth the format allows.
fn png_mask() -> impl Strategy<Value = Vec<u8>> {
    use png::{BitDepth, ColorType};
    let kinds = prop_oneof![
        Just((ColorType::Grayscale, BitDepth::One)),
        Just((ColorType::Grayscale, BitDepth::Two)),
        Just((ColorType::Grayscale, BitDepth::Four)),
        Just((ColorType::Grayscale, BitDepth::Eight)),
        Just((ColorType::Grayscale, BitDepth::Sixteen)),
        Just((ColorType::Indexed, BitDepth::One)),
        Just((ColorType::Indexed, BitDepth::Four)),
        Just((ColorType::Indexed, BitDepth::Eight)),
        Just((ColorType::GrayscaleAlpha, BitDepth::Eight)),
        Just((ColorType::GrayscaleAlpha, BitDepth::Sixteen)),
        Just((ColorType::Rgb, BitDepth::Eight)),
        Just((ColorType::Rgb, BitDepth::Sixteen)),
        Just((ColorType::Rgba, BitDepth::Eight)),
        Just((ColorType::Rgba, BitDepth::Sixteen)),
    ];
    (kinds, 1u32..12, 1u32..12, any::<u64>()).prop_map(|((color, depth), w, h, seed)| {
        let bits = color.samples() * depth as usize;
        let row = (w as usize * bits).div_ceil(8);
        let mut state = seed | 1;
        let mut sample = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            // Mostly small values (class ids), sometimes anything.
            if state % 4 == 0 {
                (state >> 8) as u8
            } else {
                (state % 3) as u8
            }
        };
        let data: Vec<u8> = (0..row * h as usize).map(|_| sample()).collect();
        let mut out = Vec::new();
        {
            let mut encoder = png::Encoder::new(&mut out, w, h);
            encoder.set_color(color);
            encoder.set_depth(depth);
            if color == ColorType::Indexed {
                encoder.set_palette(vec![0u8; 3 << (depth as u8).min(8)]);
            }
            let mut writer = encoder.write_header().unwrap();
            writer.write_image_data(&data).unwrap();
        }
        out
    })
}

proptest! {
    #![proptest_config(config(300))]

    #[test]
    fn any_png_decodes_to_a_label_map_of_its_size_or_an_error(
        bytes in png_mask(),
        cut in proptest::option::of(0usize..200),
    ) {
        let bytes = match cut {
            Some(n) => &bytes[..n.min(bytes.len())],
            None => &bytes[..],
        };
        let names = vec!["background".to_string(), "vein".into(), "artery".into()];
        match mask_file::decode(bytes, &ColorMap::default()) {
            Ok(mask) => {
                prop_assert_eq!(mask.labels.data.len(), mask.labels.width * mask.labels.height);
                let _ = mask_file::unnamed_ids(&mask.labels, &names, "mask");
            }
            Err(e) => prop_assert!(!e.is_empty()),
        }
    }
}
