//! ONNX Runtime engine: the process-wide environment, the two sessions (features, flow) and
//! execution providers. The reference feature cache lives in [`crate::flow::tracker`], which
//! drives an [`Engine`] through the [`FlowBackend`] trait.

pub mod label_warp;
pub mod model;
pub mod runtime;

use crate::flow::{tracker::FlowBackend, FlowField};
use model::{ModelFiles, ModelSpec, SizeGraphs};
use ort::ep::{self, ExecutionProvider};
use ort::session::{builder::GraphOptimizationLevel, Session};
use ort::value::TensorRef;
use std::sync::Arc;

/// Which execution provider the user asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ProviderRequest {
    #[default]
    Cpu,
    /// CUDA, falling back to CPU with a warning (or failing, when strict).
    Cuda,
    /// CUDA when the library and machine support it, else CPU quietly.
    Auto,
}

impl ProviderRequest {
    /// Every request, in the order of [`ProviderRequest::name`]'s names.
    pub const ALL: [ProviderRequest; 3] = [Self::Cpu, Self::Cuda, Self::Auto];

    /// The request's name: the element's `execution-provider` nick, the tools'
    /// `--execution-provider`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Cpu => "cpu",
            Self::Cuda => "cuda",
            Self::Auto => "auto",
        }
    }
}

impl std::str::FromStr for ProviderRequest {
    type Err = String;

    fn from_str(name: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|request| request.name() == name)
            .ok_or_else(|| format!("{name}: use cpu, cuda or auto"))
    }
}

/// The provider that really runs the model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Provider {
    Cpu,
    Cuda,
}

impl Provider {
    pub fn name(self) -> &'static str {
        match self {
            Provider::Cpu => "cpu",
            Provider::Cuda => "cuda",
        }
    }
}

#[derive(Clone, Debug)]
pub struct EngineConfig {
    pub provider: ProviderRequest,
    /// Fail instead of falling back to CPU when CUDA was asked for and cannot be used (see
    /// [`EngineConfig::cuda_required`]).
    pub strict_provider: bool,
    pub device_id: i32,
    /// Intra-op threads per session; 0 lets ONNX Runtime choose.
    pub threads: usize,
    /// The input size to run at, as its longest side in pixels ([`ModelSpec::size_for`]); 0:
    /// the model's default size.
    pub working_size: usize,
}

impl EngineConfig {
    /// The one rule for `strict-provider`: it applies to an explicit CUDA request only. `auto`
    /// means "CUDA when it can be used, else CPU", so strict has no effect there, nor with `cpu`.
    pub fn cuda_required(&self) -> bool {
        self.strict_provider && self.provider == ProviderRequest::Cuda
    }
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            provider: ProviderRequest::Cpu,
            strict_provider: false,
            device_id: 0,
            threads: 0,
            working_size: 0,
        }
    }
}

/// Cached features of one frame, one buffer per feature map of the model in
/// [`ModelSpec::maps`] order (cheap to clone).
pub type Features = Arc<[Vec<f32>]>;

/// The two sessions of one input size.
struct Sessions {
    size: (usize, usize),
    features: Session,
    flow: Session,
    /// Each feature map's name and shape at this size.
    maps: Vec<(String, [usize; 4])>,
    /// The flow graph's input names of each map: `reference_<name>`, `current_<name>`.
    flow_inputs: Vec<(String, String)>,
}

/// The two sessions of a model at its working size and what they have done. Sessions of other
/// sizes are loaded when the working size changes to them and kept.
pub struct Engine {
    model: ModelFiles,
    config: EngineConfig,
    /// The sessions in use first; those of sizes used before after it.
    sessions: Vec<Sessions>,
    provider: Provider,
    /// The longest side of the frames, once known: with working size 0 it can pick the size
    /// ([`ModelSpec::size_for_frame`]).
    frame_side: Option<usize>,
    /// Why the provider differs from the request, if it does.
    pub fallback_reason: Option<String>,
    pub feature_runs: u64,
    pub flow_runs: u64,
    /// Wall time spent in the two graphs (inputs in, outputs out), summed: what a frame costs
    /// beyond it is the element's own work.
    pub model_time: std::time::Duration,
}

