"""Refinement level at stride 4 (beyond the paper; PDDNet's refine=1).

The coarse labels are 8 image pixels apart and the soft-argmin cannot resolve the sub-pixel
frame-to-frame motion that chain mode composes, nor a vein reopening by 4-5 px per frame. A fine
feature branch at stride 4 (FineFeatures: conv 3x3 + BN + ReLU, conv 3x3, L2 norm; cf channels)
is packed into the cached feature tensor by space-to-depth (features = [coarse C | fine 4*cf]
channels at H/8), so the contract and the reference-feature cache stay as they are. The flow
head (Refinement) upsamples the coarse flow to H/4, warps the reference's fine features by it
(bilinear, border), computes a local correlation over (2rr+1)^2 fine-pixel offsets, and three
3x3 convolutions on [current fine, warped reference fine, correlation, coarse flow] regress a
residual flow (trained against ground-truth flow where the data has it, and through the mask
losses).
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

from .layers import l2_normalise, warp


class FineFeatures(nn.Module):
    """The fine features [B,cf,H/4,W/4] from the feature CNN's first activations [B,c0,H/4,W/4]."""

    def __init__(self, c0, cf):
        super().__init__()
        self.conv0 = nn.Conv2d(c0, cf, 3, padding=1, bias=False)
        self.bn0 = nn.BatchNorm2d(cf)
        self.conv1 = nn.Conv2d(cf, cf, 3, padding=1, bias=True)

    def forward(self, r0):
        return l2_normalise(self.conv1(F.relu(self.bn0(self.conv0(r0)))))


class Refinement(nn.Module):
    """Coarse flow (image px, any grid) + fine features of both frames -> refined flow at H/4."""

    def __init__(self, cf, rr, rh, rscale):
        super().__init__()
        self.rr, self.rscale = rr, rscale
        nc = (2 * rr + 1) ** 2
        self.conv0 = nn.Conv2d(2 * cf + nc + 2, rh, 3, padding=1, bias=True)
        self.conv1 = nn.Conv2d(rh, rh, 3, padding=2, dilation=2, bias=True)
        self.conv2 = nn.Conv2d(rh, 2, 3, padding=1, bias=True)
        nn.init.zeros_(self.conv2.weight)  # starts as the coarse flow exactly
        nn.init.zeros_(self.conv2.bias)

    def local_corr(self, wref, cur):
        """<cur(p), wref(p + d)> for d in [-rr, rr]^2 fine pixels, edge padding: [B,(2rr+1)^2,h4,w4]
        (offset index k = (dy + rr) * (2rr+1) + (dx + rr))."""
        r = self.rr
        n = 2 * r + 1
        h4, w4 = cur.shape[-2:]
        pad = F.pad(wref, (r, r, r, r), mode="replicate")
        out = [(cur * pad[:, :, dy:dy + h4, dx:dx + w4]).sum(1, keepdim=True) for dy in range(n) for dx in range(n)]
        return torch.cat(out, 1)

    def forward(self, fl_lr, fine_r, fine_c, q):
        """q: image pixels per fine pixel (4)."""
        h4, w4 = fine_c.shape[-2:]
        fl4 = F.interpolate(fl_lr, size=(h4, w4), mode="bilinear", align_corners=False)
        wref = warp(fine_r, fl4 / q)
        corr = self.local_corr(wref, fine_c)
        x = torch.cat([fine_c, wref, corr, fl4 / 16.0], 1)
        x = F.relu(self.conv0(x))
        x = F.relu(self.conv1(x))
        return fl4 + self.rscale * self.conv2(x)
