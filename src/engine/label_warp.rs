//! The label warp as an ONNX graph (`models/label_warp.onnx`, written by
//! `python -m pddflow_train.label_warp`): the same result as [`crate::flow::warp::warp_labels`]
//! from a session on any execution provider, so that with CUDA the frame-size warp can run
//! where the flow is and only the 8-bit map comes back. On the CPU the Rust warp is faster (it
//! skips uniform blocks); this runs there under the test that checks it against the Rust warp.

use super::{EngineConfig, Provider};
use crate::flow::{FlowField, LabelMap};
use ort::session::Session;
use ort::value::{Tensor, TensorRef};

/// The graph: reference_onehot f32 [1, K, H, W] (channel k - 1: id k), flow f32 [1, 2, h, w]
/// -> labels u8 [1, H, W].
pub const GRAPH: &[u8] = include_bytes!("../../models/label_warp.onnx");

/// A label-warp session and the reference it warps (uploaded once per reference).
pub struct OnnxLabelWarp {
    session: Session,
    reference: Option<(Tensor<f32>, usize, usize)>,
}

impl OnnxLabelWarp {
    /// A session on `provider` with the engine's thread settings.
    pub fn new(config: &EngineConfig, provider: Provider) -> Result<Self, String> {
        let runtime = super::runtime::runtime()?;
        let session = super::build_session(
            &runtime.environment,
            GRAPH,
            "label_warp.onnx",
            config,
            provider == Provider::Cuda,
        )?;
        Ok(Self {
            session,
            reference: None,
        })
    }

    /// Sets the map to warp: ids 1..=`ids` become one channel each (0 is the background; larger
    /// ids are an error, they would be lost).
    pub fn set_reference(&mut self, map: &LabelMap, ids: usize) -> Result<(), String> {
        if let Some(&id) = map.data.iter().find(|&&id| id as usize > ids) {
            return Err(format!(
                "the reference holds id {id}, above the {ids} ids it was given"
            ));
        }
        let plane = map.width * map.height;
        let mut onehot = vec![0f32; ids * plane];
        for (i, &id) in map.data.iter().enumerate() {
            if id > 0 {
                onehot[(id as usize - 1) * plane + i] = 1.0;
            }
        }
        let tensor = Tensor::from_array(([1usize, ids, map.height, map.width], onehot))
            .map_err(|e| format!("label warp reference: {e}"))?;
        self.reference = Some((tensor, map.width, map.height));
        Ok(())
    }

    /// The reference warped by `flow` (model grid, model pixels) at the reference's size.
    pub fn warp(&mut self, flow: &FlowField) -> Result<LabelMap, String> {
        let Some((reference, width, height)) = &self.reference else {
            return Err("label warp without a reference".into());
        };
        let planar = [&flow.dx[..], &flow.dy[..]].concat();
        let flow_input =
            TensorRef::from_array_view(([1usize, 2, flow.height, flow.width], &planar[..]))
                .map_err(|e| format!("label warp flow: {e}"))?;
        let outputs = self
            .session
            .run(ort::inputs!["reference_onehot" => reference, "flow" => flow_input])
            .map_err(|e| format!("label_warp.onnx failed: {e}"))?;
        let (_, labels) = outputs["labels"]
            .try_extract_tensor::<u8>()
            .map_err(|e| format!("label warp output: {e}"))?;
        LabelMap::from_vec(*width, *height, labels.to_vec()).map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::warp::warp_labels;

    /// Blobs of ids 1..=3 and a smooth flow with some roughness that pushes parts past the border.
    fn case(w: usize, h: usize, fw: usize, fh: usize, amplitude: f32) -> (LabelMap, FlowField) {
        let mut map = LabelMap::new(w, h);
        for (id, cx, cy, r) in [
            (1u8, 0.3, 0.4, 0.2),
            (2, 0.7, 0.5, 0.15),
            (3, 0.5, 0.9, 0.12),
        ] {
            let (cx, cy, r) = (cx * w as f32, cy * h as f32, r * w.min(h) as f32);
            for y in 0..h {
                for x in 0..w {
                    if (x as f32 - cx).powi(2) + (y as f32 - cy).powi(2) < r * r {
                        map.data[y * w + x] = id;
                    }
                }
            }
        }
        let mut flow = FlowField::zeros(fw, fh);
        for i in 0..fw * fh {
            let (x, y) = ((i % fw) as f32, (i / fw) as f32);
            flow.dx[i] = (x * 0.07).sin() * amplitude + ((i * 7919) % 13) as f32 * 0.02;
            flow.dy[i] = (y * 0.05).cos() * amplitude / 1.5 - 1.0;
        }
        (map, flow)
    }

    #[test]
    fn the_graph_on_the_cpu_gives_the_rust_warp() {
        let Ok(mut warp) = OnnxLabelWarp::new(
            &EngineConfig {
                threads: 1,
                ..EngineConfig::default()
            },
            Provider::Cpu,
        ) else {
            panic!("ONNX Runtime is needed for this test (scripts/setup.sh)");
        };
        for (w, h, fw, fh, amplitude) in [
            (203, 117, 64, 48, 3.0),
            (640, 480, 128, 128, 2.0),
            (97, 250, 97, 250, 8.0),
            (80, 60, 16, 16, 6.0),
        ] {
            let (map, flow) = case(w, h, fw, fh, amplitude);
            warp.set_reference(&map, 3).unwrap();
            let onnx = warp.warp(&flow).unwrap();
            let rust = warp_labels(&map, &flow);
            let differ = onnx
                .data
                .iter()
                .zip(&rust.data)
                .filter(|(a, b)| a != b)
                .count();
            // Two float32 evaluations of the same weights: at most a near tie may flip.
            assert!(
                differ * 10_000 <= w * h,
                "{w}x{h} flow {fw}x{fh}: {differ} pixels differ"
            );
            assert!(rust.data.contains(&0) && rust.data.contains(&3));
        }
    }

    #[test]
    fn ids_above_those_given_are_an_error() {
        let Ok(mut warp) = OnnxLabelWarp::new(&EngineConfig::default(), Provider::Cpu) else {
            panic!("ONNX Runtime is needed for this test (scripts/setup.sh)");
        };
        let map = LabelMap::from_vec(2, 1, vec![0, 3]).unwrap();
        let err = warp.set_reference(&map, 2).unwrap_err();
        assert!(err.contains("id 3"), "{err}");
        assert!(OnnxLabelWarp::new(&EngineConfig::default(), Provider::Cpu)
            .unwrap()
            .warp(&FlowField::zeros(2, 2))
            .is_err());
    }
}
