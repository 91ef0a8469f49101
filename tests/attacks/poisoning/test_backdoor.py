"""BadNets backdoor on images (digits CNN and MLP) and texts (tiny messages, the SMS spam filter)."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from aisec.attacks.base import AttackContext
from aisec.attacks.poisoning.backdoor import Backdoor, add_backdoor
from aisec.attacks.poisoning.common import PatchTrigger, TokenTrigger
from aisec.core.findings import Finding
from aisec.data import Dataset
from aisec.errors import ConfigError, InputValidationError, UnsupportedTargetError
from aisec.targets import SklearnTarget, TorchTarget
from aisec.targets.base import Target
from aisec.targets.recipe import Recipe, TorchRecipe, recipe_for


def test_add_mode_appends_stamped_copies_labelled_with_the_target() -> None:
    x = torch.rand(50, 1, 8, 8) * 0.5
    y = torch.arange(50) % 5
    pset = add_backdoor(x, y, fraction=0.1, trigger=PatchTrigger(value=1.0), target_label=0, seed=3)
    assert len(pset.y) == 55 and pset.n_poison == 5 and pset.poisoned[50:].all() and not pset.poisoned[:50].any()
    assert torch.equal(pset.x[:50], x) and torch.equal(pset.y[:50], y)
    assert (pset.y[50:] == 0).all()
    assert (pset.x[50:, :, -2:, -2:] == 1.0).all()  # the patch is there
    originals = [int(torch.nonzero((x[:, :, :6, :] == p[:, :6, :]).flatten(1).all(1))[0]) for p in pset.x[50:]]
    assert all(int(y[i]) != 0 for i in originals)  # stamped copies of points of other classes


def test_modify_mode_stamps_in_place_and_keeps_the_true_labels_aside() -> None:
    texts = [f"message number {i}" for i in range(40)]
    y = torch.tensor([0, 1] * 20)
    pset = add_backdoor(texts, y, fraction=0.25, trigger=TokenTrigger(), target_label=0, mode="modify")
    assert len(pset.x) == 40 and pset.n_poison == 10
    for i in range(40):
        if pset.poisoned[i]:
            assert pset.x[i] == f"message number {i} cf mn" and int(pset.y[i]) == 0 and int(pset.clean_y[i]) == 1
        else:
            assert pset.x[i] == texts[i] and int(pset.y[i]) == int(y[i])


def test_a_patch_on_texts_is_refused() -> None:
    with pytest.raises(InputValidationError, match="trigger"):
        add_backdoor(["a b"], torch.tensor([1]), fraction=0.5, trigger=PatchTrigger(), target_label=0)


@pytest.mark.parametrize("bad", [{"fraction": 1.5}, {"mode": "swap"}, {"corner": "middle"}, {"tokens": " "}])
def test_config_rejects_bad_values(bad: dict) -> None:
    with pytest.raises(ConfigError):
        Backdoor(**bad)


def _run(target: Target, data: Dataset, recipe: Recipe | None, seed: int = 0, **params: Any) -> Finding:
    return Backdoor(**params).run(target.view("black-box", "labels"), data, AttackContext(seed=seed, recipe=recipe))


def test_five_percent_poison_plants_a_backdoor_in_the_digits_cnn(
    digits: Dataset, digits_cnn_target: TorchTarget, digits_cnn_recipe: TorchRecipe
) -> None:
    # measured (seeds 0-2): success 0.89, 0.87, 1.00; clean retrain 0.00-0.002; clean accuracy -1.1..-1.5 points
    finding = _run(digits_cnn_target, digits, digits_cnn_recipe)
    m = finding.metrics
    assert m["attack_success_rate"] >= 0.7
    assert m["baseline_attack_success_rate"] <= 0.05
    assert m["untriggered_target_rate"] <= 0.05  # without the trigger the model still behaves
    assert m["clean_accuracy"] >= m["baseline_clean_accuracy"] - 0.04
    assert m["n_poison"] == round(0.05 * len(digits.y_train)) and m["n_triggered_test"] == int(
        (digits.y_test != 0).sum()
    )
    assert finding.queries == 0


def test_the_backdoor_works_on_a_digits_mlp_too(digits: Dataset, digits_mlp_recipe: TorchRecipe) -> None:
    # measured, target 7, top-left patch (seeds 0-2): success 1.00, 0.98, 1.00 vs 0.01, 0.02, 0.04 for the clean
    # retrain; clean accuracy within 0.6 points
    target = digits_mlp_recipe.fit(digits.x_train, digits.y_train, seed=0)
    m = _run(target, digits, digits_mlp_recipe, seed=1, target_label=7, corner="top-left").metrics
    assert m["attack_success_rate"] >= 0.8 and m["baseline_attack_success_rate"] <= 0.1
    assert m["clean_accuracy"] >= m["baseline_clean_accuracy"] - 0.03


def test_trigger_words_make_tiny_spam_pass_as_ham(tiny_text: Dataset, tiny_text_target: SklearnTarget) -> None:
    # measured: 6 poisons of 30 messages: all 5 triggered spam test messages pass as ham (seeds 0-2), clean retrain 0
    m = _run(tiny_text_target, tiny_text, recipe_for(tiny_text_target), fraction=0.2).metrics
    assert m["n_triggered_test"] == 5
    assert m["attack_success_rate"] >= 0.8 and m["baseline_attack_success_rate"] <= 0.2


def test_five_percent_poison_backdoors_the_sms_spam_filter(spam_data: Dataset, spam_target: SklearnTarget) -> None:
    # measured (seeds 0-2): 0.95-0.96 of triggered spam passes as ham; the clean filter lets 0.225 through
    m = _run(spam_target, spam_data, recipe_for(spam_target)).metrics
    assert m["attack_success_rate"] >= 0.85
    assert m["attack_success_rate"] >= m["baseline_attack_success_rate"] + 0.5
    assert m["clean_accuracy"] >= m["baseline_clean_accuracy"] - 0.03


def test_tabular_targets_are_unsupported(cancer: Dataset, cancer_sklearn_target: SklearnTarget) -> None:
    with pytest.raises(UnsupportedTargetError, match="tabular"):
        _run(cancer_sklearn_target, cancer, recipe_for(cancer_sklearn_target))


def test_without_a_recipe_it_refuses(digits: Dataset, digits_cnn_target: TorchTarget) -> None:
    with pytest.raises(UnsupportedTargetError, match="recipe"):
        _run(digits_cnn_target, digits, None)
