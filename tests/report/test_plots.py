"""Plots drawn from the metric conventions; nothing drawn where the metrics are absent or malformed."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from aisec.assess.runner import RunResult, read_findings
from aisec.core.findings import Finding
from aisec.core.goals import Goal, Knowledge, OutputKind
from aisec.report.plots import (
    extraction_fidelity,
    goal_plots,
    inversion_grid,
    membership_roc,
    poisoning_tradeoff,
    robust_accuracy_vs_eps,
)


def _texts(svg: str) -> str:
    """The text of an SVG (fonts are kept as text, so labels and legends are readable)."""
    return " ".join(re.sub(r"<[^>]+>", " ", svg).split())


def test_real_run_draws_eps_and_roc_only(real_run: RunResult) -> None:
    findings = list(real_run.findings)
    eps = robust_accuracy_vs_eps(findings, "k1")
    assert eps is not None and eps.svg.startswith("<svg")
    text = _texts(eps.svg)
    assert "fgsm" in text and "pgd" in text and "perturbation budget eps" in text and "clean accuracy" in text
    roc = membership_roc(findings, "k2")
    assert roc is not None
    auc = next(f.metrics["auc"] for f in findings if f.attack == "loss-threshold")
    assert f"AUC {auc:.3f}" in _texts(roc.svg) and "chance" in _texts(roc.svg)
    assert extraction_fidelity(findings, "k3") is None
    assert poisoning_tradeoff(findings, "k4") is None
    assert inversion_grid(findings, "k5", real_run.run_dir) is None


def test_full_run_draws_every_family(full_run: Path) -> None:
    findings = read_findings(full_run)
    by_goal = {g: [p.key for p in goal_plots(g.value, [f for f in findings if f.goal is g], full_run)] for g in Goal}
    assert by_goal == {
        Goal.INTEGRITY: ["plot-integrity-eps", "plot-integrity-poisoning"],
        Goal.AVAILABILITY: [],
        Goal.CONFIDENTIALITY: ["plot-confidentiality-extraction"],
        Goal.PRIVACY: ["plot-privacy-roc", "plot-privacy-inversion"],
    }
    grid = inversion_grid(findings, "inv", full_run)
    assert grid is not None
    assert grid.svg.count("<image") == 20  # ten class means above ten reconstructions
    poison = poisoning_tradeoff(findings, "p")
    assert poison is not None
    assert all(label in _texts(poison.svg) for label in ("0.01", "0.05", "0.1"))  # one point per poison fraction


def _f(metrics: dict, **kw: object) -> Finding:
    return Finding(
        job_id="x",
        attack="x",
        goal=Goal.PRIVACY,
        knowledge=Knowledge.BLACK_BOX,
        output=OutputKind.LABELS,
        metrics=metrics,
        **kw,  # type: ignore[arg-type]
    )


@pytest.mark.parametrize(
    "metrics",
    [
        {"roc_fpr": [0.0, 0.5, 1.0], "roc_tpr": [0.0, 1.0]},  # lengths differ
        {"roc_fpr": "0.1", "roc_tpr": "0.2"},
        {"roc_fpr": [], "roc_tpr": []},
        {"curve_queries": [1, 2], "curve_fidelity": ["a", "b"]},
        {"eps": "0.1", "robust_accuracy": 0.5},
        {"poison_fraction": 0.1, "clean_accuracy": None, "attack_success_rate": 0.5},
    ],
)
def test_malformed_metrics_draw_nothing(metrics: dict, tmp_path: Path) -> None:
    assert goal_plots("privacy", [_f(metrics)], tmp_path) == []


def test_a_failed_finding_draws_nothing(tmp_path: Path) -> None:
    failed = _f({"roc_fpr": [0.01, 1.0], "roc_tpr": [0.5, 1.0]}, status="error", error="boom")
    assert goal_plots("privacy", [failed], tmp_path) == []


def test_inversion_evidence_outside_the_run_folder_is_not_read(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    arrays = {"reconstructions": np.zeros((2, 1, 8, 8)), "class_means": np.ones((2, 1, 8, 8))}
    np.savez(tmp_path / "outside.npz", **arrays)
    assert inversion_grid([_f({}, evidence={"arrays": "../outside.npz"})], "k", run_dir) is None
    np.savez(run_dir / "inside.npz", **arrays)
    assert inversion_grid([_f({}, evidence={"arrays": "inside.npz"})], "k", run_dir) is not None
