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
    help="Defenses of the data: PII scan, provenance manifest and verification, RONI, poison scan.",
    no_args_is_help=True,
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


def _read_labelled(path: Path) -> tuple[list[str], list[str]]:
    """``label<TAB>text`` lines (the SMS Spam Collection's format); blank lines are skipped."""
    from aisec.errors import InputValidationError

    labels, texts = [], []
    for n, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        if not line.strip():
            continue
        label, sep, text = line.partition("\t")
        if not sep:
            raise InputValidationError(f"{path}:{n}", "a line 'label<TAB>text'", line[:40])
        labels.append(label.strip())
        texts.append(text)
    return labels, texts


@data_app.command("roni")
def roni_command(
    file: Annotated[Path, typer.Argument(help="Incoming training messages, 'label<TAB>text' per line.")],
    trusted: Annotated[Path, typer.Option("--trusted", help="Vetted messages in the same format.")],
    base_size: Annotated[int, typer.Option("--base-size", min=1)] = 100,
    calib_size: Annotated[int, typer.Option("--calib-size", min=1)] = 200,
    resamples: Annotated[int, typer.Option("--resamples", min=1)] = 5,
    quantile: Annotated[float, typer.Option("--quantile", min=0.0, max=1.0)] = 0.05,
    out: Annotated[Path | None, typer.Option("--out", help="Write the messages RONI keeps here.")] = None,
    as_json: Annotated[Path | None, typer.Option("--json", help="Write every message's impact here.")] = None,
    show: Annotated[int, typer.Option("--show", help="Rejected messages to list.")] = 10,
) -> None:
    """Reject On Negative Impact (Nelson et al. 2008): flag incoming messages that lower a small model's
    accuracy on vetted data; exit 1 if any is rejected."""
    from aisec.cli.main import friendly
    from aisec.defenses.data.roni import RoniConfig, roni

    @friendly
    def run() -> int:
        t_labels, t_texts = _read_labelled(trusted)
        c_labels, c_texts = _read_labelled(file)
        names = sorted(set(t_labels) | set(c_labels))
        ids = {n: i for i, n in enumerate(names)}
        cfg = RoniConfig(base_size=base_size, calib_size=calib_size, resamples=resamples, reject_quantile=quantile)
        res = roni(t_texts, [ids[v] for v in t_labels], c_texts, [ids[v] for v in c_labels], cfg)
        rejected = [i for i in range(len(c_texts)) if res.rejected[i]]
        console.print(
            f"RONI on {file}: {len(rejected)} of {len(c_texts)} messages rejected "
            f"(impact below {res.threshold:.4f}, calibrated on {trusted}; {res.seconds:.2f} s)",
            soft_wrap=True,
        )
        for i in sorted(rejected, key=lambda i: res.impact[i])[:show]:
            console.print(
                f"  line {i + 1} [{c_labels[i]}] impact {res.impact[i]:+.4f}: {c_texts[i][:70]}", highlight=False
            )
        if out:
            kept = [f"{c_labels[i]}\t{c_texts[i]}" for i in range(len(c_texts)) if not res.rejected[i]]
            out.write_text("\n".join(kept) + ("\n" if kept else ""), encoding="utf-8")
            console.print(f"wrote {out} ({len(kept)} messages kept)")
        if as_json:
            rows = [
                {"line": i + 1, "label": c_labels[i], "impact": float(res.impact[i]), "rejected": bool(res.rejected[i])}
                for i in range(len(c_texts))
            ]
            as_json.write_text(json.dumps({"threshold": res.threshold, "messages": rows}, indent=1), encoding="utf-8")
        return 1 if rejected else 0

    raise typer.Exit(run())


@data_app.command("poison-scan")
def poison_scan_command(
    data: Annotated[Path, typer.Argument(help="An .npz file with arrays x, y (optional: poisoned, x_test, y_test).")],
    trainer: Annotated[
        str | None,
        typer.Option(
            "--trainer", help="'package.module:function' (x, y, seed) -> nn.Module, for detectors that read a model."
        ),
    ] = None,
    detector: Annotated[
        list[str] | None, typer.Option("--detector", "-d", help="Detector to run (repeat); default: all four.")
    ] = None,
    n_classes: Annotated[int | None, typer.Option("--n-classes", help="Classes (default: max label + 1).")] = None,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    as_json: Annotated[Path | None, typer.Option("--json", help="Write every row (flagged indices too) here.")] = None,
) -> None:
    """Run poison detectors on a training set; with a 'poisoned' mask, score them (and retrain with --trainer)."""
    from aisec.cli.main import friendly
    from aisec.defenses.data.poison import DEFAULT_DETECTORS, load_training_npz, scan
    from aisec.targets.recipe import TorchRecipe, load_trainer

    @friendly
    def run() -> None:
        arrays = load_training_npz(data)
        x, y = arrays["x"], arrays["y"]
        recipe = None
        if trainer is not None:
            recipe = TorchRecipe(
                load_trainer(trainer, base_dir=Path.cwd()),
                input_shape=tuple(x.shape[1:]),
                n_classes=n_classes or int(y.max()) + 1,
            )
        rows = scan(
            x,
            y,
            detectors=detector or list(DEFAULT_DETECTORS),
            recipe=recipe,
            poisoned=arrays.get("poisoned"),
            x_test=arrays.get("x_test"),
            y_test=arrays.get("y_test"),
            seed=seed,
        )
        table = Table(title=f"poison scan of {data} ({len(y)} points)")
        for col in ("detector", "flagged", "seconds", "precision", "recall", "retrained accuracy"):
            table.add_column(col, justify="left" if col == "detector" else "right")
        for r in rows:
            rep = r.report
            acc = rep.retrained.clean_accuracy if rep is not None and rep.retrained is not None else None
            table.add_row(
                r.detector,
                str(r.detection.n_flagged),
                f"{r.detection.seconds:.2f}",
                "-" if rep is None else f"{rep.precision:.2f}",
                "-" if rep is None else f"{rep.recall:.2f}",
                "-" if acc is None else f"{acc:.3f}",
            )
        console.print(table)
        if as_json:
            as_json.write_text(json.dumps([r.to_dict() for r in rows], indent=1), encoding="utf-8")
            console.print(f"wrote {as_json}")

    run()
