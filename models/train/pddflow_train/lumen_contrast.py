#!/usr/bin/env python3
"""Image evidence for the compression exam's vein-closed verdict: does the propagated vein mask
still cover a dark (anechoic) lumen?

A warped label map cannot shrink a region to nothing, so a vein pressed shut keeps a propagated
mask of 10-40 % of its reference area. Its pixels are then tissue, not lumen. This tool measures,
per frame, the *lumen contrast* of a predicted mask: the intensity of a ring of tissue around the
mask minus the intensity inside it (mean or median; the ring is the mask's square dilation by
--ring pixels, or --ring times the reference vessel's equivalent radius when below 1, less the
mask and any other labelled pixel), relative to the same contrast of the reference mask on the
reference frame. About 1 while the mask covers open lumen, about 0 (or negative: the collapsed
walls are bright) once it covers tissue only.

It reports, per method and set:
  * per frame: the contrast against the true area ratio, in bins of the true ratio;
  * per sequence: true and predicted minimum area ratio, the minimum contrast, and the verdict
    (true closed: true minimum ratio <= --closed) by three rules, with the minimum-ratio error:
      area       predicted minimum ratio <= --closed (today's readout);
      or         area rule, or the contrast fell to --tau or below in some frame;
      effective  minimum over frames of ratio x clamp(contrast / --tau, 0, 1) <= --closed;
  * the separation: over closing sequences the largest minimum contrast, over the others the
    smallest (one --tau separates them when the first is below the second).

With --control-label (the artery: probe pressure does not close it), a fourth rule:
      control    area rule, or a frame where the contrast is at most --tau while the control
                 vessel's own relative contrast is at least --control-min (both vanishing reads
                 as a lost track, not a closed vein).

Truth masks can stand in for a method (NAME=truth) to see the signal without tracking errors.

Usage:
  python -m pddflow_train.lumen_contrast --dataset DIR NAME=PRED|truth [...] [--label 1] [--stat mean|median]
                    [--ring 0.25] [--tau 0.3] [--closed 0.05] [--sequences] [--json OUT]
                    [--control-label 2 --control-min 0.5]
"""

import argparse
import json
import os

import cv2
import numpy as np


def contrast(img, labels, label, ring_px, stat):
    """Ring-minus-inside intensity of `label` in `labels`; None without a mask or a ring."""
    inside = labels == label
    if not inside.any():
        return None
    k = np.ones((2 * ring_px + 1, 2 * ring_px + 1), np.uint8)
    ring = (cv2.dilate(inside.astype(np.uint8), k) > 0) & (labels == 0)
    if not ring.any():
        return None
    f = np.mean if stat == "mean" else np.median
    return float(f(img[ring].astype(np.float64)) - f(img[inside].astype(np.float64)))


