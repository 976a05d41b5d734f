"""Export a trained PDD-Net to the two ONNX graphs of the pddflow contract.

features.onnx : image [1,1,H,W] f32 -> one output per feature map (feature_maps below): coarse
                [1,C,H/s,W/s], with the refinement level fine [1,cf,H/4,W/4], with the
                Lucas-Kanade level half [1,1,H/2,W/2] (the half-resolution frame); a model with
                the coarse map alone has one output, features
flow.onnx     : reference_<map>, current_<map> for each map -> flow [1,2,H,W]
                (channel 0 = dx, 1 = dy, backward flow, model-input pixels)
The maps leave the features graph as they are computed and enter the flow graph as they are
used: no packing into one tensor (what 0.6.0 and earlier did) and no unpacking per frame.

The graphs are written directly with onnx.helper (opset 17, IR 8, static shapes) so
that every op is one ONNX Runtime runs fast on CPU:
  * batch norms are folded into the convolutions;
  * the Obelisk layer (bilinear grid_sample at learned, bounded offsets) followed by
    its 1x1 convolution and batch norm is folded EXACTLY into one dense
    (2R+2)x(2R+2) convolution (bilinear sampling at a fixed offset with zero padding
    is a 2x2 stencil);
  * the SSD cost volume is one batched MatMul over rows (features augmented with
    |R|^2 / a ones channel) followed by a reshape/pad/slice "band extraction" of
    the needed diagonals, no unfold of the feature maps;
  * the min-convolution's max pool is a MaxPool on [h*w,1,G,G]; the 3x3 average pools after it
    (two over the labels, two over space) and the mean field's are separable linear maps,
    applied as one MatMul per axis with precomputed matrices (the two pools of an axis
    multiplied together, the temperature and the mean-field weight folded in); the mean field
    works on [h, G*G, w], the softmax as Exp / 1x1 Conv sum, its per-pixel normalisation folded
    into the pooling matrix; the final softmax and soft-argmin are one 1x1 Conv; the flow is
    upsampled with Resize.

Several input sizes (the element's working-size): --sizes 128,192,256,320,384 writes the graphs of
each other size as features-SxS.onnx / flow-SxS.onnx beside the default's and lists every size in
model.json's input_sizes.

Usage: python -m pddflow_train.export CHECKPOINT OUT_DIR [--name NAME --version V] [--config JSON] [--sizes LIST]
"""
import argparse
import copy
import json
import math
import os

import numpy as np
import onnx
import torch
from onnx import TensorProto, helper, numpy_helper

from .pddnet import KEEP_FLOOR, PDDNet, upgrade_state_dict

OPSET = 17
IR_VERSION = 8


def _fold_bn(w, bn, b=None):
    s = (bn.weight / torch.sqrt(bn.running_var + bn.eps)).detach()
    w = w.detach() * s.view(-1, *([1] * (w.dim() - 1)))
    b0 = torch.zeros_like(bn.running_mean) if b is None else b.detach()
    b = (b0 - bn.running_mean) * s + bn.bias.detach()
    return w, b


def obelisk_folded_kernel(net):
    """Dense conv kernel [c1, c0, k, k] equal to conv1(obelisk_sample(x)) (before BN)."""
    c = net.cfg
    c0, K, R, so = c["c0"], c["K"], c["R"], net.encoder.so
    k = 2 * R + 2
    w1 = net.encoder.conv1.weight.detach().view(-1, c0, K)  # [c1, c0, K]
    off = net.encoder.offsets().detach().double()
    ctr = (so - 1) / 2.0
    ker = torch.zeros(w1.shape[0], c0, k, k, dtype=torch.float64)
    for s, sign in ((0, 1.0), (1, -1.0)):
        for kk in range(K):
            py = ctr + off[s, kk, 0].item()
            px = ctr + off[s, kk, 1].item()
            fy, fx = math.floor(py), math.floor(px)
            ay, ax = py - fy, px - fx
            for ty, wy in ((fy, 1 - ay), (fy + 1, ay)):
                for tx, wx in ((fx, 1 - ax), (fx + 1, ax)):
                    iy, ix = ty + R, tx + R
                    if wy * wx == 0.0:
                        continue
                    assert 0 <= iy < k and 0 <= ix < k, (iy, ix)
                    ker[:, :, iy, ix] += sign * wy * wx * w1[:, :, kk].double()
    pads = [R, R, R + 2 - so, R + 2 - so]
    return ker.float(), pads


def _pool_matrix(n):
    """[n, n] float64 matrix of a 3-tap average along one axis with count_include_pad=0 (a 3x3
    AveragePool, stride 1, pad 1, is this matrix applied along each of its two axes)."""
    b = np.eye(n) + np.eye(n, k=1) + np.eye(n, k=-1)
    return b / b.sum(1, keepdims=True)


def _init(name, arr, inits):
    inits.append(numpy_helper.from_array(np.asarray(arr), name))
    return name


def _model(graph):
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                          producer_name="pddflow-export")
    m.ir_version = IR_VERSION
    onnx.checker.check_model(m, full_check=True)
    return m


