//! ONNX Runtime engine (in progress).
