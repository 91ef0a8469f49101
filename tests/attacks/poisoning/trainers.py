"""Training recipes for the poisoning tests: the fixtures' models as ``trainer(x, y, seed)`` functions."""

from __future__ import annotations

import torch
from torch import nn

from aisec.targets.recipe import TorchRecipe, TrainerFn
from tests.helpers import CancerMLP, DigitsCNN, train_classifier


def digits_cnn_trainer(x: torch.Tensor, y: torch.Tensor, seed: int) -> nn.Module:
    """The tiny digits CNN of the shared fixtures (5 epochs, minibatches of 64)."""
    torch.manual_seed(seed)
    return train_classifier(DigitsCNN(), x, y, epochs=5, batch_size=64, seed=seed)


class DigitsMLP(nn.Module):
    """64 -> 64 -> 10 on flattened 8x8 digits."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def digits_mlp_trainer(x: torch.Tensor, y: torch.Tensor, seed: int) -> nn.Module:
    """A 2-layer MLP on digits (20 epochs, minibatches of 64)."""
    torch.manual_seed(seed)
    return train_classifier(DigitsMLP(), x, y, epochs=20, batch_size=64, seed=seed)


def cancer_mlp_trainer(x: torch.Tensor, y: torch.Tensor, seed: int) -> nn.Module:
    """The breast cancer MLP of the shared fixtures (150 full-batch epochs)."""
    torch.manual_seed(seed)
    return train_classifier(CancerMLP(), x, y, epochs=150, seed=seed)


def digits_recipe(trainer: TrainerFn = digits_cnn_trainer) -> TorchRecipe:
    return TorchRecipe(trainer, input_shape=(1, 8, 8), n_classes=10, clip=(0.0, 1.0))


def cancer_recipe() -> TorchRecipe:
    return TorchRecipe(cancer_mlp_trainer, input_shape=(30,), n_classes=2, modality="tabular")