fn tensor_dims(outlet: &ort::value::Outlet) -> Option<Vec<i64>> {
    outlet.dtype().tensor_shape().map(|s| s.to_vec())
}

/// Checks that a session's inputs and outputs are exactly the contract's names and shapes.
fn check_io(
    session: &Session,
    file: &str,
    inputs: &[(&str, Vec<i64>)],
    outputs: &[(&str, Vec<i64>)],
) -> Result<(), String> {
    let describe = |list: &[(&str, Vec<i64>)]| {
        list.iter()
            .map(|(n, s)| format!("{n} {s:?}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let found = |outlets: &[ort::value::Outlet]| {
        outlets
            .iter()
            .map(|o| format!("{} {:?}", o.name(), tensor_dims(o).unwrap_or_default()))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let matches = |outlets: &[ort::value::Outlet], want: &[(&str, Vec<i64>)]| {
        outlets.len() == want.len()
            && want.iter().all(|(name, shape)| {
                outlets.iter().any(|o| {
                    o.name() == *name
                        && tensor_dims(o).is_some_and(|d| {
                            // A symbolic dimension (-1) is accepted; fixed ones must agree.
                            d.len() == shape.len()
                                && d.iter().zip(shape).all(|(a, b)| *a == -1 || a == b)
                        })
                })
            })
    };
    if !matches(session.inputs(), inputs) || !matches(session.outputs(), outputs) {
        return Err(format!(
            "{file} does not follow the model contract: expected inputs [{}] and outputs [{}], found \
             inputs [{}] and outputs [{}]",
            describe(inputs),
            describe(outputs),
            found(session.inputs()),
            found(session.outputs())
        ));
    }
    Ok(())
}

fn build_session(
    environment: &ort::environment::Environment,
    bytes: &[u8],
    file: &str,
    config: &EngineConfig,
    use_cuda: bool,
) -> Result<Session, String> {
    let err = |e: &dyn std::fmt::Display| format!("{file}: {e}");
    let mut builder = Session::builder(environment)
        .map_err(|e| err(&e))?
        .with_optimization_level(GraphOptimizationLevel::Level3)
        .map_err(|e| err(&e))?
        .with_inter_threads(1)
        .map_err(|e| err(&e))?;
    if config.threads > 0 {
        builder = builder
            .with_intra_threads(config.threads)
            .map_err(|e| err(&e))?;
    }
    if use_cuda {
        builder = builder
            .with_execution_providers([ep::CUDA::default()
                .with_device_id(config.device_id)
                .build()
                .error_on_failure()])
            .map_err(|e| format!("the CUDA execution provider could not be used: {e}"))?;
    }
    builder.commit_from_memory(bytes).map_err(|e| {
        format!("{file} could not be loaded by ONNX Runtime (corrupt or not an ONNX model?): {e}")
    })
}

/// Loads the two graphs of one size on the CPU or CUDA, checked against the contract.
fn load_sessions(
    environment: &ort::environment::Environment,
    model: &ModelFiles,
    graphs: &SizeGraphs,
    config: &EngineConfig,
    use_cuda: bool,
) -> Result<Sessions, String> {
    let spec = &model.spec;
    let (features_file, flow_file) = spec.graph_files((graphs.width, graphs.height));
    let features_file = format!("{}/{features_file}", model.origin);
    let flow_file = format!("{}/{flow_file}", model.origin);
    let features = build_session(
        environment,
        &graphs.features,
        &features_file,
        config,
        use_cuda,
    )?;
    let flow = build_session(environment, &graphs.flow, &flow_file, config, use_cuda)?;
    let (h, w) = (graphs.height as i64, graphs.width as i64);
    let maps = spec.map_shapes((graphs.width, graphs.height));
    let flow_inputs: Vec<(String, String)> = maps
        .iter()
        .map(|(name, _)| (format!("reference_{name}"), format!("current_{name}")))
        .collect();
    let dims = |shape: &[usize; 4]| shape.iter().map(|&d| d as i64).collect::<Vec<_>>();
    let feature_outputs: Vec<(&str, Vec<i64>)> = maps
        .iter()
        .map(|(name, shape)| (name.as_str(), dims(shape)))
        .collect();
    let flow_in: Vec<(&str, Vec<i64>)> = maps
        .iter()
        .zip(&flow_inputs)
        .flat_map(|((_, shape), (reference, current))| {
            [
                (reference.as_str(), dims(shape)),
                (current.as_str(), dims(shape)),
            ]
        })
        .collect();
    check_io(
        &features,
        &features_file,
        &[("image", vec![1, 1, h, w])],
        &feature_outputs,
    )?;
    check_io(&flow, &flow_file, &flow_in, &[("flow", vec![1, 2, h, w])])?;
    Ok(Sessions {
        size: (graphs.width, graphs.height),
        features,
        flow,
        maps,
        flow_inputs,
    })
}

/// The graphs of one of the model's input sizes.
fn graphs_of(model: &ModelFiles, size: (usize, usize)) -> Result<&SizeGraphs, String> {
    model
        .graphs_of(size)
        .ok_or_else(|| format!("{}: no graphs for {}x{}", model.origin, size.0, size.1))
}

/// Why the CUDA execution provider cannot be used with this library, `None` when it can.
fn cuda_unavailable(runtime: &runtime::Runtime) -> Option<String> {
    match ep::CUDA::is_available() {
        Ok(true) => None,
        Ok(false) => Some(format!(
            "the ONNX Runtime library {} was built without the CUDA execution provider; use \
             the library of the onnxruntime-gpu package (ORT_DYLIB_PATH) for CUDA",
            runtime.library.display()
        )),
        Err(e) => Some(format!("could not query the CUDA execution provider: {e}")),
    }
}

/// Loads the sessions on CUDA when `config` asks for it and CUDA can be used, else on the CPU,
/// with the reason for falling back (an error instead when CUDA is required).
fn load_on_requested_provider(
    runtime: &runtime::Runtime,
    model: &ModelFiles,
    graphs: &SizeGraphs,
    config: &EngineConfig,
) -> Result<(Sessions, Provider, Option<String>), String> {
    let mut fallback_reason = None;
    if config.provider != ProviderRequest::Cpu {
        fallback_reason = match cuda_unavailable(runtime) {
            Some(reason) => Some(reason),
            None => match load_sessions(&runtime.environment, model, graphs, config, true) {
                Ok(sessions) => return Ok((sessions, Provider::Cuda, None)),
                // A contract violation is the model's fault, not CUDA's: no fallback hides it.
                Err(e) if e.contains("does not follow the model contract") => return Err(e),
                Err(e) => Some(e),
            },
        };
    }
    if let (Some(reason), true) = (&fallback_reason, config.cuda_required()) {
        return Err(format!(
            "CUDA was required (strict-provider) but cannot be used: {reason}"
        ));
    }
    let sessions = load_sessions(&runtime.environment, model, graphs, config, false)?;
    if config.provider == ProviderRequest::Auto {
        // Auto falling back is expected behaviour, not something to warn about.
        fallback_reason = fallback_reason.map(|r| format!("auto: using CPU ({r})"));
    }
    Ok((sessions, Provider::Cpu, fallback_reason))
}

impl Engine {
    /// Loads the runtime (first call only) and both sessions at `config.working_size`. CUDA
    /// failures fall back to CPU (see `fallback_reason`) unless `strict_provider` is set. A
    /// working size the model has no graphs for is an error that lists those it has.
    pub fn new(model: &ModelFiles, config: &EngineConfig) -> Result<Self, String> {
        let size = model.spec.size_for(config.working_size)?;
        let graphs = graphs_of(model, size)?;
        let runtime = runtime::runtime()?;
        let (sessions, provider, fallback_reason) =
            load_on_requested_provider(runtime, model, graphs, config)?;
        Ok(Self {
            model: model.clone(),
            config: config.clone(),
            sessions: vec![sessions],
            provider,
            frame_side: None,
            fallback_reason,
            feature_runs: 0,
            flow_runs: 0,
            model_time: std::time::Duration::ZERO,
        })
    }

    pub fn spec(&self) -> &ModelSpec {
        &self.model.spec
    }

    pub fn provider(&self) -> Provider {
        self.provider
    }

    /// The input size in use (width, height).
    pub fn size(&self) -> (usize, usize) {
        self.sessions[0].size
    }

    /// Runs at another working size (longest side in pixels, 0: the model's default for the
    /// frames, see [`Self::set_frame_side`]), loading its sessions on the provider in use the
    /// first time. Returns whether the input size changed: features computed before are then
    /// of another size and must not be mixed with new ones. On error (a size the model does not
    /// take, a graph that cannot be loaded) the engine stays at its current size.
    pub fn set_working_size(&mut self, working_size: usize) -> Result<bool, String> {
        self.run_at(working_size, self.frame_side)
    }

    /// Tells the engine the longest side of the frames (from the negotiated caps). With working
    /// size 0 the model may run small frames at another size (`working_size_by_frame` in
    /// `model.json`); returns whether the input size changed, as [`Self::set_working_size`].
    pub fn set_frame_side(&mut self, frame_side: usize) -> Result<bool, String> {
        self.run_at(self.config.working_size, Some(frame_side))
    }

    fn run_at(&mut self, working_size: usize, frame_side: Option<usize>) -> Result<bool, String> {
        let size = self.model.spec.size_for_frame(working_size, frame_side)?;
        if size == self.size() {
            self.config.working_size = working_size;
            self.frame_side = frame_side;
            return Ok(false);
        }
        let index = match self.sessions.iter().position(|s| s.size == size) {
            Some(i) => i,
            None => {
                let graphs = graphs_of(&self.model, size)?;
                let runtime = runtime::runtime()?;
                let sessions = load_sessions(
                    &runtime.environment,
                    &self.model,
                    graphs,
                    &self.config,
                    self.provider == Provider::Cuda,
                )?;
                self.sessions.push(sessions);
                self.sessions.len() - 1
            }
        };
        self.sessions.swap(0, index);
        self.config.working_size = working_size;
        self.frame_side = frame_side;
        Ok(true)
    }
}

impl FlowBackend for Engine {
    type Features = Features;
    type Error = String;

    fn features(&mut self, image: &[f32]) -> Result<Features, String> {
        let started = std::time::Instant::now();
        let (w, h) = self.size();
        let input = TensorRef::from_array_view(([1usize, 1, h, w], image))
            .map_err(|e| format!("features input: {e}"))?;
        let sessions = &mut self.sessions[0];
        let outputs = sessions
            .features
            .run(ort::inputs!["image" => input])
            .map_err(|e| format!("features.onnx failed: {e}"))?;
        let features = sessions
            .maps
            .iter()
            .map(|(name, _)| {
                let (_, data) = outputs[name.as_str()]
                    .try_extract_tensor::<f32>()
                    .map_err(|e| format!("features output {name}: {e}"))?;
                Ok(data.to_vec())
            })
            .collect::<Result<Features, String>>()?;
        self.feature_runs += 1;
        self.model_time += started.elapsed();
        Ok(features)
    }

    fn flow(&mut self, reference: &Features, current: &Features) -> Result<FlowField, String> {
        let started = std::time::Instant::now();
        let (w, h) = self.size();
        let sessions = &mut self.sessions[0];
        let mut inputs = Vec::with_capacity(2 * sessions.maps.len());
        for (i, ((name, shape), (reference_input, current_input))) in
            sessions.maps.iter().zip(&sessions.flow_inputs).enumerate()
        {
            for (input, features) in [(reference_input, reference), (current_input, current)] {
                let data = features
                    .get(i)
                    .ok_or_else(|| format!("flow input: no feature map {name}"))?;
                let tensor = TensorRef::from_array_view((*shape, &data[..]))
                    .map_err(|e| format!("flow input {name}: {e}"))?;
                inputs.push((input.as_str(), tensor));
            }
        }
        let outputs = sessions
            .flow
            .run(inputs)
            .map_err(|e| format!("flow.onnx failed: {e}"))?;
        let (_, data) = outputs["flow"]
            .try_extract_tensor::<f32>()
            .map_err(|e| format!("flow output: {e}"))?;
        let flow = FlowField::from_planar(w, h, data).map_err(|e| e.to_string());
        self.flow_runs += 1;
        self.model_time += started.elapsed();
        flow
    }

    fn input_size(&self) -> (usize, usize) {
        self.size()
    }
}
