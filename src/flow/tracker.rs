//! Reference handling and mask propagation, independent of how features and flow are computed.
//!
//! Keyframe mode registers every frame to the cached reference features (the paper's video
//! mode). Chain mode registers each frame to the previous one, reusing the previous frame's
//! features as the next reference (no recomputation), and composes the steps into a flow to the
//! reference so that the reference mask is resampled once rather than blurred frame by frame.

use std::sync::{Arc, Mutex, PoisonError};

use super::{
    confidence::{vessel_confidence, warped_correlation, window_around, Window},
    instances::{clean_propagated, Instances},
    warp::{warp_labels_with, UniformTiles},
    FlowField, LabelMap,
};

/// How frames are registered.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Mode {
    /// Every frame against the cached reference frame.
    #[default]
    Keyframe,
    /// Frame to frame, composing the steps back to the reference.
    Chain,
    /// Chain mode whose composed flow is checked against a direct registration to the cached
    /// reference every [`HYBRID_CHECK_INTERVAL`] frames and replaced by it when the reference
    /// image warped with it matches the current frame at least as well around the vessels:
    /// chain's small steps between checks, no drift accumulated across them.
    Hybrid,
}

impl Mode {
    /// Every mode, in the order of [`Mode::name`]'s names.
    pub const ALL: [Mode; 3] = [Mode::Keyframe, Mode::Chain, Mode::Hybrid];

    /// The mode's name: the element's `mode` nick, the metadata's `mode` field, the tools'
    /// `--mode`.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Keyframe => "keyframe",
            Mode::Chain => "chain",
            Mode::Hybrid => "hybrid",
        }
    }
}

impl std::str::FromStr for Mode {
    type Err = String;

    fn from_str(name: &str) -> Result<Self, String> {
        Mode::ALL
            .into_iter()
            .find(|mode| mode.name() == name)
            .ok_or_else(|| format!("{name}: use keyframe, chain or hybrid"))
    }
}

/// Frames between two direct registrations in [`Mode::Hybrid`]: one extra flow-head run per
/// this many frames.
pub const HYBRID_CHECK_INTERVAL: u64 = 8;

/// Computes features of one model-sized image and flow between two feature sets.
pub trait FlowBackend {
    type Features: Clone;
    type Error;
    fn features(&mut self, image: &[f32]) -> Result<Self::Features, Self::Error>;
    /// Backward flow from `current` to `reference`, at model resolution.
    fn flow(
        &mut self,
        reference: &Self::Features,
        current: &Self::Features,
    ) -> Result<FlowField, Self::Error>;
    /// Model input size (width, height).
    fn input_size(&self) -> (usize, usize);
}

/// What is warped from a reference: its vessels as instances when the mask has at most 255 of
/// them, else its classes as they are.
enum Propagated {
    Instances(Instances),
    Classes(LabelMap),
}

impl Propagated {
    fn new(classes: LabelMap) -> Self {
        match Instances::from_classes(&classes) {
            Some(instances) => Propagated::Instances(instances),
            None => Propagated::Classes(classes),
        }
    }

    /// The map the warp resamples.
    fn map(&self) -> &LabelMap {
        match self {
            Propagated::Instances(i) => &i.map,
            Propagated::Classes(c) => c,
        }
    }
}

/// What warping a mask from a reference needs, shared with the frames registered to it so
/// that their masks can be warped after the next frame has re-anchored.
struct ReferenceMask {
    /// The model-sized image, for the tracking confidence.
    image: Vec<f32>,
    /// The mask and its uniform tiles, which every warp of this reference reuses.
    mask: Option<(Propagated, UniformTiles)>,
}

struct Reference<F> {
    features: F,
    /// Where to compare warped images in hybrid mode: around the reference's vessels on the
    /// model grid (the whole grid without a mask).
    check_window: Window,
    shared: Arc<ReferenceMask>,
    frame: u64,
}

/// A frame registered to its reference: everything the model decides. Its mask is warped by
/// [`Registration::propagate`], which needs nothing of the tracker, so the element can warp
/// one frame's mask while the next frame is registered.
pub struct Registration(Registered);

enum Registered {
    /// A reference frame: its step is known.
    Anchored(Step),
    Flow {
        frame: u64,
        reference_frame: u64,
        flow: ChainFlow,
        /// This frame's model-sized image, for the tracking confidence.
        image: Vec<f32>,
        reference: Arc<ReferenceMask>,
    },
}

