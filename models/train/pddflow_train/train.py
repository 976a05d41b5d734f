"""Train the PDD-Net student with knowledge distillation (Nicke et al. recipe).

Stages (run in order, each resumable):
  pretrain : random pairs at fixed frame distance(s) (paper: 6), Adam lr 0.002 (paper: 100 epochs)
  finetune : task-shaped pairs: a fixed frame in the first fifth of each sequence, moving
             frames every 4 frames; Adam lr 0.00025 (paper: 200 epochs)
  (synth   : optional warm-up on single frames warped by random smooth motion, exact flow)

Loss per pair (masks as one-hot label maps, warped bilinearly by the student's flow):
  hard   = MSE(warp(onehot(mask_ref), flow_s), onehot(mask_cur))                 [needs both masks]
  soft   = MSE(warp(onehot(mask_ref), flow_s), warp(onehot(mask_ref), flow_t))    x kd_weight (0.5)
  flow   = mean |flow_s - flow_gt| (L1, pixels)                                   x flow_weight (option)
  smooth = mean squared gradient of the low-resolution flow                        x smooth_weight (option)
  photo  = Charbonnier distance between the locally normalised, slightly blurred
           current frame and the reference warped by flow_s, where p + flow_s(p) lies
           inside the frame (self-supervised: every pixel of real frames, not only
           the masked vessel, constrains the flow)                              x photo_weight (option)
--no-kd trains the labels-only student (soft term off).

Examples:
  python -m pddflow_train.train --data /work/shared/data/carotid --exclude 0035,0037 --val-seqs 0035,0037 \
      --pretrain-epochs 100 --finetune-epochs 200 --out runs/paper
  python -m pddflow_train.train ... --budget 3600 (wall-clock budget in seconds; stages share it)
  python -m pddflow_train.train --out runs/paper --resume          (continue from runs/paper/last.pt)
"""
import argparse
import json
import os
import time

import numpy as np
import torch
import torch.nn.functional as F

from .dataset import PairSampler, load_sequences
from .layers import one_hot, warp
from .pddnet import DEFAULT_CONFIG, HEAD_SCALARS, PDDNet, upgrade_state_dict
from .teacher import CachedTeacher, make_teacher


def parse():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", action="append", default=[], help="dataset root (repeatable)")
    ap.add_argument("--finetune-data", action="append", default=[],
                    help="dataset roots for the finetune stage (default: same as --data)")
    ap.add_argument("--exclude", default="", help="comma list of sequence names never trained on")
    ap.add_argument("--val-data", default=None, help="dataset root for validation (default: first --data)")
    ap.add_argument("--val-seqs", default="", help="comma list of validation sequences (held out)")
    ap.add_argument("--val-every", type=float, default=0, help="validate every N seconds (0: at stage ends)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--init", default=None, help="initialise weights from this checkpoint")
    ap.add_argument("--init-features-only", action="store_true", help="with --init: keep the flow-head parameters")
    ap.add_argument("--stages", default="pretrain,finetune")
    ap.add_argument("--synth-epochs", type=int, default=1)
    ap.add_argument("--pretrain-epochs", type=int, default=100)
    ap.add_argument("--finetune-epochs", type=int, default=200)
    ap.add_argument("--synth-lr", type=float, default=0.002)
    ap.add_argument("--pretrain-lr", type=float, default=0.002)
    ap.add_argument("--finetune-lr", type=float, default=0.00025)
    ap.add_argument("--distances", default="6", help="frame distances for pretrain pairs, e.g. 2,4,6")
    ap.add_argument("--task-step", type=int, default=4)
    ap.add_argument("--fast-frac", type=float, default=0.0,
                    help="pretrain: fraction of pairs drawn from the pairs whose vessels move most (GT flow needed)")
    ap.add_argument("--fast-top", type=float, default=0.2, help="with --fast-frac: size of that pool (fraction)")
    ap.add_argument("--synth-prob", type=float, default=0.0, help="fraction of synthetic-motion pairs mixed in")
    ap.add_argument("--max-shift", type=float, default=40.0, help="synthetic motion: max translation (px)")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--teacher", default="dis:fast", help="dis:fast | dis:medium | onnx:/path.onnx | none")
    ap.add_argument("--no-kd", action="store_true")
    ap.add_argument("--kd-weight", type=float, default=0.5)
    ap.add_argument("--hard-weight", type=float, default=1.0)
    ap.add_argument("--flow-weight", type=float, default=0.0, help="GT-flow L1 supervision where .flo exist")
    ap.add_argument("--smooth-weight", type=float, default=0.0)
    ap.add_argument("--photo-weight", type=float, default=0.0,
                    help="self-supervised photometric loss on every pair (real frames included)")
    ap.add_argument("--photo-blur", type=float, default=1.0,
                    help="photometric loss: Gaussian sigma (px) applied before comparing, against speckle noise")
    ap.add_argument("--aug", type=float, default=0.0, help="ultrasound augmentation strength (0 = off)")
    ap.add_argument("--budget", type=float, default=0, help="wall-clock seconds for all stages (0 = epochs only)")
    ap.add_argument("--budget-split", default="", help="fractions of the budget per stage, e.g. 0.4,0.6")
    ap.add_argument("--stage-steps", default="", help="max optimizer steps per stage, e.g. 300,200 (0 = no limit); "
                    "use for step-matched ablations on a busy machine")
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--config", default="{}", help="JSON overrides of the PDDNet config")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--workers", type=int, default=0, help="DataLoader worker processes")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cache", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "runs", "teacher_cache"))
    ap.add_argument("--log-every", type=int, default=20)
    ap.add_argument("--ckpt-every", type=float, default=120, help="seconds between checkpoints")
    return ap.parse_args()


