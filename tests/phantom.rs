//! The phantom simulator and `usphantomsrc`: reproducibility, ground truth consistency,
//! speckle physics, contrast, compression and pulsation, caps, timestamps and metadata.

use gst::prelude::*;
use gst_base::prelude::*;
use gstpddflow::flow::labels::{ARTERY as LABEL_ARTERY, VEIN as LABEL_VEIN};
use gstpddflow::flow::metrics::score_class;
use gstpddflow::flow::warp::warp_labels;
use gstpddflow::phantom::anatomy::VesselKind;
use gstpddflow::phantom::{Phantom, PhantomParams, Scene};

fn small(seed: u64) -> PhantomParams {
    PhantomParams {
        width: 128,
        height: 128,
        seed,
        ..Default::default()
    }
}

fn area(labels: &gstpddflow::flow::LabelMap, label: u8) -> usize {
    labels.data.iter().filter(|&&l| l == label).count()
}

#[test]
fn same_seed_same_frames_other_seed_other_frames() {
    let a = Phantom::new(small(7)).unwrap();
    let b = Phantom::new(small(7)).unwrap();
    let c = Phantom::new(small(8)).unwrap();
    let (mut wa, mut wb, mut wc) = (a.workspace(), b.workspace(), c.workspace());
    // Out of order on purpose: frames are a pure function of their index.
    for index in [12, 0, 3] {
        let fa = a.frame(index, &mut wa);
        assert_eq!(fa, b.frame(index, &mut wb), "frame {index}");
        assert_ne!(fa.image, c.frame(index, &mut wc).image, "frame {index}");
    }
}

/// Dice of frame 0's label map warped by frame `index`'s ground-truth flow against frame
/// `index`'s label map, per class, with the class's area in frame `index` and frame 0.
fn warp_scores(phantom: &Phantom, indices: &[u64]) -> Vec<(u64, u8, usize, usize, f64)> {
    let mut ws = phantom.workspace();
    let reference = phantom.frame(0, &mut ws).truth.labels;
    let mut scores = Vec::new();
    for &index in indices {
        let truth = phantom.frame(index, &mut ws).truth;
        let warped = warp_labels(&reference, &truth.flow);
        for label in [LABEL_VEIN, LABEL_ARTERY] {
            if let Some(score) = score_class(&truth.labels, &warped, label) {
                let (now, rest) = (area(&truth.labels, label), area(&reference, label));
                scores.push((index, label, now, rest, score.dice));
            }
        }
    }
    scores
}

#[test]
fn warping_frame_zero_labels_with_the_flow_gives_frame_t_labels() {
    // Probe motion, tremor and pulsation, no compression: every class keeps its size.
    for seed in [1, 2, 3] {
        let phantom = Phantom::new(PhantomParams {
            veins: 2,
            arteries: 2,
            compression_depth_mm: 0.0,
            motion_amplitude: 1.5,
            ..small(seed)
        })
        .unwrap();
        let mut checked = [0; 3];
        for (index, label, now, _, dice) in warp_scores(&phantom, &[8, 20, 33, 60]) {
            // The bilinear soft warp trims a fraction of a pixel off every boundary, which
            // only matters for objects a few pixels across.
            if now >= 150 {
                assert!(
                    dice >= 0.98,
                    "seed {seed} frame {index} label {label}: dice {dice}"
                );
                checked[label as usize] += 1;
            }
        }
        // Both classes, on every frame asked for, are large enough to be checked.
        assert_eq!(
            (checked[LABEL_VEIN as usize], checked[LABEL_ARTERY as usize]),
            (4, 4),
            "seed {seed}: frames checked per class"
        );
    }
}

