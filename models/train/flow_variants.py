"""Chain-mode vein and artery Dice of inference-time variants of the shipped flow head, in PyTorch,
without exporting: the Lucas-Kanade levels after the PDD-Net (scale, iterations, window, clip), a
softer soft-argmin, and confidence-weighted filling of the flow in textureless windows (an
anechoic lumen). Used to check ideas on training sequences before touching the export.

Each variant is JSON: {"levels": [[scale, iters, window, clip], ...], "gamma_scale": g,
"fill": {"window": K, "tau": t}}. With the default checkpoint (models/default/pddnet.pt, 0.4.0)
{"levels": [[2, 1, 9, 1.0]]} is the shipped model; with 0.3.0's checkpoint
(`git show a289e99:models/default/pddnet.pt`) {"levels": [[2, 2, 9, 1.0]]} is 0.3.0 (same numbers
as evaluate.py). Scores: DESIGN.md protocol, plus the vein's Dice over its open
frames (evaluate.py's CLOSED_FRACTION).

Usage: python flow_variants.py DATASET --seqs a,b --checkpoint models/default/pddnet.pt VARIANT...
"""
import argparse
import json
import os
import sys

import cv2
import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from dataset import warp_np  # noqa: E402
from evaluate import CLOSED_FRACTION, score, warp_labels  # noqa: E402
from export import load_checkpoint  # noqa: E402
from pddnet import warp  # noqa: E402


def box(x, k):
    """Separable k x k window mean (zero padding counted)."""
    x = F.avg_pool2d(x, (k, 1), 1, (k // 2, 0), count_include_pad=True)
    return F.avg_pool2d(x, (1, k), 1, (0, k // 2), count_include_pad=True)


def fill_textureless(u, texture, window, tau):
    """Blend the flow towards its texture-weighted window mean where the window has little texture."""
    w = texture / (texture + tau * texture.mean())
    filled = box(w * u, window) / (box(w, window) + 1e-6)
    return w * u + (1 - w) * filled


def lucas_kanade(net, u, img_r, img_c, iters, window, clip, fill=None, lam=1e-3, eps=1e-4):
    """The export's LK step (pddnet.PDDNet.lk) at any resolution; u in pixels of that resolution."""
    gcx, gcy = net._grad(img_c)
    if fill:
        texture = F.avg_pool2d(gcx * gcx + gcy * gcy, window, 1, window // 2, count_include_pad=True)
        u = fill_textureless(u, texture, fill["window"], fill["tau"])
    for _ in range(iters):
        wr = warp(img_r, u)
        grx, gry = net._grad(wr)
        gx, gy = 0.5 * (grx + gcx), 0.5 * (gry + gcy)
        e = img_c - wr
        sm = F.avg_pool2d(torch.cat([gx * gx, gx * gy, gy * gy, gx * e, gy * e], 1), window, 1, window // 2,
                          count_include_pad=True)
        a, b, d, ex, ey = sm[:, 0:1], sm[:, 1:2], sm[:, 2:3], sm[:, 3:4], sm[:, 4:5]
        reg = lam * (a + d) + eps
        a, d = a + reg, d + reg
        det = a * d - b * b
        u = u + torch.cat([(d * ex - b * ey) / det, (a * ey - b * ex) / det], 1).clamp(-clip, clip)
    return u


def downsample(img, scale):
    """The features graph's half-resolution image (3x3 mean, stride 2), applied log2(scale) times."""
    while scale > 1:
        img = F.avg_pool2d(img, 3, 2, 1)
        scale //= 2
    return img


def make_flow(checkpoint, variant):
    net, _ = load_checkpoint(checkpoint, {"lk_iters": 0})
    net.eval()
    if "gamma_scale" in variant:
        with torch.no_grad():
            g = torch.sigmoid(net.log_gamma) * variant["gamma_scale"]
            net.log_gamma.copy_(torch.log(g / (1 - g)))

    def flow(ref, cur):
        r = torch.from_numpy(ref.astype(np.float32) / 255.0)[None, None]
        c = torch.from_numpy(cur.astype(np.float32) / 255.0)[None, None]
        with torch.no_grad():
            fl = net(r, c)
            for scale, iters, window, clip in variant.get("levels", []):
                rs, cs = downsample(r, scale), downsample(c, scale)
                u = F.interpolate(fl, size=rs.shape[-2:], mode="bilinear", align_corners=False) / scale
                u = lucas_kanade(net, u, rs, cs, iters, window, clip, variant.get("fill"))
                fl = F.interpolate(u * scale, size=r.shape[-2:], mode="bilinear", align_corners=False)
        return fl[0].numpy().transpose(1, 2, 0)
    return flow


def chain_scores(seq_dir, flow):
    names = sorted(n for n in os.listdir(os.path.join(seq_dir, "frames")) if n.endswith(".png"))
    frames = [cv2.imread(os.path.join(seq_dir, "frames", n), cv2.IMREAD_GRAYSCALE) for n in names]
    masks = [cv2.imread(os.path.join(seq_dir, "masks", n), cv2.IMREAD_UNCHANGED) for n in names]
    rest_vein = (masks[0] == 1).sum()
    dice, vein_open = {1: [], 2: []}, []
    comp = None
    for i in range(1, len(frames)):
        step = flow(frames[i - 1], frames[i])
        comp = step if comp is None else step + warp_np(comp, step)
        for c, v in score(warp_labels(masks[0], comp, 3), masks[i], [1, 2]).items():
            dice[c].append(v[0])
            if c == 1 and (masks[i] == 1).sum() >= CLOSED_FRACTION * rest_vein:
                vein_open.append(v[0])
    mean = lambda x: float(np.mean(x)) if x else float("nan")  # noqa: E731
    return mean(dice[1]), mean(vein_open), mean(dice[2])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dataset")
    ap.add_argument("--seqs", required=True, help="comma list")
    ap.add_argument("--checkpoint", default=os.path.join(os.path.dirname(__file__), "..", "default", "pddnet.pt"))
    ap.add_argument("variants", nargs="+", help="JSON, see the module doc")
    a = ap.parse_args()
    torch.set_num_threads(1)
    for spec in a.variants:
        flow = make_flow(a.checkpoint, json.loads(spec))
        per = {s: chain_scores(os.path.join(a.dataset, s), flow) for s in a.seqs.split(",")}
        vein, vein_open, artery = (100 * np.nanmean([p[k] for p in per.values()]) for k in range(3))
        print(f"{spec}: chain vein {vein:.1f} (open frames {vein_open:.1f}) artery {artery:.1f} | "
              + " ".join(f"{s}:{100 * p[0]:.0f}/{100 * p[1]:.0f}" for s, p in per.items()), flush=True)


if __name__ == "__main__":
    main()
