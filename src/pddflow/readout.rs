//! What `pddflow` reports about each frame, as pure functions: from a tracker step, the class
//! names, the pixel spacing and the compression monitor to the result meta, the ROI metas'
//! parameters, the legend and the element messages. The element maps frames, calls these and
//! attaches or posts what they return; unit tests check every field without a pipeline.
//!
//! It lives beside the element rather than in [`crate::flow`] because its output is the
//! element's GStreamer contract (message and field names, `gst::Structure`s).

use crate::flow::confidence::{frame_confidence, LossMonitor};
use crate::flow::draw::LegendLine;
use crate::flow::labels;
use crate::flow::lumen::{self, LumenReference};
use crate::flow::regions::{
    self, area_mm2, CompressionMonitor, CompressionSummary, Region, Segment,
};
use crate::flow::tracker::{self, Step};
use crate::flow::LabelMap;
use crate::meta::FlowResult;

/// Regions smaller than this many pixels are specks, not vessels.
const MIN_VESSEL_AREA: u64 = 4;

/// What a frame's readout depends on besides its tracker step.
#[derive(Clone, Debug)]
pub struct Context<'a> {
    /// Frame width and height in pixels.
    pub frame_size: (usize, usize),
    pub mode: tracker::Mode,
    /// The execution provider in use (`cpu`, `cuda`).
    pub execution_provider: &'a str,
    /// Millimetres per frame pixel; 0 when unknown.
    pub pixel_spacing: f64,
    /// Tracking confidence below which tracking counts as lost (0: never).
    pub tracking_threshold: f64,
    /// The frame's luma (`frame_size`, contiguous) when the vein-closed verdict may use image
    /// evidence ([`crate::flow::lumen`]); `None` for the area alone.
    pub luma: Option<&'a [u8]>,
}

/// The readout state carried from frame to frame.
#[derive(Debug, Default)]
pub struct Monitors {
    /// Names by class id: the model's, extended with `class-N` for the ids that masks bring.
    pub class_names: Vec<String>,
    pub compression: CompressionMonitor,
    pub tracking: LossMonitor,
    /// The lumen contrast of the vein and of the artery (its control) on the current
    /// reference frame; `None` where a vessel gives no evidence.
    pub lumen: (Option<LumenReference>, Option<LumenReference>),
}

/// One frame's readout.
#[derive(Debug)]
pub struct Frame {
    /// The result to attach; its vessels come from [`Frame::find_vessels`].
    pub result: FlowResult,
    /// Tracking confidence of each vessel instance (index `k - 1`).
    pub confidence: Vec<f32>,
    /// Tracking was lost on this frame: post a `pddflow-tracking-lost` message.
    pub tracking_lost: bool,
    /// Instance map and class per instance, for the vessel regions.
    instances: Option<(LabelMap, Vec<u8>)>,
}

impl Frame {
    /// Whether the tracker computed flow for this frame (a reference frame computes none).
    pub fn with_flow(&self) -> bool {
        self.result.frame != self.result.reference_frame
    }

    /// The instance map and class per instance, for the tracker to keep once the vessels are
    /// found (moved out: a frame-size map is not worth a copy).
    pub fn take_instances(&mut self) -> Option<(LabelMap, Vec<u8>)> {
        self.instances.take()
    }

    /// Finds the vessel regions of the result (one per tracked instance when instances are
    /// known, with their confidence). Apart from [`frame`] because it is the costly part: the
    /// element runs it without holding its state.
    pub fn find_vessels(&mut self) {
        let result = &self.result;
        self.result.vessels = match (&self.instances, &result.labels) {
            (Some((map, classes)), _) => {
                let mut vessels = regions::find_instance_regions(
                    map,
                    classes,
                    Some(&result.flow),
                    MIN_VESSEL_AREA,
                );
                for v in &mut vessels {
                    v.confidence = self
                        .confidence
                        .get(v.id as usize - 1)
                        .map(|&c| f64::from(c));
                }
                vessels
            }
            (None, Some(labels)) => {
                regions::find_regions(labels, Some(&result.flow), MIN_VESSEL_AREA)
            }
            (None, None) => Vec::new(),
        };
    }
}

