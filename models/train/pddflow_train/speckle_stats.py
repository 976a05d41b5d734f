#!/usr/bin/env python3
"""Speckle statistics of a dataset (pddflow layout), for calibrating the phantom against physics.

1. Speckle size: in the most homogeneous tissue window of frame 0 (no vessel within 4 px; the
   window whose 8x8-block means of the log image vary least relative to their mean), the normalised autocorrelation of
   the 8-bit (log-compressed) image minus its mean; its full width at half maximum along the
   axial (rows) and lateral (columns) lags, in px and as a fraction of the frame's height/width.
   Averaged over --frames frames (the same window, each frame's own content); in mm too where
   meta.json gives the pixel spacing. Also the window's grey-level mean and std (8-bit).
2. Decorrelation under compression: tissue windows (16x16 px, no vessel within 4 px) on a grid;
   for every frame t, the NCC between frame 0 and frame t in each window, raw (same pixels) and
   motion-compensated (frame 0 sampled at p + flow(p), the ground-truth backward flow), against
   the window's mean displacement (px) and mean absolute axial strain |d flow_y / d y| (from the
   same flow). Binned tables.

Usage:
  python -m pddflow_train.speckle_stats DATASET [--seqs a,b] [--frames 8] [--window 24] [--json OUT]
"""

import argparse
import json
import os
import sys

import cv2
import numpy as np


def read_flo(path):
    with open(path, "rb") as fh:
        magic = np.fromfile(fh, "<f4", 1)[0]
        if magic != np.float32(202021.25):
            raise ValueError(f"{path}: not a .flo file")
        w, h = np.fromfile(fh, "<i4", 2)
        return np.fromfile(fh, "<f4", w * h * 2).reshape(h, w, 2)


def sequences(root, names):
    if os.path.isdir(os.path.join(root, "frames")):
        return [root]
    seqs = sorted(os.path.join(root, d) for d in os.listdir(root)
                  if os.path.isdir(os.path.join(root, d, "frames")))
    if names:
        seqs = [s for s in seqs if os.path.basename(s) in names.split(",")]
    return seqs


def tissue_mask(labels, margin=4):
    vessel = (labels > 0).astype(np.uint8)
    if margin:
        vessel = cv2.dilate(vessel, np.ones((2 * margin + 1, 2 * margin + 1), np.uint8))
    return vessel == 0


