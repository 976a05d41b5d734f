use std::path::Path;

fn main() {
    gst_plugin_version_helper::info();
    let root = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    // Where scripts/setup.sh puts ONNX Runtime: found at run time with no variable to export.
    println!("cargo:rustc-env=PDDFLOW_ORT_DIR={root}/.ort/lib");
    // The default model is compiled in when present (a fresh checkout always has it).
    println!("cargo:rustc-check-cfg=cfg(pddflow_default_model)");
    println!("cargo:rerun-if-changed=models/default");
    let default = Path::new(&root).join("models/default");
    if ["features.onnx", "flow.onnx", "model.json"]
        .iter()
        .all(|f| default.join(f).is_file())
    {
        println!("cargo:rustc-cfg=pddflow_default_model");
        // Every graph of the directory (one pair per input size) and model.json, by file name:
        // src/engine/model.rs picks those model.json declares.
        let mut files: Vec<String> = std::fs::read_dir(&default)
            .expect("models/default is readable")
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|name| name.ends_with(".onnx") || name == "model.json")
            .collect();
        files.sort();
        let entries: String = files
            .iter()
            .map(|name| {
                let path = default.join(name);
                format!(
                    "    ({name:?}, include_bytes!({:?})),\n",
                    path.display().to_string()
                )
            })
            .collect();
        let code = format!(
            "const DEFAULT_MODEL_DIR: &str = {:?};\n\
             const DEFAULT_MODEL_FILES: &[(&str, &[u8])] = &[\n{entries}];\n",
            default.display().to_string()
        );
        let out = Path::new(&std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"))
            .join("default_model.rs");
        std::fs::write(&out, code).expect("OUT_DIR is writable");
    }
}