/// What a frame's processing produced.
#[derive(Clone, Debug)]
pub struct Step {
    pub frame: u64,
    pub reference_frame: u64,
    /// Backward flow from this frame to the reference, at model resolution.
    pub flow: FlowField,
    /// Reference mask propagated onto this frame (frame resolution), as classes.
    pub labels: Option<LabelMap>,
    /// The same as vessel instances: an instance map (0 background, `k` the reference's k-th
    /// vessel, ids stable until the next anchor) and the class of each id (index `k - 1`).
    /// `None` without labels, or when the reference has more than 255 vessels.
    pub instances: Option<(LabelMap, Vec<u8>)>,
    /// Tracking confidence of each instance in [0, 1] (index `k - 1`; see
    /// [`super::confidence`]); 1 on the reference frame, empty without instances.
    pub confidence: Vec<f32>,
}

/// Why the next frame becomes the reference.
#[derive(Clone, Debug)]
pub enum Anchor {
    /// Keep the current reference.
    Keep,
    /// Re-anchor on this frame, carrying the current propagated mask (if any) over, with its
    /// vessels' ids.
    Carry,
    /// Re-anchor on this frame with this mask (frame resolution).
    Mask(LabelMap),
}

/// A frame's flow to its reference in chain mode, composed when first asked for rather than
/// when the frame is registered: the element composes frame t's flow while the model runs on
/// frame t+1, off the streaming thread.
#[derive(Clone)]
struct ChainFlow(Arc<Mutex<Composition>>);

enum Composition {
    Composed(Arc<FlowField>),
    /// `step` (this frame to the previous one) still to be composed onto the previous frame's
    /// flow to the reference.
    Pending {
        step: FlowField,
        onto: ChainFlow,
    },
}

impl ChainFlow {
    fn composed(flow: FlowField) -> Self {
        Self(Arc::new(Mutex::new(Composition::Composed(Arc::new(flow)))))
    }

    fn pending(step: FlowField, onto: ChainFlow) -> Self {
        Self(Arc::new(Mutex::new(Composition::Pending { step, onto })))
    }

    /// The flow to the reference, composed now if it was not yet. The older frames' locks are
    /// taken after this one's, always in that order, so two threads resolving overlapping
    /// chains wait for each other rather than deadlock; a resolved flow drops its link to the
    /// older one, so pending chains stay as short as the frames not yet propagated.
    fn resolve(&self) -> Arc<FlowField> {
        let mut composition = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let flow = match &*composition {
            Composition::Composed(flow) => return Arc::clone(flow),
            Composition::Pending { step, onto } => Arc::new(step.compose(&onto.resolve())),
        };
        *composition = Composition::Composed(Arc::clone(&flow));
        flow
    }

    /// The composed flow, without a copy when no later frame shares it (keyframe mode).
    fn into_flow(self) -> FlowField {
        match Arc::try_unwrap(self.0) {
            Ok(alone) => match alone.into_inner().unwrap_or_else(PoisonError::into_inner) {
                Composition::Composed(flow) => Arc::unwrap_or_clone(flow),
                Composition::Pending { step, onto } => step.compose(&onto.resolve()),
            },
            // The next frame's composition may still read the shared one.
            Err(shared) => FlowField::clone(&ChainFlow(shared).resolve()),
        }
    }
}

pub struct Tracker<F> {
    mode: Mode,
    reference: Option<Reference<F>>,
    /// Chain mode: previous frame's features and the flow from it to the reference.
    previous: Option<(F, ChainFlow)>,
    last_labels: Option<LabelMap>,
    /// The last propagated instances, which a [`Anchor::Carry`] keeps.
    last_instances: Option<(LabelMap, Vec<u8>)>,
    next_frame: u64,
    /// Hybrid mode: the frame of the last direct registration (or the reference's).
    last_check: u64,
}

impl<F: Clone> Tracker<F> {
    pub fn new(mode: Mode) -> Self {
        Self {
            mode,
            reference: None,
            previous: None,
            last_labels: None,
            last_instances: None,
            next_frame: 0,
            last_check: 0,
        }
    }

    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// Changes the mode; the reference stays.
    pub fn set_mode(&mut self, mode: Mode) {
        self.mode = mode;
        self.previous = None;
    }