#[test]
fn warped_labels_follow_compression() {
    // With compression the healthy vein flattens into a lens a few pixels thick: classes
    // that keep most of their area must still match at 0.98, thin collapsing lumens closely.
    for seed in [1, 4] {
        let phantom = Phantom::new(PhantomParams {
            veins: 2,
            arteries: 2,
            ..small(seed)
        })
        .unwrap();
        let (mut kept, mut collapsing) = (0, 0);
        for (index, label, now, rest, dice) in warp_scores(&phantom, &[10, 20, 33]) {
            let context = format!("seed {seed} frame {index} label {label}: {rest} -> {now} px");
            if now >= 150 && now * 10 >= rest * 6 {
                assert!(dice >= 0.98, "{context}: dice {dice}");
                kept += 1;
            } else if now >= 30 {
                assert!(dice >= 0.85, "{context}: dice {dice}");
                collapsing += 1;
            }
        }
        // Both kinds of case ran: classes that keep their area and a lumen being squeezed.
        assert!(
            kept >= 3 && collapsing >= 1,
            "seed {seed}: {kept} classes kept their area, {collapsing} were squeezed"
        );
    }
}

#[test]
fn fully_developed_speckle_has_rayleigh_statistics() {
    // Envelope of circular Gaussian IQ: mean / std = sqrt(pi / (4 - pi)) = 1.913.
    let params = PhantomParams {
        scene: Scene::Uniform,
        motion_amplitude: 0.0,
        compression_depth_mm: 0.0,
        ..small(4)
    };
    let phantom = Phantom::new(params).unwrap();
    let mut ws = phantom.workspace();
    let mut ratios = Vec::new();
    for index in [0, 1] {
        let intensity = phantom.intensity(index, &mut ws);
        // Rows around the focus, away from the lateral edges.
        let envelope: Vec<f64> = (40..100)
            .flat_map(|y| (10..118).map(move |x| (x, y)))
            .map(|(x, y)| (intensity[y * 128 + x] as f64).sqrt())
            .collect();
        let n = envelope.len() as f64;
        let mean = envelope.iter().sum::<f64>() / n;
        let std = (envelope.iter().map(|e| (e - mean).powi(2)).sum::<f64>() / n).sqrt();
        ratios.push(mean / std);
    }
    for ratio in ratios {
        assert!((ratio - 1.913).abs() < 0.12, "mean/std {ratio}");
    }
}

#[test]
fn lumens_are_at_least_15_db_below_surrounding_tissue() {
    for seed in [1, 5, 9] {
        let phantom = Phantom::new(small(seed)).unwrap();
        let mut ws = phantom.workspace();
        let intensity = phantom.intensity(0, &mut ws).to_vec();
        let mut measured = Vec::new();
        for vessel in &phantom.anatomy().vessels {
            let (mut lumen, mut lumen_n, mut tissue, mut tissue_n) = (0.0, 0, 0.0, 0);
            for y in 0..128 {
                for x in 0..128 {
                    let rho = vessel.norm(x as f32, y as f32);
                    // Lateral neighbourhood only: no wall, no posterior enhancement.
                    let beside = (y as f32 - vessel.cy).abs() < 0.5 * vessel.b;
                    if rho < 0.6 {
                        lumen += intensity[y * 128 + x] as f64;
                        lumen_n += 1;
                    } else if rho > 1.8 && rho < 2.6 && beside {
                        tissue += intensity[y * 128 + x] as f64;
                        tissue_n += 1;
                    }
                }
            }
            if lumen_n < 10 || tissue_n < 10 {
                continue;
            }
            let contrast = 10.0 * ((tissue / tissue_n as f64) / (lumen / lumen_n as f64)).log10();
            assert!(
                contrast >= 15.0,
                "seed {seed} {:?}: {contrast:.1} dB",
                vessel.kind
            );
            measured.push(vessel.kind);
        }
        // The main vein and artery are in view and measured, whatever else is.
        assert!(
            measured.contains(&VesselKind::Vein) && measured.contains(&VesselKind::Artery),
            "seed {seed}: measured only {measured:?}"
        );
    }
}

