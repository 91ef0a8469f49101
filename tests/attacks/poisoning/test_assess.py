"""A poisoning attack through the assessment: the threat model grants flip-labels, the plan picks it."""

from __future__ import annotations

from pathlib import Path

from aisec.assess.plan import make_plan
from aisec.assess.runner import read_findings, run_assessment
from aisec.core.config import parse_spec
from aisec.data import Dataset
from aisec.targets import SklearnTarget


def _spec(training_data: list[str]) -> dict:
    return {
        "name": "poison-assess",
        "target": {"kind": "sklearn", "path": "unused.joblib", "input_shape": [30]},
        "data": {"kind": "breast_cancer"},
        "threat_model": {
            "knowledge": "black-box",
            "output": "labels",
            "query_budget": 0,
            "training_data": training_data,
            "needs": {"integrity": "high"},
        },
        "attacks": "auto",
    }


def test_the_plan_runs_label_flip_only_when_the_threat_model_grants_flip_labels(
    cancer: Dataset, cancer_sklearn_target: SklearnTarget, tmp_path: Path
) -> None:
    denied = make_plan(parse_spec(_spec([])), cancer_sklearn_target, cancer)
    assert "label-flip" not in [j.attack for j in denied.jobs]
    assert any(s.attack == "label-flip" and "flip-labels" in s.reason for s in denied.skipped)

    spec = parse_spec(_spec(["flip-labels"]))
    plan = make_plan(spec, cancer_sklearn_target, cancer)
    assert "label-flip" in [j.attack for j in plan.jobs]
    assert any(s.attack == "backdoor" for s in plan.skipped)  # add-points not granted (and tabular data)

    run_assessment(spec, run_dir=tmp_path, target=cancer_sklearn_target, data=cancer)  # recipe: a clone of the model
    findings = {f.attack: f for f in read_findings(tmp_path)}
    flip = findings["label-flip"]
    assert flip.status == "ok", flip.summary
    assert flip.headline == "accuracy_drop" and flip.worse_when == "higher"
    assert flip.metrics["n_poison"] == round(0.2 * len(cancer.y_train))
    assert 0.9 < flip.metrics["clean_accuracy"] <= 1.0
    assert (tmp_path / flip.evidence["arrays"]).is_file()
