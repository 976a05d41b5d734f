//! Metadata that pddflow reads from and attaches to buffers, as `GstCustomMeta` so that C and
//! Python applications can read it without this crate.
//!
//! * [`RESULT_META_NAME`]: the per-frame result that `pddflow` attaches (flow, propagated labels,
//!   reference frame, areas). Read it with [`FlowResult::from_buffer`].
//! * [`REFERENCE_MASK_META_NAME`]: a reference label map given by an upstream element
//!   (`usphantomsrc`, a segmentation model). `pddflow` re-anchors on any buffer that carries one.

use crate::flow::labels;
use crate::flow::regions::{area_mm2, Region};
use crate::flow::{FlowField, LabelMap};

/// Name of the custom meta holding pddflow's per-frame result.
pub const RESULT_META_NAME: &str = "PddFlowMeta";
/// Name of the custom meta holding a reference label map for `pddflow` to propagate.
pub const REFERENCE_MASK_META_NAME: &str = "PddFlowReferenceMaskMeta";

/// Registers both custom metas. Idempotent; needs `gst::init()` first. The plugin calls it when
/// it loads, so applications only need it to attach metas before the plugin is loaded.
///
/// The metas are tagged `video` and `size`: `videoconvert` and `videoscale` then hand them to
/// [`transform`], which rescales label maps and flow scales to the output size, while `queue`
/// and other elements pass them on as they are.
pub fn register() {
    use glib::translate::ToGlibPtr;
    static TAGS: [&glib::GStr; 2] = [glib::gstr!("video"), glib::gstr!("size")];
    for name in [RESULT_META_NAME, REFERENCE_MASK_META_NAME] {
        if !gst::meta::CustomMeta::is_registered(name) {
            let mut tags = [TAGS[0].as_ptr(), TAGS[1].as_ptr(), std::ptr::null()];
            // SAFETY: the name is copied by GStreamer; the tag array is NULL-terminated and its
            // strings are static; the transform function is a plain function with no user data.
            unsafe {
                gst::ffi::gst_meta_register_custom(
                    name.to_glib_none().0,
                    tags.as_mut_ptr(),
                    Some(transform),
                    std::ptr::null_mut(),
                    None,
                );
            }
        }
    }
}

static CAT: once_cell::sync::Lazy<gst::DebugCategory> = once_cell::sync::Lazy::new(|| {
    gst::DebugCategory::new(
        "pddflow-meta",
        gst::DebugColorFlags::empty(),
        Some("pddflow buffer metadata"),
    )
});

/// Copies a meta to a transformed buffer; for a scale (`videoscale`, `videoconvert`) also
/// rescales what depends on the frame size. Declines (returns FALSE, with a log line) a meta it
/// cannot transform: a malformed label map, or one whose size is not the input frame's.
unsafe extern "C" fn transform(
    dest: *mut gst::ffi::GstBuffer,
    meta: *mut gst::ffi::GstCustomMeta,
    _src: *mut gst::ffi::GstBuffer,
    kind: glib::ffi::GQuark,
    data: glib::ffi::gpointer,
    _user_data: glib::ffi::gpointer,
) -> glib::ffi::gboolean {
    // A panic must not unwind into GStreamer's C code: that aborts the whole process.
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        // SAFETY: as `transform_meta` requires, from GStreamer's GstMetaTransformFunction.
        unsafe { transform_meta(dest, meta, kind, data) }
    }));
    match outcome {
        Ok(Ok(())) => glib::ffi::GTRUE,
        Ok(Err(reason)) => {
            gst::warning!(CAT, "not transforming the meta: {reason}");
            glib::ffi::GFALSE
        }
        Err(_) => {
            gst::error!(CAT, "panic while transforming a meta; it is dropped");
            glib::ffi::GFALSE
        }
    }
}

