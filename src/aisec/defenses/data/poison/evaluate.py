"""Scoring a detection against the attacker's mask, and the model retrained without what it flagged."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Protocol

import numpy as np
import torch

from aisec.attacks.poisoning.common import PoisonedSet
from aisec.core.goals import Knowledge
from aisec.defenses.data.poison.common import Detection
from aisec.errors import InputValidationError
from aisec.targets.base import Inputs, Target
from aisec.targets.recipe import Recipe


class Trigger(Protocol):
    """Anything that stamps a trigger on inputs (:class:`PatchTrigger`, :class:`TokenTrigger`)."""

    def apply(self, x: Any) -> Any: ...


@dataclass(frozen=True, slots=True)
class RetrainMetrics:
    """A model trained by the recipe: clean test accuracy and, for a backdoor, its success rate."""

    clean_accuracy: float
    attack_success: float | None
    n_train: int


@dataclass(frozen=True, slots=True)
class DetectionReport:
    """How well a detection matches the poison, and what retraining without the flagged points gives."""

    detector: str
    precision: float
    recall: float
    flagged: int
    true_positives: int
    n_poison: int
    seconds: float
    retrained: RetrainMetrics | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _take(x: Inputs, idx: torch.Tensor) -> Inputs:
    return x[idx] if isinstance(x, torch.Tensor) else [x[i] for i in idx.tolist()]


@torch.no_grad()
def _predict(model: Target, x: Inputs, batch_size: int = 1024) -> torch.Tensor:
    view = model.view(Knowledge.WHITE_BOX, "probabilities")
    return torch.cat([view.predict(x[i : i + batch_size]).cpu() for i in range(0, len(x), batch_size)])


def retrain_metrics(
    recipe: Recipe,
    x: Inputs,
    y: torch.Tensor,
    x_test: Inputs,
    y_test: torch.Tensor,
    *,
    trigger: Trigger | None = None,
    target_label: int | None = None,
    seed: int = 0,
) -> RetrainMetrics:
    """Train ``recipe`` on ``x``, ``y`` and measure clean accuracy and the backdoor's success rate.

    The success rate is the share of triggered test inputs whose true class is not
    ``target_label`` that the model labels ``target_label`` (``None`` without a trigger).
    """
    model = recipe.fit(x, y, seed=seed)
    y_test = torch.as_tensor(y_test).cpu()
    acc = float((_predict(model, x_test) == y_test).float().mean())
    asr = None
    if trigger is not None:
        if target_label is None:
            raise InputValidationError("target_label", "the backdoor's target class with a trigger", None)
        others = torch.from_numpy(np.flatnonzero(y_test.numpy() != target_label))
        if len(others):
            asr = float((_predict(model, trigger.apply(_take(x_test, others))) == target_label).float().mean())
    return RetrainMetrics(clean_accuracy=acc, attack_success=asr, n_train=len(y))


def precision_recall(flagged: np.ndarray, poisoned: np.ndarray) -> tuple[float, float, int]:
    """Precision and recall of ``flagged`` against the true ``poisoned`` mask, and the true positives."""
    flagged = np.asarray(flagged, dtype=bool)
    poisoned = np.asarray(poisoned, dtype=bool)
    if flagged.shape != poisoned.shape:
        raise InputValidationError("flagged", f"a mask of shape {poisoned.shape}", flagged.shape)
    tp = int(np.sum(flagged & poisoned))
    precision = tp / int(flagged.sum()) if flagged.any() else 0.0
    recall = tp / int(poisoned.sum()) if poisoned.any() else 1.0
    return precision, recall, tp


def evaluate_detection(
    detection: Detection,
    poisoned: PoisonedSet,
    recipe: Recipe | None = None,
    x_test: Inputs | None = None,
    y_test: torch.Tensor | None = None,
    *,
    trigger: Trigger | None = None,
    target_label: int | None = None,
    seed: int = 0,
) -> DetectionReport:
    """Precision and recall of ``detection`` on ``poisoned``'s mask; with a recipe, retrain without the flags.

    Parameters
    ----------
    detection:
        What a detector returned for ``poisoned.x``, ``poisoned.y``.
    poisoned:
        The poisoned set and the attacker's mask.
    recipe, x_test, y_test:
        Retrain (seeded) on the set minus the flagged points and measure on the clean test split;
        omit them to score the detection alone.
    trigger, target_label:
        For a backdoor: the success rate of the retrained model on triggered test inputs.
    """
    precision, recall, tp = precision_recall(detection.flagged, poisoned.poisoned)
    retrained = None
    if recipe is not None:
        if x_test is None or y_test is None:
            raise InputValidationError("x_test", "test inputs and labels to measure the retrained model", None)
        x, y = poisoned.without(detection.flagged)
        retrained = retrain_metrics(recipe, x, y, x_test, y_test, trigger=trigger, target_label=target_label, seed=seed)
    return DetectionReport(
        detector=detection.detector,
        precision=precision,
        recall=recall,
        flagged=detection.n_flagged,
        true_positives=tp,
        n_poison=poisoned.n_poison,
        seconds=detection.seconds,
        retrained=retrained,
    )


__all__ = ["DetectionReport", "RetrainMetrics", "evaluate_detection", "precision_recall", "retrain_metrics"]
