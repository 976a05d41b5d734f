//! The overlay as a `GstVideoOverlayCompositionMeta`: when downstream can blend overlay
//! rectangles itself (a GL or hardware sink, a compositor), `pddflow overlay=true` attaches the
//! overlay as one ARGB rectangle and leaves the pixels untouched; otherwise it blends in place.
//! The convention of GStreamer's overlays (`textoverlay`, the analytics overlays): the caps
//! feature `meta:GstVideoOverlayComposition` is offered first downstream, and the meta is
//! attached when the negotiated caps carry it and downstream either proposes the meta in its
//! ALLOCATION answer or takes no caps without the feature. Pure decisions and caps work here;
//! the element calls them.

use crate::flow::draw::OverlayImage;
use gst_video::{
    VideoFormat, VideoFrameFlags, VideoMeta, VideoOverlayComposition, VideoOverlayFormatFlags,
    VideoOverlayRectangle, CAPS_FEATURE_META_GST_VIDEO_OVERLAY_COMPOSITION as FEATURE,
};

/// How the overlay reaches the picture.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Delivery {
    /// Drawn into the frame's pixels.
    Blend,
    /// Attached as a `GstVideoOverlayCompositionMeta`, the pixels untouched.
    Attach,
}

/// What downstream said about overlay compositions once the caps were negotiated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Downstream {
    /// The negotiated output caps carry `meta:GstVideoOverlayComposition`.
    pub caps_feature: bool,
    /// Downstream's ALLOCATION answer lists the `GstVideoOverlayCompositionMeta` API.
    pub allocation_meta: bool,
    /// Downstream would also take the caps without the feature (a sink with ANY caps, or one
    /// that blends nothing itself).
    pub takes_plain_caps: bool,
}

/// Attach only when the caps say so and downstream really blends rectangles: it proposed the
/// meta, or it takes only caps with the feature (an application asking for them). ANY-caps
/// elements (`fakesink`, `appsink` without caps) accept the feature without rendering the meta:
/// they get the overlay in the pixels, as before.
pub fn delivery(downstream: Downstream) -> Delivery {
    if downstream.caps_feature && (downstream.allocation_meta || !downstream.takes_plain_caps) {
        Delivery::Attach
    } else {
        Delivery::Blend
    }
}

/// Whether the first structure of `caps` carries `meta:GstVideoOverlayComposition`.
pub fn has_feature(caps: &gst::CapsRef) -> bool {
    caps.features(0)
        .is_some_and(|f| !f.is_any() && f.contains(FEATURE))
}

/// `features` with `meta:GstVideoOverlayComposition` added (system memory is implied by
/// features without a `memory:` one, so it is left out, as `video/x-raw(meta:...)` spells it).
fn with_feature(features: &gst::CapsFeaturesRef) -> gst::CapsFeatures {
    let mut out = gst::CapsFeatures::new_empty();
    for name in features.iter() {
        if name != gst::CAPS_FEATURE_MEMORY_SYSTEM_MEMORY {
            out.add(name);
        }
    }
    if !out.contains(FEATURE) {
        out.add(FEATURE);
    }
    out
}

/// `features` without `meta:GstVideoOverlayComposition` (system memory when nothing is left).
fn without_feature(features: &gst::CapsFeaturesRef) -> gst::CapsFeatures {
    let mut out = features.to_owned();
    out.remove(FEATURE);
    if out.is_empty() {
        gst::CAPS_FEATURES_MEMORY_SYSTEM_MEMORY.clone()
    } else {
        out
    }
}

/// `caps` with and without `meta:GstVideoOverlayComposition` on every structure (ANY features
/// stay as they are): what the other pad of the in-place element can have. `feature_first`
/// orders each pair so that caps with the feature are preferred (towards downstream, where
/// they let a sink blend the overlay), else those without (towards upstream, which need not
/// attach compositions of its own).
pub fn with_and_without_feature(caps: &gst::CapsRef, feature_first: bool) -> gst::Caps {
    if caps.is_any() {
        return caps.to_owned();
    }
    let mut out = gst::Caps::new_empty();
    for (structure, features) in caps.iter_with_features() {
        if features.is_any() {
            out.merge_structure_full(structure.to_owned(), Some(features.to_owned()));
            continue;
        }
        let (with, without) = (with_feature(features), without_feature(features));
        let pair = if feature_first {
            [with, without]
        } else {
            [without, with]
        };
        for features in pair {
            out.merge_structure_full(structure.to_owned(), Some(features));
        }
    }
    out
}

/// `caps` with `meta:GstVideoOverlayComposition` removed from every structure.
pub fn without_feature_caps(caps: &gst::CapsRef) -> gst::Caps {
    if caps.is_any() {
        return caps.to_owned();
    }
    let mut out = gst::Caps::new_empty();
    for (structure, features) in caps.iter_with_features() {
        let features = if features.is_any() {
            features.to_owned()
        } else {
            without_feature(features)
        };
        out.merge_structure_full(structure.to_owned(), Some(features));
    }
    out
}

/// The pad templates' caps: `formats` in system memory with the composition feature (first)
/// and without it.
pub fn template_caps(formats: &[VideoFormat]) -> gst::Caps {
    let plain = gst_video::VideoCapsBuilder::new()
        .format_list(formats.iter().copied())
        .build();
    with_and_without_feature(&plain, true)
}

/// The pixel format of overlay rectangles: ARGB as 32-bit words, B-G-R-A in memory on
/// little-endian machines, A-R-G-B on big-endian ones.
#[cfg(target_endian = "little")]
const RECTANGLE_FORMAT: VideoFormat = VideoFormat::Bgra;
#[cfg(target_endian = "big")]
const RECTANGLE_FORMAT: VideoFormat = VideoFormat::Argb;