/// The body of [`transform`].
///
/// # Safety
/// `meta` is a valid custom meta, `dest` a writable buffer and, for the video scale transform,
/// `data` a `GstVideoMetaTransform`, as GStreamer passes them.
unsafe fn transform_meta(
    dest: *mut gst::ffi::GstBuffer,
    meta: *mut gst::ffi::GstCustomMeta,
    kind: glib::ffi::GQuark,
    data: glib::ffi::gpointer,
) -> Result<(), String> {
    use glib::translate::{FromGlib, IntoGlib};
    // SAFETY: see the function's contract.
    unsafe {
        let structure =
            gst::StructureRef::from_glib_borrow(gst::ffi::gst_custom_meta_get_structure(meta));
        let mut fields = structure.to_owned();
        let kind = glib::Quark::from_glib(kind);
        if kind == glib::Quark::from_static_str(glib::gstr!("gst-copy")) {
            // Plain copy: nothing is interpreted; whoever reads the meta checks it.
        } else if kind.into_glib() == gst_video::ffi::gst_video_meta_transform_scale_get_quark() {
            if data.is_null() {
                return Err("scale transform without its sizes".into());
            }
            let t = &*(data as *const gst_video::ffi::GstVideoMetaTransform);
            if t.in_info.is_null() || t.out_info.is_null() {
                return Err("scale transform without its sizes".into());
            }
            let size = |info: *const gst_video::ffi::GstVideoInfo| {
                (
                    (*info).width.max(0) as usize,
                    (*info).height.max(0) as usize,
                )
            };
            rescale_fields(&mut fields, size(t.in_info), size(t.out_info))
                .map_err(|e| format!("{}: {e}", fields.name()))?;
        } else {
            return Err(format!(
                "{}: unknown transform {}",
                fields.name(),
                kind.as_str()
            ));
        }
        let buffer = gst::BufferRef::from_mut_ptr(dest);
        let mut copy = gst::meta::CustomMeta::add(buffer, fields.name().as_str())
            .map_err(|e| format!("cannot add {}: {e}", fields.name()))?;
        let out = copy.mut_structure();
        for (name, value) in fields.iter() {
            out.set_value(name, value.clone());
        }
        Ok(())
    }
}

/// Rescales the label map (nearest neighbour), its areas and the flow scale from a frame of
/// `from` size to one of `to` size. The flow itself stays at model resolution. A label map that
/// is malformed or not of the `from` size is an error: it was not meant for this frame.
fn rescale_fields(
    s: &mut gst::Structure,
    from: (usize, usize),
    to: (usize, usize),
) -> Result<(), String> {
    if from.0 == 0 || from.1 == 0 || to.0 == 0 || to.1 == 0 {
        return Err(format!(
            "cannot scale from {}x{} to {}x{}",
            from.0, from.1, to.0, to.1
        ));
    }
    let (w_key, h_key) = if s.name() == REFERENCE_MASK_META_NAME {
        ("width", "height")
    } else {
        ("labels-width", "labels-height")
    };
    // A reference mask is nothing but its labels; a result may carry none yet.
    let labels = if s.name() == REFERENCE_MASK_META_NAME || s.has_field("labels") {
        let w = u32_field(s, w_key)?;
        let h = u32_field(s, h_key)?;
        let labels = LabelMap::from_vec(w, h, bytes_field(s, "labels")?.to_vec())
            .map_err(|e| e.to_string())?;
        if (w, h) != from {
            return Err(format!(
                "label map is {w}x{h}, the frame it came with is {}x{}",
                from.0, from.1
            ));
        }
        Some(labels)
    } else {
        None
    };
    if from == to {
        return Ok(());
    }
    let (fx, fy) = (to.0 as f64 / from.0 as f64, to.1 as f64 / from.1 as f64);
    for (field, factor) in [("flow-scale-x", fx), ("flow-scale-y", fy)] {
        if let Ok(v) = s.get::<f64>(field) {
            s.set(field, v * factor);
        }
    }
    if let Some(labels) = labels {
        let scaled = labels.resize_nearest(to.0, to.1);
        if let Ok(old) = s.get::<gst::Array>("areas") {
            let mut areas = scaled.areas();
            areas.resize(areas.len().max(old.len()), 0);
            s.set("areas", gst::Array::new(areas));
        }
        s.set(w_key, to.0 as u32);
        s.set(h_key, to.1 as u32);
        s.set("labels", glib::Bytes::from_owned(scaled.data));
    }
    Ok(())
}

