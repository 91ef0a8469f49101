"""DP-SGD (aisec.defenses.training.dp): the accountant's epsilon, accuracy, the guarantee it carries."""

from __future__ import annotations

import sys

import pytest
import torch
from torch import nn

from aisec.data import Dataset
from aisec.defenses.base import defenses, get_defense
from aisec.defenses.training import dp as _dp  # noqa: F401  (registers the defense until aisec.defenses imports it)
from aisec.defenses.training.dp import DPSGD, DPSGDConfig, dp_sgd
from aisec.errors import ConfigError, InputValidationError, MissingDependencyError
from tests.helpers import accuracy

pytest.importorskip("opacus")


def _mlp(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))


@pytest.fixture(scope="module")
def trained(digits: Dataset) -> dict[float, object]:
    """The same MLP trained with DP-SGD at epsilon 0.5 and 8 (10 epochs each, about 1 s)."""
    return {eps: dp_sgd(_mlp(), digits, DPSGDConfig(epsilon=eps, epochs=10)) for eps in (0.5, 8.0)}


@pytest.mark.parametrize("accountant", ["rdp", "prv"])
def test_the_accountants_epsilon_is_at_most_the_target_and_close_to_it(digits: Dataset, accountant: str) -> None:
    res = dp_sgd(_mlp(), digits, DPSGDConfig(epsilon=2.0, epochs=2, accountant=accountant))
    assert 1.8 <= res.epsilon <= 2.0
    assert res.info["epsilon"] == res.epsilon and res.info["accountant"] == accountant
    assert res.noise_multiplier > 0.5 and res.steps > 0 and res.seconds > 0


def test_a_dp_model_learns_and_more_budget_buys_accuracy(digits: Dataset, trained: dict) -> None:
    # measured (seeds 0-2): 0.92-0.93 at epsilon 8, 0.60-0.71 at epsilon 0.5
    acc = {eps: accuracy(r.model, digits.x_test, digits.y_test) for eps, r in trained.items()}
    assert acc[8.0] >= 0.85
    assert acc[0.5] < acc[8.0] - 0.1


def test_the_model_given_is_unchanged_and_the_result_carries_its_guarantee(digits: Dataset, trained: dict) -> None:
    net = _mlp()
    before = [p.detach().clone() for p in net.parameters()]
    res = DPSGD(epsilon=8.0, epochs=1).apply(net, digits)
    assert all(torch.equal(a, b) for a, b in zip(before, net.parameters(), strict=True))
    out = res.model
    assert type(out) is nn.Sequential and not out.training  # the user's architecture, Opacus's wrapper gone
    assert not any(p.requires_grad for p in out.parameters())
    assert out.dp_guarantee["epsilon"] == res.info["epsilon"] <= 8.0
    assert out.dp_guarantee["delta"] == 1e-5
    assert {"noise_multiplier", "max_grad_norm", "epochs", "seconds"} <= set(res.info)
    assert not any(torch.equal(a, b) for a, b in zip(before, out.parameters(), strict=True))  # re-initialised


def test_tanh_is_an_option_that_swaps_relus(digits: Dataset) -> None:
    res = dp_sgd(_mlp(), digits, DPSGDConfig(epsilon=8.0, epochs=1, activation="tanh"))
    kinds = [type(m) for m in res.model.modules()]
    assert nn.Tanh in kinds and nn.ReLU not in kinds


def test_an_unreachable_budget_and_bad_config_are_config_errors(digits: Dataset) -> None:
    with pytest.raises(ConfigError, match="cannot be reached"):
        dp_sgd(_mlp(), digits, DPSGDConfig(epsilon=0.01, epochs=50))
    for bad in ({"epsilon": 0}, {"delta": 1.0}, {"ema": 1.0}, {"accountant": "gdp"}, {"epochs": 1.5}):
        with pytest.raises(ConfigError):
            DPSGDConfig(**bad)


def test_batch_norm_is_refused_naming_the_problem(digits: Dataset) -> None:
    net = nn.Sequential(nn.Flatten(), nn.Linear(64, 8), nn.BatchNorm1d(8), nn.Linear(8, 10))
    with pytest.raises(InputValidationError, match="BatchNorm"):
        dp_sgd(net, digits, DPSGDConfig(epochs=1))


def test_without_opacus_the_error_names_the_extra(digits: Dataset, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "opacus", None)
    with pytest.raises(MissingDependencyError, match=r"aisec\[dp\]"):
        dp_sgd(_mlp(), digits)


def test_it_is_registered_as_a_training_defense() -> None:
    assert get_defense("dp-sgd") is DPSGD and "dp-sgd" in defenses()
    assert DPSGD.kind == "training" and "lira" in DPSGD.mitigates
