"""The --fail-on gate: parsing, evaluation, and exit codes from a run folder."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import pytest
import typer
from typer.testing import CliRunner

from aisec.assess.gate import evaluate_gate, parse_fail_on
from aisec.assess.scoring import score_findings
from aisec.core.findings import Finding
from aisec.core.goals import Goal
from aisec.errors import ConfigError
from tests.assess.test_scoring import finding


def _card(robust: float, needs: dict[str, str]):
    f = finding("pgd", "integrity", {"clean_accuracy": 1.0, "robust_accuracy": robust})
    return score_findings([f], needs)


def test_parse() -> None:
    assert parse_fail_on("need").use_needs and parse_fail_on(" NEED ").use_needs
    gate = parse_fail_on("privacy=80, integrity=60")
    assert gate.minimums == ((Goal.INTEGRITY, 60.0), (Goal.PRIVACY, 80.0))
    assert str(gate) == "integrity=60,privacy=80"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("", "expected 'need'"),
        ("integrity", "not goal=minimum"),
        ("safety=50", "not allowed"),
        ("integrity=60,integrity=70", "twice"),
        ("privacy=101", "within 0-100"),
        ("privacy=-1", "within 0-100"),
        ("privacy=high", "must be a number"),
    ],
)
def test_parse_rejects(value: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_fail_on(value)


def test_need_gate() -> None:
    # ratio 0.7 is the high threshold: passes; 0.69 fails
    assert evaluate_gate(_card(0.7, {"integrity": "high"}), "need") == []
    fails = evaluate_gate(_card(0.69, {"integrity": "high"}), "need")
    assert [f.goal for f in fails] == [Goal.INTEGRITY] and "high" in fails[0].reason
    # a declared need with no finding fails the gate: not assessed is never a pass
    fails = evaluate_gate(_card(0.9, {"integrity": "normal", "privacy": "normal"}), "need")
    assert [f.goal for f in fails] == [Goal.PRIVACY] and "no attack" in fails[0].reason


def test_minimum_gate_edges() -> None:
    card = _card(0.7, {"integrity": "normal"})
    score = card.goal("integrity").score
    assert score == pytest.approx(70.0)
    assert evaluate_gate(card, "integrity=70") == []
    assert len(evaluate_gate(card, "integrity=70.1")) == 1
    fails = evaluate_gate(card, "integrity=10,privacy=1")
    assert [f.goal for f in fails] == [Goal.PRIVACY] and "not assessed" in fails[0].reason


def write_run(run_dir: Path, findings: list[Finding], needs: dict[str, str]) -> Path:
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "run.json").write_text(json.dumps({"name": run_dir.name, "threat_model": {"needs": needs}}))
    (run_dir / "results.jsonl").write_text("".join(f.to_json() + "\n" for f in findings))
    return run_dir


def _app() -> typer.Typer:
    """The gate as wired into 'aisec assess --fail-on' (the command body after the run)."""
    from aisec.cli.gate import gate_command
    from aisec.cli.main import friendly

    app = typer.Typer()

    @app.command()
    @friendly
    def gate(
        run_dir: Path,
        fail_on: Annotated[str | None, typer.Option("--fail-on")] = None,
    ) -> None:
        raise typer.Exit(gate_command(run_dir, fail_on))

    return app


def test_fail_on_exit_codes(tmp_path: Path) -> None:
    weak = finding("pgd", "integrity", {"clean_accuracy": 1.0, "robust_accuracy": 0.3})
    run = write_run(tmp_path / "run", [weak], {"integrity": "normal"})
    runner = CliRunner()
    assert runner.invoke(_app(), [str(run)]).exit_code == 0  # no gate asked for
    result = runner.invoke(_app(), [str(run), "--fail-on", "need"])
    assert result.exit_code == 1 and "gate failed" in result.output
    assert runner.invoke(_app(), [str(run), "--fail-on", "integrity=25"]).exit_code == 0
    assert runner.invoke(_app(), [str(run), "--fail-on", "integrity=35"]).exit_code == 1
    bad = runner.invoke(_app(), [str(run), "--fail-on", "safety=3"])
    assert bad.exit_code == 2
    assert runner.invoke(_app(), [str(tmp_path / "nope"), "--fail-on", "need"]).exit_code == 2
