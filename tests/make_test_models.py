#!/usr/bin/env python3
"""Generate the tiny ONNX test models used by the Rust element tests.

Deterministic and rerunnable; needs only `onnx` and `numpy` (onnxruntime is used,
when installed, to verify the good models). Writes tests/models/<name>/{features.onnx,
flow.onnx,model.json}, all with H = W = 64, stride 4, C = 4 feature channels.

Models:
  shift          features = 4x4 average pool of the image tiled to 4 channels;
                 flow = constant dx = -3, dy = -2 (backward flow, so a mask moves
                 +3 right, +2 down); model.json carries "test_shift": [-3, -2].
  identity_pool  same features; flow = zeros.
  bad_names      like shift, but the features input is named `input` (not `image`)
                 and the flow output `out` (not `flow`).
  bad_shape      like shift, but the flow output is [1,3,64,64].
  corrupt        features.onnx and flow.onnx are 200 fixed garbage bytes; model.json valid.
  multi_size     shift at three input sizes (model.json input_sizes): 64x64 (the default,
                 features.onnx / flow.onnx), 32x32 (features-32x32.onnx, flow-32x32.onnx, flow
                 dx = -1, dy = -1) and 48x48 (flow dx = -2, dy = -1), so a test sees which ran.

The flow graphs consume both inputs (constant + 0 * ReduceMean(input)) so that ONNX
Runtime keeps them as real inputs.

Usage: python tests/make_test_models.py [OUT_DIR]   (default: tests/models next to this file)
"""
import json
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

H = W = 64
STRIDE = 4
C = 4
OPSET = 17
IR_VERSION = 8


def _model(graph):
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                          producer_name="pddflow-tests")
    m.ir_version = IR_VERSION
    onnx.checker.check_model(m)
    return m


def features_model(input_name="image", H=H, W=W):
    hs, ws = H // STRIDE, W // STRIDE
    x = helper.make_tensor_value_info(input_name, TensorProto.FLOAT, [1, 1, H, W])
    y = helper.make_tensor_value_info("features", TensorProto.FLOAT, [1, C, hs, ws])
    nodes = [
        helper.make_node("AveragePool", [input_name], ["pooled"],
                         kernel_shape=[STRIDE, STRIDE], strides=[STRIDE, STRIDE]),
        helper.make_node("Concat", ["pooled"] * C, ["features"], axis=1),
    ]
    g = helper.make_graph(nodes, "features", [x], [y])
    return _model(g)


def flow_model(dx, dy, out_name="flow", out_channels=2, H=H, W=W):
    hs, ws = H // STRIDE, W // STRIDE
    r = helper.make_tensor_value_info("reference_features", TensorProto.FLOAT, [1, C, hs, ws])
    c = helper.make_tensor_value_info("current_features", TensorProto.FLOAT, [1, C, hs, ws])
    y = helper.make_tensor_value_info(out_name, TensorProto.FLOAT, [1, out_channels, H, W])
    vals = [dx, dy] + [0.0] * (out_channels - 2)
    const = np.array(vals, dtype=np.float32).reshape(1, out_channels, 1, 1)
    inits = [
        numpy_helper.from_array(const, "flow_const"),
        numpy_helper.from_array(np.array([1, out_channels, H, W], dtype=np.int64), "out_shape"),
        numpy_helper.from_array(np.array(0.0, dtype=np.float32), "zero"),
    ]
    nodes = [
        helper.make_node("ReduceMean", ["reference_features"], ["mr"], keepdims=0),
        helper.make_node("ReduceMean", ["current_features"], ["mc"], keepdims=0),
        helper.make_node("Add", ["mr", "mc"], ["msum"]),
        helper.make_node("Mul", ["msum", "zero"], ["mzero"]),
        helper.make_node("Add", ["flow_const", "mzero"], ["flow_small"]),
        helper.make_node("Expand", ["flow_small", "out_shape"], [out_name]),
    ]
    g = helper.make_graph(nodes, "flow", [r, c], [y], initializer=inits)
    return _model(g)


def model_json(name, extra=None):
    d = {
        "name": f"test-{name}",
        "version": "0.0.1",
        "input_width": W,
        "input_height": H,
        "stride": STRIDE,
        "feature_channels": C,
        "displacement_grid": 9,
        "displacement_spacing": 1,
        "max_displacement": 4,
        "classes": {"0": "background", "1": "vein", "2": "artery"},
        "opset": OPSET,
        "training": None,
        "scores": None,
    }
    if extra:
        d.update(extra)
    return d


