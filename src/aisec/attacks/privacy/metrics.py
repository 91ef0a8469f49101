"""Privacy-attack metrics: AUC, TPR at low FPR, balanced accuracy (Carlini et al. 2022), exact binomial intervals."""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.stats import beta


def roc_points(scores_in: np.ndarray, scores_out: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(fpr, tpr) over every threshold; a higher score means "member"."""
    from sklearn.metrics import roc_curve

    y = np.concatenate([np.ones(len(scores_in)), np.zeros(len(scores_out))])
    s = np.concatenate([scores_in, scores_out])
    fpr, tpr, _ = roc_curve(y, s, drop_intermediate=False)
    return fpr, tpr


def tpr_at_fpr(fpr: np.ndarray, tpr: np.ndarray, target: float) -> float:
    """Highest TPR among thresholds whose FPR does not exceed ``target``."""
    ok = fpr <= target + 1e-12
    return float(tpr[ok].max()) if ok.any() else 0.0


def thin_roc(fpr: np.ndarray, tpr: np.ndarray, max_points: int = 200) -> np.ndarray:
    """Indices of ROC points to keep for a log-log plot.

    For every distinct FPR the curve has a lowest and a highest TPR (its vertical step); both
    are kept. When there are more than ``max_points`` of them, distinct FPRs are picked on a
    log-spaced grid from the smallest non-zero FPR to 1, so every distinct low FPR (where points
    are far apart on a log scale) survives and only the crowded high-FPR region is thinned.
    """
    if len(fpr) == 0:
        return np.zeros(0, dtype=int)
    starts = np.concatenate([[0], np.flatnonzero(np.diff(fpr)) + 1])
    ends = np.concatenate([starts[1:] - 1, [len(fpr) - 1]])
    pick = np.arange(len(starts))
    if 2 * len(starts) > max_points:
        distinct = fpr[starts]
        low = distinct[distinct > 0].min() if (distinct > 0).any() else 1.0
        grid = np.logspace(np.log10(low), 0.0, max(2, max_points // 2))
        pick = np.unique(np.concatenate([[0], np.clip(np.searchsorted(distinct, grid, side="right") - 1, 0, None)]))
    return np.unique(np.concatenate([starts[pick], ends[pick]]))


def membership_metrics(scores_in: np.ndarray, scores_out: np.ndarray, *, max_points: int = 200) -> dict[str, Any]:
    """AUC, TPR at 1% and 0.1% FPR, the lowest FPR the sample resolves, and thinned ROC points.

    ``best_balanced_accuracy`` is the balanced accuracy at the best threshold, chosen knowing the
    answers (an optimistic figure, as Shokri et al. 2017 report it; Carlini et al. 2022 explain
    why TPR at low FPR says more).
    """
    from sklearn.metrics import auc

    fpr, tpr = roc_points(scores_in, scores_out)
    n_out = len(scores_out)
    min_fpr = 1.0 / n_out if n_out else 1.0
    idx = thin_roc(fpr, tpr, max_points)
    return {
        "auc": float(auc(fpr, tpr)),
        "tpr_at_1pct_fpr": tpr_at_fpr(fpr, tpr, 0.01),
        "tpr_at_0.1pct_fpr": tpr_at_fpr(fpr, tpr, 0.001),
        "best_balanced_accuracy": float((0.5 * (tpr + 1.0 - fpr)).max()) if len(fpr) else 0.5,
        "min_resolvable_fpr": min_fpr,
        "n_members": len(scores_in),
        "n_non_members": n_out,
        "roc_fpr": fpr[idx].round(6).tolist(),
        "roc_tpr": tpr[idx].round(6).tolist(),
    }


def resolution_flags(metrics: dict[str, Any]) -> list[str]:
    """A flag when the evaluation set (``metrics["n_non_members"]``) is too small to resolve 0.1% FPR."""
    if metrics["min_resolvable_fpr"] <= 0.001:
        return []
    return [
        f"only {metrics['n_non_members']} non-members: FPRs below {metrics['min_resolvable_fpr']:.2%} are not "
        "resolved, so TPR at 0.1% FPR is the TPR at zero false positives"
    ]


def bootstrap_intervals(
    scores_in: np.ndarray, scores_out: np.ndarray, *, n_boot: int = 200, seed: int = 0, level: float = 0.95
) -> dict[str, list[float]]:
    """Percentile bootstrap intervals of AUC and TPR at 1% / 0.1% FPR.

    Members and non-members are resampled separately (with replacement), so every resample keeps
    the sample sizes, and with them the lowest FPR that can be resolved.
    """
    from sklearn.metrics import auc

    rng = np.random.default_rng(seed)
    stats: dict[str, list[float]] = {"auc": [], "tpr_at_1pct_fpr": [], "tpr_at_0.1pct_fpr": []}
    if len(scores_in) == 0 or len(scores_out) == 0 or n_boot < 1:
        return {f"{k}_ci95": [0.0, 0.0] for k in stats}
    for _ in range(n_boot):
        a = scores_in[rng.integers(0, len(scores_in), len(scores_in))]
        b = scores_out[rng.integers(0, len(scores_out), len(scores_out))]
        fpr, tpr = roc_points(a, b)
        stats["auc"].append(auc(fpr, tpr))
        stats["tpr_at_1pct_fpr"].append(tpr_at_fpr(fpr, tpr, 0.01))
        stats["tpr_at_0.1pct_fpr"].append(tpr_at_fpr(fpr, tpr, 0.001))
    q = [50 * (1 - level), 50 * (1 + level)]
    return {f"{k}_ci95": [float(v) for v in np.percentile(np.array(s), q)] for k, s in stats.items()}


def clopper_pearson(k: np.ndarray, n: int, confidence: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Two-sided Clopper-Pearson interval of a binomial proportion ``k / n`` (exact, conservative)."""
    k = np.asarray(k, dtype=float)
    a = (1.0 - confidence) / 2.0
    low = np.where(k > 0, beta.ppf(a, np.maximum(k, 1e-300), n - k + 1), 0.0)
    high = np.where(k < n, beta.ppf(1 - a, k + 1, np.maximum(n - k, 1e-300)), 1.0)
    return low, high
