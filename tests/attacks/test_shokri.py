"""The shadow-model membership attack (aisec.attacks.privacy.shokri): strength, null target, variants, cache.

The leaking target is the one of ``test_strength``: breast cancer with 20% of the labels flipped and
a wide MLP trained long, which memorizes its flipped training labels. The grey-box attacker knows
its recipe (Adam 1e-2, full batch, 400 epochs, one hidden layer of 256).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator

import numpy as np
import pytest
import torch

from aisec.attacks.base import AttackContext
from aisec.attacks.privacy import lira as _lira  # noqa: F401  (registers the attack)
from aisec.attacks.privacy import shokri as _shokri  # noqa: F401  (registers the attack)
from aisec.attacks.privacy.lira import LiRA
from aisec.attacks.privacy.shokri import ShadowModelAttack, attack_features
from aisec.data import Dataset, load_breast_cancer
from aisec.errors import AccessDeniedError, ConfigError
from aisec.registry import attacks
from aisec.targets import SklearnTarget, TorchTarget
from tests.attacks.test_strength import _noisy
from tests.helpers import train_cancer_mlp

RECIPE = {"hidden": [256], "epochs": 400, "lr": 1e-2, "batch_size": 285}


@pytest.fixture(autouse=True, scope="module")
def _cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """One shadow cache for the module: tests with the same recipe, data and seed share their shadows."""
    before = os.environ.get("AISEC_CACHE")
    os.environ["AISEC_CACHE"] = str(tmp_path_factory.mktemp("shokri-cache"))
    yield
    if before is None:
        del os.environ["AISEC_CACHE"]
    else:
        os.environ["AISEC_CACHE"] = before


@pytest.fixture(scope="module")
def leaky() -> tuple[TorchTarget, Dataset, Dataset]:
    """The overfit target, its data, and a null set: test points the target never saw posing as members."""
    data = _noisy(load_breast_cancer(test_size=0.5, seed=0), 0.2, seed=0)
    net = train_cancer_mlp(data, hidden=256, epochs=400)
    target = TorchTarget(net, input_shape=(30,), modality="tabular", device="cpu", name="overfit-cancer")
    assert isinstance(data.x_test, torch.Tensor)
    h = len(data.y_test) // 2
    null = dataclasses.replace(
        data, x_train=data.x_test[:h], y_train=data.y_test[:h], x_test=data.x_test[h:], y_test=data.y_test[h:]
    )
    return target, data, null


def test_shokri_is_registered_as_a_grey_box_privacy_attack() -> None:
    cls = attacks()["shokri"]
    assert cls is ShadowModelAttack and cls.knowledge.value == "grey-box" and cls.goal.value == "privacy"
    assert {c.value for c in cls.needs} == {"probabilities", "data-sample"}


def test_shokri_finds_the_members_of_an_overfit_target_and_not_of_a_null_one(
    leaky: tuple[TorchTarget, Dataset, Dataset],
) -> None:
    target, data, null = leaky
    attack = ShadowModelAttack(n_samples=None, **RECIPE)
    found = attack.run(target.view("grey-box", "probabilities"), data, AttackContext(seed=0))
    m = found.metrics
    # measured over 4 data draws x 2 seeds: AUC 0.79-0.88, lower CI end 0.73-0.85, balanced accuracy 0.72-0.80
    assert m["auc"] > 0.7, found.summary
    assert m["auc_ci95"][0] > 0.6
    assert m["auc_ci95"][0] <= m["auc"] <= m["auc_ci95"][1]
    assert m["balanced_accuracy"] > 0.62
    assert m["n_members"] == m["n_non_members"] == 143 and found.queries == 286
    assert m["n_shadows"] == 8 and m["attack_models_fitted"] == 2
    assert len(m["roc_fpr"]) == len(m["roc_tpr"]) and m["min_resolvable_fpr"] == pytest.approx(1 / 143)
    # the same attack where no "member" was ever trained on: measured AUC 0.43-0.54
    blank = attack.run(target.view("grey-box", "probabilities"), null, AttackContext(seed=0)).metrics
    assert 0.3 < blank["auc"] < 0.65
    assert blank["auc"] < m["auc"] - 0.15


@pytest.mark.parametrize(("attack_model", "per_class"), [("logistic", False), ("mlp", True)])
def test_other_attack_models_also_find_members(
    leaky: tuple[TorchTarget, Dataset, Dataset], attack_model: str, per_class: bool
) -> None:
    target, data, _ = leaky
    attack = ShadowModelAttack(n_samples=None, attack_model=attack_model, per_class=per_class, **RECIPE)
    m = attack.run(target.view("grey-box", "probabilities"), data, AttackContext(seed=0)).metrics
    assert m["attack_models_fitted"] == (2 if per_class else 1)
    # measured over 4 data draws x 2 seeds: 0.78-0.87 (logistic, one model), 0.71-0.78 (mlp per class)
    assert m["auc"] > 0.65


def test_features_are_the_sorted_confidences_and_the_true_class_logit() -> None:
    probs = torch.tensor([[0.2, 0.7, 0.1], [0.6, 0.3, 0.1]])
    f = attack_features(probs, torch.tensor([1, 2]))
    np.testing.assert_allclose(f[:, :3], np.log([[0.7, 0.2, 0.1], [0.6, 0.3, 0.1]]), rtol=1e-6)
    np.testing.assert_allclose(f[:, 3], [np.log(0.7 / 0.3), np.log(0.1 / 0.9)], rtol=1e-5)


def test_shokri_shares_the_cached_shadows_with_lira(cancer_mlp_target: TorchTarget, cancer: Dataset) -> None:
    small = {"shadows": 4, "hidden": [16], "epochs": 5, "n_samples": 40, "n_bootstrap": 20}
    view = cancer_mlp_target.view("grey-box", "probabilities")
    lira = LiRA(**small).run(view, cancer, AttackContext(seed=2))
    shokri = ShadowModelAttack(**small).run(view, cancer, AttackContext(seed=2))
    assert shokri.metrics["shadow_key"] == lira.metrics["shadow_key"]
    assert "from the cache" in shokri.summary and "from the cache" not in lira.summary


def test_shokri_runs_on_a_sklearn_target_and_needs_probabilities(
    cancer_sklearn_target: SklearnTarget, cancer: Dataset
) -> None:
    attack = ShadowModelAttack(n_samples=30, shadows=4, hidden=[8], epochs=3, n_bootstrap=20)
    f = attack.run(cancer_sklearn_target.view("grey-box", "probabilities"), cancer)
    assert 0.0 <= f.metrics["auc"] <= 1.0 and f.queries == 60
    with pytest.raises(AccessDeniedError):
        attack.run(cancer_sklearn_target.view("grey-box", "labels"), cancer)


def test_shokri_config_is_checked() -> None:
    assert ShadowModelAttack(hidden=[32, 32]).config.hidden == (32, 32)
    bad: list[dict[str, object]] = [
        {"attack_model": "svm"},
        {"shadows": 1},
        {"per_class": "yes"},
        {"hidden": "64"},
        {"epochs": 0},
        {"n_samples": 0},
    ]
    for params in bad:
        with pytest.raises(ConfigError):
            ShadowModelAttack(**params)
