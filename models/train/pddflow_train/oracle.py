"""Ceiling of mask propagation on a dataset with ground-truth flow (the phantom): the first
frame's mask warped by the exact flow to every frame (flow/NNNNNN.flo), scored like evaluate.py.

A sequence whose vein collapses completely scores below 100 % even here: near the collapse the
warped mask keeps a few vein pixels where the truth has none (Dice 0 for that frame).

--blur SIGMA smooths the exact flow with a Gaussian of SIGMA pixels first: how much of the score
survives a flow that is right everywhere but half a pixel less sharp than the simulator's own
deformation (a shut vein is a sub-pixel sliver in the truth; only the exact map lands on it).

Usage: python -m pddflow_train.oracle DATASET [--blur SIGMA]
"""
import argparse
import os

import cv2
import numpy as np

from .dataset import read_flo
from .evaluate import CLASS_NAMES, score, warp_labels


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dataset")
    ap.add_argument("--blur", type=float, default=0.0, help="Gaussian sigma (pixels) applied to the exact flow")
    a = ap.parse_args()
    root = a.dataset
    per_class = {}
    for seq in sorted(os.listdir(root)):
        d = os.path.join(root, seq)
        if not os.path.isdir(os.path.join(d, "flow")):
            continue
        names = sorted(n for n in os.listdir(os.path.join(d, "frames")) if n.endswith(".png"))
        ref = cv2.imread(os.path.join(d, "masks", names[0]), cv2.IMREAD_UNCHANGED)
        dice = {}
        for n in names[1:]:
            gt = cv2.imread(os.path.join(d, "masks", n), cv2.IMREAD_UNCHANGED)
            flow = read_flo(os.path.join(d, "flow", n[:-4] + ".flo"))
            if a.blur > 0:
                flow = cv2.GaussianBlur(flow, (0, 0), a.blur)
            pred = warp_labels(ref, flow, 3)
            for c, v in score(pred, gt, [1, 2]).items():
                dice.setdefault(c, []).append(v[0])
        print(seq, " ".join(f"{CLASS_NAMES[c]} {100 * np.mean(v):.1f}" for c, v in sorted(dice.items())))
        for c, v in dice.items():
            per_class.setdefault(c, []).append(np.mean(v))
    print("mean ± std over sequences:",
          " | ".join(f"{CLASS_NAMES[c]} Dice {100 * np.mean(v):.1f} ± {100 * np.std(v):.1f}"
                     for c, v in sorted(per_class.items())))


if __name__ == "__main__":
    main()
