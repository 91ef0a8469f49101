"""Ensembles as one target: the attacks run through the view on every member at once."""

from __future__ import annotations

import torch
from torch import nn

from aisec.data import Dataset
from aisec.defenses import Ensemble, get_defense
from aisec.registry import get_attack
from aisec.targets import TorchTarget
from tests.helpers import train_digits_cnn


def test_ensemble_averages_probabilities(digits_cnn: nn.Module, digits: Dataset) -> None:
    other = train_digits_cnn(digits, seed=1)
    ens = Ensemble([digits_cnn, other])
    x = digits.x_test[:5]  # type: ignore[index]
    expected = (digits_cnn(x).softmax(1) + other(x).softmax(1)) / 2
    assert torch.allclose(ens(x).exp(), expected, atol=1e-6)
    assert torch.allclose(Ensemble([digits_cnn, other], combine="logits")(x), (digits_cnn(x) + other(x)) / 2)


def test_ensemble_target_runs_fgsm_and_pgd(digits_cnn: nn.Module, digits: Dataset) -> None:
    defended = get_defense("ensemble")(members=2, epochs=3).apply(digits_cnn, digits, seed=0)
    target = TorchTarget(defended.model, input_shape=(1, 8, 8), clip=(0.0, 1.0), device="cpu")
    for name in ("fgsm", "pgd"):
        view = target.view("white-box", "probabilities")
        finding = get_attack(name)(eps=0.1, n_samples=100).run(view, digits)
        assert finding.status == "ok"
        assert finding.metrics["robust_accuracy"] < finding.metrics["clean_accuracy"]
        assert view.forward_passes > 0
