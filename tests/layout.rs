//! Buffers laid out as decoders and capture cards deliver them: strides other than the caps'
//! defaults and planes at arbitrary offsets, described by a `GstVideoMeta`. `pddflow` must read
//! the same luma and draw the same overlay as for the default layout, byte for byte.
//!
//! The built-in model is used because its flow depends on every pixel it is fed: misread rows
//! change the flow, the propagated labels and the overlay.

mod common;

use common::*;
use gst::prelude::*;
use gst_video::prelude::*;
use gstpddflow::meta::{attach_reference_mask, FlowResult};

/// What the padded layouts hold outside the frame's rows: drawing there is a bug.
const FILLER: u8 = 0xA5;

/// Rows of `plane` at `info`'s height.
fn plane_rows(info: &gst_video::VideoInfo, plane: usize) -> usize {
    let finfo = info.format_info();
    (0..finfo.n_components())
        .find(|&c| finfo.plane()[c as usize] as usize == plane)
        .map(|c| info.comp_height(c as u8) as usize)
        .expect("every plane holds a component")
}

/// A layout unlike the default one: every stride padded by an odd amount, planes stored in
/// reverse order with gaps between them, the first one at an odd offset.
fn padded_layout(info: &gst_video::VideoInfo) -> (Vec<usize>, Vec<i32>, usize) {
    let n = info.n_planes() as usize;
    let strides: Vec<i32> = (0..n)
        .map(|p| info.stride()[p] + 53 + 12 * p as i32)
        .collect();
    let mut offsets = vec![0; n];
    let mut position = 37;
    for p in (0..n).rev() {
        offsets[p] = position;
        position += strides[p] as usize * plane_rows(info, p) + 29;
    }
    (offsets, strides, position)
}

/// `frame`'s rows in the default layout (the input can have any layout).
fn to_default(info: &gst_video::VideoInfo, frame: &gst::BufferRef) -> gst::Buffer {
    let src = gst_video::VideoFrameRef::from_buffer_ref_readable(frame, info).unwrap();
    let mut out = vec![0u8; info.size()];
    for p in 0..info.n_planes() as usize {
        let (stride, src_stride) = (info.stride()[p] as usize, src.plane_stride()[p] as usize);
        let data = src.plane_data(p as u32).unwrap();
        for y in 0..plane_rows(info, p) {
            let n = stride.min(src_stride);
            let dst = info.offset()[p] + y * stride;
            out[dst..dst + n].copy_from_slice(&data[y * src_stride..y * src_stride + n]);
        }
    }
    gst::Buffer::from_mut_slice(out)
}

/// A copy of `layout` (any layout) with its rows overwritten by those of `rows` (default layout).
fn with_rows_of(
    info: &gst_video::VideoInfo,
    layout: &gst::BufferRef,
    rows: &gst::BufferRef,
) -> gst::Buffer {
    let mut out = layout.copy_deep().unwrap();
    let map = rows.map_readable().unwrap();
    {
        let mut dst =
            gst_video::VideoFrameRef::from_buffer_ref_writable(out.get_mut().unwrap(), info)
                .unwrap();
        for p in 0..info.n_planes() as usize {
            let (stride, dst_stride) = (info.stride()[p] as usize, dst.plane_stride()[p] as usize);
            let n = stride.min(dst_stride);
            let data = dst.plane_data_mut(p as u32).unwrap();
            for y in 0..plane_rows(info, p) {
                let src = info.offset()[p] + y * stride;
                data[y * dst_stride..y * dst_stride + n].copy_from_slice(&map[src..src + n]);
            }
        }
    }
    out
}

/// `frame` (default layout) copied into [`padded_layout`], described by a `GstVideoMeta`.
fn to_padded(info: &gst_video::VideoInfo, frame: &gst::BufferRef) -> gst::Buffer {
    let (offsets, strides, size) = padded_layout(info);
    let map = frame.map_readable().unwrap();
    let mut out = vec![FILLER; size];
    for p in 0..info.n_planes() as usize {
        let stride = info.stride()[p] as usize;
        for y in 0..plane_rows(info, p) {
            let src = info.offset()[p] + y * stride;
            let dst = offsets[p] + y * strides[p] as usize;
            out[dst..dst + stride].copy_from_slice(&map[src..src + stride]);
        }
    }
    let mut buffer = gst::Buffer::from_mut_slice(out);
    gst_video::VideoMeta::add_full(
        buffer.get_mut().unwrap(),
        gst_video::VideoFrameFlags::empty(),
        info.format(),
        info.width(),
        info.height(),
        &offsets,
        &strides,
    )
    .unwrap();
    buffer
}