def write(out_dir, name, feat, flow, meta, more=()):
    d = os.path.join(out_dir, name)
    os.makedirs(d, exist_ok=True)
    for fn, m in (("features.onnx", feat), ("flow.onnx", flow), *more):
        p = os.path.join(d, fn)
        if isinstance(m, bytes):
            with open(p, "wb") as f:
                f.write(m)
        else:
            onnx.save(m, p)
    with open(os.path.join(d, "model.json"), "w") as f:
        json.dump(meta, f, indent=2)
        f.write("\n")
    return d


def garbage(n=200, seed=1234):
    # fixed bytes (deterministic), starting with something that is not a protobuf header
    rng = np.random.RandomState(seed)
    return b"NOT-AN-ONNX-MODEL\x00\xff" + rng.randint(0, 256, n - 19, dtype=np.uint8).tobytes()


def verify(d, expect_dx, expect_dy, H=H, W=W, suffix=""):
    try:
        import onnxruntime as ort
    except ImportError:
        print("  (onnxruntime not installed, skipping verification)")
        return
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    fs = ort.InferenceSession(os.path.join(d, f"features{suffix}.onnx"), so, providers=["CPUExecutionProvider"])
    ws = ort.InferenceSession(os.path.join(d, f"flow{suffix}.onnx"), so, providers=["CPUExecutionProvider"])
    rng = np.random.RandomState(0)
    img = rng.rand(1, 1, H, W).astype(np.float32)
    (feat,) = fs.run(["features"], {"image": img})
    assert feat.shape == (1, C, H // STRIDE, W // STRIDE), feat.shape
    ref = img.reshape(H // STRIDE, STRIDE, W // STRIDE, STRIDE).mean(axis=(1, 3))
    for k in range(C):
        assert np.allclose(feat[0, k], ref, atol=1e-6)
    (flow,) = ws.run(["flow"], {"reference_features": feat, "current_features": feat * 0.5})
    assert flow.shape == (1, 2, H, W), flow.shape
    assert np.all(flow[0, 0] == expect_dx) and np.all(flow[0, 1] == expect_dy)
    print(f"  verified with onnxruntime {ort.__version__}: features {feat.shape}, flow {flow.shape} "
          f"= ({expect_dx}, {expect_dy})")


def main():
    out_dir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(os.path.abspath(__file__)), "models")
    d = write(out_dir, "shift", features_model(), flow_model(-3.0, -2.0),
              model_json("shift", {"test_shift": [-3, -2]}))
    print("shift ->", d); verify(d, -3.0, -2.0)
    d = write(out_dir, "identity_pool", features_model(), flow_model(0.0, 0.0), model_json("identity_pool"))
    print("identity_pool ->", d); verify(d, 0.0, 0.0)
    d = write(out_dir, "bad_names", features_model("input"), flow_model(-3.0, -2.0, out_name="out"),
              model_json("bad_names", {"test_shift": [-3, -2]}))
    print("bad_names ->", d)
    d = write(out_dir, "bad_shape", features_model(), flow_model(-3.0, -2.0, out_channels=3),
              model_json("bad_shape", {"test_shift": [-3, -2]}))
    print("bad_shape ->", d)
    d = write(out_dir, "corrupt", garbage(seed=1), garbage(seed=2), model_json("corrupt"))
    print("corrupt ->", d)
    extra = {32: (-1.0, -1.0), 48: (-2.0, -1.0)}
    more = []
    for n, (dx, dy) in extra.items():
        more.append((f"features-{n}x{n}.onnx", features_model(H=n, W=n)))
        more.append((f"flow-{n}x{n}.onnx", flow_model(dx, dy, H=n, W=n)))
    d = write(out_dir, "multi_size", features_model(), flow_model(-3.0, -2.0),
              model_json("multi_size", {"input_sizes": [[32, 32], [48, 48], [64, 64]]}), more)
    print("multi_size ->", d); verify(d, -3.0, -2.0)
    for n, (dx, dy) in extra.items():
        verify(d, dx, dy, H=n, W=n, suffix=f"-{n}x{n}")


if __name__ == "__main__":
    main()
