//! Model directories: `features.onnx`, `flow.onnx` and `model.json`, or the embedded default.

use crate::flow::labels;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
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

/// One output of `features.onnx`: `name` f32 [1, `channels`, H / `stride`, W / `stride`], which
/// `flow.onnx` takes as `reference_<name>` and `current_<name>`.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct FeatureMap {
    pub name: String,
    pub channels: usize,
    pub stride: usize,
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
    /// The outputs of the features graph (`model.json`'s optional `feature_maps`); without the
    /// field, one map `features` of `feature_channels` channels at `stride` (see
    /// [`Self::maps`]).
    #[serde(default)]
    pub feature_maps: Vec<FeatureMap>,
    /// Every input size (width, height) the model has graphs for, the default
    /// (`input_width` x `input_height`) among them; `model.json`'s optional `input_sizes`, a
    /// list of `[width, height]` pairs. Without that field, only the default.
    #[serde(default)]
    pub input_sizes: Vec<(usize, usize)>,
    /// The working size (longest side) the model runs at when none is asked for
    /// (`working-size` 0): `model.json`'s optional `default_working_size`, one of `input_sizes`,
    /// chosen by measurement for that model; without it, `input_width` x `input_height`.
    #[serde(default)]
    pub default_working_size: Option<usize>,
    /// Working sizes for small frames when none is asked for: `model.json`'s optional
    /// `working_size_by_frame`, `[largest frame side, working size]` pairs, smallest frame
    /// side first. A frame whose longest side is at most the first number runs at the second;
    /// larger frames at `default_working_size`. Measured per model: a size that wins by reach on
    /// large frames can lose precision on small ones.
    #[serde(default)]
    pub working_size_by_frame: Vec<(usize, usize)>,
    #[serde(default)]
    pub classes: BTreeMap<String, String>,
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

impl ModelSpec {
    /// The feature maps a frame is described by: `feature_maps`, or without it the one map
    /// `features` (`feature_channels` channels at `stride`).
    pub fn maps(&self) -> Vec<FeatureMap> {
        if self.feature_maps.is_empty() {
            vec![FeatureMap {
                name: "features".into(),
                channels: self.feature_channels,
                stride: self.stride,
            }]
        } else {
            self.feature_maps.clone()
        }
    }

    /// Each feature map's name and shape [1, channels, height, width] at an input size.
    pub fn map_shapes(&self, (width, height): (usize, usize)) -> Vec<(String, [usize; 4])> {
        self.maps()
            .into_iter()
            .map(|m| {
                let shape = [1, m.channels, height / m.stride, width / m.stride];
                (m.name, shape)
            })
            .collect()
    }

    /// `input_width` x `input_height`: the size of `features.onnx` and `flow.onnx`, used when
    /// no working size is asked for.
    pub fn default_size(&self) -> (usize, usize) {
        (self.input_width, self.input_height)
    }

    /// The input size used when no working size is asked for: `default_working_size`'s, else
    /// the default size.
    pub fn default_working_size(&self) -> (usize, usize) {
        self.default_working_size
            .and_then(|side| {
                self.input_sizes
                    .iter()
                    .copied()
                    .find(|&(w, h)| w.max(h) == side)
            })
            .unwrap_or(self.default_size())
    }

    /// The input size for a working size, the longest side in pixels; 0 is the model's default
    /// working size. The error lists the sizes the model takes.
    pub fn size_for(&self, working_size: usize) -> Result<(usize, usize), String> {
        if working_size == 0 {
            return Ok(self.default_working_size());
        }
        self.input_sizes
            .iter()
            .copied()
            .find(|&(w, h)| w.max(h) == working_size)
            .ok_or_else(|| {
                format!(
                    "working-size {working_size} is not a size model {} {} takes: it takes {} \
                     (the longest side in pixels; 0 for its default, {})",
                    self.name,
                    self.version,
                    self.sizes_text(),
                    self.default_working_size()
                        .0
                        .max(self.default_working_size().1)
                )
            })
    }

    /// The input size for a working size on frames whose longest side is `frame_side`: as
    /// [`Self::size_for`], except that working size 0 follows `working_size_by_frame` for
    /// frames small enough.
    pub fn size_for_frame(
        &self,
        working_size: usize,
        frame_side: Option<usize>,
    ) -> Result<(usize, usize), String> {
        if working_size != 0 {
            return self.size_for(working_size);
        }
        let rule = frame_side.and_then(|side| {
            self.working_size_by_frame
                .iter()
                .find(|&&(largest, _)| side <= largest)
        });
        match rule {
            Some(&(_, working_size)) => self.size_for(working_size),
            None => Ok(self.default_working_size()),
        }
    }

