"""ONNX export parity (pddflow_train.parity): every architecture variant with random weights, the
default architecture at every working size, and the shipped model (models/default/pddnet.pt, or
PDDFLOW_CHECKPOINT). Without torch, onnx, onnxruntime or OpenCV the tests are skipped, with the
reason shown (`pytest -rs`, on by default in pyproject.toml).
"""
import pytest

pytest.importorskip("torch", reason="torch is not installed: ONNX export parity not checked")
pytest.importorskip("onnx", reason="onnx is not installed: ONNX export parity not checked")
pytest.importorskip("onnxruntime", reason="onnxruntime is not installed: ONNX export parity not checked")
pytest.importorskip("cv2", reason="OpenCV is not installed: ONNX export parity not checked")

from pddflow_train import parity  # noqa: E402


def test_parity_configs():
    parity.check_configs()


def test_parity_sizes():
    parity.check_sizes()


def test_parity_default_model():
    parity.check_default_model()


def test_model_json_lists_small_frame_sizes_in_order_and_only_exported_ones():
    import json
    import os

    from pddflow_train.export import model_json
    from pddflow_train.pddnet import PDDNet

    net = PDDNet(refine=1)
    spec = model_json(net, "t", "1", sizes=[128, 192, 256], default_working_size=128,
                      working_size_by_frame=[(320, 192), (256, 256)])
    assert spec["default_working_size"] == 128
    assert spec["working_size_by_frame"] == [[256, 256], [320, 192]]
    with pytest.raises(ValueError, match="not among the exported sizes"):
        model_json(net, "t", "1", sizes=[128, 256], working_size_by_frame=[(256, 192)])
    # the shipped model.json says what export.py --small-frames 256:256 writes
    shipped = json.load(open(os.path.join(os.path.dirname(__file__), "..", "..", "default", "model.json")))
    assert shipped["working_size_by_frame"] == [[256, 256]]