class PairDataset(torch.utils.data.Dataset):
    """Samples of one epoch (indices into a PairSampler), teacher flows attached."""

    def __init__(self, sampler, order, teacher):
        self.sampler, self.order, self.teacher = sampler, order, teacher

    def __len__(self):
        return len(self.order)

    def __getitem__(self, k):
        s = self.sampler.get(self.order[k])
        s["tflow"] = None
        if self.teacher is not None and s["key"] is not None and s["mref"] is not None:
            size = s["ref"].shape[0]
            s["tflow"] = self.teacher.get(s["key"], s["raw"][0], s["raw"][1], size)
        del s["raw"]
        return s


def _worker_init(wid):
    info = torch.utils.data.get_worker_info()
    info.dataset.sampler.rng = np.random.RandomState((torch.initial_seed() + wid) % 2 ** 32)
    import cv2
    cv2.setNumThreads(1)


def batch_tensors(samples, size, dev):
    ref = torch.from_numpy(np.stack([s["ref"] for s in samples]))[:, None]
    cur = torch.from_numpy(np.stack([s["cur"] for s in samples]))[:, None]
    z = np.zeros((size, size), np.int64)
    mref = torch.from_numpy(np.stack([s["mref"] if s["mref"] is not None else z for s in samples]))
    mcur = torch.from_numpy(np.stack([s["mcur"] if s["mcur"] is not None else z for s in samples]))
    has_ref = torch.tensor([s["mref"] is not None for s in samples], dtype=torch.float32)
    has_hard = torch.tensor([s["mref"] is not None and s["mcur"] is not None for s in samples], dtype=torch.float32)
    zf = np.zeros((size, size, 2), np.float32)
    gt = torch.from_numpy(np.stack([s["flow"] if s["flow"] is not None else zf for s in samples])).permute(0, 3, 1, 2)
    has_gt = torch.tensor([s["flow"] is not None for s in samples], dtype=torch.float32)
    tfl = torch.from_numpy(np.stack([s["tflow"] if s["tflow"] is not None else zf for s in samples])).permute(0, 3, 1, 2)
    has_t = torch.tensor([s["tflow"] is not None for s in samples], dtype=torch.float32)
    return [t.to(dev, non_blocking=True) for t in (ref, cur, mref, mcur, has_ref, has_hard, gt, has_gt, tfl, has_t)]


def gaussian_blur(x, sigma):
    if sigma <= 0:
        return x
    r = max(1, int(round(2.5 * sigma)))
    t = torch.arange(-r, r + 1, dtype=x.dtype, device=x.device)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    k = k / k.sum()
    x = F.conv2d(F.pad(x, (r, r, 0, 0), mode="replicate"), k.view(1, 1, 1, -1))
    return F.conv2d(F.pad(x, (0, 0, r, r), mode="replicate"), k.view(1, 1, -1, 1))


def local_normalise(x, window=9, eps=1e-3):
    """Zero mean, unit contrast in a sliding window: the augmentations change gain and gamma per frame."""
    pad = window // 2
    mean = F.avg_pool2d(x, window, 1, pad, count_include_pad=False)
    var = F.avg_pool2d((x - mean) ** 2, window, 1, pad, count_include_pad=False)
    return (x - mean) / torch.sqrt(var + eps)