fn vessel_areas(phantom: &Phantom, index: u64) -> (usize, usize) {
    let labels = phantom.frame(index, &mut phantom.workspace()).truth.labels;
    (area(&labels, LABEL_VEIN), area(&labels, LABEL_ARTERY))
}

#[test]
fn healthy_vein_collapses_and_thrombosed_vein_does_not() {
    // Peak compression is at half the period: 1.5 s = frame 45 at 30 fps.
    let peak = 45;
    for seed in [2, 6] {
        let healthy = Phantom::new(PhantomParams {
            arteries: 0,
            ..small(seed)
        })
        .unwrap();
        let (rest, _) = vessel_areas(&healthy, 0);
        let (squeezed, _) = vessel_areas(&healthy, peak);
        assert!(rest > 200, "seed {seed}: vein area {rest}");
        assert!(
            (squeezed as f64) < 0.03 * rest as f64,
            "seed {seed}: healthy vein {rest} -> {squeezed} px"
        );

        let thrombosed = Phantom::new(PhantomParams {
            arteries: 0,
            thrombosed: true,
            ..small(seed)
        })
        .unwrap();
        let (rest, _) = vessel_areas(&thrombosed, 0);
        let (squeezed, _) = vessel_areas(&thrombosed, peak);
        assert!(
            squeezed as f64 >= 0.6 * rest as f64,
            "seed {seed}: thrombosed vein {rest} -> {squeezed} px"
        );
    }
}

#[test]
fn compression_depth_zero_leaves_the_vein_open() {
    let phantom = Phantom::new(PhantomParams {
        compression_depth_mm: 0.0,
        motion_amplitude: 0.0,
        ..small(3)
    })
    .unwrap();
    let (rest, _) = vessel_areas(&phantom, 0);
    let (peak, _) = vessel_areas(&phantom, 45);
    assert!(rest.abs_diff(peak) <= rest / 100 + 2, "{rest} -> {peak}");
}

#[test]
fn arteries_pulse_at_the_heart_rate() {
    // 60 bpm at 20 fps: one beat every 20 frames, systolic peak 15 % into the beat.
    let phantom = Phantom::new(PhantomParams {
        fps: 20.0,
        heart_rate_bpm: 60.0,
        compression_depth_mm: 0.0,
        motion_amplitude: 0.0,
        veins: 0,
        ..small(5)
    })
    .unwrap();
    assert!(phantom
        .anatomy()
        .vessels
        .iter()
        .any(|v| v.kind == VesselKind::Artery));
    let diastole = vessel_areas(&phantom, 0).1 as f64;
    let systole = vessel_areas(&phantom, 3).1 as f64;
    let next_diastole = vessel_areas(&phantom, 20).1 as f64;
    let next_systole = vessel_areas(&phantom, 23).1 as f64;
    assert!(systole > 1.08 * diastole, "{diastole} -> {systole}");
    assert!((next_diastole - diastole).abs() <= 0.01 * diastole);
    assert!((next_systole - systole).abs() <= 0.01 * systole);
}

#[test]
fn a_still_probe_gives_zero_flow_and_static_tissue() {
    let phantom = Phantom::new(PhantomParams {
        compression_depth_mm: 0.0,
        motion_amplitude: 0.0,
        heart_rate_bpm: 0.0,
        ..small(11)
    })
    .unwrap();
    let mut ws = phantom.workspace();
    let a = phantom.frame(0, &mut ws);
    let b = phantom.frame(17, &mut ws);
    assert!(b
        .truth
        .flow
        .dx
        .iter()
        .chain(&b.truth.flow.dy)
        .all(|v| v.abs() < 1e-4));
    assert_eq!(a.truth.labels, b.truth.labels);
    // Only noise and blood echoes change: tissue pixels stay within a few gray levels.
    let tissue: Vec<usize> = (0..a.image.len())
        .filter(|&i| a.truth.labels.data[i] == 0)
        .collect();
    let mean_abs = tissue
        .iter()
        .map(|&i| (a.image[i] as f64 - b.image[i] as f64).abs())
        .sum::<f64>()
        / tissue.len() as f64;
    assert!(mean_abs < 2.0, "mean |difference| {mean_abs}");
}

