"""Isolation-forest outliers per class (Liu, Ting & Zhou 2008, doi:10.1109/ICDM.2008.17).

Within each class, a forest of random splits isolates unusual points in fewer steps; the average
path length becomes an anomaly score. Poison that looks unlike the class it is labelled as (a
dirty-label backdoor, flipped labels, stuffed spam) is such an outlier. Two ways to decide:

* ``threshold="auto"`` (default): split each class's anomaly scores in two (exact 1-D 2-means) and
  flag the high side only when it lies ``min_separation`` pooled standard deviations apart and is
  the smaller side;
* ``threshold="contamination"``: flag the ``contamination`` share with the highest scores per class.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from aisec.attacks.base import check_config
from aisec.core.configurable import check_choice
from aisec.defenses.data.poison.common import (
    REPRESENTATIONS,
    ClassResult,
    PerClassDetector,
    register_detector,
    two_means_1d,
)


@dataclass(frozen=True, kw_only=True, slots=True)
class IsolationConfig:
    """Parameters of :class:`IsolationOutliers`.

    Attributes
    ----------
    representation:
        ``"inputs"`` or ``"penultimate"`` (a model trained on the set).
    threshold:
        ``"auto"`` or ``"contamination"``.
    contamination:
        Share flagged per class under ``threshold="contamination"``.
    min_separation:
        ``"auto"``: gap between the two sides of the scores, in pooled standard deviations.
    n_estimators:
        Trees per forest.
    min_class:
        Classes with fewer points are left alone.
    max_dims:
        Sparse or very wide representations are first reduced to this many dimensions.
    """

    representation: str = "inputs"
    threshold: str = "auto"
    contamination: float = 0.05
    min_separation: float = 4.0
    n_estimators: int = 100
    min_class: int = 10
    max_dims: int = 256

    def __post_init__(self) -> None:
        name = "isolation-forest"
        check_choice(f"{name}.representation", self.representation, REPRESENTATIONS)
        check_choice(f"{name}.threshold", self.threshold, ("auto", "contamination"))
        check_config(
            self,
            name,
            integer=("n_estimators", "min_class", "max_dims"),
            positive=("n_estimators", "min_separation", "max_dims", "contamination"),
            unit=("contamination",),
        )


@register_detector
class IsolationOutliers(PerClassDetector):
    """Per-class isolation forest (Liu, Ting & Zhou 2008) on inputs or a model's representations."""

    name = "isolation-forest"
    paper = "Liu, Ting & Zhou 2008, Isolation Forest, ICDM, doi:10.1109/ICDM.2008.17"
    Config = IsolationConfig

    def _class(self, reps: np.ndarray, seed: int) -> ClassResult:
        from sklearn.ensemble import IsolationForest

        cfg: IsolationConfig = self.config
        forest = IsolationForest(n_estimators=cfg.n_estimators, random_state=seed).fit(reps)
        s = -forest.score_samples(reps)  # higher = more anomalous
        if cfg.threshold == "contamination":
            k = round(cfg.contamination * len(reps))
            return s, np.argsort(-s)[:k], {"flagged": k}
        split = two_means_1d(s)
        high_is_small = s[split.small].mean() > s[~split.small].mean()
        hit = high_is_small and split.separation >= cfg.min_separation
        info = {
            "separation": round(split.separation, 3),
            "relative_size": round(split.relative_size, 4),
            "flagged": int(split.small.sum()) if hit else 0,
        }
        return s, split.small if hit else None, info


__all__ = ["IsolationConfig", "IsolationOutliers"]