    /// The working sizes, smallest first, e.g. "128, 192, 256 (default), 320" ("256x192" for
    /// a size that is not square).
    pub fn sizes_text(&self) -> String {
        let mut sizes = self.input_sizes.clone();
        sizes.sort_by_key(|&(w, h)| (w.max(h), w, h));
        sizes
            .iter()
            .map(|&(w, h)| {
                let side = if w == h {
                    w.to_string()
                } else {
                    format!("{} ({w}x{h})", w.max(h))
                };
                if (w, h) == self.default_working_size() {
                    format!("{side} (default)")
                } else {
                    side
                }
            })
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The file names of the two graphs of an input size: `features.onnx` and `flow.onnx` for
    /// the default size, `features-WxH.onnx` and `flow-WxH.onnx` for the others.
    pub fn graph_files(&self, (width, height): (usize, usize)) -> (String, String) {
        if (width, height) == self.default_size() {
            ("features.onnx".into(), "flow.onnx".into())
        } else {
            (
                format!("features-{width}x{height}.onnx"),
                format!("flow-{width}x{height}.onnx"),
            )
        }
    }

    /// Class names indexed by label id, the contract's default names (background, vein,
    /// artery) and "class-N" for the ids the model leaves out.
    pub fn class_names(&self) -> Vec<String> {
        let ids: BTreeMap<usize, &String> = self
            .classes
            .iter()
            .filter_map(|(k, v)| k.parse::<usize>().ok().map(|k| (k, v)))
            .collect();
        // The contract's classes are always named, whatever the model lists.
        let max = ids
            .keys()
            .copied()
            .max()
            .unwrap_or(0)
            .max(labels::DEFAULT_NAMES.len() - 1);
        (0..=max)
            .map(|i| match ids.get(&i) {
                Some(name) => (*name).clone(),
                None => labels::default_name(i),
            })
            .collect()
    }
}

// DEFAULT_MODEL_DIR and DEFAULT_MODEL_FILES: models/default's graphs and model.json, by file
// name (written by build.rs).
#[cfg(pddflow_default_model)]
include!(concat!(env!("OUT_DIR"), "/default_model.rs"));

/// The two graphs of one input size.
#[derive(Clone)]
pub struct SizeGraphs {
    pub width: usize,
    pub height: usize,
    pub features: Arc<[u8]>,
    pub flow: Arc<[u8]>,
}

/// The bytes of a model, ready for ONNX Runtime: the graphs of every input size it declares.
#[derive(Clone)]
pub struct ModelFiles {
    pub spec: ModelSpec,
    /// One entry per `spec.input_sizes`, in the same order.
    pub graphs: Vec<SizeGraphs>,
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
    let declared_sizes = fields.contains_key("input_sizes");
    if let Some(sizes) = fields.get("input_sizes") {
        let pairs = sizes.as_array().is_some_and(|a| {
            !a.is_empty()
                && a.iter().all(|pair| {
                    pair.as_array().is_some_and(|p| {
                        p.len() == 2 && p.iter().all(|n| n.as_u64().is_some_and(|n| n <= 65536))
                    })
                })
        });
        if !pairs {
            return Err(invalid(format!(
                "field input_sizes must be a non-empty list of [width, height] pixel counts \
                 ([[128, 128], [256, 256]]), got {}",
                json_excerpt(sizes)
            )));
        }
    }
    if let Some(maps) = fields.get("feature_maps") {
        let valid = maps.as_array().is_some_and(|a| {
            !a.is_empty()
                && a.iter().all(|m| {
                    m.as_object().is_some_and(|m| {
                        m.len() == 3
                            && m.get("name").and_then(|n| n.as_str()).is_some_and(|n| {
                                !n.is_empty()
                                    && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                            })
                            && ["channels", "stride"].iter().all(|k| {
                                m.get(*k)
                                    .and_then(|n| n.as_u64())
                                    .is_some_and(|n| (1..=65536).contains(&n))
                            })
                    })
                })
        });
        if !valid {
            return Err(invalid(format!(
                "field feature_maps must be a non-empty list of {{\"name\", \"channels\", \
                 \"stride\"}} objects (a name of letters, digits and _; positive counts), got {}",
                json_excerpt(maps)
            )));
        }
    }
    if let Some(side) = fields.get("default_working_size") {
        if !side.as_u64().is_some_and(|n| (1..=65536).contains(&n)) {
            return Err(invalid(format!(
                "field default_working_size must be a pixel count (the longest side of one of \
                 input_sizes), got {}",
                json_excerpt(side)
            )));
        }
    }
    if let Some(rules) = fields.get("working_size_by_frame") {
        let pairs = rules.as_array().is_some_and(|a| {
            a.iter().all(|pair| {
                pair.as_array().is_some_and(|p| {
                    p.len() == 2
                        && p.iter()
                            .all(|n| n.as_u64().is_some_and(|n| (1..=65536).contains(&n)))
                })
            })
        });
        if !pairs {
            return Err(invalid(format!(
                "field working_size_by_frame must be a list of [largest frame side, working \
                 size] pixel counts ([[256, 256]]), got {}",
                json_excerpt(rules)
            )));
        }
    }
    let mut spec: ModelSpec = serde_json::from_value(value)
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
    if !declared_sizes {
        spec.input_sizes = vec![spec.default_size()];
    }
    let maps = spec.maps();
    if let Some((i, map)) = maps
        .iter()
        .enumerate()
        .find(|(i, m)| maps[..*i].iter().any(|other| other.name == m.name))
        .map(|(i, m)| (i, m.name.clone()))
    {
        return Err(invalid(format!(
            "feature_maps entry {i} repeats the name {map}; each map is one input of flow.onnx"
        )));
    }
    for (i, &(w, h)) in spec.input_sizes.iter().enumerate() {
        if w == 0 || h == 0 || !w.is_multiple_of(spec.stride) || !h.is_multiple_of(spec.stride) {
            return Err(invalid(format!(
                "input_sizes entry {w}x{h} must be positive multiples of the stride {}",
                spec.stride
            )));
        }
        if let Some(map) = maps
            .iter()
            .find(|m| !w.is_multiple_of(m.stride) || !h.is_multiple_of(m.stride))
        {
            return Err(invalid(format!(
                "input size {w}x{h} is not a multiple of feature map {}'s stride {}",
                map.name, map.stride
            )));
        }
        if let Some(&(w2, h2)) = spec.input_sizes[..i]
            .iter()
            .find(|&&(w2, h2)| w2.max(h2) == w.max(h))
        {
            return Err(invalid(format!(
                "input_sizes entries {w2}x{h2} and {w}x{h} have the same longest side {}; a \
                 working size (the longest side) must name one size",
                w.max(h)
            )));
        }
    }
    if !spec.input_sizes.contains(&spec.default_size()) {
        return Err(invalid(format!(
            "input_sizes must include the default size {}x{} (input_width x input_height, the \
             size of features.onnx and flow.onnx)",
            spec.input_width, spec.input_height
        )));
    }
    if let Some(side) = spec.default_working_size {
        if !spec.input_sizes.iter().any(|&(w, h)| w.max(h) == side) {
            return Err(invalid(format!(
                "default_working_size {side} is not the longest side of one of input_sizes ({})",
                spec.sizes_text()
            )));
        }
    }
    for (i, &(largest, side)) in spec.working_size_by_frame.iter().enumerate() {
        if !spec.input_sizes.iter().any(|&(w, h)| w.max(h) == side) {
            return Err(invalid(format!(
                "working_size_by_frame: working size {side} (for frames up to {largest} px) is \
                 not the longest side of one of input_sizes ({})",
                spec.sizes_text()
            )));
        }
        if i > 0 && spec.working_size_by_frame[i - 1].0 >= largest {
            return Err(invalid(format!(
                "working_size_by_frame must list its frame sides in increasing order, got {} \
                 before {largest}",
                spec.working_size_by_frame[i - 1].0
            )));
        }
    }
    if let Some(key) = spec.classes.keys().find(|k| k.parse::<u8>().is_err()) {
        return Err(invalid(format!(
            "classes key {key:?} is not a class id from 0 to 255 (label maps have 8-bit ids)"
        )));
    }
    Ok(spec)
}

impl ModelFiles {
    /// The graphs of every size `spec` declares, read by file name.
    fn load(
        spec: ModelSpec,
        origin: String,
        read: impl Fn(&str) -> Result<Vec<u8>, ModelError>,
    ) -> Result<Self, ModelError> {
        let graphs = spec
            .input_sizes
            .iter()
            .map(|&(width, height)| {
                let (features, flow) = spec.graph_files((width, height));
                Ok(SizeGraphs {
                    width,
                    height,
                    features: read(&features)?.into(),
                    flow: read(&flow)?.into(),
                })
            })
            .collect::<Result<Vec<_>, ModelError>>()?;
        Ok(Self {
            spec,
            graphs,
            origin,
        })
    }

