"""The Opacus engine of :func:`aisec.defenses.training.dp.dp_sgd`: Opacus's ``PrivacyEngine`` trains the model.

Opacus (Yousefpour et al. 2021, arXiv:2109.12298) wraps the model to compute per-example gradients (ghost
clipping, Li et al. 2022, arXiv:2110.05679, or per-sample hooks), clips them, adds Gaussian noise to the sum of a
Poisson-sampled batch (Abadi et al. 2016, arXiv:1607.00133) and charges every step to its accountant. When an
earlier mechanism is composed in (``prior``, e.g. the DP input mean of :mod:`aisec.defenses.training.dp_center`),
the noise multiplier comes from :func:`aisec.defenses.training.dp_functional.noise_for` and the mechanism is added
to the accountant's history, so the reported epsilon covers both.
"""

from __future__ import annotations

import math
import warnings
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from aisec.defenses.base import ProgressFn
from aisec.defenses.training import dp_functional as fx
from aisec.errors import ConfigError, MissingDependencyError

if TYPE_CHECKING:
    from aisec.defenses.training.dp_config import DPSGDConfig


def opacus_module() -> Any:
    """The ``opacus`` package, or :class:`MissingDependencyError` naming the extra that installs it."""
    try:
        import opacus
    except ImportError:
        raise MissingDependencyError("opacus", "dp") from None
    return opacus


def train(
    net: nn.Module,
    opt: torch.optim.Optimizer,
    x: torch.Tensor,
    y: torch.Tensor,
    cfg: DPSGDConfig,
    progress: ProgressFn | None,
    prior: list[fx.Mechanism],
) -> tuple[nn.Module, float, float, int]:
    """Opacus's PrivacyEngine; returns (trained module, accountant epsilon, noise multiplier, steps)."""
    opacus = opacus_module()
    lr = cfg.lr
    assert lr is not None  # dp_sgd resolves it before either engine runs
    n = len(y)
    batch = min(cfg.batch_size, n)
    gen = torch.Generator().manual_seed(cfg.seed)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=batch, generator=gen)
    params = [p for p in net.parameters() if p.requires_grad]
    criterion = nn.CrossEntropyLoss()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Opacus warns about its non-cryptographic RNG and full backward hooks
        engine = opacus.PrivacyEngine(accountant=cfg.accountant, secure_mode=False)
        common = {
            "module": net, "optimizer": opt, "data_loader": loader, "criterion": criterion,
            "max_grad_norm": cfg.max_grad_norm, "grad_sample_mode": cfg.grad_sample_mode, "poisson_sampling": True,
        }  # fmt: skip
        try:
            if prior:  # Opacus's own search knows no earlier mechanism: the same rate and steps, composed with it
                rate, steps = 1 / len(loader), cfg.epochs * len(loader)
                sigma = fx.noise_for(cfg.epsilon, cfg.delta, rate, steps, cfg.accountant, prior)
                made = engine.make_private(noise_multiplier=sigma, **common)
                engine.accountant.history.extend(prior)
            else:
                made = engine.make_private_with_epsilon(
                    target_epsilon=cfg.epsilon, target_delta=cfg.delta, epochs=cfg.epochs, **common
                )
        except ValueError as exc:  # Opacus: no noise multiplier reaches the budget
            raise ConfigError(
                f"dp-sgd.epsilon: {cfg.epsilon:g} cannot be reached with {cfg.epochs} epochs of expected batch "
                f"{batch} on {n} points ({exc}); raise epsilon or lower epochs or batch_size"
            ) from None
        if cfg.grad_sample_mode == "ghost":
            private, dp_opt, criterion, private_loader = made
        else:
            private, dp_opt, private_loader = made
        total = cfg.epochs * len(private_loader)
        avg = [p.detach().clone() for p in params] if cfg.ema > 0 else None
        step = 0
        for epoch in range(cfg.epochs):
            private.train()
            for xb, yb in private_loader:
                if cfg.lr_schedule == "cosine":
                    for group in dp_opt.param_groups:
                        group["lr"] = lr * 0.5 * (1.0 + math.cos(math.pi * step / total))
                dp_opt.zero_grad()
                loss = criterion(private(xb), yb)
                loss.backward()
                dp_opt.step()
                step += 1
                if avg is not None:
                    with torch.no_grad():
                        for a, p in zip(avg, params, strict=True):
                            a.mul_(cfg.ema).add_(p.detach(), alpha=1.0 - cfg.ema)
            if progress is not None:
                progress(epoch + 1, cfg.epochs)
        spent = float(engine.get_epsilon(cfg.delta))
    trained = private._module if hasattr(private, "_module") else private
    if avg is not None:
        with torch.no_grad():
            for a, p in zip(avg, params, strict=True):
                p.copy_(a)
    return trained, spent, float(dp_opt.noise_multiplier), step
