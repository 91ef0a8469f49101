"""Input squeezing: naive PGD (true, masked gradients) looks strong; BPDA breaks much of it.

Measured (test CNN, seeds 0 and 1, eps 0.1, PGD-20 step eps/4, 450 test digits): 1-bit depth
keeps 0.92-0.93 robust accuracy under naive PGD but 0.75-0.77 under BPDA (undefended: 0.50).
A 2x2 median passes gradients (no masking): exact gradients break it at least as well as BPDA.
"""

from __future__ import annotations

import torch
from torch import nn

from aisec.data import Dataset
from aisec.defenses import Squeezed, get_defense
from aisec.defenses.input.squeeze import bit_depth, median_filter
from tests.defenses.conftest import robust_accuracy


def test_bit_depth_and_median_values() -> None:
    x = torch.tensor([[[[0.0, 0.2, 0.26, 0.51], [0.74, 0.9, 1.0, 0.49]]]])
    assert torch.equal(bit_depth(x, 1), (x >= 0.5).float())
    assert torch.allclose(bit_depth(x, 2), torch.round(x * 3) / 3)
    img = torch.arange(16.0).view(1, 1, 4, 4)
    img[0, 0, 1, 1] = 100.0  # an outlier pixel is removed by a 3x3 median
    out = median_filter(img, 3)
    assert out.shape == img.shape and out[0, 0, 1, 1] < 100


def test_bpda_keeps_the_forward_value_and_passes_the_gradient(digits_cnn: nn.Module, digits: Dataset) -> None:
    x = digits.x_test[:8].clone().requires_grad_(True)  # type: ignore[union-attr]
    adaptive, naive = Squeezed(digits_cnn, "bit-depth", bits=1), Squeezed(digits_cnn, "bit-depth", bits=1, bpda=False)
    assert torch.equal(adaptive(x), naive(x))
    (g_naive,) = torch.autograd.grad(naive(x).sum(), x)
    (g_bpda,) = torch.autograd.grad(adaptive(x).sum(), x)
    assert g_naive.abs().sum() == 0  # rounding masks the gradient
    assert g_bpda.abs().sum() > 0


def test_naive_pgd_overstates_bit_depth_and_bpda_breaks_it(digits_cnn: nn.Module, digits: Dataset) -> None:
    defended = get_defense("bit-depth")(bits=1).apply(digits_cnn, digits)
    assert defended.naive is not None
    naive = robust_accuracy(defended.naive, digits, judge=defended.deployed)
    adaptive = robust_accuracy(defended.model, digits, judge=defended.deployed)
    assert naive > 0.85, naive
    assert adaptive < naive - 0.10, (naive, adaptive)


def test_median_adaptive_attack_is_not_weaker_than_bpda(digits_cnn: nn.Module, digits: Dataset) -> None:
    defended = get_defense("median-smoothing")(size=2).apply(digits_cnn, digits)
    assert defended.naive is not None
    exact = robust_accuracy(defended.model, digits, judge=defended.deployed)
    bpda = robust_accuracy(defended.naive, digits, judge=defended.deployed)
    assert exact <= bpda + 0.02, (exact, bpda)
    assert exact < robust_accuracy(digits_cnn, digits)  # the median costs robustness on 8x8 digits here
