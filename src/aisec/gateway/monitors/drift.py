"""Input drift: a window of a key's recent inputs tested against a reference sample.

Tabular inputs: a two-sample Kolmogorov-Smirnov test per feature with Holm's (or Bonferroni's)
correction for the number of features. Images and texts (hashed n-grams): the maximum mean
discrepancy with an RBF kernel (Gretton et al., "A Kernel Two-Sample Test", JMLR 2012), whose
threshold is calibrated once at start-up by splitting the reference at random ``n_calibration``
times and taking the ``1 - alpha`` quantile of the statistic. See Rabanser, Günnemann and
Lipton, "Failing Loudly: An Empirical Study of Methods for Detecting Dataset Shift", NeurIPS 2019,
arXiv:1810.11953, for both tests on model inputs.

The window holds the newest ``window`` inputs (per key, or of the whole service with
``scope: service``) and is tested every ``every`` queries once full.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from scipy import stats

from aisec.errors import ConfigError
from aisec.gateway.monitors.base import (
    Action,
    Alert,
    Inputs,
    StoreLike,
    as_features,
    check_fields,
    make_config,
    push_rows,
    read_rows,
    register_monitor,
    state_key,
)


@dataclass(frozen=True, kw_only=True, slots=True)
class DriftConfig:
    """Settings of :class:`DriftMonitor`; ``method`` ``auto`` picks KS for tabular rows, MMD otherwise."""

    method: Literal["auto", "ks", "mmd"] = "auto"
    alpha: float = 0.01
    correction: Literal["holm", "bonferroni"] = "holm"
    window: int = 200
    every: int = 50
    n_calibration: int = 200
    max_reference: int = 1000
    scope: Literal["key", "service"] = "key"
    seed: int = 0
    action: Action = "log"

    def __post_init__(self) -> None:
        check_fields(
            self,
            "drift",
            unit=("alpha",),
            positive=("window", "every", "n_calibration", "max_reference"),
            integer=("window", "every", "n_calibration", "max_reference", "seed"),
        )
        for f, allowed in (
            ("method", ("auto", "ks", "mmd")),
            ("correction", ("holm", "bonferroni")),
            ("scope", ("key", "service")),
        ):
            if getattr(self, f) not in allowed:
                raise ConfigError(f"drift.{f}: expected one of {list(allowed)}, got {getattr(self, f)!r}")


def holm(pvalues: np.ndarray, alpha: float, *, bonferroni: bool = False) -> np.ndarray:
    """Which hypotheses are rejected at family-wise level ``alpha`` (Holm 1979, or Bonferroni)."""
    m = pvalues.size
    if bonferroni:
        return pvalues <= alpha / m
    order = np.argsort(pvalues)
    passed = pvalues[order] <= alpha / (m - np.arange(m))
    k = m if passed.all() else int(np.argmin(passed))
    reject = np.zeros(m, dtype=bool)
    reject[order[:k]] = True
    return reject


def ks_pvalues(window: np.ndarray, reference_sorted: np.ndarray) -> np.ndarray:
    """Two-sample KS p-values per column (limiting Kolmogorov distribution: a little conservative, and 1000x faster than the exact one)."""
    n, m = window.shape[0], reference_sorted.shape[0]
    a = np.sort(window, axis=0)
    d = np.zeros(a.shape[1])
    for j in range(a.shape[1]):
        both = np.concatenate([a[:, j], reference_sorted[:, j]])
        cdf_a = np.searchsorted(a[:, j], both, side="right") / n
        cdf_b = np.searchsorted(reference_sorted[:, j], both, side="right") / m
        d[j] = np.abs(cdf_a - cdf_b).max()
    return np.where(d > 0, stats.kstwobign.sf(d * np.sqrt(n * m / (n + m))), 1.0)


def _sq_dists(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.maximum((a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * a @ b.T, 0.0)


@register_monitor("drift")
class DriftMonitor:
    """Flags a window of inputs whose distribution differs from the reference sample."""

    name = "drift"

    def __init__(self, config: DriftConfig, store: StoreLike, reference: Inputs) -> None:
        self.config = config
        self.store = store
        ref = as_features(reference)
        rng = np.random.default_rng(config.seed)
        if ref.shape[0] > config.max_reference:
            ref = ref[rng.choice(ref.shape[0], config.max_reference, replace=False)]
        self.method = config.method
        if self.method == "auto":
            tabular = not isinstance(reference, list) and np.asarray(reference).ndim == 2
            self.method = "ks" if tabular else "mmd"
        if ref.shape[0] < config.window + 10:
            raise ConfigError(f"drift: the reference needs more rows than window={config.window}, got {ref.shape[0]}")
        self.reference = ref
        self.reference_sorted = np.sort(ref, axis=0)
        self.dim = ref.shape[1]
        self.threshold = 0.0
        if self.method == "mmd":
            self._calibrate(rng)

    @classmethod
    def from_config(cls, values: Mapping[str, Any], store: StoreLike, reference: Inputs | None = None) -> DriftMonitor:
        if reference is None:
            raise ConfigError("drift: needs a reference sample of in-distribution inputs (gateway setting 'reference')")
        return cls(make_config(DriftConfig, "drift", values), store, reference)

    def _calibrate(self, rng: np.random.Generator) -> None:
        ref, w = self.reference, self.config.window
        sub = ref[rng.choice(ref.shape[0], min(ref.shape[0], 300), replace=False)]
        d2 = _sq_dists(sub, sub)[np.triu_indices(sub.shape[0], 1)]
        self.gamma = 1.0 / max(float(np.median(d2)), 1e-12)  # k(a, b) = exp(-gamma |a - b|^2)
        k = np.exp(-self.gamma * _sq_dists(ref, ref))
        self.ref_mean = float(k.mean())
        total, rows, m = float(k.sum()), k.sum(1), ref.shape[0]
        null = np.empty(self.config.n_calibration)
        for i in range(null.size):
            idx = rng.choice(m, w, replace=False)
            s_ww = float(k[np.ix_(idx, idx)].sum())
            s_wall = float(rows[idx].sum())
            s_wr, s_rr = s_wall - s_ww, total - 2.0 * s_wall + s_ww
            null[i] = s_ww / w**2 + s_rr / (m - w) ** 2 - 2.0 * s_wr / (w * (m - w))
        self.threshold = float(np.quantile(null, 1.0 - self.config.alpha))

    def mmd2(self, window: np.ndarray) -> float:
        """Biased squared MMD between ``window`` and the reference (RBF kernel, median bandwidth)."""
        k_ww = np.exp(-self.gamma * _sq_dists(window, window)).mean()
        k_wr = np.exp(-self.gamma * _sq_dists(window, self.reference)).mean()
        return float(k_ww + self.ref_mean - 2.0 * k_wr)

    def test(self, window: np.ndarray) -> tuple[bool, float, str]:
        """Test one window: (drifted, score, explanation)."""
        cfg = self.config
        if self.method == "mmd":
            stat = self.mmd2(window)
            return stat > self.threshold, stat, f"MMD^2={stat:.4g} > calibrated {self.threshold:.4g}"
        p = ks_pvalues(window, self.reference_sorted)
        reject = holm(p, cfg.alpha, bonferroni=cfg.correction == "bonferroni")
        worst = np.argsort(p)[: min(3, int(reject.sum()))]
        return (
            bool(reject.any()),
            float(reject.mean()),
            (
                f"KS rejects {int(reject.sum())}/{self.dim} features ({cfg.correction}, alpha={cfg.alpha}); "
                f"first: {[int(j) for j in worst]}"
            ),
        )

    def observe(self, key_id: str, x: Inputs, probs: np.ndarray, latency_s: float) -> list[Alert]:
        cfg = self.config
        feats = as_features(x)
        if feats.shape[1] != self.dim:
            return []
        scope = key_id if cfg.scope == "key" else "*"
        rows_key = state_key(self.name, scope, "w")
        push_rows(self.store, rows_key, feats[-cfg.window :], cfg.window)
        count = self.store.incr(state_key(self.name, scope, "n"), feats.shape[0])
        if count < cfg.window or count // cfg.every == (count - feats.shape[0]) // cfg.every:
            return []
        window = read_rows(self.store, rows_key, self.dim)
        if window.shape[0] < cfg.window:
            return []
        drifted, score, why = self.test(window)
        if not drifted:
            return []
        return [Alert(monitor=self.name, key_id=key_id, score=score, message=f"input drift: {why}", action=cfg.action)]
