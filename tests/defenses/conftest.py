"""Fixtures of the defense tests: a PGD evaluation at eps 0.1 (PGD-20, step eps/4)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from aisec.attacks.integrity.pgd import pgd_perturb
from aisec.data import Dataset
from tests.helpers import accuracy


def robust_accuracy(
    model: nn.Module, data: Dataset, eps: float = 0.1, seed: int = 0, judge: nn.Module | None = None
) -> float:
    """Accuracy of ``judge`` (default ``model``) on PGD-20 examples made on ``model`` over the test split."""
    assert isinstance(data.x_test, torch.Tensor)
    gen = torch.Generator().manual_seed(seed)
    x_adv = pgd_perturb(
        model, data.x_test, data.y_test, eps=eps, steps=20, alpha=eps / 4, clip=data.clip, generator=gen
    )
    torch.manual_seed(seed)
    return accuracy(judge if judge is not None else model, x_adv, data.y_test)


@pytest.fixture(scope="session")
def digits_pgd_at(digits_cnn: nn.Module, digits: Dataset) -> nn.Module:
    """The test CNN fine-tuned with PGD-AT (4 epochs, 5 steps: about 2 s)."""
    from aisec.defenses import AdversarialTrainingConfig, adversarial_training

    cfg = AdversarialTrainingConfig(method="pgd-at", epochs=4, steps=5, lr=2e-3, seed=0)
    return adversarial_training(digits_cnn, digits, cfg)
