"""Certified L2 robustness by randomized smoothing (Cohen, Rosenfeld, Kolter 2019, arXiv:1902.02918).

The smoothed classifier ``g(x) = argmax_c P(f(x + N(0, sigma^2 I)) = c)`` is robust within L2
radius ``sigma * Phi^-1(p_A)`` around ``x`` when the top class has probability at least ``p_A``.
:func:`certify` is the paper's CERTIFY: guess the top class from ``n0`` noisy samples, bound its
probability from below with a one-sided Clopper-Pearson interval on ``n`` fresh samples at level
``1 - alpha``, and abstain when the bound is not above one half. The paper uses ``n0=100``,
``n=100,000`` and ``alpha=0.001``; smaller ``n`` gives smaller certified radii, never wrong ones
(with probability at least ``1 - alpha``).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from scipy.stats import beta, norm
from torch import nn

from aisec.core.findings import Finding
from aisec.core.goals import Goal, Knowledge, OutputKind
from aisec.errors import ConfigError, InputValidationError

PAPER = "Cohen, Rosenfeld, Kolter 2019, Certified Adversarial Robustness via Randomized Smoothing, arXiv:1902.02918"
ABSTAIN = -1


def clopper_pearson_lower(k: int, n: int, alpha: float) -> float:
    """One-sided ``1 - alpha`` lower confidence bound on a binomial proportion with ``k`` of ``n``."""
    if k <= 0:
        return 0.0
    return float(beta.ppf(alpha, k, n - k + 1))


@torch.no_grad()
def _counts(
    model: nn.Module, x: torch.Tensor, sigma: float, num: int, batch: int, n_classes: int, gen: torch.Generator
) -> torch.Tensor:
    """How often each class wins on ``num`` noisy copies of the single input ``x``."""
    counts = torch.zeros(n_classes, dtype=torch.long)
    left = num
    while left > 0:
        b = min(batch, left)
        noise = torch.randn((b, *x.shape), generator=gen).to(x.device) * sigma
        pred = model(x.unsqueeze(0) + noise).argmax(1).cpu()
        counts += torch.bincount(pred, minlength=n_classes)[:n_classes]
        left -= b
    return counts


@dataclass(frozen=True, slots=True)
class Certificate:
    """CERTIFY's answer for a batch: predicted class (``-1`` = abstain) and certified L2 radius."""

    prediction: torch.Tensor
    radius: torch.Tensor
    p_lower: torch.Tensor
    seconds: float


def certify(
    model: nn.Module,
    x: torch.Tensor,
    sigma: float,
    *,
    n0: int = 100,
    n: int = 100_000,
    alpha: float = 0.001,
    batch: int = 1_000,
    n_classes: int | None = None,
    seed: int = 0,
) -> Certificate:
    """Cohen et al.'s CERTIFY for each input of ``x`` (shape (N, ...)).

    Parameters
    ----------
    model:
        The base classifier ``f`` (inputs to logits), ideally trained with Gaussian noise of ``sigma``.
    sigma:
        Noise level of the smoothed classifier.
    n0, n:
        Samples to select the top class, and to bound its probability.
    alpha:
        The certificate is wrong with probability at most ``alpha``.
    batch:
        Noisy copies per forward pass.
    n_classes:
        Inferred from one forward pass when omitted.
    seed:
        Seeds the noise.
    """
    if not sigma > 0:
        raise ConfigError(f"sigma: expected a number > 0, got {sigma!r}")
    if not (isinstance(n0, int) and isinstance(n, int) and n0 >= 1 and n >= 1 and batch >= 1):
        raise ConfigError(f"n0, n, batch: expected integers >= 1, got {n0!r}, {n!r}, {batch!r}")
    if not 0.0 < alpha < 1.0:
        raise ConfigError(f"alpha: expected a number in (0, 1), got {alpha!r}")
    if not isinstance(x, torch.Tensor) or x.ndim < 2:
        raise InputValidationError("x", "a tensor of shape (N, ...)", getattr(x, "shape", type(x).__name__))
    model = model.eval()
    if n_classes is None:
        with torch.no_grad():
            n_classes = int(model(x[:1]).shape[1])
    gen = torch.Generator().manual_seed(seed)
    start = time.perf_counter()
    preds, radii, lows = [], [], []
    for xi in x:
        top = int(_counts(model, xi, sigma, n0, batch, n_classes, gen).argmax())
        k = int(_counts(model, xi, sigma, n, batch, n_classes, gen)[top])
        p_low = clopper_pearson_lower(k, n, alpha)
        lows.append(p_low)
        if p_low > 0.5:
            preds.append(top)
            radii.append(sigma * float(norm.ppf(p_low)))
        else:
            preds.append(ABSTAIN)
            radii.append(0.0)
    return Certificate(
        prediction=torch.tensor(preds, dtype=torch.long),
        radius=torch.tensor(radii),
        p_lower=torch.tensor(lows),
        seconds=time.perf_counter() - start,
    )


def certified_accuracy(
    cert: Certificate, y: torch.Tensor, radii: Sequence[float] = (0.0, 0.25, 0.5, 0.75, 1.0)
) -> dict[float, float]:
    """Fraction of inputs predicted right *and* certified at L2 radius at least ``r``, per ``r``."""
    y = y.cpu()
    if len(y) != len(cert.prediction):
        raise InputValidationError("y", f"{len(cert.prediction)} labels", len(y))
    right = cert.prediction == y
    return {float(r): float((right & (cert.radius >= r)).float().mean()) if len(y) else 0.0 for r in radii}


def certification_finding(
    cert: Certificate,
    y: torch.Tensor,
    *,
    sigma: float,
    n0: int,
    n: int,
    alpha: float,
    radii: Sequence[float] = (0.0, 0.25, 0.5, 0.75, 1.0),
    job_id: str = "randomized-smoothing",
    seed: int | None = None,
) -> Finding:
    """A finding (integrity) holding the certified-accuracy curve; headline: certified accuracy at radius 0."""
    curve = certified_accuracy(cert, y, radii)
    abstain = float((cert.prediction == ABSTAIN).float().mean()) if len(y) else 0.0
    certified = cert.prediction != ABSTAIN
    metrics: dict[str, Any] = {
        "sigma": sigma,
        "n0": n0,
        "n": n,
        "alpha": alpha,
        "inputs": len(y),
        "certified_accuracy": curve[min(curve)],
        "certified_accuracy_curve": {f"{r:g}": v for r, v in curve.items()},
        "abstain_rate": abstain,
        "median_radius": float(np.median(cert.radius[certified].numpy())) if bool(certified.any()) else 0.0,
    }
    points = ", ".join(f"{v:.1%} at r={r:g}" for r, v in curve.items())
    return Finding(
        job_id=job_id,
        attack="randomized-smoothing",
        goal=Goal.INTEGRITY,
        knowledge=Knowledge.WHITE_BOX,
        output=OutputKind.PROBABILITIES,
        config={"sigma": sigma, "n0": n0, "n": n, "alpha": alpha, "radii": list(radii)},
        metrics=metrics,
        headline="certified_accuracy",
        worse_when="lower",
        summary=f"randomized smoothing sigma={sigma:g} (n={n}, alpha={alpha:g}): certified L2 accuracy {points}; "
        f"abstains on {abstain:.1%}",
        seconds=round(cert.seconds, 4),
        atlas="AML.M0003",
        paper=PAPER,
        seed=seed,
    )
