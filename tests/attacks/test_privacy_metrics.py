"""Membership metrics: ROC thinning keeps the low-FPR points, bootstrap intervals (aisec.attacks.privacy.metrics)."""

from __future__ import annotations

import numpy as np
import pytest

from aisec.attacks.privacy.metrics import (
    bootstrap_intervals,
    clopper_pearson,
    membership_metrics,
    resolution_flags,
    roc_points,
)


def test_every_distinct_low_fpr_point_of_a_small_sample_is_kept() -> None:
    rng = np.random.default_rng(0)
    s_in, s_out = rng.normal(1.0, 1.0, 72), rng.normal(0.0, 1.0, 72)
    m = membership_metrics(s_in, s_out)
    fpr, _ = roc_points(s_in, s_out)
    low = sorted({round(float(f), 6) for f in fpr if f <= 0.4})
    assert sorted({f for f in m["roc_fpr"] if f <= 0.4}) == low
    assert len(low) > 20  # 1/72 steps: a point every 1.4% of FPR, none skipped
    assert len(m["roc_fpr"]) == len(m["roc_tpr"])
    assert m["roc_fpr"] == sorted(m["roc_fpr"]) and m["roc_tpr"] == sorted(m["roc_tpr"])


def test_a_large_sample_is_thinned_on_a_log_scale_but_keeps_its_smallest_fprs() -> None:
    rng = np.random.default_rng(1)
    s_in, s_out = rng.normal(0.5, 1.0, 20_000), rng.normal(0.0, 1.0, 20_000)
    m = membership_metrics(s_in, s_out, max_points=200)
    assert len(m["roc_fpr"]) <= 202
    fpr = np.array(m["roc_fpr"])
    for k in range(1, 6):  # the first distinct FPRs, k / 20000, are all there
        assert np.isclose(fpr, k / 20_000).any()
    assert (fpr > 0.5).sum() < (fpr < 0.05).sum()  # thinned where points crowd, not where they are rare
    assert 0.0 in m["roc_fpr"] and 1.0 in m["roc_fpr"]


def test_tied_scores_leave_no_point_to_keep() -> None:
    """A jump from FPR 0 to 0.5 with nothing between is the data (ties), not the thinning."""
    s_out = np.array([1.0] * 36 + list(np.linspace(-1, 0, 36)))
    m = membership_metrics(np.ones(72), s_out)
    assert [f for f in m["roc_fpr"] if 0 < f < 0.5] == []


def test_bootstrap_intervals_hold_the_estimate_and_narrow_with_more_data() -> None:
    rng = np.random.default_rng(2)
    small = bootstrap_intervals(rng.normal(0.5, 1, 100), rng.normal(0, 1, 100), n_boot=200)
    large = bootstrap_intervals(rng.normal(0.5, 1, 2000), rng.normal(0, 1, 2000), n_boot=200)
    lo, hi = large["auc_ci95"]
    assert hi - lo < small["auc_ci95"][1] - small["auc_ci95"][0]
    assert set(large) == {"auc_ci95", "tpr_at_1pct_fpr_ci95", "tpr_at_0.1pct_fpr_ci95"}


def test_the_auc_interval_covers_the_true_auc_about_95_percent_of_the_time() -> None:
    rng = np.random.default_rng(3)
    truth = 0.638  # AUC of N(0.5, 1) against N(0, 1): Phi(0.5 / sqrt(2))
    covered = 0
    for i in range(20):
        lo, hi = bootstrap_intervals(rng.normal(0.5, 1, 300), rng.normal(0, 1, 300), n_boot=100, seed=i)["auc_ci95"]
        covered += lo <= truth <= hi
    assert covered >= 15  # expected 19 of 20; 15 or fewer has probability below 0.3%


def test_the_clopper_pearson_interval_is_exact_at_the_edges_and_covers_the_proportion() -> None:
    lo, hi = clopper_pearson(np.array([0, 32, 64]), 64)
    assert lo[0] == 0.0 and hi[2] == 1.0
    assert hi[0] == pytest.approx(1 - 0.025 ** (1 / 64))  # k = 0: the closed form 1 - (alpha / 2)^(1/n)
    assert lo[1] < 0.5 < hi[1] and hi[1] - lo[1] == pytest.approx(0.25, abs=0.02)
    wide, _ = clopper_pearson(np.array([32]), 64, confidence=0.99)
    assert wide[0] < lo[1]  # more confidence, a wider interval


def test_a_sample_too_small_for_0_1pct_fpr_is_flagged_with_what_it_resolves() -> None:
    rng = np.random.default_rng(2)
    (flag,) = resolution_flags(membership_metrics(rng.normal(size=225), rng.normal(size=225)))
    assert flag == (
        "only 225 non-members: FPRs below 0.44% are not resolved, so TPR at 0.1% FPR is the TPR at zero false positives"
    )
    assert resolution_flags(membership_metrics(rng.normal(size=100), rng.normal(size=1000))) == []