fn bytes_field<'a>(s: &'a gst::StructureRef, name: &str) -> Result<&'a [u8], String> {
    s.get::<&glib::Bytes>(name)
        .map(|b| b.as_ref())
        .map_err(|e| format!("field {name}: {e}"))
}

fn u32_field(s: &gst::StructureRef, name: &str) -> Result<usize, String> {
    s.get::<u32>(name)
        .map(|v| v as usize)
        .map_err(|e| format!("field {name}: {e}"))
}

/// Attaches `mask` to `buffer` as the reference mask for `pddflow`.
pub fn attach_reference_mask(
    buffer: &mut gst::BufferRef,
    mask: &LabelMap,
) -> Result<(), glib::BoolError> {
    let mut meta = gst::meta::CustomMeta::add(buffer, REFERENCE_MASK_META_NAME)?;
    let s = meta.mut_structure();
    s.set("width", mask.width as u32);
    s.set("height", mask.height as u32);
    s.set("labels", glib::Bytes::from(&mask.data[..]));
    Ok(())
}

/// The reference mask carried by `buffer`, if any. `Some(Err)` for a malformed meta.
pub fn reference_mask(buffer: &gst::BufferRef) -> Option<Result<LabelMap, String>> {
    let meta = gst::meta::CustomMeta::from_buffer(buffer, REFERENCE_MASK_META_NAME).ok()?;
    Some(reference_mask_fields(meta.structure()))
}

fn reference_mask_fields(s: &gst::StructureRef) -> Result<LabelMap, String> {
    let w = u32_field(s, "width")?;
    let h = u32_field(s, "height")?;
    LabelMap::from_vec(w, h, bytes_field(s, "labels")?.to_vec()).map_err(|e| e.to_string())
}

/// The propagated label map of the result attached to `buffer`, without decoding the rest of
/// the result (the flow). `None` without a result or without labels; `Some(Err)` for malformed
/// labels.
pub fn result_labels(buffer: &gst::BufferRef) -> Option<Result<LabelMap, String>> {
    let meta = gst::meta::CustomMeta::from_buffer(buffer, RESULT_META_NAME).ok()?;
    result_labels_fields(meta.structure())
}

fn result_labels_fields(s: &gst::StructureRef) -> Option<Result<LabelMap, String>> {
    if !s.has_field("labels") {
        return None;
    }
    let labels = || {
        let w = u32_field(s, "labels-width")?;
        let h = u32_field(s, "labels-height")?;
        LabelMap::from_vec(w, h, bytes_field(s, "labels")?.to_vec()).map_err(|e| e.to_string())
    };
    Some(labels())
}

/// One frame's result as `pddflow` attaches it.
#[derive(Clone, Debug, PartialEq)]
pub struct FlowResult {
    /// Index of this frame since the stream started (0-based).
    pub frame: u64,
    /// Index of the reference frame the flow points to.
    pub reference_frame: u64,
    /// Backward flow from this frame to the reference, at model resolution, in model pixels.
    pub flow: FlowField,
    /// Frame pixels per flow pixel, horizontally and vertically.
    pub flow_scale: (f64, f64),
    /// Propagated label map at frame resolution; `None` until a reference mask is known.
    pub labels: Option<LabelMap>,
    /// Class names by label id (index 0 is the background).
    pub class_names: Vec<String>,
    /// Pixel count per label id in `labels` (empty without labels).
    pub areas: Vec<u64>,
    /// `keyframe`, `chain` or `hybrid` ([`crate::flow::tracker::Mode::name`]).
    pub mode: String,
    /// The ONNX Runtime execution provider that computed the flow (`cpu` or `cuda`).
    pub execution_provider: String,
    /// Vein area over the vein area in the reference frame (`None` without a reference vein).
    pub vein_compression_ratio: Option<f64>,
    /// Millimetres per frame pixel when known (the element's `pixel-spacing`).
    pub pixel_spacing_mm: Option<f64>,
    /// Connected vessel regions of `labels` (boxes, areas, mean motion, confidence).
    pub vessels: Vec<Region>,
    /// The lowest tracking confidence of the reference's vessels in this frame, a vessel that
    /// vanished counting 0 (see [`crate::flow::confidence`]); `None` without tracked vessels.
    pub tracking_confidence: Option<f64>,
    /// The element skipped the flow of this late frame (QoS in a live pipeline): flow, labels
    /// and vessels are the last computed frame's, carried forward.
    pub skipped: bool,
}

