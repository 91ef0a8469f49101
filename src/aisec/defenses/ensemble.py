"""Several models as one target: the log of their mean class probabilities.

An ensemble is attacked as one model: white-box attacks differentiate through every member at
once (the setting in which Tramèr et al. 2018, Ensemble Adversarial Training, arXiv:1705.07204,
and He et al. 2017, Adversarial Example Defenses: Ensembles of Weak Defenses are not Strong,
arXiv:1706.04701, evaluate ensembles).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from aisec.attacks.base import check_config
from aisec.core.configurable import check_choice
from aisec.data.dataset import Dataset
from aisec.defenses.base import Defended, Defense, ProgressFn, register_defense
from aisec.errors import ConfigError, InputValidationError


class Ensemble(nn.Module):
    """Averages its members: ``log(mean softmax)`` (``"probabilities"``) or mean logits (``"logits"``).

    Parameters
    ----------
    models:
        Two or more modules mapping the same inputs to logits over the same classes.
    combine:
        How the members' outputs are averaged.
    """

    def __init__(self, models: Sequence[nn.Module], *, combine: Literal["probabilities", "logits"] = "probabilities"):
        super().__init__()
        if len(models) < 2:
            raise InputValidationError("models", "two or more models", f"{len(models)}")
        check_choice("combine", combine, ("probabilities", "logits"))
        self.members = nn.ModuleList(models)
        self.combine = combine

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outs = torch.stack([m(x) for m in self.members])
        if self.combine == "logits":
            return outs.mean(dim=0)
        return outs.softmax(dim=2).mean(dim=0).clamp_min(1e-12).log()


@dataclass(frozen=True, kw_only=True, slots=True)
class EnsembleConfig:
    """Parameters of :class:`EnsembleDefense`.

    Attributes
    ----------
    members:
        Models in the ensemble: the given one plus ``members - 1`` copies retrained from fresh
        seeds (same architecture, same data).
    epochs, lr, batch_size:
        Adam on the training split for each new member.
    combine:
        ``"probabilities"`` or ``"logits"``.
    """

    members: int = 3
    epochs: int = 10
    lr: float = 1e-3
    batch_size: int = 64
    combine: Literal["probabilities", "logits"] = "probabilities"

    def __post_init__(self) -> None:
        ints = ("members", "epochs", "batch_size")
        check_config(self, "ensemble", positive=(*ints, "lr"), integer=ints)
        if self.members < 2:
            raise ConfigError(f"ensemble.members: expected 2 or more, got {self.members}")
        check_choice("ensemble.combine", self.combine, ("probabilities", "logits"))


def _reinitialise(model: nn.Module, seed: int) -> nn.Module:
    torch.manual_seed(seed)
    fresh = copy.deepcopy(model)
    found = False
    for m in fresh.modules():
        reset = getattr(m, "reset_parameters", None)
        if callable(reset):
            reset()
            found = True
    if not found:
        raise ConfigError(
            "ensemble: the model's layers cannot be re-initialised (no reset_parameters); "
            "build the members yourself and wrap them in aisec.defenses.Ensemble"
        )
    for p in fresh.parameters():
        p.requires_grad_(True)
    return fresh


@register_defense
class EnsembleDefense(Defense):
    """An ensemble of the model and retrained copies, attacked as one model (He et al. 2017,
    arXiv:1706.04701)."""

    name = "ensemble"
    kind = "ensemble"
    paper = "He et al. 2017, Adversarial Example Defenses: Ensembles of Weak Defenses are not Strong, arXiv:1706.04701"
    mitigates = frozenset({"fgsm", "pgd"})
    Config = EnsembleConfig

    def apply(self, model: nn.Module, data: Dataset, *, seed: int = 0, progress: ProgressFn | None = None) -> Defended:
        from aisec.demo import train_classifier

        cfg = self.config
        members = [model]
        for i in range(1, cfg.members):
            fresh = _reinitialise(model, seed + i)
            members.append(
                train_classifier(fresh, data, epochs=cfg.epochs, lr=cfg.lr, batch_size=cfg.batch_size, seed=seed + i)
            )
            for p in members[-1].parameters():
                p.requires_grad_(False)
            if progress is not None:
                progress(i, cfg.members - 1)
        return Defended(model=Ensemble(members, combine=cfg.combine), info={"members": cfg.members})