def _bilinear_border(N, I, img, pix, c, h, w, out):
    """GridSample(img, bilinear, padding_mode=border) at pixel coordinates pix [1,2,h,w] (channel 0
    = x, 1 = y, pixel centres at integers) of img [1,c,h,w], as index arithmetic and ONE Gather of
    whole pixels: the coordinates clipped to [0, w-1] x [0, h-1] (border), the 2x2 neighbours
    floor / floor+1 (clamped: their weight is then 0) and the bilinear weights, the c values of
    the four neighbours fetched as rows of the pixel-major [h*w, c] image and summed with their
    weights. Same arithmetic as GridSample up to rounding; ONNX Runtime's GridSample costs ~50 ns
    per sample and channel."""
    n = h * w
    i64 = lambda v: np.array(v, dtype=np.int64)
    f32 = lambda v: np.array(v, dtype=np.float32)
    if c == 1:
        N("Reshape", [img, I(out + "_s_nc", i64([n, 1]))], [out + "_nc"])
    else:
        N("Reshape", [img, I(out + "_s_cn", i64([c, n]))], [out + "_cn"])
        N("Transpose", [out + "_cn"], [out + "_nc"], perm=[1, 0])  # [n, c]
    N("Reshape", [pix, I(out + "_s_2n", i64([2, n]))], [out + "_p"])
    hi = I(out + "_hi", f32([[w - 1], [h - 1]]))
    N("Max", [out + "_p", I(out + "_lo", f32(0.0))], [out + "_p0"])
    N("Min", [out + "_p0", hi], [out + "_pc"])  # border: clipped coordinates
    N("Floor", [out + "_pc"], [out + "_f0"])
    N("Sub", [out + "_pc", out + "_f0"], [out + "_a1"])  # fractions [2, n]
    N("Add", [out + "_f0", I(out + "_one", f32(1.0))], [out + "_f1u"])
    N("Min", [out + "_f1u", hi], [out + "_f1"])
    N("Sub", [out + "_one", out + "_a1"], [out + "_a0"])
    # [2 (neighbour 0/1), 2 (x/y), n] for the positions and the weights
    N("Concat", [out + "_f0", out + "_f1"], [out + "_f"], axis=0)
    N("Concat", [out + "_a0", out + "_a1"], [out + "_a"], axis=0)
    s2 = I(out + "_s_22n", i64([2, 2, n]))
    N("Reshape", [out + "_f", s2], [out + "_f3"])
    N("Reshape", [out + "_a", s2], [out + "_a3"])
    N("Split", [out + "_f3"], [out + "_fx", out + "_fy"], axis=1)  # [2, 1, n] each
    N("Split", [out + "_a3"], [out + "_ax", out + "_ay"], axis=1)
    s12 = I(out + "_s_12n", i64([1, 2, n]))
    N("Reshape", [out + "_fx", s12], [out + "_fxr"])
    N("Reshape", [out + "_ax", s12], [out + "_axr"])
    N("Mul", [out + "_fy", I(out + "_w", f32(w))], [out + "_row"])
    N("Add", [out + "_row", out + "_fxr"], [out + "_idxf"])  # [2 (y), 2 (x), n] flat indices
    N("Cast", [out + "_idxf"], [out + "_idx"], to=TensorProto.INT64)
    N("Mul", [out + "_ay", out + "_axr"], [out + "_wt"])  # [2, 2, n] weights
    N("Gather", [out + "_nc", out + "_idx"], [out + "_g"], axis=0)  # [2, 2, n, c]
    # channels first ([c, 4, n]; a Mul broadcasting [4, n, 1] over the last axis is slow), the
    # weighted sum over the 4 neighbours as a MatMul with ones
    N("Reshape", [out + "_wt", I(out + "_s_4n", i64([4, n]))], [out + "_wt4"])
    if c == 1:
        N("Reshape", [out + "_g", I(out + "_s_c4n", i64([1, 4, n]))], [out + "_gc"])
    else:
        N("Reshape", [out + "_g", I(out + "_s_4nc", i64([4, n, c]))], [out + "_g4"])
        N("Transpose", [out + "_g4"], [out + "_gc"], perm=[2, 0, 1])  # [c, 4, n]
    N("Mul", [out + "_gc", out + "_wt4"], [out + "_gw"])
    N("MatMul", [I(out + "_ones", np.ones((1, 4), np.float32)), out + "_gw"], [out + "_sum"])  # [c, 1, n]
    N("Reshape", [out + "_sum", I(out + "_s_out", i64([1, c, h, w]))], [out])
    return out


