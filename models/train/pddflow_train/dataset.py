"""Dataset access for pddflow training: the layout pddflow-eval reads (tools/src/eval/dataset.rs) and
pddflow-phantom writes.

DATASET/<seq>/frames/NNNNNN.png   8-bit B-mode frames, in display order
DATASET/<seq>/masks/NNNNNN.png    label maps (0 bg, 1 vein, 2 artery) for annotated frames
DATASET/<seq>/flow/NNNNNN.flo     optional: backward flow of that frame to the sequence's first frame
DATASET/<seq>/meta.json           optional

Everything is resized to the model input (size x size): frames bilinear (area when
shrinking), masks nearest, flows bilinear with their vectors rescaled.
Pair samplers:
  random  - random pairs at given frame distance(s) (paper pre-training: 6)
  task    - a fixed frame early in the sequence (first fifth), moving frames every 4 frames
  synth   - one frame warped by a random smooth motion (exact flow and mask; used for a
            quick self-supervised warm-up and as an augmentation on sparse recordings)
"""
import json
import os

import cv2
import numpy as np


def read_flo(path):
    with open(path, "rb") as f:
        tag = np.frombuffer(f.read(4), np.float32)[0]
        assert abs(tag - 202021.25) < 1e-3, f"bad .flo tag in {path}"
        w, h = np.frombuffer(f.read(8), np.int32)
        data = np.frombuffer(f.read(), np.float32, count=int(w) * int(h) * 2)
    return data.reshape(int(h), int(w), 2).copy()


def resize_flow(fl, size):
    h, w = fl.shape[:2]
    out = cv2.resize(fl, (size, size), interpolation=cv2.INTER_LINEAR)
    out[..., 0] *= size / w
    out[..., 1] *= size / h
    return out


def resize_frame(img, size):
    h, w = img.shape[:2]
    interp = cv2.INTER_AREA if (h > size or w > size) else cv2.INTER_LINEAR
    return cv2.resize(img, (size, size), interpolation=interp)


class Sequence:
    def __init__(self, path, size=256, load_flow=True):
        self.path = path
        self.name = os.path.basename(os.path.normpath(path))
        # unique across dataset roots (teacher-cache key)
        self.uid = os.path.basename(os.path.dirname(os.path.normpath(path))) + "-" + self.name
        fdir = os.path.join(path, "frames")
        self.names = sorted(n for n in os.listdir(fdir) if n.endswith(".png"))
        self.frames = []
        self.native_shape = None
        for n in self.names:
            im = cv2.imread(os.path.join(fdir, n), cv2.IMREAD_GRAYSCALE)
            self.native_shape = im.shape
            self.frames.append(resize_frame(im, size).astype(np.float32) / 255.0)
        self.frames = np.stack(self.frames)
        self.masks, self.native_masks = {}, {}
        mdir = os.path.join(path, "masks")
        for i, n in enumerate(self.names):
            p = os.path.join(mdir, n)
            if os.path.exists(p):
                m = cv2.imread(p, cv2.IMREAD_UNCHANGED)
                if m.ndim == 3:
                    m = m[..., 0]
                self.native_masks[i] = m
                self.masks[i] = cv2.resize(m, (size, size), interpolation=cv2.INTER_NEAREST)
        self.flows = {}
        fl_dir = os.path.join(path, "flow")
        if load_flow and os.path.isdir(fl_dir):
            for i, n in enumerate(self.names):
                p = os.path.join(fl_dir, n[:-4] + ".flo")
                if os.path.exists(p):
                    self.flows[i] = resize_flow(read_flo(p), size)
            if 0 not in self.flows and len(self.flows):
                self.flows[0] = np.zeros((size, size, 2), np.float32)
        mp = os.path.join(path, "meta.json")
        self.meta = json.load(open(mp)) if os.path.exists(mp) else {}

    def __len__(self):
        return len(self.frames)


def load_sequences(root, names=None, size=256, exclude=()):
    seqs = []
    for n in sorted(os.listdir(root)):
        p = os.path.join(root, n)
        if not os.path.isdir(os.path.join(p, "frames")):
            continue
        if names is not None and n not in names:
            continue
        if n in exclude:
            continue
        seqs.append(Sequence(p, size))
    return seqs


