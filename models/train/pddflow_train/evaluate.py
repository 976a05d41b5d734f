"""Mask-propagation evaluation in Python, at the frames' native resolution, for development:
validation during training (train.py), flow methods that are not an ONNX model (OpenCV, teachers,
PyTorch variants) and quick tables.

The reference protocol is `pddflow-eval` (tools/src/eval; `--score-predictions DIR` scores the masks of
any method), which propagates through the element itself; the numbers of README.md and
BENCHMARKS.md come from it. This module follows its rules:

The first frame of a sequence is the reference, its mask the input; every later
annotated frame is scored. keyframe mode: flow(current -> first frame); chain mode:
frame-to-frame flows composed back to the first frame (at the frames' size here, at the model's
grid in the element), the reference mask warped once. Warping (warp_labels): the element's rule
(src/flow/warp.rs): per pixel, the bilinear weights of the four neighbouring reference labels,
summed per label, the heaviest wins (ties to the lower label id), and a neighbour outside the
frame counts as background. Dice per class; HD95 = max of the two directed 95th percentiles;
HD = maximum; pixels at native size. A class absent from both GT and prediction is skipped;
absent from one only scores Dice 0 (HD not scored). Boundaries, distances and the percentile are
those of src/flow/metrics.rs. Reported per class and overall as mean +-
std over sequences (population std; pddflow-eval reports the sample std).

Closed vessels: a frame where a class covers less than CLOSED_FRACTION of its area in the first
frame (a vein pressed shut) is "closed" for that class. The protocol scores it like any other
frame, but there the truth is a sub-pixel sliver that only the exact deformation reproduces
(pddflow_train.oracle --blur), so each class also reports the Dice over its open frames and, over its closed
frames, the predicted and true areas as fractions of the first frame's area.

Scoring: the command line scores through `pddflow-eval --score-predictions` whenever it finds
the binary (PDDFLOW_EVAL, target/release or target/debug of this repository, or PATH): the
predicted masks are written in its predictions layout (`--predictions DIR` keeps them) and the
tables and `--json` come from its report, so that every number has one protocol. `score()` below
is the in-process scorer that validation during training uses (no files, no binary); a test
(tests/test_evaluate.py) checks that it agrees with pddflow-eval.

Usage:
  python -m pddflow_train.evaluate DATASET --seqs 0035,0037 \
      --methods copy,dis:fast,dis:medium,farneback,model:models/default [--scorer auto|pddflow-eval|python]
"""
import argparse
import json
import os
import shutil
import subprocess
import tempfile
import time

import cv2
import numpy as np

from .dataset import warp_np

CLASS_NAMES = {1: "vein", 2: "artery"}
CLOSED_FRACTION = 0.1


def _boundary(m):
    """Pixels with a 4-neighbour outside the set, the image edge counting as outside (as
    src/flow/metrics.rs)."""
    cross = cv2.getStructuringElement(cv2.MORPH_CROSS, (3, 3))
    er = cv2.erode(m.astype(np.uint8), cross, borderType=cv2.BORDER_CONSTANT, borderValue=0)
    return (m > 0) & (er == 0)


def hd_metrics(a, b):
    """(HD95, HD) between the boundaries of two masks: exact Euclidean distances, nearest-rank
    95th percentile of each direction, the larger of the two (as src/flow/metrics.rs)."""
    ba, bb = _boundary(a), _boundary(b)
    if not ba.any() or not bb.any():
        return None, None
    da = cv2.distanceTransform((~bb).astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE)[ba]
    db = cv2.distanceTransform((~ba).astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE)[bb]
    hd95 = max(np.percentile(da, 95, method="inverted_cdf"), np.percentile(db, 95, method="inverted_cdf"))
    hd = max(da.max(), db.max())
    return float(hd95), float(hd)


def score(pred, gt, classes):
    out = {}
    for c in classes:
        p, g = pred == c, gt == c
        if not p.any() and not g.any():
            continue
        dice = 2.0 * (p & g).sum() / (p.sum() + g.sum())
        hd95, hd = hd_metrics(p, g) if (p.any() and g.any()) else (None, None)
        out[c] = (float(dice), hd95, hd)
    return out


