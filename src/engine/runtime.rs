//! Finding and loading the ONNX Runtime library: one environment per process.

use once_cell::sync::OnceCell;
use std::path::{Path, PathBuf};

/// The versioned file name of the ONNX Runtime library pddflow is built against.
pub const LIBRARY_FILE: &str = "libonnxruntime.so.1.31.1";

static PLUGIN_DIR: OnceCell<PathBuf> = OnceCell::new();
static RUNTIME: OnceCell<Result<Runtime, String>> = OnceCell::new();

/// The loaded library and its environment.
pub struct Runtime {
    pub library: PathBuf,
    pub environment: ort::environment::Environment,
}

/// Remembers the directory the plugin was loaded from: a library placed beside the plugin is
/// found without any environment variable.
pub fn set_plugin_dir(dir: &Path) {
    let _ = PLUGIN_DIR.set(dir.to_path_buf());
}

/// Places to look for the library, in order, each with where it came from.
pub fn candidates() -> Vec<(PathBuf, &'static str)> {
    if let Some(path) = std::env::var_os("ORT_DYLIB_PATH") {
        // An explicit choice is never second-guessed.
        return vec![(PathBuf::from(path), "ORT_DYLIB_PATH")];
    }
    let mut list = Vec::new();
    if let Some(dir) = PLUGIN_DIR.get() {
        list.push((dir.join(LIBRARY_FILE), "beside the plugin"));
        list.push((dir.join("libonnxruntime.so"), "beside the plugin"));
    }
    list.push((
        Path::new(env!("PDDFLOW_ORT_DIR")).join(LIBRARY_FILE),
        "the build tree's .ort/lib (scripts/setup.sh)",
    ));
    list
}

/// Loads the library and creates the process-wide environment on first use. Later calls return
/// the same outcome: ONNX Runtime allows only one environment per process.
pub fn runtime() -> Result<&'static Runtime, String> {
    RUNTIME.get_or_init(load).as_ref().map_err(Clone::clone)
}

fn load() -> Result<Runtime, String> {
    let candidates = candidates();
    let chosen = candidates
        .iter()
        .find(|(p, _)| p.is_file())
        .map(|(p, _)| p.clone())
        .or_else(|| {
            // Last resort: the dynamic loader's search path (LD_LIBRARY_PATH, system dirs).
            (std::env::var_os("ORT_DYLIB_PATH").is_none())
                .then(|| PathBuf::from("libonnxruntime.so"))
        });
    let tried = candidates
        .iter()
        .map(|(p, why)| format!("{} ({why})", p.display()))
        .collect::<Vec<_>>()
        .join(", ");
    let Some(library) = chosen else {
        return Err(format!(
            "ONNX Runtime library not found; tried {tried}. Set ORT_DYLIB_PATH to the absolute path of \
             {LIBRARY_FILE} (scripts/setup.sh puts it in .ort/lib), or copy it beside the plugin"
        ));
    };
    let builder = ort::init_from(&library).map_err(|e| {
        format!(
            "could not load ONNX Runtime from {}: {e}; tried {tried}. Set ORT_DYLIB_PATH to the absolute \
             path of {LIBRARY_FILE}, or run scripts/setup.sh",
            library.display()
        )
    })?;
    let environment = builder
        .with_name("pddflow")
        .build()
        .map_err(|e| format!("could not create the ONNX Runtime environment: {e}"))?;
    Ok(Runtime {
        library,
        environment,
    })
}
