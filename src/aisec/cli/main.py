"""The ``aisec`` command line (Typer + rich).

Every :class:`~aisec.errors.AisecError` (and a missing or unreadable file) is printed as one line
on standard error and exits with status 2; no traceback reaches the user for bad input.
"""

from __future__ import annotations

import functools
import logging
import sys
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from aisec.errors import AisecError

app = typer.Typer(
    name="aisec",
    help="Attack, rate and harden machine-learning systems.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()
err_console = Console(stderr=True)

F = TypeVar("F", bound=Callable[..., Any])


def _one_line(message: object) -> str:
    """``message`` on one line, with rich markup escaped (an error may quote ``[...]``)."""
    return escape(" ".join(str(message).split()))


def friendly(fn: F) -> F:
    """Turn aisec errors and OS errors into one line on stderr and exit status 2."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except AisecError as exc:
            err_console.print(f"[bold red]error:[/bold red] {_one_line(exc)}", highlight=False, soft_wrap=True)
            raise typer.Exit(2) from None
        except OSError as exc:
            where = f": {exc.filename}" if getattr(exc, "filename", None) else ""
            text = _one_line(f"{exc.strerror or exc}{where}")
            err_console.print(f"[bold red]error:[/bold red] {text}", highlight=False, soft_wrap=True)
            raise typer.Exit(2) from None

    return wrapper  # type: ignore[return-value]


def goal_table(run_dir: Path, title: str) -> Table:
    """The scorecard table of a run folder (:func:`aisec.cli.report_cmd.scorecard_table`)."""
    from aisec.cli.report_cmd import scorecard_table
    from aisec.report import digest_run

    return scorecard_table(digest_run(run_dir), title)


def _assess(
    spec_path: Path | None,
    spec: Any,
    out: Path | None,
    resume: bool,
    progress: bool,
    executor: Any = None,
) -> Path:
    from aisec.assess.runner import run_assessment
    from aisec.cli.progress import RichObserver
    from aisec.report import write_reports

    observer = RichObserver(err_console, spec.name) if progress else None
    with observer if observer is not None else nullcontext():
        result = run_assessment(spec, run_dir=out, resume=resume, observer=observer, executor=executor)
    write_reports(result.run_dir)
    return result.run_dir


@app.command()
@friendly
def assess(
    spec: Annotated[Path, typer.Argument(help="The spec file (YAML).")],
    out: Annotated[Path | None, typer.Option("--out", help="Run folder (default runs/<name>).")] = None,
    resume: Annotated[
        bool, typer.Option("--resume", help="Keep finished jobs of the run folder and run the rest.")
    ] = False,
    progress: Annotated[bool, typer.Option("--progress/--no-progress", help="Show a progress bar.")] = True,
    trust: Annotated[
        bool,
        typer.Option("--trust", help="Trust the target's pickle/joblib file: loading it runs code from it."),
    ] = False,
    fail_on: Annotated[
        str | None,
        typer.Option(
            "--fail-on", help="Exit 1 when a gate fails: 'need' or minimum scores like 'integrity=60,privacy=80'."
        ),
    ] = None,
    executor: Annotated[
        str,
        typer.Option(
            "--executor",
            help="Where shadow models train: local (this process), process (a process pool) or ray (extra 'ray').",
        ),
    ] = "local",
    workers: Annotated[
        int | None,
        typer.Option("--workers", min=1, help="Processes of the pool, or CPUs of a local Ray cluster (default: all)."),
    ] = None,
    ray_address: Annotated[
        str | None,
        typer.Option("--ray-address", help="Join this Ray cluster ('auto', 'host:6379', 'ray://host:10001')."),
    ] = None,
) -> None:
    """Run the attacks a spec's threat model allows and write the run folder and its report."""
    from aisec.assess.gate import parse_fail_on
    from aisec.core.config import load_spec
    from aisec.core.executor import make_executor

    if fail_on is not None:
        parse_fail_on(fail_on)  # a bad value is an error (exit 2) before anything runs
    parsed = load_spec(spec)
    if trust and not parsed.target.trust:
        parsed = parsed.model_copy(update={"target": parsed.target.model_copy(update={"trust": True})})
    with make_executor(executor, workers=workers, address=ray_address) as ex:
        run_dir = _assess(spec, parsed, out, resume, progress and sys.stderr.isatty(), executor=ex)
    console.print(goal_table(run_dir, f"{parsed.name}: per security goal"))
    console.print(f"run folder: {run_dir}\nreport:     {run_dir / 'report.html'}", soft_wrap=True)
    if fail_on is not None:
        from aisec.cli.gate import gate_command

        raise typer.Exit(gate_command(run_dir, fail_on, console=console))


def spam_skipped(names: list[str]) -> str | None:
    """The line ``aisec demo`` prints when the spam-filter demo did not run (no SMS Spam Collection found)."""
    if "demo-spam" in names:
        return None
    from aisec.data.loaders import SMS_SPAM_CANDIDATES

    looked = ", ".join(map(str, SMS_SPAM_CANDIDATES))
    return f"the spam-filter demo is skipped: no SMS Spam Collection at {looked} (from this folder); pass --sms PATH"


@app.command()
@friendly
def demo(
    out: Annotated[Path, typer.Option("--out", help="Where to write the run folders.")] = Path("runs"),
    sms: Annotated[Path | None, typer.Option("--sms", help="Path of the SMS Spam Collection file.")] = None,
    progress: Annotated[bool, typer.Option("--progress/--no-progress", help="Show a progress bar.")] = True,
) -> None:
    """Train (and cache) three small models, assess each, print a per-goal table, write the reports."""
    from aisec.demo import demo_specs

    with console.status("training or loading the demo models..."):
        cases = demo_specs(out, sms_path=sms)
    if (note := spam_skipped([case.spec.name for case in cases])) is not None:
        console.print(note, soft_wrap=True, markup=False)
    for case in cases:
        run_dir = _assess(case.spec_path, case.spec, out / case.spec.name, False, progress and sys.stderr.isatty())
        console.print(goal_table(run_dir, f"{case.spec.name}: per security goal"))
        console.print(f"  report: {run_dir / 'report.html'}\n  spec:   {case.spec_path}\n", soft_wrap=True)


@app.command()
@friendly
def report(
    run_dir: Annotated[Path, typer.Argument(help="A run folder written by 'aisec assess'.")],
    format: Annotated[
        list[str] | None,
        typer.Option("--format", "-f", help="Comma list of json, html, md, junit (repeatable; default all four)."),
    ] = None,
    gate: Annotated[bool, typer.Option("--gate", help="Exit 1 when a goal misses its protection need.")] = False,
) -> None:
    """Build report.json, report.html, report.md and report.xml (JUnit) from a run folder alone."""
    from aisec.cli.report_cmd import report_command

    raise typer.Exit(report_command(run_dir, format, console=console, gate=gate))


@app.command()
@friendly
def bom(
    source: Annotated[Path, typer.Argument(help="A run folder or a spec file.")],
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Where to write (default RUN_DIR/bom.json or ./bom.json).")
    ] = None,
) -> None:
    """Write a CycloneDX 1.6 ML-BOM: the model with its model card, the data sets, the Python packages."""
    from aisec.cli.report_cmd import bom_command

    raise typer.Exit(bom_command(source, out, console=console))


