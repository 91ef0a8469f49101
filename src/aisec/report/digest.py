"""Digest of a run folder: per security goal, what was assessed, the scorecard and what to fix.

Built from the run folder alone (``run.json`` and ``results.jsonl``), so a report can be rebuilt
later or on another machine. Every report format (JSON, HTML, Markdown, JUnit XML) is rendered
from one :class:`Digest`; ``report.json`` is :meth:`Digest.to_dict`, whose JSON Schema is
:func:`report_json_schema` (published as ``docs/report.schema.json``).
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from aisec.assess.runner import read_findings
from aisec.assess.scoring import GoalScore, Scorecard, score_findings
from aisec.core.findings import Finding, finding_json_schema
from aisec.core.goals import Goal, ProtectionNeed
from aisec.errors import ConfigError

#: Version of ``report.json``; bump on incompatible changes (and regenerate docs/report.schema.json).
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
class Fix:
    """A mitigation the report recommends: its catalog id, title and cost, and the goals it helps."""

    id: str
    title: str
    cost: str | None
    goals: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Digest:
    """Everything a report shows, from one run folder.

    ``scorecard`` is ``None`` only for a digest built by hand without one; the reports then say
    so instead of showing a verdict.
    """

    name: str
    run: dict[str, Any]
    goals: tuple[GoalRow, ...]
    findings: tuple[Finding, ...]
    scorecard: Scorecard | None = None
    top_fixes: tuple[Fix, ...] = ()
    fixes: tuple[Fix, ...] = ()
    """Every mitigation a goal's failed checks name, catalog order of first mention."""

    def score(self, goal: Goal | str) -> GoalScore | None:
        """The scorecard row of ``goal`` (``None`` without a scorecard)."""
        return self.scorecard.goal(goal) if self.scorecard is not None else None

    def goal_findings(self, goal: Goal | str) -> list[Finding]:
        g = Goal.parse(goal)
        return [f for f in self.findings if f.goal is g]

    @property
    def passed(self) -> bool | None:
        """The CI gate: ``None`` without a scorecard."""
        return self.scorecard.passed if self.scorecard is not None else None

    def to_dict(self) -> dict[str, Any]:
        """``report.json``: plain JSON, valid against :func:`report_json_schema`."""
        return {
            "report_schema_version": REPORT_SCHEMA_VERSION,
            "name": self.name,
            "generated": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "run": self.run,
            "goals": [asdict(g) for g in self.goals],
            "scorecard": _scorecard_dict(self.scorecard),
            "top_fixes": [_fix_dict(f) for f in self.top_fixes],
            "fixes": [_fix_dict(f) for f in self.fixes],
            "findings": [f.model_dump(mode="json") for f in self.findings],
        }


def _fix_dict(fix: Fix) -> dict[str, Any]:
    return {"id": fix.id, "title": fix.title, "cost": fix.cost, "goals": list(fix.goals)}


def _scorecard_dict(card: Scorecard | None) -> dict[str, Any] | None:
    if card is None:
        return None
    return {
        "passed": card.passed,
        "top_fixes": list(card.top_fixes),
        "goals": [
            {
                "goal": s.goal.value,
                "need": s.need.value if s.need is not None else None,
                "score": s.score,
                "verdict": s.verdict,
                "checks": [asdict(c) for c in s.checks],
                "fixes": list(s.fixes),
            }
            for s in card.goals
        ],
    }


def _worst(findings: list[Finding], score: GoalScore | None = None) -> Finding | None:
    """The finding a goal's row names: the one whose check sets the goal's score (its weakest), or, where no check
    scored, the worst headline value (headlines of different attacks are different metrics, so only a fallback)."""
    scored = [
        f
        for f in findings
        if f.status == "ok"
        and f.headline
        and f.worse_when is not None
        and isinstance(f.metrics.get(f.headline), int | float)
    ]
    check_scores = [(c.score, c.job_id) for c in score.checks if c.score is not None] if score is not None else []
    if check_scores:
        weakest = min(value for value, _ in check_scores)
        jobs = {job for value, job in check_scores if value == weakest}
        scored = [f for f in scored if f.job_id in jobs] or scored
    if not scored:
        return None

    def badness(f: Finding) -> float:
        value = float(f.metrics[f.headline])  # type: ignore[index]
        return value if f.worse_when == "higher" else -value

    return max(scored, key=badness)


