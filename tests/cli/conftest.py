"""Model files for the CLI tests, built once per session in a temporary folder.

- ``digits_cnn``: a tiny CNN trained on ``load_digits(seed=0)``'s train split, traced with
  ``torch.jit.trace`` for inputs of shape (N, 1, 8, 8) (TorchScript: loads without ``trust``).
- ``pickled_cnn``: the same kind of model saved whole with ``torch.save`` (a pickle).
- ``cancer_logreg``: a scikit-learn logistic regression on breast cancer (30 features), joblib.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from torch import nn

from aisec.data import load_breast_cancer, load_digits

REPO = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Models:
    """Paths of the model files the specs point at."""

    digits_cnn: Path
    pickled_cnn: Path
    cancer_logreg: Path
    digits_accuracy: float


@dataclass(frozen=True)
class Result:
    """What one ``aisec`` process did."""

    args: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str
    seconds: float


def _cnn() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(8 * 4 * 4, 10),
    )


def train_digits_cnn(steps: int = 300, seed: int = 0) -> tuple[nn.Module, float]:
    """A few hundred Adam steps on minibatches of 64 (about a second on a CPU); returns test accuracy too."""
    torch.manual_seed(seed)
    data = load_digits(seed=seed)
    assert isinstance(data.x_train, torch.Tensor) and isinstance(data.x_test, torch.Tensor)
    model = _cnn()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        idx = torch.randint(0, len(data.y_train), (64,), generator=gen)
        opt.zero_grad()
        nn.functional.cross_entropy(model(data.x_train[idx]), data.y_train[idx]).backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        acc = (model(data.x_test).argmax(1) == data.y_test).float().mean().item()
    return model, acc


@pytest.fixture(scope="session")
def models(tmp_path_factory: pytest.TempPathFactory) -> Models:
    import joblib
    from sklearn.linear_model import LogisticRegression

    root = tmp_path_factory.mktemp("models")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a tiny model trains fastest on one thread (and others may be busy)
    try:
        model, acc = train_digits_cnn()
    finally:
        torch.set_num_threads(threads)
    traced = torch.jit.trace(model, torch.zeros(1, 1, 8, 8))
    digits_cnn = root / "digits_cnn.pt"
    torch.jit.save(traced, str(digits_cnn))
    pickled = root / "digits_cnn_pickled.pt"
    torch.save(model, pickled)
    cancer = load_breast_cancer(seed=0)
    assert isinstance(cancer.x_train, torch.Tensor)
    logreg = LogisticRegression(max_iter=1000).fit(cancer.x_train.numpy(), cancer.y_train.numpy())
    cancer_logreg = root / "cancer_logreg.joblib"
    joblib.dump(logreg, cancer_logreg)
    return Models(digits_cnn=digits_cnn, pickled_cnn=pickled, cancer_logreg=cancer_logreg, digits_accuracy=acc)


def write_spec(path: Path, spec: dict[str, Any] | str) -> Path:
    """Write a spec (a mapping, dumped as YAML, or raw text) and return its path."""
    path.write_text(spec if isinstance(spec, str) else yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    return path


def digits_spec(models: Models, **changes: Any) -> dict[str, Any]:
    """A valid spec for the traced digits CNN: white-box, fgsm at eps 0.1 and loss-threshold."""
    spec: dict[str, Any] = {
        "name": "cli-digits",
        "target": {"kind": "torch", "path": str(models.digits_cnn)},
        "data": {"kind": "digits", "seed": 0},
        "threat_model": {
            "knowledge": "white-box",
            "output": "probabilities",
            "query_budget": 20000,
            "needs": {"integrity": "high", "privacy": "normal"},
        },
        "attacks": [{"name": "fgsm", "eps": 0.1, "n_samples": 200}, {"name": "loss-threshold", "n_samples": 200}],
    }
    spec.update(changes)
    return spec


def cli_env(**extra: str) -> dict[str, str]:
    """The environment of an ``aisec`` child: wide, plain output, no colours, one torch thread.

    One thread each keeps the children that run side by side from fighting over the cores.
    """
    env = {k: v for k, v in os.environ.items() if k not in ("FORCE_COLOR", "PYTHONWARNINGS")}
    env.update({"COLUMNS": "200", "NO_COLOR": "1", "TERM": "dumb", "PYTHONIOENCODING": "utf-8", "OMP_NUM_THREADS": "1"})
    env.update(extra)
    return env


def run_aisec(
    args: Sequence[str | Path], *, cwd: Path, timeout: float = 120, env: dict[str, str] | None = None
) -> Result:
    """Run the real entry point, ``python -m aisec.cli.main ARGS``, in ``cwd``."""
    argv = tuple(str(a) for a in args)
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "aisec.cli.main", *argv],
        cwd=cwd,
        env=env or cli_env(),
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=timeout,
        check=False,
    )
    return Result(argv, proc.returncode, proc.stdout, proc.stderr, time.perf_counter() - start)