def photometric_loss(ref, cur, flow, sigma):
    """Charbonnier distance of the current frame to the reference warped by the flow, per pair.
    Pixels whose source p + flow(p) falls outside the reference carry no information and are skipped."""
    _, _, H, W = cur.shape
    warped = local_normalise(gaussian_blur(warp(ref, flow), sigma))
    target = local_normalise(gaussian_blur(cur, sigma))
    ys = torch.arange(H, dtype=flow.dtype, device=flow.device).view(1, H, 1)
    xs = torch.arange(W, dtype=flow.dtype, device=flow.device).view(1, 1, W)
    px, py = xs + flow[:, 0], ys + flow[:, 1]
    inside = ((px >= 0) & (px <= W - 1) & (py >= 0) & (py <= H - 1)).float()[:, None]
    dist = torch.sqrt((warped - target) ** 2 + 1e-6)
    return (dist * inside).sum((1, 2, 3)) / inside.sum((1, 2, 3)).clamp(min=1.0)


def losses(net, batch, a, n_cls=3):
    ref, cur, mref, mcur, has_ref, has_hard, gt, has_gt, tfl, has_t = batch
    flow = net(ref, cur)
    out = {}
    total = flow.new_zeros(())
    oh_ref = one_hot(mref, n_cls)
    warped = warp(oh_ref, flow)
    if has_hard.sum() > 0 and a.hard_weight > 0:
        per = ((warped - one_hot(mcur, n_cls)) ** 2).mean((1, 2, 3))
        l = (per * has_hard).sum() / has_hard.sum()
        out["hard"] = l.item()
        total = total + a.hard_weight * l
    if not a.no_kd and has_t.sum() > 0 and a.kd_weight > 0:
        with torch.no_grad():
            tw = warp(oh_ref, tfl)
        per = ((warped - tw) ** 2).mean((1, 2, 3))
        l = (per * has_t).sum() / has_t.sum()
        out["soft"] = l.item()
        total = total + a.kd_weight * l
    if a.flow_weight > 0 and has_gt.sum() > 0:
        per = (flow - gt).abs().mean((1, 2, 3))
        l = (per * has_gt).sum() / has_gt.sum()
        out["flow"] = l.item()
        total = total + a.flow_weight * l
    if a.smooth_weight > 0:
        s = net.cfg["stride"]
        lr = F.avg_pool2d(flow, s) / s
        l = ((lr[:, :, 1:] - lr[:, :, :-1]) ** 2).mean() + ((lr[:, :, :, 1:] - lr[:, :, :, :-1]) ** 2).mean()
        out["smooth"] = l.item()
        total = total + a.smooth_weight * l
    if a.photo_weight > 0:
        l = photometric_loss(ref, cur, flow, a.photo_blur).mean()
        out["photo"] = l.item()
        total = total + a.photo_weight * l
    out["total"] = total.item()
    return total, out


def validate(net, a, tag=""):
    if not a.val_seqs:
        return None
    from .evaluate import TorchFlow, evaluate, fmt
    net.eval()
    root = a.val_data or a.data[0]
    r = evaluate(root, a.val_seqs.split(","), TorchFlow(net, a.size))
    net.train()
    print(f"[val {tag}] {root} {a.val_seqs}\n{fmt(r)}", flush=True)
    return {m: {"overall_dice": v["overall_dice"], **{k: v[k] for k in v if k not in ("overall_dice", "per_sequence")}}
            for m, v in r.items()}


def save(path, net, opt, state, a):
    tmp = path + ".tmp"
    torch.save(dict(model=net.state_dict(), opt=opt.state_dict(), state=state, config=net.cfg,
                    training=training_record(a, state)), tmp)
    os.replace(tmp, path)


def training_record(a, state):
    return dict(recipe="pddflow KD (Nicke et al.)", stages=a.stages, data=a.data, finetune_data=a.finetune_data,
                exclude=a.exclude, val_seqs=a.val_seqs, teacher=None if a.no_kd else a.teacher,
                kd_weight=0.0 if a.no_kd else a.kd_weight, hard_weight=a.hard_weight, flow_weight=a.flow_weight,
                smooth_weight=a.smooth_weight, photo_weight=a.photo_weight, photo_blur=a.photo_blur, aug=a.aug, distances=a.distances, task_step=a.task_step,
                fast_frac=a.fast_frac, fast_top=a.fast_top,
                synth_prob=a.synth_prob, batch=a.batch, lrs=dict(synth=a.synth_lr, pretrain=a.pretrain_lr,
                                                                 finetune=a.finetune_lr),
                epochs=dict(synth=a.synth_epochs, pretrain=a.pretrain_epochs, finetune=a.finetune_epochs),
                budget_s=a.budget, stage_steps=a.stage_steps, init=a.init, init_features_only=a.init_features_only,
                seed=a.seed, steps_done=state.get("step"), time_s=state.get("elapsed"))


