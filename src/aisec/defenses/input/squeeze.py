"""Input squeezing: bit-depth reduction and median smoothing in front of a model, with BPDA.

Feature squeezing (Xu, Evans, Qi 2018, arXiv:1704.01155) reduces the input space an attacker can
use: fewer grey levels, or a median filter. Both steps are non-differentiable (rounding has a
zero gradient; a median passes the gradient to one pixel of each window), so a white-box attack
that differentiates through them sees a masked gradient and *looks* defeated. BPDA (Athalye,
Carlini, Wagner 2018, Obfuscated Gradients Give a False Sense of Security, arXiv:1802.00420)
replaces the squeezing step by the identity on the backward pass: the forward value is exactly
the squeezed input, the gradient is the model's gradient at it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from aisec.attacks.base import check_config
from aisec.core.configurable import check_choice
from aisec.data.dataset import Dataset
from aisec.defenses.base import Defended, Defense, ProgressFn, register_defense
from aisec.errors import ConfigError


def straight_through(x: torch.Tensor, squeezed: torch.Tensor) -> torch.Tensor:
    """``squeezed`` on the forward pass, the identity's gradient (BPDA) on the backward pass."""
    return x + (squeezed - x).detach()


def bit_depth(x: torch.Tensor, bits: int, clip: tuple[float, float] = (0.0, 1.0)) -> torch.Tensor:
    """Quantise ``x`` (in ``clip``) to ``2**bits`` evenly spaced levels."""
    lo, hi = clip
    levels = 2**bits - 1
    return torch.round((x - lo) / (hi - lo) * levels) / levels * (hi - lo) + lo


def median_filter(x: torch.Tensor, size: int) -> torch.Tensor:
    """Median over a ``size`` x ``size`` window per channel, reflect-padded so the shape is kept.

    Works on (N, C, H, W) images; an even window takes the lower median, as ``torch.median`` does.
    """
    if x.ndim != 4:
        raise ConfigError(f"median smoothing needs (N, C, H, W) images, got shape {tuple(x.shape)}")
    left = (size - 1) // 2
    padded = F.pad(x, (left, size - 1 - left, left, size - 1 - left), mode="reflect")
    patches = padded.unfold(2, size, 1).unfold(3, size, 1)  # N, C, H, W, size, size
    return patches.flatten(-2).median(dim=-1).values


class Squeezed(nn.Module):
    """``model(squeeze(x))``, with BPDA gradients when ``bpda`` is true.

    Parameters
    ----------
    model:
        Inputs to logits.
    squeeze:
        ``"bit-depth"`` or ``"median"``.
    bits:
        Bits per input value for ``bit-depth``.
    size:
        Window size for ``median``.
    clip:
        Valid input range (bit-depth quantises within it).
    bpda:
        Straight-through gradient for the squeezing step (the adaptive attacker's model); ``False``
        gives the true, masked gradient.
    """

    def __init__(
        self,
        model: nn.Module,
        squeeze: str,
        *,
        bits: int = 3,
        size: int = 2,
        clip: tuple[float, float] = (0.0, 1.0),
        bpda: bool = True,
    ) -> None:
        super().__init__()
        check_choice("squeeze", squeeze, ("bit-depth", "median"))
        self.model = model
        self.squeeze_kind = squeeze
        self.bits = bits
        self.size = size
        self.clip = clip
        self.bpda = bpda

    def squeeze(self, x: torch.Tensor) -> torch.Tensor:
        """The squeezed input, with the gradient this module was built for."""
        bits = self.squeeze_kind == "bit-depth"
        out = bit_depth(x, self.bits, self.clip) if bits else median_filter(x, self.size)
        return straight_through(x, out) if self.bpda else out

    def with_bpda(self, bpda: bool) -> Squeezed:
        """The same defense around the same model, with or without BPDA."""
        return Squeezed(self.model, self.squeeze_kind, bits=self.bits, size=self.size, clip=self.clip, bpda=bpda)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(self.squeeze(x))


@dataclass(frozen=True, kw_only=True, slots=True)
class BitDepthConfig:
    """Parameters of :class:`BitDepthReduction`.

    Attributes
    ----------
    bits:
        Bits per input value (1 to 8); Xu et al. use 1 bit for MNIST.
    """

    bits: int = 2

    def __post_init__(self) -> None:
        check_config(self, "bit-depth", integer=("bits",), positive=("bits",))
        if self.bits > 8:
            raise ConfigError(f"bit-depth.bits: expected 1 to 8, got {self.bits}")


@dataclass(frozen=True, kw_only=True, slots=True)
class MedianConfig:
    """Parameters of :class:`MedianSmoothing`.

    Attributes
    ----------
    size:
        Window size (2 or more); Xu et al. use 2x2 on MNIST.
    """

    size: int = 2

    def __post_init__(self) -> None:
        check_config(self, "median-smoothing", integer=("size",), positive=("size",))
        if self.size < 2:
            raise ConfigError(f"median-smoothing.size: expected 2 or more, got {self.size}")


def _clip(data: Dataset) -> tuple[float, float]:
    return data.clip if data.clip is not None else (0.0, 1.0)


@register_defense
class BitDepthReduction(Defense):
    """Bit-depth reduction in front of the model (Xu et al. 2018, Feature Squeezing, arXiv:1704.01155);
    attacked adaptively with BPDA (Athalye et al. 2018, arXiv:1802.00420)."""

    name = "bit-depth"
    kind = "input"
    paper = "Xu, Evans, Qi 2018, Feature Squeezing, arXiv:1704.01155"
    mitigates = frozenset({"fgsm", "pgd"})
    adaptive = "bpda"
    Config = BitDepthConfig

    def apply(self, model: nn.Module, data: Dataset, *, seed: int = 0, progress: ProgressFn | None = None) -> Defended:
        wrapped = Squeezed(model, "bit-depth", bits=self.config.bits, clip=_clip(data))
        return Defended(model=wrapped, naive=wrapped.with_bpda(False), info={"bits": self.config.bits})


@register_defense
class MedianSmoothing(Defense):
    """Median smoothing in front of the model (Xu et al. 2018, Feature Squeezing, arXiv:1704.01155).

    A median selects one pixel per window, so its gradient is not masked (it is exact almost
    everywhere): the adaptive attacker differentiates through it, and BPDA, which measured weaker
    here, is the non-adaptive figure beside it.
    """

    name = "median-smoothing"
    kind = "input"
    paper = "Xu, Evans, Qi 2018, Feature Squeezing, arXiv:1704.01155"
    mitigates = frozenset({"fgsm", "pgd"})
    adaptive = "white-box"
    Config = MedianConfig

    def apply(self, model: nn.Module, data: Dataset, *, seed: int = 0, progress: ProgressFn | None = None) -> Defended:
        if data.input_shape is None or len(data.input_shape) != 3:
            raise ConfigError(f"median-smoothing needs images (C, H, W); {data.name} has shape {data.input_shape}")
        wrapped = Squeezed(model, "median", size=self.config.size, clip=_clip(data), bpda=False)
        return Defended(model=wrapped, naive=wrapped.with_bpda(True), info={"size": self.config.size})
