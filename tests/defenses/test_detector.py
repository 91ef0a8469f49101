"""Feature-squeezing detector: the adaptive attack (BPDA through the squeezer) lowers detection.

Measured (test CNN, 1-bit squeezer, 5% FPR on the training split, eps 0.1, PGD-40), seeds 0 / 1:
non-adaptive PGD is detected 59% / 40% of the time, the adaptive attack 41% / 5%, and the share of
inputs both misclassified and unflagged rises from 20% / 27% to 29% / 44%.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from aisec.data import Dataset
from aisec.defenses import FeatureSqueezingDetector, evaluate_detector
from aisec.errors import ConfigError


def test_threshold_meets_the_false_positive_rate(digits_cnn: nn.Module, digits: Dataset) -> None:
    det = FeatureSqueezingDetector(digits_cnn).fit(digits.x_train, fpr=0.05)  # type: ignore[arg-type]
    train_fpr = det.detect(digits.x_train).float().mean().item()  # type: ignore[arg-type]
    assert 0.03 <= train_fpr <= 0.06
    assert det.detect(digits.x_test).float().mean().item() < 0.12  # type: ignore[arg-type]


def test_adaptive_attack_lowers_detection(digits_cnn: nn.Module, digits: Dataset) -> None:
    det = FeatureSqueezingDetector(digits_cnn).fit(digits.x_train, fpr=0.05)  # type: ignore[arg-type]
    report = evaluate_detector(det, digits.x_test, digits.y_test, eps=0.1, steps=40, seed=0)  # type: ignore[arg-type]
    plain, adaptive = report["non_adaptive"], report["adaptive"]
    assert plain["detection_rate"] > 0.4
    assert adaptive["detection_rate"] < plain["detection_rate"] - 0.1, report
    assert adaptive["evasion_rate"] > plain["evasion_rate"], report


def test_unfitted_detector_refuses() -> None:
    det = FeatureSqueezingDetector(nn.Sequential(nn.Flatten(), nn.Linear(64, 10)))
    with pytest.raises(ConfigError, match="fit"):
        det.detect(torch.zeros(2, 1, 8, 8))
    with pytest.raises(ConfigError, match="fpr"):
        det.fit(torch.zeros(4, 1, 8, 8), fpr=1.5)
