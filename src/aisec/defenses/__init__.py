"""Defenses against evasion: adversarial training, input preprocessing (with the adaptive attacks
that judge them), a feature-squeezing detector, ensembles and certification by randomized smoothing.

Registered defenses (:func:`defenses`) are what ``aisec harden`` applies; the detector and the
certificate are evaluations exposed as functions.
"""

from __future__ import annotations

from aisec.defenses import ensemble as _ensemble  # noqa: F401  (registers)
from aisec.defenses.base import Defended, Defense, defenses, get_defense, register_defense
from aisec.defenses.certify.randomized_smoothing import certification_finding, certified_accuracy, certify
from aisec.defenses.ensemble import Ensemble
from aisec.defenses.input.detector import FeatureSqueezingDetector, adaptive_pgd, evaluate_detector
from aisec.defenses.input.smoothing import NoisyInput
from aisec.defenses.input.squeeze import Squeezed
from aisec.defenses.training import dp as _dp  # noqa: F401  (registers dp-sgd; opacus is imported lazily)
from aisec.defenses.training.adversarial import AdversarialTrainingConfig, adversarial_training

__all__ = [
    "AdversarialTrainingConfig",
    "Defended",
    "Defense",
    "Ensemble",
    "FeatureSqueezingDetector",
    "NoisyInput",
    "Squeezed",
    "adaptive_pgd",
    "adversarial_training",
    "certification_finding",
    "certified_accuracy",
    "certify",
    "defenses",
    "evaluate_detector",
    "get_defense",
    "register_defense",
]
