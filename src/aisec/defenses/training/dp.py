"""DP-SGD through Opacus: train a copy of the user's model to a target (epsilon, delta).

DP-SGD (Abadi et al. 2016, Deep Learning with Differential Privacy, arXiv:1607.00133) clips every
example's gradient to ``max_grad_norm`` and adds Gaussian noise of ``noise_multiplier *
max_grad_norm`` to the sum of a Poisson-sampled batch. Opacus (Yousefpour et al. 2021,
arXiv:2109.12298) does the clipping, the noise and the accounting: it chooses the noise multiplier
that spends the target epsilon over the planned steps, and its accountant (PRV, Gopi et al. 2021,
Numerical Composition of Differential Privacy, arXiv:2106.02848, the default: it reports an upper
bound, tighter than RDP's, so the same epsilon buys about 7% less noise; or RDP, Mironov 2017,
arXiv:1702.07476) reports the epsilon actually spent, which is the figure :class:`DPSGD` records.
Per-example gradient norms come from Opacus's ghost clipping (Li et al. 2022, arXiv:2110.05679;
Bu et al. 2022), which never materialises per-example gradients (an order of magnitude faster on an
MLP than per-sample hooks).

aisec's defaults are tuned for accuracy at a given epsilon on small tabular and image sets,
keeping the user's architecture (De et al. 2022, arXiv:2204.13650; Tramer and Boneh 2021,
arXiv:2011.11660): few epochs for the budget (less noise per step), a large Adam learning rate, a
clip norm below typical gradient norms, and fewer noisy dimensions: the noise added to the
gradient has norm ``sigma * C * sqrt(d)`` over the ``d`` trained parameters, so ``freeze=
"widest-hidden"`` keeps the interior layer with the most weights (for an MLP 64-256-256-10, the
256x256 layer: 77% of the weights) at its seeded random initialisation, a fixed random-feature map
chosen without the data, and trains the rest (random features, Rahimi and Recht 2007; training a
subset of parameters under DP, e.g. Yu et al. 2021, arXiv:2110.06500). The returned module has the
user's architecture; only which weights move differs. On the digits benchmark
(898 members, MLP 64-256-256-10, seeds 0-2) this, the PRV accountant and lr 0.02 move the test accuracy
from 0.780 / 0.898 / 0.930 to 0.803 / 0.905 / 0.933 at epsilon 1 / 3 / 8, and ``center="dp-mean"`` (the
inputs centred on a differentially private mean that the accountant charges, folded into the first layer's
bias afterwards: :mod:`aisec.defenses.training.dp_center`) to 0.831 / 0.914 / 0.943 (docs/privacy.md). Features
learned from public data cost nothing, so by default (``public="auto"``) data whose loader declares a domain that a
registered public set serves are first pretrained on that set without DP (:mod:`aisec.defenses.training.dp_public`:
scikit-learn's digits get 60,000 digits rendered from bundled fonts), which moves the digits benchmark to
0.916 / 0.949 / 0.968; other data start from the random initialisation.
``activation="tanh"`` swaps the model's ReLUs for tanh (tempered sigmoids, Papernot et al. 2021,
arXiv:2007.14191): an architecture change, so it is an option, off by default.
``engine="aisec"`` trains without Opacus's hooks (:mod:`aisec.defenses.training.dp_functional`: torch.func
per-example gradients, still Opacus's noise multiplier and accountant), which allows augmentation
multiplicity (``augment_k``, De et al. 2022, Sec. 3.1); on the digits benchmark it matches the Opacus engine's
accuracy (within the seed-to-seed spread) at about 5x its time when every layer trains, 1.2x with the default
``freeze``, so Opacus stays the default.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import time
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from aisec.attacks.privacy.dp_audit import DP_GUARANTEE_ATTR
from aisec.data.dataset import Dataset
from aisec.defenses.base import Defended, Defense, ProgressFn, register_defense
from aisec.defenses.training import dp_center, dp_opacus, dp_public
from aisec.defenses.training import dp_functional as fx
from aisec.defenses.training.dp_config import LR_FROM_SCRATCH, LR_PRETRAINED, DPSGDConfig
from aisec.errors import InputValidationError

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class DPResult:
    """A DP-trained model and what its training spent."""

    model: nn.Module
    epsilon: float
    """The accountant's epsilon after training (at most the target)."""
    delta: float
    noise_multiplier: float
    steps: int
    seconds: float
    info: dict[str, Any]