def build_features(net):
    c = net.cfg
    H = W = c["input_size"]
    inits, nodes = [], []
    enc = net.encoder
    w0, b0 = _fold_bn(enc.conv0.weight, enc.bn0)
    kfold, pads = obelisk_folded_kernel(net)
    w1, b1 = _fold_bn(kfold, enc.bn1)
    w2, b2 = _fold_bn(enc.conv2.weight, enc.bn2)
    w3, b3 = enc.conv3.weight.detach(), enc.conv3.bias.detach()
    f32 = lambda t: t.numpy().astype(np.float32)
    # the half-resolution frame, also an output (`half`) for the flow head's Lucas-Kanade steps
    p0 = "half" if c["lk_iters"] else "p0"
    nodes.append(helper.make_node("AveragePool", ["image"], [p0], kernel_shape=[3, 3], strides=[2, 2],
                                  pads=[1, 1, 1, 1], count_include_pad=1))
    nodes.append(helper.make_node("Conv", [p0, _init("w0", f32(w0), inits), _init("b0", f32(b0), inits)], ["c0"],
                                  kernel_shape=[5, 5], strides=[2, 2], pads=[2, 2, 2, 2]))
    nodes.append(helper.make_node("Relu", ["c0"], ["r0"]))
    k = kfold.shape[-1]
    nodes.append(helper.make_node("Conv", ["r0", _init("w1", f32(w1), inits), _init("b1", f32(b1), inits)], ["c1"],
                                  kernel_shape=[k, k], strides=[enc.so, enc.so], pads=pads))
    nodes.append(helper.make_node("Relu", ["c1"], ["r1"]))
    nodes.append(helper.make_node("Conv", ["r1", _init("w2", f32(w2), inits), _init("b2", f32(b2), inits)], ["c2"],
                                  kernel_shape=[3, 3], strides=[1, 1], pads=[1, 1, 1, 1]))
    nodes.append(helper.make_node("Relu", ["c2"], ["r2"]))
    nodes.append(helper.make_node("Conv", ["r2", _init("w3", f32(w3), inits), _init("b3", f32(b3), inits)],
                                  ["f3"], kernel_shape=[1, 1]))
    # L2 normalisation over channels
    nodes.append(helper.make_node("Mul", ["f3", "f3"], ["f3sq"]))
    nodes.append(helper.make_node("ReduceSum", ["f3sq", _init("nax", np.array([1], np.int64), inits)], ["f3n"],
                                  keepdims=1))
    nodes.append(helper.make_node("Add", ["f3n", _init("neps", np.array(1e-6, np.float32), inits)], ["f3ne"]))
    nodes.append(helper.make_node("Sqrt", ["f3ne"], ["f3rt"]))
    N = lambda op, ins, outs, **kw: nodes.append(helper.make_node(op, ins, outs, **kw))
    I = lambda name, arr: _init(name, arr, inits)
    maps = feature_maps(c)
    N("Div", ["f3", "f3rt"], [maps[0][0]])
    if c["refine"]:
        cf = c["cf"]
        fw0, fb0 = _fold_bn(net.fine.conv0.weight, net.fine.bn0)
        N("Conv", ["r0", I("fw0", f32(fw0)), I("fb0", f32(fb0))], ["fc0"], kernel_shape=[3, 3], pads=[1, 1, 1, 1])
        N("Relu", ["fc0"], ["fr0"])
        N("Conv", ["fr0", I("fw1", f32(net.fine.conv1.weight.detach())), I("fb1", f32(net.fine.conv1.bias.detach()))], ["fc1"],
          kernel_shape=[3, 3], pads=[1, 1, 1, 1])
        # L2 norm over channels; the channel sum as a 1x1 Conv (ORT's ReduceSum on axis 1 is slow)
        N("Mul", ["fc1", "fc1"], ["fsq"])
        N("Conv", ["fsq", I("fones", np.ones((1, cf, 1, 1), np.float32))], ["fsum"], kernel_shape=[1, 1])
        N("Add", ["fsum", "neps"], ["fsume"])
        N("Sqrt", ["fsume"], ["frt"])
        N("Div", ["fc1", "frt"], ["fine"])
    x = helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 1, H, W])
    ys = [helper.make_tensor_value_info(name, TensorProto.FLOAT, [1, ch, H // st, W // st]) for name, ch, st in maps]
    return _model(helper.make_graph(nodes, "pddnet_features", [x], ys, initializer=inits))


def feature_maps(c):
    """(name, channels, stride) of each output of the features graph, in order: the coarse
    PDD-Net features, the refinement level's fine features, the Lucas-Kanade level's
    half-resolution frame. The coarse map alone is named `features` (the one-map contract)."""
    maps = [("coarse", c["C"], c["stride"])]
    if c["refine"]:
        maps.append(("fine", c["cf"], 4))
    if c["lk_iters"]:
        maps.append(("half", 1, 2))
    return maps if len(maps) > 1 else [("features", c["C"], c["stride"])]


def build_flow(net):
    c = net.cfg
    H = W = c["input_size"]
    s, C, G, sp, n_mf = c["stride"], c["C"], c["G"], c["spacing"], c["n_mf"]
    h, w = H // s, W // s
    P = sp * (G - 1) // 2
    L = G * G
    inits, nodes = [], []
    I = lambda name, arr: _init(name, arr, inits)
    N = lambda op, ins, outs, **kw: nodes.append(helper.make_node(op, ins, outs, **kw))
    i64 = lambda v: np.array(v, dtype=np.int64)
    alpha = float(net.head.alpha().item())
    wmf = float(net.head.wmf().item())

    refine = bool(c["refine"])
    maps = feature_maps(c)
    ref_in, cur_in = "reference_" + maps[0][0], "current_" + maps[0][0]
    # current: [h, w, C]
    N("Transpose", [cur_in], ["cur_t"], perm=[0, 2, 3, 1])
    N("Reshape", ["cur_t", I("shp_c", i64([h, w, C]))], ["cmat"])
    # reference padded: [1, C, h+2P, w+2P]
    N("Pad", [ref_in, I("pads_r", i64([0, 0, P, P, 0, 0, P, P]))], ["rpad"], mode="edge")
    Wp = w + 2 * P
    # rows: [h+2P, C, Wp] (small transpose), then ONE Gather of the G row-shifted copies (faster
    # than G Slices + Concat)
    N("Reshape", ["rpad", I("shp_rp", i64([C, h + 2 * P, Wp]))], ["rpad3"])
    N("Transpose", ["rpad3"], ["rrowsT"], perm=[1, 0, 2])  # [h+2P, C, Wp]
    ridx = (np.arange(G)[:, None] * sp + np.arange(h)[None, :]).astype(np.int64)  # [G, h]
    N("Gather", ["rrowsT", I("ridx", ridx)], ["rmat"], axis=0)  # [G, h, C, Wp]
    N("MatMul", ["cmat", "rmat"], ["band"])  # [G, h, w, w+2P]; band[x, x + sp*k] is label (dy, k)
    # the G needed diagonals of each band as columns: pad each row by w, so that rows of w+2P+1
    # shift by one per x, then take every sp-th column (one Gather of them was slower)
    N("Reshape", ["band", I("shp_b1", i64([G, h, w * Wp]))], ["band1"])
    N("Pad", ["band1", I("pads_b", i64([0, 0, 0, 0, 0, w]))], ["band2"], mode="constant")
    N("Reshape", ["band2", I("shp_b3", i64([G, h, w, Wp + 1]))], ["band3"])
    N("Slice", ["band3", I("bs", i64([0])), I("be", i64([2 * P + 1])), I("ba", i64([3])), I("bst", i64([sp]))],
      ["corr_t"])  # [G(dy), h, w, G(dx)] = <F(p), R(p+d)>
    N("Transpose", ["corr_t"], ["corr_hw"], perm=[1, 2, 0, 3])  # [h, w, G, G]
    N("Reshape", ["corr_hw", I("shp_l", i64([h * w, 1, G, G]))], ["corr_l"])
    # min-convolution over labels: the max pool of the correlation (the temperature 2*alpha > 0
    # commutes with it and is folded into the pooling matrices below)
    N("MaxPool", ["corr_l"], ["nmin"], kernel_shape=[3, 3], strides=[1, 1], pads=[1, 1, 1, 1])  # = -minpool
    # The four 3x3 average pools that follow (two over the labels, two over space; count_include_pad=0)
    # are one linear operator, separable per axis: each pool is L = diag(1/count) * tridiag(1, 1, 1)
    # on each of its two axes, so the two pools over an axis are L @ L, applied as one MatMul per
    # axis (precomputed in float64). A MatMul acts on the last axis (right-multiplication) or, after
    # a reshape to [a, rest], on the first; the transpose the head already had ([h,w,L] ->
    # [h,L,w], the layout of the mean field) puts each axis first or last once:
    #   [h, w*L]      y  (left)        [h*w*G, G]  dx (right, times 2*alpha)
    #   [h, G, G*w]   dy (left, h batches of GxG @ Gx(G*w))    [h*L, w]  x (right)
    # The head then works on [h, L, w] (Conv sums over labels see it as [h, L, 1, w]).
    py2, px2 = _pool_matrix(h), _pool_matrix(w)
    pdy2, pdx2 = _pool_matrix(G), _pool_matrix(G)
    py2, px2, pdy2, pdx2 = py2 @ py2, px2 @ px2, pdy2 @ pdy2, pdx2 @ pdx2
    f32 = lambda a: np.ascontiguousarray(a, dtype=np.float32)
    N("Reshape", ["nmin", I("shp_y", i64([h, w * L]))], ["nm_y"])
    N("MatMul", [I("pool_y2", f32(py2)), "nm_y"], ["na_y"])
    N("Reshape", ["na_y", I("shp_dx", i64([h * w * G, G]))], ["na_y2"])
    N("MatMul", ["na_y2", I("pool_dx2", f32(2.0 * alpha * pdx2.T))], ["na_dx"])
    N("Reshape", ["na_dx", I("shp_hwl", i64([h, w, L]))], ["na_hwl"])
    N("Transpose", ["na_hwl"], ["na_hlw"], perm=[0, 2, 1])  # [h, L, w]
    N("Reshape", ["na_hlw", I("shp_dy", i64([h, G, G * w]))], ["na_dy0"])
    N("MatMul", [I("pool_dy2", f32(pdy2)), "na_dy0"], ["na_dy"])
    N("Reshape", ["na_dy", I("shp_x", i64([h * L, w]))], ["na_x0"])
    N("MatMul", ["na_x0", I("pool_x2", f32(px2.T))], ["nD2"])  # = -D2, [h*L, w]
    # -u <= 2*alpha + wmf everywhere (unit-norm features: <F,R> <= 1; pooling and averaging keep
    # the bound), so exp(-u - shift) <= 1 never overflows and, for any label whose correlation is
    # >= 0, exp() >= exp(-(2*alpha + wmf)) >= exp(-80) stays a normal float: no max subtraction.
    # The head carries -u - shift (the shift once; the averages of the mean field keep it).
    shift = 2.0 * alpha + wmf
    N("Add", ["nD2", I("nD2_shift", np.array(-shift, np.float32))], ["nD2s"])
    shp_hl1w = I("shp_hl1w", i64([h, L, 1, w]))
    ones_w = np.ones((1, L, 1, 1), np.float32)
    I("lbl_ones", ones_w)
    I("sm_eps", np.array(1e-30, np.float32))
    # mean-field pool of Q = e / sum(e) (e = exp(-u - shift)), one 3x3 average over space, times
    # wmf: the per-pixel 1 / sum(e) is folded into the x-pooling matrix, (e_y diag(r_y)) Px^T =
    # e_y (diag(r_y) Px^T) for each row y (16 batched MatMuls [L, w] @ [w, w]), then the y pool
    # (left) and the add of -D2 - shift in one Gemm. A Div of [h,L,w] by the sums [h,1,w]
    # broadcasts over a middle axis, which ONNX Runtime runs 4x slower than the MatMul.
    py1, px1 = _pool_matrix(h), _pool_matrix(w)
    I("pool_y1", f32(py1))
    I("pool_x1w", f32(wmf * px1.T).reshape(1, w, w))
    I("shp_hw1", i64([h, w, 1]))
    I("shp_hlw", i64([h, L, w]))
    I("shp_yq", i64([h, L * w]))
    I("nD2s_yq", i64([h, L * w]))
    N("Reshape", ["nD2s", "nD2s_yq"], ["nD2s_y"])

    gamma = float(net.head.gamma().item())
    cur = "nD2s"  # holds -u - shift, [h*L, w]
    for it in range(n_mf):
        # softmax over the labels; ORT's Softmax on a non-last axis transposes internally (~10x
        # slower), and its ReduceSum over axis 1 is ~10x slower than the same sum as a 1x1 Conv
        # with unit weights.
        q = f"q{it}"
        N("Reshape", [cur, shp_hl1w], [q + "_in"])
        N("Exp", [q + "_in"], [q + "_ex"])
        N("Conv", [q + "_ex", "lbl_ones"], [q + "_sm0"], kernel_shape=[1, 1])  # [h, 1, 1, w]
        N("Add", [q + "_sm0", "sm_eps"], [q + "_sm"])
        N("Reshape", [q + "_sm", "shp_hw1"], [q + "_smc"])  # [h, w, 1]
        N("Div", ["pool_x1w", q + "_smc"], [q + "_px"])  # [h, w, w] = diag(1/sum) wmf Px^T
        N("Reshape", [q + "_ex", "shp_hlw"], [q + "_e3"])
        N("MatMul", [q + "_e3", q + "_px"], [q + "_x"])  # [h, L, w] = wmf * x-avg(Q)
        N("Reshape", [q + "_x", "shp_yq"], [q + "_x2"])
        # -u - shift = -D2 - shift + w*avg(Q), [h, L*w]; the last one times the final sharpness
        # gamma (Gemm's alpha, beta): the logits of the final softmax
        g = gamma if it == n_mf - 1 else 1.0
        N("Gemm", ["pool_y1", q + "_x2", "nD2s_y"], [f"nu{it}"], alpha=g, beta=g)
        cur = f"nu{it}"
    if n_mf == 0:
        N("Mul", [cur, I("qf_gamma", np.array(gamma, np.float32))], ["qf_g"])
        cur = "qf_g"
    # final softmax (sharpness gamma <= 1) fused with the soft-argmin: one 1x1 Conv gives
    # (sum e*dx, sum e*dy, sum e)
    N("Reshape", [cur, shp_hl1w], ["qf_in"])
    N("Exp", ["qf_in"], ["qf_ex"])
    disp = net.head.disp.detach().numpy().astype(np.float32).reshape(2, L, 1, 1)
    flat = bool(c["flat_eps"] and c["lk_iters"])
    # with the flat-region rule, a fourth moment: sum e * |d|^2 in labels^2 (PDDHead.flow_and_spread)
    moments = [disp, ones_w] + ([(disp ** 2).sum(0, keepdims=True)] if flat else [])
    N("Conv", ["qf_ex", I("disp_ones", np.concatenate(moments, 0))], ["qf_mom"], kernel_shape=[1, 1])
    N("Slice", ["qf_mom", I("m_s0", i64([0])), I("m_e0", i64([2])), I("m_ax", i64([1]))], ["qf_num"])
    N("Slice", ["qf_mom", I("m_s1", i64([2])), I("m_e1", i64([3])), I("m_ax1", i64([1]))], ["qf_den0"])
    N("Add", ["qf_den0", I("qf_eps", np.array(1e-30, np.float32))], ["qf_den"])
    N("Div", ["qf_num", "qf_den"], ["flow_hw"])  # [h, 2, 1, w]
    N("Transpose", ["flow_hw"], ["flow_lr"], perm=[2, 1, 0, 3])  # [1, 2, h, w]
    cur, grid_h = "flow_lr", h
    if flat:
        # the spread of the final distribution (PDDHead.flow_and_spread), for PDDNet.keep, in
        # px^2 here (build_keep scales its threshold)
        N("Slice", ["qf_mom", I("m_s3", i64([3])), I("m_e3", i64([4])), I("m_ax3", i64([1]))], ["qf_sec0"])
        N("Div", ["qf_sec0", "qf_den"], ["qf_sec"])  # [h, 1, 1, w]
        N("ReduceSumSquare", ["flow_hw"], ["qf_first2"], axes=[1], keepdims=1)  # opset 17: axes attribute
        N("Sub", ["qf_sec", "qf_first2"], ["spread_hw"])  # in px^2 (labels^2 * step^2)
        N("Reshape", ["spread_hw", I("shp_sp", i64([h, w]))], ["spread_lr"])  # [h, w]
    if refine:
        cur, grid_h = build_refine(net, N, I, cur), H // 4
    if flat:
        cur = build_keep(net, N, I, cur, grid_h)
    if c["lk_iters"]:
        cur, grid_h = build_lk(net, N, I, cur), H // 2
    N("Resize", [cur, "", I("scales", np.array([1.0, 1.0, H / grid_h, H / grid_h], np.float32))], ["flow"],
      mode="linear", coordinate_transformation_mode="half_pixel")
    ins = [helper.make_tensor_value_info(f"{role}_{name}", TensorProto.FLOAT, [1, ch, H // st, W // st])
           for role in ("reference", "current") for name, ch, st in maps]
    out = helper.make_tensor_value_info("flow", TensorProto.FLOAT, [1, 2, H, W])
    return _model(helper.make_graph(nodes, "pddnet_flow", ins, [out], initializer=inits))


def _box_matrix(cells, n, size):
    """[cells, n] float64: row i averages the `size` positions around cell i of a grid of n /
    cells positions per cell (the window (size - stride) / 2 before the cell's first position),
    over those inside [0, n): an average pool with count_include_pad = 0 along one axis."""
    stride = n // cells
    box = np.zeros((cells, n))
    for i in range(cells):
        lo = i * stride - (size - stride) // 2
        box[i, max(lo, 0):min(lo + size, n)] = 1.0
    return box / box.sum(1, keepdims=True)


def build_keep(net, N, I, fl_in, grid):
    """PDDNet.keep as ONNX nodes: the flow [1, 2, grid, grid] times (1 - floor) times the share
    kept, decided on the head's grid ("spread_lr", [h, w]) and resized to the flow's grid;
    returns its name. build_lk divides by 1 - floor."""
    c = net.cfg
    H = c["input_size"]
    hh, h2 = H // c["stride"], H // 2
    i64 = lambda v: np.array(v, dtype=np.int64)
    f32 = lambda v: np.array(v, dtype=np.float32)
    # flat = eps / (variance + eps) over each cell's windows of the current half-resolution
    # image (lk.flatness): the two box means (of I and I^2) as two MatMuls on rows [I; I^2]
    box = _box_matrix(hh, h2, c["lk_size"] + h2 // hh - 1)
    N("Mul", ["current_half", "current_half"], ["fk_sq"])
    N("Concat", ["current_half", "fk_sq"], ["fk_both"], axis=1)  # [1, 2, h2, w2]
    N("Reshape", ["fk_both", I("fk_shp", i64([2, h2, h2]))], ["fk_rows"])
    N("MatMul", ["fk_rows", I("fk_boxx", np.ascontiguousarray(box.T, np.float32))], ["fk_bx"])  # [2, h2, w]
    N("MatMul", [I("fk_boxy", box.astype(np.float32)), "fk_bx"], ["fk_means"])  # [2, h, w]
    N("Split", ["fk_means", I("fk_split", i64([1, 1]))], ["fk_m1", "fk_m2"], axis=0)
    N("Mul", ["fk_m1", "fk_m1"], ["fk_m1sq"])
    N("Sub", ["fk_m2", "fk_m1sq"], ["fk_var"])  # [1, h, w]
    N("Add", ["fk_var", I("fk_eps", f32(c["flat_eps"]))], ["fk_vare"])
    N("Div", ["fk_eps", "fk_vare"], ["fk_flat"])
    # wide = v^4 / (v^4 + tau^4) of the head's spread v (px^2 here: tau in px^2 too)
    step2 = float(c["spacing"] * c["stride"]) ** 2
    N("Pow", ["spread_lr", I("fk_four", f32(4.0))], ["fk_v4"])
    N("Add", ["fk_v4", I("fk_tau4", f32((c["flat_spread"] * step2) ** 4))], ["fk_v4t"])
    N("Div", ["fk_v4", "fk_v4t"], ["fk_wide"])
    # relu(1 - floor - flat * wide), resized (bilinear, half_pixel) as the flow; the division by
    # 1 - floor commutes to the Lucas-Kanade level's input scale (build_lk)
    N("Mul", ["fk_flat", "fk_wide"], ["fk_drop"])
    N("Sub", [I("fk_one", f32(1.0 - KEEP_FLOOR)), "fk_drop"], ["fk_keep0"])
    N("Relu", ["fk_keep0"], ["fk_keep1"])
    N("Reshape", ["fk_keep1", I("fk_shp4", i64([1, 1, hh, hh]))], ["fk_keep_lr"])
    if grid != hh:
        N("Resize", ["fk_keep_lr", "", "", I("fk_sizes", i64([1, 1, grid, grid]))], ["fk_keep"], mode="linear",
          coordinate_transformation_mode="half_pixel")
    else:
        N("Identity", ["fk_keep_lr"], ["fk_keep"])
    N("Mul", [fl_in, "fk_keep"], ["fk_kept"])
    return "fk_kept"


def build_lk(net, N, I, fl_in):
    """Lucas-Kanade steps on the packed half-resolution image (lk.LucasKanade) as ONNX nodes;
    returns the name of the flow [1,2,H/2,W/2] in image pixels."""
    c = net.cfg
    H = W = c["input_size"]
    h2, w2, q = H // 2, W // 2, 2.0
    i64 = lambda v: np.array(v, dtype=np.int64)
    f32 = lambda v: np.array(v, dtype=np.float32)
    img_r, img_c = "reference_half", "current_half"
    gh = fl_in  # resize to H/2 from whatever grid the incoming flow has
    N("Resize", [gh, "", "", I("lk_sizes", i64([1, 2, h2, w2]))], ["lk_fl2"], mode="linear",
      coordinate_transformation_mode="half_pixel")
    # with the flat-region rule, also the 1 / (1 - floor) of PDDNet.keep (build_keep)
    inv = 1.0 / q / (1.0 - KEEP_FLOOR if c["flat_eps"] else 1.0)
    N("Mul", ["lk_fl2", I("lk_inv_q", f32(inv))], ["lk_u0"])
    # central differences with edge padding as one Conv (channel 0 = d/dx, 1 = d/dy)
    gk = np.zeros((2, 1, 3, 3), np.float32)
    gk[0, 0, 1, 0], gk[0, 0, 1, 2] = -0.5, 0.5
    gk[1, 0, 0, 1], gk[1, 0, 2, 1] = -0.5, 0.5
    I("lk_gk", gk)
    I("lk_pad1", i64([0, 0, 1, 1, 0, 0, 1, 1]))
    N("Pad", [img_c, "lk_pad1"], ["lk_cpad"], mode="edge")
    N("Conv", ["lk_cpad", "lk_gk"], ["lk_gc"], kernel_shape=[3, 3])
    k = c["lk_size"]
    gy, gx = np.meshgrid((2 * np.arange(h2) + 1) / h2 - 1, (2 * np.arange(w2) + 1) / w2 - 1, indexing="ij")
    # the sampling grid is built channels-first and transposed once (a broadcast over a last
    # axis of 2 is slow in ONNX Runtime); GridSample stays here: for one channel the Gather of
    # _bilinear_border fetches single floats and was 4% slower on the whole flow graph
    I("lk_base", np.stack([gx, gy], 0)[None].astype(np.float32))
    I("lk_gscale", np.array([2.0 / w2, 2.0 / h2], np.float32).reshape(1, 2, 1, 1))
    I("lk_half", f32(0.5))
    I("lk_lam", f32(c["lk_lambda"]))
    I("lk_eps", f32(c["lk_eps"]))
    I("lk_clip_lo", f32(-c["lk_clip"]))
    I("lk_clip_hi", f32(c["lk_clip"]))
    for ch, nm in enumerate("abdxy"):
        I(f"lk_s{nm}", i64([ch]))
        I(f"lk_e{nm}", i64([ch + 1]))
    I("lk_ax1", i64([1]))
    u = "lk_u0"
    for it in range(c["lk_iters"]):
        t = f"lk{it}_"
        N("Mul", [u, "lk_gscale"], [t + "ug"])
        N("Add", [t + "ug", "lk_base"], [t + "gridc"])
        N("Transpose", [t + "gridc"], [t + "grid"], perm=[0, 2, 3, 1])
        N("GridSample", [img_r, t + "grid"], [t + "wr"], mode="bilinear", padding_mode="border", align_corners=0)
        N("Pad", [t + "wr", "lk_pad1"], [t + "wpad"], mode="edge")
        N("Conv", [t + "wpad", "lk_gk"], [t + "gr"], kernel_shape=[3, 3])
        N("Add", [t + "gr", "lk_gc"], [t + "gs"])
        N("Mul", [t + "gs", "lk_half"], [t + "G"])  # [gx, gy]
        N("Sub", [img_c, t + "wr"], [t + "e"])
        N("Mul", [t + "G", t + "G"], [t + "GG"])  # [gx^2, gy^2]
        N("Mul", [t + "G", t + "e"], [t + "Ge"])  # [gx e, gy e]
        N("Slice", [t + "G", "lk_sa", "lk_ea", "lk_ax1"], [t + "gx"])
        N("Slice", [t + "G", "lk_sb", "lk_eb", "lk_ax1"], [t + "gy"])
        N("Mul", [t + "gx", t + "gy"], [t + "gxy"])
        N("Slice", [t + "GG", "lk_sa", "lk_ea", "lk_ax1"], [t + "gxx"])
        N("Slice", [t + "GG", "lk_sb", "lk_eb", "lk_ax1"], [t + "gyy"])
        N("Concat", [t + "gxx", t + "gxy", t + "gyy", t + "Ge"], [t + "prod"], axis=1)  # [a, b, d, ex, ey]
        N("AveragePool", [t + "prod"], [t + "sm"], kernel_shape=[k, k], strides=[1, 1], pads=[k // 2] * 4,
          count_include_pad=1)
        for nm in "abdxy":
            N("Slice", [t + "sm", f"lk_s{nm}", f"lk_e{nm}", "lk_ax1"], [t + nm])
        N("Add", [t + "a", t + "d"], [t + "tr"])
        N("Mul", [t + "tr", "lk_lam"], [t + "trl"])
        N("Add", [t + "trl", "lk_eps"], [t + "reg"])
        N("Add", [t + "a", t + "reg"], [t + "ar"])
        N("Add", [t + "d", t + "reg"], [t + "dr"])
        N("Mul", [t + "ar", t + "dr"], [t + "ad"])
        N("Mul", [t + "b", t + "b"], [t + "bb"])
        N("Sub", [t + "ad", t + "bb"], [t + "det"])
        N("Mul", [t + "dr", t + "x"], [t + "n1"])
        N("Mul", [t + "b", t + "y"], [t + "n2"])
        N("Sub", [t + "n1", t + "n2"], [t + "nx"])
        N("Mul", [t + "ar", t + "y"], [t + "n3"])
        N("Mul", [t + "b", t + "x"], [t + "n4"])
        N("Sub", [t + "n3", t + "n4"], [t + "ny"])
        N("Concat", [t + "nx", t + "ny"], [t + "num"], axis=1)
        N("Div", [t + "num", t + "det"], [t + "du"])
        N("Clip", [t + "du", "lk_clip_lo", "lk_clip_hi"], [t + "duc"])
        N("Add", [u, t + "duc"], [t + "u"])
        u = t + "u"
    N("Mul", [u, I("lk_q", f32(q))], ["lk_out"])
    return "lk_out"


def build_refine(net, N, I, flow_lr):
    """The stride-4 refinement level (refine.Refinement) as ONNX nodes."""
    c, ref = net.cfg, net.refinement
    H = W = c["input_size"]
    s, cf, r = c["stride"], c["cf"], c["rr"]
    h4, w4, q = H // 4, W // 4, 4
    n = 2 * r + 1
    i64 = lambda v: np.array(v, dtype=np.int64)
    f32 = lambda t: t.detach().numpy().astype(np.float32)
    fine_r, fine_c = "reference_fine", "current_fine"
    N("Resize", [flow_lr, "", I("scales4", np.array([1.0, 1.0, h4 / (H // s), w4 / (W // s)], np.float32))], ["fl4"],
      mode="linear", coordinate_transformation_mode="half_pixel")
    # the reference fine features warped by the flow: bilinear, border, at pixel (x, y) + fl / q
    # (what GridSample with align_corners=0 samples at the grid (2 (x + fl/q) + 1) / w4 - 1)
    gy, gx = np.meshgrid(np.arange(h4), np.arange(w4), indexing="ij")
    N("Mul", ["fl4", I("fl4_inv_q", np.array(1.0 / q, np.float32))], ["fl4q"])
    N("Add", ["fl4q", I("pbase4", np.stack([gx, gy], 0)[None].astype(np.float32))], ["wpix"])
    _bilinear_border(N, I, fine_r, "wpix", cf, h4, w4, "wref")
    N("Pad", ["wref", I("pads_w", i64([0, 0, r, r, 0, 0, r, r]))], ["wpad"], mode="edge")
    # the n*n shifted copies side by side, ONE Mul with the current features (broadcast over the
    # leading offset axis) and the per-offset channel sums as a MatMul with ones (n*n batches
    # [1, cf] @ [cf, h4*w4]); n*n separate Muls and a block-diagonal 1x1 Conv were slower
    shifts = []
    for dy in range(n):
        for dx in range(n):
            k = dy * n + dx
            N("Slice", ["wpad", I(f"ws{k}", i64([dy, dx])), I(f"we{k}", i64([dy + h4, dx + w4])), I(f"wa{k}", i64([2, 3]))],
              [f"wsh{k}"])
            shifts.append(f"wsh{k}")
    N("Concat", shifts, ["wshs"], axis=0)  # [n*n, cf, h4, w4]
    N("Mul", ["wshs", fine_c], ["wprods"])
    N("Reshape", ["wprods", I("shp_wp", i64([n * n, cf, h4 * w4]))], ["wprods3"])
    N("MatMul", [I("corr_ones", np.ones((1, cf), np.float32)), "wprods3"], ["corr3"])  # [n*n, 1, h4*w4]
    N("Reshape", ["corr3", I("shp_corr", i64([1, n * n, h4, w4]))], ["corr"])
    N("Mul", ["fl4", I("fl_in_scale", np.array(1.0 / 16.0, np.float32))], ["fl4s"])
    # the refinement input has 2*cf + n*n + 2 channels (27); zero channels (and zero weights) up to
    # a multiple of 8 let ONNX Runtime run the conv in its blocked NCHWc layout (exact: the added
    # terms are 0 * 0)
    cin = 2 * cf + n * n + 2
    cpad = -cin % 8
    rw0 = f32(ref.conv0.weight)
    rin = [fine_c, "wref", "corr", "fl4s"]
    if cpad:
        rin.append(I("rin_zeros", np.zeros((1, cpad, h4, w4), np.float32)))
        rw0 = np.concatenate([rw0, np.zeros((rw0.shape[0], cpad) + rw0.shape[2:], np.float32)], 1)
    N("Concat", rin, ["rin"], axis=1)
    N("Conv", ["rin", I("rw0", rw0), I("rb0", f32(ref.conv0.bias))], ["rc0"],
      kernel_shape=[3, 3], pads=[1, 1, 1, 1])
    N("Relu", ["rc0"], ["rr0"])
    N("Conv", ["rr0", I("rw1", f32(ref.conv1.weight)), I("rb1", f32(ref.conv1.bias))], ["rc1"],
      kernel_shape=[3, 3], pads=[2, 2, 2, 2], dilations=[2, 2])
    N("Relu", ["rc1"], ["rr1"])
    rs = float(c["rscale"])
    N("Conv", ["rr1", I("rw2", f32(ref.conv2.weight) * rs), I("rb2", f32(ref.conv2.bias) * rs)], ["rres"],
      kernel_shape=[3, 3], pads=[1, 1, 1, 1])
    N("Add", ["fl4", "rres"], ["fl4r"])
    return "fl4r"


def at_size(net, size):
    """The same network at another input size (no parameter depends on it: only the sampling
    grids and resize scales written at export do)."""
    other = copy.deepcopy(net)
    other.cfg = {**net.cfg, "input_size": size}
    return other


def graph_files(size, default_size):
    """The contract's file names of one input size: features.onnx / flow.onnx for the default
    (input_width x input_height), features-WxH.onnx / flow-WxH.onnx for the others."""
    if size == default_size:
        return "features.onnx", "flow.onnx"
    return f"features-{size}x{size}.onnx", f"flow-{size}x{size}.onnx"


def model_json(net, name, version, training=None, scores=None, sizes=None, default_working_size=None,
               working_size_by_frame=None):
    c = net.cfg
    maps = feature_maps(c)
    extra = {}
    if sizes:
        extra["input_sizes"] = [[s, s] for s in sizes]
    if default_working_size:
        if default_working_size not in (sizes or [c["input_size"]]):
            raise ValueError(f"default working size {default_working_size} is not among the exported sizes {sizes}")
        extra["default_working_size"] = default_working_size
    if working_size_by_frame:
        rules = sorted(working_size_by_frame)
        bad = [size for _, size in rules if size not in (sizes or [c["input_size"]])]
        if bad:
            raise ValueError(f"working sizes {bad} of working_size_by_frame are not among the exported sizes {sizes}")
        extra["working_size_by_frame"] = [[side, size] for side, size in rules]
    return {
        "name": name,
        "version": version,
        "input_width": c["input_size"],
        "input_height": c["input_size"],
        **extra,
        "stride": c["stride"],
        "feature_channels": sum(ch for _, ch, _ in maps),
        **({"feature_maps": [{"name": name, "channels": ch, "stride": st} for name, ch, st in maps]}
           if len(maps) > 1 else {}),
        "displacement_grid": c["G"],
        "displacement_spacing": c["spacing"] * c["stride"],
        "max_displacement": (c["G"] - 1) // 2 * c["spacing"] * c["stride"],
        "classes": {"0": "background", "1": "vein", "2": "artery"},
        "opset": OPSET,
        "architecture": {"type": "pddnet2d", **c},
        "training": training,
        "scores": scores,
    }


def export(net, out_dir, name="pddflow-pddnet", version="0.1.0", training=None, scores=None,
           sizes=None, default_working_size=None, working_size_by_frame=None):
    """Writes the two graphs at the net's input size (the default) and, with `sizes` (input
    sizes, square, the default among them or added), at each other size, plus model.json, which
    then lists them all in input_sizes."""
    net = net.eval().cpu()
    default = net.cfg["input_size"]
    if sizes:
        sizes = sorted(set(sizes) | {default})
        stride = net.cfg["stride"]
        bad = [s for s in sizes if s <= 0 or s % stride]
        if bad:
            raise ValueError(f"input sizes {bad} are not positive multiples of the stride {stride}")
    os.makedirs(out_dir, exist_ok=True)
    for size in sizes or [default]:
        sized = net if size == default else at_size(net, size)
        feats, flow = graph_files(size, default)
        onnx.save(build_features(sized), os.path.join(out_dir, feats))
        onnx.save(build_flow(sized), os.path.join(out_dir, flow))
    with open(os.path.join(out_dir, "model.json"), "w") as f:
        json.dump(model_json(net, name, version, training, scores, sizes, default_working_size,
                             working_size_by_frame), f, indent=2)
        f.write("\n")


def load_checkpoint(path, overrides=None):
    """A trained PDDNet; `overrides` changes parameter-free settings (e.g. {"lk_iters": 2} adds
    the Lucas-Kanade level to a checkpoint trained without it; {"G": 9} a smaller label grid)."""
    ck = torch.load(path, map_location="cpu", weights_only=False)
    net = PDDNet(**{**ck["config"], **(overrides or {})})
    state = upgrade_state_dict(ck["model"])
    # the label displacements are a buffer derived from G, spacing and stride, not learned: the
    # net's own, built from the (overridden) config, are the right ones
    state["head.disp"] = net.state_dict()["head.disp"]
    net.load_state_dict(state)
    return net.eval(), ck


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("checkpoint")
    ap.add_argument("out_dir")
    ap.add_argument("--name", default="pddflow-pddnet")
    ap.add_argument("--version", default="0.1.0")
    ap.add_argument("--scores", default=None, help="JSON file with measured scores to embed")
    ap.add_argument("--config", default="{}", help='JSON overrides of parameter-free settings, e.g. {"lk_iters": 2}')
    ap.add_argument("--default-working-size", type=int, default=None,
                    help="the size pddflow runs at when working-size is 0 (model.json default_working_size; "
                         "the built-in model: 128, measured)")
    ap.add_argument("--small-frames", default="",
                    help="working sizes for small frames when working-size is 0, as SIDE:SIZE pairs "
                         "(model.json working_size_by_frame): frames whose longest side is at most SIDE "
                         "run at SIZE (the built-in model: 256:256, measured)")
    ap.add_argument("--sizes", default="",
                    help="more input sizes to export (square, comma separated, e.g. 128,192,256,320,384); "
                         "the config's input_size is the default (features.onnx, flow.onnx), the others "
                         "are features-SxS.onnx, flow-SxS.onnx, all listed in model.json's input_sizes")
    a = ap.parse_args()
    overrides = json.loads(a.config)
    net, ck = load_checkpoint(a.checkpoint, overrides)
    scores = json.load(open(a.scores)) if a.scores else ck.get("scores")
    training = ck.get("training")
    if overrides:
        training = {**(training or {}), "export_overrides": overrides}
    sizes = [int(v) for v in a.sizes.split(",") if v.strip()]
    small_frames = [tuple(int(n) for n in pair.split(":")) for pair in a.small_frames.split(",") if pair.strip()]
    export(net, a.out_dir, a.name, a.version, training, scores, sizes or None, a.default_working_size,
           small_frames or None)
    print("exported to", a.out_dir, f"at {sorted(set(sizes) | {net.cfg['input_size']})}" if sizes else "")


if __name__ == "__main__":
    main()
