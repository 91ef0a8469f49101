"""Centring the inputs of a DP-SGD run on a differentially private mean, folded back into the first layer.

DP-SGD on inputs whose informative features sit far from zero (8x8 digits in [0, 1]: border pixels
always 0, centre pixels around 0.5) spends noise learning the offset. Abadi et al. 2016
(arXiv:1607.00133, Sec. 4) spend part of the budget on input statistics (a DP PCA) before DP-SGD;
here the statistic is the mean alone: every row is clipped to the L2 norm ``bound`` that the data's
declared value range allows (``sqrt(d) * max(|lo|, |hi|)``, no data needed to choose it), the rows
are summed and Gaussian noise of ``noise * bound`` is added, which is one Gaussian mechanism with
noise multiplier ``noise`` and sample rate 1. The accountant composes it with the DP-SGD steps
(:func:`aisec.defenses.training.dp_functional.noise_for` with ``prior``). DP-SGD then trains on ``x - mean``; afterwards the centring is folded into the
first layer's bias (``W (x - m) + b = W x + (b - W m)``), so the returned module keeps the user's
architecture and takes raw inputs. Dividing by the number of rows treats the data set's size as
public, as DP-SGD's sample rate does.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn


def row_bound(clip: tuple[float, float], dim: int) -> float:
    """The largest L2 norm a row of ``dim`` features in the range ``clip`` can have."""
    return math.sqrt(dim) * max(abs(clip[0]), abs(clip[1]))


def dp_mean(x: torch.Tensor, bound: float, noise: float, gen: torch.Generator) -> torch.Tensor:
    """The mean of the rows of ``x`` (each clipped to L2 norm ``bound``) plus Gaussian noise of ``noise * bound`` on
    the sum: ``noise`` is the mechanism's noise multiplier. Shaped like one row of ``x``.

    The noisy sum is divided by the number of rows, which is treated as public, as DP-SGD's sample rate
    ``batch / n`` treats it."""
    flat = x.reshape(len(x), -1).float()
    norms = flat.norm(dim=1, keepdim=True).clamp_min(1e-12)
    clipped = flat * (bound / norms).clamp(max=1.0)
    noisy = clipped.sum(0) + torch.randn(flat.shape[1], generator=gen) * noise * bound
    return (noisy / len(x)).reshape(x.shape[1:])


def param_owners(net: nn.Module) -> list[tuple[str, nn.Module]]:
    """The modules that own parameters themselves, in registration order, with their names."""
    return [(name, m) for name, m in net.named_modules() if any(True for _ in m.parameters(recurse=False))]


def first_linear(net: nn.Module, input_shape: Sequence[int]) -> str | None:
    """The name of the layer a centring can be folded into: the first module that owns parameters, when it is an
    ``nn.Linear`` with a bias and folding into it provably gives the same outputs (checked on random inputs); else
    ``None`` (a convolution, for instance: a per-pixel offset is not a per-channel bias)."""
    owners = param_owners(net)
    if not owners or not isinstance(owners[0][1], nn.Linear) or owners[0][1].bias is None:
        return None
    name = owners[0][0]
    gen = torch.Generator().manual_seed(0)
    probe = torch.rand(4, *input_shape, generator=gen)
    offset = torch.rand(*input_shape, generator=gen)
    plain = copy.deepcopy(net).eval()
    folded = copy.deepcopy(plain)
    try:
        with torch.no_grad():
            fold(folded.get_submodule(name), offset)
            same = torch.allclose(plain(probe - offset), folded(probe), atol=1e-4, rtol=1e-4)
    except RuntimeError:  # the offset's shape does not meet the layer: it is not the layer the input reaches
        return None
    return name if same else None


def fold(layer: nn.Module, offset: torch.Tensor) -> None:
    """Make the ``nn.Linear`` ``layer`` compute on ``x`` what it computed on ``x - offset``: ``b <- b - W offset``."""
    assert isinstance(layer, nn.Linear) and layer.bias is not None
    with torch.no_grad():
        layer.bias -= layer.weight @ offset.reshape(-1).to(layer.weight)


@dataclass(frozen=True, slots=True)
class Centring:
    """A DP mean to subtract from the inputs and the layer it folds into afterwards."""

    offset: torch.Tensor
    layer: str
    mechanism: tuple[float, float, int]
    """What it adds to the accountant's history: (noise multiplier, sample rate 1, one step)."""


def plan(
    net: nn.Module, x: torch.Tensor, clip: tuple[float, float] | None, mode: str, noise: float, seed: int
) -> tuple[Centring | None, str]:
    """What ``center=mode`` does for ``net`` on ``x``: the centring (or ``None``) and a line saying what was done or
    why nothing was."""
    if mode == "none":
        return None, "none"
    if clip is None:
        return None, "none: the data declares no value range to bound a row's norm"
    layer = first_linear(net, x.shape[1:])
    if layer is None:
        return None, "none: the first layer is not an nn.Linear with a bias to fold the mean into"
    bound = row_bound(clip, x[0].numel())
    offset = dp_mean(x, bound, noise, torch.Generator().manual_seed(seed + 7919))
    return Centring(offset, layer, (noise, 1.0, 1)), f"dp-mean (row norm bound {bound:g}, noise {noise:g})"
