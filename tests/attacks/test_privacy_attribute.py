"""Attribute inference beside its no-model baseline (aisec.attacks.privacy.attribute)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from aisec.attacks.base import AttackContext
from aisec.attacks.privacy import attribute as _attribute  # noqa: F401  (registers the attack)
from aisec.attacks.privacy.attribute import AttributeInference, paired_gain_interval
from aisec.attacks.privacy.recipe import TrainingRecipe, train_mlp
from aisec.core.goals import Modality
from aisec.data import Dataset
from aisec.errors import ConfigError, InputValidationError
from aisec.registry import attacks
from aisec.targets import TorchTarget


@pytest.fixture(scope="module")
def memorised() -> tuple[TorchTarget, Dataset]:
    """Random features and random labels: a model can only fit its members by memorising them, attribute included."""
    rng = np.random.default_rng(0)
    x = torch.as_tensor(rng.normal(size=(600, 6)), dtype=torch.float32)
    y = torch.as_tensor(rng.integers(0, 2, 600))
    data = Dataset("noise", Modality.TABULAR, x[:200], y[:200], x[200:], y[200:], ("a", "b"))
    net = train_mlp(data.x_train, data.y_train, 2, TrainingRecipe(hidden=(128,), epochs=300, lr=3e-3), seed=0)
    return TorchTarget(net, input_shape=(6,), modality="tabular"), data


def test_attribute_inference_finds_what_a_memorising_model_leaks(memorised: tuple[TorchTarget, Dataset]) -> None:
    assert attacks()["attribute-inference"] is AttributeInference
    target, data = memorised
    f = AttributeInference(attribute=0, n_values=2, n_samples=None).run(
        target.view("grey-box", "probabilities"), data, AttackContext(seed=0)
    )
    m = f.metrics
    # the attribute is independent of the other features: the baseline is at chance, the model leaks it
    assert abs(m["baseline_accuracy_members"] - 0.5) < 0.12
    # measured over 3 data seeds: gain 0.13-0.17 (CI lower bounds 0.055-0.105), members 0.65-0.74, non-members 0.51-0.58
    assert m["gain_over_baseline"] > 0.08 and m["gain_ci95"][0] > 0, f.summary
    assert m["leak_beyond_data_correlations"] and "leaks beyond" in f.summary
    # records the model never saw gain much less
    assert m["attack_accuracy_non_members"] < m["attack_accuracy_members"] - 0.03


def test_a_model_that_generalises_leaks_nothing_beyond_correlations(
    cancer_mlp_target: TorchTarget, cancer: Dataset
) -> None:
    f = AttributeInference(attribute=20, n_samples=None).run(
        cancer_mlp_target.view("grey-box", "probabilities"), cancer
    )
    m = f.metrics
    # radius and 'worst radius' are highly correlated: the baseline alone does well above chance (4 bins)
    assert m["baseline_accuracy_members"] > 0.5
    assert not m["leak_beyond_data_correlations"] and "no leak beyond data correlations" in f.summary
    assert m["gain_ci95"][0] <= m["gain_over_baseline"] <= m["gain_ci95"][1]


def test_paired_gain_interval() -> None:
    a = np.array([1.0] * 80 + [0.0] * 20)
    assert paired_gain_interval(a, a, 200, 0) == [0.0, 0.0]
    lo, hi = paired_gain_interval(a, np.zeros(100), 200, 0)
    assert 0.6 < lo < 0.8 < hi < 0.9


def test_config_and_inputs_are_checked(cancer_mlp_target: TorchTarget, cancer: Dataset) -> None:
    for bad in ({"n_values": 1}, {"attribute": -1}, {"n_samples": 0}):
        with pytest.raises(ConfigError):
            AttributeInference(**bad)
    with pytest.raises(InputValidationError, match="attribute"):
        AttributeInference(attribute=30).run(cancer_mlp_target.view("grey-box", "probabilities"), cancer)


def test_a_small_budget_shrinks_the_records_before_any_query(memorised: tuple[TorchTarget, Dataset]) -> None:
    """Each record costs one query per candidate value: 400 queries with 2 values pay for 100 of the 200 a side."""
    target, data = memorised
    view = target.view("grey-box", "probabilities", budget=400)
    f = AttributeInference(attribute=0, n_values=2, n_samples=None).run(view, data, AttackContext(seed=0))
    assert f.metrics["n_members"] == 100 and f.queries == 400
    assert any("pays for 100 members and 100 non-members of the 200" in flag for flag in f.flags)
