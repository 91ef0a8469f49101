"""The scorecard: threshold edges per need, scores through the need anchors, 'not assessed'."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from aisec.assess.scoring import NEED_ANCHORS, RULES, Rule, score_findings, thresholds_markdown
from aisec.attacks.privacy.metrics import bootstrap_intervals, clopper_pearson, membership_metrics
from aisec.core.findings import Finding
from aisec.core.goals import Goal, ProtectionNeed

REPO = Path(__file__).resolve().parents[2]
NEEDS = list(ProtectionNeed)


def finding(attack: str, goal: str, metrics: dict[str, Any], *, job: str | None = None, **kw: Any) -> Finding:
    return Finding(
        job_id=job or f"{attack}-0001",
        attack=attack,
        goal=goal,
        knowledge="white-box",
        output="probabilities",
        metrics=metrics,
        headline=kw.pop("headline", next(iter(metrics), None)),
        worse_when=kw.pop("worse_when", "higher"),
        **kw,
    )


def metrics_for(rule: Rule, value: float) -> dict[str, Any]:
    """Metrics that make ``rule`` read ``value``."""
    m = rule.metric
    if m == "robust_accuracy_ratio":
        return {"clean_accuracy": 0.8, "robust_accuracy": 0.8 * value, "eps": 0.1}
    if m == "backdoor_success_rate":
        return {"attack_success_rate": value, "poison_fraction": 0.05, "clean_accuracy": 0.9}
    if m == "auc_advantage":
        return {"auc": 0.5 + value}
    if m == "classes_recovered_share":
        return {"classes_recovered": value * 10, "n_classes": 10}
    if m == "tpr_at_1pct_fpr":
        return {"tpr_at_1pct_fpr": value}
    return {m: value}


def one_check(rule: Rule, value: float, need: ProtectionNeed):
    card = score_findings([finding("x", rule.goal.value, metrics_for(rule, value))], {rule.goal: need})
    checks = [c for c in card.goal(rule.goal).checks if c.metric == rule.metric]
    assert len(checks) == 1, card.goal(rule.goal).checks
    return card.goal(rule.goal), checks[0]


def _step(rule: Rule, t: float) -> float:
    """A value just past the threshold on the unsafe side."""
    delta = max(abs(t) * 1e-3, 1e-6)
    return t - delta if rule.comparison == ">=" else t + delta


@pytest.mark.parametrize("need", NEEDS, ids=[n.value for n in NEEDS])
@pytest.mark.parametrize("rule", RULES, ids=[r.metric for r in RULES])
def test_value_at_threshold_passes_and_just_past_it_fails(rule: Rule, need: ProtectionNeed) -> None:
    t = rule.threshold(need)
    row, check = one_check(rule, t, need)
    assert check.passed is True and check.threshold == pytest.approx(t)
    assert check.score == pytest.approx(NEED_ANCHORS[need], abs=0.11) or rule.metric == "dangerous"
    row, check = one_check(rule, _step(rule, t), need)
    assert check.passed is False
    assert row.verdict == "fail"
    assert check.score is not None and check.score < NEED_ANCHORS[need]


@pytest.mark.parametrize("rule", RULES, ids=[r.metric for r in RULES])
def test_thresholds_tighten_with_need_and_scores_are_monotone(rule: Rule) -> None:
    t = [rule.threshold(n) for n in (ProtectionNeed.NORMAL, ProtectionNeed.HIGH, ProtectionNeed.VERY_HIGH)]
    safer = (lambda a, b: a <= b) if rule.comparison == ">=" else (lambda a, b: a >= b)
    assert safer(t[0], t[1]) and safer(t[1], t[2])
    lo, hi = sorted((rule.best, rule.worst))
    grid = [lo + (hi - lo) * i / 200 for i in range(201)]
    scores = [rule.score(v) for v in grid]
    if rule.comparison == "<=":  # higher value is worse: scores fall
        assert all(a >= b - 1e-9 for a, b in itertools.pairwise(scores))
    else:
        assert all(a <= b + 1e-9 for a, b in itertools.pairwise(scores))
    assert rule.score(rule.best) == 100.0 and rule.score(rule.worst) == 0.0


def test_need_without_finding_is_not_assessed_never_pass() -> None:
    card = score_findings([], {"integrity": "high", "privacy": "normal"})
    assert card.goal("integrity").verdict == "not assessed"
    assert card.goal("integrity").score is None
    assert card.goal("availability").verdict == "not requested"
    assert card.passed is False


def test_errored_findings_do_not_assess_a_goal() -> None:
    f = Finding(
        job_id="pgd-1", attack="pgd", goal="integrity", knowledge="white-box", output="probabilities",
        status="error", error="boom", headline="robust_accuracy", worse_when="lower",
    )  # fmt: skip
    row = score_findings([f], {"integrity": "normal"}).goal("integrity")
    assert row.verdict == "not assessed"
    assert row.checks[0].passed is None and "boom" in row.checks[0].explanation


def test_finding_without_known_metric_is_shown_not_gated() -> None:
    row = score_findings([finding("new-attack", "privacy", {"novel": 0.9})], {"privacy": "high"}).goal("privacy")
    assert row.verdict == "not assessed" and row.checks[0].passed is None


def test_model_scan_alone_can_fail_but_not_pass_integrity() -> None:
    clean = finding("model-scan", "integrity", {"dangerous": 0, "suspicious": 1}, headline="dangerous", worse_when=None)
    bad = finding("model-scan", "integrity", {"dangerous": 2, "suspicious": 0}, headline="dangerous", worse_when=None)
    assert score_findings([clean], {"integrity": "normal"}).goal("integrity").verdict == "not assessed"
    row = score_findings([bad], {"integrity": "normal"}).goal("integrity")
    assert row.verdict == "fail" and row.score == 0.0
    assert "safe-serialization" in row.fixes


def test_goal_score_is_the_weakest_check_and_fixes_come_from_the_catalog() -> None:
    weak = finding("pgd", "integrity", {"clean_accuracy": 0.9, "robust_accuracy": 0.09}, job="pgd-a",
                   atlas="AML.T0043.000", owasp="ML01")  # fmt: skip
    strong = finding("fgsm", "integrity", {"clean_accuracy": 0.9, "robust_accuracy": 0.81}, job="fgsm-a")
    card = score_findings([weak, strong], {"integrity": "normal"})
    row = card.goal("integrity")
    assert row.score == pytest.approx(min(c.score for c in row.checks))
    assert row.score < 50 < max(c.score for c in row.checks)
    assert row.verdict == "fail"
    assert row.fixes[0] == "adversarial-training"
    assert card.top_fixes[0] == "adversarial-training" and len(card.top_fixes) <= 3
    assert "incident-plan" not in card.top_fixes


def test_need_changes_the_verdict_not_the_score() -> None:
    f = finding("loss-threshold", "privacy", {"auc": 0.6, "tpr_at_0.1pct_fpr": 0.01, "tpr_at_1pct_fpr": 0.05})
    normal = score_findings([f], {"privacy": "normal"}).goal("privacy")
    very_high = score_findings([f], {"privacy": "very-high"}).goal("privacy")
    assert normal.score == very_high.score
    assert normal.verdict == "pass" and very_high.verdict == "fail"
    # 1% FPR is only the fallback when 0.1% is reported
    assert {c.metric for c in normal.checks} == {"tpr_at_0.1pct_fpr", "auc_advantage"}


def _membership(shift: float, n: int, seed: int, *, intervals: bool = True) -> Finding:
    """A membership finding from scores of ``n`` members ~ N(shift, 1) and ``n`` non-members ~ N(0, 1)."""
    rng = np.random.default_rng(seed)
    s_in, s_out = rng.normal(shift, 1.0, n), rng.normal(0.0, 1.0, n)
    metrics = membership_metrics(s_in, s_out)
    if intervals:
        metrics |= bootstrap_intervals(s_in, s_out, n_boot=200, seed=seed)
    return finding("loss-threshold", "privacy", metrics, headline="auc")


def test_a_chance_level_membership_attack_does_not_fail_a_need_by_luck() -> None:
    # 60 attacks that know nothing, on 225 members and 225 non-members (the default sample). Judged on their point
    # estimates, 15 of them failed the very-high need (TPR at 0.1% FPR, read at zero false positives, or AUC - 0.5
    # above 0.03); judged on what their 95% intervals show, none (0 of 100 too, 26 of 100 on point estimates)
    fails = {True: 0, False: 0}
    for seed in range(60):
        for intervals in (True, False):
            row = score_findings([_membership(0.0, 225, seed, intervals=intervals)], {"privacy": "very-high"})
            fails[intervals] += row.goal("privacy").verdict == "fail"
    assert fails[True] <= 3 and fails[False] >= 8, fails


def test_a_real_membership_leak_still_fails_on_its_intervals() -> None:
    for seed in range(10):  # members' scores one standard deviation higher: AUC about 0.76
        row = score_findings([_membership(1.0, 225, seed)], {"privacy": "normal"}).goal("privacy")
        assert row.verdict == "fail"
    tpr = next(c for c in row.checks if c.metric == "tpr_at_0.1pct_fpr")
    assert "95% CI" in tpr.explanation and "so at least" in tpr.explanation


def test_checks_with_intervals_are_judged_on_what_they_show() -> None:
    # a small sample (72 non-members) cannot resolve 0.1% FPR: chance alone puts 1/73 of the members above them all
    metrics = {"auc": 0.52, "auc_ci95": [0.41, 0.60], "tpr_at_0.1pct_fpr": 4 / 72, "n_non_members": 72,
               "tpr_at_0.1pct_fpr_ci95": [1 / 72, 8 / 72], "tpr_at_1pct_fpr": 4 / 72}  # fmt: skip
    row = score_findings([finding("loss-threshold", "privacy", metrics)], {"privacy": "very-high"}).goal("privacy")
    tpr, auc = (next(c for c in row.checks if c.metric == m) for m in ("tpr_at_0.1pct_fpr", "auc_advantage"))
    assert tpr.passed is True and tpr.value == pytest.approx(1 / 72 - (1 / 73 - 0.001))
    assert "chance alone reaches 0.0137 on this sample" in tpr.explanation
    assert auc.passed is True and auc.value == 0.0 and auc.score == 100.0  # the interval holds 0.5
    # the same figures from 1,000 non-members resolve 0.1% FPR: no chance floor, and the lower end fails very-high
    row = score_findings([finding("lira", "privacy", metrics | {"n_non_members": 1000})], {"privacy": "very-high"})
    tpr = next(c for c in row.goal("privacy").checks if c.metric == "tpr_at_0.1pct_fpr")
    assert tpr.passed is False and tpr.value == pytest.approx(1 / 72) and "chance alone" not in tpr.explanation
    # an attribute-inference gain whose interval holds 0 is no leak beyond data correlations, so it fails no need
    f = finding("attribute-inference", "privacy", {"gain_over_baseline": 0.04, "gain_ci95": [-0.01, 0.09]})
    check = score_findings([f], {"privacy": "very-high"}).goal("privacy").checks[0]
    assert check.passed is True and check.value == 0.0
    # without an interval the point estimate is judged, as before
    f = finding("attribute-inference", "privacy", {"gain_over_baseline": 0.04})
    assert score_findings([f], {"privacy": "very-high"}).goal("privacy").checks[0].passed is False


def test_a_label_flip_finding_is_judged_on_its_accuracy_drop_only() -> None:
    # it has a poison fraction but no attack success rate: no backdoor check that "did not run"
    f = finding("label-flip", "integrity", {"accuracy_drop": 0.08, "poison_fraction": 0.2, "clean_accuracy": 0.98})
    checks = score_findings([f], {"integrity": "high"}).goal("integrity").checks
    assert [(c.metric, c.passed) for c in checks] == [("accuracy_drop", False)]


def test_a_focused_attack_on_five_targets_is_judged_on_its_exact_interval() -> None:
    def focused(blocked: int, baseline: float) -> Finding:
        low, high = clopper_pearson(np.array(blocked), 5)
        metrics = {"target_block_rate": blocked / 5, "target_block_rate_ci95": [float(low), float(high)],
                   "baseline_block_rate": baseline, "n_targets": 5}  # fmt: skip
        return finding("focused", "availability", metrics)

    one = score_findings([focused(1, 0.0)], {"availability": "very-high"}).goal("availability").checks[0]
    assert one.passed is True and one.value == pytest.approx(clopper_pearson(np.array(1), 5)[0])
    five = score_findings([focused(5, 0.0)], {"availability": "high"}).goal("availability").checks[0]
    assert five.passed is False and five.value == pytest.approx(0.478, abs=1e-3)
    # what the clean retrain already blocks is no attack's doing
    four = score_findings([focused(4, 0.2)], {"availability": "normal"}).goal("availability").checks[0]
    assert "the clean retrain reaches 0.2 on this sample" in four.explanation
    assert four.value == pytest.approx(clopper_pearson(np.array(4), 5)[0] - 0.2)


def test_extraction_that_never_reaches_90pct_passes_that_check() -> None:
    f = finding("knockoff", "confidentiality", {"fidelity": 0.6, "queries": 5000, "queries_to_90pct_fidelity": None})
    row = score_findings([f], {"confidentiality": "very-high"}).goal("confidentiality")
    q = next(c for c in row.checks if c.metric == "queries_to_90pct_fidelity")
    assert q.passed is True and "5000 queries" in q.explanation
    assert row.verdict == "pass"


def test_not_requested_goal_keeps_checks_but_does_not_gate() -> None:
    f = finding("sponge", "availability", {"latency_amplification_p99": 50.0})
    card = score_findings([f], {})
    row = card.goal("availability")
    assert row.verdict == "not requested" and row.checks[0].passed is False and row.fixes == ()
    assert card.passed is True


def test_docs_table_matches_the_rules() -> None:
    doc = (REPO / "docs" / "scoring.md").read_text(encoding="utf-8")
    assert thresholds_markdown() in doc
    assert {r.goal for r in RULES} == set(Goal)
