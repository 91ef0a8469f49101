"""Probing: many near-duplicates of one input are flagged; benign clients replaying test images are not."""

from __future__ import annotations

import numpy as np
import pytest

from aisec.data import Dataset
from aisec.errors import ConfigError
from aisec.gateway.monitors import build_monitors
from aisec.gateway.store import MemoryStore
from tests.gateway.monitors.streams import benign_stream, first_alert

PROBS = lambda q: np.full((len(q), 10), 0.1)  # noqa: E731 - the probing monitor ignores outputs


def _probing(**kw):
    return build_monitors([{"name": "probing", **kw}], MemoryStore(), None)[0]


def test_benign_clients_are_not_flagged(digits: Dataset) -> None:
    # Measured: 0 of 20 clients; distinct test digits are >= 0.079 RMS apart, the radius is 0.05.
    x_test = digits.x_test.numpy()
    fired = [first_alert(_probing(), f"c{c}", benign_stream(x_test, 300, c), PROBS) for c in range(20)]
    assert sum(f is not None for f in fired) <= 1


@pytest.mark.parametrize("seed", range(3))
def test_near_duplicates_around_one_input_are_flagged(digits: Dataset, seed: int) -> None:
    # A decision-based attacker's steps: perturbations of at most 0.03 per pixel around one digit.
    rng = np.random.default_rng(seed)
    x0 = digits.x_test.numpy()[seed].reshape(-1)
    stream = np.clip(x0 + rng.uniform(-0.03, 0.03, (100, x0.size)), 0.0, 1.0)
    n = first_alert(_probing(), "attacker", stream, PROBS)
    assert n == 21  # the 21st query has 20 earlier neighbours within the radius


def test_probing_mixed_into_benign_traffic_is_flagged(digits: Dataset) -> None:
    x_test = digits.x_test.numpy().reshape(len(digits.x_test), -1)
    rng = np.random.default_rng(0)
    probes = np.clip(x_test[0] + rng.uniform(-0.02, 0.02, (60, 64)), 0, 1)
    stream = np.vstack([np.vstack([x_test[1 + i], probes[i]]) for i in range(60)])  # interleaved 1:1
    n = first_alert(_probing(), "k", stream, PROBS)
    assert n is not None and n <= 2 * 21


def test_text_near_duplicates_are_flagged() -> None:
    mon = _probing(min_neighbors=5)
    base = "win a free prize now by calling this number today"
    texts = [base.replace("free", f"fr{c}e") for c in "aeiouxyz"]
    alerts = [mon.observe("t", [t], np.array([[0.5, 0.5]]), 0.0) for t in texts]
    other = _probing(min_neighbors=5)
    benign = [
        "see you at six",
        "the film starts at nine",
        "call me when home",
        "dinner is ready",
        "lost my keys",
        "meeting moved to friday",
        "happy birthday",
        "running late sorry",
    ]
    assert any(alerts) and not any(other.observe("t", [t], np.array([[0.5, 0.5]]), 0.0) for t in benign)


def test_window_bounds_the_state() -> None:
    store = MemoryStore()
    mon = build_monitors([{"name": "probing", "window": 30, "min_neighbors": 10}], store, None)[0]
    mon.observe("k", np.random.default_rng(0).uniform(size=(100, 8)), np.ones((100, 2)) / 2, 0.0)
    assert len(store.items("aisec:mon:probing:k:q")) == 30


def test_min_neighbors_above_window_is_refused() -> None:
    with pytest.raises(ConfigError, match="min_neighbors"):
        _probing(window=10, min_neighbors=11)
