"""The element's label warp as an ONNX graph, for running it where the model runs (the CUDA
provider) instead of on the CPU: `models/label_warp.onnx`, embedded in the plugin.

label_warp.onnx (opset 17, dynamic sizes):
  reference_onehot f32 [1, K, H, W]  channel k - 1 is 1 where the reference map holds id k (k = 1..K)
  flow             f32 [1, 2, h, w]  the flow graph's output: backward flow in model-input pixels
  -> labels        u8  [1, H, W]     for each pixel p, the id (0 = background) with the largest
                                     bilinear weight at p + flow(p) in the reference

as the Rust warp (src/flow/warp.rs) computes it: the flow upsampled bilinearly to H x W (centres
aligned, clamped at the border) and scaled by W / w and H / h; positions outside the reference
read background; ties go to the lower id. The background's weight is 1 minus the others' (the
bilinear weights sum to 1), so GridSample's zero padding is exactly "outside is background".

Usage: python -m pddflow_train.label_warp OUT.onnx   (writes the graph the plugin embeds)
"""
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17
IR_VERSION = 8


def build():
    inits, nodes = [], []

    def const(name, value, dtype):
        inits.append(numpy_helper.from_array(np.asarray(value, dtype=dtype), name))
        return name

    def node(op, ins, outs, **kw):
        nodes.append(helper.make_node(op, ins, outs, **kw))
        return outs[0]

    i64 = np.int64
    # frame size (H, W) and model size (h, w), as int64 [2] and float [2]
    node("Shape", ["reference_onehot"], ["ref_shape"])
    node("Slice", ["ref_shape", const("s2", [2], i64), const("s4", [4], i64)], ["frame_hw"])
    node("Shape", ["flow"], ["flow_shape"])
    node("Slice", ["flow_shape", "s2", "s4"], ["model_hw"])
    node("Cast", ["frame_hw"], ["frame_hw_f"], to=TensorProto.FLOAT)
    node("Cast", ["model_hw"], ["model_hw_f"], to=TensorProto.FLOAT)
    # the flow at frame size (Resize: linear, half_pixel, the source index clamped to the grid)
    node("Concat", [const("one_two", [1, 2], i64), "frame_hw"], ["up_sizes"], axis=0)
    node("Resize", ["flow", "", "", "up_sizes"], ["flow_up"], mode="linear",
         coordinate_transformation_mode="half_pixel")
    # in frame pixels: dx * W / w, dy * H / h (scale is [H/h, W/w]; channels are [dx, dy])
    node("Div", ["frame_hw_f", "model_hw_f"], ["scale_yx"])
    node("Gather", ["scale_yx", const("rev", [1, 0], i64)], ["scale_xy"], axis=0)
    node("Reshape", ["scale_xy", const("shp_s", [1, 2, 1, 1], i64)], ["scale4"])
    node("Mul", ["flow_up", "scale4"], ["disp"])
    node("Split", ["disp"], ["dx", "dy"], axis=1)  # [1, 1, H, W] each
    # the sampling positions p + flow(p), then GridSample's normalised coordinates for
    # align_corners = 0: (2 x + 1) / W - 1
    node("Gather", ["frame_hw_f", const("i0", 0, i64)], ["H"], axis=0)
    node("Gather", ["frame_hw_f", const("i1", 1, i64)], ["W"], axis=0)
    zero, one = const("f0", 0.0, np.float32), const("f1", 1.0, np.float32)
    node("Range", [zero, "W", one], ["xs"])  # [W]
    node("Range", [zero, "H", one], ["ys0"])  # [H]
    node("Unsqueeze", ["ys0", const("ax1", [1], i64)], ["ys"])  # [H, 1]
    node("Add", ["dx", "xs"], ["px"])
    node("Add", ["dy", "ys"], ["py"])
    two = const("f2", 2.0, np.float32)
    for p, size, g in (("px", "W", "gx"), ("py", "H", "gy")):
        node("Mul", [p, two], [p + "2"])
        node("Add", [p + "2", one], [p + "21"])
        node("Div", [p + "21", size], [p + "n"])
        node("Sub", [p + "n", one], [g])
    node("Concat", ["gx", "gy"], ["grid_c"], axis=1)  # [1, 2, H, W]
    node("Transpose", ["grid_c"], ["grid"], perm=[0, 2, 3, 1])  # [1, H, W, 2]
    node("GridSample", ["reference_onehot", "grid"], ["weights"], mode="bilinear",
         padding_mode="zeros", align_corners=0)  # [1, K, H, W]
    node("ReduceSum", ["weights", const("ax_c", [1], i64)], ["labelled"], keepdims=1)
    node("Sub", [one, "labelled"], ["background"])
    node("Concat", ["background", "weights"], ["all"], axis=1)  # [1, 1 + K, H, W]
    # the first largest: ties to the lower id
    node("ArgMax", ["all"], ["ids"], axis=1, keepdims=0, select_last_index=0)
    node("Cast", ["ids"], ["labels"], to=TensorProto.UINT8)

    ins = [helper.make_tensor_value_info("reference_onehot", TensorProto.FLOAT, [1, "K", "H", "W"]),
           helper.make_tensor_value_info("flow", TensorProto.FLOAT, [1, 2, "h", "w"])]
    outs = [helper.make_tensor_value_info("labels", TensorProto.UINT8, [1, "H", "W"])]
    graph = helper.make_graph(nodes, "pddflow_label_warp", ins, outs, initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="pddflow-label-warp")
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model, full_check=True)
    return model


def onehot(labels, k):
    """[H, W] ids -> the graph's reference_onehot [1, K, H, W]."""
    return np.stack([(labels == i).astype(np.float32) for i in range(1, k + 1)])[None]


def reference_warp(labels, flow):
    """The Rust warp in float64, pixel by pixel: the id with the largest bilinear weight at
    p + flow(p) (flow [2, h, w] upsampled half-pixel and scaled), outside = 0, ties to the lower id.
    Returns the ids and the gap between the two largest weights (near 0: a tie that float
    rounding may break either way)."""
    H, W = labels.shape
    _, h, w = flow.shape

    def taps(dst, src):
        f = np.clip((np.arange(dst) + 0.5) * src / dst - 0.5, 0, src - 1)
        i0 = np.floor(f).astype(int)
        return i0, np.minimum(i0 + 1, src - 1), f - i0

    r0, r1, wy = taps(H, h)
    c0, c1, wx = taps(W, w)
    f = flow.astype(np.float64)
    rows = f[:, r0] * (1 - wy)[None, :, None] + f[:, r1] * wy[None, :, None]  # [2, H, w]
    up = rows[:, :, c0] * (1 - wx) + rows[:, :, c1] * wx  # [2, H, W]
    x = np.arange(W)[None, :] + up[0] * W / w
    y = np.arange(H)[:, None] + up[1] * H / h
    from .evaluate import label_weights  # OpenCV's import, only where the reference is needed

    weight = label_weights(labels, x, y, int(labels.max()) + 1)
    best = weight.argmax(0)
    ordered = np.sort(weight, 0)
    return best.astype(np.uint8), ordered[-1] - ordered[-2]


def main():
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    onnx.save(build(), sys.argv[1])
    print("wrote", sys.argv[1])


if __name__ == "__main__":
    main()