#[test]
fn probe_motion_moves_the_image_with_the_flow() {
    // The image itself follows the ground-truth flow: warping frame 0's pixels by it predicts
    // frame t far better than frame 0 unwarped does.
    let phantom = Phantom::new(PhantomParams {
        motion_amplitude: 2.0,
        ..small(13)
    })
    .unwrap();
    let mut ws = phantom.workspace();
    let f0 = phantom.frame(0, &mut ws);
    let ft = phantom.frame(40, &mut ws);
    let image0: Vec<f32> = f0.image.iter().map(|&v| v as f32).collect();
    let (mut warped_err, mut still_err, mut n) = (0.0f64, 0.0f64, 0usize);
    for y in 8..120 {
        for x in 8..120 {
            let i = y * 128 + x;
            let (dx, dy) = (ft.truth.flow.dx[i], ft.truth.flow.dy[i]);
            let predicted =
                gstpddflow::flow::warp::bilinear(&image0, 128, 128, x as f32 + dx, y as f32 + dy);
            warped_err += (predicted as f64 - ft.image[i] as f64).abs();
            still_err += (image0[i] as f64 - ft.image[i] as f64).abs();
            n += 1;
        }
    }
    let mean_flow = ft.truth.flow.mean_magnitude();
    assert!(mean_flow > 1.0, "mean flow {mean_flow}");
    assert!(
        warped_err < 0.8 * still_err,
        "warped {:.1} vs still {:.1}",
        warped_err / n as f64,
        still_err / n as f64
    );
}

mod element {
    use super::*;
    use gst_check::Harness;

    fn init() {
        use std::sync::Once;
        static INIT: Once = Once::new();
        INIT.call_once(|| {
            gst::init().unwrap();
            gstpddflow::plugin_register_static().expect("plugin registers");
        });
    }

    fn harness(properties: &[(&str, &dyn ToValue)]) -> Harness {
        init();
        let element = gst::ElementFactory::make("usphantomsrc")
            .build()
            .expect("usphantomsrc exists");
        for (name, value) in properties {
            element.set_property_from_value(name, &value.to_value());
        }
        Harness::with_element(&element, None, Some("src"))
    }

    fn caps_of(h: &Harness) -> gst_video::VideoInfo {
        let caps = h.sinkpad().unwrap().current_caps().expect("negotiated");
        gst_video::VideoInfo::from_caps(&caps).unwrap()
    }

    #[test]
    fn defaults_to_256x256_at_30fps_with_exact_timestamps() {
        let mut h = harness(&[("seed", &3u64)]);
        h.play();
        for i in 0..3u64 {
            let buffer = h.pull().unwrap();
            let info = caps_of(&h);
            assert_eq!((info.width(), info.height()), (256, 256));
            assert_eq!(info.fps(), gst::Fraction::new(30, 1));
            assert_eq!(info.format(), gst_video::VideoFormat::Gray8);
            assert_eq!(buffer.size(), info.size());
            let pts = buffer.pts().unwrap();
            assert_eq!(pts.nseconds(), i * 1_000_000_000 / 30);
            assert_eq!(
                pts + buffer.duration().unwrap(),
                gst::ClockTime::from_nseconds((i + 1) * 1_000_000_000 / 30)
            );
            assert_eq!(buffer.offset(), i);
        }
    }

