"""Gateway parts on their own: store, keys, policies, settings, audit log, alert actions, CLI."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from aisec.errors import ConfigError
from aisec.gateway.app import create_app
from aisec.gateway.audit import AuditRow, SqliteAudit
from aisec.gateway.keys import KeyStore, split_key
from aisec.gateway.policy import harden
from aisec.gateway.settings import OutputPolicy, load_settings, parse_settings
from aisec.gateway.store import MemoryStore, RedisStore, open_store
from tests.gateway.conftest import base_settings, make_keys

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

REPO = Path(__file__).resolve().parents[2]


# ------------------------------------------------------------------------------------------ store


def _store_contract(store: Any) -> None:
    assert store.incr("c") == 1 and store.incr("c", 4) == 5
    assert store.get("c") == b"5"
    assert store.get("absent") is None and store.items("absent") == []
    store.set("v", b"x")
    assert store.get("v") == b"x"
    for i in range(5):
        store.push("l", str(i).encode(), maxlen=3)
    assert store.items("l") == [b"2", b"3", b"4"]
    store.set("t", b"1", ttl_s=0.2)
    assert store.incr("w", ttl_s=0.2) == 1 and store.incr("w", ttl_s=0.2) == 2
    time.sleep(0.35)
    assert store.get("t") is None and store.incr("w", ttl_s=0.2) == 1  # the window expired and restarted
    store.delete("l")
    assert store.items("l") == []


def test_memory_store_contract_and_threads() -> None:
    store = open_store(None)
    assert isinstance(store, MemoryStore) and isinstance(open_store("memory://"), MemoryStore)
    _store_contract(store)
    threads = [threading.Thread(target=lambda: [store.incr("n") for _ in range(500)]) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert store.get("n") == b"2000"
    with pytest.raises(ConfigError, match="unknown URL scheme"):
        open_store("ftp://x")


@pytest.mark.integration
def test_redis_store_contract(redis_server: str) -> None:
    store = open_store(redis_server)
    assert isinstance(store, RedisStore) and store.ping()
    _store_contract(store)


# ------------------------------------------------------------------------------------------ keys, settings


def test_keys_are_stored_as_salted_hashes(tmp_path: Path) -> None:
    ks = KeyStore(tmp_path / "keys.json")
    t1, r1 = ks.create("predict", "a")
    t2, r2 = ks.create("predict", "b")
    text = (tmp_path / "keys.json").read_text()
    parts = split_key(t1)
    assert parts is not None
    # the whole secret (it may itself contain "_", so not the last "_"-separated fragment, which can be one
    # character that any hash in the file contains by chance)
    assert t1 not in text and parts[1] not in text and r1.salt != r2.salt
    assert ks.verify(t1) == r1 and ks.verify(t2) == r2
    assert ks.verify(t1[:-1] + ("A" if t1[-1] != "A" else "B")) is None
    assert ks.verify(f"aisec_{r1.id}_{t2.split('_')[-1]}") is None  # another key's secret
    assert ks.verify("") is None and ks.verify(None) is None
    with pytest.raises(ConfigError, match="role"):
        ks.create("root")
    with pytest.raises(ConfigError, match="no key"):
        ks.revoke("nope")


def test_settings_errors_name_the_field(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="model"):
        parse_settings({})
    with pytest.raises(ConfigError, match="mode"):
        parse_settings({"model": {"kind": "sklearn", "path": "m"}, "policies": {"default": {"mode": "everything"}}})
    with pytest.raises(ConfigError, match="unknown field"):
        parse_settings({"model": {"kind": "sklearn", "path": "m"}, "limitz": {}})
    example = load_settings(REPO / "examples" / "gateway" / "gateway.yaml")
    assert example.model.kind == "sklearn" and example.limits.per_second


# ------------------------------------------------------------------------------------------ policies


@settings(max_examples=60, deadline=None)
@given(
    probs=st.lists(st.lists(st.floats(0.01, 1.0), min_size=3, max_size=3), min_size=1, max_size=8),
    std=st.floats(0.0, 0.5),
    decimals=st.none() | st.integers(1, 4),
)
def test_noise_and_rounding_never_change_the_label(probs: list[list[float]], std: float, decimals: int | None) -> None:
    p = np.asarray(probs)
    p = p / p.sum(1, keepdims=True)
    if (np.sort(p, 1)[:, -1] - np.sort(p, 1)[:, -2]).min() < 1e-9:
        return  # a tie has no single label to keep
    out = harden(p, OutputPolicy(noise_std=std, decimals=decimals), np.random.default_rng(0))
    assert out["labels"] == p.argmax(1).tolist()
    shown = np.asarray(out["probabilities"])
    if decimals is None:
        assert shown.argmax(1).tolist() == out["labels"]
        np.testing.assert_allclose(shown.sum(1), 1.0, atol=1e-9)
    top = harden(p, OutputPolicy(mode="top-k", top_k=2, noise_std=std, decimals=decimals), np.random.default_rng(0))
    assert [c[0] for c in top["top_k"]["classes"]] == out["labels"]


# ------------------------------------------------------------------------------------------ audit


def test_audit_log_is_wal_filters_and_purges(tmp_path: Path) -> None:
    log = SqliteAudit(tmp_path / "a.sqlite", retention_days=1.0)
    log.write(AuditRow("old", "predict", 200, "answered", ts=time.time() - 3 * 86400, key_id="k"))
    log.write(AuditRow("new", "predict", 429, "rate-limited", key_id="k", alerts=["prada:block"]))
    log.write(AuditRow("other", "infer", 200, "answered", key_id="j", output_class=[1, 0]))
    assert {r["request_id"] for r in log.query()} == {"old", "new", "other"}
    assert [r["request_id"] for r in log.query(key_id="k", status=429)] == ["new"]
    assert log.query(key_id="j")[0]["output_class"] == [1, 0]
    assert log.purge() == 1 and {r["request_id"] for r in log.query()} == {"new", "other"}
    log.close()
    with sqlite3.connect(tmp_path / "a.sqlite") as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


# ------------------------------------------------------------------------------------------ monitors and alert actions


class StubMonitor:
    """Raises one alert on the ``fire_on``-th request of each key."""

    name = "stub"

    def __init__(self, fire_on: int, action: str) -> None:
        self.fire_on, self.action, self.seen = fire_on, action, {}

    def observe(self, key_id: str, x: Any, probs: np.ndarray, latency_s: float) -> list[Any]:
        from aisec.gateway.monitors.base import Alert

        self.seen[key_id] = self.seen.get(key_id, 0) + 1
        assert probs.shape == (len(x), 2) and latency_s >= 0
        if self.seen[key_id] == self.fire_on:
            return [Alert("stub", key_id, 0.97, "stub fired", self.action)]  # type: ignore[arg-type]
        return []


def _client(cancer_model_file: Path, folder: Path, **extra: Any) -> tuple[TestClient, dict[str, str], Any]:
    raw = {**base_settings(cancer_model_file, folder), **extra}
    tokens, _ = make_keys(folder / "keys.json", {"p": "predict", "aud": "auditor"})
    app = create_app(parse_settings(raw))
    return TestClient(app), tokens, app.state.gateway


@pytest.mark.parametrize(
    ("action", "override", "after"),
    [("label-only", None, "label"), ("log", "block", 403), ("throttle", None, 429), ("log", None, "full")],
)
def test_alert_actions_apply_to_the_key(
    cancer_model_file: Path, tmp_path: Path, cancer_data, action: str, override: str | None, after: object
) -> None:
    pytest.importorskip("aisec.gateway.monitors.base")
    extra: dict[str, Any] = {"limits": {"throttled_per_minute": 3}}
    if override:
        extra["alert_actions"] = {"stub": override}
    client, tokens, gw = _client(cancer_model_file, tmp_path, **extra)
    gw.monitors = [StubMonitor(fire_on=2, action=action)]
    body = {"inputs": cancer_data[0][:2].tolist()}
    h = {"X-API-Key": tokens["p"]}
    first, second = client.post("/predict", json=body, headers=h), client.post("/predict", json=body, headers=h)
    assert first.status_code == second.status_code == 200 and "probabilities" in second.json()
    rows = client.get("/audit", headers={"X-API-Key": tokens["aud"]}).json()["rows"]
    fired = next(r for r in rows if r["request_id"] == second.headers["X-Request-ID"])
    assert fired["monitor_scores"] == {"stub": pytest.approx(0.97)}
    assert fired["alerts"] == [f"stub:{override or action}"]
    metrics = client.get("/metrics", headers={"X-API-Key": tokens["aud"]}).text
    assert f'aisec_gateway_alerts_total{{action="{override or action}",monitor="stub"}} 1.0' in metrics
    later = client.post("/predict", json=body, headers=h)
    if after == "label":
        assert later.status_code == 200 and set(later.json()) == {"labels"}
    elif after == "full":
        assert later.status_code == 200 and "probabilities" in later.json()
    elif after == 429:  # throttled to 3 per minute: the 3rd request since the alert is the last one
        more = [client.post("/predict", json=body, headers=h) for _ in range(3)]
        assert [later.status_code] + [r.status_code for r in more] == [200, 200, 200, 429]
        assert more[-1].json()["rule"] == "throttled" and int(more[-1].headers["Retry-After"]) >= 1
    else:
        assert later.status_code == after


def test_configured_monitors_are_built_and_fed(cancer_model_file: Path, tmp_path: Path, cancer_data) -> None:
    pytest.importorskip("aisec.gateway.monitors")
    monitors = [{"name": "low-confidence", "min_queries": 30}, {"name": "latency"}]
    client, tokens, gw = _client(cancer_model_file, tmp_path, monitors=monitors)
    assert [m.name for m in gw.monitors] == ["low-confidence", "latency"]
    r = client.post("/predict", json={"inputs": cancer_data[0][:4].tolist()}, headers={"X-API-Key": tokens["p"]})
    assert r.status_code == 200


def test_a_crashing_monitor_does_not_fail_the_request(cancer_model_file: Path, tmp_path: Path, cancer_data) -> None:
    client, tokens, gw = _client(cancer_model_file, tmp_path)

    class Broken:
        name = "broken"

        def observe(self, *a: Any) -> list[Any]:
            raise RuntimeError("bug in a monitor")

    gw.monitors = [Broken()]
    r = client.post("/predict", json={"inputs": cancer_data[0][:1].tolist()}, headers={"X-API-Key": tokens["p"]})
    assert r.status_code == 200


# ------------------------------------------------------------------------------------------ CLI


def test_cli_keys_and_audit(cancer_model_file: Path, tmp_path: Path, cancer_data) -> None:
    from aisec.cli.serve import standalone

    app = standalone()
    runner = CliRunner()
    config = tmp_path / "gateway.yaml"
    config.write_text(json.dumps(base_settings(cancer_model_file, tmp_path)))  # JSON is YAML
    created = runner.invoke(app, ["keys", "create", "--config", str(config), "--role", "predict", "--name", "ci"])
    assert created.exit_code == 0, created.output
    token = next(line.split()[-1] for line in created.output.splitlines() if line.startswith("key:"))
    key_id = next(line.split()[-1] for line in created.output.splitlines() if line.startswith("id:"))
    listed = runner.invoke(app, ["keys", "list", "--config", str(config)])
    assert key_id in listed.output and "active" in listed.output and token not in listed.output

    client = TestClient(create_app(load_settings(config)))
    assert (
        client.post("/predict", json={"inputs": cancer_data[0][:2].tolist()}, headers={"X-API-Key": token}).status_code
        == 200
    )
    assert client.post("/predict", json={"inputs": []}, headers={"X-API-Key": token}).status_code == 422
    out = runner.invoke(app, ["audit", "--config", str(config), "--json", "--since", "1h"])
    rows = [json.loads(line) for line in out.output.splitlines() if line.startswith("{")]
    assert [r["status"] for r in rows] == [422, 200] and all(r["key_id"] == key_id for r in rows)
    only = runner.invoke(app, ["audit", "--config", str(config), "--status", "200"])
    assert only.exit_code == 0 and len([ln for ln in only.output.splitlines() if " 200 " in ln]) == 1

    revoked = runner.invoke(app, ["keys", "revoke", "--config", str(config), key_id])
    assert revoked.exit_code == 0 and "revoked" in runner.invoke(app, ["keys", "list", "--config", str(config)]).output
    assert (
        client.post("/predict", json={"inputs": cancer_data[0][:2].tolist()}, headers={"X-API-Key": token}).status_code
        == 401
    )
    bad = runner.invoke(app, ["audit", "--config", str(config), "--since", "yesterday"])
    assert bad.exit_code != 0
