"""Run folders for the report tests: a real assessment, and the same run with findings of the
attack families still being written (extraction, poisoning, inversion), in the documented metric
conventions, appended so every plot can be checked."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from aisec.assess.runner import RunResult, run_assessment
from aisec.core.config import parse_spec
from aisec.core.findings import Finding
from aisec.core.goals import Goal, Knowledge, OutputKind
from aisec.data import Dataset, load_digits
from aisec.targets import TorchTarget

NEEDS = {"integrity": "high", "availability": "normal", "confidentiality": "normal", "privacy": "high"}


def cancer_spec(name: str = "report-run") -> dict:
    return {
        "name": name,
        "target": {"kind": "torch", "path": "in-memory.pt"},
        "data": {"kind": "breast_cancer"},
        "threat_model": {"knowledge": "white-box", "needs": NEEDS},
        "attacks": [
            {"name": "fgsm", "eps": 0.05},
            {"name": "fgsm", "eps": 0.3},
            {"name": "pgd", "eps": 0.1, "steps": 10},
            {"name": "loss-threshold"},
        ],
    }


@pytest.fixture(scope="session")
def real_run(tmp_path_factory: pytest.TempPathFactory, cancer_mlp_target: TorchTarget, cancer: Dataset) -> RunResult:
    """A real assessment of the breast-cancer MLP: FGSM at two eps, PGD and a membership attack."""
    run_dir = tmp_path_factory.mktemp("report-real") / "run"
    result = run_assessment(parse_spec(cancer_spec()), run_dir=run_dir, target=cancer_mlp_target, data=cancer)
    assert [f.status for f in result.findings] == ["ok"] * 4, [f.error for f in result.findings]
    return result


def _finding(job: str, attack: str, goal: Goal, metrics: dict, headline: str, worse: str, **kw: object) -> Finding:
    return Finding(
        job_id=job,
        attack=attack,
        goal=goal,
        knowledge=Knowledge.BLACK_BOX,
        output=OutputKind.PROBABILITIES,
        metrics=metrics,
        headline=headline,
        worse_when=worse,  # type: ignore[arg-type]
        summary=f"{attack}: {headline} {metrics[headline]}",
        **kw,  # type: ignore[arg-type]
    )


def convention_findings(run_dir: Path) -> list[Finding]:
    """Findings in the metric conventions of attacks not in this tree yet (written into ``run_dir``)."""
    digits = load_digits()
    assert isinstance(digits.x_train, torch.Tensor)
    x, y = digits.x_train.numpy(), digits.y_train.numpy()
    means = np.stack([x[y == c].mean(axis=0) for c in range(10)]).astype(np.float32)
    rng = np.random.default_rng(0)
    recon = np.clip(means + rng.normal(0, 0.15, means.shape), 0, 1).astype(np.float32)
    (run_dir / "evidence").mkdir(exist_ok=True)
    np.savez_compressed(run_dir / "evidence" / "inversion-test.npz", reconstructions=recon, class_means=means)
    out = [
        _finding(
            "knockoff-test",
            "knockoff",
            Goal.CONFIDENTIALITY,
            {"fidelity": 0.93, "curve_queries": [100, 300, 1000, 3000], "curve_fidelity": [0.61, 0.78, 0.88, 0.93]},
            "fidelity",
            "higher",
            queries=3000,
            check_queries=449,  # the assessor's fidelity measurement on held-out inputs
        ),
        _finding(
            "inversion-test",
            "inversion",
            Goal.PRIVACY,
            {"mse_to_class_mean": 0.02},
            "mse_to_class_mean",
            "lower",
            evidence={"arrays": "evidence/inversion-test.npz"},
        ),
    ]
    for i, (frac, clean, asr) in enumerate([(0.01, 0.95, 0.2), (0.05, 0.94, 0.7), (0.1, 0.9, 0.96)]):
        out.append(
            _finding(
                f"backdoor-test-{i}",
                "backdoor",
                Goal.INTEGRITY,
                {"poison_fraction": frac, "clean_accuracy": clean, "attack_success_rate": asr},
                "attack_success_rate",
                "higher",
            )
        )
    return out


@pytest.fixture(scope="session")
def full_run(real_run: RunResult, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The real run folder plus findings for the extraction, inversion and poisoning plots."""
    run_dir = tmp_path_factory.mktemp("report-full") / "run"
    shutil.copytree(real_run.run_dir, run_dir)
    extra = convention_findings(run_dir)
    with (run_dir / "results.jsonl").open("a", encoding="utf-8") as fh:
        fh.writelines(f.to_json() + "\n" for f in extra)
    return run_dir
