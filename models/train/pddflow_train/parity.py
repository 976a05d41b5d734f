"""Parity of the ONNX export (ONNX Runtime, CPU) against the PyTorch model.

Checks features (abs error relative to the feature scale) and flow (max abs error <= 1e-3 px)
against the PyTorch model evaluated in float64, on random images and on a shifted textured pair.

    python -m pddflow_train.parity                # random nets: every config variant in CONFIGS,
                                                  # and the default architecture at every size in SIZES
    python -m pddflow_train.parity CHECKPOINT     # a checkpoint, at every input size
                                                  # models/default/model.json lists (input_sizes)

PDDFLOW_SIZES (e.g. 128,256) replaces the sizes, PDDFLOW_EXPORT_CONFIG the parameter-free settings
added at export (default: the shipped model's, model.json training.export_overrides). The pytest
tests (models/train/tests/test_parity.py) call the functions below and always check the shipped
model (models/default/pddnet.pt, or PDDFLOW_CHECKPOINT).
"""
import argparse
import copy
import json
import os
import tempfile

import numpy as np
import torch

from .export import at_size, export, feature_maps, graph_files, load_checkpoint
from .onnx_model import OnnxModel, session_options
from .pddnet import PDDNet

FLOW_TOL = 1e-3


def _random_net(**cfg):
    torch.manual_seed(1)
    net = PDDNet(**cfg)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.1, 0.1)
        net.head.alpha_logit.fill_(0.5)
        net.head.gamma_logit.fill_(0.5)
        if net.cfg["refine"]:  # zero-initialised at training start; make it matter here
            net.refinement.conv2.weight.normal_(0, 0.05)
            net.refinement.conv2.bias.uniform_(-0.1, 0.1)
    return net.eval()


def _images(n, size, seed=0):
    rng = np.random.RandomState(seed)
    base = rng.rand(size + 32, size + 32).astype(np.float32)
    import cv2
    base = cv2.GaussianBlur(base, (0, 0), 2.0)
    base = (base - base.min()) / (base.max() - base.min())
    out = []
    for i in range(n):
        dy, dx = rng.randint(0, 16, 2)
        im = base[dy:dy + size, dx:dx + size].copy()
        im[3 * size // 4:] = 0.0  # a black scanner margin: the flat-window rule (lk_flat) acts there
        out.append(im)
    out.append(rng.rand(size, size).astype(np.float32))
    return out


def check(net, tmp, sizes=None):
    """Worst feature error (relative) and flow error (px) of the ONNX Runtime graphs against the
    PyTorch model evaluated in float64, i.e. the exact function the export must reproduce, over
    the net's input size and every other size in `sizes` (exported as features-SxS.onnx /
    flow-SxS.onnx, the element's working-size). A float32 reference would itself be off by up
    to ~1e-3 px on trained checkpoints (the learned temperature amplifies rounding in the cost
    volume); the float32 PyTorch error is returned too, for the record."""
    export(net, tmp, sizes=sizes)
    default = net.cfg["input_size"]
    with open(os.path.join(tmp, "model.json")) as f:
        listed = json.load(f).get("input_sizes") or [[default, default]]
    all_sizes = sorted(set(sizes or []) | {default})
    assert sorted(w for w, _ in listed) == all_sizes, (listed, all_sizes)
    worst = (0.0, 0.0, 0.0)
    for size in all_sizes:
        feats, flow = graph_files(size, default)
        r = check_graphs(net if size == default else at_size(net, size), size,
                         os.path.join(tmp, feats), os.path.join(tmp, flow))
        if len(all_sizes) > 1:
            print(f"  {size}x{size}: features rel err {r[0]:.2e}, flow max abs err {r[1]:.2e} px "
                  f"(PyTorch float32 {r[2]:.2e})")
        worst = tuple(max(a, b) for a, b in zip(worst, r))
    return worst


def torch_maps(net, packed, dtype=np.float32):
    """The PyTorch model's packed features as the export's feature maps ({name: array})."""
    coarse, fine, half = net.split_features(packed)
    parts = [coarse] + [t for t in (fine, half) if t is not None]
    return {name: t.numpy().astype(dtype) for (name, _, _), t in zip(feature_maps(net.cfg), parts)}


def check_graphs(net, size, features_path, flow_path):
    """check() for one input size, which the graphs must have."""
    model = OnnxModel(features_path, flow_path, session_options(1))
    shapes = (model.features_session.get_inputs()[0].shape, model.flow_session.get_outputs()[0].shape)
    assert shapes == ([1, 1, size, size], [1, 2, size, size]), (features_path, shapes)
    assert model.maps == [name for name, _, _ in feature_maps(net.cfg)], (features_path, model.maps)
    imgs = _images(3, size)
    net64 = copy.deepcopy(net).double().eval()
    worst_f, worst_w, worst_w32 = 0.0, 0.0, 0.0
    feats_o, feats_64, feats_32 = [], [], []
    with torch.no_grad():
        for im in imgs:
            x = torch.from_numpy(im)[None, None]
            ft = net64.features(x.double())
            fo = model.features(im[None, None])
            # each map relative to its own scale (the frame is in [0, 1], the features unit-norm)
            for name, exact in torch_maps(net64, ft, np.float64).items():
                err = np.abs(fo[name].astype(np.float64) - exact).max() / (np.abs(exact).max() + 1e-6)
                worst_f = max(worst_f, float(err))
            feats_o.append(fo)
            feats_64.append(ft)
            feats_32.append(net.features(x))
        for i in range(1, len(imgs)):
            wt = net64.flow(feats_64[0], feats_64[i]).numpy()
            # the flow graph alone, on the exact features rounded to float32
            wo = model.flow(torch_maps(net64, feats_64[0]), torch_maps(net64, feats_64[i]))
            worst_w = max(worst_w, float(np.abs(wo - wt).max()))
            # end to end: ONNX Runtime features -> ONNX Runtime flow
            wo2 = model.flow(feats_o[0], feats_o[i])
            worst_w = max(worst_w, float(np.abs(wo2 - wt).max()))
            w32 = net.flow(feats_32[0], feats_32[i]).numpy()
            worst_w32 = max(worst_w32, float(np.abs(w32 - wt).max()))
    return worst_f, worst_w, worst_w32


CONFIGS = [dict(), dict(stride=8, spacing=1), dict(stride=4, spacing=1, G=7), dict(refine=1),
           dict(stride=4, G=7, refine=1, rr=1), dict(refine=1, lk_iters=2), dict(lk_iters=1),
           dict(refine=1, lk_iters=1, lk_flat=1e-6)]
# the working sizes of the default model (models/default/model.json input_sizes)
SIZES = [128, 192, 256, 320, 384]
# the shipped model: its checkpoint (pddnet.pt) and model.json
DEFAULT_MODEL_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "default")


