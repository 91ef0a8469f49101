"""The registry, settings errors, input conversion and the store helpers shared by the monitors."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from aisec.errors import ConfigError, InputValidationError
from aisec.gateway.monitors import MONITORS, Alert, Monitor, build_monitors
from aisec.gateway.monitors.base import as_features, push_rows, read_rows
from aisec.gateway.store import MemoryStore


def test_registry_names_every_monitor() -> None:
    assert sorted(MONITORS) == ["drift", "latency", "low-confidence", "prada", "probing"]


def test_build_monitors_makes_protocol_objects_in_order() -> None:
    ref = np.random.default_rng(0).normal(size=(300, 5))
    config = [{"name": n} for n in ("latency", "prada", "probing", "low-confidence", "drift")]
    mons = build_monitors(config, MemoryStore(), ref)
    assert [m.name for m in mons] == ["latency", "prada", "probing", "low-confidence", "drift"]
    assert all(isinstance(m, Monitor) for m in mons)
    x = ref[:4]
    assert all(m.observe("k", x, np.full((4, 3), 1 / 3), 0.001) == [] for m in mons)


@pytest.mark.parametrize(
    ("config", "match"),
    [
        ({"name": "nope"}, "allowed: \\['drift'"),
        ({"action": "log"}, "name"),
        ({"name": "prada", "window_size": 3}, "window_size"),
        ({"name": "probing", "action": "ban"}, "action"),
    ],
)
def test_bad_configs_name_the_problem(config: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        build_monitors([config], MemoryStore(), None)


def test_config_must_be_a_list() -> None:
    with pytest.raises(ConfigError, match="list"):
        build_monitors({"name": "prada"}, MemoryStore(), None)  # type: ignore[arg-type]


def test_alert_is_frozen() -> None:
    alert = Alert(monitor="prada", key_id="k", score=0.5, message="m", action="block")
    with pytest.raises(dataclasses.FrozenInstanceError):
        alert.score = 0.0  # type: ignore[misc]


def test_as_features_flattens_and_hashes() -> None:
    assert as_features(np.zeros((3, 1, 8, 8))).shape == (3, 64)
    assert as_features(np.zeros(5)).shape == (1, 5)
    t = as_features(["Hello there", "hello there", "something else entirely"])
    assert t.shape == (3, 256) and np.allclose(np.linalg.norm(t, axis=1), 1.0)
    assert np.allclose(t[0], t[1]) and np.linalg.norm(t[0] - t[2]) > 1.0
    with pytest.raises(InputValidationError, match="x"):
        as_features(["ok", 3])  # type: ignore[list-item]


def test_rows_round_trip_through_the_store_and_stay_bounded() -> None:
    store = MemoryStore()
    rows = np.arange(40, dtype=np.float64).reshape(10, 4)
    push_rows(store, "r", rows, maxlen=6)
    store.push("r", b"odd", 6)  # a row of another width (e.g. after a model change) is skipped
    back = read_rows(store, "r", 4)
    assert back.shape == (5, 4) and np.array_equal(back, rows[5:])
    assert read_rows(store, "absent", 4).shape == (0, 4)
