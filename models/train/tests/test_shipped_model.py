"""The shipped model (models/default) where nothing can be matched: a featureless region, such as
the black band below the image depth or a scanner's margin, gets no flow, while the tissue next to
it still moves. Before the flat-region rule (PDDNet.keep) two identical black frames gave up to
28 px of flow at 128x128 (32 px at 256x256) wherever they were, and chain mode composed it into a
mask spreading over the margin."""
import os

import numpy as np
import pytest

pytest.importorskip("onnxruntime", reason="onnxruntime is not installed: the shipped graphs not run")
cv2 = pytest.importorskip("cv2", reason="OpenCV is not installed: the shipped graphs not run")

from pddflow_train.onnx_model import OnnxModel  # noqa: E402

SHIPPED = os.path.join(os.path.dirname(__file__), "..", "..", "default")


def flow(model, reference, current):
    return model.flow(model.features(reference[None, None]), model.features(current[None, None]))[0]


def speckle(size, seed):
    rng = np.random.RandomState(seed)
    x = cv2.GaussianBlur(rng.rand(size + 16, size + 16).astype(np.float32), (0, 0), 1.2)
    return (x - x.min()) / (x.max() - x.min())


@pytest.mark.parametrize("size", [128, 256])
def test_identical_black_frames_give_no_flow_below_the_top_rows(size):
    model = OnnxModel.of_dir(SHIPPED, size)
    black = np.zeros((size, size), np.float32)
    fl = flow(model, black, black)
    # the top rows keep some: the feature CNN's zero padding gives them features (models/README.md)
    assert np.abs(fl[:, size * 3 // 8:]).max() == 0.0


@pytest.mark.parametrize("size", [128, 256])
def test_a_black_margin_stays_while_the_tissue_above_it_moves(size):
    model = OnnxModel.of_dir(SHIPPED, size)
    band = size * 3 // 8  # the image ends here, black below, in both frames
    texture = speckle(size, seed=size)
    reference = texture[8:8 + size, 8:8 + size].copy()
    current = texture[6:6 + size, 5:5 + size].copy()  # the tissue moved by (+3, +2) px
    reference[band:] = 0.0
    current[band:] = 0.0
    fl = flow(model, reference, current)
    # next to the tissue the margin shares its motion (the head's pooling and mean field reach a
    # few labels); 9 labels (72 px) away it has none
    assert np.abs(fl[:, band + 72:]).max() == 0.0
    # and the tissue keeps its motion: backward flow, each current pixel was (-3, -2) px away in
    # the reference (this smooth random texture is no speckle: the model gets it roughly)
    tissue = fl[:, size // 8:band - 10, size // 4:-size // 4].mean((1, 2))
    assert tissue[0] < -2.0 and tissue[1] < -1.0, tissue
