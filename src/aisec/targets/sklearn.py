"""scikit-learn targets: any estimator with ``predict_proba``, ``decision_function`` or ``predict``.

Pipelines on raw text (a TF-IDF vectorizer and a linear model, like the spam filter) take a list
of strings; numeric estimators take a tensor, flattened to ``(N, features)`` at the adapter's edge.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from aisec.core.goals import Capability, Modality
from aisec.errors import ConfigError, InputValidationError, UntrustedFileError
from aisec.targets.base import Inputs, Target

_PICKLE_WARNING = (
    "loading {path} runs code from the file (joblib and pickle files can execute anything when "
    "loaded); set target.trust: true (--trust) only if you trust whoever made it"
)


def load_estimator(path: str | Path, *, trust: bool = False) -> Any:
    """Load a joblib or pickle file, only when the user has said they trust it."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"target.path: no such file: {path}")
    if not trust:
        raise UntrustedFileError(_PICKLE_WARNING.format(path=path))
    from aisec.scan import check_before_load

    check_before_load(path)  # even a trusted file is refused if it calls os.system & co. or fails its pin
    import joblib

    try:
        return joblib.load(path)
    except Exception as exc:  # a corrupt or foreign file fails in many ways inside the unpickler
        raise ConfigError(
            f"target.path: {path} is not a readable joblib/pickle file ({type(exc).__name__}: {exc})"
        ) from None


class SklearnTarget(Target):
    """A fitted scikit-learn estimator or pipeline.

    Probabilities come from ``predict_proba``; an estimator with only ``decision_function`` gets
    scores squashed by a sigmoid (binary) or softmax (multi-class), which keep the ranking but are
    not calibrated; one with only ``predict`` answers labels only.
    """

    kind: ClassVar[str] = "sklearn"

    def __init__(
        self,
        estimator: Any,
        *,
        modality: Modality | str | None = None,
        input_shape: Sequence[int] | None = None,
        clip: tuple[float, float] | None = None,
        name: str = "sklearn-model",
    ) -> None:
        if not hasattr(estimator, "predict"):
            raise InputValidationError("estimator", "a fitted scikit-learn estimator", type(estimator).__name__)
        classes = getattr(estimator, "classes_", None)
        if classes is None:
            raise InputValidationError("estimator", "a fitted classifier with classes_", "no classes_ attribute")
        self.estimator = estimator
        self.classes = np.asarray(classes)
        if modality is None:
            modality = Modality.TABULAR if input_shape is not None else Modality.TEXT
        super().__init__(
            modality=modality,
            n_classes=len(self.classes),
            input_shape=input_shape,
            clip=clip,
            device="cpu",
            name=name,
        )
        if self.modality is not Modality.TEXT and input_shape is None:
            raise ConfigError("input_shape: a numeric scikit-learn target needs the shape of one input")
        self._mode = (
            "proba"
            if hasattr(estimator, "predict_proba")
            else "decision"
            if hasattr(estimator, "decision_function")
            else "labels"
        )

    @classmethod
    def from_file(cls, path: str | Path, *, trust: bool = False, **kwargs: Any) -> SklearnTarget:
        """Load a joblib/pickle file; refused unless ``trust=True`` (loading runs code)."""
        return cls(load_estimator(path, trust=trust), name=Path(path).stem, **kwargs)

    @property
    def capabilities(self) -> frozenset[Capability]:
        caps = {Capability.LABELS, Capability.PARAMETERS}
        if self._mode != "labels":
            caps.add(Capability.PROBABILITIES)
        return frozenset(caps)

    def _to_native(self, x: Inputs) -> Any:
        if self.modality is Modality.TEXT:
            return list(x)
        assert isinstance(x, torch.Tensor)
        return x.detach().cpu().reshape(len(x), -1).numpy().astype(np.float64)

    def _predict_proba(self, x: Inputs) -> torch.Tensor:
        native = self._to_native(x)
        if self._mode == "proba":
            probs = np.asarray(self.estimator.predict_proba(native), dtype=np.float64)
        elif self._mode == "decision":
            scores = np.asarray(self.estimator.decision_function(native), dtype=np.float64)
            if scores.ndim == 1:
                p1 = 1.0 / (1.0 + np.exp(-scores))
                probs = np.stack([1.0 - p1, p1], axis=1)
            else:
                z = np.exp(scores - scores.max(axis=1, keepdims=True))
                probs = z / z.sum(axis=1, keepdims=True)
        else:
            probs = np.eye(self.n_classes)[self._label_index(self.estimator.predict(native))]
        return torch.from_numpy(np.ascontiguousarray(probs, dtype=np.float64))  # keep the estimator's precision

    def _label_index(self, labels: np.ndarray) -> np.ndarray:
        return np.searchsorted(self.classes, np.asarray(labels))

    def _predict_labels(self, x: Inputs) -> torch.Tensor:
        if self._mode == "labels":
            return torch.from_numpy(self._label_index(self.estimator.predict(self._to_native(x))))
        return super()._predict_labels(x)

    def _parameters(self) -> Any:
        return self.estimator
