"""Privacy attacks on an HTTP target: each measures what it measures on the model itself.

The issue asks that the privacy attacks work on torch, scikit-learn and http targets. A real
FastAPI server on a loopback port (``tests/targets/v2_server.py``) serves an overfit digits MLP
(FP32 probabilities, as a torch server answers, and a labels-only twin) and a breast-cancer
logistic regression (FP64). Each attack runs twice with the same seed: on the local target and on
an :class:`~aisec.targets.http.HttpTarget` for the served copy. The two findings must agree (the
HTTP client renormalises rows in float64, so figures may move in the last digits, never more), and
every query the finding counts must have reached the server.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import torch

from aisec.attacks.base import Attack, AttackContext
from aisec.attacks.privacy.recipe import TrainingRecipe, train_mlp
from aisec.core.findings import Finding
from aisec.data import Dataset
from aisec.errors import BudgetExceededError
from aisec.registry import attacks
from aisec.targets import SklearnTarget, Target, TorchTarget
from aisec.targets.http import HttpTarget

from ..targets.v2_server import ServerThread, State, create_app, fit_models

pytestmark = pytest.mark.integration

#: the digits target's recipe, which the grey-box shadow attacks are told
RECIPE = {"hidden": [64], "epochs": 60, "lr": 3e-3}
N = 150


@pytest.fixture(autouse=True)
def _cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    # one cache for the module: the HTTP run reuses the shadows the local run trained (same recipe, data, seed)
    monkeypatch.setenv("AISEC_CACHE", str(tmp_path_factory.getbasetemp() / "privacy-http-cache"))


@pytest.fixture(scope="module")
def overfit(digits: Dataset) -> tuple[TorchTarget, Dataset]:
    """150 digits as members of a 64-unit MLP trained 60 epochs (it memorises them), 150 test digits."""
    assert isinstance(digits.x_train, torch.Tensor) and isinstance(digits.x_test, torch.Tensor)
    rng = np.random.default_rng(0)
    tr = torch.as_tensor(rng.permutation(len(digits.y_train))[:N])
    te = torch.as_tensor(rng.permutation(len(digits.y_test))[:N])
    data = dataclasses.replace(
        digits,
        x_train=digits.x_train[tr],
        y_train=digits.y_train[tr],
        x_test=digits.x_test[te],
        y_test=digits.y_test[te],
    )
    net = train_mlp(data.x_train, data.y_train, 10, TrainingRecipe(hidden=(64,), epochs=60, lr=3e-3), seed=0)
    return TorchTarget(net, input_shape=(1, 8, 8), clip=(0.0, 1.0), name="digits-mlp"), data


@pytest.fixture(scope="module")
def state(overfit: tuple[TorchTarget, Dataset]) -> State:
    local, _ = overfit
    cancer, spam = fit_models()
    serving = local.view("white-box", "probabilities")  # the server's own access, not an attacker's

    def digits_proba(x: np.ndarray) -> np.ndarray:
        return serving.predict_proba(torch.as_tensor(x, dtype=torch.float32)).numpy()

    return State(cancer=cancer, spam=spam, served={"digits": digits_proba})


@pytest.fixture(scope="module")
def server(state: State) -> Iterator[ServerThread]:
    srv = ServerThread(create_app(state)).start()
    yield srv
    srv.stop()


def _digits_http(server: ServerThread, model: str = "digits") -> HttpTarget:
    return HttpTarget(
        server.url, model_name=model, modality="image", n_classes=10, input_shape=(1, 8, 8), clip=(0.0, 1.0)
    )


def _both(
    attack: Attack, local: Target, remote: HttpTarget, data: Dataset, knowledge: str, output: str, state: State
) -> tuple[Finding, Finding, int]:
    """The finding on the local target, the one over HTTP, and the inputs the server received meanwhile."""
    here = attack.run(local.view(knowledge, output), data, AttackContext(seed=0))  # type: ignore[arg-type]
    before = sum(state.inputs.values())
    with remote:
        there = attack.run(remote.view(knowledge, output), data, AttackContext(seed=0))  # type: ignore[arg-type]
    return here, there, sum(state.inputs.values()) - before


def _numbers(metrics: dict[str, Any]) -> dict[str, float]:
    """The scalar figures of a finding (bools and ints included), by key."""
    return {k: float(v) for k, v in metrics.items() if isinstance(v, int | float)}


def _agree(here: Finding, there: Finding, *, atol: float = 1e-4) -> None:
    a, b = _numbers(here.metrics), _numbers(there.metrics)
    assert a.keys() == b.keys()
    off = {k: (a[k], b[k]) for k in a if not np.isclose(a[k], b[k], rtol=1e-4, atol=atol)}
    assert not off, f"local vs http differ: {off}"
    assert here.headline == there.headline and here.flags == there.flags


@pytest.mark.parametrize(
    ("name", "params", "knowledge"),
    [
        ("loss-threshold", {"n_samples": None}, "black-box"),
        ("lira", {"n_samples": None, "shadows": 4, **RECIPE}, "grey-box"),
        ("rmia", {"n_samples": None, "shadows": 4, **RECIPE}, "grey-box"),
        ("shokri", {"n_samples": None, "shadows": 4, **RECIPE}, "grey-box"),
        ("mi-face-blackbox", {"steps": 10}, "black-box"),
        ("dp-audit", {"n_samples": None, "shadows": 4, "lira": RECIPE}, "grey-box"),
        ("property-inference", {"shadows": 16, "epochs": 2, "n_queries": 16, "property_class": 3}, "grey-box"),
    ],
)
def test_a_probability_attack_over_http_finds_what_it_finds_locally(
    overfit: tuple[TorchTarget, Dataset],
    server: ServerThread,
    state: State,
    name: str,
    params: dict[str, Any],
    knowledge: str,
) -> None:
    local, data = overfit
    attack = attacks()[name](**params)
    here, there, received = _both(attack, local, _digits_http(server), data, knowledge, "probabilities", state)
    _agree(here, there)
    # MI-Face's last step is the assessor's (one uncharged input per class: does the reconstruction score as its
    # class?): not charged to the budget, but counted, since the server receives it too
    assert there.queries == here.queries > 0 and there.check_queries == here.check_queries
    assert received == there.queries + there.check_queries
    assert there.check_queries == (10 if name == "mi-face-blackbox" else 0)
    if name in ("loss-threshold", "lira", "rmia", "shokri", "dp-audit"):  # members of a model that memorised them
        assert there.metrics["auc"] > 0.55, there.summary


def test_label_only_over_a_labels_only_server(
    overfit: tuple[TorchTarget, Dataset], server: ServerThread, state: State
) -> None:
    local, data = overfit
    attack = attacks()["label-only"](n_samples=None)
    here, there, received = _both(
        attack, local, _digits_http(server, "digits-labels"), data, "black-box", "labels", state
    )
    _agree(here, there)
    assert there.queries == here.queries == received > 0
    assert there.metrics["auc"] > 0.55, there.summary


def test_attribute_inference_over_http_on_a_scikit_learn_model(
    server: ServerThread, state: State, cancer: Dataset
) -> None:
    local = SklearnTarget(state.cancer, modality="tabular", input_shape=(30,), name="cancer-lr")
    remote = HttpTarget(server.url, model_name="cancer", modality="tabular", n_classes=2, input_shape=(30,))
    attack = attacks()["attribute-inference"](attribute=20, n_samples=None)
    here, there, received = _both(attack, local, remote, cancer, "grey-box", "probabilities", state)
    _agree(here, there)
    assert there.queries == here.queries == received > 0
    assert there.metrics["leak_beyond_data_correlations"] == here.metrics["leak_beyond_data_correlations"]


def test_a_budget_too_small_for_the_sample_shrinks_it_before_any_query(
    overfit: tuple[TorchTarget, Dataset], server: ServerThread, state: State
) -> None:
    """LiRA asked for 75 + 75 points with 100 queries scores 50 + 50 and says so; what cannot pay for 20 + 20 sends none."""
    _, data = overfit
    lira = attacks()["lira"](n_samples=None, shadows=4, **RECIPE)
    before = sum(state.inputs.values())
    with _digits_http(server) as remote:
        f = lira.run(remote.view("grey-box", "probabilities", budget=100), data, AttackContext(seed=0))
    assert f.metrics["n_members"] == f.metrics["n_non_members"] == 50
    assert f.queries == 100 == sum(state.inputs.values()) - before
    assert any("pays for 50 members and 50 non-members of the 75" in flag for flag in f.flags)
    # the loss threshold also calibrates on the 75 population points: 100 queries cannot pay for 20 + 20 more
    loss = attacks()["loss-threshold"](n_samples=None)
    before = sum(state.inputs.values())
    with _digits_http(server) as remote, pytest.raises(BudgetExceededError, match="needs at least 115 queries"):
        loss.run(remote.view("black-box", "probabilities", budget=100), data, AttackContext(seed=0))
    assert sum(state.inputs.values()) == before
