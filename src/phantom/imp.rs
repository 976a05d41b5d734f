//! GObject glue of `usphantomsrc`: properties, caps, timestamps. The frames come from
//! [`super::Phantom`].

use std::sync::{Arc, Mutex};

use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;
use gst_base::prelude::*;
use gst_base::subclass::base_src::CreateSuccess;
use gst_base::subclass::prelude::*;
use gst_video::prelude::*;
use once_cell::sync::Lazy;

use super::params::{ranges, PhantomParams, Scene};
use super::simulator::{FrameTruth, Phantom, Workspace};
use crate::sync::lock;

static CAT: Lazy<gst::DebugCategory> = Lazy::new(|| {
    gst::DebugCategory::new(
        "usphantomsrc",
        gst::DebugColorFlags::empty(),
        Some("Synthetic ultrasound phantom source"),
    )
});

/// Size and rate chosen when downstream leaves them open.
const DEFAULT_WIDTH: i32 = 256;
const DEFAULT_HEIGHT: i32 = 256;
const DEFAULT_FPS: (i32, i32) = (30, 1);

#[derive(Clone, Debug, Default)]
struct Settings {
    params: PhantomParams,
    mask_every_frame: bool,
    is_live: bool,
}

#[derive(Default)]
struct State {
    info: Option<gst_video::VideoInfo>,
    phantom: Option<Arc<Phantom>>,
    workspace: Option<Workspace>,
    /// Parameters the phantom was built from; a change rebuilds it at the next frame.
    built_from: Option<PhantomParams>,
    /// Index of the next frame.
    frame: u64,
    /// The next frame carries the reference mask even when not every frame does.
    mask_pending: bool,
}

#[derive(Default)]
pub struct UsPhantomSrc {
    settings: Mutex<Settings>,
    state: Mutex<State>,
}

#[glib::object_subclass]
impl ObjectSubclass for UsPhantomSrc {
    const NAME: &'static str = "GstUsPhantomSrc";
    type Type = super::UsPhantomSrc;
    type ParentType = gst_base::PushSrc;
}

