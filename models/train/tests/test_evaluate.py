"""evaluate.warp_labels follows the element's label warp (src/flow/warp.rs): bilinear weights per
label, argmax with ties to the lower label, background outside the frame."""
import pytest

np = pytest.importorskip("numpy", reason="numpy is not installed: evaluate.py not checked")
pytest.importorskip("cv2", reason="OpenCV is not installed: evaluate.py not checked")

from pddflow_train.evaluate import warp_labels  # noqa: E402


def square(w, h, x0, y0, s, label):
    m = np.zeros((h, w), np.uint8)
    m[y0:y0 + s, x0:x0 + s] = label
    return m


def constant_flow(w, h, dx, dy):
    return np.stack([np.full((h, w), dx, np.float32), np.full((h, w), dy, np.float32)], -1)


def test_zero_flow_is_identity():
    m = square(40, 30, 5, 5, 10, 2)
    np.testing.assert_array_equal(warp_labels(m, constant_flow(40, 30, 0, 0), 3), m)


def test_integer_shift_moves_mask_exactly():
    # object moved right by 3 and down by 2: current p was at p - (3, 2) in the reference
    got = warp_labels(square(40, 30, 5, 5, 10, 1), constant_flow(40, 30, -3, -2), 3)
    np.testing.assert_array_equal(got, square(40, 30, 8, 7, 10, 1))


def test_outside_the_frame_is_background():
    """The element's rule: where p + flow(p) leaves the reference, the label is background (a
    replicated border would carry the edge's label in)."""
    m = np.full((12, 20), 2, np.uint8)
    got = warp_labels(m, constant_flow(20, 12, 5, 0), 3)
    assert (got[:, :15] == 2).all()  # the sample x + 5 <= 19 stays inside
    assert (got[:, 15:] == 0).all()
    # a quarter pixel outside: three quarters of the weight inside, the label stays
    assert (warp_labels(m, constant_flow(20, 12, 0, -0.25), 3)[0] == 2).all()
    # three quarters outside: background
    assert (warp_labels(m, constant_flow(20, 12, 0, -0.75), 3)[0] == 0).all()


def test_ties_go_to_the_lower_label():
    m = np.zeros((4, 6), np.uint8)
    m[:, :3], m[:, 3:] = 2, 1
    got = warp_labels(m, constant_flow(6, 4, 0.5, 0), 3)
    assert (got[:, 2] == 1).all()  # half label 2, half label 1
