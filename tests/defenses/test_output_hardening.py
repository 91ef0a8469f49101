"""Output hardening: each policy does what it says to the served rows, the label-only API refuses
probabilities, and evaluate_policy reports the benign cost and the thief's fidelity through it."""

from __future__ import annotations

import pytest
import torch

from aisec.core.goals import Capability
from aisec.defenses.output import HardenedTarget, OutputPolicy, evaluate_policy
from aisec.errors import AccessDeniedError, ConfigError, UnsupportedTargetError


@pytest.fixture
def probs() -> torch.Tensor:
    return torch.softmax(3 * torch.randn(200, 10, generator=torch.Generator().manual_seed(0)), dim=1)


def test_argmax_keeping_policies_keep_the_argmax_and_stay_on_the_simplex(probs: torch.Tensor) -> None:
    for policy in (OutputPolicy(mode="top-k", k=3), OutputPolicy(mode="reverse-sigmoid", beta=0.7, gamma=0.5)):
        out = policy.apply(probs)
        assert torch.equal(out.argmax(1), probs.argmax(1)), policy.mode
        assert (out >= 0).all()
    rs = OutputPolicy(mode="reverse-sigmoid", beta=0.7, gamma=0.5).apply(probs)
    assert torch.allclose(rs.sum(1), torch.ones(len(rs), dtype=rs.dtype))
    assert (rs - probs.double()).abs().max() > 0.05  # the served probabilities really are perturbed
    top = OutputPolicy(mode="top-k", k=3).apply(probs)
    assert ((top > 0).sum(1) <= 3).all()


def test_rounding_and_noise(probs: torch.Tensor) -> None:
    r = OutputPolicy(mode="round", decimals=1).apply(probs)
    assert torch.allclose(r * 10, (r * 10).round())
    for dist in ("gaussian", "laplace"):
        n = OutputPolicy(mode="noise", scale=1.0, distribution=dist).apply(probs, torch.Generator().manual_seed(1))
        assert torch.allclose(n.sum(1), torch.ones(len(n), dtype=n.dtype)) and (n >= 0).all()
        changed = (n.argmax(1) != probs.argmax(1)).float().mean()
        assert 0 < changed < 0.5  # calibrated: some labels move, most do not


def test_label_only_target_refuses_probabilities(digits, digits_cnn_target) -> None:  # type: ignore[no-untyped-def]
    hard = HardenedTarget(digits_cnn_target, OutputPolicy(mode="labels"))
    assert hard.capabilities == {Capability.LABELS}
    with pytest.raises((AccessDeniedError, UnsupportedTargetError)):
        hard.view("black-box", "probabilities").predict_proba(digits.x_test[:2])
    labels = hard.view("black-box", "labels").predict(digits.x_test)
    assert torch.equal(labels, digits_cnn_target.view("black-box", "labels").predict(digits.x_test))


def test_bad_policies_are_refused() -> None:
    with pytest.raises(ConfigError, match="mode"):
        OutputPolicy(mode="blur")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="k"):
        OutputPolicy(mode="top-k", k=0)


def test_evaluate_policy_reports_cost_and_thief_fidelity(digits, digits_cnn_target) -> None:  # type: ignore[no-untyped-def]
    rs = evaluate_policy(
        digits_cnn_target, OutputPolicy(mode="reverse-sigmoid"), digits, queries=60, thief_params={"rounds": 1}
    )
    assert rs["accuracy_cost"] == 0.0 and rs["label_change_rate"] == 0.0  # the argmax is kept
    assert rs["mean_abs_probability_change"] > 0.05
    assert rs["queries"] == 60 and 0.5 < rs["fidelity"] <= 1.0
    noisy = evaluate_policy(
        digits_cnn_target, OutputPolicy(mode="noise", scale=2.0), digits, queries=60, thief_params={"rounds": 1}
    )
    assert noisy["accuracy_cost"] > 0  # heavy noise changes served labels: a benign cost
    assert noisy["label_change_rate"] > 0
