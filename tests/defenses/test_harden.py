"""``harden``: defend the spec's torch target, re-run the same plan, report gain and cost."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import pytest
import torch
import yaml
from rich.console import Console
from torch import nn

from aisec.cli.harden import _gain, harden_command, parse_params
from aisec.core.config import parse_spec
from aisec.data import Dataset
from aisec.defenses.harden import HARDEN_FILE, harden
from aisec.errors import ConfigError, UnsupportedTargetError
from aisec.targets import SklearnTarget, TorchTarget

ATTACKS = [{"name": "fgsm", "eps": 0.1, "n_samples": 150}, {"name": "pgd", "eps": 0.1, "steps": 10, "n_samples": 150}]


def _spec(path: str = "-", name: str = "digits-harden") -> dict:
    return {
        "name": name,
        "target": {"kind": "torch", "path": path},
        "data": {"kind": "digits"},
        "threat_model": {"knowledge": "white-box", "needs": {"integrity": "high"}},
        "attacks": ATTACKS,
    }


def test_adversarial_training_gains_robustness(tmp_path: Path, digits_cnn_target: TorchTarget, digits: Dataset) -> None:
    spec = parse_spec(_spec())
    stages: list[str] = []
    epochs: list[tuple[int, int]] = []
    result = harden(
        spec, "adversarial-training", {"epochs": 4, "steps": 5, "lr": 2e-3}, run_dir=tmp_path / "run",
        target=digits_cnn_target, data=digits, on_stage=stages.append,
        on_defense_progress=lambda done, total: epochs.append((done, total)),
    )  # fmt: skip
    assert epochs == [(1, 4), (2, 4), (3, 4), (4, 4)]  # the defense's epochs reach the caller
    assert (tmp_path / "run" / "results.jsonl").is_file() and (
        tmp_path / "run" / "defended" / "results.jsonl"
    ).is_file()
    integrity = next(g for g in result.goals if g["goal"] == "integrity")
    assert integrity["metric"] == "robust_accuracy" and integrity["gain"] > 0.05, integrity
    # the row follows the job that was the goal's worst before, in both runs, beside the scorecard's change
    job = next(j for j in result.jobs if j["job_id"] == integrity["job_id"])
    assert (integrity["before"], integrity["after"]) == (job["before"], job["after"])
    assert integrity["score_gain"] == integrity["score_after"] - integrity["score_before"] > 0
    assert integrity["verdict_before"] in ("pass", "fail") and integrity["verdict_after"] in ("pass", "fail")
    assert {j["attack"] for j in result.jobs} == {"fgsm", "pgd"} and all(j["gain"] > 0 for j in result.jobs)
    assert result.clean_accuracy["after"] > 0.9 and result.seconds["defense"] > 0
    assert result.adaptive["adaptive"] > result.adaptive["undefended"] + 0.05
    saved = json.loads((tmp_path / "run" / "defended" / HARDEN_FILE).read_text())
    assert saved["goals"] == result.goals and saved["params"]["epochs"] == 4
    # a second harden reuses the finished baseline run
    again = harden(spec, "bit-depth", {"bits": 1}, run_dir=tmp_path / "run", target=digits_cnn_target, data=digits,
                   on_stage=stages.append)  # fmt: skip
    assert any("reusing the baseline" in s for s in stages)
    assert again.seconds["baseline_assessment"] == 0.0


def test_bit_depth_report_shows_the_non_adaptive_figure_overstates(
    tmp_path: Path, digits_cnn_target: TorchTarget, digits: Dataset
) -> None:
    spec = parse_spec(_spec())
    result = harden(spec, "bit-depth", {"bits": 1}, run_dir=tmp_path / "r", target=digits_cnn_target, data=digits)
    check = result.adaptive
    assert check["attacker"] == "bpda" and check["naive"] is not None
    assert check["naive"] > check["worst_case"] + 0.10, check  # measured 0.93 vs 0.75-0.77
    assert check["worst_case"] <= min(check["transfer"], check["naive"], check["adaptive"])
    assert any("overstate" in f for f in result.flags)
    # the plan's white-box PGD ran on the BPDA model: as strong as the adaptive check, not the naive one
    pgd = next(j for j in result.jobs if j["attack"] == "pgd")
    assert pgd["after"] < check["naive"] - 0.05, (pgd, check)


def test_harden_refuses_a_non_torch_target(
    tmp_path: Path, cancer_sklearn_target: SklearnTarget, cancer: Dataset
) -> None:
    raw = _spec() | {"data": {"kind": "breast_cancer"}, "attacks": "auto"}
    with pytest.raises(UnsupportedTargetError, match="torch target"):
        harden(parse_spec(raw), "bit-depth", run_dir=tmp_path, target=cancer_sklearn_target, data=cancer)  # type: ignore[arg-type]


def test_a_gain_that_rounds_to_nothing_has_no_sign() -> None:
    assert _gain(-0.0) == _gain(-1e-9) == _gain(4e-4) == "0.000"  # before - after of equal figures
    assert _gain(0.012) == "[green]+0.012[/green]" and _gain(-0.5) == "[red]-0.500[/red]" and _gain(None) == "-"


def test_parse_params() -> None:
    assert parse_params(["eps=0.05", "method=trades", "samples=4"]) == {"eps": 0.05, "method": "trades", "samples": 4}
    with pytest.raises(ConfigError, match="key=value"):
        parse_params(["eps"])


def test_harden_command_on_a_torchscript_file(tmp_path: Path, digits_cnn: nn.Module) -> None:
    model_path = tmp_path / "cnn.pt"
    torch.jit.save(torch.jit.trace(digits_cnn, torch.zeros(1, 1, 8, 8)), str(model_path))
    spec_path = tmp_path / "spec.yaml"
    spec_path.write_text(yaml.safe_dump(_spec(str(model_path), "cli-harden")))
    buf = io.StringIO()
    code = harden_command(spec_path, "median-smoothing", ["size=2"], tmp_path / "run",
                          console=Console(file=buf, width=200))  # fmt: skip
    text = buf.getvalue()
    assert code == 0
    assert "integrity" in text and "non-adaptive vs adaptive" in text and "clean accuracy" in text
    assert (tmp_path / "run" / "defended" / "report.html").is_file()
    with pytest.raises(ConfigError, match="unknown defense"):
        harden_command(spec_path, "nope", [], tmp_path / "run", console=Console(file=io.StringIO()))
    # on a terminal: bars for both runs' jobs and the defense's epochs, drawn on the stderr console
    bars = io.StringIO()
    code = harden_command(spec_path, "adversarial-training", ["epochs=2", "steps=2"], tmp_path / "run2",
                          console=Console(file=io.StringIO(), width=200),
                          progress=Console(file=bars, width=200, force_terminal=True))  # fmt: skip
    assert code == 0
    lines = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", bars.getvalue()).splitlines()  # without the terminal's codes
    assert any("applying adversarial-training: epochs" in line and "2/2" in line for line in lines)
    assert any("cli-harden: jobs" in line for line in lines)
    # the stage lines and the defense's own lines go above the bars, on their console, not into the tables' output
    assert any(line.strip() == "applying adversarial-training" for line in lines)
    assert any(line.startswith("pgd-at: 2 epochs in") for line in lines)  # adversarial training's INFO line
