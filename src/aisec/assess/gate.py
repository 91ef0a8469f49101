"""The CI gate: decide from a scorecard whether ``aisec assess`` exits 1.

``--fail-on`` takes either ``need`` (every goal with a declared need must pass its need's
thresholds; a goal that was not assessed fails the gate too) or minimum scores per goal, e.g.
``integrity=60,privacy=80`` (a goal without a score fails its minimum).
"""

from __future__ import annotations

from dataclasses import dataclass

from aisec.assess.scoring import Scorecard
from aisec.core.goals import Goal
from aisec.errors import ConfigError


@dataclass(frozen=True, slots=True)
class Gate:
    """A parsed ``--fail-on`` value: the need thresholds, or a minimum score per goal."""

    use_needs: bool = False
    minimums: tuple[tuple[Goal, float], ...] = ()

    def __str__(self) -> str:
        if self.use_needs:
            return "need"
        return ",".join(f"{g.value}={m:g}" for g, m in self.minimums)


@dataclass(frozen=True, slots=True)
class GateFailure:
    """One reason the gate fails."""

    goal: Goal
    reason: str


def parse_fail_on(value: str) -> Gate:
    """Parse ``need`` or ``goal=min[,goal=min...]`` (minimums 0-100).

    Raises
    ------
    ConfigError
        On an unknown goal, a repeated goal, a minimum outside 0-100 or a malformed item.
    """
    text = (value or "").strip()
    if text.lower() == "need":
        return Gate(use_needs=True)
    if not text:
        raise ConfigError("--fail-on: expected 'need' or goal=minimum pairs such as 'integrity=60,privacy=80'")
    minimums: dict[Goal, float] = {}
    for item in text.split(","):
        name, sep, number = item.partition("=")
        if not sep:
            raise ConfigError(f"--fail-on: {item.strip()!r} is not goal=minimum (e.g. 'integrity=60') or 'need'")
        goal = Goal.parse(name, field="--fail-on")
        if goal in minimums:
            raise ConfigError(f"--fail-on: {goal.value} is given twice")
        try:
            minimum = float(number)
        except ValueError:
            raise ConfigError(
                f"--fail-on: minimum for {goal.value} must be a number 0-100, got {number.strip()!r}"
            ) from None
        if not 0 <= minimum <= 100:
            raise ConfigError(f"--fail-on: minimum for {goal.value} must be within 0-100, got {minimum:g}")
        minimums[goal] = minimum
    return Gate(minimums=tuple(sorted(minimums.items(), key=lambda kv: list(Goal).index(kv[0]))))


def evaluate_gate(scorecard: Scorecard, gate: Gate | str) -> list[GateFailure]:
    """The reasons the scorecard fails the gate; an empty list means the gate passes."""
    if isinstance(gate, str):
        gate = parse_fail_on(gate)
    failures: list[GateFailure] = []
    if gate.use_needs:
        for row in scorecard.goals:
            if row.verdict == "fail":
                n_failed = sum(1 for c in row.checks if c.passed is False)
                failures.append(
                    GateFailure(row.goal, f"{row.goal.value}: {n_failed} check(s) fail the {row.need} need")
                )
            elif row.verdict == "not assessed":
                failures.append(
                    GateFailure(row.goal, f"{row.goal.value}: need {row.need} declared but no attack assessed it")
                )
        return failures
    for goal, minimum in gate.minimums:
        row = scorecard.goal(goal)
        if row.score is None:
            failures.append(GateFailure(goal, f"{goal.value}: not assessed, minimum score {minimum:g} required"))
        elif row.score < minimum:
            failures.append(GateFailure(goal, f"{goal.value}: score {row.score:g} is below the minimum {minimum:g}"))
    return failures


__all__ = ["Gate", "GateFailure", "evaluate_gate", "parse_fail_on"]
