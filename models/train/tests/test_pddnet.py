"""The model's structure: checkpoints written before the PDD-Net core, the refinement and the
Lucas-Kanade levels were separate modules (flat parameter names, log_* logits) load unchanged, and
the parameter order, which a checkpoint's optimizer state follows, is the one they had."""
import os

import pytest

torch = pytest.importorskip("torch", reason="torch is not installed: model structure not checked")

from pddflow_train.pddnet import HEAD_SCALARS, PDDNet, upgrade_state_dict  # noqa: E402

DEFAULT_CHECKPOINT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "default", "pddnet.pt")

# named_parameters() of PDDNet(refine=1) before the split
LEGACY_ORDER = [
    "offsets_raw", "log_alpha", "log_mf", "log_gamma", "conv0.weight", "bn0.weight", "bn0.bias",
    "conv1.weight", "bn1.weight", "bn1.bias", "conv2.weight", "bn2.weight", "bn2.bias", "conv3.weight",
    "conv3.bias", "fconv0.weight", "fbn0.weight", "fbn0.bias", "fconv1.weight", "fconv1.bias",
    "rconv0.weight", "rconv0.bias", "rconv1.weight", "rconv1.bias", "rconv2.weight", "rconv2.bias"]
LEGACY_HEAD = ("log_alpha", "log_mf", "log_gamma")


def renamed(key):
    return next(iter(upgrade_state_dict({key: torch.zeros(())})))


def test_shipped_checkpoint_loads_strictly():
    ck = torch.load(DEFAULT_CHECKPOINT, map_location="cpu", weights_only=False)
    net = PDDNet(**ck["config"])
    net.load_state_dict(upgrade_state_dict(ck["model"]))  # strict: every name known, none missing
    assert "log_alpha" in ck["model"]  # the shipped checkpoint has the legacy names
    assert net.head.alpha_logit.item() == ck["model"]["log_alpha"].item()


def test_optimizer_groups_keep_the_legacy_parameter_order():
    """train.py's two groups (the rest, the head scalars at 10x) list the parameters in the same
    order as before, so that resuming an older last.pt gives each its own Adam state."""
    names = [n for n, _ in PDDNet(refine=1, lk_iters=1).named_parameters()]
    assert [n for n in names if n not in HEAD_SCALARS] == \
        [renamed(k) for k in LEGACY_ORDER if k not in LEGACY_HEAD]
    assert [n for n in names if n in HEAD_SCALARS] == [renamed(k) for k in LEGACY_HEAD]


def test_upgrade_keeps_current_names():
    sd = PDDNet(refine=1).state_dict()
    assert list(upgrade_state_dict(sd)) == list(sd)


def test_checkpoint_without_gamma_gets_gamma_one():
    sd = {k: v for k, v in PDDNet().state_dict().items() if k != "head.gamma_logit"}
    assert float(torch.sigmoid(upgrade_state_dict(sd)["head.gamma_logit"])) > 0.999999
