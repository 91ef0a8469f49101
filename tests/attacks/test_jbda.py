"""Jacobian-based dataset augmentation: synthetic queries grow the substitute's training set."""

from __future__ import annotations

import pytest

from aisec.attacks.base import AttackContext
from aisec.attacks.confidentiality import jbda  # noqa: F401  (registers; the lead adds it)
from aisec.attacks.confidentiality.jbda import JBDA
from aisec.errors import ConfigError


def test_jbda_doubles_its_set_each_round_within_the_budget(digits, digits_cnn_target) -> None:  # type: ignore[no-untyped-def]
    view = digits_cnn_target.view("grey-box", "labels", budget=70)
    finding = JBDA(queries=70, seed_size=20, steps=60).run(view, digits, AttackContext(seed=0))
    m = finding.metrics
    assert m["curve_queries"] == [20, 40, 70]  # the last round takes what the budget leaves
    assert finding.queries == view.queries == 70
    assert m["augmentation_rounds"] == 2
    assert m["fidelity"] > 0.5  # measured 0.72 on 20, 40 and 80 points (seed 0): far above chance


def test_jbda_on_tabular_data(cancer, cancer_mlp_target) -> None:  # type: ignore[no-untyped-def]
    finding = JBDA(queries=40, seed_size=10).run(cancer_mlp_target.view("grey-box", "probabilities"), cancer)
    assert finding.metrics["soft_labels"] is True
    assert finding.metrics["fidelity"] >= 0.8  # measured 0.867, 0.951, 0.874 over seeds 0-2


def test_bad_step_is_refused() -> None:
    with pytest.raises(ConfigError, match="step"):
        JBDA(step=0.0)