@app.command()
@friendly
def scan(
    paths: Annotated[list[Path], typer.Argument(help="Model files, folders or archives.")],
    format: Annotated[str, typer.Option("--format", help="table, json or sarif.")] = "table",
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write json/sarif here.")] = None,
    expect_sha256: Annotated[str | None, typer.Option("--expect-sha256", help="Pin the one file's hash.")] = None,
    lock: Annotated[Path | None, typer.Option("--lock", help="Check every file against this lock file.")] = None,
    write_lock: Annotated[Path | None, typer.Option("--write-lock", help="Write a lock file of the hashes.")] = None,
    recursive: Annotated[bool, typer.Option("--recursive/--no-recursive", help="Descend into folders.")] = True,
) -> None:
    """Scan model files for code that runs when they are loaded (exit 1 when anything is dangerous)."""
    from aisec.cli.scan import scan_command

    code = scan_command(paths, format, output, expect_sha256, lock, write_lock, recursive=recursive, console=console)
    raise typer.Exit(code)


@app.command()
@friendly
def harden(
    spec: Annotated[Path, typer.Argument(help="The spec file (YAML); its target must be a torch model.")],
    defense: Annotated[str, typer.Option("--defense", "-d", help="A registered defense, e.g. adversarial-training.")],
    param: Annotated[
        list[str] | None, typer.Option("--param", "-p", help="Defense parameter key=value (repeatable).")
    ] = None,
    out: Annotated[Path | None, typer.Option("--out", help="Baseline run folder (default runs/<name>).")] = None,
    trust: Annotated[
        bool,
        typer.Option("--trust", help="Trust the target's pickle file: loading it runs code from it."),
    ] = False,
    progress: Annotated[bool, typer.Option("--progress/--no-progress", help="Show progress bars.")] = True,
) -> None:
    """Apply a defense, re-run the plan on the defended model, report the gain per goal against the cost."""
    from aisec.cli.harden import harden_command

    bars = err_console if progress and sys.stderr.isatty() else None
    raise typer.Exit(harden_command(spec, defense, param or [], out, trust=trust, console=console, progress=bars))