/// The readout of a tracker step: areas, compression ratio and tracking confidence, updating
/// the monitors (a reference frame starts a compression segment).
pub fn frame(step: Step, context: &Context, monitors: &mut Monitors) -> Frame {
    let new_reference = step.frame == step.reference_frame;
    let tracking_confidence = frame_confidence(&step.confidence);
    let tracking_lost = monitors.tracking.update(
        tracking_confidence,
        context.tracking_threshold as f32,
        new_reference,
    );
    let mut areas = step.labels.as_ref().map(|l| l.areas()).unwrap_or_default();
    if step.labels.is_some() {
        // Every id in the metadata has a name: unnamed ones become class-N.
        labels::extend_class_names(&mut monitors.class_names, areas.len());
        areas.resize(monitors.class_names.len(), 0);
    }
    let vein_area = areas.get(labels::VEIN as usize).copied().unwrap_or(0);
    if new_reference {
        monitors.compression.anchor(step.frame, vein_area);
    }
    let ratio = monitors.compression.update(step.frame, vein_area);
    read_lumen(&step, context, monitors, new_reference);
    let (width, height) = context.frame_size;
    let result = FlowResult {
        frame: step.frame,
        reference_frame: step.reference_frame,
        flow_scale: (
            width as f64 / step.flow.width as f64,
            height as f64 / step.flow.height as f64,
        ),
        flow: step.flow,
        labels: step.labels,
        class_names: monitors.class_names.clone(),
        areas,
        mode: context.mode.name().into(),
        execution_provider: context.execution_provider.into(),
        vein_compression_ratio: ratio,
        pixel_spacing_mm: (context.pixel_spacing > 0.0).then_some(context.pixel_spacing),
        vessels: Vec::new(),
        tracking_confidence: tracking_confidence.map(f64::from),
        skipped: false,
    };
    Frame {
        result,
        confidence: step.confidence,
        tracking_lost,
        instances: step.instances,
    }
}

/// Takes the vessels' lumen contrast on a reference frame, and on later frames records when the
/// image shows the vein shut while the artery stays open.
fn read_lumen(step: &Step, context: &Context, monitors: &mut Monitors, new_reference: bool) {
    let (Some(luma), Some(labels)) = (context.luma, &step.labels) else {
        if new_reference {
            monitors.lumen = (None, None);
        }
        return;
    };
    if new_reference {
        monitors.lumen = (
            LumenReference::new(luma, labels, labels::VEIN),
            LumenReference::new(luma, labels, labels::ARTERY),
        );
        return;
    }
    // Once a frame has shown the vein shut, later frames cannot change the segment's verdict.
    if !monitors.compression.wants_contrast() {
        return;
    }
    if let (Some(vein), Some(artery)) = monitors.lumen {
        let vein = vein.relative(luma, labels, labels::VEIN);
        let artery = artery.relative(luma, labels, labels::ARTERY);
        if lumen::closed_by_contrast(vein, artery) {
            monitors.compression.contrast_closed(step.frame);
        }
    }
}

/// Pixels of `label` in the result (0 when absent).
fn area(result: &FlowResult, label: u8) -> u64 {
    result.areas.get(label as usize).copied().unwrap_or(0)
}

