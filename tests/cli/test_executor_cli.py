"""``aisec assess --executor``: shadows trained in a process pool give the same findings as in process."""

from __future__ import annotations

import json
from pathlib import Path

from .conftest import Models, cli_env, digits_spec, run_aisec, write_spec

LIRA = {"name": "lira", "shadows": 4, "hidden": [16], "epochs": 3, "n_samples": 60, "n_bootstrap": 20}


def _lira(run_dir: Path) -> dict:
    for line in (run_dir / "results.jsonl").read_text(encoding="utf-8").splitlines():
        finding = json.loads(line)
        if finding["attack"] == "lira":
            return finding
    raise AssertionError(f"no lira finding in {run_dir}")


def test_process_executor_gives_the_local_findings(models: Models, tmp_path: Path) -> None:
    spec = digits_spec(models, name="cli-executor", attacks=[LIRA])
    spec["threat_model"] = {**spec["threat_model"], "knowledge": "grey-box"}
    path = write_spec(tmp_path / "spec.yaml", spec)
    runs = {}
    for kind, extra in (("local", []), ("process", ["--workers", "2"])):
        out = tmp_path / kind
        env = cli_env(AISEC_CACHE=str(tmp_path / f"cache-{kind}"))  # no shared cache: each run trains its shadows
        result = run_aisec(
            ["assess", path, "--out", out, "--no-progress", "--executor", kind, *extra], cwd=tmp_path, env=env
        )
        assert result.returncode == 0, result.stderr
        runs[kind] = _lira(out)
    local, process = runs["local"], runs["process"]
    assert local["status"] == process["status"] == "ok"
    assert local["metrics"] == process["metrics"]  # bit-identical shadows, whatever the executor
    assert "process" in process["summary"]


def test_an_unknown_executor_is_one_line(models: Models, tmp_path: Path) -> None:
    path = write_spec(tmp_path / "spec.yaml", digits_spec(models))
    result = run_aisec(["assess", path, "--executor", "gpu-farm"], cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().startswith("error:") and "gpu-farm" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