    /// The last propagated mask, if any.
    pub fn last_labels(&self) -> Option<&LabelMap> {
        self.last_labels.as_ref()
    }

    /// Forgets everything (new stream): the next frame becomes the reference.
    pub fn reset(&mut self) {
        self.reference = None;
        self.previous = None;
        self.last_labels = None;
        self.last_instances = None;
    }

    /// A break in temporal continuity (flush, seek): chain mode restarts from the reference.
    pub fn discontinuity(&mut self) {
        self.previous = None;
    }

    /// Skips a frame (a late one in a live pipeline) and returns its index: later frames keep
    /// their positions in the stream, and the next processed frame registers against the last
    /// processed one (chain) or the reference, as if this one had not come.
    pub fn skip(&mut self) -> u64 {
        let frame = self.next_frame;
        self.next_frame += 1;
        frame
    }

    /// Processes one frame: `image` is the model-sized luma in [0, 1].
    pub fn process<B: FlowBackend<Features = F>>(
        &mut self,
        backend: &mut B,
        image: &[f32],
        anchor: Anchor,
    ) -> Result<Step, B::Error> {
        let step = self.register(backend, image, anchor)?.propagate();
        self.record(step.labels.clone(), step.instances.clone());
        Ok(step)
    }

    /// Keeps what a later [`Anchor::Carry`] (and [`Tracker::last_labels`]) takes from the last
    /// propagated step: its `labels` and `instances`. [`Tracker::process`] does it; a caller
    /// that registers and propagates apart calls it with each step, in frame order, before
    /// registering a frame with [`Anchor::Carry`].
    pub fn record(&mut self, labels: Option<LabelMap>, instances: Option<(LabelMap, Vec<u8>)>) {
        self.last_labels = labels;
        self.last_instances = instances;
    }

    /// The model's part of [`Tracker::process`]: features, flow and the reference's bookkeeping.
    pub fn register<B: FlowBackend<Features = F>>(
        &mut self,
        backend: &mut B,
        image: &[f32],
        anchor: Anchor,
    ) -> Result<Registration, B::Error> {
        let frame = self.next_frame;
        self.next_frame += 1;
        // The only feature computation of this frame; it serves as reference, current and
        // (in chain mode) the next frame's previous.
        let features = backend.features(image)?;
        let (mw, mh) = backend.input_size();
        let new_mask = match anchor {
            Anchor::Keep if self.reference.is_some() => None,
            Anchor::Keep => Some(None),
            Anchor::Carry => Some(match (&self.last_instances, &self.last_labels) {
                // The carried vessels keep their ids.
                (Some((map, classes)), _) => Some(Propagated::Instances(Instances {
                    reference_areas: areas_of(map, classes.len()),
                    map: map.clone(),
                    classes: classes.clone(),
                })),
                (None, labels) => labels.clone().map(Propagated::new),
            }),
            Anchor::Mask(mask) => Some(Some(Propagated::new(mask))),
        };
        if let Some(mask) = new_mask {
            self.previous = Some((
                features.clone(),
                ChainFlow::composed(FlowField::zeros(mw, mh)),
            ));
            let (labels, instances) = match &mask {
                Some(Propagated::Instances(i)) => (
                    Some(i.to_classes(&i.map)),
                    Some((i.map.clone(), i.classes.clone())),
                ),
                Some(Propagated::Classes(c)) => (Some(c.clone()), None),
                None => (None, None),
            };
            let confidence = instances
                .as_ref()
                .map(|(_, classes)| vec![1.0; classes.len()])
                .unwrap_or_default();
            let check_window = labels
                .as_ref()
                .and_then(|l| {
                    vessels_box(l).map(|b| window_around(b, (l.width, l.height), (mw, mh)))
                })
                .unwrap_or((0, 0, mw.saturating_sub(1), mh.saturating_sub(1)));
            self.reference = Some(Reference {
                features,
                check_window,
                shared: Arc::new(ReferenceMask {
                    image: image.to_vec(),
                    mask: mask.map(|m| {
                        let tiles = UniformTiles::new(m.map());
                        (m, tiles)
                    }),
                }),
                frame,
            });
            self.last_check = frame;
            return Ok(Registration(Registered::Anchored(Step {
                frame,
                reference_frame: frame,
                flow: FlowField::zeros(mw, mh),
                labels,
                instances,
                confidence,
            })));
        }
        let reference = self.reference.as_ref().expect("reference set above");
        let flow = match (self.mode, self.previous.take()) {
            (Mode::Chain | Mode::Hybrid, Some((previous, previous_to_reference))) => {
                let chained =
                    ChainFlow::pending(backend.flow(&previous, &features)?, previous_to_reference);
                // Counted from the last check, not as multiples of the interval: skipped
                // frames must not postpone the check.
                if self.mode == Mode::Hybrid && frame - self.last_check >= HYBRID_CHECK_INTERVAL {
                    self.last_check = frame;
                    let direct = backend.flow(&reference.features, &features)?;
                    let score = |f: &FlowField| {
                        warped_correlation(
                            &reference.shared.image,
                            image,
                            f,
                            reference.check_window,
                        )
                        .unwrap_or(f32::MIN)
                    };
                    // The one composition the model thread waits for: once per interval.
                    if score(&direct) >= score(&chained.resolve()) {
                        ChainFlow::composed(direct)
                    } else {
                        chained
                    }
                } else {
                    chained
                }
            }
            // Keyframe mode, or chain mode after a discontinuity.
            _ => ChainFlow::composed(backend.flow(&reference.features, &features)?),
        };
        if self.mode != Mode::Keyframe {
            self.previous = Some((features, flow.clone()));
        }
        Ok(Registration(Registered::Flow {
            frame,
            reference_frame: reference.frame,
            flow,
            image: image.to_vec(),
            reference: Arc::clone(&reference.shared),
        }))
    }
}