/// The legend's lines: each class present in the frame with its area (mm² when the spacing is
/// known, else pixels), the vein with its compression ratio.
pub fn legend(result: &FlowResult) -> Vec<LegendLine> {
    (1..result.class_names.len())
        .map(|label| label as u8)
        // Classes absent from this frame stay out, except a vein that closed.
        .filter(|&label| {
            area(result, label) > 0
                || (label == labels::VEIN && result.vein_compression_ratio.is_some())
        })
        .map(|label| {
            let area = area(result, label);
            let name = &result.class_names[label as usize];
            let mut text = match result.pixel_spacing_mm {
                Some(mm) => format!("{name} {:.1} mm2", area_mm2(area, mm)),
                None => format!("{name} {area} px"),
            };
            if label == labels::VEIN {
                if let Some(r) = result.vein_compression_ratio {
                    text.push_str(&format!(" {:.0}%", r * 100.0));
                }
            }
            LegendLine { label, text }
        })
        .collect()
}

/// A `GstVideoRegionOfInterestMeta` to attach: one per vessel.
#[derive(Clone, Debug, PartialEq)]
pub struct Roi {
    /// The ROI type: the vessel's class name.
    pub name: String,
    /// x, y, width, height in frame pixels.
    pub bbox: (u32, u32, u32, u32),
    /// The `pddflow/vessel` parameters.
    pub param: gst::Structure,
}

/// The ROI metas of the result's vessels.
pub fn rois(result: &FlowResult) -> Vec<Roi> {
    result
        .vessels
        .iter()
        .map(|vessel| Roi {
            name: labels::class_name(&result.class_names, vessel.label),
            bbox: vessel.bbox,
            param: vessel_param(vessel, result.pixel_spacing_mm),
        })
        .collect()
}

fn vessel_param(vessel: &Region, spacing_mm: Option<f64>) -> gst::Structure {
    let mut param = gst::Structure::builder("pddflow/vessel")
        .field("id", vessel.id)
        .field("label", vessel.label as u32)
        .field("area", vessel.area)
        .field("mean-motion-x", vessel.mean_motion.0)
        .field("mean-motion-y", vessel.mean_motion.1)
        .build();
    if let Some(c) = vessel.confidence {
        param.set("confidence", c);
    }
    if let Some(mm) = spacing_mm {
        param.set("area-mm2", area_mm2(vessel.area, mm));
    }
    param
}

/// Whether this frame posts a `pddflow-compression` message: every `interval` frames (0: never).
pub fn posts_compression(result: &FlowResult, interval: u32) -> bool {
    interval > 0 && result.frame.is_multiple_of(interval as u64)
}

/// The `pddflow-compression` element message: this frame's areas and vein ratio.
pub fn compression_message(result: &FlowResult, pts: Option<gst::ClockTime>) -> gst::Structure {
    let (vein, artery) = (area(result, labels::VEIN), area(result, labels::ARTERY));
    let mut s = gst::Structure::builder("pddflow-compression")
        .field("frame", result.frame)
        .field("reference-frame", result.reference_frame)
        .field("vein-area", vein)
        .field("artery-area", artery)
        .build();
    if let Some(pts) = pts {
        s.set("pts", pts);
    }
    if let Some(mm) = result.pixel_spacing_mm {
        s.set("vein-area-mm2", area_mm2(vein, mm));
        s.set("artery-area-mm2", area_mm2(artery, mm));
    }
    if let Some(r) = result.vein_compression_ratio {
        s.set("vein-compression-ratio", r);
    }
    s
}

/// The `pddflow-tracking-lost` element message: the frame where the lowest vessel confidence
/// fell below `threshold`, and the ids of the vessels below it.
pub fn tracking_lost_message(
    result: &FlowResult,
    confidence: &[f32],
    threshold: f64,
    pts: Option<gst::ClockTime>,
) -> gst::Structure {
    let lost = confidence
        .iter()
        .enumerate()
        .filter(|&(_, &c)| f64::from(c) < threshold)
        .map(|(k, _)| k as u32 + 1);
    let mut s = gst::Structure::builder("pddflow-tracking-lost")
        .field("frame", result.frame)
        .field("reference-frame", result.reference_frame)
        .field("confidence", result.tracking_confidence.unwrap_or(0.0))
        .field("threshold", threshold)
        .field("vessel-ids", gst::Array::new(lost))
        .build();
    if let Some(pts) = pts {
        s.set("pts", pts);
    }
    s
}