def _swap_relu(module: nn.Module) -> None:
    for name, child in module.named_children():
        if isinstance(child, nn.ReLU):
            setattr(module, name, nn.Tanh())
        else:
            _swap_relu(child)


def _widest_hidden(net: nn.Module) -> list[str]:
    """Names of the interior module (not the first nor the last that owns parameters) with the most weights."""
    owners = dp_center.param_owners(net)
    if len(owners) < 3:
        return []
    size = lambda m: sum(p.numel() for p in m.parameters(recurse=False))  # noqa: E731
    name, _ = max(owners[1:-1], key=lambda nm: size(nm[1]))
    return [name]


def dp_sgd(
    model: nn.Module,
    data: Dataset,
    config: DPSGDConfig | None = None,
    *,
    public: Dataset | None = None,
    progress: ProgressFn | None = None,
) -> DPResult:
    """Train a copy of ``model`` with DP-SGD on ``data.x_train`` to ``config.epsilon``; ``model`` is unchanged.

    The copy's layers are re-initialised first (``config.reinit``): weights the model learned
    without DP carry no guarantee, so fine-tuning them privately would not protect the data.
    ``public`` (or ``config.public``: a name, or ``"auto"``, the set that serves the data's declared domain) is
    pretrained on without DP first: public data costs no privacy.
    Returns the model in eval mode with frozen parameters; it carries ``dp_guarantee`` (epsilon,
    delta, accountant), which :class:`~aisec.attacks.privacy.dp_audit.DPAudit` reads.
    """
    cfg = config or DPSGDConfig()
    dp_opacus.opacus_module()
    from opacus.validators import ModuleValidator

    if not isinstance(data.x_train, torch.Tensor):
        raise InputValidationError("data", "numeric data (tensors)", f"{data.name} ({data.modality.value})")
    if isinstance(model, torch.jit.ScriptModule):
        raise InputValidationError(
            "model", "a Python nn.Module (Opacus hooks into its layers)", "a TorchScript module; load the model class"
        )
    net = copy.deepcopy(model).cpu()
    torch.manual_seed(cfg.seed)
    if cfg.activation == "tanh":
        _swap_relu(net)
    if cfg.reinit:
        for m in net.modules():
            if callable(getattr(m, "reset_parameters", None)):
                m.reset_parameters()
    net.train()
    errors = ModuleValidator.validate(net, strict=False)
    if errors:
        raise InputValidationError("model", "layers DP-SGD supports (no batch norm)", "; ".join(map(str, errors)))
    for p in net.parameters():
        p.requires_grad_(True)
    chosen = "argument" if public is not None else "auto" if cfg.public == "auto" else "named"
    if public is None and (name := dp_public.resolve(cfg.public, data, reinit=cfg.reinit)):
        public = dp_public.load_public(name)
    pretrained: dict[str, Any] | None = None
    if public is not None:
        dp_public.check_fits(public, data)
        secs, hit = dp_public.pretrain(net, public, epochs=cfg.public_epochs, seed=cfg.seed)
        pretrained = {"data": public.name, "chosen": chosen, "epochs": cfg.public_epochs, "seconds": round(secs, 3),
                      "cache_hit": hit}  # fmt: skip
    learned = not cfg.reinit or public is not None  # the start is learned weights, not a random initialisation
    lr = cfg.lr if cfg.lr is not None else LR_PRETRAINED if learned else LR_FROM_SCRATCH
    cfg = dataclasses.replace(cfg, lr=lr)
    frozen = _widest_hidden(net) if cfg.freeze == "widest-hidden" else []
    for name in frozen:
        for p in net.get_submodule(name).parameters(recurse=False):
            p.requires_grad_(False)  # a fixed random-feature map: no gradient, no noise
    n_trained = sum(p.numel() for p in net.parameters() if p.requires_grad)
    clean = copy.deepcopy(net)  # receives the trained weights: Opacus leaves hooks on the module it wraps
    x, y = data.x_train.float().cpu(), data.y_train.long().cpu()
    n = len(y)
    centring, center = dp_center.plan(net, x, data.clip, cfg.center, cfg.center_noise, cfg.seed)
    prior: list[fx.Mechanism] = []
    if centring is not None:
        prior = [centring.mechanism]
        x = x - centring.offset
        if learned:  # keep the learned weights' function: b <- b + W m
            dp_center.fold(net.get_submodule(centring.layer), -centring.offset)
    batch = min(cfg.batch_size, n)
    params = [p for p in net.parameters() if p.requires_grad]
    if cfg.optimizer == "adam":
        opt: torch.optim.Optimizer = torch.optim.Adam(params, lr=cfg.lr)
    else:
        opt = torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    start = time.perf_counter()
    try:
        if cfg.engine == "aisec":
            trained, spent, sigma, step = fx.run(net, opt, x, y, cfg, progress, prior)
        else:
            trained, spent, sigma, step = dp_opacus.train(net, opt, x, y, cfg, progress, prior)
    finally:
        torch.set_num_threads(threads)
    seconds = time.perf_counter() - start
    clean.load_state_dict(trained.state_dict())
    if centring is not None:  # the same architecture as the net it was found in
        dp_center.fold(clean.get_submodule(centring.layer), centring.offset)
    out = clean
    for p in out.parameters():
        p.requires_grad_(False)
    out = out.to(next(model.parameters()).device).eval()
    guarantee = {"epsilon": spent, "delta": cfg.delta, "accountant": cfg.accountant, "target_epsilon": cfg.epsilon}
    setattr(out, DP_GUARANTEE_ATTR, guarantee)
    info = guarantee | {
        "noise_multiplier": sigma,
        "max_grad_norm": cfg.max_grad_norm,
        "epochs": cfg.epochs,
        "steps": step,
        "expected_batch_size": batch,
        "sample_rate": batch / n,
        "seconds": round(seconds, 3),
        "activation": cfg.activation or "unchanged",
        "frozen": frozen,
        "trained_parameters": n_trained,
        "reinit": cfg.reinit,
        "public": pretrained,
        "lr": cfg.lr,
        "engine": cfg.engine,
        "augment_k": cfg.augment_k,
        "center": center,
    }
    if pretrained is None and cfg.reinit and cfg.public == "auto" and (fits := dp_public.fitting(data)):
        info["hints"] = [  # shape and classes fit, the declared domain does not: the user decides
            f"public pretraining on {fits[0]} fits these data's shape and classes and costs no privacy; if they are "
            f"digits, set public={fits[0]} (on digits at epsilon 3 it raised test accuracy from 0.914 to 0.949; "
            "docs/privacy.md)"
        ]
    log.info("dp-sgd: epsilon %.3f (target %.3f, delta %g), sigma %.3f, %d steps in %.1f s",
             spent, cfg.epsilon, cfg.delta, sigma, step, seconds)  # fmt: skip
    return DPResult(out, spent, cfg.delta, sigma, step, seconds, info)


@register_defense
class DPSGD(Defense):
    """Differentially private training, DP-SGD (Abadi et al. 2016, arXiv:1607.00133) through Opacus,
    to a target (epsilon, delta); reports the accountant's epsilon actually spent."""

    name = "dp-sgd"
    kind = "training"
    paper = (
        "Abadi et al. 2016, Deep Learning with Differential Privacy, arXiv:1607.00133; "
        "De et al. 2022, Unlocking High-Accuracy Differentially Private Image Classification through Scale, "
        "arXiv:2204.13650"
    )
    mitigates = frozenset({"lira", "loss-threshold", "label-only", "dp-audit"})
    adaptive = "white-box"
    Config = DPSGDConfig

    def apply(self, model: nn.Module, data: Dataset, *, seed: int = 0, progress: ProgressFn | None = None) -> Defended:
        cfg = dataclasses.replace(self.config, seed=seed)  # the runner's seed, like every defense
        result = dp_sgd(model, data, cfg, progress=progress)
        return Defended(model=result.model, info=result.info)
