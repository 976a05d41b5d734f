//! Model directories: `features.onnx`, `flow.onnx` and `model.json`, or the embedded default.

use crate::flow::mask_file::unnamed_class_name;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;
use thiserror::Error;

/// Why a model could not be read. The element reports `Missing` as a resource error and
/// `Invalid` as a settings error.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum ModelError {
    /// The directory or one of its files is missing or unreadable (or no model is built in).
    #[error("{0}")]
    Missing(String),
    /// `model.json` is not a valid model description.
    #[error("{0}")]
    Invalid(String),
}

impl From<ModelError> for String {
    fn from(e: ModelError) -> Self {
        e.to_string()
    }
}

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
                (i, None) => unnamed_class_name(i),
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

/// A JSON value for a message, cut short.
fn json_excerpt(v: &serde_json::Value) -> String {
    let text = v.to_string();
    match text.char_indices().nth(60) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text,
    }
}

/// Parses and checks `model.json`; every error names the file and what is wrong.
pub fn parse_spec(json: &[u8], origin: &str) -> Result<ModelSpec, ModelError> {
    let invalid = |what: String| ModelError::Invalid(format!("{origin}/model.json: {what}"));
    let value: serde_json::Value =
        serde_json::from_slice(json).map_err(|e| invalid(format!("not valid JSON: {e}")))?;
    let fields = value
        .as_object()
        .ok_or_else(|| invalid("expected a JSON object with the model's description".into()))?;
    // Field and, for a number, what it counts (None: a string).
    const REQUIRED: [(&str, Option<&str>); 6] = [
        ("name", None),
        ("version", None),
        ("input_width", Some("a pixel count")),
        ("input_height", Some("a pixel count")),
        ("stride", Some("a pixel count")),
        ("feature_channels", Some("a channel count")),
    ];
    for (field, count) in REQUIRED {
        let kind = count.unwrap_or("a string");
        let valid = |v: &serde_json::Value| match count {
            Some(_) => v.as_u64().is_some_and(|n| n <= u32::MAX as u64),
            None => v.is_string(),
        };
        match fields.get(field) {
            None => return Err(invalid(format!("field {field} ({kind}) is missing"))),
            Some(v) if !valid(v) => {
                return Err(invalid(format!(
                    "field {field} must be {kind}, got {}",
                    json_excerpt(v)
                )))
            }
            Some(_) => {}
        }
    }
    if let Some(classes) = fields.get("classes") {
        let names_only = classes
            .as_object()
            .is_some_and(|m| m.values().all(|v| v.is_string()));
        if !names_only {
            return Err(invalid(format!(
                "field classes must be an object of class names by id ({{\"1\": \"vein\"}}), \
                 got {}",
                json_excerpt(classes)
            )));
        }
    }
    let spec: ModelSpec = serde_json::from_value(value)
        .map_err(|e| invalid(format!("not a valid model description: {e}")))?;
    if spec.input_width == 0 || spec.input_height == 0 || spec.stride == 0 {
        return Err(invalid(format!(
            "input size and stride must be positive, got input_width {}, input_height {}, \
             stride {}",
            spec.input_width, spec.input_height, spec.stride
        )));
    }
    if !spec.input_width.is_multiple_of(spec.stride)
        || !spec.input_height.is_multiple_of(spec.stride)
    {
        return Err(invalid(format!(
            "input size {}x{} must be a multiple of the stride {}",
            spec.input_width, spec.input_height, spec.stride
        )));
    }
    if let Some(key) = spec.classes.keys().find(|k| k.parse::<u8>().is_err()) {
        return Err(invalid(format!(
            "classes key {key:?} is not a class id from 0 to 255 (label maps have 8-bit ids)"
        )));
    }
    Ok(spec)
}

impl ModelFiles {
    /// Reads a model directory.
    pub fn from_dir(dir: &Path) -> Result<Self, ModelError> {
        let origin = dir.display().to_string();
        if !dir.is_dir() {
            return Err(ModelError::Missing(format!(
                "model directory {origin} does not exist; set model-location to a directory with \
                 features.onnx, flow.onnx and model.json, or leave it empty for the built-in model"
            )));
        }
        let read = |name: &str| {
            std::fs::read(dir.join(name))
                .map_err(|e| ModelError::Missing(format!("cannot read {origin}/{name}: {e}")))
        };
        Ok(Self {
            spec: parse_spec(&read("model.json")?, &origin)?,
            features: read("features.onnx")?,
            flow: read("flow.onnx")?,
            origin,
        })
    }

    /// The model compiled into the plugin.
    pub fn embedded() -> Result<Self, ModelError> {
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
            Err(ModelError::Missing(
                "this build has no built-in model (models/default was missing when it was \
                 compiled); set model-location to a model directory"
                    .into(),
            ))
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
        let invalid = |json: &[u8]| match parse_spec(json, "dir") {
            Err(ModelError::Invalid(e)) => e,
            other => panic!("expected an invalid-description error, got {other:?}"),
        };
        let err = invalid(b"{");
        assert!(err.contains("dir/model.json"), "{err}");
        let err = invalid(
            br#"{"name":"t","version":"1","input_width":30,"input_height":32,"stride":4,"feature_channels":8}"#,
        );
        assert!(err.contains("multiple of the stride 4"), "{err}");
        let err = invalid(
            br#"{"name":"t","version":"1","input_width":32,"input_height":32,"stride":4,"feature_channels":8,"classes":{"4000000000":"x"}}"#,
        );
        assert!(err.contains("\"4000000000\" is not a class id"), "{err}");
        let err = invalid(br#"{"name":"t","version":"1","input_width":"64"}"#);
        assert!(
            err.contains("field input_width must be a pixel count, got \"64\""),
            "{err}"
        );
        let err = invalid(br#"{"name":"t","version":"1","input_width":64,"input_height":64}"#);
        assert!(
            err.contains("field stride (a pixel count) is missing"),
            "{err}"
        );
        let err = invalid(b"[1, 2]");
        assert!(err.contains("expected a JSON object"), "{err}");
    }

    #[test]
    fn missing_directory_says_what_to_do() {
        match ModelFiles::from_dir(Path::new("/nonexistent/model")) {
            Err(ModelError::Missing(err)) => assert!(err.contains("model-location"), "{err}"),
            other => panic!("expected a missing-model error, got {:?}", other.err()),
        }
    }
}
