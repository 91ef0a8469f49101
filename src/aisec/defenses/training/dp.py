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
bias afterwards: :mod:`aisec.defenses.training.dp_center`) to 0.831 / 0.914 / 0.943 (docs/privacy.md).
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
import math
import time
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import nn

from aisec.attacks.base import check_config
from aisec.attacks.privacy.dp_audit import DP_GUARANTEE_ATTR
from aisec.data.dataset import Dataset
from aisec.defenses.base import Defended, Defense, ProgressFn, register_defense
from aisec.defenses.training import dp_center, dp_opacus, dp_public
from aisec.defenses.training import dp_functional as fx
from aisec.errors import ConfigError, InputValidationError

log = logging.getLogger(__name__)

LR_FROM_SCRATCH = 0.02
LR_PRETRAINED = 0.005


@dataclass(frozen=True, kw_only=True, slots=True)
class DPSGDConfig:
    """Parameters of :func:`dp_sgd`.

    Attributes
    ----------
    epsilon, delta:
        The privacy budget to spend; the noise multiplier is chosen by Opacus so that the
        accountant's epsilon after ``epochs`` is at most ``epsilon``.
    accountant:
        ``"prv"`` (privacy random variables, Gopi et al. 2021, arXiv:2106.02848: Opacus reports its
        upper bound; tighter than RDP, so less noise for the same epsilon) or ``"rdp"`` (Renyi DP,
        Mironov 2017, Opacus's default).
    epochs, batch_size:
        Passes over the training split and the *expected* batch size (Poisson sampling with rate
        ``batch_size / n``).
    max_grad_norm:
        Per-example clip norm.
    optimizer, lr, momentum:
        ``"adam"`` (lr) or ``"sgd"`` (lr, momentum) on the noisy gradient. ``lr=None`` takes 0.02 from a random
        start and 0.005 from pretrained weights (``public`` or ``reinit=False``), which a large step would undo.
    lr_schedule:
        ``"cosine"`` decays the learning rate to 0 over training; ``"constant"`` keeps it.
    ema:
        Decay of the exponential moving average of the weights that is returned (0 returns the last
        iterate). Post-processing: free in privacy.
    freeze:
        ``"widest-hidden"`` keeps the interior layer with the most weights (not the first nor the last
        layer that has parameters; models with fewer than three such layers freeze nothing) at its
        (re-)initialised weights, a fixed random-feature map, and trains the rest: the noise then falls
        on fewer dimensions. ``"none"`` trains every parameter. The architecture is unchanged.
    activation:
        ``None`` keeps the model; ``"tanh"`` replaces each ``nn.ReLU`` by ``nn.Tanh`` (an
        architecture change).
    reinit:
        Re-initialise every layer (``reset_parameters``) before training, so the guarantee covers
        the whole model. ``False`` fine-tunes the given weights privately: only right when they
        were learned from public data, never from the data being protected.
    public, public_epochs:
        A public set (a name in :data:`aisec.defenses.training.dp_public.PUBLIC_SETS`: ``"font_digits"``, digits
        rendered from bundled fonts) to pretrain the (re-initialised) model on, without DP and for
        ``public_epochs`` epochs, before DP-SGD fine-tunes it on the private data
        (:mod:`aisec.defenses.training.dp_public`). It costs no privacy: the pretrained weights depend on the
        public data and the seed alone. It must have the private data's input shape and classes.
        :func:`dp_sgd` also takes a :class:`~aisec.data.Dataset` as ``public``.
    grad_sample_mode:
        (``engine="opacus"``) ``"ghost"`` (ghost clipping, fast) or ``"hooks"`` (per-example gradients, any
        module Opacus supports).
    engine:
        ``"opacus"`` trains through Opacus's ``PrivacyEngine``; ``"aisec"`` computes per-example gradients with
        ``torch.func`` (:mod:`aisec.defenses.training.dp_functional`), Poisson-samples batches, takes its noise
        multiplier from Opacus's ``get_noise_multiplier`` and charges every step to an Opacus accountant: the
        same guarantee, and it allows augmentation multiplicity.
    augment_k, augment_shift, augment_rotate:
        (``engine="aisec"``, image inputs (N, C, H, W)) average each example's gradient over ``augment_k``
        copies, the image and ``augment_k - 1`` random ones (sub-pixel shifts of up to ``augment_shift``
        pixels, rotations of up to ``augment_rotate`` degrees, no flips), before clipping (De et al. 2022,
        Sec. 3.1): one clipped contribution per example, so the privacy cost is unchanged.
    center, center_noise:
        ``"dp-mean"`` trains on the inputs minus a differentially private mean (the rows clipped to the norm the
        data's declared value range allows, Gaussian noise of multiplier ``center_noise`` on their sum; the
        accountant composes it with the DP-SGD steps) and folds the centring into the first layer's bias
        afterwards (:mod:`aisec.defenses.training.dp_center`). It applies when the data declares a value range
        (``Dataset.clip``) and the first layer is an ``nn.Linear`` with a bias; otherwise nothing is centred
        and ``info["center"]`` says why. ``"none"`` never centres. From learned weights (``reinit=False`` or
        ``public``) the mean is first folded out of the first layer's bias (``b + W m``), so training on ``x - m``
        starts from what those weights compute on ``x``.
    seed:
        (:func:`dp_sgd`; :meth:`DPSGD.apply` takes its ``seed`` argument instead) Seeds initial weights of swapped layers, batch sampling and noise (Opacus draws from torch's global generator).
    """

    epsilon: float = 3.0
    delta: float = 1e-5
    accountant: Literal["rdp", "prv"] = "prv"
    epochs: int = 30
    batch_size: int = 128
    max_grad_norm: float = 1.0
    optimizer: Literal["adam", "sgd"] = "adam"
    lr: float | None = None
    momentum: float = 0.9
    lr_schedule: Literal["cosine", "constant"] = "constant"
    ema: float = 0.0
    freeze: Literal["none", "widest-hidden"] = "widest-hidden"
    activation: Literal["tanh"] | None = None
    reinit: bool = True
    public: str | None = None
    public_epochs: int = 10
    grad_sample_mode: Literal["ghost", "hooks"] = "ghost"
    engine: Literal["opacus", "aisec"] = "opacus"
    augment_k: int = 1
    augment_shift: float = 0.5
    augment_rotate: float = 5.0
    center: Literal["dp-mean", "none"] = "dp-mean"
    center_noise: float = 10.0
    seed: int = 0

    def __post_init__(self) -> None:
        name = "dp-sgd"
        check_config(self, name, positive=("epsilon", "max_grad_norm"), integer=("epochs", "batch_size", "seed"))
        if self.lr is not None:
            check_config(self, name, positive=("lr",))
        check_config(self, name, integer=("public_epochs",), positive=("public_epochs",))
        if self.public is not None and self.public not in dp_public.PUBLIC_SETS:
            shown = ", ".join(dp_public.PUBLIC_SETS)
            raise ConfigError(f"{name}.public: {self.public!r} is not a public set; allowed: {shown} or null")
        check_config(self, name, positive=("epochs", "batch_size"), unit=("delta", "momentum"))
        check_config(self, name, non_negative=("ema", "augment_rotate", "augment_shift"), integer=("augment_k",))
        check_config(self, name, positive=("augment_k", "center_noise"))
        if self.augment_k > 1 and self.engine != "aisec":
            raise ConfigError(f"{name}.augment_k: augmentation multiplicity needs engine='aisec'")
        if not 0.0 < self.delta < 1.0:
            raise ConfigError(f"{name}.delta: expected a number in (0, 1), got {self.delta!r}")
        if not self.ema < 1.0:
            raise ConfigError(f"{name}.ema: expected a number in [0, 1), got {self.ema!r}")
        for field, allowed in (
            ("accountant", ("rdp", "prv")),
            ("optimizer", ("adam", "sgd")),
            ("lr_schedule", ("cosine", "constant")),
            ("activation", (None, "tanh")),
            ("freeze", ("none", "widest-hidden")),
            ("grad_sample_mode", ("ghost", "hooks")),
            ("engine", ("opacus", "aisec")),
            ("center", ("dp-mean", "none")),
        ):
            if getattr(self, field) not in allowed:
                shown = ", ".join(str(a) for a in allowed)
                raise ConfigError(f"{name}.{field}: {getattr(self, field)!r} is not allowed; allowed: {shown}")


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
    ``public`` (or ``config.public``, by name) is pretrained on without DP first: public data costs no privacy.
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
    public = public if public is not None else dp_public.load_public(cfg.public) if cfg.public else None
    if public is not None:
        dp_public.check_fits(public, data)
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
    pretrained: dict[str, Any] | None = None
    if public is not None:
        secs, hit = dp_public.pretrain(net, public, epochs=cfg.public_epochs, seed=cfg.seed)
        pretrained = {"data": public.name, "epochs": cfg.public_epochs, "seconds": round(secs, 3), "cache_hit": hit}
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
    offset, layer, prior, center = _center(net, x, data.clip, cfg)
    if offset is not None:
        x = x - offset
        if learned and layer is not None:  # keep the learned weights' function: b <- b + W m
            dp_center.fold(net.get_submodule(layer), -offset)
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
            trained, spent, sigma, step = _train_aisec(net, opt, x, y, cfg, progress, prior)
        else:
            trained, spent, sigma, step = dp_opacus.train(net, opt, x, y, cfg, progress, prior)
    finally:
        torch.set_num_threads(threads)
    seconds = time.perf_counter() - start
    clean.load_state_dict(trained.state_dict())
    if offset is not None and layer is not None:  # the same architecture as the net it was found in
        dp_center.fold(clean.get_submodule(layer), offset)
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
    log.info("dp-sgd: epsilon %.3f (target %.3f, delta %g), sigma %.3f, %d steps in %.1f s",
             spent, cfg.epsilon, cfg.delta, sigma, step, seconds)  # fmt: skip
    return DPResult(out, spent, cfg.delta, sigma, step, seconds, info)