def warp_labels(mask, flow, n):
    """label_t(p) = mask(p + flow(p)), flow [H,W,2] at the mask's size, as the element warps
    (src/flow/warp.rs, sample_label_soft): the bilinear weights of the four neighbours summed per
    label, argmax (ties to the lower label), neighbours outside the frame background (0)."""
    h, w = mask.shape
    gy, gx = np.mgrid[0:h, 0:w].astype(np.float32)
    x = gx + flow[..., 0].astype(np.float32)
    y = gy + flow[..., 1].astype(np.float32)
    weights = label_weights(mask, x, y, n)
    return np.argmax(weights, 0).astype(mask.dtype)  # the first maximum: ties to the lower label


def label_weights(mask, x, y, n):
    """[n, H, W]: per label, the sum of the bilinear weights of the four neighbours of the positions
    (x, y) in `mask` that carry it; neighbours outside the mask count as label 0. In the dtype of x."""
    h, w = mask.shape
    x0f, y0f = np.floor(x), np.floor(y)
    fx, fy = x - x0f, y - y0f
    x0, y0 = x0f.astype(np.int64), y0f.astype(np.int64)
    weights = np.zeros((n,) + x.shape, x.dtype)
    for dx, dy, wgt in ((0, 0, (1 - fx) * (1 - fy)), (1, 0, fx * (1 - fy)), (0, 1, (1 - fx) * fy), (1, 1, fx * fy)):
        tx, ty = x0 + dx, y0 + dy
        inside = (tx >= 0) & (ty >= 0) & (tx < w) & (ty < h)
        label = np.where(inside, mask[np.clip(ty, 0, h - 1), np.clip(tx, 0, w - 1)], 0)
        for c in range(n):
            weights[c] += np.where(label == c, wgt, x.dtype.type(0))
    return weights