/// A `pddflow` on the built-in model drawing every overlay layer.
fn overlay_harness(info: &gst_video::VideoInfo) -> (gst::Element, gst::Bus, gst_check::Harness) {
    let (element, bus) = element(&[("overlay", &true)]);
    element.set_property_from_str("overlay-style", "fill+contour+flow+arrows+legend");
    let mut h = harness(&element);
    h.set_src_caps(info.to_caps().unwrap());
    (element, bus, h)
}

/// Pushes `frames` (the first gets a reference mask) through two elements, once as they are
/// and once in the default layout, and checks that both see and draw the same.
fn assert_same_as_default_layout(
    info: &gst_video::VideoInfo,
    frames: &[gst::Buffer],
    context: &str,
) {
    let (w, h) = (info.width() as usize, info.height() as usize);
    let mask = square(w, h, w / 4, h / 4, w.min(h) / 3, 1);
    let (_e1, bus1, mut as_given) = overlay_harness(info);
    let (_e2, bus2, mut default) = overlay_harness(info);
    for (i, frame) in frames.iter().enumerate() {
        let mut given = frame.copy_deep().unwrap();
        let mut plain = to_default(info, frame);
        if i == 0 {
            attach_reference_mask(given.get_mut().unwrap(), &mask).unwrap();
            attach_reference_mask(plain.get_mut().unwrap(), &mask).unwrap();
        }
        let out_given = as_given.push_and_pull(given).unwrap();
        let out_default = default.push_and_pull(plain).unwrap();
        let (r_given, r_default) = (
            FlowResult::from_buffer(&out_given).unwrap().unwrap(),
            FlowResult::from_buffer(&out_default).unwrap().unwrap(),
        );
        // The same flow means the engine was fed the same luma.
        assert_eq!(r_given, r_default, "{context} frame {i}: results differ");
        assert!(r_given.labels.is_some(), "{context}: labels propagated");
        // The same overlay pixels, and nothing written outside the frame's rows: the output is
        // the input with its rows replaced by the default layout's output rows.
        let expected = with_rows_of(info, frame, &out_default);
        assert!(
            out_given.map_readable().unwrap().as_slice()
                == expected.map_readable().unwrap().as_slice(),
            "{context} frame {i}: overlay pixels differ from the default layout's"
        );
    }
    for bus in [bus1, bus2] {
        let errors = messages(&bus, gst::MessageType::Error);
        assert!(errors.is_empty(), "{context}: {errors:?}");
    }
}

#[test]
fn padded_strides_and_offset_planes_read_and_draw_like_the_default_layout() {
    init();
    use gst_video::VideoFormat::*;
    for format in [
        Gray8, Gray16Le, Rgb, Bgr, Rgba, Bgra, Rgbx, Bgrx, I420, Nv12,
    ] {
        for (w, h) in [(64, 48), (67, 45)] {
            let info = gst_video::VideoInfo::builder(format, w, h)
                .fps(gst::Fraction::new(25, 1))
                .build()
                .unwrap();
            let frames: Vec<gst::Buffer> = (0..3)
                .map(|i| to_padded(&info, &frame_buffer(&info, i)))
                .collect();
            assert_same_as_default_layout(&info, &frames, &format!("{format:?} {w}x{h}"));
        }
    }
}

#[test]
fn a_layout_that_does_not_hold_the_frame_is_an_error_not_a_crash() {
    init();
    let info = gst_video::VideoInfo::builder(gst_video::VideoFormat::Rgb, 64, 48)
        .build()
        .unwrap();
    // (buffer size, plane offset, stride, what the error names)
    let cases = [
        // Rows of 100 bytes cannot hold 64 RGB pixels.
        (100 * 48, 0, 100, "stride 100"),
        // Good rows, but the plane runs past the buffer's end.
        (192 * 10, 0, 192, "a 64x48 Rgb frame needs 9216"),
        (192 * 48, 500, 192, "a 64x48 Rgb frame needs 9216"),
    ];
    for (size, offset, stride, expected) in cases {
        let (element, bus) = element(&[]);
        let mut h = harness(&element);
        h.set_src_caps(info.to_caps().unwrap());
        let mut buffer = gst::Buffer::from_mut_slice(vec![0u8; size]);
        gst_video::VideoMeta::add_full(
            buffer.get_mut().unwrap(),
            gst_video::VideoFrameFlags::empty(),
            info.format(),
            64,
            48,
            &[offset],
            &[stride],
        )
        .unwrap();
        assert!(h.push(buffer).is_err());
        let errors = messages(&bus, gst::MessageType::Error);
        assert!(
            errors.iter().any(|e| e.contains(expected)),
            "{expected}: {errors:?}"
        );
    }
}

