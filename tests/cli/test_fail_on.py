"""`aisec assess --fail-on` is a CI gate: exit 1 when a goal misses its gate, 0 when it passes, 2 for a bad value."""

from __future__ import annotations

from pathlib import Path

from .conftest import Models, digits_spec, run_aisec, write_spec


def test_fail_on_gates_the_exit_code(models: Models, tmp_path: Path) -> None:
    spec = write_spec(
        tmp_path / "spec.yaml", digits_spec(models, attacks=[{"name": "fgsm", "eps": 0.3, "n_samples": 100}])
    )
    out = tmp_path / "run"
    # FGSM at eps 0.3 breaks most of the CNN's answers: integrity cannot reach a score of 95
    strict = run_aisec(["assess", spec, "--out", out, "--no-progress", "--fail-on", "integrity=95"], cwd=tmp_path)
    assert strict.returncode == 1, strict.stdout + strict.stderr
    assert "integrity" in strict.stdout
    lenient = run_aisec(["assess", spec, "--out", out, "--no-progress", "--fail-on", "integrity=0"], cwd=tmp_path)
    assert lenient.returncode == 0, lenient.stdout + lenient.stderr
    # privacy has a declared need and no attack in this spec: "not assessed" never passes a need gate
    need = run_aisec(["assess", spec, "--out", out, "--no-progress", "--fail-on", "need"], cwd=tmp_path)
    assert need.returncode == 1, need.stdout + need.stderr
    bad = run_aisec(
        ["assess", spec, "--out", tmp_path / "other", "--no-progress", "--fail-on", "integrity=high"], cwd=tmp_path
    )
    assert bad.returncode == 2 and "Traceback" not in bad.stderr and bad.stderr.startswith("error:")
    assert not (tmp_path / "other").exists()  # a bad gate is refused before anything runs
