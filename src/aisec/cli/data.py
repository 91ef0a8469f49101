"""``aisec data``: PII scan and redaction, provenance manifests and their verification."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from aisec.defenses.data import pii, provenance

data_app = typer.Typer(
    help="Defenses of the data: PII scan, provenance manifest and verification.", no_args_is_help=True
)
console = Console()


@data_app.command("pii")
def pii_command(
    file: Annotated[Path, typer.Argument(help="A text file (one record per line) or a CSV file.")],
    kinds: Annotated[str, typer.Option("--kinds", help=f"Comma list of: {', '.join(pii.KINDS)}.")] = ",".join(
        pii.KINDS
    ),
    redact_to: Annotated[Path | None, typer.Option("--redact", help="Write a redacted copy here.")] = None,
    as_json: Annotated[
        Path | None, typer.Option("--json", help="Write the full report (locations, masked values) here.")
    ] = None,
    show: Annotated[int, typer.Option("--show", help="Locations to list in the table.")] = 10,
) -> None:
    """Find e-mail addresses, phone numbers, card numbers, IBANs, national ids and IPs; exit 1 if any."""
    from aisec.cli.main import friendly

    @friendly
    def run() -> int:
        chosen = [k.strip() for k in kinds.split(",") if k.strip()]
        report = pii.scan_file(file, kinds=chosen)
        console.print(
            f"personal data in {file}: {report.records} records, {report.records_with_pii} with PII", soft_wrap=True
        )
        table = Table()
        table.add_column("kind")
        table.add_column("count", justify="right")
        for kind, n in report.counts.items():
            if kind in chosen:
                table.add_row(kind, str(n))
        console.print(table)
        for m in report.matches[:show]:
            where = f"record {m.record}" + (f", field {m.field}" if m.field else "") + f", chars {m.start}-{m.end}"
            console.print(f"  {m.kind:<6} {where}: {m.masked}", highlight=False)
        if as_json:
            as_json.write_text(json.dumps(report.to_dict(), indent=1), encoding="utf-8")
        if redact_to:
            n = pii.write_redacted(file, redact_to, kinds=chosen)
            console.print(f"wrote {redact_to} ({n} detections redacted)")
        return 1 if report.matches else 0

    raise typer.Exit(run())


@data_app.command("manifest")
def manifest_command(
    root: Annotated[Path, typer.Argument(help="A data file or folder.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Where to write the manifest.")] = Path("data.manifest.json"),
    label_column: Annotated[str | None, typer.Option("--label-column", help="CSV column holding the label.")] = None,
) -> None:
    """Write a manifest of content hashes (per file and per record), sizes, counts and label histograms."""
    from aisec.cli.main import friendly

    @friendly
    def run() -> None:
        m = provenance.write_manifest(root, out, label_column=label_column)
        records = sum(f.get("records", 0) for f in m["files"].values())
        console.print(f"wrote {out}: {len(m['files'])} file(s), {records} records")

    run()


@data_app.command("verify")
def verify_command(
    root: Annotated[Path, typer.Argument(help="The data file or folder to check.")],
    manifest: Annotated[
        Path, typer.Option("--manifest", "-m", help="The manifest written by 'aisec data manifest'.")
    ] = Path("data.manifest.json"),
    as_json: Annotated[Path | None, typer.Option("--json", help="Write the differences as JSON here.")] = None,
) -> None:
    """Report every added, removed or changed file and record; exit 1 when anything differs."""
    from aisec.cli.main import friendly

    @friendly
    def run() -> int:
        result = provenance.verify(root, provenance.load_manifest(manifest))
        if as_json:
            as_json.write_text(json.dumps(result.to_dict(), indent=1), encoding="utf-8")
        if result.ok:
            console.print(f"[green]{root} matches {manifest}[/green]")
            return 0
        for f in result.added_files:
            console.print(f"[yellow]added file[/yellow]   {f}")
        for f in result.removed_files:
            console.print(f"[red]removed file[/red] {f}")
        for c in result.changed_files:
            console.print(
                f"[red]changed file[/red] {c.path}: {len(c.added_records)} records added, "
                f"{len(c.removed_records)} removed, {len(c.changed_records)} changed"
            )
            for label, nums in (
                ("added", c.added_records),
                ("removed", c.removed_records),
                ("changed", c.changed_records),
            ):
                if nums:
                    shown = ", ".join(map(str, nums[:10])) + (" ..." if len(nums) > 10 else "")
                    console.print(f"    {label} records: {shown}")
            if c.labels_before != c.labels_after and c.labels_before is not None:
                console.print(f"    labels: {c.labels_before} -> {c.labels_after}")
        return 1

    raise typer.Exit(run())
