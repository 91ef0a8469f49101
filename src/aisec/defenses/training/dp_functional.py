"""Functional DP-SGD: per-example gradients with ``torch.func``, augmentation multiplicity, Opacus accounting.

Opacus's hooks clip the gradient of each *row* of a batch. Augmentation multiplicity (De et al. 2022,
Unlocking High-Accuracy Differentially Private Image Classification through Scale, arXiv:2204.13650,
Sec. 3.1) needs the gradient of each *example* averaged over ``K`` augmented copies before it is
clipped, so that one example still contributes one clipped vector and the privacy analysis of DP-SGD
(Abadi et al. 2016, arXiv:1607.00133) is unchanged. This module computes those per-example gradients
with ``torch.func`` (``functional_call`` + ``vmap(grad)``) for the parameters that require gradients
(frozen ones get neither gradient nor noise), clips them, adds Gaussian noise whose multiplier Opacus
chooses (``get_noise_multiplier``), samples batches by Poisson sampling (the accountant's assumption)
and charges every step to an Opacus accountant, PRV (Gopi et al. 2021, arXiv:2106.02848) or RDP
(Mironov 2017, arXiv:1702.07476), whose epsilon is the one reported. Sampling, augmentation and noise
draw from one seeded ``torch.Generator`` (not a cryptographic source, as with Opacus's
``secure_mode=False``).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from aisec.defenses.base import ProgressFn
from aisec.errors import ConfigError, InputValidationError

if TYPE_CHECKING:
    from aisec.defenses.training.dp_config import DPSGDConfig

Params = dict[str, torch.Tensor]
#: (noise multiplier, sample rate, steps): one entry of an Opacus accountant's history.
Mechanism = tuple[float, float, int]


def augment_images(x: torch.Tensor, k: int, *, shift: float, rotate_deg: float, gen: torch.Generator) -> torch.Tensor:
    """``k`` copies of each image in ``x`` (N, C, H, W): the image itself, then ``k - 1`` random shifts of up to
    ``shift`` pixels (sub-pixel, bilinear) and rotations of up to ``rotate_deg`` degrees, zero padding, no flips;
    returns (N, k, C, H, W)."""
    n, c, h, w = x.shape
    m = n * k
    rep = x.unsqueeze(1).expand(n, k, c, h, w).reshape(m, c, h, w)
    keep = (torch.arange(m) % k != 0).to(x.dtype)  # copy 0 of every example is the original
    angle = (torch.rand(m, generator=gen) * 2.0 - 1.0) * math.radians(rotate_deg) * keep
    dx = (torch.rand(m, generator=gen) * 2.0 - 1.0) * shift * (2.0 / w) * keep
    dy = (torch.rand(m, generator=gen) * 2.0 - 1.0) * shift * (2.0 / h) * keep
    cos, sin = torch.cos(angle), torch.sin(angle)
    theta = torch.stack([torch.stack([cos, -sin, dx], 1), torch.stack([sin, cos, dy], 1)], 1)
    grid = F.affine_grid(theta.to(x.dtype), [m, c, h, w], align_corners=False)
    out = F.grid_sample(rep, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return out.reshape(n, k, c, h, w)


def per_example_grads(
    model: nn.Module, params: Params, x: torch.Tensor, y: torch.Tensor, *, chunk: int | None = None
) -> Params:
    """Gradient of the cross-entropy of every example: ``x`` is (B, K, ...), ``K`` copies of each of the ``B``
    examples (``K = 1`` without augmentation), ``y`` is (B,); an example's gradient is the mean over its copies.
    Returns one tensor (B, *parameter shape) per parameter name."""
    from torch.func import functional_call, grad, vmap

    def loss(p: Params, xi: torch.Tensor, yi: torch.Tensor) -> torch.Tensor:
        logits = functional_call(model, p, (xi,))
        return F.cross_entropy(logits, yi.expand(len(logits)))

    return vmap(grad(loss), in_dims=(None, 0, 0), chunk_size=chunk, randomness="different")(params, x, y.unsqueeze(1))


def clip_and_sum(grads: Params, max_norm: float) -> tuple[Params, torch.Tensor]:
    """Scale each example's gradient to norm at most ``max_norm`` and sum over examples; returns the sum and
    the per-example norms before clipping."""
    norms = torch.sqrt(sum(g.flatten(1).pow(2).sum(1) for g in grads.values()))
    factor = (max_norm / (norms + 1e-6)).clamp(max=1.0)
    return {k: torch.einsum("b,b...->...", factor, g) for k, g in grads.items()}, norms


@dataclass(frozen=True, slots=True)
class StepStats:
    """The size of a step's Poisson-sampled batch and the median per-example gradient norm before clipping."""

    batch: int
    median_norm: float