impl ObjectImpl for UsPhantomSrc {
    fn properties() -> &'static [glib::ParamSpec] {
        static PROPERTIES: Lazy<Vec<glib::ParamSpec>> = Lazy::new(|| {
            let d = PhantomParams::default();
            let double = |name: &str, nick: &str, blurb: &str, range: (f32, f32), default: f32| {
                glib::ParamSpecDouble::builder(name)
                    .nick(nick)
                    .blurb(blurb)
                    .minimum(range.0 as f64)
                    .maximum(range.1 as f64)
                    .default_value(default as f64)
                    .mutable_playing()
                    .build()
            };
            vec![
                glib::ParamSpecUInt64::builder("seed")
                    .nick("Seed")
                    .blurb("Seed of the anatomy, scatterers, motion and noise: the same seed gives the same frames")
                    .default_value(d.seed)
                    .mutable_playing()
                    .build(),
                double(
                    "frequency",
                    "Frequency",
                    "Probe centre frequency in MHz (speckle size, attenuation)",
                    ranges::FREQUENCY_MHZ,
                    d.frequency_mhz,
                ),
                double(
                    "depth",
                    "Depth",
                    "Imaging depth in mm, spanning the frame height (pixel spacing = depth / height)",
                    ranges::DEPTH_MM,
                    d.depth_mm,
                ),
                double(
                    "dynamic-range",
                    "Dynamic range",
                    "Displayed dynamic range of the log compression in dB",
                    ranges::DYNAMIC_RANGE_DB,
                    d.dynamic_range_db,
                ),
                double(
                    "gain",
                    "Gain",
                    "Overall receive gain in dB",
                    ranges::GAIN_DB,
                    d.gain_db,
                ),
                glib::ParamSpecUInt::builder("veins")
                    .nick("Veins")
                    .blurb("Number of veins; the first is the main deep vein (the one compressed, or thrombosed)")
                    .minimum(ranges::VESSELS.0)
                    .maximum(ranges::VESSELS.1)
                    .default_value(d.veins)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecUInt::builder("arteries")
                    .nick("Arteries")
                    .blurb("Number of arteries; the first runs beside the main vein")
                    .minimum(ranges::VESSELS.0)
                    .maximum(ranges::VESSELS.1)
                    .default_value(d.arteries)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecBoolean::builder("thrombosed")
                    .nick("Thrombosed")
                    .blurb("The main vein holds an echogenic thrombus and collapses only partly under compression")
                    .default_value(d.thrombosed)
                    .mutable_playing()
                    .build(),
                double(
                    "compression-depth",
                    "Compression depth",
                    "Probe displacement into the tissue at peak compression, in mm (a healthy vein closes at about 60 % of its diameter)",
                    ranges::COMPRESSION_DEPTH_MM,
                    d.compression_depth_mm,
                ),
                double(
                    "compression-period",
                    "Compression period",
                    "Duration of one compress-and-release cycle in seconds; peak at half the period; 0 disables compression",
                    ranges::COMPRESSION_PERIOD_S,
                    d.compression_period_s,
                ),
                double(
                    "heart-rate",
                    "Heart rate",
                    "Heart rate of the arterial pulsation in beats per minute; 0 disables it",
                    ranges::HEART_RATE_BPM,
                    d.heart_rate_bpm,
                ),
                double(
                    "motion-amplitude",
                    "Motion amplitude",
                    "Scale of probe sliding, rocking, out-of-plane drift and hand tremor (0 = fixed probe, 1 = steady hand)",
                    ranges::MOTION_AMPLITUDE,
                    d.motion_amplitude,
                ),
                glib::ParamSpecBoolean::builder("mask-every-frame")
                    .nick("Mask every frame")
                    .blurb("Attach the ground-truth label map (0 background, 1 vein, 2 artery) as reference-mask meta on every frame instead of the first only")
                    .default_value(false)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecBoolean::builder("is-live")
                    .nick("Is live")
                    .blurb("Produce frames in real time, synchronised to the clock, like a scanner")
                    .default_value(false)
                    .mutable_ready()
                    .build(),
            ]
        });
        PROPERTIES.as_ref()
    }

    fn set_property(&self, _id: usize, value: &glib::Value, pspec: &glib::ParamSpec) {
        let mut settings = lock(&self.settings);
        let p = &mut settings.params;
        let as_f32 = |v: &glib::Value| v.get::<f64>().unwrap_or_default() as f32;
        match pspec.name() {
            "seed" => p.seed = value.get().unwrap_or_default(),
            "frequency" => p.frequency_mhz = as_f32(value),
            "depth" => p.depth_mm = as_f32(value),
            "dynamic-range" => p.dynamic_range_db = as_f32(value),
            "gain" => p.gain_db = as_f32(value),
            "veins" => p.veins = value.get().unwrap_or_default(),
            "arteries" => p.arteries = value.get().unwrap_or_default(),
            "thrombosed" => p.thrombosed = value.get().unwrap_or_default(),
            "compression-depth" => p.compression_depth_mm = as_f32(value),
            "compression-period" => p.compression_period_s = as_f32(value),
            "heart-rate" => p.heart_rate_bpm = as_f32(value),
            "motion-amplitude" => p.motion_amplitude = as_f32(value),
            "mask-every-frame" => settings.mask_every_frame = value.get().unwrap_or_default(),
            "is-live" => {
                let live = value.get().unwrap_or_default();
                settings.is_live = live;
                drop(settings);
                self.obj().set_live(live);
                return;
            }
            other => gst::warning!(CAT, imp = self, "unknown property {other}"),
        }
        gst::debug!(CAT, imp = self, "{} set to {:?}", pspec.name(), value);
    }

    fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
        let settings = lock(&self.settings);
        let p = &settings.params;
        match pspec.name() {
            "seed" => p.seed.to_value(),
            "frequency" => (p.frequency_mhz as f64).to_value(),
            "depth" => (p.depth_mm as f64).to_value(),
            "dynamic-range" => (p.dynamic_range_db as f64).to_value(),
            "gain" => (p.gain_db as f64).to_value(),
            "veins" => p.veins.to_value(),
            "arteries" => p.arteries.to_value(),
            "thrombosed" => p.thrombosed.to_value(),
            "compression-depth" => (p.compression_depth_mm as f64).to_value(),
            "compression-period" => (p.compression_period_s as f64).to_value(),
            "heart-rate" => (p.heart_rate_bpm as f64).to_value(),
            "motion-amplitude" => (p.motion_amplitude as f64).to_value(),
            "mask-every-frame" => settings.mask_every_frame.to_value(),
            "is-live" => settings.is_live.to_value(),
            // Only the names above are installed.
            _ => pspec.default_value().clone(),
        }
    }

    fn constructed(&self) {
        self.parent_constructed();
        let obj = self.obj();
        obj.set_format(gst::Format::Time);
        obj.set_live(false);
    }
}

impl GstObjectImpl for UsPhantomSrc {}

