"""2D PDD-Net student (Heinrich 2019; Nicke et al. adaptation), PyTorch.

Feature CNN (shared by both frames):
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

Flow head (reference features R, current features F):
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
    flow = bilinear upsample to [B,2,H,W] (align_corners=False)

Flow convention: BACKWARD flow. For pixel p of the current frame, p + flow(p) is where
p was in the reference frame; warping the reference mask: mask_t(p) = mask_ref(p + flow(p)).

All pooling uses count_include_pad=False (avg) / implicit -inf padding (max), so the
ONNX export (export.py) is exact.
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

ALPHA_MAX = 30.0  # bound of the cost temperature
WMF_MAX = 20.0    # bound of the mean-field weight

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
)


class PDDNet(nn.Module):
    def __init__(self, **cfg):
        super().__init__()
        c = dict(DEFAULT_CONFIG)
        c.update(cfg)
        self.cfg = c
        assert c["stride"] in (4, 8)
        self.so = c["stride"] // 4
        c0, K, c1, C = c["c0"], c["K"], c["c1"], c["C"]
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
        # flow head parameters (softplus-ed)
        self.log_alpha = nn.Parameter(torch.tensor(math.log(10.0 / 20.0)))  # alpha = 10 at init
        self.log_mf = nn.Parameter(torch.tensor(math.log(1.0 / 19.0)))  # wmf = 1 at init
        # sharpness of the final (soft-argmin) distribution, gamma = sigmoid(g) in (0, 1]: a softer
        # final distribution interpolates between labels (sub-label flow)
        self.log_gamma = nn.Parameter(torch.tensor(3.0))
        G = c["G"]
        r = torch.arange(G, dtype=torch.float32) - (G - 1) / 2
        dy, dx = torch.meshgrid(r, r, indexing="ij")
        # label displacement in image pixels, label index l = iy * G + ix
        disp = torch.stack([dx.reshape(-1), dy.reshape(-1)], 0) * (c["spacing"] * c["stride"])
        self.register_buffer("disp", disp)  # [2, G*G]

    # ---------------------------------------------------------------- features
    def offsets(self):
        return self.cfg["R"] * torch.tanh(self.offsets_raw)

    def obelisk_sample(self, x):
        """x: [B,c0,h4,w4] -> [B, c0*K, h4/so, w4/so] (channel index cin*K + k)."""
        B, c0, h4, w4 = x.shape
        so = self.so
        ho, wo = h4 // so, w4 // so
        K = self.cfg["K"]
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

    def features(self, img):
        x = F.avg_pool2d(img, 3, stride=2, padding=1)
        x = F.relu(self.bn0(self.conv0(x)))
        x = self.obelisk_sample(x)
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.relu(self.bn2(self.conv2(x)))
        f = self.conv3(x)
        return f / torch.sqrt((f * f).sum(1, keepdim=True) + 1e-6)

    def alpha(self):
        return ALPHA_MAX * torch.sigmoid(self.log_alpha)

    def gamma(self):
        return torch.sigmoid(self.log_gamma)

    def wmf(self):
        return WMF_MAX * torch.sigmoid(self.log_mf)

    # ---------------------------------------------------------------- flow
    def cost(self, fr, fc):
        """Cost -2 <fc(p), fr(p+d_l)> [B, G*G, h, w] (label l = iy*G+ix)."""
        G, sp = self.cfg["G"], self.cfg["spacing"]
        P = sp * (G - 1) // 2
        B, C, h, w = fc.shape
        # replicate ("edge") padding: labels pointing outside the image compare with the
        # border features instead of zeros, so there is no systematic pull at the borders
        unf = F.unfold(F.pad(fr, (P, P, P, P), mode="replicate"), G, dilation=sp)  # [B, C*G*G, h*w]
        unf = unf.view(B, C, G * G, h * w)
        return -2.0 * (unf * fc.view(B, C, 1, h * w)).sum(1).view(B, G * G, h, w)

    @staticmethod
    def _avg3(x):
        return F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)

    def label_minconv(self, D):
        B, L, h, w = D.shape
        G = self.cfg["G"]
        x = D.permute(0, 2, 3, 1).reshape(B * h * w, 1, G, G)
        x = -F.max_pool2d(-x, 3, stride=1, padding=1)
        x = self._avg3(self._avg3(x))
        return x.reshape(B, h, w, L).permute(0, 3, 1, 2)

    def flow_lowres(self, fr, fc):
        D = self.alpha() * self.cost(fr, fc)
        D = self.label_minconv(D)
        D2 = self._avg3(self._avg3(D))
        u = D2
        wmf = self.wmf()
        for _ in range(self.cfg["n_mf"]):
            Q = torch.softmax(-u, 1)
            u = D2 - wmf * self._avg3(Q)
        Q = torch.softmax(-u * self.gamma(), 1)
        return torch.einsum("bl,dl->bd", Q.flatten(2).transpose(1, 2).reshape(-1, Q.shape[1]), self.disp) \
            .view(Q.shape[0], Q.shape[2], Q.shape[3], 2).permute(0, 3, 1, 2)

    def flow(self, fr, fc):
        H = W = self.cfg["input_size"]
        fl = self.flow_lowres(fr, fc)
        return F.interpolate(fl, size=(H, W), mode="bilinear", align_corners=False)

    def forward(self, ref_img, cur_img):
        return self.flow(self.features(ref_img), self.features(cur_img))


def warp(x, flow):
    """Backward warp: out(p) = x(p + flow(p)), bilinear, border padding.
    x [B,K,H,W], flow [B,2,H,W] (dx, dy) in pixels."""
    B, _, H, W = x.shape
    ys = torch.arange(H, dtype=flow.dtype, device=flow.device).view(1, H, 1)
    xs = torch.arange(W, dtype=flow.dtype, device=flow.device).view(1, 1, W)
    px = xs + flow[:, 0]
    py = ys + flow[:, 1]
    grid = torch.stack([(2 * px + 1) / W - 1, (2 * py + 1) / H - 1], -1)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def one_hot(mask, n_classes=3):
    """mask [B,H,W] long -> [B,n,H,W] float."""
    return F.one_hot(mask.clamp(0, n_classes - 1), n_classes).permute(0, 3, 1, 2).float()


def upgrade_state_dict(sd, gamma_raw=20.0):
    """Checkpoints from before the final-sharpness parameter: gamma = 1 (raw 20) reproduces them."""
    sd = dict(sd)
    if "log_gamma" not in sd:
        sd["log_gamma"] = torch.tensor(float(gamma_raw))
    return sd
