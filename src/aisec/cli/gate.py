"""The scorecard of a run folder in the terminal, and the ``--fail-on`` gate of ``aisec assess``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from aisec.assess.gate import evaluate_gate, parse_fail_on
from aisec.assess.runner import read_findings
from aisec.assess.scoring import Scorecard, score_findings
from aisec.errors import ConfigError

_COLORS = {"pass": "green", "fail": "red", "not assessed": "yellow", "not requested": "dim"}


def scorecard_of_run(run_dir: Path) -> Scorecard:
    """Score a run folder's findings against the needs its ``run.json`` declares."""
    meta = Path(run_dir) / "run.json"
    if not meta.is_file():
        raise ConfigError(f"{run_dir} is not a run folder (no run.json): run 'aisec assess' first")
    run = json.loads(meta.read_text(encoding="utf-8"))
    needs = (run.get("threat_model") or {}).get("needs") or {}
    return score_findings(read_findings(Path(run_dir)), needs)


def scorecard_table(card: Scorecard, title: str) -> Any:
    """A rich table: goal, need, score, verdict, failed checks, fixes."""
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    for col in ("goal", "need", "score", "verdict", "failed checks", "fix first"):
        table.add_column(col, overflow="fold")
    for row in card.goals:
        c = _COLORS[row.verdict]
        failed = [ch for ch in row.checks if ch.passed is False]
        table.add_row(
            row.goal.value,
            row.need.value if row.need else "-",
            "-" if row.score is None else f"{row.score:g}",
            f"[{c}]{row.verdict}[/{c}]",
            str(len(failed)) if row.checks else "-",
            ", ".join(row.fixes[:2]) or "-",
        )
    return table


def gate_command(run_dir: Path, fail_on: str | None, *, console: Any = None) -> int:
    """Print the scorecard and, with ``fail_on``, each gate failure; 1 when the gate fails, else 0."""
    from rich.console import Console

    con = console or Console()
    gate = parse_fail_on(fail_on) if fail_on else None  # a bad value is an error before anything prints
    card = scorecard_of_run(run_dir)
    con.print(scorecard_table(card, f"{Path(run_dir).name}: scorecard"))
    if gate is None:
        return 0
    failures = evaluate_gate(card, gate)
    for f in failures:
        con.print(f"[bold red]gate failed:[/bold red] {f.reason}", highlight=False, soft_wrap=True)
    if not failures:
        con.print(f"[green]gate passed[/green] (--fail-on {gate})", highlight=False)
    return 1 if failures else 0


__all__ = ["gate_command", "scorecard_of_run", "scorecard_table"]
