"""Spectral signatures (Tran, Li & Madry 2018, arXiv:1811.00636).

A backdoor leaves a trace in the learned representation of the class the poison is labelled as:
within that class the poisoned points differ from the clean ones along one direction, which the top
singular vector of the class's centred representations finds. Each point's outlier score is its
squared projection on that vector.

Two ways to decide what to remove:

* ``threshold="fraction"`` (the paper's rule): in every class drop the ``multiplier x
  expected_fraction`` share with the highest scores. It needs the poison budget and removes clean
  points from every class the poison did not touch.
* ``threshold="auto"`` (default): in every class split the signed projections in two (exact 1-D
  2-means) and drop the smaller side only when the two sides lie ``min_separation`` pooled standard
  deviations apart, which a clean, unimodal class almost never does. Classes without poison then
  lose nothing, which keeps precision high.

The representation is the model's penultimate layer in the paper. aisec's default is the inputs
themselves: against dirty-label backdoors (BadNets) the poisoned points of the target class are
images of *other* classes, so they stand apart in input space far more clearly (on 8x8 digits the
poisoned class splits 10 pooled standard deviations apart, clean classes at most 5.6) than in the
penultimate layer of a small MLP or CNN, where the network has already pulled them towards the
target class (3-4.5, no better than the naturally bimodal clean classes). Clean-label poison looks
like its class in input space: use ``representation="penultimate"`` there.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from aisec.attacks.base import check_config
from aisec.core.configurable import check_choice
from aisec.defenses.data.poison.common import (
    REPRESENTATIONS,
    ClassResult,
    PerClassDetector,
    register_detector,
    two_means_1d,
)


@dataclass(frozen=True, kw_only=True, slots=True)
class SpectralConfig:
    """Parameters of :class:`SpectralSignatures`.

    Attributes
    ----------
    representation:
        ``"inputs"`` (flattened inputs, TF-IDF for texts) or ``"penultimate"`` (the model's layer
        before the logits; for a scikit-learn pipeline the features of every step but the last).
    threshold:
        ``"auto"`` (split each class where its projections separate) or ``"fraction"``.
    expected_fraction:
        Poison budget the defender assumes (``"fraction"`` rule only).
    multiplier:
        Share removed per class is ``multiplier * expected_fraction`` (1.5 in the paper).
    min_separation:
        ``"auto"`` rule: gap between the two sides, in pooled standard deviations, needed to flag.
    max_relative_size:
        ``"auto"`` rule: the flagged side holds at most this share of its class.
    min_class:
        Classes with fewer points are left alone.
    max_dims:
        Sparse or very wide representations are reduced to this many dimensions (truncated SVD).
    """

    representation: str = "inputs"
    threshold: str = "auto"
    expected_fraction: float = 0.05
    multiplier: float = 1.5
    min_separation: float = 7.0
    max_relative_size: float = 0.5
    min_class: int = 10
    max_dims: int = 256

    def __post_init__(self) -> None:
        check_choice("spectral.representation", self.representation, REPRESENTATIONS)
        check_choice("spectral.threshold", self.threshold, ("auto", "fraction"))
        check_config(
            self,
            "spectral",
            integer=("min_class", "max_dims"),
            positive=("multiplier", "min_separation", "max_dims"),
            unit=("expected_fraction", "max_relative_size"),
        )


@register_detector
class SpectralSignatures(PerClassDetector):
    """Spectral signatures (Tran, Li & Madry 2018, arXiv:1811.00636), per class, with an automatic cut."""

    name = "spectral"
    paper = "Tran, Li & Madry 2018, Spectral Signatures in Backdoor Attacks, arXiv:1811.00636"
    Config = SpectralConfig

    def _class(self, reps: np.ndarray, seed: int) -> ClassResult:
        cfg: SpectralConfig = self.config
        r = reps - reps.mean(axis=0)
        _, _, vt = np.linalg.svd(r, full_matrices=False)
        proj = r @ vt[0]
        sq = proj**2
        scores = sq / max(float(sq.mean()), 1e-12)
        if cfg.threshold == "fraction":
            k = min(len(reps) - 1, round(cfg.multiplier * cfg.expected_fraction * len(reps)))
            return scores, np.argsort(-sq)[: max(k, 0)], {"removed": k}
        split = two_means_1d(proj)
        hit = split.separation >= cfg.min_separation and split.relative_size <= cfg.max_relative_size
        info = {
            "separation": round(split.separation, 3),
            "relative_size": round(split.relative_size, 4),
            "flagged": int(split.small.sum()) if hit else 0,
        }
        return scores, split.small if hit else None, info


__all__ = ["SpectralConfig", "SpectralSignatures"]
