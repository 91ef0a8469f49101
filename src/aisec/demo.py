"""The demo: trains (and caches) three small models and assesses each with a default threat model.

- a small CNN on scikit-learn's 8x8 digits (white-box attacker: FGSM at three eps, loss threshold),
- an MLP on breast cancer (white-box attacker),
- a TF-IDF + logistic-regression spam filter on the SMS Spam Collection, when the file is found
  (black-box attacker with probabilities).

Models are cached under ``$AISEC_CACHE`` (default ``~/.cache/aisec``) by a hash of their recipe,
so a second demo skips training.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import yaml
from torch import nn

from aisec.attacks.privacy.recipe import relu_layers
from aisec.core.config import Spec, parse_spec
from aisec.core.files import UNREADABLE, cache_root, store_cached
from aisec.data import Dataset, find_sms_spam, load_breast_cancer, load_digits, load_sms_spam
from aisec.errors import ConfigError

log = logging.getLogger(__name__)

RECIPE_VERSION = 1


def cache_dir() -> Path:
    """Where trained demo models are cached (the demo's specs point at these files, so it must be writable)."""
    path = cache_root() / "models"
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"AISEC_CACHE: cannot create {path} ({exc}); set AISEC_CACHE to a writable folder") from None
    return path


def _store(path: Path, save: Callable[[Path], None], name: str) -> None:
    """Store a trained demo model; the demo's specs load it from ``path``, so a cache that cannot be written fails."""
    if not store_cached(path, save, f"{name} model"):
        raise ConfigError(f"AISEC_CACHE: cannot write {path}; set AISEC_CACHE to a writable folder")


def _recipe_key(name: str, recipe: dict[str, Any]) -> str:
    blob = json.dumps(
        {"name": name, "v": RECIPE_VERSION, "torch": torch.__version__.split("+")[0], **recipe}, sort_keys=True
    )
    return f"{name}-{hashlib.sha256(blob.encode()).hexdigest()[:12]}"


class DigitsCNN(nn.Module):
    """Two conv layers and two dense layers for 1x8x8 digits."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(),
            nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(32 * 4 * 4, 64), nn.ReLU(), nn.Linear(64, 10),
        )  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def train_classifier(
    model: nn.Module, data: Dataset, *, epochs: int, lr: float, batch_size: int, seed: int
) -> nn.Module:
    """Plain Adam + cross-entropy training on ``data.x_train``; deterministic for a seed on the CPU.

    Trains on one CPU thread: these models are tiny, so more threads buy nothing, and on a busy
    2-core machine their spin-waiting makes training several times slower. One thread also
    gives the same weights on every machine (float sums in one order).
    """
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    assert isinstance(data.x_train, torch.Tensor)
    x, y = data.x_train, data.y_train
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for _ in range(epochs):
            perm = torch.randperm(len(y), generator=gen)
            for start in range(0, len(y), batch_size):
                idx = perm[start : start + batch_size]
                opt.zero_grad()
                nn.functional.cross_entropy(model(x[idx]), y[idx]).backward()
                opt.step()
    finally:
        torch.set_num_threads(threads)
    return model.eval()


def _reusable(path: Path, load: Callable[[Path], object], name: str) -> bool:
    """Whether ``path`` holds a model that loads; a damaged one is logged and will be trained again."""
    if not path.is_file():
        return False
    try:
        load(path)
    except UNREADABLE as exc:
        log.warning("cached %s model %s is unreadable (%s); training it again", name, path, exc)
        return False
    return True


def _cached_torch(name: str, recipe: dict[str, Any], build: Callable[[], nn.Module], example: torch.Tensor) -> Path:
    path = cache_dir() / f"{_recipe_key(name, recipe)}.pt"
    if not _reusable(path, lambda p: torch.jit.load(str(p), map_location="cpu"), name):
        log.info("training %s", name)
        model = build()
        scripted = torch.jit.trace(model, example)
        _store(path, lambda tmp: torch.jit.save(scripted, str(tmp)), name)
    return path


def digits_cnn(seed: int = 0) -> Path:
    """TorchScript file of the demo's digits CNN (trained on ``load_digits(seed=seed)``'s train split)."""
    recipe = {"epochs": 30, "lr": 2e-3, "batch_size": 64, "seed": seed}
    data = load_digits(seed=seed)

    def build() -> nn.Module:
        torch.manual_seed(seed)
        return train_classifier(DigitsCNN(), data, epochs=30, lr=2e-3, batch_size=64, seed=seed)

    return _cached_torch("digits-cnn", recipe, build, torch.zeros(1, 1, 8, 8))


CANCER_RECIPE: dict[str, Any] = {"hidden": [128, 128], "epochs": 300, "lr": 3e-3, "batch_size": 32}
"""How the demo's breast-cancer MLP is trained; its spec declares it (``target.recipe``), so the shadow-model attacks
train shadows like it, as the grey-box attacker of Carlini et al. 2022 does."""


def cancer_mlp(seed: int = 0) -> Path:
    """TorchScript file of the demo's breast-cancer MLP (trained long enough to overfit a little)."""
    recipe = {**CANCER_RECIPE, "seed": seed}  # the cache key: a changed recipe is a new model
    data = load_breast_cancer(seed=seed)

    def build() -> nn.Module:
        torch.manual_seed(seed)
        model = nn.Sequential(*relu_layers([30, *CANCER_RECIPE["hidden"], 2]))
        return train_classifier(model, data, epochs=CANCER_RECIPE["epochs"], lr=CANCER_RECIPE["lr"],
                                batch_size=CANCER_RECIPE["batch_size"], seed=seed)  # fmt: skip

    return _cached_torch("cancer-mlp", recipe, build, torch.zeros(1, 30))


