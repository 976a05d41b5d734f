//! A featureless frame (a scanner's black margin, a flat test pattern) gives the built-in model
//! nothing to match, so a mask there stays where it is, in every mode and however many steps chain
//! mode composes. Up to model 0.6.1 two identical black frames gave up to 28 px of flow at the
//! working size, and on `videotestsrc pattern=ball` chain mode spread a vein over half the frame.

mod common;

use common::*;
use gst::prelude::*;
use gstpddflow::meta::{attach_reference_mask, FlowResult};

#[test]
fn a_mask_on_black_frames_stays_put_in_every_mode() {
    init();
    let (w, h) = (320, 240);
    let info = gst_video::VideoInfo::from_caps(&gray_caps(w as u32, h as u32)).unwrap();
    // Below the top three eighths: the feature CNN's zero padding gives the top rows features of
    // their own (models/README.md, "Featureless regions").
    let mut mask = square(w, h, 100, 140, 40, 1);
    for y in 150..180 {
        mask.data[y * w + 190..y * w + 220].fill(2);
    }
    for mode in ["keyframe", "chain", "hybrid"] {
        let (element, _bus) = element(&[]);
        element.set_property_from_str("mode", mode);
        let mut harness = harness(&element);
        harness.set_src_caps(info.to_caps().unwrap());
        for i in 0..20 {
            let mut buffer = gst::Buffer::from_mut_slice(vec![0u8; info.size()]);
            if i == 0 {
                attach_reference_mask(buffer.get_mut().unwrap(), &mask).unwrap();
            }
            let out = harness.push_and_pull(buffer).unwrap();
            let labels = FlowResult::from_buffer(&out)
                .expect("result meta attached")
                .expect("result meta well formed")
                .labels
                .expect("labels attached");
            let changed = labels
                .data
                .iter()
                .zip(&mask.data)
                .filter(|(a, b)| a != b)
                .count();
            assert_eq!(
                changed, 0,
                "{mode}, frame {i}: {changed} pixels changed label"
            );
        }
    }
}
