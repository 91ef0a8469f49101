"""The HTML report: one self-contained page (no scripts, no external resources).

The page opens with a summary a manager reads in a minute (per goal a gauge of the resistance
score, the verdict against the declared protection need, and the top three fixes), then one
section per goal with its checks, plots and findings, then every finding and what did not run.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup

from aisec.assess.scoring import Check
from aisec.core.findings import Finding
from aisec.core.goals import Goal
from aisec.report.digest import Digest, Fix, GoalRow
from aisec.report.plots import Plot, goal_plots

_COLORS = {"pass": "#1f8a4c", "fail": "#c0392b", "not assessed": "#b7791f", "not requested": "#9aa1ad"}
_RADIUS = 50.0


def gauge_svg(score: float | None, verdict: str) -> Markup:
    """A half-ring gauge of a 0-100 score, coloured by verdict, as inline SVG."""
    length = math.pi * _RADIUS
    filled = 0.0 if score is None else max(0.0, min(100.0, score)) / 100.0 * length
    color = _COLORS.get(verdict, "#9aa1ad")
    label = "-" if score is None else f"{score:.0f}"
    hidden = ' opacity="0"' if filled == 0 else ""
    arc = f"M10,62 A{_RADIUS:g},{_RADIUS:g} 0 0 1 110,62"
    return Markup(
        f'<svg class="gauge" viewBox="0 0 120 72" width="132" height="79" role="img" '
        f'aria-label="score {label} of 100">'
        f'<path d="{arc}" fill="none" stroke="#e4e7ed" stroke-width="12" stroke-linecap="round"/>'
        f'<path d="{arc}" fill="none" stroke="{color}" stroke-width="12" stroke-linecap="round" '
        f'stroke-dasharray="{filled:.2f} {length + 10:.2f}"{hidden}/>'
        f'<text x="60" y="58" text-anchor="middle" font-size="24" font-weight="700" fill="#1d2330">{label}</text>'
        f'<text x="60" y="71" text-anchor="middle" font-size="9" fill="#5a6275">of 100</text></svg>'
    )


@dataclass(frozen=True, slots=True)
class GoalView:
    """What the page shows for one goal."""

    goal: str
    row: GoalRow
    need: str | None
    score: float | None
    verdict: str
    gauge: Markup
    checks: tuple[Check, ...]
    fixes: tuple[Fix, ...]
    findings: tuple[Finding, ...]
    plots: tuple[Plot, ...] = field(default_factory=tuple)

    @property
    def failed_checks(self) -> int:
        return sum(1 for c in self.checks if c.passed is False)


def goal_views(digest: Digest, run_dir: str | Path | None) -> list[GoalView]:
    """Per goal: score, verdict, gauge, checks, fixes, findings and plots."""
    fixes = {f.id: f for f in digest.fixes}
    views = []
    for row in digest.goals:
        score = digest.score(row.goal)
        verdict = score.verdict if score is not None else ("not requested" if row.need is None else "not scored")
        mine = tuple(digest.goal_findings(row.goal))
        views.append(
            GoalView(
                goal=row.goal,
                row=row,
                need=row.need,
                score=score.score if score is not None else None,
                verdict=verdict,
                gauge=gauge_svg(score.score if score is not None else None, verdict),
                checks=score.checks if score is not None else (),
                fixes=tuple(fixes[i] for i in (score.fixes if score is not None else ()) if i in fixes),
                findings=mine,
                plots=tuple(goal_plots(row.goal, mine, run_dir)),
            )
        )
    return views


def render_html(digest: Digest, run_dir: str | Path | None = None) -> str:
    """The report as one self-contained HTML page.

    ``run_dir`` is where evidence files (e.g. inversion images) are read from; without it only
    the plots drawn from metrics are shown.
    """
    env = Environment(loader=PackageLoader("aisec.report", "templates"), autoescape=select_autoescape(["html"]))
    views = goal_views(digest, run_dir)
    overall = {True: "pass", False: "fail", None: "not scored"}[digest.passed]
    return env.get_template("report.html").render(
        d=digest, goals=views, overall=overall, colors=_COLORS, goal_names=[g.value for g in Goal]
    )