def homogeneous_window(img, tissue, size):
    """Top-left corner of the size x size tissue window whose 8x8 block means vary least."""
    h, w = img.shape
    best, corner = None, None
    step = max(2, size // 6)
    logimg = img.astype(np.float64)
    for y in range(4, h - size - 4, step):
        for x in range(4, w - size - 4, step):
            if not tissue[y:y + size, x:x + size].all():
                continue
            win = logimg[y:y + size, x:x + size]
            b = size // 8
            blocks = win[:b * 8, :b * 8].reshape(b, 8, b, 8).mean(axis=(1, 3))
            score = blocks.std() / max(blocks.mean(), 1.0)  # relative: not just the darkest window
            if best is None or score < best:
                best, corner = score, (y, x)
    return corner


def autocorr_fwhm(win):
    """Axial and lateral FWHM (px) of the normalised autocorrelation of a window."""
    a = win.astype(np.float64) - win.mean()
    h, w = a.shape
    f = np.fft.rfft2(a, s=(2 * h, 2 * w))
    ac = np.fft.irfft2(np.abs(f) ** 2, s=(2 * h, 2 * w))
    ac = np.fft.fftshift(ac)
    cy, cx = h, w
    ac = ac / ac[cy, cx]

    def fwhm(profile):
        # profile[0] = 1 at zero lag; first crossing of 0.5, linear interpolation, both sides
        for k in range(1, len(profile)):
            if profile[k] < 0.5:
                x = k - 1 + (profile[k - 1] - 0.5) / (profile[k - 1] - profile[k])
                return 2 * x
        return float("nan")

    axial = fwhm(0.5 * (ac[cy:cy + h, cx] + ac[cy:0:-1, cx]))
    lateral = fwhm(0.5 * (ac[cy, cx:cx + w] + ac[cy, cx:0:-1]))
    return axial, lateral


def ncc(a, b):
    a = a - a.mean()
    b = b - b.mean()
    d = np.sqrt((a * a).sum() * (b * b).sum())
    return float((a * b).sum() / d) if d > 0 else float("nan")


def speckle_size(seq, frames, size):
    files = sorted(os.listdir(os.path.join(seq, "frames")))
    img0 = cv2.imread(os.path.join(seq, "frames", files[0]), cv2.IMREAD_GRAYSCALE)
    lab0 = cv2.imread(os.path.join(seq, "masks", files[0]), cv2.IMREAD_UNCHANGED)
    corner = homogeneous_window(img0, tissue_mask(lab0), size)
    if corner is None:
        return None
    y, x = corner
    picks = np.linspace(0, len(files) - 1, frames).astype(int)
    ax, lat, snr, means, stds = [], [], [], [], []
    for i in picks:
        img = cv2.imread(os.path.join(seq, "frames", files[i]), cv2.IMREAD_GRAYSCALE)
        win = img[y:y + size, x:x + size]
        a, l_ = autocorr_fwhm(win)
        ax.append(a)
        lat.append(l_)
        snr.append(win.std() / max(win.mean(), 1e-9))
        means.append(win.mean())
        stds.append(win.std())
    h, w = img0.shape
    spacing = None
    meta = os.path.join(seq, "meta.json")
    if os.path.isfile(meta):
        with open(meta) as fh:
            spacing = json.load(fh).get("pixel_spacing_mm")
    mm = {}
    if spacing:
        mm = {"axial_fwhm_mm": float(np.nanmean(ax) * spacing[1]),
              "lateral_fwhm_mm": float(np.nanmean(lat) * spacing[0])}
    return {**mm, "window": [int(y), int(x), size], "frame_size": [w, h],
            "mean_8bit": float(np.mean(means)), "std_8bit": float(np.mean(stds)),
            "axial_fwhm_px": float(np.nanmean(ax)), "lateral_fwhm_px": float(np.nanmean(lat)),
            "axial_fraction": float(np.nanmean(ax) / h), "lateral_fraction": float(np.nanmean(lat) / w),
            "std_over_mean_8bit": float(np.mean(snr)), "frames": len(picks)}


def decorrelation(seq, win=16, step=4):
    files = sorted(os.listdir(os.path.join(seq, "frames")))
    if not os.path.isdir(os.path.join(seq, "flow")):
        return []
    img0 = cv2.imread(os.path.join(seq, "frames", files[0]), cv2.IMREAD_GRAYSCALE).astype(np.float32)
    h, w = img0.shape
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    rows = []
    for i in range(1, len(files), step):
        stem = os.path.splitext(files[i])[0]
        flo_path = os.path.join(seq, "flow", stem + ".flo")
        if not os.path.isfile(flo_path):
            continue
        img = cv2.imread(os.path.join(seq, "frames", files[i]), cv2.IMREAD_GRAYSCALE).astype(np.float32)
        lab = cv2.imread(os.path.join(seq, "masks", files[i]), cv2.IMREAD_UNCHANGED)
        lab0 = cv2.imread(os.path.join(seq, "masks", files[0]), cv2.IMREAD_UNCHANGED)
        flow = read_flo(flo_path)
        qx, qy = xs + flow[..., 0], ys + flow[..., 1]
        warped0 = cv2.remap(img0, qx, qy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                            borderValue=-1)
        valid = (warped0 >= 0) & (qx >= 0) & (qy >= 0) & (qx <= w - 1) & (qy <= h - 1)
        tissue = tissue_mask(lab) & tissue_mask(lab0) & valid
        strain = np.abs(np.gradient(flow[..., 1], axis=0))
        disp = np.hypot(flow[..., 0], flow[..., 1])
        for y in range(0, h - win + 1, win):
            for x in range(0, w - win + 1, win):
                if not tissue[y:y + win, x:x + win].all():
                    continue
                a0 = img0[y:y + win, x:x + win]
                at = img[y:y + win, x:x + win]
                rows.append((float(disp[y:y + win, x:x + win].mean()),
                             float(strain[y:y + win, x:x + win].mean()),
                             ncc(a0, at), ncc(warped0[y:y + win, x:x + win], at)))
    return rows


def binned(rows, col, edges, value):
    out = []
    arr = np.array(rows, dtype=np.float64)
    if arr.size == 0:
        return out
    for lo, hi in zip(edges[:-1], edges[1:]):
        sel = (arr[:, col] >= lo) & (arr[:, col] < hi)
        vals = arr[sel, value]
        vals = vals[np.isfinite(vals)]
        out.append({"lo": lo, "hi": hi, "windows": int(sel.sum()),
                    "ncc_mean": float(vals.mean()) if len(vals) else None})
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("dataset")
    p.add_argument("--seqs", help="comma-separated sequence names (default: all)")
    p.add_argument("--frames", type=int, default=8, help="frames averaged for the speckle size")
    p.add_argument("--window", type=int, default=24, help="homogeneous window size (px)")
    p.add_argument("--step", type=int, default=4, help="every step-th frame for decorrelation")
    p.add_argument("--json", help="write the results here")
    args = p.parse_args()
    seqs = sequences(args.dataset, args.seqs)
    if not seqs:
        sys.exit(f"speckle_stats.py: no sequences in {args.dataset}")
    sizes, rows = [], []
    for s in seqs:
        r = speckle_size(s, args.frames, args.window)
        if r:
            r["sequence"] = os.path.basename(s)
            sizes.append(r)
        rows += decorrelation(s, step=args.step)
    keys = ("axial_fwhm_px", "lateral_fwhm_px", "axial_fraction", "lateral_fraction",
            "axial_fwhm_mm", "lateral_fwhm_mm", "mean_8bit", "std_8bit", "std_over_mean_8bit")
    mean = {k: float(np.mean([r[k] for r in sizes])) for k in keys
            if sizes and all(k in r for r in sizes)}
    result = {
        "dataset": args.dataset, "sequences": len(seqs), "speckle": sizes, "speckle_mean": mean,
        "decorrelation_windows": len(rows),
        "ncc_vs_displacement_px": binned(rows, 0, [0, 0.5, 1, 2, 4, 8, 16, 64], 2),
        "ncc_compensated_vs_axial_strain": binned(rows, 1, [0, 0.01, 0.02, 0.05, 0.1, 0.2, 0.4, 1.0], 3),
        "ncc_raw_vs_axial_strain": binned(rows, 1, [0, 0.01, 0.02, 0.05, 0.1, 0.2, 0.4, 1.0], 2),
    }
    text = json.dumps(result, indent=1)
    if args.json:
        with open(args.json, "w") as fh:
            fh.write(text)
    print(f"speckle (mean of {len(sizes)} sequences): " + ", ".join(f"{k} {v:.3f}" for k, v in mean.items()))
    for name, key in (("raw NCC vs displacement (px)", "ncc_vs_displacement_px"),
                      ("motion-compensated NCC vs axial strain", "ncc_compensated_vs_axial_strain"),
                      ("raw NCC vs axial strain", "ncc_raw_vs_axial_strain")):
        print(name + ":")
        for b in result[key]:
            v = "–" if b["ncc_mean"] is None else f"{b['ncc_mean']:.3f}"
            print(f"  [{b['lo']}, {b['hi']}): {v} ({b['windows']} windows)")


if __name__ == "__main__":
    main()