    #[test]
    fn follows_the_size_and_rate_downstream_asks_for() {
        for (w, h_, num, den) in [(320, 240, 15, 1), (101, 77, 25, 2), (640, 480, 60, 1)] {
            let mut h = harness(&[]);
            h.set_sink_caps_str(&format!(
                "video/x-raw,format=GRAY8,width={w},height={h_},framerate={num}/{den}"
            ));
            h.play();
            let first = h.pull().unwrap();
            let second = h.pull().unwrap();
            let info = caps_of(&h);
            assert_eq!((info.width(), info.height()), (w, h_));
            assert_eq!(info.fps(), gst::Fraction::new(num, den));
            // Rows are padded to 4 bytes in GRAY8.
            assert_eq!(first.size(), info.stride()[0] as usize * h_ as usize);
            let expected = gst::ClockTime::SECOND.nseconds() * den as u64 / num as u64;
            let step = second.pts().unwrap() - first.pts().unwrap();
            assert!(
                step.nseconds().abs_diff(expected) <= 1,
                "{step} vs {expected}"
            );
        }
    }

    #[test]
    fn num_buffers_ends_the_stream() {
        let mut h = harness(&[("num-buffers", &2i32)]);
        h.set_sink_caps_str("video/x-raw,format=GRAY8,width=64,height=64,framerate=30/1");
        h.play();
        assert!(h.pull().is_ok());
        assert!(h.pull().is_ok());
        loop {
            let event = h.pull_event().expect("EOS follows");
            if event.type_() == gst::EventType::Eos {
                break;
            }
        }
        assert_eq!(h.buffers_in_queue(), 0);
    }

    #[test]
    fn live_mode_produces_in_real_time() {
        let mut h = harness(&[("is-live", &true)]);
        h.use_systemclock();
        h.set_sink_caps_str("video/x-raw,format=GRAY8,width=64,height=48,framerate=20/1");
        assert!(h
            .element()
            .unwrap()
            .downcast::<gst_base::BaseSrc>()
            .unwrap()
            .is_live());
        // As in a pipeline: running time starts at 0 when playing starts.
        let element = h.element().unwrap();
        let clock = gst::SystemClock::obtain();
        element.set_base_time(clock.time());
        h.play();
        let start = std::time::Instant::now();
        let mut pts = Vec::new();
        for _ in 0..4 {
            pts.push(h.pull().unwrap().pts().unwrap());
        }
        // Four frames at 20 fps: the last one is due 150 ms after the first. A live source's
        // timestamps are running times, so they start near 0 and step by exactly 50 ms.
        assert!(start.elapsed() >= std::time::Duration::from_millis(120));
        assert!(
            pts[0] < gst::ClockTime::from_mseconds(500),
            "first pts {}",
            pts[0]
        );
        for pair in pts.windows(2) {
            assert_eq!((pair[1] - pair[0]).nseconds(), 50_000_000);
        }
        let mut query = gst::query::Latency::new();
        assert!(h.element().unwrap().query(&mut query));
        let (live, min, _) = query.result();
        assert!(live);
        assert_eq!(min.mseconds(), 50);
    }

    #[test]
    fn first_frame_carries_the_reference_mask() {
        let mut h = harness(&[("seed", &1u64), ("veins", &1u32), ("arteries", &1u32)]);
        h.set_sink_caps_str("video/x-raw,format=GRAY8,width=128,height=96,framerate=30/1");
        h.play();
        let first = h.pull().unwrap();
        let mask = gstpddflow::meta::reference_mask(&first)
            .expect("first frame has a mask")
            .unwrap();
        assert_eq!((mask.width, mask.height), (128, 96));
        let phantom = Phantom::new(PhantomParams {
            width: 128,
            height: 96,
            seed: 1,
            ..Default::default()
        })
        .unwrap();
        let expected = phantom.frame(0, &mut phantom.workspace()).truth.labels;
        assert_eq!(mask, expected);
        assert!(mask.data.contains(&LABEL_VEIN) && mask.data.contains(&LABEL_ARTERY));
        let second = h.pull().unwrap();
        assert!(gstpddflow::meta::reference_mask(&second).is_none());
    }

    #[test]
    fn mask_every_frame_attaches_it_to_all_frames() {
        let mut h = harness(&[("mask-every-frame", &true)]);
        h.set_sink_caps_str("video/x-raw,format=GRAY8,width=64,height=64,framerate=30/1");
        h.play();
        for _ in 0..3 {
            let buffer = h.pull().unwrap();
            assert!(gstpddflow::meta::reference_mask(&buffer).is_some());
        }
    }