@app.command("defenses")
@friendly
def list_defenses() -> None:
    """List the registered defenses: kind, adaptive attacker, the attacks they mitigate, paper."""
    from aisec.defenses import defenses as registered

    table = Table(title="registered defenses", title_justify="left")
    for col in ("name", "kind", "adaptive attacker", "mitigates", "paper"):
        table.add_column(col, overflow="fold")
    for name, cls in registered().items():
        table.add_row(name, cls.kind, cls.adaptive, ", ".join(sorted(cls.mitigates)), cls.paper)
    console.print(table)


@app.command("threat-model")
@friendly
def threat_model(
    answers: Annotated[Path | None, typer.Option("--answers", help="YAML answers file (question: answer).")] = None,
    out: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="Spec file to write; an existing spec keeps all but threat_model."),
    ] = None,
    interactive: Annotated[
        bool, typer.Option("--interactive/--non-interactive", help="Ask in the terminal, or take --answers and flags.")
    ] = True,
    decides_about_people: Annotated[
        bool | None,
        typer.Option("--decides-about-people/--no-decides-about-people", help="Decides about people or safety."),
    ] = None,
    personal_data: Annotated[
        bool | None, typer.Option("--personal-data/--no-personal-data", help="Training data holds personal data.")
    ] = None,
    secret_data: Annotated[
        bool | None, typer.Option("--secret-data/--no-secret-data", help="Training data holds confidential records.")
    ] = None,
    proprietary_model: Annotated[
        bool | None, typer.Option("--proprietary/--open-weights", help="The model itself is proprietary.")
    ] = None,
    architecture_public: Annotated[
        bool | None,
        typer.Option("--architecture-public/--architecture-private", help="Architecture or a data sample is known."),
    ] = None,
    who_can_query: Annotated[
        str | None, typer.Option("--who-can-query", help="public, customers, internal or owner.")
    ] = None,
    queries_per_day: Annotated[
        str | None, typer.Option("--queries-per-day", help="Queries per client per day, or 'unlimited'.")
    ] = None,
    api_output: Annotated[
        str | None, typer.Option("--api-output", help="What the API returns: probabilities, top-k or labels.")
    ] = None,
    outsiders_contribute_data: Annotated[
        bool | None,
        typer.Option("--outsiders-contribute/--no-outsiders-contribute", help="Outsiders add training data."),
    ] = None,
    outsiders_label_data: Annotated[
        bool | None, typer.Option("--outsiders-label/--no-outsiders-label", help="...and choose its labels.")
    ] = None,
    cost_wrong_answer: Annotated[str | None, typer.Option("--cost-wrong-answer", help="low, medium or high.")] = None,
    cost_refused_input: Annotated[str | None, typer.Option("--cost-refused-input", help="low, medium or high.")] = None,
    cost_stolen_model: Annotated[str | None, typer.Option("--cost-stolen-model", help="low, medium or high.")] = None,
    cost_leaked_record: Annotated[str | None, typer.Option("--cost-leaked-record", help="low, medium or high.")] = None,
    epsilon: Annotated[float | None, typer.Option("--epsilon", help="Perturbation budget for evasion attacks.")] = None,
) -> None:
    """Ask what must be protected and write the spec's threat_model section, explaining each need."""
    from aisec.cli.threat_model import threat_model_command

    overrides = {
        "decides_about_people": decides_about_people,
        "personal_data": personal_data,
        "secret_data": secret_data,
        "proprietary_model": proprietary_model,
        "architecture_public": architecture_public,
        "who_can_query": who_can_query,
        "queries_per_day": queries_per_day,
        "output": api_output,
        "outsiders_contribute_data": outsiders_contribute_data,
        "outsiders_label_data": outsiders_label_data,
        "cost_wrong_answer": cost_wrong_answer,
        "cost_refused_input": cost_refused_input,
        "cost_stolen_model": cost_stolen_model,
        "cost_leaked_record": cost_leaked_record,
        "epsilon": epsilon,
    }
    code = threat_model_command(
        answers_file=answers, out=out, interactive=interactive, overrides=overrides, console=console
    )
    raise typer.Exit(code)


