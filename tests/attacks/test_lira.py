"""LiRA (aisec.attacks.privacy.lira): strength on an overfit target, a null target, modes and caching."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from aisec.attacks.base import AttackContext
from aisec.attacks.privacy import lira as _lira  # noqa: F401  (registers the attack)
from aisec.attacks.privacy.lira import LiRA, LiRAConfig, lira_scores
from aisec.attacks.privacy.loss_threshold import LossThreshold
from aisec.attacks.privacy.recipe import TrainingRecipe, train_mlp
from aisec.attacks.privacy.shadow_config import shadow_recipe
from aisec.data import Dataset
from aisec.errors import AccessDeniedError, ConfigError
from aisec.registry import attacks
from aisec.targets import SklearnTarget, TorchTarget

#: The target's recipe, known to the grey-box attacker; 150 members overfit it.
RECIPE = {"hidden": [64], "epochs": 60, "lr": 3e-3}
N = 150


@pytest.fixture(autouse=True)
def _cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AISEC_CACHE", str(tmp_path / "cache"))


def _subset(digits: Dataset, seed: int) -> tuple[Dataset, Dataset]:
    """Random 150 training points as members, 150 test points; and a null set of other training points."""
    assert isinstance(digits.x_train, torch.Tensor) and isinstance(digits.x_test, torch.Tensor)
    rng = np.random.default_rng(seed)
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
    return data, null


@pytest.fixture(scope="module")
def overfit(digits: Dataset) -> tuple[TorchTarget, Dataset, Dataset]:
    data, null = _subset(digits, 0)
    recipe = TrainingRecipe(hidden=(64,), epochs=60, lr=3e-3)
    net = train_mlp(data.x_train, data.y_train, 10, recipe, seed=0)
    return TorchTarget(net, input_shape=(1, 8, 8), clip=(0.0, 1.0), name="overfit-mlp"), data, null


def test_lira_is_registered_as_a_grey_box_privacy_attack() -> None:
    cls = attacks()["lira"]
    assert cls is LiRA and cls.knowledge.value == "grey-box"
    assert {c.value for c in cls.needs} == {"probabilities", "data-sample"}


@pytest.mark.parametrize(
    ("mode", "variance"), [("online", "per-example"), ("online", "fixed"), ("offline", "per-example")]
)
def test_lira_finds_members_of_an_overfit_target_and_not_of_a_null_one(
    overfit: tuple[TorchTarget, Dataset, Dataset], mode: str, variance: str
) -> None:
    target, data, null = overfit
    attack = LiRA(mode=mode, variance=variance, n_samples=None, **RECIPE)
    found = attack.run(target.view("grey-box", "probabilities"), data, AttackContext(seed=0))
    m = found.metrics
    # measured 0.69-0.87 over 3 data draws x 2 seeds for every mode (75 members, 75 non-members)
    assert m["auc"] > 0.62, found.summary
    assert m["auc_ci95"][0] <= m["auc"] <= m["auc_ci95"][1]
    assert m["auc_ci95"][0] > 0.5
    assert m["n_members"] == m["n_non_members"] == 75
    assert m["n_shadows"] == 8 and "s each to train" in found.summary
    # the same attack on "members" the target never saw: nothing to find (measured 0.45-0.56 online)
    blank = attack.run(target.view("grey-box", "probabilities"), null, AttackContext(seed=0)).metrics
    assert blank["auc"] < m["auc"] - 0.1
    assert 0.3 < blank["auc"] < 0.7
    assert found.queries == 150


def test_lira_scores_follow_the_likelihood_ratio() -> None:
    rng = np.random.default_rng(0)
    k, n = 400, 400
    in_mask = np.zeros((k, n), dtype=bool)
    in_mask[: k // 2] = True
    phi = np.where(in_mask, rng.normal(3.0, 1.0, (k, n)), rng.normal(0.0, 1.0, (k, n)))
    members = rng.normal(3.0, 1.0, n // 2)
    others = rng.normal(0.0, 1.0, n // 2)
    target = np.concatenate([members, others])
    for online in (True, False):
        for fixed in (True, False):
            s = lira_scores(target, phi, in_mask, online=online, fixed=fixed)
            assert np.isfinite(s).all()
            assert s[: n // 2].mean() > s[n // 2 :].mean()
    # online, fixed variance: the log ratio of two unit Gaussians at 0 and 3 is 3 phi - 4.5
    s = lira_scores(target, phi, in_mask, online=True, fixed=True)
    np.testing.assert_allclose(s, 3 * target - 4.5, atol=0.75)


def test_a_point_with_too_few_shadows_falls_back_to_the_pooled_variance() -> None:
    in_mask = np.array([[True, True], [False, True], [False, False]])
    phi = np.array([[1.0, 2.0], [0.0, 2.5], [0.2, 9.0]])
    s = lira_scores(np.array([1.0, 2.0]), phi, in_mask, online=True, fixed=False)
    assert np.isfinite(s).all()  # point 0 has one IN shadow, point 1 one OUT shadow


def test_shadows_are_reused_from_the_cache(overfit: tuple[TorchTarget, Dataset, Dataset], tmp_path: Path) -> None:
    target, data, _ = overfit
    attack = LiRA(n_samples=40, shadows=4, hidden=[16], epochs=5)
    a = attack.run(target.view("grey-box", "probabilities"), data, AttackContext(seed=3, run_dir=tmp_path, job_id="a"))
    b = attack.run(target.view("grey-box", "probabilities"), data, AttackContext(seed=3, run_dir=tmp_path, job_id="b"))
    ea, eb = (np.load(tmp_path / f.evidence["arrays"]) for f in (a, b))
    assert not ea["shadows_from_cache"] and eb["shadows_from_cache"]
    assert float(ea["seconds_per_shadow"]) > 0
    assert float(eb["seconds_per_shadow"]) == pytest.approx(float(ea["seconds_per_shadow"]))  # the recorded cost
    assert "from the cache" in b.summary and "from the cache" not in a.summary
    assert a.metrics["shadow_key"] == b.metrics["shadow_key"]
    keys = ("auc", "tpr_at_0.1pct_fpr", "roc_fpr", "roc_tpr", "auc_ci95")
    assert {k: a.metrics[k] for k in keys} == {k: b.metrics[k] for k in keys}
    off = LiRA(n_samples=40, shadows=4, hidden=[16], epochs=5, cache=False)
    c = off.run(target.view("grey-box", "probabilities"), data, AttackContext(seed=3))
    assert "from the cache" not in c.summary and c.metrics["auc"] == a.metrics["auc"]


def test_lira_runs_on_a_sklearn_target_and_needs_probabilities(
    cancer_sklearn_target: SklearnTarget, cancer: Dataset
) -> None:
    attack = LiRA(n_samples=30, shadows=4, hidden=[8], epochs=3, n_bootstrap=20)
    f = attack.run(cancer_sklearn_target.view("grey-box", "probabilities"), cancer)
    assert 0.0 <= f.metrics["auc"] <= 1.0 and f.queries == 60
    with pytest.raises(AccessDeniedError):
        attack.run(cancer_sklearn_target.view("grey-box", "labels"), cancer)


def test_lira_config_is_checked() -> None:
    assert LiRA(hidden=[32, 32]).config.hidden == (32, 32)
    assert LiRAConfig().recipe() == TrainingRecipe()
    for bad in ({"mode": "both"}, {"variance": "global"}, {"shadows": 1}, {"hidden": "64"}, {"epochs": 0}):
        with pytest.raises(ConfigError):
            LiRA(**bad)


def test_lira_is_not_weaker_than_the_loss_threshold_on_average(overfit: tuple[TorchTarget, Dataset, Dataset]) -> None:
    target, data, _ = overfit
    lira = [
        LiRA(mode="offline", n_samples=None, **RECIPE).run(
            target.view("grey-box", "probabilities"), data, AttackContext(seed=s)
        )
        for s in (0, 1)
    ]
    loss = LossThreshold(n_samples=None).run(target.view("black-box", "probabilities"), data, AttackContext(seed=0))
    # measured: LiRA offline 0.70-0.87, loss threshold 0.69-0.76 on the same targets
    assert np.mean([f.metrics["auc"] for f in lira]) > loss.metrics["auc"] - 0.05


def test_a_white_box_view_gives_the_shadows_the_targets_widths(overfit: tuple[TorchTarget, Dataset, Dataset]) -> None:
    target, data, _ = overfit  # an MLP 64-64-10
    pool = torch.zeros(4, 1, 8, 8)
    white, grey = target.view("white-box", "probabilities"), target.view("grey-box", "probabilities")
    recipe, notes = shadow_recipe(LiRAConfig(), white, pool)
    assert recipe.hidden == (64,) and notes == []
    recipe, notes = shadow_recipe(LiRAConfig(hidden=(256, 256)), white, pool)
    assert recipe.hidden == (64,) and notes == [
        "hidden [256, 256] ignored: the shadows copy the target's layer widths [64]"
    ]
    # grey-box: the widths are the attacker's assumption, and the finding says when it is only the default
    recipe, notes = shadow_recipe(LiRAConfig(hidden=(256, 256)), grey, pool)
    assert recipe.hidden == (256, 256) and notes == []
    recipe, (note,) = shadow_recipe(LiRAConfig(), grey, pool)
    assert recipe.hidden == (64,) and note.startswith("the shadows assume the default recipe (hidden [64], 20 epochs")
    found = LiRA(shadows=2, n_samples=20, epochs=2).run(grey, data, AttackContext(seed=0))
    assert any(f.startswith("the shadows assume the default recipe (hidden [64], 2 epochs") for f in found.flags)
    assert found.metrics["shadow_hidden"] == [64]


def test_shadows_of_the_targets_own_training_process_find_what_mlp_shadows_miss(digits: Dataset) -> None:
    # a random forest is no MLP: shadows of the default MLP recipe measure another model's leakage
    from sklearn.ensemble import RandomForestClassifier

    from aisec.attacks.privacy.rmia import RMIA
    from aisec.attacks.privacy.shokri import ShadowModelAttack
    from aisec.errors import UnsupportedTargetError
    from aisec.targets.recipe import recipe_for

    assert isinstance(digits.x_train, torch.Tensor)
    forest = RandomForestClassifier(n_estimators=50, random_state=0).fit(digits.x_train.flatten(1).numpy(),
                                                                         digits.y_train.numpy())  # fmt: skip
    target = SklearnTarget(forest, input_shape=(1, 8, 8), modality=digits.modality, name="forest")
    view = target.view("grey-box", "probabilities")
    ctx = AttackContext(seed=0, recipe=recipe_for(target))
    steps: list[tuple[int, int]] = []
    watched = AttackContext(seed=0, recipe=ctx.recipe, progress=lambda done, total: steps.append((done, total)))
    own = LiRA(shadows=8).run(view, digits, watched)  # trainer "auto": the assessment has the target's recipe
    assert [(i, 8) for i in range(1, 9)] == [s for s in steps if s[1] == 8]  # each shadow's fit is reported
    mlp = LiRA(shadows=8, trainer="mlp").run(view, digits, ctx)
    # measured: AUC 0.781 (0.736-0.819) with the forest's own shadows, 0.468 with MLP shadows
    assert own.metrics["shadow_trainer"] == "sklearn" and "shadow_hidden" not in own.metrics
    assert mlp.metrics["shadow_trainer"] == "mlp" and mlp.metrics["shadow_hidden"] == [64]
    assert own.metrics["auc_ci95"][0] > 0.65 and own.metrics["auc"] > mlp.metrics["auc"] + 0.15
    assert not any("default recipe" in f for f in own.flags) and any("default recipe" in f for f in mlp.flags)
    for attack in (RMIA(shadows=4), ShadowModelAttack(shadows=4)):  # the same shadows serve the other scorings
        assert attack.run(view, digits, ctx).metrics["shadow_trainer"] == "sklearn"
    with pytest.raises(UnsupportedTargetError, match=r"target\.trainer"):
        LiRA(trainer="target").run(view, digits, AttackContext(seed=0))
    with pytest.raises(ConfigError, match=r"lira\.trainer"):
        LiRA(trainer="forest")
