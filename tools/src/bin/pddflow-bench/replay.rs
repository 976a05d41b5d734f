//! Frames drawn once by a source element and replayed from memory through `appsrc`, so that a
//! run's source costs one copy per frame instead of drawing the frame: at 1080p
//! `videotestsrc pattern=ball` draws for about as long as the model runs, on the same thread,
//! which hid what frame size costs pddflow itself.

use gst::prelude::*;
use std::sync::Arc;

/// Frames kept in memory; the replay runs through them forwards and backwards.
pub struct Replay {
    caps: gst::Caps,
    frames: Arc<Vec<gst::Buffer>>,
}

/// Index of the `n`-th frame pushed when `len` frames are replayed back and forth
/// (0, 1, …, len-1, len-2, …, 1, 0, 1, …), so motion stays smooth where a loop would jump.
pub fn ping_pong(n: u64, len: usize) -> usize {
    if len < 2 {
        return 0;
    }
    let period = 2 * (len as u64 - 1);
    let phase = n % period;
    (if phase < len as u64 {
        phase
    } else {
        period - phase
    }) as usize
}

impl Replay {
    /// Draws `count` frames with `source` (an element description without num-buffers),
    /// converted to `caps`.
    pub fn render(source: &str, caps: &str, count: u32) -> Result<Replay, String> {
        let description = format!(
            "{source} num-buffers={count} ! videoconvert ! {caps} ! appsink name=sink sync=false"
        );
        let pipeline = super::launch(&description)?;
        let sink = pipeline
            .by_name("sink")
            .and_then(|e| e.downcast::<gst_app::AppSink>().ok())
            .ok_or("the pipeline has no appsink named sink")?;
        pipeline
            .set_state(gst::State::Playing)
            .map_err(|_| format!("`{description}` did not start"))?;
        let mut frames = Vec::with_capacity(count as usize);
        let mut caps = None;
        while let Ok(sample) = sink.pull_sample() {
            caps = caps.or_else(|| sample.caps_owned());
            frames.extend(sample.buffer_owned());
        }
        let _ = pipeline.set_state(gst::State::Null);
        match caps {
            Some(caps) if !frames.is_empty() => Ok(Replay {
                caps,
                frames: Arc::new(frames),
            }),
            _ => Err(format!("`{description}` gave no frames")),
        }
    }

    /// Makes the `appsrc` named `src` in `pipeline` push `count` frames, each a fresh writable
    /// copy of the pixels (as a capture card's new buffer would be), then end the stream. The copy runs in
    /// `need-data`, on the source's streaming thread, where a source draws its frames.
    pub fn feed(&self, pipeline: &gst::Pipeline, count: u64) -> Result<(), String> {
        let src = pipeline
            .by_name("src")
            .and_then(|e| e.downcast::<gst_app::AppSrc>().ok())
            .ok_or("the pipeline has no appsrc named src")?;
        src.set_caps(Some(&self.caps));
        src.set_format(gst::Format::Time);
        let duration = gst_video::VideoInfo::from_caps(&self.caps)
            .ok()
            .and_then(|info| {
                let fps = info.fps();
                (fps.numer() > 0).then(|| {
                    gst::ClockTime::SECOND
                        .mul_div_floor(fps.denom() as u64, fps.numer() as u64)
                        .unwrap_or(gst::ClockTime::ZERO)
                })
            })
            .unwrap_or(gst::ClockTime::ZERO);
        let frames = self.frames.clone();
        let mut pushed = 0u64;
        src.set_callbacks(
            gst_app::AppSrcCallbacks::builder()
                .need_data(move |src, _| {
                    if pushed == count {
                        let _ = src.end_of_stream();
                        return;
                    }
                    let original = &frames[ping_pong(pushed, frames.len())];
                    // The pixels only, as a capture card hands them over: a meta would come
                    // back at every pass (usphantomsrc's mask on its first frame re-anchors).
                    let Ok(pixels) = original.map_readable() else {
                        let _ = src.end_of_stream();
                        return;
                    };
                    let mut buffer = gst::Buffer::from_mut_slice(pixels.as_slice().to_vec());
                    drop(pixels);
                    if let Some(b) = buffer.get_mut() {
                        b.set_pts(duration * pushed);
                        b.set_duration(duration);
                    }
                    pushed += 1;
                    let _ = src.push_buffer(buffer);
                })
                .build(),
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::{ping_pong, Replay};
    use gst::prelude::*;
    use std::sync::Arc;

    #[test]
    fn replayed_frames_carry_the_pixels_and_no_meta() {
        gst::init().unwrap();
        gstpddflow::meta::register();
        let mut frame = gst::Buffer::from_mut_slice(vec![7u8; 4 * 2]);
        let mask = gstpddflow::flow::LabelMap::new(4, 2);
        gstpddflow::meta::attach_reference_mask(frame.get_mut().unwrap(), &mask).unwrap();
        let replay = Replay {
            caps: "video/x-raw,format=GRAY8,width=4,height=2,framerate=30/1"
                .parse()
                .unwrap(),
            frames: Arc::new(vec![frame]),
        };
        let pipeline =
            super::super::launch("appsrc name=src ! appsink name=sink sync=false").unwrap();
        replay.feed(&pipeline, 2).unwrap();
        let sink = pipeline
            .by_name("sink")
            .unwrap()
            .downcast::<gst_app::AppSink>()
            .unwrap();
        pipeline.set_state(gst::State::Playing).unwrap();
        for _ in 0..2 {
            let buffer = sink.pull_sample().unwrap().buffer_owned().unwrap();
            assert_eq!(buffer.map_readable().unwrap().as_slice(), &[7u8; 8]);
            assert!(
                gstpddflow::meta::reference_mask(&buffer).is_none(),
                "a replayed frame brought its mask back"
            );
        }
        pipeline.set_state(gst::State::Null).unwrap();
    }

    #[test]
    fn replay_runs_back_and_forth_without_a_jump() {
        let order: Vec<usize> = (0..9).map(|n| ping_pong(n, 4)).collect();
        assert_eq!(order, [0, 1, 2, 3, 2, 1, 0, 1, 2]);
        assert_eq!(ping_pong(5, 1), 0);
    }
}
