"""The scorecard: per security goal a resistance score 0-100, the need, and a verdict.

Each finding is read through *rules*: a rule takes one metric of a finding (or one derived
from two metrics, such as robust accuracy over clean accuracy), maps it to a resistance score
0-100, and compares it against a threshold that tightens with the protection need. Every rule's
score curve passes through 50 at its ``normal`` threshold, 70 at ``high`` and 85 at
``very-high``, so "the check passes at need N" and "the check scores at least the need's anchor"
say the same thing. A goal's score is its weakest check (the strongest attack sets the
resistance). The thresholds are in one table in ``docs/scoring.md``; :data:`RULES` is its source.

A goal with a declared need and no check that ran is ``not assessed``, never ``pass``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Literal

from aisec.core.findings import Finding
from aisec.core.goals import Goal, ProtectionNeed

Verdict = Literal["pass", "fail", "not assessed", "not requested"]

#: Score a check reaches exactly at the threshold of each need.
NEED_ANCHORS: dict[ProtectionNeed, float] = {
    ProtectionNeed.NORMAL: 50.0,
    ProtectionNeed.HIGH: 70.0,
    ProtectionNeed.VERY_HIGH: 85.0,
}


@dataclass(frozen=True, slots=True)
class Check:
    """One gate of a goal: a metric of one finding against the threshold for the declared need."""

    job_id: str
    metric: str
    value: float | None
    threshold: float | None
    comparison: Literal[">=", "<="]
    passed: bool | None
    """``None`` when the finding has no such metric (or errored): the check did not run."""
    explanation: str
    score: float | None = None
    """Resistance 0-100 this check alone gives (``None`` when it did not run)."""
    attack: str = ""
    """Registered name of the attack behind the finding."""


@dataclass(frozen=True, slots=True)
class GoalScore:
    """The scorecard row of one goal."""

    goal: Goal
    need: ProtectionNeed | None
    score: float | None
    """Resistance 0-100 (100 = no attack made progress); ``None`` when not assessed."""
    verdict: Verdict
    checks: tuple[Check, ...] = ()
    fixes: tuple[str, ...] = ()
    """Mitigation ids (see ``aisec.report.catalog``) that address the failed checks, most useful first."""


@dataclass(frozen=True, slots=True)
class Scorecard:
    """Every goal's score, in the canonical goal order."""

    goals: tuple[GoalScore, ...]
    top_fixes: tuple[str, ...] = field(default_factory=tuple)
    """The three mitigation ids that address the most severe failures across goals."""

    def goal(self, goal: Goal | str) -> GoalScore:
        g = Goal.parse(goal)
        return next(s for s in self.goals if s.goal is g)

    @property
    def passed(self) -> bool:
        """True when no goal with a declared need fails (a goal not assessed does not pass)."""
        return all(s.verdict in ("pass", "not requested") for s in self.goals)


# --------------------------------------------------------------------------------------------
# rules


