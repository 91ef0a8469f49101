"""Square stays in its ball and the clip range, batches its queries, keeps to its budget and breaks inputs."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from aisec.attacks.base import AttackContext
from aisec.attacks.integrity.square import Square, SquareConfig, margin_loss, p_schedule
from aisec.errors import BudgetExceededError, ConfigError


def _count_calls(monkeypatch: pytest.MonkeyPatch, target) -> list[int]:  # type: ignore[no-untyped-def]
    """Record the batch size of every probability query the target answers."""
    sizes: list[int] = []
    inner = target._predict_proba

    def counted(x: torch.Tensor) -> torch.Tensor:
        sizes.append(len(x))
        return inner(x)

    monkeypatch.setattr(target, "_predict_proba", counted)
    return sizes


@pytest.mark.parametrize(("norm", "eps"), [("linf", 0.1), ("l2", 0.5)])
def test_square_stays_in_its_ball_and_the_clip_range(
    digits_cnn_target, digits, tmp_path, norm: str, eps: float
) -> None:  # type: ignore[no-untyped-def]
    view = digits_cnn_target.view("black-box", "probabilities")
    f = Square(eps=eps, norm=norm, queries_per_input=200, n_samples=60).run(
        view, digits, AttackContext(run_dir=tmp_path, job_id="sq")
    )
    assert 0 < f.metrics["max_perturbation"] <= eps + 1e-5
    arrays = np.load(tmp_path / f.evidence["arrays"])
    assert arrays["x_adv"].min() >= 0.0 and arrays["x_adv"].max() <= 1.0
    assert len(arrays["x_adv"]) == len(arrays["index"]) > 0
    # the evidence is adversarial for the target itself
    preds = digits_cnn_target.view("white-box", "probabilities").model(torch.from_numpy(arrays["x_adv"])).argmax(1)
    _, y = digits.test_subset(60, 0)
    assert bool((preds != y[torch.from_numpy(arrays["index"])]).all())


def test_square_breaks_the_digits_cnn_at_linf_0_1(digits_cnn_target, digits) -> None:  # type: ignore[no-untyped-def]
    # measured on seeds 0-3 (n=60, 1,000 queries): accuracy drops by 0.43-0.57 (0.93-1.0 -> 0.43-0.55)
    for seed in (0, 1):
        view = digits_cnn_target.view("black-box", "probabilities")
        m = Square(eps=0.1, queries_per_input=1000, n_samples=60).run(view, digits, AttackContext(seed=seed)).metrics
        assert m["robust_accuracy"] < m["clean_accuracy"] - 0.3
        assert m["median_queries_to_success"] < 1000


def test_one_batched_query_per_step_and_per_input_accounting(digits_cnn_target, digits, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    sizes = _count_calls(monkeypatch, digits_cnn_target)
    view = digits_cnn_target.view("black-box", "probabilities")
    f = Square(eps=0.1, queries_per_input=100, n_samples=80).run(view, digits)
    assert len(sizes) <= 100  # one call per step for all inputs, never one per input
    assert max(sizes) == 80
    assert sum(sizes) == f.queries == view.queries
    assert f.metrics["mean_queries_per_input"] * 80 == pytest.approx(f.queries)
    assert f.metrics["mean_queries_per_input"] <= 100


def test_a_limited_budget_is_split_over_the_inputs_and_never_exceeded(digits_cnn_target, digits) -> None:  # type: ignore[no-untyped-def]
    view = digits_cnn_target.view("black-box", "probabilities", budget=3_000)
    f = Square(eps=0.1, queries_per_input=1000, n_samples=100).run(view, digits)
    assert f.queries <= 3_000
    assert f.metrics["queries_per_input"] == 30 and f.metrics["n"] == 100
    small = digits_cnn_target.view("black-box", "probabilities", budget=200)
    g = Square(eps=0.1, n_samples=100).run(small, digits)
    assert g.metrics["n"] == 20 and g.metrics["n_requested"] == 100 and g.queries <= 200


def test_too_small_a_budget_is_refused_before_any_query(digits_cnn_target, digits) -> None:  # type: ignore[no-untyped-def]
    view = digits_cnn_target.view("black-box", "probabilities", budget=Square.min_queries - 1)
    with pytest.raises(BudgetExceededError):
        Square().run(view, digits)
    assert view.queries == 0


def test_eps_zero_changes_nothing(digits_cnn_target, digits) -> None:  # type: ignore[no-untyped-def]
    view = digits_cnn_target.view("black-box", "probabilities")
    m = Square(eps=0.0, n_samples=50).run(view, digits).metrics
    assert m["robust_accuracy"] == m["clean_accuracy"]
    assert view.queries == 50  # the clean query only


def test_square_works_on_tabular_data_without_a_clip_range(cancer_mlp_target, cancer) -> None:  # type: ignore[no-untyped-def]
    # measured on seeds 0-3: 0.95-0.97 -> 0.69-0.74 at eps 0.25 with 300 queries
    view = cancer_mlp_target.view("black-box", "probabilities")
    m = Square(eps=0.25, queries_per_input=300, n_samples=100).run(view, cancer).metrics
    assert m["max_perturbation"] <= 0.25 + 1e-5
    assert m["robust_accuracy"] < m["clean_accuracy"] - 0.1


def test_margin_loss_is_negative_exactly_when_fooled() -> None:
    probs = torch.tensor([[0.7, 0.2, 0.1], [0.2, 0.5, 0.3], [0.0, 0.0, 1.0]])
    y = torch.tensor([0, 0, 2])
    loss = margin_loss(probs, y)
    assert loss[0] == pytest.approx(math.log(0.7 / 0.2), rel=1e-5)
    assert loss[1] < 0 and loss[2] > 0


def test_p_schedule_halves_and_never_grows() -> None:
    ps = [p_schedule(0.05, i, 1000) for i in range(1000)]
    assert ps[0] == 0.05 and all(a >= b for a, b in itertools.pairwise(ps))
    assert ps[-1] == pytest.approx(0.05 / 2**9)


@pytest.mark.parametrize(
    "bad",
    [{"eps": -0.1}, {"eps": math.nan}, {"norm": "l1"}, {"queries_per_input": 1}, {"queries_per_input": 2.5},
     {"p_init": 0.0}, {"p_init": 1.5}, {"n_samples": 0}],
)  # fmt: skip
def test_config_rejects_invalid_values(bad: dict) -> None:
    with pytest.raises(ConfigError):
        SquareConfig(**bad)


def test_broken_marks_each_requested_input_in_order(digits_cnn_target, digits, tmp_path) -> None:  # type: ignore[no-untyped-def]
    view = digits_cnn_target.view("black-box", "probabilities")
    f = Square(eps=0.1, queries_per_input=300, n_samples=60).run(
        view, digits, AttackContext(run_dir=tmp_path, job_id="b")
    )
    arrays = np.load(tmp_path / f.evidence["arrays"])
    broken = arrays["broken"]
    assert broken.dtype == bool and broken.shape == (60,) and broken.any()
    m = f.metrics
    assert broken.sum() == round((m["clean_accuracy"] - m["robust_accuracy"]) * 60)
    assert set(arrays["index"]) <= set(np.flatnonzero(broken))
    # each input marked broken is misclassified at its saved adversarial
    x_adv = torch.from_numpy(arrays["x_adv"])
    preds = digits_cnn_target.view("white-box", "probabilities").model(x_adv).argmax(1)
    _, y = digits.test_subset(60, 0)
    assert bool((preds != y[torch.from_numpy(arrays["index"])]).all())


def test_broken_covers_inputs_a_small_budget_left_unattacked(digits_cnn_target, digits, tmp_path) -> None:  # type: ignore[no-untyped-def]
    view = digits_cnn_target.view("black-box", "probabilities", budget=200)
    f = Square(eps=0.2, n_samples=100).run(view, digits, AttackContext(run_dir=tmp_path, job_id="s"))
    broken = np.load(tmp_path / f.evidence["arrays"])["broken"]
    assert f.metrics["n"] == 20 and broken.shape == (100,)
    assert not broken[20:].any()
