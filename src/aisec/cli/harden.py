"""``aisec harden SPEC --defense NAME [--param k=v ...] [--out RUN_DIR]``: the command's body.

Kept apart from ``main.py`` so the Typer app only wires options to :func:`harden_command`.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import yaml
from rich.console import Console
from rich.table import Table

from aisec.errors import ConfigError


def parse_params(items: Sequence[str]) -> dict[str, Any]:
    """``["eps=0.1", "method=trades"]`` -> ``{"eps": 0.1, "method": "trades"}`` (values read as YAML scalars)."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--param: expected key=value, got {item!r}")
        try:
            out[key.strip().replace("-", "_")] = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError:
            raise ConfigError(f"--param {key}: cannot read the value {raw!r}") from None
    return out


def _fmt(v: float | None) -> str:
    return "-" if v is None else f"{v:.3f}"


def _gain(v: float | None) -> str:
    if v is None:
        return "-"
    if round(v, 3) == 0:
        return "0.000"  # no change, neither "+0.000" nor "-0.000" (before - after of equal figures)
    color = "green" if v > 0 else "red" if v < 0 else "white"
    return f"[{color}]{v:+.3f}[/{color}]"


def _flat(info: dict[str, Any], prefix: str = "") -> list[str]:
    """``{"epsilon": 2.9997, "public": {"data": "font_digits"}}`` -> ``["epsilon=3", "public.data=font_digits"]``."""
    out: list[str] = []
    for key, value in info.items():
        if isinstance(value, dict):
            out += _flat(value, f"{prefix}{key}.")
        else:
            shown = f"{value:.4g}" if isinstance(value, float) else str(value)
            out.append(f"{prefix}{key}={shown}")
    return out


def harden_command(
    spec: Path,
    defense: str,
    params: Sequence[str] = (),
    out: Path | None = None,
    *,
    trust: bool = False,
    console: Console | None = None,
    progress: Console | None = None,
) -> int:
    """Apply a defense to the spec's torch target, re-run the plan, print gain vs cost; returns the exit code.

    ``progress``: a console (the terminal's stderr) to draw progress bars on: both runs' jobs and the defense's
    epochs; ``None`` draws none. The defense's own stage lines (its INFO log, e.g. DP-SGD drawing its public digits
    and pretraining on them) go above the bars, or to ``console`` without them.
    """
    from aisec.cli.progress import RichObserver, narrate
    from aisec.core.config import load_spec
    from aisec.defenses.harden import HARDEN_FILE, harden

    console = console or Console()
    parsed = load_spec(spec)
    if trust and not parsed.target.trust:
        parsed = parsed.model_copy(update={"target": parsed.target.model_copy(update={"trust": True})})

    lines = progress or console  # with bars, above them on their console: a line on another one breaks them

    def stage(message: str) -> None:
        lines.print(f"[dim]{message}[/dim]")

    observer = RichObserver(progress, parsed.name) if progress is not None else None
    narrated = narrate(lines, "aisec.defenses", "aisec.data")
    with observer if observer is not None else nullcontext(), narrated:
        epochs = observer.bar(f"applying {defense}: epochs") if observer is not None else None
        result = harden(parsed, defense, parse_params(params), run_dir=out, observer=observer, on_stage=stage,
                        on_defense_progress=epochs)  # fmt: skip
    from aisec.report import write_reports

    for run_dir in (result.run_dir, result.defended_dir):
        write_reports(run_dir)

    table = Table(title=f"{parsed.name} + {defense}: per security goal", title_justify="left")
    for col in ("goal", "verdict", "score", "worst attack before", "metric", "before", "after", "gain"):
        table.add_column(col)
    for row in result.goals:
        if row["before"] is None and row["after"] is None and row["score_before"] is None:
            continue
        verdict = f"{row['verdict_before']} -> {row['verdict_after']}"
        score = "-" if row["score_before"] is None or row["score_after"] is None else (
            f"{row['score_before']:.0f} -> {row['score_after']:.0f}")  # fmt: skip
        table.add_row(row["goal"], verdict, score, row["job_id"] or "-", (row["metric"] or "-").replace("_", " "),
                      _fmt(row["before"]), _fmt(row["after"]), _gain(row["gain"]))  # fmt: skip
    console.print(table)

    jobs = Table(title="per attack", title_justify="left")
    for col in ("attack", "job", "metric", "before", "after", "gain"):
        jobs.add_column(col)
    for row in result.jobs:
        jobs.add_row(row["attack"], row["job_id"], row["metric"].replace("_", " "), _fmt(row["before"]),
                     _fmt(row["after"]), _gain(row["gain"]))  # fmt: skip
    console.print(jobs)

    check = result.adaptive
    adaptive = Table(
        title=f"robust accuracy at eps={check['eps']:g} (PGD-{check['steps']}, n={check['n']}): non-adaptive vs adaptive",
        title_justify="left",
    )
    for col in ("undefended", "transfer (non-adaptive)", "naive gradients (non-adaptive)", f"adaptive ({check['attacker']})",
                "worst case"):  # fmt: skip
        adaptive.add_column(col)
    adaptive.add_row(_fmt(check["undefended"]), _fmt(check["transfer"]), _fmt(check["naive"]), _fmt(check["adaptive"]),
                     _fmt(check["worst_case"]))  # fmt: skip
    console.print(adaptive)

    clean, secs = result.clean_accuracy, result.seconds
    console.print(
        f"clean accuracy {clean['before']:.3f} -> {clean['after']:.3f} (cost {clean['cost']:+.3f}); "
        f"defense {secs['defense']:.1f} s; inference {secs['inference_per_1k_before']:.4f} -> "
        f"{secs['inference_per_1k_after']:.4f} s per 1,000 inputs",
        soft_wrap=True,
    )
    if result.defense_info:
        info = {k: v for k, v in result.defense_info.items() if k != "hints"}
        console.print(f"{defense} reports: " + ", ".join(_flat(info)), soft_wrap=True)
        for hint in result.defense_info.get("hints", []):
            console.print(f"hint: {hint}", soft_wrap=True, markup=False)
    for flag in result.flags:
        console.print(f"[yellow]warning:[/yellow] {flag}", soft_wrap=True)
    console.print(f"baseline: {result.run_dir}\ndefended: {result.defended_dir}\nsummary:  {result.defended_dir / HARDEN_FILE}",
                  soft_wrap=True)  # fmt: skip
    return 0
