"""Diff two runs: what got better or worse between two model versions, per goal and per finding.

Both runs are scored against the protection needs of the second (newer) run, so a change in a
verdict reflects the model, not a changed need; a changed need is reported on its own. Findings
are matched by job id (the same attack with the same parameters has the same id in every run),
then by attack name when the name occurs once in each run.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from aisec.assess.runner import read_findings
from aisec.assess.scoring import Scorecard, score_findings
from aisec.core.findings import Finding
from aisec.core.goals import Goal, ProtectionNeed
from aisec.errors import ConfigError

Change = Literal["better", "worse", "same", "new", "gone", "not comparable"]


@dataclass(frozen=True, slots=True)
class GoalDelta:
    """One goal in both runs."""

    goal: Goal
    need: ProtectionNeed | None
    need_before: ProtectionNeed | None
    score_before: float | None
    score_after: float | None
    verdict_before: str
    verdict_after: str
    change: Change

    @property
    def delta(self) -> float | None:
        if self.score_before is None or self.score_after is None:
            return None
        return round(self.score_after - self.score_before, 1)


@dataclass(frozen=True, slots=True)
class FindingDelta:
    """One finding (matched across runs) and its headline metric in both."""

    job_id: str
    attack: str
    goal: Goal
    metric: str | None
    before: float | None
    after: float | None
    worse_when: Literal["higher", "lower"] | None
    change: Change


@dataclass(frozen=True, slots=True)
class RunDiff:
    """The difference between run A (before) and run B (after)."""

    before: str
    after: str
    goals: tuple[GoalDelta, ...]
    findings: tuple[FindingDelta, ...]
    scorecard_before: Scorecard
    scorecard_after: Scorecard

    @property
    def worse(self) -> bool:
        """True when any goal or finding got worse."""
        return any(g.change == "worse" for g in self.goals) or any(f.change == "worse" for f in self.findings)

    def to_dict(self) -> dict[str, Any]:
        return {
            "before": self.before,
            "after": self.after,
            "goals": [
                {
                    "goal": g.goal.value,
                    "need": g.need.value if g.need else None,
                    "need_before": g.need_before.value if g.need_before else None,
                    "score_before": g.score_before,
                    "score_after": g.score_after,
                    "delta": g.delta,
                    "verdict_before": g.verdict_before,
                    "verdict_after": g.verdict_after,
                    "change": g.change,
                }
                for g in self.goals
            ],
            "findings": [
                {
                    "job_id": f.job_id,
                    "attack": f.attack,
                    "goal": f.goal.value,
                    "metric": f.metric,
                    "before": f.before,
                    "after": f.after,
                    "worse_when": f.worse_when,
                    "change": f.change,
                }
                for f in self.findings
            ],
        }

    def to_markdown(self) -> str:
        def num(v: float | None) -> str:
            return "-" if v is None else f"{v:.4g}"

        lines = [f"# aisec diff: {self.before} -> {self.after}", "", "| goal | need | score before | score after | "
                 "verdict before | verdict after | change |", "|---|---|---|---|---|---|---|"]  # fmt: skip
        for g in self.goals:
            lines.append(
                f"| {g.goal.value} | {g.need.value if g.need else '-'} | {num(g.score_before)} | "
                f"{num(g.score_after)} | {g.verdict_before} | {g.verdict_after} | {g.change} |"
            )
        lines += ["", "| finding | goal | metric | before | after | change |", "|---|---|---|---|---|---|"]
        for f in self.findings:
            lines.append(
                f"| {f.job_id} | {f.goal.value} | {f.metric or '-'} | {num(f.before)} | {num(f.after)} | {f.change} |"
            )
        return "\n".join(lines) + "\n"


def _value(f: Finding | None) -> float | None:
    if f is None or f.status != "ok" or not f.headline:
        return None
    v = f.metrics.get(f.headline)
    return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else None


def _compare(before: float | None, after: float | None, higher_is_better: bool, tol: float) -> Change:
    if before is None or after is None:
        return "not comparable"
    if abs(after - before) <= tol:
        return "same"
    return "better" if (after > before) == higher_is_better else "worse"


def _match(a: list[Finding], b: list[Finding]) -> list[tuple[Finding | None, Finding | None]]:
    by_id_a = {f.job_id: f for f in a}
    by_id_b = {f.job_id: f for f in b}
    pairs: list[tuple[Finding | None, Finding | None]] = []
    left_a = [f for f in a if f.job_id not in by_id_b]
    left_b = [f for f in b if f.job_id not in by_id_a]
    for f in b:
        if f.job_id in by_id_a:
            pairs.append((by_id_a[f.job_id], f))
    # same attack, different parameters: match when the attack name is unique on both sides
    names_a = [f.attack for f in left_a]
    names_b = [f.attack for f in left_b]
    used_a: set[str] = set()
    for f in left_b:
        if names_b.count(f.attack) == 1 and names_a.count(f.attack) == 1:
            other = next(x for x in left_a if x.attack == f.attack)
            used_a.add(other.job_id)
            pairs.append((other, f))
        else:
            pairs.append((None, f))
    pairs += [(f, None) for f in left_a if f.job_id not in used_a]
    return pairs


def diff_findings(
    before: list[Finding],
    after: list[Finding],
    needs: dict[Goal, ProtectionNeed],
    *,
    needs_before: dict[Goal, ProtectionNeed] | None = None,
    names: tuple[str, str] = ("before", "after"),
    score_tol: float = 0.5,
    metric_tol: float = 1e-6,
) -> RunDiff:
    """Compare two sets of findings, both scored against ``needs`` (the newer run's)."""
    card_a, card_b = score_findings(before, needs), score_findings(after, needs)
    prior = needs_before if needs_before is not None else needs
    goals = []
    for ga, gb in zip(card_a.goals, card_b.goals, strict=True):
        if ga.score is None and gb.score is None:
            change: Change = "same" if ga.verdict == gb.verdict else "not comparable"
        elif ga.score is None:
            change = "new"
        elif gb.score is None:
            change = "gone"
        else:
            change = _compare(ga.score, gb.score, True, score_tol)
        goals.append(
            GoalDelta(gb.goal, gb.need, prior.get(gb.goal), ga.score, gb.score, ga.verdict, gb.verdict, change)
        )
    deltas = []
    for fa, fb in _match(before, after):
        ref = fb or fa
        if ref is None:  # pragma: no cover - _match never pairs two Nones
            continue
        if fa is None:
            ch: Change = "new"
        elif fb is None:
            ch = "gone"
        else:
            ch = _compare(_value(fa), _value(fb), ref.worse_when == "lower", metric_tol)
        deltas.append(
            FindingDelta(ref.job_id, ref.attack, ref.goal, ref.headline, _value(fa), _value(fb), ref.worse_when, ch)
        )
    deltas.sort(key=lambda d: (list(Goal).index(d.goal), d.job_id))
    return RunDiff(names[0], names[1], tuple(goals), tuple(deltas), card_a, card_b)


def _needs_of(run_dir: Path) -> dict[Goal, ProtectionNeed]:
    meta = run_dir / "run.json"
    if not meta.is_file():
        raise ConfigError(f"{run_dir} is not a run folder (no run.json): run 'aisec assess' first")
    try:
        run = json.loads(meta.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{meta}: not valid JSON ({exc.msg})") from None
    raw = (run.get("threat_model") or {}).get("needs") or {}
    return {Goal.parse(g): ProtectionNeed.parse(n) for g, n in raw.items()}


def diff_runs(run_a: str | Path, run_b: str | Path) -> RunDiff:
    """Compare two run folders: ``run_a`` is the earlier model version, ``run_b`` the later."""
    a, b = Path(run_a), Path(run_b)
    needs_a, needs_b = _needs_of(a), _needs_of(b)
    return diff_findings(read_findings(a), read_findings(b), needs_b, needs_before=needs_a, names=(str(a), str(b)))


__all__ = ["FindingDelta", "GoalDelta", "RunDiff", "diff_findings", "diff_runs"]
