"""Pieces the evasion attacks share."""

from __future__ import annotations

import torch

from aisec.data.dataset import Dataset
from aisec.targets.base import TargetView


def evasion_inputs(
    view: TargetView, data: Dataset, n_samples: int | None, seed: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """The test inputs and labels an evasion attack works on: a seeded subset, validated, on the target's device."""
    x, y = data.test_subset(n_samples, seed)
    assert isinstance(x, torch.Tensor)  # evasion attacks declare numeric modalities only
    return view.validate(x, argument="data.x_test"), y.to(view.device)
