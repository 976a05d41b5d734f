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

Refinement level (refine=1, beyond the paper): the coarse labels are 8 image pixels apart and
the soft-argmin cannot resolve the sub-pixel frame-to-frame motion that chain mode composes. A
fine feature branch at stride 4 (conv 3x3 + BN + ReLU, conv 3x3, L2 norm; cf channels) is packed
into the cached feature tensor by space-to-depth (features = [coarse C | fine 4*cf] channels at
H/8), so the contract and the reference-feature cache stay as they are. The flow head upsamples
the coarse flow to H/4, warps the reference's fine features by it (bilinear, border), computes a
local correlation over (2rr+1)^2 fine-pixel offsets, and three 3x3 convolutions on
[current fine, warped reference fine, correlation, coarse flow] regress a residual flow
(trained against ground-truth flow where the data has it, and through the mask losses).

Lucas-Kanade level (lk_iters > 0, beyond the paper, no learned parameters): the half-resolution
input (the feature CNN's first average pool, H/2) is packed into the feature tensor too
(space-to-depth), and the flow head finishes with lk_iters Gauss-Newton steps of windowed
Lucas-Kanade on it: warp the reference by the current flow, solve the 2x2 normal equations over
a box window (gradients = mean of the warped reference's and the current frame's; Tikhonov
term lk_lambda so that textureless windows keep the flow), clip the update. Speckle is the texture
LK needs; the learned levels bring the residual into its sub-pixel range.

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
    refine=0,         # 1: fine refinement level at stride 4 (sub-label flow, see below)
    cf=8,             # fine feature channels (packed into the feature tensor, 4*cf channels)
    rr=1,             # fine local cost radius (fine pixels = 4 image pixels)
    rh=16,            # hidden channels of the refinement convolutions
    rscale=4.0,       # refinement output scale (image pixels)
    lk_iters=0,       # Lucas-Kanade iterations on the half-resolution image after the refinement
    lk_size=9,        # LK window (box, half-resolution pixels)
    lk_lambda=1e-3,   # LK Tikhonov term (in units of the window-summed squared gradient)
    lk_clip=1.0,      # largest LK update per iteration (half-resolution pixels)
    lk_eps=1e-4,      # LK absolute Tikhonov term (images in [0,1])
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
        if c["refine"]:
            cf, rh, nc = c["cf"], c["rh"], (2 * c["rr"] + 1) ** 2
            self.fconv0 = nn.Conv2d(c0, cf, 3, padding=1, bias=False)
            self.fbn0 = nn.BatchNorm2d(cf)
            self.fconv1 = nn.Conv2d(cf, cf, 3, padding=1, bias=True)
            self.rconv0 = nn.Conv2d(2 * cf + nc + 2, rh, 3, padding=1, bias=True)
            self.rconv1 = nn.Conv2d(rh, rh, 3, padding=2, dilation=2, bias=True)
            self.rconv2 = nn.Conv2d(rh, 2, 3, padding=1, bias=True)
            nn.init.zeros_(self.rconv2.weight)  # starts as the coarse flow exactly
            nn.init.zeros_(self.rconv2.bias)
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

    @staticmethod
    def _l2n(f):
        return f / torch.sqrt((f * f).sum(1, keepdim=True) + 1e-6)

    def features(self, img):
        x = F.avg_pool2d(img, 3, stride=2, padding=1)
        packed_img = F.pixel_unshuffle(x, self.cfg["stride"] // 2) if self.cfg["lk_iters"] else None
        r0 = F.relu(self.bn0(self.conv0(x)))
        x = self.obelisk_sample(r0)
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.relu(self.bn2(self.conv2(x)))
        f = self._l2n(self.conv3(x))
        parts = [f]
        if self.cfg["refine"]:
            fine = self._l2n(self.fconv1(F.relu(self.fbn0(self.fconv0(r0)))))  # [B,cf,H/4,W/4]
            # space-to-depth to the coarse grid: channel c*4 + by*2 + bx (pixel_unshuffle order)
            parts.append(F.pixel_unshuffle(fine, self.cfg["stride"] // 4))
        if packed_img is not None:
            parts.append(packed_img)
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

    def local_corr(self, wref, cur):
        """<cur(p), wref(p + d)> for d in [-rr, rr]^2 fine pixels, edge padding: [B,(2rr+1)^2,h4,w4]
        (offset index k = (dy + rr) * (2rr+1) + (dx + rr))."""
        r = self.cfg["rr"]
        n = 2 * r + 1
        h4, w4 = cur.shape[-2:]
        pad = F.pad(wref, (r, r, r, r), mode="replicate")
        out = [(cur * pad[:, :, dy:dy + h4, dx:dx + w4]).sum(1, keepdim=True) for dy in range(n) for dx in range(n)]
        return torch.cat(out, 1)

    def refine(self, fl_lr, fine_r, fine_c):
        """Coarse flow at H/s (image px) -> refined flow at H/4 (image px)."""
        h4, w4 = fine_c.shape[-2:]
        fl4 = F.interpolate(fl_lr, size=(h4, w4), mode="bilinear", align_corners=False)
        q = self.cfg["input_size"] // h4  # image pixels per fine pixel (4)
        wref = warp(fine_r, fl4 / q)
        corr = self.local_corr(wref, fine_c)
        x = torch.cat([fine_c, wref, corr, fl4 / 16.0], 1)
        x = F.relu(self.rconv0(x))
        x = F.relu(self.rconv1(x))
        return fl4 + self.cfg["rscale"] * self.rconv2(x)

    def lk(self, fl, img_r, img_c):
        """fl: flow [B,2,h,w] in image px (any grid) -> flow at H/2 in image px after LK steps."""
        c = self.cfg
        h2, w2 = img_c.shape[-2:]
        q = c["input_size"] / h2  # image pixels per half-resolution pixel (2)
        u = F.interpolate(fl, size=(h2, w2), mode="bilinear", align_corners=False) / q
        u = lucas_kanade(u, img_r, img_c, c["lk_iters"], c["lk_size"], c["lk_lambda"], c["lk_eps"], c["lk_clip"])
        return u * q

    def flow(self, fr, fc):
        H = W = self.cfg["input_size"]
        cr, fine_r, img_r = self.split_features(fr)
        cc, fine_c, img_c = self.split_features(fc)
        fl = self.flow_lowres(cr, cc)
        if fine_r is not None:
            fl = self.refine(fl, fine_r, fine_c)
        if img_r is not None:
            fl = self.lk(fl, img_r, img_c)
        return F.interpolate(fl, size=(H, W), mode="bilinear", align_corners=False)

    def forward(self, ref_img, cur_img):
        return self.flow(self.features(ref_img), self.features(cur_img))


def central_gradients(x):
    """Central differences with edge padding: (d/dx, d/dy) of [B,1,h,w]."""
    p = F.pad(x, (1, 1, 1, 1), mode="replicate")
    gx = 0.5 * (p[:, :, 1:-1, 2:] - p[:, :, 1:-1, :-2])
    gy = 0.5 * (p[:, :, 2:, 1:-1] - p[:, :, :-2, 1:-1])
    return gx, gy


def lucas_kanade(u, img_r, img_c, iters, window, lam, eps, clip):
    """Gauss-Newton steps of windowed Lucas-Kanade: u [B,2,h,w] (pixels of img's grid) -> refined u.
    Gradients: mean of the warped reference's and the current frame's; box window (zero padding
    counted: one AveragePool in ONNX); update clipped to +-clip."""
    gcx, gcy = central_gradients(img_c)
    for _ in range(iters):
        wr = warp(img_r, u)
        grx, gry = central_gradients(wr)
        gx, gy = 0.5 * (grx + gcx), 0.5 * (gry + gcy)
        e = img_c - wr
        prod = torch.cat([gx * gx, gx * gy, gy * gy, gx * e, gy * e], 1)
        sm = F.avg_pool2d(prod, window, stride=1, padding=window // 2, count_include_pad=True)
        a, b, d, ex, ey = sm[:, 0:1], sm[:, 1:2], sm[:, 2:3], sm[:, 3:4], sm[:, 4:5]
        # Tikhonov term, relative + absolute: flat or noise-only windows keep the incoming flow
        reg = lam * (a + d) + eps
        a, d = a + reg, d + reg
        det = a * d - b * b
        dx = (d * ex - b * ey) / det
        dy = (a * ey - b * ex) / det
        u = u + torch.cat([dx, dy], 1).clamp(-clip, clip)
    return u


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