/// The composition of one straight-alpha rectangle holding `image`, at its place on the frame
/// and at its own size.
pub fn composition(image: OverlayImage) -> Result<VideoOverlayComposition, glib::BoolError> {
    let OverlayImage {
        x,
        y,
        width,
        height,
        mut bgra,
    } = image;
    if RECTANGLE_FORMAT == VideoFormat::Argb {
        for pixel in bgra.chunks_exact_mut(4) {
            pixel.reverse();
        }
    }
    let (width, height) = (
        u32::try_from(width).map_err(|_| glib::bool_error!("overlay too wide"))?,
        u32::try_from(height).map_err(|_| glib::bool_error!("overlay too high"))?,
    );
    let (x, y) = (
        i32::try_from(x).map_err(|_| glib::bool_error!("overlay x out of range"))?,
        i32::try_from(y).map_err(|_| glib::bool_error!("overlay y out of range"))?,
    );
    if width == 0 || height == 0 {
        return Err(glib::bool_error!("empty overlay"));
    }
    let mut pixels = gst::Buffer::from_mut_slice(bgra);
    VideoMeta::add(
        pixels.get_mut().expect("a new buffer is writable"),
        VideoFrameFlags::empty(),
        RECTANGLE_FORMAT,
        width,
        height,
    )?;
    let rectangle = VideoOverlayRectangle::new_raw(
        &pixels,
        x,
        y,
        width,
        height,
        VideoOverlayFormatFlags::empty(),
    );
    VideoOverlayComposition::new([&rectangle])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attaches_only_where_downstream_blends_rectangles() {
        let cases = [
            // (caps feature, allocation meta, takes plain caps) -> delivery
            ((false, false, true), Delivery::Blend),
            ((false, true, true), Delivery::Blend),
            ((true, false, true), Delivery::Blend),
            ((true, true, true), Delivery::Attach),
            ((true, false, false), Delivery::Attach),
            ((true, true, false), Delivery::Attach),
        ];
        for ((caps_feature, allocation_meta, takes_plain_caps), want) in cases {
            let downstream = Downstream {
                caps_feature,
                allocation_meta,
                takes_plain_caps,
            };
            assert_eq!(delivery(downstream), want, "{downstream:?}");
        }
    }

    #[test]
    fn caps_gain_and_lose_the_feature() {
        gst::init().unwrap();
        let plain: gst::Caps = "video/x-raw, format=RGB".parse().unwrap();
        let composed: gst::Caps = "video/x-raw(meta:GstVideoOverlayComposition), format=RGB"
            .parse()
            .unwrap();
        assert!(!has_feature(&plain));
        assert!(has_feature(&composed));

        let downstream = with_and_without_feature(&plain, true);
        assert_eq!(downstream.size(), 2, "{downstream}");
        assert!(downstream.structure(0).unwrap() == plain.structure(0).unwrap());
        assert!(has_feature(&downstream), "feature first: {downstream}");
        assert!(downstream.can_intersect(&composed) && downstream.can_intersect(&plain));
        let upstream = with_and_without_feature(&composed, false);
        assert!(!has_feature(&upstream), "plain first: {upstream}");
        assert!(upstream.can_intersect(&plain) && upstream.can_intersect(&composed));

        assert!(without_feature_caps(&composed).is_strictly_equal(&plain));
        assert!(without_feature_caps(&plain).is_strictly_equal(&plain));
        let any = gst::Caps::new_any();
        assert!(with_and_without_feature(&any, true).is_any());
        assert!(without_feature_caps(&any).is_any());
        assert!(with_and_without_feature(&gst::Caps::new_empty(), true).is_empty());
    }

    #[test]
    fn templates_offer_every_format_with_and_without_the_feature() {
        gst::init().unwrap();
        let caps = template_caps(&[VideoFormat::Gray8, VideoFormat::Nv12]);
        for format in ["GRAY8", "NV12"] {
            for features in ["", "(meta:GstVideoOverlayComposition)"] {
                let wanted: gst::Caps = format!(
                    "video/x-raw{features}, format={format}, width=64, height=48, framerate=30/1"
                )
                .parse()
                .unwrap();
                assert!(wanted.is_subset(&caps), "{wanted} in {caps}");
            }
        }
        let other: gst::Caps = "video/x-raw(memory:GLMemory), format=NV12".parse().unwrap();
        assert!(!caps.can_intersect(&other));
    }

    #[test]
    fn composition_holds_the_image_where_it_goes() {
        gst::init().unwrap();
        let image = OverlayImage {
            x: 3,
            y: 2,
            width: 2,
            height: 1,
            bgra: vec![50, 50, 255, 255, 255, 120, 40, 128],
        };
        let composition = composition(image).unwrap();
        assert_eq!(composition.n_rectangles(), 1);
        let rectangle = composition.rectangle(0).unwrap();
        assert_eq!(rectangle.render_rectangle(), (3, 2, 2, 1));
        assert_eq!(rectangle.flags(), VideoOverlayFormatFlags::empty());
        let pixels = rectangle.pixels_unscaled_argb(VideoOverlayFormatFlags::empty());
        let map = pixels.map_readable().unwrap();
        let first = u32::from_ne_bytes(map[0..4].try_into().unwrap());
        assert_eq!(
            first, 0xffff_3232,
            "ARGB as a 32-bit word: opaque artery red"
        );
        let second = u32::from_ne_bytes(map[4..8].try_into().unwrap());
        assert_eq!(second, 0x8028_78ff, "half-covered vein blue");
    }
}