def spam_filter(path: Path, seed: int = 0) -> Path:
    """joblib file of the demo's TF-IDF + logistic-regression spam filter."""
    import joblib
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:12]
    out = cache_dir() / f"{_recipe_key('spam-filter', {'C': 10.0, 'seed': seed, 'data': digest})}.joblib"
    if not _reusable(out, joblib.load, "spam-filter"):
        data = load_sms_spam(path, seed=seed)
        pipe = make_pipeline(TfidfVectorizer(sublinear_tf=True, min_df=1), LogisticRegression(C=10.0, max_iter=2000))
        pipe.fit(data.x_train, data.y_train.numpy())
        _store(out, lambda tmp: joblib.dump(pipe, tmp), "spam-filter")
    return out


@dataclass(frozen=True, slots=True)
class DemoCase:
    """One model of the demo and the spec that assesses it."""

    spec: Spec
    spec_path: Path


def demo_specs(out: Path, *, sms_path: str | Path | None = None, seed: int = 0) -> list[DemoCase]:
    """Train or load the demo models and write one spec file per model into ``out``.

    Without ``sms_path`` the SMS Spam Collection is looked for where :func:`aisec.data.find_sms_spam` looks, and the
    spam-filter demo is skipped when it is not there; a ``sms_path`` that is not a file is a :class:`ConfigError`.
    """
    if sms_path is not None and not Path(sms_path).is_file():  # before any training: nothing to wait for
        raise ConfigError(f"--sms: no SMS Spam Collection file at {sms_path}")
    sms = find_sms_spam(sms_path)
    out.mkdir(parents=True, exist_ok=True)
    raw: list[dict[str, Any]] = [
        {
            "name": "demo-digits",
            "target": {"kind": "torch", "path": str(digits_cnn(seed))},
            "data": {"kind": "digits", "seed": seed},
            "threat_model": {
                "knowledge": "white-box",
                "output": "probabilities",
                "query_budget": 20000,
                "needs": {"integrity": "high", "privacy": "normal"},
            },
            "attacks": [
                {"name": "fgsm", "eps": 0.05},
                {"name": "fgsm", "eps": 0.1},
                {"name": "fgsm", "eps": 0.2},
                {"name": "loss-threshold"},
            ],
        },
        {
            "name": "demo-cancer",
            "target": {"kind": "torch", "path": str(cancer_mlp(seed)), "recipe": CANCER_RECIPE},
            "data": {"kind": "breast_cancer", "seed": seed},
            "threat_model": {
                "knowledge": "white-box",
                "output": "probabilities",
                "query_budget": 20000,
                "epsilon": 0.25,
                "needs": {"integrity": "normal", "privacy": "very-high"},
            },
            "attacks": "auto",
        },
    ]
    if sms is not None and sms.is_file():
        raw.append(
            {
                "name": "demo-spam",
                "target": {"kind": "sklearn", "path": str(spam_filter(sms.resolve(), seed)), "trust": True},
                "data": {"kind": "sms_spam", "path": str(sms.resolve()), "seed": seed},
                "threat_model": {
                    "knowledge": "black-box",
                    "output": "probabilities",
                    "query_budget": 20000,
                    "training_data": ["add-points", "flip-labels"],  # mail it learns from: Nelson's attacker
                    "needs": {
                        "integrity": "high",
                        "availability": "high",
                        "confidentiality": "normal",
                        "privacy": "very-high",
                    },
                },
                "attacks": "auto",
            }
        )
    else:
        log.info("SMS Spam Collection not found; the spam-filter demo is skipped")
    cases = []
    for item in raw:
        path = out / f"{item['name']}.yaml"
        path.write_text(yaml.safe_dump(item, sort_keys=False), encoding="utf-8")
        cases.append(DemoCase(parse_spec(item, source=str(path)), path))
    return cases
