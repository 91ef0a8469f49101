"""Randomized smoothing certification (Cohen et al. 2019) with small sample sizes."""

from __future__ import annotations

import math

import pytest
import torch
from scipy.stats import norm
from torch import nn

from aisec.data import Dataset
from aisec.defenses import certification_finding, certified_accuracy, certify
from aisec.defenses.certify.randomized_smoothing import ABSTAIN, clopper_pearson_lower
from aisec.errors import ConfigError
from tests.helpers import DigitsCNN, seed_everything


class Constant(nn.Module):
    """Always class ``c`` of ``k``: p_A = 1 under any noise."""

    def __init__(self, c: int, k: int = 3) -> None:
        super().__init__()
        self.c, self.k = c, k

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.one_hot(torch.full((len(x),), self.c), self.k).float()


def test_clopper_pearson_lower_bound() -> None:
    assert clopper_pearson_lower(0, 10, 0.001) == 0.0
    assert clopper_pearson_lower(100, 100, 0.001) == pytest.approx(0.001 ** (1 / 100))  # k=n: alpha^(1/n)
    assert clopper_pearson_lower(60, 100, 0.001) < 0.6


def test_constant_classifier_radius_matches_the_formula() -> None:
    cert = certify(Constant(2), torch.zeros(3, 4), sigma=0.5, n0=10, n=200, alpha=0.001)
    expected = 0.5 * norm.ppf(0.001 ** (1 / 200))
    assert cert.prediction.tolist() == [2, 2, 2]
    assert torch.allclose(cert.radius, torch.full((3,), expected, dtype=cert.radius.dtype))
    curve = certified_accuracy(cert, torch.tensor([2, 2, 0]), (0.0, 0.5, 2.0))
    assert math.isclose(curve[0.5], 2 / 3, rel_tol=1e-6) and curve[2.0] == 0.0


def test_coin_flip_classifier_abstains() -> None:
    class Coin(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:  # class by the sign of the noise
            return torch.stack([x[:, 0], -x[:, 0]], dim=1)

    cert = certify(Coin(), torch.zeros(4, 2), sigma=1.0, n0=20, n=400)
    assert (cert.prediction == ABSTAIN).all() and (cert.radius == 0).all()


def test_noise_trained_cnn_certifies_digits(digits: Dataset) -> None:
    seed_everything(0)
    model, sigma = DigitsCNN(), 0.25
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    gen = torch.Generator().manual_seed(0)
    x, y = digits.x_train, digits.y_train
    for _ in range(8):  # Gaussian data augmentation, as Cohen et al. train their base classifiers
        for idx in torch.randperm(len(y), generator=gen).split(64):
            opt.zero_grad()
            noisy = x[idx] + sigma * torch.randn(x[idx].shape, generator=gen)  # type: ignore[index]
            nn.functional.cross_entropy(model(noisy), y[idx]).backward()
            opt.step()
    model.eval()
    xt, yt = digits.x_test[:40], digits.y_test[:40]  # type: ignore[index]
    cert = certify(model, xt, sigma=sigma, n0=50, n=500, alpha=0.001, batch=500, seed=0)
    curve = certified_accuracy(cert, yt, (0.0, 0.25, 0.5))
    assert curve[0.0] > 0.6, curve
    assert curve[0.0] >= curve[0.25] >= curve[0.5]
    assert cert.radius.max() <= sigma * norm.ppf(0.001 ** (1 / 500)) + 1e-6  # the largest radius n allows
    again = certify(model, xt, sigma=sigma, n0=50, n=500, alpha=0.001, batch=500, seed=0)
    assert torch.equal(cert.prediction, again.prediction)
    finding = certification_finding(cert, yt, sigma=sigma, n0=50, n=500, alpha=0.001, radii=(0.0, 0.25, 0.5))
    assert finding.metrics["certified_accuracy"] == curve[0.0]
    assert finding.headline == "certified_accuracy" and "arXiv:1902.02918" in finding.paper


def test_bad_arguments() -> None:
    with pytest.raises(ConfigError, match="sigma"):
        certify(Constant(0), torch.zeros(1, 2), sigma=0)
    with pytest.raises(ConfigError, match="alpha"):
        certify(Constant(0), torch.zeros(1, 2), sigma=0.1, alpha=2)
