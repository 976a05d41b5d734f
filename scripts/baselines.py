#!/usr/bin/env python3
"""Classical baselines for pddflow-eval: copy the reference mask, OpenCV Farneback and DIS.

Masks are propagated exactly as the pddflow element does it (src/flow/warp.rs, src/flow/tracker.rs):

* backward flow: for each pixel p of the current frame, flow(p) = (dx, dy) such that p + flow(p)
  is where p was in the reference frame; with OpenCV that is ``calc(current, reference)``, since
  ``calc(I0, I1)`` returns flow with I0(p) ~ I1(p + flow(p));
* warping: soft one-hot bilinear sampling of the reference labels at p + flow(p), then argmax
  (ties to the lower label id); the four taps outside the image count as background;
* keyframe mode: every frame registered to the reference frame;
* chain mode: every frame registered to the previous frame, the steps composed back to the
  reference like ``FlowField::compose``: f_t(p) = s_t(p) + f_{t-1}(p + s_t(p)), the earlier flow
  sampled bilinearly with border clamping; the reference mask is warped once with f_t.

Flow is computed at the frames' native size. Frames before the reference are skipped; every
frame after it gets a prediction, ``OUT/<method>_<mode>/<sequence>/masks/<frame>.png``, plus a
``manifest.json`` (method name, reference per sequence) that ``pddflow-eval --score-predictions``
reads, so that every row of a report comes from the same scoring code.

Usage:
  baselines.py run --dataset DIR --out OUT [--methods copy,farneback,dis_fast,dis_medium]
                   [--modes keyframe,chain] [--references MANIFEST] [--threads N]
  baselines.py time [--dataset DIR] [--sizes 256x256,...] [--threads 1,2] [--frames N] [--json FILE]

``run`` prints one JSON line per method with its mean flow time per frame at native size;
``time`` times flow only (no warping) per method, size and thread count, on dataset frames
resized to each size (or a synthetic speckle pair when no dataset is given).
"""

import argparse
import json
import os
import sys
import time

import cv2
import numpy as np

METHODS = ("copy", "farneback", "dis_fast", "dis_medium")
FLOW_METHODS = METHODS[1:]
MODES = ("keyframe", "chain")