def build_net(a, dev):
    """The student of this run: DEFAULT_CONFIG at --size, with --config's overrides."""
    cfg = dict(DEFAULT_CONFIG)
    cfg["input_size"] = a.size
    cfg.update(json.loads(a.config))
    return PDDNet(**cfg).to(dev)


def make_optimizer(net, lr):
    """Adam over two groups; the three flow-head scalars (temperature, mean-field weight, final
    sharpness) learn 10x faster. The groups list the parameters in the order a checkpoint's
    optimizer state follows (tests/test_pddnet.py)."""
    head = [p for n, p in net.named_parameters() if n in HEAD_SCALARS]
    rest = [p for n, p in net.named_parameters() if n not in HEAD_SCALARS]
    return torch.optim.Adam([dict(params=rest, lr_mult=1.0), dict(params=head, lr_mult=10.0)], lr=lr)


def init_from(net, a, dev):
    """--init: the weights of another checkpoint, as far as this architecture has them."""
    ck = torch.load(a.init, map_location=dev, weights_only=False)
    # an older checkpoint without the final-sharpness parameter starts at gamma = sigmoid(3) = 0.95
    sd = upgrade_state_dict(ck["model"], gamma_raw=3.0)
    # the label displacements ("disp") follow from this run's config (G, spacing), never from --init
    sd = {k: v for k, v in sd.items()
          if k != "head.disp" and not (a.init_features_only and k in HEAD_SCALARS)}
    # a checkpoint with the refinement level can start a model without it (its coarse part)
    dropped = []
    if not net.cfg["refine"]:
        dropped = sorted({k.split(".")[0] for k in sd if k.startswith(("fine.", "refinement."))})
        sd = {k: v for k, v in sd.items() if not k.startswith(("fine.", "refinement."))}
    # not strict: a checkpoint without the refinement level initialises the coarse part only
    missing, unexpected = net.load_state_dict(sd, strict=False)
    if unexpected:
        raise SystemExit(f"--init {a.init}: parameters this architecture lacks: {unexpected}")
    if dropped:
        print(f"--init: {', '.join(dropped)} left out (this model has no refinement level)")
    print("initialised from", a.init, "(feature CNN only)" if a.init_features_only else "",
          f"(new: {', '.join(sorted({k.split('.')[0] for k in missing if k != 'head.disp'}))})"
          if set(missing) - {"head.disp"} else "", flush=True)


def stage_sampler(a, st, state, seqs, ft_seqs):
    """The pairs of stage `st`: synthetic motion, random pairs (pretrain) or task-shaped pairs
    (finetune, on --finetune-data when given)."""
    mode = {"synth": "synth", "pretrain": "random", "finetune": "task"}[st]
    return PairSampler(ft_seqs if st == "finetune" else seqs, mode=mode,
                       distances=[int(d) for d in a.distances.split(",")], task_step=a.task_step,
                       synth_prob=a.synth_prob if st != "synth" else 1.0, aug=a.aug,
                       seed=a.seed * 1000 + state["stage"] * 100 + state["epoch"], max_shift=a.max_shift,
                       fast_frac=a.fast_frac, fast_top=a.fast_top)


def train_stage(net, opt, teacher, sampler, a, dev, st, epochs, stage_budget, stage_steps, state, clock, last):
    """Optimizer steps of one stage from where `state` stands, until its epochs, its budget
    (seconds) or its step count run out; checkpoints to `last` and validates on the way.
    `clock` holds the run's start and the last checkpoint and validation times."""
    stage_t0 = time.time() - state["stage_elapsed"]
    done = False
    run = {}
    while state["epoch"] < epochs and not done:
        order = sampler.epoch()
        ds = PairDataset(sampler, order[state["pos"]:], teacher)
        dl = torch.utils.data.DataLoader(ds, batch_size=a.batch, shuffle=False, num_workers=a.workers,
                                         collate_fn=list, worker_init_fn=_worker_init if a.workers else None,
                                         persistent_workers=False, prefetch_factor=4 if a.workers else None,
                                         drop_last=False)
        for samples in dl:
            batch = batch_tensors(samples, a.size, dev)
            loss, parts = losses(net, batch, a)
            opt.zero_grad()
            loss.backward()
            opt.step()
            state["pos"] += len(samples)
            state["step"] += 1
            for k, v in parts.items():
                run[k] = 0.9 * run.get(k, v) + 0.1 * v
            now = time.time()
            state["elapsed"] = now - clock["start"]
            state["stage_elapsed"] = now - stage_t0
            if state["step"] % a.log_every == 0:
                print(f"[{st} ep {state['epoch']} step {state['step']} {state['elapsed']:.0f}s] " +
                      " ".join(f"{k} {v:.5f}" for k, v in run.items()), flush=True)
            if now - clock["checkpoint"] > a.ckpt_every:
                save(last, net, opt, state, a)
                clock["checkpoint"] = now
            if a.val_every and now - clock["validation"] > a.val_every:
                state["val"][f"{st}-step{state['step']}"] = validate(net, a, f"{st} step {state['step']}")
                clock["validation"] = time.time()
            state["stage_step"] += 1
            if state["stage_elapsed"] > stage_budget or state["stage_step"] >= stage_steps:
                done = True
                break
        if not done:
            state["epoch"] += 1
            state["pos"] = 0


