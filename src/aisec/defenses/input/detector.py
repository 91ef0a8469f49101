"""Feature-squeezing detector (Xu, Evans, Qi 2018, arXiv:1704.01155) and an adaptive attack on it.

The detector compares the model's prediction on an input with its predictions on squeezed
versions of it (fewer bits, a median filter): the score is the largest L1 distance between the
probability vectors, and an input scoring above a threshold, chosen on clean data for a target
false-positive rate, is flagged as adversarial. A non-adaptive attacker ignores the detector;
the adaptive one (Athalye et al. 2018, arXiv:1802.00420; He et al. 2017, arXiv:1706.04701)
also minimises the score, differentiating through the squeezers with BPDA.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from aisec.attacks.integrity.pgd import pgd_perturb
from aisec.defenses.input.squeeze import Squeezed
from aisec.errors import ConfigError, InputValidationError


class FeatureSqueezingDetector:
    """Scores inputs by how much squeezing moves the model's prediction.

    Parameters
    ----------
    model:
        Inputs to logits.
    bits:
        Bit depth of the bit-depth squeezer (``None`` to leave it out); 1 as Xu et al. for MNIST.
    median_size:
        Window of the median squeezer (``None``, the default, leaves it out: on 8x8 digits a 2x2
        median changes clean predictions so much that the threshold flags almost nothing).
    clip:
        Valid input range.
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        bits: int | None = 1,
        median_size: int | None = None,
        clip: tuple[float, float] = (0.0, 1.0),
    ) -> None:
        self.model = model
        self.squeezers: list[Squeezed] = []
        if bits is not None:
            self.squeezers.append(Squeezed(model, "bit-depth", bits=bits, clip=clip, bpda=True))
        if median_size is not None:
            self.squeezers.append(Squeezed(model, "median", size=median_size, clip=clip, bpda=True))
        if not self.squeezers:
            raise ConfigError("feature squeezing needs at least one squeezer (bits or median_size)")
        self.threshold: float | None = None
        self.fpr: float | None = None

    def score(self, x: torch.Tensor) -> torch.Tensor:
        """Per input, the largest L1 distance between its probabilities and a squeezed version's.

        Differentiable (BPDA through the squeezers) when called with gradients enabled.
        """
        p = F.softmax(self.model(x), dim=1)
        dists = [(p - F.softmax(sq(x), dim=1)).abs().sum(dim=1) for sq in self.squeezers]
        return torch.stack(dists).amax(dim=0)

    def fit(self, x_clean: torch.Tensor, fpr: float = 0.05) -> FeatureSqueezingDetector:
        """Set the threshold so that a fraction ``fpr`` of ``x_clean`` is flagged."""
        if not 0.0 < fpr < 1.0:
            raise ConfigError(f"fpr: expected a number in (0, 1), got {fpr!r}")
        if len(x_clean) < 2:
            raise InputValidationError("x_clean", "two or more clean inputs", len(x_clean))
        with torch.no_grad():
            scores = self.score(x_clean)
        self.threshold = float(torch.quantile(scores, 1.0 - fpr))
        self.fpr = fpr
        return self

    @torch.no_grad()
    def detect(self, x: torch.Tensor) -> torch.Tensor:
        """Boolean per input: flagged as adversarial."""
        if self.threshold is None:
            raise ConfigError("the detector has no threshold yet: call fit(x_clean) first")
        return self.score(x) > self.threshold


