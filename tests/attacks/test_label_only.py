"""Label-only membership inference (aisec.attacks.privacy.label_only)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from aisec.attacks.base import AttackContext
from aisec.attacks.privacy import label_only as _label_only  # noqa: F401  (registers the attack)
from aisec.attacks.privacy.label_only import LabelOnly, _calibrate
from aisec.attacks.privacy.loss_threshold import LossThreshold
from aisec.attacks.privacy.recipe import TrainingRecipe, train_mlp
from aisec.data import Dataset
from aisec.errors import ConfigError
from aisec.registry import attacks
from aisec.targets import TorchTarget


@pytest.fixture(scope="module")
def overfit(digits: Dataset) -> tuple[TorchTarget, Dataset]:
    """100 random members, trained 100 epochs: an MLP that memorises them."""
    assert isinstance(digits.x_train, torch.Tensor)
    idx = torch.as_tensor(np.random.default_rng(1).permutation(len(digits.y_train))[:100])
    data = dataclasses.replace(digits, x_train=digits.x_train[idx], y_train=digits.y_train[idx])
    net = train_mlp(data.x_train, data.y_train, 10, TrainingRecipe(hidden=(64,), epochs=100), seed=0)
    return TorchTarget(net, input_shape=(1, 8, 8), clip=(0.0, 1.0)), data


def test_label_only_needs_labels_and_finds_members(overfit: tuple[TorchTarget, Dataset]) -> None:
    assert attacks()["label-only"] is LabelOnly
    target, data = overfit
    view = target.view("black-box", "labels")
    f = LabelOnly(n_samples=None).run(view, data, AttackContext(seed=0))
    m = f.metrics
    # measured over three member draws (100 members, 225 non-members): label-only AUC 0.58-0.62,
    # the loss threshold with confidences 0.61-0.64, as Choquette-Choo et al. find (labels nearly suffice)
    assert m["auc"] > 0.55, f.summary
    loss = LossThreshold(n_samples=None).run(target.view("black-box", "probabilities"), data).metrics
    assert m["auc"] > loss["auc"] - 0.1
    assert m["mean_score_members"] > m["mean_score_non_members"]
    assert m["calibrated_fpr"] <= 0.15
    assert f.queries == (m["n_members"] + m["n_non_members"] + min(200, len(data.y_test) // 2)) * 17


def test_without_noise_robustness_there_is_little_to_find(overfit: tuple[TorchTarget, Dataset]) -> None:
    """Members and non-members that the target never saw (both from the test split) score alike."""
    target, data = overfit
    assert isinstance(data.x_test, torch.Tensor)
    half = len(data.y_test) // 2
    null = dataclasses.replace(data, x_train=data.x_test[:half], y_train=data.y_test[:half])
    null = dataclasses.replace(null, x_test=data.x_test[half:], y_test=data.y_test[half:])
    m = LabelOnly(n_samples=None).run(target.view("black-box", "labels"), null).metrics
    assert 0.35 < m["auc"] < 0.65


def test_calibration_keeps_the_population_fpr() -> None:
    pop = np.array([18.0] * 90 + [17.0] * 5 + [10.0] * 5)
    assert _calibrate(pop, 0.05) == float("inf")  # 90% tie at the top: no threshold resolves 5%
    assert _calibrate(pop, 0.95) == 17.0
    assert _calibrate(np.arange(100.0), 0.05) == 95.0


def test_label_only_config_is_checked() -> None:
    for bad in ({"n_noise": 0}, {"sigma": 0.0}, {"calibration_fpr": 2.0}, {"n_samples": 0}):
        with pytest.raises(ConfigError):
            LabelOnly(**bad)


def test_a_small_budget_shrinks_the_sample_before_any_query(overfit: tuple[TorchTarget, Dataset]) -> None:
    """17 queries a point (the point and 16 noisy copies), 200 population points first: 5000 pay for 47 a side."""
    target, data = overfit
    f = LabelOnly(n_samples=None).run(target.view("black-box", "labels", budget=5000), data, AttackContext(seed=0))
    m = f.metrics
    assert m["n_members"] == m["n_non_members"] == (5000 - 17 * 200) // 34 == 47
    assert f.queries == 17 * (200 + 2 * 47) <= 5000
    assert any("pays for 47 members and 47 non-members of the 100" in flag for flag in f.flags)