def main():
    a = parse()
    torch.set_num_threads(a.threads)
    import cv2
    cv2.setNumThreads(a.threads)
    torch.manual_seed(a.seed)
    os.makedirs(a.out, exist_ok=True)
    dev = torch.device(a.device)
    excl = set(x for x in a.exclude.split(",") if x)
    seqs = [s for root in a.data for s in load_sequences(root, size=a.size, exclude=excl)]
    ft_seqs = [s for root in a.finetune_data for s in load_sequences(root, size=a.size, exclude=excl)] or seqs
    print(f"train sequences: {len(seqs)} ({sum(len(s) for s in seqs)} frames); finetune: {len(ft_seqs)}", flush=True)
    net = build_net(a, dev)
    teacher = None
    if not a.no_kd and a.teacher != "none":
        teacher = CachedTeacher(make_teacher(a.teacher), a.cache)
    stages = [s for s in a.stages.split(",") if s]
    split = [float(x) for x in a.budget_split.split(",")] if a.budget_split else [1.0 / len(stages)] * len(stages)
    steps_lim = [int(x) for x in a.stage_steps.split(",")] if a.stage_steps else []
    state = dict(stage=0, epoch=0, pos=0, step=0, elapsed=0.0, stage_elapsed=0.0, val={})
    last = os.path.join(a.out, "last.pt")
    opt = make_optimizer(net, a.pretrain_lr)
    if a.resume and os.path.exists(last):
        ck = torch.load(last, map_location=dev, weights_only=False)
        net.load_state_dict(upgrade_state_dict(ck["model"]))
        opt.load_state_dict(ck["opt"])
        state = ck["state"]
        print(f"resumed from {last}: stage {state['stage']} epoch {state['epoch']} step {state['step']}", flush=True)
    elif a.init:
        init_from(net, a, dev)
    net.train()
    clock = dict(start=time.time() - state["elapsed"], checkpoint=time.time(), validation=time.time())
    while state["stage"] < len(stages):
        st = stages[state["stage"]]
        lr = dict(synth=a.synth_lr, pretrain=a.pretrain_lr, finetune=a.finetune_lr)[st]
        epochs = dict(synth=a.synth_epochs, pretrain=a.pretrain_epochs, finetune=a.finetune_epochs)[st]
        for g in opt.param_groups:
            g["lr"] = lr * g.get("lr_mult", 1.0)
        sampler = stage_sampler(a, st, state, seqs, ft_seqs)
        stage_budget = a.budget * split[state["stage"]] if a.budget else float("inf")
        stage_steps = steps_lim[state["stage"]] if state["stage"] < len(steps_lim) and steps_lim[state["stage"]] else 10 ** 12
        state.setdefault("stage_step", 0)
        print(f"== stage {st}: {len(sampler)} pairs/epoch, lr {lr}, epochs {epochs}, budget "
              f"{stage_budget:.0f} s", flush=True)
        train_stage(net, opt, teacher, sampler, a, dev, st, epochs, stage_budget, stage_steps, state, clock, last)
        print(f"== stage {st} done: epoch {state['epoch']} step {state['step']} {state['elapsed']:.0f}s", flush=True)
        state["val"][st] = validate(net, a, st)
        state.update(stage=state["stage"] + 1, epoch=0, pos=0, stage_elapsed=0.0, stage_step=0)
        save(last, net, opt, state, a)
        torch.save(dict(model=net.state_dict(), config=net.cfg, training=training_record(a, state),
                        scores=state["val"]), os.path.join(a.out, f"stage_{st}.pt"))
    torch.save(dict(model=net.state_dict(), config=net.cfg, training=training_record(a, state),
                    scores=state["val"]), os.path.join(a.out, "final.pt"))
    print("final checkpoint:", os.path.join(a.out, "final.pt"), flush=True)
    json.dump(state["val"], open(os.path.join(a.out, "val.json"), "w"), indent=1)


if __name__ == "__main__":
    main()