def make_flow(method):
    """A function (current, reference) -> backward flow HxWx2 float32."""
    if method == "farneback":
        # OpenCV's documented example parameters (pyr_scale 0.5, 3 levels, window 15, 3
        # iterations, poly_n 5, poly_sigma 1.2).
        return lambda cur, ref: cv2.calcOpticalFlowFarneback(
            cur, ref, None, 0.5, 3, 15, 3, 5, 1.2, 0)
    if method in ("dis_fast", "dis_medium"):
        preset = (cv2.DISOPTICAL_FLOW_PRESET_FAST if method == "dis_fast"
                  else cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
        dis = cv2.DISOpticalFlow_create(preset)
        return lambda cur, ref: dis.calc(cur, ref, None)
    raise ValueError(f"unknown flow method {method!r}")


def bilinear_clamped(field, x, y):
    """Samples a HxW (or HxWxC) array at float positions, clamped to the border (warp.rs)."""
    h, w = field.shape[:2]
    x = np.clip(x, 0.0, w - 1.0)
    y = np.clip(y, 0.0, h - 1.0)
    x0 = x.astype(np.int32)  # floor: x >= 0 after clamping
    y0 = y.astype(np.int32)
    x1 = np.minimum(x0 + 1, w - 1)
    y1 = np.minimum(y0 + 1, h - 1)
    fx = x - x0
    fy = y - y0
    flat = field.reshape(h * w, -1)
    i00, i01, i10, i11 = y0 * w + x0, y0 * w + x1, y1 * w + x0, y1 * w + x1
    out = []
    for c in range(flat.shape[1]):
        ch = flat[:, c]
        a = ch[i00] * (1 - fx) + ch[i01] * fx
        b = ch[i10] * (1 - fx) + ch[i11] * fx
        out.append(a * (1 - fy) + b * fy)
    res = np.stack(out, axis=-1)
    return res if field.ndim == 3 else res[..., 0]


_GRIDS = {}


def grid(h, w):
    if (h, w) not in _GRIDS:
        ys, xs = np.mgrid[0:h, 0:w]
        _GRIDS[(h, w)] = (xs.astype(np.float32), ys.astype(np.float32))
    return _GRIDS[(h, w)]


def compose(step, earlier):
    """step: current -> previous, earlier: previous -> reference; returns current -> reference."""
    h, w = step.shape[:2]
    xs, ys = grid(h, w)
    return step + bilinear_clamped(earlier, xs + step[..., 0], ys + step[..., 1])


def warp_labels(reference, flow):
    """mask(p) = argmax of the soft one-hot reference labels sampled at p + flow(p)."""
    h, w = reference.shape
    xs, ys = grid(h, w)
    qx = xs + flow[..., 0]
    qy = ys + flow[..., 1]
    x0 = np.floor(qx)
    y0 = np.floor(qy)
    fx = qx - x0
    fy = qy - y0
    x0 = x0.astype(np.int32)
    y0 = y0.astype(np.int32)
    labels = np.union1d(np.unique(reference), [0]).astype(np.uint8)  # sorted, 0 first
    weights = np.zeros((len(labels), h, w), np.float32)
    flat = reference.reshape(-1)
    for dx, dy, wgt in ((0, 0, (1 - fx) * (1 - fy)), (1, 0, fx * (1 - fy)),
                        (0, 1, (1 - fx) * fy), (1, 1, fx * fy)):
        tx = x0 + dx
        ty = y0 + dy
        inside = (tx >= 0) & (ty >= 0) & (tx < w) & (ty < h)
        lab = np.where(inside, flat[np.clip(ty, 0, h - 1) * w + np.clip(tx, 0, w - 1)], 0)
        for k, label in enumerate(labels):
            weights[k] += np.where(lab == label, wgt, 0)
    # argmax returns the first maximum: the lowest label id on ties, as warp.rs does.
    return labels[np.argmax(weights, axis=0)]


def list_sequences(root):
    if os.path.isdir(os.path.join(root, "frames")):
        return [root]
    seqs = sorted(os.path.join(root, d) for d in os.listdir(root)
                  if os.path.isdir(os.path.join(root, d, "frames")))
    if not seqs:
        sys.exit(f"baselines.py: dataset {root} is empty: expected {root}/<sequence>/frames/*.png")
    return seqs


def read_gray(path):
    img = cv2.imread(path, cv2.IMREAD_GRAYSCALE)
    if img is None:
        sys.exit(f"baselines.py: cannot read {path}")
    return img


def read_labels(path):
    img = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    if img is None:
        sys.exit(f"baselines.py: cannot read {path}")
    if img.ndim == 3:
        # Colour label maps: luma, as LabelMap::load_png converts them.
        img = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
    if img.dtype != np.uint8:
        sys.exit(f"baselines.py: {path} is not an 8-bit label map")
    return img


def frame_files(seq):
    return sorted(f for f in os.listdir(os.path.join(seq, "frames")) if f.lower().endswith(".png"))


def run_method(seq, files, ref_index, method, mode, out_masks, flow_fn):
    """Writes predictions for every frame after the reference; returns flow seconds and count."""
    ref_file = files[ref_index]
    mask_path = os.path.join(seq, "masks", ref_file)
    if not os.path.isfile(mask_path):
        sys.exit(f"baselines.py: the reference frame {ref_file} of {seq} has no mask ({mask_path})")
    ref_mask = read_labels(mask_path)
    ref_img = read_gray(os.path.join(seq, "frames", ref_file))
    if ref_mask.shape != ref_img.shape:
        sys.exit(f"baselines.py: size mismatch between {mask_path} and its frame")
    os.makedirs(out_masks, exist_ok=True)
    prev_img, prev_flow = ref_img, None
    flow_seconds, flows = 0.0, 0
    for f in files[ref_index + 1:]:
        img = read_gray(os.path.join(seq, "frames", f))
        if img.shape != ref_img.shape:
            sys.exit(f"baselines.py: size mismatch: {seq}/frames/{f} differs from the reference")
        if method == "copy":
            pred = ref_mask
        else:
            t0 = time.perf_counter()
            step = flow_fn(img, ref_img if mode == "keyframe" else prev_img)
            flow_seconds += time.perf_counter() - t0
            flow = step if (mode == "keyframe" or prev_flow is None) else compose(step, prev_flow)
            flows += 1
            prev_img, prev_flow = img, flow
            pred = warp_labels(ref_mask, flow)
        cv2.imwrite(os.path.join(out_masks, f), pred)
    return flow_seconds, flows


def cmd_run(args):
    cv2.setNumThreads(args.threads)
    methods = args.methods.split(",")
    modes = args.modes.split(",")
    for m in methods:
        if m not in METHODS:
            sys.exit(f"baselines.py: unknown method {m!r}; choose from {', '.join(METHODS)}")
    for m in modes:
        if m not in MODES:
            sys.exit(f"baselines.py: unknown mode {m!r}; choose from {', '.join(MODES)}")
    references = {}
    if args.references:
        with open(args.references) as fh:
            references = json.load(fh).get("references", {})
    seqs = list_sequences(args.dataset)
    for method in methods:
        for mode in (["keyframe"] if method == "copy" else modes):
            name = "copy" if method == "copy" else f"{method}_{mode}"
            label = "copy reference" if method == "copy" else f"{method} {mode}"
            out = os.path.join(args.out, name)
            refs = {}
            seconds, count, t_start = 0.0, 0, time.perf_counter()
            for seq in seqs:
                seq_name = os.path.basename(os.path.normpath(seq))
                files = frame_files(seq)
                if not files:
                    sys.exit(f"baselines.py: {seq}/frames holds no PNG frames")
                ref_file = references.get(seq_name, files[0])
                if ref_file not in files:
                    sys.exit(f"baselines.py: reference {ref_file} of {seq_name} is not a frame")
                refs[seq_name] = ref_file
                flow_fn = None if method == "copy" else make_flow(method)
                s, n = run_method(seq, files, files.index(ref_file), method, mode,
                                  os.path.join(out, seq_name, "masks"), flow_fn)
                seconds += s
                count += n
            with open(os.path.join(out, "manifest.json"), "w") as fh:
                json.dump({"method": label, "references": refs}, fh, indent=1)
            print(json.dumps({
                "method": label, "predictions": out, "flows": count,
                "flow_ms_per_frame": 1000 * seconds / count if count else None,
                "wall_seconds": time.perf_counter() - t_start, "threads": args.threads,
            }), flush=True)


def synthetic_pair(w, h, seed=0):
    """Speckle-like frame and the same moved by (3, 2) px."""
    rng = np.random.default_rng(seed)
    base = rng.rayleigh(40.0, (h + 8, w + 8)).clip(0, 255).astype(np.uint8)
    base = cv2.GaussianBlur(base, (3, 3), 0)
    return base[4:4 + h, 4:4 + w].copy(), base[2:2 + h, 1:1 + w].copy()


def cmd_time(args):
    sizes = [tuple(int(v) for v in s.lower().split("x")) for s in args.sizes.split(",")]
    threads = [int(t) for t in args.threads.split(",")]
    pair = None
    if args.dataset:
        seq = list_sequences(args.dataset)[0]
        files = frame_files(seq)
        pair = (read_gray(os.path.join(seq, "frames", files[0])),
                read_gray(os.path.join(seq, "frames", files[min(1, len(files) - 1)])))
    rows = []
    for (w, h) in sizes:
        if pair is not None:
            a = cv2.resize(pair[0], (w, h), interpolation=cv2.INTER_AREA)
            b = cv2.resize(pair[1], (w, h), interpolation=cv2.INTER_AREA)
        else:
            a, b = synthetic_pair(w, h)
        for t in threads:
            cv2.setNumThreads(t)
            for method in FLOW_METHODS:
                fn = make_flow(method)
                fn(b, a)  # warm-up
                times = []
                deadline = time.perf_counter() + args.max_seconds
                while len(times) < args.frames and (len(times) < 3 or time.perf_counter() < deadline):
                    t0 = time.perf_counter()
                    fn(b, a)
                    times.append(time.perf_counter() - t0)
                times.sort()
                rows.append({"method": method, "width": w, "height": h, "threads": t,
                             "frames": len(times),
                             "mean_ms": 1000 * sum(times) / len(times),
                             "median_ms": 1000 * times[len(times) // 2]})
                print(f"{method:>10} {w}x{h} threads={t}: {rows[-1]['mean_ms']:.2f} ms/frame "
                      f"(median {rows[-1]['median_ms']:.2f}, {len(times)} frames)", file=sys.stderr)
    result = {"opencv": cv2.__version__, "source": args.dataset or "synthetic speckle", "rows": rows}
    text = json.dumps(result, indent=1)
    if args.json and args.json != "-":
        with open(args.json, "w") as fh:
            fh.write(text)
    else:
        print(text)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="write predictions per method")
    r.add_argument("--dataset", required=True)
    r.add_argument("--out", required=True)
    r.add_argument("--methods", default=",".join(METHODS))
    r.add_argument("--modes", default=",".join(MODES))
    r.add_argument("--references", help="manifest.json of pddflow-eval predictions: same references")
    r.add_argument("--threads", type=int, default=1, help="OpenCV threads (default 1)")
    r.set_defaults(func=cmd_run)
    t = sub.add_parser("time", help="time flow per method, size and thread count")
    t.add_argument("--dataset")
    t.add_argument("--sizes", default="256x256")
    t.add_argument("--threads", default="1,2")
    t.add_argument("--frames", type=int, default=30, help="timed calls per case (at most)")
    t.add_argument("--max-seconds", type=float, default=3.0, help="time budget per case")
    t.add_argument("--json", help="write the JSON here ('-' or absent: stdout)")
    t.set_defaults(func=cmd_time)
    args = p.parse_args()
    args.func(args)


if __name__ == "__main__":
    main()
