"""Digest of a run folder: per security goal, what was assessed and the worst result.

Built from the run folder alone (``run.json`` and ``results.jsonl``), so a report can be rebuilt
later or on another machine. The full scorecard (scores, pass/fail thresholds per protection
need, mitigations) builds on this digest.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from aisec.assess.runner import read_findings
from aisec.core.findings import Finding
from aisec.core.goals import Goal
from aisec.errors import ConfigError

REPORT_SCHEMA_VERSION = 1


@dataclass(frozen=True, slots=True)
class GoalRow:
    """One security goal of a run.

    ``status`` is ``assessed`` (at least one attack's finding), ``not assessed`` (a need is declared
    but no attack measured the goal: never read this as a pass; a check such as the model-file scan
    alone does not assess a goal), ``failed`` (every attack on the goal
    ended in an error) or ``not requested`` (no need declared).
    """

    goal: str
    need: str | None
    status: str
    findings: int
    errors: int
    worst_metric: str | None = None
    worst_value: float | None = None
    worst_job: str | None = None
    worst_summary: str = ""

    def headline(self) -> str:
        """Short form of the worst result, e.g. ``robust accuracy 0.113 (fgsm-1a2b3c4d)``."""
        if self.worst_metric is None or self.worst_value is None:
            return "-"
        return f"{self.worst_metric.replace('_', ' ')} {self.worst_value:.3f} ({self.worst_job})"


@dataclass(frozen=True, slots=True)
class Digest:
    """Everything a report shows, from one run folder."""

    name: str
    run: dict[str, Any]
    goals: tuple[GoalRow, ...]
    findings: tuple[Finding, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "report_schema_version": REPORT_SCHEMA_VERSION,
            "name": self.name,
            "generated": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "run": self.run,
            "goals": [asdict(g) for g in self.goals],
            "findings": [f.model_dump(mode="json") for f in self.findings],
        }


def _worst(findings: list[Finding]) -> Finding | None:
    scored = [
        f
        for f in findings
        if f.status == "ok"
        and f.headline
        and f.worse_when is not None
        and isinstance(f.metrics.get(f.headline), int | float)
    ]
    if not scored:
        return None

    def badness(f: Finding) -> float:
        value = float(f.metrics[f.headline])  # type: ignore[index]
        return value if f.worse_when == "higher" else -value

    return max(scored, key=badness)


def digest_run(run_dir: str | Path) -> Digest:
    """Read a run folder and summarise it per goal."""
    run_dir = Path(run_dir)
    meta_path = run_dir / "run.json"
    if not meta_path.is_file():
        raise ConfigError(f"{run_dir} is not a run folder (no run.json): run 'aisec assess' first")
    run = json.loads(meta_path.read_text(encoding="utf-8"))
    findings = read_findings(run_dir)
    needs: dict[str, str] = run.get("threat_model", {}).get("needs", {})
    rows = []
    for goal in Goal:
        mine = [f for f in findings if f.goal is goal]
        # attacks measure a goal; checks such as the model-file scan (no worse_when) inform but do not assess it
        attacks = [f for f in mine if f.worse_when is not None]
        errors = sum(1 for f in attacks if f.status == "error")
        need = needs.get(goal.value)
        if not attacks:
            status = "not assessed" if need else "not requested"
        elif errors == len(attacks):
            status = "failed"
        else:
            status = "assessed"
        worst = _worst(mine)
        rows.append(
            GoalRow(
                goal=goal.value,
                need=need,
                status=status,
                findings=len(mine),
                errors=errors,
                worst_metric=worst.headline if worst else None,
                worst_value=float(worst.metrics[worst.headline]) if worst and worst.headline else None,
                worst_job=worst.job_id if worst else None,
                worst_summary=worst.summary if worst else "",
            )
        )
    return Digest(name=str(run.get("name", run_dir.name)), run=run, goals=tuple(rows), findings=tuple(findings))
