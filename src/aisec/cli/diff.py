"""``aisec diff RUN_A RUN_B``: what got better or worse between two model versions."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aisec.core.configurable import check_choice

_COLORS = {
    "better": "green",
    "worse": "red",
    "same": "dim",
    "new": "cyan",
    "gone": "yellow",
    "not comparable": "yellow",
}


def diff_command(
    run_a: Path, run_b: Path, *, format: str = "table", output: Path | None = None, console: Any = None
) -> int:
    """Print (or write) the diff; returns 1 when a goal or finding got worse, else 0."""
    import json

    from rich.console import Console
    from rich.table import Table

    from aisec.report.diff import diff_runs

    check_choice("--format", format, ("table", "json", "markdown"))
    con = console or Console()
    result = diff_runs(run_a, run_b)
    if format == "json":
        text = json.dumps(result.to_dict(), indent=2)
    elif format == "markdown":
        text = result.to_markdown()
    else:
        text = ""
    if output is not None and text:
        output.write_text(text, encoding="utf-8")
        con.print(f"wrote {output}", highlight=False)
    elif text:
        con.print(text, highlight=False, markup=False, soft_wrap=True)
    else:
        goals = Table(title=f"per goal: {run_a} -> {run_b}", title_justify="left")
        for col in ("goal", "need", "score before", "score after", "delta", "verdict", "change"):
            goals.add_column(col)
        for g in result.goals:
            c = _COLORS[g.change]
            goals.add_row(
                g.goal.value,
                g.need.value if g.need else "-",
                "-" if g.score_before is None else f"{g.score_before:g}",
                "-" if g.score_after is None else f"{g.score_after:g}",
                "-" if g.delta is None else f"{g.delta:+g}",
                f"{g.verdict_before} -> {g.verdict_after}",
                f"[{c}]{g.change}[/{c}]",
            )
        con.print(goals)
        found = Table(title="per finding (headline metric)", title_justify="left")
        for col in ("finding", "goal", "metric", "before", "after", "change"):
            found.add_column(col, overflow="fold")
        for f in result.findings:
            c = _COLORS[f.change]
            found.add_row(
                f.job_id,
                f.goal.value,
                f.metric or "-",
                "-" if f.before is None else f"{f.before:.4g}",
                "-" if f.after is None else f"{f.after:.4g}",
                f"[{c}]{f.change}[/{c}]",
            )
        con.print(found)
    return 1 if result.worse else 0


__all__ = ["diff_command"]