@dataclass(frozen=True, slots=True)
class Rule:
    """How one metric of a finding is scored and gated.

    ``best`` scores 100 and ``worst`` scores 0; in between the score is piecewise linear
    (in log10 when ``log``) through the need thresholds at the anchors of :data:`NEED_ANCHORS`.
    ``comparison`` says how a value must relate to the threshold to pass (``<=``: lower is safer).
    ``interval`` reads the finding's 95% interval of the value, when it reports one: a ``<=`` check is then
    judged (and scored) on the interval's lower end, what the attack has shown at 95% confidence, so a
    chance-level attack on a small sample does not fail a need by luck (``docs/scoring.md``). ``chance`` gives
    how far above ``best`` the value lies without the attack's skill on the finding's sample (a TPR at an FPR the
    sample cannot resolve; the block rate of a clean retrain), taken off that lower end.
    """

    goal: Goal
    metric: str
    label: str
    comparison: Literal[">=", "<="]
    best: float
    worst: float
    thresholds: Mapping[ProtectionNeed, float]
    log: bool = False
    applies: Callable[[Mapping[str, object]], bool] | None = None
    """Whether a finding's metrics call for this rule; by default, when ``metric`` is among them."""
    value: Callable[[Mapping[str, object]], float | None] | None = None
    interval: Callable[[Mapping[str, object]], tuple[float, float] | None] | None = None
    chance: Callable[[Mapping[str, object]], float] | None = None
    chance_is: str = "chance alone"
    """Who reaches ``best + chance`` without the attack's skill, as the explanation names it."""
    assesses: bool = True
    """False for checks (the model-file scan) that can fail a goal but cannot assess it alone."""

    def applies_to(self, metrics: Mapping[str, object]) -> bool:
        return self.applies(metrics) if self.applies is not None else self.metric in metrics

    def read(self, metrics: Mapping[str, object]) -> float | None:
        if self.value is not None:
            return self.value(metrics)
        return _num(metrics.get(self.metric))

    def threshold(self, need: ProtectionNeed) -> float:
        return float(self.thresholds[need])

    def passes(self, value: float, need: ProtectionNeed) -> bool:
        t = self.threshold(need)
        slack = 1e-9 * max(1.0, abs(t))  # derived metrics (auc - 0.5, a ratio) carry float noise
        return value >= t - slack if self.comparison == ">=" else value <= t + slack

    def score(self, value: float) -> float:
        points = [(self.best, 100.0)]
        for need in (ProtectionNeed.VERY_HIGH, ProtectionNeed.HIGH, ProtectionNeed.NORMAL):
            points.append((self.threshold(need), NEED_ANCHORS[need]))
        points.append((self.worst, 0.0))
        f = (lambda v: math.log10(max(v, 1e-12))) if self.log else (lambda v: v)
        xs = [f(x) for x, _ in points]
        ys = [y for _, y in points]
        x = f(value)
        sign = 1.0 if xs[0] > xs[-1] else -1.0  # make xs decreasing from best to worst
        if sign * (x - xs[0]) >= 0:
            return 100.0
        if sign * (x - xs[-1]) <= 0:
            return 0.0
        for (x0, y0), (x1, y1) in zip(zip(xs, ys, strict=True), zip(xs[1:], ys[1:], strict=True), strict=False):
            if sign * (x - x1) >= 0 and x0 != x1:
                return y0 + (y1 - y0) * (x - x0) / (x1 - x0)
        return 0.0


