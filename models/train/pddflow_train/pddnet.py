"""The pddflow student: the paper's 2D PDD-Net (Heinrich 2019; Nicke et al. adaptation) with two
levels beyond the paper, in PyTorch.

    pdd_core.py   the paper's PDD-Net: feature CNN with its Obelisk layer (PDDFeatures) and the
                  flow head: cost volume, min-convolution, mean field, soft-argmin (PDDHead)
    refine.py     refinement level at stride 4 (refine=1): fine features, residual flow
    lk.py         Lucas-Kanade level (lk_iters > 0): Gauss-Newton steps at half resolution
    PDDNet        composes them: features(image) is a packed feature tensor,
                  flow(reference_features, current_features) the flow

Packed feature tensor (training's form; the ONNX export writes its parts as separate feature
maps, export.feature_maps, and split_features is the inverse): the C unit-norm PDD-Net channels
at H/s, then, with refine=1, the fine features [cf, H/4, W/4] by space-to-depth (4*cf channels
at s = 8), then, with lk_iters > 0, the half-resolution image [1, H/2, W/2] by space-to-depth
((s/2)^2 channels).

Flow: the PDD-Net's flow at H/s, refined to H/4 (with flat_eps: none where nothing can be
matched, PDDNet.keep), then to H/2 by Lucas-Kanade (each level only when configured), upsampled
bilinearly to [B,2,H,W] (align_corners=False).

Flow convention: BACKWARD flow. For pixel p of the current frame, p + flow(p) is where
p was in the reference frame; warping the reference mask: mask_t(p) = mask_ref(p + flow(p)).

Checkpoints store the state dict under the names below; upgrade_state_dict reads those written
before the levels were separate modules (flat names such as conv0.weight, fconv0.weight,
rconv0.weight, and log_alpha / log_mf / log_gamma, which were logits, not logarithms).
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

from .lk import LucasKanade, flatness
from .pdd_core import PDDFeatures, PDDHead
from .refine import FineFeatures, Refinement

DEFAULT_CONFIG = dict(
    input_size=256,   # H = W of the model input
    stride=8,         # feature stride (4 or 8)
    c0=4,             # channels of the first conv
    K=16,             # Obelisk offset pairs
    R=3,              # Obelisk max offset (H/4 pixels)
    c1=32,            # hidden channels
    C=16,             # feature channels
    G=17,             # labels per axis (G x G grid)
    spacing=1,        # label spacing in feature pixels
    n_mf=2,           # mean-field iterations
    refine=0,         # 1: fine refinement level at stride 4 (sub-label flow, see refine.py)
    cf=8,             # fine feature channels (packed into the feature tensor, 4*cf channels)
    rr=1,             # fine local cost radius (fine pixels = 4 image pixels)
    rh=16,            # hidden channels of the refinement convolutions
    rscale=4.0,       # refinement output scale (image pixels)
    lk_iters=0,       # Lucas-Kanade iterations on the half-resolution image after the refinement
    lk_size=9,        # LK window (box, half-resolution pixels)
    lk_lambda=1e-3,   # LK Tikhonov term (in units of the window-summed squared gradient)
    lk_clip=1.0,      # largest LK update per iteration (half-resolution pixels)
    lk_eps=1e-4,      # LK absolute Tikhonov term (images in [0,1])
    flat_eps=0.0,     # > 0: no flow where the current frame is featureless (see PDDNet.flow);
                      # the texture scale (lk.flatness; 1e-6 in images in [0,1])
    flat_spread=3.0,  # with flat_eps: the spread (variance, labels^2) of the head's label
                      # distribution about which a flat region's counts as wide (PDDNet.keep)
)

# PDDNet.keep: a share of the flow below this is none
KEEP_FLOOR = 0.05

# the flow head's three learned scalars (logits of the temperature, the mean-field weight and the
# final sharpness): train.py gives them a 10x learning rate
HEAD_SCALARS = ("head.alpha_logit", "head.mf_logit", "head.gamma_logit")


class PDDNet(nn.Module):
    def __init__(self, **cfg):
        super().__init__()
        c = dict(DEFAULT_CONFIG)
        c.update(cfg)
        self.cfg = c
        assert c["stride"] in (4, 8)
        # registration order = parameter order (the optimizer state of a checkpoint follows it)
        self.encoder = PDDFeatures(c["c0"], c["K"], c["R"], c["c1"], c["C"], c["stride"])
        self.fine = FineFeatures(c["c0"], c["cf"]) if c["refine"] else None
        self.refinement = Refinement(c["cf"], c["rr"], c["rh"], c["rscale"]) if c["refine"] else None
        self.head = PDDHead(c["G"], c["spacing"], c["stride"], c["n_mf"])
        self.lk = LucasKanade(c["lk_iters"], c["lk_size"], c["lk_lambda"], c["lk_eps"], c["lk_clip"]) \
            if c["lk_iters"] else None

    def features(self, img):
        """image [B,1,H,W] in [0,1] -> the packed feature tensor (module doc)."""
        s = self.cfg["stride"]
        f, half, r0 = self.encoder(img)
        parts = [f]
        if self.fine is not None:
            # space-to-depth to the coarse grid: channel c*4 + by*2 + bx (pixel_unshuffle order)
            parts.append(F.pixel_unshuffle(self.fine(r0), s // 4))
        if self.lk is not None:
            parts.append(F.pixel_unshuffle(half, s // 2))
        return torch.cat(parts, 1) if len(parts) > 1 else f

    def split_features(self, f):
        """Packed features -> (coarse [B,C,h,w], fine [B,cf,H/4,W/4] or None,
        half-resolution image [B,1,H/2,W/2] or None)."""
        c = self.cfg
        C, s = c["C"], c["stride"]
        fine = img = None
        k = C
        if c["refine"]:
            n = c["cf"] * (s // 4) ** 2
            fine = F.pixel_shuffle(f[:, k:k + n], s // 4)
            k += n
        if c["lk_iters"]:
            img = F.pixel_shuffle(f[:, k:k + (s // 2) ** 2], s // 2)
        return f[:, :C], fine, img

    def flow(self, fr, fc):
        """Packed features of the reference and the current frame -> backward flow [B,2,H,W]."""
        H = W = self.cfg["input_size"]
        cr, fine_r, img_r = self.split_features(fr)
        cc, fine_c, img_c = self.split_features(fc)
        fl, spread = self.head.flow_and_spread(cr, cc)
        if fine_r is not None:
            fl = self.refinement(fl, fine_r, fine_c, H // fine_c.shape[-2])
        if img_r is not None and self.cfg["flat_eps"]:
            fl = fl * self.keep(spread, img_c, fl.shape[-2:])
        if img_r is not None:
            fl = self.lk(fl, img_r, img_c, H / img_c.shape[-2])
        return F.interpolate(fl, size=(H, W), mode="bilinear", align_corners=False)

    def keep(self, spread, img_c, size):
        """The share of the flow kept before the Lucas-Kanade level, decided on the head's grid
        and resized to `size`: 1 - flat * wide, less a dead zone. A region of the current frame
        with no grey-level change in any Lucas-Kanade window (flat, lk.flatness, on the
        half-resolution image) whose label distribution is also wide (wide = v^4 / (v^4 +
        flat_spread^4), v the head's spread in labels^2) is a region nothing can be matched in,
        such as a scanner margin or a flat test pattern: its flow is the centroid of equally good
        labels, which chain mode would compose frame after frame, so it gets none (and the
        Lucas-Kanade step, which sees no gradient there, adds none). A featureless vessel lumen
        keeps its flow: the mean field gives it the walls' narrow distribution."""
        c = self.cfg
        flat = flatness(img_c, c["lk_size"], img_c.shape[-1] // spread.shape[-1], c["flat_eps"])
        v4 = spread ** 4
        wide = v4 / (v4 + c["flat_spread"] ** 4)
        # a dead zone below KEEP_FLOOR: chain mode composes what is left, so a region that
        # matches nothing gets exactly none
        keep = torch.relu(1.0 - KEEP_FLOOR - flat * wide) / (1.0 - KEEP_FLOOR)
        return F.interpolate(keep, size=size, mode="bilinear", align_corners=False)

    def forward(self, ref_img, cur_img):
        return self.flow(self.features(ref_img), self.features(cur_img))


# state-dict names before the levels were separate modules -> their names now (first component)
LEGACY_NAMES = {
    "conv0": "encoder.conv0", "bn0": "encoder.bn0", "offsets_raw": "encoder.offsets_raw",
    "conv1": "encoder.conv1", "bn1": "encoder.bn1", "conv2": "encoder.conv2", "bn2": "encoder.bn2",
    "conv3": "encoder.conv3",
    "fconv0": "fine.conv0", "fbn0": "fine.bn0", "fconv1": "fine.conv1",
    "rconv0": "refinement.conv0", "rconv1": "refinement.conv1", "rconv2": "refinement.conv2",
    "log_alpha": "head.alpha_logit", "log_mf": "head.mf_logit", "log_gamma": "head.gamma_logit",
    "disp": "head.disp",
}


def upgrade_state_dict(sd, gamma_raw=20.0):
    """A state dict of any checkpoint in today's names: legacy flat names renamed (LEGACY_NAMES),
    and for checkpoints from before the final-sharpness parameter gamma = 1 (raw 20), which
    reproduces them."""
    out = {}
    for k, v in sd.items():
        first, dot, rest = k.partition(".")
        out[LEGACY_NAMES[first] + dot + rest if first in LEGACY_NAMES else k] = v
    if "head.gamma_logit" not in out:
        out["head.gamma_logit"] = torch.tensor(float(gamma_raw))
    return out
