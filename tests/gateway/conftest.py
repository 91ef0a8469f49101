"""Fixtures for the gateway tests: a model file, keys, and real gateway processes on loopback ports.

``start_gateway`` writes a settings file, starts ``python -m aisec.cli.serve serve`` (uvicorn) on a
free port and waits until ``/v2/health/ready`` answers; ``redis_server`` starts a private
``redis-server`` on a free port (skipped when the binary is absent).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import joblib
import numpy as np
import pytest
import torch
import yaml
from sklearn.linear_model import LogisticRegression

from aisec.data import Dataset
from aisec.gateway.keys import KeyStore

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class GatewayProc:
    """A running gateway process."""

    url: str
    proc: subprocess.Popen[bytes]
    config: Path
    settings: dict[str, Any]
    log: Path | None = None
    keys: dict[str, str] = field(default_factory=dict)  # name -> token
    ids: dict[str, str] = field(default_factory=dict)  # name -> key id

    def wait_ready(self) -> None:
        assert self.log is not None
        _wait_ready(self.url, self.proc, self.log)

    def headers(self, name: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[name]}"}

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


@pytest.fixture(scope="session")
def cancer_data(cancer: Dataset) -> tuple[np.ndarray, np.ndarray]:
    assert isinstance(cancer.x_test, torch.Tensor)
    return cancer.x_test.numpy().astype(np.float64), cancer.y_test.numpy()


@pytest.fixture(scope="session")
def cancer_model_file(cancer: Dataset, tmp_path_factory: pytest.TempPathFactory) -> Path:
    assert isinstance(cancer.x_train, torch.Tensor)
    model = LogisticRegression(max_iter=1000, random_state=0).fit(cancer.x_train.numpy(), cancer.y_train.numpy())
    path = tmp_path_factory.mktemp("model") / "cancer.joblib"
    joblib.dump(model, path)
    return path


def base_settings(model_file: Path, folder: Path) -> dict[str, Any]:
    return {
        "model": {"kind": "sklearn", "path": str(model_file), "trust": True, "input_shape": [30], "name": "cancer"},
        "keys_file": str(folder / "keys.json"),
        "audit": {"path": str(folder / "audit.sqlite")},
        "inputs": {"max_body_bytes": 20_000, "max_batch": 16, "value_range": [-20.0, 20.0]},
    }


def _wait_ready(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"gateway exited with {proc.returncode}: {log.read_text()[-2000:]}")
        try:
            if httpx.get(f"{url}/v2/health/ready", timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    proc.kill()
    raise RuntimeError(f"gateway not ready after {timeout} s: {log.read_text()[-2000:]}")


def launch(folder: Path, settings: dict[str, Any], *, port: int | None = None, wait: bool = True) -> GatewayProc:
    """Write ``settings`` to ``folder/gateway.yaml`` and start a gateway on it (ready unless ``wait=False``)."""
    folder.mkdir(parents=True, exist_ok=True)
    config = folder / "gateway.yaml"
    config.write_text(yaml.safe_dump(settings), encoding="utf-8")
    port = port or free_port()
    log = folder / f"gateway-{port}.log"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO / "src")}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "aisec.cli.serve",
            "serve",
            "--config",
            str(config),
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        env=env,
        cwd=folder,
    )
    gw = GatewayProc(url=f"http://127.0.0.1:{port}", proc=proc, config=config, settings=settings, log=log)
    if wait:
        gw.wait_ready()
    return gw


def make_keys(keys_file: Path, names: dict[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """Create keys ``name -> role``; returns (tokens, ids) by name."""
    store = KeyStore(keys_file)
    tokens, ids = {}, {}
    for name, role in names.items():
        token, record = store.create(role, name)
        tokens[name], ids[name] = token, record.id
    return tokens, ids


@pytest.fixture
def start_gateway(tmp_path: Path) -> Iterator[Callable[..., GatewayProc]]:
    """Start gateways for one test; all are stopped afterwards."""
    procs: list[GatewayProc] = []

    def start(folder: Path, settings: dict[str, Any], **kw: Any) -> GatewayProc:
        gw = launch(folder, settings, **kw)
        procs.append(gw)
        return gw

    yield start
    for gw in procs:
        gw.stop()


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[str]:
    """A private redis-server on a free loopback port; its URL."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed (apt-get install redis-server)")
    port = free_port()
    proc = subprocess.Popen(
        [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(tmp_path),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    import redis

    client = redis.Redis(port=port)
    deadline = time.monotonic() + 10
    while True:
        try:
            client.ping()
            break
        except redis.ConnectionError:
            if time.monotonic() > deadline:
                proc.kill()
                raise
            time.sleep(0.05)
    yield f"redis://127.0.0.1:{port}/0"
    client.close()
    proc.terminate()
    proc.wait(10)