def adaptive_pgd(
    detector: FeatureSqueezingDetector,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    eps: float,
    steps: int = 40,
    alpha: float | None = None,
    clip: tuple[float, float] | None = (0.0, 1.0),
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """L-inf PGD that misclassifies, then lowers the detector's score while staying misclassified.

    Per input and step: ascend the cross-entropy while the model is still right; once it is
    wrong, descend the detector's score (BPDA through the squeezers). The returned example is,
    per input, the misclassified iterate with the lowest score seen (the last iterate when none
    was misclassified).
    """
    alpha = alpha if alpha is not None else 2.5 * eps / steps
    noise = torch.rand(x.shape, generator=generator).to(x.device) * 2 - 1
    x_adv = x + eps * noise
    if clip is not None:
        x_adv = x_adv.clamp(*clip)
    best = x_adv.clone()
    best_score = torch.full((len(x),), float("inf"), device=x.device)
    with torch.enable_grad():
        for _ in range(steps + 1):
            x_adv.requires_grad_(True)
            logits = detector.model(x_adv)
            score = detector.score(x_adv)
            wrong = logits.argmax(1) != y
            with torch.no_grad():
                better = wrong & (score < best_score)
                best[better] = x_adv[better].detach()
                best_score[better] = score[better].detach()
            ce = F.cross_entropy(logits, y, reduction="none")
            loss = torch.where(wrong, -score, ce).sum()
            (grad,) = torch.autograd.grad(loss, x_adv)
            with torch.no_grad():
                x_adv = torch.min(torch.max(x_adv + alpha * grad.sign(), x - eps), x + eps)
                if clip is not None:
                    x_adv = x_adv.clamp(*clip)
    never = torch.isinf(best_score)
    best[never] = x_adv[never].detach()
    return best.detach()


@dataclass(frozen=True, slots=True)
class DetectionResult:
    """Detection of one attack's adversarial examples."""

    attack: str
    success_rate: float
    """Fraction of correctly classified inputs the attack misclassifies."""
    detection_rate: float
    """Fraction of the successful adversarial examples the detector flags."""
    evasion_rate: float
    """Fraction of correctly classified inputs both misclassified and not flagged: the attacker's win."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "attack": self.attack,
            "success_rate": self.success_rate,
            "detection_rate": self.detection_rate,
            "evasion_rate": self.evasion_rate,
        }


def _detection(name: str, detector: FeatureSqueezingDetector, x_adv: torch.Tensor, y: torch.Tensor) -> DetectionResult:
    with torch.no_grad():
        wrong = detector.model(x_adv).argmax(1) != y
    flagged = detector.detect(x_adv)
    n = max(len(y), 1)
    hits = int(wrong.sum())
    return DetectionResult(
        attack=name,
        success_rate=hits / n,
        detection_rate=float((flagged & wrong).sum()) / max(hits, 1),
        evasion_rate=float((wrong & ~flagged).sum()) / n,
    )


def evaluate_detector(
    detector: FeatureSqueezingDetector,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    eps: float,
    steps: int = 40,
    clip: tuple[float, float] | None = (0.0, 1.0),
    seed: int = 0,
) -> dict[str, Any]:
    """Detection rate under non-adaptive PGD (the model alone) and under :func:`adaptive_pgd`.

    Only inputs the model classifies correctly are attacked. Returns the clean false-positive
    rate on ``x`` and a :class:`DetectionResult` dict per attack, side by side.
    """
    if detector.threshold is None:
        raise ConfigError("the detector has no threshold yet: call fit(x_clean) first")
    with torch.no_grad():
        ok = detector.model(x).argmax(1) == y
    x, y = x[ok], y[ok]
    gen = torch.Generator().manual_seed(seed)
    plain = pgd_perturb(detector.model, x, y, eps=eps, steps=steps, clip=clip, generator=gen)
    adaptive = adaptive_pgd(detector, x, y, eps=eps, steps=steps, clip=clip, generator=gen)
    return {
        "eps": eps,
        "n": len(y),
        "threshold": detector.threshold,
        "target_fpr": detector.fpr,
        "clean_fpr": float(detector.detect(x).float().mean()) if len(y) else 0.0,
        "non_adaptive": _detection("pgd", detector, plain, y).to_dict(),
        "adaptive": _detection("pgd+bpda-detector", detector, adaptive, y).to_dict(),
    }


__all__: Sequence[str] = ("DetectionResult", "FeatureSqueezingDetector", "adaptive_pgd", "evaluate_detector")
