"""Membership-inference metrics: AUC, TPR at low FPR, balanced accuracy (Carlini et al. 2022)."""

from __future__ import annotations

from typing import Any

import numpy as np


def roc_points(scores_in: np.ndarray, scores_out: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(fpr, tpr) over every threshold; a higher score means "member"."""
    from sklearn.metrics import roc_curve

    y = np.concatenate([np.ones(len(scores_in)), np.zeros(len(scores_out))])
    s = np.concatenate([scores_in, scores_out])
    fpr, tpr, _ = roc_curve(y, s)
    return fpr, tpr


def tpr_at_fpr(fpr: np.ndarray, tpr: np.ndarray, target: float) -> float:
    """Highest TPR among thresholds whose FPR does not exceed ``target``."""
    ok = fpr <= target + 1e-12
    return float(tpr[ok].max()) if ok.any() else 0.0


def membership_metrics(scores_in: np.ndarray, scores_out: np.ndarray, *, max_points: int = 200) -> dict[str, Any]:
    """AUC, TPR at 1% and 0.1% FPR, the lowest FPR the sample resolves, and thinned ROC points."""
    from sklearn.metrics import auc

    fpr, tpr = roc_points(scores_in, scores_out)
    n_out = len(scores_out)
    min_fpr = 1.0 / n_out if n_out else 1.0
    # thin the ROC for the report, keeping points spread on a log scale of FPR
    grid = np.unique(np.concatenate([[0.0], np.logspace(-4, 0, max_points)]))
    idx = np.unique(np.clip(np.searchsorted(fpr, grid, side="right") - 1, 0, len(fpr) - 1))
    return {
        "auc": float(auc(fpr, tpr)),
        "tpr_at_1pct_fpr": tpr_at_fpr(fpr, tpr, 0.01),
        "tpr_at_0.1pct_fpr": tpr_at_fpr(fpr, tpr, 0.001),
        "min_resolvable_fpr": min_fpr,
        "n_members": len(scores_in),
        "n_non_members": n_out,
        "roc_fpr": fpr[idx].round(6).tolist(),
        "roc_tpr": tpr[idx].round(6).tolist(),
    }
