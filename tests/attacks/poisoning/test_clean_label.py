"""Clean-label backdoor (Turner et al. 2019): labels stay true, the perturbation makes the trigger stick."""

from __future__ import annotations

import pytest
import torch

from aisec.attacks.base import AttackContext
from aisec.attacks.poisoning.clean_label import CleanLabelBackdoor, clean_label_backdoor
from aisec.attacks.poisoning.common import PatchTrigger
from aisec.data import Dataset
from aisec.errors import AccessDeniedError, ConfigError
from aisec.targets import TorchTarget
from aisec.targets.recipe import TorchRecipe


def test_only_target_class_images_change_within_eps_and_labels_stay(digits_cnn_target: TorchTarget) -> None:
    x = torch.rand(60, 1, 8, 8)
    y = torch.arange(60) % 3
    model = digits_cnn_target.view("white-box", "probabilities").model
    trigger = PatchTrigger(size=2, value=1.0)
    pset = clean_label_backdoor(x, y, fraction=0.1, trigger=trigger, target_label=2, model=model, eps=0.1, steps=5)
    assert pset.n_poison == 6 and torch.equal(pset.y, y) and torch.equal(pset.clean_y, y)
    assert (y[pset.poisoned] == 2).all()
    assert torch.equal(pset.x[~pset.poisoned], x[~pset.poisoned])
    changed = pset.x[pset.poisoned]
    assert (changed[..., -2:, -2:] == 1.0).all()
    body = (changed - x[pset.poisoned])[..., :-2, :]  # away from the patch
    assert body.abs().max() <= 0.1 + 1e-6 and body.abs().max() > 0.05
    plain = clean_label_backdoor(x, y, fraction=0.1, trigger=trigger, target_label=2)
    assert torch.equal(plain.x[plain.poisoned][..., :-2, :], x[plain.poisoned][..., :-2, :])


@pytest.mark.parametrize("bad", [{"eps": 0}, {"surrogate": "oracle"}, {"steps": 1.5}])
def test_config_rejects_bad_values(bad: dict) -> None:
    with pytest.raises(ConfigError):
        CleanLabelBackdoor(**bad)


def test_the_adversarial_perturbation_is_what_makes_the_clean_label_backdoor_work(
    digits: Dataset, digits_cnn_target: TorchTarget, digits_cnn_recipe: TorchRecipe
) -> None:
    # measured, digits CNN, 67 class-0 images (5%), eps 0.3 (seeds 0-4): success 0.50, 0.61, 0.29, 0.45, 0.29;
    # the same images with the trigger only: 0.007-0.025; clean retrain 0.00-0.007
    view = digits_cnn_target.view("grey-box", "labels")
    m = CleanLabelBackdoor().run(view, digits, AttackContext(seed=0, recipe=digits_cnn_recipe)).metrics
    assert m["n_poison"] == round(0.05 * len(digits.y_train))
    assert m["trigger_only_attack_success_rate"] <= 0.1 and m["baseline_attack_success_rate"] <= 0.05
    assert m["attack_success_rate"] >= 0.25
    assert m["attack_success_rate"] >= m["trigger_only_attack_success_rate"] + 0.15
    assert m["clean_accuracy"] >= m["baseline_clean_accuracy"] - 0.04


def test_the_target_as_surrogate_needs_white_box(
    digits: Dataset, digits_cnn_target: TorchTarget, digits_cnn_recipe: TorchRecipe
) -> None:
    view = digits_cnn_target.view("grey-box", "probabilities")
    with pytest.raises(AccessDeniedError):
        CleanLabelBackdoor(surrogate="target").run(view, digits, AttackContext(recipe=digits_cnn_recipe))