def measure(dataset, pred, label, ring, stat, control=None):
    """{sequence: [(true ratio, predicted ratio, relative contrast, control's relative contrast),
    ...]}, nan where a contrast is undefined (or without a control label)."""
    out = {}
    for s in sorted(os.listdir(dataset)):
        mdir = os.path.join(dataset, s, "masks")
        if not os.path.isdir(mdir):
            continue
        files = sorted(os.listdir(mdir))
        m0 = cv2.imread(os.path.join(mdir, files[0]), cv2.IMREAD_UNCHANGED)
        f0 = cv2.imread(os.path.join(dataset, s, "frames", files[0]), cv2.IMREAD_GRAYSCALE)
        a0 = int((m0 == label).sum())
        if a0 == 0:
            continue
        ring_px = max(2, int(round(ring * np.sqrt(a0 / np.pi)))) if ring < 1 else int(ring)
        c0 = contrast(f0, m0, label, ring_px, stat)
        a0c = int((m0 == control).sum()) if control else 0
        ring_c = max(2, int(round(ring * np.sqrt(a0c / np.pi)))) if ring < 1 else int(ring)
        c0c = contrast(f0, m0, control, ring_c, stat) if a0c else None
        rows = []
        for f in files[1:]:
            pp = mdir if pred == "truth" else os.path.join(pred, s, "masks")
            pm = cv2.imread(os.path.join(pp, f), cv2.IMREAD_UNCHANGED)
            if pm is None:
                continue
            tm = cv2.imread(os.path.join(mdir, f), cv2.IMREAD_UNCHANGED)
            img = cv2.imread(os.path.join(dataset, s, "frames", f), cv2.IMREAD_GRAYSCALE)
            c = contrast(img, pm, label, ring_px, stat)
            rel = c / c0 if c is not None and c0 else float("nan")
            cc = contrast(img, pm, control, ring_c, stat) if c0c else None
            rel_c = cc / c0c if cc is not None else float("nan")
            rows.append(((tm == label).sum() / a0, (pm == label).sum() / a0, rel, rel_c))
        if rows:
            out[s] = rows
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", required=True)
    p.add_argument("preds", nargs="+", metavar="NAME=PRED")
    p.add_argument("--label", type=int, default=1)
    p.add_argument("--stat", choices=("mean", "median"), default="mean")
    p.add_argument("--ring", type=float, default=0.25)
    p.add_argument("--tau", type=float, default=0.3)
    p.add_argument("--closed", type=float, default=0.05)
    p.add_argument("--sequences", action="store_true", help="a row per sequence")
    p.add_argument("--control-label", type=int)
    p.add_argument("--control-min", type=float, default=0.5)
    p.add_argument("--json")
    args = p.parse_args()
    bins = [(-1, args.closed, f"<= {args.closed}"), (args.closed, 0.2, f"{args.closed}-0.2"),
            (0.2, 0.5, "0.2-0.5"), (0.5, 1e9, "> 0.5")]
    report = {}
    print(f"lumen contrast ({args.stat}, ring {args.ring:g}) on {args.dataset}, label {args.label}, "
          f"tau {args.tau:g}, closed at {args.closed:g}\n")
    print("| method | " + " | ".join(f"contrast, true ratio {b[2]}: frames, p5 / median / p95" for b in bins)
          + " | closing seq.: max of min contrast | other seq.: min of min contrast "
          "| verdicts right: area / or / effective / control | min-ratio MAE: area / effective |")
    print("|---|" + "---|" * (len(bins) + 4))
    seq_rows = []
    for spec in args.preds:
        name, pred = spec.split("=", 1)
        data = measure(args.dataset, pred, args.label, args.ring, args.stat, args.control_label)
        frames = [r for rows in data.values() for r in rows]
        cells = []
        for lo, hi, _ in bins:
            v = np.array([c for t, _, c, _ in frames if lo < t <= hi and not np.isnan(c)])
            cells.append(f"{len(v)}, {np.percentile(v, 5):.2f} / {np.median(v):.2f} / {np.percentile(v, 95):.2f}"
                         if len(v) else "0")
        right = {"area": 0, "or": 0, "effective": 0, "control": 0}
        err = {"area": [], "effective": []}
        closing_max, open_min = -np.inf, np.inf
        seqs = {}
        for s, rows in data.items():
            tmin = min(t for t, _, _, _ in rows)
            pmin = min(q for _, q, _, _ in rows)
            cs = [c for _, _, c, _ in rows if not np.isnan(c)]
            cmin = min(cs) if cs else float("nan")
            emin = min(q * (min(1.0, max(0.0, c / args.tau)) if not np.isnan(c) else 1.0) for _, q, c, _ in rows)
            truth = tmin <= args.closed
            v = {"area": pmin <= args.closed, "or": pmin <= args.closed or cmin <= args.tau,
                 "effective": emin <= args.closed,
                 "control": pmin <= args.closed or any(c <= args.tau and cc >= args.control_min
                                                       for _, _, c, cc in rows)}
            for k in right:
                right[k] += v[k] == truth
            err["area"].append(abs(pmin - tmin))
            err["effective"].append(abs(emin - tmin))
            if truth:
                closing_max = max(closing_max, cmin)
            else:
                open_min = min(open_min, cmin)
            seqs[s] = {"true_min": tmin, "pred_min": pmin, "min_contrast": cmin, "effective_min": emin,
                       "true_closed": truth, **{f"closed_{k}": v[k] for k in v}}
            seq_rows.append(f"| {name} | {s} | {tmin:.3f} | {pmin:.3f} | {cmin:.2f} | {emin:.3f} | "
                            + " / ".join("yes" if x else "no" for x in (truth, v["area"], v["or"], v["effective"], v["control"]))
                            + " |")
        n = len(data)
        fmt = lambda x: f"{x:.2f}" if np.isfinite(x) else "-"
        print(f"| {name} | " + " | ".join(cells) + f" | {fmt(closing_max)} | {fmt(open_min)} | "
              f"{right['area']}/{n} / {right['or']}/{n} / {right['effective']}/{n} / "
              + (f"{right['control']}/{n}" if args.control_label else "-") + " | "
              f"{np.mean(err['area']):.3f} / {np.mean(err['effective']):.3f} |")
        report[name] = {"sequences": seqs, "right": right, "of": n,
                        "mae_area": float(np.mean(err["area"])), "mae_effective": float(np.mean(err["effective"])),
                        "closing_max_min_contrast": closing_max, "open_min_min_contrast": open_min}
    if args.sequences:
        print("\n| method | sequence | true min ratio | predicted min ratio | min contrast | effective min ratio "
              "| closed: true / area / or / effective / control |")
        print("|---|---|---|---|---|---|---|")
        print("\n".join(seq_rows))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(report, fh, indent=1, default=float)


if __name__ == "__main__":
    main()
