//! Model directories: `features.onnx`, `flow.onnx` and `model.json`, or the embedded default.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;

/// What `model.json` says about a model. Fields beyond these are kept in `extra`.
#[derive(Clone, Debug, Deserialize)]
pub struct ModelSpec {
    pub name: String,
    pub version: String,
    pub input_width: usize,
    pub input_height: usize,
    pub stride: usize,
    pub feature_channels: usize,
    #[serde(default)]
    pub classes: BTreeMap<String, String>,
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

impl ModelSpec {
    pub fn feature_size(&self) -> (usize, usize) {
        (
            self.input_width / self.stride,
            self.input_height / self.stride,
        )
    }

    /// Class names indexed by label id, "background" for id 0 and "class-N" for gaps.
    pub fn class_names(&self) -> Vec<String> {
        let ids: BTreeMap<usize, &String> = self
            .classes
            .iter()
            .filter_map(|(k, v)| k.parse::<usize>().ok().map(|k| (k, v)))
            .collect();
        let max = ids.keys().copied().max().unwrap_or(0).max(2);
        (0..=max)
            .map(|i| match (i, ids.get(&i)) {
                (_, Some(name)) => (*name).clone(),
                (0, None) => "background".into(),
                (1, None) => "vein".into(),
                (2, None) => "artery".into(),
                (i, None) => format!("class-{i}"),
            })
            .collect()
    }
}

/// The bytes of a model, ready for ONNX Runtime.
pub struct ModelFiles {
    pub spec: ModelSpec,
    pub features: Vec<u8>,
    pub flow: Vec<u8>,
    /// Where it came from, for messages.
    pub origin: String,
}

fn parse_spec(json: &[u8], origin: &str) -> Result<ModelSpec, String> {
    let spec: ModelSpec = serde_json::from_slice(json)
        .map_err(|e| format!("{origin}/model.json is not a valid model description: {e}"))?;
    if spec.input_width == 0 || spec.input_height == 0 || spec.stride == 0 {
        return Err(format!(
            "{origin}/model.json: input size and stride must be positive"
        ));
    }
    if !spec.input_width.is_multiple_of(spec.stride)
        || !spec.input_height.is_multiple_of(spec.stride)
    {
        return Err(format!(
            "{origin}/model.json: input size must be a multiple of the stride"
        ));
    }
    Ok(spec)
}

impl ModelFiles {
    /// Reads a model directory.
    pub fn from_dir(dir: &Path) -> Result<Self, String> {
        let origin = dir.display().to_string();
        if !dir.is_dir() {
            return Err(format!(
                "model directory {origin} does not exist; set model-location to a directory with \
                 features.onnx, flow.onnx and model.json, or leave it empty for the built-in model"
            ));
        }
        let read = |name: &str| {
            std::fs::read(dir.join(name)).map_err(|e| format!("cannot read {origin}/{name}: {e}"))
        };
        Ok(Self {
            spec: parse_spec(&read("model.json")?, &origin)?,
            features: read("features.onnx")?,
            flow: read("flow.onnx")?,
            origin,
        })
    }

    /// The model compiled into the plugin.
    pub fn embedded() -> Result<Self, String> {
        #[cfg(pddflow_default_model)]
        {
            const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/models/default");
            Ok(Self {
                spec: parse_spec(
                    include_bytes!(concat!(
                        env!("CARGO_MANIFEST_DIR"),
                        "/models/default/model.json"
                    )),
                    "built-in model",
                )?,
                features: include_bytes!(concat!(
                    env!("CARGO_MANIFEST_DIR"),
                    "/models/default/features.onnx"
                ))
                .to_vec(),
                flow: include_bytes!(concat!(
                    env!("CARGO_MANIFEST_DIR"),
                    "/models/default/flow.onnx"
                ))
                .to_vec(),
                origin: format!("built-in model (from {DIR})"),
            })
        }
        #[cfg(not(pddflow_default_model))]
        {
            Err(
                "this build has no built-in model (models/default was missing when it was \
                 compiled); set model-location to a model directory"
                    .into(),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_parses_and_names_classes() {
        let spec = parse_spec(
            br#"{"name":"t","version":"1","input_width":64,"input_height":32,"stride":4,
                "feature_channels":8,"classes":{"0":"background","2":"artery"},"other":1}"#,
            "x",
        )
        .unwrap();
        assert_eq!(spec.feature_size(), (16, 8));
        assert_eq!(spec.class_names(), vec!["background", "vein", "artery"]);
        assert!(spec.extra.contains_key("other"));
    }

    #[test]
    fn bad_specs_are_explained() {
        let err = parse_spec(b"{", "dir").unwrap_err();
        assert!(err.contains("dir/model.json"), "{err}");
        let err = parse_spec(
            br#"{"name":"t","version":"1","input_width":30,"input_height":32,"stride":4,"feature_channels":8}"#,
            "dir",
        )
        .unwrap_err();
        assert!(err.contains("multiple of the stride"), "{err}");
    }

    #[test]
    fn missing_directory_says_what_to_do() {
        let err = ModelFiles::from_dir(Path::new("/nonexistent/model"))
            .err()
            .unwrap();
        assert!(err.contains("model-location"), "{err}");
    }
}