def _sample(fl, x, y):
    return cv2.remap(fl, x, y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def pair_gt_flow(seq, i, j, iters=6):
    """Backward flow from frame j (current) to frame i (reference) from the per-frame
    flows to frame 0: q = p + F_j(p) (in frame 0), then solve r + F_i(r) = q."""
    if i not in seq.flows or j not in seq.flows:
        return None
    Fj = seq.flows[j]
    if i == 0:
        return Fj.copy()
    h, w = Fj.shape[:2]
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    qx, qy = gx + Fj[..., 0], gy + Fj[..., 1]
    Fi = seq.flows[i]
    rx, ry = qx.copy(), qy.copy()
    for _ in range(iters):
        s = _sample(Fi, rx, ry)
        rx, ry = qx - s[..., 0], qy - s[..., 1]
    return np.stack([rx - gx, ry - gy], -1)


def warp_np(x, flow, interp=cv2.INTER_LINEAR):
    h, w = flow.shape[:2]
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    return cv2.remap(x, gx + flow[..., 0], gy + flow[..., 1], interp, borderMode=cv2.BORDER_REPLICATE)


def random_motion(size, rng, max_shift=40.0, max_rot=6.0, max_scale=0.08, local=4.0):
    """Random smooth backward flow field [size,size,2]: affine + smooth random field
    (+ a random local compression blob)."""
    c = (size - 1) / 2
    ang = np.deg2rad(rng.uniform(-max_rot, max_rot))
    sx, sy = 1 + rng.uniform(-max_scale, max_scale), 1 + rng.uniform(-max_scale, max_scale)
    t = rng.uniform(-max_shift, max_shift, 2) * (rng.rand() ** 0.5)
    gx, gy = np.meshgrid(np.arange(size, dtype=np.float32), np.arange(size, dtype=np.float32))
    X, Y = gx - c, gy - c
    ca, sa = np.cos(ang), np.sin(ang)
    xs = sx * (ca * X - sa * Y) + c + t[0]
    ys = sy * (sa * X + ca * Y) + c + t[1]
    fl = np.stack([xs - gx, ys - gy], -1).astype(np.float32)
    g = rng.randn(4, 4, 2).astype(np.float32) * local
    fl += cv2.resize(g, (size, size), interpolation=cv2.INTER_CUBIC)
    if rng.rand() < 0.5:  # local compression / expansion around a random centre
        cx, cy = rng.uniform(0.2, 0.8, 2) * size
        r = rng.uniform(0.08, 0.2) * size
        k = rng.uniform(-0.4, 0.4)
        wgt = np.exp(-((gx - cx) ** 2 + (gy - cy) ** 2) / (2 * r * r))
        fl[..., 0] += k * (gx - cx) * wgt * 0.3
        fl[..., 1] += k * (gy - cy) * wgt
    return fl


def augment_pair(a, b, rng, strength=1.0):
    """Ultrasound-style intensity augmentation: gain, dynamic range (gamma), depth
    attenuation, multiplicative speckle; shared parameters with small per-frame jitter."""
    if strength <= 0:
        return a, b
    h, w = a.shape
    gain = np.exp(rng.uniform(-0.3, 0.3) * strength)
    gamma = np.exp(rng.uniform(-0.35, 0.35) * strength)
    att = rng.uniform(-0.6, 0.6) * strength
    depth = np.exp(att * np.linspace(0, 1, h, dtype=np.float32))[:, None]
    out = []
    for x in (a, b):
        g = gain * np.exp(rng.uniform(-0.05, 0.05) * strength)
        y = np.clip(x * g * depth, 0, 1) ** gamma
        if rng.rand() < 0.5 * strength:
            sp = rng.rayleigh(1.0, size=(h, w)).astype(np.float32) / 1.2533
            sp = cv2.GaussianBlur(sp, (0, 0), 0.7)
            y = y * (1 + rng.uniform(0.05, 0.25) * (sp - 1))
        out.append(np.clip(y, 0, 1).astype(np.float32))
    return out


class PairSampler:
    """Yields dicts: ref, cur [H,W] f32; mref, mcur [H,W] int64 or None; flow [H,W,2] or None;
    key (seq, i, j) for the teacher cache (None for synthetic pairs)."""

    def __init__(self, seqs, mode="random", distances=(6,), task_step=4, synth_prob=0.0, aug=1.0, seed=0,
                 max_shift=40.0, fast_frac=0.0, fast_top=0.2):
        self.seqs = seqs
        self.mode = mode
        self.distances = list(distances)
        self.task_step = task_step
        self.synth_prob = synth_prob
        self.aug = aug
        self.rng = np.random.RandomState(seed)
        self.max_shift = max_shift
        self.pairs = self._enumerate()
        # "fast" pairs: the fraction fast_top of this sampler's pairs (ground-truth flow needed) in
        # which the vessels move fastest; a vein reopening by 4-5 px per frame is rare among random pairs
        self.fast_frac = fast_frac
        self.fast = self._fastest(fast_top) if fast_frac > 0 and mode == "random" else []

    def _fastest(self, top):
        scored = []
        for k, (s, i, j) in enumerate(self.pairs):
            seq = self.seqs[s]
            m = seq.masks.get(i)
            if m is None or i not in seq.flows or j not in seq.flows or not (m > 0).any():
                continue
            # |F_j - F_i| per frame over the reference's vein (else its vessels): the pair's speed, to
            # first order; the vein is what compresses and reopens
            sel = (m == 1) if (m == 1).any() else (m > 0)
            d = seq.flows[j][sel] - seq.flows[i][sel]
            scored.append((float(np.sqrt((d ** 2).sum(-1)).mean()) / abs(j - i), k))
        scored.sort(reverse=True)
        return [k for _, k in scored[:max(1, int(len(scored) * top))]] if scored else []

    def _enumerate(self):
        pairs = []
        for s, seq in enumerate(self.seqs):
            n = len(seq)
            if self.mode == "random":
                for d in self.distances:
                    for i in range(n):
                        for j in (i - d, i + d):
                            if 0 <= j < n:
                                pairs.append((s, i, j))
            elif self.mode == "task":
                early = max(1, n // 5)
                for i in range(early):
                    for j in range(i + self.task_step, n, self.task_step):
                        pairs.append((s, i, j))
            elif self.mode == "synth":
                for i in range(n):
                    pairs.append((s, i, i))
        return pairs

    def __len__(self):
        return len(self.pairs)

    def synth(self, s, i):
        seq = self.seqs[s]
        size = seq.frames.shape[1]
        fl = random_motion(size, self.rng, max_shift=self.max_shift)
        ref = seq.frames[i]
        cur = warp_np(ref, fl)
        m = seq.masks.get(i)
        mcur = None
        if m is not None:
            oh = np.eye(max(3, int(m.max()) + 1), dtype=np.float32)[m]
            mcur = np.argmax(warp_np(oh, fl), -1).astype(np.int64)
            m = m.astype(np.int64)
        return ref, cur, m, mcur, fl

    def get(self, idx):
        if self.fast and self.rng.rand() < self.fast_frac:
            idx = self.fast[self.rng.randint(len(self.fast))]
        s, i, j = self.pairs[idx]
        seq = self.seqs[s]
        if self.mode == "synth" or self.rng.rand() < self.synth_prob:
            ref, cur, mref, mcur, fl = self.synth(s, i)
            key = None
        else:
            ref, cur = seq.frames[i], seq.frames[j]
            mref = seq.masks.get(i)
            mcur = seq.masks.get(j)
            mref = None if mref is None else mref.astype(np.int64)
            mcur = None if mcur is None else mcur.astype(np.int64)
            fl = pair_gt_flow(seq, i, j)
            key = (seq.uid, seq.names[i], seq.names[j])
        raw = (ref, cur)
        ref, cur = augment_pair(ref, cur, self.rng, self.aug)
        return dict(ref=ref, cur=cur, mref=mref, mcur=mcur, flow=fl, key=key, raw=raw)

    def epoch(self, shuffle=True):
        idx = list(range(len(self.pairs)))
        if shuffle:
            self.rng.shuffle(idx)
        return idx