def _center(
    net: nn.Module, x: torch.Tensor, clip: tuple[float, float] | None, cfg: DPSGDConfig
) -> tuple[torch.Tensor | None, str | None, list[fx.Mechanism], str]:
    """The DP mean to subtract (or ``None``), the layer to fold it into, the mechanism it adds to the accountant's
    history, and what was done."""
    if cfg.center == "none":
        return None, None, [], "none"
    if clip is None:
        return None, None, [], "none: the data declares no value range to bound a row's norm"
    layer = dp_center.first_linear(net, x.shape[1:])
    if layer is None:
        return None, None, [], "none: the first layer is not an nn.Linear with a bias to fold the mean into"
    bound = dp_center.row_bound(clip, x[0].numel())
    offset = dp_center.dp_mean(x, bound, cfg.center_noise, torch.Generator().manual_seed(cfg.seed + 7919))
    done = f"dp-mean (row norm bound {bound:g}, noise {cfg.center_noise:g})"
    return offset, layer, [(cfg.center_noise, 1.0, 1)], done


def _train_aisec(
    net: nn.Module,
    opt: torch.optim.Optimizer,
    x: torch.Tensor,
    y: torch.Tensor,
    cfg: DPSGDConfig,
    progress: ProgressFn | None,
    prior: list[fx.Mechanism],
) -> tuple[nn.Module, float, float, int]:
    """The functional engine (torch.func per-example gradients, Opacus's noise multiplier and accountant)."""
    n = len(y)
    rate = min(cfg.batch_size, n) / n
    steps = max(1, round(cfg.epochs / rate))
    try:
        sigma = fx.noise_for(cfg.epsilon, cfg.delta, rate, steps, cfg.accountant, prior)
    except ValueError as exc:
        raise ConfigError(
            f"dp-sgd.epsilon: {cfg.epsilon:g} cannot be reached with {steps} steps at sample rate {rate:.3g} on "
            f"{n} points ({exc}); raise epsilon or lower epochs or batch_size"
        ) from None
    augment = None
    if cfg.augment_k > 1:
        if x.dim() != 4:
            raise InputValidationError(
                "data", "images (N, C, H, W) for augment_k > 1", f"inputs of shape {tuple(x.shape)}"
            )
        k, shift, rot = cfg.augment_k, cfg.augment_shift, cfg.augment_rotate
        augment = lambda xb, g: fx.augment_images(xb, k, shift=shift, rotate_deg=rot, gen=g)  # noqa: E731
    per_epoch = max(1, steps // cfg.epochs)

    base = cfg.lr
    assert base is not None  # dp_sgd resolves it before either engine runs

    def lr_at(step: int) -> float:
        if cfg.lr_schedule == "cosine":
            return base * 0.5 * (1.0 + math.cos(math.pi * step / steps))
        return base

    def on_step(step: int) -> None:
        if progress is not None and (step % per_epoch == 0 or step == steps):
            progress(min(cfg.epochs, math.ceil(step / per_epoch)), cfg.epochs)

    run = fx.train(
        net, x, y, noise_multiplier=sigma, sample_rate=rate, steps=steps, max_norm=cfg.max_grad_norm,
        delta=cfg.delta, accountant=cfg.accountant, optimizer=opt, lr_at=lr_at, ema=cfg.ema, augment=augment,
        gen=torch.Generator().manual_seed(cfg.seed), on_step=on_step, prior=prior,
    )  # fmt: skip
    return net, run.epsilon, run.noise_multiplier, run.steps


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