def mitigation(fix_id: str) -> Fix:
    """Title and cost of a mitigation id from :mod:`aisec.report.catalog` (the id itself if unknown)."""
    from aisec.report.catalog import MITIGATIONS_BY_ID

    entry = MITIGATIONS_BY_ID.get(fix_id)
    if entry is None:
        return Fix(id=fix_id, title=fix_id, cost=None)
    return Fix(id=fix_id, title=entry.name, cost=entry.cost or None, goals=tuple(g.value for g in entry.goals))


def _fixes(card: Scorecard | None) -> tuple[tuple[Fix, ...], tuple[Fix, ...]]:
    """(top fixes, all fixes), each with the goals whose failed checks it addresses."""
    if card is None:
        return (), ()
    goals_of: dict[str, list[str]] = {}
    for s in card.goals:
        for fid in s.fixes:
            goals_of.setdefault(fid, [])
            if s.goal.value not in goals_of[fid]:
                goals_of[fid].append(s.goal.value)
    # the goals a fix is listed under are the goals it helps in this run, not every goal it could help
    every = [
        Fix(id=m.id, title=m.title, cost=m.cost, goals=tuple(goals_of[fid]))
        for fid in goals_of
        for m in (mitigation(fid),)
    ]
    by_id = {f.id: f for f in every}
    top = tuple(by_id.get(fid) or mitigation(fid) for fid in card.top_fixes[:3])
    return top, tuple(every)


def scorecard_for(findings: list[Finding], needs: dict[str, str]) -> Scorecard:
    """The scorecard of a run's findings against its declared protection needs."""
    return score_findings(findings, needs)


def digest_run(run_dir: str | Path, *, scorecard: Scorecard | None = None) -> Digest:
    """Read a run folder and summarise it per goal.

    Parameters
    ----------
    run_dir:
        A run folder written by :func:`aisec.assess.runner.run_assessment`.
    scorecard:
        A scorecard to report instead of scoring the findings with :func:`score_findings`.
    """
    run_dir = Path(run_dir)
    meta_path = run_dir / "run.json"
    if not meta_path.is_file():
        raise ConfigError(f"{run_dir} is not a run folder (no run.json): run 'aisec assess' first")
    run = json.loads(meta_path.read_text(encoding="utf-8"))
    findings = read_findings(run_dir)
    needs: dict[str, str] = run.get("threat_model", {}).get("needs", {})
    card = scorecard if scorecard is not None else scorecard_for(findings, needs)
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
        worst = _worst(mine, card.goal(goal))
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
    top, every = _fixes(card)
    return Digest(
        name=str(run.get("name", run_dir.name)),
        run=run,
        goals=tuple(rows),
        findings=tuple(findings),
        scorecard=card,
        top_fixes=top,
        fixes=every,
    )


