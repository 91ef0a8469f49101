"""digest_run: per goal, what was assessed and the worst result, from a run folder alone."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from aisec.core.findings import Finding
from aisec.core.goals import Goal, Knowledge, OutputKind
from aisec.errors import ConfigError
from aisec.report import GoalRow, digest_run

STATUSES = {"assessed", "not assessed", "failed", "not requested"}


def _fgsm(job: str, robust: float, *, eps: float) -> Finding:
    return Finding(
        job_id=job,
        attack="fgsm",
        goal=Goal.INTEGRITY,
        knowledge=Knowledge.WHITE_BOX,
        output=OutputKind.PROBABILITIES,
        config={"eps": eps},
        metrics={"eps": eps, "clean_accuracy": 0.95, "robust_accuracy": robust},
        headline="robust_accuracy",
        worse_when="lower",
        summary=f"FGSM at eps={eps}: robust accuracy {robust}",
    )


def _membership(job: str, auc: float) -> Finding:
    return Finding(
        job_id=job,
        attack="loss-threshold",
        goal=Goal.PRIVACY,
        knowledge=Knowledge.BLACK_BOX,
        output=OutputKind.PROBABILITIES,
        metrics={"auc": auc},
        headline="auc",
        worse_when="higher",
        summary=f"loss threshold: AUC {auc}",
    )


def _error(job: str, attack: str, goal: Goal, **metrics: Any) -> Finding:
    return Finding(
        job_id=job,
        attack=attack,
        goal=goal,
        knowledge=Knowledge.WHITE_BOX,
        output=OutputKind.PROBABILITIES,
        status="error",
        metrics=metrics,
        headline="robust_accuracy" if goal is Goal.INTEGRITY else "auc",
        worse_when="lower" if goal is Goal.INTEGRITY else "higher",
        error="InputValidationError: data: expected shape (N, 64), got shape (1, 1, 8, 8)",
        summary=f"{attack} failed",
    )


def _run_folder(path: Path, needs: dict[str, str], findings: list[Finding], *, tail: str = "") -> Path:
    path.mkdir(parents=True)
    run = {"name": path.name, "threat_model": {"knowledge": "white-box", "needs": needs}, "plan": {"jobs": []}}
    (path / "run.json").write_text(json.dumps(run), encoding="utf-8")
    lines = "".join(f.to_json() + "\n" for f in findings)
    (path / "results.jsonl").write_text(lines + tail, encoding="utf-8")
    return path


def _rows(run_dir: Path) -> dict[str, GoalRow]:
    return {row.goal: row for row in digest_run(run_dir).goals}


def test_status_and_worst_result_per_goal(tmp_path: Path) -> None:
    findings = [
        _fgsm("fgsm-small", 0.62, eps=0.05),
        _fgsm("fgsm-large", 0.11, eps=0.2),
        _fgsm("fgsm-mid", 0.35, eps=0.1),
        _error("fgsm-broken", "fgsm", Goal.INTEGRITY, robust_accuracy=0.0),  # an error is no result
        _membership("lt-a", 0.55),
        _membership("lt-b", 0.72),
        _membership("lt-c", 0.51),
    ]
    needs = {"integrity": "high", "availability": "normal", "privacy": "very-high"}
    rows = _rows(_run_folder(tmp_path / "run", needs, findings))
    assert list(rows) == [g.value for g in Goal]

    integrity = rows["integrity"]
    assert (integrity.status, integrity.need, integrity.findings, integrity.errors) == ("assessed", "high", 4, 1)
    # worse_when lower: the smallest robust accuracy among the findings that ran
    assert (integrity.worst_job, integrity.worst_metric, integrity.worst_value) == (
        "fgsm-large",
        "robust_accuracy",
        pytest.approx(0.11),
    )
    assert integrity.worst_summary == "FGSM at eps=0.2: robust accuracy 0.11"
    assert integrity.headline() == "robust accuracy 0.110 (fgsm-large)"

    privacy = rows["privacy"]
    # worse_when higher: the largest AUC
    assert (privacy.status, privacy.worst_job, privacy.worst_value) == ("assessed", "lt-b", pytest.approx(0.72))

    availability = rows["availability"]  # a declared need and no finding: never a pass
    assert (availability.status, availability.need, availability.findings) == ("not assessed", "normal", 0)
    assert availability.worst_value is None and availability.headline() == "-"

    confidentiality = rows["confidentiality"]
    assert (confidentiality.status, confidentiality.need) == ("not requested", None)

    assert {row.status for row in rows.values()} <= STATUSES


def test_a_goal_whose_only_finding_is_an_error_has_failed(tmp_path: Path) -> None:
    findings = [
        _error("lt-broken", "loss-threshold", Goal.PRIVACY, auc=0.99),
        _fgsm("fgsm-ok", 0.5, eps=0.1),
    ]
    rows = _rows(_run_folder(tmp_path / "run", {"integrity": "normal", "privacy": "high"}, findings))
    privacy = rows["privacy"]
    assert (privacy.status, privacy.findings, privacy.errors) == ("failed", 1, 1)
    assert privacy.worst_value is None and privacy.worst_job is None  # the error's metrics do not count
    assert rows["integrity"].status == "assessed"


def test_every_status_but_assessed_is_reported_even_without_findings(tmp_path: Path) -> None:
    needs = {g.value: "very-high" for g in Goal}
    rows = _rows(_run_folder(tmp_path / "run", needs, []))
    assert {row.status for row in rows.values()} == {"not assessed"}


def test_a_line_cut_short_by_a_kill_is_not_a_finding(tmp_path: Path) -> None:
    whole = _fgsm("fgsm-whole", 0.4, eps=0.1)
    cut = _fgsm("fgsm-cut", 0.0, eps=0.3).to_json()[:40]  # no newline: the run was killed mid-write
    digest = digest_run(_run_folder(tmp_path / "run", {"integrity": "high"}, [whole], tail=cut))
    assert [f.job_id for f in digest.findings] == ["fgsm-whole"]
    assert digest.goals[0].worst_job == "fgsm-whole"


def test_to_dict_round_trips_the_findings(tmp_path: Path) -> None:
    findings = [_fgsm("fgsm-a", 0.3, eps=0.1), _membership("lt-a", 0.6)]
    data = digest_run(_run_folder(tmp_path / "run", {"integrity": "high"}, findings)).to_dict()
    assert data["report_schema_version"] == 1
    assert [Finding.model_validate(f) for f in data["findings"]] == findings
    assert [g["goal"] for g in data["goals"]] == [g.value for g in Goal]
    json.dumps(data)  # plain JSON


def test_not_a_run_folder(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not a run folder"):
        digest_run(tmp_path)


def test_a_given_scorecard_and_its_fixes_reach_the_digest(tmp_path: Path) -> None:
    from aisec.assess.scoring import Check, GoalScore, Scorecard
    from aisec.core.goals import ProtectionNeed
    from aisec.report.catalog import MITIGATIONS_BY_ID

    findings = [_fgsm("fgsm-a", 0.1, eps=0.3)]
    run_dir = _run_folder(tmp_path / "run", {"integrity": "high"}, findings)
    check = Check("fgsm-a", "robust_accuracy", 0.1, 0.7, ">=", False, "robust accuracy 0.1 < 0.7", score=10.0)
    known = next(iter(MITIGATIONS_BY_ID))
    card = Scorecard(
        goals=(
            GoalScore(Goal.INTEGRITY, ProtectionNeed.HIGH, 10.0, "fail", (check,), (known, "made-up-fix")),
            GoalScore(Goal.AVAILABILITY, None, None, "not requested"),
            GoalScore(Goal.CONFIDENTIALITY, None, None, "not requested"),
            GoalScore(Goal.PRIVACY, None, None, "not requested"),
        ),
        top_fixes=("made-up-fix", known),
    )
    digest = digest_run(run_dir, scorecard=card)
    assert digest.scorecard is card and digest.passed is False
    assert [f.id for f in digest.top_fixes] == ["made-up-fix", known]
    top = {f.id: f for f in digest.top_fixes}
    assert (top[known].title, top[known].cost) == (MITIGATIONS_BY_ID[known].name, MITIGATIONS_BY_ID[known].cost)
    assert top["made-up-fix"].title == "made-up-fix" and top["made-up-fix"].cost is None  # unknown id: named as is
    assert all(f.goals == ("integrity",) for f in digest.fixes)
    data = digest.to_dict()
    assert data["scorecard"]["goals"][0]["checks"][0]["passed"] is False
    assert data["scorecard"]["passed"] is False and data["top_fixes"][0]["id"] == "made-up-fix"


def test_the_run_is_scored_by_the_scoring_rules(tmp_path: Path) -> None:
    from aisec.assess.scoring import score_findings

    findings = [_fgsm("fgsm-a", 0.9, eps=0.05), _membership("lt-a", 0.95)]
    needs = {"integrity": "normal", "privacy": "high"}
    digest = digest_run(_run_folder(tmp_path / "run", needs, findings))
    assert digest.scorecard == score_findings(findings, needs)
    assert digest.score("privacy") is not None


def test_the_worst_result_is_the_finding_whose_check_sets_the_goal_score(tmp_path: Path) -> None:
    # headlines of different attacks are different metrics: a property-inference meta accuracy of 1.0 (no rule, not
    # gated) or a larger AUC whose interval shows less must not stand for a goal that a TPR at low FPR fails
    prop = Finding(job_id="prop", attack="property-inference", goal=Goal.PRIVACY, knowledge=Knowledge.GREY_BOX,
                   output=OutputKind.PROBABILITIES, metrics={"meta_accuracy": 1.0}, headline="meta_accuracy",
                   worse_when="higher", summary="meta-classifier accuracy 1.0")  # fmt: skip
    wide = _membership("wide", 0.60)
    wide.metrics["auc_ci95"] = [0.45, 0.75]  # judged on 0.45: nothing shown
    leaky = _membership("leaky", 0.55)
    leaky.metrics["tpr_at_0.1pct_fpr"] = 0.2
    rows = _rows(_run_folder(tmp_path / "run", {"privacy": "high"}, [prop, wide, leaky]))
    assert rows["privacy"].worst_job == "leaky" and rows["privacy"].headline() == "auc 0.550 (leaky)"
    # no check scored (only an ungated finding): the worst headline stands in
    rows = _rows(_run_folder(tmp_path / "alone", {"privacy": "high"}, [prop]))
    assert rows["privacy"].worst_job == "prop"
