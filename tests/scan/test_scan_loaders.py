"""The loaders scan before they unpickle: a dangerous file is refused even when trusted."""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import joblib
import pytest
import torch
from torch import nn

from aisec.errors import ConfigError, UntrustedFileError
from aisec.scan import sha256_file
from aisec.targets.sklearn import load_estimator
from aisec.targets.torch import load_torch_module
from tests.scan.conftest import tiny_sequential
from tests.scan.corpus import Reduce, rewrite_zip_member


class Wrapped(nn.Module):
    """A user-defined module class (suspicious, not dangerous: it loads when trusted)."""

    def __init__(self) -> None:
        super().__init__()
        self.inner = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(x)


def test_load_estimator_refuses_dangerous_even_when_trusted(tmp_path: Path, logistic) -> None:
    marker = tmp_path / "MARKER"
    path = tmp_path / "model.joblib"
    joblib.dump({"model": logistic, "hook": Reduce(os.system, f"touch {marker}")}, path)
    with pytest.raises(UntrustedFileError, match=r"posix\.system"):
        load_estimator(path, trust=True)
    assert not marker.exists()


def test_load_estimator_benign_and_pinned(tmp_path: Path, logistic) -> None:
    path = tmp_path / "model.joblib"
    joblib.dump(logistic, path)
    assert load_estimator(path, trust=True).coef_.shape == logistic.coef_.shape
    (tmp_path / "aisec.lock.json").write_text(json.dumps({"model.joblib": sha256_file(path)}))
    assert load_estimator(path, trust=True) is not None
    (tmp_path / "aisec.lock.json").write_text(json.dumps({"model.joblib": "a" * 64}))
    with pytest.raises(UntrustedFileError, match="a" * 64):
        load_estimator(path, trust=True)


def test_load_torch_module_refuses_rewritten_archive(tmp_path: Path) -> None:
    marker = tmp_path / "MARKER"
    path = tmp_path / "model.pt"
    torch.save(tiny_sequential(), path)
    rewrite_zip_member(path, "data.pkl", pickle.dumps(Reduce(os.system, f"touch {marker}"), protocol=2))
    with pytest.raises(UntrustedFileError, match=r"posix\.system.*data\.pkl"):
        load_torch_module(path, trust=True)
    assert not marker.exists()


def test_load_torch_module_trusted_paths(tmp_path: Path) -> None:
    torch.save(tiny_sequential(), tmp_path / "sequential.pt")
    torch.save(Wrapped(), tmp_path / "wrapped.pt")
    torch.save(tiny_sequential().state_dict(), tmp_path / "state.pt")
    assert isinstance(load_torch_module(tmp_path / "sequential.pt", trust=True), nn.Sequential)
    assert isinstance(load_torch_module(tmp_path / "wrapped.pt", trust=True), Wrapped)  # full unpickler fallback
    with pytest.raises(ConfigError, match="OrderedDict"):  # read by the weights-only unpickler
        load_torch_module(tmp_path / "state.pt", trust=True)
    with pytest.raises(UntrustedFileError):
        load_torch_module(tmp_path / "sequential.pt")