impl Registration {
    /// The frame's index in the stream.
    pub fn frame(&self) -> u64 {
        match &self.0 {
            Registered::Anchored(step) => step.frame,
            Registered::Flow { frame, .. } => *frame,
        }
    }

    /// The frame's step: the reference's mask warped onto it, cleaned, with each vessel's
    /// tracking confidence.
    pub fn propagate(self) -> Step {
        let (frame, reference_frame, flow, image, reference) = match self.0 {
            Registered::Anchored(step) => return step,
            Registered::Flow {
                frame,
                reference_frame,
                flow,
                image,
                reference,
            } => (frame, reference_frame, flow, image, reference),
        };
        let flow = flow.into_flow();
        let mut confidence = Vec::new();
        let (labels, instances) = match &reference.mask {
            Some((Propagated::Instances(i), tiles)) => {
                let mut map = warp_labels_with(&i.map, tiles, &flow);
                let cleaning = clean_propagated(&mut map, Some(&flow), i.len());
                confidence = cleaning
                    .iter()
                    .map(|c| {
                        if c.kept == 0 {
                            return 0.0;
                        }
                        let window = window_around(
                            c.bbox,
                            (map.width, map.height),
                            (flow.width, flow.height),
                        );
                        let correlation =
                            warped_correlation(&reference.image, &image, &flow, window);
                        vessel_confidence(correlation, c.kept_fraction())
                    })
                    .collect();
                (Some(i.to_classes(&map)), Some((map, i.classes.clone())))
            }
            Some((Propagated::Classes(c), tiles)) => {
                (Some(warp_labels_with(c, tiles, &flow)), None)
            }
            None => (None, None),
        };
        Step {
            frame,
            reference_frame,
            flow,
            labels,
            instances,
            confidence,
        }
    }
}

/// The bounding box (x, y, width, height) of a label map's non-zero pixels.
fn vessels_box(labels: &LabelMap) -> Option<(u32, u32, u32, u32)> {
    let (mut x0, mut y0, mut x1, mut y1) = (usize::MAX, usize::MAX, 0, 0);
    for (i, _) in labels.data.iter().enumerate().filter(|(_, &l)| l != 0) {
        let (x, y) = (i % labels.width, i / labels.width);
        (x0, y0, x1, y1) = (x0.min(x), y0.min(y), x1.max(x), y1.max(y));
    }
    (x0 != usize::MAX).then(|| {
        (
            x0 as u32,
            y0 as u32,
            (x1 - x0 + 1) as u32,
            (y1 - y0 + 1) as u32,
        )
    })
}