def _num(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    v = float(value)
    return v if math.isfinite(v) else None


def _ratio(metrics: Mapping[str, object]) -> float | None:
    robust, clean = _num(metrics.get("robust_accuracy")), _num(metrics.get("clean_accuracy"))
    if robust is None or clean is None or clean <= 0:
        return None
    return min(1.0, robust / clean)


def _auc_advantage(metrics: Mapping[str, object]) -> float | None:
    auc = _num(metrics.get("auc"))
    return None if auc is None else max(0.0, auc - 0.5)


def _ci(key: str, shift: float = 0.0) -> Callable[[Mapping[str, object]], tuple[float, float] | None]:
    """Reads the 95% interval ``metrics[key]`` (two numbers, low <= high), minus ``shift``; None when absent."""

    def read(metrics: Mapping[str, object]) -> tuple[float, float] | None:
        pair = metrics.get(key)
        if not isinstance(pair, list | tuple) or len(pair) != 2:
            return None
        low, high = _num(pair[0]), _num(pair[1])
        return None if low is None or high is None or low > high else (low - shift, high - shift)

    return read


def _unresolved(fpr: float) -> Callable[[Mapping[str, object]], float]:
    """How far a chance-level attack's TPR at ``fpr`` exceeds ``fpr`` on the finding's sample: with ``n``
    non-members no threshold has an FPR between 0 and 1/n, so below that the TPR is read at zero false
    positives, where a score that knows nothing still puts 1/(n+1) of the members above every non-member."""

    def excess(metrics: Mapping[str, object]) -> float:
        n = _num(metrics.get("n_non_members"))
        return max(0.0, 1.0 / (n + 1.0) - fpr) if n is not None and n >= 1 else 0.0

    return excess


def _recovered_share(metrics: Mapping[str, object]) -> float | None:
    rec, n = _num(metrics.get("classes_recovered")), _num(metrics.get("n_classes"))
    return None if rec is None or not n else rec / n


def _rejection(metrics: Mapping[str, object]) -> float | None:
    v = _num(metrics.get("harmless_rejection_rate"))
    return v if v is not None else _num(metrics.get("ham_rejection_rate"))


def _t(normal: float, high: float, very_high: float) -> dict[ProtectionNeed, float]:
    return {ProtectionNeed.NORMAL: normal, ProtectionNeed.HIGH: high, ProtectionNeed.VERY_HIGH: very_high}


_INT, _PRIV, _CONF, _AVAIL = Goal.INTEGRITY, Goal.PRIVACY, Goal.CONFIDENTIALITY, Goal.AVAILABILITY

#: Every rule, grouped by goal. ``docs/scoring.md`` shows this table; a test keeps them in step.
RULES: tuple[Rule, ...] = (
    # integrity
    Rule(_INT, "robust_accuracy_ratio", "robust accuracy / clean accuracy", ">=",
         best=1.0, worst=0.0, thresholds=_t(0.5, 0.7, 0.85), value=_ratio,
         applies=lambda m: "robust_accuracy" in m),
    Rule(_INT, "evasion_rate", "share of spam that evades the filter (text attacks)", "<=",
         best=0.0, worst=1.0, thresholds=_t(0.3, 0.15, 0.05)),
    Rule(_INT, "backdoor_success_rate", "attack success rate of a poisoning / backdoor attack", "<=",
         best=0.0, worst=1.0, thresholds=_t(0.2, 0.1, 0.05),
         value=lambda m: _num(m.get("attack_success_rate")),
         applies=lambda m: "poison_fraction" in m and "attack_success_rate" in m),
    Rule(_INT, "accuracy_drop", "test accuracy lost to poisoned training data (label flipping)", "<=",
         best=0.0, worst=0.5, thresholds=_t(0.05, 0.02, 0.01)),
    Rule(_INT, "dangerous", "dangerous constructs in the model file (model-scan)", "<=",
         best=0.0, worst=1.0, thresholds=_t(0.0, 0.0, 0.0), assesses=False),
    # privacy
    Rule(_PRIV, "tpr_at_0.1pct_fpr", "membership inference: TPR at 0.1% FPR", "<=",
         best=0.001, worst=1.0, thresholds=_t(0.05, 0.02, 0.005), interval=_ci("tpr_at_0.1pct_fpr_ci95"),
         chance=_unresolved(0.001)),
    Rule(_PRIV, "tpr_at_1pct_fpr", "membership inference: TPR at 1% FPR (when 0.1% is not reported)", "<=",
         best=0.01, worst=1.0, thresholds=_t(0.10, 0.05, 0.02), interval=_ci("tpr_at_1pct_fpr_ci95"),
         chance=_unresolved(0.01),
         applies=lambda m: "tpr_at_1pct_fpr" in m and _num(m.get("tpr_at_0.1pct_fpr")) is None),
    Rule(_PRIV, "auc_advantage", "membership inference: AUC - 0.5", "<=",
         best=0.0, worst=0.5, thresholds=_t(0.15, 0.08, 0.03), value=_auc_advantage, applies=lambda m: "auc" in m,
         interval=_ci("auc_ci95", shift=0.5)),
    Rule(_PRIV, "mean_own_correlation", "model inversion: similarity of a reconstruction to its class", "<=",
         best=0.0, worst=1.0, thresholds=_t(0.6, 0.4, 0.25)),
    Rule(_PRIV, "classes_recovered_share", "model inversion: share of classes recovered", "<=",
         best=0.0, worst=1.0, thresholds=_t(0.5, 0.25, 0.1), value=_recovered_share,
         applies=lambda m: "classes_recovered" in m),
    Rule(_PRIV, "gain_over_baseline", "attribute inference: accuracy gain over the baseline guess", "<=",
         best=0.0, worst=0.5, thresholds=_t(0.10, 0.05, 0.02), interval=_ci("gain_ci95")),
    # confidentiality
    Rule(_CONF, "fidelity", "model extraction: agreement of the stolen copy at the query budget", "<=",
         best=0.0, worst=1.0, thresholds=_t(0.9, 0.8, 0.7)),
    Rule(_CONF, "top_k_overlap", "model extraction: share of the model's top-k features (words) recovered", "<=",
         best=0.0, worst=1.0, thresholds=_t(0.5, 0.3, 0.1)),
    Rule(_CONF, "queries_to_90pct_fidelity", "model extraction: queries until the copy agrees on 90%", ">=",
         best=1e6, worst=10.0, thresholds=_t(1e3, 1e4, 1e5), log=True),
    # availability
    Rule(_AVAIL, "harmless_rejection_rate", "harmless inputs rejected after poisoning", "<=",
         best=0.0, worst=1.0, thresholds=_t(0.10, 0.05, 0.02), value=_rejection,
         applies=lambda m: "harmless_rejection_rate" in m or "ham_rejection_rate" in m),
    Rule(_AVAIL, "target_block_rate", "chosen harmless inputs blocked after poisoning (focused attack)", "<=",
         best=0.0, worst=1.0, thresholds=_t(0.5, 0.25, 0.1), interval=_ci("target_block_rate_ci95"),
         chance=lambda m: _num(m.get("baseline_block_rate")) or 0.0, chance_is="the clean retrain"),
    Rule(_AVAIL, "latency_amplification_p99", "p99 latency of crafted inputs / of normal inputs", "<=",
         best=1.0, worst=100.0, thresholds=_t(10.0, 5.0, 2.0), log=True),
)  # fmt: skip


def rules_for(goal: Goal | str) -> tuple[Rule, ...]:
    g = Goal.parse(goal)
    return tuple(r for r in RULES if r.goal is g)


def thresholds_markdown() -> str:
    """The thresholds table of ``docs/scoring.md``, generated from :data:`RULES`."""

    def num(v: float) -> str:
        return f"{v:g}"

    rows = [
        "| goal | metric | what it measures | pass when | normal | high | very-high | score 100 at | score 0 at |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in RULES:
        t = [num(r.threshold(n)) for n in (ProtectionNeed.NORMAL, ProtectionNeed.HIGH, ProtectionNeed.VERY_HIGH)]
        scale = " (log scale)" if r.log else ""
        rows.append(
            f"| {r.goal.value} | `{r.metric}` | {r.label} | {r.comparison} threshold | {' | '.join(t)} | "
            f"{num(r.best)} | {num(r.worst)}{scale} |"
        )
    return "\n".join(rows) + "\n"


# --------------------------------------------------------------------------------------------
# scoring


def _floor(score: float) -> float:
    """Round a score down to 0.1, so a check just short of its threshold never shows the anchor."""
    return math.floor(score * 10 + 1e-6) / 10


def _fmt(v: float) -> str:
    return f"{v:.4g}"


def _checks_of(finding: Finding, need: ProtectionNeed | None) -> list[tuple[Check, Rule | None]]:
    gate_need = need or ProtectionNeed.NORMAL
    suffix = "" if need else " (no need declared: shown against the normal threshold)"
    if finding.status == "error":
        metric = finding.headline or ""
        why = f"{finding.attack} ended in an error, so it measured nothing: {finding.error or 'no message'}"
        return [(Check(finding.job_id, metric, None, None, "<=", None, why, None, finding.attack), None)]
    out: list[tuple[Check, Rule | None]] = []
    metrics = finding.metrics
    for rule in rules_for(finding.goal):
        if not rule.applies_to(metrics):
            continue
        t = rule.threshold(gate_need)
        value = rule.read(metrics)
        if value is None and rule.metric == "queries_to_90pct_fidelity" and rule.metric in metrics:
            spent = _num(metrics.get("queries"))
            spent_txt = f"{int(spent)} queries" if spent is not None else "its budget"
            why = f"{finding.attack}: the copy never reached 90% fidelity within {spent_txt}"
            out.append((Check(finding.job_id, rule.metric, None, t, rule.comparison, True, why + suffix, 100.0,
                              finding.attack), rule))  # fmt: skip
            continue
        if value is None:
            why = f"{finding.attack}: {rule.metric} is missing or not a number, so this check did not run"
            out.append((Check(finding.job_id, rule.metric, None, t, rule.comparison, None, why, None, finding.attack),
                        rule))  # fmt: skip
            continue
        shown = _fmt(value)
        ci = rule.interval(metrics) if rule.interval is not None and rule.comparison == "<=" else None
        if ci is not None:  # judged on what the attack has shown at 95%, not on its luck
            excess = rule.chance(metrics) if rule.chance is not None else 0.0
            shown_low = max(ci[0] - excess, min(rule.best, value))  # floored at best, or at a point already below it
            if shown_low < value:  # judged on the lower end only where it is below the point estimate
                floor = f"; {rule.chance_is} reaches {_fmt(rule.best + excess)} on this sample" if excess > 0 else ""
                shown = f"{shown} (95% CI {_fmt(ci[0])}-{_fmt(ci[1])}{floor}, so at least {_fmt(shown_low)} shown)"
                value = shown_low
        passed = rule.passes(value, gate_need)
        eps = _num(metrics.get("eps"))
        at = f" at eps={eps:g}" if eps is not None and rule.goal is Goal.INTEGRITY and "robust" in rule.metric else ""
        why = f"{finding.attack}: {rule.label}{at} is {shown}; {gate_need.value} need requires {rule.comparison} {_fmt(t)}"
        out.append((Check(finding.job_id, rule.metric, value, t, rule.comparison, passed, why + suffix,
                          _floor(rule.score(value)), finding.attack), rule))  # fmt: skip
    if not out and finding.headline:
        why = f"{finding.attack}: no threshold is defined for {finding.headline}; the finding is shown, not gated"
        value = _num(metrics.get(finding.headline))
        comparison: Literal[">=", "<="] = ">=" if finding.worse_when == "lower" else "<="
        out.append((Check(finding.job_id, finding.headline, value, None, comparison, None, why, None,
                          finding.attack), None))  # fmt: skip
    return out


def _fixes_for(findings: list[Finding]) -> list[str]:
    try:
        from aisec.report.catalog import mitigations_for
    except ImportError:  # pragma: no cover - the catalog ships with aisec
        return []
    ids: list[str] = []
    for f in findings:
        for m in mitigations_for(attack=f.attack, atlas=f.atlas, owasp=f.owasp, goal=f.goal):
            if m.id not in ids:
                ids.append(m.id)
    return ids


def _parse_needs(needs: Mapping[Goal | str, ProtectionNeed | str] | None) -> dict[Goal, ProtectionNeed]:
    return {
        Goal.parse(g, field="needs"): ProtectionNeed.parse(n, field=f"needs.{g}")  # type: ignore[misc]
        for g, n in (needs or {}).items()
        if n is not None
    }


def score_findings(findings: list[Finding], needs: Mapping[Goal | str, ProtectionNeed | str] | None) -> Scorecard:
    """Score findings against the declared protection needs.

    Parameters
    ----------
    findings:
        The findings of one run (``results.jsonl``), in any order.
    needs:
        Protection need per goal; a goal that is absent is ``not requested``.

    Returns
    -------
    Scorecard
        One :class:`GoalScore` per goal in the canonical order, with its checks, its score
        (the weakest check), its verdict and the mitigations that address its failed checks.
    """
    declared = _parse_needs(needs)
    by_id = {f.job_id: f for f in findings}
    rows: list[GoalScore] = []
    severity: dict[str, float] = {}
    for goal in Goal:
        need = declared.get(goal)
        pairs = [pc for f in findings if f.goal is goal for pc in _checks_of(f, need)]
        checks = tuple(c for c, _ in pairs)
        ran = [(c, r) for c, r in pairs if c.passed is not None]
        scores = [c.score for c, _ in ran if c.score is not None]
        failed = [c for c, _ in ran if c.passed is False]
        assessed = any(r is not None and r.assesses for _, r in ran)
        score = min(scores) if scores and (assessed or failed) else None
        if need is None:
            verdict: Verdict = "not requested"
        elif failed:
            verdict = "fail"
        elif assessed:
            verdict = "pass"
        else:
            verdict = "not assessed"
        # most severe failures first: the gap between the need's anchor and the check's score
        anchor = NEED_ANCHORS[need or ProtectionNeed.NORMAL]
        failed.sort(key=lambda c: c.score if c.score is not None else 0.0)
        fixes: list[str] = []
        if need is not None:
            for c in failed:
                gap = anchor - (c.score or 0.0)
                for mid in _fixes_for([by_id[c.job_id]]):
                    if mid != "incident-plan":  # applies to every failure: not a top fix
                        severity[mid] = severity.get(mid, 0.0) + gap
                    if mid not in fixes:
                        fixes.append(mid)
        rows.append(GoalScore(goal, need, score, verdict, checks, tuple(fixes)))
    top = tuple(sorted(severity, key=lambda k: (-severity[k], k))[:3])
    return Scorecard(goals=tuple(rows), top_fixes=top)


__all__ = [
    "NEED_ANCHORS",
    "RULES",
    "Check",
    "GoalScore",
    "Rule",
    "Scorecard",
    "Verdict",
    "rules_for",
    "score_findings",
    "thresholds_markdown",
]