@app.command()
@friendly
def diff(
    run_a: Annotated[Path, typer.Argument(help="Run folder of the earlier model version.")],
    run_b: Annotated[Path, typer.Argument(help="Run folder of the later model version.")],
    format: Annotated[str, typer.Option("--format", help="table, json or markdown.")] = "table",
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write json/markdown here.")] = None,
) -> None:
    """What got better or worse between two runs, per goal and finding (exit 1 when anything got worse)."""
    from aisec.cli.diff import diff_command

    raise typer.Exit(diff_command(run_a, run_b, format=format, output=output, console=console))


@app.command("attacks")
@friendly
def list_attacks() -> None:
    """List the registered attacks: goal, knowledge, needs, paper, ATLAS and OWASP ids."""
    from aisec.registry import attacks as registered

    table = Table(title="registered attacks", title_justify="left")
    for col in ("name", "goal", "knowledge", "needs", "ATLAS", "OWASP", "paper"):
        table.add_column(col, overflow="fold")
    for name, cls in registered().items():
        table.add_row(
            name,
            cls.goal.value,
            cls.knowledge.value,
            ", ".join(sorted(c.value for c in cls.needs)),
            cls.atlas,
            cls.owasp,
            cls.paper,
        )
    console.print(table)


@app.command()
def version() -> None:
    """Print the aisec version."""
    from aisec import __version__

    console.print(__version__)


def _register_subcommands() -> None:
    from aisec.cli import serve as gateway_cli
    from aisec.cli.data import data_app

    app.add_typer(data_app, name="data")
    app.command("serve")(friendly(gateway_cli.serve))
    keys_app = typer.Typer(help="Manage gateway API keys.", no_args_is_help=True)
    keys_app.command("create")(friendly(gateway_cli.keys_create))
    keys_app.command("list")(friendly(gateway_cli.keys_list))
    keys_app.command("revoke")(friendly(gateway_cli.keys_revoke))
    app.add_typer(keys_app, name="keys")
    app.command("audit")(friendly(gateway_cli.audit))


_register_subcommands()


def main() -> None:
    """Entry point of the ``aisec`` script."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    app()


if __name__ == "__main__":
    main()
