"""HopSkipJump finds confirmed adversarials from labels only, batches over inputs and keeps to its budget."""

from __future__ import annotations

import math
import sys

import numpy as np
import pytest
import torch

from aisec.attacks.base import AttackContext
from aisec.attacks.integrity.hopskipjump import HopSkipJump, HopSkipJumpConfig
from aisec.errors import AccessDeniedError, BudgetExceededError, ConfigError


def _count_calls(monkeypatch: pytest.MonkeyPatch, target) -> list[int]:  # type: ignore[no-untyped-def]
    sizes: list[int] = []
    inner = target._predict_labels

    def counted(x: torch.Tensor) -> torch.Tensor:
        sizes.append(len(x))
        return inner(x)

    monkeypatch.setattr(target, "_predict_labels", counted)
    return sizes


def test_every_adversarial_is_misclassified_and_in_range(digits_cnn_target, digits, tmp_path) -> None:  # type: ignore[no-untyped-def]
    view = digits_cnn_target.view("black-box", "labels")
    f = HopSkipJump(iterations=5, queries_per_input=800, n_samples=30).run(
        view, digits, AttackContext(run_dir=tmp_path, job_id="hsj")
    )
    arrays = np.load(tmp_path / f.evidence["arrays"])
    x_adv = torch.from_numpy(arrays["x_adv"])
    assert len(x_adv) > 0 and x_adv.min() >= 0.0 and x_adv.max() <= 1.0
    _, y = digits.test_subset(30, 0)
    preds = digits_cnn_target.view("white-box", "probabilities").model(x_adv).argmax(1)
    assert bool((preds != y[torch.from_numpy(arrays["index"])]).all())


def test_iterations_shrink_the_distance(digits_cnn_target, digits) -> None:  # type: ignore[no-untyped-def]
    # measured on seeds 0-3 (n=40, 1,500 queries per input): median L2 0.94 after 1 iteration, 0.58-0.64 after 10
    one = HopSkipJump(iterations=1, n_samples=40).run(digits_cnn_target.view("black-box", "labels"), digits).metrics
    ten = (
        HopSkipJump(iterations=10, queries_per_input=1500, n_samples=40)
        .run(digits_cnn_target.view("black-box", "labels"), digits)
        .metrics
    )
    assert ten["success_rate"] == 1.0
    assert ten["median_l2"] < 0.8 * one["median_l2"]
    assert ten["median_l2"] < 0.75


def test_inputs_advance_together_in_batched_queries(digits_cnn_target, digits, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    sizes = _count_calls(monkeypatch, digits_cnn_target)
    counts = []
    for n in (15, 60):
        sizes.clear()
        view = digits_cnn_target.view("black-box", "labels")
        f = HopSkipJump(iterations=4, queries_per_input=600, n_samples=n).run(view, digits)
        assert sum(sizes) == f.queries == view.queries
        counts.append(len(sizes))
    # measured 62-69 calls for both sizes, seeds 0-2: the number of calls does not grow with the inputs
    # (one input at a time would take at least n * iterations = 240 calls for 60 inputs)
    assert counts[1] < 1.5 * counts[0]
    assert counts[1] < 60 * 4


def test_probes_that_do_not_fit_go_in_groups_of_inputs(digits_cnn_target, digits, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    sizes = _count_calls(monkeypatch, digits_cnn_target)
    cfg = {"iterations": 4, "queries_per_input": 600, "n_samples": 30}
    whole = HopSkipJump(**cfg).run(digits_cnn_target.view("black-box", "labels"), digits).metrics
    biggest_whole = max(sizes)
    sizes.clear()
    monkeypatch.setattr(
        sys.modules[HopSkipJump.__module__], "PROBE_FLOATS", 64 * 200 * 8
    )  # room for the probes of 8 inputs at 200 evals
    view = digits_cnn_target.view("black-box", "labels")
    grouped = HopSkipJump(**cfg).run(view, digits).metrics
    assert max(sizes) <= 8 * 200 < biggest_whole  # no query held more probes than the limit allows
    assert grouped["success_rate"] == 1.0 and view.queries <= 30 * 600
    # measured grouped / whole median L2 0.97-1.00 on seeds 0-2 (0.62-0.67): groups draw other random directions
    assert grouped["median_l2"] < 1.15 * whole["median_l2"]


def test_budget_is_split_and_never_exceeded(digits_cnn_target, digits) -> None:  # type: ignore[no-untyped-def]
    view = digits_cnn_target.view("black-box", "labels", budget=20_000)
    f = HopSkipJump(queries_per_input=None, n_samples=40).run(view, digits)
    assert f.queries <= 20_000
    assert f.metrics["mean_queries_per_input"] <= 500
    small = digits_cnn_target.view("black-box", "probabilities", budget=1_000)
    g = HopSkipJump(n_samples=40).run(small, digits)
    assert g.metrics["n"] == 5 and g.queries <= 1_000
    with pytest.raises(BudgetExceededError):
        HopSkipJump().run(digits_cnn_target.view("black-box", "labels", budget=999), digits)


def test_robust_accuracy_counts_adversarials_within_eps(digits_cnn_target, digits) -> None:  # type: ignore[no-untyped-def]
    cfg = {"iterations": 3, "queries_per_input": 500, "n_samples": 40}
    anywhere = HopSkipJump(eps=None, **cfg).run(digits_cnn_target.view("black-box", "labels"), digits).metrics
    close = HopSkipJump(eps=0.05, **cfg).run(digits_cnn_target.view("black-box", "labels"), digits).metrics
    assert anywhere["robust_accuracy"] == pytest.approx(anywhere["clean_accuracy"] * (1 - anywhere["success_rate"]))
    assert close["robust_accuracy"] >= anywhere["robust_accuracy"]
    assert close["success_rate_at_eps"] <= close["success_rate"]


def test_hopskipjump_works_on_tabular_data(cancer_mlp_target, cancer) -> None:  # type: ignore[no-untyped-def]
    m = (
        HopSkipJump(iterations=5, queries_per_input=800, n_samples=40)
        .run(cancer_mlp_target.view("black-box", "labels"), cancer)
        .metrics
    )
    assert m["success_rate"] == 1.0 and m["median_l2"] > 0


def test_probabilities_are_never_asked_for(digits_cnn_target, digits, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    def refuse(x: torch.Tensor) -> torch.Tensor:
        raise AccessDeniedError("probabilities asked for")

    monkeypatch.setattr(digits_cnn_target, "_predict_proba", refuse)
    monkeypatch.setattr(digits_cnn_target, "_predict_labels", lambda x: digits_cnn_target._module(x).argmax(1))
    HopSkipJump(iterations=2, queries_per_input=400, n_samples=10).run(
        digits_cnn_target.view("black-box", "labels"), digits
    )


@pytest.mark.parametrize(
    "bad",
    [{"norm": "l1"}, {"iterations": 0}, {"init_evals": 0}, {"max_evals": 1.5}, {"queries_per_input": 0},
     {"eps": -1.0}, {"eps": math.inf}, {"n_samples": 0}],
)  # fmt: skip
def test_config_rejects_invalid_values(bad: dict) -> None:
    with pytest.raises(ConfigError):
        HopSkipJumpConfig(**bad)
