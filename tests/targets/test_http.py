"""HttpTarget against a real FastAPI server on a loopback port (see ``v2_server.py``)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import numpy as np
import pytest
import torch

from aisec.core.config import TargetSpec
from aisec.core.goals import Capability
from aisec.data import Dataset, load_breast_cancer
from aisec.errors import (
    BudgetExceededError,
    ConfigError,
    InputValidationError,
    TargetUnavailableError,
    UnsupportedTargetError,
)
from aisec.targets import load_target
from aisec.targets.http import HttpTarget

from .v2_server import TEXTS, ServerThread, State, create_app, fit_models, free_port

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def state() -> State:
    cancer, spam = fit_models()
    return State(cancer=cancer, spam=spam)


@pytest.fixture(scope="module")
def server(state: State) -> Iterator[ServerThread]:
    srv = ServerThread(create_app(state)).start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def data() -> Dataset:
    return load_breast_cancer(seed=0)


def cancer(server: ServerThread, **kwargs: object) -> HttpTarget:
    kwargs = {"model_name": "cancer", "modality": "tabular", "n_classes": 2, "input_shape": (30,), **kwargs}
    return HttpTarget(server.url, **kwargs)  # type: ignore[arg-type]


def expected(state: State, x: torch.Tensor) -> np.ndarray:
    return state.cancer.predict_proba(x.numpy().astype(np.float64))


def test_v2_probabilities_match_the_served_model(server: ServerThread, state: State, data: Dataset) -> None:
    x = data.x_test[:20]
    with cancer(server) as target:
        assert target.ready()
        view = target.view("black-box", "probabilities", budget=100)
        probs = view.predict_proba(x)
        assert probs.dtype == torch.float64 and probs.shape == (20, 2)
        np.testing.assert_allclose(probs.numpy(), expected(state, x), atol=1e-6)
        assert torch.equal(view.predict(x), torch.from_numpy(expected(state, x).argmax(1)))
        assert view.queries == 40
        assert target.requests_sent == 2
        assert target.returns == "probabilities"
        assert Capability.PROBABILITIES in view.capabilities


def test_batches_split_requests_and_count_queries(server: ServerThread, state: State, data: Dataset) -> None:
    x = data.x_test[:70]
    before = state.inputs["cancer"]
    with cancer(server, batch_size=32) as target:
        view = target.view("black-box", "probabilities", budget=1000)
        probs = view.predict_proba(x)
        assert target.requests_sent == 3
        assert view.queries == 70
        assert state.inputs["cancer"] - before == 70
        np.testing.assert_allclose(probs.numpy(), expected(state, x), atol=1e-6)


def test_budget_refuses_before_anything_is_sent(server: ServerThread, state: State, data: Dataset) -> None:
    with cancer(server) as target:
        view = target.view("black-box", "probabilities", budget=50)
        view.predict_proba(data.x_test[:40])
        hits, received = state.hits["cancer"], state.inputs["cancer"]
        with pytest.raises(BudgetExceededError):
            view.predict_proba(data.x_test[:20])
        assert view.queries == 40
        assert target.requests_sent == 1
        assert (state.hits["cancer"], state.inputs["cancer"]) == (hits, received)
        view.predict(data.x_test[:10])  # what is left can still be spent
        assert view.queries == 50


@pytest.mark.parametrize("status", [429, 503])
def test_retries_on_429_and_5xx_then_succeed(server: ServerThread, state: State, data: Dataset, status: int) -> None:
    state.flaky_status, state.flaky_failures = status, 2
    hits = state.hits["flaky"]
    x = data.x_test[:5]
    # 429 comes with "Retry-After: 0", which must win over the (long) exponential backoff
    backoff = 5.0 if status == 429 else 0.01
    with HttpTarget(
        f"{server.url}/flaky", model_name="cancer", modality="tabular", n_classes=2, retries=3, backoff=backoff
    ) as target:
        view = target.view("black-box", "probabilities", budget=5)
        start = time.monotonic()
        probs = view.predict_proba(x)
        assert time.monotonic() - start < 2
        np.testing.assert_allclose(probs.numpy(), expected(state, x), atol=1e-6)
        assert target.requests_sent == 3
        assert state.hits["flaky"] - hits == 3
        assert view.queries == 5


def test_retries_exhausted_raise_target_unavailable(server: ServerThread, state: State, data: Dataset) -> None:
    state.flaky_status, state.flaky_failures = 503, 10
    try:
        with HttpTarget(
            f"{server.url}/flaky", model_name="cancer", modality="tabular", n_classes=2, retries=2, backoff=0.0
        ) as target:
            with pytest.raises(TargetUnavailableError, match=r"HTTP 503 after 3 attempt"):
                target.view("black-box", "labels").predict(data.x_test[:3])
            assert target.requests_sent == 3
    finally:
        state.flaky_failures = 0


def test_unreachable_url_fails_fast_with_one_line(data: Dataset) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    start = time.monotonic()
    with HttpTarget(url, model_name="m", modality="tabular", n_classes=2, timeout=0.5, retries=1, backoff=0.01) as t:
        assert not t.ready()
        with pytest.raises(TargetUnavailableError) as info:
            t.view("black-box", "probabilities").predict_proba(data.x_test[:2])
        assert t.requests_sent == 2
    assert time.monotonic() - start < 5
    message = str(info.value)
    assert url in message and "\n" not in message and "2 attempt" in message
    assert info.value.__cause__ is None and info.value.__suppress_context__


def test_errors_and_reports_hide_credentials_in_the_url(data: Dataset) -> None:
    port = free_port()
    url = f"http://user:secret@127.0.0.1:{port}/predict?api_key=secret"
    with HttpTarget(url, protocol="json", modality="tabular", n_classes=2, timeout=0.5, retries=0) as target:
        with pytest.raises(TargetUnavailableError) as info:
            target.view("black-box", "labels").predict(data.x_test[:1])
        assert f"127.0.0.1:{port}/predict" in str(info.value)
        assert "secret" not in str(info.value) and "secret" not in str(target.describe())


def test_timeout_raises_target_unavailable(server: ServerThread, data: Dataset) -> None:
    start = time.monotonic()
    with (
        HttpTarget(
            f"{server.url}/slow", protocol="json", modality="tabular", n_classes=2, timeout=0.2, retries=0
        ) as target,
        pytest.raises(TargetUnavailableError, match=r"did not answer within 0.2 s"),
    ):
        target.view("black-box", "labels").predict(data.x_test[:2])
    assert time.monotonic() - start < 1.5


def test_labels_only_server(server: ServerThread, state: State, data: Dataset) -> None:
    x = data.x_test[:25]
    with cancer(server, model_name="cancer-labels") as target:
        assert target.returns is None  # not known before the first answer
        view = target.view("black-box", "probabilities", budget=100)
        labels = view.predict(x)
        assert labels.dtype == torch.long
        assert torch.equal(labels, torch.from_numpy(state.cancer.predict(x.numpy().astype(np.float64))))
        assert target.returns == "labels"
        assert Capability.PROBABILITIES not in target.capabilities
        assert Capability.PROBABILITIES not in view.capabilities
        sent = target.requests_sent
        with pytest.raises(UnsupportedTargetError, match="probabilities"):
            view.predict_proba(x)
        assert target.requests_sent == sent  # refused by the view, nothing sent


def test_declared_labels_only_refuses_probabilities_before_any_query(server: ServerThread, data: Dataset) -> None:
    with cancer(server, model_name="cancer-labels", returns="labels") as target:
        view = target.view("black-box", "probabilities", budget=10)
        with pytest.raises(UnsupportedTargetError):
            view.predict_proba(data.x_test[:3])
        assert view.queries == 0 and target.requests_sent == 0


def test_labels_only_discovered_by_a_probability_query(server: ServerThread, data: Dataset) -> None:
    with cancer(server, model_name="cancer-labels") as target:
        view = target.view("black-box", "probabilities", budget=10)
        with pytest.raises(UnsupportedTargetError):
            view.predict_proba(data.x_test[:3])
        assert target.returns == "labels"
        assert len(view.predict(data.x_test[:3])) == 3


def test_plain_json_protocol(server: ServerThread, state: State, data: Dataset) -> None:
    x = data.x_test[:30]
    with HttpTarget(
        f"{server.url}/predict", protocol="json", modality="tabular", n_classes=2, input_shape=(30,), batch_size=16
    ) as target:
        view = target.view("black-box", "probabilities", budget=30)
        np.testing.assert_allclose(view.predict_proba(x).numpy(), expected(state, x), atol=1e-6)
        assert target.requests_sent == 2
    with HttpTarget(f"{server.url}/labels", protocol="json", modality="tabular", n_classes=2) as target:
        labels = target.view("black-box", "labels").predict(x)
        assert torch.equal(labels, torch.from_numpy(state.cancer.predict(x.numpy().astype(np.float64))))
        assert Capability.PROBABILITIES not in target.capabilities


def test_text_inputs_over_v2_bytes(server: ServerThread, state: State) -> None:
    texts = [*TEXTS[:3], "free cash prize, call now", "see you at dinner tonight"]
    with HttpTarget(server.url, model_name="spam", modality="text", n_classes=2, batch_size=2) as target:
        view = target.view("black-box", "probabilities", budget=10)
        probs = view.predict_proba(texts)
        np.testing.assert_allclose(probs.numpy(), state.spam.predict_proba(texts), atol=1e-6)
        assert target.requests_sent == 3 and view.queries == 5
        with pytest.raises(InputValidationError):
            view.predict_proba(["ok", 3])


def test_client_errors_and_malformed_answers(server: ServerThread, data: Dataset) -> None:
    x = data.x_test[:2]
    with cancer(server, model_name="nope", retries=3) as target:
        with pytest.raises(TargetUnavailableError, match=r"HTTP 404.*model nope not found"):
            target.view("black-box", "labels").predict(x)
        assert target.requests_sent == 1  # a 404 is not retried
    for route, reason in (("garbage", "no 'probabilities' or 'labels' key"), ("not-json", "not JSON")):
        target = HttpTarget(f"{server.url}/{route}", protocol="json", modality="tabular", n_classes=2)
        with target, pytest.raises(TargetUnavailableError, match=reason):
            target.view("black-box", "labels").predict(x)
    with cancer(server, n_classes=3) as target, pytest.raises(TargetUnavailableError, match="malformed"):
        target.view("black-box", "probabilities").predict_proba(x)


def test_inputs_are_checked_before_sending(server: ServerThread) -> None:
    with cancer(server) as target:
        view = target.view("black-box", "probabilities", budget=10)
        with pytest.raises(InputValidationError, match="shape"):
            view.predict_proba(torch.zeros(2, 29))
        assert target.requests_sent == 0 and view.queries == 0


def test_constructor_checks() -> None:
    with pytest.raises(ConfigError, match="model_name"):
        HttpTarget("http://127.0.0.1:1", modality="tabular", n_classes=2)
    with pytest.raises(ConfigError, match=r"^target\.protocol: 'grpc' is not allowed; allowed: v2, json$"):
        HttpTarget("http://127.0.0.1:1", protocol="grpc", modality="tabular", n_classes=2)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="url"):
        HttpTarget("127.0.0.1:1", protocol="json", modality="tabular", n_classes=2)
    with pytest.raises(InputValidationError, match="batch_size"):
        HttpTarget("http://127.0.0.1:1", protocol="json", modality="tabular", n_classes=2, batch_size=0)


def test_load_target_builds_an_http_target(server: ServerThread, state: State, data: Dataset) -> None:
    spec = TargetSpec(kind="http", url=server.url, model_name="cancer", batch_size=8, headers={"X-Api-Key": "k"})
    target = load_target(spec, data)
    try:
        assert isinstance(target, HttpTarget)
        assert target.input_shape == (30,) and target.n_classes == 2 and target.batch_size == 8
        assert target.describe()["url"] == server.url and "headers" not in target.describe()
        x = data.x_test[:10]
        probs = target.view("black-box", "probabilities", budget=10).predict_proba(x)
        np.testing.assert_allclose(probs.numpy(), expected(state, x), atol=1e-6)
        assert target.requests_sent == 2
    finally:
        target.close()


def test_hardened_answers_are_read_as_an_attacker_would() -> None:
    """Rounded scores are renormalised; a top-k answer becomes rows with zeros beyond the k classes."""
    target = HttpTarget("http://127.0.0.1:9", protocol="v2", model_name="m", modality="tabular", n_classes=3)
    probs = target._probabilities([[0.7, 0.2, 0.0], [0.3, 0.3, 0.3]], 2)  # rounded to 1 decimal
    assert torch.allclose(probs.sum(1), torch.ones(2, dtype=probs.dtype))
    assert probs[0].argmax() == 0 and probs[0, 2] == 0
    body = {
        "outputs": [
            {"name": "labels", "shape": [2], "datatype": "INT64", "data": [2, 0]},
            {"name": "top_k_classes", "shape": [2, 2], "datatype": "INT64", "data": [2, 1, 0, 2]},
            {"name": "top_k_scores", "shape": [2, 2], "datatype": "FP32", "data": [0.6, 0.3, 0.5, 0.4]},
        ]
    }
    kind, rows = target._decode_v2(body, 2)
    assert kind == "probabilities"
    np.testing.assert_allclose(rows.numpy(), [[0.0, 0.3, 0.6], [0.5, 0.0, 0.4]], atol=1e-6)
    for bad in ([[-0.2, 0.7, 0.5]], [[0.0, 0.0, 0.0]], [[2.0, 3.0, 1.0]]):  # logits, an empty row, raw scores
        with pytest.raises(TargetUnavailableError, match="not probabilities"):
            target._probabilities(bad, 1)
    target.close()