impl ElementImpl for UsPhantomSrc {
    fn metadata() -> Option<&'static gst::subclass::ElementMetadata> {
        static METADATA: Lazy<gst::subclass::ElementMetadata> = Lazy::new(|| {
            gst::subclass::ElementMetadata::new(
                "Ultrasound phantom source",
                "Source/Video",
                "Physics-based synthetic B-mode ultrasound of a leg compression exam (veins, arteries, \
                 speckle, compression, pulsation, probe motion), with the ground-truth label map \
                 attached as reference-mask meta",
                "pddflow developers",
            )
        });
        Some(&*METADATA)
    }

    fn pad_templates() -> &'static [gst::PadTemplate] {
        static PAD_TEMPLATES: Lazy<Vec<gst::PadTemplate>> = Lazy::new(|| {
            let caps = gst_video::VideoCapsBuilder::new()
                .format(gst_video::VideoFormat::Gray8)
                .width_range(ranges::SIZE.0 as i32..=ranges::SIZE.1 as i32)
                .height_range(ranges::SIZE.0 as i32..=ranges::SIZE.1 as i32)
                .framerate_range(gst::Fraction::new(1, 10)..=gst::Fraction::new(1000, 1))
                .build();
            let src = gst::PadTemplate::new(
                "src",
                gst::PadDirection::Src,
                gst::PadPresence::Always,
                &caps,
            )
            .expect("static pad template is valid");
            vec![src]
        });
        PAD_TEMPLATES.as_ref()
    }
}

impl BaseSrcImpl for UsPhantomSrc {
    fn start(&self) -> Result<(), gst::ErrorMessage> {
        let params = lock(&self.settings).params.clone();
        params
            .validate()
            .map_err(|e| gst::error_msg!(gst::LibraryError::Settings, ["invalid settings: {e}"]))?;
        *lock(&self.state) = State::default();
        gst::debug!(CAT, imp = self, "started");
        Ok(())
    }

    fn stop(&self) -> Result<(), gst::ErrorMessage> {
        *lock(&self.state) = State::default();
        gst::debug!(CAT, imp = self, "stopped");
        Ok(())
    }

    fn fixate(&self, mut caps: gst::Caps) -> gst::Caps {
        caps.truncate();
        if let Some(s) = caps.make_mut().structure_mut(0) {
            s.fixate_field_nearest_int("width", DEFAULT_WIDTH);
            s.fixate_field_nearest_int("height", DEFAULT_HEIGHT);
            s.fixate_field_nearest_fraction(
                "framerate",
                gst::Fraction::new(DEFAULT_FPS.0, DEFAULT_FPS.1),
            );
        }
        self.parent_fixate(caps)
    }

    fn set_caps(&self, caps: &gst::Caps) -> Result<(), gst::LoggableError> {
        let info = gst_video::VideoInfo::from_caps(caps)
            .map_err(|_| gst::loggable_error!(CAT, "invalid caps {caps}"))?;
        if info.fps().numer() <= 0 {
            return Err(gst::loggable_error!(
                CAT,
                "a fixed, non-zero framerate is needed"
            ));
        }
        gst::debug!(CAT, imp = self, "caps {caps}");
        let mut state = lock(&self.state);
        state.info = Some(info);
        // Built at the next frame from the current settings.
        state.phantom = None;
        state.built_from = None;
        Ok(())
    }

    fn is_seekable(&self) -> bool {
        // Frames are a pure function of their index: any position can be rendered directly.
        true
    }

    fn do_seek(&self, segment: &mut gst::Segment) -> bool {
        let Some(segment) = segment.downcast_mut::<gst::ClockTime>() else {
            return false;
        };
        let mut state = lock(&self.state);
        let position = segment
            .position()
            .or(segment.start())
            .unwrap_or(gst::ClockTime::ZERO);
        if let Some(info) = &state.info {
            let fps = info.fps();
            // The frame whose timestamp is at or after the position.
            let frame = position.nseconds().mul_div_ceil(
                fps.numer() as u64,
                fps.denom() as u64 * gst::ClockTime::SECOND.nseconds(),
            );
            state.frame = frame.unwrap_or(0);
        } else {
            state.frame = 0;
        }
        // Downstream flushed: give it the mask again.
        state.mask_pending = true;
        true
    }

    fn query(&self, query: &mut gst::QueryRef) -> bool {
        if let gst::QueryViewMut::Latency(q) = query.view_mut() {
            let live = lock(&self.settings).is_live;
            let duration = lock(&self.state)
                .info
                .as_ref()
                .and_then(|info| frame_duration(info, 0));
            if let Some(duration) = duration {
                // A frame is ready one frame period after it was "acquired".
                let latency = if live { duration } else { gst::ClockTime::ZERO };
                q.set(live, latency, Some(latency));
                return true;
            }
        }
        BaseSrcImplExt::parent_query(self, query)
    }

