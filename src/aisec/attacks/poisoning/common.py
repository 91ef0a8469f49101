"""What poisoning attacks and poison detectors share: the poisoned training set and triggers.

A poisoning attack returns a :class:`PoisonedSet`: the training inputs and labels the victim's
recipe will see, and a mask of the points the attacker added or changed. Detectors in
:mod:`aisec.defenses.data` get the same object, flag points, and are scored against the mask.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from aisec.errors import InputValidationError
from aisec.targets.base import Inputs


@dataclass(frozen=True, slots=True)
class PoisonedSet:
    """A training set after the attacker's changes.

    Attributes
    ----------
    x:
        Training inputs: a float tensor (images, tabular) or a list of strings (text).
    y:
        Labels as the trainer sees them (int64, shape ``(N,)``).
    poisoned:
        Boolean mask of shape ``(N,)``: ``True`` for points the attacker added or changed.
    clean_y:
        The true labels where known (added points carry the label the attacker gave them).
    """

    x: Inputs
    y: torch.Tensor
    poisoned: np.ndarray
    clean_y: torch.Tensor | None = None

    def __post_init__(self) -> None:
        n = len(self.x)
        if len(self.y) != n or self.poisoned.shape != (n,):
            raise InputValidationError(
                "poisoned set", f"x, y and the mask of {n} rows", (len(self.y), self.poisoned.shape)
            )
        if self.poisoned.dtype != np.bool_:
            object.__setattr__(self, "poisoned", self.poisoned.astype(bool))

    @property
    def n_poison(self) -> int:
        return int(self.poisoned.sum())

    @property
    def fraction(self) -> float:
        """Share of the training set that is poison."""
        return self.n_poison / max(len(self.y), 1)

    def without(self, drop: np.ndarray) -> tuple[Inputs, torch.Tensor]:
        """The inputs and labels with the points where ``drop`` is ``True`` removed (to retrain)."""
        keep = ~np.asarray(drop, dtype=bool)
        idx = torch.from_numpy(np.flatnonzero(keep))
        x = self.x[idx] if isinstance(self.x, torch.Tensor) else [self.x[i] for i in idx.tolist()]
        return x, self.y[idx]


@dataclass(frozen=True, slots=True)
class PatchTrigger:
    """A square patch of constant value stamped on images (BadNets, Gu et al. 2017, arXiv:1708.06733).

    Attributes
    ----------
    size:
        Side of the square in pixels.
    corner:
        ``"bottom-right"``, ``"bottom-left"``, ``"top-right"`` or ``"top-left"``.
    value:
        Pixel value of the patch (usually the top of the clip range).
    """

    size: int = 2
    corner: str = "bottom-right"
    value: float = 1.0

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        """Stamped copy of ``x`` (shape ``(N, C, H, W)`` or ``(N, H, W)``)."""
        if not isinstance(x, torch.Tensor) or x.ndim < 3:
            raise InputValidationError("x", "images of shape (N, C, H, W) or (N, H, W)", getattr(x, "shape", type(x)))
        out = x.clone()
        h, w = out.shape[-2], out.shape[-1]
        rows = slice(h - self.size, h) if self.corner.startswith("bottom") else slice(0, self.size)
        cols = slice(w - self.size, w) if self.corner.endswith("right") else slice(0, self.size)
        out[..., rows, cols] = self.value
        return out


@dataclass(frozen=True, slots=True)
class TokenTrigger:
    """A token sequence inserted in texts (the text form of a BadNets trigger).

    Attributes
    ----------
    tokens:
        Words inserted, in order; rare words make a trigger the clean data never shows.
    position:
        ``"end"``, ``"start"`` or ``"random"`` (seeded per text).
    """

    tokens: tuple[str, ...] = ("cf", "mn")
    position: str = "end"
    seed: int = 0

    def apply(self, x: Sequence[str]) -> list[str]:
        """Texts with the trigger inserted."""
        trigger = " ".join(self.tokens)
        if self.position == "start":
            return [f"{trigger} {t}" for t in x]
        if self.position == "end":
            return [f"{t} {trigger}" for t in x]
        rng = np.random.default_rng(self.seed)
        out = []
        for t in x:
            words = t.split()
            at = int(rng.integers(0, len(words) + 1))
            out.append(" ".join([*words[:at], trigger, *words[at:]]))
        return out


def poison_count(n: int, fraction: float) -> int:
    """Number of poison points for a budget given as a fraction of ``n`` (at least one)."""
    if not 0.0 < fraction < 1.0:
        raise InputValidationError("fraction", "a poison budget in (0, 1)", fraction)
    return max(1, round(n * fraction))


__all__ = ["PatchTrigger", "PoisonedSet", "TokenTrigger", "poison_count"]
