"""What the poisoning attacks of this package share: retraining with the recipe and scoring the result.

The assessor, not the attacker, measures a retrained model: predictions go through an unlimited
white-box view of the freshly trained target, so nothing is charged to the attacker's budget.
"""

from __future__ import annotations

import torch

from aisec.attacks.base import AttackContext
from aisec.core.goals import Knowledge, OutputKind
from aisec.data.dataset import Dataset
from aisec.errors import InputValidationError
from aisec.targets.base import Inputs, Target


def predict(target: Target, x: Inputs, batch_size: int = 512) -> torch.Tensor:
    """Labels the (retrained) target predicts for ``x``, on the CPU."""
    view = target.view(Knowledge.WHITE_BOX, OutputKind.PROBABILITIES)
    out = [view.predict(x[i : i + batch_size]).cpu() for i in range(0, len(x), batch_size)]
    return torch.cat(out) if out else torch.empty(0, dtype=torch.long)


def accuracy(target: Target, x: Inputs, y: torch.Tensor) -> float:
    """Share of ``x`` the target labels ``y``."""
    if len(y) == 0:
        return 0.0
    return float((predict(target, x) == y.cpu()).float().mean())


def retrain(ctx: AttackContext, x: Inputs, y: torch.Tensor, *, done: int, total: int) -> Target:
    """Train the recipe on ``x``, ``y`` with the attack's seed and report progress ``done + 1`` of ``total``."""
    assert ctx.recipe is not None  # Attack.run refuses a retraining attack without one
    model = ctx.recipe.fit(x, y, seed=ctx.seed)
    ctx.step(done + 1, total)
    return model


def train_split(data: Dataset) -> tuple[Inputs, torch.Tensor]:
    """The training inputs and labels, checked to be non-empty."""
    if len(data.y_train) == 0:
        raise InputValidationError("data.x_train", "a non-empty training split to poison", 0)
    x = data.x_train.cpu() if isinstance(data.x_train, torch.Tensor) else list(data.x_train)
    return x, data.y_train.cpu()


def concat(a: Inputs, b: Inputs) -> Inputs:
    """``a`` followed by ``b`` (tensors or lists of strings)."""
    if isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor):
        return torch.cat([a, b])
    return [*a, *b]


def take(x: Inputs, idx: torch.Tensor) -> Inputs:
    """Rows ``idx`` of ``x`` (tensor or list of strings)."""
    return x[idx] if isinstance(x, torch.Tensor) else [x[i] for i in idx.tolist()]


__all__ = ["accuracy", "concat", "predict", "retrain", "take", "train_split"]
