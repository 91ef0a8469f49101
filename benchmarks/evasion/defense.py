"""Adversarial training on digits: aisec's PGD-AT and TRADES against ART's trainers, same model and budget.

Protocol (issue 3): scikit-learn's digits, pixels / 16, aisec's seeded stratified 75/25 split (seed 0);
a CNN (conv32-conv64 3x3, maxpool, fc128, fc10), Adam (lr 1e-3), batches of 64, every model started
from the same initial weights (seed 0). Standard training: 30 epochs. Adversarial training from
scratch, L-inf eps 0.1, 7 inner PGD steps of 2.5 * eps / 7, for ``EPOCHS`` epochs:

- aisec ``adversarial_training(method="pgd-at")`` vs ART ``AdversarialTrainerMadryPGD`` (same eps,
  step, steps, one random start);
- aisec ``adversarial_training(method="trades", beta=6)`` vs ART ``AdversarialTrainerTRADESPyTorch``
  (beta 6; ART's inner attack is its ``ProjectedGradientDescent`` on the cross-entropy, aisec's maximises
  the KL term as in Zhang et al.).

Every model is evaluated by the same attack: aisec's ``pgd_perturb``, L-inf eps 0.1, 20 steps of eps/4,
one random start (seed 0), on the whole test split (450 images). Reported per model: clean accuracy,
robust accuracy, training seconds; per method the gain in robust accuracy and the cost in clean accuracy
against the standard model, and aisec / ART ratios. Two torch threads.

Run alone (writes ``benchmarks/results/evasion-defense.json``)::

    benchmarks/.venv/bin/python benchmarks/evasion/defense.py [--quick]
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from aisec.attacks.integrity.pgd import pgd_perturb
from aisec.data import load_digits
from aisec.defenses import AdversarialTrainingConfig, adversarial_training

#: One torch thread: on the shared 2-core machine (load average ~10) two threads spin-wait for each
#: other and made a robust-eval run 8-10x slower (measured: 2.5 s on one thread, 20-27 s on two).
THREADS = 1
EPS = 0.1
STEPS_TRAIN = 7
BETA = 6.0
RESULTS = Path(__file__).resolve().parents[1] / "results" / "evasion-defense.json"


def cnn() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(),
        nn.MaxPool2d(2), nn.Flatten(), nn.Linear(64 * 4 * 4, 128), nn.ReLU(), nn.Linear(128, 10),
    )  # fmt: skip


def train_standard(model: nn.Module, x: torch.Tensor, y: torch.Tensor, epochs: int) -> nn.Module:
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    gen = torch.Generator().manual_seed(0)
    model.train()
    for _ in range(epochs):
        for b in torch.randperm(len(y), generator=gen).split(64):
            opt.zero_grad()
            nn.functional.cross_entropy(model(x[b]), y[b]).backward()
            opt.step()
    return model.eval()


def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
    model = model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    gen = torch.Generator().manual_seed(0)
    x_adv = pgd_perturb(model, x, y, eps=EPS, steps=20, alpha=EPS / 4, clip=(0.0, 1.0), generator=gen)
    with torch.no_grad():
        clean = (model(x).argmax(1) == y).float().mean().item()
        robust = (model(x_adv).argmax(1) == y).float().mean().item()
    return {"clean_accuracy": clean, "robust_accuracy": robust}


class Whole(nn.Module):
    """Hides the layers of an ``nn.Sequential`` from ART's model wrapper.

    ART 1.20's ``ModelWrapper`` returns every layer's output of a Sequential, and its TRADES trainer
    reads ``outputs[0]`` (the first layer) for its training accuracy, which fails; wrapped, the model
    has one output, the logits. Same weights, same computation.
    """

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(x)


def art_classifier(model: nn.Module) -> Any:
    from art.estimators.classification import PyTorchClassifier

    for p in model.parameters():
        p.requires_grad_(True)
    return PyTorchClassifier(
        model=Whole(model), loss=nn.CrossEntropyLoss(), optimizer=torch.optim.Adam(model.parameters(), lr=1e-3),
        input_shape=(1, 8, 8), nb_classes=10, clip_values=(0.0, 1.0), device_type="cpu",
    )  # fmt: skip


def art_train(method: str, model: nn.Module, x: np.ndarray, y: np.ndarray, epochs: int) -> nn.Module:
    from art.attacks.evasion import ProjectedGradientDescent
    from art.defences.trainer import AdversarialTrainerMadryPGD, AdversarialTrainerTRADESPyTorch

    clf = art_classifier(model)
    step = 2.5 * EPS / STEPS_TRAIN
    np.random.seed(0)
    torch.manual_seed(0)
    if method == "pgd-at":
        trainer = AdversarialTrainerMadryPGD(
            clf, nb_epochs=epochs, batch_size=64, eps=EPS, eps_step=step, max_iter=STEPS_TRAIN, num_random_init=1
        )
        trainer.fit(x, y)
    else:
        attack = ProjectedGradientDescent(clf, norm=np.inf, eps=EPS, eps_step=step, max_iter=STEPS_TRAIN,
                                          num_random_init=1, batch_size=64, verbose=False)  # fmt: skip
        AdversarialTrainerTRADESPyTorch(clf, attack, beta=BETA).fit(x, y, batch_size=64, nb_epochs=epochs)
    return model  # ART trained these weights in place, through the wrapper


def run(quick: bool = False) -> dict[str, Any]:
    """Standard vs PGD-AT vs TRADES, aisec and ART; ``quick`` trains 5 adversarial epochs instead of 30."""
    torch.set_num_threads(THREADS)
    data = load_digits()
    assert isinstance(data.x_train, torch.Tensor) and isinstance(data.x_test, torch.Tensor)
    x, y, xt, yt = data.x_train, data.y_train, data.x_test, data.y_test
    epochs = 5 if quick else 30
    out: dict[str, Any] = {
        "protocol": {"eps": EPS, "eval": "PGD-20, step eps/4, 1 random start", "train_steps": STEPS_TRAIN,
                     "train_step_size": 2.5 * EPS / STEPS_TRAIN, "beta": BETA, "adv_epochs": epochs,
                     "standard_epochs": 30, "batch_size": 64, "lr": 1e-3, "n_train": len(y), "n_test": len(yt)},
        "torch_threads": THREADS,
        "command": "benchmarks/.venv/bin/python benchmarks/evasion/defense.py" + (" --quick" if quick else ""),
        # the machine is shared: 1/5/15-minute load averages before and after the run
        "load_average": {"before": [round(v, 2) for v in os.getloadavg()]},
        "models": {},
    }  # fmt: skip
    init = cnn()
    start = time.perf_counter()
    standard = train_standard(copy.deepcopy(init), x, y, 30)
    out["models"]["standard"] = {**evaluate(standard, xt, yt), "train_seconds": time.perf_counter() - start}
    base = out["models"]["standard"]
    for method in ("pgd-at", "trades"):
        row: dict[str, Any] = {}
        start = time.perf_counter()
        cfg = AdversarialTrainingConfig(method=method, eps=EPS, steps=STEPS_TRAIN, beta=BETA, epochs=epochs, lr=1e-3,
                                        batch_size=64, seed=0)  # fmt: skip
        model = adversarial_training(copy.deepcopy(init), data, cfg)
        torch.set_num_threads(THREADS)  # adversarial_training trains on one thread and restores; keep the protocol
        row["aisec"] = {**evaluate(model, xt, yt), "train_seconds": time.perf_counter() - start}
        start = time.perf_counter()
        model = art_train(method, copy.deepcopy(init), x.numpy(), y.numpy(), epochs)
        row["art"] = {**evaluate(model, xt, yt), "train_seconds": time.perf_counter() - start}
        for lib in ("aisec", "art"):
            r = row[lib]
            r["robust_gain"] = r["robust_accuracy"] - base["robust_accuracy"]
            r["clean_cost"] = base["clean_accuracy"] - r["clean_accuracy"]
        row["aisec_vs_art"] = {
            "robust_accuracy_ratio": row["aisec"]["robust_accuracy"] / max(row["art"]["robust_accuracy"], 1e-9),
            "train_seconds_ratio": row["aisec"]["train_seconds"] / row["art"]["train_seconds"],
        }
        out["models"][method] = row
    out["load_average"]["after"] = [round(v, 2) for v in os.getloadavg()]
    return out


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    result = run(parser.parse_args().quick)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(result, indent=2))
