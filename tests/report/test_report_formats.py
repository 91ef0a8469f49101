"""report.json against its published JSON Schema, the Markdown summary, the JUnit XML and the
``aisec report`` command body, all on real run folders."""

from __future__ import annotations

import json
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from rich.console import Console

from aisec.assess.runner import RunResult
from aisec.cli.report_cmd import report_command
from aisec.errors import ConfigError
from aisec.report.digest import REPORT_SCHEMA_VERSION, report_json_schema
from aisec.report.render import parse_formats, write_reports

SCHEMA_FILE = Path(__file__).resolve().parents[2] / "docs" / "report.schema.json"


def _copy(src: Path, tmp: Path) -> Path:
    dst = tmp / "run"
    shutil.copytree(src, dst)
    return dst


@pytest.fixture(scope="module")
def reports(real_run: RunResult, full_run: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Both run folders with every report format written."""
    out = {}
    for name, src in (("real", real_run.run_dir), ("full", full_run)):
        run_dir = _copy(src, tmp_path_factory.mktemp(f"formats-{name}"))
        write_reports(run_dir)
        out[name] = run_dir
    return out


def _json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def test_published_schema_is_the_code_schema() -> None:
    published = _json(SCHEMA_FILE)
    assert published == report_json_schema(), "regenerate docs/report.schema.json from report_json_schema()"
    assert published["$id"] == f"urn:aisec:report:v{REPORT_SCHEMA_VERSION}"
    Draft202012Validator.check_schema(published)


@pytest.mark.parametrize("name", ["real", "full"])
def test_report_json_validates_against_the_published_schema(reports: dict[str, Path], name: str) -> None:
    validator = Draft202012Validator(_json(SCHEMA_FILE), format_checker=Draft202012Validator.FORMAT_CHECKER)
    report = _json(reports[name] / "report.json")
    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(report)]
    assert errors == []
    assert report["report_schema_version"] == REPORT_SCHEMA_VERSION
    assert report["scorecard"] is not None and len(report["scorecard"]["goals"]) == 4
    # the schema is strict enough to catch a broken report
    broken = json.loads(json.dumps(report))
    broken["scorecard"]["goals"][0]["verdict"] = "fine"
    del broken["findings"][0]["goal"]
    assert len(list(validator.iter_errors(broken))) == 2


def test_markdown_summary_is_short_and_agrees_with_json(reports: dict[str, Path]) -> None:
    report = _json(reports["full"] / "report.json")
    md = (reports["full"] / "report.md").read_text(encoding="utf-8")
    lines = md.splitlines()
    assert len(lines) <= 40 and len(md) < 4000, "a pull-request comment, not the whole report"
    assert lines[0].startswith("### aisec: report-run") and lines[0].endswith("fail")
    rows = {
        line.split("|")[1].strip(): [c.strip() for c in line.split("|")[1:-1]]
        for line in lines
        if line.startswith("| ")
    }
    for score in report["scorecard"]["goals"]:
        row = rows[score["goal"]]
        assert row[1] == (score["need"] or "-")
        assert row[2] == (f"{score['score']:.0f}" if score["score"] is not None else "-")
        assert row[3].endswith(score["verdict"])
    fixes = [line for line in lines if line[:3] in ("1. ", "2. ", "3. ")]
    assert [f"`{fix['id']}`" in line for fix, line in zip(report["top_fixes"], fixes, strict=True)] == [True] * len(
        fixes
    )
    failed = [c for g in report["scorecard"]["goals"] for c in g["checks"] if c["passed"] is False]
    assert f"**Failed checks** ({len(failed)})" in md


@pytest.mark.parametrize("name", ["real", "full"])
def test_junit_has_a_case_per_goal_and_per_gate(reports: dict[str, Path], name: str) -> None:
    report = _json(reports[name] / "report.json")
    root = ET.parse(reports[name] / "report.xml").getroot()
    assert root.tag == "testsuites"
    suites = root.findall("testsuite")
    assert [s.get("name") for s in suites] == [f"aisec.report-run.{g['goal']}" for g in report["scorecard"]["goals"]]
    for suite, score in zip(suites, report["scorecard"]["goals"], strict=True):
        cases = suite.findall("testcase")
        assert len(cases) == 1 + len(score["checks"])
        goal_case, gates = cases[0], cases[1:]
        goal_failed = goal_case.find("failure") is not None
        assert goal_failed == (score["verdict"] in ("fail", "not assessed"))
        assert (goal_case.find("skipped") is not None) == (score["need"] is None)
        for case, check in zip(gates, score["checks"], strict=True):
            assert case.get("name", "").startswith(f"{check['job_id']}: {check['metric']} {check['comparison']}")
            assert (case.find("failure") is not None) == (check["passed"] is False)
            assert (case.find("skipped") is not None) == (check["passed"] is None)
        assert int(suite.get("tests", -1)) == len(cases)
        assert int(suite.get("failures", -1)) == sum(1 for c in cases if c.find("failure") is not None)
    assert int(root.get("tests", -1)) == sum(int(s.get("tests", 0)) for s in suites)
    assert int(root.get("failures", -1)) == sum(int(s.get("failures", 0)) for s in suites)
    if name == "full":
        assert int(root.get("failures", 0)) > 0


def test_formats_comma_list_and_repeated() -> None:
    assert parse_formats(None) == ["json", "html", "md", "junit"]
    assert parse_formats(["html,json", "md"]) == ["html", "json", "md"]
    assert parse_formats(["junit", "junit,json"]) == ["junit", "json"]
    with pytest.raises(ConfigError, match="pdf is not allowed; allowed: json, html, md, junit"):
        parse_formats(["html,pdf"])


def test_report_command_writes_what_was_asked_and_gates(full_run: Path, real_run: RunResult, tmp_path: Path) -> None:
    run_dir = _copy(full_run, tmp_path / "a")
    console = Console(record=True, width=200)
    assert report_command(run_dir, ["md,junit"], console=console) == 0
    assert sorted(p.name for p in run_dir.glob("report.*")) == ["report.md", "report.xml"]
    text = console.export_text()
    assert f"wrote {run_dir / 'report.md'}" in text and "confidentiality" in text
    assert report_command(run_dir, ["json"], console=Console(file=None, quiet=True), gate=True) == 1  # it fails a need
    real = _copy(real_run.run_dir, tmp_path / "b")
    # the real run leaves availability and confidentiality not assessed: the gate fails it too
    assert report_command(real, ["json"], console=Console(quiet=True), gate=True) == 1
    assert report_command(real, ["json"], console=Console(quiet=True), gate=False) == 0
    # with only the privacy need, which the membership attack does not break, the gate passes
    run = _json(real / "run.json")
    run["threat_model"]["needs"] = {"privacy": "high"}
    (real / "run.json").write_text(json.dumps(run), encoding="utf-8")
    assert report_command(real, ["json"], console=Console(quiet=True), gate=True) == 0


def test_every_format_renders_without_a_scorecard(reports: dict[str, Path]) -> None:
    from dataclasses import replace

    from aisec.report.digest import digest_run
    from aisec.report.render import render

    digest = replace(digest_run(reports["real"]), scorecard=None, top_fixes=(), fixes=())
    assert digest.passed is None
    data = json.loads(render(digest, "json"))
    validator = Draft202012Validator(_json(SCHEMA_FILE))
    assert list(validator.iter_errors(data)) == [] and data["scorecard"] is None
    assert "not scored" in render(digest, "md").splitlines()[0]
    html = render(digest, "html", reports["real"])
    assert 'id="overall">not scored<' in html
    root = ET.fromstring(render(digest, "junit"))
    goal_cases = [s.findall("testcase")[0] for s in root.findall("testsuite")]
    # no verdict without a scorecard, but a declared need that nothing measured still fails
    outcomes = {c.get("classname"): [e.tag for e in c] for c in goal_cases}
    assert outcomes == {
        "aisec.integrity": ["skipped"],
        "aisec.availability": ["failure"],
        "aisec.confidentiality": ["failure"],
        "aisec.privacy": ["skipped"],
    }
