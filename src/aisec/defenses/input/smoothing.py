"""Randomized preprocessing: Gaussian noise on the input, attacked adaptively with EOT.

A randomized defense answers each query with a fresh draw of noise. An attacker that follows the
gradient of one draw follows noise; Expectation over Transformation (EOT; Athalye, Engstrom, Ilyas,
Kwok 2018, Synthesizing Robust Adversarial Examples, arXiv:1707.07397, and Athalye, Carlini, Wagner
2018, arXiv:1802.00420) differentiates the expectation over the randomness instead, here estimated
with ``eot_samples`` draws per forward pass.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from aisec.attacks.base import check_config
from aisec.data.dataset import Dataset
from aisec.defenses.base import Defended, Defense, ProgressFn, register_defense


class NoisyInput(nn.Module):
    """Logits of the mean class probabilities over ``samples`` noisy copies of the input.

    ``log(mean_k softmax(model(x + sigma * z_k)))``: with ``samples`` > 1 its gradient is the EOT
    gradient of the expected prediction; with ``samples=1`` it is the naive one-draw gradient. The
    noisy input is clipped to ``clip`` when given.
    """

    def __init__(
        self, model: nn.Module, sigma: float, *, samples: int = 1, clip: tuple[float, float] | None = None
    ) -> None:
        super().__init__()
        self.model = model
        self.sigma = sigma
        self.samples = samples
        self.clip = clip

    def with_samples(self, samples: int) -> NoisyInput:
        """The same defense around the same model, averaging over ``samples`` draws."""
        return NoisyInput(self.model, self.sigma, samples=samples, clip=self.clip)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k = self.samples
        rep = x.repeat_interleave(k, dim=0) if k > 1 else x
        noisy = rep + self.sigma * torch.randn_like(rep)
        if self.clip is not None:
            noisy = noisy.clamp(*self.clip)
        probs = self.model(noisy).softmax(dim=1)
        if k > 1:
            probs = probs.view(len(x), k, -1).mean(dim=1)
        return probs.clamp_min(1e-12).log()


@dataclass(frozen=True, kw_only=True, slots=True)
class GaussianNoiseConfig:
    """Parameters of :class:`GaussianNoise`.

    Attributes
    ----------
    sigma:
        Standard deviation of the noise, in input units.
    samples:
        Draws averaged per prediction by the deployed defense.
    eot_samples:
        Draws the adaptive (EOT) attacker averages per gradient.
    """

    sigma: float = 0.1
    samples: int = 1
    eot_samples: int = 16

    def __post_init__(self) -> None:
        ints = ("samples", "eot_samples")
        check_config(self, "gaussian-noise", positive=("sigma", *ints), integer=ints)


@register_defense
class GaussianNoise(Defense):
    """Gaussian noise added to every input before the model (a randomized preprocessing defense);
    attacked adaptively with EOT (Athalye et al. 2018, arXiv:1707.07397, arXiv:1802.00420).

    The defended target's differentiable model averages ``eot_samples`` draws (the EOT attacker);
    the naive figure uses one draw per gradient. Predictions average ``samples`` draws either way.
    """

    name = "gaussian-noise"
    kind = "input"
    paper = "Athalye, Carlini, Wagner 2018, Obfuscated Gradients Give a False Sense of Security, arXiv:1802.00420"
    mitigates = frozenset({"fgsm", "pgd"})
    adaptive = "eot"
    Config = GaussianNoiseConfig

    def apply(self, model: nn.Module, data: Dataset, *, seed: int = 0, progress: ProgressFn | None = None) -> Defended:
        cfg = self.config
        adaptive = NoisyInput(model, cfg.sigma, samples=max(cfg.samples, cfg.eot_samples), clip=data.clip)
        naive = NoisyInput(model, cfg.sigma, samples=cfg.samples, clip=data.clip)
        return Defended(
            model=adaptive, naive=naive, serve=naive, info={"sigma": cfg.sigma, "eot_samples": cfg.eot_samples}
        )
