"""The catalog: every attack has ATLAS / OWASP ids and mitigations; the checklist; docs in step."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import aisec
from aisec.core.goals import Goal
from aisec.report.catalog import (
    ATTACK_TECHNIQUES,
    CHECKLIST,
    MITIGATIONS,
    OWASP_ML_TOP10,
    TECHNIQUES,
    catalog_markdown,
    checklist_status,
    entry_for,
    mitigations_for,
    technique_of,
)
from tests.assess.test_scoring import finding

REPO = Path(__file__).resolve().parents[2]
ATLAS_ID = re.compile(r"^AML\.T\d{4}(\.\d{3})?$")

#: Attacks being written now or planned (issue 7), and the model-file scan.
PLANNED = (
    "fgsm", "pgd", "apgd", "cw", "square", "hopskipjump", "transfer", "robust-eval", "patch", "good-word",
    "word-edit", "loss-threshold", "lira", "shokri", "label-only", "inversion", "attribute-inference",
    "knockoff", "jbda", "thief", "equation-solving", "text-words", "backdoor", "label-flip", "model-scan",
)  # fmt: skip


def _assert_covered(name: str, atlas: str, owasp: str) -> None:
    assert ATLAS_ID.match(atlas), f"{name}: ATLAS id {atlas!r}"
    assert technique_of(name, atlas) is not None, f"{name}: ATLAS technique {atlas} is not in the catalog"
    assert owasp in OWASP_ML_TOP10, f"{name}: OWASP id {owasp!r}"
    real = [m for m in mitigations_for(attack=name, atlas=atlas, owasp=owasp) if m.id != "incident-plan"]
    assert real, f"{name}: no mitigation addresses {atlas} / {owasp}"
    entry = entry_for(name, atlas=atlas, owasp=owasp)
    assert entry.atlas_name and entry.owasp_name and entry.nist


@pytest.mark.parametrize("name", list(aisec.attacks()))
def test_every_registered_attack_is_covered(name: str) -> None:
    cls = aisec.attacks()[name]
    _assert_covered(name, cls.atlas, cls.owasp)
    if name in ATTACK_TECHNIQUES:  # the catalog's name list agrees with the class on the technique
        assert cls.atlas.split(".")[:2] == ATTACK_TECHNIQUES[name][0].split(".")[:2]


@pytest.mark.parametrize("name", PLANNED)
def test_every_planned_attack_is_covered(name: str) -> None:
    assert name in ATTACK_TECHNIQUES
    atlas, owasp = ATTACK_TECHNIQUES[name]
    _assert_covered(name, atlas, owasp)


def test_mitigations_are_keyed_by_technique_so_new_attacks_are_covered() -> None:
    ids = {m.id for m in mitigations_for(attack="someone-elses-extraction", atlas="AML.T0024.002", owasp="ML05")}
    assert {"watermarking", "query-monitoring", "rate-limits"} <= ids
    assert "dp-training" not in ids and "adversarial-training" not in ids
    # an unknown technique falls back to the OWASP id
    ids = {m.id for m in mitigations_for(attack="x", atlas="AML.T9999", owasp="ML02")}
    assert "data-sanitization" in ids
    # the goal filter keeps what serves the goal
    assert all(Goal.PRIVACY in m.goals for m in mitigations_for(atlas="AML.T0024.000", goal="privacy"))


def test_catalog_tables_are_consistent() -> None:
    assert len({m.id for m in MITIGATIONS}) == len(MITIGATIONS)
    for m in MITIGATIONS:
        assert m.cost.strip(), m.id
        assert set(m.owasp) <= set(OWASP_ML_TOP10), m.id
        for a in m.atlas:
            assert technique_of(atlas=a) is not None, f"{m.id}: {a}"
    for owasp in OWASP_ML_TOP10:
        assert [m for m in MITIGATIONS if owasp in m.owasp and m.id != "incident-plan"], owasp
    for t in TECHNIQUES.values():
        assert ATLAS_ID.match(t.atlas) and t.owasp in OWASP_ML_TOP10 and t.nist


def test_checklist_covers_the_four_phases_and_the_issue_items() -> None:
    assert {i.phase for i in CHECKLIST} == {"data", "training", "deployment", "monitoring"}
    ids = {i.id for i in CHECKLIST}
    for item in ("provenance", "data-access", "pii", "poisoning-detection", "dependencies", "adversarial-robustness",
                 "differential-privacy", "watermarking", "api-auth-rate-limits", "least-privilege",
                 "drift-query-monitoring", "incident-plan", "model-inventory"):  # fmt: skip
        assert item in ids
    for i in CHECKLIST:
        assert i.verified_by_aisec or "human" in i.how


def test_checklist_status_from_findings() -> None:
    weak = finding("pgd", "integrity", {"clean_accuracy": 0.9, "robust_accuracy": 0.1}, atlas="AML.T0043.000")
    private = finding("lira", "privacy", {"auc": 0.51, "tpr_at_0.1pct_fpr": 0.002}, atlas="AML.T0024.000")
    status = {i.id: s for i, s in checklist_status([weak, private])}
    assert status["adversarial-robustness"] == "verified: fail"
    assert status["differential-privacy"] == "verified: pass"
    assert status["extraction-resistance"] == "not run"
    assert status["incident-plan"] == "for a human to confirm"


def test_docs_catalog_matches_the_code() -> None:
    assert catalog_markdown() in (REPO / "docs" / "catalog.md").read_text(encoding="utf-8")
