"""Sponge inputs: work proxies (tokens, activation density) and latency against local and http targets."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

from aisec.attacks.base import AttackContext
from aisec.data import Dataset
from aisec.errors import BudgetExceededError, ConfigError
from aisec.targets import SklearnTarget, TorchTarget
from aisec.targets.http import HttpTarget
from tests.targets.v2_server import ServerThread, State, serving


def test_text_sponge_packs_many_more_tokens_within_the_limit(
    tiny_text_target: SklearnTarget, tiny_text: Dataset
) -> None:
    from aisec.attacks.availability.sponge import Sponge, token_count  # registers on use (see conftest)

    view = tiny_text_target.view("black-box", "labels", budget=5000)
    f = Sponge(max_chars=1000, repeats=30).run(view, tiny_text, AttackContext(seed=0))
    m = f.metrics
    assert m["work_proxy"] == "tokens"
    assert m["work_amplification"] > 10  # ~7 tokens per benign message, >= 160 in 1000 characters
    assert token_count("ab cd ef g") == 3
    assert f.queries == view.queries > 0
    assert all(m[k] > 0 for k in ("latency_amplification_p50", "latency_amplification_p99"))


def test_long_inputs_are_measurably_slower_on_the_tfidf_filter(
    tiny_text_target: SklearnTarget, tiny_text: Dataset
) -> None:
    from aisec.attacks.availability.sponge import Sponge

    # a 50,000-character limit: vectorizing dominates the per-call overhead (measured p50 ratio >> 2)
    f = Sponge(max_chars=50_000, repeats=20, n_candidates=4, rounds=1).run(
        tiny_text_target.view("black-box", "labels"), tiny_text, AttackContext(seed=0)
    )
    assert f.metrics["latency_amplification_p50"] > 2.0


def test_white_box_ascent_raises_activation_density(digits_cnn_target: TorchTarget, digits: Dataset) -> None:
    from aisec.attacks.availability.sponge import Sponge, activation_density

    view = digits_cnn_target.view("white-box", "labels")
    f = Sponge(repeats=10).run(view, digits, AttackContext(seed=0))
    m = f.metrics
    # measured: 0.60 vs 0.48 benign (1.25x)
    assert m["work_proxy"] == "activation density"
    assert m["work_amplification"] >= 1.1
    assert 0 < m["benign_work"] < m["crafted_work"] <= 1
    model = digits_cnn_target.view("white-box", "probabilities").model
    assert float(activation_density(model, digits.x_test[:8]).mean()) == pytest.approx(m["benign_work"], abs=0.1)


def test_budget_and_config_are_checked(tiny_text_target: SklearnTarget, tiny_text: Dataset) -> None:
    from aisec.attacks.availability.sponge import Sponge

    view = tiny_text_target.view("black-box", "labels", budget=50)
    with pytest.raises(BudgetExceededError):
        Sponge().run(view, tiny_text)
    assert view.queries == 0
    with pytest.raises(ConfigError):
        Sponge(max_chars=0)


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[ServerThread, State]]:
    with serving() as pair:
        yield pair


@pytest.mark.integration
def test_sponge_against_a_real_http_server(server: tuple[ServerThread, State], tiny_text: Dataset) -> None:
    from aisec.attacks.availability.sponge import Sponge

    srv, state = server
    before = state.inputs["spam"]
    with HttpTarget(srv.url, model_name="spam", modality="text", n_classes=2) as target:
        view = target.view("black-box", "labels", budget=2000)
        f = Sponge(max_chars=1000, repeats=20).run(view, tiny_text, AttackContext(seed=0))
    assert state.inputs["spam"] - before == f.queries == view.queries
    assert f.metrics["work_amplification"] > 10
    assert f.metrics["benign_latency_p50_ms"] > 0 and np.isfinite(f.metrics["latency_amplification_p99"])
