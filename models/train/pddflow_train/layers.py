"""Operations shared by the model's levels and the training losses."""
import torch
import torch.nn.functional as F


def l2_normalise(f):
    """Unit norm over channels (the small constant keeps an all-zero vector finite)."""
    return f / torch.sqrt((f * f).sum(1, keepdim=True) + 1e-6)


def avg3(x):
    """3x3 mean, stride 1, padding not counted (exact in the ONNX export)."""
    return F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)


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
