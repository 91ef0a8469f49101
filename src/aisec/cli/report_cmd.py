"""``aisec report`` and ``aisec bom``: the command bodies, kept apart from the Typer wiring.

``main.py`` declares the options and calls these; each returns the exit status, so the same
function serves the CLI and tests without a subprocess.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from rich.console import Console
from rich.table import Table

from aisec.report.digest import Digest

_VERDICT_COLORS = {
    "pass": "green",
    "fail": "red",
    "not assessed": "yellow",
    "not requested": "dim",
    "not scored": "dim",
}


def scorecard_table(digest: Digest, title: str) -> Table:
    """Per goal: need, status, score, verdict and the worst result (the finding whose check sets the score); the
    overall verdict as its caption. ``aisec assess``, ``aisec demo`` and ``aisec report`` print it."""
    overall = {True: "pass", False: "fail", None: "not scored"}[digest.passed]
    color = _VERDICT_COLORS[overall]
    why = " (a goal misses its protection need or was not assessed)" if overall == "fail" else ""
    table = Table(title=title, title_justify="left", caption=f"overall: [{color}]{overall}[/{color}]{why}",
                  caption_justify="left")  # fmt: skip
    for col in ("goal", "need", "status", "score", "verdict", "worst result"):
        table.add_column(col)
    for row in digest.goals:
        score = digest.score(row.goal)
        verdict = score.verdict if score is not None else "not scored"
        color = _VERDICT_COLORS.get(verdict, "white")
        table.add_row(
            row.goal,
            row.need or "-",
            row.status + (f" ({row.errors} failed)" if row.errors else ""),
            f"{score.score:.0f}" if score is not None and score.score is not None else "-",
            f"[{color}]{verdict}[/{color}]",
            row.headline(),
        )
    return table


def report_command(
    run_dir: Path, formats: Sequence[str] | None, *, console: Console | None = None, gate: bool = False
) -> int:
    """Write the reports of a run folder and print the scorecard.

    Parameters
    ----------
    run_dir:
        A run folder written by ``aisec assess``.
    formats:
        ``--format`` values: each may be a comma list (``html,json``) and the option may repeat;
        empty or ``None`` writes all of json, html, md and junit.
    gate:
        Return 1 when a goal with a declared need does not pass (a CI gate); else 0.
    """
    from aisec.report.digest import digest_run
    from aisec.report.render import FILES, parse_formats, render

    console = console or Console()
    wanted = parse_formats(formats)
    digest = digest_run(run_dir)
    for fmt in wanted:
        path = Path(run_dir) / FILES[fmt]
        path.write_text(render(digest, fmt, run_dir), encoding="utf-8")
        console.print(f"wrote {path}", soft_wrap=True, highlight=False)
    console.print(scorecard_table(digest, f"{digest.name}: per security goal"))
    if digest.top_fixes:
        console.print("top fixes: " + "; ".join(f"{f.title} ({f.id})" for f in digest.top_fixes), soft_wrap=True)
    return 1 if gate and digest.passed is False else 0


def bom_command(source: Path, out: Path | None, *, console: Console | None = None) -> int:
    """Write the CycloneDX ML-BOM of a run folder or spec file (validated against the schema)."""
    from aisec.report.bom import write_bom

    console = console or Console()
    path = write_bom(source, out)
    console.print(f"wrote {path}", soft_wrap=True, highlight=False)
    return 0
