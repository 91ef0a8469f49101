"""Fixtures of the poison-detector tests: the digits with a 5% BadNets backdoor, and a small MLP recipe."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from aisec.attacks.poisoning.common import PatchTrigger, PoisonedSet
from aisec.data import Dataset
from aisec.targets.recipe import TorchRecipe

TRIGGER = PatchTrigger(size=2, corner="bottom-right", value=1.0)
TARGET = 0


def train_mlp(x: torch.Tensor, y: torch.Tensor, seed: int) -> nn.Module:
    """64-64-10 MLP, Adam lr 3e-3, 30 epochs of batches of 64 (about half a second)."""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(30):
        perm = torch.randperm(len(y), generator=gen)
        for start in range(0, len(y), 64):
            idx = perm[start : start + 64]
            opt.zero_grad()
            nn.functional.cross_entropy(model(x[idx]), y[idx]).backward()
            opt.step()
    return model.eval()


def backdoored(digits: Dataset, seed: int) -> PoisonedSet:
    """5% of the digits' training split stamped with the trigger and relabelled 0, in place."""
    from aisec.attacks.poisoning.backdoor import add_backdoor

    assert isinstance(digits.x_train, torch.Tensor)
    return add_backdoor(
        digits.x_train, digits.y_train, fraction=0.05, trigger=TRIGGER, target_label=TARGET, seed=seed, mode="modify"
    )


@pytest.fixture(scope="module")
def recipe() -> TorchRecipe:
    return TorchRecipe(train_mlp, input_shape=(1, 8, 8), n_classes=10, clip=(0.0, 1.0))


@pytest.fixture(scope="module")
def backdoor_set(digits: Dataset) -> PoisonedSet:
    return backdoored(digits, seed=0)


@pytest.fixture(scope="module")
def backdoor_model(backdoor_set: PoisonedSet) -> nn.Module:
    return train_mlp(backdoor_set.x, backdoor_set.y, 0)