impl FlowResult {
    /// Attaches this result to `buffer` as a [`RESULT_META_NAME`] custom meta.
    ///
    /// Structure fields: `frame`, `reference-frame` (u64); `flow` (bytes, f32 little-endian,
    /// interleaved `dx, dy` per pixel, row-major), `flow-width`, `flow-height` (u32),
    /// `flow-scale-x`, `flow-scale-y` (f64), `flow-direction` ("backward-to-reference");
    /// `labels` (bytes, u8 per pixel), `labels-width`, `labels-height` (u32), present only with
    /// labels; `class-names` (string array), `areas` (u64 array, pixels per label id); `mode`,
    /// `execution-provider` (strings); `vein-compression-ratio` (f64) when the reference has a
    /// vein; `pixel-spacing-mm` (f64) and `areas-mm2` (f64 array) when the spacing is known;
    /// `vessels` (array of `vessel` structures: `id` (the vessel's instance id, stable from its
    /// reference frame on), `label`, `class`, `x`, `y`, `width`, `height`, `area`,
    /// `mean-motion-x`, `mean-motion-y`, and `confidence` (f64) for a tracked vessel);
    /// `tracking-confidence` (f64) when the reference's vessels are tracked; `skipped` (bool):
    /// true when the flow of this late frame was skipped and the last result carried forward.
    pub fn attach(&self, buffer: &mut gst::BufferRef) -> Result<(), glib::BoolError> {
        let mut meta = gst::meta::CustomMeta::add(buffer, RESULT_META_NAME)?;
        let s = meta.mut_structure();
        s.set("frame", self.frame);
        s.set("reference-frame", self.reference_frame);
        let mut flow = Vec::with_capacity(self.flow.dx.len() * 8);
        for (dx, dy) in self.flow.dx.iter().zip(&self.flow.dy) {
            flow.extend_from_slice(&dx.to_le_bytes());
            flow.extend_from_slice(&dy.to_le_bytes());
        }
        s.set("flow", glib::Bytes::from_owned(flow));
        s.set("flow-width", self.flow.width as u32);
        s.set("flow-height", self.flow.height as u32);
        s.set("flow-scale-x", self.flow_scale.0);
        s.set("flow-scale-y", self.flow_scale.1);
        s.set("flow-direction", "backward-to-reference");
        if let Some(labels) = &self.labels {
            s.set("labels", glib::Bytes::from(&labels.data[..]));
            s.set("labels-width", labels.width as u32);
            s.set("labels-height", labels.height as u32);
        }
        s.set(
            "class-names",
            gst::Array::new(self.class_names.iter().map(|n| n.as_str())),
        );
        s.set("areas", gst::Array::new(self.areas.iter().copied()));
        s.set("mode", self.mode.as_str());
        s.set("execution-provider", self.execution_provider.as_str());
        if let Some(ratio) = self.vein_compression_ratio {
            s.set("vein-compression-ratio", ratio);
        }
        s.set("skipped", self.skipped);
        if let Some(c) = self.tracking_confidence {
            s.set("tracking-confidence", c);
        }
        let vessels = self.vessels.iter().map(|v| {
            let class = labels::class_name(&self.class_names, v.label);
            let mut vessel = gst::Structure::builder("vessel")
                .field("id", v.id)
                .field("label", v.label as u32)
                .field("class", class.as_str())
                .field("x", v.bbox.0)
                .field("y", v.bbox.1)
                .field("width", v.bbox.2)
                .field("height", v.bbox.3)
                .field("area", v.area)
                .field("mean-motion-x", v.mean_motion.0)
                .field("mean-motion-y", v.mean_motion.1)
                .build();
            if let Some(c) = v.confidence {
                vessel.set("confidence", c);
            }
            vessel
        });
        s.set("vessels", gst::Array::new(vessels));
        if let Some(mm) = self.pixel_spacing_mm {
            s.set("pixel-spacing-mm", mm);
            s.set(
                "areas-mm2",
                gst::Array::new(self.areas.iter().map(|&a| area_mm2(a, mm))),
            );
        }
        Ok(())
    }

