"""Pieces the evasion attacks share."""

from __future__ import annotations

from typing import ClassVar, Literal

import torch

from aisec.attacks.base import Attack
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
