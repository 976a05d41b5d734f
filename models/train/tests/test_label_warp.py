"""The label warp graph (models/label_warp.onnx): what the generator writes, and the same ids as the
Rust warp's definition (pixel by pixel, float64) in ONNX Runtime on the CPU."""
import os

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from pddflow_train.label_warp import build, onehot, reference_warp

SHIPPED = os.path.join(os.path.dirname(__file__), "..", "..", "label_warp.onnx")


@pytest.fixture(scope="module")
def session():
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    return ort.InferenceSession(build().SerializeToString(), so, providers=["CPUExecutionProvider"])


def blobs(rng, h, w, ids):
    labels = np.zeros((h, w), np.uint8)
    yy, xx = np.mgrid[:h, :w]
    for k in range(1, ids + 1):
        cy, cx, r = rng.rand() * h, rng.rand() * w, 5 + rng.rand() * min(h, w) / 4
        labels[(yy - cy) ** 2 + (xx - cx) ** 2 < r * r] = k
    return labels


def test_the_shipped_graph_is_what_the_generator_writes():
    assert onnx.load(SHIPPED).SerializeToString() == build().SerializeToString(), \
        "regenerate it: python -m pddflow_train.label_warp models/label_warp.onnx"


@pytest.mark.parametrize("frame,model,amplitude", [((117, 203), (48, 64), 3.0), ((480, 640), (128, 128), 2.0),
                                                   ((250, 97), (250, 97), 8.0), ((60, 80), (16, 16), 6.0)])
def test_ids_match_the_rust_warp_definition(session, frame, model, amplitude):
    rng = np.random.RandomState(sum(frame))
    (H, W), (h, w) = frame, model
    labels = blobs(rng, H, W, 3)
    yy, xx = np.mgrid[:h, :w]
    flow = np.stack([np.sin(xx * 0.07) * amplitude + (rng.rand(h, w) - 0.5) * 0.3,
                     np.cos(yy * 0.05) * amplitude / 1.5 - 2 + (rng.rand(h, w) - 0.5) * 0.3]).astype(np.float32)
    (out,) = session.run(None, {"reference_onehot": onehot(labels, 3), "flow": flow[None]})
    expected, gap = reference_warp(labels, flow)
    differ = out[0] != expected
    # float32 against float64: only a near tie of two ids may come out either way
    assert (gap[differ] < 1e-4).all(), f"{differ.sum()} pixels differ, gaps {gap[differ].max()}"
    assert differ.mean() < 1e-3
    assert (expected > 0).any() and (expected == 0).any()


def test_positions_outside_the_reference_read_background(session):
    labels = np.ones((40, 30), np.uint8)
    for dx, dy in ((-100.0, 0.0), (0.0, 100.0), (0.4, 0.0)):
        flow = np.zeros((1, 2, 8, 6), np.float32)
        flow[0, 0], flow[0, 1] = dx, dy
        (out,) = session.run(None, {"reference_onehot": onehot(labels, 1), "flow": flow})
        expected, _ = reference_warp(labels, flow[0])
        assert (out[0] == expected).all()
        if dx == 0.4:
            # 0.4 model px = 2 frame px to the right: the last two columns read outside
            assert (out[0][:, -2:] == 0).all() and (out[0][:, :-2] == 1).all()
        else:
            assert (out[0] == 0).all()