#[test]
fn the_allocation_query_passes_downstream_video_meta_support_upstream() {
    // In place, pddflow hands its input on: upstream may pad frames exactly when downstream
    // can read padded frames too.
    for downstream_reads_video_meta in [true, false] {
        let (element, _bus) = element(&[]);
        let mut h = harness(&element);
        if downstream_reads_video_meta {
            h.add_propose_allocation_meta(gst_video::VideoMeta::meta_api(), None);
        }
        let caps = gray_caps(64, 48);
        h.set_src_caps(caps.clone());
        let mut query = gst::query::Allocation::new(Some(&caps), true);
        assert!(element.static_pad("sink").unwrap().query(&mut query));
        assert_eq!(
            query
                .find_allocation_meta::<gst_video::VideoMeta>()
                .is_some(),
            downstream_reads_video_meta,
            "{query:?}"
        );
    }
}

/// A moving bright square on a gradient, in the default layout.
fn synthetic_i420(info: &gst_video::VideoInfo, index: usize) -> gst::Buffer {
    let mut data = vec![128u8; info.size()];
    let (w, h, stride) = (
        info.width() as usize,
        info.height() as usize,
        info.stride()[0] as usize,
    );
    for y in 0..h {
        for x in 0..w {
            let inside = (x + 300 - 6 * index).abs_diff(w / 2) < 60 && y.abs_diff(h / 2) < 50;
            data[y * stride + x] = if inside {
                235
            } else {
                (16 + (x + y) / 8) as u8
            };
        }
    }
    gst::Buffer::from_mut_slice(data)
}

/// `frames` through `x264enc ! avdec_h264` as the decoder hands them on to `videoconvert`
/// (which accepts video meta, so the decoder may give its own padded frames).
fn through_h264(info: &gst_video::VideoInfo, frames: Vec<gst::Buffer>) -> Vec<gst::Buffer> {
    let (pipeline, src, _) = app_pipeline(
        "appsrc name=src format=time ! x264enc tune=zerolatency speed-preset=ultrafast \
         ! avdec_h264 name=decoder ! videoconvert ! video/x-raw,format=RGB ! fakesink",
    );
    let decoded = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = decoded.clone();
    let pad = pipeline
        .by_name("decoder")
        .unwrap()
        .static_pad("src")
        .unwrap();
    pad.add_probe(gst::PadProbeType::BUFFER, move |_, probe| {
        if let Some(buffer) = probe.buffer() {
            // A deep copy keeps the memory layout and the video meta, and frees the pool.
            sink.lock().unwrap().push(buffer.copy_deep().unwrap());
        }
        gst::PadProbeReturn::Ok
    });
    src.set_caps(Some(&info.to_caps().unwrap()));
    pipeline.set_state(gst::State::Playing).unwrap();
    for (i, mut frame) in frames.into_iter().enumerate() {
        frame
            .get_mut()
            .unwrap()
            .set_pts(gst::ClockTime::from_mseconds(33 * i as u64));
        src.push_buffer(frame).unwrap();
    }
    src.end_of_stream().unwrap();
    let bus = pipeline.bus().unwrap();
    let msg = bus
        .timed_pop_filtered(
            gst::ClockTime::from_seconds(30),
            &[gst::MessageType::Eos, gst::MessageType::Error],
        )
        .expect("the pipeline ends");
    assert_eq!(msg.type_(), gst::MessageType::Eos, "{msg:?}");
    pipeline.set_state(gst::State::Null).unwrap();
    let decoded = decoded.lock().unwrap().clone();
    decoded
}

#[test]
fn h264_decoded_at_708x480_is_read_like_the_default_layout() {
    init();
    if gst::ElementFactory::find("x264enc").is_none()
        || gst::ElementFactory::find("avdec_h264").is_none()
    {
        println!("note: x264enc or avdec_h264 is not installed; decoder layouts not tested");
        return;
    }
    let info = gst_video::VideoInfo::builder(gst_video::VideoFormat::I420, 708, 480)
        .fps(gst::Fraction::new(30, 1))
        .build()
        .unwrap();
    let decoded = through_h264(&info, (0..6).map(|i| synthetic_i420(&info, i)).collect());
    assert_eq!(decoded.len(), 6);
    let padded = decoded.iter().any(|b| {
        b.meta::<gst_video::VideoMeta>().is_some_and(|m| {
            m.stride()[..3] != info.stride()[..3] || m.offset()[..3] != info.offset()[..3]
        })
    });
    if !padded {
        println!("note: avdec_h264 gave frames in the default layout here");
    }
    assert_same_as_default_layout(&info, &decoded, "avdec_h264 708x480");
}
