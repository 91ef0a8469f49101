"""PGD stays in its ball and the clip range, is at least as strong as FGSM, and its targeted mode works."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from aisec.attacks.integrity.fgsm import FGSM
from aisec.attacks.integrity.pgd import PGD, PGDConfig, pgd_attack, pgd_perturb
from aisec.errors import ConfigError


@pytest.fixture(scope="module")
def batch(digits):  # type: ignore[no-untyped-def]
    return digits.x_test[:64], digits.y_test[:64]


@settings(max_examples=15, deadline=None, derandomize=True)
@given(eps=st.floats(0.0, 0.5), norm=st.sampled_from(["linf", "l2"]))
def test_pgd_stays_in_the_ball_and_the_clip_range(digits_cnn_target, batch, eps: float, norm: str) -> None:  # type: ignore[no-untyped-def]
    model = digits_cnn_target.view("white-box", "probabilities").model
    x, y = batch
    x_adv = pgd_perturb(
        model, x, y, eps=eps, norm=norm, steps=5, clip=(0.0, 1.0), generator=torch.Generator().manual_seed(0)
    )
    delta = (x_adv - x).flatten(1)
    size = delta.abs().amax(1) if norm == "linf" else delta.norm(dim=1)
    assert float(size.max()) <= eps + 1e-5
    assert float(x_adv.min()) >= 0.0 and float(x_adv.max()) <= 1.0


def test_eps_zero_changes_nothing(digits_cnn_target, batch) -> None:  # type: ignore[no-untyped-def]
    model = digits_cnn_target.view("white-box", "probabilities").model
    x, y = batch
    assert torch.equal(pgd_perturb(model, x, y, eps=0.0), x)


@pytest.mark.parametrize(("norm", "eps", "targeted"), [("linf", 0.1, False), ("l2", 0.5, False), ("linf", 0.2, True)])
def test_first_success_pgd_breaks_what_the_last_iterate_breaks_in_fewer_passes(
    digits_cnn_target, digits, norm: str, eps: float, targeted: bool
) -> None:  # type: ignore[no-untyped-def]
    view = digits_cnn_target.view("white-box", "probabilities")
    model = view.model
    x, y = digits.test_subset(200, 0)
    goal = (y + 1) % 10 if targeted else y
    kw = {"eps": eps, "norm": norm, "steps": 10, "targeted": targeted, "clip": (0.0, 1.0)}
    before = view.forward_passes
    x_last = pgd_perturb(model, x, goal, generator=torch.Generator().manual_seed(0), **kw)
    with torch.no_grad():
        pred = model(x_last).argmax(1)
    last = pred == goal if targeted else pred != goal
    plain = view.forward_passes - before
    before = view.forward_passes
    x_adv, reached = pgd_attack(model, x, goal, generator=torch.Generator().manual_seed(0), **kw)
    early = view.forward_passes - before
    assert bool(reached[last].all())  # same trajectory: whatever the last iterate breaks, an iterate broke
    assert int(reached.sum()) >= int(last.sum()) and int(reached.sum()) > 0
    assert early < plain  # broken inputs leave the batch
    with torch.no_grad():
        pred = model(x_adv).argmax(1)
    assert torch.equal(pred == goal if targeted else pred != goal, reached)  # each kept iterate is adversarial
    delta = (x_adv - x).flatten(1)
    size = delta.abs().amax(1) if norm == "linf" else delta.norm(dim=1)
    assert float(size.max()) <= eps + 1e-5 and float(x_adv.min()) >= 0.0 and float(x_adv.max()) <= 1.0


@pytest.mark.parametrize(("norm", "eps", "steps"), [("linf", 0.15, 20), ("l2", 0.8, 10)])
def test_reinvested_passes_break_a_superset_within_one_plain_run(
    digits_cnn_target, digits, norm: str, eps: float, steps: int
) -> None:  # type: ignore[no-untyped-def]
    view = digits_cnn_target.view("white-box", "probabilities")
    model = view.model
    x, y = digits.test_subset(200, 0)
    kw = {"eps": eps, "norm": norm, "steps": steps, "clip": (0.0, 1.0)}
    _, plain = pgd_attack(model, x, y, generator=torch.Generator().manual_seed(0), **kw)
    before = view.forward_passes
    x_adv, more = pgd_attack(model, x, y, generator=torch.Generator().manual_seed(0), reinvest=True, **kw)
    rows = view.forward_passes - before
    assert bool(more[plain].all())  # the first starts are the plain run's: what it breaks stays broken
    assert int(more.sum()) > int(plain.sum())  # measured: 3-5 more of 200 on the fixture CNN (171 -> 174, 166 -> 171)
    assert rows <= (steps + 1) * len(y)  # never more forward passes than one plain run (and its last check)
    with torch.no_grad():
        assert torch.equal(model(x_adv).argmax(1) != y, more)  # every kept point is adversarial
    delta = (x_adv - x).flatten(1)
    size = delta.abs().amax(1) if norm == "linf" else delta.norm(dim=1)
    assert float(size.max()) <= eps + 1e-5 and float(x_adv.min()) >= 0.0 and float(x_adv.max()) <= 1.0


@pytest.mark.parametrize(("norm", "eps", "targeted"), [("linf", 0.1, False), ("l2", 0.8, False), ("linf", 0.2, True)])
def test_checking_less_often_breaks_the_same_inputs(
    digits_cnn_target, digits, norm: str, eps: float, targeted: bool
) -> None:  # type: ignore[no-untyped-def]
    """The GPU default checks every steps // 4 steps (no device sync in between): without refills it must break
    exactly the inputs that checking every step breaks, each with an adversarial point inside the ball."""
    model = digits_cnn_target.view("white-box", "probabilities").model
    x, y = digits.test_subset(200, 0)
    goal = (y + 1) % 10 if targeted else y
    kw = {"eps": eps, "norm": norm, "steps": 10, "targeted": targeted, "clip": (0.0, 1.0)}
    _, each = pgd_attack(model, x, goal, generator=torch.Generator().manual_seed(0), check_every=1, **kw)
    assert 0 < int(each.sum()) < len(y)
    for every in (3, 10, 50):
        x_adv, reached = pgd_attack(model, x, goal, generator=torch.Generator().manual_seed(0), check_every=every, **kw)
        assert torch.equal(reached, each)
        with torch.no_grad():
            pred = model(x_adv).argmax(1)
        assert torch.equal(pred == goal if targeted else pred != goal, reached)
        delta = (x_adv - x).flatten(1)
        size = delta.abs().amax(1) if norm == "linf" else delta.norm(dim=1)
        assert float(size.max()) <= eps + 1e-5 and float(x_adv.min()) >= 0.0 and float(x_adv.max()) <= 1.0


def test_refills_at_sparse_checks_still_break_a_superset(digits_cnn_target, digits) -> None:  # type: ignore[no-untyped-def]
    view = digits_cnn_target.view("white-box", "probabilities")
    model = view.model
    x, y = digits.test_subset(200, 0)
    kw = {"eps": 0.15, "norm": "linf", "steps": 20, "clip": (0.0, 1.0), "check_every": 5}
    _, plain = pgd_attack(model, x, y, generator=torch.Generator().manual_seed(0), **kw)
    before = view.forward_passes
    x_adv, more = pgd_attack(model, x, y, generator=torch.Generator().manual_seed(0), reinvest=True, **kw)
    assert view.forward_passes - before <= 21 * len(y)
    assert bool(more[plain].all()) and int(more.sum()) >= int(plain.sum())
    with torch.no_grad():
        assert torch.equal(model(x_adv).argmax(1) != y, more)


def test_check_every_below_one_is_refused(digits_cnn_target, batch) -> None:  # type: ignore[no-untyped-def]
    model = digits_cnn_target.view("white-box", "probabilities").model
    with pytest.raises(ConfigError, match="check_every"):
        pgd_attack(model, *batch, eps=0.1, check_every=0)


def test_pgd_breaks_at_least_what_fgsm_breaks(digits_cnn_target, digits) -> None:  # type: ignore[no-untyped-def]
    view = digits_cnn_target.view("white-box", "probabilities")
    fgsm = FGSM(eps=0.1, n_samples=300).run(view, digits).metrics
    pgd = PGD(eps=0.1, steps=20, n_samples=300).run(view, digits).metrics
    assert pgd["clean_accuracy"] == pytest.approx(fgsm["clean_accuracy"])
    assert pgd["robust_accuracy"] <= fgsm["robust_accuracy"]
    assert pgd["robust_accuracy"] < pgd["clean_accuracy"] - 0.3  # measured ~0.1 on the fixture CNN
    assert pgd["max_perturbation"] <= 0.1 + 1e-6


def test_restarts_only_add_broken_inputs(digits_cnn_target, digits) -> None:  # type: ignore[no-untyped-def]
    view = digits_cnn_target.view("white-box", "probabilities")
    one = PGD(eps=0.05, steps=5, restarts=1, n_samples=200).run(view, digits).metrics
    three = PGD(eps=0.05, steps=5, restarts=3, n_samples=200).run(view, digits).metrics
    assert three["robust_accuracy"] <= one["robust_accuracy"]


def test_targeted_pgd_reaches_the_target_class(digits_cnn_target, digits) -> None:  # type: ignore[no-untyped-def]
    view = digits_cnn_target.view("white-box", "probabilities")
    m = PGD(eps=0.3, steps=30, targeted=True, n_samples=200).run(view, digits).metrics
    assert m["attack_success_rate"] > 0.5  # success = predicted as the chosen other class


def test_l2_attack_runs_and_respects_eps(digits_cnn_target, digits) -> None:  # type: ignore[no-untyped-def]
    view = digits_cnn_target.view("white-box", "probabilities")
    m = PGD(eps=1.0, norm="l2", steps=20, n_samples=200).run(view, digits).metrics
    assert m["max_perturbation"] <= 1.0 + 1e-5
    assert m["robust_accuracy"] < m["clean_accuracy"]


@pytest.mark.parametrize(
    "bad",
    [
        {"eps": -0.1},
        {"eps": math.nan},
        {"norm": "l1"},
        {"steps": 0},
        {"restarts": 0},
        {"alpha": 0.0},
        {"n_samples": 0},
        {"batch_size": 2.5},
    ],
)
def test_config_rejects_invalid_values(bad: dict) -> None:
    with pytest.raises(ConfigError):
        PGDConfig(**bad)
