"""Pieces the evasion attacks share."""

from __future__ import annotations

from collections.abc import Iterator
from typing import ClassVar, Literal

import torch

from aisec.attacks.base import Attack, AttackContext
from aisec.core.goals import Capability, Goal, Knowledge, Modality
from aisec.data.dataset import Dataset
from aisec.targets.base import TargetView


class WhiteBoxEvasion(Attack):
    """What the white-box evasion attacks declare alike: gradients of a numeric model (ATLAS
    AML.T0043.000, OWASP ML01), robust accuracy as the headline unless a subclass says otherwise.
    Subclasses add their name, paper, config and ``_run``.
    """

    goal: ClassVar[Goal] = Goal.INTEGRITY
    needs: ClassVar[frozenset[Capability]] = frozenset({Capability.GRADIENTS})
    modalities: ClassVar[frozenset[Modality]] = frozenset({Modality.IMAGE, Modality.TABULAR})
    knowledge: ClassVar[Knowledge] = Knowledge.WHITE_BOX
    atlas: ClassVar[str] = "AML.T0043.000"
    owasp: ClassVar[str] = "ML01"
    headline: ClassVar[str] = "robust_accuracy"
    worse_when: ClassVar[Literal["higher", "lower"]] = "lower"


def evasion_inputs(
    view: TargetView, data: Dataset, n_samples: int | None, seed: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """The test inputs and labels an evasion attack works on: a seeded subset, validated, on the target's device."""
    x, y = data.test_subset(n_samples, seed)
    assert isinstance(x, torch.Tensor)  # evasion attacks declare numeric modalities only
    return view.validate(x, argument="data.x_test"), y.to(view.device)


def correct_batches(
    model: torch.nn.Module,
    x_all: torch.Tensor,
    y_all: torch.Tensor,
    batch_size: int,
    clean_ok: torch.Tensor,
    ctx: AttackContext,
) -> Iterator[tuple[int, torch.Tensor, torch.Tensor, torch.Tensor]]:
    """The inputs in batches, for attacks that only attack what the model gets right.

    Yields ``(start, x, y, idx)``: the batch, its first row's index and the positions in it of the
    inputs the model classifies correctly, after writing those into ``clean_ok``. Progress is
    reported after each batch has been handled (and once for no inputs at all).
    """
    n = len(y_all)
    for start in range(0, n, batch_size):
        sl = slice(start, start + batch_size)
        x, y = x_all[sl], y_all[sl]
        with torch.no_grad():
            clean_ok[sl] = model(x).argmax(1) == y
        yield start, x, y, clean_ok[sl].nonzero().squeeze(1)
        ctx.step(min(start + batch_size, n), n)
    if n == 0:
        ctx.step(0, 0)
