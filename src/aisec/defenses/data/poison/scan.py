"""Run several poison detectors on one training set: what ``aisec data poison-scan`` calls.

:func:`scan` takes the training set (and, when known, the attacker's mask and a recipe to retrain),
trains one model with the recipe when a detector needs one, runs the detectors and returns one
:class:`ScanRow` per detector. :func:`load_training_npz` reads a set from an ``.npz`` file with
arrays ``x`` (inputs), ``y`` (labels) and optionally ``poisoned`` (a boolean mask, to score the
detectors) and ``x_test``/``y_test`` (to measure the retrained model).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from aisec.attacks.poisoning.common import PoisonedSet
from aisec.core.goals import Knowledge
from aisec.defenses.data.poison.common import Detection, get_detector
from aisec.defenses.data.poison.evaluate import DetectionReport, Trigger, evaluate_detection
from aisec.errors import ConfigError, InputValidationError
from aisec.targets.base import Inputs
from aisec.targets.recipe import Recipe

#: What a scan runs by default: each detector with its defaults.
DEFAULT_DETECTORS: tuple[str, ...] = ("spectral", "activation-clustering", "isolation-forest", "confident-learning")


@dataclass(frozen=True, slots=True)
class ScanRow:
    """One detector's result in a scan; ``report`` is set when the poison mask is known."""

    detector: str
    params: dict[str, Any]
    detection: Detection
    report: DetectionReport | None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "detector": self.detector,
            "params": self.params,
            "flagged": self.detection.n_flagged,
            "seconds": round(self.detection.seconds, 4),
            "flagged_indices": np.flatnonzero(self.detection.flagged).tolist(),
        }
        if self.report is not None:
            out.update({k: v for k, v in self.report.to_dict().items() if k not in ("detector", "flagged", "seconds")})
        return out


def _spec(item: str | tuple[str, dict[str, Any]]) -> tuple[str, dict[str, Any]]:
    if isinstance(item, str):
        return item, {}
    name, params = item
    return name, dict(params)


def scan(
    x: Inputs,
    y: torch.Tensor | np.ndarray,
    *,
    detectors: Sequence[str | tuple[str, dict[str, Any]]] = DEFAULT_DETECTORS,
    model: Any = None,
    recipe: Recipe | None = None,
    poisoned: np.ndarray | None = None,
    x_test: Inputs | None = None,
    y_test: torch.Tensor | None = None,
    trigger: Trigger | None = None,
    target_label: int | None = None,
    seed: int = 0,
) -> list[ScanRow]:
    """Run ``detectors`` on ``x``, ``y``.

    Parameters
    ----------
    detectors:
        Names, or ``(name, params)`` pairs, of registered detectors.
    model:
        A model trained on ``x``, ``y`` for the detectors that read one; when omitted and a recipe is
        given, the recipe trains it (seeded).
    poisoned:
        The true poison mask, when known (a benchmark, an attack's evidence): scores each detector.
    x_test, y_test, trigger, target_label:
        With ``poisoned`` and a recipe: retrain without each detector's flags and measure clean
        accuracy (and the backdoor's success rate with a trigger).
    """
    y = torch.as_tensor(np.asarray(y), dtype=torch.long)
    built = [(name, params, get_detector(name, **params)) for name, params in map(_spec, detectors)]
    if not built:
        raise ConfigError("poison-scan: name at least one detector")
    if model is None and any(d.needs_model() for _, _, d in built):
        if recipe is None:
            needing = ", ".join(n for n, _, d in built if d.needs_model())
            raise InputValidationError("model", f"a trained model or a recipe ({needing} read a model)", None)
        model = recipe.fit(x, y, seed=seed).view(Knowledge.WHITE_BOX, "probabilities").parameters
    ps = PoisonedSet(x=x, y=y, poisoned=np.asarray(poisoned, dtype=bool)) if poisoned is not None else None
    rows = []
    for name, params, det in built:
        detection = det.detect(x, y, model=model, seed=seed)
        report = None
        if ps is not None:
            retrain = recipe is not None and x_test is not None and y_test is not None
            report = evaluate_detection(
                detection,
                ps,
                recipe if retrain else None,
                x_test,
                y_test,
                trigger=trigger,
                target_label=target_label,
                seed=seed,
            )
        rows.append(ScanRow(detector=name, params=params, detection=detection, report=report))
    return rows


def load_training_npz(path: str | Path) -> dict[str, Any]:
    """Read ``x``, ``y`` and the optional ``poisoned``, ``x_test``, ``y_test`` arrays of an ``.npz`` file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"poison-scan: {path} not found")
    with np.load(path, allow_pickle=False) as z:
        missing = {"x", "y"} - set(z.files)
        if missing:
            raise InputValidationError(
                str(path), "arrays 'x' and 'y' (optional: poisoned, x_test, y_test)", sorted(z.files)
            )
        out: dict[str, Any] = {
            "x": torch.as_tensor(z["x"], dtype=torch.float32),
            "y": torch.as_tensor(z["y"], dtype=torch.long),
        }
        if "poisoned" in z.files:
            out["poisoned"] = z["poisoned"].astype(bool)
        if "x_test" in z.files and "y_test" in z.files:
            out["x_test"] = torch.as_tensor(z["x_test"], dtype=torch.float32)
            out["y_test"] = torch.as_tensor(z["y_test"], dtype=torch.long)
    return out


__all__ = ["DEFAULT_DETECTORS", "ScanRow", "load_training_npz", "scan"]
