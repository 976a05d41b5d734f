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
