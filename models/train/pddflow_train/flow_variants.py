"""Chain-mode vein and artery Dice of inference-time variants of the shipped flow head, in PyTorch,
without exporting: the Lucas-Kanade levels after the PDD-Net (scale, iterations, window, clip), a
softer soft-argmin, and confidence-weighted filling of the flow in textureless windows (an
anechoic lumen). Used to check ideas on training sequences before touching the export.

Each variant is JSON: {"levels": [[scale, iters, window, clip], ...], "gamma_scale": g,
"fill": {"window": K, "tau": t}}. With the default checkpoint (models/default/pddnet.pt, 0.5.0)
{"levels": [[2, 1, 9, 1.0]]} is the shipped model; with 0.3.0's checkpoint
(`git show a289e99:models/default/pddnet.pt`) {"levels": [[2, 2, 9, 1.0]]} is 0.3.0 (same numbers
as evaluate.py). Scores: evaluate.py's (pddflow-eval's protocol), plus the vein's Dice over its open
frames (evaluate.py's CLOSED_FRACTION).

Usage: python -m pddflow_train.flow_variants DATASET --seqs a,b --checkpoint models/default/pddnet.pt VARIANT...
"""
import argparse
import json
import os

import numpy as np
import torch
import torch.nn.functional as F

from .evaluate import eval_sequence
from .export import load_checkpoint
from .lk import central_gradients, lucas_kanade


def box(x, k):
    """Separable k x k window mean (zero padding counted)."""
    x = F.avg_pool2d(x, (k, 1), 1, (k // 2, 0), count_include_pad=True)
    return F.avg_pool2d(x, (1, k), 1, (0, k // 2), count_include_pad=True)


def fill_textureless(u, texture, window, tau):
    """Blend the flow towards its texture-weighted window mean where the window has little texture."""
    w = texture / (texture + tau * texture.mean())
    filled = box(w * u, window) / (box(w, window) + 1e-6)
    return w * u + (1 - w) * filled


def lucas_kanade_level(u, img_r, img_c, iters, window, clip, fill=None, lam=1e-3, eps=1e-4):
    """The export's LK steps (lk.lucas_kanade, the model's defaults for lam and eps) at any
    resolution, optionally after filling the flow in textureless windows."""
    if fill:
        gcx, gcy = central_gradients(img_c)
        texture = F.avg_pool2d(gcx * gcx + gcy * gcy, window, 1, window // 2, count_include_pad=True)
        u = fill_textureless(u, texture, fill["window"], fill["tau"])
    return lucas_kanade(u, img_r, img_c, iters, window, lam, eps, clip)


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
            g = torch.sigmoid(net.head.gamma_logit) * variant["gamma_scale"]
            net.head.gamma_logit.copy_(torch.log(g / (1 - g)))

    def flow(ref, cur):
        r = torch.from_numpy(ref.astype(np.float32) / 255.0)[None, None]
        c = torch.from_numpy(cur.astype(np.float32) / 255.0)[None, None]
        with torch.no_grad():
            fl = net(r, c)
            for scale, iters, window, clip in variant.get("levels", []):
                rs, cs = downsample(r, scale), downsample(c, scale)
                u = F.interpolate(fl, size=rs.shape[-2:], mode="bilinear", align_corners=False) / scale
                u = lucas_kanade_level(u, rs, cs, iters, window, clip, variant.get("fill"))
                fl = F.interpolate(u * scale, size=r.shape[-2:], mode="bilinear", align_corners=False)
        return fl[0].numpy().transpose(1, 2, 0)
    return flow


def chain_scores(seq_dir, flow):
    """(vein Dice, vein Dice over open frames, artery Dice) in chain mode, as evaluate.py scores them."""
    res = eval_sequence(seq_dir, flow, "chain")
    nan = float("nan")
    return res.get(1, {}).get("dice", nan), res.get(1, {}).get("dice_open", nan), res.get(2, {}).get("dice", nan)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dataset")
    ap.add_argument("--seqs", required=True, help="comma list")
    ap.add_argument("--checkpoint", default=os.path.join(os.path.dirname(__file__), "..", "..", "default", "pddnet.pt"))
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
