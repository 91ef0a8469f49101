"""The runner: one finding per job in results.jsonl, resume after SIGKILL, spec checks."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from torch import nn

from aisec.assess.runner import read_findings, run_assessment
from aisec.core.config import parse_spec
from aisec.core.goals import Capability
from aisec.data import load_digits
from aisec.demo import DigitsCNN, train_classifier
from aisec.errors import ConfigError
from aisec.registry import get_attack
from aisec.targets import TorchTarget

EPSILONS = [round(0.02 * i, 2) for i in range(1, 11)]


@pytest.fixture(scope="module")
def digits_model_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data = load_digits()
    torch.manual_seed(0)
    model = train_classifier(DigitsCNN(), data, epochs=3, lr=3e-3, batch_size=64, seed=0)
    path = tmp_path_factory.mktemp("models") / "digits.pt"
    torch.jit.save(torch.jit.trace(model, torch.zeros(1, 1, 8, 8)), str(path))
    return path


def _spec(model: Path, **threat: object) -> dict:
    return {
        "name": "resume-test",
        "target": {"kind": "torch", "path": str(model), "device": "cpu"},
        "data": {"kind": "digits"},
        "threat_model": {"knowledge": "white-box", "needs": {"integrity": "high", "privacy": "high"}, **threat},
        # small batches make each job take long enough for a kill to land between findings
        "attacks": [{"name": "fgsm", "eps": e, "batch_size": 4, "n_samples": 240} for e in EPSILONS]
        + [{"name": "loss-threshold", "batch_size": 16}],
    }


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def _comparable(run_dir: Path) -> dict[str, dict]:
    return {f.job_id: {"metrics": f.metrics, "status": f.status, "config": f.config} for f in read_findings(run_dir)}


@pytest.mark.integration
def test_sigkill_then_resume_gives_exactly_the_uninterrupted_findings(digits_model_file: Path, tmp_path: Path) -> None:
    spec_path = tmp_path / "spec.yaml"
    spec_path.write_text(yaml.safe_dump(_spec(digits_model_file)))
    killed_dir, clean_dir = tmp_path / "killed", tmp_path / "clean"
    cmd = [sys.executable, "-m", "aisec.cli.main", "assess", str(spec_path), "--no-progress", "--out"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}

    proc = subprocess.Popen([*cmd, str(killed_dir)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    results = killed_dir / "results.jsonl"
    deadline = time.monotonic() + 120
    while len(_lines(results)) < 3 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.005)
    assert proc.poll() is None, "the run finished before it could be killed; the test must kill it mid-run"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    done_before = len(_lines(results))
    n_jobs = len(EPSILONS) + 2  # the attacks, and the scan of the model file that comes first
    assert 3 <= done_before < n_jobs

    resumed = subprocess.run([*cmd, str(killed_dir), "--resume"], env=env, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    clean = subprocess.run([*cmd, str(clean_dir)], env=env, capture_output=True, text=True, timeout=300)
    assert clean.returncode == 0, clean.stderr

    ids = [json.loads(line)["job_id"] for line in _lines(results)]
    assert len(ids) == n_jobs and len(set(ids)) == n_jobs, "every job exactly once"
    assert _comparable(killed_dir) == _comparable(clean_dir)
    # the findings already written before the kill were kept, not recomputed
    assert ids[:done_before] == [json.loads(line)["job_id"] for line in _lines(results)[:done_before]]


def _small_spec(model: Path) -> dict:
    spec = _spec(model)
    spec["attacks"] = [{"name": "fgsm", "eps": 0.1, "n_samples": 64}, {"name": "fgsm", "eps": 0.2, "n_samples": 64}]
    return spec


def test_a_line_cut_short_is_dropped_on_resume(digits_model_file: Path, tmp_path: Path) -> None:
    spec = parse_spec(_small_spec(digits_model_file))
    run = run_assessment(spec, run_dir=tmp_path)
    lines = _lines(tmp_path / "results.jsonl")
    assert [json.loads(x)["attack"] for x in lines] == ["model-scan", "fgsm", "fgsm"]
    # as if the process died while writing the last line
    (tmp_path / "results.jsonl").write_text("\n".join(lines[:2]) + "\n" + lines[2][: len(lines[2]) // 2])
    assert [f.job_id for f in read_findings(tmp_path)] == [f.job_id for f in run.findings[:2]]
    again = run_assessment(spec, run_dir=tmp_path, resume=True)
    assert again.resumed == 1
    final = _lines(tmp_path / "results.jsonl")
    assert len(final) == 3 and all(json.loads(x) for x in final)
    assert [f.metrics for f in read_findings(tmp_path)] == [f.metrics for f in run.findings]


def test_resume_refuses_a_changed_spec(digits_model_file: Path, tmp_path: Path) -> None:
    raw = _small_spec(digits_model_file)
    run_assessment(parse_spec(raw), run_dir=tmp_path)
    raw["attacks"][0]["eps"] = 0.3
    with pytest.raises(ConfigError, match="differs"):
        run_assessment(parse_spec(raw), run_dir=tmp_path, resume=True)


def test_a_fresh_run_replaces_old_results(digits_model_file: Path, tmp_path: Path) -> None:
    spec = parse_spec(_small_spec(digits_model_file))
    run_assessment(spec, run_dir=tmp_path)
    run_assessment(spec, run_dir=tmp_path)
    assert len(_lines(tmp_path / "results.jsonl")) == 3  # model-scan and two fgsm jobs, once each


def test_in_memory_target_and_evidence(tmp_path: Path) -> None:
    data = load_digits()
    torch.manual_seed(0)
    model = train_classifier(DigitsCNN(), data, epochs=2, lr=3e-3, batch_size=64, seed=0)
    target = TorchTarget(model, input_shape=(1, 8, 8), clip=(0.0, 1.0), device="cpu")
    raw = {
        "name": "mem",
        "target": {"kind": "torch", "path": "unused.pt"},
        "data": {"kind": "digits"},
        # auto plan, privacy only: the integrity attacks are planned out for lack of a need
        "threat_model": {"knowledge": "white-box", "needs": {"privacy": "high"}},
    }
    run = run_assessment(parse_spec(raw), run_dir=tmp_path, target=target, data=data)
    assert "loss-threshold" in {f.attack for f in run.findings}
    assert {f.goal.value for f in run.findings} == {"privacy"}
    (finding,) = [f for f in run.findings if f.attack == "loss-threshold"]
    assert finding.status == "ok"
    assert (tmp_path / finding.evidence["arrays"]).is_file()
    meta = json.loads((tmp_path / "run.json").read_text())
    assert meta["data"]["n_train"] == len(data.y_train)
    skipped = {s["attack"]: s["reason"] for s in meta["plan"]["skipped"]}
    assert "no protection need declared for integrity" in skipped["fgsm"]


class _Broken(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.requires_grad:
            raise RuntimeError("boom")
        return torch.zeros(len(x), 10)


def test_a_crashing_attack_is_an_error_finding_and_the_rest_still_runs(tmp_path: Path) -> None:
    data = load_digits()
    target = TorchTarget(_Broken(), input_shape=(1, 8, 8), n_classes=10, clip=(0.0, 1.0), device="cpu")
    raw = {
        "name": "crash",
        "target": {"kind": "torch", "path": "unused.pt"},
        "data": {"kind": "digits"},
        "threat_model": {"knowledge": "white-box", "needs": {"integrity": "high", "privacy": "high"}},
        "attacks": ["fgsm", "pgd", "loss-threshold"],
    }
    run = run_assessment(parse_spec(raw), run_dir=tmp_path, target=target, data=data)
    by_attack = {f.attack: f for f in run.findings}
    for gradient_attack in [f.attack for f in run.findings if Capability.GRADIENTS in get_attack(f.attack).needs]:
        assert by_attack[gradient_attack].status == "error" and "boom" in (by_attack[gradient_attack].error or "")
    assert by_attack["loss-threshold"].status == "ok"
    assert len(_lines(tmp_path / "results.jsonl")) == len(run.findings)  # every job once, the crashed ones too
