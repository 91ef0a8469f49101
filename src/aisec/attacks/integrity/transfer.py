"""Transfer attack: craft adversarials on a surrogate trained from the target's answers, send them to the target."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from aisec.attacks.base import Attack, AttackContext, AttackResult, check_config
from aisec.attacks.integrity.pgd import pgd_perturb
from aisec.core.configurable import check_choice
from aisec.core.goals import Capability, Goal, Knowledge, Modality
from aisec.data.dataset import Dataset
from aisec.errors import BudgetExceededError, ConfigError
from aisec.registry import register_attack
from aisec.targets.base import TargetView


@dataclass(frozen=True, kw_only=True, slots=True)
class TransferConfig:
    """Parameters of :class:`Transfer`.

    Attributes
    ----------
    eps:
        Radius of the perturbation ball, in input units, in the chosen norm.
    norm:
        ``"linf"`` or ``"l2"``.
    steps:
        PGD steps on the surrogate.
    surrogate:
        ``"auto"`` (a small CNN for images, an MLP otherwise), ``"mlp"`` or ``"cnn"``; aisec trains
        it on the attacker's data sample labelled by the target. To craft on a model of your own,
        call :func:`transfer_from` instead.
    epochs:
        Training epochs of the surrogate.
    pool_size:
        Most inputs of the attacker's data sample to label through the target; ``None`` takes them all.
    n_samples:
        Test inputs to attack.
    """

    eps: float = 0.1
    norm: Literal["linf", "l2"] = "linf"
    steps: int = 20
    surrogate: Literal["auto", "mlp", "cnn"] = "auto"
    epochs: int = 30
    pool_size: int | None = None
    n_samples: int = 100

    def __post_init__(self) -> None:
        ints = ("steps", "epochs", "n_samples")
        check_config(self, "transfer", non_negative=("eps",), integer=ints, positive=ints)
        check_choice("transfer.norm", self.norm, ("linf", "l2"))
        check_choice("transfer.surrogate", self.surrogate, ("auto", "mlp", "cnn"))
        check_config(self, "transfer", counts=("pool_size",))


def make_surrogate(kind: str, input_shape: tuple[int, ...], n_classes: int) -> nn.Module:
    """A small surrogate: conv32-conv64-maxpool-fc128 for (C, H, W) images, else a 256-256 MLP."""
    if kind == "auto":
        kind = "cnn" if len(input_shape) == 3 else "mlp"
    if kind == "cnn":
        if len(input_shape) != 3:
            raise ConfigError(f"transfer.surrogate: 'cnn' needs (C, H, W) inputs, the target takes {input_shape}")
        c, h, w = input_shape
        return nn.Sequential(
            nn.Conv2d(c, 32, 3, padding=1), nn.ReLU(), nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(64 * (h // 2) * (w // 2), 128), nn.ReLU(), nn.Linear(128, n_classes),
        )  # fmt: skip
    d = int(np.prod(input_shape))
    return nn.Sequential(
        nn.Flatten(), nn.Linear(d, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, n_classes)
    )


def train_surrogate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, epochs: int, gen: torch.Generator) -> nn.Module:
    """Adam (lr 1e-3, batches of 64) on cross-entropy against the labels the target gave."""
    model = model.to(x.device).train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    for _ in range(epochs):
        order = torch.randperm(len(y), generator=gen).to(x.device)
        for start in range(0, len(y), 64):
            b = order[start : start + 64]
            opt.zero_grad()
            F.cross_entropy(model(x[b]), y[b]).backward()
            opt.step()
    return model.eval()


def transfer_from(
    surrogate: nn.Module,
    view: TargetView,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    eps: float,
    norm: str = "linf",
    steps: int = 20,
    generator: torch.Generator | None = None,
) -> dict[str, float]:
    """Craft PGD adversarials on ``surrogate`` and measure how many fool the target behind ``view``.

    Charges ``2 * len(x)`` label queries (clean and adversarial inputs, one batch each).
    """
    target_clean = view.predict(x)
    x_adv = pgd_perturb(surrogate, x, y, eps=eps, norm=norm, steps=steps, clip=view.clip, generator=generator)
    target_adv = view.predict(x_adv)
    with torch.no_grad():
        sur_clean = surrogate(x).argmax(1)
        sur_adv = surrogate(x_adv).argmax(1)
    clean_ok = target_clean == y
    adv_ok = target_adv == y
    n_ok = max(int(clean_ok.sum().item()), 1)
    n = max(len(y), 1)
    fools_sur = clean_ok & (sur_adv != y)
    return {
        "clean_accuracy": clean_ok.sum().item() / n,
        "robust_accuracy": (clean_ok & adv_ok).sum().item() / n,
        "transfer_rate": (clean_ok & ~adv_ok).sum().item() / n_ok,
        "transfer_rate_of_surrogate_successes": (fools_sur & ~adv_ok).sum().item() / max(int(fools_sur.sum()), 1),
        "surrogate_success_rate": fools_sur.sum().item() / n_ok,
        "surrogate_agreement": (sur_clean == target_clean).float().mean().item() if len(y) else 0.0,
    }


@register_attack
class Transfer(Attack):
    """Transfer attack through a surrogate (Papernot et al. 2017, Practical Black-Box Attacks against
    Machine Learning, arXiv:1602.02697).

    The attacker holds a data sample from the task's distribution but not the training data
    (grey-box): here the half of the test split that is not attacked. It labels that sample by
    querying the target (labels only, charged), trains a small surrogate on the answers, crafts PGD
    adversarials on the surrogate (white-box on its own model, free) and sends them to the target.
    The finding reports how many transfer and how well the surrogate mimics the target.
    """

    name = "transfer"
    goal = Goal.INTEGRITY
    needs = frozenset({Capability.LABELS, Capability.DATA_SAMPLE})
    modalities = frozenset({Modality.IMAGE, Modality.TABULAR})
    knowledge = Knowledge.GREY_BOX
    atlas = "AML.T0043.002"
    owasp = "ML01"
    paper = "Papernot et al. 2017, Practical Black-Box Attacks against Machine Learning, arXiv:1602.02697"
    headline = "robust_accuracy"
    worse_when = "lower"
    min_queries = 100
    Config = TransferConfig

    def _run(self, view: TargetView, data: Dataset, ctx: AttackContext) -> AttackResult:
        cfg: TransferConfig = self.config
        remaining = view.budget.remaining
        if remaining is not None and remaining < self.min_queries:
            raise BudgetExceededError(view.budget.limit or 0, view.budget.used, self.min_queries)
        assert isinstance(data.x_test, torch.Tensor)  # numeric modalities only
        n_test = len(data.y_test)
        n_attack = min(cfg.n_samples, n_test // 2)
        if remaining is not None:
            n_attack = min(n_attack, remaining // 4)  # at least half the budget labels the pool
        order = torch.as_tensor(np.random.default_rng(ctx.seed).permutation(n_test))
        pool_idx = order[n_attack:]
        n_pool = len(pool_idx) if cfg.pool_size is None else min(cfg.pool_size, len(pool_idx))
        if remaining is not None:
            n_pool = min(n_pool, remaining - 2 * n_attack)
        pool_idx, attack_idx = pool_idx[:n_pool], order[:n_attack]
        x_pool = view.validate(data.x_test[pool_idx], argument="data.x_test")
        x = view.validate(data.x_test[attack_idx], argument="data.x_test")
        y = data.y_test[attack_idx].to(view.device)
        assert isinstance(x, torch.Tensor) and isinstance(x_pool, torch.Tensor)
        gen = torch.Generator(device="cpu").manual_seed(ctx.seed)
        surrogate = make_surrogate(cfg.surrogate, tuple(x.shape[1:]), view.n_classes)
        ctx.step(0, 3)
        y_pool = view.predict(x_pool)
        with torch.enable_grad():
            surrogate = train_surrogate(surrogate, x_pool, y_pool, cfg.epochs, gen)
        ctx.step(1, 3)
        m = transfer_from(surrogate, view, x, y, eps=cfg.eps, norm=cfg.norm, steps=cfg.steps, generator=gen)
        ctx.step(3, 3)
        metrics = {
            "eps": cfg.eps,
            "norm": cfg.norm,
            "n": n_attack,
            "pool_size": n_pool,
            "surrogate": cfg.surrogate,
            **m,
            "attack_success_rate": m["transfer_rate"],
        }
        summary = (
            f"Transfer-{cfg.norm} at eps={cfg.eps:g} from a surrogate trained on {n_pool} target labels "
            f"(agreement {m['surrogate_agreement']:.1%}): accuracy {m['clean_accuracy']:.1%} -> "
            f"{m['robust_accuracy']:.1%} ({m['transfer_rate']:.1%} of correctly classified inputs broken, n={n_attack})"
        )
        return AttackResult(metrics=metrics, summary=summary)
