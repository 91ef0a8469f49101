"""Knockoff Nets: random and adaptive sampling from the attacker's pool, probabilities or labels."""

from __future__ import annotations

import pytest

from aisec.attacks.base import AttackContext
from aisec.attacks.confidentiality import knockoff  # noqa: F401  (registers; the lead adds it)
from aisec.attacks.confidentiality.knockoff import Knockoff
from aisec.errors import ConfigError


@pytest.mark.parametrize("sampling", ["random", "adaptive"])
def test_knockoff_steals_the_digits_cnn(sampling: str, digits, digits_cnn_target) -> None:  # type: ignore[no-untyped-def]
    view = digits_cnn_target.view("grey-box", "probabilities", budget=100)
    finding = Knockoff(queries=100, sampling=sampling).run(view, digits, AttackContext(seed=0))
    assert finding.queries == view.queries == 100
    assert finding.metrics["fidelity"] >= 0.88  # measured 0.929, 0.949 (random), 0.947, 0.940 (adaptive), seeds 0-1
    assert finding.metrics["curve_queries"] == [100]


def test_label_only_knockoff_and_its_curve(digits, digits_cnn_target) -> None:  # type: ignore[no-untyped-def]
    view = digits_cnn_target.view("grey-box", "labels", budget=60)
    finding = Knockoff(queries=60, rounds=3).run(view, digits)
    m = finding.metrics
    assert m["soft_labels"] is False and m["curve_queries"] == [20, 40, 60]
    assert m["curve_fidelity"][-1] > 0.5  # far above the 10% of chance, from 60 labels


def test_the_pool_bounds_the_queries(cancer, cancer_mlp_target) -> None:  # type: ignore[no-untyped-def]
    n_pool = len(cancer.y_train)
    finding = Knockoff(queries=n_pool + 50, steps=20).run(cancer_mlp_target.view("grey-box", "labels"), cancer)
    assert finding.queries == n_pool
    assert finding.flags


def test_unknown_sampling_is_refused() -> None:
    with pytest.raises(ConfigError, match="sampling"):
        Knockoff(sampling="greedy")
