"""Drift: shifted inputs are flagged (KS for tabular rows, MMD for images), same-distribution windows are not."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from aisec.data import Dataset
from aisec.errors import ConfigError
from aisec.gateway.monitors import DriftMonitor, build_monitors
from aisec.gateway.monitors.drift import holm, ks_pvalues
from aisec.gateway.store import MemoryStore

N_WINDOWS = 40


def _drift(reference, **kw) -> DriftMonitor:
    (mon,) = build_monitors([{"name": "drift", **kw}], MemoryStore(), reference)
    assert isinstance(mon, DriftMonitor)
    return mon


def _rate(mon: DriftMonitor, pool: np.ndarray, size: int, shift=lambda w, r: w) -> float:
    hits = 0
    for i in range(N_WINDOWS):
        rng = np.random.default_rng(1000 + i)
        w = shift(pool[rng.choice(len(pool), size, replace=False)].copy(), rng)
        hits += mon.test(w.reshape(size, -1))[0]
    return hits / N_WINDOWS


@pytest.fixture(scope="module")
def digits_drift(digits: Dataset) -> DriftMonitor:
    return _drift(digits.x_train.numpy())


def test_digits_use_mmd_and_same_distribution_windows_pass(digits: Dataset, digits_drift: DriftMonitor) -> None:
    assert digits_drift.method == "mmd"
    # Measured: 0 of 40 test-split windows of 200 flagged (alpha = 0.01).
    assert _rate(digits_drift, digits.x_test.numpy(), 200) <= 0.1


def test_digits_brightness_shift_is_flagged(digits: Dataset, digits_drift: DriftMonitor) -> None:
    # Measured: 40 of 40 windows flagged for +0.05 brightness.
    rate = _rate(digits_drift, digits.x_test.numpy(), 200, lambda w, r: np.clip(w + 0.05, 0.0, 1.0))
    assert rate >= 0.9


def test_cancer_uses_ks_and_flags_a_shift_of_three_features(cancer: Dataset) -> None:
    mon = _drift(cancer.x_train.numpy(), window=100)
    assert mon.method == "ks"
    x_test = cancer.x_test.numpy()
    # Measured over 50 windows: none flagged unshifted; 48/50 with 3 of 30 features shifted by 0.3 sd, 50/50 by 0.5.
    assert _rate(mon, x_test, 100) <= 0.1

    def shift(w: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        w[:, :3] += 0.5
        return w

    assert _rate(mon, x_test, 100, shift) >= 0.9


def test_observe_tests_every_n_queries_once_the_window_is_full(digits: Dataset) -> None:
    store = MemoryStore()
    (mon,) = build_monitors([{"name": "drift", "every": 50, "action": "block"}], store, digits.x_train.numpy())
    x = np.clip(digits.x_test.numpy() + 0.2, 0.0, 1.0)
    fired = [i for i in range(0, 400, 10) if mon.observe("k", x[i : i + 10], np.ones((10, 10)) / 10, 0.0)]
    assert fired and fired[0] + 10 == 200 and all((i + 10) % 50 == 0 for i in fired)
    assert len(store.items("aisec:mon:drift:k:w")) == 200
    alert = mon.observe("k", x[:50], np.ones((50, 10)) / 10, 0.0)[0]
    assert alert.action == "block" and "MMD" in alert.message


def test_service_scope_pools_keys(cancer: Dataset) -> None:
    mon = _drift(cancer.x_train.numpy(), window=100, every=100, scope="service")
    w = cancer.x_test.numpy()[:100] + 1.0
    assert mon.observe("a", w[:50], np.ones((50, 2)) / 2, 0.0) == []
    assert mon.observe("b", w[50:], np.ones((50, 2)) / 2, 0.0)


def test_ks_pvalues_agree_with_scipy_and_are_conservative() -> None:
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(200, 4)), rng.normal(0.2, 1.0, size=(1000, 4))
    ours = ks_pvalues(a, np.sort(b, axis=0))
    ref = np.array([stats.ks_2samp(a[:, j], b[:, j], method="asymp").pvalue for j in range(4)])
    stat = np.array([stats.ks_2samp(a[:, j], b[:, j]).statistic for j in range(4)])
    assert np.allclose(ours, stats.kstwobign.sf(stat * np.sqrt(200 * 1000 / 1200)), rtol=1e-9)
    assert np.all(ours >= ref) and np.allclose(ours, ref, rtol=0.25, atol=1e-4)


def test_holm_is_between_bonferroni_and_uncorrected() -> None:
    p = np.array([0.001, 0.014, 0.03, 0.5])
    assert holm(p, 0.05, bonferroni=True).tolist() == [True, False, False, False]
    assert holm(p, 0.05).tolist() == [True, True, False, False]  # 0.014 <= 0.05/3; 0.03 > 0.05/2


def test_text_drift_uses_hashed_ngrams() -> None:
    ham = [f"see you at {h} for dinner with {n}" for h in range(1, 13) for n in ("anna", "bob", "carl", "dora", "eve")]
    spam = [f"win {k} pounds cash now call 0800{k:03d}" for k in range(60)]
    mon = _drift(ham, window=30, n_calibration=100)
    assert mon.method == "mmd"
    assert mon.test(_feats(spam[:30]))[0] and not mon.test(_feats(ham[::2][:30]))[0]


def _feats(texts: list[str]) -> np.ndarray:
    from aisec.gateway.monitors.base import as_features

    return as_features(texts)


def test_reference_is_required_and_must_exceed_the_window(cancer: Dataset) -> None:
    with pytest.raises(ConfigError, match="reference"):
        build_monitors([{"name": "drift"}], MemoryStore(), None)
    with pytest.raises(ConfigError, match="window"):
        _drift(cancer.x_train.numpy()[:100], window=100)
    with pytest.raises(ConfigError, match="correction"):
        _drift(cancer.x_train.numpy(), correction="sidak")
