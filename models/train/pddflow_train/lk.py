"""Lucas-Kanade level (beyond the paper; PDDNet's lk_iters > 0, no learned parameters).

The half-resolution input (the feature CNN's first average pool, H/2) is packed into the feature
tensor (space-to-depth), and the flow head finishes with lk_iters Gauss-Newton steps of windowed
Lucas-Kanade on it: warp the reference by the current flow, solve the 2x2 normal equations over
a box window (gradients = mean of the warped reference's and the current frame's; Tikhonov term
lk_lambda so that textureless windows keep the flow), clip the update. Speckle is the texture LK
needs; the learned levels bring the residual into its sub-pixel range.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

from .layers import warp


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


def flatness(img, window, stride, eps):
    """eps / (variance + eps) on the grid of `stride` pixels of img [B,1,h,w]: the grey-level
    variance over the union of the `window`-sized windows of a grid cell's pixels (inside the
    image): 1 where none of them sees any grey-level change, about 0 wherever there is speckle
    (its variance is orders of magnitude above eps = 1e-6)."""
    size = window + stride - 1
    pool = lambda x: F.avg_pool2d(x, size, stride=stride, padding=(size - stride) // 2,
                                  count_include_pad=False)
    mean = pool(img)
    return eps / (pool(img * img) - mean * mean + eps)


class LucasKanade(nn.Module):
    """Flow [B,2,h,w] in image px (any grid) + the half-resolution images of both frames -> flow at
    H/2 in image px after `iters` steps (window `size`, Tikhonov `lam` relative and `eps`
    absolute, update clipped to `clip` half-resolution pixels)."""

    def __init__(self, iters, size, lam, eps, clip):
        super().__init__()
        self.iters, self.size, self.lam, self.eps, self.clip = iters, size, lam, eps, clip

    def forward(self, fl, img_r, img_c, q):
        """q: image pixels per half-resolution pixel (2)."""
        h2, w2 = img_c.shape[-2:]
        u = F.interpolate(fl, size=(h2, w2), mode="bilinear", align_corners=False) / q
        u = lucas_kanade(u, img_r, img_c, self.iters, self.size, self.lam, self.eps, self.clip)
        return u * q
