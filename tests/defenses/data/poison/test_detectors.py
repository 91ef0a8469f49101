"""Poison detectors on the digits with a 5% BadNets backdoor (2x2 corner trigger, target 0) and on label flips.

Thresholds were measured over seeds 0-4 before they were written down: spectral signatures
(inputs, automatic cut) had precision 1.0 and recall 1.0 on every seed and the retrained attack
success fell from 0.96-1.0 to 0.0; activation clustering (penultimate layer) had recall 0.81-1.0 at
precision 0.40-0.59 and its scores ranked the target class perfectly (AUC 1.0); the isolation
forest's scores ranked the poison in the target class at AUC 0.988-0.992; confident learning at 10%
random flips had precision 0.95-0.98 and recall 0.71-0.83.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score
from torch import nn

from aisec.attacks.poisoning.common import PoisonedSet
from aisec.data import Dataset
from aisec.defenses.data.poison import (
    Detection,
    evaluate_detection,
    get_detector,
    precision_recall,
    representations,
    retrain_metrics,
)
from aisec.targets.recipe import TorchRecipe
from tests.defenses.data.poison.conftest import TARGET, TRIGGER, backdoored


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_spectral_default_finds_the_backdoor(digits: Dataset, seed: int) -> None:
    ps = backdoored(digits, seed)
    det = get_detector("spectral").detect(ps.x, ps.y, seed=seed)
    precision, recall, _ = precision_recall(det.flagged, ps.poisoned)
    assert precision >= 0.9
    assert recall >= 0.95
    flagged_classes = {int(c) for c in np.unique(ps.y.numpy()[det.flagged])}
    assert flagged_classes == {TARGET}  # clean classes lose nothing


def test_retraining_without_the_flagged_points_removes_the_backdoor(
    digits: Dataset, backdoor_set: PoisonedSet, recipe: TorchRecipe
) -> None:
    before = retrain_metrics(
        recipe, backdoor_set.x, backdoor_set.y, digits.x_test, digits.y_test, trigger=TRIGGER, target_label=TARGET
    )
    det = get_detector("spectral").detect(backdoor_set.x, backdoor_set.y)
    report = evaluate_detection(
        det, backdoor_set, recipe, digits.x_test, digits.y_test, trigger=TRIGGER, target_label=TARGET
    )
    assert before.attack_success is not None and before.attack_success > 0.8
    assert report.retrained is not None and report.retrained.attack_success is not None
    assert report.retrained.attack_success < 0.05
    assert report.retrained.clean_accuracy >= before.clean_accuracy - 0.02
    assert report.retrained.n_train == len(backdoor_set.y) - det.n_flagged
    assert report.n_poison == backdoor_set.n_poison and report.flagged == det.n_flagged


def test_activation_clustering_finds_the_poisoned_cluster(backdoor_set: PoisonedSet, backdoor_model: nn.Module) -> None:
    det = get_detector("activation-clustering").detect(backdoor_set.x, backdoor_set.y, model=backdoor_model)
    precision, recall, _ = precision_recall(det.flagged, backdoor_set.poisoned)
    assert recall >= 0.75
    assert precision >= 0.3  # naturally bimodal clean classes (1, 9) are flagged too: measured 0.40-0.59
    assert det.info["per_class"][str(TARGET)]["flagged"] > 0
    in_target = backdoor_set.y.numpy() == TARGET
    assert roc_auc_score(backdoor_set.poisoned[in_target], det.scores[in_target]) >= 0.95


def test_spectral_on_the_penultimate_layer_reads_the_model(
    backdoor_set: PoisonedSet, backdoor_model: nn.Module
) -> None:
    det = get_detector("spectral", representation="penultimate", threshold="fraction").detect(
        backdoor_set.x, backdoor_set.y, model=backdoor_model
    )
    counts = np.bincount(backdoor_set.y.numpy(), minlength=10)
    assert det.n_flagged == sum(min(n - 1, round(1.5 * 0.05 * n)) for n in counts)  # the paper's rule, per class
    reps = representations(backdoor_model, backdoor_set.x)
    assert reps.shape == (len(backdoor_set.y), 64)


def test_isolation_forest_ranks_the_poison(backdoor_set: PoisonedSet) -> None:
    det = get_detector("isolation-forest").detect(backdoor_set.x, backdoor_set.y)
    in_target = backdoor_set.y.numpy() == TARGET
    assert roc_auc_score(backdoor_set.poisoned[in_target], det.scores[in_target]) >= 0.95
    fixed = get_detector("isolation-forest", threshold="contamination", contamination=0.1).detect(
        backdoor_set.x, backdoor_set.y
    )
    counts = np.bincount(backdoor_set.y.numpy(), minlength=10)
    assert fixed.n_flagged == sum(round(0.1 * n) for n in counts)


@pytest.mark.parametrize("seed", [0, 1])
def test_confident_learning_finds_flipped_labels(digits: Dataset, seed: int) -> None:
    from aisec.attacks.poisoning.label_flip import flip_labels

    assert isinstance(digits.x_train, torch.Tensor)
    ps = flip_labels(digits.x_train, digits.y_train, fraction=0.1, n_classes=10, seed=seed)
    det = get_detector("confident-learning").detect(ps.x, ps.y, seed=seed)
    precision, recall, _ = precision_recall(det.flagged, ps.poisoned)
    assert precision >= 0.9
    assert recall >= 0.65
    flipped = ps.poisoned
    assert det.scores[flipped].mean() > det.scores[~flipped].mean() + 0.3
    joint = np.asarray(det.info["confident_joint"])
    assert joint.shape == (10, 10) and np.trace(joint) > joint.sum() * 0.8


def test_confident_learning_with_the_recipe(digits: Dataset, recipe: TorchRecipe) -> None:
    from aisec.attacks.poisoning.label_flip import flip_labels

    assert isinstance(digits.x_train, torch.Tensor)
    ps = flip_labels(digits.x_train, digits.y_train, fraction=0.1, n_classes=10, seed=0)
    det = get_detector("confident-learning", proxy="recipe", folds=3).detect(ps.x, ps.y, model=recipe)
    precision, recall, _ = precision_recall(det.flagged, ps.poisoned)
    assert precision >= 0.8 and recall >= 0.6


def test_detection_and_evaluation_without_a_recipe(backdoor_set: PoisonedSet) -> None:
    flagged = backdoor_set.poisoned.copy()
    flagged[np.flatnonzero(~backdoor_set.poisoned)[:10]] = True
    det = Detection("hand", flagged, flagged.astype(float), 0.0)
    report = evaluate_detection(det, backdoor_set)
    assert report.retrained is None
    assert report.recall == 1.0
    assert report.precision == pytest.approx(backdoor_set.n_poison / (backdoor_set.n_poison + 10))
