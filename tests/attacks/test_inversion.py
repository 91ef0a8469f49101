"""MI-Face model inversion (aisec.attacks.privacy.inversion)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from aisec.attacks.base import AttackContext
from aisec.attacks.privacy import inversion as _inversion  # noqa: F401  (registers the attack)
from aisec.attacks.privacy.inversion import MIFace, inversion_metrics
from aisec.attacks.privacy.inversion_blackbox import MIFaceBlackBox
from aisec.data import Dataset
from aisec.errors import AccessDeniedError, ConfigError
from aisec.registry import attacks
from aisec.targets import TorchTarget


def test_mi_face_recovers_the_digit_classes_in_one_batch(digits_cnn_target: TorchTarget, digits: Dataset) -> None:
    view = digits_cnn_target.view("white-box", "probabilities")
    f = MIFace().run(view, digits, AttackContext(seed=0))
    m = f.metrics
    # measured: 10/10 classes, own 0.57 vs best other 0.37 (CNN); 10/10, 0.61 vs 0.32 (MLP)
    assert m["classes_recovered"] >= 9 and m["n_classes"] == 10
    assert m["mean_own_correlation"] > m["mean_best_other_correlation"] + 0.1
    assert m["mean_target_confidence"] > 0.9
    assert f.queries == 0  # white-box: passes through the attacker's copy, not queries
    # every pass is over all 10 classes at once
    assert view.forward_passes == 10 * (m["steps"] + 2)


def test_an_untrained_model_reveals_much_less(digits: Dataset) -> None:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
    target = TorchTarget(net, input_shape=(1, 8, 8), clip=(0.0, 1.0))
    m = MIFace(steps=100).run(target.view("white-box", "probabilities"), digits).metrics
    assert m["classes_recovered"] <= 5
    assert m["mean_own_correlation"] < 0.45


def test_evidence_holds_the_reconstructions_and_the_class_means(
    digits_cnn_target: TorchTarget, digits: Dataset, tmp_path: Path
) -> None:
    f = MIFace(steps=20).run(
        digits_cnn_target.view("white-box", "probabilities"), digits, AttackContext(run_dir=tmp_path)
    )
    arrays = np.load(tmp_path / f.evidence["arrays"])
    assert arrays["reconstructions"].shape == (10, 1, 8, 8) == arrays["class_means"].shape
    assert arrays["reconstructions"].min() >= 0.0 and arrays["reconstructions"].max() <= 1.0


def test_inversion_metrics() -> None:
    means = torch.rand(4, 1, 3, 3, generator=torch.Generator().manual_seed(0))
    m = inversion_metrics(means.clone(), means)
    assert m["classes_recovered"] == 4 and m["mean_own_correlation"] == pytest.approx(1.0)
    swapped = inversion_metrics(means[[1, 0, 2, 3]], means)
    assert swapped["classes_recovered"] == 2


def test_mi_face_needs_white_box_and_a_valid_config(digits_cnn_target: TorchTarget, digits: Dataset) -> None:
    assert attacks()["mi-face"] is MIFace
    with pytest.raises(AccessDeniedError):
        MIFace().run(digits_cnn_target.view("grey-box", "probabilities"), digits)
    for bad in ({"steps": 0}, {"lr": -1.0}, {"init": 2.0}):
        with pytest.raises(ConfigError):
            MIFace(**bad)


def test_black_box_mi_face_recovers_the_classes_from_probabilities(
    digits_cnn_target: TorchTarget, digits: Dataset
) -> None:
    assert attacks()["mi-face-blackbox"] is MIFaceBlackBox
    view = digits_cnn_target.view("black-box", "probabilities")
    f = MIFaceBlackBox().run(view, digits, AttackContext(seed=0))
    m = f.metrics
    # measured 10/10 classes, own 0.51 vs other 0.31 (CNN) and 0.50 vs 0.27 (MLP), 8000 queries
    assert m["classes_recovered"] >= 8
    assert m["mean_own_correlation"] > m["mean_best_other_correlation"] + 0.1
    assert f.queries == m["steps"] * m["queries_per_step"] == 40 * 200


def test_black_box_mi_face_stays_within_the_budget(digits_cnn_target: TorchTarget, digits: Dataset) -> None:
    view = digits_cnn_target.view("black-box", "probabilities", budget=2100)
    f = MIFaceBlackBox().run(view, digits)
    assert f.metrics["steps"] == 10 and f.queries == 2000 <= 2100
    assert any("budget allowed 10 of 40" in flag for flag in f.flags)
