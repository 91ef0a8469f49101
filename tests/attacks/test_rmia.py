"""RMIA (aisec.attacks.privacy.rmia): strength on an overfit target, a null target, the score and the shadows."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from aisec.attacks.base import AttackContext
from aisec.attacks.privacy import lira as _lira  # noqa: F401  (registers the attack)
from aisec.attacks.privacy import rmia as _rmia  # noqa: F401  (registers the attack)
from aisec.attacks.privacy.lira import LiRA
from aisec.attacks.privacy.recipe import TrainingRecipe, train_mlp
from aisec.attacks.privacy.rmia import RMIA, RMIAConfig, marginal_probability, rmia_scores
from aisec.data import Dataset
from aisec.errors import AccessDeniedError, ConfigError
from aisec.registry import attacks
from aisec.targets import SklearnTarget, TorchTarget

#: The target's recipe, known to the grey-box attacker; 150 members overfit it (as in test_lira).
RECIPE = {"hidden": [64], "epochs": 60, "lr": 3e-3}
N = 150


@pytest.fixture(autouse=True)
def _cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AISEC_CACHE", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def overfit(digits: Dataset) -> tuple[TorchTarget, Dataset, Dataset]:
    assert isinstance(digits.x_train, torch.Tensor) and isinstance(digits.x_test, torch.Tensor)
    rng = np.random.default_rng(0)
    tr = torch.as_tensor(rng.permutation(len(digits.y_train)))
    te = torch.as_tensor(rng.permutation(len(digits.y_test))[:N])
    data = dataclasses.replace(
        digits,
        x_train=digits.x_train[tr[:N]],
        y_train=digits.y_train[tr[:N]],
        x_test=digits.x_test[te],
        y_test=digits.y_test[te],
    )
    null = dataclasses.replace(data, x_train=digits.x_train[tr[N : 2 * N]], y_train=digits.y_train[tr[N : 2 * N]])
    net = train_mlp(data.x_train, data.y_train, 10, TrainingRecipe(hidden=(64,), epochs=60, lr=3e-3), seed=0)
    return TorchTarget(net, input_shape=(1, 8, 8), clip=(0.0, 1.0), name="overfit-mlp"), data, null


def test_rmia_is_registered_as_a_grey_box_privacy_attack() -> None:
    cls = attacks()["rmia"]
    assert cls is RMIA and cls.knowledge.value == "grey-box" and cls.goal.value == "privacy"
    assert {c.value for c in cls.needs} == {"probabilities", "data-sample"}
    assert "2312.03262" in cls.paper


@pytest.mark.parametrize("mode", ["online", "offline"])
def test_rmia_finds_members_of_an_overfit_target_and_not_of_a_null_one(
    overfit: tuple[TorchTarget, Dataset, Dataset], mode: str
) -> None:
    target, data, null = overfit
    attack = RMIA(mode=mode, n_samples=None, **RECIPE)
    found = attack.run(target.view("grey-box", "probabilities"), data, AttackContext(seed=0))
    m = found.metrics
    # measured AUC 0.72-0.77 (CI low 0.63-0.69) over 3 data draws x 2 seeds, both modes; null 0.48-0.55
    assert m["auc"] > 0.66, found.summary
    assert m["auc_ci95"][0] > 0.55
    assert m["n_members"] == m["n_non_members"] == 75 and m["n_population"] == 75
    assert "reference models" in found.summary
    blank = attack.run(target.view("grey-box", "probabilities"), null, AttackContext(seed=0)).metrics
    assert blank["auc"] < m["auc"] - 0.1
    assert 0.3 < blank["auc"] < 0.7
    assert found.queries == 225  # candidates and population points


def test_the_score_is_the_fraction_of_population_points_dominated() -> None:
    k, n, m = 4, 3, 5
    p_ref = np.full((k, n), 0.5)
    p_ref_z = np.full((k, m), 0.5)
    in_mask, in_mask_z = np.zeros((k, n), bool), np.zeros((k, m), bool)
    p_z = np.array([0.1, 0.2, 0.3, 0.4, 0.5])  # ratios 0.2 .. 1.0
    p_x = np.array([0.05, 0.35, 0.9])  # ratios 0.1, 0.7, 1.8
    s = rmia_scores(p_x, p_ref, in_mask, p_z, p_ref_z, in_mask_z, online=True)
    np.testing.assert_allclose(np.floor(s * m) / m, [0.0, 0.6, 1.0])
    assert (np.diff(s) > 0).all() and (s - np.floor(s * m) / m < 1 / m).all()  # tie-break below one step
    # gamma = 2: x must beat z by a factor of two
    s2 = rmia_scores(p_x, p_ref, in_mask, p_z, p_ref_z, in_mask_z, online=True, gamma=2.0)
    np.testing.assert_allclose(np.floor(s2 * m) / m, [0.0, 0.2, 0.8])
    # the same probability is worth more for a point the reference models find hard (low Pr(x))
    hard = rmia_scores(
        np.array([0.6, 0.6]), np.array([[0.2, 0.9]] * k), in_mask[:, :2], p_z, p_ref_z, in_mask_z, online=True
    )
    assert hard[0] > hard[1]


def test_offline_marginal_uses_out_models_and_the_linear_correction() -> None:
    p = np.array([[0.9, 0.4], [0.5, 0.6], [0.3, 0.8]])
    in_mask = np.array([[True, False], [False, False], [False, True]])
    np.testing.assert_allclose(marginal_probability(p, in_mask, online=True, a=0.3), p.mean(0))
    p_out = np.array([0.4, 0.5])
    np.testing.assert_allclose(marginal_probability(p, in_mask, online=False, a=0.3), 0.5 * (1.3 * p_out + 0.7))
    np.testing.assert_allclose(marginal_probability(p, in_mask, online=False, a=1.0), p_out)
    no_out = marginal_probability(p[:, :1], np.ones((3, 1), bool), online=False, a=1.0)
    np.testing.assert_allclose(no_out, p[:, 0].mean(keepdims=True))


def test_rmia_reuses_lira_shadows(overfit: tuple[TorchTarget, Dataset, Dataset], tmp_path: Path) -> None:
    target, data, _ = overfit
    small = {"n_samples": 40, "shadows": 4, "hidden": [16], "epochs": 5, "n_bootstrap": 20}
    view = target.view("grey-box", "probabilities")
    a = LiRA(**small).run(view, data, AttackContext(seed=3))
    b = RMIA(**small).run(view, data, AttackContext(seed=3, run_dir=tmp_path, job_id="r"))
    assert b.metrics["shadow_key"] == a.metrics["shadow_key"] and "from the cache" in b.summary
    ev = np.load(tmp_path / b.evidence["arrays"])
    assert bool(ev["shadows_from_cache"]) and len(ev["idx_population_test"]) == b.metrics["n_population"]
    assert not set(ev["idx_population_test"]) & set(ev["idx_non_members_test"])  # z is disjoint from evaluation
    few = RMIA(**small, n_population=10).run(view, data, AttackContext(seed=3))
    assert few.metrics["n_population"] == 10


def test_rmia_runs_on_a_sklearn_target_and_needs_probabilities(
    cancer_sklearn_target: SklearnTarget, cancer: Dataset
) -> None:
    attack = RMIA(n_samples=30, shadows=4, hidden=[8], epochs=3, n_bootstrap=20, n_population=20)
    f = attack.run(cancer_sklearn_target.view("grey-box", "probabilities"), cancer)
    assert 0.0 <= f.metrics["auc"] <= 1.0 and f.queries == 80
    with pytest.raises(AccessDeniedError):
        attack.run(cancer_sklearn_target.view("grey-box", "labels"), cancer)


def test_rmia_config_is_checked() -> None:
    assert RMIA(hidden=[32, 32]).config.hidden == (32, 32)
    assert RMIAConfig().recipe() == TrainingRecipe()
    for bad in ({"mode": "both"}, {"a": 1.5}, {"a": -0.1}, {"gamma": 0}, {"shadows": 1}, {"n_population": 0}):
        with pytest.raises(ConfigError):
            RMIA(**bad)
