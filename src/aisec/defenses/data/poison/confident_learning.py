"""Label-noise detection by cross-validated confident learning (Northcutt, Jiang & Chuang 2021, arXiv:1911.00068).

Every point gets out-of-fold predicted probabilities: K models, each trained without the fold that
holds the point. Class ``j``'s threshold ``t_j`` is the average probability of ``j`` over the
points labelled ``j`` (the model's self-confidence on that class). A point labelled ``i`` is counted
in the confident joint at ``(i, j)`` for the class ``j`` with the highest probability among those
above their threshold; points off the diagonal are label issues:

* ``rule="off-diagonal"`` (default): flag every off-diagonal point;
* ``rule="noise-rate"``: for each off-diagonal cell ``(i, j)`` of size ``n_ij``, flag the ``n_ij``
  points labelled ``i`` with the largest margin ``p_j - p_i`` (the paper's prune-by-noise-rate).

The models are a cheap proxy by default (logistic regression on the inputs, TF-IDF for texts), a
clone of the scikit-learn model under test (``proxy="clone"``), or the target's training recipe
(``proxy="recipe"``, pass the :class:`~aisec.targets.recipe.Recipe` as ``model``; K retrains).
Flipped labels are what it is made for; dirty-label backdoor points are label issues too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from aisec.attacks.base import check_config
from aisec.core.configurable import check_choice
from aisec.defenses.data.poison.common import Detector, input_features, register_detector
from aisec.errors import InputValidationError
from aisec.targets.base import Inputs


@dataclass(frozen=True, kw_only=True, slots=True)
class ConfidentLearningConfig:
    """Parameters of :class:`ConfidentLearning`.

    Attributes
    ----------
    folds:
        K of the K-fold cross-validation.
    proxy:
        ``"auto"`` (a clone of a scikit-learn model when given, else ``"logistic"``), ``"logistic"``,
        ``"clone"`` or ``"recipe"``.
    rule:
        ``"off-diagonal"`` or ``"noise-rate"``.
    c:
        Inverse regularisation of the logistic-regression proxy.
    """

    folds: int = 5
    proxy: str = "auto"
    rule: str = "off-diagonal"
    c: float = 1.0

    def __post_init__(self) -> None:
        name = "confident-learning"
        check_choice(f"{name}.proxy", self.proxy, ("auto", "logistic", "clone", "recipe"))
        check_choice(f"{name}.rule", self.rule, ("off-diagonal", "noise-rate"))
        check_config(self, name, integer=("folds",), positive=("c",))
        if self.folds < 2:
            from aisec.errors import ConfigError

            raise ConfigError(f"{name}.folds: expected an integer >= 2, got {self.folds!r}")


def _take(x: Inputs, idx: np.ndarray) -> Inputs:
    return x[torch.from_numpy(idx)] if isinstance(x, torch.Tensor) else [x[i] for i in idx.tolist()]


def out_of_fold_proba(x: Inputs, y: np.ndarray, cfg: ConfidentLearningConfig, model: Any, seed: int) -> np.ndarray:
    """Probabilities of every point from a model that did not see it (K-fold)."""
    from sklearn.base import clone
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold

    from aisec.targets.recipe import Recipe

    n_classes = int(y.max()) + 1
    proxy = cfg.proxy
    if proxy == "auto":
        proxy = (
            "clone"
            if model is not None and hasattr(model, "fit") and not isinstance(model, torch.nn.Module)
            else "logistic"
        )
    if proxy == "clone" and not hasattr(model, "fit"):
        raise InputValidationError("model", "a scikit-learn estimator to clone (proxy='clone')", type(model).__name__)
    if proxy == "recipe" and not isinstance(model, Recipe):
        raise InputValidationError("model", "a Recipe (proxy='recipe')", type(model).__name__)
    feats = input_features(x) if proxy == "logistic" else None
    min_count = int(np.bincount(y).min()) if len(np.unique(y)) == n_classes else 0
    folds = max(2, min(cfg.folds, min_count)) if min_count >= 2 else cfg.folds
    splitter = StratifiedKFold(folds, shuffle=True, random_state=seed)
    proba = np.zeros((len(y), n_classes))
    for train, test in splitter.split(np.zeros(len(y)), y):
        if proxy == "recipe":
            fitted = model.fit(_take(x, train), torch.from_numpy(y[train]), seed=seed)
            from aisec.core.goals import Knowledge

            view = fitted.view(Knowledge.WHITE_BOX, "probabilities")
            proba[test] = view.predict_proba(_take(x, test)).detach().cpu().double().numpy()
            continue
        if proxy == "logistic":
            est = LogisticRegression(C=cfg.c, max_iter=2000)
            est.fit(feats[train], y[train])
            p = est.predict_proba(feats[test])
        else:
            est = clone(model)
            xs = _take(x, train)
            xt = _take(x, test)
            if isinstance(xs, torch.Tensor):
                xs, xt = xs.reshape(len(xs), -1).numpy(), xt.reshape(len(xt), -1).numpy()  # type: ignore[union-attr]
            est.fit(xs, y[train])
            p = est.predict_proba(xt)
        proba[np.ix_(test, np.asarray(est.classes_, dtype=int))] = p
    return proba


@register_detector
class ConfidentLearning(Detector):
    """Confident learning (Northcutt et al. 2021, arXiv:1911.00068): off-diagonal of the confident joint."""

    name = "confident-learning"
    paper = (
        "Northcutt, Jiang & Chuang 2021, Confident Learning: Estimating Uncertainty in Dataset Labels, arXiv:1911.00068"
    )
    Config = ConfidentLearningConfig

    def needs_model(self) -> bool:
        return self.config.proxy in ("clone", "recipe")

    def _detect(self, x: Inputs, y: np.ndarray, model: Any, seed: int) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
        cfg: ConfidentLearningConfig = self.config
        proba = out_of_fold_proba(x, y, cfg, model, seed)
        n, k = proba.shape
        thresholds = np.array([proba[y == j, j].mean() if np.any(y == j) else 1.0 for j in range(k)])
        above = proba >= thresholds[None, :] - 1e-12
        masked = np.where(above, proba, -np.inf)
        best = masked.argmax(axis=1)
        confident = above.any(axis=1)
        off = confident & (best != y)
        given = proba[np.arange(n), y]
        scores = 1.0 - given
        if cfg.rule == "off-diagonal":
            flagged = off
        else:
            flagged = np.zeros(n, dtype=bool)
            for i in range(k):
                for j in range(k):
                    if i == j:
                        continue
                    n_ij = int(np.sum(off & (y == i) & (best == j)))
                    if n_ij == 0:
                        continue
                    idx = np.flatnonzero(y == i)
                    margin = proba[idx, j] - proba[idx, i]
                    flagged[idx[np.argsort(-margin)[:n_ij]]] = True
        joint = np.zeros((k, k), dtype=int)
        np.add.at(joint, (y[confident], best[confident]), 1)
        return flagged, scores, {"thresholds": thresholds.round(4).tolist(), "confident_joint": joint.tolist()}


__all__ = ["ConfidentLearning", "ConfidentLearningConfig", "out_of_fold_proba"]
