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
    }
}
