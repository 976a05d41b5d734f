#!/usr/bin/env python3
"""The compression exam's readout per method: the vein's smallest area over a sequence as a
fraction of its reference (frame-0) area, predicted vs true, its absolute error, and the
vein-closed verdict (smallest area at most 5 % of the reference) right or wrong.

Predictions are pddflow-eval's or scripts/baselines.py's (PRED/<sequence>/masks/*.png); frames
without a prediction (the reference) are skipped. Prints a Markdown table and optional JSON.

Usage:
  python -m pddflow_train.vein_readout --dataset DIR NAME=PRED [NAME=PRED ...] [--json OUT] [--closed 0.05]
"""

import argparse
import json
import os

import cv2
import numpy as np


def area(path, label):
    m = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    return int((m == label).sum()) if m is not None else None


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", required=True)
    p.add_argument("preds", nargs="+", metavar="NAME=PRED")
    p.add_argument("--label", type=int, default=1)
    p.add_argument("--closed", type=float, default=0.05)
    p.add_argument("--json")
    args = p.parse_args()
    seqs = sorted(d for d in os.listdir(args.dataset)
                  if os.path.isdir(os.path.join(args.dataset, d, "masks")))
    truth = {}
    for s in seqs:
        files = sorted(os.listdir(os.path.join(args.dataset, s, "masks")))
        ref = area(os.path.join(args.dataset, s, "masks", files[0]), args.label)
        if not ref:
            continue
        truth[s] = (files, ref, [area(os.path.join(args.dataset, s, "masks", f), args.label) / ref
                                 for f in files[1:]])
    out = {}
    print("| method | sequence | true min ratio | predicted min ratio | abs error | closed (true / predicted) |")
    print("|---|---|---|---|---|---|")
    for spec in args.preds:
        name, pred = spec.split("=", 1)
        errs, right = [], 0
        rows = []
        for s, (files, ref, tr) in truth.items():
            pr = []
            for f in files[1:]:
                a = area(os.path.join(pred, s, "masks", f), args.label)
                if a is not None:
                    pr.append(a / ref)
            if not pr:
                continue
            tmin, pmin = min(tr), min(pr)
            tc, pc = tmin <= args.closed, pmin <= args.closed
            errs.append(abs(pmin - tmin))
            right += tc == pc
            rows.append({"sequence": s, "true_min": tmin, "pred_min": pmin, "error": abs(pmin - tmin),
                         "true_closed": tc, "pred_closed": pc})
            print(f"| {name} | {s} | {tmin:.3f} | {pmin:.3f} | {abs(pmin - tmin):.3f} | "
                  f"{'yes' if tc else 'no'} / {'yes' if pc else 'no'} |")
        out[name] = {"sequences": rows, "mean_abs_error": float(np.mean(errs)) if errs else None,
                     "closed_right": right, "closed_of": len(rows)}
        if errs:
            print(f"| **{name}** | mean | | | **{np.mean(errs):.3f}** | {right}/{len(rows)} verdicts right |")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(out, fh, indent=1)


if __name__ == "__main__":
    main()
