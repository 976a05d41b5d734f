"""Benchmark a pddflow model directory in ONNX Runtime on ONE CPU thread.

Per frame with cached reference features = features(current) + flow(reference, current).
Reports wall-clock median/p90/min and the calling thread's CPU time (ORT runs a
single-threaded session on the calling thread), which is robust to other load on the machine.
Usage: python -m pddflow_train.bench_onnx [MODEL_DIR ...] [--iters N] [--profile]
"""
import argparse
import json
import os
import time

import numpy as np
import onnxruntime as ort

from .onnx_model import OnnxModel, graph_paths, session_options


def bench(model_dir, iters=200, warmup=20, profile=False):
    so = session_options(1)
    if profile:
        so.enable_profiling = True
    meta = json.load(open(os.path.join(model_dir, "model.json")))
    H, W = meta["input_height"], meta["input_width"]
    model = OnnxModel(*graph_paths(model_dir), so=so)
    rng = np.random.RandomState(0)
    ref = rng.rand(1, 1, H, W).astype(np.float32)
    cur = rng.rand(1, 1, H, W).astype(np.float32)
    rf = model.features(ref)
    tf, tw, tc = [], [], []
    for i in range(warmup + iters):
        c0 = time.thread_time()
        t0 = time.perf_counter()
        cf = model.features(cur)
        t1 = time.perf_counter()
        model.flow(rf, cf)
        t2 = time.perf_counter()
        c1 = time.thread_time()
        if i >= warmup:
            tf.append(t1 - t0)
            tw.append(t2 - t1)
            tc.append(c1 - c0)
    tf, tw = np.array(tf) * 1e3, np.array(tw) * 1e3
    tot = tf + tw
    res = dict(model=model_dir, size=f"{W}x{H}", features_ms=float(np.median(tf)), flow_ms=float(np.median(tw)),
               total_ms_median=float(np.median(tot)), total_ms_p90=float(np.percentile(tot, 90)),
               total_ms_min=float(np.min(tot)), cpu_ms_median=float(np.median(tc) * 1e3),
               ort=ort.__version__, threads=1)
    if profile:
        print("profiles:", model.features_session.end_profiling(), model.flow_session.end_profiling())
    return res


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model_dirs", nargs="*", default=[os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "default")])
    ap.add_argument("--iters", type=int, default=200)
    ap.add_argument("--profile", action="store_true")
    a = ap.parse_args()
    for d in a.model_dirs:
        r = bench(d, a.iters, profile=a.profile)
        print(f"{r['model']}: {r['size']} features {r['features_ms']:.2f} ms + flow {r['flow_ms']:.2f} ms = "
              f"{r['total_ms_median']:.2f} ms median ({r['total_ms_p90']:.2f} p90, {r['total_ms_min']:.2f} min; "
              f"thread CPU time {r['cpu_ms_median']:.2f} ms median), 1 thread, ORT {r['ort']}")


if __name__ == "__main__":
    main()
