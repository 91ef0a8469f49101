"""Checks on an evasion evaluation itself (Carlini et al. 2019, On Evaluating Adversarial Robustness,
arXiv:1902.06705).

Each check returns flag strings for a finding's ``flags``: an empty list means the check passed.
A flag does not say the model is weak; it says the robust accuracy measured may be too high
because the attacks did not work as they should (gradient masking, a bug, too few steps).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence


def curve_does_not_fall(eps: Sequence[float], robust_accuracy: Sequence[float], *, tol: float = 0.01) -> list[str]:
    """Flag a robust-accuracy curve that rises with eps, or stays flat from the smallest to the largest eps.

    A larger ball contains the smaller one, so a working attack's robust accuracy can only fall as
    eps grows; a rise of more than ``tol`` means the attack failed at the larger eps.
    """
    pts = sorted(zip(eps, robust_accuracy, strict=True))
    flags = []
    for (e0, a0), (e1, a1) in itertools.pairwise(pts):
        if a1 > a0 + tol:
            flags.append(
                f"gradient masking suspected: robust accuracy rises from {a0:.1%} at eps={e0:g} to {a1:.1%} "
                f"at eps={e1:g} (a larger eps can only help a working attack)"
            )
    if len(pts) >= 2 and pts[-1][0] > pts[0][0] and pts[0][1] > tol and pts[-1][1] >= pts[0][1] - tol:
        flags.append(
            f"gradient masking suspected: robust accuracy does not fall with eps ({pts[0][1]:.1%} at "
            f"eps={pts[0][0]:g}, {pts[-1][1]:.1%} at eps={pts[-1][0]:g})"
        )
    return flags


def unbounded_not_zero(eps: float, robust_accuracy: float, *, tol: float = 0.01) -> list[str]:
    """Flag an unbounded attack (an eps covering the whole input range) that leaves accuracy above ``tol``."""
    if robust_accuracy > tol:
        return [
            f"attack failure: at eps={eps:g}, which allows any input, robust accuracy is still "
            f"{robust_accuracy:.1%} instead of ~0% (gradient masking or a broken attack)"
        ]
    return []


def blackbox_beats_whitebox(
    whitebox_accuracy: float, blackbox_accuracy: float, *, name: str = "black-box attack", tol: float = 0.005
) -> list[str]:
    """Flag a black-box attack whose robust accuracy is lower than the white-box attacks' (by more than ``tol``).

    A gradient-free attack should never beat attacks that see the gradients; when it does, the
    gradients mislead (masking) and the white-box figures are not to be trusted.
    """
    if blackbox_accuracy < whitebox_accuracy - tol:
        return [
            f"gradient masking suspected: {name} reaches {blackbox_accuracy:.1%} robust accuracy where the "
            f"white-box attacks leave {whitebox_accuracy:.1%}"
        ]
    return []