def private_gradient(
    model: nn.Module,
    params: Params,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    max_norm: float,
    noise_multiplier: float,
    expected_batch: float,
    gen: torch.Generator,
    augment: Callable[[torch.Tensor], torch.Tensor] | None = None,
    chunk: int = 256,
) -> tuple[Params, StepStats]:
    """One DP-SGD gradient: per-example (augmentation-averaged) gradients clipped to ``max_norm``, summed, plus
    N(0, (noise_multiplier * max_norm)^2) noise, divided by the *expected* batch size (Poisson sampling)."""
    total = {k: torch.zeros_like(p) for k, p in params.items()}
    norms = []
    for start in range(0, len(y), chunk):
        xb, yb = x[start : start + chunk], y[start : start + chunk]
        xb = augment(xb) if augment is not None else xb.unsqueeze(1)
        summed, n = clip_and_sum(per_example_grads(model, params, xb, yb), max_norm)
        for k in total:
            total[k] += summed[k]
        norms.append(n)
    std = noise_multiplier * max_norm
    out = {k: (t + std * torch.randn(t.shape, generator=gen, dtype=t.dtype)) / expected_batch for k, t in total.items()}
    med = float(torch.cat(norms).median()) if norms else 0.0
    return out, StepStats(len(y), med)


@dataclass(frozen=True, slots=True)
class FunctionalRun:
    """What :func:`train` spent: the accountant's epsilon, the noise multiplier and the steps taken."""

    epsilon: float
    noise_multiplier: float
    steps: int
    sample_rate: float
    median_grad_norm: float


def noise_for(
    epsilon: float, delta: float, sample_rate: float, steps: int, accountant: str, prior: Sequence[Mechanism] = ()
) -> float:
    """The noise multiplier for ``steps`` Poisson-sampled steps at ``sample_rate`` to spend at most ``epsilon``: Opacus's
    choice, or with ``prior`` (mechanisms charged before, e.g. a DP input mean) the smallest, to 0.1% by bisection,
    for which the two together spend at most ``epsilon``. ``ValueError`` when none does."""
    if not prior:
        from opacus.accountants.utils import get_noise_multiplier

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # RDP: "optimal order is the largest alpha" (the bound stays valid)
            sigma = get_noise_multiplier(
                target_epsilon=epsilon, target_delta=delta, sample_rate=sample_rate, steps=steps, accountant=accountant
            )
            return float(sigma)

    def spent(sigma: float) -> float:
        try:
            return epsilon_of([*prior, (sigma, sample_rate, steps)], delta, accountant)
        except (ValueError, OverflowError, RuntimeError):  # an accountant out of its range: far too little noise
            return math.inf

    hi = 1.0
    while spent(hi) > epsilon:
        hi *= 2
        if hi > 1e4:
            raise ValueError(f"the mechanisms before DP-SGD alone spend more than epsilon {epsilon:g}")
    lo = hi / 2 if hi > 1.0 else 0.05
    while hi - lo > 1e-3 * hi:
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if spent(mid) > epsilon else (lo, mid)
    return hi


def epsilon_of(history: Sequence[Mechanism], delta: float, accountant: str) -> float:
    """The epsilon an Opacus accountant of kind ``accountant`` charges for ``history``."""
    from opacus.accountants import create_accountant

    acct = create_accountant(accountant)
    acct.history = list(history)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(acct.get_epsilon(delta))


