"""aisec threat-model: answers -> threat model section and one explanation per derived choice."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Annotated

import pytest
import typer
import yaml
from rich.console import Console
from typer.testing import CliRunner

from aisec.cli.threat_model import ATTACK_DAYS, Answers, ask, derive_threat_model, threat_model_command
from aisec.core.config import ThreatModelSpec
from aisec.core.goals import Goal, Knowledge
from aisec.errors import ConfigError


def quiet() -> Console:
    return Console(file=io.StringIO(), width=200)


def test_defaults() -> None:
    section, why = derive_threat_model({})
    assert section["knowledge"] == "black-box" and section["output"] == "probabilities"
    assert section["query_budget"] == 1000 * ATTACK_DAYS and section["training_data"] == []
    assert section["needs"] == {
        "integrity": "high",
        "availability": "high",
        "confidentiality": "high",
        "privacy": "normal",
    }
    threat = ThreatModelSpec.model_validate(section).build()
    assert threat.knowledge is Knowledge.BLACK_BOX and set(threat.needs) == set(Goal)
    assert set(why) == {"knowledge", "output", "query_budget", "training_data"} | {f"needs.{g.value}" for g in Goal}
    for key, sentence in why.items():  # one sentence each, naming the derived value
        assert sentence.endswith(".") and sentence.count(". ") == 0, key
    for g in Goal:
        assert why[f"needs.{g.value}"].startswith(section["needs"][g.value] + ":")


def test_credit_scoring_on_personal_data() -> None:
    section, why = derive_threat_model(
        {"decides_about_people": True, "personal_data": True, "cost_wrong_answer": "low", "cost_leaked_record": "high"}
    )
    assert section["needs"]["integrity"] == "high"  # low cost, but decisions about people: at least high
    assert "people" in why["needs.integrity"]
    assert section["needs"]["privacy"] == "very-high"


def test_personal_data_is_at_least_high_privacy_even_when_cheap() -> None:
    section, _ = derive_threat_model({"personal_data": True, "cost_leaked_record": "low"})
    assert section["needs"]["privacy"] == "high"
    section, _ = derive_threat_model({"personal_data": False, "cost_leaked_record": "high"})
    assert section["needs"]["privacy"] == "normal"


def test_open_weights_are_white_box_and_little_to_steal() -> None:
    section, why = derive_threat_model({"proprietary_model": False, "cost_stolen_model": "high"})
    assert section["knowledge"] == "white-box" and section["needs"]["confidentiality"] == "normal"
    assert "parameters" in why["knowledge"]
    section, _ = derive_threat_model({"proprietary_model": False, "secret_data": True})
    assert section["needs"]["confidentiality"] == "high"
    section, _ = derive_threat_model({"architecture_public": True})
    assert section["knowledge"] == "grey-box"


def test_public_api_with_outside_training_data() -> None:
    section, why = derive_threat_model(
        {"who_can_query": "public", "outsiders_contribute_data": True, "outsiders_label_data": True,
         "cost_wrong_answer": "low", "cost_refused_input": "low", "queries_per_day": "unlimited", "output": "labels"}
    )  # fmt: skip
    assert section["training_data"] == ["add-points", "flip-labels"]
    assert section["needs"]["integrity"] == "high" and section["needs"]["availability"] == "high"
    assert section["query_budget"] is None and "unlimited" in why["query_budget"]
    assert section["output"] == "labels"
    ThreatModelSpec.model_validate(section)


def test_owner_only_caps_the_budget() -> None:
    section, _ = derive_threat_model({"who_can_query": "owner", "queries_per_day": 10_000})
    assert section["query_budget"] == 1000


@pytest.mark.parametrize(
    ("answers", "message"),
    [
        ({"colour": "red"}, "unknown question"),
        ({"personal_data": "yes"}, "true or false"),
        ({"cost_wrong_answer": "huge"}, "allowed: low, medium, high"),
        ({"who_can_query": "aliens"}, "allowed: public"),
        ({"queries_per_day": -5}, "non-negative"),
        ({"output": "scores"}, "allowed"),
        ({"epsilon": -0.1}, ">= 0"),
    ],
)
def test_bad_answers(answers: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        derive_threat_model(answers)


def test_interactive_prompts() -> None:
    lines = ["y", "y", "n", "y", "n", "public", "y", "500", "labels", "y", "n", "high", "low", "medium", "high"]
    answers = ask(console=quiet(), stream=io.StringIO("\n".join(lines) + "\n"))
    assert answers == Answers(
        decides_about_people=True, personal_data=True, secret_data=False, proprietary_model=True,
        architecture_public=False, who_can_query="public", queries_per_day=500, output="labels",
        outsiders_contribute_data=True, outsiders_label_data=False, cost_wrong_answer="high",
        cost_refused_input="low", cost_stolen_model="medium", cost_leaked_record="high",
    )  # fmt: skip
    section, _ = derive_threat_model(answers)
    assert section["query_budget"] == 500 * ATTACK_DAYS and section["needs"]["privacy"] == "very-high"


def test_interactive_empty_answers_keep_the_file_defaults() -> None:
    defaults = Answers(personal_data=True, cost_leaked_record="low", queries_per_day=None)
    assert ask(defaults, console=quiet(), stream=io.StringIO("\n" * 20)) == defaults


def test_command_writes_into_an_existing_spec(tmp_path: Path) -> None:
    answers = tmp_path / "answers.yaml"
    answers.write_text(yaml.safe_dump({"personal_data": True, "who_can_query": "internal"}))
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump({"name": "x", "attacks": "auto", "threat_model": {"knowledge": "white-box"}}))
    con = quiet()
    code = threat_model_command(
        answers_file=answers, out=spec, interactive=False, overrides={"cost_leaked_record": "high"}, console=con
    )
    assert code == 0
    text = spec.read_text()
    assert text.startswith("# threat model derived by 'aisec threat-model':")
    written = yaml.safe_load(text)
    assert written["name"] == "x" and written["attacks"] == "auto"
    assert written["threat_model"]["needs"]["privacy"] == "very-high"
    assert written["threat_model"]["knowledge"] == "black-box"
    assert "needs.privacy: very-high" in con.file.getvalue()  # type: ignore[attr-defined]


def _app() -> typer.Typer:
    """The command as wired into aisec's main app (see the report to the lead)."""
    from aisec.cli.main import friendly

    app = typer.Typer()

    @app.command()
    @friendly
    def threat_model(
        answers: Annotated[Path | None, typer.Option("--answers")] = None,
        out: Annotated[Path | None, typer.Option("--out")] = None,
        interactive: Annotated[bool, typer.Option("--interactive/--non-interactive")] = True,
        personal_data: Annotated[bool | None, typer.Option("--personal-data/--no-personal-data")] = None,
        who_can_query: Annotated[str | None, typer.Option("--who-can-query")] = None,
    ) -> None:
        overrides = {"personal_data": personal_data, "who_can_query": who_can_query}
        raise typer.Exit(
            threat_model_command(answers_file=answers, out=out, interactive=interactive, overrides=overrides)
        )

    return app


def test_typer_wiring(tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "tm.yaml"
    result = runner.invoke(_app(), ["--non-interactive", "--personal-data", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert yaml.safe_load(out.read_text())["threat_model"]["needs"]["privacy"] == "high"
    bad = runner.invoke(_app(), ["--non-interactive", "--who-can-query", "aliens"])
    assert bad.exit_code == 2 and "who_can_query" in bad.output
    # interactive through the terminal: every answer left at its default
    result = runner.invoke(_app(), ["--out", str(out)], input="\n" * 20)
    assert result.exit_code == 0, result.output
    assert yaml.safe_load(out.read_text())["threat_model"]["needs"]["privacy"] == "normal"