    fn times(&self, buffer: &gst::BufferRef) -> (Option<gst::ClockTime>, Option<gst::ClockTime>) {
        if !self.obj().is_live() {
            return (None, None);
        }
        match (buffer.pts(), buffer.duration()) {
            (Some(pts), Some(duration)) => (Some(pts), Some(pts + duration)),
            (pts, _) => (pts, None),
        }
    }
}

/// Duration of frame `index` at the caps' rate, exact over long runs (no accumulated rounding).
fn frame_duration(info: &gst_video::VideoInfo, index: u64) -> Option<gst::ClockTime> {
    Some(frame_time(info, index + 1)? - frame_time(info, index)?)
}

fn frame_time(info: &gst_video::VideoInfo, index: u64) -> Option<gst::ClockTime> {
    let fps = info.fps();
    let ns = index.mul_div_floor(
        gst::ClockTime::SECOND.nseconds() * fps.denom() as u64,
        fps.numer() as u64,
    )?;
    Some(gst::ClockTime::from_nseconds(ns))
}

impl PushSrcImpl for UsPhantomSrc {
    fn create(
        &self,
        _buffer: Option<&mut gst::BufferRef>,
    ) -> Result<CreateSuccess, gst::FlowError> {
        let settings = lock(&self.settings).clone();
        let mut state = lock(&self.state);
        let Some(info) = state.info.clone() else {
            gst::element_imp_error!(self, gst::CoreError::Negotiation, ["no caps negotiated"]);
            return Err(gst::FlowError::NotNegotiated);
        };
        let wanted = PhantomParams {
            width: info.width() as usize,
            height: info.height() as usize,
            fps: info.fps().numer() as f64 / info.fps().denom() as f64,
            scene: Scene::Leg,
            ..settings.params.clone()
        };
        if state.built_from.as_ref() != Some(&wanted) {
            gst::debug!(CAT, imp = self, "building the phantom: {wanted:?}");
            let phantom = match Phantom::new(wanted.clone()) {
                Ok(p) => Arc::new(p),
                Err(e) => {
                    gst::element_imp_error!(
                        self,
                        gst::LibraryError::Settings,
                        ["invalid phantom settings: {e}"]
                    );
                    return Err(gst::FlowError::Error);
                }
            };
            state.workspace = Some(phantom.workspace());
            state.phantom = Some(phantom);
            state.built_from = Some(wanted);
            // New anatomy: downstream needs its mask.
            state.mask_pending = true;
        }
        let index = state.frame;
        let attach_mask = settings.mask_every_frame || state.mask_pending;
        let (Some(phantom), Some(workspace)) = (state.phantom.clone(), state.workspace.as_mut())
        else {
            gst::element_imp_error!(self, gst::CoreError::Failed, ["phantom missing"]);
            return Err(gst::FlowError::Error);
        };

        let mut buffer = gst::Buffer::with_size(info.size()).map_err(|_| {
            gst::element_imp_error!(
                self,
                gst::ResourceError::NoSpaceLeft,
                ["cannot allocate a frame"]
            );
            gst::FlowError::Error
        })?;
        let mut truth = attach_mask.then(|| FrameTruth::new(phantom.width(), phantom.height()));
        {
            let buffer = buffer.get_mut().ok_or(gst::FlowError::Error)?;
            let mut frame = gst_video::VideoFrameRef::from_buffer_ref_writable(buffer, &info)
                .map_err(|_| {
                    gst::element_imp_error!(self, gst::CoreError::Failed, ["cannot map the frame"]);
                    gst::FlowError::Error
                })?;
            let stride = frame.plane_stride()[0] as usize;
            let data = frame.plane_data_mut(0).map_err(|_| gst::FlowError::Error)?;
            phantom.render(index, workspace, data, stride, truth.as_mut());
        }
        let buffer_ref = buffer.get_mut().ok_or(gst::FlowError::Error)?;
        let pts = frame_time(&info, index);
        buffer_ref.set_pts(pts);
        buffer_ref.set_dts(pts);
        buffer_ref.set_duration(frame_duration(&info, index));
        buffer_ref.set_offset(index);
        buffer_ref.set_offset_end(index + 1);
        if index == 0 {
            buffer_ref.set_flags(gst::BufferFlags::DISCONT);
        }
        if let Some(truth) = truth {
            if let Err(e) = crate::meta::attach_reference_mask(buffer_ref, &truth.labels) {
                gst::element_imp_warning!(
                    self,
                    gst::CoreError::Failed,
                    ["cannot attach the reference mask: {e}"]
                );
            }
            state.mask_pending = false;
        }
        state.frame = index + 1;
        gst::trace!(CAT, imp = self, "frame {index} at {pts:?}");
        Ok(CreateSuccess::NewBuffer(buffer))
    }
}
