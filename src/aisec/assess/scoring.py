"""The scorecard: per security goal a resistance score 0-100, the need, and a verdict.

INTERFACE STUB: the data types below are the contract the report and the CLI build on; the
scoring rules (``score_findings``) are being written. Do not change the field names without
updating the report.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from aisec.core.findings import Finding
from aisec.core.goals import Goal, ProtectionNeed

Verdict = Literal["pass", "fail", "not assessed", "not requested"]


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


def score_findings(findings: list[Finding], needs: dict[Goal, ProtectionNeed]) -> Scorecard:
    """Score findings against the declared needs (implementation in progress)."""
    raise NotImplementedError
