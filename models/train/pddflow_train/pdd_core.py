"""The paper's 2D PDD-Net (Heinrich 2019; Nicke et al.): feature CNN and flow head.

Feature CNN (shared by both frames), PDDFeatures:
    image [B,1,H,W] in [0,1]
    -> AvgPool 3x3 / 2                                          (H/2)
    -> Conv 5x5 / 2 (1 -> c0) + BN + ReLU                        (H/4)
    -> Obelisk: 2*K learned spatial offsets (in H/4 pixels, |o| <= R), bilinear
       grid_sample of every c0 channel at offset pair (a_k, b_k), difference
       sample(a_k) - sample(b_k)  -> c0*K channels, sampled on a grid of stride
       `stride/4` (1 or 2)                                       (H/stride)
    -> Conv 1x1 (c0*K -> c1) + BN + ReLU
    -> Conv 3x3 (c1 -> c1) + BN + ReLU
    -> Conv 1x1 (c1 -> C) (+bias)
    -> L2 normalisation over channels                     = features [B,C,H/s,W/s]

Flow head (reference features R, current features F), PDDHead:
    cost_l(p) = -2 <F(p), R(p + d_l)> over a G x G grid of label displacements
                d_l = (l - (G-1)/2) * spacing   (feature pixels), edge (replicate) padding.
                With unit-norm features this is the SSD ||F(p) - R(p+d_l)||^2 - 2.
    D   = alpha * cost, alpha = 30 sigmoid(a) (learned temperature, bounded so that the
          export's softmax needs no max subtraction, see export.py)
    D1  = min-convolution over the label grid (min-pool 3, avg-pool 3, avg-pool 3)
    D2  = spatial avg-pool 3 twice                            (smooth data term)
    mean-field: u = D2; repeat n_mf: Q = softmax(-u); u = D2 - wmf * avgpool3(Q), wmf = 20 sigmoid(w)
    Q = softmax(-gamma * u), gamma = sigmoid(g) in (0,1] (learned sharpness of the final distribution)
    flow_lowres = sum_l Q_l * d_l * stride  (image pixels)
    spread = sum_l Q_l |d_l|^2 - |sum_l Q_l d_l|^2, in labels^2 (flow_and_spread)

a, w and g are the logits of the three bounded scalars (parameters alpha_logit, mf_logit,
gamma_logit). The head's pooling uses count_include_pad=False (avg) / implicit -inf padding (max);
the feature CNN's first average pool counts its zero padding (so the half-resolution frame's top
row and left column are darker, as every model was trained). The ONNX export (export.py) is exact.
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from .layers import avg3, l2_normalise

ALPHA_MAX = 30.0  # bound of the cost temperature
WMF_MAX = 20.0    # bound of the mean-field weight


class PDDFeatures(nn.Module):
    """The feature CNN with its Obelisk layer (module doc)."""

    def __init__(self, c0, K, R, c1, C, stride):
        super().__init__()
        assert stride in (4, 8)
        self.K, self.R = K, R
        self.so = stride // 4  # Obelisk sampling stride, in H/4 pixels
        self.conv0 = nn.Conv2d(1, c0, 5, stride=2, padding=2, bias=False)
        self.bn0 = nn.BatchNorm2d(c0)
        # raw offsets -> R * tanh(raw); [2 (a,b), K, 2 (y,x)]
        g = torch.Generator().manual_seed(0)
        self.offsets_raw = nn.Parameter(torch.randn(2, K, 2, generator=g) * 0.6)
        self.conv1 = nn.Conv2d(c0 * K, c1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c1)
        self.conv2 = nn.Conv2d(c1, c1, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c1)
        self.conv3 = nn.Conv2d(c1, C, 1, bias=True)

    def offsets(self):
        return self.R * torch.tanh(self.offsets_raw)

    def obelisk_sample(self, x):
        """x: [B,c0,h4,w4] -> [B, c0*K, h4/so, w4/so] (channel index cin*K + k)."""
        B, c0, h4, w4 = x.shape
        so = self.so
        ho, wo = h4 // so, w4 // so
        K = self.K
        ctr = (so - 1) / 2.0
        jy = torch.arange(ho, dtype=x.dtype, device=x.device) * so + ctr
        jx = torch.arange(wo, dtype=x.dtype, device=x.device) * so + ctr
        off = self.offsets()  # [2,K,2] (y,x)
        outs = []
        for s in range(2):
            py = jy.view(1, ho, 1) + off[s, :, 0].view(K, 1, 1)  # [K,ho,1]
            px = jx.view(1, 1, wo) + off[s, :, 1].view(K, 1, 1)  # [K,1,wo]
            gy = (2 * py + 1) / h4 - 1
            gx = (2 * px + 1) / w4 - 1
            grid = torch.stack([gx.expand(K, ho, wo), gy.expand(K, ho, wo)], -1)  # [K,ho,wo,2]
            grid = grid.reshape(1, K * ho, wo, 2).expand(B, -1, -1, -1)
            smp = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
            outs.append(smp.view(B, c0, K, ho, wo))
        return (outs[0] - outs[1]).reshape(B, c0 * K, ho, wo)

    def forward(self, img):
        """image [B,1,H,W] -> (unit-norm features [B,C,H/s,W/s], the half-resolution image
        [B,1,H/2,W/2], the first convolution's activations [B,c0,H/4,W/4]); the last two are what
        the Lucas-Kanade and refinement levels reuse."""
        half = F.avg_pool2d(img, 3, stride=2, padding=1)
        r0 = F.relu(self.bn0(self.conv0(half)))
        x = self.obelisk_sample(r0)
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.relu(self.bn2(self.conv2(x)))
        return l2_normalise(self.conv3(x)), half, r0


class PDDHead(nn.Module):
    """Cost volume, min-convolution, mean field and soft-argmin (module doc): features of the
    reference and the current frame [B,C,h,w] -> flow [B,2,h,w] in image pixels."""

    def __init__(self, G, spacing, stride, n_mf):
        super().__init__()
        self.G, self.spacing, self.stride, self.n_mf = G, spacing, stride, n_mf
        # logits of the bounded scalars (see alpha(), wmf(), gamma())
        self.alpha_logit = nn.Parameter(torch.tensor(math.log(10.0 / 20.0)))  # logit(10/30): alpha = 10 at init
        self.mf_logit = nn.Parameter(torch.tensor(math.log(1.0 / 19.0)))  # logit(1/20): wmf = 1 at init
        # sharpness of the final (soft-argmin) distribution, gamma = sigmoid(g) in (0, 1]: a softer
        # final distribution interpolates between labels (sub-label flow)
        self.gamma_logit = nn.Parameter(torch.tensor(3.0))
        r = torch.arange(G, dtype=torch.float32) - (G - 1) / 2
        dy, dx = torch.meshgrid(r, r, indexing="ij")
        # label displacement in image pixels, label index l = iy * G + ix
        disp = torch.stack([dx.reshape(-1), dy.reshape(-1)], 0) * (spacing * stride)
        self.register_buffer("disp", disp)  # [2, G*G]

    def alpha(self):
        return ALPHA_MAX * torch.sigmoid(self.alpha_logit)

    def gamma(self):
        return torch.sigmoid(self.gamma_logit)

    def wmf(self):
        return WMF_MAX * torch.sigmoid(self.mf_logit)

    def cost(self, fr, fc):
        """Cost -2 <fc(p), fr(p+d_l)> [B, G*G, h, w] (label l = iy*G+ix)."""
        G, sp = self.G, self.spacing
        P = sp * (G - 1) // 2
        B, C, h, w = fc.shape
        # replicate ("edge") padding: labels pointing outside the image compare with the
        # border features instead of zeros, so there is no systematic pull at the borders
        unf = F.unfold(F.pad(fr, (P, P, P, P), mode="replicate"), G, dilation=sp)  # [B, C*G*G, h*w]
        unf = unf.view(B, C, G * G, h * w)
        return -2.0 * (unf * fc.view(B, C, 1, h * w)).sum(1).view(B, G * G, h, w)

    def label_minconv(self, D):
        B, L, h, w = D.shape
        G = self.G
        x = D.permute(0, 2, 3, 1).reshape(B * h * w, 1, G, G)
        x = -F.max_pool2d(-x, 3, stride=1, padding=1)
        x = avg3(avg3(x))
        return x.reshape(B, h, w, L).permute(0, 3, 1, 2)

    def distribution(self, fr, fc):
        """The final label distribution Q [B, G*G, h, w] (module doc)."""
        D = self.alpha() * self.cost(fr, fc)
        D = self.label_minconv(D)
        D2 = avg3(avg3(D))
        u = D2
        wmf = self.wmf()
        for _ in range(self.n_mf):
            Q = torch.softmax(-u, 1)
            u = D2 - wmf * avg3(Q)
        return torch.softmax(-u * self.gamma(), 1)

    def forward(self, fr, fc):
        """Features of the reference and the current frame -> flow [B,2,h,w] (image pixels)."""
        return self.flow_and_spread(fr, fc)[0]

    def flow_and_spread(self, fr, fc):
        """The flow (the mean label displacement) and the spread of the final distribution
        [B,1,h,w]: its variance E|d|^2 - |E d|^2, in labels^2. A featureless region far from any
        feature matches every label alike: its distribution is wide, and its mean is the centroid
        of the labels that stay inside the featureless area, not a motion. A match is a narrow
        peak, and so is a featureless vessel lumen, whose labels the mean field takes from the
        walls around it."""
        Q = self.distribution(fr, fc)
        flow = torch.einsum("blhw,dl->bdhw", Q, self.disp)
        step = float(self.spacing * self.stride)
        second = torch.einsum("blhw,l->bhw", Q, (self.disp ** 2).sum(0))[:, None]
        return flow, (second - (flow ** 2).sum(1, keepdim=True)) / step ** 2
