//! Embedding pddflow in a Rust application: build a pipeline, read each frame's result from the
//! metadata at an appsink, and react to the compression readouts on the bus.
//!
//!     cargo run --release --example embed -- [FRAMES]

use gst::prelude::*;
use gstpddflow::meta::FlowResult;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let frames: u32 = std::env::args()
        .nth(1)
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(90);
    gst::init()?;
    // The plugin is linked in; an installed plugin would be found through GST_PLUGIN_PATH.
    gstpddflow::plugin_register_static()?;
    let pipeline = gst::parse::launch(&format!(
        "usphantomsrc seed=3 num-buffers={frames} ! video/x-raw,width=320,height=320 \
         ! pddflow mode=chain pixel-spacing=0.15 message-interval=30 ! appsink name=sink sync=false"
    ))?
    .downcast::<gst::Pipeline>()
    .map_err(|_| "not a pipeline")?;
    let sink = pipeline
        .by_name("sink")
        .and_then(|e| e.downcast::<gst_app::AppSink>().ok())
        .ok_or("no appsink")?;
    sink.set_callbacks(
        gst_app::AppSinkCallbacks::builder()
            .new_sample(|sink| {
                let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                let Some(buffer) = sample.buffer() else {
                    return Ok(gst::FlowSuccess::Ok);
                };
                match FlowResult::from_buffer(buffer) {
                    Some(Ok(r)) if r.frame % 15 == 0 => {
                        let vessels: Vec<String> = r
                            .vessels
                            .iter()
                            .map(|v| {
                                format!(
                                    "{} {:?} {} px",
                                    r.class_names[v.label as usize], v.bbox, v.area
                                )
                            })
                            .collect();
                        println!(
                            "frame {:4} (reference {}): vein ratio {:?}, {}",
                            r.frame,
                            r.reference_frame,
                            r.vein_compression_ratio
                                .map(|x| (x * 100.0).round() / 100.0),
                            vessels.join(", ")
                        );
                    }
                    Some(Err(e)) => eprintln!("malformed metadata: {e}"),
                    _ => {}
                }
                Ok(gst::FlowSuccess::Ok)
            })
            .build(),
    );
    pipeline.set_state(gst::State::Playing)?;
    let bus = pipeline.bus().ok_or("no bus")?;
    for msg in bus.iter_timed(gst::ClockTime::NONE) {
        match msg.view() {
            gst::MessageView::Element(e) => {
                if let Some(s) = e.structure().filter(|s| s.name() == "pddflow-summary") {
                    println!("summary: {s}");
                }
            }
            gst::MessageView::Eos(_) => break,
            gst::MessageView::Error(e) => {
                pipeline.set_state(gst::State::Null)?;
                return Err(format!("{} ({:?})", e.error(), e.debug()).into());
            }
            _ => {}
        }
    }
    pipeline.set_state(gst::State::Null)?;
    Ok(())
}