/// Pixel count of each instance id `1..=count` of an instance map.
fn areas_of(map: &LabelMap, count: usize) -> Vec<u64> {
    let mut areas = vec![0u64; count + 1];
    for &id in &map.data {
        if let Some(a) = areas.get_mut(id as usize) {
            *a += 1;
        }
    }
    areas.split_off(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Features are the frame index; flow is a constant shift per registered pair.
    struct Counting {
        feature_runs: usize,
        flow_pairs: Vec<(u32, u32)>,
        shift: f32,
    }

    impl FlowBackend for Counting {
        type Features = u32;
        type Error = ();
        fn features(&mut self, image: &[f32]) -> Result<u32, ()> {
            self.feature_runs += 1;
            Ok(image[0] as u32)
        }
        fn flow(&mut self, r: &u32, c: &u32) -> Result<FlowField, ()> {
            self.flow_pairs.push((*r, *c));
            Ok(FlowField::constant(8, 8, self.shift, 0.0))
        }
        fn input_size(&self) -> (usize, usize) {
            (8, 8)
        }
    }

    fn run(mode: Mode, frames: u32) -> (Counting, Vec<Step>) {
        run_skipping(mode, frames, &[])
    }

    #[test]
    fn keyframe_registers_every_frame_to_the_reference() {
        let (b, steps) = run(Mode::Keyframe, 4);
        assert_eq!(b.feature_runs, 4);
        assert_eq!(b.flow_pairs, vec![(0, 1), (0, 2), (0, 3)]);
        assert!(steps.iter().all(|s| s.reference_frame == 0));
        // -1 model pixel = -2 frame pixels: the labelled pixel moved 2 right in every frame.
        let l = steps[3].labels.as_ref().unwrap();
        assert_eq!(l.data[8 * 16 + 6], 1);
    }

    #[test]
    fn chain_reuses_previous_features_and_composes() {
        let (b, steps) = run(Mode::Chain, 4);
        assert_eq!(b.feature_runs, 4, "one feature run per frame");
        assert_eq!(b.flow_pairs, vec![(0, 1), (1, 2), (2, 3)]);
        assert!((steps[3].flow.dx[0] + 3.0).abs() < 1e-6);
        let l = steps[3].labels.as_ref().unwrap();
        assert_eq!(l.data[8 * 16 + 10], 1);
    }

    #[test]
    fn hybrid_checks_the_chain_against_the_reference_every_interval() {
        let n = HYBRID_CHECK_INTERVAL as u32 * 2 + 1;
        let (b, steps) = run(Mode::Hybrid, n);
        let direct: Vec<_> = b
            .flow_pairs
            .iter()
            .filter(|p| p.0 == 0 && p.1 > 1)
            .collect();
        let interval = HYBRID_CHECK_INTERVAL as u32;
        assert_eq!(direct, vec![&(0, interval), &(0, 2 * interval)]);
        assert_eq!(
            b.flow_pairs.len() as u32,
            n - 1 + 2,
            "one extra flow per interval"
        );
        // The images carry no texture, so the direct flow wins the tie and replaces the chain:
        // the constant shift is -1 whatever the frame, not the composed -interval.
        let at_check = &steps[interval as usize].flow;
        assert!((at_check.dx[0] + 1.0).abs() < 1e-6, "{}", at_check.dx[0]);
        let after = &steps[interval as usize + 1].flow;
        assert!(
            (after.dx[0] + 2.0).abs() < 1e-6,
            "the chain goes on from the direct flow"
        );
    }

    /// Processes `frames` frames, the first anchored on a one-pixel mask, skipping those in
    /// `skipped` (the element's late frames).
    fn run_skipping(mode: Mode, frames: u32, skipped: &[u32]) -> (Counting, Vec<Step>) {
        let mut backend = Counting {
            feature_runs: 0,
            flow_pairs: vec![],
            shift: -1.0,
        };
        let mut tracker = Tracker::new(mode);
        let mut mask = LabelMap::new(16, 16);
        mask.data[8 * 16 + 4] = 1;
        let mut steps = vec![];
        for i in 0..frames {
            if skipped.contains(&i) {
                assert_eq!(tracker.skip(), i as u64, "a skipped frame keeps its index");
                continue;
            }
            let anchor = if i == 0 {
                Anchor::Mask(mask.clone())
            } else {
                Anchor::Keep
            };
            steps.push(tracker.process(&mut backend, &[i as f32], anchor).unwrap());
        }
        (backend, steps)
    }

    #[test]
    fn skipped_frames_keep_indices_and_chain_from_the_last_processed_frame() {
        let (b, steps) = run_skipping(Mode::Chain, 6, &[2, 3]);
        assert_eq!(b.feature_runs, 4, "no work for a skipped frame");
        assert_eq!(b.flow_pairs, vec![(0, 1), (1, 4), (4, 5)]);
        let frames: Vec<u64> = steps.iter().map(|s| s.frame).collect();
        assert_eq!(frames, vec![0, 1, 4, 5]);
        // three registered steps of -1 each, composed
        assert!((steps[3].flow.dx[0] + 3.0).abs() < 1e-6);
    }

    #[test]
    fn hybrid_checks_even_when_the_interval_frame_was_skipped() {
        let interval = HYBRID_CHECK_INTERVAL as u32;
        let (b, _) = run_skipping(Mode::Hybrid, interval + 3, &[interval]);
        let direct: Vec<_> = b
            .flow_pairs
            .iter()
            .filter(|p| p.0 == 0 && p.1 > 1)
            .collect();
        assert_eq!(direct, vec![&(0, interval + 1)]);
    }

    #[test]
    fn carry_reanchors_with_the_propagated_mask() {
        let mut b = Counting {
            feature_runs: 0,
            flow_pairs: vec![],
            shift: 0.0,
        };
        let mut t = Tracker::new(Mode::Keyframe);
        t.process(
            &mut b,
            &[0.0],
            Anchor::Mask(LabelMap::from_vec(1, 1, vec![2]).unwrap()),
        )
        .unwrap();
        t.process(&mut b, &[1.0], Anchor::Keep).unwrap();
        let s = t.process(&mut b, &[2.0], Anchor::Carry).unwrap();
        assert_eq!(s.reference_frame, 2);
        assert_eq!(s.labels.unwrap().data, vec![2]);
        t.process(&mut b, &[3.0], Anchor::Keep).unwrap();
        assert_eq!(b.flow_pairs.last(), Some(&(2, 3)));
    }

    #[test]
    fn vessels_are_instances_with_ids_that_survive_a_carry() {
        let mut b = Counting {
            feature_runs: 0,
            flow_pairs: vec![],
            shift: 0.0,
        };
        let mut t = Tracker::new(Mode::Chain);
        // Two arteries and a vein: three instances, numbered in scan order.
        let mask =
            LabelMap::from_vec(8, 2, vec![2, 2, 0, 1, 1, 0, 0, 2, 2, 2, 0, 1, 1, 0, 0, 2]).unwrap();
        let first = t
            .process(&mut b, &[0.0], Anchor::Mask(mask.clone()))
            .unwrap();
        let (map, classes) = first.instances.clone().unwrap();
        assert_eq!(classes, vec![2, 1, 2]);
        assert_eq!(map.data[..8], [1, 1, 0, 2, 2, 0, 0, 3]);
        assert_eq!(first.confidence, vec![1.0; 3]);
        let next = t.process(&mut b, &[1.0], Anchor::Keep).unwrap();
        assert_eq!(next.labels.as_ref(), Some(&mask));
        assert_eq!(next.instances.as_ref().map(|i| &i.0), Some(&map));
        assert_eq!(next.confidence.len(), 3);
        let carried = t.process(&mut b, &[2.0], Anchor::Carry).unwrap();
        assert_eq!(carried.instances, Some((map, classes)));
    }

    /// The element's pipeline: frame t is registered before frame t-1's mask is propagated,
    /// across a re-anchor with a new mask; the steps are those of processing one at a time.
    #[test]
    fn registering_ahead_of_propagating_gives_the_same_steps() {
        let mut first = LabelMap::new(16, 16);
        first.data[8 * 16 + 4] = 1;
        first.data[2 * 16 + 2] = 2;
        let mut second = LabelMap::new(16, 16);
        second.data[4 * 16 + 9] = 2;
        let anchor = |i: u32| match i {
            0 => Anchor::Mask(first.clone()),
            5 => Anchor::Mask(second.clone()),
            _ => Anchor::Keep,
        };
        let backend = || Counting {
            feature_runs: 0,
            flow_pairs: vec![],
            shift: -1.0,
        };
        for mode in Mode::ALL {
            let (mut b, mut t) = (backend(), Tracker::new(mode));
            let one_at_a_time: Vec<Step> = (0..12)
                .map(|i| t.process(&mut b, &[i as f32], anchor(i)).unwrap())
                .collect();
            let (mut b, mut t) = (backend(), Tracker::new(mode));
            let mut pipelined = Vec::new();
            let mut held: Option<Registration> = None;
            for i in 0..12 {
                let registered = t.register(&mut b, &[i as f32], anchor(i)).unwrap();
                if let Some(previous) = held.replace(registered) {
                    let step = previous.propagate();
                    t.record(step.labels.clone(), step.instances.clone());
                    pipelined.push(step);
                }
            }
            pipelined.push(held.unwrap().propagate());
            assert_eq!(pipelined.len(), one_at_a_time.len());
            for (p, o) in pipelined.iter().zip(&one_at_a_time) {
                assert_eq!((p.frame, p.reference_frame), (o.frame, o.reference_frame));
                assert_eq!(p.labels, o.labels, "{mode:?} frame {}", o.frame);
                assert_eq!(p.instances, o.instances);
                assert_eq!(p.confidence, o.confidence);
                assert_eq!(p.flow.dx, o.flow.dx);
            }
            // frame 4, propagated after frame 5 re-anchored, still carries the first mask
            assert!(pipelined[4].labels.as_ref().unwrap().data.contains(&1));
            assert!(!pipelined[6].labels.as_ref().unwrap().data.contains(&1));
        }
    }

    /// Chain composition waits for propagation (the element composes beside the next frame's
    /// model): every frame registered before any is propagated, then propagated last to first,
    /// gives the steps of processing one at a time.
    #[test]
    fn chain_flows_compose_when_propagated_in_any_order() {
        let mut mask = LabelMap::new(16, 16);
        mask.data[8 * 16 + 4] = 1;
        let anchor = |i: u32| {
            if i == 0 {
                Anchor::Mask(mask.clone())
            } else {
                Anchor::Keep
            }
        };
        let backend = || Counting {
            feature_runs: 0,
            flow_pairs: vec![],
            shift: -1.0,
        };
        let frames = HYBRID_CHECK_INTERVAL as u32 * 2 + 2;
        for mode in [Mode::Chain, Mode::Hybrid] {
            let (mut b, mut t) = (backend(), Tracker::new(mode));
            let one_at_a_time: Vec<Step> = (0..frames)
                .map(|i| t.process(&mut b, &[i as f32], anchor(i)).unwrap())
                .collect();
            let (mut b, mut t) = (backend(), Tracker::new(mode));
            let registered: Vec<Registration> = (0..frames)
                .map(|i| t.register(&mut b, &[i as f32], anchor(i)).unwrap())
                .collect();
            let pending = |r: &Registration| match &r.0 {
                Registered::Flow { flow, .. } => {
                    matches!(&*flow.0.lock().unwrap(), Composition::Pending { .. })
                }
                Registered::Anchored(_) => false,
            };
            assert!(
                registered[2..].iter().any(pending),
                "{mode:?}: registering composed the chain"
            );
            let mut steps: Vec<Step> = registered
                .into_iter()
                .rev()
                .map(|r| r.propagate())
                .collect();
            steps.reverse();
            for (p, o) in steps.iter().zip(&one_at_a_time) {
                assert_eq!(p.flow.dx, o.flow.dx, "{mode:?} frame {}", o.frame);
                assert_eq!(p.labels, o.labels, "{mode:?} frame {}", o.frame);
            }
        }
    }

    #[test]
    fn discontinuity_in_chain_mode_registers_to_reference() {
        let mut b = Counting {
            feature_runs: 0,
            flow_pairs: vec![],
            shift: 0.0,
        };
        let mut t = Tracker::new(Mode::Chain);
        for i in 0..3 {
            t.process(&mut b, &[i as f32], Anchor::Keep).unwrap();
        }
        t.discontinuity();
        t.process(&mut b, &[3.0], Anchor::Keep).unwrap();
        assert_eq!(b.flow_pairs, vec![(0, 1), (1, 2), (0, 3)]);
    }
}