    #[test]
    fn the_element_streams_what_the_simulator_renders() {
        let mut h = harness(&[("seed", &42u64), ("thrombosed", &true)]);
        h.set_sink_caps_str("video/x-raw,format=GRAY8,width=64,height=64,framerate=30/1");
        h.play();
        let _ = h.pull().unwrap();
        let second = h.pull().unwrap();
        let phantom = Phantom::new(PhantomParams {
            width: 64,
            height: 64,
            seed: 42,
            thrombosed: true,
            ..Default::default()
        })
        .unwrap();
        let expected = phantom.frame(1, &mut phantom.workspace()).image;
        let map = second.map_readable().unwrap();
        assert_eq!(map.as_slice(), expected.as_slice());
    }

    #[test]
    fn seeking_renders_the_frame_at_the_new_position() {
        let mut h = harness(&[("seed", &9u64)]);
        h.set_sink_caps_str("video/x-raw,format=GRAY8,width=64,height=64,framerate=30/1");
        h.play();
        let _ = h.pull().unwrap();
        let seek = gst::event::Seek::new(
            1.0,
            gst::SeekFlags::FLUSH,
            gst::SeekType::Set,
            gst::ClockTime::SECOND,
            gst::SeekType::None,
            gst::ClockTime::NONE,
        );
        assert!(h.push_upstream_event(seek));
        // Buffers queued before the flush may still be in the harness (the source runs
        // ahead): the first one after the seek is marked as a discontinuity.
        let after = (0..1000)
            .map(|_| h.pull().unwrap())
            .find(|b| b.flags().contains(gst::BufferFlags::DISCONT))
            .expect("a buffer after the seek");
        assert_eq!(after.pts(), Some(gst::ClockTime::SECOND));
        let phantom = Phantom::new(PhantomParams {
            width: 64,
            height: 64,
            seed: 9,
            ..Default::default()
        })
        .unwrap();
        let expected = phantom.frame(30, &mut phantom.workspace());
        assert_eq!(
            after.map_readable().unwrap().as_slice(),
            expected.image.as_slice()
        );
        // Downstream flushed: the mask comes again, for the frame it is attached to.
        let mask = gstpddflow::meta::reference_mask(&after)
            .expect("mask after seek")
            .unwrap();
        assert_eq!(mask, expected.truth.labels);
    }

    #[test]
    fn invalid_settings_are_an_error_not_a_panic() {
        init();
        let element = gst::ElementFactory::make("usphantomsrc").build().unwrap();
        // Out of range values are rejected by the property spec itself.
        let spec = element.find_property("frequency").unwrap();
        let spec = spec.downcast_ref::<glib::ParamSpecDouble>().unwrap();
        assert_eq!((spec.minimum(), spec.maximum()), (2.0, 20.0));
        let mut h = Harness::with_element(&element, None, Some("src"));
        let bus = gst::Bus::new();
        element.set_bus(Some(&bus));
        // 8x8 is below the template's minimum size: negotiation fails with an error message on
        // the bus, no buffer, no panic.
        h.set_sink_caps_str("video/x-raw,format=GRAY8,width=8,height=8,framerate=30/1");
        h.play();
        let error = bus
            .timed_pop_filtered(gst::ClockTime::from_seconds(5), &[gst::MessageType::Error])
            .expect("an error message on the bus");
        let gst::MessageView::Error(error) = error.view() else {
            unreachable!()
        };
        let text = format!("{} {:?}", error.error(), error.debug());
        assert!(
            error.error().matches(gst::CoreError::Negotiation)
                || error.error().matches(gst::StreamError::Failed)
                    && text.contains("not-negotiated"),
            "{text}"
        );
        assert!(h.try_pull().is_none());
        assert!(!text.contains("panicked"), "an error, not a panic: {text}");
    }
}
