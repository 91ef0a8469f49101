"""Two gateway processes on one real redis-server share one count; a kill -9 loses no acknowledged row."""

from __future__ import annotations

import os
import signal
import sqlite3
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest

from tests.gateway.conftest import base_settings, free_port, make_keys

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_two_replicas_on_one_redis_admit_exactly_the_limit(
    start_gateway, redis_server: str, cancer_model_file: Path, tmp_path: Path, cancer_data
) -> None:
    limit, sent = 37, 120
    settings = base_settings(cancer_model_file, tmp_path)
    settings["store_url"] = redis_server
    settings["limits"] = {"queries_per_day": limit}
    tokens, _ = make_keys(tmp_path / "keys.json", {"client": "predict"})
    a = start_gateway(tmp_path / "a", {**settings, "audit": {"path": str(tmp_path / "a.sqlite")}}, wait=False)
    b = start_gateway(tmp_path / "b", {**settings, "audit": {"path": str(tmp_path / "b.sqlite")}}, wait=False)
    a.wait_ready()
    b.wait_ready()
    body = {"inputs": cancer_data[0][:1].tolist()}
    headers = {"X-API-Key": tokens["client"]}

    def hit(i: int) -> int:
        url = (a if i % 2 else b).url
        return httpx.post(f"{url}/predict", json=body, headers=headers, timeout=30).status_code

    with ThreadPoolExecutor(16) as pool:
        codes = list(pool.map(hit, range(sent)))
    assert codes.count(200) == limit, codes
    assert codes.count(429) == sent - limit
    # Both replicas answered some of them.
    for db in ("a.sqlite", "b.sqlite"):
        with sqlite3.connect(tmp_path / db) as conn:
            assert conn.execute("SELECT COUNT(*) FROM audit WHERE status = 200").fetchone()[0] > 0

    # An alert action set through one replica (here by an admin call) is seen by the other.
    admin, ids = make_keys(tmp_path / "keys.json", {"admin": "admin", "other": "predict"})
    r = httpx.put(
        f"{a.url}/admin/keys/{ids['other']}/action", json={"action": "block"}, headers={"X-API-Key": admin["admin"]}
    )
    assert r.status_code == 200
    assert httpx.post(f"{b.url}/predict", json=body, headers={"X-API-Key": admin["other"]}).status_code == 403


def test_kill_9_under_load_keeps_every_acknowledged_row(
    start_gateway, cancer_model_file: Path, tmp_path: Path, cancer_data
) -> None:
    settings = base_settings(cancer_model_file, tmp_path)
    tokens, _ = make_keys(tmp_path / "keys.json", {"client": "predict"})
    gw = start_gateway(tmp_path, settings, port=free_port())
    x = cancer_data[0]
    acknowledged: list[str] = []
    lock = threading.Lock()
    stop = threading.Event()

    def client(seed: int) -> None:
        rng = np.random.default_rng(seed)
        with httpx.Client(base_url=gw.url, headers={"X-API-Key": tokens["client"]}, timeout=5) as c:
            while not stop.is_set():
                n = int(rng.integers(1, 8))
                try:
                    r = c.post("/predict", json={"inputs": x[:n].tolist()})
                except httpx.HTTPError:
                    return
                if r.status_code == 200:
                    with lock:
                        acknowledged.append(r.headers["X-Request-ID"])

    threads = [threading.Thread(target=client, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 40
    while len(acknowledged) < 150 and time.monotonic() < deadline:
        time.sleep(0.05)
    os.kill(gw.proc.pid, signal.SIGKILL)
    gw.proc.wait(10)
    stop.set()
    for t in threads:
        t.join(10)
    assert len(acknowledged) >= 150
    with sqlite3.connect(tmp_path / "audit.sqlite") as conn:
        stored = {r[0]: r[1] for r in conn.execute("SELECT request_id, status FROM audit")}
    missing = [rid for rid in acknowledged if rid not in stored]
    assert not missing, f"{len(missing)} of {len(acknowledged)} acknowledged requests have no audit row"
    assert all(stored[rid] == 200 for rid in acknowledged)


def test_a_lost_redis_gives_503_not_500(
    start_gateway, redis_server: str, cancer_model_file: Path, tmp_path: Path, cancer_data
) -> None:
    import redis

    settings = base_settings(cancer_model_file, tmp_path)
    settings["store_url"] = redis_server
    settings["limits"] = {"per_second": 100}
    tokens, _ = make_keys(tmp_path / "keys.json", {"client": "predict"})
    gw = start_gateway(tmp_path / "gw", settings)
    body, headers = {"inputs": cancer_data[0][:1].tolist()}, {"X-API-Key": tokens["client"]}
    assert httpx.post(f"{gw.url}/predict", json=body, headers=headers).status_code == 200
    redis.Redis.from_url(redis_server).shutdown(nosave=True)
    r = httpx.post(f"{gw.url}/predict", json=body, headers=headers, timeout=30)
    assert r.status_code == 503 and r.headers["Retry-After"] == "1"
    assert httpx.get(f"{gw.url}/v2/health/ready").status_code == 503