/// The `pddflow-summary` element message posted at EOS: one `segment` per reference frame, and
/// at the top level the segment with the smallest vein ratio (else the last one).
pub fn summary_message(
    frames: u64,
    summary: &CompressionSummary,
    closure_threshold: f64,
) -> gst::Structure {
    let segment_fields = |s: &mut gst::StructureRef, segment: &Segment| {
        s.set("reference-frame", segment.reference_frame);
        if let Some(area) = segment.reference_vein_area {
            s.set("reference-vein-area", area);
        }
        if let Some((ratio, frame)) = segment.min_ratio {
            s.set("min-vein-compression-ratio", ratio);
            s.set("min-ratio-frame", frame);
        }
        if let Some(frame) = segment.contrast_closed_frame {
            s.set("contrast-closed-frame", frame);
        }
    };
    let segments = summary.segments.iter().map(|segment| {
        let mut s = gst::Structure::builder("segment")
            .field("frames", segment.frames)
            .field("vein-closed", segment.vein_closed(closure_threshold))
            .build();
        segment_fields(&mut s, segment);
        s
    });
    let mut s = gst::Structure::builder("pddflow-summary")
        .field("frames", frames)
        .field("vein-closed", summary.vein_closed)
        .field("closure-threshold", closure_threshold)
        .field("segments", gst::Array::new(segments))
        .field("segments-dropped", summary.segments_dropped)
        .build();
    if let Some(named) = &summary.named {
        segment_fields(&mut s, named);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::FlowField;

    fn names() -> Vec<String> {
        labels::DEFAULT_NAMES.map(String::from).to_vec()
    }

    fn context(pixel_spacing: f64) -> Context<'static> {
        Context {
            frame_size: (8, 4),
            mode: tracker::Mode::Chain,
            execution_provider: "cpu",
            pixel_spacing,
            tracking_threshold: 0.3,
            luma: None,
        }
    }

    /// An 8x4 frame with `vein` vein pixels and `artery` artery pixels.
    fn labels_with(vein: usize, artery: usize) -> LabelMap {
        let mut data = vec![labels::BACKGROUND; 32];
        data[..vein].fill(labels::VEIN);
        data[16..16 + artery].fill(labels::ARTERY);
        LabelMap::from_vec(8, 4, data).unwrap()
    }

    fn step(frame: u64, reference_frame: u64, labels: Option<LabelMap>) -> Step {
        Step {
            frame,
            reference_frame,
            flow: FlowField::constant(4, 2, -1.0, 0.0),
            labels,
            instances: None,
            confidence: Vec::new(),
        }
    }

    fn monitors() -> Monitors {
        Monitors {
            class_names: names(),
            ..Monitors::default()
        }
    }

    #[test]
    fn a_frame_reads_areas_and_the_vein_ratio_against_its_reference() {
        let mut monitors = monitors();
        let context = context(0.0);
        let reference = frame(step(0, 0, Some(labels_with(8, 4))), &context, &mut monitors);
        assert!(!reference.with_flow());
        assert_eq!(reference.result.areas, [20, 8, 4]);
        assert_eq!(reference.result.vein_compression_ratio, Some(1.0));
        let later = frame(step(1, 0, Some(labels_with(2, 4))), &context, &mut monitors);
        assert!(later.with_flow());
        let r = &later.result;
        assert_eq!(r.vein_compression_ratio, Some(0.25));
        assert_eq!((r.frame, r.reference_frame), (1, 0));
        assert_eq!(r.flow_scale, (2.0, 2.0));
        assert_eq!(r.mode, "chain");
        assert_eq!(r.execution_provider, "cpu");
        assert_eq!(r.pixel_spacing_mm, None, "spacing 0 is unknown");
        assert!(!r.skipped);
    }

    #[test]
    fn ids_the_model_does_not_name_are_named_and_counted() {
        let mut monitors = monitors();
        let mut labels = labels_with(1, 0);
        labels.data[31] = 4;
        let f = frame(step(0, 0, Some(labels)), &context(0.5), &mut monitors);
        assert_eq!(f.result.class_names[3..], ["class-3", "class-4"]);
        assert_eq!(f.result.areas, [30, 1, 0, 0, 1]);
        assert_eq!(monitors.class_names.len(), 5, "kept for later frames");
        assert_eq!(f.result.pixel_spacing_mm, Some(0.5));
        let without = frame(step(1, 0, None), &context(0.0), &mut monitors);
        assert!(without.result.areas.is_empty());
    }

    #[test]
    fn vessels_come_from_the_labels() {
        let mut f = frame(
            step(0, 0, Some(labels_with(8, 4))),
            &context(0.0),
            &mut monitors(),
        );
        f.find_vessels();
        let vessels: Vec<_> = f
            .result
            .vessels
            .iter()
            .map(|v| (v.label, v.area, v.bbox))
            .collect();
        assert_eq!(
            vessels,
            [
                (labels::VEIN, 8, (0, 0, 8, 1)),
                (labels::ARTERY, 4, (0, 2, 4, 1))
            ]
        );
    }

    #[test]
    fn tracking_lost_is_reported_once_with_the_vessels_below_the_threshold() {
        let mut monitors = monitors();
        let mut lost = step(1, 0, Some(labels_with(8, 4)));
        lost.confidence = vec![0.9, 0.1];
        let f = frame(lost.clone(), &context(0.0), &mut monitors);
        assert!(f.tracking_lost);
        assert_eq!(f.result.tracking_confidence, Some(f64::from(0.1f32)));
        assert!(!frame(lost, &context(0.0), &mut monitors).tracking_lost);
        gst::init().unwrap();
        let s = tracking_lost_message(&f.result, &f.confidence, 0.3, None);
        assert_eq!(s.name(), "pddflow-tracking-lost");
        let ids: Vec<u32> = s
            .get::<gst::Array>("vessel-ids")
            .unwrap()
            .iter()
            .map(|v| v.get().unwrap())
            .collect();
        assert_eq!(ids, [2]);
        assert_eq!(s.get::<f64>("threshold").unwrap(), 0.3);
        assert!(!s.has_field("pts"));
    }

    fn result(areas: Vec<u64>, ratio: Option<f64>, spacing: Option<f64>) -> FlowResult {
        FlowResult {
            frame: 30,
            reference_frame: 0,
            flow: FlowField::zeros(2, 2),
            flow_scale: (1.0, 1.0),
            labels: Some(LabelMap::new(2, 2)),
            class_names: names(),
            areas,
            mode: "keyframe".into(),
            execution_provider: "cpu".into(),
            vein_compression_ratio: ratio,
            pixel_spacing_mm: spacing,
            vessels: Vec::new(),
            tracking_confidence: None,
            skipped: false,
        }
    }

    fn texts(lines: Vec<LegendLine>) -> Vec<(u8, String)> {
        lines.into_iter().map(|l| (l.label, l.text)).collect()
    }

    #[test]
    fn the_legend_lists_present_classes_with_areas_and_the_vein_ratio() {
        let r = result(vec![10, 200, 50], Some(0.5), None);
        assert_eq!(
            texts(legend(&r)),
            [
                (labels::VEIN, "vein 200 px 50%".to_string()),
                (labels::ARTERY, "artery 50 px".to_string())
            ]
        );
        let r = result(vec![10, 200, 50], None, Some(0.1));
        assert_eq!(
            texts(legend(&r)),
            [
                (labels::VEIN, "vein 2.0 mm2".to_string()),
                (labels::ARTERY, "artery 0.5 mm2".to_string())
            ]
        );
        // A closed vein stays listed, an absent artery does not.
        let r = result(vec![10, 0, 0], Some(0.0), None);
        assert_eq!(
            texts(legend(&r)),
            [(labels::VEIN, "vein 0 px 0%".to_string())]
        );
    }

    #[test]
    fn the_compression_message_carries_areas_mm2_and_ratio() {
        gst::init().unwrap();
        let r = result(vec![10, 200, 50], Some(0.5), Some(0.1));
        assert!(posts_compression(&r, 30) && posts_compression(&r, 10));
        assert!(!posts_compression(&r, 0) && !posts_compression(&r, 7));
        let s = compression_message(&r, Some(gst::ClockTime::from_seconds(1)));
        assert_eq!(s.name(), "pddflow-compression");
        assert_eq!(s.get::<u64>("frame").unwrap(), 30);
        assert_eq!(s.get::<u64>("reference-frame").unwrap(), 0);
        assert_eq!(s.get::<u64>("vein-area").unwrap(), 200);
        assert_eq!(s.get::<u64>("artery-area").unwrap(), 50);
        assert!((s.get::<f64>("vein-area-mm2").unwrap() - 2.0).abs() < 1e-9);
        assert!((s.get::<f64>("artery-area-mm2").unwrap() - 0.5).abs() < 1e-9);
        assert_eq!(s.get::<f64>("vein-compression-ratio").unwrap(), 0.5);
        assert_eq!(
            s.get::<gst::ClockTime>("pts").unwrap(),
            gst::ClockTime::from_seconds(1)
        );
        let bare = compression_message(&result(vec![], None, None), None);
        for absent in ["pts", "vein-area-mm2", "vein-compression-ratio"] {
            assert!(!bare.has_field(absent), "{absent}");
        }
        assert_eq!(bare.get::<u64>("vein-area").unwrap(), 0);
    }

    #[test]
    fn rois_name_their_class_and_carry_the_vessel_parameters() {
        gst::init().unwrap();
        let mut r = result(vec![10, 200, 50], None, Some(0.5));
        let vessel = |id, label| Region {
            id,
            label,
            bbox: (1, 2, 3, 4),
            area: 8,
            mean_motion: (0.5, -1.0),
            confidence: (id == 1).then_some(0.75),
        };
        r.vessels = vec![vessel(1, labels::VEIN), vessel(2, 7)];
        let rois = rois(&r);
        assert_eq!(rois.len(), 2);
        assert_eq!(
            (rois[0].name.as_str(), rois[0].bbox),
            ("vein", (1, 2, 3, 4))
        );
        assert_eq!(rois[1].name, "class-7");
        let p = &rois[0].param;
        assert_eq!(p.name(), "pddflow/vessel");
        assert_eq!(p.get::<u32>("id").unwrap(), 1);
        assert_eq!(p.get::<u32>("label").unwrap(), 1);
        assert_eq!(p.get::<u64>("area").unwrap(), 8);
        assert_eq!(p.get::<f64>("mean-motion-y").unwrap(), -1.0);
        assert_eq!(p.get::<f64>("confidence").unwrap(), 0.75);
        assert_eq!(p.get::<f64>("area-mm2").unwrap(), 2.0);
        assert!(!rois[1].param.has_field("confidence"));
    }

    #[test]
    fn the_summary_names_the_most_compressed_segment() {
        gst::init().unwrap();
        let mut monitor = CompressionMonitor::default();
        monitor.anchor(0, 100);
        monitor.update(0, 100);
        monitor.update(1, 5);
        monitor.anchor(2, 0);
        monitor.update(2, 0);
        let s = summary_message(3, &monitor.summary(0.1), 0.1);
        assert_eq!(s.name(), "pddflow-summary");
        assert_eq!(s.get::<u64>("frames").unwrap(), 3);
        assert!(s.get::<bool>("vein-closed").unwrap());
        assert_eq!(s.get::<f64>("closure-threshold").unwrap(), 0.1);
        assert_eq!(s.get::<u64>("reference-frame").unwrap(), 0);
        assert_eq!(s.get::<u64>("reference-vein-area").unwrap(), 100);
        assert_eq!(s.get::<f64>("min-vein-compression-ratio").unwrap(), 0.05);
        assert_eq!(s.get::<u64>("min-ratio-frame").unwrap(), 1);
        assert_eq!(s.get::<u64>("segments-dropped").unwrap(), 0);
        let segments = s.get::<gst::Array>("segments").unwrap();
        let second = segments[1].get::<gst::Structure>().unwrap();
        assert_eq!(second.get::<u64>("reference-frame").unwrap(), 2);
        assert_eq!(second.get::<u64>("frames").unwrap(), 1);
        assert!(!second.get::<bool>("vein-closed").unwrap());
        assert!(!second.has_field("reference-vein-area"));
    }

    /// A 40x20 frame: a 6x6 vein at x 5..11 and a 6x6 artery at x 25..31 (rows 7..13) in the
    /// labels; in the luma, tissue at 120 and the vessels' lumens at 20 where `open`.
    fn two_vessels(vein_open: bool, artery_open: bool) -> (LabelMap, Vec<u8>) {
        let (w, h) = (40, 20);
        let mut labels = LabelMap::new(w, h);
        let mut luma = vec![120u8; w * h];
        for y in 7..13 {
            for x in 0..6 {
                labels.data[y * w + 5 + x] = labels::VEIN;
                labels.data[y * w + 25 + x] = labels::ARTERY;
                if vein_open {
                    luma[y * w + 5 + x] = 20;
                }
                if artery_open {
                    luma[y * w + 25 + x] = 20;
                }
            }
        }
        (labels, luma)
    }

    /// The summary's verdict after a reference with both lumens open and one later frame.
    fn verdict_after(vein_open: bool, artery_open: bool, with_luma: bool) -> (bool, Option<u64>) {
        let mut monitors = monitors();
        for (index, (vein, artery)) in [(true, true), (vein_open, artery_open)]
            .into_iter()
            .enumerate()
        {
            let (labels, luma) = two_vessels(vein, artery);
            let context = Context {
                frame_size: (40, 20),
                luma: with_luma.then_some(luma.as_slice()),
                ..context(0.0)
            };
            frame(step(index as u64, 0, Some(labels)), &context, &mut monitors);
        }
        let summary = monitors.compression.summary(0.1);
        (
            summary.vein_closed,
            summary.named.unwrap().contrast_closed_frame,
        )
    }

    #[test]
    fn a_vein_over_tissue_beside_an_open_artery_reads_closed() {
        // The masks keep their full area: only the image tells.
        assert_eq!(verdict_after(false, true, true), (true, Some(1)));
        assert_eq!(verdict_after(true, true, true), (false, None));
        // Both lumens gone: a lost track, not a closed vein.
        assert_eq!(verdict_after(false, false, true), (false, None));
        // Without the luma (lumen-evidence=false) the area alone decides.
        assert_eq!(verdict_after(false, true, false), (false, None));
    }

    #[test]
    fn the_summary_names_the_frame_the_image_showed_the_vein_shut() {
        gst::init().unwrap();
        let mut monitor = CompressionMonitor::default();
        monitor.anchor(0, 100);
        monitor.update(0, 100);
        monitor.update(1, 30);
        monitor.contrast_closed(1);
        let s = summary_message(2, &monitor.summary(0.1), 0.1);
        assert!(s.get::<bool>("vein-closed").unwrap());
        assert_eq!(s.get::<u64>("contrast-closed-frame").unwrap(), 1);
        let segments = s.get::<gst::Array>("segments").unwrap();
        let first = segments[0].get::<gst::Structure>().unwrap();
        assert!(first.get::<bool>("vein-closed").unwrap());
        assert_eq!(first.get::<u64>("contrast-closed-frame").unwrap(), 1);
    }
}