def train(
    net: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    noise_multiplier: float,
    sample_rate: float,
    steps: int,
    max_norm: float,
    delta: float,
    accountant: str,
    optimizer: torch.optim.Optimizer,
    lr_at: Callable[[int], float],
    ema: float,
    augment: Callable[[torch.Tensor, torch.Generator], torch.Tensor] | None,
    gen: torch.Generator,
    on_step: Callable[[int], None] | None = None,
    prior: Sequence[Mechanism] = (),
) -> FunctionalRun:
    """DP-SGD on ``net`` in place: each step samples every example with probability ``sample_rate``, takes one
    clipped (augmentation-averaged) gradient per sampled example, adds the noise and charges the step to an
    Opacus accountant (after the mechanisms in ``prior``, e.g. a DP input mean); with ``ema`` > 0 the parameters end
    as the moving average of the iterates."""
    from opacus.accountants import create_accountant

    acct = create_accountant(accountant)
    acct.history = list(prior)
    n = len(y)
    named = [(k, p) for k, p in net.named_parameters() if p.requires_grad]
    avg = [p.detach().clone() for _, p in named] if ema > 0 else None
    expected = sample_rate * n
    median = 0.0
    aug = (lambda xb: augment(xb, gen)) if augment is not None else None
    for step in range(steps):
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step)
        idx = (torch.rand(n, generator=gen) < sample_rate).nonzero().squeeze(1)
        params = {k: p.detach() for k, p in named}
        grads, stats = private_gradient(
            net, params, x[idx], y[idx], max_norm=max_norm, noise_multiplier=noise_multiplier,
            expected_batch=expected, gen=gen, augment=aug,
        )  # fmt: skip
        for k, p in named:
            p.grad = grads[k]
        optimizer.step()
        acct.step(noise_multiplier=noise_multiplier, sample_rate=sample_rate)
        median = stats.median_norm or median
        if avg is not None:
            with torch.no_grad():
                for a, (_, p) in zip(avg, named, strict=True):
                    a.mul_(ema).add_(p.detach(), alpha=1.0 - ema)
        if on_step is not None:
            on_step(step + 1)
    if avg is not None:
        with torch.no_grad():
            for a, (_, p) in zip(avg, named, strict=True):
                p.copy_(a)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        spent = float(acct.get_epsilon(delta))
    return FunctionalRun(spent, noise_multiplier, steps, sample_rate, median)


def run(
    net: nn.Module,
    opt: torch.optim.Optimizer,
    x: torch.Tensor,
    y: torch.Tensor,
    cfg: DPSGDConfig,
    progress: ProgressFn | None,
    prior: list[Mechanism],
) -> tuple[nn.Module, float, float, int]:
    """The ``engine="aisec"`` of :func:`aisec.defenses.training.dp.dp_sgd` (the counterpart of
    :func:`aisec.defenses.training.dp_opacus.train`): :func:`train` run by ``cfg``; returns (trained module,
    accountant epsilon, noise multiplier, steps)."""
    n = len(y)
    rate = min(cfg.batch_size, n) / n
    steps = max(1, round(cfg.epochs / rate))
    try:
        sigma = noise_for(cfg.epsilon, cfg.delta, rate, steps, cfg.accountant, prior)
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
        augment = lambda xb, g: augment_images(xb, k, shift=shift, rotate_deg=rot, gen=g)  # noqa: E731
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

    run = train(
        net, x, y, noise_multiplier=sigma, sample_rate=rate, steps=steps, max_norm=cfg.max_grad_norm,
        delta=cfg.delta, accountant=cfg.accountant, optimizer=opt, lr_at=lr_at, ema=cfg.ema, augment=augment,
        gen=torch.Generator().manual_seed(cfg.seed), on_step=on_step, prior=prior,
    )  # fmt: skip
    return net, run.epsilon, run.noise_multiplier, run.steps
