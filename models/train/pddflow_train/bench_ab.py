"""A/B of two pddflow model directories at one input size, in ONNX Runtime on ONE CPU thread.

For comparing two exports of the same model (models/README.md, "At the default working size"):
  * outputs: the largest feature and flow difference between A and B on frame pairs of a
    dataset (frames resized to the size; pairs 0-1, 0-6, 5-20, 10-40 of every sequence);
  * cost: A and B interleaved in one process, run after run, in an order that rotates every run (features of the current frame +
    flow against cached reference features, as the element runs them), each run's thread CPU
    time (time.thread_time(); ONNX Runtime runs a one-thread session on the calling thread), so
    that load from other processes on a shared machine does not bias one side; medians.
    With --dis, OpenCV's DIS optical flow (medium preset, one thread) on the same pair is timed
    in the same loop.

With one directory, A alone (against DIS medium with --dis); --json writes the medians.

Usage: python -m pddflow_train.bench_ab A_DIR [B_DIR] --size 128 [--runs 1500] [--dis]
       [--dataset ../shared/data/carotid] [--json OUT.json]
"""
import argparse
import glob
import json
import math
import os
import time

import cv2
import numpy as np

from .onnx_model import OnnxModel, max_difference, session_options


def load(path, size):
    im = cv2.imread(path, cv2.IMREAD_GRAYSCALE).astype(np.float32) / 255.0
    return cv2.resize(im, (size, size), interpolation=cv2.INTER_AREA)[None, None]


def run_model(model, ref, cur):
    fc = model.features(cur)
    return fc, model.flow(model.features(ref), fc)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("a_dir")
    ap.add_argument("b_dir", nargs="?")
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--runs", type=int, default=1500)
    ap.add_argument("--warmup", type=int, default=50)
    ap.add_argument("--dis", action="store_true", help="time OpenCV DIS medium in the same loop")
    ap.add_argument("--json", help="write the medians (ms) and ratios here")
    ap.add_argument("--dataset", default=os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                      "..", "..", "..", "..", "shared", "data", "carotid"))
    a = ap.parse_args()
    S = a.size
    cv2.setNumThreads(1)
    dirs = {"A": a.a_dir, **({"B": a.b_dir} if a.b_dir else {})}
    sess = {k: OnnxModel.of_dir(d, S, session_options(1)) for k, d in dirs.items()}
    seqs = sorted(d for d in glob.glob(os.path.join(a.dataset, "*")) if os.path.isdir(os.path.join(d, "frames")))
    if not seqs:
        raise SystemExit(f"no sequences with frames/ under {a.dataset}")
    dfeat = dflow = 0.0
    pairs = 0
    for seq in seqs if "B" in sess else []:
        frames = sorted(glob.glob(os.path.join(seq, "frames", "*")))
        for i, j in ((0, 1), (0, 6), (5, 20), (10, 40)):
            if j >= len(frames):
                continue
            ref, cur = load(frames[i], S), load(frames[j], S)
            (fa, wa), (fb, wb) = run_model(sess["A"], ref, cur), run_model(sess["B"], ref, cur)
            # two architectures (e.g. with and without the fine features) have different maps: nan
            dfeat = max(dfeat, max_difference(fa, fb), key=lambda d: math.inf if math.isnan(d) else d)
            dflow = max(dflow, float(np.abs(wa - wb).max()))
            pairs += 1
    if "B" in sess:
        print(f"{S}x{S}: {pairs} pairs, max |features A-B| {dfeat:.2e}, max |flow A-B| {dflow:.2e} px")
    frames = sorted(glob.glob(os.path.join(seqs[0], "frames", "*")))
    ref, cur = load(frames[0], S), load(frames[3], S)
    cached = {k: m.features(ref) for k, m in sess.items()}
    t = {k: ([], []) for k in sess}
    td = []
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM) if a.dis else None
    u0, u1 = (ref[0, 0] * 255).astype(np.uint8), (cur[0, 0] * 255).astype(np.uint8)
    # Each run's first timed call finds caches warmed by the previous run's last one, so a fixed
    # order favours whoever comes second (measured: identical graphs read 20 % apart in features):
    # the order rotates every run, so each side follows each other side equally often.
    timed = list(sess) + (["DIS"] if dis is not None else [])
    for r in range(a.warmup + a.runs):
        for k in timed[r % len(timed):] + timed[:r % len(timed)]:
            if k == "DIS":
                c0 = time.thread_time()
                dis.calc(u0, u1, None)
                c1 = time.thread_time()
                if r >= a.warmup:
                    td.append(c1 - c0)
                continue
            model = sess[k]
            c0 = time.thread_time()
            fc = model.features(cur)
            c1 = time.thread_time()
            model.flow(cached[k], fc)
            c2 = time.thread_time()
            if r >= a.warmup:
                t[k][0].append(c1 - c0)
                t[k][1].append(c2 - c1)
    med = {}
    for k, d in dirs.items():
        f, w = np.array(t[k][0]) * 1e3, np.array(t[k][1]) * 1e3
        med[k] = (np.median(f), np.median(w), np.median(f + w))
        print(f"  {k} {d}: features {med[k][0]:.3f} ms, flow {med[k][1]:.3f} ms, total {med[k][2]:.3f} ms "
              f"(thread CPU, median of {a.runs})")
    if "B" in med:
        print(f"  B/A: features {med['B'][0] / med['A'][0]:.3f}, flow {med['B'][1] / med['A'][1]:.3f}, "
              f"total {med['B'][2] / med['A'][2]:.3f}")
    report = {"size": S, "runs": a.runs,
              **{k: {"dir": dirs[k], "features_ms": m[0], "flow_ms": m[1], "total_ms": m[2]} for k, m in med.items()}}
    if td:
        d = np.median(td) * 1e3
        print(f"  DIS medium {d:.3f} ms; total / DIS: "
              + ", ".join(f"{k} {m[2] / d:.2f}" for k, m in med.items()))
        report["dis_medium_ms"] = d
        for k, m in med.items():
            report[k]["total_over_dis"] = m[2] / d
    if a.json:
        with open(a.json, "w") as f:
            json.dump(report, f, indent=1, default=float)


if __name__ == "__main__":
    main()
