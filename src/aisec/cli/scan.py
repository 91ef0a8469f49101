"""``aisec scan PATH...``: scan model files for code that runs on load, and check pinned hashes.

Kept free of Typer so it can be called (and tested) as a function; the Typer command in
``aisec.cli.main`` passes its options through. Exit codes: 0 nothing dangerous, 1 something
dangerous, 2 a hash mismatch (``--expect-sha256`` or ``--lock``) or a usage error.
"""

from __future__ import annotations

import json
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from aisec.core.configurable import check_choice
from aisec.errors import AisecError, ConfigError
from aisec.scan.lock import lock_key, read_lock, sha256_file, verify
from aisec.scan.lock import write_lock as write_lock_file
from aisec.scan.results import ScanReport
from aisec.scan.sarif import to_sarif
from aisec.scan.scanner import scan_paths

FORMATS = ("table", "json", "sarif")
_COLORS = {"dangerous": "bold red", "suspicious": "yellow", "safe": "green"}


def _files_on_disk(report: ScanReport) -> list[Path]:
    """The files on disk behind the report (an archive once for all its members)."""
    seen: dict[str, Path] = {}
    for f in report.files:
        outer = f.path.split("!", 1)[0]
        seen.setdefault(outer, Path(outer))
    return list(seen.values())


def _integrity(
    paths: list[Path], report: ScanReport, expect_sha256: str | None, lock: Path | None
) -> tuple[list[str], bool]:
    """Hash problems (one line each) and whether any check ran."""
    problems: list[str] = []
    checked = False
    if expect_sha256 is not None:
        if len(paths) != 1 or not paths[0].is_file():
            raise ConfigError("--expect-sha256: give exactly one file to compare with the hash")
        checked = True
        try:
            verify(paths[0], expect_sha256)
        except AisecError as exc:
            problems.append(str(exc))
    if lock is not None:
        checked = True
        pins = read_lock(lock)
        for path in _files_on_disk(report):
            key = lock_key(path, lock)
            if key not in pins:
                problems.append(f"{path}: not pinned in {lock} (add it with --write-lock)")
            elif (actual := sha256_file(path)) != pins[key]:
                problems.append(f"{path}: sha256 {actual} does not match the pinned sha256 {pins[key]} in {lock}")
    return problems, checked


def _table(report: ScanReport) -> Table:
    table = Table(title="aisec scan", title_justify="left", show_lines=False)
    for column in ("rating", "format", "file", "what it does on load"):
        table.add_column(column, overflow="fold")
    for f in report.files:
        color = _COLORS[f.rating]
        lines = []
        for issue in f.issues[:4]:
            inside = f"[{issue.member}] " if issue.member else ""
            lines.append(escape(f"{inside}{issue.rule}: {issue.message.split('. Why it matters')[0]}"))
        if len(f.issues) > 4:
            lines.append(f"... and {len(f.issues) - 4} more")
        table.add_row(f"[{color}]{f.rating}[/{color}]", f.format, escape(f.path), "\n".join(lines) or "-")
    return table


def _summary(report: ScanReport) -> str:
    c = report.counts
    return (
        f"{len(report.files)} model file(s): {c['dangerous']} dangerous, {c['suspicious']} suspicious, "
        f"{c['safe']} safe; {len(report.skipped)} other file(s) skipped"
    )


def scan_command(
    paths: list[Path],
    format: str = "table",
    output: Path | None = None,
    expect_sha256: str | None = None,
    lock: Path | None = None,
    write_lock: Path | None = None,
    *,
    recursive: bool = True,
    console: Console | None = None,
) -> int:
    """Scan ``paths`` (files, folders, archives), render the report and return the exit code.

    Parameters
    ----------
    paths:
        Files, folders (recursive unless ``recursive=False``) and zip / tar archives.
    format:
        ``"table"`` (rich, for people), ``"json"`` or ``"sarif"`` (SARIF 2.1.0 for code scanning).
    output:
        Write the report there instead of standard output.
    expect_sha256:
        The SHA-256 the single file in ``paths`` must have.
    lock:
        A lock file (``aisec.lock.json``) every scanned file must be pinned in, with a matching hash.
    write_lock:
        Write a lock file pinning every scanned model file (after the checks above).
    console:
        Where the table and messages go (standard output by default).

    Returns
    -------
    int
        2 on a hash mismatch or usage error, else 1 when anything is dangerous, else 0.
    """
    out = console or Console()
    err = Console(stderr=True) if console is None else console
    try:
        check_choice("format", format, FORMATS)
        paths = [Path(p) for p in paths]
        if not paths:
            raise ConfigError("scan: give at least one file or folder")
        report = scan_paths(paths, recursive=recursive)
        problems, checked = _integrity(paths, report, expect_sha256, lock)
        if write_lock is not None:
            pinned = write_lock_file(write_lock, _files_on_disk(report))
            err.print(f"pinned {len(pinned)} file(s) in {escape(str(write_lock))}", highlight=False)
    except AisecError as exc:
        err.print(f"[bold red]error:[/bold red] {escape(' '.join(str(exc).split()))}", highlight=False, soft_wrap=True)
        return 2

    if format == "table":
        target = Console(file=output.open("w", encoding="utf-8"), width=200) if output else out
        target.print(_table(report))
        target.print(_summary(report), highlight=False)
        if output:
            target.file.close()
    else:
        data = report.to_dict() if format == "json" else to_sarif(report)
        if format == "json" and checked:
            data["integrity"] = {"ok": not problems, "problems": problems}
        text = json.dumps(data, indent=2)
        if output:
            output.write_text(text + "\n", encoding="utf-8")
        else:
            out.file.write(text + "\n")
    if output:
        err.print(f"wrote {format} report to {escape(str(output))}: {_summary(report)}", highlight=False)
    for problem in problems:
        err.print(f"[bold red]integrity:[/bold red] {escape(problem)}", highlight=False, soft_wrap=True)
    if problems:
        return 2
    return 1 if report.rating == "dangerous" else 0
