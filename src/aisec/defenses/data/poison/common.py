"""What every poison detector shares: the :class:`Detection` it returns, the :class:`Detector` base,
the representations it reads, the automatic split of suspicion scores, and the registry.

A detector gets the (possibly poisoned) training set ``x``, ``y`` and, where it needs one, a model
trained on that set: a torch module (its penultimate-layer activations are the representation), a
scikit-learn estimator or pipeline (the features of every step but the last), or a
:class:`~aisec.targets.base.Target` (white-box). It returns which points it flags and a suspicion
score per point (higher is more suspicious). :func:`aisec.defenses.data.poison.evaluate_detection`
scores a detection against the attacker's mask of a
:class:`~aisec.attacks.poisoning.common.PoisonedSet` and retrains without the flagged points.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from aisec.core.configurable import Configurable
from aisec.errors import ConfigError, InputValidationError
from aisec.targets.base import Inputs, Target

Features = Any
"""A 2-D float array (NumPy) or a SciPy sparse matrix, one row per training point."""


@dataclass(frozen=True, slots=True)
class Detection:
    """What a detector found.

    Attributes
    ----------
    detector:
        Registered name of the detector.
    flagged:
        Boolean mask of shape ``(N,)``: ``True`` for points the detector calls poison.
    scores:
        Suspicion per point, shape ``(N,)``; higher is more suspicious. Comparable within a class,
        not always across detectors.
    seconds:
        Wall time of the detection (the model's training not included).
    info:
        Per-class details (cluster sizes, silhouettes, thresholds) for reports.
    """

    detector: str
    flagged: np.ndarray
    scores: np.ndarray
    seconds: float
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def n_flagged(self) -> int:
        return int(self.flagged.sum())


class Detector(Configurable, ABC):
    """One poison-detection technique: class metadata plus a frozen keyword-only ``Config``.

    :meth:`detect` validates the inputs, times :meth:`_detect` and builds the :class:`Detection`.
    """

    name: ClassVar[str]
    paper: ClassVar[str]
    Config: ClassVar[type]
    blas_threads: ClassVar[int | None] = 1
    """BLAS/OpenMP threads while detecting (``None``: leave the process's setting)."""

    def needs_model(self) -> bool:
        """Whether this configuration reads a model trained on the set (``False``: inputs suffice)."""
        return getattr(self.config, "representation", "inputs") == "penultimate"

    def detect(
        self, x: Inputs, y: torch.Tensor | np.ndarray | Sequence[int], *, model: Any = None, seed: int = 0
    ) -> Detection:
        """Flag suspected poison in ``x``, ``y``; ``model`` is one trained on this very set."""
        labels = np.asarray(y.cpu() if isinstance(y, torch.Tensor) else y).astype(np.int64)
        if labels.ndim != 1 or len(labels) != len(x):
            raise InputValidationError("y", f"labels of shape ({len(x)},)", labels.shape)
        if len(labels) < 4:
            raise InputValidationError("x", "at least 4 training points", len(labels))
        if self.needs_model() and model is None:
            raise InputValidationError(
                "model", f"a model trained on the set ({self.name} reads its representations)", None
            )
        from threadpoolctl import threadpool_limits

        start = time.perf_counter()
        # Per-class problems are small: BLAS threads buy nothing and, on a busy machine, their
        # spin-waiting makes a 0.2 s logistic regression take 10 s.
        with threadpool_limits(limits=self.blas_threads):
            flagged, scores, info = self._detect(x, labels, model, seed)
        return Detection(
            detector=self.name,
            flagged=np.asarray(flagged, dtype=bool),
            scores=np.asarray(scores, dtype=np.float64),
            seconds=time.perf_counter() - start,
            info=info,
        )

    @abstractmethod
    def _detect(self, x: Inputs, y: np.ndarray, model: Any, seed: int) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
        """Return the flagged mask, the scores and details."""


# -- representations -------------------------------------------------------------------------------


def _unwrap(model: Any) -> Any:
    if isinstance(model, Target):
        from aisec.core.goals import Knowledge

        return model.view(Knowledge.WHITE_BOX, "probabilities").parameters
    return model


@torch.no_grad()
def penultimate(module: nn.Module, x: torch.Tensor, *, batch_size: int = 1024) -> np.ndarray:
    """Activations entering the module's last ``nn.Linear`` layer (its penultimate representation)."""
    linears = [m for m in module.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise InputValidationError("model", "a torch module with a final nn.Linear layer", type(module).__name__)
    caught: list[torch.Tensor] = []
    hook = linears[-1].register_forward_hook(lambda _m, inp, _out: caught.append(inp[0].detach().flatten(1)))
    was_training = module.training
    module.eval()
    device = next(module.parameters()).device
    try:
        for start in range(0, len(x), batch_size):
            module(x[start : start + batch_size].to(device))
    finally:
        hook.remove()
        module.train(was_training)
    return torch.cat(caught).cpu().double().numpy()


def input_features(x: Inputs) -> Features:
    """The inputs as features: flattened tensors, or sublinear TF-IDF of texts (sparse)."""
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().reshape(len(x), -1).double().numpy()
    from sklearn.feature_extraction.text import TfidfVectorizer

    return TfidfVectorizer(sublinear_tf=True).fit_transform(list(x))


def representations(model: Any, x: Inputs) -> Features:
    """What a model makes of ``x``: penultimate activations (torch) or the pipeline's features (sklearn).

    ``model=None`` gives :func:`input_features`. For a scikit-learn pipeline the features are the
    output of every step but the last (e.g. the TF-IDF matrix of a text filter); a bare estimator
    has no representation beyond its inputs.
    """
    model = _unwrap(model)
    if model is None:
        return input_features(x)
    if isinstance(model, nn.Module):
        if not isinstance(x, torch.Tensor):
            raise InputValidationError("x", "a tensor for a torch model", type(x).__name__)
        return penultimate(model, x)
    steps = getattr(model, "steps", None)
    if steps and len(steps) > 1:
        xs = list(x) if not isinstance(x, torch.Tensor) else x.detach().cpu().reshape(len(x), -1).numpy()
        return model[:-1].transform(xs)
    return input_features(x)


def dense(features: Features, *, max_dims: int, seed: int) -> np.ndarray:
    """A dense float array; sparse or very wide features are reduced by truncated SVD to ``max_dims``."""
    import scipy.sparse as sp

    if sp.issparse(features) or features.shape[1] > 4 * max_dims:
        from sklearn.decomposition import TruncatedSVD

        k = min(max_dims, features.shape[1] - 1, features.shape[0] - 1)
        if k >= 1:
            return TruncatedSVD(n_components=k, random_state=seed).fit_transform(features).astype(np.float64)
    return np.asarray(features.toarray() if sp.issparse(features) else features, dtype=np.float64)


# -- automatic thresholds ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Split:
    """A two-way split of one class's points along a 1-D score (2-means)."""

    small: np.ndarray  # mask of the smaller side
    separation: float  # gap between the two means in pooled standard deviations
    relative_size: float  # share of the class on the smaller side


def two_means_1d(values: np.ndarray) -> Split:
    """Best 2-means split of 1-D ``values`` (exact: sorted, every cut tried) and how well it separates."""
    n = len(values)
    order = np.argsort(values)
    v = values[order]
    csum, csq = np.cumsum(v), np.cumsum(v * v)
    k = np.arange(1, n)  # left side holds the first k sorted values
    left_mean, right_mean = csum[:-1] / k, (csum[-1] - csum[:-1]) / (n - k)
    sse = (csq[:-1] - k * left_mean**2) + ((csq[-1] - csq[:-1]) - (n - k) * right_mean**2)
    cut = int(np.argmin(sse)) + 1
    pooled = np.sqrt(max(sse[cut - 1], 0.0) / max(n - 2, 1))
    separation = float(abs(right_mean[cut - 1] - left_mean[cut - 1]) / pooled) if pooled > 0 else float("inf")
    small_sorted = np.zeros(n, dtype=bool)
    if cut <= n - cut:
        small_sorted[:cut] = True
    else:
        small_sorted[cut:] = True
    small = np.zeros(n, dtype=bool)
    small[order] = small_sorted
    return Split(small=small, separation=separation, relative_size=min(cut, n - cut) / n)


def class_features(model: Any, x: Inputs, representation: str, *, max_dims: int, seed: int) -> np.ndarray:
    """Dense features for per-class analysis: ``"inputs"`` or the model's ``"penultimate"`` layer."""
    feats = input_features(x) if representation == "inputs" else representations(model, x)
    return dense(feats, max_dims=max_dims, seed=seed)


REPRESENTATIONS = ("inputs", "penultimate")


# -- registry ---------------------------------------------------------------------------------------

_DETECTORS: dict[str, type[Detector]] = {}


def register_detector(cls: type[Detector]) -> type[Detector]:
    """Class decorator: make a detector available by name."""
    if cls.name in _DETECTORS and _DETECTORS[cls.name] is not cls:
        raise ConfigError(f"poison detector {cls.name!r} is registered twice")
    _DETECTORS[cls.name] = cls
    return cls


def detectors() -> dict[str, type[Detector]]:
    """Every registered poison detector by name."""
    import aisec.defenses.data.poison  # noqa: F401  (importing the package registers the detectors)

    return dict(_DETECTORS)


def get_detector(name: str, **params: Any) -> Detector:
    """The detector ``name`` built from keyword parameters; an unknown name lists the known ones."""
    known = detectors()
    if name not in known:
        raise ConfigError(f"poison detector {name!r} is unknown; known: {', '.join(sorted(known))}")
    return known[name](**params)


ClassResult = tuple[np.ndarray, np.ndarray | None, dict[str, Any]]
"""What a per-class detector says of one class: scores, the flagged mask (or ``None``) and details."""


class PerClassDetector(Detector):
    """A detector that judges each label's points on their own, in one representation.

    Poison that carries a backdoor lands in the target label, where it forms a second,
    small population; each class is scored by :meth:`_class` on its representations
    (``config.representation``, ``config.max_dims``), and classes with fewer than
    ``config.min_class`` points are left alone.
    """

    def _detect(self, x: Inputs, y: np.ndarray, model: Any, seed: int) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
        cfg = self.config
        reps = class_features(model, x, cfg.representation, max_dims=cfg.max_dims, seed=seed)
        flagged = np.zeros(len(y), dtype=bool)
        scores = np.zeros(len(y))
        per_class: dict[str, Any] = {}
        for c in np.unique(y):
            idx = np.flatnonzero(y == c)
            if len(idx) < cfg.min_class:
                continue
            s, hit, info = self._class(reps[idx], seed)
            scores[idx] = s
            if hit is not None:
                flagged[idx[hit]] = True
            per_class[str(int(c))] = info
        return flagged, scores, {"per_class": per_class}

    @abstractmethod
    def _class(self, reps: np.ndarray, seed: int) -> ClassResult:
        """Score one class's representations; return the scores, what to flag and details."""


__all__ = [
    "ClassResult",
    "Detection",
    "Detector",
    "PerClassDetector",
    "Split",
    "class_features",
    "detectors",
    "get_detector",
    "input_features",
    "penultimate",
    "register_detector",
    "representations",
    "two_means_1d",
]