def report_json_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of ``report.json``, as published in ``docs/report.schema.json``."""
    nullable_num = {"type": ["number", "null"]}
    nullable_str = {"type": ["string", "null"]}
    fix = {
        "type": "object",
        "additionalProperties": False,
        "required": ["id", "title", "cost", "goals"],
        "properties": {
            "id": {"type": "string"},
            "title": {"type": "string"},
            "cost": nullable_str,
            "goals": {"type": "array", "items": {"enum": [g.value for g in Goal]}},
        },
    }
    check = {
        "type": "object",
        "additionalProperties": False,
        "required": ["job_id", "metric", "value", "threshold", "comparison", "passed", "explanation"],
        "properties": {
            "job_id": {"type": "string"},
            "metric": {"type": "string"},
            "value": nullable_num,
            "threshold": nullable_num,
            "comparison": {"enum": [">=", "<="]},
            "passed": {"type": ["boolean", "null"]},
            "explanation": {"type": "string"},
            "score": {"type": ["number", "null"], "minimum": 0, "maximum": 100},
            "attack": {"type": "string"},
        },
    }
    needs = [n.value for n in ProtectionNeed]
    goal_score = {
        "type": "object",
        "additionalProperties": False,
        "required": ["goal", "need", "score", "verdict", "checks", "fixes"],
        "properties": {
            "goal": {"enum": [g.value for g in Goal]},
            "need": {"enum": [*needs, None]},
            "score": {"type": ["number", "null"], "minimum": 0, "maximum": 100},
            "verdict": {"enum": ["pass", "fail", "not assessed", "not requested"]},
            "checks": {"type": "array", "items": {"$ref": "#/$defs/check"}},
            "fixes": {"type": "array", "items": {"type": "string"}},
        },
    }
    goal_row = {
        "type": "object",
        "additionalProperties": False,
        "required": ["goal", "need", "status", "findings", "errors"],
        "properties": {
            "goal": {"enum": [g.value for g in Goal]},
            "need": {"enum": [*needs, None]},
            "status": {"enum": ["assessed", "not assessed", "failed", "not requested"]},
            "findings": {"type": "integer", "minimum": 0},
            "errors": {"type": "integer", "minimum": 0},
            "worst_metric": nullable_str,
            "worst_value": nullable_num,
            "worst_job": nullable_str,
            "worst_summary": {"type": "string"},
        },
    }
    finding = finding_json_schema()
    finding_defs = finding.pop("$defs", {})
    for key in ("$schema", "$id"):
        finding.pop(key, None)
    text = json.dumps(finding).replace('"#/$defs/', '"#/$defs/finding_')
    finding = json.loads(text)
    defs = {
        f"finding_{k}": json.loads(json.dumps(v).replace('"#/$defs/', '"#/$defs/finding_'))
        for k, v in finding_defs.items()
    }
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"urn:aisec:report:v{REPORT_SCHEMA_VERSION}",
        "title": "aisec report",
        "description": "report.json of an aisec run folder: per security goal the status, the scorecard, "
        "the fixes to make and every finding.",
        "type": "object",
        "required": [
            "report_schema_version",
            "name",
            "generated",
            "run",
            "goals",
            "scorecard",
            "top_fixes",
            "fixes",
            "findings",
        ],
        "additionalProperties": False,
        "properties": {
            "report_schema_version": {"const": REPORT_SCHEMA_VERSION},
            "name": {"type": "string"},
            "generated": {"type": "string", "format": "date-time"},
            "run": {"type": "object", "description": "run.json of the run folder, as written by the runner."},
            "goals": {
                "type": "array",
                "items": {"$ref": "#/$defs/goal_row"},
                "minItems": len(Goal),
                "maxItems": len(Goal),
            },
            "scorecard": {
                "oneOf": [
                    {"type": "null"},
                    {
                        "type": "object",
                        "additionalProperties": False,
                        "required": ["passed", "top_fixes", "goals"],
                        "properties": {
                            "passed": {"type": "boolean"},
                            "top_fixes": {"type": "array", "items": {"type": "string"}},
                            "goals": {"type": "array", "items": {"$ref": "#/$defs/goal_score"}},
                        },
                    },
                ]
            },
            "top_fixes": {"type": "array", "items": {"$ref": "#/$defs/fix"}, "maxItems": 3},
            "fixes": {"type": "array", "items": {"$ref": "#/$defs/fix"}},
            "findings": {"type": "array", "items": {"$ref": "#/$defs/finding"}},
        },
        "$defs": {
            "goal_row": goal_row,
            "goal_score": goal_score,
            "check": check,
            "fix": fix,
            "finding": finding,
            **defs,
        },
    }
