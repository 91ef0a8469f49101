"""Fixtures for the scanner tests: a benign corpus saved by torch, joblib, numpy and scikit-learn."""

from __future__ import annotations

import pickle
from pathlib import Path

import joblib
import numpy as np
import pytest
import torch
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from torch import nn

TEXTS = ["win cash now", "see you at lunch", "free prize claim now", "meeting moved to noon"] * 3
LABELS = [1, 0, 1, 0] * 3


def tiny_sequential() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))


@pytest.fixture(scope="session")
def text_pipeline() -> Pipeline:
    return Pipeline([("tfidf", TfidfVectorizer()), ("clf", LogisticRegression())]).fit(TEXTS, LABELS)


@pytest.fixture(scope="session")
def logistic() -> LogisticRegression:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(32, 4))
    return LogisticRegression().fit(x, (x[:, 0] > 0).astype(int))


@pytest.fixture(scope="session")
def benign_dir(tmp_path_factory: pytest.TempPathFactory, text_pipeline: Pipeline, logistic: LogisticRegression) -> Path:
    """One folder of benign model files, each saved by the library that owns the format."""
    root = tmp_path_factory.mktemp("benign")
    model = tiny_sequential()
    torch.save(model.state_dict(), root / "state_dict.pt")
    torch.save(model, root / "sequential.pt")
    torch.save(model.state_dict(), root / "legacy.pth", _use_new_zipfile_serialization=False)
    torch.jit.script(model).save(str(root / "scripted.pt"))
    joblib.dump(logistic, root / "logistic.joblib")
    joblib.dump(text_pipeline, root / "pipeline.joblib")
    for compress in ("zlib", "gzip", "bz2", "lzma", "xz"):
        joblib.dump(text_pipeline, root / f"pipeline.{compress}.joblib", compress=(compress, 3))
    joblib.dump({"names": np.array(["a", "b"], dtype=object), "w": np.ones((3, 5), order="F")}, root / "mixed.joblib")
    for protocol in range(pickle.HIGHEST_PROTOCOL + 1):
        (root / f"pipeline.p{protocol}.pkl").write_bytes(pickle.dumps(text_pipeline, protocol=protocol))
    np.save(root / "floats.npy", np.arange(12, dtype=np.float32).reshape(3, 4))
    np.save(root / "strings.npy", np.array(["spam", 3, None], dtype=object), allow_pickle=True)
    np.savez(root / "arrays.npz", a=np.zeros(3), b=np.ones((2, 2)))
    np.savez_compressed(root / "compressed.npz", a=np.zeros(3))
    header = b'{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}'
    (root / "weights.safetensors").write_bytes(len(header).to_bytes(8, "little") + header + bytes(8))
    (root / "README.md").write_text("# a model card, not a model\n")
    (root / "config.json").write_text('{"hidden_size": 8}')
    return root
