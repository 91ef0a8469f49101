"""aisec diff: what got better or worse between two model versions, per goal and per finding."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from rich.console import Console
from sklearn.linear_model import LogisticRegression
from sklearn.tree import DecisionTreeClassifier

from aisec.assess.runner import run_assessment
from aisec.cli.diff import diff_command
from aisec.core.config import parse_spec
from aisec.core.goals import Goal, ProtectionNeed
from aisec.data import Dataset
from aisec.errors import ConfigError
from aisec.report.diff import diff_findings, diff_runs
from aisec.targets import SklearnTarget
from tests.assess.test_scoring import finding

NEEDS = {Goal.INTEGRITY: ProtectionNeed.HIGH, Goal.PRIVACY: ProtectionNeed.NORMAL}


def test_findings_matched_by_job_id_then_by_unique_attack_name() -> None:
    before = [
        finding("pgd", "integrity", {"clean_accuracy": 1.0, "robust_accuracy": 0.2}, job="pgd-aaaa",
                headline="robust_accuracy", worse_when="lower"),
        finding("fgsm", "integrity", {"clean_accuracy": 1.0, "robust_accuracy": 0.5}, job="fgsm-1111",
                headline="robust_accuracy", worse_when="lower"),
        finding("lira", "privacy", {"auc": 0.6}, job="lira-gone"),
    ]  # fmt: skip
    after = [
        finding("pgd", "integrity", {"clean_accuracy": 1.0, "robust_accuracy": 0.8}, job="pgd-aaaa",
                headline="robust_accuracy", worse_when="lower"),
        finding("fgsm", "integrity", {"clean_accuracy": 1.0, "robust_accuracy": 0.5}, job="fgsm-2222",
                headline="robust_accuracy", worse_when="lower"),
        finding("knockoff", "confidentiality", {"fidelity": 0.5}, job="knockoff-new"),
    ]  # fmt: skip
    d = diff_findings(before, after, NEEDS)
    by_job = {f.job_id: f for f in d.findings}
    assert by_job["pgd-aaaa"].change == "better" and (by_job["pgd-aaaa"].before, by_job["pgd-aaaa"].after) == (0.2, 0.8)
    assert by_job["fgsm-2222"].change == "same"  # matched by name across different parameters
    assert by_job["lira-gone"].change == "gone" and by_job["knockoff-new"].change == "new"
    goals = {g.goal: g for g in d.goals}
    assert goals[Goal.INTEGRITY].change == "better" and goals[Goal.INTEGRITY].delta == pytest.approx(30.0)
    assert goals[Goal.INTEGRITY].verdict_before == "fail" and goals[Goal.INTEGRITY].verdict_after == "fail"
    assert goals[Goal.PRIVACY].change == "gone" and goals[Goal.PRIVACY].verdict_after == "not assessed"
    assert goals[Goal.CONFIDENTIALITY].change == "new"
    assert not d.worse
    assert "| pgd-aaaa | integrity | robust_accuracy | 0.2 | 0.8 | better |" in d.to_markdown()


def test_identical_runs_have_no_change() -> None:
    fs = [finding("lira", "privacy", {"auc": 0.7, "tpr_at_0.1pct_fpr": 0.05})]
    d = diff_findings(fs, fs, NEEDS)
    assert not d.worse
    assert {f.change for f in d.findings} == {"same"}
    assert {g.change for g in d.goals} == {"same"}


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory: pytest.TempPathFactory, cancer: Dataset) -> tuple[Path, Path]:
    """Two versions of a breast-cancer model: a regularized logistic regression, then a
    fully grown decision tree that memorizes its training set (zero loss on every member)."""
    root = tmp_path_factory.mktemp("runs")
    x, y = cancer.x_train.numpy(), cancer.y_train.numpy()  # type: ignore[union-attr]
    spec = parse_spec(
        {
            "name": "cancer",
            "target": {"kind": "sklearn", "path": "model.joblib"},
            "data": {"kind": "breast_cancer"},
            "threat_model": {"knowledge": "white-box", "needs": {"privacy": "normal", "integrity": "normal"}},
            "attacks": [{"name": "loss-threshold"}],
        }
    )
    dirs = []
    for name, model in (
        ("v1", LogisticRegression(C=0.05, max_iter=1000)),
        ("v2", DecisionTreeClassifier(random_state=0)),
    ):
        model.fit(x, y)
        target = SklearnTarget(model, input_shape=(30,), name=name)
        dirs.append(run_assessment(spec, run_dir=root / name, target=target, data=cancer).run_dir)
    return dirs[0], dirs[1]


def test_diff_of_two_real_runs(two_runs: tuple[Path, Path]) -> None:
    v1, v2 = two_runs
    d = diff_runs(v1, v2)
    privacy = next(g for g in d.goals if g.goal is Goal.PRIVACY)
    # measured: AUC 0.522 (v1, 95% CI 0.41-0.60) -> 0.556 (v2, 0.528-0.597), privacy score 99.2 -> 86.1
    assert privacy.change == "worse" and privacy.delta is not None and privacy.delta < -10
    (member,) = [f for f in d.findings if f.attack == "loss-threshold"]
    assert member.change == "worse" and member.after > member.before + 0.03  # type: ignore[operator]
    assert next(g for g in d.goals if g.goal is Goal.INTEGRITY).verdict_after == "not assessed"
    back = diff_runs(v2, v1)
    assert next(g for g in back.goals if g.goal is Goal.PRIVACY).change == "better"


def test_diff_command_exit_codes_and_json(two_runs: tuple[Path, Path], tmp_path: Path) -> None:
    v1, v2 = two_runs
    quiet = Console(file=open("/dev/null", "w"), width=120)  # noqa: SIM115
    assert diff_command(v1, v2, console=quiet) == 1  # privacy got worse
    assert diff_command(v2, v1, console=quiet) == 0
    assert diff_command(v1, v1, console=quiet) == 0
    out = tmp_path / "diff.json"
    diff_command(v1, v2, format="json", output=out, console=quiet)
    data = json.loads(out.read_text())
    assert {g["goal"]: g["change"] for g in data["goals"]}["privacy"] == "worse"
    with pytest.raises(ConfigError, match="not a run folder"):
        diff_command(v1, tmp_path / "missing", console=quiet)
    with pytest.raises(ConfigError, match="--format"):
        diff_command(v1, v2, format="xml", console=quiet)