class ModelFlow:
    """pddflow model directory through ONNX Runtime (1 thread)."""

    def __init__(self, model_dir, threads=1):
        from .onnx_model import OnnxModel, graph_paths, session_options
        meta = json.load(open(os.path.join(model_dir, "model.json")))
        self.size = (meta["input_width"], meta["input_height"])
        self.model = OnnxModel(*graph_paths(model_dir), so=session_options(threads))
        self.cache = {}

    def feats(self, img):
        k = id(img)
        if k in self.cache and self.cache[k][0] is img:
            return self.cache[k][1]
        x = cv2.resize(img, self.size, interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0
        f = self.model.features(x[None, None])
        self.cache[k] = (img, f)
        return f

    def __call__(self, ref, cur):
        H, W = cur.shape
        fl = self.model.flow(self.feats(ref), self.feats(cur))[0]
        fl = fl.transpose(1, 2, 0)
        fl = cv2.resize(fl, (W, H), interpolation=cv2.INTER_LINEAR)
        fl[..., 0] *= W / self.size[0]
        fl[..., 1] *= H / self.size[1]
        return fl


class TorchFlow:
    """A PDDNet in PyTorch (for validation during training)."""

    def __init__(self, net, size):
        self.net, self.size = net, size

    def __call__(self, ref, cur):
        import torch
        H, W = cur.shape
        s = self.size
        r = cv2.resize(ref, (s, s), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0
        c = cv2.resize(cur, (s, s), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0
        with torch.no_grad():
            dev = next(self.net.parameters()).device
            fl = self.net(torch.from_numpy(r)[None, None].to(dev), torch.from_numpy(c)[None, None].to(dev))
        fl = fl[0].cpu().numpy().transpose(1, 2, 0)
        fl = cv2.resize(fl, (W, H), interpolation=cv2.INTER_LINEAR)
        fl[..., 0] *= W / s
        fl[..., 1] *= H / s
        return fl


def make_method(spec):
    if spec == "copy":
        return lambda ref, cur: np.zeros(cur.shape + (2,), np.float32)
    if spec.startswith("dis:"):
        from .teacher import DISTeacher
        d = DISTeacher(spec[4:]).dis
        return lambda ref, cur: d.calc(cur, ref, None)
    if spec == "farneback":
        return lambda ref, cur: cv2.calcOpticalFlowFarneback(cur, ref, None, 0.5, 3, 15, 3, 5, 1.2, 0)
    if spec.startswith("model:"):
        return ModelFlow(spec[6:])
    if spec.startswith("teacher:"):
        # any teacher of teacher.py (dis:fine, deepflow, tvl1, onnx:...), on [0,1] frames
        from .teacher import make_teacher
        t = make_teacher(spec[len("teacher:"):])
        return lambda ref, cur: t(ref.astype(np.float32) / 255.0, cur.astype(np.float32) / 255.0)
    raise ValueError(spec)


def read_sequence(seq_dir):
    """Frame names, grey frames and the annotated masks {frame index: labels} of a sequence."""
    fdir, mdir = os.path.join(seq_dir, "frames"), os.path.join(seq_dir, "masks")
    names = sorted(n for n in os.listdir(fdir) if n.endswith(".png"))
    frames = [cv2.imread(os.path.join(fdir, n), cv2.IMREAD_GRAYSCALE) for n in names]
    masks = {}
    for i, n in enumerate(names):
        p = os.path.join(mdir, n)
        if os.path.exists(p):
            m = cv2.imread(p, cv2.IMREAD_UNCHANGED)
            masks[i] = m[..., 0] if m.ndim == 3 else m
    return names, frames, masks


def propagate(frames, ref_mask, method, mode, n_cls):
    """The reference (first) frame's mask carried to every later frame: yields (index, labels)."""
    comp = None
    for i in range(1, len(frames)):
        if mode == "keyframe":
            yield i, warp_labels(ref_mask, method(frames[0], frames[i]), n_cls)
        else:
            # chain: frame-to-frame flows composed back to the reference (as the element does):
            # F_0<-t(p) = f(p) + F_0<-t-1(p + f(p)), f = flow(t -> t-1); the reference mask is warped once
            step = method(frames[i - 1], frames[i])
            comp = step if comp is None else step + warp_np(comp, step)
            yield i, warp_labels(ref_mask, comp, n_cls)


def _label_count(masks):
    return max(3, int(max(m.max() for m in masks.values())) + 1)


def eval_sequence(seq_dir, method, mode):
    names, frames, masks = read_sequence(seq_dir)
    ref_mask = masks[0]
    n_cls = _label_count(masks)
    classes = sorted(set(int(c) for m in masks.values() for c in np.unique(m) if c != 0))
    rest_area = {c: int((ref_mask == c).sum()) for c in classes}
    per = {c: [] for c in classes}
    closed = {c: [] for c in classes}  # (predicted area, true area) / rest area
    for i, pred in propagate(frames, ref_mask, method, mode, n_cls):
        if i in masks:
            for c, v in score(pred, masks[i], classes).items():
                gt_area = int((masks[i] == c).sum())
                is_closed = rest_area[c] > 0 and gt_area < CLOSED_FRACTION * rest_area[c]
                per[c].append(v + (is_closed,))
                if is_closed:
                    closed[c].append((int((pred == c).sum()) / rest_area[c], gt_area / rest_area[c]))
    res = {}
    for c, vals in per.items():
        if not vals:
            continue
        a = np.array([[v[0], np.nan if v[1] is None else v[1], np.nan if v[2] is None else v[2]] for v in vals])
        open_dice = [v[0] for v in vals if not v[3]]
        res[c] = dict(dice=float(np.mean(a[:, 0])), hd95=float(np.nanmean(a[:, 1])), hd=float(np.nanmean(a[:, 2])),
                      dice_open=float(np.mean(open_dice)) if open_dice else float("nan"),
                      closed_frames=len(closed[c]))
        if closed[c]:
            res[c]["closed_pred_area"] = float(np.mean([p for p, _ in closed[c]]))
            res[c]["closed_true_area"] = float(np.mean([t for _, t in closed[c]]))
    return res


def write_predictions(root, seqs, method, mode, out, label):
    """Every frame after each sequence's first, propagated by `method` in `mode`, written as
    pddflow-eval's predictions layout: OUT/<sequence>/masks/<frame>.png and OUT/manifest.json."""
    references = {}
    for s in seqs:
        names, frames, masks = read_sequence(os.path.join(root, s))
        if 0 not in masks:
            raise ValueError(f"{s}: the first frame {names[0]} has no mask to propagate")
        references[s] = names[0]
        masks_out = os.path.join(out, s, "masks")
        os.makedirs(masks_out, exist_ok=True)
        for i, pred in propagate(frames, masks[0], method, mode, _label_count(masks)):
            cv2.imwrite(os.path.join(masks_out, names[i]), pred)
    with open(os.path.join(out, "manifest.json"), "w") as fh:
        json.dump({"method": label, "references": references}, fh, indent=1)


def find_pddflow_eval():
    """The pddflow-eval binary: $PDDFLOW_EVAL, this repository's target/release or target/debug,
    or PATH; None when there is none."""
    if os.environ.get("PDDFLOW_EVAL"):
        return os.environ["PDDFLOW_EVAL"]
    repo = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
    for profile in ("release", "debug"):
        path = os.path.join(repo, "target", profile, "pddflow-eval")
        if os.access(path, os.X_OK):
            return path
    return shutil.which("pddflow-eval")


def score_with_pddflow_eval(binary, root, seqs, predictions, name, report_stem):
    """pddflow-eval's report (parsed JSON) of the predictions in `predictions` for sequences
    `seqs` of the dataset `root`; its Markdown and JSON are kept at `report_stem`.md/.json."""
    with tempfile.TemporaryDirectory() as tmp:
        # pddflow-eval scores every sequence of a dataset: a view of the chosen ones
        view = os.path.join(tmp, "dataset")
        os.makedirs(view)
        for s in seqs:
            os.symlink(os.path.abspath(os.path.join(root, s)), os.path.join(view, s))
        done = subprocess.run([binary, "--dataset", view, "--score-predictions", predictions, "--name", name,
                               "--report", report_stem], capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{binary} failed ({done.returncode}): {done.stderr.strip()}")
    with open(report_stem + ".json") as fh:
        return json.load(fh)


def summary_from_report(report):
    """A pddflow-eval report in the shape evaluate() returns per mode (std: pddflow-eval's, over
    sequences, n - 1)."""
    nan = float("nan")

    def stat(entry, key):
        v = entry.get(key)
        return (v["mean"], v["std"]) if v else (nan, nan)

    summ = {}
    for c in report["summary"]:
        if c["name"] == "overall":
            summ["overall_dice"] = stat(c, "dice")
            continue
        cs = summ[c["name"]] = {k: stat(c, k) for k in ("dice", "hd95", "hd", "dice_open")}
        if c.get("closed"):
            cl = c["closed"]
            cs["closed"] = dict(sequences=cl["sequences"], frames=cl["frames"], pred_area=cl["predicted_area"],
                                true_area=cl["true_area"])
    summ["per_sequence"] = {
        s["name"]: {c["name"]: {k: c.get(k) for k in ("dice", "hd95", "hd")} for c in s["classes"]
                    if c["name"] != "overall"} for s in report["sequences"]}
    return summ


def evaluate(root, seqs, method, modes=("keyframe", "chain")):
    out = {}
    for mode in modes:
        per_seq = {s: eval_sequence(os.path.join(root, s), method, mode) for s in seqs}
        classes = sorted({c for r in per_seq.values() for c in r})
        summ = {}
        for c in classes:
            vals = [r[c] for r in per_seq.values() if c in r]
            cs = summ[CLASS_NAMES.get(c, str(c))] = {
                k: (float(np.mean([v[k] for v in vals])), float(np.std([v[k] for v in vals]))) for k in ("dice", "hd95", "hd")}
            # open frames: mean over sequences of each sequence's open-frame Dice
            opened = [v["dice_open"] for v in vals if not np.isnan(v["dice_open"])]
            cs["dice_open"] = (float(np.mean(opened)), float(np.std(opened)))
            shut = [v for v in vals if v["closed_frames"]]
            if shut:
                cs["closed"] = dict(
                    sequences=len(shut), frames=sum(v["closed_frames"] for v in shut),
                    pred_area=float(np.mean([v["closed_pred_area"] for v in shut])),
                    true_area=float(np.mean([v["closed_true_area"] for v in shut])))
        ov = [np.mean([r[c]["dice"] for c in r]) for r in per_seq.values() if r]
        summ["overall_dice"] = (float(np.mean(ov)), float(np.std(ov)))
        summ["per_sequence"] = {s: {CLASS_NAMES.get(c, str(c)): r[c] for c in r} for s, r in per_seq.items()}
        out[mode] = summ
    return out


def fmt(res):
    lines = []
    for mode, s in res.items():
        parts = [f"{mode}: overall Dice {100 * s['overall_dice'][0]:.1f} +- {100 * s['overall_dice'][1]:.1f}"]
        for k, v in s.items():
            if k in ("overall_dice", "per_sequence"):
                continue
            text = (f"{k} Dice {100 * v['dice'][0]:.1f}+-{100 * v['dice'][1]:.1f} HD95 {v['hd95'][0]:.1f}+-{v['hd95'][1]:.1f}"
                    f" HD {v['hd'][0]:.1f}+-{v['hd'][1]:.1f}")
            if "closed" in v:
                cl = v["closed"]
                text += (f" [open frames Dice {100 * v['dice_open'][0]:.1f}+-{100 * v['dice_open'][1]:.1f};"
                         f" {cl['frames']} closed frames in {cl['sequences']} seq: predicted area"
                         f" {100 * cl['pred_area']:.1f} % of rest, truth {100 * cl['true_area']:.1f} %]")
            parts.append(text)
        lines.append(" | ".join(parts))
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dataset")
    ap.add_argument("--seqs", default=None, help="comma list (default: all)")
    ap.add_argument("--methods", default="copy,dis:fast,dis:medium,farneback")
    ap.add_argument("--modes", default="keyframe,chain")
    ap.add_argument("--json", default=None, help="write results here")
    ap.add_argument("--scorer", choices=("auto", "pddflow-eval", "python"), default="auto",
                    help="pddflow-eval --score-predictions (the reference protocol; auto: when found) "
                         "or the in-process scorer")
    ap.add_argument("--predictions", default=None,
                    help="keep the predicted masks and pddflow-eval's reports here (default: a temporary directory)")
    a = ap.parse_args()
    seqs = a.seqs.split(",") if a.seqs else sorted(d for d in os.listdir(a.dataset)
                                                   if os.path.isdir(os.path.join(a.dataset, d, "frames")))
    binary = find_pddflow_eval() if a.scorer != "python" else None
    if a.scorer == "pddflow-eval" and not binary:
        raise SystemExit("evaluate: no pddflow-eval binary: build it (cargo build --release) or set PDDFLOW_EVAL")
    if not binary:
        print("scoring in-process (no pddflow-eval binary found; cargo build --release gives one)", flush=True)
    keep = a.predictions or tempfile.mkdtemp(prefix="pddflow-evaluate-")
    allres = {}
    for m in a.methods.split(","):
        t0 = time.time()
        if binary:
            r = {}
            for mode in a.modes.split(","):
                name = f"{m} {mode}"
                out = os.path.join(keep, f"{m}_{mode}".replace(":", "_").replace("/", "_"))
                write_predictions(a.dataset, seqs, make_method(m), mode, out, name)
                report = score_with_pddflow_eval(binary, a.dataset, seqs, out, name, out + "-report")
                r[mode] = summary_from_report(report)
        else:
            r = evaluate(a.dataset, seqs, make_method(m), a.modes.split(","))
        allres[m] = r
        print(f"== {m} on {','.join(seqs)} ({time.time() - t0:.0f} s)\n{fmt(r)}", flush=True)
    if binary:
        print(f"predictions and pddflow-eval reports: {keep}")
        if not a.predictions:
            print("(a temporary directory: give --predictions DIR to choose where)")
    if a.json:
        json.dump(allres, open(a.json, "w"), indent=1)


if __name__ == "__main__":
    main()
