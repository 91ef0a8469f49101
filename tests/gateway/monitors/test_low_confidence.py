"""Low-confidence spikes and latency outliers."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from aisec.errors import ConfigError
from aisec.gateway.monitors import build_monitors
from aisec.gateway.store import MemoryStore, open_store


def _probs(top: np.ndarray) -> np.ndarray:
    return np.stack([top, 1.0 - top], axis=1)


def test_spike_of_low_confidence_is_flagged_and_normal_traffic_is_not() -> None:
    rng = np.random.default_rng(0)
    mon = build_monitors([{"name": "low-confidence", "action": "throttle"}], MemoryStore(), None)[0]
    x = np.zeros((1, 4))
    # Normal traffic: 10% of answers below 0.6 (allowed: 30% of the last 100).
    normal = np.where(rng.uniform(size=300) < 0.1, rng.uniform(0.5, 0.6, 300), rng.uniform(0.9, 1.0, 300))
    assert not any(mon.observe("k", x, _probs(np.array([p])), 0.0) for p in normal)
    # Then a burst of boundary queries: flagged once the low share of the window passes 30%.
    fired = [i for i in range(100) if mon.observe("k", x, _probs(np.array([0.52])), 0.0)]
    assert fired and 15 <= fired[0] <= 30
    alert = mon.observe("k", x, _probs(np.array([0.52])), 0.0)[0]
    assert alert.action == "throttle" and alert.score > 0.3


def test_needs_min_queries_and_is_per_key() -> None:
    mon = build_monitors([{"name": "low-confidence", "min_queries": 10}], MemoryStore(), None)[0]
    low = _probs(np.full(9, 0.5))
    assert mon.observe("a", np.zeros((9, 2)), low, 0.0) == []
    assert mon.observe("b", np.zeros((1, 2)), low[:1], 0.0) == []
    assert mon.observe("a", np.zeros((1, 2)), low[:1], 0.0)


@pytest.mark.parametrize("backend", ["memory", "redis"])
def test_concurrent_requests_of_one_key_all_land_in_the_window(backend: str, request: pytest.FixtureRequest) -> None:
    """Two gateway workers answering the same key at once: the window is appended to, nothing is lost."""
    url = request.getfixturevalue("redis_server") if backend == "redis" else None
    shared = MemoryStore()
    stores = [open_store(url) if url else shared for _ in range(4)]  # redis: one client per worker
    config = [{"name": "low-confidence", "window": 5000, "min_queries": 10}]
    monitors = [build_monitors(config, store, None)[0] for store in stores]

    def worker(mon) -> None:  # type: ignore[no-untyped-def]
        for _ in range(100):
            mon.observe("k", np.zeros((3, 2)), _probs(np.full(3, 0.9)), 0.0)

    threads = [threading.Thread(target=worker, args=(m,)) for m in monitors]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(stores[0].items("aisec:mon:low-confidence:k:confs")) == 4 * 100 * 3


def test_probs_shape_is_checked() -> None:
    from aisec.errors import InputValidationError

    mon = build_monitors([{"name": "low-confidence"}], MemoryStore(), None)[0]
    with pytest.raises(InputValidationError, match="probs"):
        mon.observe("a", np.zeros((3, 2)), np.ones((2, 2)) / 2, 0.0)


def test_latency_outlier_is_flagged_and_jitter_is_not() -> None:
    rng = np.random.default_rng(0)
    mon = build_monitors([{"name": "latency", "action": "log"}], MemoryStore(), None)[0]
    x, p = np.zeros((1, 2)), np.ones((1, 2)) / 2
    jitter = rng.lognormal(np.log(0.002), 0.3, 500)  # about 2 ms, sometimes 5 ms
    fired = sum(bool(mon.observe(f"k{i % 7}", x, p, float(t))) for i, t in enumerate(jitter))
    assert fired <= 2  # measured: 0 of 500
    (alert,) = mon.observe("slow-key", x, p, 0.080)
    assert alert.monitor == "latency" and alert.key_id == "slow-key" and "80.0 ms" in alert.message


def test_latency_scope_key_keeps_one_history_per_key() -> None:
    store = MemoryStore()
    mon = build_monitors([{"name": "latency", "scope": "key", "min_samples": 5}], store, None)[0]
    for _ in range(5):
        mon.observe("fast", np.zeros((1, 2)), np.ones((1, 2)) / 2, 0.001)
    assert mon.observe("slow", np.zeros((1, 2)), np.ones((1, 2)) / 2, 0.5) == []  # no history yet for "slow"
    assert mon.observe("fast", np.zeros((1, 2)), np.ones((1, 2)) / 2, 0.5)


@pytest.mark.parametrize(
    ("name", "bad"),
    [
        ("latency", {"scope": "global"}),
        ("latency", {"k": -1}),
        ("low-confidence", {"threshold": 1.0}),
        ("low-confidence", {"window": 1.5}),
    ],
)
def test_bad_settings_are_named(name: str, bad: dict) -> None:
    with pytest.raises(ConfigError, match=next(iter(bad))):
        build_monitors([{"name": name, **bad}], MemoryStore(), None)
