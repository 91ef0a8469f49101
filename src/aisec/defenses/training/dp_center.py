"""Centring the inputs of a DP-SGD run on a differentially private mean, folded back into the first layer.

DP-SGD on inputs whose informative features sit far from zero (8x8 digits in [0, 1]: border pixels
always 0, centre pixels around 0.5) spends noise learning the offset. Abadi et al. 2016
(arXiv:1607.00133, Sec. 4) spend part of the budget on input statistics (a DP PCA) before DP-SGD;
here the statistic is the mean alone: every row is clipped to the L2 norm ``bound`` that the data's
declared value range allows (``sqrt(d) * max(|lo|, |hi|)``, no data needed to choose it), the rows
are summed and Gaussian noise of ``noise * bound`` is added, which is one Gaussian mechanism with
noise multiplier ``noise`` and sample rate 1. The accountant composes it with the DP-SGD steps
(:func:`noise_for`). DP-SGD then trains on ``x - mean``; afterwards the centring is folded into the
first layer's bias (``W (x - m) + b = W x + (b - W m)``), so the returned module keeps the user's
architecture and takes raw inputs. Dividing by the number of rows treats the data set's size as
public, as DP-SGD's sample rate does.
"""

from __future__ import annotations

import copy
import math
import warnings
from collections.abc import Sequence

import torch
from torch import nn

#: (noise multiplier, sample rate, steps): one entry of an Opacus accountant's history.
Mechanism = tuple[float, float, int]


def row_bound(clip: tuple[float, float], dim: int) -> float:
    """The largest L2 norm a row of ``dim`` features in the range ``clip`` can have."""
    return math.sqrt(dim) * max(abs(clip[0]), abs(clip[1]))


def dp_mean(x: torch.Tensor, bound: float, noise: float, gen: torch.Generator) -> torch.Tensor:
    """The mean of the rows of ``x`` (each clipped to L2 norm ``bound``) plus Gaussian noise of ``noise * bound`` on
    the sum: ``noise`` is the mechanism's noise multiplier. Shaped like one row of ``x``."""
    flat = x.reshape(len(x), -1).float()
    norms = flat.norm(dim=1, keepdim=True).clamp_min(1e-12)
    clipped = flat * (bound / norms).clamp(max=1.0)
    noisy = clipped.sum(0) + torch.randn(flat.shape[1], generator=gen) * noise * bound
    return (noisy / len(x)).reshape(x.shape[1:])


def first_linear(net: nn.Module, input_shape: Sequence[int]) -> nn.Linear | None:
    """The layer a centring can be folded into: the first module that owns parameters, when it is an ``nn.Linear``
    with a bias and folding into it provably gives the same outputs (checked on random inputs); else ``None``
    (a convolution, for instance: a per-pixel offset is not a per-channel bias)."""
    owners = [m for m in net.modules() if any(True for _ in m.parameters(recurse=False))]
    if not owners or not isinstance(owners[0], nn.Linear) or owners[0].bias is None:
        return None
    gen = torch.Generator().manual_seed(0)
    probe = torch.rand(4, *input_shape, generator=gen)
    offset = torch.rand(*input_shape, generator=gen)
    folded = copy.deepcopy(net).eval()
    layer = next(m for m in folded.modules() if any(True for _ in m.parameters(recurse=False)))
    assert isinstance(layer, nn.Linear)
    try:
        with torch.no_grad():
            fold(layer, offset)
            same = torch.allclose(copy.deepcopy(net).eval()(probe - offset), folded(probe), atol=1e-4, rtol=1e-4)
    except RuntimeError:  # the offset's shape does not meet the layer: it is not the layer the input reaches
        return None
    return owners[0] if same else None


def fold(layer: nn.Linear, offset: torch.Tensor) -> None:
    """Make ``layer(x)`` compute what it computed on ``x - offset``: ``b <- b - W offset``."""
    with torch.no_grad():
        layer.bias -= layer.weight @ offset.reshape(-1).to(layer.weight)


def epsilon_of(history: Sequence[Mechanism], delta: float, accountant: str) -> float:
    """The epsilon an Opacus accountant of kind ``accountant`` charges for ``history``."""
    from opacus.accountants import create_accountant

    acct = create_accountant(accountant)
    acct.history = list(history)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # RDP: "optimal order is the largest alpha" (the bound stays valid)
        return float(acct.get_epsilon(delta))


def noise_for(
    epsilon: float, delta: float, sample_rate: float, steps: int, accountant: str, prior: Sequence[Mechanism]
) -> float:
    """The smallest noise multiplier (to 0.1% by bisection) for which ``prior`` and ``steps`` Poisson-sampled steps
    at ``sample_rate`` together spend at most ``epsilon``; ``ValueError`` when ``prior`` alone spends more."""

    def spent(sigma: float) -> float:
        try:
            return epsilon_of([*prior, (sigma, sample_rate, steps)], delta, accountant)
        except (ValueError, OverflowError, RuntimeError):  # an accountant out of its range: far too little noise
            return math.inf

    hi = 1.0
    while spent(hi) > epsilon:
        hi *= 2
        if hi > 1e4:
            raise ValueError(f"the input statistics alone spend more than epsilon {epsilon:g}")
    lo = hi / 2 if hi > 1.0 else 0.05
    while hi - lo > 1e-3 * hi:
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if spent(mid) > epsilon else (lo, mid)
    return hi
