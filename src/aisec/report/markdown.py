"""A short Markdown summary of a run, fit for a pull-request comment."""

from __future__ import annotations

from aisec.report.digest import Digest

_ICONS = {"pass": "✅", "fail": "❌", "not assessed": "⚠️", "not requested": "⚪", "not scored": "❔"}


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def render_markdown(digest: Digest, *, max_failures: int = 5) -> str:
    """Overall verdict, a row per goal, the top fixes and the first failed checks."""
    overall = {True: "pass", False: "fail", None: "not scored"}[digest.passed]
    lines = [f"### aisec: {_cell(digest.name)} {_ICONS[overall]} {overall}", ""]
    lines += ["| goal | need | score | verdict | worst result |", "|---|---|---:|---|---|"]
    for row in digest.goals:
        score = digest.score(row.goal)
        verdict = score.verdict if score is not None else ("not requested" if row.need is None else "not scored")
        value = f"{score.score:.0f}" if score is not None and score.score is not None else "-"
        worst = _cell(row.worst_summary) if row.worst_summary else "-"
        lines.append(f"| {row.goal} | {row.need or '-'} | {value} | {_ICONS[verdict]} {verdict} | {worst} |")
    if digest.top_fixes:
        lines += ["", "**Top fixes**", ""]
        for i, fix in enumerate(digest.top_fixes, 1):
            cost = f" (cost: {fix.cost})" if fix.cost else ""
            lines.append(f"{i}. {_cell(fix.title)} `{fix.id}`{cost}")
    failed = [c for s in (digest.scorecard.goals if digest.scorecard else ()) for c in s.checks if c.passed is False]
    if failed:
        lines += ["", f"**Failed checks** ({len(failed)})", ""]
        lines += [f"- `{c.job_id}`: {_cell(c.explanation)}" for c in failed[:max_failures]]
        if len(failed) > max_failures:
            lines.append(f"- ... and {len(failed) - max_failures} more in report.html")
    errors = [f for f in digest.findings if f.status == "error"]
    if errors:
        lines += ["", f"**{len(errors)} attack(s) failed to run**: " + ", ".join(f"`{f.job_id}`" for f in errors)]
    lines += ["", f"<sub>{len(digest.findings)} findings · aisec {digest.run.get('aisec_version', '?')}</sub>", ""]
    return "\n".join(lines)