    /// The graphs of an input size the model declares.
    pub fn graphs_of(&self, size: (usize, usize)) -> Option<&SizeGraphs> {
        self.graphs.iter().find(|g| (g.width, g.height) == size)
    }

    /// Reads a model directory: `model.json` and the graphs of every size it declares.
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
        let spec = parse_spec(&read("model.json")?, &origin)?;
        let sizes = spec.input_sizes.len();
        Self::load(spec, origin.clone(), |name| {
            read(name).map_err(|e| match e {
                // A missing graph of an extra size: say why it is looked for.
                ModelError::Missing(m) if sizes > 1 => ModelError::Missing(format!(
                    "{m} (model.json's input_sizes lists its size; each size other than \
                     input_width x input_height has features-WxH.onnx and flow-WxH.onnx)"
                )),
                e => e,
            })
        })
    }

    /// The model compiled into the plugin.
    pub fn embedded() -> Result<Self, ModelError> {
        #[cfg(pddflow_default_model)]
        {
            let read = |name: &str| {
                DEFAULT_MODEL_FILES
                    .iter()
                    .find(|(file, _)| *file == name)
                    .map(|(_, bytes)| bytes.to_vec())
                    .ok_or_else(|| {
                        ModelError::Missing(format!(
                            "the built-in model has no {name}; rebuild the plugin with it in \
                             {DEFAULT_MODEL_DIR}"
                        ))
                    })
            };
            let spec = parse_spec(&read("model.json")?, "built-in model")?;
            Self::load(
                spec,
                format!("built-in model (from {DEFAULT_MODEL_DIR})"),
                read,
            )
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
        assert_eq!(
            spec.map_shapes(spec.default_size()),
            vec![("features".to_string(), [1, 8, 8, 16])],
            "without feature_maps, one map of feature_channels at the stride"
        );
        assert_eq!(spec.class_names(), vec!["background", "vein", "artery"]);
        assert!(spec.extra.contains_key("other"));
    }

    #[test]
    fn feature_maps_give_each_output_its_shape() {
        let with_maps = |maps: &str| {
            parse_spec(
                format!(
                    r#"{{"name":"t","version":"1","input_width":64,"input_height":32,"stride":8,
                    "feature_channels":25,"feature_maps":{maps}}}"#
                )
                .as_bytes(),
                "dir",
            )
        };
        let spec = with_maps(
            r#"[{"name":"coarse","channels":16,"stride":8},{"name":"fine","channels":8,"stride":4},
                {"name":"half","channels":1,"stride":2}]"#,
        )
        .unwrap();
        assert_eq!(
            spec.map_shapes((64, 32)),
            vec![
                ("coarse".to_string(), [1, 16, 4, 8]),
                ("fine".to_string(), [1, 8, 8, 16]),
                ("half".to_string(), [1, 1, 16, 32]),
            ]
        );
        let error = |maps: &str| match with_maps(maps) {
            Err(ModelError::Invalid(e)) => e,
            other => panic!("expected an invalid-description error for {maps}, got {other:?}"),
        };
        for bad in [
            "[]",
            r#"[{"name":"a b","channels":1,"stride":8}]"#,
            r#"[{"name":"a","channels":0,"stride":8}]"#,
            r#"[{"name":"a","channels":1}]"#,
            r#"{"name":"a","channels":1,"stride":8}"#,
        ] {
            assert!(error(bad).contains("field feature_maps must be"), "{bad}");
        }
        let e =
            error(r#"[{"name":"a","channels":1,"stride":8},{"name":"a","channels":2,"stride":4}]"#);
        assert!(e.contains("repeats the name a"), "{e}");
        let e = error(r#"[{"name":"a","channels":1,"stride":64}]"#);
        assert!(
            e.contains("64x32 is not a multiple of feature map a's stride 64"),
            "{e}"
        );
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

    const SIZED: &str = r#"{"name":"t","version":"1","input_width":64,"input_height":64,
        "stride":8,"feature_channels":8"#;

    fn sized(input_sizes: &str) -> Result<ModelSpec, ModelError> {
        parse_spec(
            format!("{SIZED},\"input_sizes\":{input_sizes}}}").as_bytes(),
            "dir",
        )
    }

    #[test]
    fn default_working_size_is_what_zero_means() {
        let spec = parse_spec(
            format!("{SIZED},\"input_sizes\":[[32,32],[64,64]],\"default_working_size\":32}}")
                .as_bytes(),
            "dir",
        )
        .unwrap();
        assert_eq!(spec.size_for(0).unwrap(), (32, 32));
        assert_eq!(spec.size_for(64).unwrap(), (64, 64));
        assert_eq!(
            spec.default_size(),
            (64, 64),
            "the graphs without a size suffix"
        );
        assert!(spec.sizes_text().contains("32 (default)"));
        for (value, wanted) in [
            ("48", "default_working_size 48 is not the longest side"),
            ("\"32\"", "field default_working_size must be a pixel count"),
            ("0", "field default_working_size must be a pixel count"),
        ] {
            let err = parse_spec(
                format!(
                    "{SIZED},\"input_sizes\":[[32,32],[64,64]],\"default_working_size\":{value}}}"
                )
                .as_bytes(),
                "dir",
            )
            .unwrap_err()
            .to_string();
            assert!(err.contains(wanted), "{value}: {err}");
        }
    }

    #[test]
    fn small_frames_follow_working_size_by_frame_when_no_size_is_asked_for() {
        let with_rules = |rules: &str| {
            parse_spec(
                format!(
                    "{SIZED},\"input_sizes\":[[32,32],[64,64],[96,96]],\"default_working_size\":32,\
                     \"working_size_by_frame\":{rules}}}"
                )
                .as_bytes(),
                "dir",
            )
        };
        let spec = with_rules("[[64,96],[128,64]]").unwrap();
        // At most 64 px: 96; up to 128: 64; larger frames and an unknown frame: the default.
        assert_eq!(spec.size_for_frame(0, Some(40)), Ok((96, 96)));
        assert_eq!(spec.size_for_frame(0, Some(64)), Ok((96, 96)));
        assert_eq!(spec.size_for_frame(0, Some(65)), Ok((64, 64)));
        assert_eq!(spec.size_for_frame(0, Some(128)), Ok((64, 64)));
        assert_eq!(spec.size_for_frame(0, Some(129)), Ok((32, 32)));
        assert_eq!(spec.size_for_frame(0, None), Ok((32, 32)));
        // A size asked for is kept whatever the frame.
        assert_eq!(spec.size_for_frame(32, Some(40)), Ok((32, 32)));
        assert!(spec.size_for_frame(48, Some(40)).is_err());
        // Without the field, every frame runs at the default.
        let plain = with_rules("[]").unwrap();
        assert_eq!(plain.size_for_frame(0, Some(40)), Ok((32, 32)));
        for (rules, wanted) in [
            (
                "[[64,48]]",
                "working size 48 (for frames up to 64 px) is not the longest side",
            ),
            (
                "[[128,64],[64,96]]",
                "in increasing order, got 128 before 64",
            ),
            ("[[64]]", "field working_size_by_frame must be a list"),
            ("[[0,64]]", "field working_size_by_frame must be a list"),
            ("{\"64\":96}", "field working_size_by_frame must be a list"),
        ] {
            let err = with_rules(rules).unwrap_err().to_string();
            assert!(err.contains(wanted), "{rules}: {err}");
        }
    }

    #[test]
    fn without_input_sizes_only_the_default_size_is_taken() {
        let spec = parse_spec(format!("{SIZED}}}").as_bytes(), "x").unwrap();
        assert_eq!(spec.input_sizes, vec![(64, 64)]);
        assert_eq!(spec.size_for(0), Ok((64, 64)));
        assert_eq!(spec.size_for(64), Ok((64, 64)));
        let err = spec.size_for(32).unwrap_err();
        assert!(
            err.contains("working-size 32") && err.contains("it takes 64 (default)"),
            "{err}"
        );
        assert_eq!(
            spec.graph_files((64, 64)),
            ("features.onnx".into(), "flow.onnx".into())
        );
    }

    #[test]
    fn input_sizes_are_chosen_by_their_longest_side() {
        let spec = sized("[[128, 96], [32, 32], [64, 64]]").unwrap();
        assert_eq!(spec.size_for(0), Ok((64, 64)), "0: the default size");
        assert_eq!(spec.size_for(32), Ok((32, 32)));
        assert_eq!(spec.size_for(128), Ok((128, 96)));
        assert_eq!(
            spec.map_shapes((128, 96)),
            vec![("features".to_string(), [1, 8, 12, 16])]
        );
        let err = spec.size_for(96).unwrap_err();
        assert!(
            err.contains("working-size 96")
                && err.contains("32, 64 (default), 128 (128x96)")
                && err.contains("0 for its default, 64"),
            "{err}"
        );
        assert_eq!(
            spec.graph_files((128, 96)),
            ("features-128x96.onnx".into(), "flow-128x96.onnx".into())
        );
    }

    #[test]
    fn bad_input_sizes_are_explained() {
        let invalid = |json: &str| match sized(json) {
            Err(ModelError::Invalid(e)) => e,
            other => panic!("{json}: expected an invalid-description error, got {other:?}"),
        };
        let err = invalid("[[32, 32]]");
        assert!(err.contains("must include the default size 64x64"), "{err}");
        let err = invalid("[[64, 64], [36, 36]]");
        assert!(
            err.contains("36x36 must be positive multiples of the stride 8"),
            "{err}"
        );
        let err = invalid("[[64, 64], [64, 32]]");
        assert!(err.contains("the same longest side 64"), "{err}");
        for bad in [
            "[]",
            "[64, 64]",
            "[[64]]",
            "[[64, \"64\"]]",
            "{\"64\": 64}",
            "[[0, -8]]",
        ] {
            let err = invalid(bad);
            assert!(
                err.contains("input_sizes must be a non-empty list of [width, height]"),
                "{bad}: {err}"
            );
        }
        let err = invalid("[[0, 64], [64, 64]]");
        assert!(err.contains("0x64 must be positive"), "{err}");
    }

    #[cfg(pddflow_default_model)]
    #[test]
    fn the_built_in_model_has_the_graphs_of_every_size_it_declares() {
        let model = ModelFiles::embedded().unwrap();
        assert!(
            model.spec.input_sizes.len() > 1,
            "{:?}",
            model.spec.input_sizes
        );
        assert_eq!(model.graphs.len(), model.spec.input_sizes.len());
        for &size in &model.spec.input_sizes {
            let graphs = model.graphs_of(size).unwrap();
            assert!(!graphs.features.is_empty() && !graphs.flow.is_empty());
        }
    }

    /// The sizes measured for the built-in model (models/README.md, "Small frames run at 256"):
    /// 256 on the simulated (128x144) and phantom (256x256) frames, 128 on larger ones.
    #[cfg(pddflow_default_model)]
    #[test]
    fn the_built_in_model_runs_small_frames_at_256_and_larger_ones_at_128() {
        let spec = ModelFiles::embedded().unwrap().spec;
        for (frame_side, size) in [(144, 256), (256, 256), (257, 128), (749, 128), (1920, 128)] {
            assert_eq!(
                spec.size_for_frame(0, Some(frame_side)),
                Ok((size, size)),
                "{frame_side} px frames"
            );
        }
    }

    #[test]
    fn a_missing_graph_of_a_declared_size_is_named() {
        let dir = std::env::temp_dir().join(format!("pddflow-sizes-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("model.json"),
            format!("{SIZED},\"input_sizes\":[[64,64],[32,32]]}}"),
        )
        .unwrap();
        for f in ["features.onnx", "flow.onnx", "features-32x32.onnx"] {
            std::fs::write(dir.join(f), b"x").unwrap();
        }
        let result = ModelFiles::from_dir(&dir);
        std::fs::remove_dir_all(&dir).unwrap();
        match result {
            Err(ModelError::Missing(e)) => {
                assert!(
                    e.contains("flow-32x32.onnx") && e.contains("input_sizes"),
                    "{e}"
                )
            }
            other => panic!("expected a missing-file error, got {:?}", other.err()),
        }
    }

    #[test]
    fn missing_directory_says_what_to_do() {
        match ModelFiles::from_dir(Path::new("/nonexistent/model")) {
            Err(ModelError::Missing(err)) => assert!(err.contains("model-location"), "{err}"),
            other => panic!("expected a missing-model error, got {:?}", other.err()),
        }
    }
}