def check_configs():
    for cfg in CONFIGS:
        with tempfile.TemporaryDirectory() as tmp:
            f, w, w32 = check(_random_net(**cfg), tmp)
        print(f"config {cfg}: features rel err {f:.2e}, flow max abs err {w:.2e} px (PyTorch float32 {w32:.2e})")
        assert f < 1e-4 and w < FLOW_TOL


def check_sizes():
    """The default architecture (refinement level, one Lucas-Kanade step) exported at every
    working size, random weights."""
    with tempfile.TemporaryDirectory() as tmp:
        f, w, w32 = check(_random_net(refine=1, lk_iters=1), tmp, SIZES)
    print(f"sizes {SIZES}: features rel err {f:.2e}, flow max abs err {w:.2e} px (PyTorch float32 {w32:.2e})")
    assert f < 1e-4 and w < FLOW_TOL


def check_default_model():
    default_dir = DEFAULT_MODEL_DIR
    ck = os.environ.get("PDDFLOW_CHECKPOINT") or os.path.join(default_dir, "pddnet.pt")
    assert os.path.isfile(ck), f"no checkpoint at {ck} (set PDDFLOW_CHECKPOINT)"
    # parameter-free settings added at export: PDDFLOW_EXPORT_CONFIG, else those the shipped
    # model was exported with (its model.json's training.export_overrides)
    overrides = os.environ.get("PDDFLOW_EXPORT_CONFIG")
    if overrides is None:
        with open(os.path.join(default_dir, "model.json")) as f:
            overrides = json.dumps((json.load(f).get("training") or {}).get("export_overrides") or {})
    net, _ = load_checkpoint(ck, json.loads(overrides))
    # every input size the shipped model declares (PDDFLOW_SIZES: a comma-separated list instead)
    with open(os.path.join(default_dir, "model.json")) as f:
        sizes = [w for w, _ in json.load(f).get("input_sizes") or []]
    if os.environ.get("PDDFLOW_SIZES"):
        sizes = [int(v) for v in os.environ["PDDFLOW_SIZES"].split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        f, w, w32 = check(net, tmp, sizes or None)
    print(f"checkpoint {ck}: features rel err {f:.2e}, flow max abs err {w:.2e} px (PyTorch float32 {w32:.2e})")
    assert f < 1e-4 and w < FLOW_TOL


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoint", nargs="?", help="a checkpoint (default: random nets of every variant)")
    a = ap.parse_args()
    torch.set_num_threads(1)
    if a.checkpoint:
        os.environ["PDDFLOW_CHECKPOINT"] = a.checkpoint
        check_default_model()
    else:
        check_configs()
        check_sizes()
    print("parity OK")


if __name__ == "__main__":
    main()
