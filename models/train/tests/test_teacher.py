"""The teacher cache: one computation per pair, files written whole, a damaged file recomputed.

Run: python -m pytest models/train (or models/train/tests/test_teacher.py); needs numpy and OpenCV
(skipped, with the reason shown, without them).
"""
import os

import pytest

np = pytest.importorskip("numpy", reason="numpy is not installed: teacher cache not checked")
pytest.importorskip("cv2", reason="OpenCV is not installed: teacher cache not checked")

from pddflow_train.teacher import CachedTeacher  # noqa: E402


class CountingTeacher:
    id = "counting"

    def __init__(self):
        self.calls = 0

    def __call__(self, ref, cur):
        self.calls += 1
        return np.full(ref.shape + (2,), 1.5, np.float32)


def test_cache_computes_once_and_leaves_no_temporary_files(tmp_path):
    teacher = CountingTeacher()
    cache = CachedTeacher(teacher, str(tmp_path))
    img = np.zeros((8, 8), np.uint8)
    first = cache.get(("seq", "000.png", "004.png"), img, img, 8)
    second = cache.get(("seq", "000.png", "004.png"), img, img, 8)
    assert teacher.calls == 1
    np.testing.assert_array_equal(first, second)
    assert first.dtype == np.float32 and first.shape == (8, 8, 2)
    assert os.listdir(tmp_path / "counting" / "8" / "seq") == ["000__004.npz"]


def test_truncated_cache_file_is_recomputed(tmp_path):
    teacher = CountingTeacher()
    cache = CachedTeacher(teacher, str(tmp_path))
    img = np.zeros((8, 8), np.uint8)
    cache.get(("seq", "000.png", "004.png"), img, img, 8)
    path = tmp_path / "counting" / "8" / "seq" / "000__004.npz"
    path.write_bytes(path.read_bytes()[:10])  # a run killed while writing
    flow = cache.get(("seq", "000.png", "004.png"), img, img, 8)
    assert teacher.calls == 2
    assert float(flow[0, 0, 0]) == 1.5
    np.load(path)["flow"]  # rewritten whole