    /// Reads the result attached to `buffer`, if any. `Some(Err)` for a malformed meta.
    pub fn from_buffer(buffer: &gst::BufferRef) -> Option<Result<Self, String>> {
        let meta = gst::meta::CustomMeta::from_buffer(buffer, RESULT_META_NAME).ok()?;
        Some(Self::from_structure(meta.structure()))
    }

    fn from_structure(s: &gst::StructureRef) -> Result<Self, String> {
        let fw = u32_field(s, "flow-width")?;
        let fh = u32_field(s, "flow-height")?;
        let raw = bytes_field(s, "flow")?;
        // Checked: the sizes come from whoever attached the meta.
        if fw.checked_mul(fh).and_then(|n| n.checked_mul(8)) != Some(raw.len()) {
            return Err(format!(
                "flow has {} bytes, expected {fw}x{fh} pixels of 8 bytes",
                raw.len()
            ));
        }
        let mut flow = FlowField::zeros(fw, fh);
        for (i, px) in raw.chunks_exact(8).enumerate() {
            flow.dx[i] = f32::from_le_bytes([px[0], px[1], px[2], px[3]]);
            flow.dy[i] = f32::from_le_bytes([px[4], px[5], px[6], px[7]]);
        }
        let labels = result_labels_fields(s).transpose()?;
        let array = |name: &str| -> Result<gst::Array, String> {
            s.get::<gst::Array>(name)
                .map_err(|e| format!("field {name}: {e}"))
        };
        let class_names = array("class-names")?
            .iter()
            .map(|v| v.get::<String>().map_err(|e| e.to_string()))
            .collect::<Result<_, _>>()?;
        let areas = array("areas")?
            .iter()
            .map(|v| v.get::<u64>().map_err(|e| e.to_string()))
            .collect::<Result<_, _>>()?;
        let string = |name: &str| -> Result<String, String> {
            s.get::<String>(name)
                .map_err(|e| format!("field {name}: {e}"))
        };
        Ok(Self {
            frame: s.get::<u64>("frame").map_err(|e| e.to_string())?,
            reference_frame: s.get::<u64>("reference-frame").map_err(|e| e.to_string())?,
            flow,
            flow_scale: (
                s.get::<f64>("flow-scale-x").map_err(|e| e.to_string())?,
                s.get::<f64>("flow-scale-y").map_err(|e| e.to_string())?,
            ),
            labels,
            class_names,
            areas,
            mode: string("mode")?,
            execution_provider: string("execution-provider")?,
            vein_compression_ratio: s.get::<f64>("vein-compression-ratio").ok(),
            pixel_spacing_mm: s.get::<f64>("pixel-spacing-mm").ok(),
            tracking_confidence: s.get::<f64>("tracking-confidence").ok(),
            // Absent in metas of earlier versions: those never skipped.
            skipped: s.get::<bool>("skipped").unwrap_or(false),
            vessels: array("vessels")?
                .iter()
                .map(|v| {
                    let v = v.get::<gst::Structure>().map_err(|e| e.to_string())?;
                    let get_u32 = |k: &str| v.get::<u32>(k).map_err(|e| format!("vessel {k}: {e}"));
                    let get_f64 = |k: &str| v.get::<f64>(k).map_err(|e| format!("vessel {k}: {e}"));
                    Ok(Region {
                        id: get_u32("id")?,
                        label: get_u32("label")? as u8,
                        bbox: (
                            get_u32("x")?,
                            get_u32("y")?,
                            get_u32("width")?,
                            get_u32("height")?,
                        ),
                        area: v.get::<u64>("area").map_err(|e| e.to_string())?,
                        mean_motion: (get_f64("mean-motion-x")?, get_f64("mean-motion-y")?),
                        confidence: v.get::<f64>("confidence").ok(),
                    })
                })
                .collect::<Result<_, String>>()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn result_round_trips_through_a_buffer() {
        gst::init().unwrap();
        register();
        let mut flow = FlowField::zeros(4, 3);
        flow.dx[5] = 1.25;
        flow.dy[11] = -0.5;
        let result = FlowResult {
            frame: 7,
            reference_frame: 2,
            flow,
            flow_scale: (2.0, 4.0),
            labels: Some(LabelMap::from_vec(2, 2, vec![0, 1, 2, 0]).unwrap()),
            class_names: vec!["background".into(), "vein".into(), "artery".into()],
            areas: vec![2, 1, 1],
            mode: "keyframe".into(),
            execution_provider: "cpu".into(),
            vein_compression_ratio: Some(0.5),
            pixel_spacing_mm: Some(0.1),
            vessels: vec![Region {
                id: 1,
                label: 2,
                bbox: (1, 2, 3, 4),
                area: 9,
                mean_motion: (0.5, -1.0),
                confidence: Some(0.75),
            }],
            tracking_confidence: Some(0.75),
            skipped: true,
        };
        let mut buffer = gst::Buffer::new();
        result.attach(buffer.get_mut().unwrap()).unwrap();
        assert_eq!(FlowResult::from_buffer(&buffer).unwrap().unwrap(), result);
        assert_eq!(
            result_labels(&buffer).unwrap().unwrap(),
            result.labels.unwrap()
        );
    }

    fn mask_fields(width: u32, height: u32, labels: Vec<u8>) -> gst::Structure {
        gst::Structure::builder(REFERENCE_MASK_META_NAME)
            .field("width", width)
            .field("height", height)
            .field("labels", glib::Bytes::from_owned(labels))
            .build()
    }

    #[test]
    fn rescaling_a_malformed_or_foreign_mask_is_an_error_not_a_panic() {
        gst::init().unwrap();
        let cases = [
            ("zero width", mask_fields(0, 48, vec![])),
            ("zero height", mask_fields(64, 0, vec![])),
            ("short labels", mask_fields(64, 48, vec![1; 100])),
            ("long labels", mask_fields(64, 48, vec![1; 64 * 48 + 1])),
            ("other size", mask_fields(32, 24, vec![1; 32 * 24])),
            (
                "labels of the wrong type",
                gst::Structure::builder(REFERENCE_MASK_META_NAME)
                    .field("width", 64u32)
                    .field("height", 48u32)
                    .field("labels", "not bytes")
                    .build(),
            ),
            (
                "no labels",
                gst::Structure::builder(REFERENCE_MASK_META_NAME)
                    .field("width", 64u32)
                    .field("height", 48u32)
                    .build(),
            ),
        ];
        for (what, fields) in cases {
            let mut s = fields.clone();
            assert!(
                rescale_fields(&mut s, (64, 48), (128, 96)).is_err(),
                "{what}"
            );
            assert_eq!(s, fields, "{what}: left as it was");
        }
        let mut s = mask_fields(64, 48, vec![1; 64 * 48]);
        assert!(rescale_fields(&mut s, (0, 48), (128, 96)).is_err());
        rescale_fields(&mut s, (64, 48), (128, 96)).unwrap();
        assert_eq!(
            reference_mask_fields(&s).unwrap(),
            LabelMap::from_vec(128, 96, vec![1; 128 * 96]).unwrap()
        );
    }

    #[test]
    fn reference_mask_round_trips() {
        gst::init().unwrap();
        register();
        let mask = LabelMap::from_vec(3, 1, vec![1, 0, 2]).unwrap();
        let mut buffer = gst::Buffer::new();
        assert!(reference_mask(&buffer).is_none());
        assert!(result_labels(&buffer).is_none());
        attach_reference_mask(buffer.get_mut().unwrap(), &mask).unwrap();
        assert_eq!(reference_mask(&buffer).unwrap().unwrap(), mask);
    }
}
