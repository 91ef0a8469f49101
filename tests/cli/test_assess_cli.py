"""``aisec assess`` and ``aisec report`` end to end on a small TorchScript digits CNN."""

from __future__ import annotations

import json
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from aisec.cli.main import app
from aisec.core.findings import Finding
from aisec.core.goals import Capability, Goal
from aisec.registry import get_attack

from .conftest import Models, Result, digits_spec, run_aisec, write_spec

RUN_FILES = ("results.jsonl", "run.json", "spec.json", "report.json", "report.html")


@pytest.fixture(scope="module")
def runs(models: Models, tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Result, Path]]:
    """Two assessments of the same model, side by side: a white-box and a black-box attacker."""
    root = tmp_path_factory.mktemp("assess")
    white = write_spec(root / "white.yaml", digits_spec(models))
    black_spec = digits_spec(models, name="cli-digits-black", attacks="auto")
    black_spec["threat_model"] = {**black_spec["threat_model"], "knowledge": "black-box"}
    black = write_spec(root / "black.yaml", black_spec)
    jobs = {"white": (white, root / "out" / "white"), "black": (black, root / "out" / "black")}
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = {
            k: pool.submit(run_aisec, ["assess", spec, "--out", out, "--no-progress"], cwd=root)
            for k, (spec, out) in jobs.items()
        }
        return {k: (fut.result(), jobs[k][1]) for k, fut in futures.items()}


def _findings(run_dir: Path) -> list[Finding]:
    lines = (run_dir / "results.jsonl").read_text(encoding="utf-8").splitlines()
    return [Finding.from_json(line) for line in lines]


def _json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def _table_rows(stdout: str) -> dict[str, list[str]]:
    """Rows of the per-goal table by goal name (the first line of each row)."""
    rows = {}
    for line in stdout.splitlines():
        cells = [c.strip() for c in line.split("│")[1:-1]]
        if cells and cells[0] in {g.value for g in Goal}:
            rows[cells[0]] = cells
    return rows


def test_white_box_assess_writes_the_run_folder(runs: dict[str, tuple[Result, Path]], models: Models) -> None:
    result, run_dir = runs["white"]
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    for name in RUN_FILES:
        assert (run_dir / name).is_file(), f"{name} missing from {run_dir}"
    scans = [f for f in _findings(run_dir) if f.attack == "model-scan"]
    assert [(f.goal, f.atlas, f.metrics["dangerous"], f.metrics["files"]) for f in scans] == [
        (Goal.INTEGRITY, "AML.T0010", 0, 1)
    ]  # the model file was scanned before it was loaded (supply chain)
    findings = [f for f in _findings(run_dir) if f.attack != "model-scan"]
    assert len(findings) == 2
    assert all(f.status == "ok" for f in findings), [f.error for f in findings]
    by_attack = {f.attack: f for f in findings}
    assert set(by_attack) == {"fgsm", "loss-threshold"}

    fgsm = by_attack["fgsm"]
    assert fgsm.goal is Goal.INTEGRITY and fgsm.config["eps"] == 0.1
    assert fgsm.metrics["n"] == 200
    assert fgsm.metrics["clean_accuracy"] > 0.85  # a real model (test accuracy ~0.95)
    assert fgsm.metrics["robust_accuracy"] <= fgsm.metrics["clean_accuracy"]
    assert fgsm.metrics["max_linf"] <= 0.1 + 1e-6
    assert (run_dir / fgsm.evidence["arrays"]).is_file()
    assert by_attack["loss-threshold"].goal is Goal.PRIVACY
    assert 0.0 <= by_attack["loss-threshold"].metrics["auc"] <= 1.0

    run = _json(run_dir / "run.json")
    assert [j["id"] for j in run["plan"]["jobs"]] == [f.job_id for f in findings]
    assert run["threat_model"]["knowledge"] == "white-box"
    assert _json(run_dir / "spec.json")["target"]["path"] == str(models.digits_cnn)


def test_white_box_assess_prints_the_goal_table(runs: dict[str, tuple[Result, Path]]) -> None:
    result, run_dir = runs["white"]
    assert "cli-digits: per security goal" in result.stdout
    rows = _table_rows(result.stdout)
    assert set(rows) == {g.value for g in Goal}, result.stdout
    # the verdict and score are the scorecard's, as report.json has them
    card = {g["goal"]: g for g in _json(run_dir / "report.json")["scorecard"]["goals"]}
    for goal in ("integrity", "privacy"):
        assert rows[goal][1:5] == [{"integrity": "high", "privacy": "normal"}[goal], "assessed",
                                   f"{card[goal]['score']:.0f}", card[goal]["verdict"]]  # fmt: skip
    assert rows["availability"][1:5] == ["-", "not requested", "-", "not requested"]
    assert "robust accuracy" in rows["integrity"][5]
    overall = "pass" if all(card[g]["verdict"] in ("pass", "not requested") for g in card) else "fail"
    assert f"overall: {overall}" in result.stdout
    assert str(run_dir / "report.html") in result.stdout


def test_report_rebuilds_from_the_folder_alone(runs: dict[str, tuple[Result, Path]], tmp_path: Path) -> None:
    """A copy of the run folder elsewhere, reports deleted, rebuilt by ``aisec report``."""
    result, run_dir = runs["white"]
    assert result.returncode == 0, result.stderr
    before = _json(run_dir / "report.json")
    copy = tmp_path / "elsewhere" / "run"
    shutil.copytree(run_dir, copy)
    for name in ("report.json", "report.html"):
        (copy / name).unlink()
    rebuilt = CliRunner().invoke(app, ["report", str(copy)], env={"COLUMNS": "200", "NO_COLOR": "1"})
    assert rebuilt.exit_code == 0, rebuilt.output
    assert (copy / "report.html").is_file()
    after = _json(copy / "report.json")
    assert after["findings"] == before["findings"]
    assert after["goals"] == before["goals"]
    assert after["run"] == before["run"]
    assert "integrity" in rebuilt.stdout and f"wrote {copy / 'report.json'}" in rebuilt.stdout


def test_black_box_auto_plan_skips_fgsm(runs: dict[str, tuple[Result, Path]]) -> None:
    result, run_dir = runs["black"]
    assert result.returncode == 0, result.stderr
    plan = _json(run_dir / "run.json")["plan"]
    skipped = {s["attack"]: s["reason"] for s in plan["skipped"]}
    assert "fgsm" in skipped, plan
    assert "gradients" in skipped["fgsm"]
    jobs = [j["attack"] for j in plan["jobs"]]
    assert "loss-threshold" in jobs and "fgsm" not in jobs
    findings = [f for f in _findings(run_dir) if f.attack != "model-scan"]
    assert all(f.knowledge.value == "black-box" and f.status == "ok" for f in findings)
    (lt,) = [f for f in findings if f.attack == "loss-threshold"]
    assert lt.queries > 0  # a black-box attacker pays for its queries
    rows = _table_rows(result.stdout)
    # integrity is measured by black-box attacks only (square, hopskipjump): none that needs gradients
    integrity = [f for f in findings if f.goal is Goal.INTEGRITY]
    assert integrity and not any(Capability.GRADIENTS in get_attack(f.attack).needs for f in integrity)
    assert rows["integrity"][1] == "high"
    assert rows["privacy"][2] == "assessed" and rows["privacy"][4] in ("pass", "fail")
