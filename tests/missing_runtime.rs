//! Without the ONNX Runtime library the element fails to start with a message that says what to
//! do. Its own test binary: the runtime is loaded once per process.

mod common;

use common::*;
use gst::prelude::*;

#[test]
fn missing_onnx_runtime_library_is_a_clear_error() {
    // SAFETY: set before any thread of this process reads the environment.
    unsafe { std::env::set_var("ORT_DYLIB_PATH", "/nonexistent/libonnxruntime.so.1.31.1") };
    let (element, bus) = element(&[("model-location", &test_model("shift"))]);
    assert!(element.set_state(gst::State::Playing).is_err());
    let _ = element.set_state(gst::State::Null);
    let errors = messages(&bus, gst::MessageType::Error);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].contains("/nonexistent/libonnxruntime.so.1.31.1")
            && errors[0].contains("ORT_DYLIB_PATH"),
        "{}",
        errors[0]
    );
}
