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


def _tiny_dataset(root):
    """Two sequences of five 48x40 frames, a vein and an artery (discs) moving; masks on frames 0,
    2, 4."""
    import cv2
    rng = np.random.RandomState(3)
    for s, (vx, vy) in enumerate(((2, 1), (-1, 2))):
        seq = root / f"seq{s}"
        (seq / "frames").mkdir(parents=True)
        (seq / "masks").mkdir()
        for i in range(5):
            cv2.imwrite(str(seq / "frames" / f"{i:06d}.png"), (rng.rand(40, 48) * 255).astype(np.uint8))
            if i % 2 == 0:
                m = np.zeros((40, 48), np.uint8)  # discs: diagonal edges, many distinct distances
                cv2.circle(m, (12 + vx * i, 14 + vy * i), 7, 1, -1)
                cv2.circle(m, (31 + vx * i, 19 + vy * i), 5, 2, -1)
                cv2.imwrite(str(seq / "masks" / f"{i:06d}.png"), m)


def test_in_process_scores_agree_with_pddflow_eval(tmp_path):
    """Training validation scores in-process; the tables go through pddflow-eval. Same masks,
    same numbers (per sequence and class: Dice exactly, distances to 1e-4 px)."""
    from pddflow_train.evaluate import (eval_sequence, find_pddflow_eval, score_with_pddflow_eval,
                                        write_predictions)
    binary = find_pddflow_eval()
    if not binary:
        pytest.skip("no pddflow-eval binary (cargo build) to compare with")
    _tiny_dataset(tmp_path / "data")

    def method(ref, cur):  # a wrong, constant motion: Dice and distances in between
        return constant_flow(48, 40, -1.5, -0.5)

    seqs = ["seq0", "seq1"]
    for mode in ("keyframe", "chain"):
        pred = tmp_path / f"pred_{mode}"
        write_predictions(str(tmp_path / "data"), seqs, method, mode, str(pred), f"shift {mode}")
        report = score_with_pddflow_eval(binary, str(tmp_path / "data"), seqs, str(pred), mode,
                                         str(tmp_path / f"report_{mode}"))
        assert [s["name"] for s in report["sequences"]] == seqs
        for s in report["sequences"]:
            ours = eval_sequence(str(tmp_path / "data" / s["name"]), method, mode)
            theirs = {c["label"]: c for c in s["classes"] if c["label"] is not None}
            assert sorted(theirs) == sorted(ours) == [1, 2]
            for label, v in ours.items():
                assert 0.05 < v["dice"] < 0.99, v
                assert abs(v["dice"] - theirs[label]["dice"]) < 1e-9, (mode, s["name"], label)
                assert abs(v["hd95"] - theirs[label]["hd95"]) < 1e-4, (mode, s["name"], label)
                assert abs(v["hd"] - theirs[label]["hd"]) < 1e-4, (mode, s["name"], label)
